//! The runner's wall clock: one seam for every timestamp it writes or judges by.
//!
//! Wall time is the system time read once, at first use, plus the time elapsed since then on
//! tokio's clock. In production tokio's clock is the monotonic clock, so this equals the system
//! clock up to adjustments made to it during the run (an NTP step moves the system clock but
//! not this one, which keeps a run's own intervals honest). Under tokio's paused clock (the
//! simulation in `tests/simulation.rs`) wall time moves with the simulated time, so a run of
//! minutes takes milliseconds and its timestamps still say minutes.

use std::cell::Cell;
use std::sync::OnceLock;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

type Anchor = (Timestamp, tokio::time::Instant);

/// The system time and tokio's instant at first use.
static ANCHOR: OnceLock<Anchor> = OnceLock::new();

thread_local! {
    /// An anchor set for this thread's runtime by [`start_at`], ahead of [`ANCHOR`].
    static PINNED: Cell<Option<Anchor>> = const { Cell::new(None) };
}

/// The current wall time.
pub fn now() -> Timestamp {
    let (wall, at) = PINNED
        .get()
        .unwrap_or_else(|| *ANCHOR.get_or_init(|| (Timestamp::now(), tokio::time::Instant::now())));
    let here = tokio::time::Instant::now();
    // Signed: each paused runtime has its own clock, which may read earlier than the anchor.
    let elapsed = if here >= at {
        SignedDuration::try_from(here - at).unwrap_or(SignedDuration::MAX)
    } else {
        -SignedDuration::try_from(at - here).unwrap_or(SignedDuration::MAX)
    };
    wall.saturating_add(elapsed).unwrap_or(wall)
}

/// Makes the wall time `wall` at this moment of tokio's clock, on this thread (a
/// current-thread runtime runs every task there). For the simulation: each schedule starts at
/// the same wall time, so a replay writes and judges the same timestamps (the system time's
/// sub-second phase would otherwise decide roundings to whole seconds), and schedules run side
/// by side in one process do not move each other's clocks.
pub fn start_at(wall: Timestamp) {
    PINNED.set(Some((wall, tokio::time::Instant::now())));
}

/// [`now`] in unix milliseconds (0 before 1970).
pub fn now_ms() -> u64 {
    now().as_millisecond().max(0) as u64
}
