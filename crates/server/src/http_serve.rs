//! Serves the admin HTTP and HTTPS listeners over hyper's HTTP/1.1 connection, with the
//! limits `axum::serve` does not set: a client must send a request's headers within
//! [`HEADER_READ_TIMEOUT`] (also the next request's on a kept-alive connection), and at most
//! [`MAX_CONNECTIONS`] connections are open per listener. Without them a client that
//! connects and sends nothing, or sends headers one byte a minute, keeps a connection and a
//! file descriptor for ever, and a few thousand such clients take the descriptors that SIP
//! over TCP and the calls' RTP sockets need. The HTTPS port faces browsers outside.
//!
//! A response that streams for long (server-sent events) is not cut: only waiting for a
//! request's headers is timed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How long a client has to send a request's headers. A browser sends them at once; ten
/// seconds covers a slow mobile link.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Open connections per listener at most; one beyond is closed at once. Browsers keep a
/// few each, a join page one more for its participant list.
pub const MAX_CONNECTIONS: usize = 2048;

/// Serves `app` on `listener` until the process ends; handlers see the client's address as
/// `ConnectInfo<SocketAddr>`. `name` goes into log lines.
pub async fn serve<L>(mut listener: L, app: Router, name: &'static str)
where
    L: Listener<Addr = SocketAddr>,
    L::Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (io, peer) = listener.accept().await;
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            crate::telemetry::count(crate::telemetry::HTTP_CONNECTIONS_REFUSED_TOTAL);
            tracing::warn!(from = %peer, "{name}: {MAX_CONNECTIONS} connections open; refusing");
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(request)
                });
            let mut connection = hyper::server::conn::http1::Builder::new();
            connection
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            if let Err(err) = connection.serve_connection(TokioIo::new(io), service).await {
                tracing::debug!(from = %peer, "{name} connection ended: {err}");
            }
            drop(permit);
        });
    }
}
