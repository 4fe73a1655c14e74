//! What staff expect of their phone: call forwarding set with the German feature codes,
//! forwarding loops, do not disturb and follow-me from the office phone to the home phone
//! behind a home router. Real baresip phones registered as users; audio proven from what
//! each recorded; each test in a network namespace of its own.

mod support;

use std::time::Duration;

use support::{
    Baresip, HomeOffice, Netns, Server, TempDir, add_user, assert_both_hear, call_records,
    heard_share, read_wav, rms, user_cli, wait_until, with_registered_phones,
};

/// Whether `client` heard a prompt: speech energy in its recording, not silence.
fn heard_a_prompt(client: &Baresip) -> bool {
    client.heard().is_some_and(|path| {
        let (samples, rate) = read_wav(&path);
        rms(&samples, rate, 0.3) > 0.01
    })
}

/// A phone registered as `extension` keys `code`; returns its output.
fn key_in(ns: &Netns, phone: &Baresip, code: &str) -> String {
    // Phones send `#` percent-encoded in the Request-URI, as baresip does here.
    let uri = format!("sip:{}@10.99.0.1", code.replace('#', "%23"));
    phone.call(ns, &uri, 5)
}

/// `amtsleitung calls list` as an admin runs it against the server's data directory.
fn calls_list(data: &std::path::Path) -> String {
    let out = support::amtsleitung()
        .args(["calls", "list", "--since", "2000-01-01", "--data-dir"])
        .arg(data)
        .output()
        .expect("amtsleitung calls list");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn forwarding_of(data: &std::path::Path, extension: &str) -> String {
    let shown = user_cli(data, &["show", extension]);
    shown
        .lines()
        .find(|l| l.starts_with("forwarding"))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn star_21_forwards_a_users_calls_hash_21_ends_it_and_a_forwarding_loop_ends_in_one_prompt() {
    let ns = Netns::new();
    let data = TempDir::new("features-forward");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    add_user(data.path(), "103", "anrufer99");
    let server = Server::start_with_data(Some(&ns), &[], data);
    let data = server.data_dir().to_owned();

    // 101 keys *21*102# on their phone: a prompt confirms, and the setting is stored.
    let phone_101 = Baresip::new("10.99.0.2", 660, "PCMU", 8000).registering("101", "geheim123");
    let out = key_in(&ns, &phone_101, "*21*102#");
    assert!(
        heard_a_prompt(&phone_101),
        "no confirmation heard\n{out}\n{}",
        server.log()
    );
    assert!(
        wait_until(Duration::from_secs(3), || forwarding_of(&data, "101")
            .contains("always to 102")),
        "{}\n{}",
        forwarding_of(&data, "101"),
        server.log()
    );

    // A call to 101 reaches 102; 101's phone, registered and answering by itself, is not
    // rung (the caller would hear its 660 Hz).
    let phone_101 = Baresip::new("10.99.0.2", 660, "PCMU", 8000).registering("101", "geheim123");
    let phone_102 = Baresip::new("10.99.0.4", 880, "PCMU", 8000).registering("102", "kollege77");
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("103", "anrufer99");
    let (outputs, caller_out) = with_registered_phones(
        &server,
        &ns,
        &[(&phone_101, &ns), (&phone_102, &ns)],
        || caller.call(&ns, "sip:101@10.99.0.1", 6),
    );
    let outputs = format!("{caller_out}\n{outputs:?}");
    assert_both_hear(&phone_102, &caller, &server, &outputs);
    assert!(
        phone_101.heard().is_none(),
        "101's phone took a call\n{outputs}"
    );
    assert!(heard_share(&caller, 660.0, "the caller", &server) < 0.1);
    // The call list an admin reads says who forwarded the call, and who set it up by phone.
    let list = calls_list(&data);
    assert!(
        list.contains("forwarded by 101 (always) to 102"),
        "{list}\n{}",
        server.log()
    );
    assert!(
        list.contains("always forwarding set to 102 by phone"),
        "{list}"
    );

    // #21# ends it: a prompt confirms, the setting is gone.
    let phone_101 = Baresip::new("10.99.0.2", 660, "PCMU", 8000).registering("101", "geheim123");
    let out = key_in(&ns, &phone_101, "#21#");
    assert!(heard_a_prompt(&phone_101), "no confirmation heard\n{out}");
    assert!(
        wait_until(Duration::from_secs(3), || forwarding_of(&data, "101")
            .ends_with("none")),
        "{}",
        forwarding_of(&data, "101")
    );

    // 101 forwards to 102 and 102 to 101: the caller hears why, the call ends with 482,
    // and no phone is rung at all.
    user_cli(&data, &["forward", "101", "always", "102"]);
    user_cli(&data, &["forward", "102", "always", "101"]);
    // The server reads changes made by the CLI within a second.
    std::thread::sleep(Duration::from_secs(2));
    let rung_before = server.log().matches("dial: ringing").count();
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("103", "anrufer99");
    // The prompt plays as early media before the 482; baresip records no early media, so
    // the test sees the refusal and the log, not the prompt's audio.
    // Long enough for the whole prompt before the refusal.
    let out = caller.call(&ns, "sip:101@10.99.0.1", 10);
    assert!(
        out.contains("482"),
        "the caller was not refused\n{out}\n{}",
        server.log()
    );
    let log = server.log();
    assert_eq!(
        log.matches("call forwarding loop; the call ends").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("dial: ringing").count(),
        rung_before,
        "a phone was rung\n{log}"
    );
    let calls = call_records(&server, 3);
    let looped = calls
        .iter()
        .find(|c| c.final_status == 482)
        .unwrap_or_else(|| panic!("no call ended with 482: {calls:#?}\n{log}"));
    assert_eq!(looped.end_reason, "call forwarding loop", "{looped:#?}");
    assert_eq!(
        looped.features,
        [
            "forwarded by 101 (always) to 102",
            "forwarded by 102 (always) to 101"
        ],
        "{looped:#?}"
    );
}

#[test]
fn do_not_disturb_by_star_76_gives_callers_busy_until_keyed_again() {
    let ns = Netns::new();
    let data = TempDir::new("features-dnd");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "103", "anrufer99");
    let server = Server::start_with_data(Some(&ns), &[], data);
    let data = server.data_dir().to_owned();
    let dnd_of = |data: &std::path::Path| {
        user_cli(data, &["show", "101"])
            .lines()
            .find(|l| l.starts_with("do not disturb"))
            .unwrap_or_default()
            .to_owned()
    };

    let phone = Baresip::new("10.99.0.2", 660, "PCMU", 8000).registering("101", "geheim123");
    let out = key_in(&ns, &phone, "*76");
    assert!(heard_a_prompt(&phone), "no confirmation heard\n{out}");
    assert!(
        wait_until(Duration::from_secs(3), || dnd_of(&data).ends_with("on")),
        "{}",
        dnd_of(&data)
    );

    // The phone is registered and would answer, but is not rung: the caller gets busy.
    let phone = Baresip::new("10.99.0.2", 660, "PCMU", 8000).registering("101", "geheim123");
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("103", "anrufer99");
    let (outputs, caller_out) = with_registered_phones(&server, &ns, &[(&phone, &ns)], || {
        caller.call(&ns, "sip:101@10.99.0.1", 4)
    });
    // The shipped staff rule ends unanswered calls with its own `hangup = "unavailable"`.
    assert!(
        caller_out.contains("480") && server.log().contains("dial: do not disturb"),
        "the caller was not turned away by do not disturb\n{caller_out}\n{outputs:?}\n{}",
        server.log()
    );
    assert!(
        phone.heard().is_none(),
        "the phone took a call\n{outputs:?}"
    );

    let phone = Baresip::new("10.99.0.2", 660, "PCMU", 8000).registering("101", "geheim123");
    key_in(&ns, &phone, "*76");
    assert!(
        wait_until(Duration::from_secs(3), || dnd_of(&data).ends_with("off")),
        "{}",
        dnd_of(&data)
    );
}

#[test]
fn follow_me_rings_the_office_phone_then_the_home_phone_behind_the_home_router() {
    let ns = Netns::new();
    let office = HomeOffice::behind_nat(&ns);
    let data = TempDir::new("features-follow-me");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    // The office phone on the office LAN for 5 s, then the home phone, whose REGISTERs come
    // over the VPN from the home router (10.98.0.2).
    user_cli(
        data.path(),
        &[
            "follow-me",
            "101",
            "101@10.99.0.0/24:5",
            "101@10.98.0.0/24:20",
        ],
    );
    let server = Server::start_with_data(Some(&ns), &[], data);
    let office_phone = Baresip::new("10.99.0.2", 660, "PCMU", 8000)
        .registering("101", "geheim123")
        .never_answering();
    let home_phone =
        Baresip::new("192.168.178.20", 880, "PCMU", 8000).registering("101", "geheim123");
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("102", "kollege77");
    let (outputs, caller_out) = with_registered_phones(
        &server,
        &ns,
        &[(&office_phone, &ns), (&home_phone, &office.home)],
        || caller.call(&ns, "sip:101@10.99.0.1", 11),
    );
    let outputs = format!("{caller_out}\n{outputs:?}");
    // The office phone rang first and was cancelled; the home phone answered.
    assert!(
        outputs.contains("Incoming call"),
        "the office phone never rang\n{outputs}"
    );
    assert_both_hear(&home_phone, &caller, &server, &outputs);
    assert!(heard_share(&caller, 660.0, "the caller", &server) < 0.1);
    let log = server.log();
    let office_step = log
        .find("follow-me: ringing user=101 step=1")
        .unwrap_or_else(|| panic!("{log}"));
    let home_step = log
        .find("follow-me: ringing user=101 step=2")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(office_step < home_step, "{log}");
}
