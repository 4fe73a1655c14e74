use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use rsip::SipMessage;

use super::*;
use crate::digest::client::Secret;
use crate::digest::{
    Algorithm, Credentials, DigestAuthenticator, DigestConfig, DigestResponse, Ha1,
    expected_response, find_credentials, parse_authorization,
};
use crate::registrar::{RegisterRequest, Registrar, RegistrarConfig};
use crate::transaction::Peer;

const SECOND: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
const REGISTRAR: &str = "sip:sip.carrier.example";
const AOR: &str = "sip:4930123@sip.carrier.example";
const CONTACT: &str = "sip:4930123@192.0.2.10:5060";
const USER: &str = "4930123";
const PASSWORD: &str = "pw";

fn config() -> RegistrationConfig {
    RegistrationConfig::new(
        REGISTRAR,
        AOR,
        ClientCredentials {
            username: USER.into(),
            secret: Secret::Password(PASSWORD.into()),
        },
        CONTACT,
        "192.0.2.10:5060",
        TransportKind::Udp,
    )
}

fn started() -> (OutboundRegistration, Instant) {
    let t0 = Instant::now();
    let mut reg = OutboundRegistration::new(config(), 7).unwrap();
    reg.start(t0);
    (reg, t0)
}

fn reply(req: &rsip::Request, code: u16, headers: &[(&str, &str)]) -> rsip::Response {
    let mut resp = message::response_to(req, code, None, Some("carrier-tag"));
    for (name, value) in headers {
        message::add_header(&mut resp.headers, name, value.to_string());
    }
    resp
}

fn header(req: &rsip::Request, name: &str) -> Option<String> {
    message::header_value(req, name)
}

fn cseq_of(req: &rsip::Request) -> u32 {
    message::cseq(req).unwrap().0
}

fn auth_of(req: &rsip::Request, name: &str) -> Option<DigestResponse> {
    header(req, name).map(|v| parse_authorization(&v).unwrap())
}

fn challenge(nonce: &str, stale: bool) -> String {
    let stale = if stale { ", stale=true" } else { "" };
    format!(r#"Digest realm="carrier", nonce="{nonce}", algorithm=MD5, qop="auth"{stale}"#)
}

fn www(nonce: &str, stale: bool) -> [(&'static str, String); 1] {
    [("WWW-Authenticate", challenge(nonce, stale))]
}

fn with<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// Sends the due REGISTER and answers it with `code` and `headers`.
fn exchange(
    reg: &mut OutboundRegistration,
    now: Instant,
    code: u16,
    headers: &[(&str, &str)],
) -> rsip::Request {
    let req = reg.poll_request(now).expect("a REGISTER is due");
    reg.on_response(&reply(&req, code, headers), now);
    req
}

/// Registers through one MD5 challenge (nonce `n1`) with 120 s granted; returns when.
fn registered() -> (OutboundRegistration, Instant) {
    let (mut reg, t0) = started();
    exchange(&mut reg, t0, 401, &with(&www("n1", false)));
    exchange(
        &mut reg,
        t0,
        200,
        &[("Contact", "<sip:4930123@192.0.2.10>;expires=120")],
    );
    assert_eq!(
        reg.state(),
        &RegistrationState::Registered {
            until: t0 + 120 * SECOND
        }
    );
    (reg, t0)
}

fn failed(reg: &OutboundRegistration) -> (FailureReason, Instant) {
    match reg.state() {
        RegistrationState::Failed { reason, retry_at } => (reason.clone(), *retry_at),
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// Asserts a backoff of `full` less at most a tenth.
fn assert_backoff(retry_at: Instant, now: Instant, full: u64) {
    let delay = retry_at - now;
    let full = Duration::from_secs(full);
    assert!(
        delay <= full && delay >= full - full / 10,
        "{delay:?} is not within a tenth below {full:?}"
    );
}

#[test]
fn registers_through_a_challenge_and_refreshes_at_half_the_granted_time() {
    let (mut reg, t0) = started();
    assert_eq!(reg.state(), &RegistrationState::Registering);
    assert_eq!(reg.poll_timeout(), Some(t0));
    let first = reg.poll_request(t0).unwrap();
    // What goes on the wire reads back with our own strict parser.
    let bytes = message::serialize(&SipMessage::Request(first.clone()));
    assert!(matches!(message::parse(&bytes), Ok(SipMessage::Request(_))));
    assert_eq!(first.method, Method::Register);
    assert_eq!(first.uri.to_string(), REGISTRAR);
    assert_eq!(header(&first, "To").unwrap(), format!("<{AOR}>"));
    assert_eq!(
        header(&first, "Contact").unwrap(),
        format!("<{CONTACT}>;expires=600")
    );
    assert_eq!(header(&first, "Expires").as_deref(), Some("600"));
    assert_eq!(header(&first, "Max-Forwards").as_deref(), Some("70"));
    assert_eq!(cseq_of(&first), 1);
    assert!(header(&first, "Authorization").is_none());
    let via = message::top_via(&first).unwrap();
    assert_eq!(
        (via.transport.as_str(), via.host.as_str()),
        ("UDP", "192.0.2.10")
    );
    assert!(via.branch.unwrap().starts_with("z9hG4bK"));
    assert!(via.rport_requested);
    // One REGISTER at a time.
    assert_eq!(reg.poll_request(t0), None);
    assert_eq!(reg.poll_timeout(), Some(t0 + 40 * SECOND));

    let t1 = t0 + 80 * MS;
    reg.on_response(&reply(&first, 401, &with(&www("n1", false))), t1);
    assert_eq!(reg.poll_timeout(), Some(t1));
    let second = reg.poll_request(t1).unwrap();
    assert_eq!(message::call_id(&second), message::call_id(&first));
    assert_eq!(message::from_tag(&second), message::from_tag(&first));
    assert_eq!(cseq_of(&second), 2);
    assert_ne!(
        message::top_via(&second).unwrap().branch,
        message::top_via(&first).unwrap().branch
    );
    let auth = auth_of(&second, "Authorization").unwrap();
    assert_eq!(auth.username, USER);
    assert_eq!(auth.realm, "carrier");
    assert_eq!(auth.nonce, "n1");
    assert_eq!(auth.uri, REGISTRAR);
    assert_eq!(auth.nc.as_deref(), Some("00000001"));
    let ha1 = Ha1::compute(Algorithm::Md5, USER, "carrier", PASSWORD);
    assert_eq!(auth.response, expected_response(&ha1, "REGISTER", &auth));

    // Granted 120 s on our contact (port 5060 left out), 3600 s on somebody else's.
    let t2 = t1 + 90 * MS;
    reg.on_response(
        &reply(
            &second,
            200,
            &[
                ("Contact", "<sip:other@198.51.100.1>;expires=3600"),
                (
                    "Contact",
                    "<sip:4930123@192.0.2.10>;expires=120;+sip.instance=\"x\"",
                ),
                ("Expires", "3600"),
            ],
        ),
        t2,
    );
    assert_eq!(
        reg.state(),
        &RegistrationState::Registered {
            until: t1 + 120 * SECOND
        }
    );
    assert_eq!(reg.poll_timeout(), Some(t1 + 60 * SECOND));
    assert_eq!(reg.poll_request(t1 + 59 * SECOND), None);
    let refresh = reg.poll_request(t1 + 60 * SECOND).unwrap();
    assert_eq!(message::call_id(&refresh), message::call_id(&first));
    assert_eq!(cseq_of(&refresh), 3);
    // Pre-emptive: the nonce we know, with the next count.
    let auth = auth_of(&refresh, "Authorization").unwrap();
    assert_eq!(
        (auth.nonce.as_str(), auth.nc.as_deref()),
        ("n1", Some("00000002"))
    );
    // Refreshing is still registered.
    assert!(matches!(reg.state(), RegistrationState::Registered { .. }));
}

#[test]
fn expiry_comes_from_the_expires_header_when_our_contact_has_none() {
    let (mut reg, t0) = started();
    exchange(
        &mut reg,
        t0,
        200,
        &[
            ("Contact", "<sip:4930123@192.0.2.10:5060;transport=udp>"),
            ("Expires", "300"),
        ],
    );
    assert_eq!(
        reg.state(),
        &RegistrationState::Registered {
            until: t0 + 300 * SECOND
        }
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + 150 * SECOND));
}

#[test]
fn without_any_expiry_the_requested_time_counts_and_more_is_not_believed() {
    let (mut reg, t0) = started();
    exchange(&mut reg, t0, 200, &[]);
    assert_eq!(reg.poll_timeout(), Some(t0 + 300 * SECOND));
    let (mut reg, t0) = started();
    exchange(
        &mut reg,
        t0,
        200,
        &[("Contact", "<sip:4930123@192.0.2.10>;expires=4294967295")],
    );
    assert_eq!(
        reg.state(),
        &RegistrationState::Registered {
            until: t0 + 600 * SECOND
        }
    );
}

#[test]
fn a_short_grant_is_refreshed_a_few_seconds_before_expiry() {
    for (granted, refresh) in [(8, 3), (4, 1), (1, 1), (20, 10)] {
        let (mut reg, t0) = started();
        let contact = format!("<{CONTACT}>;expires={granted}");
        exchange(&mut reg, t0, 200, &[("Contact", &contact)]);
        assert_eq!(
            reg.poll_timeout(),
            Some(t0 + refresh * SECOND),
            "granted {granted}"
        );
    }
}

#[test]
fn a_grant_of_nothing_is_a_failure() {
    let (mut reg, t0) = started();
    exchange(
        &mut reg,
        t0,
        200,
        &[("Contact", &format!("<{CONTACT}>;expires=0"))],
    );
    let (reason, retry_at) = failed(&reg);
    assert_eq!(reason, FailureReason::NotBound);
    assert_backoff(retry_at, t0, 30);
}

#[test]
fn a_second_challenge_with_the_same_nonce_means_wrong_credentials_and_backs_off() {
    let (mut reg, t0) = started();
    exchange(&mut reg, t0, 401, &with(&www("n1", false)));
    let answered = exchange(&mut reg, t0, 401, &with(&www("n1", false)));
    assert!(header(&answered, "Authorization").is_some());
    let (reason, retry_at) = failed(&reg);
    assert_eq!(reason, FailureReason::WrongCredentials);
    assert_backoff(retry_at, t0, 30);
    // No tight loop: nothing until the retry is due.
    assert_eq!(reg.poll_request(t0), None);
    assert_eq!(reg.poll_request(retry_at - MS), None);
    assert_eq!(reg.poll_timeout(), Some(retry_at));
    // The retry starts afresh, without the nonce that failed.
    let retry = reg.poll_request(retry_at).unwrap();
    assert!(header(&retry, "Authorization").is_none());
    assert_eq!(cseq_of(&retry), 3);
    assert_eq!(reg.state(), &RegistrationState::Registering);
    reg.on_response(&reply(&retry, 401, &with(&www("n2", false))), retry_at);
    exchange(&mut reg, retry_at, 401, &with(&www("n2", false)));
    let (_, second_retry) = failed(&reg);
    assert_backoff(second_retry, retry_at, 60);
}

#[test]
fn a_new_nonce_without_stale_after_a_fresh_answer_is_also_wrong_credentials() {
    // RFC 7616 §3.3 (RFC 2617 §3.2.1): without stale=true the credentials are wrong, whatever
    // the nonce.
    let (mut reg, t0) = started();
    exchange(&mut reg, t0, 401, &with(&www("n1", false)));
    exchange(&mut reg, t0, 401, &with(&www("n2", false)));
    assert_eq!(failed(&reg).0, FailureReason::WrongCredentials);
}

#[test]
fn a_stale_nonce_is_answered_again_with_the_new_one() {
    let (mut reg, t0) = started();
    exchange(&mut reg, t0, 401, &with(&www("n1", false)));
    exchange(&mut reg, t0, 401, &with(&www("n2", true)));
    let req = exchange(&mut reg, t0, 200, &[]);
    let auth = auth_of(&req, "Authorization").unwrap();
    assert_eq!(
        (auth.nonce.as_str(), auth.nc.as_deref()),
        ("n2", Some("00000001"))
    );
    assert!(matches!(reg.state(), RegistrationState::Registered { .. }));
}

#[test]
fn a_refresh_whose_nonce_the_carrier_dropped_is_answered_with_the_new_one() {
    // Servers that forget nonces answer the pre-emptive refresh with a new challenge without
    // stale=true (older Asterisk does); our answer to it was not a fresh one, so try once.
    let (mut reg, t0) = registered();
    let t1 = t0 + 60 * SECOND;
    let refresh = exchange(&mut reg, t1, 401, &with(&www("n2", false)));
    assert_eq!(auth_of(&refresh, "Authorization").unwrap().nonce, "n1");
    let answer = exchange(&mut reg, t1, 200, &[("Expires", "120")]);
    assert_eq!(auth_of(&answer, "Authorization").unwrap().nonce, "n2");
    assert_eq!(
        reg.state(),
        &RegistrationState::Registered {
            until: t1 + 120 * SECOND
        }
    );
}

#[test]
fn a_refresh_challenged_with_the_same_nonce_means_the_password_changed() {
    let (mut reg, t0) = registered();
    exchange(&mut reg, t0 + 60 * SECOND, 401, &with(&www("n1", false)));
    assert_eq!(failed(&reg).0, FailureReason::WrongCredentials);
}

#[test]
fn challenges_in_a_row_are_bounded() {
    let (mut reg, t0) = started();
    let mut sent = 0;
    for nonce in ["n1", "n2", "n3", "n4"] {
        exchange(&mut reg, t0, 401, &with(&www(nonce, true)));
        sent += 1;
    }
    assert_eq!(sent, MAX_IMMEDIATE_RETRIES + 1);
    assert_eq!(failed(&reg).0, FailureReason::TooManyChallenges);
    assert_eq!(reg.poll_request(t0), None);
}

#[test]
fn a_proxy_challenge_is_answered_in_proxy_authorization_alongside_the_registrar_one() {
    let (mut reg, t0) = started();
    exchange(
        &mut reg,
        t0,
        407,
        &[(
            "Proxy-Authenticate",
            r#"Digest realm="proxy", nonce="p1", algorithm=SHA-256, qop="auth""#,
        )],
    );
    let second = exchange(&mut reg, t0, 401, &with(&www("n1", false)));
    let proxy = auth_of(&second, "Proxy-Authorization").unwrap();
    assert_eq!(
        (proxy.realm.as_str(), proxy.algorithm),
        ("proxy", Algorithm::Sha256)
    );
    assert!(header(&second, "Authorization").is_none());
    let third = exchange(&mut reg, t0, 200, &[]);
    assert_eq!(
        auth_of(&third, "Proxy-Authorization")
            .unwrap()
            .nc
            .as_deref(),
        Some("00000002")
    );
    assert_eq!(auth_of(&third, "Authorization").unwrap().nonce, "n1");
    assert!(matches!(reg.state(), RegistrationState::Registered { .. }));
}

#[test]
fn an_unanswerable_challenge_is_a_failure_not_a_loop() {
    let (mut reg, t0) = started();
    exchange(
        &mut reg,
        t0,
        401,
        &[("WWW-Authenticate", r#"Basic realm="carrier""#)],
    );
    assert_eq!(
        failed(&reg).0,
        FailureReason::BadChallenge(ChallengeError::NotDigest)
    );
    let (mut reg, t0) = started();
    exchange(&mut reg, t0, 401, &[]);
    assert_eq!(
        failed(&reg).0,
        FailureReason::BadChallenge(ChallengeError::Missing)
    );
}

#[test]
fn interval_too_brief_retries_with_min_expires_and_keeps_it() {
    let (mut reg, t0) = started();
    exchange(&mut reg, t0, 423, &[("Min-Expires", "1800")]);
    let retry = exchange(&mut reg, t0, 200, &[]);
    assert_eq!(
        header(&retry, "Contact").unwrap(),
        format!("<{CONTACT}>;expires=1800")
    );
    assert_eq!(header(&retry, "Expires").as_deref(), Some("1800"));
    assert_eq!(reg.requested_expires(), 1800);
    assert_eq!(reg.poll_timeout(), Some(t0 + 900 * SECOND));
    let refresh = reg.poll_request(t0 + 900 * SECOND).unwrap();
    assert_eq!(header(&refresh, "Expires").as_deref(), Some("1800"));
}

#[test]
fn interval_too_brief_without_a_usable_min_expires_is_a_failure() {
    for min in [None, Some("600"), Some("300"), Some("86401"), Some("soon")] {
        let (mut reg, t0) = started();
        let headers: Vec<(&str, &str)> = min.iter().map(|m| ("Min-Expires", *m)).collect();
        exchange(&mut reg, t0, 423, &headers);
        let (reason, _) = failed(&reg);
        assert_eq!(
            reason,
            FailureReason::Rejected {
                code: 423,
                reason: "Interval Too Brief".into()
            },
            "{min:?}"
        );
    }
}

#[test]
fn service_unavailable_honours_retry_after() {
    let (mut reg, t0) = started();
    exchange(
        &mut reg,
        t0,
        503,
        &[("Retry-After", "120 (maintenance);duration=60")],
    );
    let (reason, retry_at) = failed(&reg);
    assert_eq!(
        reason,
        FailureReason::Rejected {
            code: 503,
            reason: "Service Unavailable".into()
        }
    );
    assert_eq!(retry_at, t0 + 120 * SECOND);
    assert_eq!(reg.poll_timeout(), Some(retry_at));

    // Zero is not an invitation to flood, and hours are more than we wait.
    for (value, expected) in [("0", 5), ("99999", 1800)] {
        let (mut reg, t0) = started();
        exchange(&mut reg, t0, 503, &[("Retry-After", value)]);
        assert_eq!(failed(&reg).1, t0 + expected * SECOND, "{value}");
    }
    let (mut reg, t0) = started();
    exchange(&mut reg, t0, 503, &[]);
    assert_backoff(failed(&reg).1, t0, 30);
}

#[test]
fn other_refusals_back_off_and_keep_the_carriers_reason() {
    let (mut reg, t0) = started();
    let req = reg.poll_request(t0).unwrap();
    let resp = message::response_to(&req, 403, Some("Account Suspended"), Some("t"));
    reg.on_response(&resp, t0);
    let (reason, retry_at) = failed(&reg);
    assert_eq!(
        reason,
        FailureReason::Rejected {
            code: 403,
            reason: "Account Suspended".into()
        }
    );
    assert_eq!(reason.to_string(), "rejected: 403 Account Suspended");
    assert_backoff(retry_at, t0, 30);
}

#[test]
fn timeouts_back_off_doubling_up_to_thirty_minutes_and_success_resets() {
    let (mut reg, t0) = started();
    let mut now = t0;
    for full in [30, 60, 120, 240, 480, 960, 1800, 1800, 1800] {
        reg.poll_request(now).unwrap();
        reg.on_timeout(now);
        let (reason, retry_at) = failed(&reg);
        assert_eq!(reason, FailureReason::Timeout);
        assert_backoff(retry_at, now, full);
        now = retry_at;
    }
    exchange(&mut reg, now, 200, &[("Expires", "120")]);
    let refresh_at = reg.poll_timeout().unwrap();
    reg.poll_request(refresh_at).unwrap();
    reg.on_timeout(refresh_at);
    assert_backoff(failed(&reg).1, refresh_at, 30);
}

#[test]
fn an_unanswered_request_times_out_by_itself() {
    let (mut reg, t0) = started();
    reg.poll_request(t0).unwrap();
    assert_eq!(reg.poll_request(t0 + 39 * SECOND), None);
    assert_eq!(reg.state(), &RegistrationState::Registering);
    assert_eq!(reg.poll_request(t0 + 40 * SECOND), None);
    let (reason, retry_at) = failed(&reg);
    assert_eq!(reason, FailureReason::Timeout);
    assert_backoff(retry_at, t0 + 40 * SECOND, 30);
}

#[test]
fn stop_unregisters_with_expires_zero_and_goes_idle() {
    let (mut reg, t0) = registered();
    let t1 = t0 + 10 * SECOND;
    reg.stop(t1);
    assert_eq!(reg.state(), &RegistrationState::Unregistering);
    assert_eq!(reg.poll_timeout(), Some(t1));
    let bye = reg.poll_request(t1).unwrap();
    assert_eq!(
        header(&bye, "Contact").unwrap(),
        format!("<{CONTACT}>;expires=0")
    );
    assert_eq!(header(&bye, "Expires").as_deref(), Some("0"));
    assert_eq!(cseq_of(&bye), 3);
    assert_eq!(
        auth_of(&bye, "Authorization").unwrap().nc.as_deref(),
        Some("00000002")
    );
    reg.on_response(&reply(&bye, 200, &[]), t1);
    assert_eq!(reg.state(), &RegistrationState::Unregistered);
    assert_eq!(reg.poll_timeout(), None);
    assert_eq!(reg.poll_request(t1 + 3600 * SECOND), None);
}

#[test]
fn an_unregistration_is_challenged_and_answered_like_a_registration() {
    let (mut reg, t0) = started();
    exchange(&mut reg, t0, 200, &[]);
    reg.stop(t0);
    exchange(&mut reg, t0, 401, &with(&www("n9", false)));
    let answer = exchange(&mut reg, t0, 200, &[]);
    assert_eq!(header(&answer, "Expires").as_deref(), Some("0"));
    assert_eq!(auth_of(&answer, "Authorization").unwrap().nonce, "n9");
    assert_eq!(reg.state(), &RegistrationState::Unregistered);
}

#[test]
fn stop_while_registering_waits_for_the_answer_then_unregisters() {
    let (mut reg, t0) = started();
    let first = reg.poll_request(t0).unwrap();
    reg.stop(t0);
    assert_eq!(reg.poll_request(t0), None);
    reg.on_response(&reply(&first, 200, &[]), t0);
    assert_eq!(reg.state(), &RegistrationState::Unregistering);
    let bye = exchange(&mut reg, t0, 200, &[]);
    assert_eq!(header(&bye, "Expires").as_deref(), Some("0"));
    assert_eq!(reg.state(), &RegistrationState::Unregistered);
}

#[test]
fn stop_before_anything_was_sent_needs_no_request() {
    let (mut reg, t0) = started();
    reg.stop(t0);
    assert_eq!(reg.state(), &RegistrationState::Unregistered);
    assert_eq!(reg.poll_request(t0), None);
    assert_eq!(reg.poll_timeout(), None);
    let mut idle = OutboundRegistration::new(config(), 1).unwrap();
    idle.stop(t0);
    assert_eq!(idle.poll_request(t0), None);
}

#[test]
fn an_unregistration_is_tried_once() {
    for code in [Some(500), Some(403), None] {
        let (mut reg, t0) = registered();
        reg.stop(t0);
        let bye = reg.poll_request(t0).unwrap();
        match code {
            Some(code) => reg.on_response(&reply(&bye, code, &[]), t0),
            None => reg.on_timeout(t0),
        }
        assert_eq!(reg.state(), &RegistrationState::Unregistered, "{code:?}");
        assert_eq!(reg.poll_timeout(), None);
    }
}

#[test]
fn starting_again_during_unregistration_registers_once_it_is_answered() {
    let (mut reg, t0) = registered();
    reg.stop(t0);
    let bye = reg.poll_request(t0).unwrap();
    reg.start(t0);
    assert_eq!(reg.poll_request(t0), None);
    reg.on_response(&reply(&bye, 200, &[]), t0);
    let again = reg.poll_request(t0).unwrap();
    assert_eq!(header(&again, "Expires").as_deref(), Some("600"));
    assert_eq!(message::call_id(&again), message::call_id(&bye));
    assert!(cseq_of(&again) > cseq_of(&bye));
}

#[test]
fn stray_and_provisional_responses_are_ignored() {
    let (mut reg, t0) = started();
    let first = exchange(&mut reg, t0, 401, &with(&www("n1", false)));
    let second = reg.poll_request(t0).unwrap();
    // A late copy of the answer to the first request.
    reg.on_response(&reply(&first, 200, &[]), t0);
    reg.on_response(&reply(&second, 100, &[]), t0);
    reg.on_response(&reply(&second, 180, &[]), t0);
    let mut other_dialog = reply(&second, 200, &[]);
    other_dialog
        .headers
        .retain(|h| !matches!(h, rsip::Header::CallId(_)));
    message::add_header(&mut other_dialog.headers, "Call-ID", "someone-else".into());
    reg.on_response(&other_dialog, t0);
    assert_eq!(reg.state(), &RegistrationState::Registering);
    assert_eq!(reg.poll_request(t0), None);
    reg.on_response(&reply(&second, 200, &[]), t0);
    assert!(matches!(reg.state(), RegistrationState::Registered { .. }));
    // Nothing in flight: a response or timeout changes nothing.
    reg.on_response(&reply(&second, 500, &[]), t0);
    reg.on_timeout(t0);
    assert!(matches!(reg.state(), RegistrationState::Registered { .. }));
}

#[test]
fn the_same_seed_replays_the_same_messages() {
    let t0 = Instant::now();
    let run = || {
        let mut reg = OutboundRegistration::new(config(), 42).unwrap();
        reg.start(t0);
        message::serialize(&SipMessage::Request(reg.poll_request(t0).unwrap()))
    };
    assert_eq!(run(), run());
}

#[test]
fn configuration_is_checked() {
    let bad = |change: fn(&mut RegistrationConfig)| {
        let mut c = config();
        change(&mut c);
        OutboundRegistration::new(c, 0).unwrap_err()
    };
    use RegistrationConfigError::*;
    assert_eq!(
        bad(|c| c.registrar = "http://carrier".into()),
        BadUri("registrar")
    );
    assert_eq!(bad(|c| c.aor = "4930123".into()), BadUri("aor"));
    assert_eq!(bad(|c| c.contact = "sip:".into()), BadUri("contact"));
    assert_eq!(bad(|c| c.expires = 0), BadExpires);
    assert_eq!(bad(|c| c.expires = MAX_EXPIRES + 1), BadExpires);
    assert_eq!(bad(|c| c.sent_by = "a b".into()), BadText("sent_by"));
    assert_eq!(bad(|c| c.credentials.username.clear()), BadText("username"));
    assert_eq!(
        bad(|c| c.user_agent = Some("x\r\nInjected: 1".into())),
        BadText("user_agent")
    );
    let mut fine = config();
    fine.user_agent = Some("amtsleitung".into());
    let mut reg = OutboundRegistration::new(fine, 0).unwrap();
    reg.start(Instant::now());
    let req = reg.poll_request(Instant::now()).unwrap();
    assert_eq!(header(&req, "User-Agent").as_deref(), Some("amtsleitung"));
}

/// Our own registrar and authenticator, as a carrier would run them.
struct OwnCarrier {
    auth: DigestAuthenticator,
    registrar: Registrar,
    users: Credentials,
    wall: SystemTime,
}

impl OwnCarrier {
    fn new(max_expires: u32) -> Self {
        Self {
            auth: DigestAuthenticator::new(
                DigestConfig::new("carrier"),
                b"0123456789abcdef0123456789abcdef",
            )
            .unwrap(),
            registrar: Registrar::new(RegistrarConfig {
                default_expires: 3600,
                min_expires: 60,
                max_expires,
            }),
            users: Credentials::from_password(USER, "carrier", PASSWORD),
            wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    fn answer(&mut self, req: rsip::Request, now: Instant) -> rsip::Response {
        let bytes = message::serialize(&SipMessage::Request(req));
        let Ok(SipMessage::Request(req)) = message::parse(&bytes) else {
            panic!("our REGISTER does not parse");
        };
        let credentials = find_credentials(&req, "Authorization", "carrier").unwrap();
        let verified = credentials.map(|c| {
            self.auth
                .verify(&c, "REGISTER", Some(&self.users), self.wall)
        });
        if verified != Some(Ok(())) {
            let mut resp = message::response_to(&req, 401, None, Some("t"));
            for c in self.auth.challenges(self.wall, false) {
                message::add_header(&mut resp.headers, "WWW-Authenticate", c);
            }
            return resp;
        }
        let source = Peer {
            addr: "192.0.2.10:5060".parse().unwrap(),
            transport: TransportKind::Udp,
            connection: None,
        };
        let parsed = RegisterRequest::from_request(&req, source).unwrap();
        match self.registrar.register(&parsed, 5, now) {
            Ok(done) => {
                let mut resp = message::response_to(&req, 200, None, Some("t"));
                for c in done.contacts {
                    message::add_header(&mut resp.headers, "Contact", c);
                }
                resp
            }
            Err(e) => {
                let mut resp = message::response_to(&req, e.status_code(), None, Some("t"));
                if let Some(min) = e.min_expires() {
                    message::add_header(&mut resp.headers, "Min-Expires", min.to_string());
                }
                resp
            }
        }
    }
}

#[test]
fn registers_refreshes_and_unregisters_with_our_own_registrar() {
    let mut carrier = OwnCarrier::new(300);
    let mut c = config();
    c.expires = 30; // below the registrar's minimum of 60: 423 first
    let t0 = Instant::now();
    let mut reg = OutboundRegistration::new(c, 3).unwrap();
    reg.start(t0);
    let aor = crate::registrar::Aor::from_uri(AOR).unwrap();
    for _ in 0..3 {
        let req = reg.poll_request(t0).unwrap();
        reg.on_response(&carrier.answer(req, t0), t0);
    }
    // 401, then 423 (answered with the next nonce-count), then 200 for 60 s.
    assert_eq!(reg.requested_expires(), 60);
    assert_eq!(
        reg.state(),
        &RegistrationState::Registered {
            until: t0 + 60 * SECOND
        }
    );
    assert_eq!(carrier.registrar.bindings(&aor, t0).len(), 1);
    let t1 = reg.poll_timeout().unwrap();
    assert_eq!(t1, t0 + 30 * SECOND);
    let refresh = reg.poll_request(t1).unwrap();
    reg.on_response(&carrier.answer(refresh, t1), t1);
    assert_eq!(
        reg.state(),
        &RegistrationState::Registered {
            until: t1 + 60 * SECOND
        }
    );
    reg.stop(t1);
    let bye = reg.poll_request(t1).unwrap();
    reg.on_response(&carrier.answer(bye, t1), t1);
    assert_eq!(reg.state(), &RegistrationState::Unregistered);
    assert!(carrier.registrar.bindings(&aor, t1).is_empty());
}

#[test]
fn our_own_registrar_shortens_the_interval_and_the_refresh_follows() {
    let mut carrier = OwnCarrier::new(300);
    let (mut reg, t0) = started();
    for _ in 0..2 {
        let req = reg.poll_request(t0).unwrap();
        reg.on_response(&carrier.answer(req, t0), t0);
    }
    assert_eq!(
        reg.state(),
        &RegistrationState::Registered {
            until: t0 + 300 * SECOND
        }
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + 150 * SECOND));
}

#[derive(Debug, Clone)]
struct Step {
    code: u16,
    ours: bool,
    headers: Vec<(&'static str, String)>,
    action: u8,
    advance: u64,
}

fn header_soup() -> impl Strategy<Value = (&'static str, String)> {
    let name = prop::sample::select(vec![
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Contact",
        "Expires",
        "Min-Expires",
        "Retry-After",
    ]);
    let value = prop_oneof![
        "\\PC{0,60}",
        "[0-9]{1,12}",
        r#"Digest (realm|nonce|stale|qop|algorithm|opaque)=("[a-z0-9,]{0,6}"|[a-zA-Z0-9-]{0,8})(, (realm|nonce|stale|qop|algorithm)=("[a-z0-9, ]{0,6}"|[a-zA-Z0-9-]{0,8})){0,5}"#,
        r#"<sip:4930123@192\.0\.2\.10(:5060)?>(;expires=[0-9]{0,11})?(, <sip:x@y>;expires=[0-9]{1,4})?"#,
    ];
    (name, value)
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![
            Just(200u16),
            Just(401),
            Just(407),
            Just(423),
            Just(503),
            100u16..700
        ],
        prop::bool::weighted(0.9),
        prop::collection::vec(header_soup(), 0..4),
        0u8..12,
        prop_oneof![Just(0u64), 0u64..4000],
    )
        .prop_map(|(code, ours, headers, action, advance)| Step {
            code,
            ours,
            headers,
            action,
            advance,
        })
}

proptest! {
    /// Whatever a carrier answers, and whenever, the state machine neither panics, nor gets
    /// stuck (it is idle exactly when it says Unregistered), nor sends more than a handful of
    /// REGISTERs without a pause.
    #[test]
    fn no_response_panics_sticks_or_floods(seed in any::<u64>(), steps in prop::collection::vec(step(), 1..40)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut reg = OutboundRegistration::new(config(), seed).unwrap();
        reg.start(now);
        let mut last: Option<rsip::Request> = None;
        let mut burst = 0u32;
        for step in steps {
            match step.action {
                0 => { reg.stop(now); burst = 0; }
                1 => { reg.start(now); burst = 0; }
                2 => reg.on_timeout(now),
                _ => {}
            }
            if let Some(req) = reg.poll_request(now) {
                burst += 1;
                prop_assert!(burst <= 2 * (MAX_IMMEDIATE_RETRIES + 1), "{burst} REGISTERs without a pause");
                last = Some(req);
            }
            if let Some(req) = &last {
                let mut resp = reply(req, step.code, &[]);
                for (name, value) in &step.headers {
                    message::add_header(&mut resp.headers, name, value.clone());
                }
                if !step.ours {
                    resp.headers.retain(|h| !matches!(h, rsip::Header::CallId(_)));
                    message::add_header(&mut resp.headers, "Call-ID", "stray".into());
                }
                let before = reg.state().clone();
                reg.on_response(&resp, now);
                if let RegistrationState::Failed { retry_at, .. } = reg.state()
                    && reg.state() != &before
                {
                    prop_assert!(*retry_at >= now + MIN_RETRY_AFTER);
                }
            }
            let idle = reg.state() == &RegistrationState::Unregistered;
            prop_assert_eq!(idle, reg.poll_timeout().is_none(), "{:?}", reg.state());
            if step.advance > 0 {
                now += Duration::from_secs(step.advance);
                burst = 0;
            }
        }
    }
}
