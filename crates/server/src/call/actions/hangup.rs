//! The `hangup` action, and the honest refusal of actions that cannot run yet.

use dialplan::Action;

use crate::call::SipAction;
use crate::call::logic::{CallLogic, Stop};

impl CallLogic {
    /// BYE when answered, else `cause` as the final response.
    pub(super) fn hangup(&mut self, cause: u16) -> Result<(), Stop> {
        self.sip(if self.answered {
            SipAction::Hangup
        } else {
            SipAction::Reject(cause)
        });
        Err(Stop::HungUp)
    }

    /// Parsed and checked today; the machinery (menu, set, ...) arrives with later
    /// issues. Refuse honestly (501) rather than pretend.
    pub(super) fn not_available(&mut self, action: &Action) -> Result<(), Stop> {
        tracing::warn!(?action, "dialplan action not available yet; refusing call");
        self.hangup(501)
    }
}
