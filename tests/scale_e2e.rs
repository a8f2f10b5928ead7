//! The scale end-to-end test (issue 13, "Done when"): a plan of 1000 attempts, killed half way
//! with its checkpoint erased, runs every attempt exactly once and keeps the ChaosEngine small.
//! Its own test binary, so that its 40 experiments in flight never load the plane while the
//! other suites' tests run (cargo runs test binaries one after another).
//! Needs `--features e2e` and a plane: `eval "$(tests/cluster/plane env)"`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, ensure};
use common::run::{Suite, World, chaos_engine, engine_experiment, entry};
use common::{Signal, wait_until};
use serde_json::{Value, json};

const ENGINE: &str = "batch";
const SERVICE_ACCOUNT: &str = "chaos-runner";
const MAX_PARALLEL: &str = "chaos-runner.io/max-parallel";
const ITERATIONS: &str = "chaos-runner.io/iterations";

static SUITE: Suite = Suite {
    engine: ENGINE,
    component: "batch-runner",
    chaos_service_account: SERVICE_ACCOUNT,
    fixtures: &["deploy/rbac.yaml", "fixtures/batch/experiments.yaml"],
};

async fn new_world(prefix: &str, engine: Value) -> anyhow::Result<World> {
    World::new(&SUITE, prefix, SERVICE_ACCOUNT, engine).await
}

/// An engine experiment entry: the simulator plays its pod with `behaviour` for `seconds`.
fn experiment(name: &str, behaviour: &str, seconds: &str) -> Value {
    engine_experiment(
        name,
        &[("PODSIM_BEHAVIOUR", behaviour), ("PODSIM_SECONDS", seconds)],
    )
}

/// The ChaosEngine: plan `annotations`, no appinfo, Jobs deleted after each attempt.
fn engine(annotations: &[(&str, &str)], experiments: Vec<Value>) -> Value {
    chaos_engine(ENGINE, SERVICE_ACCOUNT, "delete", annotations, experiments)
}

/// Final progress marks (`P`, `F`, `A`, `S`) in the engine's progress annotations.
fn ended_attempts(engine: &kube::api::DynamicObject) -> BTreeMap<char, usize> {
    let mut marks = BTreeMap::new();
    for (key, value) in engine.metadata.annotations.iter().flatten() {
        if !key.starts_with("chaos-runner.io/progress-") {
            continue;
        }
        for token in value.split(' ') {
            if let Some(mark) = token.chars().next().filter(|c| "PFAS".contains(*c)) {
                *marks.entry(mark).or_default() += 1;
            }
        }
    }
    marks
}

/// 1000 attempts (40 experiments × 25 iterations, 40 at once): the runner is killed half way
/// and `status.chaosRunner` erased (the operator's typed update, or a user). The next runner
/// resumes from the annotations alone: every attempt runs exactly once (one Job each, audit
/// log and watch), every verdict is right, and the engine stays far below etcd's limit.
#[tokio::test]
async fn a_thousand_attempts_killed_half_way_with_checkpoint_erased_run_once_each()
-> anyhow::Result<()> {
    const EXPERIMENTS: usize = 40;
    const ITERATIONS_EACH: usize = 25;
    const ATTEMPTS: usize = EXPERIMENTS * ITERATIONS_EACH;
    let names: Vec<String> = (0..EXPERIMENTS).map(|i| format!("long-{i:02}")).collect();
    // Every fourth experiment fails; the pods play for as short as the simulator allows.
    let behaviour = |i: usize| if i % 4 == 3 { "fail" } else { "pass" };
    let plays = names
        .iter()
        .enumerate()
        .map(|(i, name)| experiment(name, behaviour(i), "0"))
        .collect();
    let iterations = ITERATIONS_EACH.to_string();
    let parallel = EXPERIMENTS.to_string();
    let world = new_world(
        "thousand",
        engine(
            &[(ITERATIONS, &iterations), (MAX_PARALLEL, &parallel)],
            plays,
        ),
    )
    .await?;
    let template = world
        .ns
        .litmus_api(common::LitmusKind::ChaosExperiment)
        .get("batch-a")
        .await?;
    for name in &names {
        let mut experiment = template.clone();
        experiment.metadata = kube::api::ObjectMeta {
            name: Some(name.clone()),
            labels: Some([("name".to_string(), name.clone())].into()),
            ..Default::default()
        };
        world
            .ns
            .litmus_api(common::LitmusKind::ChaosExperiment)
            .create(&Default::default(), &experiment)
            .await?;
    }
    let list: Vec<&str> = names.iter().map(String::as_str).collect();
    const LONG: Duration = Duration::from_secs(600);

    let mut first = world.spawn(&list, &[])?;
    wait_until(LONG, "half of the attempts ended", async || {
        let Some(engine) = world.engine().await? else {
            return Ok(None);
        };
        let ended: usize = ended_attempts(&engine).values().sum();
        Ok((ended >= ATTEMPTS / 2).then_some(()))
    })
    .await?;
    first.kill(Signal::Kill)?;
    first.wait(Duration::from_secs(10)).await?;
    world
        .patch_engine(json!({"status": {"chaosRunner": null}}))
        .await?;

    let mut second = world.spawn(&list, &[])?;
    common::run::expect_exit_within(&mut second, 0, LONG).await?;
    ensure!(
        second
            .output()
            .contains("resuming from the recorded progress"),
        "the second runner did not resume from the annotations:\n{}",
        second.log_tail(20)
    );

    // Each attempt once: one Job per attempt, no more (watch and audit log).
    world.expect_one_job_per_attempt(ATTEMPTS)?;
    let engine = world
        .engine()
        .await?
        .ok_or_else(|| anyhow!("engine gone"))?;
    let failing = (0..EXPERIMENTS).filter(|i| behaviour(*i) == "fail").count();
    let expected: BTreeMap<char, usize> = [
        ('P', (EXPERIMENTS - failing) * ITERATIONS_EACH),
        ('F', failing * ITERATIONS_EACH),
    ]
    .into();
    ensure!(
        ended_attempts(&engine) == expected,
        "progress marks {:?}, expected {expected:?}",
        ended_attempts(&engine)
    );
    let status = &engine.data["status"];
    for (i, name) in names.iter().enumerate() {
        let entry = entry(status, name)?;
        let verdict = if behaviour(i) == "fail" {
            "Fail"
        } else {
            "Pass"
        };
        ensure!(
            entry["status"] == "Completed" && entry["verdict"] == verdict,
            "{name}: {entry:#}"
        );
    }
    let size = serde_json::to_vec(&engine)?.len();
    eprintln!("{ATTEMPTS} attempts: engine object {size} bytes");
    ensure!(size < 512 * 1024, "engine object {size} bytes");
    world.wait_no_jobs_or_pods(Duration::from_secs(60)).await
}
