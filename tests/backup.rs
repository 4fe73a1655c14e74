//! `amtsleitung backup` during a live conference, and `amtsleitung calls list` for admins
//! without a web console: the copy is a sound database holding the rooms and call records.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Netns, Server, TempDir, config_trusting, wait_until};

const CLIENT_IP: &str = "10.99.0.2";

fn amtsleitung(args: &[&str]) -> (i32, String, String) {
    let out = support::amtsleitung()
        .args(args)
        .env_remove("AMT_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sqlite(file: &std::path::Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(file)
        .arg(sql)
        .output()
        .expect("sqlite3 (apt-get install sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn backup_during_a_live_conference_is_a_sound_copy_and_calls_list_shows_the_calls() {
    let ns = Netns::new();
    let data = TempDir::new("backup-data");
    let dir = data.path().to_str().unwrap().to_string();
    let (code, out, err) = amtsleitung(&["room", "create", "4711", "--data-dir", &dir]);
    assert_eq!(code, 0, "{out}{err}");
    let config_dir = TempDir::new("backup-config");
    let config = config_trusting(&config_dir, &format!("{CLIENT_IP}/32"));
    let server = Server::start_with_data(Some(&ns), &["--config", &config], data);
    let calls = TempDir::new("backup-calls");
    let scenario = support::pcmu_call_scenario(&calls);
    let call = |number: &str, port: u16, media: u16, millis: u32| {
        support::sipp_call_spawn(&ns, &scenario, number, port, media, millis)
    };

    // A finished call (the echo test) and one that cannot be routed (404), then a caller who
    // stays in room 4711 while the backup is taken.
    assert!(
        call("600", 5070, 6000, 300).wait().unwrap().success(),
        "{}",
        server.log()
    );
    let _ = call("4242", 5072, 6100, 300).wait();
    assert!(
        wait_until(Duration::from_secs(3), || {
            amtsleitung(&["calls", "list", "--since", "2000-01-01", "--data-dir", &dir])
                .1
                .contains("2 calls")
        }),
        "{}",
        server.log()
    );
    let mut live = call("84711", 5074, 6200, 6000);
    assert!(
        wait_until(Duration::from_secs(5), || server
            .log()
            .contains("joining conference")),
        "the caller never joined the room\n{}",
        server.log()
    );

    let backups = TempDir::new("backup-out");
    let copy = backups.path().join("amtsleitung-backup.db");
    let (code, out, err) = amtsleitung(&["backup", copy.to_str().unwrap(), "--data-dir", &dir]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 rooms, 2 call records"), "{out}");
    assert_eq!(sqlite(&copy, "PRAGMA integrity_check"), "ok");
    assert_eq!(sqlite(&copy, "SELECT number FROM room"), "4711");
    assert_eq!(sqlite(&copy, "SELECT count(*) FROM call_record"), "2");
    // A second backup to the same file is refused, not written over.
    let (code, _, err) = amtsleitung(&["backup", copy.to_str().unwrap(), "--data-dir", &dir]);
    assert_eq!(code, 1);
    assert!(err.contains("exists"), "{err}");

    assert!(
        live.wait().unwrap().success(),
        "the live call was dropped\n{}",
        server.log()
    );
    let (code, out, err) = amtsleitung(&[
        "calls",
        "list",
        "--since",
        "2000-01-01",
        "--csv",
        "--data-dir",
        &dir,
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("call_id,started_utc,"), "{out}");
    let callee_and_status = |line: &str| {
        let fields: Vec<&str> = line.split(',').collect();
        (fields[4].to_string(), fields[6].to_string())
    };
    let rows: Vec<(String, String)> = lines[1..].iter().map(|l| callee_and_status(l)).collect();
    assert_eq!(
        rows,
        [
            ("600".to_string(), "200".to_string()),
            ("4242".to_string(), "404".to_string()),
            ("84711".to_string(), "200".to_string())
        ],
        "{out}"
    );
}
