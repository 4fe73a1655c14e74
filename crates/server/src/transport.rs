//! SIP transports: one UDP socket and a TCP listener, feeding raw messages to the SIP core.
//!
//! Bytes in, bytes out; parsing and all protocol decisions happen in the core and the `sip`
//! crate. Each TCP connection gets a reader task (framing by Content-Length) and a writer
//! queue the core can address by connection id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sip::message::StreamFramer;
use sip::transaction::{Peer, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Largest UDP datagram we read; RFC 3261 §18.1.1 messages over 1300 bytes should use TCP, but
/// we accept up to the IP limit and let the parser reject oversized ones.
const MAX_DATAGRAM: usize = 65_535;
/// Open TCP connections we keep at most (bounded everything).
const MAX_TCP_CONNECTIONS: usize = 4096;

/// One message (or unparseable garbage) that arrived.
#[derive(Debug)]
pub struct Inbound {
    /// Raw bytes of one message.
    pub bytes: Vec<u8>,
    /// Who sent it and over what.
    pub peer: Peer,
}

/// Sends bytes to peers over the transport they came from.
#[derive(Clone)]
pub struct TransportHandle {
    udp: Arc<UdpSocket>,
    tcp_writers: Arc<Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>>,
    local: SocketAddr,
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
            TransportKind::Tcp => {
                let writer = peer.connection.and_then(|id| {
                    self.tcp_writers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&id)
                        .cloned()
                });
                match writer {
                    Some(tx) => {
                        if tx.try_send(bytes).is_err() {
                            tracing::warn!(to = %peer.addr, "TCP connection backlogged or closed; message dropped");
                        }
                    }
                    None => {
                        // RFC 3261 §18.2.2: when the connection is gone a server should open a
                        // new one to the sent-by address; we do not dial out over TCP yet.
                        tracing::debug!(to = %peer.addr, "no TCP connection for response");
                    }
                }
            }
        }
    }

    /// The address we listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Binds UDP and TCP on `listen` and starts the reader tasks.
pub async fn start(
    listen: SocketAddr,
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
    let handle = TransportHandle {
        udp: udp.clone(),
        tcp_writers: Arc::new(Mutex::new(HashMap::new())),
        local,
    };

    let udp_inbound = inbound.clone();
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
                    if let Err(mpsc::error::TrySendError::Closed(_)) = udp_inbound.try_send(message)
                    {
                        return;
                    }
                }
                Err(err) => tracing::debug!("UDP receive error: {err}"),
            }
        }
    });

    let writers = handle.tcp_writers.clone();
    tokio::spawn(async move {
        let next_id = AtomicU64::new(1);
        loop {
            let Ok((stream, addr)) = tcp.accept().await else {
                continue;
            };
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = mpsc::channel(256);
            {
                let mut map = writers.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() >= MAX_TCP_CONNECTIONS {
                    tracing::warn!(from = %addr, "too many TCP connections; refusing");
                    continue;
                }
                map.insert(id, tx);
            }
            tokio::spawn(run_tcp_connection(
                stream,
                addr,
                id,
                rx,
                inbound.clone(),
                writers.clone(),
            ));
        }
    });
    Ok(handle)
}

async fn run_tcp_connection(
    stream: TcpStream,
    addr: SocketAddr,
    id: u64,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    inbound: mpsc::Sender<Inbound>,
    writers: Arc<Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let peer = Peer {
        addr,
        transport: TransportKind::Tcp,
        connection: Some(id),
    };
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
                    if inbound.send(Inbound { bytes, peer }).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    // A stream that lost framing cannot be resynchronised (RFC 3261 §18.3):
                    // close it.
                    tracing::info!(from = %addr, "closing TCP connection: {err}");
                    break 'read;
                }
            }
        }
    }
    writers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    write_task.abort();
}
