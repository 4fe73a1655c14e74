//! Staff phones register: digest authentication against users made with `amtsleitung user`,
//! bindings that survive a restart, refusals for wrong passwords, unknown users and foreign
//! networks, and a ban for an address that keeps guessing. Real clients: baresip registers
//! like a desk phone, SIPp sends the refused and the guessing REGISTERs. Each test runs in a
//! network namespace of its own (server 10.99.0.1, clients 10.99.0.2..6).

mod support;

use std::time::Duration;

use support::{Baresip, Netns, Server, TempDir, sipp, wait_until};

fn user(data: &std::path::Path, args: &[&str]) -> String {
    support::user_cli(data, args)
}

/// The REGISTERED column of `user list` for `extension` ("1/5": one contact of five).
fn registered(data: &std::path::Path, extension: &str) -> String {
    let list = user(data, &["list"]);
    list.lines()
        .find(|l| l.split_whitespace().next() == Some(extension))
        .and_then(|l| l.split_whitespace().find(|w| w.contains('/')))
        .unwrap_or_else(|| panic!("{extension} not in\n{list}"))
        .to_string()
}

fn assert_ok(out: &std::process::Output, server: &Server, what: &str) {
    support::assert_sipp_ok(out, server, what);
}

#[test]
fn a_phone_registers_with_digest_and_is_still_rung_after_a_restart() {
    let ns = Netns::new();
    let data = TempDir::new("reg-data");
    user(
        data.path(),
        &[
            "add",
            "101",
            "--name",
            "Bürgerbüro",
            "--password",
            "geheim123",
        ],
    );
    support::add_user(data.path(), "102", "kollege77");
    let mut server = Server::start_with_data(Some(&ns), &[], data);
    // A desk phone that stays up through the server's restart (and never re-registers in
    // that time), playing 880 Hz.
    let phone = Baresip::new("10.99.0.2", 880, "PCMU", 8000).registering("101", "geheim123");
    // A colleague's phone calls it (staff extensions are for identified callers only).
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("102", "kollege77");
    std::thread::scope(|scope| {
        let phone_run = scope.spawn(|| phone.run(&ns, 25));
        let registered_now = wait_until(Duration::from_secs(10), || {
            server.metric(Some(&ns), "amtsleitung_registered_contacts") == 1
        });
        assert!(registered_now, "baresip did not register\n{}", server.log());
        assert!(
            server
                .log()
                .contains("registered user=101 source=10.99.0.2"),
            "{}",
            server.log()
        );
        // The store has it too, for the admin and for the restart.
        let stored = wait_until(Duration::from_secs(5), || {
            registered(server.data_dir(), "101") == "1/5"
        });
        assert!(stored, "user list: {}", user(server.data_dir(), &["list"]));
        let show = user(server.data_dir(), &["show", "101"]);
        assert!(show.contains("10.99.0.2"), "{show}");

        server.restart(Some(&ns), &[]);
        assert_eq!(
            server.metric(Some(&ns), "amtsleitung_registered_contacts"),
            1,
            "the registration was not restored\n{}",
            server.log()
        );
        assert!(
            server
                .log()
                .contains("registrations restored from the store")
        );
        // And the restored registration rings the phone.
        let caller_out = caller.call(&ns, "sip:101@10.99.0.1", 5);
        assert!(
            server.log().contains("dial: answered; connected"),
            "the phone was not reached after the restart\n{caller_out}\n{}",
            server.log()
        );
        phone_run.join().unwrap();
    });
    let (samples, rate) = support::read_wav(&caller.heard().expect("the caller heard nothing"));
    let share = support::tone_share(&samples, rate, 880.0, 1.0);
    assert!(
        share > 0.5,
        "880 Hz from the phone at the caller: {share:.2}"
    );
}

#[test]
fn wrong_passwords_unknown_users_and_foreign_networks_are_refused() {
    let ns = Netns::new();
    let data = TempDir::new("reg-refuse");
    user(
        data.path(),
        &["add", "101", "--name", "Büro", "--password", "geheim123"],
    );
    user(
        data.path(),
        &[
            "add",
            "102",
            "--name",
            "Homeoffice",
            "--password",
            "geheim456",
            "--allow",
            "10.8.0.0/16",
        ],
    );
    let server = Server::start_with_data(Some(&ns), &[], data);
    let dir = TempDir::new("reg-refuse-sipp");
    let challenged_again = support::register_scenario(&dir, 401);
    let forbidden = support::register_scenario(&dir, 403);
    let accepted = support::register_scenario(&dir, 200);

    // A wrong password is challenged again; an unknown user gets exactly the same answer.
    let out = support::sipp_register(&ns, &challenged_again, "10.99.0.2", "101", "falsch123", 1);
    assert_ok(&out, &server, "wrong password");
    let out = support::sipp_register(&ns, &challenged_again, "10.99.0.2", "999", "geheim123", 1);
    assert_ok(&out, &server, "unknown user");
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_registered_contacts"),
        0
    );
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_auth_failures_total"),
        2
    );
    assert_eq!(registered(server.data_dir(), "101"), "0/5");

    // The right password from outside the user's networks: 403.
    let out = support::sipp_register(&ns, &forbidden, "10.99.0.2", "102", "geheim456", 1);
    assert_ok(&out, &server, "foreign network");
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_registered_contacts"),
        0
    );

    // And the right password where it is allowed: registered.
    let out = support::sipp_register(&ns, &accepted, "10.99.0.2", "101", "geheim123", 1);
    assert_ok(&out, &server, "right password");
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_registered_contacts"),
        1
    );
}

#[test]
fn an_address_guessing_passwords_is_banned_but_the_account_still_registers() {
    let ns = Netns::new();
    let data = TempDir::new("reg-ban");
    user(
        data.path(),
        &["add", "101", "--name", "Büro", "--password", "geheim123"],
    );
    let server = Server::start_with_data(Some(&ns), &[], data);
    let dir = TempDir::new("reg-ban-sipp");
    let challenged_again = support::register_scenario(&dir, 401);
    let accepted = support::register_scenario(&dir, 200);

    // Five wrong guesses are each answered with a new challenge...
    let out = support::sipp_register(&ns, &challenged_again, "10.99.0.3", "101", "rate1234", 5);
    assert_ok(&out, &server, "five wrong passwords");
    assert_eq!(server.metric(Some(&ns), "amtsleitung_bans_total"), 1);
    // ...then the address gets no answer at all.
    let out = support::sipp_register(&ns, &challenged_again, "10.99.0.3", "101", "rate1234", 1);
    assert!(
        !out.status.success(),
        "a banned address was still answered\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(server.log().contains("source banned"), "{}", server.log());
    // The real phone at another address is not locked out.
    let out = support::sipp_register(&ns, &accepted, "10.99.0.4", "101", "geheim123", 1);
    assert_ok(&out, &server, "right password from another address");
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_registered_contacts"),
        1
    );
    assert_eq!(server.metric(Some(&ns), "amtsleitung_banned_sources"), 1);
}

/// Under a flood of REGISTERs and INVITEs from one address (about 2,000 messages a second),
/// another address's OPTIONS are still answered within 500 ms, 99 % of them: the flood is
/// dropped by the per-source limit before it is even parsed.
#[test]
fn options_from_others_stay_answered_during_a_flood_from_one_address() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let dir = TempDir::new("flood");
    let flood = support::scenario("flood.xml");
    let probe = support::scenario("options_rtt.xml");
    let (flood_out, probe_out) = std::thread::scope(|scope| {
        let flood_run = scope.spawn(|| {
            sipp(
                Some(&ns),
                &[
                    "-sf",
                    &flood,
                    "-i",
                    "10.99.0.2",
                    "-p",
                    "5070",
                    "-r",
                    "1000",
                    "-m",
                    "12000",
                    "-l",
                    "20000",
                    "10.99.0.1:5060",
                ],
            )
        });
        // Let the flood build up, then probe: 20 OPTIONS a second for 8 s.
        std::thread::sleep(Duration::from_secs(2));
        let probe_out = ns
            .command("sipp")
            .current_dir(dir.path())
            .args([
                "-sf",
                &probe,
                "-i",
                "10.99.0.3",
                "-p",
                "5071",
                "-r",
                "20",
                "-m",
                "160",
                "-l",
                "200",
                "-trace_rtt",
                "-rtt_freq",
                "1",
                "-recv_timeout",
                "2000",
                "-nostdin",
                "-timeout",
                "40s",
                "-timeout_error",
                "10.99.0.1:5060",
            ])
            .output()
            .unwrap();
        (flood_run.join().unwrap(), probe_out)
    });
    assert_ok(&probe_out, &server, "OPTIONS during the flood");
    let rtt_file = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("_rtt.csv"))
        .expect("SIPp wrote no response times");
    let mut times: Vec<f64> = std::fs::read_to_string(&rtt_file)
        .unwrap()
        .lines()
        .filter_map(|l| l.split(';').nth(1)?.trim().parse().ok())
        .collect();
    assert!(times.len() >= 150, "only {} response times", times.len());
    times.sort_by(f64::total_cmp);
    let p99 = times[(times.len() * 99).div_ceil(100) - 1];
    let dropped = server.metric(Some(&ns), "amtsleitung_sip_messages_dropped_total");
    assert!(
        p99 < 500.0,
        "p99 OPTIONS response {p99:.1} ms during the flood ({dropped} flood messages dropped)"
    );
    // The flood really came and was mostly dropped.
    assert!(
        dropped > 10_000,
        "only {dropped} messages dropped\n{}",
        String::from_utf8_lossy(&flood_out.stdout)
    );
    eprintln!(
        "OPTIONS during a flood: p99 {p99:.1} ms, max {:.1} ms; {dropped} flood messages dropped",
        times[times.len() - 1]
    );
}

/// Qualify: every registered contact gets OPTIONS (here every 2 s, 1 s to answer). A phone
/// that answers (baresip) stays reachable; a contact whose phone is gone (SIPp registered it
/// and exited) is marked down and not rung: a call to it goes on at once, and registering
/// again brings it back.
#[test]
fn a_contact_that_stops_answering_options_is_not_rung_until_it_registers_again() {
    let ns = Netns::new();
    let data = TempDir::new("reg-qualify");
    support::add_user(data.path(), "101", "geheim123");
    support::add_user(data.path(), "102", "kollege77");
    support::add_user(data.path(), "103", "vertretung9");
    let dir = TempDir::new("reg-qualify-sipp");
    let config = dir.path().join("qualify.toml");
    std::fs::write(
        &config,
        "[registrar]\nqualify-interval = 2\nqualify-timeout = 1\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let server = Server::start_with_data(Some(&ns), &["--config", &config], data);
    let phone = Baresip::new("10.99.0.2", 880, "PCMU", 8000).registering("101", "geheim123");
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("102", "kollege77");
    let scenario = support::register_scenario(&dir, 200);
    std::thread::scope(|scope| {
        let phone_run = scope.spawn(|| phone.run(&ns, 16));
        let gone = support::sipp_register(&ns, &scenario, "10.99.0.4", "103", "vertretung9", 1);
        assert_ok(&gone, &server, "REGISTER of the phone that then goes away");
        let marked_down = wait_until(Duration::from_secs(8), || {
            server.metric(Some(&ns), "amtsleitung_unreachable_contacts") == 1
        });
        assert!(
            marked_down,
            "the dead contact was not marked down\n{}",
            server.log()
        );
        assert!(
            server.log().contains("contact does not answer OPTIONS")
                && server.log().contains("source=10.99.0.4"),
            "{}",
            server.log()
        );
        // Several more rounds: baresip answers every OPTIONS, so only the dead one is down.
        std::thread::sleep(Duration::from_secs(4));
        assert_eq!(
            server.metric(Some(&ns), "amtsleitung_unreachable_contacts"),
            1,
            "{}",
            server.log()
        );
        assert_eq!(
            server.metric(Some(&ns), "amtsleitung_registered_contacts"),
            2
        );
        // A call to the dead contact's user rings nobody: the shipped rule goes on to its
        // next action (480) at once instead of ringing a phone that is not there for 30 s.
        let started = std::time::Instant::now();
        let caller_out = caller.call(&ns, "sip:103@10.99.0.1", 3);
        let log = server.log();
        assert!(
            log.contains("target=user 103 contacts=0"),
            "{caller_out}\n{log}"
        );
        assert!(caller_out.contains("480"), "{caller_out}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // Registering again is an answer too.
        let back = support::sipp_register(&ns, &scenario, "10.99.0.4", "103", "vertretung9", 1);
        assert_ok(&back, &server, "REGISTER again");
        assert_eq!(
            server.metric(Some(&ns), "amtsleitung_unreachable_contacts"),
            0,
            "{}",
            server.log()
        );
        phone_run.join().unwrap();
    });
}

/// A phone registered through a proxy that put itself in a Path (RFC 3327; a Kamailio in
/// front of the server, say) is called through that proxy: the INVITE goes to the proxy's
/// address with the Path as its Route, and its Request-URI is the phone's contact.
#[test]
fn a_phone_registered_through_a_proxy_is_called_through_that_proxy() {
    let ns = Netns::new();
    let data = TempDir::new("reg-path");
    support::add_user(data.path(), "103", "vertretung9");
    let dir = TempDir::new("reg-path-sipp");
    let config = support::config_trusting(&dir, "10.99.0.3/32");
    let server = Server::start_with_data(Some(&ns), &["--config", &config], data);
    // The phone (SIPp at 10.99.0.4) registers through the "proxy" at 10.99.0.5:5090.
    let scenario = support::register_scenario_with(
        &dir,
        200,
        "Path: <sip:10.99.0.5:5090;lr>\nSupported: path\n",
    );
    let registered = support::sipp_register(&ns, &scenario, "10.99.0.4", "103", "vertretung9", 1);
    assert_ok(&registered, &server, "REGISTER through the proxy");
    // The proxy checks what it gets and answers busy.
    let proxy = dir.path().join("proxy.xml");
    std::fs::write(
        &proxy,
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="proxy in the Path">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="^INVITE sip:103@10\.99\.0\.4:5070 SIP/2\.0" search_in="msg" check_it="true" assign_to="1"/>
      <ereg regexp="sip:10\.99\.0\.5:5090;lr" search_in="hdr" header="Route:" check_it="true" assign_to="2"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]proxy[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK"/>
  <Reference variables="1,2"/>
</scenario>
"#,
    )
    .unwrap();
    let proxy = proxy.display().to_string();
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let (proxy_out, caller_out) = std::thread::scope(|scope| {
        let proxy_run = scope.spawn(|| {
            sipp(
                Some(&ns),
                &[
                    "-sf",
                    &proxy,
                    "-i",
                    "10.99.0.5",
                    "-p",
                    "5090",
                    "-m",
                    "1",
                    "-timeout",
                    "20s",
                ],
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        let caller_out = caller.call(&ns, "sip:103@10.99.0.1", 3);
        (proxy_run.join().unwrap(), caller_out)
    });
    assert_ok(
        &proxy_out,
        &server,
        "the proxy got the INVITE with the Path as Route",
    );
    let log = server.log();
    assert!(
        log.contains("target=user 103 contacts=1"),
        "{caller_out}\n{log}"
    );
}
