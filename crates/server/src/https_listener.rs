//! The admin HTTP server's TLS listener, for browsers: they give a page the microphone only
//! in a secure context. It accepts TCP connections, runs each TLS handshake in a task of its
//! own under a deadline, and hands axum only connections whose handshake finished, so a
//! client that connects and never handshakes (or stalls halfway) holds its own task for at
//! most [`HANDSHAKE_TIMEOUT`], never the accept loop or anybody else's request.
//!
//! The certificate is the one type SIP over TLS uses ([`ServerCertificate`]): the same
//! reload when its files change, and the very same instance when both use the same files.
//!
//! No `Strict-Transport-Security`: HSTS binds a host name on every port (RFC 6797 §8.3), so
//! a browser that saw it would also turn `http://host:8080` (the plain listener, which keeps
//! serving) into `https://host:8080` and fail. Whoever owns the name can add it at a proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::HttpsSettings;
use crate::tls::ServerCertificate;

/// How long a client has from connecting to finishing its TLS handshake. A browser on a
/// slow mobile link needs a few round trips; ten seconds is generous for that and short
/// enough that idle connections cannot pile up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; a connection beyond is closed at once. Each costs a task
/// and a rustls connection (tens of KiB); legitimate load is a few per second.
const MAX_HANDSHAKES: usize = 256;

/// Finished handshakes waiting for axum to take them (it takes each at once).
const ESTABLISHED_QUEUE: usize = 64;

/// The certificate the HTTPS listener presents: SIP's instance when `settings` names the
/// files SIP over TLS already serves (one reload, one log line), else loaded from them. An
/// error names the config keys, the file and the cause.
pub fn certificate(
    settings: &HttpsSettings,
    sip: Option<&Arc<ServerCertificate>>,
) -> anyhow::Result<Arc<ServerCertificate>> {
    if let Some(sip) = sip.filter(|sip| sip.is_loaded_from(&settings.certificate, &settings.key)) {
        return Ok(sip.clone());
    }
    let loaded = ServerCertificate::load(&settings.certificate, &settings.key)
        .with_context(|| format!("HTTPS certificate ({})", settings.keys))?;
    Ok(Arc::new(loaded))
}

/// A bound HTTPS port whose connections come out TLS-established (see the module doc).
pub struct HttpsListener {
    established: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl HttpsListener {
    /// Binds `listen` and starts accepting; handshakes present `certificate`.
    pub async fn bind(
        listen: SocketAddr,
        certificate: Arc<ServerCertificate>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|err| anyhow::anyhow!("cannot bind admin HTTPS {listen}: {err}"))?;
        let local = listener.local_addr()?;
        let mut config = certificate.server_config()?;
        // HTTP/1.1 is all axum serves here. Naming it makes a client that would speak
        // another protocol over this port fail the handshake instead (RFC 7301 §3.2).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, established) = mpsc::channel(ESTABLISHED_QUEUE);
        tokio::spawn(accept_handshakes(listener, acceptor, certificate, tx));
        Ok(Self { established, local })
    }

    /// The address bound (the port chosen when `listen` asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.local
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.established.recv().await {
            Some(connection) => connection,
            // The accept loop never ends on its own; if it did, nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Accepts connections for as long as someone takes the established ones.
async fn accept_handshakes(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    certificate: Arc<ServerCertificate>,
    established: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    while !established.is_closed() {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!("admin HTTPS accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = handshakes.clone().try_acquire_owned() else {
            crate::telemetry::count(crate::telemetry::HTTPS_HANDSHAKE_FAILURES_TOTAL);
            tracing::warn!(from = %peer, "too many HTTPS handshakes at once; refusing");
            continue;
        };
        certificate.refresh_if_changed(Instant::now());
        let acceptor = acceptor.clone();
        let established = established.clone();
        tokio::spawn(async move {
            let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(slot);
            match outcome {
                Ok(Ok(tls)) => {
                    // Fails only when the server is gone; the connection just closes then.
                    let _ = established.send((tls, peer)).await;
                }
                Ok(Err(err)) => {
                    crate::telemetry::count(crate::telemetry::HTTPS_HANDSHAKE_FAILURES_TOTAL);
                    tracing::info!(from = %peer, "HTTPS handshake failed: {err}");
                }
                Err(_) => {
                    crate::telemetry::count(crate::telemetry::HTTPS_HANDSHAKE_FAILURES_TOTAL);
                    tracing::info!(from = %peer, "HTTPS handshake timed out");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_certificate_is_named_with_its_keys_and_the_cause() {
        let settings = HttpsSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            certificate: "/nonexistent/amt-web.pem".into(),
            key: "/nonexistent/amt-web.key".into(),
            keys: "https-certificate, https-key",
        };
        let err = format!("{:#}", certificate(&settings, None).unwrap_err());
        assert!(err.contains("https-certificate, https-key"), "{err}");
        assert!(err.contains("/nonexistent/amt-web.pem"), "{err}");
        assert!(err.contains("No such file"), "{err}");
    }
}
