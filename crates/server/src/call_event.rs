//! What a call task is told from outside: signalling, the conference registry, and the
//! outcome of its `dial`. Below both the call task and the registry, which send and receive
//! these without knowing each other.

use crate::ids::LegId;

/// Signalling and room events the core and the conference registry send to a call task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The call is over (BYE, CANCEL, timeout, or our own hangup).
    Hangup,
    /// A DTMF digit sent as SIP INFO.
    Dtmf(char),
    /// News from the conference room the caller is in.
    Conference(Notice),
    /// How the `dial` action's ringing ended.
    Dial(DialOutcome),
}

/// How ringing someone ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialOutcome {
    /// Someone answered: the caller is connected to this leg (and answered).
    Answered(LegId),
    /// Nobody answered, nobody could be rung, or everyone refused (the best status).
    NotAnswered(u16),
}

/// What the registry tells a participant's call task.
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
}
