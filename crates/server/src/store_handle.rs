//! The store behind a handle: one thread owns the database connection (SQLite or
//! PostgreSQL; a plain std thread, which the PostgreSQL client needs: see
//! crates/store/src/db.rs) and runs jobs in the order they were queued, from a bounded queue. Nobody else touches the database, so no
//! task ever waits on a lock for it, and a store that stalls fills the queue instead of
//! memory: fire-and-forget writes are then dropped with an error in the log, and callers
//! waiting for an answer get [`StoreUnavailable`] (a room lookup then fails closed).

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Jobs waiting at most.
const QUEUE: usize = 4096;

type Job = Box<dyn FnOnce(&store::Store) + Send>;

/// The store thread did not take or did not finish the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreUnavailable {
    /// Its queue is full: the database is stalled.
    #[error("the store is busy (its queue is full)")]
    Busy,
    /// The thread is gone (the server is stopping, or a job panicked).
    #[error("the store thread is gone")]
    Gone,
}

/// A handle to the store thread; cheap to clone.
#[derive(Clone)]
pub struct StoreHandle {
    jobs: SyncSender<Job>,
}

impl StoreHandle {
    /// Starts the thread that owns `store` from now on.
    pub fn start(store: store::Store) -> std::io::Result<Self> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                for job in queue {
                    job(&store);
                }
            })?;
        Ok(Self { jobs })
    }

    /// Queues `job` and returns at once; `what` names it in the log if it cannot be queued.
    pub fn submit(&self, what: &str, job: impl FnOnce(&store::Store) + Send + 'static) {
        match self.jobs.try_send(Box::new(job)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::error!(what, "store queue full; write dropped")
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!(what, "store thread gone; write dropped")
            }
        }
    }

    /// Runs `job` on the store thread and waits for its result without blocking the async
    /// runtime. A full queue is an immediate [`StoreUnavailable::Busy`].
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&store::Store) -> R + Send + 'static,
    ) -> Result<R, StoreUnavailable> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Box::new(move |store: &store::Store| {
                let _ = reply.send(job(store));
            }))
            .map_err(|err| match err {
                TrySendError::Full(_) => StoreUnavailable::Busy,
                TrySendError::Disconnected(_) => StoreUnavailable::Gone,
            })?;
        answer.await.map_err(|_| StoreUnavailable::Gone)
    }

    /// Runs `job` on the store thread and blocks this (non-async) thread until it is done,
    /// waiting for room in the queue rather than failing: for work that must not be lost
    /// (a call record) and already runs on a blocking thread.
    pub fn run_blocking<R: Send + 'static>(
        &self,
        job: impl FnOnce(&store::Store) -> R + Send + 'static,
    ) -> Result<R, StoreUnavailable> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |store: &store::Store| {
                let _ = reply.send(job(store));
            }))
            .map_err(|_| StoreUnavailable::Gone)?;
        answer.recv().map_err(|_| StoreUnavailable::Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> StoreHandle {
        StoreHandle::start(store::Store::open_in_memory().expect("in-memory store"))
            .expect("store thread")
    }

    #[tokio::test]
    async fn jobs_run_in_order_and_answers_come_back() {
        let store = handle();
        store.submit("room", |s| {
            s.room_create(&store::NewRoom::new("4711", 0))
                .expect("room created");
        });
        // Queued after the write, so it sees it.
        let found = store
            .run(|s| s.room_get("4711").expect("read").map(|r| r.number))
            .await;
        assert_eq!(found, Ok(Some("4711".to_string())));
        let blocking = store.clone();
        let count = tokio::task::spawn_blocking(move || {
            blocking.run_blocking(|s| s.room_list().expect("list").len())
        })
        .await
        .expect("joined");
        assert_eq!(count, Ok(1));
    }

    #[tokio::test]
    async fn a_stalled_store_is_busy_not_a_growing_queue() {
        let store = handle();
        let (release, stalled) = std::sync::mpsc::channel::<()>();
        store.submit("stall", move |_| {
            let _ = stalled.recv();
        });
        for _ in 0..QUEUE {
            store.submit("filler", |_| {});
        }
        assert_eq!(store.run(|_| ()).await, Err(StoreUnavailable::Busy));
        release.send(()).expect("released");
        // Drained: answers again.
        let again = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                if let Ok(x) = store.run(|_| 7).await {
                    return x;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await;
        assert_eq!(again, Ok(7));
    }
}
