//! SIP message parsing, validation and building, with `rsip` types as the data model.
//!
//! `rsip` 0.4's own tokenizer rejects valid messages (folded lines, LWS around `:`, IPv6
//! Request-URIs) and accepts invalid ones (RFC 4475), so we lex and validate the text here and
//! only use `rsip`'s types to hold the result. We also print messages ourselves
//! ([`serialize`]) because `rsip` prints bodies lossily and reason phrases without spaces.

mod framer;
mod headers;
pub(crate) mod syntax;
#[cfg(test)]
pub(crate) mod tests;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use rsip::message::HasHeaders;
use rsip::{Header, Method, SipMessage, StatusCode};

pub use framer::StreamFramer;

/// A fresh From/To tag: 64 random bits (RFC 3261 §19.3 asks for at least 32).
pub fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Largest message we accept on any transport (RFC 3261 §18.1.1 leaves it to us; 64 KiB is
/// the UDP datagram limit).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Largest value of one header (after unfolding) we accept.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;
/// Most header fields we accept in one message.
pub const MAX_HEADERS: usize = 256;

/// What kind of rule a rejected message broke; decides the status code of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// Larger than [`MAX_MESSAGE_SIZE`] (513).
    TooLarge,
    /// Start line or header syntax is broken (400).
    Malformed,
    /// A mandatory header (Via, From, To, Call-ID, CSeq) is absent (400).
    MissingHeader,
    /// A single-valued header appears more than once (400, RFC 4475 §3.3.8).
    DuplicateHeader,
    /// A header value does not follow its grammar (400).
    BadHeaderValue,
    /// Content-Length is malformed or larger than the body (400, RFC 3261 §18.3).
    BadContentLength,
    /// CSeq method differs from the request method (400, RFC 4475 §3.1.2.17).
    CSeqMismatch,
    /// SIP version other than 2.0 (505).
    VersionNotSupported,
    /// Syntactically valid request with a method we do not implement (501).
    UnknownMethod,
    /// Request-URI scheme other than sip/sips (416).
    UnsupportedUriScheme,
    /// Stream message without Content-Length (RFC 3261 §18.3); the connection must close.
    MissingContentLength,
}

/// Why a message was rejected; `reason()` is safe to use as a Reason-Phrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    kind: ParseErrorKind,
    reason: Cow<'static, str>,
}

impl ParseError {
    fn new(kind: ParseErrorKind, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }

    /// Reason-Phrase for the error response (ASCII, no CR/LF).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The class of error.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// Status code to answer a request with this error (RFC 3261 §8.2, §21).
    pub fn status_code(&self) -> u16 {
        match self.kind {
            ParseErrorKind::TooLarge => 513,
            ParseErrorKind::VersionNotSupported => 505,
            ParseErrorKind::UnknownMethod => 501,
            ParseErrorKind::UnsupportedUriScheme => 416,
            _ => 400,
        }
    }
}

fn malformed(reason: &'static str) -> ParseError {
    ParseError::new(ParseErrorKind::Malformed, reason)
}

/// Parses and validates one complete message (a datagram, or a frame cut by
/// [`StreamFramer`]). A body longer than Content-Length is truncated (RFC 3261 §18.3).
pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::new(
            ParseErrorKind::TooLarge,
            "Message Too Large",
        ));
    }
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let skip = bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or_else(|| malformed("Empty message"))?;
    let bytes = bytes.get(skip..).unwrap_or_default();
    let (head_end, body_start) =
        find_head_end(bytes).ok_or_else(|| malformed("Incomplete header section"))?;
    let head = std::str::from_utf8(bytes.get(..head_end).unwrap_or_default())
        .map_err(|_| malformed("Header section is not UTF-8"))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or_default();
    let start = parse_start_line(start_line)?;

    let mut raw: Vec<(&str, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // RFC 3261 §7.3.1 line folding: continuation joins with a single SP.
            let (_, value) = raw
                .last_mut()
                .ok_or_else(|| malformed("Continuation line before first header"))?;
            let cont = line.trim_matches([' ', '\t']);
            if !value.is_empty() && !cont.is_empty() {
                value.push(' ');
            }
            value.push_str(cont);
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("Malformed header line"))?;
        let name = name.trim_end_matches([' ', '\t']);
        if !syntax::is_token(name) {
            return Err(malformed("Malformed header name"));
        }
        let name = headers::canonical_name(name).unwrap_or(name);
        raw.push((name, value.trim_matches([' ', '\t']).to_string()));
    }

    // Bounded everything: no legitimate header comes near these, and each parsed header costs
    // memory in every transaction that keeps the message.
    if raw.len() > MAX_HEADERS {
        return Err(ParseError::new(
            ParseErrorKind::TooLarge,
            "Too Many Headers",
        ));
    }
    if raw.iter().any(|(_, value)| value.len() > MAX_HEADER_VALUE) {
        return Err(ParseError::new(ParseErrorKind::TooLarge, "Header Too Long"));
    }
    let checked = validate_headers(raw)?;
    let body_all = bytes.get(body_start..).unwrap_or_default();
    let body = match checked.content_length {
        Some(cl) if cl > body_all.len() => {
            return Err(ParseError::new(
                ParseErrorKind::BadContentLength,
                "Bad Content-Length",
            ));
        }
        Some(cl) => body_all.get(..cl).unwrap_or_default(),
        None => body_all,
    };
    let headers: rsip::Headers = checked.headers.into();
    match start {
        StartLine::Request {
            method,
            method_text,
            uri,
        } => {
            if checked.cseq_method != method_text {
                return Err(ParseError::new(
                    ParseErrorKind::CSeqMismatch,
                    "CSeq method does not match",
                ));
            }
            let method = method.ok_or_else(|| {
                ParseError::new(ParseErrorKind::UnknownMethod, "Method Not Implemented")
            })?;
            let uri = uri?;
            Ok(SipMessage::Request(rsip::Request {
                method,
                uri,
                version: rsip::Version::V2,
                headers,
                body: body.to_vec(),
            }))
        }
        StartLine::Response { code, reason } => Ok(SipMessage::Response(rsip::Response {
            status_code: status_code_with_reason(code, reason),
            version: rsip::Version::V2,
            headers,
            body: body.to_vec(),
        })),
    }
}

/// Keeps a non-standard reason phrase (RFC 3261 §7.2 allows any), else the known variant.
fn status_code_with_reason(code: u16, reason: &str) -> StatusCode {
    let known = StatusCode::from(code);
    match known {
        StatusCode::Other(..) => StatusCode::Other(code, reason.to_string()),
        _ => known,
    }
}

/// `(end of header text, start of body)`: the first empty line (CRLF or bare LF).
fn find_head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            let line = bytes.get(line_start..i)?;
            if line.is_empty() || line == b"\r" {
                // Header text ends before this empty line (and its preceding line break).
                return Some((line_start.saturating_sub(1), i + 1));
            }
            line_start = i + 1;
        }
    }
    // Tolerate a datagram that ends right after the last header line without the empty line.
    if line_start == bytes.len() && line_start > 0 {
        return Some((line_start - 1, line_start));
    }
    None
}

enum StartLine<'a> {
    Request {
        method: Option<Method>,
        method_text: &'a str,
        uri: Result<rsip::Uri, ParseError>,
    },
    Response {
        code: u16,
        reason: &'a str,
    },
}

/// The method names as they appear on the wire (case-sensitive, RFC 3261 §7.1).
fn method_from_wire(text: &str) -> Option<Method> {
    Method::all().into_iter().find(|m| m.to_string() == text)
}

fn is_sip_version_syntax(v: &str) -> bool {
    let Some(rest) = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and(v.get(4..))
    else {
        return false;
    };
    match rest.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

fn parse_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        let (version, rest) = line
            .split_once(' ')
            .ok_or_else(|| malformed("Malformed Status-Line"))?;
        if !is_sip_version_syntax(version) {
            return Err(malformed("Malformed Status-Line"));
        }
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(ParseError::new(
                ParseErrorKind::VersionNotSupported,
                "Version Not Supported",
            ));
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return Err(malformed("Bad status code"));
        }
        let code: u16 = code.parse().map_err(|_| malformed("Bad status code"))?;
        if !(100..=699).contains(&code) {
            return Err(malformed("Bad status code"));
        }
        return Ok(StartLine::Response { code, reason });
    }
    // RFC 3261 §7.1: exactly one SP between the elements, none at the end (RFC 4475 §3.1.2.9,
    // §3.1.2.10).
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("Malformed Request-Line"));
    };
    if !syntax::is_token(method) || uri.is_empty() || !is_sip_version_syntax(version) {
        return Err(malformed("Malformed Request-Line"));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseError::new(
            ParseErrorKind::VersionNotSupported,
            "Version Not Supported",
        ));
    }
    let uri = match syntax::parse_sip_uri(uri) {
        Ok((_, true)) => Err(malformed("Headers not allowed in Request-URI")),
        Ok((uri, false)) => Ok(uri),
        Err(syntax::UriError::UnsupportedScheme) => Err(ParseError::new(
            ParseErrorKind::UnsupportedUriScheme,
            "Unsupported URI Scheme",
        )),
        Err(syntax::UriError::Malformed) => Err(malformed("Malformed Request-URI")),
    };
    // A broken Request-URI is a syntax error and reported before header checks; an unknown
    // scheme is an application-level refusal reported after them (RFC 3261 §8.2.2.1).
    if let Err(e) = &uri
        && e.kind == ParseErrorKind::Malformed
    {
        return Err(e.clone());
    }
    Ok(StartLine::Request {
        method: method_from_wire(method),
        method_text: method,
        uri,
    })
}

struct CheckedHeaders {
    headers: Vec<Header>,
    content_length: Option<usize>,
    cseq_method: String,
}

fn bad_header(name: &str) -> ParseError {
    ParseError::new(ParseErrorKind::BadHeaderValue, format!("Bad {name} header"))
}

/// Parses `CSeq: number method` (RFC 3261 §20.16), number as a 32-bit unsigned integer.
fn parse_cseq(value: &str) -> Option<(u32, &str)> {
    let mut it = value.split_ascii_whitespace();
    let (Some(num), Some(method), None) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    if !num.bytes().all(|c| c.is_ascii_digit()) || !syntax::is_token(method) {
        return None;
    }
    Some((num.parse().ok()?, method))
}

fn validate_headers(raw: Vec<(&str, String)>) -> Result<CheckedHeaders, ParseError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut vias = 0usize;
    let mut counts = [0usize; 7];
    const SINGLE: [&str; 7] = [
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Max-Forwards",
        "Content-Length",
        "Content-Type",
    ];
    let mut content_length = None;
    let mut cseq_method = String::new();
    for (name, value) in raw {
        if let Some(c) = SINGLE
            .iter()
            .position(|s| *s == name)
            .and_then(|i| counts.get_mut(i))
        {
            *c += 1;
            if *c > 1 {
                return Err(ParseError::new(
                    ParseErrorKind::DuplicateHeader,
                    format!("Multiple {name} headers"),
                ));
            }
        }
        match name {
            "Via" => {
                // One header per Via element, canonical text, so `rsip` consumers and our
                // accessors see `SIP/2.0/UDP host;params` (RFC 3261 §7.3.1 allows splitting).
                let parts =
                    syntax::split_top_level(&value, b',').ok_or_else(|| bad_header("Via"))?;
                for part in parts {
                    let via = syntax::parse_via(part).ok_or_else(|| bad_header("Via"))?;
                    let mut text = String::with_capacity(part.len());
                    via.write(&mut text);
                    out.push(headers::make_header("Via", text));
                    vias += 1;
                }
                continue;
            }
            "Route" | "Record-Route" => {
                let parts =
                    syntax::split_top_level(&value, b',').ok_or_else(|| bad_header(name))?;
                for part in parts {
                    if syntax::parse_name_addr(part).is_none() {
                        return Err(bad_header(name));
                    }
                    out.push(headers::make_header(name, part.trim().to_string()));
                }
                continue;
            }
            "From" | "To" if syntax::parse_name_addr(&value).is_none() => {
                return Err(bad_header(name));
            }
            "Contact" if !syntax::valid_contact(&value) => return Err(bad_header(name)),
            "Call-ID" if value.is_empty() || value.bytes().any(|c| c.is_ascii_whitespace()) => {
                return Err(bad_header(name));
            }
            "CSeq" => {
                let (_, method) = parse_cseq(&value).ok_or_else(|| bad_header(name))?;
                cseq_method = method.to_string();
            }
            "Max-Forwards" => {
                // Leading zeros are legal ("0068", RFC 4475 §3.1.1.1); the value is 0..=255.
                let ok = !value.is_empty()
                    && value.bytes().all(|c| c.is_ascii_digit())
                    && value.trim_start_matches('0').len() <= 3
                    && value.parse::<u32>().is_ok_and(|v| v <= 255);
                if !ok {
                    return Err(bad_header(name));
                }
            }
            "Content-Length" => {
                content_length = Some(parse_content_length(&value).ok_or_else(|| {
                    ParseError::new(ParseErrorKind::BadContentLength, "Bad Content-Length")
                })?);
            }
            "Date" if !syntax::valid_sip_date(&value) => return Err(bad_header(name)),
            _ => {}
        }
        out.push(headers::make_header(name, value));
    }
    if vias == 0 {
        return Err(missing("Via"));
    }
    for (i, name) in SINGLE.iter().take(4).enumerate() {
        if counts.get(i).copied().unwrap_or(0) == 0 {
            return Err(missing(name));
        }
    }
    Ok(CheckedHeaders {
        headers: out,
        content_length,
        cseq_method,
    })
}

fn missing(name: &str) -> ParseError {
    ParseError::new(
        ParseErrorKind::MissingHeader,
        format!("Missing {name} header"),
    )
}

fn parse_content_length(value: &str) -> Option<usize> {
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Prints a message: start line, headers in order with a Content-Length that always matches
/// the body (RFC 3261 §18.3, mandatory on streams), raw body bytes.
pub fn serialize(msg: &SipMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + msg.body().len());
    serialize_into(msg, &mut out);
    out
}

/// Like [`serialize`], appending to a caller-owned buffer.
pub fn serialize_into(msg: &SipMessage, out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing into a Vec cannot fail; the results are ignored for that reason.
    match msg {
        SipMessage::Request(r) => {
            let _ = write!(out, "{} {} SIP/2.0\r\n", r.method, r.uri);
        }
        SipMessage::Response(r) => {
            let _ = write!(out, "SIP/2.0 {} ", r.status_code.code());
            push_sanitized(out, reason_phrase(&r.status_code));
            out.extend_from_slice(b"\r\n");
        }
    }
    for h in msg.headers().iter() {
        let (name, value) = headers::header_parts(h);
        if name == "Content-Length" {
            continue;
        }
        push_sanitized(out, name);
        out.extend_from_slice(b": ");
        push_sanitized(out, value);
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", msg.body().len());
    out.extend_from_slice(msg.body());
}

/// The reason phrase of a status: the one received when it was not the standard one, else
/// the standard phrase.
pub(crate) fn reason_phrase(status: &StatusCode) -> &str {
    match status {
        StatusCode::Other(_, reason) => reason.as_str(),
        _ => headers::standard_reason(status.code()),
    }
}

/// Copies text, turning CR/LF into SP so no TU-supplied value can inject header lines.
fn push_sanitized(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

/// Builds the reply to a request that failed [`parse`] (`400 <reason>`, or 416/501/505/513 as
/// [`ParseError::status_code`] says), copying Via/From/To/Call-ID/CSeq found by a tolerant line
/// scan. `None` for responses, ACKs (RFC 3261 §17.2.1: never answered) and text too broken to
/// address a reply; the caller then drops the message silently.
pub fn bad_request_response(bytes: &[u8], err: &ParseError) -> Option<Vec<u8>> {
    let skip = bytes.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let bytes = bytes.get(skip..)?;
    let mut lines = bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let start = lines.next()?;
    let method = start.split(|b| *b == b' ').next()?;
    if method.is_empty()
        || method.len() >= 4 && method.get(..4)?.eq_ignore_ascii_case(b"SIP/")
        || method == b"ACK"
        || !method.iter().all(|c| syntax::is_token_char(*c))
    {
        return None;
    }
    let mut vias: Vec<&[u8]> = Vec::new();
    let mut from = None;
    let mut to = None;
    let mut call_id = None;
    let mut cseq = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = std::str::from_utf8(line.get(..colon)?).ok()?.trim();
        let value = trim_bytes(line.get(colon + 1..)?);
        if value.is_empty() {
            continue;
        }
        match headers::canonical_name(name) {
            Some("Via") => vias.push(value),
            Some("From") if from.is_none() => from = Some(value),
            Some("To") if to.is_none() => to = Some(value),
            Some("Call-ID") if call_id.is_none() => call_id = Some(value),
            Some("CSeq") if cseq.is_none() => cseq = Some(value),
            _ => {}
        }
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if vias.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(format!("SIP/2.0 {} ", err.status_code()).as_bytes());
    push_sanitized(&mut out, err.reason());
    out.extend_from_slice(b"\r\n");
    for v in vias {
        push_header(&mut out, b"Via", v);
    }
    push_header(&mut out, b"From", from);
    push_header(&mut out, b"To", to);
    // RFC 3261 §8.2.6.2: a response that is not a retransmission carries a To tag.
    if !contains_ignore_case(to, b";tag=") && !contains_ignore_case(to, b"; tag") {
        out.truncate(out.len() - 2);
        out.extend_from_slice(b";tag=");
        out.extend_from_slice(new_tag().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    push_header(&mut out, b"Call-ID", call_id);
    push_header(&mut out, b"CSeq", cseq);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(out)
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn trim_bytes(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The top Via header, as the fields routing and matching need (RFC 3261 §18.2.2, RFC 3581).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaInfo {
    /// Transport token, upper case (`UDP`, `TCP`, `TLS`, ...).
    pub transport: String,
    /// sent-by host as written (IPv6 in brackets).
    pub host: String,
    /// sent-by port.
    pub port: Option<u16>,
    /// `branch` parameter.
    pub branch: Option<String>,
    /// `rport` present (with or without value).
    pub rport_requested: bool,
    /// `received` parameter.
    pub received: Option<String>,
    /// `rport` parameter value.
    pub rport: Option<u16>,
}

/// First value of header `name` (case-insensitive, compact forms understood).
pub fn header_value(msg: &impl HasHeaders, name: &str) -> Option<String> {
    msg.headers().iter().find_map(|h| {
        let (n, v) = headers::header_parts(h);
        headers::same_name(n, name).then(|| v.to_string())
    })
}

/// All values of header `name`, in order (case-insensitive, compact forms understood).
pub fn header_values(msg: &impl HasHeaders, name: &str) -> Vec<String> {
    msg.headers()
        .iter()
        .filter_map(|h| {
            let (n, v) = headers::header_parts(h);
            headers::same_name(n, name).then(|| v.to_string())
        })
        .collect()
}

/// The Call-ID.
pub fn call_id(msg: &impl HasHeaders) -> Option<String> {
    header_value(msg, "Call-ID")
}

/// CSeq number and method; `None` if absent, malformed or an unknown method.
pub fn cseq(msg: &impl HasHeaders) -> Option<(u32, Method)> {
    let v = header_value(msg, "CSeq")?;
    let (n, m) = parse_cseq(&v)?;
    Some((n, method_from_wire(m)?))
}

/// The top Via, parsed.
pub fn top_via(msg: &impl HasHeaders) -> Option<ViaInfo> {
    via_at(msg, 0)
}

/// The Via at `index` (0 = top) over all Via headers and their comma-separated values,
/// parsed; `None` if there are fewer or it does not parse.
pub fn via_at(msg: &impl HasHeaders, index: usize) -> Option<ViaInfo> {
    let values = header_values(msg, "Via");
    let mut seen = 0;
    let mut found = None;
    for value in &values {
        let parts = syntax::split_top_level(value, b',')?;
        if let Some(part) = parts.get(index - seen) {
            found = Some(*part);
            break;
        }
        seen += parts.len();
    }
    let via = syntax::parse_via(found?)?;
    Some(ViaInfo {
        transport: via.transport.to_ascii_uppercase(),
        host: via.host.to_string(),
        port: via.port,
        branch: via.param("branch").map(str::to_string),
        rport_requested: via.param("rport").is_some(),
        received: via.param("received").map(str::to_string),
        rport: via.param("rport").and_then(|p| p.parse().ok()),
    })
}

fn tag_of(msg: &impl HasHeaders, header: &str) -> Option<String> {
    tag_in(&header_value(msg, header)?)
}

/// The From tag.
pub fn from_tag(msg: &impl HasHeaders) -> Option<String> {
    tag_of(msg, "From")
}

/// The To tag.
pub fn to_tag(msg: &impl HasHeaders) -> Option<String> {
    tag_of(msg, "To")
}

/// The URI inside a name-addr/addr-spec header value (From, To, Contact, Route).
pub fn address_uri(value: &str) -> Option<String> {
    syntax::parse_name_addr(value).map(|na| na.uri.to_string())
}

/// The `tag` parameter of a From/To header value.
pub(crate) fn tag_in(value: &str) -> Option<String> {
    let na = syntax::parse_name_addr(value)?;
    na.param("tag")
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// The first address of a comma-separated address list (Contact).
pub(crate) fn first_address(value: &str) -> Option<&str> {
    syntax::split_top_level(value, b',')?.first().copied()
}

/// A URI's user part with its `%HH` escapes decoded (RFC 3261 §19.1.2: phones send `#` as
/// `%23`, so `*31%230711…` is the `*31#0711…` the user keyed); `None` for a broken escape
/// or bytes that are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a `sip:`/`sips:` URI into `rsip::Uri` (IPv6 hosts kept in brackets).
pub fn parse_uri(text: &str) -> Option<rsip::Uri> {
    syntax::parse_sip_uri(text).ok().map(|(u, _)| u)
}

/// Builds a response to `req` (RFC 3261 §8.2.6): all Vias in order, From, To (with `to_tag`
/// added when To has none), Call-ID, CSeq, `Content-Length: 0`; and, in a response that
/// creates a dialog (101-299 to INVITE or SUBSCRIBE), the request's Record-Routes in order
/// (§12.1.1), without which a record-routing proxy in front (Kamailio) never sees the ACK
/// and BYE.
pub fn response_to(
    req: &rsip::Request,
    code: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> rsip::Response {
    let creates_dialog = (101..300).contains(&code)
        && matches!(req.method, rsip::Method::Invite | rsip::Method::Subscribe);
    let mut headers = rsip::Headers::default();
    for h in req.headers.iter() {
        let (name, value) = headers::header_parts(h);
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" => headers.push(h.clone()),
            "Record-Route" if creates_dialog => headers.push(h.clone()),
            "To" => match to_tag {
                Some(tag) if tag_of(req, "To").is_none() => {
                    headers.push(headers::make_header("To", format!("{value};tag={tag}")));
                }
                _ => headers.push(h.clone()),
            },
            _ => {}
        }
    }
    headers.push(headers::make_header("Content-Length", "0".into()));
    let status_code = match reason {
        Some(r) => StatusCode::Other(code, r.to_string()),
        None => match StatusCode::from(code) {
            StatusCode::Other(..) => {
                StatusCode::Other(code, headers::standard_reason(code).to_string())
            }
            known => known,
        },
    };
    rsip::Response {
        status_code,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: adds `received=` when the top Via host is not the source
/// IP (always when `rport` was requested), and fills an empty `rport` with the source port.
pub fn stamp_received(req: &mut rsip::Request, source: SocketAddr) {
    let Some(h) = req.headers.iter_mut().find(|h| matches!(h, Header::Via(_))) else {
        return;
    };
    let (_, value) = headers::header_parts(h);
    let Some(parts) = syntax::split_top_level(value, b',') else {
        return;
    };
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let Some(mut via) = syntax::parse_via(first) else {
        return;
    };
    let ip = source.ip();
    let ip_text = ip.to_string();
    let port_text = source.port().to_string();
    let rport_requested = via.param("rport").is_some();
    let host_matches = syntax::host_ip(via.host) == Some(ip);
    if rport_requested {
        for (n, v) in via.params.iter_mut() {
            if n.eq_ignore_ascii_case("rport") && v.is_none_or(str::is_empty) {
                *v = Some(&port_text);
            }
        }
    }
    if !host_matches || rport_requested {
        via.params
            .retain(|(n, _)| !n.eq_ignore_ascii_case("received"));
        via.params.push(("received", Some(&ip_text)));
    }
    let mut text = String::with_capacity(value.len() + 32);
    via.write(&mut text);
    for r in rest {
        text.push(',');
        text.push_str(r);
    }
    *h = headers::make_header("Via", text);
}

/// Where to send a response (RFC 3261 §18.2.2, RFC 3581 §4): `received` + `rport`, else
/// `received` + sent-by port, else sent-by when it is an IP. `None` when sent-by is a host
/// name (RFC 3263 §5 DNS is the caller's job). Default port 5060 (5061 for TLS).
pub fn response_destination(resp: &rsip::Response) -> Option<SocketAddr> {
    let via = top_via(resp)?;
    let default_port = if via.transport == "TLS" { 5061 } else { 5060 };
    let sent_by_port = via.port.unwrap_or(default_port);
    if let Some(received) = via.received.as_deref().and_then(parse_received) {
        return Some(SocketAddr::new(received, via.rport.unwrap_or(sent_by_port)));
    }
    let ip = syntax::host_ip(&via.host)?;
    Some(SocketAddr::new(ip, via.rport.unwrap_or(sent_by_port)))
}

/// Where to open a new connection for a response whose stream is gone (RFC 3261 §18.2.2):
/// the `received` address (else sent-by, when it is an IP) at the sent-by port, 5061 for TLS
/// and 5060 otherwise when none is given. `rport` is left out: RFC 3581 §4 applies it to
/// unreliable transports only, and a closed stream's source port is an ephemeral one that
/// nobody listens on.
pub fn reconnect_destination(resp: &rsip::Response) -> Option<SocketAddr> {
    let via = top_via(resp)?;
    let default_port = if via.transport == "TLS" { 5061 } else { 5060 };
    let port = via.port.unwrap_or(default_port);
    let ip = via
        .received
        .as_deref()
        .and_then(parse_received)
        .or_else(|| syntax::host_ip(&via.host))?;
    Some(SocketAddr::new(ip, port))
}

fn parse_received(v: &str) -> Option<IpAddr> {
    syntax::host_ip(v).or_else(|| v.parse().ok())
}

/// Appends a header (name as given; compact and case variants are understood by readers).
/// The value is sanitised when printed, so it cannot inject header lines.
pub fn add_header(headers: &mut rsip::Headers, name: &str, value: String) {
    headers.push(headers::make_header(name, value));
}

/// Sets the body and its Content-Type (replacing any earlier one); Content-Length is written
/// by [`serialize`] from the body itself.
pub fn set_body(msg: &mut impl BodyAndHeaders, content_type: &str, body: Vec<u8>) {
    let headers = msg.headers_mut_ref();
    headers.retain(|h| !headers::same_name(headers::header_parts(h).0, "Content-Type"));
    headers.push(headers::make_header(
        "Content-Type",
        content_type.to_string(),
    ));
    *msg.body_mut_ref() = body;
}

/// Messages whose body and headers [`set_body`] can replace.
pub trait BodyAndHeaders {
    /// The header list.
    fn headers_mut_ref(&mut self) -> &mut rsip::Headers;
    /// The body.
    fn body_mut_ref(&mut self) -> &mut Vec<u8>;
}

impl BodyAndHeaders for rsip::Request {
    fn headers_mut_ref(&mut self) -> &mut rsip::Headers {
        &mut self.headers
    }
    fn body_mut_ref(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }
}

impl BodyAndHeaders for rsip::Response {
    fn headers_mut_ref(&mut self) -> &mut rsip::Headers {
        &mut self.headers
    }
    fn body_mut_ref(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }
}
