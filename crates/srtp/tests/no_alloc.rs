//! Protect and unprotect allocate nothing: counted by a global allocator that tallies the
//! allocations of the thread under test.

use srtp::{MasterKey, SrtpContext, Suite};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn protect_and_unprotect_allocate_nothing() {
    for suite in Suite::ALL {
        let key = MasterKey::generate(suite);
        let mut sender = SrtpContext::new(suite, &key);
        let mut receiver = SrtpContext::new(suite, &key);
        let mut packet = [0u8; 172 + 16];
        let mut report = [0u8; 64];
        packet[0] = 0x80;
        report[0] = 0x81;
        report[1] = 201;
        let before = allocations();
        // Past the wrap and over more SSRCs than a context keeps, so eviction runs too.
        for n in 0u32..70_000 {
            let ssrc = n % 20;
            packet[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
            let len = sender.protect_rtp(&mut packet, 172).unwrap();
            receiver.unprotect_rtp(&mut packet, len).unwrap();
            if n % 50 == 0 {
                report[4..8].copy_from_slice(&ssrc.to_be_bytes());
                let len = sender.protect_rtcp(&mut report, 32).unwrap();
                receiver.unprotect_rtcp(&mut report, len).unwrap();
            }
        }
        assert_eq!(allocations() - before, 0, "{suite} allocated");
    }
}
