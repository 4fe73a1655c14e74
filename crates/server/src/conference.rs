//! The registry of live conference rooms: who is in each room, who moderates, whether it is
//! locked or recording. Shared by the calls of a room (the conference action in
//! [`crate::call`]); the audio lives in one media worker's mixer.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::call_event::{CallEvent, CallEvents, Notice};
use crate::ids::LegId;

/// Who a room member is, as the join page lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberLabel {
    /// A caller, with the number it called from when that is a telephone number (a SIP
    /// user name such as `anonymous` is not shown).
    Phone(Option<String>),
    /// A browser on the join page, with the name its user gave.
    Browser(String),
    /// A WHIP/WHEP client (a linked video meeting).
    Meeting,
}

impl MemberLabel {
    /// A caller whose caller ID is `caller`: its number when it is one (digits, an optional
    /// leading `+`), so that user names and `anonymous` show as a phone without a number.
    pub fn phone(caller: &str) -> Self {
        let digits = caller.strip_prefix('+').unwrap_or(caller);
        let is_number =
            !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit());
        Self::Phone(is_number.then(|| caller.to_owned()))
    }
}

/// One member of a live room as the join page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// The member.
    pub member: LegId,
    /// Who it is.
    pub label: MemberLabel,
    /// Muted (by itself, a moderator, or the room waiting for its moderator).
    pub muted: bool,
    /// Talking now.
    pub talking: bool,
    /// Raised its hand (`*5`).
    pub hand_raised: bool,
    /// Moderator (keyed the moderator PIN).
    pub moderator: bool,
}

/// Participant limit of rooms opened on demand (no stored settings).
pub const DEFAULT_MAX_PARTICIPANTS: u32 = 50;

pub(crate) struct Member {
    pub(crate) moderator: bool,
    pub(crate) muted: bool,
    pub(crate) hand_raised: bool,
    /// Who the member is, for the join page's participant list.
    pub(crate) label: MemberLabel,
    /// Talker detection has the member talking (reported by the room's media worker).
    pub(crate) talking: bool,
    /// Where this member's call hears the room's news.
    pub(crate) notices: CallEvents,
}

impl Member {
    /// The registry holds its lock here, so it never waits for the queue: news that finds
    /// it full is dropped and logged.
    fn tell(&self, id: LegId, notice: Notice) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full((_, event))) =
            self.notices.try_send((id, CallEvent::Notice(notice)))
        {
            tracing::error!(leg = %id, ?event, "call event queue full; room news dropped");
        }
    }
}

pub(crate) struct LiveRoom {
    pub(crate) members: BTreeMap<LegId, Member>,
    pub(crate) locked: bool,
    pub(crate) wait_for_moderator: bool,
    pub(crate) recording: Option<ActiveRecording>,
    /// What guarded the room when it opened; a caller whose own store lookup finds something
    /// else (room deleted, re-created, PINs changed) does not get into this session.
    pub(crate) guard: Option<RoomGuard>,
    /// An admin change ended the session: its members are leaving and nobody new gets in.
    pub(crate) closing: bool,
}

/// The part of a stored room that decides who gets in. `None` where a room is used is a room
/// opened on demand, without a stored row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomGuard {
    created_at_ms: i64,
    has_pin: bool,
    has_moderator_pin: bool,
}

/// What a caller's store lookup says about the room they are joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomTerms {
    /// Participant limit.
    pub max_participants: u32,
    /// Participants are muted until a moderator joins.
    pub wait_for_moderator: bool,
    /// Who may get in.
    pub guard: Option<RoomGuard>,
}

impl RoomTerms {
    /// The terms of a stored room, or of a room opened on demand (`None`).
    pub fn of(stored: Option<&store::Room>) -> Self {
        Self {
            max_participants: stored.map_or(DEFAULT_MAX_PARTICIPANTS, |r| r.max_participants),
            wait_for_moderator: stored.is_some_and(|r| r.wait_for_moderator),
            guard: RoomGuard::of(stored),
        }
    }
}

impl RoomGuard {
    /// The guard of a stored room, `None` for a room that is not stored.
    pub fn of(stored: Option<&store::Room>) -> Option<Self> {
        stored.map(|room| Self {
            created_at_ms: room.created_at_ms,
            has_pin: room.has_pin,
            has_moderator_pin: room.has_moderator_pin,
        })
    }
}

pub(crate) struct ActiveRecording {
    pub(crate) id: Option<store::RecordingId>,
}

/// Why a caller was not let into a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Locked,
    Full,
    /// The session is ending, or the room the caller looked up is not the one open here.
    Closing,
    /// The room is not stored and nobody is in it (see [`Registry::admit_client`]).
    NotOpen,
}

/// Live state of every open room on this server.
pub struct Registry {
    rooms: Mutex<BTreeMap<String, LiveRoom>>,
    /// Counts changes to the rooms (who is in, talking, muted, locked, recording), so that the
    /// console's live view waits for one instead of asking again and again.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            rooms: Mutex::default(),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// The rooms, locked for a change: dropping it counts one (see [`Registry::changes`]).
struct Changing<'a> {
    rooms: std::sync::MutexGuard<'a, BTreeMap<String, LiveRoom>>,
    changes: &'a tokio::sync::watch::Sender<u64>,
}

impl std::ops::Deref for Changing<'_> {
    type Target = BTreeMap<String, LiveRoom>;
    fn deref(&self) -> &Self::Target {
        &self.rooms
    }
}

impl std::ops::DerefMut for Changing<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.rooms
    }
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }
}

/// Who asks to be let into a room, and where it hears the room's news.
pub(crate) struct Entrant {
    pub(crate) label: MemberLabel,
    pub(crate) notices: CallEvents,
}

/// What admission decided for a caller.
pub(crate) struct Admission {
    /// Joins muted: the room waits for its moderator.
    pub(crate) muted_until_moderator: bool,
}

impl Registry {
    fn changing(&self) -> Changing<'_> {
        Changing {
            rooms: self.rooms.lock().unwrap_or_else(|p| p.into_inner()),
            changes: &self.changes,
        }
    }

    /// A receiver that wakes when anything in any room changed.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn admit(
        &self,
        number: &str,
        call: LegId,
        moderator: bool,
        terms: RoomTerms,
        entrant: Entrant,
    ) -> Result<Admission, Refusal> {
        let mut rooms = self.changing();
        Self::admit_locked(&mut rooms, number, call, moderator, terms, entrant)
    }

    /// Admits a WebRTC client (never a moderator) as [`admit`](Self::admit) does, except
    /// that a room without a stored row (`terms.guard` is `None`) is entered only while it is
    /// open: WHIP and WHEP clients join rooms, they do not open rooms on demand.
    pub(crate) fn admit_client(
        &self,
        number: &str,
        member: LegId,
        terms: RoomTerms,
        entrant: Entrant,
    ) -> Result<Admission, Refusal> {
        let mut rooms = self.changing();
        if terms.guard.is_none() && !rooms.contains_key(number) {
            return Err(Refusal::NotOpen);
        }
        Self::admit_locked(&mut rooms, number, member, false, terms, entrant)
    }

    /// Whether the room has a live session on this server (someone is in it).
    pub(crate) fn is_open(&self, number: &str) -> bool {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.contains_key(number)
    }

    fn admit_locked(
        rooms: &mut BTreeMap<String, LiveRoom>,
        number: &str,
        call: LegId,
        moderator: bool,
        terms: RoomTerms,
        entrant: Entrant,
    ) -> Result<Admission, Refusal> {
        let RoomTerms {
            max_participants: max,
            wait_for_moderator,
            guard,
        } = terms;
        let room = rooms.entry(number.to_string()).or_insert_with(|| LiveRoom {
            members: BTreeMap::new(),
            locked: false,
            wait_for_moderator,
            recording: None,
            guard,
            closing: false,
        });
        // Checked before locked and full, and for moderators too: a moderator PIN of a
        // deleted or re-created room opens nothing here.
        if room.closing || room.guard != guard {
            return Err(Refusal::Closing);
        }
        // Moderators get in to a locked or full room: they are the ones who must.
        if room.locked && !moderator {
            return Err(Refusal::Locked);
        }
        if room.members.len() as u32 >= max && !moderator {
            return Err(Refusal::Full);
        }
        let moderator_present = room.members.values().any(|m| m.moderator);
        let muted_until_moderator = room.wait_for_moderator && !moderator && !moderator_present;
        if moderator && !moderator_present && room.wait_for_moderator {
            for (id, member) in room.members.iter_mut() {
                member.muted = false;
                member.tell(*id, Notice::SetMuted(false));
                member.tell(*id, Notice::Announce("moderator-joined"));
            }
        }
        room.members.insert(
            call,
            Member {
                moderator,
                muted: muted_until_moderator,
                hand_raised: false,
                label: entrant.label,
                talking: false,
                notices: entrant.notices,
            },
        );
        Ok(Admission {
            muted_until_moderator,
        })
    }

    /// Removes a caller; returns the recording to finish when the room is now empty.
    pub(crate) fn leave(&self, number: &str, call: LegId) -> Option<ActiveRecording> {
        let mut rooms = self.changing();
        let room = rooms.get_mut(number)?;
        room.members.remove(&call);
        if room.members.is_empty() {
            return rooms.remove(number).and_then(|r| r.recording);
        }
        None
    }

    pub(crate) fn count(&self, number: &str) -> usize {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(number).map_or(0, |r| r.members.len())
    }

    /// Tells every member but `except`.
    pub(crate) fn tell_others(&self, number: &str, except: LegId, notice: Notice) {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get(number) {
            for (id, member) in &room.members {
                if *id != except {
                    member.tell(*id, notice.clone());
                }
            }
        }
    }

    pub(crate) fn tell_moderators(&self, number: &str, notice: Notice) {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get(number) {
            for (id, member) in room.members.iter().filter(|(_, m)| m.moderator) {
                member.tell(*id, notice.clone());
            }
        }
    }

    /// Mutes every member but `except` and the moderators, telling each; returns how many.
    pub(crate) fn mute_others(&self, number: &str, except: LegId) -> usize {
        self.with_room(number, |r| {
            let mut muted = 0;
            for (id, member) in r.members.iter_mut() {
                if *id != except && !member.moderator {
                    member.muted = true;
                    member.tell(*id, Notice::SetMuted(true));
                    member.tell(*id, Notice::Announce("muted"));
                    muted += 1;
                }
            }
            muted
        })
        .unwrap_or(0)
    }

    pub(crate) fn with_room<T>(
        &self,
        number: &str,
        f: impl FnOnce(&mut LiveRoom) -> T,
    ) -> Option<T> {
        let mut rooms = self.changing();
        rooms.get_mut(number).map(f)
    }

    /// The members of room `number` in the order they joined (`None`: the room is not open).
    pub fn roster(&self, number: &str) -> Option<Vec<RosterEntry>> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let room = rooms.get(number)?;
        // LegIds count up as legs and sessions open, within SIP legs and within WebRTC
        // sessions; callers first, then browsers, each in order of arrival, reads well.
        Some(
            room.members
                .iter()
                .map(|(id, m)| RosterEntry {
                    member: *id,
                    label: m.label.clone(),
                    muted: m.muted,
                    talking: m.talking,
                    hand_raised: m.hand_raised,
                    moderator: m.moderator,
                })
                .collect(),
        )
    }

    /// Talker detection changed for `member` (in whichever room it is).
    pub fn set_talking(&self, member: LegId, talking: bool) {
        let mut rooms = self.changing();
        if let Some(m) = rooms.values_mut().find_map(|r| r.members.get_mut(&member)) {
            m.talking = talking;
        }
    }

    /// Mutes or unmutes `member` of room `number` at its own request (the join page's mute
    /// button; a caller's `*6` does the same); false if it is not in the room.
    pub fn set_muted(&self, number: &str, member: LegId, muted: bool) -> bool {
        self.with_room(number, |r| {
            r.members
                .get_mut(&member)
                .map(|m| m.muted = muted)
                .is_some()
        })
        .unwrap_or(false)
    }

    /// Mutes or unmutes `member` of room `number` for a moderator outside the call (the
    /// console): the member is told and hears it, as when a moderator keys `*` `2`; false if
    /// it is not in the room.
    pub fn moderate_mute(&self, number: &str, member: LegId, muted: bool) -> bool {
        self.with_room(number, |r| {
            let Some(m) = r.members.get_mut(&member) else {
                return false;
            };
            m.muted = muted;
            m.tell(member, Notice::SetMuted(muted));
            m.tell(
                member,
                Notice::Announce(if muted { "muted" } else { "unmuted" }),
            );
            true
        })
        .unwrap_or(false)
    }

    /// Removes `member` from room `number` (the console's kick): it hears that the
    /// conference ended and is hung up; the others hear it leave. False if it is not there.
    pub fn remove(&self, number: &str, member: LegId) -> bool {
        self.with_room(number, |r| {
            r.members
                .get(&member)
                .map(|m| m.tell(member, Notice::Removed))
                .is_some()
        })
        .unwrap_or(false)
    }

    /// Mutes every member of room `number` who is not a moderator, each told as by
    /// [`Self::moderate_mute`]; how many were muted now (`None`: the room is not open).
    pub fn mute_all(&self, number: &str) -> Option<usize> {
        self.with_room(number, |r| {
            let mut muted = 0;
            for (id, m) in r.members.iter_mut() {
                if m.moderator || m.muted {
                    continue;
                }
                m.muted = true;
                m.tell(*id, Notice::SetMuted(true));
                m.tell(*id, Notice::Announce("muted"));
                muted += 1;
            }
            muted
        })
    }

    /// Whether room `number` is being recorded (`None`: the room is not open).
    pub fn recording(&self, number: &str) -> Option<bool> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(number).map(|r| r.recording.is_some())
    }

    /// Every member of room `number` hears `prompt` (e.g. that recording started); how many.
    pub fn announce(&self, number: &str, prompt: &'static str) -> usize {
        self.with_room(number, |r| {
            for (id, member) in &r.members {
                member.tell(*id, Notice::Announce(prompt));
            }
            r.members.len()
        })
        .unwrap_or(0)
    }

    /// Locks or unlocks room `number` for newcomers (moderators still get in); false if it
    /// is not open.
    pub fn set_locked(&self, number: &str, locked: bool) -> bool {
        self.with_room(number, |r| r.locked = locked).is_some()
    }

    /// Ends the conference in room `number` for everyone, as a moderator's `*` `9` does;
    /// how many were in it.
    pub fn end(&self, number: &str) -> usize {
        self.with_room(number, |r| {
            for (id, member) in &r.members {
                member.tell(*id, Notice::Ended);
            }
            r.members.len()
        })
        .unwrap_or(0)
    }

    /// Open rooms with their guards, for the store watch.
    pub fn guards(&self) -> Vec<(String, Option<RoomGuard>)> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .iter()
            .filter(|(_, r)| !r.closing)
            .map(|(n, r)| (n.clone(), r.guard))
            .collect()
    }

    /// Ends a live session because its stored room changed: every member hears that the
    /// conference ended and is hung up; nobody new gets in until the last one left.
    pub fn close(&self, number: &str) -> usize {
        let mut rooms = self.changing();
        let Some(room) = rooms.get_mut(number) else {
            return 0;
        };
        room.closing = true;
        for (id, member) in &room.members {
            member.tell(*id, Notice::Closed);
        }
        room.members.len()
    }

    /// Numbers of open rooms with their participant counts (admin API).
    pub fn summary(&self) -> Vec<(String, usize, bool)> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .iter()
            .map(|(n, r)| (n.clone(), r.members.len(), r.locked))
            .collect()
    }
}

/// Keeps the members' talking flags in step with the media workers' talker detection until
/// the server stops.
pub fn spawn_talk_changes(
    shared: std::sync::Arc<crate::shared::Shared>,
    mut changes: tokio::sync::mpsc::Receiver<crate::media_worker::TalkChange>,
) {
    tokio::spawn(async move {
        while let Some(change) = changes.recv().await {
            shared
                .conferences
                .set_talking(change.member, change.talking);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entrant(tx: &CallEvents) -> Entrant {
        Entrant {
            label: MemberLabel::Browser("Anna".into()),
            notices: tx.clone(),
        }
    }

    #[test]
    fn a_caller_is_listed_by_number_only_when_it_called_from_one() {
        assert_eq!(
            MemberLabel::phone("+4971112345"),
            MemberLabel::Phone(Some("+4971112345".into()))
        );
        assert_eq!(
            MemberLabel::phone("0711"),
            MemberLabel::Phone(Some("0711".into()))
        );
        assert_eq!(MemberLabel::phone("anonymous"), MemberLabel::Phone(None));
        assert_eq!(MemberLabel::phone("+"), MemberLabel::Phone(None));
        assert_eq!(MemberLabel::phone(""), MemberLabel::Phone(None));
    }

    #[test]
    fn the_roster_shows_who_is_in_the_room_talking_and_muted() {
        let rooms = Registry::default();
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        let terms = RoomTerms::of(None);
        let phone = Entrant {
            label: MemberLabel::phone("0711"),
            notices: tx.clone(),
        };
        assert!(rooms.admit("5", LegId::new(3), false, terms, phone).is_ok());
        assert!(
            rooms
                .admit_client("5", LegId::browser(1), terms, entrant(&tx))
                .is_ok()
        );
        assert!(rooms.roster("6").is_none());
        rooms.set_talking(LegId::new(3), true);
        assert!(rooms.set_muted("5", LegId::browser(1), true));
        assert!(!rooms.set_muted("5", LegId::browser(9), true));
        let roster = rooms.roster("5").unwrap();
        assert_eq!(
            roster,
            vec![
                RosterEntry {
                    member: LegId::new(3),
                    label: MemberLabel::Phone(Some("0711".into())),
                    muted: false,
                    talking: true,
                    hand_raised: false,
                    moderator: false,
                },
                RosterEntry {
                    member: LegId::browser(1),
                    label: MemberLabel::Browser("Anna".into()),
                    muted: true,
                    talking: false,
                    hand_raised: false,
                    moderator: false,
                },
            ]
        );
    }

    #[test]
    fn the_console_mutes_removes_locks_and_ends_and_each_member_is_told() {
        let rooms = Registry::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let terms = RoomTerms::of(None);
        for leg in [1, 2] {
            assert!(
                rooms
                    .admit("5", LegId::new(leg), false, terms, entrant(&tx))
                    .is_ok()
            );
        }
        let mut told = || {
            let mut notices = Vec::new();
            while let Ok((leg, CallEvent::Notice(notice))) = rx.try_recv() {
                notices.push((leg, notice));
            }
            notices
        };
        assert!(rooms.moderate_mute("5", LegId::new(2), true));
        assert!(rooms.roster("5").unwrap()[1].muted);
        assert_eq!(
            told(),
            vec![
                (LegId::new(2), Notice::SetMuted(true)),
                (LegId::new(2), Notice::Announce("muted")),
            ]
        );
        assert!(!rooms.moderate_mute("5", LegId::new(9), true));
        assert!(!rooms.moderate_mute("6", LegId::new(2), true));
        assert!(rooms.remove("5", LegId::new(2)));
        assert_eq!(told(), vec![(LegId::new(2), Notice::Removed)]);
        assert!(!rooms.remove("5", LegId::new(9)));
        assert!(rooms.set_locked("5", true));
        assert!(matches!(
            rooms.admit("5", LegId::new(3), false, terms, entrant(&tx)),
            Err(Refusal::Locked)
        ));
        assert!(!rooms.set_locked("6", true));
        assert_eq!(rooms.end("5"), 2);
        assert_eq!(
            told(),
            vec![
                (LegId::new(1), Notice::Ended),
                (LegId::new(2), Notice::Ended)
            ]
        );
    }

    fn stored(number: &str, max_participants: u32) -> store::Room {
        store::Room {
            number: number.to_owned(),
            has_pin: false,
            has_moderator_pin: false,
            max_participants,
            wait_for_moderator: false,
            created_at_ms: 7,
            owner: None,
        }
    }

    #[test]
    fn a_webrtc_client_enters_a_stored_or_open_room_but_opens_none_on_demand() {
        let rooms = Registry::default();
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        let on_demand = RoomTerms::of(None);
        assert!(matches!(
            rooms.admit_client("77", LegId::browser(1), on_demand, entrant(&tx)),
            Err(Refusal::NotOpen)
        ));
        assert!(!rooms.is_open("77"), "the refusal opened nothing");
        // A caller opens 77 on demand: now the client may join it.
        assert!(
            rooms
                .admit("77", LegId::new(1), false, on_demand, entrant(&tx))
                .is_ok()
        );
        assert!(rooms.is_open("77"));
        assert!(
            rooms
                .admit_client("77", LegId::browser(1), on_demand, entrant(&tx))
                .is_ok()
        );
        assert_eq!(rooms.count("77"), 2);
        // A stored room is opened by its first WebRTC client, and its limit holds for them.
        let room = stored("4711", 1);
        let terms = RoomTerms::of(Some(&room));
        assert!(
            rooms
                .admit_client("4711", LegId::browser(2), terms, entrant(&tx))
                .is_ok()
        );
        assert!(matches!(
            rooms.admit_client("4711", LegId::browser(3), terms, entrant(&tx)),
            Err(Refusal::Full)
        ));
    }
}
