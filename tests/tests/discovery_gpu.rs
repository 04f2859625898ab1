//! GPU facts through the real runner, with stand-in `nvidia-smi` scripts given by path (the
//! agent's `nvidia_smi` setting), so nothing touches the test process's environment.

use std::time::{Duration, Instant};

use switchyard_node_agent::gpu;
use switchyard_tests::discovery_fakes::write_script;

#[tokio::test]
async fn runner_passes_the_query_and_parses_the_answer() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Answers only the exact query the agent documents; anything else exits 3.
    let smi = write_script(
        dir.path(),
        "nvidia-smi",
        &format!(
            r#"[ "$1" = "{}" ] && [ "$2" = "{}" ] && [ $# -eq 2 ] || exit 3
echo '0, NVIDIA H100 80GB HBM3, 81559, 1234, 7'
echo '1, NVIDIA H100 80GB HBM3, [N/A], [N/A], [Not Supported]'"#,
            gpu::QUERY_ARGS[0],
            gpu::QUERY_ARGS[1]
        ),
    )?;
    let gpus = gpu::query(&smi.display().to_string(), Duration::from_secs(5))
        .await?
        .expect("the command exists");
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
    assert_eq!(
        (gpus[0].memory_total_mib, gpus[0].memory_used_mib),
        (81559, 1234)
    );
    assert_eq!(gpus[0].utilization_pct, 7);
    assert_eq!((gpus[1].index, gpus[1].memory_total_mib), (1, 0));
    assert_eq!(gpus[1].utilization_pct, -1);
    Ok(())
}

#[tokio::test]
async fn a_hanging_or_failing_nvidia_smi_is_an_error_not_a_hang() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hang = write_script(dir.path(), "hang", "sleep 30")?;
    let started = Instant::now();
    let err = gpu::query(&hang.display().to_string(), Duration::from_millis(300))
        .await
        .expect_err("a hang must time out");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("did not finish"), "{err}");

    let fail = write_script(
        dir.path(),
        "fail",
        "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' >&2; exit 9",
    )?;
    let err = gpu::query(&fail.display().to_string(), Duration::from_secs(5))
        .await
        .expect_err("a non-zero exit is an error");
    assert!(err.to_string().contains("NVIDIA driver"), "{err}");

    let absent = dir.path().join("nvidia-smi-absent");
    assert_eq!(
        gpu::query(&absent.display().to_string(), Duration::from_secs(1)).await?,
        None
    );
    Ok(())
}
