use super::*;

use std::net::SocketAddr;
use std::time::UNIX_EPOCH;

use proptest::prelude::*;

use crate::transaction::TransportKind;

/// The home router's public address: where the phone's REGISTER came from.
fn nat_source() -> Peer {
    Peer {
        addr: "203.0.113.7:40612".parse::<SocketAddr>().unwrap(),
        transport: TransportKind::Udp,
        connection: None,
    }
}

fn parse_request(text: &str) -> rsip::Request {
    match crate::message::parse(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => panic!("not a request"),
    }
}

/// A REGISTER from alice with `extra` header lines (each ending in CRLF).
fn register_text(call_id: &str, cseq: u32, extra: &str) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.178.20:5060;branch=z9hG4bK{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:alice@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    )
}

fn request(call_id: &str, cseq: u32, extra: &str) -> RegisterRequest {
    RegisterRequest::from_request(
        &parse_request(&register_text(call_id, cseq, extra)),
        nat_source(),
    )
    .unwrap()
}

fn alice() -> Aor {
    Aor::new("alice", "example.com")
}

fn registrar() -> Registrar {
    Registrar::new(RegistrarConfig::default())
}

const HOME: &str = "Contact: <sip:alice@192.168.178.20:5060>\r\n";

#[test]
fn registers_and_answers_with_the_granted_expiry() {
    let t0 = Instant::now();
    let mut r = registrar();
    let ok = r.register(&request("c1", 1, HOME), 5, t0).unwrap();
    assert_eq!(
        ok.contacts,
        ["<sip:alice@192.168.178.20:5060>;expires=3600"]
    );
    assert!(matches!(ok.changes.as_slice(), [BindingChange::Added(_)]));
    assert!(ok.path.is_empty());
    let found = r.lookup(&alice(), t0);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].details.contact, "sip:alice@192.168.178.20:5060");
}

#[test]
fn nat_phone_is_reached_over_its_source_flow_not_its_private_contact() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(&request("c1", 1, HOME), 5, t0).unwrap();
    let b = r.lookup(&alice(), t0)[0];
    assert_eq!(b.details.source, nat_source());
    assert_eq!(b.next_hop(), NextHop::Flow(nat_source()));
}

#[test]
fn expiry_comes_from_contact_param_then_expires_header_then_default() {
    let t0 = Instant::now();
    let mut r = registrar();
    let ok = r
        .register(
            &request(
                "c1",
                1,
                "Expires: 1800\r\n\
                 Contact: <sip:alice@192.0.2.1>;expires=120, <sip:alice@192.0.2.2>\r\n",
            ),
            5,
            t0,
        )
        .unwrap();
    assert_eq!(
        ok.contacts,
        [
            "<sip:alice@192.0.2.1>;expires=120",
            "<sip:alice@192.0.2.2>;expires=1800"
        ]
    );
    let ok = r
        .register(
            &request("c2", 1, "Contact: <sip:alice@192.0.2.3>\r\n"),
            5,
            t0,
        )
        .unwrap();
    assert!(
        ok.contacts
            .contains(&"<sip:alice@192.0.2.3>;expires=3600".to_string())
    );
}

#[test]
fn malformed_expires_header_counts_as_absent() {
    // RFC 3261 §20.19: a malformed Expires is treated as 3600 (our default).
    let req = request("c1", 1, &format!("Expires: soon\r\n{HOME}"));
    assert_eq!(req.expires, None);
}

#[test]
fn interval_below_min_expires_is_refused_with_423_and_nothing_stored() {
    let t0 = Instant::now();
    let mut r = registrar();
    let err = r
        .register(
            &request("c1", 1, "Contact: <sip:alice@192.0.2.1>;expires=59\r\n"),
            5,
            t0,
        )
        .unwrap_err();
    assert_eq!(err, RegisterError::IntervalTooBrief { min_expires: 60 });
    assert_eq!(err.status_code(), 423);
    assert_eq!(err.min_expires(), Some(60));
    assert!(r.lookup(&alice(), t0).is_empty());
    let ok = r
        .register(
            &request("c1", 2, "Contact: <sip:alice@192.0.2.1>;expires=60\r\n"),
            5,
            t0,
        )
        .unwrap();
    assert_eq!(ok.contacts, ["<sip:alice@192.0.2.1>;expires=60"]);
}

#[test]
fn no_423_for_an_hour_or_more_even_with_a_larger_minimum() {
    let t0 = Instant::now();
    let mut r = Registrar::new(RegistrarConfig {
        min_expires: 7200,
        max_expires: 7200,
        ..RegistrarConfig::default()
    });
    let ok = r
        .register(
            &request("c1", 1, "Contact: <sip:alice@192.0.2.1>;expires=3600\r\n"),
            5,
            t0,
        )
        .unwrap();
    assert_eq!(ok.contacts, ["<sip:alice@192.0.2.1>;expires=3600"]);
}

#[test]
fn long_intervals_are_shortened_to_the_maximum() {
    let t0 = Instant::now();
    let mut r = registrar();
    let ok = r
        .register(
            &request(
                "c1",
                1,
                "Expires: 99999999999\r\nContact: <sip:alice@192.0.2.1>\r\n",
            ),
            5,
            t0,
        )
        .unwrap();
    assert_eq!(ok.contacts, ["<sip:alice@192.0.2.1>;expires=3600"]);
}

#[test]
fn expires_zero_removes_the_binding_and_unknown_ones_are_ignored() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(&request("c1", 1, HOME), 5, t0).unwrap();
    let ok = r
        .register(
            &request(
                "c1",
                2,
                "Contact: <sip:alice@192.168.178.20:5060>;expires=0, <sip:alice@192.0.2.99>;expires=0\r\n",
            ),
            5,
            t0,
        )
        .unwrap();
    assert!(ok.contacts.is_empty());
    assert!(matches!(ok.changes.as_slice(), [BindingChange::Removed(_)]));
    assert!(r.lookup(&alice(), t0).is_empty());
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn wildcard_with_expires_zero_removes_everything() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(
        &request(
            "c1",
            1,
            "Contact: <sip:alice@192.0.2.1>, <sip:alice@192.0.2.2>\r\n",
        ),
        5,
        t0,
    )
    .unwrap();
    let ok = r
        .register(&request("c2", 1, "Expires: 0\r\nContact: *\r\n"), 5, t0)
        .unwrap();
    assert!(ok.contacts.is_empty());
    assert_eq!(ok.changes.len(), 2);
    assert!(r.lookup(&alice(), t0).is_empty());
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn wildcard_without_expires_zero_or_alongside_contacts_is_400() {
    let t0 = Instant::now();
    let mut r = registrar();
    for extra in ["Contact: *\r\n", "Expires: 10\r\nContact: *\r\n"] {
        let err = r.register(&request("c1", 1, extra), 5, t0).unwrap_err();
        assert_eq!(err.status_code(), 400, "{extra}");
    }
    let err = RegisterRequest::from_request(
        &parse_request(&register_text(
            "c1",
            1,
            "Expires: 0\r\nContact: *\r\nContact: <sip:alice@192.0.2.1>\r\n",
        )),
        nat_source(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        RegisterError::BadRequest("Wildcard With Other Contacts")
    );
}

#[test]
fn wildcard_obeys_call_id_and_cseq_ordering() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(&request("c1", 5, HOME), 5, t0).unwrap();
    let err = r
        .register(&request("c1", 5, "Expires: 0\r\nContact: *\r\n"), 5, t0)
        .unwrap_err();
    assert_eq!(err, RegisterError::OutOfOrder);
    assert_eq!(r.lookup(&alice(), t0).len(), 1);
    assert!(
        r.register(&request("c1", 6, "Expires: 0\r\nContact: *\r\n"), 5, t0)
            .is_ok()
    );
}

#[test]
fn same_call_id_with_cseq_not_higher_fails_with_500_and_changes_nothing() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(&request("c1", 10, HOME), 5, t0).unwrap();
    for cseq in [9, 10] {
        // The first contact is new and would be fine alone; the request fails as a whole.
        let err = r
            .register(
                &request(
                    "c1",
                    cseq,
                    "Contact: <sip:alice@192.0.2.50>, <sip:alice@192.168.178.20:5060>;expires=0\r\n",
                ),
                5,
                t0,
            )
            .unwrap_err();
        assert_eq!(err, RegisterError::OutOfOrder);
        assert_eq!(err.status_code(), 500);
        let left = r.lookup(&alice(), t0);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].details.cseq, 10);
    }
}

#[test]
fn another_call_id_may_update_with_any_cseq() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(&request("c1", 10, HOME), 5, t0).unwrap();
    let ok = r.register(&request("rebooted", 1, HOME), 5, t0).unwrap();
    assert!(
        matches!(ok.changes.as_slice(), [BindingChange::Refreshed(b)] if b.details.call_id == "rebooted")
    );
}

#[test]
fn a_contact_listed_twice_in_one_request_is_not_out_of_order() {
    let t0 = Instant::now();
    let mut r = registrar();
    let ok = r
        .register(
            &request(
                "c1",
                1,
                "Contact: <sip:alice@192.0.2.1>;expires=100, <sip:alice@192.0.2.1>;expires=200\r\n",
            ),
            5,
            t0,
        )
        .unwrap();
    assert_eq!(ok.contacts, ["<sip:alice@192.0.2.1>;expires=200"]);
}

#[test]
fn contact_limit_refuses_additions_with_403_but_allows_refresh_and_removal() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(
        &request(
            "c1",
            1,
            "Contact: <sip:alice@192.0.2.1>, <sip:alice@192.0.2.2>\r\n",
        ),
        2,
        t0,
    )
    .unwrap();
    let err = r
        .register(
            &request("c2", 1, "Contact: <sip:alice@192.0.2.3>\r\n"),
            2,
            t0,
        )
        .unwrap_err();
    assert_eq!(err, RegisterError::TooManyContacts { max: 2 });
    assert_eq!(err.status_code(), 403);
    assert_eq!(r.lookup(&alice(), t0).len(), 2);
    // Limit lowered to one: refreshing and removing still work.
    assert!(
        r.register(
            &request("c1", 2, "Contact: <sip:alice@192.0.2.1>\r\n"),
            1,
            t0
        )
        .is_ok()
    );
    assert!(
        r.register(
            &request("c1", 3, "Contact: <sip:alice@192.0.2.2>;expires=0\r\n"),
            1,
            t0
        )
        .is_ok()
    );
    assert_eq!(r.lookup(&alice(), t0).len(), 1);
    // Replacing one contact with another in one request stays within the limit.
    assert!(
        r.register(
            &request(
                "c1",
                4,
                "Contact: <sip:alice@192.0.2.1>;expires=0, <sip:alice@192.0.2.9>\r\n"
            ),
            1,
            t0
        )
        .is_ok()
    );
}

#[test]
fn lookup_orders_by_q_and_skips_unreachable_bindings() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(
        &request(
            "c1",
            1,
            "Contact: <sip:office@192.0.2.1>;q=0.5, <sip:home@192.0.2.2>;q=0.9, <sip:mobile@192.0.2.3>;q=0.1, <sip:desk@192.0.2.4>\r\n",
        ),
        5,
        t0,
    )
    .unwrap();
    let order: Vec<&str> = r
        .lookup(&alice(), t0)
        .iter()
        .map(|b| b.details.contact.as_str())
        .collect();
    assert_eq!(
        order,
        [
            "sip:desk@192.0.2.4",
            "sip:home@192.0.2.2",
            "sip:office@192.0.2.1",
            "sip:mobile@192.0.2.3"
        ]
    );
    let home = r.lookup(&alice(), t0)[1].id;
    assert!(r.mark_unreachable(&alice(), home));
    assert_eq!(r.lookup(&alice(), t0).len(), 3);
    assert_eq!(r.bindings(&alice(), t0).len(), 4, "still registered");
    assert!(r.mark_reachable(&alice(), home));
    assert_eq!(r.lookup(&alice(), t0).len(), 4);
    assert!(!r.mark_reachable(&Aor::new("bob", "example.com"), home));
}

#[test]
fn q_values_are_kept_and_echoed() {
    let t0 = Instant::now();
    let mut r = registrar();
    let ok = r
        .register(
            &request("c1", 1, "Contact: <sip:alice@192.0.2.1>;q=0.250\r\n"),
            5,
            t0,
        )
        .unwrap();
    assert_eq!(ok.contacts, ["<sip:alice@192.0.2.1>;q=0.25;expires=3600"]);
    assert_eq!(
        r.lookup(&alice(), t0)[0].details.q,
        QValue::from_thousandths(250)
    );
}

#[test]
fn q_value_grammar() {
    for (text, thousandths) in [
        ("0", 0),
        ("0.", 0),
        ("0.5", 500),
        ("0.05", 50),
        ("0.123", 123),
        ("1", 1000),
        ("1.0", 1000),
        ("1.000", 1000),
    ] {
        assert_eq!(
            QValue::parse(text).map(QValue::thousandths),
            Some(thousandths),
            "{text}"
        );
    }
    for bad in [
        "", "1.5", "1.001", "0.1234", "2", ".5", "-0", "0,5", "00.5", "0.5x",
    ] {
        assert_eq!(QValue::parse(bad), None, "{bad}");
    }
    assert_eq!(QValue(500).to_string(), "0.5");
    assert_eq!(QValue(5).to_string(), "0.005");
    assert_eq!(QValue(1000).to_string(), "1");
}

#[test]
fn bad_contact_parameters_are_400() {
    for extra in [
        "Contact: <sip:alice@192.0.2.1>;q=1.5\r\n",
        "Contact: <sip:alice@192.0.2.1>;expires=soon\r\n",
        "Contact: <sip:alice@192.0.2.1>;expires\r\n",
        "Contact: <sip:alice@192.0.2.1>;reg-id=x\r\n",
    ] {
        let err = RegisterRequest::from_request(
            &parse_request(&register_text("c1", 1, extra)),
            nat_source(),
        )
        .unwrap_err();
        assert_eq!(err.status_code(), 400, "{extra}");
    }
}

#[test]
fn binding_expires_at_its_deadline_not_one_tick_before() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(
        &request("c1", 1, "Contact: <sip:alice@192.0.2.1>;expires=60\r\n"),
        5,
        t0,
    )
    .unwrap();
    let deadline = t0 + Duration::from_secs(60);
    assert_eq!(r.next_deadline(), Some(deadline));
    let before = deadline - Duration::from_nanos(1);
    assert!(r.expire(before).is_empty());
    assert_eq!(r.lookup(&alice(), before).len(), 1);
    assert!(
        r.lookup(&alice(), deadline).is_empty(),
        "lookup hides it at the deadline"
    );
    let gone = r.expire(deadline);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].details.contact, "sip:alice@192.0.2.1");
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn a_lapsed_binding_not_yet_collected_does_not_refuse_a_new_register() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(
        &request("c1", 5, "Contact: <sip:alice@192.0.2.1>;expires=60\r\n"),
        5,
        t0,
    )
    .unwrap();
    // The phone restarted its CSeq after the binding lapsed; expire() has not run yet.
    let later = t0 + Duration::from_secs(61);
    let ok = r
        .register(
            &request("c1", 1, "Contact: <sip:alice@192.0.2.1>\r\n"),
            5,
            later,
        )
        .unwrap();
    assert!(matches!(
        ok.changes.as_slice(),
        [BindingChange::Removed(_), BindingChange::Added(_)]
    ));
    assert_eq!(r.next_deadline(), Some(later + Duration::from_secs(3600)));
}

#[test]
fn refresh_moves_the_deadline() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(
        &request("c1", 1, "Contact: <sip:alice@192.0.2.1>;expires=60\r\n"),
        5,
        t0,
    )
    .unwrap();
    let t1 = t0 + Duration::from_secs(50);
    r.register(
        &request("c1", 2, "Contact: <sip:alice@192.0.2.1>;expires=60\r\n"),
        5,
        t1,
    )
    .unwrap();
    assert!(r.expire(t0 + Duration::from_secs(60)).is_empty());
    assert_eq!(r.next_deadline(), Some(t1 + Duration::from_secs(60)));
    assert_eq!(r.expire(t1 + Duration::from_secs(60)).len(), 1);
}

#[test]
fn remaining_expiry_is_rounded_up() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(&request("c1", 1, HOME), 5, t0).unwrap();
    let query = request("c1", 2, "");
    assert_eq!(query.contacts, ContactList::Query);
    let ok = r
        .register(&query, 5, t0 + Duration::from_millis(500))
        .unwrap();
    assert_eq!(
        ok.contacts,
        ["<sip:alice@192.168.178.20:5060>;expires=3600"]
    );
    assert!(ok.changes.is_empty());
    let ok = r.register(&query, 5, t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(
        ok.contacts,
        ["<sip:alice@192.168.178.20:5060>;expires=3599"]
    );
}

#[test]
fn path_is_stored_in_order_and_echoed_only_when_supported() {
    let t0 = Instant::now();
    let mut r = registrar();
    let path = "Path: <sip:edge1.example.net;lr>\r\nPath: <sip:edge2.example.net;lr>, <sip:edge3.example.net;lr>\r\n";
    let ok = r
        .register(&request("c1", 1, &format!("{path}{HOME}")), 5, t0)
        .unwrap();
    assert!(ok.path.is_empty(), "no Supported: path");
    let b = r.lookup(&alice(), t0)[0].clone();
    assert_eq!(
        b.details.path,
        [
            "<sip:edge1.example.net;lr>",
            "<sip:edge2.example.net;lr>",
            "<sip:edge3.example.net;lr>"
        ]
    );
    assert_eq!(b.next_hop(), NextHop::Path("<sip:edge1.example.net;lr>"));
    let ok = r
        .register(
            &request("c1", 2, &format!("Supported: timer, path\r\n{path}{HOME}")),
            5,
            t0,
        )
        .unwrap();
    assert_eq!(ok.path.len(), 3);
    assert_eq!(ok.path[0], "<sip:edge1.example.net;lr>");
}

#[test]
fn contacts_match_case_insensitively_in_scheme_and_host() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(
        &request("c1", 1, "Contact: <sip:alice@Host.Example>\r\n"),
        5,
        t0,
    )
    .unwrap();
    let ok = r
        .register(
            &request("c1", 2, "Contact: <SIP:alice@host.example>\r\n"),
            5,
            t0,
        )
        .unwrap();
    assert!(matches!(
        ok.changes.as_slice(),
        [BindingChange::Refreshed(_)]
    ));
    // The user part is case-sensitive.
    let ok = r
        .register(
            &request("c1", 3, "Contact: <sip:ALICE@host.example>\r\n"),
            5,
            t0,
        )
        .unwrap();
    assert!(matches!(ok.changes.as_slice(), [BindingChange::Added(_)]));
}

#[test]
fn instance_id_identifies_the_binding_across_contact_changes() {
    let t0 = Instant::now();
    let mut r = registrar();
    let inst = r#";+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1"#;
    r.register(
        &request(
            "c1",
            1,
            &format!("Contact: <sip:alice@192.168.178.20:5060>{inst}\r\n"),
        ),
        5,
        t0,
    )
    .unwrap();
    let ok = r
        .register(
            &request(
                "c2",
                1,
                &format!("Contact: <sip:alice@192.168.178.20:5062>{inst}\r\n"),
            ),
            5,
            t0,
        )
        .unwrap();
    assert!(matches!(
        ok.changes.as_slice(),
        [BindingChange::Refreshed(_)]
    ));
    assert_eq!(
        ok.contacts,
        [format!(
            "<sip:alice@192.168.178.20:5062>{inst};expires=3600"
        )]
    );
    let b = r.lookup(&alice(), t0)[0];
    assert_eq!(b.details.reg_id, Some(1));
}

/// Registers one RFC 4475 torture message with an empty registrar.
fn register_rfc4475(name: &str) -> (RegisterRequest, Registered) {
    let raw = crate::message::tests::rfc4475_message(name);
    let rsip::SipMessage::Request(req) = crate::message::parse(&raw).unwrap() else {
        panic!("{name} is not a request")
    };
    let reg = RegisterRequest::from_request(&req, nat_source()).unwrap();
    let ok = registrar().register(&reg, 5, Instant::now()).unwrap();
    (reg, ok)
}

#[test]
fn rfc4475_cparam01_unknownparam_belongs_to_the_contact() {
    let (reg, ok) = register_rfc4475("cparam01");
    assert_eq!(reg.aor, Aor::new("watson", "example.com"));
    assert_eq!(
        ok.contacts,
        ["<sip:+19725552222@gw1.example.net>;unknownparam;expires=3600"]
    );
}

#[test]
fn rfc4475_cparam02_unknownparam_belongs_to_the_uri() {
    let (_, ok) = register_rfc4475("cparam02");
    assert_eq!(
        ok.contacts,
        ["<sip:+19725552222@gw1.example.net;unknownparam>;expires=3600"]
    );
}

#[test]
fn rfc4475_regescrt_keeps_the_escaped_route_in_the_contact() {
    let (_, ok) = register_rfc4475("regescrt");
    assert_eq!(
        ok.contacts,
        ["<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600"]
    );
}

#[test]
fn aor_is_canonical() {
    assert_eq!(
        Aor::from_uri("sip:%61lice@EXAMPLE.com:5060;transport=tcp"),
        Some(alice())
    );
    assert_eq!(Aor::from_uri("sips:alice@example.com"), Some(alice()));
    assert_eq!(alice().to_string(), "sip:alice@example.com");
    assert_eq!(Aor::from_uri("sip:example.com"), None, "no user part");
    assert_eq!(Aor::from_uri("sip:%6@example.com"), None, "broken escape");
    assert_eq!(Aor::from_uri("tel:+4971112345"), None);
}

#[test]
fn export_and_import_keep_bindings_across_a_restart() {
    let t0 = Instant::now();
    let wall0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut r = registrar();
    let tcp = Peer {
        addr: "203.0.113.7:51000".parse().unwrap(),
        transport: TransportKind::Tcp,
        connection: Some(42),
    };
    let mut req = request(
        "c1",
        7,
        "Path: <sip:edge.example.net;lr>\r\nContact: <sip:alice@192.168.178.20:5060>;q=0.7;expires=600\r\n",
    );
    req.source = tcp;
    req.user_agent = Some("Snom D785".into());
    r.register(&req, 5, t0).unwrap();
    r.register(
        &request("c2", 1, "Contact: <sip:alice@192.0.2.9>;expires=60\r\n"),
        5,
        t0,
    )
    .unwrap();

    // Exported 100 s later; the restarted process reads its clocks 30 s after that.
    let records = r.export(
        t0 + Duration::from_secs(100),
        wall0 + Duration::from_secs(100),
    );
    assert_eq!(records.len(), 1, "the 60 s binding had expired");
    let rec = &records[0];
    assert_eq!(rec.expires_at, wall0 + Duration::from_secs(600));
    assert_eq!(rec.registered_at, wall0);

    let t1 = Instant::now() + Duration::from_secs(5);
    let mut restarted = registrar();
    assert_eq!(
        restarted.import(records.clone(), t1, wall0 + Duration::from_secs(130)),
        1
    );
    let b = restarted.lookup(&alice(), t1)[0].clone();
    assert_eq!(b.expires_at, t1 + Duration::from_secs(470));
    assert_eq!(b.details.cseq, 7);
    assert_eq!(b.details.q, QValue::from_thousandths(700));
    assert_eq!(b.details.path, ["<sip:edge.example.net;lr>"]);
    assert_eq!(b.details.user_agent.as_deref(), Some("Snom D785"));
    assert_eq!(
        b.details.source.connection, None,
        "connections do not survive a restart"
    );
    assert_eq!(b.details.source.addr, tcp.addr);
    assert_eq!(restarted.next_deadline(), Some(b.expires_at));
    // The CSeq ordering survives too.
    let err = restarted
        .register(
            &request("c1", 7, "Contact: <sip:alice@192.168.178.20:5060>\r\n"),
            5,
            t1,
        )
        .unwrap_err();
    assert_eq!(err, RegisterError::OutOfOrder);

    // Importing after the expiry loads nothing.
    let mut late = registrar();
    assert_eq!(
        late.import(records, t1, wall0 + Duration::from_secs(600)),
        0
    );
    assert_eq!(late.next_deadline(), None);
}

#[test]
fn import_keeps_the_later_of_two_records_for_one_binding() {
    let t0 = Instant::now();
    let wall0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut r = registrar();
    r.register(&request("c1", 1, HOME), 5, t0).unwrap();
    let mut records = r.export(t0, wall0);
    let mut older = records[0].clone();
    older.expires_at = wall0 + Duration::from_secs(10);
    records.insert(0, older);
    let mut restarted = registrar();
    restarted.import(records, t0, wall0);
    let found = restarted.lookup(&alice(), t0);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].expires_at, t0 + Duration::from_secs(3600));
    assert_eq!(
        restarted.next_deadline(),
        Some(t0 + Duration::from_secs(3600))
    );
}

#[test]
fn learn_adds_bindings_another_node_took_and_leaves_its_own_alone() {
    let t0 = Instant::now();
    let wall0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // This node has alice's home phone; another node took a REGISTER of her office phone
    // and a later refresh of the home phone.
    let mut here = registrar();
    here.register(&request("c1", 1, HOME), 5, t0).unwrap();
    let mut other = registrar();
    other.register(&request("c1", 2, HOME), 5, t0).unwrap();
    other
        .register(
            &request("c2", 1, "Contact: <sip:alice@10.1.2.3:5060>\r\n"),
            5,
            t0,
        )
        .unwrap();
    let mut stored = other.export(t0, wall0);
    for record in &mut stored {
        record.expires_at += Duration::from_secs(60);
    }
    assert_eq!(
        here.learn(stored.clone(), t0, wall0),
        1,
        "only the office phone is new"
    );
    let found = here.lookup(&alice(), t0);
    assert_eq!(found.len(), 2);
    let home = found
        .iter()
        .find(|b| b.details.contact.contains("192.168.178.20"))
        .unwrap();
    assert_eq!(
        home.expires_at,
        t0 + Duration::from_secs(3600),
        "this node's own binding is kept as it is"
    );
    // Learning the same again adds nothing.
    assert_eq!(here.learn(stored, t0, wall0), 0);
    assert_eq!(here.lookup(&alice(), t0).len(), 2);
}

#[test]
fn remove_aor_drops_bindings_and_deadlines() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(&request("c1", 1, HOME), 5, t0).unwrap();
    assert_eq!(r.remove_aor(&alice()).len(), 1);
    assert_eq!(r.next_deadline(), None);
    assert!(r.iter().next().is_none());
}

proptest! {
    #[test]
    fn contact_parsing_never_panics(contact in "[ -~]{0,80}") {
        let text = register_text("c1", 1, "");
        if let Ok(rsip::SipMessage::Request(mut req)) = crate::message::parse(text.as_bytes()) {
            crate::message::add_header(&mut req.headers, "Contact", contact);
            if let Ok(reg) = RegisterRequest::from_request(&req, nat_source()) {
                let _ = registrar().register(&reg, 3, Instant::now());
            }
        }
    }
}
