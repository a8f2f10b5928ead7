//! The runner benchmark: prints figures, asserts nothing (issue 5 item 10, issue 6 item 8).
//!
//! Runs the release `chaos-runner` binary against the local control plane (`KUBECONFIG`,
//! `CHAOS_PLANE_AUDIT_LOG` from `tests/cluster/plane env`) with the pod simulator playing the
//! experiment pods:
//! - the standard run, "two 5-second experiments" (deploy/'s `pod-delete` passes,
//!   `container-kill` fails), in watch mode (deploy/'s ServiceAccount `chaos-runner`) and in
//!   poll mode (`litmus-user-sa`, the Role Litmus users already have), `BENCH_REPEATS` times
//!   each (default 3);
//! - the scale ladder, watch mode: one run per rung of `BENCH_LADDER` (plan sizes in attempts,
//!   default `10,100,1000,10000`; empty: none), each one engine whose plan has about that many
//!   attempts (see [`Rung::of`] for the shapes), in a fresh namespace, one after the other.
//!   A rung that fails (refused plan, timeout, wrong verdicts) is reported with the reason; the
//!   other rungs still run. Each rung has its own timeout ([`Rung::timeout`]);
//!   `BENCH_RUNG_TIMEOUT` (seconds) sets one for every rung instead.
//!   `CHAOS_RUNNER_BIN` measures another runner binary (or a profiler's wrapper around one).
//!
//! The markdown table goes to stdout and to `target/bench-report.md`. Run it with
//! `bash tests/bench.sh`, or `cargo bench --features e2e --bench runner` on a running plane.
//! Without `--bench` (as `cargo test --benches` runs it) it only says how to run it.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod etcd;
mod measure;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use futures::{StreamExt, TryStreamExt};
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::common::{LitmusKind, RunnerSpec, TestNamespace};
use crate::etcd::{Etcd, EtcdFigures};
use crate::measure::{Expected, RunMeasurement, measure_run};
use crate::report::{Report, RungFigures, StandardFigures};

/// The standard run's seconds of chaos per experiment (the Go runner reference used 5).
const STANDARD_SECONDS: &str = "5";
/// How long one standard run may take before it counts as failed.
const STANDARD_TIMEOUT: Duration = Duration::from_secs(90);
/// The ladder's default rungs (plan sizes in attempts).
const DEFAULT_LADDER: &str = "10,100,1000,10000";
/// The largest rung that runs all its experiments once, all at once.
const ONE_WAVE_LIMIT: usize = 333;
/// Experiments of a rung larger than [`ONE_WAVE_LIMIT`] (other than 1000): iterated.
const ITERATED_EXPERIMENTS: usize = 100;
/// How long a namespace of a finished rung may take to go away before the next rung starts.
const NAMESPACE_GONE_TIMEOUT: Duration = Duration::from_secs(300);

/// One rung of the scale ladder: one engine, `experiments` × `iterations` attempts, watch mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// The plan size asked for in `BENCH_LADDER`.
    pub requested: usize,
    pub experiments: usize,
    /// `chaos-runner.io/iterations` (a bare count: every experiment), 1 = no annotation.
    pub iterations: u32,
    /// `chaos-runner.io/max-parallel`.
    pub max_parallel: usize,
    /// The experiments' simulated chaos: 0 s (the shortest podsim plays) instead of 5.0–5.4 s.
    pub instant: bool,
}

impl Rung {
    /// The shape of a rung of `attempts` (issue 13): up to 333, that many experiments once, all
    /// at once; 1000: 333 experiments × 3 iterations, max-parallel 333; any other size above
    /// 333 (10,000): 100 experiments × ⌈size/100⌉ iterations, max-parallel 100, 0-second
    /// experiments (so that the run measures the runner and the plane, not waiting).
    pub fn of(attempts: usize) -> anyhow::Result<Rung> {
        let rung = match attempts {
            0 => return Err(anyhow!("a rung of 0 attempts")),
            n if n <= ONE_WAVE_LIMIT => Rung {
                requested: n,
                experiments: n,
                iterations: 1,
                max_parallel: n,
                instant: false,
            },
            1000 => Rung {
                requested: 1000,
                experiments: ONE_WAVE_LIMIT,
                iterations: 3,
                max_parallel: ONE_WAVE_LIMIT,
                instant: false,
            },
            n => Rung {
                requested: n,
                experiments: ITERATED_EXPERIMENTS,
                iterations: u32::try_from(n.div_ceil(ITERATED_EXPERIMENTS))
                    .map_err(|_| anyhow!("a rung of {n} attempts is too large"))?,
                max_parallel: ITERATED_EXPERIMENTS,
                instant: true,
            },
        };
        Ok(rung)
    }

    pub fn attempts(&self) -> usize {
        self.experiments * self.iterations as usize
    }

    /// Seconds of simulated chaos of experiment `index`.
    fn seconds(&self, index: usize) -> String {
        if self.instant {
            "0".to_owned()
        } else {
            format!("5.{}", index % 5)
        }
    }

    /// How long the rung may run before it counts as failed: 2 minutes, plus 0.6 s per attempt,
    /// plus 6 s per wave of 5-second experiments. Measured on this machine (runner of
    /// 2026-12-06, plane shared with other tests): 100 attempts in 17 s; 333 × 3 in 250 s
    /// (0.25 s per attempt: the Job controller creates about 4 pods a second once its burst is
    /// spent); 100 × 9 instant ones in 375 s (0.42 s per attempt: the runner's engine writes,
    /// ~0.7 s each for a 1 MiB engine, are the bottleneck). So 10,000 attempts take 40 to 70
    /// minutes; the timeout allows 102.
    pub fn timeout(&self) -> Duration {
        let waves = self.attempts().div_ceil(self.max_parallel.max(1)) as u64;
        let chaos = if self.instant { 0 } else { 6 };
        Duration::from_secs(120 + waves * chaos)
            + Duration::from_millis(600) * self.attempts() as u32
    }

    /// `333 experiments × 3 iterations, max-parallel 333, 5.0–5.4 s each`.
    pub fn describe(&self) -> String {
        let shape = if self.iterations > 1 {
            format!(
                "{} experiments × {} iterations",
                self.experiments, self.iterations
            )
        } else {
            format!("{} experiments × 1", self.experiments)
        };
        format!(
            "{shape}, max-parallel {}, {} each",
            self.max_parallel,
            if self.instant { "0 s" } else { "5.0–5.4 s" }
        )
    }
}

/// Who runs the runner: the two modes of issue 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// deploy/'s ServiceAccount `chaos-runner`, whose Role grants `watch`.
    Watch,
    /// `litmus-user-sa` with the Role Litmus users already have: no watch, no secrets.
    Poll,
}

impl Mode {
    pub fn service_account(self) -> &'static str {
        match self {
            Mode::Watch => "chaos-runner",
            Mode::Poll => "litmus-user-sa",
        }
    }

    fn rbac_file(self) -> &'static str {
        match self {
            Mode::Watch => "deploy/rbac.yaml",
            Mode::Poll => "fixtures/rbac/litmus-user-role.yaml",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Mode::Watch => "watch",
            Mode::Poll => "poll",
        }
    }
}

fn main() -> ExitCode {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!(
            "runner bench: not run without --bench (it needs the local control plane and takes \
             minutes): `bash tests/bench.sh`"
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench: cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench() -> anyhow::Result<()> {
    let repeats = env_count("BENCH_REPEATS", 3)?;
    if std::env::var_os("BENCH_SCALE_EXPERIMENTS").is_some() {
        return Err(anyhow!(
            "BENCH_SCALE_EXPERIMENTS is gone: the scale run is the ladder now; \
             BENCH_LADDER=100 runs 100 experiments at once (default {DEFAULT_LADDER})"
        ));
    }
    let ladder = env_ladder()?;
    let rung_timeout = match env_count("BENCH_RUNG_TIMEOUT", 0)? {
        0 => None,
        seconds => Some(Duration::from_secs(seconds as u64)),
    };
    // Another build can be measured in place of this one (a profiler's wrapper, an old commit).
    let binary = std::env::var_os("CHAOS_RUNNER_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_chaos-runner")),
        PathBuf::from,
    );
    let binary_size = std::fs::metadata(&binary)
        .with_context(|| format!("runner binary {}", binary.display()))?
        .len();
    eprintln!(
        "bench: runner binary {} ({binary_size} bytes)",
        binary.display()
    );

    let mut standard = Vec::new();
    let modes = if repeats == 0 {
        &[][..]
    } else {
        &[Mode::Watch, Mode::Poll][..]
    };
    for &mode in modes {
        let mut runs = Vec::new();
        for repeat in 1..=repeats {
            eprintln!(
                "bench: standard run, {} mode, {repeat}/{repeats}",
                mode.label()
            );
            let run = standard_run(mode).await;
            match &run {
                Ok(run) => eprintln!(
                    "bench:   exit {}, {} requests, verdicts {}/{} right, wall {:.1} s",
                    run.exit,
                    run.requests.len(),
                    run.verdicts_right(),
                    run.verdicts.len(),
                    run.wall.as_secs_f64()
                ),
                Err(error) => eprintln!("bench:   FAILED: {error:#}"),
            }
            runs.push(run.map_err(|e| format!("{e:#}")));
        }
        standard.push(StandardFigures { mode, runs });
    }

    let mut rungs = Vec::new();
    for rung in ladder {
        eprintln!(
            "bench: ladder rung {} ({}, {} attempts), watch mode, timeout {} s",
            rung.requested,
            rung.describe(),
            rung.attempts(),
            rung_timeout.unwrap_or(rung.timeout()).as_secs()
        );
        let (run, etcd) = rung_run(rung, rung_timeout).await;
        rungs.push(RungFigures {
            rung,
            run: run.map_err(|e| format!("{e:#}")),
            etcd,
        });
    }
    let report = Report {
        binary,
        binary_size,
        repeats,
        standard,
        rungs,
    };
    let markdown = report.markdown();
    print!("{markdown}");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report.md");
    std::fs::write(&path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("bench: report written to {}", path.display());
    Ok(())
}

/// A count from the environment (0 = skip), or `default`.
fn env_count(variable: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(variable) {
        Err(_) => Ok(default),
        Ok(text) => text
            .trim()
            .parse::<usize>()
            .map_err(|_| anyhow!("{variable}={text:?} is not a count")),
    }
}

/// The rungs of `BENCH_LADDER`: plan sizes separated by commas or spaces; empty: no ladder.
fn env_ladder() -> anyhow::Result<Vec<Rung>> {
    let text = std::env::var("BENCH_LADDER").unwrap_or_else(|_| DEFAULT_LADDER.to_owned());
    text.split([',', ' '])
        .map(str::trim)
        .filter(|size| !size.is_empty())
        .map(|size| {
            let attempts = size
                .replace('_', "")
                .parse::<usize>()
                .map_err(|_| anyhow!("BENCH_LADDER={text:?}: {size:?} is not a count"))?;
            Rung::of(attempts).with_context(|| format!("BENCH_LADDER={text:?}"))
        })
        .collect()
}

/// The standard run: deploy/'s engine and two experiments, 5 s of simulated chaos each.
async fn standard_run(mode: Mode) -> anyhow::Result<RunMeasurement> {
    let namespace = TestNamespace::create(&format!("bench-{}", mode.label())).await?;
    namespace.apply_yaml(mode.rbac_file()).await?;

    let experiments = read_yaml_documents("deploy/experiments.yaml")?;
    let mut expected = Vec::new();
    let mut documents = Vec::new();
    for mut experiment in experiments {
        let name = experiment["metadata"]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("deploy/experiments.yaml: an experiment without a name"))?
            .to_owned();
        let env = experiment["spec"]["definition"]["env"]
            .as_array_mut()
            .ok_or_else(|| anyhow!("deploy/experiments.yaml: {name} has no env list"))?;
        set_env(env, "PODSIM_SECONDS", STANDARD_SECONDS);
        let behaviour = env
            .iter()
            .find(|e| e["name"] == "PODSIM_BEHAVIOUR")
            .and_then(|e| e["value"].as_str())
            .unwrap_or("pass");
        expected.push(Expected {
            experiment: name,
            verdict: verdict_of(behaviour)?.to_owned(),
            iterations: 1,
        });
        documents.push(experiment);
    }
    namespace.apply_yaml(&json_documents(&documents)?).await?;

    let mut engine = read_yaml_documents("deploy/engine.yaml")?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("deploy/engine.yaml is empty"))?;
    engine["spec"]["chaosServiceAccount"] = json!(mode.service_account());
    // Keep the engine's override in line with the simulated duration (it sets the runner's
    // Monitor deadline).
    if let Some(entries) = engine["spec"]["experiments"].as_array_mut() {
        for entry in entries {
            if let Some(env) = entry["spec"]["components"]["env"].as_array_mut() {
                set_env(env, "TOTAL_CHAOS_DURATION", STANDARD_SECONDS);
            }
        }
    }
    let engine_name = engine["metadata"]["name"]
        .as_str()
        .ok_or_else(|| anyhow!("deploy/engine.yaml: no metadata.name"))?
        .to_owned();
    namespace
        .apply_yaml(&json_documents(std::slice::from_ref(&engine))?)
        .await?;

    let spec = RunnerSpec {
        engine: engine_name,
        namespace: namespace.name().to_owned(),
        experiments: expected.iter().map(|e| e.experiment.clone()).collect(),
        service_account: mode.service_account().to_owned(),
        env_extra: Vec::new(),
        kubeconfig: namespace.sa_kubeconfig(mode.service_account()).await?,
    };
    measure_run(&namespace, &spec, &expected, STANDARD_TIMEOUT).await
}

/// One rung of the ladder in a fresh namespace, which is gone again before this returns (so
/// that its deletion does not load the plane during the next rung), with etcd guarded during
/// the rung and the rung's history compacted away after it (see `etcd.rs`).
async fn rung_run(
    rung: Rung,
    timeout: Option<Duration>,
) -> (anyhow::Result<RunMeasurement>, Option<EtcdFigures>) {
    let namespace = match TestNamespace::create(&format!("bench-ladder-{}", rung.requested)).await {
        Ok(namespace) => namespace,
        Err(error) => return (Err(error), None),
    };
    let name = namespace.name().to_owned();
    let client = namespace.client();
    let etcd = Etcd::of_plane();
    let (stop_guard, stop_rx) = watch::channel(false);
    let guard = match &etcd {
        Some(etcd) => match etcd.status().await {
            Ok(start) => Some(tokio::spawn(etcd.clone().guard(start, stop_rx))),
            Err(error) => {
                eprintln!("bench:   etcd not guarded: {error:#}");
                None
            }
        },
        None => None,
    };
    let run = rung_in(&namespace, rung, timeout.unwrap_or(rung.timeout())).await;
    stop_guard.send_replace(true);
    let figures = match guard {
        Some(guard) => guard.await.ok(),
        None => None,
    };
    let end = match &etcd {
        Some(etcd) => etcd.status().await.ok(),
        None => None,
    };
    match &run {
        Ok(run) => eprintln!(
            "bench:   exit {}, {} requests, attempts {}/{} right, entries {}/{} right, wall {:.1} s",
            run.exit,
            run.requests.len(),
            run.attempts_right(),
            run.attempts_expected(),
            run.verdicts_right(),
            run.verdicts.len(),
            run.wall.as_secs_f64()
        ),
        Err(error) => eprintln!("bench:   FAILED: {error:#}"),
    }
    drop(namespace);
    let started = std::time::Instant::now();
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    match common::wait_for_deletion(&namespaces, &name, NAMESPACE_GONE_TIMEOUT).await {
        Ok(()) => eprintln!(
            "bench:   namespace {name} deleted in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
        Err(error) => eprintln!("bench:   namespace {name} still there: {error:#}"),
    }
    if let (Some(etcd), Some(end)) = (&etcd, end) {
        match etcd.compact_and_defragment(end.revision).await {
            Ok(()) => eprintln!(
                "bench:   etcd compacted to the rung's end (revision {}) and defragmented",
                end.revision
            ),
            Err(error) => eprintln!("bench:   etcd not compacted: {error:#}"),
        }
    }
    (run, figures)
}

/// The rung's experiments `exp-000`… (every third one fails, the others pass), its engine
/// `ladder` with the plan annotations, and the run.
async fn rung_in(
    namespace: &TestNamespace,
    rung: Rung,
    timeout: Duration,
) -> anyhow::Result<RunMeasurement> {
    namespace.apply_yaml(Mode::Watch.rbac_file()).await?;
    let expected: Vec<Expected> = (0..rung.experiments)
        .map(|index| {
            let behaviour = scale_behaviour(index);
            Ok(Expected {
                experiment: format!("exp-{index:03}"),
                verdict: verdict_of(behaviour)?.to_owned(),
                iterations: rung.iterations,
            })
        })
        .collect::<anyhow::Result<_>>()?;

    let api = namespace.litmus_api(LitmusKind::ChaosExperiment);
    futures::stream::iter(expected.iter().enumerate())
        .map(|(index, e)| {
            let api = api.clone();
            async move {
                let object: DynamicObject = serde_json::from_value(scale_experiment(
                    &e.experiment,
                    index,
                    &rung.seconds(index),
                ))?;
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating ChaosExperiment {}", e.experiment))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;

    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "chaos-runner.io/max-parallel".to_owned(),
        json!(rung.max_parallel.to_string()),
    );
    if rung.iterations > 1 {
        annotations.insert(
            "chaos-runner.io/iterations".to_owned(),
            json!(rung.iterations.to_string()),
        );
    }
    let engine = json!({
        "apiVersion": "litmuschaos.io/v1alpha1",
        "kind": "ChaosEngine",
        "metadata": {"name": "ladder", "annotations": annotations},
        "spec": {
            "engineState": "active",
            "chaosServiceAccount": Mode::Watch.service_account(),
            "jobCleanUpPolicy": "delete",
            "experiments": expected
                .iter()
                .map(|e| json!({"name": e.experiment}))
                .collect::<Vec<_>>(),
        },
    });
    namespace
        .apply_yaml(&json_documents(std::slice::from_ref(&engine))?)
        .await?;

    let spec = RunnerSpec {
        engine: "ladder".to_owned(),
        namespace: namespace.name().to_owned(),
        experiments: expected.iter().map(|e| e.experiment.clone()).collect(),
        service_account: Mode::Watch.service_account().to_owned(),
        env_extra: Vec::new(),
        kubeconfig: namespace
            .sa_kubeconfig(Mode::Watch.service_account())
            .await?,
    };
    measure_run(namespace, &spec, &expected, timeout).await
}

/// Every third experiment of a rung fails, the others pass.
fn scale_behaviour(index: usize) -> &'static str {
    if index % 3 == 2 { "fail" } else { "pass" }
}

/// A minimal ChaosExperiment for the ladder with `seconds` of simulated chaos (5.0 to 5.4 s
/// spread completions a little, as real experiments' are; 0 s for the instant rungs).
fn scale_experiment(name: &str, index: usize, seconds: &str) -> Value {
    let total = if seconds == "0" { "1" } else { "5" };
    json!({
        "apiVersion": "litmuschaos.io/v1alpha1",
        "kind": "ChaosExperiment",
        "metadata": {"name": name, "labels": {"name": name}},
        "spec": {"definition": {
            "scope": "Namespaced",
            "image": "litmuschaos/go-runner:3.18.0",
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash"],
            "args": ["-c", format!("./experiments -name {name}")],
            "labels": {"name": name},
            "env": [
                {"name": "TOTAL_CHAOS_DURATION", "value": total},
                {"name": "PODSIM_BEHAVIOUR", "value": scale_behaviour(index)},
                {"name": "PODSIM_SECONDS", "value": seconds},
            ],
        }},
    })
}

/// The verdict the simulator writes for a behaviour.
fn verdict_of(behaviour: &str) -> anyhow::Result<&'static str> {
    match behaviour {
        "pass" => Ok("Pass"),
        "fail" => Ok("Fail"),
        other => Err(anyhow!(
            "PODSIM_BEHAVIOUR {other:?}: the bench only uses pass and fail"
        )),
    }
}

/// Sets (or adds) `name` in a container env list.
fn set_env(env: &mut Vec<Value>, name: &str, value: &str) {
    match env.iter_mut().find(|e| e["name"] == name) {
        Some(entry) => entry["value"] = json!(value),
        None => env.push(json!({"name": name, "value": value})),
    }
}

/// The documents of a YAML file of the repository.
fn read_yaml_documents(path: &str) -> anyhow::Result<Vec<Value>> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    let text =
        std::fs::read_to_string(&full).with_context(|| format!("reading {}", full.display()))?;
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| anyhow!("{path}: invalid YAML: {e}"))?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// Documents as multi-document YAML text (JSON is YAML) for `apply_yaml`.
fn json_documents(documents: &[Value]) -> anyhow::Result<String> {
    let texts = documents
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!("{}\n", texts.join("\n---\n")))
}
