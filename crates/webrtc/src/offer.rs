//! A summary of an offer's m-lines for error messages.
//!
//! str0m parses the offer but keeps its parsed form private, so when it finds nothing to
//! answer we read the `m=` and `a=rtpmap:` lines ourselves to say what *was* offered. This
//! only ever feeds an error message: a line it does not understand is skipped.

use std::fmt::Write;

/// At most this many m-lines and codecs per m-line are named, and the text is cut at
/// [`MAX_SUMMARY`] bytes, so that a hostile offer cannot make a huge error message.
const MAX_LINES: usize = 8;
const MAX_CODECS: usize = 8;
const MAX_SUMMARY: usize = 300;

/// str0m's complaint about SDP it could not parse, fit to be shown to the peer: its parser
/// reports the position as `PointerOffset(0x7f...)`, a heap address of this process, which
/// says nothing to the peer and must not leak to it (it weakens ASLR); the parser's several
/// lines become one, bounded like [`summarize`].
pub(crate) fn parse_complaint(error: &str) -> String {
    let mut out = String::new();
    for line in error.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let line = match line.find("PointerOffset(") {
            Some(start) => {
                let end = line[start..]
                    .find(')')
                    .map_or(line.len(), |e| start + e + 1);
                let before = line[..start].trim_end();
                let before = before.strip_suffix(" at").unwrap_or(before);
                format!("{before}{}", &line[end..])
            }
            None => line.to_owned(),
        };
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(line.trim());
    }
    bounded(out)
}

/// `audio (PCMU, PCMA), video (VP8)`, or `no m-lines`.
pub(crate) fn summarize(sdp: &str) -> String {
    let mut lines: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut more_lines = 0;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            if lines.len() == MAX_LINES {
                more_lines += 1;
                continue;
            }
            let kind = m.split_whitespace().next().unwrap_or("?");
            lines.push((kind, Vec::new()));
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            if more_lines > 0 {
                continue;
            }
            // a=rtpmap:<pt> <name>/<rate>[/<channels>]
            let name = map
                .split_whitespace()
                .nth(1)
                .and_then(|enc| enc.split('/').next());
            if let (Some((_, codecs)), Some(name)) = (lines.last_mut(), name) {
                // One past the limit, so that the "..." below knows there were more.
                if codecs.len() <= MAX_CODECS {
                    codecs.push(name);
                }
            }
        }
    }
    if lines.is_empty() {
        return "no m-lines".to_owned();
    }
    let mut out = String::new();
    for (i, (kind, codecs)) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(kind);
        if !codecs.is_empty() {
            out.push_str(" (");
            for (j, c) in codecs.iter().take(MAX_CODECS).enumerate() {
                if j > 0 {
                    out.push_str(", ");
                }
                out.push_str(c);
            }
            if codecs.len() > MAX_CODECS {
                out.push_str(", ...");
            }
            out.push(')');
        }
    }
    if more_lines > 0 {
        let _ = write!(out, " and {more_lines} more");
    }
    bounded(out)
}

/// `text` cut to [`MAX_SUMMARY`] bytes (on a character boundary), `...` saying it was.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_SUMMARY {
        let mut cut = MAX_SUMMARY;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{parse_complaint, summarize};

    #[test]
    fn a_parse_complaint_keeps_the_words_and_drops_the_address() {
        let error = "SDP parse: Parse error at PointerOffset(0x7f6d90019b41)\nUnexpected `t`\n\
                     Expected `o`\nsdp line\n";
        assert_eq!(
            parse_complaint(error),
            "SDP parse: Parse error; Unexpected `t`; Expected `o`; sdp line"
        );
        assert_eq!(parse_complaint("plain"), "plain");
    }

    #[test]
    fn names_kinds_and_codecs() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0 8\r\na=rtpmap:0 PCMU/8000\r\n\
                   a=rtpmap:8 PCMA/8000\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(summarize(sdp), "audio (PCMU, PCMA), video (VP8)");
    }

    #[test]
    fn says_when_there_is_nothing() {
        assert_eq!(summarize("v=0\r\n"), "no m-lines");
    }

    #[test]
    fn bounds_a_hostile_offer() {
        let mut sdp = String::new();
        for _ in 0..1000 {
            sdp.push_str("m=audio 9 RTP/AVP 0\r\n");
            for _ in 0..100 {
                sdp.push_str("a=rtpmap:0 AVERYLONGCODECNAMEAVERYLONGCODECNAME/8000\r\n");
            }
        }
        assert!(summarize(&sdp).len() <= 303);
    }
}
