//! Attended transfer (REFER with Replaces, RFC 5589 §7, RFC 3891): the transferor talks to
//! the transferee in one call and to the target in another, both through us, and asks on one
//! dialog that the other be replaced. As a B2BUA we hold both of its dialogs, so no INVITE
//! with Replaces goes anywhere: the transferee's leg and the target's leg are joined to each
//! other (relayed, or transcoded when their codecs differ), the transferor hears NOTIFY 200
//! and both of its legs are hung up.
//!
//! A call here is anchored on the caller's leg, which runs the dialplan: the two parties left
//! are joined in the call of the one that called in, and the other's leg (one we placed)
//! moves into it. When the transferor called both, its first call goes on without its leg
//! (headless), between the two placed legs. When both called the transferor there is no leg
//! to move and the REFER is refused with 501.

use std::net::IpAddr;
use std::time::Instant;

use sip::refer::Replaces;

use super::transfer::phrase;
use super::{CallControl, ConnectedCallee};
use crate::call::{CalleeEvent, Input};
use crate::ids::LegId;
use crate::registrar::RegistrarService;
use crate::sip_endpoint::SipEndpoint;

/// One of the transferor's calls: its caller's leg, the transferor's leg in it and the
/// other party's leg (one of them is the caller's leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TransferorCall {
    /// The call's caller leg (the one running its dialplan).
    pub parent: LegId,
    /// The transferor's leg in it.
    pub transferor: LegId,
    /// The other party's leg.
    pub other: LegId,
}

/// How the two parties left are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rejoin {
    /// Into the call of the party that called in.
    IntoCall(IntoCall),
    /// The transferor called both: the call of the REFER's dialog goes on without the
    /// transferor's leg, between its placed leg `kept` and `moved`, from the other call.
    Headless {
        /// The transferor's leg that called first (the REFER's dialog): the call's anchor.
        anchor: LegId,
        /// The party it called.
        kept: LegId,
        /// The party of the other call, moving into the anchor's call.
        moved: LegId,
        /// The transferor's other call, which ends.
        from: LegId,
    },
}

/// A transferee joined in the call of the party that called in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IntoCall {
    /// The party that called in: its call goes on.
    pub stay: LegId,
    /// The transferor's leg in that call, replaced.
    pub old: LegId,
    /// The other party's leg (one we placed), moving into `stay`'s call.
    pub moved: LegId,
    /// The caller leg of the call `moved` leaves (the transferor's, which ends).
    pub from: LegId,
}

/// Which call goes on: the one whose other party called in, the other party of the second
/// call moving into it. `Err` says why the pair cannot be joined.
pub(super) fn rejoin(a: TransferorCall, b: TransferorCall) -> Result<Rejoin, &'static str> {
    match (a.other == a.parent, b.other == b.parent) {
        (true, false) => Ok(Rejoin::IntoCall(IntoCall {
            stay: a.other,
            old: a.transferor,
            moved: b.other,
            from: b.parent,
        })),
        (false, true) => Ok(Rejoin::IntoCall(IntoCall {
            stay: b.other,
            old: b.transferor,
            moved: a.other,
            from: a.parent,
        })),
        (false, false) => Ok(Rejoin::Headless {
            anchor: a.parent,
            kept: a.other,
            moved: b.other,
            from: b.parent,
        }),
        (true, true) => {
            Err("both other parties called the transferor; joining two callers is not built yet")
        }
    }
}

/// Whether two dialogs face one party, from the user each belongs to (if it is one of ours)
/// and the address each signals from: two users must be the same user, else (a party that
/// is no user, e.g. a phone dialled by address or a trusted PBX) one address must send both.
fn one_party(users: [Option<String>; 2], ips: [Option<IpAddr>; 2]) -> bool {
    match (users, ips) {
        ([Some(a), Some(b)], _) => a == b,
        (_, [Some(a), Some(b)]) => a == b,
        _ => false,
    }
}

/// Whether the dialog `id` (as we keep it) is the one a Replaces names: the Replaces' to-tag
/// is the tag of the party receiving it, ours (RFC 3891 §3).
fn names(replaces: &Replaces, id: &sip::dialog::DialogId) -> bool {
    id.call_id == replaces.call_id
        && id.local_tag == replaces.to_tag
        && id.remote_tag == replaces.from_tag
}

impl CallControl {
    /// The phone of `leg` asked (REFER with a Replaces in Refer-To, accepted with 202) that
    /// its call's other party be connected with the other party of the dialog `replaces`
    /// names, one of its own calls through us.
    pub(super) fn on_attended_refer(
        &mut self,
        leg: LegId,
        replaces: &Replaces,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        let parent = self.call_of(leg).map_or(leg, |(parent, _)| parent);
        let span = self.span_of(parent);
        let _entered = span.enter();
        let refuse = |endpoint: &mut SipEndpoint, status: u16, why: &str| {
            tracing::info!(leg = %leg, replaces = %replaces.call_id, status, "attended transfer refused: {why}");
            endpoint.notify_refer(leg, status, phrase(status), now);
        };
        let Some(replaced) = self.leg_in_dialog(replaces, endpoint) else {
            return refuse(endpoint, 481, "Replaces names no call of ours");
        };
        if replaced == leg {
            return refuse(endpoint, 403, "Replaces names the REFER's own dialog");
        }
        if replaces.early_only {
            // The dialog it names is answered (only those are found): RFC 3891 §3.
            return refuse(
                endpoint,
                486,
                "early-only, but the replaced call is answered",
            );
        }
        if !self.same_party(leg, replaced, endpoint) {
            return refuse(
                endpoint,
                403,
                "the replaced call belongs to another party, not the transferor",
            );
        }
        let (Some(a), Some(b)) = (self.transferor_call(leg), self.transferor_call(replaced)) else {
            return refuse(endpoint, 481, "one of the two calls is not connected");
        };
        if a.parent == b.parent {
            return refuse(endpoint, 403, "both dialogs are legs of one call");
        }
        if self.transfers.contains_key(&a.parent) || self.transfers.contains_key(&b.parent) {
            return refuse(endpoint, 491, "a transfer of one of the calls is under way");
        }
        let busy = |parent: LegId| {
            self.legs
                .get(&parent)
                .is_some_and(|l| l.t38.is_some() || l.pending_switch.is_some())
        };
        if busy(a.parent) || busy(b.parent) {
            return refuse(
                endpoint,
                488,
                "one of the calls carries fax or switches its media",
            );
        }
        let joined = match rejoin(a, b) {
            Ok(joined) => joined,
            Err(why) => return refuse(endpoint, 501, why),
        };
        let (moved, anchor) = match joined {
            Rejoin::IntoCall(into) => (into.moved, into.stay),
            Rejoin::Headless { moved, anchor, .. } => (moved, anchor),
        };
        if !self.outbound.contains_key(&moved) || !self.legs.contains_key(&anchor) {
            return refuse(endpoint, 481, "a leg of the calls is gone");
        }
        drop(_entered);
        match joined {
            Rejoin::IntoCall(into) => {
                self.join_transferred(into, leg, replaced, endpoint, registrar, now);
            }
            Rejoin::Headless {
                anchor,
                kept,
                moved,
                from,
            } => self.join_headless([anchor, kept, moved, from], leg, replaced, endpoint, now),
        }
    }

    /// The transferor called both parties: `kept` and `moved` are connected in `anchor`'s
    /// call, which goes on without the transferor's leg; `moved` leaves `from`'s call.
    fn join_headless(
        &mut self,
        [anchor, kept, moved, from]: [LegId; 4],
        refer_leg: LegId,
        replaced: LegId,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) {
        let note = self.transfer_note(refer_leg, kept, moved);
        let answered_wall_ms = self.move_leg(moved, from, anchor, &note);
        if let Some(l) = self.legs.get_mut(&anchor) {
            let _entered = l.span.clone().entered();
            tracing::info!(transferor = %refer_leg, %kept, %moved, answered_wall_ms, "{note}; the call goes on without the transferor");
            l.features.push(note);
            l.joined = Some([kept, moved]);
            l.headless = true;
        }
        self.follow_hold(anchor, kept, moved);
        endpoint.notify_refer(refer_leg, 200, "OK", now);
        endpoint.hangup(refer_leg, "transferred", now);
        endpoint.hangup(replaced, "transferred", now);
    }

    /// "attended transfer by 101: 100 connected with 103".
    fn transfer_note(&self, transferor: LegId, a: LegId, b: LegId) -> String {
        let name = |leg: LegId| self.party_of(leg).unwrap_or_else(|| leg.to_string());
        format!(
            "attended transfer by {}: {} connected with {}",
            name(transferor),
            name(a),
            name(b)
        )
    }

    /// Moves the placed leg `moved` from `from`'s call into `into`'s, noting why in the call
    /// it leaves: when it answered (unix ms), for the call it joins.
    fn move_leg(&mut self, moved: LegId, from: LegId, into: LegId, note: &str) -> i64 {
        if let Some(out) = self.outbound.get_mut(&moved) {
            out.parent = into;
        }
        let mut answered_wall_ms = jiff::Timestamp::now().as_millisecond();
        if let Some(l) = self.legs.get_mut(&from) {
            let _entered = l.span.clone().entered();
            if let Some(connected) = l.connected.as_mut().filter(|c| c.leg == moved) {
                answered_wall_ms = connected.answered_wall_ms;
                connected.end(note);
            }
            tracing::info!(leg = %moved, into_call = %into, "{note}; this call's other party moves into that call");
            l.features.push(note.to_string());
        }
        answered_wall_ms
    }

    /// Connects `joined.stay` with `joined.moved` in `stay`'s call, tells the transferor it
    /// worked and hangs up both of its legs.
    fn join_transferred(
        &mut self,
        joined: IntoCall,
        refer_leg: LegId,
        replaced: LegId,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        let IntoCall {
            stay,
            old,
            moved,
            from,
        } = joined;
        let note = self.transfer_note(refer_leg, stay, moved);
        let Some((placed, quality)) = self
            .outbound
            .get(&moved)
            .map(|o| (o.placed.clone(), o.quality.clone()))
        else {
            return;
        };
        let answered_wall_ms = self.move_leg(moved, from, stay, &note);
        if let Some(l) = self.legs.get_mut(&stay) {
            let _entered = l.span.clone().entered();
            if let Some(connected) = l.connected.as_mut().filter(|c| c.leg == old) {
                connected.end("transferred");
            }
            l.connected = Some(ConnectedCallee {
                leg: moved,
                placed,
                answered_wall_ms,
                quality,
                ended: None,
            });
            tracing::info!(transferor = %refer_leg, old = %old, new = %moved, "{note}");
            l.features.push(note);
        }
        // Joined as a call taken off hold is: relayed, or apart with music when one of the
        // two parties itself holds.
        self.follow_hold(stay, stay, moved);
        endpoint.notify_refer(refer_leg, 200, "OK", now);
        endpoint.hangup(refer_leg, "transferred", now);
        endpoint.hangup(replaced, "transferred", now);
        let input = Input::Callee(CalleeEvent::Transferred { old, new: moved });
        self.feed(stay, input, endpoint, registrar, now);
    }

    /// The answered leg whose dialog `replaces` names.
    fn leg_in_dialog(&self, replaces: &Replaces, endpoint: &SipEndpoint) -> Option<LegId> {
        self.legs
            .keys()
            .chain(self.outbound.keys())
            .copied()
            .find(|leg| {
                endpoint
                    .dialog_id(*leg)
                    .is_some_and(|id| names(replaces, &id))
            })
    }

    /// `leg`'s connected call, seen from `leg`.
    fn transferor_call(&self, leg: LegId) -> Option<TransferorCall> {
        let (parent, other) = self.call_of(leg)?;
        Some(TransferorCall {
            parent,
            transferor: leg,
            other: other?,
        })
    }

    /// The extension (or, for a caller that is not one of our users, the number) a leg
    /// faces.
    fn party_of(&self, leg: LegId) -> Option<String> {
        if let Some(l) = self.legs.get(&leg) {
            return Some(l.profile.user.clone().unwrap_or_else(|| l.caller.clone()));
        }
        let placed = &self.outbound.get(&leg)?.placed;
        placed.extension.clone().or_else(|| {
            sip::message::parse_uri(&placed.target)
                .and_then(|u| u.auth.map(|a| a.user))
                .or_else(|| Some(placed.target.clone()))
        })
    }

    /// Whether two legs face the same party: the same user when we know both as users,
    /// else the same signalling address (one phone, two dialogs).
    fn same_party(&self, a: LegId, b: LegId, endpoint: &SipEndpoint) -> bool {
        let user = |leg: LegId| {
            self.legs
                .get(&leg)
                .and_then(|l| l.profile.user.clone())
                .or_else(|| {
                    self.outbound
                        .get(&leg)
                        .and_then(|o| o.placed.extension.clone())
                })
        };
        one_party(
            [user(a), user(b)],
            [endpoint.peer_ip(a), endpoint.peer_ip(b)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(n: u64) -> LegId {
        LegId::new(n)
    }

    fn call(parent: u64, transferor: u64, other: u64) -> TransferorCall {
        TransferorCall {
            parent: leg(parent),
            transferor: leg(transferor),
            other: leg(other),
        }
    }

    #[test]
    fn the_party_that_called_in_keeps_its_call_and_the_placed_party_moves_into_it() {
        // A (1) called B (2); B (3) called C (4). B refers on either dialog.
        let first = call(1, 2, 1);
        let second = call(3, 3, 4);
        let expected = Rejoin::IntoCall(IntoCall {
            stay: leg(1),
            old: leg(2),
            moved: leg(4),
            from: leg(3),
        });
        assert_eq!(rejoin(first, second), Ok(expected));
        assert_eq!(rejoin(second, first), Ok(expected));
    }

    #[test]
    fn two_callers_are_refused() {
        assert!(rejoin(call(1, 2, 1), call(5, 6, 5)).is_err());
    }

    #[test]
    fn a_transferor_that_called_both_leaves_the_refer_dialogs_call_going_on_headless() {
        // B (1) called A (2); B (5) called C (6); REFER on B's first dialog.
        assert_eq!(
            rejoin(call(1, 1, 2), call(5, 5, 6)),
            Ok(Rejoin::Headless {
                anchor: leg(1),
                kept: leg(2),
                moved: leg(6),
                from: leg(5),
            })
        );
    }

    #[test]
    fn another_users_dialog_is_not_the_transferors_even_from_the_same_address() {
        let ip = |last: u8| Some(IpAddr::from([10, 99, 0, last]));
        let user = |u: &str| Some(u.to_string());
        assert!(one_party([user("101"), user("101")], [ip(4), ip(7)]));
        assert!(!one_party([user("101"), user("102")], [ip(4), ip(4)]));
        assert!(one_party([user("101"), None], [ip(4), ip(4)]));
        assert!(!one_party([None, None], [ip(4), ip(5)]));
        assert!(!one_party([None, None], [None, ip(5)]));
    }

    #[test]
    fn replaces_names_a_dialog_by_call_id_with_our_tag_as_its_to_tag() {
        let id = sip::dialog::DialogId {
            call_id: "c@h".into(),
            local_tag: "ours".into(),
            remote_tag: "phone".into(),
        };
        let replaces = |to: &str, from: &str| Replaces {
            call_id: "c@h".into(),
            to_tag: to.into(),
            from_tag: from.into(),
            early_only: false,
        };
        assert!(names(&replaces("ours", "phone"), &id));
        assert!(!names(&replaces("phone", "ours"), &id));
        assert!(!names(&replaces("ours", "other"), &id));
        let other_call = Replaces {
            call_id: "d@h".into(),
            ..replaces("ours", "phone")
        };
        assert!(!names(&other_call, &id));
    }
}
