//! `amtsleitung user ...` as an admin uses it: the real binary against a data directory, with
//! the store read back through its own API to see what was really written.

mod support;

use std::path::Path;

use store::{Binding, DEFAULT_DOMAIN, Store};
use support::TempDir;

/// Runs the binary with `args` (and `stdin` piped in); exit code, stdout, stderr.
fn run_with_stdin(data: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let out = support::output_with_stdin(
        support::amtsleitung()
            .arg("user")
            .arg("--data-dir")
            .arg(data)
            .args(args),
        stdin,
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(data: &Path, args: &[&str]) -> (i32, String, String) {
    run_with_stdin(data, args, "")
}

/// Runs a command that must succeed and returns its stdout.
fn ok(data: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(data, args);
    assert_eq!(code, 0, "{args:?} failed: {err}");
    assert_eq!(err, "", "{args:?} wrote to stderr");
    out
}

/// Runs a command that must fail with exit 1 and one message, and returns that message.
fn fails(data: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(data, args);
    assert_eq!(
        code, 1,
        "{args:?}: exit {code}, stdout {out:?}, stderr {err:?}"
    );
    assert_eq!(out, "", "{args:?} printed on stdout too");
    assert!(err.starts_with("amtsleitung: "), "{err}");
    assert_eq!(err.matches("amtsleitung: ").count(), 1, "said twice: {err}");
    err
}

fn extensions(store: &Store) -> Vec<String> {
    store
        .user_list(DEFAULT_DOMAIN)
        .unwrap()
        .into_iter()
        .map(|u| u.extension)
        .collect()
}

/// `add EXTENSION --name NAME --password geheim123` and then `extra` (a setting to try).
fn add_args<'a>(extension: &'a str, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["add", extension, "--name", name, "--password", "geheim123"];
    args.extend_from_slice(extra);
    args
}

/// A per-user setting command (`calls`, `srtp`) names a missing user, and clap refuses it
/// with exit 2 when given neither a value nor `--default`, or both.
fn setting_command_refuses_a_missing_user_and_misuse(data: &Path, command: &str, value: &str) {
    assert_eq!(
        fails(data, &[command, "109", value]),
        "amtsleitung: no user 109\n"
    );
    assert_eq!(run(data, &[command, "101"]).0, 2);
    assert_eq!(run(data, &[command, "101", value, "--default"]).0, 2);
}

#[test]
fn add_list_show_passwd_and_del_round_trip() {
    let dir = TempDir::new("users-cli");
    let data = dir.path().join("data");

    let out = ok(
        &data,
        &[
            "add",
            "101",
            "--name",
            "Bürgerbüro",
            "--password",
            "Circle of Life",
            "--allow",
            "10.8.0.0/16",
            "--allow",
            "192.168.5.0/24",
            "--max-contacts",
            "3",
        ],
    );
    assert_eq!(
        out,
        "user 101 added (Bürgerbüro, from 10.8.0.0/16,192.168.5.0/24, up to 3 contacts, language de)\n"
    );
    // From standard input and from a file: the password is never an argument.
    let (code, _, err) = run_with_stdin(
        &data,
        &[
            "add",
            "102",
            "--name",
            "IT",
            "--password",
            "-",
            "--language",
            "en",
        ],
        "geheim-aus-stdin\n",
    );
    assert_eq!(code, 0, "{err}");
    let password_file = dir.path().join("pw.txt");
    std::fs::write(&password_file, "geheim-aus-datei\n").unwrap();
    ok(
        &data,
        &[
            "add",
            "103",
            "--name",
            "Standesamt",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    );

    let store = Store::open(&data).unwrap();
    let it = store.user_get(DEFAULT_DOMAIN, "102").unwrap().unwrap();
    assert_eq!(
        it.ha1_md5,
        store::ha1_md5("102", DEFAULT_DOMAIN, "geheim-aus-stdin"),
        "line end of stdin not part of the password"
    );
    let registry = store.user_get(DEFAULT_DOMAIN, "103").unwrap().unwrap();
    assert_eq!(
        registry.ha1_sha256,
        store::ha1_sha256("103", DEFAULT_DOMAIN, "geheim-aus-datei")
    );

    // A phone of 101 registered (as the registrar would write it).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    store
        .registration_replace(
            DEFAULT_DOMAIN,
            "101",
            &[Binding {
                contact: "sip:101@192.168.178.20:5060".into(),
                source: "10.8.0.7:40123".parse().unwrap(),
                transport: "udp".into(),
                path: vec![],
                q_milli: None,
                call_id: "reg@phone".into(),
                cseq: 1,
                expires_at_ms: now + 3_600_000,
                user_agent: Some("Yealink SIP-T46U".into()),
                instance_id: None,
            }],
        )
        .unwrap();

    let list = ok(&data, &["list"]);
    assert_eq!(
        list,
        "EXTENSION  NAME        ALLOWED FROM                REGISTERED  LANGUAGE  CALLS    SRTP\n\
         101        Bürgerbüro  10.8.0.0/16,192.168.5.0/24  1/3         de        default  default\n\
         102        IT          anywhere                    0/5         en        default  default\n\
         103        Standesamt  anywhere                    0/5         de        default  default\n"
    );

    let before = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
    let show = ok(&data, &["show", "101"]);
    for expected in [
        "name          Bürgerbüro\n",
        "realm         amtsleitung\n",
        "allowed from  10.8.0.0/16,192.168.5.0/24\n",
        "max contacts  3\n",
        "calls out     internal, local, national, mobile, special (default; emergency always allowed)\n",
        "srtp          server default (srtp in the server config; optional unless set)\n",
        "registered    1 contact(s)\n",
        "  sip:101@192.168.178.20:5060\n    from 10.8.0.7:40123 over udp, expires in ",
        "user agent Yealink SIP-T46U",
    ] {
        assert!(show.contains(expected), "{expected:?} missing in:\n{show}");
    }
    for output in [&list, &show] {
        assert!(
            !output.contains(&before.ha1_md5)
                && !output.contains(&before.ha1_sha256)
                && !output.contains("Circle of Life"),
            "secret printed:\n{output}"
        );
    }

    assert_eq!(
        ok(&data, &["passwd", "101", "--password", "Hakuna Matata"]),
        "password of user 101 changed\n"
    );
    let after = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
    assert_ne!(after.ha1_md5, before.ha1_md5);
    assert_eq!(
        after.ha1_md5,
        store::ha1_md5("101", DEFAULT_DOMAIN, "Hakuna Matata")
    );
    assert_eq!(
        after.ha1_sha256,
        store::ha1_sha256("101", DEFAULT_DOMAIN, "Hakuna Matata")
    );
    assert!(after.updated_at_ms >= before.updated_at_ms);
    assert_eq!(after.created_at_ms, before.created_at_ms);

    assert_eq!(ok(&data, &["del", "101"]), "user 101 deleted\n");
    assert_eq!(extensions(&store), ["102", "103"]);
    assert_eq!(
        store.registrations_unexpired(now).unwrap(),
        vec![],
        "its bindings went with it"
    );
    assert_eq!(fails(&data, &["del", "101"]), "amtsleitung: no user 101\n");
    assert_eq!(fails(&data, &["show", "101"]), "amtsleitung: no user 101\n");
}

#[test]
fn bad_input_is_refused_with_one_clear_line_and_stores_nothing() {
    let dir = TempDir::new("users-cli-bad");
    let data = dir.path().join("data");
    let err = fails(&data, &["add", "101", "--name", "A", "--password", "kurz"]);
    assert!(
        err.contains("password has 4 characters; at least 8")
            && err.contains("desk phone")
            && !err.contains("kurz"),
        "{err}"
    );
    assert!(!data.exists(), "a refused add created no database");
    let err = fails(&data, &["add", "101", "--name", "A"]);
    assert!(err.contains("a password is needed"), "{err}");
    let err = fails(
        &data,
        &["add", "1", "--name", "A", "--password", "geheim123"],
    );
    assert!(
        err.contains("extension \"1\" must be 2 to 15 digits"),
        "{err}"
    );

    // Flag values clap checks: exit 2, one line naming the flag.
    let (code, _, err) = run(
        &data,
        &[
            "add",
            "101",
            "--name",
            "A",
            "--password",
            "geheim123",
            "--allow",
            "10.8.0.1/16",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--allow") && err.contains("the network is 10.8.0.0/16"),
        "{err}"
    );

    ok(
        &data,
        &["add", "101", "--name", "A", "--password", "geheim123"],
    );
    assert_eq!(
        fails(
            &data,
            &["add", "101", "--name", "B", "--password", "geheim123"]
        ),
        "amtsleitung: user 101 already exists\n"
    );
    let err = fails(&data, &["passwd", "101", "--password", ""]);
    assert!(err.contains("password is empty"), "{err}");
    let store = Store::open(&data).unwrap();
    let user = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
    assert_eq!(user.display_name, "A");
    assert_eq!(
        user.ha1_md5,
        store::ha1_md5("101", DEFAULT_DOMAIN, "geheim123")
    );
}

#[test]
fn import_stores_a_good_file_and_nothing_of_a_file_with_a_bad_row() {
    let dir = TempDir::new("users-cli-import");
    let data = dir.path().join("data");
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "extension,name,password,allow,max_contacts,language\r\n\
         201,\"Amt 20, Bauamt\",geheim-201,\"10.8.0.0/16,192.168.5.0/24\",2,de\r\n\
         202,Kämmerei,geheim-202,,,en\r\n\
         203,Ordnungsamt,geheim-203,10.8.0.0/16,,\r\n",
    )
    .unwrap();
    assert_eq!(
        ok(&data, &["import", good.to_str().unwrap()]),
        format!("3 users imported from {}\n", good.display())
    );
    let store = Store::open(&data).unwrap();
    assert_eq!(extensions(&store), ["201", "202", "203"]);
    let bauamt = store.user_get(DEFAULT_DOMAIN, "201").unwrap().unwrap();
    assert_eq!(bauamt.display_name, "Amt 20, Bauamt");
    assert_eq!(bauamt.allowed_networks.len(), 2);
    assert_eq!(bauamt.max_contacts, 2);
    assert_eq!(
        bauamt.ha1_sha256,
        store::ha1_sha256("201", DEFAULT_DOMAIN, "geheim-201")
    );

    // Line 4 has a password too short; the rows around it are fine.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "extension,name,password\n\
         301,Personalamt,geheim-301\n\
         302,Sozialamt,geheim-302\n\
         303,Jugendamt,kurz\n\
         304,Schulamt,geheim-304\n",
    )
    .unwrap();
    let err = fails(&data, &["import", bad.to_str().unwrap()]);
    assert!(err.contains("1 bad row, nothing imported"), "{err}");
    assert!(
        err.contains("line 4: password has 4 characters"),
        "line 4 not named: {err}"
    );
    assert!(!err.contains("kurz"), "password shown: {err}");
    assert_eq!(
        extensions(&store),
        ["201", "202", "203"],
        "nothing of the bad file stored"
    );

    // Every kind of bad row at once, each named by its line; still nothing stored.
    let mut worse = b"extension,name,password,allow\n\
        401,A,geheim-401,\n\
        401,B,geheim-402,\n\
        201,C,geheim-403,\n\
        404,D,geheim-404,10.8.0.0/33\n\
        405,E,geheim-405\n"
        .to_vec();
    worse.extend_from_slice(b"406,\xe4mter,geheim-406,\n");
    let worse_file = dir.path().join("worse.csv");
    std::fs::write(&worse_file, worse).unwrap();
    let err = fails(&data, &["import", worse_file.to_str().unwrap()]);
    for expected in [
        "5 bad rows, nothing imported",
        "line 3: extension 401 appears again (first on line 2)",
        "line 4: user 201 already exists",
        "line 5: allowed network \"10.8.0.0/33\"",
        "line 6: 3 fields, but the header has 4",
        "line 7: field 2 is not valid UTF-8",
    ] {
        assert!(err.contains(expected), "{expected:?} missing in:\n{err}");
    }
    assert_eq!(extensions(&store), ["201", "202", "203"]);
}

#[test]
fn call_classes_are_set_at_add_changed_shown_and_unknown_names_refused() {
    let dir = TempDir::new("users-cli-calls");
    let data = dir.path().join("data");
    let out = ok(
        &data,
        &add_args("101", "Bürgerbüro", &["--calls", "national,internal,local"]),
    );
    assert_eq!(
        out,
        "user 101 added (Bürgerbüro, from anywhere, up to 5 contacts, language de, calls out: internal, local, national)\n\
         note: emergency calls (110, 112) stay allowed; they cannot be barred\n"
    );
    ok(&data, &add_args("102", "IT", &[]));
    let store = Store::open(&data).unwrap();
    let classes = |extension: &str| {
        store
            .user_get(DEFAULT_DOMAIN, extension)
            .unwrap()
            .unwrap()
            .call_classes
    };
    let names = |list: &[&str]| Some(list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
    assert_eq!(classes("101"), names(&["internal", "local", "national"]));
    assert_eq!(classes("102"), None, "no --calls: the default set");
    assert!(
        ok(&data, &["show", "101"])
            .contains("calls out     internal, local, national (emergency always allowed)\n")
    );
    let list = ok(&data, &["list"]);
    // The CALLS column is the last but one (SRTP follows).
    let calls_column = |row: usize| {
        list.lines()
            .nth(row)
            .unwrap()
            .split_whitespace()
            .rev()
            .nth(1)
    };
    assert!(
        calls_column(1) == Some("internal,local,national") && calls_column(2) == Some("default"),
        "{list}"
    );

    assert_eq!(
        ok(
            &data,
            &["calls", "101", "internal,local,national,mobile,emergency"]
        ),
        "user 101 may call out: internal, local, national, mobile (emergency always allowed)\n\
         note: emergency calls (110, 112) are always allowed; \"emergency\" need not be listed\n"
    );
    assert_eq!(
        classes("101"),
        names(&["internal", "local", "national", "mobile"])
    );
    assert_eq!(
        ok(&data, &["calls", "101", "--default"]),
        "user 101 may call out: internal, local, national, mobile, special (default; emergency always allowed)\n"
    );
    assert_eq!(classes("101"), None);
    ok(&data, &["calls", "102", "internal"]);
    assert_eq!(classes("102"), names(&["internal"]));

    // Unknown names: one line naming the bad word and the known ones; nothing changes.
    let err = fails(&data, &["calls", "102", "internal,premuim"]);
    assert_eq!(
        err,
        "amtsleitung: unknown call class \"premuim\"; known: emergency, internal, local, national, mobile, international, special, shared-cost, premium\n"
    );
    let err = fails(&data, &["calls", "102", "emergency"]);
    assert!(err.contains("no call class given"), "{err}");
    assert_eq!(classes("102"), names(&["internal"]));
    let err = fails(
        &data,
        &add_args("103", "A", &["--calls", "local,satellite"]),
    );
    assert!(err.contains("unknown call class \"satellite\""), "{err}");
    assert_eq!(extensions(&store), ["101", "102"], "103 not added");
    setting_command_refuses_a_missing_user_and_misuse(&data, "calls", "local");
}

#[test]
fn import_reads_an_optional_calls_column_and_names_a_bad_class_with_its_line() {
    let dir = TempDir::new("users-cli-import-calls");
    let data = dir.path().join("data");
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "extension,name,password,calls\n\
         201,Bauamt,geheim-201,internal;local\n\
         202,Kämmerei,geheim-202,\n\
         203,Bürgermeisterin,geheim-203,\"internal local national mobile international\"\n",
    )
    .unwrap();
    ok(&data, &["import", good.to_str().unwrap()]);
    let store = Store::open(&data).unwrap();
    let classes = |extension: &str| {
        store
            .user_get(DEFAULT_DOMAIN, extension)
            .unwrap()
            .unwrap()
            .call_classes
            .map(|c| c.join(","))
    };
    assert_eq!(classes("201").as_deref(), Some("internal,local"));
    assert_eq!(classes("202"), None, "empty field: the default set");
    assert_eq!(
        classes("203").as_deref(),
        Some("internal,local,national,mobile,international")
    );

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "extension,name,password,calls\n\
         301,Personalamt,geheim-301,local\n\
         302,Sozialamt,geheim-302,local;premuim\n",
    )
    .unwrap();
    let err = fails(&data, &["import", bad.to_str().unwrap()]);
    assert!(
        err.contains("1 bad row, nothing imported")
            && err.contains("line 3: unknown call class \"premuim\"; known: emergency"),
        "{err}"
    );
    assert_eq!(extensions(&store), ["201", "202", "203"]);
}

const SDES_NOTE: &str = "note: SRTP keys travel in the SDP (SDES, RFC 4568); they are secret only where the phone's signalling runs over TLS\n";

#[test]
fn srtp_is_set_at_add_changed_shown_reset_and_a_wrong_word_refused() {
    let dir = TempDir::new("users-cli-srtp");
    let data = dir.path().join("data");
    let out = ok(
        &data,
        &add_args("101", "Bürgerbüro", &["--srtp", "Required"]),
    );
    assert_eq!(
        out,
        format!(
            "user 101 added (Bürgerbüro, from anywhere, up to 5 contacts, language de, SRTP required)\n{SDES_NOTE}"
        )
    );
    ok(&data, &add_args("102", "IT", &[]));
    let store = Store::open(&data).unwrap();
    let srtp = |extension: &str| {
        store
            .user_get(DEFAULT_DOMAIN, extension)
            .unwrap()
            .unwrap()
            .media_encryption
    };
    assert_eq!(
        srtp("101").as_deref(),
        Some("required"),
        "stored lower-case"
    );
    assert_eq!(srtp("102"), None, "no --srtp: the server's default");
    assert!(ok(&data, &["show", "101"]).contains("\nsrtp          required\n"));
    assert!(ok(&data, &["show", "102"]).contains(
        "\nsrtp          server default (srtp in the server config; optional unless set)\n"
    ));
    let list = ok(&data, &["list"]);
    let srtp_column = |row: usize| list.lines().nth(row).unwrap().split_whitespace().last();
    assert_eq!(
        (srtp_column(0), srtp_column(1), srtp_column(2)),
        (Some("SRTP"), Some("required"), Some("default")),
        "{list}"
    );

    assert_eq!(
        ok(&data, &["srtp", "102", "off"]),
        "SRTP of user 102: off\n"
    );
    assert_eq!(srtp("102").as_deref(), Some("off"));
    assert_eq!(
        ok(&data, &["srtp", "102", "optional"]),
        format!("SRTP of user 102: optional\n{SDES_NOTE}")
    );
    assert_eq!(srtp("102").as_deref(), Some("optional"));
    assert_eq!(
        ok(&data, &["srtp", "101", "--default"]),
        "SRTP of user 101: server default (srtp in the server config; optional unless set)\n"
    );
    assert_eq!(srtp("101"), None);

    // A wrong word: one line naming the three right ones, exit 1, nothing changes.
    let before = store.user_get(DEFAULT_DOMAIN, "102").unwrap().unwrap();
    assert_eq!(
        fails(&data, &["srtp", "102", "on"]),
        "amtsleitung: unknown SRTP setting 'on' (expected off, optional or required)\n"
    );
    assert_eq!(
        store.user_get(DEFAULT_DOMAIN, "102").unwrap(),
        Some(before),
        "not even the update time"
    );
    let err = fails(&data, &add_args("103", "A", &["--srtp", "mandatory"]));
    assert!(
        err.contains("unknown SRTP setting 'mandatory' (expected off, optional or required)"),
        "{err}"
    );
    assert_eq!(extensions(&store), ["101", "102"], "103 not added");
    setting_command_refuses_a_missing_user_and_misuse(&data, "srtp", "off");
}

#[test]
fn a_wrong_srtp_word_refuses_add_before_a_database_is_made() {
    let dir = TempDir::new("users-cli-srtp-nodb");
    let data = dir.path().join("data");
    let err = fails(&data, &add_args("101", "A", &["--srtp", "yes"]));
    assert!(err.contains("expected off, optional or required"), "{err}");
    assert!(!data.exists(), "a refused add created no database");
}

#[test]
fn import_reads_an_optional_srtp_column_and_names_a_wrong_word_with_its_line() {
    let dir = TempDir::new("users-cli-import-srtp");
    let data = dir.path().join("data");
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "extension,name,password,calls,srtp\n\
         201,Bauamt,geheim-201,internal;local,required\n\
         202,Kämmerei,geheim-202,,\n\
         203,Bürgermeisterin,geheim-203,,OFF\n",
    )
    .unwrap();
    ok(&data, &["import", good.to_str().unwrap()]);
    let store = Store::open(&data).unwrap();
    let srtp = |extension: &str| {
        store
            .user_get(DEFAULT_DOMAIN, extension)
            .unwrap()
            .unwrap()
            .media_encryption
    };
    assert_eq!(srtp("201").as_deref(), Some("required"));
    assert_eq!(srtp("202"), None, "empty field: the server's default");
    assert_eq!(srtp("203").as_deref(), Some("off"));

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "extension,name,password,srtp\n\
         301,Personalamt,geheim-301,optional\n\
         302,Sozialamt,geheim-302,sdes\n",
    )
    .unwrap();
    let err = fails(&data, &["import", bad.to_str().unwrap()]);
    assert!(
        err.contains("1 bad row, nothing imported")
            && err.contains(
                "line 3: unknown SRTP setting 'sdes' (expected off, optional or required)"
            ),
        "{err}"
    );
    assert_eq!(extensions(&store), ["201", "202", "203"]);
}

#[test]
fn a_fax_line_is_set_at_add_changed_shown_and_a_wrong_word_refused() {
    let dir = TempDir::new("users-cli-fax");
    let data = dir.path().join("data");
    assert_eq!(
        ok(&data, &add_args("150", "Fax Poststelle", &["--fax"])),
        "user 150 added (Fax Poststelle, from anywhere, up to 5 contacts, language de, fax line)\n"
    );
    ok(&data, &add_args("151", "IT", &[]));
    let store = Store::open(&data).unwrap();
    let fax = |extension: &str| {
        store
            .user_get(DEFAULT_DOMAIN, extension)
            .unwrap()
            .unwrap()
            .fax
    };
    assert!(fax("150"));
    assert!(!fax("151"), "no --fax: a phone");
    assert!(ok(&data, &["show", "151"]).contains("\nfax           off\n"));
    assert_eq!(
        ok(&data, &["fax", "151", "ON"]),
        "fax line 151: on (calls passed through on G.711 unchanged, never transcoded)\n"
    );
    assert!(fax("151"));
    assert_eq!(ok(&data, &["fax", "150", "off"]), "fax line 150: off\n");
    assert!(!fax("150"));
    assert_eq!(
        fails(&data, &["fax", "151", "t38"]),
        "amtsleitung: unknown fax setting 't38' (expected on or off)\n"
    );
    assert!(fax("151"), "a wrong word changes nothing");
    assert_eq!(
        fails(&data, &["fax", "109", "on"]),
        "amtsleitung: no user 109\n"
    );
    assert_eq!(run(&data, &["fax", "151"]).0, 2, "on or off is required");
}

/// `dialplan explain` follows a called user's settings as stored: 101's unconditional
/// forwarding to 102 is routed as 101's own call, 102's no-answer forwarding shows its ring
/// time, and a forwarding back to 101 is named a loop, as the server would end it.
#[test]
fn dialplan_explain_follows_the_called_users_forwarding_and_names_a_loop() {
    let dir = TempDir::new("explain-forwarding");
    let data = dir.path();
    ok(data, &add_args("101", "Bürgerbüro", &[]));
    ok(data, &add_args("102", "Kasse", &[]));
    ok(data, &["forward", "101", "always", "102"]);
    ok(
        data,
        &["forward", "102", "no-answer", "101", "--seconds", "12"],
    );
    let repo = support::repo();
    let explain = |data: &Path| {
        let out = support::amtsleitung()
            .args(["dialplan", "explain", "--to", "101", "--from", "103"])
            .arg("--dialplans")
            .arg(repo.join("dialplans"))
            .arg("--sounds")
            .arg(repo.join("sounds"))
            .arg("--data-dir")
            .arg(data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = explain(data);
    assert!(
        text.contains("\nUsers rung, with their settings as stored now:\n  101: forwards every call to 102; their phones do not ring\n    102 as 101's call: rule \"staff extensions\""),
        "{text}"
    );
    assert!(
        text.contains("      102: their registered phones ring for 12 s\n        when nobody answers: forwarded to 101\n"),
        "{text}"
    );
    assert!(text.contains("101: forwarding loop"), "{text}");
    // A data directory with no store: the plan alone, and no store is made.
    let empty = TempDir::new("explain-no-store");
    let text = explain(empty.path());
    assert!(!text.contains("Users rung"), "{text}");
    assert!(std::fs::read_dir(empty.path()).unwrap().next().is_none());
}
