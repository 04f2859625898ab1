//! `switchyard models`: model groups with their deployments, aliases and fallbacks, then every
//! alias (yours and the built-in capability aliases) with its current members in the order an
//! edge tries them.

use std::io::Write;

use clap::Args;
use serde::Serialize;
use switchyard_control_plane::admin::aliases::AliasView;
use switchyard_control_plane::admin::views::ModelView;

use super::admin::{AdminArgs, or_dash, print_json, table};
use super::{Run, Shutdown};

/// `switchyard models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    /// Admin API access.
    pub admin: AdminArgs,
}

/// What `switchyard models --json` prints.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// Model groups.
    pub models: Vec<ModelView>,
    /// Aliases with their members.
    pub aliases: Vec<AliasView>,
}

impl Run for ModelsArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        list(&self.admin, &mut std::io::stdout().lock()).await
    }
}

/// Writes the models and aliases as tables, or as one JSON object with `--json`.
pub async fn list(admin: &AdminArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let client = admin.client()?;
    let listing = Listing {
        models: client.models().await?,
        aliases: client.aliases().await?,
    };
    if admin.json {
        return print_json(out, &listing);
    }
    models_table(out, &listing.models)?;
    writeln!(out)?;
    table(
        out,
        &["ALIAS", "RULE", "MEMBERS"],
        listing
            .aliases
            .iter()
            .map(|a| {
                let members = a
                    .members
                    .iter()
                    .map(|m| match m.ttfb_ms {
                        Some(ms) => format!("{} ({}, {ms} ms)", m.model, m.status),
                        None => format!("{} ({})", m.model, m.status),
                    })
                    .collect::<Vec<_>>()
                    .join(" > ");
                vec![a.name.clone(), or_dash(&a.rule), members]
            })
            .collect(),
    )
}

fn models_table(out: &mut impl Write, models: &[ModelView]) -> anyhow::Result<()> {
    table(
        out,
        &[
            "MODEL",
            "DEPLOYMENTS",
            "ALIASES",
            "FALLBACKS",
            "CONTEXT FALLBACKS",
        ],
        models
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    m.deployments
                        .iter()
                        .map(|d| {
                            let mark = if d.healthy { "" } else { " (down)" };
                            format!("{}:{}{mark}", d.endpoint_id, d.upstream_model)
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    or_dash(&m.aliases.join(",")),
                    or_dash(&m.fallbacks.join(" > ")),
                    or_dash(&m.context_window_fallbacks.join(" > ")),
                ]
            })
            .collect(),
    )
}
