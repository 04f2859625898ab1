//! `switchyard bench`: a few chats per deployment through an edge (each sent to
//! `endpoint/model`, so it reaches that deployment alone), one at a time, timing the first
//! byte of the answer and the whole answer. The medians are reported to the control plane,
//! where they order the `fast` capability alias; `--no-report` only prints.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use serde_json::json;
use switchyard_control_plane::admin::aliases::LatencyReport;
use switchyard_control_plane::state::Latency;

use super::admin::{AdminArgs, print_json, table};
use super::{Run, Shutdown};

/// `switchyard bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Edge base URL the chats go through.
    #[arg(long, env = "SWITCHYARD_EDGE", default_value = "http://127.0.0.1:8080")]
    pub edge: String,
    /// Client key for the edge (`switchyard keys create`); none when the edge has no keys.
    #[arg(long, env = "SWITCHYARD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Chats per deployment.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub requests: u32,
    /// Only the deployments of this model group.
    #[arg(long)]
    pub model: Option<String>,
    /// Milliseconds one chat may take before it counts as an error.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Print only; do not report the measurements to the control plane.
    #[arg(long)]
    pub no_report: bool,
    #[command(flatten)]
    /// Admin API access (and `--json`).
    pub admin: AdminArgs,
}

/// One deployment's results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BenchRow {
    /// Endpoint id.
    pub endpoint: String,
    /// Upstream model id.
    pub model: String,
    /// Chats sent.
    pub requests: u32,
    /// Chats answered with 200.
    pub ok: u32,
    /// Time to first byte, ms: median and 95th percentile of the answered chats.
    pub ttfb_p50_ms: Option<u64>,
    /// 95th percentile time to first byte, ms.
    pub ttfb_p95_ms: Option<u64>,
    /// Total time, ms: median.
    pub total_p50_ms: Option<u64>,
    /// 95th percentile total time, ms.
    pub total_p95_ms: Option<u64>,
    /// The last failure, when a chat failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `switchyard bench --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// One row per deployment.
    pub deployments: Vec<BenchRow>,
    /// Routing-table revision after the measurements were committed; absent with
    /// `--no-report` or when nothing answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

impl Run for BenchArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        bench(&self, &mut std::io::stdout().lock())
            .await
            .map(|_| ())
    }
}

/// The `p`-th percentile (0..=100) of `sorted` by nearest rank; `None` when empty.
pub fn percentile(sorted: &[u64], p: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (p * n).div_ceil(100).clamp(1, n);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

/// Benches every deployment (or `--model`'s), reports the medians, writes a table or JSON.
pub async fn bench(args: &BenchArgs, out: &mut impl Write) -> anyhow::Result<BenchReport> {
    let admin = args.admin.client()?;
    let mut targets: Vec<(String, String)> = admin
        .models()
        .await?
        .into_iter()
        .filter(|m| args.model.as_ref().is_none_or(|want| want == &m.name))
        .flat_map(|m| m.deployments)
        .map(|d| (d.endpoint_id, d.upstream_model))
        // Embedding models do not chat.
        .filter(|(_, model)| !model.to_ascii_lowercase().contains("embed"))
        .collect();
    targets.sort();
    targets.dedup();
    if let Some(m) = &args.model
        && targets.is_empty()
    {
        anyhow::bail!("no deployment serves `{m}` (see `switchyard models`)");
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .context("building an HTTP client")?;
    let mut rows = Vec::with_capacity(targets.len());
    for (endpoint, model) in targets {
        rows.push(bench_one(args, &http, endpoint, model).await);
    }
    let measured: Vec<Latency> = rows
        .iter()
        .filter_map(|r| {
            Some(Latency {
                endpoint_id: r.endpoint.clone(),
                model: r.model.clone(),
                ttfb_ms: r.ttfb_p50_ms?,
                total_ms: r.total_p50_ms?,
                at_ms: now_ms(),
            })
        })
        .collect();
    let revision = if args.no_report || measured.is_empty() {
        None
    } else {
        Some(
            admin
                .report_latency(&LatencyReport { measured })
                .await?
                .revision,
        )
    };
    let report = BenchReport {
        deployments: rows,
        revision,
    };
    if args.admin.json {
        print_json(out, &report)?;
    } else {
        write_table(out, &report)?;
    }
    Ok(report)
}

fn write_table(out: &mut impl Write, report: &BenchReport) -> anyhow::Result<()> {
    let ms = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let rows = report
        .deployments
        .iter()
        .map(|r| {
            vec![
                format!("{}/{}", r.endpoint, r.model),
                format!("{}/{}", r.ok, r.requests),
                ms(r.ttfb_p50_ms),
                ms(r.ttfb_p95_ms),
                ms(r.total_p50_ms),
                ms(r.total_p95_ms),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        out,
        &[
            "DEPLOYMENT",
            "OK",
            "TTFB P50",
            "TTFB P95",
            "TOTAL P50",
            "TOTAL P95",
            "ERROR",
        ],
        rows,
    )?;
    match report.revision {
        Some(r) => writeln!(out, "reported to the control plane (revision {r})")?,
        None => writeln!(out, "not reported")?,
    }
    Ok(())
}

/// `requests` chats to one deployment, one after another.
async fn bench_one(
    args: &BenchArgs,
    http: &reqwest::Client,
    endpoint: String,
    model: String,
) -> BenchRow {
    let url = format!("{}/v1/chat/completions", args.edge.trim_end_matches('/'));
    let body = json!({
        "model": format!("{endpoint}/{model}"),
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 8,
        "stream": true,
    });
    let (mut ttfb, mut total) = (Vec::new(), Vec::new());
    let mut error = None;
    for _ in 0..args.requests {
        match time_one(http, &url, args.api_key.as_deref(), &body).await {
            Ok((first, whole)) => {
                ttfb.push(first);
                total.push(whole);
            }
            Err(e) => error = Some(e),
        }
    }
    ttfb.sort_unstable();
    total.sort_unstable();
    BenchRow {
        endpoint,
        model,
        requests: args.requests,
        ok: u32::try_from(ttfb.len()).unwrap_or(u32::MAX),
        ttfb_p50_ms: percentile(&ttfb, 50),
        ttfb_p95_ms: percentile(&ttfb, 95),
        total_p50_ms: percentile(&total, 50),
        total_p95_ms: percentile(&total, 95),
        error,
    }
}

/// One chat: (ms to the first body byte, ms to the end), or why it failed.
async fn time_one(
    http: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &serde_json::Value,
) -> Result<(u64, u64), String> {
    let started = Instant::now();
    let mut request = http.post(url).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let mut response = request.send().await.map_err(|e| format!("{e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("status {}", status.as_u16()));
    }
    let mut first = None;
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{e}"))? {
        if first.is_none() && !chunk.is_empty() {
            first = Some(elapsed_ms(started));
        }
    }
    let whole = elapsed_ms(started);
    Ok((first.unwrap_or(whole), whole))
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let cases: &[(&[u64], u64, Option<u64>)] = &[
            (&[], 50, None),
            (&[7], 50, Some(7)),
            (&[7], 95, Some(7)),
            (&[1, 2, 3], 50, Some(2)),
            (&[1, 2, 3], 95, Some(3)),
            (&[1, 2, 3, 4], 50, Some(2)),
            (&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 95, Some(100)),
            (&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 0, Some(10)),
        ];
        for (i, (sorted, p, want)) in cases.iter().enumerate() {
            assert_eq!(percentile(sorted, *p), *want, "case {i}");
        }
    }
}
