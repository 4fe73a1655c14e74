//! The crypto suites we speak and their sizes.

/// The crypto suites we speak (RFC 4568 §6.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128 counter mode with an 80-bit HMAC-SHA1 tag (RFC 4568 §6.2.1).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode with a 32-bit HMAC-SHA1 tag on SRTP, 80-bit on SRTCP (RFC 4568 §6.2.2).
    AesCm128HmacSha1_32,
    /// AES-128 in Galois/counter mode with a 128-bit tag (RFC 7714 §14.2).
    AeadAes128Gcm,
}

impl Suite {
    /// Every suite, in the order we prefer them when offering.
    pub const ALL: [Suite; 3] = [
        Suite::AeadAes128Gcm,
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
    ];

    /// The name in an `a=crypto:` line.
    pub fn sdp_name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The suite an `a=crypto:` line names, if we speak it.
    pub fn from_sdp_name(name: &str) -> Option<Suite> {
        // RFC 4568 §9.2 gives the names as ABNF quoted strings, which RFC 5234 §2.3 makes
        // case-insensitive.
        Suite::ALL
            .into_iter()
            .find(|suite| suite.sdp_name().eq_ignore_ascii_case(name))
    }

    /// Bytes of master key.
    pub fn master_key_len(self) -> usize {
        16
    }

    /// Bytes of master salt: 112 bits for AES-CM (RFC 3711 §8.2), 96 for GCM (RFC 7714 §12).
    pub fn master_salt_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 => 14,
            Suite::AeadAes128Gcm => 12,
        }
    }

    /// Bytes protect adds to an RTP packet (the tag).
    pub fn rtp_overhead(self) -> usize {
        self.rtp_tag_len()
    }

    /// Bytes protect adds to an RTCP packet (the E flag and index word, and the tag).
    pub fn rtcp_overhead(self) -> usize {
        SRTCP_INDEX_LEN + self.rtcp_tag_len()
    }

    /// Length of the SRTP authentication tag.
    pub(crate) fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
            Suite::AeadAes128Gcm => 16,
        }
    }

    /// Length of the SRTCP authentication tag.
    pub(crate) fn rtcp_tag_len(self) -> usize {
        match self {
            // RFC 4568 §6.2.2: the _32 suite shortens only the SRTP tag; SRTCP keeps 80 bits,
            // as RFC 3711 §5.2 requires of HMAC-SHA1 on SRTCP.
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 => 10,
            Suite::AeadAes128Gcm => 16,
        }
    }
}

/// The E flag and 31-bit SRTCP index word (RFC 3711 §3.4).
pub(crate) const SRTCP_INDEX_LEN: usize = 4;

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.sdp_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for suite in Suite::ALL {
            assert_eq!(Suite::from_sdp_name(suite.sdp_name()), Some(suite));
        }
    }

    #[test]
    fn names_are_matched_ignoring_case_as_abnf_says() {
        assert_eq!(
            Suite::from_sdp_name("aes_cm_128_hmac_sha1_80"),
            Some(Suite::AesCm128HmacSha1_80)
        );
        assert_eq!(Suite::from_sdp_name("AES_256_CM_HMAC_SHA1_80"), None);
        assert_eq!(Suite::from_sdp_name(""), None);
    }

    #[test]
    fn srtcp_keeps_the_80_bit_tag_on_the_32_bit_suite() {
        assert_eq!(Suite::AesCm128HmacSha1_32.rtp_overhead(), 4);
        assert_eq!(Suite::AesCm128HmacSha1_32.rtcp_overhead(), 14);
        assert_eq!(Suite::AesCm128HmacSha1_80.rtcp_overhead(), 14);
        assert_eq!(Suite::AeadAes128Gcm.rtp_overhead(), 16);
        assert_eq!(Suite::AeadAes128Gcm.rtcp_overhead(), 20);
    }
}
