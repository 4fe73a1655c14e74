//! From source files to a checked `Plan`: includes, settings, calendars, groups, rules, checks.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use jiff::tz::TimeZone;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::action::{Action, ActionParser, DialTarget, GROUP_OWN_TIMEOUT, GotoRef, RefKind};
use crate::diag::{Diagnostic, Reporter, Severity, did_you_mean};
use crate::holidays::{self, Calendars};
use crate::pattern::NumberPattern;
use crate::plan::{Cidr, Plan, RingGroup, RingStrategy, Rule};
use crate::walk::{self, SpannedStr};
use crate::when::Window;
use crate::{CheckContext, Compiled, SourceFile};

const DEFAULT_TZ: &str = "Europe/Berlin";
const DEFAULT_LANGUAGE: &str = "de";
const DEFAULT_CALENDAR: &str = "de";
const TOP_KEYS: &[&str] = &["settings", "rule", "calendars", "groups", "pickup-groups"];
const SETTINGS_KEYS: &[&str] = &["timezone", "language", "calendar", "include"];
const RULE_KEYS: &[&str] = &[
    "name", "match", "from", "trunk", "source", "when", "public", "actions",
];
const GROUP_KEYS: &[&str] = &[
    "members",
    "strategy",
    "ring",
    "timeout",
    "respect-dnd",
    "respect-forwarding",
];
/// Seconds a member rings before the next one, when the group does not say.
const DEFAULT_MEMBER_RING_S: u32 = 15;
/// Seconds a ring-all group rings when neither it nor the `dial` says.
const DEFAULT_GROUP_TIMEOUT_S: u32 = 30;
/// Longest a group may ring in all (as a `dial`'s own `timeout`).
const MAX_GROUP_TIMEOUT_S: u32 = 600;

/// A setting with the file it came from, to report conflicts at both places.
struct Setting {
    value: SpannedStr,
    file: usize,
}

/// Extra per-rule facts kept only for the checks.
struct RuleSpans {
    file: usize,
    match_span: Range<usize>,
    refs: Vec<(RefKind, SpannedStr)>,
    actions_used: Vec<(String, Range<usize>)>,
    gotos: Vec<GotoRef>,
    trunk_refs: Vec<SpannedStr>,
    calendar_refs: Vec<SpannedStr>,
    uses_holidays: Option<Range<usize>>,
}

/// Checks dialplan files and builds a plan; includes are resolved among `files` by path.
///
/// Files that no other file includes are the roots, taken in the order given. A file's
/// included files' rules come before its own rules.
pub fn compile(files: &[SourceFile], ctx: &CheckContext) -> Result<Compiled, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut calendars = holidays::builtin(&mut diags);
    let builtin_ids: BTreeSet<String> = calendars.by_id.keys().cloned().collect();

    // Parse every file once; a syntax error is reported and the file skipped.
    let mut trees: Vec<Option<Spanned<DeTable<'_>>>> = Vec::with_capacity(files.len());
    for f in files {
        match DeTable::parse(&f.text) {
            Ok(t) => trees.push(Some(t)),
            Err(e) => {
                let mut r = reporter(files, 0, &mut diags);
                r.file = &f.path;
                r.text = &f.text;
                let msg = e.message().trim().to_string();
                r.error(
                    e.span().unwrap_or(0..0),
                    format!("TOML syntax: {msg}"),
                    Some("see https://toml.io for the syntax; strings need \"quotes\"".into()),
                );
                trees.push(None);
            }
        }
    }

    let order = include_order(files, &trees, &mut diags);

    let mut timezone: Option<Setting> = None;
    let mut language: Option<Setting> = None;
    let mut calendar: Option<Setting> = None;
    let mut groups: BTreeMap<String, (ParsedGroup, usize, Range<usize>)> = BTreeMap::new();
    // Pickup groups: name → members, with the file they are in (members are checked as
    // users below).
    let mut pickup_groups: BTreeMap<String, (Vec<SpannedStr>, usize)> = BTreeMap::new();
    let mut custom_calendars: Vec<(usize, SpannedStr)> = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut spans: Vec<RuleSpans> = Vec::new();

    for &fi in &order {
        let Some(Some(tree)) = trees.get(fi) else {
            continue;
        };
        let mut r = reporter(files, fi, &mut diags);
        for (k, v) in tree.get_ref().iter() {
            match k.get_ref().as_ref() {
                "settings" => {
                    let Some(t) = walk::table(
                        &mut r,
                        v,
                        "[settings]",
                        "[settings]\ntimezone = \"Europe/Berlin\"",
                    ) else {
                        continue;
                    };
                    for (sk, sv) in t.iter() {
                        let slot = match sk.get_ref().as_ref() {
                            "timezone" => &mut timezone,
                            "language" => &mut language,
                            "calendar" => &mut calendar,
                            "include" => continue,
                            _ => {
                                walk::unknown_key(&mut r, sk, SETTINGS_KEYS, "[settings]");
                                continue;
                            }
                        };
                        let Some(s) = walk::string(&mut r, sv, sk.get_ref(), "\"de-bw\"") else {
                            continue;
                        };
                        match slot {
                            Some(prev) if prev.value.text != s.text => {
                                let (pl, _) = crate::diag::line_col(
                                    &files[prev.file].text,
                                    prev.value.span.start,
                                );
                                r.error(
                                    s.span,
                                    format!(
                                        "`{}` is set to \"{}\" here but \"{}\" in {}:{}",
                                        sk.get_ref(),
                                        s.text,
                                        prev.value.text,
                                        files[prev.file].path,
                                        pl
                                    ),
                                    Some("set it in one file only".into()),
                                );
                            }
                            Some(_) => {}
                            None => *slot = Some(Setting { value: s, file: fi }),
                        }
                    }
                }
                "calendars" => {
                    let Some(t) = walk::table(&mut r, v, "[calendars]", "[calendars.rathaus]")
                    else {
                        continue;
                    };
                    for (ck, cv) in t.iter() {
                        let id = ck.get_ref().to_string();
                        if builtin_ids.contains(&id) || calendars.by_id.contains_key(&id) {
                            r.error(
                                ck.span(),
                                format!("calendar `{id}` is already defined"),
                                Some(format!(
                                    "pick another name and write extends = \"{id}\" to build on it"
                                )),
                            );
                            continue;
                        }
                        let Some(ct) = walk::table(&mut r, cv, "a calendar", "[calendars.rathaus]")
                        else {
                            continue;
                        };
                        if let Some(cal) = holidays::parse_calendar(&mut r, &id, ct) {
                            custom_calendars.push((
                                fi,
                                SpannedStr {
                                    text: id.clone(),
                                    span: ck.span(),
                                },
                            ));
                            calendars.by_id.insert(id, cal);
                        }
                    }
                }
                "groups" => {
                    let Some(t) = walk::table(&mut r, v, "[groups]", "[groups.buergerservice]")
                    else {
                        continue;
                    };
                    for (gk, gv) in t.iter() {
                        let Some(gt) =
                            walk::table(&mut r, gv, "a ring group", "[groups.buergerservice]")
                        else {
                            continue;
                        };
                        if let Some(g) = parse_group(&mut r, gt, gv.span()) {
                            if groups.contains_key(gk.get_ref().as_ref()) {
                                r.error(
                                    gk.span(),
                                    format!("ring group `{}` is defined twice", gk.get_ref()),
                                    Some("rename one of them".into()),
                                );
                                continue;
                            }
                            groups.insert(gk.get_ref().to_string(), (g, fi, gk.span()));
                        }
                    }
                }
                "pickup-groups" => {
                    const EXAMPLE: &str = "[pickup-groups]\nbuergerbuero = [\"101\", \"102\"]";
                    let Some(t) = walk::table(&mut r, v, "[pickup-groups]", EXAMPLE) else {
                        continue;
                    };
                    for (pk, pv) in t.iter() {
                        let Some(members) = walk::strings(&mut r, pv, pk.get_ref(), EXAMPLE) else {
                            continue;
                        };
                        if pickup_groups.contains_key(pk.get_ref().as_ref()) {
                            r.error(
                                pk.span(),
                                format!("pickup group `{}` is defined twice", pk.get_ref()),
                                Some("rename one of them, or list all members once".into()),
                            );
                            continue;
                        }
                        pickup_groups.insert(pk.get_ref().to_string(), (members, fi));
                    }
                }
                "rule" => {
                    let DeValue::Array(items) = v.get_ref() else {
                        walk::wrong_type(
                            &mut r,
                            v,
                            "rule",
                            "a list of [[rule]] tables",
                            "[[rule]]",
                        );
                        continue;
                    };
                    for item in items.iter() {
                        let Some(t) = walk::table(&mut r, item, "a rule", "[[rule]]") else {
                            continue;
                        };
                        if let Some((rule, sp)) = parse_rule(&mut r, fi, t, item.span()) {
                            rules.push(rule);
                            spans.push(sp);
                        }
                    }
                }
                _ => walk::unknown_key(&mut r, k, TOP_KEYS, "a dialplan file"),
            }
        }
    }

    // Settings.
    let tz_name = timezone
        .as_ref()
        .map_or(DEFAULT_TZ.to_string(), |s| s.value.text.clone());
    let tz = match TimeZone::get(&tz_name) {
        Ok(tz) => tz,
        Err(_) => {
            match &timezone {
                Some(s) => reporter(files, s.file, &mut diags).error(
                    s.value.span.clone(),
                    format!("unknown time zone \"{tz_name}\""),
                    Some("use an IANA name like \"Europe/Berlin\" (the system's tzdata must be installed)".into()),
                ),
                None => diags.push(Diagnostic {
                    severity: Severity::Error,
                    file: files.first().map_or_else(String::new, |f| f.path.clone()),
                    line: 1,
                    column: 1,
                    message: format!("time zone {DEFAULT_TZ} not found in the system tzdata"),
                    help: Some("install the tzdata package".into()),
                }),
            }
            TimeZone::UTC
        }
    };
    let default_calendar = calendar
        .as_ref()
        .map_or(DEFAULT_CALENDAR.to_string(), |s| s.value.text.clone());
    if let Some(s) = &calendar {
        check_calendar(
            &mut reporter(files, s.file, &mut diags),
            &calendars,
            &s.value,
        );
    }
    for (fi, id) in &custom_calendars {
        let ext = calendars
            .by_id
            .get(&id.text)
            .and_then(|c| c.extends.clone());
        if let Some(ext) = ext {
            let mut r = reporter(files, *fi, &mut diags);
            if check_calendar(&mut r, &calendars, &ext) && extends_loops(&calendars, &id.text) {
                r.error(
                    ext.span.clone(),
                    format!(
                        "calendar `{}` extends itself through `{}`",
                        id.text, ext.text
                    ),
                    Some("remove one `extends`".into()),
                );
            }
        }
    }

    // Fill in default calendars and check the ones named in rules.
    let mut warned_default_calendar = false;
    for (rule, sp) in rules.iter_mut().zip(&spans) {
        let mut r = reporter(files, sp.file, &mut diags);
        for c in &sp.calendar_refs {
            check_calendar(&mut r, &calendars, c);
        }
        if let Some(span) = &sp.uses_holidays
            && calendar.is_none()
            && sp.calendar_refs.is_empty()
            && !warned_default_calendar
        {
            warned_default_calendar = true;
            r.warning(
                span.clone(),
                "holidays are used but no calendar is set: only federal holidays (`de`) count"
                    .into(),
                Some("set calendar = \"de-bw\" (your Land) in [settings] or in `when`".into()),
            );
        }
        for w in rule.when.iter_mut().flatten() {
            if w.calendar.is_none() {
                w.calendar = Some(SpannedStr {
                    text: default_calendar.clone(),
                    span: 0..0,
                });
            }
        }
    }

    // Groups: members must be users.
    for (g, fi, _) in groups.values() {
        if let Some(users) = &ctx.users {
            let mut r = reporter(files, *fi, &mut diags);
            for m in &g.members_spans {
                if !users.contains(&m.text) {
                    unknown_name(&mut r, RefKind::User, m, users);
                }
            }
        }
    }

    // Pickup groups: members must be users too.
    for (members, fi) in pickup_groups.values() {
        if let Some(users) = &ctx.users {
            let mut r = reporter(files, *fi, &mut diags);
            for m in members {
                if !users.contains(&m.text) {
                    unknown_name(&mut r, RefKind::User, m, users);
                }
            }
        }
    }

    // References to sounds, users, rooms, trunks and groups.
    for sp in &spans {
        let mut r = reporter(files, sp.file, &mut diags);
        for (kind, name) in &sp.refs {
            let known: Option<BTreeSet<String>> = match kind {
                RefKind::Sound => ctx.sounds.clone(),
                RefKind::User => ctx.users.clone(),
                RefKind::Room => ctx.rooms.clone(),
                RefKind::Trunk => ctx.trunks.clone(),
                RefKind::Group => Some(groups.keys().cloned().collect()),
            };
            if let Some(known) = known
                && !known.contains(&name.text)
            {
                unknown_name(&mut r, *kind, name, &known);
            }
        }
        if let Some(runnable) = &ctx.runnable_actions {
            for (name, span) in &sp.actions_used {
                if !runnable.contains(name) {
                    r.warning(
                        span.clone(),
                        format!(
                            "`{name}` cannot run in this version yet: a call that reaches it is refused (501)"
                        ),
                        Some("route these calls with actions that run until it can".into()),
                    );
                }
            }
        }
        if let Some(trunks) = &ctx.trunks {
            for t in &sp.trunk_refs {
                if !trunks.contains(&t.text) {
                    unknown_name(&mut r, RefKind::Trunk, t, trunks);
                }
            }
        }
    }

    check_shadowing(files, &rules, &spans, &mut diags);
    check_emergency(files, &rules, &spans, &mut diags);
    check_gotos(files, &rules, &spans, &mut diags);

    // Sorted by place so the output reads top to bottom, file by file.
    diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    let (errors, warnings): (Vec<_>, Vec<_>) = diags
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(errors.into_iter().chain(warnings).collect());
    }
    let groups: BTreeMap<String, RingGroup> = groups
        .into_iter()
        .map(|(k, (g, _, _))| (k, g.group))
        .collect();
    for rule in &mut rules {
        resolve_group_timeouts(&mut rule.actions, &groups);
    }
    Ok(Compiled {
        plan: Plan {
            rules,
            tz,
            tz_name,
            language: language.map_or(DEFAULT_LANGUAGE.to_string(), |s| s.value.text),
            calendars,
            groups,
            pickup_groups: pickup_groups
                .into_iter()
                .map(|(k, (members, _))| (k, members.into_iter().map(|m| m.text).collect()))
                .collect(),
        },
        warnings,
    })
}

fn reporter<'a>(files: &'a [SourceFile], fi: usize, out: &'a mut Vec<Diagnostic>) -> Reporter<'a> {
    let f = files.get(fi);
    Reporter {
        file: f.map_or("", |f| f.path.as_str()),
        text: f.map_or("", |f| f.text.as_str()),
        out,
    }
}

fn unknown_name(r: &mut Reporter<'_>, kind: RefKind, name: &SpannedStr, known: &BTreeSet<String>) {
    let noun = kind.noun();
    let help = match did_you_mean(&name.text, known.iter().map(String::as_str)) {
        Some(s) => format!("did you mean \"{s}\"?"),
        None if kind == RefKind::Group => {
            format!("define it with [groups.{}] and members = [...]", name.text)
        }
        None if known.is_empty() => format!("no {noun}s are configured"),
        None if known.len() <= 20 => format!(
            "known {noun}s: {}",
            known.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        None => format!("check the spelling; {} {noun}s are configured", known.len()),
    };
    let what = match kind {
        RefKind::Sound => format!("sound \"{}\" does not exist", name.text),
        _ => format!("unknown {noun} \"{}\"", name.text),
    };
    r.error(name.span.clone(), what, Some(help));
}

fn check_calendar(r: &mut Reporter<'_>, cals: &Calendars, id: &SpannedStr) -> bool {
    if cals.by_id.contains_key(&id.text) {
        return true;
    }
    let help = match did_you_mean(&id.text, cals.by_id.keys().map(String::as_str)) {
        Some(s) => format!("did you mean \"{s}\"? Built in: de, de-bw, de-by, de-be, de-bb, de-hb, de-hh, de-he, de-mv, de-ni, de-nw, de-rp, de-sl, de-sn, de-st, de-sh, de-th"),
        None => "built in: de, de-bw, de-by, de-be, de-bb, de-hb, de-hh, de-he, de-mv, de-ni, de-nw, de-rp, de-sl, de-sn, de-st, de-sh, de-th; or define [calendars.NAME]".into(),
    };
    r.error(
        id.span.clone(),
        format!("unknown calendar \"{}\"", id.text),
        Some(help),
    );
    false
}

fn extends_loops(cals: &Calendars, start: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut cur = Some(start.to_string());
    while let Some(id) = cur {
        if !seen.insert(id.clone()) {
            return true;
        }
        cur = cals
            .by_id
            .get(&id)
            .and_then(|c| c.extends.as_ref().map(|e| e.text.clone()));
    }
    false
}

/// A ring group plus the spans of its members, for checking them against the users.
struct ParsedGroup {
    group: RingGroup,
    members_spans: Vec<SpannedStr>,
}

fn parse_group(r: &mut Reporter<'_>, t: &DeTable<'_>, span: Range<usize>) -> Option<ParsedGroup> {
    let mut members = None;
    let mut strategy = "all".to_string();
    let mut strategy_span = span.clone();
    let mut ring = DEFAULT_MEMBER_RING_S;
    let mut timeout = None;
    let mut respect_dnd = true;
    let mut respect_forwarding = true;
    let mut ok = true;
    for (k, v) in t.iter() {
        match k.get_ref().as_ref() {
            "members" => {
                members = walk::strings(r, v, "members", "members = [\"anna\", \"bernd\"]")
            }
            "strategy" => match walk::string(r, v, "strategy", "strategy = \"hunt\"") {
                Some(s) => {
                    strategy = s.text;
                    strategy_span = s.span;
                }
                None => ok = false,
            },
            "ring" => match walk::integer(r, v, "ring", 1..=300) {
                Some(n) => ring = u32::try_from(n).unwrap_or(DEFAULT_MEMBER_RING_S),
                None => ok = false,
            },
            "timeout" => match walk::integer(r, v, "timeout", 1..=i64::from(MAX_GROUP_TIMEOUT_S)) {
                Some(n) => timeout = u32::try_from(n).ok(),
                None => ok = false,
            },
            "respect-dnd" => match walk::boolean(r, v, "respect-dnd") {
                Some(b) => respect_dnd = b,
                None => ok = false,
            },
            "respect-forwarding" => match walk::boolean(r, v, "respect-forwarding") {
                Some(b) => respect_forwarding = b,
                None => ok = false,
            },
            _ => {
                walk::unknown_key(r, k, GROUP_KEYS, "a ring group");
                ok = false;
            }
        }
    }
    let Some(members) = members else {
        if ok {
            r.error(
                span,
                "ring group needs `members`".into(),
                Some("members = [\"anna\", \"bernd\"]".into()),
            );
        }
        return None;
    };
    let strategy = match strategy.as_str() {
        "all" => RingStrategy::All,
        "hunt" => RingStrategy::Hunt,
        "round-robin" => RingStrategy::RoundRobin,
        "longest-idle" => RingStrategy::LongestIdle,
        other => {
            r.error(
                strategy_span,
                format!("unknown ring strategy \"{other}\""),
                Some("use \"all\" (ring everyone at once), \"hunt\" (one after another in order), \"round-robin\" (one after another, starting after the last to answer) or \"longest-idle\" (idle longest first)".into()),
            );
            return None;
        }
    };
    // Without its own `timeout`, a one-at-a-time group gives every member one turn.
    let member_count = u32::try_from(members.len()).unwrap_or(u32::MAX);
    let timeout_s = timeout.unwrap_or(if strategy.one_at_a_time() {
        ring.saturating_mul(member_count)
            .clamp(1, MAX_GROUP_TIMEOUT_S)
    } else {
        DEFAULT_GROUP_TIMEOUT_S
    });
    ok.then(|| ParsedGroup {
        group: RingGroup {
            members: members.iter().map(|m| m.text.clone()).collect(),
            strategy,
            ring_s: ring,
            timeout_s,
            respect_dnd,
            respect_forwarding,
        },
        members_spans: members,
    })
}

/// A `dial` of a group without its own `timeout` rings for the group's (the parser left
/// [`GROUP_OWN_TIMEOUT`] there, since groups may be defined after the rules).
fn resolve_group_timeouts(actions: &mut [Action], groups: &BTreeMap<String, RingGroup>) {
    for a in actions {
        match a {
            Action::Dial {
                target: DialTarget::Group(name),
                timeout_s,
                ..
            } if *timeout_s == GROUP_OWN_TIMEOUT => {
                *timeout_s = groups
                    .get(name)
                    .map_or(DEFAULT_GROUP_TIMEOUT_S, |g| g.timeout_s);
            }
            Action::Menu { options, .. } => {
                for branch in options.values_mut() {
                    resolve_group_timeouts(branch, groups);
                }
            }
            _ => {}
        }
    }
}

fn patterns(
    r: &mut Reporter<'_>,
    v: &walk::Val<'_>,
    what: &str,
) -> Option<Vec<(NumberPattern, Range<usize>)>> {
    let list = walk::strings(r, v, what, "\"_8XXXX\"")?;
    let mut out = Vec::with_capacity(list.len());
    let mut ok = true;
    for s in list {
        match NumberPattern::parse(&s.text) {
            Ok(p) => {
                if let NumberPattern::Exact(text) = &p
                    && looks_like_asterisk_pattern(text)
                {
                    r.warning(
                        s.span.clone(),
                        format!(
                            "\"{text}\" is an exact number: it matches only a caller who dials \"{text}\" itself"
                        ),
                        Some(format!(
                            "Asterisk-style patterns start with `_`: write \"_{text}\""
                        )),
                    );
                }
                out.push((p, s.span))
            }
            Err(e) => {
                r.error(s.span, e.message, e.help);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// An exact number written like an Asterisk pattern without its `_` (`8XXXX`, `0N.`): the
/// habit of admins coming from Asterisk, where the rule would then never match a real call.
fn looks_like_asterisk_pattern(text: &str) -> bool {
    let pattern_char = |c: char| matches!(c, 'X' | 'N' | 'Z' | 'x' | 'n' | 'z' | '.' | '!' | '[');
    text.chars().any(pattern_char)
        && text.chars().all(|c| {
            c.is_ascii_digit() || pattern_char(c) || matches!(c, '*' | '#' | '+' | ']' | '-')
        })
}

fn parse_rule(
    r: &mut Reporter<'_>,
    fi: usize,
    t: &DeTable<'_>,
    span: Range<usize>,
) -> Option<(Rule, RuleSpans)> {
    let mut ok = true;
    let mut name = None;
    let mut pats: Option<Vec<(NumberPattern, Range<usize>)>> = None;
    let mut match_span = span.clone();
    let mut from = None;
    let mut trunks: Option<Vec<SpannedStr>> = None;
    let mut sources = None;
    let mut when = None;
    let mut public = false;
    let mut actions_val = None;
    let mut calendar_refs = Vec::new();
    let mut uses_holidays = None;
    for (k, v) in t.iter() {
        match k.get_ref().as_ref() {
            "name" => name = walk::string(r, v, "name", "name = \"Bürgerservice\"").map(|s| s.text),
            "match" => {
                match_span = v.span();
                pats = patterns(r, v, "match");
                ok &= pats.is_some();
            }
            "from" => {
                from = patterns(r, v, "from");
                ok &= from.is_some();
            }
            "trunk" => {
                trunks = walk::strings(r, v, "trunk", "trunk = \"telekom\"");
                ok &= trunks.is_some();
            }
            "source" => {
                let Some(list) = walk::strings(r, v, "source", "source = \"10.8.0.0/24\"") else {
                    ok = false;
                    continue;
                };
                let mut cidrs = Vec::new();
                for s in list {
                    match Cidr::parse(&s.text) {
                        Some(c) => cidrs.push(c),
                        None => {
                            r.error(
                                s.span,
                                format!("\"{}\" is not an IP address or network", s.text),
                                Some("write \"10.8.0.0/24\" or \"192.168.1.10\"".into()),
                            );
                            ok = false;
                        }
                    }
                }
                sources = Some(cidrs);
            }
            "when" => {
                let tables: Vec<&walk::Val<'_>> = match v.get_ref() {
                    DeValue::Array(a) => a.iter().collect(),
                    _ => vec![v],
                };
                let mut windows = Vec::new();
                for tv in tables {
                    let Some(wt) = walk::table(
                        r,
                        tv,
                        "when",
                        "when = { weekdays = \"mon-fri\", hours = \"08:00-16:00\" }",
                    ) else {
                        ok = false;
                        continue;
                    };
                    match Window::parse(r, wt) {
                        Some(w) => {
                            if let Some(c) = &w.calendar {
                                calendar_refs.push(c.clone());
                            }
                            if w.holidays != crate::when::HolidayMode::Ignore {
                                uses_holidays.get_or_insert(tv.span());
                            }
                            windows.push(w);
                        }
                        None => ok = false,
                    }
                }
                if windows.is_empty() && ok {
                    r.error(
                        v.span(),
                        "`when` is an empty list".into(),
                        Some("leave `when` out to match at any time".into()),
                    );
                    ok = false;
                }
                when = Some(windows);
            }
            "public" => match walk::boolean(r, v, "public") {
                Some(b) => public = b,
                None => ok = false,
            },
            "actions" => actions_val = Some(v),
            _ => {
                walk::unknown_key(r, k, RULE_KEYS, "a rule");
                ok = false;
            }
        }
    }
    let groups = pats
        .iter()
        .flatten()
        .map(|(p, _)| p.groups())
        .min()
        .unwrap_or(0);
    let mut parser = ActionParser::new(groups);
    // Actions are checked even when the rule head is broken, so one run reports everything.
    let actions = match actions_val {
        Some(av) => parser.list(r, av, "actions"),
        None => {
            r.error(
                span.clone(),
                "rule has no `actions`".into(),
                Some(
                    "add actions = [ { answer = {} }, { play = \"welcome\" }, { hangup = {} } ]"
                        .into(),
                ),
            );
            None
        }
    };
    let Some(pats) = pats else {
        if ok {
            r.error(
                span,
                "rule has no `match`".into(),
                Some(
                    "add the number it is for: match = \"600\", \"_8XXXX\" or \"/^8\\\\d{4}$/\""
                        .into(),
                ),
            );
        }
        return None;
    };
    let actions = actions?;
    if !ok {
        return None;
    }
    let line = crate::diag::line_col(r.text, span.start).0;
    let patterns: Vec<NumberPattern> = pats.into_iter().map(|(p, _)| p).collect();
    let rule = Rule {
        name: name.unwrap_or_else(|| {
            patterns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }),
        file: r.file.to_string(),
        line,
        patterns,
        from: from.map(|v| v.into_iter().map(|(p, _)| p).collect()),
        trunks: trunks
            .clone()
            .map(|v| v.into_iter().map(|s| s.text).collect()),
        sources,
        when,
        public,
        actions,
    };
    Some((
        rule,
        RuleSpans {
            file: fi,
            match_span,
            refs: parser.refs,
            actions_used: parser.actions_used,
            gotos: parser.gotos,
            trunk_refs: trunks.unwrap_or_default(),
            calendar_refs,
            uses_holidays,
        },
    ))
}

/// Resolves includes: returns file indices in rule order (includes first, then the includer).
fn include_order(
    files: &[SourceFile],
    trees: &[Option<Spanned<DeTable<'_>>>],
    diags: &mut Vec<Diagnostic>,
) -> Vec<usize> {
    let normalized: Vec<String> = files.iter().map(|f| normalize(&f.path)).collect();
    // includes[i] = (target index, span) for each include of file i.
    let mut includes: Vec<Vec<(usize, Range<usize>)>> = vec![Vec::new(); files.len()];
    let mut included = vec![false; files.len()];
    for (i, tree) in trees.iter().enumerate() {
        let Some(tree) = tree else { continue };
        let Some(DeValue::Table(settings)) = tree.get_ref().get("settings").map(|v| v.get_ref())
        else {
            continue;
        };
        let Some(v) = settings.get("include") else {
            continue;
        };
        let mut r = reporter(files, i, diags);
        let Some(list) = walk::strings(&mut r, v, "include", "include = [\"holidays.toml\"]")
        else {
            continue;
        };
        let dir = files[i]
            .path
            .rfind('/')
            .map_or("", |p| &files[i].path[..=p]);
        for inc in list {
            let target = normalize(&format!("{dir}{}", inc.text));
            match normalized.iter().position(|n| *n == target) {
                Some(j) => {
                    includes[i].push((j, inc.span));
                    included[j] = true;
                }
                None => r.error(
                    inc.span,
                    format!(
                        "included file \"{}\" not found (looked for {target})",
                        inc.text
                    ),
                    Some("include paths are relative to the including file; check the name".into()),
                ),
            }
        }
    }
    let mut order = Vec::new();
    let mut state = vec![0u8; files.len()]; // 0 new, 1 on the stack, 2 done
    fn visit(
        i: usize,
        includes: &[Vec<(usize, Range<usize>)>],
        state: &mut [u8],
        order: &mut Vec<usize>,
        files: &[SourceFile],
        diags: &mut Vec<Diagnostic>,
    ) {
        state[i] = 1;
        for (j, span) in &includes[i] {
            match state[*j] {
                0 => visit(*j, includes, state, order, files, diags),
                1 => reporter(files, i, diags).error(
                    span.clone(),
                    format!(
                        "include loop: \"{}\" is already being included",
                        files[*j].path
                    ),
                    Some("remove this include; each file may be included once".into()),
                ),
                _ => {}
            }
        }
        state[i] = 2;
        order.push(i);
    }
    for i in 0..files.len() {
        if !included[i] && state[i] == 0 {
            visit(i, &includes, &mut state, &mut order, files, diags);
        }
    }
    // Files only reachable through a cycle have no root; still check them.
    for i in 0..files.len() {
        if state[i] == 0 {
            visit(i, &includes, &mut state, &mut order, files, diags);
        }
    }
    order
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Does rule `a` (earlier) catch every call rule `b` (later) would?
fn shadows(a: &Rule, b: &Rule) -> bool {
    let covers_all = |a: &[NumberPattern], b: &[NumberPattern]| {
        b.iter().all(|pb| a.iter().any(|pa| pa.covers(pb)))
    };
    if !covers_all(&a.patterns, &b.patterns) {
        return false;
    }
    let from_ok = match (&a.from, &b.from) {
        (None, _) => true,
        (Some(fa), Some(fb)) => covers_all(fa, fb),
        (Some(_), None) => false,
    };
    let trunk_ok = match (&a.trunks, &b.trunks) {
        (None, _) => true,
        (Some(ta), Some(tb)) => tb.iter().all(|t| ta.contains(t)),
        (Some(_), None) => false,
    };
    let source_ok = match (&a.sources, &b.sources) {
        (None, _) => true,
        (Some(sa), Some(sb)) => sb.iter().all(|c| sa.iter().any(|o| c.within(o))),
        (Some(_), None) => false,
    };
    let when_ok = match (&a.when, &b.when) {
        (None, _) => true,
        (Some(wa), Some(wb)) => {
            let key = |w: &[Window]| {
                w.iter()
                    .map(|w| (w.text.clone(), w.calendar.as_ref().map(|c| c.text.clone())))
                    .collect::<Vec<_>>()
            };
            key(wa) == key(wb)
        }
        (Some(_), None) => false,
    };
    from_ok && trunk_ok && source_ok && when_ok
}

fn check_shadowing(
    files: &[SourceFile],
    rules: &[Rule],
    spans: &[RuleSpans],
    diags: &mut Vec<Diagnostic>,
) {
    for (j, b) in rules.iter().enumerate() {
        if let Some(a) = rules[..j].iter().find(|a| shadows(a, b)) {
            let sp = &spans[j];
            reporter(files, sp.file, diags).warning(
                sp.match_span.clone(),
                format!(
                    "unreachable rule \"{}\": {} above catches every call it would",
                    b.name,
                    a.describe()
                ),
                Some(format!(
                    "move this rule above \"{}\", or narrow that rule's match or conditions",
                    a.name
                )),
            );
        }
    }
}

/// Emergency calls (110, 112) go out on the emergency trunk before any rule is asked, so a
/// rule written for one would only mislead whoever reads the plan into thinking it could
/// send an emergency call somewhere else: refused. A catch-all that also takes numbers of any
/// length (`_X.`) is no such promise and passes.
fn check_emergency(
    files: &[SourceFile],
    rules: &[Rule],
    spans: &[RuleSpans],
    diags: &mut Vec<Diagnostic>,
) {
    for (rule, sp) in rules.iter().zip(spans) {
        let Some(number) = crate::EMERGENCY_NUMBERS
            .iter()
            .find(|n| rule.patterns.iter().any(|p| p.matches(n).is_some()))
        else {
            continue;
        };
        let mut r = reporter(files, sp.file, diags);
        // A number no plan writes for itself: a pattern that takes it catches everything.
        let catch_all = rule
            .patterns
            .iter()
            .any(|p| p.matches("1987654321012").is_some());
        if catch_all {
            continue;
        }
        r.error(
            sp.match_span.clone(),
            format!(
                "rule \"{}\" matches emergency number {number}: emergency calls always go out on the emergency trunk, before any rule",
                rule.name
            ),
            Some("narrow the match so that it leaves out 110 and 112 (e.g. [\"_[2-5]XX\", \"_1[02-9]X\"] instead of \"_[1-5]XX\")".into()),
        );
    }
}

/// Rules a static goto to `number` may reach: every matching rule up to the first unconditional one.
fn goto_candidates(rules: &[Rule], number: &str) -> (Vec<usize>, bool) {
    let mut out = Vec::new();
    for (k, rule) in rules.iter().enumerate() {
        if rule.patterns.iter().any(|p| p.matches(number).is_some()) {
            out.push(k);
            if rule.unconditional() {
                return (out, true);
            }
        }
    }
    (out, false)
}

fn check_gotos(
    files: &[SourceFile],
    rules: &[Rule],
    spans: &[RuleSpans],
    diags: &mut Vec<Diagnostic>,
) {
    // Definite edges: a top-level goto whose number always lands on one rule.
    let mut edges: Vec<Vec<(usize, &GotoRef)>> = vec![Vec::new(); rules.len()];
    for (i, sp) in spans.iter().enumerate() {
        for g in &sp.gotos {
            if g.number.text.contains("${") {
                continue;
            }
            let (cands, certain) = goto_candidates(rules, &g.number.text);
            if cands.is_empty() {
                reporter(files, sp.file, diags).warning(
                    g.number.span.clone(),
                    format!(
                        "goto \"{}\" matches no rule: the call would get 404 Not Found",
                        g.number.text
                    ),
                    Some("add a rule for that number or fix the number".into()),
                );
                continue;
            }
            if !g.in_menu && certain && cands.len() == 1 {
                edges[i].push((cands[0], g));
            }
        }
    }
    // Each rule has at most a few edges; walk from each rule and report a cycle back to it.
    let mut reported = BTreeSet::new();
    for (start, start_spans) in spans.iter().enumerate() {
        let mut path = vec![start];
        let mut cur = start;
        let mut first_goto: Option<&GotoRef> = None;
        for _ in 0..rules.len() {
            let Some((next, g)) = edges[cur].first() else {
                break;
            };
            first_goto.get_or_insert(g);
            if *next == start {
                let mut members: Vec<usize> = path.clone();
                members.sort_unstable();
                if reported.insert(members)
                    && let Some(g0) = first_goto
                {
                    let chain: Vec<String> = path
                        .iter()
                        .chain(std::iter::once(&start))
                        .map(|k| format!("\"{}\"", rules[*k].name))
                        .collect();
                    reporter(files, start_spans.file, diags).error(
                        g0.number.span.clone(),
                        format!("goto loop: {} repeats forever", chain.join(" -> ")),
                        Some("point one goto at a number that ends somewhere (hangup, conference, dial); at run time the call would be cut after 16 gotos".into()),
                    );
                }
                break;
            }
            if path.contains(next) {
                break;
            }
            path.push(*next);
            cur = *next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(text: String) -> Vec<SourceFile> {
        vec![SourceFile {
            path: "p.toml".into(),
            text,
        }]
    }

    #[test]
    fn normalize_resolves_dot_segments() {
        assert_eq!(normalize("a/./b/../c.toml"), "a/c.toml");
        assert_eq!(normalize("../x.toml"), "../x.toml");
        assert_eq!(normalize("/etc/a/../b.toml"), "/etc/b.toml");
    }

    fn plan_of(text: &str) -> Plan {
        match compile(&one(text.to_string()), &CheckContext::default()) {
            Ok(c) => c.plan,
            Err(d) => panic!("{d:?}"),
        }
    }

    fn dial_timeout(plan: &Plan, to: &str) -> u32 {
        let facts = crate::CallFacts {
            to: to.into(),
            from: None,
            trunk: None,
            source_ip: None,
            at: jiff::Timestamp::UNIX_EPOCH,
        };
        match plan.route(&facts).map(|r| r.actions) {
            Some(actions) => match actions.first() {
                Some(Action::Dial { timeout_s, .. }) => *timeout_s,
                other => panic!("{other:?}"),
            },
            None => panic!("no route"),
        }
    }

    #[test]
    fn ring_groups_parse_every_strategy_with_ring_timeout_and_dnd() {
        let plan = plan_of(
            "[groups.a]\nmembers = [\"x\", \"y\", \"z\"]\nstrategy = \"hunt\"\nring = 10\n\
             [groups.b]\nmembers = [\"x\"]\nstrategy = \"round-robin\"\ntimeout = 40\nrespect-dnd = false\nrespect-forwarding = false\n\
             [groups.c]\nmembers = [\"x\", \"y\"]\nstrategy = \"longest-idle\"\n\
             [groups.d]\nmembers = [\"x\", \"y\"]\n\
             [[rule]]\nmatch = \"1\"\nactions = [ { dial = { group = \"a\" } } ]\n\
             [[rule]]\nmatch = \"2\"\nactions = [ { dial = { group = \"a\", timeout = 25 } } ]\n\
             [[rule]]\nmatch = \"3\"\nactions = [ { dial = { group = \"d\" } } ]\n",
        );
        let a = plan.group("a").cloned().unwrap_or_else(|| panic!("a"));
        assert_eq!(
            (a.strategy, a.ring_s, a.timeout_s, a.respect_dnd),
            (RingStrategy::Hunt, 10, 30, true),
            "hunt without a timeout gives each of the three members one turn"
        );
        let b = plan.group("b").cloned().unwrap_or_else(|| panic!("b"));
        assert_eq!(
            (
                b.strategy,
                b.ring_s,
                b.timeout_s,
                b.respect_dnd,
                b.respect_forwarding
            ),
            (RingStrategy::RoundRobin, 15, 40, false, false)
        );
        assert!(
            a.respect_forwarding,
            "forwarding is respected unless the group says not"
        );
        let c = plan.group("c").cloned().unwrap_or_else(|| panic!("c"));
        assert_eq!((c.strategy, c.timeout_s), (RingStrategy::LongestIdle, 30));
        let d = plan.group("d").cloned().unwrap_or_else(|| panic!("d"));
        assert_eq!((d.strategy, d.timeout_s), (RingStrategy::All, 30));
        // A dial without its own timeout rings for the group's; its own one wins.
        assert_eq!(dial_timeout(&plan, "1"), 30);
        assert_eq!(dial_timeout(&plan, "2"), 25);
        assert_eq!(dial_timeout(&plan, "3"), 30);
    }

    #[test]
    fn an_unknown_strategy_and_a_wrong_dnd_value_are_errors_with_their_line() {
        let errors = compile(
            &one("[groups.a]\nmembers = [\"x\"]\nstrategy = \"random\"\n".into()),
            &CheckContext::default(),
        )
        .err()
        .unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|d| d.line == 3 && d.message.contains("unknown ring strategy \"random\"")),
            "{errors:?}"
        );
        let errors = compile(
            &one("[groups.a]\nmembers = [\"x\"]\nrespect-dnd = \"yes\"\n".into()),
            &CheckContext::default(),
        )
        .err()
        .unwrap_or_default();
        assert!(errors.iter().any(|d| d.line == 3), "{errors:?}");
    }

    proptest! {
        #[test]
        fn compile_never_panics_on_arbitrary_text(s in "\\PC{0,300}") {
            let _ = compile(&one(s), &CheckContext::default());
        }

        #[test]
        fn compile_and_route_never_panic_on_arbitrary_values(
            m in "\\PC{0,12}",
            a in "\\PC{0,16}",
            h in "[0-9:,\\- ]{0,14}",
            to in "\\PC{0,12}",
        ) {
            let text = format!(
                "[[rule]]\nmatch = {m:?}\nwhen = {{ hours = {h:?} }}\nactions = [{{ conference = {a:?} }}, {{ goto = {a:?} }}]\n"
            );
            if let Ok(c) = compile(&one(text), &CheckContext::default()) {
                let call = crate::CallFacts { to, from: None, trunk: None, source_ip: None, at: jiff::Timestamp::UNIX_EPOCH };
                let _ = c.plan.explain(&call).to_string();
            }
        }
    }
}
