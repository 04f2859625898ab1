//! `switchyard endpoints …`: list, add or remove endpoints.

use std::io::Write;

use clap::{Args, Subcommand};
use switchyard_control_plane::admin::views::{EndpointView, NewEndpoint};

use super::admin::{AdminArgs, or_dash, print_json, table};
use super::{Run, Shutdown};

/// `switchyard endpoints`.
#[derive(Debug, Args)]
pub struct EndpointsArgs {
    #[command(subcommand)]
    /// What to do (default `list`).
    pub cmd: Option<EndpointsCmd>,
    #[command(flatten)]
    /// Admin API access.
    pub admin: AdminArgs,
}

/// `switchyard endpoints …`.
#[derive(Debug, Subcommand)]
pub enum EndpointsCmd {
    /// List endpoints with their source and health.
    List,
    /// Add (or replace) an endpoint through the API.
    Add {
        /// Endpoint id.
        id: String,
        /// OpenAI-compatible base URL, ending in /v1.
        url: String,
        /// Models it serves (comma-separated).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Server kind: openai (any OpenAI-compatible server), ollama, anthropic or gemini.
        #[arg(long, default_value = "openai")]
        kind: String,
        /// Environment variable edges read the upstream key from.
        #[arg(long)]
        api_key_env: Option<String>,
        /// Upstream key by value (stored encrypted with the cluster key).
        #[arg(long, env = "SWITCHYARD_UPSTREAM_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Traffic weight.
        #[arg(long, default_value_t = 1)]
        weight: u32,
    },
    /// Remove an endpoint added through the API or discovered.
    Rm {
        /// Endpoint id.
        id: String,
    },
}

impl Run for EndpointsArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        let client = self.admin.client()?;
        let json = self.admin.json;
        let mut out = std::io::stdout().lock();
        match self.cmd.unwrap_or(EndpointsCmd::List) {
            EndpointsCmd::List => {
                let e = client.endpoints().await?;
                if json {
                    return print_json(&mut out, &e);
                }
                endpoints_table(&mut out, &e)
            }
            EndpointsCmd::Add {
                id,
                url,
                models,
                kind,
                api_key_env,
                api_key,
                weight,
            } => {
                let e = client
                    .add_endpoint(&NewEndpoint {
                        id,
                        url,
                        kind: Some(kind),
                        models,
                        weight,
                        api_key,
                        api_key_env,
                        ..Default::default()
                    })
                    .await?;
                if json {
                    return print_json(&mut out, &e);
                }
                endpoints_table(&mut out, &[e])
            }
            EndpointsCmd::Rm { id } => {
                client.remove_endpoint(&id).await?;
                if json {
                    return print_json(&mut out, &serde_json::json!({"removed": id}));
                }
                writeln!(out, "removed endpoint {id}")?;
                Ok(())
            }
        }
    }
}

/// Endpoints as rows (also under `status`).
pub fn endpoints_table(out: &mut impl Write, endpoints: &[EndpointView]) -> anyhow::Result<()> {
    table(
        out,
        &[
            "ID",
            "KIND",
            "URL",
            "SOURCE",
            "NODE",
            "HEALTH",
            "MODELS",
            "CREDENTIALS",
        ],
        endpoints
            .iter()
            .map(|e| {
                vec![
                    e.id.clone(),
                    e.kind.clone(),
                    e.base_url.clone(),
                    e.source.clone(),
                    e.node.clone().unwrap_or_else(|| "-".into()),
                    match (e.healthy, e.check_error.as_str()) {
                        (true, _) => "healthy".into(),
                        (false, "") => "down".into(),
                        (false, why) => format!("down ({why})"),
                    },
                    or_dash(&e.models.join(",")),
                    or_dash(
                        &e.credential_details
                            .iter()
                            .map(|c| c.describe())
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                ]
            })
            .collect(),
    )
}
