//! Client conformance with the real `openai` Python SDK and LangChain's `ChatOpenAI`: runs
//! tests/conformance/openai_sdk.py against an in-process edge and a fake upstream. The venv is
//! created once under `target/py-conformance` (guarded by a file lock). Without Python or pip
//! this test fails; it never skips.

use std::time::Duration;

use switchyard_edge::Config;
use switchyard_tests::edge_harness::{Table, TestEdge};
use switchyard_tests::openai_fake::{Behavior, OpenAiFake};
use switchyard_tests::python::{venv_python, workspace};

const KEY: &str = "sy_live_conformanceconformance";
const NARROW: &str = "sy_test_narrownarrownarrownarrow";

#[tokio::test]
async fn openai_sdk_and_langchain_work_against_the_edge() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let fake = OpenAiFake::start().await.unwrap();
    fake.script(
        "limited-up",
        vec![Behavior::rate_limited(&[("retry-after", "30")])],
    );
    fake.script("broken-up", vec![Behavior::status(500, "boom")]);
    let table = Table::new(1)
        .endpoint("fake", &fake.base_url())
        .endpoint_with("ollama", &fake.base_url(), |e| e.kind = "ollama".into())
        .model("gpt-test", &[("fake", "gpt-test-up")])
        .model("local", &[("ollama", "llama3:8b")])
        .model("limited", &[("fake", "limited-up")])
        .model("broken", &[("fake", "broken-up")])
        .key("k-all", KEY, |_| {})
        .key("k-narrow", NARROW, |k| {
            k.allowed_models = vec!["gpt-*".into()]
        })
        .build();
    let cfg = Config {
        max_body_bytes: 256 * 1024,
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(table)).await.unwrap();
    let script = workspace().join("tests/conformance/openai_sdk.py");
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&script)
        .env("SWITCHYARD_URL", format!("{}/v1", edge.url))
        .env("SWITCHYARD_KEY", KEY)
        .env("SWITCHYARD_NARROW_KEY", NARROW)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the conformance script did not finish in 180 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "conformance failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
