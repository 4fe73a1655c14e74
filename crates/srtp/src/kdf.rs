//! The AES-CM key derivation of RFC 3711 §4.3 with key_derivation_rate 0.

use aes::Aes128;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use zeroize::Zeroize;

use crate::key::MasterKey;

/// What a session key is for: the labels of RFC 3711 §4.3.2.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Label {
    RtpEncryption = 0,
    RtpAuthentication = 1,
    RtpSalt = 2,
    RtcpEncryption = 3,
    RtcpAuthentication = 4,
    RtcpSalt = 5,
}

/// Fills `out` with the session key for `label` (RFC 3711 §4.3.1, §4.3.3).
pub(crate) fn derive(master: &MasterKey, label: Label, out: &mut [u8]) {
    // x = key_id XOR master_salt with key_id = label || (index DIV kdr) and kdr = 0, so only
    // the label byte, the eighth of the 14-byte salt, changes; the AES-CM IV is x * 2^16.
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(master.padded_salt());
    iv[7] ^= label as u8;
    let prf = Aes128::new(master.key().into());
    out.fill(0);
    keystream(&prf, &iv).apply_keystream(out);
    iv.zeroize();
}

/// The AES-CM keystream starting at `iv`, borrowing the expanded key rather than copying it.
pub(crate) fn keystream<'a>(cipher: &'a Aes128, iv: &[u8; 16]) -> ctr::Ctr128BE<&'a Aes128> {
    let core = ctr::CtrCore::<&Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(cipher, iv.into());
    ctr::Ctr128BE::from_core(core)
}
