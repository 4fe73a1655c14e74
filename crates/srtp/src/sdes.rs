//! SDES: the `a=crypto:` attribute of RFC 4568 that carries a master key in the SDP.

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use zeroize::Zeroize;

use crate::key::{MAX_SALT_LEN, MasterKey};
use crate::suite::Suite;

/// Largest key lifetime we accept: 2^48 packets, the SRTP maximum (RFC 3711 §9.2).
const MAX_LIFETIME_EXPONENT: u32 = 48;
/// Longest MKI RFC 4568 §6.1 allows, in bytes.
const MAX_MKI_LEN: u8 = 128;

/// Standard base64 that takes the key with or without its `=` padding: RFC 4568 §6.1 asks
/// for padding, some phones leave it off the 28-byte GCM key.
const INLINE_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What was wrong with an `a=crypto:` attribute or a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdesError {
    /// A required field of `tag SP suite SP key-params` is absent.
    #[error("a=crypto has no {0}")]
    Missing(&'static str),
    /// The tag is not 1 to 9 decimal digits (RFC 4568 §9.1).
    #[error("a=crypto tag {0:?} is not 1 to 9 digits")]
    BadTag(String),
    /// A crypto suite we do not speak.
    #[error("crypto suite {0:?} is not one we speak")]
    UnknownSuite(String),
    /// The key parameter is not `inline:...`.
    #[error("key parameter does not start with \"inline:\"")]
    InlineMissing,
    /// A key method other than `inline` (RFC 4568 §9.1 defines only that one).
    #[error("key method {0:?} is not \"inline\"")]
    UnsupportedKeyMethod(String),
    /// More than one `;`-separated key: we take exactly one.
    #[error("{0} keys offered in one a=crypto line; we take one")]
    MultipleKeys(usize),
    /// The key and salt are not base64 (the text is left out: it is a key).
    #[error("inline key is not base64")]
    BadBase64,
    /// The key, salt, or both together have the wrong length for the suite.
    #[error("{what} for {suite} is {got} bytes, not {expected}")]
    WrongKeyLength {
        /// Which part: master key, master salt, inline key and salt.
        what: &'static str,
        /// The suite the length is for.
        suite: Suite,
        /// Bytes the suite needs.
        expected: usize,
        /// Bytes we got.
        got: usize,
    },
    /// The lifetime is not `2^n` or a decimal number of packets from 1 to 2^48.
    #[error("key lifetime {0:?} is not 2^n or a decimal from 1 to 2^48")]
    BadLifetime(String),
    /// The MKI is not `value:length` with a length of 1 to 128 bytes that holds the value.
    #[error("MKI {0:?} is not value:length with a length of 1 to 128 bytes holding the value")]
    BadMki(String),
    /// More `|` fields after the key than lifetime and MKI.
    #[error("key has {0} '|' fields; at most lifetime and MKI may follow it")]
    TooManyKeyFields(usize),
}

/// One `a=crypto:` attribute (RFC 4568 §9.1): tag, suite, one inline key (with optional lifetime and MKI), session params.
#[derive(Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// Tag the answer echoes to say which offered line it took.
    pub tag: u32,
    /// The crypto suite.
    pub suite: Suite,
    /// The master key and salt the sender of this line protects with.
    pub key: MasterKey,
    /// Packets the key may protect, if the line limits it.
    pub lifetime: Option<u64>,
    /// Master key identifier value and its length in bytes, if the packets carry one.
    /// [`crate::SrtpContext`] neither writes nor strips an MKI, so a line that has one is to
    /// be declined (RFC 4568 §6.1: its sender puts the MKI in every packet).
    pub mki: Option<(u32, u8)>,
    /// Session parameters as written (e.g. `UNENCRYPTED_SRTCP`); the caller decides whether
    /// it can honour them.
    pub session_params: Vec<String>,
}

impl std::fmt::Debug for CryptoAttribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoAttribute")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field("key", &self.key)
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .field("session_params", &self.session_params)
            .finish()
    }
}

impl CryptoAttribute {
    /// Parses the attribute value after "crypto:", e.g. "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4".
    pub fn parse(value: &str) -> Result<CryptoAttribute, SdesError> {
        let mut fields = value.split_ascii_whitespace();
        let tag_text = fields.next().ok_or(SdesError::Missing("tag"))?;
        let tag = parse_tag(tag_text)?;
        let suite_text = fields.next().ok_or(SdesError::Missing("crypto suite"))?;
        let suite = Suite::from_sdp_name(suite_text)
            .ok_or_else(|| SdesError::UnknownSuite(suite_text.to_owned()))?;
        let key_params = fields.next().ok_or(SdesError::Missing("key parameter"))?;
        let key_count = key_params.split(';').count();
        if key_count > 1 {
            return Err(SdesError::MultipleKeys(key_count));
        }
        let (method, info) = key_params.split_once(':').ok_or(SdesError::InlineMissing)?;
        // RFC 5234 §2.3: the quoted "inline" of RFC 4568 §9.2 matches in any case.
        if !method.eq_ignore_ascii_case("inline") {
            return Err(SdesError::UnsupportedKeyMethod(method.to_owned()));
        }
        let mut parts = info.split('|');
        let key_text = parts.next().unwrap_or_default();
        let key = decode_key(suite, key_text)?;
        let rest: Vec<&str> = parts.collect();
        let (lifetime, mki) = match rest.as_slice() {
            [] => (None, None),
            // RFC 4568 §9.2: either may be left out; only the MKI has a colon.
            [one] if one.contains(':') => (None, Some(parse_mki(one)?)),
            [one] => (Some(parse_lifetime(one)?), None),
            [lifetime, mki] => (Some(parse_lifetime(lifetime)?), Some(parse_mki(mki)?)),
            more => return Err(SdesError::TooManyKeyFields(more.len())),
        };
        Ok(CryptoAttribute {
            tag,
            suite,
            key,
            lifetime,
            mki,
            session_params: fields.map(str::to_owned).collect(),
        })
    }

    /// The value to print after "a=crypto:" (no lifetime/MKI when None).
    pub fn to_sdp_value(&self) -> String {
        let mut value = format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.sdp_name(),
            self.key.to_inline()
        );
        if let Some(lifetime) = self.lifetime {
            if lifetime.is_power_of_two() {
                value.push_str(&format!("|2^{}", lifetime.trailing_zeros()));
            } else {
                value.push_str(&format!("|{lifetime}"));
            }
        }
        if let Some((mki, len)) = self.mki {
            value.push_str(&format!("|{mki}:{len}"));
        }
        for param in &self.session_params {
            value.push(' ');
            value.push_str(param);
        }
        value
    }
}

fn parse_tag(text: &str) -> Result<u32, SdesError> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdesError::BadTag(text.to_owned()));
    }
    text.parse().map_err(|_| SdesError::BadTag(text.to_owned()))
}

fn decode_key(suite: Suite, text: &str) -> Result<MasterKey, SdesError> {
    let want = suite.master_key_len() + suite.master_salt_len();
    let mut bytes = [0u8; 16 + MAX_SALT_LEN + 3];
    // Decoding into a fixed buffer bounds the work and keeps the key off the heap; a longer
    // text cannot be the right length anyway.
    if text.len()
        > general_purpose::STANDARD
            .encode([0u8; 16 + MAX_SALT_LEN])
            .len()
    {
        return Err(SdesError::WrongKeyLength {
            what: "inline key and salt",
            suite,
            expected: want,
            got: text.len() / 4 * 3,
        });
    }
    let got = INLINE_BASE64
        .decode_slice(text, &mut bytes)
        .map_err(|_| SdesError::BadBase64)?;
    let result = if got != want {
        Err(SdesError::WrongKeyLength {
            what: "inline key and salt",
            suite,
            expected: want,
            got,
        })
    } else {
        let (key, salt) = bytes[..got].split_at(suite.master_key_len());
        MasterKey::new(suite, key, salt)
    };
    bytes.zeroize();
    result
}

fn parse_lifetime(text: &str) -> Result<u64, SdesError> {
    let bad = || SdesError::BadLifetime(text.to_owned());
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let lifetime = if let Some(exponent) = text.strip_prefix("2^") {
        if !digits(exponent) {
            return Err(bad());
        }
        let exponent: u32 = exponent.parse().map_err(|_| bad())?;
        if exponent > MAX_LIFETIME_EXPONENT {
            return Err(bad());
        }
        1u64 << exponent
    } else {
        if !digits(text) {
            return Err(bad());
        }
        text.parse().map_err(|_| bad())?
    };
    if lifetime == 0 || lifetime > 1u64 << MAX_LIFETIME_EXPONENT {
        return Err(bad());
    }
    Ok(lifetime)
}

fn parse_mki(text: &str) -> Result<(u32, u8), SdesError> {
    let bad = || SdesError::BadMki(text.to_owned());
    let (value, len) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(value) || !digits(len) {
        return Err(bad());
    }
    let value: u32 = value.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len == 0 || len > MAX_MKI_LEN {
        return Err(bad());
    }
    if len < 4 && value >> (8 * u32::from(len)) != 0 {
        return Err(bad());
    }
    Ok((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4568 §4's example line.
    const RFC_EXAMPLE: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4";

    #[test]
    fn parses_the_rfc_example() {
        let attr = CryptoAttribute::parse(RFC_EXAMPLE).unwrap();
        assert_eq!(attr.tag, 1);
        assert_eq!(attr.suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(attr.lifetime, Some(1 << 20));
        assert_eq!(attr.mki, Some((1, 4)));
        assert!(attr.session_params.is_empty());
        assert_eq!(&attr.key.key()[..4], b"YS__");
    }

    #[test]
    fn prints_what_it_parsed() {
        for line in [
            RFC_EXAMPLE,
            "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^31",
            "3 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1000|7:2 UNENCRYPTED_SRTCP",
            "4 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==",
        ] {
            let attr = CryptoAttribute::parse(line).unwrap();
            assert_eq!(attr.to_sdp_value(), line);
            assert_eq!(CryptoAttribute::parse(&attr.to_sdp_value()).unwrap(), attr);
        }
    }

    #[test]
    fn omits_lifetime_and_mki_when_absent() {
        let attr = CryptoAttribute {
            tag: 7,
            suite: Suite::AeadAes128Gcm,
            key: MasterKey::generate(Suite::AeadAes128Gcm),
            lifetime: None,
            mki: None,
            session_params: Vec::new(),
        };
        let value = attr.to_sdp_value();
        assert!(value.starts_with("7 AEAD_AES_128_GCM inline:"));
        assert!(!value.contains('|'));
        assert_eq!(CryptoAttribute::parse(&value).unwrap(), attr);
    }

    #[test]
    fn accepts_a_gcm_key_without_base64_padding() {
        let attr = CryptoAttribute::parse(
            "4 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw",
        )
        .unwrap();
        assert_eq!(
            attr.key.salt(),
            &[16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27]
        );
    }

    #[test]
    fn accepts_lifetime_as_power_or_decimal_and_mki_alone() {
        let key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        let parse = |tail: &str| {
            CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 {key}{tail}")).unwrap()
        };
        assert_eq!(parse("|2^31").lifetime, Some(1 << 31));
        assert_eq!(parse("|1048576").lifetime, Some(1 << 20));
        assert_eq!(parse("|1:4").mki, Some((1, 4)));
        assert_eq!(parse("|1:4").lifetime, None);
        assert_eq!(parse("|2^48|255:1").mki, Some((255, 1)));
    }

    #[test]
    fn rejects_an_unknown_suite() {
        let err = CryptoAttribute::parse(
            "1 AES_256_CM_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        )
        .unwrap_err();
        assert_eq!(
            err,
            SdesError::UnknownSuite("AES_256_CM_HMAC_SHA1_80".into())
        );
    }

    #[test]
    fn rejects_a_short_key() {
        let err =
            CryptoAttribute::parse("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewky")
                .unwrap_err();
        assert!(matches!(
            err,
            SdesError::WrongKeyLength {
                expected: 30,
                got: 18,
                ..
            }
        ));
        // A 30-byte AES-CM key is two bytes too long for GCM.
        let err = CryptoAttribute::parse(
            "1 AEAD_AES_128_GCM inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        )
        .unwrap_err();
        assert!(matches!(err, SdesError::WrongKeyLength { .. }));
    }

    #[test]
    fn rejects_a_key_that_is_not_base64() {
        let err = CryptoAttribute::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVu*Gxz",
        )
        .unwrap_err();
        assert_eq!(err, SdesError::BadBase64);
        assert!(
            !err.to_string().contains("WVNf"),
            "errors never carry key text"
        );
    }

    #[test]
    fn rejects_a_key_without_inline() {
        assert_eq!(
            CryptoAttribute::parse(
                "1 AES_CM_128_HMAC_SHA1_80 WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
            )
            .unwrap_err(),
            SdesError::InlineMissing
        );
        assert_eq!(
            CryptoAttribute::parse("1 AES_CM_128_HMAC_SHA1_80 uri:http://keys.example/k")
                .unwrap_err(),
            SdesError::UnsupportedKeyMethod("uri".into())
        );
        assert_eq!(
            CryptoAttribute::parse("1 AES_CM_128_HMAC_SHA1_80").unwrap_err(),
            SdesError::Missing("key parameter")
        );
    }

    #[test]
    fn rejects_bad_lifetime_syntax() {
        let key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        for tail in [
            "|2^", "|2^x", "|3^4", "|0", "|-5", "|2^49", "|2^+5", "|", "|1e6",
        ] {
            let err = CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 {key}{tail}"))
                .unwrap_err();
            assert!(matches!(err, SdesError::BadLifetime(_)), "{tail}: {err:?}");
        }
    }

    #[test]
    fn rejects_bad_mki() {
        let key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        for tail in [
            "|1:0",
            "|1:129",
            "|256:1",
            "|x:4",
            "|1:",
            "|:4",
            "|2^20|1:4:5",
        ] {
            let err = CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 {key}{tail}"))
                .unwrap_err();
            assert!(matches!(err, SdesError::BadMki(_)), "{tail}: {err:?}");
        }
    }

    #[test]
    fn rejects_bad_tags_and_several_keys() {
        let key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        assert!(matches!(
            CryptoAttribute::parse(&format!("x AES_CM_128_HMAC_SHA1_80 {key}")),
            Err(SdesError::BadTag(_))
        ));
        assert!(matches!(
            CryptoAttribute::parse(&format!("1234567890 AES_CM_128_HMAC_SHA1_80 {key}")),
            Err(SdesError::BadTag(_))
        ));
        assert_eq!(
            CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 {key}|1:1;{key}|2:1")),
            Err(SdesError::MultipleKeys(2))
        );
        assert_eq!(CryptoAttribute::parse(""), Err(SdesError::Missing("tag")));
    }

    #[test]
    fn debug_redacts_the_key() {
        let attr = CryptoAttribute::parse(RFC_EXAMPLE).unwrap();
        let text = format!("{attr:?}");
        assert!(text.contains("<redacted>"));
        assert!(!text.contains("WVNf"));
        assert!(!text.contains("89, 83"), "no key bytes either");
    }
}
