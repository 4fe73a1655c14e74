//! HTTPS on the admin HTTP server, for browsers (which give a page the microphone only in a
//! secure context), against curl as the client: the certificate chain checks out against a
//! throw-away CA, WHIP answers over it, a renewed certificate is served without a restart
//! (its own, or SIP's when it has none, renewed for both at once), and clients that connect
//! and never finish a handshake delay nobody (nor, on plain HTTP as well, those that never send
//! a request). Every HTTPS test makes its own CA and server
//! certificate (for 10.99.0.1) with the openssl command and runs the server in a network
//! namespace of its own.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{Netns, Pki, SERVER_IP, Server, TempDir, s_client, wait_until};

const HTTPS_PORT: u16 = 8443;

/// What curl, run in `ns`, printed (`-v` on stderr, then the response with its headers on
/// stdout) for `https://10.99.0.1:8443{path}`, and whether it succeeded. `ca` is the trust
/// anchor (None: the system's, which does not know the test CA).
fn curl(ns: &Netns, ca: Option<&Path>, path: &str, extra: &[&str]) -> (bool, String) {
    let mut command = ns.command("curl");
    command.args(["-sS", "-v", "-i", "--max-time", "8"]);
    if let Some(ca) = ca {
        command.arg("--cacert").arg(ca);
    }
    let out = command
        .args(extra)
        .arg(format!("https://{SERVER_IP}:{HTTPS_PORT}{path}"))
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ),
    )
}

/// The server in `ns` with `flags` added, HTTPS on 10.99.0.1:8443.
fn server_with_https(ns: &Netns, flags: &[&str], data: TempDir) -> Server {
    let listen = format!("{SERVER_IP}:{HTTPS_PORT}");
    let mut args = vec!["--https-listen", listen.as_str()];
    args.extend_from_slice(flags);
    Server::start_with_data(Some(ns), &args, data)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn health_and_whip_answer_over_https_with_the_sip_certificate() {
    let ns = Netns::new();
    let pki = Pki::new();
    let (cert, key) = pki.server_cert("amt-machine", 11);
    // Only SIP's certificate is given: HTTPS presents it too.
    let server = server_with_https(
        &ns,
        &["--tls-certificate", path(&cert), "--tls-key", path(&key)],
        TempDir::new("https-health"),
    );
    assert!(
        wait_until(Duration::from_secs(2), || server
            .log()
            .contains("admin HTTPS listening https=10.99.0.1:8443")),
        "{}",
        server.log()
    );

    let (ok, health) = curl(&ns, Some(&pki.ca()), "/health", &[]);
    assert!(ok, "{health}\n{}", server.log());
    assert!(health.contains("subject: CN=amt-machine"), "{health}");
    assert!(health.contains("SSL certificate verify ok"), "{health}");
    assert!(health.contains("HTTP/1.1 200 OK"), "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    // Plain HTTP keeps serving on its own port, so HSTS would break it (see https_listener).
    assert!(
        !health
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{health}"
    );
    // The chain is really checked: without the test CA the same request fails.
    let (ok, untrusted) = curl(&ns, None, "/health", &[]);
    assert!(!ok, "{untrusted}");
    assert!(untrusted.contains("certificate"), "{untrusted}");

    // A WHIP offer without a token reaches the WHIP handler (which needs the client's address)
    // and gets its JSON refusal.
    let (ok, whip) = curl(
        &ns,
        Some(&pki.ca()),
        "/whip/rooms/1234",
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/sdp",
            "--data-binary",
            "v=0\r\n",
        ],
    );
    assert!(ok, "{whip}\n{}", server.log());
    assert!(whip.contains("HTTP/1.1 401 Unauthorized"), "{whip}");
    assert!(whip.contains("\"error\":\"missing_token\""), "{whip}");
    assert!(
        whip.to_ascii_lowercase()
            .contains("www-authenticate: bearer realm=\"amtsleitung\""),
        "{whip}"
    );

    // The admin API has no login: it is not served to the outside over HTTPS, only on the
    // plain listener.
    for admin in ["/metrics", "/rooms", "/security/bans"] {
        let (ok, refused) = curl(&ns, Some(&pki.ca()), admin, &[]);
        assert!(ok, "{refused}");
        assert!(
            refused.contains("HTTP/1.1 404 Not Found"),
            "{admin}: {refused}"
        );
    }
    let plain = server.http_get(Some(&ns), "/health");
    assert!(plain.starts_with("HTTP/1.0 200 OK"), "{plain}");
    let plain = server.http_get(Some(&ns), "/metrics");
    assert!(plain.starts_with("HTTP/1.0 200 OK"), "{plain}");
}

/// A certificate and key under the file names the server is configured with (CN
/// `{name}-first`), and a renewed pair (CN `{name}-second`) to copy over them.
struct RenewablePair {
    cert: PathBuf,
    key: PathBuf,
    renewed: (PathBuf, PathBuf),
}

impl RenewablePair {
    fn new(pki: &Pki, name: &str, serial: u32) -> Self {
        let (first_cert, first_key) = pki.server_cert(&format!("{name}-first"), serial);
        let renewed = pki.server_cert(&format!("{name}-second"), serial + 1);
        let pair = Self {
            cert: pki.path(&format!("{name}.pem")),
            key: pki.path(&format!("{name}.key")),
            renewed,
        };
        std::fs::copy(&first_cert, &pair.cert).unwrap();
        std::fs::copy(&first_key, &pair.key).unwrap();
        pair
    }

    /// Copies the renewed pair over the files in place, as an admin (or certbot's deploy
    /// hook) does: the certificate first, then its key.
    fn renew(&self) {
        std::fs::copy(&self.renewed.0, &self.cert).unwrap();
        std::fs::copy(&self.renewed.1, &self.key).unwrap();
    }
}

/// Whether HTTPS comes to present the certificate named `cn` (checked against `ca`) within a
/// few seconds, with what curl said last.
fn https_comes_to_present(ns: &Netns, ca: &Path, cn: &str) -> (bool, String) {
    let mut said = String::new();
    let presented = wait_until(Duration::from_secs(6), || {
        let (ok, text) = curl(ns, Some(ca), "/health", &[]);
        said = text;
        ok && said.contains(&format!("subject: CN={cn}"))
    });
    (presented, said)
}

#[test]
fn a_replaced_https_certificate_is_served_without_a_restart() {
    let ns = Netns::new();
    let pki = Pki::new();
    let pair = RenewablePair::new(&pki, "amt-web", 21);
    let mut server = server_with_https(
        &ns,
        &[
            "--https-certificate",
            path(&pair.cert),
            "--https-key",
            path(&pair.key),
        ],
        TempDir::new("https-reload"),
    );
    let (ok, before) = curl(&ns, Some(&pki.ca()), "/health", &[]);
    assert!(ok, "{before}\n{}", server.log());
    assert!(before.contains("subject: CN=amt-web-first"), "{before}");

    pair.renew();
    let (renewed, after) = https_comes_to_present(&ns, &pki.ca(), "amt-web-second");
    assert!(
        renewed,
        "the new certificate was not served\n{after}\n{}",
        server.log()
    );
    assert!(after.contains("HTTP/1.1 200 OK"), "{after}");
    assert!(
        server.log().contains("TLS certificate reloaded"),
        "{}",
        server.log()
    );
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_tls_certificate_reloads_total"),
        1
    );
    assert!(server.alive());
}

#[test]
fn https_on_the_sip_certificate_is_renewed_with_it_in_one_reload() {
    let ns = Netns::new();
    let pki = Pki::new();
    let pair = RenewablePair::new(&pki, "amt-both", 41);
    let server = server_with_https(
        &ns,
        &[
            "--tls-certificate",
            path(&pair.cert),
            "--tls-key",
            path(&pair.key),
        ],
        TempDir::new("https-shared"),
    );
    let (ok, before) = curl(&ns, Some(&pki.ca()), "/health", &[]);
    assert!(
        ok && before.contains("subject: CN=amt-both-first"),
        "{before}"
    );

    pair.renew();
    let (renewed, after) = https_comes_to_present(&ns, &pki.ca(), "amt-both-second");
    assert!(
        renewed,
        "HTTPS kept the old certificate\n{after}\n{}",
        server.log()
    );
    // SIP over TLS serves the same renewed certificate, and it was loaded once for both:
    // one certificate in memory, not two copies reloading on their own.
    let sip = s_client(&ns, 5061, &pki.ca());
    assert!(sip.contains("CN = amt-both-second"), "{sip}");
    assert!(sip.contains("Verify return code: 0 (ok)"), "{sip}");
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_tls_certificate_reloads_total"),
        1,
        "{}",
        server.log()
    );
}

/// A client in `ns` that connects to the HTTPS port and then sends `first_bytes` (bash
/// printf escapes) and nothing more; it prints `connected`, and, once the server closes the
/// connection, how many seconds that took.
fn stalled_client(ns: &Netns, first_bytes: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let script = format!(
        "trap '' PIPE; exec 3<>/dev/tcp/{SERVER_IP}/{HTTPS_PORT} || exit 1; \
         printf '{first_bytes}' >&3; echo connected; start=$(date +%s); \
         timeout 40 cat <&3 >/dev/null 2>&1; echo \"closed after $(( $(date +%s) - start )) s\""
    );
    let mut child = ns
        .command("bash")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a stalled client");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "connected", "the client did not connect");
    (child, stdout)
}

#[test]
fn clients_that_never_finish_a_handshake_delay_nobody_and_are_cut_off() {
    let ns = Netns::new();
    let pki = Pki::new();
    let (cert, key) = pki.server_cert(SERVER_IP, 31);
    let server = server_with_https(
        &ns,
        &[
            "--https-certificate",
            path(&cert),
            "--https-key",
            path(&key),
        ],
        TempDir::new("https-stall"),
    );
    // Silent ones, and ones that announce a 512-byte handshake record and stop after its
    // header (a client stalled halfway).
    let mut stalled: Vec<_> = (0..4)
        .map(|_| stalled_client(&ns, ""))
        .chain((0..4).map(|_| stalled_client(&ns, "\\x16\\x03\\x01\\x02\\x00")))
        .collect();
    let connected_at = Instant::now();

    let started = Instant::now();
    let (ok, health) = curl(&ns, Some(&pki.ca()), "/health", &[]);
    assert!(ok && health.contains("HTTP/1.1 200 OK"), "{health}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served only after {:?}",
        started.elapsed()
    );
    for (child, _) in &mut stalled {
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "a stalled client was cut off before the others were served"
        );
    }

    // The server gives each at most its handshake time (10 s), then closes the connection.
    for (child, stdout) in &mut stalled {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        child.wait().unwrap();
        assert!(line.starts_with("closed after "), "{line:?}");
    }
    let all_closed = connected_at.elapsed();
    assert!(
        all_closed >= Duration::from_secs(9) && all_closed < Duration::from_secs(20),
        "the stalled connections were closed after {all_closed:?}\n{}",
        server.log()
    );
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_https_handshake_failures_total"),
        8
    );
    assert!(server.log().contains("HTTPS handshake timed out"));
}

/// Plain HTTP has the same guard against clients that hold connections without sending a
/// request: silent, stuck halfway through the headers, or idle after a request. Each is
/// closed after the ten seconds a client has for a request's headers, and a client that
/// does send its request is served meanwhile.
#[test]
fn connections_that_send_no_request_are_closed_after_ten_seconds() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let server = Server::start(None, &[]);
    let started = Instant::now();
    let open = |first: &str| {
        let mut stream = TcpStream::connect(server.http).unwrap();
        stream.write_all(first.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    };
    let holders = [
        ("silent", open("")),
        (
            "half a request",
            open("GET /health HTTP/1.1\r\nHost: x\r\n"),
        ),
        (
            "idle after a request",
            open("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
        ),
    ];
    let served = server.http_get(None, "/health");
    assert!(served.starts_with("HTTP/1.0 200 OK"), "{served}");
    assert!(started.elapsed() < Duration::from_secs(5), "served at once");
    for (what, mut stream) in holders {
        let mut answer = Vec::new();
        let closed = stream.read_to_end(&mut answer);
        let after = started.elapsed();
        assert!(closed.is_ok(), "{what}: not closed within 30 s");
        assert!(
            (Duration::from_secs(9)..Duration::from_secs(15)).contains(&after),
            "{what}: closed after {after:?}"
        );
    }
}

#[test]
fn the_console_over_https_marks_its_session_cookie_secure() {
    let ns = Netns::new();
    let pki = Pki::new();
    let (cert, key) = pki.server_cert("amt-console", 12);
    let server = server_with_https(
        &ns,
        &["--tls-certificate", path(&cert), "--tls-key", path(&key)],
        TempDir::new("https-console"),
    );
    let (code, out, err) = support::run_with_stdin(
        {
            let mut command = support::amtsleitung();
            command
                .args(["account", "add", "anna", "--role", "staff", "--data-dir"])
                .arg(server.data_dir());
            command
        },
        "anna-secret-1\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        wait_until(Duration::from_secs(2), || server
            .log()
            .contains("admin HTTPS listening")),
        "{}",
        server.log()
    );
    let (ok, answer) = curl(
        &ns,
        Some(&pki.ca()),
        "/console/sign-in",
        &["--data", "name=anna&password=anna-secret-1"],
    );
    assert!(ok, "{answer}\n{}", server.log());
    let cookie = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {answer}"));
    for flag in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
}
