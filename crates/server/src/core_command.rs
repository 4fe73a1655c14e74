//! What media sessions ask of call control, which owns the legs.

use crate::ids::LegId;

/// Requests to call control from the media workers.
#[derive(Debug)]
pub enum CoreCommand {
    /// The media worker heard no RTP from the leg's peer for the configured time.
    MediaTimeout(LegId),
}
