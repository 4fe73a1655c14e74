//! Offline speech quality of every codec path through a room, scored with PESQ.
//!
//! ```text
//! cargo run --release -p mixer --example path_quality -- \
//!     [--python target/quality-venv/bin/python] [--out target/path-quality] \
//!     [--paths pcmu:g722,opus:opus | --paths all] [--loss 3 --jitter 30 --spread 15 --seed 1] \
//!     [--third pcmu] [--resampler ours|rubato-sinc|rubato-poly|rubato-fft]
//! ```
//!
//! Speech (espeak-ng, brought to 8 and 16 kHz by sox and levelled to -20 dBov active speech)
//! is spoken twice by talker A. A's phone encodes it into 20 ms RTP payloads; they reach the
//! server at seeded arrival times (optionally with loss and jitter, reordering included),
//! go through the server's jitter buffer, decoder and concealment at its 20 ms tick, and into
//! a real [`mixer::Room`] with listener B and a silent third caller C (on B's codec unless
//! `--third` says otherwise). B's payloads are decoded as B's phone would and the second
//! utterance is scored against the source with PESQ (P.862 narrow-band for 8 kHz listeners,
//! P.862.2 wide-band for 16 kHz ones). The codec-only ceiling is the same speech through codec
//! A then codec B, converted between their rates (by `--resampler`; the room always uses ours),
//! without room, network or jitter buffer.
//!
//! Debugging: `PATH_QUALITY_TRACE=1` prints per tick what B got (F forwarded, S shared encode,
//! O own encode, . silence); `PATH_QUALITY_JITTER=1` the jitter buffer's counters;
//! `PATH_QUALITY_NO_LOOKAHEAD=1` turns the server's Opus FEC off,
//! `PATH_QUALITY_NO_LOSS_DELAY=1` the jitter buffer's extra frame while losing packets,
//! `PATH_QUALITY_B_NO_FEC=1`
//! that of B's phone, `PATH_QUALITY_A_NO_FEC=1` makes A's phone send none (as baresip); `PATH_QUALITY_MIN_DELAY_MS` sets the
//! jitter buffer's floor.
//!
//! The WAV files stay in `--out` (`ref8.wav`, `ref16.wav`, `A-B-room.wav`, `A-B-codec.wav`).
//! The Python needs `numpy` and `pesq` (`python3 -m venv target/quality-venv;
//! target/quality-venv/bin/pip install numpy pesq`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use media::codec::{CodecKind, Decoder, Encoder};
use media::jitter::{JitterBuffer, JitterConfig, Playout};
use media::resample::Resampler;
use media::wav::{parse_wav, write_wav};
use mixer::{MixerConfig, ParticipantOptions, Room};

#[path = "../../media/benches/support/rubato_adapter.rs"]
mod rubato_adapter;

/// Two Harvard sentences (IEEE 1969), the e2e tests' speech.
const SPEECH: &str = "The birch canoe slid on the smooth planks. Glue the sheet to the dark \
                      blue background. It's easy to tell the depth of a well.";
const PTIME_MS: u32 = 20;
/// Active-speech level the talker is brought to (where the room's AGC leaves it alone).
const TARGET_DBOV: f64 = -20.0;
/// Pause before, between and after the two utterances.
const PAUSE_MS: usize = 1000;
/// Silence around the utterance in the PESQ reference.
const REF_PAD_MS: usize = 500;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    python: PathBuf,
    out: PathBuf,
    paths: Vec<(CodecKind, CodecKind)>,
    third: Option<CodecKind>,
    network: Network,
    /// The converter of the codec-only cascade (`--resampler`): ours or one of rubato's.
    resampler: Option<rubato_adapter::Kind>,
}

/// Seeded network between A's phone and the server.
#[derive(Clone, Copy)]
struct Network {
    loss_percent: f64,
    delay_ms: f64,
    spread_ms: f64,
    seed: u64,
}

fn codec(name: &str) -> Res<CodecKind> {
    CodecKind::from_name(name)
        .or(match name {
            "g722" => Some(CodecKind::G722),
            _ => None,
        })
        .ok_or_else(|| format!("unknown codec {name}").into())
}

fn all_paths() -> Vec<(CodecKind, CodecKind)> {
    use CodecKind::*;
    vec![
        (Pcmu, Pcmu),
        (Pcma, Pcmu),
        (G722, Pcmu),
        (G722, G722),
        (Pcmu, G722),
        (Pcmu, Opus),
        (Opus, G722),
        (G722, Opus),
        (Opus, Opus),
        (Opus, Pcmu),
        (Pcma, Pcma),
        (Pcmu, Pcma),
        (Pcma, G722),
        (G722, Pcma),
        (Opus, Pcma),
        (Pcma, Opus),
    ]
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        python: PathBuf::from("target/quality-venv/bin/python"),
        out: PathBuf::from("target/path-quality"),
        paths: all_paths(),
        third: None,
        resampler: None,
        network: Network {
            loss_percent: 0.0,
            delay_ms: 5.0,
            spread_ms: 0.0,
            seed: 1,
        },
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--python" => args.python = value.into(),
            "--out" => args.out = value.into(),
            "--third" => args.third = Some(codec(&value)?),
            "--paths" if value == "all" => args.paths = all_paths(),
            "--paths" => {
                args.paths = value
                    .split(',')
                    .map(|p| {
                        let (a, b) = p.split_once(':').ok_or("path is A:B")?;
                        Ok((codec(a)?, codec(b)?))
                    })
                    .collect::<Res<_>>()?;
            }
            "--loss" => args.network.loss_percent = value.parse()?,
            "--jitter" => args.network.delay_ms = value.parse()?,
            "--spread" => args.network.spread_ms = value.parse()?,
            "--seed" => args.network.seed = value.parse()?,
            "--resampler" => {
                args.resampler = match value.as_str() {
                    "ours" => None,
                    "rubato-sinc" => Some(rubato_adapter::Kind::Sinc),
                    "rubato-poly" => Some(rubato_adapter::Kind::Poly),
                    "rubato-fft" => Some(rubato_adapter::Kind::Fft),
                    _ => return Err(format!("unknown resampler {value}").into()),
                }
            }
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    Ok(args)
}

fn run(cmd: &mut Command) -> Res<()> {
    let status = cmd.status()?;
    if !status.success() {
        return Err(format!("{cmd:?} failed").into());
    }
    Ok(())
}

fn read_wav(path: &Path) -> Res<(Vec<i16>, u32)> {
    let wav = parse_wav(&std::fs::read(path)?)?;
    Ok((wav.samples, wav.sample_rate))
}

fn save(path: &Path, pcm: &[i16], rate: u32) -> Res<()> {
    std::fs::write(path, write_wav(pcm, rate))?;
    Ok(())
}

fn active_rms_dbov(x: &[i16], rate: u32) -> f64 {
    let frame = rate as usize / 50;
    let levels: Vec<f64> = x
        .chunks_exact(frame)
        .map(|f| {
            let p = f.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / frame as f64;
            10.0 * (p / 32768f64.powi(2) + 1e-12).log10()
        })
        .collect();
    let top = levels.iter().copied().fold(f64::MIN, f64::max);
    let active: Vec<f64> = levels.into_iter().filter(|&l| l > top - 30.0).collect();
    let mean = active.iter().map(|l| 10f64.powf(l / 10.0)).sum::<f64>() / active.len() as f64;
    10.0 * mean.log10()
}

/// The utterance at 8 and 16 kHz (sox's converter, independent of ours), same level.
fn speech(out: &Path) -> Res<(Vec<i16>, Vec<i16>)> {
    let raw = out.join("espeak.wav");
    run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&raw)
        .arg(SPEECH))?;
    let mut at = Vec::new();
    for rate in [8000u32, 16000] {
        let path = out.join(format!("speech{}.wav", rate / 1000));
        // -D: no dither, so that every run scores the very same speech.
        run(Command::new("sox")
            .arg("-D")
            .arg(&raw)
            .args(["-r", &rate.to_string(), "-c", "1", "-b", "16"])
            .arg(&path))?;
        at.push(read_wav(&path)?.0);
    }
    let gain = 10f64.powf((TARGET_DBOV - active_rms_dbov(&at[1], 16000)) / 20.0);
    let level = |x: &[i16]| -> Vec<i16> {
        x.iter()
            .map(|&v| (f64::from(v) * gain).round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    };
    Ok((level(&at[0]), level(&at[1])))
}

fn ms(rate: u32, ms: usize) -> usize {
    rate as usize * ms / 1000
}

/// Pause, utterance, pause, utterance, pause: what A's microphone hears.
fn talker_signal(utterance: &[i16], rate: u32) -> Vec<i16> {
    let pause = vec![0i16; ms(rate, PAUSE_MS)];
    [&pause[..], utterance, &pause, utterance, &pause].concat()
}

/// The second utterance with its padding: what PESQ compares against.
fn reference(utterance: &[i16], rate: u32) -> Vec<i16> {
    let pad = vec![0i16; ms(rate, REF_PAD_MS)];
    [&pad[..], utterance, &pad].concat()
}

/// Cuts the stretch of a listener's signal that corresponds to [`reference`].
fn scored_part(heard: &[i16], utterance_len: usize, rate: u32) -> Vec<i16> {
    let start = ms(rate, 2 * PAUSE_MS - REF_PAD_MS) + utterance_len;
    let len = utterance_len + 2 * ms(rate, REF_PAD_MS);
    let mut part: Vec<i16> = heard.iter().skip(start).take(len).copied().collect();
    part.resize(len, 0);
    part
}

/// xorshift64*: deterministic and good enough for loss and jitter draws.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Packet {
    seq: u16,
    ts: u32,
    payload: Vec<u8>,
    arrival: Duration,
}

/// A's phone: 20 ms frames encoded, sent every 20 ms, through the network model.
fn phone_packets(signal: &[i16], kind: CodecKind, net: Network) -> Res<(Vec<Packet>, usize)> {
    let frame = kind.samples_per_frame(PTIME_MS);
    // PATH_QUALITY_A_NO_FEC=1: A's phone sends Opus without in-band FEC (as baresip does).
    let mut enc = if std::env::var_os("PATH_QUALITY_A_NO_FEC").is_some() {
        let opus = media::opus::OpusConfig {
            inband_fec: false,
            ..media::opus::OpusConfig::default()
        };
        Encoder::with_opus_config(kind, opus)?
    } else {
        Encoder::new(kind)?
    };
    let mut rng = Rng(net.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut packets = Vec::new();
    let mut lost = 0;
    let mut buf = vec![0u8; 1500];
    for (i, chunk) in signal.chunks(frame).enumerate() {
        let mut pcm = chunk.to_vec();
        pcm.resize(frame, 0);
        let n = enc.encode(&pcm, &mut buf)?;
        // Draw both numbers for every packet so that the loss pattern does not shift the
        // jitter pattern.
        let drop = rng.unit() * 100.0 < net.loss_percent;
        let jitter = (rng.unit() * 2.0 - 1.0) * net.spread_ms;
        if drop {
            lost += 1;
            continue;
        }
        let sent = Duration::from_millis(i as u64 * u64::from(PTIME_MS));
        packets.push(Packet {
            seq: i as u16,
            ts: (i as u32).wrapping_mul(kind.rtp_ticks_per_frame(PTIME_MS)),
            payload: buf[..n].to_vec(),
            arrival: sent + Duration::from_secs_f64((net.delay_ms + jitter).max(0.0) / 1000.0),
        });
    }
    packets.sort_by_key(|p| p.arrival);
    Ok((packets, lost))
}

/// One leg into the room: phone-encoded silence, decoded by the server.
struct SilentLeg {
    enc: Encoder,
    dec: Decoder,
    zeros: Vec<i16>,
}

impl SilentLeg {
    fn new(kind: CodecKind) -> Res<Self> {
        Ok(Self {
            enc: Encoder::new(kind)?,
            dec: Decoder::new(kind)?,
            zeros: vec![0; kind.samples_per_frame(PTIME_MS)],
        })
    }

    fn feed(&mut self, room: &mut Room, id: mixer::ParticipantId) -> Res<()> {
        let mut payload = [0u8; 1500];
        let mut pcm = [0i16; 1920];
        let n = self.enc.encode(&self.zeros, &mut payload)?;
        let m = self.dec.decode(&payload[..n], &mut pcm)?;
        room.put_encoded_frame(id, &pcm[..m], &payload[..n]);
        Ok(())
    }
}

/// What listener B hears of talker A through a room, at B's codec rate.
fn through_room(
    talker: &[i16],
    a: CodecKind,
    b: CodecKind,
    third: CodecKind,
    net: Network,
) -> Res<(Vec<i16>, usize)> {
    let (packets, lost) = phone_packets(talker, a, net)?;
    let mut room = Room::try_new(MixerConfig {
        internal_rate: 16_000,
        ..MixerConfig::default()
    })?;
    let join = |room: &mut Room, codec| {
        room.add(ParticipantOptions {
            codec,
            ..ParticipantOptions::new(codec)
        })
    };
    let id_a = join(&mut room, a)?;
    let id_b = join(&mut room, b)?;
    let id_c = join(&mut room, third)?;
    let mut silent_b = SilentLeg::new(b)?;
    let mut silent_c = SilentLeg::new(third)?;
    let mut jitter_config = JitterConfig::new(a.clock_rate(), PTIME_MS);
    // As the server's legs (media::leg).
    jitter_config.loss_lookahead = std::env::var_os("PATH_QUALITY_NO_LOSS_DELAY").is_none();
    if let Some(ms) = std::env::var("PATH_QUALITY_MIN_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        jitter_config.min_delay = Duration::from_millis(ms);
    }
    let mut jitter = JitterBuffer::new(jitter_config);
    let mut server_dec = Decoder::new(a)?;
    let mut phone_b = Decoder::new(b)?;
    let frame_a = a.samples_per_frame(PTIME_MS);
    let frame_b = b.samples_per_frame(PTIME_MS);
    let epoch = Instant::now();
    // The server's tick is not in phase with the phone's clock.
    let phase = Duration::from_micros(7_300);
    let ticks = talker.len() / frame_a + 10;
    let mut heard = Vec::with_capacity(ticks * frame_b);
    let mut pcm = vec![0i16; 1920];
    let mut out = vec![0i16; 1920];
    let mut next = 0;
    // PATH_QUALITY_NO_LOOKAHEAD=1: no Opus FEC from the next packet (as before issue 13).
    let lookahead = std::env::var_os("PATH_QUALITY_NO_LOOKAHEAD").is_none();
    let mut trace = String::new();
    let mut looked_ahead = 0;
    let mut b_pending: Option<Option<Vec<u8>>> = None;
    // PATH_QUALITY_B_NO_FEC=1: B's phone conceals gaps without looking at the next packet.
    let b_fec = std::env::var_os("PATH_QUALITY_B_NO_FEC").is_none();
    for k in 0..ticks {
        let now = Duration::from_millis(k as u64 * u64::from(PTIME_MS)) + phase;
        while let Some(p) = packets.get(next).filter(|p| p.arrival <= now) {
            jitter.push(p.seq, p.ts, &p.payload, epoch + p.arrival);
            next += 1;
        }
        // As `Session::decode` in the server's media worker.
        match jitter.pop(epoch + now) {
            Playout::Frame { payload, .. } => {
                let n = server_dec.decode(payload, &mut pcm).unwrap_or(0);
                pcm[n..frame_a].fill(0);
                if n == frame_a {
                    room.put_encoded_frame(id_a, &pcm[..n], payload);
                } else {
                    room.put_frame(id_a, &pcm[..frame_a]);
                }
            }
            Playout::Lost { next } => {
                let n = match next.filter(|_| lookahead) {
                    Some(next) => {
                        looked_ahead += 1;
                        server_dec.conceal_before(next, &mut pcm[..frame_a])
                    }
                    None => server_dec.conceal(&mut pcm[..frame_a]),
                };
                pcm[n..frame_a].fill(0);
                room.put_frame(id_a, &pcm[..frame_a]);
            }
            Playout::Empty => room.put_frame(id_a, &[]),
            Playout::Paused => room.put_pause(id_a, &[]),
        }
        silent_b.feed(&mut room, id_b)?;
        silent_c.feed(&mut room, id_c)?;
        room.tick();
        if std::env::var_os("PATH_QUALITY_TRACE").is_some() {
            let plan = room.stats().mix_plan;
            trace.push(if plan.forwarded > 0 {
                'F'
            } else if plan.own_encodes > 0 {
                'O'
            } else if plan.shared_encodes > 0 {
                'S'
            } else {
                '.'
            });
        }
        // B's phone plays one tick behind what it receives (its jitter buffer), so that a
        // frame the room leaves out (`Room::lost_upstream`) can be recovered from the FEC of
        // the next one, as our server does for its callers.
        let arrived = room.output(id_b).map(|frame| frame.payload.to_vec());
        if let Some(due) = b_pending.replace(arrived) {
            let n = match (due, b_pending.as_ref().and_then(Option::as_ref)) {
                (Some(payload), _) => phone_b.decode(&payload, &mut out)?,
                (None, Some(next)) if b_fec => phone_b.conceal_before(next, &mut out[..frame_b]),
                (None, _) => phone_b.conceal(&mut out[..frame_b]),
            };
            heard.extend_from_slice(&out[..n]);
        }
    }
    if std::env::var_os("PATH_QUALITY_JITTER").is_some() {
        eprintln!(
            "{}-{}: {looked_ahead} looked ahead, {:?}",
            name(a),
            name(b),
            jitter.stats()
        );
    }
    if !trace.is_empty() {
        eprintln!("{}-{}: {trace}", name(a), name(b));
    }
    Ok((heard, lost))
}

/// The same speech through codec A then codec B, converted between their rates: the best
/// any server could do without forwarding.
fn codec_only(
    talker: &[i16],
    a: CodecKind,
    b: CodecKind,
    rubato: Option<rubato_adapter::Kind>,
) -> Res<Vec<i16>> {
    let (fa, fb) = (a.samples_per_frame(PTIME_MS), b.samples_per_frame(PTIME_MS));
    let mut enc_a = Encoder::new(a)?;
    let mut dec_a = Decoder::new(a)?;
    let mut enc_b = Encoder::new(b)?;
    let mut dec_b = Decoder::new(b)?;
    let (ra, rb) = (a.sample_rate(), b.sample_rate());
    let mut conv = (ra != rb).then(|| Resampler::new(ra, rb)).transpose()?;
    let mut conv_rubato = rubato
        .filter(|_| ra != rb)
        .map(|kind| rubato_adapter::Rubato::new(kind, ra, rb, fa));
    let mut payload = vec![0u8; 1500];
    let mut pcm_a = vec![0i16; 1920];
    let mut pcm_b = vec![0i16; 1920];
    let mut heard = Vec::new();
    for chunk in talker.chunks(fa) {
        let mut frame = chunk.to_vec();
        frame.resize(fa, 0);
        let n = enc_a.encode(&frame, &mut payload)?;
        let m = dec_a.decode(&payload[..n], &mut pcm_a)?;
        let mid: &[i16] = match (&mut conv_rubato, &mut conv) {
            (Some(r), _) => {
                let k = r.process(&pcm_a[..m], &mut pcm_b);
                pcm_b[k..fb].fill(0);
                &pcm_b[..fb]
            }
            (None, Some(r)) => {
                let k = r.process(&pcm_a[..m], &mut pcm_b);
                pcm_b[k..fb].fill(0);
                &pcm_b[..fb]
            }
            (None, None) => &pcm_a[..m],
        };
        let n = enc_b.encode(mid, &mut payload)?;
        let m = dec_b.decode(&payload[..n], &mut pcm_a)?;
        heard.extend_from_slice(&pcm_a[..m]);
    }
    Ok(heard)
}

fn name(kind: CodecKind) -> &'static str {
    match kind {
        CodecKind::Pcmu => "pcmu",
        CodecKind::Pcma => "pcma",
        CodecKind::G722 => "g722",
        CodecKind::Opus => "opus",
    }
}

fn main() -> Res<()> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.out)?;
    let (speech8, speech16) = speech(&args.out)?;
    let ref_path = |rate: u32| args.out.join(format!("ref{}.wav", rate / 1000));
    save(&ref_path(8000), &reference(&speech8, 8000), 8000)?;
    save(&ref_path(16000), &reference(&speech16, 16000), 16000)?;
    let mut pesq_args: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for &(a, b) in &args.paths {
        let (utt_a, utt_b) = match (a.sample_rate(), b.sample_rate()) {
            (8000, 8000) => (&speech8, &speech8),
            (8000, _) => (&speech8, &speech16),
            (_, 8000) => (&speech16, &speech8),
            _ => (&speech16, &speech16),
        };
        let talker = talker_signal(utt_a, a.sample_rate());
        let rate_b = b.sample_rate();
        let mode = if rate_b == 8000 { "nb" } else { "wb" };
        let (room, lost) = through_room(&talker, a, b, args.third.unwrap_or(b), args.network)?;
        let cascade = codec_only(&talker, a, b, args.resampler)?;
        let stem = format!("{}-{}", name(a), name(b));
        for (kind, heard) in [("codec", &cascade), ("room", &room)] {
            let path = args.out.join(format!("{stem}-{kind}.wav"));
            save(&path, &scored_part(heard, utt_b.len(), rate_b), rate_b)?;
            pesq_args.extend([
                mode.to_string(),
                ref_path(rate_b).display().to_string(),
                path.display().to_string(),
            ]);
        }
        rows.push((stem, mode, lost));
    }
    let out = Command::new(&args.python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pesq_score.py"))
        .args(&pesq_args)
        .output()?;
    if !out.status.success() {
        return Err(format!("pesq_score.py: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let scores: Vec<f64> = String::from_utf8(out.stdout)?
        .lines()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let net = args.network;
    println!(
        "network A->server: {}% loss, {}±{} ms, seed {}",
        net.loss_percent, net.delay_ms, net.spread_ms, net.seed
    );
    println!(
        "{:<10} {:>4} {:>7} {:>7} {:>7} {:>5}",
        "A-B", "mode", "codec", "room", "diff", "lost"
    );
    for ((stem, mode, lost), pair) in rows.iter().zip(scores.chunks(2)) {
        println!(
            "{stem:<10} {mode:>4} {:>7.3} {:>7.3} {:>+7.3} {lost:>5}",
            pair[0],
            pair[1],
            pair[1] - pair[0]
        );
    }
    Ok(())
}
