//! `trunks.toml` in, a checked configuration or exact file:line:column messages out.

use std::net::IpAddr;
use std::time::Duration;

use trunks::{
    Codec, Diagnostic, LocationOrigin, NumberFormat, Password, PersonalLocation, Severity,
    Transport, TrunkConfig, TrunkMode, parse,
};

fn example() -> String {
    let path = format!("{}/examples/trunks.toml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ok(text: &str) -> TrunkConfig {
    match parse("trunks.toml", text) {
        Ok(c) => {
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);
            c.config
        }
        Err(d) => panic!("{}", lines(&d).join("\n")),
    }
}

/// "file:line:col: severity: message" per finding, help left out.
fn lines(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| d.to_string().lines().next().unwrap_or("").to_string())
        .collect()
}

fn errors(text: &str) -> Vec<String> {
    match parse("trunks.toml", text) {
        Ok(c) => panic!("accepted: {:?}", c.config.trunks),
        Err(d) => lines(&d),
    }
}

const NUMBERING: &str = "[numbering]\narea-code = \"711\"\n";

/// A file with [numbering] on lines 1-2 and one emergency register trunk from line 3.
fn one_trunk(extra: &str) -> String {
    format!(
        "{NUMBERING}[[trunk]]\nname = \"telekom\"\nmode = \"register\"\nregistrar = \"sip:sip.example.net\"\nusername = \"u\"\npassword = \"p\"\nmax-calls = 5\nemergency = true\n{extra}"
    )
}

#[test]
fn ca_file_needs_transport_tls() {
    let e = errors(&one_trunk("ca-file = \"ca.pem\"\n"));
    assert!(e.iter().any(|d| d.contains("ca-file is for TLS")), "{e:?}");
    let config = ok(&one_trunk("transport = \"tls\"\nca-file = \"ca.pem\"\n"));
    let trunk = config.trunk("telekom").expect("trunk");
    assert_eq!(
        trunk.ca_file.as_deref(),
        Some(std::path::Path::new("ca.pem"))
    );
}

#[test]
fn example_file_reads_every_key() {
    let config = ok(&example());
    assert_eq!(
        config.numbering.area_code.as_ref().map(|a| a.as_str()),
        Some("711")
    );
    assert_eq!(config.numbering.extensions.len(), 3);
    let telekom = config.trunk("telekom").expect("telekom");
    assert_eq!(telekom.tenant, None, "the file's own town hall");
    assert_eq!(
        config.trunk("stadt-a").and_then(|t| t.tenant.as_deref()),
        Some("stadt-a.example")
    );
    assert_eq!(
        config
            .emergency_trunk_of(Some("stadt-a.example"))
            .map(|t| t.name.as_str()),
        Some("stadt-a")
    );
    let TrunkMode::Register(reg) = &telekom.mode else {
        panic!("telekom registers")
    };
    assert_eq!(reg.registrar.as_str(), "sip:sip-trunk.example.net");
    assert_eq!(reg.auth_username(), "0012345678900001");
    assert_eq!(reg.password, Password::File("secrets/telekom".into()));
    assert_eq!(reg.expires, Duration::from_secs(600));
    assert_eq!(telekom.codecs, [Codec::G722, Codec::Pcma, Codec::Pcmu]);
    assert_eq!(telekom.max_calls, 20);
    assert_eq!(telekom.options_interval, Some(Duration::from_secs(30)));
    assert!(telekom.caller_id.pai && telekom.caller_id.clip_no_screening);
    assert_eq!(telekom.caller_id.from_user.as_deref(), Some("+49711123400"));
    let block = telekom.numbers.did_block.as_ref().expect("did block");
    assert_eq!(
        (block.base.as_str(), block.extension_digits),
        ("+497111234", 2)
    );
    assert_eq!(
        telekom.location_number.as_ref().map(|n| n.as_str()),
        Some("+49711123400")
    );

    let backup = config.trunk("backup").expect("backup");
    assert!(backup.accepts_source("192.0.2.5".parse::<IpAddr>().unwrap()));
    assert!(!backup.accepts_source("192.0.2.16".parse::<IpAddr>().unwrap()));
    assert!(!telekom.accepts_source("192.0.2.5".parse::<IpAddr>().unwrap()));
    assert_eq!(backup.numbers.format, NumberFormat::National);
    assert_eq!(backup.transport, Transport::Tls);
    assert_eq!(
        backup.ca_file.as_deref(),
        Some(std::path::Path::new("certs/carrier-ca.pem"))
    );
    assert_eq!(telekom.ca_file, None);
    assert_eq!(backup.codecs, [Codec::Pcma]);
    assert_eq!(
        telekom.caller_id.diversion_header,
        trunks::DiversionHeader::Diversion
    );
    assert_eq!(
        backup.caller_id.diversion_header,
        trunks::DiversionHeader::HistoryInfo
    );

    assert_eq!(
        config.emergency_trunk().map(|t| t.name.as_str()),
        Some("telekom")
    );
    let chain: Vec<&str> = config
        .failover_chain("telekom")
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(chain, ["telekom", "backup"]);
    assert!(config.failover_chain("nonesuch").is_empty());
}

#[test]
fn defaults_fill_what_is_left_out() {
    let config = ok(&one_trunk(""));
    let t = &config.trunks[0];
    assert_eq!(t.transport, Transport::Udp);
    assert_eq!(t.codecs, trunks::DEFAULT_CODECS);
    assert_eq!(t.options_interval, Some(Duration::from_secs(30)));
    assert_eq!(t.numbers.format, NumberFormat::E164);
    assert_eq!(t.numbers.country_code.as_str(), "49");
    assert_eq!(t.failover, None);
    let TrunkMode::Register(reg) = &t.mode else {
        panic!("registers")
    };
    assert_eq!(reg.expires, Duration::from_secs(600));
    assert_eq!(reg.auth_username(), "u");
    assert_eq!(
        config.numbering.emergency_numbers,
        ["115", "116116", "116117"]
    );
}

#[test]
fn empty_file_means_no_outside_lines() {
    let config = ok("");
    assert!(config.trunks.is_empty());
    assert!(config.emergency_trunk().is_none());
}

#[test]
fn options_interval_zero_turns_keep_alive_off() {
    let config = ok(&one_trunk("options-interval = 0\n"));
    assert_eq!(config.trunks[0].options_interval, None);
}

#[test]
fn inline_password_never_shows_in_debug_output() {
    let config = ok(&one_trunk(""));
    let debug = format!("{config:?}");
    assert!(debug.contains("Inline(<redacted>)"), "{debug}");
    assert!(!debug.contains("\"p\""), "{debug}");
}

#[test]
fn rejects_toml_syntax_errors_with_position() {
    assert_eq!(
        errors("[numbering]\narea-code = 711\"\n"),
        ["trunks.toml:2:13: error: missing opening quote, expected `\"`"]
    );
    assert_eq!(
        errors("[[trunk]\nname = \"a\"\n"),
        ["trunks.toml:1:9: error: unclosed array table, expected `]`"]
    );
}

#[test]
fn rejects_unknown_keys_naming_them() {
    let e = errors(&one_trunk("registar = \"sip:x.example\"\n"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("trunks.toml:11:1: error: unknown field `registar`, expected one of `name`, `mode`, `registrar`"),
        "{e:?}"
    );
    let e = errors("[numbering]\narea = \"711\"\n");
    assert!(
        e[0].starts_with("trunks.toml:2:1: error: unknown field `area`"),
        "{e:?}"
    );
    let e = errors(&one_trunk("[trunk.caller-id]\npia = true\n"));
    assert_eq!(
        e,
        [
            "trunks.toml:12:1: error: unknown field `pia`, expected one of `from-user`, `pai`, `ppi`, `clip-no-screening`, `diversion-header`"
        ]
    );
    let e = errors("[trunks]\n");
    assert!(
        e[0].starts_with("trunks.toml:1:2: error: unknown field `trunks`"),
        "{e:?}"
    );
}

#[test]
fn rejects_unknown_mode_transport_codec_and_format() {
    assert_eq!(
        errors(&one_trunk("").replace("mode = \"register\"", "mode = \"regiser\"")),
        ["trunks.toml:5:8: error: unknown variant `regiser`, expected `register` or `ip`"]
    );
    assert_eq!(
        errors(&one_trunk("transport = \"sctp\"\n")),
        ["trunks.toml:11:13: error: unknown variant `sctp`, expected one of `udp`, `tcp`, `tls`"]
    );
    assert_eq!(
        errors(&one_trunk("codecs = [\"pcma\", \"g729\"]\n")),
        [
            "trunks.toml:11:19: error: unknown variant `g729`, expected one of `pcmu`, `pcma`, `g722`, `opus`"
        ]
    );
    assert_eq!(
        errors(&one_trunk("[trunk.numbers]\nformat = \"ISDN\"\n")),
        [
            "trunks.toml:12:10: error: unknown variant `ISDN`, expected one of `e164`, `international`, `national`, `local`"
        ]
    );
}

#[test]
fn rejects_failover_to_a_trunk_that_does_not_exist() {
    assert_eq!(
        errors(&one_trunk("failover = \"backup\"\n")),
        ["trunks.toml:11:12: error: trunk \"telekom\": failover \"backup\" does not exist"]
    );
}

#[test]
fn rejects_failover_circles_once_each() {
    let text = format!(
        "{NUMBERING}\
[[trunk]]\nname = \"a\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.1\"]\nproxy = \"sip:192.0.2.1\"\nmax-calls = 1\nfailover = \"b\"\nemergency = true\n\
[[trunk]]\nname = \"b\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.2\"]\nproxy = \"sip:192.0.2.2\"\nmax-calls = 1\nfailover = \"a\"\n\
[[trunk]]\nname = \"c\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.3\"]\nproxy = \"sip:192.0.2.3\"\nmax-calls = 1\nfailover = \"a\"\n\
[[trunk]]\nname = \"d\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.4\"]\nproxy = \"sip:192.0.2.4\"\nmax-calls = 1\nfailover = \"d\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "trunks.toml:9:12: error: trunk \"a\": failover goes round in a circle: a -> b -> a",
            "trunks.toml:31:12: error: trunk \"d\": failover goes round in a circle: d -> d",
        ]
    );
}

#[test]
fn rejects_duplicate_and_malformed_names() {
    let text = format!(
        "{}[[trunk]]\nname = \"telekom\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.1\"]\nproxy = \"sip:192.0.2.1\"\nmax-calls = 1\n\
[[trunk]]\nname = \"tele kom\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.1\"]\nproxy = \"sip:192.0.2.1\"\nmax-calls = 1\n\
[[trunk]]\nmode = \"ip\"\n",
        one_trunk("")
    );
    assert_eq!(
        errors(&text),
        [
            "trunks.toml:12:8: error: trunk \"telekom\" is defined twice (first at line 4)",
            "trunks.toml:18:8: error: trunk name \"tele kom\" must be 1 to 64 letters, digits, - or _",
            "trunks.toml:23:1: error: a trunk has no `name`",
        ]
    );
}

#[test]
fn requires_exactly_one_emergency_trunk() {
    assert_eq!(
        errors(&one_trunk("").replace("emergency = true\n", "")),
        ["trunks.toml:3:1: error: no trunk carries emergency calls (110, 112)"]
    );
    let text = format!(
        "{}[[trunk]]\nname = \"b\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.1\"]\nproxy = \"sip:192.0.2.1\"\nmax-calls = 1\nemergency = true\n",
        one_trunk("")
    );
    assert_eq!(
        errors(&text),
        [
            "trunks.toml:17:13: error: trunk \"b\": only one trunk may carry emergency calls, and \"telekom\" (line 10) does"
        ]
    );
}

#[test]
fn requires_an_area_code_once_there_are_trunks() {
    assert_eq!(
        errors(&one_trunk("").replace(NUMBERING, "[numbering]\ncountry-code = \"49\"\n")),
        [
            "trunks.toml:1:1: error: no area code: trunks need [numbering] area-code to read local numbers"
        ]
    );
    assert_eq!(
        errors(&one_trunk("").replace(NUMBERING, "\n\n")),
        [
            "trunks.toml:3:1: error: no area code: trunks need [numbering] area-code to read local numbers"
        ]
    );
}

#[test]
fn rejects_bad_numbering() {
    let e = errors(
        "[numbering]\ncountry-code = \"+49\"\narea-code = \"0711\"\nextensions = [\"100-199\", \"20-2\", \"0-9\"]\nemergency-numbers = [\"19222x\"]\n",
    );
    assert_eq!(
        e,
        [
            "trunks.toml:2:16: error: [numbering] country-code: country code \"+49\" must be 1 to 3 digits not starting with 0, without + or 00",
            "trunks.toml:3:13: error: [numbering] area-code: area code \"0711\" must be 1 to 5 digits without the national prefix 0 (for 0711 write \"711\")",
            "trunks.toml:4:15: error: [numbering] extensions: 100-199 contains emergency number 110",
            "trunks.toml:4:26: error: [numbering] extensions: extension range \"20-2\" must be digits like \"600\" or a range of equally long numbers like \"200-299\"",
            "trunks.toml:4:34: error: [numbering] extensions: extension range \"0-9\" starts with 0, which is the national prefix",
            "trunks.toml:5:22: error: [numbering] emergency-numbers: \"19222x\" is not a short code",
        ]
    );
    // A wrong area code is reported once, not again as a missing one.
    assert_eq!(
        errors(&one_trunk("").replace("\"711\"", "\"07 11\"")),
        [
            "trunks.toml:2:13: error: [numbering] area-code: area code \"07 11\" must be 1 to 5 digits without the national prefix 0 (for 0711 write \"711\")"
        ]
    );
    // A configured emergency number is protected like 110 and 112.
    assert_eq!(
        errors("[numbering]\nemergency-numbers = [\"116117\"]\nextensions = [\"116000-116999\"]\n"),
        [
            "trunks.toml:3:15: error: [numbering] extensions: 116000-116999 contains emergency number 116117"
        ]
    );
}

#[test]
fn register_trunk_needs_registrar_username_and_one_password() {
    let text = format!(
        "{NUMBERING}[[trunk]]\nname = \"t\"\nmode = \"register\"\nmax-calls = 1\nemergency = true\nallowed-sources = [\"192.0.2.1\"]\n"
    );
    assert_eq!(
        errors(&text),
        [
            "trunks.toml:3:1: error: trunk \"t\": `registrar` is missing",
            "trunks.toml:3:1: error: trunk \"t\": `username` is missing",
            "trunks.toml:3:1: error: trunk \"t\": `password` is missing",
            "trunks.toml:8:19: error: trunk \"t\": `allowed-sources` only applies to mode = \"ip\"",
        ]
    );
    assert_eq!(
        errors(&one_trunk("password-file = \"/etc/secret\"\n")),
        [
            "trunks.toml:11:17: error: trunk \"telekom\": give `password` or `password-file`, not both"
        ]
    );
    assert_eq!(
        errors(&one_trunk("").replace("username = \"u\"", "username = \" \"")),
        [
            "trunks.toml:7:12: error: trunk \"telekom\": `username` is empty or holds control characters"
        ]
    );
}

#[test]
fn ip_trunk_needs_sources_and_a_proxy_and_refuses_register_keys() {
    let text = format!(
        "{NUMBERING}[[trunk]]\nname = \"t\"\nmode = \"ip\"\nmax-calls = 1\nemergency = true\nusername = \"u\"\nexpires = 60\n"
    );
    assert_eq!(
        errors(&text),
        [
            "trunks.toml:3:1: error: trunk \"t\": `proxy` is missing",
            "trunks.toml:3:1: error: trunk \"t\": `allowed-sources` is missing",
            "trunks.toml:8:12: error: trunk \"t\": `username` only applies to mode = \"register\"",
            "trunks.toml:9:11: error: trunk \"t\": `expires` only applies to mode = \"register\"",
        ]
    );
    let text = format!(
        "{NUMBERING}[[trunk]]\nname = \"t\"\nmode = \"ip\"\nmax-calls = 1\nemergency = true\nproxy = \"sip:192.0.2.1\"\nallowed-sources = []\n"
    );
    assert_eq!(
        errors(&text),
        [
            "trunks.toml:9:19: error: trunk \"t\": `allowed-sources` is empty, so no call could come in"
        ]
    );
    let text = format!(
        "{NUMBERING}[[trunk]]\nname = \"t\"\nmode = \"ip\"\nmax-calls = 1\nemergency = true\nproxy = \"sip:192.0.2.1\"\nallowed-sources = [\"192.0.2.1/24\", \"carrier.example\", \"10.0.0.0/33\"]\n"
    );
    assert_eq!(
        errors(&text),
        [
            "trunks.toml:9:20: error: trunk \"t\": allowed-sources: host bits are set in `192.0.2.1/24`; did you mean 192.0.2.0/24?",
            "trunks.toml:9:36: error: trunk \"t\": allowed-sources: `carrier.example` is not an IP address or network (like 10.8.0.0/16 or 2001:db8::/32)",
            "trunks.toml:9:55: error: trunk \"t\": allowed-sources: prefix /33 is longer than 32 bits",
        ]
    );
}

#[test]
fn rejects_bad_uris_and_sips_without_tls() {
    assert_eq!(
        errors(&one_trunk("").replace("sip:sip.example.net", "sip.example.net")),
        [
            "trunks.toml:6:13: error: trunk \"telekom\": registrar \"sip.example.net\" is not a SIP URI"
        ]
    );
    assert_eq!(
        errors(&one_trunk("proxy = \"sips:proxy.example.net\"\n")),
        [
            "trunks.toml:11:9: error: trunk \"telekom\": proxy is a sips: URI, which needs transport = \"tls\""
        ]
    );
    ok(&one_trunk(
        "proxy = \"sips:proxy.example.net\"\ntransport = \"tls\"\n",
    ));
}

#[test]
fn rejects_out_of_range_numbers_and_bad_codec_lists() {
    assert_eq!(
        errors(
            &one_trunk("expires = 30\noptions-interval = 7200\ncodecs = []\n")
                .replace("max-calls = 5", "max-calls = 0")
        ),
        [
            "trunks.toml:9:13: error: trunk \"telekom\": max-calls must be between 1 and 10000",
            "trunks.toml:11:11: error: trunk \"telekom\": expires must be between 60 and 86400",
            "trunks.toml:12:20: error: trunk \"telekom\": options-interval must be between 0 and 3600",
            "trunks.toml:13:10: error: trunk \"telekom\": `codecs` is empty",
        ]
    );
    assert_eq!(
        errors(&one_trunk("codecs = [\"pcma\", \"opus\", \"pcma\"]\n")),
        ["trunks.toml:11:27: error: trunk \"telekom\": codec pcma is listed twice"]
    );
    assert_eq!(
        errors(&one_trunk("").replace("max-calls = 5\n", "")),
        ["trunks.toml:3:1: error: trunk \"telekom\": `max-calls` is missing"]
    );
    assert_eq!(
        errors(&one_trunk("max-calls = -1\n").replace("max-calls = 5\n", "")),
        ["trunks.toml:10:13: error: invalid value: integer `-1`, expected u32"]
    );
}

#[test]
fn rejects_bad_caller_id_settings() {
    assert_eq!(
        errors(&one_trunk(
            "[trunk.caller-id]\nfrom-user = \"rathaus@example\"\nclip-no-screening = true\n"
        )),
        [
            "trunks.toml:12:13: error: trunk \"telekom\": from-user \"rathaus@example\" is not a SIP user part",
            "trunks.toml:13:21: error: trunk \"telekom\": clip-no-screening needs pai = true or ppi = true",
        ]
    );
    ok(&one_trunk(
        "[trunk.caller-id]\nppi = true\nclip-no-screening = true\n",
    ));
    let e = errors(&one_trunk(
        "[trunk.caller-id]\ndiversion-header = \"history\"\n",
    ));
    assert!(
        e.len() == 1 && e[0].contains("history-info") && e[0].contains("diversion"),
        "{e:?}"
    );
}

#[test]
fn rejects_bad_trunk_numbers() {
    assert_eq!(
        errors(&one_trunk(
            "location-number = \"0711 123400\"\n[trunk.numbers]\nbase-number = \"+49 89 1234\"\nextension-digits = 2\n"
        )),
        [
            "trunks.toml:11:19: error: trunk \"telekom\": location-number: 0711123400 is not in international form (+ and country code)",
            "trunks.toml:13:15: error: trunk \"telekom\": base-number +49891234 is not in +49711, this trunk's country and area code",
        ]
    );
    assert_eq!(
        errors(&one_trunk(
            "[trunk.numbers]\nbase-number = \"+49 711 1234\"\n"
        )),
        ["trunks.toml:12:15: error: trunk \"telekom\": base-number needs extension-digits"]
    );
    assert_eq!(
        errors(&one_trunk("[trunk.numbers]\nextension-digits = 9\n")),
        ["trunks.toml:12:20: error: trunk \"telekom\": extension-digits needs base-number"]
    );
    assert_eq!(
        errors(&one_trunk(
            "[trunk.numbers]\nbase-number = \"+49 711 1234 5678 90\"\nextension-digits = 4\n"
        )),
        [
            "trunks.toml:12:15: error: trunk \"telekom\": base-number +497111234567890 with 4 extension digits is longer than 15 digits"
        ]
    );
    assert_eq!(
        errors(&one_trunk("[trunk.numbers]\narea-code = \"0\"\n")),
        [
            "trunks.toml:12:13: error: trunk \"telekom\": numbers.area-code: area code \"0\" must be 1 to 5 digits without the national prefix 0 (for 0711 write \"711\")"
        ]
    );
}

#[test]
fn trunk_of_another_site_overrides_the_area_code() {
    let config = ok(&one_trunk(
        "[trunk.numbers]\narea-code = \"89\"\nbase-number = \"+49 89 555\"\nextension-digits = 3\nformat = \"local\"\n",
    ));
    let numbers = &config.trunks[0].numbers;
    assert_eq!(numbers.area_code.as_ref().map(|a| a.as_str()), Some("89"));
    assert_eq!(numbers.inbound("1234567").unwrap().as_str(), "+49891234567");
}

#[test]
fn keep_alive_off_with_failover_is_a_warning_only() {
    let text = format!(
        "{}failover = \"backup\"\noptions-interval = 0\n[[trunk]]\nname = \"backup\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.1\"]\nproxy = \"sip:192.0.2.1\"\nmax-calls = 1\n",
        one_trunk("")
    );
    let checked = parse("trunks.toml", &text).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(
        lines(&checked.warnings),
        [
            "trunks.toml:12:20: warning: trunk \"telekom\": options-interval = 0 sends no keep-alive, so failover happens only after a call has failed"
        ]
    );
    assert!(
        checked
            .warnings
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
}

#[test]
fn help_lines_tell_how_to_fix() {
    let Err(d) = parse("t.toml", &one_trunk("").replace("emergency = true\n", "")) else {
        panic!("accepted")
    };
    assert_eq!(
        d[0].to_string(),
        "t.toml:3:1: error: no trunk carries emergency calls (110, 112)\n  help: set emergency = true on the trunk that should carry them"
    );
}

#[test]
fn srtp_takes_the_three_words_and_warns_where_its_keys_would_travel_in_clear() {
    let config = ok(&one_trunk("transport = \"tls\"\nsrtp = \"required\"\n"));
    assert_eq!(
        config.trunk("telekom").expect("trunk").srtp,
        Some(srtp::SrtpPolicy::Required)
    );
    assert_eq!(
        ok(&one_trunk("")).trunk("telekom").expect("trunk").srtp,
        None
    );

    let checked = parse("trunks.toml", &one_trunk("srtp = \"optional\"\n"))
        .unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(
        lines(&checked.warnings),
        [
            "trunks.toml:11:8: warning: trunk \"telekom\": srtp keys are sent in the SDP, and the transport is not \"tls\": anyone on the path can read them"
        ]
    );
    // Off needs no TLS.
    ok(&one_trunk("srtp = \"off\"\n"));

    let e = errors(&one_trunk("srtp = \"on\"\n"));
    assert!(
        e.iter().any(|d| d.starts_with("trunks.toml:11:8: error:")
            && d.contains("expected off, optional or required")),
        "{e:?}"
    );
}

#[test]
fn limits_default_to_two_calls_out_per_user_and_none_in_all() {
    let config = ok(&one_trunk(""));
    assert_eq!(
        config.limits.per_user,
        trunks::DEFAULT_OUTSIDE_CALLS_PER_USER
    );
    assert_eq!(config.limits.total, None);
    let config = ok(&format!(
        "[limits]\noutside-calls-per-user = 4\noutside-calls = 20\n{}",
        one_trunk("")
    ));
    assert_eq!(
        config.limits,
        trunks::OutsideCallLimits {
            per_user: 4,
            total: Some(20)
        }
    );
    let e = errors(&format!(
        "[limits]\noutside-calls-per-user = 0\n{}",
        one_trunk("")
    ));
    assert_eq!(
        e,
        ["trunks.toml:2:26: error: [limits]: outside-calls-per-user must be between 1 and 10000"]
    );
    let e = errors(&format!("[limits]\noutside-cals = 3\n{}", one_trunk("")));
    assert!(e.iter().any(|d| d.contains("outside-cals")), "{e:?}");
}

#[test]
fn a_users_own_location_number_comes_before_the_networks_and_the_networks_before_the_trunks() {
    let config = ok(&format!(
        "[[emergency-location]]\nnetwork = \"10.8.0.0/16\"\nnumber = \"+49 7031 55 0\"\n{}",
        one_trunk("location-number = \"+49 711 1234 0\"\n")
    ));
    let trunk = config.emergency_trunk().expect("emergency trunk");
    let at_home = PersonalLocation {
        number: "+49 7031 4711".parse().unwrap(),
        networks: vec!["10.8.3.0/24".parse().unwrap()],
    };
    let presented = |user: Option<&PersonalLocation>, source: Option<&str>| {
        config
            .emergency_location(trunk, user, source.map(|s| s.parse::<IpAddr>().unwrap()))
            .map(|(number, origin)| (number.to_string(), origin.to_string()))
    };
    let own = Some((
        "+4970314711".to_string(),
        "the user's own location number".to_string(),
    ));
    assert_eq!(
        presented(Some(&at_home), Some("10.8.3.9")),
        own,
        "home phone"
    );
    assert_eq!(
        presented(Some(&at_home), Some("10.8.9.9")),
        Some((
            "+497031550".into(),
            "[[emergency-location]] 10.8.0.0/16".into()
        )),
        "another VPN phone of the same user: the network's"
    );
    let trunks = Some((
        "+4971112340".into(),
        "location-number of trunk telekom".into(),
    ));
    assert_eq!(
        presented(Some(&at_home), Some("172.16.0.9")),
        trunks,
        "desk phone"
    );
    assert_eq!(
        presented(Some(&at_home), None),
        trunks,
        "unknown phone: not the home's"
    );
    let everywhere = PersonalLocation {
        networks: Vec::new(),
        ..at_home
    };
    assert_eq!(presented(Some(&everywhere), Some("172.16.0.9")), own);
    assert_eq!(presented(Some(&everywhere), None), own);
    assert!(matches!(
        config.emergency_location(trunk, None, None),
        Some((_, LocationOrigin::Trunk("telekom")))
    ));
}

#[test]
fn emergency_locations_map_networks_to_location_numbers_and_bad_ones_name_the_line() {
    let config = ok(&format!(
        "[[emergency-location]]\nnetwork = \"10.8.0.0/16\"\nnumber = \"+49 7031 55 0\"\n{}",
        one_trunk("")
    ));
    assert_eq!(
        config
            .emergency_location_of("10.8.1.2".parse().unwrap())
            .map(ToString::to_string),
        Some("+497031550".to_string())
    );
    assert_eq!(
        config.emergency_location_of("10.9.1.2".parse().unwrap()),
        None
    );
    let e = errors(&format!(
        "[[emergency-location]]\nnetwork = \"10.8.0.0/33\"\nnumber = \"07031\"\n{}",
        one_trunk("")
    ));
    assert!(
        e.iter()
            .any(|d| d.starts_with("trunks.toml:2:11: error: [[emergency-location]] network")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|d| d.starts_with("trunks.toml:3:10: error: [[emergency-location]] number")),
        "{e:?}"
    );
}

#[test]
fn cost_guard_reads_prices_per_minute_and_hourly_limits_in_tenths_of_a_cent() {
    use trunks::{CallClass, Money};
    let config = ok(&example());
    let guard = config.cost_guard.expect("the example has a cost guard");
    assert_eq!(guard.rate(CallClass::Mobile), Money::from_millis(90));
    assert_eq!(
        guard.rate(CallClass::International),
        Money::from_millis(250)
    );
    assert_eq!(guard.rate(CallClass::SharedCost), Money::from_millis(140));
    assert_eq!(guard.rate(CallClass::Premium), Money::from_millis(2000));
    assert_eq!(guard.rate(CallClass::National), Money::ZERO, "not listed");
    assert_eq!(guard.per_user_per_hour, Some(Money::from_millis(5000)));
    assert_eq!(guard.per_hour, Some(Money::from_millis(40_000)));

    assert_eq!(ok(&one_trunk("")).cost_guard, None, "no section, no guard");
    let config = ok(&format!(
        "[cost-guard]\nrates = {{ premium = 3, mobile = 0.125 }}\nper-hour = 12\n{}",
        one_trunk("")
    ));
    let guard = config.cost_guard.expect("guard");
    assert_eq!(guard.rate(CallClass::Premium), Money::from_millis(3000));
    assert_eq!(guard.rate(CallClass::Mobile), Money::from_millis(125));
    assert_eq!(guard.per_user_per_hour, None);
    assert_eq!(guard.per_hour, Some(Money::from_millis(12_000)));
}

#[test]
fn cost_guard_refuses_unknown_classes_and_bad_amounts_at_their_place() {
    let guard = |lines: &str| errors(&format!("[cost-guard]\n{lines}{}", one_trunk("")));
    assert_eq!(
        guard("rates = { premum = 2.0 }\nper-hour = 10\n"),
        [
            "trunks.toml:2:11: error: [cost-guard] rates: unknown call class \"premum\"; known: emergency, internal, local, national, mobile, international, special, shared-cost, premium"
        ]
    );
    assert_eq!(
        guard("rates = { mobile = -0.09 }\nper-hour = 10\n"),
        ["trunks.toml:2:20: error: [cost-guard] rates.mobile must not be negative"]
    );
    assert_eq!(
        guard("rates = { mobile = \"0.09\" }\nper-hour = 10\n"),
        ["trunks.toml:2:20: error: [cost-guard] rates.mobile must be a number, not string"]
    );
    assert_eq!(
        guard("rates = { mobile = 0.0901 }\nper-hour = 10\n"),
        ["trunks.toml:2:20: error: [cost-guard] rates.mobile is finer than a tenth of a cent"]
    );
    assert_eq!(
        guard("rates = { premium = 2 }\nper-user-per-hour = 0\nper-hour = -5\n"),
        [
            "trunks.toml:3:21: error: [cost-guard] per-user-per-hour must be more than 0",
            "trunks.toml:4:12: error: [cost-guard] per-hour must not be negative",
        ]
    );
    assert_eq!(
        guard("rates = { premium = 2 }\nper-hour = \"lots\"\n"),
        ["trunks.toml:3:12: error: [cost-guard] per-hour must be a number, not string"]
    );
    assert_eq!(
        guard("rates = { emergency = 1, internal = 0.01 }\nper-hour = 10\n"),
        [
            "trunks.toml:2:11: error: [cost-guard] rates: no rate for emergency: emergency calls are never charged nor held back",
            "trunks.toml:2:26: error: [cost-guard] rates: no rate for internal: internal calls never go out through a trunk",
        ]
    );
    assert_eq!(
        guard("rates = { premium = 2 }\n"),
        ["trunks.toml:1:1: error: [cost-guard] sets no limit"]
    );
    assert_eq!(
        guard("per-hour = 10\n"),
        [
            "trunks.toml:1:1: error: [cost-guard]: `rates` is missing, so every call would cost nothing"
        ]
    );
    let e = guard("rates = { premium = 2 }\nper-houre = 10\n");
    assert!(
        e.iter()
            .any(|d| d.starts_with("trunks.toml:3:1: error:") && d.contains("per-houre")),
        "{e:?}"
    );
}

#[test]
fn a_user_limit_above_the_limit_in_all_is_a_warning() {
    let checked = parse(
        "trunks.toml",
        &format!(
            "[cost-guard]\nrates = {{ premium = 2 }}\nper-user-per-hour = 50\nper-hour = 40\n{}",
            one_trunk("")
        ),
    )
    .expect("accepted");
    assert_eq!(
        lines(&checked.warnings),
        [
            "trunks.toml:3:21: warning: [cost-guard] per-user-per-hour (50.00) is more than per-hour (40.00): one user alone reaches the limit in all first"
        ]
    );
    assert!(checked.config.cost_guard.is_some());
}

#[test]
fn response_timeout_defaults_to_five_seconds_zero_waits_for_timer_b_and_more_than_32_is_refused() {
    let trunk = |extra: &str| {
        ok(&one_trunk(extra))
            .trunk("telekom")
            .unwrap()
            .response_timeout
    };
    assert_eq!(trunk(""), Some(Duration::from_secs(5)));
    assert_eq!(
        trunk("response-timeout = 2\n"),
        Some(Duration::from_secs(2))
    );
    assert_eq!(trunk("response-timeout = 0\n"), None);
    let e = errors(&one_trunk("response-timeout = 60\n"));
    assert!(
        e.iter()
            .any(|d| d.contains("response-timeout must be between 0 and 32")),
        "{e:?}"
    );
}

/// An ip trunk `name` of town `tenant` (`None`: the default domain's).
fn town_trunk(name: &str, tenant: Option<&str>, emergency: bool, failover: Option<&str>) -> String {
    let mut text = format!(
        "[[trunk]]\nname = \"{name}\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.1\"]\nproxy = \"sip:192.0.2.1\"\nmax-calls = 1\n"
    );
    if let Some(tenant) = tenant {
        text.push_str(&format!("tenant = \"{tenant}\"\n"));
    }
    if emergency {
        text.push_str("emergency = true\n");
    }
    if let Some(failover) = failover {
        text.push_str(&format!("failover = \"{failover}\"\n"));
    }
    text
}

#[test]
fn each_town_has_its_own_trunks_and_emergency_trunk_and_fails_over_only_to_its_own() {
    let text = format!(
        "[numbering]\narea-code = \"711\"\n\n{}{}{}{}",
        town_trunk("zentrale", None, true, None),
        town_trunk("a-main", Some("stadt-a.example"), true, Some("a-backup")),
        town_trunk("a-backup", Some("stadt-a.example"), false, None),
        town_trunk("b-main", Some("stadt-b.example"), true, None),
    );
    let config = ok(&text);
    let emergency = |town| config.emergency_trunk_of(town).map(|t| t.name.as_str());
    assert_eq!(
        config.emergency_trunk().map(|t| t.name.as_str()),
        Some("zentrale")
    );
    assert_eq!(emergency(Some("stadt-a.example")), Some("a-main"));
    assert_eq!(emergency(Some("stadt-b.example")), Some("b-main"));
    assert_eq!(emergency(Some("stadt-c.example")), None);
    assert_eq!(
        config.trunk("a-backup").and_then(|t| t.tenant.as_deref()),
        Some("stadt-a.example")
    );

    // A town without its own emergency trunk, a failover into another town, a bad domain.
    let text = format!(
        "[numbering]\narea-code = \"711\"\n\n{}{}{}",
        town_trunk("zentrale", None, true, Some("b-main")),
        town_trunk("b-main", Some("stadt-b.example"), false, None),
        town_trunk("c-main", Some("Stadt C"), true, None),
    );
    let found = errors(&text);
    assert!(
        found
            .iter()
            .any(|e| e.contains("failover \"b-main\" is a trunk of stadt-b.example")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("no trunk of stadt-b.example carries emergency calls")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("trunk \"c-main\": tenant \"Stadt C\" is not a SIP domain")),
        "{found:#?}"
    );
}
