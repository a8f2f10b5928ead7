//! Bad input on the plane (issue 10, item 5): every case of `fixtures/bad/` whose `expect.yaml`
//! has a `plane` section is run through the real runner binary on the local control plane, and
//! must end as that section says — or, where the upstream Litmus CRDs already refuse the input,
//! with the API server refusing to create it.
//!
//! ```yaml
//! plane:
//!   refused: [jobCleanUpPolicy]       # the API server refuses the case's objects; the message names these
//!   apply: [experiment.yaml]          # the case's files applied before the runner starts
//!   list: [e2e pass]                  # EXPERIMENT_LIST [default: the engine's spec.experiments]
//!   env: {KEY: value}                 # more runner env
//!   exit: 0                           # the runner's exit code (and no panic)
//!   warning: {reason: R, contains: [..]}   # a Warning Event on the engine
//!   failure: [..]                     # status.chaosRunner.failure contains each
//!   entries: [[name, pod, status, verdict]]  # status.experiments, exactly; pod "*" = the pod played
//!   jobs: none | cleaned              # no Job ever created / Jobs created and none left
//! ```
//!
//! A refused case applies the case's `experiment*.yaml` and then `engine.yaml` into a fresh
//! namespace: one of them must be refused. Every other case ends with no Job and no pod of the
//! engine left. The world is `tests/common/run.rs`'s (the runner as ServiceAccount
//! `chaos-runner` of `deploy/rbac.yaml`, the experiments of `fixtures/e2e/experiments.yaml`,
//! the pod simulator). Needs `--features e2e` and a plane.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use common::run::{Suite, World, expect_exit};
use common::{LitmusKind, TestNamespace};
use futures::StreamExt;
use kube::api::{DynamicObject, PostParams};
use serde::Deserialize;
use serde_json::Value;

/// `metadata.name` of every case's engine.
const ENGINE: &str = "bad";

static SUITE: Suite = Suite {
    engine: ENGINE,
    component: "bad-runner",
    chaos_service_account: "chaos-runner",
    fixtures: &[
        "deploy/rbac.yaml",
        "fixtures/rbac/litmus-user-role.yaml",
        "fixtures/e2e/experiments.yaml",
    ],
};

/// How many cases run at once (each is mostly waiting: on the API server, on the runner).
const PARALLEL: usize = 4;

/// The least number of cases the plane must cover (the issue asks for about 10).
const MIN_CASES: usize = 10;

#[derive(Debug, Deserialize)]
struct Expect {
    #[serde(default)]
    plane: Option<Plane>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plane {
    #[serde(default)]
    refused: Vec<String>,
    #[serde(default)]
    apply: Vec<String>,
    #[serde(default)]
    list: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    exit: Option<i32>,
    #[serde(default)]
    warning: Option<Warning>,
    #[serde(default)]
    failure: Vec<String>,
    #[serde(default)]
    entries: Option<Vec<[String; 4]>>,
    #[serde(default)]
    jobs: Option<Jobs>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Warning {
    reason: String,
    #[serde(default)]
    contains: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Jobs {
    /// No Job was ever created (watch and audit log).
    None,
    /// Jobs may have been created; none is left.
    Cleaned,
}

fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad")
}

/// The cases with a `plane` section, sorted by name.
fn plane_cases() -> anyhow::Result<Vec<(String, PathBuf, Plane)>> {
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(bad_dir())? {
        let dir = entry?.path();
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !dir.is_dir() || name.starts_with(['_', '.']) {
            continue;
        }
        let path = dir.join("expect.yaml");
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let expect: Expect =
            serde_saphyr::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if let Some(plane) = expect.plane {
            cases.push((name, dir, plane));
        }
    }
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(cases)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_saphyr::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

#[tokio::test]
async fn bad_input_on_the_plane_is_reported_and_leaves_no_job() -> anyhow::Result<()> {
    let cases = plane_cases()?;
    ensure!(
        cases.len() >= MIN_CASES,
        "only {} cases with a plane section",
        cases.len()
    );
    let results: Vec<(String, anyhow::Result<()>)> = futures::stream::iter(cases)
        .map(|(name, dir, plane)| async move {
            let result = run_case(&name, &dir, &plane).await;
            (name, result)
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(name, result)| result.as_ref().err().map(|e| format!("{name}: {e:#}")))
        .collect();
    eprintln!(
        "{} plane cases: {} passed",
        results.len(),
        results.len() - failures.len()
    );
    ensure!(
        failures.is_empty(),
        "{} of {} plane cases failed:\n\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
    Ok(())
}

async fn run_case(name: &str, dir: &Path, plane: &Plane) -> anyhow::Result<()> {
    let prefix = format!("bad-{}", &name[..name.len().min(30)]);
    if !plane.refused.is_empty() {
        return expect_refused(&prefix, dir, &plane.refused).await;
    }
    let engine = read_json(&dir.join("engine.yaml"))?;
    let world = World::new(&SUITE, &prefix, SUITE.chaos_service_account, engine.clone()).await?;
    for file in &plane.apply {
        let path = dir.join(file);
        world
            .ns
            .apply_yaml(&path.display().to_string())
            .await
            .with_context(|| format!("applying {file}"))?;
    }
    let list: Vec<String> = match &plane.list {
        Some(list) => list.clone(),
        None => engine["spec"]["experiments"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = plane
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut runner = world.spawn(&list, &env)?;
    expect_exit(&mut runner, plane.exit.unwrap_or(0)).await?;
    let status = world.status().await?;

    if let Some(warning) = &plane.warning {
        let parts: Vec<&str> = warning.contains.iter().map(String::as_str).collect();
        world.expect_warning(&warning.reason, &parts).await?;
    }
    if !plane.failure.is_empty() {
        let failure = status["chaosRunner"]["failure"].as_str().unwrap_or("");
        for part in &plane.failure {
            ensure!(
                failure.contains(part.as_str()),
                "status.chaosRunner.failure {failure:?} lacks {part:?}"
            );
        }
    }
    if let Some(entries) = &plane.entries {
        let mut expected: Vec<(String, String, String, String)> = Vec::new();
        for [experiment, pod, state, verdict] in entries {
            let pod = if pod == "*" {
                played_pod(&world, experiment)?
            } else {
                pod.clone()
            };
            expected.push((experiment.clone(), pod, state.clone(), verdict.clone()));
        }
        let expected: Vec<(&str, &str, &str, &str)> = expected
            .iter()
            .map(|(e, p, s, v)| (e.as_str(), p.as_str(), s.as_str(), v.as_str()))
            .collect();
        world.check_entries(&status, &expected)?;
    }
    if plane.jobs == Some(Jobs::None) {
        world.expect_no_job_created()?;
    }
    // No orphan, whatever happened.
    world.wait_no_jobs_or_pods(Duration::from_secs(15)).await
}

/// The one pod the simulator played for `experiment` (Job `<experiment>-xxxxxx`).
fn played_pod(world: &World, experiment: &str) -> anyhow::Result<String> {
    world.played_pod(experiment)
}

/// The API server refuses the case's objects: its experiments and then its engine are created
/// (POST, as `kubectl create`/`kubectl apply` do for a new object) in a fresh namespace; one must
/// be refused as invalid (422), with every part in the message.
async fn expect_refused(prefix: &str, dir: &Path, parts: &[String]) -> anyhow::Result<()> {
    let ns = TestNamespace::create(prefix).await?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("experiment") && name.ends_with(".yaml")
        })
        .collect();
    files.sort();
    files.push(dir.join("engine.yaml"));
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        for document in documents {
            let kind = match document["kind"].as_str() {
                Some("ChaosEngine") => LitmusKind::ChaosEngine,
                Some("ChaosExperiment") => LitmusKind::ChaosExperiment,
                other => bail!("{}: kind {other:?} is not a Litmus kind", file.display()),
            };
            let object: DynamicObject = serde_json::from_value(document)?;
            let created = ns
                .litmus_api(kind)
                .create(&PostParams::default(), &object)
                .await;
            let status = match created {
                Ok(_) => continue,
                Err(kube::Error::Api(status)) => status,
                Err(error) => bail!("{}: {error}", file.display()),
            };
            ensure!(
                status.code == 422,
                "{}: refused with {}, not as invalid (422): {}",
                file.display(),
                status.code,
                status.message
            );
            for part in parts {
                ensure!(
                    status.message.contains(part.as_str()),
                    "{}: the refusal does not name {part:?}: {}",
                    file.display(),
                    status.message
                );
            }
            return Ok(());
        }
    }
    bail!("the API server accepted every object of the case ({files:?})")
}
