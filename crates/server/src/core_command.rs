//! What call tasks and media workers ask of call control, which owns the legs.

use crate::ids::LegId;

/// Requests to call control (bounded by the number of legs: each leg's task and media
/// session send a handful over its life).
#[derive(Debug)]
pub enum CoreCommand {
    /// Answer the leg with 200 OK and our SDP answer.
    Answer(LegId),
    /// Refuse an unanswered leg with a final status.
    Reject(LegId, u16),
    /// End the leg (BYE if answered, else 480).
    Hangup(LegId),
    /// The leg's call task ended, for this reason; forget the leg.
    Finished(LegId, String),
    /// The media worker heard no RTP from the leg's peer for the configured time.
    MediaTimeout(LegId),
    /// Ring this target for the leg's caller (the `dial` action); the outcome comes back as
    /// a `CallEvent::Dial`.
    Dial(LegId, dialplan::DialTarget),
    /// Stop ringing (the `dial` action's ring time is over).
    CancelDial(LegId),
}
