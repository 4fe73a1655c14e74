//! `--floor`: after the server has stopped, `amt-udp-floor` (built next to `amt-loadgen`)
//! moves the same number of participants' RTP datagrams, at the sizes this run measured,
//! through loopback with threads that do nothing else, so the run's server cost can be
//! read against the kernel's share of it.
//!
//! What the floor counts: one datagram in and one out per participant per 20 ms, on the
//! server's socket layout (one socket per phone call; a receiving and a sending socket per
//! WebRTC participant), nothing else. Not counted: STUN consent checks, RTCP, DTLS and
//! HTTP, and SRTP's own work (encryption is the server's user time, above the floor).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// The server's socket layout, as `amt-udp-floor --sockets` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One socket per call (phones).
    PerCall,
    /// A receiving and a sending socket per participant (WebRTC: WHIP and WHEP sessions).
    PerSession,
}

impl Layout {
    /// The name `amt-udp-floor --sockets` takes.
    pub fn name(self) -> &'static str {
        match self {
            Layout::PerCall => "per-call",
            Layout::PerSession => "per-session",
        }
    }
}

/// What the floor run is asked to move.
#[derive(Debug, Clone, Copy)]
pub struct FloorLoad {
    /// Participants.
    pub participants: usize,
    /// Server threads (the server's media workers).
    pub workers: usize,
    /// Seconds measured.
    pub duration: u64,
    /// Socket layout.
    pub layout: Layout,
    /// Mean size of a datagram to the server, bytes.
    pub bytes_in: usize,
    /// Mean size of a datagram from the server, bytes.
    pub bytes_out: usize,
}

/// What `amt-udp-floor` measured.
#[derive(Debug, Clone, Copy)]
pub struct FloorFigures {
    /// The load it moved.
    pub load: FloorLoad,
    /// Its threads' CPU per participant-second, µs: all, user, system.
    pub us_per_participant_second: f64,
    /// User part.
    pub user_us_per_participant_second: f64,
    /// System part.
    pub system_us_per_participant_second: f64,
}

/// Mean datagram size from a window's packet and byte counts; `fallback` when none moved.
pub fn mean_bytes(bytes: u64, packets: u64, fallback: usize) -> usize {
    if packets == 0 {
        return fallback;
    }
    ((bytes as f64 / packets as f64).round() as usize).max(12)
}

/// `amt-udp-floor` next to this executable.
fn floor_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding amt-loadgen's own path")?;
    let bin = me.with_file_name("amt-udp-floor");
    if !bin.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p loadgen`",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runs `amt-udp-floor` for `load` and reads its JSON.
pub fn measure(load: FloorLoad) -> anyhow::Result<FloorFigures> {
    let bin = floor_binary()?;
    let json = std::env::temp_dir().join(format!("amt-loadgen-{}-floor.json", std::process::id()));
    eprintln!(
        "amt-loadgen: kernel floor: {} participants, {} s, {} sockets, {} / {} bytes",
        load.participants,
        load.duration,
        load.layout.name(),
        load.bytes_in,
        load.bytes_out
    );
    let status = Command::new(&bin)
        .args(["--participants", &load.participants.to_string()])
        .args(["--workers", &load.workers.max(1).to_string()])
        .args(["--duration", &load.duration.to_string()])
        .args(["--sockets", load.layout.name()])
        .args(["--bytes-in", &load.bytes_in.to_string()])
        .args(["--bytes-out", &load.bytes_out.to_string()])
        .arg("--json")
        .arg(&json)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    if !status.success() {
        bail!("{} failed: {status}", bin.display());
    }
    let text =
        std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()));
    let _ = std::fs::remove_file(&json);
    let value: serde_json::Value = serde_json::from_str(&text?)?;
    let field = |name: &str| {
        value[name]
            .as_f64()
            .with_context(|| format!("amt-udp-floor's JSON has no {name}"))
    };
    Ok(FloorFigures {
        load,
        us_per_participant_second: field("cpu_us_per_participant_second")?,
        user_us_per_participant_second: field("user_cpu_us_per_participant_second")?,
        system_us_per_participant_second: field("system_cpu_us_per_participant_second")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_size_rounds_and_falls_back_when_nothing_moved() {
        assert_eq!(mean_bytes(1000, 8, 172), 125);
        assert_eq!(mean_bytes(0, 0, 172), 172);
        // Never below an RTP header.
        assert_eq!(mean_bytes(5, 1, 172), 12);
    }
}
