//! Whether a follower can vouch for what it serves: it heard from a leader recently, and it has
//! applied what that leader told it was committed.
//!
//! Hearing from the leader is not enough. The leader's heartbeats travel apart from its log
//! replication, and each says how far the cluster has committed. A follower whose replication is
//! stuck or slow (a healed partition, a replication stream in backoff, a slow apply) still gets
//! the heartbeats. It would pass a contact check alone while it serves a table that lacks what
//! the cluster has acknowledged, a key revocation for one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Commit frontiers told within this many milliseconds of each other are kept as one sample.
const COALESCE_MS: u64 = 10;
/// Samples kept at most (10 s at one per [`COALESCE_MS`]); older ones fall due at once.
const MAX_SAMPLES: usize = 1024;

/// When this voter last accepted an append (entries or heartbeat) from a leader it recognises,
/// and the commit frontiers those appends carried.
#[derive(Clone, Debug)]
pub struct LeaderContact {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last accepted append, plus one; 0 means never.
    last_ms: Arc<AtomicU64>,
    told: Arc<Mutex<Told>>,
}

/// What leaders said the cluster had committed, and when.
#[derive(Debug, Default)]
struct Told {
    /// (ms after the epoch, commit index), oldest first.
    recent: VecDeque<(u64, u64)>,
    /// The highest commit index told long enough ago that it must be applied by now.
    due: u64,
}

impl Told {
    fn record(&mut self, at_ms: u64, index: u64) {
        match self.recent.back_mut() {
            Some((at, i)) if at_ms.saturating_sub(*at) < COALESCE_MS => *i = (*i).max(index),
            _ => self.recent.push_back((at_ms, index)),
        }
        while self.recent.len() > MAX_SAMPLES {
            self.fall_due();
        }
    }

    /// Makes due every frontier told at or before `before_ms`.
    fn settle(&mut self, before_ms: u64) {
        while self.recent.front().is_some_and(|(at, _)| *at <= before_ms) {
            self.fall_due();
        }
    }

    fn fall_due(&mut self) {
        if let Some((_, index)) = self.recent.pop_front() {
            self.due = self.due.max(index);
        }
    }
}

impl LeaderContact {
    /// No contact yet.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            told: Arc::default(),
        }
    }

    /// Notes an accepted append now, and the commit index its leader sent with it.
    pub fn touch(&self, leader_commit: Option<u64>) {
        let ms = self.epoch.elapsed().as_millis() as u64 + 1;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
        if let Some(index) = leader_commit {
            self.told().record(ms, index);
        }
    }

    /// How long ago the last accepted append was; `None` if there was none.
    pub fn age(&self) -> Option<Duration> {
        match self.last_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms - 1)),
            ),
        }
    }

    /// Whether this voter, having applied up to `applied`, has applied every commit index a
    /// leader told it of at least `lag` ago.
    pub fn caught_up(&self, applied: u64, lag: Duration) -> bool {
        let now_ms = self.epoch.elapsed().as_millis() as u64 + 1;
        let mut told = self.told();
        told.settle(now_ms.saturating_sub(lag.as_millis() as u64));
        applied >= told.due
    }

    fn told(&self) -> MutexGuard<'_, Told> {
        self.told.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for LeaderContact {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frontier_falls_due_only_after_the_lag() {
        let mut t = Told::default();
        t.record(100, 7);
        t.record(105, 9); // coalesced with the sample at 100
        t.record(300, 12);
        t.settle(99);
        assert_eq!(t.due, 0, "nothing was told before 99");
        t.settle(100);
        assert_eq!(t.due, 9);
        t.settle(299);
        assert_eq!(t.due, 9);
        t.settle(10_000);
        assert_eq!(t.due, 12);
        assert!(t.recent.is_empty());
    }

    #[test]
    fn samples_stay_bounded() {
        let mut t = Told::default();
        for i in 0..(MAX_SAMPLES as u64 * 3) {
            t.record(i * COALESCE_MS, i);
        }
        assert_eq!(t.recent.len(), MAX_SAMPLES);
        assert_eq!(
            t.due,
            MAX_SAMPLES as u64 * 2 - 1,
            "the dropped samples fell due"
        );
    }

    #[test]
    fn a_follower_that_applied_what_it_was_told_is_caught_up() {
        let c = LeaderContact::new();
        assert!(c.caught_up(0, Duration::ZERO), "nothing told yet");
        c.touch(Some(5));
        // Told just now: not due yet with a lag, due at once without one.
        assert!(c.caught_up(0, Duration::from_secs(60)));
        assert!(!c.caught_up(4, Duration::ZERO));
        assert!(c.caught_up(5, Duration::ZERO));
        c.touch(None);
        assert!(c.age().is_some());
    }
}
