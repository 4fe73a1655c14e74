//! The `webrtc_bridge` action: the caller joins `room`, whose stored meeting link (`amtsleitung
//! room link`) brings the external video meeting in as one participant while the room is open
//! (see `meeting_link.rs`). No PIN is asked: the dialplan rule that routes to the bridge is
//! the admission, as for a `conference` action with `pin_prompt = false`.
//!
//! A room without a link is refused rather than joined: the caller dialled to reach a meeting,
//! and a room with nobody from the meeting in it would leave them waiting for people who never
//! come. `dialplan check` cannot see links (they live in the store, and change without a
//! reload), so the refusal happens here, with a log line naming the fix and a prompt.

use crate::call::logic::{CallLogic, Stop};
use crate::call::{Question, Reply};

impl CallLogic {
    /// Runs `webrtc_bridge { room }`.
    pub(super) async fn webrtc_bridge(&mut self, room: &str) -> Result<(), Stop> {
        self.answer();
        match self.io.ask(Question::RoomLinked(room.to_owned())).await {
            Reply::Done(Ok(())) => {}
            Reply::Done(Err(reason)) => {
                tracing::error!(%room, %reason, "webrtc_bridge: the room cannot reach a meeting; caller refused");
                return self.refuse_bridge().await;
            }
            other => {
                tracing::error!(%room, ?other, "room link lookup answered out of turn; caller refused");
                return self.refuse_bridge().await;
            }
        }
        self.conference(Some(room.to_owned()), false).await
    }

    /// The caller hears why and is hung up: no later action runs, since they were routed
    /// here to reach a meeting.
    async fn refuse_bridge(&mut self) -> Result<(), Stop> {
        self.play("service-unavailable").await?;
        self.play("goodbye").await?;
        self.hangup(503)
    }
}
