//! Calls in progress, so that a node that dies (power cut, SIGKILL) leaves no call without a
//! record: a call is noted when it starts and forgotten when its record is written
//! ([`Store::record_call`]); when the node starts again, every call it still has noted gets a
//! record that says it ended by the node's failure ([`Store::calls_interrupted`]). Calls are
//! noted per node, so that in a pool on one store a node only closes its own.

use crate::db::params;
use crate::{CallMedia, CallRecord, Store, StoreError};

/// What the record of a call cut by its node's failure says about how it ended.
pub const INTERRUPTED_REASON: &str = "ended by failure: the node stopped";

/// A call that started on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInProgress {
    /// SIP Call-ID of the inbound leg.
    pub call_id: String,
    /// The node that took it (its SIP address in a pool).
    pub node: String,
    /// Caller's user part or URI.
    pub caller: String,
    /// Dialled number.
    pub callee: String,
    /// Unix time in milliseconds when the INVITE arrived.
    pub started_at_ms: i64,
}

impl Store {
    /// Notes that `call` started (a second note of the same Call-ID replaces the first).
    pub fn call_started(&self, call: &CallInProgress) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO call_in_progress (call_id, node, caller, callee, started_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (call_id) DO UPDATE SET node = excluded.node, caller = excluded.caller,
                 callee = excluded.callee, started_at_ms = excluded.started_at_ms",
            params![
                call.call_id,
                call.node,
                call.caller,
                call.callee,
                call.started_at_ms
            ],
        )?;
        Ok(())
    }

    /// The calls `node` has noted and not finished, oldest first.
    pub fn calls_in_progress(&self, node: &str) -> Result<Vec<CallInProgress>, StoreError> {
        let mut stmt = self.db.prepare(
            "SELECT call_id, node, caller, callee, started_at_ms FROM call_in_progress
             WHERE node = ?1 ORDER BY started_at_ms, call_id",
        )?;
        let rows = stmt.query_map(params![node], |row| {
            Ok(CallInProgress {
                call_id: row.get(0)?,
                node: row.get(1)?,
                caller: row.get(2)?,
                callee: row.get(3)?,
                started_at_ms: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes a record for every call `node` noted and never finished, as ended at
    /// `ended_at_ms` by the node's failure, and forgets them; returns how many. Whether such
    /// a call was answered is not known, so its record says unanswered with status 0.
    pub fn calls_interrupted(&self, node: &str, ended_at_ms: i64) -> Result<usize, StoreError> {
        let calls = self.calls_in_progress(node)?;
        for call in &calls {
            self.record_call(&CallRecord {
                call_id: call.call_id.clone(),
                caller: call.caller.clone(),
                callee: call.callee.clone(),
                started_at_ms: call.started_at_ms,
                ended_at_ms: ended_at_ms.max(call.started_at_ms),
                answered: false,
                final_status: 0,
                end_reason: INTERRUPTED_REASON.to_owned(),
                media: CallMedia::default(),
                contacts_rung: 0,
                connected: None,
                features: Vec::new(),
                ring_group: None,
            })?;
        }
        Ok(calls.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};

    fn call(id: &str, node: &str, at: i64) -> CallInProgress {
        CallInProgress {
            call_id: id.into(),
            node: node.into(),
            caller: "0711123".into(),
            callee: "81234".into(),
            started_at_ms: at,
        }
    }

    fn finished(id: &str) -> CallRecord {
        CallRecord {
            call_id: id.into(),
            caller: "0711123".into(),
            callee: "81234".into(),
            started_at_ms: 1_000,
            ended_at_ms: 5_000,
            answered: true,
            final_status: 200,
            end_reason: "caller hung up".into(),
            media: CallMedia::default(),
            contacts_rung: 0,
            connected: None,
            features: Vec::new(),
            ring_group: None,
        }
    }

    on_both_backends!(
        a_finished_call_is_forgotten_and_an_unfinished_one_is_closed_as_failed_on_its_node_only
    );

    fn a_finished_call_is_forgotten_and_an_unfinished_one_is_closed_as_failed_on_its_node_only(
        backend: Backend,
    ) {
        let store = backend.open();
        store
            .call_started(&call("a", "10.0.0.11:5060", 1_000))
            .unwrap();
        store
            .call_started(&call("b", "10.0.0.11:5060", 2_000))
            .unwrap();
        store
            .call_started(&call("c", "10.0.0.12:5060", 3_000))
            .unwrap();
        // Call a ends normally: its record is written and it is no longer in progress.
        store.record_call(&finished("a")).unwrap();
        assert_eq!(
            store.calls_in_progress("10.0.0.11:5060").unwrap(),
            [call("b", "10.0.0.11:5060", 2_000)]
        );
        // Node .11 died and starts again: b gets its record, c (node .12's) is left alone.
        assert_eq!(store.calls_interrupted("10.0.0.11:5060", 9_000).unwrap(), 1);
        assert!(
            store
                .calls_in_progress("10.0.0.11:5060")
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.calls_in_progress("10.0.0.12:5060").unwrap().len(), 1);
        let b = store.call_by_id("b").unwrap().unwrap();
        assert_eq!(b.end_reason, INTERRUPTED_REASON);
        assert_eq!((b.started_at_ms, b.ended_at_ms), (2_000, 9_000));
        assert!(!b.answered);
        assert_eq!(
            store.call_by_id("a").unwrap().unwrap().end_reason,
            "caller hung up"
        );
        // Nothing left to close the second time.
        assert_eq!(store.calls_interrupted("10.0.0.11:5060", 9_500).unwrap(), 0);
    }
}
