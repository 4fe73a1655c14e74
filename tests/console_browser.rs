//! The web console in a real browser (headless Debian Chromium driven by playwright-core,
//! tests/console/*.js) inside the test's network namespace, with real SIP callers (SIPp)
//! keying the room's PIN. What the listener hears is read off the wire (the server's RTP to
//! it, captured by tshark); what the page shows is read from the page; axe-core checks every
//! page; the screenshots go to target/console-screenshots for a reviewer.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::browser::{Browser, assert_accessible, node_modules};
use support::{Capture, Netns, Server, TempDir, repo, scenario_with_tone, sipp, ulaw_to_linear};

/// Where the test's screenshots go (kept after the run).
fn screenshots() -> PathBuf {
    repo().join("target/console-screenshots")
}

/// A SIPp caller that dials `number`, keys PIN 4321, plays `audio` and stays until the
/// server hangs up, calling from `ip` as `caller` with its media on `media_port`.
fn pin_caller(
    ns: &Netns,
    scenario: &str,
    caller: &str,
    ip: &str,
    media_port: u16,
    number: &str,
) -> (std::process::Output, f64) {
    let text = std::fs::read_to_string(scenario)
        .unwrap()
        .replace("sip:sipp@", &format!("sip:{caller}@"));
    let path = format!("{scenario}.{caller}.xml");
    std::fs::write(&path, text).unwrap();
    let out = sipp(
        Some(ns),
        &[
            "-sf",
            &path,
            "-s",
            number,
            "-i",
            ip,
            "-p",
            "5070",
            "-mi",
            ip,
            "-mp",
            &media_port.to_string(),
            "-m",
            "1",
            "10.99.0.1:5060",
        ],
    );
    (out, unix_time())
}

fn unix_time() -> f64 {
    support::browser::unix_time()
}

/// A μ-law WAV of silence (the listener says nothing, so only the talker may be marked).
fn silence_scenario(dir: &TempDir) -> String {
    let audio = dir.path().join("silence-ulaw.wav");
    let status = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-e", "mu-law"])
        .arg(&audio)
        .args(["trim", "0", "60"])
        .status()
        .expect("sox");
    assert!(status.success());
    let text = std::fs::read_to_string(support::scenario("pin_join_until_bye.xml"))
        .unwrap()
        .replace("[audio]", audio.to_str().unwrap());
    let path = dir.path().join("pin_join_silent.xml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The report of `step`; fails with every line when it is missing.
fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {lines:#?}"))
}

/// The μ-law samples of the RTP the capture saw, each packet with its arrival time.
fn captured_audio(fields: Vec<Vec<String>>) -> Vec<(f64, Vec<f64>)> {
    fields
        .into_iter()
        .filter(|f| f.get(1).map(String::as_str) == Some("0"))
        .filter_map(|f| {
            let at: f64 = f.first()?.parse().ok()?;
            let hex = f.get(2)?.replace(':', "");
            let samples = (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .map(ulaw_to_linear)
                .collect();
            Some((at, samples))
        })
        .collect()
}

/// The share of `freq` in what arrived between `from` and `to` (Unix s).
fn share(audio: &[(f64, Vec<f64>)], freq: f64, from: f64, to: f64) -> f64 {
    let samples: Vec<f64> = audio
        .iter()
        .filter(|(at, _)| *at >= from && *at <= to)
        .flat_map(|(_, s)| s.iter().copied())
        .collect();
    assert!(
        samples.len() > 8000,
        "less than a second of audio between {from:.1} and {to:.1}"
    );
    support::tone_share(&samples, 8000, freq, 0.0)
}

#[test]
fn staff_create_a_pin_room_see_callers_live_mute_one_out_of_the_others_audio_and_remove_it() {
    let axe = node_modules().join("axe-core/axe.min.js");
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    support::add_console_account(server.data_dir(), "anna", "staff", "anna-secret-1");
    let dir = TempDir::new("console-browser");
    let talker_scenario = scenario_with_tone(&dir, "pin_join_until_bye.xml", 440);
    let listener_scenario = silence_scenario(&dir);
    let (talker_number, listener_number) = ("07111234", "07115678");

    let browser = Browser::start(
        &ns,
        "tests/console/staff.js",
        serde_json::json!({
            "origin": format!("http://{}", server.http),
            "user": "anna",
            "password": "anna-secret-1",
            "room": "4711",
            "pin": "4321",
            "talker": talker_number,
            "listener": listener_number,
            "axe": axe,
            "screenshots": screenshots(),
            "locale": "de-DE",
        }),
    );
    assert!(
        browser
            .wait_for("created", Duration::from_secs(60))
            .is_some(),
        "the room was not created in the page: {:#?}\n{}",
        browser.lines(),
        server.log()
    );
    let capture = Capture::start(&ns, &dir, "udp and dst host 10.99.0.3 and dst port 6100");
    let (talker, listener) = std::thread::scope(|scope| {
        let talker = scope.spawn(|| {
            pin_caller(
                &ns,
                &talker_scenario,
                talker_number,
                "10.99.0.2",
                6000,
                "84711",
            )
        });
        std::thread::sleep(Duration::from_millis(700));
        let listener = scope.spawn(|| {
            pin_caller(
                &ns,
                &listener_scenario,
                listener_number,
                "10.99.0.3",
                6100,
                "84711",
            )
        });
        (talker.join().unwrap(), listener.join().unwrap())
    });
    let lines = browser.finish();
    let log = server.log();

    // Both callers keyed the PIN and were let in; the server ended both calls (the talker
    // removed, the listener when the room ended): SIPp passes only on the server's BYE.
    for (who, (out, _)) in [("talker", &talker), ("listener", &listener)] {
        assert!(
            out.status.success(),
            "the {who}'s call did not end by the server's BYE\n{}\n{log}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The room's page has the text to paste into an invitation.
    let invitation = step(&lines, "live-open")["invitation"]
        .as_str()
        .unwrap_or_default();
    assert!(
        invitation.contains("Raum 4711")
            && invitation.contains("84711")
            && invitation.contains("PIN"),
        "{invitation}"
    );

    // The page showed each caller within 2 s of the server listing it.
    let both = step(&lines, "both-shown");
    assert_eq!(both["ok"], true, "{both:#}");
    let rows = both["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{both:#}");
    for row in rows {
        let id = row["id"].as_str().unwrap();
        let listed = both["api"][id]
            .as_f64()
            .unwrap_or_else(|| panic!("{both:#}"));
        let shown = both["shown"][id]
            .as_f64()
            .unwrap_or_else(|| panic!("{both:#}"));
        eprintln!(
            "{}: shown {:.2} s after the server listed it",
            row["who"],
            shown - listed
        );
        assert!(shown - listed <= 2.0, "{both:#}");
    }
    let talking = step(&lines, "talking");
    assert_eq!(
        talking["ok"], true,
        "the talker was not marked talking (or the silent listener was): {talking:#}"
    );

    // The mute took the talker out of the listener's audio.
    let audio = captured_audio(capture.stop(&[
        "-d",
        "udp.port==6100,rtp",
        "-e",
        "frame.time_epoch",
        "-e",
        "rtp.p_type",
        "-e",
        "rtp.payload",
    ]));
    let muted_at = step(&lines, "muted")["at"].as_f64().unwrap();
    let removed_at = step(&lines, "removed")["at"].as_f64().unwrap();
    assert_eq!(step(&lines, "mute-shown")["ok"], true, "{lines:#?}");
    let before = share(&audio, 440.0, muted_at - 3.0, muted_at - 0.2);
    let after = share(&audio, 440.0, muted_at + 0.7, removed_at - 0.2);
    eprintln!("440 Hz share the listener got: before the mute {before:.2}, after {after:.2}");
    assert!(
        before > 0.3,
        "talker not heard before the mute ({before:.2})\n{log}"
    );
    assert!(
        after < 0.05,
        "talker still heard after the mute ({after:.2})\n{log}"
    );

    // The removal ended the talker's call (after the server told it that the conference
    // ended, a prompt of about 2 s), and its row went.
    assert_eq!(step(&lines, "gone")["ok"], true, "{lines:#?}");
    let talker_ended = talker.1 - removed_at;
    eprintln!("the talker's call ended {talker_ended:.2} s after the click");
    assert!(
        talker_ended < 6.0,
        "the removed caller's call ended {talker_ended:.1} s after the click"
    );
    assert!(listener.1 > talker.1, "the listener left before the talker");
    let all_muted = step(&lines, "all-muted");
    assert_eq!(all_muted["ok"], true, "{all_muted:#}");
    // The recording the page started and stopped is on disk, about 2.5 s long.
    let recordings: Vec<_> = std::fs::read_dir(server.data_dir().join("recordings"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let [recording] = recordings.as_slice() else {
        panic!("one recording expected: {recordings:?}\n{log}");
    };
    let (samples, rate) = support::read_wav(recording);
    let seconds = samples.len() as f64 / f64::from(rate);
    eprintln!("recording {}: {seconds:.1} s", recording.display());
    assert!((1.5..6.0).contains(&seconds), "{seconds} s\n{log}");
    assert_eq!(step(&lines, "ended")["ok"], true, "{lines:#?}");
    assert!(
        step(&lines, "signed-out")["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/console/sign-in")),
        "{lines:#?}"
    );

    assert_accessible(
        &lines,
        &["sign-in", "rooms-empty", "rooms", "live", "live-recording"],
    );
    for name in ["sign-in", "rooms", "live", "live-muted"] {
        let file = screenshots().join(format!("{name}.png"));
        let size = std::fs::metadata(&file).map_or(0, |m| m.len());
        assert!(size > 1000, "no screenshot {}", file.display());
    }
}

/// Runs tests/console/pages.js as `user` over `pages`; its report lines.
fn visit_pages(
    ns: &Netns,
    server: &Server,
    user: &str,
    password: &str,
    pages: &[(&str, &str)],
) -> Vec<Value> {
    let pages: Vec<Value> = pages
        .iter()
        .map(|(path, name)| serde_json::json!({"path": path, "name": name}))
        .collect();
    Browser::start(
        ns,
        "tests/console/pages.js",
        serde_json::json!({
            "origin": format!("http://{}", server.http),
            "user": user,
            "password": password,
            "pages": pages,
            "axe": node_modules().join("axe-core/axe.min.js"),
            "screenshots": screenshots(),
            "locale": "de-DE",
        }),
    )
    .finish()
}

/// Every page was served (200, with a heading), fits a phone's width, and passes axe.
fn assert_pages_fine(lines: &[Value], names: &[&str]) {
    let mut states = Vec::new();
    for name in names {
        for suffix in ["", "-phone"] {
            let state = format!("{name}{suffix}");
            let page = lines
                .iter()
                .find(|l| l["step"] == "page" && l["name"] == state.as_str())
                .unwrap_or_else(|| panic!("page {state} not visited: {lines:#?}"));
            assert_eq!(page["status"], 200, "{page:#}");
            assert!(
                page["heading"].as_str().is_some_and(|h| !h.is_empty()),
                "{page:#}"
            );
            assert!(
                page["overflow"].as_i64().is_some_and(|o| o <= 0),
                "{state} is wider than the screen: {page:#}"
            );
            let file = screenshots().join(format!("{state}.png"));
            assert!(file.exists(), "no screenshot {}", file.display());
            states.push(state);
        }
    }
    let states: Vec<&str> = states.iter().map(String::as_str).collect();
    assert_accessible(lines, &states);
}

#[test]
fn every_console_page_passes_axe_on_a_desktop_and_a_phone_and_is_screenshot() {
    let ns = Netns::new();
    let data = TempDir::new("console-pages");
    support::add_console_account(data.path(), "root", "admin", "root-secret-12");
    support::add_user(data.path(), "101", "phone-secret-101");
    support::add_console_account_with(data.path(), "anna", "staff", "anna-secret-1", Some("101"));
    support::create_room(data.path(), &["4711", "--pin", "4321", "--owner", "anna"]);
    let server = Server::start_with_data(Some(&ns), &[], data);
    // A call, so that the call records have a row.
    let dir = TempDir::new("console-pages-call");
    let talker = scenario_with_tone(&dir, "invite_pcmu.xml", 440);
    support::sipp_caller(&ns, &server, &talker, "84711", 1500, "a caller");

    let admin_pages = [
        ("/console/rooms", "admin-rooms"),
        ("/console/rooms/4711", "admin-room-live"),
        ("/console/calls", "admin-calls"),
        ("/console/recordings", "admin-recordings"),
        ("/console/audit", "admin-audit"),
        ("/console/system", "admin-system"),
        ("/console/users", "admin-users"),
        ("/console/users/101", "admin-user"),
        ("/console/dialplan", "admin-dialplan"),
        ("/console/dialplan/history", "admin-dialplan-history"),
        (
            "/console/dialplan/explain?to=84711&from=101",
            "admin-dialplan-explain",
        ),
    ];
    let lines = visit_pages(&ns, &server, "root", "root-secret-12", &admin_pages);
    let names: Vec<&str> = admin_pages.iter().map(|(_, n)| *n).collect();
    assert_pages_fine(&lines, &names);

    let staff_pages = [
        ("/console/rooms", "staff-rooms"),
        ("/console/rooms/4711", "staff-room-live"),
        ("/console/recordings", "staff-recordings"),
        ("/console/phone", "staff-phone"),
    ];
    let lines = visit_pages(&ns, &server, "anna", "anna-secret-1", &staff_pages);
    let names: Vec<&str> = staff_pages.iter().map(|(_, n)| *n).collect();
    assert_pages_fine(&lines, &names);
}
