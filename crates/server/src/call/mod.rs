//! A call as a sans-IO state machine: the dialplan's actions for one caller, with the legs it
//! rings for them.
//!
//! Events and time go in ([`Call::handle_input`], [`Call::handle_timeout`],
//! [`Call::handle_reply`]); SIP, media and room commands, questions and the end of the call
//! come out ([`Call::poll_output`]), and [`Call::poll_timeout`] says when it wants the time
//! again. It opens no socket, reads no clock and spawns nothing: call control carries out
//! its outputs and feeds it what happened, and the unit tests here do the same by hand.
//! Each dialplan action is a file of its own in `actions/`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use dialplan::{DialTarget, Route};

use crate::call_event::{CallEvent, Notice};
use crate::conference::{Refusal, RoomTerms};
use crate::ids::LegId;
use crate::media_worker::MediaEvent;

mod actions;
pub use actions::RUNNABLE_ACTIONS;
mod fork;
mod logic;
mod port;
#[cfg(test)]
mod tests;

pub use fork::{Fork, ForkStep};

/// Something that happened to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The caller's leg is over (BYE, CANCEL, timeout, or our own hangup).
    Hangup,
    /// The caller pressed a key (RFC 4733 or SIP INFO).
    Digit(char),
    /// News from the conference room the caller is in.
    Notice(Notice),
    /// The caller's media session reports (prompt ended, joined a room, ...).
    Media(MediaEvent),
    /// A leg rung for the caller's `dial`.
    Callee(CalleeEvent),
}

impl From<CallEvent> for Input {
    fn from(event: CallEvent) -> Self {
        match event {
            CallEvent::Notice(notice) => Input::Notice(notice),
            CallEvent::Media(MediaEvent::Dtmf(digit)) => Input::Digit(digit),
            CallEvent::Media(event) => Input::Media(event),
        }
    }
}

/// What happened to a leg the call placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalleeEvent {
    /// It rings (1xx).
    Ringing(LegId),
    /// It answered with usable media.
    Answered(LegId),
    /// It is over: refused with `status`, never answered (0), or hung up after answering.
    Ended {
        /// The leg.
        leg: LegId,
        /// Its final status.
        status: u16,
    },
    /// The connected leg's party transferred the call (REFER, RFC 3515) and `new` answered
    /// in its place: the caller talks to `new` from now on, and `old`'s end no longer ends
    /// the call.
    Transferred {
        /// The transferor's leg.
        old: LegId,
        /// The leg of the party the call was transferred to, connected already.
        new: LegId,
    },
    /// Another phone picked the call up while the caller's `dial` rang (call pickup): call
    /// control answered the caller and connected it with the picker's leg `by`; the legs
    /// still ringing are the call's to cancel.
    PickedUp {
        /// The picker's leg, now the caller's other party.
        by: LegId,
    },
    /// Its carrier failed it (no answer at all, 408 or 5xx) and the call goes on through
    /// the trunk's failover as `new`: the caller keeps ringing.
    Replaced {
        /// The failed leg.
        old: LegId,
        /// The leg through the failover trunk.
        new: LegId,
    },
}

/// What the call asks of the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A signalling step on the caller's leg or a placed one.
    Sip(SipAction),
    /// A change to the caller's media session.
    Media(MediaAction),
    /// News for the room or a change of the caller's standing in it.
    Room(RoomAction),
    /// A question: exactly one [`Reply`] must come back through [`Call::handle_reply`]
    /// before the call goes on.
    Ask(Question),
    /// The call is over, for this reason (the call record's words); whatever leg is still up
    /// is hung up with it.
    Finished(String),
    /// Something that happened to the call besides ringing and talking ("forwarded by 101
    /// (always) to 102"), for its record.
    Note(String),
}

/// Signalling steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipAction {
    /// Answer the caller (200 OK with our SDP answer).
    Answer,
    /// Refuse the unanswered caller with this status.
    Reject(u16),
    /// Refuse the unanswered caller with `status`, for `reason` (the call record's words).
    Refuse {
        /// The final response.
        status: u16,
        /// Why.
        reason: &'static str,
    },
    /// End the caller's leg (BYE).
    Hangup,
    /// Tell the caller it rings (180).
    Ring,
    /// Let the unanswered caller hear our media (183 with our SDP): an announcement
    /// before a refusal.
    EarlyMedia,
    /// Stop ringing, or hang up, a leg placed for the caller.
    Cancel {
        /// The placed leg.
        leg: LegId,
        /// Why, for its log and record.
        reason: &'static str,
    },
    /// The placed leg answered first: connect the caller with it (answering the caller).
    Connect(LegId),
}

/// Changes to the caller's media session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaAction {
    /// Send silence (stops a prompt).
    Silence,
    /// Send back what the caller says.
    Echo,
    /// Move into a conference room's mix.
    JoinRoom {
        /// Room number.
        room: String,
        /// Join muted.
        muted: bool,
    },
    /// Leave the room's mix.
    LeaveRoom,
    /// Mute or unmute the caller in the room's mix.
    SetMuted(bool),
    /// Send a key press to a connected leg as RFC 4733 events.
    SendDtmf {
        /// The placed leg.
        to: LegId,
        /// The key.
        digit: char,
    },
    /// Stop recording the room.
    StopRecording {
        /// Room number.
        room: String,
    },
    /// Stop recording the caller's voicemail message (the writer then stores it).
    StopCapture,
}

/// News for a room's members, or the caller's flags in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAction {
    /// Tell every member but the caller.
    TellOthers {
        /// Room number.
        room: String,
        /// The news.
        notice: Notice,
    },
    /// Tell the room's moderators.
    TellModerators {
        /// Room number.
        room: String,
        /// The news.
        notice: Notice,
    },
    /// The caller muted or unmuted themselves.
    SetMuted {
        /// Room number.
        room: String,
        /// Muted now.
        muted: bool,
    },
    /// The caller raised or lowered their hand.
    SetHandRaised {
        /// Room number.
        room: String,
        /// Raised now.
        raised: bool,
    },
}

/// Questions the call waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// Play this prompt to the caller (two-party media): [`Reply::Started`].
    Play(String),
    /// Play this prompt on top of the room's audio: [`Reply::Started`].
    Overlay(String),
    /// Ring `target`'s reachable contacts: [`Reply::Placed`], or why nobody was rung
    /// ([`Reply::Barred`], [`Reply::UserLimit`], [`Reply::LinesBusy`],
    /// [`Reply::NoFaxCodec`], [`Reply::OverBudget`]).
    Place {
        /// Whom to ring.
        target: DialTarget,
        /// The rule's `dial` says this is a fax call (the caller's or callee's user may say
        /// so too; call control knows them).
        fax: bool,
        /// Who the called party is told calls, where the rule `set` it.
        caller_id: CallerId,
    },
    /// Ring `target` on behalf of `user`, whose forwarding or follow-me this call follows:
    /// calls out go with the user's call classes and cost limits and name the user as
    /// diverting (Diversion, RFC 5806). Answered as [`Question::Place`].
    PlaceFor {
        /// Whom to ring.
        target: DialTarget,
        /// Who the called party is told calls, where the rule `set` it.
        caller_id: CallerId,
        /// The diverting user.
        user: String,
        /// Only the phones of a user target that registered from this network (a follow-me
        /// step's office or home phone).
        network: Option<store::AllowedNetwork>,
    },
    /// What a call to this user does besides ringing the phones: [`Reply::Settings`].
    UserSettings(String),
    /// The dialplan's route for `number` dialled by `user` (a forwarding or follow-me
    /// target): [`Reply::Route`].
    RouteFor {
        /// The number.
        number: String,
        /// The user it is dialled for.
        user: String,
    },
    /// Change the calling user's own forwarding: [`Reply::Switched`], whether it is on now.
    SetForward {
        /// Which.
        when: dialplan::ForwardWhen,
        /// Where to; `None` clears it.
        to: Option<String>,
        /// Ring time before a no-answer forwarding.
        seconds: Option<u32>,
    },
    /// Switch the calling user's do not disturb: [`Reply::Switched`], on or off now.
    SetDnd(dialplan::Switch),
    /// The same for a call forwarded to `target`: a call out names the number the caller
    /// dialled as diverting it (Diversion, RFC 5806).
    Forward {
        /// Whom to ring.
        target: DialTarget,
        /// Who the called party is told calls, where the rule `set` it.
        caller_id: CallerId,
    },
    /// The stored room of this number: [`Reply::Room`].
    RoomGet(String),
    /// Whether the room has a meeting link: [`Reply::Done`], `Err` saying why not (no link,
    /// or the store could not say).
    RoomLinked(String),
    /// Check keyed-in digits against a room's PINs: [`Reply::Pin`].
    CheckPin {
        /// Room number.
        room: String,
        /// The digits.
        digits: String,
    },
    /// Let the caller into the live room: [`Reply::Admission`].
    Admit {
        /// Room number.
        room: String,
        /// The caller keyed the moderator PIN.
        moderator: bool,
        /// What the caller's store lookup said of the room.
        terms: RoomTerms,
    },
    /// The caller leaves the live room: [`Reply::Flag`], whether a recording ended with it.
    Leave(String),
    /// Participants in the live room: [`Reply::Count`].
    Count(String),
    /// Lock or unlock the room: [`Reply::Flag`], locked now.
    ToggleLock(String),
    /// Mute every participant but the moderators: [`Reply::Count`], how many.
    MuteOthers(String),
    /// Stop the room's recording if it runs: [`Reply::Flag`], whether it ran.
    TakeRecording(String),
    /// Start recording the room: [`Reply::Done`].
    StartRecording(String),
    /// The members logged out of this ring group: [`Reply::Members`].
    GroupLoggedOut(String),
    /// The ring group's definition and how each member stands now (the `logged_out` ones
    /// as the store said): [`Reply::RingGroup`].
    RingGroup {
        /// The group's name.
        group: String,
        /// Members logged out of it.
        logged_out: Vec<String>,
    },
    /// Ring every reachable phone of these users at once (a ring-all group):
    /// [`Reply::Placed`], or why nobody was rung, as for [`Question::Place`].
    PlaceMembers {
        /// The users.
        members: Vec<String>,
        /// A fax call (see [`Question::Place`]).
        fax: bool,
        /// Who the called party is told calls.
        caller_id: CallerId,
    },
    /// `leg`, rung for ring group `group`, answered and is connected: remember its member
    /// (round-robin, the log): [`Reply::Done`].
    GroupAnswered {
        /// The group's name.
        group: String,
        /// The leg that answered.
        leg: LegId,
        /// The member whose turn it was (one at a time): their forwarding target may have
        /// answered. `None` (ring-all): the user the leg rang.
        member: Option<String>,
    },
    /// Log the calling user in to or out of `group` (every group they belong to when
    /// `None`): [`Reply::GroupLogin`].
    GroupLogin {
        /// The group.
        group: Option<String>,
        /// In, out or toggle.
        mode: dialplan::GroupLoginMode,
    },
    /// Take a call that rings elsewhere (call pickup): [`Reply::PickedUp`].
    Pickup(dialplan::PickupTarget),
    /// Start recording the caller's message for `mailbox`: [`Reply::Done`].
    VoicemailRecord {
        /// The mailbox (the called user's extension).
        mailbox: String,
    },
    /// Open the calling user's own mailbox with keyed-in digits: [`Reply::Mailbox`].
    VoicemailOpen {
        /// The digits keyed as PIN.
        digits: String,
    },
    /// A message was listened to: [`Reply::Done`].
    VoicemailHeard(store::VoicemailId),
    /// Delete a message, its file too: [`Reply::Done`].
    VoicemailDelete(store::VoicemailId),
    /// Play a stored message to the caller: [`Reply::Started`].
    PlayFile(std::path::PathBuf),
}

/// A ring group as a call finds it: its definition and each member's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFacts {
    /// The definition from the dialplan.
    pub group: dialplan::RingGroup,
    /// Each member, in the listed order.
    pub members: Vec<MemberFacts>,
    /// The member who answered the group's last call (round-robin starts after them).
    pub last_answered: Option<String>,
}

/// How one ring group member stands when a call reaches the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFacts {
    /// The member's extension.
    pub extension: String,
    /// Logged out of the group.
    pub logged_out: bool,
    /// In a call through the server.
    pub busy: bool,
    /// Do not disturb is on.
    pub dnd: bool,
    /// When their last call through the server ended; `None`: none since it started.
    pub last_call_ended: Option<Instant>,
}

#[cfg(test)]
impl MemberFacts {
    /// A member free to take a call (logged in, not busy, no do not disturb, never called).
    pub(crate) fn free(extension: &str) -> Self {
        Self {
            extension: extension.into(),
            logged_out: false,
            busy: false,
            dnd: false,
            last_call_ended: None,
        }
    }
}

/// Why a caller could not log in to or out of ring groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupLoginRefusal {
    /// The caller is not one of our users (a trusted network's call).
    NotAUser,
    /// The user belongs to no such group.
    NotAMember,
    /// The store could not do it.
    Store(String),
}

/// Why a pickup took no call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickupRefusal {
    /// The caller is not one of our users (only they may take colleagues' calls).
    NotIdentified,
    /// Nothing rings where the pickup looked.
    NothingRinging,
}

/// What opening a mailbox came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxOpen {
    /// The caller is no user, so has no mailbox.
    NoMailbox,
    /// The mailbox has no PIN, so nobody may listen by phone.
    NoPin,
    /// The digits were not the PIN.
    WrongPin,
    /// Opened: its messages, new ones first.
    Open(Vec<store::Voicemail>),
}

/// The caller ID a rule's `set = { caller_id, caller_name }` gives the calls it places
/// afterwards (a department's number instead of the user's own, a name for the desk); each
/// `None` keeps the caller's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerId {
    /// Our number to present: digits with an optional leading `+` (an E.164 number goes to a
    /// trunk as the trunk writes numbers, an extension as that user's direct-dial number).
    pub number: Option<String>,
    /// The name to present.
    pub name: Option<String>,
}

/// Answers to [`Question`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The prompt plays (false: missing, or not playable at the caller's rate).
    Started(bool),
    /// INVITEs sent, and how many could not be sent.
    Placed {
        /// Legs ringing.
        legs: Vec<LegId>,
        /// Contacts no INVITE could be sent to.
        unplaced: usize,
        /// A fax call: the callees were offered the caller's G.711 only, so one refusing
        /// the offer (488) cannot take the call at all.
        fax: bool,
    },
    /// A fax call, but the caller's codec is not G.711, so nothing can pass through
    /// unchanged: nobody was rung.
    NoFaxCodec,
    /// The number may not be called from this line: nobody was rung.
    Barred,
    /// The caller has as many calls out as it may have at once: nobody was rung.
    UserLimit,
    /// No outside line is free (the trunks' `max-calls`, or the limit in all): nobody was
    /// rung.
    LinesBusy,
    /// The last hour's calls out cost as much as the cost guard allows, the caller's own
    /// or everyone's together: nobody was rung.
    OverBudget(trunks::Budget),
    /// The stored room, or why the store could not say.
    Room(Result<Option<store::Room>, String>),
    /// The PIN check, or why the store could not do it.
    Pin(Result<store::PinCheck, String>),
    /// Admitted (joining muted until the moderator comes), or refused.
    Admission(Result<bool, Refusal>),
    /// Yes or no.
    Flag(bool),
    /// A number.
    Count(usize),
    /// Done, or why not.
    Done(Result<(), String>),
    /// The ringing call was taken: call control answered both callers and connected the
    /// picker with the leg named; or why nothing was taken.
    PickedUp(Result<LegId, PickupRefusal>),
    /// The mailbox opened (or why not), or why the store could not say.
    Mailbox(Result<MailboxOpen, String>),
    /// A user's call settings (`None`: no such user).
    Settings(Option<store::CallSettings>),
    /// The route of a number, if any rule takes it.
    Route(Option<Box<Route>>),
    /// A setting is now on (`Ok(true)`) or off, or why it could not be changed.
    Switched(Result<bool, SettingRefusal>),
    /// Users (extensions), or why the store could not say.
    Members(Result<Vec<String>, String>),
    /// The ring group, or `None` when the plan in force has no such group.
    RingGroup(Option<GroupFacts>),
    /// Logged in now (true) or out (false), or why not.
    GroupLogin(Result<bool, GroupLoginRefusal>),
}

/// Why a user's own setting was not changed from the phone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingRefusal {
    /// The caller is not one of our users (not registered, not authenticated).
    #[error("the caller is not a user")]
    NotAUser,
    /// What was keyed cannot be stored (a bad number or ring time).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

/// What a call needs to start.
pub struct CallSetup {
    /// What the dialplan said to do.
    pub route: Route,
    /// Rooms must be created before callers can use them.
    pub require_precreated_rooms: bool,
    /// Longest voicemail message.
    pub voicemail_max: std::time::Duration,
    /// `[pool] proxy`: the lobby hands callers on to their room's node through it.
    pub pool_proxy: Option<std::net::SocketAddr>,
    /// The domain the call belongs to: its rooms are that domain's (see
    /// [`crate::tenants::room_key`]).
    pub tenant: String,
}

/// One call (see the module documentation).
pub struct Call {
    io: port::Io,
    logic: Pin<Box<dyn Future<Output = ()> + Send>>,
    over: bool,
}

impl Call {
    /// Starts the call's actions at `now`; its first outputs are ready to poll.
    pub fn new(setup: CallSetup, now: Instant) -> Self {
        let io = port::Io::new(now);
        let mut logic = logic::CallLogic::new(io.clone(), setup.require_precreated_rooms);
        logic.voicemail_max = setup.voicemail_max;
        logic.pool_proxy = setup.pool_proxy;
        logic.tenant = setup.tenant;
        let mut call = Self {
            io,
            logic: Box::pin(logic.run(setup.route)),
            over: false,
        };
        call.resume(now);
        call
    }

    /// Something happened at `now`.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        if !self.over {
            self.io.port().inputs.push_back(input);
            self.resume(now);
        }
    }

    /// The answer to the question last put out.
    pub fn handle_reply(&mut self, reply: Reply, now: Instant) {
        if !self.over {
            self.io.port().reply = Some(reply);
            self.resume(now);
        }
    }

    /// Time passed: `now` is at or after [`Call::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.resume(now);
    }

    /// The next thing to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.io.port().outputs.pop_front()
    }

    /// When the call wants [`Call::handle_timeout`], if it waits for a time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.over {
            return None;
        }
        self.io.port().deadline
    }

    /// The call has put out [`Output::Finished`] and takes nothing more.
    pub fn is_over(&self) -> bool {
        self.over
    }

    fn resume(&mut self, now: Instant) {
        if self.over {
            return;
        }
        self.io.port().now = now;
        let mut context = Context::from_waker(Waker::noop());
        if let Poll::Ready(()) = self.logic.as_mut().poll(&mut context) {
            self.over = true;
        }
    }
}
