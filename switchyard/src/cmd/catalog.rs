//! `switchyard catalog`: what each catalogued endpoint lists, serves and filters out;
//! `catalog refresh` to list them all now instead of at the next scheduled refresh; and
//! `catalog audit` to probe every model × credential and prune the dead from the served set.

use std::io::Write;

use clap::{Args, Subcommand};
use switchyard_control_plane::catalog::probe::{AuditReport, AuditRequest, Pruned};
use switchyard_control_plane::catalog::refresh::EndpointCatalog;

use super::admin::{self, AdminArgs};
use super::{Run, Shutdown};

/// `switchyard catalog`.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(subcommand)]
    /// What to do (default `list`).
    pub cmd: Option<CatalogCmd>,
    #[command(flatten)]
    /// Admin API access.
    pub admin: AdminArgs,
}

impl Run for CatalogArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        let cmd = self.cmd.unwrap_or(CatalogCmd::List);
        run(&self.admin, cmd, &mut std::io::stdout().lock()).await
    }
}

/// `switchyard catalog …`.
#[derive(Debug, Clone, Subcommand)]
pub enum CatalogCmd {
    /// Show each catalogued endpoint's listing, what it serves and what is filtered out.
    List,
    /// List every catalogued endpoint now and commit what changed.
    Refresh,
    /// Send a 1-token chat to every model with each credential; models dead with every
    /// credential leave the served set (your config file is never rewritten).
    Audit {
        /// Only this endpoint's models.
        #[arg(long)]
        endpoint: Option<String>,
        /// Report only; prune nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs `cmd` against the admin API, writing tables (or JSON with `--json`) to `out`.
pub async fn run(args: &AdminArgs, cmd: CatalogCmd, out: &mut impl Write) -> anyhow::Result<()> {
    let client = args.client()?;
    let endpoints = match cmd {
        CatalogCmd::List => client.catalog().await?,
        CatalogCmd::Audit { endpoint, dry_run } => {
            let report = client
                .audit_catalog(&AuditRequest {
                    endpoint,
                    dry_run,
                    first_only: false,
                })
                .await?;
            if args.json {
                return admin::print_json(out, &report);
            }
            return render_audit(out, &report);
        }
        CatalogCmd::Refresh => {
            let report = client.refresh_catalog().await?;
            if args.json {
                return admin::print_json(out, &report);
            }
            writeln!(
                out,
                "refreshed: {} (revision {})",
                if report.changed {
                    "changed"
                } else {
                    "no change"
                },
                report.revision
            )?;
            report.endpoints
        }
    };
    if args.json {
        return admin::print_json(out, &endpoints);
    }
    render(out, &endpoints)
}

/// The text form: one summary row per endpoint, then each served and filtered model.
pub fn render(out: &mut impl Write, endpoints: &[EndpointCatalog]) -> anyhow::Result<()> {
    if endpoints.is_empty() {
        writeln!(
            out,
            "no catalogued endpoints (declare one without `models`, or give it a `catalog:` filter)"
        )?;
        return Ok(());
    }
    let rows = endpoints
        .iter()
        .map(|e| {
            vec![
                e.endpoint.clone(),
                e.listed.to_string(),
                e.served.len().to_string(),
                e.filtered.len().to_string(),
                e.dead.len().to_string(),
                e.error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    admin::table(
        out,
        &[
            "ENDPOINT",
            "LISTED",
            "SERVED",
            "FILTERED",
            "DEAD",
            "LAST ERROR",
        ],
        rows,
    )?;
    let mut rows = Vec::new();
    for e in endpoints {
        for m in &e.served {
            rows.push(vec![e.endpoint.clone(), m.clone(), "served".into()]);
        }
        for f in &e.filtered {
            let why = serde_json::to_value(f.verdict)?;
            rows.push(vec![
                e.endpoint.clone(),
                f.model.clone(),
                format!("filtered ({})", why.as_str().unwrap_or_default()),
            ]);
        }
        for d in &e.dead {
            rows.push(vec![
                e.endpoint.clone(),
                d.model.clone(),
                format!("dead ({})", d.reason),
            ]);
        }
    }
    writeln!(out)?;
    admin::table(out, &["ENDPOINT", "MODEL", "STATE"], rows)
}

/// The audit's text form: the model × credential table, then what was pruned and restored.
pub fn render_audit(out: &mut impl Write, report: &AuditReport) -> anyhow::Result<()> {
    let rows = report
        .rows
        .iter()
        .map(|r| {
            vec![
                r.key.endpoint.clone(),
                r.key.model.clone(),
                admin::or_dash(&r.key.credential),
                r.outcome.as_str().to_string(),
                if r.cached { "cached" } else { "-" }.to_string(),
                r.latency_ms.to_string(),
            ]
        })
        .collect();
    admin::table(
        out,
        &["ENDPOINT", "MODEL", "CREDENTIAL", "OUTCOME", "CACHED", "MS"],
        rows,
    )?;
    let list = |items: &[Pruned]| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items
                .iter()
                .map(|p| format!("{}/{} ({})", p.endpoint, p.model, p.reason))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let verb = if report.applied {
        "pruned"
    } else {
        "would prune"
    };
    writeln!(out, "\n{verb}: {}", list(&report.pruned))?;
    writeln!(out, "restored: {}", list(&report.restored))?;
    Ok(())
}
