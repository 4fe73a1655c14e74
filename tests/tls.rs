//! SIP over TLS (RFC 3261 §26.2) against real clients: baresip registers and calls the echo
//! test over TLS, `openssl s_client` sees a replaced certificate without a restart, and
//! garbage on the TLS port closes only its own connection. Every test makes its own
//! throw-away CA and server certificate (for 10.99.0.1) with the openssl command.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{
    Baresip, Netns, PacketCounter, Pki, SERVER_IP, Server, TempDir, add_user, assert_both_hear,
    read_wav, s_client, server_with_tls, tone_share, wait_until, with_registered_phones,
};

#[test]
fn baresip_registers_and_hears_the_echo_over_tls() {
    let ns = Netns::new();
    let pki = Pki::new();
    let (cert, key) = pki.server_cert(SERVER_IP, 1);
    let data = TempDir::new("tls-echo");
    add_user(data.path(), "101", "geheim123");
    let server = server_with_tls(&ns, &cert, &key, data);
    // The ready line reaches the log just after the test sees it.
    assert!(
        wait_until(Duration::from_secs(2), || server
            .log()
            .contains("sip_tls=Some(10.99.0.1:5061)")),
        "{}",
        server.log()
    );
    // SIP the server sends to the phone over UDP: there must be none.
    let udp_sip = PacketCounter::new(&ns, 15060);
    let phone = Baresip::new("10.99.0.2", 440, "PCMU", 8000)
        .registering("101", "geheim123")
        .over_tls(&pki.ca());
    let out = phone.call(&ns, "sip:600@10.99.0.1;transport=tls", 8);
    let log = server.log();
    let context = format!("baresip:\n{out}\nserver:\n{log}");
    // The source is the namespace's own address: baresip does not bind its TLS connections
    // to its sip_listen address, and server and client share one network stack here.
    assert!(log.contains("registered user=101 source="), "{context}");
    assert!(log.contains("contacts=1 transport=TLS"), "{context}");
    // baresip names the flow its registration went over.
    assert!(out.contains("{0/TLS/v4} 200 OK"), "{context}");
    assert!(out.contains("Call established"), "{context}");
    let heard = phone
        .heard()
        .unwrap_or_else(|| panic!("baresip recorded nothing\n{context}"));
    let (samples, rate) = read_wav(&heard);
    let share = tone_share(&samples, rate, 440.0, 2.0);
    assert!(
        share > 0.6,
        "440 Hz share of what the caller heard is {share:.2}\n{context}"
    );
    assert_eq!(udp_sip.packets(), 0, "SIP went over UDP\n{context}");
}

#[test]
fn a_replaced_certificate_is_served_without_a_restart() {
    let ns = Netns::new();
    let pki = Pki::new();
    let (first_cert, first_key) = pki.server_cert("amt-first", 1001);
    let (second_cert, second_key) = pki.server_cert("amt-second", 1002);
    // The files the server is configured with; replaced in place later.
    let cert = pki.path("server.pem");
    let key = pki.path("server.key");
    std::fs::copy(&first_cert, &cert).unwrap();
    std::fs::copy(&first_key, &key).unwrap();
    let mut server = server_with_tls(&ns, &cert, &key, TempDir::new("tls-reload"));
    let before = s_client(&ns, 5061, &pki.ca());
    assert!(before.contains("CN = amt-first"), "{before}");
    assert!(before.contains("Verify return code: 0 (ok)"), "{before}");

    // An admin copies the renewed certificate over the old files (not atomically: the
    // certificate first, then its key).
    std::fs::copy(&second_cert, &cert).unwrap();
    std::fs::copy(&second_key, &key).unwrap();
    let mut after = String::new();
    let renewed = wait_until(Duration::from_secs(6), || {
        after = s_client(&ns, 5061, &pki.ca());
        after.contains("CN = amt-second")
    });
    assert!(
        renewed,
        "the new certificate was not served\n{after}\n{}",
        server.log()
    );
    assert!(after.contains("Verify return code: 0 (ok)"), "{after}");
    assert!(
        server.log().contains("TLS certificate reloaded"),
        "{}",
        server.log()
    );

    // A broken file is logged and the certificate in use stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let kept = s_client(&ns, 5061, &pki.ca());
    assert!(kept.contains("CN = amt-second"), "{kept}\n{}", server.log());
    assert!(
        server.log().contains("TLS certificate not reloaded"),
        "{}",
        server.log()
    );
    assert!(server.alive());
}

#[test]
fn garbage_on_the_tls_port_closes_that_connection_and_the_server_keeps_serving() {
    let ns = Netns::new();
    let pki = Pki::new();
    let (cert, key) = pki.server_cert(SERVER_IP, 7);
    let mut server = server_with_tls(&ns, &cert, &key, TempDir::new("tls-garbage"));
    // Plain SIP, as a phone configured for TCP by mistake sends it, to the TLS port; the
    // server must close the connection itself (`cat` ends) well before `timeout` would.
    // The server may close with a reset (our bytes unread): cat then ends with 1, and the
    // shell must not die of SIGPIPE on the way; only timeout's 124 means "stayed open".
    let script = format!(
        "trap '' PIPE; exec 3<>/dev/tcp/{SERVER_IP}/5061; \
         printf 'OPTIONS sip:{SERVER_IP} SIP/2.0\\r\\nVia: SIP/2.0/TCP 10.99.0.2:5060\\r\\n\\r\\n' >&3; \
         timeout 8 cat <&3 >/dev/null 2>&1; echo \"cat ended with $?\""
    );
    let started = std::time::Instant::now();
    let out = ns.command("bash").args(["-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cat ended with ")
            && !text.contains("cat ended with 124")
            && started.elapsed() < Duration::from_secs(7),
        "the connection stayed open: {text}\n{}",
        server.log()
    );
    assert!(
        server.log().contains("TLS handshake failed"),
        "{}",
        server.log()
    );
    assert!(server.metric(Some(&ns), "amtsleitung_tls_handshake_failures_total") >= 1);
    // And TLS still works for the next one.
    let next = s_client(&ns, 5061, &pki.ca());
    assert!(
        next.contains("Verify return code: 0 (ok)"),
        "{next}\n{}",
        server.log()
    );
    assert!(server.alive());
}

#[test]
fn a_phone_registered_over_tls_is_called_over_its_tls_connection() {
    let ns = Netns::new();
    let pki = Pki::new();
    let (cert, key) = pki.server_cert(SERVER_IP, 2);
    let data = TempDir::new("tls-called");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let server = server_with_tls(&ns, &cert, &key, data);
    let phone = Baresip::new("10.99.0.2", 880, "PCMU", 8000)
        .registering("101", "geheim123")
        .over_tls(&pki.ca());
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("102", "kollege77");
    // Counts SIP the server sends to the phone's UDP port (baresip listens there too, so a
    // call sent over UDP would still ring it): there must be none.
    ns.exec_ok(&["nft", "add table inet amtphone"]);
    ns.exec_ok(&[
        "nft",
        "add chain inet amtphone input { type filter hook input priority 0 ; }",
    ]);
    ns.exec_ok(&[
        "nft",
        "add rule inet amtphone input ip daddr 10.99.0.2 udp dport 15060 counter",
    ]);
    let (outputs, caller_out) = with_registered_phones(&server, &ns, &[(&phone, &ns)], || {
        caller.call(&ns, "sip:101@10.99.0.1", 7)
    });
    let context = format!("{caller_out}\n{outputs:?}");
    assert!(outputs[0].contains("{0/TLS/v4} 200 OK"), "{context}");
    assert!(
        outputs[0].contains("Call established"),
        "{context}\n{}",
        server.log()
    );
    assert_both_hear(&phone, &caller, &server, &context);
    let counted = ns
        .command("nft")
        .args(["list", "table", "inet", "amtphone"])
        .output()
        .unwrap();
    let counted = String::from_utf8_lossy(&counted.stdout);
    assert!(
        counted.contains("packets 0 "),
        "SIP reached the phone over UDP: {counted}"
    );
}

/// A TLS server standing in for a carrier's SBC: `openssl s_server` on `addr` in `ns`,
/// writing what it receives to a file. Killed on drop.
struct FakeCarrier {
    child: std::process::Child,
    received: PathBuf,
}

impl FakeCarrier {
    fn start(ns: &Netns, addr: &str, cert: &Path, key: &Path, dir: &Path) -> Self {
        let received = dir.join(format!("received-{addr}.txt"));
        let child = ns
            .command("openssl")
            .args(["s_server", "-quiet", "-accept", addr, "-cert"])
            .arg(cert)
            .arg("-key")
            .arg(key)
            // Kept open: s_server ends when its standard input does.
            .stdin(std::process::Stdio::piped())
            .stdout(std::fs::File::create(&received).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run openssl s_server");
        let listening = wait_until(Duration::from_secs(5), || {
            let out = ns
                .command("ss")
                .args(["-Hltn", &format!("src {addr}")])
                .output()
                .unwrap();
            !out.stdout.is_empty()
        });
        assert!(listening, "openssl s_server did not listen on {addr}");
        Self { child, received }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.received).unwrap_or_default()
    }
}

impl Drop for FakeCarrier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_tls_trunk_registers_over_tls_checked_against_its_ca_file_and_not_without() {
    let ns = Netns::new();
    let pki = Pki::new();
    let (good_cert, good_key) = pki.cert_for("10.99.0.5", "sbc-good", 11);
    let (other_cert, other_key) = pki.cert_for("10.99.0.6", "sbc-other", 12);
    let good = FakeCarrier::start(&ns, "10.99.0.5:5061", &good_cert, &good_key, pki.dir.path());
    let other = FakeCarrier::start(
        &ns,
        "10.99.0.6:5061",
        &other_cert,
        &other_key,
        pki.dir.path(),
    );
    // "carrier" trusts the test CA; "other" has no ca-file, so the system's trust store
    // decides, which does not know the test CA.
    let trunks = pki.path("trunks.toml");
    std::fs::write(
        &trunks,
        format!(
            "[numbering]\narea-code = \"711\"\n\
             [[trunk]]\nname = \"carrier\"\nmode = \"register\"\nregistrar = \"sip:10.99.0.5\"\n\
             username = \"+4971112340\"\npassword = \"secret\"\ntransport = \"tls\"\n\
             ca-file = \"{ca}\"\nmax-calls = 2\nemergency = true\n\
             [[trunk]]\nname = \"other\"\nmode = \"register\"\nregistrar = \"sip:10.99.0.6\"\n\
             username = \"+4971112341\"\npassword = \"secret\"\ntransport = \"tls\"\nmax-calls = 2\n",
            ca = pki.ca().display()
        ),
    )
    .unwrap();
    let server = Server::start(Some(&ns), &["--trunks", trunks.to_str().unwrap()]);
    let registered = wait_until(Duration::from_secs(10), || {
        good.received().contains("REGISTER sip:10.99.0.5 SIP/2.0")
    });
    let context = format!(
        "carrier got:\n{}\nother got:\n{}\nserver:\n{}",
        good.received(),
        other.received(),
        server.log()
    );
    assert!(registered, "no REGISTER over TLS\n{context}");
    let register = good.received();
    assert!(
        register.contains("Via: SIP/2.0/TLS 10.99.0.1:"),
        "{context}"
    );
    assert!(register.contains(";transport=tls>"), "{context}");
    assert!(
        wait_until(Duration::from_secs(3), || server.log().lines().any(|l| l
            .contains("TLS handshake failed")
            && l.contains("10.99.0.6:5061"))),
        "{context}"
    );
    assert!(
        !other.received().contains("REGISTER"),
        "a carrier whose certificate nobody vouches for got our REGISTER\n{context}"
    );
}
