//! The `dial` action: ring a user's phones or a SIP URI (call control forks and places
//! the legs), then stay connected until one side hangs up, or go on to the next action
//! when nobody answers.

use std::time::Duration;

use crate::call_event::{CallEvent, DialOutcome};
use crate::core_command::CoreCommand;
use crate::media_worker::MediaCommand;

use super::{CallRunner, Event, Stop};

impl CallRunner {
    /// The `dial` action. Returns when nobody answered (the dialplan goes on); a connected
    /// call ends the task through `Stop` when either side hangs up.
    pub(super) async fn dial(
        &mut self,
        target: &dialplan::DialTarget,
        timeout_s: u32,
    ) -> Result<(), Stop> {
        match self.ring(target, timeout_s).await? {
            DialOutcome::Answered(callee) => {
                // Connected: the call lasts until one side hangs up. The caller's keys
                // reach the callee as RFC 4733 events (the media worker passes them on as
                // they came when it relays the call, and ignores this then).
                self.answered = true;
                loop {
                    if let Event::Digit(digit) = self.next_event().await? {
                        tracing::debug!(%digit, "DTMF relayed to the callee");
                        self.ctx
                            .shared
                            .media
                            .send(callee, MediaCommand::SendDtmf(callee, digit));
                    }
                }
            }
            DialOutcome::NotAnswered(status) => {
                tracing::info!(%target, status, "dial: not answered; next action");
                Ok(())
            }
        }
    }

    /// Rings `target` for up to `timeout_s` seconds.
    async fn ring(
        &mut self,
        target: &dialplan::DialTarget,
        timeout_s: u32,
    ) -> Result<DialOutcome, Stop> {
        self.send(CoreCommand::Dial(self.ctx.id, target.clone()));
        let ring_until = tokio::time::Instant::now() + Duration::from_secs(u64::from(timeout_s));
        let mut gave_up = false;
        loop {
            let event = if gave_up {
                // Call control decides: an answer may have crossed our giving up.
                Ok(self.events.recv().await)
            } else {
                tokio::time::timeout_at(ring_until, self.events.recv()).await
            };
            match event {
                Err(_) => {
                    self.send(CoreCommand::CancelDial(self.ctx.id));
                    gave_up = true;
                }
                Ok(Some(CallEvent::Dial(outcome))) => return Ok(outcome),
                Ok(Some(CallEvent::Hangup) | None) => return Err(Stop::HungUp),
                // Keys pressed while it rings are kept for what follows.
                Ok(Some(CallEvent::Dtmf(digit))) => self.pending_digits.push_back(digit),
                Ok(Some(CallEvent::Conference(_))) => {}
            }
        }
    }
}
