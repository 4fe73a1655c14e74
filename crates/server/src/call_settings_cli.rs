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
    if target == "off" {
        return Ok((kind, None));
    }
    // Numbers are often written with spaces or dashes, as on a business card.
    let number: String = target
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '/'))
        .collect();
    store::validate_forward_target(&number).map_err(|err| err.to_string())?;
    Ok((kind, Some(number)))
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
}
