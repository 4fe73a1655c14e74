//! Carries out what calls ask of the shared world: prompts, the room registry, the store
//! and recordings. Call control hands each question here and feeds the reply back to the
//! call, at once where the answer is in memory, through [`Replies`] where it takes the
//! store thread.

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use media::wav::PromptPlayer;
use tokio::sync::mpsc::Sender;

use crate::call::{Question, Reply, RoomAction, SettingRefusal};
use crate::call_event::CallEvents;
use crate::conference::{ActiveRecording, Entrant, MemberLabel};
use crate::ids::LegId;
use crate::media_worker::{
    MediaCommand, RECORDING_FRAME, ROOM_RATE, RecordingFrame, RecordingSink,
};
use crate::shared::Shared;

/// Where replies that took the store thread come back to call control.
pub type Replies = Sender<(LegId, Reply)>;

/// A prompt ready to play at the caller's codec rate, or `None` (logged) when it cannot be.
pub fn prompt(
    shared: &Shared,
    language: &str,
    codec_rate: u32,
    sound: &str,
) -> Option<PromptPlayer> {
    let Some(samples) = shared.sounds.get(language, sound) else {
        tracing::warn!(sound, "prompt missing; skipped");
        return None;
    };
    match PromptPlayer::new(samples, codec_rate) {
        Ok(player) => Some(player),
        Err(err) => {
            tracing::warn!(sound, "prompt cannot be played at this codec's rate: {err}");
            None
        }
    }
}

/// Answers a question about the live rooms; `None` for a question that is not about them.
pub fn room_question(
    shared: &Shared,
    leg: LegId,
    caller: &str,
    question: &Question,
    events: &CallEvents,
) -> Option<Reply> {
    let rooms = &shared.conferences;
    Some(match question {
        Question::Admit {
            room,
            moderator,
            terms,
        } => Reply::Admission(
            rooms
                .admit(
                    room,
                    leg,
                    *moderator,
                    *terms,
                    Entrant {
                        label: MemberLabel::phone(caller),
                        notices: events.clone(),
                    },
                )
                .map(|admission| admission.muted_until_moderator),
        ),
        Question::Leave(room) => Reply::Flag(stopped(room, rooms.leave(room, leg))),
        Question::Count(room) => Reply::Count(rooms.count(room)),
        Question::ToggleLock(room) => Reply::Flag(
            rooms
                .with_room(room, |r| {
                    r.locked = !r.locked;
                    r.locked
                })
                .unwrap_or(false),
        ),
        Question::MuteOthers(room) => Reply::Count(rooms.mute_others(room, leg)),
        Question::TakeRecording(room) => Reply::Flag(stopped(
            room,
            rooms.with_room(room, |r| r.recording.take()).flatten(),
        )),
        _ => return None,
    })
}

/// Whether a recording was taken off the room (the caller's call stops the media side).
fn stopped(room: &str, recording: Option<ActiveRecording>) -> bool {
    if let Some(recording) = &recording {
        tracing::info!(%room, id = ?recording.id, "recording ends");
    }
    recording.is_some()
}

/// Carries out a room action of `leg`'s call.
pub fn room_action(shared: &Shared, leg: LegId, action: RoomAction) {
    let rooms = &shared.conferences;
    match action {
        RoomAction::TellOthers { room, notice } => rooms.tell_others(&room, leg, notice),
        RoomAction::TellModerators { room, notice } => rooms.tell_moderators(&room, notice),
        RoomAction::SetMuted { room, muted } => {
            rooms.with_room(&room, |r| {
                if let Some(m) = r.members.get_mut(&leg) {
                    m.muted = muted;
                }
            });
        }
        RoomAction::SetHandRaised { room, raised } => {
            rooms.with_room(&room, |r| {
                if let Some(m) = r.members.get_mut(&leg) {
                    m.hand_raised = raised;
                }
            });
        }
    }
}

/// Starts answering a question that takes the store (or files): the reply comes through
/// `replies`. Returns false for a question that is not of this kind.
/// Changes the calling `user`'s forwarding or do not disturb (`question` is
/// [`Question::SetForward`] or [`Question::SetDnd`]) on the store thread, reloads
/// `directory` at once so that the next call sees it, and replies [`Reply::Switched`].
pub fn spawn_setting_change(
    shared: &Arc<Shared>,
    leg: LegId,
    user: String,
    question: &Question,
    directory: Arc<crate::user_directory::UserDirectory>,
    replies: &Replies,
) {
    enum Change {
        Forward(store::ForwardKind, Option<String>, Option<u32>),
        Dnd(dialplan::Switch),
    }
    let change = match question {
        Question::SetForward { when, to, seconds } => {
            let kind = match when {
                dialplan::ForwardWhen::Always => store::ForwardKind::Always,
                dialplan::ForwardWhen::Busy => store::ForwardKind::Busy,
                dialplan::ForwardWhen::NoAnswer => store::ForwardKind::NoAnswer,
            };
            Change::Forward(kind, to.clone(), *seconds)
        }
        Question::SetDnd(switch) => Change::Dnd(*switch),
        _ => return,
    };
    let (shared, replies) = (shared.clone(), replies.clone());
    tokio::spawn(async move {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let domain = store::DEFAULT_DOMAIN;
        let who = user.clone();
        let done = shared
            .store
            .run(move |store| {
                let changed = match change {
                    Change::Forward(kind, to, seconds) => store
                        .user_set_forward(domain, &who, kind, to.as_deref(), seconds, now_ms)
                        .map(|settings| {
                            tracing::info!(user = %who, %kind, to = ?settings.forward(kind), "call forwarding changed from the phone");
                            settings.forward(kind).is_some()
                        }),
                    Change::Dnd(switch) => {
                        let on = match switch {
                            dialplan::Switch::On => Ok(true),
                            dialplan::Switch::Off => Ok(false),
                            dialplan::Switch::Toggle => store
                                .user_get(domain, &who)
                                .map(|user| !user.is_some_and(|u| u.call_settings.dnd)),
                        };
                        on.and_then(|on| store.user_set_dnd(domain, &who, on, now_ms))
                            .map(|settings| {
                                tracing::info!(user = %who, dnd = settings.dnd, "do not disturb changed from the phone");
                                settings.dnd
                            })
                    }
                };
                if changed.is_ok()
                    && let Err(err) = directory.load(store)
                {
                    tracing::error!("user directory not reloaded after a change: {err}");
                }
                changed
            })
            .await;
        let reply = match done {
            Ok(Ok(on)) => Ok(on),
            Ok(Err(
                err @ (store::StoreError::InvalidForwardTarget(_)
                | store::StoreError::InvalidRingSeconds(_)
                | store::StoreError::NoSuchUser { .. }),
            )) => Err(SettingRefusal::Invalid(err.to_string())),
            Ok(Err(err)) => Err(SettingRefusal::Store(err.to_string())),
            Err(err) => Err(SettingRefusal::Store(format!("did not finish: {err}"))),
        };
        let _ = replies.send((leg, Reply::Switched(reply))).await;
    });
}

pub fn spawn_slow_question(
    shared: &Arc<Shared>,
    leg: LegId,
    question: &Question,
    replies: &Replies,
) -> bool {
    let (shared, replies) = (shared.clone(), replies.clone());
    match question.clone() {
        Question::RoomGet(number) => {
            tokio::spawn(async move {
                let looked_up = shared.store.run(move |store| store.room_get(&number)).await;
                let reply = match looked_up {
                    Ok(Ok(stored)) => Ok(stored),
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(err) => Err(format!("did not finish: {err}")),
                };
                let _ = replies.send((leg, Reply::Room(reply))).await;
            });
        }
        Question::RoomLinked(number) => {
            tokio::spawn(async move {
                let room = number.clone();
                let looked_up = shared
                    .store
                    .run(move |store| store.room_link_get(&room))
                    .await;
                let reply = match looked_up {
                    Ok(Ok(Some(_))) => Ok(()),
                    Ok(Ok(None)) => Err(format!(
                        "room {number} has no meeting link (amtsleitung room link {number} ...)"
                    )),
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(err) => Err(format!("did not finish: {err}")),
                };
                let _ = replies.send((leg, Reply::Done(reply))).await;
            });
        }
        Question::CheckPin { room, digits } => {
            // Argon2 costs tens of milliseconds: on the store thread, off the core's.
            tokio::spawn(async move {
                let checked = shared
                    .store
                    .run(move |store| store.room_check_pin(&room, &digits))
                    .await;
                let reply = match checked {
                    Ok(Ok(check)) => Ok(check),
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(err) => Err(format!("did not finish: {err}")),
                };
                let _ = replies.send((leg, Reply::Pin(reply))).await;
            });
        }
        Question::StartRecording(room) => {
            tokio::spawn(async move {
                let started = start_recording(&shared, &room).await;
                let _ = replies.send((leg, Reply::Done(started))).await;
            });
        }
        _ => return false,
    }
    true
}

/// Notes a recording in the store, starts its writer thread and tells the room's worker to
/// feed it. Only a recording on the books is made: one the store does not know of could be
/// neither listed nor deleted when its retention ends.
pub(crate) async fn start_recording(shared: &Arc<Shared>, number: &str) -> Result<(), String> {
    let dir = shared.config.data_dir.join("recordings");
    let stamp = jiff::Timestamp::now();
    let path = dir.join(format!("{number}-{}.wav", stamp.strftime("%Y%m%dT%H%M%SZ")));
    let (room, file) = (number.to_string(), path.clone());
    let id = shared
        .store
        .run(move |store| store.recording_start(&room, &file, stamp.as_millisecond()))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| format!("the store refused it: {err}"))?;
    let (tx, rx) = crossbeam_channel::bounded::<RecordingFrame>(512);
    let writer_shared = shared.clone();
    let writer_path = path.clone();
    std::thread::Builder::new()
        .name("recording".into())
        .spawn(move || write_recording(writer_path, rx, Some(id), writer_shared))
        .map_err(|err| err.to_string())?;
    shared.conferences.with_room(number, |r| {
        r.recording = Some(ActiveRecording { id: Some(id) })
    });
    shared.media.send(
        LegId::new(0),
        MediaCommand::SetRecording(number.to_string(), Some(RecordingSink { frames: tx })),
    );
    tracing::info!(room = %number, path = %path.display(), "recording started");
    Ok(())
}

/// Stops room `number`'s recording (the console's button; a moderator's `*9` goes through
/// its call instead); false if none was running.
pub(crate) fn stop_recording(shared: &Shared, number: &str) -> bool {
    let taken = shared
        .conferences
        .with_room(number, |r| r.recording.take())
        .flatten();
    if !stopped(number, taken) {
        return false;
    }
    // Dropping the worker's sink ends the writer thread, which finishes the file.
    shared.media.send(
        LegId::new(0),
        MediaCommand::SetRecording(number.to_string(), None),
    );
    true
}

/// Writes a room's recording as 16 kHz mono WAV until the worker drops the sender, then
/// fixes the header and records the size in the store.
fn write_recording(
    path: PathBuf,
    frames: crossbeam_channel::Receiver<RecordingFrame>,
    id: Option<store::RecordingId>,
    shared: std::sync::Arc<crate::shared::Shared>,
) {
    let result = (|| -> std::io::Result<u64> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        file.write_all(&media::wav::write_wav(&[], ROOM_RATE))?;
        let mut data_bytes: u64 = 0;
        for frame in frames.iter() {
            let mut bytes = [0u8; RECORDING_FRAME * 2];
            for (chunk, sample) in bytes.chunks_exact_mut(2).zip(frame.iter()) {
                chunk.copy_from_slice(&sample.to_le_bytes());
            }
            file.write_all(&bytes)?;
            data_bytes += bytes.len() as u64;
        }
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        // RIFF sizes: the file size minus 8, and the data chunk size (44-byte header).
        let data = u32::try_from(data_bytes).unwrap_or(u32::MAX - 36);
        file.seek(SeekFrom::Start(4))?;
        file.write_all(&(data + 36).to_le_bytes())?;
        file.seek(SeekFrom::Start(40))?;
        file.write_all(&data.to_le_bytes())?;
        file.sync_all()?;
        Ok(data_bytes + 44)
    })();
    match result {
        Ok(bytes) => {
            if let Some(id) = id {
                let finished = shared.store.run_blocking(move |store| {
                    store.recording_finish(id, jiff::Timestamp::now().as_millisecond(), bytes)
                });
                match finished {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::error!("recording not noted as finished: {err}"),
                    Err(err) => tracing::error!("recording not noted as finished: {err}"),
                }
            }
            tracing::info!(path = %path.display(), bytes, "recording written");
        }
        Err(err) => tracing::error!(path = %path.display(), "recording failed: {err}"),
    }
}
