//! The call's logic and the steps its actions share: answering, prompts with barge-in,
//! digit collection, waiting. Time and events come from the port only (see `port.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dialplan::Route;

use crate::call_event::Notice;
use crate::media_worker::MediaEvent;

use super::port::Io;
use super::{CalleeEvent, CallerId, Input, MediaAction, Output, Question, Reply, SipAction};

/// How long digit collection waits for the next key.
pub(super) const DIGIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most digits a room number or PIN may have.
const MAX_DIGITS: usize = 10;

/// Why an action sequence stopped early.
pub(super) enum Stop {
    /// The caller hung up (or the core ended the call).
    HungUp,
    /// We end the call for this reason (the call record's words); call control sends BYE,
    /// or 480 when unanswered.
    EndedByUs(&'static str),
}

/// What an action waits for, with key presses from either path as `Digit`.
pub(super) enum Event {
    /// A DTMF digit (RFC 4733 or INFO).
    Digit(char),
    /// Something from the room's registry.
    Notice(Notice),
    /// Something from the media session.
    Media(MediaEvent),
}

/// The running actions of one call.
pub(super) struct CallLogic {
    pub(super) io: Io,
    pub(super) answered: bool,
    pub(super) require_precreated_rooms: bool,
    /// Digits keyed while a prompt played or a phone rang (type-ahead), oldest first.
    pub(super) pending_digits: VecDeque<char>,
    /// The caller ID the rule's `set` gave the calls it places from then on.
    pub(super) caller_id: CallerId,
    /// The user whose forwarding or follow-me the call follows now (their permissions
    /// apply to calls out, and calls out name them as diverting).
    pub(super) diverted_by: Option<String>,
    /// Users whose forwarding the call has followed, in order: a user met twice is a loop.
    pub(super) diverted_through: Vec<String>,
    /// The final response for a caller nobody answered when the actions run out: 480, or
    /// 486 when the last user dialled was busy.
    pub(super) unanswered_status: u16,
    /// Longest voicemail message (`[voicemail] max-seconds`).
    pub(super) voicemail_max: Duration,
    /// A ring group member's turn is ringing (the group and the member): a forwarding's route
    /// runs only up to its first `dial`, so that route's own ending (a hangup, a prompt) does
    /// not end the group's call; the next member and the group's fallback come after it. Whoever
    /// answers on the way counts as the member's answer.
    pub(super) group_turn: Option<GroupTurn>,
    /// `[pool] proxy`: the lobby hands callers on to their room's node through it.
    pub(super) pool_proxy: Option<std::net::SocketAddr>,
    /// The domain the call belongs to, whose rooms it joins.
    pub(super) tenant: String,
}

/// Whose turn in which ring group is ringing (see [`CallLogic::group_turn`]).
#[derive(Debug, Clone)]
pub(super) struct GroupTurn {
    /// The group's name.
    pub(super) group: String,
    /// The member.
    pub(super) member: String,
}

impl CallLogic {
    pub(super) fn new(io: Io, require_precreated_rooms: bool) -> Self {
        Self {
            io,
            answered: false,
            require_precreated_rooms,
            pending_digits: VecDeque::new(),
            caller_id: CallerId::default(),
            diverted_by: None,
            diverted_through: Vec::new(),
            unanswered_status: 480,
            group_turn: None,
            voicemail_max: Duration::from_secs(120),
            pool_proxy: None,
            tenant: store::DEFAULT_DOMAIN.to_owned(),
        }
    }

    /// Runs the route to its end and says why it ended.
    pub(super) async fn run(mut self, route: Route) {
        let reason = match self.run_actions(&route.actions).await {
            Ok(()) => {
                // Falling off the end of the action list hangs up, as in Asterisk.
                self.sip(if self.answered {
                    SipAction::Hangup
                } else {
                    SipAction::Reject(self.unanswered_status)
                });
                "dialplan finished"
            }
            Err(Stop::HungUp) => "caller hung up",
            Err(Stop::EndedByUs(reason)) => reason,
        };
        self.io.emit(Output::Finished(reason.to_string()));
    }

    pub(super) fn sip(&self, action: SipAction) {
        self.io.emit(Output::Sip(action));
    }

    /// Notes `what` happened in the call record (and the call's log).
    pub(super) fn note(&self, what: String) {
        self.io.emit(Output::Note(what));
    }

    pub(super) fn media(&self, action: MediaAction) {
        self.io.emit(Output::Media(action));
    }

    pub(super) fn answer(&mut self) {
        if !self.answered {
            self.sip(SipAction::Answer);
            self.answered = true;
        }
    }

    /// Asks whether a prompt could be started.
    async fn started(&self, question: Question) -> bool {
        matches!(self.io.ask(question).await, Reply::Started(true))
    }

    /// The next input, type-ahead digits first; `None` once `deadline` passed.
    pub(super) async fn next_input(&mut self, deadline: Option<Instant>) -> Option<Input> {
        if let Some(digit) = self.pending_digits.pop_front() {
            return Some(Input::Digit(digit));
        }
        self.io.next(deadline).await
    }

    /// The next event for an action before `deadline`: `Ok(None)` when it passed.
    pub(super) async fn next_event_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Event>, Stop> {
        loop {
            return match self.next_input(deadline).await {
                None => Ok(None),
                Some(Input::Hangup) => Err(Stop::HungUp),
                Some(Input::Digit(digit)) => Ok(Some(Event::Digit(digit))),
                Some(Input::Notice(notice)) => Ok(Some(Event::Notice(notice))),
                Some(Input::Media(event)) => Ok(Some(Event::Media(event))),
                Some(Input::Callee(event)) => {
                    self.late_callee(event);
                    continue;
                }
            };
        }
    }

    /// A word about a leg a finished `dial` rang: one that answers now is hung up, the
    /// rest needs nothing.
    pub(super) fn late_callee(&self, event: CalleeEvent) {
        match event {
            CalleeEvent::Answered(leg) => self.sip(SipAction::Cancel {
                leg,
                reason: "answered too late",
            }),
            // A failover placed while the caller went on: nobody waits for it.
            CalleeEvent::Replaced { new, .. } => self.sip(SipAction::Cancel {
                leg: new,
                reason: "no longer wanted",
            }),
            // A pickup only takes calls that ring, so one cannot come after the ringing.
            CalleeEvent::Ringing(_)
            | CalleeEvent::Ended { .. }
            | CalleeEvent::Transferred { .. }
            | CalleeEvent::PickedUp { .. } => {}
        }
    }

    /// The next event for an action.
    pub(super) async fn next_event(&mut self) -> Result<Event, Stop> {
        loop {
            if let Some(event) = self.next_event_until(None).await? {
                return Ok(event);
            }
        }
    }

    /// Plays a prompt to its end (two-party media, before joining a room). A key press
    /// interrupts it (barge-in) and is kept for the next digit collection.
    pub(super) async fn play(&mut self, sound: &str) -> Result<(), Stop> {
        if !self.started(Question::Play(sound.to_string())).await {
            return Ok(());
        }
        self.until_played().await
    }

    /// Waits for the playing sound to end; a key press interrupts it (barge-in) and is kept
    /// for the next digit collection.
    pub(super) async fn until_played(&mut self) -> Result<(), Stop> {
        loop {
            match self.next_event().await? {
                Event::Media(MediaEvent::PlayFinished) => return Ok(()),
                Event::Digit(digit) => {
                    self.pending_digits.push_back(digit);
                    self.media(MediaAction::Silence);
                    return Ok(());
                }
                _ => {}
            }
        }
    }

    /// Plays a prompt on top of the room's audio and waits until it ends; keys pressed
    /// meanwhile are kept.
    pub(super) async fn overlay(&mut self, sound: &str) -> Result<(), Stop> {
        if !self.started(Question::Overlay(sound.to_string())).await {
            return Ok(());
        }
        tracing::debug!(sound, "overlay started");
        let mut kept = Vec::new();
        let result = loop {
            match self.next_event().await {
                Ok(Event::Media(MediaEvent::OverlayFinished)) => {
                    tracing::debug!(sound, "overlay finished");
                    break Ok(());
                }
                Ok(Event::Digit(d)) => kept.push(d),
                Ok(Event::Notice(notice @ (Notice::Ended | Notice::Closed | Notice::Removed))) => {
                    // For the room loop, once this prompt is cut short.
                    self.io.requeue(Input::Notice(notice));
                    break Ok(());
                }
                Ok(_) => {}
                Err(stop) => break Err(stop),
            }
        };
        self.pending_digits.extend(kept);
        result
    }

    /// Starts a prompt on top of the room's audio without waiting for it.
    pub(super) async fn start_overlay(&mut self, sound: &str) {
        self.started(Question::Overlay(sound.to_string())).await;
    }

    /// Collects digits up to `#` (not included); `None` when the caller keys nothing in
    /// time. Stops at the limit so a stuck key cannot grow a string forever.
    pub(super) async fn collect_digits(&mut self) -> Result<Option<String>, Stop> {
        let mut digits = String::new();
        loop {
            let deadline = self.io.now() + DIGIT_TIMEOUT;
            match self.next_event_until(Some(deadline)).await? {
                None => return Ok((!digits.is_empty()).then_some(digits)),
                Some(Event::Digit('#')) => return Ok(Some(digits)),
                Some(Event::Digit(d)) if d.is_ascii_digit() => {
                    digits.push(d);
                    if digits.len() >= MAX_DIGITS {
                        return Ok(Some(digits));
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// Waits for `limit` (or forever), ending early on hangup.
    pub(super) async fn wait_for(&mut self, limit: Option<Duration>) -> Result<(), Stop> {
        let deadline = limit.map(|limit| self.io.now() + limit);
        loop {
            match self.next_event_until(deadline).await? {
                None => return Ok(()),
                Some(Event::Digit(digit)) => tracing::debug!(%digit, "DTMF"),
                Some(_) => {}
            }
        }
    }
}
