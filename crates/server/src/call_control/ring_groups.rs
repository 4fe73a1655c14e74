//! Call control's side of ring groups: how each member stands when a call reaches the
//! group (logged out as the store says, busy from the legs here, do not disturb from the
//! user directory), ringing a ring-all group's members at once, remembering who answered
//! (round-robin) and when each user's last call ended (longest-idle), and logging members
//! in and out from their phone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use dialplan::{DialTarget, GroupLoginMode};

use super::CallControl;
use crate::call::{CallerId, GroupFacts, GroupLoginRefusal, MemberFacts, Question, Reply};
use crate::ids::LegId;
use crate::registrar::RegistrarService;
use crate::sip_endpoint::SipEndpoint;

/// What ring groups remember between calls, in memory only: after a restart round-robin
/// starts from the top and everyone counts as idle since the start.
#[derive(Debug, Default)]
pub(super) struct RingGroupMemory {
    /// Per group, the member who answered its last call.
    last_answered: HashMap<String, String>,
    /// Per user, when their last call through the server ended.
    last_call_ended: HashMap<String, Instant>,
}

impl RingGroupMemory {
    /// `user`'s call through the server ended at `now`.
    pub(super) fn call_ended(&mut self, user: &str, now: Instant) {
        // Bounded by the users in the directory: only their extensions come here.
        self.last_call_ended.insert(user.to_string(), now);
    }
}

impl CallControl {
    /// Answers the ring group questions; `None` for any other question.
    pub(super) fn answer_group_question(
        &mut self,
        leg: LegId,
        question: &Question,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) -> Option<Option<Reply>> {
        let reply = match question {
            Question::GroupLoggedOut(group) => {
                self.spawn_logged_out(leg, group.clone());
                None
            }
            Question::RingGroup { group, logged_out } => Some(Reply::RingGroup(
                self.group_facts(leg, group, logged_out, registrar),
            )),
            Question::PlaceMembers {
                members,
                fax,
                caller_id,
            } => Some(self.place_members(leg, members, *fax, caller_id, endpoint, registrar, now)),
            Question::GroupAnswered {
                group,
                leg: callee,
                member,
            } => {
                let member = member.clone().or_else(|| {
                    self.outbound
                        .get(callee)
                        .and_then(|o| o.placed.extension.clone())
                });
                if let Some(member) = member {
                    if let Some(l) = self.legs.get(&leg) {
                        l.span
                            .record("group_member", tracing::field::display(&member));
                    }
                    tracing::info!(%group, %member, "ring group: member answered");
                    self.ring_groups.last_answered.insert(group.clone(), member);
                }
                Some(Reply::Done(Ok(())))
            }
            Question::GroupLogin { group, mode } => self.group_login(leg, group.as_deref(), *mode),
            _ => return None,
        };
        Some(reply)
    }

    /// Asks the store (on its thread) who is logged out of `group`.
    fn spawn_logged_out(&self, leg: LegId, group: String) {
        let (shared, replies) = (self.shared.clone(), self.replies.clone());
        tokio::spawn(async move {
            let looked_up = shared
                .store
                .run(move |store| store.group_logged_out(&group))
                .await;
            let reply = match looked_up {
                Ok(Ok(members)) => Ok(members),
                Ok(Err(err)) => Err(err.to_string()),
                Err(err) => Err(format!("did not finish: {err}")),
            };
            let _ = replies.send((leg, Reply::Members(reply))).await;
        });
    }

    /// The group as the plan in force defines it and each member as they stand now.
    fn group_facts(
        &mut self,
        leg: LegId,
        group: &str,
        logged_out: &[String],
        registrar: &RegistrarService,
    ) -> Option<GroupFacts> {
        let plan = self.shared.plan.current();
        let definition = plan.group(group)?.clone();
        if let Some(l) = self.legs.get_mut(&leg) {
            l.span.record("group", tracing::field::display(group));
            l.ring_group = Some(group.to_string());
        }
        let members = definition
            .members
            .iter()
            .map(|extension| MemberFacts {
                extension: extension.clone(),
                logged_out: logged_out.contains(extension),
                busy: self.in_call(extension),
                // Ring groups are the default domain's alone (a tenant's call never gets here).
                dnd: registrar
                    .call_settings(store::DEFAULT_DOMAIN, extension)
                    .is_some_and(|settings| settings.dnd),
                last_call_ended: self.ring_groups.last_call_ended.get(extension).copied(),
            })
            .collect();
        Some(GroupFacts {
            group: definition,
            members,
            last_answered: self.ring_groups.last_answered.get(group).cloned(),
        })
    }

    /// Whether `extension` is in a call through the server: calling (any call of theirs,
    /// the one reaching the group too), or called and answered. Ringing is not a call.
    fn in_call(&self, extension: &str) -> bool {
        let calling = self
            .legs
            .values()
            .any(|l| !l.ended && l.profile.user.as_deref() == Some(extension));
        let called = self
            .outbound
            .values()
            .any(|o| o.media_started && o.placed.extension.as_deref() == Some(extension));
        calling || called
    }

    /// Rings every reachable phone of every one of `members` at once, as one fork.
    #[allow(clippy::too_many_arguments)] // the question's parts, and what placing needs
    fn place_members(
        &mut self,
        leg: LegId,
        members: &[String],
        fax: bool,
        caller_id: &CallerId,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) -> Reply {
        let mut legs = Vec::new();
        let mut unplaced = 0;
        let mut any_fax = false;
        for member in members {
            let target = DialTarget::User(member.clone());
            match self.dial(
                leg,
                &target,
                super::Diversion::None,
                fax,
                caller_id,
                endpoint,
                registrar,
                now,
            ) {
                Reply::Placed {
                    legs: placed,
                    unplaced: missed,
                    fax,
                } => {
                    legs.extend(placed);
                    unplaced += missed;
                    any_fax |= fax;
                }
                // Refusals that hold for the whole call (a fax caller without G.711).
                refused if legs.is_empty() => return refused,
                _ => unplaced += 1,
            }
        }
        Reply::Placed {
            legs,
            unplaced,
            fax: any_fax,
        }
    }

    /// Logs the calling user in to or out of `group` (every group of theirs when `None`)
    /// on the store's thread; the reply comes through the replies queue.
    fn group_login(&self, leg: LegId, group: Option<&str>, mode: GroupLoginMode) -> Option<Reply> {
        let Some(user) = self.legs.get(&leg).and_then(|l| l.profile.user.clone()) else {
            return Some(Reply::GroupLogin(Err(GroupLoginRefusal::NotAUser)));
        };
        let plan = self.shared.plan.current();
        let groups: Vec<String> = plan
            .groups()
            .iter()
            .filter(|(name, g)| {
                group.is_none_or(|want| want == name.as_str()) && g.members.contains(&user)
            })
            .map(|(name, _)| name.clone())
            .collect();
        if groups.is_empty() {
            tracing::info!(%user, group = ?group, "ring group login: not a member");
            return Some(Reply::GroupLogin(Err(GroupLoginRefusal::NotAMember)));
        }
        let (shared, replies) = (Arc::clone(&self.shared), self.replies.clone());
        tokio::spawn(async move {
            let done = shared
                .store
                .run(move |store| set_login(store, &groups, &user, mode))
                .await;
            let reply = match done {
                Ok(Ok(logged_in)) => Ok(logged_in),
                Ok(Err(err)) => Err(GroupLoginRefusal::Store(err.to_string())),
                Err(err) => Err(GroupLoginRefusal::Store(format!("did not finish: {err}"))),
            };
            let _ = replies.send((leg, Reply::GroupLogin(reply))).await;
        });
        None
    }
}

/// Logs `user` in to or out of all `groups` at once; whether they are logged in now. A
/// toggle logs in when they are logged out of any of them (a member half in, half out is
/// taken as out, so one press makes them reachable everywhere), else out.
fn set_login(
    store: &store::Store,
    groups: &[String],
    user: &str,
    mode: GroupLoginMode,
) -> Result<bool, store::StoreError> {
    let log_in = match mode {
        GroupLoginMode::In => true,
        GroupLoginMode::Out => false,
        GroupLoginMode::Toggle => {
            let mut any_out = false;
            for group in groups {
                any_out |= store.group_logged_out(group)?.iter().any(|m| m == user);
            }
            any_out
        }
    };
    let now_ms = jiff::Timestamp::now().as_millisecond();
    for group in groups {
        if log_in {
            store.group_log_in(group, user)?;
        } else {
            store.group_log_out(group, user, now_ms)?;
        }
    }
    tracing::info!(%user, ?groups, logged_in = log_in, "ring group login");
    Ok(log_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toggle_logs_out_of_every_group_and_back_in_and_a_half_logged_out_member_in() {
        let store = store::Store::open_in_memory().unwrap();
        let groups = vec!["a".to_string(), "b".to_string()];
        assert!(!set_login(&store, &groups, "101", GroupLoginMode::Toggle).unwrap());
        assert_eq!(store.group_logged_out("a").unwrap(), ["101"]);
        assert_eq!(store.group_logged_out("b").unwrap(), ["101"]);
        assert!(set_login(&store, &groups, "101", GroupLoginMode::Toggle).unwrap());
        assert!(store.group_logouts().unwrap().is_empty());
        // Out of one only: a toggle logs in to both.
        store.group_log_out("b", "101", 1).unwrap();
        assert!(set_login(&store, &groups, "101", GroupLoginMode::Toggle).unwrap());
        assert!(store.group_logouts().unwrap().is_empty());
        // In and out are what they say, whatever the state.
        assert!(!set_login(&store, &groups, "101", GroupLoginMode::Out).unwrap());
        assert!(!set_login(&store, &groups, "101", GroupLoginMode::Out).unwrap());
        assert!(set_login(&store, &groups, "101", GroupLoginMode::In).unwrap());
    }
}
