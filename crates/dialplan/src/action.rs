//! Actions a rule runs, how they are written in TOML, and `${...}` substitution.

use std::collections::BTreeMap;
use std::fmt;

use toml::de::DeValue;

use crate::diag::{Reporter, did_you_mean};
use crate::walk::{self, SpannedStr, Val};

/// One step of a call's handling, as the server runs it. Strings have captures substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer the call (200 OK).
    Answer,
    /// Play a prompt from `sounds/<lang>/<sound>.wav`.
    Play {
        /// Sound name without language and extension.
        sound: String,
    },
    /// Echo test: the caller hears themselves until they hang up.
    Echo,
    /// Pause.
    Wait {
        /// How long.
        seconds: u32,
    },
    /// End the call: BYE when answered, else this final response code.
    Hangup {
        /// SIP status code for an unanswered call (default 480); goes into the Reason header of a BYE.
        cause: u16,
    },
    /// Join a conference room.
    Conference {
        /// The room; `None` = conference lobby, ask for the room number by DTMF.
        room: Option<String>,
        /// Ask for the room's PIN (when the room has one).
        pin_prompt: bool,
    },
    /// Ring a target and wait; when nobody answers the chain goes on with the next action.
    Dial {
        /// Who to ring.
        target: DialTarget,
        /// Ring for this long.
        timeout_s: u32,
        /// A fax call: the caller's G.711 is passed through unchanged (no jitter buffer,
        /// concealment or transcoding); a callee that cannot take it refuses the call.
        fax: bool,
    },
    /// Send the call elsewhere right away (302 before answer, transfer after).
    Forward {
        /// Where to.
        target: DialTarget,
    },
    /// IVR menu: play a prompt, read one digit, run that digit's branch.
    Menu {
        /// Prompt played before each try.
        prompt: String,
        /// Branch per digit (0-9, *, #).
        options: BTreeMap<char, Vec<Action>>,
        /// Seconds to wait for a digit.
        timeout_s: u32,
        /// Tries before giving up and going on with the next action.
        retries: u32,
        /// Prompt played after an invalid digit or timeout.
        invalid: Option<String>,
    },
    /// Route the call again as if `number` had been dialled (only inside menu branches; top-level gotos are followed by `route`).
    Goto {
        /// Number to route to.
        number: String,
    },
    /// Change the caller ID shown to the called party.
    SetCallerId {
        /// New number, if changed.
        number: Option<String>,
        /// New display name, if changed.
        name: Option<String>,
    },
    /// Start recording the call.
    Record {
        /// File name relative to the recordings directory; `None` = the server picks one.
        path: Option<String>,
    },
    /// Bridge the call into a WebRTC room (reserved for the WebRTC issue).
    WebrtcBridge {
        /// Room name.
        room: String,
    },
    /// Take a message for a user's mailbox: greeting, tone, the caller's words recorded.
    Voicemail {
        /// The mailbox: the user's extension.
        mailbox: String,
    },
    /// Let the calling user listen to their own mailbox (after their PIN); reached through a
    /// user's call forwarding, take a message for that user's mailbox instead.
    VoicemailMain,
    /// The calling user sets or clears one of their own call forwardings from the phone
    /// (`*21*102#`, `#21#`); a prompt confirms it.
    CallForward {
        /// Which forwarding.
        when: ForwardWhen,
        /// The number calls go to (expanded from the rule); `None` clears the forwarding.
        to: Option<String>,
        /// Ring time before a no-answer forwarding (expanded; digits), if given.
        seconds: Option<String>,
    },
    /// The calling user switches do not disturb on, off or over (`*76`); a prompt confirms it.
    Dnd {
        /// What to do with it.
        switch: Switch,
    },
    /// The calling user logs in to or out of ring groups (a feature code like `*45`),
    /// hears a confirming prompt and is hung up. Only identified users may.
    GroupLogin {
        /// The group; `None`: every group the caller is a member of.
        group: Option<String>,
        /// In, out, or the other way round.
        mode: GroupLoginMode,
    },
    /// Take a call that rings elsewhere: the caller is connected with that call's caller
    /// and the phones that rang stop. Nothing ringing: a prompt, then 480 (like `forward`,
    /// it ends the call's path).
    Pickup {
        /// Whose ringing call.
        target: PickupTarget,
    },
}

/// When a call forwarding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardWhen {
    /// Every call.
    Always,
    /// When busy or in do not disturb.
    Busy,
    /// When unanswered.
    NoAnswer,
}

impl ForwardWhen {
    /// The word in a dialplan and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardWhen::Always => "always",
            ForwardWhen::Busy => "busy",
            ForwardWhen::NoAnswer => "no-answer",
        }
    }
}

/// On, off, or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
    /// On when off, off when on.
    Toggle,
}

/// What `group_login` does with the caller's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupLoginMode {
    /// Logged out of any of the groups: log in to all of them; else log out of all.
    Toggle,
    /// Log in.
    In,
    /// Log out.
    Out,
}

impl GroupLoginMode {
    /// The word written in the dialplan.
    pub fn name(self) -> &'static str {
        match self {
            GroupLoginMode::Toggle => "toggle",
            GroupLoginMode::In => "in",
            GroupLoginMode::Out => "out",
        }
    }
}

/// Which ringing call a `pickup` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickupTarget {
    /// The call ringing at this extension (directed pickup, `**101`).
    Extension(String),
    /// A call ringing at any member of a `[pickup-groups]` group the caller belongs to
    /// (group pickup, `*8`).
    Group,
}

/// Who a `dial` or `forward` reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A plain SIP URI, like `sip:alice@10.0.0.5:5060`.
    Uri(String),
    /// A registered user.
    User(String),
    /// A ring group from `[groups.NAME]`.
    Group(String),
    /// A number dialled out through a trunk.
    Trunk {
        /// Trunk name.
        trunk: String,
        /// Number to dial on it.
        number: String,
        /// Withhold the caller's number from the called party (RFC 3323 `Privacy: id`,
        /// "CLIR"): the carrier still learns it through P-Asserted-Identity.
        privacy: bool,
    },
}

/// Default ring time of `dial` in seconds.
pub(crate) const DEFAULT_DIAL_TIMEOUT_S: u32 = 30;
/// What the parser leaves as a group `dial`'s ring time when the `dial` gives none: the
/// compiler puts the group's own `timeout` there (0 is outside what `timeout` accepts).
pub(crate) const GROUP_OWN_TIMEOUT: u32 = 0;
/// Default cause of `hangup` for an unanswered call (RFC 3261 §21.4.18 480 Temporarily Unavailable).
pub(crate) const DEFAULT_HANGUP_CAUSE: u16 = 480;

/// The kinds of names an action can refer to, checked against `CheckContext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefKind {
    Sound,
    User,
    Room,
    Trunk,
    Group,
}

impl RefKind {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            RefKind::Sound => "sound",
            RefKind::User => "user",
            RefKind::Room => "room",
            RefKind::Trunk => "trunk",
            RefKind::Group => "ring group",
        }
    }
}

/// A `goto` found while parsing, for loop checks.
#[derive(Debug, Clone)]
pub(crate) struct GotoRef {
    pub(crate) number: SpannedStr,
    /// Inside a menu branch: only taken when the caller presses the digit.
    pub(crate) in_menu: bool,
}

/// Parses action lists and records names and gotos for later checks.
pub(crate) struct ActionParser {
    /// Regex groups the rule's pattern has, for `${n}`.
    pub(crate) groups: usize,
    pub(crate) refs: Vec<(RefKind, SpannedStr)>,
    pub(crate) gotos: Vec<GotoRef>,
    /// Every action named, with where: checked against what the server can run.
    pub(crate) actions_used: Vec<(String, std::ops::Range<usize>)>,
    menu_depth: usize,
}

/// Action names, for "did you mean".
pub(crate) const ACTION_NAMES: &[&str] = &[
    "answer",
    "play",
    "echo",
    "wait",
    "hangup",
    "conference",
    "lobby",
    "dial",
    "forward",
    "menu",
    "goto",
    "set",
    "record",
    "webrtc_bridge",
    "call_forward",
    "dnd",
    "group_login",
    "pickup",
    "voicemail",
    "voicemail_main",
];

/// Menus nested deeper than this are rejected: nobody can navigate them by phone.
const MAX_MENU_DEPTH: usize = 4;

impl ActionParser {
    /// A parser for a rule whose pattern has `groups` regex groups.
    pub(crate) fn new(groups: usize) -> Self {
        ActionParser {
            groups,
            refs: Vec::new(),
            gotos: Vec::new(),
            actions_used: Vec::new(),
            menu_depth: 0,
        }
    }

    /// Parses a list of actions (or a single action) and warns about actions that can never run.
    pub(crate) fn list(
        &mut self,
        r: &mut Reporter<'_>,
        v: &Val<'_>,
        what: &str,
    ) -> Option<Vec<Action>> {
        let items: Vec<&Val<'_>> = match v.get_ref() {
            DeValue::Array(a) => a.iter().collect(),
            DeValue::Table(_) | DeValue::String(_) => vec![v],
            _ => {
                walk::wrong_type(
                    r,
                    v,
                    what,
                    "a list of actions",
                    "[ \"answer\", { play = \"welcome\" }, \"hangup\" ]",
                );
                return None;
            }
        };
        if items.is_empty() {
            r.error(
                v.span(),
                format!("{what} is empty"),
                Some("add at least one action, like [ { hangup = 486 } ]".into()),
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        let mut terminal: Option<&str> = None;
        for item in items {
            if let Some(t) = terminal.take() {
                r.warning(
                    item.span(),
                    format!("this action never runs: `{t}` before it ends the call's path"),
                    Some(format!("move it before `{t}` or remove it")),
                );
            }
            match self.one(r, item) {
                Some(a) => {
                    terminal = match &a {
                        Action::Hangup { .. } => Some("hangup"),
                        Action::Goto { .. } => Some("goto"),
                        Action::Forward { .. } => Some("forward"),
                        Action::GroupLogin { .. } => Some("group_login"),
                        // The call ends after the message (or the listening).
                        Action::Voicemail { .. } => Some("voicemail"),
                        Action::VoicemailMain => Some("voicemail_main"),
                        _ => None,
                    };
                    out.push(a);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn one(&mut self, r: &mut Reporter<'_>, v: &Val<'_>) -> Option<Action> {
        let empty = toml::de::DeTable::new();
        let (name, name_span, arg): (String, _, Option<&Val<'_>>) = match v.get_ref() {
            DeValue::String(s) => (s.to_string(), v.span(), None),
            DeValue::Table(t) => {
                let mut it = t.iter();
                match (it.next(), it.next()) {
                    (Some((k, a)), None) => (k.get_ref().to_string(), k.span(), Some(a)),
                    _ => {
                        r.error(
                            v.span(),
                            "an action is a table with exactly one key, the action's name".into(),
                            Some("write one action per table: [ { answer = {} }, { play = \"welcome\" } ]".into()),
                        );
                        return None;
                    }
                }
            }
            _ => {
                walk::wrong_type(
                    r,
                    v,
                    "an action",
                    "a table or an action name",
                    "{ play = \"welcome\" }",
                );
                return None;
            }
        };
        if ACTION_NAMES.contains(&name.as_str()) {
            self.actions_used.push((name.clone(), name_span.clone()));
        }
        // A bare name ("answer") is the same as the action with no arguments.
        let arg_table = match arg.map(|a| a.get_ref()) {
            Some(DeValue::Table(t)) => Some(t),
            None => Some(&empty),
            Some(_) => None,
        };
        let arg_span = arg.map_or(name_span.clone(), |a| a.span());
        macro_rules! keys {
            ($t:expr, $allowed:expr, $ctx:expr) => {{
                let mut ok = true;
                for (k, _) in $t.iter() {
                    if !$allowed.contains(&k.get_ref().as_ref()) {
                        walk::unknown_key(r, k, $allowed, $ctx);
                        ok = false;
                    }
                }
                if !ok {
                    return None;
                }
            }};
        }
        let action = match name.as_str() {
            "answer" | "echo" => {
                let Some(t) = arg_table else {
                    return wrong_arg(r, arg, &name, &format!("{{ {name} = {{}} }}"));
                };
                keys!(t, &[] as &[&str], &format!("`{name}`"));
                if name == "answer" {
                    Action::Answer
                } else {
                    Action::Echo
                }
            }
            "play" => {
                let sound = match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_str() => walk::string(r, a, "play", "")?,
                    (_, Some(t)) => {
                        keys!(t, &["sound"], "`play`");
                        self.required_str(
                            r,
                            t,
                            "sound",
                            &arg_span,
                            "play",
                            "{ play = \"welcome\" }",
                        )?
                    }
                    _ => return wrong_arg(r, arg, "play", "{ play = \"welcome\" }"),
                };
                self.sound(r, &sound)?;
                Action::Play { sound: sound.text }
            }
            "wait" => {
                let seconds = match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_integer() => {
                        walk::integer(r, a, "wait", 1..=3600)?
                    }
                    (Some(_), Some(t)) if t.get("seconds").is_some() => {
                        keys!(t, &["seconds"], "`wait`");
                        walk::integer(r, t.get("seconds")?, "seconds", 1..=3600)?
                    }
                    _ => return wrong_arg(r, arg, "wait", "{ wait = 2 }"),
                };
                Action::Wait {
                    seconds: u32::try_from(seconds).ok()?,
                }
            }
            "hangup" => {
                let cause_val = match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_integer() || a.get_ref().is_str() => Some(a),
                    (_, Some(t)) => {
                        keys!(t, &["cause"], "`hangup`");
                        t.get("cause")
                    }
                    _ => return wrong_arg(r, arg, "hangup", "{ hangup = 486 }"),
                };
                let cause = match cause_val {
                    None => DEFAULT_HANGUP_CAUSE,
                    Some(c) => hangup_cause(r, c)?,
                };
                Action::Hangup { cause }
            }
            "conference" | "lobby" => {
                let mut room = None;
                let mut pin_prompt = true;
                match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_str() && name == "conference" => {
                        room = Some(walk::string(r, a, "conference", "")?);
                    }
                    (_, Some(t)) => {
                        let allowed: &[&str] = if name == "lobby" {
                            &["pin"]
                        } else {
                            &["room", "pin"]
                        };
                        keys!(t, allowed, &format!("`{name}`"));
                        if let Some(rv) = t.get("room") {
                            room = Some(walk::string(r, rv, "room", "room = \"${EXTEN:1}\"")?);
                        }
                        if let Some(p) = t.get("pin") {
                            match p.get_ref() {
                                DeValue::Boolean(b) => pin_prompt = *b,
                                _ => {
                                    walk::wrong_type(r, p, "pin", "true or false", "pin = false");
                                    return None;
                                }
                            }
                        }
                    }
                    _ => {
                        return wrong_arg(
                            r,
                            arg,
                            &name,
                            "{ conference = { room = \"${EXTEN:1}\" } }",
                        );
                    }
                }
                if let Some(room) = &room {
                    self.template(r, room)?;
                    self.reference(RefKind::Room, room);
                }
                Action::Conference {
                    room: room.map(|s| s.text),
                    pin_prompt,
                }
            }
            "dial" | "forward" => {
                let is_dial = name == "dial";
                let mut timeout_s = DEFAULT_DIAL_TIMEOUT_S;
                let mut fax = false;
                let target = match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_str() => {
                        let s = walk::string(r, a, &name, "")?;
                        self.template(r, &s)?;
                        if is_uri(&s.text) {
                            DialTarget::Uri(s.text)
                        } else {
                            self.reference(RefKind::User, &s);
                            DialTarget::User(s.text)
                        }
                    }
                    (_, Some(t)) => {
                        let allowed: &[&str] = if is_dial {
                            &[
                                "user", "group", "uri", "trunk", "number", "privacy", "timeout",
                                "fax",
                            ]
                        } else {
                            &["user", "group", "uri", "trunk", "number", "privacy"]
                        };
                        keys!(t, allowed, &format!("`{name}`"));
                        if let Some(tv) = t.get("timeout") {
                            timeout_s =
                                u32::try_from(walk::integer(r, tv, "timeout", 1..=600)?).ok()?;
                        }
                        if let Some(fv) = t.get("fax") {
                            fax = walk::boolean(r, fv, "fax")?;
                        }
                        let target = self.target(r, t, &arg_span, &name)?;
                        if matches!(target, DialTarget::Group(_)) && t.get("timeout").is_none() {
                            timeout_s = GROUP_OWN_TIMEOUT;
                        }
                        target
                    }
                    _ => {
                        return wrong_arg(
                            r,
                            arg,
                            &name,
                            "{ dial = { user = \"anna\", timeout = 20 } }",
                        );
                    }
                };
                if is_dial {
                    Action::Dial {
                        target,
                        timeout_s,
                        fax,
                    }
                } else {
                    Action::Forward { target }
                }
            }
            "menu" => {
                let Some(t) = arg_table.filter(|_| arg.is_some()) else {
                    return wrong_arg(
                        r,
                        arg,
                        "menu",
                        "{ menu = { prompt = \"welcome\", options = { \"1\" = [ { goto = \"8001\" } ] } } }",
                    );
                };
                keys!(
                    t,
                    &["prompt", "options", "timeout", "retries", "invalid"],
                    "`menu`"
                );
                self.menu(r, t, &arg_span)?
            }
            "goto" => {
                let number = match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_str() => walk::string(r, a, "goto", "")?,
                    (Some(_), Some(t)) => {
                        keys!(t, &["number"], "`goto`");
                        self.required_str(r, t, "number", &arg_span, "goto", "{ goto = \"600\" }")?
                    }
                    _ => return wrong_arg(r, arg, "goto", "{ goto = \"600\" }"),
                };
                self.template(r, &number)?;
                self.gotos.push(GotoRef {
                    number: number.clone(),
                    in_menu: self.menu_depth > 0,
                });
                Action::Goto {
                    number: number.text,
                }
            }
            "set" => {
                let Some(t) = arg_table.filter(|_| arg.is_some()) else {
                    return wrong_arg(
                        r,
                        arg,
                        "set",
                        "{ set = { caller_id = \"+497111234\", caller_name = \"Rathaus\" } }",
                    );
                };
                keys!(t, &["caller_id", "caller_name"], "`set`");
                let mut get = |key: &str, this: &mut Self| -> Result<Option<String>, ()> {
                    match t.get(key) {
                        None => Ok(None),
                        Some(v) => {
                            let s = walk::string(r, v, key, "\"Rathaus\"").ok_or(())?;
                            this.template(r, &s).ok_or(())?;
                            Ok(Some(s.text))
                        }
                    }
                };
                let number = get("caller_id", self).ok()?;
                let name_ = get("caller_name", self).ok()?;
                if number.is_none() && name_.is_none() {
                    r.error(
                        arg_span,
                        "`set` changes nothing".into(),
                        Some("give caller_id, caller_name or both".into()),
                    );
                    return None;
                }
                Action::SetCallerId {
                    number,
                    name: name_,
                }
            }
            "record" => {
                let path = match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_str() => Some(walk::string(r, a, "record", "")?),
                    (_, Some(t)) => {
                        keys!(t, &["path"], "`record`");
                        match t.get("path") {
                            Some(p) => Some(walk::string(
                                r,
                                p,
                                "path",
                                "path = \"buergerservice-${FROM}.wav\"",
                            )?),
                            None => None,
                        }
                    }
                    _ => return wrong_arg(r, arg, "record", "{ record = {} }"),
                };
                if let Some(p) = &path {
                    self.template(r, p)?;
                    if p.text.contains("..") || p.text.starts_with('/') {
                        r.error(
                            p.span.clone(),
                            "recording path must stay inside the recordings directory".into(),
                            Some("use a plain file name without `/` at the start or `..`".into()),
                        );
                        return None;
                    }
                }
                Action::Record {
                    path: path.map(|p| p.text),
                }
            }
            "group_login" => {
                let example = "{ group_login = \"toggle\" } or { group_login = { mode = \"out\", group = \"buergerservice\" } }";
                let (mode_val, group_val) = match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_str() => (Some(a), None),
                    (_, Some(t)) => {
                        keys!(t, &["mode", "group"], "`group_login`");
                        (t.get("mode"), t.get("group"))
                    }
                    _ => return wrong_arg(r, arg, "group_login", example),
                };
                let mode = match mode_val {
                    None => GroupLoginMode::Toggle,
                    Some(v) => {
                        let m = walk::string(r, v, "mode", "\"toggle\"")?;
                        match m.text.as_str() {
                            "toggle" => GroupLoginMode::Toggle,
                            "in" => GroupLoginMode::In,
                            "out" => GroupLoginMode::Out,
                            other => {
                                r.error(
                                    m.span,
                                    format!("unknown group_login mode \"{other}\""),
                                    Some("use \"toggle\", \"in\" or \"out\"".into()),
                                );
                                return None;
                            }
                        }
                    }
                };
                let group = match group_val {
                    None => None,
                    Some(v) => {
                        let g = walk::string(r, v, "group", "\"buergerservice\"")?;
                        self.reference(RefKind::Group, &g);
                        Some(g.text)
                    }
                };
                Action::GroupLogin { group, mode }
            }
            "webrtc_bridge" => {
                let room = match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_str() => {
                        walk::string(r, a, "webrtc_bridge", "")?
                    }
                    (Some(_), Some(t)) => {
                        keys!(t, &["room"], "`webrtc_bridge`");
                        self.required_str(
                            r,
                            t,
                            "room",
                            &arg_span,
                            "webrtc_bridge",
                            "{ webrtc_bridge = { room = \"ratssaal\" } }",
                        )?
                    }
                    _ => {
                        return wrong_arg(
                            r,
                            arg,
                            "webrtc_bridge",
                            "{ webrtc_bridge = { room = \"ratssaal\" } }",
                        );
                    }
                };
                self.template(r, &room)?;
                self.reference(RefKind::Room, &room);
                Action::WebrtcBridge { room: room.text }
            }
            "call_forward" => {
                const EXAMPLE: &str = "{ call_forward = { when = \"always\", to = \"${1}\" } } or { call_forward = { when = \"always\", off = true } }";
                let Some(t) = arg_table.filter(|_| arg.is_some()) else {
                    return wrong_arg(r, arg, "call_forward", EXAMPLE);
                };
                keys!(t, &["when", "to", "seconds", "off"], "`call_forward`");
                let when_s = self.required_str(r, t, "when", &arg_span, "call_forward", EXAMPLE)?;
                let when = match when_s.text.as_str() {
                    "always" => ForwardWhen::Always,
                    "busy" => ForwardWhen::Busy,
                    "no-answer" => ForwardWhen::NoAnswer,
                    _ => {
                        r.error(
                            when_s.span.clone(),
                            format!("unknown forwarding `{}`", when_s.text),
                            Some("when = \"always\", \"busy\" or \"no-answer\"".into()),
                        );
                        return None;
                    }
                };
                let off = match t.get("off") {
                    Some(v) => walk::boolean(r, v, "off")?,
                    None => false,
                };
                let mut templated = |key: &str, this: &mut Self| -> Result<Option<String>, ()> {
                    match t.get(key) {
                        None => Ok(None),
                        Some(v) => {
                            let s = walk::string(r, v, key, "\"${1}\"").ok_or(())?;
                            this.template(r, &s).ok_or(())?;
                            Ok(Some(s.text))
                        }
                    }
                };
                let to = templated("to", self).ok()?;
                let seconds = templated("seconds", self).ok()?;
                match (&to, off) {
                    (None, false) | (Some(_), true) => {
                        r.error(
                            arg_span,
                            "`call_forward` needs either `to` (set it) or `off = true` (clear it)"
                                .into(),
                            Some(format!("for example: {EXAMPLE}")),
                        );
                        return None;
                    }
                    _ => {}
                }
                if seconds.is_some() && when != ForwardWhen::NoAnswer {
                    r.error(
                        arg_span,
                        "`seconds` is the ring time of a no-answer forwarding".into(),
                        Some("use it with when = \"no-answer\"".into()),
                    );
                    return None;
                }
                Action::CallForward { when, to, seconds }
            }
            "dnd" => {
                let switch = match arg {
                    Some(a) if a.get_ref().is_str() => {
                        let s = walk::string(r, a, "dnd", "{ dnd = \"toggle\" }")?;
                        match s.text.as_str() {
                            "on" => Switch::On,
                            "off" => Switch::Off,
                            "toggle" => Switch::Toggle,
                            _ => {
                                r.error(
                                    s.span.clone(),
                                    format!(
                                        "`dnd` is \"on\", \"off\" or \"toggle\", not {:?}",
                                        s.text
                                    ),
                                    Some("{ dnd = \"toggle\" }".into()),
                                );
                                return None;
                            }
                        }
                    }
                    _ => return wrong_arg(r, arg, "dnd", "{ dnd = \"toggle\" }"),
                };
                Action::Dnd { switch }
            }
            "pickup" => {
                const EXAMPLE: &str = "{ pickup = \"${1}\" } or { pickup = \"group\" }";
                let who = match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_str() => walk::string(r, a, "pickup", EXAMPLE)?,
                    (Some(_), Some(t)) => {
                        keys!(t, &["extension"], "`pickup`");
                        self.required_str(r, t, "extension", &arg_span, "pickup", EXAMPLE)?
                    }
                    _ => return wrong_arg(r, arg, "pickup", EXAMPLE),
                };
                if who.text == "group" {
                    Action::Pickup {
                        target: PickupTarget::Group,
                    }
                } else {
                    self.template(r, &who)?;
                    // A fixed extension must be a user; `${1}` is whatever was keyed.
                    if !who.text.contains("${") {
                        self.reference(RefKind::User, &who);
                    }
                    Action::Pickup {
                        target: PickupTarget::Extension(who.text),
                    }
                }
            }
            "voicemail" => {
                let example = "{ voicemail = \"${EXTEN}\" }";
                let mailbox = match (arg, arg_table) {
                    (Some(a), _) if a.get_ref().is_str() => walk::string(r, a, "voicemail", "")?,
                    (Some(_), Some(t)) => {
                        keys!(t, &["mailbox"], "`voicemail`");
                        self.required_str(r, t, "mailbox", &arg_span, "voicemail", example)?
                    }
                    _ => return wrong_arg(r, arg, "voicemail", example),
                };
                self.template(r, &mailbox)?;
                self.reference(RefKind::User, &mailbox);
                Action::Voicemail {
                    mailbox: mailbox.text,
                }
            }
            "voicemail_main" => {
                let Some(t) = arg_table else {
                    return wrong_arg(r, arg, "voicemail_main", "{ voicemail_main = {} }");
                };
                keys!(t, &[] as &[&str], "`voicemail_main`");
                Action::VoicemailMain
            }
            other => {
                let help = match did_you_mean(other, ACTION_NAMES.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? Actions: {}", ACTION_NAMES.join(", ")),
                    None => format!("actions: {}", ACTION_NAMES.join(", ")),
                };
                r.error(name_span, format!("unknown action `{other}`"), Some(help));
                return None;
            }
        };
        Some(action)
    }

    fn required_str(
        &mut self,
        r: &mut Reporter<'_>,
        t: &toml::de::DeTable<'_>,
        key: &str,
        span: &std::ops::Range<usize>,
        action: &str,
        example: &str,
    ) -> Option<SpannedStr> {
        match t.get(key) {
            Some(v) => walk::string(r, v, key, example),
            None => {
                r.error(
                    span.clone(),
                    format!("`{action}` needs `{key}`"),
                    Some(format!("for example: {example}")),
                );
                None
            }
        }
    }

    fn sound(&mut self, r: &mut Reporter<'_>, s: &SpannedStr) -> Option<()> {
        self.template(r, s)?;
        if s.text.contains('/') || s.text.contains('.') {
            r.error(
                s.span.clone(),
                format!("sound \"{}\" must be a plain name", s.text),
                Some("write the name without language folder or .wav, like \"welcome\"".into()),
            );
            return None;
        }
        self.reference(RefKind::Sound, s);
        Some(())
    }

    fn reference(&mut self, kind: RefKind, s: &SpannedStr) {
        if !s.text.contains("${") {
            self.refs.push((kind, s.clone()));
        }
    }

    fn target(
        &mut self,
        r: &mut Reporter<'_>,
        t: &toml::de::DeTable<'_>,
        span: &std::ops::Range<usize>,
        action: &str,
    ) -> Option<DialTarget> {
        let get = |r: &mut Reporter<'_>, key: &str| -> Option<Option<SpannedStr>> {
            match t.get(key) {
                None => Some(None),
                Some(v) => walk::string(r, v, key, "\"anna\"").map(Some),
            }
        };
        let user = get(r, "user")?;
        let group = get(r, "group")?;
        let uri = get(r, "uri")?;
        let trunk = get(r, "trunk")?;
        let number = get(r, "number")?;
        let privacy = match t.get("privacy") {
            None => None,
            Some(v) => Some((walk::boolean(r, v, "privacy")?, v.span())),
        };
        let given = [&user, &group, &uri, &trunk]
            .iter()
            .filter(|x| x.is_some())
            .count();
        if given != 1 {
            r.error(
                span.clone(),
                format!("`{action}` needs exactly one of user, group, uri, trunk"),
                Some(format!(
                    "for example: {{ {action} = {{ group = \"buergerservice\" }} }}"
                )),
            );
            return None;
        }
        for s in [&user, &group, &uri, &trunk, &number].into_iter().flatten() {
            self.template(r, s)?;
        }
        if let Some(n) = &number
            && trunk.is_none()
        {
            r.error(
                n.span.clone(),
                "`number` only goes with `trunk`".into(),
                Some("remove `number`, or dial out with trunk = \"...\"".into()),
            );
            return None;
        }
        if let Some((_, span)) = &privacy
            && trunk.is_none()
        {
            r.error(
                span.clone(),
                "`privacy` only goes with `trunk`".into(),
                Some("withholding the number is for calls out: { trunk = \"...\", number = \"...\", privacy = true }".into()),
            );
            return None;
        }
        if let Some(u) = user {
            self.reference(RefKind::User, &u);
            return Some(DialTarget::User(u.text));
        }
        if let Some(g) = group {
            self.reference(RefKind::Group, &g);
            return Some(DialTarget::Group(g.text));
        }
        if let Some(u) = uri {
            if !is_uri(&u.text) {
                r.error(
                    u.span,
                    format!("\"{}\" is not a SIP URI", u.text),
                    Some("write it as \"sip:alice@10.0.0.5:5060\"".into()),
                );
                return None;
            }
            return Some(DialTarget::Uri(u.text));
        }
        let trunk = trunk?;
        let Some(number) = number else {
            r.error(
                span.clone(),
                "dialling out through a trunk needs `number`".into(),
                Some("for example: { trunk = \"telekom\", number = \"${EXTEN:1}\" }".into()),
            );
            return None;
        };
        self.reference(RefKind::Trunk, &trunk);
        Some(DialTarget::Trunk {
            trunk: trunk.text,
            number: number.text,
            privacy: privacy.is_some_and(|(on, _)| on),
        })
    }

    fn menu(
        &mut self,
        r: &mut Reporter<'_>,
        t: &toml::de::DeTable<'_>,
        span: &std::ops::Range<usize>,
    ) -> Option<Action> {
        let prompt = self.required_str(r, t, "prompt", span, "menu", "prompt = \"welcome\"")?;
        self.sound(r, &prompt)?;
        let timeout_s = match t.get("timeout") {
            Some(v) => u32::try_from(walk::integer(r, v, "timeout", 1..=60)?).ok()?,
            None => 5,
        };
        let retries = match t.get("retries") {
            Some(v) => u32::try_from(walk::integer(r, v, "retries", 1..=10)?).ok()?,
            None => 3,
        };
        let invalid = match t.get("invalid") {
            Some(v) => {
                let s = walk::string(r, v, "invalid", "invalid = \"wrong-pin\"")?;
                self.sound(r, &s)?;
                Some(s.text)
            }
            None => None,
        };
        let Some(ov) = t.get("options") else {
            r.error(
                span.clone(),
                "`menu` needs `options`".into(),
                Some("for example: options = { \"1\" = [ { goto = \"8001\" } ] }".into()),
            );
            return None;
        };
        let opts = walk::table(
            r,
            ov,
            "options",
            "options = { \"1\" = [ { goto = \"8001\" } ] }",
        )?;
        if self.menu_depth >= MAX_MENU_DEPTH {
            r.error(
                span.clone(),
                format!("menus nested deeper than {MAX_MENU_DEPTH} levels"),
                Some("use `goto` to a number with its own menu".into()),
            );
            return None;
        }
        self.menu_depth += 1;
        let mut options = BTreeMap::new();
        let mut ok = true;
        for (k, v) in opts.iter() {
            let key: &str = k.get_ref();
            let mut chars = key.chars();
            let digit = match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => c,
                _ => {
                    r.error(
                        k.span(),
                        format!("menu option \"{key}\" is not a single key of the phone"),
                        Some("use \"0\"-\"9\", \"*\" or \"#\"".into()),
                    );
                    ok = false;
                    continue;
                }
            };
            match self.list(r, v, &format!("menu option \"{key}\"")) {
                Some(actions) => {
                    options.insert(digit, actions);
                }
                None => ok = false,
            }
        }
        self.menu_depth -= 1;
        if options.is_empty() && ok {
            r.error(
                ov.span(),
                "menu has no options".into(),
                Some("add at least one, like \"1\" = [ { goto = \"8001\" } ]".into()),
            );
            return None;
        }
        ok.then_some(Action::Menu {
            prompt: prompt.text,
            options,
            timeout_s,
            retries,
            invalid,
        })
    }

    /// Checks the `${...}` references in a string.
    fn template(&self, r: &mut Reporter<'_>, s: &SpannedStr) -> Option<()> {
        match check_template(&s.text, self.groups) {
            Ok(()) => Some(()),
            Err((msg, help)) => {
                r.error(s.span.clone(), msg, Some(help));
                None
            }
        }
    }
}

fn wrong_arg<T>(
    r: &mut Reporter<'_>,
    arg: Option<&Val<'_>>,
    name: &str,
    example: &str,
) -> Option<T> {
    if let Some(a) = arg {
        r.error(
            a.span(),
            format!("`{name}` does not take {}", walk::type_name(a.get_ref())),
            Some(format!("for example: {example}")),
        );
    }
    None
}

fn is_uri(s: &str) -> bool {
    s.strip_prefix("sip:")
        .or_else(|| s.strip_prefix("sips:"))
        .is_some_and(|rest| !rest.is_empty())
}

fn hangup_cause(r: &mut Reporter<'_>, v: &Val<'_>) -> Option<u16> {
    const NAMES: &[(&str, u16)] = &[
        ("busy", 486),
        ("unavailable", 480),
        ("declined", 603),
        ("not-found", 404),
        ("forbidden", 403),
        ("congestion", 503),
    ];
    match v.get_ref() {
        DeValue::String(s) => match NAMES.iter().find(|(n, _)| *n == s.as_ref()) {
            Some((_, c)) => Some(*c),
            None => {
                let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
                r.error(
                    v.span(),
                    format!("unknown hangup cause \"{s}\""),
                    Some(format!(
                        "use a SIP code 400-699 or one of {}",
                        names.join(", ")
                    )),
                );
                None
            }
        },
        _ => u16::try_from(walk::integer(r, v, "hangup cause", 400..=699)?).ok(),
    }
}

/// The variables a template may use.
const VARIABLES: &[&str] = &["EXTEN", "FROM", "TRUNK"];

/// Validates `${NAME}`, `${NAME:offset}`, `${NAME:offset:length}` (Asterisk substring semantics).
pub(crate) fn check_template(s: &str, groups: usize) -> Result<(), (String, String)> {
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err((
                format!("\"{s}\" has `${{` without `}}`"),
                "write ${EXTEN} or ${EXTEN:1}".into(),
            ));
        };
        let inner = &after[..end];
        let mut parts = inner.split(':');
        let name = parts.next().unwrap_or("");
        let known =
            VARIABLES.contains(&name) || name.parse::<usize>().is_ok_and(|n| n >= 1 && n <= groups);
        if !known {
            let help = if name.parse::<usize>().is_ok() {
                format!(
                    "this rule's pattern has {groups} regex group(s); ${{n}} refers to a group of a /regex/ match"
                )
            } else {
                match did_you_mean(name, VARIABLES.iter().copied()) {
                    Some(v) => format!("did you mean ${{{v}}}? Variables: EXTEN (dialled number), FROM (caller), TRUNK, 1..9 (regex groups)"),
                    None => "variables: EXTEN (dialled number), FROM (caller), TRUNK, 1..9 (regex groups)".into(),
                }
            };
            return Err((format!("unknown variable `${{{inner}}}`"), help));
        }
        for p in parts.by_ref().take(2) {
            if p.parse::<i32>().is_err() {
                return Err((
                    format!("`${{{inner}}}`: \"{p}\" is not a number"),
                    "write ${EXTEN:1} (skip 1) or ${EXTEN:-4:4} (last 4)".into(),
                ));
            }
        }
        if parts.next().is_some() {
            return Err((
                format!("`${{{inner}}}` has too many `:` parts"),
                "write ${EXTEN:offset} or ${EXTEN:offset:length}".into(),
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// Values of the variables for one call.
pub(crate) struct Vars<'a> {
    pub(crate) exten: &'a str,
    pub(crate) from: &'a str,
    pub(crate) trunk: &'a str,
    pub(crate) groups: &'a [String],
}

/// Substitutes `${...}`; unknown or malformed references (ruled out at compile time) expand to nothing.
pub(crate) fn expand(s: &str, vars: &Vars<'_>) -> String {
    if !s.contains("${") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let mut parts = after[..end].split(':');
        let name = parts.next().unwrap_or("");
        let value: &str = match name {
            "EXTEN" => vars.exten,
            "FROM" => vars.from,
            "TRUNK" => vars.trunk,
            n => n
                .parse::<usize>()
                .ok()
                .and_then(|n| vars.groups.get(n.wrapping_sub(1)))
                .map_or("", String::as_str),
        };
        let offset = parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .unwrap_or(0);
        let length = parts.next().and_then(|p| p.parse::<i64>().ok());
        out.push_str(substring(value, offset, length));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Asterisk `${VAR:offset:length}`: negative offset counts from the end, negative length drops from the end.
fn substring(s: &str, offset: i64, length: Option<i64>) -> &str {
    let n = i64::try_from(s.chars().count()).unwrap_or(i64::MAX);
    let start = if offset < 0 {
        (n + offset).max(0)
    } else {
        offset.min(n)
    };
    let end = match length {
        None => n,
        Some(l) if l < 0 => (n + l).max(start),
        Some(l) => (start + l).min(n),
    };
    let byte = |ci: i64| -> usize {
        let ci = usize::try_from(ci).unwrap_or(0);
        s.char_indices().nth(ci).map_or(s.len(), |(b, _)| b)
    };
    let (b0, b1) = (byte(start), byte(end));
    s.get(b0..b1).unwrap_or("")
}

impl Action {
    /// The action with `${...}` substituted in every string, menu branches included.
    pub(crate) fn expanded(&self, vars: &Vars<'_>) -> Action {
        let x = |s: &String| expand(s, vars);
        let target = |t: &DialTarget| match t {
            DialTarget::Uri(u) => DialTarget::Uri(x(u)),
            DialTarget::User(u) => DialTarget::User(x(u)),
            DialTarget::Group(g) => DialTarget::Group(x(g)),
            DialTarget::Trunk {
                trunk,
                number,
                privacy,
            } => DialTarget::Trunk {
                trunk: x(trunk),
                number: x(number),
                privacy: *privacy,
            },
        };
        match self {
            Action::Answer
            | Action::Echo
            | Action::Wait { .. }
            | Action::Hangup { .. }
            | Action::VoicemailMain => self.clone(),
            Action::Play { sound } => Action::Play { sound: x(sound) },
            Action::Conference { room, pin_prompt } => Action::Conference {
                room: room.as_ref().map(x),
                pin_prompt: *pin_prompt,
            },
            Action::Dial {
                target: t,
                timeout_s,
                fax,
            } => Action::Dial {
                target: target(t),
                timeout_s: *timeout_s,
                fax: *fax,
            },
            Action::Forward { target: t } => Action::Forward { target: target(t) },
            Action::Menu {
                prompt,
                options,
                timeout_s,
                retries,
                invalid,
            } => Action::Menu {
                prompt: x(prompt),
                options: options
                    .iter()
                    .map(|(k, v)| (*k, v.iter().map(|a| a.expanded(vars)).collect()))
                    .collect(),
                timeout_s: *timeout_s,
                retries: *retries,
                invalid: invalid.as_ref().map(x),
            },
            Action::Goto { number } => Action::Goto { number: x(number) },
            Action::SetCallerId { number, name } => Action::SetCallerId {
                number: number.as_ref().map(x),
                name: name.as_ref().map(x),
            },
            Action::Record { path } => Action::Record {
                path: path.as_ref().map(x),
            },
            Action::WebrtcBridge { room } => Action::WebrtcBridge { room: x(room) },
            Action::CallForward { when, to, seconds } => Action::CallForward {
                when: *when,
                to: to.as_ref().map(x),
                seconds: seconds.as_ref().map(x),
            },
            Action::Dnd { switch } => Action::Dnd { switch: *switch },
            Action::GroupLogin { .. } => self.clone(),
            Action::Pickup {
                target: PickupTarget::Extension(e),
            } => Action::Pickup {
                target: PickupTarget::Extension(x(e)),
            },
            Action::Pickup {
                target: PickupTarget::Group,
            } => Action::Pickup {
                target: PickupTarget::Group,
            },
            Action::Voicemail { mailbox } => Action::Voicemail {
                mailbox: x(mailbox),
            },
        }
    }
}

impl fmt::Display for DialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialTarget::Uri(u) => write!(f, "{u}"),
            DialTarget::User(u) => write!(f, "user {u}"),
            DialTarget::Group(g) => write!(f, "ring group {g}"),
            DialTarget::Trunk {
                trunk,
                number,
                privacy,
            } => {
                write!(f, "{number} via trunk {trunk}")?;
                if *privacy {
                    f.write_str(", number withheld")?;
                }
                Ok(())
            }
        }
    }
}

/// One line per action, numbered, menu branches indented below their menu.
pub(crate) fn write_actions(
    f: &mut fmt::Formatter<'_>,
    actions: &[Action],
    indent: usize,
) -> fmt::Result {
    for (i, a) in actions.iter().enumerate() {
        write!(f, "{:indent$}{}. ", "", i + 1)?;
        match a {
            Action::Answer => writeln!(f, "answer")?,
            Action::Play { sound } => writeln!(f, "play \"{sound}\"")?,
            Action::Echo => writeln!(f, "echo test (the caller hears themselves)")?,
            Action::Wait { seconds } => writeln!(f, "wait {seconds} s")?,
            Action::Hangup { cause } => writeln!(f, "hang up (BYE if answered, else {cause})")?,
            Action::Conference {
                room: Some(room),
                pin_prompt,
            } => writeln!(
                f,
                "join conference room {room}{}",
                if *pin_prompt {
                    " (PIN asked if the room has one)"
                } else {
                    ""
                }
            )?,
            Action::Conference {
                room: None,
                pin_prompt,
            } => writeln!(
                f,
                "conference lobby: ask for the room number{}",
                if *pin_prompt {
                    " and PIN by DTMF"
                } else {
                    " by DTMF"
                }
            )?,
            Action::Dial {
                target,
                timeout_s,
                fax,
            } => {
                let fax = if *fax {
                    " as a fax call (G.711 passed through unchanged)"
                } else {
                    ""
                };
                match target {
                    // The fallback is what admins ask about most: say which action it is.
                    DialTarget::Group(_) => {
                        let then = if i + 1 < actions.len() {
                            format!("action {}", i + 2)
                        } else {
                            "none follows: the call ends (480)".to_string()
                        };
                        writeln!(
                            f,
                            "dial {target}{fax}, at most {timeout_s} s in all; nobody answers: then {then}"
                        )?
                    }
                    _ => writeln!(
                        f,
                        "dial {target}{fax}, ring {timeout_s} s, on no answer go on"
                    )?,
                }
            }
            Action::Forward { target } => writeln!(f, "forward to {target}")?,
            Action::Menu {
                prompt,
                options,
                timeout_s,
                retries,
                invalid,
            } => {
                write!(
                    f,
                    "menu: play \"{prompt}\", wait {timeout_s} s for a key, {retries} tries"
                )?;
                if let Some(inv) = invalid {
                    write!(f, ", \"{inv}\" on a wrong key")?;
                }
                writeln!(f)?;
                for (digit, branch) in options {
                    writeln!(f, "{:w$}key {digit}:", "", w = indent + 5)?;
                    write_actions(f, branch, indent + 8)?;
                }
            }
            Action::Goto { number } => writeln!(f, "goto {number}")?,
            Action::SetCallerId { number, name } => {
                write!(f, "set caller ID")?;
                if let Some(n) = number {
                    write!(f, " number {n}")?;
                }
                if let Some(n) = name {
                    write!(f, " name \"{n}\"")?;
                }
                writeln!(f)?;
            }
            Action::Record { path: Some(p) } => writeln!(f, "start recording to {p}")?,
            Action::Record { path: None } => writeln!(f, "start recording")?,
            Action::WebrtcBridge { room } => writeln!(f, "bridge into WebRTC room {room}")?,
            Action::CallForward {
                when,
                to: Some(to),
                seconds,
            } => {
                write!(f, "the calling user's {} forwarding to {to}", when.as_str())?;
                if let Some(s) = seconds {
                    write!(f, " after {s} s")?;
                }
                writeln!(f, " (a prompt confirms)")?
            }
            Action::CallForward { when, to: None, .. } => writeln!(
                f,
                "clear the calling user's {} forwarding (a prompt confirms)",
                when.as_str()
            )?,
            Action::Dnd { switch } => {
                let what = match switch {
                    Switch::On => "on",
                    Switch::Off => "off",
                    Switch::Toggle => "on or off (toggle)",
                };
                writeln!(
                    f,
                    "switch the calling user's do not disturb {what} (a prompt confirms)"
                )?
            }
            Action::GroupLogin { group, mode } => {
                let groups = group.as_ref().map_or_else(
                    || "every ring group the caller is a member of".to_string(),
                    |g| format!("ring group {g}"),
                );
                let what = match mode {
                    GroupLoginMode::Toggle => "log the caller in to or out of (toggle)",
                    GroupLoginMode::In => "log the caller in to",
                    GroupLoginMode::Out => "log the caller out of",
                };
                writeln!(
                    f,
                    "{what} {groups}, confirm with a prompt, hang up (identified users only)"
                )?
            }
            Action::Pickup {
                target: PickupTarget::Extension(e),
            } => writeln!(
                f,
                "pick up the call ringing at {e} (identified callers only; nothing ringing: a prompt, then 480)"
            )?,
            Action::Pickup {
                target: PickupTarget::Group,
            } => writeln!(
                f,
                "pick up a call ringing at a member of the caller's [pickup-groups] (nothing ringing: a prompt, then 480)"
            )?,
            Action::Voicemail { mailbox } => writeln!(
                f,
                "voicemail: answer, greeting of mailbox {mailbox}, tone, record the caller's message"
            )?,
            Action::VoicemailMain => writeln!(
                f,
                "voicemail: the caller listens to their own mailbox after keying its PIN \
                 (reached through a user's call forwarding: takes a message for that user)"
            )?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(exten: &'a str, groups: &'a [String]) -> Vars<'a> {
        Vars {
            exten,
            from: "07111234",
            trunk: "telekom",
            groups,
        }
    }

    #[test]
    fn substitutes_asterisk_substrings() {
        let v = vars("81234", &[]);
        assert_eq!(expand("${EXTEN}", &v), "81234");
        assert_eq!(expand("${EXTEN:1}", &v), "1234");
        assert_eq!(expand("${EXTEN:-2}", &v), "34");
        assert_eq!(expand("${EXTEN:1:2}", &v), "12");
        assert_eq!(expand("${EXTEN:0:-1}", &v), "8123");
        assert_eq!(expand("${EXTEN:9}", &v), "");
        assert_eq!(expand("room-${EXTEN:1}-${FROM}", &v), "room-1234-07111234");
        assert_eq!(expand("${TRUNK}", &v), "telekom");
    }

    #[test]
    fn substitutes_regex_groups() {
        let g = vec!["12".to_string(), "34".to_string()];
        assert_eq!(expand("${2}${1}", &vars("x", &g)), "3412");
    }

    #[test]
    fn template_check_names_the_problem() {
        assert!(check_template("${EXTEN:1}", 0).is_ok());
        assert!(check_template("${1}", 1).is_ok());
        assert!(check_template("${1}", 0).is_err());
        let (msg, help) = check_template("${EXTN:1}", 0).err().unwrap_or_default();
        assert_eq!(msg, "unknown variable `${EXTN:1}`");
        assert!(help.contains("did you mean ${EXTEN}"), "{help}");
        assert!(check_template("${EXTEN:x}", 0).is_err());
        assert!(check_template("${EXTEN", 0).is_err());
        assert!(check_template("${EXTEN:1:2:3}", 0).is_err());
    }
}
