//! Shared helpers for the end-to-end tests: network namespaces, the server process, SIPp,
//! baresip, and audio analysis of what clients recorded.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod browser;
pub mod carrier;
pub mod console;
pub mod kamailio;
pub mod postgres;
pub mod slapd;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The server binary cargo built for this test run.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amtsleitung"))
}

/// An empty config file: given as `$AMT_CONFIG`, the binary runs on its defaults (paths
/// relative to its working directory) even on a machine where the Debian package installed
/// /etc/amtsleitung/amtsleitung.toml, which it would otherwise read.
pub fn empty_config() -> &'static Path {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("amt-empty-config-{}.toml", std::process::id()));
        std::fs::write(&path, "# the built-in defaults\n").unwrap();
        path
    })
}

/// The binary as the tests run it: on its defaults plus the flags given (see
/// [`empty_config`]).
pub fn amtsleitung() -> Command {
    let mut command = Command::new(binary());
    command.env("AMT_CONFIG", empty_config());
    command
}

/// Runs `command` to its end with `stdin` written to its standard input (a password, as an
/// admin pipes it in); exit code (-1 for a signal), stdout, stderr.
pub fn run_with_stdin(mut command: Command, stdin: &str) -> (i32, String, String) {
    let out = output_with_stdin(&mut command, stdin);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Installs Debian packages that are missing (as root, like the rest of the suite).
pub fn apt_install(packages: &[&str]) {
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if install() {
        return;
    }
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    assert!(install(), "apt-get install {packages:?} failed");
}

/// Runs `command` with `stdin` typed into it (and stdout, stderr captured).
pub fn output_with_stdin(command: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that exits without reading it all closes the pipe: that is its business.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// A fresh scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "amt-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("AMT_KEEP_TEMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A private network namespace with a veth pair: the server on 10.99.0.1 (v0), clients on
/// 10.99.0.2.. (v1). All test traffic stays inside it.
pub struct Netns {
    pub name: String,
}

pub const SERVER_IP: &str = "10.99.0.1";

impl Netns {
    pub fn new() -> Self {
        let name = Self::fresh_name();
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run_ok("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns.exec_ok(&[
            "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        ns.exec_ok(&["ip", "addr", "add", "10.99.0.1/24", "dev", "v0"]);
        for client in 2..=6 {
            ns.exec_ok(&[
                "ip",
                "addr",
                "add",
                &format!("10.99.0.{client}/24"),
                "dev",
                "v1",
            ]);
        }
        ns.exec_ok(&["ip", "link", "set", "v0", "up"]);
        ns.exec_ok(&["ip", "link", "set", "v1", "up"]);
        ns
    }

    fn fresh_name() -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        format!(
            "amt{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A namespace of its own for one machine at `ip` on this namespace's network (a node
    /// of a pool): a veth pair with `ip` on its far end, routed as a host route here, so
    /// that it reaches and is reached by every address of this namespace and nothing else.
    pub fn host_on(&self, ip: &str) -> Netns {
        let name = Self::fresh_name();
        run_ok("ip", &["netns", "add", &name]);
        let host = Netns { name };
        host.exec_ok(&["ip", "link", "set", "lo", "up"]);
        // Interface names are per namespace; the last octet keeps them apart here.
        let octet = ip.rsplit('.').next().unwrap_or("0");
        let (near, far) = (format!("h{octet}"), format!("h{octet}peer"));
        self.exec_ok(&[
            "ip", "link", "add", &near, "type", "veth", "peer", "name", &far, "netns", &host.name,
        ]);
        self.exec_ok(&["ip", "link", "set", &near, "up"]);
        self.exec_ok(&["ip", "route", "add", &format!("{ip}/32"), "dev", &near]);
        // Two such hosts talk to each other through here (a pool's nodes relay a call's
        // audio between them): forward, and answer their ARP for each other.
        self.exec_ok(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        self.exec_ok(&[
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv4.conf.{near}.proxy_arp=1"),
        ]);
        host.exec_ok(&["ip", "addr", "add", &format!("{ip}/32"), "dev", &far]);
        host.exec_ok(&["ip", "link", "set", &far, "up"]);
        host.exec_ok(&["ip", "route", "add", "10.99.0.0/24", "dev", &far]);
        host
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Makes programs started in the namespace ask `ip` for names: `ip netns exec` mounts
    /// /etc/netns/NAME/resolv.conf over /etc/resolv.conf (removed with the namespace).
    pub fn use_nameserver(&self, ip: &str) {
        let dir = Path::new("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), format!("nameserver {ip}\n")).unwrap();
    }

    /// Gives the clients' side (v1) one more address, for tests with more than five clients.
    pub fn add_client_address(&self, ip: &str) {
        self.exec_ok(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "v1"]);
    }

    pub fn exec_ok(&self, args: &[&str]) {
        let status = self
            .command(args[0])
            .args(&args[1..])
            .status()
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
        assert!(status.success(), "{args:?} failed in netns {}", self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.name));
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run_ok(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (tests need root and iproute2)"));
    assert!(
        status.success(),
        "{program} {args:?} failed (tests need root)"
    );
}

/// Counts UDP packets arriving at `port` in the namespace, with an nftables counter, so the
/// test sees the server's media on the wire rather than trusting its logs.
pub struct PacketCounter<'a> {
    ns: &'a Netns,
    port: u16,
}

impl<'a> PacketCounter<'a> {
    pub fn new(ns: &'a Netns, port: u16) -> Self {
        Self::matching(ns, port, &format!("ip saddr {SERVER_IP} "))
    }

    /// Counts every UDP packet to `port`, whatever its source address: a server listening
    /// on 0.0.0.0 in the namespace answers a client address of the same namespace from that
    /// address itself (the kernel's source choice for a local destination).
    pub fn any_source(ns: &'a Netns, port: u16) -> Self {
        Self::matching(ns, port, "")
    }

    /// Counts every UDP packet to a port in `low..=high` (a client's RTP port range).
    pub fn to_ports(ns: &'a Netns, low: u16, high: u16) -> Self {
        Self::counting(ns, low, &format!("udp dport {low}-{high}"))
    }

    fn matching(ns: &'a Netns, port: u16, source: &str) -> Self {
        Self::counting(ns, port, &format!("{source}udp dport {port}"))
    }

    /// A counter named after `port`, of the packets `matches` selects.
    fn counting(ns: &'a Netns, port: u16, matches: &str) -> Self {
        let table = format!("amtcount{port}");
        let chain =
            format!("add chain inet {table} input {{ type filter hook input priority 0 ; }}");
        let rule = format!("add rule inet {table} input {matches} counter");
        ns.exec_ok(&["nft", &format!("add table inet {table}")]);
        ns.exec_ok(&["nft", &chain]);
        ns.exec_ok(&["nft", &rule]);
        Self { ns, port }
    }

    pub fn packets(&self) -> u64 {
        let out = self
            .ns
            .command("nft")
            .args(["list", "table", "inet", &format!("amtcount{}", self.port)])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// Where a server listens, when the test chooses.
struct Listen {
    sip: String,
    http: String,
    rtp: String,
}

/// A running amtsleitung process; killed on drop. Its log is kept for failure messages.
pub struct Server {
    child: Child,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub log: Arc<Mutex<String>>,
    _data: TempDir,
}

impl Server {
    /// Starts the server in `ns` (or on loopback when `ns` is None) with the shipped
    /// dialplans and sounds plus `extra` flags, and waits until it is ready.
    pub fn start(ns: Option<&Netns>, extra: &[&str]) -> Self {
        Self::start_with_data(ns, extra, TempDir::new("data"))
    }

    /// Like `start`, with a data directory prepared by the test (rooms created by the CLI).
    pub fn start_with_data(ns: Option<&Netns>, extra: &[&str], data: TempDir) -> Self {
        Self::start_from(ns, extra, data, false)
    }

    /// Like `start_with_data`, started in the data directory's parent with the data directory
    /// given relative to it (and so the built-in prompts and plan), as an admin might.
    pub fn start_with_relative_data(ns: Option<&Netns>, extra: &[&str], data: TempDir) -> Self {
        Self::start_from(ns, extra, data, true)
    }

    /// A node of a pool in `ns`: SIP (UDP and TCP) on `sip_ip`:5060, the admin HTTP on
    /// `http` and RTP from `rtp` ("LO-HI"), so that several run side by side.
    pub fn start_node(
        ns: &Netns,
        sip_ip: &str,
        http: &str,
        rtp: &str,
        extra: &[&str],
        data: TempDir,
    ) -> Self {
        let at = Listen {
            sip: format!("{sip_ip}:5060"),
            http: http.to_string(),
            rtp: rtp.to_string(),
        };
        Self::spawn(Some(ns), extra, data, false, Some(at))
            .unwrap_or_else(|(_, log)| panic!("node {sip_ip} did not become ready:\n{log}"))
    }

    fn start_from(ns: Option<&Netns>, extra: &[&str], data: TempDir, relative: bool) -> Self {
        // On loopback the ports are picked free but only taken when the server binds them,
        // so another test process may take one in between: try again on fresh ports then.
        let mut data = data;
        for _ in 0..5 {
            match Self::spawn(ns, extra, data, relative, None) {
                Ok(server) => return server,
                Err((returned, log)) if ns.is_none() && log.contains("Address already in use") => {
                    data = returned;
                }
                Err((_, log)) => panic!("server did not become ready:\n{log}"),
            }
        }
        panic!("server found no free ports in five tries");
    }

    /// Starts the server once and waits until it is ready; on failure, the data directory
    /// back and the server's log.
    fn spawn(
        ns: Option<&Netns>,
        extra: &[&str],
        data: TempDir,
        relative: bool,
        at: Option<Listen>,
    ) -> Result<Self, (TempDir, String)> {
        // A test may put the HTTP server elsewhere (the join page's browser must reach it
        // on the namespace's network, not on loopback).
        let http_given = extra
            .iter()
            .position(|a| *a == "--http-listen")
            .and_then(|i| extra.get(i + 1));
        let (sip, http, rtp) = match (ns, at) {
            (_, Some(at)) => (at.sip, at.http, at.rtp),
            (Some(_), None) => (
                format!("{SERVER_IP}:5060"),
                http_given.map_or("127.0.0.1:8080", |h| h).to_string(),
                "20000-20999".to_string(),
            ),
            (None, None) => {
                let sip = free_port_pair();
                let http = free_tcp_port();
                let rtp_low = 30000 + (std::process::id() % 200) as u16 * 100;
                (
                    format!("127.0.0.1:{sip}"),
                    format!("127.0.0.1:{http}"),
                    format!("{rtp_low}-{}", rtp_low + 99),
                )
            }
        };
        let bin = binary();
        let mut cmd = match ns {
            Some(ns) => ns.command(bin.to_str().unwrap()),
            None => Command::new(&bin),
        };
        let (cwd, data_arg) = match (relative, data.path().parent(), data.path().file_name()) {
            (true, Some(parent), Some(name)) => (parent.to_path_buf(), PathBuf::from(name)),
            _ => (repo(), data.path().to_path_buf()),
        };
        cmd.current_dir(cwd)
            .env("AMT_CONFIG", empty_config())
            .args(["serve", "--sip-listen", &sip, "--rtp-ports", &rtp])
            .args(match http_given {
                Some(_) => vec![],
                None => vec!["--http-listen", &http],
            })
            .arg("--data-dir")
            .arg(&data_arg)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("AMT_SERVER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start amtsleitung");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("amtsleitung is ready") {
                    let _ = ready_tx.send(());
                }
                if std::env::var_os("AMT_TEST_LOG").is_some() {
                    eprintln!("[server] {line}");
                }
                let mut log = log_writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let ready = ready_rx.recv_timeout(Duration::from_secs(20));
        let mut server = Self {
            child,
            sip: sip.parse().unwrap(),
            http: http.parse().unwrap(),
            log,
            _data: data,
        };
        if ready.is_ok() {
            return Ok(server);
        }
        let _ = server.child.kill();
        let _ = server.child.wait();
        let log = server.log();
        let data = std::mem::replace(&mut server._data, TempDir(PathBuf::new()));
        Err((data, log))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The `/metrics` page; fetched from inside `ns` (with bash's /dev/tcp) when the server
    /// runs there.
    pub fn metrics(&self, ns: Option<&Netns>) -> String {
        self.http_get(ns, "/metrics")
    }

    /// The raw HTTP answer of the admin API to `GET path`.
    pub fn http_get(&self, ns: Option<&Netns>, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
        match ns {
            Some(ns) => {
                let script = format!(
                    "exec 3<>/dev/tcp/{}/{}; printf '{}' >&3; cat <&3",
                    self.http.ip(),
                    self.http.port(),
                    request.replace("\r\n", "\\r\\n")
                );
                let out = ns.command("bash").args(["-c", &script]).output().unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
            None => {
                use std::io::{Read, Write};
                let mut stream = std::net::TcpStream::connect(self.http).unwrap();
                stream.write_all(request.as_bytes()).unwrap();
                let mut text = String::new();
                stream.read_to_string(&mut text).unwrap();
                text
            }
        }
    }

    /// Participants in `room` according to the server's `GET /rooms` (0 when the room is not
    /// open there).
    pub fn room_participants(&self, ns: Option<&Netns>, room: &str) -> u64 {
        let answer = self.http_get(ns, "/rooms");
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        if std::env::var_os("AMT_DEBUG_ROOMS").is_some() {
            eprintln!("/rooms: {body:?}");
        }
        let rooms: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        rooms
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["room"] == room)
            .and_then(|r| r["participants"].as_u64())
            .unwrap_or(0)
    }

    /// One counter's value from [`metrics`](Self::metrics) (0 if absent).
    pub fn metric(&self, ns: Option<&Netns>, name: &str) -> u64 {
        self.metrics(ns)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn data_dir(&self) -> &Path {
        self._data.path()
    }

    /// Sends SIGTERM, as systemd does on stop, and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("wait for server")
    }

    /// Stops the server (SIGTERM) and starts it again on the same data directory, as an
    /// admin's `systemctl restart` does.
    pub fn restart(&mut self, ns: Option<&Netns>, extra: &[&str]) {
        self.terminate();
        let data = std::mem::replace(&mut self._data, TempDir(PathBuf::new()));
        // The old process has exited; its empty data placeholder removes nothing.
        drop(std::mem::replace(
            self,
            Self::start_with_data(ns, extra, data),
        ));
    }

    /// Starts a node stopped by [`Server::kill`] or [`Server::terminate`] again on its data
    /// directory, with the addresses of [`Server::start_node`].
    pub fn restart_node(
        &mut self,
        ns: &Netns,
        sip_ip: &str,
        http: &str,
        rtp: &str,
        extra: &[&str],
    ) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data = std::mem::replace(&mut self._data, TempDir(PathBuf::new()));
        drop(std::mem::replace(
            self,
            Self::start_node(ns, sip_ip, http, rtp, extra, data),
        ));
    }

    /// Kills the process at once (SIGKILL), as a power cut would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, if it ends by itself within `timeout`.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port_pair() -> u16 {
    // SIP needs the same port free on UDP and TCP.
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs SIPp with `args` (in `ns` when given); returns its output.
pub fn sipp(ns: Option<&Netns>, args: &[&str]) -> Output {
    let mut cmd = match ns {
        Some(ns) => ns.command("sipp"),
        None => Command::new("sipp"),
    };
    cmd.args(args)
        .args(["-nostdin", "-timeout", "40s", "-timeout_error"])
        .stdin(Stdio::null())
        .output()
        .expect("run sipp (apt-get install sip-tester)")
}

/// Fails the test with SIPp's output and the server log unless SIPp passed.
pub fn assert_sipp_ok(output: &Output, server: &Server, what: &str) {
    assert!(
        output.status.success(),
        "{what}: SIPp failed ({:?})\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
}

/// SIPp arguments for one call of `scenario_file` from `ip`:`port` (SIP and media) to the
/// server in the test namespace, with `extra` before the target.
pub fn sipp_call_args<'a>(
    scenario_file: &'a str,
    ip: &'a str,
    port: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "-sf",
        scenario_file,
        "-i",
        ip,
        "-mi",
        ip,
        "-p",
        port,
        "-m",
        "1",
        "-l",
        "1",
    ];
    args.extend_from_slice(extra);
    args.push("10.99.0.1:5060");
    args
}

/// Path of a SIPp scenario in tests/scenarios.
pub fn scenario(name: &str) -> String {
    repo()
        .join("tests/scenarios")
        .join(name)
        .display()
        .to_string()
}

/// A copy of the PCMU call scenario whose RTP stream plays a 440 Hz mu-law tone.
pub fn pcmu_call_scenario(dir: &TempDir) -> String {
    scenario_with_tone(dir, "invite_pcmu.xml", 440)
}

/// A copy of scenario `name` whose `[audio]` RTP stream plays a `freq` Hz mu-law tone; SIPp
/// does not substitute keywords inside `exec` attributes, so the path is written into the file.
pub fn scenario_with_tone(dir: &TempDir, name: &str, freq: u32) -> String {
    scenario_with_tone_for(dir, name, freq, 30)
}

/// Like [`scenario_with_tone`], with a tone `seconds` long (SIPp can play it once and stop).
pub fn scenario_with_tone_for(dir: &TempDir, name: &str, freq: u32, seconds: u32) -> String {
    let audio = dir.path().join(format!("tone-{freq}-{seconds}s-ulaw.wav"));
    sox_sine(
        &audio,
        &["-r", "8000", "-c", "1", "-e", "mu-law"],
        freq,
        seconds,
        0.4,
    );
    let text = std::fs::read_to_string(scenario(name))
        .unwrap()
        .replace("[audio]", audio.to_str().unwrap());
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Writes a mono 16-bit WAV of a sine at `freq` Hz.
pub fn write_tone(path: &Path, freq: u32, rate: u32, seconds: u32) {
    write_tone_channels(path, freq, rate, seconds, 1);
}

/// Writes a 16-bit WAV of a sine at `freq` Hz with `channels` channels.
pub fn write_tone_channels(path: &Path, freq: u32, rate: u32, seconds: u32, channels: u32) {
    write_tone_at(path, freq, rate, seconds, channels, 0.4);
}

/// Like [`write_tone_channels`], with the sine's peak at `volume` of full scale.
pub fn write_tone_at(path: &Path, freq: u32, rate: u32, seconds: u32, channels: u32, volume: f64) {
    let (rate, channels) = (rate.to_string(), channels.to_string());
    sox_sine(
        path,
        &["-r", &rate, "-c", &channels, "-b", "16"],
        freq,
        seconds,
        volume,
    );
}

/// Writes `seconds` of a sine at `freq` Hz, peak `volume` of full scale, in sox's output
/// `format` (rate, channels, encoding options) to `path`.
fn sox_sine(path: &Path, format: &[&str], freq: u32, seconds: u32, volume: f64) {
    let status = Command::new("sox")
        .arg("-n")
        .args(format)
        .arg(path)
        .args([
            "synth",
            &seconds.to_string(),
            "sine",
            &freq.to_string(),
            "vol",
            &volume.to_string(),
        ])
        .status()
        .expect("run sox (apt-get install sox)");
    assert!(status.success());
}

/// A baresip client in its own config directory.
pub struct Baresip {
    pub dir: TempDir,
    pub ip: String,
}

impl Baresip {
    /// A client on `ip` whose microphone plays `tone_hz` at the codec rate and that offers
    /// only `codec` (e.g. "PCMU", "G722/16000/1").
    pub fn new(ip: &str, tone_hz: u32, codec: &str, mic_rate: u32) -> Self {
        let dir = TempDir::new("baresip");
        let tone = dir.path().join("tone.wav");
        // baresip's aufile source must match the codec's channel count (opus/48000/2).
        let channels = if codec.ends_with("/2") { 2 } else { 1 };
        // `opus_packet_loss`: baresip's Opus encoder adds in-band FEC (which the server asks
        // for with useinbandfec=1) only when told to expect loss; its default of 0 sends
        // none, unlike browsers, whose encoders follow the loss their RTCP reports show.
        write_tone_channels(&tone, tone_hz, mic_rate, 30, channels);
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t{ip}:15060\n\
             audio_player\t\taufile,/dev/null\n\
             audio_source\t\taufile,{tone}\n\
             audio_alert\t\taufile,/dev/null\n\
             rtp_ports\t\t30000-30100\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tstdio.so\n\
             module\t\t\tg711.so\n\
             module\t\t\tg722.so\n\
             module\t\t\topus.so\n\
             opus_packet_loss\t10\n\
             module\t\t\taufile.so\n\
             module\t\t\tsndfile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             snd_path\t\t{snd}\n",
            tone = tone.display(),
            snd = dir.path().display(),
        );
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:tester@{ip}:15060>;regint=0;answermode=auto;audio_codecs={codec}\n"),
        )
        .unwrap();
        Self {
            dir,
            ip: ip.to_string(),
        }
    }

    /// Makes the microphone's tone last `seconds` (instead of 30) at `tone_hz` and 8 kHz mono
    /// (PCMU's rate), for calls longer than 30 s: baresip hangs up when its file ends.
    pub fn with_tone_seconds(self, tone_hz: u32, seconds: u32) -> Self {
        write_tone_channels(&self.dir.path().join("tone.wav"), tone_hz, 8000, seconds, 1);
        self
    }

    /// Makes the client take its RTP ports from `low..=high` (instead of 30000-30100), so
    /// that a firewall rule can pick its packets: every client's packets to the server leave
    /// from the server's own address in the namespace, so only the ports tell them apart.
    pub fn with_rtp_ports(self, low: u16, high: u16) -> Self {
        let config = self.dir.path().join("config");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace("30000-30100", &format!("{low}-{high}")),
        )
        .unwrap();
        self
    }

    /// Makes the client ask for Opus discontinuous transmission (baresip's `opus_dtx`, which
    /// offers `usedtx=1`).
    pub fn asking_for_dtx(self) -> Self {
        self.with_config_line("opus_dtx\t\tyes")
    }

    /// Adds `line` to the client's config file.
    fn with_config_line(self, line: &str) -> Self {
        let config = self.dir.path().join("config");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(line);
        text.push('\n');
        std::fs::write(&config, text).unwrap();
        self
    }

    /// Makes the client offer and send the RFC 6464 audio level of every packet (baresip's
    /// `audio_level` setting), as WebRTC browsers do.
    pub fn with_audio_level(self) -> Self {
        self.with_config_line("audio_level\t\tyes")
    }

    /// Makes the client register as `extension` with `password` at the server in the test
    /// namespace (and answer calls automatically), like a desk phone of a staff member.
    pub fn registering(self, extension: &str, password: &str) -> Self {
        let accounts = self.dir.path().join("accounts");
        let text = std::fs::read_to_string(&accounts).unwrap();
        let codecs = text
            .split("audio_codecs=")
            .nth(1)
            .unwrap_or("PCMU")
            .trim()
            .to_string();
        std::fs::write(
            &accounts,
            format!(
                "<sip:{extension}@{SERVER_IP}>;auth_pass={password};regint=600;answermode=auto;audio_codecs={codecs}\n"
            ),
        )
        .unwrap();
        self
    }

    /// Makes the client register as `extension` of the SIP domain `domain` (a tenant's),
    /// through the server as its outbound proxy: the domain has no DNS entry, so requests
    /// name it in their Request-URI and go to the server's address, as a town's phones do
    /// behind the operator's proxy.
    pub fn registering_in(self, domain: &str, extension: &str, password: &str) -> Self {
        let this = self.registering(extension, password);
        let accounts = this.dir.path().join("accounts");
        let text = std::fs::read_to_string(&accounts).unwrap();
        std::fs::write(
            &accounts,
            text.replacen(
                &format!("<sip:{extension}@{SERVER_IP}>"),
                &format!("<sip:{extension}@{domain}>;outbound=\"sip:{SERVER_IP}:5060\""),
                1,
            ),
        )
        .unwrap();
        this
    }

    /// Makes the client register (and so be called) over TCP instead of UDP.
    pub fn over_tcp(self) -> Self {
        let accounts = self.dir.path().join("accounts");
        let text = std::fs::read_to_string(&accounts).unwrap();
        std::fs::write(
            &accounts,
            text.replacen(
                &format!("@{SERVER_IP}>"),
                &format!("@{SERVER_IP};transport=tcp>"),
                1,
            ),
        )
        .unwrap();
        self
    }

    /// Makes the client encrypt its media with SRTP, keys by SDES (baresip's `mediaenc`:
    /// `srtp` offers RTP/AVP with keys, `srtp-mand` RTP/SAVP and nothing plain).
    pub fn with_srtp(self, mode: &str) -> Self {
        let config = self.dir.path().join("config");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace(
                "module\t\t\taufile.so\n",
                "module\t\t\taufile.so\nmodule\t\t\tsrtp.so\n",
            ),
        )
        .unwrap();
        let accounts = self.dir.path().join("accounts");
        let text = std::fs::read_to_string(&accounts).unwrap();
        std::fs::write(&accounts, format!("{};mediaenc={mode}\n", text.trim_end())).unwrap();
        self
    }

    /// Makes the client register (and so be called) over TLS to the server's TLS port,
    /// trusting the CA certificate in `ca_pem` (baresip's `sip_cafile`).
    pub fn over_tls(self, ca_pem: &Path) -> Self {
        let accounts = self.dir.path().join("accounts");
        let text = std::fs::read_to_string(&accounts).unwrap();
        std::fs::write(
            &accounts,
            text.replacen(
                &format!("@{SERVER_IP}>"),
                &format!("@{SERVER_IP};transport=tls>"),
                1,
            ),
        )
        .unwrap();
        self.with_config_line(&format!("sip_cafile\t\t{}", ca_pem.display()))
    }

    /// Makes the client ring without answering (a phone nobody picks up).
    pub fn never_answering(self) -> Self {
        let accounts = self.dir.path().join("accounts");
        let text = std::fs::read_to_string(&accounts).unwrap();
        std::fs::write(
            &accounts,
            text.replace("answermode=auto", "answermode=manual"),
        )
        .unwrap();
        self
    }

    /// Runs the client for `seconds` without dialling (a registered phone waiting for
    /// calls); returns its output.
    pub fn run(&self, ns: &Netns, seconds: u32) -> String {
        self.run_with(ns, seconds, &[])
    }

    /// Dials `uri` and stays in the call for `seconds`; returns baresip's output.
    pub fn call(&self, ns: &Netns, uri: &str, seconds: u32) -> String {
        self.run_with(ns, seconds, &["-e", &format!("/dial {uri}")])
    }

    /// Runs baresip in `ns` for `seconds` with `extra` arguments; its output.
    fn run_with(&self, ns: &Netns, seconds: u32, extra: &[&str]) -> String {
        let output = ns
            .command("timeout")
            .arg((seconds + 10).to_string())
            .args(["baresip", "-f"])
            .arg(self.dir.path())
            .args(["-t", &seconds.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("run baresip (apt-get install baresip-core)");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// The WAV baresip wrote of what it heard (decoded audio).
    pub fn heard(&self) -> Option<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
    }
}

/// Each client dials `uri` and stays `seconds`, joining 700 ms after the one before (as
/// people arrive); returns their outputs in order.
pub fn call_staggered(ns: &Netns, clients: &[&Baresip], uri: &str, seconds: u32) -> Vec<String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, client)| {
                scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(700 * i as u64));
                    client.call(ns, uri, seconds)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Mono samples and rate of a 16-bit PCM WAV (first channel if stereo).
pub fn read_wav(path: &Path) -> (Vec<f64>, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.len() > 44 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE");
    let mut pos = 12;
    let mut rate = 0;
    let mut channels = 1usize;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            channels = u16::from_le_bytes([body[2], body[3]]) as usize;
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        } else if id == b"data" {
            let samples = body
                .chunks_exact(2 * channels)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
                .collect();
            return (samples, rate);
        }
        pos += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

/// Share of the signal's energy that lies within ±`width` Hz of `freq` (0..1), by DFT over
/// the samples from `skip_s` seconds on.
pub fn tone_share(samples: &[f64], rate: u32, freq: f64, skip_s: f64) -> f64 {
    let start = ((skip_s * rate as f64) as usize).min(samples.len());
    let x = &samples[start..];
    if x.is_empty() {
        return 0.0;
    }
    // Goertzel over 1 Hz bins around the tone vs total energy (Parseval).
    let total: f64 = x.iter().map(|v| v * v).sum::<f64>() * x.len() as f64 / 2.0;
    if total <= 0.0 {
        return 0.0;
    }
    let mut band = 0.0;
    let step = rate as f64 / x.len() as f64;
    let width = 25.0;
    let mut f = (freq - width).max(step);
    while f <= freq + width {
        let w = 2.0 * std::f64::consts::PI * f / rate as f64;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s0 = v + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        band += s1 * s1 + s2 * s2 - coeff * s1 * s2;
        f += step;
    }
    (band / total).min(1.0)
}

/// The share of `freq` in the WAV at `path` between `from_s` and `to_s` seconds of it
/// (decimated to 16 kHz first: the tones are far below 8 kHz, and the DFT over 48 kHz
/// samples is slow in a debug build).
pub fn share_between(path: &Path, freq: f64, from_s: f64, to_s: f64) -> f64 {
    let (samples, rate) = read_wav(path);
    let (samples, rate) = if rate == 48_000 {
        let down: Vec<f64> = samples
            .chunks_exact(3)
            .map(|c| c.iter().sum::<f64>() / 3.0)
            .collect();
        (down, 16_000)
    } else {
        (samples, rate)
    };
    let start = ((from_s * rate as f64) as usize).min(samples.len());
    let end = ((to_s * rate as f64) as usize).clamp(start, samples.len());
    assert!(
        end - start > rate as usize * 3,
        "{} holds only {:.1} s",
        path.display(),
        samples.len() as f64 / rate as f64
    );
    tone_share(&samples[start..end], rate, freq, 0.0)
}

/// RMS level of the samples after `skip_s` seconds.
pub fn rms(samples: &[f64], rate: u32, skip_s: f64) -> f64 {
    let start = ((skip_s * rate as f64) as usize).min(samples.len());
    let x = &samples[start..];
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

/// A client process whose standard output lines (its report of what it did) are collected
/// as they come and echoed with `label`; killed on drop.
pub struct ReportingChild {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ReportingChild {
    /// Starts `command` with its standard output piped here.
    pub fn spawn(mut command: Command, label: &'static str) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {label}: {err}"));
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[{label}] {line}");
                collected.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Kills the process at once (a client that just disappears).
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for the process to end; how it ended and all its lines.
    pub fn finish(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status, self.lines())
    }
}

impl Drop for ReportingChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `check` holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// Runs `amtsleitung user ARGS --data-dir DIR`; panics with its output unless it succeeds,
/// returns what it printed.
pub fn user_cli(data: &Path, args: &[&str]) -> String {
    let mut full = vec!["user"];
    full.extend_from_slice(args);
    admin_ok(data, &full)
}

/// Runs the admin command `args` (e.g. `room token 1234 --whip`) against the data directory
/// `data`; fails the test with its stderr unless it succeeds, else returns its stdout.
pub fn admin_ok(data: &Path, args: &[&str]) -> String {
    let out = amtsleitung()
        .current_dir(repo())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates a stored room with the admin CLI, e.g. `&["1234", "--pin", "4321"]`.
pub fn create_room(server_data: &std::path::Path, args: &[&str]) {
    let mut full = vec!["room", "create"];
    full.extend_from_slice(args);
    admin_ok(server_data, &full);
}

/// A config file in `dir` that trusts `network` (`[security] trusted-networks`): calls from
/// there need no password, as from a SIP trunk or a PBX being migrated; pass it as
/// `--config`.
pub fn config_trusting(dir: &TempDir, network: &str) -> String {
    let path = dir.path().join("trusting.toml");
    std::fs::write(
        &path,
        format!("[security]\ntrusted-networks = [\"{network}\"]\n"),
    )
    .unwrap();
    path.display().to_string()
}

/// The shipped dialplan plus a trusted number (91234) that joins room 1234 without the PIN
/// prompt, so a baresip listener (which cannot key DTMF here) can sit in a PIN room.
pub fn plans_with_trusted_number() -> TempDir {
    plans_with(
        "conf-plans",
        "[[rule]]\nname = \"staff line into room 1234\"\nmatch = \"91234\"\npublic = true\nactions = [ { conference = { room = \"1234\", pin = false } } ]\n",
    )
}

/// A dialplan directory (a temporary one named after `name`) with the shipped plan and
/// `rules` in a second file (read after it).
pub fn plans_with(name: &str, rules: &str) -> TempDir {
    let plans = TempDir::new(name);
    std::fs::copy(
        repo().join("dialplans/default.toml"),
        plans.path().join("default.toml"),
    )
    .unwrap();
    std::fs::write(plans.path().join("extra.toml"), rules).unwrap();
    plans
}

/// Starts one SIPp caller from 10.99.0.2 in the background: `scenario` dialling `number`
/// from SIP port `port` and RTP port `media_port`, talking `talk_ms` (the scenario's
/// `<pause/>`); its output is dropped, its exit status tells how the call went.
pub fn sipp_call_spawn(
    ns: &Netns,
    scenario: &str,
    number: &str,
    port: u16,
    media_port: u16,
    talk_ms: u32,
) -> Child {
    ns.command("sipp")
        .args(["-sf", scenario, "-s", number, "-i", "10.99.0.2"])
        .args(["-p", &port.to_string(), "-mi", "10.99.0.2"])
        .args(["-mp", &media_port.to_string(), "-m", "1"])
        .args(["-d", &talk_ms.to_string(), "-nostdin", "-timeout", "30s"])
        .args(["-timeout_error", "10.99.0.1:5060"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (apt-get install sip-tester)")
}

/// Runs one SIPp caller from 10.99.0.2 (scenario file, number dialled, talk time for the
/// scenario's `<pause/>`); fails the test with SIPp's and the server's output if it fails.
pub fn sipp_caller(
    ns: &Netns,
    server: &Server,
    scenario: &str,
    number: &str,
    talk_ms: u32,
    what: &str,
) {
    let talk = talk_ms.to_string();
    let out = sipp(
        Some(ns),
        &[
            "-sf",
            scenario,
            "-s",
            number,
            "-i",
            "10.99.0.2",
            "-p",
            "5070",
            "-mi",
            "10.99.0.2",
            "-mp",
            "6000",
            "-m",
            "1",
            "-d",
            &talk,
            "10.99.0.1:5060",
        ],
    );
    assert!(
        out.status.success(),
        "{what} failed\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
}

/// A server in `ns` with room 1234 stored under PIN 4321 and the trusted line 91234 into it
/// (see [`plans_with_trusted_number`]); keep the returned dialplan directory alive with it.
pub fn server_with_pin_room(ns: &Netns, label: &str) -> (Server, TempDir) {
    let data = TempDir::new(label);
    create_room(data.path(), &["1234", "--pin", "4321"]);
    let plans = plans_with_trusted_number();
    let server = Server::start_with_data(
        Some(ns),
        &["--dialplans", plans.path().to_str().unwrap()],
        data,
    );
    (server, plans)
}

/// Adds staff user `extension` (named "Sachbearbeitung EXTENSION") with `password` to the
/// store in `data`.
pub fn add_user(data: &std::path::Path, extension: &str, password: &str) {
    let name = format!("Sachbearbeitung {extension}");
    user_cli(
        data,
        &["add", extension, "--name", &name, "--password", password],
    );
}

/// Runs each phone (in its namespace) for 14 s, waits until all have registered, then runs
/// `call`; returns the phones' outputs and what `call` returned.
pub fn with_registered_phones<T: Send>(
    server: &Server,
    ns: &Netns,
    phones: &[(&Baresip, &Netns)],
    call: impl FnOnce() -> T + Send,
) -> (Vec<String>, T) {
    std::thread::scope(|scope| {
        let runs: Vec<_> = phones
            .iter()
            .map(|&(phone, home)| scope.spawn(move || phone.run(home, 14)))
            .collect();
        let registered = wait_until(Duration::from_secs(8), || {
            server.metric(Some(ns), "amtsleitung_registered_contacts") == phones.len() as u64
        });
        assert!(registered, "the phones did not register\n{}", server.log());
        let result = call();
        (
            runs.into_iter().map(|r| r.join().unwrap()).collect(),
            result,
        )
    })
}

/// The server's call records, newest first, once there are `count` of them (a record is
/// written just after the BYE, when the media worker has given its final figures).
pub fn call_records(server: &Server, count: usize) -> Vec<store::CallRecord> {
    let store = store::Store::open(server.data_dir()).unwrap();
    let mut calls = Vec::new();
    wait_until(Duration::from_secs(3), || {
        calls = store.recent_calls(10).unwrap();
        calls.len() >= count
    });
    calls
}

/// Both ends of a call heard the other's tone (and the log shows the connection).
pub fn assert_both_hear(phone: &Baresip, caller: &Baresip, server: &Server, outputs: &str) {
    let log = server.log();
    assert!(
        log.contains("dial: answered; connected"),
        "{log}\n{outputs}"
    );
    let to_phone = heard_share(phone, 440.0, "the phone", server);
    let to_caller = heard_share(caller, 880.0, "the caller", server);
    assert!(
        to_phone > 0.5 && to_caller > 0.5,
        "440 Hz at the phone {to_phone:.2}, 880 Hz at the caller {to_caller:.2}\n{log}"
    );
}

/// Share of `freq` in what `client` heard, after the first second.
pub fn heard_share(client: &Baresip, freq: f64, who: &str, server: &Server) -> f64 {
    let path = client
        .heard()
        .unwrap_or_else(|| panic!("{who} recorded nothing\n{}", server.log()));
    let (samples, rate) = read_wav(&path);
    tone_share(&samples, rate, freq, 1.0)
}

/// The Python of a venv under `target/<name>`, made on first use with `packages` from PyPI;
/// `check` is Python code that must run in it (e.g. "import numpy").
pub fn python_venv(name: &str, packages: &[&str], check: &str) -> PathBuf {
    let venv = repo().join("target").join(name);
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", check])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready(&python) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 (apt-get install python3 python3-venv)");
        assert!(made.success(), "cannot create {}", venv.display());
        let out = Command::new(venv.join("bin/pip"))
            .args(["install", "-q"])
            .args(packages)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pip install {packages:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(ready(&python), "{check:?} fails in {}", venv.display());
    python
}

/// The venv's Python with aiortc (the WebRTC tests' clients and stand-in meeting), created on
/// first use. Pinned to the version the scripts were written against; PyPI has wheels of it
/// and all it needs (PyAV bundles its FFmpeg) for Debian 12's Python, so nothing is compiled.
pub fn aiortc_python() -> &'static Path {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        python_venv(
            "aiortc-venv",
            &["aiortc==1.16.0"],
            "import aiortc, av; assert aiortc.__version__ == '1.16.0'",
        )
    })
}

/// A desk phone made of PJSIP (tests/pjsua/phone.py on pjsua2, in `target/pjsua-venv`):
/// registers, answers by itself, plays a tone as its microphone and records what it hears.
/// Unlike baresip 1.0 and SIPp it speaks SHA-256 digest (RFC 8760).
pub struct PjsuaPhone {
    pub dir: TempDir,
    pub ip: String,
}

impl PjsuaPhone {
    /// A phone on `ip` (SIP port 5060, RTP 40000) whose microphone plays `tone_hz` at 8 kHz.
    pub fn new(ip: &str, tone_hz: u32) -> Self {
        let dir = TempDir::new("pjsua");
        write_tone(&dir.path().join("tone.wav"), tone_hz, 8000, 30);
        Self {
            dir,
            ip: ip.to_string(),
        }
    }

    /// Registers as `extension` with `password` at the server in `ns`, expecting the server's
    /// challenge to be answered with `algorithm` ("SHA-256" or "MD5"), and runs for
    /// `seconds`; whether the phone exited 0 (registered with that algorithm) and what it
    /// printed.
    pub fn run(
        &self,
        ns: &Netns,
        extension: &str,
        password: &str,
        algorithm: &str,
        seconds: u32,
    ) -> (bool, String) {
        let python = pjsua_python();
        let path = |name: &str| self.dir.path().join(name);
        let output = ns
            .command("timeout")
            .arg((seconds + 20).to_string())
            .arg(python)
            .arg(repo().join("tests/pjsua/phone.py"))
            .args(["--bind", &self.ip, "--server", SERVER_IP])
            .args(["--user", extension, "--password", password])
            .args(["--algorithm", algorithm, "--seconds", &seconds.to_string()])
            .arg("--play")
            .arg(path("tone.wav"))
            .arg("--record")
            .arg(path("heard.wav"))
            .arg("--log")
            .arg(path("pjsip.log"))
            .stdin(Stdio::null())
            .output()
            .expect("run tests/pjsua/phone.py");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), printed)
    }

    /// PJSIP's own log of the last run: every SIP message it sent and received.
    pub fn sip_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pjsip.log")).unwrap_or_default()
    }

    /// The WAV of what the phone heard in its calls.
    pub fn heard(&self) -> PathBuf {
        self.dir.path().join("heard.wav")
    }
}

/// The venv's Python with pjsua2 (PJSIP 2.15.1), created on first use.
pub fn pjsua_python() -> &'static Path {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        python_venv(
            "pjsua-venv",
            &["pjsua2-python==2.15.1.post1"],
            "import pjsua2; pjsua2.PJSIP_AUTH_ALGORITHM_SHA256",
        )
    })
}

/// A home office: the phone in a "home" namespace with a private address (192.168.178.20),
/// behind a "router" namespace that masquerades it onto a "VPN" link (10.98.0.0/24) to the
/// server's namespace. Nothing routes back to the private network: only the NAT mapping of
/// the phone's own packets does.
pub struct HomeOffice {
    pub home: Netns,
    _router: Netns,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}");
}

impl HomeOffice {
    pub fn behind_nat(server: &Netns) -> Self {
        let name = |role: &str| format!("{}{role}", server.name);
        let (router, home) = (name("r"), name("h"));
        for ns in [&router, &home] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            ip(&["netns", "add", ns]);
        }
        let (router, home) = (Netns { name: router }, Netns { name: home });
        // VPN link: server side 10.98.0.1, router side 10.98.0.2.
        ip(&[
            "link",
            "add",
            "vpn0",
            "netns",
            &server.name,
            "type",
            "veth",
            "peer",
            "name",
            "vpn1",
            "netns",
            &router.name,
        ]);
        server.exec_ok(&["ip", "addr", "add", "10.98.0.1/24", "dev", "vpn0"]);
        server.exec_ok(&["ip", "link", "set", "vpn0", "up"]);
        router.exec_ok(&["ip", "addr", "add", "10.98.0.2/24", "dev", "vpn1"]);
        router.exec_ok(&["ip", "link", "set", "vpn1", "up"]);
        router.exec_ok(&["ip", "link", "set", "lo", "up"]);
        // The server's own address lies behind the VPN.
        router.exec_ok(&["ip", "route", "add", "10.99.0.0/24", "via", "10.98.0.1"]);
        // Home LAN: router 192.168.178.1, phone 192.168.178.20.
        ip(&[
            "link",
            "add",
            "lan0",
            "netns",
            &router.name,
            "type",
            "veth",
            "peer",
            "name",
            "lan1",
            "netns",
            &home.name,
        ]);
        router.exec_ok(&["ip", "addr", "add", "192.168.178.1/24", "dev", "lan0"]);
        router.exec_ok(&["ip", "link", "set", "lan0", "up"]);
        home.exec_ok(&["ip", "addr", "add", "192.168.178.20/24", "dev", "lan1"]);
        home.exec_ok(&["ip", "link", "set", "lan1", "up"]);
        home.exec_ok(&["ip", "link", "set", "lo", "up"]);
        home.exec_ok(&["ip", "route", "add", "default", "via", "192.168.178.1"]);
        router.exec_ok(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        router.exec_ok(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "vpn1",
            "-j",
            "MASQUERADE",
        ]);
        Self {
            home,
            _router: router,
        }
    }
}

/// tshark capturing in the namespace (every interface, so loopback too) what `filter` (a
/// capture filter) lets through; killed on drop. Tests read what went over the wire rather
/// than trusting the server's logs.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    pub fn start(ns: &Netns, dir: &TempDir, filter: &str) -> Self {
        let file = dir.path().join("capture.pcap");
        let child = ns
            .command("tshark")
            .args(["-i", "any", "-f", filter])
            .arg("-w")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("tshark.log")).unwrap())
            .spawn()
            .expect("run tshark (apt-get install tshark)");
        // tshark needs a moment before it captures.
        std::thread::sleep(Duration::from_millis(1500));
        Self { child, file }
    }

    /// Stops capturing; then one line per packet with the fields `tshark -T fields` prints
    /// for `args` (e.g. `-d` decode-as rules and `-e` field names), split at tabs.
    pub fn stop(mut self, args: &[&str]) -> Vec<Vec<String>> {
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args(["-T", "fields"])
            .args(args)
            .output()
            .expect("read the capture with tshark");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// G.711 µ-law byte to a linear sample (ITU-T G.711), for reading payloads off the wire.
pub fn ulaw_to_linear(byte: u8) -> f64 {
    let b = !byte;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    f64::from(if b & 0x80 != 0 { -magnitude } else { magnitude }) / 32768.0
}

/// A SIPp scenario that INVITEs `[service]` offering PCMU and expects the 407. With
/// `then_with_password` it answers the challenge with `-au`/`-ap` and expects that status
/// (200: talks for `-d` ms and hangs up; any other: ACKs it), else it ACKs the 407 and stops.
pub fn auth_invite_scenario(dir: &TempDir, name: &str, then_with_password: Option<u16>) -> String {
    let invite = |cseq: u32, auth: &str| {
        format!(
            "<send retrans=\"500\"><![CDATA[\n\
             INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n\
             Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\n\
             From: \"SIPp\" <sip:[service]@[local_ip]:[local_port]>;tag=[pid]auth[call_number]\n\
             To: <sip:[service]@[remote_ip]:[remote_port]>\n\
             Call-ID: [call_id]\n\
             CSeq: {cseq} INVITE\n\
             Contact: <sip:sipp@[local_ip]:[local_port]>\n\
             {auth}Max-Forwards: 70\n\
             Content-Type: application/sdp\n\
             Content-Length: [len]\n\n\
             v=0\n\
             o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\n\
             s=-\n\
             c=IN IP[media_ip_type] [media_ip]\n\
             t=0 0\n\
             m=audio [media_port] RTP/AVP 0\n\
             a=rtpmap:0 PCMU/8000\n\
             a=ptime:20\n\
             ]]></send>\n"
        )
    };
    let ack = |cseq: u32| {
        format!(
            "<send><![CDATA[\n\
             ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n\
             [last_Via:]\n\
             From: \"SIPp\" <sip:[service]@[local_ip]:[local_port]>;tag=[pid]auth[call_number]\n\
             To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n\
             Call-ID: [call_id]\n\
             CSeq: {cseq} ACK\n\
             Max-Forwards: 70\n\
             Content-Length: 0\n\n\
             ]]></send>\n"
        )
    };
    let first = format!(
        "{}<recv response=\"100\" optional=\"true\"/>\n\
         <recv response=\"407\" auth=\"true\"/>\n{}",
        invite(1, ""),
        ack(1)
    );
    let rest = match then_with_password {
        None => String::new(),
        Some(200) => format!(
            "{}<recv response=\"100\" optional=\"true\"/>\n\
             <recv response=\"180\" optional=\"true\"/>\n\
             <recv response=\"200\"/>\n\
             <send><![CDATA[\n\
             ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n\
             Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\n\
             From: \"SIPp\" <sip:[service]@[local_ip]:[local_port]>;tag=[pid]auth[call_number]\n\
             To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n\
             Call-ID: [call_id]\n\
             CSeq: 2 ACK\n\
             Max-Forwards: 70\n\
             Content-Length: 0\n\n\
             ]]></send>\n\
             <pause/>\n\
             <send retrans=\"500\"><![CDATA[\n\
             BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n\
             Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\n\
             From: \"SIPp\" <sip:[service]@[local_ip]:[local_port]>;tag=[pid]auth[call_number]\n\
             To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n\
             Call-ID: [call_id]\n\
             CSeq: 3 BYE\n\
             Max-Forwards: 70\n\
             Content-Length: 0\n\n\
             ]]></send>\n\
             <recv response=\"200\"/>\n",
            invite(2, "[authentication]\n")
        ),
        Some(status) => format!(
            "{}<recv response=\"100\" optional=\"true\"/>\n\
             <recv response=\"180\" optional=\"true\"/>\n\
             <recv response=\"{status}\"/>\n{}",
            invite(2, "[authentication]\n"),
            ack(2)
        ),
    };
    let path = dir.path().join(name);
    std::fs::write(
        &path,
        format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n\
             <scenario name=\"{name}\">\n{first}{rest}<pause milliseconds=\"200\"/>\n</scenario>\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// A throw-away CA and server certificates it signs, in a temporary directory.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let pki = Self {
            dir: TempDir::new("tls-pki"),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=amtsleitung test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    pub fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A certificate for the server's address with common name `cn` and serial `serial`,
    /// signed by the CA: (certificate, key) file names in the directory.
    pub fn server_cert(&self, cn: &str, serial: u32) -> (PathBuf, PathBuf) {
        self.cert_for(SERVER_IP, cn, serial)
    }

    /// A certificate for `ip` (subjectAltName), like [`server_cert`](Self::server_cert).
    pub fn cert_for(&self, ip: &str, cn: &str, serial: u32) -> (PathBuf, PathBuf) {
        let key = format!("{cn}.key");
        let csr = format!("{cn}.csr");
        let cert = format!("{cn}.pem");
        let ext = format!("{cn}.ext");
        std::fs::write(
            self.path(&ext),
            format!(
                "subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial.to_string(),
            "-days",
            "2",
            "-out",
            &cert,
            "-extfile",
            &ext,
        ]);
        (self.path(&cert), self.path(&key))
    }
}

/// What `openssl s_client` run in `ns` says about the server's TLS port `port` on
/// 10.99.0.1: the subject and verification result lines (checked against `ca`).
pub fn s_client(ns: &Netns, port: u16, ca: &Path) -> String {
    let out = ns
        .command("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("{SERVER_IP}:{port}"))
        .args(["-showcerts", "-verify_return_error", "-CAfile"])
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Starts the server in `ns` with SIP over TLS on the default port (5061) presenting the
/// certificate in `cert`/`key`.
pub fn server_with_tls(ns: &Netns, cert: &Path, key: &Path, data: TempDir) -> Server {
    Server::start_with_data(
        Some(ns),
        &[
            "--tls-certificate",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        data,
    )
}

/// Renames a table of the server's database from another process, as a damaged or
/// half-migrated database would present itself; renaming back restores everything.
pub fn rename_table(server: &Server, from: &str, to: &str) {
    let db = server.data_dir().join("amtsleitung.db");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], timeout=10)\n\
             c.execute('ALTER TABLE %s RENAME TO %s' % (sys.argv[2], sys.argv[3]))\n\
             c.commit()",
        ])
        .arg(&db)
        .args([from, to])
        .status()
        .expect("python3");
    assert!(status.success(), "renaming table {from} failed");
}

/// `amtsleitung account add NAME --role ROLE` on the store in `data`, the password on stdin
/// (a web console account).
pub fn add_console_account(data: &Path, name: &str, role: &str, password: &str) {
    add_console_account_with(data, name, role, password, None);
}

/// The same with the account holder's own extension (their desk phone), if any.
pub fn add_console_account_with(
    data: &Path,
    name: &str,
    role: &str,
    password: &str,
    extension: Option<&str>,
) {
    let mut command = amtsleitung();
    command.args(["account", "add", name, "--role", role]);
    if let Some(extension) = extension {
        command.args(["--extension", extension]);
    }
    command.arg("--data-dir").arg(data);
    let (code, _, stderr) = run_with_stdin(command, &format!("{password}\n"));
    assert_eq!(code, 0, "account add {name}: {stderr}");
}

/// `amtsleitung node drain` from inside `ns` against `server`'s admin listener.
pub fn node_drain(ns: &Netns, server: &Server) -> Output {
    ns.command(binary().to_str().unwrap())
        .env("AMT_CONFIG", empty_config())
        .args(["node", "drain", "--http", &server.http.to_string()])
        .output()
        .unwrap()
}

/// A SIPp scenario: REGISTER, the 401 challenge, REGISTER with credentials (`-au`/`-ap`),
/// and `final_code` as the answer to that.
pub fn register_scenario(dir: &TempDir, final_code: u16) -> String {
    register_scenario_with(dir, final_code, "")
}

/// [`register_scenario`] with `extra` header lines (each ending in a newline) in both
/// REGISTERs.
pub fn register_scenario_with(dir: &TempDir, final_code: u16, extra: &str) -> String {
    let name = if extra.is_empty() { "plain" } else { "extra" };
    let path = dir.path().join(format!("register-{final_code}-{name}.xml"));
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n\
         <scenario name=\"register {final_code}\">\n\
         {}\
         <recv response=\"401\" auth=\"true\"/>\n\
         {}\
         <recv response=\"{final_code}\"/>\n\
         </scenario>\n",
        register_request(1, "", extra),
        register_request(2, "[authentication]\n", extra),
    );
    std::fs::write(&path, xml).unwrap();
    path.display().to_string()
}

/// A SIPp scenario of one REGISTER without credentials, answered with `code` (a banned
/// source's 403 through a proxy, say).
pub fn register_once_scenario(dir: &TempDir, code: u16) -> String {
    let path = dir.path().join(format!("register-once-{code}.xml"));
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n\
         <scenario name=\"register once {code}\">\n{}<recv response=\"{code}\"/>\n</scenario>\n",
        register_request(1, "", ""),
    );
    std::fs::write(&path, xml).unwrap();
    path.display().to_string()
}

/// One REGISTER of `[service]` in a SIPp scenario, with `auth` and `extra` header lines.
fn register_request(cseq: u32, auth: &str, extra: &str) -> String {
    format!(
        "<send retrans=\"500\"><![CDATA[\n\
         REGISTER sip:[remote_ip]:[remote_port] SIP/2.0\n\
         Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         From: <sip:[service]@[remote_ip]>;tag=[pid]reg[call_number]\n\
         To: <sip:[service]@[remote_ip]>\n\
         Call-ID: [call_id]\n\
         CSeq: {cseq} REGISTER\n\
         Contact: <sip:[service]@[local_ip]:[local_port]>\n\
         {extra}{auth}Max-Forwards: 70\n\
         Expires: 600\n\
         User-Agent: SIPp\n\
         Content-Length: 0\n\n\
         ]]></send>\n"
    )
}

/// SIPp registering `extension` with `password` from `ip`, `times` in a row.
pub fn sipp_register(
    ns: &Netns,
    scenario: &str,
    ip: &str,
    extension: &str,
    password: &str,
    times: u32,
) -> std::process::Output {
    let times = times.to_string();
    sipp(
        Some(ns),
        &[
            "-sf",
            scenario,
            "-i",
            ip,
            "-p",
            "5070",
            "-s",
            extension,
            "-au",
            extension,
            "-ap",
            password,
            "-m",
            &times,
            "-l",
            "1",
            "-recv_timeout",
            "3000",
            "10.99.0.1:5060",
        ],
    )
}
