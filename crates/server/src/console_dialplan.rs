//! The console's dialplan pages and API (admins only). Routes are merged into
//! `Console::routes`.

use axum::Router;

use crate::console::Listener;

pub(crate) fn routes() -> Router<Listener> {
    Router::new()
}
