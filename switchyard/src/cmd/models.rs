//! `switchyard models`: model groups with their deployments, aliases and fallbacks.

use clap::Args;

use super::admin::{AdminArgs, or_dash, print_json, table};
use super::{Run, Shutdown};

/// `switchyard models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    /// Admin API access.
    pub admin: AdminArgs,
}

impl Run for ModelsArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        let models = self.admin.client()?.models().await?;
        let mut out = std::io::stdout().lock();
        if self.admin.json {
            return print_json(&mut out, &models);
        }
        table(
            &mut out,
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
}
