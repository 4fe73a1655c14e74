//! `amtsleitung node drain`: maintenance without cutting a meeting. Asks the running server
//! (its admin API, `POST /node/drain`) to take no new calls and to exit once the calls and
//! rooms it has are over.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Subcommand;

/// Node commands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Stop taking new calls (they get 503 with Retry-After, and OPTIONS health checks 503,
    /// so a Kamailio in front sends them elsewhere); calls and rooms in progress go on, and the
    /// server exits 0 when the last has ended.
    Drain,
}

/// Runs `amtsleitung node ...` against the server's admin API at `http`.
pub fn run(command: NodeCommand, http: SocketAddr) -> ExitCode {
    crate::room_cli::report(execute(command, http))
}

fn execute(command: NodeCommand, http: SocketAddr) -> Result<String, String> {
    let NodeCommand::Drain = command;
    let (status, body) = crate::security_cli::request(http, "POST", "/node/drain")?;
    if status != 200 {
        return Err(format!("the server refused to drain ({status}): {body}"));
    }
    let answer: serde_json::Value = serde_json::from_str(&body)
        .map_err(|err| format!("the server's answer is not JSON ({err}): {body}"))?;
    let count = |key: &str| answer[key].as_u64().unwrap_or(0);
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    Ok(format!(
        "draining: no new calls; {} and {} in progress; the server exits when they have ended\n",
        plural(count("calls"), "call"),
        plural(count("rooms"), "open room"),
    ))
}
