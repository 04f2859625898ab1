//! Choosing upstreams for a request: which deployments of a group may be tried, in which
//! order (power of two weighted choices over in-flight × peak-EWMA), and with which credentials.
//! Pure: time, randomness and the prompt estimate arrive as arguments.

use std::sync::Arc;

use super::table::{Deployment, ModelGroup, Strategy};

/// One upstream and credential to try.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The deployment.
    pub deployment: Arc<Deployment>,
    /// Index of the credential (0 for an endpoint without credentials).
    pub slot: usize,
}

impl Candidate {
    /// The credential id, empty for an endpoint without credentials.
    pub fn credential_id(&self) -> &str {
        self.deployment
            .endpoint
            .credentials
            .get(self.slot)
            .map_or("", |c| &c.id)
    }
}

/// What a request asks of a deployment.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// Unix ms now (cooldowns).
    pub now_ms: i64,
    /// Estimated prompt tokens plus `max_tokens`.
    pub tokens: u64,
    /// `n > 1` was requested.
    pub needs_n: bool,
    /// Random bits for the weighted choices.
    pub random: u64,
}

/// A group's deployments sorted for trying.
#[derive(Debug, Default)]
pub struct Picked {
    /// Candidates that fit, healthy first, in order.
    pub fit: Vec<Candidate>,
    /// Candidates whose context window is known to be too small, in order.
    pub too_small: Vec<Candidate>,
    /// The earliest end of a cooldown that excluded a deployment, if any did.
    pub cooled_until: Option<i64>,
    /// Deployments skipped because they cannot serve `n > 1`.
    pub unsupported_n: usize,
}

/// A deployment as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Relative weight (0 counts as 1).
    pub weight: u32,
    /// Lower is better.
    pub cost: f64,
}

/// Orders a group's deployments for `ask` under `strategy`.
pub fn pick(group: &ModelGroup, ask: &Ask, strategy: Strategy) -> Picked {
    let mut picked = Picked::default();
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    let mut too_small = Vec::new();
    for d in &group.deployments {
        if ask.needs_n && !d.endpoint.kind.supports_n() {
            picked.unsupported_n += 1;
            continue;
        }
        let slots: Vec<usize> = (0..d.endpoint.slots())
            // lmrelay's per-key filter: a credential serves only the models it matches.
            .filter(|&s| {
                d.endpoint
                    .credentials
                    .get(s)
                    .is_none_or(|c| c.serves(&d.upstream_model))
            })
            .filter(|&s| {
                let until = d.cooled_until(s);
                if until > ask.now_ms {
                    picked.cooled_until = Some(picked.cooled_until.map_or(until, |m| m.min(until)));
                    false
                } else {
                    true
                }
            })
            .collect();
        if slots.is_empty() {
            continue;
        }
        let window = d.context_window();
        let entry = (d, slots);
        if window != 0 && ask.tokens > u64::from(window) {
            too_small.push(entry);
        } else if d.endpoint.healthy {
            healthy.push(entry);
        } else {
            unhealthy.push(entry);
        }
    }
    let loads: Vec<Load> = healthy
        .iter()
        .map(|(d, _)| Load {
            weight: d.weight,
            cost: cost(d, strategy),
        })
        .collect();
    let order = match strategy {
        Strategy::PeakEwma => p2c_order(&loads, ask.random),
        Strategy::Shuffle => weighted_shuffle(&loads, ask.random),
        Strategy::LeastBusy => by_cost(&loads, (0..loads.len()).collect()),
    };
    let expand = |out: &mut Vec<Candidate>, (d, slots): &(&Arc<Deployment>, Vec<usize>)| {
        out.extend(slots.iter().map(|&slot| Candidate {
            deployment: Arc::clone(d),
            slot,
        }));
    };
    for i in order {
        expand(&mut picked.fit, &healthy[i]);
    }
    // Unhealthy last, in preference order: a probe can be wrong, and a request that might
    // succeed beats a certain 502.
    for entry in &unhealthy {
        expand(&mut picked.fit, entry);
    }
    // Larger windows first among those that do not fit.
    too_small.sort_by_key(|(d, _)| std::cmp::Reverse(d.context_window()));
    for entry in &too_small {
        expand(&mut picked.too_small, entry);
    }
    picked
}

/// A deployment's cost: requests in flight here and queued at the server, times its peak-EWMA
/// latency (1 ms floor so an unmeasured one still counts its load); ×4 when the model is
/// known to be unloaded. `LeastBusy` ignores latency.
fn cost(d: &Deployment, strategy: Strategy) -> f64 {
    let load = f64::from(d.target.outstanding()) + f64::from(d.endpoint.queued) + 1.0;
    let latency = match strategy {
        Strategy::LeastBusy => 1.0,
        _ => (d.target.ewma_us() as f64).max(1_000.0),
    };
    let cold = if d.is_warm() { 1.0 } else { 4.0 };
    load * latency * cold
}

/// Power of two choices: draw two distinct deployments by weight, try the cheaper first, then
/// the rest cheapest first.
pub fn p2c_order(loads: &[Load], random: u64) -> Vec<usize> {
    let mut rest: Vec<usize> = (0..loads.len()).collect();
    if loads.len() < 2 {
        return rest;
    }
    let a = draw(loads, &rest, random & 0xffff_ffff);
    rest.retain(|&i| i != a);
    let b = draw(loads, &rest, random >> 32);
    rest.retain(|&i| i != b);
    let (first, second) = if loads[b].cost < loads[a].cost {
        (b, a)
    } else {
        (a, b)
    };
    let mut order = vec![first];
    rest.push(second);
    order.extend(by_cost(loads, rest));
    order
}

/// Weighted random order without replacement.
pub fn weighted_shuffle(loads: &[Load], mut random: u64) -> Vec<usize> {
    let mut rest: Vec<usize> = (0..loads.len()).collect();
    let mut order = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let i = draw(loads, &rest, random & 0xffff_ffff);
        random = random.rotate_right(17).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        rest.retain(|&j| j != i);
        order.push(i);
    }
    order
}

/// `indices` sorted by cost, ties kept in their given order.
fn by_cost(loads: &[Load], mut indices: Vec<usize>) -> Vec<usize> {
    indices.sort_by(|&a, &b| loads[a].cost.total_cmp(&loads[b].cost));
    indices
}

/// Draws one of `among` with probability proportional to weight, from 32 random bits.
fn draw(loads: &[Load], among: &[usize], random: u64) -> usize {
    let weight = |i: usize| u64::from(loads[i].weight.max(1));
    let total: u64 = among.iter().map(|&i| weight(i)).sum();
    let mut point = (random * total) >> 32;
    for &i in among {
        let w = weight(i);
        if point < w {
            return i;
        }
        point -= w;
    }
    among[among.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::RoutingTable;
    use switchyard_proto::v1;

    fn load(weight: u32, cost: f64) -> Load {
        Load { weight, cost }
    }

    #[test]
    fn p2c_table() {
        // (loads, random) → order. Random's low half draws the first, high half the second.
        let half = 1u64 << 31; // the middle of the 32-bit range
        type Case = (Vec<Load>, u64, Vec<usize>);
        let cases: Vec<Case> = vec![
            (vec![], 0, vec![]),
            (vec![load(1, 5.0)], 0, vec![0]),
            // draws 0 then 1; 1 is cheaper
            (vec![load(1, 5.0), load(1, 1.0)], 0, vec![1, 0]),
            // draws 1 (low half at the middle) then 0; 0 is cheaper
            (vec![load(1, 1.0), load(1, 5.0)], half, vec![0, 1]),
            // draws 0 and 1 from three; 2 is cheapest but was not drawn, so it comes after
            (
                vec![load(1, 3.0), load(1, 2.0), load(1, 1.0)],
                0,
                vec![1, 2, 0],
            ),
            // weight 3 of 4 at index 1: the middle point lands in it
            (vec![load(1, 1.0), load(3, 9.0)], half, vec![0, 1]),
        ];
        for (loads, random, want) in cases {
            assert_eq!(p2c_order(&loads, random), want, "{loads:?} {random}");
        }
    }

    #[test]
    fn weights_shape_the_draw() {
        let loads = [load(1, 1.0), load(9, 1.0)];
        let mut firsts = [0usize; 2];
        let mut rng = 0x1234_5678_9abc_def0u64;
        for _ in 0..2_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            firsts[weighted_shuffle(&loads, rng)[0]] += 1;
        }
        assert!(
            (1_600..1_990).contains(&firsts[1]),
            "weight 9 of 10 should lead about 90%: {firsts:?}"
        );
    }

    fn group(deployments: &[(&str, bool, u32, &str)]) -> (RoutingTable, Arc<ModelGroup>) {
        // (endpoint id, healthy, context length, kind); one credential-less endpoint each
        let wire = v1::RoutingTable {
            version: 1,
            endpoints: deployments
                .iter()
                .map(|(id, healthy, _, kind)| v1::RouteEndpoint {
                    id: (*id).into(),
                    kind: (*kind).into(),
                    base_url: format!("http://{id}/v1"),
                    healthy: *healthy,
                    ..Default::default()
                })
                .collect(),
            models: vec![v1::ModelRoute {
                name: "m".into(),
                deployments: deployments
                    .iter()
                    .map(|(id, _, ctx, _)| v1::Deployment {
                        endpoint_id: (*id).into(),
                        upstream_model: "u".into(),
                        weight: 1,
                        context_length: *ctx,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let table = RoutingTable::compile(&wire, None);
        let g = table.models["m"].clone();
        (table, g)
    }

    fn ids(c: &[Candidate]) -> Vec<&str> {
        c.iter().map(|c| &*c.deployment.endpoint.id).collect()
    }

    const ASK: Ask = Ask {
        now_ms: 1_000,
        tokens: 100,
        needs_n: false,
        random: 0,
    };

    #[test]
    fn pick_sorts_health_fit_and_support() {
        let (_t, g) = group(&[
            ("a", false, 0, "openai"),
            ("b", true, 50, "openai"),
            ("c", true, 0, "ollama"),
            ("d", true, 4000, "openai"),
            ("e", true, 80, "openai"),
        ]);
        let p = pick(&g, &ASK, Strategy::LeastBusy);
        assert_eq!(ids(&p.fit), vec!["c", "d", "a"]);
        assert_eq!(ids(&p.too_small), vec!["e", "b"], "larger window first");
        let p = pick(
            &g,
            &Ask {
                needs_n: true,
                ..ASK
            },
            Strategy::LeastBusy,
        );
        assert_eq!(ids(&p.fit), vec!["d", "a"]);
        assert_eq!(p.unsupported_n, 1);
    }

    #[test]
    fn pick_skips_cooled_targets_and_reports_the_earliest_end() {
        let (_t, g) = group(&[("a", true, 0, "openai"), ("b", true, 0, "openai")]);
        g.deployments[0].target.creds[0].cool_until(5_000);
        let p = pick(&g, &ASK, Strategy::LeastBusy);
        assert_eq!(ids(&p.fit), vec!["b"]);
        assert_eq!(p.cooled_until, Some(5_000));
        g.deployments[1].endpoint.wide.creds[0].cool_until(3_000);
        let p = pick(&g, &ASK, Strategy::LeastBusy);
        assert!(p.fit.is_empty());
        assert_eq!(p.cooled_until, Some(3_000));
        let p = pick(
            &g,
            &Ask {
                now_ms: 6_000,
                ..ASK
            },
            Strategy::LeastBusy,
        );
        assert_eq!(ids(&p.fit), vec!["a", "b"], "cooldowns end on time");
    }

    #[test]
    fn least_busy_prefers_fewer_in_flight() {
        let (_t, g) = group(&[("a", true, 0, "openai"), ("b", true, 0, "openai")]);
        let _busy = g.deployments[0].target.start();
        let p = pick(&g, &ASK, Strategy::LeastBusy);
        assert_eq!(ids(&p.fit), vec!["b", "a"]);
        let p = pick(&g, &ASK, Strategy::PeakEwma);
        assert_eq!(
            ids(&p.fit),
            vec!["b", "a"],
            "p2c of two always compares both"
        );
    }
}
