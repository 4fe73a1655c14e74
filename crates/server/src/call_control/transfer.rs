//! Blind transfer (REFER, RFC 3515) of a connected call by either party: the other one (the
//! transferee) hears music on hold while the target rings, is connected with the target
//! when it answers, and the transferor's leg ends. The target is routed through the dialplan
//! as a call from the transferor, with the transferor's rights (call classes, cost guard).
//! A transfer that fails (busy, declined, no answer in [`TRANSFER_RING`]) gives the call back
//! to the transferor: connected again while its leg is up, else its phones are rung again;
//! the transferee never sits in silence. When the caller transfers, its call goes on without
//! its leg (headless) between the two placed legs; if the transfer fails after the caller
//! left, the call ends (there is no leg to ring it back from).

use std::time::{Duration, Instant};

use sip::refer::ReferTo;

use super::{CallControl, Diversion};
use crate::call::CallerId;
use crate::call::{CalleeEvent, Input, Reply};
use crate::ids::LegId;
use crate::media_worker::{MediaCommand, MediaMode};
use crate::registrar::RegistrarService;
use crate::sip_endpoint::SipEndpoint;
use crate::trunk_service::CallerProfile;

/// How long the transfer target rings before the call goes back to the transferor.
pub(super) const TRANSFER_RING: Duration = Duration::from_secs(30);

/// A blind transfer under way in the call of a caller's leg.
pub(super) struct Transfer {
    /// The leg whose phone sent the REFER.
    transferor: LegId,
    /// The leg of the party transferred: the caller's, or the callee's when the caller
    /// transfers.
    transferee: LegId,
    /// The caller transfers (the REFER came on the caller's own leg): once it is gone the
    /// call goes on headless, between the transferee and the target, both placed legs.
    by_caller: bool,
    /// That leg is still up (its phone may hang up as soon as the REFER is accepted).
    transferor_up: bool,
    /// The transferor's extension, to ring it again when the transfer fails after it left.
    transferor_extension: Option<String>,
    /// The number transferred to, for the log and the call record.
    target: String,
    /// Legs ringing for it.
    ringing: Vec<LegId>,
    /// Until when they ring.
    until: Instant,
    /// These legs ring the transferor back (the transfer failed after it hung up).
    calling_back: bool,
    /// The most telling refusal among the legs that ended (a busy beats no answer).
    status: u16,
}

/// The reason phrase a NOTIFY's status line carries for a referred call's final status.
pub(super) fn phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        491 => "Request Pending",
        501 => "Not Implemented",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Service Unavailable",
    }
}

/// The final status a refusal of the placed call stands for in the NOTIFY (RFC 3515 §2.4.5).
fn refusal_status(reply: &Reply) -> u16 {
    match reply {
        Reply::Barred | Reply::UserLimit | Reply::OverBudget(_) => 403,
        Reply::LinesBusy => 503,
        _ => 404,
    }
}

impl CallControl {
    /// The phone of `leg` asked (REFER, accepted with 202) to transfer its call's other party
    /// to `refer_to`.
    pub(super) fn on_refer(
        &mut self,
        leg: LegId,
        refer_to: ReferTo,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        if let Some(replaces) = refer_to.replaces.as_ref() {
            return self.on_attended_refer(leg, replaces, endpoint, registrar, now);
        }
        let Some((parent, other)) = self.call_of(leg) else {
            endpoint.notify_refer(leg, 481, "Call/Transaction Does Not Exist", now);
            return;
        };
        let span = self.span_of(parent);
        let _entered = span.enter();
        let refuse = |endpoint: &mut SipEndpoint, status: u16, why: &str| {
            tracing::info!(leg = %leg, target = %refer_to.uri, status, "transfer refused: {why}");
            endpoint.notify_refer(leg, status, phrase(status), now);
        };
        let by_caller = leg == parent;
        let transferee = match other {
            Some(other) if by_caller => other,
            Some(other) if other == parent => parent,
            _ => return refuse(endpoint, 481, "the leg is not in a connected call"),
        };
        if self.transfers.contains_key(&parent) {
            return refuse(endpoint, 491, "a transfer of this call is under way");
        }
        let Some(number) = refer_to.user.clone() else {
            return refuse(endpoint, 404, "Refer-To names no number");
        };
        let placed = self.outbound.get(&leg).map(|o| o.placed.clone());
        // Rung again when the transfer fails after the transferor hung up; a caller that
        // transferred is not (its call has no leg left to ring it from).
        let transferor_extension = placed.as_ref().and_then(|p| p.extension.clone());
        // Who transfers: the caller itself, one of our users with their own rights, or a
        // party outside, whose number is the user part of the URI we called.
        let caller_identity = self
            .legs
            .get(&parent)
            .filter(|_| by_caller)
            .map(|l| (l.caller.clone(), l.caller_name.clone(), l.profile.clone()));
        // A transfer stays in the domain of the call it transfers.
        let tenant = self
            .legs
            .get(&parent)
            .map_or_else(|| store::DEFAULT_DOMAIN.to_owned(), |l| l.tenant.clone());
        let identity = caller_identity.unwrap_or_else(|| {
            transferor_extension
                .as_deref()
                .and_then(|ext| {
                    registrar
                        .caller_profile(&tenant, ext)
                        .map(|p| (ext.to_string(), registrar.display_name(&tenant, ext), p))
                })
                .unwrap_or_else(|| {
                    let number = placed
                        .as_ref()
                        .and_then(|p| sip::message::parse_uri(&p.target))
                        .and_then(|u| u.auth.map(|a| a.user))
                        .unwrap_or_else(|| "anonymous".into());
                    (number, None, CallerProfile::not_a_user())
                })
        });
        let Some(target) =
            self.transfer_target(&tenant, &number, &identity.0, identity.2.user.is_some())
        else {
            return refuse(
                endpoint,
                404,
                "no dialplan rule dials the number for the transferor",
            );
        };
        endpoint.notify_refer(leg, 100, "Trying", now);
        tracing::info!(transferor = %leg, %transferee, by_caller, %number, %target, "blind transfer: ringing the target; the transferee hears music on hold");
        self.set_apart(transferee, true);
        self.set_apart(leg, false);
        let reply = self.dial_as(parent, identity, &target, endpoint, registrar, now);
        let mut transfer = Transfer {
            transferor: leg,
            transferee,
            by_caller,
            transferor_up: true,
            transferor_extension,
            target: number,
            ringing: Vec::new(),
            until: now + TRANSFER_RING,
            calling_back: false,
            status: 0,
        };
        match reply {
            Reply::Placed { legs, .. } if !legs.is_empty() => {
                transfer.ringing = legs;
                self.transfers.insert(parent, transfer);
            }
            refusal => {
                let status = refusal_status(&refusal);
                self.transfer_failed(parent, transfer, status, endpoint, registrar, now);
            }
        }
    }

    /// What the dialplan rings for `number` dialled by `from`: the first `dial` or `forward`
    /// of its route. A rule that is not public is taken only for one of our users.
    fn transfer_target(
        &self,
        tenant: &str,
        number: &str,
        from: &str,
        identified: bool,
    ) -> Option<dialplan::DialTarget> {
        let plan = self.shared.plan_of(tenant).current();
        let facts = dialplan::CallFacts {
            to: number.to_string(),
            from: Some(from.to_string()),
            trunk: None,
            source_ip: None,
            at: jiff::Timestamp::now(),
        };
        let route = plan.route(&facts)?;
        if !route.public && !identified {
            return None;
        }
        if !crate::tenants::is_default(tenant) && crate::tenants::refusal(&route.actions).is_some()
        {
            return None;
        }
        route.actions.iter().find_map(|action| match action {
            dialplan::Action::Dial { target, .. } | dialplan::Action::Forward { target } => {
                Some(target.clone())
            }
            _ => None,
        })
    }

    /// Places the call to `target` from the transferee's leg `parent` (its media, its codec
    /// first), but as the transferor: its number is shown, and its call classes and cost
    /// limits apply, as if it had dialled the target itself.
    fn dial_as(
        &mut self,
        parent: LegId,
        (number, name, profile): (String, Option<String>, CallerProfile),
        target: &dialplan::DialTarget,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) -> Reply {
        let Some(l) = self.legs.get_mut(&parent) else {
            return Reply::Placed {
                legs: Vec::new(),
                unplaced: 0,
                fax: false,
            };
        };
        let saved = (
            std::mem::replace(&mut l.caller, number),
            std::mem::replace(&mut l.caller_name, name),
            std::mem::replace(&mut l.profile, profile),
        );
        let reply = self.dial(
            parent,
            target,
            Diversion::None,
            false,
            &CallerId::default(),
            endpoint,
            registrar,
            now,
        );
        if let Some(l) = self.legs.get_mut(&parent) {
            (l.caller, l.caller_name, l.profile) = saved;
        }
        reply
    }

    /// Whether `child` is a leg a transfer in `parent`'s call waits on; if so, it answered:
    /// the caller is connected with it, the transferor hears the result and is hung up.
    pub(super) fn transfer_answered(
        &mut self,
        parent: LegId,
        child: LegId,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) -> bool {
        if !self
            .transfers
            .get(&parent)
            .is_some_and(|t| t.ringing.contains(&child))
        {
            return false;
        }
        let Some(transfer) = self.transfers.remove(&parent) else {
            return false;
        };
        for other in transfer.ringing.iter().filter(|l| **l != child) {
            endpoint.hangup(*other, "answered elsewhere", now);
        }
        if transfer.by_caller {
            self.join_for_caller(parent, &transfer, child, endpoint, now);
            return true;
        }
        if let Some(caller) = self.legs.get_mut(&parent) {
            let _entered = caller.span.clone().entered();
            if let Some(connected) = caller.connected.as_mut() {
                connected.end("transferred");
            }
            let note = format!(
                "transferred by {} to {}",
                caller
                    .connected
                    .as_ref()
                    .and_then(|c| c.placed.extension.clone())
                    .unwrap_or_else(|| "the called party".into()),
                transfer.target
            );
            tracing::info!(transferor = %transfer.transferor, to = %child, target = %transfer.target, calling_back = transfer.calling_back, "blind transfer: answered; {note}");
            caller.features.push(note);
        }
        self.connect(parent, child, endpoint, now);
        if transfer.transferor_up {
            endpoint.notify_refer(transfer.transferor, 200, "OK", now);
            // Its phone usually hangs up on the final NOTIFY; it has no part in the call
            // any more, so it is hung up here in any case.
            endpoint.hangup(transfer.transferor, "transferred", now);
        }
        let input = Input::Callee(CalleeEvent::Transferred {
            old: transfer.transferor,
            new: child,
        });
        self.feed(parent, input, endpoint, registrar, now);
        true
    }

    /// Whether the end of `child` belongs to a transfer in `parent`'s call (a target leg, or
    /// the transferor while the target rings), taken care of here: the call is not told.
    pub(super) fn transfer_leg_ended(
        &mut self,
        parent: LegId,
        child: LegId,
        status: u16,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) -> bool {
        let Some(transfer) = self.transfers.get_mut(&parent) else {
            return false;
        };
        if child == transfer.transferor {
            tracing::info!(transferor = %child, "the transferor hung up while the transfer target rings");
            transfer.transferor_up = false;
            return true;
        }
        let Some(at) = transfer.ringing.iter().position(|l| *l == child) else {
            return false;
        };
        transfer.ringing.remove(at);
        // A refusal says more than silence (0) or a timeout.
        if transfer.status == 0 || transfer.status == 408 {
            transfer.status = status;
        }
        if transfer.ringing.is_empty()
            && let Some(transfer) = self.transfers.remove(&parent)
        {
            let status = match transfer.status {
                0 => 408,
                status => status,
            };
            self.transfer_failed(parent, transfer, status, endpoint, registrar, now);
        }
        true
    }

    /// Transfers whose target rang too long: given up with 408.
    pub(super) fn transfer_timeouts(
        &mut self,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        let due: Vec<LegId> = self
            .transfers
            .iter()
            .filter(|(_, t)| t.until <= now)
            .map(|(parent, _)| *parent)
            .collect();
        for parent in due {
            if let Some(transfer) = self.transfers.remove(&parent) {
                for leg in &transfer.ringing {
                    endpoint.hangup(*leg, "no answer in time", now);
                }
                self.transfer_failed(parent, transfer, 408, endpoint, registrar, now);
            }
        }
    }

    /// When the next transfer target's ring time ends.
    pub(super) fn transfer_deadline(&self) -> Option<Instant> {
        self.transfers.values().map(|t| t.until).min()
    }

    /// The transfer did not reach its target (`status`): the call goes back to the
    /// transferor, connected again while its leg is up, else its phones ring again; when
    /// that fails too, the call ends.
    fn transfer_failed(
        &mut self,
        parent: LegId,
        transfer: Transfer,
        status: u16,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        let span = self.span_of(parent);
        let _entered = span.enter();
        if transfer.transferor_up {
            tracing::info!(target = %transfer.target, status, "blind transfer failed: the call goes back to the transferor");
            endpoint.notify_refer(transfer.transferor, status, phrase(status), now);
            self.follow_hold(parent, transfer.transferor, transfer.transferee);
            return;
        }
        if transfer.by_caller {
            tracing::info!(target = %transfer.target, status, "blind transfer by the caller failed after it hung up; the call ends");
            endpoint.hangup(transfer.transferee, "transfer failed", now);
            return;
        }
        let extension = transfer
            .transferor_extension
            .clone()
            .filter(|_| !transfer.calling_back);
        let Some(extension) = extension else {
            tracing::info!(target = %transfer.target, status, "blind transfer failed and the transferor cannot be rung again; the call ends");
            endpoint.hangup(parent, "transfer failed", now);
            return;
        };
        tracing::info!(target = %transfer.target, status, %extension, "blind transfer failed after the transferor hung up: ringing the transferor again");
        let reply = self.dial(
            parent,
            &dialplan::DialTarget::User(extension),
            Diversion::None,
            false,
            &CallerId::default(),
            endpoint,
            registrar,
            now,
        );
        match reply {
            Reply::Placed { legs, .. } if !legs.is_empty() => {
                let callback = Transfer {
                    ringing: legs,
                    until: now + TRANSFER_RING,
                    calling_back: true,
                    status: 0,
                    ..transfer
                };
                self.transfers.insert(parent, callback);
            }
            _ => {
                tracing::info!("the transferor has no phone to ring; the call ends");
                endpoint.hangup(parent, "transfer failed", now);
            }
        }
    }

    /// The target `child` of a blind transfer by the caller answered: it is connected with
    /// the transferee, both placed legs of the call, which goes on without the caller (its
    /// leg is hung up after the final NOTIFY).
    fn join_for_caller(
        &mut self,
        parent: LegId,
        transfer: &Transfer,
        child: LegId,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) {
        let Some((_, codec)) = self.start_placed_media(child) else {
            return;
        };
        if let Some(caller) = self.legs.get_mut(&parent) {
            let _entered = caller.span.clone().entered();
            let note = format!(
                "transferred by the caller {} to {}",
                caller.caller, transfer.target
            );
            tracing::info!(transferor = %transfer.transferor, transferee = %transfer.transferee, to = %child, ?codec, "blind transfer: answered; {note}");
            caller.features.push(note);
            caller.joined = Some([transfer.transferee, child]);
            caller.headless = true;
        }
        self.follow_hold(parent, transfer.transferee, child);
        self.start_pricing(parent, child, now);
        if transfer.transferor_up {
            endpoint.notify_refer(transfer.transferor, 200, "OK", now);
            endpoint.hangup(transfer.transferor, "transferred", now);
        }
    }

    /// Whether the end of the caller's leg `leg` leaves its call going on: it transferred
    /// the call (done, or its target still rings). Its media stops and the endpoint forgets
    /// it; the call's record waits for the call's end.
    pub(super) fn caller_left_transferred(
        &mut self,
        leg: LegId,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) -> bool {
        if self.legs.get(&leg).is_none_or(|l| l.finished) {
            // The call is over already (the transferee hung up while the target rang): it
            // ends as any call does, its transfer with it.
            return false;
        }
        let ringing = self
            .transfers
            .get_mut(&leg)
            .filter(|t| t.by_caller && t.transferor == leg);
        let ringing = match ringing {
            Some(transfer) => {
                transfer.transferor_up = false;
                true
            }
            None => false,
        };
        let Some(caller) = self.legs.get_mut(&leg) else {
            return false;
        };
        if !ringing && !caller.headless {
            return false;
        }
        caller.headless = true;
        let _entered = caller.span.clone().entered();
        tracing::info!(leg = %leg, "the caller's leg is gone; its transferred call goes on");
        self.shared.media.send(leg, MediaCommand::Stop(leg));
        endpoint.forget(leg, "transferred", now);
        true
    }

    /// Takes `leg` out of its call's connection: it hears music on hold, or nothing.
    pub(super) fn set_apart(&mut self, leg: LegId, music: bool) {
        let mode = match music.then(|| self.music_on_hold(leg)).flatten() {
            Some(player) => MediaMode::Music(player),
            None => MediaMode::Silence,
        };
        self.shared.media.send(leg, MediaCommand::Disconnect(leg));
        self.shared
            .media
            .send(leg, MediaCommand::SetMode(leg, mode));
    }
}
