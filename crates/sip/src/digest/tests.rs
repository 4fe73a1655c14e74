use super::*;

use proptest::prelude::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const REALM: &str = "example.com";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn server() -> DigestAuthenticator {
    DigestAuthenticator::new(DigestConfig::new(REALM), SECRET).unwrap()
}

fn alice() -> Credentials {
    Credentials::from_password("alice", REALM, "secret")
}

/// The nonce of a challenge value, read the way a client would.
fn nonce_of(challenge: &str) -> String {
    let params = parse_auth_params(challenge.strip_prefix("Digest ").unwrap()).unwrap();
    params
        .into_iter()
        .find(|(n, _)| *n == "nonce")
        .unwrap()
        .1
        .into_owned()
}

/// What a phone answers to `nonce` for a REGISTER.
fn answer(
    algorithm: Algorithm,
    user: &str,
    password: &str,
    nonce: &str,
    nc: u32,
) -> DigestResponse {
    let mut auth = DigestResponse {
        username: user.into(),
        realm: REALM.into(),
        nonce: nonce.into(),
        uri: "sip:example.com".into(),
        response: String::new(),
        algorithm,
        cnonce: Some("0a4f113b".into()),
        nc: Some(format!("{nc:08x}")),
        qop: Some("auth".into()),
        opaque: None,
    };
    let ha1 = Ha1::compute(algorithm, user, REALM, password);
    auth.response = expected_response(&ha1, "REGISTER", &auth);
    auth
}

// RFC 7616 §3.9.1: the "Mufasa" example, MD5 and SHA-256 responses for the same request.
const RFC7616_MD5: &str = r#"Digest username="Mufasa",
    realm="http-auth@example.org",
    uri="/dir/index.html",
    algorithm=MD5,
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    nc=00000001,
    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    qop=auth,
    response="8ca523f5e9506fed4657c9700eebdbec",
    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

const RFC7616_SHA256: &str = r#"Digest username="Mufasa",
    realm="http-auth@example.org",
    uri="/dir/index.html",
    algorithm=SHA-256,
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    nc=00000001,
    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    qop=auth,
    response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

/// The RFC's header is folded over lines; SIP unfolds to single spaces before we see it.
fn unfold(s: &str) -> String {
    s.split('\n').map(str::trim).collect::<Vec<_>>().join(" ")
}

#[test]
fn reproduces_rfc7616_md5_example() {
    let auth = parse_authorization(&unfold(RFC7616_MD5)).unwrap();
    assert_eq!(auth.algorithm, Algorithm::Md5);
    assert_eq!(auth.nonce_count(), Some(1));
    let ha1 = Ha1::compute(
        Algorithm::Md5,
        "Mufasa",
        "http-auth@example.org",
        "Circle of Life",
    );
    assert_eq!(
        expected_response(&ha1, "GET", &auth),
        "8ca523f5e9506fed4657c9700eebdbec"
    );
    assert_eq!(auth.response, "8ca523f5e9506fed4657c9700eebdbec");
}

#[test]
fn reproduces_rfc7616_sha256_example() {
    let auth = parse_authorization(&unfold(RFC7616_SHA256)).unwrap();
    assert_eq!(auth.algorithm, Algorithm::Sha256);
    let ha1 = Ha1::compute(
        Algorithm::Sha256,
        "Mufasa",
        "http-auth@example.org",
        "Circle of Life",
    );
    assert_eq!(
        expected_response(&ha1, "GET", &auth),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn ha1_matches_rfc2617_example() {
    // RFC 2617 §3.5: HA1 of Mufasa/testrealm@host.com/"Circle Of Life".
    let ha1 = Ha1::compute(
        Algorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
    );
    assert_eq!(ha1.as_hex(), "939e7578ed9e3c518a452acee763bce9");
}

#[test]
fn ha1_from_hex_checks_length_and_digits_and_lowercases() {
    let h = Ha1::from_hex(Algorithm::Md5, "939E7578ED9E3C518A452ACEE763BCE9").unwrap();
    assert_eq!(h.as_hex(), "939e7578ed9e3c518a452acee763bce9");
    assert!(Ha1::from_hex(Algorithm::Sha256, "939e7578ed9e3c518a452acee763bce9").is_err());
    assert!(Ha1::from_hex(Algorithm::Md5, "z39e7578ed9e3c518a452acee763bce9").is_err());
}

#[test]
fn ha1_debug_does_not_print_the_hash() {
    let h = Ha1::compute(Algorithm::Md5, "a", "b", "c");
    assert!(!format!("{h:?}").contains(h.as_hex()));
}

#[test]
fn challenges_offer_sha256_first_then_md5_with_qop_auth() {
    let [first, second] = server().challenges(at(0), false);
    assert!(first.starts_with("Digest realm=\"example.com\", nonce=\""));
    assert!(first.contains("algorithm=SHA-256"));
    assert!(second.contains("algorithm=MD5"));
    for c in [&first, &second] {
        assert!(c.contains("qop=\"auth\""));
        assert!(!c.contains("stale"));
        assert!(!c.contains("opaque"));
    }
    assert_ne!(nonce_of(&first), nonce_of(&second), "each nonce is fresh");
}

#[test]
fn challenge_marks_stale_and_carries_opaque_and_escapes_realm() {
    let mut config = DigestConfig::new(r#"odd "realm"\x"#);
    config.opaque = Some("op".into());
    let s = DigestAuthenticator::new(config, SECRET).unwrap();
    let c = s.challenge(Algorithm::Md5, at(0), true);
    assert!(c.starts_with(r#"Digest realm="odd \"realm\"\\x""#), "{c}");
    assert!(c.contains(", opaque=\"op\""));
    assert!(c.ends_with(", stale=true"));
}

#[test]
fn rejects_short_secret() {
    assert_eq!(
        DigestAuthenticator::new(DigestConfig::new(REALM), b"short").unwrap_err(),
        WeakSecret
    );
}

#[test]
fn register_round_trip_with_both_algorithms() {
    let mut s = server();
    for (i, algorithm) in [Algorithm::Sha256, Algorithm::Md5].into_iter().enumerate() {
        let nonce = nonce_of(&s.challenge(algorithm, at(0), false));
        let auth = answer(algorithm, "alice", "secret", &nonce, 1);
        // Through the text form, as the phone sends it.
        let header = format!(
            r#"Digest username="{}", realm="{}", nonce="{}", uri="{}", response="{}", algorithm={}, cnonce="{}", qop=auth, nc={}"#,
            auth.username,
            auth.realm,
            auth.nonce,
            auth.uri,
            auth.response,
            algorithm.token(),
            auth.cnonce.as_deref().unwrap(),
            auth.nc.as_deref().unwrap()
        );
        let parsed = parse_authorization(&header).unwrap();
        assert_eq!(parsed, auth);
        assert_eq!(
            s.verify(&parsed, "REGISTER", Some(&alice()), at(10)),
            Ok(()),
            "case {i}"
        );
    }
}

#[test]
fn accepts_upper_case_response_hex() {
    let mut s = server();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    let mut auth = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    auth.response = auth.response.to_ascii_uppercase();
    assert_eq!(s.verify(&auth, "REGISTER", Some(&alice()), at(1)), Ok(()));
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_answer() {
    let mut s = server();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    let wrong = answer(Algorithm::Md5, "alice", "guess", &nonce, 1);
    assert_eq!(
        s.verify(&wrong, "REGISTER", Some(&alice()), at(1)),
        Err(AuthFailure::WrongResponse)
    );
    let nobody = answer(Algorithm::Md5, "mallory", "guess", &nonce, 2);
    assert_eq!(
        s.verify(&nobody, "REGISTER", None, at(1)),
        Err(AuthFailure::WrongResponse)
    );
    assert!(AuthFailure::WrongResponse.counts_as_failure());
}

#[test]
fn response_for_another_method_is_wrong() {
    let mut s = server();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    let auth = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    assert_eq!(
        s.verify(&auth, "INVITE", Some(&alice()), at(1)),
        Err(AuthFailure::WrongResponse)
    );
}

#[test]
fn missing_ha1_for_the_algorithm_takes_the_unknown_user_path() {
    let mut s = server();
    let md5_only =
        Credentials::default().with(Ha1::compute(Algorithm::Md5, "alice", REALM, "secret"));
    let nonce = nonce_of(&s.challenge(Algorithm::Sha256, at(0), false));
    let auth = answer(Algorithm::Sha256, "alice", "secret", &nonce, 1);
    assert_eq!(
        s.verify(&auth, "REGISTER", Some(&md5_only), at(1)),
        Err(AuthFailure::WrongResponse)
    );
}

#[test]
fn nonce_is_stale_one_second_after_its_lifetime_but_not_at_it() {
    let mut s = server();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    let auth = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    assert_eq!(s.verify(&auth, "REGISTER", Some(&alice()), at(300)), Ok(()));
    let again = answer(Algorithm::Md5, "alice", "secret", &nonce, 2);
    let stale = s.verify(&again, "REGISTER", Some(&alice()), at(301));
    assert_eq!(stale, Err(AuthFailure::Stale));
    assert!(stale.unwrap_err().is_stale());
    assert!(!AuthFailure::Stale.counts_as_failure());
}

#[test]
fn wrong_password_with_old_nonce_is_not_stale() {
    let mut s = server();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    let auth = answer(Algorithm::Md5, "alice", "guess", &nonce, 1);
    assert_eq!(
        s.verify(&auth, "REGISTER", Some(&alice()), at(1000)),
        Err(AuthFailure::WrongResponse)
    );
}

#[test]
fn nonce_from_the_future_is_invalid_beyond_the_skew() {
    let mut s = server();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(100), false));
    let auth = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    assert_eq!(
        s.verify(&auth, "REGISTER", Some(&alice()), at(94)),
        Err(AuthFailure::InvalidNonce)
    );
    assert_eq!(s.verify(&auth, "REGISTER", Some(&alice()), at(95)), Ok(()));
}

#[test]
fn tampered_or_foreign_nonces_are_invalid() {
    let mut s = server();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    // Move the issue time forward by one second: the HMAC no longer matches.
    let mut bytes = unhex(&nonce).unwrap();
    bytes[7] = bytes[7].wrapping_add(1);
    let tampered = hex(&bytes);
    let auth = answer(Algorithm::Md5, "alice", "secret", &tampered, 1);
    assert_eq!(
        s.verify(&auth, "REGISTER", Some(&alice()), at(1)),
        Err(AuthFailure::InvalidNonce)
    );
    let other =
        DigestAuthenticator::new(DigestConfig::new(REALM), b"another secret 16 bytes").unwrap();
    let foreign = nonce_of(&other.challenge(Algorithm::Md5, at(0), false));
    let auth = answer(Algorithm::Md5, "alice", "secret", &foreign, 1);
    assert_eq!(
        s.verify(&auth, "REGISTER", Some(&alice()), at(1)),
        Err(AuthFailure::InvalidNonce)
    );
    for junk in ["", "abc", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"] {
        let auth = answer(Algorithm::Md5, "alice", "secret", junk, 1);
        assert_eq!(
            s.verify(&auth, "REGISTER", Some(&alice()), at(1)),
            Err(AuthFailure::InvalidNonce)
        );
    }
}

#[test]
fn nonce_of_another_realm_with_the_same_secret_is_invalid() {
    let mut s = server();
    let other = DigestAuthenticator::new(DigestConfig::new("other.example"), SECRET).unwrap();
    let nonce = nonce_of(&other.challenge(Algorithm::Md5, at(0), false));
    let auth = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    assert_eq!(
        s.verify(&auth, "REGISTER", Some(&alice()), at(1)),
        Err(AuthFailure::InvalidNonce)
    );
}

#[test]
fn nonce_count_must_grow() {
    let mut s = server();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    let first = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    assert_eq!(s.verify(&first, "REGISTER", Some(&alice()), at(1)), Ok(()));
    assert_eq!(
        s.verify(&first, "REGISTER", Some(&alice()), at(2)),
        Err(AuthFailure::Replayed)
    );
    let third = answer(Algorithm::Md5, "alice", "secret", &nonce, 3);
    assert_eq!(s.verify(&third, "REGISTER", Some(&alice()), at(3)), Ok(()));
    let second = answer(Algorithm::Md5, "alice", "secret", &nonce, 2);
    assert_eq!(
        s.verify(&second, "REGISTER", Some(&alice()), at(4)),
        Err(AuthFailure::Replayed)
    );
}

#[test]
fn a_failed_response_does_not_consume_a_nonce_count() {
    let mut s = server();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    let wrong = answer(Algorithm::Md5, "alice", "guess", &nonce, 1);
    assert!(s.verify(&wrong, "REGISTER", Some(&alice()), at(1)).is_err());
    let right = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    assert_eq!(s.verify(&right, "REGISTER", Some(&alice()), at(1)), Ok(()));
}

#[test]
fn evicted_nonce_cannot_be_replayed_and_newer_nonces_still_work() {
    let mut config = DigestConfig::new(REALM);
    config.replay_capacity = 2;
    let mut s = DigestAuthenticator::new(config, SECRET).unwrap();
    let n0 = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    let n1 = nonce_of(&s.challenge(Algorithm::Md5, at(1), false));
    let n2 = nonce_of(&s.challenge(Algorithm::Md5, at(2), false));
    let n3 = nonce_of(&s.challenge(Algorithm::Md5, at(3), false));
    for n in [&n0, &n1, &n2] {
        let auth = answer(Algorithm::Md5, "alice", "secret", n, 1);
        assert_eq!(s.verify(&auth, "REGISTER", Some(&alice()), at(5)), Ok(()));
    }
    // n0 was evicted by n2: its count history is gone, so even a replay of nc=1 must not
    // pass; the client is told the nonce is stale and gets a fresh one.
    let replay = answer(Algorithm::Md5, "alice", "secret", &n0, 1);
    assert_eq!(
        s.verify(&replay, "REGISTER", Some(&alice()), at(6)),
        Err(AuthFailure::Stale)
    );
    // A nonce issued after the evicted one was never seen: accepted.
    let fresh = answer(Algorithm::Md5, "alice", "secret", &n3, 1);
    assert_eq!(s.verify(&fresh, "REGISTER", Some(&alice()), at(6)), Ok(()));
    // Nonces still in the table keep their counts.
    let n2_replay = answer(Algorithm::Md5, "alice", "secret", &n2, 1);
    assert_eq!(
        s.verify(&n2_replay, "REGISTER", Some(&alice()), at(6)),
        Err(AuthFailure::Replayed)
    );
}

#[test]
fn requires_qop_auth() {
    let mut s = server();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    let mut auth = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    auth.qop = None;
    auth.nc = None;
    auth.cnonce = None;
    let ha1 = Ha1::compute(Algorithm::Md5, "alice", REALM, "secret");
    auth.response = expected_response(&ha1, "REGISTER", &auth);
    assert_eq!(
        s.verify(&auth, "REGISTER", Some(&alice()), at(1)),
        Err(AuthFailure::QopRequired)
    );
    let mut int = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    int.qop = Some("auth-int".into());
    assert_eq!(
        s.verify(&int, "REGISTER", Some(&alice()), at(1)),
        Err(AuthFailure::QopRequired)
    );
}

#[test]
fn foreign_realm_and_missing_opaque_are_refused() {
    let mut config = DigestConfig::new(REALM);
    config.opaque = Some("xyz".into());
    let mut s = DigestAuthenticator::new(config, SECRET).unwrap();
    let nonce = nonce_of(&s.challenge(Algorithm::Md5, at(0), false));
    let mut auth = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    assert_eq!(
        s.verify(&auth, "REGISTER", Some(&alice()), at(1)),
        Err(AuthFailure::OpaqueMismatch)
    );
    auth.opaque = Some("xyz".into());
    assert_eq!(s.verify(&auth, "REGISTER", Some(&alice()), at(1)), Ok(()));
    auth.realm = "elsewhere".into();
    assert_eq!(
        s.verify(&auth, "REGISTER", Some(&alice()), at(1)),
        Err(AuthFailure::ForeignRealm)
    );
}

#[test]
fn parses_case_insensitive_names_escapes_and_default_algorithm() {
    let auth = parse_authorization(
        r#"digest USERNAME="al\"ice\\", Realm=example.com,nonce="n",  uri = "sip:example.com" ,, response="00", QOP="auth", NC=0000000a, CNonce="c""#,
    )
    .unwrap();
    assert_eq!(auth.username, r#"al"ice\"#);
    assert_eq!(auth.realm, "example.com");
    assert_eq!(auth.uri, "sip:example.com");
    assert_eq!(auth.algorithm, Algorithm::Md5);
    assert_eq!(auth.qop.as_deref(), Some("auth"));
    assert_eq!(auth.nonce_count(), Some(10));
}

#[test]
fn unknown_scheme_is_not_digest() {
    // RFC 4475 regaut01: an unknown scheme is answered with a challenge.
    assert_eq!(
        parse_authorization("NoOneKnowsThisScheme opaque-data=here"),
        Err(DigestParseError::NotDigest)
    );
    assert_eq!(parse_authorization(""), Err(DigestParseError::NotDigest));
}

#[test]
fn parse_refusals_are_typed() {
    let base = r#"username="a", realm="r", nonce="n", uri="u", response="00""#;
    let cases: &[(String, DigestParseError)] = &[
        (
            "Digest".into(),
            DigestParseError::Malformed("no parameters"),
        ),
        (
            format!("Digest {base}, username=\"b\""),
            DigestParseError::DuplicateParameter,
        ),
        (
            format!("Digest {base}, algorithm=MD5-sess"),
            DigestParseError::UnsupportedAlgorithm,
        ),
        (
            format!("Digest {base}, qop=auth, nc=1, cnonce=\"c\""),
            DigestParseError::Malformed("nc is not 8 hex digits"),
        ),
        (
            format!("Digest {base}, qop=auth, nc=00000001"),
            DigestParseError::MissingParameter("cnonce"),
        ),
        (
            r#"Digest realm="r", nonce="n", uri="u", response="00""#.into(),
            DigestParseError::MissingParameter("username"),
        ),
        (
            r#"Digest username="a"#.into(),
            DigestParseError::Malformed("unterminated quoted string"),
        ),
        (
            r#"Digest username="a\"#.into(),
            DigestParseError::Malformed("unterminated quoted string"),
        ),
        (
            r#"Digest username "a""#.into(),
            DigestParseError::Malformed("expected '=' after a parameter name"),
        ),
        (
            r#"Digest username="a" realm="r""#.into(),
            DigestParseError::Malformed("expected ',' between parameters"),
        ),
        (
            "Digest username=, realm=r".into(),
            DigestParseError::Malformed("expected a token or quoted string"),
        ),
    ];
    for (text, error) in cases {
        assert_eq!(parse_authorization(text).as_ref(), Err(error), "{text}");
    }
    let many = format!("Digest {}", vec!["x=1"; 40].join(", "));
    assert_eq!(
        parse_authorization(&many),
        Err(DigestParseError::Malformed("too many parameters"))
    );
}

#[test]
fn finds_the_credentials_for_our_realm_among_several() {
    let raw = concat!(
        "REGISTER sip:example.com SIP/2.0\r\n",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n",
        "From: <sip:alice@example.com>;tag=1\r\n",
        "To: <sip:alice@example.com>\r\n",
        "Call-ID: c1\r\n",
        "CSeq: 2 REGISTER\r\n",
        "Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\r\n",
        "Authorization: Digest username=\"alice\", realm=\"other.org\", nonce=\"a\", uri=\"sip:example.com\", response=\"00\"\r\n",
        "Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"b\", uri=\"sip:example.com\", response=\"00\"\r\n",
        "Content-Length: 0\r\n\r\n"
    );
    let rsip::SipMessage::Request(req) = crate::message::parse(raw.as_bytes()).unwrap() else {
        panic!("not a request");
    };
    let found = find_credentials(&req, "Authorization", REALM)
        .unwrap()
        .unwrap();
    assert_eq!(found.nonce, "b");
    assert_eq!(
        find_credentials(&req, "Proxy-Authorization", REALM),
        Ok(None)
    );
    assert_eq!(
        find_credentials(&req, "Authorization", "nowhere"),
        Err(DigestParseError::NotDigest)
    );
}

proptest! {
    #[test]
    fn parser_never_panics_on_any_text(s in "\\PC*") {
        let _ = parse_authorization(&s);
    }

    #[test]
    fn parser_never_panics_on_digest_soup(
        s in r#"Digest( |\t)*([a-zA-Z=,"\\ \t:/@é-]|[0-9]){0,120}"#
    ) {
        let _ = parse_authorization(&s);
    }

    #[test]
    fn verify_never_panics_on_parsed_input(s in r#"Digest [a-z=,"0-9 ]{0,120}"#, method in "[A-Z]{0,8}") {
        if let Ok(auth) = parse_authorization(&s) {
            let mut server = server();
            let _ = server.verify(&auth, &method, Some(&alice()), at(0));
            let _ = server.verify(&auth, &method, None, at(0));
        }
    }
}

#[test]
fn an_answer_with_an_algorithm_not_offered_is_refused_even_with_the_right_password() {
    let mut config = DigestConfig::new(REALM);
    config.algorithms = vec![Algorithm::Sha256];
    let mut server = DigestAuthenticator::new(config, SECRET).unwrap();
    let nonce = nonce_of(&server.challenge(Algorithm::Sha256, at(0), false));
    let creds = alice();
    // The same nonce answered with MD5 and the right password: a downgrade.
    let md5 = answer(Algorithm::Md5, "alice", "secret", &nonce, 1);
    assert_eq!(
        server.verify(&md5, "REGISTER", Some(&creds), at(1)),
        Err(AuthFailure::AlgorithmNotOffered)
    );
    assert!(AuthFailure::AlgorithmNotOffered.counts_as_failure());
    let sha = answer(Algorithm::Sha256, "alice", "secret", &nonce, 2);
    assert_eq!(server.verify(&sha, "REGISTER", Some(&creds), at(1)), Ok(()));
}

#[test]
fn a_wrong_answer_is_challenged_again_with_the_same_nonce_while_it_is_fresh() {
    let server = server();
    let nonce = nonce_of(&server.challenge(Algorithm::Sha256, at(0), false));
    let again = server.rechallenge(Algorithm::Sha256, &nonce, at(10));
    assert_eq!(nonce_of(&again), nonce);
    assert!(!again.contains("stale"));
    // Too old, or not ours: a new one.
    assert_ne!(
        nonce_of(&server.rechallenge(Algorithm::Sha256, &nonce, at(301))),
        nonce
    );
    let forged = "00".repeat(32);
    assert_ne!(
        nonce_of(&server.rechallenge(Algorithm::Md5, &forged, at(10))),
        forged
    );
}
