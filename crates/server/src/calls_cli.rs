//! `amtsleitung calls list` and `amtsleitung backup`: the call records and a copy of the
//! store for admins who have no web console yet.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use store::{CallRecord, Store};

/// Call record commands.
#[derive(Debug, Subcommand)]
pub enum CallsCommand {
    /// List call records, oldest first: by default those of the last 24 hours.
    List {
        /// Only calls that started at or after this local time ("YYYY-MM-DD" or
        /// "YYYY-MM-DD HH:MM").
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// CSV (RFC 4180, one header line) for a spreadsheet, instead of a table.
        #[arg(long)]
        csv: bool,
    },
}

/// Runs `amtsleitung calls ...` against the store in `data_dir`.
pub fn run(command: CallsCommand, data_dir: &Path) -> ExitCode {
    crate::room_cli::report(execute(command, data_dir, jiff::Timestamp::now()))
}

fn execute(command: CallsCommand, data_dir: &Path, now: jiff::Timestamp) -> Result<String, String> {
    let CallsCommand::List { since, csv } = command;
    let tz = jiff::tz::TimeZone::system();
    let since_ms = match since {
        Some(text) => parse_local(&text, &tz)?.as_millisecond(),
        None => now.as_millisecond() - 24 * 3600 * 1000,
    };
    if !Store::database_file(data_dir).exists() {
        return Err(format!("no database in {}", data_dir.display()));
    }
    let store = Store::open(data_dir).map_err(|err| err.to_string())?;
    let calls = store.calls_since(since_ms).map_err(|err| err.to_string())?;
    Ok(if csv {
        to_csv(&calls)
    } else {
        to_table(&calls, &tz)
    })
}

/// "YYYY-MM-DD" (midnight) or "YYYY-MM-DD HH:MM", in the server's time zone.
pub(crate) fn parse_local(text: &str, tz: &jiff::tz::TimeZone) -> Result<jiff::Timestamp, String> {
    let text = text.trim();
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M", text)
        .or_else(|_| {
            jiff::civil::Date::strptime("%Y-%m-%d", text)
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })
        .map_err(|_| format!("--since {text:?}: write \"YYYY-MM-DD\" or \"YYYY-MM-DD HH:MM\""))?;
    civil
        .to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|err| format!("--since {text:?}: {err}"))
}

/// Unix milliseconds as local "YYYY-MM-DD HH:MM:SS" ("?" when out of range).
pub(crate) fn local(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| "?".into())
}

fn duration_s(call: &CallRecord) -> f64 {
    (call.ended_at_ms - call.started_at_ms).max(0) as f64 / 1000.0
}

fn to_table(calls: &[CallRecord], tz: &jiff::tz::TimeZone) -> String {
    let mut out = format!(
        "{:<19}  {:<16}  {:<16}  {:>6}  {:>8}  reason\n",
        "started", "caller", "callee", "status", "seconds"
    );
    for call in calls {
        out.push_str(&format!(
            "{:<19}  {:<16}  {:<16}  {:>6}  {:>8.1}  {}\n",
            local(call.started_at_ms, tz),
            call.caller,
            call.callee,
            call.final_status,
            duration_s(call),
            call.end_reason
        ));
        // Forwarding, transfer, pickup: on their own line, so the table stays a table.
        if !call.features.is_empty() {
            out.push_str(&format!("{:<21}{}\n", "", call.features.join("; ")));
        }
    }
    out.push_str(&format!(
        "{} call{}\n",
        calls.len(),
        if calls.len() == 1 { "" } else { "s" }
    ));
    out
}

/// One RFC 4180 field: quoted when it holds a comma, a quote or a line break, quotes doubled.
/// A field that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) is prefixed
/// with `'`: callers choose their own caller ID, and a CSV opened in a spreadsheet must not
/// run what they chose (OWASP "CSV injection").
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) && !is_number(value) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// "+4971112345" is a phone number, not a formula.
fn is_number(value: &str) -> bool {
    let digits = value.strip_prefix('+').unwrap_or(value);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

pub(crate) fn to_csv(calls: &[CallRecord]) -> String {
    let mut out = String::from(
        "call_id,started_utc,ended_utc,caller,callee,answered,final_status,end_reason,seconds,packets_lost,jitter_ms,connected_to,features\n",
    );
    let utc = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    for call in calls {
        let row = [
            field(&call.call_id),
            utc(call.started_at_ms),
            utc(call.ended_at_ms),
            field(&call.caller),
            field(&call.callee),
            call.answered.to_string(),
            call.final_status.to_string(),
            field(&call.end_reason),
            format!("{:.1}", duration_s(call)),
            call.media.packets_lost.to_string(),
            format!("{:.1}", call.media.jitter_us as f64 / 1000.0),
            field(
                call.connected
                    .as_ref()
                    .map_or("", |c| c.extension.as_deref().unwrap_or(&c.target)),
            ),
            field(&call.features.join("; ")),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// `amtsleitung backup FILE`: a consistent copy of the store, taken while the server runs.
pub fn backup(data_dir: &Path, target: &Path) -> ExitCode {
    crate::room_cli::report((|| {
        if !Store::database_file(data_dir).exists() {
            return Err(format!("no database in {}", data_dir.display()));
        }
        let store = Store::open(data_dir).map_err(|err| err.to_string())?;
        store.backup_to(target).map_err(|err| err.to_string())?;
        let copy = Store::open_file(target).map_err(|err| err.to_string())?;
        let rooms = copy.room_list().map_err(|err| err.to_string())?.len();
        let calls = copy
            .recent_calls(u32::MAX)
            .map_err(|err| err.to_string())?
            .len();
        let recordings = data_dir.join("recordings");
        let files = std::fs::read_dir(&recordings).map_or(0, |d| d.flatten().count());
        Ok(format!(
            "backup of {} written to {} ({rooms} rooms, {calls} call records); the {files} recording file{} in {} are not in it: copy that directory too\n",
            Store::database_file(data_dir).display(),
            target.display(),
            if files == 1 { "" } else { "s" },
            recordings.display()
        ))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("101"), "101");
        assert_eq!(field("+4971112345"), "+4971112345");
        assert_eq!(field("Müller, Anna"), "\"Müller, Anna\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1+2"), "'-1+2");
    }

    #[test]
    fn since_reads_a_day_or_a_minute_in_local_time() {
        let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            parse_local("2026-12-24", &tz).unwrap().to_string(),
            "2026-12-23T23:00:00Z"
        );
        assert_eq!(
            parse_local("2026-07-01 08:30", &tz).unwrap().to_string(),
            "2026-07-01T06:30:00Z"
        );
        assert!(
            parse_local("24.12.2026", &tz)
                .unwrap_err()
                .contains("YYYY-MM-DD")
        );
    }
}
