//! `switchyard ping`: which providers are on, and does each answer? One row per declared or
//! discovered endpoint (health, credentials, models) and, unless `--no-probe`, a 1-token chat
//! to its first model with its first credential (declared endpoints only). Nothing is pruned.

use std::io::Write;

use clap::Args;
use serde::Serialize;
use switchyard_control_plane::catalog::probe::{AuditRequest, ProbeRow};

use super::admin::{AdminArgs, print_json, table};
use super::{Run, Shutdown};

/// `switchyard ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// Only this endpoint (provider).
    #[arg(long)]
    pub provider: Option<String>,
    /// List on/off only; send no chat.
    #[arg(long)]
    pub no_probe: bool,
    #[command(flatten)]
    /// Admin API access (and `--json`).
    pub admin: AdminArgs,
}

/// One provider's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingRow {
    /// Endpoint id.
    pub endpoint: String,
    /// Server kind.
    pub kind: String,
    /// Where it was declared.
    pub source: String,
    /// The endpoint's health as the cluster sees it.
    pub healthy: bool,
    /// Credentials it holds.
    pub credentials: usize,
    /// The probe, when one was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeRow>,
}

impl Run for PingArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        ping(&self, &mut std::io::stdout().lock()).await.map(|_| ())
    }
}

/// Lists (and probes) the providers, writing a table or JSON to `out`.
pub async fn ping(args: &PingArgs, out: &mut impl Write) -> anyhow::Result<Vec<PingRow>> {
    let client = args.admin.client()?;
    let endpoints = client.endpoints().await?;
    let endpoints: Vec<_> = endpoints
        .into_iter()
        .filter(|e| args.provider.as_ref().is_none_or(|p| p == &e.id))
        .collect();
    if let Some(p) = &args.provider
        && endpoints.is_empty()
    {
        anyhow::bail!("no endpoint `{p}` (see `switchyard endpoints`)");
    }
    let probes = if args.no_probe {
        Vec::new()
    } else {
        client
            .audit_catalog(&AuditRequest {
                endpoint: args.provider.clone(),
                dry_run: true,
                first_only: true,
            })
            .await?
            .rows
    };
    let rows: Vec<PingRow> = endpoints
        .into_iter()
        .map(|e| PingRow {
            probe: probes.iter().find(|p| p.key.endpoint == e.id).cloned(),
            endpoint: e.id,
            kind: e.kind,
            source: e.source,
            healthy: e.healthy,
            credentials: e.credentials.len(),
        })
        .collect();
    if args.admin.json {
        print_json(out, &rows)?;
        return Ok(rows);
    }
    let mut headers = vec!["ENDPOINT", "KIND", "SOURCE", "ON", "KEYS"];
    if !args.no_probe {
        headers.extend(["PROBE", "MODEL", "MS"]);
    }
    let cells = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.endpoint.clone(),
                r.kind.clone(),
                r.source.clone(),
                if r.healthy { "on" } else { "off" }.to_string(),
                r.credentials.to_string(),
            ];
            if !args.no_probe {
                match &r.probe {
                    Some(p) => cells.extend([
                        p.outcome.as_str().to_string(),
                        p.key.model.clone(),
                        p.latency_ms.to_string(),
                    ]),
                    None => cells.extend(["-".into(), "-".into(), "-".into()]),
                }
            }
            cells
        })
        .collect();
    table(out, &headers, cells)?;
    Ok(rows)
}
