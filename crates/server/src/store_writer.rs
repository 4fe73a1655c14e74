//! Writes to the store from the signalling task without waiting for the database: jobs go
//! through a bounded queue to one thread, which runs them in the order they were queued.

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use crate::shared::Shared;

/// Jobs waiting at most; beyond, new ones are dropped with an error in the log (a store that
/// stalls must not grow memory without bound).
const QUEUE: usize = 4096;

type Job = Box<dyn FnOnce(&store::Store) + Send>;

/// A handle to the writer thread.
#[derive(Clone)]
pub struct StoreWriter {
    jobs: SyncSender<Job>,
}

impl StoreWriter {
    /// Starts the writer thread on the shared store.
    pub fn start(shared: Arc<Shared>) -> std::io::Result<Self> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                for job in queue {
                    let store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
                    job(&store);
                }
            })?;
        Ok(Self { jobs })
    }

    /// Queues `job`; `what` names it in the log if the queue is full.
    pub fn submit(&self, what: &str, job: impl FnOnce(&store::Store) + Send + 'static) {
        match self.jobs.try_send(Box::new(job)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::error!(what, "store write queue full; write dropped")
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!(what, "store writer gone; write dropped")
            }
        }
    }
}
