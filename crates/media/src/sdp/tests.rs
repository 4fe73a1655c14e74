use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

/// SIPp's built-in `uac` scenario body.
const SIPP_UAC: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// baresip 3.x default audio offer.
const BARESIP: &str = "v=0\r\n\
o=- 1925893451 1266486929 IN IP4 192.168.1.20\r\n\
s=-\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=tool:baresip 3.10.1\r\n\
m=audio 10350 RTP/AVP 96 9 0 8 101\r\n\
b=AS:98\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1;useinbandfec=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp-mux\r\n\
a=ssrc:1283950181 cname:4d3b8e3c-1a2b-4c5d-9e8f-0a1b2c3d4e5f\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ptime:20\r\n";

/// Yealink T4x offer (G722 first, G729 we do not run).
const YEALINK: &str = "v=0\r\n\
o=- 20025 20025 IN IP4 10.0.0.51\r\n\
s=SDP data\r\n\
c=IN IP4 10.0.0.51\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 9 0 8 18 101\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n";

/// Yealink putting the call on hold: same session, version + 1, a=sendonly.
const YEALINK_HOLD: &str = "v=0\r\n\
o=- 20025 20026 IN IP4 10.0.0.51\r\n\
s=SDP data\r\n\
c=IN IP4 10.0.0.51\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 9 101\r\n\
a=rtpmap:9 G722/8000\r\n\
a=ptime:20\r\n\
a=sendonly\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n";

/// ... and taking it off hold again.
const YEALINK_UNHOLD: &str = "v=0\r\n\
o=- 20025 20027 IN IP4 10.0.0.51\r\n\
s=SDP data\r\n\
c=IN IP4 10.0.0.51\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 9 101\r\n\
a=rtpmap:9 G722/8000\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n";

/// Snom D7xx offer: lower-case encoding names, RTCP-XR.
const SNOM: &str = "v=0\r\n\
o=root 1199288163 1199288163 IN IP4 10.0.0.52\r\n\
s=call\r\n\
c=IN IP4 10.0.0.52\r\n\
t=0 0\r\n\
m=audio 62186 RTP/AVP 9 8 0 2 3 18 101\r\n\
a=rtpmap:9 g722/8000\r\n\
a=rtpmap:8 pcma/8000\r\n\
a=rtpmap:0 pcmu/8000\r\n\
a=rtpmap:2 g726-32/8000\r\n\
a=rtpmap:3 gsm/8000\r\n\
a=rtpmap:18 g729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=rtcp-xr:rcvr-rtt=all voip-metrics\r\n\
a=sendrecv\r\n";

/// Asterisk (chan_pjsip) offer.
const ASTERISK: &str = "v=0\r\n\
o=- 1645437788 1645437790 IN IP4 192.0.2.10\r\n\
s=Asterisk\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 17324 RTP/AVP 0 8 9 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

/// Cisco CP-88xx offer: media-level c=, a disabled video line.
const CISCO: &str = "v=0\r\n\
o=Cisco-SIPUA 14587 0 IN IP4 10.0.0.53\r\n\
s=SIP Call\r\n\
b=AS:4064\r\n\
t=0 0\r\n\
m=audio 29240 RTP/AVP 0 8 18 9 101\r\n\
c=IN IP4 10.0.0.53\r\n\
b=TIAS:64000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
m=video 0 RTP/AVP 126 97\r\n\
c=IN IP4 10.0.0.53\r\n\
a=rtpmap:126 H264/90000\r\n";

/// linphone offer: Opus with telephone-event at three rates, explicit a=rtcp.
const LINPHONE: &str = "v=0\r\n\
o=alice 2325 3197 IN IP4 192.168.1.30\r\n\
s=Talk\r\n\
c=IN IP4 192.168.1.30\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
a=record:off\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 SILK/16000\r\n\
a=rtpmap:98 speex/16000\r\n\
a=fmtp:98 vbr=on\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=rtcp:7079\r\n\
a=rtcp-fb:* trr-int 1000\r\n";

/// RFC 2543-style hold: c=0.0.0.0, no direction attribute.
const OLD_HOLD: &str = "v=0\r\no=- 7 8 IN IP4 10.0.0.60\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0\r\n";

/// A T.38 fax switch offered beside audio, with a=sendonly on the image stream only.
const AUDIO_AND_T38: &str = "v=0\r\n\
o=- 1 2 IN IP4 10.0.0.70\r\n\
s=-\r\n\
c=IN IP4 10.0.0.70\r\n\
t=0 0\r\n\
m=audio 4000 RTP/AVP 8\r\n\
a=sendrecv\r\n\
m=image 4002 udptl t38\r\n\
a=T38FaxVersion:0\r\n\
a=sendonly\r\n";

/// baresip 1.0.0 (Debian 12) INVITE offer, captured from a call to SIPp.
const BARESIP_1_0_OFFER: &str = "v=0\r\n\
o=- 1922757264 1592775578 IN IP4 192.0.2.2\r\n\
s=-\r\n\
c=IN IP4 192.0.2.2\r\n\
t=0 0\r\n\
a=tool:baresip 1.0.0\r\n\
m=audio 20004 RTP/AVP 0 8 9 96 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=rtcp-rsize\r\n\
a=ssrc:890406971 cname:sip:uas@127.0.0.1:5090\r\n\
a=minptime:20\r\n\
a=ptime:20\r\n";

/// baresip 1.0.0's 200 OK answer to our `offer()` (all four codecs), captured.
const BARESIP_1_0_ANSWER: &str = "v=0\r\n\
o=- 3217047606 870894251 IN IP4 192.0.2.2\r\n\
s=-\r\n\
c=IN IP4 192.0.2.2\r\n\
t=0 0\r\n\
a=tool:baresip 1.0.0\r\n\
m=audio 20042 RTP/AVP 96 9 8 0 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ssrc:2010614889 cname:sip:uas@127.0.0.1:5090\r\n\
a=minptime:20\r\n\
a=ptime:20\r\n";

const ALL_SAMPLES: [&str; 13] = [
    BARESIP_1_0_OFFER,
    BARESIP_1_0_ANSWER,
    SIPP_UAC,
    BARESIP,
    YEALINK,
    YEALINK_HOLD,
    YEALINK_UNHOLD,
    SNOM,
    ASTERISK,
    CISCO,
    LINPHONE,
    OLD_HOLD,
    AUDIO_AND_T38,
];

fn local(codecs: &[Codec]) -> LocalMedia {
    LocalMedia {
        ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
        port: 30000,
        codecs: codecs.to_vec(),
        session_id: 4242,
        session_version: 1,
        srtp: LocalSrtp::off(),
    }
}

fn all_codecs() -> LocalMedia {
    local(&[Codec::Opus, Codec::G722, Codec::Pcma, Codec::Pcmu])
}

fn answer_to(offer_text: &str, local: &LocalMedia) -> (String, NegotiatedAudio) {
    let offer = parse(offer_text).unwrap();
    answer(&offer, local).unwrap()
}

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> Option<SocketAddr> {
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port))
}

fn sdp(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\r\n")).collect()
}

/// A minimal offer with one audio m-line and extra media-level lines.
fn audio_offer(m_line: &str, extra: &[&str]) -> String {
    let mut lines = vec![
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.9",
        "s=-",
        "c=IN IP4 10.0.0.9",
        "t=0 0",
    ];
    lines.push(m_line);
    lines.extend_from_slice(extra);
    sdp(&lines)
}

// ---- parsing ----

#[test]
fn parses_sipp_default_uac_offer() {
    let sd = parse(SIPP_UAC).unwrap();
    assert_eq!(sd.origin.session_id, "53655765");
    assert_eq!(sd.origin.session_version, "2353687637");
    assert_eq!(
        sd.connection,
        Some(ConnectionAddress::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)))
    );
    assert_eq!(sd.media.len(), 1);
    let m = &sd.media[0];
    assert_eq!(
        (m.media.as_str(), m.port, m.proto.as_str()),
        ("audio", 6000, "RTP/AVP")
    );
    assert_eq!(m.formats, ["0"]);
    assert_eq!(m.codec_for(0), Some(Codec::Pcmu));
    assert_eq!(m.line, 6);
}

#[test]
fn parses_every_real_world_sample() {
    for sample in ALL_SAMPLES {
        let sd = parse(sample).unwrap_or_else(|e| panic!("{e} in\n{sample}"));
        assert!(!sd.media.is_empty());
    }
}

#[test]
fn recognises_static_payload_types_without_rtpmap() {
    let sd = parse(&audio_offer("m=audio 4000 RTP/AVP 9 8 0 3", &[])).unwrap();
    let m = &sd.media[0];
    assert_eq!(m.codec_for(9), Some(Codec::G722));
    assert_eq!(m.codec_for(8), Some(Codec::Pcma));
    assert_eq!(m.codec_for(0), Some(Codec::Pcmu));
    assert_eq!(m.codec_for(3), None);
}

#[test]
fn rtpmap_overrides_static_payload_type_meaning() {
    let sd = parse(&audio_offer(
        "m=audio 4000 RTP/AVP 0",
        &["a=rtpmap:0 PCMA/8000"],
    ))
    .unwrap();
    assert_eq!(sd.media[0].codec_for(0), Some(Codec::Pcma));
}

#[test]
fn matches_rtpmap_names_case_insensitively() {
    let sd = parse(&audio_offer(
        "m=audio 4000 RTP/AVP 100 101 102 103",
        &[
            "a=rtpmap:100 pcmu/8000",
            "a=rtpmap:101 g722/8000",
            "a=rtpmap:102 OPUS/48000/2",
            "a=rtpmap:103 Telephone-Event/8000",
        ],
    ))
    .unwrap();
    let m = &sd.media[0];
    assert_eq!(m.codec_for(100), Some(Codec::Pcmu));
    assert_eq!(m.codec_for(101), Some(Codec::G722));
    assert_eq!(m.codec_for(102), Some(Codec::Opus));
    assert_eq!(m.telephone_event(8000), Some((103, 8000)));
}

#[test]
fn does_not_take_wrong_clock_rate_for_a_codec() {
    let sd = parse(&audio_offer(
        "m=audio 4000 RTP/AVP 96 97",
        &["a=rtpmap:96 G722/16000", "a=rtpmap:97 opus/8000/1"],
    ))
    .unwrap();
    assert_eq!(sd.media[0].codec_for(96), None);
    assert_eq!(sd.media[0].codec_for(97), None);
}

#[test]
fn accepts_lf_only_line_ends_trailing_blanks_and_blank_lines() {
    let text = "v=0\no=- 1 1 IN IP4 10.0.0.9 \ns=-\n\nc=IN IP4 10.0.0.9\t\nt=0 0\nm=audio 4000 RTP/AVP 0\n\n\n";
    let sd = parse(text).unwrap();
    assert_eq!(sd.media[0].port, 4000);
    assert_eq!(
        sd.connection,
        Some(ConnectionAddress::Ip("10.0.0.9".parse().unwrap()))
    );
}

#[test]
fn tolerates_missing_session_name_and_timing_and_key_lines() {
    let text = sdp(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.9",
        "c=IN IP4 10.0.0.9",
        "k=prompt",
        "m=audio 4000 RTP/AVP 0",
    ]);
    assert_eq!(parse(&text).unwrap().media.len(), 1);
}

#[test]
fn rejects_garbage_line_with_its_line_number() {
    let text = audio_offer(
        "m=audio 4000 RTP/AVP 0",
        &["a=rtpmap:0 PCMU/8000", "hello world"],
    );
    let err = parse(&text).unwrap_err();
    assert_eq!(
        err,
        SdpError::Malformed {
            line: 8,
            reason: "not a <type>=<value> line"
        }
    );
    assert!(err.to_string().contains("line 8"), "{err}");
}

#[test]
fn rejects_unknown_line_type() {
    let text = audio_offer("m=audio 4000 RTP/AVP 0", &["x=1"]);
    assert!(matches!(
        parse(&text),
        Err(SdpError::Malformed { line: 7, .. })
    ));
}

#[test]
fn rejects_body_not_starting_with_version_zero() {
    assert!(matches!(
        parse("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n"),
        Err(SdpError::Malformed { line: 1, .. })
    ));
    assert!(matches!(
        parse("v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n"),
        Err(SdpError::Malformed { line: 1, .. })
    ));
    assert_eq!(parse(""), Err(SdpError::Missing("v=")));
    assert_eq!(parse("\r\n\r\n"), Err(SdpError::Missing("v=")));
}

#[test]
fn rejects_body_without_origin() {
    let text = "v=0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(parse(text), Err(SdpError::Missing("o=")));
}

#[test]
fn rejects_broken_fields_it_reads_with_line_numbers() {
    let cases: [(&str, usize); 8] = [
        ("m=audio", 6),
        ("m=audio 70000 RTP/AVP 0", 6),
        ("m=audio +4000 RTP/AVP 0", 6),
        ("m=audio 4000 RTP/AVP", 6),
        ("m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU", 7),
        ("m=audio 4000 RTP/AVP 0\r\na=ptime:fast", 7),
        ("m=audio 4000 RTP/AVP 0\r\na=rtcp:abc", 7),
        ("m=audio 4000 RTP/AVP 0\r\nc=IN ATM 1.2.3.4", 7),
    ];
    for (m_part, line) in cases {
        let text = audio_offer(m_part, &[]);
        match parse(&text) {
            Err(SdpError::Malformed { line: l, .. }) => assert_eq!(l, line, "{m_part}"),
            other => panic!("{m_part}: {other:?}"),
        }
    }
}

#[test]
fn rejects_body_over_16_kib() {
    let mut text = audio_offer("m=audio 4000 RTP/AVP 0", &[]);
    while text.len() <= MAX_SDP_BYTES {
        text.push_str("a=x-padding:0123456789abcdef0123456789abcdef\r\n");
    }
    assert_eq!(parse(&text), Err(SdpError::TooLarge { len: text.len() }));
}

#[test]
fn rejects_more_than_64_m_lines() {
    let head = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n";
    let at_limit = format!("{head}{}", "m=audio 0 RTP/AVP 0\r\n".repeat(MAX_MEDIA));
    assert_eq!(parse(&at_limit).unwrap().media.len(), MAX_MEDIA);
    let over = format!("{head}{}", "m=audio 0 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1));
    assert_eq!(parse(&over), Err(SdpError::TooManyMedia));
}

#[test]
fn ignores_unknown_attributes() {
    let text = audio_offer(
        "m=audio 4000 RTP/AVP 0",
        &[
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
            "a=X-nat:0",
            "a=silenceSupp:off - - - -",
            "a=fmtp:webrtc-datachannel max-message-size=1024",
            "a=rtpmap:webrtc-datachannel x",
            "a=ssrc:1 cname:x",
        ],
    );
    let sd = parse(&text).unwrap();
    assert!(sd.media[0].rtpmaps.is_empty());
    assert!(sd.media[0].fmtps.is_empty());
}

#[test]
fn keeps_unsupported_m_lines_and_their_attributes_in_place() {
    let sd = parse(AUDIO_AND_T38).unwrap();
    assert_eq!(sd.media.len(), 2);
    assert_eq!(sd.media[0].direction, Some(Direction::SendRecv));
    assert_eq!(sd.media[1].media, "image");
    assert_eq!(sd.media[1].proto, "udptl");
    assert_eq!(sd.media[1].formats, ["t38"]);
    assert_eq!(sd.media[1].direction, Some(Direction::SendOnly));
}

#[test]
fn parses_ipv6_connection_and_rtcp_address() {
    let text = sdp(&[
        "v=0",
        "o=- 1 2 IN IP6 2001:db8::1",
        "s=-",
        "c=IN IP6 2001:db8::1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "a=rtcp:4005 IN IP6 2001:db8::2",
    ]);
    let sd = parse(&text).unwrap();
    let ip1: IpAddr = "2001:db8::1".parse().unwrap();
    let ip2: IpAddr = "2001:db8::2".parse().unwrap();
    assert_eq!(sd.connection, Some(ConnectionAddress::Ip(ip1)));
    assert_eq!(
        sd.media[0].rtcp,
        Some(RtcpAttribute {
            port: 4005,
            address: Some(ConnectionAddress::Ip(ip2))
        })
    );
}

#[test]
fn strips_multicast_ttl_and_keeps_host_names() {
    let sd = parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 224.2.1.1/127\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 pbx.example.com\r\n",
    )
    .unwrap();
    assert_eq!(
        sd.connection,
        Some(ConnectionAddress::Ip("224.2.1.1".parse().unwrap()))
    );
    assert_eq!(
        sd.media[0].connection,
        Some(ConnectionAddress::Host("pbx.example.com".into()))
    );
}

#[test]
fn truncates_fractional_ptime() {
    let sd = parse(&audio_offer("m=audio 4000 RTP/AVP 0", &["a=ptime:30.0"])).unwrap();
    assert_eq!(sd.media[0].ptime_ms, Some(30));
}

#[test]
fn first_rtpmap_and_fmtp_per_payload_type_win() {
    let sd = parse(&audio_offer(
        "m=audio 4000 RTP/AVP 96",
        &[
            "a=rtpmap:96 opus/48000/2",
            "a=rtpmap:96 PCMU/8000",
            "a=fmtp:96 useinbandfec=1",
            "a=fmtp:96 stereo=1",
        ],
    ))
    .unwrap();
    assert_eq!(sd.media[0].codec_for(96), Some(Codec::Opus));
    assert_eq!(sd.media[0].fmtp(96), Some("useinbandfec=1"));
}

// ---- answering ----

#[test]
fn answers_sipp_offer_in_standard_format() {
    let (text, n) = answer_to(SIPP_UAC, &all_codecs());
    assert_eq!(
        text,
        "v=0\r\n\
         o=- 4242 1 IN IP4 203.0.113.5\r\n\
         s=amtsleitung\r\n\
         c=IN IP4 203.0.113.5\r\n\
         t=0 0\r\n\
         m=audio 30000 RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
    assert_eq!(
        n,
        NegotiatedAudio {
            codec: Codec::Pcmu,
            payload_type: 0,
            clock_rate: 8000,
            channels: 1,
            ptime_ms: 20,
            telephone_event_pt: None,
            telephone_event_rate: 8000,
            remote_rtp: v4(127, 0, 0, 1, 6000),
            remote_rtcp: v4(127, 0, 0, 1, 6001),
            rtcp_mux: false,
            direction: Direction::SendRecv,
            opus_fmtp: None,
            audio_level_ext: None,
            srtp: None,
        }
    );
}

#[test]
fn answer_prefers_offerers_codec_order_over_ours() {
    let ours = local(&[Codec::Pcmu, Codec::Pcma, Codec::G722]);
    let (text, n) = answer_to(YEALINK, &ours);
    assert_eq!(n.codec, Codec::G722);
    assert_eq!(n.payload_type, 9);
    assert!(text.contains("m=audio 30000 RTP/AVP 9 101\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:9 G722/8000\r\n"), "{text}");

    let (_, n) = answer_to(ASTERISK, &ours);
    assert_eq!(n.codec, Codec::Pcmu);
}

#[test]
fn answer_skips_offered_codecs_we_do_not_run() {
    let (_, n) = answer_to(SNOM, &local(&[Codec::Pcmu]));
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 0));
    let (_, n) = answer_to(CISCO, &local(&[Codec::G722]));
    assert_eq!((n.codec, n.payload_type), (Codec::G722, 9));
}

#[test]
fn answer_picks_static_payload_type_without_rtpmap() {
    let (text, n) = answer_to(&audio_offer("m=audio 4000 RTP/AVP 9 0", &[]), &all_codecs());
    assert_eq!(n.codec, Codec::G722);
    assert!(text.contains("a=rtpmap:9 G722/8000\r\n"));
}

#[test]
fn answer_keeps_offerers_dynamic_opus_payload_type_and_fmtp() {
    let (text, n) = answer_to(BARESIP, &all_codecs());
    assert_eq!((n.codec, n.payload_type), (Codec::Opus, 96));
    assert_eq!((n.clock_rate, n.channels), (48000, 2));
    assert_eq!(
        n.opus_fmtp.as_deref(),
        Some("stereo=1;sprop-stereo=1;useinbandfec=1")
    );
    assert!(text.contains("m=audio 30000 RTP/AVP 96 101\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:96 opus/48000/2\r\n"), "{text}");
    assert!(
        text.contains(
            "a=fmtp:96 maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1\r\n"
        ),
        "{text}"
    );
}

#[test]
fn answer_includes_telephone_event_only_when_offered() {
    let (text, n) = answer_to(ASTERISK, &all_codecs());
    assert_eq!(n.telephone_event_pt, Some(101));
    assert!(text.contains("m=audio 30000 RTP/AVP 0 101\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));

    let (text, n) = answer_to(SIPP_UAC, &all_codecs());
    assert_eq!(n.telephone_event_pt, None);
    assert!(!text.contains("telephone-event"));
}

#[test]
fn telephone_event_prefers_the_codec_clock_rate() {
    // Opus chosen: the 48 kHz event stream fits best (RFC 4733 §2.1).
    let (text, n) = answer_to(LINPHONE, &all_codecs());
    assert_eq!((n.codec, n.telephone_event_pt), (Codec::Opus, Some(101)));
    assert_eq!(n.telephone_event_rate, 48000);
    assert!(
        text.contains("a=rtpmap:101 telephone-event/48000\r\n"),
        "{text}"
    );

    // G.711 chosen from the same offer: the 8 kHz one.
    let (_, n) = answer_to(LINPHONE, &local(&[Codec::Pcmu]));
    assert_eq!((n.codec, n.telephone_event_pt), (Codec::Pcmu, Some(100)));
    assert_eq!(n.telephone_event_rate, 8000);
}

#[test]
fn telephone_event_at_another_rate_is_kept_when_it_is_the_only_one() {
    // baresip offers Opus with only telephone-event/8000; without it no PIN entry.
    let (text, n) = answer_to(BARESIP, &all_codecs());
    assert_eq!((n.codec, n.telephone_event_pt), (Codec::Opus, Some(101)));
    assert_eq!(n.telephone_event_rate, 8000);
    assert!(text.contains("m=audio 30000 RTP/AVP 96 101\r\n"), "{text}");
    assert!(
        text.contains("a=rtpmap:101 telephone-event/8000\r\n"),
        "{text}"
    );
}

#[test]
fn refuses_other_m_lines_with_port_zero_and_same_formats() {
    let (text, _) = answer_to(CISCO, &all_codecs());
    assert!(text.ends_with("m=video 0 RTP/AVP 126 97\r\n"), "{text}");

    let second_audio = audio_offer(
        "m=audio 4000 RTP/AVP 0",
        &["m=audio 4002 RTP/AVP 8 0", "m=image 4004 udptl t38"],
    );
    let (text, n) = answer_to(&second_audio, &all_codecs());
    assert_eq!(n.remote_rtp, v4(10, 0, 0, 9, 4000));
    let m_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m_lines,
        [
            "m=audio 30000 RTP/AVP 0",
            "m=audio 0 RTP/AVP 8 0",
            "m=image 0 udptl t38"
        ]
    );
}

#[test]
fn answer_has_as_many_m_lines_as_the_offer() {
    for sample in ALL_SAMPLES {
        let offer = parse(sample).unwrap();
        let (text, _) = answer(&offer, &all_codecs()).unwrap();
        let reparsed = parse(&text).unwrap();
        assert_eq!(reparsed.media.len(), offer.media.len(), "{sample}");
        for (o, a) in offer.media.iter().zip(&reparsed.media) {
            assert_eq!(o.media, a.media);
            assert_eq!(o.proto, a.proto);
        }
    }
}

#[test]
fn uses_first_usable_audio_when_first_is_disabled_or_srtp() {
    let text = audio_offer(
        "m=audio 0 RTP/AVP 0",
        &[
            "m=audio 5000 RTP/SAVP 0",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x",
            "m=audio 6000 RTP/AVP 8",
        ],
    );
    let (answer_text, n) = answer_to(&text, &all_codecs());
    assert_eq!(
        (n.codec, n.remote_rtp),
        (Codec::Pcma, v4(10, 0, 0, 9, 6000))
    );
    let m_lines: Vec<&str> = answer_text
        .lines()
        .filter(|l| l.starts_with("m="))
        .collect();
    assert_eq!(
        m_lines,
        [
            "m=audio 0 RTP/AVP 0",
            "m=audio 0 RTP/SAVP 0",
            "m=audio 30000 RTP/AVP 8"
        ]
    );
}

#[test]
fn rejects_offer_without_common_codec() {
    let g729_only = audio_offer("m=audio 4000 RTP/AVP 18", &["a=rtpmap:18 G729/8000"]);
    let offer = parse(&g729_only).unwrap();
    assert_eq!(answer(&offer, &all_codecs()), Err(SdpError::NoCommonCodec));

    let offer = parse(BARESIP).unwrap();
    assert_eq!(
        answer(&offer, &local(&[])),
        Err(SdpError::NoCommonCodec),
        "empty local codec list"
    );
}

#[test]
fn rejects_offer_whose_audio_is_refused_or_encrypted_or_absent() {
    let offer = parse(&audio_offer("m=audio 4000 RTP/SAVP 0", &[])).unwrap();
    assert_eq!(
        answer(&offer, &all_codecs()),
        Err(SdpError::EncryptionRefused),
        "encrypted only, SRTP off"
    );
    for m_line in [
        "m=audio 0 RTP/AVP 0",
        "m=video 4000 RTP/AVP 96",
        "m=image 4000 udptl t38",
    ] {
        let offer = parse(&audio_offer(m_line, &[])).unwrap();
        assert_eq!(
            answer(&offer, &all_codecs()),
            Err(SdpError::NoCommonCodec),
            "{m_line}"
        );
    }
}

#[test]
fn answers_rtp_avpf_with_rtp_avpf() {
    let (text, _) = answer_to(&audio_offer("m=audio 4000 RTP/AVPF 0", &[]), &all_codecs());
    assert!(text.contains("m=audio 30000 RTP/AVPF 0\r\n"), "{text}");
}

#[test]
fn hold_with_sendonly_is_answered_recvonly() {
    let (text, n) = answer_to(YEALINK_HOLD, &all_codecs());
    assert_eq!(n.direction, Direction::RecvOnly);
    assert!(text.contains("a=recvonly\r\n"));
    // The address is still valid: RTCP keeps flowing (RFC 3264 §8.4).
    assert_eq!(n.remote_rtp, v4(10, 0, 0, 51, 11780));
}

#[test]
fn unhold_with_sendrecv_is_answered_sendrecv() {
    let (text, n) = answer_to(YEALINK_UNHOLD, &all_codecs());
    assert_eq!(n.direction, Direction::SendRecv);
    assert!(text.contains("a=sendrecv\r\n"));
}

#[test]
fn mirrors_recvonly_and_inactive() {
    let (text, n) = answer_to(
        &audio_offer("m=audio 4000 RTP/AVP 0", &["a=recvonly"]),
        &all_codecs(),
    );
    assert_eq!(n.direction, Direction::SendOnly);
    assert!(text.contains("a=sendonly\r\n"));

    let (text, n) = answer_to(
        &audio_offer("m=audio 4000 RTP/AVP 0", &["a=inactive"]),
        &all_codecs(),
    );
    assert_eq!(n.direction, Direction::Inactive);
    assert!(text.contains("a=inactive\r\n"));
    assert_eq!((n.remote_rtp, n.remote_rtcp), (None, None));
}

#[test]
fn connection_zero_hold_is_treated_as_sendonly_without_remote_address() {
    let (text, n) = answer_to(OLD_HOLD, &all_codecs());
    assert_eq!(n.direction, Direction::RecvOnly);
    assert!(text.contains("a=recvonly\r\n"));
    assert!(text.contains("c=IN IP4 203.0.113.5\r\n"));
    assert_eq!((n.remote_rtp, n.remote_rtcp), (None, None));
}

#[test]
fn connection_zero_with_recvonly_becomes_inactive() {
    let text = sdp(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.9",
        "s=-",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
        "a=recvonly",
    ]);
    let (_, n) = answer_to(&text, &all_codecs());
    assert_eq!(n.direction, Direction::Inactive);
}

#[test]
fn media_level_connection_and_direction_override_session_level() {
    let text = sdp(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.9",
        "s=-",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "a=sendonly",
        "m=audio 4000 RTP/AVP 0",
        "c=IN IP4 10.0.0.10",
        "a=sendrecv",
    ]);
    let (_, n) = answer_to(&text, &all_codecs());
    assert_eq!(n.direction, Direction::SendRecv);
    assert_eq!(n.remote_rtp, v4(10, 0, 0, 10, 4000));
}

#[test]
fn session_level_direction_applies_when_media_has_none() {
    let text = sdp(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.9",
        "s=-",
        "c=IN IP4 10.0.0.9",
        "t=0 0",
        "a=sendonly",
        "m=audio 4000 RTP/AVP 0",
    ]);
    let (_, n) = answer_to(&text, &all_codecs());
    assert_eq!(n.direction, Direction::RecvOnly);
}

#[test]
fn answer_needs_an_ip_connection_address() {
    let no_c = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let offer = parse(no_c).unwrap();
    assert_eq!(
        answer(&offer, &all_codecs()),
        Err(SdpError::MissingConnection { line: 5 })
    );
    let host = audio_offer("m=audio 4000 RTP/AVP 0", &["c=IN IP4 pbx.example.com"]);
    let offer = parse(&host).unwrap();
    assert_eq!(
        answer(&offer, &all_codecs()),
        Err(SdpError::UnresolvedAddress { line: 6 })
    );
}

#[test]
fn honours_and_echoes_ptime() {
    let (text, n) = answer_to(
        &audio_offer("m=audio 4000 RTP/AVP 8", &["a=ptime:30"]),
        &all_codecs(),
    );
    assert_eq!(n.ptime_ms, 30);
    assert!(text.contains("a=ptime:30\r\n"), "{text}");

    // Session-level ptime is not RFC 4566 but some phones put it there.
    let text = sdp(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.9",
        "s=-",
        "c=IN IP4 10.0.0.9",
        "t=0 0",
        "a=ptime:40",
        "m=audio 4000 RTP/AVP 8",
    ]);
    assert_eq!(answer_to(&text, &all_codecs()).1.ptime_ms, 40);
}

#[test]
fn falls_back_to_20_ms_for_ptime_we_cannot_packetise() {
    for (offer_text, codecs) in [
        (
            audio_offer("m=audio 4000 RTP/AVP 8", &["a=ptime:25"]),
            vec![Codec::Pcma],
        ),
        (
            audio_offer("m=audio 4000 RTP/AVP 8", &["a=ptime:0"]),
            vec![Codec::Pcma],
        ),
        (
            audio_offer("m=audio 4000 RTP/AVP 8", &["a=ptime:1000"]),
            vec![Codec::Pcma],
        ),
        (
            audio_offer(
                "m=audio 4000 RTP/AVP 96",
                &["a=rtpmap:96 opus/48000/2", "a=ptime:30"],
            ),
            vec![Codec::Opus],
        ),
    ] {
        let (text, n) = answer_to(&offer_text, &local(&codecs));
        assert_eq!(n.ptime_ms, 20, "{offer_text}");
        assert!(text.contains("a=ptime:20\r\n"));
    }
    let opus40 = audio_offer(
        "m=audio 4000 RTP/AVP 96",
        &["a=rtpmap:96 opus/48000/2", "a=ptime:40"],
    );
    assert_eq!(answer_to(&opus40, &all_codecs()).1.ptime_ms, 40);
}

#[test]
fn accepts_rtcp_mux_and_sends_rtcp_to_the_rtp_port() {
    let (text, n) = answer_to(BARESIP, &all_codecs());
    assert!(n.rtcp_mux);
    assert!(text.contains("a=rtcp-mux\r\n"));
    assert_eq!(n.remote_rtp, v4(192, 168, 1, 20, 10350));
    assert_eq!(n.remote_rtcp, None);

    let (text, n) = answer_to(ASTERISK, &all_codecs());
    assert!(!n.rtcp_mux);
    assert!(!text.contains("rtcp-mux"));
}

#[test]
fn takes_rtcp_port_and_address_from_rtcp_attribute() {
    let (_, n) = answer_to(LINPHONE, &all_codecs());
    assert_eq!(n.remote_rtcp, v4(192, 168, 1, 30, 7079));

    let other = audio_offer("m=audio 4000 RTP/AVP 0", &["a=rtcp:5999 IN IP4 10.0.0.77"]);
    let (_, n) = answer_to(&other, &all_codecs());
    assert_eq!(n.remote_rtcp, v4(10, 0, 0, 77, 5999));
}

#[test]
fn rtcp_defaults_to_the_next_port_but_not_past_65535() {
    let (_, n) = answer_to(&audio_offer("m=audio 4000 RTP/AVP 0", &[]), &all_codecs());
    assert_eq!(n.remote_rtcp, v4(10, 0, 0, 9, 4001));
    let (_, n) = answer_to(&audio_offer("m=audio 65535 RTP/AVP 0", &[]), &all_codecs());
    assert_eq!(n.remote_rtp, v4(10, 0, 0, 9, 65535));
    assert_eq!(n.remote_rtcp, None);
}

#[test]
fn answers_ipv6_offer_from_ipv6_address() {
    let offer_text = sdp(&[
        "v=0",
        "o=- 1 2 IN IP6 2001:db8::1",
        "s=-",
        "c=IN IP6 2001:db8::1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
    ]);
    let mut ours = all_codecs();
    ours.ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99));
    let (text, n) = answer_to(&offer_text, &ours);
    assert!(
        text.contains("o=- 4242 1 IN IP6 2001:db8::99\r\n"),
        "{text}"
    );
    assert!(text.contains("c=IN IP6 2001:db8::99\r\n"), "{text}");
    assert_eq!(
        n.remote_rtp,
        Some(SocketAddr::new("2001:db8::1".parse().unwrap(), 4000))
    );
}

#[test]
fn ipv6_unspecified_address_is_hold_too() {
    let offer_text = sdp(&[
        "v=0",
        "o=- 1 2 IN IP6 2001:db8::1",
        "s=-",
        "c=IN IP6 ::",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
    ]);
    let (_, n) = answer_to(&offer_text, &all_codecs());
    assert_eq!((n.direction, n.remote_rtp), (Direction::RecvOnly, None));
}

#[test]
fn every_line_we_emit_ends_in_crlf() {
    let texts = ALL_SAMPLES
        .iter()
        .map(|s| answer_to(s, &all_codecs()).0)
        .chain([offer(&all_codecs(), Direction::SendRecv)]);
    for text in texts {
        assert!(text.ends_with("\r\n"));
        let bytes = text.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                assert_eq!(bytes.get(i.wrapping_sub(1)), Some(&b'\r'), "{text}");
            }
        }
    }
}

#[test]
fn firefox_strict_parser_accepts_what_we_emit() {
    let texts = ALL_SAMPLES
        .iter()
        .map(|s| answer_to(s, &all_codecs()).0)
        .filter(|t| !t.contains("udptl")) // webrtc-sdp does not model T.38
        .chain([
            offer(&all_codecs(), Direction::SendRecv),
            offer(&local(&[Codec::Pcma]), Direction::SendOnly),
        ]);
    for text in texts {
        if let Err(e) = webrtc_sdp::parse_sdp(&text, true) {
            panic!("{e:?}\n{text}");
        }
    }
}

// ---- header extensions (RFC 8285, RFC 6464) ----

/// An Opus offer carrying the given media-level `a=extmap` lines.
fn offer_with_extmaps(extmaps: &[&str]) -> String {
    let mut extra = vec!["a=rtpmap:111 opus/48000/2"];
    extra.extend_from_slice(extmaps);
    extra.push("a=sendrecv");
    audio_offer("m=audio 4000 RTP/AVP 111", &extra)
}

/// The `a=extmap` lines of an SDP text.
fn extmap_lines(text: &str) -> Vec<&str> {
    text.split("\r\n")
        .filter(|l| l.starts_with("a=extmap"))
        .collect()
}

#[test]
fn parses_chrome_like_extmaps_and_echoes_only_audio_level() {
    let text = offer_with_extmaps(&[
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    ]);
    let sd = parse(&text).unwrap();
    assert_eq!(
        sd.media[0].extmaps,
        [
            ExtMap {
                id: 1,
                direction: None,
                uri: AUDIO_LEVEL_URI.to_owned(),
                attributes: None,
            },
            ExtMap {
                id: 2,
                direction: None,
                uri: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time".to_owned(),
                attributes: None,
            },
        ]
    );
    let (answer_text, n) = answer(&sd, &all_codecs()).unwrap();
    assert_eq!(n.audio_level_ext, Some(1));
    assert_eq!(
        extmap_lines(&answer_text),
        ["a=extmap:1/recvonly urn:ietf:params:rtp-hdrext:ssrc-audio-level"]
    );
}

#[test]
fn sendonly_audio_level_with_attributes_is_taken() {
    let text = offer_with_extmaps(&[
        "a=extmap:3/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on",
    ]);
    let sd = parse(&text).unwrap();
    assert_eq!(
        sd.media[0].extmaps,
        [ExtMap {
            id: 3,
            direction: Some(Direction::SendOnly),
            uri: AUDIO_LEVEL_URI.to_owned(),
            attributes: Some("vad=on".to_owned()),
        }]
    );
    let (answer_text, n) = answer(&sd, &all_codecs()).unwrap();
    assert_eq!(n.audio_level_ext, Some(3));
    assert_eq!(
        extmap_lines(&answer_text),
        ["a=extmap:3/recvonly urn:ietf:params:rtp-hdrext:ssrc-audio-level"]
    );
}

#[test]
fn audio_level_the_peer_does_not_send_is_not_negotiated() {
    for dir in ["recvonly", "inactive"] {
        let line = format!("a=extmap:1/{dir} urn:ietf:params:rtp-hdrext:ssrc-audio-level");
        let (answer_text, n) = answer_to(&offer_with_extmaps(&[&line]), &all_codecs());
        assert_eq!(n.audio_level_ext, None, "{dir}");
        assert!(extmap_lines(&answer_text).is_empty(), "{answer_text}");
    }
    let line = "a=extmap:1/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level";
    let (_, n) = answer_to(&offer_with_extmaps(&[line]), &all_codecs());
    assert_eq!(n.audio_level_ext, Some(1));
}

#[test]
fn ignores_unusable_extmap_lines_and_matches_uri_case_insensitively() {
    let text = offer_with_extmaps(&[
        "a=extmap:0 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:256 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:4096 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:+4 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:x urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:4/sideways urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:4/ urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:5",
        "a=extmap:",
        "a=extmap",
        "a=extmap:200 URN:IETF:PARAMS:RTP-HDREXT:SSRC-AUDIO-LEVEL",
    ]);
    let sd = parse(&text).unwrap();
    let ids: Vec<u8> = sd.media[0].extmaps.iter().map(|e| e.id).collect();
    assert_eq!(ids, [200]);
    let (answer_text, n) = answer(&sd, &all_codecs()).unwrap();
    // 200 needs the two-byte form, which the RTP side reads too.
    assert_eq!(n.audio_level_ext, Some(200));
    assert_eq!(
        extmap_lines(&answer_text),
        ["a=extmap:200/recvonly urn:ietf:params:rtp-hdrext:ssrc-audio-level"]
    );
}

#[test]
fn extmaps_belong_to_their_m_line() {
    let text = sdp(&[
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.9",
        "c=IN IP4 10.0.0.9",
        "m=video 5000 RTP/AVP 96",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "m=audio 4000 RTP/AVP 0",
        "a=extmap:2 http://example.com/other",
    ]);
    let sd = parse(&text).unwrap();
    assert_eq!(sd.media[0].audio_level_ext(), Some(1));
    assert_eq!(sd.media[1].audio_level_ext(), None);
    let (answer_text, n) = answer(&sd, &all_codecs()).unwrap();
    assert_eq!(n.audio_level_ext, None);
    assert!(extmap_lines(&answer_text).is_empty(), "{answer_text}");
}

#[test]
fn accept_answer_reads_audio_level_extension() {
    let text = offer_with_extmaps(&["a=extmap:9 urn:ietf:params:rtp-hdrext:ssrc-audio-level"]);
    let n = accept_answer(&[Codec::Opus], &LocalSrtp::off(), &parse(&text).unwrap()).unwrap();
    assert_eq!(n.audio_level_ext, Some(9));
}

#[test]
fn firefox_strict_parser_accepts_our_extmap_answer() {
    let text = offer_with_extmaps(&["a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level"]);
    let (answer_text, _) = answer_to(&text, &all_codecs());
    let parsed = webrtc_sdp::parse_sdp(&answer_text, true)
        .unwrap_or_else(|e| panic!("{e:?}\n{answer_text}"));
    assert!(
        format!("{parsed}").contains("a=extmap:1/recvonly"),
        "{parsed}"
    );
}

// ---- offering ----

#[test]
fn offer_lists_our_codecs_in_order_with_telephone_event() {
    let text = offer(
        &local(&[Codec::G722, Codec::Pcma, Codec::Pcmu]),
        Direction::SendRecv,
    );
    assert_eq!(
        text,
        "v=0\r\n\
         o=- 4242 1 IN IP4 203.0.113.5\r\n\
         s=amtsleitung\r\n\
         c=IN IP4 203.0.113.5\r\n\
         t=0 0\r\n\
         m=audio 30000 RTP/AVP 9 8 0 101\r\n\
         a=rtpmap:9 G722/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn offer_with_opus_adds_48k_telephone_event() {
    let text = offer(&local(&[Codec::Opus, Codec::Pcmu]), Direction::SendRecv);
    assert!(
        text.contains("m=audio 30000 RTP/AVP 96 0 101 97\r\n"),
        "{text}"
    );
    assert!(text.contains(
        "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1\r\n"
    ));
    assert!(text.contains("a=rtpmap:97 telephone-event/48000\r\na=fmtp:97 0-16\r\n"));
    let text = offer(&local(&[Codec::Pcmu]), Direction::SendRecv);
    assert!(!text.contains("48000"), "{text}");
}

#[test]
fn offer_writes_direction_and_session_version() {
    let mut ours = local(&[Codec::Pcmu]);
    ours.session_version = 7;
    let text = offer(&ours, Direction::SendOnly);
    assert!(text.contains("o=- 4242 7 IN IP4 203.0.113.5\r\n"));
    assert!(text.ends_with("a=sendonly\r\n"));
    let sd = parse(&text).unwrap();
    assert_eq!(sd.origin.session_version, "7");
    assert_eq!(sd.media[0].direction, Some(Direction::SendOnly));
}

#[test]
fn offer_does_not_repeat_a_codec() {
    let text = offer(
        &local(&[Codec::Pcmu, Codec::Pcmu, Codec::Opus, Codec::Opus]),
        Direction::SendRecv,
    );
    assert!(
        text.contains("m=audio 30000 RTP/AVP 0 96 101 97\r\n"),
        "{text}"
    );
    assert_eq!(text.matches("a=rtpmap:0 ").count(), 1);
}

// ---- accepting answers ----

#[test]
fn offer_answer_round_trip_agrees_on_both_sides() {
    let caller = local(&[Codec::Opus, Codec::G722, Codec::Pcmu]);
    let mut callee = local(&[Codec::Pcmu, Codec::G722]);
    callee.ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    callee.port = 40000;

    let our_offer = parse(&offer(&caller, Direction::SendRecv)).unwrap();
    let (answer_text, at_callee) = answer(&our_offer, &callee).unwrap();
    let at_caller =
        accept_answer(&caller.codecs, &caller.srtp, &parse(&answer_text).unwrap()).unwrap();

    assert_eq!(at_callee.codec, Codec::G722);
    assert_eq!(at_caller.codec, Codec::G722);
    assert_eq!(at_caller.payload_type, at_callee.payload_type);
    assert_eq!(at_caller.telephone_event_pt, Some(TELEPHONE_EVENT_PT));
    assert_eq!(at_callee.telephone_event_pt, Some(TELEPHONE_EVENT_PT));
    assert_eq!(at_callee.remote_rtp, v4(203, 0, 113, 5, 30000));
    assert_eq!(at_caller.remote_rtp, v4(198, 51, 100, 7, 40000));
    assert_eq!(at_caller.direction, Direction::SendRecv);
}

#[test]
fn round_trip_of_our_hold_offer_makes_us_sendonly() {
    let caller = local(&[Codec::Pcmu]);
    let our_offer = parse(&offer(&caller, Direction::SendOnly)).unwrap();
    let (answer_text, at_callee) = answer(&our_offer, &all_codecs()).unwrap();
    assert_eq!(at_callee.direction, Direction::RecvOnly);
    let at_caller =
        accept_answer(&caller.codecs, &caller.srtp, &parse(&answer_text).unwrap()).unwrap();
    assert_eq!(at_caller.direction, Direction::SendOnly);
}

#[test]
fn answers_captured_baresip_offer_in_its_codec_order() {
    let (text, n) = answer_to(BARESIP_1_0_OFFER, &all_codecs());
    assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 0));
    assert_eq!(n.telephone_event_pt, Some(101));
    assert_eq!(n.remote_rtp, v4(192, 0, 2, 2, 20004));
    assert!(text.contains("m=audio 30000 RTP/AVP 0 101\r\n"), "{text}");
}

#[test]
fn accepts_captured_baresip_answer_to_our_offer() {
    let ours = all_codecs();
    let n = accept_answer(
        &ours.codecs,
        &ours.srtp,
        &parse(BARESIP_1_0_ANSWER).unwrap(),
    )
    .unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Opus, 96));
    assert_eq!(n.opus_fmtp.as_deref(), Some("stereo=1;sprop-stereo=1"));
    assert_eq!(
        (n.telephone_event_pt, n.telephone_event_rate),
        (Some(101), 8000)
    );
    assert_eq!(n.remote_rtp, v4(192, 0, 2, 2, 20042));
    assert_eq!(n.remote_rtcp, v4(192, 0, 2, 2, 20043));
}

#[test]
fn accept_answer_takes_the_answerers_first_codec_we_offered() {
    let answer_text = audio_offer(
        "m=audio 5000 RTP/AVP 18 8 0 101",
        &[
            "a=rtpmap:18 G729/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=ptime:30",
        ],
    );
    let n = accept_answer(
        &[Codec::Pcmu, Codec::Pcma],
        &LocalSrtp::off(),
        &parse(&answer_text).unwrap(),
    )
    .unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    assert_eq!((n.telephone_event_pt, n.ptime_ms), (Some(101), 30));
    assert_eq!(n.remote_rtp, v4(10, 0, 0, 9, 5000));
}

#[test]
fn accept_answer_rejects_refused_stream_or_codec_we_did_not_offer() {
    for m_line in [
        "m=audio 0 RTP/AVP 0",
        "m=audio 5000 RTP/AVP 9",
        "m=video 5000 RTP/AVP 0",
    ] {
        let sd = parse(&audio_offer(m_line, &[])).unwrap();
        assert_eq!(
            accept_answer(&[Codec::Pcmu], &LocalSrtp::off(), &sd),
            Err(SdpError::NoCommonCodec),
            "{m_line}"
        );
    }
}

#[test]
fn accept_answer_ignores_rtcp_mux_we_never_offered() {
    let sd = parse(&audio_offer("m=audio 5000 RTP/AVP 0", &["a=rtcp-mux"])).unwrap();
    let n = accept_answer(&[Codec::Pcmu], &LocalSrtp::off(), &sd).unwrap();
    assert!(!n.rtcp_mux);
    assert_eq!(n.remote_rtcp, v4(10, 0, 0, 9, 5001));
}

// ---- robustness ----

/// Applies byte-level edits that keep the text valid UTF-8 by working on chars.
fn mutate(base: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for &(pos, op, c) in edits {
        if chars.is_empty() {
            chars.push(c);
            continue;
        }
        let at = pos % chars.len();
        match op % 4 {
            0 => {
                chars.remove(at);
            }
            1 => chars.insert(at, c),
            2 => chars[at] = c,
            _ => {
                // Duplicate a slice, the way a broken stack repeats lines.
                let end = (at + 40).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, copy);
            }
        }
    }
    chars.into_iter().collect()
}

fn sdp_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '\r', '\n', ' ', '=', ':', '/', '.', '0', '1', '9', 'a', 'm', 'c', 'v', 'o', '\0',
            '\u{b}', '-', '*'
        ]),
        any::<char>(),
    ]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        if let Ok(sd) = parse(&text) {
            let _ = answer(&sd, &all_codecs());
            let _ = accept_answer(&[Codec::Pcmu, Codec::Opus], &LocalSrtp::off(), &sd);
        }
    }

    #[test]
    fn never_panics_on_mutated_real_sdp_and_answers_reparse(
        sample in prop::sample::select(ALL_SAMPLES.to_vec()),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), sdp_char()), 1..8),
    ) {
        let text = mutate(sample, &edits);
        if let Ok(sd) = parse(&text) {
            let _ = accept_answer(&[Codec::Pcmu, Codec::G722], &LocalSrtp::off(), &sd);
            if let Ok((answer_text, n)) = answer(&sd, &all_codecs()) {
                let reparsed = parse(&answer_text);
                prop_assert!(reparsed.is_ok(), "{:?}\n{}", reparsed, answer_text);
                if let Ok(reparsed) = reparsed {
                    prop_assert_eq!(reparsed.media.len(), sd.media.len());
                    let first_audio_is_ours = reparsed
                        .media
                        .iter()
                        .find(|m| m.media.eq_ignore_ascii_case("audio"))
                        .is_some_and(|m| m.port != 0);
                    if first_audio_is_ours {
                        let again = accept_answer(&[n.codec], &LocalSrtp::off(), &reparsed);
                        prop_assert_eq!(again.map(|a| a.codec), Ok(n.codec));
                    }
                }
            }
        }
    }

    #[test]
    fn our_offer_always_parses_and_is_answerable(
        codecs in prop::collection::vec(prop::sample::select(vec![Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus]), 1..6),
        port in 1u16..,
        id in any::<u64>(),
        version in any::<u64>(),
        v6 in any::<bool>(),
    ) {
        let ip = if v6 { IpAddr::V6(Ipv6Addr::LOCALHOST) } else { IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)) };
        let ours = LocalMedia { ip, port, codecs: codecs.clone(), session_id: id, session_version: version, srtp: LocalSrtp::off() };
        let sd = parse(&offer(&ours, Direction::SendRecv)).unwrap();
        prop_assert_eq!(&sd.origin.session_version, &version.to_string());
        let (_, n) = answer(&sd, &all_codecs()).unwrap();
        prop_assert!(codecs.contains(&n.codec));
        prop_assert_eq!(n.remote_rtp, Some(SocketAddr::new(ip, port)));
    }
}

/// RFC 4568 §9.1's example key (30 bytes: AES-CM key and salt).
const CM_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
/// 28 bytes: an AEAD_AES_128_GCM key and salt.
const GCM_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==";

fn secure(policy: SrtpPolicy) -> LocalMedia {
    LocalMedia {
        srtp: LocalSrtp::new(policy),
        ..all_codecs()
    }
}

fn crypto_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("a=crypto:"))
        .collect()
}

#[test]
fn srtp_required_offers_rtp_savp_with_a_fresh_key_for_each_suite() {
    let text = offer(&secure(SrtpPolicy::Required), Direction::SendRecv);
    assert!(text.contains("m=audio 30000 RTP/SAVP "), "{text}");
    let lines = crypto_lines(&text);
    assert_eq!(lines.len(), 3, "{text}");
    for (line, (tag, suite)) in lines.iter().zip([
        (1, "AES_CM_128_HMAC_SHA1_80"),
        (2, "AEAD_AES_128_GCM"),
        (3, "AES_CM_128_HMAC_SHA1_32"),
    ]) {
        assert!(
            line.starts_with(format!("a=crypto:{tag} {suite} inline:").as_str()),
            "{line}"
        );
    }
    let again = offer(&secure(SrtpPolicy::Required), Direction::SendRecv);
    assert_ne!(crypto_lines(&again), lines, "every leg gets its own keys");
}

#[test]
fn srtp_optional_offers_plain_rtp_carrying_keys_and_off_offers_none() {
    let text = offer(&secure(SrtpPolicy::Optional), Direction::SendRecv);
    assert!(text.contains("m=audio 30000 RTP/AVP "), "{text}");
    assert_eq!(crypto_lines(&text).len(), 3, "{text}");
    let text = offer(&secure(SrtpPolicy::Off), Direction::SendRecv);
    assert!(crypto_lines(&text).is_empty(), "{text}");
}

#[test]
fn answer_takes_the_offerers_first_suite_we_run_under_the_offerers_tag() {
    let text = audio_offer(
        "m=audio 4000 RTP/SAVP 0",
        &[
            format!("a=crypto:7 AEAD_AES_128_GCM inline:{GCM_KEY}").as_str(),
            format!("a=crypto:8 AES_CM_128_HMAC_SHA1_80 inline:{CM_KEY}").as_str(),
        ],
    );
    let (answer_text, n) = answer_to(&text, &secure(SrtpPolicy::Required));
    assert!(
        answer_text.contains("m=audio 30000 RTP/SAVP 0"),
        "{answer_text}"
    );
    let lines = crypto_lines(&answer_text);
    assert_eq!(lines.len(), 1, "{answer_text}");
    assert!(
        lines[0].starts_with("a=crypto:7 AEAD_AES_128_GCM inline:"),
        "{answer_text}"
    );
    assert!(
        !lines[0].contains(GCM_KEY),
        "our own key, not the offerer's"
    );
    let keys = n.srtp.expect("encrypted");
    assert_eq!(keys.suite(), srtp::Suite::AeadAes128Gcm);
    assert_eq!((keys.local.tag, keys.remote.tag), (7, 7));
}

#[test]
fn answer_passes_over_keys_with_mki_session_parameters_or_unknown_suites() {
    let text = audio_offer(
        "m=audio 4000 RTP/SAVP 0",
        &[
            format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{CM_KEY}|2^20|1:4").as_str(),
            format!("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{CM_KEY} UNENCRYPTED_SRTP").as_str(),
            format!("a=crypto:3 F8_128_HMAC_SHA1_80 inline:{CM_KEY}").as_str(),
            "a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:not-base64!",
            format!("a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:{CM_KEY}|2^31").as_str(),
        ],
    );
    let (_, n) = answer_to(&text, &secure(SrtpPolicy::Required));
    assert_eq!(n.srtp.expect("encrypted").remote.tag, 5);
}

#[test]
fn srtp_required_refuses_an_offer_of_plain_rtp_only() {
    for offer_text in [
        audio_offer("m=audio 4000 RTP/AVP 0", &[]),
        audio_offer(
            "m=audio 4000 RTP/SAVP 0",
            &["a=crypto:1 F8_128_HMAC_SHA1_80 inline:x"],
        ),
    ] {
        let offer = parse(&offer_text).unwrap();
        assert_eq!(
            answer(&offer, &secure(SrtpPolicy::Required)),
            Err(SdpError::EncryptionRequired),
            "{offer_text}"
        );
    }
}

#[test]
fn srtp_optional_answers_plain_offers_plainly_and_keyed_ones_encrypted() {
    let (text, n) = answer_to(BARESIP, &secure(SrtpPolicy::Optional));
    assert!(n.srtp.is_none() && crypto_lines(&text).is_empty(), "{text}");

    let keyed = audio_offer(
        "m=audio 4000 RTP/AVP 0",
        &[format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{CM_KEY}").as_str()],
    );
    let (text, n) = answer_to(&keyed, &secure(SrtpPolicy::Optional));
    assert!(
        text.contains("m=audio 30000 RTP/AVP 0"),
        "profile echoed: {text}"
    );
    assert_eq!(crypto_lines(&text).len(), 1, "{text}");
    assert!(n.srtp.is_some(), "best-effort SDES is taken up");
}

#[test]
fn srtp_off_answers_keyed_plain_offers_plainly() {
    let keyed = audio_offer(
        "m=audio 4000 RTP/AVP 0",
        &[format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{CM_KEY}").as_str()],
    );
    let (text, n) = answer_to(&keyed, &all_codecs());
    assert!(n.srtp.is_none() && crypto_lines(&text).is_empty(), "{text}");
}

#[test]
fn offer_and_answer_between_two_of_us_cross_the_keys() {
    let caller = secure(SrtpPolicy::Required);
    let callee = LocalMedia {
        port: 31000,
        ..secure(SrtpPolicy::Optional)
    };
    let offer_text = offer(&caller, Direction::SendRecv);
    let (answer_text, at_callee) = answer(&parse(&offer_text).unwrap(), &callee).unwrap();
    let at_caller =
        accept_answer(&caller.codecs, &caller.srtp, &parse(&answer_text).unwrap()).unwrap();
    let (a, b) = (at_caller.srtp.unwrap(), at_callee.srtp.unwrap());
    assert_eq!(
        a.suite(),
        srtp::Suite::AesCm128HmacSha1_80,
        "our first suite"
    );
    assert_eq!(a.local.to_sdp_value(), b.remote.to_sdp_value());
    assert_eq!(a.remote.to_sdp_value(), b.local.to_sdp_value());
}

#[test]
fn accept_answer_holds_the_answer_to_the_keys_we_offered() {
    let ours = secure(SrtpPolicy::Required);
    let answer_with = |proto: &str, crypto: &[&str]| {
        let text = audio_offer(format!("m=audio 4000 {proto} 0").as_str(), crypto);
        accept_answer(&ours.codecs, &ours.srtp, &parse(&text).unwrap())
    };
    assert_eq!(
        answer_with("RTP/SAVP", &[]).map(|n| n.srtp),
        Err(SdpError::EncryptionRequired),
        "no key in the answer"
    );
    assert_eq!(
        answer_with("RTP/AVP", &[]).map(|n| n.srtp),
        Err(SdpError::EncryptionRequired),
        "plain answer to a required offer"
    );
    let gcm_as_tag_1 = format!("a=crypto:1 AEAD_AES_128_GCM inline:{GCM_KEY}");
    assert_eq!(
        answer_with("RTP/SAVP", &[&gcm_as_tag_1]).map(|n| n.srtp),
        Err(SdpError::EncryptionRequired),
        "tag 1 was offered with another suite"
    );
    let gcm_as_tag_2 = format!("a=crypto:2 AEAD_AES_128_GCM inline:{GCM_KEY}");
    let n = answer_with("RTP/SAVP", &[&gcm_as_tag_2]).unwrap();
    let keys = n.srtp.unwrap();
    assert_eq!(
        (keys.local.tag, keys.suite()),
        (2, srtp::Suite::AeadAes128Gcm)
    );
    assert_eq!(
        keys.remote.to_sdp_value(),
        format!("2 AEAD_AES_128_GCM inline:{GCM_KEY}")
    );

    let optional = secure(SrtpPolicy::Optional);
    let plain = audio_offer("m=audio 4000 RTP/AVP 0", &[]);
    let n = accept_answer(&optional.codecs, &optional.srtp, &parse(&plain).unwrap()).unwrap();
    assert!(
        n.srtp.is_none(),
        "optional offer, plain answer: plain media"
    );
}

#[test]
fn negotiated_keys_never_show_in_debug_output() {
    let text = audio_offer(
        "m=audio 4000 RTP/SAVP 0",
        &[format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{CM_KEY}").as_str()],
    );
    let local = secure(SrtpPolicy::Required);
    let (answer_text, n) = answer_to(&text, &local);
    let ours = crypto_lines(&answer_text)[0]
        .rsplit("inline:")
        .next()
        .unwrap()
        .to_owned();
    for shown in [format!("{n:?}"), format!("{local:?}")] {
        assert!(!shown.contains(CM_KEY) && !shown.contains(&ours), "{shown}");
    }
}

#[test]
fn a_peer_asking_for_dtx_is_seen_in_its_opus_fmtp() {
    let mut n = answer_to(BARESIP, &all_codecs()).1;
    assert!(!n.peer_prefers_dtx(), "no usedtx: continuous");
    for (fmtp, wanted) in [
        ("stereo=1;sprop-stereo=1;usedtx=1", true),
        ("useinbandfec=1; usedtx=1", true),
        ("USEDTX=1", true),
        ("usedtx=0;useinbandfec=1", false),
        ("usedtx", false),
        ("notusedtx=1", false),
    ] {
        n.opus_fmtp = Some(fmtp.to_owned());
        assert_eq!(n.peer_prefers_dtx(), wanted, "{fmtp}");
    }
}
