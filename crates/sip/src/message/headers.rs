//! Header names: canonical spelling, compact forms (RFC 3261 §7.3.3) and the mapping between
//! `(name, value)` pairs and `rsip::Header` variants.

use rsip::Header;
use rsip::headers::UntypedHeader;

/// Canonical spellings of the header names we know, with their compact form where one exists
/// (RFC 3261 §7.3.3 and the IANA SIP header registry).
const KNOWN: &[(&str, Option<char>)] = &[
    ("Accept", None),
    ("Accept-Contact", Some('a')),
    ("Accept-Encoding", None),
    ("Accept-Language", None),
    ("Alert-Info", None),
    ("Allow", None),
    ("Allow-Events", Some('u')),
    ("Authentication-Info", None),
    ("Authorization", None),
    ("Call-ID", Some('i')),
    ("Call-Info", None),
    ("Contact", Some('m')),
    ("Content-Disposition", None),
    ("Content-Encoding", Some('e')),
    ("Content-Language", None),
    ("Content-Length", Some('l')),
    ("Content-Type", Some('c')),
    ("CSeq", None),
    ("Date", None),
    ("Error-Info", None),
    ("Event", Some('o')),
    ("Expires", None),
    ("From", Some('f')),
    ("Identity", Some('y')),
    ("Identity-Info", Some('n')),
    ("In-Reply-To", None),
    ("Max-Forwards", None),
    ("MIME-Version", None),
    ("Min-Expires", None),
    ("Min-SE", None),
    ("Organization", None),
    ("P-Asserted-Identity", None),
    ("Path", None),
    ("Priority", None),
    ("Privacy", None),
    ("Proxy-Authenticate", None),
    ("Proxy-Authorization", None),
    ("Proxy-Require", None),
    ("RAck", None),
    ("Reason", None),
    ("Record-Route", None),
    ("Refer-To", Some('r')),
    ("Referred-By", Some('b')),
    ("Reject-Contact", Some('j')),
    ("Replaces", None),
    ("Reply-To", None),
    ("Request-Disposition", Some('d')),
    ("Require", None),
    ("Retry-After", None),
    ("Route", None),
    ("RSeq", None),
    ("Server", None),
    ("Session-Expires", Some('x')),
    ("Subject", Some('s')),
    ("Subscription-State", None),
    ("Supported", Some('k')),
    ("Timestamp", None),
    ("To", Some('t')),
    ("Unsupported", None),
    ("User-Agent", None),
    ("Via", Some('v')),
    ("Warning", None),
    ("WWW-Authenticate", None),
];

/// The canonical spelling of a known header name (long or compact form, any case), or `None`
/// for an extension header we do not know.
pub(crate) fn canonical_name(name: &str) -> Option<&'static str> {
    if name.len() == 1 {
        let c = name.chars().next()?.to_ascii_lowercase();
        return KNOWN
            .iter()
            .find(|(_, compact)| *compact == Some(c))
            .map(|(long, _)| *long);
    }
    KNOWN
        .iter()
        .find(|(long, _)| long.eq_ignore_ascii_case(name))
        .map(|(long, _)| *long)
}

/// Whether two header names denote the same header (RFC 3261 §7.3.1: case-insensitive, compact
/// form equivalent to the long one).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    match (canonical_name(a), canonical_name(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

macro_rules! header_map {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Builds the `rsip::Header` for a canonical (or extension) name and a value.
        pub(crate) fn make_header(name: &str, value: String) -> Header {
            match name {
                $($name => Header::$variant(rsip::headers::$variant::new(value)),)*
                _ => Header::Other(name.to_string(), value),
            }
        }

        /// The name (canonical spelling) and value of an `rsip::Header`.
        pub(crate) fn header_parts(header: &Header) -> (&str, &str) {
            match header {
                $(Header::$variant(h) => ($name, h.value()),)*
                Header::Other(name, value) => (name.as_str(), value.as_str()),
            }
        }
    };
}

header_map! {
    Accept => "Accept",
    AcceptEncoding => "Accept-Encoding",
    AcceptLanguage => "Accept-Language",
    AlertInfo => "Alert-Info",
    Allow => "Allow",
    AuthenticationInfo => "Authentication-Info",
    Authorization => "Authorization",
    CSeq => "CSeq",
    CallId => "Call-ID",
    CallInfo => "Call-Info",
    Contact => "Contact",
    ContentDisposition => "Content-Disposition",
    ContentEncoding => "Content-Encoding",
    ContentLanguage => "Content-Language",
    ContentLength => "Content-Length",
    ContentType => "Content-Type",
    Date => "Date",
    ErrorInfo => "Error-Info",
    Event => "Event",
    Expires => "Expires",
    From => "From",
    InReplyTo => "In-Reply-To",
    MaxForwards => "Max-Forwards",
    MimeVersion => "MIME-Version",
    MinExpires => "Min-Expires",
    Organization => "Organization",
    Priority => "Priority",
    ProxyAuthenticate => "Proxy-Authenticate",
    ProxyAuthorization => "Proxy-Authorization",
    ProxyRequire => "Proxy-Require",
    RecordRoute => "Record-Route",
    ReplyTo => "Reply-To",
    Require => "Require",
    RetryAfter => "Retry-After",
    Route => "Route",
    Server => "Server",
    Subject => "Subject",
    SubscriptionState => "Subscription-State",
    Supported => "Supported",
    Timestamp => "Timestamp",
    To => "To",
    Unsupported => "Unsupported",
    UserAgent => "User-Agent",
    Via => "Via",
    Warning => "Warning",
    WwwAuthenticate => "WWW-Authenticate",
}

/// The standard reason phrase for a status code (RFC 3261 §21 and later RFCs).
pub(crate) fn standard_reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms_map_to_long_names() {
        for (compact, long) in [
            ("i", "Call-ID"),
            ("f", "From"),
            ("t", "To"),
            ("v", "Via"),
            ("l", "Content-Length"),
            ("m", "Contact"),
            ("c", "Content-Type"),
            ("k", "Supported"),
            ("s", "Subject"),
            ("I", "Call-ID"),
        ] {
            assert_eq!(canonical_name(compact), Some(long), "{compact}");
        }
    }

    #[test]
    fn long_names_are_case_insensitive() {
        assert_eq!(canonical_name("cAlL-iD"), Some("Call-ID"));
        assert_eq!(canonical_name("VIA"), Some("Via"));
        assert_eq!(canonical_name("X-Custom"), None);
        assert!(same_name("x-custom", "X-CUSTOM"));
        assert!(same_name("v", "Via"));
        assert!(!same_name("v", "To"));
    }

    #[test]
    fn make_header_round_trips_through_header_parts() {
        let h = make_header("Call-ID", "abc@host".into());
        assert!(matches!(h, Header::CallId(_)));
        assert_eq!(header_parts(&h), ("Call-ID", "abc@host"));
        let h = make_header("X-Foo", "bar".into());
        assert_eq!(header_parts(&h), ("X-Foo", "bar"));
    }
}
