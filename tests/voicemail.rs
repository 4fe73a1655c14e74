//! Voicemail with real clients: a caller nobody answers leaves a message, the user's phone is
//! told (message-summary NOTIFY, RFC 3842), the message is mailed with the WAV through an
//! SMTP relay, and the user hears it from the phone at `*98` after the PIN. Audio is proven
//! from recordings: the stored WAV, the mailed WAV and the RTP the listener received all
//! carry the caller's tone. Each test in a network namespace of its own.

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use support::{
    Baresip, Capture, Netns, Server, TempDir, add_user, admin_ok, plans_with, scenario,
    share_between, tone_share, ulaw_to_linear, wait_until,
};

/// The caller's tone.
const CALLER_HZ: f64 = 440.0;
/// Where the SMTP sink listens (the server's own address in the namespace).
const SMTP: &str = "10.99.0.1:2525";

/// A minimal SMTP server (RFC 5321's commands a client sends for one mail) that takes one
/// mail, writes its WAV attachment and a summary line into `out`, and exits. Written here
/// rather than installed: it is the relay's far side, and the test reads what arrived.
const SMTP_SINK: &str = r#"
import asyncio, email, email.policy, sys, os
out = sys.argv[2]
host, port = sys.argv[1].rsplit(":", 1)
done = asyncio.Event()

async def session(reader, writer):
    def say(line):
        writer.write((line + "\r\n").encode())
    say("220 amt-test ESMTP")
    await writer.drain()
    rcpt = []
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line.decode(errors="replace").strip()
        verb = cmd.split(" ")[0].upper()
        if verb in ("EHLO", "HELO"):
            say("250 amt-test")
        elif verb == "MAIL":
            say("250 OK")
        elif verb == "RCPT":
            rcpt.append(cmd.split(":", 1)[1].strip().strip("<>"))
            say("250 OK")
        elif verb == "DATA":
            say("354 go on")
            await writer.drain()
            data = []
            while True:
                l = await reader.readline()
                if l in (b".\r\n", b".\n") or not l:
                    break
                if l.startswith(b".."):
                    l = l[1:]
                data.append(l)
            msg = email.message_from_bytes(b"".join(data), policy=email.policy.default)
            parts = []
            for part in msg.walk():
                if part.get_content_maintype() == "multipart":
                    continue
                name = part.get_filename()
                payload = part.get_payload(decode=True) or b""
                if name:
                    with open(os.path.join(out, "attachment.wav"), "wb") as f:
                        f.write(payload)
                    parts.append("attachment " + part.get_content_type() + " " + part.get("Content-Transfer-Encoding", ""))
                else:
                    with open(os.path.join(out, "text.txt"), "wb") as f:
                        f.write(payload)
                    parts.append("text " + part.get_content_type())
            with open(os.path.join(out, "summary.txt"), "w") as f:
                f.write("to=" + ",".join(rcpt) + "\n")
                f.write("content-type=" + msg.get_content_type() + "\n")
                f.write("subject=" + str(msg["Subject"]) + "\n")
                f.write("\n".join(parts) + "\n")
            say("250 queued")
        elif verb == "QUIT":
            say("221 bye")
            await writer.drain()
            break
        else:
            say("250 OK")
        await writer.drain()
    writer.close()
    if os.path.exists(os.path.join(out, "summary.txt")):
        done.set()

async def main():
    server = await asyncio.start_server(session, host, int(port))
    print("listening", flush=True)
    try:
        await asyncio.wait_for(done.wait(), 90)
    except asyncio.TimeoutError:
        pass
    server.close()

asyncio.run(main())
"#;

/// Starts the SMTP sink in `ns`; it writes into `out`.
fn smtp_sink(ns: &Netns, out: &Path) -> Child {
    let script = out.join("sink.py");
    std::fs::write(&script, SMTP_SINK).unwrap();
    let child = ns
        .command("python3")
        .arg(&script)
        .arg(SMTP)
        .arg(out)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(out.join("sink.log")).unwrap())
        .spawn()
        .expect("python3");
    // The listener is up well before the first message can be left (greeting, tone).
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// SIPp in `ns` on 10.99.0.4:5080 running `scenario` as user 101 for `pause_ms`, answering
/// out-of-call requests (NOTIFY) with 200 and tracing every message to `trace`.
fn sipp_phone(ns: &Netns, scenario: &str, service: &str, pause_ms: u32, trace: &Path) -> Child {
    ns.command("sipp")
        .args([
            "-sf",
            scenario,
            "-s",
            service,
            "-i",
            "10.99.0.4",
            "-p",
            "5080",
        ])
        .args(["-mi", "10.99.0.4", "-mp", "6100", "-m", "1", "-l", "1"])
        .args(["-au", "101", "-ap", "geheim123", "-aa"])
        .args(["-d", &pause_ms.to_string(), "-nostdin", "-timeout", "60s"])
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(trace)
        .arg("10.99.0.1:5060")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (apt-get install sip-tester)")
}

/// The message-summary bodies in a SIPp message trace, in order.
fn summaries(trace: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    text.split("NOTIFY sip:")
        .skip(1)
        .filter(|m| m.contains("Event: message-summary"))
        .filter_map(|m| {
            let waiting = m.lines().find(|l| l.starts_with("Messages-Waiting:"))?;
            let voice = m.lines().find(|l| l.starts_with("Voice-Message:"))?;
            Some(format!("{} | {}", waiting.trim(), voice.trim()))
        })
        .collect()
}

/// The mailbox's messages as the store has them.
fn messages(data: &Path, mailbox: &str) -> Vec<store::Voicemail> {
    store::Store::open(data)
        .unwrap()
        .voicemail_list(mailbox)
        .unwrap()
}

/// Highest share of `freq` in any 1-second window of `samples`.
fn best_window_share(samples: &[f64], rate: u32, freq: f64) -> f64 {
    samples
        .chunks(rate as usize)
        .filter(|w| w.len() == rate as usize)
        .map(|w| tone_share(w, rate, freq, 0.0))
        .fold(0.0, f64::max)
}

/// User 101's desk phone (baresip, never answering) and a second phone of 101 that takes
/// message-summary NOTIFYs (SIPp) are registered; a caller (trusted network, 440 Hz) rings
/// 7101, nobody answers within 3 s, and the rule's `voicemail` takes the message until the
/// caller hangs up. Then 101 dials `*98` from the SIPp phone, keys the PIN and hears it.
#[test]
fn an_unanswered_call_leaves_a_message_that_lights_the_lamp_is_mailed_and_is_heard_at_star98() {
    let ns = Netns::new();
    let dir = TempDir::new("voicemail");
    let data = TempDir::new("voicemail-data");
    add_user(data.path(), "101", "geheim123");
    admin_ok(data.path(), &["voicemail", "pin", "101", "4712"]);
    admin_ok(
        data.path(),
        &["voicemail", "email", "101", "anna@rathaus.example"],
    );
    let plans = plans_with(
        "voicemail-plans",
        "[[rule]]\nname = \"desk with voicemail\"\nmatch = \"7101\"\n\
         actions = [ { dial = { user = \"101\", timeout = 3 } }, { voicemail = \"101\" } ]\n",
    );
    let config = dir.path().join("amtsleitung.toml");
    std::fs::write(
        &config,
        format!(
            "[security]\ntrusted-networks = [\"10.99.0.3/32\"]\n\
             [voicemail]\nsmtp = \"{SMTP}\"\nfrom = \"voicemail@rathaus.example\"\n"
        ),
    )
    .unwrap();
    let server = Server::start_with_data(
        Some(&ns),
        &[
            "--config",
            config.to_str().unwrap(),
            "--dialplans",
            plans.path().to_str().unwrap(),
        ],
        data,
    );
    let mail = TempDir::new("voicemail-mail");
    let mut sink = smtp_sink(&ns, mail.path());

    // Leaving the message.
    let mwi_trace = dir.path().join("mwi-phone.log");
    let mut mwi_phone = sipp_phone(
        &ns,
        &scenario("mwi_phone_register.xml"),
        "101",
        26_000,
        &mwi_trace,
    );
    let desk = Baresip::new("10.99.0.2", 880, "PCMU", 8000)
        .registering("101", "geheim123")
        .never_answering();
    let caller = Baresip::new("10.99.0.3", CALLER_HZ as u32, "PCMU", 8000);
    let caller_out = std::thread::scope(|scope| {
        let desk_run = scope.spawn(|| desk.run(&ns, 18));
        // Two contacts of 101 ring: the desk phone and the SIPp phone.
        assert!(
            wait_until(Duration::from_secs(8), || {
                server.metric(Some(&ns), "amtsleitung_registered_contacts") == 2
            }),
            "the phones did not register\n{}",
            server.log()
        );
        // 3 s ringing, about 5.5 s greeting and tone, then the caller talks for 5 s.
        let out = caller.call(&ns, "sip:7101@10.99.0.1", 14);
        let desk_out = desk_run.join().unwrap();
        assert!(desk_out.contains("Incoming call"), "{desk_out}");
        out
    });
    let stored = wait_until(Duration::from_secs(5), || {
        !messages(server.data_dir(), "101").is_empty()
    });
    let log = server.log();
    assert!(stored, "no message stored\n{caller_out}\n{log}");
    assert!(log.contains("dial: not answered; next action"), "{log}");
    let [message] = messages(server.data_dir(), "101")
        .try_into()
        .unwrap_or_else(|m| {
            panic!("one message expected: {m:#?}\n{log}");
        });
    assert!(!message.heard, "{message:#?}");
    assert!(message.path.is_absolute(), "{message:#?}");
    assert!(
        message.path.starts_with(server.data_dir()),
        "the WAV lies in the data directory: {message:#?}"
    );
    assert!(
        (3_000..8_000).contains(&message.duration_ms),
        "about 5 s of talk: {message:#?}\n{log}"
    );
    let recorded = share_between(&message.path, CALLER_HZ, 0.5, 4.5);
    assert!(
        recorded > 0.5,
        "the caller's tone in the stored message: {recorded:.2}\n{log}"
    );
    // The voicemail answered the call, and the caller ended it by hanging up, which ended
    // the message (the record keeps the SIP side's reason: the caller's BYE came first).
    let calls = support::call_records(&server, 1);
    assert_eq!(
        calls.first().map(|c| (c.answered, c.end_reason.as_str())),
        Some((true, "caller hung up")),
        "{calls:#?}"
    );
    assert!(
        log.contains("voicemail: caller hung up; message ends"),
        "{log}"
    );

    // The lamp: the phone that takes NOTIFYs learns of one new message.
    let _ = mwi_phone.wait();
    let notified = summaries(&mwi_trace);
    assert!(
        notified
            .iter()
            .any(|s| s == "Messages-Waiting: yes | Voice-Message: 1/0 (0/0)"),
        "{notified:?}\n{}\n{log}",
        std::fs::read_to_string(&mwi_trace).unwrap_or_default()
    );
    assert!(server.metric(Some(&ns), "amtsleitung_mwi_notifies_total") >= 1);

    // The mail: to the mailbox's address, the WAV attached, base64, with the caller's tone.
    assert!(
        wait_until(Duration::from_secs(10), || mail
            .path()
            .join("summary.txt")
            .exists()),
        "no mail arrived\n{}\n{log}",
        std::fs::read_to_string(mail.path().join("sink.log")).unwrap_or_default()
    );
    let _ = sink.wait();
    let summary = std::fs::read_to_string(mail.path().join("summary.txt")).unwrap();
    assert!(summary.contains("to=anna@rathaus.example"), "{summary}");
    assert!(
        summary.contains("content-type=multipart/mixed"),
        "{summary}"
    );
    assert!(summary.contains("attachment audio/wav base64"), "{summary}");
    let text = std::fs::read_to_string(mail.path().join("text.txt")).unwrap();
    assert!(
        text.contains("Anrufer:") && text.contains("Caller:"),
        "{text}"
    );
    let mailed = share_between(&mail.path().join("attachment.wav"), CALLER_HZ, 0.5, 4.5);
    assert!(
        mailed > 0.5,
        "the caller's tone in the mailed WAV: {mailed:.2}"
    );
    assert_eq!(
        server.metric(Some(&ns), "amtsleitung_voicemail_emails_total"),
        1
    );

    // Listening: the SIPp phone (registered on this address and port, so it is user 101)
    // dials *98, keys 4712#, and hears the count, then the message.
    let capture = Capture::start(&ns, &dir, "udp and dst host 10.99.0.4 and dst port 6100");
    let listen_trace = dir.path().join("listen.log");
    let listener = sipp_phone(
        &ns,
        &scenario("voicemail_listen.xml"),
        "*98",
        16_000,
        &listen_trace,
    );
    let status = listener.wait_with_output().unwrap().status;
    let log = server.log();
    assert!(
        status.success(),
        "the listening call failed\n{}\n{log}",
        std::fs::read_to_string(&listen_trace).unwrap_or_default()
    );
    let payloads: Vec<String> = capture
        .stop(&[
            "-d",
            "udp.port==6100,rtp",
            "-e",
            "rtp.p_type",
            "-e",
            "rtp.payload",
        ])
        .into_iter()
        .filter(|f| f.first().map(String::as_str) == Some("0"))
        .filter_map(|f| f.get(1).map(|p| p.replace(':', "")))
        .collect();
    let samples: Vec<f64> = payloads
        .iter()
        .flat_map(|hex| {
            (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .map(ulaw_to_linear)
                .collect::<Vec<_>>()
        })
        .collect();
    let heard = best_window_share(&samples, 8000, CALLER_HZ);
    assert!(
        heard > 0.6,
        "the listener heard the message's tone ({heard:.2}) in {:.1} s of audio\n{log}",
        samples.len() as f64 / 8000.0
    );
    assert!(log.contains("voicemail: mailbox opened"), "{log}");
    // Heard once, kept: the lamp goes out (no new message, one old).
    let [message] = messages(server.data_dir(), "101")
        .try_into()
        .unwrap_or_else(|m| {
            panic!("one message expected: {m:#?}\n{log}");
        });
    assert!(message.heard, "{message:#?}");
    let notified = summaries(&listen_trace);
    assert!(
        notified
            .iter()
            .any(|s| s == "Messages-Waiting: no | Voice-Message: 0/1 (0/0)"),
        "{notified:?}\n{log}"
    );
}

/// A mailbox without a PIN cannot be listened to by phone: the caller is told so and the
/// call ends, its record saying why.
#[test]
fn star98_without_a_pin_is_refused() {
    let ns = Netns::new();
    let dir = TempDir::new("voicemail-nopin");
    let data = TempDir::new("voicemail-nopin-data");
    add_user(data.path(), "101", "geheim123");
    let server = Server::start_with_data(Some(&ns), &[], data);
    let trace = dir.path().join("register.log");
    let mut phone = sipp_phone(&ns, &scenario("mwi_phone_register.xml"), "101", 500, &trace);
    let _ = phone.wait();
    let listen_trace = dir.path().join("listen.log");
    let listener = sipp_phone(
        &ns,
        &scenario("voicemail_listen.xml"),
        "*98",
        14_000,
        &listen_trace,
    );
    let _ = listener.wait_with_output();
    let log = server.log();
    assert!(
        log.contains("voicemail: mailbox has no PIN; listening refused"),
        "{log}\n{}",
        std::fs::read_to_string(&listen_trace).unwrap_or_default()
    );
    let calls = support::call_records(&server, 1);
    assert_eq!(
        calls.first().map(|c| c.end_reason.as_str()),
        Some("refused: mailbox has no PIN"),
        "{calls:#?}"
    );
}

/// User 101 forwards unanswered calls to `*98` (their mailbox) after 5 s. User 103 calls 101
/// through the shipped dialplan; 101's phone rings and is not answered, the forwarding routes
/// `*98` as 101's call, and the caller's words land in 101's mailbox (not in 103's: the
/// caller is a user too, and `*98` dialled by them would open their own).
#[test]
fn a_no_answer_forwarding_to_star98_leaves_the_message_in_the_forwarding_users_mailbox() {
    let ns = Netns::new();
    let data = TempDir::new("voicemail-forward-data");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "103", "anrufer99");
    support::user_cli(
        data.path(),
        &["forward", "101", "no-answer", "*98", "--seconds", "5"],
    );
    let server = Server::start_with_data(Some(&ns), &[], data);
    let desk = Baresip::new("10.99.0.2", 880, "PCMU", 8000)
        .registering("101", "geheim123")
        .never_answering();
    let caller =
        Baresip::new("10.99.0.3", CALLER_HZ as u32, "PCMU", 8000).registering("103", "anrufer99");
    // 5 s ringing, about 5.5 s greeting and tone, then the caller talks for about 6 s.
    let (desk_out, caller_out) =
        support::with_registered_phones(&server, &ns, &[(&desk, &ns)], || {
            caller.call(&ns, "sip:101@10.99.0.1", 17)
        });
    let stored = wait_until(Duration::from_secs(5), || {
        !messages(server.data_dir(), "101").is_empty()
    });
    let log = server.log();
    assert!(
        stored,
        "no message stored\n{caller_out}\n{desk_out:?}\n{log}"
    );
    assert!(
        desk_out.iter().any(|o| o.contains("Incoming call")),
        "101's phone was not rung first\n{desk_out:?}"
    );
    assert!(
        log.contains("call forwarded") && log.contains("to=*98"),
        "{log}"
    );
    assert!(
        log.contains("voicemail: taking a message mailbox=101"),
        "{log}"
    );
    assert!(messages(server.data_dir(), "103").is_empty(), "{log}");
    let [message] = messages(server.data_dir(), "101")
        .try_into()
        .unwrap_or_else(|m| panic!("one message expected: {m:#?}\n{log}"));
    assert_eq!(message.caller, "103", "{message:#?}");
    let recorded = share_between(&message.path, CALLER_HZ, 0.5, 4.5);
    assert!(
        recorded > 0.5,
        "the caller's tone in the stored message: {recorded:.2}\n{log}"
    );
}

/// SIPp on `ip`:5080 as a phone of `user` (name, password) that registers, then subscribes
/// to `mailbox`'s message summary; traces every message to `trace`.
fn mwi_subscriber(
    ns: &Netns,
    ip: &str,
    (user, password): (&str, &str),
    mailbox: &str,
    trace: &Path,
) -> Child {
    ns.command("sipp")
        .args(["-sf", &scenario("mwi_phone_subscribe.xml"), "-s", user])
        .args(["-i", ip, "-p", "5080", "-m", "1", "-l", "1"])
        .args(["-au", user, "-ap", password, "-set", "mailbox", mailbox])
        .args(["-nostdin", "-timeout", "40s", "-timeout_error"])
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(trace)
        .arg("10.99.0.1:5060")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp (apt-get install sip-tester)")
}

/// A phone that subscribes to its own mailbox (RFC 3842 SUBSCRIBE, as Snom and Grandstream
/// phones do) is told inside its subscription: no message at first, then a waiting one as
/// soon as a caller left it (both checked by SIPp); it is not told a second time
/// unsolicited. Another user's mailbox cannot be watched (403).
#[test]
fn a_phone_subscribed_to_its_mailbox_is_told_in_its_subscription_only() {
    let ns = Netns::new();
    let dir = TempDir::new("voicemail-subscribed");
    let data = TempDir::new("voicemail-subscribed-data");
    add_user(data.path(), "101", "geheim123");
    add_user(data.path(), "102", "kollege77");
    let plans = plans_with(
        "voicemail-subscribed-plans",
        "[[rule]]\nname = \"mailbox\"\nmatch = \"7101\"\nactions = [ { voicemail = \"101\" } ]\n",
    );
    let config = dir.path().join("amtsleitung.toml");
    std::fs::write(
        &config,
        "[security]\ntrusted-networks = [\"10.99.0.3/32\"]\n",
    )
    .unwrap();
    let server = Server::start_with_data(
        Some(&ns),
        &[
            "--config",
            config.to_str().unwrap(),
            "--dialplans",
            plans.path().to_str().unwrap(),
        ],
        data,
    );
    let trace = dir.path().join("mwi-subscriber.log");
    let phone = mwi_subscriber(&ns, "10.99.0.4", ("101", "geheim123"), "101", &trace);
    assert!(
        wait_until(Duration::from_secs(8), || server
            .metric(Some(&ns), "amtsleitung_subscriptions")
            == 1),
        "no subscription\n{}",
        server.log()
    );
    let caller = Baresip::new("10.99.0.3", CALLER_HZ as u32, "PCMU", 8000);
    // About 5.5 s greeting and tone, then the caller talks.
    let caller_out = caller.call(&ns, "sip:7101@10.99.0.1", 10);
    let out = phone.wait_with_output().expect("sipp ran");
    let log = server.log();
    let traced = std::fs::read_to_string(&trace).unwrap_or_default();
    assert!(
        out.status.success(),
        "the subscribed phone was not told as expected ({:?})\n{traced}\n{caller_out}\n{log}",
        out.status.code()
    );
    assert_eq!(
        summaries(&trace),
        [
            "Messages-Waiting: no | Voice-Message: 0/0 (0/0)",
            "Messages-Waiting: yes | Voice-Message: 1/0 (0/0)"
        ],
        "{traced}"
    );
    let notifies = traced.split("NOTIFY sip:").skip(1).count();
    assert_eq!(notifies, 2, "an unsolicited NOTIFY came too\n{traced}");
    assert!(!log.contains("message waiting indication sent"), "{log}");

    // 102's phone may not watch 101's mailbox.
    let spy_trace = dir.path().join("mwi-spy.log");
    let spy = mwi_subscriber(&ns, "10.99.0.5", ("102", "kollege77"), "101", &spy_trace)
        .wait()
        .expect("sipp");
    assert!(!spy.success(), "102 watched 101's mailbox");
    assert!(
        server
            .log()
            .contains("SUBSCRIBE to another user's mailbox; 403"),
        "{}",
        server.log()
    );
}
