//! T.38 fax streams (`m=image PORT udptl t38`, ITU-T T.38 Annex D, RFC 3362): the stream a
//! fax machine's re-INVITE offers to switch a call from G.711 to T.38, and the offer and
//! answer a back-to-back user agent passes on with its own address.
//!
//! We do not speak T.38 ourselves: the `a=T38…` attributes (version, bit rate, error
//! correction, datagram sizes) are the two fax machines' negotiation, carried from one leg's
//! description to the other's unchanged, while the address and port are always ours, so the
//! UDPTL datagrams pass through the server as RTP does.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::{ConnectionAddress, Direction, SdpError, SessionDescription};

/// Most `a=T38…` attributes kept per stream: T.38 Annex D defines fourteen, vendors add one
/// or two; more is not a fax machine.
pub const MAX_FAX_ATTRIBUTES: usize = 24;

/// A T.38 stream of a session description that can carry fax: `udptl` transport, port not 0,
/// an IP address to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStream {
    /// Position of its m-line in the description (0-based).
    pub index: usize,
    /// Where the writer of the description takes UDPTL datagrams.
    pub remote: SocketAddr,
    /// Its `a=T38…` attributes as written, without `a=` (`T38FaxVersion:0`), in order.
    pub attributes: Vec<String>,
    /// Its direction attribute, if it has one (media-level, else session-level).
    pub direction: Option<Direction>,
}

/// Our side of a T.38 stream: where we take UDPTL, and the `o=` line of the leg's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalImage {
    /// Address we receive UDPTL on (written to `c=` and `o=`).
    pub ip: IpAddr,
    /// UDPTL port.
    pub port: u16,
    /// `o=` session id of the leg, fixed for the call.
    pub session_id: u64,
    /// `o=` session version, one more than the leg's last description (RFC 3264 §8).
    pub session_version: u64,
}

impl SessionDescription {
    /// The first T.38 stream that can carry fax: what makes a re-INVITE a switch to fax, or
    /// an answer an acceptance of it. A stream with port 0 is refused (RFC 3264 §6) and one
    /// at `0.0.0.0` or a host name cannot be sent to.
    pub fn t38_stream(&self) -> Option<ImageStream> {
        self.media.iter().enumerate().find_map(|(index, m)| {
            let is_t38 = m.media.eq_ignore_ascii_case("image")
                && m.proto.eq_ignore_ascii_case("udptl")
                && m.formats.iter().any(|f| f.eq_ignore_ascii_case("t38"));
            if !is_t38 || m.port == 0 {
                return None;
            }
            let ip = match m.connection.as_ref().or(self.connection.as_ref())? {
                ConnectionAddress::Ip(ip) if !ip.is_unspecified() => *ip,
                _ => return None,
            };
            Some(ImageStream {
                index,
                remote: SocketAddr::new(ip, m.port),
                attributes: m.fax_attributes.clone(),
                direction: m.direction.or(self.direction),
            })
        })
    }
}

/// Our offer of T.38 to the other leg of a call, passing on `offered` (the first leg's
/// stream): one `m=image` line on our port with its attributes, as fax gateways send it to
/// switch a call (RFC 3264 §8.3.3 lets a re-offer change what a stream carries).
pub fn t38_offer(local: &LocalImage, offered: &ImageStream) -> String {
    let mut sdp = String::with_capacity(384);
    write_header(&mut sdp, local);
    write_image(&mut sdp, local.port, offered);
    sdp
}

/// Our answer to `offer` (a re-INVITE switching to T.38) once the other leg accepted:
/// its stream on our port with `accepted`'s attributes (the other fax machine's choices);
/// every other m-line refused with port 0 in its place (RFC 3264 §6), audio included, since
/// the call carries fax now.
pub fn t38_answer(
    offer: &SessionDescription,
    local: &LocalImage,
    accepted: &ImageStream,
) -> Result<String, SdpError> {
    let chosen = offer.t38_stream().ok_or(SdpError::NoFaxStream)?;
    let mut sdp = String::with_capacity(384);
    write_header(&mut sdp, local);
    for (i, m) in offer.media.iter().enumerate() {
        if i == chosen.index {
            write_image(&mut sdp, local.port, accepted);
        } else {
            let _ = write!(sdp, "m={} 0 {}", m.media, m.proto);
            for f in &m.formats {
                let _ = write!(sdp, " {f}");
            }
            sdp.push_str("\r\n");
        }
    }
    Ok(sdp)
}

fn write_header(sdp: &mut String, local: &LocalImage) {
    super::write_origin_and_connection(sdp, local.ip, local.session_id, local.session_version);
}

fn write_image(sdp: &mut String, port: u16, stream: &ImageStream) {
    let _ = write!(sdp, "m=image {port} udptl t38\r\n");
    for attribute in &stream.attributes {
        let _ = write!(sdp, "a={attribute}\r\n");
    }
    if let Some(direction) = stream.direction {
        let _ = write!(sdp, "a={}\r\n", direction.attribute());
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::sdp::parse;

    /// A Grandstream-style fax ATA's re-INVITE: audio switched off, T.38 on.
    const ATA_T38_REINVITE: &str = "v=0\r\n\
o=- 8000 8001 IN IP4 10.0.0.70\r\n\
s=-\r\n\
c=IN IP4 10.0.0.70\r\n\
t=0 0\r\n\
m=audio 0 RTP/AVP 8 0\r\n\
m=image 4002 udptl t38\r\n\
a=T38FaxVersion:0\r\n\
a=T38MaxBitRate:14400\r\n\
a=T38FaxRateManagement:transferredTCF\r\n\
a=T38FaxMaxBuffer:2000\r\n\
a=T38FaxMaxDatagram:400\r\n\
a=T38FaxUdpEC:t38UDPRedundancy\r\n\
a=T38FaxFillBitRemoval\r\n";

    /// The other fax machine's 200 OK to our passed-on offer: only 9600 bit/s, FEC.
    const CALLEE_T38_ANSWER: &str = "v=0\r\n\
o=- 1 2 IN IP4 10.0.0.80\r\n\
s=-\r\n\
c=IN IP4 10.0.0.80\r\n\
t=0 0\r\n\
m=image 5004 udptl t38\r\n\
a=T38FaxVersion:0\r\n\
a=T38MaxBitRate:9600\r\n\
a=T38FaxRateManagement:transferredTCF\r\n\
a=T38FaxUdpEC:t38UDPFEC\r\n";

    fn ours(port: u16, version: u64) -> LocalImage {
        LocalImage {
            ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
            port,
            session_id: 4242,
            session_version: version,
        }
    }

    fn m_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.starts_with("m=")).collect()
    }

    #[test]
    fn a_fax_reinvite_offers_its_t38_stream_with_its_attributes_in_order() {
        let offer = parse(ATA_T38_REINVITE).unwrap();
        let stream = offer.t38_stream().unwrap();
        assert_eq!(
            stream.index, 1,
            "the audio m-line before it keeps its place"
        );
        assert_eq!(stream.remote, "10.0.0.70:4002".parse().unwrap());
        assert_eq!(
            stream.attributes,
            [
                "T38FaxVersion:0",
                "T38MaxBitRate:14400",
                "T38FaxRateManagement:transferredTCF",
                "T38FaxMaxBuffer:2000",
                "T38FaxMaxDatagram:400",
                "T38FaxUdpEC:t38UDPRedundancy",
                "T38FaxFillBitRemoval",
            ]
        );
        assert_eq!(stream.direction, None);
    }

    #[test]
    fn refused_unreachable_or_audio_only_descriptions_have_no_t38_stream() {
        for text in [
            ATA_T38_REINVITE.replace("m=image 4002", "m=image 0"),
            ATA_T38_REINVITE.replace("c=IN IP4 10.0.0.70", "c=IN IP4 0.0.0.0"),
            ATA_T38_REINVITE.replace("c=IN IP4 10.0.0.70", "c=IN IP4 fax.example"),
            ATA_T38_REINVITE.replace("udptl t38", "RTP/AVP 0"),
            "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\nc=IN IP4 10.0.0.9\r\nm=audio 4000 RTP/AVP 8\r\n"
                .to_owned(),
        ] {
            assert_eq!(parse(&text).unwrap().t38_stream(), None, "{text}");
        }
    }

    #[test]
    fn the_offer_passed_on_carries_the_fax_attributes_with_our_address_and_port() {
        let stream = parse(ATA_T38_REINVITE).unwrap().t38_stream().unwrap();
        let text = t38_offer(&ours(31000, 3), &stream);
        assert!(
            text.starts_with(
                "v=0\r\no=- 4242 3 IN IP4 203.0.113.5\r\ns=amtsleitung\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"
            ),
            "{text}"
        );
        assert_eq!(m_lines(&text), ["m=image 31000 udptl t38"]);
        assert!(
            !text.contains("10.0.0.70"),
            "the caller's address stays hidden:\n{text}"
        );
        let passed = parse(&text).unwrap().t38_stream().unwrap();
        assert_eq!(passed.remote, "203.0.113.5:31000".parse().unwrap());
        assert_eq!(passed.attributes, stream.attributes);
    }

    #[test]
    fn the_answer_keeps_the_offers_m_lines_and_carries_the_other_machines_choices() {
        let offer = parse(ATA_T38_REINVITE).unwrap();
        let accepted = parse(CALLEE_T38_ANSWER).unwrap().t38_stream().unwrap();
        let text = t38_answer(&offer, &ours(30002, 5), &accepted).unwrap();
        assert_eq!(
            m_lines(&text),
            ["m=audio 0 RTP/AVP 8 0", "m=image 30002 udptl t38"]
        );
        assert!(text.contains("o=- 4242 5 IN IP4 203.0.113.5\r\n"), "{text}");
        assert!(
            !text.contains("10.0.0.80"),
            "the callee's address stays hidden"
        );
        let answer = parse(&text).unwrap().t38_stream().unwrap();
        assert_eq!(answer.remote, "203.0.113.5:30002".parse().unwrap());
        assert_eq!(
            answer.attributes,
            [
                "T38FaxVersion:0",
                "T38MaxBitRate:9600",
                "T38FaxRateManagement:transferredTCF",
                "T38FaxUdpEC:t38UDPFEC",
            ]
        );
    }

    #[test]
    fn an_audio_and_t38_offer_is_answered_with_t38_only_and_directions_carried() {
        let offer = parse(
            "v=0\r\no=- 1 2 IN IP4 10.0.0.70\r\nc=IN IP4 10.0.0.70\r\n\
             m=audio 4000 RTP/AVP 8\r\nm=image 4002 udptl t38\r\na=T38FaxVersion:0\r\na=sendonly\r\n",
        )
        .unwrap();
        let stream = offer.t38_stream().unwrap();
        assert_eq!(stream.direction, Some(Direction::SendOnly));
        let text = t38_answer(&offer, &ours(30002, 2), &stream).unwrap();
        assert_eq!(
            m_lines(&text),
            ["m=audio 0 RTP/AVP 8", "m=image 30002 udptl t38"]
        );
        assert!(
            text.ends_with("a=T38FaxVersion:0\r\na=sendonly\r\n"),
            "{text}"
        );
    }

    #[test]
    fn no_answer_without_a_t38_stream_to_answer() {
        let audio = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\nc=IN IP4 10.0.0.9\r\nm=audio 4000 RTP/AVP 8\r\n",
        )
        .unwrap();
        let accepted = parse(CALLEE_T38_ANSWER).unwrap().t38_stream().unwrap();
        assert_eq!(
            t38_answer(&audio, &ours(30002, 2), &accepted),
            Err(SdpError::NoFaxStream)
        );
    }

    #[test]
    fn fax_attributes_are_bounded_and_only_printable_ones_are_kept() {
        let mut text = String::from(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\nc=IN IP4 10.0.0.9\r\nm=image 4002 udptl t38\r\n",
        );
        text.push_str("a=T38VendorInfo:0 0 \u{7f}\r\n");
        for i in 0..100 {
            text.push_str(&format!("a=T38FaxMaxBuffer:{i}\r\n"));
        }
        text.push_str("a=rtcp-mux\r\n");
        let stream = parse(&text).unwrap().t38_stream().unwrap();
        assert_eq!(stream.attributes.len(), MAX_FAX_ATTRIBUTES);
        assert_eq!(stream.attributes[0], "T38FaxMaxBuffer:0");
    }
}
