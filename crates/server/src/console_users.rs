//! The console's users-and-phones pages and API (admins: every user; staff: their own phone).
//! Routes are merged into `Console::routes`.

use axum::Router;

use crate::console::Listener;

pub(crate) fn routes() -> Router<Listener> {
    Router::new()
}
