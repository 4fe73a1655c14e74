//! The join page in a real browser: headless Debian Chromium, driven by playwright-core
//! (tests/webrtc/join.js) inside the test's network namespace, opens it over the server's own
//! HTTPS (a test certificate, pinned in the browser), with a fake microphone
//! playing 1000 Hz, joins room 1234 while a baresip phone playing 440 Hz is in it. What each
//! hears is proven from recordings (the phone's, and samples the page received); the page's
//! participant list, talking and mute state, PIN error and the axe-core accessibility check
//! are read from the page itself.
//!
//! Chromium comes from Debian (installed when missing); playwright-core and axe-core from npm
//! into target/join-page-node (pinned, once, no browser download).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::browser::{Browser, assert_accessible, node_modules, unix_time};
use support::{
    Baresip, Netns, Pki, Server, TempDir, create_room, plans_with_trusted_number, read_wav,
    share_between, tone_share, wait_until, write_tone,
};

/// Where the browser finds the server: the server's own HTTPS on the namespace's network,
/// with a certificate for 10.99.0.1 from a throw-away CA ([`WebCertificate`]).
const ORIGIN: &str = "https://10.99.0.1:8443";

/// The test's certificate for [`ORIGIN`], and the pin by which Chromium trusts it: the
/// base64 SHA-256 of its public key (`--ignore-certificate-errors-spki-list`), so the browser
/// accepts this certificate and no other, as it would one from a CA it knows.
struct WebCertificate {
    _pki: Pki,
    cert: PathBuf,
    key: PathBuf,
    spki: String,
}

impl WebCertificate {
    fn new() -> Self {
        let pki = Pki::new();
        let (cert, key) = pki.server_cert("amt-join", 1);
        let cert = pki.path(cert.to_str().unwrap());
        let key = pki.path(key.to_str().unwrap());
        let out = Command::new("bash")
            .arg("-c")
            .arg(
                "openssl x509 -pubkey -noout -in \"$1\" | openssl pkey -pubin -outform der \
                 | openssl dgst -sha256 -binary | base64",
            )
            .arg("spki")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let spki = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Self {
            _pki: pki,
            cert,
            key,
            spki,
        }
    }

    /// The server flags that serve [`ORIGIN`] with this certificate.
    fn flags(&self) -> Vec<String> {
        vec![
            "--https-listen".into(),
            ORIGIN.trim_start_matches("https://").into(),
            "--https-certificate".into(),
            self.cert.display().to_string(),
            "--https-key".into(),
            self.key.display().to_string(),
        ]
    }
}

/// A server in `ns` that serves [`ORIGIN`] with `web`, with room 1234 created with `room`
/// (e.g. a PIN) and `extra` flags.
fn join_server(ns: &Netns, web: &WebCertificate, room: &[&str], extra: &[&str]) -> Server {
    let data = TempDir::new("join-data");
    let mut args = vec!["1234"];
    args.extend_from_slice(room);
    create_room(data.path(), &args);
    let flags = web.flags();
    let mut flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    flags.extend_from_slice(extra);
    Server::start_with_data(Some(ns), &flags, data)
}

/// A scratch directory with the fake microphone's 1000 Hz WAV in it (48 kHz mono, long
/// enough for any of these tests).
fn microphone() -> (TempDir, PathBuf) {
    let dir = TempDir::new("join-browser");
    let wav = dir.path().join("tone1000.wav");
    write_tone(&wav, 1000, 48_000, 40);
    (dir, wav)
}

/// The participant list of a report.
fn participants(report: &Value) -> Vec<Value> {
    report["participants"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn browser_and_phone_hear_each_other_and_the_page_shows_who_talks_and_who_is_muted() {
    node_modules();
    let ns = Netns::new();
    // Room 1234 with PIN 4321; the phone dials the trusted line 91234 into it (baresip keys
    // no DTMF here), the browser enters the PIN.
    let plans = plans_with_trusted_number();
    let web = WebCertificate::new();
    let server = join_server(
        &ns,
        &web,
        &["--pin", "4321"],
        &["--dialplans", plans.path().to_str().unwrap()],
    );
    let (dir, microphone) = microphone();

    let browser = Browser::start(
        &ns,
        "tests/webrtc/join.js",
        serde_json::json!({
            "origin": ORIGIN,
            "spki": web.spki,
            "room": "1234",
            "name": "Erika Mustermann",
            "wrongPin": "0000",
            "pin": "4321",
            "microphone": microphone,
            "audio": true,
            "axe": node_modules().join("axe-core/axe.min.js"),
            "out": dir.path(),
            "locale": "de-DE",
        }),
    );
    let joined = browser.wait_for("joined", Duration::from_secs(60));
    assert!(
        joined.is_some(),
        "the browser did not join: {:#?}\n{}",
        browser.lines(),
        server.log()
    );

    let wrong = browser.step("wrong-pin").expect("wrong PIN step");
    let error = wrong["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Die PIN ist falsch"),
        "the page shows no wrong-PIN message: {wrong:#}"
    );
    assert_eq!(wrong["role"], "alert", "the error is announced: {wrong:#}");
    assert_eq!(
        wrong["focused"], "pin",
        "focus goes back to the PIN: {wrong:#}"
    );
    let page = browser.step("page").unwrap();
    assert_eq!(page["lang"], "de", "{page:#}");
    assert_eq!(page["pinField"], true, "{page:#}");
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_webrtc_sessions{kind=\"page\"}"),
        1
    );

    // The phone is in the room for 20 s while the browser talks, then mutes.
    let phone = Baresip::new("10.99.0.4", 440, "PCMU", 8000);
    let phone_joined = unix_time();
    let phone_log = phone.call(&ns, "sip:91234@10.99.0.1:5060", 20);
    let lines = browser.finish();
    let log = server.log();

    let listed = lines.iter().find(|l| l["step"] == "phone-listed").unwrap();
    assert_eq!(
        listed["ok"], true,
        "the page never listed the phone: {listed:#}\n{log}"
    );
    let list = participants(listed);
    assert!(
        list.iter()
            .any(|p| p["kind"] == "phone"
                && p["text"].as_str().unwrap_or_default().contains("Telefon")),
        "the phone is listed as a phone: {list:#?}"
    );
    assert!(
        list.iter().any(|p| p["you"] == true
            && p["text"]
                .as_str()
                .unwrap_or_default()
                .contains("Erika Mustermann")),
        "the browser user is listed by name: {list:#?}"
    );
    let talking = lines.iter().find(|l| l["step"] == "talking").unwrap();
    assert_eq!(
        talking["ok"], true,
        "the page did not show both talking: {talking:#}\n{log}"
    );
    assert!(
        talking["announced"]
            .as_str()
            .unwrap_or_default()
            .contains("Telefon"),
        "the talking phone is announced: {talking:#}"
    );
    let muted = lines.iter().find(|l| l["step"] == "muted").unwrap();
    assert_eq!(
        muted["ok"], true,
        "the page does not show the user muted: {muted:#}\n{log}"
    );
    assert_eq!(muted["button"], "Stummschaltung aufheben", "{muted:#}");
    let muted_at = muted["mutedAt"].as_f64().unwrap();

    // What the browser received while the phone was in and it was not muted: the phone's
    // 440 Hz, not its own 1000 Hz.
    let received = dir.path().join("received.wav");
    let (samples, rate) = read_wav(&received);
    assert!(
        samples.len() > rate as usize * 4,
        "the page received only {:.1} s",
        samples.len() as f64 / rate as f64
    );
    let browser_440 = share_between(&received, 440.0, 0.5, samples.len() as f64 / rate as f64);
    let browser_1000 = share_between(&received, 1000.0, 0.5, samples.len() as f64 / rate as f64);

    // What the phone heard: the browser's 1000 Hz until it muted, nothing of it after; never
    // its own 440 Hz.
    let heard = phone
        .heard()
        .unwrap_or_else(|| panic!("the phone recorded nothing\n{phone_log}\n{log}"));
    let mute_in_recording = muted_at - phone_joined;
    let phone_1000 = share_between(&heard, 1000.0, 3.0, mute_in_recording - 0.3);
    let phone_440 = share_between(&heard, 440.0, 3.0, mute_in_recording - 0.3);
    let (phone_samples, phone_rate) = read_wav(&heard);
    let after = &phone_samples[((mute_in_recording + 1.0) * phone_rate as f64) as usize
        ..(((mute_in_recording + 4.5) * phone_rate as f64) as usize).min(phone_samples.len())];
    let phone_1000_muted = tone_share(after, phone_rate, 1000.0, 0.0);
    let muted_rms = support::rms(after, phone_rate, 0.0);
    eprintln!(
        "browser hears 440: {browser_440:.2}, 1000: {browser_1000:.2}; phone hears 1000: \
         {phone_1000:.2}, 440: {phone_440:.2}; after mute 1000: {phone_1000_muted:.2} (rms {muted_rms:.0})"
    );
    assert!(
        browser_440 > 0.3,
        "the browser hears the phone only at {browser_440:.2}\n{log}"
    );
    assert!(
        browser_1000 < 0.05,
        "the browser hears itself at {browser_1000:.2}"
    );
    assert!(
        phone_1000 > 0.3,
        "the phone hears the browser only at {phone_1000:.2}\n{log}"
    );
    assert!(phone_440 < 0.05, "the phone hears itself at {phone_440:.2}");
    assert!(
        after.len() > phone_rate as usize * 3,
        "the phone's recording ends too early after the mute"
    );
    assert!(
        phone_1000_muted < 0.05 || muted_rms < 30.0,
        "the phone still hears the muted browser: share {phone_1000_muted:.2}, rms {muted_rms:.0}"
    );
    assert!(log.contains("join-page user muted itself"), "{log}");
    assert_accessible(&lines, &["initial", "wrong-pin", "joined", "talking"]);

    // The page left (DELETE): no session is left.
    assert!(
        wait_until(Duration::from_secs(5), || server
            .metric(Some(&ns), "amtsleitung_webrtc_sessions{kind=\"page\"}")
            == 0),
        "a page session is left:\n{}",
        server.metrics(Some(&ns))
    );
}

#[test]
fn the_page_passes_axe_on_a_phone_screen_says_when_the_microphone_is_refused_and_joins() {
    node_modules();
    let ns = Netns::new();
    let web = WebCertificate::new();
    let server = join_server(&ns, &web, &[], &[]);
    let (_dir, microphone) = microphone();
    let axe = node_modules().join("axe-core/axe.min.js");

    let browser = Browser::start(
        &ns,
        "tests/webrtc/join.js",
        serde_json::json!({
            "origin": ORIGIN,
            "spki": web.spki,
            "room": "1234",
            "unknownRoom": "9999",
            "name": "Max Mustermann",
            "microphone": microphone,
            "axe": axe,
            "locale": "en-GB",
            "viewport": { "width": 390, "height": 844 },
            "deniedMicrophone": true,
        }),
    );
    let lines = browser.finish();
    let log = server.log();
    let find = |step: &str| {
        lines
            .iter()
            .find(|l| l["step"] == step)
            .unwrap_or_else(|| panic!("no {step} step: {lines:#?}\n{log}"))
            .clone()
    };

    let unknown = find("unknown-room");
    assert_eq!(unknown["status"], 404, "{unknown:#}");
    assert_eq!(unknown["form"], false, "{unknown:#}");
    assert!(
        unknown["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Room 9999 does not exist"),
        "{unknown:#}"
    );
    let denied = find("microphone-denied");
    assert!(
        denied["error"]
            .as_str()
            .unwrap_or_default()
            .contains("did not allow access to the microphone"),
        "{denied:#}"
    );
    assert_eq!(denied["formVisible"], true, "{denied:#}");
    let page = find("page");
    assert_eq!(
        page["lang"], "en",
        "the English page for an English browser: {page:#}"
    );
    assert_eq!(
        page["pinField"], false,
        "no PIN field for a room without PIN: {page:#}"
    );
    let joined = find("joined");
    assert_eq!(joined["status"], "You are in the conference.", "{joined:#}");
    assert!(
        participants(&joined).iter().any(|p| p["you"] == true
            && p["text"]
                .as_str()
                .unwrap_or_default()
                .contains("Max Mustermann (you)")),
        "{joined:#}"
    );
    let left = find("left");
    assert_eq!(left["status"], "You left the conference.", "{left:#}");
    assert_eq!(
        left["focused"], "rejoin",
        "focus moves to the rejoin button: {left:#}"
    );
    assert_accessible(&lines, &["initial", "joined"]);
}

#[test]
fn the_page_joins_again_after_the_server_restarts_and_says_when_an_admin_closed_the_room() {
    node_modules();
    let ns = Netns::new();
    let web = WebCertificate::new();
    let mut server = join_server(&ns, &web, &[], &[]);
    let (_dir, microphone) = microphone();

    let browser = Browser::start(
        &ns,
        "tests/webrtc/join.js",
        serde_json::json!({
            "origin": ORIGIN,
            "spki": web.spki,
            "room": "1234",
            "name": "Erika Mustermann",
            "microphone": microphone,
            "locale": "de-DE",
            "reconnecting": "Die Verbindung ist unterbrochen",
            "reconnected": "Die Verbindung steht wieder.",
            "ended": true,
        }),
    );
    let waiting = browser.wait_for("waiting-for-loss", Duration::from_secs(60));
    assert!(
        waiting.is_some(),
        "{:#?}\n{}",
        browser.lines(),
        server.log()
    );
    let connection = browser.step("connection").unwrap();
    assert_eq!(connection["state"], "connected", "{connection:#}");

    // The server goes away and comes back (an admin restarts it): the page notices, says
    // so, and joins again by itself with a new connection.
    let flags = web.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    server.restart(Some(&ns), &flags);
    let back = browser.wait_for("reconnected", Duration::from_secs(60));
    let log = server.log();
    let back = back
        .unwrap_or_else(|| panic!("the page did not join again: {:#?}\n{log}", browser.lines()));
    let reconnecting = browser.step("reconnecting").unwrap();
    assert!(
        reconnecting["status"]
            .as_str()
            .unwrap_or_default()
            .contains("Neuer Versuch in einer Sekunde"),
        "{reconnecting:#}"
    );
    assert_eq!(back["connection"]["state"], "connected", "{back:#}");
    assert!(
        back["connection"]["count"].as_u64().unwrap_or(0) >= 2,
        "{back:#}"
    );
    assert!(
        participants(&back).iter().any(|p| p["you"] == true),
        "{back:#}"
    );
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_webrtc_sessions{kind=\"page\"}"),
        1
    );

    // An admin deletes the room in use: the page says so and does not try again.
    support::admin_ok(
        server.data_dir(),
        &["room", "delete", "1234", "--end-calls"],
    );
    let ended = browser.wait_for("ended", Duration::from_secs(30));
    let log = server.log();
    let ended =
        ended.unwrap_or_else(|| panic!("the page did not end: {:#?}\n{log}", browser.lines()));
    assert!(
        ended["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Der Raum wurde von der Verwaltung geschlossen"),
        "{ended:#}"
    );
    assert_eq!(ended["inRoom"], false, "{ended:#}");
    assert_eq!(ended["focused"], "rejoin", "{ended:#}");
    browser.finish();
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_webrtc_sessions{kind=\"page\"}"),
        0
    );
}
