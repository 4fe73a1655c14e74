//! Malformed and hostile SIP against the live server: every message gets a 4xx/5xx or is
//! dropped, the process survives, and a normal call still works afterwards.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use support::{Server, TempDir, repo, sipp};

fn invite(target: SocketAddr, branch: &str, body: &str) -> String {
    format!(
        "INVITE sip:600@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{branch};rport\r\n\
         From: <sip:evil@127.0.0.1>;tag=h{branch}\r\n\
         To: <sip:600@{target}>\r\n\
         Call-ID: hostile-{branch}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Max-Forwards: 70\r\n\
         Contact: <sip:evil@127.0.0.1:5999>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5998 RTP/AVP 0\r\n";

/// A deterministic xorshift generator, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn hostile_messages(target: SocketAddr) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let good = invite(target, "good", SDP);
    // Truncations at 25 points through headers and body.
    for i in 0..25 {
        let cut = good.len() * i / 25;
        out.push((
            format!("truncated at {cut}"),
            good.as_bytes()[..cut].to_vec(),
        ));
    }
    // Content-Length lies and garbage.
    for (i, cl) in [
        "-1",
        "abc",
        "99999999999999999999",
        "500",
        "1e3",
        "",
        "0x10",
        "+5",
    ]
    .iter()
    .enumerate()
    {
        let msg = invite(target, &format!("cl{i}"), SDP).replace(
            &format!("Content-Length: {}", SDP.len()),
            &format!("Content-Length: {cl}"),
        );
        out.push((format!("Content-Length {cl:?}"), msg.into_bytes()));
    }
    // Missing mandatory headers.
    for header in ["Via", "From", "To", "Call-ID", "CSeq"] {
        let msg: String = invite(target, &format!("miss{header}"), SDP)
            .split("\r\n")
            .filter(|line| !line.starts_with(&format!("{header}:")))
            .collect::<Vec<_>>()
            .join("\r\n");
        out.push((format!("missing {header}"), msg.into_bytes()));
    }
    // Huge headers: one 60 KB header, 2000 small headers, a 40 KB Request-URI.
    let big = invite(target, "huge1", SDP).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nX-Junk: {}\r\n", "A".repeat(60_000)),
    );
    out.push(("60 KB header".into(), big.into_bytes()));
    let many =
        invite(target, "huge2", SDP).replace("Max-Forwards: 70\r\n", &"X-Many: 1\r\n".repeat(2000));
    out.push(("2000 headers".into(), many.into_bytes()));
    let long_uri =
        invite(target, "huge3", SDP).replace("sip:600@", &format!("sip:{}@", "6".repeat(40_000)));
    out.push(("40 KB Request-URI".into(), long_uri.into_bytes()));
    // Broken start lines, versions, CSeq.
    let variants = [
        ("bad version", "SIP/2.0\r\n", "SIP/7.0\r\n"),
        ("no version", " SIP/2.0\r\nVia", "\r\nVia"),
        ("CSeq method mismatch", "CSeq: 1 INVITE", "CSeq: 1 BYE"),
        ("CSeq not a number", "CSeq: 1 INVITE", "CSeq: one INVITE"),
        (
            "CSeq overflow",
            "CSeq: 1 INVITE",
            "CSeq: 99999999999 INVITE",
        ),
        ("Via garbage", "Via: SIP/2.0/UDP", "Via: garbage"),
        ("From garbage", "From: <sip:evil@127.0.0.1>", "From: <<<>>>"),
        ("To garbage", "To: <sip:600@", "To: <<sip:600@"),
        (
            "header without colon",
            "Max-Forwards: 70",
            "Max-Forwards 70",
        ),
        ("NUL in header", "Max-Forwards: 70", "Max-Forwards: 7\u{0}0"),
        (
            "Max-Forwards garbage",
            "Max-Forwards: 70",
            "Max-Forwards: lots",
        ),
        ("bad SDP", "v=0\r\n", "v=9\r\nx\r\n"),
    ];
    for (i, (name, from, to)) in variants.iter().enumerate() {
        let msg = invite(target, &format!("v{i}"), SDP).replacen(from, to, 1);
        out.push((name.to_string(), msg.into_bytes()));
    }
    // Requests that parse but that we must refuse with a specific code.
    let refusals: [(&str, &str, &str, u16); 11] = [
        (
            "REGISTER without credentials is challenged",
            "INVITE sip:",
            "REGISTER sip:",
            401,
        ),
        (
            "unknown option tag",
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nRequire: 100rel, x-magic\r\n",
            420,
        ),
        ("unknown method", "INVITE sip:", "FROBNICATE sip:", 501),
        (
            "tel Request-URI",
            "INVITE sip:600@",
            "INVITE tel:600;x=",
            416,
        ),
        ("BYE outside a dialog", "INVITE sip:", "BYE sip:", 481),
        ("INFO outside a dialog", "INVITE sip:", "INFO sip:", 481),
        ("CANCEL matching nothing", "INVITE sip:", "CANCEL sip:", 481),
        (
            "re-INVITE for no dialog",
            ">\r\nCall-ID:",
            ">;tag=nosuch\r\nCall-ID:",
            481,
        ),
        (
            "duplicate Call-ID",
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nCall-ID: second@x\r\n",
            400,
        ),
        (
            "duplicate CSeq",
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nCSeq: 2 INVITE\r\n",
            400,
        ),
        ("negative CSeq", "CSeq: 1 INVITE", "CSeq: -1 INVITE", 400),
    ];
    for (i, (name, from, to, code)) in refusals.iter().enumerate() {
        let mut msg = invite(target, &format!("r{i}"), SDP).replacen(from, to, 1);
        // Method changes need a matching CSeq method.
        for method in ["FROBNICATE", "BYE", "INFO", "CANCEL", "REGISTER"] {
            if msg.starts_with(method) {
                msg = msg.replace("CSeq: 1 INVITE", &format!("CSeq: 1 {method}"));
            }
        }
        out.push((format!("expect {code}: {name}"), msg.into_bytes()));
    }
    // Structural abuse.
    let many_vias = invite(target, "vias", SDP).replace(
        "Max-Forwards: 70\r\n",
        &"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n".repeat(500),
    );
    out.push(("500 Via headers".into(), many_vias.into_bytes()));
    let commas = invite(target, "commas", SDP).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nAllow: {}\r\n", ",".repeat(10_000)),
    );
    out.push(("10000 commas".into(), commas.into_bytes()));
    let unbalanced = invite(target, "quote", SDP).replace(
        "From: <sip:evil@127.0.0.1>",
        "From: \"unterminated <sip:evil@127.0.0.1>",
    );
    out.push(("unbalanced quote".into(), unbalanced.into_bytes()));
    let no_branch = invite(target, "nobranch", SDP).replace(";branch=z9hG4bKnobranch", "");
    out.push((
        "Via without branch, no Call-ID".into(),
        no_branch.replace("Call-ID", "X-Call").into_bytes(),
    ));
    let mut over = invite(target, "over", SDP).into_bytes();
    over.resize(65_537, b'x');
    out.push(("64 KiB + 1".into(), over));
    let nul_body = invite(target, "nul", "\0\0\0\0\0\0\0\0").into_bytes();
    out.push(("NUL body as SDP".into(), nul_body));
    let ack = b"ACK sip:600@x SIP/2.0\r\nVia: garbage\r\n\r\n".to_vec();
    out.push(("garbage ACK".into(), ack));
    let lf_only = invite(target, "lf", "")
        .replace("\r\n", "\n")
        .replace("Content-Type: application/sdp\n", "");
    out.push(("bare LF line ends without SDP".into(), lf_only.into_bytes()));
    let cl_twice = invite(target, "cl2", SDP).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nContent-Length: 3\r\n",
    );
    out.push(("two Content-Lengths".into(), cl_twice.into_bytes()));
    // Binary garbage, some starting like a request.
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for i in 0..30 {
        let len = (rng.next() % 1400) as usize + 1;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 3 == 0 {
            let mut prefixed = b"INVITE sip:600@x SIP/2.0\r\n".to_vec();
            prefixed.append(&mut bytes);
            bytes = prefixed;
        }
        out.push((format!("garbage {i}"), bytes));
    }
    // Responses nobody asked for, and an ACK with garbage: must be dropped silently.
    out.push(("stray response".into(), b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKstray\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: stray\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".to_vec()));
    out.push(("empty datagram of CRLF".into(), b"\r\n\r\n".to_vec()));
    out
}

fn call_id_of(message: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let line = text.lines().find(|l| l.starts_with("Call-ID:"))?;
    Some(line["Call-ID:".len()..].trim().to_string())
}

fn status_of(reply: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(reply).ok()?;
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

#[test]
fn hostile_messages_get_4xx_or_silence_and_the_server_keeps_working() {
    let mut server = Server::start(None, &[]);
    let target = server.sip;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    let messages = hostile_messages(target);
    assert!(
        messages.len() >= 100,
        "only {} hostile messages",
        messages.len()
    );
    // Replies are attributed by Call-ID: final answers may come after the next message was
    // sent, and error responses are retransmitted until ACKed (which we never do).
    let name_of_call: std::collections::HashMap<String, &str> = messages
        .iter()
        .filter_map(|(name, bytes)| Some((call_id_of(bytes)?, name.as_str())))
        .collect();
    let mut refused = std::collections::HashSet::new();
    let check_replies = |socket: &UdpSocket, refused: &mut std::collections::HashSet<String>| {
        let mut buf = vec![0u8; 65536];
        while let Ok((len, _)) = socket.recv_from(&mut buf) {
            let reply = &buf[..len];
            let code = status_of(reply);
            let name = call_id_of(reply)
                .and_then(|id| name_of_call.get(&id).copied())
                .unwrap_or("unattributed reply");
            // 100 Trying goes out for any INVITE that parses, before its final answer.
            if matches!(code, Some(100..=199)) {
                continue;
            }
            if let Some(expected) = name.strip_prefix("expect ").and_then(|n| n.get(..3)) {
                assert_eq!(
                    code.map(|c| c.to_string()).as_deref(),
                    Some(expected),
                    "{name}: {}",
                    String::from_utf8_lossy(reply)
                );
            }
            // A truncation point may leave a complete, valid INVITE (cut inside the body with
            // the Content-Length rule); then a 200 is right. Everything else must be refused.
            match code {
                Some(400..=599) => {
                    refused.insert(name.to_string());
                }
                Some(200..=299) if name.starts_with("truncated") => {}
                other => panic!(
                    "{name}: unexpected reply {other:?}: {}",
                    String::from_utf8_lossy(reply)
                ),
            }
        }
    };
    for (name, bytes) in &messages {
        // Datagrams over the UDP limit cannot be sent; they go over TCP below.
        if socket.send_to(bytes, target).is_err() {
            assert!(bytes.len() > 65_000, "{name} could not be sent");
            continue;
        }
        check_replies(&socket, &mut refused);
        assert!(server.alive(), "server died on {name}\n{}", server.log());
    }
    check_replies(&socket, &mut refused);
    for (name, _) in &messages {
        if name.starts_with("expect ") {
            assert!(refused.contains(name), "{name}: no error response");
        }
    }
    assert!(
        refused.len() >= 30,
        "only {} hostile requests were refused with an error",
        refused.len()
    );

    // The same over TCP, where framing errors must close only that connection.
    for (name, bytes) in &messages {
        if let Ok(mut stream) = TcpStream::connect(target) {
            let _ = stream.write_all(bytes);
        }
        assert!(
            server.alive(),
            "server died on TCP {name}\n{}",
            server.log()
        );
    }

    // RFC 4475 torture messages: whatever the verdict, no crash.
    // A missing corpus fails the test: passing without sending a single message would
    // prove nothing.
    let torture = rfc4475_corpus();
    for (name, bytes) in &torture {
        socket
            .send_to(bytes, target)
            .unwrap_or_else(|err| panic!("{name}: cannot send: {err}"));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.alive(),
        "server died on RFC 4475 messages\n{}",
        server.log()
    );

    // Still answering: OPTIONS, then a real call with SIPp.
    let options = format!(
        "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKafter\r\nFrom: <sip:probe@127.0.0.1>;tag=a\r\nTo: <sip:{target}>\r\nCall-ID: after@x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        local = socket.local_addr().unwrap()
    );
    socket.send_to(options.as_bytes(), target).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut got_200 = false;
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        if String::from_utf8_lossy(&buf[..len]).contains("Call-ID: after@x") {
            got_200 = status_of(&buf[..len]) == Some(200);
            break;
        }
    }
    assert!(
        got_200,
        "no 200 to OPTIONS after the hostile barrage\n{}",
        server.log()
    );

    let dir = TempDir::new("hostile-audio");
    let call = support::pcmu_call_scenario(&dir);
    let target_text = target.to_string();
    let out = sipp(
        None,
        &[
            "-sf",
            &call,
            "-s",
            "600",
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-d",
            "2000",
            &target_text,
        ],
    );
    assert!(
        out.status.success(),
        "a normal call failed after the hostile barrage\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
}

/// The 49 RFC 4475 torture messages from `../shared/testing/rfc4475`, by file name. Panics when
/// the corpus is missing or incomplete.
fn rfc4475_corpus() -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("../shared/testing/rfc4475");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| {
        panic!(
            "RFC 4475 corpus missing at {}: {err} (clone ../shared beside the repo)",
            dir.display()
        )
    });
    let mut messages: Vec<(String, Vec<u8>)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    messages.sort();
    assert_eq!(
        messages.len(),
        49,
        "RFC 4475 corpus at {} is incomplete",
        dir.display()
    );
    messages
}
