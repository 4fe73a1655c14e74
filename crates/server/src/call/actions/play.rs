//! The `play` action: answer, then a prompt to its end (a key press cuts it short).

use crate::call::logic::{CallLogic, Stop};

impl CallLogic {
    pub(super) async fn play_action(&mut self, sound: &str) -> Result<(), Stop> {
        self.answer();
        self.play(sound).await
    }
}
