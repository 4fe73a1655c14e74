//! Batched non-blocking UDP receive (`recvmmsg`, `MSG_DONTWAIT`) with the kernel's receive
//! timestamp of every datagram (`SO_TIMESTAMPNS`, socket(7)). All `unsafe` socket calls of
//! the receiver live here.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};

use crate::latency::RealtimeNs;

/// Datagrams taken per `recvmmsg` call. A participant gets one packet per 20 ms and is
/// drained every 10 ms, so more than a few only queue up when the receiver fell behind.
pub const BATCH: usize = 8;
/// Largest datagram kept; RTP from the server is far smaller.
const MAX_DGRAM: usize = 2048;
/// Control buffer per datagram, in u64 words (8-byte aligned as cmsghdr needs): 64 bytes,
/// room for CMSG_SPACE(sizeof(timespec)) = 32.
const CMSG_WORDS: usize = 8;

/// Asks the kernel to stamp every datagram `sock` receives (SCM_TIMESTAMPNS: CLOCK_REALTIME
/// when the packet entered the stack, on loopback: inside the sender's sendto).
pub fn enable_rx_timestamps(sock: &UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: valid fd, option value points at a c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
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

/// Reusable buffers for one `recvmmsg` batch: no allocation per receive.
pub struct TimestampedRx {
    bufs: Vec<[u8; MAX_DGRAM]>,
    cmsgs: Vec<[u64; CMSG_WORDS]>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    lens: [usize; BATCH],
    stamps: [Option<RealtimeNs>; BATCH],
    count: usize,
}

impl TimestampedRx {
    /// Buffers for [`BATCH`] datagrams.
    pub fn new() -> Self {
        // SAFETY: iovec and mmsghdr are plain C structs for which all-zero is valid.
        let (iov, msg) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        Self {
            bufs: vec![[0; MAX_DGRAM]; BATCH],
            cmsgs: vec![[0; CMSG_WORDS]; BATCH],
            iovs: vec![iov; BATCH],
            msgs: vec![msg; BATCH],
            lens: [0; BATCH],
            stamps: [None; BATCH],
            count: 0,
        }
    }

    /// Receives up to [`BATCH`] waiting datagrams from `fd` without blocking; returns how
    /// many (0 when nothing was waiting). Fewer than [`BATCH`] means the queue is empty.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.count = 0;
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_DGRAM,
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = std::ptr::null_mut();
            hdr.msg_namelen = 0;
            hdr.msg_iov = &raw mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            // The kernel shrinks msg_controllen to what it wrote: reset it every call.
            hdr.msg_controllen = size_of::<[u64; CMSG_WORDS]>() as _;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: every mmsghdr points at live buffers of the sizes given, owned by self and
        // not touched until the call returns.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        let n = (n as usize).min(BATCH);
        for i in 0..n {
            let m = &self.msgs[i];
            let truncated = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.lens[i] = if truncated {
                0
            } else {
                (m.msg_len as usize).min(MAX_DGRAM)
            };
            self.stamps[i] = kernel_stamp(&m.msg_hdr);
        }
        self.count = n;
        Ok(n)
    }

    /// Datagram `i` of the last batch and its kernel receive stamp (None if the kernel gave
    /// none); a truncated datagram comes back empty.
    pub fn datagram(&self, i: usize) -> Option<(&[u8], Option<RealtimeNs>)> {
        if i >= self.count {
            return None;
        }
        let len = *self.lens.get(i)?;
        Some((self.bufs.get(i)?.get(..len)?, *self.stamps.get(i)?))
    }
}

/// The SCM_TIMESTAMPNS timespec among the control messages of a received `hdr`.
fn kernel_stamp(hdr: &libc::msghdr) -> Option<RealtimeNs> {
    // SAFETY: hdr was filled by recvmmsg; the CMSG_* helpers stay within msg_controllen
    // and the timespec is read unaligned after checking the cmsg is long enough.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            let cm = &*c;
            let need = libc::CMSG_LEN(size_of::<libc::timespec>() as u32) as usize;
            if cm.cmsg_level == libc::SOL_SOCKET
                && cm.cmsg_type == libc::SCM_TIMESTAMPNS
                && cm.cmsg_len as usize >= need
            {
                let ts: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                return Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::realtime_now;

    #[test]
    fn drains_loopback_datagrams_with_kernel_stamps_in_send_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_rx_timestamps(&rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut r = TimestampedRx::new();
        // Nothing waiting: 0, not an error and no blocking.
        assert_eq!(r.recv(rx.as_raw_fd()).unwrap(), 0);
        let before = realtime_now();
        for b in 1..=3u8 {
            tx.send_to(&[b; 12], rx.local_addr().unwrap()).unwrap();
        }
        // Loopback delivers inside sendto, so all three are queued now.
        assert_eq!(r.recv(rx.as_raw_fd()).unwrap(), 3);
        // Not `before the recv`: the kernel enables stamping at enqueue lazily (a deferred
        // static key), and until then stamps the datagram when it is read.
        let after = realtime_now();
        let mut last = before;
        for i in 0..3 {
            let (data, stamp) = r.datagram(i).unwrap();
            assert_eq!(data, &[i as u8 + 1; 12]);
            let stamp = stamp.unwrap();
            assert!(stamp >= last && stamp <= after, "{before} {stamp} {after}");
            last = stamp;
        }
        assert!(r.datagram(3).is_none());
        assert_eq!(r.recv(rx.as_raw_fd()).unwrap(), 0);
    }
}
