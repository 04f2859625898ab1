//! The in-memory aggregate of this edge's usage: counters per (key, model, deployment, minute).
//!
//! Recording is a read lock, one hash lookup and six relaxed atomic adds; only the first request
//! of a series in a minute takes the write lock to add its cell. Draining swaps every counter to
//! zero and hands back what it held, so nothing recorded between two drains is lost or counted
//! twice. Cells of minutes before the previous one are removed (no request writes there any
//! more: a request records into the minute it ends in).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// One finished request, as the ledger counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests (1 for one request).
    pub requests: u64,
    /// Requests answered with a status of 400 or more.
    pub errors: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Latency, ms.
    pub latency_ms: u64,
    /// Cost in billionths of a US dollar.
    pub cost_nanos: u64,
}

/// Which series a count belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Series {
    /// Client key id.
    pub key: Arc<str>,
    /// Public model name.
    pub model: Arc<str>,
    /// `<endpoint>/<upstream model>`, empty when nothing served.
    pub deployment: Arc<str>,
    /// Start of the minute, ms since the Unix epoch.
    pub minute_ms: u64,
}

#[derive(Debug, Default)]
struct Cell {
    requests: AtomicU64,
    errors: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    latency_ms: AtomicU64,
    cost_nanos: AtomicU64,
}

impl Cell {
    fn add(&self, c: &Counts) {
        self.requests.fetch_add(c.requests, Relaxed);
        self.errors.fetch_add(c.errors, Relaxed);
        self.input_tokens.fetch_add(c.input_tokens, Relaxed);
        self.output_tokens.fetch_add(c.output_tokens, Relaxed);
        self.latency_ms.fetch_add(c.latency_ms, Relaxed);
        self.cost_nanos.fetch_add(c.cost_nanos, Relaxed);
    }

    fn take(&self) -> Counts {
        Counts {
            requests: self.requests.swap(0, Relaxed),
            errors: self.errors.swap(0, Relaxed),
            input_tokens: self.input_tokens.swap(0, Relaxed),
            output_tokens: self.output_tokens.swap(0, Relaxed),
            latency_ms: self.latency_ms.swap(0, Relaxed),
            cost_nanos: self.cost_nanos.swap(0, Relaxed),
        }
    }
}

/// FNV-1a: the series are a handful of short ids from the routing table, not attacker-chosen
/// keys in bulk (a new cell needs an authenticated key), so a fast hash is safe here and keeps
/// the lookup to tens of nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// This edge's usage since the last drain.
#[derive(Debug, Default)]
pub struct Ledger {
    cells: RwLock<HashMap<Series, Arc<Cell>, BuildHasherDefault<Fnv>>>,
}

impl Ledger {
    /// Adds one request's counts to `series`.
    pub fn record(&self, series: Series, counts: &Counts) {
        {
            let cells = self.cells.read().unwrap_or_else(|e| e.into_inner());
            if let Some(cell) = cells.get(&series) {
                cell.add(counts);
                return;
            }
        }
        let mut cells = self.cells.write().unwrap_or_else(|e| e.into_inner());
        cells.entry(series).or_default().add(counts);
    }

    /// Takes everything counted so far (non-zero series only); forgets cells of minutes before
    /// the one preceding `now_ms`'s.
    pub fn drain(&self, now_ms: u64) -> Vec<(Series, Counts)> {
        let current = now_ms - now_ms % 60_000;
        let mut cells = self.cells.write().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        cells.retain(|series, cell| {
            let counts = cell.take();
            if counts != Counts::default() {
                out.push((series.clone(), counts));
            }
            series.minute_ms + 60_000 >= current
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(key: &str, minute_ms: u64) -> Series {
        Series {
            key: key.into(),
            model: "m".into(),
            deployment: "e/m".into(),
            minute_ms,
        }
    }

    fn one(input: u64) -> Counts {
        Counts {
            requests: 1,
            input_tokens: input,
            ..Counts::default()
        }
    }

    #[test]
    fn drains_what_was_recorded_once_and_forgets_old_minutes() {
        let ledger = Ledger::default();
        ledger.record(series("a", 0), &one(3));
        ledger.record(series("a", 0), &one(4));
        ledger.record(series("b", 60_000), &one(5));
        let mut drained = ledger.drain(60_500);
        drained.sort_by(|x, y| x.0.key.cmp(&y.0.key));
        assert_eq!(drained.len(), 2);
        assert_eq!((drained[0].1.requests, drained[0].1.input_tokens), (2, 7));
        assert_eq!(drained[1].1.input_tokens, 5);
        assert!(ledger.drain(61_000).is_empty(), "nothing twice");
        // Two minutes on, both cells are gone; a late record starts a fresh one.
        ledger.drain(180_000);
        assert_eq!(ledger.cells.read().unwrap().len(), 0);
    }

    #[test]
    fn concurrent_records_all_count() {
        let ledger = Arc::new(Ledger::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ledger = ledger.clone();
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        ledger.record(series("a", 0), &one(1));
                    }
                })
            })
            .collect();
        let mut total = 0;
        for _ in 0..10 {
            total += ledger.drain(0).iter().map(|(_, c)| c.requests).sum::<u64>();
        }
        for t in threads {
            t.join().unwrap();
        }
        total += ledger.drain(0).iter().map(|(_, c)| c.requests).sum::<u64>();
        assert_eq!(total, 4_000);
    }
}
