//! Shared helpers for the dialplan acceptance tests.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::collections::BTreeSet;

use dialplan::{
    Action, CallFacts, CheckContext, Compiled, DialTarget, PickupTarget, SourceFile, compile,
};

/// The dialplans/ directory of the repository.
pub const DIALPLANS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dialplans");

/// Sounds the server ships (sounds/<lang>/<name>.wav).
pub const SOUNDS: &[&str] = &[
    "welcome",
    "goodbye",
    "enter-room",
    "enter-pin",
    "wrong-pin",
    "room-full",
    "room-locked",
    "first-participant",
    "participants-count",
    "wait-moderator",
    "recording-started",
    "recording-stopped",
    "muted",
    "unmuted",
    "after-hours",
];

/// Reads a file below dialplans/, named in diagnostics by its path relative to dialplans/.
pub fn shipped(rel: &str) -> SourceFile {
    let text = std::fs::read_to_string(format!("{DIALPLANS}/{rel}"))
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    SourceFile {
        path: rel.to_string(),
        text,
    }
}

/// A check context that knows the shipped sounds and nothing else.
pub fn ctx_sounds() -> CheckContext {
    CheckContext {
        sounds: Some(SOUNDS.iter().map(|s| s.to_string()).collect()),
        ..CheckContext::default()
    }
}

/// The town-hall users and trunks, for checking the example against a configured server.
pub fn ctx_townhall() -> CheckContext {
    let set = |xs: &[&str]| -> Option<BTreeSet<String>> {
        Some(xs.iter().map(|s| s.to_string()).collect())
    };
    CheckContext {
        users: set(&[
            "mueller",
            "schmidt",
            "yilmaz",
            "zentrale",
            "bauhof-leitung",
            "bauhof-vertretung",
        ]),
        trunks: set(&["telekom"]),
        ..ctx_sounds()
    }
}

/// Compiles or panics with every diagnostic printed.
pub fn compile_ok(files: &[SourceFile], ctx: &CheckContext) -> Compiled {
    match compile(files, ctx) {
        Ok(c) => c,
        Err(diags) => panic!(
            "{}",
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// The default plan.
pub fn default_plan() -> Compiled {
    compile_ok(&[shipped("default.toml")], &ctx_sounds())
}

/// The town-hall example plan.
pub fn townhall_plan() -> Compiled {
    let files: Vec<SourceFile> = ["main.toml", "calendar.toml", "internal.toml"]
        .iter()
        .map(|f| shipped(&format!("examples/townhall/{f}")))
        .collect();
    compile_ok(&files, &ctx_townhall())
}

/// A call; `at` is RFC 3339 with offset, so DST folds are unambiguous.
pub fn call(
    to: &str,
    from: Option<&str>,
    trunk: Option<&str>,
    source: Option<&str>,
    at: &str,
) -> CallFacts {
    CallFacts {
        to: to.to_string(),
        from: from.map(str::to_string),
        trunk: trunk.map(str::to_string),
        source_ip: source.map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))),
        at: at.parse().unwrap_or_else(|e| panic!("{at}: {e}")),
    }
}

/// A compact text form of an action chain for tables: "answer | play welcome | hangup 480".
pub fn chain(actions: &[Action]) -> String {
    actions.iter().map(short).collect::<Vec<_>>().join(" | ")
}

fn target(t: &DialTarget) -> String {
    match t {
        DialTarget::Uri(u) => u.clone(),
        DialTarget::User(u) => format!("user:{u}"),
        DialTarget::Group(g) => format!("group:{g}"),
        DialTarget::Trunk {
            trunk,
            number,
            privacy,
        } => format!(
            "trunk:{trunk}/{number}{}",
            if *privacy { " (withheld)" } else { "" }
        ),
    }
}

fn short(a: &Action) -> String {
    match a {
        Action::Answer => "answer".into(),
        Action::Play { sound } => format!("play {sound}"),
        Action::Echo => "echo".into(),
        Action::Wait { seconds } => format!("wait {seconds}"),
        Action::Hangup { cause } => format!("hangup {cause}"),
        Action::Conference { room: Some(r), .. } => format!("conference {r}"),
        Action::Conference { room: None, .. } => "lobby".into(),
        Action::Dial {
            target: t,
            timeout_s,
            fax,
        } => format!(
            "dial {} {timeout_s}{}",
            target(t),
            if *fax { " fax" } else { "" }
        ),
        Action::Forward { target: t } => format!("forward {}", target(t)),
        Action::Menu {
            prompt, options, ..
        } => {
            let keys: String = options.keys().collect();
            format!("menu {prompt} [{keys}]")
        }
        Action::Goto { number } => format!("goto {number}"),
        Action::SetCallerId { number, .. } => format!("set {}", number.clone().unwrap_or_default()),
        Action::Record { path } => format!("record {}", path.clone().unwrap_or_default()),
        Action::WebrtcBridge { room } => format!("webrtc {room}"),
        Action::CallForward { when, to, .. } => format!(
            "call_forward {} {}",
            when.as_str(),
            to.clone().unwrap_or_else(|| "off".into())
        ),
        Action::Dnd { switch } => format!("dnd {switch:?}"),
        Action::GroupLogin { group, mode } => format!(
            "group_login {} {}",
            mode.name(),
            group.clone().unwrap_or_default()
        ),
        Action::Pickup {
            target: PickupTarget::Extension(e),
        } => format!("pickup {e}"),
        Action::Pickup {
            target: PickupTarget::Group,
        } => "pickup group".into(),
        Action::Voicemail { mailbox } => format!("voicemail {mailbox}"),
        Action::VoicemailMain => "voicemail_main".to_string(),
    }
}
