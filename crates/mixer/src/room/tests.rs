use super::*;
use media::codec::{Decoder, Encoder};
use proptest::prelude::*;

/// A synthetic caller: a phase-continuous sine (or square) at its codec's rate.
struct Caller {
    id: ParticipantId,
    codec: CodecKind,
    freq: f64,
    amp: f64,
    square: bool,
    t: usize,
}

impl Caller {
    fn join(room: &mut Room, codec: CodecKind, freq: f64, dbov: f64) -> Self {
        let id = room.add(ParticipantOptions::new(codec)).unwrap();
        Self {
            id,
            codec,
            freq,
            amp: amp_for_dbov(dbov),
            square: false,
            t: 0,
        }
    }

    fn frame(&mut self, ptime_ms: u32) -> Vec<i16> {
        let rate = f64::from(self.codec.sample_rate());
        let n = self.codec.samples_per_frame(ptime_ms);
        let out = (self.t..self.t + n)
            .map(|i| {
                let s = (2.0 * std::f64::consts::PI * self.freq * i as f64 / rate).sin();
                let v = if self.square { s.signum() } else { s };
                (self.amp * v).round().clamp(-32768.0, 32767.0) as i16
            })
            .collect();
        self.t += n;
        out
    }

    fn speak(&mut self, room: &mut Room) {
        let f = self.frame(room.config().ptime_ms);
        room.put_frame(self.id, &f);
    }
}

/// Peak amplitude of a sine at `dbov` (a full-scale sine is −3 dBov).
fn amp_for_dbov(dbov: f64) -> f64 {
    32768.0 * std::f64::consts::SQRT_2 * 10f64.powf(dbov / 20.0)
}

/// Amplitude of `freq` in `x` (Goertzel), independent of phase.
fn amplitude(x: &[i16], freq: f64, rate: u32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    2.0 * (s1 * s1 + s2 * s2 - c * s1 * s2).max(0.0).sqrt() / x.len() as f64
}

fn mean_square(x: &[i16]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

/// Fraction of the energy of `x` that is the tone at `freq`.
fn energy_share(x: &[i16], freq: f64, rate: u32) -> f64 {
    let a = amplitude(x, freq, rate);
    a * a / 2.0 / mean_square(x).max(1e-9)
}

fn no_agc() -> MixerConfig {
    MixerConfig {
        agc: false,
        ..MixerConfig::default()
    }
}

/// Runs `ticks` ticks with `callers` speaking, and returns each listed participant's
/// `output_pcm` over the last `keep` ticks, concatenated.
fn run(
    room: &mut Room,
    callers: &mut [Caller],
    listen: &[ParticipantId],
    ticks: usize,
    keep: usize,
) -> Vec<Vec<i16>> {
    let mut heard = vec![Vec::new(); listen.len()];
    for t in 0..ticks {
        for c in callers.iter_mut() {
            c.speak(room);
        }
        room.tick();
        if t + keep >= ticks {
            for (h, &id) in heard.iter_mut().zip(listen) {
                h.extend_from_slice(room.output_pcm(id).unwrap());
            }
        }
    }
    heard
}

#[test]
fn each_participant_hears_the_others_but_not_itself_across_codecs() {
    let mut room = Room::new(no_agc());
    let mut callers = [
        Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0),
        Caller::join(&mut room, CodecKind::G722, 1000.0, -20.0),
        Caller::join(&mut room, CodecKind::Opus, 2300.0, -20.0),
    ];
    let ids: Vec<_> = callers.iter().map(|c| c.id).collect();
    let mut decoders: Vec<Decoder> = callers
        .iter()
        .map(|c| Decoder::new(c.codec).unwrap())
        .collect();
    let mut decoded = vec![Vec::new(); 3];
    let mut pcm_heard = vec![Vec::new(); 3];
    let mut buf = vec![0i16; 5760];
    for t in 0..40 {
        for c in callers.iter_mut() {
            c.speak(&mut room);
        }
        room.tick();
        for (i, &id) in ids.iter().enumerate() {
            let out = room.output(id).unwrap();
            assert!(!out.shared, "a mixed speaker must get its own payload");
            let n = decoders[i].decode(out.payload, &mut buf).unwrap();
            if t >= 30 {
                decoded[i].extend_from_slice(&buf[..n]);
                pcm_heard[i].extend_from_slice(room.output_pcm(id).unwrap());
            }
        }
    }
    let freqs = [440.0, 1000.0, 2300.0];
    for (i, c) in callers.iter().enumerate() {
        let rate = c.codec.sample_rate();
        for heard in [&decoded[i], &pcm_heard[i]] {
            for (j, &f) in freqs.iter().enumerate() {
                let share = energy_share(heard, f, rate);
                if i == j {
                    assert!(share < 0.01, "{:?} hears itself: {share:.3}", c.codec);
                } else {
                    assert!(share > 0.3, "{:?} misses {f} Hz: {share:.3}", c.codec);
                }
            }
        }
    }
}

#[test]
fn silent_listeners_share_one_byte_identical_payload_and_speakers_get_their_own() {
    let mut room = Room::new(no_agc());
    let mut speakers = vec![
        Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0),
        Caller::join(&mut room, CodecKind::Pcmu, 1000.0, -20.0),
    ];
    let listeners: Vec<_> = (0..50)
        .map(|_| room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap())
        .collect();
    let silence = [0i16; 160];
    for _ in 0..5 {
        for s in speakers.iter_mut() {
            s.speak(&mut room);
        }
        for &l in &listeners {
            room.put_frame(l, &silence);
        }
        room.tick();
        let plan = room.stats().mix_plan;
        assert_eq!(plan.encodes, 3, "{plan:?}");
        assert_eq!(plan.shared_encodes, 1);
        assert_eq!(plan.mixed_speakers, 2);
        assert_eq!(plan.shared_listeners, 50);
        let first = room.output(listeners[0]).unwrap();
        assert!(first.shared);
        assert_eq!(first.payload.len(), 160);
        for &l in &listeners {
            let out = room.output(l).unwrap();
            assert!(out.shared);
            assert_eq!(out.payload.as_ptr(), first.payload.as_ptr());
            assert_eq!(out.payload, first.payload);
        }
        for s in &speakers {
            let out = room.output(s.id).unwrap();
            assert!(!out.shared);
            assert_ne!(out.payload, first.payload);
        }
    }
    let first_speaker = speakers_ids(&speakers)[0];
    let heard = run(&mut room, &mut speakers, &[first_speaker], 10, 10);
    assert!(energy_share(&heard[0], 440.0, 8000) < 0.01);
    assert!(energy_share(&heard[0], 1000.0, 8000) > 0.9);
}

fn speakers_ids(c: &[Caller]) -> Vec<ParticipantId> {
    c.iter().map(|c| c.id).collect()
}

#[test]
fn hundred_listeners_and_two_speakers_cost_three_encodes() {
    let mut room = Room::new(MixerConfig::default());
    let mut speakers = vec![
        Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0),
        Caller::join(&mut room, CodecKind::Pcmu, 1000.0, -25.0),
    ];
    for _ in 0..100 {
        room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    }
    run(&mut room, &mut speakers, &[], 3, 0);
    assert_eq!(room.stats().mix_plan.encodes, 3);
    // The conventional baseline encodes once per listener.
    let mut room = Room::new(MixerConfig {
        shared_encoding: false,
        ..MixerConfig::default()
    });
    let mut speakers = vec![Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0)];
    for _ in 0..100 {
        room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    }
    run(&mut room, &mut speakers, &[], 3, 0);
    assert_eq!(room.stats().mix_plan.encodes, 101);
    assert_eq!(room.stats().mix_plan.shared_encodes, 0);
}

#[test]
fn shared_mix_is_encoded_once_per_codec_and_resampled_once_per_rate() {
    let mut room = Room::new(no_agc());
    let mut speakers = vec![Caller::join(&mut room, CodecKind::G722, 700.0, -20.0)];
    let mut listeners = Vec::new();
    for i in 0..40 {
        let codec = CodecKind::ALL[i % 4];
        listeners.push((codec, room.add(ParticipantOptions::new(codec)).unwrap()));
    }
    run(&mut room, &mut speakers, &[], 20, 0);
    let plan = room.stats().mix_plan;
    assert_eq!(plan.shared_encodes, 4, "{plan:?}");
    // The lone speaker hears nobody, but a G.722 decoder must keep following one encoder:
    // its own, encoding the silence it hears (a silence frame of another encoder would
    // derail its ADPCM state when others speak).
    assert_eq!(plan.own_encodes, 1);
    assert_eq!(plan.silence_frames, 0);
    // 8 kHz once for PCMU and PCMA together; G.722 and Opus take the 16 kHz mix as it is,
    // and so does the G.722 speaker's own mix and input.
    assert_eq!(plan.output_resamples, 1, "{plan:?}");
    assert_eq!(plan.input_resamples, 0);
    for codec in CodecKind::ALL {
        let same: Vec<_> = listeners
            .iter()
            .filter(|(c, _)| *c == codec)
            .map(|&(_, id)| room.output(id).unwrap().payload)
            .collect();
        assert!(same.windows(2).all(|w| w[0] == w[1]), "{codec:?}");
        let pcm = room.output_pcm(listeners.iter().find(|(c, _)| *c == codec).unwrap().1);
        assert_eq!(pcm.unwrap().len(), codec.samples_per_frame(20));
    }
}

#[test]
fn a_1khz_tone_survives_8k_in_wideband_mix_8k_out() {
    for internal_rate in [16_000, 48_000] {
        let mut room = Room::new(MixerConfig {
            internal_rate,
            adaptive_rate: false,
            ..no_agc()
        });
        let mut speaker = vec![Caller::join(&mut room, CodecKind::Pcmu, 1000.0, -12.0)];
        let listener = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
        let heard = run(&mut room, &mut speaker, &[listener], 30, 20);
        let a = amplitude(&heard[0], 1000.0, 8000);
        let want = speaker[0].amp;
        assert!(
            (a / want - 1.0).abs() < 0.05,
            "{internal_rate}: {a:.0} vs {want:.0}"
        );
        assert!(energy_share(&heard[0], 1000.0, 8000) > 0.99);
    }
}

#[test]
fn talking_events_fire_at_onset_and_after_hangover_and_the_first_frame_is_heard() {
    let mut room = Room::new(no_agc());
    let mut speaker = Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0);
    let listener = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    let silence = [0i16; 160];
    for _ in 0..10 {
        room.put_frame(speaker.id, &silence);
        room.tick();
        assert_eq!(room.poll_event(), None);
        assert!(!room.is_talking(speaker.id));
    }
    speaker.speak(&mut room);
    room.tick();
    assert_eq!(
        room.poll_event(),
        Some(RoomEvent::TalkingStarted(speaker.id))
    );
    assert!(room.is_talking(speaker.id));
    assert!((room.level_dbov(speaker.id) + 20.0).abs() < 0.5);
    // The first 20 ms of speech is in this very tick's output, less the filter delay.
    let first = room.output_pcm(listener).unwrap();
    let level = 10.0 * (mean_square(first) / (32768.0 * 32768.0)).log10();
    assert!(level > -22.0, "first frame heard at {level:.1} dBov");
    for _ in 0..20 {
        speaker.speak(&mut room);
        room.tick();
    }
    assert_eq!(room.poll_event(), None);
    // 300 ms hang-over at 20 ms: still talking for 14 silent frames, stopped at the 15th.
    for _ in 0..14 {
        room.put_frame(speaker.id, &silence);
        room.tick();
        assert!(room.is_talking(speaker.id));
        assert_eq!(room.poll_event(), None);
    }
    room.put_frame(speaker.id, &silence);
    room.tick();
    assert_eq!(
        room.poll_event(),
        Some(RoomEvent::TalkingStopped(speaker.id))
    );
    assert!(!room.is_talking(speaker.id));
}

#[test]
fn only_the_k_loudest_of_six_talkers_are_heard() {
    // A fixed 16 kHz mix, so that conversions show who was mixed.
    let mut room = Room::new(MixerConfig {
        adaptive_rate: false,
        ..no_agc()
    });
    let freqs = [300.0, 500.0, 700.0, 1100.0, 1300.0, 1700.0];
    let levels = [-30.0, -10.0, -26.0, -14.0, -18.0, -22.0];
    let mut talkers: Vec<_> = freqs
        .iter()
        .zip(levels)
        .map(|(&f, l)| Caller::join(&mut room, CodecKind::Pcmu, f, l))
        .collect();
    let listener = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    let heard = run(&mut room, &mut talkers, &[listener], 30, 10);
    assert_eq!(room.stats().mix_plan.mixed_speakers, 4);
    for t in &talkers {
        let a = amplitude(&heard[0], t.freq, 8000);
        let loud = t.amp >= amp_for_dbov(-22.5);
        assert_eq!(room.is_mixed(t.id), loud, "{} Hz", t.freq);
        if loud {
            assert!((a / t.amp - 1.0).abs() < 0.1, "{} Hz at {a:.0}", t.freq);
        } else {
            assert!(a < t.amp * 0.05, "{} Hz leaks at {a:.0}", t.freq);
        }
    }
    // Unmixed talkers are not even converted to the internal rate.
    assert_eq!(room.stats().mix_plan.input_resamples, 4);
}

/// Samples at (or beyond) the 16-bit rails.
fn at_rails(x: &[i16]) -> usize {
    x.iter()
        .filter(|&&s| s == i16::MAX || s <= -i16::MAX)
        .count()
}

#[test]
fn ten_full_scale_talkers_neither_wrap_nor_clip() {
    for k in [10, 4] {
        let mut room = Room::new(MixerConfig {
            max_mixed_speakers: k,
            ..no_agc()
        });
        room.set_recording(true);
        // G.722 is at the internal rate, so the mix can be compared sample by sample.
        let mut talkers: Vec<_> = (0..10)
            .map(|i| {
                let mut c = Caller::join(&mut room, CodecKind::G722, 150.0 + 110.0 * i as f64, 0.0);
                c.amp = 32767.0;
                c.square = i % 2 == 0;
                c
            })
            .collect();
        let listener = room.add(ParticipantOptions::new(CodecKind::G722)).unwrap();
        let (mut total, mut railed) = (0, 0);
        for t in 0..50 {
            let frames: Vec<Vec<i16>> = talkers.iter_mut().map(|c| c.frame(20)).collect();
            for (c, f) in talkers.iter().zip(&frames) {
                room.put_frame(c.id, f);
            }
            room.tick();
            let mixed: Vec<usize> = (0..10).filter(|&i| room.is_mixed(talkers[i].id)).collect();
            assert_eq!(mixed.len(), k);
            let ideal: Vec<i64> = (0..320)
                .map(|s| mixed.iter().map(|&i| i64::from(frames[i][s])).sum())
                .collect();
            let mut outputs = vec![(room.recording_mix().unwrap(), None)];
            outputs.push((room.output_pcm(listener).unwrap(), None));
            for &i in &mixed {
                outputs.push((room.output_pcm(talkers[i].id).unwrap(), Some(i)));
            }
            for (out, minus) in outputs {
                for (s, &y) in out.iter().enumerate() {
                    let want = ideal[s] - minus.map_or(0, |i| i64::from(frames[i][s]));
                    if want.abs() > 2000 {
                        assert_eq!(
                            want.signum(),
                            i64::from(y).signum(),
                            "k={k} tick {t} sample {s}: wrapped ({want} -> {y})"
                        );
                    }
                }
                total += out.len();
                railed += at_rails(out);
            }
        }
        assert!(
            railed * 50 <= total,
            "k={k}: {railed} of {total} at the rails"
        );
    }
}

#[test]
fn mute_and_deaf_take_effect_mid_stream() {
    let mut room = Room::new(no_agc());
    let mut callers = vec![
        Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0),
        Caller::join(&mut room, CodecKind::Pcmu, 1000.0, -20.0),
    ];
    let (a, b) = (callers[0].id, callers[1].id);
    let c = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    let heard = run(&mut room, &mut callers, &[c, b], 20, 10);
    assert!(energy_share(&heard[0], 440.0, 8000) > 0.4);
    assert!(energy_share(&heard[1], 440.0, 8000) > 0.9);

    room.set_muted(a, true);
    let heard = run(&mut room, &mut callers, &[c, b], 12, 10);
    assert!(
        energy_share(&heard[0], 440.0, 8000) < 0.001,
        "muted A still heard"
    );
    assert!(energy_share(&heard[0], 1000.0, 8000) > 0.99);
    assert!(mean_square(&heard[1]) < 1.0, "B hears muted A");
    assert!(room.is_talking(a), "talker detection runs while muted");

    room.set_muted(a, false);
    room.set_deaf(c, true);
    let heard = run(&mut room, &mut callers, &[c, b], 12, 10);
    assert!(heard[0].iter().all(|&s| s == 0), "deaf C hears something");
    let out = room.output(c).unwrap();
    assert!(out.shared);
    assert!(out.payload.iter().all(|&b| b == 0xFF), "PCMU silence");
    assert!(energy_share(&heard[1], 440.0, 8000) > 0.9, "A unmuted");

    room.set_deaf(c, false);
    let heard = run(&mut room, &mut callers, &[c], 12, 10);
    assert!(energy_share(&heard[0], 440.0, 8000) > 0.4);
    assert!(energy_share(&heard[0], 1000.0, 8000) > 0.4);
}

#[test]
fn deaf_talker_is_still_heard_and_silence_frames_decode_to_silence() {
    let mut room = Room::new(no_agc());
    let mut callers: Vec<_> = CodecKind::ALL
        .iter()
        .map(|&k| Caller::join(&mut room, k, 1000.0, -20.0))
        .collect();
    for c in &callers {
        room.set_deaf(c.id, true);
    }
    let listener = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    let heard = run(&mut room, &mut callers, &[listener], 10, 5);
    assert!(energy_share(&heard[0], 1000.0, 8000) > 0.9);
    assert_eq!(room.stats().mix_plan.silence_frames, 4);
    assert_eq!(room.stats().mix_plan.encodes, 1);
    for c in &callers {
        let mut dec = Decoder::new(c.codec).unwrap();
        let mut buf = vec![0i16; 5760];
        let mut worst = 0.0f64;
        for _ in 0..20 {
            let out = room.output(c.id).unwrap();
            assert!(out.shared);
            let n = dec.decode(out.payload, &mut buf).unwrap();
            worst = worst.max(mean_square(&buf[..n]).sqrt());
        }
        assert!(
            worst < 50.0,
            "{:?} silence decodes at rms {worst:.0}",
            c.codec
        );
    }
}

#[test]
fn agc_brings_a_quiet_and_a_loud_talker_within_6_db() {
    let mut room = Room::new(MixerConfig::default());
    let mut callers = vec![
        Caller::join(&mut room, CodecKind::Pcmu, 440.0, -35.0),
        Caller::join(&mut room, CodecKind::Pcmu, 1000.0, -10.0),
    ];
    let listener = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    let gap = |heard: &[i16]| {
        20.0 * (amplitude(heard, 1000.0, 8000) / amplitude(heard, 440.0, 8000)).log10()
    };
    let start = run(&mut room, &mut callers, &[listener], 1, 1);
    assert!(gap(&start[0]) > 20.0, "the test must start far apart");
    let heard = run(&mut room, &mut callers, &[listener], 250, 10);
    let g = gap(&heard[0]);
    assert!(g.abs() < 6.0, "after 5 s still {g:.1} dB apart");
    assert!(room.gain_db(callers[0].id) > 10.0);
    assert!(room.gain_db(callers[1].id) < -5.0);
}

#[test]
fn recording_is_the_full_mix_and_only_when_enabled() {
    let mut room = Room::new(no_agc());
    let mut callers = vec![
        Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0),
        Caller::join(&mut room, CodecKind::Opus, 1000.0, -20.0),
    ];
    run(&mut room, &mut callers, &[], 3, 0);
    assert_eq!(room.recording_mix(), None);
    room.set_recording(true);
    let mut rec = Vec::new();
    for _ in 0..20 {
        for c in callers.iter_mut() {
            c.speak(&mut room);
        }
        room.tick();
        rec.extend_from_slice(room.recording_mix().unwrap());
    }
    let tail = &rec[rec.len() - 3200..];
    assert!(energy_share(tail, 440.0, 16_000) > 0.4);
    assert!(energy_share(tail, 1000.0, 16_000) > 0.4);
    room.set_muted(callers[1].id, true);
    let heard = run(&mut room, &mut callers, &[], 3, 0);
    assert!(heard.is_empty());
    let last = room.recording_mix().unwrap();
    assert!(energy_share(last, 1000.0, 16_000) < 0.01);
}

#[test]
fn noise_suppression_lowers_the_level_of_a_noisy_line() {
    let mut room = Room::new(no_agc());
    let noisy = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    let cleaned = room
        .add(ParticipantOptions {
            noise_suppression: Some(true),
            ..ParticipantOptions::new(CodecKind::Pcmu)
        })
        .unwrap();
    let mut seed = 7u32;
    let mut frame = [0i16; 160];
    for _ in 0..100 {
        for s in &mut frame {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *s = ((seed >> 16) as i16) / 64;
        }
        room.put_frame(noisy, &frame);
        room.put_frame(cleaned, &frame);
        room.tick();
    }
    let (n, c) = (room.level_dbov(noisy), room.level_dbov(cleaned));
    assert!(c < n - 10.0, "noisy {n:.1} dBov, suppressed {c:.1} dBov");
}

#[test]
fn room_limits_and_removal_keep_ids_straight() {
    let mut room = Room::new(MixerConfig {
        max_participants: 3,
        ..no_agc()
    });
    let mut a = Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0);
    let b = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    let c = room.add(ParticipantOptions::new(CodecKind::G722)).unwrap();
    assert!(matches!(
        room.add(ParticipantOptions::default()),
        Err(MixerError::RoomFull { max: 3 })
    ));
    a.speak(&mut room);
    room.tick();
    assert_eq!(room.poll_event(), Some(RoomEvent::TalkingStarted(a.id)));
    room.remove(a.id);
    assert_eq!(room.poll_event(), Some(RoomEvent::TalkingStopped(a.id)));
    room.remove(a.id);
    assert_eq!(room.len(), 2);
    assert!(!room.contains(a.id));
    room.put_frame(a.id, &[1000; 160]);
    assert!(room.output(a.id).is_none());
    let d = room.add(ParticipantOptions::default()).unwrap();
    assert!(d != a.id && d != b && d != c);
    room.tick();
    assert_eq!(room.output_pcm(c).unwrap().len(), 320);
    assert_eq!(room.output_pcm(b).unwrap().len(), 160);
    assert!(room.output(d).is_some());
}

#[test]
fn unsupported_rate_or_ptime_is_rejected_or_defaulted() {
    for cfg in [
        MixerConfig {
            internal_rate: 44_100,
            ..MixerConfig::default()
        },
        MixerConfig {
            ptime_ms: 25,
            ..MixerConfig::default()
        },
    ] {
        assert!(Room::try_new(cfg).is_err());
        let room = Room::new(cfg);
        assert_eq!(room.config().internal_rate, 16_000);
        assert_eq!(room.config().ptime_ms, 20);
    }
}

#[test]
fn unpolled_events_drop_the_oldest() {
    let mut ring = EventRing::new(2);
    for i in 0..3 {
        ring.push(RoomEvent::TalkingStarted(ParticipantId(i)));
    }
    assert_eq!(ring.dropped, 1);
    assert_eq!(
        ring.pop(),
        Some(RoomEvent::TalkingStarted(ParticipantId(1)))
    );
    assert_eq!(
        ring.pop(),
        Some(RoomEvent::TalkingStarted(ParticipantId(2)))
    );
    assert_eq!(ring.pop(), None);
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8, bool),
    Remove(u8),
    Put(u8, Vec<i16>),
    Mute(u8, bool),
    Deaf(u8, bool),
    Record(bool),
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, any::<bool>()).prop_map(|(c, ns)| Op::Add(c, ns)),
        any::<u8>().prop_map(Op::Remove),
        (any::<u8>(), prop::collection::vec(any::<i16>(), 0..1200))
            .prop_map(|(i, v)| Op::Put(i, v)),
        (any::<u8>(), any::<bool>()).prop_map(|(i, b)| Op::Mute(i, b)),
        (any::<u8>(), any::<bool>()).prop_map(|(i, b)| Op::Deaf(i, b)),
        any::<bool>().prop_map(Op::Record),
        Just(Op::Tick),
        Just(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_frames_lengths_and_ids_never_panic(
        ops in prop::collection::vec(op(), 1..60),
        k in 0usize..4,
        rate in prop::sample::select(vec![8000u32, 16_000, 48_000]),
    ) {
        let mut room = Room::new(MixerConfig {
            max_mixed_speakers: k,
            internal_rate: rate,
            max_participants: 6,
            ..MixerConfig::default()
        });
        let mut ids = Vec::new();
        // Ids that were never handed out must be ignored too.
        let pick = |ids: &[ParticipantId], i: u8| {
            ids.get(usize::from(i) % (ids.len() + 1)).copied().unwrap_or(ParticipantId(9999))
        };
        for op in ops {
            match op {
                Op::Add(c, ns) => {
                    let options = ParticipantOptions {
                        noise_suppression: Some(ns),
                        ..ParticipantOptions::new(CodecKind::ALL[usize::from(c)])
                    };
                    if let Ok(id) = room.add(options) {
                        ids.push(id);
                    }
                }
                Op::Remove(i) => room.remove(pick(&ids, i)),
                Op::Put(i, v) => room.put_frame(pick(&ids, i), &v),
                Op::Mute(i, b) => room.set_muted(pick(&ids, i), b),
                Op::Deaf(i, b) => room.set_deaf(pick(&ids, i), b),
                Op::Record(b) => room.set_recording(b),
                Op::Tick => {
                    room.tick();
                    let plan = room.stats().mix_plan;
                    prop_assert!(plan.mixed_speakers as usize <= k);
                    prop_assert!(plan.shared_encodes <= 4);
                    for &id in &ids {
                        if let Some(pcm) = room.output_pcm(id) {
                            prop_assert!(!pcm.is_empty());
                        }
                        let _ = room.output(id);
                        let _ = room.is_talking(id);
                    }
                    while room.poll_event().is_some() {}
                }
            }
        }
    }
}

#[test]
fn a_room_of_telephones_mixes_at_8k_and_converts_nothing() {
    let mut room = Room::new(no_agc());
    let mut talkers = vec![
        Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0),
        Caller::join(&mut room, CodecKind::Pcma, 1000.0, -20.0),
    ];
    let listener = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    room.set_recording(true);
    let heard = run(&mut room, &mut talkers, &[listener], 30, 20);
    assert_eq!(room.mix_rate(), 8000);
    let plan = room.stats().mix_plan;
    assert_eq!(
        (plan.input_resamples, plan.output_resamples),
        (0, 0),
        "{plan:?}"
    );
    assert_eq!(room.recording_mix().unwrap().len(), 160);
    for t in &talkers {
        let a = amplitude(&heard[0], t.freq, 8000);
        assert!((a / t.amp - 1.0).abs() < 0.02, "{} Hz at {a:.0}", t.freq);
    }
}

#[test]
fn a_wideband_join_moves_the_mix_up_and_its_leave_moves_it_back() {
    let mut room = Room::new(no_agc());
    let mut phone = vec![Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0)];
    let listener = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    run(&mut room, &mut phone, &[listener], 10, 0);
    assert_eq!(room.mix_rate(), 8000);

    let mut both = vec![
        phone.remove(0),
        Caller::join(&mut room, CodecKind::G722, 1500.0, -20.0),
    ];
    assert_eq!(room.mix_rate(), 16_000);
    let wide = both[1].id;
    let heard = run(&mut room, &mut both, &[listener, wide], 30, 20);
    // The telephone listener hears both, the G.722 caller hears the telephone.
    for t in &both {
        let a = amplitude(&heard[0], t.freq, 8000);
        assert!((a / t.amp - 1.0).abs() < 0.1, "{} Hz at {a:.0}", t.freq);
    }
    let a = amplitude(&heard[1], 440.0, 16_000);
    assert!((a / both[0].amp - 1.0).abs() < 0.1, "440 Hz at {a:.0}");
    assert!(amplitude(&heard[1], 1500.0, 16_000) < both[1].amp * 0.05);

    room.remove(wide);
    both.truncate(1);
    assert_eq!(room.mix_rate(), 8000);
    let heard = run(&mut room, &mut both, &[listener], 30, 20);
    let a = amplitude(&heard[0], 440.0, 8000);
    assert!((a / both[0].amp - 1.0).abs() < 0.02, "440 Hz at {a:.0}");
    assert_eq!(room.stats().mix_plan.input_resamples, 0);
}

/// A caller that also hands the mixer the payload its frame was decoded from, as the media
/// worker does for every packet that arrived in time.
struct EncodingCaller {
    caller: Caller,
    encoder: Encoder,
    decoder: Decoder,
    payload: Vec<u8>,
    last_len: usize,
}

impl EncodingCaller {
    fn join(room: &mut Room, codec: CodecKind, freq: f64, dbov: f64) -> Self {
        Self {
            caller: Caller::join(room, codec, freq, dbov),
            encoder: Encoder::new(codec).unwrap(),
            decoder: Decoder::new(codec).unwrap(),
            payload: vec![0; 1500],
            last_len: 0,
        }
    }

    fn speak(&mut self, room: &mut Room) {
        let pcm = self.caller.frame(room.config().ptime_ms);
        let len = self.encoder.encode(&pcm, &mut self.payload).unwrap();
        self.last_len = len;
        let mut decoded = vec![0i16; pcm.len()];
        let n = self
            .decoder
            .decode(&self.payload[..len], &mut decoded)
            .unwrap();
        assert_eq!(n, pcm.len());
        room.put_encoded_frame(self.caller.id, &decoded, &self.payload[..len]);
    }

    /// The payload of the last frame spoken.
    fn sent(&self) -> &[u8] {
        &self.payload[..self.last_len]
    }
}

fn silence_frame(codec: CodecKind) -> Vec<u8> {
    let mut encoder = Encoder::new(codec).unwrap();
    let zeros = vec![0i16; codec.samples_per_frame(20)];
    let mut out = vec![0u8; 1500];
    let mut len = 0;
    for _ in 0..5 {
        len = encoder.encode(&zeros, &mut out).unwrap();
    }
    out.truncate(len);
    out
}

#[test]
fn a_lone_talker_is_forwarded_byte_for_byte_and_hears_silence() {
    for codec in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::Opus] {
        let mut room = Room::new(MixerConfig::default());
        let mut talker = EncodingCaller::join(&mut room, codec, 440.0, -20.0);
        let mut listeners = Vec::new();
        for i in 0..12 {
            let c = CodecKind::ALL[i % 4];
            listeners.push((c, room.add(ParticipantOptions::new(c)).unwrap()));
        }
        // G.711 talkers reach listeners on both laws without an encoder (the other law by
        // table); everyone else needs the shared encoder of their codec.
        let forwarded = |c: CodecKind| c == codec || converts_by_table(codec, c);
        let others = listeners.iter().filter(|(c, _)| !forwarded(*c)).count();
        let distinct_other_codecs =
            CodecKind::ALL.iter().filter(|&&c| !forwarded(c)).count() as u32;
        for t in 0..30 {
            talker.speak(&mut room);
            room.tick();
            let plan = room.stats().mix_plan;
            assert_eq!(plan.mixed_speakers, 1, "{codec:?} tick {t}");
            assert_eq!(plan.forwarded as usize, 12 - others, "{codec:?} {plan:?}");
            assert_eq!(
                plan.shared_encodes, distinct_other_codecs,
                "{codec:?} {plan:?}"
            );
            assert_eq!(plan.own_encodes, 0, "{codec:?} {plan:?}");
            let sent = talker.sent();
            for &(c, id) in &listeners {
                let out = room.output(id).unwrap();
                if c == codec {
                    assert!(out.shared);
                    assert_eq!(out.payload, sent, "{codec:?}: not the talker's bytes");
                } else if forwarded(c) {
                    let mut converted = vec![0u8; sent.len()];
                    match codec {
                        CodecKind::Pcma => media::g711::alaw_to_ulaw_slice(sent, &mut converted),
                        _ => media::g711::ulaw_to_alaw_slice(sent, &mut converted),
                    };
                    assert_eq!(out.payload, converted, "{codec:?} -> {c:?}: not by table");
                } else {
                    assert_ne!(out.payload, sent);
                }
            }
            let own = room.output(talker.caller.id).unwrap();
            assert_eq!(
                own.payload,
                silence_frame(codec),
                "{codec:?}: talker must hear silence"
            );
        }
        // What a forwarded listener hears is the talker's tone.
        let same = listeners.iter().find(|(c, _)| *c == codec).unwrap().1;
        let mut heard = Vec::new();
        for _ in 0..10 {
            talker.speak(&mut room);
            room.tick();
            heard.extend_from_slice(room.output_pcm(same).unwrap());
        }
        assert!(
            energy_share(&heard, 440.0, codec.sample_rate()) > 0.9,
            "{codec:?}"
        );
    }
}

#[test]
fn a_lone_g722_talker_is_transcoded_not_forwarded_and_hears_its_own_silence() {
    let mut room = Room::new(MixerConfig::default());
    let mut talker = EncodingCaller::join(&mut room, CodecKind::G722, 440.0, -20.0);
    let listeners: Vec<_> = (0..3)
        .map(|_| room.add(ParticipantOptions::new(CodecKind::G722)).unwrap())
        .collect();
    for _ in 0..10 {
        talker.speak(&mut room);
        room.tick();
        let plan = room.stats().mix_plan;
        assert_eq!(
            (plan.forwarded, plan.shared_encodes, plan.own_encodes),
            (0, 1, 1),
            "{plan:?}"
        );
        let first = room.output(listeners[0]).unwrap();
        assert!(first.shared);
        assert_ne!(first.payload, talker.sent());
        for &id in &listeners[1..] {
            assert_eq!(room.output(id).unwrap().payload, first.payload);
        }
        assert_eq!(room.output_pcm(talker.caller.id).unwrap(), &[0i16; 320][..]);
    }
}

#[test]
fn forwarding_needs_the_payload_of_one_whole_frame_and_can_be_switched_off() {
    let mut room = Room::new(MixerConfig::default());
    let mut talker = Caller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0);
    let listener = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    for _ in 0..5 {
        let pcm = talker.frame(20);
        // Half a frame of bytes cannot stand in for our 20 ms frame.
        room.put_encoded_frame(talker.id, &pcm, &[0x55; 80]);
        room.tick();
        assert_eq!(room.stats().mix_plan.forwarded, 0);
        assert_eq!(room.stats().mix_plan.shared_encodes, 1);
        assert!(
            room.output(listener)
                .unwrap()
                .payload
                .iter()
                .any(|&b| b != 0x55)
        );
    }
    let mut room = Room::new(MixerConfig {
        forward_lone_talker: false,
        ..MixerConfig::default()
    });
    let mut talker = EncodingCaller::join(&mut room, CodecKind::Pcmu, 440.0, -20.0);
    room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    for _ in 0..5 {
        talker.speak(&mut room);
        room.tick();
        let plan = room.stats().mix_plan;
        assert_eq!((plan.forwarded, plan.shared_encodes), (0, 1), "{plan:?}");
    }
}

#[test]
fn a_second_talker_ends_forwarding_and_both_are_mixed() {
    let mut room = Room::new(MixerConfig::default());
    let mut first = EncodingCaller::join(&mut room, CodecKind::Opus, 440.0, -20.0);
    let mut second = EncodingCaller::join(&mut room, CodecKind::Opus, 1000.0, -20.0);
    let listener = room.add(ParticipantOptions::new(CodecKind::Opus)).unwrap();
    let mut decoder = Decoder::new(CodecKind::Opus).unwrap();
    let mut buf = vec![0i16; 5760];
    let mut heard = Vec::new();
    for t in 0..60 {
        first.speak(&mut room);
        if t >= 20 {
            second.speak(&mut room);
        }
        room.tick();
        let plan = room.stats().mix_plan;
        if t < 20 {
            // The second caller, silent yet, and the listener.
            assert_eq!((plan.forwarded, plan.encodes), (2, 0), "tick {t}: {plan:?}");
        } else {
            assert_eq!(plan.forwarded, 0, "tick {t}: {plan:?}");
            assert_eq!(
                (plan.own_encodes, plan.shared_encodes),
                (2, 1),
                "tick {t}: {plan:?}"
            );
        }
        let n = decoder
            .decode(room.output(listener).unwrap().payload, &mut buf)
            .unwrap();
        if t >= 40 {
            heard.extend_from_slice(&buf[..n]);
        }
    }
    // The listener's one decoder followed the forwarded stream, then the shared encoder's.
    let share_first = energy_share(&heard, 440.0, 16_000);
    let share_second = energy_share(&heard, 1000.0, 16_000);
    assert!(
        share_first > 0.35 && share_second > 0.35,
        "{share_first} {share_second}"
    );
}

#[test]
fn a_quiet_talker_boosted_by_agc_is_mixed_rather_than_forwarded() {
    let mut room = Room::new(MixerConfig::default());
    let mut talker = EncodingCaller::join(&mut room, CodecKind::Pcmu, 440.0, -35.0);
    let listener = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    talker.speak(&mut room);
    room.tick();
    assert_eq!(room.stats().mix_plan.forwarded, 1, "unity gain at first");
    for _ in 0..150 {
        talker.speak(&mut room);
        room.tick();
    }
    assert!(room.gain_db(talker.caller.id) > FORWARD_MAX_GAIN_DB);
    let plan = room.stats().mix_plan;
    assert_eq!((plan.forwarded, plan.shared_encodes), (0, 1), "{plan:?}");
    let boosted = mean_square(room.output_pcm(listener).unwrap());
    let sent = mean_square(&talker.caller.frame(20));
    assert!(boosted > sent * 2.0, "{boosted} vs {sent}");
}

#[test]
fn a_room_where_nobody_talks_encodes_only_the_g722_stream() {
    let mut room = Room::new(MixerConfig::default());
    let ids: Vec<_> = (0..10)
        .map(|i| {
            let codec = CodecKind::ALL[i % 4];
            (codec, room.add(ParticipantOptions::new(codec)).unwrap())
        })
        .collect();
    let quiet = [0i16; 320];
    for _ in 0..10 {
        for &(codec, id) in &ids {
            room.put_frame(id, &quiet[..codec.samples_per_frame(20)]);
        }
        room.tick();
        let plan = room.stats().mix_plan;
        // Except the G.722 listeners' one shared encoder, which keeps running so that their
        // ADPCM decoders never have to switch to another encoder's stream.
        assert_eq!((plan.encodes, plan.silence_frames), (1, 7), "{plan:?}");
        for &(codec, id) in &ids {
            let out = room.output(id).unwrap();
            if codec == CodecKind::G722 {
                assert_eq!(room.output_pcm(id).unwrap(), &[0i16; 320][..]);
            } else {
                assert_eq!(out.payload, silence_frame(codec));
            }
        }
    }
    // The conventional baseline still encodes every listener's silence.
    let mut room = Room::new(MixerConfig {
        shared_encoding: false,
        forward_lone_talker: false,
        ..MixerConfig::default()
    });
    for _ in 0..10 {
        room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    }
    room.tick();
    assert_eq!(room.stats().mix_plan.encodes, 10);
}

#[test]
fn a_reported_level_stands_in_for_silent_frames_and_onsets_still_need_decoding() {
    let mut room = Room::new(MixerConfig::default());
    let mut talker = Caller::join(&mut room, CodecKind::Opus, 440.0, -20.0);
    let listener = room.add(ParticipantOptions::new(CodecKind::Opus)).unwrap();
    let muted = room
        .add(ParticipantOptions {
            muted: true,
            ..ParticipantOptions::new(CodecKind::Opus)
        })
        .unwrap();
    // Quiet participants report -80 dBov: nothing to decode, and talker detection stays off.
    for _ in 0..20 {
        assert!(!room.needs_pcm(talker.id, -80.0));
        room.put_level(talker.id, -80.0);
        room.put_level(listener, -80.0);
        room.tick();
        assert!(!room.is_talking(talker.id));
        assert_eq!(room.stats().mix_plan.encodes, 0);
    }
    // A speech-level report must be decoded; once talking, so must the quiet hang-over.
    assert!(room.needs_pcm(talker.id, -20.0));
    for _ in 0..5 {
        talker.speak(&mut room);
        room.tick();
    }
    assert!(room.is_talking(talker.id));
    assert!(
        room.needs_pcm(talker.id, -80.0),
        "hang-over frames are mixed"
    );
    assert!(
        energy_share(room.output_pcm(listener).unwrap(), 440.0, 16_000) > 0.9,
        "the decoded talker is heard"
    );
    // A muted participant is never heard, however loud it reports.
    assert!(!room.needs_pcm(muted, -10.0));
    // A level-only frame at speech level still drives talker detection.
    room.put_level(muted, -10.0);
    room.tick();
    assert!(room.is_talking(muted));
    assert!(!room.needs_pcm(ParticipantId(9999), -10.0));
}

#[test]
fn a_lone_talker_missing_a_payload_is_mixed_at_the_level_it_is_forwarded_at() {
    let mut room = Room::new(MixerConfig::default());
    let mut talker = EncodingCaller::join(&mut room, CodecKind::Pcmu, 440.0, -24.0);
    let listener = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    for _ in 0..100 {
        talker.speak(&mut room);
        room.tick();
    }
    let gain = room.gain_db(talker.caller.id);
    assert!(
        gain > 2.0 && gain <= FORWARD_MAX_GAIN_DB,
        "AGC gain {gain} dB"
    );
    assert_eq!(room.stats().mix_plan.forwarded, 1);
    // A lost packet: the worker hands over only the concealment, no payload.
    let concealed = talker.caller.frame(20);
    room.put_frame(talker.caller.id, &concealed);
    room.tick();
    assert_eq!(room.stats().mix_plan.forwarded, 0);
    let heard = mean_square(room.output_pcm(listener).unwrap());
    let sent = mean_square(&concealed);
    let db = 10.0 * (heard / sent).log10();
    assert!(
        db.abs() < 0.5,
        "heard {db:.1} dB from what was forwarded, not the AGC's {gain:.1}"
    );
}

/// Energy of `x` between `lo` and `hi` Hz relative to all of it, in dB (Hann-windowed DFT
/// over 20 ms blocks; slow but exact enough for tests).
fn band_share_db(x: &[i16], rate: u32, lo: f64, hi: f64) -> f64 {
    let n = rate as usize / 50;
    let (mut band, mut total) = (0.0, 1e-9);
    for block in x.chunks_exact(n) {
        let w: Vec<f64> = block
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
                f64::from(v) * hann
            })
            .collect();
        for k in 0..=n / 2 {
            let f = k as f64 * f64::from(rate) / n as f64;
            let (mut re, mut im) = (0.0, 0.0);
            for (i, &v) in w.iter().enumerate() {
                let ph = 2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                re += v * ph.cos();
                im -= v * ph.sin();
            }
            let p = re * re + im * im;
            total += p;
            if (lo..hi).contains(&f) {
                band += p;
            }
        }
    }
    10.0 * (band / total).max(1e-12).log10()
}

/// A phone talking in spurts: tone frames, then silence frames, each encoded as a phone
/// does and handed to the room with the payload (as the media worker does).
fn phone_frame(talker: &mut EncodingCaller, room: &mut Room, talking: bool) {
    if talking {
        talker.speak(room);
        return;
    }
    let n = talker.caller.codec.samples_per_frame(20);
    talker.caller.t += n;
    let silence = vec![0i16; n];
    let len = talker
        .encoder
        .encode(&silence, &mut talker.payload)
        .unwrap();
    let mut decoded = vec![0i16; n];
    let m = talker
        .decoder
        .decode(&talker.payload[..len], &mut decoded)
        .unwrap();
    room.put_encoded_frame(talker.caller.id, &decoded[..m], &talker.payload[..len]);
}

/// Issue 13: speech from a telephone reached G.722 listeners with strong noise between 4 and
/// 8 kHz and the wrong level, because their ADPCM decoders were switched between encoder
/// instances (the room's silence frame, the talker's forwarded payload, the room's shared
/// encoder restarted at every talk spurt). What a listener's own decoder makes of the stream
/// must be the talker's tone, at its level, from the first frames of every spurt on.
#[test]
fn g722_listeners_hear_every_talk_spurt_clean_and_at_its_level() {
    for talker_codec in CodecKind::ALL {
        for freq in [440.0, 1200.0, 2400.0] {
            let mut room = Room::new(no_agc());
            let mut talker = EncodingCaller::join(&mut room, talker_codec, freq, -20.0);
            let listener = room.add(ParticipantOptions::new(CodecKind::G722)).unwrap();
            let _silent = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
            let mut phone = Decoder::new(CodecKind::G722).unwrap();
            let mut pcm = [0i16; 320];
            let mut heard = Vec::new();
            // Three spurts of 0.6 s, each after a pause longer than the talker hang-over.
            for tick in 0..3 * 60 {
                let talking = tick % 60 >= 30;
                phone_frame(&mut talker, &mut room, talking);
                room.tick();
                let payload = room.output(listener).unwrap().payload;
                let n = phone.decode(payload, &mut pcm).unwrap();
                // Scored from the third frame of a spurt on (the codecs' delay).
                if talking && tick % 60 >= 32 {
                    heard.extend_from_slice(&pcm[..n]);
                }
            }
            let what = format!("{talker_codec:?} -> G.722, {freq} Hz");
            // Frame by frame: the spurts are not phase-continuous with each other.
            for (i, frame) in heard.chunks_exact(320).enumerate() {
                let a = amplitude(frame, freq, 16_000) / talker.caller.amp;
                assert!(
                    (0.89..1.12).contains(&a),
                    "{what}: level {a:.2} in frame {i}"
                );
            }
            let wide = band_share_db(&heard, 16_000, 4000.0, 8000.0);
            assert!(wide < -45.0, "{what}: {wide:.1} dB above 4 kHz");
        }
    }
}

/// A G.722 talker that stops while another keeps talking moves from its own encoder back to
/// the shared one; its decoder must go on hearing the other talker cleanly.
#[test]
fn a_g722_talker_that_stops_hears_the_other_talker_cleanly() {
    let mut room = Room::new(no_agc());
    let mut other = EncodingCaller::join(&mut room, CodecKind::G722, 440.0, -20.0);
    let mut me = EncodingCaller::join(&mut room, CodecKind::G722, 1300.0, -20.0);
    let _listener = room.add(ParticipantOptions::new(CodecKind::G722)).unwrap();
    let mut phone = Decoder::new(CodecKind::G722).unwrap();
    let mut pcm = [0i16; 320];
    let mut after = Vec::new();
    for tick in 0..150 {
        phone_frame(&mut other, &mut room, true);
        phone_frame(&mut me, &mut room, (20..60).contains(&tick));
        room.tick();
        let n = phone
            .decode(room.output(me.caller.id).unwrap().payload, &mut pcm)
            .unwrap();
        // From the first tick I am no longer mixed (after my hang-over) on.
        if tick >= 60 && (!after.is_empty() || !room.is_mixed(me.caller.id)) {
            after.push(pcm[..n].to_vec());
        }
    }
    assert!(after.len() > 60, "{} frames", after.len());
    for (i, frame) in after.iter().enumerate() {
        let a = amplitude(frame, 440.0, 16_000) / other.caller.amp;
        assert!((0.89..1.12).contains(&a), "level {a:.2} in frame {i} after");
        let wide = band_share_db(frame, 16_000, 4000.0, 8000.0);
        assert!(wide < -45.0, "{wide:.1} dB above 4 kHz in frame {i} after");
    }
}

/// A forwarded Opus talker whose packet is lost upstream leaves its forwarded listeners a
/// gap (their decoders conceal within the talker's own stream, or use its FEC) instead of
/// one frame from our encoder; listeners on other codecs still get the mix.
#[test]
fn an_opus_packet_lost_upstream_is_passed_on_as_a_gap() {
    let mut room = Room::new(MixerConfig::default());
    let mut talker = EncodingCaller::join(&mut room, CodecKind::Opus, 440.0, -20.0);
    let opus = room.add(ParticipantOptions::new(CodecKind::Opus)).unwrap();
    let pcmu = room.add(ParticipantOptions::new(CodecKind::Pcmu)).unwrap();
    for _ in 0..10 {
        talker.speak(&mut room);
        room.tick();
        assert!(!room.lost_upstream(opus));
        assert_eq!(room.output(opus).unwrap().payload, talker.sent());
    }
    // Lost upstream: the server conceals and hands over PCM only.
    let concealed = talker.caller.frame(20);
    room.put_frame(talker.caller.id, &concealed);
    room.tick();
    assert!(room.lost_upstream(opus));
    assert!(room.output(opus).is_none());
    assert_eq!(room.stats().mix_plan.gaps, 1);
    assert!(!room.lost_upstream(pcmu));
    assert!(room.output(pcmu).is_some());
    // The next packet is forwarded again.
    talker.speak(&mut room);
    room.tick();
    assert!(!room.lost_upstream(opus));
    assert_eq!(room.output(opus).unwrap().payload, talker.sent());
}

/// A forwarded Opus talker that pauses (DTX, its jitter buffer between spurts) is no loss:
/// within its hang-over its listeners get the room's own mix, not a gap in their stream.
#[test]
fn an_opus_talkers_pause_is_not_passed_on_as_a_loss() {
    let mut room = Room::new(MixerConfig::default());
    let mut talker = EncodingCaller::join(&mut room, CodecKind::Opus, 440.0, -20.0);
    let opus = room.add(ParticipantOptions::new(CodecKind::Opus)).unwrap();
    for _ in 0..10 {
        talker.speak(&mut room);
        room.tick();
        assert_eq!(room.output(opus).unwrap().payload, talker.sent());
    }
    room.put_pause(talker.caller.id, &[0; 320]);
    room.tick();
    assert!(
        room.is_mixed(talker.caller.id),
        "still within its hang-over"
    );
    assert!(!room.lost_upstream(opus));
    let heard = room.output(opus).expect("the listener gets a frame");
    assert_ne!(heard.payload, talker.sent());
    assert_eq!(room.stats().mix_plan.gaps, 0);
    // Talk resumes: forwarded again.
    talker.speak(&mut room);
    room.tick();
    assert_eq!(room.output(opus).unwrap().payload, talker.sent());
}

/// After a quiet room, a lone G.722 talker's codes reach G.722 listeners byte for byte (one
/// generation of coding, not two). A frame the talker's packet is missing for is coded from
/// where the listeners' decoders are, and when a second talker starts the listeners move to
/// the shared encoder continued from that same state: a listener's own decoder hears the
/// first talker's tone at its level throughout, with no noise above 4 kHz.
#[test]
fn a_lone_g722_talker_after_a_quiet_room_is_forwarded_and_its_listeners_stay_in_step() {
    let mut room = Room::new(no_agc());
    let mut talker = EncodingCaller::join(&mut room, CodecKind::G722, 440.0, -20.0);
    let mut second = EncodingCaller::join(&mut room, CodecKind::G722, 3000.0, -20.0);
    let listener = room.add(ParticipantOptions::new(CodecKind::G722)).unwrap();
    let _wideband = room.add(ParticipantOptions::new(CodecKind::Opus)).unwrap();
    let mut phone = Decoder::new(CodecKind::G722).unwrap();
    let mut pcm = [0i16; 320];
    let mut heard = Vec::new();
    let mut forwarded = 0;
    for tick in 0..80 {
        let talking = tick >= 20;
        if tick == 40 {
            // The talker's packet of this tick never arrived: the server conceals it.
            let n = talker.caller.codec.samples_per_frame(20);
            let mut concealed = vec![0i16; n];
            talker.decoder.conceal(&mut concealed);
            talker.caller.t += n;
            room.put_frame(talker.caller.id, &concealed);
        } else {
            phone_frame(&mut talker, &mut room, talking);
        }
        phone_frame(&mut second, &mut room, tick >= 60);
        room.tick();
        let payload = room.output(listener).unwrap().payload;
        if (21..60).contains(&tick) && tick != 40 && payload == talker.sent() {
            forwarded += 1;
        }
        let n = phone.decode(payload, &mut pcm).unwrap();
        if (22..80).contains(&tick) {
            heard.extend_from_slice(&pcm[..n]);
        }
    }
    assert!(forwarded >= 36, "forwarded {forwarded} of 38 frames");
    for (i, frame) in heard.chunks_exact(320).enumerate() {
        let a = amplitude(frame, 440.0, 16_000) / talker.caller.amp;
        // The lost frame and the one after it: concealment, not the codec (0.90, 0.65).
        let allowed = if (40..42).contains(&(22 + i)) {
            0.5..1.15
        } else {
            0.85..1.15
        };
        assert!(allowed.contains(&a), "level {a:.2} in frame {}", 22 + i);
    }
    let before_second = &heard[..38 * 320];
    let wide = band_share_db(before_second, 16_000, 4000.0, 8000.0);
    assert!(wide < -40.0, "{wide:.1} dB above 4 kHz");
}
