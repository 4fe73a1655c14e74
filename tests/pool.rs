//! Several amtsleitung nodes behind Debian's Kamailio with the shipped configuration
//! (deploy/kamailio/amtsleitung-pool.cfg), each in a network namespace of its own: Kamailio
//! and the callers in the test's namespace (Kamailio on 10.99.0.1, where the callers send),
//! node A on 10.99.0.11 and node B on 10.99.0.12 in theirs, linked to it by veth pairs (the
//! nodes' admin HTTP listens on their own address there, so the tests read it from the
//! callers' namespace). PostgreSQL, where a test shares one store, is reached over its
//! socket. Every caller of a
//! room reaches the same node and they hear each other; a killed or draining node gets no new
//! calls. Proven with real baresip and SIPp callers, the nodes' own room lists and recorded
//! audio.

mod support;

use std::time::{Duration, Instant};

use support::kamailio::Kamailio;
use support::{
    Baresip, Netns, Server, TempDir, read_wav, scenario_with_tone_for, sipp, tone_share,
};

const PROXY: &str = "10.99.0.1";
const NODE_A: &str = "10.99.0.11";
const NODE_B: &str = "10.99.0.12";
/// Answered calls a node has finished.
const ANSWERED: &str = "amtsleitung_calls_total{result=\"answered\"}";

struct Pool {
    kamailio: Kamailio,
    nodes: Vec<(&'static str, Server)>,
    /// Each node's own namespace, by its address.
    homes: Vec<(&'static str, Netns)>,
}

/// A node's admin HTTP address: its own address, so that the callers' namespace reaches it.
fn node_http(ip: &str, port: u16) -> String {
    format!("{ip}:{port}")
}

impl Pool {
    /// Two nodes and Kamailio in front, health-checking them every second; returns when
    /// Kamailio sees both up.
    fn start(ns: &Netns) -> Self {
        Self::start_with(ns, &[], |_| {})
    }

    /// [`Pool::start`] with `extra` flags for both nodes and `prepare` run on each node's
    /// data directory before it starts (users, rooms).
    fn start_with(ns: &Netns, extra: &[&str], prepare: impl Fn(&std::path::Path)) -> Self {
        let mut nodes = Vec::new();
        let mut homes = Vec::new();
        for (ip, port, rtp) in [(NODE_A, 8081, "20000-20999"), (NODE_B, 8082, "21000-21999")] {
            let home = ns.host_on(ip);
            let data = TempDir::new("node");
            prepare(data.path());
            let mut args = vec!["--media-ip", ip];
            args.extend_from_slice(extra);
            let http = node_http(ip, port);
            nodes.push((ip, Server::start_node(&home, ip, &http, rtp, &args, data)));
            homes.push((ip, home));
        }
        let kamailio = Kamailio::start(
            ns,
            PROXY,
            &[&format!("{NODE_A}:5060"), &format!("{NODE_B}:5060")],
            1,
        );
        let pool = Self {
            kamailio,
            nodes,
            homes,
        };
        for (ip, _) in &pool.nodes {
            assert!(
                pool.kamailio
                    .wait_for_node(&format!("sip:{ip}:5060"), 'A', Duration::from_secs(10))
                    .is_some(),
                "Kamailio does not see node {ip} up: {:?}\n{}",
                pool.kamailio.node_states(),
                pool.kamailio.log()
            );
        }
        pool
    }

    /// A metric summed over both nodes.
    fn metric(&self, ns: &Netns, name: &str) -> u64 {
        self.nodes
            .iter()
            .map(|(_, s)| s.metric(Some(ns), name))
            .sum()
    }

    fn node(&self, ip: &str) -> &Server {
        &self
            .nodes
            .iter()
            .find(|(node, _)| *node == ip)
            .expect("a node of the pool")
            .1
    }

    /// Starts node `ip` again in its namespace, on its data, with `extra` flags.
    fn restart_node(&mut self, ip: &'static str, http: &str, rtp: &str, extra: &[&str]) {
        let index = self
            .homes
            .iter()
            .position(|(node, _)| *node == ip)
            .expect("a node of the pool");
        let home = &self.homes[index].1;
        self.nodes[index].1.restart_node(home, ip, http, rtp, extra);
    }

    fn node_mut(&mut self, ip: &str) -> &mut Server {
        &mut self
            .nodes
            .iter_mut()
            .find(|(node, _)| *node == ip)
            .expect("a node of the pool")
            .1
    }

    /// Participants of `room` on each node, by the nodes' own `GET /rooms`.
    fn participants(&self, ns: &Netns, room: &str) -> Vec<(&'static str, u64)> {
        self.nodes
            .iter()
            .map(|(ip, server)| (*ip, server.room_participants(Some(ns), room)))
            .collect()
    }

    fn logs(&self) -> String {
        let mut text = format!("--- kamailio\n{}", self.kamailio.log());
        for (ip, server) in &self.nodes {
            text.push_str(&format!("--- node {ip}\n{}", server.log()));
        }
        text
    }
}

/// The one node that has `room` open with `count` participants, the other none; waits up to
/// `timeout` for it.
fn node_with_room(
    pool: &Pool,
    ns: &Netns,
    room: &str,
    count: u64,
    timeout: Duration,
) -> &'static str {
    let until = Instant::now() + timeout;
    loop {
        let seen = pool.participants(ns, room);
        let holding: Vec<_> = seen.iter().filter(|(_, n)| *n > 0).collect();
        if holding.len() == 1 && holding[0].1 == count {
            return holding[0].0;
        }
        assert!(
            Instant::now() < until,
            "room {room}: wanted {count} participants on one node, saw {seen:?}\n{}",
            pool.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The phone (playing 440 Hz) and its caller (880 Hz) each recorded the other's tone.
fn assert_phone_and_caller_hear_each_other(
    pool: &Pool,
    phone: &Baresip,
    caller: &Baresip,
    outputs: &str,
) {
    let heard = |client: &Baresip, who: &str, freq: f64| {
        let recorded = client
            .heard()
            .unwrap_or_else(|| panic!("{who} heard nothing\n{outputs}\n{}", pool.logs()));
        support::share_between(&recorded, freq, 1.0, 5.0)
    };
    let to_phone = heard(phone, "the phone", 880.0);
    let to_caller = heard(caller, "the caller", 440.0);
    eprintln!("880 Hz at the phone {to_phone:.2}, 440 Hz at the caller {to_caller:.2}");
    assert!(
        to_phone > 0.5 && to_caller > 0.5,
        "880 Hz at the phone {to_phone:.2}, 440 Hz at the caller {to_caller:.2}\n{outputs}\n{}",
        pool.logs()
    );
}

#[test]
fn callers_of_one_room_meet_on_one_node_through_kamailio_and_other_rooms_spread() {
    let ns = Netns::new();
    let pool = Pool::start(&ns);

    // Three callers dial room 1234 at the proxy's address, one after the other.
    let clients = [
        Baresip::new("10.99.0.2", 440, "PCMU", 8000),
        Baresip::new("10.99.0.3", 660, "PCMU", 8000),
        Baresip::new("10.99.0.4", 880, "PCMU", 8000),
    ];
    let tones = [440.0, 660.0, 880.0];
    let uri = format!("sip:81234@{PROXY}:5060");
    let (logs, holder) = std::thread::scope(|scope| {
        let calls = scope
            .spawn(|| support::call_staggered(&ns, &clients.iter().collect::<Vec<_>>(), &uri, 12));
        // All three in one room on one node, none on the other.
        let holder = node_with_room(&pool, &ns, "1234", 3, Duration::from_secs(10));
        (calls.join().unwrap(), holder)
    });
    eprintln!("room 1234 is on node {holder}");
    for (i, client) in clients.iter().enumerate() {
        let heard = client
            .heard()
            .unwrap_or_else(|| panic!("{} recorded nothing\n{}", client.ip, logs[i]));
        let (samples, rate) = read_wav(&heard);
        for (j, tone) in tones.iter().enumerate() {
            let share = tone_share(&samples, rate, *tone, 3.0);
            eprintln!("{} hears {tone} Hz at {share:.2}", client.ip);
            if i == j {
                assert!(share < 0.05, "{} hears itself ({share:.2})", client.ip);
            } else {
                assert!(
                    share > 0.15,
                    "{} hears {tone} Hz only at {share:.2}\n{}\n{}",
                    client.ip,
                    logs[i],
                    pool.logs()
                );
            }
        }
    }

    // Eight other rooms, one short call each at the same time: the hash spreads them over
    // both nodes, and each node took the calls Kamailio says it sent there.
    let dir = TempDir::new("pool");
    let caller = scenario_with_tone_for(&dir, "invite_pcmu_routed.xml", 440, 3);
    let before: Vec<u64> = pool
        .nodes
        .iter()
        .map(|(_, s)| s.metric(Some(&ns), ANSWERED))
        .collect();
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let caller = &caller;
                let ns = &ns;
                scope.spawn(move || {
                    let room = format!("8{}", 2000 + i * 37);
                    let port = (5071 + i).to_string();
                    let media = (40000 + i * 10).to_string();
                    sipp(
                        Some(ns),
                        &support::sipp_call_args(
                            caller,
                            "10.99.0.5",
                            &port,
                            &["-s", &room, "-d", "2000", "-mp", &media],
                        ),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for output in &outputs {
        support::assert_sipp_ok(output, pool.node(NODE_A), "a call to another room");
    }
    let taken = || -> Vec<u64> {
        pool.nodes
            .iter()
            .zip(&before)
            .map(|((_, s), before)| s.metric(Some(&ns), ANSWERED) - before)
            .collect()
    };
    support::wait_until(Duration::from_secs(5), || taken().iter().sum::<u64>() == 8);
    let taken = taken();
    eprintln!("calls to eight rooms per node: {taken:?}");
    assert_eq!(taken.iter().sum::<u64>(), 8, "{}", pool.logs());
    assert!(
        taken.iter().all(|n| *n > 0),
        "one node took every room: {taken:?}\n{}",
        pool.logs()
    );
}

#[test]
fn a_killed_node_is_taken_out_and_the_next_callers_reach_the_other() {
    let ns = Netns::new();
    let mut pool = Pool::start(&ns);
    let dir = TempDir::new("pool");
    let long_call = scenario_with_tone_for(&dir, "invite_pcmu_routed.xml", 440, 30);

    // A caller in room 1234, on whichever node the hash picks.
    let mut first = support::sipp_call_spawn(&ns, &long_call, "81234", 5070, 16000, 30000);
    let holder = node_with_room(&pool, &ns, "1234", 1, Duration::from_secs(10));
    let other = if holder == NODE_A { NODE_B } else { NODE_A };

    // The node dies (power cut): Kamailio's next health check takes it out.
    let killed_at = Instant::now();
    pool.node_mut(holder).kill();
    let out_after = pool
        .kamailio
        .wait_for_node(&format!("sip:{holder}:5060"), 'I', Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "Kamailio still sends to the dead node: {:?}\n{}",
                pool.kamailio.node_states(),
                pool.logs()
            )
        });
    eprintln!("node {holder} taken out {out_after:?} after it died");
    assert!(out_after < Duration::from_secs(4), "{out_after:?}");

    // The next caller of the same room and a call to the echo test reach the other node.
    let short_call = &long_call;
    let next = sipp(
        Some(&ns),
        &support::sipp_call_args(
            short_call,
            "10.99.0.3",
            "5070",
            &["-s", "81234", "-d", "4000"],
        ),
    );
    support::assert_sipp_ok(&next, pool.node(other), "the next caller of room 1234");
    let echo = sipp(
        Some(&ns),
        &support::sipp_call_args(
            short_call,
            "10.99.0.4",
            "5070",
            &["-s", "600", "-d", "1000"],
        ),
    );
    support::assert_sipp_ok(&echo, pool.node(other), "a call to 600");
    eprintln!(
        "both calls reached node {other} {:?} after the kill",
        killed_at.elapsed()
    );
    assert!(
        support::wait_until(Duration::from_secs(5), || pool
            .node(other)
            .metric(Some(&ns), ANSWERED)
            == 2),
        "node {other} did not finish both calls\n{}",
        pool.logs()
    );
    let _ = first.kill();
    let _ = first.wait();

    // The dead node starts again on its data: the call it had when it died gets its record,
    // ended by failure, and Kamailio takes the node back.
    let (http, rtp) = if holder == NODE_A {
        (node_http(NODE_A, 8081), "20000-20999")
    } else {
        (node_http(NODE_B, 8082), "21000-21999")
    };
    pool.restart_node(holder, &http, rtp, &["--media-ip", holder]);
    let records = support::call_records(pool.node(holder), 1);
    let cut = records
        .iter()
        .find(|r| r.callee == "81234")
        .unwrap_or_else(|| panic!("no record of the cut call: {records:?}\n{}", pool.logs()));
    assert_eq!(cut.end_reason, store::INTERRUPTED_REASON, "{cut:?}");
    assert!(cut.started_at_ms <= cut.ended_at_ms, "{cut:?}");
    assert!(
        pool.node(holder)
            .log()
            .contains("recorded as ended by failure"),
        "{}",
        pool.logs()
    );
    assert!(
        pool.kamailio
            .wait_for_node(&format!("sip:{holder}:5060"), 'A', Duration::from_secs(10))
            .is_some(),
        "Kamailio did not take the restarted node back: {:?}",
        pool.kamailio.node_states()
    );
}

#[test]
fn a_draining_node_gets_no_new_call_through_kamailio_and_keeps_its_room_to_the_end() {
    let ns = Netns::new();
    let mut pool = Pool::start(&ns);
    let dir = TempDir::new("pool");
    let talker = scenario_with_tone_for(&dir, "invite_pcmu_routed.xml", 440, 12);

    let (room_call, holder, other, refused_new_calls, probe_states) = std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            sipp(
                Some(&ns),
                &support::sipp_call_args(
                    &talker,
                    "10.99.0.2",
                    "5070",
                    &["-s", "81234", "-d", "10000"],
                ),
            )
        });
        let holder = node_with_room(&pool, &ns, "1234", 1, Duration::from_secs(10));
        let other = if holder == NODE_A { NODE_B } else { NODE_A };
        let server = pool.node(holder);
        let drained = support::node_drain(&ns, server);
        assert!(
            drained.status.success(),
            "{}",
            String::from_utf8_lossy(&drained.stderr)
        );
        // Kamailio's health check sees the 503 and stops sending there.
        let out_after =
            pool.kamailio
                .wait_for_node(&format!("sip:{holder}:5060"), 'I', Duration::from_secs(5));
        let probe_states = pool.kamailio.node_states();
        assert!(
            out_after.is_some(),
            "Kamailio still sends to the draining node: {probe_states:?}\n{}",
            pool.logs()
        );
        // Calls to the same room and to the echo test now reach the other node only.
        let before = server.metric(Some(&ns), ANSWERED);
        let mut new_calls = Vec::new();
        for (i, number) in ["81234", "600", "85555"].iter().enumerate() {
            let port = (5080 + i).to_string();
            new_calls.push(sipp(
                Some(&ns),
                &support::sipp_call_args(
                    &talker,
                    "10.99.0.3",
                    &port,
                    &["-s", number, "-d", "1000"],
                ),
            ));
        }
        for output in &new_calls {
            support::assert_sipp_ok(output, pool.node(other), "a new call while draining");
        }
        let refused_new_calls = server.metric(Some(&ns), ANSWERED) == before;
        (
            call.join().unwrap(),
            holder,
            other,
            refused_new_calls,
            probe_states,
        )
    });
    eprintln!("node {holder} drained ({probe_states:?}); new calls went to {other}");
    assert!(
        refused_new_calls,
        "the draining node took a new call\n{}",
        pool.logs()
    );
    support::assert_sipp_ok(
        &room_call,
        pool.node(holder),
        "the caller in the draining room",
    );
    let status = pool
        .node_mut(holder)
        .exit_within(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the drained node did not exit\n{}", pool.logs()));
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_phone_registered_through_kamailio_is_rung_through_it_and_a_guesser_behind_it_is_banned_alone()
{
    let ns = Netns::new();
    let dir = TempDir::new("pool");
    // Kamailio is a proxy in front; the caller at 10.99.0.5 is a trusted network of its own
    // (as a trunk's carrier would be), seen through the proxy.
    let config = dir.path().join("pool.toml");
    std::fs::write(
        &config,
        format!("[security]\nproxies = [\"{PROXY}/32\"]\ntrusted-networks = [\"10.99.0.5/32\"]\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let pool = Pool::start_with(&ns, &["--config", &config], |data| {
        support::add_user(data, "101", "geheim-101")
    });

    // Someone at 10.99.0.3 guesses 101's password through Kamailio: five wrong answers...
    let guess = support::register_scenario(&dir, 401);
    let out = support::sipp_register(&ns, &guess, "10.99.0.3", "101", "rate1234", 5);
    support::assert_sipp_ok(
        &out,
        pool.node(NODE_A),
        "five wrong passwords through the proxy",
    );
    assert_eq!(
        pool.metric(&ns, "amtsleitung_bans_total"),
        1,
        "{}",
        pool.logs()
    );
    // ...ban that address, which now gets a 403 through the proxy (silence would make
    // Kamailio take the node for dead), while the proxy itself is not banned.
    let banned = support::register_once_scenario(&dir, 403);
    let out = support::sipp_register(&ns, &banned, "10.99.0.3", "101", "rate1234", 1);
    support::assert_sipp_ok(&out, pool.node(NODE_A), "the banned guesser");
    let bans: String = pool
        .nodes
        .iter()
        .map(|(_, s)| s.http_get(Some(&ns), "/security/bans"))
        .collect();
    assert!(bans.contains("10.99.0.3"), "{bans}");
    assert!(!bans.contains(PROXY), "the proxy was banned: {bans}");

    // The real phone registers through the same proxy and is rung through it: both hear.
    let phone = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim-101");
    let caller = Baresip::new("10.99.0.5", 880, "PCMU", 8000);
    let outputs = std::thread::scope(|scope| {
        let phone_run = scope.spawn(|| phone.run(&ns, 16));
        let registered = support::wait_until(Duration::from_secs(8), || {
            pool.metric(&ns, "amtsleitung_registered_contacts") == 1
        });
        assert!(
            registered,
            "the phone did not register through Kamailio\n{}",
            pool.logs()
        );
        // Every caller behind the proxy shares the flow the phone registered over: that
        // must not make a stranger at 10.99.0.4 "the user 101" (challenged instead).
        let stranger = dir.path().join("invite_407.xml");
        let text = std::fs::read_to_string(support::scenario("invite_404.xml")).unwrap();
        std::fs::write(
            &stranger,
            text.replace("response=\"404\"", "response=\"407\""),
        )
        .unwrap();
        let out = sipp(
            Some(&ns),
            &support::sipp_call_args(
                stranger.to_str().unwrap(),
                "10.99.0.4",
                "5070",
                &["-s", "101"],
            ),
        );
        support::assert_sipp_ok(
            &out,
            pool.node(NODE_A),
            "a stranger calling 101 through the proxy",
        );
        let called = caller.call(&ns, &format!("sip:101@{PROXY}:5060"), 6);
        format!("{}\n{called}", phone_run.join().unwrap())
    });
    assert_phone_and_caller_hear_each_other(&pool, &phone, &caller, &outputs);
}

#[test]
fn a_lobby_caller_is_handed_on_to_the_rooms_node_keys_the_pin_there_and_is_heard() {
    let ns = Netns::new();
    let dir = TempDir::new("pool");
    let config = dir.path().join("pool.toml");
    std::fs::write(
        &config,
        format!("[security]\nproxies = [\"{PROXY}/32\"]\n[pool]\nproxy = \"{PROXY}:5060\"\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    // Both nodes know room 1234 with PIN 4321 (until the store is shared) and a staff line
    // 91234 into it without a PIN, which the listener dials on the room's node itself.
    let plans = support::plans_with_trusted_number();
    let pool = Pool::start_with(
        &ns,
        &[
            "--config",
            &config,
            "--dialplans",
            plans.path().to_str().unwrap(),
        ],
        |data| support::create_room(data, &["1234", "--pin", "4321"]),
    );
    // Which node Kamailio sends room 1234's callers to: a short call there first (the room
    // has a PIN, so the probe hears the prompt and leaves).
    let probe = scenario_with_tone_for(&dir, "invite_pcmu_routed.xml", 660, 3);
    let out = sipp(
        Some(&ns),
        &support::sipp_call_args(&probe, "10.99.0.4", "5070", &["-s", "81234", "-d", "500"]),
    );
    support::assert_sipp_ok(&out, pool.node(NODE_A), "the probe call to room 1234");
    support::wait_until(Duration::from_secs(5), || pool.metric(&ns, ANSWERED) == 1);
    let room_node = pool
        .nodes
        .iter()
        .find(|(_, s)| s.metric(Some(&ns), ANSWERED) == 1)
        .map(|(ip, _)| *ip)
        .unwrap_or_else(|| panic!("the probe call was not answered\n{}", pool.logs()));
    let lobby_node = if room_node == NODE_A { NODE_B } else { NODE_A };

    // The lobby caller reaches the other node's lobby (800), keys 1234# there, is handed on
    // through Kamailio, keys 4321# which the room's node asks for, and talks 440 Hz for 14 s.
    let lobby = support::scenario_with_tone(&dir, "lobby_join.xml", 440);
    let listener = Baresip::new("10.99.0.3", 1000, "PCMU", 8000);
    let lobby_target = format!("{lobby_node}:5060");
    let (lobby_call, heard) = std::thread::scope(|scope| {
        let lobby_call = scope.spawn(|| {
            sipp(
                Some(&ns),
                &[
                    "-sf",
                    &lobby,
                    "-i",
                    "10.99.0.2",
                    "-mi",
                    "10.99.0.2",
                    "-p",
                    "5070",
                    "-m",
                    "1",
                    "-l",
                    "1",
                    "-s",
                    "800",
                    "-d",
                    "14000",
                    &lobby_target,
                ],
            )
        });
        // The caller is in room 1234 on the room's node once that node had the right PIN.
        let found = node_with_room(&pool, &ns, "1234", 1, Duration::from_secs(15));
        assert_eq!(found, room_node, "{}", pool.logs());
        let listened = listener.call(&ns, &format!("sip:91234@{room_node}:5060"), 6);
        (lobby_call.join().unwrap(), listened)
    });
    support::assert_sipp_ok(&lobby_call, pool.node(lobby_node), "the lobby caller");
    assert!(
        pool.node(lobby_node)
            .log()
            .contains("lobby: handing the caller on to the room's node"),
        "{}",
        pool.logs()
    );
    eprintln!("lobby on node {lobby_node}, room 1234 on node {room_node}");
    let recorded = listener
        .heard()
        .unwrap_or_else(|| panic!("the listener recorded nothing\n{heard}\n{}", pool.logs()));
    let share = support::share_between(&recorded, 440.0, 1.0, 5.0);
    eprintln!("440 Hz at the listener in room 1234: {share:.2}");
    assert!(
        share > 0.3,
        "the lobby caller was not heard in room 1234 ({share:.2})\n{}",
        pool.logs()
    );
}

#[test]
fn on_one_postgresql_store_a_phone_registered_through_one_node_is_rung_from_the_other_after_it_died()
 {
    // One shared store for both nodes: a fresh database of the store tests' throw-away
    // PostgreSQL cluster (Unix socket, reachable from the test namespace). 101 exists only
    // there.
    let url = store::test_cluster::fresh_database();
    // This test's own thread is a plain one: the postgres client must not run in a runtime.
    let db = store::Store::open_postgres(&url).unwrap();
    db.user_create(&store::NewUser::new("101", "Bürgerbüro", "geheim-101", 0))
        .unwrap();
    let ns = Netns::new();
    let dir = TempDir::new("pool");
    let config = dir.path().join("pool.toml");
    std::fs::write(
        &config,
        format!(
            "[security]\nproxies = [\"{PROXY}/32\"]\ntrusted-networks = [\"10.99.0.5/32\"]\n\
             [store]\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let mut pool = Pool::start_with(&ns, &["--config", &config], |_| {});

    let phone = Baresip::new("10.99.0.2", 440, "PCMU", 8000).registering("101", "geheim-101");
    let caller = Baresip::new("10.99.0.5", 880, "PCMU", 8000);
    let (phone_out, caller_out, holder, learned_after) = std::thread::scope(|scope| {
        let phone_run = scope.spawn(|| phone.run(&ns, 22));
        // The phone registers through Kamailio on the node its extension hashes to...
        let registered = Instant::now();
        let holder = loop {
            if let Some((ip, _)) = pool
                .nodes
                .iter()
                .find(|(_, s)| s.metric(Some(&ns), "amtsleitung_registered_contacts") == 1)
            {
                break *ip;
            }
            assert!(
                registered.elapsed() < Duration::from_secs(8),
                "the phone did not register\n{}",
                pool.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // ...and the other node learns the binding from the shared store.
        let learned = Instant::now();
        assert!(
            support::wait_until(Duration::from_secs(3), || pool
                .metric(&ns, "amtsleitung_registered_contacts")
                == 2),
            "the other node did not learn the registration\n{}",
            pool.logs()
        );
        let learned_after = learned.elapsed();
        // The node that took the REGISTER dies; Kamailio takes it out.
        pool.node_mut(holder).kill();
        assert!(
            pool.kamailio
                .wait_for_node(&format!("sip:{holder}:5060"), 'I', Duration::from_secs(10))
                .is_some(),
            "Kamailio still sends to the dead node\n{}",
            pool.logs()
        );
        // A call to 101 now reaches the other node, which rings the phone through its Path.
        let called = caller.call(&ns, &format!("sip:101@{PROXY}:5060"), 6);
        (phone_run.join().unwrap(), called, holder, learned_after)
    });
    let other = if holder == NODE_A { NODE_B } else { NODE_A };
    eprintln!(
        "registered on {holder}, learned by {other} within {learned_after:?}; {holder} killed, \
         the call went through {other}"
    );
    let outputs = format!("{phone_out}\n{caller_out}");
    assert_phone_and_caller_hear_each_other(&pool, &phone, &caller, &outputs);
    assert!(
        pool.node(other).log().contains("dial: answered"),
        "{}",
        pool.logs()
    );
}
