//! One function per page: read what it needs through the admin API, then render it with a pure
//! function of those answers (the renderers have table tests in `tests.rs`).

use serde::Deserialize;

use super::chart::{Series, bars};
use super::html::{ago, badge, count, empty, esc, table, usd, utc};
use super::reader::{ApiReader, ReadError};
use super::usage::{Counters, DAY_MS, Range, Usage, per_bucket};
use crate::admin::views::{EndpointView, KeyView, ModelView, StatusView};
use crate::state::{Cooldown, Limits};

/// The dashboard's pages (also the views of `switchyard top`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Members, leader and a summary.
    Cluster,
    /// Node agents and their GPUs.
    Nodes,
    /// Endpoints, their health and cooldowns.
    Endpoints,
    /// Model groups: deployments, aliases, fallbacks.
    Models,
    /// Client keys with usage and spend.
    Keys,
    /// Charts over time.
    Usage,
}

impl Page {
    /// Every page, in navigation order.
    pub const ALL: [Page; 6] = [
        Page::Cluster,
        Page::Nodes,
        Page::Endpoints,
        Page::Models,
        Page::Keys,
        Page::Usage,
    ];

    /// Its position in [`Page::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its path and title.
    pub fn path_and_title(self) -> (&'static str, &'static str) {
        super::html::PAGES[self.index()]
    }

    /// Its title.
    pub fn title(self) -> &'static str {
        self.path_and_title().1
    }
}

/// A key listing with the spend fields the API may add.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyRow {
    /// The key.
    #[serde(flatten)]
    pub key: KeyView,
    /// Spent today (UTC), US dollars, when the API reports it.
    #[serde(default)]
    pub spend_today_usd: Option<f64>,
    /// Spent this month (UTC), US dollars, when the API reports it.
    #[serde(default)]
    pub spend_month_usd: Option<f64>,
}

/// Reads and renders `page`; `range` picks the usage page's range. Returns the body HTML.
pub async fn render(
    page: Page,
    api: &ApiReader,
    status: &StatusView,
    range: Option<&str>,
    now_ms: u64,
) -> Result<String, ReadError> {
    let day_ago = now_ms.saturating_sub(DAY_MS);
    Ok(match page {
        Page::Cluster => {
            let models: Vec<ModelView> = api.get("/models").await?;
            let keys: Vec<KeyRow> = api.get("/keys").await?;
            let usage = api.usage(day_ago, now_ms, "model").await?;
            cluster(status, models.len(), keys.len(), &usage)
        }
        Page::Nodes => nodes(status),
        Page::Endpoints => {
            let cooldowns: Vec<Cooldown> = api.get("/cooldowns").await?;
            endpoints(&status.endpoints, &cooldowns, now_ms)
        }
        Page::Models => {
            let models: Vec<ModelView> = api.get("/models").await?;
            let usage = api.usage(day_ago, now_ms, "model").await?;
            models_page(&models, &usage)
        }
        Page::Keys => {
            let keys: Vec<KeyRow> = api.get("/keys").await?;
            let usage = api.usage(day_ago, now_ms, "key").await?;
            keys_page(&keys, &usage, now_ms)
        }
        Page::Usage => {
            let range = Range::named(range);
            let starts = range.starts(now_ms);
            let from = starts.first().copied().unwrap_or(day_ago);
            let over_time = api.usage(from, now_ms, range.group_by()).await?;
            let by_model = api.usage(from, now_ms, "model").await?;
            usage_page(range, &starts, &over_time, &by_model)
        }
    })
}

/// Members, leader, this voter's log progress and a summary of what the cluster holds.
pub fn cluster(status: &StatusView, models: usize, keys: usize, usage: &Usage) -> String {
    let leader = match (status.leader_id, &status.leader_addr) {
        (Some(id), Some(addr)) => format!("voter {id} at {}", esc(addr)),
        (Some(id), None) => format!("voter {id}"),
        _ => badge("bad", "no leader"),
    };
    let nodes_up = status.nodes.iter().filter(|n| n.status == "up").count();
    let healthy = status.endpoints.iter().filter(|e| e.healthy).count();
    let requests = usage
        .recorded()
        .map_or_else(|| "no usage recorded".into(), |u| count(u.totals.requests));
    let mut out = String::from("<section class=\"cards\">");
    for (label, value) in [
        ("Leader", leader),
        ("Term", status.term.to_string()),
        ("Revision", status.revision.to_string()),
        ("Nodes up", format!("{nodes_up} of {}", status.nodes.len())),
        (
            "Healthy endpoints",
            format!("{healthy} of {}", status.endpoints.len()),
        ),
        ("Models", models.to_string()),
        ("Keys", keys.to_string()),
        ("Requests, 24 h", requests),
    ] {
        out.push_str(&format!(
            "<div class=\"card\"><div class=\"label\">{label}</div><div class=\"value\">{value}</div></div>"
        ));
    }
    out.push_str("</section>\n<h2>Members</h2>\n");
    let rows: Vec<Vec<String>> = status
        .members
        .iter()
        .map(|m| {
            let role = if Some(m.id) == status.leader_id {
                badge("good", "leader")
            } else if m.voter {
                "voter".into()
            } else {
                badge("warn", "learner")
            };
            let here = if m.id == status.node_id {
                format!(" (answering, {})", esc(&status.role))
            } else {
                String::new()
            };
            vec![format!("{}{here}", m.id), esc(&m.addr), role]
        })
        .collect();
    if rows.is_empty() {
        out.push_str(&empty("no members known"));
    } else {
        out.push_str(&table(&["Id", "Address", "Role"], &rows));
    }
    out.push_str(&format!(
        "<p class=\"note\">Cluster {} · log {} · committed {} · applied {} · snapshot at {} · state digest {}</p>\n",
        esc(&status.cluster_id),
        status.last_log_index,
        status.commit_index,
        status.applied_index,
        status.snapshot_index,
        esc(status.digest.get(..12).unwrap_or(&status.digest)),
    ));
    out
}

/// Node agents, their state and GPUs.
pub fn nodes(status: &StatusView) -> String {
    if status.nodes.is_empty() {
        return empty("no node agents have registered");
    }
    let rows: Vec<Vec<String>> = status
        .nodes
        .iter()
        .map(|n| {
            let state = if n.status == "up" {
                badge("good", "up")
            } else {
                badge("bad", &n.status)
            };
            let gpus = if n.gpus.is_empty() {
                "-".into()
            } else {
                n.gpus
                    .iter()
                    .map(|g| {
                        let util = if g.utilization_pct < 0 {
                            "?".into()
                        } else {
                            format!("{}%", g.utilization_pct)
                        };
                        format!(
                            "<div class=\"gpu\">#{} {} · {} / {} MiB · {util}</div>",
                            g.index,
                            esc(&g.name),
                            g.memory_used_mib,
                            g.memory_total_mib
                        )
                    })
                    .collect()
            };
            vec![
                esc(&n.name),
                state,
                utc(n.since_ms),
                n.last_seen_ms_ago
                    .map_or_else(|| "-".into(), |ms| format!("{} ago", ago(ms))),
                esc(&n.version),
                esc(&n.addresses.join(", ")),
                gpus,
            ]
        })
        .collect();
    let mut out = table(
        &[
            "Node",
            "State",
            "Since",
            "Last heard",
            "Version",
            "Addresses",
            "GPUs",
        ],
        &rows,
    );
    if status.leader_id != Some(status.node_id) {
        out.push_str(&format!(
            "<p class=\"note\">Heartbeats and GPUs live in the leader's memory; this voter is {}, so \
             open the leader's dashboard for them.</p>\n",
            esc(&status.role)
        ));
    }
    out
}

/// Endpoints with health, and the cooldowns now in force.
pub fn endpoints(endpoints: &[EndpointView], cooldowns: &[Cooldown], now_ms: u64) -> String {
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|e| {
            let resting = cooldowns.iter().filter(|c| c.endpoint_id == e.id).count();
            let health = match (e.healthy, resting) {
                (false, _) => badge("bad", "unhealthy"),
                (true, 0) => badge("good", "healthy"),
                (true, n) => badge("warn", &format!("cooling ({n})")),
            };
            vec![
                esc(&e.id),
                esc(&e.kind),
                esc(&e.base_url),
                esc(&e.source),
                esc(e.node.as_deref().unwrap_or("-")),
                health,
                esc(&e.models.join(", ")),
                e.weight.to_string(),
            ]
        })
        .collect();
    let mut out = if rows.is_empty() {
        empty("no endpoints")
    } else {
        table(
            &[
                "Endpoint", "Kind", "Base URL", "Source", "Node", "Health", "Models", "Weight",
            ],
            &rows,
        )
    };
    out.push_str("<h2>Cooldowns</h2>\n");
    let rows: Vec<Vec<String>> = cooldowns
        .iter()
        .map(|c| {
            let left = u64::try_from(c.until_ms.saturating_sub(now)).unwrap_or(0);
            vec![
                esc(&c.endpoint_id),
                esc(or_all(&c.credential_id)),
                esc(or_all(&c.model)),
                esc(&c.reason),
                format!("in {}", ago(left)),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str(&empty("no cooldowns in force"));
    } else {
        out.push_str(&table(
            &["Endpoint", "Credential", "Model", "Reason", "Ends"],
            &rows,
        ));
    }
    out
}

fn or_all(s: &str) -> &str {
    if s.is_empty() { "all" } else { s }
}

/// Model groups with deployments, aliases and fallbacks, and the last day's requests.
pub fn models_page(models: &[ModelView], usage: &Usage) -> String {
    if models.is_empty() {
        return empty("no models");
    }
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            let deployments: String = m
                .deployments
                .iter()
                .map(|d| {
                    let dot = if d.healthy {
                        badge("good", "●")
                    } else {
                        badge("bad", "●")
                    };
                    let ctx = if d.context_length > 0 {
                        format!(" · {} ctx", count(u64::from(d.context_length)))
                    } else {
                        String::new()
                    };
                    format!(
                        "<div>{dot} {} → {}{ctx}</div>",
                        esc(&d.endpoint_id),
                        esc(&d.upstream_model)
                    )
                })
                .collect();
            vec![
                esc(&m.name),
                deployments,
                esc(&dash(&m.aliases.join(", "))),
                esc(&dash(&m.fallbacks.join(" → "))),
                esc(&dash(&m.context_window_fallbacks.join(" → "))),
                usage_cell(usage, &m.name, |c| count(c.requests)),
                usage_cell(usage, &m.name, |c| count(c.tokens())),
            ]
        })
        .collect();
    table(
        &[
            "Model",
            "Deployments",
            "Aliases",
            "Fallbacks",
            "Context fallbacks",
            "Requests 24 h",
            "Tokens 24 h",
        ],
        &rows,
    )
}

fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

/// A counter of `group` from `usage`, `-` when nothing is recorded for it.
fn usage_cell(usage: &Usage, group: &str, f: impl Fn(&Counters) -> String) -> String {
    usage.of(group).map_or_else(|| "-".into(), |c| f(&c))
}

/// Client keys with their limits, last day's usage and spend.
pub fn keys_page(keys: &[KeyRow], usage: &Usage, now_ms: u64) -> String {
    if keys.is_empty() {
        return empty("no client keys");
    }
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|row| {
            let k = &row.key;
            let state = if k.revoked {
                badge("bad", "revoked")
            } else if k.expires_at_ms > 0 && k.expires_at_ms <= now {
                badge("bad", "expired")
            } else {
                badge("good", "active")
            };
            let counters = usage.of(&k.id).or_else(|| usage.of(&k.name));
            let spend = |v: Option<f64>| v.map_or_else(|| "-".into(), usd);
            vec![
                format!("{}<div class=\"sub\">{}</div>", esc(&k.name), esc(&k.id)),
                format!("…{}", esc(&k.last4)),
                state,
                esc(&dash(&k.allowed_models.join(", "))),
                limits(&k.limits),
                counters.map_or_else(|| "-".into(), |c| count(c.requests)),
                counters.map_or_else(|| "-".into(), |c| count(c.tokens())),
                counters.map_or_else(|| "-".into(), |c| usd(c.cost_usd)),
                spend(row.spend_today_usd),
                spend(row.spend_month_usd),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "Key",
            "Secret",
            "State",
            "Models",
            "Limits",
            "Requests 24 h",
            "Tokens 24 h",
            "Cost 24 h",
            "Spend today",
            "Spend month",
        ],
        &rows,
    );
    if usage.recorded().is_none() {
        out.push_str(&empty("no usage recorded"));
    }
    out
}

fn limits(l: &Limits) -> String {
    if l.is_unlimited() {
        return "-".into();
    }
    let parts: Vec<String> = [
        (l.rpm, "rpm"),
        (l.tpm, "tpm"),
        (l.rpd, "rpd"),
        (u64::from(l.max_concurrent), "concurrent"),
    ]
    .into_iter()
    .filter(|(v, _)| *v > 0)
    .map(|(v, name)| format!("{} {name}", count(v)))
    .collect();
    parts.join(", ")
}

/// Requests, tokens, errors and latency over `range`, and the range's totals by model.
pub fn usage_page(range: Range, starts: &[u64], over_time: &Usage, by_model: &Usage) -> String {
    let mut out = String::from("<p class=\"ranges\">");
    for r in Range::ALL {
        let current = if r == range {
            " aria-current=\"page\""
        } else {
            ""
        };
        out.push_str(&format!(
            "<a href=\"/ui/usage?range={0}\"{current}>{0}</a>",
            r.name
        ));
    }
    out.push_str("</p>\n");
    let Some(report) = over_time.recorded() else {
        out.push_str(&empty("no usage recorded"));
        return out;
    };
    let hourly = range.group_by() == "hour";
    let buckets = per_bucket(report, starts, range.bucket_ms);
    let col = |f: fn(&Counters) -> f64| buckets.iter().map(f).collect::<Vec<f64>>();
    let whole = |v: f64| count(v.round() as u64);
    out.push_str("<section class=\"charts\">");
    out.push_str(&bars(
        "Requests",
        starts,
        hourly,
        &[
            Series {
                name: "succeeded",
                class: "s0",
                values: col(|c| c.requests.saturating_sub(c.errors) as f64),
            },
            Series {
                name: "errors",
                class: "s2",
                values: col(|c| c.errors as f64),
            },
        ],
        whole,
    ));
    out.push_str(&bars(
        "Tokens",
        starts,
        hourly,
        &[
            Series {
                name: "input",
                class: "s0",
                values: col(|c| c.input_tokens as f64),
            },
            Series {
                name: "output",
                class: "s1",
                values: col(|c| c.output_tokens as f64),
            },
        ],
        whole,
    ));
    out.push_str(&bars(
        "Errors",
        starts,
        hourly,
        &[Series {
            name: "errors",
            class: "s2",
            values: col(|c| c.errors as f64),
        }],
        whole,
    ));
    out.push_str(&bars(
        "Mean latency",
        starts,
        hourly,
        &[Series {
            name: "latency",
            class: "s3",
            values: col(|c| c.mean_latency_ms() as f64),
        }],
        |v| format!("{} ms", v.round()),
    ));
    out.push_str("</section>\n<h2>By model</h2>\n");
    let Some(models) = by_model.recorded() else {
        out.push_str(&empty("no usage recorded"));
        return out;
    };
    let mut rows: Vec<Vec<String>> = models
        .rows
        .iter()
        .map(|r| totals_row(&esc(&r.group), &r.counters))
        .collect();
    rows.push(totals_row("<b>all</b>", &models.totals));
    out.push_str(&table(
        &[
            "Model",
            "Requests",
            "Errors",
            "Input tokens",
            "Output tokens",
            "Cost",
            "Mean latency",
        ],
        &rows,
    ));
    out
}

fn totals_row(name: &str, c: &Counters) -> Vec<String> {
    vec![
        name.into(),
        count(c.requests),
        count(c.errors),
        count(c.input_tokens),
        count(c.output_tokens),
        usd(c.cost_usd),
        format!("{} ms", c.mean_latency_ms()),
    ]
}
