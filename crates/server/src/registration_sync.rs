//! A pool's nodes share one store (PostgreSQL, `[store] url`): a phone that registered
//! through one node must be reachable from every other, e.g. after that node died. Each node
//! looks at the store's change counter every [`SYNC_INTERVAL`] (it moves when another
//! connection wrote) and then, and at least every [`FULL_SYNC_INTERVAL`], reads the
//! unexpired registrations and hands them to the registrar, which adds the bindings it lacks
//! ([`crate::registrar::RegistrarService::learn_stored`]). Bindings are never removed this
//! way: one that another node removed lapses here at its expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::shared::Shared;

/// How often the change counter is read: a binding reaches the other nodes within this.
const SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// Registrations are read at least this often, so that a refresh another node took (which
/// this node's copy of the binding does not see) is learned once this node's copy lapsed.
const FULL_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Starts the loop; the registrations go to `learned` (the SIP core).
pub fn spawn(shared: Arc<Shared>, learned: mpsc::Sender<Vec<store::UserBinding>>) {
    tokio::spawn(async move {
        let mut seen: Option<i64> = None;
        let mut last_full = Instant::now();
        let mut interval = tokio::time::interval(SYNC_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let full = last_full.elapsed() >= FULL_SYNC_INTERVAL;
            let known = seen;
            let pass = shared
                .store
                .run(move |store| {
                    let changes = store.external_change_counter().ok();
                    if !full && changes.is_some() && changes == known {
                        return (changes, None);
                    }
                    let now_ms = jiff::Timestamp::now().as_millisecond();
                    match store.registrations_unexpired(now_ms) {
                        Ok(stored) => (changes, Some(stored)),
                        Err(err) => {
                            tracing::warn!("registrations not read from the store: {err}");
                            (None, None)
                        }
                    }
                })
                .await;
            let Ok((changes, stored)) = pass else {
                continue;
            };
            seen = changes;
            if let Some(stored) = stored {
                last_full = Instant::now();
                if learned.send(stored).await.is_err() {
                    return;
                }
            }
        }
    });
}
