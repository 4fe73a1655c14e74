//! Subscriptions to event packages (RFC 6665) and the `dialog` package (RFC 4235) that busy
//! lamp fields watch: a phone subscribes to a colleague's extension and is sent a NOTIFY
//! with the full dialog-info document whenever that line goes idle, rings or is busy.
//!
//! Runs on the signalling task beside the registrar, which identifies subscribers (digest,
//! a registered flow, or a trusted network). The subscription bookkeeping is the sans-IO
//! [`sip::subscription::Subscriptions`]; here is who may subscribe to what, the documents,
//! and sending NOTIFYs through the endpoint. The `message-summary` package (RFC 3842) lets a
//! phone watch its own user's mailbox the same way: it is told the counts whenever they
//! change, inside its subscription (phones that do not subscribe get them unsolicited).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use sip::message as msg;
use sip::subscription::{
    SubscribeRefusal, SubscriptionId, SubscriptionLimits, Subscriptions, TerminationReason,
    event_package,
};
use sip::transaction::{Peer, TransactionKey};
use store::MessageCounts;

use crate::config::PresenceSettings;
use crate::line_state::{CallState, Direction, LineCall, LineStates, LineView};
use crate::registrar::{Caller, CallerRefusal, RegistrarService};
use crate::sip_endpoint::{ServiceRequest, SipEndpoint};

/// The dialog event package (RFC 4235).
pub const DIALOG_EVENT: &str = "dialog";
/// Its document type.
const DIALOG_INFO: &str = "application/dialog-info+xml";
/// The message summary package (RFC 3842): a user's own mailbox.
pub const MESSAGE_SUMMARY_EVENT: &str = "message-summary";
/// Its document type.
const SIMPLE_MESSAGE_SUMMARY: &str = "application/simple-message-summary";
/// The packages we serve, for Allow-Events (RFC 6665 §8.2.2).
const ALLOW_EVENTS: &str = "dialog, message-summary";
/// What a 503 for a full table tells the phone to wait, in seconds.
const RETRY_AFTER_S: u32 = 60;

/// A subscription's other facts: whose line as the document names it, and where its
/// NOTIFYs go.
#[derive(Debug, Clone)]
struct Watcher {
    /// `sip:102@domain`, as the SUBSCRIBE addressed it.
    entity: String,
    /// The extension watched (its line, or its mailbox).
    extension: String,
    /// The flow the SUBSCRIBE came on (phones behind NAT are reached back over it).
    peer: Peer,
    /// [`DIALOG_EVENT`] or [`MESSAGE_SUMMARY_EVENT`].
    package: &'static str,
}

/// What a NOTIFY tells.
#[derive(Clone, Copy)]
enum Document<'a> {
    /// A line's state (dialog package).
    Line(&'a LineView),
    /// A mailbox's counts (message-summary package).
    Mailbox(MessageCounts),
}

/// The subscriptions and their NOTIFYs (see the module documentation).
pub struct PresenceService {
    subscriptions: Subscriptions,
    watchers: HashMap<SubscriptionId, Watcher>,
    /// NOTIFYs sent and not yet answered.
    in_flight: HashMap<TransactionKey, SubscriptionId>,
    /// Each mailbox's counts as last read from the store.
    mailboxes: HashMap<String, MessageCounts>,
    /// Mailboxes whose counts a new subscription waits for (the store is read off this
    /// task; the first NOTIFY follows when they come in, see [`Self::on_mailbox`]).
    counts_wanted: Vec<String>,
}

impl PresenceService {
    /// No subscriptions yet, with the configured limits.
    pub fn new(settings: &PresenceSettings) -> Self {
        let min = settings.min_expires.max(1);
        let max = settings.max_expires.max(min);
        let limits = SubscriptionLimits {
            min_expires: min,
            max_expires: max,
            // RFC 4235 §4.1: the dialog package's default is 3600 s.
            default_expires: 3600u32.clamp(min, max),
            per_subscriber: settings.max_subscriptions_per_user,
            total: settings.max_subscriptions,
        };
        Self {
            subscriptions: Subscriptions::new(limits),
            watchers: HashMap::new(),
            in_flight: HashMap::new(),
            mailboxes: HashMap::new(),
            counts_wanted: Vec::new(),
        }
    }

    /// Takes a SUBSCRIBE: identifies the subscriber, checks the package and the resource,
    /// and answers; an accepted one gets its first NOTIFY at once (RFC 6665 §4.2.1.2).
    pub fn on_subscribe(
        &mut self,
        request: ServiceRequest,
        endpoint: &mut SipEndpoint,
        registrar: &mut RegistrarService,
        lines: &LineStates,
        now: Instant,
    ) {
        let ServiceRequest { key, request, from } = request;
        let call_id = msg::call_id(&request).unwrap_or_default();
        let span = tracing::info_span!("subscribe", call_id = %call_id, source = %from.addr);
        let _entered = span.enter();
        let package = msg::header_value(&request, "Event")
            .map(|e| event_package(&e))
            .unwrap_or_default();
        // The dispatch point by Event name: each package a match arm of its own.
        let package = match package.as_str() {
            DIALOG_EVENT => DIALOG_EVENT,
            MESSAGE_SUMMARY_EVENT => MESSAGE_SUMMARY_EVENT,
            other => {
                tracing::info!(event = %other, "SUBSCRIBE to an event package we do not serve; 489");
                let mut response = reply(&request, 489);
                msg::add_header(&mut response.headers, "Allow-Events", ALLOW_EVENTS.into());
                endpoint.respond_to(&key, response, now);
                return;
            }
        };
        // Lines and mailboxes are the default domain's alone yet: a tenant's phone is told so
        // rather than shown another town's colleagues.
        if !crate::tenants::is_default(&registrar.tenant_of(&request)) {
            tracing::info!(event = %package, "SUBSCRIBE for a tenant's line; 403");
            let response = msg::response_to(
                &request,
                403,
                Some("Not Served For This Domain"),
                Some(&sip::transaction::new_tag()),
            );
            endpoint.respond_to(&key, response, now);
            return;
        }
        let domain = store::DEFAULT_DOMAIN;
        let subscriber = match registrar.identify_caller(&request, domain, from, now) {
            Ok(Caller::User { extension, .. }) => extension,
            Ok(Caller::Trusted) => msg::header_value(&request, "From")
                .as_deref()
                .and_then(msg::address_uri)
                .and_then(|u| msg::parse_uri(&u))
                .and_then(|u| u.auth.map(|a| a.user))
                .unwrap_or_else(|| "trusted".into()),
            Ok(Caller::Unidentified) => {
                return self.challenge(&key, &request, registrar, false, None, endpoint, now);
            }
            Err(CallerRefusal::Challenge {
                stale,
                wrong_answer_to,
            }) => {
                let wrong = wrong_answer_to.as_deref();
                return self.challenge(&key, &request, registrar, stale, wrong, endpoint, now);
            }
            Err(CallerRefusal::ForeignNetwork) => {
                let response = msg::response_to(
                    &request,
                    403,
                    Some("Not From An Allowed Network"),
                    Some(&sip::transaction::new_tag()),
                );
                endpoint.respond_to(&key, response, now);
                return;
            }
            Err(CallerRefusal::BadCredentials) => {
                endpoint.respond_to(&key, reply(&request, 400), now);
                return;
            }
            Err(CallerRefusal::Banned) => {
                endpoint.respond_to(&key, reply(&request, 403), now);
                return;
            }
        };
        let extension = request
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        if !registrar.has_user(domain, &extension) {
            tracing::info!(%subscriber, watched = %extension, "SUBSCRIBE to no user; 404");
            endpoint.respond_to(&key, reply(&request, 404), now);
            return;
        }
        // A mailbox says who called; only its own user may watch it.
        if package == MESSAGE_SUMMARY_EVENT && extension != subscriber {
            tracing::info!(%subscriber, mailbox = %extension, "SUBSCRIBE to another user's mailbox; 403");
            endpoint.respond_to(&key, reply(&request, 403), now);
            return;
        }
        let document_type = if package == DIALOG_EVENT {
            DIALOG_INFO
        } else {
            SIMPLE_MESSAGE_SUMMARY
        };
        if !accepts(&request, document_type) {
            tracing::info!(%subscriber, watched = %extension, "subscriber does not accept {document_type}; 406");
            let mut response = reply(&request, 406);
            msg::add_header(&mut response.headers, "Accept", document_type.into());
            endpoint.respond_to(&key, response, now);
            return;
        }
        let contact = endpoint.contact_towards(from);
        let Some(local_contact) = msg::parse_uri(&contact) else {
            endpoint.respond_to(&key, reply(&request, 500), now);
            return;
        };
        let flow = (from.addr, from.transport);
        let accepted = match self.subscriptions.subscribe(
            &request,
            &subscriber,
            &extension,
            package,
            flow,
            local_contact,
            now,
        ) {
            Ok(accepted) => accepted,
            Err(refusal) => {
                tracing::info!(%subscriber, watched = %extension, status = refusal.status(), "SUBSCRIBE refused: {refusal}");
                let mut response = reply(&request, refusal.status());
                match refusal {
                    SubscribeRefusal::IntervalTooBrief { min_expires, .. } => {
                        msg::add_header(
                            &mut response.headers,
                            "Min-Expires",
                            min_expires.to_string(),
                        );
                    }
                    SubscribeRefusal::SubscriberLimit(_) | SubscribeRefusal::TotalLimit(_) => {
                        msg::add_header(
                            &mut response.headers,
                            "Retry-After",
                            RETRY_AFTER_S.to_string(),
                        );
                    }
                    _ => {}
                }
                endpoint.respond_to(&key, response, now);
                return;
            }
        };
        let mut response = msg::response_to(&request, 200, None, Some(&accepted.local_tag));
        msg::add_header(
            &mut response.headers,
            "Expires",
            accepted.expires.to_string(),
        );
        msg::add_header(&mut response.headers, "Contact", format!("<{contact}>"));
        endpoint.respond_to(&key, response, now);
        let host = request.uri.host_with_port.host.to_string();
        self.watchers.insert(
            accepted.id,
            Watcher {
                entity: format!("sip:{extension}@{host}"),
                extension: extension.clone(),
                peer: from,
                package,
            },
        );
        tracing::info!(%subscriber, watched = %extension, expires = accepted.expires, subscription = %accepted.id, new = accepted.created, "{package} subscription");
        let view = lines.view(&extension);
        let document = match package {
            DIALOG_EVENT => Some(Document::Line(&view)),
            _ => self
                .mailboxes
                .get(&extension)
                .copied()
                .map(Document::Mailbox),
        };
        match (accepted.expires, document) {
            (0, document) => self.end(
                accepted.id,
                TerminationReason::Timeout,
                document,
                endpoint,
                now,
            ),
            (_, Some(document)) => self.send(accepted.id, document, endpoint, now),
            // A mailbox not read yet: its counts are asked for, and they are the first NOTIFY.
            (_, None) => self.counts_wanted.push(extension),
        }
        self.publish_gauge();
    }

    /// `extension`'s line now shows `view`: every watcher of it is told.
    pub fn on_line_change(
        &mut self,
        extension: &str,
        view: &LineView,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) {
        for id in self.subscriptions.watching(extension, DIALOG_EVENT) {
            self.send(id, Document::Line(view), endpoint, now);
        }
    }

    /// `mailbox` now holds `counts`: every phone watching it is told. Returns where those
    /// phones subscribed from, so that they are not told again unsolicited.
    pub fn on_mailbox(
        &mut self,
        mailbox: &str,
        counts: MessageCounts,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) -> Vec<SocketAddr> {
        self.mailboxes.insert(mailbox.to_owned(), counts);
        let mut told = Vec::new();
        for id in self.subscriptions.watching(mailbox, MESSAGE_SUMMARY_EVENT) {
            if let Some(watcher) = self.watchers.get(&id) {
                told.push(watcher.peer.addr);
            }
            self.send(id, Document::Mailbox(counts), endpoint, now);
        }
        told
    }

    /// The mailboxes whose counts new subscriptions wait for (see [`Self::on_mailbox`]).
    pub fn take_counts_wanted(&mut self) -> Vec<String> {
        std::mem::take(&mut self.counts_wanted)
    }

    /// The final answer to a request we sent (`None`: it timed out); `false` when it was no
    /// NOTIFY of ours. A subscriber that answers 481 (it forgot the subscription) or
    /// nothing at all is dropped (RFC 6665 §4.1.2.3 and §4.2.2).
    pub fn on_answer(&mut self, key: &TransactionKey, answer: Option<&rsip::Response>) -> bool {
        let Some(id) = self.in_flight.remove(key) else {
            return false;
        };
        let status = answer.map(|r| r.status_code.code());
        // RFC 6665 §4.2.2: a failure answer ends the subscription as silence does.
        let gone = status.is_none_or(|code| code >= 300);
        if gone && self.subscriptions.remove(id).is_some() {
            let watcher = self.watchers.remove(&id);
            tracing::info!(subscription = %id, watched = ?watcher.map(|w| w.extension), status = ?status, "subscriber did not take a NOTIFY; subscription dropped");
            self.publish_gauge();
        }
        true
    }

    /// When the next subscription runs out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subscriptions.poll_timeout()
    }

    /// Ends the subscriptions that ran out, each with a final NOTIFY.
    pub fn handle_timeout(&mut self, endpoint: &mut SipEndpoint, lines: &LineStates, now: Instant) {
        while let Some(id) = self.subscriptions.poll_expired(now) {
            let watcher = self.watchers.get(&id);
            let view = watcher.map_or(LineView::Idle(None), |w| lines.view(&w.extension));
            let document = match watcher {
                Some(w) if w.package == MESSAGE_SUMMARY_EVENT => self
                    .mailboxes
                    .get(&w.extension)
                    .copied()
                    .map(Document::Mailbox),
                _ => Some(Document::Line(&view)),
            };
            tracing::info!(subscription = %id, "subscription expired");
            self.end(id, TerminationReason::Timeout, document, endpoint, now);
        }
        self.publish_gauge();
    }

    #[allow(clippy::too_many_arguments)] // the request, the registrar's challenge, and where
    fn challenge(
        &self,
        key: &TransactionKey,
        request: &rsip::Request,
        registrar: &RegistrarService,
        stale: bool,
        wrong_answer_to: Option<&str>,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) {
        let mut response = reply(request, 407);
        let domain = store::DEFAULT_DOMAIN;
        for challenge in registrar.proxy_challenges(domain, stale, wrong_answer_to) {
            msg::add_header(&mut response.headers, "Proxy-Authenticate", challenge);
        }
        endpoint.respond_to(key, response, now);
    }

    /// The body of subscription `id`'s next NOTIFY: `document` as its package writes it.
    fn body(
        &mut self,
        id: SubscriptionId,
        watcher: &Watcher,
        document: Document<'_>,
    ) -> (String, Vec<u8>) {
        match document {
            Document::Line(view) => {
                let version = self.subscriptions.next_version(id).unwrap_or_default();
                let body = dialog_info(&watcher.entity, version, view);
                (DIALOG_INFO.to_string(), body.into_bytes())
            }
            Document::Mailbox(counts) => {
                let body = crate::voicemail::message_summary(&watcher.entity, counts);
                (SIMPLE_MESSAGE_SUMMARY.to_string(), body.into_bytes())
            }
        }
    }

    /// Sends subscription `id` a NOTIFY with `document`.
    fn send(
        &mut self,
        id: SubscriptionId,
        document: Document<'_>,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) {
        let Some(watcher) = self.watchers.get(&id).cloned() else {
            return;
        };
        let body = self.body(id, &watcher, document);
        let via = endpoint.via_address_towards(watcher.peer);
        let Some(notify) = self.subscriptions.notify(id, via, Some(body), now) else {
            return;
        };
        tracing::debug!(subscription = %id, watched = %watcher.extension, package = watcher.package, "NOTIFY");
        if let Some(key) = endpoint.send_own_request(notify, watcher.peer, now) {
            self.in_flight.insert(key, id);
        }
    }

    /// Ends subscription `id` with a final NOTIFY (`terminated`) carrying `document`, or
    /// no body when there is none to tell (a mailbox never read).
    fn end(
        &mut self,
        id: SubscriptionId,
        reason: TerminationReason,
        document: Option<Document<'_>>,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) {
        let Some(watcher) = self.watchers.remove(&id) else {
            self.subscriptions.remove(id);
            return;
        };
        let body = document.map(|document| self.body(id, &watcher, document));
        let via = endpoint.via_address_towards(watcher.peer);
        let Some(notify) = self.subscriptions.terminate(id, reason, via, body) else {
            return;
        };
        // Nobody waits for its answer: the subscription is gone whatever the phone says.
        let _ = endpoint.send_own_request(notify, watcher.peer, now);
    }

    fn publish_gauge(&self) {
        crate::telemetry::set(crate::telemetry::SUBSCRIPTIONS, self.subscriptions.len());
    }
}

fn reply(request: &rsip::Request, status: u16) -> rsip::Response {
    msg::response_to(request, status, None, Some(&sip::transaction::new_tag()))
}

/// Whether the SUBSCRIBE takes `document_type`: it says so in Accept, or has no Accept
/// (RFC 6665 §8.1.3: then the package's default type, which for both of ours is theirs).
fn accepts(request: &rsip::Request, document_type: &str) -> bool {
    let accepts = msg::header_values(request, "Accept");
    accepts.is_empty()
        || accepts.iter().flat_map(|v| v.split(',')).any(|t| {
            let t = t.split(';').next().unwrap_or_default().trim();
            t.eq_ignore_ascii_case(document_type)
                || t == "*/*"
                || t.eq_ignore_ascii_case("application/*")
        })
}

/// The full dialog-info document (RFC 4235 §4) of a line for `entity`: the call it shows,
/// or none when idle (the last call as `terminated`, so a lamp that saw it ring goes out).
pub fn dialog_info(entity: &str, version: u32, view: &LineView) -> String {
    let mut doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" state=\"full\" entity=\"{}\">\n",
        xml_escape(entity)
    );
    let (call, state) = match view {
        LineView::Idle(None) => (None, ""),
        LineView::Idle(Some(call)) => (Some(call), "terminated"),
        LineView::InCall(call) => (
            Some(call),
            match call.state {
                CallState::Ringing => "early",
                CallState::Confirmed => "confirmed",
            },
        ),
    };
    if let Some(call) = call {
        doc.push_str(&dialog_element(entity, call, state));
    }
    doc.push_str("</dialog-info>\n");
    doc
}

fn dialog_element(entity: &str, call: &LineCall, state: &str) -> String {
    let direction = match call.direction {
        Direction::Initiator => "initiator",
        Direction::Recipient => "recipient",
    };
    // The peer's identity in the entity's domain: phones show it on the lamp's display.
    let domain = entity.split('@').nth(1).unwrap_or_default();
    let remote = format!("sip:{}@{domain}", call.peer);
    format!(
        "  <dialog id=\"{id}\" call-id=\"{id}\" direction=\"{direction}\">\n    <state>{state}</state>\n    <local><identity>{local}</identity></local>\n    <remote><identity>{remote}</identity></remote>\n  </dialog>\n",
        id = xml_escape(&call.call_id),
        local = xml_escape(entity),
        remote = xml_escape(&remote),
    )
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::LegId;

    fn call(state: CallState) -> LineCall {
        LineCall {
            leg: LegId::new(2),
            caller_leg: Some(LegId::new(1)),
            call_id: "abc<1>".into(),
            peer: "101".into(),
            state,
            direction: Direction::Recipient,
        }
    }

    #[test]
    fn an_idle_line_without_calls_is_an_empty_full_document() {
        let doc = dialog_info("sip:102@example.org", 0, &LineView::Idle(None));
        assert!(doc.contains("version=\"0\" state=\"full\" entity=\"sip:102@example.org\""));
        assert!(!doc.contains("<dialog "));
    }

    #[test]
    fn a_ringing_line_is_an_early_dialog_with_the_call_escaped() {
        let view = LineView::InCall(call(CallState::Ringing));
        let doc = dialog_info("sip:102@example.org", 3, &view);
        assert!(doc.contains("version=\"3\""));
        assert!(doc.contains(
            "<dialog id=\"abc&lt;1&gt;\" call-id=\"abc&lt;1&gt;\" direction=\"recipient\">"
        ));
        assert!(doc.contains("<state>early</state>"));
        assert!(doc.contains("<remote><identity>sip:101@example.org</identity></remote>"));
    }

    #[test]
    fn busy_is_confirmed_and_idle_after_a_call_is_terminated() {
        let busy = dialog_info(
            "sip:102@h",
            1,
            &LineView::InCall(call(CallState::Confirmed)),
        );
        assert!(busy.contains("<state>confirmed</state>"));
        let idle = dialog_info(
            "sip:102@h",
            2,
            &LineView::Idle(Some(call(CallState::Confirmed))),
        );
        assert!(idle.contains("<state>terminated</state>"));
    }

    fn subscribe_with_accept(accept: Option<&str>) -> rsip::Request {
        let accept = accept
            .map(|a| format!("Accept: {a}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "SUBSCRIBE sip:102@h SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKx\r\n\
             From: <sip:103@h>;tag=a\r\nTo: <sip:102@h>\r\nCall-ID: c\r\nCSeq: 1 SUBSCRIBE\r\n\
             Contact: <sip:103@192.0.2.7>\r\nEvent: dialog\r\n{accept}Content-Length: 0\r\n\r\n"
        );
        match msg::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("did not parse: {other:?}"),
        }
    }

    #[test]
    fn a_document_type_is_accepted_when_named_or_when_no_accept_is_given() {
        assert!(accepts(&subscribe_with_accept(None), DIALOG_INFO));
        assert!(accepts(
            &subscribe_with_accept(Some("application/dialog-info+xml")),
            DIALOG_INFO
        ));
        assert!(!accepts(
            &subscribe_with_accept(Some("application/pidf+xml")),
            DIALOG_INFO
        ));
        assert!(accepts(
            &subscribe_with_accept(Some("application/simple-message-summary")),
            SIMPLE_MESSAGE_SUMMARY
        ));
        assert!(!accepts(
            &subscribe_with_accept(Some("application/dialog-info+xml")),
            SIMPLE_MESSAGE_SUMMARY
        ));
    }
}
