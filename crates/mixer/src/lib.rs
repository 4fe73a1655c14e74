//! The conference mixer: frames in, frames out, per room.
//!
//! Empty until the conference-rooms issue fills it (sum-minus-self, talker detection, gain,
//! limiter, shared encodes). It will stay pure: no sockets, no clocks, no threads.
