//! SHA-256 digest (RFC 8760) with a real phone: PJSIP (pjsua2, tests/pjsua/phone.py) registers
//! against a server that challenges with SHA-256 only, then is called by a baresip caller, with
//! audio proven both ways from what each end recorded. baresip 1.0 and SIPp know only MD5.

mod support;

use std::time::Duration;

use support::{
    Baresip, HomeOffice, Netns, PjsuaPhone, Server, TempDir, add_user, heard_share, pjsua_python,
    read_wav, tone_share, wait_until,
};

/// A server in `ns` that challenges REGISTERs with SHA-256 alone and trusts the caller at
/// 10.99.0.3 (a trunk: its calls need no password), with user 101 (password geheim123).
fn sha256_only_server(ns: &Netns, label: &str) -> (Server, TempDir) {
    let dir = TempDir::new(label);
    let config = dir.path().join("sha256.toml");
    std::fs::write(
        &config,
        "[registrar]\ndigest-algorithms = [\"SHA-256\"]\n\n\
         [security]\ntrusted-networks = [\"10.99.0.3/32\"]\n",
    )
    .unwrap();
    let data = TempDir::new(&format!("{label}-data"));
    add_user(data.path(), "101", "geheim123");
    let server = Server::start_with_data(Some(ns), &["--config", config.to_str().unwrap()], data);
    (server, dir)
}

/// The `Authorization` headers of the REGISTERs the phone sent, from PJSIP's log.
fn authorizations(sip_log: &str) -> Vec<&str> {
    sip_log
        .lines()
        .filter(|l| l.starts_with("Authorization:"))
        .collect()
}

/// The phone sits in the simulated home office: a private address (192.168.178.20) behind a
/// home router that masquerades it onto the VPN link, so it works with no NAT setting too.
#[test]
fn a_pjsip_phone_registers_with_sha256_digest_and_both_hear_each_other() {
    pjsua_python(); // the venv, made before the clock of the phone's run starts
    let ns = Netns::new();
    let office = HomeOffice::behind_nat(&ns);
    let (server, _config) = sha256_only_server(&ns, "sha256");
    let phone = PjsuaPhone::new("192.168.178.20", 880);
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let ((registered, phone_out), caller_out) = std::thread::scope(|scope| {
        let run = scope.spawn(|| phone.run(&office.home, "101", "geheim123", "SHA-256", 11));
        let bound = wait_until(Duration::from_secs(10), || {
            server.metric(Some(&ns), "amtsleitung_registered_contacts") == 1
        });
        let caller_out = bound.then(|| caller.call(&ns, "sip:101@10.99.0.1", 6));
        (run.join().unwrap(), caller_out)
    });
    let log = server.log();
    let sip_log = phone.sip_log();
    let caller_out = caller_out
        .unwrap_or_else(|| panic!("the phone did not register\n{phone_out}\n{log}\n{sip_log}"));
    let context = format!("{phone_out}\n{caller_out}\n{log}");
    // The phone got its 200 for a REGISTER answered with SHA-256, and only SHA-256 was
    // offered and answered: the server does not log the algorithm, PJSIP's log does.
    assert!(registered, "{context}\n{sip_log}");
    assert!(
        phone_out.contains("registered 200 algorithm=SHA-256"),
        "{context}"
    );
    assert!(
        // From the router's address: the REGISTER came through the NAT.
        log.contains("registered user=101 source=10.98.0.2 contacts=1"),
        "{context}"
    );
    let challenges: Vec<&str> = sip_log
        .lines()
        .filter(|l| l.starts_with("WWW-Authenticate:"))
        .collect();
    assert!(
        !challenges.is_empty() && challenges.iter().all(|c| c.contains("algorithm=SHA-256")),
        "{challenges:#?}"
    );
    let answers = authorizations(&sip_log);
    assert!(
        !answers.is_empty()
            && answers.iter().all(|a| {
                a.contains("algorithm=SHA-256")
                    && a.split("response=\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .is_some_and(|r| r.len() == 64 && r.bytes().all(|c| c.is_ascii_hexdigit()))
            }),
        "SHA-256 responses (64 hex digits) expected: {answers:#?}"
    );
    // The call: the trusted caller rang 101, the phone answered by itself, and both ends
    // heard the other's tone (PCMU both legs).
    for line in ["incoming call from", "audio active", "call confirmed"] {
        assert!(phone_out.contains(line), "{line:?} missing\n{context}");
    }
    assert!(
        log.contains("dial: answered; connected") && log.contains("callee_codec=Pcmu"),
        "{context}"
    );
    let (heard, rate) = read_wav(&phone.heard());
    let to_phone = tone_share(&heard, rate, 440.0, 1.0);
    let own_at_phone = tone_share(&heard, rate, 880.0, 1.0);
    let to_caller = heard_share(&caller, 880.0, "the caller", &server);
    let own_at_caller = heard_share(&caller, 440.0, "the caller", &server);
    assert!(
        to_phone > 0.5 && to_caller > 0.5 && own_at_phone < 0.1 && own_at_caller < 0.1,
        "440 Hz at the phone {to_phone:.2} (880 Hz {own_at_phone:.2}), \
         880 Hz at the caller {to_caller:.2} (440 Hz {own_at_caller:.2})\n{context}"
    );
}

#[test]
fn a_pjsip_phone_with_a_wrong_password_gets_no_binding() {
    pjsua_python();
    let ns = Netns::new();
    let (server, _config) = sha256_only_server(&ns, "sha256-wrong");
    let phone = PjsuaPhone::new("10.99.0.2", 880);
    let (registered, phone_out) = phone.run(&ns, "101", "falsch", "SHA-256", 3);
    let log = server.log();
    let context = format!("{phone_out}\n{log}");
    assert!(!registered, "{context}");
    assert!(phone_out.contains("registration failed 401"), "{context}");
    // It did answer with SHA-256, just with the wrong password.
    let sip_log = phone.sip_log();
    let answers = authorizations(&sip_log);
    assert!(
        !answers.is_empty() && answers.iter().all(|a| a.contains("algorithm=SHA-256")),
        "{answers:#?}\n{context}"
    );
    assert!(
        log.contains("REGISTER not authenticated: wrong credentials"),
        "{context}"
    );
    assert!(!log.contains("registered user=101"), "{context}");
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_registered_contacts"),
        0,
        "{context}"
    );
    // One wrong password is one failure toward a ban: the second 401 repeats the nonce, so
    // PJSIP does not take it for a stale one and retry the same password (it did, three
    // times, when every 401 brought a new nonce).
    assert_eq!(answers.len(), 1, "{answers:#?}\n{context}");
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_auth_failures_total"),
        1,
        "{context}"
    );
}
