//! The `conference` action as callers meet it: the lobby (room number and PIN by DTMF),
//! admission (locked, full, wait for the moderator), announcements, the in-call DTMF menu
//! and recording.

use std::time::{Duration, Instant};

use crate::call::actions::dial::Rung;
use crate::call::logic::{CallLogic, Event, Stop};
use crate::call::{MediaAction, Question, Reply, RoomAction};
use crate::call_event::Notice;
use crate::conference::{Refusal, RoomTerms};
use crate::media_worker::MediaEvent;

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
/// How long the room's node may take to answer a caller the lobby hands on (it answers at
/// once unless it is failing).
const HAND_ON_RING_S: u32 = 10;
/// After `*`, the menu digit must follow within this time.
pub(in crate::call) const MENU_TIMEOUT: Duration = Duration::from_secs(3);

impl CallLogic {
    /// The `conference` action: lobby if `room` is None, PIN if the room has one and
    /// `pin_prompt`, then the room until the caller leaves or the conference ends.
    pub(super) async fn conference(
        &mut self,
        room: Option<String>,
        pin_prompt: bool,
    ) -> Result<(), Stop> {
        self.answer();
        let default_domain = crate::tenants::is_default(&self.tenant);
        let number = match room {
            Some(number) => number,
            None => match self.ask_room_number().await? {
                // The proxy's dispatcher knows the default domain's room numbers only: a
                // tenant's lobby callers meet on the node that answered.
                Some(number) => match self.pool_proxy.filter(|_| default_domain) {
                    Some(proxy) => return self.hand_on_to_room_node(&number, proxy).await,
                    None => number,
                },
                None => return self.goodbye().await,
            },
        };
        // A tenant's room 1234 is another room than the default domain's or another
        // tenant's 1234, everywhere a room is named (store, live rooms, recordings).
        let number = crate::tenants::room_key(&self.tenant, &number);
        // Whether the room has a PIN is only known from the store: when it cannot be read,
        // nobody gets in (fail closed), not even into a room that might have none.
        let stored = match self.io.ask(Question::RoomGet(number.clone())).await {
            Reply::Room(Ok(stored)) => stored,
            Reply::Room(Err(err)) => {
                tracing::error!(room = %number, "room lookup failed, caller refused: {err}");
                return self.refuse(STORE_UNAVAILABLE).await;
            }
            other => {
                tracing::error!(room = %number, ?other, "room lookup answered out of turn, caller refused");
                return self.refuse(STORE_UNAVAILABLE).await;
            }
        };
        if stored.is_none() && self.require_precreated_rooms {
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
        let admission = self
            .io
            .ask(Question::Admit {
                room: number.clone(),
                moderator,
                terms: RoomTerms::of(stored.as_ref()),
            })
            .await;
        let muted = match admission {
            Reply::Admission(Ok(muted_until_moderator)) => muted_until_moderator,
            Reply::Admission(Err(Refusal::Locked)) => {
                self.play("room-locked").await?;
                return self.goodbye().await;
            }
            Reply::Admission(Err(Refusal::Full)) => {
                self.play("room-full").await?;
                return self.goodbye().await;
            }
            // `Closing`: the room changed under the caller's lookup.
            _ => {
                tracing::info!(room = %number, "room changed by an admin while open; caller refused");
                self.play("conference-ended").await?;
                return self.refuse(ROOM_CHANGED).await;
            }
        };
        tracing::info!(room = %number, moderator, "joining conference");
        let result = self.in_room(&number, moderator, muted).await;
        // Leave whatever happened: hang-up, menu, or the conference ending.
        self.media(MediaAction::LeaveRoom);
        if let Reply::Flag(true) = self.io.ask(Question::Leave(number.clone())).await {
            self.stop_recording(&number);
        }
        self.tell_others(&number, Notice::Announce("leave-tone"));
        tracing::info!(room = %number, "left conference");
        result
    }

    /// In a pool, the lobby's caller keyed `number`: the room may be open on another node,
    /// so the call goes on to `8<number>` through the proxy, which sends it to the room's
    /// node (the same one every direct caller of the room reaches), and is relayed from here.
    /// That node asks for the PIN; the caller's keys pass through.
    async fn hand_on_to_room_node(
        &mut self,
        number: &str,
        proxy: std::net::SocketAddr,
    ) -> Result<(), Stop> {
        let target = dialplan::DialTarget::Uri(format!("sip:8{number}@{proxy}"));
        tracing::info!(room = %number, %target, "lobby: handing the caller on to the room's node");
        let place = self.place_question(&target, false);
        match self.ring(place, &target, HAND_ON_RING_S).await? {
            Rung::Answered(room_node) => self.talk(room_node).await,
            Rung::Unanswered(status) => {
                tracing::warn!(room = %number, status, "lobby: the room's node did not take the caller");
                self.play("service-unavailable").await?;
                self.goodbye().await
            }
        }
    }

    async fn in_room(&mut self, number: &str, moderator: bool, muted: bool) -> Result<(), Stop> {
        let mut muted = muted;
        self.media(MediaAction::JoinRoom {
            room: number.to_string(),
            muted,
        });
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
        self.tell_others(number, Notice::Announce("join-tone"));
        if participants <= 1 {
            self.overlay("first-participant").await?;
        } else {
            self.announce_count(participants).await?;
        }
        if muted {
            self.overlay("wait-moderator").await?;
        }
        let mut star_at: Option<Instant> = None;
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
                Event::Notice(Notice::Removed) => {
                    self.overlay("conference-ended").await?;
                    return Err(Stop::EndedByUs("removed from the room by a moderator"));
                }
                Event::Notice(Notice::SetMuted(m)) => {
                    muted = m;
                    self.media(MediaAction::SetMuted(m));
                    continue;
                }
                Event::Notice(Notice::Announce(name)) => {
                    self.start_overlay(name).await;
                    continue;
                }
                Event::Media(_) => continue,
            };
            tracing::debug!(%digit, "conference key");
            let now = self.io.now();
            let starred = star_at
                .take()
                .is_some_and(|at| now.saturating_duration_since(at) < MENU_TIMEOUT);
            if !starred {
                if digit == '*' {
                    star_at = Some(now);
                }
                continue;
            }
            let room = number.to_string();
            match digit {
                '6' => {
                    muted = !muted;
                    self.media(MediaAction::SetMuted(muted));
                    self.room(RoomAction::SetMuted { room, muted });
                    self.start_overlay(if muted { "muted" } else { "unmuted" })
                        .await;
                }
                '#' => {
                    let count = match self.io.ask(Question::Count(room)).await {
                        Reply::Count(count) => count,
                        _ => 0,
                    };
                    self.announce_count(count).await?;
                }
                '5' => {
                    hand_raised = !hand_raised;
                    self.room(RoomAction::SetHandRaised {
                        room: room.clone(),
                        raised: hand_raised,
                    });
                    self.start_overlay(if hand_raised {
                        "hand-raised"
                    } else {
                        "hand-lowered"
                    })
                    .await;
                    if hand_raised {
                        self.room(RoomAction::TellModerators {
                            room,
                            notice: Notice::Announce("hand-raised"),
                        });
                    }
                }
                '1' if moderator => {
                    let locked = matches!(
                        self.io.ask(Question::ToggleLock(room)).await,
                        Reply::Flag(true)
                    );
                    self.start_overlay(if locked {
                        "room-locked"
                    } else {
                        "room-unlocked"
                    })
                    .await;
                }
                '7' if moderator => {
                    let muted_others = match self.io.ask(Question::MuteOthers(room)).await {
                        Reply::Count(count) => count,
                        _ => 0,
                    };
                    tracing::info!(muted = muted_others, "moderator muted all others");
                    self.start_overlay("all-muted").await;
                }
                '8' if moderator => {
                    self.tell_others(number, Notice::Ended);
                    self.overlay("conference-ended").await?;
                    return Ok(());
                }
                '9' if moderator => self.toggle_recording(number).await,
                _ => {}
            }
        }
    }

    fn room(&self, action: RoomAction) {
        self.io.emit(crate::call::Output::Room(action));
    }

    fn tell_others(&self, number: &str, notice: Notice) {
        self.room(RoomAction::TellOthers {
            room: number.to_string(),
            notice,
        });
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
            let question = Question::CheckPin {
                room: number.to_string(),
                digits,
            };
            let check = match self.io.ask(question).await {
                Reply::Pin(Ok(check)) => check,
                Reply::Pin(Err(err)) => {
                    tracing::error!(room = %number, "PIN check failed, caller refused: {err}");
                    self.refuse(STORE_UNAVAILABLE).await?;
                    return Ok(None);
                }
                other => {
                    tracing::error!(room = %number, ?other, "PIN check answered out of turn, caller refused");
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
        let running = self
            .io
            .ask(Question::TakeRecording(number.to_string()))
            .await;
        if running == Reply::Flag(true) {
            self.stop_recording(number);
            self.tell_others(number, Notice::Announce("recording-stopped"));
            self.start_overlay("recording-stopped").await;
            return;
        }
        // A recording the store does not know of could be neither listed nor deleted when
        // its retention ends: the effect records only what is on the books.
        match self
            .io
            .ask(Question::StartRecording(number.to_string()))
            .await
        {
            Reply::Done(Ok(())) => {
                tracing::info!(room = %number, "recording started");
                self.tell_others(number, Notice::Announce("recording-started"));
                self.start_overlay("recording-started").await;
            }
            other => {
                tracing::error!(room = %number, ?other, "recording not started");
                self.start_overlay("recording-failed").await;
            }
        }
    }

    fn stop_recording(&self, number: &str) {
        // Dropping the worker's sink ends the writer thread, which finishes the file.
        self.media(MediaAction::StopRecording {
            room: number.to_string(),
        });
        tracing::info!(room = %number, "recording stopped");
    }
}
