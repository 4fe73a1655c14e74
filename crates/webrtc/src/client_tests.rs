//! The offering side against the answering side: a [`WebRtcLeg`] made with
//! [`WebRtcLeg::offer`] (the server as a meeting's WHIP/WHEP client) talks to one made with
//! [`WebRtcLeg::answer`] (the meeting's endpoint, here ICE-lite like our own), datagrams passed
//! in memory on a simulated clock.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::{ClientRole, SendError, WebRtcConfig, WebRtcError, WebRtcEvent, WebRtcLeg};

const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 40000);
const ENDPOINT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20)), 8443);
const LATENCY: Duration = Duration::from_millis(5);
const FRAME: Duration = Duration::from_millis(20);

/// The client leg, the endpoint leg and the wire between them.
struct Link {
    now: Instant,
    client: WebRtcLeg,
    endpoint: WebRtcLeg,
    to_endpoint: VecDeque<(Instant, Vec<u8>)>,
    to_client: VecDeque<(Instant, Vec<u8>)>,
    client_events: Vec<WebRtcEvent>,
    endpoint_events: Vec<WebRtcEvent>,
    /// False: the endpoint is gone (killed), nothing it would send arrives and nothing reaches it.
    endpoint_alive: bool,
}

impl Link {
    fn start(role: ClientRole) -> Self {
        let now = Instant::now();
        let (pending, offer) =
            WebRtcLeg::offer(&WebRtcConfig::new(CLIENT), role, now).expect("offer");
        let (endpoint, answer) =
            WebRtcLeg::answer(&WebRtcConfig::new(ENDPOINT), &offer, now).expect("answered");
        let client = pending
            .accept_answer(&answer, now)
            .expect("answer accepted");
        let mut link = Link {
            now,
            client,
            endpoint,
            to_endpoint: VecDeque::new(),
            to_client: VecDeque::new(),
            client_events: Vec::new(),
            endpoint_events: Vec::new(),
            endpoint_alive: true,
        };
        link.collect();
        link
    }

    fn collect(&mut self) {
        while let Some(d) = self.client.poll_transmit() {
            assert_eq!(
                d.destination, ENDPOINT,
                "client sends to the answer's candidate"
            );
            if self.endpoint_alive {
                self.to_endpoint.push_back((self.now + LATENCY, d.payload));
            }
        }
        while let Some(d) = self.endpoint.poll_transmit() {
            assert_eq!(d.destination, CLIENT, "endpoint answers the client");
            if self.endpoint_alive {
                self.to_client.push_back((self.now + LATENCY, d.payload));
            }
        }
        self.client_events
            .extend(std::iter::from_fn(|| self.client.poll_event()));
        self.endpoint_events
            .extend(std::iter::from_fn(|| self.endpoint.poll_event()));
    }

    fn run_until(&mut self, until: Instant) {
        loop {
            self.collect();
            let next = [
                Some(self.client.poll_timeout()),
                Some(self.endpoint.poll_timeout()),
                self.to_endpoint.front().map(|p| p.0),
                self.to_client.front().map(|p| p.0),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("something is due");
            if next > until {
                self.now = until;
                self.client.handle_timeout(until);
                self.endpoint.handle_timeout(until);
                self.collect();
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            if self.to_endpoint.front().is_some_and(|p| p.0 <= now) {
                let (_, bytes) = self.to_endpoint.pop_front().expect("front");
                self.endpoint.handle_input(now, CLIENT, ENDPOINT, &bytes);
            } else if self.to_client.front().is_some_and(|p| p.0 <= now) {
                let (_, bytes) = self.to_client.pop_front().expect("front");
                self.client.handle_input(now, ENDPOINT, CLIENT, &bytes);
            } else {
                if self.client.poll_timeout() <= now {
                    self.client.handle_timeout(now);
                }
                if self.endpoint.poll_timeout() <= now {
                    self.endpoint.handle_timeout(now);
                }
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn connect(&mut self) {
        let until = self.now + Duration::from_secs(5);
        while !(self.client.is_connected() && self.endpoint.is_connected()) {
            assert!(self.now < until, "no connection within 5 s");
            self.run_for(Duration::from_millis(10));
        }
    }

    fn audio(events: &[WebRtcEvent]) -> Vec<Vec<u8>> {
        events
            .iter()
            .filter_map(|e| match e {
                WebRtcEvent::Audio(a) => Some(a.payload.to_vec()),
                _ => None,
            })
            .collect()
    }
}

fn frame(i: u32) -> Vec<u8> {
    let mut p = vec![0x48];
    p.extend(format!("meeting frame {i}").bytes());
    p
}

#[test]
fn offer_is_full_ice_opus_actpass_with_one_host_candidate_in_the_role_direction() {
    let now = Instant::now();
    let (_pending, offer) =
        WebRtcLeg::offer(&WebRtcConfig::new(CLIENT), ClientRole::Publish, now).expect("offer");
    for needle in [
        "m=audio ",
        "opus/48000/2",
        "a=setup:actpass",
        "a=fingerprint:sha-256 ",
        "a=sendonly",
        " 192.0.2.10 40000 typ host",
    ] {
        assert!(offer.contains(needle), "offer lacks {needle:?}:\n{offer}");
    }
    assert!(!offer.contains("a=ice-lite"), "full ICE:\n{offer}");
    assert!(!offer.contains("m=video"), "audio only:\n{offer}");
    let (_pending, offer) =
        WebRtcLeg::offer(&WebRtcConfig::new(CLIENT), ClientRole::Subscribe, now).expect("offer");
    assert!(offer.contains("a=recvonly"), "{offer}");
}

#[test]
fn whip_client_publishes_fifty_frames_to_the_endpoint() {
    let mut link = Link::start(ClientRole::Publish);
    link.connect();
    assert_eq!(link.client_events.first(), Some(&WebRtcEvent::Connected));
    for i in 0..50u32 {
        let now = link.now;
        link.client
            .send_opus(now, i * 960, &frame(i), None)
            .expect("client sends");
        link.run_for(FRAME);
    }
    link.run_for(Duration::from_millis(100));
    let got = Link::audio(&link.endpoint_events);
    assert_eq!(got, (0..50).map(frame).collect::<Vec<_>>());
    // A WHIP client takes nothing back: the endpoint answered recvonly.
    let now = link.now;
    assert_eq!(
        link.endpoint.send_opus(now, 0, &frame(0), None),
        Err(SendError::NotReceiving)
    );
}

#[test]
fn whep_client_receives_what_the_endpoint_plays_and_sends_nothing() {
    let mut link = Link::start(ClientRole::Subscribe);
    link.connect();
    for i in 0..50u32 {
        let now = link.now;
        link.endpoint
            .send_opus(now, 1000 + i * 960, &frame(i), None)
            .expect("endpoint sends");
        link.run_for(FRAME);
    }
    link.run_for(Duration::from_millis(100));
    assert_eq!(
        Link::audio(&link.client_events),
        (0..50).map(frame).collect::<Vec<_>>()
    );
    let now = link.now;
    assert_eq!(
        link.client.send_opus(now, 0, &frame(0), None),
        Err(SendError::NotReceiving)
    );
}

#[test]
fn client_reports_disconnected_when_the_endpoint_dies() {
    let mut link = Link::start(ClientRole::Subscribe);
    link.connect();
    link.run_for(Duration::from_secs(2));
    link.endpoint_alive = false;
    link.to_client.clear();
    link.to_endpoint.clear();
    let dead_at = link.now;
    while !link.client_events.contains(&WebRtcEvent::Disconnected) {
        assert!(
            link.now - dead_at < Duration::from_secs(30),
            "no Disconnected 30 s after the endpoint died"
        );
        link.run_for(Duration::from_millis(250));
    }
    let after = link.now - dead_at;
    // The client's shortened STUN timing (see client.rs): well under str0m's default 23 s.
    assert!(after <= Duration::from_secs(10), "too late: {after:?}");
    assert!(!link.client.is_connected());
}

#[test]
fn endpoint_closing_dtls_closes_the_client_leg() {
    let mut link = Link::start(ClientRole::Publish);
    link.connect();
    let now = link.now;
    link.endpoint.close(now);
    link.run_for(Duration::from_millis(100));
    assert!(
        link.client_events
            .iter()
            .any(|e| matches!(e, WebRtcEvent::Closed { .. })),
        "{:?}",
        link.client_events
    );
    assert!(link.client.is_closed());
}

/// A full-ICE answerer (a plain str0m `Rtc` with its defaults, as aiortc or a meeting's SFU
/// would be): the client, the controlling agent, nominates against its candidates.
#[test]
fn connects_to_a_full_ice_endpoint() {
    let now = Instant::now();
    let (pending, offer) =
        WebRtcLeg::offer(&WebRtcConfig::new(CLIENT), ClientRole::Publish, now).expect("offer");
    let mut endpoint = Rtc::builder().build(now);
    endpoint.add_local_candidate(Candidate::host(ENDPOINT, "udp").expect("candidate"));
    let answer = endpoint
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&offer).expect("offer parses"))
        .expect("accepted")
        .to_sdp_string();
    assert!(!answer.contains("a=ice-lite"));
    let mut client = pending
        .accept_answer(&answer, now)
        .expect("answer accepted");

    let mut t = now;
    let mut to_endpoint: Vec<Vec<u8>> = Vec::new();
    let mut to_client: Vec<Vec<u8>> = Vec::new();
    let mut endpoint_connected = false;
    while t - now < Duration::from_secs(5) && !(client.is_connected() && endpoint_connected) {
        t += Duration::from_millis(5);
        for bytes in to_endpoint.drain(..) {
            let input = Input::Receive(
                t,
                str0m::net::Receive {
                    proto: str0m::net::Protocol::Udp,
                    source: CLIENT,
                    destination: ENDPOINT,
                    contents: bytes.as_slice().try_into().expect("wire bytes"),
                },
            );
            endpoint.handle_input(input).expect("endpoint input");
        }
        for bytes in to_client.drain(..) {
            client.handle_input(t, ENDPOINT, CLIENT, &bytes);
        }
        endpoint
            .handle_input(Input::Timeout(t))
            .expect("endpoint timeout");
        loop {
            match endpoint.poll_output().expect("endpoint output") {
                Output::Timeout(_) => break,
                Output::Transmit(tx) => to_client.push(tx.contents.into()),
                Output::Event(Event::Connected) => endpoint_connected = true,
                Output::Event(_) => {}
            }
        }
        client.handle_timeout(t);
        while let Some(d) = client.poll_transmit() {
            to_endpoint.push(d.payload);
        }
    }
    assert!(client.is_connected() && endpoint_connected, "connected");
}

#[test]
fn refuses_an_answer_that_is_not_sdp() {
    let (pending, _offer) = WebRtcLeg::offer(
        &WebRtcConfig::new(CLIENT),
        ClientRole::Publish,
        Instant::now(),
    )
    .expect("offer");
    let err = pending
        .accept_answer("<html>502 Bad Gateway</html>", Instant::now())
        .expect_err("refused");
    assert!(matches!(err, WebRtcError::MalformedSdp { .. }), "{err:?}");
}

#[test]
fn refuses_an_answer_without_candidates() {
    let now = Instant::now();
    let (pending, offer) =
        WebRtcLeg::offer(&WebRtcConfig::new(CLIENT), ClientRole::Publish, now).expect("offer");
    let (_endpoint, answer) =
        WebRtcLeg::answer(&WebRtcConfig::new(ENDPOINT), &offer, now).expect("answered");
    let trickled: String = answer
        .lines()
        .filter(|l| !l.starts_with("a=candidate:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let err = pending.accept_answer(&trickled, now).expect_err("refused");
    assert!(
        matches!(&err, WebRtcError::Refused { reason } if reason.contains("candidates")),
        "{err:?}"
    );
}

#[test]
fn refuses_an_answer_that_rejects_the_audio() {
    let now = Instant::now();
    let (pending, offer) =
        WebRtcLeg::offer(&WebRtcConfig::new(CLIENT), ClientRole::Publish, now).expect("offer");
    // An endpoint without Opus rejects the m-line (port 0, no codec of ours).
    let mut endpoint = Rtc::builder()
        .clear_codecs()
        .enable_pcmu(true, false)
        .build(now);
    endpoint.add_local_candidate(Candidate::host(ENDPOINT, "udp").expect("candidate"));
    let answer = endpoint
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&offer).expect("offer parses"))
        .expect("accepted")
        .to_sdp_string();
    let err = pending.accept_answer(&answer, now).expect_err("refused");
    assert!(
        matches!(
            err,
            WebRtcError::NoOpus { .. } | WebRtcError::Refused { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn refuses_to_offer_from_a_wildcard_address() {
    let wildcard = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 40000);
    let err = WebRtcLeg::offer(
        &WebRtcConfig::new(wildcard),
        ClientRole::Subscribe,
        Instant::now(),
    )
    .expect_err("refused");
    assert!(
        matches!(err, WebRtcError::UnusableAddress { .. }),
        "{err:?}"
    );
}
