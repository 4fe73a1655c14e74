use super::*;
use crate::message::{header_value, parse, response_to};

const MS: Duration = Duration::from_millis(1);

fn udp(port: u16) -> Peer {
    Peer {
        addr: SocketAddr::from(([192, 0, 2, 1], port)),
        transport: TransportKind::Udp,
        connection: None,
    }
}

fn tcp(port: u16) -> Peer {
    Peer {
        addr: SocketAddr::from(([192, 0, 2, 1], port)),
        transport: TransportKind::Tcp,
        connection: Some(7),
    }
}

fn request(method: &str, branch: &str, cseq: u32, transport: &str) -> rsip::Request {
    let text = format!(
        "{method} sip:bob@192.0.2.99 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:proxy.example.com;lr>\r\n\
         From: <sip:alice@example.com>;tag=fromtag\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse(text.as_bytes()).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

fn invite(branch: &str) -> rsip::Request {
    request("INVITE", branch, 1, "UDP")
}

struct Drained {
    transmits: Vec<(Peer, String)>,
    events: Vec<TransactionEvent>,
}

fn drain(layer: &mut TransactionLayer) -> Drained {
    let mut d = Drained {
        transmits: Vec::new(),
        events: Vec::new(),
    };
    while let Some(o) = layer.poll_output() {
        match o {
            Output::Transmit { to, bytes } => {
                d.transmits.push((to, String::from_utf8(bytes).unwrap()))
            }
            Output::Event(e) => d.events.push(e),
        }
    }
    d
}

/// Advances time in 50 ms steps from `from` to `to` (inclusive), returning the offsets (ms
/// from `base`) at which something was transmitted, and all events.
fn run(
    layer: &mut TransactionLayer,
    base: Instant,
    from_ms: u64,
    to_ms: u64,
) -> (Vec<u64>, Vec<TransactionEvent>) {
    let mut sends = Vec::new();
    let mut events = Vec::new();
    let mut t = from_ms;
    while t <= to_ms {
        layer.handle_timeout(base + MS * t as u32);
        let d = drain(layer);
        sends.extend(std::iter::repeat_n(t, d.transmits.len()));
        events.extend(d.events);
        t += 50;
    }
    (sends, events)
}

fn new_server_invite(
    layer: &mut TransactionLayer,
    req: rsip::Request,
    from: Peer,
    now: Instant,
) -> TransactionKey {
    layer.handle_message(SipMessage::Request(req), from, now);
    let d = drain(layer);
    assert_eq!(d.transmits.len(), 1, "100 Trying");
    assert!(d.transmits[0].1.starts_with("SIP/2.0 100 Trying\r\n"));
    match d.events.as_slice() {
        [TransactionEvent::NewRequest { key, .. }] => key.clone(),
        other => panic!("expected NewRequest, got {other:?}"),
    }
}

fn is_timeout(e: &TransactionEvent) -> bool {
    matches!(e, TransactionEvent::Timeout { .. })
}

fn is_terminated(e: &TransactionEvent) -> bool {
    matches!(e, TransactionEvent::Terminated { .. })
}

#[test]
fn server_invite_sends_trying_and_emits_new_request_once() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKinv1");
    new_server_invite(&mut l, req.clone(), udp(5060), t0);
    // Retransmission: re-sends the 100, no second NewRequest.
    l.handle_message(SipMessage::Request(req), udp(5060), t0 + MS * 500);
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    assert!(d.transmits[0].1.starts_with("SIP/2.0 100"));
    assert!(d.events.is_empty());
    assert_eq!(l.len(), 1);
}

#[test]
fn server_invite_retransmission_resends_latest_provisional() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKinv2");
    let key = new_server_invite(&mut l, req.clone(), udp(5060), t0);
    l.send_response(&key, response_to(&req, 180, None, Some("tt")), t0)
        .unwrap();
    drain(&mut l);
    l.handle_message(SipMessage::Request(req), udp(5060), t0 + MS * 100);
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    assert!(d.transmits[0].1.starts_with("SIP/2.0 180 Ringing"));
}

#[test]
fn server_invite_non2xx_retransmits_with_timer_g_until_ack() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKinv3");
    let key = new_server_invite(&mut l, req.clone(), udp(5060), t0);
    l.send_response(&key, response_to(&req, 486, None, Some("tt")), t0)
        .unwrap();
    assert_eq!(drain(&mut l).transmits.len(), 1);
    // Timer G: T1, 2T1, 4T1, then capped at T2 = 4 s.
    let (sends, events) = run(&mut l, t0, 50, 9000);
    assert_eq!(sends, vec![500, 1500, 3500, 7500]);
    assert!(events.is_empty());
    // The ACK (same branch) stops retransmissions and is absorbed.
    let mut ack = request("ACK", "z9hG4bKinv3", 1, "UDP");
    ack.uri = req.uri.clone();
    l.handle_message(SipMessage::Request(ack), udp(5060), t0 + MS * 9000);
    let d = drain(&mut l);
    assert!(d.transmits.is_empty() && d.events.is_empty());
    // Timer I = T4 = 5 s, then Terminated without Timeout.
    let (sends, events) = run(&mut l, t0, 9050, 14_000);
    assert!(sends.is_empty());
    assert_eq!(events.len(), 1);
    assert!(is_terminated(&events[0]));
    assert_eq!(l.len(), 0);
}

#[test]
fn server_invite_non2xx_times_out_with_timer_h() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKinv4");
    let key = new_server_invite(&mut l, req.clone(), udp(5060), t0);
    l.send_response(&key, response_to(&req, 404, None, Some("tt")), t0)
        .unwrap();
    drain(&mut l);
    let (sends, events) = run(&mut l, t0, 50, 31_950);
    assert_eq!(
        sends,
        vec![
            500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    assert!(events.is_empty());
    let (_, events) = run(&mut l, t0, 32_000, 32_000);
    assert_eq!(events.len(), 2);
    assert!(is_timeout(&events[0]));
    assert!(is_terminated(&events[1]));
}

#[test]
fn server_invite_on_tcp_does_not_retransmit_and_timer_i_is_zero() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKinv5", 1, "TCP");
    let key = new_server_invite(&mut l, req.clone(), tcp(40000), t0);
    l.send_response(&key, response_to(&req, 486, None, Some("tt")), t0)
        .unwrap();
    let d = drain(&mut l);
    assert_eq!(d.transmits[0].0, tcp(40000), "reply on the same connection");
    let (sends, _) = run(&mut l, t0, 50, 5000);
    assert!(sends.is_empty());
    let ack = request("ACK", "z9hG4bKinv5", 1, "TCP");
    l.handle_message(SipMessage::Request(ack), tcp(40000), t0 + MS * 5000);
    l.handle_timeout(t0 + MS * 5000);
    let d = drain(&mut l);
    assert_eq!(d.events.len(), 1);
    assert!(is_terminated(&d.events[0]));
}

#[test]
fn server_invite_2xx_is_retransmitted_until_ack() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKinv6");
    let key = new_server_invite(&mut l, req.clone(), udp(5060), t0);
    l.send_response(&key, response_to(&req, 200, None, Some("tt")), t0)
        .unwrap();
    drain(&mut l);
    let (sends, _) = run(&mut l, t0, 50, 2000);
    assert_eq!(sends, vec![500, 1500]);
    // ACK for the 2xx has its own branch; matched by Call-ID + CSeq number.
    let ack = request("ACK", "z9hG4bKack6", 1, "UDP");
    l.handle_message(SipMessage::Request(ack.clone()), udp(5060), t0 + MS * 2000);
    let d = drain(&mut l);
    assert!(matches!(
        d.events.as_slice(),
        [TransactionEvent::Ack { .. }]
    ));
    // A retransmitted ACK is absorbed.
    l.handle_message(SipMessage::Request(ack), udp(5060), t0 + MS * 2100);
    assert!(drain(&mut l).events.is_empty());
    let (sends, events) = run(&mut l, t0, 2050, 32_000);
    assert!(sends.is_empty());
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(is_terminated(&events[0]), "Timer L ends it without Timeout");
}

#[test]
fn server_invite_2xx_never_acked_times_out() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKinv7");
    let key = new_server_invite(&mut l, req.clone(), udp(5060), t0);
    l.send_response(&key, response_to(&req, 200, None, Some("tt")), t0)
        .unwrap();
    drain(&mut l);
    let (sends, events) = run(&mut l, t0, 50, 32_000);
    assert_eq!(
        sends,
        vec![
            500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    assert_eq!(events.len(), 2);
    assert!(is_timeout(&events[0]));
    assert!(is_terminated(&events[1]));
}

#[test]
fn retransmitted_invite_after_2xx_resends_2xx() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKinv8");
    let key = new_server_invite(&mut l, req.clone(), udp(5060), t0);
    l.send_response(&key, response_to(&req, 200, None, Some("tt")), t0)
        .unwrap();
    drain(&mut l);
    l.handle_message(SipMessage::Request(req), udp(5060), t0 + MS * 100);
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    assert!(d.transmits[0].1.starts_with("SIP/2.0 200 OK"));
    assert!(d.events.is_empty());
}

#[test]
fn cancel_of_pending_invite_gets_200_and_cancelled_event_then_487_flow() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKinv9");
    let key = new_server_invite(&mut l, req.clone(), udp(5060), t0);
    l.send_response(&key, response_to(&req, 180, None, Some("tt")), t0)
        .unwrap();
    drain(&mut l);
    let cancel = request("CANCEL", "z9hG4bKinv9", 1, "UDP");
    l.handle_message(
        SipMessage::Request(cancel.clone()),
        udp(5060),
        t0 + MS * 100,
    );
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    let reply = parse(d.transmits[0].1.as_bytes()).unwrap();
    assert_eq!(
        match &reply {
            SipMessage::Response(r) => r.status_code.code(),
            SipMessage::Request(_) => 0,
        },
        200
    );
    assert_eq!(crate::message::to_tag(&reply).as_deref(), Some("tt"));
    assert_eq!(header_value(&reply, "CSeq").as_deref(), Some("1 CANCEL"));
    assert_eq!(
        d.events,
        vec![TransactionEvent::Cancelled {
            invite: key.clone()
        }]
    );
    // Retransmitted CANCEL: 200 again, no second event.
    l.handle_message(SipMessage::Request(cancel), udp(5060), t0 + MS * 200);
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    assert!(d.events.is_empty());
    // TU answers 487; ACK absorbed.
    l.send_response(
        &key,
        response_to(&req, 487, None, Some("tt")),
        t0 + MS * 300,
    )
    .unwrap();
    let d = drain(&mut l);
    assert!(
        d.transmits[0]
            .1
            .starts_with("SIP/2.0 487 Request Terminated")
    );
    l.handle_message(
        SipMessage::Request(request("ACK", "z9hG4bKinv9", 1, "UDP")),
        udp(5060),
        t0 + MS * 400,
    );
    assert!(drain(&mut l).events.is_empty());
}

#[test]
fn cancel_without_matching_invite_gets_481() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    l.handle_message(
        SipMessage::Request(request("CANCEL", "z9hG4bKnone", 1, "UDP")),
        udp(5060),
        t0,
    );
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    assert!(d.transmits[0].1.starts_with("SIP/2.0 481 "));
    assert!(d.events.is_empty());
}

#[test]
fn cancel_after_final_response_gets_200_without_event() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKinv10");
    let key = new_server_invite(&mut l, req.clone(), udp(5060), t0);
    l.send_response(&key, response_to(&req, 200, None, Some("tt")), t0)
        .unwrap();
    drain(&mut l);
    l.handle_message(
        SipMessage::Request(request("CANCEL", "z9hG4bKinv10", 1, "UDP")),
        udp(5060),
        t0 + MS * 10,
    );
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    assert!(d.transmits[0].1.starts_with("SIP/2.0 200 OK"));
    assert!(d.events.is_empty());
}

#[test]
fn server_non_invite_resends_last_response_until_timer_j() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = request("OPTIONS", "z9hG4bKopt1", 5, "UDP");
    l.handle_message(SipMessage::Request(req.clone()), udp(5060), t0);
    let d = drain(&mut l);
    assert!(d.transmits.is_empty(), "no automatic 100 for non-INVITE");
    let key = match d.events.as_slice() {
        [TransactionEvent::NewRequest { key, .. }] => key.clone(),
        other => panic!("{other:?}"),
    };
    // Retransmission before any response is absorbed.
    l.handle_message(SipMessage::Request(req.clone()), udp(5060), t0 + MS * 10);
    let d = drain(&mut l);
    assert!(d.transmits.is_empty() && d.events.is_empty());
    l.send_response(&key, response_to(&req, 200, None, Some("t")), t0 + MS * 20)
        .unwrap();
    assert_eq!(drain(&mut l).transmits.len(), 1);
    l.handle_message(SipMessage::Request(req.clone()), udp(5060), t0 + MS * 500);
    assert_eq!(drain(&mut l).transmits.len(), 1);
    // No retransmission of its own; Timer J = 64*T1 after the final.
    let (sends, events) = run(&mut l, t0, 550, 32_000);
    assert!(sends.is_empty());
    assert!(events.is_empty());
    let (_, events) = run(&mut l, t0, 32_050, 32_050);
    assert_eq!(events.len(), 1);
    assert!(is_terminated(&events[0]));
}

#[test]
fn a_challenge_sent_and_forgotten_leaves_no_state_and_its_retransmission_is_new() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = request("REGISTER", "z9hG4bKreg1", 1, "UDP");
    l.handle_message(SipMessage::Request(req.clone()), udp(5060), t0);
    let key = match drain(&mut l).events.as_slice() {
        [TransactionEvent::NewRequest { key, .. }] => key.clone(),
        other => panic!("{other:?}"),
    };
    l.send_final_and_forget(&key, response_to(&req, 401, None, Some("t")), t0)
        .unwrap();
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    assert!(d.transmits[0].1.starts_with("SIP/2.0 401"));
    assert!(matches!(d.events.as_slice(), [e] if is_terminated(e)));
    // The retransmitted REGISTER is a new request: answered afresh, not from memory.
    l.handle_message(SipMessage::Request(req.clone()), udp(5060), t0 + MS * 500);
    let d = drain(&mut l);
    assert!(d.transmits.is_empty());
    assert!(matches!(
        d.events.as_slice(),
        [TransactionEvent::NewRequest { .. }]
    ));
    // INVITEs keep their state: the ACK to a non-2xx belongs to the transaction.
    let inv = invite("z9hG4bKinv9");
    l.handle_message(SipMessage::Request(inv.clone()), udp(5060), t0);
    let inv_key = match drain(&mut l).events.as_slice() {
        [TransactionEvent::NewRequest { key, .. }] => key.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        l.send_final_and_forget(&inv_key, response_to(&inv, 407, None, Some("t")), t0),
        Err(TransactionError::InvalidState)
    );
}

#[test]
fn server_non_invite_on_tcp_terminates_at_once() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = request("OPTIONS", "z9hG4bKopt2", 5, "TCP");
    l.handle_message(SipMessage::Request(req.clone()), tcp(4000), t0);
    let key = match drain(&mut l).events.as_slice() {
        [TransactionEvent::NewRequest { key, .. }] => key.clone(),
        other => panic!("{other:?}"),
    };
    l.send_response(&key, response_to(&req, 200, None, Some("t")), t0)
        .unwrap();
    l.handle_timeout(t0);
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    assert!(d.events.iter().any(is_terminated));
    assert_eq!(l.len(), 0);
}

#[test]
fn client_invite_timer_a_doubles_and_timer_b_times_out() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let key = l.send_request(invite("z9hG4bKc1"), udp(5060), t0).unwrap();
    assert_eq!(drain(&mut l).transmits.len(), 1);
    let (sends, events) = run(&mut l, t0, 50, 31_950);
    assert_eq!(sends, vec![500, 1500, 3500, 7500, 15_500, 31_500]);
    assert!(events.is_empty());
    let (_, events) = run(&mut l, t0, 32_000, 32_000);
    assert_eq!(
        events,
        vec![
            TransactionEvent::Timeout { key: key.clone() },
            TransactionEvent::Terminated { key }
        ]
    );
}

#[test]
fn client_invite_on_tcp_never_retransmits() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    l.send_request(request("INVITE", "z9hG4bKc2", 1, "TCP"), tcp(5060), t0)
        .unwrap();
    drain(&mut l);
    let (sends, events) = run(&mut l, t0, 50, 32_000);
    assert!(sends.is_empty());
    assert!(is_timeout(&events[0]));
}

fn response_for(req: &rsip::Request, code: u16) -> SipMessage {
    SipMessage::Response(response_to(req, code, None, Some("remote")))
}

#[test]
fn client_invite_non2xx_is_acked_by_the_layer() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKc3");
    let key = l.send_request(req.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    l.handle_message(response_for(&req, 180), udp(5060), t0 + MS * 100);
    let d = drain(&mut l);
    assert!(matches!(
        d.events.as_slice(),
        [TransactionEvent::Response { .. }]
    ));
    // Timer A stopped by the provisional.
    let (sends, _) = run(&mut l, t0, 150, 5000);
    assert!(sends.is_empty());
    l.handle_message(response_for(&req, 486), udp(5060), t0 + MS * 5000);
    let d = drain(&mut l);
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.transmits.len(), 1);
    let SipMessage::Request(ack) = parse(d.transmits[0].1.as_bytes()).unwrap() else {
        panic!("not a request");
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, req.uri);
    assert_eq!(
        crate::message::top_via(&ack).unwrap().branch.as_deref(),
        Some("z9hG4bKc3")
    );
    assert_eq!(header_value(&ack, "CSeq").as_deref(), Some("1 ACK"));
    assert_eq!(crate::message::to_tag(&ack).as_deref(), Some("remote"));
    assert_eq!(
        header_value(&ack, "Route").as_deref(),
        Some("<sip:proxy.example.com;lr>")
    );
    // Retransmitted final: ACK again, TU not told.
    l.handle_message(response_for(&req, 486), udp(5060), t0 + MS * 6000);
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    assert!(d.events.is_empty());
    // Timer D = 32 s.
    let (_, events) = run(&mut l, t0, 6050, 36_950);
    assert!(events.is_empty());
    let (_, events) = run(&mut l, t0, 37_000, 37_000);
    assert_eq!(events, vec![TransactionEvent::Terminated { key }]);
}

#[test]
fn client_invite_on_tcp_timer_d_is_zero() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKc4", 1, "TCP");
    l.send_request(req.clone(), tcp(5060), t0).unwrap();
    l.handle_message(response_for(&req, 603), tcp(5060), t0 + MS * 10);
    l.handle_timeout(t0 + MS * 10);
    let d = drain(&mut l);
    assert!(d.events.iter().any(is_terminated));
    assert_eq!(l.len(), 0);
}

#[test]
fn client_invite_2xx_goes_to_accepted_and_retransmissions_pass_up() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKc5");
    let key = l.send_request(req.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    l.handle_message(response_for(&req, 200), udp(5060), t0 + MS * 100);
    let d = drain(&mut l);
    assert!(d.transmits.is_empty(), "the TU ACKs a 2xx, not the layer");
    assert_eq!(d.events.len(), 1);
    l.handle_message(response_for(&req, 200), udp(5060), t0 + MS * 600);
    let d = drain(&mut l);
    assert!(matches!(
        d.events.as_slice(),
        [TransactionEvent::Response { .. }]
    ));
    // Timer M = 64*T1 after the first 2xx; no Timeout.
    let (sends, events) = run(&mut l, t0, 650, 32_100);
    assert!(sends.is_empty());
    assert_eq!(events, vec![TransactionEvent::Terminated { key }]);
}

#[test]
fn client_cancel_waits_for_a_provisional() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKc6");
    let key = l.send_request(req.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    l.cancel(&key, t0 + MS * 10).unwrap();
    assert!(drain(&mut l).transmits.is_empty(), "no CANCEL before a 1xx");
    l.handle_message(response_for(&req, 100), udp(5060), t0 + MS * 100);
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    let SipMessage::Request(cancel) = parse(d.transmits[0].1.as_bytes()).unwrap() else {
        panic!("not a request");
    };
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(
        crate::message::top_via(&cancel).unwrap().branch.as_deref(),
        Some("z9hG4bKc6")
    );
    assert_eq!(header_value(&cancel, "CSeq").as_deref(), Some("1 CANCEL"));
    assert_eq!(crate::message::to_tag(&cancel), None);
    assert_eq!(l.len(), 2);
    // 200 to the CANCEL, then 487 to the INVITE (ACKed by the layer).
    l.handle_message(response_for(&cancel, 200), udp(5060), t0 + MS * 200);
    l.handle_message(response_for(&req, 487), udp(5060), t0 + MS * 300);
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1, "ACK for 487");
    assert_eq!(d.events.len(), 2);
}

#[test]
fn client_cancel_after_final_is_rejected() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = invite("z9hG4bKc7");
    let key = l.send_request(req.clone(), udp(5060), t0).unwrap();
    l.handle_message(response_for(&req, 200), udp(5060), t0);
    assert_eq!(l.cancel(&key, t0), Err(TransactionError::InvalidState));
}

#[test]
fn client_non_invite_timer_e_caps_at_t2_and_timer_f_times_out() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    l.send_request(request("OPTIONS", "z9hG4bKc8", 2, "UDP"), udp(5060), t0)
        .unwrap();
    drain(&mut l);
    let (sends, events) = run(&mut l, t0, 50, 32_000);
    assert_eq!(
        sends,
        vec![
            500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    assert_eq!(events.len(), 2);
    assert!(is_timeout(&events[0]));
}

#[test]
fn client_non_invite_after_provisional_retransmits_every_t2() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = request("BYE", "z9hG4bKc9", 3, "UDP");
    l.send_request(req.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    l.handle_message(response_for(&req, 100), udp(5060), t0 + MS * 100);
    drain(&mut l);
    let (sends, _) = run(&mut l, t0, 150, 13_000);
    assert_eq!(sends, vec![500, 4500, 8500, 12_500]);
}

#[test]
fn client_non_invite_timer_k_is_t4_on_udp() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let req = request("BYE", "z9hG4bKc10", 3, "UDP");
    let key = l.send_request(req.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    l.handle_message(response_for(&req, 200), udp(5060), t0 + MS * 100);
    let d = drain(&mut l);
    assert_eq!(d.events.len(), 1);
    // Retransmitted final absorbed.
    l.handle_message(response_for(&req, 200), udp(5060), t0 + MS * 200);
    assert!(drain(&mut l).events.is_empty());
    let (sends, events) = run(&mut l, t0, 150, 5050);
    assert!(sends.is_empty());
    assert!(events.is_empty());
    let (_, events) = run(&mut l, t0, 5100, 5100);
    assert_eq!(events, vec![TransactionEvent::Terminated { key }]);
}

#[test]
fn stray_ack_goes_to_tu_and_unmatched_response_is_dropped() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let ack = request("ACK", "z9hG4bKstray", 1, "UDP");
    l.handle_message(SipMessage::Request(ack), udp(5060), t0);
    assert!(matches!(
        drain(&mut l).events.as_slice(),
        [TransactionEvent::Ack { .. }]
    ));
    l.handle_message(response_for(&invite("z9hG4bKnobody"), 200), udp(5060), t0);
    let d = drain(&mut l);
    assert!(d.events.is_empty() && d.transmits.is_empty());
}

#[test]
fn requests_beyond_the_bound_get_503() {
    let mut l = TransactionLayer::with_max_transactions(Timers::default(), 1);
    let t0 = Instant::now();
    new_server_invite(&mut l, invite("z9hG4bKb1"), udp(5060), t0);
    l.handle_message(SipMessage::Request(invite("z9hG4bKb2")), udp(5060), t0);
    let d = drain(&mut l);
    assert_eq!(d.transmits.len(), 1);
    assert!(d.transmits[0].1.starts_with("SIP/2.0 503 "));
    assert!(d.events.is_empty());
    assert_eq!(l.len(), 1);
    assert_eq!(
        l.send_request(invite("z9hG4bKb3"), udp(5060), t0),
        Err(TransactionError::TooManyTransactions)
    );
}

#[test]
fn responses_follow_rport_and_received() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let text = "INVITE sip:bob@192.0.2.99 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKnat\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: nat\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let SipMessage::Request(req) = parse(text.as_bytes()).unwrap() else {
        panic!("not a request");
    };
    let from = Peer {
        addr: "203.0.113.9:61000".parse().unwrap(),
        transport: TransportKind::Udp,
        connection: None,
    };
    l.handle_message(SipMessage::Request(req), from, t0);
    let d = drain(&mut l);
    assert_eq!(d.transmits[0].0.addr, from.addr);
    assert!(d.transmits[0].1.contains("rport=61000"));
    assert!(d.transmits[0].1.contains("received=203.0.113.9"));
}

#[test]
fn send_request_needs_a_branch_and_rejects_ack() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    let mut req = invite("z9hG4bKx");
    req.headers.retain(|h| !matches!(h, Header::Via(_)));
    assert_eq!(
        l.send_request(req, udp(5060), t0),
        Err(TransactionError::MissingBranch)
    );
    assert_eq!(
        l.send_request(request("ACK", "z9hG4bKy", 1, "UDP"), udp(5060), t0),
        Err(TransactionError::NotAllowed)
    );
    l.send_request(invite("z9hG4bKz"), udp(5060), t0).unwrap();
    assert_eq!(
        l.send_request(invite("z9hG4bKz"), udp(5060), t0),
        Err(TransactionError::DuplicateTransaction)
    );
}

#[test]
fn poll_timeout_reports_the_next_deadline() {
    let mut l = TransactionLayer::new(Timers::default());
    let t0 = Instant::now();
    assert_eq!(l.poll_timeout(), None);
    l.send_request(invite("z9hG4bKpt"), udp(5060), t0).unwrap();
    assert_eq!(l.poll_timeout(), Some(t0 + MS * 500));
}

#[test]
fn branches_and_tags_are_fresh() {
    let a = new_branch();
    assert!(a.starts_with(BRANCH_MAGIC_COOKIE));
    assert_ne!(a, new_branch());
    assert_ne!(new_tag(), new_tag());
}
