//! The console's users-and-phones pages and API against the real binary: an admin adds users
//! whose real phones (baresip) then register and whose calls the admin forwards, with the
//! forwarding proven by who answers and what the caller hears; CSV import all or nothing;
//! staff refused every admin route but changing their own phone; a password reset and a
//! lifted ban proven by which phone can register afterwards.

mod support;

use std::time::Duration;

use support::console::{Console, JSON, add_account, add_account_with_extension, csrf_of};
use support::{
    Baresip, Netns, Server, TempDir, add_user, assert_both_hear, heard_share, user_cli, wait_until,
    with_registered_phones,
};

fn audit_log(server: &Server) -> String {
    support::admin_ok(server.data_dir(), &["audit", "list"])
}

#[test]
fn an_admin_adds_users_whose_phones_register_and_forwards_one_to_the_other() {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    add_account(&server, "root", "admin", "root-secret-12");
    let admin = Console::sign_in(Some(&ns), &server, "root", "root-secret-12");

    // 101 and 103 through the API, 102 through the page's form.
    let created = admin.send(
        "POST",
        "/api/users",
        r#"{"extension": "101", "name": "Bürgerbüro", "password": "geheim123"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.json()["registered"], false);
    assert!(!created.body.contains("geheim123"), "{}", created.body);
    let added = admin.form(
        "/console/users",
        &[
            ("extension", "102"),
            ("name", "Kollegin"),
            ("password", "kollege77"),
            ("max_contacts", "2"),
            ("language", "de"),
        ],
    );
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(added.header("location"), Some("/console/users?done=added"));
    let created = admin.send(
        "POST",
        "/api/users",
        r#"{"extension": "103", "name": "Anrufer", "password": "anrufer99"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    // The same user twice is refused, as the CLI refuses it.
    let again = admin.send(
        "POST",
        "/api/users",
        r#"{"extension": "101", "name": "Doppelt", "password": "geheim123"}"#,
    );
    assert_eq!(again.status, 409, "{}", again.body);

    let phone_101 = Baresip::new("10.99.0.2", 660, "PCMU", 8000).registering("101", "geheim123");
    let phone_102 = Baresip::new("10.99.0.4", 880, "PCMU", 8000).registering("102", "kollege77");
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("103", "anrufer99");
    let (outputs, (registered, page, caller_out)) = with_registered_phones(
        &server,
        &ns,
        &[(&phone_101, &ns), (&phone_102, &ns)],
        || {
            // The console shows where 101's phone registered from.
            let mut registered = None;
            wait_until(Duration::from_secs(5), || {
                registered = admin.user("101").filter(|u| u["registered"] == true);
                registered.is_some()
            });
            let page = admin.get("/console/users").body;
            // Forward 101 to 102 and call 101 at once: no waiting for a reload.
            let set = admin.send(
                "PUT",
                "/api/users/101/settings",
                r#"{"forward_always": "102"}"#,
            );
            assert_eq!(set.status, 200, "{}", set.body);
            assert_eq!(set.json()["forward_always"], "102", "{}", set.body);
            let caller_out = caller.call(&ns, "sip:101@10.99.0.1", 6);
            (registered, page, caller_out)
        },
    );
    let registered =
        registered.unwrap_or_else(|| panic!("101 never shown registered\n{}", server.log()));
    let device = &registered["registrations"][0];
    assert_eq!(device["source"], "10.99.0.2:15060", "{registered}");
    assert_eq!(device["transport"], "udp", "{registered}");
    assert!(
        device["user_agent"]
            .as_str()
            .is_some_and(|a| a.contains("baresip")),
        "{registered}"
    );
    assert!(page.contains("10.99.0.2:15060 (udp"), "{page}");
    assert!(page.contains("Bürgerbüro"), "{page}");

    // The call to 101 was answered by 102's phone: each heard the other's tone, and 101's
    // phone (answering by itself) never took it.
    let outputs = format!("{caller_out}\n{outputs:?}");
    assert_both_hear(&phone_102, &caller, &server, &outputs);
    assert!(
        phone_101.heard().is_none(),
        "101's phone took a call\n{outputs}"
    );
    assert!(heard_share(&caller, 660.0, "the caller", &server) < 0.1);

    // The user page and the CLI see the forwarding; the audit log has who did what.
    let user_page = admin.get("/console/users/101");
    assert_eq!(user_page.status, 200);
    assert!(
        user_page
            .body
            .contains("id=\"forward_always\" name=\"forward_always\"")
            && user_page.body.contains("value=\"102\""),
        "{}",
        user_page.body
    );
    let shown = user_cli(server.data_dir(), &["show", "101"]);
    assert!(shown.contains("always to 102"), "{shown}");
    let audit = audit_log(&server);
    for action in ["user.create", "user.settings"] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(action) && l.contains("root") && l.contains("101")),
            "{action}: {audit}"
        );
    }
    for secret in ["geheim123", "kollege77", "anrufer99"] {
        assert!(
            !audit.contains(secret),
            "{secret} in the audit log: {audit}"
        );
    }
}

#[test]
fn a_csv_import_with_one_bad_row_stores_nothing_and_names_its_line_a_good_one_stores_all() {
    let server = Server::start(None, &[]);
    add_account(&server, "root", "admin", "root-secret-12");
    let admin = Console::sign_in(None, &server, "root", "root-secret-12");

    let bad =
        "extension,name,password\n201,Standesamt,geheim123\n202,Kasse,kurz\n203,Bauamt,geheim456\n";
    let refused = admin.raw(
        "POST",
        "/api/users/import",
        &[
            ("Content-Type", "text/csv"),
            ("Cookie", &admin.cookie),
            ("X-CSRF-Token", &admin.csrf),
        ],
        bad,
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    let reason = refused.json()["reason"].as_str().unwrap_or("").to_owned();
    assert!(reason.contains("1 bad row, nothing imported"), "{reason}");
    assert!(
        reason.contains("line 3: password has 4 characters"),
        "{reason}"
    );
    assert_eq!(admin.get("/api/users").json(), serde_json::json!([]));

    // The page's form: the same refusal, the text kept for fixing.
    let page = admin.form("/console/users/import", &[("csv", bad)]);
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.body.contains("line 3: password has 4"),
        "{}",
        page.body
    );
    assert!(page.body.contains("202,Kasse,kurz"), "{}", page.body);
    assert_eq!(admin.get("/api/users").json(), serde_json::json!([]));
    let listed = user_cli(server.data_dir(), &["list"]);
    assert!(listed.starts_with("no users"), "{listed}");

    // German Excel: semicolons, a list of networks in one field.
    let good = "extension;name;password;allow\n201;Standesamt;geheim123;10.8.0.0/16,192.168.5.0/24\n\
                202;Kasse;geheim789;\n203;Bauamt;geheim456;\n";
    let imported = admin.form("/console/users/import", &[("csv", good)]);
    assert_eq!(imported.status, 303, "{}", imported.body);
    assert_eq!(
        imported.header("location"),
        Some("/console/users?done=imported")
    );
    let users = admin.get("/api/users").json();
    let extensions: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["extension"].as_str().unwrap())
        .collect();
    assert_eq!(extensions, ["201", "202", "203"], "{users}");
    assert_eq!(
        users[0]["allowed_networks"],
        serde_json::json!(["10.8.0.0/16", "192.168.5.0/24"])
    );
    let listed = user_cli(server.data_dir(), &["list"]);
    for extension in ["201", "202", "203"] {
        assert!(listed.contains(extension), "{listed}");
    }
    let page = admin.get("/console/users?done=imported");
    assert!(
        page.body.contains("The users were imported."),
        "{}",
        page.body
    );
    // Importing the same file again: every row is refused by its line, nothing changes.
    let again = admin.raw(
        "POST",
        "/api/users/import",
        &[("Cookie", &admin.cookie), ("X-CSRF-Token", &admin.csrf)],
        good,
    );
    assert_eq!(again.status, 422, "{}", again.body);
    assert!(
        again.body.contains("line 2: user 201 already exists"),
        "{}",
        again.body
    );
    let audit = audit_log(&server);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("user.import") && l.contains("root") && l.contains("201")),
        "{audit}"
    );
    assert!(!audit.contains("geheim"), "{audit}");
}

#[test]
fn staff_are_refused_every_user_and_ban_route_but_change_their_own_phone_and_voicemail() {
    let data = TempDir::new("console-users-staff");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let server = Server::start_with_data(None, &[], data);
    add_account_with_extension(&server, "anna", "staff", "anna-secret-1", Some("101"));
    add_account(&server, "bernd", "staff", "bernd-secret-1");
    let anna = Console::sign_in(None, &server, "anna", "anna-secret-1");

    // Every admin route says 403, with the session's CSRF token and all.
    for (method, path, body) in [
        ("GET", "/api/users", ""),
        (
            "POST",
            "/api/users",
            r#"{"extension": "150", "name": "X", "password": "geheim123"}"#,
        ),
        (
            "POST",
            "/api/users/import",
            "extension,name,password\n150,X,geheim123\n",
        ),
        ("GET", "/api/users/101", ""),
        ("DELETE", "/api/users/102", ""),
        (
            "PUT",
            "/api/users/102/password",
            r#"{"password": "gekapert1"}"#,
        ),
        (
            "PUT",
            "/api/users/102/settings",
            r#"{"forward_always": "101"}"#,
        ),
        ("GET", "/api/bans", ""),
        ("DELETE", "/api/bans/10.99.0.9", ""),
    ] {
        let answer = anna.send(method, path, body);
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
    }
    for path in ["/console/users", "/console/users/101"] {
        let answer = anna.get(path);
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
        assert!(!answer.body.contains("kollege"), "{}", answer.body);
    }
    for (path, fields) in [
        (
            "/console/users",
            &[
                ("extension", "150"),
                ("name", "X"),
                ("password", "geheim123"),
            ][..],
        ),
        (
            "/console/users/import",
            &[("csv", "extension,name,password\n150,X,geheim123\n")][..],
        ),
        (
            "/console/users/102/password",
            &[("password", "gekapert1")][..],
        ),
        (
            "/console/users/102/settings",
            &[("forward_always", "101")][..],
        ),
        ("/console/users/102/delete", &[("confirm", "on")][..]),
        ("/console/bans/lift", &[("address", "10.99.0.9")][..]),
    ] {
        let answer = anna.form(path, fields);
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
    }
    let listed = user_cli(server.data_dir(), &["list"]);
    assert!(!listed.contains("150"), "{listed}");
    let shown = user_cli(server.data_dir(), &["show", "102"]);
    assert!(shown.contains("forwarding    none"), "{shown}");

    // Her own phone: read, changed by the API (only with the CSRF token), by the form.
    let phone = anna.get("/api/phone").json();
    assert_eq!(phone["user"]["extension"], "101", "{phone}");
    let change = r#"{"forward_always": "0711 123-456", "dnd": true}"#;
    let refused = anna.send_without_csrf("PUT", "/api/phone/settings", change);
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = anna.raw(
        "PUT",
        "/api/phone/settings",
        &[JSON, ("Cookie", &anna.cookie), ("X-CSRF-Token", "forged")],
        change,
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        anna.get("/api/phone").json()["user"]["settings"]["forward_always"],
        serde_json::Value::Null
    );
    let changed = anna.send("PUT", "/api/phone/settings", change);
    assert_eq!(changed.status, 200, "{}", changed.body);
    let settings = &anna.get("/api/phone").json()["user"]["settings"];
    assert_eq!(settings["forward_always"], "0711123456", "{settings}");
    assert_eq!(settings["dnd"], true, "{settings}");
    let shown = user_cli(server.data_dir(), &["show", "101"]);
    assert!(shown.contains("always to 0711123456"), "{shown}");
    let bad = anna.send("PUT", "/api/phone/settings", r#"{"forward_busy": "anna"}"#);
    assert_eq!(bad.status, 400, "{}", bad.body);
    let page = anna.get("/console/phone");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("value=\"0711123456\""), "{}", page.body);
    let form = anna.form(
        "/console/phone/settings",
        &[
            ("forward_always", ""),
            ("forward_busy", "102"),
            ("forward_no_answer", ""),
            ("no_answer_seconds", "20"),
            ("follow_me", ""),
        ],
    );
    assert_eq!(form.status, 303, "{}", form.body);
    let settings = &anna.get("/api/phone").json()["user"]["settings"];
    assert_eq!(settings["forward_always"], serde_json::Value::Null);
    assert_eq!(settings["forward_busy"], "102", "{settings}");
    assert_eq!(settings["dnd"], false, "an unticked box is off: {settings}");
    let other = user_cli(server.data_dir(), &["show", "102"]);
    assert!(other.contains("forwarding    none"), "{other}");

    // Her voicemail: listed, played, not someone else's, deleted with its file.
    let store = store::Store::open(server.data_dir()).unwrap();
    let dir = server.data_dir().join("voicemail");
    std::fs::create_dir_all(&dir).unwrap();
    let mut ids = Vec::new();
    for mailbox in ["101", "102"] {
        let path = dir.join(format!("{mailbox}.wav"));
        support::write_tone(&path, 440, 8000, 2);
        let id = store
            .voicemail_add(&store::NewVoicemail {
                mailbox: mailbox.into(),
                caller: "0711555".into(),
                received_at_ms: 1_700_000_000_000,
                duration_ms: 2000,
                path,
            })
            .unwrap();
        ids.push(id.0);
    }
    let (own, others) = (ids[0], ids[1]);
    let listed = anna.get("/api/phone/voicemail").json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], own, "{listed}");
    let audio = anna.get(&format!("/api/phone/voicemail/{own}/audio"));
    assert_eq!(audio.status, 200);
    assert_eq!(audio.header("content-type"), Some("audio/wav"));
    assert!(audio.body.starts_with("RIFF"));
    let download = anna.get(&format!("/api/phone/voicemail/{own}/audio?download=1"));
    assert!(
        download
            .header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment")),
        "{:?}",
        download.headers
    );
    let page = anna.get("/console/phone").body;
    assert!(
        page.contains(&format!(
            "<audio controls preload=\"none\" src=\"/api/phone/voicemail/{own}/audio\""
        )),
        "{page}"
    );
    assert_eq!(
        anna.get(&format!("/api/phone/voicemail/{others}/audio"))
            .status,
        404
    );
    let refused = anna.send("DELETE", &format!("/api/phone/voicemail/{others}"), "");
    assert_eq!(refused.status, 404, "{}", refused.body);
    assert!(dir.join("102.wav").exists());
    let deleted = anna.send("DELETE", &format!("/api/phone/voicemail/{own}"), "");
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert!(!dir.join("101.wav").exists());
    assert_eq!(
        anna.get("/api/phone/voicemail").json(),
        serde_json::json!([])
    );
    assert!(
        store
            .voicemail_get(store::VoicemailId(others))
            .unwrap()
            .is_some()
    );

    // An account without an extension has no phone to show or change.
    let bernd = Console::sign_in(None, &server, "bernd", "bernd-secret-1");
    let answer = bernd.get("/api/phone");
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert_eq!(answer.json()["error"], "no_extension");
    let answer = bernd.send("PUT", "/api/phone/settings", r#"{"dnd": true}"#);
    assert_eq!(answer.status, 404, "{}", answer.body);
    let page = bernd.get("/console/phone");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("no extension of its own"),
        "{}",
        page.body
    );

    let audit = audit_log(&server);
    for action in ["phone.settings", "voicemail.delete"] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(action) && l.contains("anna") && l.contains("101")),
            "{action}: {audit}"
        );
    }
}

#[test]
fn a_password_reset_registers_the_new_password_only_and_a_lifted_ban_lets_the_phone_back() {
    let ns = Netns::new();
    let data = TempDir::new("console-users-password");
    add_user(data.path(), "101", "geheim123");
    let config = data.path().join("one-failure-bans.toml");
    std::fs::write(&config, "[registrar]\nban-after-failures = 1\n").unwrap();
    let config = config.display().to_string();
    let server = Server::start_with_data(Some(&ns), &["--config", &config], data);
    add_account(&server, "root", "admin", "root-secret-12");
    let admin = Console::sign_in(Some(&ns), &server, "root", "root-secret-12");

    let reset = admin.send(
        "PUT",
        "/api/users/101/password",
        r#"{"password": "neues-geheim1"}"#,
    );
    assert_eq!(reset.status, 204, "{}", reset.body);

    // The phone still set to the old password is refused (and, one failure being enough
    // here, its address banned): it never shows registered.
    let old = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim123");
    let (old_out, ever_registered) = std::thread::scope(|scope| {
        let run = scope.spawn(|| old.run(&ns, 5));
        let ever = wait_until(Duration::from_secs(5), || {
            admin.user("101").is_some_and(|u| u["registered"] == true)
        });
        (run.join().unwrap(), ever)
    });
    assert!(
        !ever_registered,
        "registered with the old password\n{old_out}\n{}",
        server.log()
    );
    let bans = admin.get("/api/bans").json();
    assert!(
        bans.as_array()
            .is_some_and(|b| b.iter().any(|ban| ban["source"] == "10.99.0.2")),
        "{bans}\n{old_out}\n{}",
        server.log()
    );
    let page = admin.get("/console/users");
    assert!(
        page.body.contains("<th scope=\"row\">10.99.0.2</th>"),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    assert_eq!(csrf, admin.csrf);

    // The admin lifts the ban on the page; the phone with the new password registers from
    // the same address.
    let lifted = admin.form("/console/bans/lift", &[("address", "10.99.0.2")]);
    assert_eq!(lifted.status, 303, "{}", lifted.body);
    assert_eq!(admin.get("/api/bans").json(), serde_json::json!([]));
    let new = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "neues-geheim1");
    let (new_out, registered) = std::thread::scope(|scope| {
        let run = scope.spawn(|| new.run(&ns, 6));
        let registered = wait_until(Duration::from_secs(5), || {
            admin.user("101").is_some_and(|u| u["registered"] == true)
        });
        (run.join().unwrap(), registered)
    });
    assert!(
        registered,
        "not registered with the new password\n{new_out}\n{}",
        server.log()
    );
    let audit = audit_log(&server);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("user.password") && l.contains("101")),
        "{audit}"
    );
    assert!(
        audit
            .lines()
            .any(|l| l.contains("ban.lift") && l.contains("10.99.0.2")),
        "{audit}"
    );
    assert!(!audit.contains("neues-geheim1"), "{audit}");
}

#[test]
fn in_the_browser_an_admin_adds_users_sees_the_phone_registered_and_forwards_its_calls() {
    use support::browser::{Browser, assert_accessible, node_modules};
    let axe = node_modules().join("axe-core/axe.min.js");
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    add_account(&server, "root", "admin", "root-secret-12");
    // The caller is a colleague at another desk, set up beforehand.
    add_user(server.data_dir(), "103", "anrufer99");

    let browser = Browser::start(
        &ns,
        "tests/console/admin.js",
        serde_json::json!({
            "origin": format!("http://{}", server.http),
            "user": "root",
            "password": "root-secret-12",
            "flow": "users",
            "users": [
                {"extension": "101", "name": "Bürgerbüro", "password": "geheim1234"},
                {"extension": "102", "name": "Kollegin", "password": "kollege777"},
            ],
            "watch": "101",
            "source": "10.99.0.2:15060",
            "forwardTo": "102",
            "axe": axe,
            "screenshots": support::repo().join("target/console-screenshots"),
            "locale": "de-DE",
        }),
    );
    assert!(
        browser.wait_for("added", Duration::from_secs(60)).is_some(),
        "the users were not added in the page: {:#?}\n{}",
        browser.lines(),
        server.log()
    );
    // Both desk phones register with what the admin typed in; 102 answers by itself.
    let phone_101 = Baresip::new("10.99.0.2", 660, "PCMU", 8000).registering("101", "geheim1234");
    let phone_102 = Baresip::new("10.99.0.4", 880, "PCMU", 8000).registering("102", "kollege777");
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("103", "anrufer99");
    let (outputs, caller_out) = std::thread::scope(|scope| {
        let runs = [
            scope.spawn(|| phone_101.run(&ns, 25)),
            scope.spawn(|| phone_102.run(&ns, 25)),
        ];
        let forwarded = browser.wait_for("forwarded", Duration::from_secs(20));
        assert!(
            forwarded.is_some(),
            "the forwarding was not set in the page: {:#?}\n{}",
            browser.lines(),
            server.log()
        );
        let caller_out = caller.call(&ns, "sip:101@10.99.0.1", 6);
        let outputs: Vec<String> = runs.into_iter().map(|r| r.join().unwrap()).collect();
        (outputs, caller_out)
    });
    let lines = browser.finish();
    let step = |name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}: {lines:#?}"))
    };
    // Each add came back to the list with its notice.
    let added: Vec<_> = lines.iter().filter(|l| l["step"] == "added-one").collect();
    assert_eq!(added.len(), 2, "{lines:#?}");
    assert!(
        added
            .iter()
            .all(|a| a["url"].as_str().is_some_and(|u| u.ends_with("done=added"))),
        "{added:#?}"
    );
    // The list showed 101 registered from its phone's address.
    let registered = step("registered");
    let row = registered["row"].as_str().unwrap_or_default();
    assert!(row.contains("10.99.0.2:15060"), "{registered:#}");
    assert!(row.contains("Bürgerbüro"), "{registered:#}");
    let forwarded = step("forwarded");
    assert_eq!(forwarded["value"], "102", "{forwarded:#}");

    // The call to 101 went where the admin sent it: 102 answered, both heard each other,
    // and 101's phone never took it.
    let outputs = format!("{caller_out}\n{outputs:?}");
    assert_both_hear(&phone_102, &caller, &server, &outputs);
    assert!(
        phone_101.heard().is_none(),
        "101's phone took the call\n{outputs}"
    );
    assert_accessible(&lines, &["users-registered", "user-forwarded"]);
}

#[test]
fn a_deleted_users_registered_phone_is_not_rung_any_more() {
    let ns = Netns::new();
    let data = TempDir::new("deleted-user");
    add_user(data.path(), "101", "geheim1234");
    add_user(data.path(), "103", "anrufer99");
    let server = Server::start_with_data(Some(&ns), &[], data);
    add_account(&server, "root", "admin", "root-secret-12");
    let admin = Console::sign_in(Some(&ns), &server, "root", "root-secret-12");
    let phone = Baresip::new("10.99.0.2", 660, "PCMU", 8000).registering("101", "geheim1234");
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("103", "anrufer99");
    let (outputs, (deleted, caller_out)) =
        with_registered_phones(&server, &ns, &[(&phone, &ns)], || {
            let deleted = admin.send("DELETE", "/api/users/101", "");
            let caller_out = caller.call(&ns, "sip:101@10.99.0.1", 4);
            (deleted, caller_out)
        });
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    // The phone is still registered (until its binding expires), but nobody calls a user
    // that is gone through it.
    assert!(
        phone.heard().is_none(),
        "the deleted user's phone took the call\n{caller_out}\n{outputs:?}\n{}",
        server.log()
    );
}
