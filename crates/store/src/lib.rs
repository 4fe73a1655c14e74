//! Durable state of amtsleitung: call records now; rooms, users, registrations and dialplan
//! history as the issues that need them arrive.
//!
//! SQLite (embedded, one file in the data directory) is the default. The API is synchronous
//! and small on purpose: the server calls it from a blocking thread, and a PostgreSQL backend
//! for multi-node set-ups can implement the same operations later. It knows nothing about SIP.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory we tried to create.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The database refused an operation.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database was written by a newer amtsleitung.
    #[error(
        "database schema version {found} is newer than this program knows ({known}); upgrade amtsleitung"
    )]
    SchemaTooNew {
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
}

/// Schema migrations, applied in order; index + 1 is the schema version after applying.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &["CREATE TABLE call_record (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL,
        caller TEXT NOT NULL,
        callee TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        ended_at_ms INTEGER NOT NULL,
        answered INTEGER NOT NULL,
        final_status INTEGER NOT NULL,
        end_reason TEXT NOT NULL
    );
    CREATE INDEX call_record_started ON call_record(started_at_ms);"];

/// One finished call, as written to the call log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// SIP Call-ID of the inbound leg.
    pub call_id: String,
    /// Caller's user part or URI.
    pub caller: String,
    /// Dialled number.
    pub callee: String,
    /// Unix time in milliseconds when the INVITE arrived.
    pub started_at_ms: i64,
    /// Unix time in milliseconds when the call ended.
    pub ended_at_ms: i64,
    /// Whether the call was answered.
    pub answered: bool,
    /// Final SIP status of the inbound INVITE (200 when answered).
    pub final_status: u16,
    /// Why the call ended, in words ("caller hung up", "no route", ...).
    pub end_reason: String,
}

/// The SQLite-backed store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `amtsleitung.db` in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join("amtsleitung.db");
        let conn = Connection::open(&path)?;
        // WAL keeps readers (admin API) from blocking the writer (call records at hangup);
        // synchronous=NORMAL is durable across process crashes, which is what we promise.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Self { conn, path };
        store.migrate()?;
        Ok(store)
    }

    /// Opens a private in-memory store (tests, `dialplan check` without a data dir).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let mut store = Self {
            conn: Connection::open_in_memory()?,
            path: PathBuf::from(":memory:"),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as i64;
        let found = self.schema_version()?;
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        let tx = self.conn.transaction()?;
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Appends a finished call to the call log.
    pub fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO call_record (call_id, caller, callee, started_at_ms, ended_at_ms, answered, final_status, end_reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                record.call_id,
                record.caller,
                record.callee,
                record.started_at_ms,
                record.ended_at_ms,
                record.answered,
                record.final_status,
                record.end_reason
            ],
        )?;
        Ok(())
    }

    /// The newest `limit` call records, newest first.
    pub fn recent_calls(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT call_id, caller, callee, started_at_ms, ended_at_ms, answered, final_status, end_reason
             FROM call_record ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |row| {
            Ok(CallRecord {
                call_id: row.get(0)?,
                caller: row.get(1)?,
                callee: row.get(2)?,
                started_at_ms: row.get(3)?,
                ended_at_ms: row.get(4)?,
                answered: row.get(5)?,
                final_status: row.get(6)?,
                end_reason: row.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The call record of one Call-ID, if any.
    pub fn call_by_id(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT call_id, caller, callee, started_at_ms, ended_at_ms, answered, final_status, end_reason
                 FROM call_record WHERE call_id = ?1 ORDER BY id DESC LIMIT 1",
                [call_id],
                |row| {
                    Ok(CallRecord {
                        call_id: row.get(0)?,
                        caller: row.get(1)?,
                        callee: row.get(2)?,
                        started_at_ms: row.get(3)?,
                        ended_at_ms: row.get(4)?,
                        answered: row.get(5)?,
                        final_status: row.get(6)?,
                        end_reason: row.get(7)?,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(call_id: &str) -> CallRecord {
        CallRecord {
            call_id: call_id.into(),
            caller: "alice".into(),
            callee: "600".into(),
            started_at_ms: 1_700_000_000_000,
            ended_at_ms: 1_700_000_010_000,
            answered: true,
            final_status: 200,
            end_reason: "caller hung up".into(),
        }
    }

    #[test]
    fn call_records_survive_reopening_the_database() {
        let dir = std::env::temp_dir().join(format!("amt-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = Store::open(&dir).unwrap();
            store.record_call(&sample("a@x")).unwrap();
            store.record_call(&sample("b@x")).unwrap();
        }
        let store = Store::open(&dir).unwrap();
        let calls = store.recent_calls(10).unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].call_id, "b@x", "newest first");
        assert_eq!(store.call_by_id("a@x").unwrap(), Some(sample("a@x")));
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_a_database_from_a_newer_version() {
        let dir = std::env::temp_dir().join(format!("amt-store-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("amtsleitung.db")).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        drop(conn);
        match Store::open(&dir) {
            Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
            other => panic!("expected SchemaTooNew, got {:?}", other.map(|_| ())),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_call_id_is_none() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.call_by_id("nope").unwrap(), None);
    }
}
