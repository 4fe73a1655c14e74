//! A room linked to an external video meeting (`amtsleitung room link`): while the room is open
//! the server is a WHEP client of the meeting's egress (the meeting's audio comes into the
//! room) and a WHIP client of its ingress (the room's mix, without the meeting's own audio,
//! goes to the meeting). Both sessions are one participant of the room, like a WebRTC client
//! that publishes and listens: counted, muted and ended like one, but announced as the meeting
//! ("the video meeting is connected") rather than with a caller's join tone.
//!
//! One task per linked open room keeps the link up: it connects, waits for the link to fail
//! (an HTTP error, an answer it cannot use, ICE or DTLS failing, consent lost, the meeting
//! closing DTLS) and tries again after [`LinkBackoff`]'s delay, for as long as somebody other
//! than the meeting is in the room. The room hears a notice when an established link goes down
//! and when it comes back ("up" means ICE and DTLS are up on both sessions, not merely that
//! the meeting answered). When the room ends (its last caller left, a moderator ended it, an
//! admin closed it) or an admin unlinks it, the link's sessions end and their DELETEs go to
//! the meeting; when an admin links it anew, it reconnects to the new endpoints.
//!
//! A watch started with the server looks once a second for open rooms that have a stored link
//! and no running task, so a link comes up within about a second of the room opening, whether
//! the room was entered through the dialplan's `webrtc_bridge` action or a normal dial-in.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store::RoomLink;
use tokio::sync::mpsc;
use url::Url;
use webrtc::{ClientRole, WebRtcConfig, WebRtcLeg};

use crate::browser_media::{BrowserCommand, BrowserDirection, BrowserReport, BrowserStart};
use crate::call_event::{CallEvent, Notice};
use crate::conference::{Refusal, RoomTerms};
use crate::ids::LegId;
use crate::link_backoff::LinkBackoff;
use crate::link_http::{self, PostedOffer};
use crate::media_worker::MediaCommand;
use crate::shared::Shared;

/// How often the watch looks for linked rooms that opened, and a running link whether its
/// room is still open.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// An established link compares itself with the store every this many checks, so that
/// `room unlink` and a new `room link` take effect within seconds.
const LINK_CHECK_TICKS: u32 = 5;
/// A link whose meeting stays unreachable this long after ICE gave its pair up is down. Short:
/// the client leg's ICE already waited several seconds of unanswered checks (see the `webrtc`
/// crate's client side), a meeting does not walk through a tunnel like a browser, and the room
/// should hear soon.
const UNREACHABLE_TIMEOUT: Duration = Duration::from_secs(1);
/// ICE and DTLS of both sessions must be up this long after the answers came, or the attempt
/// failed (the meeting's candidates cannot be reached: a firewall, a wrong public address).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Prompts the room hears.
const PROMPT_UP: &str = "meeting-connected";
const PROMPT_DOWN: &str = "meeting-disconnected";

/// What `/metrics` shows of one room's link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Both sessions are established and in the room.
    pub up: bool,
    /// Attempts made after the link's first one (failed attempts and lost links both count).
    pub reconnects: u64,
}

/// The links running on this server, by room.
#[derive(Default)]
pub struct MeetingLinks {
    running: Mutex<BTreeMap<String, LinkStatus>>,
}

impl MeetingLinks {
    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LinkStatus>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every running link's status, by room.
    pub fn statuses(&self) -> Vec<(String, LinkStatus)> {
        self.running()
            .iter()
            .map(|(room, status)| (room.clone(), *status))
            .collect()
    }

    fn update(&self, room: &str, f: impl FnOnce(&mut LinkStatus)) {
        if let Some(status) = self.running().get_mut(room) {
            f(status);
        }
    }

    /// The Prometheus lines for the running links.
    pub fn metrics(&self) -> String {
        use std::fmt::Write;
        let statuses = self.statuses();
        let mut out = String::from(
            "# HELP amtsleitung_meeting_link_up Whether a linked room's meeting link is up (1) or down (0), for rooms open now.\n# TYPE amtsleitung_meeting_link_up gauge\n",
        );
        for (room, status) in &statuses {
            let _ = writeln!(
                out,
                "amtsleitung_meeting_link_up{{room=\"{room}\"}} {}",
                u8::from(status.up)
            );
        }
        out.push_str("# HELP amtsleitung_meeting_link_reconnects_total Attempts to bring a linked room's meeting link (back) up after its first, while the room is open.\n# TYPE amtsleitung_meeting_link_reconnects_total counter\n");
        for (room, status) in &statuses {
            let _ = writeln!(
                out,
                "amtsleitung_meeting_link_reconnects_total{{room=\"{room}\"}} {}",
                status.reconnects
            );
        }
        out
    }
}

/// Starts the watch that starts a link task for each open room with a stored link.
pub fn spawn_watch(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let candidates: Vec<String> = {
                let running = shared.links.running();
                shared
                    .conferences
                    .summary()
                    .into_iter()
                    .filter(|(room, members, _)| *members > 0 && !running.contains_key(room))
                    .map(|(room, _, _)| room)
                    .collect()
            };
            if candidates.is_empty() {
                continue;
            }
            let links = shared.store.run(|store| store.room_links()).await;
            let links = match links {
                Ok(Ok(links)) => links,
                Ok(Err(err)) => {
                    tracing::warn!("room links not read: {err}");
                    continue;
                }
                Err(err) => {
                    tracing::warn!("room links not read: {err}");
                    continue;
                }
            };
            for link in links.into_iter().filter(|l| candidates.contains(&l.room)) {
                let room = link.room.clone();
                if shared
                    .links
                    .running()
                    .insert(room.clone(), LinkStatus::default())
                    .is_none()
                {
                    let shared = shared.clone();
                    let span = tracing::info_span!("meeting_link", %room);
                    tokio::spawn(tracing::Instrument::instrument(
                        async move {
                            run_link(&shared, &room).await;
                            shared.links.running().remove(&room);
                        },
                        span,
                    ));
                }
            }
        }
    });
}

/// An established link: its two sessions in the room as one participant.
struct Established {
    /// The WHEP session (the meeting's audio in), which is also the room participant.
    incoming: LegId,
    /// The WHIP session (the room's mix out).
    outgoing: LegId,
    whep: PostedOffer,
    whip: PostedOffer,
}

/// Why an established link stopped.
enum LinkEnd {
    /// The room ended (or nobody but the meeting is left): stop for good.
    RoomEnded(&'static str),
    /// The meeting side failed: try again.
    Failed(String),
    /// An admin removed the room's link (`room unlink`): stop.
    Unlinked,
    /// An admin linked the room anew (`room link` with other URLs or tokens): reconnect at once.
    Changed,
}

/// Keeps `room`'s link up until the room ends or its link is removed.
async fn run_link(shared: &Arc<Shared>, room: &str) {
    let mut backoff = LinkBackoff::default();
    let (reports_tx, mut reports) = mpsc::channel::<BrowserReport>(16);
    let (notices_tx, mut notices) = mpsc::channel::<(LegId, CallEvent)>(64);
    let (connected_tx, mut connected) = mpsc::channel::<LegId>(16);
    let mut attempts = 0u64;
    tracing::info!("meeting link starts");
    loop {
        if shared.conferences.count(room) == 0 {
            break;
        }
        let link = match shared
            .store
            .run({
                let room = room.to_owned();
                move |store| store.room_link_get(&room)
            })
            .await
        {
            Ok(Ok(Some(link))) => link,
            Ok(Ok(None)) => {
                tracing::info!("room is no longer linked; meeting link stops");
                break;
            }
            Ok(Err(err)) => {
                tracing::warn!("room link not read: {err}");
                if !wait(shared, room, backoff.failed(Instant::now())).await {
                    break;
                }
                continue;
            }
            Err(err) => {
                tracing::warn!("room link not read: {err}");
                break;
            }
        };
        if attempts > 0 {
            shared.links.update(room, |s| s.reconnects += 1);
        }
        attempts += 1;
        // Reports and notices of an earlier attempt's sessions mean nothing now.
        while reports.try_recv().is_ok() {}
        while notices.try_recv().is_ok() {}
        while connected.try_recv().is_ok() {}
        let channels = LinkChannels {
            reports: &reports_tx,
            notices: &notices_tx,
            connected: &connected_tx,
        };
        let up = match connect(shared, room, &link, channels).await {
            Ok(up) => up,
            Err(reason) => {
                let delay = backoff.failed(Instant::now());
                tracing::warn!(%reason, retry_in = ?delay, "meeting link not established");
                if !wait(shared, room, delay).await {
                    break;
                }
                continue;
            }
        };
        // Counted in the room from here on, but the meeting is "connected" only once ICE and
        // DTLS are up both ways: a meeting that cannot be reached must not be announced.
        let end = match await_connected(
            shared,
            room,
            &up,
            &mut reports,
            &mut notices,
            &mut connected,
        )
        .await
        {
            Ok(()) => {
                backoff.connected(Instant::now());
                shared.links.update(room, |s| s.up = true);
                shared
                    .conferences
                    .tell_others(room, up.incoming, Notice::Announce(PROMPT_UP));
                tracing::info!(whip = %up.whip.session, whep = %up.whep.session, "meeting link up");
                let end =
                    watch_established(shared, room, &up, &link, &mut reports, &mut notices).await;
                shared.links.update(room, |s| s.up = false);
                end
            }
            Err(LinkEnd::Failed(reason)) => {
                tear_down(shared, room, &up, &link);
                let delay = backoff.failed(Instant::now());
                tracing::warn!(%reason, retry_in = ?delay, "meeting link not established");
                if !wait(shared, room, delay).await {
                    break;
                }
                continue;
            }
            Err(end) => end,
        };
        tear_down(shared, room, &up, &link);
        match end {
            LinkEnd::RoomEnded(why) => {
                tracing::info!(why, "meeting link stops with its room");
                break;
            }
            LinkEnd::Unlinked => {
                shared
                    .conferences
                    .tell_others(room, up.incoming, Notice::Announce(PROMPT_DOWN));
                tracing::info!("room unlinked; meeting link stops");
                break;
            }
            LinkEnd::Changed => {
                // The room hears the old meeting go and the new one come.
                shared
                    .conferences
                    .tell_others(room, up.incoming, Notice::Announce(PROMPT_DOWN));
                tracing::info!("room linked anew; meeting link reconnects");
            }
            LinkEnd::Failed(reason) => {
                shared
                    .conferences
                    .tell_others(room, up.incoming, Notice::Announce(PROMPT_DOWN));
                let delay = backoff.failed(Instant::now());
                tracing::warn!(%reason, retry_in = ?delay, "meeting link down");
                if !wait(shared, room, delay).await {
                    break;
                }
            }
        }
    }
    tracing::info!("meeting link ended");
}

/// Sleeps `delay` (the meeting is not in the room meanwhile), waking early when the room
/// ends; false if it did.
async fn wait(shared: &Shared, room: &str, delay: Duration) -> bool {
    let until = tokio::time::Instant::now() + delay;
    loop {
        if shared.conferences.count(room) == 0 {
            return false;
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        tokio::time::sleep((until - now).min(CHECK_INTERVAL)).await;
    }
}

/// Members of `room` other than `member`.
fn others_in(shared: &Shared, room: &str, member: LegId) -> usize {
    shared
        .conferences
        .with_room(room, |r| {
            r.members.keys().filter(|id| **id != member).count()
        })
        .unwrap_or(0)
}

/// Waits until ICE and DTLS are up on both sessions; `Err` when one ends first, the room ends,
/// or [`CONNECT_TIMEOUT`] passes.
async fn await_connected(
    shared: &Shared,
    room: &str,
    up: &Established,
    reports: &mut mpsc::Receiver<BrowserReport>,
    notices: &mut mpsc::Receiver<(LegId, CallEvent)>,
    connected: &mut mpsc::Receiver<LegId>,
) -> Result<(), LinkEnd> {
    let deadline = tokio::time::sleep(CONNECT_TIMEOUT);
    tokio::pin!(deadline);
    let (mut incoming, mut outgoing) = (false, false);
    while !(incoming && outgoing) {
        tokio::select! {
            Some(session) = connected.recv() => {
                incoming |= session == up.incoming;
                outgoing |= session == up.outgoing;
            }
            Some(report) = reports.recv() => {
                if let Some(end) = session_failed(up, &report) {
                    return Err(end);
                }
            }
            Some((_, event)) = notices.recv() => {
                if let Some(end) = room_news(shared, room, up, event) {
                    return Err(end);
                }
            }
            () = &mut deadline => {
                return Err(LinkEnd::Failed(format!(
                    "ICE/DTLS not up within {CONNECT_TIMEOUT:?} (WHEP {}, WHIP {})",
                    if incoming { "up" } else { "not up" },
                    if outgoing { "up" } else { "not up" },
                )));
            }
        }
    }
    Ok(())
}

/// The link's end when `report` is about one of its sessions.
fn session_failed(up: &Established, report: &BrowserReport) -> Option<LinkEnd> {
    let which = if report.session == up.incoming {
        "WHEP"
    } else if report.session == up.outgoing {
        "WHIP"
    } else {
        return None;
    };
    Some(LinkEnd::Failed(format!(
        "{which} session ended: {:?}",
        report.end
    )))
}

/// Acts on room news for the meeting's participant; the link's end when the room ended.
fn room_news(shared: &Shared, room: &str, up: &Established, event: CallEvent) -> Option<LinkEnd> {
    match event {
        CallEvent::Notice(Notice::Closed) => Some(LinkEnd::RoomEnded("room closed by an admin")),
        CallEvent::Notice(Notice::Ended) => Some(LinkEnd::RoomEnded("conference ended")),
        CallEvent::Notice(Notice::Removed) => Some(LinkEnd::RoomEnded("removed by a moderator")),
        CallEvent::Notice(Notice::SetMuted(muted)) => {
            shared.media.send_browser(BrowserCommand::SetMuted {
                room: room.to_owned(),
                participant: up.incoming,
                muted,
            });
            None
        }
        // Prompts are for callers; the meeting hears the room only.
        _ => None,
    }
}

/// Runs until the established link fails or its room ends.
async fn watch_established(
    shared: &Shared,
    room: &str,
    up: &Established,
    link: &RoomLink,
    reports: &mut mpsc::Receiver<BrowserReport>,
    notices: &mut mpsc::Receiver<(LegId, CallEvent)>,
) -> LinkEnd {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            Some(report) = reports.recv() => {
                if let Some(end) = session_failed(up, &report) {
                    return end;
                }
            }
            Some((_, event)) = notices.recv() => {
                if let Some(end) = room_news(shared, room, up, event) {
                    return end;
                }
            }
            _ = tick.tick() => {
                if others_in(shared, room, up.incoming) == 0 {
                    return LinkEnd::RoomEnded("nobody but the meeting is left");
                }
                ticks += 1;
                if ticks.is_multiple_of(LINK_CHECK_TICKS) {
                    let stored = {
                        let room = room.to_owned();
                        shared.store.run(move |store| store.room_link_get(&room)).await
                    };
                    // An unreadable store changes nothing: the link stays as it is.
                    match stored {
                        Ok(Ok(None)) => return LinkEnd::Unlinked,
                        Ok(Ok(Some(stored))) if stored != *link => return LinkEnd::Changed,
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Ends an established link's sessions: media stops, the participant leaves, and the DELETEs
/// go to the meeting (in the background: a dead meeting must not hold up the next attempt).
fn tear_down(shared: &Shared, room: &str, up: &Established, link: &RoomLink) {
    for session in [up.outgoing, up.incoming] {
        shared.media.send_browser(BrowserCommand::Stop {
            room: room.to_owned(),
            session,
        });
    }
    leave(shared, room, up.incoming);
    delete_later(up.whip.session.clone(), link.whip_token.clone());
    delete_later(up.whep.session.clone(), link.whep_token.clone());
}

/// Takes the meeting out of the room; ends the room's recording when that emptied it.
fn leave(shared: &Shared, room: &str, participant: LegId) {
    if let Some(recording) = shared.conferences.leave(room, participant) {
        tracing::info!(id = ?recording.id, "recording ends");
        shared.media.send(
            LegId::new(0),
            MediaCommand::SetRecording(room.to_owned(), None),
        );
    }
}

fn delete_later(session: Url, token: Option<String>) {
    tokio::spawn(async move {
        match link_http::delete_session(&session, token.as_deref()).await {
            Ok(()) => tracing::info!(%session, "meeting session deleted"),
            Err(err) => tracing::info!(%session, "meeting session not deleted: {err}"),
        }
    });
}

/// Where a link's sessions and participant report to its task.
#[derive(Clone, Copy)]
struct LinkChannels<'a> {
    reports: &'a mpsc::Sender<BrowserReport>,
    notices: &'a mpsc::Sender<(LegId, CallEvent)>,
    connected: &'a mpsc::Sender<LegId>,
}

/// One attempt: both sessions negotiated, the participant admitted and handed to the media
/// worker. Whatever was set up is undone when a later step fails.
async fn connect(
    shared: &Shared,
    room: &str,
    link: &RoomLink,
    channels: LinkChannels<'_>,
) -> Result<Established, String> {
    let whep_url = Url::parse(&link.whep_url).map_err(|e| format!("WHEP URL: {e}"))?;
    let whip_url = Url::parse(&link.whip_url).map_err(|e| format!("WHIP URL: {e}"))?;
    let (incoming_socket, incoming_config) = media_socket(shared, &whep_url).await?;
    let (pending, offer) =
        WebRtcLeg::offer(&incoming_config, ClientRole::Subscribe, Instant::now())
            .map_err(|e| e.to_string())?;
    let whep = link_http::post_offer(&whep_url, link.whep_token.as_deref(), &offer)
        .await
        .map_err(|e| format!("WHEP: {e}"))?;
    let undo_whep = || delete_later(whep.session.clone(), link.whep_token.clone());
    let incoming_leg = match pending.accept_answer(&whep.answer, Instant::now()) {
        Ok(leg) => leg,
        Err(e) => {
            undo_whep();
            return Err(format!("WHEP answer: {e}"));
        }
    };

    let outgoing = async {
        let (socket, leg_config) = media_socket(shared, &whip_url).await?;
        let (pending, offer) = WebRtcLeg::offer(&leg_config, ClientRole::Publish, Instant::now())
            .map_err(|e| e.to_string())?;
        let whip = link_http::post_offer(&whip_url, link.whip_token.as_deref(), &offer)
            .await
            .map_err(|e| format!("WHIP: {e}"))?;
        match pending.accept_answer(&whip.answer, Instant::now()) {
            Ok(leg) => Ok((socket, leg, whip)),
            Err(e) => {
                delete_later(whip.session.clone(), link.whip_token.clone());
                Err(format!("WHIP answer: {e}"))
            }
        }
    }
    .await;
    let (outgoing_socket, outgoing_leg, whip) = match outgoing {
        Ok(x) => x,
        Err(e) => {
            undo_whep();
            return Err(e);
        }
    };
    let undo_both = || {
        undo_whep();
        delete_later(whip.session.clone(), link.whip_token.clone());
    };

    // Admitted like a WebRTC client: the room's limit and lock hold for the meeting too.
    let stored = {
        let room = room.to_owned();
        shared.store.run(move |store| store.room_get(&room)).await
    };
    let stored = match stored {
        Ok(Ok(stored)) => stored,
        Ok(Err(e)) => {
            undo_both();
            return Err(format!("store: {e}"));
        }
        Err(e) => {
            undo_both();
            return Err(format!("store: {e}"));
        }
    };
    let incoming = shared.webrtc.new_session_id();
    let outgoing = shared.webrtc.new_session_id();
    let terms = RoomTerms::of(stored.as_ref());
    let muted = match shared.conferences.admit_client(
        room,
        incoming,
        terms,
        crate::conference::Entrant {
            label: crate::conference::MemberLabel::Meeting,
            notices: channels.notices.clone(),
        },
    ) {
        Ok(admission) => admission.muted_until_moderator,
        Err(refusal) => {
            undo_both();
            return Err(match refusal {
                Refusal::Full => "the room is full".to_owned(),
                Refusal::Locked => "the room is locked".to_owned(),
                Refusal::Closing | Refusal::NotOpen => "the room is closing".to_owned(),
            });
        }
    };
    let starts = [
        (
            incoming,
            BrowserDirection::Publish,
            incoming_socket,
            incoming_leg,
        ),
        (
            outgoing,
            BrowserDirection::Subscribe,
            outgoing_socket,
            outgoing_leg,
        ),
    ];
    for (session, direction, socket, leg) in starts {
        let start = BrowserStart {
            session,
            participant: incoming,
            room: room.to_owned(),
            direction,
            socket,
            leg,
            muted,
            unreachable_timeout: UNREACHABLE_TIMEOUT,
            reports: channels.reports.clone(),
            connected: Some(channels.connected.clone()),
        };
        if !shared
            .media
            .send_browser(BrowserCommand::Start(Box::new(start)))
        {
            for session in [outgoing, incoming] {
                shared.media.send_browser(BrowserCommand::Stop {
                    room: room.to_owned(),
                    session,
                });
            }
            leave(shared, room, incoming);
            undo_both();
            return Err("the media worker is busy".to_owned());
        }
    }
    Ok(Established {
        incoming,
        outgoing,
        whep,
        whip,
    })
}

/// A UDP socket from the RTP range, on the local address that reaches `endpoint`'s host
/// (ingress and egress may be different servers), and the leg configuration for it.
async fn media_socket(
    shared: &Shared,
    endpoint: &Url,
) -> Result<(std::net::UdpSocket, WebRtcConfig), String> {
    let config = &shared.config;
    let ip = match config.media_ip {
        Some(ip) => ip,
        None => {
            let remote = link_http::resolve(endpoint)
                .await
                .map_err(|e| e.to_string())?;
            crate::sip_endpoint::local_ip_towards(remote.ip(), config.sip_listen.ip())
        }
    };
    let socket = shared
        .webrtc
        .ports()
        .bind_one(ip)
        .map_err(|e| format!("no media port free: {e}"))?;
    let local = socket
        .local_addr()
        .map_err(|e| format!("no media port free: {e}"))?;
    let mut config = WebRtcConfig::new(local);
    if let Some(public) = shared.config.webrtc.public_ip {
        config = config.with_public_ip(public);
    }
    Ok((socket, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_show_each_running_link_up_or_down_with_its_reconnects() {
        let links = MeetingLinks::default();
        assert!(!links.metrics().contains("{room="), "no link, no series");
        links.running().insert("4711".into(), LinkStatus::default());
        links.running().insert("12".into(), LinkStatus::default());
        links.update("4711", |s| {
            s.up = true;
            s.reconnects = 3;
        });
        links.update("99", |s| s.up = true);
        let text = links.metrics();
        for line in [
            "amtsleitung_meeting_link_up{room=\"4711\"} 1",
            "amtsleitung_meeting_link_up{room=\"12\"} 0",
            "amtsleitung_meeting_link_reconnects_total{room=\"4711\"} 3",
            "amtsleitung_meeting_link_reconnects_total{room=\"12\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        assert!(
            !text.contains("\"99\""),
            "a room without a running link: {text}"
        );
    }
}
