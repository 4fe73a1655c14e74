//! Table-driven routing: numbers x callers x times -> action chains.

mod common;

use common::*;
use dialplan::{SourceFile, compile};

#[test]
fn default_plan_routes_echo_prompt_and_conference_numbers() {
    let plan = default_plan().plan;
    let at = "2026-12-24T19:00+01:00";
    let table = [
        ("600", Some("answer | echo"), "echo test"),
        (
            "601",
            Some("answer | play welcome | hangup 480"),
            "prompt test",
        ),
        ("800", Some("answer | lobby"), "conference lobby"),
        ("81234", Some("conference 1234"), "conference direct"),
        ("80000", Some("conference 0000"), "conference direct"),
        ("8123", None, ""),
        ("812345", None, ""),
        ("602", None, ""),
        ("", None, ""),
    ];
    for (to, want, rule) in table {
        for from in [None, Some("07111234"), Some("+49891234")] {
            let got = plan.route(&call(to, from, None, None, at));
            assert_eq!(
                got.as_ref().map(|r| chain(&r.actions)).as_deref(),
                want,
                "to {to:?} from {from:?}"
            );
            if let Some(r) = got {
                assert_eq!(r.rule_name, rule);
                assert_eq!(r.file, "default.toml");
            }
        }
    }
    assert_eq!(plan.language(), "de");
    assert_eq!(plan.timezone().iana_name(), Some("Europe/Berlin"));
}

const OPEN: &str = "answer | menu welcome [012] | dial user:zentrale 60 | hangup 480";
const CLOSED: &str = "answer | play after-hours | play goodbye | hangup 480";
const MAIN: &str = "+49711123400";

#[test]
fn townhall_main_number_follows_opening_hours_and_holidays() {
    let plan = townhall_plan().plan;
    let table = [
        // Ordinary weeks.
        ("2026-12-23T09:00+01:00", OPEN, "Wednesday morning"),
        ("2026-12-23T07:59+01:00", CLOSED, "before opening"),
        ("2026-12-23T08:00+01:00", OPEN, "opening minute"),
        ("2026-12-23T12:00+01:00", CLOSED, "lunch break starts"),
        ("2026-12-23T13:30+01:00", OPEN, "after lunch"),
        ("2026-12-23T15:59+01:00", OPEN, "last minute"),
        ("2026-12-23T16:00+01:00", CLOSED, "closing time"),
        ("2026-06-12T09:00+02:00", OPEN, "Friday morning"),
        ("2026-06-12T13:30+02:00", CLOSED, "Friday afternoon"),
        ("2026-06-13T09:00+02:00", CLOSED, "Saturday"),
        // Holidays of Baden-Württemberg and the town hall's own closing days.
        (
            "2026-12-24T09:00+01:00",
            CLOSED,
            "Heiligabend (own calendar)",
        ),
        ("2026-12-31T09:00+01:00", CLOSED, "Silvester (own calendar)"),
        (
            "2026-06-05T09:00+02:00",
            CLOSED,
            "Betriebsausflug (one-off date)",
        ),
        (
            "2026-06-04T09:00+02:00",
            CLOSED,
            "Fronleichnam (Easter + 60)",
        ),
        ("2026-06-03T09:00+02:00", OPEN, "day before Fronleichnam"),
        ("2026-04-03T09:00+02:00", CLOSED, "Karfreitag"),
        (
            "2026-01-06T09:00+01:00",
            CLOSED,
            "Heilige Drei Könige (BW only)",
        ),
        (
            "2026-11-18T09:00+01:00",
            OPEN,
            "Buß- und Bettag is not a holiday in BW",
        ),
        (
            "2026-10-29T09:00+01:00",
            OPEN,
            "Thursday after the autumn DST change",
        ),
        (
            "2027-06-04T09:00+02:00",
            OPEN,
            "Betriebsausflug was 2026 only",
        ),
        ("2027-05-27T09:00+02:00", CLOSED, "Fronleichnam 2027"),
    ];
    for (at, want, why) in table {
        let r = plan.route(&call(MAIN, Some("07111234"), Some("telekom"), None, at));
        assert_eq!(
            r.map(|r| chain(&r.actions)).as_deref(),
            Some(want),
            "{why} ({at})"
        );
    }
    // The DID rules need the call to come in on the trunk.
    assert!(
        plan.route(&call(
            MAIN,
            Some("07111234"),
            None,
            None,
            "2026-12-23T09:00+01:00"
        ))
        .is_none()
    );
    assert!(
        plan.route(&call(
            MAIN,
            Some("07111234"),
            Some("sipgate"),
            None,
            "2026-12-23T09:00+01:00"
        ))
        .is_none()
    );
}

#[test]
fn townhall_goto_continues_with_the_target_rules_actions() {
    let plan = townhall_plan().plan;
    let open = plan.route(&call(
        "+49711123450",
        None,
        Some("telekom"),
        None,
        "2026-12-23T09:00+01:00",
    ));
    assert_eq!(
        open.as_ref().map(|r| chain(&r.actions)).as_deref(),
        Some(
            "dial group:buergerservice 45 | answer | menu welcome [012] | dial user:zentrale 60 | hangup 480"
        )
    );
    assert_eq!(
        open.as_ref().map(|r| (r.rule_name.as_str(), r.hops)),
        Some(("Bürgerservice direkt", 1))
    );
    let closed = plan.route(&call(
        "+49711123450",
        None,
        Some("telekom"),
        None,
        "2026-12-24T09:00+01:00",
    ));
    assert_eq!(closed.map(|r| chain(&r.actions)).as_deref(), Some(CLOSED));
    let dial_in = plan.route(&call(
        "+49711123480",
        None,
        Some("telekom"),
        None,
        "2026-12-24T09:00+01:00",
    ));
    assert_eq!(
        dial_in.map(|r| chain(&r.actions)).as_deref(),
        Some("answer | lobby")
    );
}

#[test]
fn townhall_night_window_spans_midnight_and_dst_changes() {
    let plan = townhall_plan().plan;
    let night =
        "dial trunk:telekom/01701234567 45 | dial trunk:telekom/01707654321 45 | hangup 480";
    let day = "dial group:bauhof 60 | hangup 480";
    let table = [
        ("2026-12-24T21:59+01:00", day),
        ("2026-12-24T22:00+01:00", night),
        ("2026-12-24T23:59+01:00", night),
        ("2026-12-25T00:00+01:00", night),
        ("2026-12-25T05:59+01:00", night),
        ("2026-12-25T06:00+01:00", day),
        // Spring forward, Sun 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        ("2026-03-29T01:59+01:00", night),
        ("2026-03-29T03:00+02:00", night),
        ("2026-03-29T05:59+02:00", night),
        ("2026-03-29T06:00+02:00", day),
        // Fall back, Sun 2026-10-25: 03:00 CEST goes back to 02:00 CET; both 02:30s are night.
        ("2026-10-25T02:30+02:00", night),
        ("2026-10-25T02:30+01:00", night),
        ("2026-10-25T05:59+01:00", night),
        ("2026-10-25T06:00+01:00", day),
        ("2026-10-25T21:59+01:00", day),
    ];
    for (at, want) in table {
        let r = plan.route(&call(
            "+49711123499",
            Some("01511234567"),
            Some("telekom"),
            None,
            at,
        ));
        assert_eq!(r.map(|r| chain(&r.actions)).as_deref(), Some(want), "{at}");
    }
}

#[test]
fn townhall_internal_rules_check_source_network_and_substitute_captures() {
    let plan = townhall_plan().plan;
    let at = "2026-12-23T10:00+01:00";
    let table = [
        (
            "205",
            Some("10.8.0.12"),
            Some("dial user:205 20 | voicemail 205"),
        ),
        (
            "0071112345",
            Some("10.8.0.12"),
            Some("set +49711123400 | dial trunk:telekom/071112345 60 | hangup 486"),
        ),
        ("0071112345", Some("192.168.1.2"), None),
        ("0071112345", None, None),
        (
            "0071112345",
            Some("::ffff:10.8.0.99"),
            Some("set +49711123400 | dial trunk:telekom/071112345 60 | hangup 486"),
        ),
        ("600", None, Some("answer | echo")),
        ("84711", Some("192.168.1.2"), Some("conference 4711")),
    ];
    for (to, source, want) in table {
        let r = plan.route(&call(to, Some("205"), None, source, at));
        assert_eq!(
            r.map(|r| chain(&r.actions)).as_deref(),
            want,
            "{to} from {source:?}"
        );
    }
}

fn inline(text: &str) -> dialplan::Plan {
    let files = [SourceFile {
        path: "t.toml".into(),
        text: text.into(),
    }];
    compile_ok(&files, &dialplan::CheckContext::default()).plan
}

#[test]
fn window_past_midnight_belongs_to_the_day_it_starts() {
    let plan = inline(
        r#"
[[rule]]
match = "1"
when = { weekdays = "fri", hours = "22:00-06:00" }
actions = ["echo"]
"#,
    );
    let table = [
        ("2026-12-04T23:00+01:00", true, "Fri 23:00"),
        (
            "2026-12-05T03:00+01:00",
            true,
            "Sat 03:00 belongs to Friday night",
        ),
        (
            "2026-12-04T03:00+01:00",
            false,
            "Fri 03:00 belongs to Thursday night",
        ),
        ("2026-12-05T23:00+01:00", false, "Sat 23:00"),
        ("2026-12-05T06:00+01:00", false, "Sat 06:00 ends the window"),
    ];
    for (at, want, why) in table {
        assert_eq!(
            plan.route(&call("1", None, None, None, at)).is_some(),
            want,
            "{why}"
        );
    }
}

#[test]
fn spring_forward_hour_never_matches_and_fall_back_hour_matches_twice() {
    let plan = inline(
        r#"
[[rule]]
match = "1"
when = { hours = "02:00-03:00" }
actions = ["echo"]
"#,
    );
    let hit = |at: &str| plan.route(&call("1", None, None, None, at)).is_some();
    // 2026-03-29: 01:59:59 CET is followed by 03:00 CEST; no instant is 02:xx local.
    assert!(!hit("2026-03-29T00:59:59Z"));
    assert!(!hit("2026-03-29T01:00:00Z"));
    assert!(!hit("2026-03-29T01:30:00Z"));
    assert!(hit("2026-03-28T01:30:00Z"));
    // 2026-10-25: 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
    assert!(hit("2026-10-25T00:30:00Z"));
    assert!(hit("2026-10-25T01:30:00Z"));
    assert!(!hit("2026-10-25T02:00:00Z"));
}

#[test]
fn holidays_only_window_and_custom_calendar_extends() {
    let plan = inline(
        r#"
[settings]
calendar = "de-sn"

[calendars.amt]
extends = "de-sn"
days = ["12-24"]

[[rule]]
match = "1"
when = { holidays = "only" }
actions = [{ play = "holiday" }]

[[rule]]
match = "1"
when = { holidays = "only", calendar = "amt" }
actions = [{ play = "christmas-eve" }]

[[rule]]
match = "1"
actions = [{ play = "workday" }]
"#,
    );
    let table = [
        ("2026-11-18T10:00+01:00", "play holiday"),
        ("2026-12-24T10:00+01:00", "play christmas-eve"),
        ("2026-12-23T10:00+01:00", "play workday"),
        ("2026-10-31T10:00+01:00", "play holiday"),
    ];
    for (at, want) in table {
        let r = plan.route(&call("1", None, None, None, at));
        assert_eq!(r.map(|r| chain(&r.actions)).as_deref(), Some(want), "{at}");
    }
}

#[test]
fn caller_and_regex_captures_are_substituted() {
    let plan = inline(
        r#"
[[rule]]
match = "/^9(\\d\\d)(\\d+)$/"
from = ["_0711.", "_+49711."]
actions = [{ dial = { trunk = "t", number = "${2}-${1}-${FROM:-4}" } }]

[[rule]]
match = "/^9/"
actions = ["hangup"]
"#,
    );
    let r = plan.route(&call(
        "912345",
        Some("07111234"),
        None,
        None,
        "2026-01-01T00:00Z",
    ));
    assert_eq!(
        r.map(|r| chain(&r.actions)).as_deref(),
        Some("dial trunk:t/345-12-1234 30")
    );
    let r = plan.route(&call(
        "912345",
        Some("0891234"),
        None,
        None,
        "2026-01-01T00:00Z",
    ));
    assert_eq!(r.map(|r| chain(&r.actions)).as_deref(), Some("hangup 480"));
    let r = plan.route(&call("912345", None, None, None, "2026-01-01T00:00Z"));
    assert_eq!(r.map(|r| chain(&r.actions)).as_deref(), Some("hangup 480"));
}

#[test]
fn the_german_clir_prefix_withholds_the_number_for_that_call_only() {
    // *31# before the number: "Rufnummernunterdrückung" for one call, as on the public network.
    let plan = inline(
        r#"
[[rule]]
match = "/^\\*31#0(\\d+)$/"
actions = [{ dial = { trunk = "t", number = "0${1}", privacy = true } }]

[[rule]]
match = "_0X."
actions = [{ dial = { trunk = "t", number = "${EXTEN}" } }]
"#,
    );
    let route = |to: &str| {
        plan.route(&call(to, Some("201"), None, None, "2026-01-01T00:00Z"))
            .map(|r| chain(&r.actions))
    };
    assert_eq!(
        route("*31#07111234").as_deref(),
        Some("dial trunk:t/07111234 (withheld) 30")
    );
    assert_eq!(
        route("07111234").as_deref(),
        Some("dial trunk:t/07111234 30")
    );
}

#[test]
fn dynamic_goto_loop_is_cut_at_run_time() {
    // The loop goes through ${EXTEN}, so check cannot see it; routing stops after 16 hops.
    let plan = inline(
        r#"
[[rule]]
match = "_7X"
actions = ["answer", { goto = "${EXTEN}" }]
"#,
    );
    let r = plan.route(&call("71", None, None, None, "2026-01-01T00:00Z"));
    let r = r.unwrap_or_else(|| panic!("no route"));
    assert_eq!(r.hops, 17);
    assert_eq!(
        r.actions.last(),
        Some(&dialplan::Action::Hangup { cause: 482 })
    );
    assert_eq!(r.actions.len(), 18);
}

#[test]
fn goto_to_unknown_number_ends_in_404() {
    let plan = inline(
        r#"
[[rule]]
match = "1"
actions = ["answer", { goto = "${EXTEN}9" }]
"#,
    );
    let r = plan.route(&call("1", None, None, None, "2026-01-01T00:00Z"));
    assert_eq!(
        r.map(|r| chain(&r.actions)).as_deref(),
        Some("answer | hangup 404")
    );
}

#[test]
fn menu_goto_is_routed_by_route_goto() {
    let plan = townhall_plan().plan;
    let facts = call(MAIN, None, Some("telekom"), None, "2026-12-23T09:00+01:00");
    let r = plan.route_goto(&facts, "800", 0);
    assert_eq!(
        r.as_ref().map(|r| chain(&r.actions)).as_deref(),
        Some("answer | lobby")
    );
    assert_eq!(r.map(|r| r.hops), Some(1));
    let r = plan.route_goto(&facts, "800", 16);
    assert_eq!(r.map(|r| chain(&r.actions)).as_deref(), Some("hangup 482"));
}

/// Who may take a route: the shipped plan opens the test numbers and conferences to anyone
/// and keeps staff extensions (and numbers nobody has) for identified callers; a public
/// rule's goto into a staff-only rule does not open it.
#[test]
fn only_rules_marked_public_are_open_to_unidentified_callers() {
    let plan = default_plan().plan;
    let at = "2026-12-24T19:00+01:00";
    for (to, public) in [
        ("600", true),
        ("601", true),
        ("800", true),
        ("81234", true),
        ("101", false),
        ("599", false),
    ] {
        let route = plan.route(&call(to, None, None, None, at));
        assert_eq!(route.map(|r| r.public), Some(public), "{to}");
    }
    let plan = inline(
        r#"
        [[rule]]
        name = "hotline"
        match = "100"
        public = true
        actions = [ { goto = "200" } ]

        [[rule]]
        name = "staff"
        match = "200"
        actions = [ "answer", "echo" ]

        [[rule]]
        name = "open echo"
        match = "300"
        public = true
        actions = [ { goto = "400" } ]

        [[rule]]
        name = "echo"
        match = "400"
        public = true
        actions = [ "answer", "echo" ]
        "#,
    );
    let public = |to: &str| {
        plan.route(&call(to, None, None, None, at))
            .map(|r| r.public)
    };
    assert_eq!(public("100"), Some(false), "goto into a staff-only rule");
    assert_eq!(public("200"), Some(false));
    assert_eq!(public("300"), Some(true), "goto between public rules");
    let explained = plan.explain(&call("100", None, None, None, at)).to_string();
    assert!(
        explained.contains("for registered, authenticated or trusted callers only"),
        "{explained}"
    );
    let explained = plan.explain(&call("300", None, None, None, at)).to_string();
    assert!(
        explained.contains("public: anyone may call it"),
        "{explained}"
    );
}

#[test]
fn parse_local_time_reads_admin_input_in_plan_zone() {
    let plan = default_plan().plan;
    let ts = plan.parse_local_time("2026-12-24 19:00");
    assert_eq!(
        ts.map(|t| t.to_string()),
        Ok("2026-12-24T18:00:00Z".to_string())
    );
    assert!(plan.parse_local_time("24.12.2026 19:00").is_err());
    let _ = compile;
}

#[test]
fn default_plan_has_directed_and_group_pickup_codes() {
    let plan = default_plan().plan;
    let at = "2026-12-23T09:00+01:00";
    let table = [
        ("**101", Some("pickup 101"), "directed pickup"),
        ("**2345", Some("pickup 2345"), "directed pickup"),
        ("*8", Some("pickup group"), "group pickup"),
        ("**", None, ""),
        ("*80", None, ""),
    ];
    for (to, want, rule) in table {
        let got = plan.route(&call(to, Some("102"), None, None, at));
        assert_eq!(
            got.as_ref().map(|r| chain(&r.actions)).as_deref(),
            want,
            "to {to:?}"
        );
        if let Some(r) = got {
            assert_eq!(r.rule_name, rule);
            // Taking colleagues' calls is for identified callers only.
            assert!(!r.public, "{to}");
        }
    }
}

#[test]
fn pickup_groups_name_each_members_partners_and_are_checked_against_the_users() {
    let text = "[pickup-groups]\n\
                buergerbuero = [\"101\", \"102\", \"103\"]\n\
                bauamt = [\"103\", \"104\"]\n\
                [[rule]]\nmatch = \"*8\"\nactions = [ { pickup = \"group\" } ]\n";
    let files = [SourceFile {
        path: "pickup.toml".into(),
        text: text.into(),
    }];
    let plan = compile_ok(&files, &dialplan::CheckContext::default()).plan;
    assert_eq!(plan.pickup_partners("101"), ["102", "103"]);
    assert_eq!(plan.pickup_partners("103"), ["104", "101", "102"]);
    assert!(plan.pickup_partners("105").is_empty());
    // `explain` says whose calls a group pickup would take.
    let at = "2026-12-23T09:00+01:00";
    let text = plan
        .explain(&call("*8", Some("101"), None, None, at))
        .to_string();
    assert!(
        text.contains("Pickup: takes the oldest call ringing at 102, 103"),
        "{text}"
    );
    let text = plan
        .explain(&call("*8", Some("105"), None, None, at))
        .to_string();
    assert!(text.contains("in no [pickup-groups] group"), "{text}");
    // With the users known, a member nobody has is an error at its line.
    let ctx = dialplan::CheckContext {
        users: Some(
            ["101", "102", "103"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        ..dialplan::CheckContext::default()
    };
    let errors = compile(&files, &ctx).err().unwrap_or_default();
    assert!(
        errors
            .iter()
            .any(|d| d.line == 3 && d.to_string().contains("unknown user \"104\"")),
        "{errors:?}"
    );
}
