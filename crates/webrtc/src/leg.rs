//! [`WebRtcLeg`]: one browser's audio over str0m, driven by datagrams and time from outside.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, MediaData, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tracing::debug;

use crate::config::WebRtcConfig;
use crate::error::{SendError, WebRtcError};
use crate::event::{AudioLevel, Datagram, LegStats, ReceivedAudio, WebRtcEvent};
use crate::offer::{parse_complaint, summarize};

/// The largest Opus packet [`WebRtcLeg::send_opus`] takes: one TOC byte and one frame of at
/// most 1275 bytes (RFC 6716 §3.2.1), which is what a 20 ms code-0 packet can be.
pub const MAX_OPUS_PACKET: usize = 1 + 1275;

/// Offers larger than this are refused unread. Browser offers are a few KiB; the HTTP layer
/// should cap bodies too, this only keeps the leg's own promise of bounded work.
const MAX_OFFER: usize = 64 * 1024;

/// str0m may report an error on one poll and still have more output (an RTP payload it could
/// not read, say); this many in one drain means it is stuck, and the leg is failed rather than
/// looping.
const MAX_ERRORS_PER_DRAIN: u32 = 64;

/// How many immediate timeouts `send_opus` runs to get a written frame out of str0m.
const MAX_SEND_ROUNDS: usize = 4;

/// Where a leg stands, as the media worker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Answered; waiting for the browser's ICE checks and DTLS handshake.
    Connecting,
    /// Audio can flow.
    Connected,
    /// ICE consent lapsed (or never came); the browser may still come back.
    Disconnected,
    /// Over for good.
    Closed,
}

/// One browser's WebRTC audio: ICE-lite, DTLS-SRTP and one Opus stream each way.
///
/// Driven like str0m itself, but with its drain rule kept inside: every call that feeds the
/// leg ([`handle_input`](Self::handle_input), [`handle_timeout`](Self::handle_timeout),
/// [`send_opus`](Self::send_opus), [`close`](Self::close)) runs str0m until it has nothing
/// more to say and queues what it said; the worker then takes the queued datagrams with
/// [`poll_transmit`](Self::poll_transmit) and events with [`poll_event`](Self::poll_event),
/// and calls [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout).
pub struct WebRtcLeg {
    rtc: Rtc,
    /// The answered audio m-line and the Opus payload type the browser chose for it.
    mid: Mid,
    opus_pt: Pt,
    /// Datagrams for any other port belong to another socket of the worker.
    local_port: u16,
    /// The host candidate: str0m matches an incoming STUN request's destination against it,
    /// so behind a NAT each datagram's destination is rewritten to it.
    advertised: SocketAddr,
    /// Whether the answer lets us send (the browser did not offer `sendonly`/`inactive`).
    sends: bool,
    /// The peer prefers to receive Opus with DTX (`usedtx=1` in its SDP).
    peer_dtx: bool,
    /// The next frame sent starts a talk spurt after a pause (RTP marker bit).
    talkspurt_next: bool,
    link: Link,
    /// DTLS completed once: ICE coming back after a lapse means audio can flow again.
    dtls_done: bool,
    next_timeout: Instant,
    datagrams: VecDeque<Datagram>,
    events: VecDeque<WebRtcEvent>,
    /// The last RTP timestamp sent and its 64-bit extension, since str0m wants media time
    /// that does not wrap.
    send_clock: Option<(u32, u64)>,
    stats: LegStats,
}

impl std::fmt::Debug for WebRtcLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcLeg")
            .field("advertised", &self.advertised)
            .field("link", &self.link)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl WebRtcLeg {
    /// At most this many datagrams and this many audio events wait to be polled; past that the
    /// newest is dropped and counted in [`LegStats::queue_overflows`]. One input makes a
    /// handful at most, so only a worker that stopped polling gets there.
    pub const MAX_QUEUED: usize = 256;

    /// Answers a browser's offer: the leg, and the answer SDP to send back.
    ///
    /// The answer is ICE-lite with one host candidate ([`WebRtcConfig::advertised`]), DTLS
    /// `setup:passive` for an `actpass` offer, and the first audio m-line that offers Opus,
    /// answered with `opus/48000/2` `minptime=10;useinbandfec=1;usedtx=1` (the browser pauses
    /// while its user is silent) and, when offered, the RFC 6464 audio level and the `mid`
    /// header extensions. A browser's own `usedtx=1` is accepted (it asks us for DTX, which
    /// is up to the caller). Video, further audio m-lines and data
    /// channels in the offer are answered as str0m does (video rejected) and their media is
    /// ignored. `now` starts the leg's clock.
    pub fn answer(
        config: &WebRtcConfig,
        offer_sdp: &str,
        now: Instant,
    ) -> Result<(WebRtcLeg, String), WebRtcError> {
        let advertised = config.advertised()?;
        if offer_sdp.len() > MAX_OFFER {
            return Err(WebRtcError::MalformedSdp {
                reason: format!(
                    "{} bytes, more than the {MAX_OFFER} an offer may have",
                    offer_sdp.len()
                ),
            });
        }
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| WebRtcError::MalformedSdp {
                reason: parse_complaint(&e.to_string()),
            })?;

        let mut rtc = rtc_config(true).build(now);
        add_host_candidate(&mut rtc, advertised)?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Refused {
                reason: e.to_string(),
            })?;

        // Accepting is a mutation: drain before anything else touches the Rtc. ICE-lite sends
        // nothing before the browser does, but whatever comes out is kept for the caller.
        let (next_timeout, early, datagrams) =
            drain_new(&mut rtc).map_err(|reason| WebRtcError::Refused { reason })?;

        // str0m announces the offer's m-lines (MediaAdded) only once SRTP is up, and keeps its
        // parsed SDP private; its own answer names every m-line with its mid, so read them there.
        let answer = answer.to_sdp_string();
        let audio_mids = m_lines(&answer)
            .filter(|(kind, _)| *kind == "audio")
            .map(|(_, mid)| Mid::from(mid))
            .collect::<Vec<_>>();
        if audio_mids.is_empty() {
            return Err(WebRtcError::NoAudio {
                offered: summarize(offer_sdp),
            });
        }
        let Some((mid, opus_pt, sends)) = audio_mids
            .iter()
            .find_map(|&mid| negotiated_opus(&rtc, mid).map(|(pt, sends)| (mid, pt, sends)))
        else {
            return Err(WebRtcError::NoOpus {
                offered: summarize(offer_sdp),
            });
        };

        let leg = WebRtcLeg::assemble(
            rtc,
            Negotiated {
                mid,
                opus_pt,
                sends,
                peer_dtx: asks_for_dtx(offer_sdp, opus_pt),
            },
            config.local.port(),
            advertised,
            (next_timeout, early, datagrams),
        );
        debug!(%advertised, %mid, pt = *opus_pt, sends, "answered WebRTC offer");
        Ok((leg, answer))
    }

    /// A leg around an `Rtc` whose SDP exchange is done, with what its first drain produced.
    pub(crate) fn assemble(
        rtc: Rtc,
        negotiated: Negotiated,
        local_port: u16,
        advertised: SocketAddr,
        (next_timeout, early, datagrams): FirstDrain,
    ) -> WebRtcLeg {
        let mut leg = WebRtcLeg {
            rtc,
            mid: negotiated.mid,
            opus_pt: negotiated.opus_pt,
            local_port,
            advertised,
            sends: negotiated.sends,
            peer_dtx: negotiated.peer_dtx,
            talkspurt_next: false,
            link: Link::Connecting,
            dtls_done: false,
            next_timeout,
            datagrams,
            events: VecDeque::new(),
            send_clock: None,
            stats: LegStats::default(),
        };
        for e in early {
            leg.on_event(e);
        }
        leg
    }

    /// Whether a datagram that arrived on the worker's socket belongs to this leg: a STUN
    /// check with this leg's ICE username, or anything from an address ICE knows for it. The
    /// worker uses it to pick the leg when several share one socket.
    pub fn accepts(&self, now: Instant, from: SocketAddr, packet: &[u8]) -> bool {
        let Ok(contents) = DatagramRecv::try_from(packet) else {
            return false;
        };
        let input = Input::Receive(now, self.receive(from, contents));
        self.link != Link::Closed && self.rtc.accepts(&input)
    }

    /// Feeds one received datagram (`from` the browser, `to` the worker's socket) at `now`.
    ///
    /// Never fails: anything that is not this leg's STUN, DTLS, SRTP or SRTCP is dropped and
    /// counted in [`stats`](Self::stats), since anyone can send anything to a public UDP port.
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, packet: &[u8]) {
        if self.link == Link::Closed || to.port() != self.local_port {
            self.stats.ignored_datagrams += 1;
            return;
        }
        let Ok(contents) = DatagramRecv::try_from(packet) else {
            self.stats.ignored_datagrams += 1;
            return;
        };
        let input = Input::Receive(now, self.receive(from, contents));
        if !self.rtc.accepts(&input) {
            self.stats.ignored_datagrams += 1;
            return;
        }
        if let Err(e) = self.rtc.handle_input(input) {
            self.stats.rejected_datagrams += 1;
            debug!(%from, error = %e, "WebRTC datagram rejected");
        }
        self.drain();
    }

    /// Advances the leg's clock to `now`: ICE consent, DTLS retransmissions, RTCP reports.
    /// Call it at [`poll_timeout`](Self::poll_timeout) (earlier is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.stats.output_errors += 1;
            debug!(error = %e, "WebRTC timeout handling failed");
        }
        self.drain();
    }

    /// When the leg next needs [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Instant {
        self.next_timeout
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.datagrams.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<WebRtcEvent> {
        self.events.pop_front()
    }

    /// Sends one Opus packet (one 20 ms frame) to the browser at `now`.
    ///
    /// `rtp_timestamp` is the frame's RTP timestamp at 48 kHz as the caller keeps it (960 more
    /// per 20 ms, a larger step over a DTX gap); it may wrap. `level` is the RFC 6464 level to
    /// put in the header extension when the browser negotiated it (browsers use it to show who
    /// speaks); without the extension it is dropped. The SRTP datagram is ready in
    /// [`poll_transmit`](Self::poll_transmit) when this returns.
    pub fn send_opus(
        &mut self,
        now: Instant,
        rtp_timestamp: u32,
        payload: &[u8],
        level: Option<AudioLevel>,
    ) -> Result<(), SendError> {
        match self.link {
            Link::Connected => {}
            Link::Closed => return Err(SendError::Closed),
            Link::Connecting | Link::Disconnected => return Err(SendError::NotConnected),
        }
        if !self.sends {
            return Err(SendError::NotReceiving);
        }
        if payload.is_empty() || payload.len() > MAX_OPUS_PACKET {
            return Err(SendError::BadPayload {
                len: payload.len(),
                max: MAX_OPUS_PACKET,
            });
        }
        // str0m packetizes and schedules from its own idea of "now", which only input moves:
        // bring it to the frame's time first (a mutation, so drained) and then write.
        self.handle_timeout(now);
        if self.link != Link::Connected {
            return Err(SendError::NotConnected);
        }
        let media_time = MediaTime::new(
            self.extend_send_timestamp(rtp_timestamp),
            Frequency::FORTY_EIGHT_KHZ,
        );
        let Some(mut writer) = self.rtc.writer(self.mid) else {
            return Err(SendError::NotReceiving);
        };
        if std::mem::take(&mut self.talkspurt_next) {
            writer = writer.start_of_talkspurt(true);
        }
        if let Some(level) = level {
            // On the wire the level is 0..=127 -dBov; str0m wants it negative.
            let dbov = level.minus_dbov.min(127) as i8;
            writer = writer.audio_level(-dbov, level.voice);
        }
        let written = writer.write(self.opus_pt, now, media_time, payload);
        // Written or not, the write was a mutation: drain before anything else.
        self.drain();
        written.map_err(|e| SendError::Refused {
            reason: e.to_string(),
        })?;
        // str0m only queues the frame on write and asks for a timeout at `now` to packetize
        // it (and another for its pacer): run those here, so the datagram is ready when this
        // returns rather than on the worker's next wake-up. Bounded: it takes one or two.
        for _ in 0..MAX_SEND_ROUNDS {
            if self.next_timeout > now || self.link == Link::Closed {
                break;
            }
            self.handle_timeout(now);
        }
        self.stats.audio_sent += 1;
        Ok(())
    }

    /// Ends the leg from our side: RTCP BYE and DTLS close_notify are queued for
    /// [`poll_transmit`](Self::poll_transmit), then the leg takes no more input. No
    /// [`WebRtcEvent::Closed`] follows, the caller knows.
    pub fn close(&mut self, now: Instant) {
        if self.link == Link::Closed {
            return;
        }
        self.handle_timeout(now);
        if let Err(e) = self.rtc.close() {
            debug!(error = %e, "WebRTC close failed");
        }
        self.drain();
        self.link = Link::Closed;
    }

    /// Whether audio can flow now (ICE and DTLS up, not closed).
    pub fn is_connected(&self) -> bool {
        self.link == Link::Connected
    }

    /// Whether the leg is over for good (closed by either side, or failed).
    pub fn is_closed(&self) -> bool {
        self.link == Link::Closed
    }

    /// Whether the peer asked to receive Opus with discontinuous transmission (`usedtx=1`):
    /// the caller may then leave out silent frames (see `media::dtx`).
    pub fn peer_prefers_dtx(&self) -> bool {
        self.peer_dtx
    }

    /// The next frame sent is the first after a pause (frames left out for DTX): it carries
    /// the RTP marker bit (RFC 3551 §4.1).
    pub fn start_talkspurt(&mut self) {
        self.talkspurt_next = true;
    }

    /// The leg's counters.
    pub fn stats(&self) -> LegStats {
        self.stats
    }

    fn receive<'a>(&self, from: SocketAddr, contents: DatagramRecv<'a>) -> Receive<'a> {
        Receive {
            proto: Protocol::Udp,
            source: from,
            destination: self.advertised,
            contents,
        }
    }

    /// Runs str0m until it only has a deadline left, queueing its datagrams and events.
    fn drain(&mut self) {
        let mut errors = 0;
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => self.queue_datagram(Datagram {
                    destination: t.destination,
                    payload: t.contents.into(),
                }),
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    self.stats.output_errors += 1;
                    errors += 1;
                    if !self.rtc.is_alive() {
                        self.fail(format!("the WebRTC stack failed: {e}"));
                        break;
                    }
                    if errors >= MAX_ERRORS_PER_DRAIN {
                        self.rtc.disconnect();
                        self.fail(format!("the WebRTC stack keeps failing: {e}"));
                        break;
                    }
                    debug!(error = %e, "WebRTC output error");
                }
            }
        }
        if !self.rtc.is_alive() && self.link != Link::Closed {
            self.fail("the WebRTC stack stopped".to_owned());
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.dtls_done = true;
                self.set_link(Link::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if matches!(self.link, Link::Connecting | Link::Connected) =>
            {
                self.set_link(Link::Disconnected);
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if self.link == Link::Disconnected && self.dtls_done => {
                self.set_link(Link::Connected);
            }
            Event::MediaData(data) => self.on_media(data),
            // str0m keeps draining its own close output after this; the leg only stops taking
            // input.
            Event::Closed if self.link != Link::Closed => {
                self.link = Link::Closed;
                self.push_event(WebRtcEvent::Closed {
                    reason: "the peer closed the connection".to_owned(),
                });
            }
            _ => {}
        }
    }

    fn on_media(&mut self, data: MediaData) {
        if data.mid != self.mid || data.pt != self.opus_pt {
            self.stats.foreign_media += 1;
            return;
        }
        let audio_level = data.ext_vals.audio_level.map(|level| AudioLevel {
            minus_dbov: level.unsigned_abs().min(127),
            voice: data.ext_vals.voice_activity.unwrap_or(false),
        });
        // str0m extends timestamps and sequence numbers to 64 bits; the low bits are the
        // values on the wire, which is what the jitter buffer works with.
        let audio = ReceivedAudio {
            payload: data.data,
            rtp_timestamp: data.time.numer() as u32,
            sequence_number: **data.seq_range.start() as u16,
            audio_level,
            received_at: data.network_time,
        };
        self.stats.audio_received += 1;
        self.push_event(WebRtcEvent::Audio(audio));
    }

    fn set_link(&mut self, link: Link) {
        if self.link == link || self.link == Link::Closed {
            return;
        }
        debug!(from = ?self.link, to = ?link, "WebRTC leg state");
        self.link = link;
        self.push_event(match link {
            Link::Connected => WebRtcEvent::Connected,
            Link::Disconnected => WebRtcEvent::Disconnected,
            // Reached only through `fail` and `Event::Closed`, which say why.
            Link::Connecting | Link::Closed => return,
        });
    }

    fn fail(&mut self, reason: String) {
        if self.link == Link::Closed {
            return;
        }
        debug!(%reason, "WebRTC leg failed");
        self.link = Link::Closed;
        // A stopped Rtc answers every poll with a far-away deadline; take it so the worker
        // stops waking up for this leg.
        if let Ok(Output::Timeout(t)) = self.rtc.poll_output() {
            self.next_timeout = t;
        }
        self.push_event(WebRtcEvent::Closed { reason });
    }

    fn push_event(&mut self, event: WebRtcEvent) {
        // State changes are rare and must not be lost; only audio is dropped when full.
        if matches!(event, WebRtcEvent::Audio(_)) && self.events.len() >= Self::MAX_QUEUED {
            self.stats.queue_overflows += 1;
            return;
        }
        self.events.push_back(event);
    }

    fn queue_datagram(&mut self, datagram: Datagram) {
        if self.datagrams.len() >= Self::MAX_QUEUED {
            self.stats.queue_overflows += 1;
            return;
        }
        self.datagrams.push_back(datagram);
    }

    /// Extends the caller's 32-bit RTP timestamp to the 64-bit media time str0m wants,
    /// keeping the low 32 bits equal to it, so a wrap (every 24.8 h at 48 kHz) or a small
    /// step back does not look like a jump of a day. Starts one wrap up so that an early step
    /// back cannot go below zero.
    fn extend_send_timestamp(&mut self, ts: u32) -> u64 {
        let extended = match self.send_clock {
            None => (1u64 << 32) | u64::from(ts),
            Some((last, last_extended)) => {
                let step = i64::from(ts.wrapping_sub(last) as i32);
                last_extended.saturating_add_signed(step)
            }
        };
        self.send_clock = Some((ts, extended));
        extended
    }
}

/// Gives `rtc` its one ICE host candidate, `advertised`.
pub(crate) fn add_host_candidate(rtc: &mut Rtc, advertised: SocketAddr) -> Result<(), WebRtcError> {
    let candidate =
        Candidate::host(advertised, "udp").map_err(|e| WebRtcError::UnusableAddress {
            addr: advertised,
            reason: e.to_string(),
        })?;
    if rtc.add_local_candidate(candidate).is_none() {
        return Err(WebRtcError::UnusableAddress {
            addr: advertised,
            reason: "the ICE agent refused it as a host candidate".to_owned(),
        });
    }
    Ok(())
}

/// The audio m-line and Opus payload type an SDP exchange settled on.
pub(crate) struct Negotiated {
    pub(crate) mid: Mid,
    pub(crate) opus_pt: Pt,
    /// Whether we send on it (the peer receives).
    pub(crate) sends: bool,
    /// The peer's SDP asks for DTX on its Opus payload type.
    pub(crate) peer_dtx: bool,
}

/// Whether `sdp` (the peer's) asks for Opus discontinuous transmission on payload type `pt`
/// (RFC 7587 §6.1: `usedtx=1` in its `a=fmtp`). str0m keeps the peer's format parameters to
/// itself, so its text is read here.
pub(crate) fn asks_for_dtx(sdp: &str, pt: Pt) -> bool {
    let prefix = format!("a=fmtp:{} ", *pt);
    sdp.lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .flat_map(|params| params.split(';'))
        .any(|param| {
            param
                .split_once('=')
                .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("usedtx") && v.trim() == "1")
        })
}

/// The first deadline, events and datagrams of a freshly negotiated `Rtc`.
pub(crate) type FirstDrain = (Instant, Vec<Event>, VecDeque<Datagram>);

/// Drains an `Rtc` right after its SDP exchange (a mutation), before a leg owns it.
pub(crate) fn drain_new(rtc: &mut Rtc) -> Result<FirstDrain, String> {
    let mut early = Vec::new();
    let mut datagrams = VecDeque::new();
    loop {
        match rtc.poll_output() {
            Ok(Output::Timeout(t)) => return Ok((t, early, datagrams)),
            Ok(Output::Event(e)) => early.push(e),
            Ok(Output::Transmit(t)) => datagrams.push_back(Datagram {
                destination: t.destination,
                payload: t.contents.into(),
            }),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The Opus payload type of audio m-line `mid` and whether we send on it, once the SDP
/// exchange is done (the codec config then carries the payload type numbers both agreed).
pub(crate) fn negotiated_opus(rtc: &Rtc, mid: Mid) -> Option<(Pt, bool)> {
    let media = rtc.media(mid)?;
    if media.kind() != MediaKind::Audio || media.disabled() {
        return None;
    }
    let pt = rtc
        .codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == Codec::Opus && media.remote_pts().contains(&p.pt()))?
        .pt();
    Some((pt, media.direction().is_sending()))
}

/// Payload type of Opus in our offers (str0m's and Chrome's choice).
const OPUS_PT: Pt = Pt::new_with_value(111);

/// str0m configured for an audio leg: ICE-lite when answering a browser, a full ICE agent
/// when the server offers (a client of a meeting's WHIP/WHEP endpoints, where the meeting
/// may itself be ICE-lite and one side must run the checks).
pub(crate) fn rtc_config(ice_lite: bool) -> RtcConfig {
    // Only what an audio leg uses: the level for talker display and mixing decisions, and the
    // mid so that str0m finds the m-line of a stream even without `a=ssrc` lines (WHIP
    // clients). No transport-cc or abs-send-time: there is no bandwidth estimation to feed.
    let mut extensions = ExtensionMap::empty();
    extensions.set(1, Extension::AudioLevel);
    extensions.set(4, Extension::RtpMid);
    let mut config = Rtc::builder()
        .set_ice_lite(ice_lite)
        .clear_codecs()
        .set_extension_map(extensions)
        // 0 = hand on each packet as it arrives, out of order included. The default (15)
        // holds everything after a lost packet for up to 300 ms waiting for it, which the
        // room's jitter buffer would then see as a burst of late packets.
        .set_reordering_size_audio(0);
    // str0m's own Opus entry (enable_opus), plus `usedtx=1`: a browser then sends a packet
    // every 400 ms instead of every 20 ms while its user is silent (RFC 7587 §3.1.3), and in
    // a room most are silent most of the time. Its jitter buffer pauses are not losses
    // (`Heard::Pause`), so nothing downstream conceals them.
    config.codec_config().add_config(
        OPUS_PT,
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        FormatParams {
            min_p_time: Some(10),
            use_inband_fec: Some(true),
            use_dtx: Some(true),
            ..FormatParams::default()
        },
    );
    // str0m's Opus offers transport-cc feedback by default; without the transport-cc header
    // extension (left out above) there is nothing to give feedback on.
    for params in config.codec_config().iter_mut() {
        params.set_fb_transport_cc(false);
    }
    config
}

/// The `(kind, mid)` of each m-line of an SDP that str0m wrote (`m=` then, in the same
/// section, `a=mid:`).
fn m_lines(sdp: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut kind = None;
    sdp.lines().filter_map(move |line| {
        if let Some(m) = line.strip_prefix("m=") {
            kind = m.split_whitespace().next();
            None
        } else {
            Some((kind?, line.strip_prefix("a=mid:")?.trim()))
        }
    })
}
