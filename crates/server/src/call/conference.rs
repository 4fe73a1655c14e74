//! The `conference` action as callers meet it: the lobby (room number and PIN by DTMF),
//! admission (locked, full, wait for the moderator), announcements, the in-call DTMF menu
//! and recording.

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::call_event::{CallEvent, Notice};
use crate::conference::{ActiveRecording, Admission, Refusal, RoomTerms};
use crate::ids::LegId;
use crate::media_worker::{
    MediaCommand, MediaEvent, RECORDING_FRAME, ROOM_RATE, RecordingFrame, RecordingSink, RoomJoin,
};

use super::{CallRunner, Stop};

/// Why a caller was sent away for safety: the prompt they hear and the call record's reason.
struct Refused {
    prompt: Option<&'static str>,
    record: &'static str,
}

/// The store could not say whether the room has a PIN.
const STORE_UNAVAILABLE: Refused = Refused {
    prompt: Some("service-unavailable"),
    record: "refused: store unavailable",
};
/// The room was deleted or re-guarded while it was open.
const ROOM_CHANGED: Refused = Refused {
    prompt: None,
    record: "refused: room changed by an admin",
};

/// Wrong PINs before the caller is sent away.
const PIN_ATTEMPTS: u32 = 3;
/// Room-number attempts in the lobby.
const ROOM_ATTEMPTS: u32 = 3;
/// After `*`, the menu digit must follow within this time.
const MENU_TIMEOUT: Duration = Duration::from_secs(3);

impl CallRunner {
    /// The `conference` action: lobby if `room` is None, PIN if the room has one and
    /// `pin_prompt`, then the room until the caller leaves or the conference ends.
    pub async fn conference(&mut self, room: Option<String>, pin_prompt: bool) -> Result<(), Stop> {
        self.answer();
        let number = match room {
            Some(number) => number,
            None => match self.ask_room_number().await? {
                Some(number) => number,
                None => return self.goodbye().await,
            },
        };
        let lookup = number.clone();
        let looked_up = self
            .ctx
            .shared
            .store
            .run(move |store| store.room_get(&lookup))
            .await;
        // Whether the room has a PIN is only known from the store: when it cannot be read,
        // nobody gets in (fail closed), not even into a room that might have none.
        let stored = match looked_up {
            Ok(Ok(stored)) => stored,
            Ok(Err(err)) => {
                tracing::error!(room = %number, "room lookup failed, caller refused: {err}");
                return self.refuse(STORE_UNAVAILABLE).await;
            }
            Err(err) => {
                tracing::error!(room = %number, "room lookup did not finish, caller refused: {err}");
                return self.refuse(STORE_UNAVAILABLE).await;
            }
        };
        if stored.is_none() && self.ctx.shared.config.conference.require_precreated_rooms {
            self.play("unknown-room").await?;
            return self.goodbye().await;
        }
        let mut moderator = false;
        if let Some(room) = &stored
            && pin_prompt
            && (room.has_pin || room.has_moderator_pin)
        {
            match self.ask_pin(&number, room.has_pin).await? {
                Some(store::PinCheck::Moderator) => moderator = true,
                Some(_) => {}
                None => return self.goodbye().await,
            }
        }
        let admission = match self.ctx.shared.conferences.admit(
            &number,
            self.ctx.id,
            moderator,
            RoomTerms::of(stored.as_ref()),
            self.notices.clone(),
        ) {
            Ok(admission) => admission,
            Err(Refusal::Locked) => {
                self.play("room-locked").await?;
                return self.goodbye().await;
            }
            Err(Refusal::Full) => {
                self.play("room-full").await?;
                return self.goodbye().await;
            }
            Err(Refusal::Closing) => {
                tracing::info!(room = %number, "room changed by an admin while open; caller refused");
                self.play("conference-ended").await?;
                return self.refuse(ROOM_CHANGED).await;
            }
        };
        tracing::info!(room = %number, moderator, "joining conference");
        let result = self.in_room(&number, moderator, admission).await;
        // Leave whatever happened: hang-up, menu, or the conference ending.
        self.media(MediaCommand::LeaveRoom(self.ctx.id));
        if let Some(recording) = self.ctx.shared.conferences.leave(&number, self.ctx.id) {
            self.finish_recording(&number, recording);
        }
        self.ctx.shared.conferences.tell_others(
            &number,
            self.ctx.id,
            Notice::Announce("leave-tone"),
        );
        tracing::info!(room = %number, "left conference");
        result
    }

    async fn in_room(
        &mut self,
        number: &str,
        moderator: bool,
        admission: Admission,
    ) -> Result<(), Stop> {
        let mut muted = admission.muted_until_moderator;
        self.media(MediaCommand::JoinRoom(
            self.ctx.id,
            RoomJoin {
                room: number.to_string(),
                muted,
            },
        ));
        let participants = loop {
            match self.next_event().await? {
                Event::Media(MediaEvent::Joined { participants }) => break participants,
                Event::Media(MediaEvent::JoinFailed(reason)) => {
                    tracing::warn!(%reason, "media could not join the room");
                    self.play("room-full").await?;
                    return Ok(());
                }
                _ => {}
            }
        };
        self.ctx
            .shared
            .conferences
            .tell_others(number, self.ctx.id, Notice::Announce("join-tone"));
        if participants <= 1 {
            self.overlay("first-participant").await?;
        } else {
            self.announce_count(participants).await?;
        }
        if muted {
            self.overlay("wait-moderator").await?;
        }
        let mut star_at: Option<tokio::time::Instant> = None;
        let mut hand_raised = false;
        loop {
            let digit = match self.next_event().await? {
                Event::Digit(d) => d,
                Event::Notice(Notice::Ended) => {
                    self.overlay("conference-ended").await?;
                    return Ok(());
                }
                Event::Notice(Notice::Closed) => {
                    self.overlay("conference-ended").await?;
                    return Err(Stop::EndedByUs("room closed by an admin"));
                }
                Event::Notice(Notice::SetMuted(m)) => {
                    muted = m;
                    self.media(MediaCommand::SetMuted(self.ctx.id, m));
                    continue;
                }
                Event::Notice(Notice::Announce(name)) => {
                    self.start_overlay(name);
                    continue;
                }
                Event::Media(_) => continue,
            };
            tracing::debug!(%digit, "conference key");
            let starred = star_at.take().is_some_and(|at| at.elapsed() < MENU_TIMEOUT);
            if !starred {
                if digit == '*' {
                    star_at = Some(tokio::time::Instant::now());
                }
                continue;
            }
            let shared = self.ctx.shared.clone();
            let conferences = &shared.conferences;
            match digit {
                '6' => {
                    muted = !muted;
                    self.media(MediaCommand::SetMuted(self.ctx.id, muted));
                    conferences.with_room(number, |r| {
                        if let Some(m) = r.members.get_mut(&self.ctx.id) {
                            m.muted = muted;
                        }
                    });
                    self.start_overlay(if muted { "muted" } else { "unmuted" });
                }
                '#' => {
                    let count = conferences.count(number);
                    self.announce_count(count).await?;
                }
                '5' => {
                    hand_raised = !hand_raised;
                    conferences.with_room(number, |r| {
                        if let Some(m) = r.members.get_mut(&self.ctx.id) {
                            m.hand_raised = hand_raised;
                        }
                    });
                    self.start_overlay(if hand_raised {
                        "hand-raised"
                    } else {
                        "hand-lowered"
                    });
                    if hand_raised {
                        conferences.tell_moderators(number, Notice::Announce("hand-raised"));
                    }
                }
                '1' if moderator => {
                    let locked = conferences
                        .with_room(number, |r| {
                            r.locked = !r.locked;
                            r.locked
                        })
                        .unwrap_or(false);
                    self.start_overlay(if locked {
                        "room-locked"
                    } else {
                        "room-unlocked"
                    });
                }
                '7' if moderator => {
                    let others: Vec<LegId> = conferences
                        .with_room(number, |r| {
                            r.members
                                .iter_mut()
                                .filter(|(id, m)| **id != self.ctx.id && !m.moderator)
                                .map(|(id, m)| {
                                    m.muted = true;
                                    let _ = m
                                        .notices
                                        .send(CallEvent::Conference(Notice::SetMuted(true)));
                                    let _ = m
                                        .notices
                                        .send(CallEvent::Conference(Notice::Announce("muted")));
                                    *id
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    tracing::info!(muted = others.len(), "moderator muted all others");
                    self.start_overlay("all-muted");
                }
                '8' if moderator => {
                    conferences.tell_others(number, self.ctx.id, Notice::Ended);
                    self.overlay("conference-ended").await?;
                    return Ok(());
                }
                '9' if moderator => self.toggle_recording(number).await,
                _ => {}
            }
        }
    }

    /// "There are N participants": the number, then the words.
    async fn announce_count(&mut self, count: usize) -> Result<(), Stop> {
        let digit = format!("digit-{}", count.min(20));
        self.overlay(&digit).await?;
        self.overlay("participants-count").await
    }

    /// Lobby: asks for the room number until it gets one (up to three tries).
    async fn ask_room_number(&mut self) -> Result<Option<String>, Stop> {
        for _ in 0..ROOM_ATTEMPTS {
            self.play("enter-room").await?;
            if let Some(number) = self.collect_digits().await?
                && !number.is_empty()
            {
                return Ok(Some(number));
            }
        }
        Ok(None)
    }

    /// Asks for the PIN; three wrong ones end the call. `#` alone is a participant when the
    /// room has only a moderator PIN.
    async fn ask_pin(
        &mut self,
        number: &str,
        participant_pin: bool,
    ) -> Result<Option<store::PinCheck>, Stop> {
        for attempt in 1..=PIN_ATTEMPTS {
            self.play("enter-pin").await?;
            let digits = self.collect_digits().await?.unwrap_or_default();
            if digits.is_empty() && !participant_pin {
                return Ok(Some(store::PinCheck::Participant));
            }
            let room = number.to_string();
            // Argon2 costs tens of milliseconds: on the store thread, off the async ones.
            let check = match self
                .ctx
                .shared
                .store
                .run(move |store| store.room_check_pin(&room, &digits))
                .await
            {
                Ok(Ok(check)) => check,
                Ok(Err(err)) => {
                    tracing::error!(room = %number, "PIN check failed, caller refused: {err}");
                    self.refuse(STORE_UNAVAILABLE).await?;
                    return Ok(None);
                }
                Err(err) => {
                    tracing::error!(room = %number, "PIN check did not finish, caller refused: {err}");
                    self.refuse(STORE_UNAVAILABLE).await?;
                    return Ok(None);
                }
            };
            if check != store::PinCheck::Wrong {
                return Ok(Some(check));
            }
            tracing::info!(room = %number, attempt, "wrong PIN");
            self.play("wrong-pin").await?;
        }
        Ok(None)
    }

    async fn goodbye(&mut self) -> Result<(), Stop> {
        self.play("goodbye").await?;
        Ok(())
    }

    /// Tells the caller why (a prompt for the reason), says goodbye and hangs up: no later
    /// dialplan action runs for a caller refused for safety.
    async fn refuse(&mut self, reason: Refused) -> Result<(), Stop> {
        if let Some(prompt) = reason.prompt {
            self.play(prompt).await?;
        }
        self.goodbye().await?;
        Err(Stop::EndedByUs(reason.record))
    }

    async fn toggle_recording(&mut self, number: &str) {
        let shared = self.ctx.shared.clone();
        let conferences = &shared.conferences;
        let running = conferences
            .with_room(number, |r| r.recording.take())
            .flatten();
        if let Some(recording) = running {
            self.finish_recording(number, recording);
            conferences.tell_others(number, self.ctx.id, Notice::Announce("recording-stopped"));
            self.start_overlay("recording-stopped");
            return;
        }
        let dir = self.ctx.shared.config.data_dir.join("recordings");
        let stamp = jiff::Timestamp::now();
        let path = dir.join(format!("{number}-{}.wav", stamp.strftime("%Y%m%dT%H%M%SZ")));
        let (tx, rx) = crossbeam_channel::bounded::<RecordingFrame>(512);
        let (room, file) = (number.to_string(), path.clone());
        let started = self
            .ctx
            .shared
            .store
            .run(move |store| store.recording_start(&room, &file, stamp.as_millisecond()))
            .await
            .map_err(|err| err.to_string())
            .and_then(|started| started.map_err(|err| err.to_string()));
        // A recording the store does not know of could be neither listed nor deleted when
        // its retention ends: record only what is on the books.
        let id = match started {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::error!(room = %number, "recording not started, the store refused it: {err}");
                self.start_overlay("recording-failed");
                return;
            }
        };
        let shared = self.ctx.shared.clone();
        let writer_path = path.clone();
        let spawned = std::thread::Builder::new()
            .name("recording".into())
            .spawn(move || write_recording(writer_path, rx, id, shared));
        if let Err(err) = spawned {
            tracing::error!("recording not started: {err}");
            return;
        }
        conferences.with_room(number, |r| r.recording = Some(ActiveRecording { id }));
        self.media(MediaCommand::SetRecording(
            number.to_string(),
            Some(RecordingSink { frames: tx }),
        ));
        tracing::info!(room = %number, path = %path.display(), "recording started");
        conferences.tell_others(number, self.ctx.id, Notice::Announce("recording-started"));
        self.start_overlay("recording-started");
    }

    fn finish_recording(&self, number: &str, recording: ActiveRecording) {
        // Dropping the worker's sink ends the writer thread, which finishes the file.
        self.media(MediaCommand::SetRecording(number.to_string(), None));
        tracing::info!(room = %number, id = ?recording.id, "recording stopped");
    }
}

/// Events a conference participant waits for.
pub enum Event {
    /// A DTMF digit (RFC 4733 or INFO).
    Digit(char),
    /// Something from the room's registry.
    Notice(Notice),
    /// Something from the media session.
    Media(MediaEvent),
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
