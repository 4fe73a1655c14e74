//! Lexical pieces of the RFC 3261 §25 grammar that `rsip` gets wrong or does not check:
//! tokens, quoted strings, parameters, name-addr/addr-spec, Via values, SIP URIs, dates.
//!
//! Everything here works on `&str` slices of an already unfolded header value and returns
//! `None`/`Err` instead of panicking: all slicing is at ASCII delimiter positions found by
//! scanning, so it is always on a char boundary.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// A non-empty RFC 3261 `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

fn trim_ws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Index just past the closing quote of the quoted string that opens at `start`, honouring
/// `\` quoted-pairs (RFC 3261 §25.1); `None` when it is not terminated.
pub(crate) fn skip_quoted(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start.checked_add(1)?;
    while let Some(&c) = s.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Splits at `sep` bytes outside quoted strings and `<...>`; `None` on an unterminated quote.
pub(crate) fn split_top_level(s: &str, sep: u8) -> Option<Vec<&str>> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut in_angle = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => {
                i = skip_quoted(b, i)?;
                continue;
            }
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            _ if c == sep && !in_angle => {
                parts.push(s.get(start..i)?);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(s.get(start..)?);
    Some(parts)
}

/// A header or URI parameter: name and optional raw value (quotes kept).
pub(crate) type Param<'a> = (&'a str, Option<&'a str>);

/// Parses `;name[=value]` parameters (the text after the first `;`, RFC 3261 `generic-param`),
/// tolerating LWS around `;` and `=`. Empty parameters (`;;`) are rejected (RFC 4475 §3.1.2.1).
pub(crate) fn parse_params(s: &str) -> Option<Vec<Param<'_>>> {
    let mut out = Vec::new();
    for part in split_top_level(s, b';')? {
        let part = trim_ws(part);
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (trim_ws(n), Some(trim_ws(v))),
            None => (part, None),
        };
        if !is_token(name) {
            return None;
        }
        if let Some(v) = value
            && !valid_gen_value(v)
        {
            return None;
        }
        out.push((name, value));
    }
    Some(out)
}

/// RFC 3261 `gen-value = token / host / quoted-string`.
fn valid_gen_value(v: &str) -> bool {
    let b = v.as_bytes();
    if b.first() == Some(&b'"') {
        return skip_quoted(b, 0) == Some(b.len());
    }
    !v.is_empty()
        && v.bytes()
            .all(|c| is_token_char(c) || c == b':' || c == b'[' || c == b']')
}

/// Value of the parameter `name` (case-insensitive), `Some("")` for a valueless one.
fn find_param<'a>(params: &[Param<'a>], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.unwrap_or(""))
}

/// A parsed `name-addr` or `addr-spec` with its header parameters (From, To, Contact, Route).
#[derive(Debug)]
pub(crate) struct NameAddr<'a> {
    /// The URI text (inside `<>` when present).
    pub uri: &'a str,
    /// Header parameters after the address.
    pub params: Vec<Param<'a>>,
}

impl NameAddr<'_> {
    /// Value of the parameter `name` (case-insensitive), `Some("")` for a valueless one.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }
}

/// Parses one `(name-addr / addr-spec) *(SEMI param)` value (RFC 3261 §20.10, §20.20, §20.39).
pub(crate) fn parse_name_addr(s: &str) -> Option<NameAddr<'_>> {
    let s = trim_ws(s);
    let b = s.as_bytes();
    let angle_start = if b.first() == Some(&b'"') {
        let end = skip_quoted(b, 0)?;
        let rest = s.get(end..)?;
        let lead = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let at = end + lead;
        if b.get(at) != Some(&b'<') {
            return None;
        }
        Some(at)
    } else if let Some(lt) = s.find('<') {
        // Unquoted display-name = *(token LWS) (RFC 4475 §3.1.2.15 "baddn").
        let display = s.get(..lt)?;
        if !display
            .split([' ', '\t'])
            .all(|w| w.is_empty() || is_token(w))
        {
            return None;
        }
        Some(lt)
    } else {
        None
    };
    match angle_start {
        Some(lt) => {
            let after = s.get(lt + 1..)?;
            let gt = after.find('>')?;
            let uri = after.get(..gt)?;
            // No LWS inside the brackets (RFC 4475 §3.1.2.14 "badaspec").
            if !valid_uri_text(uri) {
                return None;
            }
            let rest = trim_ws(after.get(gt + 1..)?);
            let params = match rest.strip_prefix(';') {
                Some(p) => parse_params(p)?,
                None if rest.is_empty() => Vec::new(),
                None => return None,
            };
            Some(NameAddr { uri, params })
        }
        None => {
            // addr-spec form: the URI ends at the first `;`, and must not hold `?` or `,`
            // (RFC 3261 §20: such URIs must be enclosed in `<>`; RFC 4475 §3.1.2.13).
            let (uri, params) = match s.split_once(';') {
                Some((u, p)) => (trim_ws(u), parse_params(p)?),
                None => (s, Vec::new()),
            };
            if !valid_uri_text(uri) || uri.contains(['?', ',']) {
                return None;
            }
            Some(NameAddr { uri, params })
        }
    }
}

/// `scheme ":" rest` with no whitespace, quotes or angle brackets anywhere.
fn valid_uri_text(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    valid_scheme(scheme)
        && !rest.is_empty()
        && uri
            .bytes()
            .all(|c| c > b' ' && c != 0x7f && c != b'"' && c != b'<' && c != b'>')
}

/// RFC 3986 `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn valid_scheme(s: &str) -> bool {
    let mut it = s.bytes();
    matches!(it.next(), Some(c) if c.is_ascii_alphabetic())
        && it.all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.')
}

/// Parses a `Contact` value: `*` or a comma-separated list of addresses.
pub(crate) fn valid_contact(s: &str) -> bool {
    if trim_ws(s) == "*" {
        return true;
    }
    match split_top_level(s, b',') {
        Some(parts) => parts.iter().all(|p| parse_name_addr(p).is_some()),
        None => false,
    }
}

/// One parsed `via-parm` (RFC 3261 §20.42).
#[derive(Debug)]
pub(crate) struct ViaParts<'a> {
    /// Transport token as written (`UDP`, `TCP`, ...).
    pub transport: &'a str,
    /// sent-by host (IPv6 with brackets).
    pub host: &'a str,
    /// sent-by port.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Vec<Param<'a>>,
}

impl ViaParts<'_> {
    /// Value of the parameter `name` (case-insensitive), `Some("")` for a valueless one.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }

    /// Writes the canonical form `SIP/2.0/T host[:port];params`.
    pub fn write(&self, out: &mut String) {
        out.push_str("SIP/2.0/");
        out.push_str(&self.transport.to_ascii_uppercase());
        out.push(' ');
        out.push_str(self.host);
        if let Some(p) = self.port {
            out.push(':');
            out.push_str(&p.to_string());
        }
        for (n, v) in &self.params {
            out.push(';');
            out.push_str(n);
            if let Some(v) = v {
                out.push('=');
                out.push_str(v);
            }
        }
    }
}

/// Parses one Via element, tolerating LWS inside `SIP / 2.0 / UDP` (RFC 4475 §3.1.1.1).
pub(crate) fn parse_via(s: &str) -> Option<ViaParts<'_>> {
    let s = trim_ws(s);
    let (proto, rest) = take_token(s)?;
    let rest = expect_char(rest, '/')?;
    let (version, rest) = take_token(rest)?;
    let rest = expect_char(rest, '/')?;
    let (transport, rest) = take_token(rest)?;
    if !proto.eq_ignore_ascii_case("SIP") || version != "2.0" {
        return None;
    }
    // sent-by is separated from sent-protocol by LWS.
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let (sent_by, params) = match rest.split_once(';') {
        Some((sb, p)) => (trim_ws(sb), Some(p)),
        None => (trim_ws(rest), None),
    };
    let (host, port) = split_host_port(sent_by)?;
    let params = match params {
        Some(p) => parse_params(p)?,
        None => Vec::new(),
    };
    Some(ViaParts {
        transport,
        host,
        port,
        params,
    })
}

fn take_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    let end = s.bytes().position(|c| !is_token_char(c)).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((s.get(..end)?, s.get(end..)?))
}

fn expect_char(s: &str, c: char) -> Option<&str> {
    s.trim_start_matches([' ', '\t']).strip_prefix(c)
}

/// Splits `host[:port]` (IPv6 references in brackets); validates host characters.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']')?;
        let host = s.get(..=close)?;
        let inner = s.get(1..close)?;
        inner.parse::<Ipv6Addr>().ok()?;
        let rest = s.get(close + 1..)?;
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(trim_ws(p)),
            None if rest.is_empty() => None,
            None => return None,
        };
        (host, port)
    } else {
        let (h, p) = match s.split_once(':') {
            Some((h, p)) => (trim_ws(h), Some(trim_ws(p))),
            None => (s, None),
        };
        if h.is_empty()
            || !h
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_')
        {
            return None;
        }
        (h, p)
    };
    let port = match port {
        Some(p) => Some(parse_port(p)?),
        None => None,
    };
    Some((host, port))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// Parses a host as written in a URI or Via (IPv6 in brackets) into an address.
pub(crate) fn host_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<IpAddr>().ok(),
    }
}

/// Why a Request-URI could not be turned into an `rsip::Uri`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UriError {
    /// Well-formed but not `sip:`/`sips:` (RFC 3261 §8.2.2.1: 416).
    UnsupportedScheme,
    /// Syntax error.
    Malformed,
}

/// Parses a `sip:`/`sips:` URI into `rsip::Uri` ourselves, because `rsip`'s parser rejects IPv6
/// references and mis-splits user parts holding `;` (RFC 4475 §3.1.1.9). IPv6 hosts are kept
/// as a bracketed `Domain` so that `rsip` prints them correctly. Returns whether the URI
/// carried `?headers` (which `rsip::Uri` cannot hold).
pub(crate) fn parse_sip_uri(s: &str) -> Result<(rsip::Uri, bool), UriError> {
    let (scheme, rest) = s.split_once(':').ok_or(UriError::Malformed)?;
    if !valid_scheme(scheme) {
        return Err(UriError::Malformed);
    }
    if s.bytes()
        .any(|c| c <= b' ' || c == 0x7f || c == b'"' || c == b'<' || c == b'>')
    {
        return Err(UriError::Malformed);
    }
    let scheme = if scheme.eq_ignore_ascii_case("sip") {
        rsip::Scheme::Sip
    } else if scheme.eq_ignore_ascii_case("sips") {
        rsip::Scheme::Sips
    } else {
        return Err(UriError::UnsupportedScheme);
    };
    let (auth, hostpart) = match rest.split_once('@') {
        Some((userinfo, hp)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p.to_string())),
                None => (userinfo, None),
            };
            if user.is_empty() {
                return Err(UriError::Malformed);
            }
            (
                Some(rsip::Auth {
                    user: user.to_string(),
                    password,
                }),
                hp,
            )
        }
        None => (None, rest),
    };
    let (hostpart, has_headers) = match hostpart.split_once('?') {
        Some((hp, _)) => (hp, true),
        None => (hostpart, false),
    };
    let (hostport, params) = match hostpart.split_once(';') {
        Some((h, p)) => (h, Some(p)),
        None => (hostpart, None),
    };
    let (host, port) = split_host_port(hostport).ok_or(UriError::Malformed)?;
    let host = match host.parse::<Ipv4Addr>() {
        Ok(v4) => rsip::Host::IpAddr(IpAddr::V4(v4)),
        Err(_) => rsip::Host::Domain(host.into()),
    };
    let mut uri_params = Vec::new();
    if let Some(p) = params {
        for part in p.split(';') {
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (part, None),
            };
            if name.is_empty() || value == Some("") {
                return Err(UriError::Malformed);
            }
            let param = rsip::Param::try_from((name, value))
                .unwrap_or_else(|_| rsip::Param::Other(name.into(), value.map(Into::into)));
            uri_params.push(param);
        }
    }
    Ok((
        rsip::Uri {
            scheme: Some(scheme),
            auth,
            host_with_port: rsip::HostWithPort {
                host,
                port: port.map(rsip::Port::from),
            },
            params: uri_params,
            headers: Vec::new(),
        },
        has_headers,
    ))
}

/// RFC 3261 §20.17 `SIP-date` (RFC 1123 form, always `GMT`; RFC 4475 §3.1.2.12).
pub(crate) fn valid_sip_date(s: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let [wkday, day, month, year, time, zone] = parts.as_slice() else {
        return false;
    };
    let digits = |v: &str, n: usize| v.len() == n && v.bytes().all(|c| c.is_ascii_digit());
    let time_ok = {
        let t: Vec<&str> = time.split(':').collect();
        t.len() == 3 && t.iter().all(|x| digits(x, 2))
    };
    wkday.strip_suffix(',').is_some_and(|d| DAYS.contains(&d))
        && digits(day, 2)
        && MONTHS.contains(month)
        && digits(year, 4)
        && time_ok
        && *zone == "GMT"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_accepts_quoted_display_name_with_escapes() {
        let na = parse_name_addr(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(na.uri, "sip:jdrosen@example.com");
        assert_eq!(na.param("tag"), Some("98asjd8"));
    }

    #[test]
    fn name_addr_rejects_unterminated_quote() {
        assert!(parse_name_addr(r#""Mr. J. User <sip:j.user@example.com>"#).is_none());
    }

    #[test]
    fn name_addr_rejects_spaces_inside_angle_brackets() {
        assert!(parse_name_addr(r#""Watson, Thomas" < sip:t.watson@example.org >"#).is_none());
    }

    #[test]
    fn name_addr_rejects_unquoted_display_name_with_comma() {
        assert!(parse_name_addr("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_none());
    }

    #[test]
    fn name_addr_rejects_bare_uri_with_question_mark() {
        assert!(parse_name_addr("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_none());
        assert!(
            parse_name_addr("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").is_some()
        );
    }

    #[test]
    fn name_addr_addr_spec_params_belong_to_header() {
        let na = parse_name_addr("sip:caller@example.net;tag=134161461246").unwrap();
        assert_eq!(na.uri, "sip:caller@example.net");
        assert_eq!(na.param("TAG"), Some("134161461246"));
    }

    #[test]
    fn name_addr_rejects_empty_params() {
        assert!(parse_name_addr(r#""Joe" <sip:joe@example.org>;;;;"#).is_none());
    }

    #[test]
    fn name_addr_accepts_no_space_before_angle() {
        assert!(parse_name_addr("caller<sip:caller@example.com>;tag=323").is_some());
    }

    #[test]
    fn via_tolerates_lws_in_protocol() {
        let v = parse_via("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.param("branch"), Some("390skdjuw"));
    }

    #[test]
    fn via_parses_ipv6_sent_by_and_rport() {
        let v = parse_via("SIP/2.0/TCP [2001:db8::1]:5070;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(v.host, "[2001:db8::1]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.param("rport"), Some(""));
    }

    #[test]
    fn via_rejects_empty_params_and_bad_port() {
        assert!(parse_via("SIP/2.0/UDP 192.0.2.15;;").is_none());
        assert!(parse_via("SIP/2.0/UDP 192.0.2.15:99999").is_none());
        assert!(parse_via("SIP/2.0/UDP").is_none());
    }

    #[test]
    fn sip_uri_keeps_ipv6_brackets_and_params() {
        let (uri, headers) = parse_sip_uri("sip:alice@[2001:db8::1]:5062;transport=tcp").unwrap();
        assert!(!headers);
        assert_eq!(
            uri.to_string(),
            "sip:alice@[2001:db8::1]:5062;transport=TCP"
        );
    }

    #[test]
    fn sip_uri_user_part_may_hold_semicolons() {
        let (uri, _) = parse_sip_uri("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(uri.user(), Some("user;par=u%40example.net"));
        assert_eq!(uri.host().to_string(), "example.com");
    }

    #[test]
    fn sip_uri_reports_unknown_scheme_and_headers() {
        assert_eq!(
            parse_sip_uri("nobodyKnowsThisScheme:totallyopaquecontent").unwrap_err(),
            UriError::UnsupportedScheme
        );
        assert!(
            parse_sip_uri("sip:user@example.com?Route=%3Csip:example.com%3E")
                .unwrap()
                .1
        );
        assert_eq!(parse_sip_uri("<sip:a@b>").unwrap_err(), UriError::Malformed);
    }

    #[test]
    fn sip_date_requires_gmt() {
        assert!(valid_sip_date("Sat, 15 Oct 2005 04:44:56 GMT"));
        assert!(!valid_sip_date("Fri, 01 Jan 2010 16:00:00 EST"));
    }

    #[test]
    fn split_top_level_ignores_commas_in_quotes_and_brackets() {
        let parts = split_top_level(r#""a,b" <sip:x@y;p=1,2>, <sip:z@w>"#, b',').unwrap();
        assert_eq!(parts.len(), 2);
    }
}
