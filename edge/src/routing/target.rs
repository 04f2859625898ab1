//! Live per-target state that outlives table versions: requests in flight and a peak-EWMA of
//! latency per (endpoint, upstream model), and cooldowns and failure counts per credential.
//! Everything is atomics: the request path never takes a lock here.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Decay time of the latency EWMA: older samples weigh e^-1 after this long.
const EWMA_TAU_US: f64 = 10_000_000.0;
/// Window in which `allowed_fails` failures trip a cooldown.
pub const FAIL_WINDOW_MS: i64 = 60_000;
/// Longest backoff after repeated 429s without a hint: a daily quota's length.
const MAX_BACKOFF_MS: u64 = 24 * 3600 * 1000;

/// Wall clock in unix ms (cooldown deadlines are shared with the control plane, so wall time).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Monotonic microseconds since the first call.
pub fn mono_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Cooldown and failure bookkeeping for one credential of a target (or of a whole endpoint).
#[derive(Debug, Default)]
pub struct CredState {
    until_ms: AtomicI64,
    strikes: AtomicU32,
    window_start_ms: AtomicI64,
    fails: AtomicU32,
    /// Requests per minute the upstream announced in `x-ratelimit-limit-requests` (0 = none).
    learned_rpm: AtomicU64,
    /// Tokens per minute the upstream announced in `x-ratelimit-limit-tokens` (0 = none).
    learned_tpm: AtomicU64,
}

impl CredState {
    /// Unix ms until which this credential rests (0 or past = usable).
    pub fn until_ms(&self) -> i64 {
        self.until_ms.load(Ordering::Relaxed)
    }

    /// Rests the credential until `until_ms`, keeping a later deadline already set.
    pub fn cool_until(&self, until_ms: i64) {
        self.until_ms.fetch_max(until_ms, Ordering::Relaxed);
    }

    /// The next backoff for a 429 that named no wait: `base`, doubling per consecutive 429.
    pub fn next_backoff(&self, base: Duration) -> Duration {
        let strikes = self.strikes.fetch_add(1, Ordering::Relaxed).min(20);
        let ms = (base.as_millis() as u64).saturating_mul(1 << strikes);
        Duration::from_millis(ms.min(MAX_BACKOFF_MS))
    }

    /// Counts a failure at `now_ms`; true when it is the `allowed_fails`-th within the window
    /// (the caller then cools the credential down and the count starts over).
    pub fn record_failure(&self, now_ms: i64, allowed_fails: u32) -> bool {
        let start = self.window_start_ms.load(Ordering::Relaxed);
        if now_ms - start > FAIL_WINDOW_MS {
            self.window_start_ms.store(now_ms, Ordering::Relaxed);
            self.fails.store(0, Ordering::Relaxed);
        }
        let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
        if fails >= allowed_fails.max(1) {
            self.fails.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// The limits the upstream announced for this credential: (requests, tokens) per minute,
    /// 0 where it said nothing.
    pub fn learned(&self) -> (u64, u64) {
        (
            self.learned_rpm.load(Ordering::Relaxed),
            self.learned_tpm.load(Ordering::Relaxed),
        )
    }

    /// Records limits an upstream announced; `None` leaves what was learned before.
    pub fn learn(&self, rpm: Option<u64>, tpm: Option<u64>) {
        if let Some(rpm) = rpm {
            self.learned_rpm.store(rpm, Ordering::Relaxed);
        }
        if let Some(tpm) = tpm {
            self.learned_tpm.store(tpm, Ordering::Relaxed);
        }
    }

    /// A success resets the 429 backoff (only written when there is something to reset).
    pub fn record_success(&self) {
        if self.strikes.load(Ordering::Relaxed) != 0 {
            self.strikes.store(0, Ordering::Relaxed);
        }
    }
}

/// Load and cooldowns of one (endpoint, upstream model).
#[derive(Debug)]
pub struct Target {
    outstanding: AtomicU32,
    ewma_us: AtomicU64,
    last_us: AtomicU64,
    /// One entry per credential (one for an endpoint without credentials).
    pub creds: Box<[CredState]>,
}

impl Target {
    /// A fresh target with `credentials` credential slots (at least one).
    pub fn new(credentials: usize) -> Arc<Self> {
        Arc::new(Self {
            outstanding: AtomicU32::new(0),
            ewma_us: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
            creds: (0..credentials.max(1))
                .map(|_| CredState::default())
                .collect(),
        })
    }

    /// Requests in flight now.
    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// The peak-EWMA latency in microseconds (0 before any sample).
    pub fn ewma_us(&self) -> u64 {
        self.ewma_us.load(Ordering::Relaxed)
    }

    /// Marks a request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight {
            target: Arc::clone(self),
        }
    }

    /// Folds a latency sample into the peak-EWMA: a slower sample is taken at once, a faster
    /// one decays the average toward it with the time since the last sample.
    pub fn observe(&self, sample_us: u64, now_us: u64) {
        let prev = self.ewma_us.load(Ordering::Relaxed);
        let last = self.last_us.swap(now_us, Ordering::Relaxed);
        let next = if sample_us >= prev || prev == 0 {
            sample_us
        } else {
            let elapsed = now_us.saturating_sub(last) as f64;
            let w = (-elapsed / EWMA_TAU_US).exp();
            (prev as f64 * w + sample_us as f64 * (1.0 - w)) as u64
        };
        self.ewma_us.store(next, Ordering::Relaxed);
    }
}

/// A request in flight on a target; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight {
    target: Arc<Target>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.target.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let t = Target::new(1);
        t.observe(1_000, 0);
        assert_eq!(t.ewma_us(), 1_000);
        t.observe(5_000, 1_000);
        assert_eq!(t.ewma_us(), 5_000, "a slower sample is taken at once");
        t.observe(1_000, 1_000 + EWMA_TAU_US as u64);
        let e = t.ewma_us();
        assert!((2_400..2_500).contains(&e), "decays by e^-1 after tau: {e}");
    }

    #[test]
    fn in_flight_counts() {
        let t = Target::new(2);
        let a = t.start();
        let b = t.start();
        assert_eq!(t.outstanding(), 2);
        drop(a);
        drop(b);
        assert_eq!(t.outstanding(), 0);
        assert_eq!(t.creds.len(), 2);
    }

    #[test]
    fn failures_trip_after_allowed_fails_in_the_window() {
        let c = CredState::default();
        // (now_ms, allowed_fails) -> trips?
        let steps = [
            (100_000, 3, false),
            (100_010, 3, false),
            (100_020, 3, true),
            (100_030, 3, false),
            // a new window forgets old failures
            (300_000, 2, false),
            (300_001, 2, true),
        ];
        for (now, allowed, want) in steps {
            assert_eq!(c.record_failure(now, allowed), want, "at {now}");
        }
    }

    #[test]
    fn backoff_doubles_and_resets_and_cooldowns_keep_the_later_deadline() {
        let c = CredState::default();
        let base = Duration::from_secs(1);
        let got: Vec<u64> = (0..4).map(|_| c.next_backoff(base).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8]);
        c.record_success();
        assert_eq!(c.next_backoff(base).as_secs(), 1);
        c.cool_until(500);
        c.cool_until(300);
        assert_eq!(c.until_ms(), 500);
    }
}
