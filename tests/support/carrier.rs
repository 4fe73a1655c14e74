//! The carrier side of the trunk tests: a trunks file for a SIPp carrier at 10.99.0.5, the
//! server started with it, the carrier itself, and what the caller should hear back.

use std::time::Duration;

use super::{Baresip, Netns, Server, TempDir, heard_share, plans_with, sipp, wait_until};

/// The carrier sits at 10.99.0.5; DIDs are +49 711 12345 plus three digits.
pub fn trunks_file(dir: &TempDir) -> String {
    let path = dir.path().join("trunks.toml");
    std::fs::write(
        &path,
        r#"
[numbering]
area-code = "711"

[[trunk]]
name = "carrier"
mode = "register"
registrar = "sip:10.99.0.5:5080"
username = "4971112345"
password = "trunkgeheim"
expires = 600
max-calls = 10
emergency = true
location-number = "+4971112345000"

[trunk.caller-id]
pai = true

[trunk.numbers]
base-number = "+49 711 12345"
extension-digits = 3
"#,
    )
    .unwrap();
    path.display().to_string()
}

/// The server in `ns` with the trunks file `trunks`, the dialplans in `plans` and the data
/// directory `data`.
pub fn server_with_trunks(ns: &Netns, trunks: &str, plans: &TempDir, data: TempDir) -> Server {
    Server::start_with_data(
        Some(ns),
        &[
            "--trunks",
            trunks,
            "--dialplans",
            plans.path().to_str().unwrap(),
        ],
        data,
    )
}

/// The SIPp carrier at 10.99.0.5 runs `carrier` for `calls` calls (its registration is one)
/// while the server starts with `trunks`, `plans` and `data` and registers with it; then
/// `place_calls` runs. The server, SIPp's output and what `place_calls` returned.
pub fn with_registered_carrier<T>(
    ns: &Netns,
    carrier: &str,
    calls: &str,
    (trunks, plans, data): (&str, &TempDir, TempDir),
    place_calls: impl FnOnce(&Server) -> T,
) -> (Server, std::process::Output, T) {
    std::thread::scope(|scope| {
        let carrier_run = scope.spawn(|| echoing_carrier(ns, carrier, "10.99.0.5", calls));
        // SIPp must listen before the server's first REGISTER.
        std::thread::sleep(Duration::from_millis(500));
        let server = server_with_trunks(ns, trunks, plans, data);
        let registered = wait_until(Duration::from_secs(8), || {
            server.metric(Some(ns), "amtsleitung_trunks_registered") == 1
        });
        assert!(registered, "the trunk did not register\n{}", server.log());
        let placed = place_calls(&server);
        (server, carrier_run.join().unwrap(), placed)
    })
}

/// SIPp as a carrier at `ip`:5080 running `scenario` for `calls` calls (a REGISTER counts as
/// one), sending every RTP packet it gets back from port 6100.
pub fn echoing_carrier(ns: &Netns, scenario: &str, ip: &str, calls: &str) -> std::process::Output {
    let args = [
        "-sf",
        scenario,
        "-i",
        ip,
        "-p",
        "5080",
        "-mi",
        ip,
        "-mp",
        "6100",
        "-rtp_echo",
        "-m",
        calls,
    ];
    sipp(Some(ns), &args)
}

/// The caller hears its own tone: the far end (SIPp with -rtp_echo) sent it back through
/// both legs.
pub fn assert_own_tone_back(caller: &Baresip, server: &Server, far_end: &str, caller_out: &str) {
    let back = heard_share(caller, 440.0, "the caller", server);
    assert!(
        back > 0.5,
        "440 Hz back from {far_end}: {back:.2}\n{caller_out}\n{}",
        server.log()
    );
}

/// DIDs that came in on the carrier's trunk ring the extension they end with; staff
/// numbers starting with 0 go out through the carrier.
pub fn did_plans() -> TempDir {
    plans_with(
        "trunk-plans",
        "[[rule]]\nname = \"DID to extension\"\nmatch = \"/^\\\\+4971112345(\\\\d{3})$/\"\ntrunk = \"carrier\"\nactions = [ { dial = \"${1}\" } ]\n\n\
         [[rule]]\nname = \"outside line\"\nmatch = \"_0X.\"\nactions = [ { dial = { trunk = \"carrier\", number = \"${EXTEN}\" } } ]\n\n\
         [[rule]]\nname = \"outside line of the social office\"\nmatch = \"/^8(0\\\\d+)$/\"\n\
         actions = [ { set = { caller_id = \"250\", caller_name = \"Sozialamt\" } }, { dial = { trunk = \"carrier\", number = \"${1}\" } } ]\n",
    )
}
