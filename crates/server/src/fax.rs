//! Fax on two-party calls: which calls pass G.711 through unchanged, and the T.38 switch of
//! a connected call, passed from the leg that asks for it to the other one.
//!
//! Fax machines (ATAs) start a call on G.711; once they have heard each other, one of them
//! usually sends a re-INVITE offering T.38 (`m=image … udptl t38`). A back-to-back user agent
//! cannot answer that itself: only the other fax machine can say whether it speaks T.38 and
//! with which parameters. So the offer goes on to the other leg as our own re-INVITE (our
//! address, a port of our own), and that leg's answer comes back as ours; a later re-INVITE
//! back to audio goes the same way. This module is the bookkeeping of that exchange, without
//! SIP, SDP text or sockets: call control feeds it offers and answers and carries out the
//! steps it returns.

use dialplan::{Action, DialTarget};
use media::sdp::SessionDescription;

use crate::ids::LegId;

/// Whether the route's own `dial`s make a call a fax call from the start: a `dial` marked
/// `fax = true`, or one to a user whose line is a fax machine. The caller's leg is then
/// answered on G.711 only, so that it can be passed through when the callee answers. A menu
/// branch's `dial` is not looked at: the caller's codec is chosen before anyone keys it.
pub fn route_is_fax(actions: &[Action], is_fax_line: impl Fn(&str) -> bool) -> bool {
    actions.iter().any(|action| match action {
        Action::Dial { fax: true, .. } => true,
        Action::Dial {
            target: DialTarget::User(extension),
            ..
        } => is_fax_line(extension),
        _ => false,
    })
}

/// What a connected call's legs exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMedia {
    /// RTP audio, relayed or mixed by the media workers.
    Audio,
    /// T.38 fax: UDPTL datagrams relayed between the legs.
    T38,
}

/// What a re-offer from one leg asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// A T.38 stream (switch to fax, or keep it).
    T38,
    /// An audio stream (stay on, or go back to, audio).
    Audio,
    /// Neither (every stream refused or unusable).
    Other,
}

impl Wants {
    /// What `offer` asks for: T.38 wins when it offers both, as a fax machine offering T.38
    /// beside its audio wants fax.
    pub fn of(offer: &SessionDescription) -> Wants {
        if offer.t38_stream().is_some() {
            Wants::T38
        } else if offer
            .media
            .iter()
            .any(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
        {
            Wants::Audio
        } else {
            Wants::Other
        }
    }
}

/// An offer passed from one leg to the other, waiting for the other's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passing {
    /// The leg whose re-INVITE waits for its answer.
    pub from: LegId,
    /// The leg our re-INVITE went to.
    pub to: LegId,
    /// What the call carries if it says yes.
    pub towards: CallMedia,
}

/// What to do with a re-offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferStep {
    /// Answer it here, as any re-offer on audio (hold, resume, a new address, a refresh).
    AnswerAudio,
    /// Answer it here with the T.38 stream the call runs (a refresh, a new address).
    AnswerT38,
    /// Pass it on as our re-INVITE to the other leg; its answer answers this one.
    PassOn(Passing),
    /// Refuse it with this status.
    Refuse(u16),
}

/// Where a connected call's media stands between its two legs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSwitch {
    media: CallMedia,
    passing: Option<Passing>,
}

impl Default for MediaSwitch {
    fn default() -> Self {
        Self {
            media: CallMedia::Audio,
            passing: None,
        }
    }
}

impl MediaSwitch {
    /// What the call carries now.
    pub fn media(&self) -> CallMedia {
        self.media
    }

    /// The offer passed on and not yet answered, if any.
    pub fn passing(&self) -> Option<Passing> {
        self.passing
    }

    /// `from` offers what `wants` says; `other` is the leg it is connected to, if any.
    pub fn on_offer(&mut self, from: LegId, other: Option<LegId>, wants: Wants) -> OfferStep {
        if self.passing.is_some() {
            // One offer at a time between the two machines (RFC 3261 §14.2: they retry).
            return OfferStep::Refuse(491);
        }
        let pass = |towards| other.map(|to| Passing { from, to, towards });
        let step = match (self.media, wants) {
            (CallMedia::Audio, Wants::T38) => match pass(CallMedia::T38) {
                Some(passing) => OfferStep::PassOn(passing),
                // Nobody to fax with (a prompt, a room): answered as audio, which refuses
                // the image stream, so the machine stays on G.711.
                None => OfferStep::AnswerAudio,
            },
            (CallMedia::Audio, Wants::Audio | Wants::Other) => OfferStep::AnswerAudio,
            (CallMedia::T38, Wants::T38) => OfferStep::AnswerT38,
            (CallMedia::T38, Wants::Audio) => match pass(CallMedia::Audio) {
                Some(passing) => OfferStep::PassOn(passing),
                None => OfferStep::Refuse(488),
            },
            (CallMedia::T38, Wants::Other) => OfferStep::Refuse(488),
        };
        if let OfferStep::PassOn(passing) = step {
            self.passing = Some(passing);
        }
        step
    }

    /// `leg` answered the offer passed to it, `accepted` or not: the passing it ends (the
    /// call now carries what it asked for, or stays as it was), or `None` when no offer of
    /// ours was waiting for that leg.
    pub fn on_answer(&mut self, leg: LegId, accepted: bool) -> Option<Passing> {
        let passing = self.passing.filter(|p| p.to == leg)?;
        self.passing = None;
        if accepted {
            self.media = passing.towards;
        }
        Some(passing)
    }
}

/// The status the offering leg gets when the other leg refused what was passed on: its own
/// refusal, unless that says the other leg's dialog is gone (408, 481: that leg is hung up
/// and the call ends with it) or is no refusal at all, when 488 says the offer was not taken.
pub fn refusal_to_pass_back(status: u16) -> u16 {
    match status {
        408 | 481 => 488,
        400..=699 => status,
        _ => 488,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::sdp::parse;

    fn leg(n: u64) -> LegId {
        LegId::new(n)
    }

    fn wants(body: &str) -> Wants {
        Wants::of(&parse(body).unwrap())
    }

    const HEAD: &str = "v=0\r\no=- 1 2 IN IP4 10.0.0.70\r\nc=IN IP4 10.0.0.70\r\n";

    #[test]
    fn a_reoffer_wants_t38_when_it_offers_a_usable_image_stream_even_beside_audio() {
        let t38_only = format!("{HEAD}m=audio 0 RTP/AVP 8\r\nm=image 4002 udptl t38\r\n");
        let both = format!("{HEAD}m=audio 4000 RTP/AVP 8\r\nm=image 4002 udptl t38\r\n");
        let audio = format!("{HEAD}m=audio 4000 RTP/AVP 8\r\nm=image 0 udptl t38\r\n");
        let nothing = format!("{HEAD}m=audio 0 RTP/AVP 8\r\nm=image 0 udptl t38\r\n");
        assert_eq!(wants(&t38_only), Wants::T38);
        assert_eq!(wants(&both), Wants::T38);
        assert_eq!(wants(&audio), Wants::Audio);
        assert_eq!(wants(&nothing), Wants::Other);
    }

    #[test]
    fn a_t38_offer_is_passed_to_the_other_leg_and_its_yes_makes_the_call_fax() {
        let mut switch = MediaSwitch::default();
        let passing = Passing {
            from: leg(1),
            to: leg(2),
            towards: CallMedia::T38,
        };
        assert_eq!(
            switch.on_offer(leg(1), Some(leg(2)), Wants::T38),
            OfferStep::PassOn(passing)
        );
        assert_eq!(switch.media(), CallMedia::Audio, "not before the answer");
        assert_eq!(switch.on_answer(leg(1), true), None, "not the leg asked");
        assert_eq!(switch.on_answer(leg(2), true), Some(passing));
        assert_eq!(switch.media(), CallMedia::T38);
        assert_eq!(switch.passing(), None);
    }

    #[test]
    fn a_refused_t38_offer_leaves_the_call_on_audio() {
        let mut switch = MediaSwitch::default();
        switch.on_offer(leg(2), Some(leg(1)), Wants::T38);
        let back = switch.on_answer(leg(1), false).unwrap();
        assert_eq!((back.from, back.to), (leg(2), leg(1)));
        assert_eq!(switch.media(), CallMedia::Audio);
        // Audio re-offers (hold, refresh) are answered here again.
        assert_eq!(
            switch.on_offer(leg(2), Some(leg(1)), Wants::Audio),
            OfferStep::AnswerAudio
        );
    }

    #[test]
    fn a_second_offer_while_one_is_passed_on_gets_491() {
        let mut switch = MediaSwitch::default();
        switch.on_offer(leg(1), Some(leg(2)), Wants::T38);
        for (from, wants) in [(leg(2), Wants::T38), (leg(1), Wants::Audio)] {
            assert_eq!(
                switch.on_offer(from, Some(leg(1)), wants),
                OfferStep::Refuse(491)
            );
        }
        assert_eq!(switch.passing().map(|p| p.to), Some(leg(2)));
    }

    #[test]
    fn without_a_connected_leg_t38_is_answered_as_audio_which_refuses_the_image_stream() {
        let mut switch = MediaSwitch::default();
        assert_eq!(
            switch.on_offer(leg(1), None, Wants::T38),
            OfferStep::AnswerAudio
        );
        assert_eq!(switch.passing(), None);
    }

    #[test]
    fn on_t38_refreshes_are_answered_here_and_audio_is_passed_on_to_go_back() {
        let mut switch = MediaSwitch::default();
        switch.on_offer(leg(1), Some(leg(2)), Wants::T38);
        switch.on_answer(leg(2), true);
        assert_eq!(
            switch.on_offer(leg(2), Some(leg(1)), Wants::T38),
            OfferStep::AnswerT38
        );
        assert_eq!(
            switch.on_offer(leg(1), Some(leg(2)), Wants::Other),
            OfferStep::Refuse(488)
        );
        let back = Passing {
            from: leg(2),
            to: leg(1),
            towards: CallMedia::Audio,
        };
        assert_eq!(
            switch.on_offer(leg(2), Some(leg(1)), Wants::Audio),
            OfferStep::PassOn(back)
        );
        switch.on_answer(leg(1), true);
        assert_eq!(switch.media(), CallMedia::Audio);
    }

    #[test]
    fn the_refusal_passed_back_is_the_other_legs_unless_its_dialog_is_gone() {
        assert_eq!(refusal_to_pass_back(488), 488);
        assert_eq!(refusal_to_pass_back(415), 415);
        assert_eq!(refusal_to_pass_back(606), 606);
        assert_eq!(refusal_to_pass_back(481), 488);
        assert_eq!(refusal_to_pass_back(408), 488);
        assert_eq!(refusal_to_pass_back(302), 488);
    }

    #[test]
    fn a_route_is_fax_by_its_dial_option_or_a_fax_line_it_dials() {
        let dial = |target: DialTarget, fax| Action::Dial {
            target,
            timeout_s: 30,
            fax,
        };
        let is_fax_line = |extension: &str| extension == "150";
        let user = |u: &str| DialTarget::User(u.into());
        assert!(route_is_fax(&[dial(user("201"), true)], is_fax_line));
        assert!(route_is_fax(
            &[Action::Answer, dial(user("150"), false)],
            is_fax_line
        ));
        assert!(!route_is_fax(&[dial(user("201"), false)], is_fax_line));
        assert!(!route_is_fax(
            &[dial(DialTarget::Uri("sip:150@10.0.0.5".into()), false)],
            is_fax_line
        ));
        assert!(!route_is_fax(&[Action::Echo], is_fax_line));
    }
}
