//! RFC 3261 §12 dialogs, UAS and UAC side: identity, CSeq bookkeeping, route set, remote
//! target, and construction of in-dialog requests.

use std::net::{IpAddr, SocketAddr};

use rsip::{Header, Method};

use crate::message::{self, address_uri, header_value, header_values, parse_uri};
use crate::transaction::{TransportKind, new_branch};

/// Identifies a dialog from our side (RFC 3261 §12: Call-ID, local tag, remote tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag (empty for RFC 2543 peers without one).
    pub remote_tag: String,
}

/// Why a dialog could not be created or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is absent or unreadable.
    #[error("missing or malformed {0} header")]
    MissingHeader(&'static str),
    /// The response has no To tag, so it cannot establish a dialog (§12.1.2).
    #[error("response has no To tag")]
    MissingToTag,
    /// Contact is not a SIP URI we can send to.
    #[error("unusable Contact")]
    BadContact,
    /// Remote CSeq went backwards (§12.2.2): answer 500.
    #[error("CSeq {got} lower than {last}")]
    CSeqOutOfOrder {
        /// CSeq received.
        got: u32,
        /// Highest CSeq seen before.
        last: u32,
    },
    /// The request does not belong to this dialog.
    #[error("request does not match the dialog")]
    NotInDialog,
}

/// Dialog state (RFC 3261 §12.1): identity, sequence numbers, parties, remote target, route
/// set, secure flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialog {
    id: DialogId,
    local_seq: u32,
    remote_seq: Option<u32>,
    /// Our From (UAC) / To (UAS) header value, with our tag.
    local_party: String,
    /// The peer's header value, with its tag.
    remote_party: String,
    remote_target: rsip::Uri,
    /// Route header values (`<uri;lr>`), in the order requests carry them.
    route_set: Vec<String>,
    local_contact: Option<rsip::Uri>,
    secure: bool,
}

fn required(
    msg: &impl rsip::message::HasHeaders,
    name: &'static str,
) -> Result<String, DialogError> {
    header_value(msg, name).ok_or(DialogError::MissingHeader(name))
}

fn contact_uri(msg: &impl rsip::message::HasHeaders) -> Result<rsip::Uri, DialogError> {
    let contact = required(msg, "Contact")?;
    message::first_address(&contact)
        .and_then(address_uri)
        .and_then(|u| parse_uri(&u))
        .ok_or(DialogError::BadContact)
}

fn has_tag(value: &str) -> bool {
    message::tag_in(value).is_some()
}

impl Dialog {
    /// UAS side, from the INVITE we accept (§12.1.1); `local_tag` goes into our To.
    pub fn new_uas(
        invite: &rsip::Request,
        local_tag: &str,
        local_contact: rsip::Uri,
    ) -> Result<Self, DialogError> {
        let call_id = required(invite, "Call-ID")?;
        let (remote_seq, _) = message::cseq(invite).ok_or(DialogError::MissingHeader("CSeq"))?;
        let from = required(invite, "From")?;
        let to = required(invite, "To")?;
        let remote_target = contact_uri(invite)?;
        let local_party = if has_tag(&to) {
            to
        } else {
            format!("{to};tag={local_tag}")
        };
        Ok(Self {
            id: DialogId {
                call_id,
                local_tag: local_tag.to_string(),
                remote_tag: message::from_tag(invite).unwrap_or_default(),
            },
            // §12.1.1: our sequence space starts when we send our first request.
            local_seq: initial_cseq(),
            remote_seq: Some(remote_seq),
            local_party,
            remote_party: from,
            remote_target,
            route_set: header_values(invite, "Record-Route"),
            local_contact: Some(local_contact),
            secure: invite.uri.scheme == Some(rsip::Scheme::Sips),
        })
    }

    /// UAC side, from our INVITE and a 2xx (or 1xx with To tag) to it (§12.1.2).
    pub fn new_uac(invite: &rsip::Request, response: &rsip::Response) -> Result<Self, DialogError> {
        let call_id = required(invite, "Call-ID")?;
        let (local_seq, _) = message::cseq(invite).ok_or(DialogError::MissingHeader("CSeq"))?;
        let local_tag = message::from_tag(invite).ok_or(DialogError::MissingHeader("From"))?;
        let remote_tag = message::to_tag(response).ok_or(DialogError::MissingToTag)?;
        let remote_target = contact_uri(response)?;
        // §12.1.2: the route set is the Record-Route list in reverse order.
        let mut route_set = header_values(response, "Record-Route");
        route_set.reverse();
        let local_contact = header_value(invite, "Contact")
            .and_then(|c| address_uri(&c))
            .and_then(|u| parse_uri(&u));
        Ok(Self {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            local_seq,
            remote_seq: None,
            local_party: required(invite, "From")?,
            remote_party: required(response, "To")?,
            remote_target,
            route_set,
            local_contact,
            secure: invite.uri.scheme == Some(rsip::Scheme::Sips),
        })
    }

    /// The dialog's identity.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// CSeq number of our last request.
    pub fn local_cseq(&self) -> u32 {
        self.local_seq
    }

    /// Highest CSeq number seen from the peer.
    pub fn remote_cseq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// Where in-dialog requests are addressed (the peer's Contact).
    pub fn remote_target(&self) -> &rsip::Uri {
        &self.remote_target
    }

    /// Route header values in request order.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// Whether the dialog was set up over `sips:`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Builds an in-dialog request (BYE, re-INVITE, INFO, UPDATE...) per §12.2.1.1 with our
    /// Via sent-by and a fresh branch; the local CSeq advances. For ACK use [`new_ack`].
    ///
    /// [`new_ack`]: Dialog::new_ack
    pub fn new_request(
        &mut self,
        method: Method,
        via_sent_by: SocketAddr,
        transport: TransportKind,
        body: Option<(String, Vec<u8>)>,
    ) -> rsip::Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        self.build(method, self.local_seq, via_sent_by, transport, body)
    }

    /// ACK for a 2xx to our INVITE with CSeq `invite_cseq` (§13.2.2.4: same CSeq number,
    /// method ACK, new branch).
    pub fn new_ack(
        &self,
        invite_cseq: u32,
        via_sent_by: SocketAddr,
        transport: TransportKind,
    ) -> rsip::Request {
        self.build(Method::Ack, invite_cseq, via_sent_by, transport, None)
    }

    fn build(
        &self,
        method: Method,
        cseq: u32,
        via_sent_by: SocketAddr,
        transport: TransportKind,
        body: Option<(String, Vec<u8>)>,
    ) -> rsip::Request {
        let mut headers = rsip::Headers::default();
        headers.push(Header::Via(rsip::headers::Via::from(format!(
            "SIP/2.0/{} {via_sent_by};branch={};rport",
            transport.via_name(),
            new_branch()
        ))));
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::from("70")));
        // §12.2.1.1: loose routing keeps the remote target as Request-URI; a strict first
        // hop (no `lr`) becomes the Request-URI and the remote target goes last in Route.
        let first_route = self.route_set.first().and_then(|r| {
            let uri = address_uri(r)?;
            Some((parse_uri(&uri)?, uri))
        });
        let uri = match &first_route {
            Some((route_uri, text)) if !is_loose(text) => {
                let mut strict = route_uri.clone();
                strict
                    .params
                    .retain(|p| !matches!(p, rsip::Param::Maddr(_)));
                for r in self.route_set.iter().skip(1) {
                    headers.push(Header::Route(rsip::headers::Route::from(r.clone())));
                }
                headers.push(Header::Route(rsip::headers::Route::from(format!(
                    "<{}>",
                    self.remote_target
                ))));
                strict
            }
            _ => {
                for r in &self.route_set {
                    headers.push(Header::Route(rsip::headers::Route::from(r.clone())));
                }
                self.remote_target.clone()
            }
        };
        headers.push(Header::From(rsip::headers::From::from(
            self.local_party.clone(),
        )));
        headers.push(Header::To(rsip::headers::To::from(
            self.remote_party.clone(),
        )));
        headers.push(Header::CallId(rsip::headers::CallId::from(
            self.id.call_id.clone(),
        )));
        headers.push(Header::CSeq(rsip::headers::CSeq::from(format!(
            "{cseq} {method}"
        ))));
        let target_refresh = matches!(
            method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
        );
        if let (true, Some(contact)) = (target_refresh, &self.local_contact) {
            headers.push(Header::Contact(rsip::headers::Contact::from(format!(
                "<{contact}>"
            ))));
        }
        let body = match body {
            Some((content_type, bytes)) => {
                headers.push(Header::ContentType(rsip::headers::ContentType::from(
                    content_type,
                )));
                bytes
            }
            None => Vec::new(),
        };
        headers.push(Header::ContentLength(rsip::headers::ContentLength::from(
            body.len().to_string(),
        )));
        rsip::Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers,
            body,
        }
    }

    /// Validates an incoming in-dialog request (§12.2.2): it must match the dialog and its
    /// CSeq must not go backwards (ACK and CANCEL reuse the INVITE's number and are exempt);
    /// target refresh requests update the remote target from their Contact.
    pub fn on_request(&mut self, req: &rsip::Request) -> Result<(), DialogError> {
        if !self.matches_request(req) {
            return Err(DialogError::NotInDialog);
        }
        let (seq, _) = message::cseq(req).ok_or(DialogError::MissingHeader("CSeq"))?;
        if !matches!(req.method, Method::Ack | Method::Cancel) {
            if let Some(last) = self.remote_seq
                && seq < last
            {
                return Err(DialogError::CSeqOutOfOrder { got: seq, last });
            }
            self.remote_seq = Some(seq);
        }
        let refresh = matches!(
            req.method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
        );
        if refresh && header_value(req, "Contact").is_some() {
            self.remote_target = contact_uri(req)?;
        }
        Ok(())
    }

    fn matches_request(&self, req: &rsip::Request) -> bool {
        message::call_id(req).as_deref() == Some(self.id.call_id.as_str())
            && message::to_tag(req).as_deref() == Some(self.id.local_tag.as_str())
            && message::from_tag(req).unwrap_or_default() == self.id.remote_tag
    }

    /// Whether a message belongs to this dialog: by Call-ID and tags, seen from the
    /// direction the message travels (requests from the peer, responses to our requests).
    pub fn matches(&self, msg: &rsip::SipMessage) -> bool {
        match msg {
            rsip::SipMessage::Request(r) => self.matches_request(r),
            rsip::SipMessage::Response(r) => {
                message::call_id(r).as_deref() == Some(self.id.call_id.as_str())
                    && message::from_tag(r).as_deref() == Some(self.id.local_tag.as_str())
                    && message::to_tag(r).unwrap_or_default() == self.id.remote_tag
            }
        }
    }

    /// Where in-dialog requests go: the first route's address, else the remote target
    /// (port 5060, 5061 for sips). `None` when that host is a name (no DNS here).
    pub fn next_hop(&self) -> Option<SocketAddr> {
        let uri = match self.route_set.first() {
            Some(r) => parse_uri(&address_uri(r)?)?,
            None => self.remote_target.clone(),
        };
        let ip = match &uri.host_with_port.host {
            rsip::Host::IpAddr(ip) => *ip,
            rsip::Host::Domain(d) => {
                let d = d.to_string();
                let inner = d.strip_prefix('[').and_then(|x| x.strip_suffix(']'));
                inner.unwrap_or(&d).parse::<IpAddr>().ok()?
            }
        };
        let default_port = if uri.scheme == Some(rsip::Scheme::Sips) {
            5061
        } else {
            5060
        };
        let port = uri
            .host_with_port
            .port
            .as_ref()
            .map_or(default_port, |p| *p.value());
        Some(SocketAddr::new(ip, port))
    }
}

/// Whether a Route value's URI carries `lr` (RFC 3261 §16.12.1.1 loose routing).
fn is_loose(route: &str) -> bool {
    route
        .split(['<', '>'])
        .nth(1)
        .unwrap_or(route)
        .split(';')
        .skip(1)
        .any(|p| {
            p.trim().eq_ignore_ascii_case("lr") || p.trim().to_ascii_lowercase().starts_with("lr=")
        })
}

fn initial_cseq() -> u32 {
    // §8.1.1.5: any start below 2^31; a small random one leaves room to grow.
    u32::from(rand::random::<u16>()) + 1
}

/// The dialog a request belongs to, seen from the UAS (local = To tag, remote = From tag);
/// `None` when it has no To tag (not an in-dialog request).
pub fn dialog_id_of_request(req: &rsip::Request) -> Option<DialogId> {
    Some(DialogId {
        call_id: message::call_id(req)?,
        local_tag: message::to_tag(req)?,
        remote_tag: message::from_tag(req).unwrap_or_default(),
    })
}

/// The dialog a response belongs to, seen from the UAC (local = From tag, remote = To tag).
pub fn dialog_id_of_response(resp: &rsip::Response) -> Option<DialogId> {
    Some(DialogId {
        call_id: message::call_id(resp)?,
        local_tag: message::from_tag(resp)?,
        remote_tag: message::to_tag(resp)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, response_to, serialize, top_via};
    use rsip::SipMessage;

    fn invite() -> rsip::Request {
        let text = "INVITE sip:conf@192.0.2.10 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi1\r\n\
            Record-Route: <sip:p1.example.com;lr>\r\n\
            Record-Route: <sip:192.0.2.50:5070;lr>\r\n\
            From: \"Alice\" <sip:alice@example.com>;tag=alice1\r\n\
            To: <sip:conf@example.com>\r\n\
            Call-ID: dlg-1@example.com\r\n\
            CSeq: 10 INVITE\r\n\
            Contact: <sip:alice@192.0.2.1:5062;transport=udp>\r\n\
            Content-Length: 0\r\n\r\n";
        match parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    fn local_contact() -> rsip::Uri {
        parse_uri("sip:conf@192.0.2.10:5060").unwrap()
    }

    fn uas() -> Dialog {
        Dialog::new_uas(&invite(), "conf1", local_contact()).unwrap()
    }

    fn in_dialog(method: &str, cseq: u32, contact: Option<&str>) -> rsip::Request {
        let contact = contact
            .map(|c| format!("Contact: {c}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "{method} sip:conf@192.0.2.10 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx{cseq}\r\n\
             From: <sip:alice@example.com>;tag=alice1\r\n\
             To: <sip:conf@example.com>;tag=conf1\r\n\
             Call-ID: dlg-1@example.com\r\n\
             CSeq: {cseq} {method}\r\n{contact}\
             Content-Length: 0\r\n\r\n"
        );
        match parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    fn sent_by() -> SocketAddr {
        "192.0.2.10:5060".parse().unwrap()
    }

    #[test]
    fn uas_dialog_takes_identity_from_invite() {
        let d = uas();
        assert_eq!(
            d.id(),
            &DialogId {
                call_id: "dlg-1@example.com".into(),
                local_tag: "conf1".into(),
                remote_tag: "alice1".into(),
            }
        );
        assert_eq!(d.remote_cseq(), Some(10));
        assert_eq!(
            d.remote_target().to_string(),
            "sip:alice@192.0.2.1:5062;transport=UDP"
        );
        assert_eq!(
            d.route_set(),
            ["<sip:p1.example.com;lr>", "<sip:192.0.2.50:5070;lr>"]
        );
        assert_eq!(
            dialog_id_of_request(&in_dialog("BYE", 11, None)).as_ref(),
            Some(d.id())
        );
    }

    #[test]
    fn uas_bye_goes_through_route_set_with_fresh_branch_and_higher_cseq() {
        let mut d = uas();
        let start = d.local_cseq();
        let bye = d.new_request(Method::Bye, sent_by(), TransportKind::Udp, None);
        assert_eq!(d.local_cseq(), start + 1);
        assert_eq!(message::cseq(&bye), Some((start + 1, Method::Bye)));
        assert_eq!(
            bye.uri.to_string(),
            "sip:alice@192.0.2.1:5062;transport=UDP"
        );
        assert_eq!(header_values(&bye, "Route"), d.route_set());
        assert_eq!(message::from_tag(&bye).as_deref(), Some("conf1"));
        assert_eq!(message::to_tag(&bye).as_deref(), Some("alice1"));
        let via = top_via(&bye).unwrap();
        assert_eq!(via.host, "192.0.2.10");
        assert!(via.branch.unwrap().starts_with("z9hG4bK"));
        assert!(header_value(&bye, "Contact").is_none());
        let bye2 = d.new_request(Method::Bye, sent_by(), TransportKind::Tcp, None);
        assert_ne!(
            top_via(&bye).unwrap().branch,
            top_via(&bye2).unwrap().branch
        );
        assert_eq!(top_via(&bye2).unwrap().transport, "TCP");
        // What we build parses back.
        assert!(parse(&serialize(&SipMessage::Request(bye))).is_ok());
    }

    #[test]
    fn reinvite_carries_contact_and_body() {
        let mut d = uas();
        let req = d.new_request(
            Method::Invite,
            sent_by(),
            TransportKind::Udp,
            Some(("application/sdp".into(), b"v=0\r\n".to_vec())),
        );
        assert_eq!(
            header_value(&req, "Contact").as_deref(),
            Some("<sip:conf@192.0.2.10:5060>")
        );
        assert_eq!(
            header_value(&req, "Content-Type").as_deref(),
            Some("application/sdp")
        );
        assert_eq!(req.body, b"v=0\r\n");
        let SipMessage::Request(back) = parse(&serialize(&SipMessage::Request(req))).unwrap()
        else {
            panic!("not a request");
        };
        assert_eq!(back.body, b"v=0\r\n");
    }

    #[test]
    fn lower_remote_cseq_is_rejected() {
        let mut d = uas();
        assert_eq!(d.on_request(&in_dialog("INFO", 11, None)), Ok(()));
        assert_eq!(d.remote_cseq(), Some(11));
        assert_eq!(
            d.on_request(&in_dialog("INFO", 9, None)),
            Err(DialogError::CSeqOutOfOrder { got: 9, last: 11 })
        );
        // ACK reuses the INVITE's number and is not out of order.
        assert_eq!(d.on_request(&in_dialog("ACK", 10, None)), Ok(()));
        assert_eq!(d.remote_cseq(), Some(11));
    }

    #[test]
    fn reinvite_refreshes_remote_target() {
        let mut d = uas();
        d.on_request(&in_dialog(
            "INVITE",
            12,
            Some("<sip:alice@198.51.100.4:6000>"),
        ))
        .unwrap();
        assert_eq!(d.remote_target().to_string(), "sip:alice@198.51.100.4:6000");
        // INFO is not a target refresh.
        d.on_request(&in_dialog("INFO", 13, Some("<sip:alice@203.0.113.1>")))
            .unwrap();
        assert_eq!(d.remote_target().to_string(), "sip:alice@198.51.100.4:6000");
    }

    #[test]
    fn request_from_other_dialog_is_refused() {
        let mut d = uas();
        let mut other = in_dialog("BYE", 11, None);
        other.headers.retain(|h| !matches!(h, Header::To(_)));
        other.headers.push(Header::To(rsip::headers::To::from(
            "<sip:conf@example.com>;tag=nope",
        )));
        assert!(!d.matches(&SipMessage::Request(other.clone())));
        assert_eq!(d.on_request(&other), Err(DialogError::NotInDialog));
        assert!(d.matches(&SipMessage::Request(in_dialog("BYE", 11, None))));
    }

    #[test]
    fn uac_dialog_reverses_record_route_and_acks_with_invite_cseq() {
        let inv = {
            let mut r = invite();
            r.headers.retain(|h| !matches!(h, Header::RecordRoute(_)));
            r
        };
        // The 2xx carries the INVITE's Record-Routes (RFC 3261 §12.1.1).
        let mut ok = response_to(&invite(), 200, None, Some("bob9"));
        ok.headers
            .push(Header::Contact(rsip::headers::Contact::from(
                "<sip:bob@192.0.2.77>",
            )));
        let d = Dialog::new_uac(&inv, &ok).unwrap();
        assert_eq!(d.id().local_tag, "alice1");
        assert_eq!(d.id().remote_tag, "bob9");
        assert_eq!(
            d.route_set(),
            ["<sip:192.0.2.50:5070;lr>", "<sip:p1.example.com;lr>"]
        );
        assert!(d.matches(&SipMessage::Response(ok.clone())));
        assert_eq!(dialog_id_of_response(&ok).as_ref(), Some(d.id()));
        let ack = d.new_ack(10, sent_by(), TransportKind::Udp);
        assert_eq!(message::cseq(&ack), Some((10, Method::Ack)));
        assert_eq!(ack.uri.to_string(), "sip:bob@192.0.2.77");
        assert_ne!(top_via(&ack).unwrap().branch.as_deref(), Some("z9hG4bKi1"));
        assert_eq!(d.local_cseq(), 10);
        assert_eq!(d.next_hop(), Some("192.0.2.50:5070".parse().unwrap()));
    }

    #[test]
    fn uac_dialog_needs_to_tag() {
        let resp = response_to(&invite(), 180, None, None);
        assert_eq!(
            Dialog::new_uac(&invite(), &resp),
            Err(DialogError::MissingToTag)
        );
    }

    #[test]
    fn strict_route_becomes_request_uri() {
        let text = "INVITE sip:conf@192.0.2.10 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi2\r\n\
            Record-Route: <sip:192.0.2.60>\r\n\
            From: <sip:alice@example.com>;tag=a\r\n\
            To: <sip:conf@example.com>\r\n\
            Call-ID: strict\r\n\
            CSeq: 1 INVITE\r\n\
            Contact: <sip:alice@192.0.2.1>\r\n\r\n";
        let SipMessage::Request(inv) = parse(text.as_bytes()).unwrap() else {
            panic!("not a request");
        };
        let mut d = Dialog::new_uas(&inv, "c", local_contact()).unwrap();
        let bye = d.new_request(Method::Bye, sent_by(), TransportKind::Udp, None);
        assert_eq!(bye.uri.to_string(), "sip:192.0.2.60");
        assert_eq!(header_values(&bye, "Route"), vec!["<sip:alice@192.0.2.1>"]);
        assert_eq!(d.next_hop(), Some("192.0.2.60:5060".parse().unwrap()));
    }

    #[test]
    fn next_hop_uses_remote_target_without_routes_and_needs_an_ip() {
        let mut inv = invite();
        inv.headers.retain(|h| !matches!(h, Header::RecordRoute(_)));
        let d = Dialog::new_uas(&inv, "c", local_contact()).unwrap();
        assert_eq!(d.next_hop(), Some("192.0.2.1:5062".parse().unwrap()));
        let mut inv = invite();
        inv.headers
            .retain(|h| !matches!(h, Header::RecordRoute(_) | Header::Contact(_)));
        inv.headers
            .push(Header::Contact(rsip::headers::Contact::from(
                "<sip:alice@[2001:db8::7]>",
            )));
        let d = Dialog::new_uas(&inv, "c", local_contact()).unwrap();
        assert_eq!(d.next_hop(), Some("[2001:db8::7]:5060".parse().unwrap()));
        let mut inv = invite();
        inv.headers
            .retain(|h| !matches!(h, Header::RecordRoute(_) | Header::Contact(_)));
        inv.headers
            .push(Header::Contact(rsip::headers::Contact::from(
                "<sip:alice@host.example.com>",
            )));
        let d = Dialog::new_uas(&inv, "c", local_contact()).unwrap();
        assert_eq!(d.next_hop(), None);
    }

    #[test]
    fn invite_without_contact_cannot_make_a_dialog() {
        let mut inv = invite();
        inv.headers.retain(|h| !matches!(h, Header::Contact(_)));
        assert_eq!(
            Dialog::new_uas(&inv, "c", local_contact()),
            Err(DialogError::MissingHeader("Contact"))
        );
    }
}
