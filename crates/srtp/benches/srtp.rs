//! Protect then unprotect of one 172-byte PCMU packet (20 ms at 8 kHz) per suite.

use criterion::{Criterion, criterion_group, criterion_main};
use srtp::{MasterKey, SrtpContext, Suite};
use std::hint::black_box;

fn protect_unprotect(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_pcmu_172");
    for suite in [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::AeadAes128Gcm,
    ] {
        let key = MasterKey::generate(suite);
        let mut sender = SrtpContext::new(suite, &key);
        let mut receiver = SrtpContext::new(suite, &key);
        let mut packet = [0u8; 172 + 16];
        packet[0] = 0x80;
        packet[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        let mut seq: u16 = 0;
        group.bench_function(suite.sdp_name(), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                let len = sender.protect_rtp(&mut packet, 172).expect("protect");
                let len = receiver.unprotect_rtp(&mut packet, len).expect("unprotect");
                black_box(len)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, protect_unprotect);
criterion_main!(benches);
