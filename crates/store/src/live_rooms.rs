//! Which conference rooms a running server has open right now, so that offline admin commands
//! (`room delete`, `room create`) can tell that a room is in use, and the server can notice an
//! admin's change to a room it is hosting.
//!
//! The server rewrites its own rows; each row names the server's process id, so rows left by a
//! server that crashed can be recognised as stale by whoever reads them.

use crate::db::params;

use crate::db::Dialect;
use crate::{Store, StoreError};

/// One open room as a running server last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRoom {
    /// The room number.
    pub number: String,
    /// Callers in the room.
    pub participants: u32,
    /// Process id of the server hosting it.
    pub server_pid: u32,
    /// Unix time in milliseconds of the report.
    pub updated_at_ms: i64,
}

impl Store {
    /// Replaces every row of server `server_pid` with `rooms` (number, participants), at once.
    pub fn live_rooms_replace(
        &self,
        server_pid: u32,
        rooms: &[(String, u32)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.db.transaction()?;
        tx.execute("DELETE FROM live_room WHERE server_pid = ?1", [server_pid])?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO live_room (number, participants, server_pid, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (number) DO UPDATE SET participants = excluded.participants,
                     server_pid = excluded.server_pid, updated_at_ms = excluded.updated_at_ms",
            )?;
            for (number, participants) in rooms {
                insert.execute(params![number, participants, server_pid, now_ms])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The open room with this number, if a server reported one.
    pub fn live_room(&self, number: &str) -> Result<Option<LiveRoom>, StoreError> {
        use crate::db::OptionalExtension;
        Ok(self
            .db
            .query_row(
                "SELECT number, participants, server_pid, updated_at_ms FROM live_room WHERE number = ?1",
                [number],
                |row| {
                    Ok(LiveRoom {
                        number: row.get(0)?,
                        participants: row.get(1)?,
                        server_pid: row.get(2)?,
                        updated_at_ms: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// A number that changes whenever another connection (another process, e.g. the admin
    /// CLI) committed a change to the database. On SQLite this connection's own writes do not
    /// change it (`PRAGMA data_version`). PostgreSQL has no such counter: there it is the
    /// next transaction id to be handed out, which moves with every writing transaction of
    /// the cluster, our own included. Moving too often only costs the caller a re-check of
    /// what it holds; it never hides a change.
    pub fn external_change_counter(&self) -> Result<i64, StoreError> {
        let sql = match self.db.dialect() {
            Dialect::Sqlite => "PRAGMA data_version",
            // xid8 has no cast to bigint; its text form is the number.
            Dialect::Postgres => {
                "SELECT CAST(CAST(pg_snapshot_xmax(pg_current_snapshot()) AS TEXT) AS BIGINT)"
            }
        };
        Ok(self.db.query_row(sql, [], |row| row.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};

    fn a_server_report_replaces_its_own_rows_only(backend: Backend) {
        let store = backend.open();
        store
            .live_rooms_replace(10, &[("1234".into(), 3), ("77".into(), 1)], 5)
            .unwrap();
        store
            .live_rooms_replace(20, &[("555".into(), 2)], 6)
            .unwrap();
        store
            .live_rooms_replace(10, &[("1234".into(), 4)], 7)
            .unwrap();
        assert_eq!(
            store.live_room("1234").unwrap(),
            Some(LiveRoom {
                number: "1234".into(),
                participants: 4,
                server_pid: 10,
                updated_at_ms: 7
            })
        );
        assert_eq!(store.live_room("77").unwrap(), None, "closed room gone");
        assert_eq!(store.live_room("555").unwrap().unwrap().server_pid, 20);
    }

    #[test]
    fn another_connections_commit_moves_the_change_counter() {
        let dir = std::env::temp_dir().join(format!("amt-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let server = Store::open(&dir).unwrap();
        let admin = Store::open(&dir).unwrap();
        let before = server.external_change_counter().unwrap();
        server.live_rooms_replace(1, &[("1".into(), 1)], 1).unwrap();
        assert_eq!(
            server.external_change_counter().unwrap(),
            before,
            "own writes do not count"
        );
        admin.room_delete("1").unwrap();
        admin.live_rooms_replace(2, &[("2".into(), 1)], 1).unwrap();
        assert_ne!(server.external_change_counter().unwrap(), before);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn another_connections_commit_moves_the_change_counter_on_postgres() {
        let url = crate::test_cluster::fresh_database();
        let server = Store::open_postgres(&url).unwrap();
        let admin = Store::open_postgres(&url).unwrap();
        let before = server.external_change_counter().unwrap();
        assert_eq!(
            server.external_change_counter().unwrap(),
            before,
            "reading moves nothing"
        );
        admin.live_rooms_replace(2, &[("2".into(), 1)], 1).unwrap();
        assert_ne!(server.external_change_counter().unwrap(), before);
    }

    on_both_backends!(a_server_report_replaces_its_own_rows_only,);
}
