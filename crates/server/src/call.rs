//! A call task: runs the dialplan's actions for one call, one `tracing` span per call.
//!
//! It owns no SIP state: it asks the core to answer, reject or hang up, tells the call's media
//! session what to play, and waits for media events (prompt ended, DTMF) and the hangup.

use std::sync::Arc;
use std::time::Duration;

use dialplan::{Action, Route};
use media::wav::PromptPlayer;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::media_worker::{MediaCommand, MediaEvent, MediaMode};
use crate::sip_core::{CoreCommand, Shared};

/// Signalling events the core sends to a call task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The call is over (BYE, CANCEL, timeout, or our own hangup).
    Hangup,
    /// A DTMF digit sent as SIP INFO.
    Dtmf(char),
}

/// What a call task knows about its call.
pub struct CallContext {
    /// Core's call id (also the media session id).
    pub id: u64,
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
}

/// Why an action sequence stopped early.
enum Stop {
    /// The other side hung up (or the core ended the call).
    HungUp,
}

struct CallRunner {
    ctx: CallContext,
    events: mpsc::UnboundedReceiver<CallEvent>,
    media: mpsc::UnboundedReceiver<MediaEvent>,
    answered: bool,
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
    let mut runner = CallRunner {
        ctx,
        events,
        media,
        answered: false,
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

    fn media(&self, command: MediaCommand) {
        self.ctx.shared.media.send(self.ctx.id, command);
    }

    fn answer(&mut self) {
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
                Action::Hangup { cause } => {
                    if self.answered {
                        self.send(CoreCommand::Hangup(self.ctx.id));
                    } else {
                        self.send(CoreCommand::Reject(self.ctx.id, *cause));
                    }
                    return Err(Stop::HungUp);
                }
                other => {
                    // Parsed and checked today; the machinery (conference, dial, menu, ...)
                    // arrives with later issues. Refuse honestly rather than pretend.
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

    /// Plays a prompt to its end (or until hangup).
    async fn play(&mut self, sound: &str) -> Result<(), Stop> {
        let Some(samples) = self.ctx.shared.sounds.get(&self.ctx.language, sound) else {
            tracing::warn!(sound, "prompt missing; skipped");
            return Ok(());
        };
        let player = match PromptPlayer::new(samples, self.ctx.codec_rate) {
            Ok(player) => player,
            Err(err) => {
                tracing::warn!(sound, "prompt cannot be played at this codec's rate: {err}");
                return Ok(());
            }
        };
        self.media(MediaCommand::SetMode(self.ctx.id, MediaMode::Play(player)));
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(CallEvent::Hangup) | None => return Err(Stop::HungUp),
                    Some(CallEvent::Dtmf(_)) => {}
                },
                event = self.media.recv() => match event {
                    Some(MediaEvent::PlayFinished) => return Ok(()),
                    Some(MediaEvent::Dtmf(_)) => {}
                    None => return Err(Stop::HungUp),
                },
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
                event = self.events.recv() => match event {
                    Some(CallEvent::Hangup) | None => return Err(Stop::HungUp),
                    Some(CallEvent::Dtmf(digit)) => tracing::debug!(%digit, "DTMF (INFO)"),
                },
                event = self.media.recv() => match event {
                    Some(MediaEvent::Dtmf(digit)) => tracing::debug!(%digit, "DTMF (RFC 4733)"),
                    Some(MediaEvent::PlayFinished) => {}
                    None => return Err(Stop::HungUp),
                },
            }
        }
    }
}
