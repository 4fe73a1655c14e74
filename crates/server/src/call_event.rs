//! What reaches a call from outside its signalling: news from the conference registry and
//! its media session's reports. Below both the calls and the registry, which send and
//! receive these without knowing each other.

use tokio::sync::mpsc::Sender;

use crate::ids::LegId;
use crate::media_worker::MediaEvent;

/// Room news and media reports for the call of a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// News from the conference room the caller is in.
    Notice(Notice),
    /// A report of the caller's media session.
    Media(MediaEvent),
}

/// Where the registry and media sessions send [`CallEvent`]s: call control, which hands each
/// to the call of that leg. Bounded: a core that falls this far behind sheds news rather
/// than memory (see [`CALL_EVENTS_QUEUE`]).
pub type CallEvents = Sender<(LegId, CallEvent)>;

/// Call events waiting for the core at most: a few per call in flight for thousands of
/// calls; only a core stalled for seconds fills it.
pub const CALL_EVENTS_QUEUE: usize = 16_384;

/// What the registry tells a participant's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Play this prompt (on top of the room's audio).
    Announce(&'static str),
    /// A moderator muted or unmuted you (or the room was waiting for one).
    SetMuted(bool),
    /// A moderator ended the conference for everyone.
    Ended,
    /// An admin deleted or re-guarded the room while it was in use: the session ends.
    Closed,
    /// A moderator removed you from the room (the console's kick): your session ends.
    Removed,
}
