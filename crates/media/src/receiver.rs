//! [`AudioReceiver`]: a peer's audio from packets to one frame of PCM per tick, the jitter
//! buffer and the decoder together. A phone leg ([`crate::leg::MediaLeg`]) feeds it the RTP
//! packets it parsed; a browser leg feeds it the Opus payloads its WebRTC stack decrypted. Both
//! then decode the same way, with in-band FEC and level-based skipping.

use std::time::Instant;

use crate::codec::{CodecKind, Decoder};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout, PushOutcome};
use crate::leg::{Heard, LegError, MAX_FRAME_SAMPLES};

/// The receiving half of a leg's media: packets in (any order), one decoded frame out per tick.
#[derive(Debug)]
pub struct AudioReceiver {
    codec: CodecKind,
    samples_per_frame: usize,
    decoder: Decoder,
    jitter: JitterBuffer,
}

impl AudioReceiver {
    /// A receiver for `codec` that plays frames of `ptime_ms`.
    pub fn new(codec: CodecKind, ptime_ms: u32) -> Result<Self, LegError> {
        let samples_per_frame = (codec.sample_rate() * ptime_ms / 1000) as usize;
        if samples_per_frame == 0 || samples_per_frame > MAX_FRAME_SAMPLES {
            return Err(LegError::UnsupportedPtime(ptime_ms));
        }
        Ok(Self {
            codec,
            samples_per_frame,
            decoder: Decoder::new(codec)?,
            jitter: JitterBuffer::new(JitterConfig {
                // Every decoder here does better with the packet after a loss: Opus recovers
                // the frame from its FEC (we ask peers for it: useinbandfec=1), G.711 and
                // G.722 conceal from both sides.
                loss_lookahead: true,
                ..JitterConfig::new(codec.clock_rate(), ptime_ms)
            }),
        })
    }

    /// Samples in one decoded frame (at the codec's PCM rate).
    pub fn samples_per_frame(&self) -> usize {
        self.samples_per_frame
    }

    /// Stores one packet's payload that arrived at `arrival`, with the RFC 6464 level its
    /// sender reported (0..=127, meaning -dBov), if any.
    #[inline]
    pub fn push(
        &mut self,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
        level: Option<u8>,
        arrival: Instant,
    ) -> PushOutcome {
        self.jitter
            .push_with_level(sequence, timestamp, payload, level, arrival)
    }

    /// Decodes this tick's frame (or conceals a loss) into `heard`; returns its length, and
    /// the payload when it decoded to exactly one frame (a conference may forward it as
    /// is). An Opus frame whose reported level `skip_decode` rejects is not decoded at all:
    /// see [`Heard::LevelOnly`].
    #[inline]
    pub fn decode(
        &mut self,
        now: Instant,
        heard: &mut [i16],
        skip_decode: impl FnOnce(f32) -> bool,
    ) -> Heard<'_> {
        let n = self.samples_per_frame;
        let heard = &mut heard[..n];
        let (decoded, received) = match self.jitter.pop(now) {
            // Only Opus is skipped: libopus takes up after a gap cleanly, while G.722's
            // ADPCM state would be stale, and G.711 costs nothing to decode.
            Playout::Frame {
                level: Some(level), ..
            } if self.codec == CodecKind::Opus && skip_decode(-f32::from(level)) => {
                return Heard::LevelOnly(-f32::from(level));
            }
            Playout::Frame { payload, .. } => {
                let decoded = self.decoder.decode(payload, heard).unwrap_or(0);
                (decoded, (decoded == n).then_some(payload))
            }
            // Opus recovers a lost frame from the next packet's in-band FEC when that is here.
            Playout::Lost { next: Some(next) } => (self.decoder.conceal_before(next, heard), None),
            Playout::Lost { next: None } => (self.decoder.conceal(heard), None),
            Playout::Empty => (0, None),
            Playout::Paused => {
                heard.fill(0);
                return Heard::Pause(n);
            }
        };
        if decoded < n {
            heard[decoded..].fill(0);
        }
        Heard::Pcm(n, received)
    }

    /// What the jitter buffer did with the stream: late packets, concealed frames and the
    /// delay it plays at.
    pub fn stats(&self) -> JitterStats {
        self.jitter.stats()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::codec::Encoder;

    /// 20 ms of a 700 Hz sine at 16 kHz, continuing from sample `start`.
    fn tone(start: usize) -> Vec<i16> {
        (start..start + 320)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * 700.0 * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn plays_opus_packets_in_order_and_makes_up_a_lost_one() {
        let mut encoder = Encoder::new(CodecKind::Opus).unwrap();
        let packets: Vec<Vec<u8>> = (0..8)
            .map(|i| {
                let mut out = [0u8; 1500];
                let n = encoder.encode(&tone(i * 320), &mut out).unwrap();
                out[..n].to_vec()
            })
            .collect();
        let mut receiver = AudioReceiver::new(CodecKind::Opus, 20).unwrap();
        assert_eq!(receiver.samples_per_frame(), 320);
        let t0 = Instant::now();
        // 3 is lost; 5 overtakes 4.
        for (k, i) in [0u16, 1, 2, 5, 4, 6, 7].into_iter().enumerate() {
            let at = t0 + Duration::from_millis(20 * k as u64);
            receiver.push(i, u32::from(i) * 960, &packets[usize::from(i)], None, at);
        }
        let mut heard = [0i16; MAX_FRAME_SAMPLES];
        let mut energies = Vec::new();
        let mut now = t0;
        for _ in 0..20 {
            now += Duration::from_millis(20);
            if let Heard::Pcm(n, _) = receiver.decode(now, &mut heard, |_| false) {
                energies.push(
                    heard[..n]
                        .iter()
                        .map(|&s| f64::from(s).powi(2))
                        .sum::<f64>(),
                );
            }
        }
        let stats = receiver.stats();
        assert_eq!(stats.lost, 1, "{stats:?}");
        assert_eq!(stats.late, 0, "5 overtaking 4 is not late: {stats:?}");
        let first = energies
            .iter()
            .position(|&e| e > 0.0)
            .expect("audio played");
        assert!(
            energies[first..first + 8].iter().all(|&e| e > 1e6),
            "eight frames of tone in a row, the lost one made up: {energies:?}"
        );
    }

    /// A DTX sender's pause (RFC 7587 §3.1.3: the timestamp jumps, the sequence number
    /// does not) is heard as a pause after the buffer's underrun concealment, not as loss.
    #[test]
    fn a_dtx_pause_is_a_pause_not_a_loss() {
        let mut encoder = Encoder::new(CodecKind::Opus).unwrap();
        let mut receiver = AudioReceiver::new(CodecKind::Opus, 20).unwrap();
        let t0 = Instant::now();
        let mut out = [0u8; 1500];
        // Five frames of talk, then 400 ms of nothing, then the next packet (seq 5).
        let sends = (0..5u16).map(|i| (i, u32::from(i) * 960, u64::from(i) * 20));
        let sends = sends.chain([(5, 25 * 960, 500)]);
        let mut heard = [0i16; MAX_FRAME_SAMPLES];
        let mut kinds = Vec::new();
        let mut pending: Vec<(u16, u32, u64)> = sends.collect();
        for tick in 0..40u64 {
            let now_ms = tick * 20;
            pending.retain(|&(seq, ts, at)| {
                if at > now_ms {
                    return true;
                }
                let n = encoder
                    .encode(&tone(usize::from(seq) * 320), &mut out)
                    .unwrap();
                receiver.push(seq, ts, &out[..n], None, t0 + Duration::from_millis(at));
                false
            });
            kinds.push(
                match receiver.decode(t0 + Duration::from_millis(now_ms + 5), &mut heard, |_| {
                    false
                }) {
                    Heard::Pause(_) => 'p',
                    Heard::Pcm(..) => 'f',
                    Heard::LevelOnly(_) => 'l',
                },
            );
        }
        let kinds: String = kinds.into_iter().collect();
        let stats = receiver.stats();
        assert_eq!(stats.lost, 0, "{stats:?}");
        assert!(kinds.contains("ppppp"), "{kinds}");
        let talk_ends = kinds.find('p').expect("a pause");
        assert!(
            kinds[talk_ends..].contains('f'),
            "the next spurt plays: {kinds}"
        );
    }

    #[test]
    fn skips_decoding_a_frame_whose_level_says_nobody_hears_it() {
        let mut encoder = Encoder::new(CodecKind::Opus).unwrap();
        let mut out = [0u8; 1500];
        let n = encoder.encode(&tone(0), &mut out).unwrap();
        let mut receiver = AudioReceiver::new(CodecKind::Opus, 20).unwrap();
        let t0 = Instant::now();
        receiver.push(1, 960, &out[..n], Some(90), t0);
        let mut heard = [0i16; MAX_FRAME_SAMPLES];
        let mut seen = None;
        for k in 1..10 {
            if let Heard::LevelOnly(level) =
                receiver.decode(t0 + Duration::from_millis(20 * k), &mut heard, |l| {
                    l < -80.0
                })
            {
                seen = Some(level);
                break;
            }
        }
        assert_eq!(seen, Some(-90.0));
    }

    #[test]
    fn refuses_a_frame_length_no_buffer_holds() {
        assert!(matches!(
            AudioReceiver::new(CodecKind::Opus, 200),
            Err(LegError::UnsupportedPtime(200))
        ));
        assert!(matches!(
            AudioReceiver::new(CodecKind::Pcmu, 0),
            Err(LegError::UnsupportedPtime(0))
        ));
    }
}
