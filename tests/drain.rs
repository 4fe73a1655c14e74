//! `amtsleitung node drain`: maintenance without cutting a meeting. A draining node refuses
//! new calls with 503 and Retry-After, answers OPTIONS health checks with 503 (so Kamailio's
//! dispatcher stops sending it calls), keeps the calls and rooms it has until their last
//! caller leaves, then exits 0. Real SIPp callers in a test namespace.

mod support;

use std::time::{Duration, Instant};

use support::{Netns, Server, TempDir, scenario, scenario_with_tone_for, sipp};

#[test]
fn a_draining_node_refuses_new_calls_keeps_its_room_until_the_last_caller_leaves_then_exits_0() {
    let ns = Netns::new();
    let mut server = Server::start(Some(&ns), &[]);
    let dir = TempDir::new("drain");
    // A caller in room 4711 for 8 s; it hangs up by itself.
    let talker = scenario_with_tone_for(&dir, "invite_pcmu.xml", 440, 10);
    let started = Instant::now();
    let (room_call, drained, refused, probed, alive_during_call) = std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            sipp(
                Some(&ns),
                &support::sipp_call_args(
                    &talker,
                    "10.99.0.2",
                    "5070",
                    &["-s", "84711", "-d", "8000"],
                ),
            )
        });
        std::thread::sleep(Duration::from_secs(2));
        let drained = support::node_drain(&ns, &server);
        // A new call and a health check from elsewhere are refused while the room goes on.
        let refused = sipp(
            Some(&ns),
            &support::sipp_call_args(
                &scenario("invite_draining.xml"),
                "10.99.0.3",
                "5070",
                &["-s", "600"],
            ),
        );
        let probed = sipp(
            Some(&ns),
            &support::sipp_call_args(&scenario("options_draining.xml"), "10.99.0.4", "5070", &[]),
        );
        let alive_during_call = server.alive();
        (
            call.join().unwrap(),
            drained,
            refused,
            probed,
            alive_during_call,
        )
    });
    let log = server.log();
    assert!(
        drained.status.success(),
        "node drain failed: {}{}\n{log}",
        String::from_utf8_lossy(&drained.stdout),
        String::from_utf8_lossy(&drained.stderr)
    );
    let said = String::from_utf8_lossy(&drained.stdout).into_owned();
    assert!(
        said.contains("draining") && said.contains("1 call"),
        "{said}"
    );
    support::assert_sipp_ok(
        &refused,
        &server,
        "a new call while draining (503 expected)",
    );
    support::assert_sipp_ok(&probed, &server, "OPTIONS while draining (503 expected)");
    assert!(
        alive_during_call,
        "the node stopped while its room was in use\n{log}"
    );
    // The room's caller talked its full 8 s and hung up itself.
    support::assert_sipp_ok(&room_call, &server, "the caller in the room");
    assert!(started.elapsed() >= Duration::from_secs(8));

    // With the last caller gone, the process exits 0 on its own.
    let status = server
        .exit_within(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the drained node did not exit\n{}", server.log()));
    assert!(status.success(), "{status:?}\n{}", server.log());
    let log = server.log();
    assert!(log.contains("draining"), "{log}");
}

#[test]
fn an_idle_node_drains_at_once() {
    let ns = Netns::new();
    let mut server = Server::start(Some(&ns), &[]);
    let drained = support::node_drain(&ns, &server);
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    let status = server
        .exit_within(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the idle node did not exit\n{}", server.log()));
    assert!(status.success(), "{status:?}");
}
