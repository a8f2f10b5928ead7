//! Property tests of the run plan and its scheduler: random dependency graphs, iterations,
//! intervals and parallelism, simulated to completion with `decide` against a fake clock with
//! random outcomes and durations, restarts from checkpointed states included.
//!
//! Cases per property: 2000 by default, `PROPTEST_CASES` to change.

use std::collections::{BTreeMap, BTreeSet};

use chaos_runner::contract::plan::{
    AFTER_ANNOTATION, DependencyFailurePolicy, ITERATIONS_ANNOTATION, MAX_PARALLEL_ANNOTATION,
    MIN_INTERVAL_ANNOTATION, ON_DEPENDENCY_FAILURE_ANNOTATION, Plan, PlanError, SEED_ANNOTATION,
    SHUFFLE_ANNOTATION, item_key, render_plan, resolve,
};
use chaos_runner::contract::schedule::{ItemState, decide};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2000);
    Config {
        cases,
        ..Config::default()
    }
}

/// A random, valid plan specification, independent of the planner's own data structures.
#[derive(Clone, Debug)]
struct Spec {
    /// Experiment names in EXPERIMENT_LIST order.
    list: Vec<String>,
    /// experiment -> the experiments it runs after (a DAG).
    after: BTreeMap<String, BTreeSet<String>>,
    iterations: BTreeMap<String, u32>,
    intervals_ms: BTreeMap<String, u64>,
    max_parallel: u32,
    /// `Some(seed annotation)` when shuffling.
    shuffle: Option<Option<u64>>,
    policy: Option<DependencyFailurePolicy>,
    /// Line separator used in the annotations (newline or `;`).
    separator: &'static str,
}

impl Spec {
    fn annotations(&self) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::new();
        // Always present, so the default chain never applies here.
        annotations.insert(
            MAX_PARALLEL_ANNOTATION.to_owned(),
            self.max_parallel.to_string(),
        );
        let after: Vec<String> = self
            .after
            .iter()
            .filter(|(_, dependencies)| !dependencies.is_empty())
            .map(|(name, dependencies)| {
                let list: Vec<&str> = dependencies.iter().map(String::as_str).collect();
                format!("{name}: {}", list.join(", "))
            })
            .collect();
        if !after.is_empty() {
            annotations.insert(AFTER_ANNOTATION.to_owned(), after.join(self.separator));
        }
        let iterations: BTreeSet<u32> = self.iterations.values().copied().collect();
        if iterations.len() == 1 && iterations.contains(&2) {
            // Exercise the bare form too.
            annotations.insert(ITERATIONS_ANNOTATION.to_owned(), "2".to_owned());
        } else {
            let lines: Vec<String> = self
                .iterations
                .iter()
                .filter(|&(_, &count)| count != 1)
                .map(|(name, count)| format!("{name}: {count}"))
                .collect();
            if !lines.is_empty() {
                annotations.insert(ITERATIONS_ANNOTATION.to_owned(), lines.join(self.separator));
            }
        }
        let intervals: Vec<String> = self
            .intervals_ms
            .iter()
            .filter(|&(_, &milliseconds)| milliseconds != 0)
            .map(|(name, milliseconds)| {
                if milliseconds % 1000 == 0 {
                    format!("{name}: {}s", milliseconds / 1000)
                } else {
                    format!("{name}: {milliseconds}ms")
                }
            })
            .collect();
        if !intervals.is_empty() {
            annotations.insert(
                MIN_INTERVAL_ANNOTATION.to_owned(),
                intervals.join(self.separator),
            );
        }
        if let Some(seed) = self.shuffle {
            annotations.insert(SHUFFLE_ANNOTATION.to_owned(), "true".to_owned());
            if let Some(seed) = seed {
                annotations.insert(SEED_ANNOTATION.to_owned(), seed.to_string());
            }
        }
        if let Some(policy) = self.policy {
            annotations.insert(
                ON_DEPENDENCY_FAILURE_ANNOTATION.to_owned(),
                policy.as_str().to_owned(),
            );
        }
        annotations
    }

    fn policy(&self) -> DependencyFailurePolicy {
        self.policy.unwrap_or(DependencyFailurePolicy::Skip)
    }
}

/// Random DAGs: edges only from a later to an earlier node of a hidden topological order, and
/// the EXPERIMENT_LIST is a shuffle of that order (so the list is not always topological).
fn spec_strategy() -> impl Strategy<Value = Spec> {
    (1usize..=7)
        .prop_flat_map(|count| {
            let pairs = count * (count - 1) / 2;
            (
                Just(count),
                proptest::collection::vec(proptest::bool::weighted(0.35), pairs),
                Just((0..count).collect::<Vec<_>>()).prop_shuffle(),
                proptest::collection::vec(prop_oneof![3 => Just(1u32), 1 => 2u32..=3], count),
                proptest::collection::vec(
                    prop_oneof![2 => Just(0u64), 1 => 1u64..=3000, 1 => (1u64..=5).prop_map(|s| s * 1000)],
                    count,
                ),
                1u32..=4,
                proptest::option::of(proptest::option::of(any::<u64>())),
                proptest::option::of(prop_oneof![
                    Just(DependencyFailurePolicy::Skip),
                    Just(DependencyFailurePolicy::Run)
                ]),
                prop_oneof![Just("\n"), Just("; ")],
            )
        })
        .prop_map(
            |(count, edges, order, iterations, intervals, max_parallel, shuffle, policy, separator)| {
                let name = |topological: usize| format!("x{topological}");
                let mut after: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                let mut edge = edges.into_iter();
                for later in 0..count {
                    for earlier in 0..later {
                        if edge.next().unwrap_or(false) {
                            after.entry(name(later)).or_default().insert(name(earlier));
                        }
                    }
                }
                Spec {
                    list: order.iter().map(|&topological| name(topological)).collect(),
                    after,
                    iterations: (0..count).map(|index| (name(index), iterations[index])).collect(),
                    intervals_ms: (0..count).map(|index| (name(index), intervals[index])).collect(),
                    max_parallel,
                    shuffle,
                    policy,
                    separator,
                }
            },
        )
}

/// What the simulation observed.
#[derive(Debug, Default)]
struct Trace {
    started_at: BTreeMap<String, u64>,
    start_order: Vec<String>,
    max_running: usize,
    states: BTreeMap<String, ItemState>,
}

/// Random behaviour of the world: per item position, (passed, duration ms); a restart (runner
/// memory reduced to the checkpointed states) after `restart_after` decisions, `downtime_ms`
/// long.
#[derive(Clone, Debug)]
struct World {
    outcomes: Vec<(bool, u64)>,
    restart_after: Option<usize>,
    downtime_ms: u64,
}

fn world_strategy() -> impl Strategy<Value = World> {
    (
        proptest::collection::vec((proptest::bool::weighted(0.7), 1u64..=4000), 64),
        proptest::option::of(0usize..40),
        0u64..=10_000,
    )
        .prop_map(|(outcomes, restart_after, downtime_ms)| World {
            outcomes,
            restart_after,
            downtime_ms,
        })
}

fn is_terminal(states: &BTreeMap<String, ItemState>, key: &str) -> bool {
    states.get(key).is_some_and(ItemState::is_terminal)
}

fn ended_at(states: &BTreeMap<String, ItemState>, key: &str) -> Option<u64> {
    match states.get(key) {
        Some(ItemState::Finished { ended_at_ms, .. }) => Some(*ended_at_ms),
        _ => None,
    }
}

fn passed(states: &BTreeMap<String, ItemState>, key: &str) -> bool {
    matches!(
        states.get(key),
        Some(ItemState::Finished { passed: true, .. })
    )
}

/// Runs the plan to completion with `decide`, checking every decision against the spec.
fn simulate(spec: &Spec, plan: &Plan, world: &World) -> Result<Trace, TestCaseError> {
    let positions = plan.positions();
    let mut trace = Trace::default();
    // The cluster: running attempts and when they end (survives a runner restart).
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    let mut now = 0u64;
    let mut decisions = 0usize;

    loop {
        decisions += 1;
        prop_assert!(decisions < 10_000, "no progress");
        if world.restart_after == Some(decisions) {
            // The runner dies: only the checkpointed states survive (through JSON), time passes,
            // attempts that end meanwhile are observed on resume with their real end time.
            let json = serde_json::to_string(&trace.states)
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            trace.states = serde_json::from_str(&json)
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            now += world.downtime_ms;
            let ended: Vec<(String, u64)> = running
                .iter()
                .filter(|&(_, &end)| end <= now)
                .map(|(key, &end)| (key.clone(), end))
                .collect();
            for (key, end) in ended {
                running.remove(&key);
                let position = positions[key.as_str()];
                let passed = world.outcomes[position % world.outcomes.len()].0;
                trace.states.insert(
                    key,
                    ItemState::Finished {
                        passed,
                        ended_at_ms: end,
                    },
                );
            }
        }

        let decision = decide(plan, &trace.states, now);
        for (key, reason) in &decision.skip {
            prop_assert!(
                matches!(trace.states.get(key), None | Some(ItemState::Waiting)),
                "skipped {key} which was {:?}",
                trace.states.get(key)
            );
            prop_assert_eq!(
                spec.policy(),
                DependencyFailurePolicy::Skip,
                "skip under run: {}",
                key
            );
            trace.states.insert(
                key.clone(),
                ItemState::Skipped {
                    reason: reason.clone(),
                },
            );
        }
        for key in &decision.start {
            prop_assert!(
                matches!(trace.states.get(key), None | Some(ItemState::Waiting)),
                "started {key} twice (was {:?})",
                trace.states.get(key)
            );
            let item = plan
                .item(key)
                .ok_or_else(|| TestCaseError::fail(format!("unknown key {key}")))?;
            // Declared dependencies: every iteration of every experiment it runs after.
            for dependency in spec.after.get(&item.experiment).into_iter().flatten() {
                for iteration in 1..=spec.iterations[dependency] {
                    let dependency_key = item_key(dependency, iteration);
                    prop_assert!(
                        is_terminal(&trace.states, &dependency_key),
                        "{key} started before {dependency_key} ended"
                    );
                    if spec.policy() == DependencyFailurePolicy::Skip {
                        prop_assert!(
                            passed(&trace.states, &dependency_key),
                            "{key} ran after failed {dependency_key}"
                        );
                    }
                }
            }
            if item.iteration > 1 {
                let previous = item_key(&item.experiment, item.iteration - 1);
                prop_assert!(
                    is_terminal(&trace.states, &previous),
                    "{key} started before {previous}"
                );
                if let Some(end) = ended_at(&trace.states, &previous) {
                    prop_assert!(
                        now >= end + spec.intervals_ms[&item.experiment],
                        "{key} started at {now}, {previous} ended at {end}, interval {}",
                        spec.intervals_ms[&item.experiment]
                    );
                }
            }
            trace.states.insert(key.clone(), ItemState::Running);
            trace.started_at.insert(key.clone(), now);
            trace.start_order.push(key.clone());
            let position = positions[key.as_str()];
            running.insert(
                key.clone(),
                now + world.outcomes[position % world.outcomes.len()].1,
            );
        }
        trace.max_running = trace.max_running.max(running.len());
        prop_assert!(
            running.len() <= plan.max_parallel as usize,
            "{} running",
            running.len()
        );
        if let Some(wake) = decision.wake_at_ms {
            prop_assert!(wake > now, "wake {wake} not after now {now}");
        }
        if decision.done {
            prop_assert!(running.is_empty(), "done with {:?} running", running);
            break;
        }
        let next_end = running.values().copied().min();
        let next = match (next_end, decision.wake_at_ms) {
            (Some(end), Some(wake)) => end.min(wake),
            (Some(end), None) => end,
            (None, Some(wake)) => wake,
            (None, None) => {
                return Err(TestCaseError::fail(format!(
                    "stuck at {now}: {:?}",
                    trace.states
                )));
            }
        };
        now = next;
        let ended: Vec<String> = running
            .iter()
            .filter(|&(_, &end)| end <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in ended {
            running.remove(&key);
            let position = positions[key.as_str()];
            let passed = world.outcomes[position % world.outcomes.len()].0;
            trace.states.insert(
                key,
                ItemState::Finished {
                    passed,
                    ended_at_ms: now,
                },
            );
        }
    }
    Ok(trace)
}

proptest! {
    #![proptest_config(config())]

    /// Every valid plan has the right attempts and waits, is in topological order, and when run
    /// to completion respects its dependencies, maxParallel and minimum intervals, with skips
    /// exactly where a dependency did not pass (transitively), also across a restart.
    #[test]
    fn valid_plans_run_to_completion_respecting_everything(spec in spec_strategy(), world in world_strategy(), seed_if_unset in any::<u64>()) {
        let plan = resolve(&spec.list, &spec.annotations(), seed_if_unset)
            .map_err(|error| TestCaseError::fail(format!("valid spec rejected: {error}")))?;
        prop_assert_eq!(plan.max_parallel, spec.max_parallel);
        prop_assert_eq!(plan.on_dependency_failure, spec.policy());
        prop_assert_eq!(plan.shuffled, spec.shuffle.is_some());
        prop_assert_eq!(plan.seed, spec.shuffle.map(|seed| seed.unwrap_or(seed_if_unset)));

        // The attempts: exactly experiments x iterations, each with its declared waits.
        let expected_keys: BTreeSet<String> = spec.list.iter()
            .flat_map(|name| (1..=spec.iterations[name]).map(move |iteration| item_key(name, iteration)))
            .collect();
        let keys: BTreeSet<String> = plan.items.iter().map(|item| item.key.clone()).collect();
        prop_assert_eq!(keys.len(), plan.items.len(), "duplicate keys");
        prop_assert_eq!(&keys, &expected_keys);
        let mut seen = BTreeSet::new();
        for item in &plan.items {
            for dependency in &item.after {
                prop_assert!(seen.contains(dependency), "{} before its dependency {}", item.key, dependency);
            }
            seen.insert(item.key.clone());
            let expected_after: Vec<String> = if item.iteration > 1 {
                vec![item_key(&item.experiment, item.iteration - 1)]
            } else {
                spec.after.get(&item.experiment).into_iter().flatten()
                    .flat_map(|dependency| (1..=spec.iterations[dependency]).map(move |iteration| item_key(dependency, iteration)))
                    .collect()
            };
            let actual: BTreeSet<&String> = item.after.iter().collect();
            prop_assert_eq!(actual, expected_after.iter().collect::<BTreeSet<_>>(), "after of {}", &item.key);
            let expected_wait = if item.iteration > 1 { spec.intervals_ms[&item.experiment] } else { 0 };
            prop_assert_eq!(item.min_wait_ms, expected_wait);
        }

        let trace = simulate(&spec, &plan, &world)?;
        for item in &plan.items {
            let state = trace.states.get(&item.key);
            prop_assert!(state.is_some_and(ItemState::is_terminal), "{} ended {:?}", &item.key, state);
            // Skipped exactly when some iteration of a dependency did not pass (under skip).
            let dependency_failed = spec.after.get(&item.experiment).into_iter().flatten().any(|dependency| {
                (1..=spec.iterations[dependency]).any(|iteration| !passed(&trace.states, &item_key(dependency, iteration)))
            });
            let skipped = matches!(state, Some(ItemState::Skipped { .. }));
            prop_assert_eq!(
                skipped,
                dependency_failed && spec.policy() == DependencyFailurePolicy::Skip,
                "{} is {:?}", &item.key, state
            );
            if let Some(ItemState::Skipped { reason }) = state {
                prop_assert!(reason.starts_with("dependency "), "reason {reason}");
            }
        }
        prop_assert_eq!(trace.start_order.len(), trace.started_at.len());
    }

    /// The same seed always gives the same plan; a seed annotation wins over the caller's seed.
    #[test]
    fn same_seed_same_order(spec in spec_strategy(), seed in any::<u64>(), other in any::<u64>()) {
        let mut spec = spec;
        spec.shuffle = Some(None);
        let annotations = spec.annotations();
        let first = resolve(&spec.list, &annotations, seed).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let again = resolve(&spec.list, &annotations, seed).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(&first, &again);
        prop_assert_eq!(render_plan(&first), render_plan(&again));
        prop_assert_eq!(first.seed, Some(seed));

        // Replaying with the recorded seed as an annotation gives the same plan.
        spec.shuffle = Some(Some(seed));
        let replay = resolve(&spec.list, &spec.annotations(), other).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(&replay, &first);
    }

    /// Without plan annotations (other runner annotations allowed): the list order, one at a
    /// time, each once, and failures do not stop the next experiment.
    #[test]
    fn default_plan_is_the_list_in_order_one_at_a_time(
        count in 1usize..=8,
        extra in proptest::sample::subsequence(vec!["chaos-runner.io/audit", "chaos-runner.io/monitoring", "chaos-runner.io/exporter-image", "chaos-runner.io/monitor-timeout", "sidecar/enabled"], 0..=5),
        world in world_strategy(),
    ) {
        let list: Vec<String> = (0..count).map(|index| format!("exp-{}", (index * 7) % 11)).collect();
        let annotations: BTreeMap<String, String> = extra.iter().map(|key| ((*key).to_owned(), "x".to_owned())).collect();
        let plan = resolve(&list, &annotations, 3).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(plan.max_parallel, 1);
        prop_assert_eq!(plan.on_dependency_failure, DependencyFailurePolicy::Run);
        let keys: Vec<String> = plan.items.iter().map(|item| item.key.clone()).collect();
        let expected: Vec<String> = list.iter().map(|name| item_key(name, 1)).collect();
        prop_assert_eq!(&keys, &expected);

        let spec = Spec {
            list: list.clone(),
            after: BTreeMap::new(),
            iterations: list.iter().map(|name| (name.clone(), 1)).collect(),
            intervals_ms: list.iter().map(|name| (name.clone(), 0)).collect(),
            max_parallel: 1,
            shuffle: None,
            policy: Some(DependencyFailurePolicy::Run),
            separator: "\n",
        };
        let trace = simulate(&spec, &plan, &world)?;
        prop_assert_eq!(&trace.start_order, &expected);
        prop_assert!(trace.max_running <= 1);
        let all_finished = trace.states.values().all(|state| matches!(state, ItemState::Finished { .. }));
        prop_assert!(all_finished, "not all finished: {:?}", trace.states);
    }

    /// Any dependency graph, cyclic or not: acyclic ones resolve, cyclic ones are rejected with
    /// a Cycle whose path is a real cycle of the graph.
    #[test]
    fn cycles_are_rejected_with_a_real_cycle(
        count in 2usize..=6,
        edges in proptest::collection::vec((0usize..6, 0usize..6), 1..12),
    ) {
        let names: Vec<String> = (0..count).map(|index| format!("e{index}")).collect();
        let mut after: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for (from, to) in edges {
            let (from, to) = (from % count, to % count);
            if from != to {
                after.entry(from).or_default().insert(to);
            }
        }
        let text: Vec<String> = after.iter()
            .map(|(from, to)| format!("{}: {}", names[*from], to.iter().map(|index| names[*index].as_str()).collect::<Vec<_>>().join(",")))
            .collect();
        let annotations = BTreeMap::from([(AFTER_ANNOTATION.to_owned(), text.join("\n"))]);

        // Independent cycle check: repeatedly remove nodes with no remaining dependencies.
        let mut remaining: BTreeSet<usize> = (0..count).collect();
        loop {
            let free: Vec<usize> = remaining.iter().copied()
                .filter(|node| after.get(node).is_none_or(|deps| deps.iter().all(|dep| !remaining.contains(dep))))
                .collect();
            if free.is_empty() { break; }
            for node in free { remaining.remove(&node); }
        }
        let cyclic = !remaining.is_empty();

        match resolve(&names, &annotations, 0) {
            Ok(plan) => {
                prop_assert!(!cyclic, "cyclic graph accepted: {:?}", after);
                prop_assert_eq!(plan.items.len(), count);
            }
            Err(PlanError::Cycle { path }) => {
                prop_assert!(cyclic, "acyclic graph rejected as cyclic: {:?}", path);
                prop_assert!(path.len() >= 3 && path.first() == path.last(), "path {:?}", path);
                for pair in path.windows(2) {
                    let from = names.iter().position(|name| *name == pair[0]).unwrap_or(usize::MAX);
                    let to = names.iter().position(|name| *name == pair[1]).unwrap_or(usize::MAX);
                    prop_assert!(after.get(&from).is_some_and(|deps| deps.contains(&to)), "{} does not run after {}", &pair[0], &pair[1]);
                }
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    /// A name that is not in the experiment list, wherever it appears, is UnknownExperiment.
    #[test]
    fn unknown_names_are_rejected(spec in spec_strategy(), place in 0usize..4, stranger in "[a-z]{1,6}-unknown") {
        let mut annotations = spec.annotations();
        let first = spec.list[0].clone();
        let (annotation, text) = match place {
            0 => (AFTER_ANNOTATION, format!("{stranger}: {first}")),
            1 => (AFTER_ANNOTATION, format!("{first}: {stranger}")),
            2 => (ITERATIONS_ANNOTATION, format!("{stranger}: 2")),
            _ => (MIN_INTERVAL_ANNOTATION, format!("{first}: 1s\n{stranger}: 2s")),
        };
        annotations.insert(annotation.to_owned(), text);
        prop_assert_eq!(
            resolve(&spec.list, &annotations, 0),
            Err(PlanError::UnknownExperiment { annotation, name: stranger })
        );
    }

    /// Zero, negative, fractional, non-numeric and too-large counts are InvalidCount naming the
    /// annotation.
    #[test]
    fn bad_counts_are_rejected(
        spec in spec_strategy(),
        bad in prop_oneof![
            Just("0".to_owned()),
            (1u64..1_000_000).prop_map(|n| format!("-{n}")),
            (0u64..100).prop_map(|n| format!("{n}.5")),
            "[a-z]{1,5}",
            (1001u64..u64::MAX).prop_map(|n| n.to_string()),
        ],
        on_iterations in any::<bool>(),
        per_experiment in any::<bool>(),
    ) {
        let mut annotations = spec.annotations();
        let annotation = if on_iterations { ITERATIONS_ANNOTATION } else { MAX_PARALLEL_ANNOTATION };
        let text = if on_iterations && per_experiment { format!("{}: {bad}", spec.list[0]) } else { bad.clone() };
        annotations.insert(annotation.to_owned(), text);
        match resolve(&spec.list, &annotations, 0) {
            Err(PlanError::InvalidCount { annotation: named, value, .. }) => {
                prop_assert_eq!(named, annotation);
                prop_assert_eq!(value, bad);
            }
            other => prop_assert!(false, "expected InvalidCount, got {other:?}"),
        }
    }

    /// `decide` on arbitrary states (a restart from any checkpoint, however odd) never starts an
    /// attempt that is not Waiting or whose dependencies have not ended, never exceeds
    /// maxParallel, never breaks a minimum interval, and only skips Waiting attempts.
    #[test]
    fn decide_is_safe_from_any_snapshot(
        spec in spec_strategy(),
        raw_states in proptest::collection::vec((0u8..5, 0u64..20_000), 64),
        now in 0u64..25_000,
    ) {
        let plan = resolve(&spec.list, &spec.annotations(), 1).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let states: BTreeMap<String, ItemState> = plan.items.iter().enumerate().filter_map(|(position, item)| {
            let (kind, time) = raw_states[position % raw_states.len()];
            let state = match kind {
                0 => return None,
                1 => ItemState::Running,
                2 => ItemState::Finished { passed: true, ended_at_ms: time },
                3 => ItemState::Finished { passed: false, ended_at_ms: time },
                _ => ItemState::Skipped { reason: "earlier".to_owned() },
            };
            Some((item.key.clone(), state))
        }).collect();
        let decision = decide(&plan, &states, now);

        let running = states.values().filter(|state| matches!(state, ItemState::Running)).count();
        prop_assert!(decision.start.is_empty() || running + decision.start.len() <= plan.max_parallel as usize);
        let skipped: BTreeSet<&String> = decision.skip.iter().map(|(key, _)| key).collect();
        for key in decision.start.iter().chain(skipped.iter().copied()) {
            prop_assert!(!states.contains_key(key), "{key} was {:?}", states.get(key));
        }
        for key in &decision.start {
            prop_assert!(!skipped.contains(key));
            let item = plan.item(key).ok_or_else(|| TestCaseError::fail(key.clone()))?;
            for dependency in &item.after {
                prop_assert!(is_terminal(&states, dependency), "{key} before {dependency}");
            }
            if item.iteration > 1
                && let Some(end) = ended_at(&states, &item_key(&item.experiment, item.iteration - 1))
            {
                prop_assert!(now >= end + item.min_wait_ms);
            }
        }
        let all_terminal = plan.items.iter().all(|item| is_terminal(&states, &item.key) || skipped.contains(&item.key));
        prop_assert_eq!(decision.done, all_terminal);
    }
}

/// The example engines of `fixtures/plans/` and their rendered plans.
const GOLDEN_PLANS: [&str; 3] = ["diamond", "iterations-interval", "shuffle-seed"];

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/plans")
        .join(name)
}

/// `render_plan` of each example engine matches its golden file byte for byte
/// (`UPDATE_GOLDEN=1` rewrites the golden files instead).
#[test]
fn render_plan_matches_the_golden_files() {
    for name in GOLDEN_PLANS {
        let text = std::fs::read_to_string(fixture(&format!("{name}.yaml"))).unwrap();
        let engine: chaos_runner::contract::crd::ChaosEngine =
            serde_saphyr::from_str(&text).unwrap();
        let experiments: Vec<String> = engine
            .spec
            .experiments
            .iter()
            .map(|entry| entry.name.clone())
            .collect();
        let annotations = engine.metadata.annotations.unwrap_or_default();
        let rendered = render_plan(&resolve(&experiments, &annotations, 0).unwrap());
        let golden = fixture(&format!("{name}.plan.txt"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &rendered).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap();
        assert_eq!(
            rendered, expected,
            "{name}: rendered plan differs from {golden:?}"
        );
    }
}

/// `chaos-runner plan` prints the golden plan; an invalid plan exits 2 naming the file and
/// the cycle.
#[test]
fn plan_command_prints_the_plan_and_rejects_bad_plans() {
    let binary = env!("CARGO_BIN_EXE_chaos-runner");
    for name in GOLDEN_PLANS {
        let output = std::process::Command::new(binary)
            .arg("plan")
            .arg("--engine")
            .arg(fixture(&format!("{name}.yaml")))
            .output()
            .unwrap();
        assert!(output.status.success(), "{name}: {output:?}");
        let expected = std::fs::read_to_string(fixture(&format!("{name}.plan.txt"))).unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected, "{name}");
    }

    let output = std::process::Command::new(binary)
        .args([
            "plan",
            "--experiments",
            "pod-cpu-hog,pod-delete",
            "--engine",
        ])
        .arg(fixture("invalid-cycle.yaml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid-cycle.yaml"), "{stderr}");
    assert!(
        // The cycle is named from the first experiment of the (overridden) list.
        stderr.contains("dependency cycle pod-cpu-hog -> pod-delete -> pod-cpu-hog"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());

    // --experiments overrides the engine's list; --seed is used when the engine sets none.
    let output = std::process::Command::new(binary)
        .args([
            "plan",
            "--experiments",
            "node-drain,pod-delete",
            "--seed",
            "9",
            "--engine",
        ])
        .arg(fixture("diamond.yaml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("\"pod-cpu-hog\" is not in the experiment list")
    );
}
