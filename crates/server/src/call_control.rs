//! Call control: the owner of every leg the SIP endpoint reports.
//!
//! A new INVITE is routed through the dialplan, its SDP offer answered, RTP ports bound and a
//! media session and a call task started. Re-offers update the media; the call task's
//! requests (answer, reject, hang up) become endpoint commands; an ended leg stops its media,
//! tells its task and writes the call record.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::sdp::{self, Codec, Direction, LocalMedia};
use sip::message as msg;
use tokio::sync::mpsc;

use crate::call::{self, CallContext, CallEvent};
use crate::core_command::CoreCommand;
use crate::ids::LegId;
use crate::media_worker::{MediaCommand, PortAllocator, QualityCell, RemoteMedia, SessionSpec};
use crate::shared::Shared;
use crate::sip_endpoint::{Incoming, LegEvent, MEDIA_TIMEOUT, SipEndpoint};

/// Codecs we offer and accept, best first (the answer follows the offerer's order).
const OUR_CODECS: &[Codec] = &[Codec::Opus, Codec::G722, Codec::Pcma, Codec::Pcmu];
/// How long a call record waits for the media worker's final figures.
const MEDIA_STOP_WAIT: Duration = Duration::from_millis(300);

/// A leg's negotiated media.
struct MediaSession {
    local_ip: IpAddr,
    port: u16,
    session_id: u64,
    sdp_version: u64,
    answer_sdp: String,
    remote_rtp: Option<SocketAddr>,
    remote_rtcp: Option<SocketAddr>,
    /// The direction our answer gave us (RFC 3264 §6.1).
    direction: Direction,
}

impl MediaSession {
    /// What the media worker needs of it.
    fn remote(&self) -> RemoteMedia {
        RemoteMedia {
            rtp: self.remote_rtp,
            rtcp: self.remote_rtcp,
            send: self.direction.sends() && self.remote_rtp.is_some(),
            active: self.direction == Direction::SendRecv,
        }
    }
}

/// A leg call control has taken on.
struct CallLeg {
    call_id: String,
    caller: String,
    callee: String,
    started_wall_ms: i64,
    media: MediaSession,
    /// RTCP figures the media worker publishes, for the call record.
    quality: Arc<QualityCell>,
    /// The call task's event queue.
    events: mpsc::UnboundedSender<CallEvent>,
    /// The endpoint reported the leg over.
    ended: bool,
    /// The call task is done with the leg.
    finished: bool,
}

/// Call control (see the module documentation).
pub struct CallControl {
    shared: Arc<Shared>,
    ports: PortAllocator,
    commands: mpsc::UnboundedSender<CoreCommand>,
    legs: HashMap<LegId, CallLeg>,
}

impl CallControl {
    /// Call control with no legs; call tasks and media sessions send to `commands`.
    pub fn new(
        shared: Arc<Shared>,
        ports: PortAllocator,
        commands: mpsc::UnboundedSender<CoreCommand>,
    ) -> Self {
        Self {
            shared,
            ports,
            commands,
            legs: HashMap::new(),
        }
    }

    /// Takes one event from the endpoint.
    pub fn on_leg_event(&mut self, event: LegEvent, endpoint: &mut SipEndpoint, now: Instant) {
        match event {
            LegEvent::Incoming(incoming) => self.on_incoming(*incoming, endpoint, now),
            LegEvent::Offer { leg, body } => {
                let answer = self.apply_offer(leg, &body);
                endpoint.answer_offer(leg, answer, now);
            }
            LegEvent::Dtmf { leg, digit } => {
                if let Some(l) = self.legs.get(&leg) {
                    let _ = l.events.send(CallEvent::Dtmf(digit));
                }
            }
            LegEvent::Ended {
                leg,
                answered,
                final_status,
                reason,
            } => {
                self.on_ended(leg, answered, final_status, &reason);
                if self.legs.get(&leg).is_none_or(|l| l.finished) {
                    self.legs.remove(&leg);
                    endpoint.forget(leg, &reason, now);
                }
            }
        }
    }

    /// Takes one request of a call task or media session.
    pub fn on_command(&mut self, command: CoreCommand, endpoint: &mut SipEndpoint, now: Instant) {
        match command {
            CoreCommand::Answer(leg) => {
                if let Some(l) = self.legs.get(&leg) {
                    endpoint.answer(leg, l.media.answer_sdp.clone().into_bytes(), now);
                    let remote = l.media.remote();
                    self.shared
                        .media
                        .send(leg, MediaCommand::SetRemote(leg, remote));
                }
            }
            CoreCommand::Reject(leg, code) => {
                endpoint.reject(leg, code, None, "rejected by dialplan", now)
            }
            CoreCommand::Hangup(leg) => endpoint.hangup(leg, "hung up by dialplan", now),
            CoreCommand::Finished(leg, reason) => {
                // A leg still up is hung up with the task's reason; its `Ended` comes next
                // and forgets it once the call record is on its way.
                endpoint.hangup(leg, &reason, now);
                match self.legs.get_mut(&leg) {
                    Some(l) if !l.ended => l.finished = true,
                    _ => {
                        self.legs.remove(&leg);
                        endpoint.forget(leg, &reason, now);
                    }
                }
            }
            CoreCommand::MediaTimeout(leg) => endpoint.hangup(leg, MEDIA_TIMEOUT, now),
        }
    }

    fn on_incoming(&mut self, incoming: Incoming, endpoint: &mut SipEndpoint, now: Instant) {
        let Incoming {
            leg,
            request,
            from,
            local_ip,
        } = incoming;
        let call_id = msg::call_id(&request).unwrap_or_default();
        let span = tracing::info_span!("call", call_id = %call_id);
        let _guard = span.enter();
        let mut refuse = |code: u16, phrase: Option<&str>| {
            endpoint.reject(leg, code, phrase, "refused", now);
            endpoint.forget(leg, "refused", now);
        };
        let callee = request
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let caller = msg::header_value(&request, "From")
            .and_then(|v| msg::address_uri(&v))
            .and_then(|u| msg::parse_uri(&u))
            .and_then(|u| u.auth.map(|a| a.user))
            .unwrap_or_else(|| "anonymous".into());
        let plan = self.shared.plan.current();
        let facts = dialplan::CallFacts {
            to: callee.clone(),
            from: Some(caller.clone()),
            trunk: None,
            source_ip: Some(from.addr.ip()),
            at: jiff::Timestamp::now(),
        };
        let Some(route) = plan.route(&facts) else {
            tracing::info!(to = %callee, "no dialplan rule matches; 404");
            refuse(404, None);
            return;
        };
        tracing::info!(to = %callee, from = %caller, rule = %route.rule_name, "routing call");

        let content_type = msg::header_value(&request, "Content-Type").unwrap_or_default();
        if request.body.is_empty()
            || !content_type
                .to_ascii_lowercase()
                .starts_with("application/sdp")
        {
            // Late offer (offer in our 200, answer in the ACK) is not supported yet.
            refuse(488, Some("SDP Offer Required"));
            return;
        }
        let offer = match parse_offer(&request.body) {
            Ok(offer) => offer,
            Err(err) => {
                tracing::info!("unusable SDP offer: {err}");
                refuse(400, Some("Bad SDP"));
                return;
            }
        };
        let local_ip = self.shared.config.media_ip.unwrap_or(local_ip);
        let (rtp, rtcp) = match self.ports.bind_pair(local_ip) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!("no RTP ports: {err}");
                refuse(503, Some("No Media Ports"));
                return;
            }
        };
        let port = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
        let session_id: u64 = rand::random::<u32>() as u64;
        let local = LocalMedia {
            ip: local_ip,
            port,
            codecs: OUR_CODECS.to_vec(),
            session_id,
            session_version: 1,
        };
        let (answer_sdp, negotiated) = match sdp::answer(&offer, &local) {
            Ok(x) => x,
            Err(err) => {
                tracing::info!("no common codec: {err}");
                refuse(488, None);
                return;
            }
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let quality = Arc::new(QualityCell::new());
        let timers = self.shared.config.calls;
        let codec = codec_kind(negotiated.codec);
        let spec = SessionSpec {
            id: leg,
            rtp,
            rtcp,
            remote: negotiated.remote_rtp,
            remote_rtcp: negotiated.remote_rtcp,
            rtcp_mux: negotiated.rtcp_mux,
            cname: format!("amtsleitung@{local_ip}"),
            media_timeout: timers.media_timeout(false),
            media_timeout_on_hold: timers.media_timeout(true),
            core: self.commands.clone(),
            quality: quality.clone(),
            send: false,
            codec,
            payload_type: negotiated.payload_type,
            telephone_event_pt: negotiated.telephone_event_pt,
            ptime_ms: negotiated.ptime_ms,
            audio_level_ext: negotiated.audio_level_ext,
            events: media_tx,
        };
        self.shared
            .media
            .send(leg, MediaCommand::Start(Box::new(spec)));
        // Ring while the call task works out what to do, so the caller sees progress.
        endpoint.ring(leg, now);
        self.legs.insert(
            leg,
            CallLeg {
                call_id: call_id.clone(),
                caller: caller.clone(),
                callee: callee.clone(),
                started_wall_ms: jiff::Timestamp::now().as_millisecond(),
                media: MediaSession {
                    local_ip,
                    port,
                    session_id,
                    sdp_version: 1,
                    answer_sdp,
                    remote_rtp: negotiated.remote_rtp,
                    remote_rtcp: negotiated.remote_rtcp,
                    direction: negotiated.direction,
                },
                quality,
                events: events_tx.clone(),
                ended: false,
                finished: false,
            },
        );
        let context = CallContext {
            id: leg,
            call_id,
            caller,
            callee,
            language: plan.language().to_string(),
            shared: self.shared.clone(),
            core: self.commands.clone(),
            codec_rate: codec.sample_rate(),
            notices: events_tx,
        };
        tokio::spawn(call::run(context, route, events_rx, media_rx));
    }

    /// Takes an SDP offer in a re-INVITE or UPDATE: `Ok(answer)`, or the status to refuse
    /// it with.
    fn apply_offer(&mut self, leg: LegId, body: &[u8]) -> Result<Vec<u8>, u16> {
        let Some(l) = self.legs.get_mut(&leg) else {
            return Err(481);
        };
        let offer = match parse_offer(body) {
            Ok(offer) => offer,
            Err(err) => {
                tracing::info!(leg = %leg, "bad SDP in re-INVITE: {err}");
                return Err(488);
            }
        };
        let media = &mut l.media;
        let local = LocalMedia {
            ip: media.local_ip,
            port: media.port,
            codecs: OUR_CODECS.to_vec(),
            session_id: media.session_id,
            session_version: media.sdp_version + 1,
        };
        let (answer, negotiated) = sdp::answer(&offer, &local).map_err(|_| 488u16)?;
        media.sdp_version += 1;
        media.answer_sdp = answer;
        media.remote_rtp = negotiated.remote_rtp;
        media.remote_rtcp = negotiated.remote_rtcp;
        media.direction = negotiated.direction;
        tracing::info!(leg = %leg, remote = ?negotiated.remote_rtp, ?negotiated.direction, "re-INVITE: media updated");
        let remote = media.remote();
        self.shared
            .media
            .send(leg, MediaCommand::SetRemote(leg, remote));
        Ok(media.answer_sdp.clone().into_bytes())
    }

    /// The leg is over: stop its media, tell its task, write its call record.
    fn on_ended(&mut self, leg: LegId, answered: bool, final_status: u16, reason: &str) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.ended = true;
        let _ = l.events.send(CallEvent::Hangup);
        self.shared.media.send(leg, MediaCommand::Stop(leg));
        let record = store::CallRecord {
            call_id: l.call_id.clone(),
            caller: l.caller.clone(),
            callee: l.callee.clone(),
            started_at_ms: l.started_wall_ms,
            ended_at_ms: jiff::Timestamp::now().as_millisecond(),
            answered,
            final_status,
            end_reason: reason.to_string(),
            media: store::CallMedia::default(),
        };
        tracing::info!(leg = %leg, reason, "call ended");
        let shared = self.shared.clone();
        let quality = l.quality.clone();
        tokio::task::spawn_blocking(move || {
            let mut record = record;
            // The worker publishes the leg's final RTCP figures when it handles the Stop,
            // within a tick or two; a worker that lost the command costs the record only
            // the last few seconds of figures.
            let give_up = Instant::now() + MEDIA_STOP_WAIT;
            while !quality.stopped() && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(5));
            }
            record.media = quality.to_call_media();
            let store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(err) = store.record_call(&record) {
                tracing::error!("call record not written: {err}");
            }
        });
    }
}

fn codec_kind(codec: Codec) -> media::codec::CodecKind {
    match codec {
        Codec::Pcmu => media::codec::CodecKind::Pcmu,
        Codec::Pcma => media::codec::CodecKind::Pcma,
        Codec::G722 => media::codec::CodecKind::G722,
        Codec::Opus => media::codec::CodecKind::Opus,
    }
}

/// The SDP offer in a request body.
fn parse_offer(body: &[u8]) -> Result<sdp::SessionDescription, String> {
    let text = std::str::from_utf8(body).map_err(|_| "SDP is not UTF-8".to_string())?;
    sdp::parse(text).map_err(|e| e.to_string())
}
