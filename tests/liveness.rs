//! Dead calls end on their own and the server reports on every leg: a caller that stops
//! sending RTP without BYE leaves its room within the media timeout (the others hear the leave
//! tone, the count drops, the call record says "media timeout"); a SIPp call that refreshes its
//! RFC 4028 session timer is kept, one that does not is ended with BYE; RTCP sender reports
//! from the server are captured on the wire with plausible counts, and a lossy call's record
//! shows the loss; a held call may stay silent where an active one times out. Every BYE we send
//! for a dead call says why (RFC 3326 `Reason`).

mod support;

use std::time::{Duration, Instant};

use support::{
    Baresip, Capture, Netns, SERVER_IP, Server, TempDir, assert_sipp_ok, call_records,
    call_staggered, read_wav, scenario, scenario_with_tone, scenario_with_tone_for, sipp,
    sipp_call_args, wait_until,
};

const CLIENT_IP: &str = "10.99.0.2";

/// A config file with `text` for the server.
fn config_file(dir: &TempDir, text: &str) -> String {
    let path = dir.path().join("amtsleitung.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Amplitude of `freq` in each 40 ms window, hopping 20 ms (Goertzel).
fn tone_track(samples: &[f64], rate: u32, freq: f64) -> Vec<f64> {
    let window = rate as usize / 25;
    let hop = rate as usize / 50;
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let coeff = 2.0 * w.cos();
    (0..samples.len().saturating_sub(window) / hop)
        .map(|i| {
            let (mut s1, mut s2) = (0.0, 0.0);
            for &v in &samples[i * hop..i * hop + window] {
                let s0 = v + coeff * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
            2.0 * power.sqrt() / window as f64
        })
        .collect()
}

/// Times (s) where a clean two-note signal starts: `first` alone for 100 ms, then `second`
/// alone for 100 ms, 120 ms after the start (the room's tones are 120 ms notes at -20 dBFS,
/// amplitude about 3300; speech in prompts never holds one pure frequency that long).
fn two_note_onsets(samples: &[f64], rate: u32, first: f64, second: f64) -> Vec<f64> {
    let a = tone_track(samples, rate, first);
    let b = tone_track(samples, rate, second);
    let (loud, quiet) = (2000.0, 700.0);
    let mut onsets: Vec<f64> = Vec::new();
    for t in 1..a.len().saturating_sub(11) {
        let starts = a[t] > loud && a[t - 1] <= loud;
        let first_alone = (t..t + 4).all(|i| a[i] > loud && b[i] < quiet);
        let second_alone = (t + 6..t + 10).all(|i| b[i] > loud && a[i] < quiet);
        if starts && first_alone && second_alone {
            onsets.push(t as f64 * 0.02);
        }
    }
    onsets
}

#[test]
fn a_caller_whose_rtp_stops_leaves_the_room_with_a_leave_tone_and_a_media_timeout_record() {
    let ns = Netns::new();
    let files = TempDir::new("liveness-room");
    let config = config_file(&files, "[calls]\nmedia-timeout = 3\n");
    let server = Server::start(Some(&ns), &["--config", &config]);
    // B listens and records, C is a second caller; A (SIPp) talks for 2 s and then falls
    // silent without hanging up.
    let listener = Baresip::new("10.99.0.3", 2300, "PCMU", 8000);
    let other = Baresip::new("10.99.0.4", 3100, "PCMU", 8000);
    let silent = scenario_with_tone_for(&files, "room_then_silent.xml", 1000, 2);
    let uri = "sip:81234@10.99.0.1:5060";
    let mut stopped_at = None;
    let mut dropped_at = None;
    let mut peak = 0;
    let mut a_dialled = 0.0;
    let (logs, sipp_out) = std::thread::scope(|scope| {
        let b_dialled = Instant::now();
        let callers = scope.spawn(|| call_staggered(&ns, &[&listener, &other], uri, 16));
        assert!(
            wait_until(Duration::from_secs(8), || server
                .room_participants(Some(&ns), "1234")
                == 2),
            "B and C did not join\n{}",
            server.log()
        );
        // SIPp answers, ACKs and starts its 2 s of RTP within a few ms of starting.
        let dialled = Instant::now();
        a_dialled = (dialled - b_dialled).as_secs_f64();
        let caller = scope.spawn(|| {
            sipp(
                Some(&ns),
                &sipp_call_args(&silent, CLIENT_IP, "5070", &["-s", "81234"]),
            )
        });
        // A is in, then its 2 s of RTP end, then the room shrinks back.
        assert!(
            wait_until(Duration::from_secs(5), || {
                server.room_participants(Some(&ns), "1234") == 3
            }),
            "A did not join\n{}",
            server.log()
        );
        peak = 3;
        stopped_at = Some(dialled + Duration::from_secs(2));
        if wait_until(Duration::from_secs(10), || {
            server.room_participants(Some(&ns), "1234") == 2
        }) {
            dropped_at = Some(Instant::now());
        }
        (callers.join().unwrap(), caller.join().unwrap())
    });
    let log = format!("{}\n{}\n{}", logs[0], logs[1], server.log());
    assert_sipp_ok(
        &sipp_out,
        &server,
        "silent caller ended by the server with BYE",
    );
    assert_eq!(peak, 3);
    let dropped_at = dropped_at.unwrap_or_else(|| panic!("the count never dropped to 2\n{log}"));
    let after = dropped_at.saturating_duration_since(stopped_at.unwrap());
    eprintln!("A removed {after:?} after its RTP stopped (timeout 3 s)");
    // 3 s timeout, the 20 ms tick, the leave path and our 50 ms polling of /rooms.
    assert!(
        after >= Duration::from_millis(2500) && after <= Duration::from_millis(5500),
        "A removed {after:?} after its RTP stopped\n{log}"
    );

    // B and C each heard one leave tone (880 → 660 Hz), A's: its 2 s of audio plus the 3 s
    // timeout after A was dialled, in their recordings' time (which starts when they dialled).
    for (name, client, dialled_at) in [("B", &listener, 0.0), ("C", &other, 0.7)] {
        let heard = client
            .heard()
            .unwrap_or_else(|| panic!("{name} recorded nothing\n{log}"));
        let (samples, rate) = read_wav(&heard);
        if std::env::var_os("AMT_DEBUG_ROOMS").is_some() {
            let (a, b) = (
                tone_track(&samples, rate, 660.0),
                tone_track(&samples, rate, 880.0),
            );
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                if *x > 300.0 || *y > 300.0 {
                    eprintln!(
                        "{name} {:.2} s: 660 Hz {x:.0}, 880 Hz {y:.0}",
                        i as f64 * 0.02
                    );
                }
            }
        }
        // Until B hangs up at 16 s (C then hears B leave too).
        let leaves: Vec<f64> = two_note_onsets(&samples, rate, 880.0, 660.0)
            .into_iter()
            .filter(|t| *t < 15.0 - dialled_at)
            .collect();
        let expected = a_dialled - dialled_at + 5.0;
        eprintln!("{name} heard leave tones at {leaves:?} s, A's expected near {expected:.1} s");
        assert_eq!(
            leaves.len(),
            1,
            "{name} should hear exactly one leave tone (A's), heard {leaves:?}\n{log}"
        );
        assert!(
            leaves[0] > expected - 1.0 && leaves[0] < expected + 2.0,
            "{name} heard the leave tone at {:.2} s, A's timeout was due near {expected:.2} s\n{log}",
            leaves[0]
        );
    }

    // The call record of A says why it ended; B's and C's legs carry baresip's RTCP.
    let calls = call_records(&server, 3);
    let a = calls
        .iter()
        .find(|c| c.caller == "sipp")
        .unwrap_or_else(|| panic!("no record of A: {calls:?}\n{log}"));
    assert_eq!(a.end_reason, "media timeout", "{calls:?}");
    assert!(a.answered);
    // About 100 packets in 2 s; the record's receive statistics saw them.
    assert!(
        (80..=120).contains(&a.media.packets_received),
        "{:?}",
        a.media
    );
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_media_timeouts_total"),
        1
    );
    // baresip sends RTCP: B's and C's records carry its reports and a round-trip time
    // (RFC 3550 §6.4.1, LSR/DLSR answering our SRs), which inside one host is well under 50 ms.
    for record in calls.iter().filter(|c| c.caller == "tester") {
        eprintln!("{}: {:?}", record.end_reason, record.media);
        let media = record.media;
        assert!(media.rtcp_received >= 2, "{media:?}\n{log}");
        let rtt = media
            .round_trip_us
            .unwrap_or_else(|| panic!("no round-trip time in {media:?}\n{log}"));
        assert!((0..50_000).contains(&rtt), "{media:?}");
        assert_eq!(media.peer_packets_lost, Some(0), "{media:?}");
        assert_eq!(media.packets_lost, 0, "{media:?}");
    }
}

#[test]
fn a_refreshed_session_is_kept_and_an_unrefreshed_one_is_ended_with_bye() {
    let ns = Netns::new();
    let files = TempDir::new("liveness-timers");
    // Session-Expires 6 s: below RFC 4028's 90 s minimum, allowed by the test-only setting.
    let config = config_file(&files, "[calls]\nmin-session-expires = 4\n");
    let server = Server::start(Some(&ns), &["--config", &config]);
    let refreshed = scenario("session_refreshed.xml");
    let unrefreshed = scenario("session_not_refreshed.xml");
    let by_update = scenario("session_server_refreshes_update.xml");
    let by_reinvite = scenario("session_server_refreshes_reinvite.xml");
    let too_small = scenario("session_too_small.xml");
    let started = Instant::now();
    let ns = &ns;
    let (kept, ended, ended_after, ours) = std::thread::scope(|scope| {
        // We refresh: by UPDATE when the caller allows it, else by re-INVITE; and a 2 s
        // interval is refused with 422 and our Min-SE.
        let ours: Vec<_> = [
            (&by_update, "10.99.0.4", "5072"),
            (&by_reinvite, "10.99.0.5", "5073"),
            (&too_small, "10.99.0.6", "5074"),
        ]
        .into_iter()
        .map(|(file, ip, port)| {
            scope.spawn(move || sipp(Some(ns), &sipp_call_args(file, ip, port, &["-s", "600"])))
        })
        .collect();
        let kept = scope.spawn(|| {
            sipp(
                Some(ns),
                &sipp_call_args(&refreshed, CLIENT_IP, "5070", &["-s", "600"]),
            )
        });
        let ended = scope.spawn(|| {
            let out = sipp(
                Some(ns),
                &sipp_call_args(&unrefreshed, "10.99.0.3", "5071", &["-s", "600"]),
            );
            (out, started.elapsed())
        });
        let (ended, after) = ended.join().unwrap();
        let ours: Vec<_> = ours.into_iter().map(|h| h.join().unwrap()).collect();
        (kept.join().unwrap(), ended, after, ours)
    });
    assert_sipp_ok(&ours[0], &server, "the server refreshes by UPDATE");
    assert_sipp_ok(&ours[1], &server, "the server refreshes by re-INVITE");
    assert_sipp_ok(&ours[2], &server, "422 with Min-SE for a 2 s interval");
    assert_sipp_ok(
        &kept,
        &server,
        "refreshed session (re-INVITE, UPDATE, re-INVITE)",
    );
    assert_sipp_ok(&ended, &server, "unrefreshed session ended by BYE");
    eprintln!(
        "unrefreshed call ended after {ended_after:?}; kept call lasted {:?}",
        started.elapsed()
    );
    // RFC 4028 §10: BYE at 6 s − min(32 s, 6/3 s) = 4 s after the 200 OK.
    assert!(
        ended_after >= Duration::from_millis(3500) && ended_after <= Duration::from_secs(6),
        "BYE after {ended_after:?}\n{}",
        server.log()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "the kept call ran its 11 s"
    );
    // The refused call never started, so four records.
    let calls = call_records(&server, 4);
    let mut reasons: Vec<&str> = calls.iter().map(|c| c.end_reason.as_str()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "caller hung up",
            "caller hung up",
            "caller hung up",
            "session timer expired"
        ],
        "{calls:?}"
    );
    assert_eq!(
        server.metric(Some(ns), "amtsleitung_session_timer_expiries_total"),
        1
    );
}

#[test]
fn a_held_call_may_stay_silent_where_an_active_one_times_out() {
    let ns = Netns::new();
    let files = TempDir::new("liveness-hold");
    let config = config_file(&files, "[calls]\nmedia-timeout = 3\n");
    let server = Server::start(Some(&ns), &["--config", &config]);
    let held = scenario("hold_silent.xml");
    let active = scenario("invite_until_server_bye.xml");
    let ns = &ns;
    let (held, active) = std::thread::scope(|scope| {
        let held = scope.spawn(|| {
            sipp(
                Some(ns),
                &sipp_call_args(&held, CLIENT_IP, "5070", &["-s", "600"]),
            )
        });
        let active = scope.spawn(|| {
            let started = Instant::now();
            let out = sipp(
                Some(ns),
                &sipp_call_args(&active, "10.99.0.3", "5071", &["-s", "600"]),
            );
            (out, started.elapsed())
        });
        (held.join().unwrap(), active.join().unwrap())
    });
    // Neither sends RTP: the held call lasts its 6 s and is hung up by the caller, the
    // active one gets our BYE after the 3 s media timeout.
    assert_sipp_ok(&held, &server, "held call kept 6 s without RTP");
    assert_sipp_ok(&active.0, &server, "active call without RTP ended by BYE");
    assert!(
        active.1 >= Duration::from_millis(2900) && active.1 < Duration::from_secs(6),
        "active call ended after {:?}",
        active.1
    );
    let calls = call_records(&server, 2);
    let mut reasons: Vec<&str> = calls.iter().map(|c| c.end_reason.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons, ["caller hung up", "media timeout"], "{calls:?}");
}

#[test]
fn rtcp_sender_reports_are_on_the_wire_and_a_lossy_call_records_its_loss() {
    let ns = Netns::new();
    let files = TempDir::new("liveness-rtcp");
    let server = Server::start(Some(&ns), &[]);
    // Every tenth packet from SIPp to the server is lost.
    ns.exec_ok(&["nft", "add", "table", "inet", "impair"]);
    ns.exec_ok(&[
        "nft",
        "add chain inet impair input { type filter hook input priority 0 ; }",
    ]);
    ns.exec_ok(&[
        "nft",
        "add rule inet impair input ip saddr 10.99.0.2 udp sport 6000 udp dport 20000-20999 numgen inc mod 10 == 0 counter drop",
    ]);
    let capture = Capture::start(
        &ns,
        &files,
        &format!("udp dst port 6001 and src host {SERVER_IP}"),
    );
    let call = scenario_with_tone(&files, "invite_pcmu.xml", 440);
    let started = Instant::now();
    let dialled_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let out = sipp(
        Some(&ns),
        &sipp_call_args(
            &call,
            CLIENT_IP,
            "5070",
            &["-s", "600", "-mp", "6000", "-d", "13000"],
        ),
    );
    let call_time = started.elapsed();
    assert_sipp_ok(&out, &server, "13 s echo call with 10 % loss");
    let packets = capture.stop(&[
        "-d",
        "udp.port==6001,rtcp",
        "-e",
        "frame.time_epoch",
        "-e",
        "rtcp.pt",
        "-e",
        "rtcp.senderssrc",
        "-e",
        "rtcp.sender.packetcount",
        "-e",
        "rtcp.sender.octetcount",
        "-e",
        "rtcp.ssrc.identifier",
        "-e",
        "rtcp.ssrc.fraction",
        "-e",
        "rtcp.ssrc.cum_nr",
        "-e",
        "rtcp.ssrc.high_seq",
        "-e",
        "rtcp.sdes.text",
    ]);
    let log = format!("{packets:?}\n{}", server.log());
    let field = |p: &Vec<String>, i: usize| p.get(i).cloned().unwrap_or_default();
    // Each compound: SR (200) + SDES (202); the last adds BYE (203).
    let srs: Vec<&Vec<String>> = packets
        .iter()
        .filter(|p| field(p, 1).split(',').next() == Some("200"))
        .collect();
    eprintln!(
        "{} RTCP compounds from the server, {} with an SR",
        packets.len(),
        srs.len()
    );
    // 13 s at intervals of 2.05..6.2 s (5 s minimum randomised, RFC 3550 A.7), the first
    // after half of that, plus the BYE compound.
    assert!(
        (3..=8).contains(&srs.len()),
        "{} SRs in {call_time:?}\n{log}",
        srs.len()
    );
    assert!(
        packets.iter().all(|p| field(p, 1).contains("202")),
        "every compound carries SDES\n{log}"
    );
    assert!(
        packets
            .iter()
            .all(|p| field(p, 9).contains("amtsleitung@10.99.0.1")),
        "CNAME\n{log}"
    );
    assert!(
        packets.last().is_some_and(|p| field(p, 1).contains("203")),
        "the last compound carries BYE\n{log}"
    );
    let mut previous = 0u64;
    for sr in &srs {
        let at: f64 = field(sr, 0).parse().unwrap();
        let sent: u64 = field(sr, 3).parse().unwrap();
        let octets: u64 = field(sr, 4).parse().unwrap();
        // Echo sends one 160-byte PCMU frame per 20 ms from the answer on.
        assert_eq!(octets, sent * 160, "octet count of {sr:?}\n{log}");
        assert!(sent > previous, "packet counts grow: {sr:?}\n{log}");
        previous = sent;
        // 50 packets a second from the answer, a few ms after dialling.
        let expected = (at - dialled_at) * 50.0;
        assert!(
            (sent as f64) > expected * 0.9 - 10.0 && (sent as f64) <= expected + 5.0,
            "{sent} packets sent by {:.2} s into the call\n{log}",
            at - dialled_at
        );
        // The report block about SIPp's stream shows the loss.
        let lost: i64 = field(sr, 7).parse().unwrap_or(-1);
        let highest: u64 = field(sr, 8).parse().unwrap_or(0);
        assert!(highest > 0, "report block present in {sr:?}\n{log}");
        let fraction: u64 = field(sr, 6).parse().unwrap_or(0);
        // The BYE compound's interval may be too short to have lost anything.
        let periodic = !field(sr, 1).contains("203");
        assert!(
            lost > 0 && (!periodic || (10..=45).contains(&fraction)),
            "10 % loss shows in the report block ({lost} lost, fraction {fraction}/256): {sr:?}\n{log}"
        );
    }
    // The call record has the loss as we measured it (RFC 3550 A.3).
    let calls = call_records(&server, 1);
    let media = calls[0].media;
    eprintln!("call record: {media:?}");
    assert!(
        (500..=700).contains(&media.packets_expected),
        "{media:?}\n{log}"
    );
    let ratio = media.loss_ratio();
    assert!(
        (0.07..=0.13).contains(&ratio),
        "loss ratio {ratio} in {media:?}\n{log}"
    );
    assert!(media.rtcp_sent >= 3, "{media:?}");
    assert!(
        server.metric(Some(&ns), "amtsleitung_rtp_packets_lost_total") as i64 == media.packets_lost,
        "/metrics\n{}",
        server.metrics(Some(&ns))
    );
}
