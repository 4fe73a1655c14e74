//! Speech quality of every codec path through a conference room, measured objectively: PESQ
//! (ITU-T P.862, PyPI `pesq`) of what a baresip listener recorded against the speech a baresip
//! talker sent, for every speaker → listener pair among PCMU, PCMA, G.722 and Opus (16 paths),
//! each against its own codec-only ceiling measured in the same test (ffmpeg codes the
//! talker's microphone file through the two codecs with no server in between).
//!
//! One room per speaker codec: the talker (English and German from espeak-ng, 15 s, levelled
//! to -20 dBov) and one silent listener per codec, the listeners being each other's silent
//! third party. The four rooms run at once on one server, so the 16 paths take one call's time.
//! `tests/quality/pesq_tool.py` prepares the audio and scores it; it runs in a Python venv
//! under `target/quality-venv`, made on first use.
//!
//! Impairment towards the server (3 % loss, 30 ± 15 ms jitter with reordering) is done by
//! `amt-netimpair` (benches/netimpair) on an NFQUEUE: this kernel has no netem and no nftables
//! `queue` expression, so the talkers' packets are queued by iptables' NFQUEUE target
//! (iptables-nft, through nftables' xt compatibility).

mod support;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use support::{Baresip, Netns, Server, TempDir, call_staggered, python_venv, repo};

/// Harvard sentences (IEEE 1969) and a town hall's German, about 15 s together.
const SPEECH_EN: &str = "The birch canoe slid on the smooth planks. Glue the sheet to the dark \
                         blue background. It is easy to tell the depth of a well.";
const SPEECH_DE: &str = "Das Bürgerbüro ist heute von acht bis sechzehn Uhr geöffnet. Bitte \
                         halten Sie Ihre Vorgangsnummer bereit.";

/// How long each client stays in its room: the listeners join 0.7 s apart, the talker last,
/// and its microphone file (3.5 s lead-in, 15 s speech, 1.5 s tail) must reach every listener
/// before the first one hangs up.
const CALL_SECONDS: u32 = 24;

/// A codec as the tests name it, as baresip offers it and as baresip logs it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Codec {
    /// The pesq_tool name.
    name: &'static str,
    /// baresip's `audio_codecs` entry (name/rate/channels, see PEERS.md).
    offer: &'static str,
    /// How baresip's "Set audio decoder:" / "Set audio encoder:" lines name it.
    logged: &'static str,
    /// The rate (and channel count) of baresip's microphone file for this codec.
    mic_rate: u32,
}

const PCMU: Codec = Codec {
    name: "pcmu",
    offer: "PCMU",
    logged: "PCMU",
    mic_rate: 8000,
};
const PCMA: Codec = Codec {
    name: "pcma",
    offer: "PCMA",
    logged: "PCMA",
    mic_rate: 8000,
};
const G722: Codec = Codec {
    name: "g722",
    offer: "G722/16000/1",
    logged: "G722",
    mic_rate: 16000,
};
const OPUS: Codec = Codec {
    name: "opus",
    offer: "opus/48000/2",
    logged: "opus",
    mic_rate: 48000,
};
const CODECS: [Codec; 4] = [PCMU, PCMA, G722, OPUS];

/// The speaker codecs to test: all four, or those named in `AMT_QUALITY_SPEAKERS` (e.g.
/// `pcmu,opus`), to look at a few paths.
fn speakers() -> Vec<Codec> {
    codecs_from_env("AMT_QUALITY_SPEAKERS")
}

/// The listeners in every room: one per codec, or those named in `AMT_QUALITY_LISTENERS`
/// (e.g. `pcmu,pcmu`: whether wide-band listeners in the room change a narrow-band path).
fn listeners() -> Vec<Codec> {
    codecs_from_env("AMT_QUALITY_LISTENERS")
}

fn codecs_from_env(variable: &str) -> Vec<Codec> {
    match std::env::var(variable) {
        Ok(names) => names
            .split(',')
            .map(|name| {
                *CODECS
                    .iter()
                    .find(|c| c.name == name.trim())
                    .unwrap_or_else(|| panic!("{variable}: no codec {name:?}"))
            })
            .collect(),
        Err(_) => CODECS.to_vec(),
    }
}

/// The venv's Python with numpy, scipy and pesq, created on first use.
fn quality_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        python_venv(
            "quality-venv",
            &["numpy", "scipy", "pesq"],
            "import numpy, scipy, pesq",
        )
    })
}

fn tool(args: &[&str]) -> String {
    let out = Command::new(quality_python())
        .arg(repo().join("tests/quality/pesq_tool.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pesq_tool {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The speech, then every talker's microphone file and the references (see pesq_tool.py).
fn speech_files(dir: &TempDir) {
    let mut parts = Vec::new();
    for (voice, text) in [("en-us", SPEECH_EN), ("de", SPEECH_DE)] {
        let part = dir.path().join(format!("speech-{voice}.wav"));
        let status = Command::new("espeak-ng")
            .args(["-v", voice, "-s", "150", "-w"])
            .arg(&part)
            .arg(text)
            .status()
            .expect("espeak-ng (apt-get install espeak-ng)");
        assert!(status.success());
        parts.push(part);
    }
    let speech = dir.path().join("speech.wav");
    let status = Command::new("sox")
        .args(&parts)
        .arg(&speech)
        .status()
        .expect("sox");
    assert!(status.success());
    tool(&[
        "prepare",
        speech.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
}

/// Raises this test process's CPU priority (nice -10), which the server, the clients and
/// the scoring inherit. The test measures what the codecs and the room do to speech, on a
/// machine whose two cores are often busy compiling: starved of CPU, the debug-built server
/// skips 20 ms frames (every listener's recording slips by 160 samples at the same moment)
/// and the scores then measure the compiler, not the paths. Real phones have their own CPU,
/// and a production server its own cores.
fn prefer_media_over_other_work() {
    let pid = std::process::id().to_string();
    let status = Command::new("renice")
        .args(["-n", "-10", "-p", &pid])
        .stdout(Stdio::null())
        .status()
        .expect("renice (util-linux)");
    assert!(
        status.success(),
        "renice -n -10 failed (the tests run as root)"
    );
}

/// Held by each test while its calls run: the clean and the impaired matrix each put 20
/// baresips and a server on the machine's two cores, and both at once starved them (the
/// worker ran ticks late, talkers sent late), which the scores then measured. The scoring
/// (PESQ, ffmpeg) runs outside it.
static ONE_MATRIX_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One speaker → listener path's figures.
struct PathScore {
    speaker: Codec,
    listener: Codec,
    pesq: f64,
    ceiling: f64,
    correlation: f64,
}

/// Talkers' RTP ports (each talker 100 of them), so the impairment can pick their packets.
const TALKER_PORTS: (u16, u16) = (32000, 32399);

/// One room per speaker codec in `speakers`, all at once on one server in `ns`: the talker
/// and the [`listeners`] (one per codec), who are silent. Returns every path's score and,
/// for failure messages, the clients' and the server's logs.
fn speech_through_rooms(
    ns: &Netns,
    server: &Server,
    speakers: &[Codec],
) -> (Vec<PathScore>, String) {
    let files = TempDir::new("quality");
    speech_files(&files);
    let listener_codecs = listeners();
    // Listeners' RTP ports stay below the talkers' (30000 + 100 each), talkers' 100 each
    // within TALKER_PORTS.
    let per_room = listener_codecs.len();
    assert!(per_room * speakers.len() <= 20 && speakers.len() <= 4);
    let rooms: Vec<(Codec, Vec<Baresip>, Baresip)> = speakers
        .iter()
        .enumerate()
        .map(|(room, &speaker)| {
            let address = |client: usize| {
                let ip = format!("10.99.0.{}", 10 + (per_room + 1) * room + client);
                ns.add_client_address(&ip);
                ip
            };
            let listeners = listener_codecs
                .iter()
                .enumerate()
                .map(|(i, codec)| {
                    let low = 30000 + 100 * (per_room * room + i) as u16;
                    Baresip::new(&address(i), 0, codec.offer, codec.mic_rate)
                        .with_rtp_ports(low, low + 99)
                })
                .collect();
            let low = TALKER_PORTS.0 + 100 * room as u16;
            let talker = Baresip::new(&address(per_room), 0, speaker.offer, speaker.mic_rate)
                .with_rtp_ports(low, low + 99);
            std::fs::copy(
                files.path().join(format!("mic-{}.wav", speaker.mic_rate)),
                talker.dir.path().join("tone.wav"),
            )
            .unwrap();
            (speaker, listeners, talker)
        })
        .collect();

    // A test that failed while holding it leaves it poisoned; the other still measures.
    let calls_running = ONE_MATRIX_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The talker joins last, so that every listener hears all of the speech.
    let logs: Vec<Vec<String>> = std::thread::scope(|scope| {
        let calls: Vec<_> = rooms
            .iter()
            .enumerate()
            .map(|(room, (_, listeners, talker))| {
                scope.spawn(move || {
                    let mut clients: Vec<&Baresip> = listeners.iter().collect();
                    clients.push(talker);
                    let uri = format!("sip:8123{room}@10.99.0.1:5060");
                    call_staggered(ns, &clients, &uri, CALL_SECONDS)
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut all_logs = String::new();
    for ((speaker, _, _), room_logs) in rooms.iter().zip(&logs) {
        for (i, log) in room_logs.iter().enumerate() {
            let who = listener_codecs
                .get(i)
                .map_or(format!("{} talker", speaker.name), |c| {
                    format!("{} listener in the {} room", c.name, speaker.name)
                });
            let _ = writeln!(all_logs, "==== {who}\n{log}");
        }
    }
    // A worker that starts a tick late has, before it catches up, held every talker's audio
    // back: the count tells a starved machine from a worse path when a score drops.
    let late = server.metric(Some(ns), "amtsleitung_media_late_ticks_total");
    let ticks = server.metric(Some(ns), "amtsleitung_media_ticks_total");
    drop(calls_running);
    eprintln!("the server's media worker: {late} of {ticks} ticks late");
    let log = format!(
        "{all_logs}==== server ({late} of {ticks} ticks late)\n{}",
        server.log()
    );

    let mut scores = Vec::new();
    for ((speaker, listeners, _), room_logs) in rooms.iter().zip(&logs) {
        // baresip must really have used the codec it was told to: a bare name it cannot
        // match makes it offer every codec, and the path would run on another one.
        for (i, client_log) in room_logs.iter().enumerate() {
            let codec = listener_codecs.get(i).copied().unwrap_or(*speaker);
            for direction in ["decoder", "encoder"] {
                let line = format!("Set audio {direction}: {}", codec.logged);
                assert!(
                    client_log.contains(&line),
                    "a {} client of the {} room did not log {line:?}\n{log}",
                    codec.name,
                    speaker.name
                );
            }
        }
        for (listener, client) in listener_codecs.iter().zip(listeners) {
            let recording = client.heard().unwrap_or_else(|| {
                panic!(
                    "the {} listener of the {} room recorded nothing\n{log}",
                    listener.name, speaker.name
                )
            });
            let raw = tool(&[
                "score",
                files.path().to_str().unwrap(),
                speaker.name,
                listener.name,
                recording.to_str().unwrap(),
            ]);
            let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
            let field = |name: &str| json[name].as_f64().unwrap_or(f64::NAN);
            eprintln!("{} -> {}: {}", speaker.name, listener.name, raw.trim());
            scores.push(PathScore {
                speaker: *speaker,
                listener: *listener,
                pesq: field("pesq"),
                ceiling: field("ceiling"),
                correlation: field("correlation"),
            });
        }
    }
    (scores, log)
}

/// The table of figures (markdown, as in benches/RESULTS.md) and every path that missed its
/// bar of `ceiling - allowance`.
fn judge(scores: &[PathScore], allowance: f64, open: &OpenGaps) -> (String, Vec<String>) {
    let mut table = String::from(
        "| speaker → listener | band | ceiling | through the room | issue bar | |\n|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for s in scores {
        let bar = s.ceiling - allowance;
        // A path still short of the bar is held to today's level instead, so that
        // nothing gets worse while it is worked on; the table says which paths those are.
        let held = open.iter().find(|(speaker, listener, _)| {
            (*speaker, *listener) == (s.speaker.name, s.listener.name)
        });
        let floor = held.map_or(bar, |(_, _, allowance)| s.ceiling - allowance);
        // The correlation is only reported: time slips lower it while the speech is there,
        // and a recording without the speech scores far below any bar anyway.
        let pass = s.pesq >= floor;
        let band = if s.listener.mic_rate > 8000 {
            "wb"
        } else {
            "nb"
        };
        let verdict = match (s.pesq >= bar, pass) {
            (true, _) => "ok".to_string(),
            (false, true) => format!("open (held above {floor:.2})"),
            (false, false) => "**fails**".to_string(),
        };
        let _ = writeln!(
            table,
            "| {} → {} | {band} | {:.2} | {:.2} | {bar:.2} | {verdict} |",
            s.speaker.name, s.listener.name, s.ceiling, s.pesq,
        );
        if !pass {
            failures.push(format!(
                "{} -> {} ({band}): PESQ {:.2}, bar {floor:.2} (ceiling {:.2}, {:+.2}), speech found with correlation {:.2}",
                s.speaker.name,
                s.listener.name,
                s.pesq,
                s.ceiling,
                s.pesq - s.ceiling,
                s.correlation
            ));
        }
    }
    (table, failures)
}

/// Paths that do not reach the bar yet (issue 13 stays open for them): speaker,
/// listener, and the wider allowance below their ceiling they are held to meanwhile, today's
/// gap plus room for the run-to-run spread of a real-time test (0.1 clean, 0.3 impaired).
type OpenGaps = [(&'static str, &'static str, f64)];

/// A running `amt-netimpair` on an NFQUEUE fed by iptables with the talkers' packets towards
/// the server. Closing its standard input stops it; it then prints what it did.
///
/// The packets are held on their way out of the talkers (OUTPUT), before they cross the veth
/// link: like a real network's delay, that happens before the server's kernel receives and
/// stamps them. Held on INPUT, they would carry a receive stamp from before the delay, which no
/// network can produce, and the server (which dates packets by that stamp) would see them as
/// on time but missing.
struct Impairment<'a> {
    ns: &'a Netns,
    child: Child,
}

/// The `amt-netimpair` binary next to this test's (built by `cargo test --workspace`), or
/// built now when this test runs alone.
fn netimpair_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/quality-<hash> -> target/<profile>/amt-netimpair
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let bin = dir.join("amt-netimpair");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "netimpair",
            "--bin",
            "amt-netimpair",
        ])
        .args(if dir.ends_with("release") {
            &["--release"][..]
        } else {
            &[][..]
        })
        .current_dir(repo())
        .status()
        .expect("run cargo to build amt-netimpair");
    assert!(status.success(), "cargo build -p netimpair failed");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

impl<'a> Impairment<'a> {
    /// 3 % loss and 30 ± 15 ms jitter on every talker's RTP towards the server.
    fn start(ns: &'a Netns) -> Self {
        let rule = format!(
            "-A OUTPUT -p udp --sport {}:{} --dport 20000:20999 -j NFQUEUE --queue-num 7",
            TALKER_PORTS.0, TALKER_PORTS.1
        );
        let args: Vec<&str> = std::iter::once("iptables").chain(rule.split(' ')).collect();
        ns.exec_ok(&args);
        let mut child = ns
            .command(netimpair_binary().to_str().unwrap())
            .args(["--queue", "7", "--loss-percent", "3", "--delay-ms", "30"])
            // Seed 22 drops 22 of the 750 packets that carry each talker's speech (2.9 %)
            // and 32 of its first 1100: a representative 3 %, the same in every run.
            .args(["--jitter-ms", "15", "--seed", "22"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start amt-netimpair");
        // Bound to its queue before any call starts (it says so on stderr).
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
        assert!(first.contains("serving queue 7"), "amt-netimpair: {first}");
        Self { ns, child }
    }

    /// How many packets the kernel queued to it (the iptables rule's counter).
    fn queued_by_the_kernel(&self) -> u64 {
        let out = self
            .ns
            .command("iptables")
            .args(["-L", "OUTPUT", "-v", "-x", "-n"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find(|l| l.contains("NFQUEUE"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no NFQUEUE rule counter in:\n{text}"))
    }

    /// Stops it; returns its tally (seen, dropped, released, reordered, mean delay) and how
    /// many packets the kernel queued to it.
    fn stop(mut self) -> (serde_json::Value, u64) {
        let queued = self.queued_by_the_kernel();
        drop(self.child.stdin.take());
        let out = self.child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let tally = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("amt-netimpair printed {text:?}: {e}"));
        (tally, queued)
    }
}

/// Prints the table (for benches/RESULTS.md) and fails with every path that missed its bar.
/// The clients' and the server's logs (about 250 kB) go to `target/quality-<name>.log`
/// (pass or fail, for looking into a figure) rather than into the failure message.
fn report(
    name: &str,
    what: &str,
    scores: &[PathScore],
    allowance: f64,
    open: &OpenGaps,
    log: &str,
) {
    let (table, failures) = judge(scores, allowance, open);
    eprintln!("{what} (bar: ceiling - {allowance}):\n{table}");
    let _ = std::io::stderr().flush();
    let log_file = repo().join(format!("target/quality-{name}.log"));
    std::fs::write(&log_file, log).unwrap();
    if failures.is_empty() {
        return;
    }
    panic!(
        "{} of {} paths below their bar ({what}):\n{}\n\n{table}\nlogs: {}",
        failures.len(),
        scores.len(),
        failures.join("\n"),
        log_file.display()
    );
}

/// Every speaker → listener pair sounds as good as its two codecs allow: the room costs at
/// most 0.1 PESQ against the codec-only ceiling of the path. Paths in [`OPEN_CLEAN`] do not
/// reach that yet; they are held at today's level so that none gets worse meanwhile.
#[test]
fn every_codec_path_keeps_the_quality_of_its_codecs() {
    prefer_media_over_other_work();
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let speakers = speakers();
    let (scores, log) = speech_through_rooms(&ns, &server, &speakers);
    assert_eq!(scores.len(), listeners().len() * speakers.len());
    report("clean", "clean", &scores, 0.1, OPEN_CLEAN, &log);
}

/// With 3 % loss and 30 ± 15 ms jitter (reordering included) on the talkers' packets towards
/// the server, every path stays within 0.4 PESQ of its codec-only ceiling: the server's jitter
/// buffer and concealment absorb the network. Paths in [`OPEN_IMPAIRED`] do not reach that
/// yet; they are held at today's level.
#[test]
fn every_codec_path_survives_loss_and_jitter_towards_the_server() {
    prefer_media_over_other_work();
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let impairment = Impairment::start(&ns);
    let speakers = speakers();
    let (scores, log) = speech_through_rooms(&ns, &server, &speakers);
    let (tally, queued) = impairment.stop();
    eprintln!("amt-netimpair: {tally}; the kernel queued {queued}");
    // The impairment really happened: every talker's 50 packets/s went through it (the
    // kernel's count of queued packets and the tool's agree, so none was lost to a full
    // queue), about 3 % were dropped, the rest held 30 ms on average, and some overtook
    // earlier packets of their own stream.
    let count = |name: &str| tally[name].as_u64().unwrap_or(0);
    let seen = count("seen");
    assert_eq!(
        seen, queued,
        "the tool saw {seen} packets, the kernel queued {queued}"
    );
    let expected = 50 * 15 * speakers.len() as u64;
    assert!(
        seen > expected,
        "only {seen} talker packets were queued\n{log}"
    );
    let loss = count("dropped") as f64 / seen as f64;
    assert!((0.015..=0.045).contains(&loss), "loss {loss:.3}: {tally}");
    let delay = tally["mean_delay_ms"].as_f64().unwrap_or(0.0);
    assert!(
        (27.0..=33.0).contains(&delay),
        "mean delay {delay} ms: {tally}"
    );
    assert!(
        count("reordered") > 10 * speakers.len() as u64,
        "too little reordering: {tally}"
    );
    assert_eq!(scores.len(), listeners().len() * speakers.len());
    report(
        "impaired",
        "3 % loss + 30 ± 15 ms jitter towards the server",
        &scores,
        0.4,
        OPEN_IMPAIRED,
        &log,
    );
}

/// Clean paths short of ceiling − 0.1: none since the G.722 talker's codes are followed
/// (benches/RESULTS.md, 2026-12-06); kept so that a path found short can be held while fixed.
const OPEN_CLEAN: &OpenGaps = &[];

/// Impaired paths short of ceiling − 0.4, held at today's level. Since the jitter buffer
/// waits for the packet after a loss (Opus FEC, two-sided concealment), runs of the same
/// seeded impairment agree within 0.03. Comments: the gaps of three runs at the commit that
/// set them. The G.722 talker's concealment is the open part (benches/RESULTS.md).
const OPEN_IMPAIRED: &OpenGaps = &[
    ("g722", "pcmu", 0.7),  // -0.52, -0.52, -0.52
    ("g722", "pcma", 0.7),  // -0.53, -0.53, -0.53
    ("g722", "g722", 0.85), // -0.67, -0.67, -0.66
    ("g722", "opus", 0.8),  // -0.64, -0.64, -0.62
];
