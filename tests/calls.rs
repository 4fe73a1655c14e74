//! Calls between people: a caller dials a staff extension, the server rings the phones
//! registered for it and connects the first to answer, with the audio of both directions
//! anchored in the server. Real clients (baresip) on both ends, audio proven from what each
//! recorded; each test in a network namespace of its own.

mod support;

use std::time::Duration;

use support::{
    Baresip, HomeOffice, Netns, Server, TempDir, add_user, assert_both_hear, assert_sipp_ok,
    call_records, config_trusting, heard_share, plans_with, scenario, scenario_with_tone, sipp,
    sipp_call_args, with_registered_phones,
};

#[test]
fn a_call_to_an_extension_rings_its_registered_phone_and_both_hear_each_other() {
    let ns = Netns::new();
    let data = TempDir::new("calls-data");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let server = Server::start_with_data(Some(&ns), &[], data);
    // The staff phone: registers as 101, answers by itself, its microphone plays 880 Hz
    // (at 8 kHz: only a narrowband call gets it going). A wideband desk phone that would
    // rather speak G.722, but answers with the first codec of an offer it knows: the server
    // offers it the caller's codec first, so the call needs no transcoding.
    let phone =
        Baresip::new("10.99.0.2", 880, "G722/16000/1,PCMU", 8000).registering("101", "geheim123");
    // The caller is a colleague's phone (user 102), playing 440 Hz: staff extensions are not
    // public, so only an identified caller may ring one.
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("102", "kollege77");
    let (outputs, caller_out) = with_registered_phones(&server, &ns, &[(&phone, &ns)], || {
        caller.call(&ns, "sip:101@10.99.0.1", 7)
    });
    assert_both_hear(
        &phone,
        &caller,
        &server,
        &format!("{caller_out}\n{outputs:?}"),
    );
    // Nobody hears themselves.
    assert!(heard_share(&phone, 880.0, "the phone", &server) < 0.1);
    assert!(heard_share(&caller, 440.0, "the caller", &server) < 0.1);
    // Both talk PCMU: the server passed their packets on as they came, decoding nothing
    // (7 s of 50 packets a second each way, less ringing and set-up).
    assert!(
        outputs[0].contains("Set audio encoder: PCMU"),
        "{}",
        outputs[0]
    );
    let relayed = server.metric(Some(&ns), "amtsleitung_rtp_packets_relayed_total");
    assert!(relayed > 300, "{relayed} packets relayed\n{}", server.log());
    // One call record for the call, naming both legs: the caller's, and the phone's that
    // answered, each with its own media (7 s at 50 packets a second each way).
    let calls = call_records(&server, 1);
    let [call] = calls.as_slice() else {
        panic!("one call record expected: {calls:#?}\n{}", server.log());
    };
    assert!(call.answered && call.final_status == 200, "{call:#?}");
    assert_eq!((call.caller.as_str(), call.callee.as_str()), ("102", "101"));
    assert_eq!(call.contacts_rung, 1, "{call:#?}");
    let Some(callee) = &call.connected else {
        panic!("no connected leg in {call:#?}\n{}", server.log());
    };
    assert!(
        callee.target.starts_with("sip:") && callee.target.contains("10.99.0.2"),
        "the phone's contact: {call:#?}"
    );
    assert_eq!(callee.extension.as_deref(), Some("101"));
    assert_ne!(callee.call_id, call.call_id, "a leg of its own: {call:#?}");
    assert!(!callee.call_id.is_empty(), "{call:#?}");
    assert!(
        call.started_at_ms <= callee.answered_at_ms
            && callee.answered_at_ms <= callee.ended_at_ms
            && callee.ended_at_ms <= call.ended_at_ms,
        "the answered leg lies within the call: {call:#?}"
    );
    assert_eq!(callee.end_reason, "caller hung up", "{call:#?}");
    for (leg, media) in [("caller", &call.media), ("callee", &callee.media)] {
        assert!(
            media.packets_received > 100 && media.packets_sent > 100,
            "{leg} leg: {media:?}\n{call:#?}"
        );
    }
}

#[test]
fn both_phones_of_a_user_ring_the_first_to_answer_gets_the_call_and_the_other_is_cancelled() {
    let ns = Netns::new();
    let data = TempDir::new("calls-fork");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let server = Server::start_with_data(Some(&ns), &[], data);
    // Office phone: nobody there, it rings. Home phone: answers.
    let office = Baresip::new("10.99.0.4", 660, "PCMU", 8000)
        .registering("101", "geheim123")
        .never_answering();
    let home = Baresip::new("10.99.0.2", 880, "PCMU", 8000).registering("101", "geheim123");
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("102", "kollege77");
    let (outputs, caller_out) =
        with_registered_phones(&server, &ns, &[(&office, &ns), (&home, &ns)], || {
            caller.call(&ns, "sip:101@10.99.0.1", 7)
        });
    let (office_out, home_out) = (&outputs[0], &outputs[1]);
    let log = server.log();
    assert!(log.contains("contacts=2"), "both contacts rung\n{log}");
    // The office phone rang, then the ringing stopped (CANCEL) without anyone answering it.
    assert!(office_out.contains("Incoming call"), "{office_out}");
    assert!(office_out.contains("session closed"), "{office_out}");
    assert!(office.heard().is_none(), "the office phone got audio");
    // The home phone has the call: both directions heard.
    assert!(
        home_out.contains("Incoming call") || home.heard().is_some(),
        "{home_out}"
    );
    let to_home = heard_share(&home, 440.0, "the home phone", &server);
    let to_caller = heard_share(&caller, 880.0, "the caller", &server);
    assert!(
        to_home > 0.5 && to_caller > 0.5,
        "440 Hz at home {to_home:.2}, 880 Hz at the caller {to_caller:.2}\n{caller_out}\n{log}"
    );
}

#[test]
fn the_callers_keys_reach_the_callee_as_rfc_4733_events() {
    let ns = Netns::new();
    let data = TempDir::new("calls-dtmf");
    add_user(data.path(), "101", "geheim123");
    let dir = TempDir::new("calls-dtmf-sipp");
    // SIPp stands for a PBX on a trusted network (a trunk, an old Asterisk being migrated):
    // its calls need no password.
    let config = config_trusting(&dir, "10.99.0.3/32");
    let server = Server::start_with_data(Some(&ns), &["--config", &config], data);
    let phone = Baresip::new("10.99.0.2", 880, "PCMU", 8000).registering("101", "geheim123");
    // SIPp calls 101, keys 4 3 2 1 # as RFC 4733 events, then talks (440 Hz) for 2 s.
    let keys = scenario_with_tone(&dir, "pin_join.xml", 440);
    let (outputs, sipp_out) = with_registered_phones(&server, &ns, &[(&phone, &ns)], || {
        sipp(
            Some(&ns),
            &sipp_call_args(&keys, "10.99.0.3", "5070", &["-s", "101", "-d", "2000"]),
        )
    });
    let phone_out = &outputs[0];
    assert_sipp_ok(&sipp_out, &server, "call with keys");
    let received: Vec<&str> = phone_out
        .lines()
        .filter_map(|l| l.split("received event: '").nth(1)?.get(..1))
        .collect();
    let mut keys_heard: Vec<&str> = received.clone();
    keys_heard.dedup();
    assert_eq!(
        keys_heard,
        ["4", "3", "2", "1", "#"],
        "{phone_out}\n{}",
        server.log()
    );
    let to_phone = heard_share(&phone, 440.0, "the phone", &server);
    assert!(to_phone > 0.3, "440 Hz at the phone {to_phone:.2}");
    // Both legs PCMU: the key presses went through as the caller's own event packets,
    // relayed with the audio, each key once.
    let relayed = server.metric(Some(&ns), "amtsleitung_rtp_packets_relayed_total");
    assert!(relayed > 50, "{relayed} packets relayed\n{}", server.log());
}

/// `dial` to a SIP URI: the called party runs only PCMA, the caller only PCMU, so the server
/// transcodes both ways. The called party (SIPp) sends every packet back, so the caller
/// hearing its own tone proves both directions.
#[test]
fn dial_to_a_sip_uri_transcodes_between_pcmu_and_pcma_both_ways() {
    let ns = Netns::new();
    let plans = partner_office_plans("calls-uri-plans");
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let (uas_out, caller_out) = call_partner_office(&ns, "uas_pcma_echo.xml", &caller, 6);
    assert_sipp_ok(&uas_out, &server, "PCMA party");
    let log = server.log();
    assert!(
        log.contains("dial: answered; connected"),
        "{log}\n{caller_out}"
    );
    assert!(caller_out.contains("PCMU"), "{caller_out}");
    let own_tone_back = heard_share(&caller, 440.0, "the caller", &server);
    assert!(
        own_tone_back > 0.5,
        "440 Hz back at the caller through PCMU -> PCMA -> PCMU: {own_tone_back:.2}\n{log}"
    );
    // Different codecs: nothing could be passed on as it came.
    let relayed = server.metric(Some(&ns), "amtsleitung_rtp_packets_relayed_total");
    assert_eq!(relayed, 0, "{log}");
}

/// The called party puts the call on hold and resumes it with re-INVITEs of its own: the
/// server agrees to both (200 with a=recvonly, then a=sendrecv; checked by SIPp) and the
/// caller hears the callee again afterwards (SIPp echoes the caller's tone back).
#[test]
fn the_called_party_holds_and_resumes_the_call() {
    let ns = Netns::new();
    let plans = partner_office_plans("calls-hold-plans");
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let (uas_out, caller_out) = call_partner_office(&ns, "uas_holds.xml", &caller, 7);
    assert_sipp_ok(&uas_out, &server, "callee holding and resuming");
    let log = server.log();
    assert_eq!(
        log.matches("re-INVITE: media updated").count(),
        2,
        "{log}\n{caller_out}"
    );
    // Resumed for the last few seconds: the caller's tone comes back through the callee.
    let own_tone_back = heard_share(&caller, 440.0, "the caller", &server);
    assert!(
        own_tone_back > 0.3,
        "440 Hz back at the caller: {own_tone_back:.2}\n{log}"
    );
}

/// A phone nobody picks up rings only as long as the rule says: after its `timeout` the
/// ringing is cancelled and the rule's next action answers the caller.
#[test]
fn ringing_stops_after_the_dial_timeout_and_the_next_action_runs() {
    let ns = Netns::new();
    let data = TempDir::new("calls-timeout");
    add_user(data.path(), "101", "geheim123");
    let dir = plans_with(
        "calls-timeout-plans",
        "[[rule]]\nname = \"quick ring\"\nmatch = \"7101\"\n\
         actions = [ { dial = { user = \"101\", timeout = 3 } }, { hangup = \"unavailable\" } ]\n",
    );
    // The config lives apart: every file in the dialplan directory is read as a dialplan.
    let config_dir = TempDir::new("calls-timeout-config");
    let config = config_trusting(&config_dir, "10.99.0.3/32");
    let server = Server::start_with_data(
        Some(&ns),
        &[
            "--config",
            &config,
            "--dialplans",
            dir.path().to_str().unwrap(),
        ],
        data,
    );
    let phone = Baresip::new("10.99.0.2", 880, "PCMU", 8000)
        .registering("101", "geheim123")
        .never_answering();
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let started = std::time::Instant::now();
    let (outputs, caller_out) = with_registered_phones(&server, &ns, &[(&phone, &ns)], || {
        caller.call(&ns, "sip:7101@10.99.0.1", 8)
    });
    let log = server.log();
    assert!(outputs[0].contains("Incoming call"), "{}", outputs[0]);
    assert!(outputs[0].contains("session closed"), "{}", outputs[0]);
    assert!(caller_out.contains("480"), "{caller_out}\n{log}");
    assert!(log.contains("dial: not answered; next action"), "{log}");
    assert!(!log.contains("dial: answered"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The shipped dialplan plus number 700, open to anyone, which dials a partner office's SIP
/// URI at 10.99.0.4:5080 (a SIPp callee in the tests).
fn partner_office_plans(name: &str) -> TempDir {
    plans_with(
        name,
        "[[rule]]\nname = \"partner office\"\nmatch = \"700\"\npublic = true\n\
         actions = [ { dial = { uri = \"sip:echo@10.99.0.4:5080\" } } ]\n",
    )
}

/// `caller` calls 700 for `seconds` while the SIPp `callee` scenario answers at the partner
/// office, echoing RTP back; returns SIPp's and the caller's output.
fn call_partner_office(
    ns: &Netns,
    callee: &str,
    caller: &Baresip,
    seconds: u32,
) -> (std::process::Output, String) {
    let uas = scenario(callee);
    std::thread::scope(|scope| {
        let uas_run = scope.spawn(|| {
            sipp(
                Some(ns),
                &[
                    "-sf",
                    &uas,
                    "-i",
                    "10.99.0.4",
                    "-p",
                    "5080",
                    "-mi",
                    "10.99.0.4",
                    "-mp",
                    "6100",
                    "-rtp_echo",
                    "-m",
                    "1",
                ],
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        let caller_out = caller.call(ns, "sip:700@10.99.0.1", seconds);
        (uas_run.join().unwrap(), caller_out)
    })
}

#[test]
fn a_phone_behind_a_home_routers_nat_registers_and_is_called_with_no_setting() {
    let ns = Netns::new();
    let office = HomeOffice::behind_nat(&ns);
    let data = TempDir::new("calls-nat");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let server = Server::start_with_data(Some(&ns), &[], data);
    // Its Contact and SDP carry 192.168.178.20, which the server cannot reach.
    let phone = Baresip::new("192.168.178.20", 880, "PCMU", 8000).registering("101", "geheim123");
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("102", "kollege77");
    let (outputs, caller_out) =
        with_registered_phones(&server, &ns, &[(&phone, &office.home)], || {
            caller.call(&ns, "sip:101@10.99.0.1", 7)
        });
    // The REGISTER came from the router's address, not the phone's.
    let log = server.log();
    assert!(
        log.contains("registered user=101 source=10.98.0.2"),
        "{log}"
    );
    assert_both_hear(
        &phone,
        &caller,
        &server,
        &format!("{caller_out}\n{outputs:?}"),
    );
}

/// The same home office with the phone on TCP: the router lets no connection in, so the
/// call can only reach the phone over the connection its REGISTER opened, which the server
/// keeps for it.
#[test]
fn a_phone_behind_nat_registered_over_tcp_is_called_over_its_own_connection() {
    let ns = Netns::new();
    let office = HomeOffice::behind_nat(&ns);
    let data = TempDir::new("calls-nat-tcp");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let server = Server::start_with_data(Some(&ns), &[], data);
    let phone = Baresip::new("192.168.178.20", 880, "PCMU", 8000)
        .registering("101", "geheim123")
        .over_tcp();
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("102", "kollege77");
    let (outputs, caller_out) =
        with_registered_phones(&server, &ns, &[(&phone, &office.home)], || {
            caller.call(&ns, "sip:101@10.99.0.1", 7)
        });
    let log = server.log();
    assert!(
        log.contains("registered user=101 source=10.98.0.2"),
        "{log}"
    );
    assert!(outputs[0].contains("{0/TCP/v4} 200 OK"), "{}", outputs[0]);
    assert_both_hear(
        &phone,
        &caller,
        &server,
        &format!("{caller_out}\n{outputs:?}"),
    );
}

#[test]
fn an_extension_with_no_registered_phone_goes_on_to_the_next_action() {
    let ns = Netns::new();
    let data = TempDir::new("calls-unreg");
    add_user(data.path(), "102", "geheim123");
    add_user(data.path(), "103", "kollege77");
    let server = Server::start_with_data(Some(&ns), &[], data);
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("103", "kollege77");
    let out = caller.call(&ns, "sip:102@10.99.0.1", 3);
    // The shipped plan: dial, then "unavailable" (480) when nobody answers.
    assert!(out.contains("480"), "{out}\n{}", server.log());
    assert!(
        server.log().contains("dial: not answered; next action"),
        "{}",
        server.log()
    );
}
