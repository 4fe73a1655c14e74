//! Debian's Kamailio with the shipped pool configuration (deploy/kamailio/amtsleitung-pool.cfg)
//! in a test namespace, in front of amtsleitung nodes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Netns, TempDir, apt_install, repo};

/// A running Kamailio; stopped with SIGTERM on drop (SIGKILL would orphan its workers).
pub struct Kamailio {
    child: Child,
    dir: TempDir,
}

impl Kamailio {
    /// Starts Kamailio in `ns` on `listen` (an IP; port 5060, UDP) dispatching to `nodes`
    /// (their SIP addresses, "IP:PORT"), health-checking them every `ping_interval` seconds.
    pub fn start(ns: &Netns, listen: &str, nodes: &[&str], ping_interval: u32) -> Self {
        if !std::path::Path::new("/usr/sbin/kamailio").exists() {
            apt_install(&["kamailio"]);
        }
        let dir = TempDir::new("kamailio");
        let list: String = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| format!("1 sip:{node} 0 0 duid=node{i}\n"))
            .collect();
        let list_file = dir.path().join("nodes.list");
        std::fs::write(&list_file, list).unwrap();
        let config = repo().join("deploy/kamailio/amtsleitung-pool.cfg");
        let defines = [
            format!("LISTEN=udp:{listen}:5060"),
            format!("DISPATCHER_LIST=\"{}\"", list_file.display()),
            format!("CTL_SOCKET=\"unix:{}\"", dir.path().join("ctl").display()),
            format!("PING_INTERVAL={ping_interval}"),
        ];
        let mut check = Command::new("kamailio");
        check.arg("-c").arg("-f").arg(&config);
        for define in &defines {
            check.args(["-A", define]);
        }
        let checked = check.output().expect("run kamailio -c");
        assert!(
            checked.status.success(),
            "the shipped Kamailio configuration does not check:\n{}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        // One worker per socket: with more, a 180 and the 200 right after it can be relayed by
        // two workers at once and overtake each other. Phones ignore a late 180; SIPp's
        // scenarios fail on it.
        let mut command = ns.command("kamailio");
        command
            .arg("-f")
            .arg(&config)
            .args(["-DD", "-E", "-n", "1", "-m", "64", "-M", "8", "-Y"])
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"));
        for define in &defines {
            command.args(["-A", define]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start kamailio");
        let mut kamailio = Self { child, dir };
        let until = Instant::now() + Duration::from_secs(10);
        while kamailio.rpc(&["core.version"]).is_none() {
            if let Ok(Some(status)) = kamailio.child.try_wait() {
                panic!("kamailio exited ({status}):\n{}", kamailio.log());
            }
            assert!(
                Instant::now() < until,
                "kamailio not ready:\n{}",
                kamailio.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        kamailio
    }

    /// What Kamailio logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// One `kamcmd` command's output, if it succeeded.
    pub fn rpc(&self, args: &[&str]) -> Option<String> {
        let socket: PathBuf = self.dir.path().join("ctl");
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", socket.display()))
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Each node's dispatcher state: ("sip:IP:PORT", flags), where flags start with `A`
    /// (active), `I` (inactive), `T` (trying) or `D` (disabled).
    pub fn node_states(&self) -> Vec<(String, String)> {
        let listing = self.rpc(&["dispatcher.list"]).unwrap_or_default();
        let mut states = Vec::new();
        let mut uri = None;
        for line in listing.lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("URI:") {
                uri = Some(value.trim().to_string());
            } else if let Some(value) = line.strip_prefix("FLAGS:")
                && let Some(uri) = uri.take()
            {
                states.push((uri, value.trim().to_string()));
            }
        }
        states
    }

    /// Waits until the node at `uri` ("sip:IP:PORT") has a state starting with `flag`.
    pub fn wait_for_node(&self, uri: &str, flag: char, timeout: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self
                .node_states()
                .iter()
                .any(|(u, f)| u == uri && f.starts_with(flag))
            {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
