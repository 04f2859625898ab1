//! `switchyard usage`: requests, tokens and spend per key, model, deployment, hour or day.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use switchyard_control_plane::admin::usage::UsageView;

use super::admin::{AdminArgs, print_json, table};
use super::{Run, Shutdown};

/// `switchyard usage` arguments.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Group rows by `key`, `model`, `deployment`, `hour` or `day`.
    #[arg(long, default_value = "key")]
    pub group_by: String,
    /// Start of the range: a duration before now (`24h`, `30m`, `7d`), Unix ms or RFC 3339.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// End of the range (exclusive), as `--since`; default now.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this client key id.
    #[arg(long)]
    pub key: Option<String>,
    /// Only this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Admin API access.
    #[command(flatten)]
    pub admin: AdminArgs,
}

impl Run for UsageArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        show(&self, &mut std::io::stdout().lock()).await
    }
}

/// Prints usage as a table, or JSON with `--json`.
pub async fn show(args: &UsageArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let client = args.admin.client()?;
    let now = switchyard_control_plane::service::agent::now_ms();
    let mut query = vec![
        ("group_by", args.group_by.clone()),
        ("from", time_arg(&args.since, now).context("--since")?),
    ];
    if let Some(until) = &args.until {
        query.push(("to", time_arg(until, now).context("--until")?));
    }
    for (name, value) in [("key", &args.key), ("model", &args.model)] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    let view = client.usage(&query).await?;
    if args.admin.json {
        return print_json(out, &view);
    }
    render(out, &view)
}

fn render(out: &mut impl Write, view: &UsageView) -> anyhow::Result<()> {
    let mean = |sum: u64, n: u64| sum.checked_div(n).unwrap_or(0);
    let mut rows: Vec<Vec<String>> = view
        .rows
        .iter()
        .map(|r| {
            let t = &r.totals;
            vec![
                r.group.clone(),
                t.requests.to_string(),
                t.errors.to_string(),
                t.input_tokens.to_string(),
                t.output_tokens.to_string(),
                format!("{:.4}", t.cost_usd),
                mean(t.latency_ms_sum, t.requests).to_string(),
            ]
        })
        .collect();
    let t = &view.totals;
    rows.push(vec![
        "TOTAL".into(),
        t.requests.to_string(),
        t.errors.to_string(),
        t.input_tokens.to_string(),
        t.output_tokens.to_string(),
        format!("{:.4}", t.cost_usd),
        mean(t.latency_ms_sum, t.requests).to_string(),
    ]);
    let group = view.group_by.to_uppercase();
    table(
        out,
        &[
            &group,
            "REQUESTS",
            "ERRORS",
            "INPUT TOKENS",
            "OUTPUT TOKENS",
            "COST $",
            "MEAN MS",
        ],
        rows,
    )
}

/// A `--since`/`--until` value as the API takes it: `24h` becomes Unix ms that long before
/// `now_ms`; Unix ms and RFC 3339 pass through (the API checks them).
pub fn time_arg(s: &str, now_ms: u64) -> anyhow::Result<String> {
    if s.bytes().all(|b| b.is_ascii_digit()) || s.contains('T') {
        return Ok(s.to_string());
    }
    let ago = duration(s)?;
    let ms = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX);
    Ok(now_ms.saturating_sub(ms).to_string())
}

/// `90s`, `30m`, `24h`, `7d`.
fn duration(s: &str) -> anyhow::Result<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .with_context(|| format!("`{s}` is not a time like 24h, 30m, 7d, Unix ms or RFC 3339"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => anyhow::bail!("`{s}`: the unit must be s, m, h or d"),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_ms_and_rfc3339() {
        let now = 100_000_000;
        assert_eq!(time_arg("24h", now).unwrap(), "13600000");
        assert_eq!(time_arg("30m", now).unwrap(), "98200000");
        assert_eq!(time_arg("1700000000000", now).unwrap(), "1700000000000");
        assert_eq!(
            time_arg("2026-12-04T00:00:00Z", now).unwrap(),
            "2026-12-04T00:00:00Z"
        );
        assert!(time_arg("yesterday", now).is_err());
        assert!(time_arg("5w", now).is_err());
    }
}
