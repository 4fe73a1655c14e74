//! SDP offer/answer for audio calls with SIP phones: RFC 4566 syntax, RFC 3264 negotiation.
//!
//! We parse SDP ourselves ([`parse`]) instead of with `webrtc-sdp` 0.3. Checked on real phone
//! SDP: `webrtc-sdp` silently drops m-lines it does not model (`m=image 0 udptl t38` from fax
//! re-INVITEs, `TCP/RTP/AVP`, `m=message`) and then files their `a=` lines under the previous
//! m-line, so a T.38 section's `a=sendonly` would land on our audio. RFC 3264 §6 needs every
//! offered m-line, in order, to build the answer. It also rejects `k=prompt`, `a=ptime:20.0`
//! and a missing `t=`, which phones send. The subset we need (c, m, rtpmap, fmtp, ptime,
//! direction, rtcp, rtcp-mux, extmap) is small; everything else is skipped.
//!
//! Text here is signalling, not the per-packet path: parsing and printing allocate.

mod image;
mod keys;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

pub use image::{ImageStream, LocalImage, MAX_FAX_ATTRIBUTES, t38_answer, t38_offer};
pub use keys::{LocalSrtp, MAX_CRYPTO_LINES, NegotiatedSrtp, OFFERED_SUITES};
pub use parse::parse;
pub use srtp::{SrtpPolicy, UnknownSrtpPolicy};

/// Largest SDP body we accept; phone offers are well under 2 KiB.
pub const MAX_SDP_BYTES: usize = 16 * 1024;
/// Most m-lines we accept in one description.
pub const MAX_MEDIA: usize = 64;
/// Payload type of `telephone-event/8000` in our offers (the common choice of phones).
pub const TELEPHONE_EVENT_PT: u8 = 101;
/// Payload type of `telephone-event/48000` in our offers (RFC 4733 §2.1: rate follows Opus).
pub const TELEPHONE_EVENT_48K_PT: u8 = 97;
/// Dynamic payload type of Opus in our offers.
pub const OPUS_PT: u8 = 96;
/// RTP header extension URI of the client-to-mixer audio level (RFC 6464 §4).
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// Packet time when the peer states none (RFC 3551 §4.5: 20 ms for frame-less codecs).
pub const DEFAULT_PTIME_MS: u32 = 20;

/// Why an SDP body was rejected or could not be negotiated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Body larger than [`MAX_SDP_BYTES`].
    #[error("SDP body is {len} bytes, limit is {MAX_SDP_BYTES}")]
    TooLarge {
        /// Length of the rejected body in bytes.
        len: usize,
    },
    /// More than [`MAX_MEDIA`] m-lines.
    #[error("SDP has more than {MAX_MEDIA} m= lines")]
    TooManyMedia,
    /// A line breaks the RFC 4566 grammar for the part we read.
    #[error("SDP line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A mandatory line (`v=`, `o=`) is absent.
    #[error("SDP has no {0} line")]
    Missing(&'static str),
    /// No audio stream with a codec both sides run (the caller answers 488).
    #[error("no common audio codec")]
    NoCommonCodec,
    /// The chosen m-line has no `c=` at media or session level (RFC 4566 §5.7).
    #[error("SDP m= line {line} has no connection address")]
    MissingConnection {
        /// 1-based line number of the m-line.
        line: usize,
    },
    /// SRTP is required for the leg, and the peer offered or answered no key we can run
    /// (the caller answers 488).
    #[error(
        "SRTP is required, and the peer gave no a=crypto key we accept (AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM or AES_CM_128_HMAC_SHA1_32, without MKI)"
    )]
    EncryptionRequired,
    /// SRTP is off for the leg, and the peer offered encrypted media only.
    #[error("the peer offers encrypted media only (RTP/SAVP), and SRTP is off for this leg")]
    EncryptionRefused,
    /// A T.38 answer was asked for an offer without a T.38 stream that can carry fax.
    #[error("no T.38 stream (m=image udptl t38 with a port and an address)")]
    NoFaxStream,
    /// The connection address is a host name; we do not resolve names in the media path.
    #[error("SDP m= line {line}: connection address is a host name, not an IP address")]
    UnresolvedAddress {
        /// 1-based line number of the m-line.
        line: usize,
    },
}

/// An audio codec we can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 wideband.
    G722,
    /// Opus (RFC 7587).
    Opus,
}

impl Codec {
    /// Static RTP payload type (RFC 3551 table 4), `None` for dynamic codecs.
    pub const fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus => None,
        }
    }

    /// Payload type we use for this codec in our own offers.
    pub const fn offer_payload_type(self) -> u8 {
        match self.static_payload_type() {
            Some(pt) => pt,
            None => OPUS_PT,
        }
    }

    /// Encoding name as written in `a=rtpmap`.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// RTP clock rate; G.722 is 8000 although it samples at 16 kHz (RFC 3551 §4.5.2).
    pub const fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
            Codec::Opus => 48000,
        }
    }

    /// Channel count as signalled in `a=rtpmap`; Opus is always 2 there (RFC 7587 §7).
    pub const fn channels(self) -> u8 {
        match self {
            Codec::Opus => 2,
            _ => 1,
        }
    }

    /// Codec for an rtpmap entry; names compare case-insensitively (RFC 4855 §3).
    fn from_rtpmap(map: &RtpMap) -> Option<Codec> {
        let name = map.encoding.as_str();
        let mono = matches!(map.channels, None | Some(1));
        if name.eq_ignore_ascii_case("PCMU") && map.clock_rate == 8000 && mono {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") && map.clock_rate == 8000 && mono {
            Some(Codec::Pcma)
        } else if name.eq_ignore_ascii_case("G722") && map.clock_rate == 8000 && mono {
            Some(Codec::G722)
        } else if name.eq_ignore_ascii_case("opus")
            && map.clock_rate == 48000
            // RFC 7587 §7 says /2, but some stacks write /1 or nothing; the stream is the same.
            && matches!(map.channels, None | Some(1) | Some(2))
        {
            Some(Codec::Opus)
        } else {
            None
        }
    }

    /// Codec for a static payload type used without rtpmap (RFC 3551 table 4).
    const fn from_static(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            9 => Some(Codec::G722),
            _ => None,
        }
    }
}

/// Media direction of a stream (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Send and receive (the default when no attribute is given).
    SendRecv,
    /// Send only, e.g. the side putting the call on hold.
    SendOnly,
    /// Receive only, e.g. the side that was put on hold.
    RecvOnly,
    /// Neither send nor receive.
    Inactive,
}

impl Direction {
    /// The direction the other side must use (RFC 3264 §6.1: sendonly answers recvonly).
    pub const fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Whether this side sends RTP.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives RTP.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Attribute name (`sendrecv`, ...).
    pub const fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Direction for an attribute name, case-insensitively.
    fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.attribute().eq_ignore_ascii_case(name))
    }
}

/// Our side of a call: where we receive RTP and what we can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address we receive RTP on (written to `c=` and `o=`).
    pub ip: IpAddr,
    /// RTP port; RTCP is on `port + 1` unless rtcp-mux was negotiated.
    pub port: u16,
    /// Codecs we run, most preferred first; must not be empty.
    pub codecs: Vec<Codec>,
    /// `o=` session id, fixed for the call.
    pub session_id: u64,
    /// `o=` session version; the caller increments it for each new offer (RFC 3264 §8).
    pub session_version: u64,
    /// Whether media is encrypted, and our keys.
    pub srtp: LocalSrtp,
}

/// The outcome of offer/answer for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedAudio {
    /// Codec both sides use.
    pub codec: Codec,
    /// RTP payload type to send with (the peer's number for the codec).
    pub payload_type: u8,
    /// RTP clock rate of the codec.
    pub clock_rate: u32,
    /// Channels as signalled in rtpmap (Opus: 2, RFC 7587 §7).
    pub channels: u8,
    /// Packet time from `a=ptime`, [`DEFAULT_PTIME_MS`] when absent or unusable.
    pub ptime_ms: u32,
    /// RFC 4733 payload type, preferring the codec's clock rate, if the peer runs it.
    pub telephone_event_pt: Option<u8>,
    /// Clock rate of `telephone_event_pt`: the codec's, unless the peer only has another one.
    pub telephone_event_rate: u32,
    /// Where to send RTP; `None` on hold with `c=0.0.0.0`, port 0 or inactive (RFC 3264 §8.4).
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP: `a=rtcp` (RFC 3605) or RTP port + 1; `None` with rtcp-mux.
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share one port on both sides (RFC 5761).
    pub rtcp_mux: bool,
    /// The direction WE must use (mirror of the peer's).
    pub direction: Direction,
    /// The peer's `a=fmtp` for Opus (what it wants to receive), if Opus was chosen.
    pub opus_fmtp: Option<String>,
    /// Header extension id the peer sends its RFC 6464 audio level under, if it does.
    pub audio_level_ext: Option<u8>,
    /// SRTP keys when the leg's media is encrypted, `None` for plain RTP.
    pub srtp: Option<NegotiatedSrtp>,
}

impl NegotiatedAudio {
    /// The peer prefers to receive Opus with discontinuous transmission (RFC 7587 §6.1
    /// `usedtx=1`): silence may go out as a packet now and then instead of every frame.
    pub fn peer_prefers_dtx(&self) -> bool {
        self.opus_fmtp
            .as_deref()
            .is_some_and(|fmtp| fmtp_parameter(fmtp, "usedtx") == Some("1"))
    }
}

/// The value of `name` in `a=fmtp` parameters written as `key=value;key=value` (RFC 7587
/// §6.1; names are case-insensitive, blanks around separators are tolerated).
fn fmtp_parameter<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A parsed SDP body (RFC 4566), reduced to what offer/answer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` line.
    pub origin: Origin,
    /// Session-level `c=` address.
    pub connection: Option<ConnectionAddress>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// Session-level `a=ptime` (not in RFC 4566, but phones send it).
    pub ptime_ms: Option<u32>,
    /// The m-lines, in order.
    pub media: Vec<MediaDescription>,
}

/// The `o=` line (RFC 4566 §5.2); ids kept as text because some stacks exceed 64 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username, `-` when none.
    pub username: String,
    /// Session id.
    pub session_id: String,
    /// Session version; unchanged in a re-offer means unchanged SDP (RFC 3264 §8).
    pub session_version: String,
    /// Unicast address of the originator.
    pub address: String,
}

/// Address of a `c=` line or `a=rtcp` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionAddress {
    /// An IPv4 or IPv6 literal (multicast TTL/count stripped).
    Ip(IpAddr),
    /// A host name (RFC 4566 §5.7 allows it; we cannot use it without DNS).
    Host(String),
}

/// One m-line and its attributes (RFC 4566 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// 1-based line number of the `m=` line, for error messages.
    pub line: usize,
    /// Media type: `audio`, `video`, `image`, ...
    pub media: String,
    /// Transport port; 0 means the stream is disabled (RFC 3264 §5.1).
    pub port: u16,
    /// Transport protocol: `RTP/AVP`, `RTP/SAVP`, `udptl`, ...
    pub proto: String,
    /// Format list as written; RTP payload type numbers for RTP protocols.
    pub formats: Vec<String>,
    /// Media-level `c=` address (overrides the session one).
    pub connection: Option<ConnectionAddress>,
    /// Media-level direction (overrides the session one).
    pub direction: Option<Direction>,
    /// `a=rtpmap` entries; the first one per payload type wins.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` entries; the first one per payload type wins.
    pub fmtps: Vec<Fmtp>,
    /// `a=ptime` in milliseconds (fractions dropped).
    pub ptime_ms: Option<u32>,
    /// `a=rtcp` (RFC 3605).
    pub rtcp: Option<RtcpAttribute>,
    /// `a=rtcp-mux` (RFC 5761).
    pub rtcp_mux: bool,
    /// `a=extmap` header extension mappings (RFC 8285 §5), in order; invalid ones dropped.
    pub extmaps: Vec<ExtMap>,
    /// `a=crypto` values (RFC 4568 §9.1) as written, in order, at most [`MAX_CRYPTO_LINES`].
    pub crypto: Vec<String>,
    /// `a=T38…` attributes of a fax stream as written, without `a=`, in order, at most
    /// [`MAX_FAX_ATTRIBUTES`]: passed on to the other leg, never read by us.
    pub fax_attributes: Vec<String>,
}

/// An `a=extmap` attribute (RFC 8285 §5): a local id for an RTP header extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtMap {
    /// Extension id: 1-14 fit the one-byte form, up to 255 need the two-byte form.
    pub id: u8,
    /// Direction from the point of view of the side that wrote the SDP; `None` if absent.
    pub direction: Option<Direction>,
    /// Extension name, a URI.
    pub uri: String,
    /// Extension attributes after the URI (e.g. `vad=on`), as written.
    pub attributes: Option<String>,
}

/// An `a=rtpmap` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written.
    pub encoding: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// Encoding parameters (channels for audio), if given.
    pub channels: Option<u8>,
}

/// An `a=fmtp` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// Payload type.
    pub payload_type: u8,
    /// Format parameters as written.
    pub params: String,
}

/// An `a=rtcp` attribute (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpAttribute {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when it differs from the `c=` one.
    pub address: Option<ConnectionAddress>,
}

impl MediaDescription {
    /// The rtpmap for a payload type, if any.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// The fmtp parameters for a payload type, if any.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|f| f.payload_type == pt)
            .map(|f| f.params.as_str())
    }

    /// Payload types of the format list, in order; non-numeric entries skipped.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| parse::parse_payload_type(f))
    }

    /// Codec behind a payload type: the rtpmap if present, else the static table.
    pub fn codec_for(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap(pt) {
            Some(map) => Codec::from_rtpmap(map),
            None => Codec::from_static(pt),
        }
    }

    /// Id of the RFC 6464 audio level extension if the writer of this m-line sends it
    /// (RFC 8285 §5: no direction means the stream's, so sendrecv and sendonly both do).
    pub fn audio_level_ext(&self) -> Option<u8> {
        self.extmaps
            .iter()
            .find(|e| e.uri.eq_ignore_ascii_case(AUDIO_LEVEL_URI))
            .filter(|e| e.direction.is_none_or(Direction::sends))
            .map(|e| e.id)
    }

    /// Whether this is an RTP audio stream we could run (port not 0; RTP/AVPF is AVP plus
    /// feedback we may ignore, and the S profiles are the same with SRTP).
    fn is_usable_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
            && self.port != 0
            && (self.proto.eq_ignore_ascii_case("RTP/AVP")
                || self.proto.eq_ignore_ascii_case("RTP/AVPF")
                || keys::is_secure_profile(&self.proto))
    }

    /// The keys this offered m-line's media would run with under `local`'s policy: `Ok(None)`
    /// for plain RTP, `Err` when the policy forbids what is offered.
    fn security(&self, local: &LocalSrtp) -> Result<Option<NegotiatedSrtp>, SdpError> {
        let secure = keys::is_secure_profile(&self.proto);
        match local.policy {
            SrtpPolicy::Off if secure => Err(SdpError::EncryptionRefused),
            // A plain m-line with a=crypto ("best effort" SDES, as Asterisk and desk phones
            // set to "optional" send it) is answered as plain RTP when SRTP is off.
            SrtpPolicy::Off => Ok(None),
            SrtpPolicy::Optional if secure => keys::answer_keys(self, local)
                .map(Some)
                .ok_or(SdpError::EncryptionRequired),
            SrtpPolicy::Optional => Ok(keys::answer_keys(self, local)),
            SrtpPolicy::Required => keys::answer_keys(self, local)
                .map(Some)
                .ok_or(SdpError::EncryptionRequired),
        }
    }

    /// First payload type (in this m-line's order) whose codec is in `allowed`.
    fn first_common(&self, allowed: &[Codec]) -> Option<(Codec, u8)> {
        self.payload_types().find_map(|pt| {
            self.codec_for(pt)
                .filter(|c| allowed.contains(c))
                .map(|c| (c, pt))
        })
    }

    /// `telephone-event` payload type and rate, at `clock_rate` if offered (RFC 4733 §2.1
    /// recommends the audio's rate), else at any rate: baresip 1.0 answers Opus with only
    /// `telephone-event/8000`, and without it a caller could not key in a PIN.
    fn telephone_event(&self, clock_rate: u32) -> Option<(u8, u32)> {
        let events = || {
            self.payload_types().filter_map(|pt| {
                self.rtpmap(pt)
                    .filter(|m| m.encoding.eq_ignore_ascii_case("telephone-event"))
                    .map(|m| (pt, m.clock_rate))
            })
        };
        events()
            .find(|(_, rate)| *rate == clock_rate)
            .or_else(|| events().next())
    }
}

/// Answer to a remote offer (RFC 3264 §6): the first audio stream we can run takes the first
/// codec in the offerer's order that we support, with the offerer's payload type; every
/// other m-line is refused with port 0.
///
/// With SRTP the stream must also satisfy `local.srtp`: an m-line whose security the policy
/// forbids is passed over, and when that leaves none the error says why (both are 488).
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<(String, NegotiatedAudio), SdpError> {
    let mut refusal = SdpError::NoCommonCodec;
    let chosen = offer.media.iter().enumerate().find_map(|(i, m)| {
        if !m.is_usable_audio() {
            return None;
        }
        let common = m.first_common(&local.codecs)?;
        match m.security(&local.srtp) {
            Ok(srtp) => Some((i, common, srtp)),
            Err(err) => {
                refusal = err;
                None
            }
        }
    });
    let Some((index, (codec, pt), srtp)) = chosen else {
        return Err(refusal);
    };
    let Some(media) = offer.media.get(index) else {
        return Err(SdpError::NoCommonCodec);
    };
    let mut negotiated = negotiate(offer, media, codec, pt, media.rtcp_mux)?;
    negotiated.srtp = srtp;

    let mut sdp = String::with_capacity(512);
    write_session_header(&mut sdp, local);
    for (i, m) in offer.media.iter().enumerate() {
        if i == index {
            write_chosen_audio(&mut sdp, local, &m.proto, &negotiated);
        } else {
            // RFC 3264 §6: refused streams keep their place, port 0, formats echoed.
            let _ = write!(sdp, "m={} 0 {}", m.media, m.proto);
            for f in &m.formats {
                let _ = write!(sdp, " {f}");
            }
            sdp.push_str("\r\n");
        }
    }
    Ok((sdp, negotiated))
}

/// Our offer for an outgoing call or re-INVITE: all our codecs in preference order plus
/// `telephone-event/8000` (and `/48000` when Opus is offered, RFC 4733 §2.1). An empty
/// `local.codecs` yields an offer with events only, which answerers refuse.
///
/// With SRTP required the profile is RTP/SAVP (RFC 3711 §12); with SRTP optional it stays
/// RTP/AVP and carries our keys anyway, so a phone that can encrypt does and one that cannot
/// ignores the unknown attribute (RFC 4566 §5.13) and answers plain.
pub fn offer(local: &LocalMedia, direction: Direction) -> String {
    let codecs = dedup(&local.codecs);
    let has_opus = codecs.contains(&Codec::Opus);
    let mut sdp = String::with_capacity(512);
    write_session_header(&mut sdp, local);
    let profile = match local.srtp.policy {
        SrtpPolicy::Required => "RTP/SAVP",
        SrtpPolicy::Off | SrtpPolicy::Optional => "RTP/AVP",
    };
    let _ = write!(sdp, "m=audio {} {profile}", local.port);
    for c in &codecs {
        let _ = write!(sdp, " {}", c.offer_payload_type());
    }
    let _ = write!(sdp, " {TELEPHONE_EVENT_PT}");
    if has_opus {
        let _ = write!(sdp, " {TELEPHONE_EVENT_48K_PT}");
    }
    sdp.push_str("\r\n");
    for c in &codecs {
        write_rtpmap(&mut sdp, *c, c.offer_payload_type());
    }
    write_telephone_event(&mut sdp, TELEPHONE_EVENT_PT, 8000);
    if has_opus {
        write_telephone_event(&mut sdp, TELEPHONE_EVENT_48K_PT, 48000);
    }
    for key in local.srtp.offered() {
        let _ = write!(sdp, "a=crypto:{}\r\n", key.to_sdp_value());
    }
    let _ = write!(
        sdp,
        "a=ptime:{DEFAULT_PTIME_MS}\r\na={}\r\n",
        direction.attribute()
    );
    sdp
}

/// Reads the answer to our [`offer`]: the first codec in the answer's audio m-line that we
/// offered. Our offers carry no `a=rtcp-mux`, so one in the answer is ignored (RFC 5761
/// §5.1.1 lets the answerer use it only when offered). The answer's `a=crypto` must name one
/// of ours (same tag and suite) for the media to be encrypted; `our_srtp` says whether plain
/// media is acceptable.
pub fn accept_answer(
    our_offer_codecs: &[Codec],
    our_srtp: &LocalSrtp,
    answer: &SessionDescription,
) -> Result<NegotiatedAudio, SdpError> {
    // We offer one m-line; its answer is the first audio one (RFC 3264 §6: same order).
    let media = answer
        .media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("audio"))
        .ok_or(SdpError::NoCommonCodec)?;
    if !media.is_usable_audio() {
        return Err(SdpError::NoCommonCodec);
    }
    let (codec, pt) = media
        .first_common(our_offer_codecs)
        .ok_or(SdpError::NoCommonCodec)?;
    let srtp = match our_srtp.policy {
        SrtpPolicy::Off => None,
        SrtpPolicy::Optional | SrtpPolicy::Required => keys::accepted_keys(media, our_srtp),
    };
    let needs_keys =
        our_srtp.policy == SrtpPolicy::Required || keys::is_secure_profile(&media.proto);
    if srtp.is_none() && needs_keys {
        return Err(SdpError::EncryptionRequired);
    }
    let mut negotiated = negotiate(answer, media, codec, pt, false)?;
    negotiated.srtp = srtp;
    Ok(negotiated)
}

/// Builds the negotiated stream for the peer's m-line `media` and the chosen codec.
fn negotiate(
    sd: &SessionDescription,
    media: &MediaDescription,
    codec: Codec,
    pt: u8,
    rtcp_mux: bool,
) -> Result<NegotiatedAudio, SdpError> {
    let ip = match media.connection.as_ref().or(sd.connection.as_ref()) {
        None => return Err(SdpError::MissingConnection { line: media.line }),
        Some(ConnectionAddress::Host(_)) => {
            return Err(SdpError::UnresolvedAddress { line: media.line });
        }
        Some(ConnectionAddress::Ip(ip)) => *ip,
    };
    let mut remote_direction = media
        .direction
        .or(sd.direction)
        .unwrap_or(Direction::SendRecv);
    if ip.is_unspecified() {
        // RFC 3264 §8.4 / RFC 2543 hold: the peer cannot receive at 0.0.0.0.
        remote_direction = match remote_direction {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        };
    }
    let direction = remote_direction.reversed();
    let remote_rtp = (media.port != 0 && !ip.is_unspecified() && direction != Direction::Inactive)
        .then(|| SocketAddr::new(ip, media.port));
    let remote_rtcp = match (remote_rtp, rtcp_mux, &media.rtcp) {
        (None, _, _) | (_, true, _) => None,
        (Some(rtp), false, Some(rtcp)) => {
            let rtcp_ip = match &rtcp.address {
                Some(ConnectionAddress::Ip(a)) if !a.is_unspecified() => *a,
                _ => rtp.ip(),
            };
            (rtcp.port != 0).then(|| SocketAddr::new(rtcp_ip, rtcp.port))
        }
        // RFC 3550 §11: RTCP on the next port when nothing else is said.
        (Some(rtp), false, None) => rtp
            .port()
            .checked_add(1)
            .map(|p| SocketAddr::new(rtp.ip(), p)),
    };
    let telephone_event = media.telephone_event(codec.clock_rate());
    let channels = media
        .rtpmap(pt)
        .and_then(|m| m.channels)
        .unwrap_or(codec.channels());
    Ok(NegotiatedAudio {
        codec,
        payload_type: pt,
        clock_rate: codec.clock_rate(),
        channels,
        ptime_ms: usable_ptime(codec, media.ptime_ms.or(sd.ptime_ms)),
        telephone_event_pt: telephone_event.map(|(pt, _)| pt),
        telephone_event_rate: telephone_event.map_or(codec.clock_rate(), |(_, rate)| rate),
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        direction,
        opus_fmtp: (codec == Codec::Opus)
            .then(|| media.fmtp(pt).map(str::to_owned))
            .flatten(),
        audio_level_ext: media.audio_level_ext(),
        srtp: None,
    })
}

/// The peer's ptime if our media loop can packetise it, else the default. Our loop works in
/// 10 ms steps; Opus frames are 10, 20, 40 or 60 ms (RFC 6716 §2.1.4).
fn usable_ptime(codec: Codec, ptime: Option<u32>) -> u32 {
    match ptime {
        Some(p) if codec == Codec::Opus && matches!(p, 10 | 20 | 40 | 60) => p,
        Some(p) if codec != Codec::Opus && p.is_multiple_of(10) && (10..=120).contains(&p) => p,
        _ => DEFAULT_PTIME_MS,
    }
}

/// Codecs without repeats, order kept (a repeat would repeat a payload type).
fn dedup(codecs: &[Codec]) -> Vec<Codec> {
    let mut out = Vec::with_capacity(codecs.len());
    for c in codecs {
        if !out.contains(c) {
            out.push(*c);
        }
    }
    out
}

/// `v=`, `o=`, `s=`, `c=`, `t=` for our side.
fn write_session_header(sdp: &mut String, local: &LocalMedia) {
    write_origin_and_connection(sdp, local.ip, local.session_id, local.session_version);
}

/// `v=`, `o=`, `s=`, `c=`, `t=` for a description of ours at `ip`.
fn write_origin_and_connection(sdp: &mut String, ip: IpAddr, session_id: u64, version: u64) {
    let family = match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let _ = write!(
        sdp,
        "v=0\r\no=- {session_id} {version} IN {family} {ip}\r\ns=amtsleitung\r\nc=IN {family} {ip}\r\nt=0 0\r\n",
    );
}

/// The accepted audio m-line of an answer and its attributes.
fn write_chosen_audio(sdp: &mut String, local: &LocalMedia, proto: &str, n: &NegotiatedAudio) {
    let _ = write!(sdp, "m=audio {} {proto} {}", local.port, n.payload_type);
    if let Some(te) = n.telephone_event_pt {
        let _ = write!(sdp, " {te}");
    }
    sdp.push_str("\r\n");
    write_rtpmap(sdp, n.codec, n.payload_type);
    if let Some(te) = n.telephone_event_pt {
        write_telephone_event(sdp, te, n.telephone_event_rate);
    }
    if let Some(srtp) = &n.srtp {
        let _ = write!(sdp, "a=crypto:{}\r\n", srtp.local.to_sdp_value());
    }
    let _ = write!(sdp, "a=ptime:{}\r\n", n.ptime_ms);
    if n.rtcp_mux {
        sdp.push_str("a=rtcp-mux\r\n");
    }
    if let Some(id) = n.audio_level_ext {
        // RFC 8285 §6: the answer reuses the offerer's id; we only receive the level.
        let _ = write!(sdp, "a=extmap:{id}/recvonly {AUDIO_LEVEL_URI}\r\n");
    }
    let _ = write!(sdp, "a={}\r\n", n.direction.attribute());
}

/// `a=rtpmap` (and our Opus `a=fmtp`) for one codec.
fn write_rtpmap(sdp: &mut String, codec: Codec, pt: u8) {
    let _ = write!(
        sdp,
        "a=rtpmap:{pt} {}/{}",
        codec.encoding_name(),
        codec.clock_rate()
    );
    if codec == Codec::Opus {
        // RFC 7587 §7: Opus is always /2 in rtpmap; FEC costs us nothing to receive. We
        // decode to and encode from 16 kHz (see `opus`), so a far end that honours
        // maxplaybackrate (§6.1) need not spend bits or CPU above wideband.
        let _ = write!(
            sdp,
            "/2\r\na=fmtp:{pt} maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1"
        );
    }
    sdp.push_str("\r\n");
}

/// `a=rtpmap` and `a=fmtp` for RFC 4733 events 0-16 (digits, *, #, A-D, flash).
fn write_telephone_event(sdp: &mut String, pt: u8, clock_rate: u32) {
    let _ = write!(
        sdp,
        "a=rtpmap:{pt} telephone-event/{clock_rate}\r\na=fmtp:{pt} 0-16\r\n"
    );
}
