//! The server under test as a child process: start on free loopback ports, sample its CPU
//! and memory from /proc, read /metrics, stop it.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::measure;

/// Log lines kept for error messages.
const LOG_TAIL: usize = 40;
/// RTP ports are searched below Linux's default ephemeral range (32768..), so the load
/// generator's own sockets (port 0) never collide with the server's.
const RTP_SEARCH: (u16, u16) = (20000, 32766);

/// CPU and memory of a process at one instant.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// utime (user mode), clock ticks.
    pub utime_ticks: u64,
    /// stime (kernel mode, including softirq work done in its syscalls), clock ticks.
    pub stime_ticks: u64,
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// VmHWM (peak RSS), KiB.
    pub hwm_kib: u64,
}

/// Rooms stored with the admin CLI before the server starts.
#[derive(Debug, Clone, Default)]
pub struct StoredRooms {
    /// (number, max participants) of each room.
    pub rooms: Vec<(String, usize)>,
    /// Also issue a WHIP and a WHEP token for each (WebRTC clients enter stored rooms only).
    pub webrtc_tokens: bool,
}

/// A room's bearer tokens for WebRTC clients.
#[derive(Debug, Clone)]
pub struct RoomTokens {
    /// For `POST /whip/rooms/NUMBER` (publishing).
    pub whip: String,
    /// For `POST /whep/rooms/NUMBER` (listening).
    pub whep: String,
}

/// A running amtsleitung; killed on drop if not stopped.
pub struct ServerProcess {
    child: Option<Child>,
    /// SIP address (UDP).
    pub sip: SocketAddr,
    /// Admin HTTP address (metrics, WHIP/WHEP).
    pub http: SocketAddr,
    /// Tokens by room number, when asked for in [`StoredRooms`].
    pub tokens: HashMap<String, RoomTokens>,
    data_dir: PathBuf,
    /// Our own dialplan directory, if we wrote one (removed with the data directory).
    dialplans: Option<PathBuf>,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// Clock ticks per second for /proc CPU times (sysconf(_SC_CLK_TCK), 100 on Linux).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// Our own CPU time in clock ticks.
pub fn self_cpu_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    measure::cpu_ticks_from_stat(&stat).context("parsing /proc/self/stat")
}

/// Raises the open-file limit to the hard limit: N participants need N sockets here and
/// 2N in the server (which inherits the limit).
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn free_sip_port() -> anyhow::Result<u16> {
    // SIP listens on UDP and TCP with the same port.
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free SIP port")
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A run of `len` ports (even start) in which every UDP port can be bound right now.
fn free_rtp_range(len: u16) -> anyhow::Result<(u16, u16)> {
    let mut lo = RTP_SEARCH.0;
    while u32::from(lo) + u32::from(len) <= u32::from(RTP_SEARCH.1) {
        let busy = (lo..lo + len).find(|&p| UdpSocket::bind(("0.0.0.0", p)).is_err());
        match busy {
            None => return Ok((lo, lo + len - 1)),
            Some(p) => lo = (p + 2) & !1,
        }
    }
    bail!("no free range of {len} UDP ports in {RTP_SEARCH:?}")
}

impl ServerProcess {
    /// Starts `bin serve` in `repo` on loopback with `rtp_ports` media ports (and a spare
    /// 64), with `extra_args`
    /// appended, and waits for it to log that it is ready. With `dialplan` (TOML text) the
    /// server runs that one file instead of the repository's `dialplans/`.
    pub fn start(
        bin: &Path,
        repo: &Path,
        rtp_ports: usize,
        media_workers: usize,
        stored: &StoredRooms,
        dialplan: Option<&str>,
        extra_args: &[String],
    ) -> anyhow::Result<Self> {
        let bin = bin
            .canonicalize()
            .with_context(|| format!("server binary {}", bin.display()))?;
        let repo = repo
            .canonicalize()
            .with_context(|| format!("repository {}", repo.display()))?;
        let sip: SocketAddr = format!("127.0.0.1:{}", free_sip_port()?).parse()?;
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()?).parse()?;
        let len = u16::try_from(rtp_ports + 64).context("too many participants")?;
        let (lo, hi) = free_rtp_range(len)?;
        let data_dir = std::env::temp_dir().join(format!("amt-loadgen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir)?;
        // Rooms not created with the CLI hold 50 (conference.rs DEFAULT_MAX_PARTICIPANTS).
        let room_cli = |args: &[&str]| -> anyhow::Result<String> {
            let out = Command::new(&bin)
                .current_dir(&repo)
                .arg("room")
                .arg("--data-dir")
                .arg(&data_dir)
                .args(args)
                .output()
                .context("running amtsleitung room")?;
            if !out.status.success() {
                bail!(
                    "room {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            // A token is printed alone on stdout.
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        let mut tokens = HashMap::new();
        for (number, max) in &stored.rooms {
            room_cli(&["create", number, "--max-participants", &max.to_string()])?;
            if stored.webrtc_tokens {
                let whip = room_cli(&["token", number, "--whip"])?;
                let whep = room_cli(&["token", number, "--whep"])?;
                tokens.insert(number.clone(), RoomTokens { whip, whep });
            }
        }
        let dialplans = match dialplan {
            Some(text) => {
                let dir = std::env::temp_dir()
                    .join(format!("amt-loadgen-{}-dialplans", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)?;
                let file = dir.join("loadgen.toml");
                std::fs::write(&file, text)
                    .with_context(|| format!("writing {}", file.display()))?;
                Some(dir)
            }
            None => None,
        };
        let mut serve = Command::new(&bin);
        serve.current_dir(&repo).arg("serve");
        if let Some(dir) = &dialplans {
            serve.arg("--dialplans").arg(dir);
        }
        let mut child = serve
            .args(["--sip-listen", &sip.to_string()])
            .args(["--http-listen", &http.to_string()])
            .args(["--media-ip", "127.0.0.1"])
            .args(["--rtp-ports", &format!("{lo}-{hi}")])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--media-workers", &media_workers.to_string()])
            .args(extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_TAIL)));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("amtsleitung is ready") {
                        let _ = ready_tx.send(());
                    }
                    if let Ok(mut l) = log.lock() {
                        if l.len() == LOG_TAIL {
                            l.pop_front();
                        }
                        l.push_back(line);
                    }
                }
            });
        }
        let server = Self {
            child: Some(child),
            sip,
            http,
            tokens,
            data_dir,
            dialplans,
            log,
        };
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            bail!("server did not become ready:\n{}", server.log_tail());
        }
        eprintln!(
            "amt-loadgen: server pid {} ready, SIP {sip}, HTTP {http}, RTP {lo}-{hi}",
            server.pid()
        );
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// CPU and memory now.
    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        let pid = self.pid();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .context("server exited? reading its /proc stat")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let (utime_ticks, stime_ticks) =
            measure::cpu_times_from_stat(&stat).context("parsing server stat")?;
        Ok(ProcSample {
            utime_ticks,
            stime_ticks,
            rss_kib: measure::vm_rss_kib(&status).unwrap_or(0),
            hwm_kib: hwm,
        })
    }

    /// Body of `GET /metrics`.
    pub fn metrics(&self) -> anyhow::Result<String> {
        let mut s = TcpStream::connect_timeout(&self.http, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok(body)
    }

    fn remove_dirs(&self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some(dir) = &self.dialplans {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Stops the server with SIGTERM (SIGKILL after 10 s) and removes its data directory
    /// (and our dialplan directory).
    pub fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: signals our own child, whose pid we hold and have not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                eprintln!("amt-loadgen: server ignored SIGTERM, killing it");
                child.kill()?;
                child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.remove_dirs();
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.remove_dirs();
        }
    }
}
