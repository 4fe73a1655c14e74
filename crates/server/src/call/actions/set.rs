//! The `set` action: the caller ID that the calls the rule places from then on present
//! (`set = { caller_id = "+49 711 1234-50", caller_name = "Sozialamt" }`).

use crate::call::logic::CallLogic;

/// Longest number presented; E.164 has 15 digits, extensions and prefixes fit.
const MAX_NUMBER_CHARS: usize = 32;
/// Longest name presented (phones show far less).
const MAX_NAME_CHARS: usize = 64;

impl CallLogic {
    /// Takes `number` and `name` (expanded from the rule, so possibly from what a caller
    /// sent) for the calls placed later. A number that is not digits with an optional `+`
    /// would break the From URI and is not taken; the call goes on with the caller's own.
    pub(super) fn set_caller_id(&mut self, number: &Option<String>, name: &Option<String>) {
        if let Some(number) = number {
            match presentable_number(number) {
                Some(clean) => self.caller_id.number = Some(clean),
                None => {
                    tracing::warn!(%number, "set: caller_id is not a phone number (digits, optionally + first); the caller's own is kept")
                }
            }
        }
        if let Some(name) = name {
            let clean: String = name
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_NAME_CHARS)
                .collect();
            self.caller_id.name = Some(clean.trim().to_owned()).filter(|n| !n.is_empty());
        }
        tracing::info!(number = ?self.caller_id.number, name = ?self.caller_id.name, "set: caller ID for the calls placed next");
    }
}

/// `number` without the separators people write (spaces, `-`, `/`, `(`, `)`), if the rest is
/// digits with an optional leading `+`.
fn presentable_number(number: &str) -> Option<String> {
    let clean: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '/' | '(' | ')'))
        .collect();
    let digits = clean.strip_prefix('+').unwrap_or(&clean);
    (!digits.is_empty()
        && clean.len() <= MAX_NUMBER_CHARS
        && digits.bytes().all(|b| b.is_ascii_digit()))
    .then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::presentable_number;

    #[test]
    fn only_digits_with_an_optional_plus_are_presented() {
        assert_eq!(
            presentable_number("+49 711 1234-50").as_deref(),
            Some("+49711123450")
        );
        assert_eq!(
            presentable_number("0711/1234(50)").as_deref(),
            Some("0711123450")
        );
        assert_eq!(presentable_number("250").as_deref(), Some("250"));
        for bad in [
            "",
            "+",
            "anna@evil",
            "12;tag=x",
            "12\r\nVia: x",
            "1+2",
            &"9".repeat(33),
        ] {
            assert_eq!(presentable_number(bad), None, "{bad:?}");
        }
    }
}
