//! Ringing several phones for one caller (RFC 3261 §16.7 forking, done as a B2BUA): the
//! decisions alone, with no SIP, media or time inside, so every turn a race can take is a
//! unit test. The `dial` action feeds it what happened to each leg and carries out the step
//! it returns.

use crate::ids::LegId;

/// What the `dial` action does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForkStep {
    /// Nothing yet: others are still ringing.
    Wait,
    /// `winner` answered first: connect the caller to it and cancel the others.
    Connect {
        /// The leg that answered.
        winner: LegId,
        /// Legs still ringing, to cancel.
        cancel: Vec<LegId>,
    },
    /// Nobody will answer: tell the caller `status`, cancel whoever still rings.
    GiveUp {
        /// The response the caller's `dial` ends with.
        status: u16,
        /// Legs still ringing, to cancel.
        cancel: Vec<LegId>,
    },
    /// This leg answered after the fork was decided: hang it up.
    TooLate,
}

/// The legs rung for one caller and the best refusal so far.
#[derive(Debug, Default)]
pub struct Fork {
    ringing: Vec<LegId>,
    best: Option<u16>,
    decided: bool,
}

/// How much a refusal tells the caller: a 6xx (declined everywhere) and busy beat "not
/// there", which beats any other failure (RFC 3261 §16.7 step 6 leaves the choice within a
/// class to us; phones and users understand busy and unavailable).
fn weight(status: u16) -> u8 {
    match status {
        600..=699 | 486 => 3,
        480 | 408 => 2,
        _ => 1,
    }
}

impl Fork {
    /// A fork ringing `legs`; `unplaced` INVITEs could not even be sent (they count as 503).
    pub fn new(legs: Vec<LegId>, unplaced: usize) -> Self {
        Self {
            ringing: legs,
            best: (unplaced > 0).then_some(503),
            decided: false,
        }
    }

    /// Legs still ringing.
    pub fn ringing(&self) -> &[LegId] {
        &self.ringing
    }

    /// Whether the fork has ended (someone answered, or it gave up).
    #[cfg(test)]
    pub fn is_decided(&self) -> bool {
        self.decided
    }

    /// The step for a fork that rings nobody at all (no phone registered, no INVITE sent).
    pub fn start(&mut self) -> ForkStep {
        if self.ringing.is_empty() {
            self.give_up()
        } else {
            ForkStep::Wait
        }
    }

    /// `leg` answered (2xx).
    pub fn answered(&mut self, leg: LegId) -> ForkStep {
        if self.decided || !self.ringing.contains(&leg) {
            return ForkStep::TooLate;
        }
        self.decided = true;
        let cancel = self.ringing.drain(..).filter(|&l| l != leg).collect();
        ForkStep::Connect {
            winner: leg,
            cancel,
        }
    }

    /// `leg` ended without answering, with final `status` (0: no response at all).
    pub fn ended(&mut self, leg: LegId, status: u16) -> ForkStep {
        if self.decided || !self.ringing.contains(&leg) {
            return ForkStep::Wait;
        }
        self.ringing.retain(|&l| l != leg);
        if status >= 300 && self.best.is_none_or(|b| weight(status) > weight(b)) {
            self.best = Some(status);
        }
        // §16.7 step 5: a 6xx ends the search at once.
        if (600..700).contains(&status) || self.ringing.is_empty() {
            return self.give_up();
        }
        ForkStep::Wait
    }

    /// `old` failed and `new` rings in its place (a trunk's failover); false when the fork
    /// no longer waits for `old`, so `new` is not wanted.
    pub fn replaced(&mut self, old: LegId, new: LegId) -> bool {
        if self.decided {
            return false;
        }
        match self.ringing.iter_mut().find(|l| **l == old) {
            Some(slot) => {
                *slot = new;
                true
            }
            None => false,
        }
    }

    /// The caller's ring time is up.
    pub fn timed_out(&mut self) -> ForkStep {
        if self.decided {
            return ForkStep::Wait;
        }
        self.best = Some(408);
        self.give_up()
    }

    fn give_up(&mut self) -> ForkStep {
        self.decided = true;
        ForkStep::GiveUp {
            // Nobody refused anything (every phone silent): "temporarily unavailable".
            status: self.best.unwrap_or(480),
            cancel: std::mem::take(&mut self.ringing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legs(n: u64) -> Vec<LegId> {
        (1..=n).map(LegId::new).collect()
    }

    #[test]
    fn the_first_to_answer_wins_and_the_others_are_cancelled() {
        let mut fork = Fork::new(legs(3), 0);
        assert_eq!(fork.start(), ForkStep::Wait);
        assert_eq!(
            fork.answered(LegId::new(2)),
            ForkStep::Connect {
                winner: LegId::new(2),
                cancel: vec![LegId::new(1), LegId::new(3)],
            }
        );
        // The office phone answers a moment later: too late, it is hung up.
        assert_eq!(fork.answered(LegId::new(3)), ForkStep::TooLate);
        // Its 487 for our CANCEL changes nothing.
        assert_eq!(fork.ended(LegId::new(1), 487), ForkStep::Wait);
        assert!(fork.is_decided());
    }

    #[test]
    fn one_busy_phone_does_not_stop_the_others_ringing_and_busy_is_what_the_caller_hears() {
        let mut fork = Fork::new(legs(2), 0);
        assert_eq!(fork.ended(LegId::new(1), 486), ForkStep::Wait);
        assert_eq!(fork.ringing(), &[LegId::new(2)]);
        assert_eq!(
            fork.ended(LegId::new(2), 480),
            ForkStep::GiveUp {
                status: 486,
                cancel: vec![],
            }
        );
    }

    #[test]
    fn a_6xx_ends_the_search_at_once() {
        let mut fork = Fork::new(legs(3), 0);
        assert_eq!(
            fork.ended(LegId::new(3), 603),
            ForkStep::GiveUp {
                status: 603,
                cancel: vec![LegId::new(1), LegId::new(2)],
            }
        );
        assert_eq!(fork.answered(LegId::new(1)), ForkStep::TooLate);
    }

    #[test]
    fn a_failover_leg_rings_in_the_failed_legs_place() {
        let mut fork = Fork::new(legs(1), 0);
        assert!(fork.replaced(LegId::new(1), LegId::new(7)));
        assert_eq!(fork.ringing(), &[LegId::new(7)]);
        // The failed leg's own end changes nothing; the new one's answer connects.
        assert_eq!(fork.ended(LegId::new(1), 503), ForkStep::Wait);
        assert_eq!(
            fork.answered(LegId::new(7)),
            ForkStep::Connect {
                winner: LegId::new(7),
                cancel: vec![],
            }
        );
        // Once decided, a late failover is not wanted.
        assert!(!fork.replaced(LegId::new(7), LegId::new(8)));
        assert!(!Fork::new(legs(1), 0).replaced(LegId::new(5), LegId::new(6)));
    }

    #[test]
    fn the_ring_time_running_out_cancels_everyone_with_408() {
        let mut fork = Fork::new(legs(2), 0);
        assert_eq!(
            fork.timed_out(),
            ForkStep::GiveUp {
                status: 408,
                cancel: legs(2),
            }
        );
        // An answer crossing the timeout is too late; a timeout after an answer is nothing.
        assert_eq!(fork.answered(LegId::new(1)), ForkStep::TooLate);
        let mut answered = Fork::new(legs(1), 0);
        answered.answered(LegId::new(1));
        assert_eq!(answered.timed_out(), ForkStep::Wait);
    }

    #[test]
    fn nobody_to_ring_is_unavailable_and_unsent_invites_are_service_unavailable() {
        assert_eq!(
            Fork::new(vec![], 0).start(),
            ForkStep::GiveUp {
                status: 480,
                cancel: vec![],
            }
        );
        assert_eq!(
            Fork::new(vec![], 2).start(),
            ForkStep::GiveUp {
                status: 503,
                cancel: vec![],
            }
        );
        // A phone that never answered at all (408 from our transaction) beats the 503.
        let mut fork = Fork::new(legs(1), 1);
        assert_eq!(
            fork.ended(LegId::new(1), 408),
            ForkStep::GiveUp {
                status: 408,
                cancel: vec![],
            }
        );
    }
}
