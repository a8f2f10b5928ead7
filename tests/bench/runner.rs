//! The runner benchmark: prints figures, asserts nothing (issue 5 item 10, issue 6 item 8).
//!
//! Runs the release `chaos-runner` binary against the local control plane (`KUBECONFIG`,
//! `CHAOS_PLANE_AUDIT_LOG` from `tests/cluster/plane env`) with the pod simulator playing the
//! experiment pods:
//! - the standard run, "two 5-second experiments" (deploy/'s `pod-delete` passes,
//!   `container-kill` fails), in watch mode (deploy/'s ServiceAccount `chaos-runner`) and in
//!   poll mode (`litmus-user-sa`, the Role Litmus users already have), `BENCH_REPEATS` times
//!   each (default 3);
//! - the scale run: one engine with `BENCH_SCALE_EXPERIMENTS` (default 100) experiments and
//!   `chaos-runner.io/max-parallel` equal to that, watch mode.
//!
//! The markdown table goes to stdout and to `target/bench-report.md`. Run it with
//! `bash tests/bench.sh`, or `cargo bench --features e2e --bench runner` on a running plane.
//! Without `--bench` (as `cargo test --benches` runs it) it only says how to run it.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod measure;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use futures::{StreamExt, TryStreamExt};
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::common::{LitmusKind, RunnerSpec, TestNamespace};
use crate::measure::{Expected, RunMeasurement, measure_run};
use crate::report::{Report, ScaleFigures, StandardFigures};

/// The standard run's seconds of chaos per experiment (the Go runner reference used 5).
const STANDARD_SECONDS: &str = "5";
/// How long one standard run may take before it counts as failed.
const STANDARD_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the scale run may take before it counts as failed.
const SCALE_TIMEOUT: Duration = Duration::from_secs(180);

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
    let scale_experiments = env_count("BENCH_SCALE_EXPERIMENTS", 100)?;
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_chaos-runner"));
    let binary_size = std::fs::metadata(&binary)
        .with_context(|| format!("runner binary {}", binary.display()))?
        .len();
    eprintln!(
        "bench: runner binary {} ({binary_size} bytes)",
        binary.display()
    );

    let mut standard = Vec::new();
    for mode in [Mode::Watch, Mode::Poll] {
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

    eprintln!("bench: scale run, {scale_experiments} experiments, watch mode");
    let scale = scale_run(scale_experiments).await;
    if let Err(error) = &scale {
        eprintln!("bench:   FAILED: {error:#}");
    }
    let report = Report {
        binary,
        binary_size,
        repeats,
        standard,
        scale: ScaleFigures {
            experiments: scale_experiments,
            run: scale.map_err(|e| format!("{e:#}")),
        },
    };
    let markdown = report.markdown();
    print!("{markdown}");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report.md");
    std::fs::write(&path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("bench: report written to {}", path.display());
    Ok(())
}

/// A positive count from the environment, or `default`.
fn env_count(variable: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(variable) {
        Err(_) => Ok(default),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(count) if count > 0 => Ok(count),
            _ => Err(anyhow!("{variable}={text:?} is not a positive count")),
        },
    }
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

/// The scale run: `count` experiments `exp-000`…, mixed pass/fail, all at once, watch mode.
async fn scale_run(count: usize) -> anyhow::Result<RunMeasurement> {
    let namespace = TestNamespace::create("bench-scale").await?;
    namespace.apply_yaml(Mode::Watch.rbac_file()).await?;
    let expected: Vec<Expected> = (0..count)
        .map(|index| {
            let behaviour = scale_behaviour(index);
            Ok(Expected {
                experiment: format!("exp-{index:03}"),
                verdict: verdict_of(behaviour)?.to_owned(),
            })
        })
        .collect::<anyhow::Result<_>>()?;

    let api = namespace.litmus_api(LitmusKind::ChaosExperiment);
    futures::stream::iter(expected.iter().enumerate())
        .map(|(index, e)| {
            let api = api.clone();
            async move {
                let object: DynamicObject =
                    serde_json::from_value(scale_experiment(&e.experiment, index))?;
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating ChaosExperiment {}", e.experiment))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;

    let engine = json!({
        "apiVersion": "litmuschaos.io/v1alpha1",
        "kind": "ChaosEngine",
        "metadata": {
            "name": "scale",
            "annotations": {"chaos-runner.io/max-parallel": count.to_string()},
        },
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
        engine: "scale".to_owned(),
        namespace: namespace.name().to_owned(),
        experiments: expected.iter().map(|e| e.experiment.clone()).collect(),
        service_account: Mode::Watch.service_account().to_owned(),
        env_extra: Vec::new(),
        kubeconfig: namespace
            .sa_kubeconfig(Mode::Watch.service_account())
            .await?,
    };
    measure_run(&namespace, &spec, &expected, SCALE_TIMEOUT).await
}

/// Every third experiment of the scale run fails, the others pass.
fn scale_behaviour(index: usize) -> &'static str {
    if index % 3 == 2 { "fail" } else { "pass" }
}

/// A minimal ChaosExperiment for the scale run; 5.0 to 5.4 s of chaos so that completions
/// spread a little, as real experiments' do.
fn scale_experiment(name: &str, index: usize) -> Value {
    let seconds = format!("5.{}", index % 5);
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
                {"name": "TOTAL_CHAOS_DURATION", "value": "5"},
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
