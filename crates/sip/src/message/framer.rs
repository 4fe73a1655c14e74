//! Cutting SIP messages out of a TCP byte stream (RFC 3261 §18.3).

use super::{MAX_MESSAGE_SIZE, ParseError, ParseErrorKind, headers};

/// Reassembles messages from stream bytes: headers end at CRLFCRLF, the body is
/// Content-Length bytes (mandatory on streams), CRLF keep-alives between messages are skipped
/// (RFC 5626 §3.5.1). The buffer is bounded by [`MAX_MESSAGE_SIZE`]; after an error the
/// stream cannot be resynchronised and the caller should close the connection.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for the end of headers, so a slow sender does not
    /// make us rescan from the start on every push.
    scanned: usize,
    overflow: bool,
    keepalives: usize,
}

impl StreamFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        if self.overflow {
            return;
        }
        // One complete message plus some slack for the next one's start is all we ever hold.
        if self.buf.len() + data.len() > 2 * MAX_MESSAGE_SIZE {
            self.overflow = true;
            self.buf.clear();
            return;
        }
        self.buf.extend_from_slice(data);
    }

    /// Number of CRLF keep-alive pings seen so far (RFC 5626 §3.5.1: a CRLFCRLF ping is
    /// answered with a CRLF pong by the caller).
    pub fn keepalives_seen(&self) -> usize {
        self.keepalives
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Cuts the next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, ParseError> {
        if self.overflow {
            return Err(ParseError::new(
                ParseErrorKind::TooLarge,
                "Message Too Large",
            ));
        }
        let leading = self
            .buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(self.buf.len());
        if leading > 0 {
            self.keepalives += self
                .buf
                .get(..leading)
                .map_or(0, |l| l.windows(4).filter(|w| *w == b"\r\n\r\n").count());
            self.buf.drain(..leading);
            self.scanned = 0;
        }
        let from = self.scanned.saturating_sub(3);
        let Some(pos) = self
            .buf
            .get(from..)
            .and_then(|tail| tail.windows(4).position(|w| w == b"\r\n\r\n"))
            .map(|p| p + from)
        else {
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_MESSAGE_SIZE {
                return Err(ParseError::new(
                    ParseErrorKind::TooLarge,
                    "Message Too Large",
                ));
            }
            return Ok(None);
        };
        self.scanned = pos;
        let head = self.buf.get(..pos).unwrap_or_default();
        let content_length = content_length_of(head)?;
        let total = pos + 4 + content_length;
        if total > MAX_MESSAGE_SIZE {
            return Err(ParseError::new(
                ParseErrorKind::TooLarge,
                "Message Too Large",
            ));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let msg: Vec<u8> = self.buf.drain(..total).collect();
        self.scanned = 0;
        Ok(Some(msg))
    }
}

/// Content-Length from a raw header block (long or compact `l`, any case, folded lines are
/// irrelevant because the value is a plain number).
fn content_length_of(head: &[u8]) -> Result<usize, ParseError> {
    let bad = || ParseError::new(ParseErrorKind::BadContentLength, "Bad Content-Length");
    let mut found = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = std::str::from_utf8(line.get(..colon).unwrap_or_default())
            .unwrap_or_default()
            .trim();
        if headers::canonical_name(name) != Some("Content-Length") {
            continue;
        }
        let value = std::str::from_utf8(line.get(colon + 1..).unwrap_or_default())
            .map_err(|_| bad())?
            .trim();
        if found.is_some() {
            return Err(bad());
        }
        found = Some(super::parse_content_length(value).ok_or_else(bad)?);
    }
    found.ok_or_else(|| {
        ParseError::new(
            ParseErrorKind::MissingContentLength,
            "Missing Content-Length",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    #[test]
    fn cuts_message_split_across_pushes() {
        let mut f = StreamFramer::new();
        let (a, b) = MSG.split_at(30);
        f.push(a);
        assert_eq!(f.next_message().unwrap(), None);
        f.push(b);
        assert_eq!(f.next_message().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.next_message().unwrap(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn waits_for_whole_body() {
        let mut f = StreamFramer::new();
        f.push(MSG.get(..MSG.len() - 2).unwrap());
        assert_eq!(f.next_message().unwrap(), None);
        f.push(b"lo");
        assert!(f.next_message().unwrap().is_some());
    }

    #[test]
    fn cuts_two_messages_in_one_push_and_skips_keepalives() {
        let mut f = StreamFramer::new();
        let mut data = b"\r\n\r\n".to_vec();
        data.extend_from_slice(MSG);
        data.extend_from_slice(b"\r\n");
        data.extend_from_slice(MSG);
        f.push(&data);
        assert_eq!(f.next_message().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.next_message().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.next_message().unwrap(), None);
        assert_eq!(f.keepalives_seen(), 1);
    }

    #[test]
    fn missing_content_length_is_an_error_on_streams() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
        let e = f.next_message().unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::MissingContentLength);
    }

    #[test]
    fn negative_content_length_is_an_error() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(
            f.next_message().unwrap_err().kind(),
            ParseErrorKind::BadContentLength
        );
    }

    #[test]
    fn endless_header_section_overflows() {
        let mut f = StreamFramer::new();
        let junk = vec![b'a'; 1000];
        let mut result = Ok(None);
        for _ in 0..200 {
            f.push(&junk);
            result = f.next_message();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.unwrap_err().kind(), ParseErrorKind::TooLarge);
    }

    #[test]
    fn oversized_content_length_is_rejected_before_buffering() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 999999\r\n\r\n");
        assert_eq!(
            f.next_message().unwrap_err().kind(),
            ParseErrorKind::TooLarge
        );
    }
}
