//! The Monitor phase's clocks, judged only on what was observed.
//!
//! A restarted runner knows nothing of the pod until its first list (or its watch's initial
//! events) is in, so "not seen" must never count as "not there". The rules:
//! - a pod is Pending too long when the cluster says so: it is Pending *now* and was created
//!   more than the status-check timeout ago (a pod is Pending from its creation on), so a
//!   restart hours into a run judges exactly as the first runner would have;
//! - a pod that is missing from a complete view counts as Pending from the moment this
//!   incarnation first saw it missing (the Job controller has not created it, or it is gone);
//! - nothing is judged on an incomplete view;
//! - a running pod is never ended by a guess: past its expected end it is *overdue* (one
//!   Warning), and only a deadline the user set ends the attempt, counted from the attempt's
//!   real Monitor entry, which survives restarts.

use crate::cluster::observe::{PodPhase, PodView};

/// Past the expected end (start + `TOTAL_CHAOS_DURATION`), how long a running pod may go on
/// before it is reported overdue: two status-check timeouts (the experiment's own checks
/// before and after the chaos) plus this margin.
pub const OVERDUE_MARGIN_MS: u64 = 60_000;

/// The clocks of one attempt in Monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorTimers {
    /// The status-check timeout: how long a pod may stay Pending.
    pub pending_timeout_ms: u64,
    /// From the pod's start, when a running pod becomes overdue.
    pub overdue_after_ms: u64,
    /// The user's hard deadline (unix ms), counted from the Monitor entry; none by default.
    pub deadline_at_ms: Option<u64>,
}

impl MonitorTimers {
    /// Timers for an experiment with these status-check timeout and chaos duration (seconds).
    pub fn new(
        timeout_seconds: u64,
        chaos_seconds: u64,
        monitor_entered_ms: u64,
        user_deadline_ms: Option<u64>,
    ) -> MonitorTimers {
        MonitorTimers {
            pending_timeout_ms: timeout_seconds * 1000,
            overdue_after_ms: (chaos_seconds + 2 * timeout_seconds) * 1000 + OVERDUE_MARGIN_MS,
            deadline_at_ms: user_deadline_ms.map(|d| monitor_entered_ms.saturating_add(d)),
        }
    }
}

/// What the clocks say now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Nothing to do; judge again on the next observation or at `until_ms`, if set.
    Wait { until_ms: Option<u64> },
    /// The pod has been Pending (or missing) longer than the status-check timeout.
    PendingTooLong,
    /// The user's deadline passed.
    DeadlinePassed,
    /// The running pod is past its expected end (reported once, then waited for).
    Overdue { running_ms: u64 },
}

/// One incarnation's clock for one attempt: what it has seen so far.
#[derive(Debug, Clone)]
pub struct MonitorClock {
    timers: MonitorTimers,
    /// When this incarnation first saw the pod missing from a complete view.
    missing_since_ms: Option<u64>,
    overdue_reported: bool,
}

impl MonitorClock {
    pub fn new(timers: MonitorTimers) -> MonitorClock {
        MonitorClock {
            timers,
            missing_since_ms: None,
            overdue_reported: false,
        }
    }

    /// Judges the pod as seen now (`view` from a view that is complete when `synced`).
    pub fn judge(&mut self, synced: bool, view: Option<&PodView>, now_ms: u64) -> Judgement {
        let deadline = self.timers.deadline_at_ms;
        if deadline.is_some_and(|at| now_ms >= at) {
            return Judgement::DeadlinePassed;
        }
        let wait = |at: Option<u64>| Judgement::Wait {
            until_ms: earliest(at, deadline),
        };
        if !synced {
            return wait(None);
        }
        let pending_since = match view {
            None => Some(*self.missing_since_ms.get_or_insert(now_ms)),
            Some(pod) => {
                self.missing_since_ms = None;
                match pod.phase {
                    PodPhase::Pending => Some(pod.created_ms.unwrap_or(now_ms)),
                    _ => None,
                }
            }
        };
        if let Some(since) = pending_since {
            let too_long_at = since.saturating_add(self.timers.pending_timeout_ms);
            return if now_ms >= too_long_at {
                Judgement::PendingTooLong
            } else {
                wait(Some(too_long_at))
            };
        }
        let Some(pod) = view.filter(|p| p.phase == PodPhase::Running) else {
            return wait(None);
        };
        if self.overdue_reported {
            return wait(None);
        }
        let started = pod.started_ms.or(pod.created_ms).unwrap_or(now_ms);
        let overdue_at = started.saturating_add(self.timers.overdue_after_ms);
        if now_ms >= overdue_at {
            self.overdue_reported = true;
            Judgement::Overdue {
                running_ms: now_ms.saturating_sub(started),
            }
        } else {
            wait(Some(overdue_at))
        }
    }
}

fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn pod(phase: PodPhase, created_ms: u64, started_ms: Option<u64>) -> PodView {
        PodView {
            name: "exp-abc123-x1y2z".into(),
            job: "exp-abc123".into(),
            phase,
            reason: None,
            deleting: false,
            created_ms: Some(created_ms),
            started_ms,
        }
    }

    /// 180 s status-check timeout, 60 s of chaos, Monitor entered at 0, no user deadline.
    fn clock() -> MonitorClock {
        MonitorClock::new(MonitorTimers::new(180, 60, 0, None))
    }

    #[test]
    fn a_restart_long_into_a_running_experiment_judges_nothing_before_it_sees_the_pod() {
        // The late-restart defect: 4 minutes in (past the 180 s timeout), nothing observed yet.
        let mut clock = clock();
        assert_eq!(
            clock.judge(false, None, 4 * MIN),
            Judgement::Wait { until_ms: None }
        );
        let running = pod(PodPhase::Running, 1_000, Some(2_000));
        // Then the first complete view shows it running: still nothing ends it.
        assert!(matches!(
            clock.judge(true, Some(&running), 4 * MIN),
            Judgement::Wait { .. }
        ));
    }

    #[test]
    fn pending_too_long_is_read_from_the_pods_own_creation_time() {
        let mut clock = clock();
        let pending = pod(PodPhase::Pending, 1_000, None);
        assert_eq!(
            clock.judge(true, Some(&pending), 2_000),
            Judgement::Wait {
                until_ms: Some(181_000)
            }
        );
        assert_eq!(
            clock.judge(true, Some(&pending), 181_000),
            Judgement::PendingTooLong
        );
        // A fresh incarnation that first looks hours later agrees at once.
        assert_eq!(
            MonitorClock::new(MonitorTimers::new(180, 60, 0, None)).judge(
                true,
                Some(&pending),
                3 * 60 * MIN
            ),
            Judgement::PendingTooLong
        );
    }

    #[test]
    fn a_missing_pod_counts_from_when_this_incarnation_saw_it_missing() {
        let mut clock = clock();
        // Long after the Monitor entry, the first complete view has no pod: the clock starts now.
        assert_eq!(
            clock.judge(true, None, 30 * MIN),
            Judgement::Wait {
                until_ms: Some(30 * MIN + 180_000)
            }
        );
        assert_eq!(
            clock.judge(true, None, 30 * MIN + 180_000),
            Judgement::PendingTooLong
        );
        // Seeing the pod resets it.
        let mut clock = MonitorClock::new(MonitorTimers::new(180, 60, 0, None));
        clock.judge(true, None, 0);
        clock.judge(true, Some(&pod(PodPhase::Running, 0, Some(0))), 100_000);
        assert!(matches!(
            clock.judge(true, None, 200_000),
            Judgement::Wait { .. }
        ));
    }

    #[test]
    fn a_long_running_pod_is_reported_overdue_once_and_never_ended() {
        let mut clock = clock();
        let running = pod(PodPhase::Running, 0, Some(1_000));
        // Overdue after start + 60 s chaos + 2 × 180 s + 60 s margin = 481 s.
        assert_eq!(
            clock.judge(true, Some(&running), 10_000),
            Judgement::Wait {
                until_ms: Some(481_000)
            }
        );
        assert_eq!(
            clock.judge(true, Some(&running), 481_000),
            Judgement::Overdue {
                running_ms: 480_000
            }
        );
        for hours in 1..48 {
            assert_eq!(
                clock.judge(true, Some(&running), hours * 60 * MIN),
                Judgement::Wait { until_ms: None }
            );
        }
    }

    #[test]
    fn a_user_deadline_counts_from_the_monitor_entry_whatever_is_seen() {
        // Monitor entered at 50 s; the user's deadline is 10 minutes.
        let timers = MonitorTimers::new(180, 60, 50_000, Some(10 * MIN));
        let running = pod(PodPhase::Running, 60_000, Some(61_000));
        let mut clock = MonitorClock::new(timers.clone());
        assert_eq!(
            clock.judge(true, Some(&running), 100_000),
            Judgement::Wait {
                until_ms: Some(541_000)
            }
        );
        // A restarted incarnation with nothing observed yet still honours it.
        assert_eq!(
            MonitorClock::new(timers).judge(false, None, 50_000 + 10 * MIN),
            Judgement::DeadlinePassed
        );
    }
}
