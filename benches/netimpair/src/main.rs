//! `amt-netimpair`: serves an NFQUEUE with seeded loss and jitter (see the library docs).
//!
//! Run it inside the test's network namespace after adding an nftables rule such as
//! `udp sport 30000-30099 udp dport 20000-20999 queue num 7`. It runs until its standard
//! input closes, then releases what it still holds and prints its tally as one JSON line on
//! standard output, so the test can prove that packets really were dropped and delayed.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use netimpair::{DelayLine, Impairment};
use nfq::{Queue, Verdict};

#[derive(Parser)]
#[command(about = "Seeded packet loss and jitter on an NFQUEUE (until stdin closes)")]
struct Args {
    /// The nftables queue number to serve.
    #[arg(long, default_value_t = 7)]
    queue: u16,
    /// Share of packets dropped, in percent.
    #[arg(long, default_value_t = 3.0)]
    loss_percent: f64,
    /// Mean delay added, in milliseconds.
    #[arg(long, default_value_t = 30)]
    delay_ms: u64,
    /// Each packet's delay is uniform in delay ± jitter, in milliseconds.
    #[arg(long, default_value_t = 15)]
    jitter_ms: u64,
    /// Seed of the random choices (the same seed gives the same losses and delays).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut queue = Queue::open().context("open a netfilter queue socket (needs root)")?;
    queue
        .bind(args.queue)
        .with_context(|| format!("bind NFQUEUE {} (nfnetlink_queue missing?)", args.queue))?;
    // Enough room for every packet held at once: 45 ms of many streams' 20 ms packets.
    queue.set_queue_max_len(args.queue, 4096)?;
    queue.set_nonblocking(true);
    eprintln!("amt-netimpair: serving queue {}", args.queue);

    let stop = Arc::new(AtomicBool::new(false));
    let stop_reader = stop.clone();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        // Standard input closing (EOF or error) is the signal to finish.
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        stop_reader.store(true, Ordering::Relaxed);
    });

    let mut line = DelayLine::new(
        Impairment {
            loss: args.loss_percent / 100.0,
            delay: Duration::from_millis(args.delay_ms),
            jitter: Duration::from_millis(args.jitter_ms),
        },
        args.seed,
    );
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        loop {
            match queue.recv() {
                Ok(msg) => {
                    let flow = udp_source_port(msg.get_payload()).unwrap_or(0);
                    if let Some(mut lost) = line.arrive(msg, flow.into(), now) {
                        lost.set_verdict(Verdict::Drop);
                        queue.verdict(lost)?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("receive from the netfilter queue"),
            }
        }
        while let Some(mut msg) = line.release(Instant::now()) {
            msg.set_verdict(Verdict::Accept);
            queue.verdict(msg)?;
        }
        // 1 ms resolution is well under the jitter being simulated; the queue socket has no
        // file descriptor accessor to poll on.
        std::thread::sleep(Duration::from_millis(1));
    }
    for mut msg in line.release_all() {
        msg.set_verdict(Verdict::Accept);
        queue.verdict(msg)?;
    }
    let tally = line.tally();
    let mean_delay_ms = if tally.released > 0 {
        tally.delay_us_total as f64 / 1e3 / tally.released as f64
    } else {
        0.0
    };
    println!(
        "{{\"seen\":{},\"dropped\":{},\"released\":{},\"reordered\":{},\"mean_delay_ms\":{:.1}}}",
        tally.seen, tally.dropped, tally.released, tally.reordered, mean_delay_ms
    );
    Ok(())
}

/// The UDP source port of an IPv4 packet (the flow a receiver would see reordered), if it is
/// one.
fn udp_source_port(packet: &[u8]) -> Option<u16> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    let (version, protocol) = (packet.first()? >> 4, *packet.get(9)?);
    if version != 4 || protocol != 17 {
        return None;
    }
    let port = packet.get(header_len..header_len + 2)?;
    Some(u16::from_be_bytes([port[0], port[1]]))
}
