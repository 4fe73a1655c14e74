//! `dialplan explain` goes on where the plan stops: a call that rings one of our users
//! follows that user's settings as stored now (do not disturb, forwarding, follow-me) the
//! way the server would, so an admin sees who would ring, in which order, for how long.

use std::fmt::Write as _;

use dialplan::{Action, CallFacts, DialTarget, Plan, Route};
use store::{CallSettings, ForwardKind, Store};

/// Most forwardings one call follows (as the server does: more is a loop).
const MAX_DIVERSIONS: usize = 5;

/// What the users a route rings have set, indented under the plan's explanation; empty
/// when the route rings no user.
pub fn explain(plan: &Plan, route: &Route, facts: &CallFacts, store: &Store) -> String {
    let mut out = String::new();
    let mut walker = Walker {
        plan,
        facts,
        store,
        out: &mut out,
        through: Vec::new(),
    };
    walker.actions(&route.actions, 1);
    if out.is_empty() {
        return out;
    }
    format!("Users rung, with their settings as stored now:\n{out}")
}

struct Walker<'a> {
    plan: &'a Plan,
    facts: &'a CallFacts,
    store: &'a Store,
    out: &'a mut String,
    /// Users the call was forwarded by so far, to see a loop as the server does.
    through: Vec<String>,
}

impl Walker<'_> {
    fn line(&mut self, depth: usize, text: &str) {
        let _ = writeln!(self.out, "{}{text}", "  ".repeat(depth));
    }

    fn actions(&mut self, actions: &[Action], depth: usize) {
        for action in actions {
            match action {
                Action::Dial {
                    target: DialTarget::User(extension),
                    timeout_s,
                    fax: false,
                } => self.user(extension, *timeout_s, depth),
                Action::Forward {
                    target: DialTarget::User(extension),
                } => self.user(extension, 120, depth),
                _ => {}
            }
        }
    }

    /// User `extension`, rung for `ring_s` seconds unless their settings say otherwise.
    fn user(&mut self, extension: &str, ring_s: u32, depth: usize) {
        if self.through.iter().any(|u| u == extension) || self.through.len() >= MAX_DIVERSIONS {
            self.line(
                depth,
                &format!(
                    "{extension}: forwarding loop; the caller hears \"forwarding-loop\", then 482"
                ),
            );
            return;
        }
        let settings = match self.store.user_get(store::DEFAULT_DOMAIN, extension) {
            Ok(Some(user)) => user.call_settings,
            Ok(None) => {
                self.line(
                    depth,
                    &format!("{extension}: no such user; nothing rings (480)"),
                );
                return;
            }
            Err(err) => {
                self.line(
                    depth,
                    &format!("{extension}: settings unknown (store: {err})"),
                );
                return;
            }
        };
        if let Some(target) = &settings.forward_always {
            self.line(
                depth,
                &format!("{extension}: forwards every call to {target}; their phones do not ring"),
            );
            return self.divert(extension, target, depth + 1);
        }
        if settings.dnd {
            match &settings.forward_busy {
                Some(target) => {
                    self.line(
                        depth,
                        &format!("{extension}: do not disturb; busy forwarding to {target}"),
                    );
                    self.divert(extension, target, depth + 1);
                }
                None => self.line(
                    depth,
                    &format!(
                        "{extension}: do not disturb; nothing rings, the next action runs (busy, 486)"
                    ),
                ),
            }
            return;
        }
        self.ringing(extension, &settings, ring_s, depth);
        if let Some(target) = &settings.forward_busy {
            self.line(depth + 1, &format!("when busy: forwarded to {target}"));
            self.divert(extension, target, depth + 2);
        }
        if let Some(target) = &settings.forward_no_answer {
            self.line(
                depth + 1,
                &format!("when nobody answers: forwarded to {target}"),
            );
            self.divert(extension, target, depth + 2);
        }
    }

    fn ringing(&mut self, extension: &str, settings: &CallSettings, ring_s: u32, depth: usize) {
        if settings.follow_me.is_empty() {
            let ring_s = match settings.forward(ForwardKind::NoAnswer) {
                Some(_) => settings.no_answer_seconds,
                None => ring_s,
            };
            self.line(
                depth,
                &format!("{extension}: their registered phones ring for {ring_s} s"),
            );
            return;
        }
        self.line(depth, &format!("{extension}: follow-me, step by step:"));
        for (n, step) in settings.follow_me.iter().enumerate() {
            let targets: Vec<String> = step.targets.iter().map(ToString::to_string).collect();
            self.line(
                depth + 1,
                &format!(
                    "{}. {} ring at once for {} s",
                    n + 1,
                    targets.join(" and "),
                    step.seconds
                ),
            );
        }
    }

    /// The forwarding target `number`, routed as `user`'s own call.
    fn divert(&mut self, user: &str, number: &str, depth: usize) {
        let facts = CallFacts {
            to: number.to_owned(),
            from: Some(user.to_owned()),
            ..self.facts.clone()
        };
        let Some(route) = self.plan.route(&facts) else {
            self.line(
                depth,
                &format!("{number}: no rule takes it as {user}'s call; not forwarded"),
            );
            return;
        };
        self.line(
            depth,
            &format!(
                "{number} as {user}'s call: rule \"{}\" ({}:{})",
                route.rule_name, route.file, route.line
            ),
        );
        self.through.push(user.to_owned());
        self.actions(&route.actions, depth + 1);
        self.through.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let text = "[[rule]]\nname = \"staff\"\nmatch = \"_10X\"\nactions = [ { dial = \"${EXTEN}\" }, { hangup = \"unavailable\" } ]\n";
        let files = [dialplan::SourceFile {
            path: "test.toml".into(),
            text: text.into(),
        }];
        let ctx = dialplan::CheckContext::default();
        dialplan::compile(&files, &ctx).expect("plan").plan
    }

    fn store_with(users: &[&str]) -> Store {
        let store = Store::open_in_memory().expect("store");
        for extension in users {
            let user = store::NewUser::new(*extension, "Kollege", "geheim123", 1);
            store.user_create(&user).expect("create");
        }
        store
    }

    fn explained(store: &Store, to: &str) -> String {
        let plan = plan();
        let facts = CallFacts {
            to: to.into(),
            from: None,
            trunk: None,
            source_ip: None,
            at: jiff::Timestamp::UNIX_EPOCH,
        };
        let route = plan.route(&facts).expect("route");
        explain(&plan, &route, &facts, store)
    }

    #[test]
    fn a_forwarding_chain_names_each_user_rule_and_ends_at_a_loop() {
        let store = store_with(&["101", "102"]);
        store
            .user_set_forward(
                store::DEFAULT_DOMAIN,
                "101",
                ForwardKind::Always,
                Some("102"),
                None,
                2,
            )
            .expect("forward");
        store
            .user_set_forward(
                store::DEFAULT_DOMAIN,
                "102",
                ForwardKind::Always,
                Some("101"),
                None,
                2,
            )
            .expect("forward");
        let text = explained(&store, "101");
        assert!(text.contains("101: forwards every call to 102"), "{text}");
        assert!(
            text.contains("102 as 101's call: rule \"staff\" (test.toml:1)"),
            "{text}"
        );
        assert!(text.contains("101: forwarding loop"), "{text}");
    }

    #[test]
    fn do_not_disturb_and_no_answer_forwarding_show_what_rings_and_for_how_long() {
        let store = store_with(&["101", "102"]);
        store
            .user_set_dnd(store::DEFAULT_DOMAIN, "102", true, 2)
            .expect("dnd");
        store
            .user_set_forward(
                store::DEFAULT_DOMAIN,
                "101",
                ForwardKind::NoAnswer,
                Some("102"),
                Some(12),
                2,
            )
            .expect("forward");
        let text = explained(&store, "101");
        assert!(
            text.contains("101: their registered phones ring for 12 s"),
            "{text}"
        );
        assert!(
            text.contains("when nobody answers: forwarded to 102"),
            "{text}"
        );
        assert!(
            text.contains("102: do not disturb; nothing rings"),
            "{text}"
        );
        assert_eq!(
            explained(&store_with(&[]), "101").lines().count(),
            2,
            "no such user"
        );
    }
}
