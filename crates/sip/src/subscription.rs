//! RFC 6665 subscriptions, notifier side: accepting SUBSCRIBE, negotiating Expires between a
//! minimum and a maximum, refreshes, un-SUBSCRIBE (`Expires: 0`), expiry, and NOTIFY requests
//! in the subscription's dialog (CSeq advancing, `Subscription-State` active or terminated).
//!
//! Bounded: a [`Subscriptions`] table holds at most so many subscriptions per subscriber and
//! in all. It knows no event package: the body of each NOTIFY (dialog-info, message-summary)
//! comes from the caller, which also decides who may subscribe to what. Time is passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::Method;

use crate::dialog::{Dialog, DialogError, DialogId, dialog_id_of_request};
use crate::message;
use crate::transaction::TransportKind;

/// Limits of a subscription table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionLimits {
    /// Shortest subscription we grant (seconds); a shorter non-zero one gets 423 with
    /// Min-Expires (RFC 6665 §4.2.1.1).
    pub min_expires: u32,
    /// Longest we grant: longer requests are shortened to it (§4.2.1.1 lets the notifier
    /// shorten, never lengthen).
    pub max_expires: u32,
    /// Granted when the SUBSCRIBE has no Expires (each event package names its default;
    /// RFC 4235 §4.1 says 3600 for `dialog`).
    pub default_expires: u32,
    /// Subscriptions one subscriber may hold at once.
    pub per_subscriber: usize,
    /// Subscriptions at once in all.
    pub total: usize,
}

impl Default for SubscriptionLimits {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            per_subscriber: 50,
            total: 5000,
        }
    }
}

/// Why a SUBSCRIBE is refused, with the response it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeRefusal {
    /// The requested Expires is shorter than our minimum: 423 with `Min-Expires`.
    #[error("subscription interval {requested} s below the minimum {min_expires} s")]
    IntervalTooBrief {
        /// What the subscriber asked for.
        requested: u32,
        /// Our minimum, for Min-Expires.
        min_expires: u32,
    },
    /// The subscriber holds as many subscriptions as it may: 503 with Retry-After.
    #[error("subscriber holds {0} subscriptions, the most allowed")]
    SubscriberLimit(usize),
    /// The table is full: 503 with Retry-After.
    #[error("{0} subscriptions in all, the most allowed")]
    TotalLimit(usize),
    /// A refresh for a subscription we do not have (expired, or never ours): 481.
    #[error("no such subscription")]
    NoSubscription,
    /// A refresh from someone else than the subscriber, or to another resource or event: 403.
    #[error("refresh does not match the subscription")]
    Mismatch,
    /// The request cannot make a dialog (no Contact, no From tag...): 400.
    #[error("unusable SUBSCRIBE: {0}")]
    Malformed(#[from] DialogError),
}

impl SubscribeRefusal {
    /// The SIP status code this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            SubscribeRefusal::IntervalTooBrief { .. } => 423,
            SubscribeRefusal::SubscriberLimit(_) | SubscribeRefusal::TotalLimit(_) => 503,
            SubscribeRefusal::NoSubscription => 481,
            SubscribeRefusal::Mismatch => 403,
            SubscribeRefusal::Malformed(DialogError::CSeqOutOfOrder { .. }) => 500,
            SubscribeRefusal::Malformed(_) => 400,
        }
    }
}

/// Identifies a subscription in a [`Subscriptions`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sub-{}", self.0)
    }
}

/// Why a subscription ends (the `reason` of `Subscription-State: terminated`, RFC 6665
/// §4.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationReason {
    /// It was not refreshed in time, or the subscriber asked to end it (`Expires: 0`).
    Timeout,
    /// The resource is gone (the watched user was deleted).
    NoResource,
    /// We end it (shutdown, the subscriber's rights changed).
    Deactivated,
}

impl TerminationReason {
    fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Timeout => "timeout",
            TerminationReason::NoResource => "noresource",
            TerminationReason::Deactivated => "deactivated",
        }
    }
}

/// A SUBSCRIBE the table took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The subscription.
    pub id: SubscriptionId,
    /// Granted duration in seconds (the 200's Expires); 0 means the subscriber ended it and
    /// a final NOTIFY ([`Subscriptions::terminate`]) is due.
    pub expires: u32,
    /// Our To tag, for the 200 OK.
    pub local_tag: String,
    /// A new subscription (not a refresh).
    pub created: bool,
}

/// One subscription: its dialog, what it watches, when it runs out.
#[derive(Debug, Clone)]
pub struct Subscription {
    dialog: Dialog,
    /// The subscriber (the authenticated user).
    subscriber: String,
    /// The watched resource (the Request-URI's user part).
    resource: String,
    /// The event package (`Event` header without parameters).
    event: String,
    /// Where NOTIFYs go (the flow the SUBSCRIBE came on, for phones behind NAT).
    flow: SocketAddr,
    transport: TransportKind,
    expires_at: Instant,
    /// Body version counter for packages that number their documents (RFC 4235 §4.1).
    version: u32,
}

impl Subscription {
    /// Who subscribed.
    pub fn subscriber(&self) -> &str {
        &self.subscriber
    }

    /// What it watches.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The event package.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// Where its NOTIFYs go, and over what.
    pub fn flow(&self) -> (SocketAddr, TransportKind) {
        (self.flow, self.transport)
    }

    /// Seconds left at `now` (rounded up, so an active subscription never says 0).
    pub fn remaining(&self, now: Instant) -> u32 {
        let left = self.expires_at.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// The SIP dialog of the subscription.
    pub fn dialog_id(&self) -> &DialogId {
        self.dialog.id()
    }
}

/// The event package named by an `Event` header value (`dialog;id=1` → `dialog`).
pub fn event_package(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The Expires a SUBSCRIBE asks for: its `Expires` header, `None` when absent or unreadable.
pub fn requested_expires(request: &rsip::Request) -> Option<u32> {
    message::header_value(request, "Expires").and_then(|v| v.trim().parse().ok())
}

/// A bounded table of subscriptions (see the module documentation).
#[derive(Debug)]
pub struct Subscriptions {
    limits: SubscriptionLimits,
    by_id: HashMap<SubscriptionId, Subscription>,
    by_dialog: HashMap<DialogId, SubscriptionId>,
    per_subscriber: HashMap<String, usize>,
    /// Expiry deadlines; stale entries (refreshed or removed) are skipped when they come up.
    deadlines: BinaryHeap<Reverse<(Instant, SubscriptionId)>>,
    next_id: u64,
}

impl Subscriptions {
    /// An empty table with these limits.
    pub fn new(limits: SubscriptionLimits) -> Self {
        Self {
            limits,
            by_id: HashMap::new(),
            by_dialog: HashMap::new(),
            per_subscriber: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_id: 1,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> SubscriptionLimits {
        self.limits
    }

    /// Subscriptions held now.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Subscriptions `subscriber` holds.
    pub fn count_of(&self, subscriber: &str) -> usize {
        self.per_subscriber.get(subscriber).copied().unwrap_or(0)
    }

    /// A subscription by id.
    pub fn get(&self, id: SubscriptionId) -> Option<&Subscription> {
        self.by_id.get(&id)
    }

    /// The subscriptions to `event` of `resource`, in the order they were made.
    pub fn watching(&self, resource: &str, event: &str) -> Vec<SubscriptionId> {
        let mut ids: Vec<SubscriptionId> = self
            .by_id
            .iter()
            .filter(|(_, s)| s.resource == resource && s.event == event)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// The Expires granted for `requested` (absent: the default), or 423's refusal. Zero
    /// stays zero: it ends (or, new, fetches once) a subscription (RFC 6665 §4.2.1.1).
    pub fn grant(&self, requested: Option<u32>) -> Result<u32, SubscribeRefusal> {
        let limits = self.limits;
        match requested {
            None => Ok(limits
                .default_expires
                .clamp(limits.min_expires, limits.max_expires)),
            Some(0) => Ok(0),
            Some(secs) if secs < limits.min_expires => Err(SubscribeRefusal::IntervalTooBrief {
                requested: secs,
                min_expires: limits.min_expires,
            }),
            Some(secs) => Ok(secs.min(limits.max_expires)),
        }
    }

    /// Takes a SUBSCRIBE from `subscriber` (already authenticated) for `event` of
    /// `resource`, which came over `flow`: a new subscription when it has no To tag, else a
    /// refresh (or, with Expires 0, the end) of the one its dialog names. `local_contact` is
    /// our Contact for the dialog.
    #[allow(clippy::too_many_arguments)] // the request, who and what it is about, and where
    pub fn subscribe(
        &mut self,
        request: &rsip::Request,
        subscriber: &str,
        resource: &str,
        event: &str,
        flow: (SocketAddr, TransportKind),
        local_contact: rsip::Uri,
        now: Instant,
    ) -> Result<Accepted, SubscribeRefusal> {
        let expires = self.grant(requested_expires(request))?;
        if let Some(dialog_id) = dialog_id_of_request(request) {
            return self.refresh(
                &dialog_id, request, subscriber, resource, event, flow, expires, now,
            );
        }
        if self.by_id.len() >= self.limits.total {
            return Err(SubscribeRefusal::TotalLimit(self.by_id.len()));
        }
        let held = self.count_of(subscriber);
        if held >= self.limits.per_subscriber {
            return Err(SubscribeRefusal::SubscriberLimit(held));
        }
        let local_tag = crate::transaction::new_tag();
        let dialog = Dialog::new_uas(request, &local_tag, local_contact)?;
        let id = SubscriptionId(self.next_id);
        self.next_id += 1;
        let expires_at = now + Duration::from_secs(u64::from(expires));
        self.by_dialog.insert(dialog.id().clone(), id);
        self.by_id.insert(
            id,
            Subscription {
                dialog,
                subscriber: subscriber.to_string(),
                resource: resource.to_string(),
                event: event.to_string(),
                flow: flow.0,
                transport: flow.1,
                expires_at,
                version: 0,
            },
        );
        *self
            .per_subscriber
            .entry(subscriber.to_string())
            .or_default() += 1;
        self.deadlines.push(Reverse((expires_at, id)));
        Ok(Accepted {
            id,
            expires,
            local_tag,
            created: true,
        })
    }

    #[allow(clippy::too_many_arguments)] // as `subscribe`
    fn refresh(
        &mut self,
        dialog_id: &DialogId,
        request: &rsip::Request,
        subscriber: &str,
        resource: &str,
        event: &str,
        flow: (SocketAddr, TransportKind),
        expires: u32,
        now: Instant,
    ) -> Result<Accepted, SubscribeRefusal> {
        let id = *self
            .by_dialog
            .get(dialog_id)
            .ok_or(SubscribeRefusal::NoSubscription)?;
        let sub = self
            .by_id
            .get_mut(&id)
            .ok_or(SubscribeRefusal::NoSubscription)?;
        // The dialog's resource is fixed: a refresh from another user, or for another event
        // or resource, is not this subscription's (RFC 6665 §4.1.2.1).
        if sub.subscriber != subscriber || sub.event != event || sub.resource != resource {
            return Err(SubscribeRefusal::Mismatch);
        }
        sub.dialog.on_request(request)?;
        sub.flow = flow.0;
        sub.transport = flow.1;
        sub.expires_at = now + Duration::from_secs(u64::from(expires));
        self.deadlines.push(Reverse((sub.expires_at, id)));
        Ok(Accepted {
            id,
            expires,
            local_tag: dialog_id.local_tag.clone(),
            created: false,
        })
    }

    /// A NOTIFY with `body` (content type and bytes) for the active subscription `id`, at
    /// `now`: `Subscription-State: active;expires=<seconds left>`, the next CSeq of its
    /// dialog. `via_sent_by` is our address as the Via names it. `None` if there is no such
    /// subscription.
    pub fn notify(
        &mut self,
        id: SubscriptionId,
        via_sent_by: SocketAddr,
        body: Option<(String, Vec<u8>)>,
        now: Instant,
    ) -> Option<rsip::Request> {
        let sub = self.by_id.get_mut(&id)?;
        let state = format!("active;expires={}", sub.remaining(now));
        Some(build_notify(sub, via_sent_by, &state, body))
    }

    /// The final NOTIFY (`terminated;reason=...`) of subscription `id`, which is forgotten.
    pub fn terminate(
        &mut self,
        id: SubscriptionId,
        reason: TerminationReason,
        via_sent_by: SocketAddr,
        body: Option<(String, Vec<u8>)>,
    ) -> Option<rsip::Request> {
        let mut sub = self.remove(id)?;
        let state = format!("terminated;reason={}", reason.as_str());
        Some(build_notify(&mut sub, via_sent_by, &state, body))
    }

    /// The next document version of subscription `id` (0, 1, 2... per NOTIFY, RFC 4235 §4.1).
    pub fn next_version(&mut self, id: SubscriptionId) -> Option<u32> {
        let sub = self.by_id.get_mut(&id)?;
        let version = sub.version;
        sub.version = sub.version.wrapping_add(1);
        Some(version)
    }

    /// Forgets subscription `id` without a NOTIFY (its subscriber answered one with 481 or
    /// not at all); the subscription, if it was there.
    pub fn remove(&mut self, id: SubscriptionId) -> Option<Subscription> {
        let sub = self.by_id.remove(&id)?;
        self.by_dialog.remove(sub.dialog.id());
        if let Some(count) = self.per_subscriber.get_mut(&sub.subscriber) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_subscriber.remove(&sub.subscriber);
            }
        }
        Some(sub)
    }

    /// When the next subscription runs out, if any is held.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    /// The next subscription that has run out at `now` (still in the table: end it with
    /// [`Subscriptions::terminate`]), skipping deadlines a refresh or removal made stale.
    pub fn poll_expired(&mut self, now: Instant) -> Option<SubscriptionId> {
        while let Some(Reverse((at, id))) = self.deadlines.peek().copied() {
            if at > now {
                return None;
            }
            self.deadlines.pop();
            match self.by_id.get(&id) {
                Some(sub) if sub.expires_at <= now => return Some(id),
                _ => continue,
            }
        }
        None
    }
}

fn build_notify(
    sub: &mut Subscription,
    via_sent_by: SocketAddr,
    state: &str,
    body: Option<(String, Vec<u8>)>,
) -> rsip::Request {
    let mut request = sub
        .dialog
        .new_request(Method::Notify, via_sent_by, sub.transport, body);
    message::add_header(&mut request.headers, "Event", sub.event.clone());
    message::add_header(
        &mut request.headers,
        "Subscription-State",
        state.to_string(),
    );
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: &str = "192.0.2.7:5062";

    fn subscribe(
        call_id: &str,
        to_tag: Option<&str>,
        cseq: u32,
        expires: Option<u32>,
    ) -> rsip::Request {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let expires = expires
            .map(|e| format!("Expires: {e}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "SUBSCRIBE sip:102@example.org SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK{cseq}{call_id}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:103@example.org>;tag=sub103\r\n\
             To: <sip:102@example.org>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} SUBSCRIBE\r\n\
             Contact: <sip:103@192.0.2.7:5062>\r\n\
             Event: dialog\r\n\
             Accept: application/dialog-info+xml\r\n\
             {expires}Content-Length: 0\r\n\r\n"
        );
        match message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("test SUBSCRIBE did not parse: {other:?}"),
        }
    }

    fn contact() -> rsip::Uri {
        message::parse_uri("sip:amtsleitung@192.0.2.1:5060").expect("our contact parses")
    }

    fn flow() -> (SocketAddr, TransportKind) {
        (FLOW.parse().expect("flow"), TransportKind::Udp)
    }

    fn ours() -> SocketAddr {
        "192.0.2.1:5060".parse().expect("ours")
    }

    fn take(
        table: &mut Subscriptions,
        request: &rsip::Request,
        subscriber: &str,
        now: Instant,
    ) -> Result<Accepted, SubscribeRefusal> {
        table.subscribe(request, subscriber, "102", "dialog", flow(), contact(), now)
    }

    fn header(request: &rsip::Request, name: &str) -> String {
        message::header_value(request, name).unwrap_or_default()
    }

    #[test]
    fn grants_the_default_clamps_long_requests_and_refuses_brief_ones_with_the_minimum() {
        let table = Subscriptions::new(SubscriptionLimits::default());
        assert_eq!(table.grant(None), Ok(3600));
        assert_eq!(table.grant(Some(7200)), Ok(3600));
        assert_eq!(table.grant(Some(600)), Ok(600));
        assert_eq!(table.grant(Some(60)), Ok(60));
        assert_eq!(table.grant(Some(0)), Ok(0));
        let refusal = table.grant(Some(30)).expect_err("too brief");
        assert_eq!(
            refusal,
            SubscribeRefusal::IntervalTooBrief {
                requested: 30,
                min_expires: 60
            }
        );
        assert_eq!(refusal.status(), 423);
    }

    #[test]
    fn a_new_subscription_notifies_active_with_the_time_left_and_cseq_advancing() {
        let now = Instant::now();
        let mut table = Subscriptions::new(SubscriptionLimits::default());
        let accepted =
            take(&mut table, &subscribe("c1", None, 1, Some(600)), "103", now).expect("accepted");
        assert!(accepted.created);
        assert_eq!(accepted.expires, 600);
        assert_eq!(table.len(), 1);
        assert_eq!(table.watching("102", "dialog"), vec![accepted.id]);
        assert!(table.watching("101", "dialog").is_empty());

        let first = table
            .notify(accepted.id, ours(), None, now + Duration::from_secs(100))
            .expect("notify");
        assert_eq!(first.method, Method::Notify);
        assert_eq!(first.uri.to_string(), "sip:103@192.0.2.7:5062");
        assert_eq!(header(&first, "Subscription-State"), "active;expires=500");
        assert_eq!(header(&first, "Event"), "dialog");
        assert_eq!(message::to_tag(&first).as_deref(), Some("sub103"));
        assert_eq!(message::from_tag(&first), Some(accepted.local_tag.clone()));
        assert_eq!(message::call_id(&first).as_deref(), Some("c1"));
        let second = table
            .notify(
                accepted.id,
                ours(),
                Some(("text/plain".into(), b"x".to_vec())),
                now,
            )
            .expect("notify");
        let (a, _) = message::cseq(&first).expect("cseq");
        let (b, _) = message::cseq(&second).expect("cseq");
        assert_eq!(b, a + 1);
        assert_eq!(second.body, b"x");
        assert_eq!(header(&second, "Content-Type"), "text/plain");
        assert_eq!(table.next_version(accepted.id), Some(0));
        assert_eq!(table.next_version(accepted.id), Some(1));
    }

    #[test]
    fn a_refresh_extends_the_subscription_and_an_old_deadline_does_not_end_it() {
        let now = Instant::now();
        let mut table = Subscriptions::new(SubscriptionLimits::default());
        let accepted =
            take(&mut table, &subscribe("c1", None, 1, Some(120)), "103", now).expect("accepted");
        let later = now + Duration::from_secs(100);
        let refresh = subscribe("c1", Some(&accepted.local_tag), 2, Some(300));
        let again = take(&mut table, &refresh, "103", later).expect("refreshed");
        assert!(!again.created);
        assert_eq!(again.id, accepted.id);
        assert_eq!(again.local_tag, accepted.local_tag);
        assert_eq!(table.len(), 1);
        assert_eq!(table.poll_expired(now + Duration::from_secs(121)), None);
        let notify = table
            .notify(accepted.id, ours(), None, now + Duration::from_secs(121))
            .expect("still active");
        assert_eq!(header(&notify, "Subscription-State"), "active;expires=279");
        assert_eq!(
            table.poll_expired(now + Duration::from_secs(400)),
            Some(accepted.id)
        );
    }

    #[test]
    fn an_expired_subscription_ends_with_a_final_notify_terminated_by_timeout_and_is_forgotten() {
        let now = Instant::now();
        let mut table = Subscriptions::new(SubscriptionLimits::default());
        let accepted =
            take(&mut table, &subscribe("c1", None, 1, Some(60)), "103", now).expect("accepted");
        assert_eq!(table.poll_timeout(), Some(now + Duration::from_secs(60)));
        assert_eq!(table.poll_expired(now + Duration::from_secs(59)), None);
        let at = now + Duration::from_secs(60);
        let id = table.poll_expired(at).expect("expired");
        assert_eq!(id, accepted.id);
        let last = table
            .terminate(id, TerminationReason::Timeout, ours(), None)
            .expect("final notify");
        assert_eq!(
            header(&last, "Subscription-State"),
            "terminated;reason=timeout"
        );
        assert!(table.is_empty());
        assert_eq!(table.count_of("103"), 0);
        assert_eq!(table.poll_expired(at), None);
        // A refresh that comes too late finds nothing: 481.
        let late = subscribe("c1", Some(&accepted.local_tag), 2, Some(60));
        let refusal = take(&mut table, &late, "103", at).expect_err("gone");
        assert_eq!(refusal.status(), 481);
    }

    #[test]
    fn unsubscribing_grants_zero_so_the_caller_sends_the_final_notify() {
        let now = Instant::now();
        let mut table = Subscriptions::new(SubscriptionLimits::default());
        let accepted =
            take(&mut table, &subscribe("c1", None, 1, None), "103", now).expect("accepted");
        let bye = subscribe("c1", Some(&accepted.local_tag), 2, Some(0));
        let ended = take(&mut table, &bye, "103", now).expect("unsubscribed");
        assert_eq!(ended.expires, 0);
        let last = table
            .terminate(ended.id, TerminationReason::Timeout, ours(), None)
            .expect("final notify");
        assert_eq!(
            header(&last, "Subscription-State"),
            "terminated;reason=timeout"
        );
        assert!(table.is_empty());
    }

    #[test]
    fn subscriptions_beyond_the_limits_are_refused_with_503() {
        let now = Instant::now();
        let limits = SubscriptionLimits {
            per_subscriber: 2,
            total: 3,
            ..SubscriptionLimits::default()
        };
        let mut table = Subscriptions::new(limits);
        for call in ["a", "b"] {
            take(&mut table, &subscribe(call, None, 1, None), "103", now).expect("within");
        }
        let refusal = take(&mut table, &subscribe("c", None, 1, None), "103", now)
            .expect_err("per subscriber");
        assert_eq!(refusal, SubscribeRefusal::SubscriberLimit(2));
        assert_eq!(refusal.status(), 503);
        take(&mut table, &subscribe("d", None, 1, None), "104", now).expect("other user");
        let refusal =
            take(&mut table, &subscribe("e", None, 1, None), "105", now).expect_err("total");
        assert_eq!(refusal, SubscribeRefusal::TotalLimit(3));
        // Ending one frees its place.
        let first = table.watching("102", "dialog")[0];
        assert!(table.remove(first).is_some());
        take(&mut table, &subscribe("f", None, 1, None), "103", now).expect("room again");
    }

    #[test]
    fn a_refresh_from_another_user_or_with_an_old_cseq_is_refused() {
        let now = Instant::now();
        let mut table = Subscriptions::new(SubscriptionLimits::default());
        let accepted =
            take(&mut table, &subscribe("c1", None, 5, None), "103", now).expect("accepted");
        let refresh = subscribe("c1", Some(&accepted.local_tag), 6, None);
        let refusal = take(&mut table, &refresh, "104", now).expect_err("not theirs");
        assert_eq!(refusal.status(), 403);
        let stale = subscribe("c1", Some(&accepted.local_tag), 4, None);
        let refusal = take(&mut table, &stale, "103", now).expect_err("old cseq");
        assert_eq!(refusal.status(), 500);
    }

    #[test]
    fn the_event_package_is_the_header_without_parameters() {
        assert_eq!(event_package("Dialog;id=7"), "dialog");
        assert_eq!(event_package(" message-summary "), "message-summary");
    }
}
