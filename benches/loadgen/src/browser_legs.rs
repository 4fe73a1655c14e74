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
use crate::latency::realtime_now;
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
    /// Whether its room has a talker other than itself (so it should hear the tone).
    pub hears_tone: bool,
    /// Its WHIP publisher.
    pub whip: PeerLeg,
    /// Its WHEP listener.
    pub whep: PeerLeg,
}

/// Commands to the I/O thread.
pub enum BrowserCommand {
    /// Take a participant.
    Add(Box<NewParticipant>),
    /// Window start (first) or end (second).
    Mark,
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
    hears_tone: bool,
    whip: PeerLeg,
    whep: PeerLeg,
    rx: RxStream,
    /// RTP media time of the next frame (48 kHz, 64 bit: str0m wants no wrap).
    media_time: u64,
    /// The tone check, while it runs: decoder, meter, frames still to decode.
    check: Option<(Decoder, ToneMeter, u32)>,
    reading: Option<ToneReading>,
}

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

/// Sends one datagram a peer asked for; learns the server's address from it.
fn transmit(
    sock: &UdpSocket,
    remote: &mut Option<SocketAddr>,
    to: SocketAddr,
    payload: &[u8],
) -> bool {
    *remote = Some(to);
    sock.send_to(payload, to).is_ok()
}

/// Starts the I/O thread. `talkers` and `pattern` shape the talkers' cycle as for the SIP
/// legs; sends are counted in `tx`.
pub fn spawn(
    pattern: TalkPattern,
    talkers: usize,
    commands: mpsc::Receiver<BrowserCommand>,
    live: Arc<LiveCounts>,
    tx: Arc<TxCounters>,
) -> anyhow::Result<JoinHandle<BrowserResult>> {
    let frames = Frames::encode(pattern, talkers)?;
    let map = ClockMap::now();
    std::thread::Builder::new()
        .name("browser-legs".into())
        .spawn(move || {
            let mut participants: Vec<Participant> = Vec::new();
            let mut result = BrowserResult::default();
            let mut rx = TimestampedRx::new();
            let mut pcm = vec![0i16; 5760];
            let mut marks = 0;
            let t0 = Instant::now();
            let mut k: u64 = 0;
            loop {
                let mut stop = false;
                loop {
                    match commands.try_recv() {
                        Ok(BrowserCommand::Add(p)) => {
                            let seed = (participants.len() as u64 + 1).wrapping_mul(2_654_435_761)
                                ^ u64::from(std::process::id());
                            participants.push(Participant {
                                role: p.role,
                                hears_tone: p.hears_tone,
                                whip: p.whip,
                                whep: p.whep,
                                rx: RxStream::new(OPUS_CLOCK),
                                media_time: seed & 0xffff_ffff,
                                check: None,
                                reading: None,
                            });
                        }
                        Ok(BrowserCommand::Mark) => {
                            marks += 1;
                            for p in &mut participants {
                                p.rx.mark();
                                if marks == 1 {
                                    p.check = Decoder::new(CodecKind::Opus).ok().map(|d| {
                                        let meter =
                                            ToneMeter::new(TONE_HZ, CodecKind::Opus.sample_rate());
                                        (d, meter, TONE_CHECK_FRAMES)
                                    });
                                } else if marks == 2 {
                                    let up = |l: &PeerLeg| l.peer.state() == PeerState::Connected;
                                    if !(up(&p.whip) && up(&p.whep)) {
                                        result.down_at_window_end += 1;
                                    }
                                }
                            }
                        }
                        Ok(BrowserCommand::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                            stop = true;
                            break;
                        }
                        Err(mpsc::TryRecvError::Empty) => break,
                    }
                }
                if stop {
                    break;
                }
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
                let polled = realtime_now();
                let map = &map;
                let send_slot = k.is_multiple_of(2);
                if send_slot {
                    tx.record_slot(now.saturating_duration_since(t0 + POLL * (k as u32)));
                }
                let (mut sent, mut bytes, mut rtp_errors) = (0u64, 0u64, 0u64);
                let mut connected = 0;
                for p in &mut participants {
                    let Participant {
                        role,
                        whip,
                        whep,
                        rx: stats,
                        media_time,
                        check,
                        reading,
                        ..
                    } = p;
                    // The publisher's socket: STUN answers, DTLS, RTCP from the server.
                    let PeerLeg { peer, sock, remote } = whip;
                    while let Ok(n) = rx.recv(sock.as_raw_fd()) {
                        for j in 0..n {
                            let (Some((buf, _)), Some(from)) = (rx.datagram(j), *remote) else {
                                continue;
                            };
                            peer.handle_datagram(now, from, buf, |out| {
                                if let PeerOutput::Transmit { to, payload } = out
                                    && !transmit(sock, remote, to, payload)
                                {
                                    result.send_errors += 1;
                                }
                            });
                        }
                        if n < udp_rx::BATCH {
                            break;
                        }
                    }
                    // The listener's socket: the room's audio.
                    let PeerLeg { peer, sock, remote } = whep;
                    while let Ok(n) = rx.recv(sock.as_raw_fd()) {
                        for j in 0..n {
                            let (Some((buf, stamp)), Some(from)) = (rx.datagram(j), *remote) else {
                                continue;
                            };
                            if is_rtp(buf) {
                                let arrival = map.to_instant(stamp.unwrap_or(polled));
                                stats.on_packet(buf, OPUS_CLOCK, arrival);
                            }
                            peer.handle_datagram(now, from, buf, |out| match out {
                                PeerOutput::Transmit { to, payload } => {
                                    if !transmit(sock, remote, to, payload) {
                                        result.send_errors += 1;
                                    }
                                }
                                PeerOutput::Audio(payload) => {
                                    check_tone(check, reading, payload, &mut pcm)
                                }
                            });
                        }
                        if n < udp_rx::BATCH {
                            break;
                        }
                    }
                    // Timers, then this slot's frame.
                    for leg in [&mut *whip, &mut *whep] {
                        if leg.peer.poll_timeout() <= now {
                            let PeerLeg { peer, sock, remote } = leg;
                            peer.handle_timeout(now, |out| {
                                if let PeerOutput::Transmit { to, payload } = out
                                    && !transmit(sock, remote, to, payload)
                                {
                                    result.send_errors += 1;
                                }
                            });
                        }
                    }
                    if send_slot {
                        let (payload, level, voice) = frames.frame(*role, k / 2);
                        let PeerLeg { peer, sock, remote } = whip;
                        peer.send_opus(now, *media_time, payload, level.dbov, voice, |out| {
                            if let PeerOutput::Transmit { to, payload } = out {
                                let ok = transmit(sock, remote, to, payload);
                                if is_rtp(payload) {
                                    if ok {
                                        sent += 1;
                                        bytes += payload.len() as u64;
                                    } else {
                                        rtp_errors += 1;
                                    }
                                } else if !ok {
                                    result.send_errors += 1;
                                }
                            }
                        });
                        // The clock runs whether or not the frame went out, as a browser's.
                        *media_time += FRAME_TICKS;
                    }
                    let up = |l: &PeerLeg| l.peer.state() == PeerState::Connected;
                    if up(whip) && up(whep) {
                        connected += 1;
                    }
                }
                if send_slot {
                    tx.record_sends(sent, bytes, rtp_errors);
                }
                live.connected.store(connected, Ordering::Relaxed);
            }
            for p in &mut participants {
                p.whip.peer.close();
                p.whep.peer.close();
                result.peer_errors += p.whip.peer.errors + p.whep.peer.errors;
            }
            result.rx = media_io::summarise(participants.iter().map(|p| &p.rx));
            result.tone = summarise_tone(
                participants
                    .iter()
                    .map(|p| (p.hears_tone, p.reading.filter(|_| p.check.is_none()))),
            );
            result
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

/// Whether participant `i` (room `i % rooms`, the first `talkers` of each room talk) has
/// a talker other than itself in its room.
pub fn hears_tone(i: usize, rooms: usize, talkers: usize, participants: usize) -> bool {
    let room = i % rooms.max(1);
    // Members of the room: room, room + rooms, ...; talkers are the first `talkers` of them.
    let members = (participants + rooms - 1 - room) / rooms.max(1);
    let talking = talkers.min(members);
    let me_talking = i / rooms.max(1) < talkers;
    talking > usize::from(me_talking)
}

#[cfg(test)]
mod tests {
    use super::*;

    use media::codec::DEFAULT_PTIME_MS;

    #[test]
    fn listeners_hear_the_one_talker_and_the_talker_hears_nobody() {
        // 20 participants in 2 rooms, one talker each: 0 and 1 talk.
        assert!(!hears_tone(0, 2, 1, 20));
        assert!(!hears_tone(1, 2, 1, 20));
        assert!((2..20).all(|i| hears_tone(i, 2, 1, 20)));
        // Two talkers per room: talkers hear each other.
        assert!(hears_tone(0, 2, 2, 20));
        // No talkers: nobody.
        assert!(!(0..20).any(|i| hears_tone(i, 2, 0, 20)));
        // Room 1 of 3 with 4 participants has one member (1): it talks alone.
        assert!(!hears_tone(1, 3, 2, 4));
        assert!(hears_tone(3, 3, 2, 4));
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
