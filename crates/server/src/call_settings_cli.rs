//! Reading and describing a user's call settings (do not disturb, forwarding, follow-me) for
//! the `user` commands; the phone's feature codes change the same stored settings.

use store::{CallSettings, FollowMeStep, ForwardKind};

/// The word for a switch.
pub fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// A forwarding kind and its target, `None` for `off`.
pub fn parse_forward(kind: &str, target: &str) -> Result<(ForwardKind, Option<String>), String> {
    let kind: ForwardKind = kind
        .parse()
        .map_err(|err: store::StoreError| err.to_string())?;
    Ok((kind, parse_target(target)?))
}

/// A forwarding target as an admin or user writes it: `None` for `off` or nothing, else the
/// number without the spaces, dashes and slashes of a business card.
pub fn parse_target(target: &str) -> Result<Option<String>, String> {
    let target = target.trim();
    if target.is_empty() || target.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let number: String = target
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '/'))
        .collect();
    store::validate_forward_target(&number).map_err(|err| err.to_string())?;
    Ok(Some(number))
}

/// A change to some of a user's call settings, as the web console's form and API send it
/// (`None`: keep what is set); applied with [`CallSettingsChange::apply`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallSettingsChange {
    /// Do not disturb on or off.
    pub dnd: Option<bool>,
    /// Forward every call here; `Some("")` or `Some("off")` clears it (as for the others).
    pub forward_always: Option<String>,
    /// Forward here when busy.
    pub forward_busy: Option<String>,
    /// Forward here when unanswered.
    pub forward_no_answer: Option<String>,
    /// Ring time before the no-answer forwarding.
    pub no_answer_seconds: Option<u32>,
    /// Steps as `user follow-me` takes them; `Some([])` or `Some(["off"])` ends follow-me.
    pub follow_me: Option<Vec<String>>,
}

impl CallSettingsChange {
    /// `current` with this change, each part read as the `user` commands read it; the store
    /// checks the whole again when it is written.
    pub fn apply(&self, current: &CallSettings) -> Result<CallSettings, String> {
        let mut settings = current.clone();
        if let Some(dnd) = self.dnd {
            settings.dnd = dnd;
        }
        for (text, slot, kind) in [
            (
                &self.forward_always,
                &mut settings.forward_always,
                ForwardKind::Always,
            ),
            (
                &self.forward_busy,
                &mut settings.forward_busy,
                ForwardKind::Busy,
            ),
            (
                &self.forward_no_answer,
                &mut settings.forward_no_answer,
                ForwardKind::NoAnswer,
            ),
        ] {
            if let Some(text) = text {
                *slot = parse_target(text).map_err(|err| format!("{kind} forwarding: {err}"))?;
            }
        }
        if let Some(seconds) = self.no_answer_seconds {
            if !store::RING_SECONDS.contains(&seconds) {
                return Err(store::StoreError::InvalidRingSeconds(seconds).to_string());
            }
            settings.no_answer_seconds = seconds;
        }
        if let Some(steps) = &self.follow_me {
            let steps: Vec<String> = steps
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            if steps.len() > store::MAX_FOLLOW_ME_STEPS {
                return Err(store::StoreError::TooManyFollowMeSteps(steps.len()).to_string());
            }
            settings.follow_me = parse_follow_me(&steps)?;
        }
        Ok(settings)
    }
}

/// One line for the audit log and the user table: do not disturb, forwarding, follow-me.
pub fn describe_all(settings: &CallSettings) -> String {
    format!(
        "do not disturb {}; forwarding {}; follow-me {}",
        on_off(settings.dnd),
        describe_forwarding(settings),
        describe_follow_me(&settings.follow_me)
    )
}

/// Follow-me steps from the command line; `off` alone clears them.
pub fn parse_follow_me(steps: &[String]) -> Result<Vec<FollowMeStep>, String> {
    if let [only] = steps
        && only == "off"
    {
        return Ok(Vec::new());
    }
    steps
        .iter()
        .map(|step| {
            step.parse()
                .map_err(|err: store::StoreError| err.to_string())
        })
        .collect()
}

/// One line: which forwardings are on and where to.
pub fn describe_forwarding(settings: &CallSettings) -> String {
    let mut parts = Vec::new();
    for kind in [
        ForwardKind::Always,
        ForwardKind::Busy,
        ForwardKind::NoAnswer,
    ] {
        if let Some(target) = settings.forward(kind) {
            match kind {
                ForwardKind::NoAnswer => parts.push(format!(
                    "no-answer after {} s to {target}",
                    settings.no_answer_seconds
                )),
                _ => parts.push(format!("{kind} to {target}")),
            }
        }
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// One line: the steps in order.
pub fn describe_follow_me(steps: &[FollowMeStep]) -> String {
    if steps.is_empty() {
        return "off (the user's phones ring)".to_owned();
    }
    steps
        .iter()
        .map(|step| {
            let targets: Vec<String> = step.targets.iter().map(ToString::to_string).collect();
            format!("{} for {} s", targets.join(" and "), step.seconds)
        })
        .collect::<Vec<_>>()
        .join(", then ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_targets_are_read_as_written_on_a_card_and_described_in_one_line() {
        let (kind, target) = parse_forward("always", "0711 123-456").unwrap();
        assert_eq!(
            (kind, target.as_deref()),
            (ForwardKind::Always, Some("0711123456"))
        );
        assert_eq!(
            parse_forward("busy", "off").unwrap(),
            (ForwardKind::Busy, None)
        );
        assert!(
            parse_forward("sometimes", "102")
                .unwrap_err()
                .contains("always, busy or no-answer")
        );
        assert!(parse_forward("always", "anna").is_err());
        let settings = CallSettings {
            forward_busy: Some("102".into()),
            forward_no_answer: Some("800".into()),
            no_answer_seconds: 15,
            ..CallSettings::default()
        };
        assert_eq!(
            describe_forwarding(&settings),
            "busy to 102, no-answer after 15 s to 800"
        );
        assert_eq!(describe_forwarding(&CallSettings::default()), "none");
    }

    #[test]
    fn follow_me_steps_are_read_in_order_and_off_clears_them() {
        let steps = parse_follow_me(&[
            "101@192.168.10.0/24:15".into(),
            "101@10.98.0.0/16+0171123:20".into(),
        ])
        .unwrap();
        assert_eq!(
            describe_follow_me(&steps),
            "101@192.168.10.0/24 for 15 s, then 101@10.98.0.0/16 and 0171123 for 20 s"
        );
        assert!(parse_follow_me(&["off".into()]).unwrap().is_empty());
        assert!(parse_follow_me(&["101".into()]).is_err());
    }

    #[test]
    fn a_settings_change_keeps_what_it_does_not_name_and_reads_parts_as_the_cli_does() {
        let current = CallSettings {
            forward_busy: Some("102".into()),
            follow_me: vec!["101:15".parse().unwrap()],
            ..CallSettings::default()
        };
        let changed = CallSettingsChange {
            forward_always: Some("0711 123-456".into()),
            dnd: Some(true),
            ..CallSettingsChange::default()
        }
        .apply(&current)
        .unwrap();
        assert_eq!(changed.forward_always.as_deref(), Some("0711123456"));
        assert_eq!(changed.forward_busy.as_deref(), Some("102"));
        assert!(changed.dnd);
        assert_eq!(changed.follow_me, current.follow_me);
        let cleared = CallSettingsChange {
            forward_busy: Some(String::new()),
            follow_me: Some(vec!["off".into()]),
            ..CallSettingsChange::default()
        }
        .apply(&changed)
        .unwrap();
        assert_eq!(cleared.forward_busy, None);
        assert!(cleared.follow_me.is_empty());
        let err = CallSettingsChange {
            forward_no_answer: Some("anna".into()),
            ..CallSettingsChange::default()
        }
        .apply(&current)
        .unwrap_err();
        assert!(err.starts_with("no-answer forwarding:"), "{err}");
        assert!(
            CallSettingsChange {
                no_answer_seconds: Some(1),
                ..CallSettingsChange::default()
            }
            .apply(&current)
            .is_err()
        );
        assert!(
            CallSettingsChange {
                follow_me: Some(vec!["101".into()]),
                ..CallSettingsChange::default()
            }
            .apply(&current)
            .is_err()
        );
    }
}
