//! The kernel's share of a media server's bill: what N participants' RTP costs when the
//! "server" does nothing but move the packets (no jitter buffer, codec or mixer).
//!
//! Every 20 ms a client thread sends one 172-byte datagram (a G.711 RTP packet) per
//! participant to the server and drains what came back; the server threads receive each
//! participant's packet and send one back, on loopback. The server threads' own CPU time
//! (user and system, from `getrusage(RUSAGE_THREAD)`) per participant-second is the floor
//! under `amt-loadgen`'s "server CPU µs per participant-second" for the same count.
//!
//! `--sockets per-call` is how amtsleitung works for phones (one socket per call, `recv_from`
//! until it would block, `send_to`); `--sockets per-session` is how it works for WebRTC
//! participants (a WHIP session's socket receives, a WHEP session's socket sends, and both
//! are drained every tick); `--sockets per-worker` is the batched alternative (one socket
//! per worker thread, `recvmmsg` and `sendmmsg` of 64), to price that design before
//! building it. `--bytes-in`/`--bytes-out` set the datagram sizes (SRTP packets are larger
//! than a G.711 packet); `amt-loadgen --floor` passes the sizes it measured.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};

const TICK: Duration = Duration::from_millis(20);
/// A G.711 RTP packet: 12 bytes of header and 160 of payload.
const G711_PACKET: usize = 172;
const BATCH: usize = 64;

// The variants are the `--sockets` values (`per-call`, ...) the README and amt-loadgen use.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Sockets {
    /// One socket per call, as amtsleitung does.
    PerCall,
    /// One socket per worker, recvmmsg/sendmmsg.
    PerWorker,
    /// Two sockets per participant, one receiving and one sending, as amtsleitung's WebRTC
    /// participants (WHIP and WHEP sessions).
    PerSession,
}

/// Prices the RTP packet path alone, on loopback.
#[derive(Debug, Parser)]
#[command(name = "amt-udp-floor")]
struct Cli {
    /// Participants (one packet in and one out per 20 ms each).
    #[arg(long, default_value_t = 1000)]
    participants: usize,
    /// Server threads (amtsleitung runs one media worker per core).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Socket layout of the server side.
    #[arg(long, value_enum, default_value_t = Sockets::PerCall)]
    sockets: Sockets,
    /// Seconds measured (after one second of warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Bytes of each datagram a participant sends to the server.
    #[arg(long, default_value_t = G711_PACKET)]
    bytes_in: usize,
    /// Bytes of each datagram the server sends to a participant.
    #[arg(long, default_value_t = G711_PACKET)]
    bytes_out: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn loopback_socket() -> anyhow::Result<UdpSocket> {
    let sock = UdpSocket::bind("127.0.0.1:0").context("binding a loopback socket")?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// This thread's (user, system) CPU time.
fn thread_cpu() -> (Duration, Duration) {
    // SAFETY: getrusage writes a plain C struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let tv =
        |t: libc::timeval| Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

/// Received datagrams go to `counter`; returns after `stop`, with the CPU used from `mark`.
struct ServerThread {
    stop: Arc<AtomicBool>,
    mark: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
    /// Bytes of each datagram sent back.
    reply_bytes: usize,
}

impl ServerThread {
    /// Sleeps to the next tick; true while running. Snapshots CPU once `mark` is set.
    fn wait(&self, next: &mut Instant, start: &mut Option<(Duration, Duration)>) -> bool {
        let now = Instant::now();
        if *next > now {
            std::thread::sleep(*next - now);
        }
        *next += TICK;
        if start.is_none() && self.mark.load(Ordering::Relaxed) {
            *start = Some(thread_cpu());
        }
        !self.stop.load(Ordering::Relaxed)
    }

    fn used(start: Option<(Duration, Duration)>) -> (Duration, Duration) {
        let (u0, s0) = start.unwrap_or_default();
        let (u1, s1) = thread_cpu();
        (u1.saturating_sub(u0), s1.saturating_sub(s0))
    }

    /// Per participant: drain `receive`, then drain `send` (a second socket in the
    /// per-session layout, nothing when it is the same one) and send the reply from it.
    fn per_call(
        &self,
        socks: Vec<(UdpSocket, Option<UdpSocket>, SocketAddr)>,
    ) -> (Duration, Duration) {
        let mut buf = [0u8; 2048];
        let reply = vec![0x80u8; self.reply_bytes];
        let mut next = Instant::now() + TICK;
        let mut start = None;
        let drain = |sock: &UdpSocket, buf: &mut [u8]| {
            let mut got = 0;
            loop {
                match sock.recv_from(buf) {
                    Ok(_) => got += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return got,
                    Err(_) => continue,
                }
            }
        };
        while self.wait(&mut next, &mut start) {
            let mut got = 0;
            for (receive, send, client) in &socks {
                got += drain(receive, &mut buf);
                let send = match send {
                    Some(send) => {
                        drain(send, &mut buf);
                        send
                    }
                    None => receive,
                };
                let _ = send.send_to(&reply, client);
            }
            self.counter.fetch_add(got, Ordering::Relaxed);
        }
        Self::used(start)
    }

    fn per_worker(&self, sock: UdpSocket, clients: Vec<SocketAddr>) -> (Duration, Duration) {
        let fd = sock.as_raw_fd();
        let mut bufs = vec![[0u8; 2048]; BATCH];
        let reply = vec![0x80u8; self.reply_bytes];
        let names: Vec<libc::sockaddr_in> = clients.iter().map(sockaddr_in).collect();
        let mut next = Instant::now() + TICK;
        let mut start = None;
        while self.wait(&mut next, &mut start) {
            let mut got = 0;
            loop {
                // SAFETY: iovecs and headers point into `bufs`, alive for the call.
                let n = unsafe {
                    let mut iovs: [libc::iovec; BATCH] = std::mem::zeroed();
                    let mut msgs: [libc::mmsghdr; BATCH] = std::mem::zeroed();
                    for (i, (iov, msg)) in iovs.iter_mut().zip(msgs.iter_mut()).enumerate() {
                        iov.iov_base = bufs[i].as_mut_ptr().cast();
                        iov.iov_len = bufs[i].len();
                        msg.msg_hdr.msg_iov = iov;
                        msg.msg_hdr.msg_iovlen = 1;
                    }
                    libc::recvmmsg(
                        fd,
                        msgs.as_mut_ptr(),
                        BATCH as u32,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                if n <= 0 {
                    break;
                }
                got += n as u64;
            }
            for chunk in names.chunks(BATCH) {
                // SAFETY: every header points at `reply` and an address in `names`.
                unsafe {
                    let mut iovs: [libc::iovec; BATCH] = std::mem::zeroed();
                    let mut msgs: [libc::mmsghdr; BATCH] = std::mem::zeroed();
                    for ((iov, msg), name) in iovs.iter_mut().zip(msgs.iter_mut()).zip(chunk) {
                        iov.iov_base = reply.as_ptr() as *mut _;
                        iov.iov_len = reply.len();
                        msg.msg_hdr.msg_iov = iov;
                        msg.msg_hdr.msg_iovlen = 1;
                        msg.msg_hdr.msg_name = (name as *const libc::sockaddr_in) as *mut _;
                        msg.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
                    }
                    libc::sendmmsg(fd, msgs.as_mut_ptr(), chunk.len() as u32, 0);
                }
            }
            self.counter.fetch_add(got, Ordering::Relaxed);
        }
        Self::used(start)
    }
}

/// Asks for a receive queue of `bytes` (SO_RCVBUFFORCE as root, else capped by rmem_max).
fn grow_receive_buffer(sock: &UdpSocket, bytes: libc::c_int) {
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: valid fd; the value points at a c_int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw const bytes).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

fn sockaddr_in(addr: &SocketAddr) -> libc::sockaddr_in {
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    if let SocketAddr::V4(v4) = addr {
        sa.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
    }
    sa
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    for bytes in [cli.bytes_in, cli.bytes_out] {
        // An RTP header at least; at most what the 2048-byte receive buffers hold.
        if !(12..=2048).contains(&bytes) {
            anyhow::bail!("datagram sizes must be 12..=2048 bytes, not {bytes}");
        }
    }
    let n = cli.participants;
    let workers = cli.workers.max(1);
    let clients: Vec<UdpSocket> = (0..n)
        .map(|_| loopback_socket())
        .collect::<Result<_, _>>()?;
    let client_addrs: Vec<SocketAddr> = clients
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mark = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let mut targets = vec![client_addrs[0]; n];
    let mut handles = Vec::new();
    for w in 0..workers {
        let mine: Vec<usize> = (w..n).step_by(workers).collect();
        let thread = ServerThread {
            stop: stop.clone(),
            mark: mark.clone(),
            counter: counter.clone(),
            reply_bytes: cli.bytes_out,
        };
        match cli.sockets {
            Sockets::PerCall | Sockets::PerSession => {
                let mut socks = Vec::with_capacity(mine.len());
                for &i in &mine {
                    let sock = loopback_socket()?;
                    targets[i] = sock.local_addr()?;
                    let send = match cli.sockets {
                        Sockets::PerSession => Some(loopback_socket()?),
                        _ => None,
                    };
                    socks.push((sock, send, client_addrs[i]));
                }
                handles.push(std::thread::spawn(move || thread.per_call(socks)));
            }
            Sockets::PerWorker => {
                let sock = loopback_socket()?;
                // A whole tick of every participant lands in this one queue.
                grow_receive_buffer(&sock, 4 << 20);
                let addr = sock.local_addr()?;
                let mut peers = Vec::with_capacity(mine.len());
                for &i in &mine {
                    targets[i] = addr;
                    peers.push(client_addrs[i]);
                }
                handles.push(std::thread::spawn(move || thread.per_worker(sock, peers)));
            }
        }
    }
    let payload = vec![0x80u8; cli.bytes_in];
    let mut buf = [0u8; 2048];
    let mut back = 0u64;
    let started = Instant::now();
    let warm_up = Duration::from_secs(1);
    let measured = Duration::from_secs(cli.duration);
    let mut marked_at = None;
    let mut next = Instant::now();
    while started.elapsed() < warm_up + measured {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += TICK;
        if marked_at.is_none() && started.elapsed() >= warm_up {
            mark.store(true, Ordering::Relaxed);
            marked_at = Some(Instant::now());
        }
        for (sock, target) in clients.iter().zip(&targets) {
            let _ = sock.send_to(&payload, target);
            while sock.recv_from(&mut buf).is_ok() {
                back += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let window = marked_at.map_or(measured, |t| t.elapsed());
    let (mut user, mut system) = (Duration::ZERO, Duration::ZERO);
    for h in handles {
        let (u, s) = h
            .join()
            .map_err(|_| anyhow::anyhow!("server thread panicked"))?;
        user += u;
        system += s;
    }
    let participant_seconds = n as f64 * window.as_secs_f64();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / participant_seconds;
    let expected = (2 * n) as f64 * (warm_up + measured).as_secs_f64() / TICK.as_secs_f64();
    let moved = counter.load(Ordering::Relaxed) + back;
    if let Some(path) = &cli.json {
        let json = serde_json::json!({
            "sockets": format!("{:?}", cli.sockets),
            "participants": n,
            "workers": workers,
            "bytes_in": cli.bytes_in,
            "bytes_out": cli.bytes_out,
            "window_seconds": window.as_secs_f64(),
            "cpu_us_per_participant_second": per(user + system),
            "user_cpu_us_per_participant_second": per(user),
            "system_cpu_us_per_participant_second": per(system),
            "datagrams_moved": moved,
            "datagrams_expected": expected,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "sockets                                      {:?}",
        cli.sockets
    );
    println!(
        "datagram bytes in / out                      {} / {}",
        cli.bytes_in, cli.bytes_out
    );
    println!("participants / server threads                {n} / {workers}");
    println!(
        "window s                                     {:.1}",
        window.as_secs_f64()
    );
    println!(
        "server CPU µs per participant-second         {:.1}",
        per(user + system)
    );
    println!(
        "  user                                       {:.1}",
        per(user)
    );
    println!(
        "  system                                     {:.1}",
        per(system)
    );
    println!(
        "datagrams moved (server in + back at client) {} of about {:.0}",
        moved, expected
    );
    Ok(())
}
