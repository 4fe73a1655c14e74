//! Who is logged out of which ring group (`[groups.NAME]` in the dialplan).
//!
//! The dialplan says who belongs to a group; the store only keeps the members who logged
//! out (from their phone with a feature code, or by an admin), so a member added to a group
//! rings at once and a group renamed in the dialplan starts with everyone logged in. The
//! store does not know the groups: the server and the CLI check names against the plan.

use crate::db::params;

use crate::{Store, StoreError};

/// One member logged out of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLogout {
    /// The group's name in the dialplan.
    pub group: String,
    /// The member's extension.
    pub extension: String,
    /// Unix time in milliseconds when they logged out.
    pub since_ms: i64,
}

impl Store {
    /// Logs `extension` out of `group`: its calls no longer ring them. False when they
    /// were logged out already (the first time is kept).
    pub fn group_log_out(
        &self,
        group: &str,
        extension: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self.db.execute(
            "INSERT INTO ring_group_logout (group_name, extension, since_ms)
             VALUES (?1, ?2, ?3) ON CONFLICT (group_name, extension) DO NOTHING",
            params![group, extension, now_ms],
        )?;
        Ok(changed > 0)
    }

    /// Logs `extension` back in to `group`. False when they were not logged out.
    pub fn group_log_in(&self, group: &str, extension: &str) -> Result<bool, StoreError> {
        let changed = self.db.execute(
            "DELETE FROM ring_group_logout WHERE group_name = ?1 AND extension = ?2",
            params![group, extension],
        )?;
        Ok(changed > 0)
    }

    /// The members logged out of `group`, by extension.
    pub fn group_logged_out(&self, group: &str) -> Result<Vec<String>, StoreError> {
        let mut statement = self.db.prepare(
            "SELECT extension FROM ring_group_logout WHERE group_name = ?1 ORDER BY extension",
        )?;
        let rows = statement.query_map(params![group], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every logout of every group, by group and extension.
    pub fn group_logouts(&self) -> Result<Vec<GroupLogout>, StoreError> {
        let mut statement = self.db.prepare(
            "SELECT group_name, extension, since_ms FROM ring_group_logout
             ORDER BY group_name, extension",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(GroupLogout {
                group: row.get(0)?,
                extension: row.get(1)?,
                since_ms: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};

    fn a_member_logs_out_of_one_group_and_back_in(backend: Backend) {
        let store = backend.open();
        assert!(store.group_log_out("buergerservice", "101", 5).unwrap());
        // Twice changes nothing, and keeps the first time.
        assert!(!store.group_log_out("buergerservice", "101", 9).unwrap());
        assert!(store.group_log_out("bauhof", "102", 7).unwrap());
        assert_eq!(store.group_logged_out("buergerservice").unwrap(), ["101"]);
        assert_eq!(
            store.group_logged_out("kasse").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            store.group_logouts().unwrap(),
            vec![
                GroupLogout {
                    group: "bauhof".into(),
                    extension: "102".into(),
                    since_ms: 7,
                },
                GroupLogout {
                    group: "buergerservice".into(),
                    extension: "101".into(),
                    since_ms: 5,
                },
            ]
        );
        assert!(store.group_log_in("buergerservice", "101").unwrap());
        assert!(!store.group_log_in("buergerservice", "101").unwrap());
        assert!(store.group_logged_out("buergerservice").unwrap().is_empty());
    }

    fn the_call_record_keeps_the_ring_group_reached(backend: Backend) {
        let store = backend.open();
        let record = crate::CallRecord {
            call_id: "c1".into(),
            caller: "102".into(),
            callee: "700".into(),
            started_at_ms: 1,
            ended_at_ms: 2,
            answered: false,
            final_status: 480,
            end_reason: "dialplan finished".into(),
            media: crate::CallMedia::default(),
            contacts_rung: 2,
            connected: None,
            ring_group: Some("buergerservice".into()),
            // Written next to each other: each must come back in its own field.
            features: vec!["forwarded by 101 (always) to 102".into()],
        };
        store.record_call(&record).unwrap();
        assert_eq!(store.recent_calls(1).unwrap(), vec![record]);
    }

    on_both_backends!(
        a_member_logs_out_of_one_group_and_back_in,
        the_call_record_keeps_the_ring_group_reached,
    );
}
