//! Call transfer's message parts: the Refer-To header of a REFER (RFC 3515 §2.1) with an
//! embedded Replaces (RFC 3891 §3, as attended transfer sends it), the Replaces header of an
//! INVITE, and the `message/sipfrag` bodies of the NOTIFYs that report how the referred call
//! goes (RFC 3515 §2.4.5). Pure parsing and printing: which dialog a Replaces names, and what
//! to do with a transfer, is call control's business.

use crate::message::percent_decode;

/// The content type of a transfer's progress reports (RFC 3420).
pub const SIPFRAG: &str = "message/sipfrag;version=2.0";
/// Longest Refer-To or Replaces value we look at (bounded everything).
const MAX_VALUE: usize = 2048;

/// What is wrong with a Refer-To or Replaces value (the REFER gets 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferError {
    /// The value is empty or longer than we take.
    #[error("Refer-To or Replaces is empty or too long")]
    Length,
    /// `<` without `>`, or no SIP URI in it.
    #[error("Refer-To holds no SIP URI")]
    NoSipUri,
    /// The embedded Replaces is not percent-encoded correctly.
    #[error("Refer-To's Replaces is not percent-encoded correctly")]
    BadEscape,
    /// A Replaces without a Call-ID, or without both tags.
    #[error("Replaces lacks its Call-ID, to-tag or from-tag")]
    IncompleteReplaces,
}

/// A REFER's Refer-To: where to send the transferred party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferTo {
    /// The target URI without its `?headers` part (e.g. `sip:103@10.99.0.1`).
    pub uri: String,
    /// Its user part, percent-decoded (the number to route), if it has one.
    pub user: Option<String>,
    /// The dialog an attended transfer asks to replace (RFC 3891), if any.
    pub replaces: Option<Replaces>,
}

/// A Replaces value: the dialog (as seen by the party that sends it) to be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    /// The dialog's Call-ID.
    pub call_id: String,
    /// The tag of the party that receives the Replaces (RFC 3891 §3: the tags match as if
    /// they were in a request arriving there, so this is its local tag).
    pub to_tag: String,
    /// The other party's tag (the recipient's remote tag).
    pub from_tag: String,
    /// `early-only`: replace the dialog only while it is early.
    pub early_only: bool,
}

/// Reads a Refer-To header value: a name-addr (`"Name" <sip:x@y?Replaces=...>;param`) or a
/// bare addr-spec.
pub fn parse_refer_to(value: &str) -> Result<ReferTo, ReferError> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_VALUE {
        return Err(ReferError::Length);
    }
    let spec = match value.find('<') {
        Some(open) => {
            let rest = &value[open + 1..];
            let close = rest.find('>').ok_or(ReferError::NoSipUri)?;
            &rest[..close]
        }
        // Without angle brackets, parameters after `;` belong to the header (RFC 3261 §20.10).
        None => value.split(';').next().unwrap_or_default(),
    }
    .trim();
    let lower = spec
        .get(..5)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !(lower.starts_with("sip:") || lower.starts_with("sips:")) {
        return Err(ReferError::NoSipUri);
    }
    let (uri, headers) = match spec.split_once('?') {
        Some((uri, headers)) => (uri, Some(headers)),
        None => (spec, None),
    };
    let scheme_end = uri.find(':').map_or(0, |i| i + 1);
    let user = uri[scheme_end..]
        .split_once('@')
        .map(|(user, _)| user.split(';').next().unwrap_or_default())
        .filter(|user| !user.is_empty())
        .map(|user| percent_decode(user).unwrap_or_else(|| user.to_string()));
    if uri.len() <= scheme_end {
        return Err(ReferError::NoSipUri);
    }
    let mut replaces = None;
    for header in headers.into_iter().flat_map(|h| h.split('&')) {
        let Some((name, value)) = header.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("replaces") {
            let decoded = percent_decode(value).ok_or(ReferError::BadEscape)?;
            replaces = Some(parse_replaces(&decoded)?);
        }
    }
    Ok(ReferTo {
        uri: uri.to_string(),
        user,
        replaces,
    })
}

/// Reads a Replaces header value: `call-id;to-tag=x;from-tag=y[;early-only]`.
pub fn parse_replaces(value: &str) -> Result<Replaces, ReferError> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_VALUE {
        return Err(ReferError::Length);
    }
    let mut parts = value.split(';');
    let call_id = parts.next().unwrap_or_default().trim();
    let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
    for param in parts {
        let (name, val) = match param.split_once('=') {
            Some((name, val)) => (name.trim(), Some(val.trim())),
            None => (param.trim(), None),
        };
        if name.eq_ignore_ascii_case("to-tag") {
            to_tag = val;
        } else if name.eq_ignore_ascii_case("from-tag") {
            from_tag = val;
        } else if name.eq_ignore_ascii_case("early-only") {
            early_only = true;
        }
    }
    match (to_tag, from_tag) {
        (Some(to_tag), Some(from_tag))
            if !call_id.is_empty() && !to_tag.is_empty() && !from_tag.is_empty() =>
        {
            Ok(Replaces {
                call_id: call_id.to_string(),
                to_tag: to_tag.to_string(),
                from_tag: from_tag.to_string(),
                early_only,
            })
        }
        _ => Err(ReferError::IncompleteReplaces),
    }
}

/// The `message/sipfrag` body reporting a referred call's status (RFC 3515 §2.4.5): its
/// status line only.
pub fn sipfrag(status: u16, reason: &str) -> String {
    format!("SIP/2.0 {status} {reason}\r\n")
}

/// The status a `message/sipfrag` body reports (its first line), if it is a status line.
pub fn sipfrag_status(body: &str) -> Option<u16> {
    let line = body.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let code = rest.split_whitespace().next()?;
    code.parse().ok().filter(|c| (100..700).contains(c))
}

/// The Subscription-State of a NOTIFY reporting `status` (RFC 3515 §2.4.7): the implicit
/// subscription ends with the final status.
pub fn subscription_state(status: u16) -> &'static str {
    if status >= 200 {
        "terminated;reason=noresource"
    } else {
        "active;expires=60"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_a_blind_transfer_target() {
        let refer = parse_refer_to("<sip:103@10.99.0.1>").expect("valid");
        assert_eq!(refer.uri, "sip:103@10.99.0.1");
        assert_eq!(refer.user.as_deref(), Some("103"));
        assert_eq!(refer.replaces, None);
        let bare = parse_refer_to("sip:%2A21@example.org;method=INVITE").expect("valid");
        assert_eq!(bare.user.as_deref(), Some("*21"));
        assert_eq!(bare.uri, "sip:%2A21@example.org");
        let named =
            parse_refer_to("\"Kollegin\" <sips:104@rathaus.example;transport=tls>").expect("valid");
        assert_eq!(named.user.as_deref(), Some("104"));
    }

    #[test]
    fn reads_the_replaces_of_an_attended_transfer() {
        let refer = parse_refer_to(
            "<sip:103@10.99.0.1?Replaces=abc%4010.99.0.2%3Bto-tag%3D1234%3Bfrom-tag%3D5678>",
        )
        .expect("valid");
        assert_eq!(refer.uri, "sip:103@10.99.0.1");
        assert_eq!(
            refer.replaces,
            Some(Replaces {
                call_id: "abc@10.99.0.2".into(),
                to_tag: "1234".into(),
                from_tag: "5678".into(),
                early_only: false,
            })
        );
        // Other embedded headers are skipped, the name is case-insensitive.
        let mixed = parse_refer_to(
            "<sip:103@h?Require=replaces&replaces=x%3Bfrom-tag%3Da%3Bto-tag%3Db%3Bearly-only>",
        )
        .expect("valid");
        let replaces = mixed.replaces.expect("replaces");
        assert_eq!(
            (replaces.to_tag.as_str(), replaces.from_tag.as_str()),
            ("b", "a")
        );
        assert!(replaces.early_only);
    }

    #[test]
    fn rejects_refer_to_without_a_sip_uri_or_with_a_broken_replaces() {
        assert_eq!(parse_refer_to(""), Err(ReferError::Length));
        assert_eq!(parse_refer_to("<sip:103@h"), Err(ReferError::NoSipUri));
        assert_eq!(parse_refer_to("<tel:+4930123>"), Err(ReferError::NoSipUri));
        assert_eq!(parse_refer_to("<sip:>"), Err(ReferError::NoSipUri));
        assert_eq!(
            parse_refer_to("<sip:103@h?Replaces=abc%3Bto-tag%3D1>"),
            Err(ReferError::IncompleteReplaces)
        );
        assert_eq!(
            parse_refer_to("<sip:103@h?Replaces=abc%ZZ>"),
            Err(ReferError::BadEscape)
        );
    }

    #[test]
    fn reads_a_replaces_header_and_rejects_one_without_tags() {
        let replaces =
            parse_replaces("425928@bobster.example.org;to-tag=7743;from-tag=6472").expect("valid");
        assert_eq!(replaces.call_id, "425928@bobster.example.org");
        assert_eq!(replaces.to_tag, "7743");
        assert_eq!(replaces.from_tag, "6472");
        assert_eq!(
            parse_replaces("425928@bobster;to-tag=7743"),
            Err(ReferError::IncompleteReplaces)
        );
        assert_eq!(
            parse_replaces(";to-tag=1;from-tag=2"),
            Err(ReferError::IncompleteReplaces)
        );
    }

    #[test]
    fn sipfrag_bodies_carry_the_status_line_and_read_back() {
        assert_eq!(sipfrag(100, "Trying"), "SIP/2.0 100 Trying\r\n");
        assert_eq!(sipfrag_status(&sipfrag(486, "Busy Here")), Some(486));
        assert_eq!(
            sipfrag_status("SIP/2.0 200 OK\r\nContact: <sip:x@y>\r\n"),
            Some(200)
        );
        assert_eq!(sipfrag_status("INVITE sip:x@y SIP/2.0\r\n"), None);
        assert_eq!(sipfrag_status("SIP/2.0 99 Low\r\n"), None);
        assert_eq!(subscription_state(180), "active;expires=60");
        assert_eq!(subscription_state(200), "terminated;reason=noresource");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_refer_to_or_replaces(value in ".{0,300}") {
            let _ = parse_refer_to(&value);
            let _ = parse_replaces(&value);
            let _ = sipfrag_status(&value);
        }
    }
}
