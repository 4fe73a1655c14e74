//! Hold and transfer between two parties through the server: a party that holds the call
//! (re-INVITE with `a=sendonly`) leaves the other hearing the server's music on hold until it
//! resumes. Real clients (baresip, SIPp) in a network namespace of their own; what each
//! party heard is proven from its recording (tones against the music's notes).

mod support;

use std::path::Path;
use std::time::Duration;

use support::{
    Baresip, Netns, Server, TempDir, assert_sipp_ok, call_records, plans_with, read_wav, rms,
    scenario, scenario_with_tone, share_between, sipp, sipp_caller, tone_share,
};

/// The notes of the shipped music on hold (`sounds/make-music-on-hold.sh`).
const MUSIC_NOTES: [f64; 5] = [392.00, 523.25, 587.33, 698.46, 783.99];

/// The share of the music on hold's notes in the WAV at `path` between `from_s` and `to_s`.
fn music_share(path: &Path, from_s: f64, to_s: f64) -> f64 {
    MUSIC_NOTES
        .iter()
        .map(|&note| share_between(path, note, from_s, to_s))
        .sum()
}

/// When the `freq` tone first fills a 300 ms stretch of the WAV at `path`, in seconds: where
/// a recording's call audio starts, which a busy machine moves by a second or more against
/// the recording's own start.
fn tone_onset(path: &Path, freq: f64) -> f64 {
    let (samples, rate) = read_wav(path);
    let at = |s: f64| ((s * f64::from(rate)) as usize).min(samples.len());
    (0..100)
        .map(|tenth| f64::from(tenth) / 10.0)
        .find(|&t| tone_share(&samples[at(t)..at(t + 0.3)], rate, freq, 0.0) > 0.5)
        .unwrap_or_else(|| panic!("no {freq} Hz tone in the first 10 s of {}", path.display()))
}

/// The RMS level of the WAV at `path` between `from_s` and `to_s` seconds.
fn level_between(path: &Path, from_s: f64, to_s: f64) -> f64 {
    let (samples, rate) = read_wav(path);
    let end = ((to_s * f64::from(rate)) as usize).min(samples.len());
    rms(&samples[..end], rate, from_s)
}

/// The shipped dialplan plus five numbers open to anyone: 700 dials a SIPp party at
/// 10.99.0.4:5080, 701 a baresip phone at 10.99.0.4:15060, 704 a baresip phone at
/// 10.99.0.3:15060 (the parties called first), 702 a baresip phone at 10.99.0.5:15060 and 703
/// a SIPp party at 10.99.0.5:5090 (transfer targets).
fn two_party_plans(name: &str) -> TempDir {
    let rule = |number: &str, uri: &str| {
        format!(
            "[[rule]]\nname = \"party {number}\"\nmatch = \"{number}\"\npublic = true\n\
             actions = [ {{ dial = {{ uri = \"{uri}\" }} }} ]\n\n"
        )
    };
    let rules = [
        rule("700", "sip:party@10.99.0.4:5080"),
        rule("701", "sip:tester@10.99.0.4:15060"),
        rule("702", "sip:tester@10.99.0.5:15060"),
        rule("703", "sip:busy@10.99.0.5:5090"),
        rule("704", "sip:tester@10.99.0.3:15060"),
    ];
    plans_with(name, &rules.concat())
}

/// SIPp's arguments for a party at `ip`:`port` running `scenario` once, sending every RTP
/// packet back (`-rtp_echo`) from media port `media_port`.
fn sipp_party<'a>(
    scenario: &'a str,
    ip: &'a str,
    port: &'a str,
    media_port: &'a str,
) -> Vec<&'a str> {
    vec![
        "-sf",
        scenario,
        "-i",
        ip,
        "-p",
        port,
        "-mi",
        ip,
        "-mp",
        media_port,
        "-rtp_echo",
        "-m",
        "1",
    ]
}

/// The called party (SIPp, echoing every RTP packet back) holds the call for 5 s after 2 s
/// and resumes it: the caller (baresip, 440 Hz) hears its own tone, then the music on hold
/// (the music's notes, loud, no tone), then its own tone again.
#[test]
fn the_caller_hears_music_on_hold_while_the_called_party_holds_and_the_call_after_resume() {
    let ns = Netns::new();
    let plans = two_party_plans("transfer-hold-uas");
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let uas = scenario("hold_uas_music.xml");
    let (uas_out, caller_out) = std::thread::scope(|scope| {
        let uas_run =
            scope.spawn(|| sipp(Some(&ns), &sipp_party(&uas, "10.99.0.4", "5080", "6100")));
        std::thread::sleep(Duration::from_millis(500));
        let caller_out = caller.call(&ns, "sip:700@10.99.0.1", 14);
        (uas_run.join().unwrap(), caller_out)
    });
    assert_sipp_ok(&uas_out, &server, "called party holding 5 s and resuming");
    let log = server.log();
    assert!(
        log.contains("call on hold: music on hold for the held party"),
        "{log}\n{caller_out}"
    );
    assert!(log.contains("call resumed: legs connected again"), "{log}");
    let heard = caller
        .heard()
        .unwrap_or_else(|| panic!("the caller recorded nothing\n{log}"));
    // Answered at about 0 s of the recording, held at 2 s, resumed at 7 s.
    let music = music_share(&heard, 2.8, 6.4);
    let tone_on_hold = share_between(&heard, 440.0, 2.8, 6.4);
    let level = level_between(&heard, 2.8, 6.4);
    assert!(
        music > 0.5 && tone_on_hold < 0.1 && level > 1000.0,
        "on hold: music {music:.2}, own tone {tone_on_hold:.2}, level {level:.0}\n{log}"
    );
    let tone_after = share_between(&heard, 440.0, 7.8, 12.5);
    let music_after = music_share(&heard, 7.8, 12.5);
    assert!(
        tone_after > 0.5 && music_after < 0.1,
        "resumed: own tone back {tone_after:.2}, music {music_after:.2}\n{log}"
    );
}

/// The caller (SIPp, streaming 1000 Hz) holds the call for 5 s after 2 s and resumes it: the
/// called party (baresip) hears the tone, then the music on hold, then the tone again.
#[test]
fn the_called_party_hears_music_on_hold_while_the_caller_holds_and_the_call_after_resume() {
    let ns = Netns::new();
    let plans = two_party_plans("transfer-hold-uac");
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let callee = Baresip::new("10.99.0.4", 880, "PCMU", 8000);
    let files = TempDir::new("transfer-hold-uac-files");
    let uac = scenario_with_tone(&files, "hold_uac_music.xml", 1000);
    let callee_out = std::thread::scope(|scope| {
        let callee_run = scope.spawn(|| callee.run(&ns, 18));
        std::thread::sleep(Duration::from_millis(1500));
        sipp_caller(
            &ns,
            &server,
            &uac,
            "701",
            0,
            "caller holding 5 s and resuming",
        );
        callee_run.join().unwrap()
    });
    let log = server.log();
    assert!(
        log.contains("call on hold: music on hold for the held party"),
        "{log}\n{callee_out}"
    );
    assert!(log.contains("call resumed: legs connected again"), "{log}");
    let heard = callee
        .heard()
        .unwrap_or_else(|| panic!("the called party recorded nothing\n{log}\n{callee_out}"));
    // The caller streams its tone from the answer on and holds 2 s later, for 5 s.
    let answer = tone_onset(&heard, 1000.0);
    eprintln!("the caller's tone starts {answer:.1} s into the called party's recording");
    let (hold_from, hold_to) = (answer + 2.8, answer + 6.4);
    let music = music_share(&heard, hold_from, hold_to);
    let tone_on_hold = share_between(&heard, 1000.0, hold_from, hold_to);
    let level = level_between(&heard, hold_from, hold_to);
    assert!(
        music > 0.5 && tone_on_hold < 0.1 && level > 1000.0,
        "on hold: music {music:.2}, caller's tone {tone_on_hold:.2}, level {level:.0} \
         (tone from {answer:.1} s)\n{log}"
    );
    let tone_after = share_between(&heard, 1000.0, answer + 7.8, answer + 11.5);
    let music_after = music_share(&heard, answer + 7.8, answer + 11.5);
    assert!(
        tone_after > 0.5 && music_after < 0.1,
        "resumed: caller's tone back {tone_after:.2}, music {music_after:.2}\n{log}"
    );
}

/// What a transfer by the called party left: the SIPp transferor's result, the caller's and
/// the target's baresip output, and the number of legs up while caller and target talk.
struct CalledPartyTransfer {
    transferor: std::process::Output,
    caller: String,
    target: String,
    legs_while_talking: u64,
}

/// Runs a transfer by the called party: the target (baresip, 702) for 20 s and the
/// transferor (SIPp running `transferor` as 700, echoing RTP) start, 1 s later the caller
/// dials 700 and stays `caller_s` seconds; `count_after_s` seconds after that the legs up are
/// counted.
fn run_called_party_transfer(
    ns: &Netns,
    server: &Server,
    caller: &Baresip,
    target: &Baresip,
    transferor: &str,
    caller_s: u32,
    count_after_s: u64,
) -> CalledPartyTransfer {
    std::thread::scope(|scope| {
        let target_run = scope.spawn(|| target.run(ns, 20));
        let transferor_run = scope.spawn(|| {
            sipp(
                Some(ns),
                &sipp_party(transferor, "10.99.0.4", "5080", "6100"),
            )
        });
        std::thread::sleep(Duration::from_millis(1000));
        let caller_run = scope.spawn(|| caller.call(ns, "sip:700@10.99.0.1", caller_s));
        std::thread::sleep(Duration::from_secs(count_after_s));
        let legs_while_talking = server.metric(Some(ns), "amtsleitung_calls");
        CalledPartyTransfer {
            transferor: transferor_run.join().unwrap(),
            caller: caller_run.join().unwrap(),
            target: target_run.join().unwrap(),
            legs_while_talking,
        }
    })
}

/// Blind transfer by the called party (SIPp, REFER to 702): the caller (baresip, 440 Hz) ends
/// up talking to the target (baresip, 880 Hz), audio both ways; the transferor got 202 and
/// the NOTIFYs (checked by SIPp) and its leg is gone: two legs remain while they talk.
#[test]
fn a_blind_transfer_by_the_called_party_connects_the_caller_with_the_target() {
    let ns = Netns::new();
    let plans = two_party_plans("transfer-blind");
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let target = Baresip::new("10.99.0.5", 880, "PCMU", 8000);
    let transferor = scenario("transfer_uas_blind.xml");
    // Transferred after about 3 s: from then on the caller's and the target's legs.
    let CalledPartyTransfer {
        transferor: transferor_out,
        caller: caller_out,
        target: target_out,
        legs_while_talking,
    } = run_called_party_transfer(&ns, &server, &caller, &target, &transferor, 15, 8);
    assert_sipp_ok(&transferor_out, &server, "transferor (REFER, NOTIFYs, BYE)");
    let log = server.log();
    assert!(log.contains("REFER accepted"), "{log}");
    assert!(
        log.contains("blind transfer: answered"),
        "{log}\n{caller_out}\n{target_out}"
    );
    assert_eq!(legs_while_talking, 2, "caller and target only\n{log}");
    let caller_heard = caller
        .heard()
        .unwrap_or_else(|| panic!("the caller recorded nothing\n{log}"));
    let target_tone = share_between(&caller_heard, 880.0, 5.0, 13.0);
    assert!(
        target_tone > 0.5,
        "the caller hears the target: 880 Hz {target_tone:.2}\n{log}"
    );
    let target_heard = target
        .heard()
        .unwrap_or_else(|| panic!("the target recorded nothing\n{log}\n{target_out}"));
    let caller_tone = share_between(&target_heard, 440.0, 1.0, 8.0);
    assert!(
        caller_tone > 0.5,
        "the target hears the caller: 440 Hz {caller_tone:.2}\n{log}"
    );
    let calls = call_records(&server, 1);
    let connected = calls[0].connected.as_ref().expect("a connected leg");
    assert!(connected.target.contains("10.99.0.5"), "{calls:#?}");
    assert!(
        calls[0]
            .features
            .iter()
            .any(|f| f.starts_with("transferred by ")),
        "the call record names the transfer: {calls:#?}"
    );
}

/// A blind transfer to a busy target (703 answers 486) comes back to the transferor, whose
/// leg is still up: the final NOTIFY says 486 (checked by SIPp) and the caller hears the
/// transferor again (its own tone echoed back through the transferor: both ways).
#[test]
fn a_failed_blind_transfer_returns_the_call_to_the_transferor() {
    let ns = Netns::new();
    let plans = two_party_plans("transfer-busy");
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let transferor = scenario("transfer_uas_blind_busy.xml");
    let busy = scenario("transfer_target_busy.xml");
    let (transferor_out, busy_out, caller_out) = std::thread::scope(|scope| {
        let transferor_run = scope.spawn(|| {
            sipp(
                Some(&ns),
                &sipp_party(&transferor, "10.99.0.4", "5080", "6100"),
            )
        });
        let busy_run =
            scope.spawn(|| sipp(Some(&ns), &sipp_party(&busy, "10.99.0.5", "5090", "6200")));
        std::thread::sleep(Duration::from_millis(1000));
        let caller_out = caller.call(&ns, "sip:700@10.99.0.1", 12);
        (
            transferor_run.join().unwrap(),
            busy_run.join().unwrap(),
            caller_out,
        )
    });
    assert_sipp_ok(
        &transferor_out,
        &server,
        "transferor told 486, then back in the call",
    );
    assert_sipp_ok(&busy_out, &server, "busy target");
    let log = server.log();
    assert!(
        log.contains("blind transfer failed: the call goes back to the transferor"),
        "{log}\n{caller_out}"
    );
    let heard = caller
        .heard()
        .unwrap_or_else(|| panic!("the caller recorded nothing\n{log}"));
    // Refused at about 2.6 s; the transferor hangs up 5 s later.
    let own_tone_back = share_between(&heard, 440.0, 3.5, 7.0);
    assert!(
        own_tone_back > 0.5,
        "the caller hears the transferor again (its own tone echoed): {own_tone_back:.2}\n{log}"
    );
}

/// Blind transfer from a baresip phone's transfer command (`/transfer`): the called party
/// (baresip, 660 Hz) transfers the caller (baresip, 440 Hz) to 702 (baresip, 880 Hz); caller
/// and target hear each other and the transferor's leg is gone.
#[test]
fn a_blind_transfer_from_baresip_connects_the_caller_with_the_target() {
    let ns = Netns::new();
    let plans = two_party_plans("transfer-baresip");
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let transferor = Baresip::new("10.99.0.4", 660, "PCMU", 8000);
    let target = Baresip::new("10.99.0.5", 880, "PCMU", 8000);
    // baresip's menu reads commands from standard input: the transfer key, 4 s after start.
    let script = format!(
        "(sleep 4; echo '/transfer sip:702@10.99.0.1'; sleep 30) | timeout 30 baresip -f {} -t 18",
        transferor.dir.path().display()
    );
    let (transferor_out, caller_out, target_out, legs_while_talking) =
        std::thread::scope(|scope| {
            let target_run = scope.spawn(|| target.run(&ns, 22));
            let transferor_run = scope.spawn(|| {
                let out = ns.command("sh").args(["-c", &script]).output().unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr)
            });
            std::thread::sleep(Duration::from_millis(1500));
            let caller_run = scope.spawn(|| caller.call(&ns, "sip:701@10.99.0.1", 16));
            std::thread::sleep(Duration::from_secs(8));
            let legs = server.metric(Some(&ns), "amtsleitung_calls");
            (
                transferor_run.join().unwrap(),
                caller_run.join().unwrap(),
                target_run.join().unwrap(),
                legs,
            )
        });
    let log = server.log();
    assert!(
        log.contains("blind transfer: answered"),
        "{log}\n{transferor_out}\n{caller_out}\n{target_out}"
    );
    assert_eq!(legs_while_talking, 2, "caller and target only\n{log}");
    let caller_heard = caller
        .heard()
        .unwrap_or_else(|| panic!("the caller recorded nothing\n{log}"));
    let target_tone = share_between(&caller_heard, 880.0, 6.0, 14.0);
    assert!(
        target_tone > 0.5,
        "the caller hears the target: 880 Hz {target_tone:.2}\n{log}"
    );
    let target_heard = target
        .heard()
        .unwrap_or_else(|| panic!("the target recorded nothing\n{log}\n{target_out}"));
    let caller_tone = share_between(&target_heard, 440.0, 1.0, 8.0);
    assert!(
        caller_tone > 0.5,
        "the target hears the caller: 440 Hz {caller_tone:.2}\n{log}"
    );
}

/// Attended transfer (REFER with Replaces) by a SIPp phone that holds both calls through the
/// server: the caller (baresip, 440 Hz) called it (700), it put the caller on hold, called
/// the target 702 (baresip, 880 Hz) itself, then referred call 1 to call 2. The caller hears
/// music on hold, then the target: caller and target end up talking, audio both ways (from
/// their recordings); SIPp checks the 202, the final NOTIFY 200 and a BYE on each of its two
/// dialogs; two legs remain while they talk.
#[test]
fn an_attended_transfer_connects_the_caller_with_the_consulted_target() {
    let ns = Netns::new();
    let plans = two_party_plans("transfer-attended");
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let target = Baresip::new("10.99.0.5", 880, "PCMU", 8000);
    let transferor = scenario("transfer_attended.xml");
    // Consulted at about 1.5 s, transferred at about 4 s.
    let CalledPartyTransfer {
        transferor: transferor_out,
        caller: caller_out,
        target: target_out,
        legs_while_talking,
    } = run_called_party_transfer(&ns, &server, &caller, &target, &transferor, 16, 9);
    assert_sipp_ok(
        &transferor_out,
        &server,
        "transferor (two calls, REFER with Replaces, NOTIFY 200, BYE on both)",
    );
    let log = server.log();
    assert!(
        log.contains("attended transfer by"),
        "{log}\n{caller_out}\n{target_out}"
    );
    assert_eq!(legs_while_talking, 2, "caller and target only\n{log}");
    let caller_heard = caller
        .heard()
        .unwrap_or_else(|| panic!("the caller recorded nothing\n{log}"));
    // Held at about 0.5 s of the caller's recording, transferred at about 4.2 s.
    let music_before = music_share(&caller_heard, 0.8, 4.0);
    let target_tone = share_between(&caller_heard, 880.0, 6.0, 13.0);
    let music_after = music_share(&caller_heard, 6.0, 13.0);
    assert!(
        music_before > 0.5 && target_tone > 0.5 && music_after < 0.1,
        "the caller hears music on hold, then the target: music before {music_before:.2}, \
         880 Hz after {target_tone:.2}, music after {music_after:.2}\n{log}"
    );
    let target_heard = target
        .heard()
        .unwrap_or_else(|| panic!("the target recorded nothing\n{log}\n{target_out}"));
    // The target answered at about 1.6 s; from about 4 s on it hears the caller.
    let caller_tone = share_between(&target_heard, 440.0, 5.0, 11.0);
    assert!(
        caller_tone > 0.5,
        "the target hears the caller: 440 Hz {caller_tone:.2}\n{log}"
    );
    // The caller's call record names the transfer and ends connected with the target.
    let calls = call_records(&server, 2);
    let transferred = calls
        .iter()
        .find(|c| c.callee == "700")
        .unwrap_or_else(|| panic!("no record of the call to 700: {calls:#?}"));
    assert!(
        transferred
            .features
            .iter()
            .any(|f| f.contains("attended transfer by")),
        "{calls:#?}"
    );
    let connected = transferred.connected.as_ref().expect("a connected leg");
    assert!(connected.target.contains("10.99.0.5"), "{calls:#?}");
}

/// An attended transfer whose Replaces names a dialog the server does not know (a to-tag it
/// never gave) is refused with a final NOTIFY 481 (checked by SIPp) and changes nothing: the
/// caller still hears the transferor (its own tone echoed), the target still hears the
/// transferor (its own tone echoed), until the transferor hangs up both calls itself.
#[test]
fn an_attended_transfer_naming_an_unknown_dialog_is_refused_and_both_calls_stay() {
    let ns = Netns::new();
    let plans = two_party_plans("transfer-attended-unknown");
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let target = Baresip::new("10.99.0.5", 880, "PCMU", 8000);
    let transferor = scenario("transfer_attended_unknown.xml");
    let (transferor_out, caller_out, target_out) = std::thread::scope(|scope| {
        let target_run = scope.spawn(|| target.run(&ns, 16));
        let transferor_run = scope.spawn(|| {
            sipp(
                Some(&ns),
                &sipp_party(&transferor, "10.99.0.4", "5080", "6100"),
            )
        });
        std::thread::sleep(Duration::from_millis(1000));
        let caller_out = caller.call(&ns, "sip:700@10.99.0.1", 14);
        (
            transferor_run.join().unwrap(),
            caller_out,
            target_run.join().unwrap(),
        )
    });
    assert_sipp_ok(
        &transferor_out,
        &server,
        "transferor told 481, then hanging up both calls",
    );
    let log = server.log();
    assert!(
        log.contains("attended transfer refused: Replaces names no call of ours"),
        "{log}\n{caller_out}\n{target_out}"
    );
    assert!(!log.contains("attended transfer by"), "{log}");
    let caller_heard = caller
        .heard()
        .unwrap_or_else(|| panic!("the caller recorded nothing\n{log}"));
    // Refused at about 4.1 s of the caller's recording; hung up at about 8.1 s.
    let own_after = share_between(&caller_heard, 440.0, 4.4, 7.8);
    let target_tone = share_between(&caller_heard, 880.0, 4.4, 7.8);
    assert!(
        own_after > 0.5 && target_tone < 0.1,
        "the caller still hears the transferor: own tone {own_after:.2}, target {target_tone:.2}\n{log}"
    );
    let target_heard = target
        .heard()
        .unwrap_or_else(|| panic!("the target recorded nothing\n{log}\n{target_out}"));
    // Answered at about 1.6 s: refused at about 2.5 s of its recording, hung up at 6.5 s.
    let own = share_between(&target_heard, 880.0, 2.8, 6.2);
    let caller_tone = share_between(&target_heard, 440.0, 2.8, 6.2);
    assert!(
        own > 0.5 && caller_tone < 0.1,
        "the target still hears the transferor: own tone {own:.2}, caller {caller_tone:.2}\n{log}"
    );
}

/// A transfer by the caller: SIPp (the transferor, at 10.99.0.4, echoing RTP) runs
/// `scenario` calling 704, the called party (baresip at 10.99.0.3, 440 Hz), and 702 rings the
/// target (baresip at 10.99.0.5, 880 Hz). Checks that the transferor's scenario passed, the
/// log says `done`, two legs remain while the two parties talk, both hear each other
/// (recordings), and once the called party hangs up the call record names the transfer.
fn assert_caller_transfer(
    name: &str,
    scenario_file: &str,
    done: &str,
    record_note: &str,
    target_from_s: f64,
) {
    let ns = Netns::new();
    let plans = two_party_plans(name);
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let called = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let target = Baresip::new("10.99.0.5", 880, "PCMU", 8000);
    let transferor = scenario(scenario_file);
    let mut args = sipp_party(&transferor, "10.99.0.4", "5080", "6100");
    args.push("10.99.0.1:5060");
    let (transferor_out, called_out, target_out, legs_while_talking) =
        std::thread::scope(|scope| {
            let called_run = scope.spawn(|| called.run(&ns, 15));
            let target_run = scope.spawn(|| target.run(&ns, 20));
            std::thread::sleep(Duration::from_millis(1000));
            let transferor_run = scope.spawn(|| sipp(Some(&ns), &args));
            std::thread::sleep(Duration::from_secs(9));
            let legs = server.metric(Some(&ns), "amtsleitung_calls");
            (
                transferor_run.join().unwrap(),
                called_run.join().unwrap(),
                target_run.join().unwrap(),
                legs,
            )
        });
    assert_sipp_ok(&transferor_out, &server, "transferor (the caller)");
    let log = server.log();
    assert!(log.contains(done), "{log}\n{called_out}\n{target_out}");
    assert_eq!(legs_while_talking, 2, "called party and target only\n{log}");
    let called_heard = called
        .heard()
        .unwrap_or_else(|| panic!("the called party recorded nothing\n{log}"));
    let own_before = share_between(&called_heard, 440.0, 0.0, 3.2);
    let target_tone = share_between(&called_heard, 880.0, target_from_s, target_from_s + 6.0);
    assert!(
        own_before > 0.5 && target_tone > 0.5,
        "the called party hears the transferor, then the target: 440 Hz before \
         {own_before:.2}, 880 Hz after {target_tone:.2}\n{log}"
    );
    let target_heard = target
        .heard()
        .unwrap_or_else(|| panic!("the target recorded nothing\n{log}\n{target_out}"));
    // The target hears the called party from the transfer on (until 15 s, when it hangs up).
    let caller_tone = share_between(&target_heard, 440.0, target_from_s, target_from_s + 4.0);
    assert!(
        caller_tone > 0.5,
        "the target hears the called party: 440 Hz {caller_tone:.2}\n{log}"
    );
    // The caller's call went on without its leg; its record is written when it ends.
    let calls = call_records(&server, 1);
    let record = calls
        .iter()
        .find(|c| c.callee == "704")
        .unwrap_or_else(|| panic!("no record of the call to 704: {calls:#?}\n{log}"));
    assert!(
        record.features.iter().any(|f| f.contains(record_note)),
        "{calls:#?}"
    );
}

/// Blind transfer by the caller (SIPp calls 704 and REFERs it to 702 on its own dialog): the
/// called party and the target end up talking, audio both ways; the transferor got the
/// NOTIFYs and a BYE (checked by SIPp); the call goes on without the caller's leg.
#[test]
fn a_blind_transfer_by_the_caller_connects_the_called_party_with_the_target() {
    assert_caller_transfer(
        "transfer-uac-blind",
        "transfer_uac_blind.xml",
        "blind transfer: answered; transferred by the caller",
        "transferred by the caller party to 702",
        // Answered at about 1.1 s, transferred at about 3.7 s (about 2.6 s of its recording).
        4.0,
    );
}

/// Attended transfer by a phone that called both parties (SIPp calls 704, then 702, and
/// REFERs the first call with a Replaces naming the second): the called party and the
/// target end up talking, audio both ways; BYE on both of the transferor's dialogs (SIPp).
#[test]
fn an_attended_transfer_by_the_caller_of_both_calls_connects_the_other_two() {
    assert_caller_transfer(
        "transfer-uac-attended",
        "transfer_uac_attended.xml",
        "the call goes on without the transferor",
        "attended transfer by party",
        // The called party answered at about 1.1 s; transferred at about 5.2 s (4.1 s of
        // its recording).
        4.6,
    );
}

/// A blind transfer by the caller to a busy target (703 answers 486) comes back to the
/// caller, whose leg is still up: the final NOTIFY says 486 (checked by SIPp) and the called
/// party (baresip, 440 Hz) hears the caller again (its own tone echoed back through it).
#[test]
fn a_failed_blind_transfer_by_the_caller_returns_the_call_to_it() {
    let ns = Netns::new();
    let plans = two_party_plans("transfer-uac-busy");
    let server = Server::start(Some(&ns), &["--dialplans", plans.path().to_str().unwrap()]);
    let called = Baresip::new("10.99.0.3", 440, "PCMU", 8000);
    let transferor = scenario("transfer_uac_blind_busy.xml");
    let busy = scenario("transfer_target_busy.xml");
    let mut args = sipp_party(&transferor, "10.99.0.4", "5080", "6100");
    args.push("10.99.0.1:5060");
    let (transferor_out, busy_out, called_out) = std::thread::scope(|scope| {
        let called_run = scope.spawn(|| called.run(&ns, 12));
        let busy_run =
            scope.spawn(|| sipp(Some(&ns), &sipp_party(&busy, "10.99.0.5", "5090", "6200")));
        std::thread::sleep(Duration::from_millis(1000));
        let transferor_out = sipp(Some(&ns), &args);
        (
            transferor_out,
            busy_run.join().unwrap(),
            called_run.join().unwrap(),
        )
    });
    assert_sipp_ok(
        &transferor_out,
        &server,
        "caller told 486, then back in the call",
    );
    assert_sipp_ok(&busy_out, &server, "busy target");
    let log = server.log();
    assert!(
        log.contains("blind transfer failed: the call goes back to the transferor"),
        "{log}\n{called_out}"
    );
    let heard = called
        .heard()
        .unwrap_or_else(|| panic!("the called party recorded nothing\n{log}"));
    // Refused at about 2.6 s of its recording; the caller hangs up 4 s later.
    let own_tone_back = share_between(&heard, 440.0, 3.2, 6.4);
    let music = music_share(&heard, 3.2, 6.4);
    assert!(
        own_tone_back > 0.5 && music < 0.1,
        "the called party hears the caller again (its own tone echoed): {own_tone_back:.2}, \
         music {music:.2}\n{log}"
    );
}
