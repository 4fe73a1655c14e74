//! SIP for amtsleitung: message parsing and validation (on `rsip`), a sans-IO RFC 3261
//! transaction and dialog layer, digest authentication (the server's challenges and the
//! client's answers), the registrar's bindings, registering with a carrier as a client, and
//! protection against abusive sources (bans, rate limits, trusted networks).
//!
//! Nothing here touches a socket or reads a clock: the caller feeds datagrams/stream bytes and
//! the current `Instant` (wall-clock time for digest nonces, which outlive a restart), and
//! drains messages to send, events and the next deadline. It does not know about media,
//! dialplans or call control.

mod bounded;
pub mod dialog;
pub mod digest;
pub mod message;
pub mod qualify;
pub mod refer;
pub mod registrar;
pub mod registration;
pub mod security;
pub mod session_timer;
pub mod subscription;
pub mod transaction;
