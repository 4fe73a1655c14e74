//! A call task: runs the dialplan's actions for one call, one `tracing` span per call.
//!
//! It owns no SIP state: it asks the core to answer, reject or hang up, tells the call's media
//! session what to play, and waits for media events (prompt ended, DTMF) and the hangup.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use dialplan::{Action, Route};
use media::wav::PromptPlayer;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::call_event::{CallEvent, Notice};
use crate::core_command::CoreCommand;
use crate::ids::LegId;
use crate::media_worker::{MediaCommand, MediaEvent, MediaMode};
use crate::shared::Shared;

mod conference;
mod dial;

use conference::Event;

/// What a call task knows about its call.
pub struct CallContext {
    /// Core's call id (also the media session id).
    pub id: LegId,
    /// SIP Call-ID, for the span.
    pub call_id: String,
    /// Caller (From user).
    pub caller: String,
    /// Dialled number.
    pub callee: String,
    /// Prompt language of the dialplan.
    pub language: String,
    /// Server-wide state.
    pub shared: Arc<Shared>,
    /// Commands to the SIP core.
    pub core: mpsc::UnboundedSender<CoreCommand>,
    /// Audio sample rate of the negotiated codec.
    pub codec_rate: u32,
    /// A sender into this call's own event queue, for the conference registry.
    pub notices: mpsc::UnboundedSender<CallEvent>,
}

/// Why an action sequence stopped early.
pub enum Stop {
    /// The other side hung up (or the core ended the call).
    HungUp,
    /// We end the call for this reason (the call record's words); the core sends BYE, or 480
    /// when unanswered, once the call task returns.
    EndedByUs(&'static str),
}

/// Runs one call's actions; conference behaviour is in `conference.rs`.
pub struct CallRunner {
    pub(crate) ctx: CallContext,
    pub(crate) notices: mpsc::UnboundedSender<CallEvent>,
    events: mpsc::UnboundedReceiver<CallEvent>,
    media: mpsc::UnboundedReceiver<MediaEvent>,
    answered: bool,
    /// Digits keyed while a prompt played (type-ahead), oldest first.
    pending_digits: VecDeque<char>,
}

/// Runs the call to its end.
pub async fn run(
    ctx: CallContext,
    route: Route,
    events: mpsc::UnboundedReceiver<CallEvent>,
    media: mpsc::UnboundedReceiver<MediaEvent>,
) {
    let span = tracing::info_span!("call", call_id = %ctx.call_id, from = %ctx.caller, to = %ctx.callee, rule = %route.rule_name);
    let core = ctx.core.clone();
    let id = ctx.id;
    let notices = ctx.notices.clone();
    let mut runner = CallRunner {
        ctx,
        notices,
        events,
        media,
        answered: false,
        pending_digits: VecDeque::new(),
    };
    let reason = async {
        match runner.run_actions(&route.actions).await {
            Ok(()) => {
                // Falling off the end of the action list hangs up, as in Asterisk.
                if runner.answered {
                    runner.send(CoreCommand::Hangup(id));
                } else {
                    runner.send(CoreCommand::Reject(id, 480));
                }
                "dialplan finished".to_string()
            }
            Err(Stop::HungUp) => "caller hung up".to_string(),
            Err(Stop::EndedByUs(reason)) => reason.to_string(),
        }
    }
    .instrument(span)
    .await;
    let _ = core.send(CoreCommand::Finished(id, reason));
}

impl CallRunner {
    fn send(&self, command: CoreCommand) {
        let _ = self.ctx.core.send(command);
    }

    pub(crate) fn media(&self, command: MediaCommand) {
        self.ctx.shared.media.send(self.ctx.id, command);
    }

    pub(crate) fn answer(&mut self) {
        if !self.answered {
            self.send(CoreCommand::Answer(self.ctx.id));
            self.answered = true;
        }
    }

    async fn run_actions(&mut self, actions: &[Action]) -> Result<(), Stop> {
        for action in actions {
            tracing::debug!(?action, "action");
            match action {
                Action::Answer => self.answer(),
                Action::Play { sound } => {
                    self.answer();
                    self.play(sound).await?;
                }
                Action::Echo => {
                    self.answer();
                    self.media(MediaCommand::SetMode(self.ctx.id, MediaMode::Echo));
                    self.wait_for(None).await?;
                }
                Action::Wait { seconds } => {
                    self.wait_for(Some(Duration::from_secs(u64::from(*seconds))))
                        .await?;
                }
                Action::Dial { target, timeout_s } => self.dial(target, *timeout_s).await?,
                Action::Conference { room, pin_prompt } => {
                    self.conference(room.clone(), *pin_prompt).await?;
                }
                Action::Hangup { cause } => {
                    if self.answered {
                        self.send(CoreCommand::Hangup(self.ctx.id));
                    } else {
                        self.send(CoreCommand::Reject(self.ctx.id, *cause));
                    }
                    return Err(Stop::HungUp);
                }
                other => {
                    // Parsed and checked today; the machinery (dial, menu, ...) arrives with
                    // later issues. Refuse honestly rather than pretend.
                    tracing::warn!(?other, "dialplan action not available yet; refusing call");
                    if self.answered {
                        self.send(CoreCommand::Hangup(self.ctx.id));
                    } else {
                        self.send(CoreCommand::Reject(self.ctx.id, 501));
                    }
                    return Err(Stop::HungUp);
                }
            }
        }
        Ok(())
    }

    fn player(&self, sound: &str) -> Option<PromptPlayer> {
        let samples = self.ctx.shared.sounds.get(&self.ctx.language, sound);
        let Some(samples) = samples else {
            tracing::warn!(sound, "prompt missing; skipped");
            return None;
        };
        match PromptPlayer::new(samples, self.ctx.codec_rate) {
            Ok(player) => Some(player),
            Err(err) => {
                tracing::warn!(sound, "prompt cannot be played at this codec's rate: {err}");
                None
            }
        }
    }

    /// The next event of any source; DTMF from either path becomes `Event::Digit`.
    pub(crate) async fn next_event(&mut self) -> Result<Event, Stop> {
        if let Some(digit) = self.pending_digits.pop_front() {
            return Ok(Event::Digit(digit));
        }
        loop {
            return tokio::select! {
                event = self.events.recv() => match event {
                    Some(CallEvent::Hangup) | None => Err(Stop::HungUp),
                    Some(CallEvent::Dtmf(digit)) => Ok(Event::Digit(digit)),
                    Some(CallEvent::Conference(notice)) => Ok(Event::Notice(notice)),
                    // A late outcome of a `dial` that gave up: nothing to do with it now.
                    Some(CallEvent::Dial(_)) => continue,
                },
                event = self.media.recv() => match event {
                    Some(MediaEvent::Dtmf(digit)) => Ok(Event::Digit(digit)),
                    Some(other) => Ok(Event::Media(other)),
                    None => Err(Stop::HungUp),
                },
            };
        }
    }

    /// Plays a prompt to its end (two-party media, before joining a room). A key press
    /// interrupts it (barge-in) and is kept for the next digit collection.
    pub(crate) async fn play(&mut self, sound: &str) -> Result<(), Stop> {
        let Some(player) = self.player(sound) else {
            return Ok(());
        };
        self.media(MediaCommand::SetMode(self.ctx.id, MediaMode::Play(player)));
        loop {
            match self.next_event().await? {
                Event::Media(MediaEvent::PlayFinished) => return Ok(()),
                Event::Digit(digit) => {
                    self.pending_digits.push_back(digit);
                    self.media(MediaCommand::SetMode(self.ctx.id, MediaMode::Silence));
                    return Ok(());
                }
                _ => {}
            }
        }
    }

    /// Plays a prompt on top of the room's audio and waits until it ends; keys pressed
    /// meanwhile are kept.
    pub(crate) async fn overlay(&mut self, sound: &str) -> Result<(), Stop> {
        let Some(player) = self.player(sound) else {
            return Ok(());
        };
        self.media(MediaCommand::Overlay(self.ctx.id, player));
        tracing::debug!(sound, "overlay started");
        let mut kept = Vec::new();
        let result = loop {
            match self.next_event().await {
                Ok(Event::Media(MediaEvent::OverlayFinished)) => {
                    tracing::debug!(sound, "overlay finished");
                    break Ok(());
                }
                Ok(Event::Digit(d)) => kept.push(d),
                Ok(Event::Notice(notice @ (Notice::Ended | Notice::Closed))) => {
                    self.notices.send(CallEvent::Conference(notice)).ok();
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
    pub(crate) fn start_overlay(&mut self, sound: &str) {
        if let Some(player) = self.player(sound) {
            self.media(MediaCommand::Overlay(self.ctx.id, player));
        }
    }

    /// Collects digits up to `#` (not included); `None` when the caller keys nothing in
    /// time. Stops at the limit so a stuck key cannot grow a string forever.
    pub(crate) async fn collect_digits(&mut self) -> Result<Option<String>, Stop> {
        let mut digits = String::new();
        loop {
            let event = tokio::time::timeout(DIGIT_TIMEOUT, self.next_event()).await;
            match event {
                Err(_) => return Ok((!digits.is_empty()).then_some(digits)),
                Ok(Err(stop)) => return Err(stop),
                Ok(Ok(Event::Digit('#'))) => return Ok(Some(digits)),
                Ok(Ok(Event::Digit(d))) if d.is_ascii_digit() => {
                    digits.push(d);
                    if digits.len() >= MAX_DIGITS {
                        return Ok(Some(digits));
                    }
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Waits for `limit` (or forever), ending early on hangup.
    async fn wait_for(&mut self, limit: Option<Duration>) -> Result<(), Stop> {
        let sleep = async {
            match limit {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Ok(()),
                event = self.next_event() => {
                    if let Event::Digit(digit) = event? {
                        tracing::debug!(%digit, "DTMF");
                    }
                }
            }
        }
    }
}

/// How long digit collection waits for the next key.
const DIGIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most digits a room number or PIN may have.
const MAX_DIGITS: usize = 10;
