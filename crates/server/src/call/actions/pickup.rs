//! The `pickup` action: take a call that rings at a colleague's phone (directed, `**101`)
//! or at any member of the caller's pickup groups (`*8`). Call control finds the ringing
//! call, answers both callers and connects them; the phones that rang stop (the picked-up
//! call's own `dial` cancels them). Then the two talk until one hangs up.

use crate::call::logic::{CallLogic, Stop};
use crate::call::{PickupRefusal, Question, Reply, SipAction};

/// The prompt a caller hears when there was nothing to pick up.
const NOTHING_RINGING: &str = "nothing-to-pick-up";

impl CallLogic {
    pub(super) async fn pickup(&mut self, target: &dialplan::PickupTarget) -> Result<(), Stop> {
        match self.io.ask(Question::Pickup(target.clone())).await {
            Reply::PickedUp(Ok(caller)) => {
                tracing::info!(picked_up = %caller, ?target, "pickup: connected with the ringing call's caller");
                self.talk(caller).await
            }
            Reply::PickedUp(Err(PickupRefusal::NotIdentified)) => {
                tracing::info!(?target, "pickup: caller is not one of our users; 403");
                self.refuse_pickup(403, "pickup refused: caller not identified")
            }
            other => {
                if !matches!(other, Reply::PickedUp(Err(PickupRefusal::NothingRinging))) {
                    tracing::error!(?other, "pickup: unexpected reply");
                }
                tracing::info!(?target, "pickup: nothing rings there; 480");
                // Early media: the caller hears why, and nothing is answered or charged.
                if !self.answered {
                    self.sip(SipAction::EarlyMedia);
                }
                self.play(NOTHING_RINGING).await?;
                self.refuse_pickup(480, "pickup: nothing ringing")
            }
        }
    }

    fn refuse_pickup(&self, status: u16, reason: &'static str) -> Result<(), Stop> {
        self.sip(if self.answered {
            SipAction::Hangup
        } else {
            SipAction::Refuse { status, reason }
        });
        Err(Stop::EndedByUs(reason))
    }
}
