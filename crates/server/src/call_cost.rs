//! The per-hour cost guard in the server: the last hour's spend of calls out
//! ([`trunks::CostGuard`], keyed by the placed leg), kept where call control prices, refuses
//! and cuts calls out and `/metrics` reads it.
//!
//! The prices and limits come from the trunks file in force (`[cost-guard]`), looked up at
//! each step, so a reload applies to the next call while the spend so far is kept.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use trunks::{Budget, CostGuard};

use crate::ids::LegId;
use crate::telemetry;

/// The spend of calls out, shared by call control and the admin API.
#[derive(Default)]
pub struct CallCosts(Mutex<CostGuard<LegId>>);

impl CallCosts {
    /// The guard, for one step (taken and given back within the core loop's turn; the
    /// admin API only reads the spend).
    pub fn guard(&self) -> MutexGuard<'_, CostGuard<LegId>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a call out refused at `budget`'s limit, for `/metrics`.
    pub fn refused(budget: Budget) {
        metrics::counter!(telemetry::CALLS_REFUSED_COST_TOTAL, "limit" => limit_label(budget))
            .increment(1);
    }

    /// Counts a running call out ended at `budget`'s limit, for `/metrics`.
    pub fn cut(budget: Budget) {
        metrics::counter!(telemetry::CALLS_CUT_COST_TOTAL, "limit" => limit_label(budget))
            .increment(1);
    }

    /// What calls out cost in the last 60 minutes as of `now`, for `/metrics`.
    pub fn spent_last_hour(&self, now: Instant) -> f64 {
        self.guard().spent(None, now).as_units()
    }
}

fn limit_label(budget: Budget) -> &'static str {
    match budget {
        Budget::User => "user",
        Budget::Total => "total",
    }
}

/// Why a running call out was ended, as its BYE's Reason and its call record say.
pub fn cut_reason(budget: Budget) -> &'static str {
    match budget {
        Budget::User => "cost guard: the user's limit for the hour is reached",
        Budget::Total => "cost guard: the limit for the hour in all is reached",
    }
}
