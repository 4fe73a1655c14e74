//! `--leg webrtc`: a run with browser-style participants. Each one publishes over WHIP and
//! listens over WHEP (`?publisher=` ties both sessions into one room participant, as a
//! browser that talks and listens does), with str0m as the client stack; the rooms and
//! their tokens were stored with the admin CLI before the server started.
//!
//! Set-up runs here, one participant after the other at `--cps` (two HTTP exchanges each);
//! media runs on the one I/O thread of [`browser_legs`], which takes each participant as
//! soon as its answers are in, so ICE and DTLS run while later participants are set up.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::browser_legs::{self, BrowserCommand, LiveCounts, NewParticipant, PeerLeg, ToneSummary};
use crate::browser_peer::{BrowserPeer, PeerOutput, PeerRole};
use crate::http_client;
use crate::media_io::{TalkPattern, TxCounters};
use crate::server_proc::ServerProcess;
use crate::{Cli, Report, ServerFigures, measure, plan_talk, take_mark};

/// How long the set-up waits for every answered participant's ICE and DTLS.
const CONNECT_WAIT: Duration = Duration::from_secs(15);

/// What only WebRTC runs measure.
pub struct WebRtcFigures {
    /// The tone check.
    pub tone: ToneSummary,
    /// Participants with a peer connection down at the window end.
    pub down_at_window_end: usize,
    /// Errors str0m reported on our side.
    pub peer_errors: u64,
    /// STUN, DTLS and RTCP datagrams that failed to send.
    pub control_send_errors: u64,
    /// DELETEs answered 200 / sent.
    pub deletes_ok: usize,
    /// DELETEs sent.
    pub deletes_sent: usize,
    /// `amtsleitung_webrtc_sessions` after the hang-up (should be 0).
    pub sessions_left: Option<f64>,
}

/// One participant's two sessions, for the hang-up.
struct Sessions {
    room: String,
    whip: String,
    whep: String,
}

/// Why a participant could not be set up: the HTTP status (0 if none came).
struct Refused(u16);

/// POSTs one offer and applies the answer; the session's URL.
fn open_session(
    server: &ServerProcess,
    peer: &mut BrowserPeer,
    sock: &UdpSocket,
    path: &str,
    token: &str,
    offer: &str,
) -> Result<String, Refused> {
    let answer = http_client::post_sdp(server.http, path, token, offer).map_err(|_| Refused(0))?;
    if answer.status != 201 {
        return Err(Refused(answer.status));
    }
    let location = answer.location.ok_or(Refused(answer.status))?;
    peer.accept_answer(&answer.body, Instant::now(), |out| {
        if let PeerOutput::Transmit { to, payload } = out {
            // Lost or not: ICE retransmits.
            let _ = sock.send_to(payload, to);
        }
    })
    .map_err(|_| Refused(answer.status))?;
    Ok(location)
}

/// A new peer for `role` on a fresh loopback socket; with `dtx`, its offer asks to receive
/// DTX (`usedtx=1` munged into the Opus fmtp, as a page does before setLocalDescription).
fn new_peer(role: PeerRole, dtx: bool) -> anyhow::Result<(BrowserPeer, UdpSocket, String)> {
    let sock = UdpSocket::bind("127.0.0.1:0").context("binding a WebRTC socket")?;
    let (peer, offer) = BrowserPeer::offer(sock.local_addr()?, role, Instant::now())?;
    let offer = if dtx { asking_for_dtx(&offer) } else { offer };
    Ok((peer, sock, offer))
}

/// `sdp` with `usedtx=1` added to str0m's Opus fmtp line (payload type 111).
fn asking_for_dtx(sdp: &str) -> String {
    sdp.split_inclusive("\r\n")
        .map(|line| match line.strip_prefix("a=fmtp:111 ") {
            Some(params) => format!("a=fmtp:111 {};usedtx=1\r\n", params.trim_end()),
            None => line.to_owned(),
        })
        .collect()
}

/// Sets up one participant of `room`: WHIP, then WHEP tied to it; `Err(Refused)` when the
/// server said no (an I/O failure of our own is the outer error).
fn set_up(
    server: &ServerProcess,
    room: &str,
    dtx: bool,
) -> anyhow::Result<Result<(PeerLeg, PeerLeg, Sessions), Refused>> {
    let Some(tokens) = server.tokens.get(room) else {
        bail!("no tokens for room {room}");
    };
    let (mut whip, whip_sock, offer) = new_peer(PeerRole::Publish, false)?;
    let whip_url = match open_session(
        server,
        &mut whip,
        &whip_sock,
        &format!("/whip/rooms/{room}"),
        &tokens.whip,
        &offer,
    ) {
        Ok(url) => url,
        Err(refused) => return Ok(Err(refused)),
    };
    let Some(publisher) = http_client::resource_id(&whip_url) else {
        return Ok(Err(Refused(201)));
    };
    let (mut whep, whep_sock, offer) = new_peer(PeerRole::Listen, dtx)?;
    let path = format!("/whep/rooms/{room}?publisher={publisher}");
    match open_session(server, &mut whep, &whep_sock, &path, &tokens.whep, &offer) {
        Ok(whep_url) => Ok(Ok((
            PeerLeg::new(whip, whip_sock)?,
            PeerLeg::new(whep, whep_sock)?,
            Sessions {
                room: room.to_owned(),
                whip: whip_url,
                whep: whep_url,
            },
        ))),
        Err(refused) => {
            // Not left half set up: the publisher would count as a participant.
            let _ = http_client::delete(server.http, &whip_url, &tokens.whip);
            Ok(Err(refused))
        }
    }
}

/// Runs the browser-style participants against `server` and measures.
pub fn run(cli: &Cli, server: &ServerProcess) -> anyhow::Result<Report> {
    let n = cli.participants;
    let pattern: TalkPattern = cli.talk_pattern.into();
    let (plan, _) = plan_talk(n, cli.rooms, cli.speakers_per_room, pattern, 0);
    let (to_legs, commands) = mpsc::channel();
    let live = Arc::new(LiveCounts::default());
    let tx_counters = Arc::new(TxCounters::default());
    let legs = browser_legs::spawn(
        pattern,
        cli.speakers_per_room,
        cli.dtx,
        commands,
        live.clone(),
        tx_counters.clone(),
    )?;

    let t_setup = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / f64::from(cli.cps));
    let mut failures = BTreeMap::<u16, usize>::new();
    let mut sessions = Vec::with_capacity(n);
    for (i, role) in plan.roles.iter().enumerate() {
        let due = t_setup + gap * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let room = (1000 + i % cli.rooms).to_string();
        match set_up(server, &room, cli.dtx)? {
            Ok((whip, whep, urls)) => {
                sessions.push(urls);
                let participant = NewParticipant {
                    role: *role,
                    hears_tone: browser_legs::tone_expected(
                        i,
                        cli.rooms,
                        cli.speakers_per_room,
                        n,
                        pattern,
                    ),
                    whip,
                    whep,
                };
                if to_legs
                    .send(BrowserCommand::Add(Box::new(participant)))
                    .is_err()
                {
                    bail!("the browser legs' thread ended");
                }
            }
            Err(Refused(status)) => *failures.entry(status).or_default() += 1,
        }
    }
    let answered = sessions.len();
    let deadline = Instant::now() + CONNECT_WAIT;
    while live.connected.load(Ordering::Relaxed) < answered && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let connect_seconds = t_setup.elapsed().as_secs_f64();
    let established = live.connected.load(Ordering::Relaxed);
    let mut failure_text = failures
        .iter()
        .map(|(status, k)| format!("{k}x{status}"))
        .collect::<Vec<_>>();
    if answered > established {
        failure_text.push(format!("{}x(not connected)", answered - established));
    }
    eprintln!(
        "amt-loadgen: {established}/{n} browser-style participants connected in \
         {connect_seconds:.1} s, warming up"
    );
    if established == 0 {
        let _ = to_legs.send(BrowserCommand::Stop);
        let _ = legs.join();
        bail!(
            "no participant connected ({}); server log tail:\n{}",
            failure_text.join(" "),
            server.log_tail()
        );
    }

    std::thread::sleep(Duration::from_secs(cli.warmup));
    let a = take_mark(server)?;
    mark_legs(&to_legs);
    let tx_a = tx_counters.mark();
    std::thread::sleep(
        (a.at + Duration::from_secs(cli.duration)).saturating_duration_since(Instant::now()),
    );
    let b = take_mark(server)?;
    // Counted before the DELETEs below close any peer: the I/O thread, busy or asleep
    // until its next slot, had counted peers that those DELETEs had closed as down.
    mark_legs(&to_legs);
    let tx = tx_counters.mark().since(&tx_a);

    // Hang up as a browser does: DELETE both sessions (the listener first), while the I/O
    // thread still answers the server's DTLS close.
    let mut deletes_ok = 0;
    for s in &sessions {
        let Some(tokens) = server.tokens.get(&s.room) else {
            continue;
        };
        for (url, token) in [(&s.whep, &tokens.whep), (&s.whip, &tokens.whip)] {
            if http_client::delete(server.http, url, token).is_ok_and(|a| a.status == 200) {
                deletes_ok += 1;
            }
        }
    }
    let sessions_left = server
        .metrics()
        .ok()
        .and_then(|m| measure::prometheus_sum(&m, "amtsleitung_webrtc_sessions"));
    let _ = to_legs.send(BrowserCommand::Stop);
    let result = legs
        .join()
        .map_err(|_| anyhow::anyhow!("the browser legs' thread panicked"))?;

    let args: Vec<String> = std::env::args().collect();
    Ok(Report {
        cli_line: args.join(" "),
        mode: cli.mode,
        leg: cli.leg,
        calls: n,
        legs_established: established,
        participants: n,
        rooms: cli.rooms,
        speakers_per_room: cli.speakers_per_room,
        codec: media::codec::CodecKind::Opus,
        talk_pattern: pattern,
        audio_level: true,
        dtx: cli.dtx,
        server_args: cli.server_args.clone(),
        established,
        failed: n - established,
        failures: failure_text.join(" "),
        setup_seconds: connect_seconds,
        server: ServerFigures::between(&a, &b, established),
        pairs: None,
        rx: result.rx,
        tx,
        latency: None,
        bye_ok: deletes_ok,
        server_byes: 0,
        webrtc: Some(WebRtcFigures {
            tone: result.tone,
            down_at_window_end: result.down_at_window_end,
            peer_errors: result.peer_errors,
            control_send_errors: result.send_errors,
            deletes_ok,
            deletes_sent: 2 * sessions.len(),
            sessions_left,
        }),
        floor: None,
    })
}

/// Marks the window's start or end in the I/O thread and waits until it has (at most a
/// second: a thread that is that far behind has failed anyway).
fn mark_legs(to_legs: &mpsc::Sender<BrowserCommand>) {
    let (taken, wait) = mpsc::sync_channel(1);
    if to_legs.send(BrowserCommand::Mark(taken)).is_ok() {
        let _ = wait.recv_timeout(Duration::from_secs(1));
    }
}
