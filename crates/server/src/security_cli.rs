//! `amtsleitung security bans` and `security unban ADDR`: the bans live in the running
//! server's memory, so these commands ask it over the admin HTTP API (`GET /security/bans`,
//! `DELETE /security/bans/ADDR`).
//!
//! The HTTP client is a few lines over `std::net::TcpStream` (HTTP/1.1, `Connection:
//! close`, one small JSON body from our own server on loopback): the crate graph has no
//! blocking HTTP client, and pulling one in for two requests to ourselves is not worth it.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde::{Deserialize, Serialize};

/// How long a command waits for the server.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `amtsleitung security ...`
#[derive(Debug, Subcommand)]
pub enum SecurityCommand {
    /// List the source addresses banned now, with why and for how much longer.
    Bans,
    /// Lift the ban on an address (and forget its failed attempts).
    Unban {
        /// The banned address (an IPv6 address lifts its whole /64).
        address: IpAddr,
    },
}

/// A ban as the admin API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanSummary {
    /// The banned source: an IPv4 address or an IPv6 /64.
    pub source: String,
    /// Why, in words.
    pub reason: String,
    /// Seconds since the ban began.
    pub since_s: u64,
    /// Seconds until it ends.
    pub remaining_s: u64,
}

/// Runs a security command against the server's admin API at `http`.
pub fn run(command: SecurityCommand, http: SocketAddr) -> ExitCode {
    crate::room_cli::report(execute(command, http))
}

fn execute(command: SecurityCommand, http: SocketAddr) -> Result<String, String> {
    match command {
        SecurityCommand::Bans => {
            let (status, body) = request(http, "GET", "/security/bans")?;
            if status != 200 {
                return Err(format!("the server answered {status}: {}", body.trim()));
            }
            let bans: Vec<BanSummary> = serde_json::from_str(&body)
                .map_err(|err| format!("unreadable answer from the server: {err}"))?;
            Ok(bans_table(&bans))
        }
        SecurityCommand::Unban { address } => {
            let (status, body) = request(http, "DELETE", &format!("/security/bans/{address}"))?;
            match status {
                200 => {
                    let ban: BanSummary = serde_json::from_str(&body)
                        .map_err(|err| format!("unreadable answer from the server: {err}"))?;
                    Ok(format!(
                        "ban on {} lifted (it was for {})\n",
                        ban.source, ban.reason
                    ))
                }
                404 => Err(format!("{address} is not banned")),
                _ => Err(format!("the server answered {status}: {}", body.trim())),
            }
        }
    }
}

/// The bans as a table for the terminal.
fn bans_table(bans: &[BanSummary]) -> String {
    if bans.is_empty() {
        return "no source is banned\n".into();
    }
    let width = bans
        .iter()
        .map(|b| b.source.len())
        .max()
        .unwrap_or(0)
        .max("SOURCE".len());
    let mut out = format!("{:<width$}  {:<9}  REASON\n", "SOURCE", "ENDS IN");
    for ban in bans {
        let ends_in = format!("{}m {:02}s", ban.remaining_s / 60, ban.remaining_s % 60);
        out.push_str(&format!(
            "{:<width$}  {:<9}  {}\n",
            ban.source, ends_in, ban.reason
        ));
    }
    out
}

/// One HTTP/1.1 request without a body; the status code and the body.
pub(crate) fn request(http: SocketAddr, method: &str, path: &str) -> Result<(u16, String), String> {
    let unreachable = |err: std::io::Error| {
        format!(
            "cannot reach the server's admin API at {http} (is it running? --http sets the address): {err}"
        )
    };
    let mut stream = TcpStream::connect_timeout(&http, TIMEOUT).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\nAccept: application/json\r\n\r\n"
    )
    .map_err(unreachable)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(unreachable)?;
    parse_response(&raw).ok_or_else(|| format!("the server at {http} sent no HTTP answer"))
}

/// Status and body of a `Connection: close` response (axum sends small bodies whole, with a
/// Content-Length; chunked bodies are not expected from it).
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    Some((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_body_of_a_response() {
        let raw = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(raw), Some((404, "{}".to_string())));
        assert_eq!(parse_response(b"garbage"), None);
        assert_eq!(parse_response(b"HTTP/1.1 2\r\n\r\n"), None);
    }

    #[test]
    fn lists_bans_as_a_table_and_says_when_there_are_none() {
        assert_eq!(bans_table(&[]), "no source is banned\n");
        let table = bans_table(&[BanSummary {
            source: "10.99.0.4".into(),
            reason: "5 failed authentications within 600 s".into(),
            since_s: 3,
            remaining_s: 897,
        }]);
        assert_eq!(
            table,
            "SOURCE     ENDS IN    REASON\n\
             10.99.0.4  14m 57s    5 failed authentications within 600 s\n"
        );
    }
}
