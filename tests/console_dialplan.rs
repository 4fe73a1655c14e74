//! The console's dialplan page over real HTTP against the real binary: a broken draft is
//! refused with file:line:column and changes nothing, a valid one is applied and routes real
//! SIPp calls, the history names the admin, one rollback POST brings the old plan back; staff
//! are refused on every route, POSTs need the CSRF token, paths stay inside the directory.
//! All traffic is on loopback.

mod support;

use std::path::Path;
use std::time::Duration;

use support::console::{Console, FORM, JSON, add_account, encode, request};
use support::{Server, TempDir, config_trusting, scenario, sipp};

/// Signs in; the cookie and the session's CSRF token.
fn sign_in(server: &Server, name: &str, password: &str) -> (String, String) {
    let session = Console::sign_in(None, server, name, password);
    (session.cookie, session.csrf)
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

const ECHO_600: &str =
    "[[rule]]\nname = \"echo\"\nmatch = \"600\"\nactions = [ \"answer\", \"echo\" ]\n";
const ECHO_700: &str =
    "[[rule]]\nname = \"echo moved\"\nmatch = \"700\"\nactions = [ \"answer\", \"echo\" ]\n";
const BROKEN: &str =
    "[[rule]]\nname = \"broken\"\nmatch = \"700\"\nactions = [ \"answer\", \"dance\" ]\n";

/// A free UDP port pair for SIPp's media (RTP and RTCP).
fn free_media_port() -> String {
    for _ in 0..100 {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        if port & 1 == 0
            && port < 65000
            && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port.to_string();
        }
    }
    panic!("no free media port");
}

/// Whether a call to `number` is answered (echo) and ends with BYE/200.
fn answered(server: &Server, call: &str, number: &str) -> bool {
    let target = server.sip.to_string();
    let media = free_media_port();
    let args = [
        "-sf",
        call,
        "-s",
        number,
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-mp",
        &media,
        "-m",
        "1",
        "-d",
        "500",
        &target,
    ];
    sipp(None, &args).status.success()
}

/// Whether a call to `number` gets 404 (no rule matches).
fn not_found(server: &Server, number: &str) -> bool {
    let target = server.sip.to_string();
    let media = free_media_port();
    let refused = scenario("invite_404.xml");
    let args = [
        "-sf",
        &refused,
        "-s",
        number,
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-mp",
        &media,
        "-m",
        "1",
        &target,
    ];
    sipp(None, &args).status.success()
}

fn start_server(plans: &TempDir, config_dir: &TempDir) -> Server {
    std::fs::write(plans.path().join("main.toml"), ECHO_600).unwrap();
    // The caller is staff on a trusted network: numbers no rule matches get 404.
    let config = config_trusting(config_dir, "127.0.0.1/32");
    Server::start(
        None,
        &[
            "--dialplans",
            plans.path().to_str().unwrap(),
            "--config",
            &config,
        ],
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn broken_draft_is_refused_valid_one_routes_calls_and_one_rollback_post_restores_the_plan() {
    let plans = TempDir::new("console-plans");
    let config_dir = TempDir::new("console-plan-config");
    let server = start_server(&plans, &config_dir);
    let main = plans.path().join("main.toml");
    add_account(&server, "root", "admin", "root-secret-12");
    let (cookie, csrf) = sign_in(&server, "root", "root-secret-12");
    let with_cookie = ("Cookie", cookie.as_str());
    let with_csrf = ("X-CSRF-Token", csrf.as_str());

    let dir = TempDir::new("console-plan-call");
    let call = support::pcmu_call_scenario(&dir);
    assert!(
        answered(&server, &call, "600"),
        "600 not routed at start\n{}",
        server.log()
    );
    assert!(not_found(&server, "700"), "700 routed at start");

    // The page shows the file, its edit form and the live version.
    let page = request(server.http, "GET", "/console/dialplan", &[with_cookie], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("File main.toml"), "{}", page.body);
    assert!(
        page.body
            .contains("<label for=\"file-0\">Text of main.toml</label>"),
        "{}",
        page.body
    );
    let plan = request(server.http, "GET", "/api/dialplan", &[with_cookie], "").json();
    let start_version = plan["live_version"].as_u64().unwrap();
    assert_eq!(plan["files"][0]["path"], "main.toml", "{plan}");
    assert_eq!(plan["files"][0]["text"], ECHO_600, "{plan}");

    // A broken draft: the JSON check names file:line:column; apply is refused with it.
    let drafts = serde_json::json!({ "files": { "main.toml": BROKEN } }).to_string();
    let checked = request(
        server.http,
        "POST",
        "/api/dialplan/check",
        &[with_cookie, with_csrf, JSON],
        &drafts,
    );
    assert_eq!(checked.status, 200, "{}", checked.body);
    let checked = checked.json();
    assert_eq!(checked["ok"], false, "{checked}");
    let error = &checked["diagnostics"][0];
    assert_eq!(error["file"], "main.toml", "{checked}");
    assert_eq!(error["line"], 4, "{checked}");
    assert_eq!(error["severity"], "error", "{checked}");
    let column = error["column"].as_u64().unwrap();
    assert!(column > 1, "{checked}");
    let location = format!("main.toml:4:{column}");

    let refused = request(
        server.http,
        "POST",
        "/api/dialplan/apply",
        &[with_cookie, with_csrf, JSON],
        &drafts,
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.json()["diagnostics"][0]["column"], column);
    assert_eq!(read(&main), ECHO_600, "a refused apply changed the file");

    // The same through the page's form (Apply button): 422, the list with file:line:column
    // tied to the textarea, which keeps the draft.
    for action in ["check", "apply"] {
        let body = form(&[
            ("csrf", &csrf),
            ("path", "main.toml"),
            ("text", &BROKEN.replace('\n', "\r\n")),
            ("action", action),
        ]);
        let page = request(
            server.http,
            "POST",
            "/console/dialplan",
            &[with_cookie, FORM],
            &body,
        );
        let expected = if action == "apply" { 422 } else { 200 };
        assert_eq!(page.status, expected, "{action}: {}", page.body);
        assert!(
            page.body
                .contains(&format!("<code>{location}</code>: error:")),
            "{action}: {}",
            page.body
        );
        assert!(
            page.body
                .contains("aria-describedby=\"file-0-result\" aria-invalid=\"true\""),
            "{action}: {}",
            page.body
        );
        assert!(
            page.body
                .contains("actions = [ &quot;answer&quot;, &quot;dance&quot; ]"),
            "{}",
            page.body
        );
        assert_eq!(
            read(&main),
            ECHO_600,
            "{action} of a broken draft changed the file"
        );
    }
    assert_eq!(
        request(server.http, "GET", "/api/dialplan", &[with_cookie], "").json()["live_version"]
            .as_u64(),
        Some(start_version)
    );
    assert!(
        answered(&server, &call, "600"),
        "600 stopped routing after a refused draft"
    );

    // A valid draft through the form: written, live, calls route by it.
    let body = form(&[
        ("csrf", &csrf),
        ("path", "main.toml"),
        ("text", &ECHO_700.replace('\n', "\r\n")),
        ("action", "apply"),
    ]);
    let page = request(
        server.http,
        "POST",
        "/console/dialplan",
        &[with_cookie, FORM],
        &body,
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let history = request(
        server.http,
        "GET",
        "/api/dialplan/history",
        &[with_cookie],
        "",
    )
    .json();
    let applied = history["versions"][0]["version"].as_u64().unwrap();
    assert!(applied > start_version, "{history}");
    assert_eq!(history["live_version"].as_u64(), Some(applied), "{history}");
    assert_eq!(
        history["versions"][0]["comment"], "console: root",
        "{history}"
    );
    assert_eq!(history["versions"][0]["files"][0], "main.toml", "{history}");
    assert!(
        page.body
            .contains(&format!("main.toml is written; version {applied} is live.")),
        "{}",
        page.body
    );
    assert_eq!(
        read(&main),
        ECHO_700,
        "the file on disk is not the applied draft"
    );
    assert!(
        answered(&server, &call, "700"),
        "700 not routed by the applied plan\n{}",
        server.log()
    );
    assert!(
        not_found(&server, "600"),
        "600 still routed after the apply"
    );

    // The history page names the admin and links the diff; the diff reads as one.
    let page = request(
        server.http,
        "GET",
        "/console/dialplan/history",
        &[with_cookie],
        "",
    );
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<td>console: root</td>"),
        "{}",
        page.body
    );
    let diff_link = format!(
        "/console/dialplan/diff?from={}&amp;to={applied}",
        applied - 1
    );
    assert!(page.body.contains(&diff_link), "{}", page.body);
    let diff = request(
        server.http,
        "GET",
        &format!("/console/dialplan/diff?from={start_version}&to={applied}"),
        &[with_cookie],
        "",
    );
    assert_eq!(diff.status, 200, "{}", diff.body);
    assert!(
        diff.body.contains("<del>-match = &quot;600&quot;</del>"),
        "{}",
        diff.body
    );
    assert!(
        diff.body.contains("<ins>+match = &quot;700&quot;</ins>"),
        "{}",
        diff.body
    );

    // Explain by the live plan.
    let explained = request(
        server.http,
        "GET",
        "/api/dialplan/explain?to=700&from=0711",
        &[with_cookie],
        "",
    );
    assert_eq!(explained.status, 200, "{}", explained.body);
    assert!(
        explained.json()["explanation"]
            .as_str()
            .unwrap()
            .contains("echo moved"),
        "{}",
        explained.body
    );
    let page = request(
        server.http,
        "GET",
        "/console/dialplan/explain?to=700&from=",
        &[with_cookie],
        "",
    );
    assert!(page.body.contains("echo moved"), "{}", page.body);

    // One rollback POST, as the history's button sends it.
    let body = form(&[("csrf", &csrf), ("version", &start_version.to_string())]);
    let page = request(
        server.http,
        "POST",
        "/console/dialplan/rollback",
        &[with_cookie, FORM],
        &body,
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        read(&main),
        ECHO_600,
        "the rollback did not write the old text back"
    );
    let history = request(
        server.http,
        "GET",
        "/api/dialplan/history",
        &[with_cookie],
        "",
    )
    .json();
    let rolled = history["versions"][0]["version"].as_u64().unwrap();
    assert_eq!(history["live_version"].as_u64(), Some(rolled), "{history}");
    assert_eq!(
        history["versions"][0]["comment"],
        format!("console: root rolled back to {start_version}"),
        "{history}"
    );
    assert!(
        page.body.contains(&format!(
            "Version {start_version} was written back; version {rolled} is live."
        )),
        "{}",
        page.body
    );
    assert!(
        answered(&server, &call, "600"),
        "600 not routed after the rollback\n{}",
        server.log()
    );
    assert!(
        not_found(&server, "700"),
        "700 still routed after the rollback"
    );

    // Both changes are audited with the version numbers and files.
    let out = support::amtsleitung()
        .args(["audit", "list", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&out.stdout);
    assert!(
        audit.contains("dialplan.apply")
            && audit.contains(&format!("version {applied}: main.toml")),
        "{audit}"
    );
    assert!(
        audit.contains("dialplan.rollback")
            && audit.contains(&format!(
                "version {start_version} written back as version {rolled}"
            )),
        "{audit}"
    );
}

#[test]
fn staff_are_refused_posts_need_csrf_and_paths_stay_in_the_directory() {
    let plans = TempDir::new("console-plans-guard");
    let config_dir = TempDir::new("console-plan-guard-config");
    let server = start_server(&plans, &config_dir);
    let main = plans.path().join("main.toml");
    add_account(&server, "anna", "staff", "anna-secret-1");
    add_account(&server, "root", "admin", "root-secret-12");
    let (anna, anna_csrf) = sign_in(&server, "anna", "anna-secret-1");

    let drafts = serde_json::json!({ "files": { "main.toml": ECHO_700 } }).to_string();
    let gets = [
        "/console/dialplan",
        "/console/dialplan/explain?to=600",
        "/console/dialplan/history",
        "/console/dialplan/diff?from=1&to=1",
        "/api/dialplan",
        "/api/dialplan/history",
        "/api/dialplan/versions/1",
        "/api/dialplan/diff?from=1&to=1",
        "/api/dialplan/explain?to=600",
    ];
    for path in gets {
        let answer = request(server.http, "GET", path, &[("Cookie", &anna)], "");
        assert_eq!(answer.status, 403, "staff GET {path}: {}", answer.body);
    }
    let form_apply = form(&[
        ("csrf", &anna_csrf),
        ("path", "main.toml"),
        ("text", ECHO_700),
        ("action", "apply"),
    ]);
    let form_rollback = form(&[("csrf", &anna_csrf), ("version", "1")]);
    let posts = [
        ("/console/dialplan", FORM, form_apply.as_str()),
        ("/console/dialplan/rollback", FORM, form_rollback.as_str()),
        ("/api/dialplan/check", JSON, drafts.as_str()),
        ("/api/dialplan/apply", JSON, drafts.as_str()),
        ("/api/dialplan/rollback", JSON, "{\"version\": 1}"),
    ];
    for (path, kind, body) in posts {
        let answer = request(
            server.http,
            "POST",
            path,
            &[("Cookie", &anna), ("X-CSRF-Token", &anna_csrf), kind],
            body,
        );
        assert_eq!(answer.status, 403, "staff POST {path}: {}", answer.body);
    }
    assert_eq!(read(&main), ECHO_600, "staff changed the plan");

    // An admin without the CSRF token: refused, nothing written.
    let (root, root_csrf) = sign_in(&server, "root", "root-secret-12");
    let answer = request(
        server.http,
        "POST",
        "/api/dialplan/apply",
        &[("Cookie", &root), JSON],
        &drafts,
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.json()["error"], "csrf");
    let no_token = form(&[
        ("path", "main.toml"),
        ("text", ECHO_700),
        ("action", "apply"),
    ]);
    let answer = request(
        server.http,
        "POST",
        "/console/dialplan",
        &[("Cookie", &root), FORM],
        &no_token,
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    let answer = request(
        server.http,
        "POST",
        "/console/dialplan/rollback",
        &[("Cookie", &root), FORM],
        "version=1",
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(
        read(&main),
        ECHO_600,
        "a POST without the CSRF token changed the plan"
    );

    // Paths that leave the directory or name no dialplan file are refused.
    let outside = plans.path().parent().unwrap().join("evil.toml");
    for path in [
        "../evil.toml",
        "/tmp/evil.toml",
        "sub/../../evil.toml",
        "main.txt",
        "examples/a.toml",
    ] {
        let body = serde_json::json!({ "files": { path: ECHO_700 } }).to_string();
        for route in ["/api/dialplan/check", "/api/dialplan/apply"] {
            let answer = request(
                server.http,
                "POST",
                route,
                &[("Cookie", &root), ("X-CSRF-Token", &root_csrf), JSON],
                &body,
            );
            assert_eq!(answer.status, 400, "{route} {path}: {}", answer.body);
        }
        let body = form(&[
            ("csrf", &root_csrf),
            ("path", path),
            ("text", ECHO_700),
            ("action", "apply"),
        ]);
        let page = request(
            server.http,
            "POST",
            "/console/dialplan",
            &[("Cookie", &root), FORM],
            &body,
        );
        assert_eq!(page.status, 400, "form {path}: {}", page.body);
        assert!(
            page.body.contains("is not a dialplan file path"),
            "{}",
            page.body
        );
    }
    assert!(
        !outside.exists(),
        "a file was written outside the directory"
    );
    assert_eq!(read(&main), ECHO_600);
    let files: Vec<_> = std::fs::read_dir(plans.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "{files:?}");

    // Signed out: the API says 401, the page sends to the sign-in.
    assert_eq!(
        request(server.http, "GET", "/api/dialplan", &[], "").status,
        401
    );
    assert_eq!(
        request(server.http, "GET", "/console/dialplan", &[], "").status,
        303
    );
}

/// Whether a call from inside `ns` to `number` is answered (echo) and ends with BYE/200.
fn answered_in(ns: &support::Netns, call: &str, number: &str) -> bool {
    let args = support::sipp_call_args(call, "10.99.0.2", "5070", &["-s", number, "-d", "500"]);
    sipp(Some(ns), &args).status.success()
}

/// Whether a call from inside `ns` to `number` gets 404.
fn not_found_in(ns: &support::Netns, number: &str) -> bool {
    let refused = scenario("invite_404.xml");
    let args = support::sipp_call_args(&refused, "10.99.0.2", "5070", &["-s", number]);
    sipp(Some(ns), &args).status.success()
}

#[test]
fn in_the_browser_a_broken_draft_is_refused_a_valid_one_routes_and_one_click_rolls_back() {
    use support::browser::{Browser, assert_accessible, node_modules};
    let axe = node_modules().join("axe-core/axe.min.js");
    let ns = support::Netns::new();
    let plans = TempDir::new("console-plans-browser");
    std::fs::write(plans.path().join("main.toml"), ECHO_600).unwrap();
    let config_dir = TempDir::new("console-plan-browser-config");
    let config = config_trusting(&config_dir, "10.99.0.0/24");
    let server = Server::start(
        Some(&ns),
        &[
            "--dialplans",
            plans.path().to_str().unwrap(),
            "--config",
            &config,
        ],
    );
    add_account(&server, "root", "admin", "root-secret-12");
    let main = plans.path().join("main.toml");
    let dir = TempDir::new("console-plan-browser-call");
    let call = support::pcmu_call_scenario(&dir);
    let proceed = dir.path().join("calls-made");

    let browser = Browser::start(
        &ns,
        "tests/console/admin.js",
        serde_json::json!({
            "origin": format!("http://{}", server.http),
            "user": "root",
            "password": "root-secret-12",
            "flow": "dialplan",
            "broken": BROKEN,
            "valid": ECHO_700,
            "proceed": proceed,
            "rollbackTo": 1,
            "axe": axe,
            "screenshots": support::repo().join("target/console-screenshots"),
            "locale": "en-US",
        }),
    );
    let applied = browser.wait_for("applied", Duration::from_secs(60));
    assert!(
        applied.is_some(),
        "not applied in the page: {:#?}\n{}",
        browser.lines(),
        server.log()
    );
    // The new plan routes: 700 answers, 600 is gone.
    assert_eq!(read(&main), ECHO_700);
    assert!(
        answered_in(&ns, &call, "700"),
        "700 not routed\n{}",
        server.log()
    );
    assert!(
        not_found_in(&ns, "600"),
        "600 still routed\n{}",
        server.log()
    );
    std::fs::write(&proceed, "").unwrap();
    let lines = browser.finish();
    let step = |name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}: {lines:#?}"))
    };

    // The broken draft was refused in the page at its file, line and column, next to the
    // field, and applying it was refused too.
    let checked = step("checked");
    let result = checked["result"].as_str().unwrap_or_default();
    assert!(result.contains("main.toml:4:"), "{checked:#}");
    assert_eq!(checked["invalid"], "true", "{checked:#}");
    assert!(
        checked["describedBy"]
            .as_str()
            .is_some_and(|d| d.contains("file-0-result")),
        "{checked:#}"
    );
    let refused = step("apply-refused");
    assert!(
        refused["result"]
            .as_str()
            .is_some_and(|r| r.contains("Not applied") && r.contains("main.toml:4:")),
        "{refused:#}"
    );
    assert!(
        step("applied")["result"]
            .as_str()
            .is_some_and(|r| r.contains("version 2 is live")),
        "{lines:#?}"
    );
    // The history names the admin; the diff shows the change.
    let history = step("history");
    assert!(
        history["rows"].as_array().is_some_and(|rows| rows
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains("console: root")))),
        "{history:#}"
    );
    let diff = step("diff");
    assert!(
        diff["text"]
            .as_str()
            .is_some_and(|t| t.contains("-match = \"600\"") && t.contains("+match = \"700\"")),
        "{diff:#}"
    );
    // One click rolled back: the old text is on disk and routes again, the history says so.
    let rolled = step("rolled-back");
    assert!(
        rolled["text"]
            .as_str()
            .is_some_and(|t| t.contains("Version 1 was written back; version 3 is live")),
        "{rolled:#}"
    );
    assert_eq!(read(&main), ECHO_600);
    assert!(
        answered_in(&ns, &call, "600"),
        "600 not routed after the rollback\n{}",
        server.log()
    );
    assert!(
        not_found_in(&ns, "700"),
        "700 still routed after the rollback"
    );
    let history = support::admin_ok(server.data_dir(), &["dialplan", "history"]);
    assert!(
        history.contains("console: root rolled back to 1"),
        "{history}"
    );
    assert_accessible(
        &lines,
        &["dialplan-checked", "dialplan-history", "dialplan-diff"],
    );
}
