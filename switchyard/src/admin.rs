//! The admin verbs (`status`, `endpoints`, `keys`, `cooldowns`, `models`, `members`): calls to
//! a voter's admin API, shown as aligned tables or, with `--json`, as JSON.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::admin::views::{NewEndpoint, NewKey, NewMember};
use switchyard_control_plane::state::{KeyBudget, Limits};

/// Where the admin API is and how to authenticate.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin API address of any voter.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN_URL",
        default_value = "http://127.0.0.1:7701"
    )]
    pub server: String,
    /// Admin token (default: the one generated in `<data-dir>/admin.token`).
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Data directory holding the generated admin token, when `--token` is not given.
    #[arg(
        long = "token-dir",
        global = true,
        env = "SWITCHYARD_DATA_DIR",
        default_value = "switchyard-data"
    )]
    pub token_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
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
        /// Server kind.
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
    /// List client keys (ids and last four characters only) with their spend.
    List,
    /// Revoke a client key.
    Revoke {
        /// Key id.
        id: String,
    },
}

/// `switchyard cooldowns …`.
#[derive(Debug, Subcommand)]
pub enum CooldownsCmd {
    /// List active cooldowns.
    List,
    /// Clear cooldowns, of one endpoint or all.
    Clear {
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<String>,
    },
}

/// `switchyard members …`.
#[derive(Debug, Subcommand)]
pub enum MembersCmd {
    /// List raft members.
    List,
    /// Add a voter (or, with --learner, a learner).
    Add {
        /// Raft node id.
        id: u64,
        /// Its gRPC address (host:port).
        addr: String,
        /// Leave it a learner.
        #[arg(long)]
        learner: bool,
    },
    /// Promote a learner to voter.
    Promote {
        /// Raft node id.
        id: u64,
    },
    /// Remove a member.
    Rm {
        /// Raft node id.
        id: u64,
    },
}

/// One admin verb.
#[derive(Debug)]
pub enum Verb {
    /// `status`.
    Status,
    /// `endpoints …`.
    Endpoints(EndpointsCmd),
    /// `keys …`.
    Keys(KeysCmd),
    /// `cooldowns …`.
    Cooldowns(CooldownsCmd),
    /// `models`.
    Models,
    /// `members …`.
    Members(MembersCmd),
    /// `reload`.
    Reload,
}

/// Runs `verb` against the admin API and writes the answer to `out`.
pub async fn run(args: &AdminArgs, verb: Verb, out: &mut impl Write) -> anyhow::Result<()> {
    let client = client(args)?;
    let json = args.json;
    match verb {
        Verb::Status => {
            let s = client.status().await?;
            if json {
                return print_json(out, &s);
            }
            writeln!(out, "cluster   {}", s.cluster_id)?;
            writeln!(
                out,
                "node      {} ({}), term {}, leader {}",
                s.node_id,
                s.role,
                s.term,
                s.leader_id.map_or("unknown".into(), |id| format!(
                    "{id} at {}",
                    s.leader_addr.clone().unwrap_or_default()
                ))
            )?;
            writeln!(
                out,
                "log       last {}, commit {}, applied {}, snapshot {} ({})",
                s.last_log_index,
                s.commit_index,
                s.applied_index,
                s.snapshot_index,
                s.snapshot_age_ms
                    .map_or("none yet".into(), |ms| format!("{}s ago", ms / 1000))
            )?;
            writeln!(
                out,
                "revision  {}  digest {}",
                s.revision,
                &s.digest[..16.min(s.digest.len())]
            )?;
            writeln!(out, "\nMEMBERS")?;
            table(
                out,
                &["ID", "ADDRESS", "ROLE"],
                s.members
                    .iter()
                    .map(|m| {
                        vec![
                            m.id.to_string(),
                            m.addr.clone(),
                            if m.voter { "voter" } else { "learner" }.into(),
                        ]
                    })
                    .collect(),
            )?;
            writeln!(out, "\nNODES")?;
            table(
                out,
                &["NAME", "STATUS", "VERSION", "LAST SEEN", "GPUS"],
                s.nodes
                    .iter()
                    .map(|n| {
                        vec![
                            n.name.clone(),
                            n.status.clone(),
                            n.version.clone(),
                            n.last_seen_ms_ago
                                .map_or("-".into(), |ms| format!("{:.1}s ago", ms as f64 / 1000.0)),
                            n.gpus
                                .iter()
                                .map(|g| {
                                    format!(
                                        "{} {}/{} MiB",
                                        g.name, g.memory_used_mib, g.memory_total_mib
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(", "),
                        ]
                    })
                    .collect(),
            )?;
            writeln!(out, "\nENDPOINTS")?;
            endpoints_table(out, &s.endpoints)
        }
        Verb::Endpoints(EndpointsCmd::List) => {
            let e = client.endpoints().await?;
            if json {
                return print_json(out, &e);
            }
            endpoints_table(out, &e)
        }
        Verb::Endpoints(EndpointsCmd::Add {
            id,
            url,
            models,
            kind,
            api_key_env,
            api_key,
            weight,
        }) => {
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
                return print_json(out, &e);
            }
            endpoints_table(out, &[e])
        }
        Verb::Endpoints(EndpointsCmd::Rm { id }) => {
            client.remove_endpoint(&id).await?;
            if json {
                return print_json(out, &serde_json::json!({"removed": id}));
            }
            writeln!(out, "removed endpoint {id}")?;
            Ok(())
        }
        Verb::Keys(KeysCmd::Create {
            name,
            models,
            rpm,
            tpm,
            rpd,
            max_concurrent,
            expires_at_ms,
            budget_day_usd,
            budget_month_usd,
        }) => {
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
                    budget: KeyBudget {
                        usd_per_day: budget_day_usd,
                        usd_per_month: budget_month_usd,
                    },
                })
                .await?;
            if json {
                return print_json(out, &created);
            }
            writeln!(out, "id      {}", created.key.id)?;
            writeln!(out, "secret  {}", created.secret)?;
            writeln!(out, "\nStore the secret now: it is not shown again.")?;
            Ok(())
        }
        Verb::Keys(KeysCmd::List) => {
            let keys = client.keys().await?;
            if json {
                return print_json(out, &keys);
            }
            table(
                out,
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
        Verb::Keys(KeysCmd::Revoke { id }) => {
            let k = client.revoke_key(&id).await?;
            if json {
                return print_json(out, &k);
            }
            writeln!(out, "revoked key {}", k.id)?;
            Ok(())
        }
        Verb::Cooldowns(CooldownsCmd::List) => {
            let c = client.cooldowns().await?;
            if json {
                return print_json(out, &c);
            }
            let now = switchyard_control_plane::service::agent::now_ms() as i64;
            table(
                out,
                &["ENDPOINT", "CREDENTIAL", "MODEL", "REMAINING", "REASON"],
                c.iter()
                    .map(|c| {
                        vec![
                            c.endpoint_id.clone(),
                            or_dash(&c.credential_id),
                            or_dash(&c.model),
                            format!("{}s", (c.until_ms - now).max(0) / 1000),
                            c.reason.clone(),
                        ]
                    })
                    .collect(),
            )
        }
        Verb::Cooldowns(CooldownsCmd::Clear { endpoint }) => {
            let cleared = client.clear_cooldowns(endpoint.as_deref()).await?;
            if json {
                return print_json(out, &cleared);
            }
            writeln!(out, "cleared (revision {})", cleared.revision)?;
            Ok(())
        }
        Verb::Models => {
            let models = client.models().await?;
            if json {
                return print_json(out, &models);
            }
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
        Verb::Members(cmd) => {
            let members = match cmd {
                MembersCmd::List => client.members().await?,
                MembersCmd::Add { id, addr, learner } => {
                    client
                        .add_member(&NewMember {
                            id,
                            addr,
                            voter: !learner,
                        })
                        .await?
                }
                MembersCmd::Promote { id } => client.promote_member(id).await?,
                MembersCmd::Rm { id } => client.remove_member(id).await?,
            };
            if json {
                return print_json(out, &members);
            }
            table(
                out,
                &["ID", "ADDRESS", "ROLE"],
                members
                    .iter()
                    .map(|m| {
                        vec![
                            m.id.to_string(),
                            m.addr.clone(),
                            if m.voter { "voter" } else { "learner" }.into(),
                        ]
                    })
                    .collect(),
            )
        }
        Verb::Reload => {
            let r = client.reload().await?;
            if json {
                return print_json(out, &r);
            }
            writeln!(
                out,
                "{} (revision {})",
                if r.changed {
                    "applied changes"
                } else {
                    "no changes"
                },
                r.revision
            )?;
            for w in &r.warnings {
                writeln!(out, "warning: {w}")?;
            }
            Ok(())
        }
    }
}

fn endpoints_table(
    out: &mut impl Write,
    endpoints: &[switchyard_control_plane::admin::views::EndpointView],
) -> anyhow::Result<()> {
    table(
        out,
        &[
            "ID", "KIND", "URL", "SOURCE", "NODE", "HEALTH", "MODELS", "KEYS",
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
                    if e.healthy { "healthy" } else { "down" }.into(),
                    or_dash(&e.models.join(",")),
                    e.credentials.len().to_string(),
                ]
            })
            .collect(),
    )
}

fn limit(n: u64) -> String {
    if n == 0 { "-".into() } else { n.to_string() }
}

/// `1.2345`, or `1.2345/10.00` against a budget.
fn spend(spent: f64, budget: f64) -> String {
    if budget > 0.0 {
        format!("{spent:.4}/{budget:.2}")
    } else {
        format!("{spent:.4}")
    }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// The admin client `args` describe: `--server`, and `--token` or the generated token file.
pub fn client(args: &AdminArgs) -> anyhow::Result<AdminClient> {
    let token = match &args.token {
        Some(t) => t.clone(),
        None => {
            let path = args.token_dir.join("admin.token");
            std::fs::read_to_string(&path)
                .with_context(|| format!("no --token given and {} cannot be read", path.display()))?
                .trim()
                .to_string()
        }
    };
    Ok(AdminClient::new(&args.server, &token)?)
}

/// Writes `value` as pretty JSON and a newline.
pub fn print_json(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Writes rows under headers, columns padded to their widest cell.
pub fn table(out: &mut impl Write, headers: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(
        out,
        "{}",
        line(headers.iter().map(|h| h.to_string()).collect())
    )?;
    if rows.is_empty() {
        writeln!(out, "(none)")?;
    }
    for row in rows {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["ID", "URL"],
            vec![
                vec!["groq".into(), "https://api.groq.com/openai/v1".into()],
                vec!["a".into(), "http://x".into()],
            ],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "ID    URL\ngroq  https://api.groq.com/openai/v1\na     http://x\n"
        );
        let mut out = Vec::new();
        table(&mut out, &["ID"], vec![]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "ID\n(none)\n");
    }
}
