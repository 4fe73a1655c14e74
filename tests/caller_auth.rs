//! Who may call what: a caller the server cannot identify (not registered, no password, not
//! from a trusted network) reaches only the dialplan's public numbers; for anything else it
//! gets the same password challenge (407) whether the number belongs to a staff member or to
//! nobody, so an outsider can neither ring a desk phone nor find out which numbers exist. A
//! caller who answers the challenge with a staff user's password gets through, shown to the
//! called phone under the user's name from the directory; one who keeps guessing is banned.
//! Real clients: SIPp for the outsider and the password caller, baresip as the staff phone.
//! Each test runs in a network namespace of its own (server 10.99.0.1).

mod support;

use support::{
    Baresip, Netns, Server, TempDir, add_user, assert_sipp_ok, auth_invite_scenario,
    pcmu_call_scenario, sipp, sipp_call_args, with_registered_phones,
};

/// The 407 SIPp received (from its `-trace_msg` file), with what differs between any two
/// challenges (tags, branch, Call-ID, the dialled number, the nonce) blanked out.
fn challenge_shape(message_file: &std::path::Path) -> String {
    let log = std::fs::read_to_string(message_file).unwrap();
    let response = log
        .split("message received")
        .filter_map(|m| m.split_once("SIP/2.0 407").map(|(_, rest)| rest))
        .next()
        .unwrap_or_else(|| panic!("no 407 received\n{log}"));
    let mut shape = vec!["SIP/2.0 407".to_string()];
    for line in response.lines().skip(1) {
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = match name.to_ascii_lowercase().as_str() {
            "proxy-authenticate" => value
                .split(',')
                .map(|p| p.split('=').next().unwrap_or("").trim().to_string())
                .collect::<Vec<_>>()
                .join(","),
            "content-length" => value.trim().to_string(),
            _ => String::new(),
        };
        shape.push(format!("{name}: {value}"));
    }
    shape.join("\n")
}

/// An outsider (SIPp from an address the server knows nothing of) gets through to the public
/// echo test, and gets one and the same challenge for a staff member's extension, for an
/// extension nobody has, and for a number no rule matches.
#[test]
fn an_outsider_reaches_public_numbers_and_cannot_tell_staff_from_unknown_numbers() {
    let ns = Netns::new();
    let data = TempDir::new("auth-outsider");
    add_user(data.path(), "101", "geheim123");
    let server = Server::start_with_data(Some(&ns), &[], data);
    let dir = TempDir::new("auth-outsider-sipp");
    let challenged = auth_invite_scenario(&dir, "challenged.xml", None);
    let mut shapes = Vec::new();
    for number in ["101", "102", "999"] {
        let messages = dir.path().join(format!("messages-{number}.log"));
        let messages_arg = messages.display().to_string();
        let out = sipp(
            Some(&ns),
            &sipp_call_args(
                &challenged,
                "10.99.0.3",
                "5070",
                &[
                    "-s",
                    number,
                    "-trace_msg",
                    "-message_file",
                    &messages_arg,
                    "-recv_timeout",
                    "3000",
                ],
            ),
        );
        assert_sipp_ok(&out, &server, &format!("outsider calling {number}"));
        shapes.push((number, challenge_shape(&messages)));
    }
    for (number, shape) in &shapes[1..] {
        assert_eq!(
            shape, &shapes[0].1,
            "the challenge for {number} differs from the one for {}",
            shapes[0].0
        );
    }
    assert!(
        shapes[0]
            .1
            .contains("Proxy-Authenticate: Digest realm,nonce,"),
        "{}",
        shapes[0].1
    );
    // No phone rang, no call was routed to the staff rule.
    let log = server.log();
    assert!(!log.contains("routing call"), "{log}");
    // The public echo test answers the same outsider.
    let tone = pcmu_call_scenario(&dir);
    let out = sipp(
        Some(&ns),
        &sipp_call_args(&tone, "10.99.0.3", "5070", &["-s", "600", "-d", "1000"]),
    );
    assert_sipp_ok(&out, &server, "outsider calling the echo test");
}

/// A caller who answers the challenge with user 102's password rings 101's phone, which
/// shows 102's name from the directory; an address that keeps sending wrong passwords is
/// banned (no answer at all), while the right password from elsewhere still gets through.
#[test]
fn a_caller_with_a_staff_password_gets_through_and_a_guessing_address_is_banned() {
    let ns = Netns::new();
    let data = TempDir::new("auth-password");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let server = Server::start_with_data(Some(&ns), &[], data);
    let dir = TempDir::new("auth-password-sipp");
    let with_password = auth_invite_scenario(&dir, "password.xml", Some(200));
    let refused = auth_invite_scenario(&dir, "refused.xml", Some(407));
    let challenged = auth_invite_scenario(&dir, "challenged.xml", None);
    let unavailable = auth_invite_scenario(&dir, "unavailable.xml", Some(480));
    // 101 has a phone at home that answers and one in the office that only rings (and shows
    // who is calling: baresip prints the caller's name only for calls it does not answer).
    let phone = Baresip::new("10.99.0.2", 880, "PCMU", 8000).registering("101", "geheim123");
    let office = Baresip::new("10.99.0.6", 660, "PCMU", 8000)
        .registering("101", "geheim123")
        .never_answering();
    let phones = [(&phone, &ns), (&office, &ns)];
    let (outputs, out) = with_registered_phones(&server, &ns, &phones, || {
        sipp(
            Some(&ns),
            &sipp_call_args(
                &with_password,
                "10.99.0.3",
                "5070",
                &["-s", "101", "-au", "102", "-ap", "kollege77", "-d", "2000"],
            ),
        )
    });
    assert_sipp_ok(&out, &server, "call with 102's password");
    let office_out = &outputs[1];
    assert!(
        office_out.contains("Incoming call from: Sachbearbeitung 102 sip:102@"),
        "the phone did not show the caller's number and directory name\n{office_out}\n{}",
        server.log()
    );
    assert!(
        server.log().contains("dial: answered; connected"),
        "{}",
        server.log()
    );

    // Five wrong passwords from 10.99.0.4, each answered with a new challenge...
    let guess = |ip: &str, password: &str, scenario: &str, number: &str, times: &str| {
        sipp(
            Some(&ns),
            &[
                "-sf",
                scenario,
                "-i",
                ip,
                "-p",
                "5070",
                "-s",
                number,
                "-au",
                "102",
                "-ap",
                password,
                "-m",
                times,
                "-l",
                "1",
                "-recv_timeout",
                "3000",
                "10.99.0.1:5060",
            ],
        )
    };
    let out = guess("10.99.0.4", "rate1234", &refused, "101", "5");
    assert_sipp_ok(&out, &server, "five wrong passwords");
    assert_eq!(server.metric(Some(&ns), "amtsleitung_bans_total"), 1);
    // ...then that address gets no answer at all, not even a challenge.
    let out = guess("10.99.0.4", "rate1234", &challenged, "101", "1");
    assert!(
        !out.status.success(),
        "a banned address was still answered\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The account is not locked: the right password from another address still gets through
    // to the staff rule (extension 555 has no phone: the plan's "unavailable", 480).
    let out = guess("10.99.0.5", "kollege77", &unavailable, "555", "1");
    assert_sipp_ok(&out, &server, "the right password from another address");

    // The admin sees the ban and its reason, lifts it, and the address is answered again.
    let security = |args: &[&str]| {
        let http = server.http.to_string();
        let out = ns
            .command(support::binary().to_str().unwrap())
            .args(["security", "--http", &http])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, bans) = security(&["bans"]);
    assert!(ok, "{bans}");
    let line = bans
        .lines()
        .find(|l| l.starts_with("10.99.0.4 "))
        .unwrap_or_else(|| panic!("10.99.0.4 not listed\n{bans}"));
    assert!(
        line.contains("5 failed authentications within 600 s") && line.contains("14m"),
        "{bans}"
    );
    let (ok, lifted) = security(&["unban", "10.99.0.4"]);
    assert!(ok && lifted.contains("ban on 10.99.0.4 lifted"), "{lifted}");
    let (ok, again) = security(&["unban", "10.99.0.4"]);
    assert!(!ok && again.contains("10.99.0.4 is not banned"), "{again}");
    let (ok, bans) = security(&["bans"]);
    assert!(ok && bans.contains("no source is banned"), "{bans}");
    assert_eq!(server.metric(Some(&ns), "amtsleitung_banned_sources"), 0);
    let out = guess("10.99.0.4", "rate1234", &challenged, "101", "1");
    assert_sipp_ok(&out, &server, "the unbanned address");
    assert!(
        server.log().contains("ban lifted by an admin"),
        "{}",
        server.log()
    );
}
