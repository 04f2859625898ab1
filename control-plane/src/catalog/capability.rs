//! Capability aliases: `fast`, `coding`, `vision`, `embed`, `free` and `quality`, each an
//! ordered list of model groups resolved from what is known about them.
//!
//! The rules, applied by [`resolve`] (pure: facts in, ordered members out):
//! - a group is an *embedding* group when a deployment lists the `embed` capability or its
//!   upstream id contains `embed`; every alias but `embed` leaves embedding groups out;
//! - `fast`: groups with a measured time to first byte, lowest first;
//! - `coding`: groups listing `code`/`coding`, or whose upstream id names a coding model
//!   (`code`, `coder`, `codestral`, `devstral`), largest context window first;
//! - `vision`: groups listing `vision` (they accept images), fastest measured first;
//! - `embed`: embedding groups, by name;
//! - `free`: groups every deployment of which is free (the provider says so, or a local
//!   server), fastest measured first, then largest window;
//! - `quality`: every chat group, highest output price first (the market's own ranking), then
//!   largest window.
//!
//! Every list is health-sorted first (healthy, then cooling down, then down; stable within
//! each), keeps at most [`MAX_MEMBERS`] groups, and an alias with no member is not served. A
//! name a user alias or a model group already has is not resolved: the user's definition wins.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use switchyard_proto::v1::{ModelRoute, RouteEndpoint};

use crate::state::{ClusterState, Latency};

/// Most members one capability alias lists.
pub const MAX_MEMBERS: usize = 8;

/// The built-in alias names, in the order they are listed.
pub const RULES: [&str; 6] = ["fast", "coding", "vision", "embed", "free", "quality"];

/// Whether a group can answer now, as the control plane last knew it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// A deployment's endpoint is healthy and not cooling down.
    #[default]
    Healthy,
    /// Every healthy deployment is cooling down.
    Cooling,
    /// No deployment's endpoint is healthy.
    Down,
}

/// What is known of one model group, gathered from the table, the catalogs and measurements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupFacts {
    /// The group's public name.
    pub name: String,
    /// Upstream model ids of its deployments.
    pub upstream: Vec<String>,
    /// Capabilities any deployment lists (`vision`, `embed`, `tools`, `code`, ...).
    pub capabilities: BTreeSet<String>,
    /// Every deployment costs nothing per token.
    pub free: bool,
    /// The largest context window, tokens; 0 = unknown.
    pub context_length: u32,
    /// The highest output price, US dollars per 1M tokens.
    pub output_usd_per_mtok: f64,
    /// Whether it can answer now.
    pub health: Health,
    /// The lowest measured median time to first byte of a deployment, ms.
    pub ttfb_ms: Option<u64>,
}

impl GroupFacts {
    fn has(&self, capability: &str) -> bool {
        self.capabilities.contains(capability)
    }

    fn named(&self, hints: &[&str]) -> bool {
        self.upstream.iter().chain([&self.name]).any(|id| {
            let id = id.to_ascii_lowercase();
            hints.iter().any(|h| id.contains(h))
        })
    }

    fn embedding(&self) -> bool {
        self.has("embed") || self.named(&["embed"])
    }
}

/// One resolved capability alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The alias name, which is also its rule.
    pub name: &'static str,
    /// Model groups, best first.
    pub members: Vec<String>,
}

/// Resolves every built-in alias whose name is not in `taken` (user aliases and model groups)
/// from `groups`. Pure; see the module doc for the rules.
pub fn resolve(groups: &[GroupFacts], taken: &BTreeSet<String>) -> Vec<Resolved> {
    RULES
        .iter()
        .filter(|name| !taken.contains(**name))
        .filter_map(|&name| {
            let members = members(name, groups);
            (!members.is_empty()).then_some(Resolved { name, members })
        })
        .collect()
}

/// The ordered members of rule `name`.
fn members(name: &str, groups: &[GroupFacts]) -> Vec<String> {
    let unmeasured = u64::MAX;
    let mut picked: Vec<&GroupFacts> = groups
        .iter()
        .filter(|g| match name {
            "embed" => g.embedding(),
            "fast" => !g.embedding() && g.ttfb_ms.is_some(),
            "coding" => {
                !g.embedding()
                    && (g.has("code") || g.has("coding") || g.named(&["code", "coder", "devstral"]))
            }
            "vision" => !g.embedding() && g.has("vision"),
            "free" => !g.embedding() && g.free,
            _ => !g.embedding(),
        })
        .collect();
    // Each rule's own order; the health sort below is stable, so it survives within a class.
    match name {
        "coding" => picked.sort_by_key(|g| (Reverse(g.context_length), g.name.clone())),
        "embed" => picked.sort_by_key(|g| g.name.clone()),
        "quality" => picked.sort_by(|a, b| {
            b.output_usd_per_mtok
                .total_cmp(&a.output_usd_per_mtok)
                .then(b.context_length.cmp(&a.context_length))
                .then(a.name.cmp(&b.name))
        }),
        _ => picked.sort_by_key(|g| {
            (
                g.ttfb_ms.unwrap_or(unmeasured),
                Reverse(g.context_length),
                g.name.clone(),
            )
        }),
    }
    picked.sort_by_key(|g| g.health);
    picked
        .into_iter()
        .take(MAX_MEMBERS)
        .map(|g| g.name.clone())
        .collect()
}

/// Gathers the facts of each compiled model route: its deployments' listing facts, the health
/// of their endpoints, the state's cooldowns, and measured latency.
pub fn gather(
    state: &ClusterState,
    models: &[ModelRoute],
    endpoints: &[RouteEndpoint],
) -> Vec<GroupFacts> {
    let healthy: BTreeMap<&str, bool> = endpoints
        .iter()
        .map(|e| (e.id.as_str(), e.healthy))
        .collect();
    // (endpoint, model) pairs resting; an empty model rests the whole endpoint.
    let resting: BTreeSet<(&str, &str)> = state
        .cooldowns
        .values()
        .map(|c| (c.endpoint_id.as_str(), c.model.as_str()))
        .collect();
    let cooling = |endpoint: &str, model: &str| {
        resting.contains(&(endpoint, model)) || resting.contains(&(endpoint, ""))
    };
    models
        .iter()
        .map(|m| {
            let mut facts = GroupFacts {
                name: m.name.clone(),
                free: !m.deployments.is_empty(),
                health: Health::Down,
                ..Default::default()
            };
            for d in &m.deployments {
                facts.upstream.push(d.upstream_model.clone());
                facts.capabilities.extend(d.capabilities.iter().cloned());
                facts.free &= d.free;
                facts.context_length = facts.context_length.max(d.context_length);
                facts.output_usd_per_mtok = facts.output_usd_per_mtok.max(d.output_usd_per_mtok);
                let up = healthy
                    .get(d.endpoint_id.as_str())
                    .copied()
                    .unwrap_or(false);
                let health = match (up, cooling(&d.endpoint_id, &d.upstream_model)) {
                    (false, _) => Health::Down,
                    (true, true) => Health::Cooling,
                    (true, false) => Health::Healthy,
                };
                facts.health = facts.health.min(health);
                let measured = state
                    .latency
                    .get(&Latency::key_of(&d.endpoint_id, &d.upstream_model))
                    .map(|l| l.ttfb_ms);
                facts.ttfb_ms = match (facts.ttfb_ms, measured) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            facts
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> GroupFacts {
        GroupFacts {
            name: name.into(),
            upstream: vec![name.into()],
            ..Default::default()
        }
    }

    fn with(name: &str, edit: impl FnOnce(&mut GroupFacts)) -> GroupFacts {
        let mut g = group(name);
        edit(&mut g);
        g
    }

    fn caps(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn aliases_resolve_by_capability_health_and_measurement() {
        let groups = vec![
            with("llama-8b", |g| {
                g.ttfb_ms = Some(120);
                g.free = true;
                g.context_length = 8192;
            }),
            with("gpt-big", |g| {
                g.ttfb_ms = Some(400);
                g.output_usd_per_mtok = 10.0;
                g.context_length = 128_000;
                g.capabilities = caps(&["vision", "tools"]);
            }),
            with("qwen2.5-coder", |g| {
                g.free = true;
                g.context_length = 32768;
                g.ttfb_ms = Some(90);
                g.health = Health::Cooling;
            }),
            with("codestral", |g| {
                g.output_usd_per_mtok = 0.9;
                g.context_length = 256_000;
            }),
            with("pixtral", |g| {
                g.capabilities = caps(&["vision"]);
                g.ttfb_ms = Some(200);
                g.free = true;
                g.health = Health::Down;
            }),
            with("nomic", |g| {
                g.upstream = vec!["nomic-embed-text".into()];
                g.free = true;
                g.ttfb_ms = Some(5);
            }),
            with("e5", |g| g.capabilities = caps(&["embed"])),
        ];
        let none = BTreeSet::new();
        type Row<'a> = (&'a str, &'a [&'a str]);
        let rows: &[Row] = &[
            // Measured only, lowest first; the cooling coder drops behind the healthy ones, the
            // embedding model is never a chat alias.
            ("fast", &["llama-8b", "gpt-big", "qwen2.5-coder", "pixtral"]),
            // Listed or named as coding models, largest window first, health first.
            ("coding", &["codestral", "qwen2.5-coder"]),
            // Accepts images: the down one last.
            ("vision", &["gpt-big", "pixtral"]),
            ("embed", &["e5", "nomic"]),
            ("free", &["llama-8b", "qwen2.5-coder", "pixtral"]),
            (
                "quality",
                &[
                    "gpt-big",
                    "codestral",
                    "llama-8b",
                    "qwen2.5-coder",
                    "pixtral",
                ],
            ),
        ];
        let resolved = resolve(&groups, &none);
        let got: Vec<(&str, Vec<&str>)> = resolved
            .iter()
            .map(|r| (r.name, r.members.iter().map(String::as_str).collect()))
            .collect();
        let want: Vec<(&str, Vec<&str>)> = rows.iter().map(|(n, m)| (*n, m.to_vec())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn facts_are_gathered_from_health_cooldowns_and_measurements() {
        use crate::state::Cooldown;
        use switchyard_proto::v1::Deployment;
        let route = |name: &str, endpoint: &str| ModelRoute {
            name: name.into(),
            deployments: vec![Deployment {
                endpoint_id: endpoint.into(),
                upstream_model: name.into(),
                free: true,
                context_length: 4096,
                capabilities: vec!["vision".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let endpoint = |id: &str, healthy: bool| RouteEndpoint {
            id: id.into(),
            healthy,
            ..Default::default()
        };
        let mut state = ClusterState::default();
        state.cooldowns.insert(
            "c".into(),
            Cooldown {
                endpoint_id: "b".into(),
                credential_id: String::new(),
                model: String::new(),
                until_ms: 10,
                reason: "rate_limited".into(),
            },
        );
        let measured = Latency {
            endpoint_id: "a".into(),
            model: "m-a".into(),
            ttfb_ms: 42,
            ..Default::default()
        };
        state.latency.insert(measured.key(), measured);
        let models = [route("m-a", "a"), route("m-b", "b"), route("m-c", "c")];
        let endpoints = [
            endpoint("a", true),
            endpoint("b", true),
            endpoint("c", false),
        ];
        let gathered = gather(&state, &models, &endpoints);
        let got: Vec<(&str, Health, Option<u64>)> = gathered
            .iter()
            .map(|f| {
                assert!(
                    f.free && f.has("vision") && f.context_length == 4096,
                    "{f:?}"
                );
                (f.name.as_str(), f.health, f.ttfb_ms)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("m-a", Health::Healthy, Some(42)),
                ("m-b", Health::Cooling, None),
                ("m-c", Health::Down, None),
            ]
        );
    }

    #[test]
    fn user_definitions_win_and_empty_aliases_are_not_served() {
        let groups = vec![
            with("llama", |g| g.ttfb_ms = Some(50)),
            with("other", |g| g.ttfb_ms = Some(60)),
        ];
        let taken: BTreeSet<String> = ["fast".to_string(), "quality".to_string()].into();
        let names: Vec<&str> = resolve(&groups, &taken).iter().map(|r| r.name).collect();
        // No coding, vision, embed or free group exists; fast and quality are the user's.
        assert_eq!(names, Vec::<&str>::new());
        let names: Vec<&str> = resolve(&groups, &BTreeSet::new())
            .iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, vec!["fast", "quality"]);
        // At most MAX_MEMBERS members.
        let many: Vec<GroupFacts> = (0..20)
            .map(|i| with(&format!("m{i:02}"), |g| g.ttfb_ms = Some(i)))
            .collect();
        let fast = &resolve(&many, &BTreeSet::new())[0];
        assert_eq!(fast.members.len(), MAX_MEMBERS);
        assert_eq!(fast.members[0], "m00");
    }
}
