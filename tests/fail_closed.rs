//! Access to a PIN room fails closed: a store that cannot be read refuses callers with a
//! prompt and a hang-up instead of letting them into a room whose PIN it cannot check, and a
//! PIN room deleted while in use is refused until its calls are ended on purpose, then ends
//! them, and never lets the next caller into that session. Proven with a baresip listener
//! sitting in the room: what it heard, and the call records.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use support::{
    Baresip, Netns, Server, TempDir, read_wav, rename_table, scenario_with_tone,
    server_with_pin_room, sipp_caller, tone_share,
};

/// The callers' tone: high enough that the prompts the listener hears (espeak speech) carry
/// almost none of their energy near it (0.1 % against 6 to 8 % at 440 Hz).
const TONE_HZ: u32 = 2900;

/// Runs an admin CLI command against the server's data directory.
fn admin(server: &Server, args: &[&str]) -> Output {
    support::amtsleitung()
        .args(args)
        .args(["--data-dir", server.data_dir().to_str().unwrap()])
        .output()
        .unwrap()
}

/// The server's call records, newest first.
fn call_records(server: &Server) -> Vec<store::CallRecord> {
    store::Store::open(server.data_dir())
        .unwrap()
        .recent_calls(10)
        .unwrap()
}

/// Samples of `recording` between `from` and `to` seconds.
fn window(samples: &[f64], rate: u32, from: f64, to: f64) -> &[f64] {
    let at = |s: f64| ((s.max(0.0) * rate as f64) as usize).min(samples.len());
    &samples[at(from)..at(to)]
}

#[test]
fn a_pin_room_refuses_callers_while_the_store_cannot_be_read_and_admits_them_after() {
    let ns = Netns::new();
    let (server, _plans) = server_with_pin_room(&ns, "failclosed-data");
    let dir = TempDir::new("failclosed");
    let refused_scenario = scenario_with_tone(&dir, "tone_until_server_bye.xml", TONE_HZ);
    let pin_join = scenario_with_tone(&dir, "pin_join.xml", TONE_HZ);
    // A silent staff member sits in the room (trusted line, no PIN prompt) and records.
    let insider = Baresip::new("10.99.0.3", 0, "PCMU", 8000);
    let started = Instant::now();
    let (refused_window, admitted_window, log) = std::thread::scope(|scope| {
        let call = scope.spawn(|| insider.call(&ns, "sip:91234@10.99.0.1:5060", 32));
        std::thread::sleep(Duration::from_secs(3));
        rename_table(&server, "room", "room_unreadable");
        let from = started.elapsed().as_secs_f64();
        // Passes only if the server hangs up (BYE) within SIPp's timeout.
        sipp_caller(
            &ns,
            &server,
            &refused_scenario,
            "81234",
            0,
            "call while the store fails",
        );
        let until = started.elapsed().as_secs_f64();
        // Monitoring sees it too: /health is 503 "degraded" naming the store.
        let health = server.http_get(Some(&ns), "/health");
        assert!(
            health.contains(" 503 ") && health.contains("the store fails"),
            "{health}"
        );
        rename_table(&server, "room_unreadable", "room");
        // Nothing stored was lost: the same room and PIN work again.
        let admitted_from = started.elapsed().as_secs_f64();
        sipp_caller(
            &ns,
            &server,
            &pin_join,
            "81234",
            7000,
            "PIN call after the store recovered",
        );
        let admitted_until = started.elapsed().as_secs_f64();
        let log = call.join().unwrap();
        ((from, until), (admitted_from, admitted_until), log)
    });
    let calls = call_records(&server);
    // Newest first: the insider, the PIN caller, and the caller refused while the store failed.
    let record = calls
        .iter()
        .filter(|c| c.callee == "81234")
        .min_by_key(|c| c.started_at_ms)
        .unwrap_or_else(|| panic!("no call record for 81234: {calls:?}"));
    assert_eq!(record.end_reason, "refused: store unavailable", "{calls:?}");
    // The refusal said why: its prompts take several seconds before the hang-up.
    assert!(
        record.ended_at_ms - record.started_at_ms > 3000,
        "hung up without a prompt: {record:?}"
    );

    let heard = insider.heard().expect("the insider recorded nothing");
    let (samples, rate) = read_wav(&heard);
    // The recording starts about when the insider's call was answered, within a second of
    // `started`; the windows keep a second's margin on each side.
    let during_failure = window(&samples, rate, refused_window.0, refused_window.1 - 1.0);
    let share = tone_share(during_failure, rate, TONE_HZ.into(), 0.0);
    assert!(
        share < 0.05,
        "the insider heard the refused caller's tone ({share:.2})\n{log}\n{}",
        server.log()
    );
    // The PIN caller streams its tone from about 4 s after dialling (prompt, PIN) on.
    let after_recovery = window(
        &samples,
        rate,
        admitted_window.0 + 6.0,
        admitted_window.1 - 1.0,
    );
    let share = tone_share(after_recovery, rate, TONE_HZ.into(), 0.0);
    assert!(
        share > 0.3,
        "the insider did not hear the admitted caller ({share:.2}): the test cannot tell \
         refused from admitted\n{log}\n{}",
        server.log()
    );
}

#[test]
fn a_pin_room_in_use_is_deleted_only_with_end_calls_and_its_session_never_reopens() {
    let ns = Netns::new();
    let (server, _plans) = server_with_pin_room(&ns, "delete-data");
    let insider = Baresip::new("10.99.0.3", 0, "PCMU", 8000);
    // Dials the room number directly right after the deletion, with a tone: no PIN is asked
    // for a room that is no longer stored.
    let newcomer = Baresip::new("10.99.0.4", TONE_HZ, "PCMU", 8000);
    let (deleted_at_ms, log) = std::thread::scope(|scope| {
        let call = scope.spawn(|| insider.call(&ns, "sip:91234@10.99.0.1:5060", 20));
        std::thread::sleep(Duration::from_secs(4));

        let refused = admin(&server, &["room", "delete", "1234"]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains("in use by 1 caller(s)"),
            "deleting a room in use was not refused: {stderr}"
        );
        let stored = store::Store::open(server.data_dir())
            .unwrap()
            .room_get("1234")
            .unwrap();
        assert!(
            stored.is_some_and(|r| r.has_pin),
            "the refused delete deleted"
        );

        let deleted = admin(&server, &["room", "delete", "1234", "--end-calls"]);
        let deleted_at_ms = jiff::Timestamp::now().as_millisecond();
        assert!(
            deleted.status.success(),
            "delete --end-calls failed: {}",
            String::from_utf8_lossy(&deleted.stderr)
        );
        let newcomer_log = newcomer.call(&ns, "sip:81234@10.99.0.1:5060", 8);
        let log = call.join().unwrap();
        (deleted_at_ms, format!("{log}\n{newcomer_log}"))
    });
    let calls = call_records(&server);
    let record = calls
        .iter()
        .find(|c| c.callee == "91234")
        .unwrap_or_else(|| panic!("no call record for the insider: {calls:?}\n{log}"));
    assert_eq!(record.end_reason, "room closed by an admin", "{calls:?}");
    // The watch runs every second, then the "conference ended" prompt plays (about 2 s).
    let took = record.ended_at_ms - deleted_at_ms;
    assert!(
        (0..6000).contains(&took),
        "the insider's call ended {took} ms after the delete\n{}",
        server.log()
    );
    let heard = insider.heard().expect("the insider recorded nothing");
    let (samples, rate) = read_wav(&heard);
    let share = tone_share(&samples, rate, TONE_HZ.into(), 2.0);
    assert!(
        share < 0.05,
        "the newcomer was heard in the deleted room's session ({share:.2})\n{log}\n{}",
        server.log()
    );
}
