//! The run plan: which experiment attempts run, in which order, how many at once, after what,
//! how often and with which waits — resolved once, before anything runs, from the
//! ChaosEngine's `chaos-runner.io/` annotations and the experiment list.
//!
//! The plan lives in annotations because the operator rewrites the engine with its own typed
//! structs after every run, which drops unknown `spec` fields; annotations survive. The resolved
//! [`Plan`] is small plain data, recorded in the checkpoint so a resumed runner follows the same
//! plan (and the same seeded order) instead of resolving a new one.
//!
//! Without any plan annotation the plan is the Go runner's behaviour: the experiment list in
//! order, one at a time, each once, and a failed experiment does not stop the next one. Any plan
//! annotation switches to the plan's semantics: no dependency unless `after` says so, and a
//! dependency that did not pass skips its dependents unless `on-dependency-failure: run`.
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     chaos-runner.io/max-parallel: "2"        # attempts in flight at once (default 1)
//!     chaos-runner.io/after: |                 # `b: a, c` = b runs after every iteration of a and c
//!       pod-cpu-hog: pod-delete
//!       pod-memory-hog: pod-delete
//!       pod-network-loss: pod-cpu-hog, pod-memory-hog
//!     chaos-runner.io/iterations: "pod-delete: 3"   # or a bare "3" for every experiment
//!     chaos-runner.io/min-interval: "30s"           # end of one iteration -> start of the next
//!     chaos-runner.io/shuffle: "true"               # shuffle what dependencies leave free
//!     chaos-runner.io/seed: "42"                    # replay an order exactly
//!     chaos-runner.io/on-dependency-failure: skip   # or `run`
//! ```
//!
//! Lines may also be separated by `;`. Durations are `<n>ms`, `<n>s`, `<n>m`, `<n>h` or whole
//! seconds. Other keys under the prefix are rejected (typo protection), except the ones other
//! parts of the runner read ([`OTHER_RUNNER_ANNOTATIONS`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

/// Prefix of every annotation the runner reads from the ChaosEngine.
pub const ANNOTATION_PREFIX: &str = "chaos-runner.io/";
/// How many experiment attempts may be in flight at once.
pub const MAX_PARALLEL_ANNOTATION: &str = "chaos-runner.io/max-parallel";
/// Dependencies, one line per experiment: `b: a, c`.
pub const AFTER_ANNOTATION: &str = "chaos-runner.io/after";
/// Iterations: a bare count for every experiment, or `name: count` lines.
pub const ITERATIONS_ANNOTATION: &str = "chaos-runner.io/iterations";
/// Minimum wait between the end of one iteration and the start of the next.
pub const MIN_INTERVAL_ANNOTATION: &str = "chaos-runner.io/min-interval";
/// `true` shuffles the order among experiments that dependencies leave free.
pub const SHUFFLE_ANNOTATION: &str = "chaos-runner.io/shuffle";
/// The seed of the shuffle (a `u64`), for an exact replay.
pub const SEED_ANNOTATION: &str = "chaos-runner.io/seed";
/// `skip` or `run`: what a failed dependency does to its dependents.
pub const ON_DEPENDENCY_FAILURE_ANNOTATION: &str = "chaos-runner.io/on-dependency-failure";

/// The annotations that shape the plan; any of them turns the default chain off.
pub const PLAN_ANNOTATIONS: [&str; 7] = [
    MAX_PARALLEL_ANNOTATION,
    AFTER_ANNOTATION,
    ITERATIONS_ANNOTATION,
    MIN_INTERVAL_ANNOTATION,
    SHUFFLE_ANNOTATION,
    SEED_ANNOTATION,
    ON_DEPENDENCY_FAILURE_ANNOTATION,
];

/// The Monitor deadline of every attempt, whole seconds (read by the driver, shown by `plan`).
pub const MONITOR_TIMEOUT_ANNOTATION: &str = "chaos-runner.io/monitor-timeout";

/// Annotations under the prefix that other parts of the runner read; the planner accepts them.
pub const OTHER_RUNNER_ANNOTATIONS: [&str; 4] = [
    "chaos-runner.io/audit",
    "chaos-runner.io/monitoring",
    "chaos-runner.io/exporter-image",
    MONITOR_TIMEOUT_ANNOTATION,
];

/// Upper bound of `max-parallel`: beyond it the value is a typo, not a wish.
pub const MAX_PARALLEL_LIMIT: u32 = 1000;
/// Upper bound of iterations per experiment.
pub const MAX_ITERATIONS: u32 = 1000;
/// Upper bound of attempts in one plan. The engine keeps a token of at most about 9 bytes per
/// attempt (in annotations, limited to 256 KiB in all), so this keeps the record far below
/// that and etcd's object size limit.
pub const MAX_PLAN_ITEMS: usize = 10_000;
/// Upper bound of a minimum interval (7 days).
pub const MAX_INTERVAL_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// What a dependency that did not pass (failed, errored, stopped or skipped) does to its
/// dependents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyFailurePolicy {
    /// Dependents end Skipped, with a reason naming the dependency.
    #[default]
    Skip,
    /// Dependents run anyway once the dependency has ended.
    Run,
}

impl DependencyFailurePolicy {
    /// The annotation value that selects this policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Run => "run",
        }
    }
}

/// The resolved run plan, recorded in the checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// How many attempts may be in flight at once (at least 1).
    pub max_parallel: u32,
    /// The seed the shuffle used (`None` when not shuffled).
    pub seed: Option<u64>,
    /// Whether the order among free experiments was shuffled with `seed`.
    pub shuffled: bool,
    /// What a dependency that did not pass does to its dependents.
    pub on_dependency_failure: DependencyFailurePolicy,
    /// Every attempt, in the resolved start order (a topological order of `after`).
    pub items: Vec<PlanItem>,
    /// Item positions the scheduler consults on every decision, computed once.
    #[serde(skip)]
    index: IndexCell,
}

/// Where each item's dependencies and previous iteration are in the plan.
#[derive(Clone, Debug, Default)]
pub struct PlanIndex {
    /// Positions of `after` (keys the plan does not contain are left out).
    pub after: Vec<Vec<usize>>,
    /// Position of the previous iteration of the same experiment.
    pub previous: Vec<Option<usize>>,
}

/// A computed-once [`PlanIndex`]; not part of a plan's identity.
#[derive(Clone, Debug, Default)]
struct IndexCell(std::sync::OnceLock<PlanIndex>);

impl PartialEq for IndexCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for IndexCell {}

/// What a plan is resolved from, recorded with the run: a resumed runner resolves the same
/// plan from it even if the annotations changed since, and the record stays a few hundred
/// bytes however many attempts the plan has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanInputs {
    pub experiments: Vec<String>,
    /// The plan annotations ([`PLAN_ANNOTATIONS`]) that were set.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The seed used when shuffling without a seed annotation.
    pub seed: u64,
    /// Digest of the resolved plan: a runner that resolves the same inputs to another plan (a
    /// different version) refuses the run rather than follow a plan that did not run.
    pub digest: String,
}

impl PlanInputs {
    /// Resolves the plan (validating every annotation under the prefix) and the inputs that
    /// resolve it again.
    pub fn resolve_new(
        experiments: &[String],
        annotations: &BTreeMap<String, String>,
        seed: u64,
    ) -> Result<(PlanInputs, Plan), PlanError> {
        let plan = resolve(experiments, annotations, seed)?;
        let inputs = PlanInputs {
            experiments: experiments.to_vec(),
            annotations: annotations
                .iter()
                .filter(|(key, _)| PLAN_ANNOTATIONS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            seed,
            digest: plan_digest(&plan),
        };
        Ok((inputs, plan))
    }

    /// The recorded plan, resolved again and checked against its digest.
    pub fn resolve(&self) -> Result<Plan, String> {
        let plan = resolve(&self.experiments, &self.annotations, self.seed)
            .map_err(|error| error.to_string())?;
        let digest = plan_digest(&plan);
        if digest != self.digest {
            return Err(format!(
                "its inputs resolve to another plan here (digest {digest}, recorded {})",
                self.digest
            ));
        }
        Ok(plan)
    }
}

/// A digest of everything the plan decides.
fn plan_digest(plan: &Plan) -> String {
    let text = serde_json::to_string(plan).unwrap_or_default();
    format!("{:016x}", crate::contract::hash::fnv1a64(&[&text]))
}

/// One attempt of one experiment in the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanItem {
    /// `<experiment>#<iteration>`, unique in the plan.
    pub key: String,
    /// The experiment's name, as in the experiment list.
    pub experiment: String,
    /// Which iteration this attempt is, 1-based.
    pub iteration: u32,
    /// How many iterations the experiment has.
    pub iterations: u32,
    /// Keys of the items that must have ended before this one starts: every iteration of each
    /// experiment it depends on (first iteration) or the previous iteration (later ones).
    pub after: Vec<String>,
    /// Minimum wait after the previous iteration of the same experiment ended (0 for the first).
    pub min_wait_ms: u64,
}

impl Plan {
    /// The item with this key.
    pub fn item(&self, key: &str) -> Option<&PlanItem> {
        self.items.iter().find(|item| item.key == key)
    }

    /// Positions of every item's dependencies and previous iteration.
    pub fn index(&self) -> &PlanIndex {
        self.index.0.get_or_init(|| {
            let positions = self.positions();
            let after = self
                .items
                .iter()
                .map(|item| {
                    let known = item.after.iter().map(|key| positions.get(key.as_str()));
                    known.flatten().copied().collect()
                })
                .collect();
            let previous = self
                .items
                .iter()
                .map(|item| {
                    let key = item_key(&item.experiment, item.iteration.checked_sub(1)?);
                    positions.get(key.as_str()).copied()
                })
                .collect();
            PlanIndex { after, previous }
        })
    }

    /// Plan position of every item key.
    pub fn positions(&self) -> BTreeMap<&str, usize> {
        self.items
            .iter()
            .enumerate()
            .map(|(position, item)| (item.key.as_str(), position))
            .collect()
    }
}

/// The key of an experiment's attempt: `<experiment>#<iteration>`.
pub fn item_key(experiment: &str, iteration: u32) -> String {
    format!("{experiment}#{iteration}")
}

/// Why an integer annotation value was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CountProblem {
    /// Not a whole decimal number.
    NotAnInteger,
    /// Zero where at least one is needed.
    Zero,
    /// Below zero.
    Negative,
    /// Above the limit.
    TooLarge { max: u64 },
}

impl fmt::Display for CountProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnInteger => formatter.write_str("not a whole number"),
            Self::Zero => formatter.write_str("must be at least 1"),
            Self::Negative => formatter.write_str("must not be negative"),
            Self::TooLarge { max } => write!(formatter, "must be at most {max}"),
        }
    }
}

/// Renders `for experiment x` when a value came from a `name: value` line.
fn for_experiment(experiment: &Option<String>) -> String {
    experiment
        .as_ref()
        .map(|name| format!(" for experiment {name}"))
        .unwrap_or_default()
}

/// A plan that cannot run; the message names the annotation and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "unknown annotation {key}: the runner reads {} (and {})",
        PLAN_ANNOTATIONS.join(", "),
        OTHER_RUNNER_ANNOTATIONS.join(", ")
    )]
    UnknownAnnotation { key: String },
    #[error("annotation {annotation}: line {line:?} is not `<experiment>: <value>`")]
    MalformedLine {
        annotation: &'static str,
        line: String,
    },
    #[error("annotation {annotation}: experiment {name:?} is not in the experiment list")]
    UnknownExperiment {
        annotation: &'static str,
        name: String,
    },
    #[error("annotation {annotation}: experiment {name} is listed more than once")]
    DuplicateEntry {
        annotation: &'static str,
        name: String,
    },
    #[error("experiment list: experiment {name} is listed more than once")]
    DuplicateExperiment { name: String },
    #[error("annotation {AFTER_ANNOTATION}: experiment {name} depends on itself")]
    SelfDependency { name: String },
    #[error(
        "annotation {AFTER_ANNOTATION}: dependency cycle {} (each runs after the next)",
        path.join(" -> ")
    )]
    Cycle {
        /// The experiments on the cycle; the first is repeated at the end.
        path: Vec<String>,
    },
    #[error(
        "annotation {annotation}: {value:?}{} {problem}",
        for_experiment(experiment)
    )]
    InvalidCount {
        annotation: &'static str,
        experiment: Option<String>,
        value: String,
        problem: CountProblem,
    },
    #[error(
        "annotation {MIN_INTERVAL_ANNOTATION}: {value:?}{} {problem} \
         (use e.g. 30s, 2m, 1h, 1500ms, or whole seconds)",
        for_experiment(experiment)
    )]
    InvalidDuration {
        experiment: Option<String>,
        value: String,
        problem: String,
    },
    #[error("annotation {SHUFFLE_ANNOTATION}: {value:?} is neither \"true\" nor \"false\"")]
    InvalidShuffle { value: String },
    #[error("annotation {SEED_ANNOTATION}: {value:?} is not an unsigned 64-bit integer")]
    InvalidSeed { value: String },
    #[error(
        "annotation {ON_DEPENDENCY_FAILURE_ANNOTATION}: {value:?} is neither \"skip\" nor \"run\""
    )]
    InvalidPolicy { value: String },
    #[error("the plan has {items} attempts (experiments x iterations); at most {max} are allowed")]
    TooManyItems { items: usize, max: usize },
}

/// Resolves the plan from the experiment list (EXPERIMENT_LIST order) and the engine's
/// annotations. `seed_if_unset` is the seed used when shuffling is on and no seed annotation is
/// given (the caller picks it, e.g. from the clock, and the plan records it for replay).
pub fn resolve(
    experiments: &[String],
    annotations: &BTreeMap<String, String>,
    seed_if_unset: u64,
) -> Result<Plan, PlanError> {
    let index = experiment_index(experiments)?;
    let settings = Settings::parse(annotations, &index)?;

    let total_items = settings
        .iterations
        .iter()
        .try_fold(0usize, |total, &count| total.checked_add(count as usize))
        .unwrap_or(usize::MAX);
    if total_items > MAX_PLAN_ITEMS {
        return Err(PlanError::TooManyItems {
            items: total_items,
            max: MAX_PLAN_ITEMS,
        });
    }

    let (dependencies, on_dependency_failure) = match settings.after {
        Some(dependencies) => {
            reject_cycles(experiments, &dependencies)?;
            (
                dependencies,
                settings.on_dependency_failure.unwrap_or_default(),
            )
        }
        // Without an `after` annotation: the Go runner's chain when no plan annotation is set
        // at all, else no dependencies.
        None if settings.is_default => (
            default_chain(experiments.len()),
            DependencyFailurePolicy::Run,
        ),
        None => (
            vec![Vec::new(); experiments.len()],
            settings.on_dependency_failure.unwrap_or_default(),
        ),
    };

    let seed = settings
        .shuffle
        .then(|| settings.seed.unwrap_or(seed_if_unset));
    let max_iterations = settings.iterations.iter().copied().max().unwrap_or(1);
    let ranks = round_ranks(experiments.len(), max_iterations, seed);
    let items = order_items(
        experiments,
        &dependencies,
        &settings.iterations,
        &settings.min_interval_ms,
        &ranks,
    );

    Ok(Plan {
        max_parallel: settings.max_parallel,
        seed,
        shuffled: settings.shuffle,
        on_dependency_failure,
        items,
        index: IndexCell::default(),
    })
}

/// Position of each experiment in the list, rejecting duplicates (defence in depth: the config
/// parser already rejects them).
fn experiment_index(experiments: &[String]) -> Result<BTreeMap<&str, usize>, PlanError> {
    let mut index = BTreeMap::new();
    for (position, name) in experiments.iter().enumerate() {
        if index.insert(name.as_str(), position).is_some() {
            return Err(PlanError::DuplicateExperiment { name: name.clone() });
        }
    }
    Ok(index)
}

/// The parsed annotations, per experiment position where they vary.
struct Settings {
    /// No plan annotation at all: the Go runner's behaviour.
    is_default: bool,
    max_parallel: u32,
    /// Per experiment: positions of the experiments it runs after (`None`: no annotation).
    after: Option<Vec<Vec<usize>>>,
    iterations: Vec<u32>,
    min_interval_ms: Vec<u64>,
    shuffle: bool,
    seed: Option<u64>,
    on_dependency_failure: Option<DependencyFailurePolicy>,
}

impl Settings {
    fn parse(
        annotations: &BTreeMap<String, String>,
        index: &BTreeMap<&str, usize>,
    ) -> Result<Self, PlanError> {
        let mut is_default = true;
        for key in annotations.keys() {
            if PLAN_ANNOTATIONS.contains(&key.as_str()) {
                is_default = false;
            } else if key.starts_with(ANNOTATION_PREFIX)
                && !OTHER_RUNNER_ANNOTATIONS.contains(&key.as_str())
                && !crate::contract::record::Ledger::owns(key)
            {
                return Err(PlanError::UnknownAnnotation { key: key.clone() });
            }
        }
        let value = |key: &str| annotations.get(key).map(|text| text.trim());
        let count = index.len();

        let max_parallel = match value(MAX_PARALLEL_ANNOTATION) {
            Some(text) => parse_count(MAX_PARALLEL_ANNOTATION, None, text, MAX_PARALLEL_LIMIT)?,
            None => 1,
        };
        let after = value(AFTER_ANNOTATION)
            .map(|text| parse_after(text, index))
            .transpose()?;
        let iterations = match value(ITERATIONS_ANNOTATION) {
            None => vec![1; count],
            Some(text) => {
                per_experiment(ITERATIONS_ANNOTATION, text, index, 1, |experiment, raw| {
                    parse_count(ITERATIONS_ANNOTATION, experiment, raw, MAX_ITERATIONS)
                })?
            }
        };
        let min_interval_ms = match value(MIN_INTERVAL_ANNOTATION) {
            None => vec![0; count],
            Some(text) => {
                per_experiment(MIN_INTERVAL_ANNOTATION, text, index, 0, parse_duration_ms)?
            }
        };
        let shuffle = match value(SHUFFLE_ANNOTATION) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(PlanError::InvalidShuffle {
                    value: other.to_owned(),
                });
            }
        };
        let seed = value(SEED_ANNOTATION)
            .map(|text| {
                text.parse::<u64>().map_err(|_| PlanError::InvalidSeed {
                    value: text.to_owned(),
                })
            })
            .transpose()?;
        let on_dependency_failure = match value(ON_DEPENDENCY_FAILURE_ANNOTATION) {
            None => None,
            Some("skip") => Some(DependencyFailurePolicy::Skip),
            Some("run") => Some(DependencyFailurePolicy::Run),
            Some(other) => {
                return Err(PlanError::InvalidPolicy {
                    value: other.to_owned(),
                });
            }
        };

        Ok(Self {
            is_default,
            max_parallel,
            after,
            iterations,
            min_interval_ms,
            shuffle,
            seed,
            on_dependency_failure,
        })
    }
}

/// Splits a lines annotation into `(name, value)` pairs: lines are separated by newlines or `;`,
/// blank lines are ignored.
fn parse_lines<'a>(
    annotation: &'static str,
    text: &'a str,
) -> Result<Vec<(&'a str, &'a str)>, PlanError> {
    text.split(['\n', ';'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => Ok((name.trim(), value.trim())),
            _ => Err(PlanError::MalformedLine {
                annotation,
                line: line.to_owned(),
            }),
        })
        .collect()
}

/// Looks up an experiment named in an annotation.
fn known(
    annotation: &'static str,
    name: &str,
    index: &BTreeMap<&str, usize>,
) -> Result<usize, PlanError> {
    index
        .get(name)
        .copied()
        .ok_or_else(|| PlanError::UnknownExperiment {
            annotation,
            name: name.to_owned(),
        })
}

/// Parses a value that is either one bare value for every experiment or `name: value` lines
/// (experiments not listed get `default`).
fn per_experiment<T: Copy>(
    annotation: &'static str,
    text: &str,
    index: &BTreeMap<&str, usize>,
    default: T,
    parse: impl Fn(Option<String>, &str) -> Result<T, PlanError>,
) -> Result<Vec<T>, PlanError> {
    if !text.contains(':') {
        let value = parse(None, text)?;
        return Ok(vec![value; index.len()]);
    }
    let mut values = vec![default; index.len()];
    let mut seen = BTreeSet::new();
    for (name, raw) in parse_lines(annotation, text)? {
        let position = known(annotation, name, index)?;
        if !seen.insert(position) {
            return Err(PlanError::DuplicateEntry {
                annotation,
                name: name.to_owned(),
            });
        }
        values[position] = parse(Some(name.to_owned()), raw)?;
    }
    Ok(values)
}

/// Parses a count in `1..=max`.
fn parse_count(
    annotation: &'static str,
    experiment: Option<String>,
    text: &str,
    max: u32,
) -> Result<u32, PlanError> {
    let invalid = |problem| PlanError::InvalidCount {
        annotation,
        experiment: experiment.clone(),
        value: text.to_owned(),
        problem,
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid(CountProblem::NotAnInteger));
    }
    let all_zero = digits.bytes().all(|byte| byte == b'0');
    if negative && !all_zero {
        return Err(invalid(CountProblem::Negative));
    }
    if all_zero {
        return Err(invalid(CountProblem::Zero));
    }
    match digits.parse::<u32>() {
        Ok(value) if value <= max => Ok(value),
        _ => Err(invalid(CountProblem::TooLarge {
            max: u64::from(max),
        })),
    }
}

/// Parses a duration: `<digits><unit>` with unit `ms`, `s`, `m` or `h`; no unit means seconds.
fn parse_duration_ms(experiment: Option<String>, text: &str) -> Result<u64, PlanError> {
    let invalid = |problem: &str| PlanError::InvalidDuration {
        experiment: experiment.clone(),
        value: text.to_owned(),
        problem: problem.to_owned(),
    };
    if text.starts_with('-') {
        return Err(invalid("must not be negative"));
    }
    let split = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60 * 1000,
        "h" => 60 * 60 * 1000,
        _ => return Err(invalid("is not a duration")),
    };
    if digits.is_empty() {
        return Err(invalid("is not a duration"));
    }
    let too_long = format!("must be at most {}h", MAX_INTERVAL_MS / 3_600_000);
    digits
        .parse::<u64>()
        .ok()
        .and_then(|amount| amount.checked_mul(unit_ms))
        .filter(|&milliseconds| milliseconds <= MAX_INTERVAL_MS)
        .ok_or_else(|| invalid(&too_long))
}

/// Parses `b: a, c` lines into, per experiment position, the positions it runs after (list
/// order, no duplicates).
fn parse_after(text: &str, index: &BTreeMap<&str, usize>) -> Result<Vec<Vec<usize>>, PlanError> {
    let mut dependencies: Vec<Option<BTreeSet<usize>>> = vec![None; index.len()];
    for (name, list) in parse_lines(AFTER_ANNOTATION, text)? {
        let position = known(AFTER_ANNOTATION, name, index)?;
        let mut set = BTreeSet::new();
        for dependency in list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let dependency_position = known(AFTER_ANNOTATION, dependency, index)?;
            if dependency_position == position {
                return Err(PlanError::SelfDependency {
                    name: name.to_owned(),
                });
            }
            set.insert(dependency_position);
        }
        if dependencies[position].replace(set).is_some() {
            return Err(PlanError::DuplicateEntry {
                annotation: AFTER_ANNOTATION,
                name: name.to_owned(),
            });
        }
    }
    Ok(dependencies
        .into_iter()
        .map(|set| set.unwrap_or_default().into_iter().collect())
        .collect())
}

/// The Go runner's order as dependencies: each experiment after the previous one.
fn default_chain(count: usize) -> Vec<Vec<usize>> {
    (0..count)
        .map(|position| position.checked_sub(1).into_iter().collect())
        .collect()
}

/// Rejects a dependency cycle, naming the experiments on it. Depth-first search in list order,
/// so the same annotations always report the same cycle.
fn reject_cycles(experiments: &[String], dependencies: &[Vec<usize>]) -> Result<(), PlanError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::Unvisited; experiments.len()];
    for root in 0..experiments.len() {
        if marks[root] != Mark::Unvisited {
            continue;
        }
        // Iterative DFS: (node, next dependency to look at); `path` mirrors the stack.
        let mut stack = vec![(root, 0usize)];
        marks[root] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let Some(&dependency) = dependencies[node].get(*next) else {
                marks[node] = Mark::Done;
                stack.pop();
                continue;
            };
            *next += 1;
            match marks[dependency] {
                Mark::Done => {}
                Mark::Unvisited => {
                    marks[dependency] = Mark::OnPath;
                    stack.push((dependency, 0));
                }
                Mark::OnPath => {
                    let start = stack
                        .iter()
                        .position(|&(on_path, _)| on_path == dependency)
                        .unwrap_or(0);
                    let mut cycle: Vec<usize> =
                        stack[start..].iter().map(|&(on_path, _)| on_path).collect();
                    // Start at the earliest experiment of the list, for a stable message.
                    let earliest = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|&(_, &position)| position)
                        .map_or(0, |(offset, _)| offset);
                    cycle.rotate_left(earliest);
                    let mut path: Vec<String> = cycle
                        .iter()
                        .map(|&position| experiments[position].clone())
                        .collect();
                    if let Some(first) = path.first().cloned() {
                        path.push(first);
                    }
                    return Err(PlanError::Cycle { path });
                }
            }
        }
    }
    Ok(())
}

/// A small, hand-written PRNG (splitmix64).
///
/// Written here rather than taken from a crate because a recorded seed must replay the same
/// order forever: a crate may change its algorithm or its sampling between versions (the `rand`
/// crates explicitly do not promise value stability), while these few lines are frozen. Its
/// statistical quality is far beyond what shuffling a few experiments needs.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator that starts from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound` (`bound > 0`), by multiply-and-shift: the bias is below
    /// `bound / 2^64`, nothing for the few experiments of a plan, and it needs no retry loop.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Shuffles `values` in place (Fisher–Yates, from the end).
    pub fn shuffle<T>(&mut self, values: &mut [T]) {
        for last in (1..values.len()).rev() {
            let other = self.below(last as u64 + 1) as usize;
            values.swap(last, other);
        }
    }
}

/// Per iteration round (index `iteration - 1`), the rank of each experiment: its list position,
/// or its position in that round's seeded shuffle (each round is shuffled anew, so repeated runs
/// vary their order too).
fn round_ranks(count: usize, rounds: u32, seed: Option<u64>) -> Vec<Vec<usize>> {
    let Some(seed) = seed else {
        return vec![(0..count).collect()];
    };
    let mut generator = SplitMix64::new(seed);
    (0..rounds)
        .map(|_| {
            let mut order: Vec<usize> = (0..count).collect();
            generator.shuffle(&mut order);
            let mut ranks = vec![0; count];
            for (rank, &experiment) in order.iter().enumerate() {
                ranks[experiment] = rank;
            }
            ranks
        })
        .collect()
}

/// Builds every attempt and orders them topologically; among attempts that are free at the same
/// time, earlier iteration rounds come first, then the round's rank (list order or shuffle).
// Long on purpose: one topological pass (Kahn) with the shuffle and the stage bookkeeping in
// the same loop; the invariants hold across the whole loop.
fn order_items(
    experiments: &[String],
    dependencies: &[Vec<usize>],
    iterations: &[u32],
    min_interval_ms: &[u64],
    ranks: &[Vec<usize>],
) -> Vec<PlanItem> {
    // Attempt identity: (experiment position, iteration).
    let mut dependents: BTreeMap<(usize, u32), Vec<(usize, u32)>> = BTreeMap::new();
    let mut waiting_on: BTreeMap<(usize, u32), usize> = BTreeMap::new();
    let mut ready = BinaryHeap::new();
    let rank = |experiment: usize, iteration: u32| {
        let round = (iteration as usize - 1).min(ranks.len().saturating_sub(1));
        ranks
            .get(round)
            .and_then(|round_ranks| round_ranks.get(experiment))
            .copied()
            .unwrap_or(experiment)
    };
    let after_of = |experiment: usize, iteration: u32| -> Vec<(usize, u32)> {
        if iteration > 1 {
            vec![(experiment, iteration - 1)]
        } else {
            dependencies[experiment]
                .iter()
                .flat_map(|&dependency| {
                    (1..=iterations[dependency]).map(move |round| (dependency, round))
                })
                .collect()
        }
    };

    for (experiment, &count) in iterations.iter().enumerate() {
        for iteration in 1..=count {
            let after = after_of(experiment, iteration);
            for &dependency in &after {
                dependents
                    .entry(dependency)
                    .or_default()
                    .push((experiment, iteration));
            }
            if after.is_empty() {
                ready.push(Reverse((
                    iteration,
                    rank(experiment, iteration),
                    experiment,
                )));
            } else {
                waiting_on.insert((experiment, iteration), after.len());
            }
        }
    }

    let mut items = Vec::new();
    while let Some(Reverse((iteration, _, experiment))) = ready.pop() {
        let name = &experiments[experiment];
        items.push(PlanItem {
            key: item_key(name, iteration),
            experiment: name.clone(),
            iteration,
            iterations: iterations[experiment],
            after: after_of(experiment, iteration)
                .into_iter()
                .map(|(dependency, round)| item_key(&experiments[dependency], round))
                .collect(),
            min_wait_ms: if iteration > 1 {
                min_interval_ms[experiment]
            } else {
                0
            },
        });
        for &dependent in dependents
            .get(&(experiment, iteration))
            .into_iter()
            .flatten()
        {
            if let Some(remaining) = waiting_on.get_mut(&dependent) {
                *remaining -= 1;
                if *remaining == 0 {
                    let (dependent_experiment, dependent_iteration) = dependent;
                    ready.push(Reverse((
                        dependent_iteration,
                        rank(dependent_experiment, dependent_iteration),
                        dependent_experiment,
                    )));
                }
            }
        }
    }
    items
}

/// Formats milliseconds the way the annotations are written: `1500ms`, `30s`, `2m`, `1h`.
pub fn format_duration_ms(milliseconds: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(3_600_000, "h"), (60_000, "m"), (1000, "s")];
    UNITS
        .iter()
        .find(|&&(unit, _)| milliseconds >= unit && milliseconds.is_multiple_of(unit))
        .map_or_else(
            || format!("{milliseconds}ms"),
            |&(unit, suffix)| format!("{}{suffix}", milliseconds / unit),
        )
}

/// Renders the plan for people: settings, then stages (an attempt's stage is one more than the
/// latest stage it waits for), each attempt with what it waits for, in start order.
pub fn render_plan(plan: &Plan) -> String {
    let positions = plan.positions();
    let mut stages = vec![0usize; plan.items.len()];
    for (position, item) in plan.items.iter().enumerate() {
        stages[position] = item
            .after
            .iter()
            .filter_map(|key| positions.get(key.as_str()))
            .map(|&dependency| stages[dependency] + 1)
            .max()
            .unwrap_or(1)
            .max(1);
    }
    let experiment_count = plan
        .items
        .iter()
        .map(|item| item.experiment.as_str())
        .collect::<BTreeSet<_>>()
        .len();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan: {experiment_count} experiment(s), {} attempt(s), {} stage(s)",
        plan.items.len(),
        stages.iter().max().copied().unwrap_or(0)
    );
    let _ = writeln!(out, "max parallel: {}", plan.max_parallel);
    let _ = match (plan.shuffled, plan.seed) {
        (true, Some(seed)) => writeln!(
            out,
            "order: shuffled with seed {seed} (replay with {SEED_ANNOTATION}: \"{seed}\")"
        ),
        _ => writeln!(out, "order: experiment list"),
    };
    let _ = writeln!(
        out,
        "on dependency failure: {}",
        match plan.on_dependency_failure {
            DependencyFailurePolicy::Skip => "skip (dependents end Skipped)",
            DependencyFailurePolicy::Run => "run (dependents run anyway)",
        }
    );
    let _ = writeln!(
        out,
        "start order: {}",
        plan.items
            .iter()
            .map(|item| item.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let last_stage = stages.iter().max().copied().unwrap_or(0);
    for stage in 1..=last_stage {
        let _ = writeln!(out, "stage {stage}:");
        for (position, item) in plan.items.iter().enumerate() {
            if stages[position] != stage {
                continue;
            }
            let _ = writeln!(out, "  {}", describe_item(item));
        }
    }
    out
}

/// One line for one attempt: iteration, dependencies and wait.
fn describe_item(item: &PlanItem) -> String {
    let mut parts = vec![format!("iteration {}/{}", item.iteration, item.iterations)];
    let previous = (item.iteration > 1).then(|| item_key(&item.experiment, item.iteration - 1));
    // Dependencies on other experiments cover all their iterations: name each experiment once.
    let mut dependency_experiments: Vec<(&str, usize)> = Vec::new();
    for key in &item.after {
        if Some(key) == previous.as_ref() {
            continue;
        }
        let experiment = key.rsplit_once('#').map_or(key.as_str(), |(name, _)| name);
        match dependency_experiments
            .iter_mut()
            .find(|(name, _)| *name == experiment)
        {
            Some((_, attempts)) => *attempts += 1,
            None => dependency_experiments.push((experiment, 1)),
        }
    }
    if !dependency_experiments.is_empty() {
        let names: Vec<String> = dependency_experiments
            .iter()
            .map(|&(name, attempts)| match attempts {
                1 => name.to_owned(),
                _ => format!("{name} (all {attempts} iterations)"),
            })
            .collect();
        parts.push(format!("after {}", names.join(", ")));
    }
    if let Some(previous) = previous {
        if item.min_wait_ms > 0 {
            parts.push(format!(
                "after {previous} + {}",
                format_duration_ms(item.min_wait_ms)
            ));
        } else {
            parts.push(format!("after {previous}"));
        }
    }
    format!("{}  ({})", item.key, parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn keys(plan: &Plan) -> Vec<&str> {
        plan.items.iter().map(|item| item.key.as_str()).collect()
    }

    fn resolve_with(list: &[&str], pairs: &[(&str, &str)]) -> Result<Plan, PlanError> {
        resolve(&names(list), &annotations(pairs), 7)
    }

    #[test]
    fn no_annotation_is_the_go_runner_chain() {
        let plan = resolve_with(&["a", "b", "c"], &[]).unwrap();
        assert_eq!(keys(&plan), ["a#1", "b#1", "c#1"]);
        assert_eq!(plan.max_parallel, 1);
        assert_eq!(plan.on_dependency_failure, DependencyFailurePolicy::Run);
        assert!(!plan.shuffled);
        assert_eq!(plan.seed, None);
        assert!(plan.items[0].after.is_empty());
        assert_eq!(plan.items[1].after, ["a#1"]);
        assert_eq!(plan.items[2].after, ["b#1"]);
    }

    #[test]
    fn other_runner_annotations_and_foreign_keys_keep_the_default() {
        let plan = resolve_with(
            &["a", "b"],
            &[
                ("chaos-runner.io/audit", "x"),
                ("chaos-runner.io/monitoring", "true"),
                ("chaos-runner.io/exporter-image", "img"),
                ("chaos-runner.io/monitor-timeout", "5m"),
                ("sidecar/enabled", "true"),
                ("example.com/after", "nonsense"),
            ],
        )
        .unwrap();
        assert_eq!(plan.items[1].after, ["a#1"]);
        assert_eq!(plan.on_dependency_failure, DependencyFailurePolicy::Run);
    }

    #[test]
    fn unknown_key_under_the_prefix_is_rejected() {
        let error = resolve_with(&["a"], &[("chaos-runner.io/max-paralel", "2")]).unwrap_err();
        assert_eq!(
            error,
            PlanError::UnknownAnnotation {
                key: "chaos-runner.io/max-paralel".into()
            }
        );
        assert!(error.to_string().contains("chaos-runner.io/max-paralel"));
    }

    #[test]
    fn max_parallel_parses_and_frees_the_order() {
        let plan = resolve_with(&["a", "b"], &[(MAX_PARALLEL_ANNOTATION, " 2 ")]).unwrap();
        assert_eq!(plan.max_parallel, 2);
        assert!(plan.items.iter().all(|item| item.after.is_empty()));
        assert_eq!(plan.on_dependency_failure, DependencyFailurePolicy::Skip);
        let plan = resolve_with(&["a"], &[(MAX_PARALLEL_ANNOTATION, "1000")]).unwrap();
        assert_eq!(plan.max_parallel, 1000);
    }

    #[test]
    fn bad_max_parallel_is_rejected() {
        for (value, problem) in [
            ("0", CountProblem::Zero),
            ("-1", CountProblem::Negative),
            ("1.5", CountProblem::NotAnInteger),
            ("two", CountProblem::NotAnInteger),
            ("", CountProblem::NotAnInteger),
            ("1001", CountProblem::TooLarge { max: 1000 }),
            ("99999999999999999999", CountProblem::TooLarge { max: 1000 }),
        ] {
            let error = resolve_with(&["a"], &[(MAX_PARALLEL_ANNOTATION, value)]).unwrap_err();
            assert_eq!(
                error,
                PlanError::InvalidCount {
                    annotation: MAX_PARALLEL_ANNOTATION,
                    experiment: None,
                    value: value.into(),
                    problem
                },
                "value {value:?}"
            );
            assert!(error.to_string().contains(MAX_PARALLEL_ANNOTATION));
        }
    }

    #[test]
    fn after_lines_with_newlines_and_semicolons() {
        let plan = resolve_with(
            &["a", "b", "c", "d"],
            &[(AFTER_ANNOTATION, "b: a\nc: a;\n\n d: b, c , \n")],
        )
        .unwrap();
        assert_eq!(keys(&plan), ["a#1", "b#1", "c#1", "d#1"]);
        assert_eq!(plan.item("d#1").unwrap().after, ["b#1", "c#1"]);
        assert_eq!(plan.item("c#1").unwrap().after, ["a#1"]);
        assert_eq!(plan.on_dependency_failure, DependencyFailurePolicy::Skip);
    }

    #[test]
    fn after_orders_dependencies_before_the_list_order() {
        let plan = resolve_with(&["a", "b", "c"], &[(AFTER_ANNOTATION, "a: c")]).unwrap();
        assert_eq!(keys(&plan), ["b#1", "c#1", "a#1"]);
    }

    #[test]
    fn after_waits_for_every_iteration_of_the_dependency() {
        let plan = resolve_with(
            &["a", "b"],
            &[(AFTER_ANNOTATION, "b: a"), (ITERATIONS_ANNOTATION, "a: 3")],
        )
        .unwrap();
        assert_eq!(plan.item("b#1").unwrap().after, ["a#1", "a#2", "a#3"]);
        assert_eq!(keys(&plan), ["a#1", "a#2", "a#3", "b#1"]);
    }

    #[test]
    fn bad_after_is_rejected() {
        let list = ["a", "b", "c"];
        assert_eq!(
            resolve_with(&list, &[(AFTER_ANNOTATION, "b: x")]).unwrap_err(),
            PlanError::UnknownExperiment {
                annotation: AFTER_ANNOTATION,
                name: "x".into()
            }
        );
        assert_eq!(
            resolve_with(&list, &[(AFTER_ANNOTATION, "x: a")]).unwrap_err(),
            PlanError::UnknownExperiment {
                annotation: AFTER_ANNOTATION,
                name: "x".into()
            }
        );
        assert_eq!(
            resolve_with(&list, &[(AFTER_ANNOTATION, "b: a, b")]).unwrap_err(),
            PlanError::SelfDependency { name: "b".into() }
        );
        assert_eq!(
            resolve_with(&list, &[(AFTER_ANNOTATION, "b a")]).unwrap_err(),
            PlanError::MalformedLine {
                annotation: AFTER_ANNOTATION,
                line: "b a".into()
            }
        );
        assert_eq!(
            resolve_with(&list, &[(AFTER_ANNOTATION, ": a")]).unwrap_err(),
            PlanError::MalformedLine {
                annotation: AFTER_ANNOTATION,
                line: ": a".into()
            }
        );
        assert_eq!(
            resolve_with(&list, &[(AFTER_ANNOTATION, "b: a; b: c")]).unwrap_err(),
            PlanError::DuplicateEntry {
                annotation: AFTER_ANNOTATION,
                name: "b".into()
            }
        );
    }

    #[test]
    fn cycles_are_named() {
        let error = resolve_with(&["a", "b"], &[(AFTER_ANNOTATION, "a: b\nb: a")]).unwrap_err();
        assert_eq!(
            error,
            PlanError::Cycle {
                path: names(&["a", "b", "a"])
            }
        );
        assert!(error.to_string().contains("a -> b -> a"), "{error}");

        let error = resolve_with(
            &["x", "a", "b", "c"],
            &[(AFTER_ANNOTATION, "c: b\nb: a\na: c\nx: c")],
        )
        .unwrap_err();
        assert_eq!(
            error,
            PlanError::Cycle {
                path: names(&["a", "c", "b", "a"])
            }
        );
    }

    #[test]
    fn iterations_bare_and_per_experiment() {
        let plan = resolve_with(&["a", "b"], &[(ITERATIONS_ANNOTATION, "2")]).unwrap();
        assert_eq!(keys(&plan), ["a#1", "b#1", "a#2", "b#2"]);
        assert_eq!(plan.item("a#2").unwrap().after, ["a#1"]);
        assert_eq!(plan.item("a#2").unwrap().iterations, 2);

        let plan = resolve_with(&["a", "b", "c"], &[(ITERATIONS_ANNOTATION, "b: 3; c:1")]).unwrap();
        assert_eq!(keys(&plan), ["a#1", "b#1", "c#1", "b#2", "b#3"]);
        assert_eq!(plan.item("a#1").unwrap().iterations, 1);
    }

    #[test]
    fn bad_iterations_are_rejected() {
        let cases: [(&str, Option<&str>, &str, CountProblem); 6] = [
            ("0", None, "0", CountProblem::Zero),
            ("-2", None, "-2", CountProblem::Negative),
            ("x", None, "x", CountProblem::NotAnInteger),
            ("a: 0", Some("a"), "0", CountProblem::Zero),
            ("a: -1", Some("a"), "-1", CountProblem::Negative),
            (
                "a: 1001",
                Some("a"),
                "1001",
                CountProblem::TooLarge { max: 1000 },
            ),
        ];
        for (text, experiment, value, problem) in cases {
            assert_eq!(
                resolve_with(&["a", "b"], &[(ITERATIONS_ANNOTATION, text)]).unwrap_err(),
                PlanError::InvalidCount {
                    annotation: ITERATIONS_ANNOTATION,
                    experiment: experiment.map(str::to_owned),
                    value: value.into(),
                    problem
                },
                "text {text:?}"
            );
        }
        assert_eq!(
            resolve_with(&["a"], &[(ITERATIONS_ANNOTATION, "z: 2")]).unwrap_err(),
            PlanError::UnknownExperiment {
                annotation: ITERATIONS_ANNOTATION,
                name: "z".into()
            }
        );
        assert_eq!(
            resolve_with(&["a"], &[(ITERATIONS_ANNOTATION, "a: 2\na: 3")]).unwrap_err(),
            PlanError::DuplicateEntry {
                annotation: ITERATIONS_ANNOTATION,
                name: "a".into()
            }
        );
        let message = resolve_with(&["a"], &[(ITERATIONS_ANNOTATION, "a: 0")])
            .unwrap_err()
            .to_string();
        assert!(message.contains(ITERATIONS_ANNOTATION) && message.contains("experiment a"));
    }

    #[test]
    fn too_many_items_are_rejected() {
        let list: Vec<String> = (0..11).map(|index| format!("e{index}")).collect();
        let error = resolve(&list, &annotations(&[(ITERATIONS_ANNOTATION, "910")]), 0)
            .map(|plan| plan.items.len())
            .unwrap_err();
        assert_eq!(
            error,
            PlanError::TooManyItems {
                items: 10_010,
                max: 10_000
            }
        );
        let at_the_cap = resolve(
            &list[..10],
            &annotations(&[(ITERATIONS_ANNOTATION, "1000")]),
            0,
        );
        assert_eq!(at_the_cap.map(|plan| plan.items.len()), Ok(10_000));
    }

    #[test]
    fn min_interval_forms() {
        for (text, expected) in [
            ("30s", 30_000),
            ("2m", 120_000),
            ("1500ms", 1500),
            ("45", 45_000),
            ("1h", 3_600_000),
            ("0", 0),
        ] {
            let plan = resolve_with(
                &["a"],
                &[
                    (ITERATIONS_ANNOTATION, "2"),
                    (MIN_INTERVAL_ANNOTATION, text),
                ],
            )
            .unwrap();
            assert_eq!(plan.item("a#1").unwrap().min_wait_ms, 0, "{text}");
            assert_eq!(plan.item("a#2").unwrap().min_wait_ms, expected, "{text}");
        }
        let plan = resolve_with(
            &["a", "b"],
            &[
                (ITERATIONS_ANNOTATION, "2"),
                (MIN_INTERVAL_ANNOTATION, "b: 2m"),
            ],
        )
        .unwrap();
        assert_eq!(plan.item("a#2").unwrap().min_wait_ms, 0);
        assert_eq!(plan.item("b#2").unwrap().min_wait_ms, 120_000);
    }

    #[test]
    fn bad_min_interval_is_rejected() {
        for text in [
            "-5s",
            "5d",
            "s",
            "1.5s",
            "abc",
            "9999999999999999999h",
            "169h",
        ] {
            let error = resolve_with(&["a"], &[(MIN_INTERVAL_ANNOTATION, text)]).unwrap_err();
            assert!(
                matches!(&error, PlanError::InvalidDuration { experiment: None, value, .. } if value == text),
                "{text}: {error:?}"
            );
            assert!(error.to_string().contains(MIN_INTERVAL_ANNOTATION));
        }
        let error = resolve_with(&["a"], &[(MIN_INTERVAL_ANNOTATION, "a: soon")]).unwrap_err();
        assert!(matches!(
            error,
            PlanError::InvalidDuration { experiment: Some(name), .. } if name == "a"
        ));
    }

    #[test]
    fn shuffle_and_seed() {
        let list: Vec<String> = (0..8).map(|index| format!("e{index}")).collect();
        let shuffle = annotations(&[(SHUFFLE_ANNOTATION, "true")]);
        let plan = resolve(&list, &shuffle, 99).unwrap();
        assert!(plan.shuffled);
        assert_eq!(plan.seed, Some(99));
        assert_eq!(plan, resolve(&list, &shuffle, 99).unwrap());
        assert_ne!(
            keys(&plan),
            keys(&resolve(&list, &annotations(&[]), 99).unwrap())
        );

        let seeded = annotations(&[(SHUFFLE_ANNOTATION, "true"), (SEED_ANNOTATION, "42")]);
        let plan = resolve(&list, &seeded, 1).unwrap();
        assert_eq!(plan.seed, Some(42));
        assert_eq!(plan, resolve(&list, &seeded, 2).unwrap());

        let off = resolve(
            &list,
            &annotations(&[(SHUFFLE_ANNOTATION, "false"), (SEED_ANNOTATION, "42")]),
            1,
        )
        .unwrap();
        assert!(!off.shuffled);
        assert_eq!(off.seed, None);
        assert_eq!(keys(&off)[0], "e0#1");

        assert_eq!(
            resolve_with(&["a"], &[(SHUFFLE_ANNOTATION, "yes")]).unwrap_err(),
            PlanError::InvalidShuffle {
                value: "yes".into()
            }
        );
        assert_eq!(
            resolve_with(&["a"], &[(SEED_ANNOTATION, "-1")]).unwrap_err(),
            PlanError::InvalidSeed { value: "-1".into() }
        );
    }

    #[test]
    fn dependency_failure_policy() {
        let plan = resolve_with(&["a", "b"], &[(ON_DEPENDENCY_FAILURE_ANNOTATION, "run")]).unwrap();
        assert_eq!(plan.on_dependency_failure, DependencyFailurePolicy::Run);
        let plan = resolve_with(
            &["a", "b"],
            &[
                (ON_DEPENDENCY_FAILURE_ANNOTATION, "skip"),
                (AFTER_ANNOTATION, "b: a"),
            ],
        )
        .unwrap();
        assert_eq!(plan.on_dependency_failure, DependencyFailurePolicy::Skip);
        assert_eq!(
            resolve_with(&["a"], &[(ON_DEPENDENCY_FAILURE_ANNOTATION, "Skip")]).unwrap_err(),
            PlanError::InvalidPolicy {
                value: "Skip".into()
            }
        );
    }

    #[test]
    fn duplicate_experiment_list_is_rejected() {
        assert_eq!(
            resolve_with(&["a", "a"], &[]).unwrap_err(),
            PlanError::DuplicateExperiment { name: "a".into() }
        );
    }

    #[test]
    fn splitmix64_is_frozen() {
        // Reference values of splitmix64 for seed 0: any change here breaks recorded seeds.
        let mut generator = SplitMix64::new(0);
        assert_eq!(generator.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(generator.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut order: Vec<u32> = (0..6).collect();
        SplitMix64::new(42).shuffle(&mut order);
        let mut again: Vec<u32> = (0..6).collect();
        SplitMix64::new(42).shuffle(&mut again);
        assert_eq!(order, again);
        assert_ne!(order, (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn plan_round_trips_through_json() {
        let plan = resolve_with(
            &["a", "b"],
            &[
                (AFTER_ANNOTATION, "b: a"),
                (ITERATIONS_ANNOTATION, "2"),
                (SHUFFLE_ANNOTATION, "true"),
            ],
        )
        .unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains("\"onDependencyFailure\":\"skip\""), "{json}");
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    }

    #[test]
    fn durations_format_like_annotations() {
        assert_eq!(format_duration_ms(1500), "1500ms");
        assert_eq!(format_duration_ms(30_000), "30s");
        assert_eq!(format_duration_ms(120_000), "2m");
        assert_eq!(format_duration_ms(3_600_000), "1h");
        assert_eq!(format_duration_ms(0), "0ms");
    }

    #[test]
    fn render_shows_stages_seed_and_waits() {
        let plan = resolve_with(
            &["a", "b", "c"],
            &[
                (AFTER_ANNOTATION, "c: a, b"),
                (ITERATIONS_ANNOTATION, "a: 2"),
                (MIN_INTERVAL_ANNOTATION, "30s"),
                (SHUFFLE_ANNOTATION, "true"),
                (SEED_ANNOTATION, "5"),
                (MAX_PARALLEL_ANNOTATION, "2"),
            ],
        )
        .unwrap();
        let text = render_plan(&plan);
        assert!(text.contains("max parallel: 2"), "{text}");
        assert!(text.contains("shuffled with seed 5"), "{text}");
        assert!(
            text.contains("a#2  (iteration 2/2; after a#1 + 30s)"),
            "{text}"
        );
        assert!(
            text.contains("c#1  (iteration 1/1; after a (all 2 iterations), b)"),
            "{text}"
        );
        assert!(text.contains("stage 3:\n  c#1"), "{text}");
    }
}
