//! Broken dialplans -> exact file:line:column messages.

mod common;

use common::*;
use dialplan::{CheckContext, Diagnostic, Severity, SourceFile, compile};

fn fixture(name: &str) -> SourceFile {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    SourceFile {
        path: name.to_string(),
        text,
    }
}

fn inline(text: &str) -> Vec<Diagnostic> {
    let files = [SourceFile {
        path: "t.toml".into(),
        text: text.into(),
    }];
    match compile(&files, &CheckContext::default()) {
        Ok(c) => c.warnings,
        Err(d) => d,
    }
}

/// "file:line:col: severity: message" per diagnostic, help left out.
fn heads(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| d.to_string().lines().next().unwrap_or("").to_string())
        .collect()
}

fn townhall_ctx() -> CheckContext {
    CheckContext {
        users: Some(["mueller".to_string()].into()),
        rooms: Some(["ratssaal".to_string()].into()),
        ..ctx_sounds()
    }
}

#[test]
fn broken_dialplan_reports_every_error_at_its_key_or_value() {
    let diags = match compile(&[fixture("broken.toml")], &townhall_ctx()) {
        Ok(_) => panic!("broken.toml must not compile"),
        Err(d) => d,
    };
    assert_eq!(
        heads(&diags),
        [
            "broken.toml:3:12: error: unknown calendar \"de-bx\"",
            "broken.toml:8:15: error: unknown action `anwser`",
            "broken.toml:12:9: error: pattern \"_8[]XX\" has an empty `[]` and can never match",
            "broken.toml:18:31: error: sound \"welcom\" does not exist",
            "broken.toml:23:30: error: unknown user \"mueler\"",
            "broken.toml:28:27: error: unknown room \"ratsaal\"",
            "broken.toml:33:40: error: \"25:00\" is not a time of day",
            "broken.toml:36:1: error: rule has no `actions`",
            "broken.toml:39:1: error: unknown key `actoins` in a rule",
            "broken.toml:44:27: error: unknown variable `${EXTN:1}`",
            "broken.toml:49:31: error: unknown ring group \"buergerservise\"",
        ]
    );
    assert!(diags.iter().all(|d| d.severity == Severity::Error));
    let help = |line: usize| {
        diags
            .iter()
            .find(|d| d.line == line)
            .and_then(|d| d.help.clone())
            .unwrap_or_default()
    };
    assert!(
        help(3).starts_with("did you mean \"de-bb\"?"),
        "{}",
        help(3)
    );
    assert!(help(8).starts_with("did you mean `answer`?"), "{}", help(8));
    assert_eq!(help(18), "did you mean \"welcome\"?");
    assert_eq!(help(23), "did you mean \"mueller\"?");
    assert!(
        help(39).starts_with("did you mean `actions`?"),
        "{}",
        help(39)
    );
    assert!(
        help(44).starts_with("did you mean ${EXTEN}?"),
        "{}",
        help(44)
    );
}

#[test]
fn goto_loops_are_errors_and_unreachable_rules_are_warnings() {
    let diags = match compile(&[fixture("loops.toml")], &CheckContext::default()) {
        Ok(_) => panic!("loops.toml must not compile"),
        Err(d) => d,
    };
    assert_eq!(
        heads(&diags),
        [
            "loops.toml:5:31: error: goto loop: \"a\" -> \"b\" -> \"a\" repeats forever",
            "loops.toml:15:21: error: goto loop: \"self\" -> \"self\" repeats forever",
            "loops.toml:24:9: warning: unreachable rule \"too late\": rule \"catch-all\" at loops.toml:17 above catches every call it would",
            "loops.toml:30:21: warning: goto \"*99\" matches no rule: the call would get 404 Not Found",
            "loops.toml:30:30: warning: this action never runs: `goto` before it ends the call's path",
        ]
    );
}

#[test]
fn warnings_alone_do_not_reject_the_plan() {
    let text = "[[rule]]\nmatch = \"_X.\"\nactions = [\"hangup\"]\n[[rule]]\nmatch = \"600\"\nactions = [\"echo\"]\n";
    let files = [SourceFile {
        path: "w.toml".into(),
        text: text.into(),
    }];
    let compiled = compile(&files, &CheckContext::default()).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(
        heads(&compiled.warnings),
        [
            "w.toml:5:9: warning: unreachable rule \"600\": rule \"_X.\" at w.toml:1 above catches every call it would"
        ]
    );
}

#[test]
fn conditional_earlier_rule_does_not_shadow() {
    let text = r#"
[[rule]]
match = "_X."
when = { hours = "08:00-16:00" }
actions = ["hangup"]

[[rule]]
match = "600"
actions = ["echo"]
"#;
    assert!(inline(text).is_empty());
}

#[test]
fn syntax_errors_point_at_the_broken_spot() {
    let diags = inline("[[rule]]\nmatch = \"600\nactions = []\n");
    assert_eq!(diags.len(), 1);
    assert_eq!((diags[0].line, diags[0].severity), (2, Severity::Error));
    assert!(diags[0].message.starts_with("TOML syntax"), "{}", diags[0]);
}

#[test]
fn type_and_value_errors_name_the_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[[rule]]\nmatch = 600\nactions = [\"echo\"]\n",
            "t.toml:2:9: error: match must be a string or a list of strings, found an integer",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = [{ wait = 0 }]\n",
            "t.toml:3:21: error: wait must be between 1 and 3600",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = [{ hangup = \"bussy\" }]\n",
            "t.toml:3:23: error: unknown hangup cause \"bussy\"",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nsource = \"10.8.0.0/40\"\nactions = [\"echo\"]\n",
            "t.toml:3:10: error: \"10.8.0.0/40\" is not an IP address or network",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nwhen = { weekdays = \"mon-fry\" }\nactions = [\"echo\"]\n",
            "t.toml:3:21: error: \"mon-fry\" is not a list of weekdays",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = [{ dial = { uri = \"alice@host\" } }]\n",
            "t.toml:3:29: error: \"alice@host\" is not a SIP URI",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = [{ dial = { user = \"a\", group = \"b\" } }]\n",
            "t.toml:3:21: error: `dial` needs exactly one of user, group, uri, trunk",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = [{ dial = { user = \"a\", privacy = true } }]\n",
            "t.toml:3:45: error: `privacy` only goes with `trunk`",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = [{ dial = { trunk = \"t\", number = \"1\", privacy = \"yes\" } }]\n",
            "t.toml:3:60: error: privacy must be true or false, found a string",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = [{ dial = { user = \"a\", fax = \"yes\" } }]\n",
            "t.toml:3:41: error: fax must be true or false, found a string",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = [{ forward = { user = \"a\", fax = true } }]\n",
            "t.toml:3:38: error: unknown key `fax` in `forward`",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = [{ answer = {}, echo = {} }]\n",
            "t.toml:3:12: error: an action is a table with exactly one key, the action's name",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = []\n",
            "t.toml:3:11: error: actions is empty",
        ),
        (
            "[[rule]]\nmatch = \"1\"\npublic = \"yes\"\nactions = [\"echo\"]\n",
            "t.toml:3:10: error: public must be true or false, found a string",
        ),
        (
            "[[rules]]\nmatch = \"1\"\n",
            "t.toml:1:3: error: unknown key `rules` in a dialplan file",
        ),
        (
            "[settings]\ntimezone = \"Europe/Berln\"\n",
            "t.toml:2:12: error: unknown time zone \"Europe/Berln\"",
        ),
        (
            "[settings]\ninclude = [\"holidays.toml\"]\n",
            "t.toml:2:12: error: included file \"holidays.toml\" not found (looked for holidays.toml)",
        ),
        (
            "[[rule]]\nmatch = \"/^8(\\\\d+$/\"\nactions = [\"echo\"]\n",
            "t.toml:2:9: error: invalid regex: unclosed group",
        ),
        (
            "[[rule]]\nmatch = \"1\"\nactions = [{ conference = \"${2}\" }]\n",
            "t.toml:3:27: error: unknown variable `${2}`",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, want) in cases {
        let diags = inline(text);
        let got = heads(&diags).first().cloned().unwrap_or_default();
        if got != *want {
            wrong.push(format!("{text:?}\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn includes_resolve_relative_to_the_including_file_and_detect_loops() {
    let a = SourceFile { path: "plans/a.toml".into(), text: "[settings]\ninclude = [\"sub/b.toml\"]\n[[rule]]\nmatch = \"2\"\nactions = [\"echo\"]\n".into() };
    let b = SourceFile {
        path: "plans/sub/b.toml".into(),
        text: "[[rule]]\nmatch = \"1\"\nactions = [{ goto = \"2\" }]\n".into(),
    };
    let plan = compile_ok(&[a.clone(), b.clone()], &CheckContext::default()).plan;
    // b's rules come first because a includes it.
    let r = plan.route(&call("1", None, None, None, "2026-01-01T00:00Z"));
    assert_eq!(
        r.map(|r| (r.file, r.line, chain(&r.actions))),
        Some(("plans/sub/b.toml".to_string(), 1, "echo".to_string()))
    );
    let b_loop = SourceFile {
        text: "[settings]\ninclude = [\"../a.toml\"]\n".into(),
        ..b
    };
    let diags = compile(&[a, b_loop], &CheckContext::default())
        .err()
        .unwrap_or_default();
    assert_eq!(
        heads(&diags),
        ["plans/sub/b.toml:2:12: error: include loop: \"plans/a.toml\" is already being included"]
    );
}

#[test]
fn a_rule_for_an_emergency_number_is_refused_but_a_catch_all_passes() {
    let text = r#"
[[rule]]
name = "extensions"
match = "_1XX"
actions = ["echo"]

[[rule]]
name = "police to the front desk"
match = "/^110$/"
actions = ["echo"]

[[rule]]
name = "anything else"
match = "_X."
actions = ["hangup"]
"#;
    assert_eq!(
        heads(&inline(text)),
        [
            "t.toml:4:9: error: rule \"extensions\" matches emergency number 110: emergency calls always go out on the emergency trunk, before any rule",
            "t.toml:9:9: error: rule \"police to the front desk\" matches emergency number 110: emergency calls always go out on the emergency trunk, before any rule",
        ]
    );
}

/// The Asterisk habit `8XXXX` (no `_`) is an exact number that no caller dials: a warning
/// with the fix, not silence. Numbers and names that merely contain such letters are left
/// alone.
#[test]
fn an_asterisk_pattern_without_its_underscore_gets_a_hint() {
    let diags = inline(
        "[[rule]]\nmatch = [\"8XXXX\", \"0N.\", \"600\", \"zentrale\", \"_9XX\"]\nactions = [\"echo\"]\n",
    );
    assert_eq!(
        heads(&diags),
        [
            "t.toml:2:10: warning: \"8XXXX\" is an exact number: it matches only a caller who dials \"8XXXX\" itself",
            "t.toml:2:19: warning: \"0N.\" is an exact number: it matches only a caller who dials \"0N.\" itself",
        ]
    );
    assert!(
        diags[0].to_string().contains("write \"_8XXXX\""),
        "{}",
        diags[0]
    );
}
