//! `explain` output for the three examples of the town-hall README (whose command lines
//! tests/cli.rs runs through the real binary and compares with the README verbatim).

mod common;

use common::*;
use dialplan::{CallFacts, CheckContext, Compiled, SourceFile};

fn examples() -> Vec<(&'static str, Compiled, CallFacts)> {
    vec![
        (
            "amtsleitung dialplan explain --to 81234 --from 07111234 --at \"2026-12-24 19:00\"",
            default_plan(),
            call(
                "81234",
                Some("07111234"),
                None,
                None,
                "2026-12-24T19:00+01:00",
            ),
        ),
        (
            "amtsleitung dialplan explain --dialplans dialplans/examples/townhall --to +49711123400 --from 07111234 --trunk telekom --at \"2026-12-23 09:00\"",
            townhall_plan(),
            call(
                "+49711123400",
                Some("07111234"),
                Some("telekom"),
                None,
                "2026-12-23T09:00+01:00",
            ),
        ),
        (
            "amtsleitung dialplan explain --dialplans dialplans/examples/townhall --to +49711123450 --from 07111234 --trunk telekom --at \"2026-12-24 09:00\"",
            townhall_plan(),
            call(
                "+49711123450",
                Some("07111234"),
                Some("telekom"),
                None,
                "2026-12-24T09:00+01:00",
            ),
        ),
    ]
}

#[test]
fn explain_names_matched_rule_and_why_earlier_rules_failed() {
    let [(_, c1, f1), (_, c2, f2), (_, c3, f3)]: [_; 3] = examples()
        .try_into()
        .unwrap_or_else(|_| panic!("three examples"));
    let e1 = c1.plan.explain(&f1).to_string();
    assert!(e1.starts_with("Call to 81234, from 07111234, trunk -, source -, at Thu 2026-12-24 19:00 (Europe/Berlin)\n"), "{e1}");
    assert!(
        e1.contains("  skip  default.toml:97 \"echo test\": 81234 does not match \"600\"\n"),
        "{e1}"
    );
    assert!(
        e1.contains("  MATCH default.toml:116 \"conference direct\": 81234 matches \"_8XXXX\"\n"),
        "{e1}"
    );
    assert!(
        e1.ends_with("Actions:\n  1. join conference room 1234 (PIN asked if the room has one)\n"),
        "{e1}"
    );

    let e2 = c2.plan.explain(&f2).to_string();
    assert!(
        e2.contains("time in mon-thu 08:00-12:00,13:30-16:00 not on holidays"),
        "{e2}"
    );
    assert!(
        e2.contains("       key 1:\n          1. dial ring group buergerservice, at most 60 s in all; nobody answers: then action 2\n"),
        "{e2}"
    );
    // Who rings, in which order, for how long: the group's members from its definition.
    assert!(
        e2.contains("Ring group \"buergerservice\": all members ring at once for 60 s\n  1. mueller: rings 0-60 s\n  2. schmidt: rings 0-60 s\n  3. yilmaz: rings 0-60 s\n"),
        "{e2}"
    );
    assert!(e2.contains("logged-out members, busy members"), "{e2}");

    let e3 = c3.plan.explain(&f3);
    assert_eq!(e3.passes.len(), 2, "the goto routes a second number");
    assert_eq!(e3.passes[1].number, "+49711123400");
    let text = e3.to_string();
    assert!(
        text.contains("2026-12-24 is a holiday (Heiligabend, calendar rathaus)"),
        "{text}"
    );
    assert!(text.contains("Routing +49711123400 (goto):\n"), "{text}");
    assert_eq!(e3.route, c3.plan.route(&f3));
}

#[test]
fn a_fax_dial_is_routed_as_one_and_explained_so() {
    let files = [SourceFile {
        path: "fax.toml".into(),
        text: "[[rule]]\nname = \"fax line\"\nmatch = \"150\"\n\
               actions = [{ dial = { user = \"150\", fax = true } }, { hangup = 480 }]\n\
               [[rule]]\nname = \"phone\"\nmatch = \"151\"\n\
               actions = [{ dial = { user = \"151\", fax = false } }]\n"
            .into(),
    }];
    let c = compile_ok(&files, &CheckContext::default());
    let at = "2026-12-24T10:00+01:00";
    let fax = c.plan.route(&call("150", None, None, None, at)).unwrap();
    assert_eq!(chain(&fax.actions), "dial user:150 30 fax | hangup 480");
    let phone = c.plan.route(&call("151", None, None, None, at)).unwrap();
    assert_eq!(chain(&phone.actions), "dial user:151 30");
    let text = c
        .plan
        .explain(&call("150", None, None, None, at))
        .to_string();
    assert!(
        text.contains(
            "  1. dial user 150 as a fax call (G.711 passed through unchanged), ring 30 s, on no answer go on\n"
        ),
        "{text}"
    );
}

#[test]
fn explain_without_match_says_404() {
    let c = default_plan();
    let text = c
        .plan
        .explain(&call("999", None, None, None, "2026-12-24T19:00+01:00"))
        .to_string();
    assert!(text.contains("  no rule matches 999\n"), "{text}");
    assert!(
        text.ends_with("Result: no rule matched, the server answers 404 Not Found (407, a password challenge, to callers who proved no identity).\n"),
        "{text}"
    );
}
