//! Changing the dialplan directory: drafts checked as the whole plan would be, files written
//! so a watching server never reads half of one, versions from the history written back,
//! diffs between versions, and a call explained. `amtsleitung dialplan` and the web console
//! both call these, so the two cannot drift apart.
//!
//! Paths here are relative to the dialplan directory (`main.toml`, `staff/home.toml`), as the
//! history stores them; diagnostics name the files the same way.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use dialplan::{CallFacts, Diagnostic, Plan, SourceFile};

use crate::sounds::SoundLibrary;

/// A dialplan file by its path relative to the directory, with its text.
pub type PlanFile = (String, String);

/// Why an edit of the dialplan directory was not made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The path names no dialplan file the server would read.
    #[error("{path:?} is not a dialplan file path: {reason}")]
    BadPath { path: String, reason: &'static str },
    /// The directory or a file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EditError + '_ {
    move |source| EditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `path` as the history spells it, if it names a dialplan file the server reads: relative,
/// only plain names (no `..`, `.`, root or drive), ending in `.toml`, and not below an
/// `examples` directory (the server skips those).
pub fn plan_path(path: &str) -> Result<String, EditError> {
    let bad = |reason| EditError::BadPath {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() || path.len() > 255 {
        return Err(bad("empty or too long"));
    }
    let mut names = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => match name.to_str() {
                Some(name) => names.push(name),
                None => return Err(bad("not UTF-8")),
            },
            _ => {
                return Err(bad(
                    "only a relative path of plain names, without `..` or `.`",
                ));
            }
        }
    }
    if names.contains(&"examples") {
        return Err(bad("files below examples/ are documentation, not read"));
    }
    match names.last() {
        Some(last) if last.ends_with(".toml") && last.len() > ".toml".len() => {}
        _ => return Err(bad("dialplan files end in .toml")),
    }
    if names.iter().any(|n| n.starts_with('.')) {
        return Err(bad("no hidden files or directories"));
    }
    Ok(names.join("/"))
}

/// The plan in `dir` as the server reads it, paths relative to `dir`.
pub fn current_files(dir: &Path) -> Result<Vec<PlanFile>, Vec<Diagnostic>> {
    Ok(crate::dialplan_files::read_sources(dir)?
        .into_iter()
        .map(|file| {
            let path = Path::new(&file.path);
            let relative = path.strip_prefix(dir).unwrap_or(path);
            (relative.display().to_string(), file.text)
        })
        .collect())
}

/// `files` with each of `drafts` in place of the file of its path (or added, sorted in as
/// the server would read it).
pub fn with_drafts(files: Vec<PlanFile>, drafts: &BTreeMap<String, String>) -> Vec<PlanFile> {
    let mut all: BTreeMap<String, String> = files.into_iter().collect();
    for (path, text) in drafts {
        all.insert(path.clone(), text.clone());
    }
    // read_sources sorts full paths; with one directory in front the order is the same.
    all.into_iter().collect()
}

/// Which of `drafts` do not exist in `files` yet (they would be created).
pub fn new_paths<'a>(files: &[PlanFile], drafts: &'a BTreeMap<String, String>) -> Vec<&'a str> {
    drafts
        .keys()
        .filter(|path| !files.iter().any(|(p, _)| p == *path))
        .map(String::as_str)
        .collect()
}

/// What checking a whole plan found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The plan, when it has no errors.
    pub plan: Option<Plan>,
    /// Errors first (when there are any), then warnings; `file:line:column` each.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Whether the plan may take effect.
    pub fn ok(&self) -> bool {
        self.plan.is_some()
    }
}

/// Checks `files` as the server's reload would (the same compiler, the same prompts).
pub fn check(files: &[PlanFile], sounds: Option<&SoundLibrary>) -> Checked {
    let sources: Vec<SourceFile> = files
        .iter()
        .map(|(path, text)| SourceFile {
            path: path.clone(),
            text: text.clone(),
        })
        .collect();
    match crate::dialplan_files::compile_files(&sources, sounds) {
        Ok((plan, warnings)) => Checked {
            plan: Some(plan),
            diagnostics: warnings,
        },
        Err(diagnostics) => Checked {
            plan: None,
            diagnostics,
        },
    }
}

/// Files written beside their targets under temporary names, to be renamed into place by
/// [`commit`](Self::commit); dropped uncommitted, the temporary files are removed. The
/// temporary names do not end in `.toml`, so neither the server nor its watcher reads them.
#[derive(Debug)]
pub struct StagedPlan {
    /// (temporary file, target) for each file to write.
    writes: Vec<(PathBuf, PathBuf)>,
    /// Files of the directory's plan that the new plan does not have.
    removals: Vec<PathBuf>,
}

impl StagedPlan {
    /// Writes `files` into `dir` under temporary names. With `whole`, `files` is the whole
    /// new plan and the directory's other dialplan files are to be removed (a rollback);
    /// otherwise only `files` change. Every path must pass [`plan_path`], and no file may
    /// land outside `dir` through a symbolic link.
    pub fn stage(dir: &Path, files: &[PlanFile], whole: bool) -> Result<Self, EditError> {
        let root = dir.canonicalize().map_err(io_error(dir))?;
        let mut staged = Self {
            writes: Vec::new(),
            removals: Vec::new(),
        };
        for (path, text) in files {
            let relative = plan_path(path)?;
            let target = dir.join(&relative);
            let parent = target.parent().unwrap_or(dir);
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
            let real_parent = parent.canonicalize().map_err(io_error(parent))?;
            if !real_parent.starts_with(&root) {
                return Err(EditError::BadPath {
                    path: path.clone(),
                    reason: "it leads out of the dialplan directory",
                });
            }
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let temporary = parent.join(format!(".{name}.{}.amt-tmp", std::process::id()));
            std::fs::write(&temporary, text).map_err(io_error(&temporary))?;
            staged.writes.push((temporary, target));
        }
        if whole {
            let current = current_files(dir).map_err(|diagnostics| EditError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::other(
                    diagnostics
                        .first()
                        .map_or_else(|| "cannot read".to_owned(), ToString::to_string),
                ),
            })?;
            for (path, _) in current {
                if !files.iter().any(|(p, _)| *p == path) {
                    staged.removals.push(dir.join(path));
                }
            }
        }
        Ok(staged)
    }

    /// Renames the files into place and removes the ones the plan no longer has.
    pub fn commit(mut self) -> Result<(), EditError> {
        for (temporary, target) in std::mem::take(&mut self.writes) {
            std::fs::rename(&temporary, &target).map_err(io_error(&target))?;
        }
        for path in std::mem::take(&mut self.removals) {
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
        Ok(())
    }
}

impl Drop for StagedPlan {
    fn drop(&mut self) {
        for (temporary, _) in &self.writes {
            let _ = std::fs::remove_file(temporary);
        }
    }
}

/// The files of stored `version`, or an error that says how to find one.
pub fn version_files(store: &store::Store, version: u32) -> anyhow::Result<Vec<PlanFile>> {
    store.dialplan_version_files(version)?.ok_or_else(|| {
        anyhow::anyhow!(
            "there is no dialplan version {version} (see `amtsleitung dialplan history`)"
        )
    })
}

/// A stored version's files, refused when one would not be written back safely.
pub fn restorable(version: u32, files: &[PlanFile]) -> anyhow::Result<()> {
    for (path, _) in files {
        plan_path(path).map_err(|err| anyhow::anyhow!("version {version}: {err}; not written"))?;
    }
    Ok(())
}

/// One file's change between two versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileDiff {
    /// Path relative to the dialplan directory.
    pub path: String,
    /// A unified diff (`---`/`+++` headers, `@@` hunks); a file added or removed is diffed
    /// against `/dev/null`.
    pub diff: String,
}

/// The files that differ from version `from` (`old`) to version `to` (`new`), by path.
pub fn version_diff(from: u32, old: &[PlanFile], to: u32, new: &[PlanFile]) -> Vec<FileDiff> {
    let mut paths: Vec<&str> = old.iter().chain(new).map(|(p, _)| p.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    let text_of = |files: &[PlanFile], path: &str| {
        files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.clone())
    };
    let mut diffs = Vec::new();
    for path in paths {
        let (a, b) = (text_of(old, path), text_of(new, path));
        if a == b {
            continue;
        }
        let header_a = a
            .as_ref()
            .map_or("/dev/null".to_owned(), |_| format!("version {from}/{path}"));
        let header_b = b
            .as_ref()
            .map_or("/dev/null".to_owned(), |_| format!("version {to}/{path}"));
        let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
        let diff = similar::TextDiff::from_lines(&a, &b)
            .unified_diff()
            .header(&header_a, &header_b)
            .to_string();
        diffs.push(FileDiff {
            path: path.to_owned(),
            diff,
        });
    }
    diffs
}

/// When a version was stored, `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn version_time(created_at_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(created_at_ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| "?".into())
}

/// How `plan` routes the call `facts`, rule by rule, and (with the store) which phones and
/// forwardings of the users it dials come into play.
pub fn explain_call(plan: &Plan, facts: &CallFacts, store: Option<&store::Store>) -> String {
    let mut text = plan.explain(facts).to_string();
    if let (Some(route), Some(store)) = (plan.route(facts), store) {
        text.push_str(&crate::explain_phones::explain(plan, &route, facts, store));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialplan::Severity;

    fn drafts(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    const ECHO_600: &str = "[[rule]]\nmatch = \"600\"\nactions = [ \"answer\", \"echo\" ]\n";

    #[test]
    fn plan_paths_stay_inside_the_directory_and_name_toml_files() {
        assert_eq!(plan_path("main.toml").unwrap(), "main.toml");
        assert_eq!(plan_path("staff/home.toml").unwrap(), "staff/home.toml");
        assert_eq!(plan_path("staff//home.toml").unwrap(), "staff/home.toml");
        for bad in [
            "",
            "../main.toml",
            "staff/../../etc.toml",
            "/etc/main.toml",
            "./main.toml",
            "main.txt",
            ".toml",
            "examples/a.toml",
            "x/examples/a.toml",
            ".hidden/a.toml",
        ] {
            assert!(
                matches!(plan_path(bad), Err(EditError::BadPath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_draft_is_checked_with_the_other_files_and_reports_file_line_column() {
        let files = vec![
            (
                "a.toml".to_owned(),
                "[settings]\ninclude = [\"b.toml\"]\n".to_owned(),
            ),
            ("b.toml".to_owned(), ECHO_600.to_owned()),
        ];
        assert!(check(&files, None).ok());
        // Replacing b.toml with a broken rule: the error names b.toml, line 3.
        let broken = with_drafts(
            files.clone(),
            &drafts(&[(
                "b.toml",
                "[[rule]]\nmatch = \"600\"\nactions = [ \"dance\" ]\n",
            )]),
        );
        let checked = check(&broken, None);
        assert!(!checked.ok());
        assert_eq!(checked.diagnostics[0].severity, Severity::Error);
        let first = checked.diagnostics[0].to_string();
        assert!(first.starts_with("b.toml:3:"), "{first}");
        // Removing what a.toml includes is an error in a.toml, though only b.toml changed.
        let renamed = with_drafts(vec![files[0].clone()], &drafts(&[("c.toml", ECHO_600)]));
        let checked = check(&renamed, None);
        assert!(!checked.ok());
        assert!(
            checked
                .diagnostics
                .iter()
                .any(|d| d.file == "a.toml" && d.line == 2),
            "{:?}",
            checked.diagnostics
        );
    }

    #[test]
    fn new_files_are_told_apart_and_sorted_in() {
        let files = vec![("b.toml".to_owned(), ECHO_600.to_owned())];
        let d = drafts(&[("a.toml", "x"), ("b.toml", "y")]);
        assert_eq!(new_paths(&files, &d), vec!["a.toml"]);
        let all = with_drafts(files, &d);
        assert_eq!(
            all,
            vec![
                ("a.toml".to_owned(), "x".to_owned()),
                ("b.toml".to_owned(), "y".to_owned())
            ]
        );
    }

    #[test]
    fn staged_files_appear_only_on_commit_and_a_whole_plan_removes_the_rest() {
        let dir = std::env::temp_dir().join(format!("amt-edit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("examples")).unwrap();
        std::fs::write(dir.join("old.toml"), "old").unwrap();
        std::fs::write(dir.join("keep.toml"), "keep").unwrap();
        std::fs::write(dir.join("examples/e.toml"), "example").unwrap();

        let staged = StagedPlan::stage(&dir, &[("keep.toml".into(), "new".into())], false).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("keep.toml")).unwrap(),
            "keep"
        );
        drop(staged);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            3,
            "temporary file left"
        );

        let whole = vec![
            ("keep.toml".to_owned(), "new".to_owned()),
            ("sub/added.toml".to_owned(), "added".to_owned()),
        ];
        StagedPlan::stage(&dir, &whole, true)
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(current_files(&dir).unwrap(), whole);
        assert!(!dir.join("old.toml").exists());
        assert!(
            dir.join("examples/e.toml").exists(),
            "examples are left alone"
        );

        assert!(matches!(
            StagedPlan::stage(&dir, &[("../x.toml".into(), String::new())], false),
            Err(EditError::BadPath { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn diffs_name_changed_added_and_removed_files_only() {
        let old = vec![
            ("a.toml".to_owned(), "same\n".to_owned()),
            ("b.toml".to_owned(), "one\n".to_owned()),
            ("gone.toml".to_owned(), "bye\n".to_owned()),
        ];
        let new = vec![
            ("a.toml".to_owned(), "same\n".to_owned()),
            ("b.toml".to_owned(), "two\n".to_owned()),
            ("new.toml".to_owned(), "hi\n".to_owned()),
        ];
        let diffs = version_diff(1, &old, 2, &new);
        let paths: Vec<&str> = diffs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["b.toml", "gone.toml", "new.toml"]);
        assert!(
            diffs[0]
                .diff
                .contains("--- version 1/b.toml\n+++ version 2/b.toml\n")
        );
        assert!(diffs[0].diff.contains("-one\n+two\n"), "{}", diffs[0].diff);
        assert!(diffs[1].diff.contains("+++ /dev/null"), "{}", diffs[1].diff);
        assert!(diffs[2].diff.contains("--- /dev/null"), "{}", diffs[2].diff);
        assert!(version_diff(1, &old, 1, &old).is_empty());
    }
}
