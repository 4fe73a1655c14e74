//! Voicemail's I/O: writing a caller's message to a WAV file and into the store, telling the
//! mailbox owner's phones (message waiting indication, RFC 3842), mailing the message, and
//! deleting messages past their keeping time.
//!
//! The call logic (`call/actions/voicemail.rs`) decides what a caller hears and when the
//! recording ends; this module only carries that out. A message is finished by its writer
//! thread when the recording's queue closes (the call stopped it, or the caller hung up and
//! the media session ended), so a hang-up never loses what was said.

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use media::wav::PromptPlayer;
use store::{MailboxPin, MessageCounts, NewVoicemail};
use tokio::sync::mpsc;

use crate::call::{MailboxOpen, Reply};
use crate::call_effects::Replies;
use crate::call_event::{CallEvent, CallEvents};
use crate::ids::LegId;
use crate::media_worker::{
    MediaCommand, MediaEvent, MediaMode, RECORDING_FRAME, ROOM_RATE, RecordingFrame, RecordingSink,
};
use crate::shared::Shared;
use crate::telemetry::{self, count};

/// Mailbox changes waiting for the signalling task to notify phones.
pub const MWI_QUEUE: usize = 256;
/// Messages shorter than this are dropped: a caller who hung up at the tone left nothing.
const MIN_MESSAGE: Duration = Duration::from_secs(1);
/// A frame whose RMS is below this (about -50 dBFS) counts as silence.
const SILENCE_RMS: f64 = 100.0;
/// Frames of 20 ms a message's queue holds: a slow disk loses frames, never call audio.
const WRITER_QUEUE: usize = 512;
/// How often expiry looks for old messages.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);

/// A mailbox's counts, for its owner's phones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MwiUpdate {
    /// The mailbox (the user's extension).
    pub mailbox: String,
    /// Its messages now.
    pub counts: MessageCounts,
}

/// The `application/simple-message-summary` body (RFC 3842 §5.2) for `account` (the
/// mailbox's SIP URI): waiting when there are new messages, voice messages as new/old with
/// no urgent ones (we have no urgency).
pub fn message_summary(account: &str, counts: MessageCounts) -> String {
    let waiting = if counts.new > 0 { "yes" } else { "no" };
    format!(
        "Messages-Waiting: {waiting}\r\nMessage-Account: {account}\r\nVoice-Message: {}/{} (0/0)\r\n",
        counts.new, counts.old
    )
}

/// Looks up `mailbox`'s counts and hands them to the signalling task, which notifies the
/// user's registered phones. A full queue drops the update (logged): the next change or
/// registration sends the counts again.
pub fn announce(shared: &Arc<Shared>, mailbox: String) {
    announce_counts(shared, mailbox, false);
}

/// The same for a user whose phone just registered: only when the mailbox holds messages,
/// since an empty mailbox lights no lamp, and phones that take no unsolicited NOTIFY are
/// spared one at every start.
pub fn announce_registered(shared: &Arc<Shared>, mailbox: String) {
    announce_counts(shared, mailbox, true);
}

fn announce_counts(shared: &Arc<Shared>, mailbox: String, only_with_messages: bool) {
    let shared = shared.clone();
    tokio::spawn(async move {
        let lookup = mailbox.clone();
        let counts = match shared
            .store
            .run(move |store| store.voicemail_counts(&lookup))
            .await
        {
            Ok(Ok(counts)) => counts,
            Ok(Err(err)) => {
                tracing::error!(%mailbox, "voicemail counts not read: {err}");
                return;
            }
            Err(err) => {
                tracing::error!(%mailbox, "voicemail counts not read: {err}");
                return;
            }
        };
        if only_with_messages && counts == MessageCounts::default() {
            return;
        }
        if let Err(err) = shared.mwi.try_send(MwiUpdate { mailbox, counts }) {
            tracing::warn!("message waiting update dropped: {err}");
        }
    });
}

/// Who left a message where, for the writer.
pub struct MessageSpec {
    /// The mailbox.
    pub mailbox: String,
    /// The caller, as the call record names them.
    pub caller: String,
    /// The caller's leg, whose call hears of a long silence.
    pub leg: LegId,
    /// Where that news goes.
    pub events: CallEvents,
}

/// Starts a message: its file and writer thread. The returned sink goes to the caller's
/// media session (`MediaCommand::Capture`); when it is dropped, the writer finishes the
/// file and stores the message.
pub fn start_message(shared: &Arc<Shared>, spec: MessageSpec) -> Result<RecordingSink, String> {
    let stamp = jiff::Timestamp::now();
    let dir = shared.config.data_dir.join("voicemail").join(&spec.mailbox);
    let path = dir.join(format!(
        "{}-{}.wav",
        stamp.strftime("%Y%m%dT%H%M%S%.3fZ"),
        spec.leg
    ));
    let (tx, rx) = crossbeam_channel::bounded::<RecordingFrame>(WRITER_QUEUE);
    let writer_shared = shared.clone();
    // The writer thread hands the stored message back to the runtime (MWI, mail).
    let runtime = tokio::runtime::Handle::try_current().map_err(|err| err.to_string())?;
    let silence_frames = shared.config.voicemail.silence_seconds as usize * 50;
    std::thread::Builder::new()
        .name("voicemail".into())
        .spawn(move || {
            let received_at_ms = stamp.as_millisecond();
            let written = write_message(&path, &rx, silence_frames, &spec);
            finish_message(
                &writer_shared,
                &runtime,
                spec,
                path,
                received_at_ms,
                written,
            );
        })
        .map_err(|err| err.to_string())?;
    Ok(RecordingSink { frames: tx })
}

/// Writes frames as 16 kHz mono WAV until the queue closes; the number of samples. Tells
/// the call once when `silence_frames` silent frames came in a row (0: never).
fn write_message(
    path: &std::path::Path,
    frames: &crossbeam_channel::Receiver<RecordingFrame>,
    silence_frames: usize,
    spec: &MessageSpec,
) -> std::io::Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    file.write_all(&media::wav::write_wav(&[], ROOM_RATE))?;
    let mut samples: u64 = 0;
    let mut silence = SilenceWatch::new(silence_frames);
    for frame in frames.iter() {
        let mut bytes = [0u8; RECORDING_FRAME * 2];
        for (chunk, sample) in bytes.chunks_exact_mut(2).zip(frame.iter()) {
            chunk.copy_from_slice(&sample.to_le_bytes());
        }
        file.write_all(&bytes)?;
        samples += RECORDING_FRAME as u64;
        if silence.frame(&frame) {
            let _ = spec
                .events
                .try_send((spec.leg, CallEvent::Media(MediaEvent::CallerSilent)));
        }
    }
    let mut file = file.into_inner().map_err(|e| e.into_error())?;
    let data = u32::try_from(samples * 2).unwrap_or(u32::MAX - 36);
    // RIFF sizes: the file size minus 8, and the data chunk size (44-byte header).
    file.seek(SeekFrom::Start(4))?;
    file.write_all(&(data + 36).to_le_bytes())?;
    file.seek(SeekFrom::Start(40))?;
    file.write_all(&data.to_le_bytes())?;
    file.sync_all()?;
    Ok(samples)
}

/// Counts silent frames in a row; says so once when there were enough.
struct SilenceWatch {
    limit: usize,
    run: usize,
}

impl SilenceWatch {
    fn new(limit: usize) -> Self {
        Self { limit, run: 0 }
    }

    /// Takes one frame; true exactly when the silent run reaches the limit.
    fn frame(&mut self, frame: &[i16]) -> bool {
        let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        let rms = (energy / frame.len().max(1) as f64).sqrt();
        if rms < SILENCE_RMS {
            self.run += 1;
        } else {
            self.run = 0;
        }
        self.limit > 0 && self.run == self.limit
    }
}

/// Stores a written message (or drops a too short one with its file), then tells the
/// phones and mails it.
fn finish_message(
    shared: &Arc<Shared>,
    runtime: &tokio::runtime::Handle,
    spec: MessageSpec,
    path: PathBuf,
    received_at_ms: i64,
    written: std::io::Result<u64>,
) {
    let samples = match written {
        Ok(samples) => samples,
        Err(err) => {
            count(telemetry::VOICEMAIL_FAILURES_TOTAL);
            tracing::error!(mailbox = %spec.mailbox, path = %path.display(), "voicemail not written: {err}");
            let _ = std::fs::remove_file(&path);
            return;
        }
    };
    let duration = Duration::from_millis(samples * 1000 / u64::from(ROOM_RATE));
    if duration < MIN_MESSAGE {
        count(telemetry::VOICEMAIL_TOO_SHORT_TOTAL);
        tracing::info!(mailbox = %spec.mailbox, ms = duration.as_millis() as u64, "voicemail too short; dropped");
        let _ = std::fs::remove_file(&path);
        return;
    }
    let message = NewVoicemail {
        mailbox: spec.mailbox.clone(),
        caller: spec.caller.clone(),
        received_at_ms,
        duration_ms: duration.as_millis() as i64,
        path: path.clone(),
    };
    let stored = {
        let message = message.clone();
        shared
            .store
            .run_blocking(move |store| store.voicemail_add(&message))
    };
    match stored {
        Ok(Ok(id)) => {
            count(telemetry::VOICEMAIL_MESSAGES_TOTAL);
            tracing::info!(mailbox = %spec.mailbox, caller = %spec.caller, id = id.0, ms = message.duration_ms, path = %path.display(), "voicemail stored");
        }
        Ok(Err(err)) => {
            count(telemetry::VOICEMAIL_FAILURES_TOTAL);
            tracing::error!(mailbox = %spec.mailbox, path = %path.display(), "voicemail written but not stored: {err}");
            return;
        }
        Err(err) => {
            count(telemetry::VOICEMAIL_FAILURES_TOTAL);
            tracing::error!(mailbox = %spec.mailbox, path = %path.display(), "voicemail written but not stored: {err}");
            return;
        }
    }
    let shared = shared.clone();
    runtime.spawn(async move {
        announce(&shared, message.mailbox.clone());
        crate::voicemail_mail::send_if_wanted(&shared, message).await;
    });
}

/// Deletes messages older than `keep_days` with their files, every hour from start.
pub fn spawn_expiry(shared: Arc<Shared>) {
    let keep_days = shared.config.voicemail.keep_days;
    if keep_days == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(EXPIRY_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let now_ms = jiff::Timestamp::now().as_millisecond();
            expire(&shared, expiry_cutoff(now_ms, keep_days)).await;
        }
    });
}

/// Messages left before this time (Unix ms) are past their keeping time at `now_ms`.
pub fn expiry_cutoff(now_ms: i64, keep_days: u32) -> i64 {
    now_ms.saturating_sub(i64::from(keep_days) * 86_400_000)
}

/// Deletes the messages left before `cutoff_ms`, files too, and tells the mailboxes' phones.
pub async fn expire(shared: &Arc<Shared>, cutoff_ms: i64) {
    let expired = match shared
        .store
        .run(move |store| store.voicemail_expire(cutoff_ms))
        .await
    {
        Ok(Ok(expired)) => expired,
        Ok(Err(err)) => {
            tracing::error!("voicemail expiry failed: {err}");
            return;
        }
        Err(err) => {
            tracing::error!("voicemail expiry failed: {err}");
            return;
        }
    };
    let mut mailboxes = std::collections::BTreeSet::new();
    for message in expired {
        count(telemetry::VOICEMAIL_EXPIRED_TOTAL);
        if let Err(err) = std::fs::remove_file(&message.path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(path = %message.path.display(), "expired voicemail file not deleted: {err}");
        }
        tracing::info!(mailbox = %message.mailbox, id = message.id.0, "voicemail expired");
        mailboxes.insert(message.mailbox);
    }
    for mailbox in mailboxes {
        announce(shared, mailbox);
    }
}

/// Opens `mailbox` (the calling user's, `None` for a caller who is no user) with `digits`;
/// the reply goes to `replies`. The PIN check costs an Argon2id hash: on the store thread.
pub fn spawn_open(
    shared: &Arc<Shared>,
    leg: LegId,
    mailbox: Option<String>,
    digits: String,
    replies: &Replies,
) {
    let (shared, replies) = (shared.clone(), replies.clone());
    tokio::spawn(async move {
        let reply = match mailbox {
            None => Ok(MailboxOpen::NoMailbox),
            Some(mailbox) => shared
                .store
                .run(move |store| -> Result<MailboxOpen, store::StoreError> {
                    Ok(match store.voicemail_check_pin(&mailbox, &digits)? {
                        MailboxPin::NotSet => MailboxOpen::NoPin,
                        MailboxPin::Wrong => MailboxOpen::WrongPin,
                        MailboxPin::Right => MailboxOpen::Open(store.voicemail_list(&mailbox)?),
                    })
                })
                .await
                .map_err(|err| format!("did not finish: {err}"))
                .and_then(|opened| opened.map_err(|err| err.to_string())),
        };
        let _ = replies.send((leg, Reply::Mailbox(reply))).await;
    });
}

/// Marks a message heard, or deletes it with its file; then tells the mailbox's phones.
pub fn spawn_change(
    shared: &Arc<Shared>,
    leg: LegId,
    id: store::VoicemailId,
    delete: bool,
    replies: &Replies,
) {
    let (shared, replies) = (shared.clone(), replies.clone());
    tokio::spawn(async move {
        let changed = shared
            .store
            .run(move |store| {
                let message = store
                    .voicemail_get(id)?
                    .ok_or(store::StoreError::NoSuchVoicemail(id.0))?;
                if delete {
                    store.voicemail_delete(id)?;
                } else {
                    store.voicemail_mark_heard(id)?;
                }
                Ok::<_, store::StoreError>(message)
            })
            .await;
        let reply = match changed {
            Ok(Ok(message)) => {
                if delete {
                    if let Err(err) = std::fs::remove_file(&message.path) {
                        tracing::error!(path = %message.path.display(), "deleted voicemail's file not removed: {err}");
                    }
                    tracing::info!(mailbox = %message.mailbox, id = id.0, "voicemail deleted by its owner");
                }
                announce(&shared, message.mailbox);
                Ok(())
            }
            Ok(Err(err)) => Err(err.to_string()),
            Err(err) => Err(format!("did not finish: {err}")),
        };
        let _ = replies.send((leg, Reply::Done(reply))).await;
    });
}

/// Reads a stored message and plays it to `leg` at `codec_rate`; replies whether it plays.
pub fn spawn_play_file(
    shared: &Arc<Shared>,
    leg: LegId,
    path: PathBuf,
    codec_rate: u32,
    replies: &Replies,
) {
    let (shared, replies) = (shared.clone(), replies.clone());
    tokio::spawn(async move {
        let player = tokio::task::spawn_blocking(move || -> Result<PromptPlayer, String> {
            let bytes = std::fs::read(&path).map_err(|err| format!("{}: {err}", path.display()))?;
            let wav = media::wav::parse_wav(&bytes).map_err(|err| err.to_string())?;
            let samples = media::wav::to_prompt(&wav).map_err(|err| err.to_string())?;
            PromptPlayer::new(samples, codec_rate).map_err(|err| err.to_string())
        })
        .await;
        let started = match player {
            Ok(Ok(player)) => shared
                .media
                .send(leg, MediaCommand::SetMode(leg, MediaMode::Play(player))),
            Ok(Err(err)) => {
                tracing::error!("voicemail message cannot be played: {err}");
                false
            }
            Err(err) => {
                tracing::error!("voicemail message cannot be played: {err}");
                false
            }
        };
        let _ = replies.send((leg, Reply::Started(started))).await;
    });
}

/// Where the signalling task hears of mailbox changes.
pub fn channel() -> (mpsc::Sender<MwiUpdate>, mpsc::Receiver<MwiUpdate>) {
    mpsc::channel(MWI_QUEUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_says_waiting_only_with_new_messages() {
        let account = "sip:101@amtsleitung";
        assert_eq!(
            message_summary(account, MessageCounts { new: 2, old: 1 }),
            "Messages-Waiting: yes\r\nMessage-Account: sip:101@amtsleitung\r\nVoice-Message: 2/1 (0/0)\r\n"
        );
        assert_eq!(
            message_summary(account, MessageCounts { new: 0, old: 3 }),
            "Messages-Waiting: no\r\nMessage-Account: sip:101@amtsleitung\r\nVoice-Message: 0/3 (0/0)\r\n"
        );
    }

    #[test]
    fn silence_is_reported_once_when_the_run_reaches_the_limit() {
        let mut watch = SilenceWatch::new(3);
        let quiet = [10i16; RECORDING_FRAME];
        let loud = [3000i16; RECORDING_FRAME];
        assert!(!watch.frame(&quiet));
        assert!(!watch.frame(&quiet));
        assert!(!watch.frame(&loud), "speech restarts the count");
        assert!(!watch.frame(&quiet));
        assert!(!watch.frame(&quiet));
        assert!(watch.frame(&quiet));
        assert!(!watch.frame(&quiet), "said once");
        let mut never = SilenceWatch::new(0);
        assert!((0..1000).all(|_| !never.frame(&quiet)));
    }

    #[test]
    fn messages_older_than_the_configured_keep_days_are_deleted_at_the_time_given() {
        let config: crate::config::Config =
            toml::from_str("[voicemail]\nkeep-days = 30\n").unwrap();
        let keep_days = config.voicemail.keep_days;
        let day = 86_400_000;
        let now_ms = 1_800_000_000_000;
        let store = store::Store::open_in_memory().unwrap();
        let left = |mailbox: &str, age_ms: i64| {
            store
                .voicemail_add(&store::NewVoicemail {
                    mailbox: mailbox.into(),
                    caller: "07111234".into(),
                    received_at_ms: now_ms - age_ms,
                    duration_ms: 4_000,
                    path: PathBuf::from(format!("/data/voicemail/{mailbox}/{age_ms}.wav")),
                })
                .unwrap()
        };
        left("101", 31 * day);
        left("102", 30 * day + 1);
        let at_limit = left("101", 30 * day);
        let young = left("101", day);
        let expired = store
            .voicemail_expire(expiry_cutoff(now_ms, keep_days))
            .unwrap();
        let mut gone: Vec<_> = expired.iter().map(|m| m.path.clone()).collect();
        gone.sort();
        assert_eq!(
            gone,
            [
                PathBuf::from(format!("/data/voicemail/101/{}.wav", 31 * day)),
                PathBuf::from(format!("/data/voicemail/102/{}.wav", 30 * day + 1)),
            ]
        );
        let kept: Vec<_> = store
            .voicemail_list("101")
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(kept, [at_limit, young]);
        assert!(store.voicemail_list("102").unwrap().is_empty());
        // A day later the one at the limit is past it too.
        let expired = store
            .voicemail_expire(expiry_cutoff(now_ms + day, keep_days))
            .unwrap();
        assert_eq!(expired.iter().map(|m| m.id).collect::<Vec<_>>(), [at_limit]);
    }

    #[test]
    fn expiry_cutoff_is_keep_days_before_now() {
        let day = 86_400_000;
        assert_eq!(expiry_cutoff(100 * day, 30), 70 * day);
        assert_eq!(expiry_cutoff(0, 30), -30 * day);
    }
}
