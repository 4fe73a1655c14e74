use super::*;
use proptest::prelude::*;

const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKdef\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.1>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\r\n";

fn req(text: &str) -> rsip::Request {
    match parse(text.as_bytes()).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("not a request"),
    }
}

fn err(text: &str) -> ParseError {
    parse(text.as_bytes()).unwrap_err()
}

#[test]
fn parses_valid_invite_and_accessors_work() {
    let r = req(INVITE);
    assert_eq!(r.method, Method::Invite);
    assert_eq!(
        call_id(&r).as_deref(),
        Some("a84b4c76e66710@pc33.example.com")
    );
    assert_eq!(cseq(&r), Some((314159, Method::Invite)));
    assert_eq!(from_tag(&r).as_deref(), Some("1928301774"));
    assert_eq!(to_tag(&r), None);
    assert_eq!(r.body, b"v=0\r");
    let via = top_via(&r).unwrap();
    assert_eq!(via.transport, "UDP");
    assert_eq!(via.host, "192.0.2.1");
    assert_eq!(via.port, Some(5060));
    assert_eq!(via.branch.as_deref(), Some("z9hG4bKabc"));
    assert!(via.rport_requested);
    assert_eq!(via.rport, None);
}

#[test]
fn header_lookup_is_case_insensitive_and_knows_compact_forms() {
    let text = INVITE
        .replace("Call-ID:", "i:")
        .replace("From:", "f:")
        .replace("To:", "t:")
        .replace("Content-Length:", "l:")
        .replace("CSeq:", "cSeQ:");
    let r = req(&text);
    assert_eq!(header_value(&r, "call-id"), header_value(&r, "I"));
    assert!(header_value(&r, "Call-ID").is_some());
    assert_eq!(from_tag(&r).as_deref(), Some("1928301774"));
    assert_eq!(
        header_value(&r, "v")
            .as_deref()
            .map(|v| v.starts_with("SIP/2.0/UDP")),
        Some(true)
    );
    assert_eq!(header_values(&r, "Via").len(), 2);
}

#[test]
fn folded_lines_are_unfolded() {
    let text = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159\r\n  INVITE");
    assert_eq!(cseq(&req(&text)), Some((314159, Method::Invite)));
}

#[test]
fn comma_separated_vias_become_separate_headers() {
    let text = INVITE.replace(
        "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKdef\r\n",
        "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/TCP p2.example.com;branch=z9hG4bK2\r\n",
    );
    let r = req(&text);
    let vias = header_values(&r, "Via");
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[2], "SIP/2.0/TCP p2.example.com;branch=z9hG4bK2");
}

#[test]
fn rejects_missing_call_id() {
    let e = err(&INVITE.replace("Call-ID: a84b4c76e66710@pc33.example.com\r\n", ""));
    assert_eq!(e.kind(), ParseErrorKind::MissingHeader);
    assert_eq!(e.reason(), "Missing Call-ID header");
}

#[test]
fn rejects_missing_via() {
    let text = INVITE
        .replace(
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport\r\n",
            "",
        )
        .replace(
            "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKdef\r\n",
            "",
        );
    assert_eq!(err(&text).reason(), "Missing Via header");
}

#[test]
fn max_forwards_may_be_missing() {
    let r = req(&INVITE.replace("Max-Forwards: 70\r\n", ""));
    assert_eq!(header_value(&r, "Max-Forwards"), None);
}

#[test]
fn rejects_cseq_method_mismatch() {
    let e = err(&INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE"));
    assert_eq!(e.kind(), ParseErrorKind::CSeqMismatch);
    assert_eq!(e.reason(), "CSeq method does not match");
}

#[test]
fn rejects_cseq_number_overflow() {
    let e = err(&INVITE.replace("CSeq: 314159", "CSeq: 4294967296"));
    assert_eq!(e.reason(), "Bad CSeq header");
}

#[test]
fn rejects_content_length_beyond_body() {
    let e = err(&INVITE.replace("Content-Length: 4", "Content-Length: 5000"));
    assert_eq!(e.kind(), ParseErrorKind::BadContentLength);
    assert_eq!(e.reason(), "Bad Content-Length");
}

#[test]
fn truncates_datagram_body_to_content_length() {
    let r = req(&INVITE.replace("Content-Length: 4", "Content-Length: 2"));
    assert_eq!(r.body, b"v=");
}

#[test]
fn rejects_oversized_message() {
    let mut text = INVITE.replace("Content-Length: 4", "Content-Length: 70000");
    text.push_str(&"x".repeat(70_000));
    let e = err(&text);
    assert_eq!(e.kind(), ParseErrorKind::TooLarge);
    assert_eq!(e.status_code(), 513);
}

#[test]
fn rejects_other_sip_versions_with_505() {
    let e = err(&INVITE.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"));
    assert_eq!(e.kind(), ParseErrorKind::VersionNotSupported);
    assert_eq!(e.status_code(), 505);
}

#[test]
fn lowercase_method_is_not_invite() {
    // RFC 3261 §7.1: methods are case-sensitive; rsip's own parser would accept this.
    let text = INVITE
        .replace("INVITE sip:", "invite sip:")
        .replace("314159 INVITE", "314159 invite");
    assert_eq!(err(&text).kind(), ParseErrorKind::UnknownMethod);
}

#[test]
fn parses_ipv6_request_uri() {
    let r = req(&INVITE.replace("sip:bob@example.com SIP", "sip:bob@[2001:db8::5]:5070 SIP"));
    assert_eq!(r.uri.to_string(), "sip:bob@[2001:db8::5]:5070");
}

#[test]
fn tolerates_leading_crlf_and_lf_only_line_ends() {
    let text = format!("\r\n\r\n{}", INVITE.replace("\r\n", "\n"));
    let r = req(&text);
    assert_eq!(r.body, b"v=0\n");
}

#[test]
fn parses_response_keeping_unusual_reason() {
    let text = "SIP/2.0 299 Very Fine\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
    let SipMessage::Response(r) = parse(text.as_bytes()).unwrap() else {
        panic!("not a response");
    };
    assert_eq!(r.status_code.code(), 299);
    assert!(serialize(&SipMessage::Response(r)).starts_with(b"SIP/2.0 299 Very Fine\r\n"));
}

#[test]
fn serialize_round_trips_and_fixes_content_length() {
    let mut r = req(INVITE);
    r.body = b"v=0\r\no=x\r\n".to_vec();
    let bytes = serialize(&SipMessage::Request(r.clone()));
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("INVITE sip:bob@example.com SIP/2.0\r\n"));
    assert!(text.contains("\r\nContent-Length: 10\r\n\r\nv=0"));
    assert_eq!(text.matches("Content-Length").count(), 1);
    let SipMessage::Request(again) = parse(&bytes).unwrap() else {
        panic!("not a request");
    };
    assert_eq!(again.body, r.body);
    assert_eq!(again.uri, r.uri);
    assert_eq!(header_values(&again, "Via"), header_values(&r, "Via"));
    assert_eq!(
        header_value(&again, "Content-Length").as_deref(),
        Some("10")
    );
}

#[test]
fn serialize_keeps_binary_body_bytes() {
    let mut r = req(INVITE);
    r.body = vec![0xff, 0x00, 0x80];
    let bytes = serialize(&SipMessage::Request(r));
    assert!(bytes.ends_with(&[0xff, 0x00, 0x80]));
}

#[test]
fn response_to_copies_dialog_headers_and_adds_tag() {
    let r = req(INVITE);
    let resp = response_to(&r, 180, None, Some("xyz"));
    assert_eq!(resp.status_code.code(), 180);
    assert_eq!(header_values(&resp, "Via"), header_values(&r, "Via"));
    assert_eq!(to_tag(&resp).as_deref(), Some("xyz"));
    assert_eq!(from_tag(&resp).as_deref(), Some("1928301774"));
    assert_eq!(call_id(&resp), call_id(&r));
    assert_eq!(cseq(&resp), Some((314159, Method::Invite)));
    assert_eq!(header_value(&resp, "Content-Length").as_deref(), Some("0"));
    assert!(header_value(&resp, "Contact").is_none());
    let text = serialize(&SipMessage::Response(resp));
    assert!(text.starts_with(b"SIP/2.0 180 Ringing\r\n"));
}

#[test]
fn response_to_keeps_existing_to_tag_and_custom_reason() {
    let r = req(&INVITE.replace(
        "To: <sip:bob@example.com>",
        "To: <sip:bob@example.com>;tag=old",
    ));
    let resp = response_to(&r, 486, Some("Busy Here Today"), Some("new"));
    assert_eq!(to_tag(&resp).as_deref(), Some("old"));
    let text = serialize(&SipMessage::Response(resp));
    assert!(text.starts_with(b"SIP/2.0 486 Busy Here Today\r\n"));
}

#[test]
fn stamp_received_adds_received_and_rport() {
    let mut r = req(INVITE);
    stamp_received(&mut r, "198.51.100.7:40000".parse().unwrap());
    let via = top_via(&r).unwrap();
    assert_eq!(via.received.as_deref(), Some("198.51.100.7"));
    assert_eq!(via.rport, Some(40000));
    assert_eq!(header_values(&r, "Via").len(), 2);
    let resp = response_to(&r, 200, None, Some("t"));
    assert_eq!(
        response_destination(&resp),
        Some("198.51.100.7:40000".parse().unwrap())
    );
}

#[test]
fn stamp_received_leaves_matching_host_without_rport_alone() {
    let text = INVITE.replace(";branch=z9hG4bKabc;rport", ";branch=z9hG4bKabc");
    let mut r = req(&text);
    let before = header_values(&r, "Via");
    stamp_received(&mut r, "192.0.2.1:5060".parse().unwrap());
    assert_eq!(header_values(&r, "Via"), before);
    // Different host: received added, no rport invented.
    stamp_received(&mut r, "192.0.2.9:5060".parse().unwrap());
    let via = top_via(&r).unwrap();
    assert_eq!(via.received.as_deref(), Some("192.0.2.9"));
    assert!(!via.rport_requested);
}

#[test]
fn reconnect_destination_takes_received_and_the_sent_by_port_not_rport() {
    let mk = |via: &str| {
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n"
        );
        match parse(text.as_bytes()).unwrap() {
            SipMessage::Response(r) => reconnect_destination(&r),
            SipMessage::Request(_) => None,
        }
    };
    assert_eq!(
        mk("SIP/2.0/TLS phone.example:5071;received=192.0.2.4;rport=40001"),
        Some("192.0.2.4:5071".parse().unwrap())
    );
    assert_eq!(
        mk("SIP/2.0/TLS 192.0.2.5;rport=40001"),
        Some("192.0.2.5:5061".parse().unwrap())
    );
    assert_eq!(
        mk("SIP/2.0/TCP 192.0.2.5"),
        Some("192.0.2.5:5060".parse().unwrap())
    );
    // A host name without `received`: resolving it is the caller's business.
    assert_eq!(mk("SIP/2.0/TLS phone.example"), None);
}

#[test]
fn response_destination_follows_rfc3581_order() {
    let mk = |via: &str| {
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n"
        );
        match parse(text.as_bytes()).unwrap() {
            SipMessage::Response(r) => response_destination(&r),
            SipMessage::Request(_) => None,
        }
    };
    assert_eq!(
        mk("SIP/2.0/UDP h.example.com:5070;received=192.0.2.4;rport=6000"),
        Some("192.0.2.4:6000".parse().unwrap())
    );
    assert_eq!(
        mk("SIP/2.0/UDP h.example.com:5070;received=192.0.2.4"),
        Some("192.0.2.4:5070".parse().unwrap())
    );
    assert_eq!(
        mk("SIP/2.0/UDP 192.0.2.5"),
        Some("192.0.2.5:5060".parse().unwrap())
    );
    assert_eq!(
        mk("SIP/2.0/TLS 192.0.2.5"),
        Some("192.0.2.5:5061".parse().unwrap())
    );
    assert_eq!(
        mk("SIP/2.0/UDP [2001:db8::1]:5080"),
        Some("[2001:db8::1]:5080".parse().unwrap())
    );
    assert_eq!(mk("SIP/2.0/UDP h.example.com"), None);
}

#[test]
fn bad_request_response_copies_headers_and_uses_reason() {
    let text = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
    let e = err(&text);
    let reply = bad_request_response(text.as_bytes(), &e).unwrap();
    let SipMessage::Response(resp) = parse(&reply).unwrap() else {
        panic!("not a response");
    };
    assert_eq!(resp.status_code.code(), 400);
    assert!(reply.starts_with(b"SIP/2.0 400 CSeq method does not match\r\n"));
    assert_eq!(header_values(&resp, "Via").len(), 2);
    assert!(to_tag(&resp).is_some());
    assert_eq!(
        call_id(&resp).as_deref(),
        Some("a84b4c76e66710@pc33.example.com")
    );
}

#[test]
fn bad_request_response_never_answers_ack_or_response() {
    let ack = INVITE
        .replace("INVITE sip:", "ACK sip:")
        .replace("314159 INVITE", "314159 BYE");
    let e = err(&ack);
    assert!(bad_request_response(ack.as_bytes(), &e).is_none());
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 99\r\n\r\n";
    let e = err(resp);
    assert!(bad_request_response(resp.as_bytes(), &e).is_none());
}

#[test]
fn bad_request_response_needs_addressable_headers() {
    let text = INVITE.replace(
        "From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n",
        "",
    );
    let e = err(&text);
    assert!(bad_request_response(text.as_bytes(), &e).is_none());
}

// ---------------------------------------------------------------------------------------
// RFC 4475 torture tests.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    /// RFC 4475 calls it valid: `parse` must succeed.
    Valid,
    /// RFC 4475 calls it invalid: `parse` must fail (and a request that is not an ACK gets a
    /// reply from `bad_request_response` when it has the headers to address one).
    Invalid,
    /// RFC 4475 calls it syntactically valid but says a UAS refuses it with this code. We
    /// refuse it in `parse` with that code: `rsip` has no representation for extension
    /// methods (closed `Method` enum) nor for non-SIP Request-URIs (`Scheme::Other` prints as
    /// `scheme://`), so these never reach the TU. Known deviation for a proxy, correct for our
    /// UAS/B2BUA role.
    ValidButRefused(u16),
}

const RFC4475: &[(&str, Verdict)] = &[
    // §3.1.1 valid
    ("wsinv", Verdict::Valid),
    ("intmeth", Verdict::ValidButRefused(501)),
    ("esc01", Verdict::Valid),
    ("escnull", Verdict::Valid),
    ("esc02", Verdict::ValidButRefused(501)),
    ("lwsdisp", Verdict::Valid),
    ("longreq", Verdict::Valid),
    ("dblreq", Verdict::Valid),
    ("semiuri", Verdict::Valid),
    ("transports", Verdict::Valid),
    ("mpart01", Verdict::Valid),
    ("unreason", Verdict::Valid),
    ("noreason", Verdict::Valid),
    // §3.1.2 invalid
    ("badinv01", Verdict::Invalid),
    ("clerr", Verdict::Invalid),
    ("ncl", Verdict::Invalid),
    ("scalar02", Verdict::Invalid),
    ("scalarlg", Verdict::Invalid),
    ("quotbal", Verdict::Invalid),
    ("ltgtruri", Verdict::Invalid),
    ("lwsruri", Verdict::Invalid),
    ("lwsstart", Verdict::Invalid),
    ("trws", Verdict::Invalid),
    ("escruri", Verdict::Invalid),
    ("baddate", Verdict::Invalid),
    ("regbadct", Verdict::Invalid),
    ("badaspec", Verdict::Invalid),
    ("baddn", Verdict::Invalid),
    ("badvers", Verdict::Invalid),
    ("mismatch01", Verdict::Invalid),
    ("mismatch02", Verdict::Invalid),
    ("bigcode", Verdict::Invalid),
    // §3.2 transaction layer
    ("badbranch", Verdict::Valid),
    // §3.3 application layer
    ("insuf", Verdict::Invalid),
    ("unkscm", Verdict::ValidButRefused(416)),
    ("novelsc", Verdict::ValidButRefused(416)),
    ("unksm2", Verdict::Valid),
    ("bext01", Verdict::Valid),
    ("invut", Verdict::Valid),
    ("regaut01", Verdict::Valid),
    ("multi01", Verdict::Invalid),
    ("mcl01", Verdict::Invalid),
    ("bcast", Verdict::Valid),
    ("zeromf", Verdict::Valid),
    ("cparam01", Verdict::Valid),
    ("cparam02", Verdict::Valid),
    ("regescrt", Verdict::Valid),
    ("sdp01", Verdict::Valid),
    // §3.4 backward compatibility
    ("inv2543", Verdict::Valid),
];

/// One RFC 4475 torture message; a missing corpus fails the test rather than skipping it,
/// so that a checkout without `../shared` cannot pass without checking anything.
pub(crate) fn rfc4475_message(name: &str) -> Vec<u8> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testing/rfc4475"
    );
    std::fs::read(format!("{dir}/{name}.dat")).unwrap_or_else(|err| {
        panic!("RFC 4475 corpus missing: {dir}/{name}.dat: {err} (clone ../shared beside the repo)")
    })
}

#[test]
fn rfc4475_torture_messages_get_the_rfc_verdict() {
    assert_eq!(RFC4475.len(), 49);
    let mut failures = Vec::new();
    for (name, verdict) in RFC4475 {
        let bytes = rfc4475_message(name);
        let result = parse(&bytes);
        let ok = match (verdict, &result) {
            (Verdict::Valid, Ok(_)) => true,
            (Verdict::Invalid, Err(e)) => {
                let is_request = !bytes.starts_with(b"SIP/");
                // Requests that carry the five headers get a reply; others are dropped.
                let reply = bad_request_response(&bytes, e);
                if let Some(reply) = &reply {
                    assert!(is_request, "{name}: answered a response");
                    let status = format!("SIP/2.0 {} ", e.status_code());
                    assert!(
                        reply.starts_with(status.as_bytes()),
                        "{name}: wrong status line"
                    );
                }
                true
            }
            (Verdict::ValidButRefused(code), Err(e)) => {
                e.status_code() == *code && bad_request_response(&bytes, e).is_some()
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: expected {verdict:?}, got {result:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn rfc4475_dblreq_ignores_trailing_request() {
    let bytes = rfc4475_message("dblreq");
    let SipMessage::Request(r) = parse(&bytes).unwrap() else {
        panic!("not a request");
    };
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
}

#[test]
fn rfc4475_wsinv_values_are_normalised() {
    let bytes = rfc4475_message("wsinv");
    let SipMessage::Request(r) = parse(&bytes).unwrap() else {
        panic!("not a request");
    };
    assert_eq!(cseq(&r), Some((9, Method::Invite)));
    assert_eq!(to_tag(&r).as_deref(), Some("1918181833n"));
    assert_eq!(from_tag(&r).as_deref(), Some("98asjd8"));
    assert_eq!(
        header_values(&r, "Via"),
        vec![
            "SIP/2.0/UDP 192.0.2.2;branch=390skdjuw",
            "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8",
            "SIP/2.0/UDP 192.168.255.111;branch=z9hG4bK30239",
        ]
    );
    assert_eq!(r.body.len(), 150);
}

// ---------------------------------------------------------------------------------------
// Never panic.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Err(e) = parse(&bytes) {
            let _ = bad_request_response(&bytes, &e);
        }
        let mut f = StreamFramer::new();
        f.push(&bytes);
        let _ = f.next_message();
    }

    #[test]
    fn parse_never_panics_on_mutated_invite(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8)
    ) {
        let mut bytes = INVITE.as_bytes().to_vec();
        for (pos, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = pos % bytes.len();
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        match parse(&bytes) {
            Ok(msg) => {
                let _ = (call_id(&msg), cseq(&msg), top_via(&msg), from_tag(&msg), to_tag(&msg));
                let printed = serialize(&msg);
                // What we print we can read back.
                prop_assert!(parse(&printed).is_ok(), "{}", String::from_utf8_lossy(&printed));
                if let SipMessage::Request(mut r) = msg {
                    stamp_received(&mut r, "192.0.2.1:1".parse().unwrap());
                    let resp = response_to(&r, 200, None, Some("t"));
                    let _ = response_destination(&resp);
                }
            }
            Err(e) => {
                let _ = bad_request_response(&bytes, &e);
            }
        }
    }
}

#[test]
fn rejects_a_header_longer_than_the_limit_but_accepts_one_at_it() {
    let at_limit = INVITE.replace(
        "Max-Forwards: 70\r\n",
        &format!(
            "Max-Forwards: 70\r\nX-Long: {}\r\n",
            "a".repeat(MAX_HEADER_VALUE)
        ),
    );
    assert!(parse(at_limit.as_bytes()).is_ok());
    let over = INVITE.replace(
        "Max-Forwards: 70\r\n",
        &format!(
            "Max-Forwards: 70\r\nX-Long: {}\r\n",
            "a".repeat(MAX_HEADER_VALUE + 1)
        ),
    );
    let e = err(&over);
    assert_eq!(
        (e.kind(), e.reason()),
        (ParseErrorKind::TooLarge, "Header Too Long")
    );
}

#[test]
fn rejects_more_headers_than_the_limit() {
    let many = INVITE.replace("Max-Forwards: 70\r\n", &"X-Many: 1\r\n".repeat(MAX_HEADERS));
    let e = err(&many);
    assert_eq!(
        (e.kind(), e.reason()),
        (ParseErrorKind::TooLarge, "Too Many Headers")
    );
}

#[test]
fn a_keyed_hash_escaped_in_the_uri_is_read_back_as_keyed() {
    assert_eq!(
        super::percent_decode("*31%230711987654").as_deref(),
        Some("*31#0711987654")
    );
    assert_eq!(super::percent_decode("101").as_deref(), Some("101"));
    assert_eq!(super::percent_decode("%2"), None);
    assert_eq!(super::percent_decode("%zz1"), None);
    assert_eq!(super::percent_decode("%ff"), None);
}

#[test]
fn dialog_creating_responses_carry_the_record_routes_in_order_and_others_do_not() {
    let r = req(&INVITE.replace(
        "Call-ID:",
        "Record-Route: <sip:proxy2.example.com;lr>\r\n\
         Record-Route: <sip:10.0.0.1;lr;ftag=abc>\r\nCall-ID:",
    ));
    for code in [180, 200] {
        let resp = response_to(&r, code, None, Some("t"));
        assert_eq!(
            header_values(&resp, "Record-Route"),
            ["<sip:proxy2.example.com;lr>", "<sip:10.0.0.1;lr;ftag=abc>"],
            "{code}"
        );
    }
    for code in [100, 486] {
        let resp = response_to(&r, code, None, Some("t"));
        assert!(header_values(&resp, "Record-Route").is_empty(), "{code}");
    }
    let options = req(&INVITE
        .replace("INVITE sip", "OPTIONS sip")
        .replace("INVITE\r\n", "OPTIONS\r\n")
        .replace("Call-ID:", "Record-Route: <sip:10.0.0.1;lr>\r\nCall-ID:"));
    let resp = response_to(&options, 200, None, Some("t"));
    assert!(header_values(&resp, "Record-Route").is_empty());
}

#[test]
fn via_at_counts_over_headers_and_comma_separated_values() {
    let r = req(&INVITE.replace(
        "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKdef\r\n",
        "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKdef, SIP/2.0/TCP 10.0.0.9:5070;received=203.0.113.4;rport=4711\r\n",
    ));
    assert_eq!(via_at(&r, 0).unwrap().host, "192.0.2.1");
    assert_eq!(via_at(&r, 1).unwrap().host, "proxy.example.com");
    let third = via_at(&r, 2).unwrap();
    assert_eq!(third.host, "10.0.0.9");
    assert_eq!(third.transport, "TCP");
    assert_eq!(third.received.as_deref(), Some("203.0.113.4"));
    assert_eq!(third.rport, Some(4711));
    assert!(via_at(&r, 3).is_none());
}
