//! The fuzz targets: every parser of what users and the cluster hand the runner, the merge, the
//! Job builder, the planner and the scheduler, fed arbitrary bytes. A target may refuse its
//! input (that is the point of bad input) but must never panic, and what it accepts must hold
//! the invariants checked below.
//!
//! Shared by the stable fuzzer (`fuzz/stable.rs`, `cargo test --test fuzz`) and the cargo-fuzz
//! targets (`fuzz/fuzz_targets/*.rs`, nightly). Each target returns a short signature of what
//! happened (which parser refused what, roughly); the stable fuzzer keeps inputs with a new
//! signature as seeds, a poor man's coverage feedback.

use std::collections::{BTreeMap, BTreeSet};

use chaos_runner::contract::config::{RunnerConfig, parse_experiment_list, parse_trace_parent};
use chaos_runner::contract::crd::{
    ChaosEngine, ChaosExperiment, ChaosResult, decode, is_dns_label, is_object_name,
};
use chaos_runner::contract::job::{MAX_JOB_NAME_LEN, build_job, job_name, sidecar_name};
use chaos_runner::contract::merge::{
    CHAOS_UID_LABEL, ExperimentRun, RunnerEnv, check_structure, dependencies, merge,
};
use chaos_runner::contract::plan::{self, Plan};
use chaos_runner::contract::record::{
    LEGACY_AUDIT_ANNOTATION, Ledger, PROGRESS_ANNOTATION_PREFIX, RUN_ANNOTATION, RunRecord,
    TRAIL_ANNOTATION_PREFIX,
};
use chaos_runner::contract::schedule::{self, ItemState};
use chaos_runner_states as states;
use serde_json::Value;

/// A target: bytes in, a signature of the outcome out; panics are the findings.
pub type Target = fn(&[u8]) -> String;

/// Every target, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("crd", crd),
    ("run", run),
    ("plan", plan_text),
    ("env", env),
    ("result", result),
    ("record", record),
];

/// Separates the records of a `plan` input: the experiment list, then `key=value` annotations.
pub const PLAN_SEPARATOR: char = '\u{1}';

/// uid given to an engine without one, as `chaos-runner render` does.
const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// A short, low-cardinality description of an error: digits and quoted text removed, cut at 48
/// characters, so that similar failures share a signature.
fn shape(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    let mut out = String::new();
    let mut quoted = false;
    for character in text.chars() {
        match character {
            '"' | '`' => quoted = !quoted,
            _ if quoted => {}
            '0'..='9' => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            _ => out.push(character),
        }
        if out.len() >= 48 {
            break;
        }
    }
    out
}

fn outcome<T, E: std::fmt::Display>(label: &str, result: &Result<T, E>) -> String {
    match result {
        Ok(_) => format!("{label}:ok "),
        Err(error) => format!("{label}:{} ", shape(error)),
    }
}

// ---------------------------------------------------------------------------------------------
// The custom resources

/// The three custom resources from YAML (as `render` reads files) and from JSON (as the API
/// server answers, decoded through a `Value` like the runner's dynamic reads, and directly like
/// `Api<ChaosResult>`). What decodes must serialize and decode back to itself: the runner
/// writes patches built from objects it read.
pub fn crd(data: &[u8]) -> String {
    let mut signature = String::new();
    if let Ok(text) = std::str::from_utf8(data) {
        let engines = serde_saphyr::from_multiple::<ChaosEngine>(text);
        if let Ok(engines) = &engines {
            engines.iter().for_each(check_engine);
        }
        signature += &outcome("yaml-engine", &engines);
        let experiments = serde_saphyr::from_multiple::<ChaosExperiment>(text);
        if let Ok(experiments) = &experiments {
            experiments.iter().for_each(round_trip);
        }
        signature += &outcome("yaml-experiment", &experiments);
        let results = serde_saphyr::from_multiple::<ChaosResult>(text);
        if let Ok(results) = &results {
            results.iter().for_each(round_trip);
        }
        signature += &outcome("yaml-result", &results);
        if let Ok(documents) = serde_saphyr::from_multiple::<Value>(text) {
            for document in documents {
                signature += &decode_value(document);
            }
        }
    }
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        signature += &decode_value(value);
    }
    let direct = serde_json::from_slice::<ChaosResult>(data);
    if let Ok(result) = &direct {
        round_trip(result);
    }
    signature + &outcome("json-result", &direct)
}

fn decode_value(value: Value) -> String {
    let engine = serde_json::from_value::<ChaosEngine>(value.clone());
    if let Ok(engine) = &engine {
        check_engine(engine);
    }
    let located = decode::<ChaosEngine>(value.clone());
    assert_eq!(located.is_ok(), engine.is_ok(), "{located:?}");
    let experiment = serde_json::from_value::<ChaosExperiment>(value.clone());
    if let Ok(experiment) = &experiment {
        round_trip(experiment);
    }
    let located = decode::<ChaosExperiment>(value.clone());
    assert_eq!(located.is_ok(), experiment.is_ok(), "{located:?}");
    let result = serde_json::from_value::<ChaosResult>(value);
    if let Ok(result) = &result {
        round_trip(result);
    }
    outcome("engine", &engine) + &outcome("experiment", &experiment) + &outcome("result", &result)
}

fn check_engine(engine: &ChaosEngine) {
    round_trip(engine);
    engine.sidecars_enabled();
    for entry in &engine.spec.experiments {
        assert!(engine.experiment_entry(&entry.name).is_some());
    }
}

/// Serializes `object` and decodes the JSON again: it must be the same object.
fn round_trip<T>(object: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let written = serde_json::to_value(object).expect("a decoded object serializes");
    let again: T = serde_json::from_value(written.clone())
        .unwrap_or_else(|error| panic!("{written} does not decode again: {error}"));
    assert_eq!(&again, object, "round trip through {written}");
}

// ---------------------------------------------------------------------------------------------
// Engine + experiments -> plan, merge, Job

/// A YAML stream as `render` takes it: the first document that is not a ChaosExperiment is the
/// engine, the ChaosExperiments follow. The plan of the engine's experiments is resolved and
/// scheduled to the end; every experiment is merged, checked and built into its Jobs.
pub fn run(data: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(data) else {
        return "utf8".into();
    };
    let Ok(documents) = serde_saphyr::from_multiple::<Value>(text) else {
        return "yaml".into();
    };
    let mut engine: Option<ChaosEngine> = None;
    let mut experiments = Vec::new();
    let mut signature = String::new();
    for document in documents {
        if document["kind"] == "ChaosExperiment" {
            let experiment = serde_json::from_value::<ChaosExperiment>(document);
            signature += &outcome("experiment", &experiment);
            experiments.extend(experiment.ok());
        } else if engine.is_none() {
            let decoded = serde_json::from_value::<ChaosEngine>(document);
            signature += &outcome("engine", &decoded);
            engine = decoded.ok();
        }
    }
    let Some(mut engine) = engine else {
        return signature;
    };
    if engine.name().is_empty() {
        engine.metadata.name = Some("fuzz".into());
    }
    if engine
        .metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        engine.metadata.uid = Some(PLACEHOLDER_UID.into());
    }
    let names: Vec<String> = engine
        .spec
        .experiments
        .iter()
        .map(|entry| entry.name.clone())
        .collect();
    let annotations = engine.metadata.annotations.clone().unwrap_or_default();
    signature += &check_plan(&names, &annotations, seed_of(data));

    let runner = RunnerEnv::offline(&engine);
    for experiment in experiments.iter().take(8) {
        let merged = merge(&engine, experiment, &runner);
        signature += &outcome("merge", &merged);
        if let Ok(run) = merged {
            signature += &check_run(&run, &engine);
        }
    }
    signature
}

fn check_run(run: &ExperimentRun, engine: &ChaosEngine) -> String {
    let structure = check_structure(run);
    let deps = dependencies(run);
    let _ = (
        run.result_name(),
        run.total_chaos_duration_seconds(),
        run.deletes_job(),
        run.status_check_timeouts(),
    );
    assert_eq!(run.labels.get(CHAOS_UID_LABEL), Some(&run.engine_uid));
    let mut names = BTreeSet::new();
    for var in &run.env {
        assert!(names.insert(&var.name), "env {} twice", var.name);
    }
    if structure.is_ok() {
        // What passes the structural check names only objects that can exist.
        for dependency in &deps {
            assert!(
                dependency.node_path.is_some() || is_object_name(&dependency.name),
                "{dependency:?}"
            );
        }
        if run.instance_id().is_some() {
            assert!(is_object_name(&run.result_name()));
        }
    }
    for attempt in [1, 2, u32::MAX] {
        let name = job_name(
            &run.engine_uid,
            &run.experiment_name,
            run.instance_id(),
            attempt,
        );
        assert!(
            name.len() <= MAX_JOB_NAME_LEN && is_dns_label(&name),
            "job name {name:?}"
        );
        let job = build_job(run, &name, engine).expect("the owner has a name and a uid");
        let spec = job.spec.as_ref().expect("a Job spec");
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.as_ref().expect("a pod spec");
        assert_eq!(pod.containers[0].name, name);
        for (index, sidecar) in pod.containers.iter().skip(1).enumerate() {
            assert_eq!(sidecar.name, sidecar_name(&name, index));
            assert!(
                is_dns_label(&sidecar.name),
                "sidecar name {:?}",
                sidecar.name
            );
        }
        let env = pod.containers[0].env.as_deref().unwrap_or_default();
        assert_eq!(env.iter().filter(|v| v.name == "POD_NAME").count(), 1);
        serde_saphyr::to_string(&job).expect("the Job renders as YAML");
        serde_json::to_vec(&job).expect("the Job serializes");
    }
    outcome("structure", &structure)
}

// ---------------------------------------------------------------------------------------------
// Plans

/// `<EXPERIMENT_LIST>` then `key=value` records, separated by [`PLAN_SEPARATOR`]; a key without
/// a `/` gets the `chaos-runner.io/` prefix. The list is split as `chaos-runner plan
/// --experiments` splits it (duplicates kept: the planner must refuse them).
pub fn plan_text(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let mut records = text.split(PLAN_SEPARATOR);
    let names: Vec<String> = records
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect();
    let mut annotations = BTreeMap::new();
    for record in records {
        let (key, value) = record.split_once('=').unwrap_or((record, ""));
        let key = if key.contains('/') {
            key.to_owned()
        } else {
            format!("{}{key}", plan::ANNOTATION_PREFIX)
        };
        annotations.insert(key, value.to_owned());
    }
    check_plan(&names, &annotations, seed_of(data))
}

/// Encodes an experiment list and annotations as a [`plan_text`] input (for seeds).
pub fn encode_plan(names: &[String], annotations: &BTreeMap<String, String>) -> Vec<u8> {
    let mut text = names.join(",");
    for (key, value) in annotations {
        text.push(PLAN_SEPARATOR);
        text.push_str(key.strip_prefix(plan::ANNOTATION_PREFIX).unwrap_or(key));
        text.push('=');
        text.push_str(value);
    }
    text.into_bytes()
}

fn seed_of(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Resolves the plan; a plan that resolves is well formed, survives the checkpoint's round trip,
/// renders, and the scheduler runs it to the end (every attempt started at most once, never
/// more than `max-parallel` at once, never stuck).
fn check_plan(names: &[String], annotations: &BTreeMap<String, String>, seed: u64) -> String {
    let resolved = plan::resolve(names, annotations, seed);
    let signature = outcome("plan", &resolved);
    let Ok(plan) = resolved else {
        return signature;
    };
    assert!((1..=plan::MAX_PARALLEL_LIMIT).contains(&plan.max_parallel));
    let mut seen = BTreeSet::new();
    for item in &plan.items {
        for dependency in &item.after {
            assert!(
                seen.contains(dependency),
                "{} before {dependency}",
                item.key
            );
        }
        assert!(seen.insert(item.key.clone()), "{} twice", item.key);
    }
    let stored: Plan = serde_json::from_value(serde_json::to_value(&plan).unwrap()).unwrap();
    assert_eq!(stored, plan);
    plan::render_plan(&plan);
    if plan.items.len() <= 64 {
        simulate(&plan, seed);
    }
    signature
}

fn simulate(plan: &Plan, seed: u64) {
    let mut states: BTreeMap<String, ItemState> = BTreeMap::new();
    let mut now_ms = 0u64;
    let mut generator = plan::SplitMix64::new(seed);
    for _ in 0..(plan.items.len() * 4 + 8) {
        let decision = schedule::decide(plan, &states, now_ms);
        for (key, reason) in decision.skip {
            assert!(!states.get(&key).is_some_and(ItemState::is_terminal));
            states.insert(key, ItemState::Skipped { reason });
        }
        if decision.done {
            assert!(
                plan.items
                    .iter()
                    .all(|item| { states.get(&item.key).is_some_and(ItemState::is_terminal) })
            );
            return;
        }
        for key in decision.start {
            let previous = states.insert(key.clone(), ItemState::Running);
            assert!(
                matches!(previous, None | Some(ItemState::Waiting)),
                "{key} started again"
            );
        }
        let running: Vec<String> = states
            .iter()
            .filter(|(_, state)| matches!(state, ItemState::Running))
            .map(|(key, _)| key.clone())
            .collect();
        assert!(running.len() <= plan.max_parallel as usize);
        now_ms = now_ms.saturating_add(1 + generator.below(5_000));
        if let Some(key) = running.first() {
            let passed = generator.below(3) != 0;
            states.insert(
                key.clone(),
                ItemState::Finished {
                    passed,
                    ended_at_ms: now_ms,
                },
            );
        } else {
            let wake = decision
                .wake_at_ms
                .expect("nothing runs, nothing starts: a wait");
            now_ms = now_ms.max(wake);
        }
    }
    panic!("the schedule did not end: {states:?}");
}

// ---------------------------------------------------------------------------------------------
// The runner's env, the command line

/// `KEY=VALUE` lines as the runner's environment; the whole input as `EXPERIMENT_LIST` and as
/// `TRACE_PARENT`; its words as a command line.
pub fn env(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            vars.insert(key.to_owned(), value.to_owned());
        }
    }
    let config = RunnerConfig::from_env(&vars);
    if let Ok(config) = &config {
        assert!(is_object_name(&config.engine_name) && is_dns_label(&config.namespace));
        assert!(!config.experiments.is_empty());
        let unique: BTreeSet<&String> = config.experiments.iter().collect();
        assert_eq!(unique.len(), config.experiments.len());
        assert!(config.experiments.iter().all(|name| is_object_name(name)));
        let _ = RunnerEnv::from_config(config);
    }
    let list = parse_experiment_list(&text);
    let trace = parse_trace_parent(&text);
    let args = chaos_runner::cli::normalize_go_flags(
        std::iter::once("chaos-runner".into()).chain(text.split_whitespace().map(Into::into)),
    );
    let cli = <chaos_runner::cli::Cli as clap::Parser>::try_parse_from(args);
    outcome("env", &config)
        + &outcome("list", &list)
        + &outcome("trace", &trace)
        + &outcome(
            "cli",
            &cli.map_err(|e| e.kind())
                .map_err(|kind| format!("{kind:?}")),
        )
}

// ---------------------------------------------------------------------------------------------
// ChaosResults through the phase engine

/// A ChaosResult as the API answers it (JSON) or as YAML, fed to the phase engine in
/// AwaitResult after each way a pod can end and under both policies, as the driver feeds it:
/// the engine must take it, and the attempt must end with an entry.
pub fn result(data: &[u8]) -> String {
    let decoded = serde_json::from_slice::<ChaosResult>(data).or_else(|error| {
        std::str::from_utf8(data)
            .ok()
            .and_then(|text| serde_saphyr::from_str::<Value>(text).ok())
            .and_then(|value| serde_json::from_value::<ChaosResult>(value).ok())
            .ok_or(error)
    });
    let signature = outcome("result", &decoded);
    let input = match &decoded {
        Ok(result) => {
            let status = result.status.as_ref().map(|s| &s.experiment_status);
            states::Input::ResultSeen {
                verdict: result
                    .verdict()
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default(),
                phase: status
                    .and_then(|s| s.phase.as_ref())
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
                fail_reason: status
                    .and_then(|s| s.error_output.as_ref())
                    .map(|e| e.reason.clone())
                    .filter(|r| !r.is_empty()),
            }
        }
        Err(_) => states::Input::ResultMissing,
    };
    let ends = [
        states::PodEnd::Succeeded,
        states::PodEnd::Failed {
            reason: "Error".into(),
        },
        states::PodEnd::PendingTimeout,
        states::PodEnd::DeadlinePassed {
            what: "the deadline".into(),
        },
    ];
    for end in ends {
        for cleanup in [states::CleanupPolicy::Delete, states::CleanupPolicy::Retain] {
            let context = states::StepContext {
                cleanup,
                now: "2026-01-01T00:00:00Z".into(),
            };
            let mut checkpoint = states::Checkpoint::new("fuzz", None, 1, "2026-01-01T00:00:00Z");
            checkpoint.phase = states::Phase::AwaitResult {
                job: "fuzz-abcdef".into(),
                pod: Some("fuzz-abcdef-xyz12".into()),
                end: end.clone(),
            };
            let read = states::step(&checkpoint, &input, &context).expect("AwaitResult takes it");
            let answer = match cleanup {
                states::CleanupPolicy::Delete => states::Input::JobDeleted,
                states::CleanupPolicy::Retain => states::Input::JobRetained,
            };
            let cleaned = states::step(&read.checkpoint, &answer, &context).expect("Cleanup");
            assert!(states::entry_for(&cleaned.checkpoint).is_some());
        }
    }
    signature
}

// ---------------------------------------------------------------------------------------------
// What the runner stored in the engine

/// A JSON value as `status.chaosRunner` (the run record), its attempts as checkpoints, and the
/// text as each of the ledger's annotations (run header, progress, trail segment, legacy
/// trail). A checkpoint that decodes must be resumable; a ledger that decodes must re-encode.
pub fn record(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data).into_owned();
    let header = r#"{"runId":"r","startedAt":"2026-01-01T00:00:00Z"}"#.to_owned();
    let mut signature = String::new();
    for key in [
        RUN_ANNOTATION.to_owned(),
        format!("{PROGRESS_ANNOTATION_PREFIX}0"),
        format!("{TRAIL_ANNOTATION_PREFIX}3"),
        LEGACY_AUDIT_ANNOTATION.to_owned(),
    ] {
        let mut annotations = BTreeMap::from([(RUN_ANNOTATION.to_owned(), header.clone())]);
        annotations.insert(key, text.clone());
        let ledger = Ledger::from_annotations(Some(&annotations));
        signature += &format!("ledger:{} ", ledger.is_some());
        if let Some(ledger) = ledger {
            let again = Ledger::from_annotations(Some(&ledger.annotations()));
            assert_eq!(
                again.as_ref(),
                Some(&ledger),
                "a decoded ledger re-encodes to itself"
            );
        }
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return signature;
    };
    let status = serde_json::json!({ "chaosRunner": value.clone() });
    let found = RunRecord::from_status(Some(&status));
    signature += &outcome("record", &found);
    let mut checkpoints: Vec<Value> = vec![value];
    if let Ok(Some(record)) = found {
        checkpoints.extend(record.attempts.into_values());
    }
    for stored in checkpoints {
        let decoded = states::Checkpoint::from_json_value(stored);
        signature += &outcome("checkpoint", &decoded);
        if let Ok(checkpoint) = decoded {
            let _ = states::resume_effects(&checkpoint);
            let _ = states::entry_for(&checkpoint);
            let context = states::StepContext {
                cleanup: states::CleanupPolicy::Delete,
                now: "2026-01-01T00:00:00Z".into(),
            };
            let abort = states::Input::AbortRequested {
                reason: "fuzz".into(),
            };
            let _ = states::step(&checkpoint, &abort, &context);
        }
    }
    signature
}
