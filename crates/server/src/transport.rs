//! SIP transports: one UDP socket, a TCP listener and, with a certificate, a TLS listener
//! (RFC 3261 §26.2), feeding raw messages to the SIP core; and the TCP and TLS connections we
//! open ourselves to carriers.
//!
//! Bytes in, bytes out; parsing and all protocol decisions happen in the core and the `sip`
//! crate. Every stream connection, TCP or TLS, accepted or opened, is the same thing here: a
//! reader task (framing by Content-Length) and a writer queue the core addresses by
//! connection id. They share one bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sip::message::StreamFramer;
use sip::transaction::{Peer, TransportKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::tls::{ClientProfile, ServerCertificate};

/// Largest UDP datagram we read; RFC 3261 §18.1.1 messages over 1300 bytes should use TCP, but
/// we accept up to the IP limit and let the parser reject oversized ones.
const MAX_DATAGRAM: usize = 65_535;
/// Open stream connections (TCP and TLS, accepted and opened, handshaking included) we keep
/// at most (bounded everything).
const MAX_STREAM_CONNECTIONS: usize = 4096;
/// TLS destinations configured (carriers' addresses) at most.
const MAX_TLS_PROFILES: usize = 1024;
/// Messages queued for one connection's writer at most.
const WRITER_QUEUE: usize = 256;
/// How long a TLS handshake, or opening a connection, may take: a peer that stalls it
/// holds one connection slot no longer than this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One message (or unparseable garbage) that arrived.
#[derive(Debug)]
pub struct Inbound {
    /// Raw bytes of one message.
    pub bytes: Vec<u8>,
    /// Who sent it and over what.
    pub peer: Peer,
}

/// Where the TLS listener binds and what it presents.
#[derive(Debug, Clone)]
pub struct TlsListen {
    /// Listen address.
    pub addr: SocketAddr,
    /// The certificate, reloaded when its files change.
    pub certificate: Arc<ServerCertificate>,
}

/// A stream connection's writer and what it connects to.
struct StreamEntry {
    tx: mpsc::Sender<Vec<u8>>,
    remote: SocketAddr,
    transport: TransportKind,
}

/// The open stream connections, by id and by remote address (to reuse one, RFC 3261 §18.1.1:
/// a request to a destination we already hold a connection to goes over it).
#[derive(Default)]
struct StreamTable {
    by_id: HashMap<u64, StreamEntry>,
    by_remote: HashMap<(SocketAddr, TransportKind), u64>,
}

impl StreamTable {
    fn insert(&mut self, id: u64, entry: StreamEntry) {
        self.by_remote.insert((entry.remote, entry.transport), id);
        self.by_id.insert(id, entry);
    }

    fn remove(&mut self, id: u64) {
        if let Some(entry) = self.by_id.remove(&id) {
            let key = (entry.remote, entry.transport);
            if self.by_remote.get(&key) == Some(&id) {
                self.by_remote.remove(&key);
            }
        }
    }

    fn writer_to(
        &self,
        remote: SocketAddr,
        transport: TransportKind,
    ) -> Option<mpsc::Sender<Vec<u8>>> {
        let id = self.by_remote.get(&(remote, transport))?;
        self.by_id.get(id).map(|e| e.tx.clone())
    }
}

/// State shared by the listeners, the connections and the handle.
struct Streams {
    table: Mutex<StreamTable>,
    next_id: AtomicU64,
    /// One permit per open connection, across TCP and TLS, in and out.
    slots: Arc<Semaphore>,
    inbound: mpsc::Sender<Inbound>,
    /// How to check carriers we open TLS connections to, by address.
    tls_profiles: Mutex<HashMap<SocketAddr, ClientProfile>>,
}

impl Streams {
    fn table(&self) -> std::sync::MutexGuard<'_, StreamTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Sends bytes to peers over the transport they came from.
#[derive(Clone)]
pub struct TransportHandle {
    udp: Arc<UdpSocket>,
    streams: Arc<Streams>,
    local: SocketAddr,
    tls_local: Option<SocketAddr>,
}

impl TransportHandle {
    /// Sends one message; failures are logged, never fatal (the peer may be gone).
    pub fn send(&self, peer: &Peer, bytes: Vec<u8>) {
        match peer.transport {
            TransportKind::Udp => {
                if let Err(err) = self.udp.try_send_to(&bytes, peer.addr) {
                    tracing::debug!(to = %peer.addr, "UDP send failed: {err}");
                }
            }
            TransportKind::Tcp | TransportKind::Tls => self.send_on_stream(peer, bytes),
        }
    }

    fn send_on_stream(&self, peer: &Peer, bytes: Vec<u8>) {
        let writer = {
            let table = self.streams.table();
            peer.connection
                .and_then(|id| table.by_id.get(&id).map(|e| e.tx.clone()))
                .or_else(|| table.writer_to(peer.addr, peer.transport))
        };
        if let Some(tx) = writer {
            if tx.try_send(bytes).is_err() {
                tracing::warn!(to = %peer.addr, transport = %peer.transport.via_name(), "connection backlogged or closed; message dropped");
            }
            return;
        }
        let is_response = bytes.starts_with(b"SIP/2.0 ");
        let destination = match (peer.connection, is_response) {
            // A destination of our own choosing (a carrier): open a connection to it.
            (None, _) => Some(peer.addr),
            // RFC 3261 §18.2.2: the connection a request came on is gone; the response
            // goes over a new one to the `received` address and the sent-by port.
            (Some(_), true) => reconnect_destination(&bytes),
            // A request on a flow that closed (a phone's registration connection): the
            // phone's source port takes no connections, and RFC 5626 §4.4 has it open a
            // new flow and register again.
            (Some(_), false) => None,
        };
        match destination {
            Some(addr) => self.open(addr, peer.transport, bytes),
            None => {
                tracing::debug!(to = %peer.addr, transport = %peer.transport.via_name(), "connection gone; message dropped")
            }
        }
    }

    /// Opens a connection to `addr` and sends `first` once it is up; later messages to the
    /// same address and transport queue behind it.
    fn open(&self, addr: SocketAddr, transport: TransportKind, first: Vec<u8>) {
        let Ok(permit) = self.streams.slots.clone().try_acquire_owned() else {
            tracing::warn!(to = %addr, "too many connections; not opening another");
            return;
        };
        let profile = match transport {
            TransportKind::Tls => {
                let configured = self
                    .streams
                    .tls_profiles
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&addr)
                    .cloned();
                match configured.map_or_else(|| crate::tls::default_profile(addr), Ok) {
                    Ok(profile) => Some(profile),
                    Err(err) => {
                        tracing::warn!(to = %addr, "cannot open TLS: {err:#}");
                        return;
                    }
                }
            }
            TransportKind::Tcp | TransportKind::Udp => None,
        };
        let id = self.streams.next_id();
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        // Cannot fail: the queue is new and empty.
        let _ = tx.try_send(first);
        self.streams.table().insert(
            id,
            StreamEntry {
                tx,
                remote: addr,
                transport,
            },
        );
        let streams = self.streams.clone();
        tokio::spawn(async move {
            let peer = Peer {
                addr,
                transport,
                connection: Some(id),
            };
            let connected = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr)).await;
            let stream = match connected {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::info!(to = %addr, transport = %transport.via_name(), "cannot connect: {err}");
                    streams.table().remove(id);
                    return;
                }
                Err(_) => {
                    tracing::info!(to = %addr, transport = %transport.via_name(), "connecting timed out");
                    streams.table().remove(id);
                    return;
                }
            };
            match profile {
                None => run_connection(stream, peer, rx, streams, permit).await,
                Some(profile) => {
                    let connector = tokio_rustls::TlsConnector::from(profile.config.clone());
                    let handshake = tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        connector.connect(profile.server_name.clone(), stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls)) => {
                            tracing::info!(to = %addr, server_name = ?profile.server_name, "TLS connection opened");
                            run_connection(tls, peer, rx, streams, permit).await
                        }
                        Ok(Err(err)) => {
                            crate::telemetry::count(crate::telemetry::TLS_HANDSHAKE_FAILURES_TOTAL);
                            tracing::warn!(to = %addr, server_name = ?profile.server_name, "TLS handshake failed: {err}");
                            streams.table().remove(id);
                        }
                        Err(_) => {
                            crate::telemetry::count(crate::telemetry::TLS_HANDSHAKE_FAILURES_TOTAL);
                            tracing::warn!(to = %addr, "TLS handshake timed out");
                            streams.table().remove(id);
                        }
                    }
                }
            }
        });
    }

    /// Checks a TLS connection we open to `addr` with `profile` (a carrier's name and trust
    /// anchors) instead of the system's trust store and the bare address.
    pub fn add_tls_destination(&self, addr: SocketAddr, profile: ClientProfile) {
        let mut profiles = self
            .streams
            .tls_profiles
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if profiles.len() >= MAX_TLS_PROFILES && !profiles.contains_key(&addr) {
            tracing::warn!(to = %addr, "too many TLS destinations configured; using the defaults for this one");
            return;
        }
        profiles.insert(addr, profile);
    }

    /// The address we listen on (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address the TLS listener has, when there is one.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_local
    }
}

/// Where a response goes when its connection is gone (RFC 3261 §18.2.2).
fn reconnect_destination(bytes: &[u8]) -> Option<SocketAddr> {
    match sip::message::parse(bytes) {
        Ok(rsip::SipMessage::Response(response)) => sip::message::reconnect_destination(&response),
        Ok(rsip::SipMessage::Request(_)) | Err(_) => None,
    }
}

/// Binds UDP and TCP on `listen` (and TLS on `tls` when given) and starts the reader tasks.
pub async fn start(
    listen: SocketAddr,
    tls: Option<TlsListen>,
    inbound: mpsc::Sender<Inbound>,
) -> anyhow::Result<TransportHandle> {
    let udp = Arc::new(
        UdpSocket::bind(listen)
            .await
            .map_err(|err| anyhow::anyhow!("cannot bind SIP UDP {listen}: {err}"))?,
    );
    let local = udp.local_addr()?;
    let tcp = TcpListener::bind(local)
        .await
        .map_err(|err| anyhow::anyhow!("cannot bind SIP TCP {local}: {err}"))?;
    let tls_listener = match &tls {
        Some(tls) => {
            let listener = TcpListener::bind(tls.addr)
                .await
                .map_err(|err| anyhow::anyhow!("cannot bind SIP TLS {}: {err}", tls.addr))?;
            let acceptor =
                tokio_rustls::TlsAcceptor::from(Arc::new(tls.certificate.server_config()?));
            Some((listener, acceptor, tls.certificate.clone()))
        }
        None => None,
    };
    let streams = Arc::new(Streams {
        table: Mutex::new(StreamTable::default()),
        next_id: AtomicU64::new(1),
        slots: Arc::new(Semaphore::new(MAX_STREAM_CONNECTIONS)),
        inbound: inbound.clone(),
        tls_profiles: Mutex::new(HashMap::new()),
    });
    let tls_local = match &tls_listener {
        Some((listener, _, _)) => Some(listener.local_addr()?),
        None => None,
    };
    let handle = TransportHandle {
        udp: udp.clone(),
        streams: streams.clone(),
        local,
        tls_local,
    };

    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match udp.recv_from(&mut buf).await {
                Ok((len, addr)) => {
                    let message = Inbound {
                        bytes: buf[..len].to_vec(),
                        peer: Peer {
                            addr,
                            transport: TransportKind::Udp,
                            connection: None,
                        },
                    };
                    // A full queue means the core is overloaded: dropping UDP is what the
                    // sender's retransmission timers are for.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = inbound.try_send(message) {
                        return;
                    }
                }
                Err(err) => tracing::debug!("UDP receive error: {err}"),
            }
        }
    });

    tokio::spawn(accept_loop(tcp, streams.clone(), None));
    if let Some((listener, acceptor, certificate)) = tls_listener {
        tokio::spawn(accept_loop(
            listener,
            streams,
            Some((acceptor, certificate)),
        ));
    }
    Ok(handle)
}

/// Accepts connections on one listener, plain TCP or (with an acceptor) TLS. Nothing a peer
/// does here ends the loop: a failed handshake only closes its own connection.
async fn accept_loop(
    listener: TcpListener,
    streams: Arc<Streams>,
    tls: Option<(tokio_rustls::TlsAcceptor, Arc<ServerCertificate>)>,
) {
    let transport = if tls.is_some() {
        TransportKind::Tls
    } else {
        TransportKind::Tcp
    };
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(transport = %transport.via_name(), "accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = streams.slots.clone().try_acquire_owned() else {
            tracing::warn!(from = %addr, transport = %transport.via_name(), "too many connections; refusing");
            continue;
        };
        let peer = Peer {
            addr,
            transport,
            connection: Some(streams.next_id()),
        };
        match &tls {
            None => {
                let rx = register(&streams, peer);
                tokio::spawn(run_connection(stream, peer, rx, streams.clone(), permit));
            }
            Some((acceptor, certificate)) => {
                certificate.refresh_if_changed(Instant::now());
                let acceptor = acceptor.clone();
                let streams = streams.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            tracing::debug!(from = %addr, "TLS connection accepted");
                            let rx = register(&streams, peer);
                            run_connection(tls, peer, rx, streams, permit).await;
                        }
                        Ok(Err(err)) => {
                            crate::telemetry::count(crate::telemetry::TLS_HANDSHAKE_FAILURES_TOTAL);
                            tracing::info!(from = %addr, "TLS handshake failed: {err}");
                        }
                        Err(_) => {
                            crate::telemetry::count(crate::telemetry::TLS_HANDSHAKE_FAILURES_TOTAL);
                            tracing::info!(from = %addr, "TLS handshake timed out");
                        }
                    }
                });
            }
        }
    }
}

/// Makes an accepted connection addressable by the core; its writer queue's receiving end.
fn register(streams: &Streams, peer: Peer) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(WRITER_QUEUE);
    if let Some(id) = peer.connection {
        streams.table().insert(
            id,
            StreamEntry {
                tx,
                remote: peer.addr,
                transport: peer.transport,
            },
        );
    }
    rx
}

/// Runs one stream connection, TCP or TLS, until either side closes it: frames what comes in
/// for the core, writes what the core queued. `_permit` is its connection slot, given back
/// when it ends.
async fn run_connection<S>(
    stream: S,
    peer: Peer,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    streams: Arc<Streams>,
    _permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                break;
            }
        }
    });
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let len = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(len) => len,
        };
        framer.push(&buf[..len]);
        loop {
            match framer.next_message() {
                Ok(Some(bytes)) => {
                    if streams.inbound.send(Inbound { bytes, peer }).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    // A stream that lost framing cannot be resynchronised (RFC 3261 §18.3):
                    // close it.
                    tracing::info!(from = %peer.addr, transport = %peer.transport.via_name(), "closing connection: {err}");
                    break 'read;
                }
            }
        }
    }
    if let Some(id) = peer.connection {
        streams.table().remove(id);
    }
    write_task.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_frees_its_address_for_the_next_one() {
        let (tx, _rx) = mpsc::channel(1);
        let remote: SocketAddr = "192.0.2.1:5061".parse().unwrap();
        let mut table = StreamTable::default();
        let entry = |tx: &mpsc::Sender<Vec<u8>>| StreamEntry {
            tx: tx.clone(),
            remote,
            transport: TransportKind::Tls,
        };
        table.insert(1, entry(&tx));
        table.insert(2, entry(&tx));
        assert!(table.writer_to(remote, TransportKind::Tls).is_some());
        assert!(table.writer_to(remote, TransportKind::Tcp).is_none());
        // The older one closing leaves the newer one reachable by address.
        table.remove(1);
        assert!(table.writer_to(remote, TransportKind::Tls).is_some());
        table.remove(2);
        assert!(table.writer_to(remote, TransportKind::Tls).is_none());
        assert!(table.by_id.is_empty() && table.by_remote.is_empty());
    }

    #[test]
    fn a_response_whose_connection_closed_goes_to_received_and_sent_by_port() {
        let response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 10.0.0.9:5071;branch=z9hG4bKx;received=192.0.2.7;rport=40000\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            reconnect_destination(response),
            Some("192.0.2.7:5071".parse().unwrap())
        );
        assert_eq!(reconnect_destination(b"garbage"), None);
    }
}
