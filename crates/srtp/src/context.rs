//! Protecting and unprotecting packets: per-SSRC index state and the two transforms.

use aes::Aes128;
use aes::cipher::{KeyInit, StreamCipher};
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::kdf::{Label, derive, keystream};
use crate::key::MasterKey;
use crate::replay::{Refusal, ReplayWindow};
use crate::suite::{SRTCP_INDEX_LEN, Suite};

/// SSRCs one context keeps state for; the least recently used is forgotten past this.
pub const MAX_STREAMS: usize = 16;

const RTP_HEADER_LEN: usize = 12;
const RTCP_HEADER_LEN: usize = 8;
/// The E flag of the SRTCP index word (RFC 3711 §3.4).
const E_FLAG: u32 = 0x8000_0000;
/// Largest SRTCP index: it is 31 bits (RFC 3711 §3.4).
const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;

/// What went wrong protecting or unprotecting one packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SrtpError {
    /// The packet is shorter than its headers and tag need.
    #[error("packet of {len} bytes is too short: at least {min} needed")]
    TooShort {
        /// Bytes we were given.
        len: usize,
        /// Bytes the headers (and tag) need.
        min: usize,
    },
    /// The first two bits are not RTP version 2 (RFC 3550 §5.1).
    #[error("not RTP/RTCP version 2 (version {0})")]
    WrongVersion(u8),
    /// The CSRC list or header extension runs past the end of the packet.
    #[error("RTP header of {header} bytes runs past the {len}-byte packet")]
    HeaderOverrun {
        /// Bytes the header says it has.
        header: usize,
        /// Bytes the packet has.
        len: usize,
    },
    /// The authentication tag does not match: wrong key, or the packet was altered.
    #[error("authentication tag does not match")]
    AuthenticationFailed,
    /// A packet with this index already arrived (RFC 3711 §3.3.2).
    #[error("SSRC {ssrc:#010x} index {index} was already received")]
    Replayed {
        /// The stream.
        ssrc: u32,
        /// The packet index.
        index: u64,
    },
    /// The index is behind the replay window, so we cannot tell if it is a replay.
    #[error("SSRC {ssrc:#010x} index {index} is older than the replay window")]
    TooOld {
        /// The stream.
        ssrc: u32,
        /// The packet index.
        index: u64,
    },
    /// The buffer has no room for the tag (or `len` exceeds the buffer).
    #[error("buffer of {available} bytes cannot hold {needed}")]
    BufferTooSmall {
        /// Bytes the result needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// The packet is longer than GCM can encrypt under one IV (RFC 7714 §7).
    #[error("packet of {len} bytes is too long to encrypt")]
    PacketTooLong {
        /// Bytes we were given.
        len: usize,
    },
    /// The master key has protected all the packets it may (RFC 3711 §9.2): rekey.
    #[error("master key exhausted for SSRC {ssrc:#010x}: rekey")]
    KeyExhausted {
        /// The stream.
        ssrc: u32,
    },
}

/// Session keys for one of SRTP or SRTCP, expanded once.
enum Transform {
    /// AES-CM with HMAC-SHA1 (RFC 3711 §4.1.1, §4.2.1).
    AesCm {
        cipher: Aes128,
        salt: [u8; 14],
        /// Keyed once; each packet starts from a copy, so no key schedule per packet.
        auth: Hmac<Sha1>,
        tag_len: usize,
    },
    /// AEAD_AES_128_GCM (RFC 7714).
    Gcm { aead: Aes128Gcm, salt: [u8; 12] },
}

impl Transform {
    fn new(suite: Suite, master: &MasterKey, rtcp: bool) -> Transform {
        let (enc, auth_label, salt_label) = if rtcp {
            (
                Label::RtcpEncryption,
                Label::RtcpAuthentication,
                Label::RtcpSalt,
            )
        } else {
            (
                Label::RtpEncryption,
                Label::RtpAuthentication,
                Label::RtpSalt,
            )
        };
        let mut key = [0u8; 16];
        derive(master, enc, &mut key);
        let transform = match suite {
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 => {
                let mut salt = [0u8; 14];
                derive(master, salt_label, &mut salt);
                // RFC 3711 §4.2.1: HMAC-SHA1 takes a 160-bit session authentication key.
                let mut auth_key = [0u8; 20];
                derive(master, auth_label, &mut auth_key);
                let auth = <Hmac<Sha1> as KeyInit>::new_from_slice(&auth_key)
                    .expect("HMAC takes keys of any length");
                auth_key.zeroize();
                Transform::AesCm {
                    cipher: Aes128::new((&key).into()),
                    salt,
                    auth,
                    tag_len: if rtcp {
                        suite.rtcp_tag_len()
                    } else {
                        suite.rtp_tag_len()
                    },
                }
            }
            Suite::AeadAes128Gcm => {
                // RFC 7714 §11: the session salt is the first 96 bits of the PRF output.
                let mut salt = [0u8; 12];
                derive(master, salt_label, &mut salt);
                Transform::Gcm {
                    aead: Aes128Gcm::new((&key).into()),
                    salt,
                }
            }
        };
        key.zeroize();
        transform
    }

    fn tag_len(&self) -> usize {
        match self {
            Transform::AesCm { tag_len, .. } => *tag_len,
            Transform::Gcm { .. } => 16,
        }
    }
}

/// The AES-CM IV: salt * 2^16 XOR SSRC * 2^64 XOR index * 2^16 (RFC 3711 §4.1.1).
fn aes_cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= s;
    }
    iv
}

/// The GCM IV: salt XOR 00 00 || SSRC || `high` || `low` (RFC 7714 §8.1 with ROC and SEQ,
/// §9.1 with 00 00 and the SRTCP index).
fn gcm_iv(salt: &[u8; 12], ssrc: u32, high: u32, low: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&high.to_be_bytes());
    iv[10..12].copy_from_slice(&low.to_be_bytes());
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

/// XORs the 31-bit SRTCP index into the last four octets of a GCM IV (RFC 7714 §9.1).
fn xor_srtcp_index(mut iv: [u8; 12], index: u32) -> [u8; 12] {
    for (b, s) in iv[8..].iter_mut().zip(index.to_be_bytes()) {
        *b ^= s;
    }
    iv
}

/// Length of the RTP header with its CSRCs and extension: SRTP encrypts only what follows
/// (RFC 3711 §3.1).
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    if packet.len() < RTP_HEADER_LEN {
        return Err(SrtpError::TooShort {
            len: packet.len(),
            min: RTP_HEADER_LEN,
        });
    }
    let version = packet[0] >> 6;
    if version != 2 {
        return Err(SrtpError::WrongVersion(version));
    }
    let csrc_count = usize::from(packet[0] & 0x0f);
    let mut header = RTP_HEADER_LEN + 4 * csrc_count;
    if packet[0] & 0x10 != 0 {
        // RFC 3550 §5.3.1: a 4-octet extension header whose second half counts 32-bit words.
        let words = packet
            .get(header + 2..header + 4)
            .map(|w| usize::from(u16::from_be_bytes([w[0], w[1]])))
            .ok_or(SrtpError::HeaderOverrun {
                header: header + 4,
                len: packet.len(),
            })?;
        header += 4 + 4 * words;
    }
    if header > packet.len() {
        return Err(SrtpError::HeaderOverrun {
            header,
            len: packet.len(),
        });
    }
    Ok(header)
}

/// Checks that `len` bytes of a received packet are in `buf` and at least `min`.
fn check_received_len(buf: &[u8], len: usize, min: usize) -> Result<(), SrtpError> {
    if len > buf.len() {
        return Err(SrtpError::BufferTooSmall {
            needed: len,
            available: buf.len(),
        });
    }
    if len < min {
        return Err(SrtpError::TooShort { len, min });
    }
    Ok(())
}

/// The error for a packet index the replay window refused.
fn refused(refusal: Refusal, ssrc: u32, index: u64) -> SrtpError {
    match refusal {
        Refusal::Replayed => SrtpError::Replayed { ssrc, index },
        Refusal::TooOld => SrtpError::TooOld { ssrc, index },
    }
}

/// Checks the fixed first eight octets of an RTCP packet: version and sender SSRC.
fn check_rtcp_header(packet: &[u8]) -> Result<(), SrtpError> {
    if packet.len() < RTCP_HEADER_LEN {
        return Err(SrtpError::TooShort {
            len: packet.len(),
            min: RTCP_HEADER_LEN,
        });
    }
    let version = packet[0] >> 6;
    if version != 2 {
        return Err(SrtpError::WrongVersion(version));
    }
    Ok(())
}

/// HMAC-SHA1 of `parts`, truncated into `tag` (RFC 3711 §4.2.1).
fn hmac_tag(auth: &Hmac<Sha1>, parts: [&[u8]; 2], tag: &mut [u8]) {
    let mut mac = auth.clone();
    for part in parts {
        mac.update(part);
    }
    let full = mac.finalize().into_bytes();
    tag.copy_from_slice(&full[..tag.len()]);
}

/// One SSRC's indices: what we sent or what we accepted.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// When the stream last carried a packet, in packets handled by the context.
    last_used: u64,
    rtp: ReplayWindow,
    rtcp: ReplayWindow,
    /// Last SRTCP index sent.
    srtcp_sent: u32,
}

impl Stream {
    fn new(ssrc: u32) -> Stream {
        Stream {
            ssrc,
            last_used: 0,
            rtp: ReplayWindow::default(),
            rtcp: ReplayWindow::default(),
            srtcp_sent: 0,
        }
    }
}

/// Which way a context protects: what we send (protect) or what we receive (unprotect).
pub struct SrtpContext {
    suite: Suite,
    rtp: Transform,
    rtcp: Transform,
    /// At most `MAX_STREAMS`, allocated up front.
    streams: Vec<Stream>,
    clock: u64,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// A context for `suite` keyed with `key`, deriving its session keys once.
    pub fn new(suite: Suite, key: &MasterKey) -> SrtpContext {
        SrtpContext {
            suite,
            rtp: Transform::new(suite, key, false),
            rtcp: Transform::new(suite, key, true),
            streams: Vec::with_capacity(MAX_STREAMS),
            clock: 0,
        }
    }

    /// The suite this context protects with.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Encrypts and authenticates the RTP packet in buf[..len] in place; buf must have room for suite.rtp_overhead() more bytes. Returns the new length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.rtp.tag_len();
        let out_len = len + tag_len;
        if buf.len() < out_len {
            return Err(SrtpError::BufferTooSmall {
                needed: out_len,
                available: buf.len(),
            });
        }
        let header_len = rtp_header_len(&buf[..len])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);

        let slot = self.stream_slot(ssrc);
        let stream = &mut self.streams[slot];
        // The sender guesses the ROC the same way the receiver will, so a packet the caller
        // sends out of order still gets the index the receiver computes.
        let index = match stream.rtp.estimate_rtp_index(seq) {
            Some(index) => index,
            // RFC 3711 §9.2: after 2^48 packets the key must not be used again.
            None if stream.rtp.roc() == u32::MAX => return Err(SrtpError::KeyExhausted { ssrc }),
            // A jump back past the start of the stream: nothing was sent under ROC -1, so
            // ROC 0 reuses no keystream (the receiver will refuse it as too old).
            None => u64::from(seq),
        };
        stream.rtp.accept(index);

        let roc = (index >> 16) as u32;
        match &self.rtp {
            Transform::AesCm {
                cipher, salt, auth, ..
            } => {
                let iv = aes_cm_iv(salt, ssrc, index);
                keystream(cipher, &iv).apply_keystream(&mut buf[header_len..len]);
                let (packet, tag) = buf[..out_len].split_at_mut(len);
                hmac_tag(auth, [packet, &roc.to_be_bytes()], tag);
            }
            Transform::Gcm { aead, salt } => {
                let iv = gcm_iv(salt, ssrc, roc, seq);
                let (header, rest) = buf.split_at_mut(header_len);
                let (body, tag_out) = rest.split_at_mut(len - header_len);
                let tag = aead
                    .encrypt_inout_detached(&Nonce::from(iv), header, body.into())
                    .map_err(|_| SrtpError::PacketTooLong { len })?;
                tag_out[..16].copy_from_slice(&tag);
            }
        }
        Ok(out_len)
    }

    /// Checks and decrypts the SRTP packet in buf[..len] in place; returns the RTP length. Rejects bad tags, replays and too-short packets.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.rtp.tag_len();
        check_received_len(buf, len, RTP_HEADER_LEN + tag_len)?;
        let rtp_len = len - tag_len;
        let header_len = rtp_header_len(&buf[..rtp_len])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);

        // A stream we do not know yet is only remembered once its packet authenticates, so
        // forged packets with random SSRCs cannot push real streams out.
        let known = self.find(ssrc);
        let mut stream = known.map_or(Stream::new(ssrc), |slot| self.streams[slot]);
        let index = stream
            .rtp
            .estimate_rtp_index(seq)
            .ok_or(SrtpError::TooOld {
                ssrc,
                index: u64::from(seq),
            })?;
        stream
            .rtp
            .check(index)
            .map_err(|refusal| refused(refusal, ssrc, index))?;

        let roc = (index >> 16) as u32;
        match &self.rtp {
            Transform::AesCm {
                cipher, salt, auth, ..
            } => {
                let (packet, tag) = buf[..len].split_at_mut(rtp_len);
                let mut expected = [0u8; 10];
                let expected = &mut expected[..tag_len];
                hmac_tag(auth, [packet, &roc.to_be_bytes()], expected);
                if !bool::from(expected.ct_eq(tag)) {
                    return Err(SrtpError::AuthenticationFailed);
                }
                let iv = aes_cm_iv(salt, ssrc, index);
                keystream(cipher, &iv).apply_keystream(&mut packet[header_len..]);
            }
            Transform::Gcm { aead, salt } => {
                let iv = gcm_iv(salt, ssrc, roc, seq);
                let (header, rest) = buf[..len].split_at_mut(header_len);
                let (body, tag) = rest.split_at_mut(rtp_len - header_len);
                let tag = Tag::try_from(&*tag).map_err(|_| SrtpError::AuthenticationFailed)?;
                aead.decrypt_inout_detached(&Nonce::from(iv), header, body.into(), &tag)
                    .map_err(|_| SrtpError::AuthenticationFailed)?;
            }
        }

        stream.rtp.accept(index);
        self.remember(known, stream);
        Ok(rtp_len)
    }

    /// Encrypts and authenticates the RTCP compound packet in buf[..len] in place (E flag set, RFC 3711 §3.4); buf must have room for suite.rtcp_overhead() more bytes. Returns the new length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.rtcp.tag_len();
        let out_len = len + SRTCP_INDEX_LEN + tag_len;
        if buf.len() < out_len {
            return Err(SrtpError::BufferTooSmall {
                needed: out_len,
                available: buf.len(),
            });
        }
        check_rtcp_header(&buf[..len])?;
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let slot = self.stream_slot(ssrc);
        let stream = &mut self.streams[slot];
        // libsrtp counts from 1 for the first packet; either is valid, matching keeps the
        // libsrtp reference packets reproducible.
        if stream.srtcp_sent >= MAX_SRTCP_INDEX {
            return Err(SrtpError::KeyExhausted { ssrc });
        }
        stream.srtcp_sent += 1;
        let index = stream.srtcp_sent;
        let word = (E_FLAG | index).to_be_bytes();

        match &self.rtcp {
            Transform::AesCm {
                cipher, salt, auth, ..
            } => {
                let iv = aes_cm_iv(salt, ssrc, u64::from(index));
                keystream(cipher, &iv).apply_keystream(&mut buf[RTCP_HEADER_LEN..len]);
                buf[len..len + SRTCP_INDEX_LEN].copy_from_slice(&word);
                let (packet, tag) = buf[..out_len].split_at_mut(len + SRTCP_INDEX_LEN);
                hmac_tag(auth, [packet, &[]], tag);
            }
            Transform::Gcm { aead, salt } => {
                // RFC 7714 §9: header || ciphertext || tag || E+index, with the first eight
                // octets and the index word as AAD.
                let iv = gcm_iv(salt, ssrc, 0, 0);
                let iv = xor_srtcp_index(iv, index);
                let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
                aad[..RTCP_HEADER_LEN].copy_from_slice(&buf[..RTCP_HEADER_LEN]);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&word);
                let tag = aead
                    .encrypt_inout_detached(
                        &Nonce::from(iv),
                        &aad,
                        (&mut buf[RTCP_HEADER_LEN..len]).into(),
                    )
                    .map_err(|_| SrtpError::PacketTooLong { len })?;
                buf[len..len + 16].copy_from_slice(&tag);
                buf[len + 16..out_len].copy_from_slice(&word);
            }
        }
        Ok(out_len)
    }

    /// Checks and decrypts the SRTCP packet in buf[..len] in place; returns the RTCP length. Rejects bad tags, replays and too-short packets.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.rtcp.tag_len();
        check_received_len(buf, len, RTCP_HEADER_LEN + SRTCP_INDEX_LEN + tag_len)?;
        let rtcp_len = len - SRTCP_INDEX_LEN - tag_len;
        check_rtcp_header(&buf[..rtcp_len])?;
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        // AES-CM puts the index word before the tag (RFC 3711 §3.4), GCM after (RFC 7714 §9).
        let word_at = match self.rtcp {
            Transform::AesCm { .. } => rtcp_len,
            Transform::Gcm { .. } => rtcp_len + tag_len,
        };
        let word_bytes = [
            buf[word_at],
            buf[word_at + 1],
            buf[word_at + 2],
            buf[word_at + 3],
        ];
        let word = u32::from_be_bytes(word_bytes);
        let encrypted = word & E_FLAG != 0;
        let index = word & MAX_SRTCP_INDEX;

        let known = self.find(ssrc);
        let mut stream = known.map_or(Stream::new(ssrc), |slot| self.streams[slot]);
        stream
            .rtcp
            .check(u64::from(index))
            .map_err(|refusal| refused(refusal, ssrc, u64::from(index)))?;

        match &self.rtcp {
            Transform::AesCm {
                cipher, salt, auth, ..
            } => {
                let (packet, tag) = buf[..len].split_at_mut(rtcp_len + SRTCP_INDEX_LEN);
                let mut expected = [0u8; 10];
                let expected = &mut expected[..tag_len];
                hmac_tag(auth, [packet, &[]], expected);
                if !bool::from(expected.ct_eq(tag)) {
                    return Err(SrtpError::AuthenticationFailed);
                }
                if encrypted {
                    let iv = aes_cm_iv(salt, ssrc, u64::from(index));
                    keystream(cipher, &iv).apply_keystream(&mut packet[RTCP_HEADER_LEN..rtcp_len]);
                }
            }
            Transform::Gcm { aead, salt } => {
                let iv = xor_srtcp_index(gcm_iv(salt, ssrc, 0, 0), index);
                let (packet, rest) = buf[..len].split_at_mut(rtcp_len);
                let tag =
                    Tag::try_from(&rest[..tag_len]).map_err(|_| SrtpError::AuthenticationFailed)?;
                let result = if encrypted {
                    let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
                    aad[..RTCP_HEADER_LEN].copy_from_slice(&packet[..RTCP_HEADER_LEN]);
                    aad[RTCP_HEADER_LEN..].copy_from_slice(&word_bytes);
                    aead.decrypt_inout_detached(
                        &Nonce::from(iv),
                        &aad,
                        (&mut packet[RTCP_HEADER_LEN..]).into(),
                        &tag,
                    )
                } else {
                    // RFC 7714 §9.2: unencrypted SRTCP is all AAD, the packet then the index
                    // word, with nothing to decrypt. The tag is saved, so moving the word over
                    // it makes the AAD one slice without copying the packet.
                    rest[..SRTCP_INDEX_LEN].copy_from_slice(&word_bytes);
                    let aad = &buf[..rtcp_len + SRTCP_INDEX_LEN];
                    aead.decrypt_inout_detached(&Nonce::from(iv), aad, (&mut [][..]).into(), &tag)
                };
                result.map_err(|_| SrtpError::AuthenticationFailed)?;
            }
        }

        stream.rtcp.accept(u64::from(index));
        self.remember(known, stream);
        Ok(rtcp_len)
    }

    fn find(&self, ssrc: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.ssrc == ssrc)
    }

    /// The slot of `ssrc`'s stream for sending, making one if it is new.
    fn stream_slot(&mut self, ssrc: u32) -> usize {
        self.clock += 1;
        let slot = match self.find(ssrc) {
            Some(slot) => slot,
            None => self.free_slot(Stream::new(ssrc)),
        };
        self.streams[slot].last_used = self.clock;
        slot
    }

    /// Stores a received stream's state once its packet authenticated.
    fn remember(&mut self, slot: Option<usize>, mut stream: Stream) {
        self.clock += 1;
        stream.last_used = self.clock;
        match slot {
            Some(slot) => self.streams[slot] = stream,
            None => {
                self.free_slot(stream);
            }
        }
    }

    /// Puts a new stream in a free slot or, when all are taken, in the least recently used.
    fn free_slot(&mut self, stream: Stream) -> usize {
        if self.streams.len() < MAX_STREAMS {
            self.streams.push(stream);
            return self.streams.len() - 1;
        }
        // A phone picks a new SSRC after a re-INVITE and the old one goes quiet, so the least
        // recently used stream is the one to forget.
        let oldest = self
            .streams
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.last_used)
            .map_or(0, |(slot, _)| slot);
        self.streams[oldest] = stream;
        oldest
    }
}

#[cfg(test)]
impl Transform {
    /// A transform from session keys directly, as the RFC vectors give them.
    fn from_session(
        suite: Suite,
        key: &[u8; 16],
        salt: &[u8],
        auth: &[u8; 20],
        rtcp: bool,
    ) -> Self {
        match suite {
            Suite::AeadAes128Gcm => Transform::Gcm {
                aead: Aes128Gcm::new(key.into()),
                salt: salt.try_into().expect("12-byte GCM salt"),
            },
            _ => Transform::AesCm {
                cipher: Aes128::new(key.into()),
                salt: salt.try_into().expect("14-byte AES-CM salt"),
                auth: <Hmac<Sha1> as KeyInit>::new_from_slice(auth).expect("any length"),
                tag_len: if rtcp {
                    suite.rtcp_tag_len()
                } else {
                    suite.rtp_tag_len()
                },
            },
        }
    }
}

#[cfg(test)]
impl SrtpContext {
    /// A context keyed with session keys, skipping the key derivation.
    pub(crate) fn from_session_keys(
        suite: Suite,
        key: &[u8; 16],
        salt: &[u8],
        auth: &[u8; 20],
    ) -> Self {
        SrtpContext {
            suite,
            rtp: Transform::from_session(suite, key, salt, auth, false),
            rtcp: Transform::from_session(suite, key, salt, auth, true),
            streams: Vec::with_capacity(MAX_STREAMS),
            clock: 0,
        }
    }

    /// Makes the next SRTCP packet sent on `ssrc` carry `index`.
    pub(crate) fn set_next_srtcp_index(&mut self, ssrc: u32, index: u32) {
        let slot = self.stream_slot(ssrc);
        self.streams[slot].srtcp_sent = index - 1;
    }

    /// How many SSRCs the context keeps state for.
    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(suite: Suite) -> (SrtpContext, SrtpContext) {
        let key = MasterKey::generate(suite);
        (SrtpContext::new(suite, &key), SrtpContext::new(suite, &key))
    }

    /// A PCMU-sized RTP packet in a buffer with room for any tag.
    fn rtp(seq: u16, ssrc: u32) -> ([u8; 256], usize) {
        let mut buf = [0u8; 256];
        buf[0] = 0x80;
        buf[1] = 0;
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
        for (i, b) in buf[12..172].iter_mut().enumerate() {
            *b = i as u8 ^ seq as u8;
        }
        (buf, 172)
    }

    fn protected(sender: &mut SrtpContext, seq: u16, ssrc: u32) -> ([u8; 256], usize) {
        let (mut buf, len) = rtp(seq, ssrc);
        let len = sender.protect_rtp(&mut buf, len).unwrap();
        (buf, len)
    }

    fn unprotect(
        receiver: &mut SrtpContext,
        packet: &([u8; 256], usize),
    ) -> Result<usize, SrtpError> {
        let mut buf = packet.0;
        receiver.unprotect_rtp(&mut buf, packet.1)
    }

    #[test]
    fn round_trips_every_suite() {
        for suite in Suite::ALL {
            let (mut sender, mut receiver) = pair(suite);
            for seq in 1000..1010 {
                let (plain, plain_len) = rtp(seq, 0x1234_5678);
                let (mut buf, len) = protected(&mut sender, seq, 0x1234_5678);
                assert_eq!(len, plain_len + suite.rtp_overhead());
                assert_ne!(buf[12..plain_len], plain[12..plain_len], "{suite} encrypts");
                assert_eq!(buf[..12], plain[..12], "{suite} leaves the header clear");
                assert_eq!(receiver.unprotect_rtp(&mut buf, len), Ok(plain_len));
                assert_eq!(buf[..plain_len], plain[..plain_len]);
            }
        }
    }

    #[test]
    fn keeps_csrcs_extension_and_padding_in_the_clear() {
        for suite in Suite::ALL {
            let (mut sender, mut receiver) = pair(suite);
            let mut packet = vec![0xb1, 0x00, 0x00, 0x07]; // V=2, P, X, CC=1
            packet.extend_from_slice(&[0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef]);
            packet.extend_from_slice(&[1, 2, 3, 4]); // CSRC
            packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]); // RFC 8285, 1 word
            packet.extend_from_slice(&[0x55; 20]);
            packet.extend_from_slice(&[0, 0, 3]); // padding, count 3
            let header_len = 24;
            let mut buf = [0u8; 128];
            buf[..packet.len()].copy_from_slice(&packet);
            let len = sender.protect_rtp(&mut buf, packet.len()).unwrap();
            assert_eq!(buf[..header_len], packet[..header_len]);
            assert_ne!(buf[header_len..packet.len()], packet[header_len..]);
            let len = receiver.unprotect_rtp(&mut buf, len).unwrap();
            assert_eq!(buf[..len], packet[..]);
        }
    }

    #[test]
    fn rejects_a_tampered_tag_or_payload() {
        for suite in Suite::ALL {
            let (mut sender, mut receiver) = pair(suite);
            let packet = protected(&mut sender, 7, 1);
            let mut tag = packet;
            tag.0[packet.1 - 1] ^= 0x01;
            assert_eq!(
                unprotect(&mut receiver, &tag),
                Err(SrtpError::AuthenticationFailed)
            );
            let mut payload = packet;
            payload.0[40] ^= 0x80;
            assert_eq!(
                unprotect(&mut receiver, &payload),
                Err(SrtpError::AuthenticationFailed)
            );
            let mut header = packet;
            header.0[1] ^= 0x01;
            assert_eq!(
                unprotect(&mut receiver, &header),
                Err(SrtpError::AuthenticationFailed)
            );
            // A forged packet changes nothing: the real one still goes through.
            assert!(unprotect(&mut receiver, &packet).is_ok());
        }
    }

    #[test]
    fn rejects_a_key_from_another_context() {
        let (mut sender, _) = pair(Suite::AesCm128HmacSha1_80);
        let (_, mut stranger) = pair(Suite::AesCm128HmacSha1_80);
        let packet = protected(&mut sender, 1, 1);
        assert_eq!(
            unprotect(&mut stranger, &packet),
            Err(SrtpError::AuthenticationFailed)
        );
    }

    #[test]
    fn rejects_a_replayed_packet() {
        for suite in Suite::ALL {
            let (mut sender, mut receiver) = pair(suite);
            let first = protected(&mut sender, 100, 9);
            let second = protected(&mut sender, 101, 9);
            assert!(unprotect(&mut receiver, &first).is_ok());
            assert!(unprotect(&mut receiver, &second).is_ok());
            assert_eq!(
                unprotect(&mut receiver, &first),
                Err(SrtpError::Replayed {
                    ssrc: 9,
                    index: 100
                })
            );
            assert_eq!(
                unprotect(&mut receiver, &second),
                Err(SrtpError::Replayed {
                    ssrc: 9,
                    index: 101
                })
            );
        }
    }

    #[test]
    fn rejects_an_old_packet_outside_the_window() {
        let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
        let old = protected(&mut sender, 10, 3);
        let in_window = protected(&mut sender, 11, 3);
        let new = protected(&mut sender, 10 + crate::replay::WINDOW as u16, 3);
        assert!(unprotect(&mut receiver, &new).is_ok());
        assert_eq!(
            unprotect(&mut receiver, &old),
            Err(SrtpError::TooOld { ssrc: 3, index: 10 })
        );
        assert!(
            unprotect(&mut receiver, &in_window).is_ok(),
            "late but inside"
        );
    }

    #[test]
    fn sequence_wrap_increments_roc() {
        for suite in Suite::ALL {
            let (mut sender, mut receiver) = pair(suite);
            for seq in [65_534, 65_535, 0, 1] {
                let packet = protected(&mut sender, seq, 5);
                assert!(
                    unprotect(&mut receiver, &packet).is_ok(),
                    "{suite} seq {seq}"
                );
            }
            let slot = receiver.find(5).unwrap();
            assert_eq!(
                receiver.streams[slot].rtp.estimate_rtp_index(2),
                Some(0x1_0002),
                "{suite}: ROC is 1 after the wrap"
            );
            // The packet after the wrap was protected with ROC 1; a receiver whose first
            // packet it is assumes ROC 0, so the ROC must be in what the tag covers.
            let (mut sender, mut receiver) = pair(suite);
            let _ = protected(&mut sender, 65_535, 5);
            let wrapped = protected(&mut sender, 0, 5);
            assert_eq!(
                unprotect(&mut receiver, &wrapped),
                Err(SrtpError::AuthenticationFailed),
                "{suite}"
            );
        }
    }

    #[test]
    fn a_reordered_packet_across_the_wrap_decrypts() {
        for suite in Suite::ALL {
            let (mut sender, mut receiver) = pair(suite);
            let p65534 = protected(&mut sender, 65_534, 5);
            let p65535 = protected(&mut sender, 65_535, 5);
            let p0 = protected(&mut sender, 0, 5);
            let p1 = protected(&mut sender, 1, 5);
            let mut buf = p65534.0;
            assert!(receiver.unprotect_rtp(&mut buf, p65534.1).is_ok());
            assert!(
                unprotect(&mut receiver, &p0).is_ok(),
                "{suite}: ahead across the wrap"
            );
            let mut buf = p65535.0;
            let len = receiver.unprotect_rtp(&mut buf, p65535.1).unwrap();
            assert_eq!(
                buf[..len],
                rtp(65_535, 5).0[..len],
                "{suite}: late, before the wrap"
            );
            assert!(unprotect(&mut receiver, &p1).is_ok());
            assert_eq!(
                unprotect(&mut receiver, &p65535),
                Err(SrtpError::Replayed {
                    ssrc: 5,
                    index: 65_535
                })
            );
        }
    }

    #[test]
    fn sender_keeps_its_roc_when_resending_from_before_the_wrap() {
        let (mut sender, mut receiver) = pair(Suite::AeadAes128Gcm);
        let a = protected(&mut sender, 65_535, 8);
        let b = protected(&mut sender, 0, 8);
        let late = protected(&mut sender, 65_533, 8);
        assert!(unprotect(&mut receiver, &a).is_ok());
        assert!(unprotect(&mut receiver, &b).is_ok());
        assert!(unprotect(&mut receiver, &late).is_ok());
    }

    #[test]
    fn rtcp_round_trips_and_rejects_replays() {
        for suite in Suite::ALL {
            let (mut sender, mut receiver) = pair(suite);
            // A receiver report with one block.
            let mut report = vec![0x81, 201, 0, 7, 0, 0, 0, 42];
            report.extend((0..24).map(|i| i as u8));
            for round in 0..3 {
                let mut buf = [0u8; 128];
                buf[..report.len()].copy_from_slice(&report);
                let len = sender.protect_rtcp(&mut buf, report.len()).unwrap();
                assert_eq!(len, report.len() + suite.rtcp_overhead());
                assert_ne!(buf[8..report.len()], report[8..], "{suite} encrypts RTCP");
                let copy = buf;
                let mut forged = copy;
                forged[10] ^= 4;
                assert_eq!(
                    receiver.unprotect_rtcp(&mut forged, len),
                    Err(SrtpError::AuthenticationFailed)
                );
                assert_eq!(receiver.unprotect_rtcp(&mut buf, len), Ok(report.len()));
                assert_eq!(buf[..report.len()], report[..], "{suite} round {round}");
                let mut again = copy;
                assert!(matches!(
                    receiver.unprotect_rtcp(&mut again, len),
                    Err(SrtpError::Replayed { ssrc: 42, .. })
                ));
            }
        }
    }

    #[test]
    fn srtcp_index_word_has_the_e_flag_and_counts_up() {
        let (mut sender, _) = pair(Suite::AesCm128HmacSha1_80);
        let report = [0x80, 201, 0, 1, 0, 0, 0, 1];
        for expected in 1u32..4 {
            let mut buf = [0u8; 64];
            buf[..8].copy_from_slice(&report);
            let len = sender.protect_rtcp(&mut buf, 8).unwrap();
            assert_eq!(buf[8..12], (E_FLAG | expected).to_be_bytes());
            assert_eq!(len, 8 + 4 + 10);
        }
    }

    #[test]
    fn a_new_ssrc_after_reinvite_keeps_working() {
        let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
        for ssrc in 0..(MAX_STREAMS as u32 + 4) {
            for seq in [10, 11] {
                let packet = protected(&mut sender, seq, ssrc);
                assert!(unprotect(&mut receiver, &packet).is_ok(), "SSRC {ssrc}");
            }
        }
        assert_eq!(receiver.stream_count(), MAX_STREAMS);
        assert_eq!(sender.stream_count(), MAX_STREAMS);
        assert!(receiver.find(MAX_STREAMS as u32 + 3).is_some());
        assert!(
            receiver.find(0).is_none(),
            "the quietest stream was forgotten"
        );
        // A forgotten SSRC that speaks again starts over rather than failing.
        let packet = protected(&mut sender, 12, 0);
        assert!(unprotect(&mut receiver, &packet).is_ok());
    }

    #[test]
    fn forged_packets_from_new_ssrcs_push_no_stream_out() {
        let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
        let real = protected(&mut sender, 500, 77);
        assert!(unprotect(&mut receiver, &real).is_ok());
        for ssrc in 1000..1100 {
            let (mut forged, len) = rtp(1, ssrc);
            assert_eq!(
                receiver.unprotect_rtp(&mut forged, len + 10),
                Err(SrtpError::AuthenticationFailed)
            );
        }
        assert_eq!(receiver.stream_count(), 1);
        assert!(matches!(
            unprotect(&mut receiver, &real),
            Err(SrtpError::Replayed { ssrc: 77, .. })
        ));
    }

    #[test]
    fn rejects_short_and_malformed_packets() {
        let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
        let mut buf = [0x80u8; 64];
        assert_eq!(
            receiver.unprotect_rtp(&mut buf, 21),
            Err(SrtpError::TooShort { len: 21, min: 22 })
        );
        assert_eq!(
            receiver.unprotect_rtcp(&mut buf, 21),
            Err(SrtpError::TooShort { len: 21, min: 22 })
        );
        assert_eq!(
            receiver.unprotect_rtp(&mut buf, 65),
            Err(SrtpError::BufferTooSmall {
                needed: 65,
                available: 64
            })
        );
        let mut old = [0x40u8; 64];
        assert_eq!(
            receiver.unprotect_rtp(&mut old, 40),
            Err(SrtpError::WrongVersion(1))
        );
        let mut csrcs = [0u8; 64];
        csrcs[0] = 0x8f; // 15 CSRCs need 72 header bytes
        assert!(matches!(
            receiver.unprotect_rtp(&mut csrcs, 64),
            Err(SrtpError::HeaderOverrun {
                header: 72,
                len: 54
            })
        ));
        let mut ext = [0u8; 64];
        ext[0] = 0x90;
        ext[14..16].copy_from_slice(&100u16.to_be_bytes());
        assert!(matches!(
            sender.protect_rtp(&mut ext, 30),
            Err(SrtpError::HeaderOverrun { .. })
        ));
        let (mut full, len) = rtp(1, 1);
        assert_eq!(
            sender.protect_rtp(&mut full[..len + 9], len),
            Err(SrtpError::BufferTooSmall {
                needed: len + 10,
                available: len + 9
            })
        );
    }
}
