//! A compiled plan: rules in order, and routing/explaining a call against them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::action::{Action, Vars, write_actions};
use crate::holidays::Calendars;
use crate::pattern::NumberPattern;
use crate::when::{Window, weekday_name};

/// Gotos followed for one call before giving up (the call then gets 482 Loop Detected, RFC 3261 §21.4.20).
pub const MAX_GOTO_HOPS: u32 = 16;
/// SIP 482 Loop Detected: what a call gets when gotos go round too often.
const LOOP_DETECTED: u16 = 482;
/// SIP 404 Not Found: what a call gets when a goto leads nowhere.
const NOT_FOUND: u16 = 404;

/// What the server knows about a call when it routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    /// Dialled number (Request-URI user part).
    pub to: String,
    /// Caller number, if known.
    pub from: Option<String>,
    /// Inbound trunk the call came in on; `None` for internal callers.
    pub trunk: Option<String>,
    /// Address the call came from.
    pub source_ip: Option<IpAddr>,
    /// When the call arrived.
    pub at: Timestamp,
}

/// The outcome of routing: which rule matched and the actions to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Name of the rule that matched the dialled number.
    pub rule_name: String,
    /// File of that rule.
    pub file: String,
    /// Line of that rule.
    pub line: usize,
    /// Actions in order, captures substituted, top-level gotos already followed.
    pub actions: Vec<Action>,
    /// Gotos followed to build `actions`.
    pub hops: u32,
    /// Every rule on the way is marked `public = true`: callers who proved no identity (not
    /// registered, no password, not from a trusted network) may take this route.
    pub public: bool,
}

/// How a ring group rings its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingStrategy {
    /// All members at once; the first to answer gets the call.
    All,
    /// One after another, in the listed order.
    Hunt,
    /// One after another, starting after the member who answered the group's last call
    /// (the server keeps that in memory per group).
    RoundRobin,
    /// One after another, the member whose last call ended longest ago first.
    LongestIdle,
}

impl RingStrategy {
    /// The name written in `strategy = "..."`.
    pub fn name(self) -> &'static str {
        match self {
            RingStrategy::All => "all",
            RingStrategy::Hunt => "hunt",
            RingStrategy::RoundRobin => "round-robin",
            RingStrategy::LongestIdle => "longest-idle",
        }
    }

    /// Whether members ring one at a time (each for the group's `ring`), not all at once.
    pub fn one_at_a_time(self) -> bool {
        self != RingStrategy::All
    }
}

/// A ring group from `[groups.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingGroup {
    /// User names in order.
    pub members: Vec<String>,
    /// How they ring.
    pub strategy: RingStrategy,
    /// Seconds each member rings before the next one (one-at-a-time strategies).
    pub ring_s: u32,
    /// Seconds the group rings in all before the rule's next action runs (a `dial` with its
    /// own `timeout` overrides it).
    pub timeout_s: u32,
    /// Members in do not disturb are skipped (`respect-dnd`, default true).
    pub respect_dnd: bool,
    /// Members' own forwarding and follow-me apply when it is their turn, as when they are
    /// dialled (`respect-forwarding`, default true); false: their phones ring directly.
    pub respect_forwarding: bool,
}

impl RingGroup {
    /// The members in the order the strategy rings them when all are free, with when each
    /// starts and stops ringing (seconds after the group starts) within `total_s`, one
    /// after another again from the first while time is left; members the time does not
    /// reach are left out. Round-robin and longest-idle decide their
    /// order at call time: this is the listed order.
    pub fn schedule(&self, total_s: u32) -> Vec<(String, u32, u32)> {
        if !self.strategy.one_at_a_time() {
            return self
                .members
                .iter()
                .map(|m| (m.clone(), 0, total_s))
                .collect();
        }
        // Again from the first while time is left, as the call does; bounded for display.
        const MAX_TURNS: usize = 50;
        let mut out = Vec::new();
        let mut start = 0u32;
        for m in self.members.iter().cycle().take(MAX_TURNS) {
            if start >= total_s || self.ring_s == 0 {
                break;
            }
            let end = start.saturating_add(self.ring_s).min(total_s);
            out.push((m.clone(), start, end));
            start = end;
        }
        out
    }

    /// Writes how the group rings within `total_s`, for `explain`.
    fn describe(&self, f: &mut fmt::Formatter<'_>, name: &str, total_s: u32) -> fmt::Result {
        let how = match self.strategy {
            RingStrategy::All => format!("all members ring at once for {total_s} s"),
            RingStrategy::Hunt => format!(
                "hunt: one after another in the listed order, {} s each, at most {total_s} s in all",
                self.ring_s
            ),
            RingStrategy::RoundRobin => format!(
                "round-robin: one after another, {} s each, at most {total_s} s in all, starting after the member who answered the group's last call (listed order shown)",
                self.ring_s
            ),
            RingStrategy::LongestIdle => format!(
                "longest-idle: one after another, {} s each, at most {total_s} s in all, the member whose last call ended longest ago first (listed order shown)",
                self.ring_s
            ),
        };
        writeln!(f, "Ring group \"{name}\": {how}")?;
        let schedule = self.schedule(total_s);
        for (i, (member, from, to)) in schedule.iter().enumerate() {
            writeln!(f, "  {}. {member}: rings {from}-{to} s", i + 1)?;
        }
        for member in self.members.iter().skip(schedule.len()) {
            writeln!(
                f,
                "     {member}: rings only if members before are skipped (time is up at {total_s} s)"
            )?;
        }
        let dnd = if self.respect_dnd {
            ", members in do not disturb"
        } else {
            " (do not disturb is ignored: respect-dnd = false)"
        };
        writeln!(
            f,
            "  Decided at call time: logged-out members, busy members (in a call, or their phone answers busy){dnd} are skipped, the next one rings at once."
        )?;
        let forwarding = match (self.respect_forwarding, self.strategy.one_at_a_time()) {
            (true, true) => {
                "a member's own forwarding and follow-me apply in their turn (respect-forwarding = true)"
            }
            (true, false) => {
                "members' phones ring directly: forwarding applies to one-at-a-time strategies only"
            }
            (false, _) => "members' phones ring directly (respect-forwarding = false)",
        };
        writeln!(f, "  Forwarding: {forwarding}.")
    }
}

/// Source network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub(crate) addr: IpAddr,
    pub(crate) prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() { max } else { p.parse().ok()? };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    pub(crate) fn within(&self, other: &Cidr) -> bool {
        self.prefix >= other.prefix && other.contains(self.addr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) patterns: Vec<NumberPattern>,
    pub(crate) from: Option<Vec<NumberPattern>>,
    pub(crate) trunks: Option<Vec<String>>,
    pub(crate) sources: Option<Vec<Cidr>>,
    pub(crate) when: Option<Vec<Window>>,
    /// Callers who proved no identity may use it (`public = true`).
    pub(crate) public: bool,
    pub(crate) actions: Vec<Action>,
}

impl Rule {
    /// True when only the number decides whether this rule matches.
    pub(crate) fn unconditional(&self) -> bool {
        self.from.is_none()
            && self.trunks.is_none()
            && self.sources.is_none()
            && self.when.is_none()
    }

    fn loc(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// A checked dialplan, ready to route calls; cheap to share behind an `ArcSwap`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) rules: Vec<Rule>,
    pub(crate) tz: TimeZone,
    pub(crate) tz_name: String,
    pub(crate) language: String,
    pub(crate) calendars: Calendars,
    pub(crate) groups: BTreeMap<String, RingGroup>,
    /// `[pickup-groups]`: name → extensions whose ringing calls the others may pick up.
    pub(crate) pickup_groups: BTreeMap<String, Vec<String>>,
}

/// Why a rule did or did not match, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The rule matched; the text says on what.
    Matched(String),
    /// The rule did not match; the text says why.
    Skipped(String),
}

/// One rule tried while routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCheck {
    /// Rule name.
    pub rule_name: String,
    /// File of the rule.
    pub file: String,
    /// Line of the rule.
    pub line: usize,
    /// Outcome.
    pub verdict: Verdict,
}

/// Routing of one number: the rules tried in order until one matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainPass {
    /// The number routed (the dialled one, then goto targets).
    pub number: String,
    /// Rules tried.
    pub checks: Vec<RuleCheck>,
}

/// What `explain` found: the call, every rule tried and the resulting route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The call in words (numbers, local time, time zone).
    pub call: String,
    /// One pass per number routed.
    pub passes: Vec<ExplainPass>,
    /// The route, as `Plan::route` returns it.
    pub route: Option<Route>,
    /// The ring groups the route dials, with the seconds each rings in all.
    pub groups: Vec<(String, RingGroup, u32)>,
    /// For a route with a group pickup: the extensions whose ringing calls the caller may
    /// take (`[pickup-groups]`).
    pub pickup_partners: Option<Vec<String>>,
}

/// A local time given to `Plan::parse_local_time` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not in the form "2026-12-24 19:00".
    #[error("\"{0}\" is not a date and time like \"2026-12-24 19:00\"")]
    Unparsable(String),
    /// The time does not exist or is ambiguous in the plan's time zone.
    #[error("\"{0}\" does not exist in time zone {1}")]
    NotInZone(String, String),
}

impl Plan {
    /// The actions for a call, or `None` when no rule matches (the server answers 404).
    pub fn route(&self, call: &CallFacts) -> Option<Route> {
        self.route_number(call, &call.to, 0, None)
    }

    /// Routes `number` reached by a `goto` inside a menu; `hops_so_far` counts gotos already taken in this call.
    pub fn route_goto(&self, call: &CallFacts, number: &str, hops_so_far: u32) -> Option<Route> {
        self.route_number(call, number, hops_so_far.saturating_add(1), None)
    }

    /// Like `route`, and also says which rules were tried and why they did not match.
    pub fn explain(&self, call: &CallFacts) -> Explanation {
        let mut passes = Vec::new();
        let route = self.route_number(call, &call.to, 0, Some(&mut passes));
        let local = self.local(call.at);
        let or_dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let call_text = format!(
            "to {}, from {}, trunk {}, source {}, at {} {:02}:{:02} ({})",
            call.to,
            or_dash(&call.from),
            or_dash(&call.trunk),
            call.source_ip
                .map_or_else(|| "-".into(), |ip| ip.to_string()),
            weekday_name(local.date()),
            local.hour(),
            local.minute(),
            self.tz_name
        );
        let mut groups = Vec::new();
        if let Some(r) = &route {
            self.groups_dialled(&r.actions, &mut groups);
        }
        let group_pickup = route.as_ref().is_some_and(|r| {
            r.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Pickup {
                        target: crate::action::PickupTarget::Group
                    }
                )
            })
        });
        let pickup_partners = group_pickup.then(|| {
            call.from
                .as_deref()
                .map(|from| self.pickup_partners(from))
                .unwrap_or_default()
        });
        Explanation {
            call: call_text,
            passes,
            route,
            groups,
            pickup_partners,
        }
    }

    /// Language of prompts (`settings.language`, default "de").
    pub fn language(&self) -> &str {
        &self.language
    }

    /// Time zone the time windows are read in (default Europe/Berlin).
    pub fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    /// The pickup groups, by name.
    pub fn pickup_groups(&self) -> &BTreeMap<String, Vec<String>> {
        &self.pickup_groups
    }

    /// The extensions whose ringing calls `extension` may pick up with a group pickup: the
    /// other members of every pickup group it is in, in the order the groups list them.
    pub fn pickup_partners(&self, extension: &str) -> Vec<String> {
        let mut partners: Vec<String> = Vec::new();
        for members in self.pickup_groups.values() {
            if members.iter().any(|m| m == extension) {
                for m in members {
                    if m != extension && !partners.contains(m) {
                        partners.push(m.clone());
                    }
                }
            }
        }
        partners
    }

    /// A ring group by name.
    pub fn group(&self, name: &str) -> Option<&RingGroup> {
        self.groups.get(name)
    }

    /// Every ring group by name.
    pub fn groups(&self) -> &BTreeMap<String, RingGroup> {
        &self.groups
    }

    /// The ring groups `actions` dial (menu branches too), each with its time in all.
    fn groups_dialled(&self, actions: &[Action], out: &mut Vec<(String, RingGroup, u32)>) {
        for a in actions {
            match a {
                Action::Dial {
                    target: crate::DialTarget::Group(name),
                    timeout_s,
                    ..
                } => {
                    if let Some(g) = self.groups.get(name)
                        && !out.iter().any(|(n, _, t)| n == name && t == timeout_s)
                    {
                        out.push((name.clone(), g.clone(), *timeout_s));
                    }
                }
                Action::Menu { options, .. } => {
                    for branch in options.values() {
                        self.groups_dialled(branch, out);
                    }
                }
                _ => {}
            }
        }
    }

    /// Holidays of a calendar (built-in or from the plan) in one year, with their names.
    pub fn holidays_in_year(&self, calendar: &str, year: i16) -> Vec<(jiff::civil::Date, String)> {
        self.calendars.dates_in_year(calendar, year)
    }

    /// Reads "2026-12-24 19:00" as a local time in the plan's zone (for `dialplan explain --at`).
    pub fn parse_local_time(&self, s: &str) -> Result<Timestamp, TimeError> {
        let dt: DateTime = s
            .trim()
            .replacen(' ', "T", 1)
            .parse()
            .map_err(|_| TimeError::Unparsable(s.to_string()))?;
        self.tz
            .to_ambiguous_zoned(dt)
            // A time in the autumn fold or spring gap is read as the clocks' earlier offset (RFC 5545 style).
            .compatible()
            .map(|z| z.timestamp())
            .map_err(|_| TimeError::NotInZone(s.to_string(), self.tz_name.clone()))
    }

    fn local(&self, at: Timestamp) -> DateTime {
        self.tz.to_datetime(at)
    }

    fn route_number(
        &self,
        call: &CallFacts,
        number: &str,
        mut hops: u32,
        mut trace: Option<&mut Vec<ExplainPass>>,
    ) -> Option<Route> {
        let local = self.local(call.at);
        let mut number = number.to_string();
        let mut first: Option<&Rule> = None;
        // A public rule's goto into a staff-only rule must not open it to everyone.
        let mut public = true;
        let mut actions = Vec::new();
        loop {
            if hops > MAX_GOTO_HOPS {
                actions.push(Action::Hangup {
                    cause: LOOP_DETECTED,
                });
                break;
            }
            let mut checks = Vec::new();
            let found =
                self.first_match(call, &number, local, trace.is_some().then_some(&mut checks));
            if let Some(t) = trace.as_deref_mut() {
                t.push(ExplainPass {
                    number: number.clone(),
                    checks,
                });
            }
            let Some((rule, groups)) = found else {
                first?;
                actions.push(Action::Hangup { cause: NOT_FOUND });
                break;
            };
            first.get_or_insert(rule);
            public &= rule.public;
            let vars = Vars {
                exten: &number,
                from: call.from.as_deref().unwrap_or(""),
                trunk: call.trunk.as_deref().unwrap_or(""),
                groups: &groups,
            };
            let mut next = None;
            for a in &rule.actions {
                match a.expanded(&vars) {
                    Action::Goto { number } => {
                        next = Some(number);
                        break;
                    }
                    other => actions.push(other),
                }
            }
            match next {
                Some(n) => {
                    number = n;
                    hops += 1;
                }
                None => break,
            }
        }
        // Without a rule, the goto limit was already used up when `route_goto` was called.
        Some(Route {
            rule_name: first.map_or_else(|| "goto limit".to_string(), |r| r.name.clone()),
            file: first.map_or_else(String::new, |r| r.file.clone()),
            line: first.map_or(0, |r| r.line),
            actions,
            hops,
            public: public && first.is_some(),
        })
    }

    fn first_match(
        &self,
        call: &CallFacts,
        number: &str,
        local: DateTime,
        mut checks: Option<&mut Vec<RuleCheck>>,
    ) -> Option<(&Rule, Vec<String>)> {
        for rule in &self.rules {
            let outcome = self.check_rule(rule, call, number, local);
            if let Some(c) = checks.as_deref_mut() {
                c.push(RuleCheck {
                    rule_name: rule.name.clone(),
                    file: rule.file.clone(),
                    line: rule.line,
                    verdict: match &outcome {
                        Ok((_, why)) => Verdict::Matched(why.clone()),
                        Err(why) => Verdict::Skipped(why.clone()),
                    },
                });
            }
            if let Ok((groups, _)) = outcome {
                return Some((rule, groups));
            }
        }
        None
    }

    /// Ok(regex groups, why it matched) or Err(why not).
    fn check_rule(
        &self,
        rule: &Rule,
        call: &CallFacts,
        number: &str,
        local: DateTime,
    ) -> Result<(Vec<String>, String), String> {
        let quoted = |ps: &[NumberPattern]| {
            ps.iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some((groups, pat)) = rule
            .patterns
            .iter()
            .find_map(|p| p.matches(number).map(|g| (g, p)))
        else {
            let any = if rule.patterns.len() > 1 {
                "any of "
            } else {
                ""
            };
            return Err(format!(
                "{number} does not match {any}{}",
                quoted(&rule.patterns)
            ));
        };
        let mut why = vec![format!("{number} matches \"{pat}\"")];
        if let Some(from) = &rule.from {
            match call.from.as_deref() {
                None => return Err(format!("caller unknown, rule needs from {}", quoted(from))),
                Some(f) => match from.iter().find(|p| p.matches(f).is_some()) {
                    Some(p) => why.push(format!("caller {f} matches \"{p}\"")),
                    None => return Err(format!("caller {f} does not match from {}", quoted(from))),
                },
            }
        }
        if let Some(trunks) = &rule.trunks {
            match call.trunk.as_deref() {
                Some(t) if trunks.iter().any(|x| x == t) => why.push(format!("trunk {t}")),
                Some(t) => {
                    return Err(format!(
                        "came in on trunk {t}, rule needs trunk {}",
                        trunks.join(", ")
                    ));
                }
                None => {
                    return Err(format!(
                        "came in on no trunk, rule needs trunk {}",
                        trunks.join(", ")
                    ));
                }
            }
        }
        if let Some(sources) = &rule.sources {
            let list = || {
                sources
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match call.source_ip {
                Some(ip) if sources.iter().any(|c| c.contains(ip)) => {
                    why.push(format!("source {ip} in {}", list()))
                }
                Some(ip) => return Err(format!("source {ip} is not in {}", list())),
                None => return Err(format!("source address unknown, rule needs {}", list())),
            }
        }
        if let Some(windows) = &rule.when {
            let mut reasons = Vec::new();
            let mut open = None;
            for w in windows {
                match w.check(local, &self.calendars) {
                    Ok(()) => {
                        open = Some(w);
                        break;
                    }
                    Err(e) => reasons.push(e),
                }
            }
            match open {
                Some(w) => why.push(format!("time in {}", w.text)),
                None => {
                    return Err(format!(
                        "{} {:02}:{:02}: {}",
                        weekday_name(local.date()),
                        local.hour(),
                        local.minute(),
                        reasons.join("; ")
                    ));
                }
            }
        }
        Ok((groups, why.join(", ")))
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Call {}", self.call)?;
        for (i, pass) in self.passes.iter().enumerate() {
            if i == 0 {
                writeln!(f, "Routing {}:", pass.number)?;
            } else {
                writeln!(f, "Routing {} (goto):", pass.number)?;
            }
            for c in &pass.checks {
                let (tag, why) = match &c.verdict {
                    Verdict::Matched(w) => ("MATCH", w),
                    Verdict::Skipped(w) => ("skip ", w),
                };
                writeln!(
                    f,
                    "  {tag} {}:{} \"{}\": {why}",
                    c.file, c.line, c.rule_name
                )?;
            }
            if pass
                .checks
                .iter()
                .all(|c| matches!(c.verdict, Verdict::Skipped(_)))
            {
                writeln!(f, "  no rule matches {}", pass.number)?;
            }
        }
        match &self.route {
            None => writeln!(
                f,
                "Result: no rule matched, the server answers 404 Not Found (407, a password challenge, to callers who proved no identity)."
            ),
            Some(r) => {
                writeln!(
                    f,
                    "Result: rule \"{}\" ({}:{}), {}",
                    r.rule_name,
                    r.file,
                    r.line,
                    audience(r.public)
                )?;
                writeln!(f, "Actions:")?;
                write_actions(f, &r.actions, 2)?;
                for (name, group, total_s) in &self.groups {
                    group.describe(f, name, *total_s)?;
                }
                match self.pickup_partners.as_deref() {
                    None => Ok(()),
                    Some([]) => writeln!(
                        f,
                        "Pickup: the caller is in no [pickup-groups] group, so a group pickup finds nothing."
                    ),
                    Some(partners) => writeln!(
                        f,
                        "Pickup: takes the oldest call ringing at {} (the caller's [pickup-groups]).",
                        partners.join(", ")
                    ),
                }
            }
        }
    }
}

/// Who may take a route, in the words `explain` prints.
fn audience(public: bool) -> &'static str {
    if public {
        "public: anyone may call it"
    } else {
        "for registered, authenticated or trusted callers only"
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rule \"{}\" ({}:{}), {}",
            self.rule_name,
            self.file,
            self.line,
            audience(self.public)
        )?;
        write_actions(f, &self.actions, 2)
    }
}

impl Rule {
    /// "file:line \"name\"", for diagnostics.
    pub(crate) fn describe(&self) -> String {
        format!("rule \"{}\" at {}", self.name, self.loc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(strategy: RingStrategy, ring_s: u32) -> RingGroup {
        RingGroup {
            members: vec!["anna".into(), "bernd".into(), "carla".into()],
            strategy,
            ring_s,
            timeout_s: 60,
            respect_dnd: true,
            respect_forwarding: true,
        }
    }

    #[test]
    fn a_hunt_schedule_gives_each_member_its_ring_time_until_the_total_runs_out() {
        let schedule = group(RingStrategy::Hunt, 15).schedule(40);
        assert_eq!(
            schedule,
            vec![
                ("anna".to_string(), 0, 15),
                ("bernd".to_string(), 15, 30),
                ("carla".to_string(), 30, 40),
            ]
        );
        // The time is up before the third member's turn.
        assert_eq!(group(RingStrategy::RoundRobin, 20).schedule(40).len(), 2);
        // Time left after everyone's turn: from the first again.
        let again = group(RingStrategy::Hunt, 10).schedule(45);
        assert_eq!(again.len(), 5);
        assert_eq!(again[3], ("anna".to_string(), 30, 40));
        assert_eq!(again[4], ("bernd".to_string(), 40, 45));
        // Ring-all rings everyone for the whole time.
        assert!(
            group(RingStrategy::All, 15)
                .schedule(40)
                .iter()
                .all(|(_, from, to)| (*from, *to) == (0, 40))
        );
    }

    #[test]
    fn cidr_contains_and_nests() {
        let net = Cidr::parse("10.8.0.0/24").unwrap_or_else(|| panic!("parse"));
        assert!(net.contains("10.8.0.77".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(!net.contains(IpAddr::from([10, 8, 1, 1])));
        // IPv4-mapped IPv6 addresses (dual-stack sockets) count as IPv4.
        assert!(
            net.contains(
                "::ffff:10.8.0.5"
                    .parse()
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
            )
        );
        let host = Cidr::parse("10.8.0.5").unwrap_or_else(|| panic!("parse"));
        assert!(host.within(&net));
        assert!(!net.within(&host));
        assert!(Cidr::parse("10.8.0.0/33").is_none());
        assert!(Cidr::parse("0.0.0.0/0").is_some_and(|c| c.contains(IpAddr::from([1, 2, 3, 4]))));
    }
}
