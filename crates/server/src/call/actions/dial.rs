//! The `dial` action: ring a user's phones or a SIP URI (every contact at once, RFC 3261
//! §16.7 forking done as a B2BUA), connect the caller with the first to answer, and stay
//! connected until one side hangs up; when nobody answers, go on with the next action.

use std::time::{Duration, Instant};

use crate::call::logic::{CallLogic, Stop};
use crate::call::{CalleeEvent, Fork, ForkStep, Input, MediaAction, Question, Reply, SipAction};
use crate::ids::LegId;

/// How ringing ended.
pub(super) enum Rung {
    /// This leg answered and is connected with the caller.
    Answered(LegId),
    /// Nobody answered; the status the fork gave up with (408 no answer in time, 486 or 6xx
    /// busy or declined, 503 nobody reachable).
    Unanswered(u16),
}

/// Statuses that mean the user is busy (or said no), for the busy forwarding.
pub(super) fn is_busy(status: u16) -> bool {
    status == 486 || (600..700).contains(&status)
}

impl CallLogic {
    pub(super) async fn dial(
        &mut self,
        target: &dialplan::DialTarget,
        timeout_s: u32,
        fax: bool,
    ) -> Result<(), Stop> {
        // A user's forwarding, do not disturb and follow-me apply to dialling them; a fax
        // call goes to the fax line itself. A group rings its members as it says.
        let rung = match (target, fax) {
            (dialplan::DialTarget::Group(group), _) => {
                self.dial_group(group, Some(timeout_s), fax).await?
            }
            (dialplan::DialTarget::User(extension), false) => {
                self.reach_user(extension, timeout_s).await?
            }
            _ => {
                let place = self.place_question(target, fax);
                self.ring(place, target, timeout_s).await?
            }
        };
        match rung {
            Rung::Answered(callee) => {
                self.note_group_turn_answered(callee).await;
                self.talk(callee).await
            }
            Rung::Unanswered(status) => {
                self.note_unanswered(status);
                Ok(())
            }
        }
    }

    /// A caller left unanswered hears busy (486) when the last one dialled was busy, else
    /// unavailable (480).
    pub(super) fn note_unanswered(&mut self, status: u16) {
        tracing::info!(status, "dial: not answered; next action");
        self.unanswered_status = if is_busy(status) { 486 } else { 480 };
    }

    /// The question that rings `target`: on behalf of the user whose forwarding this call
    /// follows, if any.
    pub(super) fn place_question(&self, target: &dialplan::DialTarget, fax: bool) -> Question {
        match &self.diverted_by {
            None => Question::Place {
                target: target.clone(),
                fax,
                caller_id: self.caller_id.clone(),
            },
            Some(user) => Question::PlaceFor {
                target: target.clone(),
                caller_id: self.caller_id.clone(),
                user: user.clone(),
                network: None,
            },
        }
    }

    /// The `forward` action: the call goes on to `target` as it is, unanswered by us; a
    /// call out through a trunk carries Diversion with the number the caller dialled, so
    /// the carrier lets the caller's own number through. Rings as long as the caller waits
    /// (bounded). Like a 302 it ends the call's path (the dialplan check says so of actions
    /// after it): when nobody answers, the caller gets 480.
    pub(super) async fn forward(&mut self, target: &dialplan::DialTarget) -> Result<(), Stop> {
        const FORWARD_RING_S: u32 = 120;
        let rung = match target {
            // Its members ring as for a `dial`, for the group's own time.
            dialplan::DialTarget::Group(group) => self.dial_group(group, None, false).await?,
            dialplan::DialTarget::User(extension) => {
                self.reach_user(extension, FORWARD_RING_S).await?
            }
            _ => {
                let place = Question::Forward {
                    target: target.clone(),
                    caller_id: self.caller_id.clone(),
                };
                self.ring(place, target, FORWARD_RING_S).await?
            }
        };
        match rung {
            Rung::Answered(callee) => {
                self.note_group_turn_answered(callee).await;
                self.talk(callee).await
            }
            Rung::Unanswered(_) => {
                self.sip(if self.answered {
                    SipAction::Hangup
                } else {
                    SipAction::Reject(480)
                });
                Err(Stop::EndedByUs("forwarded: no answer"))
            }
        }
    }

    /// Connected with `callee` (or whoever it transfers the call to) until one side hangs up.
    pub(super) async fn talk(&mut self, mut callee: LegId) -> Result<(), Stop> {
        // Connected: the call lasts until one side hangs up. The caller's keys reach the
        // callee as RFC 4733 events (the media worker passes them on as they came when it
        // relays the call, and ignores these then).
        self.answered = true;
        loop {
            match self.next_input(None).await {
                None | Some(Input::Hangup) => return Err(Stop::HungUp),
                Some(Input::Digit(digit)) => {
                    tracing::debug!(%digit, "DTMF relayed to the callee");
                    self.media(MediaAction::SendDtmf { to: callee, digit });
                }
                Some(Input::Callee(CalleeEvent::Ended { leg, .. })) if leg == callee => {
                    return Err(Stop::EndedByUs("callee hung up"));
                }
                Some(Input::Callee(CalleeEvent::Transferred { old, new })) if old == callee => {
                    tracing::info!(from = %old, to = %new, "callee transferred the call");
                    callee = new;
                }
                Some(Input::Callee(event)) => self.late_callee(event),
                Some(Input::Notice(_) | Input::Media(_)) => {}
            }
        }
    }

    /// Rings `target` for up to `timeout_s` seconds: the leg that answered, connected, or
    /// why nobody did.
    pub(super) async fn ring(
        &mut self,
        place: Question,
        target: &dialplan::DialTarget,
        timeout_s: u32,
    ) -> Result<Rung, Stop> {
        let ring_until = self.io.now() + Duration::from_secs(u64::from(timeout_s));
        self.ring_until(place, target, ring_until).await
    }

    /// Rings what `place` places until `ring_until`: the leg that answered, connected, or
    /// why nobody did.
    pub(super) async fn ring_until(
        &mut self,
        place: Question,
        target: &dialplan::DialTarget,
        ring_until: Instant,
    ) -> Result<Rung, Stop> {
        let (legs, unplaced, fax) = match self.io.ask(place).await {
            Reply::Placed {
                legs,
                unplaced,
                fax,
            } => (legs, unplaced, fax),
            Reply::Barred => return self.barred(target).await,
            // Too many calls out: refused as a carrier refuses with all circuits busy (503,
            // Q.850 34) or, for the user's own limit, as forbidden; nothing was sent out.
            Reply::UserLimit => {
                return self.refused(403, "refused: too many calls out for this user");
            }
            Reply::LinesBusy => return self.refused(503, "refused: all outside lines busy"),
            // Transcoding would change what the fax machines hear, so no fax call is.
            Reply::NoFaxCodec => return self.refused(488, "refused: fax call without G.711"),
            Reply::OverBudget(budget) => return self.over_budget(budget).await,
            _ => (Vec::new(), 1, false),
        };
        tracing::info!(%target, contacts = legs.len(), "dial: ringing");
        self.ring_legs_until(legs, unplaced, fax, &target.to_string(), ring_until)
            .await
    }

    /// Rings `legs` already placed for up to `timeout_s` seconds (`target` names them in
    /// the log): the leg that answered, connected, or why nobody did.
    pub(super) async fn ring_legs(
        &mut self,
        legs: Vec<LegId>,
        unplaced: usize,
        fax: bool,
        target: &str,
        timeout_s: u32,
    ) -> Result<Rung, Stop> {
        let ring_until = self.io.now() + Duration::from_secs(u64::from(timeout_s));
        self.ring_legs_until(legs, unplaced, fax, target, ring_until)
            .await
    }

    /// Rings `legs` already placed until `ring_until`, as [`CallLogic::ring_legs`] does.
    async fn ring_legs_until(
        &mut self,
        legs: Vec<LegId>,
        unplaced: usize,
        fax: bool,
        target: &str,
        ring_until: Instant,
    ) -> Result<Rung, Stop> {
        let mut fork = Fork::new(legs, unplaced);
        let mut step = fork.start();
        loop {
            match step {
                ForkStep::Wait => {}
                ForkStep::TooLate => {}
                ForkStep::Connect { winner, cancel } => {
                    self.cancel_all(cancel, "answered elsewhere");
                    self.sip(SipAction::Connect(winner));
                    tracing::info!(callee = %winner, "dial: answered; connected");
                    return Ok(Rung::Answered(winner));
                }
                // A fax callee that refused the caller's G.711 cannot take the call, and a
                // next action could only transcode it: the caller learns why (488).
                ForkStep::GiveUp {
                    status: 488,
                    cancel,
                } if fax => {
                    self.cancel_all(cancel, "fax codec refused elsewhere");
                    return self.refused(488, "refused: fax callee cannot take the caller's G.711");
                }
                ForkStep::GiveUp { status, cancel } => {
                    let reason = if status == 408 {
                        "no answer in time"
                    } else {
                        "declined elsewhere"
                    };
                    self.cancel_all(cancel, reason);
                    tracing::info!(%target, status, "ringing: nobody answered");
                    return Ok(Rung::Unanswered(status));
                }
            }
            step = match self.io.next(Some(ring_until)).await {
                None => fork.timed_out(),
                // Call control cancels the legs still ringing as the caller's leg ends.
                Some(Input::Hangup) => return Err(Stop::HungUp),
                Some(Input::Callee(CalleeEvent::Ringing(leg))) => {
                    if fork.ringing().contains(&leg) {
                        self.sip(SipAction::Ring);
                    }
                    ForkStep::Wait
                }
                Some(Input::Callee(CalleeEvent::Answered(leg))) => match fork.answered(leg) {
                    ForkStep::TooLate => {
                        self.late_callee(CalleeEvent::Answered(leg));
                        ForkStep::TooLate
                    }
                    step => step,
                },
                Some(Input::Callee(CalleeEvent::Ended { leg, status })) => fork.ended(leg, status),
                // Only a connected call is transferred.
                Some(Input::Callee(CalleeEvent::Transferred { .. })) => ForkStep::Wait,
                // A colleague took the call (pickup): the phones that still ring stop, and
                // the caller talks with the picker.
                Some(Input::Callee(CalleeEvent::PickedUp { by })) => {
                    self.cancel_all(fork.ringing().to_vec(), "picked up elsewhere");
                    tracing::info!(picker = %by, "dial: picked up by another phone; connected");
                    return Ok(Rung::Answered(by));
                }
                Some(Input::Callee(CalleeEvent::Replaced { old, new })) => {
                    if !fork.replaced(old, new) {
                        self.late_callee(CalleeEvent::Replaced { old, new });
                    }
                    ForkStep::Wait
                }
                // Keys pressed while it rings are kept for what follows.
                Some(Input::Digit(digit)) => {
                    self.pending_digits.push_back(digit);
                    ForkStep::Wait
                }
                Some(Input::Notice(_) | Input::Media(_)) => ForkStep::Wait,
            };
        }
    }

    /// Toll-fraud protection said no: the caller hears why (early media, so the call is
    /// never answered and nothing is charged) and gets 403.
    async fn barred(&mut self, target: &dialplan::DialTarget) -> Result<Rung, Stop> {
        tracing::info!(%target, "dial: number barred for this caller; 403");
        if !self.answered {
            self.sip(SipAction::EarlyMedia);
        }
        self.play("number-barred").await?;
        self.refused(403, "refused: number barred")
    }

    /// The cost guard said no: the last hour's calls out cost as much as allowed. The caller
    /// hears "try again later" as early media (never answered, nothing charged) and gets
    /// 403 for their own limit, 503 for the limit in all, as with the concurrent limits.
    async fn over_budget(&mut self, budget: trunks::Budget) -> Result<Rung, Stop> {
        if !self.answered {
            self.sip(SipAction::EarlyMedia);
        }
        self.play("service-unavailable").await?;
        match budget {
            trunks::Budget::User => self.refused(
                403,
                "refused: the user's cost limit for the hour is reached",
            ),
            trunks::Budget::Total => {
                self.refused(503, "refused: the cost limit for the hour is reached")
            }
        }
    }

    /// Ends the call with `status` (or a BYE, once answered) without ringing anyone.
    fn refused(&self, status: u16, reason: &'static str) -> Result<Rung, Stop> {
        tracing::info!(status, reason, "dial: refused");
        self.sip(if self.answered {
            SipAction::Hangup
        } else {
            SipAction::Refuse { status, reason }
        });
        Err(Stop::EndedByUs(reason))
    }

    fn cancel_all(&self, legs: Vec<LegId>, reason: &'static str) {
        for leg in legs {
            self.sip(SipAction::Cancel { leg, reason });
        }
    }
}
