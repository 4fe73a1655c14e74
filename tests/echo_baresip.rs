//! baresip calls the echo test (600) with a tone as its microphone; what it records must
//! contain its own tone. Proven from the recorded audio, for PCMU and G.722. The prompt
//! number (601) is the control: there the caller hears speech, not its tone.

mod support;

use support::{Baresip, Netns, Server, read_wav, rms, tone_share};

const CLIENT_IP: &str = "10.99.0.2";

fn call_and_analyse(
    codec: &str,
    mic_rate: u32,
    number: &str,
    seconds: u32,
    skip_s: f64,
) -> (f64, f64, String) {
    let ns = Netns::new();
    let server = Server::start(Some(&ns), &[]);
    let client = Baresip::new(CLIENT_IP, 440, codec, mic_rate);
    let log = client.call(&ns, &format!("sip:{number}@10.99.0.1:5060"), seconds);
    let Some(heard) = client.heard() else {
        panic!(
            "baresip recorded nothing\nbaresip:\n{log}\nserver:\n{}",
            server.log()
        );
    };
    let recorded = std::fs::metadata(&heard).map(|m| m.len()).unwrap_or(0);
    assert!(
        recorded > 44 + 8000,
        "baresip recorded no audio\nbaresip:\n{log}\nserver:\n{}",
        server.log()
    );
    let (samples, rate) = read_wav(&heard);
    let share = tone_share(&samples, rate, 440.0, skip_s);
    let level = rms(&samples, rate, skip_s);
    eprintln!("{number} over {codec}: 440 Hz share {share:.3}, rms {level:.0}");
    (
        share,
        level,
        format!("baresip:\n{log}\nserver:\n{}", server.log()),
    )
}

#[test]
fn echo_test_returns_the_callers_own_tone_over_pcmu() {
    let (share, level, logs) = call_and_analyse("PCMU", 8000, "600", 8, 2.0);
    assert!(logs.contains("PCMU"), "call did not run on PCMU\n{logs}");
    assert!(level > 1000.0, "echo too quiet (rms {level:.0})\n{logs}");
    assert!(
        share > 0.6,
        "440 Hz share of what the caller heard is {share:.2}\n{logs}"
    );
}

#[test]
fn echo_test_returns_the_callers_own_tone_over_g722() {
    let (share, level, logs) = call_and_analyse("G722/16000/1", 16000, "600", 8, 2.0);
    assert!(
        logs.contains("audio decoder: G722"),
        "call did not run on G.722\n{logs}"
    );
    assert!(level > 1000.0, "echo too quiet (rms {level:.0})\n{logs}");
    assert!(
        share > 0.6,
        "440 Hz share of what the caller heard is {share:.2}\n{logs}"
    );
}

#[test]
fn prompt_number_plays_speech_not_the_callers_tone() {
    let (share, level, logs) = call_and_analyse("PCMU", 8000, "601", 6, 0.2);
    assert!(
        level > 300.0,
        "the prompt was not heard (rms {level:.0})\n{logs}"
    );
    assert!(
        share < 0.2,
        "caller heard its own tone on the prompt number ({share:.2})\n{logs}"
    );
}

#[test]
fn echo_test_returns_the_callers_own_tone_over_opus() {
    let (share, level, logs) = call_and_analyse("opus/48000/2", 48000, "600", 8, 2.0);
    assert!(
        logs.contains("audio decoder: opus"),
        "call did not run on Opus\n{logs}"
    );
    assert!(level > 1000.0, "echo too quiet (rms {level:.0})\n{logs}");
    assert!(
        share > 0.6,
        "440 Hz share of what the caller heard is {share:.2}\n{logs}"
    );
}
