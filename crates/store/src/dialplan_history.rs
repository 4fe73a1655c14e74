//! Every dialplan that took effect, so an admin can see what changed and roll back.
//!
//! A version is the whole set of files (relative path and text) at one reload. Saving the
//! same set again returns the newest version instead of adding a copy, so reloads that change
//! nothing (a touched file, a watcher firing twice) do not fill the history.

use std::path::{Component, Path};

use crate::db::params;

use crate::{Store, StoreError};

/// One stored dialplan version, without its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialplanVersion {
    /// Version number, counting up from 1.
    pub version: u32,
    /// Unix time in milliseconds when it was stored.
    pub created_at_ms: i64,
    /// Who or what stored it and why ("reload by admin", "file change").
    pub comment: String,
    /// How many files it holds.
    pub file_count: u32,
}

fn validate_relative(path: &str) -> Result<(), StoreError> {
    let relative = !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if relative {
        Ok(())
    } else {
        Err(StoreError::DialplanPathNotRelative(path.to_owned()))
    }
}

impl Store {
    /// Stores a dialplan version unless it equals the newest one; returns the version holding `files`.
    pub fn dialplan_version_add(
        &self,
        files: &[(String, String)],
        comment: &str,
        at_ms: i64,
    ) -> Result<u32, StoreError> {
        let mut sorted: Vec<&(String, String)> = files.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for pair in sorted.windows(2) {
            if let [a, b] = pair
                && a.0 == b.0
            {
                return Err(StoreError::DuplicateDialplanFile(a.0.clone()));
            }
        }
        for (path, _) in &sorted {
            validate_relative(path)?;
        }

        let tx = self.db.transaction()?;
        let newest: Option<u32> =
            tx.query_row("SELECT max(version) FROM dialplan_version", [], |row| {
                row.get(0)
            })?;
        if let Some(newest) = newest {
            // SQLite's default BINARY collation orders like Rust's `str` ordering, so both
            // sides are sorted the same way.
            let mut stmt = tx
                .prepare("SELECT path, text FROM dialplan_file WHERE version = ?1 ORDER BY path")?;
            let stored = stmt.query_map([newest], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            let mut same = true;
            let mut count = 0usize;
            for row in stored {
                let (path, text) = row?;
                match sorted.get(count) {
                    Some((p, t)) if *p == path && *t == text => {}
                    _ => {
                        same = false;
                        break;
                    }
                }
                count += 1;
            }
            if same && count == sorted.len() {
                return Ok(newest);
            }
        }

        let version = newest.map_or(1, |v| v.saturating_add(1));
        tx.execute(
            "INSERT INTO dialplan_version (version, created_at_ms, comment) VALUES (?1, ?2, ?3)",
            params![version, at_ms, comment],
        )?;
        {
            let mut insert =
                tx.prepare("INSERT INTO dialplan_file (version, path, text) VALUES (?1, ?2, ?3)")?;
            for (path, text) in &sorted {
                insert.execute(params![version, path, text])?;
            }
        }
        tx.commit()?;
        Ok(version)
    }

    /// All stored dialplan versions, newest first.
    pub fn dialplan_versions(&self) -> Result<Vec<DialplanVersion>, StoreError> {
        let mut stmt = self.db.prepare(
            "SELECT v.version, v.created_at_ms, v.comment,
                    (SELECT count(*) FROM dialplan_file f WHERE f.version = v.version)
             FROM dialplan_version v ORDER BY v.version DESC",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(DialplanVersion {
                version: row.get(0)?,
                created_at_ms: row.get(1)?,
                comment: row.get(2)?,
                file_count: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The file paths of every stored version (version → paths sorted), for a history that
    /// names the files without reading their texts.
    pub fn dialplan_version_paths(
        &self,
    ) -> Result<std::collections::BTreeMap<u32, Vec<String>>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT version, path FROM dialplan_file ORDER BY version, path")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, u32>(0)?, row.get(1)?)))?;
        let mut paths = std::collections::BTreeMap::<u32, Vec<String>>::new();
        for row in rows {
            let (version, path) = row?;
            paths.entry(version).or_default().push(path);
        }
        Ok(paths)
    }

    /// The files of one dialplan version sorted by path, or `None` if there is no such version.
    pub fn dialplan_version_files(
        &self,
        version: u32,
    ) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let tx = self.db.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM dialplan_version WHERE version = ?1)",
            [version],
            |row| row.get(0),
        )?;
        if !exists {
            return Ok(None);
        }
        let mut stmt =
            tx.prepare("SELECT path, text FROM dialplan_file WHERE version = ?1 ORDER BY path")?;
        let rows = stmt.query_map([version], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(Some(rows.collect::<Result<_, _>>()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    fn versions_count_up_and_keep_their_files(backend: Backend) {
        let store = backend.open();
        let v1 = files(&[("default.toml", "a = 1\n"), ("staff/home.toml", "b = 2\n")]);
        let v2 = files(&[("default.toml", "a = 2\n")]);
        assert_eq!(store.dialplan_version_add(&v1, "first", 1_000).unwrap(), 1);
        assert_eq!(store.dialplan_version_add(&v2, "second", 2_000).unwrap(), 2);
        assert_eq!(
            store.dialplan_versions().unwrap(),
            vec![
                DialplanVersion {
                    version: 2,
                    created_at_ms: 2_000,
                    comment: "second".into(),
                    file_count: 1,
                },
                DialplanVersion {
                    version: 1,
                    created_at_ms: 1_000,
                    comment: "first".into(),
                    file_count: 2,
                },
            ]
        );
        assert_eq!(store.dialplan_version_files(1).unwrap(), Some(v1));
        assert_eq!(store.dialplan_version_files(2).unwrap(), Some(v2));
        assert_eq!(store.dialplan_version_files(3).unwrap(), None);
        let paths = store.dialplan_version_paths().unwrap();
        assert_eq!(paths[&1], ["default.toml", "staff/home.toml"]);
        assert_eq!(paths[&2], ["default.toml"]);
        assert_eq!(store.dialplan_version_files(0).unwrap(), None);
    }

    fn identical_to_newest_returns_that_version_whatever_the_file_order(backend: Backend) {
        let store = backend.open();
        let v1 = files(&[("b.toml", "x"), ("a.toml", "y")]);
        assert_eq!(store.dialplan_version_add(&v1, "one", 1).unwrap(), 1);
        let reordered = files(&[("a.toml", "y"), ("b.toml", "x")]);
        assert_eq!(
            store.dialplan_version_add(&reordered, "again", 2).unwrap(),
            1
        );
        assert_eq!(store.dialplan_versions().unwrap().len(), 1);
        assert_eq!(store.dialplan_versions().unwrap()[0].comment, "one");
    }

    fn any_difference_makes_a_new_version(backend: Backend) {
        let store = backend.open();
        let base = files(&[("a.toml", "y"), ("b.toml", "x")]);
        store.dialplan_version_add(&base, "base", 0).unwrap();
        let changes = [
            files(&[("a.toml", "y")]),                                  // file removed
            files(&[("a.toml", "y"), ("b.toml", "x"), ("c.toml", "")]), // file added
            files(&[("a.toml", "y"), ("b.toml", "x ")]),                // text changed
            files(&[("a.toml", "y"), ("c.toml", "x")]),                 // file renamed
        ];
        let mut expected = 1;
        for change in &changes {
            // Going back to the base in between makes each change compare against it.
            expected += 1;
            assert_eq!(
                store.dialplan_version_add(change, "change", 0).unwrap(),
                expected
            );
            expected += 1;
            assert_eq!(
                store.dialplan_version_add(&base, "back", 0).unwrap(),
                expected
            );
        }
    }

    fn older_identical_version_is_not_reused(backend: Backend) {
        let store = backend.open();
        let a = files(&[("a.toml", "1")]);
        let b = files(&[("a.toml", "2")]);
        store.dialplan_version_add(&a, "", 0).unwrap();
        store.dialplan_version_add(&b, "", 0).unwrap();
        assert_eq!(store.dialplan_version_add(&a, "rollback", 0).unwrap(), 3);
    }

    fn empty_file_set_is_a_version_and_dedupes(backend: Backend) {
        let store = backend.open();
        assert_eq!(store.dialplan_version_add(&[], "empty", 0).unwrap(), 1);
        assert_eq!(store.dialplan_version_add(&[], "empty", 0).unwrap(), 1);
        assert_eq!(store.dialplan_version_files(1).unwrap(), Some(vec![]));
    }

    fn rejects_duplicate_and_non_relative_paths(backend: Backend) {
        let store = backend.open();
        assert!(matches!(
            store.dialplan_version_add(&files(&[("a.toml", "1"), ("a.toml", "2")]), "", 0),
            Err(StoreError::DuplicateDialplanFile(p)) if p == "a.toml"
        ));
        for bad in ["", "/etc/passwd", "../a.toml", "x/../../a.toml"] {
            assert!(
                matches!(
                    store.dialplan_version_add(&files(&[(bad, "1")]), "", 0),
                    Err(StoreError::DialplanPathNotRelative(p)) if p == bad
                ),
                "{bad:?}"
            );
        }
        assert_eq!(store.dialplan_versions().unwrap(), vec![]);
    }

    on_both_backends!(
        versions_count_up_and_keep_their_files,
        identical_to_newest_returns_that_version_whatever_the_file_order,
        any_difference_makes_a_new_version,
        older_identical_version_is_not_reused,
        empty_file_set_is_a_version_and_dedupes,
        rejects_duplicate_and_non_relative_paths,
    );
}
