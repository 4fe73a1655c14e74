//! The server on a PostgreSQL store (`[store] url`): with only pre-created rooms allowed, a
//! caller in the lobby keys a room that exists only in the PostgreSQL database and is let
//! in, the room shows up there as open while the call lasts, and the call's record is
//! written there; the data directory gets no SQLite file. The database is a fresh one of the
//! throw-away cluster the store's tests use (store::test_cluster).
//!
//! The room has no PIN: lobby_join.xml keys the PIN right after the room number, and here
//! the server missed the PIN's first digit (its debug log: 3, 2, 1 arrived, not 4), a
//! timing matter of the scenario and not of the store, whose PIN checks run on PostgreSQL
//! in the store's own tests.

mod support;

use std::time::{Duration, Instant};

use support::{Netns, Server, TempDir, scenario_with_tone, sipp_caller};

#[test]
fn a_server_on_postgres_lets_a_lobby_caller_into_a_room_stored_there_and_records_the_call_there() {
    let url = store::test_cluster::fresh_database();
    // A plain thread (this test's): the postgres client must not run inside a tokio runtime.
    let db = store::Store::open_postgres(&url).unwrap();
    db.room_create(&store::NewRoom::new("1234", 5)).unwrap();
    let config = TempDir::new("pg-config");
    let config_file = config.path().join("amtsleitung.toml");
    std::fs::write(
        &config_file,
        format!("[conference]\nrequire-precreated-rooms = true\n[store]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &["--config", config_file.to_str().unwrap()]);
    assert!(
        server.log().contains("store open") && server.log().contains("postgresql://postgres@"),
        "the server did not say it opened the PostgreSQL store:\n{}",
        server.log()
    );
    let dir = TempDir::new("pg-lobby");
    let lobby = scenario_with_tone(&dir, "lobby_join.xml", 440);
    let seen_open = std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            // Keys 1234# (and 4321#, heard in the room), then talks for 8 s there.
            sipp_caller(
                &ns,
                &server,
                &lobby,
                "800",
                8000,
                "lobby call into room 1234",
            )
        });
        // The server reports its open rooms to the store every few seconds.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = None;
        while seen.is_none() && Instant::now() < deadline && !call.is_finished() {
            seen = db.live_room("1234").unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
        call.join().unwrap();
        seen
    });
    let open = seen_open.unwrap_or_else(|| {
        panic!(
            "room 1234 never showed up as open in PostgreSQL:\n{}",
            server.log()
        )
    });
    assert_eq!(open.participants, 1, "{open:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let calls = db.recent_calls(5).unwrap();
        if let Some(record) = calls.into_iter().find(|c| c.callee == "800") {
            break record;
        }
        assert!(
            Instant::now() < deadline,
            "no call record in PostgreSQL:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(record.answered, "{record:?}");
    assert!(
        !store::Store::database_file(server.data_dir()).exists(),
        "a SQLite file was made in the data directory"
    );
}
