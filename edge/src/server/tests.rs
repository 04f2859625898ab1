//! The watchdog's verdict table and its clock.

use super::*;

const OPTIONS: ServeOptions = ServeOptions {
    header_read_timeout: Duration::from_millis(10_000),
    idle_timeout: Duration::from_millis(90_000),
    body_read_timeout: Duration::from_millis(60_000),
    max_connections: 10,
    workers: 1,
};

fn activity(busy: usize, head: Option<u64>, idle: u64, blocked: Option<u64>) -> Activity {
    Activity {
        busy,
        head_since: head,
        idle_since: idle,
        write_blocked_since: blocked,
    }
}

#[test]
fn verdicts() {
    use Closed::*;
    use Verdict::*;
    // (activity, now) → verdict
    let cases = [
        // a new connection reads its first head from 0
        (activity(0, Some(0), 0, None), 9_999, CheckAt(10_000)),
        (activity(0, Some(0), 0, None), 10_000, Close(HeaderTimeout)),
        // idle keep-alive: 90 s, not 10, looked at every 10 s for a head starting
        (activity(0, None, 1_000, None), 50_000, CheckAt(60_000)),
        (activity(0, None, 1_000, None), 85_000, CheckAt(91_000)),
        (activity(0, None, 1_000, None), 91_000, Close(IdleTimeout)),
        // a later head started at 95 s
        (
            activity(0, Some(95_000), 1_000, None),
            96_000,
            CheckAt(105_000),
        ),
        // busy: never closed while writes flow, however long
        (activity(1, None, 0, None), 1_000_000, CheckAt(1_045_000)),
        // busy with a stalled write: closed once it waited the idle timeout
        (activity(1, None, 0, Some(100)), 50_000, CheckAt(90_100)),
        (activity(2, None, 0, Some(100)), 90_100, Close(WriteStalled)),
        // a stale head stamp while busy does not count
        (activity(1, Some(0), 0, None), 20_000, CheckAt(65_000)),
    ];
    for (a, now, want) in cases {
        assert_eq!(verdict(&a, now, &OPTIONS), want, "{a:?} at {now}");
    }
}

#[tokio::test(start_paused = true)]
async fn clock_follows_a_connection() {
    let clock = Arc::new(ConnClock::new());
    assert_eq!(clock.activity().head_since, Some(0));
    let guard = clock.start_request(false);
    assert_eq!(clock.activity().busy, 1);
    assert_eq!(clock.activity().head_since, None);
    // reads while busy (a body, a pipelined request) start no head
    clock.on_read();
    assert_eq!(clock.activity().head_since, None);
    tokio::time::advance(Duration::from_millis(500)).await;
    drop(guard);
    let a = clock.activity();
    assert_eq!((a.busy, a.idle_since), (0, 500));
    tokio::time::advance(Duration::from_millis(500)).await;
    clock.on_read();
    assert_eq!(clock.activity().head_since, Some(1_000));
    // HTTP/2: frames between requests are not heads
    drop(clock.start_request(true));
    clock.on_read();
    assert_eq!(clock.activity().head_since, None);
}

#[tokio::test(start_paused = true)]
async fn watchdog_closes_a_silent_connection_at_the_header_timeout() {
    let clock = ConnClock::new();
    let started = Instant::now();
    let reason = clock.watch(OPTIONS).await;
    assert_eq!(reason, Closed::HeaderTimeout);
    assert_eq!(started.elapsed(), OPTIONS.header_read_timeout);
}
