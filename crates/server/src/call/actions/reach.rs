//! Reaching a user: do not disturb, call forwarding (always, on busy, on no answer) and
//! follow-me, as users set them from their phones and admins by CLI.
//!
//! A forwarding target is a number routed through the dialplan as the forwarding user's own
//! call, so it reaches a colleague, a group, a room or an outside line by the same rules,
//! call classes and cost limits as when the user dials it. A user met twice on the way is a
//! loop: the caller is told so and the call ends, instead of ringing round in circles.

use std::future::Future;
use std::pin::Pin;

use dialplan::{Action, DialTarget};
use store::{CallSettings, FollowMeStep, ForwardKind};

use super::dial::{Rung, is_busy};
use crate::call::logic::{CallLogic, Stop};
use crate::call::{Question, Reply, SipAction};

/// Most forwardings one call follows: a longer chain is treated as a loop (a chain that
/// leaves through a trunk and comes back in is not seen as one, so this also bounds those).
const MAX_DIVERSIONS: usize = 5;

impl CallLogic {
    /// Rings user `extension` as their settings say, `timeout_s` being the dialplan's ring
    /// time when no no-answer forwarding sets its own.
    pub(super) async fn reach_user(
        &mut self,
        extension: &str,
        timeout_s: u32,
    ) -> Result<Rung, Stop> {
        self.reach_user_minding_dnd(extension, timeout_s, true)
            .await
    }

    /// As [`CallLogic::reach_user`]; do not disturb is passed over when `mind_dnd` is false
    /// (a ring group that ignores it still applies the member's forwarding).
    pub(super) async fn reach_user_minding_dnd(
        &mut self,
        extension: &str,
        timeout_s: u32,
        mind_dnd: bool,
    ) -> Result<Rung, Stop> {
        if self.diverted_through.iter().any(|user| user == extension) {
            return self.forwarding_loop(extension).await;
        }
        let settings = match self
            .io
            .ask(Question::UserSettings(extension.to_owned()))
            .await
        {
            Reply::Settings(Some(settings)) => settings,
            _ => CallSettings::default(),
        };
        if let Some(target) = &settings.forward_always {
            return self.divert(extension, ForwardKind::Always, target).await;
        }
        if settings.dnd && mind_dnd {
            tracing::info!(user = %extension, "dial: do not disturb");
            self.note(format!("{extension} in do not disturb"));
            return match &settings.forward_busy {
                Some(target) => self.divert(extension, ForwardKind::Busy, target).await,
                None => Ok(Rung::Unanswered(486)),
            };
        }
        let rung = if settings.follow_me.is_empty() {
            let ring_s = if settings.forward_no_answer.is_some() {
                settings.no_answer_seconds
            } else {
                timeout_s
            };
            let target = DialTarget::User(extension.to_owned());
            let place = self.place_question(&target, false);
            self.ring(place, &target, ring_s).await?
        } else {
            self.follow_me(extension, &settings.follow_me).await?
        };
        let Rung::Unanswered(status) = rung else {
            return Ok(rung);
        };
        let kind = if is_busy(status) {
            ForwardKind::Busy
        } else {
            ForwardKind::NoAnswer
        };
        match settings.forward(kind) {
            Some(target) => self.divert(extension, kind, target).await,
            None => Ok(rung),
        }
    }

    /// Sends the call on to `number` for `user`: runs that number's route as the user's call.
    async fn divert(&mut self, user: &str, kind: ForwardKind, number: &str) -> Result<Rung, Stop> {
        if self.diverted_through.len() >= MAX_DIVERSIONS {
            return self.forwarding_loop(user).await;
        }
        let route = match self
            .io
            .ask(Question::RouteFor {
                number: number.to_owned(),
                user: user.to_owned(),
            })
            .await
        {
            Reply::Route(Some(route)) => route,
            _ => {
                tracing::warn!(user = %user, %kind, to = %number, "call forwarding: no dialplan rule takes the number; not forwarded");
                return Ok(Rung::Unanswered(480));
            }
        };
        tracing::info!(user = %user, %kind, to = %number, rule = %route.rule_name, "call forwarded");
        self.note(format!("forwarded by {user} ({kind}) to {number}"));
        self.diverted_through.push(user.to_owned());
        let outer = self.diverted_by.replace(user.to_owned());
        let actions = if self.group_turn.is_some() {
            up_to_first_dial(&route.actions)
        } else {
            &route.actions
        };
        let ran = self.run_nested(actions).await;
        self.diverted_by = outer;
        ran?;
        // The forwarded route ran out without anyone answering.
        Ok(Rung::Unanswered(self.unanswered_status))
    }

    /// Runs `actions` inside the action that is running (a forwarding's route); boxed, since
    /// the route may dial a user who forwards again.
    fn run_nested<'a>(
        &'a mut self,
        actions: &'a [Action],
    ) -> Pin<Box<dyn Future<Output = Result<(), Stop>> + Send + 'a>> {
        Box::pin(self.run_actions(actions))
    }

    /// Rings the follow-me steps in turn; each step's numbers ring at once for its seconds.
    async fn follow_me(&mut self, extension: &str, steps: &[FollowMeStep]) -> Result<Rung, Stop> {
        let mut status = 480;
        for (index, step) in steps.iter().enumerate() {
            self.note(format!("follow-me step {} of {extension}", index + 1));
            let mut legs = Vec::new();
            let mut unplaced = 0;
            for target in &step.targets {
                let dial_target = if target.number == extension {
                    DialTarget::User(extension.to_owned())
                } else {
                    match self
                        .io
                        .ask(Question::RouteFor {
                            number: target.number.clone(),
                            user: extension.to_owned(),
                        })
                        .await
                    {
                        Reply::Route(Some(route)) => match first_dial_target(&route.actions) {
                            Some(dial_target) => dial_target,
                            None => {
                                tracing::warn!(user = %extension, number = %target.number, rule = %route.rule_name, "follow-me: the number's rule dials nobody; skipped");
                                unplaced += 1;
                                continue;
                            }
                        },
                        _ => {
                            tracing::warn!(user = %extension, number = %target.number, "follow-me: no dialplan rule takes the number; skipped");
                            unplaced += 1;
                            continue;
                        }
                    }
                };
                let place = Question::PlaceFor {
                    target: dial_target,
                    caller_id: self.caller_id.clone(),
                    user: extension.to_owned(),
                    network: target.network,
                };
                match self.io.ask(place).await {
                    Reply::Placed {
                        legs: placed,
                        unplaced: not_sent,
                        ..
                    } => {
                        legs.extend(placed);
                        unplaced += not_sent;
                    }
                    other => {
                        tracing::info!(user = %extension, number = %target.number, ?other, "follow-me: not rung");
                        unplaced += 1;
                    }
                }
            }
            let what = format!("follow-me step {} of {extension}", index + 1);
            tracing::info!(
                user = %extension,
                step = index + 1,
                phones = legs.len(),
                seconds = step.seconds,
                "follow-me: ringing"
            );
            match self
                .ring_legs(legs, unplaced, false, &what, step.seconds)
                .await?
            {
                Rung::Answered(leg) => return Ok(Rung::Answered(leg)),
                Rung::Unanswered(step_status) => status = step_status,
            }
        }
        Ok(Rung::Unanswered(status))
    }

    /// The caller is told that forwarding goes round in a circle, and the call ends. In a
    /// ring group member's turn only that member is unreachable: the group goes on.
    async fn forwarding_loop(&mut self, extension: &str) -> Result<Rung, Stop> {
        if self.group_turn.is_some() {
            tracing::warn!(user = %extension, through = ?self.diverted_through, "call forwarding loop in a ring group member's turn; the group goes on");
            return Ok(Rung::Unanswered(480));
        }
        tracing::warn!(user = %extension, through = ?self.diverted_through, "call forwarding loop; the call ends");
        if !self.answered {
            self.sip(SipAction::EarlyMedia);
        }
        self.play("forwarding-loop").await?;
        const REASON: &str = "call forwarding loop";
        self.sip(if self.answered {
            SipAction::Hangup
        } else {
            // RFC 3261 §21.4.20: the request would have gone round in a circle.
            SipAction::Refuse {
                status: 482,
                reason: REASON,
            }
        });
        Err(Stop::EndedByUs(REASON))
    }
}

/// A route's actions up to and including its first `dial` (all of them when it has none).
fn up_to_first_dial(actions: &[Action]) -> &[Action] {
    match actions
        .iter()
        .position(|action| matches!(action, Action::Dial { .. }))
    {
        Some(at) => &actions[..=at],
        None => actions,
    }
}

/// What a route rings first: the target of its first `dial` or `forward`.
fn first_dial_target(actions: &[Action]) -> Option<DialTarget> {
    actions.iter().find_map(|action| match action {
        Action::Dial { target, .. } | Action::Forward { target } => Some(target.clone()),
        _ => None,
    })
}
