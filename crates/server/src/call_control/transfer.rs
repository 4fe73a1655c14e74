//! Blind transfer (REFER, RFC 3515) of a connected call by the party we called: the caller
//! (the transferee) hears music on hold while the target rings, is connected with the target
//! when it answers, and the transferor's leg ends. The target is routed through the dialplan
//! as a call from the transferor, with the transferor's rights (call classes, cost guard).
//! A transfer that fails (busy, declined, no answer in [`TRANSFER_RING`]) gives the call back
//! to the transferor: connected again while its leg is up, else its phones are rung again;
//! the transferee never sits in silence.

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
fn phrase(status: u16) -> &'static str {
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
        let Some((parent, other)) = self.call_of(leg) else {
            endpoint.notify_refer(leg, 481, "Call/Transaction Does Not Exist", now);
            return;
        };
        let span = self
            .legs
            .get(&parent)
            .map_or_else(tracing::Span::none, |l| l.span.clone());
        let _entered = span.enter();
        let refuse = |endpoint: &mut SipEndpoint, status: u16, why: &str| {
            tracing::info!(leg = %leg, target = %refer_to.uri, status, "transfer refused: {why}");
            endpoint.notify_refer(leg, status, phrase(status), now);
        };
        if leg == parent || other != Some(parent) {
            // The caller's own leg carries the call's dialplan; handing its callee on to
            // someone else is not built yet.
            return refuse(
                endpoint,
                501,
                "only the called party of a connected call can transfer it",
            );
        }
        if refer_to.replaces.is_some() {
            return refuse(
                endpoint,
                501,
                "attended transfer (Replaces) is not built yet",
            );
        }
        if self.transfers.contains_key(&parent) {
            return refuse(endpoint, 491, "a transfer of this call is under way");
        }
        let Some(number) = refer_to.user.clone() else {
            return refuse(endpoint, 404, "Refer-To names no number");
        };
        let placed = self.outbound.get(&leg).map(|o| o.placed.clone());
        let transferor_extension = placed.as_ref().and_then(|p| p.extension.clone());
        // Who transfers: one of our users with their own rights, or a party outside, whose
        // number is the user part of the URI we called.
        let identity = transferor_extension
            .as_deref()
            .and_then(|ext| {
                registrar
                    .caller_profile(ext)
                    .map(|p| (ext.to_string(), registrar.display_name(ext), p))
            })
            .unwrap_or_else(|| {
                let number = placed
                    .as_ref()
                    .and_then(|p| sip::message::parse_uri(&p.target))
                    .and_then(|u| u.auth.map(|a| a.user))
                    .unwrap_or_else(|| "anonymous".into());
                (number, None, CallerProfile::not_a_user())
            });
        let Some(target) = self.transfer_target(&number, &identity.0, identity.2.user.is_some())
        else {
            return refuse(
                endpoint,
                404,
                "no dialplan rule dials the number for the transferor",
            );
        };
        endpoint.notify_refer(leg, 100, "Trying", now);
        tracing::info!(transferor = %leg, %number, %target, "blind transfer: ringing the target; the caller hears music on hold");
        self.set_apart(parent, true);
        self.set_apart(leg, false);
        let reply = self.dial_as(parent, identity, &target, endpoint, registrar, now);
        let mut transfer = Transfer {
            transferor: leg,
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
        number: &str,
        from: &str,
        identified: bool,
    ) -> Option<dialplan::DialTarget> {
        let plan = self.shared.plan.current();
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
        let span = self
            .legs
            .get(&parent)
            .map_or_else(tracing::Span::none, |l| l.span.clone());
        let _entered = span.enter();
        if transfer.transferor_up {
            tracing::info!(target = %transfer.target, status, "blind transfer failed: the call goes back to the transferor");
            endpoint.notify_refer(transfer.transferor, status, phrase(status), now);
            self.follow_hold(parent, transfer.transferor, parent);
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
