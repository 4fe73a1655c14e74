//! Properties over arbitrary input: no panics on anything a peer sends, and protect then
//! unprotect gives back every valid RTP packet.

use proptest::prelude::*;
use srtp::{CryptoAttribute, MasterKey, SrtpContext, Suite};

fn suite() -> impl Strategy<Value = Suite> {
    prop::sample::select(Suite::ALL.to_vec())
}

/// A valid RTP packet: any CSRC count, optional extension, any payload, either padding bit.
fn rtp_packet() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        0usize..=15,
        prop::option::of(0usize..8),
        any::<[u8; 11]>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(padding, csrcs, extension, fields, payload)| {
            let mut packet = vec![
                0x80 | (u8::from(padding) << 5)
                    | (u8::from(extension.is_some()) << 4)
                    | csrcs as u8,
            ];
            packet.extend_from_slice(&fields);
            packet.extend((0..csrcs * 4).map(|i| i as u8));
            if let Some(words) = extension {
                packet.extend_from_slice(&[0xbe, 0xde]);
                packet.extend_from_slice(&(words as u16).to_be_bytes());
                packet.extend((0..words * 4).map(|i| !(i as u8)));
            }
            packet.extend_from_slice(&payload);
            packet
        })
}

proptest! {
    #[test]
    fn unprotect_never_panics_on_arbitrary_bytes(
        suite in suite(),
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        claimed in 0usize..420,
    ) {
        let key = MasterKey::generate(suite);
        let mut context = SrtpContext::new(suite, &key);
        let mut buf = bytes.clone();
        let _ = context.unprotect_rtp(&mut buf, claimed);
        let mut buf = bytes.clone();
        let _ = context.unprotect_rtp(&mut buf, bytes.len());
        let mut buf = bytes.clone();
        let _ = context.unprotect_rtcp(&mut buf, claimed);
        let mut buf = bytes.clone();
        let _ = context.unprotect_rtcp(&mut buf, bytes.len());
        let mut buf = bytes.clone();
        let _ = context.protect_rtp(&mut buf, claimed.min(bytes.len()));
        let mut buf = bytes;
        let len = buf.len();
        let _ = context.protect_rtcp(&mut buf, len);
    }

    #[test]
    fn protect_then_unprotect_is_identity_on_valid_rtp(
        suite in suite(),
        packet in rtp_packet(),
    ) {
        let key = MasterKey::generate(suite);
        let mut sender = SrtpContext::new(suite, &key);
        let mut receiver = SrtpContext::new(suite, &key);
        let mut buf = packet.clone();
        buf.resize(packet.len() + suite.rtp_overhead(), 0);
        let len = sender.protect_rtp(&mut buf, packet.len()).unwrap();
        prop_assert_eq!(len, buf.len());
        let len = receiver.unprotect_rtp(&mut buf, len).unwrap();
        prop_assert_eq!(&buf[..len], &packet[..]);
    }

    #[test]
    fn protect_then_unprotect_is_identity_on_rtcp(
        suite in suite(),
        body in prop::collection::vec(any::<u8>(), 8..200),
    ) {
        let key = MasterKey::generate(suite);
        let mut sender = SrtpContext::new(suite, &key);
        let mut receiver = SrtpContext::new(suite, &key);
        let mut packet = body;
        packet[0] = 0x80 | (packet[0] & 0x3f);
        let mut buf = packet.clone();
        buf.resize(packet.len() + suite.rtcp_overhead(), 0);
        let len = sender.protect_rtcp(&mut buf, packet.len()).unwrap();
        let len = receiver.unprotect_rtcp(&mut buf, len).unwrap();
        prop_assert_eq!(&buf[..len], &packet[..]);
    }

    #[test]
    fn crypto_attribute_parse_never_panics(text in "\\PC{0,120}") {
        let _ = CryptoAttribute::parse(&text);
    }

    #[test]
    fn crypto_attribute_parse_never_panics_near_valid_lines(
        tag in "[0-9]{0,11}",
        suite in "(AES_CM_128_HMAC_SHA1_(80|32)|AEAD_AES_128_GCM|[A-Z_]{0,8})",
        key in "[A-Za-z0-9+/=]{0,48}",
        tail in "(\\|[0-9^:]{0,12}){0,3}( [A-Z_=0-9]{0,10}){0,2}",
    ) {
        let _ = CryptoAttribute::parse(&format!("{tag} {suite} inline:{key}{tail}"));
    }

    #[test]
    fn crypto_attribute_round_trips(
        tag in 0u32..1_000_000_000,
        suite in suite(),
        lifetime in prop::option::of(prop_oneof![
            (0u32..=48).prop_map(|e| 1u64 << e),
            1u64..=(1 << 48),
        ]),
        mki in prop::option::of((any::<u32>(), 4u8..=128)),
        params in prop::collection::vec("[A-Z_]{1,12}", 0..3),
    ) {
        let attribute = CryptoAttribute {
            tag,
            suite,
            key: MasterKey::generate(suite),
            lifetime,
            mki,
            session_params: params,
        };
        let parsed = CryptoAttribute::parse(&attribute.to_sdp_value()).unwrap();
        prop_assert_eq!(parsed, attribute);
    }
}
