//! Which edge worker thread is running: the server sets it when a worker starts, the upstream
//! client reads it to pick that worker's connection pool. Below both so neither imports the
//! other.

use std::cell::Cell;

thread_local! {
    static WORKER_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks this thread as edge worker `index` (called once, at the worker's start).
pub fn enter(index: usize) {
    WORKER_INDEX.with(|w| w.set(Some(index)));
}

/// The index of the edge worker running on this thread; `None` elsewhere.
pub fn index() -> Option<usize> {
    WORKER_INDEX.with(Cell::get)
}

/// Threads serving connections; 0 means one per CPU.
pub fn count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
