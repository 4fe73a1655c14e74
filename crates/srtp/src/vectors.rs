//! Known answers: RFC 3711 Appendix B, RFC 7714 §16-17 and libsrtp's `srtp_driver` packets.
//!
//! RFC 7714's vectors are in session keys, so they go below the key derivation; B.3 pins the
//! derivation itself and the libsrtp packets go through all of it from a master key.

use crate::kdf::{Label, derive, keystream};
use crate::{MasterKey, SrtpContext, SrtpError, Suite};
use aes::cipher::{KeyInit, StreamCipher};

fn hex(text: &str) -> Vec<u8> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex16(text: &str) -> [u8; 16] {
    hex(text).try_into().expect("16 bytes")
}

/// Protects `plain` and checks the result, then unprotects it back with a fresh context.
fn check_rtp(mut sender: SrtpContext, mut receiver: SrtpContext, plain: &[u8], protected: &[u8]) {
    let mut buf = [0u8; 256];
    buf[..plain.len()].copy_from_slice(plain);
    let len = sender.protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(hex_of(&buf[..len]), hex_of(protected), "protect");
    let len = receiver.unprotect_rtp(&mut buf, len).unwrap();
    assert_eq!(&buf[..len], plain, "unprotect");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// RFC 3711 Appendix B.2: session key, salt, SSRC 0 and index 0; keystream blocks by counter.
const B2_KEY: &str = "2B7E151628AED2A6ABF7158809CF4F3C";
const B2_SALT: &str = "F0F1F2F3F4F5F6F7F8F9FAFBFCFD";

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let cipher = aes::Aes128::new(&hex16(B2_KEY).into());
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&hex(B2_SALT));
    let mut stream = vec![0u8; 0xff02 * 16];
    keystream(&cipher, &iv).apply_keystream(&mut stream);
    let block = |n: usize| hex_of(&stream[n * 16..n * 16 + 16]);
    assert_eq!(block(0), "e03ead0935c95e80e166b16dd92b4eb4");
    assert_eq!(block(1), "d23513162b02d0f72a43a2fe4a5f97ab");
    assert_eq!(block(2), "41e95b3bb0a2e8dd477901e4fca894c0");
    assert_eq!(block(0xfeff), "ec8cdf7398607cb0f2d21675ea9ea1e4");
    assert_eq!(block(0xff00), "362b7c3c6773516318a077d7fc5073ae");
    assert_eq!(block(0xff01), "6a2cc3787889374fbeb4c81b17ba6c44");
}

#[test]
fn rfc3711_b2_keystream_through_a_packet() {
    // SSRC 0 and sequence number 0 make the packet IV exactly the B.2 offset.
    let mut sender = SrtpContext::from_session_keys(
        Suite::AesCm128HmacSha1_80,
        &hex16(B2_KEY),
        &hex(B2_SALT),
        &[0; 20],
    );
    let mut buf = [0u8; 12 + 48 + 10];
    buf[0] = 0x80;
    assert_eq!(sender.protect_rtp(&mut buf, 60), Ok(70));
    assert_eq!(
        hex_of(&buf[12..60]),
        "e03ead0935c95e80e166b16dd92b4eb4d23513162b02d0f72a43a2fe4a5f97ab\
         41e95b3bb0a2e8dd477901e4fca894c0"
    );
}

#[test]
fn rfc3711_b3_key_derivation() {
    let master = MasterKey::new(
        Suite::AesCm128HmacSha1_80,
        &hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
        &hex("0EC675AD498AFEEBB6960B3AABE6"),
    )
    .unwrap();
    let mut cipher_key = [0u8; 16];
    derive(&master, Label::RtpEncryption, &mut cipher_key);
    assert_eq!(hex_of(&cipher_key), "c61e7a93744f39ee10734afe3ff7a087");
    let mut salt = [0u8; 14];
    derive(&master, Label::RtpSalt, &mut salt);
    assert_eq!(hex_of(&salt), "30cbbc08863d8c85d49db34a9ae1");
    // B.3 lists 94 bytes of authentication keystream; HMAC-SHA1 uses the first 20.
    let mut auth = [0u8; 94];
    derive(&master, Label::RtpAuthentication, &mut auth);
    assert_eq!(
        hex_of(&auth),
        "cebe321f6ff7716b6fd4ab49af256a156d38baa48f0a0acf3c34e2359e6cdbce\
         e049646c43d9327ad175578ef72270986371c10c9a369ac2f94a8c5fbcdddc25\
         6d6e919a48b610ef17c2041e474035766b68642c59bbfc2f34db60dbdfb2"
    );
}

// libsrtp test/srtp_driver.c: `test_key`, SSRC 0xcafebabe, srtp_validate().
const LIBSRTP_KEY: &str = "e1f97a0d3e018be0d64fa32c06de4139";
const LIBSRTP_SALT: &str = "0ec675ad498afeebb6960b3aabe6";
const LIBSRTP_RTP: &str = "800f1234decafbadcafebabeabababababababababababababababab";
const LIBSRTP_RTCP: &str = "81c8000bcafebabeabababababababababababababababab";

fn libsrtp_context() -> SrtpContext {
    let key = MasterKey::new(
        Suite::AesCm128HmacSha1_80,
        &hex(LIBSRTP_KEY),
        &hex(LIBSRTP_SALT),
    )
    .unwrap();
    SrtpContext::new(Suite::AesCm128HmacSha1_80, &key)
}

#[test]
fn libsrtp_aes_cm_hmac_sha1_80_packet_decrypts() {
    check_rtp(
        libsrtp_context(),
        libsrtp_context(),
        &hex(LIBSRTP_RTP),
        &hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402\
             b78d6acc99ea179b8dbb"),
    );
}

#[test]
fn libsrtp_aes_cm_hmac_sha1_80_srtcp_packet_decrypts() {
    let plain = hex(LIBSRTP_RTCP);
    let protected = hex("81c8000bcafebabe7128035be487b9bdbef89041f977a5a8\
         80000001993e08cd54d6c1230798");
    let mut buf = [0u8; 64];
    buf[..plain.len()].copy_from_slice(&plain);
    let len = libsrtp_context()
        .protect_rtcp(&mut buf, plain.len())
        .unwrap();
    assert_eq!(hex_of(&buf[..len]), hex_of(&protected));
    let len = libsrtp_context().unprotect_rtcp(&mut buf, len).unwrap();
    assert_eq!(&buf[..len], &plain[..]);
}

// libsrtp test/srtp_driver.c: `test_key_gcm`, srtp_validate_gcm(); goes through the KDF with
// a 96-bit master salt, which RFC 7714's own vectors do not.
fn libsrtp_gcm_context() -> SrtpContext {
    let key = MasterKey::new(
        Suite::AeadAes128Gcm,
        &hex("000102030405060708090a0b0c0d0e0f"),
        &hex("a0a1a2a3a4a5a6a7a8a9aaab"),
    )
    .unwrap();
    SrtpContext::new(Suite::AeadAes128Gcm, &key)
}

#[test]
fn libsrtp_aead_aes_128_gcm_packet_decrypts() {
    check_rtp(
        libsrtp_gcm_context(),
        libsrtp_gcm_context(),
        &hex(LIBSRTP_RTP),
        &hex(
            "800f1234decafbadcafebabec5002ede04cfdd2eb91159e0880aa06ed2976826\
             f796b201df3131a127e8a392",
        ),
    );
}

#[test]
fn libsrtp_aead_aes_128_gcm_srtcp_packet_decrypts() {
    let plain = hex(LIBSRTP_RTCP);
    let protected = hex(
        "81c8000bcafebabec98b8b5df0392a55852b6c21ac8e7025c52c6fbea2b3b446\
         ea31123ba88ce61e80000001",
    );
    let mut buf = [0u8; 64];
    buf[..plain.len()].copy_from_slice(&plain);
    let len = libsrtp_gcm_context()
        .protect_rtcp(&mut buf, plain.len())
        .unwrap();
    assert_eq!(hex_of(&buf[..len]), hex_of(&protected));
    let len = libsrtp_gcm_context().unprotect_rtcp(&mut buf, len).unwrap();
    assert_eq!(&buf[..len], &plain[..]);
}

// RFC 7714 §16-17: session key and salt ("Quid pro quo") given directly.
const GCM_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const GCM_SALT: &str = "517569642070726f2071756f";

fn rfc7714_context() -> SrtpContext {
    SrtpContext::from_session_keys(
        Suite::AeadAes128Gcm,
        &hex16(GCM_KEY),
        &hex(GCM_SALT),
        &[0; 20],
    )
}

#[test]
fn rfc7714_16_1_aead_aes_128_gcm_rtp() {
    check_rtp(
        rfc7714_context(),
        rfc7714_context(),
        &hex("8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e6973\
             2064697669736120696e207061727465732074726573"),
        &hex("8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bca\
             be633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb1\
             6a9152cf765ee4390cce"),
    );
}

/// The RTCP packet RFC 7714 §17.1-17.4 encrypt (the §17 preamble prints a slightly different
/// one; the subsections agree with each other and with their results).
const RFC7714_RTCP: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61\
                            deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

#[test]
fn rfc7714_17_1_aead_aes_128_gcm_srtcp() {
    let plain = hex(RFC7714_RTCP);
    let protected = hex(
        "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32d\
         c676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf872\
         45d9eade800005d4",
    );
    let mut sender = rfc7714_context();
    sender.set_next_srtcp_index(0x4d61_7273, 0x5d4);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let len = sender.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(hex_of(&buf[..len]), hex_of(&protected));
    let len = rfc7714_context().unprotect_rtcp(&mut buf, len).unwrap();
    assert_eq!(&buf[..len], &plain[..]);
}

#[test]
fn rfc7714_17_3_unencrypted_srtcp_is_authenticated() {
    let plain = hex(RFC7714_RTCP);
    let mut tagged = hex(RFC7714_RTCP);
    tagged.extend(hex("841dd9683dd78ec92ae58790125f62b3000005d4"));
    let mut buf = tagged.clone();
    let len = rfc7714_context()
        .unprotect_rtcp(&mut buf, tagged.len())
        .unwrap();
    assert_eq!(&buf[..len], &plain[..]);

    let mut forged = tagged;
    forged[20] ^= 1;
    let len = forged.len();
    assert_eq!(
        rfc7714_context().unprotect_rtcp(&mut forged, len),
        Err(SrtpError::AuthenticationFailed)
    );
}
