//! `amtsleitung account ...` and `amtsleitung audit list` as an admin uses them: the real
//! binary against a data directory, passwords on standard input, and the store read back
//! through its own API to see what was really written.

mod support;

use std::path::Path;

use store::{ConsoleRole, Store};
use support::TempDir;

/// The passwords and PINs of this test: none may ever appear in what the commands print.
const ANNA_PASSWORD: &str = "korrekt-pferd-batterie";
const ANNA_NEW_PASSWORD: &str = "neues-langes-passwort";
const OTTO_PASSWORD: &str = "heftklammer-42";
const ROOM_PIN: &str = "24681357";
const MODERATOR_PIN: &str = "97531864";
const PHONE_PASSWORD: &str = "telefon-geheimnis";

/// Runs `amtsleitung COMMAND --data-dir DATA ARGS` as unix user `pat` with `stdin` piped in;
/// exit code, stdout, stderr.
fn run_with_stdin(data: &Path, command: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut run = support::amtsleitung();
    run.arg(command)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("SUDO_USER")
        .env("USER", "pat");
    support::run_with_stdin(run, stdin)
}

/// An `account` command that must succeed; its stdout.
fn account_ok(data: &Path, args: &[&str], stdin: &str) -> String {
    let (code, out, err) = run_with_stdin(data, "account", args, stdin);
    assert_eq!(code, 0, "{args:?} failed: {err}");
    assert_eq!(err, "", "{args:?} wrote to stderr");
    out
}

/// A command that must fail with `exit` and one line on stderr; that line.
fn refused(data: &Path, command: &str, args: &[&str], stdin: &str, exit: i32) -> String {
    let (code, out, err) = run_with_stdin(data, command, args, stdin);
    assert_eq!(
        code, exit,
        "{args:?}: exit {code}, stdout {out:?}, stderr {err:?}"
    );
    assert_eq!(out, "", "{args:?} printed on stdout too");
    assert!(err.starts_with("amtsleitung: "), "{err}");
    assert_eq!(err.lines().count(), 1, "more than one line: {err}");
    err
}

fn names(store: &Store) -> Vec<String> {
    store
        .console_account_list()
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect()
}

#[test]
fn accounts_are_added_listed_changed_disabled_and_deleted_with_passwords_from_stdin() {
    let dir = TempDir::new("console-accounts");
    let data = dir.path().join("data");

    assert_eq!(
        account_ok(
            &data,
            &["add", "anna", "--role", "admin"],
            &format!("{ANNA_PASSWORD}\n")
        ),
        "console account anna (admin) added\n"
    );
    assert_eq!(
        account_ok(
            &data,
            &["add", "otto.k", "--role", "staff", "--extension", "101"],
            OTTO_PASSWORD
        ),
        "console account otto.k (staff, extension 101) added\n"
    );
    assert_eq!(
        account_ok(&data, &["list"], ""),
        "NAME    ROLE   EXTENSION  ORIGIN  DISABLED\n\
         anna    admin  -          local   no\n\
         otto.k  staff  101        local   no\n"
    );
    let store = Store::open(&data).unwrap();
    assert!(
        store
            .console_account_verify("otto.k", OTTO_PASSWORD)
            .unwrap()
            .is_some()
    );

    // A new password ends the account's sessions.
    let session = store.console_session_create("anna", "10.8.0.7", 0).unwrap();
    assert_eq!(
        account_ok(
            &data,
            &["passwd", "anna"],
            &format!("{ANNA_NEW_PASSWORD}\r\n")
        ),
        "password of console account anna changed; its console session ended\n"
    );
    assert_eq!(
        store
            .console_session_get(&session.token, 1, i64::MAX)
            .unwrap(),
        None
    );
    assert_eq!(
        store.console_account_verify("anna", ANNA_PASSWORD).unwrap(),
        None
    );
    let anna = store
        .console_account_verify("anna", ANNA_NEW_PASSWORD)
        .unwrap()
        .unwrap();
    assert_eq!(anna.role, ConsoleRole::Admin);

    // Disabled: listed as such, cannot log in, its sessions end; enabled again: can.
    let session = store
        .console_session_create("otto.k", "10.8.0.8", 0)
        .unwrap();
    assert_eq!(
        account_ok(&data, &["disable", "otto.k"], ""),
        "console account otto.k disabled; its console sessions ended\n"
    );
    assert!(account_ok(&data, &["list"], "").contains("otto.k  staff  101        local   yes\n"));
    assert_eq!(
        store
            .console_account_verify("otto.k", OTTO_PASSWORD)
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .console_session_get(&session.token, 1, i64::MAX)
            .unwrap(),
        None
    );
    assert_eq!(
        account_ok(&data, &["enable", "otto.k"], ""),
        "console account otto.k enabled\n"
    );
    assert!(
        store
            .console_account_verify("otto.k", OTTO_PASSWORD)
            .unwrap()
            .is_some()
    );

    assert_eq!(
        account_ok(&data, &["del", "otto.k"], ""),
        "console account otto.k deleted\n"
    );
    assert_eq!(names(&store), ["anna"]);
    for command in ["del", "disable", "enable", "passwd"] {
        assert_eq!(
            refused(&data, "account", &[command, "otto.k"], OTTO_PASSWORD, 1),
            "amtsleitung: no console account otto.k\n",
            "{command}"
        );
    }
}

#[test]
fn bad_input_is_refused_with_one_clear_line_and_stores_nothing() {
    let dir = TempDir::new("console-accounts-bad");
    let data = dir.path().join("data");
    let add = |args: &[&str], stdin: &str, exit: i32| {
        let mut all = vec!["add"];
        all.extend_from_slice(args);
        refused(&data, "account", &all, stdin, exit)
    };

    // Checked before anything is read or a database made.
    assert_eq!(
        add(
            &["otto", "--role", "staff", "--extension", "1x"],
            OTTO_PASSWORD,
            1
        ),
        "amtsleitung: extension \"1x\" must be 2 to 15 digits 0-9\n"
    );
    assert_eq!(
        add(&["Otto", "--role", "staff"], OTTO_PASSWORD, 1),
        "amtsleitung: console account name \"Otto\" must be 1 to 64 characters a-z, 0-9, '.', '_' or '-' (lower-case)\n"
    );
    let wrong_role = add(&["otto", "--role", "boss"], OTTO_PASSWORD, 2);
    assert!(
        wrong_role.contains("'boss'") && wrong_role.contains("must be admin or staff"),
        "{wrong_role}"
    );
    assert!(!data.exists(), "a refused command made a database");

    let short = add(&["otto", "--role", "staff"], "geheim\n", 1);
    assert_eq!(
        short,
        "amtsleitung: console password has 6 characters; at least 10 are needed\n"
    );
    let empty = add(&["otto", "--role", "staff"], "", 1);
    assert!(
        empty.contains("no password for console account otto on standard input"),
        "{empty}"
    );
    assert_eq!(
        add(&["otto", "--role", "staff"], "\n", 1),
        empty,
        "an empty line is no password either"
    );
    assert!(!data.exists(), "a refused command made a database");

    account_ok(&data, &["add", "otto", "--role", "staff"], OTTO_PASSWORD);
    assert_eq!(
        add(&["otto", "--role", "admin"], ANNA_PASSWORD, 1),
        "amtsleitung: console account otto already exists\n"
    );
    assert_eq!(
        refused(&data, "account", &["passwd", "otto"], "kurz\n", 1),
        "amtsleitung: console password has 4 characters; at least 10 are needed\n"
    );
    let store = Store::open(&data).unwrap();
    assert_eq!(names(&store), ["otto"]);
    let otto = store.console_account_get("otto").unwrap().unwrap();
    assert_eq!(otto.role, ConsoleRole::Staff, "the first stays");
    assert!(
        store
            .console_account_verify("otto", OTTO_PASSWORD)
            .unwrap()
            .is_some(),
        "the refused password did not replace the old one"
    );
}

#[test]
fn cli_changes_appear_in_the_audit_log_with_the_cli_actor_and_no_secrets() {
    let dir = TempDir::new("console-audit");
    let data = dir.path().join("data");

    let (code, _, err) = run_with_stdin(
        &data,
        "room",
        &[
            "create",
            "4711",
            "--pin",
            ROOM_PIN,
            "--moderator-pin",
            MODERATOR_PIN,
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    account_ok(
        &data,
        &["add", "anna", "--role", "staff", "--extension", "101"],
        ANNA_PASSWORD,
    );
    account_ok(&data, &["passwd", "anna"], ANNA_NEW_PASSWORD);
    let (code, out, err) = run_with_stdin(&data, "room", &["owner", "4711", "anna"], "");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "room 4711 is run by console account anna\n", "")
    );
    let (code, _, err) = run_with_stdin(
        &data,
        "user",
        &["add", "102", "--name", "IT", "--password", "-"],
        PHONE_PASSWORD,
    );
    assert_eq!(code, 0, "{err}");

    let (code, listed, err) = run_with_stdin(&data, "audit", &["list"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 6, "{listed}");
    assert!(lines[0].starts_with("TIME "), "{listed}");
    // Newest first; each row: date, time, actor, source, action, detail.
    let rows: Vec<Vec<&str>> = lines[1..]
        .iter()
        .map(|line| line.split_whitespace().collect())
        .collect();
    let actions: Vec<&str> = rows.iter().map(|cells| cells[4]).collect();
    assert_eq!(
        actions,
        [
            "user.add",
            "room.owner",
            "account.passwd",
            "account.add",
            "room.create"
        ],
        "{listed}"
    );
    for cells in &rows {
        assert_eq!(&cells[2..4], ["cli:pat", "cli"], "{listed}");
    }
    assert!(
        listed.contains("room 4711 (PIN set, moderator PIN set, up to 50 participants)"),
        "{listed}"
    );
    assert!(
        listed.contains("console account anna (staff, extension 101)"),
        "{listed}"
    );
    assert!(listed.contains("user 102 (IT)"), "{listed}");
    for secret in [
        ROOM_PIN,
        MODERATOR_PIN,
        ANNA_PASSWORD,
        ANNA_NEW_PASSWORD,
        PHONE_PASSWORD,
        "korrekt",
        "2468",
    ] {
        assert!(!listed.contains(secret), "{secret:?} in:\n{listed}");
    }

    // Filters: by actor, by time, how many.
    let (_, mine, _) = run_with_stdin(
        &data,
        "audit",
        &["list", "--actor", "cli:pat", "--limit", "2"],
        "",
    );
    assert_eq!(mine.lines().count(), 3, "{mine}");
    assert!(
        mine.contains("user.add") && mine.contains("room.owner"),
        "{mine}"
    );
    let (_, others, _) = run_with_stdin(&data, "audit", &["list", "--actor", "cli:root"], "");
    assert_eq!(others, "no changes recorded\n");
    let (_, since, _) = run_with_stdin(&data, "audit", &["list", "--since", "2000-01-01"], "");
    assert_eq!(since.lines().count(), 6, "{since}");
    let (_, future, _) = run_with_stdin(&data, "audit", &["list", "--since", "99999999999999"], "");
    assert_eq!(future, "no changes recorded\n");
    assert_eq!(
        refused(&data, "audit", &["list", "--since", "yesterday"], "", 1),
        "amtsleitung: --since \"yesterday\": write \"YYYY-MM-DD\", \"YYYY-MM-DD HH:MM\" or unix milliseconds\n"
    );

    // The store holds the same, actor and source as the CLI wrote them.
    let store = Store::open(&data).unwrap();
    let records = store.audit_list(None, None, 10).unwrap();
    assert_eq!(records.len(), 5);
    assert!(
        records
            .iter()
            .all(|r| r.actor == "cli:pat" && r.source == "cli"),
        "{records:?}"
    );
}
