//! The stable-toolchain fuzzer of chaos-runner's parsers, merge, Job builder, planner and
//! scheduler (`fuzz/targets.rs`): mutated inputs, seeded from every fixture of the repository,
//! into every target, until the time or execution budget is spent. Any panic is a finding: the
//! input is saved under `target/fuzz-crashes/` and the run fails.
//!
//! ```sh
//! cargo test --features e2e --test fuzz                                 # quick (cargo test): seeds + 1 s
//! cargo test --features e2e --test fuzz -- --fuzz-seconds 25            # the short run of tests/test.sh
//! cargo test --features e2e --test fuzz -- --fuzz-execs 1000000 --fuzz-seconds 3600   # the soak
//! cargo test --features e2e --test fuzz -- --fuzz-replay FILE [--fuzz-target NAME]   # one input
//! cargo test --features e2e --test fuzz -- --fuzz-export DIR            # seeds per target, for cargo-fuzz
//! ```
//!
//! Other options: `--fuzz-seed N` (the mutator's seed, default from the clock; printed),
//! `--fuzz-target NAME` (only that target). Unknown arguments (cargo's, libtest's) are ignored.
//!
//! Mutations: byte-level (bit flips, interesting bytes and numbers, dictionary tokens of the
//! contract, deletions, duplications, splices of two inputs) and structural (an input read as
//! YAML or JSON, one node replaced by a value of another type, a huge string, a deep nesting,
//! a removed or added key, then written back as YAML or JSON). There is no coverage feedback on
//! stable Rust; instead an input whose outcome (the target's signature: which parser refused it
//! with which kind of message) is new is kept as a seed.

#[path = "targets.rs"]
mod targets;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chaos_runner::contract::plan::SplitMix64;
use serde_json::Value;

const MAX_INPUT: usize = 64 * 1024;
const MAX_CORPUS: usize = 4096;

/// Tokens of the contract and of YAML, inserted by the mutator.
const DICTIONARY: &[&str] = &[
    "apiVersion: litmuschaos.io/v1alpha1\n",
    "kind: ChaosEngine\n",
    "kind: ChaosExperiment\n",
    "kind: ChaosResult\n",
    "metadata",
    "name",
    "uid",
    "annotations",
    "labels",
    "spec",
    "experiments",
    "components",
    "env",
    "value",
    "valueFrom",
    "configMapKeyRef",
    "secretKeyRef",
    "optional",
    "envFrom",
    "configMapRef",
    "configMaps",
    "secrets",
    "mountPath",
    "hostFileVolumes",
    "nodePath",
    "sidecar",
    "sidecar/enabled",
    "image",
    "experimentImage",
    "experimentAnnotations",
    "experimentImagePullSecrets",
    "tolerations",
    "nodeSelector",
    "resources",
    "statusCheckTimeouts",
    "delay",
    "timeout",
    "terminationGracePeriodSeconds",
    "defaultHealthCheck",
    "INSTANCE_ID",
    "TOTAL_CHAOS_DURATION",
    "POD_NAME",
    "jobCleanUpPolicy",
    "delete",
    "retain",
    "engineState",
    "active",
    "stop",
    "status",
    "experimentStatus",
    "verdict",
    "phase",
    "Pass",
    "Fail",
    "Awaited",
    "Error",
    "Stopped",
    "errorOutput",
    "chaos-runner.io/",
    "chaos-runner.io/max-parallel",
    "chaos-runner.io/after",
    "chaos-runner.io/iterations",
    "chaos-runner.io/min-interval",
    "chaos-runner.io/shuffle",
    "chaos-runner.io/seed",
    "chaos-runner.io/on-dependency-failure",
    "chaos-runner.io/monitor-timeout",
    "chaos-runner.io/audit",
    "max-parallel=",
    "after=",
    "iterations=",
    "min-interval=",
    "shuffle=",
    "seed=",
    "on-dependency-failure=",
    "\u{1}",
    "CHAOSENGINE=",
    "CHAOS_NAMESPACE=",
    "EXPERIMENT_LIST=",
    "TRACE_PARENT=",
    "{\"traceparent\":\"00-ab-cd-01\"}",
    "chaosRunner",
    "schemaVersion",
    "runId",
    "attempts",
    "history",
    "phase\":\"Monitor",
    "render",
    "plan",
    "--engine",
    "-kubeconfig",
    ": ",
    ", ",
    "; ",
    "\n",
    "\n  ",
    "- ",
    "---\n",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "null",
    "true",
    "false",
    "~",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "<<: *a",
    "0",
    "-1",
    "+2",
    "9223372036854775807",
    "18446744073709551616",
    "99999999999999999999h",
    "1e400",
    ".nan",
    "1.5",
    "ms",
    "s",
    "m",
    "h",
    "é",
    "\u{0}",
    " ",
    "my config",
    "../x",
    "a?b",
];

fn main() {
    let options = Options::parse(std::env::args().skip(1));
    let targets: Vec<(&str, targets::Target)> = targets::TARGETS
        .iter()
        .copied()
        .filter(|(name, _)| options.target.as_deref().is_none_or(|t| t == *name))
        .collect();
    if targets.is_empty() {
        eprintln!(
            "fuzz: no target {:?}; targets: {:?}",
            options.target,
            targets::TARGETS
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
        );
        std::process::exit(2);
    }
    // The default hook would print every caught panic; the report below says it once.
    std::panic::set_hook(Box::new(|_| {}));

    if let Some(file) = &options.replay {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (name, target) in &targets {
            match run_one(*target, &data) {
                Ok(signature) => println!("{name}: {signature}"),
                Err(message) => {
                    println!("{name}: PANIC {message}");
                    std::process::exit(1);
                }
            }
        }
        return;
    }

    let seeds = seeds();
    if let Some(dir) = &options.export {
        export(dir, &seeds);
        return;
    }

    let started = Instant::now();
    let mut generator = SplitMix64::new(options.seed);
    println!(
        "fuzz: seed {}, targets {:?}, budget {:?} / {} executions",
        options.seed,
        targets.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        options.duration,
        options.execs
    );
    let mut corpora: BTreeMap<&str, Corpus> = BTreeMap::new();
    let mut executions = 0u64;
    // Every seed through its target first.
    for (name, target) in &targets {
        let corpus = corpora.entry(name).or_default();
        for seed in seeds.get(*name).into_iter().flatten() {
            executions += 1;
            match run_one(*target, seed) {
                Ok(signature) => corpus.offer(seed, signature, true),
                Err(message) => crash(name, seed, &message),
            }
        }
    }
    // Then mutations, round robin over the targets, until the budget is spent.
    let all_inputs: Vec<Vec<u8>> = seeds.values().flatten().cloned().collect();
    let mut next_report = started + Duration::from_secs(60);
    'outer: loop {
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(60);
            println!(
                "fuzz: {executions} executions after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        for (name, target) in &targets {
            for _ in 0..64 {
                if executions >= options.execs {
                    break 'outer;
                }
                let corpus = corpora.entry(name).or_default();
                let input = mutate(&mut generator, corpus, &all_inputs);
                executions += 1;
                match run_one(*target, &input) {
                    Ok(signature) => corpus.offer(&input, signature, false),
                    Err(message) => crash(name, &input, &message),
                }
                corpus.executions += 1;
            }
            if started.elapsed() >= options.duration {
                break 'outer;
            }
        }
    }
    let elapsed = started.elapsed();
    for (name, corpus) in &corpora {
        println!(
            "fuzz: {name:<7} {:>9} executions, {:>4} inputs kept, {:>4} outcomes",
            corpus.executions,
            corpus.inputs.len(),
            corpus.signatures.len()
        );
    }
    println!(
        "fuzz: {executions} executions in {:.1} s ({:.0}/s), no panic",
        elapsed.as_secs_f64(),
        executions as f64 / elapsed.as_secs_f64().max(0.001)
    );
}

struct Options {
    duration: Duration,
    execs: u64,
    seed: u64,
    target: Option<String>,
    replay: Option<PathBuf>,
    export: Option<PathBuf>,
}

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Options {
        let mut options = Options {
            duration: Duration::from_secs(1),
            execs: u64::MAX,
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |t| t.as_nanos() as u64),
            target: None,
            replay: None,
            export: None,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            if !flag.starts_with("--fuzz-") {
                continue; // cargo's and libtest's arguments
            }
            let value = inline
                .or_else(|| args.next())
                .unwrap_or_else(|| panic!("{flag} needs a value"));
            let number = || -> u64 {
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("{flag}: {value:?} is not a number"))
            };
            match flag.as_str() {
                "--fuzz-seconds" => options.duration = Duration::from_secs(number()),
                "--fuzz-execs" => {
                    options.execs = number();
                    if options.duration == Duration::from_secs(1) {
                        options.duration = Duration::from_secs(24 * 3600);
                    }
                }
                "--fuzz-seed" => options.seed = number(),
                "--fuzz-target" => options.target = Some(value),
                "--fuzz-replay" => options.replay = Some(PathBuf::from(value)),
                "--fuzz-export" => options.export = Some(PathBuf::from(value)),
                other => panic!("unknown option {other}"),
            }
        }
        options
    }
}

/// The inputs of one target: seeds, plus mutated inputs whose outcome was new.
#[derive(Default)]
struct Corpus {
    inputs: Vec<Vec<u8>>,
    signatures: BTreeSet<String>,
    executions: u64,
}

impl Corpus {
    fn offer(&mut self, input: &[u8], signature: String, seed: bool) {
        let new = self.signatures.insert(signature);
        if (seed || new) && self.inputs.len() < MAX_CORPUS {
            self.inputs.push(input.to_vec());
        }
    }
}

/// Runs one input; `Err` with the panic's message if it panicked.
fn run_one(target: targets::Target, data: &[u8]) -> Result<String, String> {
    catch_unwind(AssertUnwindSafe(|| target(data))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "(no message)".into())
    })
}

/// Saves the input that panicked, reports it and fails the run.
fn crash(target: &str, input: &[u8], message: &str) -> ! {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let file = dir.join(format!("{target}-{hash:016x}.bin"));
    let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, input));
    let shown: String = String::from_utf8_lossy(&input[..input.len().min(2000)]).into_owned();
    eprintln!(
        "fuzz: target {target} PANICKED: {message}\ninput ({} bytes, saved: {}):\n{shown:?}\nreplay: cargo test --features e2e --test fuzz -- --fuzz-target {target} --fuzz-replay {}",
        input.len(),
        saved.map_or_else(|e| format!("not saved: {e}"), |()| "yes".into()),
        file.display()
    );
    std::process::exit(1);
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// Seeds per target, from every fixture of the repository.
fn seeds() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut yaml_files = Vec::new();
    for dir in ["fixtures", "deploy"] {
        collect_files(&root.join(dir), &mut yaml_files);
    }
    yaml_files.retain(|path| {
        path.extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
    });
    yaml_files.sort();
    let mut seeds: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    let e2e_experiments =
        std::fs::read(root.join("fixtures/e2e/experiments.yaml")).unwrap_or_default();
    for path in &yaml_files {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let documents: Vec<Value> = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| serde_saphyr::from_multiple(text).ok())
            .unwrap_or_default();
        for document in &documents {
            let json = serde_json::to_vec(document).unwrap_or_default();
            seeds.entry("crd").or_default().push(json.clone());
            match document["kind"].as_str() {
                Some("ChaosResult") => seeds.entry("result").or_default().push(json),
                Some("ChaosEngine") => {
                    let names: Vec<String> = document["spec"]["experiments"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e["name"].as_str().map(str::to_owned))
                        .collect();
                    let annotations: BTreeMap<String, String> = document["metadata"]["annotations"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                        .collect();
                    seeds
                        .entry("plan")
                        .or_default()
                        .push(targets::encode_plan(&names, &annotations));
                }
                _ => {}
            }
        }
        if bytes.len() <= MAX_INPUT {
            seeds.entry("crd").or_default().push(bytes.clone());
            if name == "result.yaml" {
                seeds.entry("result").or_default().push(bytes.clone());
            }
        }
        // `run`: an engine file with the experiments of its folder (or the e2e ones).
        if name.starts_with("engine") || path.parent().is_some_and(|p| p.ends_with("plans")) {
            let mut combined = bytes.clone();
            let dir = path.parent().unwrap_or(root);
            let mut siblings = Vec::new();
            collect_files(dir, &mut siblings);
            siblings.retain(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("experiment"))
            });
            siblings.sort();
            let experiments: Vec<Vec<u8>> = if siblings.is_empty() {
                vec![e2e_experiments.clone()]
            } else {
                siblings
                    .iter()
                    .filter_map(|p| std::fs::read(p).ok())
                    .collect()
            };
            for experiment in experiments {
                combined.extend_from_slice(b"\n---\n");
                combined.extend_from_slice(&experiment);
            }
            if combined.len() <= MAX_INPUT {
                seeds.entry("run").or_default().push(combined);
            }
        }
    }
    // The env of every env case.
    let mut env_files = Vec::new();
    collect_files(&root.join("fixtures/bad"), &mut env_files);
    env_files.retain(|p| p.file_name().is_some_and(|n| n == "env"));
    env_files.sort();
    for file in env_files {
        if let Ok(bytes) = std::fs::read(file) {
            seeds.entry("env").or_default().push(bytes);
        }
    }
    seeds
        .entry("env")
        .or_default()
        .push(b"render --engine e.yaml --experiment x.yaml\n-kubeconfig=/k plan".to_vec());
    seeds.insert("record", record_seeds());
    seeds
}

/// Run records and checkpoints as the runner stores them.
fn record_seeds() -> Vec<Vec<u8>> {
    use chaos_runner_states as states;
    let mut checkpoints = Vec::new();
    let job = "pod-delete-abc123".to_owned();
    let pod = Some("pod-delete-abc123-xyz12".to_owned());
    let outcome = states::Outcome::Ran {
        verdict: states::FinalVerdict::Pass,
        result_final: true,
        pod_end: states::PodEnd::Succeeded,
        detail: None,
    };
    for phase in [
        states::Phase::Init,
        states::Phase::ValidateDeps,
        states::Phase::LaunchJob { job: job.clone() },
        states::Phase::Monitor {
            job: job.clone(),
            pod: pod.clone(),
        },
        states::Phase::AwaitResult {
            job: job.clone(),
            pod,
            end: states::PodEnd::Succeeded,
        },
        states::Phase::Cleanup {
            job,
            outcome: outcome.clone(),
            action: states::CleanupAction::Delete,
        },
        states::Phase::Verdict { outcome },
    ] {
        let mut checkpoint = states::Checkpoint::new("pod-delete", None, 1, "2026-01-01T00:00:00Z");
        checkpoint.phase = phase;
        checkpoints.push(serde_json::to_value(&checkpoint).unwrap_or_default());
    }
    let mut record = chaos_runner::contract::record::RunRecord::new(
        "88d122ce".into(),
        "2026-01-01T00:00:00Z".into(),
    );
    for (index, checkpoint) in checkpoints.iter().enumerate() {
        record
            .attempts
            .insert(format!("pod-delete#{}", index + 1), checkpoint.clone());
    }
    let mut seeds: Vec<Vec<u8>> = checkpoints
        .iter()
        .map(|c| serde_json::to_vec(c).unwrap_or_default())
        .collect();
    seeds.push(serde_json::to_vec(&record).unwrap_or_default());
    seeds.push(b"P12 . M30 F7 S1".to_vec());
    seeds.push(
        br#"[{"attempt":"a#1","from":"Init","to":"ValidateDeps","reason":"r","at":"t"}]"#.to_vec(),
    );
    seeds
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Writes the seeds as `DIR/<target>/<n>`, the layout cargo-fuzz reads corpora in.
fn export(dir: &Path, seeds: &BTreeMap<&str, Vec<Vec<u8>>>) {
    for (target, inputs) in seeds {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)
            .unwrap_or_else(|e| panic!("{}: {e}", target_dir.display()));
        for (index, input) in inputs.iter().enumerate() {
            let file = target_dir.join(format!("seed-{index:04}"));
            std::fs::write(&file, input).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
        println!("fuzz: {} seeds in {}", inputs.len(), target_dir.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Mutation

fn pick<'a, T>(generator: &mut SplitMix64, items: &'a [T]) -> &'a T {
    &items[generator.below(items.len() as u64) as usize]
}

fn mutate(generator: &mut SplitMix64, corpus: &Corpus, all_inputs: &[Vec<u8>]) -> Vec<u8> {
    let base = if corpus.inputs.is_empty() {
        pick(generator, all_inputs).clone()
    } else {
        pick(generator, &corpus.inputs).clone()
    };
    let mut input = if generator.below(3) == 0 {
        structural(generator, &base).unwrap_or(base)
    } else {
        base
    };
    for _ in 0..=generator.below(4) {
        bytewise(generator, &mut input, all_inputs);
    }
    input.truncate(MAX_INPUT);
    input
}

fn bytewise(generator: &mut SplitMix64, input: &mut Vec<u8>, all_inputs: &[Vec<u8>]) {
    let position =
        |generator: &mut SplitMix64, len: usize| generator.below(len as u64 + 1) as usize;
    match generator.below(9) {
        0 if !input.is_empty() => {
            let at = generator.below(input.len() as u64) as usize;
            input[at] ^= 1 << generator.below(8);
        }
        1 if !input.is_empty() => {
            let at = generator.below(input.len() as u64) as usize;
            input[at] = *pick(
                generator,
                b"\0\x01\xff\n\r\t :-,;\"'{}[]#&*!|>%@`\\0123456789aZ",
            );
        }
        2 | 3 => {
            let token = pick(generator, DICTIONARY).as_bytes();
            let at = position(generator, input.len());
            input.splice(at..at, token.iter().copied());
        }
        4 if !input.is_empty() => {
            let at = generator.below(input.len() as u64) as usize;
            let len = 1 + generator.below(32.min(input.len() - at) as u64) as usize;
            input.drain(at..(at + len).min(input.len()));
        }
        5 if !input.is_empty() => {
            let at = generator.below(input.len() as u64) as usize;
            let len = 1 + generator.below(64.min(input.len() - at) as u64) as usize;
            let piece: Vec<u8> = input[at..(at + len).min(input.len())].to_vec();
            let to = position(generator, input.len());
            for _ in 0..=generator.below(3) {
                input.splice(to..to, piece.iter().copied());
            }
        }
        6 => {
            // Splice: a piece of another input.
            let other = pick(generator, all_inputs);
            if !other.is_empty() {
                let from = generator.below(other.len() as u64) as usize;
                let len = 1 + generator.below(256.min(other.len() - from) as u64) as usize;
                let at = position(generator, input.len());
                input.splice(
                    at..at,
                    other[from..(from + len).min(other.len())].iter().copied(),
                );
            }
        }
        7 => {
            // A number replaced by an interesting one.
            if let Some(start) = input.iter().position(|b| b.is_ascii_digit()) {
                let end = input[start..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(input.len(), |n| start + n);
                let number = pick(
                    generator,
                    &[
                        "0",
                        "-1",
                        "-0",
                        "1001",
                        "4294967296",
                        "9223372036854775808",
                        "18446744073709551616",
                        "99999999999999999999999",
                        "1e400",
                        "0x10",
                        "１",
                    ],
                );
                input.splice(start..end, number.bytes());
            }
        }
        _ => {
            if !input.is_empty() {
                let at = position(generator, input.len());
                input.truncate(at.max(1));
            }
        }
    }
}

/// Reads the input as YAML documents (or JSON), changes one node, writes it back.
fn structural(generator: &mut SplitMix64, input: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(input).ok()?;
    let json = serde_json::from_str::<Value>(text).is_ok();
    let mut documents: Vec<Value> = serde_saphyr::from_multiple(text).ok()?;
    if documents.is_empty() {
        return None;
    }
    let index = generator.below(documents.len() as u64) as usize;
    mutate_value(generator, &mut documents[index], 0);
    if json {
        return serde_json::to_vec(&documents[0]).ok();
    }
    let mut out = String::new();
    for (position, document) in documents.iter().enumerate() {
        if position > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(document).ok()?);
    }
    Some(out.into_bytes())
}

/// Walks to a random node and replaces, removes or adds something there.
fn mutate_value(generator: &mut SplitMix64, value: &mut Value, depth: usize) {
    let descend = depth < 12 && generator.below(4) != 0;
    match value {
        Value::Object(map) if descend && !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = pick(generator, &keys).clone();
            match generator.below(8) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    let new_key = pick(generator, DICTIONARY).trim().to_owned();
                    map.insert(new_key, random_value(generator, 0));
                }
                _ => {
                    if let Some(child) = map.get_mut(&key) {
                        mutate_value(generator, child, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) if descend && !items.is_empty() => {
            let at = generator.below(items.len() as u64) as usize;
            match generator.below(6) {
                0 => {
                    items.remove(at);
                }
                1 => {
                    let copy = items[at].clone();
                    items.insert(at, copy);
                }
                _ => mutate_value(generator, &mut items[at], depth + 1),
            }
        }
        _ => *value = random_value(generator, 0),
    }
}

fn random_value(generator: &mut SplitMix64, depth: usize) -> Value {
    match generator.below(if depth < 3 { 12 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(generator.below(2) == 0),
        2 => Value::from(*pick(
            generator,
            &[0i64, -1, 1, 2, 63, 254, i64::MAX, i64::MIN],
        )),
        3 => Value::from(u64::MAX),
        4 => Value::from(*pick(generator, &[0.5f64, -0.0, 1e308, 3.5])),
        5 => Value::from(pick(generator, DICTIONARY).trim()),
        6 => Value::from("a".repeat(1 + generator.below(4096) as usize)),
        7 => {
            let text: String = (0..generator.below(24))
                .map(|_| char::from(b' ' + generator.below(95) as u8))
                .collect();
            Value::from(text)
        }
        8 => {
            // Nesting deeper than serde_json's recursion limit.
            let mut nested = Value::Null;
            for _ in 0..(100 + generator.below(100)) {
                nested = Value::Array(vec![nested]);
            }
            nested
        }
        9 => Value::Array(
            (0..generator.below(4))
                .map(|_| random_value(generator, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..generator.below(4))
                .map(|_| {
                    (
                        pick(generator, DICTIONARY).trim().to_owned(),
                        random_value(generator, depth + 1),
                    )
                })
                .collect(),
        ),
    }
}
