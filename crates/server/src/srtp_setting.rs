//! A user's SRTP setting between the admin, the store and the call code: the store keeps the
//! word (`off`, `optional`, `required`; NULL for the server's default) without knowing the
//! media crate, `media::sdp::SrtpPolicy` says what it means, and this module reads what an
//! admin typed and what the store holds.

use media::sdp::SrtpPolicy;

/// Where a user's setting is not their own, `user show` says so; the CLI does not read the
/// server's config file, so it names the key instead of guessing its value.
const SERVER_DEFAULT: &str = "server default (srtp in the server config; optional unless set)";

/// Reads a setting as an admin writes it (any case); a wrong word is refused with the three
/// right ones.
pub fn parse(word: &str) -> Result<SrtpPolicy, String> {
    word.parse()
        .map_err(|err: media::sdp::UnknownSrtpPolicy| err.to_string())
}

/// The policy a stored word stands for (`None`: the server's default). A word this build does
/// not know (written by hand or by a newer build) is returned as well and counts as
/// `Required`: an unknown word must never quietly let a user's media go unencrypted.
pub fn of_stored(word: Option<&str>) -> (Option<SrtpPolicy>, Option<&str>) {
    match word.map(str::parse::<SrtpPolicy>) {
        None => (None, None),
        Some(Ok(policy)) => (Some(policy), None),
        Some(Err(_)) => (Some(SrtpPolicy::Required), word),
    }
}

/// The setting as `user show` and `user srtp` print it, saying where it comes from.
pub fn describe(word: Option<&str>) -> String {
    match of_stored(word) {
        (None, _) => SERVER_DEFAULT.to_owned(),
        (Some(policy), None) => policy.to_string(),
        (Some(policy), Some(unknown)) => {
            format!("{policy} (the stored word {unknown:?} is unknown to this build)")
        }
    }
}

/// The short form for `user list`: `default`, or the word.
pub fn short(word: Option<&str>) -> String {
    match of_stored(word) {
        (None, _) => "default".to_owned(),
        (Some(policy), None) => policy.to_string(),
        (Some(policy), Some(unknown)) => format!("{policy} (unknown {unknown:?})"),
    }
}

/// What to tell the admin after asking for encryption: SDES keys are only as secret as the
/// signalling that carries them.
pub fn sdes_note(policy: SrtpPolicy) -> Option<&'static str> {
    (policy != SrtpPolicy::Off).then_some(
        "note: SRTP keys travel in the SDP (SDES, RFC 4568); they are secret only where the phone's signalling runs over TLS",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_words_parse_in_any_case_and_a_wrong_one_names_the_right_ones() {
        assert_eq!(parse("off"), Ok(SrtpPolicy::Off));
        assert_eq!(parse("Optional"), Ok(SrtpPolicy::Optional));
        assert_eq!(parse("REQUIRED"), Ok(SrtpPolicy::Required));
        let err = parse("on").unwrap_err();
        assert!(
            err.contains("'on'") && err.contains("expected off, optional or required"),
            "{err}"
        );
    }

    #[test]
    fn a_stored_word_this_build_does_not_know_counts_as_required() {
        assert_eq!(of_stored(None), (None, None));
        assert_eq!(of_stored(Some("off")), (Some(SrtpPolicy::Off), None));
        assert_eq!(
            of_stored(Some("dtls")),
            (Some(SrtpPolicy::Required), Some("dtls"))
        );
        assert_eq!(
            describe(Some("dtls")),
            "required (the stored word \"dtls\" is unknown to this build)"
        );
        assert_eq!(short(Some("dtls")), "required (unknown \"dtls\")");
    }

    #[test]
    fn no_setting_is_shown_as_the_server_default() {
        assert!(describe(None).starts_with("server default"));
        assert_eq!(short(None), "default");
        assert_eq!(describe(Some("required")), "required");
        assert_eq!(short(Some("optional")), "optional");
    }
}
