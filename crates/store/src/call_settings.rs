//! What happens to a call for a user besides ringing their phones: do not disturb, call
//! forwarding (always, on busy, on no answer) and follow-me.
//!
//! Targets are numbers as the user would dial them (an extension, a room's dial-in number, a
//! group's number, an outside number with the trunk prefix): the server routes them through
//! the dialplan as a call from that user, so a forwarded call obeys the same rules, call
//! classes and cost limits as one the user places. The store only checks their shape.

use std::fmt;
use std::str::FromStr;

use crate::db::params;

use crate::users::AllowedNetwork;
use crate::{Store, StoreError};

/// Longest number a forwarding or follow-me target may have (E.164 plus a trunk prefix and
/// feature digits).
pub const MAX_TARGET_CHARS: usize = 32;
/// Most follow-me steps: each rings for its own time, and a caller waits through all of them.
pub const MAX_FOLLOW_ME_STEPS: usize = 8;
/// Most numbers rung at once in one follow-me step.
pub const MAX_NUMBERS_PER_STEP: usize = 8;
/// Shortest and longest ring time of a step or of "no answer", in seconds.
pub const RING_SECONDS: std::ops::RangeInclusive<u32> = 5..=180;
/// Ring time before forwarding on no answer when the user does not say.
pub const DEFAULT_NO_ANSWER_SECONDS: u32 = 20;

/// When a forwarding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardKind {
    /// Every call, the phones never ring (`*21*`).
    Always,
    /// When the user's phones say busy or the user is in do not disturb (`*67*`).
    Busy,
    /// When the phones ring unanswered for the user's no-answer time (`*61*`).
    NoAnswer,
}

impl ForwardKind {
    /// The word the CLI and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardKind::Always => "always",
            ForwardKind::Busy => "busy",
            ForwardKind::NoAnswer => "no-answer",
        }
    }
}

impl FromStr for ForwardKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" | "unconditional" => Ok(ForwardKind::Always),
            "busy" => Ok(ForwardKind::Busy),
            "no-answer" | "noanswer" => Ok(ForwardKind::NoAnswer),
            _ => Err(StoreError::InvalidForwardKind(s.to_owned())),
        }
    }
}

impl fmt::Display for ForwardKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One number a follow-me step rings: `number`, or `number@network` for the phones of that
/// user registered from `network` only (the office phone on the office LAN, the home phone
/// over the VPN, both registered as the same user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowMeTarget {
    /// The number, as the user would dial it.
    pub number: String,
    /// Only the phones registered from this network.
    pub network: Option<AllowedNetwork>,
}

impl fmt::Display for FollowMeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.network {
            Some(network) => write!(f, "{}@{network}", self.number),
            None => f.write_str(&self.number),
        }
    }
}

impl FromStr for FollowMeTarget {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (number, network) = match s.split_once('@') {
            Some((number, network)) => (number, Some(network.parse()?)),
            None => (s, None),
        };
        validate_target(number)?;
        Ok(FollowMeTarget {
            number: number.to_owned(),
            network,
        })
    }
}

/// One step of a follow-me: these numbers ring at once for `seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowMeStep {
    /// Rung together.
    pub targets: Vec<FollowMeTarget>,
    /// For this long before the next step.
    pub seconds: u32,
}

impl fmt::Display for FollowMeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let targets: Vec<String> = self.targets.iter().map(ToString::to_string).collect();
        write!(f, "{}:{}", targets.join("+"), self.seconds)
    }
}

impl FromStr for FollowMeStep {
    type Err = StoreError;
    /// `101@192.168.10.0/24:15` or `101+01711234567:30` (`+` joins numbers rung at once).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || StoreError::InvalidFollowMeStep(s.to_owned());
        let (targets, seconds) = s.rsplit_once(':').ok_or_else(invalid)?;
        let seconds: u32 = seconds.parse().map_err(|_| invalid())?;
        let targets = targets
            .split('+')
            .filter(|t| !t.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<FollowMeTarget>, _>>()?;
        let step = FollowMeStep { targets, seconds };
        step.validate()?;
        Ok(step)
    }
}

impl FollowMeStep {
    fn validate(&self) -> Result<(), StoreError> {
        if self.targets.is_empty() || self.targets.len() > MAX_NUMBERS_PER_STEP {
            return Err(StoreError::InvalidFollowMeStep(self.to_string()));
        }
        validate_seconds(self.seconds)
    }
}

/// A user's call settings (all off for a new user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSettings {
    /// Do not disturb: the phones do not ring; callers get busy (or the busy forwarding).
    pub dnd: bool,
    /// Forward every call here.
    pub forward_always: Option<String>,
    /// Forward here when busy or in do not disturb.
    pub forward_busy: Option<String>,
    /// Forward here when unanswered for `no_answer_seconds`.
    pub forward_no_answer: Option<String>,
    /// Ring time before the no-answer forwarding.
    pub no_answer_seconds: u32,
    /// Ring these steps in turn instead of the user's phones (empty: the phones).
    pub follow_me: Vec<FollowMeStep>,
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            dnd: false,
            forward_always: None,
            forward_busy: None,
            forward_no_answer: None,
            no_answer_seconds: DEFAULT_NO_ANSWER_SECONDS,
            follow_me: Vec::new(),
        }
    }
}

impl CallSettings {
    /// The forwarding target of `kind`, if set.
    pub fn forward(&self, kind: ForwardKind) -> Option<&str> {
        match kind {
            ForwardKind::Always => self.forward_always.as_deref(),
            ForwardKind::Busy => self.forward_busy.as_deref(),
            ForwardKind::NoAnswer => self.forward_no_answer.as_deref(),
        }
    }
}

/// A forwarding target is a dialled number: digits, `*` and `#` (feature codes), an optional
/// leading `+`.
pub fn validate_target(number: &str) -> Result<(), StoreError> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty()
        || number.len() > MAX_TARGET_CHARS
        || !digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
    {
        return Err(StoreError::InvalidForwardTarget(number.to_owned()));
    }
    Ok(())
}

fn validate_seconds(seconds: u32) -> Result<(), StoreError> {
    if !RING_SECONDS.contains(&seconds) {
        return Err(StoreError::InvalidRingSeconds(seconds));
    }
    Ok(())
}

/// Steps one per line as [`FollowMeStep`]'s text.
pub(crate) fn follow_me_to_column(steps: &[FollowMeStep]) -> String {
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn follow_me_from_column(text: &str) -> Result<Vec<FollowMeStep>, StoreError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::parse)
        .collect()
}

impl Store {
    /// Turns do not disturb on or off.
    pub fn user_set_dnd(
        &self,
        domain: &str,
        extension: &str,
        dnd: bool,
        now_ms: i64,
    ) -> Result<CallSettings, StoreError> {
        self.update_settings(domain, extension, now_ms, |s| {
            s.dnd = dnd;
            Ok(())
        })
    }

    /// Sets (`Some`) or clears (`None`) the forwarding of `kind`; `no_answer_seconds` changes
    /// the ring time before the no-answer forwarding where given.
    pub fn user_set_forward(
        &self,
        domain: &str,
        extension: &str,
        kind: ForwardKind,
        target: Option<&str>,
        no_answer_seconds: Option<u32>,
        now_ms: i64,
    ) -> Result<CallSettings, StoreError> {
        if let Some(target) = target {
            validate_target(target)?;
        }
        if let Some(seconds) = no_answer_seconds {
            validate_seconds(seconds)?;
        }
        self.update_settings(domain, extension, now_ms, |s| {
            let slot = match kind {
                ForwardKind::Always => &mut s.forward_always,
                ForwardKind::Busy => &mut s.forward_busy,
                ForwardKind::NoAnswer => &mut s.forward_no_answer,
            };
            *slot = target.map(str::to_owned);
            if let Some(seconds) = no_answer_seconds {
                s.no_answer_seconds = seconds;
            }
            Ok(())
        })
    }

    /// Replaces the follow-me steps (empty: ring the user's phones as usual).
    pub fn user_set_follow_me(
        &self,
        domain: &str,
        extension: &str,
        steps: &[FollowMeStep],
        now_ms: i64,
    ) -> Result<CallSettings, StoreError> {
        if steps.len() > MAX_FOLLOW_ME_STEPS {
            return Err(StoreError::TooManyFollowMeSteps(steps.len()));
        }
        for step in steps {
            step.validate()?;
        }
        self.update_settings(domain, extension, now_ms, |s| {
            s.follow_me = steps.to_vec();
            Ok(())
        })
    }

    /// Replaces all of a user's call settings at once (one transaction), checked as the
    /// single setters check them: the web console's settings form sends them together.
    pub fn user_set_call_settings(
        &self,
        domain: &str,
        extension: &str,
        settings: &CallSettings,
        now_ms: i64,
    ) -> Result<CallSettings, StoreError> {
        for target in [
            &settings.forward_always,
            &settings.forward_busy,
            &settings.forward_no_answer,
        ]
        .into_iter()
        .flatten()
        {
            validate_target(target)?;
        }
        validate_seconds(settings.no_answer_seconds)?;
        if settings.follow_me.len() > MAX_FOLLOW_ME_STEPS {
            return Err(StoreError::TooManyFollowMeSteps(settings.follow_me.len()));
        }
        for step in &settings.follow_me {
            step.validate()?;
        }
        self.update_settings(domain, extension, now_ms, |s| {
            *s = settings.clone();
            Ok(())
        })
    }

    fn update_settings(
        &self,
        domain: &str,
        extension: &str,
        now_ms: i64,
        change: impl FnOnce(&mut CallSettings) -> Result<(), StoreError>,
    ) -> Result<CallSettings, StoreError> {
        let tx = self.db.transaction()?;
        let user = self.user_existing(domain, extension)?;
        let mut settings = user.call_settings;
        change(&mut settings)?;
        tx.execute(
            "UPDATE sip_user SET dnd = ?3, forward_always = ?4, forward_busy = ?5,
                forward_no_answer = ?6, forward_no_answer_s = ?7, follow_me = ?8,
                updated_at_ms = ?9
             WHERE domain = ?1 AND extension = ?2",
            params![
                domain,
                extension,
                settings.dnd,
                settings.forward_always,
                settings.forward_busy,
                settings.forward_no_answer,
                settings.no_answer_seconds,
                follow_me_to_column(&settings.follow_me),
                now_ms
            ],
        )?;
        tx.commit()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, on_both_backends};
    use crate::{DEFAULT_DOMAIN, NewUser};

    fn with_user(store: &Store) {
        store
            .user_create(&NewUser::new("101", "Anna", "geheim123", 1))
            .unwrap();
    }

    fn all_settings_are_replaced_together_or_not_at_all(backend: Backend) {
        let store = backend.open();
        with_user(&store);
        let wanted = CallSettings {
            dnd: true,
            forward_busy: Some("102".into()),
            forward_no_answer: Some("0711123456".into()),
            no_answer_seconds: 30,
            follow_me: vec!["101+102:15".parse().unwrap()],
            ..CallSettings::default()
        };
        let stored = store
            .user_set_call_settings(DEFAULT_DOMAIN, "101", &wanted, 2)
            .unwrap();
        assert_eq!(stored, wanted);
        let bad = CallSettings {
            forward_always: Some("anna".into()),
            ..CallSettings::default()
        };
        assert!(matches!(
            store.user_set_call_settings(DEFAULT_DOMAIN, "101", &bad, 3),
            Err(StoreError::InvalidForwardTarget(_))
        ));
        let bad = CallSettings {
            no_answer_seconds: 2,
            ..CallSettings::default()
        };
        assert!(
            store
                .user_set_call_settings(DEFAULT_DOMAIN, "101", &bad, 3)
                .is_err()
        );
        let user = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
        assert_eq!(
            user.call_settings, wanted,
            "a refused change changes nothing"
        );
        assert!(
            store
                .user_set_call_settings(DEFAULT_DOMAIN, "999", &wanted, 4)
                .is_err()
        );
    }

    fn a_new_user_has_everything_off_and_settings_survive_a_reopen(backend: Backend) {
        let place = backend.durable();
        let store = place.open();
        with_user(&store);
        let user = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
        assert_eq!(user.call_settings, CallSettings::default());
        store.user_set_dnd(DEFAULT_DOMAIN, "101", true, 2).unwrap();
        store
            .user_set_forward(
                DEFAULT_DOMAIN,
                "101",
                ForwardKind::Always,
                Some("102"),
                None,
                3,
            )
            .unwrap();
        store
            .user_set_forward(
                DEFAULT_DOMAIN,
                "101",
                ForwardKind::NoAnswer,
                Some("0711123456"),
                Some(15),
                4,
            )
            .unwrap();
        let steps: Vec<FollowMeStep> = ["101@192.168.10.0/24:15", "101@10.98.0.0/16+017112345:20"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        store
            .user_set_follow_me(DEFAULT_DOMAIN, "101", &steps, 5)
            .unwrap();
        drop(store);
        let store = place.open();
        let settings = store
            .user_get(DEFAULT_DOMAIN, "101")
            .unwrap()
            .unwrap()
            .call_settings;
        assert!(settings.dnd);
        assert_eq!(settings.forward(ForwardKind::Always), Some("102"));
        assert_eq!(settings.forward(ForwardKind::Busy), None);
        assert_eq!(settings.forward(ForwardKind::NoAnswer), Some("0711123456"));
        assert_eq!(settings.no_answer_seconds, 15);
        assert_eq!(settings.follow_me, steps);
        assert_eq!(settings.follow_me[1].targets[1].number, "017112345");
        let cleared = store
            .user_set_forward(DEFAULT_DOMAIN, "101", ForwardKind::Always, None, None, 6)
            .unwrap();
        assert_eq!(cleared.forward_always, None);
        assert_eq!(cleared.forward_no_answer.as_deref(), Some("0711123456"));
        drop(store);
    }

    fn bad_targets_steps_and_times_are_refused_and_nothing_changes(backend: Backend) {
        let store = backend.open();
        with_user(&store);
        for bad in ["", "10a", "sip:x", "+", &"1".repeat(40)] {
            assert!(
                matches!(
                    store.user_set_forward(
                        DEFAULT_DOMAIN,
                        "101",
                        ForwardKind::Busy,
                        Some(bad),
                        None,
                        2
                    ),
                    Err(StoreError::InvalidForwardTarget(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            store.user_set_forward(
                DEFAULT_DOMAIN,
                "101",
                ForwardKind::NoAnswer,
                Some("102"),
                Some(2),
                2
            ),
            Err(StoreError::InvalidRingSeconds(2))
        ));
        for bad in ["101", "101:x", ":15", "101@300.1.1.1/8:15", "101:1000"] {
            assert!(bad.parse::<FollowMeStep>().is_err(), "{bad:?}");
        }
        assert!(matches!(
            store.user_set_dnd(DEFAULT_DOMAIN, "999", true, 2),
            Err(StoreError::NoSuchUser { .. })
        ));
        let user = store.user_get(DEFAULT_DOMAIN, "101").unwrap().unwrap();
        assert_eq!(user.call_settings, CallSettings::default());
    }

    on_both_backends!(
        a_new_user_has_everything_off_and_settings_survive_a_reopen,
        all_settings_are_replaced_together_or_not_at_all,
        bad_targets_steps_and_times_are_refused_and_nothing_changes,
    );
}
