//! Per-SSRC packet index bookkeeping: ROC estimation and the replay window.

/// Packets behind the highest index we still accept once (RFC 3711 §3.3.2 asks for at least 64;
/// libsrtp uses 128).
pub(crate) const WINDOW: u64 = 128;

/// Highest index seen on one stream and which of the `WINDOW` before it arrived.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplayWindow {
    highest: u64,
    /// Bit n set: index `highest - n` was accepted.
    seen: u128,
    started: bool,
}

/// Why an index was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Replayed,
    TooOld,
}

impl ReplayWindow {
    /// The 48-bit SRTP index of sequence number `seq`, guessing the ROC as RFC 3711 §3.3.1 and
    /// Appendix A do; `None` when the guess is a ROC below zero (from before the stream began).
    pub(crate) fn estimate_rtp_index(&self, seq: u16) -> Option<u64> {
        if !self.started {
            // §3.3.1: a receiver starts with ROC 0 and s_l the first sequence number seen.
            return Some(u64::from(seq));
        }
        let roc = (self.highest >> 16) as i64;
        let s_l = i64::from(self.highest as u16);
        let seq_i = i64::from(seq);
        let v = if s_l < 32768 {
            if seq_i - s_l > 32768 { roc - 1 } else { roc }
        } else if s_l - 32768 > seq_i {
            roc + 1
        } else {
            roc
        };
        if !(0..=i64::from(u32::MAX)).contains(&v) {
            return None;
        }
        Some(((v as u64) << 16) | u64::from(seq))
    }

    /// The rollover counter of the highest index accepted (0 before any).
    pub(crate) fn roc(&self) -> u32 {
        (self.highest >> 16) as u32
    }

    /// Whether `index` may be accepted; does not change the window (RFC 3711 §3.3.2: update
    /// only after the packet authenticates).
    pub(crate) fn check(&self, index: u64) -> Result<(), Refusal> {
        if !self.started || index > self.highest {
            return Ok(());
        }
        let behind = self.highest - index;
        if behind >= WINDOW {
            return Err(Refusal::TooOld);
        }
        if self.seen & (1u128 << behind) != 0 {
            return Err(Refusal::Replayed);
        }
        Ok(())
    }

    /// Records `index` as accepted.
    pub(crate) fn accept(&mut self, index: u64) {
        if !self.started {
            *self = ReplayWindow {
                highest: index,
                seen: 1,
                started: true,
            };
        } else if index > self.highest {
            let ahead = index - self.highest;
            self.seen = if ahead >= WINDOW {
                1
            } else {
                (self.seen << ahead) | 1
            };
            self.highest = index;
        } else {
            let behind = self.highest - index;
            if behind < WINDOW {
                self.seen |= 1u128 << behind;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_after(indices: &[u64]) -> ReplayWindow {
        let mut window = ReplayWindow::default();
        for &index in indices {
            window.accept(index);
        }
        window
    }

    #[test]
    fn roc_guess_follows_appendix_a() {
        let window = window_after(&[65_530]);
        assert_eq!(window.estimate_rtp_index(65_535), Some(65_535));
        assert_eq!(window.estimate_rtp_index(3), Some(0x1_0003));
        let window = window_after(&[0x1_0002]);
        assert_eq!(window.estimate_rtp_index(65_534), Some(65_534));
        assert_eq!(window.estimate_rtp_index(5), Some(0x1_0005));
    }

    #[test]
    fn a_roc_below_zero_is_no_index() {
        let window = window_after(&[10]);
        assert_eq!(window.estimate_rtp_index(60_000), None);
    }

    #[test]
    fn refuses_repeats_and_packets_behind_the_window() {
        let window = window_after(&[1000, 998]);
        assert_eq!(window.check(1000), Err(Refusal::Replayed));
        assert_eq!(window.check(998), Err(Refusal::Replayed));
        assert_eq!(window.check(999), Ok(()));
        assert_eq!(window.check(1000 - WINDOW), Err(Refusal::TooOld));
        assert_eq!(window.check(1000 - WINDOW + 1), Ok(()));
        assert_eq!(window.check(5000), Ok(()));
    }

    #[test]
    fn a_big_jump_clears_the_window() {
        let window = window_after(&[1, 2, 3, 10_000]);
        assert_eq!(window.check(3), Err(Refusal::TooOld));
        assert_eq!(window.check(9_999), Ok(()));
        assert_eq!(window.check(10_000), Err(Refusal::Replayed));
    }
}
