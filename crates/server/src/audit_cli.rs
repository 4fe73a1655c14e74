//! `amtsleitung audit list`: who changed what, newest first; and the one place where the
//! CLI's own changes (rooms, users, voicemail, ring groups, console accounts, dialplan
//! rollbacks) are written to the audit log, as `cli:<unix user>` from `cli`.
//!
//! An entry names the object changed ("room 4711", "user 101") and what it is now, never a
//! password or a PIN: the log is for reading by more people than the secrets are.

use std::path::Path;
use std::process::ExitCode;
use std::sync::OnceLock;

use store::{AuditEntry, AuditRecord, Store};

/// Entries `audit list` shows when not told otherwise.
const DEFAULT_LIMIT: usize = 50;

/// Audit log commands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List changes, newest first: time, actor, source, action, what was changed.
    List {
        /// Only changes at or after this local time ("YYYY-MM-DD", "YYYY-MM-DD HH:MM") or
        /// unix time in milliseconds.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only changes by this actor (a console account, or `cli:<unix user>`).
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        /// Show at most this many.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT)]
        limit: usize,
    },
}

/// Runs `amtsleitung audit ...` against the store in `data_dir`.
pub fn run(command: AuditCommand, data_dir: &Path) -> ExitCode {
    crate::room_cli::report(execute(command, data_dir))
}

fn execute(command: AuditCommand, data_dir: &Path) -> Result<String, String> {
    let AuditCommand::List {
        since,
        actor,
        limit,
    } = command;
    let tz = jiff::tz::TimeZone::system();
    let since_ms = since.map(|text| parse_since(&text, &tz)).transpose()?;
    if !Store::database_file(data_dir).exists() {
        return Ok(format!(
            "no changes recorded (no database in {})\n",
            data_dir.display()
        ));
    }
    let records = crate::user_cli::open(data_dir)?
        .audit_list(since_ms, actor.as_deref(), limit)
        .map_err(|err| format!("cannot read the audit log: {err}"))?;
    Ok(audit_table(&records, &tz))
}

/// `--since`: unix milliseconds (all digits), else a local date or date and time.
fn parse_since(text: &str, tz: &jiff::tz::TimeZone) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("--since {text:?}: too large for unix milliseconds"));
    }
    crate::calls_cli::parse_local(text, tz)
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            format!(
                "--since {text:?}: write \"YYYY-MM-DD\", \"YYYY-MM-DD HH:MM\" or unix milliseconds"
            )
        })
}

fn audit_table(records: &[AuditRecord], tz: &jiff::tz::TimeZone) -> String {
    if records.is_empty() {
        return "no changes recorded\n".to_owned();
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                crate::calls_cli::local(r.at_ms, tz),
                r.actor.clone(),
                r.source.clone(),
                r.action.clone(),
                r.detail.clone(),
            ]
        })
        .collect();
    crate::user_cli::aligned_table(&["TIME", "ACTOR", "SOURCE", "ACTION", "DETAIL"], &rows)
}

/// The unix user behind this command: the one who ran `sudo` ($SUDO_USER), else $USER or
/// $LOGNAME, else `uid-<uid>` (no space, so that it can be given to `audit list --actor`).
/// Taken once, before the command may act as the data directory's owner (see
/// `act_as_store_owner` in main.rs), which would change the uid.
pub fn unix_user() -> &'static str {
    static USER: OnceLock<String> = OnceLock::new();
    USER.get_or_init(|| {
        ["SUDO_USER", "USER", "LOGNAME"]
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .map(|value| value.trim().to_owned())
            .find(|value| !value.is_empty())
            .unwrap_or_else(|| {
                // SAFETY: getuid has no preconditions and cannot fail.
                format!("uid-{}", unsafe { libc::getuid() })
            })
    })
}

/// The audit actor of the CLI's changes: `cli:<unix user>`.
pub fn cli_actor() -> String {
    format!("cli:{}", unix_user())
}

/// Writes a change the CLI made to the audit log; call it after the change succeeded.
/// `action` is a short word (`room.create`), `detail` names the object and never holds a
/// password or PIN. A failure is an error that says the change was made all the same.
pub fn record_cli_change(store: &Store, action: &str, detail: &str) -> Result<(), String> {
    let actor = cli_actor();
    let entry = AuditEntry {
        actor: &actor,
        source: "cli",
        action,
        detail,
    };
    store
        .audit_record(&entry, jiff::Timestamp::now().as_millisecond())
        .map_err(|err| {
            format!("{detail}: changed ({action}), but not written to the audit log: {err}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Europe/Berlin").unwrap()
    }

    #[test]
    fn since_reads_unix_milliseconds_dates_and_times() {
        let tz = berlin();
        assert_eq!(parse_since("1700000000000", &tz), Ok(1_700_000_000_000));
        // Midnight in Berlin in winter is 23:00 UTC the day before.
        assert_eq!(parse_since("2024-01-02", &tz), Ok(1_704_150_000_000));
        assert_eq!(parse_since("2024-01-02 01:00", &tz), Ok(1_704_153_600_000));
        for bad in ["yesterday", "2024-13-01", "", "99999999999999999999999"] {
            let err = parse_since(bad, &tz).unwrap_err();
            assert!(err.starts_with("--since"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_table_lists_newest_first_as_given() {
        let records = [
            AuditRecord {
                id: 2,
                at_ms: 1_704_153_600_000,
                actor: "cli:root".into(),
                source: "cli".into(),
                action: "room.delete".into(),
                detail: "room 4711".into(),
            },
            AuditRecord {
                id: 1,
                at_ms: 1_704_150_000_000,
                actor: "anna".into(),
                source: "10.8.0.7".into(),
                action: "account.add".into(),
                detail: "account otto (staff)".into(),
            },
        ];
        assert_eq!(
            audit_table(&records, &berlin()),
            "TIME                 ACTOR     SOURCE    ACTION       DETAIL\n\
             2024-01-02 01:00:00  cli:root  cli       room.delete  room 4711\n\
             2024-01-02 00:00:00  anna      10.8.0.7  account.add  account otto (staff)\n"
        );
        assert_eq!(audit_table(&[], &berlin()), "no changes recorded\n");
    }

    #[test]
    fn cli_changes_are_recorded_with_the_cli_actor() {
        let store = Store::open_in_memory().unwrap();
        record_cli_change(&store, "room.create", "room 4711").unwrap();
        let records = store.audit_list(None, None, 10).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].actor, format!("cli:{}", unix_user()));
        assert_eq!(
            (records[0].source.as_str(), records[0].action.as_str()),
            ("cli", "room.create")
        );
    }
}
