//! Usage in the cluster state: who used which model through which deployment, and what it cost.
//!
//! Edges aggregate per (client key, model, deployment, minute) and report batches; each batch is
//! one command. Applying it adds every row to its minute, hour and day bucket at once, so the
//! rollups are always current and compaction only has to forget: minutes older than
//! [`Retention::minutes_ms`], hours older than [`Retention::hours_ms`], days older than
//! [`Retention::days_ms`]. A batch number already applied for an edge is skipped, so a batch an
//! edge retries after a lost answer is counted once.
//!
//! Pure: time and retention arrive in the command, like every other state change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 86_400_000;

/// What was counted for one series in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Requests.
    pub requests: u64,
    /// Requests answered with status 400 or more.
    pub errors: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Sum of request latencies, ms.
    pub latency_ms_sum: u64,
    /// Cost in billionths of a US dollar.
    pub cost_nanos: u64,
}

impl Totals {
    /// Adds `other` (saturating: a corrupt report cannot wrap a total around).
    pub fn add(&mut self, other: &Totals) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(other.latency_ms_sum);
        self.cost_nanos = self.cost_nanos.saturating_add(other.cost_nanos);
    }

    /// Cost in US dollars.
    pub fn cost_usd(&self) -> f64 {
        self.cost_nanos as f64 / 1e9
    }
}

/// One series (client key, model, deployment) in a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Client key id (`-` without keys, `bootstrap` for the bootstrap key).
    pub key: String,
    /// Public model name.
    pub model: String,
    /// `<endpoint>/<upstream model>`; empty when nothing served the request.
    #[serde(default)]
    pub deployment: String,
    /// What was counted.
    #[serde(flatten)]
    pub totals: Totals,
}

impl Row {
    fn series(&self) -> (&str, &str, &str) {
        (&self.key, &self.model, &self.deployment)
    }
}

/// One minute of one series, as an edge reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteRow {
    /// Start of the minute, ms since the Unix epoch.
    pub minute_ms: u64,
    /// The series and its totals.
    #[serde(flatten)]
    pub row: Row,
}

/// How long each granularity is kept, in ms; 0 keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Minute buckets. Default 2 hours.
    pub minutes_ms: u64,
    /// Hour buckets. Default 7 days.
    pub hours_ms: u64,
    /// Day buckets. Default 400 days.
    pub days_ms: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            minutes_ms: 2 * HOUR_MS,
            hours_ms: 7 * DAY_MS,
            days_ms: 400 * DAY_MS,
        }
    }
}

/// A bucket size usage can be read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Granularity {
    /// Bucket length, ms.
    pub fn ms(self) -> u64 {
        match self {
            Self::Minute => MINUTE_MS,
            Self::Hour => HOUR_MS,
            Self::Day => DAY_MS,
        }
    }
}

/// Buckets by start time (ms since the Unix epoch), each a sorted list of series.
type Buckets = BTreeMap<u64, Vec<Row>>;

/// Every edge's reported usage, at three granularities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageBook {
    minutes: Buckets,
    hours: Buckets,
    days: Buckets,
    /// Edge process → (the last batch number applied from it, when).
    batches: BTreeMap<String, (u64, u64)>,
}

/// An edge process silent this long is forgotten (its batch numbers with it).
const FORGET_EDGE_MS: u64 = DAY_MS;

impl UsageBook {
    /// Applies one batch from `edge`; false when it was applied before (or is empty).
    pub fn record(
        &mut self,
        edge: &str,
        batch: u64,
        rows: &[MinuteRow],
        keep: Retention,
        at_ms: u64,
    ) -> bool {
        if self
            .batches
            .get(edge)
            .is_some_and(|(last, _)| *last >= batch)
        {
            return false;
        }
        self.batches.insert(edge.to_string(), (batch, at_ms));
        for r in rows {
            for (buckets, g) in [
                (&mut self.minutes, Granularity::Minute),
                (&mut self.hours, Granularity::Hour),
                (&mut self.days, Granularity::Day),
            ] {
                let start = r.minute_ms - r.minute_ms % g.ms();
                add(buckets.entry(start).or_default(), &r.row);
            }
        }
        self.compact(keep, at_ms);
        !rows.is_empty()
    }

    /// Forgets buckets that ended longer ago than `keep` allows.
    fn compact(&mut self, keep: Retention, at_ms: u64) {
        self.batches
            .retain(|_, (_, seen)| *seen + FORGET_EDGE_MS > at_ms);
        for (buckets, g, keep_ms) in [
            (&mut self.minutes, Granularity::Minute, keep.minutes_ms),
            (&mut self.hours, Granularity::Hour, keep.hours_ms),
            (&mut self.days, Granularity::Day, keep.days_ms),
        ] {
            if keep_ms == 0 {
                continue;
            }
            let oldest = at_ms.saturating_sub(keep_ms);
            // Keep every bucket that ends after `oldest`.
            *buckets = buckets.split_off(&oldest.saturating_sub(g.ms() - 1));
        }
    }

    /// The finest granularity that still holds all of `from_ms..`, no finer than `at_least`.
    pub fn finest_holding(&self, from_ms: u64, at_least: Granularity) -> Granularity {
        let holds = |buckets: &Buckets, g: Granularity| {
            buckets
                .keys()
                .next()
                .is_some_and(|first| *first <= from_ms - from_ms % g.ms())
        };
        match at_least {
            Granularity::Minute if holds(&self.minutes, Granularity::Minute) => Granularity::Minute,
            Granularity::Minute | Granularity::Hour if holds(&self.hours, Granularity::Hour) => {
                Granularity::Hour
            }
            _ => Granularity::Day,
        }
    }

    /// Every row of the buckets of `g` that overlap `from_ms..to_ms`, with its bucket start.
    pub fn rows(
        &self,
        g: Granularity,
        from_ms: u64,
        to_ms: u64,
    ) -> impl Iterator<Item = (u64, &Row)> + '_ {
        let buckets = match g {
            Granularity::Minute => &self.minutes,
            Granularity::Hour => &self.hours,
            Granularity::Day => &self.days,
        };
        let first = from_ms - from_ms % g.ms();
        buckets
            .range(first..to_ms.max(first))
            .flat_map(|(start, rows)| rows.iter().map(move |r| (*start, r)))
    }

    /// What `key` spent in the UTC day and the UTC calendar month holding `at_ms`, in
    /// billionths of a US dollar.
    pub fn spend(&self, key: &str, at_ms: u64) -> (u64, u64) {
        let today = at_ms - at_ms % DAY_MS;
        let month = month_start_ms(at_ms);
        let mut spent = (0u64, 0u64);
        for (start, row) in self.rows(Granularity::Day, month, at_ms + 1) {
            if row.key != key {
                continue;
            }
            if start == today {
                spent.0 = spent.0.saturating_add(row.totals.cost_nanos);
            }
            spent.1 = spent.1.saturating_add(row.totals.cost_nanos);
        }
        spent
    }
}

/// Adds `row` to its series in a sorted bucket.
fn add(bucket: &mut Vec<Row>, row: &Row) {
    match bucket.binary_search_by(|r| r.series().cmp(&row.series())) {
        Ok(i) => bucket[i].totals.add(&row.totals),
        Err(i) => bucket.insert(i, row.clone()),
    }
}

/// Start of the UTC calendar month holding `at_ms`, ms since the Unix epoch.
pub fn month_start_ms(at_ms: u64) -> u64 {
    let days = at_ms / DAY_MS;
    let (_, _, day) = civil_from_days(days);
    (days - (day - 1)) * DAY_MS
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Howard Hinnant's days-to-civil, for days on or after the epoch.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(minute_ms: u64, key: &str, input: u64, cost: u64) -> MinuteRow {
        MinuteRow {
            minute_ms,
            row: Row {
                key: key.into(),
                model: "m".into(),
                deployment: "e/m".into(),
                totals: Totals {
                    requests: 1,
                    input_tokens: input,
                    cost_nanos: cost,
                    ..Totals::default()
                },
            },
        }
    }

    fn sum(book: &UsageBook, g: Granularity, from: u64, to: u64, key: &str) -> Totals {
        let mut t = Totals::default();
        for (_, r) in book.rows(g, from, to).filter(|(_, r)| r.key == key) {
            t.add(&r.totals);
        }
        t
    }

    #[test]
    fn a_batch_lands_in_every_granularity_once() {
        let mut book = UsageBook::default();
        let keep = Retention::default();
        let t0 = 1_800_000_000_000 - 1_800_000_000_000 % DAY_MS;
        let rows = [row(t0, "a", 10, 5), row(t0 + MINUTE_MS, "a", 20, 5)];
        assert!(book.record("edge-1", 7, &rows, keep, t0 + 2 * MINUTE_MS));
        // The same batch again (a retry after a lost answer), and an older one: skipped.
        assert!(!book.record("edge-1", 7, &rows, keep, t0 + 2 * MINUTE_MS));
        assert!(!book.record("edge-1", 6, &rows, keep, t0 + 2 * MINUTE_MS));
        // Another edge's batch 1 counts.
        assert!(book.record("edge-2", 1, &rows[..1], keep, t0 + 2 * MINUTE_MS));
        for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
            let t = sum(&book, g, t0, t0 + DAY_MS, "a");
            assert_eq!(
                (t.requests, t.input_tokens, t.cost_nanos),
                (3, 40, 15),
                "{g:?}"
            );
        }
        assert_eq!(
            sum(
                &book,
                Granularity::Minute,
                t0 + MINUTE_MS,
                t0 + 2 * MINUTE_MS,
                "a"
            )
            .input_tokens,
            20
        );
        assert_eq!(book.spend("a", t0 + 5 * MINUTE_MS), (15, 15));
        assert_eq!(book.spend("b", t0 + 5 * MINUTE_MS), (0, 0));
    }

    #[test]
    fn compaction_forgets_minutes_first_and_keeps_the_rollups() {
        let mut book = UsageBook::default();
        let keep = Retention {
            minutes_ms: 10 * MINUTE_MS,
            hours_ms: 2 * HOUR_MS,
            days_ms: 0,
        };
        let t0 = 1_800_000_000_000 - 1_800_000_000_000 % DAY_MS;
        book.record("e", 1, &[row(t0, "a", 1, 0)], keep, t0);
        let later = t0 + 3 * HOUR_MS;
        book.record("e", 2, &[row(later, "a", 2, 0)], keep, later);
        assert_eq!(book.minutes.len(), 1, "the old minute is gone");
        assert_eq!(book.hours.len(), 1, "the old hour is gone");
        assert_eq!(
            sum(&book, Granularity::Day, t0, later + 1, "a").input_tokens,
            3
        );
        assert_eq!(
            book.finest_holding(t0, Granularity::Minute),
            Granularity::Day
        );
        assert_eq!(
            book.finest_holding(later, Granularity::Minute),
            Granularity::Minute
        );
        assert_eq!(
            book.finest_holding(later, Granularity::Hour),
            Granularity::Hour
        );
    }

    #[test]
    fn calendar_months_start_on_the_first() {
        // (day count since the epoch) → (year, month, day)
        let cases = [
            (0, (1970, 1, 1)),
            (59, (1970, 3, 1)),
            (11_016, (2000, 2, 29)),
            (20_791, (2026, 12, 4)),
        ];
        for (days, want) in cases {
            assert_eq!(civil_from_days(days), want, "day {days}");
        }
        let dec4 = 20_791 * DAY_MS + 5_000;
        assert_eq!(month_start_ms(dec4), (20_791 - 3) * DAY_MS);
    }
}
