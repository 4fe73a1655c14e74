//! The per-hour cost guard against a SIPp carrier, in a test namespace: a staff call out to a
//! rated mobile number talks until the user's hourly limit is spent and is then ended by the
//! server (the carrier gets a BYE naming the guard); the user's next call out is refused with
//! an announcement and 403 and never reaches the carrier, while an internal call still works.

mod support;

use std::time::Duration;

use support::carrier::{assert_own_tone_back, did_plans, trunks_file, with_registered_carrier};
use support::{
    Baresip, Netns, PacketCounter, TempDir, add_user, assert_both_hear, assert_sipp_ok,
    call_records, read_wav, rms, scenario, wait_until,
};

/// Mobile calls at 60.00 a minute, one a second: the user's 3.00 last three seconds of talk.
const COST_GUARD: &str = "
[cost-guard]
rates = { mobile = 60.00, international = 1.00 }
per-user-per-hour = 3.00
per-hour = 100.00
";

const CUT: &str = "cost guard: the user's limit for the hour is reached";

#[test]
fn an_endless_call_to_a_rated_number_is_cut_at_the_users_hourly_limit_and_the_next_is_refused() {
    let ns = Netns::new();
    let dir = TempDir::new("cost-guard");
    let trunks = trunks_file(&dir);
    // No keep-alive: every packet to the carrier's port is a call's.
    let guarded = std::fs::read_to_string(&trunks)
        .unwrap()
        .replace("max-calls = 10", "max-calls = 10\noptions-interval = 0")
        + COST_GUARD;
    std::fs::write(&trunks, guarded).unwrap();
    let plans = did_plans();
    let data = TempDir::new("cost-guard-data");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let to_carrier = PacketCounter::new(&ns, 5080);
    let carrier = scenario("carrier_cut_by_cost_guard.xml");

    // 0170 1234567, a mobile number: the phone would stay 12 s, the guard ends it after 3.
    let first = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let server_setup = (trunks.as_str(), &plans, data);
    let (server, carrier_out, first_out) =
        with_registered_carrier(&ns, &carrier, "2", server_setup, |_| {
            first.call(&ns, "sip:01701234567@10.99.0.1", 12)
        });
    // The carrier checked the number and that the BYE came from the guard.
    assert_sipp_ok(&carrier_out, &server, "the carrier");
    assert_own_tone_back(&first, &server, "the carrier", &first_out);
    let calls = call_records(&server, 1);
    let [cut] = calls.as_slice() else {
        panic!("one call record expected: {calls:#?}\n{}", server.log());
    };
    assert!(cut.answered, "{cut:#?}");
    assert_eq!(cut.end_reason, CUT, "{cut:#?}\n{}", server.log());
    let callee = cut.connected.as_ref().expect("the carrier's leg answered");
    assert_eq!(callee.end_reason, CUT, "{cut:#?}");
    let talked_ms = callee.ended_at_ms - callee.answered_at_ms;
    assert!(
        (2_500..6_000).contains(&talked_ms),
        "ended after {talked_ms} ms of talk, not at the 3.00 limit\n{}",
        server.log()
    );
    let log = server.log();
    assert!(
        log.contains("the user's spend in the last hour is 3.0")
            && log.contains("the limit 3.00; ending the call"),
        "{log}"
    );
    assert_eq!(
        server.metric(
            Some(&ns),
            "amtsleitung_calls_cut_cost_total{limit=\"user\"}"
        ),
        1
    );
    let metrics = server.metrics(Some(&ns));
    // The call was cut once it reached 3.00; the spend shows it, give or take the tick
    // that cut it.
    let spent: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("amtsleitung_cost_last_hour "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no spend in {metrics}"));
    assert!((3.0..3.05).contains(&spent), "{spent}");

    // The next call out to a rated number: refused before anything goes to the carrier.
    let sent_to_carrier = to_carrier.packets();
    let second = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let second_out = second.call(&ns, "sip:01701234567@10.99.0.1", 6);
    let calls = call_records(&server, 2);
    let refused = calls
        .iter()
        .find(|c| c.call_id != cut.call_id)
        .unwrap_or_else(|| panic!("no second call: {calls:#?}\n{second_out}"));
    assert_eq!(
        (
            refused.final_status,
            refused.end_reason.as_str(),
            refused.contacts_rung,
            refused.answered
        ),
        (
            403,
            "refused: the user's cost limit for the hour is reached",
            0,
            false
        ),
        "{refused:#?}\n{second_out}\n{}",
        server.log()
    );
    assert_eq!(
        to_carrier.packets(),
        sent_to_carrier,
        "the refused call reached the carrier\n{}",
        server.log()
    );
    // "Try again later" came as early media: speech, not silence.
    let heard = second
        .heard()
        .unwrap_or_else(|| panic!("nothing recorded\n{second_out}"));
    let (samples, rate) = read_wav(&heard);
    let level = rms(&samples, rate, 0.0);
    assert!(
        level > 0.01,
        "the refusal was not heard (rms {level:.4})\n{second_out}\n{}",
        server.log()
    );
    assert_eq!(
        server.metric(
            Some(&ns),
            "amtsleitung_calls_refused_cost_total{limit=\"user\"}"
        ),
        1
    );
    assert!(
        server
            .log()
            .contains("dial: cost guard: the user's spend in the last hour is"),
        "{}",
        server.log()
    );

    // Internal calls cost nothing: 101 still reaches 102's desk phone.
    let phone = Baresip::new("10.99.0.3", 880, "PCMU", 8000).registering("102", "kollege77");
    let third = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    // 101's earlier phones may have left their binding behind: count on from here.
    let contacts = server.metric(Some(&ns), "amtsleitung_registered_contacts");
    let (phone_out, third_out) = std::thread::scope(|scope| {
        let ringing = scope.spawn(|| phone.run(&ns, 12));
        let registered = wait_until(Duration::from_secs(8), || {
            server.metric(Some(&ns), "amtsleitung_registered_contacts") > contacts
        });
        assert!(registered, "102 did not register\n{}", server.log());
        let third_out = third.call(&ns, "sip:102@10.99.0.1", 5);
        (ringing.join().unwrap(), third_out)
    });
    assert_both_hear(
        &phone,
        &third,
        &server,
        &format!("{third_out}\n{phone_out}"),
    );
}
