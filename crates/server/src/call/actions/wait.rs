//! The `wait` action: a pause (keys pressed meanwhile are only logged).

use std::time::Duration;

use crate::call::logic::{CallLogic, Stop};

impl CallLogic {
    pub(super) async fn wait(&mut self, seconds: u32) -> Result<(), Stop> {
        self.wait_for(Some(Duration::from_secs(u64::from(seconds))))
            .await
    }
}
