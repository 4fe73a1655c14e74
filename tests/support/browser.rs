//! Headless Debian Chromium driven by npm's playwright-core (no browser download), and
//! axe-core for the accessibility checks: shared by the join page's and the console's
//! browser tests. Chromium, Node and npm come from Debian when missing; the npm packages are
//! installed once, pinned, into target/join-page-node.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Netns, ReportingChild, apt_install, repo};

/// playwright-core for the machine's Node (1.62 and later need Node 20), and axe-core.
const PLAYWRIGHT_NODE_20: &str = "1.65.1";
const PLAYWRIGHT_NODE_18: &str = "1.61.1";
pub const AXE_CORE: &str = "4.14.1";

/// Debian's Chromium, installed when missing.
pub fn chromium() -> &'static Path {
    static CHROMIUM: OnceLock<PathBuf> = OnceLock::new();
    CHROMIUM.get_or_init(|| {
        let path = PathBuf::from("/usr/bin/chromium");
        if !path.exists() {
            apt_install(&["chromium"]);
        }
        assert!(path.exists(), "no {}", path.display());
        path
    })
}

/// The machine's Node major version (Node and npm installed from Debian when missing).
pub fn node_major() -> u32 {
    let version = || {
        Command::new("node")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    if version().is_none() || Command::new("npm").arg("--version").output().is_err() {
        apt_install(&["nodejs", "npm"]);
    }
    let version = version().expect("node --version");
    version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read Node's version {version:?}"))
}

/// `node_modules` with playwright-core and axe-core, installed once under target/.
pub fn node_modules() -> &'static Path {
    static MODULES: OnceLock<PathBuf> = OnceLock::new();
    MODULES.get_or_init(|| {
        chromium();
        let playwright = if node_major() >= 20 {
            PLAYWRIGHT_NODE_20
        } else {
            PLAYWRIGHT_NODE_18
        };
        let dir = repo().join("target/join-page-node");
        let modules = dir.join("node_modules");
        let installed = |name: &str| {
            std::fs::read_to_string(modules.join(name).join("package.json"))
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .and_then(|json| json["version"].as_str().map(str::to_owned))
        };
        let ready = || {
            installed("playwright-core").as_deref() == Some(playwright)
                && installed("axe-core").as_deref() == Some(AXE_CORE)
        };
        if !ready() {
            std::fs::create_dir_all(&dir).unwrap();
            let out = Command::new("npm")
                .args([
                    "install",
                    "--no-save",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                ])
                .arg(&dir)
                .arg(format!("playwright-core@{playwright}"))
                .arg(format!("axe-core@{AXE_CORE}"))
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
                .output()
                .expect("npm (apt-get install npm)");
            assert!(
                out.status.success(),
                "npm install failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            ready(),
            "playwright-core {playwright} / axe-core {AXE_CORE} missing in {}",
            modules.display()
        );
        modules
    })
}

/// One run of a Playwright script (`tests/...js`, given the config as its argument) in the
/// namespace; its JSON report lines as they come.
pub struct Browser(ReportingChild);

impl Browser {
    pub fn start(ns: &Netns, script: &str, config: Value) -> Self {
        let mut command = ns.command("node");
        command
            .arg(repo().join(script))
            .arg(config.to_string())
            .env("NODE_PATH", node_modules());
        Self(ReportingChild::spawn(command, "chromium"))
    }

    /// The first report of `step`, waiting up to `timeout` for it.
    pub fn wait_for(&self, step: &str, timeout: Duration) -> Option<Value> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(found) = self.step(step) {
                return Some(found);
            }
            if Instant::now() > until || self.lines().iter().any(|l| l["step"] == "failed") {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn step(&self, step: &str) -> Option<Value> {
        self.lines().into_iter().find(|l| l["step"] == step)
    }

    pub fn lines(&self) -> Vec<Value> {
        parse(&self.0.lines())
    }

    /// Waits for the script to end; it must have succeeded.
    pub fn finish(self) -> Vec<Value> {
        let (status, lines) = self.0.finish();
        let lines = parse(&lines);
        assert!(status.success(), "the browser script failed: {lines:#?}");
        lines
    }
}

/// The JSON report lines among `lines`.
pub fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Seconds since the Unix epoch (the clock the script reports on).
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Asserts that none of the `axe` reports has a serious or critical violation; prints all.
pub fn assert_accessible(lines: &[Value], states: &[&str]) {
    let reports: Vec<&Value> = lines.iter().filter(|l| l["step"] == "axe").collect();
    for state in states {
        assert!(
            reports.iter().any(|r| r["state"] == *state),
            "no accessibility check in state {state}: {reports:#?}"
        );
    }
    let mut serious = Vec::new();
    for report in reports {
        for violation in report["violations"].as_array().into_iter().flatten() {
            eprintln!(
                "axe ({}): {} [{}] {} {:#}",
                report["state"],
                violation["id"],
                violation["impact"],
                violation["help"],
                violation["nodes"]
            );
            if matches!(violation["impact"].as_str(), Some("serious" | "critical")) {
                serious.push(format!("{}: {}", report["state"], violation));
            }
        }
    }
    assert!(
        serious.is_empty(),
        "serious or critical accessibility violations:\n{}",
        serious.join("\n")
    );
}
