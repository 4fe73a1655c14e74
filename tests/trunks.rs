//! SIP trunks against a carrier played by SIPp and baresip, in a test namespace: the server
//! registers with digest and refreshes; a call from the carrier to a DID in national form
//! reaches the user the DID belongs to, audio both ways, and another DID room 1234 through
//! the lobby; the same DIDs from elsewhere are refused; calls out go through the carrier
//! with the user's number, within call classes and line limits, failing over, and 112 on
//! the emergency trunk.

mod support;

use std::time::Duration;

use support::carrier::{
    assert_own_tone_back, did_plans, echoing_carrier, server_with_trunks, trunks_file,
    with_registered_carrier,
};
use support::{
    Baresip, Netns, Server, TempDir, add_user, assert_both_hear, assert_sipp_ok,
    auth_invite_scenario, call_records, create_room, heard_share, plans_with, read_wav, rms,
    scenario, scenario_with_tone, sipp, sipp_call_args, tone_share, user_cli, wait_until,
    with_registered_phones,
};

#[test]
fn the_server_registers_with_the_carrier_through_its_challenge_and_refreshes() {
    let ns = Netns::new();
    let dir = TempDir::new("trunk-register");
    let trunks = trunks_file(&dir);
    registers_with_the_carrier(&ns, &trunks);
}

/// A carrier named by its domain alone (`sip:carrier.test`, as German carriers publish their
/// SBCs) is found through its `_sip._udp` SRV records (RFC 3263 §4.2): the port comes from
/// the record (5080; the name's own 5060 would reach nobody), the lower priority wins over a
/// dead SBC of higher priority number, and the trunk registers there.
#[test]
fn a_carrier_named_without_a_port_is_found_by_its_dns_srv_records() {
    let ns = Netns::new();
    ns.use_nameserver("10.99.0.4");
    let mut dns = ns
        .command("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            "--bind-interfaces",
            "--listen-address=10.99.0.4",
            "--srv-host=_sip._udp.carrier.test,sbc1.carrier.test,5080,10,0",
            "--srv-host=_sip._udp.carrier.test,sbc2.carrier.test,5080,20,0",
            "--host-record=sbc1.carrier.test,10.99.0.5",
            "--host-record=sbc2.carrier.test,10.99.0.6",
            "--host-record=carrier.test,10.99.0.6",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dnsmasq (apt-get install dnsmasq-base)");
    std::thread::sleep(Duration::from_millis(300));
    let dir = TempDir::new("trunk-srv");
    let trunks = trunks_file(&dir);
    let text = std::fs::read_to_string(&trunks).unwrap();
    std::fs::write(
        &trunks,
        text.replace("sip:10.99.0.5:5080", "sip:carrier.test"),
    )
    .unwrap();
    let server = registers_with_the_carrier(&ns, &trunks);
    let _ = dns.kill();
    let _ = dns.wait();
    assert!(
        server.log().contains("carrier found by DNS SRV"),
        "{}",
        server.log()
    );
}

/// The server started in `ns` with `trunks` registers with the SIPp registrar at
/// 10.99.0.5:5080 through its digest challenge and refreshes (`carrier_registrar.xml`).
fn registers_with_the_carrier(ns: &Netns, trunks: &str) -> Server {
    let (server, out) = std::thread::scope(|scope| {
        let carrier = scope.spawn(|| {
            let registrar = scenario("carrier_registrar.xml");
            let args = [
                "-sf",
                &registrar,
                "-i",
                "10.99.0.5",
                "-p",
                "5080",
                "-m",
                "1",
            ];
            sipp(Some(ns), &args)
        });
        // SIPp must listen before the server's first REGISTER.
        std::thread::sleep(Duration::from_millis(500));
        let server = Server::start(Some(ns), &["--trunks", trunks]);
        let registered = wait_until(Duration::from_secs(8), || {
            server.metric(Some(ns), "amtsleitung_trunks_registered") == 1
        });
        assert!(registered, "the trunk did not register\n{}", server.log());
        (server, carrier.join().unwrap())
    });
    assert!(
        out.status.success(),
        "the carrier did not see an authenticated REGISTER and its refresh\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let status = server.http_get(Some(ns), "/trunks");
    assert!(
        status.contains("\"name\":\"carrier\"") && status.contains("\"state\":\"registered\""),
        "{status}"
    );
    server
}

#[test]
fn a_did_from_the_carrier_in_national_form_rings_the_users_phone() {
    let ns = Netns::new();
    let dir = TempDir::new("trunk-did");
    let trunks = trunks_file(&dir);
    let plans = did_plans();
    let data = TempDir::new("trunk-did-data");
    add_user(data.path(), "101", "geheim123");
    let server = server_with_trunks(&ns, &trunks, &plans, data);
    let phone = Baresip::new("10.99.0.2", 880, "PCMU", 8000).registering("101", "geheim123");
    // The carrier's gateway calls the DID as German carriers often deliver it: national form.
    let caller = Baresip::new("10.99.0.5", 440, "PCMU", 8000);
    let (outputs, caller_out) = with_registered_phones(&server, &ns, &[(&phone, &ns)], || {
        caller.call(&ns, "sip:071112345101@10.99.0.1", 7)
    });
    assert_both_hear(
        &phone,
        &caller,
        &server,
        &format!("{caller_out}\n{outputs:?}"),
    );
    let calls = call_records(&server, 1);
    let [call] = calls.as_slice() else {
        panic!("one call record expected: {calls:#?}\n{}", server.log());
    };
    assert_eq!(call.callee, "+4971112345101", "{call:#?}");
    assert!(call.answered, "{call:#?}");
}

#[test]
fn a_staff_call_out_goes_through_the_carrier_authenticated_with_the_users_own_number() {
    let ns = Netns::new();
    let caller = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    // 0711 987654: a local number, written as the user keys it.
    let (server, carrier_out, caller_out) = staff_call_through_carrier(
        &ns,
        "trunk-out",
        &scenario("carrier_uas_auth.xml"),
        &caller,
        "sip:0711987654@10.99.0.1",
        &[],
    );
    assert_sipp_ok(&carrier_out, &server, "the carrier");
    // The carrier echoes what it gets: the caller hears its own tone through both legs.
    assert_own_tone_back(&caller, &server, "the carrier", &caller_out);
}

/// `*31#` before a number withholds the caller's number for that call (the German CLIR
/// habit): the carrier sees an anonymous From with `Privacy: id` and our number in
/// P-Asserted-Identity, and is offered A-law only, the trunk's `codecs`; the call still
/// talks both ways (the PCMU phone transcoded to the carrier's A-law).
#[test]
fn a_call_out_with_the_number_withheld_is_anonymous_to_the_called_party_but_not_to_the_carrier() {
    let ns = Netns::new();
    let caller = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let dir = TempDir::new("trunk-withheld");
    let trunks = trunks_file(&dir);
    let alaw = std::fs::read_to_string(&trunks)
        .unwrap()
        .replace("max-calls = 10", "max-calls = 10\ncodecs = [\"pcma\"]");
    std::fs::write(&trunks, alaw).unwrap();
    let plans = plans_with(
        "trunk-withheld-plans",
        "[[rule]]\nname = \"number withheld\"\nmatch = \"/^\\\\*31#(0\\\\d+)$/\"\nactions = [ { dial = { trunk = \"carrier\", number = \"${1}\", privacy = true } } ]\n",
    );
    let data = TempDir::new("trunk-withheld-data");
    add_user(data.path(), "101", "geheim123");
    let carrier = scenario("carrier_withheld.xml");
    let server_setup = (trunks.as_str(), &plans, data);
    let (server, carrier_out, caller_out) =
        with_registered_carrier(&ns, &carrier, "2", server_setup, |_| {
            // Phones escape the # they were keyed (RFC 3261 §19.1.2).
            caller.call(&ns, "sip:*31%230711987654@10.99.0.1", 6)
        });
    assert_sipp_ok(&carrier_out, &server, "the carrier");
    assert_own_tone_back(&caller, &server, "the carrier", &caller_out);
}

/// A staff phone (user 101 at 10.99.0.2, 440 Hz, with the call classes `classes` or the
/// default set) dials `uri` while the SIPp carrier at 10.99.0.5 runs `scenario_name` (the
/// trunk's REGISTER and one call, echoing RTP); returns the server, SIPp's result and the
/// phone's output.
fn staff_call_through_carrier(
    ns: &Netns,
    label: &str,
    carrier: &str,
    caller: &Baresip,
    uri: &str,
    user_settings: &[&[&str]],
) -> (Server, std::process::Output, String) {
    let dir = TempDir::new(label);
    let trunks = trunks_file(&dir);
    let plans = did_plans();
    let data = TempDir::new(label);
    add_user(data.path(), "101", "geheim123");
    for setting in user_settings {
        user_cli(data.path(), setting);
    }
    with_registered_carrier(ns, carrier, "2", (&trunks, &plans, data), |_| {
        caller.call(ns, uri, 6)
    })
}

#[test]
fn an_emergency_call_from_an_internal_only_user_goes_out_on_the_emergency_trunk_with_the_location_number()
 {
    let ns = Netns::new();
    // The plan has no rule for 112 (the check would refuse one): the call never asks it.
    // 101 may call nothing outside: emergency calls go out all the same.
    let caller = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let (server, carrier_out, caller_out) = staff_call_through_carrier(
        &ns,
        "trunk-112",
        &scenario("carrier_emergency.xml"),
        &caller,
        "sip:112@10.99.0.1",
        &[&["calls", "101", "internal"]],
    );
    assert_sipp_ok(&carrier_out, &server, "the emergency gateway");
    assert_own_tone_back(&caller, &server, "the emergency gateway", &caller_out);
}

#[test]
fn a_rule_that_sets_the_caller_id_presents_the_departments_number_and_name_to_the_carrier() {
    let ns = Netns::new();
    // The social office's line: 8 + the number presents extension 250 ("Sozialamt") instead
    // of the caller's own 101.
    let dir = TempDir::new("trunk-set-scenario");
    let carrier = dir.path().join("carrier_department.xml");
    let text = std::fs::read_to_string(scenario("carrier_uas_auth.xml")).unwrap();
    let own = r#"From: [^\r\n]*&lt;sip:\+4971112345101@"#;
    assert!(text.contains(own));
    let text = text
        .replace(own, r#"From: "Sozialamt" &lt;sip:\+4971112345250@"#)
        .replace(r"\+4971112345101@", r"\+4971112345250@");
    std::fs::write(&carrier, text).unwrap();
    let caller = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let (server, carrier_out, caller_out) = staff_call_through_carrier(
        &ns,
        "trunk-set",
        carrier.to_str().unwrap(),
        &caller,
        "sip:80711987654@10.99.0.1",
        &[],
    );
    assert_sipp_ok(&carrier_out, &server, "the carrier");
    assert_own_tone_back(&caller, &server, "the carrier", &caller_out);
}

#[test]
fn an_emergency_call_from_a_home_office_phone_presents_the_users_own_location_number() {
    let ns = Netns::new();
    // 101's phone at home (10.99.0.2 stands for the VPN address of the home office); the
    // emergency gateway checks for the home's number where the trunk's stood.
    let dir = TempDir::new("trunk-112-home-scenario");
    let gateway = dir.path().join("carrier_emergency_home.xml");
    let text = std::fs::read_to_string(scenario("carrier_emergency.xml")).unwrap();
    assert!(text.contains(r"\+4971112345000@"));
    std::fs::write(
        &gateway,
        text.replace(r"\+4971112345000@", r"\+49703147110@"),
    )
    .unwrap();
    let caller = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let (server, carrier_out, caller_out) = staff_call_through_carrier(
        &ns,
        "trunk-112-home",
        gateway.to_str().unwrap(),
        &caller,
        "sip:112@10.99.0.1",
        &[&[
            "location",
            "101",
            "+49 7031 4711-0",
            "--network",
            "10.99.0.2/32",
        ]],
    );
    assert_sipp_ok(&carrier_out, &server, "the emergency gateway");
    assert_own_tone_back(&caller, &server, "the emergency gateway", &caller_out);
}

#[test]
fn dialplan_check_refuses_a_rule_that_would_take_112_with_its_place() {
    let plans = plans_with(
        "trunk-112-plan",
        "[[rule]]\nname = \"front desk\"\nmatch = \"112\"\nactions = [\"echo\"]\n",
    );
    let out = support::amtsleitung()
        .args(["dialplan", "check", plans.path().to_str().unwrap()])
        .arg("--sounds")
        .arg(support::repo().join("sounds"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            "extra.toml:3:9: error: rule \"front desk\" matches emergency number 112: emergency calls always go out on the emergency trunk, before any rule"
        ),
        "{said}"
    );
}

/// The server in `ns` with the trunk `first` (a `[[trunk]]` named "carrier", its keys last)
/// failing over to "backup", an ip trunk at 10.99.0.6; user 101's phone at 10.99.0.2
/// (440 Hz) to call out.
fn with_a_backup_trunk(ns: &Netns, label: &str, first: &str) -> (Server, Baresip) {
    let dir = TempDir::new(label);
    let trunks = dir.path().join("trunks.toml");
    std::fs::write(
        &trunks,
        format!(
            "{NUMBERING}{first}failover = \"backup\"\n\n[[trunk]]\nname = \"backup\"\nmode = \"ip\"\nproxy = \"sip:10.99.0.6:5080\"\n\
             allowed-sources = [\"10.99.0.6/32\"]\nmax-calls = 10\noptions-interval = 0\n"
        ),
    )
    .unwrap();
    let plans = did_plans();
    let data = TempDir::new(&format!("{label}-data"));
    add_user(data.path(), "101", "geheim123");
    let server = server_with_trunks(ns, trunks.to_str().unwrap(), &plans, data);
    let caller = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    (server, caller)
}

#[test]
fn with_the_first_carrier_gone_a_call_out_goes_through_the_failover_trunk() {
    let ns = Netns::new();
    // Nothing answers at 10.99.0.5: the first carrier is gone, its trunk never registers.
    let (server, caller) = with_a_backup_trunk(
        &ns,
        "trunk-failover",
        "[[trunk]]\nname = \"carrier\"\nmode = \"register\"\nregistrar = \"sip:10.99.0.5:5080\"\n\
         username = \"4971112345\"\npassword = \"trunkgeheim\"\nmax-calls = 10\nemergency = true\n",
    );
    let backup = scenario("uas_pcma_echo.xml");
    let (backup_out, caller_out) = std::thread::scope(|scope| {
        let backup_run = scope.spawn(|| echoing_carrier(&ns, &backup, "10.99.0.6", "1"));
        std::thread::sleep(Duration::from_millis(500));
        let caller_out = caller.call(&ns, "sip:0711987654@10.99.0.1", 6);
        (backup_run.join().unwrap(), caller_out)
    });
    assert_sipp_ok(&backup_out, &server, "the backup carrier");
    assert_own_tone_back(&caller, &server, "the backup trunk", &caller_out);
    let status = server.http_get(Some(&ns), "/trunks");
    assert!(!status.contains("\"state\":\"registered\""), "{status}");
}

/// A carrier whose SBC silently stopped answering (no keep-alive to notice it) costs the
/// caller the trunk's `response-timeout`, not SIP's 32 s: the call then fails over and talks.
#[test]
fn a_call_out_the_first_carrier_never_answers_fails_over_after_the_response_timeout() {
    let ns = Netns::new();
    // Nothing listens at 10.99.0.5, and options-interval = 0 keeps the trunk "reachable".
    let (server, caller) = with_a_backup_trunk(
        &ns,
        "trunk-silent",
        &format!("{}response-timeout = 2\n", ip_trunk("10.99.0.5")),
    );
    let backup = scenario("uas_pcma_echo.xml");
    let (backup_out, caller_out) = std::thread::scope(|scope| {
        let backup_run = scope.spawn(|| echoing_carrier(&ns, &backup, "10.99.0.6", "1"));
        std::thread::sleep(Duration::from_millis(500));
        let caller_out = caller.call(&ns, "sip:0711987654@10.99.0.1", 8);
        (backup_run.join().unwrap(), caller_out)
    });
    assert_sipp_ok(&backup_out, &server, "the backup carrier");
    assert_own_tone_back(&caller, &server, "the backup trunk", &caller_out);
    let log = server.log();
    assert!(
        log.contains("no response to our INVITE; giving up"),
        "{log}"
    );
}

/// A carrier that refuses the INVITE with 503 (an overloaded SBC) is failed over at once:
/// the call goes out again through the failover trunk and talks.
#[test]
fn a_call_out_refused_with_503_by_the_first_carrier_goes_through_the_failover_trunk() {
    let ns = Netns::new();
    let (server, caller) = with_a_backup_trunk(&ns, "trunk-503", &ip_trunk("10.99.0.5"));
    let broken = scenario("carrier_503.xml");
    let backup = scenario("uas_pcma_echo.xml");
    let (broken_out, backup_out, caller_out) = std::thread::scope(|scope| {
        let broken_run = scope.spawn(|| echoing_carrier(&ns, &broken, "10.99.0.5", "1"));
        let backup_run = scope.spawn(|| echoing_carrier(&ns, &backup, "10.99.0.6", "1"));
        std::thread::sleep(Duration::from_millis(500));
        let caller_out = caller.call(&ns, "sip:0711987654@10.99.0.1", 6);
        (
            broken_run.join().unwrap(),
            backup_run.join().unwrap(),
            caller_out,
        )
    });
    assert_sipp_ok(&broken_out, &server, "the carrier answering 503");
    assert_sipp_ok(&backup_out, &server, "the backup carrier");
    assert_own_tone_back(&caller, &server, "the backup trunk", &caller_out);
    assert!(
        server.log().contains("trying the failover trunk"),
        "{}",
        server.log()
    );
}

/// The site's numbering, as every trunks file here starts.
const NUMBERING: &str = "[numbering]\narea-code = \"711\"\n\n";

/// The ip trunk `carrier` sending calls to `proxy` (no keep-alive).
fn ip_trunk(proxy: &str) -> String {
    format!(
        "[[trunk]]\nname = \"carrier\"\nmode = \"ip\"\n\
         proxy = \"sip:{proxy}:5080\"\nallowed-sources = [\"{proxy}/32\"]\nmax-calls = 10\n\
         options-interval = 0\nemergency = true\n"
    )
}

/// A trunks file for `trunks_file_reloads…`: the trunk `carrier` sends calls to `proxy`.
fn ip_trunk_to(proxy: &str) -> String {
    format!("{NUMBERING}{}", ip_trunk(proxy))
}

/// The trunks file is reloaded while a call runs: the call goes on unhurt, the next call
/// takes the new carrier, and a broken file is refused with file:line while the trunks in
/// force stay.
#[test]
fn trunks_file_reloads_without_dropping_the_running_call_and_refuses_a_broken_one() {
    let ns = Netns::new();
    let dir = TempDir::new("trunk-reload");
    let trunks = dir.path().join("trunks.toml");
    std::fs::write(&trunks, ip_trunk_to("10.99.0.5")).unwrap();
    let plans = did_plans();
    let data = TempDir::new("trunk-reload-data");
    add_user(data.path(), "101", "geheim123");
    let server = server_with_trunks(&ns, trunks.to_str().unwrap(), &plans, data);
    let first = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let echo = scenario("uas_pcma_echo.xml");
    let (old_out, first_out) = std::thread::scope(|scope| {
        let old_run = scope.spawn(|| echoing_carrier(&ns, &echo, "10.99.0.5", "1"));
        std::thread::sleep(Duration::from_millis(500));
        let call = scope.spawn(|| first.call(&ns, "sip:0711987654@10.99.0.1", 9));
        // Mid-call, the carrier moves to 10.99.0.6.
        std::thread::sleep(Duration::from_secs(4));
        std::fs::write(&trunks, ip_trunk_to("10.99.0.6")).unwrap();
        let reloaded = wait_until(Duration::from_secs(5), || {
            server.metric(Some(&ns), "amtsleitung_trunks_reloads_total") == 1
        });
        assert!(
            reloaded,
            "the trunks file was not reloaded\n{}",
            server.log()
        );
        (old_run.join().unwrap(), call.join().unwrap())
    });
    assert_sipp_ok(&old_out, &server, "the first carrier");
    let (samples, rate) = read_wav(&first.heard().expect("the first caller recorded"));
    let after_reload = tone_share(&samples, rate, 440.0, 6.0);
    assert!(
        after_reload > 0.5,
        "the running call lost its audio after the reload: {after_reload:.2}\n{first_out}\n{}",
        server.log()
    );

    let second = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let (new_out, second_out) = std::thread::scope(|scope| {
        let new_run = scope.spawn(|| echoing_carrier(&ns, &echo, "10.99.0.6", "1"));
        std::thread::sleep(Duration::from_millis(500));
        let out = second.call(&ns, "sip:0711987654@10.99.0.1", 6);
        (new_run.join().unwrap(), out)
    });
    assert_sipp_ok(&new_out, &server, "the new carrier");
    assert_own_tone_back(&second, &server, "the new carrier", &second_out);

    // A typo: refused with its place, the trunk in force stays.
    std::fs::write(
        &trunks,
        ip_trunk_to("10.99.0.7").replace("max-calls", "max-cals"),
    )
    .unwrap();
    let refused = wait_until(Duration::from_secs(5), || {
        server.metric(Some(&ns), "amtsleitung_trunks_reloads_refused_total") == 1
    });
    assert!(refused, "the broken file was not refused\n{}", server.log());
    let log = server.log();
    assert!(
        log.contains("trunks.toml:9:1") && log.contains("max-cals"),
        "the refusal names the place\n{log}"
    );
    let status = server.http_get(Some(&ns), "/trunks");
    assert!(status.contains("\"carrier\""), "{status}");
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_trunks_reloads_total"),
        1,
        "{log}"
    );
}

#[test]
fn a_premium_number_is_refused_with_an_announcement_and_403_and_never_dialled() {
    // 0900: premium rate, barred by default (toll fraud dials these).
    assert_refused_as_barred("trunk-barred", &[], "sip:09001234567@10.99.0.1");
}

#[test]
fn a_user_allowed_internal_calls_only_is_refused_a_local_number_with_an_announcement_and_403() {
    // 0711 987654 is local, which the default set allows: a default user's call to it goes
    // out through the same plan (a_staff_call_out_goes_through_the_carrier_...); this user's
    // own classes bar it.
    assert_refused_as_barred(
        "trunk-user-classes",
        &["--calls", "internal"],
        "sip:0711987654@10.99.0.1",
    );
}

/// Acceptance 4: a user with class "national" dialling abroad (00…).
#[test]
fn a_national_user_dialling_abroad_is_refused_with_an_announcement_and_403() {
    assert_refused_as_barred(
        "trunk-abroad",
        &["--calls", "internal,local,national"],
        "sip:0033123456789@10.99.0.1",
    );
}

/// User 101 (added with `add_flags`) dials `uri` through the DID plan: the call is refused
/// with the `number-barred` announcement as early media and 403, and nothing is rung.
fn assert_refused_as_barred(label: &str, add_flags: &[&str], uri: &str) {
    let ns = Netns::new();
    let dir = TempDir::new(label);
    let trunks = trunks_file(&dir);
    let plans = did_plans();
    let data = TempDir::new(&format!("{label}-data"));
    let mut add = vec![
        "add",
        "101",
        "--name",
        "Sachbearbeitung 101",
        "--password",
        "geheim123",
    ];
    add.extend_from_slice(add_flags);
    user_cli(data.path(), &add);
    let server = server_with_trunks(&ns, &trunks, &plans, data);
    let caller = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let out = caller.call(&ns, uri, 8);
    let calls = call_records(&server, 1);
    let [call] = calls.as_slice() else {
        panic!("one call record expected: {calls:#?}\n{}", server.log());
    };
    assert_eq!(call.final_status, 403, "{call:#?}\n{out}\n{}", server.log());
    assert!(!call.answered, "{call:#?}");
    assert_eq!(call.end_reason, "refused: number barred", "{call:#?}");
    assert_eq!(call.contacts_rung, 0, "{call:#?}");
    // The announcement came as early media: speech, not silence, and not the caller's tone.
    let heard = caller
        .heard()
        .unwrap_or_else(|| panic!("nothing recorded\n{out}"));
    let (samples, rate) = read_wav(&heard);
    let level = rms(&samples, rate, 0.0);
    assert!(
        level > 0.01,
        "the refusal was not heard (rms {level:.4})\n{out}\n{}",
        server.log()
    );
    assert!(heard_share(&caller, 440.0, "the caller", &server) < 0.2);
}

/// Acceptance: the concurrent limit refuses the call over it. The carrier's trunk carries one
/// call (`max-calls = 1`); while 101 talks through it, 102's call out is refused with 503 and
/// never reaches the carrier (SIPp would fail on an INVITE it does not expect).
#[test]
fn with_the_trunks_one_line_taken_a_second_call_out_gets_503_and_never_reaches_the_carrier() {
    let ns = Netns::new();
    let dir = TempDir::new("trunk-full");
    let trunks = trunks_file(&dir);
    let one_line = std::fs::read_to_string(&trunks)
        .unwrap()
        .replace("max-calls = 10", "max-calls = 1");
    std::fs::write(&trunks, one_line).unwrap();
    let plans = did_plans();
    let data = TempDir::new("trunk-full-data");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let first = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let second = Baresip::new("10.99.0.3", 660, "PCMU", 8000).registering("102", "kollege77");
    let carrier = scenario("carrier_uas_auth.xml");
    let server_setup = (trunks.as_str(), &plans, data);
    let (server, carrier_out, (first_out, second_out)) =
        with_registered_carrier(&ns, &carrier, "2", server_setup, |_| {
            std::thread::scope(|scope| {
                let first_run = scope.spawn(|| first.call(&ns, "sip:0711987654@10.99.0.1", 8));
                std::thread::sleep(Duration::from_secs(3));
                let second_out = second.call(&ns, "sip:0711987655@10.99.0.1", 3);
                (first_run.join().unwrap(), second_out)
            })
        });
    assert_sipp_ok(&carrier_out, &server, "the carrier");
    assert_own_tone_back(&first, &server, "the carrier", &first_out);
    let calls = call_records(&server, 2);
    let refused = calls
        .iter()
        .find(|c| c.caller == "102")
        .unwrap_or_else(|| panic!("no call of 102: {calls:#?}\n{second_out}"));
    assert_eq!(
        (
            refused.final_status,
            refused.end_reason.as_str(),
            refused.contacts_rung
        ),
        (503, "refused: all outside lines busy", 0),
        "{refused:#?}\n{second_out}\n{}",
        server.log()
    );
}

/// Acceptance: another DID reaches conference room 1234 via the lobby. The carrier calls
/// the town hall's conference line (DID 800), keys room and PIN, and is heard in the room
/// by a listener who joined on the staff line.
#[test]
fn a_did_from_the_carrier_reaches_room_1234_through_the_lobby() {
    let ns = Netns::new();
    let dir = TempDir::new("trunk-lobby");
    let trunks = trunks_file(&dir);
    let plans = plans_with(
        "trunk-lobby-plans",
        "[[rule]]\nname = \"conference line\"\nmatch = \"+4971112345800\"\ntrunk = \"carrier\"\nactions = [ { answer = {} }, { lobby = {} } ]\n\n\
         [[rule]]\nname = \"staff line into room 1234\"\nmatch = \"91234\"\npublic = true\nactions = [ { conference = { room = \"1234\", pin = false } } ]\n",
    );
    let data = TempDir::new("trunk-lobby-data");
    create_room(data.path(), &["1234", "--pin", "4321"]);
    let server = server_with_trunks(&ns, &trunks, &plans, data);
    let lobby = scenario_with_tone(&dir, "lobby_join.xml", 440);
    let listener = Baresip::new("10.99.0.3", 1000, "PCMU", 8000);
    let (listener_out, carrier_out) = std::thread::scope(|scope| {
        let listening = scope.spawn(|| listener.call(&ns, "sip:91234@10.99.0.1", 24));
        std::thread::sleep(Duration::from_secs(1));
        // The carrier delivers the DID in national form, from its own address.
        let args = [
            "-sf",
            &lobby,
            "-s",
            "071112345800",
            "-i",
            "10.99.0.5",
            "-p",
            "5070",
            "-mi",
            "10.99.0.5",
            "-mp",
            "6000",
            "-m",
            "1",
            "-d",
            "8000",
            "10.99.0.1:5060",
        ];
        let carrier_out = sipp(Some(&ns), &args);
        (listening.join().unwrap(), carrier_out)
    });
    assert_sipp_ok(&carrier_out, &server, "the carrier's lobby call");
    let heard = listener
        .heard()
        .unwrap_or_else(|| panic!("the listener recorded nothing\n{listener_out}"));
    let (samples, rate) = read_wav(&heard);
    // Lobby: ~4 s of prompts and digits for the room, ~3 s for the PIN, then 8 s of tone.
    let share = tone_share(&samples, rate, 440.0, 14.0);
    assert!(
        share > 0.3,
        "the carrier's caller was not heard in room 1234 ({share:.2})\n{listener_out}\n{}",
        server.log()
    );
}

/// Acceptance: an INVITE to a DID from an address that is not the carrier's is refused:
/// without the trunk the DID rule does not apply, and the caller is only challenged for a
/// password (407), in national and in E.164 form alike; nothing rings.
#[test]
fn a_did_called_from_an_address_that_is_not_the_carriers_is_refused() {
    let ns = Netns::new();
    let dir = TempDir::new("trunk-foreign");
    let trunks = trunks_file(&dir);
    let plans = did_plans();
    let data = TempDir::new("trunk-foreign-data");
    add_user(data.path(), "101", "geheim123");
    let server = server_with_trunks(&ns, &trunks, &plans, data);
    let challenged = auth_invite_scenario(&dir, "did.xml", None);
    for (number, port) in [("071112345101", "5070"), ("+4971112345101", "5071")] {
        let out = sipp(
            Some(&ns),
            &sipp_call_args(&challenged, "10.99.0.3", port, &["-s", number]),
        );
        assert_sipp_ok(&out, &server, number);
    }
    let log = server.log();
    assert!(!log.contains("dial: ringing"), "{log}");
}

/// Acceptance: a forwarded call out carries Diversion. An outside caller (0301234567, as the
/// carrier delivers it) calls DID 102, which is forwarded to 0711 987654 through the same
/// carrier: the carrier sees Diversion with the DID, the caller's own number in From ("CLIP
/// no screening") and the DID in P-Asserted-Identity, and the caller hears the far end.
#[test]
fn a_call_forwarded_out_through_the_carrier_carries_diversion_and_the_callers_own_number() {
    let ns = Netns::new();
    let dir = TempDir::new("trunk-forward");
    let trunks = trunks_file(&dir);
    let clip = std::fs::read_to_string(&trunks)
        .unwrap()
        .replace("pai = true", "pai = true\nclip-no-screening = true");
    std::fs::write(&trunks, clip).unwrap();
    let plans = plans_with(
        "trunk-forward-plans",
        "[[rule]]\nname = \"102 is away\"\nmatch = \"+4971112345102\"\ntrunk = \"carrier\"\nactions = [ { forward = { trunk = \"carrier\", number = \"0711987654\" } } ]\n",
    );
    let caller = Baresip::new("10.99.0.5", 440, "PCMU", 8000);
    let accounts = caller.dir.path().join("accounts");
    let account = std::fs::read_to_string(&accounts).unwrap();
    std::fs::write(&accounts, account.replace("sip:tester@", "sip:0301234567@")).unwrap();
    let carrier = scenario("carrier_forwarded.xml");
    let server_setup = (trunks.as_str(), &plans, TempDir::new("trunk-forward-data"));
    let (server, carrier_out, caller_out) =
        with_registered_carrier(&ns, &carrier, "2", server_setup, |_| {
            caller.call(&ns, "sip:071112345102@10.99.0.1", 6)
        });
    assert_sipp_ok(&carrier_out, &server, "the carrier");
    assert_own_tone_back(&caller, &server, "the carrier", &caller_out);
}

/// Keep-alive: every trunk's carrier gets OPTIONS at its `options-interval`; one that
/// answers stays reachable, one that does not is shown unreachable in `GET /trunks` and
/// `/metrics` (and calls out pass it over for its failover).
#[test]
fn a_carrier_that_leaves_keep_alive_options_unanswered_is_shown_unreachable() {
    let ns = Netns::new();
    let dir = TempDir::new("trunk-keepalive");
    let trunks = dir.path().join("trunks.toml");
    std::fs::write(
        &trunks,
        "[numbering]\narea-code = \"711\"\n\n\
         [[trunk]]\nname = \"alive\"\nmode = \"ip\"\nallowed-sources = [\"10.99.0.5\"]\n\
         proxy = \"sip:10.99.0.5:5080\"\noptions-interval = 1\nmax-calls = 2\nemergency = true\n\
         failover = \"dead\"\n\n\
         [[trunk]]\nname = \"dead\"\nmode = \"ip\"\nallowed-sources = [\"10.99.0.6\"]\n\
         proxy = \"sip:10.99.0.6:5080\"\noptions-interval = 1\nmax-calls = 2\n",
    )
    .unwrap();
    let carrier = scenario("carrier_options.xml");
    let (server, carrier_out) = std::thread::scope(|scope| {
        let carrier_run = scope.spawn(|| {
            let args = ["-sf", &carrier, "-i", "10.99.0.5", "-p", "5080", "-m", "3"];
            sipp(Some(&ns), &args)
        });
        std::thread::sleep(Duration::from_millis(500));
        let server = Server::start(Some(&ns), &["--trunks", trunks.to_str().unwrap()]);
        let noticed = wait_until(Duration::from_secs(12), || {
            server.metric(Some(&ns), "amtsleitung_trunks_unreachable") == 1
        });
        assert!(
            noticed,
            "the dead carrier was not noticed\n{}",
            server.log()
        );
        (server, carrier_run.join().unwrap())
    });
    assert_sipp_ok(&carrier_out, &server, "the carrier answering OPTIONS");
    let status = server.http_get(Some(&ns), "/trunks");
    assert!(
        status.contains("\"name\":\"alive\"") && status.contains("\"reachable\":true"),
        "{status}"
    );
    assert!(status.contains("\"reachable\":false"), "{status}");
    assert!(
        server
            .log()
            .contains("carrier does not answer OPTIONS: unreachable"),
        "{}",
        server.log()
    );
}
