//! Money budgets of client keys, spent from the same cluster-wide leases as token limits.
//!
//! A budget is a windowed limit counted in billionths of a US dollar: per UTC day (the lease
//! book's day windows), and per UTC calendar month (a ledger key naming the month, so each month
//! starts fresh whatever its length). Admission reserves the request's most expensive possible
//! cost — its token estimate at the dearest price among the model's deployments — and the
//! request's usage ticket settles the reservation with the real cost when the answer ends (an
//! unanswered request is refunded). Requests to free (local) models reserve nothing and pass even
//! when the budget is spent.
//!
//! Worst-case overshoot: the leases never hand out more than the budget, and a reservation is
//! never smaller than the real cost unless the answer used more tokens than estimated (no
//! `max_tokens`: the estimate then adds [`DEFAULT_COMPLETION_TOKENS`]). So a key overshoots by at
//! most the sum, over its requests, of (real − estimated cost); with `max_tokens` set, by
//! nothing. Without a reachable leader each edge spends its even share of what is left.

use std::time::Duration;

use super::upstream::TokenCharge;
use super::{Limiter, WindowLimit};
use crate::auth::ClientKey;
use crate::error::ApiError;

/// Completion tokens assumed when a request sets no `max_tokens`.
pub const DEFAULT_COMPLETION_TOKENS: u64 = 256;

const DAY_MS: u64 = 86_400_000;
/// The window of a month's ledger key: long enough that a month never crosses it (the key
/// changes every month instead).
const MONTH_WINDOW: Duration = Duration::from_secs(100 * 365 * 86_400);

/// US dollars as billionths of a dollar (negative and non-finite are 0).
pub fn usd_to_nanos(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e9).round() as u64
    } else {
        0
    }
}

/// Reserves `cost_nanos` of `key`'s day and month budgets. Returns the reservations, to settle
/// with the real cost. Nothing is reserved when the key has no budget or the cost is 0.
pub async fn admit(
    limiter: &Limiter,
    key: &ClientKey,
    cost_nanos: u64,
    now_ms: u64,
) -> Result<Vec<TokenCharge>, ApiError> {
    let mut charges = Vec::new();
    if cost_nanos == 0 {
        return Ok(charges);
    }
    let (_, month_end, month_name) = month_of(now_ms);
    let budgets = [
        (
            key.budget_day_nanos,
            WindowLimit::per_day(format!("key:{}:usd_day", key.id), key.budget_day_nanos),
            "day",
            (now_ms - now_ms % DAY_MS) + DAY_MS,
        ),
        (
            key.budget_month_nanos,
            WindowLimit {
                key: format!("key:{}:usd_month:{month_name}", key.id),
                limit: key.budget_month_nanos,
                window: MONTH_WINDOW,
            },
            "month",
            month_end,
        ),
    ];
    for (budget, limit, period, resets_ms) in budgets {
        if budget == 0 {
            continue;
        }
        // A request dearer than the whole budget could never pass; charge it the budget.
        let cost = cost_nanos.min(budget);
        if limiter.admit(&limit, cost).await.is_err() {
            for charge in charges {
                TokenCharge::settle(charge, 0);
            }
            return Err(ApiError::KeyBudgetExhausted {
                budget_usd: budget as f64 / 1e9,
                period,
                retry_after_ms: resets_ms.saturating_sub(now_ms).max(1),
            });
        }
        charges.push(TokenCharge::new(limiter.clone(), limit, cost));
    }
    Ok(charges)
}

/// (start ms, end ms, `YYYY-MM`) of the UTC calendar month holding `now_ms`.
pub fn month_of(now_ms: u64) -> (u64, u64, String) {
    let days = now_ms / DAY_MS;
    let (year, month, day) = civil_from_days(days);
    let start = (days - (day - 1)) * DAY_MS;
    let len = days_in_month(year, month);
    (start, start + len * DAY_MS, format!("{year:04}-{month:02}"))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's days-to-civil).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_their_calendar_length() {
        let day = |d: u64| d * DAY_MS + 1_234;
        // (day count, start day, length in days, name)
        let cases = [
            (20_791, 20_788, 31, "2026-12"),
            (11_016, 10_988, 29, "2000-02"),
            (20_512, 20_485, 28, "2026-02"),
            (0, 0, 31, "1970-01"),
        ];
        for (d, start, len, name) in cases {
            let (s, e, n) = month_of(day(d));
            assert_eq!(
                (s, e, n.as_str()),
                (start * DAY_MS, (start + len) * DAY_MS, name)
            );
        }
        assert_eq!(usd_to_nanos(1.5), 1_500_000_000);
        assert_eq!(usd_to_nanos(-1.0), 0);
        assert_eq!(usd_to_nanos(f64::NAN), 0);
    }
}
