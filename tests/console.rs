//! The web console over real HTTP against the real binary: sign-in with accounts made by
//! `amtsleitung account`, the session cookie's flags, CSRF, staff seeing and changing only
//! their own rooms (per API route), the sign-in guard, the audit log, sign-out.

mod support;

use std::net::SocketAddr;

use support::Server;
use support::console::{FORM, JSON, add_account, csrf_of, get_json, ns_request, request, sign_in};

#[test]
fn staff_sign_in_create_a_room_and_see_and_change_only_their_own() {
    let server = Server::start(None, &[]);
    add_account(&server, "anna", "staff", "anna-secret-1");
    add_account(&server, "bernd", "staff", "bernd-secret-1");
    add_account(&server, "root", "admin", "root-secret-12");

    // Signed out: pages send to the sign-in, the API says 401.
    let answer = request(server.http, "GET", "/console/rooms", &[], "");
    assert_eq!(answer.status, 303);
    assert_eq!(answer.header("location"), Some("/console/sign-in"));
    assert_eq!(
        request(server.http, "GET", "/api/rooms", &[], "").status,
        401
    );
    let page = request(server.http, "GET", "/console/sign-in", &[], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<html lang=\"en\">"), "{}", page.body);
    assert!(
        page.header("content-security-policy")
            .is_some_and(|csp| csp.contains("frame-ancestors 'none'")),
        "{:?}",
        page.headers
    );

    // A wrong password and an unknown name read the same.
    for body in [
        "name=anna&password=wrong-password",
        "name=nobody&password=wrong-password",
    ] {
        let answer = request(server.http, "POST", "/console/sign-in", &[FORM], body);
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert!(
            answer.body.contains("Wrong user name or password."),
            "{}",
            answer.body
        );
        assert!(answer.header("set-cookie").is_none());
    }

    let answer = request(
        server.http,
        "POST",
        "/console/sign-in",
        &[FORM],
        "name=anna&password=anna-secret-1",
    );
    let set_cookie = answer.header("set-cookie").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let anna = set_cookie.split(';').next().unwrap().to_owned();

    let page = request(
        server.http,
        "GET",
        "/console/rooms",
        &[("Cookie", &anna)],
        "",
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Signed in as anna (staff)"),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);

    // A form without the session's token is refused, and nothing is created.
    let answer = request(
        server.http,
        "POST",
        "/console/rooms",
        &[FORM, ("Cookie", &anna)],
        "number=4711&pin=1234",
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    let answer = request(
        server.http,
        "POST",
        "/console/rooms",
        &[FORM, ("Cookie", &anna)],
        "csrf=forged&number=4711&pin=1234",
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    let listed = request(server.http, "GET", "/api/rooms", &[("Cookie", &anna)], "");
    assert_eq!(listed.json(), serde_json::json!([]));

    let answer = request(
        server.http,
        "POST",
        "/console/rooms",
        &[FORM, ("Cookie", &anna)],
        &format!("csrf={csrf}&number=4711&pin=1234&moderator_pin=987654&max_participants=20"),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert!(
        answer.body.contains("Room 4711 was created."),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("84711"),
        "dial-in number: {}",
        answer.body
    );
    assert!(
        !answer.body.contains("1234"),
        "the PIN is never shown: {}",
        answer.body
    );
    // The server's own store has it, with its PIN: the CLI sees it too.
    let out = support::amtsleitung()
        .args(["room", "list", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("4711"), "{list}");

    // Another staff member's room and an admin's: invisible and untouchable for anna.
    let bernd = sign_in(&server, "bernd", "bernd-secret-1");
    let me: serde_json::Value = get_json(&server, "/api/me", &bernd);
    let bernd_csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let answer = request(
        server.http,
        "POST",
        "/api/rooms",
        &[JSON, ("Cookie", &bernd), ("X-CSRF-Token", &bernd_csrf)],
        r#"{"number": "5000", "pin": "5555"}"#,
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.json()["owner"], "bernd");
    // Staff cannot create a room for someone else.
    let answer = request(
        server.http,
        "POST",
        "/api/rooms",
        &[JSON, ("Cookie", &bernd), ("X-CSRF-Token", &bernd_csrf)],
        r#"{"number": "5001", "owner": "anna"}"#,
    );
    assert_eq!(answer.status, 403, "{}", answer.body);

    let me: serde_json::Value = get_json(&server, "/api/me", &anna);
    assert_eq!(me["role"], "staff");
    let anna_csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let rooms = get_json(&server, "/api/rooms", &anna);
    let numbers: Vec<&str> = rooms
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["4711"], "{rooms}");
    assert_eq!(
        request(
            server.http,
            "GET",
            "/api/rooms/5000",
            &[("Cookie", &anna)],
            ""
        )
        .status,
        403
    );
    assert_eq!(
        request(
            server.http,
            "DELETE",
            "/api/rooms/5000",
            &[("Cookie", &anna), ("X-CSRF-Token", &anna_csrf)],
            ""
        )
        .status,
        403
    );
    // Every route of a room answers 403 for someone else's room, with a valid token.
    for (method, path, body) in [
        ("GET", "/api/rooms/5000/live", ""),
        ("GET", "/console/rooms/5000", ""),
        (
            "PUT",
            "/api/rooms/5000/members/1/muted",
            r#"{"muted": true}"#,
        ),
        ("DELETE", "/api/rooms/5000/members/1", ""),
        ("PUT", "/api/rooms/5000/locked", r#"{"locked": true}"#),
        ("POST", "/api/rooms/5000/end", ""),
        ("POST", "/api/rooms/5000/mute-all", ""),
        ("PUT", "/api/rooms/5000/recording", r#"{"recording": true}"#),
    ] {
        let answer = request(
            server.http,
            method,
            path,
            &[JSON, ("Cookie", &anna), ("X-CSRF-Token", &anna_csrf)],
            body,
        );
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
    }
    // Bernd's token is not anna's.
    assert_eq!(
        request(
            server.http,
            "DELETE",
            "/api/rooms/4711",
            &[("Cookie", &anna), ("X-CSRF-Token", &bernd_csrf)],
            ""
        )
        .status,
        403
    );
    assert_eq!(
        request(
            server.http,
            "GET",
            "/api/rooms/4711",
            &[("Cookie", &anna)],
            ""
        )
        .status,
        200
    );

    // The admin sees everyone's rooms with their owners.
    let root = sign_in(&server, "root", "root-secret-12");
    let rooms = get_json(&server, "/api/rooms", &root);
    assert_eq!(rooms.as_array().unwrap().len(), 2, "{rooms}");
    let page = request(
        server.http,
        "GET",
        "/console/rooms",
        &[("Cookie", &root)],
        "",
    );
    assert!(page.body.contains("All conference rooms"), "{}", page.body);
    assert!(page.body.contains("bernd"), "{}", page.body);

    // Anna deletes her own room.
    assert_eq!(
        request(
            server.http,
            "DELETE",
            "/api/rooms/4711",
            &[("Cookie", &anna), ("X-CSRF-Token", &anna_csrf)],
            ""
        )
        .status,
        204
    );

    // Every change is in the audit log: who, from where, what; never a PIN.
    let out = support::amtsleitung()
        .args(["audit", "list", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{audit}");
    let created = audit
        .lines()
        .find(|l| l.contains("room.create") && l.contains("4711"))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        created.contains("anna") && created.contains("127.0.0.1"),
        "{audit}"
    );
    assert!(
        audit
            .lines()
            .any(|l| l.contains("room.delete") && l.contains("4711") && l.contains("anna")),
        "{audit}"
    );
    for secret in ["1234", "987654", "5555", "secret"] {
        assert!(
            !audit.contains(secret),
            "{secret} in the audit log: {audit}"
        );
    }

    // Signing out ends the session on the server, not only in this browser.
    let answer = request(
        server.http,
        "POST",
        "/console/sign-out",
        &[FORM, ("Cookie", &anna)],
        &format!("csrf={anna_csrf}"),
    );
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(
        answer
            .header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "{:?}",
        answer.headers
    );
    assert_eq!(
        request(server.http, "GET", "/api/me", &[("Cookie", &anna)], "").status,
        401
    );
}

#[test]
fn wrong_passwords_slow_down_then_block_the_source() {
    let server = Server::start(None, &[]);
    add_account(&server, "anna", "staff", "anna-secret-1");
    let wrong = |n: usize| {
        request(
            server.http,
            "POST",
            "/console/sign-in",
            &[FORM],
            &format!("name=anna&password=wrong-{n}"),
        )
    };
    for n in 0..5 {
        assert_eq!(wrong(n).status, 401);
    }
    // The sixth try at once must wait.
    let answer = wrong(5);
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert!(
        answer.header("retry-after").is_some(),
        "{:?}",
        answer.headers
    );
    assert!(answer.body.contains("Please wait"), "{}", answer.body);
    for n in 5..10 {
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(wrong(n).status, 401, "try {n}");
    }
    // Ten failures: this source is blocked, even with the right password.
    let answer = request(
        server.http,
        "POST",
        "/console/sign-in",
        &[FORM],
        "name=anna&password=anna-secret-1",
    );
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert!(
        answer.body.contains("blocked for 15 minutes"),
        "{}",
        answer.body
    );
    assert!(answer.header("set-cookie").is_none());
}

#[test]
fn staff_see_their_room_live_mute_a_caller_out_of_the_others_audio_and_remove_it() {
    let ns = support::Netns::new();
    let server = Server::start(Some(&ns), &[]);
    add_account(&server, "anna", "staff", "anna-secret-1");
    let http = server.http;
    let signed_in = ns_request(
        &ns,
        http,
        "POST",
        "/console/sign-in",
        &[FORM],
        "name=anna&password=anna-secret-1",
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let cookie = signed_in
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me = ns_request(&ns, http, "GET", "/api/me", &[("Cookie", &cookie)], "").json();
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let created = ns_request(
        &ns,
        http,
        "POST",
        "/api/rooms",
        &[JSON, ("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        r#"{"number": "4711"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);

    // The live view's event stream: the state at once, then each change as it happens.
    let events = ns
        .command("curl")
        .args(["-s", "-N", "--max-time", "8", "-H"])
        .arg(format!("Cookie: {cookie}"))
        .arg(format!("http://{http}/api/rooms/4711/events"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The listener (1000 Hz) calls first, the talker (440 Hz) 700 ms later; both stay 16 s.
    let listener = support::Baresip::new("10.99.0.3", 1000, "PCMU", 8000);
    let talker = support::Baresip::new("10.99.0.2", 440, "PCMU", 8000);
    let uri = "sip:84711@10.99.0.1:5060";
    let live_view = || {
        ns_request(
            &ns,
            http,
            "GET",
            "/api/rooms/4711/live",
            &[("Cookie", &cookie)],
            "",
        )
        .json()
    };
    let started = std::time::Instant::now();
    let (logs, live_seen, removed_at) = std::thread::scope(|scope| {
        let calls = scope.spawn(|| support::call_staggered(&ns, &[&listener, &talker], uri, 16));
        // Both appear in the live view, the talker marked talking.
        let mut live = serde_json::Value::Null;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
        while std::time::Instant::now() < deadline {
            live = live_view();
            let members = live["members"].as_array().cloned().unwrap_or_default();
            if members.len() == 2 && members.iter().all(|m| m["talking"] == true) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let live_seen = started.elapsed();
        let members = live["members"].as_array().cloned().unwrap_or_default();
        assert_eq!(members.len(), 2, "{live}");
        assert!(members.iter().all(|m| m["kind"] == "phone"), "{live}");
        let talker_id = members[1]["id"].as_str().unwrap().to_owned();
        // Let the listener hear the talker for a while, then mute it.
        std::thread::sleep(std::time::Duration::from_secs(6).saturating_sub(started.elapsed()));
        let path = format!("/api/rooms/4711/members/{talker_id}/muted");
        let muted = ns_request(
            &ns,
            http,
            "PUT",
            &path,
            &[JSON, ("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
            r#"{"muted": true}"#,
        );
        assert_eq!(muted.status, 204, "{}", muted.body);
        let live = live_view();
        assert_eq!(live["members"][1]["muted"], true, "{live}");
        std::thread::sleep(std::time::Duration::from_secs(11).saturating_sub(started.elapsed()));
        let path = format!("/api/rooms/4711/members/{talker_id}");
        let removed = ns_request(
            &ns,
            http,
            "DELETE",
            &path,
            &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
            "",
        );
        assert_eq!(removed.status, 204, "{}", removed.body);
        let removed_at = started.elapsed();
        // The talker's call ends: one member left.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let live = live_view();
            if live["members"].as_array().is_some_and(|m| m.len() == 1) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the removed caller is still in the room: {live}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        (calls.join().unwrap(), live_seen, removed_at)
    });
    eprintln!("live view complete after {live_seen:?}; removed at {removed_at:?}");
    let streamed = String::from_utf8_lossy(&events.wait_with_output().unwrap().stdout).into_owned();
    let states: Vec<serde_json::Value> = streamed
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    eprintln!("{} live states streamed in 8 s", states.len());
    assert_eq!(
        states.first().map(|s| s["open"].clone()),
        Some(false.into()),
        "{streamed}"
    );
    assert!(
        states
            .iter()
            .any(|s| s["members"].as_array().is_some_and(|m| m.len() == 2)),
        "{streamed}"
    );
    // Sent when something changed, not over and over.
    assert!(states.len() < 40, "{streamed}");
    assert!(
        states.windows(2).all(|w| w[0] != w[1]),
        "the same state sent twice: {streamed}"
    );
    let heard = listener
        .heard()
        .unwrap_or_else(|| panic!("the listener recorded nothing\n{}", logs[0]));
    let (samples, rate) = support::read_wav(&heard);
    let r = rate as usize;
    let window = |from: f64, to: f64| {
        let a = ((from * r as f64) as usize).min(samples.len());
        let b = ((to * r as f64) as usize).min(samples.len());
        support::tone_share(&samples[a..b], rate, 440.0, 0.0)
    };
    let before = window(2.5, 5.0);
    let after = window(7.5, 10.0);
    eprintln!("440 Hz share the listener heard: before the mute {before:.2}, after {after:.2}");
    assert!(
        before > 0.3,
        "talker not heard before the mute ({before:.2})\n{}",
        server.log()
    );
    assert!(
        after < 0.05,
        "talker still heard after the mute ({after:.2})\n{}",
        server.log()
    );
    // The talker's call was ended by the server well before its own 16 s.
    assert!(
        server
            .log()
            .contains("removed from the room by a moderator"),
        "{}\n{}",
        logs[1],
        server.log()
    );
}

#[test]
fn directory_accounts_sign_in_with_their_ldap_password_and_group_role() {
    use support::slapd::{BASE, Slapd};
    let slapd = Slapd::start();
    let anna = format!("uid=anna,ou=people,{BASE}");
    let admins = format!("cn=pbx-admins,ou=groups,{BASE}");
    slapd.add(&format!(
        "dn: {anna}\nobjectClass: inetOrgPerson\nuid: anna\ncn: Anna Amt\nsn: Amt\n\
         telephoneNumber: 101\nuserPassword: {hash}\n\n\
         dn: uid=bernd,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: bernd\n\
         cn: Bernd Benutzer\nsn: Benutzer\ntelephoneNumber: 102\nuserPassword: bernd-ldap-pw\n\n\
         dn: uid=carl,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: carl\n\
         cn: Carl\nsn: C\ntelephoneNumber: 103\nuserPassword: carl-ldap-pw\n\n\
         dn: {admins}\nobjectClass: groupOfNames\ncn: pbx-admins\nmember: {anna}\n",
        hash = Slapd::hash("anna-ldap-pw"),
    ));
    let dir = support::TempDir::new("console-ldap");
    let config = dir.path().join("amtsleitung.toml");
    std::fs::write(
        &config,
        format!(
            "[ldap]\nurl = \"{}\"\nuser-dn = \"uid={{user}},ou=people,{BASE}\"\n\
             admin-group = \"{admins}\"\n",
            slapd.url()
        ),
    )
    .unwrap();
    let server = Server::start(None, &["--config", config.to_str().unwrap()]);
    // A local account named like a directory user keeps its own password only.
    add_account(&server, "carl", "staff", "carl-local-pw");

    let anna_cookie = sign_in(&server, "anna", "anna-ldap-pw");
    let me = get_json(&server, "/api/me", &anna_cookie);
    assert_eq!(me["role"], "admin", "{me}");
    assert_eq!(me["extension"], "101", "{me}");
    let bernd_cookie = sign_in(&server, "bernd", "bernd-ldap-pw");
    let me = get_json(&server, "/api/me", &bernd_cookie);
    assert_eq!(me["role"], "staff", "{me}");

    for (name, password) in [
        ("anna", "wrong-password"),
        ("bernd", "anna-ldap-pw"),
        ("carl", "carl-ldap-pw"),
        ("anna)(uid=*", "anna-ldap-pw"),
    ] {
        let answer = request(
            server.http,
            "POST",
            "/console/sign-in",
            &[FORM],
            &format!(
                "name={}&password={password}",
                name.replace(')', "%29")
                    .replace('(', "%28")
                    .replace('=', "%3D")
                    .replace('*', "%2A")
            ),
        );
        assert_eq!(answer.status, 401, "{name}: {}", answer.body);
        assert!(answer.header("set-cookie").is_none(), "{name}");
    }
    sign_in(&server, "carl", "carl-local-pw");
    // The directory's accounts are listed as such.
    let out = support::amtsleitung()
        .args(["account", "list", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    let anna_line = list.lines().find(|l| l.starts_with("anna")).unwrap_or("");
    assert!(
        anna_line.contains("admin") && anna_line.contains("ldap"),
        "{list}"
    );
}

#[test]
fn api_tokens_let_scripts_act_as_their_account_until_revoked() {
    let server = Server::start(None, &[]);
    add_account(&server, "anna", "staff", "anna-secret-1");
    add_account(&server, "bernd", "staff", "bernd-secret-1");
    let bernd = sign_in(&server, "bernd", "bernd-secret-1");
    let bernd_csrf = get_json(&server, "/api/me", &bernd)["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = request(
        server.http,
        "POST",
        "/api/rooms",
        &[JSON, ("Cookie", &bernd), ("X-CSRF-Token", &bernd_csrf)],
        r#"{"number": "5000"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);

    // A token made with the CLI, shown once.
    let out = support::amtsleitung()
        .args(["account", "token", "add", "anna", "--label", "room report"])
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = printed
        .lines()
        .find(|l| l.starts_with("amt_"))
        .unwrap_or_else(|| panic!("no token in {printed}"))
        .to_owned();
    let bearer = format!("Bearer {token}");
    let auth = ("Authorization", bearer.as_str());

    // It acts as anna: her rooms, no CSRF token needed (no browser sends it by itself),
    // and still not bernd's room.
    let answer = request(
        server.http,
        "POST",
        "/api/rooms",
        &[JSON, auth],
        r#"{"number": "4711"}"#,
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    let rooms = request(server.http, "GET", "/api/rooms", &[auth], "").json();
    assert_eq!(rooms.as_array().unwrap().len(), 1, "{rooms}");
    assert_eq!(rooms[0]["number"], "4711");
    assert_eq!(
        request(server.http, "GET", "/api/rooms/5000", &[auth], "").status,
        403
    );
    let bad = ("Authorization", "Bearer amt_not-a-token");
    assert_eq!(
        request(server.http, "GET", "/api/rooms", &[bad], "").status,
        401
    );

    // Listed without the secret; bernd may not revoke it; anna's session makes another.
    let listed = request(server.http, "GET", "/api/tokens", &[auth], "");
    assert_eq!(listed.status, 200);
    assert!(!listed.body.contains(&token), "{}", listed.body);
    let id = listed.json()[0]["id"].as_i64().unwrap();
    assert_eq!(listed.json()[0]["label"], "room report");
    let path = format!("/api/tokens/{id}");
    assert_eq!(
        request(
            server.http,
            "DELETE",
            &path,
            &[("Cookie", &bernd), ("X-CSRF-Token", &bernd_csrf)],
            ""
        )
        .status,
        403
    );
    let anna = sign_in(&server, "anna", "anna-secret-1");
    let anna_csrf = get_json(&server, "/api/me", &anna)["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        request(
            server.http,
            "POST",
            "/api/tokens",
            &[JSON, ("Cookie", &anna)],
            r#"{"label": "no csrf"}"#
        )
        .status,
        403
    );
    let second = request(
        server.http,
        "POST",
        "/api/tokens",
        &[JSON, ("Cookie", &anna), ("X-CSRF-Token", &anna_csrf)],
        r#"{"label": "calendar sync"}"#,
    );
    assert_eq!(second.status, 201, "{}", second.body);
    assert!(second.json()["token"].as_str().unwrap().starts_with("amt_"));

    // Revoked, it is refused at once.
    assert_eq!(
        request(server.http, "DELETE", &path, &[auth], "").status,
        204
    );
    assert_eq!(
        request(server.http, "GET", "/api/rooms", &[auth], "").status,
        401
    );
    let audit = support::amtsleitung()
        .args(["audit", "list", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.contains("token.add") && audit.contains("token.revoke"),
        "{audit}"
    );
    assert!(!audit.contains(&token), "{audit}");
}

#[test]
fn the_openapi_document_describes_routes_that_exist() {
    let server = Server::start(None, &[]);
    let answer = request(server.http, "GET", "/api/openapi.json", &[], "");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let doc = answer.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 10, "{doc:#}");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            // Every documented operation exists: signed out it says 401, never 404 or 405.
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { "1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let answer = request(
                server.http,
                &method.to_ascii_uppercase(),
                &concrete,
                &[JSON],
                "{}",
            );
            assert_eq!(
                answer.status, 401,
                "{method} {path} ({concrete}): {}",
                answer.body
            );
            operations += 1;
        }
    }
    eprintln!("{operations} documented operations all exist");
}

/// Signs in from inside `ns`; the cookie and the CSRF token.
fn ns_sign_in(
    ns: &support::Netns,
    http: SocketAddr,
    name: &str,
    password: &str,
) -> (String, String) {
    let signed_in = ns_request(
        ns,
        http,
        "POST",
        "/console/sign-in",
        &[FORM],
        &format!("name={name}&password={password}"),
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let cookie = signed_in
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me = ns_request(ns, http, "GET", "/api/me", &[("Cookie", &cookie)], "").json();
    (cookie, me["csrf_token"].as_str().unwrap().to_owned())
}

#[test]
fn admins_search_and_export_calls_and_read_the_audit_log_and_recordings_stay_with_their_owners() {
    let ns = support::Netns::new();
    let server = Server::start(Some(&ns), &[]);
    add_account(&server, "root", "admin", "root-secret-12");
    add_account(&server, "anna", "staff", "anna-secret-1");
    add_account(&server, "bernd", "staff", "bernd-secret-1");
    let http = server.http;
    let (root, _) = ns_sign_in(&ns, http, "root", "root-secret-12");
    let (anna, anna_csrf) = ns_sign_in(&ns, http, "anna", "anna-secret-1");
    let (bernd, bernd_csrf) = ns_sign_in(&ns, http, "bernd", "bernd-secret-1");
    let get =
        |cookie: &str, path: &str| ns_request(&ns, http, "GET", path, &[("Cookie", cookie)], "");

    let dir = support::TempDir::new("console-records");
    // Staff see neither calls nor the audit log.
    for path in [
        "/api/calls",
        "/api/calls.csv",
        "/api/audit",
        "/api/system",
        "/console/calls",
        "/console/audit",
        "/console/system",
    ] {
        assert_eq!(get(&anna, path).status, 403, "{path}");
    }

    // Anna records her room for a while from the console.
    let created = ns_request(
        &ns,
        http,
        "POST",
        "/api/rooms",
        &[JSON, ("Cookie", &anna), ("X-CSRF-Token", &anna_csrf)],
        r#"{"number": "4711"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let talker = support::scenario_with_tone(&dir, "invite_pcmu.xml", 440);
    std::thread::scope(|scope| {
        let call = scope
            .spawn(|| support::sipp_caller(&ns, &server, &talker, "84711", 7000, "the caller"));
        let recording = |on: bool| {
            ns_request(
                &ns,
                http,
                "PUT",
                "/api/rooms/4711/recording",
                &[JSON, ("Cookie", &anna), ("X-CSRF-Token", &anna_csrf)],
                &format!(r#"{{"recording": {on}}}"#),
            )
        };
        assert!(support::wait_until(
            std::time::Duration::from_secs(5),
            || { get(&anna, "/api/rooms/4711/live").json()["open"] == true }
        ));
        std::thread::sleep(std::time::Duration::from_secs(1));
        assert_eq!(recording(true).status, 204);
        assert_eq!(get(&anna, "/api/rooms/4711/live").json()["recording"], true);
        // The system page sees the call and the room in use.
        let system = get(&root, "/api/system").json();
        assert_eq!(system["healthy"], true, "{system:#}");
        assert_eq!(system["calls"], 1, "{system:#}");
        assert_eq!(system["rooms"][0]["number"], "4711", "{system:#}");
        assert_eq!(system["rooms"][0]["members"], 1, "{system:#}");
        let page = get(&root, "/console/system");
        assert!(
            page.body.contains("<dd id=\"calls-now\">1</dd>"),
            "{}",
            page.body
        );
        std::thread::sleep(std::time::Duration::from_secs(3));
        assert_eq!(recording(false).status, 204);
        call.join().unwrap();
    });
    assert!(support::wait_until(
        std::time::Duration::from_secs(5),
        || { get(&anna, "/api/recordings").json()[0]["bytes"].is_u64() }
    ));
    let listed = get(&anna, "/api/recordings").json();
    let id = listed[0]["id"].as_i64().unwrap();
    assert_eq!(listed[0]["room"], "4711");
    let audio_path = format!("/api/recordings/{id}/audio");
    // Bernd does not own the room: not listed, not playable, not deletable.
    assert_eq!(get(&bernd, "/api/recordings").json(), serde_json::json!([]));
    assert_eq!(get(&bernd, &audio_path).status, 403);
    let delete_path = format!("/api/recordings/{id}");
    let bernd_delete = ns_request(
        &ns,
        http,
        "DELETE",
        &delete_path,
        &[("Cookie", &bernd), ("X-CSRF-Token", &bernd_csrf)],
        "",
    );
    assert_eq!(bernd_delete.status, 403);
    // The admin sees it too; anna hears it (the caller's tone) and deletes it.
    assert_eq!(get(&root, "/api/recordings").json()[0]["id"], id);
    let page = get(&anna, "/console/recordings");
    assert!(
        page.body.contains(&format!("src=\"{audio_path}\"")),
        "{}",
        page.body
    );
    let out = ns
        .command("curl")
        .args(["-s", "--max-time", "5", "-H"])
        .arg(format!("Cookie: {anna}"))
        .arg("-o")
        .arg(dir.path().join("heard.wav"))
        .arg(format!("http://{http}{audio_path}"))
        .status()
        .unwrap();
    assert!(out.success());
    let (samples, rate) = support::read_wav(&dir.path().join("heard.wav"));
    let share = support::tone_share(&samples, rate, 440.0, 0.5);
    eprintln!(
        "recording: {:.1} s, 440 Hz share {share:.2}",
        samples.len() as f64 / f64::from(rate)
    );
    assert!(share > 0.5, "{share}");
    let deleted = ns_request(
        &ns,
        http,
        "DELETE",
        &delete_path,
        &[("Cookie", &anna), ("X-CSRF-Token", &anna_csrf)],
        "",
    );
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(get(&anna, "/api/recordings").json(), serde_json::json!([]));
    let files = std::fs::read_dir(server.data_dir().join("recordings"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(files, 0, "the recording's file is still there");

    // The caller's call is in the records, found by its number and exported.
    assert!(support::wait_until(
        std::time::Duration::from_secs(5),
        || {
            get(&root, "/api/calls?q=84711")
                .json()
                .as_array()
                .is_some_and(|a| a.len() == 1)
        }
    ));
    let calls = get(&root, "/api/calls?q=84711").json();
    assert_eq!(calls[0]["callee"], "84711", "{calls}");
    assert_eq!(calls[0]["final_status"], 200, "{calls}");
    assert_eq!(
        get(&root, "/api/calls?q=0999").json(),
        serde_json::json!([])
    );
    let csv = get(&root, "/api/calls.csv?q=84711");
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let rows: Vec<&str> = csv.body.lines().collect();
    assert_eq!(rows.len(), 2, "{}", csv.body);
    assert!(rows[0].starts_with("call_id,started_utc"), "{}", csv.body);
    assert!(rows[1].contains(",84711,"), "{}", csv.body);
    let page = get(&root, "/console/calls?q=84711");
    assert!(page.body.contains("<td>84711</td>"), "{}", page.body);
    assert_eq!(get(&root, "/console/calls?since=yesterday").status, 400);

    // The audit log tells who did what.
    let audit = get(&root, "/api/audit?actor=anna").json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "room.create",
        "room.record.start",
        "room.record.stop",
        "recording.delete",
    ] {
        assert!(actions.contains(&action), "{action} missing: {audit:#}");
    }
    let page = get(&root, "/console/audit");
    assert!(page.body.contains("recording.delete"), "{}", page.body);
}
