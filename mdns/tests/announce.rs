//! An announcement made by this process is found by a browse in the same process.

use std::time::Duration;

use switchyard_mdns::{
    Role, advertise_agent, advertise_control_plane, browse_agents, first_control_plane,
};

#[tokio::test]
async fn control_plane_and_agent_announcements_are_found() {
    // A name no other test or host uses, so a stray announcement cannot satisfy the test.
    let node = format!("mdns-test-{}", std::process::id());
    let cp = advertise_control_plane(&node, 47001).unwrap();
    let agent = advertise_agent(&node, 47001).unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let found = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "control plane {node} never resolved"
        );
        if let Some(found) = first_control_plane(Duration::from_secs(3)).await.unwrap()
            && found.node == node
        {
            break found;
        }
    };
    assert_eq!(found.role, Role::ControlPlane);
    assert_eq!(found.port, 47001);
    assert!(!found.addresses.is_empty());

    let agents = browse_agents(Duration::from_secs(3)).await.unwrap();
    assert!(
        agents
            .iter()
            .any(|a| a.node == node && a.role == Role::Agent),
        "{agents:?}"
    );
    cp.stop().await;
    agent.stop().await;
}
