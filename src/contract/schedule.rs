//! The scheduler: given the plan, the state of every attempt and the time, decides which
//! attempts start now, which are skipped, and when to look again.
//!
//! Pure and stateless: the driver calls [`decide`] after every state change (and at
//! `wake_at_ms`) with states taken from its checkpoint and absolute times, so a restarted runner
//! decides exactly what the crashed one would have. An attempt only ever starts from `Waiting`,
//! so one recorded as `Running` is never started twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::contract::plan::{DependencyFailurePolicy, Plan};

/// Where one attempt of the plan stands (an attempt missing from the states is `Waiting`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "state"
)]
pub enum ItemState {
    /// Not started yet.
    Waiting,
    /// Started and not ended (its Job may exist).
    Running,
    /// Ended; `passed` is true only for the verdict Pass.
    Finished { passed: bool, ended_at_ms: u64 },
    /// Never ran, because a dependency did not pass (the scheduler's decision).
    Skipped { reason: String },
}

impl ItemState {
    /// Whether the attempt has reached an outcome that never changes.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Finished { .. } | Self::Skipped { .. })
    }
}

/// What the driver should do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Keys of the attempts to start now, in plan order.
    pub start: Vec<String>,
    /// Attempts that must end Skipped, with the reason, in plan order.
    pub skip: Vec<(String, String)>,
    /// When a minimum interval expires and `decide` should be called again (earliest first).
    pub wake_at_ms: Option<u64>,
    /// Every attempt is terminal (after applying `skip`): the run is over.
    pub done: bool,
}

/// The scheduler's working view of one attempt during a decision.
#[derive(Clone, Copy)]
enum View<'a> {
    Waiting,
    Running,
    Passed { ended_at_ms: u64 },
    Failed { ended_at_ms: u64 },
    Skipped { reason: &'a str },
}

impl View<'_> {
    fn is_terminal(self) -> bool {
        !matches!(self, Self::Waiting | Self::Running)
    }

    fn ended_at_ms(self) -> Option<u64> {
        match self {
            Self::Passed { ended_at_ms } | Self::Failed { ended_at_ms } => Some(ended_at_ms),
            _ => None,
        }
    }
}

/// Decides what happens next; see the module documentation.
///
/// - An attempt starts when it is `Waiting`, everything in its `after` has ended, its minimum
///   interval since the previous iteration's end has passed, and fewer than `max_parallel`
///   attempts would be running; candidates are taken in plan order.
/// - Under the `skip` policy an attempt is skipped as soon as a dependency on another
///   experiment ended without passing or was skipped, and a later iteration is skipped when the
///   previous one was; skips propagate through the whole plan in one decision.
/// - `wake_at_ms` is the earliest expiry of a minimum interval that is the only thing holding an
///   attempt back (it may be early when all slots are busy: a spurious wake is harmless).
///
/// Keys in `after` that the plan does not contain (a damaged checkpoint) are ignored rather than
/// blocking the run forever.
// Long on purpose: one pass over the plan that decides every item's next step; the rules
// (dependencies, max-parallel, intervals, skips) interact and are easiest to check together.
pub fn decide(plan: &Plan, states: &BTreeMap<String, ItemState>, now_ms: u64) -> Decision {
    let index = plan.index();
    let mut views: Vec<View<'_>> = plan
        .items
        .iter()
        .map(|item| match states.get(&item.key) {
            None | Some(ItemState::Waiting) => View::Waiting,
            Some(ItemState::Running) => View::Running,
            Some(&ItemState::Finished {
                passed: true,
                ended_at_ms,
            }) => View::Passed { ended_at_ms },
            Some(&ItemState::Finished {
                passed: false,
                ended_at_ms,
            }) => View::Failed { ended_at_ms },
            Some(ItemState::Skipped { reason }) => View::Skipped { reason },
        })
        .collect();
    let running = views
        .iter()
        .filter(|view| matches!(view, View::Running))
        .count();
    // A plan read back from a damaged checkpoint may say 0: run one at a time, never hang.
    let mut free_slots = (plan.max_parallel.max(1) as usize).saturating_sub(running);
    let mut decision = Decision::default();
    // Reasons decided in this call; `views` borrows from here for later items' propagation.
    let mut new_reasons: Vec<Option<String>> = vec![None; plan.items.len()];

    for (position, item) in plan.items.iter().enumerate() {
        if !matches!(views[position], View::Waiting) {
            continue;
        }
        let dependencies = &index.after[position];

        if plan.on_dependency_failure == DependencyFailurePolicy::Skip {
            let reason = dependencies.iter().find_map(|&dependency| {
                let same_experiment = plan.items[dependency].experiment == item.experiment;
                let dependency_key = &plan.items[dependency].key;
                let dependency_reason = new_reasons[dependency].as_deref();
                match views[dependency] {
                    // A later iteration shares the first one's dependencies: same cause.
                    View::Skipped { reason } if same_experiment => {
                        Some(dependency_reason.unwrap_or(reason).to_owned())
                    }
                    View::Skipped { .. } => {
                        Some(format!("dependency {dependency_key} was skipped"))
                    }
                    View::Failed { .. } if !same_experiment => {
                        Some(format!("dependency {dependency_key} did not pass"))
                    }
                    _ => None,
                }
            });
            if let Some(reason) = reason {
                decision.skip.push((item.key.clone(), reason.clone()));
                new_reasons[position] = Some(reason);
                // The reason text is only read back through `new_reasons`.
                views[position] = View::Skipped { reason: "" };
                continue;
            }
        }

        if !dependencies
            .iter()
            .all(|&dependency| views[dependency].is_terminal())
        {
            continue;
        }
        let previous_end = index.previous[position].and_then(|p| views[p].ended_at_ms());
        if let Some(previous_end) = previous_end {
            let earliest = previous_end.saturating_add(item.min_wait_ms);
            if earliest > now_ms {
                decision.wake_at_ms = Some(
                    decision
                        .wake_at_ms
                        .map_or(earliest, |wake| wake.min(earliest)),
                );
                continue;
            }
        }
        if free_slots == 0 {
            continue;
        }
        free_slots -= 1;
        views[position] = View::Running;
        decision.start.push(item.key.clone());
    }

    decision.done = views.iter().all(|view| view.is_terminal());
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::plan::{
        AFTER_ANNOTATION, ITERATIONS_ANNOTATION, MAX_PARALLEL_ANNOTATION, MIN_INTERVAL_ANNOTATION,
        ON_DEPENDENCY_FAILURE_ANNOTATION, resolve,
    };

    fn plan(list: &[&str], pairs: &[(&str, &str)]) -> Plan {
        let experiments: Vec<String> = list.iter().map(|name| (*name).to_owned()).collect();
        let annotations = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        resolve(&experiments, &annotations, 0).unwrap()
    }

    fn states(pairs: &[(&str, ItemState)]) -> BTreeMap<String, ItemState> {
        pairs
            .iter()
            .map(|(key, state)| ((*key).to_owned(), state.clone()))
            .collect()
    }

    fn finished(passed: bool, ended_at_ms: u64) -> ItemState {
        ItemState::Finished {
            passed,
            ended_at_ms,
        }
    }

    #[test]
    fn default_plan_runs_one_after_another_even_after_a_failure() {
        let plan = plan(&["a", "b", "c"], &[]);
        let decision = decide(&plan, &BTreeMap::new(), 0);
        assert_eq!(decision.start, ["a#1"]);
        assert!(!decision.done);
        assert_eq!(
            decide(&plan, &states(&[("a#1", ItemState::Running)]), 5).start,
            Vec::<String>::new()
        );
        let decision = decide(&plan, &states(&[("a#1", finished(false, 5))]), 5);
        assert_eq!(decision.start, ["b#1"]);
        assert!(decision.skip.is_empty());
    }

    #[test]
    fn diamond_runs_the_middle_in_parallel() {
        let plan = plan(
            &["a", "b", "c", "d"],
            &[
                (AFTER_ANNOTATION, "b: a\nc: a\nd: b, c"),
                (MAX_PARALLEL_ANNOTATION, "2"),
            ],
        );
        assert_eq!(decide(&plan, &BTreeMap::new(), 0).start, ["a#1"]);
        let after_a = states(&[("a#1", finished(true, 10))]);
        assert_eq!(decide(&plan, &after_a, 10).start, ["b#1", "c#1"]);
        let b_done = states(&[
            ("a#1", finished(true, 10)),
            ("b#1", finished(true, 20)),
            ("c#1", ItemState::Running),
        ]);
        assert!(decide(&plan, &b_done, 20).start.is_empty());
        let all_done = states(&[
            ("a#1", finished(true, 10)),
            ("b#1", finished(true, 20)),
            ("c#1", finished(true, 30)),
            ("d#1", finished(false, 40)),
        ]);
        let decision = decide(&plan, &all_done, 40);
        assert!(decision.done && decision.start.is_empty() && decision.skip.is_empty());
    }

    #[test]
    fn max_parallel_bounds_starts_in_plan_order() {
        let plan = plan(&["a", "b", "c", "d"], &[(MAX_PARALLEL_ANNOTATION, "3")]);
        assert_eq!(
            decide(&plan, &BTreeMap::new(), 0).start,
            ["a#1", "b#1", "c#1"]
        );
        let one_running = states(&[("b#1", ItemState::Running), ("a#1", finished(true, 1))]);
        assert_eq!(decide(&plan, &one_running, 1).start, ["c#1", "d#1"]);
    }

    #[test]
    fn failed_dependency_skips_dependents_transitively_in_one_decision() {
        let plan = plan(
            &["a", "b", "c", "d"],
            &[
                (AFTER_ANNOTATION, "b: a\nc: b"),
                (ITERATIONS_ANNOTATION, "c: 2"),
            ],
        );
        let decision = decide(&plan, &states(&[("a#1", finished(false, 3))]), 3);
        assert_eq!(
            decision.skip,
            [
                ("b#1".to_owned(), "dependency a#1 did not pass".to_owned()),
                ("c#1".to_owned(), "dependency b#1 was skipped".to_owned()),
                ("c#2".to_owned(), "dependency b#1 was skipped".to_owned()),
            ]
        );
        assert_eq!(decision.start, ["d#1"]);
        assert!(!decision.done);
    }

    #[test]
    fn run_policy_runs_dependents_after_a_failure() {
        let plan = plan(
            &["a", "b"],
            &[
                (AFTER_ANNOTATION, "b: a"),
                (ON_DEPENDENCY_FAILURE_ANNOTATION, "run"),
            ],
        );
        let decision = decide(&plan, &states(&[("a#1", finished(false, 3))]), 3);
        assert!(decision.skip.is_empty());
        assert_eq!(decision.start, ["b#1"]);
    }

    #[test]
    fn a_failed_iteration_does_not_skip_the_next_one() {
        let plan = plan(&["a"], &[(ITERATIONS_ANNOTATION, "2")]);
        let decision = decide(&plan, &states(&[("a#1", finished(false, 3))]), 3);
        assert!(decision.skip.is_empty());
        assert_eq!(decision.start, ["a#2"]);
    }

    #[test]
    fn min_interval_delays_the_next_iteration_and_sets_the_wake() {
        let plan = plan(
            &["a", "b"],
            &[
                (ITERATIONS_ANNOTATION, "a: 2"),
                (MIN_INTERVAL_ANNOTATION, "30s"),
            ],
        );
        let a_done = states(&[("a#1", finished(true, 1_000)), ("b#1", ItemState::Running)]);
        let decision = decide(&plan, &a_done, 2_000);
        assert!(decision.start.is_empty());
        assert_eq!(decision.wake_at_ms, Some(31_000));
        assert_eq!(decide(&plan, &a_done, 30_999).start, Vec::<String>::new());
        let b_done = states(&[
            ("a#1", finished(true, 1_000)),
            ("b#1", finished(true, 5_000)),
        ]);
        let decision = decide(&plan, &b_done, 31_000);
        assert_eq!(decision.start, ["a#2"]);
        assert_eq!(decision.wake_at_ms, None);
    }

    #[test]
    fn zero_max_parallel_from_a_damaged_checkpoint_still_progresses() {
        let mut plan = plan(&["a", "b"], &[]);
        plan.max_parallel = 0;
        assert_eq!(decide(&plan, &BTreeMap::new(), 0).start, ["a#1"]);
    }

    #[test]
    fn empty_plan_is_done() {
        let plan = plan(&[], &[]);
        let decision = decide(&plan, &BTreeMap::new(), 0);
        assert!(decision.done && decision.start.is_empty());
    }

    #[test]
    fn item_state_json_is_tagged() {
        let json = serde_json::to_string(&finished(true, 7)).unwrap();
        assert_eq!(json, r#"{"state":"finished","passed":true,"endedAtMs":7}"#);
        assert_eq!(
            serde_json::from_str::<ItemState>(&json).unwrap(),
            finished(true, 7)
        );
    }
}
