//! Busy lamp fields and call pickup: a phone subscribes to a colleague's line (RFC 6665,
//! the dialog event package of RFC 4235) and is told as it rings, is busy and goes idle;
//! subscriptions are refused when too brief or for packages nobody serves. Real clients
//! (SIPp as the subscribing phone, baresip as the colleagues), each test in a network
//! namespace of its own.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::{Baresip, Netns, Server, TempDir, add_user, scenario, wait_until};

/// Starts SIPp on 10.99.0.4 as user `user` (password `password`) running scenario `name`
/// against extension `watched`; returns the child, whose exit status says how it went.
fn subscriber(
    ns: &Netns,
    name: &str,
    watched: &str,
    user: &str,
    password: &str,
) -> std::process::Child {
    ns.command("sipp")
        .args(["-sf", &scenario(name), "-s", watched])
        .args(["-au", user, "-ap", password, "-set", "subscriber", user])
        .args(["-i", "10.99.0.4", "-p", "5070", "-m", "1", "-l", "1"])
        .args([
            "-nostdin",
            "-timeout",
            "40s",
            "-timeout_error",
            "-trace_err",
        ])
        .arg("10.99.0.1:5060")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp (apt-get install sip-tester)")
}

fn finished(child: std::process::Child, server: &Server, what: &str) {
    let out = child.wait_with_output().expect("sipp ran");
    assert!(
        out.status.success(),
        "{what}: SIPp failed ({:?})\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
}

#[test]
fn a_subscribed_phone_sees_its_colleague_go_idle_ringing_busy_and_idle_again() {
    let ns = Netns::new();
    let data = TempDir::new("blf-data");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    add_user(data.path(), "103", "lampen99");
    let server = Server::start_with_data(Some(&ns), &[], data);
    // 102's desk phone answers by itself; 101 calls it for 3 s; 103's phone (SIPp) watches
    // 102's line.
    let colleague = Baresip::new("10.99.0.2", 880, "PCMU", 8000).registering("102", "kollege77");
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("101", "geheim123");
    let (outputs, caller_out) =
        support::with_registered_phones(&server, &ns, &[(&colleague, &ns)], || {
            let watcher = subscriber(&ns, "blf_dialog.xml", "102", "103", "lampen99");
            let subscribed = wait_until(Duration::from_secs(5), || {
                server.metric(Some(&ns), "amtsleitung_subscriptions") == 1
            });
            assert!(subscribed, "no subscription\n{}", server.log());
            let out = caller.call(&ns, "sip:102@10.99.0.1", 3);
            finished(watcher, &server, "busy lamp of 102");
            out
        });
    let log = server.log();
    assert!(
        outputs[0].contains("Call established: sip:101@"),
        "{}\n{caller_out}",
        outputs[0]
    );
    // The line went through each state once, in order, in the call's log.
    let states: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("line state") && l.contains("extension=102"))
        .filter_map(|l| l.split("line=").nth(1)?.split_whitespace().next())
        .collect();
    assert_eq!(states, ["ringing", "busy", "idle"], "{log}");
    // The subscription ended with its final NOTIFY and is forgotten.
    assert!(
        wait_until(Duration::from_secs(2), || server
            .metric(Some(&ns), "amtsleitung_subscriptions")
            == 0),
        "{log}"
    );
}

#[test]
fn subscriptions_to_unknown_packages_get_489_and_too_brief_ones_423() {
    let ns = Netns::new();
    let data = TempDir::new("blf-refusals");
    add_user(data.path(), "102", "kollege77");
    add_user(data.path(), "103", "lampen99");
    let server = Server::start_with_data(Some(&ns), &[], data);
    let watcher = subscriber(&ns, "blf_refusals.xml", "102", "103", "lampen99");
    finished(watcher, &server, "refused subscriptions");
    assert_eq!(server.metric(Some(&ns), "amtsleitung_subscriptions"), 0);
}

/// Rings 102's phone (which nobody answers) from 101, lets `picker` (user 103) dial
/// `code` while it rings, and checks that the caller and the picker hear each other and
/// that 102's phone stopped ringing without getting the call.
fn picks_up(code: &str, plans: Option<&TempDir>, label: &str) {
    let ns = Netns::new();
    let data = TempDir::new(label);
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    add_user(data.path(), "103", "nachbar55");
    let extra: Vec<&str> = match plans {
        Some(plans) => vec!["--dialplans", plans.path().to_str().unwrap()],
        None => Vec::new(),
    };
    let server = Server::start_with_data(Some(&ns), &extra, data);
    let ringing = Baresip::new("10.99.0.2", 660, "PCMU", 8000)
        .registering("102", "kollege77")
        .never_answering();
    let caller = Baresip::new("10.99.0.3", 440, "PCMU", 8000).registering("101", "geheim123");
    let picker = Baresip::new("10.99.0.4", 880, "PCMU", 8000).registering("103", "nachbar55");
    let (outputs, (caller_out, picker_out)) =
        support::with_registered_phones(&server, &ns, &[(&ringing, &ns)], || {
            std::thread::scope(|scope| {
                let call = scope.spawn(|| caller.call(&ns, "sip:102@10.99.0.1", 9));
                let rings = wait_until(Duration::from_secs(6), || {
                    server
                        .log()
                        .lines()
                        .any(|l| l.contains("extension=102") && l.contains("line=ringing"))
                });
                assert!(rings, "102 never rang\n{}", server.log());
                let picked = picker.call(&ns, &format!("sip:{code}@10.99.0.1"), 5);
                (call.join().unwrap(), picked)
            })
        });
    let log = server.log();
    let all = format!(
        "caller:\n{caller_out}\npicker:\n{picker_out}\n102:\n{}\nserver:\n{log}",
        outputs[0]
    );
    assert!(log.contains("pickup: call ringing at 102 taken"), "{all}");
    // 102's phone rang, then stopped (CANCEL) without anyone answering it there.
    assert!(outputs[0].contains("Incoming call"), "{all}");
    assert!(ringing.heard().is_none(), "102's phone got audio\n{all}");
    // The caller talks with the picker, both ways.
    let to_picker = support::heard_share(&picker, 440.0, "the picker", &server);
    let to_caller = support::heard_share(&caller, 880.0, "the caller", &server);
    assert!(
        to_picker > 0.5 && to_caller > 0.5,
        "440 Hz at the picker {to_picker:.2}, 880 Hz at the caller {to_caller:.2}\n{all}"
    );
    // The line went ringing → idle when the call was taken away from it.
    let states: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("line state") && l.contains("extension=102"))
        .filter_map(|l| l.split("line=").nth(1)?.split_whitespace().next())
        .collect();
    assert_eq!(states, ["ringing", "idle"], "{all}");
}

#[test]
fn group_pickup_takes_a_call_ringing_at_a_colleague_and_both_hear_each_other() {
    let plans = support::plans_with(
        "pickup-plans",
        "[pickup-groups]\nbuergerbuero = [\"101\", \"102\", \"103\"]\n",
    );
    picks_up("*8", Some(&plans), "pickup-group");
}

#[test]
fn directed_pickup_takes_the_call_ringing_at_the_extension_keyed() {
    picks_up("**102", None, "pickup-directed");
}
