//! Master keys: the secret SDES carries, kept out of logs and zeroed on drop.

use base64::Engine;
use rand::RngCore;
use zeroize::Zeroize;

use crate::sdes::SdesError;
use crate::suite::Suite;

/// Longest master salt of any suite we speak.
pub(crate) const MAX_SALT_LEN: usize = 14;

/// Master key and salt, zeroed on drop, never printed (Debug shows "<redacted>").
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 16],
    /// Zero past `salt_len`, which is what the key derivation wants for the shorter GCM salt.
    salt: [u8; MAX_SALT_LEN],
    salt_len: usize,
}

impl MasterKey {
    /// A master key from its key and salt bytes, checked against the lengths `suite` needs.
    pub fn new(suite: Suite, key: &[u8], salt: &[u8]) -> Result<MasterKey, SdesError> {
        if key.len() != suite.master_key_len() {
            return Err(SdesError::WrongKeyLength {
                what: "master key",
                suite,
                expected: suite.master_key_len(),
                got: key.len(),
            });
        }
        if salt.len() != suite.master_salt_len() {
            return Err(SdesError::WrongKeyLength {
                what: "master salt",
                suite,
                expected: suite.master_salt_len(),
                got: salt.len(),
            });
        }
        let mut master = MasterKey {
            key: [0; 16],
            salt: [0; MAX_SALT_LEN],
            salt_len: salt.len(),
        };
        master.key.copy_from_slice(key);
        master.salt[..salt.len()].copy_from_slice(salt);
        Ok(master)
    }

    /// A fresh random master key for `suite` from rand's OS-seeded CSPRNG.
    pub fn generate(suite: Suite) -> MasterKey {
        let mut master = MasterKey {
            key: [0; 16],
            salt: [0; MAX_SALT_LEN],
            salt_len: suite.master_salt_len(),
        };
        let mut rng = rand::rng();
        rng.fill_bytes(&mut master.key[..suite.master_key_len()]);
        rng.fill_bytes(&mut master.salt[..master.salt_len]);
        master
    }

    /// Key then salt, base64 as `inline:` wants it (RFC 4568 §6.1).
    pub(crate) fn to_inline(&self) -> String {
        let mut both = [0u8; 16 + MAX_SALT_LEN];
        both[..16].copy_from_slice(&self.key);
        both[16..16 + self.salt_len].copy_from_slice(&self.salt[..self.salt_len]);
        let text = base64::engine::general_purpose::STANDARD.encode(&both[..16 + self.salt_len]);
        both.zeroize();
        text
    }

    /// The master key bytes.
    pub(crate) fn key(&self) -> &[u8; 16] {
        &self.key
    }

    /// The master salt, zero-padded to 14 bytes as the AES-CM PRF takes it (RFC 7714 §11).
    pub(crate) fn padded_salt(&self) -> &[u8; MAX_SALT_LEN] {
        &self.salt
    }

    /// The salt as sent.
    #[cfg(test)]
    pub(crate) fn salt(&self) -> &[u8] {
        &self.salt[..self.salt_len]
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &MasterKey) -> bool {
        use subtle::ConstantTimeEq;
        self.salt_len == other.salt_len
            && bool::from(self.key.ct_eq(&other.key) & self.salt.ct_eq(&other.salt))
    }
}

impl Eq for MasterKey {}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.salt.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = MasterKey::new(Suite::AesCm128HmacSha1_80, &[0xab; 16], &[0xcd; 14]).unwrap();
        let text = format!("{key:?}");
        assert_eq!(text, "MasterKey(<redacted>)");
    }

    #[test]
    fn rejects_lengths_the_suite_does_not_use() {
        assert!(MasterKey::new(Suite::AeadAes128Gcm, &[0; 16], &[0; 14]).is_err());
        assert!(MasterKey::new(Suite::AesCm128HmacSha1_80, &[0; 15], &[0; 14]).is_err());
        assert!(MasterKey::new(Suite::AeadAes128Gcm, &[0; 16], &[0; 12]).is_ok());
    }

    #[test]
    fn generated_keys_differ_and_have_the_suite_salt_length() {
        let a = MasterKey::generate(Suite::AeadAes128Gcm);
        let b = MasterKey::generate(Suite::AeadAes128Gcm);
        assert_ne!(a, b);
        assert_eq!(a.salt().len(), 12);
        assert_eq!(&a.padded_salt()[12..], &[0, 0]);
    }
}
