//! WHIP ingest and WHEP egress with real clients: aiortc publishers and subscribers
//! (tests/webrtc/client.py, in a venv made on first use) and a baresip phone share room 1234.
//! What each one hears is proven from its recording; the session count in `/metrics` is read
//! back after DELETE and after a publisher that just disappears. Bad requests get the JSON
//! errors, and no session is left behind.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    Baresip, Netns, ReportingChild, Server, TempDir, aiortc_python, create_room, read_wav,
    rename_table, repo, share_between, tone_share, wait_until,
};

const WHIP_SESSIONS: &str = "amtsleitung_webrtc_sessions{kind=\"whip\"}";
const WHEP_SESSIONS: &str = "amtsleitung_webrtc_sessions{kind=\"whep\"}";

/// `amtsleitung room token ROOM --whip|--whep`: the token it prints.
fn room_token(data: &Path, room: &str, kind: &str) -> String {
    let token = support::admin_ok(data, &["room", "token", room, kind])
        .trim()
        .to_owned();
    assert_eq!(token.len(), 64, "{token:?}");
    token
}

/// A data directory with room 1234 stored and a WHIP and a WHEP token for it.
fn room_with_tokens() -> (TempDir, String, String) {
    let data = TempDir::new("data");
    create_room(data.path(), &["1234"]);
    let whip = room_token(data.path(), "1234", "--whip");
    let whep = room_token(data.path(), "1234", "--whep");
    (data, whip, whep)
}

/// A config file that ends a session 1 s after its client became unreachable (instead of
/// 30 s), so that the test of a vanished client does not wait half a minute for nothing.
fn quick_timeout_config(dir: &TempDir) -> String {
    let path = dir.path().join("webrtc.toml");
    std::fs::write(&path, "[webrtc]\ndisconnected-timeout = 1\n").unwrap();
    path.display().to_string()
}

/// One aiortc client run in the namespace; its JSON report lines are collected as they come.
struct Client(ReportingChild);

impl Client {
    fn start(ns: &Netns, args: &[&str]) -> Self {
        let mut command = ns.command(aiortc_python().to_str().unwrap());
        command
            .arg(repo().join("tests/webrtc/client.py"))
            .args(["--server", "http://127.0.0.1:8080", "--room", "1234"])
            .args(args);
        Self(ReportingChild::spawn(command, "aiortc"))
    }

    /// Waits for the client to finish; its report lines.
    fn finish(self) -> Vec<String> {
        let (status, lines) = self.0.finish();
        assert!(status.success(), "aiortc client failed: {lines:#?}");
        lines
    }

    fn saw(&self, text: &str) -> bool {
        self.0.lines().iter().any(|l| l.contains(text))
    }
}

/// Seconds since the Unix epoch, the clock the client reports its recording's start on.
fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// When the client's recording started (Unix seconds), from its report.
fn recording_start(lines: &[String]) -> f64 {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["step"] == "recording")
        .and_then(|v| v["at"].as_f64())
        .unwrap_or_else(|| panic!("the client recorded nothing: {lines:#?}"))
}

/// Whether the report has a `step` with `status`.
fn has_status(lines: &[String], step: &str, status: u16) -> bool {
    let wanted = format!("\"step\": \"{step}\", \"status\": {status}");
    lines.iter().any(|l| l.contains(&wanted))
}

#[test]
fn publisher_subscriber_and_phone_hear_each_other_and_nobody_hears_itself() {
    let ns = Netns::new();
    let (data, whip, whep) = room_with_tokens();
    let server = Server::start_with_data(Some(&ns), &[], data);
    let dir = TempDir::new("whip-audio");
    let tied = dir.path().join("tied.wav");
    let listener = dir.path().join("listener.wav");

    // Client A publishes 700 Hz and listens on a WHEP session tied to its WHIP session;
    // client B only listens.
    let a = Client::start(
        &ns,
        &[
            "--publish-token",
            &whip,
            "--tone",
            "700",
            "--subscribe-token",
            &whep,
            "--record",
            tied.to_str().unwrap(),
            "--seconds",
            "17",
        ],
    );
    let b = Client::start(
        &ns,
        &[
            "--subscribe-token",
            &whep,
            "--record",
            listener.to_str().unwrap(),
            "--seconds",
            "17",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(15), || a
            .saw("\"whep-state\", \"state\": \"connected\"")
            && a.saw("\"whip-state\", \"state\": \"connected\"")
            && b.saw("\"whep-state\", \"state\": \"connected\"")),
        "clients did not connect\n{}",
        server.log()
    );
    assert_eq!(server.metric(Some(&ns), WHIP_SESSIONS), 1);
    assert_eq!(server.metric(Some(&ns), WHEP_SESSIONS), 2);
    let rooms = server.http_get(Some(&ns), "/rooms");
    assert!(
        rooms.contains("\"participants\":2"),
        "A (one participant for two sessions) and B: {rooms}"
    );

    // The phone joins for 10 s while both clients are in.
    let phone = Baresip::new("10.99.0.4", 440, "PCMU", 8000);
    let phone_joined = unix_time();
    let phone_log = phone.call(&ns, "sip:81234@10.99.0.1:5060", 10);
    let a_lines = a.finish();
    let b_lines = b.finish();
    let log = server.log();
    let a_steps: &[&str] = &["whip", "whep", "delete-whip", "delete-whep"];
    let b_steps: &[&str] = &["whep", "delete-whep"];
    for (lines, steps) in [(&a_lines, a_steps), (&b_lines, b_steps)] {
        for &step in steps {
            let status = if step.starts_with("delete") { 200 } else { 201 };
            assert!(
                has_status(lines, step, status),
                "{step} not {status}: {lines:#?}\n{log}"
            );
        }
    }

    // The phone hears the publisher.
    let heard = phone
        .heard()
        .unwrap_or_else(|| panic!("the phone recorded nothing\n{phone_log}\n{log}"));
    let (samples, rate) = read_wav(&heard);
    let phone_700 = tone_share(&samples, rate, 700.0, 2.0);
    let phone_440 = tone_share(&samples, rate, 440.0, 2.0);
    // The phone was in from `phone_joined` on for 10 s; measure well inside that time, in
    // each recording's own time.
    let window = |lines: &[String]| {
        let start = recording_start(lines);
        (phone_joined - start + 2.0, phone_joined - start + 8.0)
    };
    let (from, to) = window(&b_lines);
    let listener_440 = share_between(&listener, 440.0, from, to);
    let listener_700 = share_between(&listener, 700.0, from, to);
    let (from, to) = window(&a_lines);
    let tied_440 = share_between(&tied, 440.0, from, to);
    let tied_700 = share_between(&tied, 700.0, from, to);
    eprintln!(
        "phone hears 700: {phone_700:.2}, 440: {phone_440:.2}; listener 440: {listener_440:.2}, \
         700: {listener_700:.2}; publisher's own WHEP 440: {tied_440:.2}, 700: {tied_700:.2}"
    );
    assert!(
        phone_700 > 0.3,
        "the phone hears the publisher only at {phone_700:.2}\n{log}"
    );
    assert!(phone_440 < 0.05, "the phone hears itself at {phone_440:.2}");
    assert!(
        listener_440 > 0.15,
        "the listener hears the phone only at {listener_440:.2}\n{log}"
    );
    assert!(
        listener_700 > 0.15,
        "the listener hears the publisher only at {listener_700:.2}\n{log}"
    );
    assert!(
        tied_440 > 0.3,
        "the publisher hears the phone only at {tied_440:.2}\n{log}"
    );
    assert!(
        tied_700 < 0.05,
        "the publisher hears itself at {tied_700:.2}\n{log}"
    );

    // Both clients DELETEd their sessions: none is left, and neither is the room.
    assert!(
        wait_until(Duration::from_secs(5), || server
            .metric(Some(&ns), WHIP_SESSIONS)
            == 0
            && server.metric(Some(&ns), WHEP_SESSIONS) == 0),
        "sessions left after DELETE:\n{}",
        server.metrics(Some(&ns))
    );
    assert_room_closed(&server, &ns);
}

#[test]
fn a_publisher_that_disappears_is_removed_after_the_timeout() {
    let ns = Netns::new();
    let (data, whip, _) = room_with_tokens();
    let config = TempDir::new("whip-config");
    let server = Server::start_with_data(
        Some(&ns),
        &["--config", &quick_timeout_config(&config)],
        data,
    );
    let mut publisher = Client::start(
        &ns,
        &[
            "--publish-token",
            &whip,
            "--tone",
            "700",
            "--seconds",
            "600",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(15), || publisher
            .saw("\"whip-state\", \"state\": \"connected\"")),
        "publisher did not connect\n{}",
        server.log()
    );
    assert_eq!(server.metric(Some(&ns), WHIP_SESSIONS), 1);
    // Gone without DELETE and without closing DTLS: the process dies.
    publisher.0.kill();
    let gone_at = Instant::now();
    // str0m reports the leg disconnected 15 s after the last consent check (ICE-lite), and
    // the configured 1 s follows.
    assert!(
        wait_until(Duration::from_secs(40), || server
            .metric(Some(&ns), WHIP_SESSIONS)
            == 0),
        "the vanished publisher's session was kept:\n{}\n{}",
        server.metrics(Some(&ns)),
        server.log()
    );
    eprintln!(
        "session removed {:?} after the publisher vanished",
        gone_at.elapsed()
    );
    assert!(
        gone_at.elapsed() >= Duration::from_secs(10),
        "removed too early: the client only died"
    );
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_webrtc_sessions_unreachable_total"),
        1
    );
    assert_room_closed(&server, &ns);
}

/// Waits for the room to be closed: its last participant has left.
fn assert_room_closed(server: &Server, ns: &Netns) {
    assert!(
        wait_until(Duration::from_secs(5), || server
            .http_get(Some(ns), "/rooms")
            .ends_with("[]")),
        "the room stayed open: {}",
        server.http_get(Some(ns), "/rooms")
    );
}

/// A browser's offer (Chromium's form, trimmed): audio only, Opus, sendonly, BUNDLE.
const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Xk4b\r\n\
a=ice-pwd:r2mD9Bw1eYf0Q3iTjN8uL7pA\r\n\
a=fingerprint:sha-256 0B:3D:5E:1A:9C:77:42:E8:60:2F:4B:D1:93:AA:08:6C:31:F5:C2:7E:DD:14:8B:59:A6:0E:72:C9:3F:B4:15:E7\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=ssrc:3735928559 cname:test\r\n";

/// One HTTP/1.1 exchange with the server: status, headers (lower-case names) and body.
fn request(
    server: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(server).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(text.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The JSON error code of an answer, checking its shape.
fn error_code(status: u16, headers: &[(String, String)], body: &str) -> String {
    assert_eq!(
        header(headers, "content-type"),
        Some("application/json"),
        "{status} {body}"
    );
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"));
    assert!(
        json["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "no reason: {body}"
    );
    json["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn bad_requests_get_json_errors_and_leave_no_session() {
    let data = TempDir::new("data");
    create_room(data.path(), &["1234"]);
    create_room(data.path(), &["5555", "--max-participants", "1"]);
    let whip = room_token(data.path(), "1234", "--whip");
    let full = room_token(data.path(), "5555", "--whip");
    // 4242 has a token but is neither stored nor open.
    let nowhere = room_token(data.path(), "4242", "--whip");
    let config = TempDir::new("whip-config");
    let config_file = config.path().join("ice.toml");
    std::fs::write(
        &config_file,
        "[[webrtc.ice-servers]]\nurls = [\"stun:stun.example.org\"]\n\
         [[webrtc.ice-servers]]\nurls = [\"turns:turn.example.org:443?transport=tcp\"]\n\
         shared-secret = \"north\"\n",
    )
    .unwrap();
    let server = Server::start_with_data(None, &["--config", config_file.to_str().unwrap()], data);
    let http = server.http;
    let post = |path: &str, token: Option<&str>, content_type: &str, body: &str| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", content_type)];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        request(http, "POST", path, &headers, body)
    };
    let sdp = "application/sdp";

    let (status, headers, body) = post("/whip/rooms/1234", None, sdp, OFFER);
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (401, "missing_token")
    );
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some("Bearer realm=\"amtsleitung\"")
    );
    let (status, headers, body) = post("/whip/rooms/1234", Some(&full), sdp, OFFER);
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (401, "wrong_token"),
        "another room's token"
    );
    let (status, headers, body) = post("/whep/rooms/1234", Some(&whip), sdp, OFFER);
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (401, "wrong_token"),
        "a WHIP token for WHEP"
    );
    let (status, headers, body) = post("/whip/rooms/4242", Some(&nowhere), sdp, OFFER);
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (404, "unknown_room")
    );
    for bad in [
        "v=0\r\nthis is not SDP\r\n",
        "",
        &OFFER.replace("opus/48000/2", "speex/16000"),
    ] {
        let (status, headers, body) = post("/whip/rooms/1234", Some(&whip), sdp, bad);
        assert_eq!(
            (status, error_code(status, &headers, &body).as_str()),
            (400, "bad_sdp"),
            "{bad:?}: {body}"
        );
        assert!(
            !body.contains("0x"),
            "no addresses of the server's memory: {body}"
        );
    }
    let (status, headers, body) = post("/whip/rooms/1234", Some(&whip), "text/plain", OFFER);
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (415, "unsupported_media_type")
    );
    let (status, headers, body) = post(
        "/whep/rooms/1234?publisher=00ff",
        Some(&room_token(server.data_dir(), "1234", "--whep")),
        sdp,
        &OFFER.replace("a=sendonly", "a=recvonly"),
    );
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (400, "bad_publisher")
    );

    // Room 5555 takes one participant: the first publisher gets in, the second does not.
    let (status, headers, answer) = post("/whip/rooms/5555", Some(&full), sdp, OFFER);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(header(&headers, "content-type"), Some("application/sdp"));
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert!(
        answer.contains("a=ice-lite") && answer.contains("opus/48000/2"),
        "{answer}"
    );
    assert!(
        answer.contains("a=candidate:"),
        "the answer carries the server's candidate: {answer}"
    );
    let location = header(&headers, "location").expect("Location").to_owned();
    assert!(location.starts_with("/whip/sessions/"), "{location}");
    // The configured relays, for clients the server's own address does not reach
    // (RFC 9725 §4.6); TURN credentials made from the secret shared with the relay.
    let links: Vec<&str> = headers
        .iter()
        .filter(|(name, _)| name == "link")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(links.len(), 2, "{headers:?}");
    assert_eq!(links[0], "<stun:stun.example.org>; rel=\"ice-server\"");
    assert!(
        links[1].starts_with(
            "<turns:turn.example.org:443?transport=tcp>; rel=\"ice-server\"; username=\""
        ) && links[1].contains(":amtsleitung\"; credential=\"")
            && links[1].ends_with("credential-type=\"password\""),
        "{}",
        links[1]
    );
    assert!(
        header(&headers, "access-control-expose-headers").is_some_and(|h| h.contains("Link")),
        "a meeting's page may read the Link headers: {headers:?}"
    );
    let (status, headers, body) = post("/whip/rooms/5555", Some(&full), sdp, OFFER);
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (409, "room_full")
    );
    assert_eq!(server.metric(None, WHIP_SESSIONS), 1);

    // CORS preflight on the endpoint and on the session.
    let (status, headers, _) = request(
        http,
        "OPTIONS",
        "/whip/rooms/1234",
        &[
            ("Origin", "https://meeting.example"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert!(header(&headers, "access-control-allow-methods").is_some_and(|m| m.contains("POST")));
    let allowed = header(&headers, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert_eq!(header(&headers, "accept-post"), Some("application/sdp"));
    let (status, headers, _) = request(
        http,
        "OPTIONS",
        &location,
        &[("Origin", "https://meeting.example")],
        "",
    );
    assert_eq!(status, 200);
    assert!(header(&headers, "access-control-allow-methods").is_some_and(|m| m.contains("DELETE")));
    // Methods WHIP reserves, and PATCH (no trickle ICE, no ICE restart here).
    assert_eq!(request(http, "GET", "/whip/rooms/1234", &[], "").0, 405);
    assert_eq!(request(http, "PATCH", &location, &[], "").0, 405);

    // Ending it takes the token it was opened with.
    let delete = |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        request(http, "DELETE", path, &headers, "")
    };
    let (status, headers, body) = delete(&location, None);
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (401, "missing_token")
    );
    let (status, headers, body) = delete(&location, Some(&whip));
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (401, "wrong_token")
    );
    let (status, headers, body) = delete(
        "/whip/sessions/0123456789abcdef0123456789abcdef",
        Some(&full),
    );
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (404, "unknown_session")
    );
    assert_eq!(delete(&location, Some(&full)).0, 200);
    assert_eq!(delete(&location, Some(&full)).0, 404, "ended once");
    assert_eq!(server.metric(None, WHIP_SESSIONS), 0);

    // Fail closed: a token that cannot be checked opens nothing.
    rename_table(&server, "room_token", "room_token_away");
    let (status, headers, body) = post("/whip/rooms/5555", Some(&full), sdp, OFFER);
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (503, "store_unavailable")
    );
    rename_table(&server, "room_token_away", "room_token");

    // The room took its one participant again.
    let (status, _, answer) = post("/whip/rooms/5555", Some(&full), sdp, OFFER);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(server.metric(None, WHIP_SESSIONS), 1);

    // The token leaked and an admin revokes it: whoever uses it is cut off, not only
    // refused next time.
    support::admin_ok(
        server.data_dir(),
        &["room", "token", "5555", "--whip", "--revoke"],
    );
    assert!(
        wait_until(Duration::from_secs(5), || server
            .metric(None, WHIP_SESSIONS)
            == 0),
        "the revoked token's session was kept:\n{}",
        server.log()
    );
    let (status, headers, body) = post("/whip/rooms/5555", Some(&full), sdp, OFFER);
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (401, "wrong_token")
    );
    let full = room_token(server.data_dir(), "5555", "--whip");
    let (status, _, answer) = post("/whip/rooms/5555", Some(&full), sdp, OFFER);
    assert_eq!(status, 201, "the room's new token: {answer}");
    assert_eq!(server.metric(None, WHIP_SESSIONS), 1);

    // An admin deletes the room in use: its session ends like a caller's call, and with
    // the room its tokens are gone.
    let out = support::amtsleitung()
        .current_dir(repo())
        .args(["room", "delete", "5555", "--end-calls", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(10), || server
            .metric(None, WHIP_SESSIONS)
            == 0),
        "the deleted room's session was kept:\n{}",
        server.log()
    );
    let (status, headers, body) = post("/whip/rooms/5555", Some(&full), sdp, OFFER);
    assert_eq!(
        (status, error_code(status, &headers, &body).as_str()),
        (401, "wrong_token")
    );
    let mut server = server;
    assert!(server.alive(), "the server survived it all");
}
