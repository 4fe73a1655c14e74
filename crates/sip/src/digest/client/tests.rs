use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;
use crate::digest::{
    AuthFailure, DigestAuthenticator, DigestConfig, expected_response, parse_authorization,
};

fn password(user: &str, password: &str) -> ClientCredentials {
    ClientCredentials {
        username: user.into(),
        secret: Secret::Password(password.into()),
    }
}

fn one(value: &str) -> Result<Challenge, ChallengeError> {
    let mut all = parse_challenges(value);
    assert_eq!(all.len(), 1, "{value}: {all:?}");
    all.remove(0)
}

fn mufasa() -> ClientCredentials {
    password("Mufasa", "Circle of Life")
}

// RFC 7616 §3.9.1: the server offers SHA-256 and MD5 for the same nonce, in two headers.
const RFC7616_SHA256_CHALLENGE: &str = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
const RFC7616_MD5_CHALLENGE: &str = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

#[test]
fn reads_the_rfc7616_challenges_and_prefers_sha256() {
    let md5_first = [RFC7616_MD5_CHALLENGE, RFC7616_SHA256_CHALLENGE];
    let chosen = select_challenge(md5_first, &mufasa().secret, "Mufasa").unwrap();
    assert_eq!(
        chosen,
        Challenge {
            realm: "http-auth@example.org".into(),
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            opaque: Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into()),
            algorithm: Algorithm::Sha256,
            algorithm_named: true,
            qop: Qop::Auth,
            stale: false,
        }
    );
}

#[test]
fn answers_the_rfc7616_sha256_vector() {
    let challenge = one(RFC7616_SHA256_CHALLENGE).unwrap();
    let value = challenge
        .answer(&mufasa(), "GET", "/dir/index.html", RFC7616_CNONCE, 1)
        .unwrap();
    let sent = parse_authorization(&value).unwrap();
    assert_eq!(
        sent.response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    assert_eq!(sent.algorithm, Algorithm::Sha256);
    assert_eq!(sent.nc.as_deref(), Some("00000001"));
    assert_eq!(sent.qop.as_deref(), Some("auth"));
    assert_eq!(sent.cnonce.as_deref(), Some(RFC7616_CNONCE));
    assert_eq!(
        sent.opaque.as_deref(),
        Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
    );
    assert!(value.contains("algorithm=SHA-256"));
}

#[test]
fn answers_the_rfc7616_md5_vector() {
    let challenge = one(RFC7616_MD5_CHALLENGE).unwrap();
    let value = challenge
        .answer(&mufasa(), "GET", "/dir/index.html", RFC7616_CNONCE, 1)
        .unwrap();
    let sent = parse_authorization(&value).unwrap();
    assert_eq!(sent.response, "8ca523f5e9506fed4657c9700eebdbec");
    assert!(value.contains("algorithm=MD5"));
}

#[test]
fn answers_the_rfc2617_example_without_naming_the_algorithm() {
    // RFC 2617 §3.5: no `algorithm` in the challenge, so none in the answer.
    let challenge = one(
        r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
    )
    .unwrap();
    assert_eq!(challenge.algorithm, Algorithm::Md5);
    assert!(!challenge.algorithm_named);
    let value = challenge
        .answer(
            &password("Mufasa", "Circle Of Life"),
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        )
        .unwrap();
    assert!(!value.contains("algorithm"));
    let sent = parse_authorization(&value).unwrap();
    assert_eq!(sent.response, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn answers_the_rfc2069_form_when_no_qop_is_offered() {
    let challenge = one(r#"Digest realm="old", nonce="n1""#).unwrap();
    assert_eq!(challenge.qop, Qop::Absent);
    let value = challenge
        .answer(&password("bob", "pw"), "REGISTER", "sip:old", "ignored", 7)
        .unwrap();
    assert!(!value.contains("cnonce") && !value.contains("nc=") && !value.contains("qop"));
    let sent = parse_authorization(&value).unwrap();
    let ha1 = Ha1::compute(Algorithm::Md5, "bob", "old", "pw");
    assert_eq!(sent.response, expected_response(&ha1, "REGISTER", &sent));
}

#[test]
fn parameter_names_are_case_insensitive_and_unknown_ones_ignored() {
    let c = one(
        r#"digest REALM="r", Nonce="n", ALGORITHM=sha-256, QoP="AUTH", StAlE=TRUE, domain="sip:r", charset=UTF-8, userhash=false, future-ext="x""#,
    )
    .unwrap();
    assert_eq!(c.realm, "r");
    assert_eq!(c.nonce, "n");
    assert_eq!(c.algorithm, Algorithm::Sha256);
    assert_eq!(c.qop, Qop::Auth);
    assert!(c.stale);
}

#[test]
fn quoted_strings_keep_commas_and_unescape_quotes() {
    let c = one(r#"Digest realm="a, \"b\" \\ c", nonce="x,y=z", opaque="o,p""#).unwrap();
    assert_eq!(c.realm, r#"a, "b" \ c"#);
    assert_eq!(c.nonce, "x,y=z");
    assert_eq!(c.opaque.as_deref(), Some("o,p"));
}

#[test]
fn tolerates_lws_around_equals_and_empty_list_elements() {
    let c = one("Digest  ,realm = \"r\" ,, nonce=\t\"n\" ,").unwrap();
    assert_eq!((c.realm.as_str(), c.nonce.as_str()), ("r", "n"));
}

#[test]
fn stale_is_true_only_when_it_says_true() {
    for (text, stale) in [
        ("stale=true", true),
        ("stale=\"TRUE\"", true),
        ("stale=false", false),
        ("stale=yes", false),
        ("x=1", false),
    ] {
        let c = one(&format!(r#"Digest realm="r", nonce="n", {text}"#)).unwrap();
        assert_eq!(c.stale, stale, "{text}");
    }
}

#[test]
fn one_value_may_hold_several_challenges_of_several_schemes() {
    let value = r#"Basic realm="r", Negotiate YWJj==, Digest realm="r", nonce="m", algorithm=MD5, Digest realm="r", nonce="s", algorithm=SHA-256, qop="auth""#;
    let all = parse_challenges(value);
    assert_eq!(all.len(), 2);
    let chosen = select_challenge([value], &Secret::Password("pw".into()), "u").unwrap();
    assert_eq!(chosen.nonce, "s");
    assert_eq!(chosen.algorithm, Algorithm::Sha256);
}

#[test]
fn among_equals_the_first_offered_wins() {
    let chosen = select_challenge(
        [
            r#"Digest realm="r", nonce="first", qop="auth""#,
            r#"Digest realm="r", nonce="second", qop="auth""#,
        ],
        &Secret::Password("pw".into()),
        "u",
    )
    .unwrap();
    assert_eq!(chosen.nonce, "first");
}

#[test]
fn unusable_challenges_are_skipped_when_another_one_works() {
    let chosen = select_challenge(
        [
            r#"Digest realm="r", nonce="a", algorithm=SHA-512-256, qop="auth""#,
            r#"Digest realm="r", nonce="b", algorithm=MD5-sess, qop="auth""#,
            r#"Digest realm="r", nonce="c", qop="auth-int""#,
            r#"Digest realm="r", nonce="d", algorithm=MD5, qop="auth""#,
        ],
        &Secret::Password("pw".into()),
        "u",
    )
    .unwrap();
    assert_eq!(chosen.nonce, "d");
}

#[test]
fn refusals_are_typed() {
    let secret = Secret::Password("pw".into());
    let select = |values: &[&str]| select_challenge(values, &secret, "u");
    assert_eq!(select(&[]), Err(ChallengeError::Missing));
    assert_eq!(
        select(&[r#"Basic realm="r""#]),
        Err(ChallengeError::NotDigest)
    );
    assert_eq!(
        select(&[r#"Digest realm="r""#]),
        Err(ChallengeError::MissingParameter("nonce"))
    );
    assert_eq!(
        select(&[r#"Digest nonce="n""#]),
        Err(ChallengeError::MissingParameter("realm"))
    );
    assert_eq!(
        select(&[r#"Digest realm="r", nonce="n", nonce="m""#]),
        Err(ChallengeError::DuplicateParameter)
    );
    assert_eq!(
        select(&[r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#]),
        Err(ChallengeError::UnsupportedAlgorithm)
    );
    assert_eq!(
        select(&[r#"Digest realm="r", nonce="n", qop="auth-int""#]),
        Err(ChallengeError::UnsupportedQop)
    );
    assert!(matches!(
        select(&[r#"Digest realm="r, nonce="n""#]),
        Err(ChallengeError::Malformed(_))
    ));
    assert!(matches!(
        select(&[r#"realm="r", nonce="n""#]),
        Err(ChallengeError::Malformed(_))
    ));
}

#[test]
fn stored_ha1s_answer_only_their_realm_and_algorithms() {
    let md5_only = Secret::Ha1 {
        realm: "carrier".into(),
        credentials: Credentials::default().with(Ha1::compute(
            Algorithm::Md5,
            "u",
            "carrier",
            "pw",
        )),
    };
    let both = [
        r#"Digest realm="carrier", nonce="s", algorithm=SHA-256, qop="auth""#,
        r#"Digest realm="carrier", nonce="m", algorithm=MD5, qop="auth""#,
    ];
    let chosen = select_challenge(both, &md5_only, "u").unwrap();
    assert_eq!(chosen.algorithm, Algorithm::Md5);
    let creds = ClientCredentials {
        username: "u".into(),
        secret: md5_only.clone(),
    };
    let from_ha1 = chosen.answer(&creds, "REGISTER", "sip:c", "cn", 1).unwrap();
    let from_password = chosen
        .answer(&password("u", "pw"), "REGISTER", "sip:c", "cn", 1)
        .unwrap();
    assert_eq!(from_ha1, from_password);
    assert_eq!(
        select_challenge(
            [r#"Digest realm="other", nonce="m", qop="auth""#],
            &md5_only,
            "u"
        ),
        Err(ChallengeError::NoSecretForRealm)
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let creds = password("u", "hunter2");
    assert!(!format!("{creds:?}").contains("hunter2"));
}

#[test]
fn quotes_in_the_username_are_escaped() {
    let c = one(r#"Digest realm="r", nonce="n", qop="auth""#).unwrap();
    let value = c
        .answer(&password(r#"a"b\c"#, "pw"), "REGISTER", "sip:r", "cn", 1)
        .unwrap();
    assert_eq!(parse_authorization(&value).unwrap().username, r#"a"b\c"#);
}

#[test]
fn the_nonce_count_grows_with_each_use() {
    let c = one(r#"Digest realm="r", nonce="n", qop="auth""#).unwrap();
    let mut client = DigestClient::new(c);
    let creds = password("u", "pw");
    for expected in ["00000001", "00000002", "00000003"] {
        let value = client.authorize(&creds, "REGISTER", "sip:r", "cn").unwrap();
        assert_eq!(
            parse_authorization(&value).unwrap().nc.as_deref(),
            Some(expected)
        );
    }
    assert_eq!(client.uses(), 3);
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// Our client against our own server: challenge, answer, verify, for every algorithm the
/// server may be limited to, and again with the next nonce-count.
#[test]
fn our_server_accepts_what_the_client_answers() {
    for algorithms in [
        vec![Algorithm::Md5],
        vec![Algorithm::Sha256],
        vec![Algorithm::Sha256, Algorithm::Md5],
    ] {
        let mut config = DigestConfig::new("example.com");
        config.algorithms = algorithms.clone();
        config.opaque = Some("op\"aque".into());
        let mut server = DigestAuthenticator::new(config, SECRET).unwrap();
        let offered: Vec<String> = algorithms
            .iter()
            .map(|a| server.challenge(*a, at(0), false))
            .collect();
        let creds = password("alice", "s3cret");
        let challenge = select_challenge(&offered, &creds.secret, "alice").unwrap();
        assert_eq!(challenge.algorithm, algorithms[0]);
        let mut client = DigestClient::new(challenge);
        let stored = Credentials::from_password("alice", "example.com", "s3cret");
        for secs in [1, 2] {
            let value = client
                .authorize(&creds, "REGISTER", "sip:example.com", &format!("cn{secs}"))
                .unwrap();
            let auth = parse_authorization(&value).unwrap();
            assert_eq!(
                server.verify(&auth, "REGISTER", Some(&stored), at(secs)),
                Ok(()),
                "{algorithms:?} use {secs}"
            );
        }
        // The same nonce-count again is a replay.
        let mut replay = client.clone();
        replay.uses -= 1;
        let value = replay
            .authorize(&creds, "REGISTER", "sip:example.com", "cn9")
            .unwrap();
        let auth = parse_authorization(&value).unwrap();
        assert_eq!(
            server.verify(&auth, "REGISTER", Some(&stored), at(3)),
            Err(AuthFailure::Replayed)
        );
    }
}

#[test]
fn our_server_refuses_a_wrong_password_from_the_client() {
    let mut server = DigestAuthenticator::new(DigestConfig::new("example.com"), SECRET).unwrap();
    let offered = server.challenges(at(0), false);
    let creds = password("alice", "wrong");
    let challenge = select_challenge(&offered, &creds.secret, "alice").unwrap();
    let value = challenge
        .answer(&creds, "REGISTER", "sip:example.com", "cn", 1)
        .unwrap();
    let auth = parse_authorization(&value).unwrap();
    let stored = Credentials::from_password("alice", "example.com", "s3cret");
    assert_eq!(
        server.verify(&auth, "REGISTER", Some(&stored), at(1)),
        Err(AuthFailure::WrongResponse)
    );
}

proptest! {
    #[test]
    fn challenge_parser_never_panics_on_any_text(s in "\\PC*") {
        let _ = parse_challenges(&s);
        let _ = select_challenge([&s], &Secret::Password("pw".into()), "u");
    }

    #[test]
    fn challenge_parser_never_panics_on_digest_soup(
        s in r#"(Digest|Basic|digest)?( |\t)*([a-zA-Z=,"\\ \t:/@é-]|[0-9]){0,160}"#
    ) {
        for c in parse_challenges(&s).into_iter().flatten() {
            let answer = c.answer(&password("u", "pw"), "REGISTER", "sip:r", "cn", 1);
            prop_assert!(answer.is_ok());
            // What we send must read back, whatever the server's strings held.
            prop_assert!(parse_authorization(&answer.unwrap()).is_ok());
        }
    }
}
