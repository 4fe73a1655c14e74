//! One browser-side peer connection on str0m: the offerer, a full ICE agent with one host
//! candidate, DTLS-SRTP, one Opus audio m-line that only sends (a WHIP publisher) or only
//! receives (a WHEP listener). Sans-IO like str0m itself: datagrams and time in, datagrams
//! and received Opus payloads out through [`BrowserPeer::drain`]; the thread that owns the
//! sockets drives it.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, anyhow};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// How many immediate timeouts [`BrowserPeer::send_opus`] runs to get a written frame out.
const MAX_SEND_ROUNDS: usize = 4;

/// Which way the peer's one audio m-line carries audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// `sendonly`: the WHIP publisher.
    Publish,
    /// `recvonly`: the WHEP listener.
    Listen,
}

/// Something the peer wants done or reports, from [`BrowserPeer::drain`].
#[derive(Debug)]
pub enum PeerOutput<'a> {
    /// Send `payload` from the peer's socket to `to`.
    Transmit {
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        payload: &'a [u8],
    },
    /// One received Opus packet, decrypted.
    Audio(&'a [u8]),
}

/// Where the peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Offered (and maybe answered), ICE and DTLS not done yet.
    Connecting,
    /// DTLS done: audio can flow.
    Connected,
    /// ICE lost the server after it was connected (consent lapsed).
    Disconnected,
    /// Closed by either side or failed; takes no more input.
    Closed,
}

/// One browser-side WebRTC peer connection.
pub struct BrowserPeer {
    rtc: Rtc,
    mid: Mid,
    role: PeerRole,
    /// The Opus payload type the answer agreed, once answered.
    opus_pt: Option<Pt>,
    local: SocketAddr,
    /// The offer's pending state until the answer comes.
    pending: Option<SdpPendingOffer>,
    state: PeerState,
    next_timeout: Instant,
    /// Output errors str0m reported (each also leaves the peer running).
    pub errors: u64,
}

impl BrowserPeer {
    /// A peer with one audio m-line for `role`, its host candidate at `local`: the peer and
    /// its SDP offer. Offers Opus only (a browser offers more; the server takes Opus anyway)
    /// with str0m's default header extensions, the RFC 6464 audio level among them.
    pub fn offer(
        local: SocketAddr,
        role: PeerRole,
        now: Instant,
    ) -> anyhow::Result<(Self, String)> {
        // Reordering 0: hand on each packet as it arrives, as the loss count does.
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .set_reordering_size_audio(0)
            .build(now);
        let candidate = Candidate::host(local, "udp").context("host candidate")?;
        rtc.add_local_candidate(candidate)
            .ok_or_else(|| anyhow!("str0m refused the host candidate {local}"))?;
        let direction = match role {
            PeerRole::Publish => Direction::SendOnly,
            PeerRole::Listen => Direction::RecvOnly,
        };
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, direction, None, None, None);
        let (offer, pending) = api.apply().ok_or_else(|| anyhow!("str0m made no offer"))?;
        let mut peer = BrowserPeer {
            rtc,
            mid,
            role,
            opus_pt: None,
            local,
            pending: Some(pending),
            state: PeerState::Connecting,
            next_timeout: now,
            errors: 0,
        };
        // Making the offer was a mutation: drain what it said (nothing goes out before the
        // answer, but str0m wants its output taken before the next input).
        peer.drain(|_| {});
        Ok((peer, offer.to_sdp_string()))
    }

    /// Applies the server's SDP answer at `now`, handing what that causes to `on`; ICE
    /// checks start on the next timeout, which is due at once.
    pub fn accept_answer(
        &mut self,
        sdp: &str,
        now: Instant,
        on: impl FnMut(PeerOutput<'_>),
    ) -> anyhow::Result<()> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| anyhow!("answer without an offer"))?;
        let answer = SdpAnswer::from_sdp_string(sdp).context("parsing the SDP answer")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .context("str0m refused the answer")?;
        self.drain(on);
        // str0m's deadline from before the answer knew of no ICE work to do.
        self.next_timeout = self.next_timeout.min(now);
        let mid = self.mid;
        let pt = self
            .rtc
            .media(mid)
            .and_then(|media| {
                let remote = media.remote_pts().to_vec();
                self.rtc
                    .codec_config()
                    .params()
                    .iter()
                    .find(|p| p.spec().codec == Codec::Opus && remote.contains(&p.pt()))
                    .map(|p| p.pt())
            })
            .ok_or_else(|| anyhow!("the answer has no Opus"))?;
        self.opus_pt = Some(pt);
        Ok(())
    }

    /// Where the peer stands.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// When the peer next needs [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Instant {
        self.next_timeout
    }

    /// Feeds one datagram received on the peer's socket `from` the server at `now`, handing
    /// what it causes to `on`; false if it was not the peer's (then nothing changed).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        packet: &[u8],
        on: impl FnMut(PeerOutput<'_>),
    ) -> bool {
        if self.state == PeerState::Closed {
            return false;
        }
        let Ok(contents) = DatagramRecv::try_from(packet) else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            return false;
        }
        if self.rtc.handle_input(input).is_err() {
            self.errors += 1;
        }
        self.drain(on);
        true
    }

    /// Advances the peer's clock to `now` (ICE checks, consent, DTLS, RTCP), handing what it
    /// causes to `on`.
    pub fn handle_timeout(&mut self, now: Instant, on: impl FnMut(PeerOutput<'_>)) {
        if self.state == PeerState::Closed {
            return;
        }
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.errors += 1;
        }
        self.drain(on);
    }

    /// Writes one Opus frame (a publisher's) with media time `rtp_time` (48 kHz, never
    /// wrapping) and its RFC 6464 level (0..=127 -dBov) and voice flag, handing the SRTP
    /// packet to `on`; false if the peer cannot send now.
    pub fn send_opus(
        &mut self,
        now: Instant,
        rtp_time: u64,
        payload: &[u8],
        dbov: u8,
        voice: bool,
        mut on: impl FnMut(PeerOutput<'_>),
    ) -> bool {
        let Some(pt) = self.opus_pt else {
            return false;
        };
        // str0m takes a write on a recvonly m-line and sends nothing.
        if self.state != PeerState::Connected || self.role != PeerRole::Publish {
            return false;
        }
        // str0m packetises from its own idea of "now", which only input moves.
        self.handle_timeout(now, &mut on);
        let Some(writer) = self.rtc.writer(self.mid) else {
            return false;
        };
        let dbov = dbov.min(127);
        let time = MediaTime::new(rtp_time, Frequency::FORTY_EIGHT_KHZ);
        let written =
            writer
                .audio_level(-(dbov as i8), voice)
                .write(pt, now, time, payload.to_vec());
        self.drain(&mut on);
        if written.is_err() {
            self.errors += 1;
            return false;
        }
        // str0m queues the frame and asks for a timeout at `now` to packetise it (and one
        // more for its pacer): run those, so the packet leaves with this call. Bounded.
        for _ in 0..MAX_SEND_ROUNDS {
            if self.next_timeout > now || self.state == PeerState::Closed {
                break;
            }
            self.handle_timeout(now, &mut on);
        }
        true
    }

    /// Ends the peer from our side; it takes no more input.
    pub fn close(&mut self) {
        if self.state != PeerState::Closed {
            self.rtc.disconnect();
            self.state = PeerState::Closed;
        }
    }

    /// Runs str0m until only a deadline is left, handing each datagram to send and each
    /// received Opus packet to `on`.
    fn drain(&mut self, mut on: impl FnMut(PeerOutput<'_>)) {
        // A stuck str0m (errors without end) must not hang the driver thread.
        for _ in 0..1024 {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => on(PeerOutput::Transmit {
                    to: t.destination,
                    payload: &t.contents,
                }),
                Ok(Output::Event(event)) => self.on_event(event, &mut on),
                Err(_) => {
                    self.errors += 1;
                    if !self.rtc.is_alive() {
                        self.state = PeerState::Closed;
                        return;
                    }
                }
            }
        }
    }

    fn on_event(&mut self, event: Event, on: &mut impl FnMut(PeerOutput<'_>)) {
        match event {
            Event::Connected => self.state = PeerState::Connected,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.state == PeerState::Connected =>
            {
                self.state = PeerState::Disconnected;
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if self.state == PeerState::Disconnected => self.state = PeerState::Connected,
            Event::MediaData(data) if data.mid == self.mid && Some(data.pt) == self.opus_pt => {
                on(PeerOutput::Audio(&data.data));
            }
            Event::Closed => self.state = PeerState::Closed,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use webrtc::{WebRtcConfig, WebRtcEvent, WebRtcLeg};

    fn browser() -> SocketAddr {
        "127.0.0.1:50000".parse().unwrap()
    }

    fn server() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    /// A peer for `role` answered by the server's own WebRTC leg.
    fn answered(role: PeerRole, now: Instant) -> (BrowserPeer, WebRtcLeg, String) {
        let (mut peer, offer) = BrowserPeer::offer(browser(), role, now).unwrap();
        let (leg, answer) = WebRtcLeg::answer(&WebRtcConfig::new(server()), &offer, now).unwrap();
        peer.accept_answer(&answer, now, |_| {}).unwrap();
        (peer, leg, offer)
    }

    /// One 20 ms step of the in-memory wire: the peer's datagrams to the leg, the leg's to
    /// the peer; returns the Opus payloads the peer received.
    fn step(peer: &mut BrowserPeer, leg: &mut WebRtcLeg, now: Instant) -> Vec<Vec<u8>> {
        let mut to_server = Vec::new();
        let mut heard = Vec::new();
        let mut collect = |out: PeerOutput<'_>| match out {
            PeerOutput::Transmit { payload, .. } => to_server.push(payload.to_vec()),
            PeerOutput::Audio(payload) => heard.push(payload.to_vec()),
        };
        peer.handle_timeout(now, &mut collect);
        leg.handle_timeout(now);
        while let Some(d) = leg.poll_transmit() {
            peer.handle_datagram(now, server(), &d.payload, &mut collect);
        }
        for d in to_server {
            leg.handle_input(now, browser(), server(), &d);
        }
        heard
    }

    #[test]
    fn a_publisher_connects_to_the_servers_leg_and_its_frames_arrive_with_their_level() {
        let mut now = Instant::now();
        let (mut peer, mut leg, offer) = answered(PeerRole::Publish, now);
        assert!(offer.contains("a=sendonly"), "{offer}");
        let end = now + Duration::from_secs(5);
        let mut frame = 0u64;
        let mut got = Vec::new();
        while got.len() < 3 {
            assert!(now < end, "nothing arrived in 5 simulated seconds");
            step(&mut peer, &mut leg, now);
            let mut sent = Vec::new();
            if peer.send_opus(now, 960 * frame, &[0x78, 1, 2, 3], 30, true, |out| {
                if let PeerOutput::Transmit { payload, .. } = out {
                    sent.push(payload.to_vec());
                }
            }) {
                frame += 1;
            }
            for d in sent {
                leg.handle_input(now, browser(), server(), &d);
            }
            while let Some(e) = leg.poll_event() {
                if let WebRtcEvent::Audio(a) = e {
                    got.push((a.payload.to_vec(), a.audio_level.map(|l| l.minus_dbov)));
                }
            }
            now += Duration::from_millis(20);
        }
        assert_eq!(peer.state(), PeerState::Connected);
        assert_eq!(got[0], (vec![0x78, 1, 2, 3], Some(30)));
    }

    #[test]
    fn a_listener_hears_what_the_servers_leg_sends_and_cannot_send() {
        let mut now = Instant::now();
        let (mut peer, mut leg, offer) = answered(PeerRole::Listen, now);
        assert!(offer.contains("a=recvonly"), "{offer}");
        let end = now + Duration::from_secs(5);
        let mut ts = 0u32;
        let mut heard = Vec::new();
        while heard.len() < 3 {
            assert!(now < end, "nothing heard in 5 simulated seconds");
            if leg.is_connected() {
                leg.send_opus(now, ts, &[0x78, 9, 9], None).unwrap();
                ts = ts.wrapping_add(960);
            }
            heard.extend(step(&mut peer, &mut leg, now));
            now += Duration::from_millis(20);
        }
        assert!(heard.iter().all(|p| p == &[0x78, 9, 9]), "{heard:?}");
        assert!(
            !peer.send_opus(now, 0, &[0x78], 127, false, |_| {}),
            "recvonly m-line"
        );
    }
}
