//! Hand-written SIP text for a minimal UAC (INVITE/ACK/BYE over UDP), the responses of the
//! callee side (`uas`), and the few fields both read back. Only what the load generator
//! needs; not a general SIP parser.

use std::net::{IpAddr, SocketAddr};

use media::codec::CodecKind;

/// The parts of one received SIP message the UAC acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMsg<'a> {
    /// Status code of a response; `None` for a request.
    pub status: Option<u16>,
    /// Request method of a request (`None` for a response).
    pub method: Option<&'a str>,
    /// Request-URI of a request (`None` for a response).
    pub request_uri: Option<&'a str>,
    /// `branch` parameter of the topmost Via (RFC 3261 §8.1.1.7), if any.
    pub branch: Option<&'a str>,
    /// Call-ID header value.
    pub call_id: &'a str,
    /// Method named in the CSeq header.
    pub cseq_method: &'a str,
    /// Tag parameter of the To header, if any (RFC 3261 §19.3).
    pub to_tag: Option<&'a str>,
    /// URI inside the Contact header, if any.
    pub contact: Option<&'a str>,
    /// Message body (after the blank line).
    pub body: &'a str,
    /// Header section, verbatim, for echoing Via/From/To/CSeq in responses to requests.
    pub headers: &'a str,
}

/// Splits the header section into (name, value) pairs, expanding compact forms
/// (RFC 3261 §7.3.3) for the headers we read.
fn header_pairs(head: &str) -> impl Iterator<Item = (&str, &str)> {
    head.split("\r\n").skip(1).filter_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        let name = match name {
            "i" => "Call-ID",
            "t" => "To",
            "m" => "Contact",
            "v" => "Via",
            "f" => "From",
            other => other,
        };
        Some((name, value.trim()))
    })
}

/// Parses a UDP datagram as a SIP message; `None` if it lacks what a dialog needs.
pub fn parse(text: &str) -> Option<SipMsg<'_>> {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let first = head.lines().next()?;
    let (status, method, request_uri) = if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
        (Some(rest.get(..3)?.parse().ok()?), None, None)
    } else {
        let mut f = first.split_whitespace();
        (None, Some(f.next()?), f.next())
    };
    let mut call_id = None;
    let mut branch = None;
    let mut top_via = true;
    let mut cseq_method = None;
    let mut to_tag = None;
    let mut contact = None;
    for (name, value) in header_pairs(head) {
        if name.eq_ignore_ascii_case("Call-ID") {
            call_id = Some(value);
        } else if name.eq_ignore_ascii_case("CSeq") {
            cseq_method = value.split_whitespace().nth(1);
        } else if name.eq_ignore_ascii_case("To") {
            to_tag = value
                .split(';')
                .skip(1)
                .filter_map(|p| p.trim().strip_prefix("tag="))
                .next();
        } else if name.eq_ignore_ascii_case("Via") && top_via {
            // The topmost Via is the first value of the first Via header (RFC 3261 §7.3.1).
            top_via = false;
            branch = value.split(',').next().and_then(|via| {
                via.split(';')
                    .skip(1)
                    .find_map(|p| p.trim().strip_prefix("branch="))
            });
        } else if name.eq_ignore_ascii_case("Contact") {
            contact = value
                .split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map(|(uri, _)| uri);
        }
    }
    Some(SipMsg {
        status,
        method,
        request_uri,
        branch,
        call_id: call_id?,
        cseq_method: cseq_method?,
        to_tag,
        contact,
        body,
        headers: head,
    })
}

/// The server's media address from an SDP answer: `c=` (session or media level) and the
/// first `m=audio` port (RFC 4566 §5.7, §5.14). `None` if the port is 0 (rejected stream).
pub fn sdp_audio_addr(sdp: &str) -> Option<SocketAddr> {
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    for line in sdp.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix("c=") {
            let ip = c.split_whitespace().nth(2)?.split('/').next()?.parse().ok();
            if port.is_some() {
                media_ip = media_ip.or(ip);
            } else {
                session_ip = ip;
            }
        } else if let Some(m) = line.strip_prefix("m=") {
            if port.is_some() {
                break;
            }
            let mut f = m.split_whitespace();
            if f.next() == Some("audio") {
                port = f.next()?.parse().ok();
            }
        }
    }
    let port = port.filter(|&p| p != 0)?;
    Some(SocketAddr::new(media_ip.or(session_ip)?, port))
}

/// RTP payload type we offer for a codec (RFC 3551 static types; dynamic 96 for Opus).
pub fn offer_pt(codec: CodecKind) -> u8 {
    codec.static_payload_type().unwrap_or(media::sdp::OPUS_PT)
}

/// RTP header extension id we map the RFC 6464 audio level to.
pub const AUDIO_LEVEL_EXT_ID: u8 = 1;

/// SDP offer with only `codec`, receiving at `rtp`; with `audio_level`, it maps the RFC 6464
/// client-to-mixer audio level extension (RFC 8285 `a=extmap`) as browsers do; with `dtx`,
/// an Opus offer asks for discontinuous transmission (RFC 7587 `usedtx=1`).
pub fn sdp_offer(
    rtp: SocketAddr,
    codec: CodecKind,
    session_id: u64,
    audio_level: bool,
    dtx: bool,
) -> String {
    let pt = offer_pt(codec);
    let rtpmap = match codec {
        CodecKind::Opus if dtx => format!("a=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} usedtx=1\r\n"),
        CodecKind::Opus => format!("a=rtpmap:{pt} opus/48000/2\r\n"),
        other => format!("a=rtpmap:{pt} {}/{}\r\n", other.name(), other.clock_rate()),
    };
    let extmap = if audio_level {
        format!("a=extmap:{AUDIO_LEVEL_EXT_ID} urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n")
    } else {
        String::new()
    };
    format!(
        "v=0\r\no=loadgen {session_id} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}\r\n{rtpmap}{extmap}a=ptime:20\r\na=sendrecv\r\n",
        ip = rtp.ip(),
        port = rtp.port(),
    )
}

/// Identity of one call leg as the UAC sees it.
#[derive(Debug, Clone)]
pub struct Leg {
    /// Call-ID.
    pub call_id: String,
    /// Our From tag.
    pub from_tag: String,
    /// The number dialled (`8NNNN`).
    pub number: String,
    /// Our SIP socket address.
    pub local: SocketAddr,
    /// Server SIP address.
    pub server: SocketAddr,
}

impl Leg {
    fn via(&self, branch: &str) -> String {
        format!(
            "Via: SIP/2.0/UDP {};branch=z9hG4bK{branch};rport\r\n",
            self.local
        )
    }

    fn from(&self) -> String {
        format!(
            "From: <sip:loadgen@{}>;tag={}\r\n",
            self.local.ip(),
            self.from_tag
        )
    }

    fn to(&self, to_tag: Option<&str>) -> String {
        match to_tag {
            Some(t) => format!("To: <sip:{}@{}>;tag={t}\r\n", self.number, self.server),
            None => format!("To: <sip:{}@{}>\r\n", self.number, self.server),
        }
    }

    fn default_uri(&self) -> String {
        format!("sip:{}@{}", self.number, self.server)
    }

    /// The INVITE with an SDP offer.
    pub fn invite(&self, sdp: &str) -> String {
        format!(
            "INVITE {uri} SIP/2.0\r\n{via}Max-Forwards: 70\r\n{from}{to}Call-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:loadgen@{local}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            uri = self.default_uri(),
            via = self.via(&format!("{}i", self.call_id)),
            from = self.from(),
            to = self.to(None),
            cid = self.call_id,
            local = self.local,
            len = sdp.len(),
        )
    }

    /// ACK for a 2xx (RFC 3261 §13.2.2.4: a new transaction to the remote target).
    pub fn ack(&self, to_tag: Option<&str>, target: Option<&str>) -> String {
        self.in_dialog("ACK", 1, to_tag, target)
    }

    /// ACK for a non-2xx final response: same branch as the INVITE (RFC 3261 §17.1.1.3).
    pub fn ack_non_2xx(&self, to_tag: Option<&str>) -> String {
        self.request("ACK", 1, to_tag, None, &format!("{}i", self.call_id))
    }

    /// BYE ending the dialog.
    pub fn bye(&self, to_tag: Option<&str>, target: Option<&str>) -> String {
        self.in_dialog("BYE", 2, to_tag, target)
    }

    fn in_dialog(
        &self,
        method: &str,
        cseq: u32,
        to_tag: Option<&str>,
        target: Option<&str>,
    ) -> String {
        self.request(
            method,
            cseq,
            to_tag,
            target,
            &format!("{}{method}", self.call_id),
        )
    }

    fn request(
        &self,
        method: &str,
        cseq: u32,
        to_tag: Option<&str>,
        target: Option<&str>,
        branch: &str,
    ) -> String {
        let uri = target.map_or_else(|| self.default_uri(), str::to_owned);
        format!(
            "{method} {uri} SIP/2.0\r\n{via}Max-Forwards: 70\r\n{from}{to}Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            via = self.via(branch),
            from = self.from(),
            to = self.to(to_tag),
            cid = self.call_id,
        )
    }
}

/// A 200 OK to a request the server sent us (e.g. its own BYE or OPTIONS), echoing the
/// headers RFC 3261 §8.2.6.2 says a response copies.
pub fn ok_response(req: &SipMsg<'_>) -> String {
    response(req, 200, "OK", None, "", None)
}

/// A response to `req`: status line, the headers RFC 3261 §8.2.6.2 copies (Via, From, To,
/// Call-ID, CSeq), `to_tag` added to To when the request's To has none (§8.2.6.2: the UAS
/// picks the tag of a new dialog), then `extra` (whole header lines, each ending in CRLF)
/// and an optional (content type, body).
pub fn response(
    req: &SipMsg<'_>,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &str,
    body: Option<(&str, &str)>,
) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for line in req.headers.split("\r\n").skip(1) {
        let name = line.split(':').next().unwrap_or("").trim();
        let copy = ["Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq"]
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name));
        if !copy {
            continue;
        }
        out.push_str(line);
        let is_to = name.eq_ignore_ascii_case("To") || name.eq_ignore_ascii_case("t");
        if let (true, Some(tag), None) = (is_to, to_tag, req.to_tag) {
            out.push_str(";tag=");
            out.push_str(tag);
        }
        out.push_str("\r\n");
    }
    out.push_str(extra);
    match body {
        Some((content_type, body)) => {
            out.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        }
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK_200: &str = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n\
        From: <sip:loadgen@127.0.0.1>;tag=abc\r\nTo: <sip:81000@127.0.0.1:5060>;tag=srv42\r\n\
        Call-ID: lg-7\r\nCSeq: 1 INVITE\r\nContact: <sip:81000@127.0.0.1:5060;transport=udp>\r\n\
        Content-Type: application/sdp\r\nContent-Length: 120\r\n\r\n\
        v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 20004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn parses_status_dialog_fields_and_body_of_a_200() {
        let m = parse(OK_200).unwrap();
        assert_eq!(m.status, Some(200));
        assert_eq!(m.call_id, "lg-7");
        assert_eq!(m.cseq_method, "INVITE");
        assert_eq!(m.to_tag, Some("srv42"));
        assert_eq!(m.contact, Some("sip:81000@127.0.0.1:5060;transport=udp"));
        assert!(m.body.starts_with("v=0"));
    }

    #[test]
    fn extracts_server_rtp_port_from_sdp_answer() {
        let m = parse(OK_200).unwrap();
        assert_eq!(
            sdp_audio_addr(m.body),
            Some("127.0.0.1:20004".parse().unwrap())
        );
    }

    #[test]
    fn media_level_connection_overrides_session_level() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 9\r\nc=IN IP4 10.0.0.2\r\n";
        assert_eq!(sdp_audio_addr(sdp), Some("10.0.0.2:4000".parse().unwrap()));
    }

    #[test]
    fn rejected_stream_with_port_zero_has_no_address() {
        let sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(sdp_audio_addr(sdp), None);
    }

    #[test]
    fn sdp_without_connection_line_has_no_address() {
        assert_eq!(sdp_audio_addr("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"), None);
    }

    #[test]
    fn parses_request_with_compact_headers() {
        let req = "BYE sip:x@y SIP/2.0\r\nv: SIP/2.0/UDP 1.2.3.4\r\ni: cid9\r\nCSeq: 5 BYE\r\nt: <sip:a@b>;tag=t1\r\n\r\n";
        let m = parse(req).unwrap();
        assert_eq!(m.status, None);
        assert_eq!(m.method, Some("BYE"));
        assert_eq!(m.call_id, "cid9");
        assert_eq!(m.to_tag, Some("t1"));
        let ok = ok_response(&m);
        assert!(ok.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(ok.contains("i: cid9\r\n") && ok.contains("CSeq: 5 BYE\r\n"));
    }

    #[test]
    fn reads_request_uri_and_top_via_branch_only() {
        let req = "INVITE sip:70003@127.0.0.1:5080 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtop;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKsecond\r\n\
            Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKthird\r\n\
            Call-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        let m = parse(req).unwrap();
        assert_eq!(m.request_uri, Some("sip:70003@127.0.0.1:5080"));
        assert_eq!(m.branch, Some("z9hG4bKtop"));
        assert_eq!(parse(OK_200).unwrap().request_uri, None);
    }

    #[test]
    fn response_adds_to_tag_only_when_the_request_has_none() {
        let invite = "INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n\
            From: <sip:a@b>;tag=f\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
            Max-Forwards: 70\r\n\r\n";
        let m = parse(invite).unwrap();
        let ok = response(
            &m,
            200,
            "OK",
            Some("uas1"),
            "Contact: <sip:me@h>\r\n",
            Some(("application/sdp", "v=0\r\n")),
        );
        assert!(ok.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n"));
        assert!(ok.contains("To: <sip:x@y>;tag=uas1\r\n"), "{ok}");
        assert!(!ok.contains("Max-Forwards"));
        assert!(ok.ends_with("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
        let bye = "BYE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK2\r\n\
            To: <sip:x@y>;tag=uas1\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n";
        let ok = response(&parse(bye).unwrap(), 200, "OK", Some("other"), "", None);
        assert!(
            ok.contains("To: <sip:x@y>;tag=uas1\r\n") && !ok.contains("other"),
            "{ok}"
        );
    }

    #[test]
    fn message_without_call_id_is_rejected() {
        assert!(parse("SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n").is_none());
    }

    #[test]
    fn offer_names_only_the_chosen_codec() {
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let g722 = sdp_offer(a, CodecKind::G722, 1, false, true);
        assert!(g722.contains("m=audio 40000 RTP/AVP 9\r\n"));
        assert!(g722.contains("a=rtpmap:9 G722/8000\r\n"));
        assert!(!g722.contains("extmap"));
        assert!(!g722.contains("fmtp"), "usedtx is Opus's");
        let opus = sdp_offer(a, CodecKind::Opus, 1, true, false);
        assert!(opus.contains("m=audio 40000 RTP/AVP 96\r\n"));
        assert!(opus.contains("a=rtpmap:96 opus/48000/2\r\n"));
        assert!(!opus.contains("usedtx"));
        let dtx = sdp_offer(a, CodecKind::Opus, 1, false, true);
        assert!(dtx.contains("a=rtpmap:96 opus/48000/2\r\na=fmtp:96 usedtx=1\r\n"));
        assert!(opus.contains("a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"));
    }

    #[test]
    fn invite_content_length_matches_body() {
        let leg = Leg {
            call_id: "c1".into(),
            from_tag: "f1".into(),
            number: "81000".into(),
            local: "127.0.0.1:5070".parse().unwrap(),
            server: "127.0.0.1:5060".parse().unwrap(),
        };
        let sdp = sdp_offer(
            "127.0.0.1:40000".parse().unwrap(),
            CodecKind::Pcmu,
            1,
            false,
            false,
        );
        let inv = leg.invite(&sdp);
        let (_, body) = inv.split_once("\r\n\r\n").unwrap();
        assert!(inv.contains(&format!("Content-Length: {}\r\n", body.len())));
        let bye = leg.bye(Some("srv"), Some("sip:81000@127.0.0.1:5060"));
        assert!(bye.starts_with("BYE sip:81000@127.0.0.1:5060 SIP/2.0\r\n"));
        assert!(bye.contains(";tag=srv\r\n") && bye.contains("CSeq: 2 BYE\r\n"));
    }
}
