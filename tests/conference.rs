//! Conference rooms with real clients: three baresip callers on different codecs hear each
//! other and not themselves; the lobby works with RFC 2833 DTMF from SIPp; wrong PINs hang up;
//! mute takes a caller out of the others' audio. All proven from recorded audio.

mod support;

use support::{
    Baresip, Netns, PacketCounter, Server, TempDir, call_staggered, create_room, read_wav,
    scenario_with_tone, server_with_pin_room, sipp_caller, tone_share,
};

/// Records each client's call into room `number` and returns the recordings' tone shares
/// for each of `tones`, measured from `skip_s` seconds on.
fn room_call(
    ns: &Netns,
    clients: &[(&str, u32, &str, u32)],
    number: &str,
    seconds: u32,
    skip_s: f64,
) -> Vec<Vec<f64>> {
    let bares: Vec<Baresip> = clients
        .iter()
        .map(|(ip, tone, codec, rate)| Baresip::new(ip, *tone, codec, *rate))
        .collect();
    let uri = format!("sip:{number}@10.99.0.1:5060");
    let logs = call_staggered(ns, &bares.iter().collect::<Vec<_>>(), &uri, seconds);
    bares
        .iter()
        .zip(&logs)
        .map(|(client, log)| {
            let heard = client
                .heard()
                .unwrap_or_else(|| panic!("{} recorded nothing\n{log}", client.ip));
            let size = std::fs::metadata(&heard).map_or(0, |m| m.len());
            assert!(
                size > 44 + 32_000,
                "{} recorded too little\n{log}",
                client.ip
            );
            let (samples, rate) = read_wav(&heard);
            clients
                .iter()
                .map(|(_, tone, _, _)| tone_share(&samples, rate, *tone as f64, skip_s))
                .collect()
        })
        .collect()
}

fn assert_hears_others_not_self(shares: &[Vec<f64>], names: &[&str], log: &str) {
    for (i, row) in shares.iter().enumerate() {
        eprintln!(
            "{} hears: {:?}",
            names[i],
            row.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>()
        );
        for (j, share) in row.iter().enumerate() {
            if i == j {
                assert!(
                    *share < 0.05,
                    "{} hears its own tone ({share:.2})\n{log}",
                    names[i]
                );
            } else {
                assert!(
                    *share > 0.15,
                    "{} hears {} only at {share:.2}\n{log}",
                    names[i],
                    names[j]
                );
            }
        }
    }
}

#[test]
fn three_callers_on_pcmu_pcma_g722_hear_each_other_not_themselves() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let clients = [
        ("10.99.0.2", 440, "PCMU", 8000),
        ("10.99.0.3", 1000, "PCMA", 8000),
        ("10.99.0.4", 2300, "G722/16000/1", 16000),
    ];
    let shares = room_call(&ns, &clients, "81234", 14, 6.0);
    assert_hears_others_not_self(
        &shares,
        &["PCMU/440", "PCMA/1000", "G722/2300"],
        &server.log(),
    );
}

#[test]
fn an_opus_caller_shares_the_room_with_g711_and_g722_callers() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let clients = [
        ("10.99.0.2", 440, "PCMU", 8000),
        ("10.99.0.3", 1000, "opus/48000/2", 48000),
        ("10.99.0.4", 2300, "G722/16000/1", 16000),
    ];
    let shares = room_call(&ns, &clients, "81234", 14, 6.0);
    assert_hears_others_not_self(
        &shares,
        &["PCMU/440", "Opus/1000", "G722/2300"],
        &server.log(),
    );
}

/// A baresip listener calls `listen_uri` for `listen_s` seconds; `head_start_ms` later the
/// SIPp caller runs. Returns what the listener recorded and its log.
#[allow(clippy::too_many_arguments)] // a test scenario: every value is one knob of it
fn heard_by_listener(
    ns: &Netns,
    server: &Server,
    listener: &Baresip,
    listen_uri: &str,
    listen_s: u32,
    head_start_ms: u64,
    caller: (&str, &str, u32),
    what: &str,
) -> (Vec<f64>, u32, String) {
    std::thread::scope(|scope| {
        let call = scope.spawn(|| listener.call(ns, listen_uri, listen_s));
        std::thread::sleep(std::time::Duration::from_millis(head_start_ms));
        sipp_caller(ns, server, caller.0, caller.1, caller.2, what);
        let log = call.join().unwrap();
        let heard = listener.heard().expect("listener recorded nothing");
        let (samples, rate) = read_wav(&heard);
        (samples, rate, log)
    })
}

#[test]
fn lobby_with_dtmf_room_and_pin_joins_the_room() {
    let ns = Netns::new();
    let (server, _plans) = server_with_pin_room(&ns, "lobby-data");
    let dir = TempDir::new("lobby");
    let lobby = scenario_with_tone(&dir, "lobby_join.xml", 440);
    let listener = Baresip::new("10.99.0.3", 1000, "PCMU", 8000);
    // Lobby: ~4 s of prompts and digits for the room, ~3 s for the PIN, then 8 s of tone.
    let (samples, rate, log) = heard_by_listener(
        &ns,
        &server,
        &listener,
        "sip:91234@10.99.0.1:5060",
        24,
        1000,
        (&lobby, "800", 8000),
        "lobby call",
    );
    // The lobby caller talks from about 12 s after the listener joined.
    let share = tone_share(&samples, rate, 440.0, 14.0);
    assert!(
        share > 0.3,
        "the lobby caller was not heard in room 1234 ({share:.2})\n{log}\n{}",
        server.log()
    );
}

#[test]
fn three_wrong_pins_hang_up() {
    let ns = Netns::new();
    let data = TempDir::new("wrongpin-data");
    create_room(data.path(), &["1234", "--pin", "4321"]);
    let server = Server::start_with_data(Some(&ns), &[], data);
    sipp_caller(
        &ns,
        &server,
        &support::scenario("lobby_wrong_pin.xml"),
        "800",
        0,
        "hang-up after three wrong PINs",
    );
}

#[test]
fn muted_caller_disappears_from_the_others_audio() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let dir = TempDir::new("mute");
    let talker = scenario_with_tone(&dir, "talk_then_mute.xml", 440);
    let listener = Baresip::new("10.99.0.3", 1000, "PCMU", 8000);
    // Talks 5 s, mutes with *6, keeps sending its tone 6 s more.
    let (samples, rate, log) = heard_by_listener(
        &ns,
        &server,
        &listener,
        "sip:85555@10.99.0.1:5060",
        16,
        1500,
        (&talker, "85555", 6000),
        "talker call",
    );
    let r = rate as usize;
    // Talking: about 3.5 s to 6 s after the listener's call started; muted: 9.5 s to 12 s.
    let talking = &samples[(35 * r / 10).min(samples.len())..(6 * r).min(samples.len())];
    let muted = &samples[(95 * r / 10).min(samples.len())..(12 * r).min(samples.len())];
    let before = tone_share(talking, rate, 440.0, 0.0);
    let after = tone_share(muted, rate, 440.0, 0.0);
    eprintln!("440 Hz share heard: before mute {before:.2}, after {after:.2}");
    assert!(
        before > 0.3,
        "talker not heard before muting ({before:.2})\n{log}\n{}",
        server.log()
    );
    assert!(
        after < 0.05,
        "talker still heard after *6 ({after:.2})\n{log}\n{}",
        server.log()
    );
}

#[test]
fn moderator_records_the_room_into_a_wav_with_the_talk_in_it() {
    let ns = Netns::new();
    let data = TempDir::new("record-data");
    create_room(
        data.path(),
        &["1234", "--pin", "4321", "--moderator-pin", "9876"],
    );
    let recordings = data.path().join("recordings");
    // Started with `--data-dir` relative to its working directory: the store must still
    // name the recording by its full path (it was stored relative to where the server ran).
    let server = Server::start_with_relative_data(Some(&ns), &[], data);
    let dir = TempDir::new("record");
    let scenario = scenario_with_tone(&dir, "moderator_records.xml", 440);
    sipp_caller(&ns, &server, &scenario, "800", 5000, "moderator call");
    let file = support::wait_until(std::time::Duration::from_secs(5), || {
        std::fs::read_dir(&recordings).is_ok_and(|mut d| d.next().is_some())
    });
    assert!(
        file,
        "no recording in {}\n{}",
        recordings.display(),
        server.log()
    );
    let path = std::fs::read_dir(&recordings)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // The writer finishes the header when the recording stops.
    assert!(
        support::wait_until(std::time::Duration::from_secs(5), || {
            std::fs::read(&path).is_ok_and(|b| b.len() > 44 && b[40..44] != [0, 0, 0, 0])
        }),
        "recording header never finished\n{}",
        server.log()
    );
    let (samples, rate) = read_wav(&path);
    let seconds = samples.len() as f64 / rate as f64;
    let share = tone_share(&samples, rate, 440.0, 2.5);
    eprintln!("recording: {seconds:.1} s at {rate} Hz, 440 Hz share after 2.5 s {share:.2}");
    assert_eq!(rate, 16_000);
    assert!(
        (5.0..12.0).contains(&seconds),
        "recording is {seconds:.1} s long"
    );
    assert!(
        share > 0.5,
        "the talk is not in the recording ({share:.2})\n{}",
        server.log()
    );
    let stored = store::Store::open(server.data_dir())
        .unwrap()
        .recordings_for_room("1234")
        .unwrap();
    let [recording] = stored.as_slice() else {
        panic!("one stored recording expected: {stored:?}");
    };
    assert!(
        recording.path.is_absolute() && recording.path == path,
        "stored {} for {}",
        recording.path.display(),
        path.display()
    );
}

/// Opus callers that send RFC 6464 audio levels (baresip's `audio_level`, as browsers do):
/// the lone talker is heard, forwarded as it sent, and the silent caller's frames are never
/// decoded because their level says nobody could hear them.
#[test]
fn opus_callers_reporting_levels_are_heard_and_silent_ones_are_not_decoded() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let talker = Baresip::new("10.99.0.2", 440, "opus/48000/2", 48000).with_audio_level();
    // At a speech level of -20 dBov (peak 0.14), where AGC leaves the talker as it is: a
    // louder one would be turned down, so mixed rather than forwarded.
    support::write_tone_at(&talker.dir.path().join("tone.wav"), 440, 48000, 30, 2, 0.14);
    let silent = Baresip::new("10.99.0.3", 0, "opus/48000/2", 48000).with_audio_level();
    let logs = call_staggered(&ns, &[&talker, &silent], "sip:81234@10.99.0.1:5060", 12);
    let log = format!("{}\n{}\n{}", logs[0], logs[1], server.log());
    let not_decoded = server.metric(Some(&ns), "amtsleitung_media_frames_not_decoded_total");
    let forwarded = server.metric(Some(&ns), "amtsleitung_mixer_frames_forwarded_total");
    let (heard, rate) = read_wav(&silent.heard().expect("silent caller recorded nothing"));
    let share = tone_share(&heard, rate, 440.0, 5.0);
    assert!(
        share > 0.5,
        "the talker is not heard (share {share:.2})\n{log}"
    );
    let (own, rate) = read_wav(&talker.heard().expect("talker recorded nothing"));
    let own_share = tone_share(&own, rate, 440.0, 5.0);
    assert!(
        own_share < 0.05,
        "the talker hears itself ({own_share:.2})\n{log}"
    );
    // 12 s of 50 frames from the silent caller; most must have been skipped.
    assert!(
        not_decoded > 250,
        "{not_decoded} frames left undecoded\n{}",
        server.metrics(Some(&ns))
    );
    assert!(
        forwarded > 250,
        "{forwarded} frames forwarded\n{}",
        server.metrics(Some(&ns))
    );
}

/// An Opus caller that asks for discontinuous transmission (`usedtx=1`, RFC 7587) hears the
/// talker, and while nobody talks gets a packet every 400 ms instead of every 20 ms; a
/// caller that did not ask gets every frame.
#[test]
fn an_opus_caller_asking_for_dtx_hears_the_talker_and_gets_few_packets_in_silence() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    // The talker says something for 4 s (1 kHz: the alone chime is 440 Hz), then nothing
    // for the rest of the call.
    let talker = Baresip::new("10.99.0.2", 1000, "PCMU", 8000);
    let status = std::process::Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(talker.dir.path().join("tone.wav"))
        .args(["synth", "4", "sine", "1000", "vol", "0.3", "pad", "0", "26"])
        .status()
        .expect("run sox");
    assert!(status.success());
    let asking = Baresip::new("10.99.0.3", 0, "opus/48000/2", 48000)
        .asking_for_dtx()
        .with_rtp_ports(30200, 30299);
    let plain = Baresip::new("10.99.0.4", 0, "opus/48000/2", 48000).with_rtp_ports(30300, 30399);
    let to_asking = PacketCounter::to_ports(&ns, 30200, 30299);
    let to_plain = PacketCounter::to_ports(&ns, 30300, 30399);
    let logs = call_staggered(
        &ns,
        &[&asking, &plain, &talker],
        "sip:81234@10.99.0.1:5060",
        14,
    );
    let log = format!("{}\n{}\n{}\n{}", logs[0], logs[1], logs[2], server.log());
    // baresip records what it decodes, and a pause in the stream is no frames: the
    // recording is the heard sound without the pauses, so the whole of it is measured.
    let (heard, rate) = read_wav(&asking.heard().expect("the DTX caller recorded nothing"));
    let share = tone_share(&heard, rate, 1000.0, 0.0);
    assert!(
        share > 0.3,
        "the DTX caller does not hear the talker (share {share:.2})\n{log}"
    );
    let (asked, not_asked) = (to_asking.packets(), to_plain.packets());
    eprintln!(
        "RTP packets to the caller asking for DTX: {asked}, to the one not asking: \
         {not_asked}; the talker's share of what the DTX caller heard: {share:.2}"
    );
    // Both are in the room about 14 s (700 packets); the talker talks for 4 of the plain
    // caller's last 12.6 s, the silence after it leaves about 8 s, 400 packets, to save.
    assert!(
        not_asked > 600,
        "{not_asked} packets to the caller without DTX\n{log}"
    );
    assert!(
        asked * 10 < not_asked * 6,
        "{asked} packets to the DTX caller against {not_asked} without\n{log}"
    );
}
