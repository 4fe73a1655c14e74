//! The I/O thread of the browser-style legs: one thread drives every participant's two
//! peer connections (a WHIP publisher and a WHEP listener, [`BrowserPeer`]s, each on a UDP
//! socket of its own).
//!
//! It runs on an absolute 10 ms schedule, like the SIP legs' receiver, and never waits on a
//! socket (see benches/README.md, "Receiver": a waiter would make the server's `sendto` pay
//! for waking it on loopback). Each slot it drains every socket without blocking (kernel
//! receive stamps on), feeds the datagrams to their peers, runs the peers' timers that are
//! due (a timer waits at most one slot), and on every second slot writes one pre-encoded
//! 20 ms Opus frame into every connected publisher. Loss and jitter come from the RTP header
//! of what the listeners receive, which SRTP leaves in the clear, with the kernel's arrival
//! stamps; the tone check decodes what str0m decrypted.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use media::codec::{CodecKind, Decoder, Encoder};
use media::opus::OpusConfig;
use media::rtp::{AudioLevel, is_rtcp};

use crate::browser_peer::{BrowserPeer, PeerOutput, PeerState};
use crate::latency::{RealtimeNs, realtime_now};
use crate::media_io::{
    self, CYCLE_FRAMES, ClockMap, Role, RxStream, RxSummary, TalkPattern, TxCounters,
};
use crate::tone_check::{ToneMeter, ToneReading};
use crate::udp_rx::{self, TimestampedRx};

/// Poll period: half a frame, as the SIP legs' receiver.
const POLL: Duration = Duration::from_millis(10);
/// RTP clock of Opus (RFC 7587: always 48 kHz).
const OPUS_CLOCK: u32 = 48_000;
/// RTP ticks per 20 ms frame.
const FRAME_TICKS: u64 = 960;
/// Frames each listener decodes for the tone check, from the window start: one second.
pub const TONE_CHECK_FRAMES: u32 = 50;
/// The talkers' tone.
const TONE_HZ: f64 = 440.0;

/// What a browser sends: Opus at 32 kbit/s mono, in-band FEC on, no DTX. Chrome's defaults
/// for a microphone track (it asks for DTX only when the page munges `usedtx=1` into the
/// SDP), so a silent participant sends encoded silence every 20 ms.
pub fn browser_opus() -> OpusConfig {
    OpusConfig {
        bitrate: Some(32_000),
        ..OpusConfig::default()
    }
}

/// One of a participant's two peer connections and its socket.
pub struct PeerLeg {
    /// The peer connection.
    pub peer: BrowserPeer,
    /// Its socket (non-blocking, bound on loopback).
    pub sock: UdpSocket,
    /// Where the server's candidate is: learnt from the first datagram the peer sends (ICE
    /// sends first; the server is ICE-lite), and the only source taken.
    remote: Option<SocketAddr>,
}

impl PeerLeg {
    /// A peer and its socket; receive stamps are turned on here.
    pub fn new(peer: BrowserPeer, sock: UdpSocket) -> anyhow::Result<Self> {
        sock.set_nonblocking(true)?;
        udp_rx::enable_rx_timestamps(&sock).context("setsockopt SO_TIMESTAMPNS")?;
        Ok(Self {
            peer,
            sock,
            remote: None,
        })
    }
}

/// A participant that finished its HTTP exchanges, for the I/O thread.
pub struct NewParticipant {
    /// What it sends.
    pub role: Role,
    /// Whether it should hear the tone in its check (None: no telling, see
    /// [`tone_expected`]).
    pub hears_tone: Option<bool>,
    /// Its WHIP publisher.
    pub whip: PeerLeg,
    /// Its WHEP listener.
    pub whep: PeerLeg,
}

/// Commands to the I/O thread.
pub enum BrowserCommand {
    /// Take a participant.
    Add(Box<NewParticipant>),
    /// Window start (first) or end (second); the I/O thread answers once it has taken
    /// the mark, so that nothing ends a peer before it is counted.
    Mark(mpsc::SyncSender<()>),
    /// Close every peer and return the results.
    Stop,
}

/// Counts the I/O thread keeps current, for the set-up to wait on.
#[derive(Debug, Default)]
pub struct LiveCounts {
    /// Participants whose two peer connections are both connected now.
    pub connected: AtomicUsize,
}

/// The tone check over all participants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToneSummary {
    /// Participants whose room has another talker, checked: heard the tone / checked.
    pub expected_heard: usize,
    /// Participants expected to hear the tone that decoded their whole check.
    pub expected_checked: usize,
    /// Participants with no other talker in their room that heard the tone anyway (a
    /// talker hearing itself): should be 0.
    pub unexpected_heard: usize,
    /// Participants with no other talker that decoded their whole check.
    pub unexpected_checked: usize,
}

/// What the I/O thread hands back.
#[derive(Debug, Clone, Default)]
pub struct BrowserResult {
    /// Loss and jitter at the listeners.
    pub rx: RxSummary,
    /// Tone heard where expected.
    pub tone: ToneSummary,
    /// Participants with a peer connection not connected at the window end.
    pub down_at_window_end: usize,
    /// Errors str0m reported, all peers.
    pub peer_errors: u64,
    /// Datagrams that failed to send (not counting RTP, which is in the sender counters).
    pub send_errors: u64,
}

/// Per-participant state of the I/O thread.
struct Participant {
    role: Role,
    hears_tone: Option<bool>,
    whip: PeerLeg,
    whep: PeerLeg,
    rx: RxStream,
    /// RTP media time of the next frame (48 kHz, 64 bit: str0m wants no wrap).
    media_time: u64,
    /// The tone check, while it runs: decoder, meter, frames still to decode.
    check: Option<(Decoder, ToneMeter, u32)>,
    reading: Option<ToneReading>,
    /// Frames without voice in a row (for DTX).
    quiet_frames: u64,
}

/// While a DTX sender is silent it sends one frame in this many (400 ms at 20 ms), as
/// libopus's DTX under Chrome does (RFC 7587 §3.1.3).
const DTX_EVERY_FRAMES: u64 = 20;

/// The pre-encoded frames every publisher sends from (see `media_io::spawn_sender`).
struct Frames {
    tone: Vec<Vec<u8>>,
    tone_levels: Vec<AudioLevel>,
    silence: Vec<Vec<u8>>,
    silence_levels: Vec<AudioLevel>,
}

impl Frames {
    fn encode(pattern: TalkPattern, talkers: usize) -> anyhow::Result<Self> {
        let encoder = || Encoder::with_opus_config(CodecKind::Opus, browser_opus());
        let (tone, tone_levels) = media_io::talker_cycle_with_levels(encoder()?, pattern, talkers)?;
        let (silence, silence_levels) =
            media_io::encode_frames_with_levels(encoder()?, None, CYCLE_FRAMES)?;
        Ok(Self {
            tone,
            tone_levels,
            silence,
            silence_levels,
        })
    }

    /// Frame `k` of the run for `role`: payload, level, and whether it is the tone.
    fn frame(&self, role: Role, k: u64) -> (&[u8], AudioLevel, bool) {
        match role {
            Role::Talker { offset_frames, .. } => {
                let n = self.tone.len() as u64;
                let g = ((k + n - offset_frames as u64 % n) % n) as usize;
                (
                    &self.tone[g],
                    self.tone_levels[g],
                    self.tone_levels[g].dbov < 127,
                )
            }
            Role::Listener => {
                let f = (k % self.silence.len() as u64) as usize;
                (&self.silence[f], self.silence_levels[f], false)
            }
        }
    }
}

/// Whether a datagram is RTP (not RTCP, STUN or DTLS: RFC 7983's 128..=191 first byte).
fn is_rtp(buf: &[u8]) -> bool {
    matches!(buf.first(), Some(128..=191)) && !is_rtcp(buf)
}

/// The RTP packets of one send slot.
#[derive(Debug, Default)]
struct SlotSends {
    sent: u64,
    bytes: u64,
    failed: u64,
}

impl PeerLeg {
    /// Sends one datagram the peer asked for; learns the server's address from it. RTP goes
    /// into `rtp` when given, other failures into `errors`.
    fn transmit(
        sock: &UdpSocket,
        remote: &mut Option<SocketAddr>,
        out: PeerOutput<'_>,
        rtp: Option<&mut SlotSends>,
        errors: &mut u64,
    ) {
        let PeerOutput::Transmit { to, payload } = out else {
            return;
        };
        *remote = Some(to);
        let ok = sock.send_to(payload, to).is_ok();
        match rtp {
            Some(rtp) if is_rtp(payload) => {
                if ok {
                    rtp.sent += 1;
                    rtp.bytes += payload.len() as u64;
                } else {
                    rtp.failed += 1;
                }
            }
            _ if !ok => *errors += 1,
            _ => {}
        }
    }

    /// Drains the socket into the peer without waiting. `seen` gets every datagram with its
    /// kernel stamp first, `audio` every Opus packet the peer decrypts.
    fn receive(
        &mut self,
        rx: &mut TimestampedRx,
        now: Instant,
        errors: &mut u64,
        mut seen: impl FnMut(&[u8], Option<RealtimeNs>),
        mut audio: impl FnMut(&[u8]),
    ) {
        let PeerLeg { peer, sock, remote } = self;
        // A receive error (none expected on a bound UDP socket) skips the socket this slot.
        while let Ok(n) = rx.recv(sock.as_raw_fd()) {
            for j in 0..n {
                // Nothing comes before we sent to the server, so `remote` is known.
                let (Some((buf, stamp)), Some(from)) = (rx.datagram(j), *remote) else {
                    continue;
                };
                seen(buf, stamp);
                peer.handle_datagram(now, from, buf, |out| match out {
                    PeerOutput::Audio(payload) => audio(payload),
                    out => Self::transmit(sock, remote, out, None, errors),
                });
            }
            if n < udp_rx::BATCH {
                break;
            }
        }
    }

    /// Runs the peer's timer if it is due.
    fn run_timer(&mut self, now: Instant, errors: &mut u64) {
        if self.peer.poll_timeout() > now {
            return;
        }
        let PeerLeg { peer, sock, remote } = self;
        peer.handle_timeout(now, |out| Self::transmit(sock, remote, out, None, errors));
    }

    /// Writes one frame and sends what comes of it.
    fn send_frame(
        &mut self,
        now: Instant,
        media_time: u64,
        (payload, level, voice): (&[u8], AudioLevel, bool),
        rtp: &mut SlotSends,
        errors: &mut u64,
    ) {
        let PeerLeg { peer, sock, remote } = self;
        peer.send_opus(now, media_time, payload, level.dbov, voice, |out| {
            Self::transmit(sock, remote, out, Some(&mut *rtp), errors)
        });
    }

    fn is_up(&self) -> bool {
        self.peer.state() == PeerState::Connected
    }
}

/// Everything the I/O thread keeps.
struct LegsThread {
    frames: Frames,
    /// Publishers pause while silent, as browsers asked for DTX do.
    dtx: bool,
    map: ClockMap,
    participants: Vec<Participant>,
    result: BrowserResult,
    rx: TimestampedRx,
    /// Decoded PCM of the tone check (120 ms at 48 kHz: the longest Opus frame).
    pcm: Vec<i16>,
    marks: u32,
}

impl LegsThread {
    /// Handles the commands waiting; false once told to stop.
    fn take_commands(&mut self, commands: &mpsc::Receiver<BrowserCommand>) -> bool {
        loop {
            match commands.try_recv() {
                Ok(BrowserCommand::Add(p)) => self.add(*p),
                Ok(BrowserCommand::Mark(taken)) => {
                    self.mark();
                    let _ = taken.send(());
                }
                Ok(BrowserCommand::Stop) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    fn add(&mut self, p: NewParticipant) {
        // Each stream starts at its own media time, as browsers' do.
        let seed = (self.participants.len() as u64 + 1).wrapping_mul(2_654_435_761)
            ^ u64::from(std::process::id());
        self.participants.push(Participant {
            role: p.role,
            hears_tone: p.hears_tone,
            whip: p.whip,
            whep: p.whep,
            rx: RxStream::new(OPUS_CLOCK),
            media_time: seed & 0xffff_ffff,
            check: None,
            reading: None,
            quiet_frames: 0,
        });
    }

    /// Window start: the tone checks begin. Window end: who is down.
    fn mark(&mut self) {
        self.marks += 1;
        for p in &mut self.participants {
            p.rx.mark();
            if self.marks == 1 {
                p.check = Decoder::new(CodecKind::Opus).ok().map(|d| {
                    let meter = ToneMeter::new(TONE_HZ, CodecKind::Opus.sample_rate());
                    (d, meter, TONE_CHECK_FRAMES)
                });
            } else if self.marks == 2 && !(p.whip.is_up() && p.whep.is_up()) {
                self.result.down_at_window_end += 1;
            }
        }
    }

    /// One slot at `now`: receive, timers, and on send slots frame `frame` for every
    /// publisher. Returns the participants up and, on send slots, the RTP sent.
    fn serve(&mut self, now: Instant, frame: Option<u64>) -> (usize, SlotSends) {
        let polled = realtime_now();
        let mut rtp = SlotSends::default();
        let mut connected = 0;
        let errors = &mut self.result.send_errors;
        for p in &mut self.participants {
            // The publisher's socket: STUN answers, DTLS, RTCP from the server.
            p.whip.receive(&mut self.rx, now, errors, |_, _| {}, |_| {});
            // The listener's socket: the room's audio, counted from the clear RTP header
            // at its kernel arrival stamp before str0m decrypts it.
            let (stats, check, reading) = (&mut p.rx, &mut p.check, &mut p.reading);
            let map = self.map;
            let pcm = &mut self.pcm;
            p.whep.receive(
                &mut self.rx,
                now,
                errors,
                |buf, stamp| {
                    if is_rtp(buf) {
                        stats.on_packet(buf, OPUS_CLOCK, map.to_instant(stamp.unwrap_or(polled)));
                    }
                },
                |payload| check_tone(check, reading, payload, pcm),
            );
            p.whip.run_timer(now, errors);
            p.whep.run_timer(now, errors);
            if let Some(k) = frame {
                let frame = self.frames.frame(p.role, k);
                let voice = frame.2;
                p.quiet_frames = if voice { 0 } else { p.quiet_frames + 1 };
                // A browser asked for DTX sends the first silent frame, then one per 400 ms.
                let left_out = self.dtx && !voice && p.quiet_frames % DTX_EVERY_FRAMES != 1;
                if !left_out {
                    p.whip
                        .send_frame(now, p.media_time, frame, &mut rtp, errors);
                }
                // The clock runs whether or not the frame went out, as a browser's.
                p.media_time += FRAME_TICKS;
            }
            if p.whip.is_up() && p.whep.is_up() {
                connected += 1;
            }
        }
        (connected, rtp)
    }

    /// Closes every peer and sums up.
    fn finish(mut self) -> BrowserResult {
        for p in &mut self.participants {
            p.whip.peer.close();
            p.whep.peer.close();
            self.result.peer_errors += p.whip.peer.errors + p.whep.peer.errors;
        }
        self.result.rx = media_io::summarise(self.participants.iter().map(|p| &p.rx));
        self.result.tone = summarise_tone(
            self.participants
                .iter()
                .filter_map(|p| Some((p.hears_tone?, p.reading.filter(|_| p.check.is_none())))),
        );
        self.result
    }
}

/// Starts the I/O thread. `talkers` and `pattern` shape the talkers' cycle as for the SIP
/// legs; sends are counted in `tx`.
pub fn spawn(
    pattern: TalkPattern,
    talkers: usize,
    dtx: bool,
    commands: mpsc::Receiver<BrowserCommand>,
    live: Arc<LiveCounts>,
    tx: Arc<TxCounters>,
) -> anyhow::Result<JoinHandle<BrowserResult>> {
    let frames = Frames::encode(pattern, talkers)?;
    std::thread::Builder::new()
        .name("browser-legs".into())
        .spawn(move || {
            // Made here: the receive buffers hold raw pointers, which stay on this thread.
            let mut thread = LegsThread {
                frames,
                dtx,
                map: ClockMap::now(),
                participants: Vec::new(),
                result: BrowserResult::default(),
                rx: TimestampedRx::new(),
                pcm: vec![0; 5760],
                marks: 0,
            };
            let t0 = Instant::now();
            let mut k: u64 = 0;
            while thread.take_commands(&commands) {
                k += 1;
                let slot = t0 + POLL * (k as u32);
                let now = Instant::now();
                if slot > now {
                    std::thread::sleep(slot - now);
                } else {
                    // Fell behind: skip the missed slots rather than spin through them (a
                    // send slot skipped shows as lag in the sender counters).
                    k = (now.duration_since(t0).as_millis() / POLL.as_millis()) as u64;
                }
                let now = Instant::now();
                // Every second slot is a send slot: frame k/2 of the run.
                let frame = k.is_multiple_of(2).then_some(k / 2);
                if frame.is_some() {
                    tx.record_slot(now.saturating_duration_since(t0 + POLL * (k as u32)));
                }
                let (connected, rtp) = thread.serve(now, frame);
                if frame.is_some() {
                    tx.record_sends(rtp.sent, rtp.bytes, rtp.failed);
                }
                live.connected.store(connected, Ordering::Relaxed);
            }
            thread.finish()
        })
        .context("spawning the browser legs' thread")
}

/// Decodes one received frame into the participant's tone check while it runs; the reading
/// is taken when the check's last frame is in.
fn check_tone(
    check: &mut Option<(Decoder, ToneMeter, u32)>,
    reading: &mut Option<ToneReading>,
    payload: &[u8],
    pcm: &mut [i16],
) {
    let Some((decoder, meter, left)) = check else {
        return;
    };
    if let Ok(n) = decoder.decode(payload, pcm) {
        meter.feed(pcm.get(..n).unwrap_or_default());
    }
    *left -= 1;
    if *left == 0 {
        *reading = Some(meter.reading());
        *check = None;
    }
}

/// Counts over (hears the tone?, the finished check's reading) per participant.
fn summarise_tone(
    participants: impl IntoIterator<Item = (bool, Option<ToneReading>)>,
) -> ToneSummary {
    let mut s = ToneSummary::default();
    for (expected, reading) in participants {
        let Some(reading) = reading else { continue };
        if expected {
            s.expected_checked += 1;
            s.expected_heard += usize::from(reading.heard());
        } else {
            s.unexpected_checked += 1;
            s.unexpected_heard += usize::from(reading.heard());
        }
    }
    s
}

/// Whether participant `i` (room `i % rooms`, the first `talkers` of each room talk)
/// should hear the tone in the second its check decodes: yes when its room has a talker
/// other than itself, no when not. With `turns`, a talker whose own turn it may be hears
/// silence while another talker's turn would bring the tone, so talkers are not judged.
pub fn tone_expected(
    i: usize,
    rooms: usize,
    talkers: usize,
    participants: usize,
    pattern: TalkPattern,
) -> Option<bool> {
    let rooms = rooms.max(1);
    let room = i % rooms;
    // Members of the room: room, room + rooms, ...; talkers are the first `talkers` of them.
    let members = (participants + rooms - 1 - room) / rooms;
    let talking = talkers.min(members);
    let me_talking = i / rooms < talkers;
    if me_talking && talking > 1 && pattern == TalkPattern::Turns {
        return None;
    }
    Some(talking > usize::from(me_talking))
}

#[cfg(test)]
mod tests {
    use super::*;

    use media::codec::DEFAULT_PTIME_MS;

    #[test]
    fn listeners_hear_the_one_talker_and_the_talker_hears_nobody() {
        let expected =
            |i, rooms, talkers, n| tone_expected(i, rooms, talkers, n, TalkPattern::Continuous);
        // 20 participants in 2 rooms, one talker each: 0 and 1 talk.
        assert_eq!(expected(0, 2, 1, 20), Some(false));
        assert_eq!(expected(1, 2, 1, 20), Some(false));
        assert!((2..20).all(|i| expected(i, 2, 1, 20) == Some(true)));
        // Two talkers per room: talkers hear each other.
        assert_eq!(expected(0, 2, 2, 20), Some(true));
        // No talkers: nobody.
        assert!((0..20).all(|i| expected(i, 2, 0, 20) == Some(false)));
        // Room 1 of 3 with 4 participants has one member (1): it talks alone.
        assert_eq!(expected(1, 3, 2, 4), Some(false));
        assert_eq!(expected(3, 3, 2, 4), Some(true));
    }

    #[test]
    fn talkers_taking_turns_are_not_judged_but_their_listeners_are() {
        let expected = |i| tone_expected(i, 2, 2, 20, TalkPattern::Turns);
        assert_eq!(expected(0), None);
        assert_eq!(expected(3), None);
        assert_eq!(expected(4), Some(true));
        // A lone talker taking turns with nobody still must not hear itself.
        assert_eq!(tone_expected(0, 2, 1, 20, TalkPattern::Turns), Some(false));
    }

    #[test]
    fn tone_summary_counts_only_finished_checks() {
        let heard = ToneReading {
            tone_dbfs: -20.0,
            share: 0.95,
        };
        let quiet = ToneReading {
            tone_dbfs: f64::NEG_INFINITY,
            share: 0.0,
        };
        let s = summarise_tone([
            (true, Some(heard)),
            (true, Some(quiet)),
            (true, None),
            (false, Some(quiet)),
            (false, Some(heard)),
        ]);
        assert_eq!(
            s,
            ToneSummary {
                expected_heard: 1,
                expected_checked: 2,
                unexpected_heard: 1,
                unexpected_checked: 2,
            }
        );
    }

    #[test]
    fn talkers_send_the_tone_from_their_offset_and_listeners_silence() {
        let frames = Frames::encode(TalkPattern::Turns, 2).unwrap();
        let turn = (media_io::TURN_MS / DEFAULT_PTIME_MS) as u64;
        let first = Role::Talker {
            offset_frames: 0,
            probe_room: None,
        };
        let second = Role::Talker {
            offset_frames: turn as usize,
            probe_room: None,
        };
        assert!(frames.frame(first, 0).2 && !frames.frame(second, 0).2);
        assert!(!frames.frame(first, turn).2 && frames.frame(second, turn).2);
        let (payload, level, tone) = frames.frame(Role::Listener, 7);
        assert!(!tone);
        assert_eq!(level.dbov, 127);
        // Encoded silence at 32 kbit/s is a few bytes, not nothing (no DTX).
        assert!(!payload.is_empty());
    }

    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls() {
        assert!(is_rtp(&[0x80, 111, 0, 1]));
        assert!(!is_rtp(&[0x80, 200, 0, 6])); // RTCP sender report
        assert!(!is_rtp(&[0x00, 0x01, 0, 0])); // STUN binding request
        assert!(!is_rtp(&[22, 0xfe, 0xfd])); // DTLS handshake
    }
}
