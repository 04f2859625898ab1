//! Logging a condition that repeats without flooding the log: the first occurrence is logged at
//! once, later ones at most once per interval with how many were left out, and the end once.
//!
//! The tracker has no clock and no IO: the caller passes `now` in, logs what it is told to, and
//! the tests drive it with made-up instants.

use std::time::{Duration, Instant};

/// Follows one repeating condition (say "no control-plane voter answers").
#[derive(Debug, Clone)]
pub struct Repeats {
    interval: Duration,
    run: Option<Run>,
}

/// The condition's current run: since when it holds, and what was logged of it.
#[derive(Debug, Clone, Copy)]
struct Run {
    since: Instant,
    last_logged: Instant,
    /// Occurrences since `since`, the first included.
    times: u64,
    /// Occurrences since the last logged one, that one excluded.
    unlogged: u64,
}

/// What to log for an occurrence of the condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// Occurrences this line stands for: 1 for the first, else those since the last line.
    pub times: u64,
    /// How long the condition has held.
    pub lasted: Duration,
}

/// What to log when the condition ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Occurrences during the whole run.
    pub times: u64,
    /// How long the condition held, from its first occurrence.
    pub lasted: Duration,
}

impl Repeats {
    /// A tracker that logs a still-holding condition at most once per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            run: None,
        }
    }

    /// The condition occurred at `now`. `Some` when a line is due: the first occurrence of a run,
    /// or the first one at least `interval` after the last line.
    pub fn occurred(&mut self, now: Instant) -> Option<Occurrence> {
        let Some(run) = &mut self.run else {
            self.run = Some(Run {
                since: now,
                last_logged: now,
                times: 1,
                unlogged: 0,
            });
            return Some(Occurrence {
                times: 1,
                lasted: Duration::ZERO,
            });
        };
        run.times += 1;
        run.unlogged += 1;
        if now.saturating_duration_since(run.last_logged) < self.interval {
            return None;
        }
        let line = Occurrence {
            times: run.unlogged,
            lasted: now.saturating_duration_since(run.since),
        };
        run.last_logged = now;
        run.unlogged = 0;
        Some(line)
    }

    /// The condition no longer holds at `now`. `Some` once per run, when one was under way.
    pub fn ended(&mut self, now: Instant) -> Option<Ended> {
        self.run.take().map(|run| Ended {
            times: run.times,
            lasted: now.saturating_duration_since(run.since),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    /// Occurrences every 500 ms for `secs` seconds after `start`, the lines they produce.
    fn every_half_second(r: &mut Repeats, start: Instant, secs: u64) -> Vec<(u64, Occurrence)> {
        (0..secs * 2)
            .filter_map(|i| {
                let at = Duration::from_millis(500 * i);
                r.occurred(start + at).map(|o| (at.as_millis() as u64, o))
            })
            .collect()
    }

    #[test]
    fn first_occurrence_is_logged_then_one_line_a_minute_with_a_count() {
        let t0 = Instant::now();
        let mut r = Repeats::new(MINUTE);
        let lines = every_half_second(&mut r, t0, 150);
        let occ = |times, secs| Occurrence {
            times,
            lasted: Duration::from_secs(secs),
        };
        assert_eq!(
            lines,
            vec![
                (0, occ(1, 0)),
                (60_000, occ(120, 60)),
                (120_000, occ(120, 120))
            ]
        );
        assert_eq!(
            r.ended(t0 + Duration::from_secs(150)),
            Some(Ended {
                times: 300,
                lasted: Duration::from_secs(150)
            })
        );
    }

    #[test]
    fn six_retries_in_two_seconds_make_one_line() {
        let t0 = Instant::now();
        let mut r = Repeats::new(MINUTE);
        let lines = every_half_second(&mut r, t0, 3);
        assert_eq!(lines.len(), 1, "{lines:?}");
    }

    #[test]
    fn the_end_is_logged_once_and_a_new_run_starts_afresh() {
        let t0 = Instant::now();
        let mut r = Repeats::new(MINUTE);
        assert_eq!(r.ended(t0), None, "nothing to end before any occurrence");
        assert!(r.occurred(t0).is_some());
        assert!(r.occurred(t0 + Duration::from_secs(1)).is_none());
        assert_eq!(
            r.ended(t0 + Duration::from_secs(2)),
            Some(Ended {
                times: 2,
                lasted: Duration::from_secs(2)
            })
        );
        assert_eq!(r.ended(t0 + Duration::from_secs(3)), None);
        // The condition comes back: its first occurrence is logged at once again.
        assert_eq!(
            r.occurred(t0 + Duration::from_secs(4)),
            Some(Occurrence {
                times: 1,
                lasted: Duration::ZERO
            })
        );
    }

    #[test]
    fn a_clock_that_goes_backwards_neither_panics_nor_logs() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut r = Repeats::new(MINUTE);
        assert!(r.occurred(t0).is_some());
        assert_eq!(r.occurred(t0 - Duration::from_secs(5)), None);
        assert_eq!(
            r.ended(t0 - Duration::from_secs(5)).map(|e| e.lasted),
            Some(Duration::ZERO)
        );
    }
}
