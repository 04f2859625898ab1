//! Capability aliases at the edge: the control plane resolves `fast`, `coding`, `vision`, ...
//! into ordered member groups; the edge takes the first member that can answer now (a healthy
//! endpoint with a credential not cooling down) and falls through the others in their order.

use std::sync::Arc;

use super::table::{ModelGroup, RoutingTable};

/// Whether `group` has a deployment on a healthy endpoint with a slot not cooling at `now_ms`.
pub fn available(group: &ModelGroup, now_ms: i64) -> bool {
    group.deployments.iter().any(|d| {
        d.endpoint.healthy && (0..d.endpoint.slots()).any(|slot| d.cooled_until(slot) <= now_ms)
    })
}

/// The member groups of alias `name` in the order to try them at `now_ms`: the available ones
/// in the table's order, then the rest in the table's order. Empty for a name that is not a
/// capability alias.
pub fn members(table: &RoutingTable, name: &str, now_ms: i64) -> Vec<Arc<ModelGroup>> {
    let Some(names) = table.alias_members.get(name) else {
        return Vec::new();
    };
    let groups = names.iter().filter_map(|m| table.models.get(m).cloned());
    let (mut ready, resting): (Vec<_>, Vec<_>) = groups.partition(|g| available(g, now_ms));
    ready.extend(resting);
    ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::v1;

    fn wire(healthy: [bool; 3], cooled: Option<&str>) -> v1::RoutingTable {
        let endpoints = ["a", "b", "c"]
            .iter()
            .zip(healthy)
            .map(|(id, healthy)| v1::RouteEndpoint {
                id: (*id).into(),
                kind: "openai".into(),
                base_url: format!("http://127.0.0.1:1/{id}/v1"),
                healthy,
                ..Default::default()
            })
            .collect();
        let models = ["a", "b", "c"]
            .iter()
            .map(|id| v1::ModelRoute {
                name: format!("m-{id}"),
                deployments: vec![v1::Deployment {
                    endpoint_id: (*id).into(),
                    upstream_model: format!("m-{id}"),
                    weight: 1,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        let cooldowns = cooled
            .map(|id| v1::Cooldown {
                endpoint_id: id.into(),
                model: format!("m-{id}"),
                until_ms: i64::MAX,
                ..Default::default()
            })
            .into_iter()
            .collect();
        v1::RoutingTable {
            version: 1,
            endpoints,
            models,
            cooldowns,
            aliases: vec![v1::Alias {
                name: "fast".into(),
                target: "m-a".into(),
                members: vec!["m-a".into(), "m-b".into(), "m-c".into(), "gone".into()],
                rule: "fast".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_first_member_that_can_answer_leads_and_the_rest_follow_in_order() {
        type Row<'a> = ([bool; 3], Option<&'a str>, &'a [&'a str]);
        let rows: &[Row] = &[
            ([true, true, true], None, &["m-a", "m-b", "m-c"]),
            ([false, true, true], None, &["m-b", "m-c", "m-a"]),
            ([true, true, true], Some("a"), &["m-b", "m-c", "m-a"]),
            ([true, false, true], Some("a"), &["m-c", "m-a", "m-b"]),
            ([false, false, false], None, &["m-a", "m-b", "m-c"]),
        ];
        for (i, (healthy, cooled, want)) in rows.iter().enumerate() {
            let table = RoutingTable::compile(&wire(*healthy, *cooled), None);
            let got: Vec<String> = members(&table, "fast", 1_000)
                .iter()
                .map(|g| g.name.to_string())
                .collect();
            assert_eq!(got, *want, "row {i}");
            let first = table.resolve("fast").map(|g| g.name.to_string());
            assert_eq!(first.as_deref(), want.first().copied(), "row {i}");
        }
        let table = RoutingTable::compile(&wire([true; 3], None), None);
        assert!(members(&table, "m-a", 1_000).is_empty());
    }
}
