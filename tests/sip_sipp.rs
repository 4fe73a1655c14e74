//! SIPp against the real server: OPTIONS, a PCMU call to the echo test with media, an
//! unsupported codec, and CANCEL before answer.

mod support;

use support::{
    Netns, PacketCounter, Server, TempDir, assert_sipp_ok, config_trusting, scenario, sipp,
    sipp_call_args,
};

const CLIENT_IP: &str = "10.99.0.2";

fn sipp_args<'a>(scenario_file: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    sipp_call_args(scenario_file, CLIENT_IP, "5070", extra)
}

#[test]
fn options_is_answered_200_with_allow_and_accept() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let out = sipp(Some(&ns), &sipp_args(&scenario("options.xml"), &[]));
    assert_sipp_ok(&out, &server, "OPTIONS over UDP");
    let out = sipp(
        Some(&ns),
        &sipp_args(&scenario("options.xml"), &["-t", "t1"]),
    );
    assert_sipp_ok(&out, &server, "OPTIONS over TCP");
}

#[test]
fn pcmu_call_to_echo_test_is_answered_media_flows_and_bye_gets_200() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let dir = TempDir::new("sipp-audio");
    let call = support::pcmu_call_scenario(&dir);
    let counter = PacketCounter::new(&ns, 6000);
    let out = sipp(
        Some(&ns),
        &sipp_args(
            &call,
            &["-s", "600", "-mi", CLIENT_IP, "-mp", "6000", "-d", "4000"],
        ),
    );
    assert_sipp_ok(&out, &server, "INVITE 600");
    let echoed = counter.packets();
    // 4 s of 20 ms echo frames is 200 packets; allow for jitter-buffer start-up.
    assert!(
        echoed >= 120,
        "only {echoed} RTP packets came back from the echo test\nserver log:\n{}",
        server.log()
    );
}

#[test]
fn offer_with_only_unsupported_codec_gets_488() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let out = sipp(
        Some(&ns),
        &sipp_args(
            &scenario("invite_unsupported_codec.xml"),
            &["-mi", CLIENT_IP],
        ),
    );
    assert_sipp_ok(&out, &server, "INVITE with G.729 only");
}

#[test]
fn cancel_before_answer_gets_487_and_200() {
    let ns = Netns::new();
    let plans = TempDir::new("plans");
    std::fs::write(
        plans.path().join("ringing.toml"),
        "[[rule]]\nname = \"rings a long time\"\nmatch = \"699\"\npublic = true\nactions = [ { wait = 30 }, { answer = {} }, { echo = {} } ]\n",
    )
    .unwrap();
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let out = sipp(
        Some(&ns),
        &sipp_args(
            &scenario("invite_cancel.xml"),
            &["-s", "699", "-mi", CLIENT_IP],
        ),
    );
    assert_sipp_ok(&out, &server, "CANCEL");
}

#[test]
fn unknown_number_gets_404() {
    let ns = Netns::new();
    // 404 is for identified callers; an outsider gets the password challenge instead
    // (tests/caller_auth.rs).
    let dir = TempDir::new("unknown-number");
    let config = config_trusting(&dir, &format!("{CLIENT_IP}/32"));
    let server = Server::start(Some(&ns), &["--config", &config]);
    let out = sipp(
        Some(&ns),
        &sipp_args(
            &scenario("invite_404.xml"),
            &["-s", "4242", "-mi", CLIENT_IP],
        ),
    );
    assert_sipp_ok(&out, &server, "INVITE to an unrouted number");
    // The refused call is in the call records (admins look for it when "the number does not
    // work"; it was missing before), and the log names its Call-ID.
    let calls = support::call_records(&server, 1);
    let [call] = calls.as_slice() else {
        panic!("one call record expected: {calls:#?}\n{}", server.log());
    };
    assert_eq!(call.callee, "4242", "{call:#?}");
    assert!(!call.answered && call.final_status == 404, "{call:#?}");
    assert!(!call.call_id.is_empty(), "{call:#?}");
    assert!(
        server.log().contains(&format!("call_id={}", call.call_id)),
        "{}",
        server.log()
    );
    // And /metrics counts it by result.
    let refused = server.metric(Some(&ns), "amtsleitung_calls_total{result=\"refused\"}");
    assert_eq!(refused, 1, "{}", server.metrics(Some(&ns)));
}

#[test]
fn reinvite_puts_the_call_on_hold_and_moves_media_to_a_new_port() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let first_port = PacketCounter::new(&ns, 6000);
    let second_port = PacketCounter::new(&ns, 6002);
    let out = sipp(
        Some(&ns),
        &sipp_args(
            &scenario("reinvite_hold.xml"),
            &["-mi", CLIENT_IP, "-mp", "6000"],
        ),
    );
    assert_sipp_ok(&out, &server, "re-INVITE hold/resume");
    let before_hold = first_port.packets();
    let after_move = second_port.packets();
    eprintln!("packets to first port {before_hold}, to the new port {after_move}");
    // 1 s before the hold is about 50 packets; had the hold been ignored, the 3 s on hold
    // would add about 150 more to the first port.
    assert!(
        (20..100).contains(&before_hold),
        "{before_hold} packets reached the first port (hold not honoured?)\n{}",
        server.log()
    );
    // 2 s after resuming on the new port: about 100 packets.
    assert!(
        after_move >= 60,
        "only {after_move} packets reached the new media port\n{}",
        server.log()
    );
}

#[test]
fn sigterm_ends_calls_with_bye_and_records_them() {
    let ns = Netns::new();
    let mut server = Server::start(Some(&ns), &[]);
    let caller = std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            sipp(
                Some(&ns),
                &sipp_args(
                    &scenario("invite_until_server_bye.xml"),
                    &["-s", "600", "-mi", CLIENT_IP],
                ),
            )
        });
        std::thread::sleep(std::time::Duration::from_secs(2));
        let status = server.terminate();
        assert!(
            status.success(),
            "server exit status {status:?}\n{}",
            server.log()
        );
        call.join().unwrap()
    });
    assert_sipp_ok(&caller, &server, "call ended by shutdown");
    // The call record was written before the process exited.
    let store = store::Store::open(server.data_dir()).unwrap();
    let calls = store.recent_calls(10).unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].answered && calls[0].end_reason == "server shutting down",
        "{calls:?}"
    );
}
