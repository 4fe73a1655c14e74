//! Ring groups with real phones: baresip clients registered as staff users are the members,
//! another user's phone calls the group's number. Who rang is read from each phone's own
//! output, who talked to whom from the tones each one recorded, and the call record names
//! the group and the member who answered. Each test in a network namespace of its own.

mod support;

use std::time::Duration;

use support::{
    Baresip, Netns, Server, TempDir, add_user, admin_ok, assert_both_hear, heard_share, plans_with,
    read_wav, rms, wait_until,
};

/// Password of every user in these tests.
const PW: &str = "geheim123";

/// A server in `ns` with users `users` and the shipped plan plus `rules` (groups and the
/// group's number); keep the returned dialplan directory alive with it.
fn server_with(ns: &Netns, label: &str, users: &[&str], rules: &str) -> (Server, TempDir) {
    let data = TempDir::new(label);
    for user in users {
        add_user(data.path(), user, PW);
    }
    let plans = plans_with(label, rules);
    let server = Server::start_with_data(
        Some(ns),
        &["--dialplans", plans.path().to_str().unwrap()],
        data,
    );
    (server, plans)
}

/// A phone registered as `user` on `ip` whose microphone plays `tone` Hz, answering calls
/// by itself.
fn phone(ip: &str, tone: u32, user: &str) -> Baresip {
    Baresip::new(ip, tone, "PCMU", 8000).registering(user, PW)
}

/// Waits until `count` contacts are registered.
fn registered(server: &Server, ns: &Netns, count: u64) {
    let done = wait_until(Duration::from_secs(10), || {
        server.metric(Some(ns), "amtsleitung_registered_contacts") >= count
    });
    assert!(done, "the phones did not register\n{}", server.log());
}

/// The newest call record of a call to `number`.
fn record_of(server: &Server, number: &str) -> store::CallRecord {
    let store = store::Store::open(server.data_dir()).unwrap();
    let mut found = None;
    wait_until(Duration::from_secs(5), || {
        found = store
            .recent_calls(20)
            .unwrap()
            .into_iter()
            .find(|c| c.callee == number);
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no call record for {number}\n{}", server.log()))
}

/// Whether a phone's output shows a call coming in: "Incoming call" when it rings, or
/// "answering call" when it answers by itself (baresip prints only that then).
fn rang(output: &str) -> bool {
    output.contains("Incoming call") || output.contains("answering call")
}

/// The server's log lines that contain every one of `words`.
fn log_lines_with(server: &Server, words: &[&str]) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_hunt_group_skips_a_dnd_member_and_a_busy_member_and_the_third_talks_with_the_caller() {
    let ns = Netns::new();
    let (server, _plans) = server_with(
        &ns,
        "groups-hunt",
        &["101", "102", "103", "104", "105"],
        "[groups.service]\nmembers = [\"101\", \"102\", \"103\"]\nstrategy = \"hunt\"\nring = 8\n\
         [[rule]]\nname = \"service desk\"\nmatch = \"700\"\n\
         actions = [ { dial = { group = \"service\" } }, { hangup = \"busy\" } ]\n",
    );
    // 101 has do not disturb on; its phone would answer at once if it rang.
    admin_ok(server.data_dir(), &["user", "dnd", "101", "on"]);
    let dnd = phone("10.99.0.2", 660, "101");
    // 102 is on the phone with 104 (a call through the server) while the group is called;
    // its phone too would answer the group's call at once.
    let busy = phone("10.99.0.4", 550, "102");
    let colleague = phone("10.99.0.6", 330, "104");
    let third = phone("10.99.0.5", 880, "103");
    let caller = phone("10.99.0.3", 440, "105");
    let (dnd_out, busy_out, third_out, caller_out) = std::thread::scope(|scope| {
        let dnd_run = scope.spawn(|| dnd.run(&ns, 26));
        let third_run = scope.spawn(|| third.run(&ns, 26));
        let colleague_run = scope.spawn(|| colleague.run(&ns, 26));
        registered(&server, &ns, 3);
        let busy_run = scope.spawn(|| busy.call(&ns, "sip:104@10.99.0.1", 20));
        let in_call = wait_until(Duration::from_secs(8), || {
            !log_lines_with(&server, &["connected", "from=102", "to=104"]).is_empty()
        });
        assert!(in_call, "102's call to 104 did not start\n{}", server.log());
        // Let 102's call settle before the group is called.
        std::thread::sleep(Duration::from_secs(2));
        let caller_out = caller.call(&ns, "sip:700@10.99.0.1", 8);
        let colleague_out = colleague_run.join().unwrap();
        assert!(
            rang(&colleague_out),
            "104 never took 102's call\n{colleague_out}"
        );
        (
            dnd_run.join().unwrap(),
            busy_run.join().unwrap(),
            third_run.join().unwrap(),
            caller_out,
        )
    });
    let outputs =
        format!("{caller_out}\n--101--\n{dnd_out}\n--102--\n{busy_out}\n--103--\n{third_out}");
    // The third member answered and both heard each other.
    assert_both_hear(&third, &caller, &server, &outputs);
    assert!(rang(&third_out), "{outputs}");
    // The member in do not disturb never rang; the busy one got no second call.
    assert!(!rang(&dnd_out), "{outputs}");
    assert!(dnd.heard().is_none(), "101 got audio\n{outputs}");
    assert_eq!(
        busy_out.matches("Call established").count(),
        1,
        "102 got a second call\n{outputs}"
    );
    assert!(!rang(&busy_out), "{outputs}");
    assert!(
        !log_lines_with(&server, &["member skipped", "member=101", "do not disturb"]).is_empty(),
        "{}",
        server.log()
    );
    assert!(
        !log_lines_with(&server, &["member skipped", "member=102", "busy"]).is_empty(),
        "{}",
        server.log()
    );
    // The call record and the call's log span name the group and the member reached.
    let call = record_of(&server, "700");
    assert_eq!(call.ring_group.as_deref(), Some("service"), "{call:#?}");
    assert!(call.answered, "{call:#?}");
    assert_eq!(
        call.connected.as_ref().and_then(|c| c.extension.as_deref()),
        Some("103"),
        "{call:#?}"
    );
    assert!(
        !log_lines_with(&server, &["group=service", "group_member=103"]).is_empty(),
        "{}",
        server.log()
    );
}

#[test]
fn when_no_member_answers_in_the_groups_time_the_rules_next_action_runs() {
    let ns = Netns::new();
    // Nobody at the service desk picks up within the group's 6 s: the fallback dials the
    // switchboard (104), who talks with the caller.
    let (server, _plans) = server_with(
        &ns,
        "groups-fallback",
        &["101", "102", "104", "105"],
        "[groups.service]\nmembers = [\"101\", \"102\"]\nstrategy = \"all\"\ntimeout = 6\n\
         [[rule]]\nname = \"service desk\"\nmatch = \"700\"\n\
         actions = [ { dial = { group = \"service\" } }, { dial = \"104\" }, { hangup = \"busy\" } ]\n",
    );
    let first = phone("10.99.0.2", 660, "101").never_answering();
    let second = phone("10.99.0.4", 550, "102").never_answering();
    let switchboard = phone("10.99.0.5", 880, "104");
    let caller = phone("10.99.0.3", 440, "105");
    let (first_out, second_out, switchboard_out, caller_out) = std::thread::scope(|scope| {
        let runs: Vec<_> = [&first, &second, &switchboard]
            .into_iter()
            .map(|p| scope.spawn(|| p.run(&ns, 24)))
            .collect();
        registered(&server, &ns, 3);
        let caller_out = caller.call(&ns, "sip:700@10.99.0.1", 14);
        let mut outs = runs.into_iter().map(|r| r.join().unwrap());
        (
            outs.next().unwrap(),
            outs.next().unwrap(),
            outs.next().unwrap(),
            caller_out,
        )
    });
    let outputs = format!(
        "{caller_out}\n--101--\n{first_out}\n--102--\n{second_out}\n--104--\n{switchboard_out}"
    );
    // Both members rang (all at once) and stopped ringing unanswered.
    for out in [&first_out, &second_out] {
        assert!(rang(out), "{outputs}");
    }
    assert!(
        first.heard().is_none() && second.heard().is_none(),
        "{outputs}"
    );
    assert!(
        server.log().contains("ring group: nobody answered"),
        "{}",
        server.log()
    );
    // The fallback's dial reached the switchboard: both hear each other.
    assert_both_hear(&switchboard, &caller, &server, &outputs);
    let call = record_of(&server, "700");
    assert_eq!(call.ring_group.as_deref(), Some("service"), "{call:#?}");
    assert_eq!(
        call.connected.as_ref().and_then(|c| c.extension.as_deref()),
        Some("104"),
        "{call:#?}"
    );
    // The group rang its 6 s before the switchboard answered.
    let connected = call.connected.as_ref().map_or(0, |c| c.answered_at_ms);
    assert!(
        connected - call.started_at_ms >= 5_500,
        "answered {} ms after the call came\n{call:#?}",
        connected - call.started_at_ms
    );
}

#[test]
fn a_member_logs_out_and_in_with_the_code_and_that_changes_who_rings() {
    let ns = Netns::new();
    let (server, plans) = server_with(
        &ns,
        "groups-login",
        &["103", "104", "105"],
        "[groups.service]\nmembers = [\"103\"]\nstrategy = \"hunt\"\nring = 6\n\
         [[rule]]\nname = \"service desk\"\nmatch = \"700\"\n\
         actions = [ { dial = { group = \"service\" } }, { dial = \"104\" } ]\n",
    );
    let group_status = || {
        admin_ok(
            server.data_dir(),
            &[
                "group",
                "status",
                "--dialplans",
                plans.path().to_str().unwrap(),
            ],
        )
    };
    assert!(
        group_status().contains("103\tlogged in"),
        "{}",
        group_status()
    );
    let member = phone("10.99.0.5", 880, "103");
    let fallback = phone("10.99.0.4", 660, "104");
    let caller = phone("10.99.0.3", 440, "105");

    // 103 keys *45: logged out of the group, and hears so.
    let code_out = member.call(&ns, "sip:*45@10.99.0.1", 6);
    assert!(
        server.log().contains("ring group login: logged out"),
        "{code_out}\n{}",
        server.log()
    );
    assert!(
        group_status().contains("103\tlogged out since"),
        "{}",
        group_status()
    );
    let prompt = member
        .heard()
        .unwrap_or_else(|| panic!("103 heard nothing\n{code_out}"));
    let (samples, rate) = read_wav(&prompt);
    assert!(
        rms(&samples, rate, 0.3) > 300.0,
        "the confirming prompt is not in what 103 heard\n{code_out}"
    );
    std::fs::remove_file(&prompt).unwrap();

    // A call to the group skips 103 and goes on to the fallback (104).
    let (member_out, fallback_out, caller_out) =
        call_group(&server, &ns, &member, &fallback, &caller);
    let outputs = format!("{caller_out}\n--103--\n{member_out}\n--104--\n{fallback_out}");
    assert!(!rang(&member_out), "{outputs}");
    assert!(
        !log_lines_with(&server, &["member skipped", "member=103", "logged out"]).is_empty(),
        "{}",
        server.log()
    );
    let to_caller = heard_share(&caller, 660.0, "the caller", &server);
    assert!(
        to_caller > 0.5,
        "660 Hz of 104 at the caller {to_caller:.2}\n{outputs}"
    );
    let call = record_of(&server, "700");
    assert_eq!(
        call.connected.as_ref().and_then(|c| c.extension.as_deref()),
        Some("104"),
        "{call:#?}"
    );
    for p in [&fallback, &caller] {
        if let Some(wav) = p.heard() {
            std::fs::remove_file(wav).unwrap();
        }
    }

    // *45 again: logged in; the group's next call reaches 103.
    let code_out = member.call(&ns, "sip:*45@10.99.0.1", 6);
    assert!(
        server.log().contains("ring group login: logged in"),
        "{code_out}\n{}",
        server.log()
    );
    assert!(
        group_status().contains("103\tlogged in"),
        "{}",
        group_status()
    );
    if let Some(wav) = member.heard() {
        std::fs::remove_file(wav).unwrap();
    }
    let (member_out, fallback_out, caller_out) =
        call_group(&server, &ns, &member, &fallback, &caller);
    let outputs = format!("{caller_out}\n--103--\n{member_out}\n--104--\n{fallback_out}");
    assert!(rang(&member_out), "{outputs}");
    assert!(!rang(&fallback_out), "{outputs}");
    assert_both_hear(&member, &caller, &server, &outputs);

    // The admin logs 103 out by CLI; a user who is no member cannot be logged in.
    let out = admin_ok(
        server.data_dir(),
        &[
            "group",
            "logout",
            "service",
            "103",
            "--dialplans",
            plans.path().to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("103 logged out of ring group service"),
        "{out}"
    );
    assert!(
        group_status().contains("103\tlogged out since"),
        "{}",
        group_status()
    );
    let refused = support::amtsleitung()
        .current_dir(support::repo())
        .args(["group", "login", "service", "104", "--data-dir"])
        .arg(server.data_dir())
        .args(["--dialplans", plans.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("104 is not a member of ring group service"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// The member and the fallback's phones wait while the caller calls the group (700) for 10 s;
/// their outputs and the caller's.
fn call_group(
    server: &Server,
    ns: &Netns,
    member: &Baresip,
    fallback: &Baresip,
    caller: &Baresip,
) -> (String, String, String) {
    std::thread::scope(|scope| {
        let member_run = scope.spawn(|| member.run(ns, 18));
        let fallback_run = scope.spawn(|| fallback.run(ns, 18));
        // A phone that ran before may still count as registered (the same contact): give
        // both time to start and register again.
        std::thread::sleep(Duration::from_secs(3));
        registered(server, ns, 2);
        let caller_out = caller.call(ns, "sip:700@10.99.0.1", 10);
        (
            member_run.join().unwrap(),
            fallback_run.join().unwrap(),
            caller_out,
        )
    })
}

#[test]
fn a_group_respecting_forwarding_reaches_where_a_member_forwarded_and_one_ignoring_it_rings_the_member()
 {
    let ns = Netns::new();
    let (server, _plans) = server_with(
        &ns,
        "groups-forwarding",
        &["101", "104", "105"],
        "[groups.follows]\nmembers = [\"101\"]\nstrategy = \"hunt\"\nring = 8\n\
         [groups.direct]\nmembers = [\"101\"]\nstrategy = \"hunt\"\nring = 8\nrespect-forwarding = false\n\
         [[rule]]\nname = \"group that follows forwarding\"\nmatch = \"700\"\n\
         actions = [ { dial = { group = \"follows\" } }, { hangup = \"busy\" } ]\n\
         [[rule]]\nname = \"group that ignores forwarding\"\nmatch = \"701\"\n\
         actions = [ { dial = { group = \"direct\" } }, { hangup = \"busy\" } ]\n",
    );
    // 101 forwards every call to 104 (as with *21*104# from their phone).
    admin_ok(
        server.data_dir(),
        &["user", "forward", "101", "always", "104"],
    );
    let member = phone("10.99.0.2", 660, "101");
    let colleague = phone("10.99.0.5", 880, "104");
    let caller = phone("10.99.0.3", 440, "105");
    let (member_out, colleague_out, first_out, second_out, first_share, second_share) =
        std::thread::scope(|scope| {
            let member_run = scope.spawn(|| member.run(&ns, 26));
            let colleague_run = scope.spawn(|| colleague.run(&ns, 26));
            registered(&server, &ns, 2);
            // The server reads changes made by the CLI within a second.
            std::thread::sleep(Duration::from_secs(1));
            let first_out = caller.call(&ns, "sip:700@10.99.0.1", 7);
            let first_share = heard_share(&caller, 880.0, "the caller", &server);
            if let Some(wav) = caller.heard() {
                std::fs::remove_file(wav).unwrap();
            }
            let second_out = caller.call(&ns, "sip:701@10.99.0.1", 7);
            let second_share = heard_share(&caller, 660.0, "the caller", &server);
            (
                member_run.join().unwrap(),
                colleague_run.join().unwrap(),
                first_out,
                second_out,
                first_share,
                second_share,
            )
        });
    let outputs = format!(
        "{first_out}\n--second call--\n{second_out}\n--101--\n{member_out}\n--104--\n{colleague_out}"
    );
    // 700: 101's turn went where 101 forwarded it; 104 talked with the caller.
    assert!(
        first_share > 0.5,
        "880 Hz of 104 at the caller {first_share:.2}\n{outputs}"
    );
    assert_eq!(
        colleague_out.matches("answering call").count(),
        1,
        "104 took exactly the forwarded call\n{outputs}"
    );
    assert!(
        heard_share(&colleague, 440.0, "104", &server) > 0.5,
        "{outputs}"
    );
    assert!(
        !log_lines_with(&server, &["call forwarded", "user=101", "to=104"]).is_empty(),
        "{}",
        server.log()
    );
    // The group counts it as 101's answer (round-robin goes on after 101, not after 104).
    assert!(
        !log_lines_with(&server, &["member answered", "group=follows", "member=101"]).is_empty(),
        "{}",
        server.log()
    );
    // 701: the group ignores forwarding, so 101's own phone rang and talked with the caller.
    assert_eq!(
        member_out.matches("answering call").count(),
        1,
        "101's phone rang once, for 701 only\n{outputs}"
    );
    assert!(
        second_share > 0.5,
        "660 Hz of 101 at the caller {second_share:.2}\n{outputs}"
    );
    assert!(
        heard_share(&member, 440.0, "101", &server) > 0.5,
        "{outputs}"
    );
}
