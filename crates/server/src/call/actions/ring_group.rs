//! Ring groups (`dial = { group = ... }`): which members ring in which order, each for how
//! long, who is skipped (logged out, busy, do not disturb); and the `group_login` action that
//! lets a member log in and out from their phone.
//!
//! The order is decided here from what call control reports of the members when the call
//! reaches the group, so every strategy is a unit test without phones. When nobody answers,
//! the `dial` ends like any other and the rule's next action runs (the fallback).

use std::time::{Duration, Instant};

use dialplan::{DialTarget, GroupLoginMode, RingStrategy};

use super::dial::Rung;
use crate::call::logic::{CallLogic, GroupTurn, Stop};
use crate::call::{GroupFacts, GroupLoginRefusal, MemberFacts, Question, Reply, SipAction};
use crate::ids::LegId;

/// A round of a one-at-a-time group shorter than this rang nobody for long (they all refused
/// or have no phone): it is not repeated.
const MIN_ROUND: Duration = Duration::from_secs(1);

/// How each member's turn in a one-at-a-time group rings.
struct Turns {
    /// The group's name.
    group: String,
    /// Seconds per member.
    ring_s: u32,
    /// When the group's time is up.
    until: Instant,
    /// A fax call.
    fax: bool,
    /// Members' own forwarding and follow-me apply.
    forwarding: bool,
    /// A member's do not disturb holds within their forwarding.
    mind_dnd: bool,
}

/// Why a member does not ring this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// Logged out of the group.
    LoggedOut,
    /// In a call through the server.
    Busy,
    /// Do not disturb is on (and the group respects it).
    DoNotDisturb,
}

impl Skip {
    fn words(self) -> &'static str {
        match self {
            Skip::LoggedOut => "logged out",
            Skip::Busy => "busy",
            Skip::DoNotDisturb => "do not disturb",
        }
    }
}

/// The members to ring, in order, and those skipped with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RingOrder {
    pub(crate) ring: Vec<String>,
    pub(crate) skipped: Vec<(String, Skip)>,
}

/// The order `facts`' strategy rings the members in, without those who cannot take a call.
pub(crate) fn ring_order(facts: &GroupFacts) -> RingOrder {
    let members = &facts.members;
    let mut ordered: Vec<&MemberFacts> = members.iter().collect();
    match facts.group.strategy {
        RingStrategy::All | RingStrategy::Hunt => {}
        RingStrategy::RoundRobin => {
            // Start after the one who answered last; a member no longer in the group (or no
            // call answered yet since the server started) starts the list from the top.
            if let Some(last) = facts.last_answered.as_deref()
                && let Some(at) = members.iter().position(|m| m.extension == last)
            {
                ordered.rotate_left(at + 1);
            }
        }
        RingStrategy::LongestIdle => {
            // No call since the server started is the longest idle of all; a stable sort
            // keeps the listed order among equals.
            ordered.sort_by_key(|m| m.last_call_ended.map_or((0, None), |at| (1, Some(at))));
        }
    }
    let mut order = RingOrder {
        ring: Vec::new(),
        skipped: Vec::new(),
    };
    for m in ordered {
        let skip = if m.logged_out {
            Some(Skip::LoggedOut)
        } else if m.busy {
            Some(Skip::Busy)
        } else if m.dnd && facts.group.respect_dnd {
            Some(Skip::DoNotDisturb)
        } else {
            None
        };
        match skip {
            Some(why) => order.skipped.push((m.extension.clone(), why)),
            None => order.ring.push(m.extension.clone()),
        }
    }
    order
}

impl CallLogic {
    /// Rings ring group `name` for at most `timeout_s` seconds in all (`None`: the group's
    /// own `timeout`): the member who answered, connected, or why nobody did (the rule's
    /// next action runs then: the fallback).
    pub(super) async fn dial_group(
        &mut self,
        name: &str,
        timeout_s: Option<u32>,
        fax: bool,
    ) -> Result<Rung, Stop> {
        let started = self.io.now();
        // Which members are logged out is in the store; when it cannot say, everyone rings:
        // a caller reaching somebody matters more than a logout.
        let logged_out = match self
            .io
            .ask(Question::GroupLoggedOut(name.to_string()))
            .await
        {
            Reply::Members(Ok(members)) => members,
            Reply::Members(Err(err)) => {
                tracing::error!(group = %name, "ring group: logins unknown, every member rings: {err}");
                Vec::new()
            }
            _ => Vec::new(),
        };
        let facts = match self
            .io
            .ask(Question::RingGroup {
                group: name.to_string(),
                logged_out,
            })
            .await
        {
            Reply::RingGroup(Some(facts)) => facts,
            _ => {
                // The plan was reloaded without the group since the call was routed.
                tracing::warn!(group = %name, "ring group not in the plan in force; next action");
                return Ok(Rung::Unanswered(480));
            }
        };
        let timeout_s = timeout_s.unwrap_or(facts.group.timeout_s);
        let until = started + Duration::from_secs(u64::from(timeout_s));
        let order = ring_order(&facts);
        for (member, why) in &order.skipped {
            tracing::info!(group = %name, %member, reason = why.words(), "ring group: member skipped");
        }
        tracing::info!(group = %name, strategy = facts.group.strategy.name(), members = ?order.ring, timeout_s, "ring group: ringing");
        let mut turn_of = None;
        let rung = if order.ring.is_empty() {
            // Everyone skipped: busy when anyone was busy or in do not disturb.
            let busy = order.skipped.iter().any(|(_, why)| *why != Skip::LoggedOut);
            Rung::Unanswered(if busy { 486 } else { 480 })
        } else if facts.group.strategy.one_at_a_time() {
            let turns = Turns {
                group: name.to_string(),
                ring_s: facts.group.ring_s,
                until,
                fax,
                // A member's forwarding (and follow-me) as when they are dialled; a fax
                // call goes to the fax line itself, as a `dial` of the user does.
                forwarding: facts.group.respect_forwarding && !fax,
                mind_dnd: facts.group.respect_dnd,
            };
            self.ring_one_by_one(&order.ring, &turns, &mut turn_of)
                .await?
        } else {
            let place = Question::PlaceMembers {
                members: order.ring.clone(),
                fax,
                caller_id: self.caller_id.clone(),
            };
            let target = DialTarget::Group(name.to_string());
            self.ring_until(place, &target, until).await?
        };
        match rung {
            Rung::Answered(callee) => {
                self.io
                    .ask(Question::GroupAnswered {
                        group: name.to_string(),
                        leg: callee,
                        member: turn_of,
                    })
                    .await;
            }
            Rung::Unanswered(status) => {
                tracing::info!(group = %name, status, "ring group: nobody answered");
            }
        }
        Ok(rung)
    }

    /// Rings `members` one after another, each for its turn, and again from the first
    /// while the group's time lasts; a member who refuses (busy, 486) or has no phone
    /// registered hands on to the next at once. `turn_of` is the member whose turn it was
    /// last.
    async fn ring_one_by_one(
        &mut self,
        members: &[String],
        turns: &Turns,
        turn_of: &mut Option<String>,
    ) -> Result<Rung, Stop> {
        loop {
            let round_start = self.io.now();
            let status = match self.ring_round(members, turns, turn_of).await? {
                Rung::Answered(leg) => return Ok(Rung::Answered(leg)),
                Rung::Unanswered(status) => status,
            };
            // A round in which every member refused at once would only repeat itself.
            let now = self.io.now();
            if now >= turns.until || now.duration_since(round_start) < MIN_ROUND {
                return Ok(Rung::Unanswered(status));
            }
        }
    }

    /// One turn of every member, as [`CallLogic::ring_one_by_one`] says; the status of the
    /// last one rung when nobody answered.
    async fn ring_round(
        &mut self,
        members: &[String],
        turns: &Turns,
        turn_of: &mut Option<String>,
    ) -> Result<Rung, Stop> {
        let mut status = 480;
        for member in members {
            let now = self.io.now();
            if now >= turns.until {
                break;
            }
            *turn_of = Some(member.clone());
            let member_until =
                (now + Duration::from_secs(u64::from(turns.ring_s))).min(turns.until);
            tracing::info!(%member, "ring group: ringing member");
            let rung = if turns.forwarding {
                // Whole seconds, rounded up, so a last turn cut short still rings.
                let turn_s =
                    u32::try_from(member_until.duration_since(now).as_millis().div_ceil(1000))
                        .unwrap_or(turns.ring_s)
                        .max(1);
                // Each turn follows the member's forwarding afresh: a user met in an
                // earlier turn is no loop.
                let through = self.diverted_through.len();
                let turn = GroupTurn {
                    group: turns.group.clone(),
                    member: member.clone(),
                };
                let outer = self.group_turn.replace(turn);
                let reached = self
                    .reach_user_minding_dnd(member, turn_s, turns.mind_dnd)
                    .await;
                self.group_turn = outer;
                self.diverted_through.truncate(through);
                reached?
            } else {
                let target = DialTarget::User(member.clone());
                let place = Question::Place {
                    target: target.clone(),
                    fax: turns.fax,
                    caller_id: self.caller_id.clone(),
                };
                self.ring_until(place, &target, member_until).await?
            };
            match rung {
                Rung::Answered(leg) => return Ok(Rung::Answered(leg)),
                Rung::Unanswered(member_status) => status = member_status,
            }
        }
        Ok(Rung::Unanswered(status))
    }

    /// A ring group member's forwarding (run as a route of its own) was answered: the group
    /// counts it as the member's answer, since that route connects the call itself.
    pub(super) async fn note_group_turn_answered(&mut self, callee: LegId) {
        if let Some(turn) = self.group_turn.take() {
            self.io
                .ask(Question::GroupAnswered {
                    group: turn.group,
                    leg: callee,
                    member: Some(turn.member),
                })
                .await;
        }
    }

    /// The `group_login` action: the calling user logs in to or out of ring groups, hears
    /// which (German or English prompt), and is hung up.
    pub(super) async fn group_login(
        &mut self,
        group: &Option<String>,
        mode: GroupLoginMode,
    ) -> Result<(), Stop> {
        let reply = self
            .io
            .ask(Question::GroupLogin {
                group: group.clone(),
                mode,
            })
            .await;
        let (prompt, reason) = match reply {
            Reply::GroupLogin(Ok(true)) => ("group-logged-in", "ring group login: logged in"),
            Reply::GroupLogin(Ok(false)) => ("group-logged-out", "ring group login: logged out"),
            Reply::GroupLogin(Err(GroupLoginRefusal::NotAMember)) => {
                ("group-not-member", "ring group login: not a member")
            }
            Reply::GroupLogin(Err(GroupLoginRefusal::NotAUser)) => {
                // Only a user can be a member: anyone else learns nothing about the groups.
                tracing::info!("ring group login by a caller who is no user; 403");
                self.sip(SipAction::Refuse {
                    status: 403,
                    reason: "ring group login: caller is not a user",
                });
                return Err(Stop::EndedByUs("ring group login: caller is not a user"));
            }
            Reply::GroupLogin(Err(GroupLoginRefusal::Store(err))) => {
                tracing::error!("ring group login not stored: {err}");
                ("service-unavailable", "ring group login: store unavailable")
            }
            _ => ("service-unavailable", "ring group login: no answer"),
        };
        tracing::info!(prompt, "{reason}");
        self.answer();
        self.play(prompt).await?;
        self.sip(SipAction::Hangup);
        Err(Stop::EndedByUs(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialplan::RingGroup;

    fn member(extension: &str) -> MemberFacts {
        MemberFacts::free(extension)
    }

    fn facts(strategy: RingStrategy, members: Vec<MemberFacts>) -> GroupFacts {
        GroupFacts {
            group: RingGroup {
                members: members.iter().map(|m| m.extension.clone()).collect(),
                strategy,
                ring_s: 15,
                timeout_s: 60,
                respect_dnd: true,
                respect_forwarding: true,
            },
            members,
            last_answered: None,
        }
    }

    #[test]
    fn hunt_skips_the_dnd_and_the_busy_member_and_keeps_the_listed_order() {
        let order = ring_order(&facts(
            RingStrategy::Hunt,
            vec![
                MemberFacts {
                    dnd: true,
                    ..member("101")
                },
                MemberFacts {
                    busy: true,
                    ..member("102")
                },
                member("103"),
                member("104"),
            ],
        ));
        assert_eq!(order.ring, ["103", "104"]);
        assert_eq!(
            order.skipped,
            [
                ("101".to_string(), Skip::DoNotDisturb),
                ("102".to_string(), Skip::Busy)
            ]
        );
    }

    #[test]
    fn a_logged_out_member_never_rings_and_dnd_is_ignored_when_the_group_says_so() {
        let mut group = facts(
            RingStrategy::All,
            vec![
                MemberFacts {
                    logged_out: true,
                    dnd: true,
                    ..member("101")
                },
                MemberFacts {
                    dnd: true,
                    ..member("102")
                },
            ],
        );
        group.group.respect_dnd = false;
        let order = ring_order(&group);
        assert_eq!(order.ring, ["102"]);
        assert_eq!(order.skipped, [("101".to_string(), Skip::LoggedOut)]);
    }

    #[test]
    fn round_robin_starts_after_the_member_who_answered_last() {
        let members = || vec![member("101"), member("102"), member("103")];
        let mut group = facts(RingStrategy::RoundRobin, members());
        assert_eq!(ring_order(&group).ring, ["101", "102", "103"]);
        group.last_answered = Some("102".into());
        assert_eq!(ring_order(&group).ring, ["103", "101", "102"]);
        group.last_answered = Some("103".into());
        assert_eq!(ring_order(&group).ring, ["101", "102", "103"]);
        // Someone who has left the group since: from the top.
        group.last_answered = Some("199".into());
        assert_eq!(ring_order(&group).ring, ["101", "102", "103"]);
    }

    #[test]
    fn longest_idle_rings_whoever_finished_a_call_longest_ago_first() {
        let start = Instant::now();
        let at = |s: u64| Some(start + Duration::from_secs(s));
        let order = ring_order(&facts(
            RingStrategy::LongestIdle,
            vec![
                MemberFacts {
                    last_call_ended: at(30),
                    ..member("101")
                },
                MemberFacts {
                    last_call_ended: at(10),
                    ..member("102")
                },
                member("103"),
                MemberFacts {
                    last_call_ended: at(20),
                    busy: true,
                    ..member("104")
                },
                member("105"),
            ],
        ));
        // No call at all since the server started: idle longest, in the listed order.
        assert_eq!(order.ring, ["103", "105", "102", "101"]);
        assert_eq!(order.skipped, [("104".to_string(), Skip::Busy)]);
    }
}
