//! Fax: calls from and to a fax ATA on G.711 are passed through unchanged (the callee is
//! offered the caller's codec alone, and the RTP payload arrives byte for byte), and a T.38
//! re-INVITE from one leg is passed on to the other with the server's own address, its
//! answer or refusal back, and the UDPTL datagrams relayed both ways. Real clients: SIPp on
//! both ends (one registering as the fax line), tshark for the wire, python3 for UDPTL.
//! Each test runs in a network namespace of its own (server 10.99.0.1).

mod support;

use std::collections::HashSet;
use std::process::Output;
use std::time::Duration;

use support::{
    Capture, Netns, SERVER_IP, Server, TempDir, add_user, assert_sipp_ok, plans_with, scenario,
    sipp, user_cli, wait_until,
};

/// The fax machine that calls (a SIPp UAC), from a trusted network.
const CALLER_IP: &str = "10.99.0.2";
/// The fax machine that is called (a SIPp UAS): its SIP port and RTP port.
const FAX_IP: &str = "10.99.0.4";
const FAX_SIP_PORT: &str = "5080";
const FAX_RTP_PORT: &str = "6100";

/// A config file that trusts the caller's address (no password, as a PBX or trunk in
/// front) and sends no qualify OPTIONS, which a SIPp UAS would take for a call.
fn fax_config(dir: &TempDir) -> String {
    let path = dir.path().join("fax.toml");
    std::fs::write(
        &path,
        format!(
            "[security]\ntrusted-networks = [\"{CALLER_IP}/32\"]\n\n[registrar]\nqualify-interval = 0\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// The called fax machine: SIPp running `scenario_name` as UAS on FAX_IP.
fn callee(ns: &Netns, scenario_name: &str) -> Output {
    sipp(
        Some(ns),
        &[
            "-sf",
            &scenario(scenario_name),
            "-i",
            FAX_IP,
            "-p",
            FAX_SIP_PORT,
            "-mi",
            FAX_IP,
            "-mp",
            FAX_RTP_PORT,
            "-m",
            "1",
        ],
    )
}

/// The calling fax machine: SIPp running `scenario_name` against `number`, waiting `pause_ms`
/// where its scenario pauses.
fn caller(ns: &Netns, scenario_name: &str, number: &str, pause_ms: u32) -> Output {
    let pause = pause_ms.to_string();
    sipp(
        Some(ns),
        &[
            "-sf",
            &scenario(scenario_name),
            "-s",
            number,
            "-i",
            CALLER_IP,
            "-p",
            "5070",
            "-mi",
            CALLER_IP,
            "-mp",
            "6000",
            "-m",
            "1",
            "-d",
            &pause,
            &format!("{SERVER_IP}:5060"),
        ],
    )
}

/// Runs the callee's SIPp, then (once it listens) `call`; both outputs.
fn callee_while<T: Send>(
    ns: &Netns,
    callee_scenario: &str,
    call: impl FnOnce() -> T + Send,
) -> (Output, T) {
    std::thread::scope(|scope| {
        let uas = scope.spawn(|| callee(ns, callee_scenario));
        std::thread::sleep(Duration::from_millis(500));
        let result = call();
        (uas.join().unwrap(), result)
    })
}

/// The RTP payloads (hex, in order) of SIPp's A-law recording, as the caller plays it.
fn pcap_payloads() -> Vec<String> {
    let out = std::process::Command::new("tshark")
        .args(["-r", "/usr/share/sip-tester/g711a.pcap"])
        .args([
            "-d",
            "udp.port==2006,rtp",
            "-T",
            "fields",
            "-e",
            "rtp.payload",
        ])
        .output()
        .expect("tshark reads SIPp's g711a.pcap");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.replace(':', ""))
        .filter(|l| !l.is_empty())
        .collect()
}

/// Acceptance: a fax line (`user fax 150 on`) registered by an ATA is called by a fax machine
/// on A-law. The ATA is offered A-law alone (checked by its SIPp scenario), the call is
/// relayed, and every RTP payload that reaches the ATA is one the caller sent, byte for byte
/// and in order: no jitter buffer, concealment or transcoding touched it.
#[test]
fn a_call_to_a_fax_line_offers_only_the_callers_g711_and_its_payload_arrives_unchanged() {
    let ns = Netns::new();
    let data = TempDir::new("fax-line");
    add_user(data.path(), "150", "faxgeheim1");
    let out = user_cli(data.path(), &["fax", "150", "on"]);
    assert!(out.starts_with("fax line 150: on"), "{out}");
    let show = user_cli(data.path(), &["show", "150"]);
    assert!(show.contains("\nfax           on ("), "{show}");
    let config_dir = TempDir::new("fax-line-config");
    let config = fax_config(&config_dir);
    let server = Server::start_with_data(Some(&ns), &["--config", &config], data);

    let registered = sipp(
        Some(&ns),
        &[
            "-sf",
            &scenario("fax_register.xml"),
            "-i",
            FAX_IP,
            "-p",
            FAX_SIP_PORT,
            "-s",
            "150",
            "-au",
            "150",
            "-ap",
            "faxgeheim1",
            "-m",
            "1",
            &format!("{SERVER_IP}:5060"),
        ],
    );
    assert_sipp_ok(&registered, &server, "the fax ATA registering");

    let files = TempDir::new("fax-line-capture");
    let capture = Capture::start(
        &ns,
        &files,
        &format!("udp and dst host {FAX_IP} and dst port {FAX_RTP_PORT}"),
    );
    // The shipped plan rings staff extension 150's phones for identified callers.
    let (callee_out, caller_out) = callee_while(&ns, "fax_uas_pcma_only.xml", || {
        caller(&ns, "fax_uac_pcma_pcap.xml", "150", 8000)
    });
    assert_sipp_ok(&caller_out, &server, "the calling fax machine");
    assert_sipp_ok(&callee_out, &server, "the fax line, offered PCMA only");
    let received: Vec<String> = capture
        .stop(&[
            "-d",
            &format!("udp.port=={FAX_RTP_PORT},rtp"),
            "-e",
            "rtp.payload",
        ])
        .into_iter()
        .filter_map(|fields| fields.into_iter().next())
        .map(|p| p.replace(':', ""))
        .filter(|p| !p.is_empty())
        .collect();

    // Until the two legs are linked for the relay, and again once the caller has hung up,
    // the server keeps the fax line's jitter buffer fed with its own A-law silence (0
    // encodes as 0xd5); those frames come before the caller's first packet and after its
    // last, and are not the caller's.
    let server_silence =
        |p: &String| p.len().is_multiple_of(2) && p.as_bytes().chunks(2).all(|b| b == b"d5");
    let mut received: Vec<String> = received
        .into_iter()
        .skip_while(|p| server_silence(p))
        .collect();
    while received.last().is_some_and(server_silence) {
        received.pop();
    }
    let sent = pcap_payloads();
    assert!(sent.len() > 200, "{} packets in g711a.pcap", sent.len());
    let log = server.log();
    assert!(
        received.len() > 150,
        "{} RTP packets reached the fax line\n{log}",
        received.len()
    );
    let known: HashSet<&String> = sent.iter().collect();
    let foreign = received.iter().filter(|p| !known.contains(p)).count();
    assert_eq!(
        foreign, 0,
        "payloads the caller never sent reached the fax line\n{log}"
    );
    // In the order sent: each one found after the one before it.
    let mut at = 0;
    for payload in &received {
        at += sent[at..]
            .iter()
            .position(|p| p == payload)
            .unwrap_or_else(|| panic!("a payload came out of order\n{log}"))
            + 1;
    }
    let relayed = server.metric(Some(&ns), "amtsleitung_rtp_packets_relayed_total");
    assert!(relayed > 150, "{relayed} packets relayed\n{log}");
    assert!(
        log.contains("fax call: the caller's G.711 is passed through unchanged"),
        "{log}"
    );
    assert!(log.contains("fax=true"), "the call's span says fax\n{log}");
}

/// A dialplan whose 7200 rings the fax machine at FAX_IP by its URI. Not marked fax: fax
/// machines often start as an ordinary call, and T.38 is passed on either way.
fn plans_to_fax_machine(label: &str) -> TempDir {
    plans_with(
        label,
        &format!(
            "[[rule]]\nname = \"fax machine\"\nmatch = \"7200\"\n\
             actions = [ {{ dial = {{ uri = \"sip:fax@{FAX_IP}:{FAX_SIP_PORT}\" }} }} ]\n"
        ),
    )
}

/// A server in `ns` with `plans` and [`fax_config`]; keep the config directory alive with it.
fn server_with_plans(ns: &Netns, plans: &TempDir, label: &str) -> (Server, TempDir) {
    let config_dir = TempDir::new(&format!("{label}-config"));
    let config = fax_config(&config_dir);
    let plans = plans.path().to_str().unwrap();
    let server = Server::start(Some(ns), &["--config", &config, "--dialplans", plans]);
    (server, config_dir)
}

/// The value of `field=` in the first log line containing `line`.
fn logged_number(log: &str, line: &str, field: &str) -> Option<u16> {
    let found = log.lines().find(|l| l.contains(line))?;
    let start = found.find(&format!("{field}="))? + field.len() + 1;
    let digits: String = found[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Sends UDPTL-like datagrams (not RTP: first byte 0) from each machine's T.38 port (7000 at
/// the caller, 7100 at the callee) to the server's port facing it, and checks that each
/// arrives unchanged at the other machine, from the server's port facing that one.
const UDPTL_BOTH_WAYS: &str = r#"
import socket, sys
server = sys.argv[1]
first_port, second_port = int(sys.argv[2]), int(sys.argv[3])
def bound(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    s.settimeout(3)
    return s
caller, callee = bound("10.99.0.2", 7000), bound("10.99.0.4", 7100)
for n in range(20):
    for (src, dst, to_port, from_port, who) in (
        (caller, callee, first_port, second_port, b"caller"),
        (callee, caller, second_port, first_port, b"callee"),
    ):
        datagram = bytes([0, n]) + b"UDPTL from the " + who + b"'s fax machine"
        src.sendto(datagram, (server, to_port))
        got, origin = dst.recvfrom(2048)
        assert got == datagram, (got, datagram)
        assert origin == (server, from_port), (origin, from_port)
print("relayed both ways")
"#;

/// Acceptance: on a connected call the caller's fax machine switches to T.38. Its
/// re-INVITE reaches the called machine as our re-INVITE offering T.38 from the server's
/// address with the caller's T.38 attributes (checked by the callee's SIPp), the callee's
/// 200 reaches the caller with the server's address and the callee's choices (checked by
/// the caller's SIPp), and UDPTL datagrams sent to the server's ports arrive unchanged at
/// the other machine, both ways. Then the caller goes back to audio the same way.
#[test]
fn a_t38_reinvite_is_passed_to_the_other_leg_and_udptl_is_relayed_both_ways() {
    let ns = Netns::new();
    let plans = plans_to_fax_machine("fax-t38-plans");
    let (server, _config) = server_with_plans(&ns, &plans, "fax-t38");
    const SWITCHED: &str = "T.38: fax datagrams relayed between the legs";
    let (callee_out, (caller_out, relayed)) = callee_while(&ns, "fax_uas_t38.xml", || {
        std::thread::scope(|scope| {
            // The caller faxes for 6 s between its switch to T.38 and its way back.
            let call = scope.spawn(|| caller(&ns, "fax_uac_t38.xml", "7200", 6000));
            let switched = wait_until(Duration::from_secs(10), || server.log().contains(SWITCHED));
            let log = server.log();
            assert!(switched, "no T.38 switch\n{log}");
            let first = logged_number(&log, SWITCHED, "from_port").expect("from_port logged");
            let second = logged_number(&log, SWITCHED, "to_port").expect("to_port logged");
            let relayed = ns
                .command("python3")
                .args(["-c", UDPTL_BOTH_WAYS, SERVER_IP])
                .args([first.to_string(), second.to_string()])
                .output()
                .expect("run python3");
            (call.join().unwrap(), relayed)
        })
    });
    let log = server.log();
    assert!(
        relayed.status.success(),
        "UDPTL not relayed: {}{}\n{log}",
        String::from_utf8_lossy(&relayed.stdout),
        String::from_utf8_lossy(&relayed.stderr)
    );
    assert_sipp_ok(
        &caller_out,
        &server,
        "the caller switching to T.38 and back",
    );
    assert_sipp_ok(
        &callee_out,
        &server,
        "the callee taking T.38 and going back",
    );
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_udptl_datagrams_relayed_total"),
        40,
        "{log}"
    );
    assert!(
        log.contains("T.38 over: the call carries audio again"),
        "{log}"
    );
}

/// Acceptance: the called machine refuses T.38 with 488: the caller's re-INVITE gets 488,
/// and the call goes on on audio (the caller's recording is relayed to the callee after the
/// refusal) until the caller hangs up, which the callee sees as a BYE.
#[test]
fn a_t38_reinvite_the_other_leg_refuses_gets_its_488_and_the_call_keeps_its_audio() {
    let ns = Netns::new();
    let plans = plans_to_fax_machine("fax-refused-plans");
    let (server, _config) = server_with_plans(&ns, &plans, "fax-refused");
    let files = TempDir::new("fax-refused-capture");
    let capture = Capture::start(
        &ns,
        &files,
        &format!("udp and dst host {FAX_IP} and dst port {FAX_RTP_PORT}"),
    );
    let (callee_out, caller_out) = callee_while(&ns, "fax_uas_refuses_t38.xml", || {
        caller(&ns, "fax_uac_t38_refused.xml", "7200", 8000)
    });
    let audio_after = capture
        .stop(&["-e", "udp.length"])
        .into_iter()
        .filter(|fields| fields.first().is_some_and(|f| !f.is_empty()))
        .count();
    let log = server.log();
    assert_sipp_ok(&caller_out, &server, "the caller whose T.38 was refused");
    assert_sipp_ok(&callee_out, &server, "the callee refusing T.38");
    assert!(
        log.contains("the other leg refused; the call stays as it was"),
        "{log}"
    );
    assert!(!log.contains("T.38: fax datagrams relayed"), "{log}");
    // The A-law recording (7 s) plays after the refusal: the audio still flows.
    assert!(
        audio_after > 150,
        "{audio_after} RTP packets reached the callee\n{log}"
    );
}

/// Acceptance: a rule's `dial = { …, fax = true }` offers the callee the caller's A-law
/// alone (checked by the callee's SIPp); a callee that cannot take it refuses with 488, and
/// so does the server to the caller, instead of transcoding or running the next action.
#[test]
fn a_fax_rule_whose_callee_cannot_take_the_callers_g711_refuses_the_call_with_488() {
    let ns = Netns::new();
    let plans = plans_with(
        "fax-rule-plans",
        &format!(
            "[[rule]]\nname = \"fax to the partner office\"\nmatch = \"7300\"\n\
             actions = [ {{ dial = {{ uri = \"sip:fax@{FAX_IP}:{FAX_SIP_PORT}\", fax = true }} }}, \
             {{ hangup = 480 }} ]\n"
        ),
    );
    let (server, _config) = server_with_plans(&ns, &plans, "fax-rule");
    let (callee_out, caller_out) = callee_while(&ns, "fax_uas_pcmu_only_refuses.xml", || {
        caller(&ns, "fax_uac_expects_488.xml", "7300", 0)
    });
    assert_sipp_ok(
        &callee_out,
        &server,
        "the PCMU-only callee, offered PCMA only",
    );
    assert_sipp_ok(&caller_out, &server, "the fax caller, refused with 488");
    let log = server.log();
    assert!(
        log.contains("refused: fax callee cannot take the caller's G.711"),
        "{log}"
    );
    assert!(log.contains("fax=true"), "{log}");
}
