//! WebRTC clients in the media workers: each WHIP or WHEP session is a [`WebRtcLeg`] on a UDP
//! socket of its own, and each client is one participant of its room's mixer.
//!
//! A participant has up to two legs: the WHIP leg it publishes on (its audio goes through the
//! same jitter buffer and Opus decoder, FEC included, as a phone's, see [`AudioReceiver`]) and
//! the WHEP leg it listens on (the room's output for it, encoded by the mixer's shared Opus
//! encoder like a phone's, goes out with [`WebRtcLeg::send_opus`]). A client that does both
//! ties its WHEP session to its WHIP session when it opens it, so both are one participant and
//! the mixer's "everyone but me" keeps its own voice out of what it hears. A join page's one
//! `sendrecv` leg does both ([`BrowserDirection::Both`]): it sits in the publishing slot and
//! also carries the participant's output. A participant that
//! only publishes is deaf in the mixer (nothing is encoded for it); one that only listens puts
//! no frame in (silence).
//!
//! Every tick each leg's socket is drained into its leg, the leg's timers run when due, its
//! datagrams go out, and a leg whose client stayed unreachable past the configured timeout, or
//! that the client closed, ends and is reported to the HTTP side. Nothing here allocates per
//! packet; str0m does (see the `webrtc` crate), and each datagram it hands out is dropped
//! after sending.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use media::codec::CodecKind;
use media::dtx::DtxSender;
use media::leg::{Heard, MAX_PACKET};
use media::receiver::AudioReceiver;
use mixer::{ParticipantId, Room};
use tokio::sync::mpsc::Sender;
use webrtc::{WebRtcEvent, WebRtcLeg};

use crate::media_worker::{SessionId, TICK, TickCounts};
use crate::udp_arrival::{TickClock, recv_with_arrival};

/// Datagrams read from one client's socket per tick at most, so that a flood cannot starve
/// the rest of the worker.
const MAX_DATAGRAMS_PER_TICK: usize = 32;

/// Which way a WebRTC session carries audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserDirection {
    /// WHIP: the client's audio into the room.
    Publish,
    /// WHEP: the room's audio to the client.
    Subscribe,
    /// The join page: one `sendrecv` leg carries the browser's audio in and the room's out.
    Both,
}

/// A WebRTC session for the worker that hosts its room, answered on the HTTP side.
pub struct BrowserStart {
    /// The session.
    pub session: SessionId,
    /// The room participant it belongs to: the session itself, or the WHIP session of the
    /// same client that this WHEP session is tied to.
    pub participant: SessionId,
    /// Room number.
    pub room: String,
    /// Which way it carries audio.
    pub direction: BrowserDirection,
    /// Its UDP socket (non-blocking, from the RTP port range).
    pub socket: UdpSocket,
    /// The answered leg.
    pub leg: WebRtcLeg,
    /// Joins muted (the room waits for its moderator).
    pub muted: bool,
    /// How long the client may stay unreachable before the session ends.
    pub unreachable_timeout: Duration,
    /// Where the worker reports a session that ended by itself.
    pub reports: Sender<BrowserReport>,
    /// Where the worker says each time the session's ICE and DTLS are up (a meeting link
    /// waits for that before it tells the room the meeting is connected); none for clients.
    pub connected: Option<Sender<SessionId>>,
}

/// What the HTTP side asks of the worker hosting a room's WebRTC sessions.
pub enum BrowserCommand {
    /// Take over a session and put its participant in the room.
    Start(Box<BrowserStart>),
    /// End a session (DELETE, or its room closed): DTLS close_notify goes out, the socket
    /// closes, and the participant leaves when it has no session left.
    Stop {
        /// Its room (which names the worker).
        room: String,
        /// The session.
        session: SessionId,
    },
    /// Mute or unmute a participant (the room waits for its moderator, or one arrived).
    SetMuted {
        /// Its room.
        room: String,
        /// The participant.
        participant: SessionId,
        /// Muted or not.
        muted: bool,
    },
}

impl BrowserCommand {
    /// The room the command is about, which names the worker that hosts it.
    pub fn room(&self) -> &str {
        match self {
            BrowserCommand::Start(start) => &start.room,
            BrowserCommand::Stop { room, .. } | BrowserCommand::SetMuted { room, .. } => room,
        }
    }
}

/// Why a session ended without being asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client closed it (DTLS close_notify) or the WebRTC stack failed; the reason says.
    Closed(String),
    /// The client stayed unreachable (ICE consent lapsed) for longer than allowed.
    Unreachable,
    /// The session could not join its room (the mixer is full, or the WHIP session this
    /// WHEP session was tied to is gone).
    NotJoined(String),
}

/// A session a worker could not take: what it needs to report that.
pub struct Refused {
    /// The session.
    pub session: SessionId,
    /// Where to report it.
    pub reports: Sender<BrowserReport>,
    /// Why.
    pub reason: String,
}

impl Refused {
    /// `start` refused for `reason` (its leg and socket are dropped here).
    pub fn new(start: BrowserStart, reason: String) -> Self {
        Self {
            session: start.session,
            reports: start.reports,
            reason,
        }
    }
}

/// A session the worker ended by itself, for the HTTP side's books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserReport {
    /// The session.
    pub session: SessionId,
    /// Why it ended.
    pub end: SessionEnd,
}

/// One WebRTC session's socket and leg.
struct BrowserLeg {
    session: SessionId,
    socket: UdpSocket,
    /// The socket's own address, which every datagram read from it was sent to.
    local: SocketAddr,
    leg: WebRtcLeg,
    /// Since when the client has been unreachable, while it is.
    unreachable_since: Option<Instant>,
    unreachable_timeout: Duration,
    /// Set once the session is over; the participant takes it out at the end of the tick.
    ended: Option<SessionEnd>,
    reports: Sender<BrowserReport>,
    connected: Option<Sender<SessionId>>,
    /// The client asked for DTX (`usedtx=1`): the room's silence goes out now and then.
    dtx: Option<DtxSender>,
}

impl BrowserLeg {
    fn new(start: BrowserStart, local: SocketAddr) -> Self {
        let dtx = start
            .leg
            .peer_prefers_dtx()
            .then(|| DtxSender::new(tick_ms()));
        Self {
            dtx,
            session: start.session,
            local,
            socket: start.socket,
            leg: start.leg,
            unreachable_since: None,
            unreachable_timeout: start.unreachable_timeout,
            ended: None,
            reports: start.reports,
            connected: start.connected,
        }
    }

    /// Reads what the client sent since the last tick, runs the leg's timers when due and
    /// sends what the leg wrote. The client's audio goes to `audio` (the publisher's
    /// receiver); a leg without one drops it.
    fn run(
        &mut self,
        clock: &TickClock,
        buf: &mut [u8; MAX_PACKET],
        mut audio: Option<&mut AudioReceiver>,
        counts: &mut TickCounts,
    ) {
        let now = clock.now;
        for _ in 0..MAX_DATAGRAMS_PER_TICK {
            let (len, from, stamp) = match recv_with_arrival(&self.socket, buf) {
                Ok(x) => x,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                // ICMP port unreachable from an earlier send shows up here on Linux; harmless.
                Err(_) => continue,
            };
            let Some(datagram) = buf.get(..len) else {
                continue;
            };
            // The leg runs on the tick's clock (str0m's time must not go backwards); the
            // jitter buffer gets the kernel's arrival stamp, as for phones.
            self.leg.handle_input(now, from, self.local, datagram);
            self.take_events(now, clock.arrival(stamp), audio.as_deref_mut(), counts);
            self.flush(counts);
        }
        if self.leg.poll_timeout() <= now {
            self.leg.handle_timeout(now);
            self.take_events(now, now, audio, counts);
            self.flush(counts);
        }
        if self.ended.is_none()
            && self.unreachable_since.is_some_and(|since| {
                now.saturating_duration_since(since) >= self.unreachable_timeout
            })
        {
            tracing::info!(session = %self.session, timeout = ?self.unreachable_timeout, "WebRTC client unreachable: session ends");
            self.leg.close(now);
            self.flush(counts);
            self.ended = Some(SessionEnd::Unreachable);
        }
    }

    fn take_events(
        &mut self,
        now: Instant,
        arrival: Instant,
        mut audio: Option<&mut AudioReceiver>,
        counts: &mut TickCounts,
    ) {
        while let Some(event) = self.leg.poll_event() {
            match event {
                WebRtcEvent::Audio(packet) => {
                    let Some(receiver) = audio.as_deref_mut() else {
                        continue;
                    };
                    counts.received += 1;
                    receiver.push(
                        packet.sequence_number,
                        packet.rtp_timestamp,
                        &packet.payload,
                        packet.audio_level.map(|level| level.minus_dbov),
                        arrival,
                    );
                }
                WebRtcEvent::Connected => {
                    tracing::info!(session = %self.session, "WebRTC client connected");
                    self.unreachable_since = None;
                    if let Some(connected) = &self.connected {
                        // Rare and small; a full queue means nobody is waiting for it.
                        let _ = connected.try_send(self.session);
                    }
                }
                WebRtcEvent::Disconnected => {
                    tracing::info!(session = %self.session, "WebRTC client unreachable");
                    self.unreachable_since.get_or_insert(now);
                }
                WebRtcEvent::Closed { reason } => {
                    tracing::info!(session = %self.session, %reason, "WebRTC session closed");
                    self.ended.get_or_insert(SessionEnd::Closed(reason));
                }
            }
        }
    }

    /// Sends every datagram the leg has written.
    fn flush(&mut self, counts: &mut TickCounts) {
        while let Some(datagram) = self.leg.poll_transmit() {
            // A datagram the kernel refuses (no route, buffer full) is a lost packet: ICE,
            // DTLS and the client's jitter buffer all cope with loss.
            if self
                .socket
                .send_to(&datagram.payload, datagram.destination)
                .is_ok()
            {
                counts.datagrams_sent += 1;
            }
        }
    }

    /// Ends the session from our side: DTLS close_notify (and RTCP BYE) go out now.
    fn close(&mut self, now: Instant, counts: &mut TickCounts) {
        self.leg.close(now);
        self.flush(counts);
        let stats = self.leg.stats();
        tracing::info!(session = %self.session, ?stats, "WebRTC session ended");
    }
}

/// One WebRTC client in a room: the mixer participant and its legs.
pub struct BrowserParticipant {
    id: SessionId,
    /// The room's slot in the worker and the participant's id in its mixer.
    slot: usize,
    pid: ParticipantId,
    /// Boxed: a WebRTC leg is about 10 KiB, moved once here rather than with every change
    /// to the worker's list.
    publish: Option<Box<BrowserLeg>>,
    subscribe: Option<Box<BrowserLeg>>,
    /// The publishing leg also carries what the participant hears (a join page's one
    /// `sendrecv` connection).
    duplex: bool,
    /// The published audio: jitter buffer and Opus decoder.
    receiver: AudioReceiver,
    /// RTP timestamp (48 kHz) of the next frame sent to the subscriber; it moves on every
    /// tick, sent or not, so that a frame not sent (the talker's packet was lost upstream)
    /// is a gap the client conceals, not a shift in time.
    send_timestamp: u32,
}

impl BrowserParticipant {
    /// The participant `start` opens, in room `slot` as mixer participant `pid`.
    pub fn new(start: BrowserStart, slot: usize, pid: ParticipantId) -> Result<Self, Refused> {
        let receiver = match AudioReceiver::new(CodecKind::Opus, tick_ms()) {
            Ok(receiver) => receiver,
            Err(err) => return Err(Refused::new(start, err.to_string())),
        };
        let mut participant = Self {
            id: start.participant,
            slot,
            pid,
            publish: None,
            subscribe: None,
            duplex: false,
            receiver,
            send_timestamp: rand::random(),
        };
        participant.attach(start)?;
        Ok(participant)
    }

    /// The participant's id (its first session's).
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The room slot it is in.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Its id in the room's mixer.
    pub fn pid(&self) -> ParticipantId {
        self.pid
    }

    /// Whether it has a session that listens.
    pub fn listens(&self) -> bool {
        self.subscribe.is_some() || (self.duplex && self.publish.is_some())
    }

    /// Whether `session` is one of its legs.
    pub fn has_session(&self, session: SessionId) -> bool {
        [&self.publish, &self.subscribe]
            .into_iter()
            .flatten()
            .any(|leg| leg.session == session)
    }

    /// Whether it has no session left (it leaves the room).
    pub fn is_empty(&self) -> bool {
        self.publish.is_none() && self.subscribe.is_none()
    }

    /// Adds a session to the participant; gives it back when that direction is taken.
    pub fn attach(&mut self, start: BrowserStart) -> Result<(), Refused> {
        let slot = match start.direction {
            BrowserDirection::Publish | BrowserDirection::Both => &mut self.publish,
            BrowserDirection::Subscribe => &mut self.subscribe,
        };
        if slot.is_some() || (self.duplex && start.direction == BrowserDirection::Subscribe) {
            return Err(Refused::new(
                start,
                "the client already has a session this way".to_owned(),
            ));
        }
        let local = match start.socket.local_addr() {
            Ok(local) => local,
            Err(err) => {
                return Err(Refused::new(
                    start,
                    format!("its socket has no address: {err}"),
                ));
            }
        };
        let (session, direction) = (start.session, start.direction);
        *slot = Some(Box::new(BrowserLeg::new(start, local)));
        if direction == BrowserDirection::Both {
            self.duplex = true;
        }
        tracing::info!(%session, participant = %self.id, ?direction, "WebRTC session in the room");
        Ok(())
    }

    /// Reads both sessions' sockets and runs their legs; the published audio goes to the
    /// participant's receiver.
    pub fn receive(
        &mut self,
        clock: &TickClock,
        buf: &mut [u8; MAX_PACKET],
        counts: &mut TickCounts,
    ) {
        if let Some(leg) = self.publish.as_mut() {
            leg.run(clock, buf, Some(&mut self.receiver), counts);
        }
        if let Some(leg) = self.subscribe.as_mut() {
            leg.run(clock, buf, None, counts);
        }
    }

    /// Puts this tick's published frame into the room (a participant that only listens puts
    /// nothing: silence). The same path as a phone's: not decoded when its RFC 6464 level
    /// says nobody could hear it, forwardable as received when it is one whole frame.
    pub fn put_into(
        &mut self,
        now: Instant,
        room: &mut Room,
        heard: &mut [i16],
        counts: &mut TickCounts,
    ) {
        if self.publish.is_none() {
            return;
        }
        let pid = self.pid;
        match self
            .receiver
            .decode(now, heard, |level| !room.needs_pcm(pid, level))
        {
            Heard::Pcm(n, Some(payload)) => room.put_encoded_frame(pid, &heard[..n], payload),
            Heard::Pcm(n, None) => room.put_frame(pid, &heard[..n]),
            Heard::Pause(n) => room.put_pause(pid, &heard[..n]),
            Heard::LevelOnly(level) => {
                room.put_level(pid, level);
                counts.not_decoded += 1;
            }
        }
    }

    /// Sends what the room made for the participant this tick to its listening session.
    pub fn send_from(&mut self, now: Instant, room: &Room, counts: &mut TickCounts) {
        let timestamp = self.send_timestamp;
        self.send_timestamp = timestamp.wrapping_add(frame_ticks());
        let leg = match (self.subscribe.as_mut(), self.duplex) {
            (Some(leg), _) => leg,
            (None, true) => match self.publish.as_mut() {
                Some(leg) => leg,
                None => return,
            },
            (None, false) => return,
        };
        // `None`: the forwarded talker's packet was lost upstream (the client conceals the
        // gap, or recovers it from the next packet's FEC), or the mixer's encoder failed.
        let Some(frame) = room.output(self.pid) else {
            return;
        };
        if let Some(dtx) = leg.dtx.as_mut() {
            if !frame.silence {
                dtx.sound_frame();
            } else if !dtx.silent_frame() {
                // Left out: the timestamp has run on, the sequence number does not.
                leg.flush(counts);
                return;
            }
            if dtx.take_marker() {
                leg.leg.start_talkspurt();
            }
        }
        match leg.leg.send_opus(now, timestamp, frame.payload, None) {
            Ok(()) => counts.sent += 1,
            // Not connected yet, or reconnecting: the mix goes on without this client.
            Err(err) => tracing::trace!(session = %leg.session, "frame not sent: {err}"),
        }
        leg.flush(counts);
    }

    /// Takes out the sessions that ended by themselves this tick; their reports.
    pub fn take_ended(&mut self, ended: &mut Vec<(Sender<BrowserReport>, BrowserReport)>) {
        for slot in [&mut self.publish, &mut self.subscribe] {
            if slot.as_ref().is_some_and(|leg| leg.ended.is_some())
                && let Some(leg) = slot.take()
                && let Some(end) = leg.ended
            {
                let stats = leg.leg.stats();
                tracing::info!(session = %leg.session, ?end, ?stats, "WebRTC session over");
                ended.push((
                    leg.reports,
                    BrowserReport {
                        session: leg.session,
                        end,
                    },
                ));
            }
        }
    }

    /// Ends `session` from our side; false if it is not one of the participant's.
    pub fn stop(&mut self, session: SessionId, now: Instant, counts: &mut TickCounts) -> bool {
        for slot in [&mut self.publish, &mut self.subscribe] {
            if slot.as_ref().is_some_and(|leg| leg.session == session)
                && let Some(mut leg) = slot.take()
            {
                leg.close(now, counts);
                return true;
            }
        }
        false
    }
}

/// The mixer's frame length in ms.
fn tick_ms() -> u32 {
    TICK.as_millis() as u32
}

/// RTP timestamp ticks of one frame at Opus's 48 kHz clock (RFC 7587 §4.1).
fn frame_ticks() -> u32 {
    CodecKind::Opus.rtp_ticks_per_frame(tick_ms())
}
