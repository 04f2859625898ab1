//! Client conformance with the real `openai` Python SDK and LangChain's `ChatOpenAI`: runs
//! tests/conformance/openai_sdk.py against an in-process edge and a fake upstream. The venv is
//! created once under `target/py-conformance` (guarded by a file lock). Without Python or pip
//! this test fails; it never skips.
#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding outside #[test] fns panics on failure"
)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use switchyard_edge::Config;
use switchyard_tests::edge_harness::{Table, TestEdge};
use switchyard_tests::openai_fake::{Behavior, OpenAiFake};

const KEY: &str = "sy_live_conformanceconformance";
const NARROW: &str = "sy_test_narrownarrownarrownarrow";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}. Install python3 with venv and pip (Debian: apt-get install python3-venv python3-pip)."));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv's python, creating the venv and installing the pinned packages once.
fn venv_python() -> PathBuf {
    let target = target_dir();
    std::fs::create_dir_all(&target).unwrap();
    let venv = target.join("py-conformance");
    let requirements = workspace().join("tests/conformance/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let marker = venv.join(".switchyard-installed");
    // Parallel test processes take turns; the first installs, the rest find the marker.
    let lock = File::create(target.join("py-conformance.lock")).unwrap();
    lock.lock().unwrap();
    let python = venv.join("bin").join("python");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        run(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
            "creating the Python venv (python3 -m venv)",
        );
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
            "installing the pinned openai and langchain-openai packages with pip",
        );
        std::fs::write(&marker, &wanted).unwrap();
    }
    lock.unlock().unwrap();
    python
}

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
