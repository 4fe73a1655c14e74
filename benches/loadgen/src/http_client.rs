//! The few HTTP/1.1 requests a WHIP/WHEP client makes (POST an SDP offer, DELETE a session),
//! over a plain `TcpStream` to the server on loopback. One request per connection
//! (`Connection: close`), so the answer ends where the stream ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// Longest the server may take to answer (an offer waits for the store and the media worker).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers larger than this are refused (an SDP answer is a few KiB).
const MAX_ANSWER: u64 = 256 * 1024;

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The body, as text.
    pub body: String,
}

/// `POST path` with an `application/sdp` body and a bearer token.
pub fn post_sdp(
    server: SocketAddr,
    path: &str,
    token: &str,
    sdp: &str,
) -> anyhow::Result<HttpAnswer> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {server}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        sdp.len()
    );
    exchange(server, &head, sdp.as_bytes())
}

/// `DELETE path` with a bearer token.
pub fn delete(server: SocketAddr, path: &str, token: &str) -> anyhow::Result<HttpAnswer> {
    let head = format!(
        "DELETE {path} HTTP/1.1\r\nHost: {server}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    exchange(server, &head, &[])
}

fn exchange(server: SocketAddr, head: &str, body: &[u8]) -> anyhow::Result<HttpAnswer> {
    let mut stream = TcpStream::connect_timeout(&server, ANSWER_TIMEOUT)
        .with_context(|| format!("connecting to {server}"))?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut request = Vec::with_capacity(head.len() + body.len());
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    let mut raw = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    match parse_answer(&text) {
        Some(answer) => Ok(answer),
        None => bail!(
            "unreadable HTTP answer: {:?}",
            text.get(..200).unwrap_or(&text)
        ),
    }
}

/// Status line, `Location` and body of a complete HTTP/1.1 answer (`Content-Length` or read
/// to the end; no chunked bodies, which axum does not send for a known-length body).
pub fn parse_answer(text: &str) -> Option<HttpAnswer> {
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let mut location = None;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("location") {
            location = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let body = match length {
        Some(n) => body.get(..n)?,
        None => body,
    };
    Some(HttpAnswer {
        status,
        location,
        body: body.to_owned(),
    })
}

/// The last path segment of a session URL (`/whip/sessions/abc` → `abc`): the id a WHEP
/// request names as its `publisher`.
pub fn resource_id(location: &str) -> Option<&str> {
    location.rsplit('/').next().filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_location_and_a_body_cut_at_its_length() {
        let text = "HTTP/1.1 201 Created\r\ncontent-type: application/sdp\r\n\
                    location: /whip/sessions/00ff\r\ncontent-length: 5\r\n\r\nv=0\r\nextra";
        let answer = parse_answer(text).unwrap();
        assert_eq!(answer.status, 201);
        assert_eq!(answer.location.as_deref(), Some("/whip/sessions/00ff"));
        assert_eq!(answer.body, "v=0\r\n");
    }

    #[test]
    fn an_error_answer_keeps_its_json_and_has_no_location() {
        let text = "HTTP/1.1 409 Conflict\r\nContent-Length: 17\r\n\r\n{\"error\":\"full\"}\n";
        let answer = parse_answer(text).unwrap();
        assert_eq!(answer.status, 409);
        assert_eq!(answer.location, None);
        assert_eq!(answer.body, "{\"error\":\"full\"}\n");
    }

    #[test]
    fn truncated_or_foreign_answers_are_refused() {
        assert_eq!(parse_answer("HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(parse_answer("SIP/2.0 200 OK\r\n\r\n"), None);
        // Shorter than its Content-Length: the connection broke.
        assert_eq!(
            parse_answer("HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nv=0"),
            None
        );
    }

    #[test]
    fn resource_id_is_the_last_segment() {
        assert_eq!(resource_id("/whip/sessions/abc123"), Some("abc123"));
        assert_eq!(resource_id("/whip/sessions/"), None);
    }
}
