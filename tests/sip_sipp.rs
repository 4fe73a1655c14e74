//! SIPp against the real server: OPTIONS, a PCMU call to the echo test with media, an
//! unsupported codec, and CANCEL before answer.

mod support;

use support::{Netns, SERVER_IP, Server, TempDir, scenario, sipp};

const CLIENT_IP: &str = "10.99.0.2";

fn sipp_args<'a>(scenario_file: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "-sf",
        scenario_file,
        "-i",
        CLIENT_IP,
        "-p",
        "5070",
        "-m",
        "1",
        "-l",
        "1",
    ];
    args.extend_from_slice(extra);
    args.push("10.99.0.1:5060");
    args
}

fn assert_sipp_ok(output: &std::process::Output, server: &Server, what: &str) {
    assert!(
        output.status.success(),
        "{what}: SIPp failed ({:?})\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
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

/// Counts UDP packets arriving at `port` in the namespace, with an nftables counter, so the
/// test sees the server's media on the wire rather than trusting its logs.
struct PacketCounter<'a> {
    ns: &'a Netns,
}

impl<'a> PacketCounter<'a> {
    fn new(ns: &'a Netns, port: u16) -> Self {
        ns.exec_ok(&["nft", "add", "table", "inet", "amtcount"]);
        ns.exec_ok(&[
            "nft",
            "add",
            "chain",
            "inet",
            "amtcount",
            "input",
            "{ type filter hook input priority 0 ; }",
        ]);
        ns.exec_ok(&[
            "nft",
            "add",
            "rule",
            "inet",
            "amtcount",
            "input",
            "ip",
            "saddr",
            SERVER_IP,
            "udp",
            "dport",
            &port.to_string(),
            "counter",
        ]);
        Self { ns }
    }

    fn packets(&self) -> u64 {
        let out = self
            .ns
            .command("nft")
            .args(["list", "table", "inet", "amtcount"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
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
        &sipp_args(&call, &["-s", "600", "-mi", CLIENT_IP, "-mp", "6000"]),
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
        "[[rule]]\nname = \"rings a long time\"\nmatch = \"699\"\nactions = [ { wait = 30 }, { answer = {} }, { echo = {} } ]\n",
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
    let server = Server::start(Some(&ns), &[]);
    let out = sipp(
        Some(&ns),
        &sipp_args(
            &scenario("invite_404.xml"),
            &["-s", "4242", "-mi", CLIENT_IP],
        ),
    );
    assert_sipp_ok(&out, &server, "INVITE to an unrouted number");
}
