//! Keeps the rooms open on this server in step with the store. Once a second it reports them
//! (so that `amtsleitung room delete` can tell that a room is in use) and ends any live session
//! whose stored room an admin deleted, re-created or re-PINned meanwhile: a change to a room
//! never leaves its session open under the old guard, and never opens it without one. In the
//! same way a WebRTC client's session ends when the token it was let in with is revoked or
//! replaced: revoking a leaked token cuts off whoever uses it, not only their next attempt.
//!
//! Only changes committed by other processes matter (the admin CLI; the server's own writes
//! are call records and recordings), and SQLite's `data_version` tells those apart, so a quiet
//! second costs one pragma; a room that opened since the last pass is checked once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::conference::{Registry, RoomGuard};
use crate::ids::LegId;
use crate::shared::Shared;
use crate::webrtc_sessions::TokenHolder;

/// How often the store is compared with the open rooms.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What the watch remembers between passes.
#[derive(Default)]
pub struct RoomWatch {
    /// The store's external change counter at the last pass.
    seen_changes: Option<i64>,
    /// Open rooms already compared with the store since its last external change.
    checked: HashMap<String, Option<RoomGuard>>,
    /// What was last written to the store's list of open rooms.
    reported: Option<Vec<(String, u32)>>,
    /// The store's external change counter when the WebRTC sessions' tokens were checked.
    tokens_seen: Option<i64>,
    /// WebRTC sessions whose token was found current since then.
    tokens_checked: HashSet<LegId>,
}

impl RoomWatch {
    /// One pass: returns the rooms whose sessions must end because their stored room changed.
    /// A store that cannot be read closes nothing (the sessions were let in properly, and new
    /// callers are refused by their own failing lookup) but is retried next pass.
    pub fn pass(
        &mut self,
        store: &store::Store,
        rooms: &Registry,
        server_pid: u32,
        now_ms: i64,
    ) -> Vec<String> {
        let report: Vec<(String, u32)> = rooms
            .summary()
            .into_iter()
            .map(|(number, participants, _)| (number, participants as u32))
            .collect();
        if self.reported.as_ref() != Some(&report) {
            match store.live_rooms_replace(server_pid, &report, now_ms) {
                Ok(()) => self.reported = Some(report),
                Err(err) => tracing::warn!("open rooms not reported to the store: {err}"),
            }
        }
        let changes = match store.external_change_counter() {
            Ok(changes) => changes,
            Err(err) => {
                tracing::warn!("store not readable, open rooms not checked: {err}");
                return Vec::new();
            }
        };
        if self.seen_changes != Some(changes) {
            self.checked.clear();
        }
        let mut close = Vec::new();
        let mut complete = true;
        for (number, guard) in rooms.guards() {
            if self.checked.get(&number) == Some(&guard) {
                continue;
            }
            match store.room_get(&number) {
                Ok(stored) if RoomGuard::of(stored.as_ref()) == guard => {
                    self.checked.insert(number, guard);
                }
                Ok(_) => close.push(number),
                Err(err) => {
                    tracing::warn!(room = %number, "room not checked against the store: {err}");
                    complete = false;
                }
            }
        }
        // An unreadable room is checked again next pass even if nothing changes meanwhile.
        self.seen_changes = complete.then_some(changes);
        self.checked.retain(|number, _| !close.contains(number));
        close
    }
}

impl RoomWatch {
    /// The sessions among `sessions` whose token is no longer their room's: revoked, or
    /// replaced by a new one. Each session is checked when it is first seen and again after
    /// every change made from outside; an unreadable store ends nothing, as in [`Self::pass`].
    pub fn revoked_sessions(
        &mut self,
        store: &store::Store,
        sessions: &[TokenHolder],
    ) -> Vec<LegId> {
        let changes = match store.external_change_counter() {
            Ok(changes) => changes,
            Err(_) => return Vec::new(),
        };
        if self.tokens_seen != Some(changes) {
            self.tokens_checked.clear();
        }
        let mut revoked = Vec::new();
        let mut complete = true;
        for session in sessions {
            if self.tokens_checked.contains(&session.leg) {
                continue;
            }
            match store.room_token_hash_is_current(&session.room, session.kind, &session.token) {
                Ok(true) => {
                    self.tokens_checked.insert(session.leg);
                }
                Ok(false) => revoked.push(session.leg),
                Err(err) => {
                    tracing::warn!(room = %session.room, "WebRTC token not checked against the store: {err}");
                    complete = false;
                }
            }
        }
        self.tokens_seen = complete.then_some(changes);
        let live: HashSet<LegId> = sessions.iter().map(|s| s.leg).collect();
        self.tokens_checked.retain(|leg| live.contains(leg));
        revoked
    }
}

/// Runs the watch until the process ends.
pub fn spawn(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let watch = Arc::new(std::sync::Mutex::new(RoomWatch::default()));
        let pid = std::process::id();
        let mut interval = tokio::time::interval(WATCH_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let passing = shared.clone();
            let watch = watch.clone();
            let token_holders = shared.webrtc.token_holders();
            let pass = shared
                .store
                .run(move |store| {
                    let mut watch = watch.lock().unwrap_or_else(|p| p.into_inner());
                    let close = watch.pass(
                        store,
                        &passing.conferences,
                        pid,
                        jiff::Timestamp::now().as_millisecond(),
                    );
                    (close, watch.revoked_sessions(store, &token_holders))
                })
                .await;
            match pass {
                Ok((close, revoked)) => {
                    for number in &close {
                        let members = shared.conferences.close(number);
                        tracing::info!(room = %number, members, "room changed in the store while open; session ended");
                    }
                    for session in revoked {
                        shared.webrtc.end_revoked(&shared, session);
                    }
                }
                Err(err) => tracing::error!("room watch pass failed: {err}"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call_event::CallEvent;
    use crate::call_event::Notice;
    use crate::conference::{Refusal, RoomTerms};
    use crate::ids::LegId;
    use tokio::sync::mpsc;

    struct Fixture {
        dir: std::path::PathBuf,
        server: store::Store,
        admin: store::Store,
        rooms: Registry,
        watch: RoomWatch,
    }

    impl Fixture {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("amt-watch-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self {
                server: store::Store::open(&dir).unwrap(),
                admin: store::Store::open(&dir).unwrap(),
                dir,
                rooms: Registry::default(),
                watch: RoomWatch::default(),
            }
        }

        fn create(&self, number: &str, pin: Option<&str>, at: i64) {
            let mut room = store::NewRoom::new(number, at);
            room.pin = pin.map(str::to_owned);
            self.admin.room_create(&room).unwrap();
        }

        /// A caller joins `number` the way the conference action does: with the guard of
        /// its own lookup.
        fn join(
            &self,
            number: &str,
            call: crate::ids::LegId,
        ) -> (Result<(), Refusal>, mpsc::Receiver<(LegId, CallEvent)>) {
            let (tx, rx) = mpsc::channel(8);
            let stored = self.server.room_get(number).unwrap();
            let admitted = self
                .rooms
                .admit(
                    number,
                    call,
                    false,
                    RoomTerms::of(stored.as_ref()),
                    crate::conference::Entrant {
                        label: crate::conference::MemberLabel::phone("0711"),
                        notices: tx,
                    },
                )
                .map(|_| ());
            (admitted, rx)
        }

        fn pass(&mut self) -> Vec<String> {
            self.watch.pass(&self.server, &self.rooms, 4242, 1)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn deleting_a_pin_room_in_use_ends_its_session_and_keeps_newcomers_out() {
        let mut f = Fixture::new("delete");
        f.create("1234", Some("4321"), 1);
        let (admitted, mut member) = f.join("1234", LegId::new(1));
        assert_eq!(admitted, Ok(()));
        assert!(f.pass().is_empty(), "nothing changed");
        assert_eq!(f.server.live_room("1234").unwrap().unwrap().participants, 1);

        f.admin.room_delete("1234").unwrap();
        // Before the watch has run, the next caller finds no stored room (so no PIN is asked)
        // and must still not get into the session that was opened under the PIN.
        let (newcomer, _) = f.join("1234", LegId::new(2));
        assert_eq!(newcomer, Err(Refusal::Closing));

        assert_eq!(f.pass(), vec!["1234".to_string()]);
        assert_eq!(f.rooms.close("1234"), 1);
        assert_eq!(
            member.try_recv(),
            Ok((LegId::new(1), CallEvent::Notice(Notice::Closed)))
        );
        let (during_close, _) = f.join("1234", LegId::new(3));
        assert_eq!(during_close, Err(Refusal::Closing));
    }

    #[test]
    fn a_room_re_created_with_another_pin_or_stored_over_an_open_one_is_closed() {
        let mut f = Fixture::new("recreate");
        f.create("1234", Some("4321"), 1);
        f.join("1234", LegId::new(1)).0.unwrap();
        // An on-demand room (no stored row) that an admin then creates with a PIN.
        f.join("77", LegId::new(2)).0.unwrap();
        assert!(f.pass().is_empty());
        f.admin.room_delete("1234").unwrap();
        f.create("1234", Some("9999"), 2);
        f.create("77", Some("5555"), 2);
        let mut closed = f.pass();
        closed.sort();
        assert_eq!(closed, vec!["1234".to_string(), "77".to_string()]);
    }

    #[test]
    fn reported_rooms_follow_joins_and_leaves() {
        let mut f = Fixture::new("report");
        f.join("5", LegId::new(1)).0.unwrap();
        f.join("5", LegId::new(2)).0.unwrap();
        f.pass();
        assert_eq!(f.server.live_room("5").unwrap().unwrap().participants, 2);
        assert_eq!(f.admin.live_room("5").unwrap().unwrap().server_pid, 4242);
        f.rooms.close("5");
        f.pass();
        assert!(
            f.admin.live_room("5").unwrap().is_some(),
            "members still leaving"
        );
    }

    #[test]
    fn a_revoked_or_replaced_token_ends_the_sessions_it_let_in() {
        let mut f = Fixture::new("tokens");
        let whip = f
            .admin
            .room_token_issue("1234", store::TokenKind::Whip, 1)
            .unwrap();
        let whep = f
            .admin
            .room_token_issue("1234", store::TokenKind::Whep, 1)
            .unwrap();
        let holder = |leg: u64, kind: store::TokenKind, token: &str| TokenHolder {
            leg: LegId::new(leg),
            kind,
            room: "1234".into(),
            token: store::token_hash(token),
        };
        let sessions = vec![
            holder(1, store::TokenKind::Whip, &whip),
            holder(2, store::TokenKind::Whep, &whep),
        ];
        assert!(f.watch.revoked_sessions(&f.server, &sessions).is_empty());
        assert!(f.watch.revoked_sessions(&f.server, &sessions).is_empty());

        f.admin
            .room_token_revoke("1234", store::TokenKind::Whip)
            .unwrap();
        assert_eq!(
            f.watch.revoked_sessions(&f.server, &sessions),
            vec![LegId::new(1)]
        );
        // A new WHEP token replaces the old one, which lets nobody stay.
        let sessions = vec![sessions[1].clone()];
        f.admin
            .room_token_issue("1234", store::TokenKind::Whep, 2)
            .unwrap();
        assert_eq!(
            f.watch.revoked_sessions(&f.server, &sessions),
            vec![LegId::new(2)]
        );
    }
}
