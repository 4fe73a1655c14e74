//! The `echo` action: the caller hears themselves until they hang up.

use crate::call::MediaAction;
use crate::call::logic::{CallLogic, Stop};

impl CallLogic {
    pub(super) async fn echo(&mut self) -> Result<(), Stop> {
        self.answer();
        self.media(MediaAction::Echo);
        self.wait_for(None).await
    }
}
