//! The sockets of a T.38 fax call: one task per call that passes UDPTL datagrams between the
//! port facing each leg, as [`media::udptl::UdptlRelay`] says.
//!
//! A task on the signalling runtime rather than a media worker: the datagrams are opaque
//! (no decoding, no 20 ms tick to wait for), few (a fax machine sends one every 20 to 40 ms)
//! and only a handful of calls carry fax at once. The task ends when its handle is dropped,
//! which call control does when the call goes back to audio or ends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use media::udptl::{MAX_UDPTL_DATAGRAM, UdptlRelay, UdptlSide};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::Instrument;

/// UDPTL datagrams passed between the legs of fax calls, for `/metrics`.
pub static DATAGRAMS_RELAYED: AtomicU64 = AtomicU64::new(0);

/// A running relay; dropping it stops the task and closes its sockets.
#[derive(Debug)]
pub struct UdptlRelayTask {
    remotes: mpsc::Sender<(UdptlSide, SocketAddr)>,
    task: tokio::task::JoinHandle<()>,
}

impl UdptlRelayTask {
    /// Starts passing datagrams between `first` (the socket facing the first side's
    /// machine) and `second`, logging in `span`. Needs a tokio runtime.
    pub fn spawn(
        first: std::net::UdpSocket,
        second: std::net::UdpSocket,
        relay: UdptlRelay,
        span: tracing::Span,
    ) -> std::io::Result<Self> {
        first.set_nonblocking(true)?;
        second.set_nonblocking(true)?;
        let first = UdpSocket::from_std(first)?;
        let second = UdpSocket::from_std(second)?;
        // A re-INVITE changing an address is rare; a full queue only loses that news until
        // the machine's next datagram shows where it is.
        let (remotes, changes) = mpsc::channel(4);
        let task = tokio::spawn(run(first, second, relay, changes).instrument(span));
        Ok(Self { remotes, task })
    }

    /// The machine facing `side` takes datagrams at `remote` now.
    pub fn set_remote(&self, side: UdptlSide, remote: SocketAddr) {
        let _ = self.remotes.try_send((side, remote));
    }
}

impl Drop for UdptlRelayTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    first: UdpSocket,
    second: UdpSocket,
    mut relay: UdptlRelay,
    mut changes: mpsc::Receiver<(UdptlSide, SocketAddr)>,
) {
    // One byte more than we pass on, so an oversized datagram is seen as such, not cut.
    let mut from_first = [0u8; MAX_UDPTL_DATAGRAM + 1];
    let mut from_second = [0u8; MAX_UDPTL_DATAGRAM + 1];
    tracing::debug!("T.38 relay started");
    loop {
        let (side, received, buf) = tokio::select! {
            received = first.recv_from(&mut from_first) => (UdptlSide::First, received, &from_first),
            received = second.recv_from(&mut from_second) => (UdptlSide::Second, received, &from_second),
            change = changes.recv() => match change {
                Some((side, remote)) => {
                    relay.set_remote(side, remote);
                    continue;
                }
                None => break,
            },
        };
        // ICMP port unreachable from an earlier send shows up as an error here on Linux.
        let Ok((len, from)) = received else {
            continue;
        };
        let Some(to) = relay.receive(side, from, len, Instant::now()) else {
            tracing::trace!(%from, len, "UDPTL datagram dropped");
            continue;
        };
        let Some(datagram) = buf.get(..len) else {
            continue;
        };
        let out = match side {
            UdptlSide::First => &second,
            UdptlSide::Second => &first,
        };
        if out.send_to(datagram, to).await.is_ok() {
            DATAGRAMS_RELAYED.fetch_add(1, Ordering::Relaxed);
        }
    }
    tracing::debug!(
        from_first = relay.relayed_from(UdptlSide::First),
        from_second = relay.relayed_from(UdptlSide::Second),
        "T.38 relay ended"
    );
}
