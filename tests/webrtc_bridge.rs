//! A room linked to an external video meeting: a stand-in meeting (tests/webrtc/meeting.py,
//! aiortc serving a WHIP and a WHEP endpoint with bearer tokens) is linked to room 1234 with
//! `amtsleitung room link`, and a baresip phone reaches the room through the dialplan's
//! `webrtc_bridge` action. What the phone and the meeting hear is proven from their recordings;
//! then the meeting dies, the link is reported down, the phone hears the notice, the meeting
//! comes back on the same port and the link returns by itself, and audio flows both ways again.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{
    Baresip, Netns, Server, TempDir, admin_ok, aiortc_python, create_room, plans_with, read_wav,
    repo, rms, tone_share, wait_until,
};

const LINK_UP: &str = "amtsleitung_meeting_link_up{room=\"1234\"}";
const RECONNECTS: &str = "amtsleitung_meeting_link_reconnects_total{room=\"1234\"}";
/// Where the stand-in meeting listens, inside the test's namespace.
const MEETING: &str = "10.99.0.5:8888";
const WHIP_TOKEN: &str = "meeting-ingress-secret";
const WHEP_TOKEN: &str = "meeting-egress-secret";
/// RMS levels in the recordings' 16-bit sample units: the tones are about 9000, the prompts
/// (normalised to -3 dBFS peaks) a few thousand; the mixer's silence through PCMU is a DC of
/// a few units.
const SPEECH_RMS: f64 = 300.0;
const SILENCE_RMS: f64 = 50.0;

/// One run of the stand-in meeting; its JSON report lines are collected as they come.
struct StandIn {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl StandIn {
    /// Starts the meeting; it records the first seconds of what the server publishes to `record`.
    fn start(ns: &Netns, record: &Path) -> Self {
        let mut child = ns
            .command(aiortc_python().to_str().unwrap())
            .arg(repo().join("tests/webrtc/meeting.py"))
            .args(["--listen", MEETING, "--whip-token", WHIP_TOKEN])
            .args(["--whep-token", WHEP_TOKEN, "--tone", "700"])
            .args(["--record-seconds", "5", "--record"])
            .arg(record)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run the stand-in meeting");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[meeting] {line}");
                collected.lock().unwrap().push(line);
            }
        });
        let meeting = Self { child, lines };
        assert!(
            wait_until(Duration::from_secs(20), || meeting.saw("\"listening\"")),
            "the stand-in meeting did not start"
        );
        meeting
    }

    fn saw(&self, text: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(text))
    }

    fn count(&self, text: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Gone without DELETE and without closing DTLS: the process dies, as a crashed or
    /// unplugged meeting server does.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `amtsleitung room link 1234` to the stand-in meeting.
fn link_room(data: &Path) {
    admin_ok(
        data,
        &[
            "room",
            "link",
            "1234",
            "--whip",
            &format!("http://{MEETING}/whip"),
            "--whip-token",
            WHIP_TOKEN,
            "--whep",
            &format!("http://{MEETING}/whep"),
            "--whep-token",
            WHEP_TOKEN,
        ],
    );
}

/// The server on `data`, with a dialplan whose number 91234 is `webrtc_bridge` into room 1234;
/// the dialplan directory lives as long as the server must.
fn bridge_server(ns: &Netns, data: TempDir) -> (Server, TempDir) {
    let plans = plans_with(
        "bridge-plans",
        "[[rule]]\nname = \"line to the council meeting\"\nmatch = \"91234\"\npublic = true\n\
         actions = [ { webrtc_bridge = { room = \"1234\" } } ]\n",
    );
    let server = Server::start_with_data(
        Some(ns),
        &["--dialplans", plans.path().to_str().unwrap()],
        data,
    );
    (server, plans)
}

/// The shares of 440 Hz and 700 Hz in what the meeting recorded of the room.
fn meeting_heard(path: &Path) -> (f64, f64) {
    let (samples, rate) = read_wav(path);
    assert!(
        samples.len() > rate as usize * 3,
        "{} holds only {} samples",
        path.display(),
        samples.len()
    );
    (
        tone_share(&samples, rate, 440.0, 0.0),
        tone_share(&samples, rate, 700.0, 0.0),
    )
}

/// Half-second windows of the phone's recording: (start s, 700 Hz share, 440 Hz share, RMS).
fn phone_windows(path: &Path) -> Vec<(f64, f64, f64, f64)> {
    let (samples, rate) = read_wav(path);
    let half = rate as usize / 2;
    samples
        .chunks_exact(half)
        .enumerate()
        .map(|(i, w)| {
            (
                i as f64 * 0.5,
                tone_share(w, rate, 700.0, 0.0),
                tone_share(w, rate, 440.0, 0.0),
                rms(w, rate, 0.0),
            )
        })
        .collect()
}

/// The windows between `from` and `to` seconds of the recording.
fn between(windows: &[(f64, f64, f64, f64)], from: f64, to: f64) -> Vec<(f64, f64, f64, f64)> {
    windows
        .iter()
        .copied()
        .filter(|w| w.0 >= from && w.0 + 0.5 <= to)
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn phone_and_linked_meeting_hear_each_other_and_the_link_returns_after_the_meeting_restarts() {
    let ns = Netns::new();
    let data = TempDir::new("bridge-data");
    create_room(data.path(), &["1234"]);
    link_room(data.path());
    let (server, _plans) = bridge_server(&ns, data);
    let dir = TempDir::new("bridge-audio");
    let first_heard = dir.path().join("meeting-1.wav");
    let second_heard = dir.path().join("meeting-2.wav");
    let mut first = StandIn::start(&ns, &first_heard);

    // Long enough for the meeting to record, die, be found dead (about 15 s: str0m's ICE keeps
    // a pair that long after the peer's last check), come back and record again.
    let phone = Baresip::new("10.99.0.4", 440, "PCMU", 8000).with_tone_seconds(440, 45);
    std::thread::scope(|scope| {
        let call_started = Instant::now();
        let at = |t: Instant| t.duration_since(call_started).as_secs_f64();
        let call = scope.spawn(|| phone.call(&ns, "sip:91234@10.99.0.1:5060", 40));

        // The caller opened the room; the link comes up by itself.
        assert!(
            wait_until(Duration::from_secs(15), || server
                .metric(Some(&ns), LINK_UP)
                == 1),
            "the link did not come up\n{}",
            server.log()
        );
        let up_at = at(Instant::now());
        let rooms = server.http_get(Some(&ns), "/rooms");
        assert!(
            rooms.contains("\"participants\":2"),
            "the phone and the meeting: {rooms}"
        );
        assert!(
            first.saw(&format!("\"authorization\": \"Bearer {WHIP_TOKEN}\""))
                && first.saw(&format!("\"authorization\": \"Bearer {WHEP_TOKEN}\"")),
            "the link presented the meeting's tokens"
        );
        assert!(
            wait_until(Duration::from_secs(15), || first.saw("\"recorded\"")),
            "the meeting recorded nothing of the room\n{}",
            server.log()
        );

        // The meeting dies.
        first.kill();
        let killed_at = at(Instant::now());
        // Back on the same port at once, so that the link's next attempt finds it.
        let second = StandIn::start(&ns, &second_heard);
        assert!(
            wait_until(Duration::from_secs(20), || server
                .metric(Some(&ns), LINK_UP)
                == 0),
            "the link is not reported down\n{}",
            server.metrics(Some(&ns))
        );
        let down_at = at(Instant::now());
        // Backoff: 1 s after the first failure, then 2 s, 4 s.
        assert!(
            wait_until(Duration::from_secs(15), || server
                .metric(Some(&ns), LINK_UP)
                == 1),
            "the link did not come back\n{}",
            server.log()
        );
        let back_at = at(Instant::now());
        assert!(server.metric(Some(&ns), RECONNECTS) >= 1);
        assert!(
            wait_until(Duration::from_secs(15), || second.saw("\"recorded\"")),
            "the restarted meeting recorded nothing of the room\n{}",
            server.log()
        );
        eprintln!(
            "link up at {up_at:.1} s, meeting killed at {killed_at:.1} s, down at {down_at:.1} s, \
             back at {back_at:.1} s"
        );

        let phone_log = call.join().unwrap();
        let log = server.log();

        // The room ended with the call: the link's sessions are DELETEd at the meeting.
        assert!(
            wait_until(Duration::from_secs(10), || second.count("\"known\": true")
                == 2),
            "the link did not DELETE both sessions when the room ended\n{log}"
        );
        assert!(
            wait_until(Duration::from_secs(5), || !server
                .metrics(Some(&ns))
                .contains(LINK_UP)),
            "the link outlived its room"
        );

        // The meeting heard the phone (and not itself), before and after its restart.
        for path in [&first_heard, &second_heard] {
            let (heard_440, heard_700) = meeting_heard(path);
            eprintln!(
                "{}: 440 Hz {heard_440:.2}, 700 Hz {heard_700:.2}",
                path.display()
            );
            assert!(
                heard_440 > 0.3,
                "the meeting hears the phone only at {heard_440:.2}\n{log}"
            );
            assert!(
                heard_700 < 0.05,
                "the meeting hears itself at {heard_700:.2}"
            );
        }

        // The phone heard the meeting, the notice of the loss, and the meeting again. Its
        // recording starts about when the call started; the margins absorb baresip's start.
        let heard = phone
            .heard()
            .unwrap_or_else(|| panic!("the phone recorded nothing\n{phone_log}\n{log}"));
        let windows = phone_windows(&heard);
        let before = between(&windows, up_at + 1.5, killed_at - 0.5);
        let after = between(&windows, back_at + 3.0, back_at + 8.0);
        // While the meeting is dead and not yet found so, the room is silent for the phone;
        // from the loss being found until the link is back, only the notice can be heard.
        let dead = between(&windows, killed_at + 1.5, down_at - 2.0);
        let notice = between(&windows, down_at - 1.0, back_at - 0.2);
        let before_700 = mean(before.iter().map(|w| w.1));
        let after_700 = mean(after.iter().map(|w| w.1));
        let own_440 = mean(before.iter().chain(&after).map(|w| w.2));
        // The notice: speech (energy that is not the meeting's tone) while the meeting is gone.
        let speech = notice
            .iter()
            .filter(|w| w.3 > SPEECH_RMS && w.1 < 0.3)
            .count();
        let dead_rms = dead.iter().map(|w| w.3).fold(0.0, f64::max);
        eprintln!(
            "phone hears 700 Hz before {before_700:.2}, after {after_700:.2}; own 440 Hz \
             {own_440:.2}; loudest while unnoticed dead {dead_rms:.0}; speech windows after \
             the loss was found: {speech} of {}",
            notice.len()
        );
        assert!(
            before.len() >= 4 && after.len() >= 4,
            "recording too short: {} s\n{log}",
            windows.len() as f64 / 2.0
        );
        assert!(
            before_700 > 0.5,
            "the phone hears the meeting only at {before_700:.2}\n{log}"
        );
        assert!(
            after_700 > 0.5,
            "after the restart the phone hears the meeting only at {after_700:.2}\n{log}"
        );
        assert!(own_440 < 0.05, "the phone hears itself at {own_440:.2}");
        assert!(
            !dead.is_empty() && dead_rms < SILENCE_RMS,
            "the phone hears something from a dead meeting: {dead:?}"
        );
        assert!(
            speech >= 1,
            "the phone heard no notice when the link went down: {notice:?}\n{log}"
        );
    });
}

/// A `webrtc_bridge` to a room without a link is refused with a prompt and a log line that
/// names the fix, rather than leaving the caller alone in an empty room.
#[test]
fn webrtc_bridge_to_a_room_without_a_link_is_refused_and_logged() {
    let ns = Netns::new();
    let data = TempDir::new("bridge-nolink-data");
    create_room(data.path(), &["1234"]);
    let (server, _plans) = bridge_server(&ns, data);
    let phone = Baresip::new("10.99.0.4", 440, "PCMU", 8000);
    let phone_log = phone.call(&ns, "sip:91234@10.99.0.1:5060", 15);
    let log = server.log();
    assert!(
        log.contains("room 1234 has no meeting link (amtsleitung room link 1234"),
        "no log line naming the fix:\n{log}"
    );
    assert!(
        !server.http_get(Some(&ns), "/rooms").contains("\"1234\""),
        "the caller was let into the room"
    );
    // The prompt and goodbye, then the server hung up (before baresip's own 15 s were up).
    assert!(
        phone_log.contains("session closed"),
        "the server did not end the call\n{phone_log}"
    );
    let heard = phone
        .heard()
        .unwrap_or_else(|| panic!("the phone recorded nothing\n{phone_log}\n{log}"));
    let (samples, rate) = read_wav(&heard);
    assert!(
        rms(&samples, rate, 0.0) > SPEECH_RMS,
        "the caller heard no prompt\n{phone_log}"
    );
}

/// A normal dial-in (the shipped plan's 8XXXX) to a linked room brings the meeting in as well,
/// and `room unlink` ends the running link while the room stays open: the meeting's sessions
/// are DELETEd and the caller stays.
#[test]
fn a_dial_in_brings_the_meeting_in_and_unlinking_ends_the_running_link() {
    let ns = Netns::new();
    let data = TempDir::new("bridge-unlink-data");
    create_room(data.path(), &["1234"]);
    link_room(data.path());
    let server = Server::start_with_data(Some(&ns), &[], data);
    let dir = TempDir::new("bridge-unlink-audio");
    let meeting = StandIn::start(&ns, &dir.path().join("meeting.wav"));
    let phone = Baresip::new("10.99.0.4", 440, "PCMU", 8000);
    std::thread::scope(|scope| {
        let call = scope.spawn(|| phone.call(&ns, "sip:81234@10.99.0.1:5060", 20));
        assert!(
            wait_until(Duration::from_secs(15), || server
                .metric(Some(&ns), LINK_UP)
                == 1),
            "the link did not come up for a dial-in\n{}",
            server.log()
        );
        admin_ok(server.data_dir(), &["room", "unlink", "1234"]);
        assert!(
            wait_until(Duration::from_secs(10), || meeting.count("\"known\": true")
                == 2),
            "the unlinked room's sessions were not DELETEd\n{}",
            server.log()
        );
        assert!(
            wait_until(Duration::from_secs(3), || !server
                .metrics(Some(&ns))
                .contains(LINK_UP)),
            "the link outlived its unlinking"
        );
        let rooms = server.http_get(Some(&ns), "/rooms");
        assert!(
            rooms.contains("\"participants\":1"),
            "the caller stays, the meeting is gone: {rooms}"
        );
        let phone_log = call.join().unwrap();
        assert!(
            !phone_log.contains("session closed"),
            "the caller was hung up\n{phone_log}"
        );
    });
}
