//! When the media worker's ticks run: one per period on the monotonic clock. A worker that
//! was not scheduled in time runs the ticks it missed back to back, each at its own time, so
//! that no frame is cut out of anyone's audio; only when it is further behind than it may
//! catch up (the machine was suspended, a debugger stopped it) does it skip them.

use std::time::{Duration, Instant};

/// What the worker does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickStart {
    /// Too early: sleep this long, then ask again.
    Wait(Duration),
    /// Run the tick whose time is `at` (now or, catching up, in the past). `late`: it
    /// starts more than one period after that time, or ticks were skipped to get here.
    Run { at: Instant, late: bool },
}

#[derive(Debug)]
pub struct TickSchedule {
    next: Instant,
    period: Duration,
    max_catch_up: Duration,
}

impl TickSchedule {
    /// The first tick one `period` after `start`.
    pub fn new(start: Instant, period: Duration, max_catch_up: Duration) -> Self {
        Self {
            next: start + period,
            period,
            max_catch_up,
        }
    }

    pub fn poll(&mut self, now: Instant) -> TickStart {
        if now < self.next {
            return TickStart::Wait(self.next - now);
        }
        let behind = now - self.next;
        if behind > self.max_catch_up {
            self.next = now;
        }
        let at = self.next;
        self.next += self.period;
        TickStart::Run {
            at,
            late: behind > self.period,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(20);
    const CATCH_UP: Duration = Duration::from_millis(200);

    /// The ticks a worker runs when it next looks at `now`: their times (ms after `t0`)
    /// and lateness, until the schedule says wait.
    fn run_all(schedule: &mut TickSchedule, t0: Instant, now_ms: u64) -> Vec<(u64, bool)> {
        let now = t0 + Duration::from_millis(now_ms);
        let mut ran = Vec::new();
        while let TickStart::Run { at, late } = schedule.poll(now) {
            ran.push(((at - t0).as_millis() as u64, late));
        }
        ran
    }

    #[test]
    fn on_time_it_runs_one_tick_per_period_and_waits_between() {
        let t0 = Instant::now();
        let mut schedule = TickSchedule::new(t0, PERIOD, CATCH_UP);
        assert_eq!(
            schedule.poll(t0 + Duration::from_millis(5)),
            TickStart::Wait(Duration::from_millis(15))
        );
        for tick in 1..=50u64 {
            // The sleep overshoots a little, as real ones do.
            let ran = run_all(&mut schedule, t0, tick * 20 + 1);
            assert_eq!(ran, vec![(tick * 20, false)]);
        }
    }

    /// A worker held up for 70 ms runs the three ticks it missed at once, each at its own
    /// time: every frame still goes out, and the jitter buffers see 20 ms between ticks.
    #[test]
    fn a_short_stall_is_caught_up_tick_by_tick() {
        let t0 = Instant::now();
        let mut schedule = TickSchedule::new(t0, PERIOD, CATCH_UP);
        assert_eq!(run_all(&mut schedule, t0, 20), vec![(20, false)]);
        let ran = run_all(&mut schedule, t0, 110);
        assert_eq!(
            ran,
            vec![(40, true), (60, true), (80, true), (100, false)],
            "ticks missed while stalled run late, the one due now on time"
        );
        assert_eq!(run_all(&mut schedule, t0, 120), vec![(120, false)]);
    }

    /// Catching up a whole second would burst fifty frames at every listener: beyond the
    /// limit the schedule starts again from now, and that one tick says it is late.
    #[test]
    fn a_long_stall_is_skipped_not_caught_up() {
        let t0 = Instant::now();
        let mut schedule = TickSchedule::new(t0, PERIOD, CATCH_UP);
        assert_eq!(run_all(&mut schedule, t0, 20), vec![(20, false)]);
        assert_eq!(run_all(&mut schedule, t0, 1020), vec![(1020, true)]);
        assert_eq!(run_all(&mut schedule, t0, 1040), vec![(1040, false)]);
    }
}
