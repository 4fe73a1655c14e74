//! The per-hour cost guard (toll-fraud protection): what calls out have cost in the last
//! hour, per user and in all, against the limits of `[cost-guard]`.
//!
//! A stolen SIP password is used the same night for hours of calls to premium and foreign
//! numbers; class bars and concurrent-call limits narrow that, but one endless call to an
//! allowed expensive number still runs up the bill. The guard prices every call out from its
//! answer at its class's rate per minute and sums what falls into a sliding 60-minute
//! window: a call out is refused while the caller's (or everyone's) spend has reached its
//! limit, and a running call is to be ended the moment it takes the spend there.
//!
//! Sans-IO: time comes in as an argument, and the guard only says what is over; refusing
//! and hanging up belong to the server. Money is counted in whole thousandths of the
//! currency (tenths of a cent), never in floating point, so sums and limits compare
//! exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::class::CallClass;

/// The window spend is summed over.
pub const COST_WINDOW: Duration = Duration::from_secs(3600);

/// Milliseconds in the minute that rates are given per.
const MS_PER_MINUTE: u128 = 60_000;

/// An amount of money in thousandths of the currency unit (tenths of a cent): 1.25 € is
/// `Money::from_millis(1250)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(u64);

impl Money {
    /// Nothing.
    pub const ZERO: Money = Money(0);

    /// `millis` thousandths of the currency unit.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// The amount in thousandths of the currency unit.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// The amount in currency units, for metrics (which are floating point anyway).
    pub fn as_units(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl fmt::Display for Money {
    /// `5.00`, `0.09`, `0.125`: two decimals, three where a tenth of a cent needs them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (units, millis) = (self.0 / 1000, self.0 % 1000);
        if millis % 10 == 0 {
            write!(f, "{units}.{:02}", millis / 10)
        } else {
            write!(f, "{units}.{millis:03}")
        }
    }
}

/// The checked `[cost-guard]` section: prices by call class and the hourly limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CostRules {
    /// Price per minute by call class; classes not listed cost nothing.
    pub rates: BTreeMap<CallClass, Money>,
    /// Most one user's calls out may cost in any 60 minutes.
    pub per_user_per_hour: Option<Money>,
    /// Most all calls out together may cost in any 60 minutes.
    pub per_hour: Option<Money>,
}

impl CostRules {
    /// The price per minute of a call of `class`: nothing for classes not listed, and
    /// never anything for an emergency call.
    pub fn rate(&self, class: CallClass) -> Money {
        if class == CallClass::Emergency {
            return Money::ZERO;
        }
        self.rates.get(&class).copied().unwrap_or(Money::ZERO)
    }
}

/// Whose limit a call out is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    /// The calling user's own (`per-user-per-hour`).
    User,
    /// Everyone's together (`per-hour`).
    Total,
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Budget::User => "the user's",
            Budget::Total => "the total",
        })
    }
}

/// A limit that the last hour's spend has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{budget} spend in the last hour is {spent}, the limit {limit}")]
pub struct OverBudget {
    /// Whose limit.
    pub budget: Budget,
    /// What the last 60 minutes cost.
    pub spent: Money,
    /// The limit.
    pub limit: Money,
}

/// A running call the guard has stopped counting because it took a spend to its limit:
/// the server is to end it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutCall<K> {
    /// The call, as the server named it in [`CostGuard::answered`].
    pub key: K,
    /// Its user, if the caller is one.
    pub user: Option<String>,
    /// The limit it reached.
    pub over: OverBudget,
}

/// One priced call out: running (`ended` is `None`) or ended within the window.
#[derive(Debug, Clone)]
struct PricedCall<K> {
    key: K,
    user: Option<String>,
    /// Per minute, fixed at the answer: a reloaded price list applies to the next call.
    rate: Money,
    answered: Instant,
    ended: Option<Instant>,
}

impl<K> PricedCall<K> {
    /// Its cost within the window ending at `now`, in thousandths × ms / minute (divided
    /// by [`MS_PER_MINUTE`] only when summed, so no call loses its fraction of a unit).
    fn cost_within(&self, window_start: Option<Instant>, now: Instant) -> u128 {
        let from = window_start.map_or(self.answered, |w| w.max(self.answered));
        let until = self.ended.map_or(now, |e| e.min(now));
        let ms = until.saturating_duration_since(from).as_millis();
        ms * u128::from(self.rate.0)
    }

    /// How fast its cost grows now, in the same units per ms.
    fn growth(&self) -> u128 {
        if self.ended.is_some() {
            0
        } else {
            u128::from(self.rate.0)
        }
    }
}

/// Spend of calls out over the last hour, per user and in all (see the module
/// documentation). `K` names a call (the server uses its leg id).
#[derive(Debug, Clone)]
pub struct CostGuard<K> {
    /// Priced calls, running or ended within the window; calls that cost nothing are never
    /// kept, so this holds at most the last hour's rated calls.
    calls: Vec<PricedCall<K>>,
}

impl<K> Default for CostGuard<K> {
    fn default() -> Self {
        Self { calls: Vec::new() }
    }
}

impl<K: Copy + Eq> CostGuard<K> {
    /// A guard that has seen no call.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the last 60 minutes up to `now` cost: the calls of `user`, or of everyone for
    /// `None`.
    pub fn spent(&self, user: Option<&str>, now: Instant) -> Money {
        let window_start = now.checked_sub(COST_WINDOW);
        let sum: u128 = self
            .calls
            .iter()
            .filter(|c| user.is_none() || c.user.as_deref() == user)
            .map(|c| c.cost_within(window_start, now))
            .sum();
        money_of(sum)
    }

    /// Whether a call of `class` may go out now for `user` (`None`: a caller that is not a
    /// user, held only to the limit in all). Emergency calls and calls that cost nothing
    /// always may: there is nothing to guard.
    pub fn check(
        &self,
        rules: &CostRules,
        user: Option<&str>,
        class: CallClass,
        now: Instant,
    ) -> Result<(), OverBudget> {
        if rules.rate(class) == Money::ZERO {
            return Ok(());
        }
        if let (Some(user), Some(limit)) = (user, rules.per_user_per_hour) {
            let spent = self.spent(Some(user), now);
            if spent >= limit {
                return Err(OverBudget {
                    budget: Budget::User,
                    spent,
                    limit,
                });
            }
        }
        if let Some(limit) = rules.per_hour {
            let spent = self.spent(None, now);
            if spent >= limit {
                return Err(OverBudget {
                    budget: Budget::Total,
                    spent,
                    limit,
                });
            }
        }
        Ok(())
    }

    /// The call `key` of `user`, of `class`, was answered at `now`: it costs from now on at
    /// the class's rate. A call that costs nothing is not kept.
    pub fn answered(
        &mut self,
        rules: &CostRules,
        key: K,
        user: Option<&str>,
        class: CallClass,
        now: Instant,
    ) {
        self.forget_old(now);
        let rate = rules.rate(class);
        if rate == Money::ZERO || self.calls.iter().any(|c| c.key == key) {
            return;
        }
        self.calls.push(PricedCall {
            key,
            user: user.map(str::to_string),
            rate,
            answered: now,
            ended: None,
        });
    }

    /// The call `key` ended at `now` (unknown or already ended calls are ignored): its cost
    /// stays in the window until it slides past.
    pub fn ended(&mut self, key: K, now: Instant) {
        for call in self.calls.iter_mut().filter(|c| c.key == key) {
            call.ended.get_or_insert(now);
        }
        self.forget_old(now);
    }

    /// Whether a call is being counted as running.
    pub fn is_running(&self, key: K) -> bool {
        self.calls.iter().any(|c| c.key == key && c.ended.is_none())
    }

    /// The earliest time a running call could take a spend to its limit (now, if one has
    /// already): the time to call [`CostGuard::handle_timeout`]. `None` while no priced
    /// call runs or no limit applies to them.
    ///
    /// Worked out as if nothing slid out of the window meanwhile, so it is never late;
    /// when old cost did slide out, the limit is not reached yet and the next deadline
    /// follows.
    pub fn poll_timeout(&self, rules: &CostRules, now: Instant) -> Option<Instant> {
        let window_start = now.checked_sub(COST_WINDOW);
        let mut earliest: Option<Instant> = None;
        let mut consider = |spent: u128, growth: u128, limit: Money| {
            if growth == 0 {
                return;
            }
            let limit = u128::from(limit.0) * MS_PER_MINUTE;
            let ms = limit.saturating_sub(spent).div_ceil(growth);
            let at = now + Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX / 2));
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        };
        if let Some(limit) = rules.per_hour {
            let (spent, growth) = self.totals(None, window_start, now);
            consider(spent, growth, limit);
        }
        if let Some(limit) = rules.per_user_per_hour {
            for user in self.running_users() {
                let (spent, growth) = self.totals(Some(user), window_start, now);
                consider(spent, growth, limit);
            }
        }
        earliest
    }

    /// The running calls whose user's spend, or the spend in all, has reached its limit at
    /// `now`: each is stopped being counted here, and the server is to end it. Reaching
    /// the limit in all ends every running priced call: each of them would take it further.
    pub fn handle_timeout(&mut self, rules: &CostRules, now: Instant) -> Vec<CutCall<K>> {
        let mut cut: Vec<CutCall<K>> = Vec::new();
        if let Some(limit) = rules.per_user_per_hour {
            let users: Vec<String> = self.running_users().map(str::to_string).collect();
            for user in users {
                let spent = self.spent(Some(&user), now);
                if spent >= limit {
                    let over = OverBudget {
                        budget: Budget::User,
                        spent,
                        limit,
                    };
                    self.cut(
                        |c| c.user.as_deref() == Some(user.as_str()),
                        over,
                        now,
                        &mut cut,
                    );
                }
            }
        }
        if let Some(limit) = rules.per_hour {
            let spent = self.spent(None, now);
            if spent >= limit {
                let over = OverBudget {
                    budget: Budget::Total,
                    spent,
                    limit,
                };
                self.cut(|_| true, over, now, &mut cut);
            }
        }
        self.forget_old(now);
        cut
    }

    /// Ends the running calls that `which` picks at `now`, noting them in `cut`.
    fn cut(
        &mut self,
        which: impl Fn(&PricedCall<K>) -> bool,
        over: OverBudget,
        now: Instant,
        cut: &mut Vec<CutCall<K>>,
    ) {
        for call in self
            .calls
            .iter_mut()
            .filter(|c| c.ended.is_none() && which(c))
        {
            call.ended = Some(now);
            cut.push(CutCall {
                key: call.key,
                user: call.user.clone(),
                over,
            });
        }
    }

    /// The users with a running priced call, each once.
    fn running_users(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::new();
        self.calls
            .iter()
            .filter(|c| c.ended.is_none())
            .filter_map(|c| c.user.as_deref())
            .filter(move |u| {
                let new = !seen.contains(u);
                if new {
                    seen.push(u);
                }
                new
            })
    }

    /// Spend (unrounded) and growth per ms of `user`'s calls, or everyone's.
    fn totals(
        &self,
        user: Option<&str>,
        window_start: Option<Instant>,
        now: Instant,
    ) -> (u128, u128) {
        self.calls
            .iter()
            .filter(|c| user.is_none() || c.user.as_deref() == user)
            .fold((0, 0), |(spent, growth), c| {
                (
                    spent + c.cost_within(window_start, now),
                    growth + c.growth(),
                )
            })
    }

    /// Drops the calls that ended before the window: they cost nothing within it any more.
    fn forget_old(&mut self, now: Instant) {
        if let Some(window_start) = now.checked_sub(COST_WINDOW) {
            self.calls
                .retain(|c| c.ended.is_none_or(|ended| ended > window_start));
        }
    }
}

/// Whole thousandths of a cost sum (rounded down: the limit is reached only once the sum
/// has actually got there).
fn money_of(sum: u128) -> Money {
    Money(u64::try_from(sum / MS_PER_MINUTE).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn euros(millis: u64) -> Money {
        Money::from_millis(millis)
    }

    /// Premium at 2.00 €/min, international at 0.25 €/min; 5.00 € per user, 8.00 € in all.
    fn rules() -> CostRules {
        CostRules {
            rates: [
                (CallClass::Premium, euros(2000)),
                (CallClass::International, euros(250)),
                (CallClass::Mobile, euros(90)),
            ]
            .into_iter()
            .collect(),
            per_user_per_hour: Some(euros(5000)),
            per_hour: Some(euros(8000)),
        }
    }

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(60 * m)
    }

    /// A start well after the clock's origin, so the hour before it exists.
    fn start() -> Instant {
        Instant::now() + Duration::from_secs(7200)
    }

    #[test]
    fn money_shows_two_decimals_or_three_for_tenths_of_a_cent() {
        assert_eq!(euros(5000).to_string(), "5.00");
        assert_eq!(euros(90).to_string(), "0.09");
        assert_eq!(euros(125).to_string(), "0.125");
        assert_eq!(euros(0).to_string(), "0.00");
        assert_eq!(euros(12_345_670).to_string(), "12345.67");
    }

    #[test]
    fn an_ended_call_costs_its_minutes_at_its_rate() {
        let rules = rules();
        let t0 = start();
        let mut guard = CostGuard::new();
        guard.answered(&rules, 1, Some("101"), CallClass::International, t0);
        guard.ended(1, t0 + minutes(4));
        assert_eq!(guard.spent(Some("101"), t0 + minutes(10)), euros(1000));
        assert_eq!(guard.spent(None, t0 + minutes(10)), euros(1000));
        assert_eq!(guard.spent(Some("102"), t0 + minutes(10)), Money::ZERO);
    }

    #[test]
    fn a_call_under_the_limit_goes_out_and_one_at_or_over_it_is_refused() {
        let rules = rules();
        let t0 = start();
        let mut guard = CostGuard::new();
        // 2 minutes of premium: 4.00 of the user's 5.00.
        guard.answered(&rules, 1, Some("101"), CallClass::Premium, t0);
        guard.ended(1, t0 + minutes(2));
        let after = t0 + minutes(3);
        assert_eq!(
            guard.check(&rules, Some("101"), CallClass::Premium, after),
            Ok(())
        );
        // 30 more seconds: exactly 5.00, the limit: reached.
        guard.answered(&rules, 2, Some("101"), CallClass::Premium, after);
        guard.ended(2, after + Duration::from_secs(30));
        let at_limit = after + minutes(1);
        assert_eq!(guard.spent(Some("101"), at_limit), euros(5000));
        assert_eq!(
            guard.check(&rules, Some("101"), CallClass::International, at_limit),
            Err(OverBudget {
                budget: Budget::User,
                spent: euros(5000),
                limit: euros(5000)
            })
        );
        // Another user is held to the limit in all only: 5.00 of 8.00.
        assert_eq!(
            guard.check(&rules, Some("102"), CallClass::Premium, at_limit),
            Ok(())
        );
    }

    #[test]
    fn calls_that_cost_nothing_and_emergency_calls_are_never_refused_nor_counted() {
        let mut rules = rules();
        rules.rates.insert(CallClass::Emergency, euros(9000));
        let t0 = start();
        let mut guard = CostGuard::new();
        guard.answered(&rules, 1, Some("101"), CallClass::Premium, t0);
        guard.ended(1, t0 + minutes(5));
        let later = t0 + minutes(6);
        assert!(
            guard
                .check(&rules, Some("101"), CallClass::Premium, later)
                .is_err()
        );
        for free in [CallClass::Emergency, CallClass::Local, CallClass::National] {
            assert_eq!(guard.check(&rules, Some("101"), free, later), Ok(()));
        }
        guard.answered(&rules, 2, Some("101"), CallClass::Emergency, later);
        guard.answered(&rules, 3, Some("101"), CallClass::National, later);
        assert!(!guard.is_running(2) && !guard.is_running(3));
        assert_eq!(guard.poll_timeout(&rules, later), None);
        assert_eq!(
            guard.spent(Some("101"), later + minutes(30)),
            euros(10_000),
            "only the premium call counts"
        );
    }

    #[test]
    fn the_window_slides_past_old_calls() {
        let rules = rules();
        let t0 = start();
        let mut guard = CostGuard::new();
        guard.answered(&rules, 1, Some("101"), CallClass::Premium, t0);
        guard.ended(1, t0 + minutes(3));
        assert_eq!(guard.spent(Some("101"), t0 + minutes(3)), euros(6000));
        // At t0+61 min the first minute is out of the window; at t0+63 min all of it.
        assert_eq!(guard.spent(Some("101"), t0 + minutes(61)), euros(4000));
        assert!(
            guard
                .check(&rules, Some("101"), CallClass::Premium, t0 + minutes(62))
                .is_ok(),
            "2.00 in the window"
        );
        assert_eq!(guard.spent(Some("101"), t0 + minutes(63)), Money::ZERO);
        guard.ended(99, t0 + minutes(64));
        assert!(
            guard.calls.is_empty(),
            "calls past the window are forgotten"
        );
    }

    #[test]
    fn a_running_calls_cost_grows_until_it_reaches_the_limit_and_it_is_cut() {
        let rules = rules();
        let t0 = start();
        let mut guard = CostGuard::new();
        guard.answered(&rules, 7, Some("101"), CallClass::Premium, t0);
        assert_eq!(
            guard.spent(Some("101"), t0 + Duration::from_secs(90)),
            euros(3000)
        );
        // 5.00 at 2.00 a minute: 2.5 minutes after the answer.
        let due = guard.poll_timeout(&rules, t0);
        assert_eq!(due, Some(t0 + Duration::from_secs(150)));
        assert!(
            guard
                .handle_timeout(&rules, t0 + Duration::from_secs(149))
                .is_empty()
        );
        let cut = guard.handle_timeout(&rules, t0 + Duration::from_secs(150));
        assert_eq!(
            cut,
            [CutCall {
                key: 7,
                user: Some("101".into()),
                over: OverBudget {
                    budget: Budget::User,
                    spent: euros(5000),
                    limit: euros(5000)
                }
            }]
        );
        assert!(!guard.is_running(7));
        assert_eq!(guard.poll_timeout(&rules, t0 + minutes(3)), None);
        // Its cost stays until the window slides past it; the server's own end later
        // changes nothing.
        guard.ended(7, t0 + minutes(4));
        assert_eq!(guard.spent(Some("101"), t0 + minutes(10)), euros(5000));
    }

    #[test]
    fn the_limit_in_all_cuts_every_running_priced_call() {
        let rules = rules();
        let t0 = start();
        let mut guard = CostGuard::new();
        // Three users on premium: 6.00 a minute together, under 5.00 each for 2.5 minutes.
        for (key, user) in [(1, "101"), (2, "102"), (3, "103")] {
            guard.answered(&rules, key, Some(user), CallClass::Premium, t0);
        }
        guard.answered(&rules, 4, None, CallClass::Mobile, t0);
        // 8.00 in all at 6.09 a minute: after 78.8 s (rounded up to the millisecond).
        let due = guard.poll_timeout(&rules, t0).expect("a deadline");
        assert_eq!(due, t0 + Duration::from_millis(78_818));
        assert!(guard.check(&rules, None, CallClass::Mobile, due).is_err());
        let cut = guard.handle_timeout(&rules, due);
        let keys: Vec<i32> = cut.iter().map(|c| c.key).collect();
        assert_eq!(keys, [1, 2, 3, 4]);
        assert!(cut.iter().all(|c| c.over.budget == Budget::Total));
        assert_eq!(guard.poll_timeout(&rules, due), None);
    }

    #[test]
    fn a_deadline_that_old_spend_sliding_out_postpones_is_followed_by_the_next() {
        let rules = rules();
        let t0 = start();
        let mut guard = CostGuard::new();
        // 4.00 spent early, then a call at 0.25 a minute from t0+58.
        guard.answered(&rules, 1, Some("101"), CallClass::Premium, t0);
        guard.ended(1, t0 + minutes(2));
        let t1 = t0 + minutes(58);
        guard.answered(&rules, 2, Some("101"), CallClass::International, t1);
        // As if nothing slid out: 1.00 more, 4 minutes.
        let due = guard.poll_timeout(&rules, t1).expect("a deadline");
        assert_eq!(due, t1 + minutes(4));
        // But by then the premium call left the window: not reached, a later deadline.
        assert!(guard.handle_timeout(&rules, due).is_empty());
        let next = guard.poll_timeout(&rules, due).expect("a next deadline");
        assert!(next > due, "{next:?} after {due:?}");
        assert_eq!(guard.spent(Some("101"), due), euros(1000));
    }

    #[test]
    fn a_call_answered_with_the_limit_already_reached_is_cut_at_once() {
        let rules = rules();
        let t0 = start();
        let mut guard = CostGuard::new();
        guard.answered(&rules, 1, Some("101"), CallClass::Premium, t0);
        guard.ended(1, t0 + minutes(3));
        // Placed before, answered after the first call took the spend to 6.00.
        let t1 = t0 + minutes(4);
        guard.answered(&rules, 2, Some("101"), CallClass::Mobile, t1);
        assert_eq!(guard.poll_timeout(&rules, t1), Some(t1));
        let cut = guard.handle_timeout(&rules, t1);
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].key, 2);
    }

    #[test]
    fn without_limits_nothing_is_refused_or_cut() {
        let rules = CostRules {
            per_user_per_hour: None,
            per_hour: None,
            ..rules()
        };
        let t0 = start();
        let mut guard = CostGuard::new();
        guard.answered(&rules, 1, Some("101"), CallClass::Premium, t0);
        assert_eq!(guard.poll_timeout(&rules, t0), None);
        let later = t0 + minutes(50);
        assert!(guard.handle_timeout(&rules, later).is_empty());
        assert_eq!(
            guard.check(&rules, Some("101"), CallClass::Premium, later),
            Ok(())
        );
        assert_eq!(guard.spent(None, later), euros(100_000));
    }

    #[test]
    fn the_clocks_first_hour_has_no_window_start_to_underflow() {
        // Instants near the clock's origin: `now - 1 h` may not exist.
        let rules = rules();
        let mut guard = CostGuard::new();
        let t0 = Instant::now();
        guard.answered(&rules, 1, Some("101"), CallClass::Premium, t0);
        guard.ended(1, t0 + minutes(1));
        assert_eq!(guard.spent(None, t0 + minutes(1)), euros(2000));
    }
}
