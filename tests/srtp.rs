//! Encrypted media: SRTP with keys exchanged by SDES (RFC 4568), per user off / optional /
//! required. A phone registered over TLS whose user requires SRTP talks encrypted, and the
//! capture of what went over the wire carries neither audio nor keys in clear; a plain caller reaches such a phone through the
//! server, which encrypts that phone's leg only; the user's own phone offering plain RTP is
//! refused with 488. Real clients: baresip with its `srtp` module, SIPp; tshark for the wire.
//! Each test runs in a network namespace of its own (server 10.99.0.1).

mod support;

use support::{
    Baresip, Capture, Netns, Pki, SERVER_IP, Server, TempDir, add_user, assert_both_hear,
    assert_sipp_ok, auth_invite_scenario, heard_share, server_with_tls, sipp, sipp_call_args,
    tone_share, ulaw_to_linear, user_cli, with_registered_phones,
};

const PHONE_IP: &str = "10.99.0.2";
const CALLER_IP: &str = "10.99.0.3";
/// Bytes of one 20 ms PCMU frame, and of the fixed RTP header before it.
const PCMU_FRAME: usize = 160;
const RTP_HEADER: usize = 12;

/// The store of a server whose user 101 requires SRTP and whose user 102 keeps the default.
fn users_101_requiring_srtp(label: &str) -> TempDir {
    let data = TempDir::new(label);
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let out = user_cli(data.path(), &["srtp", "101", "required"]);
    assert!(out.contains("required"), "{out}");
    data
}

fn server_with_a_user_requiring_srtp(ns: &Netns, label: &str) -> Server {
    Server::start_with_data(Some(ns), &[], users_101_requiring_srtp(label))
}

/// Captures the media in the namespace: every UDP packet but SIP's.
fn capture_media(ns: &Netns, dir: &TempDir) -> Capture {
    Capture::start(ns, dir, "udp and not port 5060")
}

/// Which way a packet went: from a client's RTP ports to the server, or back. In the
/// namespace every packet leaves from the server's own address (both are local there), so
/// only the client's port range tells the legs apart.
#[derive(Clone, Copy, Debug)]
enum Way {
    FromClient,
    ToClient,
}

/// What the wire carried on the client's RTP ports `ports` one `way`, read as PCMU audio:
/// the payloads of the packets big enough to hold a 20 ms frame (SRTP's tag follows the
/// frame and is left off). Returns the packets counted and the share of `freq` in their
/// samples: near 1 for a tone sent in clear, near nothing for encrypted packets.
fn tone_on_the_wire(
    packets: &[Vec<String>],
    ports: std::ops::RangeInclusive<u16>,
    way: Way,
    freq: f64,
) -> (usize, f64) {
    let mut samples = Vec::new();
    let mut count = 0;
    for packet in packets {
        let [src, dst, payload, ..] = packet.as_slice() else {
            continue;
        };
        let port = match way {
            Way::FromClient => src,
            Way::ToClient => dst,
        };
        if !port.parse().is_ok_and(|p| ports.contains(&p)) {
            continue;
        }
        let bytes: Vec<u8> = (0..payload.len() / 2)
            .filter_map(|i| u8::from_str_radix(payload.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        let Some(frame) = bytes.get(RTP_HEADER..RTP_HEADER + PCMU_FRAME) else {
            continue;
        };
        count += 1;
        samples.extend(frame.iter().map(|&b| ulaw_to_linear(b)));
    }
    (count, tone_share(&samples, 8000, freq, 0.0))
}

/// Every captured packet: UDP source and destination port, UDP payload, TCP destination
/// port (empty fields where a packet has none).
fn media_packets(capture: Capture) -> Vec<Vec<String>> {
    capture.stop(&[
        "-e",
        "udp.srcport",
        "-e",
        "udp.dstport",
        "-e",
        "udp.payload",
        "-e",
        "tcp.dstport",
    ])
}

/// The RTP ports of the phone (baresip's default range) and of the caller.
const PHONE_PORTS: std::ops::RangeInclusive<u16> = 30000..=30100;
const CALLER_PORTS: std::ops::RangeInclusive<u16> = 31000..=31100;

/// Acceptance: a phone registered over TLS calls with SRTP required, hears itself back, and
/// neither its audio nor its keys cross the wire in clear.
#[test]
fn a_phone_over_tls_requiring_srtp_hears_itself_back_and_the_wire_carries_nothing_in_clear() {
    let ns = Netns::new();
    let pki = Pki::new();
    let (cert, key) = pki.server_cert("amtsleitung", 1);
    let server = server_with_tls(&ns, &cert, &key, users_101_requiring_srtp("srtp-echo"));
    let files = TempDir::new("srtp-echo-capture");
    let phone = Baresip::new(PHONE_IP, 880, "PCMU", 8000)
        .registering("101", "geheim123")
        .over_tls(&pki.ca())
        .with_srtp("srtp-mand");
    let capture = Capture::start(&ns, &files, "ip");
    let out = phone.call(&ns, &format!("sip:600@{SERVER_IP};transport=tls"), 7);
    let packets = media_packets(capture);

    // Signalling went over TLS, and nothing captured shows the SDES keys or any SIP.
    let tls_packets = packets
        .iter()
        .filter(|p| p.get(3).is_some_and(|port| port == "5061"))
        .count();
    assert!(
        tls_packets > 5,
        "{tls_packets} packets to the TLS port\n{out}"
    );
    let wire = std::fs::read(files.path().join("capture.pcap")).expect("the capture file");
    for clear in [&b"inline:"[..], b"a=crypto", b"SIP/2.0", b"REGISTER "] {
        assert!(
            !wire.windows(clear.len()).any(|w| w == clear),
            "{} in clear on the wire",
            String::from_utf8_lossy(clear)
        );
    }
    let back = heard_share(&phone, 880.0, "the phone", &server);
    assert!(
        back > 0.5,
        "880 Hz back: {back:.2}\n{out}\n{}",
        server.log()
    );
    assert!(
        out.contains("SRTP is Enabled"),
        "baresip did not encrypt\n{out}"
    );
    for way in [Way::FromClient, Way::ToClient] {
        let (count, share) = tone_on_the_wire(&packets, PHONE_PORTS, way, 880.0);
        assert!(
            count > 150,
            "{count} media packets {way:?}; {} captured",
            packets.len()
        );
        assert!(
            share < 0.05,
            "880 Hz readable on the wire {way:?}: {share:.2}"
        );
    }
}

#[test]
fn a_plain_caller_reaches_a_phone_requiring_srtp_whose_leg_alone_is_encrypted() {
    let ns = Netns::new();
    let server = server_with_a_user_requiring_srtp(&ns, "srtp-bridge");
    let files = TempDir::new("srtp-bridge-capture");
    let phone = Baresip::new(PHONE_IP, 880, "PCMU", 8000)
        .registering("101", "geheim123")
        .with_srtp("srtp-mand");
    let caller = Baresip::new(CALLER_IP, 440, "PCMU", 8000)
        .registering("102", "kollege77")
        .with_rtp_ports(*CALLER_PORTS.start(), *CALLER_PORTS.end());
    let capture = capture_media(&ns, &files);
    let (outputs, caller_out) = with_registered_phones(&server, &ns, &[(&phone, &ns)], || {
        caller.call(&ns, &format!("sip:101@{SERVER_IP}"), 7)
    });
    let packets = media_packets(capture);
    assert_both_hear(
        &phone,
        &caller,
        &server,
        &format!("{caller_out}\n{outputs:?}"),
    );
    // The caller's leg is plain: its tone is there for anyone to read, which also shows
    // the reading works. The phone's leg carries the same audio, encrypted.
    let (count, share) = tone_on_the_wire(&packets, CALLER_PORTS, Way::FromClient, 440.0);
    assert!(
        count > 150 && share > 0.5,
        "plain leg: {count} packets, 440 Hz {share:.2}"
    );
    let (count, share) = tone_on_the_wire(&packets, PHONE_PORTS, Way::ToClient, 440.0);
    assert!(
        count > 150 && share < 0.05,
        "encrypted leg: {count} packets, 440 Hz {share:.2}"
    );
    let (count, share) = tone_on_the_wire(&packets, PHONE_PORTS, Way::FromClient, 880.0);
    assert!(
        count > 150 && share < 0.05,
        "encrypted leg: {count} packets, 880 Hz {share:.2}"
    );
}

#[test]
fn the_phone_of_a_user_requiring_srtp_offering_plain_rtp_gets_488() {
    let ns = Netns::new();
    let server = server_with_a_user_requiring_srtp(&ns, "srtp-488");
    let dir = TempDir::new("srtp-488-sipp");
    let refused = auth_invite_scenario(&dir, "plain.xml", Some(488));
    let out = sipp(
        Some(&ns),
        &sipp_call_args(
            &refused,
            CALLER_IP,
            "5070",
            &["-s", "102", "-au", "101", "-ap", "geheim123"],
        ),
    );
    assert_sipp_ok(&out, &server, "plain offer from 101");
    assert!(
        server.log().contains("SRTP is required"),
        "the log does not say why\n{}",
        server.log()
    );

    // 102 keeps the default (optional): the same plain offer gets past the media and on to
    // the dialplan, which finds 101 without a phone (480).
    let unavailable = auth_invite_scenario(&dir, "unavailable.xml", Some(480));
    let out = sipp(
        Some(&ns),
        &sipp_call_args(
            &unavailable,
            CALLER_IP,
            "5071",
            &["-s", "101", "-au", "102", "-ap", "kollege77"],
        ),
    );
    assert_sipp_ok(&out, &server, "plain offer from 102");
}
