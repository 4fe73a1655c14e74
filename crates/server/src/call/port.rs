//! The call logic's only window on the world: inputs it has not read yet, outputs nobody has
//! taken yet, the reply to its one open question, the time, and the deadline it waits for.
//!
//! The logic is written as sequential `async` code (an IVR reads best in the order a caller
//! hears it), but nothing in it ever waits on a runtime: its futures complete only from what
//! [`super::Call`] put into the port, and they are polled by hand. So the compiler builds the
//! state machine, and the machine stays sans-IO.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Instant;

use super::{Input, Output, Question, Reply};

/// What passes between [`super::Call`] and the logic it drives.
pub(super) struct Port {
    /// The time of the event being handled.
    pub(super) now: Instant,
    pub(super) inputs: VecDeque<Input>,
    pub(super) outputs: VecDeque<Output>,
    pub(super) reply: Option<Reply>,
    /// When the logic wants to be woken with no input (`None`: only an input wakes it).
    pub(super) deadline: Option<Instant>,
}

/// The logic's handle on the port. The lock is never contended: the logic only runs while
/// its `Call` polls it, on the same thread.
#[derive(Clone)]
pub(super) struct Io(Arc<Mutex<Port>>);

impl Io {
    pub(super) fn new(now: Instant) -> Self {
        Self(Arc::new(Mutex::new(Port {
            now,
            inputs: VecDeque::new(),
            outputs: VecDeque::new(),
            reply: None,
            deadline: None,
        })))
    }

    pub(super) fn port(&self) -> MutexGuard<'_, Port> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The time of the event being handled.
    pub(super) fn now(&self) -> Instant {
        self.port().now
    }

    pub(super) fn emit(&self, output: Output) {
        self.port().outputs.push_back(output);
    }

    /// Puts an input back at the end of the queue, for a later reader.
    pub(super) fn requeue(&self, input: Input) {
        self.port().inputs.push_back(input);
    }

    /// The next input, or `None` once `deadline` has passed without one. Inputs that came
    /// first win over a deadline that passed meanwhile: an answer that arrived just before
    /// the ring time ran out is an answer.
    pub(super) async fn next(&self, deadline: Option<Instant>) -> Option<Input> {
        poll_fn(|_| {
            let mut port = self.port();
            if let Some(input) = port.inputs.pop_front() {
                port.deadline = None;
                return Poll::Ready(Some(input));
            }
            if deadline.is_some_and(|at| port.now >= at) {
                port.deadline = None;
                return Poll::Ready(None);
            }
            port.deadline = deadline;
            Poll::Pending
        })
        .await
    }

    /// Asks `question` and waits for its reply (inputs meanwhile stay queued).
    pub(super) async fn ask(&self, question: Question) -> Reply {
        let mut question = Some(question);
        poll_fn(|_| {
            let mut port = self.port();
            if let Some(question) = question.take() {
                port.reply = None;
                port.deadline = None;
                port.outputs.push_back(Output::Ask(question));
                return Poll::Pending;
            }
            match port.reply.take() {
                Some(reply) => Poll::Ready(reply),
                None => Poll::Pending,
            }
        })
        .await
    }
}
