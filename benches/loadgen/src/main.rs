//! amt-loadgen: end-to-end load benchmark for the amtsleitung conference server.
//!
//! Starts the server on loopback, sets up N real SIP calls over UDP into M rooms, streams
//! paced RTP (K talkers per room, the rest send encoded silence), receives everything the
//! server sends back, and reports server CPU per participant-second, late media ticks,
//! loss and jitter at the receivers, memory, and (with `--talk-pattern bursts`) the delay
//! the server adds between a talker's tone burst and its onset at sampled listeners. With
//! `--mode pairs` it places N/2 two-party calls instead: the server dials each one on to
//! the load generator's own callee side (`uas`), and both legs send and are measured.
//! It is a measuring tool, not a SIP stack: the SIP text is hand-written and only covers
//! what our own server sends and answers.

mod browser_legs;
mod browser_peer;
mod browser_run;
mod floor_run;
mod http_client;
mod latency;
mod measure;
mod media_io;
mod server_proc;
mod sip_text;
mod tone_check;
mod uas;
mod udp_rx;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use media::codec::CodecKind;

use crate::latency::{LatencySummary, RealtimeNs, realtime_now};
use crate::media_io::{RxCommand, RxSummary, TalkPattern, TalkPlan, TxCounters, TxSummary};
use crate::server_proc::{ProcSample, ServerProcess, StoredRooms};
use crate::sip_text::Leg;
use crate::uas::{CalleeSide, CalleeUas};

/// The server's default `[webrtc] max-sessions`: a WebRTC participant takes two.
const WEBRTC_DEFAULT_MAX_SESSIONS: usize = 500;
/// Participants a room admits unless it was created with `amtsleitung room create`.
const DEFAULT_ROOM_MAX: usize = 50;

/// Codec the participants offer (only this one, so the server must take it).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum CodecArg {
    /// G.711 µ-law.
    Pcmu,
    /// G.722.
    G722,
    /// Opus.
    Opus,
}

impl From<CodecArg> for CodecKind {
    fn from(c: CodecArg) -> Self {
        match c {
            CodecArg::Pcmu => CodecKind::Pcmu,
            CodecArg::G722 => CodecKind::G722,
            CodecArg::Opus => CodecKind::Opus,
        }
    }
}

/// What the participants are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LegKind {
    /// SIP phones: a call each, RTP.
    Sip,
    /// Browser-style WebRTC clients: a WHIP publisher and a WHEP listener each, DTLS-SRTP,
    /// Opus (rooms mode only).
    Webrtc,
}

impl LegKind {
    fn name(self) -> &'static str {
        match self {
            LegKind::Sip => "sip",
            LegKind::Webrtc => "webrtc",
        }
    }
}

/// What kind of calls the run places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Every participant dials into a conference room (8NNNN).
    Rooms,
    /// N/2 two-party calls: the caller dials 7NNNN, the server dials our callee side.
    Pairs,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Rooms => "rooms",
            Mode::Pairs => "pairs",
        }
    }
}

/// How the talkers talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TalkPatternArg {
    /// A steady -16 dBFS 440 Hz tone.
    Continuous,
    /// 300 ms bursts on a 1 s cycle, talkers of a room staggered: the latency probe.
    Bursts,
    /// The talkers of a room take 3 s turns: a conversation, mostly one voice at a time.
    Turns,
}

impl From<TalkPatternArg> for TalkPattern {
    fn from(t: TalkPatternArg) -> Self {
        match t {
            TalkPatternArg::Continuous => TalkPattern::Continuous,
            TalkPatternArg::Bursts => TalkPattern::Bursts,
            TalkPatternArg::Turns => TalkPattern::Turns,
        }
    }
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "amt-loadgen",
    about = "End-to-end load benchmark for amtsleitung"
)]
struct Cli {
    /// Server binary (use a release build for meaningful numbers).
    #[arg(long, default_value = "target/release/amtsleitung")]
    server: PathBuf,
    /// Conference rooms (`rooms`), or two-party calls relayed by the server between our
    /// caller and callee legs (`pairs`).
    #[arg(long, value_enum, default_value = "rooms")]
    mode: Mode,
    /// Total participants: calls into rooms, or call legs in pairs mode (even; N/2 calls).
    #[arg(long, default_value_t = 100)]
    participants: usize,
    /// Conference rooms (numbers 1000.., dialled as 8NNNN); ignored in pairs mode.
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    /// SIP phones, or browser-style WebRTC participants (each publishes over WHIP and
    /// listens over WHEP, through str0m; rooms mode only).
    #[arg(long, value_enum, default_value = "sip")]
    leg: LegKind,
    /// Codec offered by every participant: PCMU unless given for SIP legs; WebRTC legs are
    /// always Opus.
    #[arg(long, value_enum)]
    codec: Option<CodecArg>,
    /// Participants per room sending a tone; the others send encoded silence. Ignored in
    /// pairs mode, where both legs of every call send the tone.
    #[arg(long, default_value_t = 2)]
    speakers_per_room: usize,
    /// Measurement window in seconds (after set-up and warm-up).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Warm-up after the last call is answered (join announcements), seconds.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Call set-up rate, calls per second.
    #[arg(long, default_value_t = 50)]
    cps: u32,
    /// Server media worker threads (0 = one per core, the server's default).
    #[arg(long, default_value_t = 0)]
    media_workers: usize,
    /// Repository root, the server's working directory (dialplans/, sounds/).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
    repo: PathBuf,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Talkers send a steady tone, or tone bursts whose onsets measure the added latency.
    #[arg(long, value_enum, default_value = "continuous")]
    talk_pattern: TalkPatternArg,
    /// Latency probes (bursts only): the first listener of each of the first N rooms.
    #[arg(long, default_value_t = 20)]
    latency_listeners: usize,
    /// Offer the RFC 6464 audio-level header extension and send every packet's level in
    /// it, as WebRTC clients do: the server may then skip decoding silent participants.
    #[arg(long)]
    audio_level: bool,
    /// Opus participants ask for discontinuous transmission (RFC 7587 `usedtx=1`), so the
    /// server may leave out the silent frames it would send them; browser-style
    /// participants pause while silent, as browsers do that the server asked for DTX, and
    /// their listening sessions ask for DTX too.
    #[arg(long)]
    dtx: bool,
    /// After the run (server stopped), measure the kernel floor for the same participants
    /// and datagram sizes with `amt-udp-floor` (built next to this binary) for as long as
    /// the window, and report it next to the server's cost.
    #[arg(long)]
    floor: bool,
    /// Extra argument for the server's `serve` command line (repeatable, in order).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

/// Per-call UAC state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallState {
    NotStarted,
    Inviting {
        sent: Instant,
        tries: u32,
        provisional: bool,
    },
    Established {
        to_tag: Option<String>,
        target: Option<String>,
    },
    Failed(u16),
    Ended,
}

/// All calls of the run and the SIP socket they share.
struct Uac {
    sock: UdpSocket,
    legs: Vec<Leg>,
    states: Vec<CallState>,
    rtp_local: Vec<SocketAddr>,
    codec: CodecKind,
    audio_level: bool,
    dtx: bool,
    prefix: String,
    to_sender: mpsc::Sender<(usize, Option<SocketAddr>)>,
    bye_ok: usize,
    server_byes: usize,
    buf: Vec<u8>,
}

impl Uac {
    fn index_of(&self, call_id: &str) -> Option<usize> {
        let i: usize = call_id.strip_prefix(&self.prefix)?.parse().ok()?;
        (i < self.legs.len()).then_some(i)
    }

    fn send(&self, text: &str, to: SocketAddr) {
        // Loss of a SIP datagram is handled by retransmission, so a send error is not fatal.
        let _ = self.sock.send_to(text.as_bytes(), to);
    }

    fn invite(&mut self, i: usize, now: Instant) {
        let Some(leg) = self.legs.get(i) else { return };
        let sdp = sip_text::sdp_offer(
            self.rtp_local[i],
            self.codec,
            i as u64 + 1,
            self.audio_level,
            self.dtx,
        );
        self.send(&leg.invite(&sdp), leg.server);
        let tries = match self.states[i] {
            CallState::Inviting { tries, .. } => tries + 1,
            _ => 1,
        };
        self.states[i] = CallState::Inviting {
            sent: now,
            tries,
            provisional: false,
        };
    }

    /// Receives and handles SIP until `until` (one datagram at a time, short timeout).
    fn pump(&mut self, until: Instant) {
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            let wait = (until - now).min(Duration::from_millis(20));
            let _ = self
                .sock
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
            let n = match self.sock.recv_from(&mut self.buf) {
                Ok((n, _)) => n,
                Err(_) => continue,
            };
            let text = String::from_utf8_lossy(&self.buf[..n]).into_owned();
            self.handle(&text);
        }
    }

    fn handle(&mut self, text: &str) {
        let Some(msg) = sip_text::parse(text) else {
            return;
        };
        let Some(i) = self.index_of(msg.call_id) else {
            return;
        };
        let leg = self.legs[i].clone();
        if let Some(method) = msg.method {
            self.send(&sip_text::ok_response(&msg), leg.server);
            if method == "BYE" && !matches!(self.states[i], CallState::Ended) {
                let _ = self.to_sender.send((i, None));
                self.server_byes += 1;
                self.states[i] = CallState::Ended;
            }
            return;
        }
        let Some(code) = msg.status else { return };
        match (msg.cseq_method, code) {
            ("INVITE", 100..=199) => {
                if let CallState::Inviting { provisional, .. } = &mut self.states[i] {
                    *provisional = true;
                }
            }
            ("INVITE", 200..=299) => {
                let to_tag = msg.to_tag.map(str::to_owned);
                let target = msg.contact.map(str::to_owned);
                self.send(&leg.ack(to_tag.as_deref(), target.as_deref()), leg.server);
                if matches!(self.states[i], CallState::Inviting { .. }) {
                    match sip_text::sdp_audio_addr(msg.body) {
                        Some(rtp) => {
                            let _ = self.to_sender.send((i, Some(rtp)));
                            self.states[i] = CallState::Established { to_tag, target };
                        }
                        None => self.states[i] = CallState::Failed(code),
                    }
                }
            }
            ("INVITE", _) => {
                // RFC 3261 §17.1.1.3: ACK for a non-2xx reuses the INVITE's branch.
                self.send(&leg.ack_non_2xx(msg.to_tag), leg.server);
                if matches!(self.states[i], CallState::Inviting { .. }) {
                    self.states[i] = CallState::Failed(code);
                }
            }
            ("BYE", 200..=299) if !matches!(self.states[i], CallState::Ended) => {
                self.bye_ok += 1;
                self.states[i] = CallState::Ended;
            }
            _ => {}
        }
    }

    /// Retransmits INVITEs with no answer yet (RFC 3261 Timer A, simplified: 1 s, 3 tries).
    fn retransmit(&mut self, now: Instant) {
        for i in 0..self.states.len() {
            if let CallState::Inviting {
                sent,
                tries,
                provisional: false,
            } = self.states[i]
                && now.duration_since(sent) > Duration::from_secs(1)
            {
                if tries >= 4 {
                    self.states[i] = CallState::Failed(408);
                } else {
                    self.invite(i, now);
                }
            }
        }
    }

    fn count(&self, f: impl Fn(&CallState) -> bool) -> usize {
        self.states.iter().filter(|s| f(s)).count()
    }

    fn established(&self) -> usize {
        self.count(|s| matches!(s, CallState::Established { .. }))
    }

    fn pending(&self) -> usize {
        self.count(|s| matches!(s, CallState::NotStarted | CallState::Inviting { .. }))
    }

    /// Sends BYE on every established call, paced, and waits for the 200s.
    fn hang_up_all(&mut self, pace: Duration) {
        for round in 0..2 {
            for i in 0..self.states.len() {
                if let CallState::Established { to_tag, target } = &self.states[i] {
                    let leg = &self.legs[i];
                    self.send(&leg.bye(to_tag.as_deref(), target.as_deref()), leg.server);
                    if round == 0 {
                        let next = Instant::now() + pace;
                        self.pump(next);
                    }
                }
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.established() > 0 && Instant::now() < deadline {
                self.pump(Instant::now() + Duration::from_millis(50));
            }
            if self.established() == 0 {
                break;
            }
        }
    }
}

/// Samples taken at one instant of the run.
#[derive(Debug, Clone)]
struct Mark {
    at: Instant,
    server: ProcSample,
    loadgen_cpu_ticks: u64,
    metrics: String,
}

fn take_mark(server: &ServerProcess) -> anyhow::Result<Mark> {
    Ok(Mark {
        at: Instant::now(),
        server: server.sample()?,
        loadgen_cpu_ticks: server_proc::self_cpu_ticks()?,
        metrics: server.metrics().unwrap_or_default(),
    })
}

fn metric_delta(a: &Mark, b: &Mark, name: &str) -> Option<f64> {
    Some(
        measure::prometheus_value(&b.metrics, name)? - measure::prometheus_value(&a.metrics, name)?,
    )
}

/// What the server (and the load generator) spent in the window between two marks.
struct ServerFigures {
    window_seconds: f64,
    server_cpu_seconds: f64,
    server_user_cpu_seconds: f64,
    server_system_cpu_seconds: f64,
    us_per_participant_second: f64,
    user_us_per_participant_second: f64,
    system_us_per_participant_second: f64,
    participants_per_core: f64,
    loadgen_cpu_seconds: f64,
    server_rss_kib: u64,
    server_hwm_kib: u64,
    ticks: Option<f64>,
    late_ticks: Option<f64>,
    server_rtp_rx: Option<f64>,
    server_rtp_tx: Option<f64>,
    server_rtp_relayed: Option<f64>,
}

impl ServerFigures {
    /// The window from `a` to `b`, its cost spread over `participants` (those carrying media).
    fn between(a: &Mark, b: &Mark, participants: usize) -> Self {
        let window = b.at.duration_since(a.at).as_secs_f64();
        let hz = server_proc::clock_ticks_per_second();
        let user_cpu = b.server.utime_ticks.saturating_sub(a.server.utime_ticks) as f64 / hz;
        let system_cpu = b.server.stime_ticks.saturating_sub(a.server.stime_ticks) as f64 / hz;
        let server_cpu = user_cpu + system_cpu;
        let per_ps = |cpu| measure::cpu_us_per_participant_second(cpu, participants, window);
        let us = per_ps(server_cpu);
        Self {
            window_seconds: window,
            server_cpu_seconds: server_cpu,
            server_user_cpu_seconds: user_cpu,
            server_system_cpu_seconds: system_cpu,
            us_per_participant_second: us,
            user_us_per_participant_second: per_ps(user_cpu),
            system_us_per_participant_second: per_ps(system_cpu),
            participants_per_core: measure::participants_per_core(us),
            loadgen_cpu_seconds: b.loadgen_cpu_ticks.saturating_sub(a.loadgen_cpu_ticks) as f64
                / hz,
            server_rss_kib: b.server.rss_kib,
            server_hwm_kib: b.server.hwm_kib,
            ticks: metric_delta(a, b, "amtsleitung_media_ticks_total"),
            late_ticks: metric_delta(a, b, "amtsleitung_media_late_ticks_total"),
            server_rtp_rx: metric_delta(a, b, "amtsleitung_rtp_packets_received_total"),
            server_rtp_tx: metric_delta(a, b, "amtsleitung_rtp_packets_sent_total"),
            server_rtp_relayed: metric_delta(a, b, "amtsleitung_rtp_packets_relayed_total"),
        }
    }
}

/// The codec the participants use: as given, else PCMU (SIP) or Opus (WebRTC).
fn codec_of(cli: &Cli) -> anyhow::Result<CodecKind> {
    match (cli.leg, cli.codec) {
        (LegKind::Sip, codec) => Ok(codec.unwrap_or(CodecArg::Pcmu).into()),
        (LegKind::Webrtc, None | Some(CodecArg::Opus)) => Ok(CodecKind::Opus),
        (LegKind::Webrtc, Some(_)) => bail!("--leg webrtc is Opus only"),
    }
}

/// Refuses option combinations the chosen mode cannot run.
fn check_options(cli: &Cli) -> anyhow::Result<()> {
    codec_of(cli)?;
    if cli.leg == LegKind::Webrtc {
        if cli.mode != Mode::Rooms {
            bail!("--leg webrtc runs in --mode rooms only");
        }
        if cli.talk_pattern == TalkPatternArg::Bursts {
            bail!("--leg webrtc has no latency probe: --talk-pattern continuous or turns");
        }
        if cli.audio_level {
            bail!("--leg webrtc always sends audio levels, as browsers do: drop --audio-level");
        }
        if cli.participants > WEBRTC_DEFAULT_MAX_SESSIONS / 2 {
            eprintln!(
                "amt-loadgen: warning: {} participants open {} WebRTC sessions, more than the \
                 server's default [webrtc] max-sessions ({WEBRTC_DEFAULT_MAX_SESSIONS}): pass \
                 a config file that raises it with --server-arg --config --server-arg FILE",
                cli.participants,
                2 * cli.participants
            );
        }
    }
    match cli.mode {
        Mode::Rooms => {
            if cli.participants == 0 || cli.rooms == 0 || cli.rooms > cli.participants {
                bail!("need 1 <= --rooms <= --participants");
            }
        }
        Mode::Pairs => {
            if cli.participants < 2 || !cli.participants.is_multiple_of(2) {
                bail!("--mode pairs needs an even --participants >= 2 (two legs per call)");
            }
            if cli.participants / 2 > uas::MAX_PAIR_CALLS {
                bail!(
                    "--mode pairs dials 4-digit numbers: at most {} calls",
                    uas::MAX_PAIR_CALLS
                );
            }
            if cli.talk_pattern != TalkPatternArg::Continuous {
                bail!("--mode pairs sends a steady tone on both legs: no --talk-pattern");
            }
            if cli.audio_level {
                // The server's offers to the callee legs carry no audio-level extension, so
                // half the legs could not send it.
                bail!("--audio-level works in --mode rooms only");
            }
        }
    }
    if cli.duration == 0 || cli.cps == 0 {
        bail!("--duration and --cps must be positive");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    check_options(&cli)?;
    let codec = codec_of(&cli)?;
    server_proc::raise_fd_limit();

    let per_room = cli.participants.div_ceil(cli.rooms.max(1));
    let all_rooms = || {
        (0..cli.rooms)
            .map(|m| ((1000 + m).to_string(), per_room.max(DEFAULT_ROOM_MAX)))
            .collect()
    };
    // WebRTC clients enter stored rooms only, with the room's tokens; callers open rooms on
    // demand, which hold DEFAULT_ROOM_MAX.
    let stored = match cli.leg {
        LegKind::Webrtc => StoredRooms {
            rooms: all_rooms(),
            webrtc_tokens: true,
        },
        LegKind::Sip if cli.mode == Mode::Rooms && per_room > DEFAULT_ROOM_MAX => StoredRooms {
            rooms: all_rooms(),
            webrtc_tokens: false,
        },
        LegKind::Sip => StoredRooms::default(),
    };
    // Pairs: the callee side's SIP socket exists before the dialplan that names it.
    let callee_sock = match cli.mode {
        Mode::Rooms => None,
        Mode::Pairs => Some(UdpSocket::bind("127.0.0.1:0").context("binding callee SIP socket")?),
    };
    let dialplan = match &callee_sock {
        Some(sock) => Some(uas::pairs_dialplan(sock.local_addr()?)),
        None => None,
    };
    // A call takes an even/odd port pair; so does each of a WebRTC participant's two
    // sessions (the odd port stays unused to keep pairs aligned, media_worker.rs bind_one).
    let rtp_ports = match cli.leg {
        LegKind::Sip => 2 * cli.participants,
        LegKind::Webrtc => 4 * cli.participants,
    };
    let server = ServerProcess::start(
        &cli.server,
        &cli.repo,
        rtp_ports,
        cli.media_workers,
        &stored,
        dialplan.as_deref(),
        &cli.server_args,
    )?;
    let result = match cli.leg {
        LegKind::Sip => run(&cli, codec, &server, callee_sock),
        LegKind::Webrtc => browser_run::run(&cli, &server),
    };
    let stopped = server.stop();
    let mut report = result?;
    stopped?;
    if cli.floor {
        report.floor = Some(floor_run::measure(floor_load(&cli, &report))?);
    }
    println!("{}", report.table());
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// What the kernel floor run is asked to move: the run's participants at the datagram sizes
/// it measured, on the server's socket layout, with the server's worker count.
fn floor_load(cli: &Cli, report: &Report) -> floor_run::FloorLoad {
    let fallback = 172;
    let workers = match cli.media_workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        w => w,
    };
    floor_run::FloorLoad {
        participants: report.legs_established,
        workers,
        duration: cli.duration,
        layout: match report.leg {
            LegKind::Sip => floor_run::Layout::PerCall,
            LegKind::Webrtc => floor_run::Layout::PerSession,
        },
        bytes_in: floor_run::mean_bytes(report.tx.bytes_window, report.tx.sent_window, fallback),
        bytes_out: floor_run::mean_bytes(
            report.rx.received_bytes_window,
            report.rx.received_window,
            fallback,
        ),
    }
}

/// What only pairs mode measures.
struct PairsFigures {
    /// Server CPU per established two-party call per second.
    us_per_call_second: f64,
    calls_per_core: f64,
    /// The callee side's counts at the end.
    callee: uas::UasTally,
    /// Callee BYEs before we hung up the callers (the server ended those calls itself).
    callee_byes_before_hangup: u64,
}

/// Everything measured, for the table and the JSON file.
struct Report {
    cli_line: String,
    mode: Mode,
    leg: LegKind,
    /// SIP calls the UAC placed: participants (rooms) or two-party calls (pairs).
    calls: usize,
    /// Participants (rooms) or call legs (pairs) that were up after set-up.
    legs_established: usize,
    participants: usize,
    rooms: usize,
    speakers_per_room: usize,
    codec: CodecKind,
    talk_pattern: TalkPattern,
    audio_level: bool,
    dtx: bool,
    server_args: Vec<String>,
    established: usize,
    failed: usize,
    failures: String,
    setup_seconds: f64,
    server: ServerFigures,
    pairs: Option<PairsFigures>,
    rx: RxSummary,
    tx: TxSummary,
    /// None when the probe was off (continuous pattern or no probe listeners).
    latency: Option<LatencySummary>,
    bye_ok: usize,
    server_byes: usize,
    /// WebRTC runs only.
    webrtc: Option<browser_run::WebRtcFigures>,
    /// With `--floor`.
    floor: Option<floor_run::FloorFigures>,
}

impl Report {
    fn table(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
        let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
        let (latency, onsets) = match &self.latency {
            Some(l) => (
                format!(
                    "{} / {} / {} / {}",
                    ms(l.mean_ms),
                    ms(l.p50_ms),
                    ms(l.p95_ms),
                    ms(l.max_ms)
                ),
                format!("{} / {}", l.matched, l.unmatched),
            ),
            None => ("off".to_string(), "off".to_string()),
        };
        let server_args = if self.server_args.is_empty() {
            "(none)".to_string()
        } else {
            self.server_args.join(" ")
        };
        let scenario = match (self.leg, self.mode) {
            (LegKind::Webrtc, _) => format!(
                "{} browser-style participants (WHIP publisher + WHEP listener, DTLS-SRTP, \
                 str0m), {} rooms, {} talkers/room ({}), opus 32 kbit/s, {}, audio levels \
                 sent",
                self.participants,
                self.rooms,
                self.speakers_per_room,
                pattern_name(self.talk_pattern),
                if self.dtx {
                    "silent publishers pause (DTX)"
                } else {
                    "encoded silence (no DTX)"
                },
            ),
            (LegKind::Sip, Mode::Rooms) => format!(
                "{} participants, {} rooms, {} talkers/room ({}), {}{}",
                self.participants,
                self.rooms,
                self.speakers_per_room,
                pattern_name(self.talk_pattern),
                self.codec.name(),
                match (self.audio_level, self.dtx) {
                    (true, true) => ", audio levels sent, asking for DTX",
                    (true, false) => ", audio levels sent",
                    (false, true) => ", asking for DTX",
                    (false, false) => "",
                }
            ),
            (LegKind::Sip, Mode::Pairs) => format!(
                "pairs: {} two-party calls ({} legs), steady tone both ways, {}",
                self.calls,
                self.participants,
                self.codec.name()
            ),
        };
        let mut rows: Vec<(&str, String)> = vec![
            ("command", self.cli_line.clone()),
            ("scenario", scenario),
            ("server args", server_args),
            (
                "calls established / failed",
                format!("{} / {} {}", self.established, self.failed, self.failures),
            ),
            ("call set-up time s", format!("{:.1}", self.setup_seconds)),
            (
                "measurement window s",
                format!("{:.1}", self.server.window_seconds),
            ),
            (
                "server CPU s",
                format!("{:.2}", self.server.server_cpu_seconds),
            ),
            (
                "server CPU µs per participant-second",
                format!("{:.1}", self.server.us_per_participant_second),
            ),
            (
                "server user CPU µs per participant-second",
                format!("{:.1}", self.server.user_us_per_participant_second),
            ),
            (
                "server system CPU µs per participant-second",
                format!("{:.1}", self.server.system_us_per_participant_second),
            ),
            (
                "participants per core",
                format!("{:.0}", self.server.participants_per_core),
            ),
        ];
        if let Some(f) = &self.floor {
            rows.push((
                "kernel floor µs per participant-second (user / system)",
                format!(
                    "{:.1} ({:.1} / {:.1})",
                    f.us_per_participant_second,
                    f.user_us_per_participant_second,
                    f.system_us_per_participant_second
                ),
            ));
            rows.push((
                "kernel floor load",
                format!(
                    "{} participants, {} threads, {} sockets, {} B in / {} B out per 20 ms",
                    f.load.participants,
                    f.load.workers,
                    f.load.layout.name(),
                    f.load.bytes_in,
                    f.load.bytes_out
                ),
            ));
            rows.push((
                "server ÷ kernel floor",
                format!(
                    "{:.2}",
                    self.server.us_per_participant_second / f.us_per_participant_second
                ),
            ));
        }
        if let Some(p) = &self.pairs {
            rows.push((
                "server CPU µs per call-second",
                format!("{:.1}", p.us_per_call_second),
            ));
            rows.push(("calls per core", format!("{:.0}", p.calls_per_core)));
        }
        rows.extend([
            (
                "loadgen CPU s",
                format!("{:.2}", self.server.loadgen_cpu_seconds),
            ),
            (
                "server RSS MiB (peak)",
                format!(
                    "{:.1} ({:.1})",
                    self.server.server_rss_kib as f64 / 1024.0,
                    self.server.server_hwm_kib as f64 / 1024.0
                ),
            ),
            ("media ticks (window)", opt(self.server.ticks)),
            ("late ticks (window)", opt(self.server.late_ticks)),
            (
                "server RTP rx / tx (window)",
                format!(
                    "{} / {}",
                    opt(self.server.server_rtp_rx),
                    opt(self.server.server_rtp_tx)
                ),
            ),
            (
                "server RTP relayed (window)",
                opt(self.server.server_rtp_relayed),
            ),
            ("loadgen RTP sent (window)", self.tx.sent_window.to_string()),
            (
                "loadgen send drops / late frames",
                format!("{} / {}", self.tx.send_errors, self.tx.late_frames),
            ),
            (
                "loadgen max send lag ms",
                format!("{:.1}", self.tx.max_lag_ms),
            ),
            ("RTP received (window)", self.rx.received_window.to_string()),
            (
                "receivers silent in window",
                self.rx.silent_receivers.to_string(),
            ),
            (
                "loss % at receivers",
                format!("{:.3}", self.rx.loss_percent),
            ),
            (
                "jitter mean / max ms",
                format!(
                    "{:.2} / {:.2}",
                    self.rx.jitter_mean_ms, self.rx.jitter_max_ms
                ),
            ),
            (
                "stream restarts in window",
                self.rx.restarted_streams.to_string(),
            ),
            ("added latency ms mean / p50 / p95 / max", latency),
            ("latency onsets matched / unmatched", onsets),
        ]);
        match &self.webrtc {
            None => rows.push((
                "BYE answered / server BYEs",
                format!("{} / {}", self.bye_ok, self.server_byes),
            )),
            Some(w) => {
                let t = &w.tone;
                rows.extend([
                    (
                        "tone heard: where expected / where not",
                        format!(
                            "{} of {} / {} of {}",
                            t.expected_heard,
                            t.expected_checked,
                            t.unexpected_heard,
                            t.unexpected_checked
                        ),
                    ),
                    (
                        "participants down at window end",
                        w.down_at_window_end.to_string(),
                    ),
                    (
                        "str0m errors / control send errors",
                        format!("{} / {}", w.peer_errors, w.control_send_errors),
                    ),
                    (
                        "DELETE answered / sessions left",
                        format!(
                            "{} of {} / {}",
                            w.deletes_ok,
                            w.deletes_sent,
                            opt(w.sessions_left)
                        ),
                    ),
                ]);
            }
        }
        if let Some(p) = &self.pairs {
            let c = &p.callee;
            rows.push((
                "callee BYEs received (before our hang-up)",
                format!("{} ({})", c.byes, p.callee_byes_before_hangup),
            ));
            rows.push((
                "callee INVITEs answered / resent / refused",
                format!(
                    "{} / {} / {}",
                    c.answered, c.invite_retransmissions, c.rejected
                ),
            ));
            rows.push((
                "callee 200s resent / ACKs missing / refreshes",
                format!(
                    "{} / {} / {}",
                    c.ok_retransmissions, c.acks_missing, c.refreshes
                ),
            ));
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn json(&self) -> serde_json::Value {
        // Two objects merged: one json! of all keys exceeds the macro recursion limit.
        let extra = serde_json::json!({
            "server_user_cpu_seconds": self.server.server_user_cpu_seconds,
            "server_system_cpu_seconds": self.server.server_system_cpu_seconds,
            "server_user_cpu_us_per_participant_second": self.server.user_us_per_participant_second,
            "server_system_cpu_us_per_participant_second": self.server.system_us_per_participant_second,
            "latency_ms_mean": self.latency.as_ref().and_then(|l| l.mean_ms),
            "latency_ms_p50": self.latency.as_ref().and_then(|l| l.p50_ms),
            "latency_ms_p95": self.latency.as_ref().and_then(|l| l.p95_ms),
            "latency_ms_max": self.latency.as_ref().and_then(|l| l.max_ms),
            "latency_onsets_matched": self.latency.as_ref().map(|l| l.matched),
            "latency_onsets_unmatched": self.latency.as_ref().map(|l| l.unmatched),
        });
        let w = self.webrtc.as_ref();
        let f = self.floor.as_ref();
        let legs = serde_json::json!({
            "leg": self.leg.name(),
            "rtp_sent_bytes": self.tx.bytes_window,
            "rtp_received_bytes": self.rx.received_bytes_window,
            "floor_cpu_us_per_participant_second": f.map(|f| f.us_per_participant_second),
            "floor_user_cpu_us_per_participant_second":
                f.map(|f| f.user_us_per_participant_second),
            "floor_system_cpu_us_per_participant_second":
                f.map(|f| f.system_us_per_participant_second),
            "floor_sockets": f.map(|f| f.load.layout.name()),
            "floor_bytes_in": f.map(|f| f.load.bytes_in),
            "floor_bytes_out": f.map(|f| f.load.bytes_out),
            "floor_workers": f.map(|f| f.load.workers),
            "webrtc_tone_heard": w.map(|w| w.tone.expected_heard),
            "webrtc_tone_checked": w.map(|w| w.tone.expected_checked),
            "webrtc_talkers_hearing_tone": w.map(|w| w.tone.unexpected_heard),
            "webrtc_talkers_checked": w.map(|w| w.tone.unexpected_checked),
            "webrtc_down_at_window_end": w.map(|w| w.down_at_window_end),
            "webrtc_peer_errors": w.map(|w| w.peer_errors),
            "webrtc_control_send_errors": w.map(|w| w.control_send_errors),
            "webrtc_deletes_ok": w.map(|w| w.deletes_ok),
            "webrtc_deletes_sent": w.map(|w| w.deletes_sent),
            "webrtc_sessions_left": w.and_then(|w| w.sessions_left),
        });
        let mut v = serde_json::json!({
            "command": self.cli_line,
            "participants": self.participants,
            // Room options mean nothing in pairs mode.
            "rooms": (self.mode == Mode::Rooms).then_some(self.rooms),
            "speakers_per_room": (self.mode == Mode::Rooms).then_some(self.speakers_per_room),
            "codec": self.codec.name(),
            "talk_pattern": pattern_name(self.talk_pattern),
            "audio_level": self.audio_level,
            "dtx": self.dtx,
            "server_args": self.server_args,
            "calls_established": self.established,
            "calls_failed": self.failed,
            "call_failures": self.failures,
            "setup_seconds": self.setup_seconds,
            "window_seconds": self.server.window_seconds,
            "server_cpu_seconds": self.server.server_cpu_seconds,
            "server_cpu_us_per_participant_second": self.server.us_per_participant_second,
            "participants_per_core": self.server.participants_per_core,
            "loadgen_cpu_seconds": self.server.loadgen_cpu_seconds,
            "server_rss_kib": self.server.server_rss_kib,
            "server_rss_peak_kib": self.server.server_hwm_kib,
            "media_ticks": self.server.ticks,
            "late_ticks": self.server.late_ticks,
            "server_rtp_received": self.server.server_rtp_rx,
            "server_rtp_sent": self.server.server_rtp_tx,
            "loadgen_rtp_sent": self.tx.sent_window,
            "loadgen_send_errors": self.tx.send_errors,
            "loadgen_late_frames": self.tx.late_frames,
            "loadgen_max_send_lag_ms": self.tx.max_lag_ms,
            "rtp_received": self.rx.received_window,
            "silent_receivers": self.rx.silent_receivers,
            "loss_percent": self.rx.loss_percent,
            "jitter_mean_ms": self.rx.jitter_mean_ms,
            "jitter_max_ms": self.rx.jitter_max_ms,
            "restarted_streams": self.rx.restarted_streams,
            "bye_answered": self.bye_ok,
            "server_byes": self.server_byes,
        });
        let p = self.pairs.as_ref();
        let pairs = serde_json::json!({
            "mode": self.mode.name(),
            "calls": self.calls,
            "legs_established": self.legs_established,
            "server_rtp_relayed": self.server.server_rtp_relayed,
            "server_cpu_us_per_call_second": p.map(|p| p.us_per_call_second),
            "calls_per_core": p.map(|p| p.calls_per_core),
            "callee_byes": p.map(|p| p.callee.byes),
            "callee_byes_before_hangup": p.map(|p| p.callee_byes_before_hangup),
            "callee_invites_answered": p.map(|p| p.callee.answered),
            "callee_invite_retransmissions": p.map(|p| p.callee.invite_retransmissions),
            "callee_invites_refused": p.map(|p| p.callee.rejected),
            "callee_ok_retransmissions": p.map(|p| p.callee.ok_retransmissions),
            "callee_acks_missing": p.map(|p| p.callee.acks_missing),
            "callee_refreshes": p.map(|p| p.callee.refreshes),
        });
        if let Some(obj) = v.as_object_mut() {
            for more in [extra, pairs, legs] {
                if let serde_json::Value::Object(more) = more {
                    obj.extend(more);
                }
            }
        }
        v
    }
}

/// Name of a talk pattern as on the command line.
fn pattern_name(p: TalkPattern) -> &'static str {
    match p {
        TalkPattern::Continuous => "continuous",
        TalkPattern::Bursts => "bursts",
        TalkPattern::Turns => "turns",
    }
}

/// Roles of all participants (participant i is in room i % rooms; the first `talkers` of
/// each room talk) and the probe listeners (participant, room): the first non-talker of
/// each of the first `probes` rooms, bursts only.
fn plan_talk(
    participants: usize,
    rooms: usize,
    talkers: usize,
    pattern: TalkPattern,
    probes: usize,
) -> (TalkPlan, Vec<(usize, usize)>) {
    let probe_rooms = match pattern {
        TalkPattern::Continuous | TalkPattern::Turns => 0,
        TalkPattern::Bursts => probes.min(rooms),
    };
    let cycle = (latency::CYCLE_MS / media::codec::DEFAULT_PTIME_MS) as usize;
    let roles = (0..participants)
        .map(|i| {
            let (room, k) = (i % rooms, i / rooms);
            if k >= talkers {
                return media_io::Role::Listener;
            }
            media_io::Role::Talker {
                offset_frames: match pattern {
                    TalkPattern::Continuous => 0,
                    TalkPattern::Bursts => latency::burst_offset_frames(k, talkers, cycle),
                    TalkPattern::Turns => k * media_io::talk_cycle_frames(pattern, 1),
                },
                probe_room: (room < probe_rooms).then_some(room),
            }
        })
        .collect();
    let listeners = (0..probe_rooms)
        .map(|room| (talkers * rooms + room, room))
        .filter(|&(i, _)| i < participants)
        .collect();
    (
        TalkPlan {
            pattern,
            roles,
            probe_rooms,
            talkers,
            audio_level: false,
        },
        listeners,
    )
}

/// Roles in pairs mode: both legs of every call talk, a steady tone from the first frame.
fn plan_pairs(participants: usize) -> TalkPlan {
    TalkPlan {
        pattern: TalkPattern::Continuous,
        roles: vec![
            media_io::Role::Talker {
                offset_frames: 0,
                probe_room: None,
            };
            participants
        ],
        probe_rooms: 0,
        talkers: 1,
        audio_level: false,
    }
}

fn run(
    cli: &Cli,
    codec: CodecKind,
    server: &ServerProcess,
    callee_sock: Option<UdpSocket>,
) -> anyhow::Result<Report> {
    let n = cli.participants;
    // Participants 0..callers place calls; in pairs mode callers..n are the callee legs.
    let callers = match cli.mode {
        Mode::Rooms => n,
        Mode::Pairs => n / 2,
    };
    let sip_sock = UdpSocket::bind("127.0.0.1:0").context("binding SIP socket")?;
    let local = sip_sock.local_addr()?;
    let mut rtp_socks = Vec::with_capacity(n);
    for _ in 0..n {
        let s = UdpSocket::bind("127.0.0.1:0").context("binding RTP socket")?;
        s.set_nonblocking(true)?;
        rtp_socks.push(s);
    }
    let rtp_local = rtp_socks
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<Vec<_>, _>>()?;
    let rtp_socks = Arc::new(rtp_socks);

    let prefix = format!("lg{}-", std::process::id());
    let legs = (0..callers)
        .map(|i| Leg {
            call_id: format!("{prefix}{i}"),
            from_tag: format!("f{i}"),
            number: match cli.mode {
                Mode::Rooms => format!("8{}", 1000 + i % cli.rooms),
                Mode::Pairs => uas::pair_number(i),
            },
            local,
            server: server.sip,
        })
        .collect();
    let pattern: TalkPattern = cli.talk_pattern.into();
    let (mut plan, probes) = match cli.mode {
        Mode::Rooms => plan_talk(
            n,
            cli.rooms,
            cli.speakers_per_room,
            pattern,
            cli.latency_listeners,
        ),
        Mode::Pairs => (plan_pairs(n), Vec::new()),
    };
    plan.audio_level = cli.audio_level;
    if !probes.is_empty() && cli.speakers_per_room >= 3 {
        // Bursts 1000/K ms apart leave less than the detector's 150 ms of quiet for K >= 3.
        eprintln!(
            "amt-loadgen: warning: with {} talkers per room the gaps between bursts are \
             shorter than 150 ms, so listeners will find few or no onsets",
            cli.speakers_per_room
        );
    }
    let probing = !probes.is_empty();

    let stop = Arc::new(AtomicBool::new(false));
    let (to_sender, from_uac) = mpsc::channel();
    let tx_counters = Arc::new(TxCounters::default());
    let sender = media_io::spawn_sender(
        codec,
        rtp_socks.clone(),
        plan,
        from_uac,
        stop.clone(),
        tx_counters.clone(),
    )?;
    let (rx_cmd, rx_cmd_rx) = mpsc::channel();
    let receiver = media_io::spawn_receiver(codec, rtp_socks.clone(), probes, rx_cmd_rx)?;
    let callee: Option<CalleeSide> = match callee_sock {
        Some(sock) => {
            let machine = CalleeUas::new(
                sock.local_addr()?,
                codec,
                rtp_local.get(callers..).unwrap_or_default().to_vec(),
                callers,
            );
            Some(uas::spawn(sock, machine, to_sender.clone())?)
        }
        None => None,
    };

    let mut uac = Uac {
        sock: sip_sock,
        legs,
        states: vec![CallState::NotStarted; callers],
        rtp_local,
        codec,
        audio_level: cli.audio_level,
        dtx: cli.dtx,
        prefix,
        to_sender,
        bye_ok: 0,
        server_byes: 0,
        buf: vec![0; 65536],
    };

    // Set-up, paced at --cps with absolute schedule.
    let t_setup = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / f64::from(cli.cps));
    let setup_deadline = t_setup + gap * callers as u32 + Duration::from_secs(15);
    let mut next = 0usize;
    let mut last_retx = t_setup;
    while uac.pending() > 0 && Instant::now() < setup_deadline {
        let now = Instant::now();
        if next < callers && now >= t_setup + gap * next as u32 {
            uac.invite(next, now);
            next += 1;
        }
        if now.duration_since(last_retx) > Duration::from_millis(200) {
            uac.retransmit(now);
            last_retx = now;
        }
        let until = if next < callers {
            t_setup + gap * next as u32
        } else {
            now + Duration::from_millis(50)
        };
        uac.pump(until.max(now + Duration::from_millis(1)));
    }
    let setup_seconds = t_setup.elapsed().as_secs_f64();
    let callers_up = uac.established();
    // A two-party call is established when both of its legs are.
    let (established, legs_established, callee_down) = match &callee {
        None => (callers_up, callers_up, 0),
        Some(c) => {
            let calls = (0..callers)
                .filter(|&i| matches!(uac.states[i], CallState::Established { .. }) && c.is_up(i))
                .count();
            (calls, callers_up + c.legs_up(), callers_up - calls)
        }
    };
    let failed = callers - established;
    let mut failure_codes = std::collections::BTreeMap::<u16, usize>::new();
    for st in &uac.states {
        match st {
            CallState::Failed(code) => *failure_codes.entry(*code).or_default() += 1,
            CallState::NotStarted | CallState::Inviting { .. } => {
                *failure_codes.entry(0).or_default() += 1
            }
            _ => {}
        }
    }
    let mut failures = failure_codes
        .iter()
        .map(|(c, k)| format!("{k}x{c}"))
        .collect::<Vec<_>>();
    if callee_down > 0 {
        failures.push(format!("{callee_down}x(callee leg not up)"));
    }
    let failures = failures.join(" ");
    eprintln!("amt-loadgen: {established}/{callers} calls up in {setup_seconds:.1} s, warming up");
    if established == 0 {
        if let Some(c) = callee {
            c.stop();
        }
        stop.store(true, Ordering::Relaxed);
        let _ = sender.join();
        let _ = rx_cmd.send(RxCommand::Stop);
        let _ = receiver.join();
        bail!(
            "no call was established; server log tail:\n{}",
            server.log_tail()
        );
    }

    uac.pump(Instant::now() + Duration::from_secs(cli.warmup));
    let a = take_mark(server)?;
    let real_a: RealtimeNs = realtime_now();
    let _ = rx_cmd.send(RxCommand::Mark);
    let tx_a = tx_counters.mark();
    uac.pump(a.at + Duration::from_secs(cli.duration));
    let b = take_mark(server)?;
    let real_b: RealtimeNs = realtime_now();
    let _ = rx_cmd.send(RxCommand::Mark);
    let tx = tx_counters.mark().since(&tx_a);

    stop.store(true, Ordering::Relaxed);
    let bursts = sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender thread panicked"))?;
    let callee_byes_before_hangup = callee.as_ref().map_or(0, |c| c.tally().byes);
    uac.hang_up_all(gap / 4);
    // The server ends each callee leg after its caller's BYE.
    let callee_tally = callee.map(|c| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.legs_up() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        c.stop()
    });
    let _ = rx_cmd.send(RxCommand::Stop);
    let rx = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))?;
    let latency = probing.then(|| latency::summarise_latency(&rx.onsets, bursts, (real_a, real_b)));

    // Only established calls carry media, so they are the participants that cost CPU.
    let figures = ServerFigures::between(&a, &b, legs_established);
    let pairs = callee_tally.map(|callee| {
        // The same ratio with the call as the unit.
        let per_call = measure::cpu_us_per_participant_second(
            figures.server_cpu_seconds,
            established,
            figures.window_seconds,
        );
        PairsFigures {
            us_per_call_second: per_call,
            calls_per_core: measure::participants_per_core(per_call),
            callee,
            callee_byes_before_hangup,
        }
    });
    let args: Vec<String> = std::env::args().collect();
    Ok(Report {
        cli_line: args.join(" "),
        mode: cli.mode,
        leg: cli.leg,
        calls: callers,
        legs_established,
        participants: n,
        rooms: cli.rooms,
        speakers_per_room: cli.speakers_per_room,
        codec,
        talk_pattern: pattern,
        audio_level: cli.audio_level,
        dtx: cli.dtx,
        server_args: cli.server_args.clone(),
        established,
        failed,
        failures,
        setup_seconds,
        server: figures,
        pairs,
        rx: rx.summary,
        tx,
        latency,
        bye_ok: uac.bye_ok,
        server_byes: uac.server_byes,
        webrtc: None,
        floor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_io::Role;

    #[test]
    fn probes_are_first_listener_of_first_rooms_and_talkers_are_staggered() {
        // 10 participants in 3 rooms, 2 talkers each: talkers 0..6, listeners 6..10.
        let (plan, probes) = plan_talk(10, 3, 2, TalkPattern::Bursts, 2);
        assert_eq!(probes, vec![(6, 0), (7, 1)]);
        assert_eq!(plan.probe_rooms, 2);
        assert_eq!(
            plan.roles[4],
            Role::Talker {
                offset_frames: 25,
                probe_room: Some(1)
            }
        );
        // Room 2 is not probed.
        assert_eq!(
            plan.roles[2],
            Role::Talker {
                offset_frames: 0,
                probe_room: None
            }
        );
        assert_eq!(plan.roles[9], Role::Listener);
    }

    #[test]
    fn pairs_mode_needs_an_even_leg_count_and_no_room_options() {
        let check = |args: &[&str]| {
            let cli =
                Cli::try_parse_from(["amt-loadgen", "--mode", "pairs"].iter().chain(args)).unwrap();
            check_options(&cli)
        };
        // --rooms defaults to 10 and is ignored: 2 legs are one call.
        assert!(check(&["--participants", "2"]).is_ok());
        assert!(check(&["--participants", "20", "--rooms", "50"]).is_ok());
        assert!(check(&["--participants", "21"]).is_err());
        assert!(check(&["--participants", "0"]).is_err());
        assert!(check(&["--participants", "4", "--talk-pattern", "bursts"]).is_err());
        assert!(check(&["--participants", "4", "--audio-level"]).is_err());
        let rooms = Cli::try_parse_from(["amt-loadgen", "--participants", "5"]).unwrap();
        assert_eq!(rooms.mode, Mode::Rooms);
        assert!(
            check_options(&rooms).is_err(),
            "10 rooms for 5 participants"
        );
    }

    #[test]
    fn pairs_plan_has_every_leg_talking_from_the_first_frame() {
        let plan = plan_pairs(6);
        assert_eq!(plan.roles.len(), 6);
        assert!(plan.roles.iter().all(|r| *r
            == Role::Talker {
                offset_frames: 0,
                probe_room: None
            }));
        assert_eq!(plan.pattern, TalkPattern::Continuous);
        assert_eq!(plan.probe_rooms, 0);
    }

    #[test]
    fn continuous_pattern_has_no_probes_and_rooms_without_listeners_are_skipped() {
        let (plan, probes) = plan_talk(10, 3, 2, TalkPattern::Continuous, 20);
        assert!(probes.is_empty());
        assert_eq!(plan.probe_rooms, 0);
        // 6 participants, 3 rooms, all talkers: no listener to probe.
        let (_, probes) = plan_talk(6, 3, 2, TalkPattern::Bursts, 20);
        assert!(probes.is_empty());
    }
}
