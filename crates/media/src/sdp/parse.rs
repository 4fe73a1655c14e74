//! Tolerant RFC 4566 reader for the subset offer/answer needs.
//!
//! Tolerated because phones send it: LF-only line ends, trailing blanks, blank lines, missing
//! `s=`/`t=`, `k=`, host names in `c=`, fractional `a=ptime`, unknown attributes, `a=extmap`
//! lines we cannot read (dropped). Rejected with
//! a line number: lines that are not `<letter>=<value>`, unknown line letters (RFC 4566 §5),
//! and broken fields we read (`o=`, `c=`, `m=`, `a=rtpmap`, `a=ptime`, `a=rtcp`).

use std::net::IpAddr;

use super::{
    ConnectionAddress, Direction, ExtMap, Fmtp, MAX_MEDIA, MAX_SDP_BYTES, MediaDescription, Origin,
    RtcpAttribute, RtpMap, SdpError, SessionDescription,
};

/// Parses an SDP body; errors name the 1-based line.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    if text.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge { len: text.len() });
    }
    let mut seen_version = false;
    let mut origin: Option<Origin> = None;
    let mut connection = None;
    let mut direction = None;
    let mut ptime_ms = None;
    let mut media: Vec<MediaDescription> = Vec::new();

    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let content = raw.trim_end_matches([' ', '\t', '\r']);
        if content.is_empty() {
            continue;
        }
        let bad = |reason| SdpError::Malformed { line, reason };
        let (kind, value) = split_line(content).ok_or(bad("not a <type>=<value> line"))?;
        if !seen_version {
            if kind != b'v' {
                return Err(bad("first line must be v="));
            }
            if value.trim() != "0" {
                return Err(bad("unsupported SDP version, expected v=0"));
            }
            seen_version = true;
            continue;
        }
        match kind {
            b'v' => return Err(bad("repeated v= line")),
            b'o' => {
                if origin.is_some() || !media.is_empty() {
                    return Err(bad("o= must appear once, before the m= lines"));
                }
                origin = Some(parse_origin(value).ok_or(bad("o= needs 6 fields"))?);
            }
            b'c' => {
                let addr = parse_connection(value).ok_or(bad("c= is not IN IP4|IP6 <address>"))?;
                // RFC 4566 §5.7 allows several c= only for layered multicast; keep the first.
                let slot = match media.last_mut() {
                    Some(m) => &mut m.connection,
                    None => &mut connection,
                };
                slot.get_or_insert(addr);
            }
            b'm' => {
                if media.len() >= MAX_MEDIA {
                    return Err(SdpError::TooManyMedia);
                }
                media.push(parse_media_line(value, line).map_err(bad)?);
            }
            b'a' => {
                let (name, arg) = match value.split_once(':') {
                    Some((n, a)) => (n, Some(a)),
                    None => (value, None),
                };
                if name.is_empty() {
                    return Err(bad("a= without attribute name"));
                }
                match media.last_mut() {
                    Some(m) => media_attribute(m, name, arg).map_err(bad)?,
                    None => {
                        if let Some(d) = Direction::from_attribute(name) {
                            direction = Some(d);
                        } else if name.eq_ignore_ascii_case("ptime") {
                            ptime_ms = Some(parse_ptime(arg).map_err(bad)?);
                        }
                    }
                }
            }
            // Lines we have no use for (RFC 4566 §5: s i u e p b t r z k).
            b's' | b'i' | b'u' | b'e' | b'p' | b'b' | b't' | b'r' | b'z' | b'k' => {}
            // RFC 4566 §5: a description with an unknown type letter must be ignored whole.
            _ => return Err(bad("unknown SDP line type")),
        }
    }
    if !seen_version {
        return Err(SdpError::Missing("v="));
    }
    let origin = origin.ok_or(SdpError::Missing("o="))?;
    Ok(SessionDescription {
        origin,
        connection,
        direction,
        ptime_ms,
        media,
    })
}

/// Splits `x=value` with `x` a lower-case ASCII letter.
fn split_line(line: &str) -> Option<(u8, &str)> {
    let bytes = line.as_bytes();
    let kind = *bytes.first()?;
    if !kind.is_ascii_lowercase() || bytes.get(1) != Some(&b'=') {
        return None;
    }
    line.get(2..).map(|v| (kind, v))
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
fn parse_origin(value: &str) -> Option<Origin> {
    let mut fields = value.split_ascii_whitespace();
    let username = fields.next()?;
    let session_id = fields.next()?;
    let session_version = fields.next()?;
    let _nettype = fields.next()?;
    let _addrtype = fields.next()?;
    let address = fields.next()?;
    if fields.next().is_some() {
        return None;
    }
    Some(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        session_version: session_version.to_owned(),
        address: address.to_owned(),
    })
}

/// `<nettype> <addrtype> <address>` as in `c=` and `a=rtcp`.
fn parse_connection(value: &str) -> Option<ConnectionAddress> {
    let mut fields = value.split_ascii_whitespace();
    let nettype = fields.next()?;
    let addrtype = fields.next()?;
    let address = fields.next()?;
    if fields.next().is_some()
        || !nettype.eq_ignore_ascii_case("IN")
        || !(addrtype.eq_ignore_ascii_case("IP4") || addrtype.eq_ignore_ascii_case("IP6"))
    {
        return None;
    }
    parse_address(address)
}

/// An address with any multicast `/ttl/count` suffix dropped (RFC 4566 §5.7).
fn parse_address(field: &str) -> Option<ConnectionAddress> {
    let host = field.split('/').next()?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ConnectionAddress::Ip(ip));
    }
    let is_hostname = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    is_hostname.then(|| ConnectionAddress::Host(host.to_owned()))
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`.
fn parse_media_line(value: &str, line: usize) -> Result<MediaDescription, &'static str> {
    let mut fields = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err("m= needs <media> <port> <proto> <fmt>");
    };
    let formats: Vec<String> = fields.map(str::to_owned).collect();
    if formats.is_empty() {
        return Err("m= has no formats");
    }
    // These tokens are echoed into our answer; keep them printable.
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    if !printable(media) || !printable(proto) || !formats.iter().all(|f| printable(f)) {
        return Err("m= contains non-printable characters");
    }
    let port = port
        .split('/')
        .next()
        .and_then(parse_decimal::<u16>)
        .ok_or("m= port is not a number 0-65535")?;
    Ok(MediaDescription {
        line,
        media: media.to_owned(),
        port,
        proto: proto.to_owned(),
        formats,
        connection: None,
        direction: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime_ms: None,
        rtcp: None,
        rtcp_mux: false,
        extmaps: Vec::new(),
        crypto: Vec::new(),
        fax_attributes: Vec::new(),
    })
}

/// Applies one media-level attribute; unknown ones are ignored.
fn media_attribute(
    m: &mut MediaDescription,
    name: &str,
    arg: Option<&str>,
) -> Result<(), &'static str> {
    if let Some(d) = Direction::from_attribute(name) {
        m.direction = Some(d);
    } else if name.eq_ignore_ascii_case("rtpmap") {
        if let Some(map) = parse_rtpmap(arg.unwrap_or(""))?
            && m.rtpmap(map.payload_type).is_none()
        {
            m.rtpmaps.push(map);
        }
    } else if name.eq_ignore_ascii_case("fmtp") {
        let arg = arg.unwrap_or("").trim_start();
        let (pt, params) = arg.split_once([' ', '\t']).unwrap_or((arg, ""));
        // Non-RTP formats (e.g. `webrtc-datachannel`) are no payload type of ours.
        if let Some(pt) = parse_payload_type(pt)
            && m.fmtp(pt).is_none()
        {
            m.fmtps.push(Fmtp {
                payload_type: pt,
                params: params.trim().to_owned(),
            });
        }
    } else if name.eq_ignore_ascii_case("ptime") {
        m.ptime_ms = Some(parse_ptime(arg)?);
    } else if name.eq_ignore_ascii_case("rtcp") {
        m.rtcp = Some(parse_rtcp(arg.unwrap_or(""))?);
    } else if name.eq_ignore_ascii_case("rtcp-mux") {
        m.rtcp_mux = true;
    } else if name.eq_ignore_ascii_case("crypto") {
        if let Some(value) = arg
            && m.crypto.len() < super::MAX_CRYPTO_LINES
        {
            m.crypto.push(value.trim().to_owned());
        }
    } else if name.eq_ignore_ascii_case("extmap")
        && let Some(extmap) = parse_extmap(arg.unwrap_or(""))
    {
        m.extmaps.push(extmap);
    } else if name.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("T38"))
        && m.fax_attributes.len() < super::MAX_FAX_ATTRIBUTES
    {
        // Passed on to the other leg as written: keep only what is printable, so nothing
        // but an attribute line can come out of it.
        let attribute = match arg {
            Some(value) => format!("{name}:{}", value.trim()),
            None => name.to_owned(),
        };
        if attribute.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            m.fax_attributes.push(attribute);
        }
    }
    Ok(())
}

/// `a=extmap:<id>[/<direction>] <uri> [<attributes>]` (RFC 8285 §8); `None` for a line we
/// cannot use, which is skipped rather than failing the whole offer: the extension is
/// optional and the call works without it.
fn parse_extmap(arg: &str) -> Option<ExtMap> {
    let arg = arg.trim();
    let (entry, rest) = arg.split_once([' ', '\t'])?;
    let (id, direction) = match entry.split_once('/') {
        Some((id, dir)) => (id, Some(Direction::from_attribute(dir)?)),
        None => (entry, None),
    };
    // RFC 8285 §5: 1-14 for the one-byte form, up to 255 with the two-byte form; 0 is never
    // an id.
    let id = parse_decimal::<u8>(id).filter(|id| *id != 0)?;
    let rest = rest.trim_start();
    let (uri, attributes) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    if uri.is_empty() || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let attributes = attributes.trim();
    Some(ExtMap {
        id,
        direction,
        uri: uri.to_owned(),
        attributes: (!attributes.is_empty()).then(|| attributes.to_owned()),
    })
}

/// `a=rtpmap:<pt> <name>/<rate>[/<params>]`; `None` for non-RTP formats.
fn parse_rtpmap(arg: &str) -> Result<Option<RtpMap>, &'static str> {
    let arg = arg.trim_start();
    let (pt, encoding) = arg
        .split_once([' ', '\t'])
        .ok_or("rtpmap needs <pt> <encoding>/<rate>")?;
    let Some(payload_type) = parse_payload_type(pt) else {
        return Ok(None);
    };
    let mut parts = encoding.trim().split('/');
    let name = parts.next().filter(|n| !n.is_empty());
    let rate = parts.next().and_then(parse_decimal::<u32>);
    let (Some(name), Some(clock_rate)) = (name, rate) else {
        return Err("rtpmap needs <encoding>/<clock rate>");
    };
    let channels = match parts.next() {
        None => None,
        Some(c) => Some(parse_decimal::<u8>(c).ok_or("rtpmap channels is not a number")?),
    };
    if parts.next().is_some() {
        return Err("rtpmap has extra fields");
    }
    Ok(Some(RtpMap {
        payload_type,
        encoding: name.to_owned(),
        clock_rate,
        channels,
    }))
}

/// `a=ptime:<ms>`; fractions such as `20.0` are cut to whole milliseconds.
fn parse_ptime(arg: Option<&str>) -> Result<u32, &'static str> {
    let arg = arg.unwrap_or("").trim();
    let whole = arg.split_once('.').map_or(arg, |(w, frac)| {
        if frac.bytes().all(|b| b.is_ascii_digit()) {
            w
        } else {
            ""
        }
    });
    parse_decimal::<u32>(whole).ok_or("ptime is not a number of milliseconds")
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605 §2.1).
fn parse_rtcp(arg: &str) -> Result<RtcpAttribute, &'static str> {
    let arg = arg.trim();
    let (port, rest) = arg.split_once([' ', '\t']).unwrap_or((arg, ""));
    let port = parse_decimal::<u16>(port).ok_or("rtcp port is not a number 0-65535")?;
    let address = if rest.trim().is_empty() {
        None
    } else {
        Some(parse_connection(rest).ok_or("rtcp address is not IN IP4|IP6 <address>")?)
    };
    Ok(RtcpAttribute { port, address })
}

/// An RTP payload type 0-127 (RFC 3550 §5.1: 7 bits).
pub(super) fn parse_payload_type(s: &str) -> Option<u8> {
    parse_decimal::<u8>(s).filter(|pt| *pt < 128)
}

/// Plain decimal digits only (`str::parse` would also take a leading `+`).
fn parse_decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
