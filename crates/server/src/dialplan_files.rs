//! Dialplan files on disk: loading them into the pure `dialplan` crate, the plan in force,
//! and the `amtsleitung dialplan` commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use dialplan::{CallFacts, CheckContext, Diagnostic, Plan, SourceFile};

use crate::DialplanCommand;
use crate::config::{Config, ConfigSource};
use crate::dialplan_edit;
use crate::sounds::SoundLibrary;

/// The plan in force; each call takes a snapshot, a reload swaps in a new one atomically.
pub struct PlanHolder {
    current: ArcSwap<Plan>,
    version: std::sync::atomic::AtomicU32,
    /// The first error of the plan on disk while it is refused (the server keeps routing by
    /// the plan in force, but `/health` says the files and the calls disagree).
    refused: arc_swap::ArcSwapOption<String>,
    /// The tenant whose plan this is; `None`: the default domain's, the one whose versions
    /// the history keeps (and the console edits).
    tenant: Option<String>,
}

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// Whether the new plan is now in force.
    pub accepted: bool,
    /// History version of the plan in force afterwards.
    pub version: u32,
    /// Errors (when refused) and warnings, as `file:line:column: ...` lines.
    pub diagnostics: Vec<String>,
}

impl PlanHolder {
    /// Loads and checks every dialplan in `dir` and records it in the history; errors are
    /// returned with file:line:column.
    pub fn load(dir: &Path, sounds: &SoundLibrary, store: &store::Store) -> anyhow::Result<Self> {
        let files = read_sources(dir).map_err(|errors| refusal(dir, &errors))?;
        match compile_files(&files, Some(sounds)) {
            Ok((plan, warnings)) => {
                for warning in warnings {
                    tracing::warn!("{warning}");
                }
                let version = record_version(store, dir, &files, "loaded at start")?;
                Ok(Self {
                    current: ArcSwap::from_pointee(plan),
                    version: version.into(),
                    refused: arc_swap::ArcSwapOption::empty(),
                    tenant: None,
                })
            }
            Err(errors) => Err(refusal(dir, &errors)),
        }
    }

    /// The shipped default plan, built into the binary, for a server started where no
    /// dialplan directory is configured or present.
    pub fn builtin(sounds: &SoundLibrary, store: &store::Store) -> anyhow::Result<Self> {
        let files = [SourceFile {
            path: "default.toml".into(),
            text: include_str!("../../../dialplans/default.toml").into(),
        }];
        let (plan, _) = compile_files(&files, Some(sounds))
            .map_err(|errors| refusal(Path::new("(built in)"), &errors))?;
        let version = record_version(store, Path::new(""), &files, "built-in plan at start")?;
        Ok(Self {
            current: ArcSwap::from_pointee(plan),
            version: version.into(),
            refused: arc_swap::ArcSwapOption::empty(),
            tenant: None,
        })
    }

    /// Loads and checks tenant `domain`'s dialplan in `dir`. Its versions are not kept in
    /// the history (which is the default domain's), and actions that are not per tenant yet
    /// get a warning: a call reaching them is refused (501).
    pub fn load_tenant(domain: &str, dir: &Path, sounds: &SoundLibrary) -> anyhow::Result<Self> {
        let files = read_sources(dir).map_err(|errors| refusal(dir, &errors))?;
        let (plan, warnings) =
            compile_files_with(&files, Some(sounds), crate::tenants::TENANT_ACTIONS)
                .map_err(|errors| refusal(dir, &errors))?;
        for warning in warnings {
            tracing::warn!(tenant = domain, "{warning}");
        }
        Ok(Self {
            current: ArcSwap::from_pointee(plan),
            version: 0.into(),
            refused: arc_swap::ArcSwapOption::empty(),
            tenant: Some(domain.to_owned()),
        })
    }

    /// The plan for a new call.
    pub fn current(&self) -> Arc<Plan> {
        self.current.load_full()
    }

    /// History version of the plan in force.
    pub fn version(&self) -> u32 {
        self.version.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Why the plan on disk is refused (its first error), while it is.
    pub fn refused(&self) -> Option<Arc<String>> {
        self.refused.load_full()
    }

    /// Re-reads `dir`; a valid plan replaces the current one (calls in progress keep theirs),
    /// an invalid one is refused and the current plan stays.
    pub fn reload(
        &self,
        dir: &Path,
        sounds: &SoundLibrary,
        store: &crate::store_handle::StoreHandle,
        trigger: &str,
    ) -> ReloadReport {
        let runnable = match self.tenant {
            Some(_) => crate::tenants::TENANT_ACTIONS,
            None => crate::call::RUNNABLE_ACTIONS,
        };
        let compiled = read_sources(dir).and_then(|files| {
            compile_files_with(&files, Some(sounds), runnable)
                .map(|(plan, warnings)| (files, plan, warnings))
        });
        match compiled {
            Ok((_, plan, warnings)) if self.tenant.is_some() => {
                self.current.store(Arc::new(plan));
                self.refused.store(None);
                for warning in &warnings {
                    tracing::warn!(tenant = ?self.tenant, "{warning}");
                }
                tracing::info!(tenant = ?self.tenant, trigger, "dialplan reloaded");
                ReloadReport {
                    accepted: true,
                    version: 0,
                    diagnostics: warnings.iter().map(ToString::to_string).collect(),
                }
            }
            Ok((files, plan, warnings)) => {
                let recorded = {
                    let (dir, files, trigger) =
                        (dir.to_path_buf(), files.clone(), trigger.to_string());
                    store.run_blocking(move |store| record_version(store, &dir, &files, &trigger))
                };
                let version = match recorded.map_err(anyhow::Error::from).and_then(|r| r) {
                    Ok(version) => version,
                    Err(err) => {
                        // A plan we cannot record could not be rolled back to: refuse it.
                        tracing::error!("dialplan not reloaded: {err:#}");
                        self.refused.store(Some(Arc::new(format!("{err:#}"))));
                        metrics::counter!(crate::telemetry::DIALPLAN_RELOADS_TOTAL, "result" => "refused")
                            .increment(1);
                        return ReloadReport {
                            accepted: false,
                            version: self.version(),
                            diagnostics: vec![format!("{err:#}")],
                        };
                    }
                };
                self.current.store(Arc::new(plan));
                self.version
                    .store(version, std::sync::atomic::Ordering::Relaxed);
                self.refused.store(None);
                metrics::counter!(crate::telemetry::DIALPLAN_RELOADS_TOTAL, "result" => "accepted")
                    .increment(1);
                let diagnostics: Vec<String> = warnings.iter().map(ToString::to_string).collect();
                for warning in &diagnostics {
                    tracing::warn!("{warning}");
                }
                tracing::info!(version, trigger, "dialplan reloaded");
                ReloadReport {
                    accepted: true,
                    version,
                    diagnostics,
                }
            }
            Err(errors) => {
                let diagnostics: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let first = diagnostics
                    .first()
                    .and_then(|d| d.lines().next())
                    .unwrap_or("errors")
                    .to_owned();
                self.refused.store(Some(Arc::new(first)));
                metrics::counter!(crate::telemetry::DIALPLAN_RELOADS_TOTAL, "result" => "refused")
                    .increment(1);
                tracing::error!(
                    trigger,
                    "dialplan rejected, keeping version {}:\n{}",
                    self.version(),
                    diagnostics.join("\n")
                );
                ReloadReport {
                    accepted: false,
                    version: self.version(),
                    diagnostics,
                }
            }
        }
    }
}

fn refusal(dir: &Path, errors: &[Diagnostic]) -> anyhow::Error {
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::anyhow!(
        "dialplan in {} has errors:\n{}",
        dir.display(),
        text.join("\n")
    )
}

/// Stores the plan's files in the history (deduplicated by the store); paths are relative to
/// `dir` so a rollback can write them back.
fn record_version(
    store: &store::Store,
    dir: &Path,
    files: &[SourceFile],
    comment: &str,
) -> anyhow::Result<u32> {
    let relative: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let path = Path::new(&f.path);
            let rel = path.strip_prefix(dir).unwrap_or(path);
            (rel.display().to_string(), f.text.clone())
        })
        .collect();
    let now = jiff::Timestamp::now().as_millisecond();
    Ok(store.dialplan_version_add(&relative, comment, now)?)
}

/// A reload asked for (admin API, console): what asked, and where the report goes.
pub struct ReloadRequest {
    /// Logged as the reload's trigger.
    pub trigger: &'static str,
    /// Gets the reload's report.
    pub reply: tokio::sync::oneshot::Sender<ReloadReport>,
}

/// Watches the dialplan directory and reloads on change (debounced), on SIGHUP, and when asked
/// through `requests` (admin API, console); `reload` does the work (on a blocking thread), told what
/// triggered it. Editors replace files rather than write them, so the directory is watched,
/// not the files.
pub fn spawn_reloader(
    dir: PathBuf,
    reload: impl Fn(&'static str) -> ReloadReport + Send + Sync + 'static,
    mut requests: tokio::sync::mpsc::Receiver<ReloadRequest>,
) -> anyhow::Result<()> {
    let reload = Arc::new(reload);
    let mut changes = crate::file_watch::FileChanges::watch(&dir, true, |p| {
        p.extension().is_some_and(|e| e == "toml")
    })?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let (trigger, reply) = tokio::select! {
                Some(()) = changes.next() => ("file change", None),
                Some(_) = hangup.recv() => ("SIGHUP", None),
                Some(request) = requests.recv() => (request.trigger, Some(request.reply)),
                else => return,
            };
            let reload = reload.clone();
            let report = tokio::task::spawn_blocking(move || reload(trigger)).await;
            if let (Some(reply), Ok(report)) = (reply, report) {
                let _ = reply.send(report);
            }
        }
    });
    Ok(())
}

/// Reads every `*.toml` below `dir` (sorted, so rule order across files is stable).
pub(crate) fn read_sources(dir: &Path) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current).map_err(|err| {
            vec![io_diagnostic(
                &current,
                &format!("cannot read directory: {err}"),
            )]
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                // Examples are documentation, not part of the running plan.
                if path.file_name().is_some_and(|n| n == "examples") {
                    continue;
                }
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|err| vec![io_diagnostic(&path, &format!("cannot read file: {err}"))])?;
        files.push(SourceFile {
            path: path.display().to_string(),
            text,
        });
    }
    Ok(files)
}

fn io_diagnostic(path: &Path, message: &str) -> Diagnostic {
    Diagnostic {
        severity: dialplan::Severity::Error,
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: message.to_string(),
        help: None,
    }
}

/// Compiles the plan in `dir`, checking sound names against `sounds` when given.
pub fn compile_dir(
    dir: &Path,
    sounds: Option<&SoundLibrary>,
) -> Result<(Plan, Vec<Diagnostic>), Vec<Diagnostic>> {
    compile_files(&read_sources(dir)?, sounds)
}

pub(crate) fn compile_files(
    files: &[SourceFile],
    sounds: Option<&SoundLibrary>,
) -> Result<(Plan, Vec<Diagnostic>), Vec<Diagnostic>> {
    compile_files_with(files, sounds, crate::call::RUNNABLE_ACTIONS)
}

/// [`compile_files`] for a plan that may run only the actions `runnable` (a tenant's).
fn compile_files_with(
    files: &[SourceFile],
    sounds: Option<&SoundLibrary>,
    runnable: &[&str],
) -> Result<(Plan, Vec<Diagnostic>), Vec<Diagnostic>> {
    let ctx = CheckContext {
        sounds: sounds.map(SoundLibrary::names),
        runnable_actions: Some(runnable.iter().map(|name| (*name).to_owned()).collect()),
        ..CheckContext::default()
    };
    dialplan::compile(files, &ctx).map(|compiled| (compiled.plan, compiled.warnings))
}

/// Runs `amtsleitung dialplan ...`; what a flag leaves out comes from `config`.
pub fn run_command(command: DialplanCommand, config: &Config, source: &ConfigSource) -> ExitCode {
    match command {
        DialplanCommand::Check { dir, sounds } => {
            let dir = dir.unwrap_or_else(|| config.dialplans.clone());
            let sounds = match load_sounds(sounds.as_deref().unwrap_or(&config.sounds)) {
                Ok(sounds) => sounds,
                Err(code) => return code,
            };
            match compile_dir(&dir, Some(&sounds)) {
                Ok((_, warnings)) => {
                    for warning in &warnings {
                        println!("{warning}");
                    }
                    println!(
                        "dialplan in {} is valid ({} warning{})",
                        dir.display(),
                        warnings.len(),
                        if warnings.len() == 1 { "" } else { "s" }
                    );
                    ExitCode::SUCCESS
                }
                Err(diagnostics) => {
                    let errors = diagnostics
                        .iter()
                        .filter(|d| d.severity == dialplan::Severity::Error)
                        .count();
                    for diagnostic in &diagnostics {
                        println!("{diagnostic}");
                    }
                    println!(
                        "dialplan in {} has {errors} error{}; the running server keeps its current plan",
                        dir.display(),
                        if errors == 1 { "" } else { "s" }
                    );
                    ExitCode::FAILURE
                }
            }
        }
        DialplanCommand::Explain {
            to,
            from,
            at,
            trunk,
            trunks,
            source,
            dialplans,
            sounds,
            data_dir,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| config.data_dir.clone());
            let dir = dialplans.unwrap_or_else(|| config.dialplans.clone());
            let sounds = match load_sounds(sounds.as_deref().unwrap_or(&config.sounds)) {
                Ok(sounds) => sounds,
                Err(code) => return code,
            };
            let plan = match compile_dir(&dir, Some(&sounds)) {
                Ok((plan, _)) => plan,
                Err(diagnostics) => {
                    for diagnostic in &diagnostics {
                        eprintln!("{diagnostic}");
                    }
                    return ExitCode::FAILURE;
                }
            };
            let at = match at {
                None => jiff::Timestamp::now(),
                Some(text) => match plan.parse_local_time(&text) {
                    Ok(ts) => ts,
                    Err(err) => {
                        eprintln!("amtsleitung: --at: {err}");
                        return ExitCode::from(2);
                    }
                },
            };
            // A call from a carrier reaches the plan with its numbers normalised by the
            // trunk's rules, as the server does it; show how.
            let (to, from) = match (&trunk, trunks.or_else(|| config.trunks.clone())) {
                (Some(name), Some(file)) => match normalised_by_trunk(&file, name, to, from) {
                    Ok(numbers) => numbers,
                    Err(err) => {
                        eprintln!("amtsleitung: {err}");
                        return ExitCode::FAILURE;
                    }
                },
                _ => (to, from),
            };
            let facts = CallFacts {
                to,
                from,
                trunk,
                source_ip: source,
                at,
            };
            // Only a store that exists is read: explaining a plan must not create one.
            let database = store::Store::database_file(&data_dir);
            let store = if database.exists() {
                match store::Store::open(&data_dir) {
                    Ok(store) => Some(store),
                    Err(err) => {
                        eprintln!(
                            "amtsleitung: users' settings not shown: {}: {err}",
                            database.display()
                        );
                        None
                    }
                }
            } else {
                None
            };
            print!(
                "{}",
                crate::dialplan_edit::explain_call(&plan, &facts, store.as_ref())
            );
            ExitCode::SUCCESS
        }
        DialplanCommand::History { data_dir } => {
            let data_dir = crate::store_dir(data_dir, config, source);
            exit_code(history(&data_dir))
        }
        DialplanCommand::Show { version, data_dir } => {
            let data_dir = crate::store_dir(data_dir, config, source);
            exit_code(show(version, &data_dir))
        }
        DialplanCommand::Diff { from, to, data_dir } => {
            let data_dir = crate::store_dir(data_dir, config, source);
            exit_code(diff(from, to, &data_dir))
        }
        DialplanCommand::Rollback {
            version,
            data_dir,
            dialplans,
            sounds,
        } => {
            let data_dir = crate::store_dir(data_dir, config, source);
            exit_code(rollback(
                version,
                &data_dir,
                &dialplans.unwrap_or_else(|| config.dialplans.clone()),
                &sounds.unwrap_or_else(|| config.sounds.clone()),
            ))
        }
    }
}

/// `to` and `from` as trunk `name` of the trunks file `file` hands them to the dialplan,
/// each step printed; a number the rules cannot read is kept as it came, as the server does.
fn normalised_by_trunk(
    file: &std::path::Path,
    name: &str,
    to: String,
    from: Option<String>,
) -> anyhow::Result<(String, Option<String>)> {
    let checked = crate::trunk_service::read_trunks_file(file)?;
    let trunk = checked
        .config
        .trunk(name)
        .ok_or_else(|| anyhow::anyhow!("no trunk named {name:?} in {}", file.display()))?;
    let normalise = |label: &str, number: String| {
        let explained = trunk.numbers.explain_inbound(&number);
        println!("trunk {name}: {label} {explained}");
        explained.result.map_or(number, |n| n.to_string())
    };
    let to = normalise("called", to);
    let from = from.map(|f| normalise("caller", f));
    println!();
    Ok((to, from))
}

/// Exit 0, or print the error on one line and exit 1.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("amtsleitung: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn history(data_dir: &Path) -> anyhow::Result<()> {
    let store = store::Store::open(data_dir)?;
    let versions = store.dialplan_versions()?;
    if versions.is_empty() {
        println!("no dialplan versions stored in {}", data_dir.display());
    }
    println!(
        "{:>7}  {:<20}  {:>5}  comment",
        "version", "accepted at (UTC)", "files"
    );
    for v in versions {
        println!(
            "{:>7}  {:<20}  {:>5}  {}",
            v.version,
            dialplan_edit::version_time(v.created_at_ms),
            v.file_count,
            v.comment
        );
    }
    Ok(())
}

/// Prints every file of `version` under a `# path` header line.
fn show(version: u32, data_dir: &Path) -> anyhow::Result<()> {
    let store = store::Store::open(data_dir)?;
    for (path, text) in dialplan_edit::version_files(&store, version)? {
        println!("# {path}");
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}

/// Prints a unified diff per file from version `from` to version `to` (files added or
/// removed against an empty file), and says so when nothing changed.
fn diff(from: u32, to: u32, data_dir: &Path) -> anyhow::Result<()> {
    let store = store::Store::open(data_dir)?;
    let old = dialplan_edit::version_files(&store, from)?;
    let new = dialplan_edit::version_files(&store, to)?;
    let diffs = dialplan_edit::version_diff(from, &old, to, &new);
    for file in &diffs {
        print!("{}", file.diff);
    }
    if diffs.is_empty() {
        println!("dialplan versions {from} and {to} are the same");
    }
    Ok(())
}

/// Writes version `version` back into `dialplans`, after checking it still compiles. Files of
/// the directory's plan that the version does not have are removed; `examples/` is left alone.
fn rollback(version: u32, data_dir: &Path, dialplans: &Path, sounds: &Path) -> anyhow::Result<()> {
    let store = store::Store::open(data_dir)?;
    let files = dialplan_edit::version_files(&store, version)?;
    dialplan_edit::restorable(version, &files)?;
    let sounds = SoundLibrary::configured(sounds)?;
    let checked = dialplan_edit::check(&files, Some(&sounds));
    if !checked.ok() {
        let text: Vec<String> = checked
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect();
        anyhow::bail!(
            "version {version} no longer checks clean, not written:\n{}",
            text.join("\n")
        );
    }
    let staged = dialplan_edit::StagedPlan::stage(dialplans, &files, true)?;
    // Recorded before the files change: the server's reload of the same files then finds
    // them equal to the newest version and adds no "file change" entry of its own.
    let who = crate::audit_cli::unix_user();
    let now = jiff::Timestamp::now().as_millisecond();
    let recorded = store.dialplan_version_add(
        &files,
        &format!("rollback to version {version} by {who}"),
        now,
    )?;
    staged.commit()?;
    crate::audit_cli::record_cli_change(
        &store,
        "dialplan.rollback",
        &format!(
            "dialplan version {version} written to {} as version {recorded}",
            dialplans.display()
        ),
    )
    .map_err(|err| anyhow::anyhow!(err))?;
    println!(
        "dialplan version {version} written to {} ({} file{}) as version {recorded}; a running server reloads it now",
        dialplans.display(),
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// The prompts a plan is checked against. Without them `check` could not tell a plan whose
/// prompts are missing (callers would hear silence) from a good one, so a directory that
/// cannot be read is an error that names it, never a silent skip.
fn load_sounds(dir: &Path) -> Result<SoundLibrary, ExitCode> {
    SoundLibrary::configured(dir).map_err(|err| {
        eprintln!(
            "amtsleitung: {err:#} (name the prompts with --sounds or `sounds` in the config)"
        );
        ExitCode::FAILURE
    })
}
