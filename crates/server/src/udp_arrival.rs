//! RTP and RTCP datagrams with the kernel's arrival time (`SO_TIMESTAMPNS`, socket(7)).
//!
//! A media worker reads each RTP socket once per 20 ms tick, so the tick's clock says when a
//! packet was read, not when it came: in a big room one caller's packets are read early in
//! one tick and late in the next, a 20 ms swing the jitter buffer would take for network
//! jitter and pay for in delay. RTCP sockets are read only every few hundred milliseconds
//! (reports come every few seconds), and round-trip times (RFC 3550 §6.4.1) and the DLSR we
//! report need the arrival time too. The kernel stamps every datagram with it. All `unsafe`
//! socket calls of the server live here.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Control buffer in u64 words (8-byte aligned as `cmsghdr` needs): room for
/// CMSG_SPACE(sizeof(timespec)) = 32 bytes and then some.
const CONTROL_WORDS: usize = 8;

/// Asks the kernel to stamp every datagram `socket` receives with its arrival time.
pub fn enable_arrival_times(socket: &UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid fd; the option value points at a c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Arrival stamps older than this are not believed (a clock step): the tick's time is used.
const MAX_AGE: Duration = Duration::from_millis(600);

/// The monotonic and the wall clock read together once per tick, to turn kernel stamps
/// (wall clock) into `Instant`s without reading a clock per packet.
#[derive(Debug, Clone, Copy)]
pub struct TickClock {
    /// The tick's monotonic time.
    pub now: Instant,
    /// The wall clock at (nearly) the same moment, since the Unix epoch.
    pub wall: Duration,
}

impl TickClock {
    /// Both clocks now.
    pub fn read() -> Self {
        Self {
            now: Instant::now(),
            wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    /// When a datagram stamped `stamp` arrived, on the monotonic clock; the tick's time when
    /// there is no stamp or it is not plausible (in the future, or older than [`MAX_AGE`]).
    pub fn arrival(&self, stamp: Option<Duration>) -> Instant {
        match stamp {
            Some(at) if at <= self.wall && self.wall - at <= MAX_AGE => {
                self.now.checked_sub(self.wall - at).unwrap_or(self.now)
            }
            _ => self.now,
        }
    }
}

/// Receives one datagram without blocking: its length, sender and arrival time (since the
/// Unix epoch; `None` when the socket was not asked to stamp).
pub fn recv_with_arrival(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<Duration>)> {
    // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
    let mut from: libc::sockaddr_storage = unsafe { zeroed() };
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&raw mut from).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
    // SAFETY: every pointer in `msg` refers to a live buffer of the length given, and they
    // outlive the call.
    let len = unsafe { libc::recvmsg(socket.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = socket_addr(&from)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown address family"))?;
    let mut arrival = None;
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay within msg_controllen,
    // and an SCM_TIMESTAMPNS message carries one timespec (read unaligned to be safe).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                if ts.tv_sec >= 0 && (0..1_000_000_000).contains(&ts.tv_nsec) {
                    arrival = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    Ok((len as usize, from, arrival))
}

fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // and aligned enough for.
            let sin: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const _) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const _) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implausible_stamps_fall_back_to_the_tick() {
        let clock = TickClock {
            now: Instant::now(),
            wall: Duration::from_secs(1_000_000),
        };
        assert_eq!(clock.arrival(None), clock.now);
        let future = clock.wall + Duration::from_nanos(1);
        assert_eq!(clock.arrival(Some(future)), clock.now);
        let too_old = clock.wall - Duration::from_secs(1);
        assert_eq!(clock.arrival(Some(too_old)), clock.now);
        let read_late = clock.wall - Duration::from_millis(5);
        assert_eq!(
            clock.arrival(Some(read_late)),
            clock.now - Duration::from_millis(5)
        );
    }

    #[test]
    fn a_datagram_comes_with_its_sender_and_the_time_it_arrived() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_arrival_times(&receiver).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        let err = recv_with_arrival(&receiver, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let wall = || {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
        };
        // The kernel switches receive stamping on for the whole stack a little after the
        // first socket asks (a deferred static key, later under load); until then recvmsg
        // stamps with its own time. A server's first RTCP comes seconds after its sockets
        // were set up; here, wait until a probe is stamped before it is read.
        let target = receiver.local_addr().unwrap();
        let on = (0..200).any(|_| {
            sender.send_to(b"probe", target).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let read_at = wall();
            matches!(
                recv_with_arrival(&receiver, &mut buf),
                Ok((_, _, Some(at))) if at + Duration::from_millis(10) < read_at
            )
        });
        assert!(on, "the kernel never stamped a datagram on arrival");
        let before = wall();
        sender
            .send_to(b"report", receiver.local_addr().unwrap())
            .unwrap();
        let after = wall();
        // Read it late, as a worker does: the stamp still says when it came (on loopback the
        // kernel stamps it inside the sender's sendto).
        std::thread::sleep(Duration::from_millis(200));
        let (len, from, arrival) = recv_with_arrival(&receiver, &mut buf).unwrap();
        assert_eq!(&buf[..len], b"report");
        assert_eq!(from, sender.local_addr().unwrap());
        let arrival = arrival.expect("kernel timestamp");
        let slack = Duration::from_millis(2);
        assert!(
            arrival + slack >= before && arrival <= after + slack,
            "arrived {arrival:?}, sent between {before:?} and {after:?}"
        );
    }
}
