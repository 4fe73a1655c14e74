//! Recordings of conference rooms: where the file is and when it started and ended.
//!
//! Any room can be recorded, including rooms opened on demand that have no row in `room`,
//! so a recording names its room by number without a foreign key, and deleting a room keeps
//! its recordings listed (the files are still on disk).

use std::path::{Path, PathBuf};

use crate::db::{OptionalExtension, params};

use crate::rooms::validate_room_number;
use crate::{Store, StoreError};

/// Identifies one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId(pub i64);

/// One recording of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// Its id.
    pub id: RecordingId,
    /// The recorded room's number.
    pub room: String,
    /// The recording file.
    pub path: PathBuf,
    /// Unix time in milliseconds when recording started.
    pub started_at_ms: i64,
    /// Unix time in milliseconds when it ended; `None` while running or after a crash.
    pub ended_at_ms: Option<i64>,
    /// Size of the finished file in bytes; `None` while running or after a crash.
    pub bytes: Option<u64>,
}

impl Store {
    /// Notes that recording of `room` into `path` has started.
    pub fn recording_start(
        &self,
        room: &str,
        path: &Path,
        started_at_ms: i64,
    ) -> Result<RecordingId, StoreError> {
        validate_room_number(room)?;
        let path_text = path
            .to_str()
            .ok_or_else(|| StoreError::NonUtf8Path(path.to_path_buf()))?;
        Ok(RecordingId(self.db.query_row(
            "INSERT INTO recording (room, path, started_at_ms) VALUES (?1, ?2, ?3) RETURNING id",
            params![room, path_text, started_at_ms],
            |row| row.get(0),
        )?))
    }

    /// Notes that a recording ended, with the final file size; a recording finishes once.
    pub fn recording_finish(
        &self,
        id: RecordingId,
        ended_at_ms: i64,
        bytes: u64,
    ) -> Result<(), StoreError> {
        let stored_bytes =
            i64::try_from(bytes).map_err(|_| StoreError::RecordingTooLarge(bytes))?;
        let updated = self.db.execute(
            "UPDATE recording SET ended_at_ms = ?2, bytes = ?3 WHERE id = ?1 AND ended_at_ms IS NULL",
            params![id.0, ended_at_ms, stored_bytes],
        )?;
        if updated == 1 {
            return Ok(());
        }
        let exists = self
            .db
            .query_row("SELECT 1 FROM recording WHERE id = ?1", [id.0], |_| Ok(()))
            .optional()?
            .is_some();
        Err(if exists {
            StoreError::RecordingAlreadyFinished(id.0)
        } else {
            StoreError::NoSuchRecording(id.0)
        })
    }

    /// All recordings of a room, oldest first.
    pub fn recordings_for_room(&self, room: &str) -> Result<Vec<Recording>, StoreError> {
        self.recordings_where("room = ?1", [room])
    }

    /// Every recording, oldest first.
    pub fn recordings_all(&self) -> Result<Vec<Recording>, StoreError> {
        self.recordings_where("1 = 1", [])
    }

    /// The recording `id`, if any.
    pub fn recording_get(&self, id: RecordingId) -> Result<Option<Recording>, StoreError> {
        Ok(self.recordings_where("id = ?1", [id.0])?.into_iter().next())
    }

    /// Forgets recording `id` (its file is the caller's to delete); the recording as it was,
    /// `None` if there was none.
    pub fn recording_delete(&self, id: RecordingId) -> Result<Option<Recording>, StoreError> {
        let found = self.recording_get(id)?;
        if found.is_some() {
            self.db
                .execute("DELETE FROM recording WHERE id = ?1", [id.0])?;
        }
        Ok(found)
    }

    /// Forgets the finished recordings that started before `cutoff_ms` and returns them
    /// (their files are the caller's to delete); a running one is left alone.
    pub fn recordings_expire(&self, cutoff_ms: i64) -> Result<Vec<Recording>, StoreError> {
        let tx = self.db.transaction()?;
        let expired = self.recordings_where(
            "started_at_ms < ?1 AND ended_at_ms IS NOT NULL",
            [cutoff_ms],
        )?;
        tx.execute(
            "DELETE FROM recording WHERE started_at_ms < ?1 AND ended_at_ms IS NOT NULL",
            [cutoff_ms],
        )?;
        tx.commit()?;
        Ok(expired)
    }

    fn recordings_where<P: crate::db::Params>(
        &self,
        condition: &str,
        params: P,
    ) -> Result<Vec<Recording>, StoreError> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT id, room, path, started_at_ms, ended_at_ms, bytes FROM recording
             WHERE {condition} ORDER BY started_at_ms, id"
        ))?;
        let rows = stmt.query_map(params, |row| {
            Ok(Recording {
                id: RecordingId(row.get(0)?),
                room: row.get(1)?,
                path: PathBuf::from(row.get::<_, String>(2)?),
                started_at_ms: row.get(3)?,
                ended_at_ms: row.get(4)?,
                bytes: row
                    .get::<_, Option<i64>>(5)?
                    .map(|b| {
                        u64::try_from(b).map_err(|_| crate::db::DatabaseError::Column {
                            column: 5,
                            problem: format!("{b} is not a size in bytes"),
                        })
                    })
                    .transpose()?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};

    fn recordings_are_found_deleted_and_expired_but_a_running_one_is_kept(backend: Backend) {
        let store = backend.open();
        let old = store
            .recording_start("4711", Path::new("a.wav"), 1_000)
            .unwrap();
        store.recording_finish(old, 2_000, 100).unwrap();
        let running = store
            .recording_start("4711", Path::new("b.wav"), 1_500)
            .unwrap();
        let new = store
            .recording_start("600", Path::new("c.wav"), 9_000)
            .unwrap();
        store.recording_finish(new, 9_500, 100).unwrap();
        assert_eq!(store.recordings_all().unwrap().len(), 3);
        assert_eq!(store.recording_get(new).unwrap().unwrap().room, "600");
        let expired = store.recordings_expire(5_000).unwrap();
        assert_eq!(expired.iter().map(|r| r.id).collect::<Vec<_>>(), vec![old]);
        assert!(store.recording_get(running).unwrap().is_some());
        assert_eq!(store.recording_delete(new).unwrap().unwrap().id, new);
        assert_eq!(store.recording_delete(new).unwrap(), None);
        assert_eq!(store.recordings_all().unwrap().len(), 1);
    }

    fn started_then_finished_recording_is_listed_for_its_room_only(backend: Backend) {
        let store = backend.open();
        let first = store
            .recording_start("4711", Path::new("rec/4711-1.wav"), 1_000)
            .unwrap();
        let other = store
            .recording_start("600", Path::new("rec/600-1.wav"), 1_500)
            .unwrap();
        let second = store
            .recording_start("4711", Path::new("rec/4711-2.wav"), 2_000)
            .unwrap();
        assert_ne!(first, second);
        store.recording_finish(first, 1_900, 48_000).unwrap();

        let recordings = store.recordings_for_room("4711").unwrap();
        assert_eq!(
            recordings,
            vec![
                Recording {
                    id: first,
                    room: "4711".into(),
                    path: "rec/4711-1.wav".into(),
                    started_at_ms: 1_000,
                    ended_at_ms: Some(1_900),
                    bytes: Some(48_000),
                },
                Recording {
                    id: second,
                    room: "4711".into(),
                    path: "rec/4711-2.wav".into(),
                    started_at_ms: 2_000,
                    ended_at_ms: None,
                    bytes: None,
                },
            ]
        );
        assert_eq!(store.recordings_for_room("600").unwrap()[0].id, other);
        assert_eq!(store.recordings_for_room("1").unwrap(), vec![]);
    }

    fn finishing_twice_or_an_unknown_id_is_an_error(backend: Backend) {
        let store = backend.open();
        let id = store.recording_start("1", Path::new("a.wav"), 0).unwrap();
        store.recording_finish(id, 10, 100).unwrap();
        assert!(matches!(
            store.recording_finish(id, 20, 200),
            Err(StoreError::RecordingAlreadyFinished(n)) if n == id.0
        ));
        assert_eq!(store.recordings_for_room("1").unwrap()[0].bytes, Some(100));
        assert!(matches!(
            store.recording_finish(RecordingId(id.0 + 1), 20, 200),
            Err(StoreError::NoSuchRecording(_))
        ));
    }

    fn rejects_bad_room_number_and_oversized_byte_count(backend: Backend) {
        let store = backend.open();
        assert!(matches!(
            store.recording_start("room1", Path::new("a.wav"), 0),
            Err(StoreError::InvalidRoomNumber { .. })
        ));
        let id = store.recording_start("1", Path::new("a.wav"), 0).unwrap();
        assert!(matches!(
            store.recording_finish(id, 1, u64::MAX),
            Err(StoreError::RecordingTooLarge(u64::MAX))
        ));
    }

    #[cfg(unix)]
    fn rejects_non_utf8_path(backend: Backend) {
        use std::os::unix::ffi::OsStrExt;
        let store = backend.open();
        let path = Path::new(std::ffi::OsStr::from_bytes(b"rec/\xff.wav"));
        assert!(matches!(
            store.recording_start("1", path, 0),
            Err(StoreError::NonUtf8Path(p)) if p == path
        ));
    }

    on_both_backends!(
        recordings_are_found_deleted_and_expired_but_a_running_one_is_kept,
        started_then_finished_recording_is_listed_for_its_room_only,
        finishing_twice_or_an_unknown_id_is_an_error,
        rejects_bad_room_number_and_oversized_byte_count,
        rejects_non_utf8_path,
    );
}
