//! A delta sequence applied to a table equals the full table, over random change sequences.

use proptest::prelude::*;

use super::*;
use crate::v1::{BrokenLink, Deployment, RouterSettings};

/// One random change to a table; indices pick among a few names so puts and removals collide.
#[derive(Debug, Clone)]
enum Change {
    Endpoint(u8, bool, u32),
    DropEndpoint(u8),
    Model(u8, Vec<u8>),
    DropModel(u8),
    Key(u8, bool),
    DropKey(u8),
    Alias(u8, u8),
    DropAlias(u8),
    Fallback(u8, bool, Vec<u8>),
    DropFallback(u8, bool),
    Cooldown(u8, u8, u8, i64),
    DropCooldown(u8, u8, u8),
    Settings(u32),
    BrokenLinks(u8),
    /// Reorders the lists, as another compile might.
    Shuffle(u64),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0u8..6, any::<bool>(), 0u32..4).prop_map(|(i, h, q)| Change::Endpoint(i, h, q)),
        (0u8..6).prop_map(Change::DropEndpoint),
        (0u8..5, prop::collection::vec(0u8..6, 0..4)).prop_map(|(i, d)| Change::Model(i, d)),
        (0u8..5).prop_map(Change::DropModel),
        (0u8..4, any::<bool>()).prop_map(|(i, r)| Change::Key(i, r)),
        (0u8..4).prop_map(Change::DropKey),
        (0u8..3, 0u8..5).prop_map(|(i, t)| Change::Alias(i, t)),
        (0u8..3).prop_map(Change::DropAlias),
        (0u8..5, any::<bool>(), prop::collection::vec(0u8..5, 0..3))
            .prop_map(|(i, c, chain)| Change::Fallback(i, c, chain)),
        (0u8..5, any::<bool>()).prop_map(|(i, c)| Change::DropFallback(i, c)),
        (0u8..4, 0u8..2, 0u8..3, 0i64..1_000).prop_map(|(e, c, m, u)| Change::Cooldown(e, c, m, u)),
        (0u8..4, 0u8..2, 0u8..3).prop_map(|(e, c, m)| Change::DropCooldown(e, c, m)),
        (0u32..4).prop_map(Change::Settings),
        (0u8..3).prop_map(Change::BrokenLinks),
        any::<u64>().prop_map(Change::Shuffle),
    ]
}

/// Puts `item` in place of the one with its key, or at the end.
fn put<T, K: PartialEq>(list: &mut Vec<T>, item: T, key: impl Fn(&T) -> K) {
    let k = key(&item);
    match list.iter().position(|x| key(x) == k) {
        Some(i) => list[i] = item,
        None => list.push(item),
    }
}

fn rotate<T>(list: &mut [T], seed: u64) {
    if !list.is_empty() {
        let n = list.len();
        list.rotate_left(usize::try_from(seed).unwrap_or(0) % n);
        if seed % 2 == 1 {
            list.reverse();
        }
    }
}

fn change_table(t: &mut RoutingTable, change: Change) {
    match change {
        Change::Endpoint(i, healthy, queued) => {
            let e = RouteEndpoint {
                id: format!("e{i}"),
                kind: "ollama".into(),
                base_url: format!("http://10.0.0.{i}:11434/v1"),
                healthy,
                facts: Some(crate::v1::BackendFacts {
                    running: queued,
                    ..Default::default()
                }),
                ..Default::default()
            };
            put(&mut t.endpoints, e, |e| e.id.clone());
        }
        Change::DropEndpoint(i) => t.endpoints.retain(|e| e.id != format!("e{i}")),
        Change::Model(i, deployments) => {
            let m = ModelRoute {
                name: format!("m{i}"),
                deployments: deployments
                    .into_iter()
                    .map(|d| Deployment {
                        endpoint_id: format!("e{d}"),
                        upstream_model: format!("m{i}"),
                        weight: 1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            put(&mut t.models, m, |m| m.name.clone());
        }
        Change::DropModel(i) => t.models.retain(|m| m.name != format!("m{i}")),
        Change::Key(i, revoked) => {
            let k = ClientKey {
                id: format!("k{i}"),
                sha256: vec![i; 32],
                revoked,
                ..Default::default()
            };
            put(&mut t.keys, k, |k| k.id.clone());
        }
        Change::DropKey(i) => t.keys.retain(|k| k.id != format!("k{i}")),
        Change::Alias(i, target) => {
            // Capability aliases carry their resolved members; a change to them is a change.
            let a = Alias {
                name: format!("a{i}"),
                target: format!("m{target}"),
                members: (0..target % 3).map(|m| format!("m{m}")).collect(),
                rule: if target % 2 == 0 {
                    String::new()
                } else {
                    "fast".to_owned()
                },
            };
            put(&mut t.aliases, a, |a| a.name.clone());
        }
        Change::DropAlias(i) => t.aliases.retain(|a| a.name != format!("a{i}")),
        Change::Fallback(i, context_window, chain) => {
            let f = Fallback {
                model: format!("m{i}"),
                chain: chain.into_iter().map(|c| format!("m{c}")).collect(),
                context_window,
            };
            put(&mut t.fallbacks, f, fallback_key);
        }
        Change::DropFallback(i, c) => t
            .fallbacks
            .retain(|f| fallback_key(f) != (format!("m{i}"), c)),
        Change::Cooldown(e, c, m, until) => {
            let cd = Cooldown {
                endpoint_id: format!("e{e}"),
                credential_id: format!("c{c}"),
                model: format!("m{m}"),
                until_ms: until,
                reason: "rate_limited".into(),
            };
            put(&mut t.cooldowns, cd, cooldown_key);
        }
        Change::DropCooldown(e, c, m) => t
            .cooldowns
            .retain(|cd| cooldown_key(cd) != (format!("e{e}"), format!("c{c}"), format!("m{m}"))),
        Change::Settings(n) => {
            t.settings = (n > 0).then(|| RouterSettings {
                num_retries: n,
                ..Default::default()
            });
        }
        Change::BrokenLinks(n) => {
            t.broken_links = (0..n)
                .map(|i| BrokenLink {
                    kind: "alias".into(),
                    owner: format!("a{i}"),
                    target: "gone".into(),
                    reason: "unknown".into(),
                })
                .collect();
        }
        Change::Shuffle(seed) => {
            rotate(&mut t.endpoints, seed);
            rotate(&mut t.models, seed);
            rotate(&mut t.keys, seed);
            rotate(&mut t.cooldowns, seed);
            rotate(&mut t.fallbacks, seed);
            rotate(&mut t.aliases, seed);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Versions arrive in groups of changes, as one compile follows a batch of commits; the
    /// edge holds the first table and applies every delta after it.
    #[test]
    fn deltas_applied_in_order_equal_the_full_table(
        steps in prop::collection::vec(prop::collection::vec(change(), 1..4), 1..24),
    ) {
        let mut table = RoutingTable {
            version: 1,
            cluster_id: "c".into(),
            ..Default::default()
        };
        let mut held = table.clone();
        for changes in steps {
            let before = table.clone();
            for c in changes {
                change_table(&mut table, c);
            }
            table.version += 1;
            let message = diff(&before, &table).expect("keys are unique");
            // What goes on the wire is a delta, never the lists themselves.
            prop_assert!(message.endpoints.is_empty() && message.models.is_empty());
            held = apply(&held, &message).expect("the delta follows the held version");
            prop_assert_eq!(&held, &canonical(&table));
        }
    }
}

#[test]
fn a_delta_for_another_version_is_a_gap() {
    let v1 = RoutingTable {
        version: 1,
        cluster_id: "c".into(),
        ..Default::default()
    };
    let mut v2 = v1.clone();
    v2.version = 2;
    let mut v3 = v2.clone();
    v3.version = 3;
    change_table(&mut v3, Change::Key(1, false));
    let message = diff(&v2, &v3).expect("unique keys");
    assert_eq!(
        apply(&v1, &message),
        Err(DeltaError::Gap { base: 2, held: 1 })
    );
    assert_eq!(apply(&v1, &v1), Err(DeltaError::NotADelta));
    let mut other = v2.clone();
    other.cluster_id = "other".into();
    assert_eq!(apply(&other, &message), Err(DeltaError::OtherCluster));
    // A new cluster's table is never described as a delta.
    assert_eq!(diff(&other, &v3), None);
}

#[test]
fn a_repeated_key_is_not_described_as_a_delta() {
    let mut old = RoutingTable::default();
    change_table(&mut old, Change::Endpoint(1, true, 0));
    let mut new = old.clone();
    new.endpoints.push(new.endpoints[0].clone());
    assert_eq!(diff(&old, &new), None);
}
