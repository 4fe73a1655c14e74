//! The offering side: the server as a WHIP or WHEP *client* of somebody else's endpoint (an
//! external video meeting's ingress or egress). The server writes the offer, the endpoint
//! answers, and from then on the leg is a [`WebRtcLeg`] like any browser's, driven the same way.
//!
//! Unlike the answering side, the offerer runs a full ICE agent and is the controlling agent
//! (RFC 8445 §6.1.1): a meeting's endpoint may itself be ICE-lite, and one side must run the
//! connectivity checks and nominate. The candidates to check come from the answer (no trickle
//! ICE: RFC 9725 lets a client wait for the answer's candidates, and every server we link to
//! puts them there). DTLS is `actpass` in the offer, so the answer picks the role.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use tracing::debug;

use crate::config::WebRtcConfig;
use crate::error::WebRtcError;
use crate::leg::{
    Negotiated, WebRtcLeg, add_host_candidate, asks_for_dtx, drain_new, negotiated_opus, rtc_config,
};
use crate::offer::{parse_complaint, summarize};

/// Answers larger than this are refused unread (an endpoint's answer is a few KiB).
const MAX_ANSWER: usize = 64 * 1024;

/// The controlling agent's STUN retransmission cap and count, which decide how long a pair
/// whose checks go unanswered lives: with these about 7.5 s (str0m's defaults, 3 s and 9, make
/// it 23 s). A meeting's server does not roam like a browser on Wi-Fi, and every second a dead
/// link goes unnoticed is a second the room waits for the notice and for the reconnect.
const MAX_STUN_RTO: Duration = Duration::from_millis(1500);
const MAX_STUN_RETRANSMITS: usize = 6;

/// Which endpoint the offer is for, which fixes the direction of its one audio m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
    /// A WHIP client: the server publishes (`sendonly`) into the endpoint.
    Publish,
    /// A WHEP client: the server receives (`recvonly`) what the endpoint plays.
    Subscribe,
}

/// An offer sent and waiting for its answer: [`accept_answer`](Self::accept_answer) makes it
/// a [`WebRtcLeg`].
pub struct PendingClientLeg {
    rtc: Rtc,
    pending: SdpPendingOffer,
    mid: Mid,
    role: ClientRole,
    local_port: u16,
    advertised: SocketAddr,
}

impl std::fmt::Debug for PendingClientLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingClientLeg")
            .field("role", &self.role)
            .field("advertised", &self.advertised)
            .finish_non_exhaustive()
    }
}

impl WebRtcLeg {
    /// Writes an offer for one Opus 48000/2 audio m-line in `role`'s direction, with one host
    /// candidate ([`WebRtcConfig::advertised`]) and DTLS `setup:actpass`: the pending leg,
    /// and the offer SDP to POST. `now` starts the leg's clock.
    pub fn offer(
        config: &WebRtcConfig,
        role: ClientRole,
        now: Instant,
    ) -> Result<(PendingClientLeg, String), WebRtcError> {
        let advertised = config.advertised()?;
        let mut rtc_config = rtc_config(false);
        rtc_config.set_max_stun_rto(MAX_STUN_RTO);
        rtc_config.set_max_stun_retransmits(MAX_STUN_RETRANSMITS);
        let mut rtc = rtc_config.build(now);
        add_host_candidate(&mut rtc, advertised)?;
        let direction = match role {
            ClientRole::Publish => Direction::SendOnly,
            ClientRole::Subscribe => Direction::RecvOnly,
        };
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, direction, None, None, None);
        let Some((offer, pending)) = api.apply() else {
            // apply() is None only when nothing changed, and an m-line was just added.
            return Err(WebRtcError::Refused {
                reason: "the WebRTC stack wrote no offer".to_owned(),
            });
        };
        debug!(%advertised, ?role, "WebRTC offer written");
        Ok((
            PendingClientLeg {
                rtc,
                pending,
                mid,
                role,
                local_port: config.local.port(),
                advertised,
            },
            offer.to_sdp_string(),
        ))
    }
}

impl PendingClientLeg {
    /// The endpoint's answer: the leg, which starts its ICE checks against the answer's
    /// candidates right away (the first STUN requests wait in
    /// [`poll_transmit`](WebRtcLeg::poll_transmit)).
    ///
    /// Errors name what the endpoint did wrong, for the link's log: an answer that is not SDP,
    /// that rejects the audio m-line or answers it without Opus, or that breaks an ICE or DTLS
    /// rule (no fingerprint, no candidates to check, ...).
    pub fn accept_answer(
        mut self,
        answer_sdp: &str,
        now: Instant,
    ) -> Result<WebRtcLeg, WebRtcError> {
        if answer_sdp.len() > MAX_ANSWER {
            return Err(WebRtcError::MalformedSdp {
                reason: format!(
                    "{} bytes, more than the {MAX_ANSWER} an answer may have",
                    answer_sdp.len()
                ),
            });
        }
        let answer =
            SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| WebRtcError::MalformedSdp {
                reason: parse_complaint(&e.to_string()),
            })?;
        if !answer_sdp.lines().any(|l| l.starts_with("a=candidate:")) {
            // Without trickle ICE nothing would ever be checked: the leg would sit in
            // "connecting" until the link gives up, so say now what is wrong.
            return Err(WebRtcError::Refused {
                reason: "the answer has no ICE candidates (trickle ICE is not supported)"
                    .to_owned(),
            });
        }
        self.rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .map_err(|e| WebRtcError::Refused {
                reason: e.to_string(),
            })?;
        // Let the ICE agent start checking before the first drain.
        let _ = self.rtc.handle_input(str0m::Input::Timeout(now));
        let first = drain_new(&mut self.rtc).map_err(|reason| WebRtcError::Refused { reason })?;
        let Some((opus_pt, sends)) = negotiated_opus(&self.rtc, self.mid) else {
            return Err(WebRtcError::NoOpus {
                offered: summarize(answer_sdp),
            });
        };
        if sends != (self.role == ClientRole::Publish) {
            return Err(WebRtcError::Refused {
                reason: format!(
                    "the answer turned the audio direction around (we offered {:?})",
                    self.role
                ),
            });
        }
        debug!(advertised = %self.advertised, mid = %self.mid, pt = *opus_pt, "WebRTC answer accepted");
        Ok(WebRtcLeg::assemble(
            self.rtc,
            Negotiated {
                mid: self.mid,
                opus_pt,
                sends,
                peer_dtx: asks_for_dtx(answer_sdp, opus_pt),
            },
            self.local_port,
            self.advertised,
            first,
        ))
    }
}
