//! Hot reload with a live call: a broken dialplan changes nothing, a valid one routes new
//! calls, and the call in progress is never dropped.

mod support;

use std::time::Duration;

use support::{Netns, PacketCounter, Server, TempDir, config_trusting, scenario, sipp, wait_until};

const CLIENT_IP: &str = "10.99.0.2";

/// A short call to `number` is answered and ends with BYE/200.
fn answered(
    ns: &Netns,
    call_scenario: &str,
    number: &str,
    local_port: &str,
    media_port: &str,
) -> bool {
    let args = [
        "-sf",
        call_scenario,
        "-s",
        number,
        "-i",
        CLIENT_IP,
        "-p",
        local_port,
        "-m",
        "1",
        "-mi",
        CLIENT_IP,
        "-mp",
        media_port,
        "-d",
        "300",
        "10.99.0.1:5060",
    ];
    sipp(Some(ns), &args).status.success()
}

/// A call to `number` gets 404 (no rule matches).
fn not_found(ns: &Netns, number: &str, local_port: &str) -> bool {
    let args = [
        "-sf",
        &scenario("invite_404.xml"),
        "-s",
        number,
        "-i",
        CLIENT_IP,
        "-p",
        local_port,
        "-m",
        "1",
        "-mi",
        CLIENT_IP,
        "10.99.0.1:5060",
    ];
    sipp(Some(ns), &args).status.success()
}

#[test]
fn reload_keeps_live_call_refuses_broken_plan_and_routes_by_valid_plan() {
    let ns = Netns::new();
    let plans = TempDir::new("reload-plans");
    let plan_file = plans.path().join("main.toml");
    std::fs::write(
        &plan_file,
        "[[rule]]\nname = \"echo\"\nmatch = \"600\"\nactions = [ \"answer\", \"echo\" ]\n",
    )
    .unwrap();
    // The caller is staff on a trusted network: numbers no rule matches get 404 (an outsider
    // would get the password challenge).
    let config_dir = TempDir::new("reload-config");
    let config = config_trusting(&config_dir, &format!("{CLIENT_IP}/32"));
    let server = Server::start(
        Some(&ns),
        &[
            "--dialplans",
            plans.path().to_str().unwrap(),
            "--config",
            &config,
        ],
    );

    // The live call: 14 s of echo to SIPp on media port 6000, run in the background.
    let dir = TempDir::new("reload-call");
    let call = support::pcmu_call_scenario(&dir);
    let echo = PacketCounter::new(&ns, 6000);
    let live = ns
        .command("sipp")
        .args([
            "-sf", &call, "-s", "600", "-i", CLIENT_IP, "-p", "5070", "-mi", CLIENT_IP,
        ])
        .args([
            "-mp", "6000", "-m", "1", "-d", "14000", "-nostdin", "-timeout", "40s",
        ])
        .args(["-timeout_error", "10.99.0.1:5060"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || echo.packets() > 20),
        "live call has no media"
    );

    // A broken plan: refused, logged, the old plan keeps routing.
    std::fs::write(
        &plan_file,
        "[[rule]]\nname = \"broken\"\nmatch = \"600\"\nactions = [ \"dance\" ]\n",
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || server
            .log()
            .contains("dialplan rejected")),
        "broken plan not reported\n{}",
        server.log()
    );
    assert!(
        server.log().contains("main.toml:4:"),
        "error without file:line\n{}",
        server.log()
    );
    // Monitoring sees it: /health is 503 "degraded" with the error, not "ok".
    let health = server.http_get(Some(&ns), "/health");
    assert!(
        health.starts_with("HTTP/1.0 503") || health.starts_with("HTTP/1.1 503"),
        "{health}"
    );
    assert!(
        health.contains("\"degraded\"") && health.contains("main.toml:4:"),
        "{health}"
    );
    let refused = "amtsleitung_dialplan_reloads_total{result=\"refused\"}";
    assert!(
        server.metric(Some(&ns), refused) >= 1,
        "{}",
        server.metrics(Some(&ns))
    );
    assert!(
        answered(&ns, &call, "600", "5072", "6100"),
        "600 stopped routing after a broken plan\n{}",
        server.log()
    );
    assert!(
        not_found(&ns, "700", "5074"),
        "700 routed before the valid plan"
    );

    // A valid plan: 700 is the echo now, 600 is gone.
    std::fs::write(
        &plan_file,
        "[[rule]]\nname = \"echo moved\"\nmatch = \"700\"\nactions = [ \"answer\", \"echo\" ]\n",
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || server
            .log()
            .contains("dialplan reloaded")),
        "valid plan not loaded\n{}",
        server.log()
    );
    assert!(
        answered(&ns, &call, "700", "5076", "6200"),
        "700 not routed by the new plan\n{}",
        server.log()
    );
    assert!(
        not_found(&ns, "600", "5078"),
        "600 still routed by the old plan"
    );
    let health = server.http_get(Some(&ns), "/health");
    assert!(
        health.contains("200 OK") && health.contains("\"status\":\"ok\""),
        "{health}"
    );
    let accepted = "amtsleitung_dialplan_reloads_total{result=\"accepted\"}";
    assert!(
        server.metric(Some(&ns), accepted) >= 1,
        "{}",
        server.metrics(Some(&ns))
    );
    let answered = "amtsleitung_calls_total{result=\"answered\"}";
    assert!(
        server.metric(Some(&ns), answered) >= 2,
        "{}",
        server.metrics(Some(&ns))
    );

    // The live call ran to its end (its BYE was answered 200) with media throughout.
    let status = live.wait_with_output().unwrap().status;
    assert!(
        status.success(),
        "the live call was dropped\n{}",
        server.log()
    );
    let packets = echo.packets();
    assert!(
        packets >= 600,
        "only {packets} echo packets in a 14 s call\n{}",
        server.log()
    );
}
