//! Dialplan files on disk: loading them into the pure `dialplan` crate, the plan in force,
//! and the `amtsleitung dialplan` commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use dialplan::{CallFacts, CheckContext, Diagnostic, Plan, SourceFile};

use crate::DialplanCommand;
use crate::sounds::SoundLibrary;

/// The plan in force; each call takes a snapshot, a reload swaps in a new one atomically.
pub struct PlanHolder {
    current: ArcSwap<Plan>,
}

impl PlanHolder {
    /// Loads and checks every dialplan in `dir`; errors are printed with file:line:column.
    pub fn load(dir: &Path, sounds: &SoundLibrary) -> anyhow::Result<Self> {
        match compile_dir(dir, Some(sounds)) {
            Ok((plan, warnings)) => {
                for warning in warnings {
                    tracing::warn!("{warning}");
                }
                Ok(Self {
                    current: ArcSwap::from_pointee(plan),
                })
            }
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                anyhow::bail!(
                    "dialplan in {} has errors:\n{}",
                    dir.display(),
                    text.join("\n")
                )
            }
        }
    }

    /// The plan for a new call.
    pub fn current(&self) -> Arc<Plan> {
        self.current.load_full()
    }
}

/// Reads every `*.toml` below `dir` (sorted, so rule order across files is stable).
fn read_sources(dir: &Path) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
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
    let files = read_sources(dir)?;
    let ctx = CheckContext {
        sounds: sounds.map(SoundLibrary::names),
        ..CheckContext::default()
    };
    dialplan::compile(&files, &ctx).map(|compiled| (compiled.plan, compiled.warnings))
}

/// Runs `amtsleitung dialplan ...`.
pub fn run_command(command: DialplanCommand) -> ExitCode {
    match command {
        DialplanCommand::Check { dir, sounds } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("dialplans"));
            let sounds = load_sounds(sounds);
            match compile_dir(&dir, sounds.as_ref()) {
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
            source,
            dialplans,
            sounds,
        } => {
            let dir = dialplans.unwrap_or_else(|| PathBuf::from("dialplans"));
            let sounds = load_sounds(sounds);
            let plan = match compile_dir(&dir, sounds.as_ref()) {
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
                Some(text) => match parse_local_time(&text, plan.timezone()) {
                    Ok(ts) => ts,
                    Err(err) => {
                        eprintln!("amtsleitung: --at: {err}");
                        return ExitCode::from(2);
                    }
                },
            };
            let facts = CallFacts {
                to,
                from,
                trunk,
                source_ip: source,
                at,
            };
            print!("{}", plan.explain(&facts));
            ExitCode::SUCCESS
        }
    }
}

fn load_sounds(dir: Option<PathBuf>) -> Option<SoundLibrary> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("sounds"));
    SoundLibrary::load(&dir).ok()
}

/// "YYYY-MM-DD HH:MM" in the plan's time zone.
fn parse_local_time(text: &str, tz: &jiff::tz::TimeZone) -> Result<jiff::Timestamp, String> {
    let civil: jiff::civil::DateTime = text
        .trim()
        .replace(' ', "T")
        .parse()
        .map_err(|err| format!("'{text}' is not a time like \"2026-12-24 19:00\": {err}"))?;
    civil
        .to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|err| format!("'{text}': {err}"))
}
