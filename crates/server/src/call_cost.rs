//! The per-hour cost guard in the server: the last hour's spend of calls out
//! ([`trunks::CostGuard`], keyed by the placed leg), kept where call control prices, refuses
//! and cuts calls out and `/metrics` reads it.
//!
//! The prices and limits come from the trunks file in force (`[cost-guard]`), looked up at
//! each step, so a reload applies to the next call while the spend so far is kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use trunks::{Budget, CostGuard};

use crate::ids::LegId;

/// Calls out refused because the user's hourly limit was reached.
static REFUSED_USER: AtomicU64 = AtomicU64::new(0);
/// Calls out refused because the hourly limit in all was reached.
static REFUSED_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Running calls out ended at the user's hourly limit.
static CUT_USER: AtomicU64 = AtomicU64::new(0);
/// Running calls out ended at the hourly limit in all.
static CUT_TOTAL: AtomicU64 = AtomicU64::new(0);

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
        match budget {
            Budget::User => &REFUSED_USER,
            Budget::Total => &REFUSED_TOTAL,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a running call out ended at `budget`'s limit, for `/metrics`.
    pub fn cut(budget: Budget) {
        match budget {
            Budget::User => &CUT_USER,
            Budget::Total => &CUT_TOTAL,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// The guard's lines of `/metrics` as of `now`.
    pub fn metrics(&self, now: Instant) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let spent = self.guard().spent(None, now);
        format!(
            "# HELP amtsleitung_calls_refused_cost_total Calls out refused because the last hour's spend had reached a [cost-guard] limit.\n\
             # TYPE amtsleitung_calls_refused_cost_total counter\n\
             amtsleitung_calls_refused_cost_total{{limit=\"user\"}} {}\n\
             amtsleitung_calls_refused_cost_total{{limit=\"total\"}} {}\n\
             # HELP amtsleitung_calls_cut_cost_total Running calls out ended because they took the last hour's spend to a [cost-guard] limit.\n\
             # TYPE amtsleitung_calls_cut_cost_total counter\n\
             amtsleitung_calls_cut_cost_total{{limit=\"user\"}} {}\n\
             amtsleitung_calls_cut_cost_total{{limit=\"total\"}} {}\n\
             # HELP amtsleitung_cost_last_hour What calls out cost in the last 60 minutes, at the [cost-guard] rates (in their currency).\n\
             # TYPE amtsleitung_cost_last_hour gauge\n\
             amtsleitung_cost_last_hour {spent}\n",
            load(&REFUSED_USER),
            load(&REFUSED_TOTAL),
            load(&CUT_USER),
            load(&CUT_TOTAL),
        )
    }
}

/// Why a running call out was ended, as its BYE's Reason and its call record say.
pub fn cut_reason(budget: Budget) -> &'static str {
    match budget {
        Budget::User => "cost guard: the user's limit for the hour is reached",
        Budget::Total => "cost guard: the limit for the hour in all is reached",
    }
}
