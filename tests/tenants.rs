//! Two town halls on one system: each a SIP domain (`[[tenant]]`) with its own users and
//! dialplan. Both have an extension 101 and a colleague 102; each 102 reaches its own town's
//! 101, and a phone of one town cannot ring the other town's. Real clients (baresip) as the
//! four phones, registering with their own town's domain through the server as outbound
//! proxy; audio proven from what each recorded. One network namespace (server 10.99.0.1).

mod support;

use std::path::Path;

use support::console::Console;
use support::{Baresip, Netns, Server, TempDir, amtsleitung, heard_share, wait_until};

/// `amtsleitung room ARGS --config CONFIG --data-dir DATA`: its stdout (the command must
/// succeed).
fn room(config: &str, data: &Path, args: &[&str]) -> String {
    let out = amtsleitung()
        .arg("room")
        .args(args)
        .args(["--config", config, "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "room {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const TOWN_A: &str = "stadt-a.example";
const TOWN_B: &str = "stadt-b.example";

/// A town's dialplan: its staff extensions ring their phones, its 8NNNN numbers join its
/// conference rooms, 9101 is the other town's 101 (an inter-town call, by rule), and 900
/// would open the caller's mailbox, which is not per tenant yet (so such a call must be
/// refused).
fn town_plan(name: &str, other_town: &str) -> TempDir {
    let plans = TempDir::new(name);
    std::fs::write(
        plans.path().join("town.toml"),
        "[[rule]]\nname = \"staff\"\nmatch = \"_10X\"\nactions = [ { dial = \"${EXTEN}\" } ]\n\n\
         [[rule]]\nname = \"rooms\"\nmatch = \"_8XXXX\"\nactions = [ { conference = \"${EXTEN:1}\" } ]\n\n\
         [[rule]]\nname = \"mailbox\"\nmatch = \"900\"\nactions = [ { voicemail_main = {} } ]\n",
    )
    .unwrap();
    std::fs::write(
        plans.path().join("inter-town.toml"),
        format!(
            "[[rule]]\nname = \"the other town's 101\"\nmatch = \"9101\"\n\
             actions = [ {{ dial = {{ uri = \"sip:101@{other_town}\" }} }} ]\n"
        ),
    )
    .unwrap();
    plans
}

fn tenants_config(dir: &TempDir, plans_a: &Path, plans_b: &Path) -> String {
    let path = dir.path().join("tenants.toml");
    std::fs::write(
        &path,
        format!(
            "[[tenant]]\ndomain = \"{TOWN_A}\"\ndialplans = \"{}\"\n\n\
             [[tenant]]\ndomain = \"{TOWN_B}\"\ndialplans = \"{}\"\n",
            plans_a.display(),
            plans_b.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// `amtsleitung user ARGS --config CONFIG --data-dir DATA`: exit code, stdout, stderr.
fn user(config: &str, data: &Path, args: &[&str]) -> (i32, String, String) {
    let out = amtsleitung()
        .arg("user")
        .args(args)
        .args(["--config", config, "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `user add EXTENSION --domain DOMAIN` as "Stadt A 101" with the password "a-geheim101"
/// (B for stadt-b.example).
fn add_town_user(config: &str, data: &Path, domain: &str, extension: &str) {
    let town = if domain == TOWN_A { "A" } else { "B" };
    let name = format!("Stadt {town} {extension}");
    let password = town_password(domain, extension);
    let (code, out, err) = user(
        config,
        data,
        &[
            "add",
            extension,
            "--domain",
            domain,
            "--name",
            &name,
            "--password",
            &password,
        ],
    );
    assert_eq!(
        code, 0,
        "user add {extension} --domain {domain}: {out}{err}"
    );
}

/// The password of `extension` of `domain` as `add_town_user` sets it.
fn town_password(domain: &str, extension: &str) -> String {
    let town = if domain == TOWN_A { "a" } else { "b" };
    format!("{town}-geheim{extension}")
}

/// A baresip phone of `domain`'s user `extension` (added by `add_town_user`) on `ip`, its
/// microphone playing `tone_hz`.
fn town_phone(ip: &str, tone_hz: u32, domain: &str, extension: &str) -> Baresip {
    Baresip::new(ip, tone_hz, "PCMU", 8000).registering_in(
        domain,
        extension,
        &town_password(domain, extension),
    )
}

/// Waits until at least `count` phones are registered; fails the test with `what` after 8 s.
fn wait_registered(server: &Server, ns: &Netns, count: u64, what: &str) {
    let registered = wait_until(std::time::Duration::from_secs(8), || {
        server.metric(Some(ns), "amtsleitung_registered_contacts") >= count
    });
    assert!(registered, "{what}\n{}", server.log());
}

/// The two towns' config (in a directory named after `label`), their dialplans, and a data
/// directory: `(config dir, data dir, [town A's plans, town B's], config file)`.
fn two_towns(label: &str) -> (TempDir, TempDir, [TempDir; 2], String) {
    let dir = TempDir::new(label);
    let data = TempDir::new(&format!("{label}-data"));
    let plans = [town_plan("plans-a", TOWN_B), town_plan("plans-b", TOWN_A)];
    let config = tenants_config(&dir, plans[0].path(), plans[1].path());
    (dir, data, plans, config)
}

#[test]
fn each_towns_colleague_reaches_its_own_101_and_never_the_other_towns() {
    let ns = Netns::new();
    let (_dir, data, _plans, config) = two_towns("tenants");
    add_town_user(&config, data.path(), TOWN_A, "101");
    add_town_user(&config, data.path(), TOWN_A, "102");
    add_town_user(&config, data.path(), TOWN_B, "101");
    add_town_user(&config, data.path(), TOWN_B, "102");
    // Each town lists its own users only; a domain the config does not host is refused.
    let (_, listed_a, _) = user(&config, data.path(), &["list", "--domain", TOWN_A]);
    assert!(
        listed_a.contains("Stadt A 101") && !listed_a.contains("Stadt B"),
        "{listed_a}"
    );
    let (code, _, err) = user(
        &config,
        data.path(),
        &[
            "add",
            "103",
            "--domain",
            "stadt-c.example",
            "--name",
            "C",
            "--password",
            "c-geheim103",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no tenant stadt-c.example"), "{err}");

    let server = Server::start_with_data(Some(&ns), &["--config", &config], data);
    // The two 101s: same extension, different towns, each answering with its own tone.
    let phone_a = town_phone("10.99.0.2", 880, TOWN_A, "101");
    let phone_b = town_phone("10.99.0.4", 660, TOWN_B, "101");
    let caller_a = town_phone("10.99.0.3", 440, TOWN_A, "102");
    let caller_b = town_phone("10.99.0.5", 550, TOWN_B, "102");
    let (phones, (out_a, out_b, crossing)) = std::thread::scope(|scope| {
        let runs = [
            scope.spawn(|| phone_a.run(&ns, 18)),
            scope.spawn(|| phone_b.run(&ns, 18)),
        ];
        wait_registered(&server, &ns, 2, "the two 101s did not register");
        // Both towns' 102 dial 101 at the same time.
        let a = scope.spawn(|| caller_a.call(&ns, &format!("sip:101@{TOWN_A}"), 6));
        let b = scope.spawn(|| caller_b.call(&ns, &format!("sip:101@{TOWN_B}"), 6));
        let (out_a, out_b) = (a.join().unwrap(), b.join().unwrap());
        // Town A's colleague tries town B's 101: in B's domain it is nobody, and its
        // password is no B password.
        let crossing = caller_a.call(&ns, &format!("sip:101@{TOWN_B}"), 3);
        let phones: Vec<String> = runs.into_iter().map(|r| r.join().unwrap()).collect();
        (phones, (out_a, out_b, crossing))
    });
    let context = format!(
        "A's 101: {}\nB's 101: {}\nA's 102: {out_a}\nB's 102: {out_b}\ncrossing: {crossing}\n{}",
        phones[0],
        phones[1],
        server.log()
    );
    // Each 101 was rung once (the crossing call rang neither).
    for phone in &phones {
        assert_eq!(phone.matches("answering call").count(), 1, "{context}");
    }
    // By its own town's colleague, and they talked: each 101 heard its own caller's tone and
    // not the other's, each caller its own 101's.
    let share = |client: &Baresip, freq: f64, who: &str| heard_share(client, freq, who, &server);
    let heard = [
        (
            "A's 101 hears A's 102",
            share(&phone_a, 440.0, "A's 101"),
            share(&phone_a, 550.0, "A's 101"),
        ),
        (
            "B's 101 hears B's 102",
            share(&phone_b, 550.0, "B's 101"),
            share(&phone_b, 440.0, "B's 101"),
        ),
        (
            "A's 102 hears A's 101",
            share(&caller_a, 880.0, "A's 102"),
            share(&caller_a, 660.0, "A's 102"),
        ),
        (
            "B's 102 hears B's 101",
            share(&caller_b, 660.0, "B's 102"),
            share(&caller_b, 880.0, "B's 102"),
        ),
    ];
    for (what, own, other) in heard {
        assert!(
            own > 0.5 && other < 0.05,
            "{what}: own tone {own:.2}, the other town's {other:.2}\n{context}"
        );
    }
    assert!(
        crossing.contains("407") || crossing.contains("Proxy Authentication Required"),
        "A's 102 calling B's 101 must be asked for a B password it does not have\n{context}"
    );

    // What lets a call cross is a rule: town A's 9101 dials sip:101@stadt-b.example, which
    // this system hosts, so B's 101 rings (fresh clients, so that each recording holds this
    // call only).
    let phone_b = town_phone("10.99.0.4", 660, TOWN_B, "101");
    let caller_a = town_phone("10.99.0.6", 440, TOWN_A, "102");
    let (phone_out, caller_out) = std::thread::scope(|scope| {
        let phone = scope.spawn(|| phone_b.run(&ns, 10));
        wait_registered(&server, &ns, 1, "B's 101 did not register again");
        let caller = caller_a.call(&ns, &format!("sip:9101@{TOWN_A}"), 4);
        (phone.join().unwrap(), caller)
    });
    let context = format!(
        "B's 101: {phone_out}\nA's 102: {caller_out}\n{}",
        server.log()
    );
    assert_eq!(phone_out.matches("answering call").count(), 1, "{context}");
    let (to_phone, to_caller) = (
        heard_share(&phone_b, 440.0, "B's 101", &server),
        heard_share(&caller_a, 660.0, "A's 102", &server),
    );
    assert!(
        to_phone > 0.5 && to_caller > 0.5,
        "inter-town call: B's 101 heard A's 102 {to_phone:.2}, A's 102 heard B's 101 {to_caller:.2}\n{context}"
    );
}

#[test]
fn what_is_not_per_tenant_yet_is_refused_to_a_tenant_not_shared_with_the_default_domain() {
    let ns = Netns::new();
    let (_dir, data, _plans, config) = two_towns("tenants-refused");
    add_town_user(&config, data.path(), TOWN_A, "102");
    let server = Server::start_with_data(Some(&ns), &["--config", &config], data);
    // The town's plan was loaded with a warning for its mailbox rule.
    let log = server.log();
    assert!(
        log.contains("`voicemail_main` cannot run in this version yet") && log.contains(TOWN_A),
        "{log}"
    );
    // Town A's mailbox number: mailboxes are the default domain's alone yet, so the call is
    // refused rather than opening the default domain's mailbox 102.
    let caller = town_phone("10.99.0.3", 440, TOWN_A, "102");
    let out = caller.call(&ns, &format!("sip:900@{TOWN_A}"), 3);
    assert!(out.contains("501"), "{out}\n{}", server.log());
    assert!(
        server.log().contains("not per tenant yet"),
        "{}",
        server.log()
    );
    let store = store::Store::open(server.data_dir()).unwrap();
    let mut calls = Vec::new();
    wait_until(std::time::Duration::from_secs(3), || {
        calls = store.recent_calls(10).unwrap();
        !calls.is_empty()
    });
    assert!(
        calls
            .iter()
            .any(|c| c.callee == "900" && c.final_status == 501 && !c.answered),
        "{calls:#?}"
    );
}

#[test]
fn each_towns_callers_of_room_1234_meet_in_their_own_towns_room() {
    let ns = Netns::new();
    let (_dir, data, _plans, config) = two_towns("tenant-rooms");
    for domain in [TOWN_A, TOWN_B] {
        for extension in ["101", "102"] {
            add_town_user(&config, data.path(), domain, extension);
        }
    }
    // The default domain's room 1234 asks for a PIN (which baresip cannot key): a town's
    // caller who landed in it would never be heard. Town A's 1234 is stored without one.
    room(&config, data.path(), &["create", "1234", "--pin", "4711"]);
    room(
        &config,
        data.path(),
        &["create", "1234", "--domain", TOWN_A],
    );
    let listed_a = room(&config, data.path(), &["list", "--domain", TOWN_A]);
    let listed_default = room(&config, data.path(), &["list"]);
    let row_a = listed_a
        .lines()
        .find(|l| l.starts_with("1234@stadt-a.example"))
        .unwrap_or_else(|| panic!("{listed_a}"));
    assert!(
        !row_a.contains("set"),
        "town A's 1234 has no PIN: {listed_a}"
    );
    assert_eq!(
        listed_a.lines().count(),
        2,
        "header and A's room: {listed_a}"
    );
    assert!(
        listed_default.contains("1234") && !listed_default.contains(TOWN_A),
        "{listed_default}"
    );

    let server = Server::start_with_data(Some(&ns), &["--config", &config], data);
    let callers = [
        town_phone("10.99.0.2", 880, TOWN_A, "101"),
        town_phone("10.99.0.3", 440, TOWN_A, "102"),
        town_phone("10.99.0.4", 660, TOWN_B, "101"),
        town_phone("10.99.0.5", 550, TOWN_B, "102"),
    ];
    let (outputs, rooms) = std::thread::scope(|scope| {
        let calls: Vec<_> = callers
            .iter()
            .enumerate()
            .map(|(i, caller)| {
                let town = if i < 2 { TOWN_A } else { TOWN_B };
                let ns = &ns;
                scope.spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(700 * (i as u64 % 2)));
                    caller.call(ns, &format!("sip:81234@{town}"), 9)
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_secs(5));
        let rooms = ["1234@stadt-a.example", "1234@stadt-b.example", "1234"]
            .map(|name| server.room_participants(Some(&ns), name));
        let outputs: Vec<String> = calls.into_iter().map(|c| c.join().unwrap()).collect();
        (outputs, rooms)
    });
    let context = format!("{outputs:#?}\n{}", server.log());
    assert_eq!(
        rooms,
        [2, 2, 0],
        "participants of A's 1234, B's 1234 and the default domain's 1234\n{context}"
    );
    // Each caller heard the other caller of its own town, and nobody of the other town.
    let heard = |i: usize, freq: f64| heard_share(&callers[i], freq, "a caller", &server);
    for (listener, own, others) in [
        (0, 440.0, [660.0, 550.0]),
        (1, 880.0, [660.0, 550.0]),
        (2, 550.0, [880.0, 440.0]),
        (3, 660.0, [880.0, 440.0]),
    ] {
        let own_share = heard(listener, own);
        let other_shares = others.map(|f| heard(listener, f));
        assert!(
            own_share > 0.2 && other_shares.iter().all(|&s| s < 0.05),
            "caller {listener}: own town's tone {own_share:.2}, the other town's {other_shares:?}\n{context}"
        );
    }
}

/// `amtsleitung account add NAME --role ROLE [--domain DOMAIN] [--extension EXT]`, the
/// password on standard input.
fn add_account(config: &str, data: &Path, name: &str, role: &str, extra: &[&str]) {
    let mut command = amtsleitung();
    command
        .args(["account", "add", name, "--role", role])
        .args(extra)
        .args(["--config", config, "--data-dir"])
        .arg(data);
    let (code, out, err) = support::run_with_stdin(command, "lang-genug-123\n");
    assert_eq!(code, 0, "account add {name}: {out}{err}");
}

fn names(answer: &serde_json::Value, field: &str) -> Vec<String> {
    let mut names: Vec<String> = answer
        .as_array()
        .unwrap_or_else(|| panic!("a list: {answer}"))
        .iter()
        .map(|item| item[field].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_towns_admin_sees_and_changes_only_their_towns_rooms_and_users_in_the_console() {
    let (_dir, data, _plans, config) = two_towns("tenant-console");
    add_town_user(&config, data.path(), TOWN_A, "101");
    add_town_user(&config, data.path(), TOWN_B, "101");
    let (code, out, err) = user(
        &config,
        data.path(),
        &[
            "add",
            "101",
            "--name",
            "Zentrale 101",
            "--password",
            "z-geheim101",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    room(&config, data.path(), &["create", "1234", "--pin", "4711"]);
    for (domain, number) in [(TOWN_A, "1234"), (TOWN_A, "5555"), (TOWN_B, "1234")] {
        room(
            &config,
            data.path(),
            &["create", number, "--domain", domain],
        );
    }
    add_account(&config, data.path(), "root", "admin", &[]);
    add_account(
        &config,
        data.path(),
        "amt-a",
        "admin",
        &["--domain", TOWN_A],
    );
    add_account(
        &config,
        data.path(),
        "amt-b",
        "admin",
        &["--domain", TOWN_B],
    );
    add_account(
        &config,
        data.path(),
        "anna-a",
        "staff",
        &["--domain", TOWN_A, "--extension", "101"],
    );
    // A town the config does not host gets no account.
    let mut command = amtsleitung();
    command
        .args([
            "account",
            "add",
            "amt-c",
            "--role",
            "admin",
            "--domain",
            "stadt-c.example",
        ])
        .args(["--config", &config, "--data-dir"])
        .arg(data.path());
    let (code, _, err) = support::run_with_stdin(command, "lang-genug-123\n");
    assert_ne!(code, 0);
    assert!(err.contains("no tenant stadt-c.example"), "{err}");

    let server = Server::start_with_data(None, &["--config", &config], data);
    let root = Console::sign_in(None, &server, "root", "lang-genug-123");
    let amt_a = Console::sign_in(None, &server, "amt-a", "lang-genug-123");
    let amt_b = Console::sign_in(None, &server, "amt-b", "lang-genug-123");
    let anna = Console::sign_in(None, &server, "anna-a", "lang-genug-123");
    assert_eq!(amt_a.get("/api/me").json()["domain"], TOWN_A);

    // Rooms: each town's admin sees the town's own; the system's admin all of them.
    assert_eq!(
        names(&amt_a.get("/api/rooms").json(), "number"),
        ["1234@stadt-a.example", "5555@stadt-a.example"]
    );
    assert_eq!(
        names(&amt_b.get("/api/rooms").json(), "number"),
        ["1234@stadt-b.example"]
    );
    assert_eq!(names(&root.get("/api/rooms").json(), "number").len(), 4);
    // A room town A's admin creates is town A's, and town B's admin does not see it.
    let created = amt_a.send("POST", "/api/rooms", r#"{"number": "7777"}"#);
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.json()["number"], "7777@stadt-a.example");
    assert!(
        !names(&amt_b.get("/api/rooms").json(), "number").contains(&"7777@stadt-a.example".into())
    );
    // Another town's room is not town A's to change.
    let locked = amt_a.send(
        "PUT",
        "/api/rooms/1234@stadt-b.example/locked",
        r#"{"locked": true}"#,
    );
    assert_eq!(locked.status, 403, "{}", locked.body);
    // Nor may town A's admin hand a room to another town's account.
    let given = amt_a.send(
        "POST",
        "/api/rooms",
        r#"{"number": "8888", "owner": "amt-b"}"#,
    );
    assert_eq!(given.status, 403, "{}", given.body);

    // Users: each town's admin lists and changes the town's own.
    assert_eq!(
        names(&amt_a.get("/api/users").json(), "name"),
        ["Stadt A 101"]
    );
    assert_eq!(
        names(&amt_b.get("/api/users").json(), "name"),
        ["Stadt B 101"]
    );
    assert_eq!(
        names(&root.get("/api/users").json(), "name"),
        ["Zentrale 101"]
    );
    assert_eq!(amt_b.get("/api/users/101").json()["name"], "Stadt B 101");
    let added = amt_a.send(
        "POST",
        "/api/users",
        r#"{"extension": "102", "name": "Stadt A 102", "password": "a-geheim102"}"#,
    );
    assert_eq!(added.status, 201, "{}", added.body);
    let (_, listed_a, _) = user(&config, server.data_dir(), &["list", "--domain", TOWN_A]);
    let (_, listed_default, _) = user(&config, server.data_dir(), &["list"]);
    assert!(listed_a.contains("Stadt A 102"), "{listed_a}");
    assert!(!listed_default.contains("Stadt A 102"), "{listed_default}");
    // The console's Users page shows town A's admin town A's users, without the system's
    // import and bans; the import itself is the system admin's.
    let page = amt_a.get("/console/users");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Stadt A 101") && !page.body.contains("Stadt B"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("/console/users/import") && !page.body.contains("/console/bans/lift"),
        "{}",
        page.body
    );
    let root_page = root.get("/console/users").body;
    assert!(root_page.contains("/console/users/import"), "{root_page}");
    let import = amt_a.form(
        "/console/users/import",
        &[("csv", "extension,name,password\n")],
    );
    assert_eq!(import.status, 403, "{}", import.body);
    assert_eq!(amt_a.get("/console/users/101").status, 200);
    // A town's staff member's "my phone" is their town's 101, not the default domain's.
    assert_eq!(anna.get("/api/phone").json()["user"]["name"], "Stadt A 101");

    // What is the system's stays the system admin's: call records, the audit log, bans.
    for path in ["/api/calls", "/api/audit", "/api/bans"] {
        assert_eq!(amt_a.get(path).status, 403, "{path}");
        assert_eq!(root.get(path).status, 200, "{path}");
    }
}

/// Each town's carrier: an ip trunk to a gateway at `gateway` (calls out go to its port
/// 5080) with the town's emergency calls.
fn town_trunk(name: &str, gateway: &str, town: &str) -> String {
    format!(
        "[[trunk]]\nname = \"{name}\"\nmode = \"ip\"\nproxy = \"sip:{gateway}:5080\"\n\
         allowed-sources = [\"{gateway}/32\"]\nmax-calls = 10\noptions-interval = 0\n\
         emergency = true\ntenant = \"{town}\"\n\n"
    )
}

/// A town's rules for its carrier `trunk`: its DIDs +49 711 12345-1xx ring its users, 0…
/// goes out on it, and 99… names the other town's carrier `other_trunk` (which it may not
/// use).
fn carrier_rules(plans: &TempDir, trunk: &str, other_trunk: &str) {
    std::fs::write(
        plans.path().join("carrier.toml"),
        format!(
            "[[rule]]\nname = \"DID\"\nmatch = \"/^\\\\+4971112345(\\\\d{{3}})$/\"\ntrunk = \"{trunk}\"\n\
             actions = [ {{ dial = \"${{1}}\" }} ]\n\n\
             [[rule]]\nname = \"outside line\"\nmatch = \"_0X.\"\n\
             actions = [ {{ dial = {{ trunk = \"{trunk}\", number = \"${{EXTEN}}\" }} }} ]\n\n\
             [[rule]]\nname = \"the other town's line\"\nmatch = \"/^99(0\\\\d+)$/\"\n\
             actions = [ {{ dial = {{ trunk = \"{other_trunk}\", number = \"${{1}}\" }} }} ]\n"
        ),
    )
    .unwrap();
}

#[test]
fn each_towns_carrier_brings_calls_to_that_town_and_takes_its_calls_out_and_112() {
    let ns = Netns::new();
    let (dir, data, [plans_a, plans_b], config) = two_towns("tenant-trunks");
    carrier_rules(&plans_a, "carrier-a", "carrier-b");
    carrier_rules(&plans_b, "carrier-b", "carrier-a");
    let trunks = dir.path().join("trunks.toml");
    std::fs::write(
        &trunks,
        format!(
            "[numbering]\narea-code = \"711\"\n\n{}{}",
            town_trunk("carrier-a", "10.99.0.5", TOWN_A),
            town_trunk("carrier-b", "10.99.0.6", TOWN_B)
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("trunks = \"{}\"\n\n{text}", trunks.display()),
    )
    .unwrap();
    add_town_user(&config, data.path(), TOWN_A, "101");
    add_town_user(&config, data.path(), TOWN_B, "101");
    let server = Server::start_with_data(Some(&ns), &["--config", &config], data);

    // In: both carriers deliver the same DID, 0711 12345-101; each reaches its own town's
    // 101.
    let phone_a = town_phone("10.99.0.2", 880, TOWN_A, "101");
    let phone_b = town_phone("10.99.0.4", 660, TOWN_B, "101");
    let gateway_a = Baresip::new("10.99.0.5", 440, "PCMU", 8000);
    let gateway_b = Baresip::new("10.99.0.6", 550, "PCMU", 8000);
    let phones = std::thread::scope(|scope| {
        let runs = [
            scope.spawn(|| phone_a.run(&ns, 14)),
            scope.spawn(|| phone_b.run(&ns, 14)),
        ];
        wait_registered(&server, &ns, 2, "the two 101s did not register");
        let did = "sip:071112345101@10.99.0.1";
        let a = scope.spawn(|| gateway_a.call(&ns, did, 6));
        let b = scope.spawn(|| gateway_b.call(&ns, did, 6));
        let _ = (a.join().unwrap(), b.join().unwrap());
        runs.map(|r| r.join().unwrap())
    });
    let context = format!("{phones:#?}\n{}", server.log());
    for phone in &phones {
        assert_eq!(phone.matches("answering call").count(), 1, "{context}");
    }
    let share = |client: &Baresip, freq: f64| heard_share(client, freq, "a phone", &server);
    let heard = [
        (share(&phone_a, 440.0), share(&phone_a, 550.0)),
        (share(&phone_b, 550.0), share(&phone_b, 440.0)),
    ];
    for (own, other) in heard {
        assert!(
            own > 0.5 && other < 0.05,
            "each 101 hears its own town's carrier: {heard:?}\n{context}"
        );
    }

    // Out: town A's 101 calls a local number and 112, both on town A's carrier (SIPp,
    // echoing the audio back); its rule for town B's carrier is refused and never placed.
    let echo = support::scenario("uas_pcma_echo.xml");
    let callers: Vec<Baresip> = (0..3)
        .map(|_| town_phone("10.99.0.2", 880, TOWN_A, "101"))
        .collect();
    let (gateway, calls) = std::thread::scope(|scope| {
        let gateway =
            scope.spawn(|| support::carrier::echoing_carrier(&ns, &echo, "10.99.0.5", "2"));
        std::thread::sleep(std::time::Duration::from_millis(500));
        let calls: Vec<String> = ["0711987654", "112", "990711987654"]
            .iter()
            .zip(&callers)
            .map(|(number, caller)| caller.call(&ns, &format!("sip:{number}@{TOWN_A}"), 5))
            .collect();
        (gateway.join().unwrap(), calls)
    });
    support::assert_sipp_ok(&gateway, &server, "town A's carrier (a local call and 112)");
    let context = format!("{calls:#?}\n{}", server.log());
    for (caller, what) in callers.iter().zip(["the local call", "112"]) {
        let back = heard_share(caller, 880.0, what, &server);
        assert!(back > 0.5, "{what}: own tone back {back:.2}\n{context}");
    }
    let log = server.log();
    assert!(log.contains("the trunk is another town's"), "{context}");
    assert!(
        !log.contains("10.99.0.6:5080"),
        "town B's carrier was called\n{context}"
    );
    assert!(calls[2].contains("403"), "{context}");
}
