//! The binary's log lines, read from its stderr as a log pipeline would: no colour codes when
//! stderr is a file, and a condition that repeats on every retry is logged once, then its end.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use switchyard_tests::edge_harness::{FakeControlPlane, Table};
use switchyard_tests::fault_proxy::FaultProxy;
use switchyard_tests::harness::{init, wait_for};

const OUTAGE: &str = "no control-plane voter serves the routing table";
const ROUND: &str = "no control-plane voter answered; waiting before the next round";
const BACK: &str = "a control-plane voter serves the routing table again";

/// A child process, killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _gone = self.0.kill();
        let _reaped = self.0.wait();
    }
}

/// Checks the log holds no ANSI escape, `outages` outage warnings and `ends` end lines;
/// returns its text.
fn assert_lines(log: &Path, outages: usize, ends: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !text.contains('\x1b'),
        "ANSI escapes in a log file:\n{text}"
    );
    assert_eq!(text.matches(OUTAGE).count(), outages, "{text}");
    assert_eq!(text.matches(BACK).count(), ends, "{text}");
    text
}

fn count(log: &Path, line: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(line)
        .count()
}

/// An edge whose only control plane refuses it: the edge retries about twice a second, and the
/// outage is one warning, not one per retry. When the control plane lets it in, the end of the
/// outage is one line too. Stderr is a file, so no line carries an ANSI escape.
#[tokio::test]
async fn an_unreachable_control_plane_is_one_warning_and_its_end_one_line() {
    init();
    let control_plane = FakeControlPlane::start(Table::new(3).build(), true)
        .await
        .unwrap();
    let target = control_plane
        .url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(target).await.unwrap();
    // The edge dials from 127.0.0.1: the proxy refuses it until healed.
    proxy.block(&[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("edge.log");
    let child = Command::new(switchyard_tests::deploy::switchyard_bin().unwrap())
        .args(["edge", "--listen", "127.0.0.1:0", "--control-plane"])
        .arg(format!("http://{}", proxy.addr()))
        // The watch's per-round debug line shows how many retries the one warning stands for.
        .env("RUST_LOG", "info,switchyard_edge::watch=debug")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _edge = Killed(child);

    // Six rounds take the edge about two seconds (100, 200, 400, then 500 ms apart).
    wait_for(
        Duration::from_secs(20),
        "six failed watch rounds",
        || async { (count(&log, ROUND) >= 6).then_some(()) },
    )
    .await
    .unwrap();
    assert_lines(&log, 1, 0);

    proxy.heal();
    wait_for(
        Duration::from_secs(20),
        "the edge to log the outage's end",
        || async { (count(&log, BACK) >= 1).then_some(()) },
    )
    .await
    .unwrap();
    let text = assert_lines(&log, 1, 1);
    assert!(text.contains("installed routing table"), "{text}");
}
