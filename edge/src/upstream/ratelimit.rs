//! Reading an upstream's rate-limit headers: how long a 429 (or an exhausted budget) should
//! cool a target down. `Retry-After` (seconds or HTTP date), `retry-after-ms`, then the
//! `x-ratelimit-reset-requests/-tokens` Go durations (`6s`, `1m26.4s`, `185ms`), then
//! Anthropic's `anthropic-ratelimit-*-reset` RFC 3339 instants.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{AsHeaderName, HeaderName};

/// The wait an upstream asked for on a 429, if its headers say: `retry-after-ms`, then
/// `retry-after` (seconds, fractional allowed, or an HTTP date relative to `now`), then the
/// larger of the `x-ratelimit-reset-*` durations whose remaining count is zero (or, when
/// none is zero, the shorter reset).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms > 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1_000.0));
    }
    if let Some(value) = header_str(headers, "retry-after") {
        let value = value.trim();
        if let Ok(secs) = value.parse::<f64>() {
            if secs.is_finite() && secs > 0.0 {
                return Some(Duration::from_secs_f64(secs));
            }
        } else if let Ok(at) = httpdate::parse_http_date(value) {
            return at.duration_since(now).ok().filter(|d| !d.is_zero());
        }
    }
    reset_wait(headers, false).or_else(|| anthropic_wait(headers, now, false))
}

/// When the upstream reports `x-ratelimit-remaining-requests: 0` (or `-tokens: 0`) on any
/// answer, the wait until that budget resets (default one second when no reset is given).
/// Runs on every answer: the header names are built once, so a lookup only hashes.
pub fn exhausted(headers: &HeaderMap) -> Option<Duration> {
    if !OPENAI_BUDGETS.iter().any(|b| b.is_exhausted(headers)) {
        return anthropic_exhausted(headers, SystemTime::now());
    }
    Some(reset_wait(headers, true).unwrap_or(Duration::from_secs(1)))
}

/// One budget's pair of headers: what remains of it, and when it resets.
struct Budget {
    remaining: HeaderName,
    reset: HeaderName,
}

impl Budget {
    /// Whether its remaining count is zero.
    fn is_exhausted(&self, headers: &HeaderMap) -> bool {
        header_str(headers, &self.remaining).is_some_and(|v| v.trim() == "0")
    }
}

/// OpenAI-style budgets (`x-ratelimit-{remaining,reset}-{requests,tokens}`), resets as Go
/// durations.
static OPENAI_BUDGETS: [Budget; 2] = [
    Budget {
        remaining: HeaderName::from_static("x-ratelimit-remaining-requests"),
        reset: HeaderName::from_static("x-ratelimit-reset-requests"),
    },
    Budget {
        remaining: HeaderName::from_static("x-ratelimit-remaining-tokens"),
        reset: HeaderName::from_static("x-ratelimit-reset-tokens"),
    },
];

/// Anthropic's budgets (`anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*`),
/// resets as RFC 3339 instants.
static ANTHROPIC_BUDGETS: [Budget; 4] = [
    Budget {
        remaining: HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
        reset: HeaderName::from_static("anthropic-ratelimit-requests-reset"),
    },
    Budget {
        remaining: HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
        reset: HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
    },
    Budget {
        remaining: HeaderName::from_static("anthropic-ratelimit-input-tokens-remaining"),
        reset: HeaderName::from_static("anthropic-ratelimit-input-tokens-reset"),
    },
    Budget {
        remaining: HeaderName::from_static("anthropic-ratelimit-output-tokens-remaining"),
        reset: HeaderName::from_static("anthropic-ratelimit-output-tokens-reset"),
    },
];

/// [`exhausted`] for Anthropic's headers.
fn anthropic_exhausted(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let zero = ANTHROPIC_BUDGETS.iter().any(|b| b.is_exhausted(headers));
    zero.then(|| anthropic_wait(headers, now, true).unwrap_or(Duration::from_secs(1)))
}

/// The wait until Anthropic's latest exhausted reset (with `only_exhausted`), else its earliest
/// reset.
fn anthropic_wait(headers: &HeaderMap, now: SystemTime, only_exhausted: bool) -> Option<Duration> {
    longest_or_shortest(&ANTHROPIC_BUDGETS, headers, only_exhausted, |v| {
        parse_rfc3339(v)
            .and_then(|at| at.duration_since(now).ok())
            .filter(|d| !d.is_zero())
    })
}

/// Over `budgets` with a readable reset: the longest reset among the exhausted ones; without
/// `only_exhausted`, the shortest reset when none is exhausted.
fn longest_or_shortest(
    budgets: &[Budget],
    headers: &HeaderMap,
    only_exhausted: bool,
    parse_reset: impl Fn(&str) -> Option<Duration>,
) -> Option<Duration> {
    let mut exhausted_max: Option<Duration> = None;
    let mut any_min: Option<Duration> = None;
    for budget in budgets {
        let Some(reset) = header_str(headers, &budget.reset).and_then(&parse_reset) else {
            continue;
        };
        if budget.is_exhausted(headers) {
            exhausted_max = Some(exhausted_max.map_or(reset, |m| m.max(reset)));
        }
        any_min = Some(any_min.map_or(reset, |m| m.min(reset)));
    }
    if only_exhausted {
        exhausted_max
    } else {
        exhausted_max.or(any_min)
    }
}

/// Parses an RFC 3339 instant (`2026-01-02T03:04:05Z`, fractional seconds and `±hh:mm`
/// offsets allowed).
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let t = text.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = t.get(from..from + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(digits).ok()?.parse().ok())?
    };
    if t.len() < 20 || t[4] != b'-' || t[7] != b'-' || !matches!(t[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut at = 19;
    let mut nanos = 0u32;
    if t.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while t.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let frac = std::str::from_utf8(&t[start..at.min(start + 9)]).ok()?;
        nanos = format!("{frac:0<9}").parse().ok()?;
    }
    let offset = match t.get(at)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let minutes = num(at + 1, 2)? * 60 + num(at + 4, 2)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset * 60;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// The limits an upstream announces in `x-ratelimit-limit-requests` and
/// `x-ratelimit-limit-tokens` (OpenAI, Groq, Together, …): (requests, tokens). Positive whole
/// numbers only; anything else is `None`.
pub fn announced_limits(headers: &HeaderMap) -> (Option<u64>, Option<u64>) {
    static REQUESTS: [HeaderName; 2] = [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("anthropic-ratelimit-requests-limit"),
    ];
    static TOKENS: [HeaderName; 2] = [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
    ];
    let read = |names: &[HeaderName]| {
        names.iter().find_map(|name| {
            header_str(headers, name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        })
    };
    (read(&REQUESTS), read(&TOKENS))
}

/// The reset durations; with `only_exhausted`, only for budgets whose remaining count is 0.
fn reset_wait(headers: &HeaderMap, only_exhausted: bool) -> Option<Duration> {
    longest_or_shortest(&OPENAI_BUDGETS, headers, only_exhausted, parse_go_duration)
}

fn header_str(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parses a Go duration (`1h2m3.5s`, `185ms`, `12us`, `6m0s`); a bare number is seconds.
/// Non-positive or malformed values are unknown (`None`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let mut rest = text;
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // Longest unit first so `ms` is not read as `m` followed by garbage.
        let (unit, scale) = [
            ("ms", 1e-3),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ns", 1e-9),
            ("h", 3600.0),
            ("m", 60.0),
            ("s", 1.0),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))?;
        total += value * scale;
        rest = &rest[unit.len()..];
    }
    (total.is_finite() && total > 0.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn go_durations() {
        let cases = [
            ("6s", Some(6_000_000)),
            ("1m26.4s", Some(86_400_000)),
            ("185ms", Some(185_000)),
            ("12ms", Some(12_000)),
            ("6m0s", Some(360_000_000)),
            ("1h", Some(3_600_000_000)),
            ("250us", Some(250)),
            ("250µs", Some(250)),
            ("2", Some(2_000_000)),
            ("0.5", Some(500_000)),
            ("0s", None),
            ("-1", None),
            ("0", None),
            ("", None),
            ("abc", None),
            ("5x", None),
            ("m5", None),
        ];
        for (text, micros) in cases {
            assert_eq!(
                parse_go_duration(text).map(|d| d.as_micros() as u64),
                micros,
                "{text:?}"
            );
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Fri, 31 Dec 1999 23:59:00 GMT").unwrap();
        let cases: Vec<(HeaderMap, Option<u64>)> = vec![
            (headers(&[("retry-after", "7")]), Some(7_000)),
            (headers(&[("retry-after", "1.5")]), Some(1_500)),
            (
                headers(&[("retry-after", "Fri, 31 Dec 1999 23:59:59 GMT")]),
                Some(59_000),
            ),
            (
                headers(&[("retry-after", "Fri, 31 Dec 1999 23:58:59 GMT")]),
                None,
            ),
            (
                headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                Some(250),
            ),
            (headers(&[("retry-after", "0")]), None),
            (headers(&[("retry-after", "soon")]), None),
            (
                headers(&[("x-ratelimit-reset-requests", "1m26.4s")]),
                Some(86_400),
            ),
            (
                headers(&[
                    ("x-ratelimit-reset-requests", "2s"),
                    ("x-ratelimit-reset-tokens", "185ms"),
                ]),
                Some(185),
            ),
            (
                headers(&[
                    ("x-ratelimit-remaining-requests", "5"),
                    ("x-ratelimit-reset-requests", "2s"),
                    ("x-ratelimit-remaining-tokens", "0"),
                    ("x-ratelimit-reset-tokens", "6m0s"),
                ]),
                Some(360_000),
            ),
            (headers(&[("x-ratelimit-reset-requests", "-1")]), None),
            (HeaderMap::new(), None),
        ];
        for (i, (h, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                retry_after(&h, now).map(|d| d.as_millis() as u64),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn rfc3339_instants_parse() {
        let at = |secs: u64, nanos: u32| Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), at(0, 0));
        assert_eq!(parse_rfc3339("2024-02-29T12:30:45Z"), at(1_709_209_845, 0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:30:45.5Z"),
            at(1_709_209_845, 500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T14:30:45+02:00"),
            at(1_709_209_845, 0)
        );
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("soon"), None);
    }

    #[test]
    fn anthropic_headers_cool_and_announce() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_209_800);
        let mut h = HeaderMap::new();
        h.insert("anthropic-ratelimit-requests-limit", "50".parse().unwrap());
        h.insert("anthropic-ratelimit-tokens-limit", "40000".parse().unwrap());
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            "0".parse().unwrap(),
        );
        h.insert(
            "anthropic-ratelimit-requests-reset",
            "2024-02-29T12:30:45Z".parse().unwrap(),
        );
        h.insert(
            "anthropic-ratelimit-tokens-remaining",
            "100".parse().unwrap(),
        );
        h.insert(
            "anthropic-ratelimit-tokens-reset",
            "2024-02-29T12:30:10Z".parse().unwrap(),
        );
        assert_eq!(announced_limits(&h), (Some(50), Some(40_000)));
        assert_eq!(anthropic_exhausted(&h, now), Some(Duration::from_secs(45)));
        // A 429 without retry-after waits for the exhausted budget's reset.
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(45)));
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            "3".parse().unwrap(),
        );
        assert_eq!(anthropic_exhausted(&h, now), None);
    }

    #[test]
    fn announced_limits_are_read() {
        type Announced = (Option<u64>, Option<u64>);
        let cases: Vec<(HeaderMap, Announced)> = vec![
            (
                headers(&[
                    ("x-ratelimit-limit-requests", "30"),
                    ("x-ratelimit-limit-tokens", " 6000 "),
                ]),
                (Some(30), Some(6_000)),
            ),
            (
                headers(&[("x-ratelimit-limit-requests", "0")]),
                (None, None),
            ),
            (
                headers(&[
                    ("x-ratelimit-limit-requests", "-3"),
                    ("x-ratelimit-limit-tokens", "lots"),
                ]),
                (None, None),
            ),
            (HeaderMap::new(), (None, None)),
        ];
        for (i, (h, want)) in cases.into_iter().enumerate() {
            assert_eq!(announced_limits(&h), want, "case {i}");
        }
    }

    #[test]
    fn exhausted_budgets() {
        let cases: Vec<(HeaderMap, Option<u64>)> = vec![
            (headers(&[("x-ratelimit-remaining-requests", "3")]), None),
            (
                headers(&[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "12ms"),
                ]),
                Some(12),
            ),
            (
                headers(&[("x-ratelimit-remaining-tokens", "0")]),
                Some(1_000),
            ),
            (HeaderMap::new(), None),
        ];
        for (i, (h, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                exhausted(&h).map(|d| d.as_millis() as u64),
                want,
                "case {i}"
            );
        }
    }
}
