//! The command line as an admin meets it: bad flags, config files, health, dialplan check.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use support::{Server, TempDir, binary, repo};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = support::amtsleitung()
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_flag_is_one_line_naming_it_with_exit_2() {
    let (code, _, err) = run(&["serve", "--sip-lsten", "1.2.3.4:5060"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(err.contains("--sip-lsten"), "{err}");
}

#[test]
fn bad_values_name_the_flag_with_exit_2() {
    for (flag, value) in [
        ("--sip-listen", "nonsense"),
        ("--media-ip", "300.1.1.1"),
        ("--rtp-ports", "30000-20000"),
        ("--http-listen", "localhost"),
        ("--log-format", "xml"),
        ("--mixer", "fast"),
        ("--srtp", "on"),
    ] {
        let (code, _, err) = run(&["serve", flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
        assert!(err.contains(flag), "{flag} not named: {err}");
    }
}

#[test]
fn config_file_with_a_wrong_srtp_word_is_refused_naming_file_line_and_the_words() {
    let dir = TempDir::new("cfg-srtp");
    let path = dir.path().join("amtsleitung.toml");
    std::fs::write(
        &path,
        "sip-listen = \"127.0.0.1:5099\"\nsrtp = \"always\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("amtsleitung.toml:2")
            && err.contains("'always'")
            && err.contains("expected off, optional or required"),
        "{err}"
    );
}

#[test]
fn config_file_with_unknown_key_is_refused_naming_file_and_key() {
    let dir = TempDir::new("cfg");
    let path = dir.path().join("amtsleitung.toml");
    std::fs::write(
        &path,
        "sip-listen = \"127.0.0.1:5099\"\nrtp-prots = \"1-2\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("amtsleitung.toml:2") && err.contains("rtp-prots"),
        "{err}"
    );
}

/// Prometheus text as a scraper reads it: every sample belongs to a family with one HELP
/// and one TYPE line before its samples, no family twice, no sample twice, every value a
/// number; and the figures every deployment alerts on are there from the start, at 0.
fn assert_valid_exposition(response: &str) {
    let body = response
        .split_once("\r\n\r\n")
        .map_or(response, |(_, body)| body);
    let mut described: std::collections::HashMap<&str, (bool, Option<&str>)> =
        std::collections::HashMap::new();
    let mut samples = std::collections::HashSet::new();
    for line in body.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            let entry = described.entry(name).or_default();
            assert!(!entry.0, "HELP twice for {name}:\n{body}");
            entry.0 = true;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let entry = described.entry(name).or_default();
            assert!(entry.1.is_none(), "TYPE twice for {name}:\n{body}");
            entry.1 = Some(kind);
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "not a number: {line}");
            assert!(samples.insert(series), "sample twice: {series}\n{body}");
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    (described.get(base)?.1 == Some("histogram")).then_some(base)
                })
                .unwrap_or(name);
            let (help, kind) = described.get(family).copied().unwrap_or_default();
            assert!(
                help && kind.is_some(),
                "{name} has no HELP or TYPE before it"
            );
            assert_eq!(
                kind == Some("counter"),
                name.ends_with("_total"),
                "{line}: counters and only counters end in _total"
            );
        }
    }
    for figure in [
        "amtsleitung_calls_total{result=\"refused\"} 0",
        "amtsleitung_registrations_total 0",
        "amtsleitung_auth_failures_total 0",
        "amtsleitung_registered_contacts 0",
        "amtsleitung_calls_refused_cost_total{limit=\"user\"} 0",
        "amtsleitung_webrtc_sessions{kind=\"page\"} 0",
        "amtsleitung_rtp_packets_received_total 0",
    ] {
        assert!(
            body.lines().any(|line| line == figure),
            "{figure} missing:\n{body}"
        );
    }
}

#[test]
fn health_endpoint_answers_ok() {
    let server = Server::start(None, &["--log-format", "json"]);
    let mut stream = TcpStream::connect(server.http).unwrap();
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    // Metrics: the media ticks run and are timed.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut stream = TcpStream::connect(server.http).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut metrics = String::new();
    stream.read_to_string(&mut metrics).unwrap();
    let ticks: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("amtsleitung_media_tick_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(ticks >= 10, "media ticks not counted:\n{metrics}");
    assert!(
        metrics.contains("amtsleitung_media_late_ticks_total"),
        "{metrics}"
    );
    assert_valid_exposition(&metrics);
    // JSON logs: every line the server wrote parses as a JSON object.
    let log = server.log();
    assert!(!log.is_empty());
    for line in log.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON log line: {line}"
        );
    }
}

#[test]
fn shipped_dialplan_checks_clean() {
    let (code, out, err) = run(&["dialplan", "check", "dialplans"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("valid"), "{out}");
}

#[test]
fn broken_dialplan_is_refused_with_location_and_exit_1() {
    let dir = TempDir::new("badplan");
    std::fs::write(
        dir.path().join("broken.toml"),
        "[[rule]]\nname = \"x\"\nmatch = \"600\"\nactions = [ { dance = {} } ]\n",
    )
    .unwrap();
    let (code, out, _) = run(&["dialplan", "check", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken.toml:4:"), "no file:line: {out}");
    assert!(out.contains("dance"), "unknown action not named: {out}");
}

#[test]
fn serve_without_arguments_runs_on_embedded_defaults() {
    // In a private namespace so 5060 and 8080 are free; from a directory that has only the
    // shipped dialplans and sounds, as after a fresh checkout.
    let ns = support::Netns::new();
    let cwd = TempDir::new("defaults");
    std::os::unix::fs::symlink(repo().join("dialplans"), cwd.path().join("dialplans")).unwrap();
    std::os::unix::fs::symlink(repo().join("sounds"), cwd.path().join("sounds")).unwrap();
    let mut child = ns
        .command(binary().to_str().unwrap())
        .arg("serve")
        .current_dir(cwd.path())
        .env("AMT_CONFIG", support::empty_config())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let health_ok = support::wait_until(std::time::Duration::from_secs(20), || {
        let out = ns
            .command("bash")
            .args([
                "-c",
                "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("\"status\":\"ok\"")
    });
    let sip = support::sipp(
        Some(&ns),
        &[
            "-sf",
            &support::scenario("options.xml"),
            "-i",
            "10.99.0.2",
            "-p",
            "5070",
            "-m",
            "1",
            "10.99.0.1:5060",
        ],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(health_ok, "no /health on 127.0.0.1:8080");
    assert!(sip.status.success(), "no 200 to OPTIONS on 0.0.0.0:5060");
    assert!(
        cwd.path().join("data/amtsleitung.db").exists(),
        "no SQLite database in ./data"
    );
}

fn http_post(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn dialplan_history_and_rollback_restore_an_earlier_plan() {
    let plans = TempDir::new("history-plans");
    let file = plans.path().join("main.toml");
    let v1 = "[[rule]]\nname = \"first\"\nmatch = \"600\"\nactions = [ \"answer\", \"echo\" ]\n";
    let v2 = "[[rule]]\nname = \"second\"\nmatch = \"700\"\nactions = [ \"answer\", \"echo\" ]\n";
    std::fs::write(&file, v1).unwrap();
    let server = Server::start(None, &["--dialplans", plans.path().to_str().unwrap()]);
    let data = server.data_dir().to_str().unwrap().to_string();

    // Admin API reload of an unchanged plan: accepted, same version.
    let reply = http_post(server.http, "/dialplan/reload");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"version\":1"), "{reply}");

    // A broken file through the API: 422 with the location, version unchanged.
    std::fs::write(
        &file,
        "[[rule]]\nmatch = \"600\"\nactions = [ \"dance\" ]\n",
    )
    .unwrap();
    let reply = http_post(server.http, "/dialplan/reload");
    assert!(reply.starts_with("HTTP/1.1 422"), "{reply}");
    assert!(reply.contains("main.toml:3:"), "{reply}");

    std::fs::write(&file, v2).unwrap();
    assert!(
        support::wait_until(std::time::Duration::from_secs(5), || {
            server.log().contains("version=2")
        }),
        "edited plan not reloaded\n{}",
        server.log()
    );
    let (code, out, err) = run(&["dialplan", "history", "--data-dir", &data]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(['1', '2']))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");

    let (code, out, err) = run(&[
        "dialplan",
        "rollback",
        "1",
        "--data-dir",
        &data,
        "--dialplans",
        plans.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), v1);
    assert!(out.contains("as version 3"), "{out}");
    let (code, audit, err) = run(&["audit", "list", "--data-dir", &data]);
    assert_eq!(code, 0, "{err}");
    assert!(
        audit.contains("dialplan.rollback") && audit.contains("dialplan version 1 written to"),
        "{audit}"
    );
    // The server reloads the rolled-back files; the history says it was a rollback (before,
    // the reload recorded it as a "file change") and has no second entry for it.
    assert!(
        support::wait_until(std::time::Duration::from_secs(5), || {
            server.log().contains("version=3")
        }),
        "rolled-back plan not reloaded\n{}",
        server.log()
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (code, out, err) = run(&["dialplan", "history", "--data-dir", &data]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(['1', '2', '3', '4']))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[0].trim_start().starts_with('3') && rows[0].contains("rollback to version 1 by"),
        "{out}"
    );

    // A stored version is shown whole, and two are compared line by line.
    let (code, out, err) = run(&["dialplan", "show", "2", "--data-dir", &data]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("# main.toml\n{v2}"));
    let (code, out, err) = run(&["dialplan", "diff", "1", "2", "--data-dir", &data]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "--- version 1/main.toml",
        "+++ version 2/main.toml",
        "-name = \"first\"",
        "+name = \"second\"",
        "-match = \"600\"",
        "+match = \"700\"",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    }
    let (code, out, _) = run(&["dialplan", "diff", "1", "3", "--data-dir", &data]);
    assert_eq!(code, 0);
    assert!(out.contains("are the same"), "{out}");

    let (code, _, err) = run(&["dialplan", "rollback", "99", "--data-dir", &data]);
    assert_eq!(code, 1);
    assert!(err.contains("no dialplan version 99"), "{err}");
    let (code, _, err) = run(&["dialplan", "show", "99", "--data-dir", &data]);
    assert_eq!(code, 1);
    assert!(err.contains("no dialplan version 99"), "{err}");
}

#[test]
fn dialplan_explain_shows_how_the_trunk_normalises_the_numbers_before_routing() {
    let dir = TempDir::new("explain-trunk");
    let trunks = dir.path().join("trunks.toml");
    std::fs::write(
        &trunks,
        "[numbering]\narea-code = \"711\"\n[[trunk]]\nname = \"carrier\"\nmode = \"ip\"\n\
         allowed-sources = [\"192.0.2.5\"]\nproxy = \"sip:192.0.2.5\"\nmax-calls = 2\n\
         emergency = true\n[trunk.numbers]\nbase-number = \"+49 711 12345\"\nextension-digits = 3\n",
    )
    .unwrap();
    let plans = support::plans_with(
        "explain-trunk-plans",
        "[[rule]]\nname = \"DID to extension\"\nmatch = \"/^\\\\+4971112345(\\\\d{3})$/\"\ntrunk = \"carrier\"\nactions = [ { dial = \"${1}\" } ]\n",
    );
    let trunks = trunks.to_str().unwrap();
    let plans = plans.path().to_str().unwrap();
    let explain = |to: &str, trunks_file: &str| {
        run(&[
            "dialplan",
            "explain",
            "--to",
            to,
            "--from",
            "0301234567",
            "--trunk",
            "carrier",
            "--trunks",
            trunks_file,
            "--dialplans",
            plans,
        ])
    };
    // The carrier delivers the DID with only its extension digits.
    let (code, out, err) = explain("101", trunks);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("trunk carrier: called \"101\""), "{out}");
    assert!(out.contains("=> +4971112345101"), "{out}");
    assert!(out.contains("=> +49301234567"), "{out}");
    assert!(out.contains("\"DID to extension\""), "{out}");
    assert!(out.contains("Call to +4971112345101"), "{out}");

    let (code, _, err) = explain("101", "/nonexistent/trunks.toml");
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read /nonexistent/trunks.toml"),
        "{err}"
    );
}

/// Runs the binary in `cwd` with `AMT_CONFIG` set as given (or removed).
fn run_in(
    cwd: &std::path::Path,
    config_env: Option<&std::path::Path>,
    args: &[&str],
) -> (i32, String, String) {
    let mut command = Command::new(binary());
    command.current_dir(cwd).args(args);
    match config_env {
        Some(path) => command.env("AMT_CONFIG", path),
        None => command.env_remove("AMT_CONFIG"),
    };
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An admin creates a room where the config lives and lists it from anywhere else: both
/// commands act on the store the config names (relative to the config file, not to where the
/// command was typed), say which store that is, and leave no stray database behind. Before,
/// `cd /tmp && amtsleitung room list` made an empty /tmp/data/amtsleitung.db and said "no
/// rooms".
#[test]
fn offline_commands_act_on_the_configured_store_from_any_directory() {
    let etc = TempDir::new("cfg-etc");
    let elsewhere = TempDir::new("cfg-elsewhere");
    let config = etc.path().join("amtsleitung.toml");
    std::fs::write(&config, "data-dir = \"state\"\n").unwrap();
    let database = etc.path().join("state/amtsleitung.db");

    // ./amtsleitung.toml in the working directory is found.
    let (code, out, err) = run_in(
        etc.path(),
        None,
        &["room", "create", "4711", "--pin", "2468"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        database.exists(),
        "no store at {}: {err}",
        database.display()
    );
    assert!(
        err.contains(&database.display().to_string()),
        "store not named: {err}"
    );

    // $AMT_CONFIG from another directory, and --config, reach the same store.
    let (code, out, err) = run_in(elsewhere.path(), Some(&config), &["room", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("4711"),
        "room not listed via $AMT_CONFIG: {out}{err}"
    );
    assert!(err.contains(&database.display().to_string()), "{err}");
    let (code, out, err) = run_in(
        elsewhere.path(),
        None,
        &["room", "list", "--config", config.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("4711"),
        "room not listed via --config: {out}{err}"
    );
    assert!(
        !elsewhere.path().join("data").exists() && !elsewhere.path().join("state").exists(),
        "a store was made where the command was typed"
    );

    // A config file named but missing is an error naming it, not the defaults.
    let missing = elsewhere.path().join("nope.toml");
    let (code, _, err) = run_in(elsewhere.path(), Some(&missing), &["room", "list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.toml"), "{err}");
}

/// `dialplan check` where the prompts cannot be found used to skip the prompt checks and call
/// a plan valid whose prompts callers would never hear. Now a prompt directory that was
/// named must exist, and without one the plan is checked against the built-in prompts.
#[test]
fn dialplan_check_always_checks_the_prompts() {
    let empty = TempDir::new("cfg-noprompts");
    let plans = repo().join("dialplans");
    let (code, out, err) = run_in(
        empty.path(),
        Some(support::empty_config()),
        &[
            "dialplan",
            "check",
            plans.to_str().unwrap(),
            "--sounds",
            "/nonexistent-prompts",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("cannot read sounds directory /nonexistent-prompts"),
        "{err}"
    );
    assert!(!out.contains("is valid"), "{out}");
    // No prompt directory here and none named: the built-in prompts are the ones checked.
    let (code, out, err) = run_in(
        empty.path(),
        Some(support::empty_config()),
        &["dialplan", "check", plans.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("is valid"), "{out}");
    let broken = support::plans_with(
        "noprompts-plan",
        "[[rule]]\nname = \"x\"\nmatch = \"700\"\nactions = [ \"answer\", { play = \"no-such-prompt\" } ]\n",
    );
    let (code, out, err) = run_in(
        empty.path(),
        Some(support::empty_config()),
        &["dialplan", "check", broken.path().to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("sound \"no-such-prompt\" does not exist"),
        "{out}"
    );
}

/// A fatal error at start is said once (it used to come once from the log and once more
/// from main).
#[test]
fn serve_refuses_a_plan_that_plays_a_prompt_that_does_not_exist() {
    let empty = TempDir::new("cfg-missing-prompt");
    let plans = support::plans_with(
        "missing-prompt-plan",
        "[[rule]]\nname = \"x\"\nmatch = \"700\"\nactions = [ \"answer\", { play = \"no-such-prompt\" } ]\n",
    );
    let (code, out, err) = run_in(
        empty.path(),
        Some(support::empty_config()),
        &[
            "serve",
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--dialplans",
            plans.path().to_str().unwrap(),
            "--data-dir",
            empty.path().join("data").to_str().unwrap(),
        ],
    );
    assert_ne!(
        code, 0,
        "serve started on a plan whose prompt is missing: {out}{err}"
    );
    assert!(
        err.contains("sound \"no-such-prompt\" does not exist"),
        "{err}"
    );
}

#[test]
fn serve_says_a_fatal_error_once() {
    let empty = TempDir::new("cfg-once");
    let (code, out, err) = run_in(
        empty.path(),
        Some(support::empty_config()),
        &[
            "serve",
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--sounds",
            "/nonexistent-prompts",
        ],
    );
    assert_ne!(code, 0, "{out}{err}");
    assert_eq!(
        err.matches("cannot read sounds directory /nonexistent-prompts")
            .count(),
        1,
        "{err}"
    );
}

/// A data directory the server's user cannot write is one line that names it and says
/// "Permission denied", for the offline commands and for `serve`; before, SQLite's "unable to
/// open database file" came three times with "Error code 14". Run as `nobody` (the tests run
/// as root, which may write anywhere) against a directory owned by root.
#[test]
fn an_unwritable_data_directory_is_named_with_the_cause_once() {
    let data = TempDir::new("cfg-readonly");
    let dir = data.path().to_str().unwrap();
    let as_nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(binary())
            .args(args)
            .current_dir("/")
            .env_remove("AMT_CONFIG")
            .output()
            .expect("setpriv (util-linux)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let said = format!("cannot write in data directory {dir}: Permission denied");
    let (code, err) = as_nobody(&["room", "create", "4711", "--data-dir", dir]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&said), "{err}");
    assert!(!err.contains("unable to open database file"), "{err}");

    let (dialplans, sounds) = (repo().join("dialplans"), repo().join("sounds"));
    let (code, err) = as_nobody(&[
        "serve",
        "--sip-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--data-dir",
        dir,
        "--dialplans",
        dialplans.to_str().unwrap(),
        "--sounds",
        sounds.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{err}");
    assert_eq!(err.matches(&said).count(), 1, "{err}");
    assert!(!err.contains("Error code 14"), "{err}");
}

/// `serve --help` says what each flag is when left out (it showed no defaults before).
#[test]
fn serve_help_shows_the_defaults() {
    let (code, out, err) = run(&["serve", "--help"]);
    assert_eq!(code, 0, "{err}");
    for default in [
        "[default: 0.0.0.0:5060]",
        "[default: 20000-29999]",
        "[default: 127.0.0.1:8080]",
        "[default: data, in the working directory]",
        "[default: sounds, in the working directory]",
        "[default: text]",
        "[default: shared]",
        "[default: optional]",
    ] {
        assert!(out.contains(default), "no {default} in:\n{out}");
    }
}

/// Actions the dialplan knows but this version cannot run yet (a call reaching one is refused
/// with 501) pass `check` with a warning at each, not silently.
#[test]
fn dialplan_check_warns_about_actions_that_cannot_run_yet() {
    let plans = support::plans_with(
        "not-yet-plans",
        "[[rule]]\nname = \"menu\"\nmatch = \"700\"\nactions = [ \"answer\", { menu = { prompt = \"welcome\", options = { \"1\" = [ { goto = \"600\" } ] } } } ]\n",
    );
    let (code, out, err) = run(&["dialplan", "check", plans.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for name in ["menu", "goto"] {
        assert!(
            out.contains(&format!(
                "warning: `{name}` cannot run in this version yet: a call that reaches it is refused (501)"
            )),
            "no warning for {name}:\n{out}"
        );
    }
    assert!(!out.contains("`answer` cannot run"), "{out}");
}

/// Splits a documented command line as a shell would for these examples: words separated by
/// spaces, double quotes grouping.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Every `$ amtsleitung ...` example in the town-hall README runs as printed from the
/// repository root and prints exactly the output shown under it (the README once showed a
/// command line the CLI refused, with paths it does not print).
#[test]
fn documented_explain_commands_print_what_the_readme_shows() {
    let readme =
        std::fs::read_to_string(repo().join("dialplans/examples/townhall/README.md")).unwrap();
    let mut examples = 0;
    for block in readme.split("```text\n").skip(1) {
        let block = block.split("```").next().unwrap_or("");
        let Some((command, shown)) = block.split_once('\n') else {
            continue;
        };
        let Some(command) = command.strip_prefix("$ amtsleitung ") else {
            continue;
        };
        let args = shell_words(command);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "$ amtsleitung {command}\n{err}");
        assert_eq!(out, shown, "$ amtsleitung {command}");
        examples += 1;
    }
    assert_eq!(examples, 3, "the README's three explain examples");
}

/// `amtsleitung dialplan explain ... | head -1`: the closed pipe ends the command quietly,
/// as for any Unix tool (it panicked in `println!` before).
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let mut child = support::amtsleitung()
        .current_dir(repo())
        .args(["dialplan", "explain", "--to", "81234"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// From an empty directory (a fresh clone's binary run anywhere), `serve` uses the prompts
/// and the default dialplan built into it: the echo test answers and echoes. Before, it
/// stopped with "cannot read sounds directory sounds".
#[test]
fn serve_from_an_empty_directory_runs_on_the_built_in_prompts_and_plan() {
    let ns = support::Netns::new();
    let cwd = TempDir::new("empty-cwd");
    let mut child = ns
        .command(binary().to_str().unwrap())
        .arg("serve")
        .current_dir(cwd.path())
        .env("AMT_CONFIG", support::empty_config())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let writer = log.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let mut log = writer.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let text = || log.lock().unwrap().clone();
    let ready = support::wait_until(std::time::Duration::from_secs(20), || {
        text().contains("is ready")
    });
    let calls = TempDir::new("empty-cwd-call");
    let scenario = support::pcmu_call_scenario(&calls);
    let echo = support::PacketCounter::any_source(&ns, 6000);
    let call = support::sipp_call_spawn(&ns, &scenario, "600", 5070, 6000, 2000).wait();
    let _ = child.kill();
    let _ = child.wait();
    let log = text();
    assert!(ready, "the server did not start:\n{log}");
    assert!(log.contains("using the built-in prompts"), "{log}");
    assert!(log.contains("built-in default plan"), "{log}");
    assert!(
        call.is_ok_and(|status| status.success()),
        "the echo call failed\n{log}"
    );
    assert!(
        echo.packets() > 20,
        "no echo: {} packets\n{log}",
        echo.packets()
    );
}
