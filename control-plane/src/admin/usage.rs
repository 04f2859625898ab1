//! `GET /api/v1/usage`: usage and spend from the replicated state, filtered and grouped.
//!
//! `from`/`to` are Unix ms or RFC 3339 (`2026-12-04T10:00:00Z`); the default range is the last
//! 24 hours. Buckets are read at the finest granularity still kept for `from` (minutes, then
//! hours, then days), and a bucket counts when it starts in `[from rounded down, to)`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::AdminState;
use crate::error::Error;
use crate::service::agent::now_ms;
use crate::state::UsageBook;
use crate::state::usage::{Granularity, Totals, civil_from_days};

/// The query string of `GET /api/v1/usage`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Only this client key id.
    pub key: Option<String>,
    /// Only this public model name.
    pub model: Option<String>,
    /// Only this deployment (`<endpoint>/<upstream model>`).
    pub deployment: Option<String>,
    /// Start, Unix ms or RFC 3339; default 24 hours before `to`.
    pub from: Option<String>,
    /// End (exclusive), Unix ms or RFC 3339; default now.
    pub to: Option<String>,
    /// `key`, `model`, `deployment`, `hour` or `day`; default `key`.
    pub group_by: Option<String>,
}

/// Totals of one group, or of everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TotalsView {
    /// Requests.
    pub requests: u64,
    /// Requests answered with status 400 or more.
    pub errors: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost, US dollars.
    pub cost_usd: f64,
    /// Sum of request latencies, ms (divide by `requests` for the mean).
    pub latency_ms_sum: u64,
}

impl From<Totals> for TotalsView {
    fn from(t: Totals) -> Self {
        Self {
            requests: t.requests,
            errors: t.errors,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cost_usd: t.cost_usd(),
            latency_ms_sum: t.latency_ms_sum,
        }
    }
}

/// One group of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRowView {
    /// Key id, model, deployment, or the RFC 3339 start of the hour or day.
    pub group: String,
    /// Start of the bucket for `hour`/`day` groups, Unix ms; null otherwise.
    pub bucket_start_ms: Option<u64>,
    /// The group's totals.
    #[serde(flatten)]
    pub totals: TotalsView,
}

/// The answer of `GET /api/v1/usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageView {
    /// Start of the range, Unix ms.
    pub from_ms: u64,
    /// End of the range (exclusive), Unix ms.
    pub to_ms: u64,
    /// How rows are grouped.
    pub group_by: String,
    /// Groups, by group name (time groups in time order).
    pub rows: Vec<UsageRowView>,
    /// Everything in the range that matched the filters.
    pub totals: TotalsView,
}

/// What rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupBy {
    Key,
    Model,
    Deployment,
    Hour,
    Day,
}

impl GroupBy {
    fn parse(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "key" => Self::Key,
            "model" => Self::Model,
            "deployment" => Self::Deployment,
            "hour" => Self::Hour,
            "day" => Self::Day,
            other => {
                return Err(Error::BadRequest(format!(
                    "group_by: `{other}` is not one of key, model, deployment, hour, day"
                )));
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Model => "model",
            Self::Deployment => "deployment",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// `GET /api/v1/usage`.
pub async fn get_usage(
    State(s): State<AdminState>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageView>, Error> {
    let state = s.consensus.state().await;
    query(&state.usage, &q, now_ms()).map(Json)
}

/// Answers `q` from `book` at `now_ms`. Pure.
pub fn query(book: &UsageBook, q: &UsageQuery, now_ms: u64) -> Result<UsageView, Error> {
    let to_ms = match &q.to {
        Some(t) => parse_time("to", t)?,
        None => now_ms,
    };
    let from_ms = match &q.from {
        Some(t) => parse_time("from", t)?,
        None => to_ms.saturating_sub(86_400_000),
    };
    if from_ms > to_ms {
        return Err(Error::BadRequest("from: must not be after `to`".into()));
    }
    let group_by = GroupBy::parse(q.group_by.as_deref().unwrap_or("key"))?;
    let granularity = match group_by {
        GroupBy::Day => Granularity::Day,
        GroupBy::Hour => book.finest_holding(from_ms, Granularity::Hour),
        _ => book.finest_holding(from_ms, Granularity::Minute),
    };
    let mut groups: BTreeMap<(Option<u64>, String), Totals> = BTreeMap::new();
    let mut totals = Totals::default();
    let wanted =
        |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
    for (start, row) in book.rows(granularity, from_ms, to_ms) {
        if !(wanted(&q.key, &row.key)
            && wanted(&q.model, &row.model)
            && wanted(&q.deployment, &row.deployment))
        {
            continue;
        }
        let group = match group_by {
            GroupBy::Key => (None, row.key.clone()),
            GroupBy::Model => (None, row.model.clone()),
            GroupBy::Deployment => (None, row.deployment.clone()),
            GroupBy::Hour | GroupBy::Day => {
                let size = if group_by == GroupBy::Hour && granularity != Granularity::Day {
                    Granularity::Hour.ms()
                } else {
                    Granularity::Day.ms()
                };
                let bucket = start - start % size;
                (Some(bucket), format_time(bucket))
            }
        };
        groups.entry(group).or_default().add(&row.totals);
        totals.add(&row.totals);
    }
    Ok(UsageView {
        from_ms,
        to_ms,
        group_by: group_by.as_str().to_string(),
        rows: groups
            .into_iter()
            .map(|((bucket_start_ms, group), t)| UsageRowView {
                group,
                bucket_start_ms,
                totals: t.into(),
            })
            .collect(),
        totals: totals.into(),
    })
}

/// Unix ms, or RFC 3339 (`2026-12-04T10:00:00Z`, `2026-12-04T10:00:00.5+01:00`).
pub fn parse_time(field: &str, s: &str) -> Result<u64, Error> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    rfc3339_ms(s).ok_or_else(|| {
        Error::BadRequest(format!(
            "{field}: `{s}` is neither Unix milliseconds nor an RFC 3339 time like 2026-12-04T10:00:00Z"
        ))
    })
}

fn rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse::<u64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_s: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = rest.get(1..)?;
            if r.len() != 5 || r.as_bytes()[2] != b':' {
                return None;
            }
            let h: i64 = r.get(0..2)?.parse().ok()?;
            let m: i64 = r.get(3..5)?.parse().ok()?;
            sign * (h * 3_600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day)?;
    let local = days * 86_400 + hour * 3_600 + minute * 60 + second;
    let utc = i64::try_from(local).ok()? - offset_s;
    u64::try_from(utc).ok().map(|s| s * 1_000 + millis)
}

/// Days since 1970-01-01 of a date on or after it (Howard Hinnant's days-from-civil).
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// `2026-12-04T10:00:00Z` for a Unix ms (seconds precision).
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1_000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let s = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        s / 3_600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::usage::{MinuteRow, Retention, Row};

    const T0: u64 = 1_796_342_400_000; // 2026-12-04T00:00:00Z

    fn row(minute_ms: u64, key: &str, model: &str, input: u64) -> MinuteRow {
        MinuteRow {
            minute_ms,
            row: Row {
                key: key.into(),
                model: model.into(),
                deployment: format!("local/{model}"),
                totals: Totals {
                    requests: 1,
                    input_tokens: input,
                    cost_nanos: input * 1_000,
                    ..Totals::default()
                },
            },
        }
    }

    fn book() -> UsageBook {
        let mut book = UsageBook::default();
        let rows = [
            row(T0, "a", "m1", 10),
            row(T0 + 60_000, "b", "m1", 20),
            row(T0 + 3_600_000, "a", "m2", 30),
        ];
        book.record("e", 1, &rows, Retention::default(), T0 + 3_700_000);
        book
    }

    fn ask(group_by: &str) -> UsageQuery {
        UsageQuery {
            from: Some(T0.to_string()),
            to: Some("2026-12-04T02:00:00Z".into()),
            group_by: Some(group_by.into()),
            ..UsageQuery::default()
        }
    }

    #[test]
    fn groups_and_totals() {
        let book = book();
        // (group_by, expected (group, bucket, input tokens))
        type Want<'a> = Vec<(&'a str, Option<u64>, u64)>;
        let cases: [(&str, Want); 4] = [
            ("key", vec![("a", None, 40), ("b", None, 20)]),
            ("model", vec![("m1", None, 30), ("m2", None, 30)]),
            (
                "hour",
                vec![
                    ("2026-12-04T00:00:00Z", Some(T0), 30),
                    ("2026-12-04T01:00:00Z", Some(T0 + 3_600_000), 30),
                ],
            ),
            ("day", vec![("2026-12-04T00:00:00Z", Some(T0), 60)]),
        ];
        for (group_by, want) in cases {
            let view = query(&book, &ask(group_by), T0).unwrap();
            let got: Vec<_> = view
                .rows
                .iter()
                .map(|r| (r.group.as_str(), r.bucket_start_ms, r.totals.input_tokens))
                .collect();
            assert_eq!(got, want, "{group_by}");
            assert_eq!(view.totals.input_tokens, 60);
            assert_eq!(view.totals.requests, 3);
            assert!((view.totals.cost_usd - 60e-6).abs() < 1e-12);
            assert_eq!(view.to_ms, T0 + 7_200_000);
        }
        let only_a = UsageQuery {
            key: Some("a".into()),
            ..ask("model")
        };
        let view = query(&book, &only_a, T0).unwrap();
        assert_eq!(view.totals.input_tokens, 40);
    }

    #[test]
    fn bad_queries_name_the_field() {
        let book = book();
        for (q, field) in [
            (
                UsageQuery {
                    group_by: Some("week".into()),
                    ..UsageQuery::default()
                },
                "group_by",
            ),
            (
                UsageQuery {
                    from: Some("yesterday".into()),
                    ..UsageQuery::default()
                },
                "from",
            ),
            (
                UsageQuery {
                    from: Some("20".into()),
                    to: Some("10".into()),
                    ..UsageQuery::default()
                },
                "from",
            ),
        ] {
            let err = query(&book, &q, T0).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn rfc3339_times() {
        let cases = [
            ("2026-12-04T00:00:00Z", Some(T0)),
            ("2026-12-04T01:00:00+01:00", Some(T0)),
            ("2026-12-04T00:00:00.25Z", Some(T0 + 250)),
            ("2026-12-03T23:30:00-00:30", Some(T0)),
            ("2026-13-04T00:00:00Z", None),
            ("2026-12-04", None),
        ];
        for (s, want) in cases {
            assert_eq!(rfc3339_ms(s), want, "{s}");
        }
        assert_eq!(format_time(T0 + 3_661_000), "2026-12-04T01:01:01Z");
    }
}
