//! `switchyard keys …`: create, list or revoke client keys.

use std::io::Write;

use clap::{Args, Subcommand};
use switchyard_control_plane::admin::views::NewKey;
use switchyard_control_plane::state::{KeyBudget, Limits};

use super::admin::{AdminArgs, limit, print_json, table};
use super::{Run, Shutdown};

/// `switchyard keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    /// What to do.
    pub cmd: KeysCmd,
    #[command(flatten)]
    /// Admin API access.
    pub admin: AdminArgs,
}

/// `switchyard keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a client key; its secret is printed once.
    Create {
        /// Label.
        name: String,
        /// Model globs it may use (comma-separated; default all).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Requests per minute (0 = unlimited).
        #[arg(long, default_value_t = 0)]
        rpm: u64,
        /// Tokens per minute (0 = unlimited).
        #[arg(long, default_value_t = 0)]
        tpm: u64,
        /// Requests per day (0 = unlimited).
        #[arg(long, default_value_t = 0)]
        rpd: u64,
        /// Requests in flight at once, across all edges (0 = unlimited).
        #[arg(long, default_value_t = 0)]
        max_concurrent: u32,
        /// Expiry as Unix milliseconds (0 = never).
        #[arg(long, default_value_t = 0)]
        expires_at_ms: i64,
        /// Most US dollars per UTC day, across all edges (0 = no budget).
        #[arg(long, default_value_t = 0.0)]
        budget_day_usd: f64,
        /// Most US dollars per UTC calendar month, across all edges (0 = no budget).
        #[arg(long, default_value_t = 0.0)]
        budget_month_usd: f64,
    },
    /// Import an existing client key as it is (a LiteLLM master key, an LLMProxy or lmrelay
    /// token, any format): apps that hold it keep working unchanged.
    Import {
        /// Label.
        name: String,
        /// The secret clients present.
        #[arg(long, env = "SWITCHYARD_IMPORT_SECRET", hide_env_values = true)]
        secret: String,
        /// Model globs it may use (comma-separated; default all).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
    },
    /// List client keys (ids and last four characters only) with their spend.
    List,
    /// Revoke a client key.
    Revoke {
        /// Key id.
        id: String,
    },
}

impl Run for KeysArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        self.run_to(&mut std::io::stdout().lock()).await
    }
}

impl KeysArgs {
    /// Runs the verb, writing what it prints to `out` (stdout from the CLI; a buffer in tests).
    pub async fn run_to(self, mut out: &mut impl Write) -> anyhow::Result<()> {
        let client = self.admin.client()?;
        let json = self.admin.json;
        match self.cmd {
            KeysCmd::Create {
                name,
                models,
                rpm,
                tpm,
                rpd,
                max_concurrent,
                expires_at_ms,
                budget_day_usd,
                budget_month_usd,
            } => {
                let created = client
                    .create_key(&NewKey {
                        name,
                        allowed_models: models,
                        expires_at_ms,
                        limits: Limits {
                            rpm,
                            tpm,
                            rpd,
                            max_concurrent,
                        },
                        secret: None,
                        budget: KeyBudget {
                            usd_per_day: budget_day_usd,
                            usd_per_month: budget_month_usd,
                        },
                    })
                    .await?;
                if json {
                    return print_json(&mut out, &created);
                }
                writeln!(out, "id      {}", created.key.id)?;
                writeln!(out, "secret  {}", created.secret)?;
                writeln!(out, "\nStore the secret now: it is not shown again.")?;
                Ok(())
            }
            KeysCmd::Import {
                name,
                secret,
                models,
            } => {
                let created = client
                    .create_key(&NewKey {
                        name,
                        allowed_models: models,
                        secret: Some(secret),
                        ..Default::default()
                    })
                    .await?;
                if json {
                    return print_json(&mut out, &created.key);
                }
                writeln!(
                    out,
                    "imported {} (…{}); clients keep sending the same key",
                    created.key.id, created.key.last4
                )?;
                Ok(())
            }
            KeysCmd::List => {
                let keys = client.keys().await?;
                if json {
                    return print_json(&mut out, &keys);
                }
                table(
                    &mut out,
                    &[
                        "ID", "NAME", "LAST4", "MODELS", "RPM", "TODAY $", "MONTH $", "STATUS",
                        "SOURCE",
                    ],
                    keys.iter()
                        .map(|k| {
                            vec![
                                k.id.clone(),
                                k.name.clone(),
                                format!("…{}", k.last4),
                                if k.allowed_models.is_empty() {
                                    "*".into()
                                } else {
                                    k.allowed_models.join(",")
                                },
                                limit(k.limits.rpm),
                                spend(k.spend_today_usd, k.budget.usd_per_day),
                                spend(k.spend_month_usd, k.budget.usd_per_month),
                                if k.revoked { "revoked" } else { "active" }.into(),
                                k.source.as_str().into(),
                            ]
                        })
                        .collect(),
                )
            }
            KeysCmd::Revoke { id } => {
                let k = client.revoke_key(&id).await?;
                if json {
                    return print_json(&mut out, &k);
                }
                writeln!(out, "revoked key {}", k.id)?;
                Ok(())
            }
        }
    }
}

/// `1.2345`, or `1.2345/10.00` against a budget.
fn spend(spent: f64, budget: f64) -> String {
    if budget > 0.0 {
        format!("{spent:.4}/{budget:.2}")
    } else {
        format!("{spent:.4}")
    }
}
