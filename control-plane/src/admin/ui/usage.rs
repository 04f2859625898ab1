//! The usage answers the dashboard reads (`GET /api/v1/usage`), and the time buckets its charts
//! draw from them.
//!
//! The types are lenient on purpose: a field the API does not send reads as zero, so the pages
//! render whatever the answering voter knows. A missing route is [`Usage::Missing`], shown as
//! "no usage recorded"; no number is ever made up.

use serde::Deserialize;

/// Counters summed over a group or bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Requests answered.
    pub requests: u64,
    /// Requests that ended in an error.
    pub errors: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Sum of request latencies, ms.
    pub latency_ms_sum: u64,
}

impl Counters {
    /// Mean latency in ms; 0 without requests.
    pub fn mean_latency_ms(&self) -> u64 {
        self.latency_ms_sum.checked_div(self.requests).unwrap_or(0)
    }

    /// Input plus output tokens.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// One row of a usage answer: a group (key, model, deployment) or a time bucket.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct UsageRow {
    /// The group's name (key id, model, deployment) or the bucket's label.
    pub group: String,
    /// Start of the bucket for `hour`/`day` groupings, Unix ms.
    pub bucket_start_ms: Option<u64>,
    /// Its counters.
    #[serde(flatten)]
    pub counters: Counters,
}

/// `GET /api/v1/usage`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct UsageReport {
    /// Start of the range, Unix ms.
    pub from_ms: u64,
    /// End of the range, Unix ms.
    pub to_ms: u64,
    /// `key`, `model`, `deployment`, `hour` or `day`.
    pub group_by: String,
    /// One row per group.
    pub rows: Vec<UsageRow>,
    /// Sum over all rows.
    pub totals: Counters,
}

/// What a usage read found.
#[derive(Debug, Clone, PartialEq)]
pub enum Usage {
    /// The API has no usage route (or answered something else).
    Missing,
    /// Its answer.
    Report(UsageReport),
}

impl Usage {
    /// The report when there is one with at least one request.
    pub fn recorded(&self) -> Option<&UsageReport> {
        match self {
            Usage::Report(r) if r.totals.requests > 0 || !r.rows.is_empty() => Some(r),
            _ => None,
        }
    }

    /// The counters of the row named `group`, when recorded.
    pub fn of(&self, group: &str) -> Option<Counters> {
        self.recorded()?
            .rows
            .iter()
            .find(|r| r.group == group)
            .map(|r| r.counters)
    }
}

/// A time range a chart covers and the bucket it groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Its name in links: `24h`, `7d`, `30d`.
    pub name: &'static str,
    /// Bucket length, ms.
    pub bucket_ms: u64,
    /// Number of buckets.
    pub buckets: u64,
}

impl Range {
    /// The ranges the usage page offers, first the default.
    pub const ALL: [Range; 3] = [
        Range {
            name: "24h",
            bucket_ms: HOUR_MS,
            buckets: 24,
        },
        Range {
            name: "7d",
            bucket_ms: DAY_MS,
            buckets: 7,
        },
        Range {
            name: "30d",
            bucket_ms: DAY_MS,
            buckets: 30,
        },
    ];

    /// The range called `name`, else the default.
    pub fn named(name: Option<&str>) -> Range {
        Range::ALL
            .into_iter()
            .find(|r| Some(r.name) == name)
            .unwrap_or(Range::ALL[0])
    }

    /// `hour` or `day`, as the API's `group_by` names them.
    pub fn group_by(&self) -> &'static str {
        if self.bucket_ms == HOUR_MS {
            "hour"
        } else {
            "day"
        }
    }

    /// The bucket starts this range covers, oldest first, ending with the bucket holding `now_ms`.
    pub fn starts(&self, now_ms: u64) -> Vec<u64> {
        let last = now_ms - now_ms % self.bucket_ms;
        (0..self.buckets)
            .rev()
            .map(|i| last.saturating_sub(i * self.bucket_ms))
            .collect()
    }
}

/// One hour, ms.
pub const HOUR_MS: u64 = 3_600_000;
/// One day, ms.
pub const DAY_MS: u64 = 86_400_000;

/// The counters of each bucket in `starts`, zero where the report has no row. Rows are matched
/// by the bucket holding their `bucket_start_ms`, so an API with finer buckets still adds up.
pub fn per_bucket(report: &UsageReport, starts: &[u64], bucket_ms: u64) -> Vec<Counters> {
    let mut out = vec![Counters::default(); starts.len()];
    for row in &report.rows {
        let Some(at) = row.bucket_start_ms else {
            continue;
        };
        let Some(slot) = starts
            .iter()
            .position(|s| (*s..s.saturating_add(bucket_ms)).contains(&at))
        else {
            continue;
        };
        let c = &mut out[slot];
        let r = row.counters;
        c.requests += r.requests;
        c.errors += r.errors;
        c.input_tokens += r.input_tokens;
        c.output_tokens += r.output_tokens;
        c.cost_usd += r.cost_usd;
        c.latency_ms_sum += r.latency_ms_sum;
    }
    out
}
