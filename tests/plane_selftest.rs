//! Self-tests of the local control plane, the pod simulator and the e2e helpers, before any
//! runner logic: each test runs in its own namespace against the plane of this test run.
//! Needs `--features e2e` and a plane (`bash tests/test.sh` provides both).

mod common;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use common::{RunnerProcess, RunnerSpec, TestNamespace, can_i, wait_for_deletion, wait_for_object};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use podsim::{SimEventKind, SimulatorHandle};
use serde_json::{Value, json};

const ENGINE: &str = "selftest-engine";
const CHAOS_UID: &str = "0a1b2c3d-0000-4000-8000-00000000beef";
const WAIT: Duration = Duration::from_secs(30);

/// A Job shaped like the runner's experiment Jobs: container named like the Job, `chaosUID`
/// label, the experiment env, never restarted.
fn experiment_job(name: &str, env: &[(&str, &str)]) -> Job {
    let mut env_list = vec![
        json!({"name": "CHAOSENGINE", "value": ENGINE}),
        json!({"name": "EXPERIMENT_NAME", "value": name}),
        json!({"name": "CHAOS_NAMESPACE", "value": "ignored-by-podsim"}),
    ];
    env_list.extend(env.iter().map(|(k, v)| json!({"name": k, "value": v})));
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"chaosUID": CHAOS_UID}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"chaosUID": CHAOS_UID, "name": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": name, "image": "litmuschaos/go-runner:3.18.0", "env": env_list},
                        {"name": format!("{name}-sidecar-abcdef"), "image": "busybox:1.36"}
                    ]
                }
            }
        }
    }))
    .expect("a valid Job")
}

async fn create_job(ns: &TestNamespace, job: &Job) -> anyhow::Result<()> {
    let name = job.metadata.name.clone().unwrap_or_default();
    ns.api::<Job>()
        .create(&PostParams::default(), job)
        .await
        .with_context(|| format!("creating Job {name}"))?;
    Ok(())
}

/// The single pod of `job`, once it exists and `condition` holds for it.
async fn job_pod(
    ns: &TestNamespace,
    job: &str,
    what: &str,
    condition: impl Fn(&Pod) -> bool,
) -> anyhow::Result<Pod> {
    let client = ns.client();
    let mut last: Vec<Pod> = Vec::new();
    let found = common::wait_until(WAIT, what, async || {
        last = common::pods_of_job(&client, ns.name(), job).await?;
        Ok(last.iter().find(|p| condition(p)).cloned())
    })
    .await;
    found.with_context(|| {
        let phases: Vec<Value> = last.iter().map(|p| json!(p.status)).collect();
        format!("pod of Job {job}; pods seen: {phases:?}")
    })
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn container_statuses(pod: &Pod) -> Vec<ContainerStatus> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
}

fn job_condition(job: &Job, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

async fn chaos_result(ns: &TestNamespace, name: &str) -> anyhow::Result<Option<DynamicObject>> {
    Ok(ns
        .litmus_api(common::LitmusKind::ChaosResult)
        .get_opt(name)
        .await?)
}

fn experiment_status(result: &DynamicObject) -> Value {
    result.data["status"]["experimentStatus"].clone()
}

/// Asserts every spec container has a terminated state; returns (name, exit code, reason).
fn terminated(pod: &Pod) -> Vec<(String, i32, String)> {
    container_statuses(pod)
        .into_iter()
        .map(|c| {
            let t = c
                .state
                .and_then(|s| s.terminated)
                .unwrap_or_else(|| panic!("container {} is not terminated", c.name));
            assert!(
                t.started_at.is_some() && t.finished_at.is_some(),
                "{}: times",
                c.name
            );
            (c.name, t.exit_code, t.reason.unwrap_or_default())
        })
        .collect()
}

fn completion_of(sim: &SimulatorHandle, pod: &str) -> Option<SimEventKind> {
    sim.events_for(pod)
        .into_iter()
        .map(|e| e.kind)
        .find(|k| matches!(k, SimEventKind::Completed { .. }))
}

#[tokio::test]
async fn a_job_whose_pod_the_simulator_completes_reaches_complete() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-job").await?;
    let sim = ns.start_simulator()?;
    create_job(
        &ns,
        &experiment_job("job-complete", &[("PODSIM_SECONDS", "0.2")]),
    )
    .await?;

    let job = wait_for_object(
        &ns.api::<Job>(),
        "job-complete",
        WAIT,
        "Job Complete",
        |j| job_condition(j, "Complete"),
    )
    .await?;
    assert_eq!(job.status.and_then(|s| s.succeeded), Some(1));
    let counters = sim.counters();
    assert_eq!(counters.pods_played, 1);
    assert_eq!(counters.pods_completed, 1);
    assert_eq!(
        counters.results_written, 2,
        "Running/Awaited, then the verdict"
    );
    assert_eq!(counters.failures, 0, "{:?}", sim.events());
    Ok(())
}

#[tokio::test]
async fn pass_runs_every_container_then_writes_pass_and_succeeds() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-pass").await?;
    let sim = ns.start_simulator()?;
    create_job(
        &ns,
        &experiment_job(
            "exp-pass",
            &[("PODSIM_BEHAVIOUR", "pass"), ("PODSIM_SECONDS", "1")],
        ),
    )
    .await?;

    // While running: every spec container running and ready, result Awaited.
    let running = job_pod(&ns, "exp-pass", "pod Running", |p| phase(p) == "Running").await?;
    let statuses = container_statuses(&running);
    let names: Vec<&str> = statuses.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["exp-pass", "exp-pass-sidecar-abcdef"]);
    for c in &statuses {
        assert!(
            c.ready && c.started == Some(true) && c.restart_count == 0,
            "{c:?}"
        );
        assert!(
            c.state.as_ref().and_then(|s| s.running.as_ref()).is_some(),
            "{c:?}"
        );
        assert!(
            c.container_id
                .as_deref()
                .is_some_and(|id| id.starts_with("containerd://"))
        );
        assert!(!c.image_id.is_empty());
    }
    let status = running.status.clone().unwrap_or_default();
    assert!(status.pod_ip.is_some() && status.host_ip.is_some() && status.start_time.is_some());
    assert_eq!(
        running.spec.and_then(|s| s.node_name).as_deref(),
        Some(podsim::NODE_NAME)
    );
    let awaited = chaos_result(&ns, &format!("{ENGINE}-exp-pass"))
        .await?
        .context("result while running")?;
    assert_eq!(experiment_status(&awaited)["verdict"], "Awaited");
    assert_eq!(experiment_status(&awaited)["phase"], "Running");
    assert_eq!(
        awaited.data["spec"],
        json!({"engine": ENGINE, "experiment": "exp-pass", "instance": ""})
    );
    assert_eq!(
        awaited
            .metadata
            .labels
            .unwrap_or_default()
            .get("chaosUID")
            .map(String::as_str),
        Some(CHAOS_UID)
    );

    let done = job_pod(&ns, "exp-pass", "pod Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await?;
    for (name, code, reason) in terminated(&done) {
        assert_eq!((code, reason.as_str()), (0, "Completed"), "{name}");
    }
    let result = chaos_result(&ns, &format!("{ENGINE}-exp-pass"))
        .await?
        .context("result")?;
    let status = experiment_status(&result);
    assert_eq!(status["phase"], "Completed");
    assert_eq!(status["verdict"], "Pass");
    assert_eq!(status["probeSuccessPercentage"], "100");
    assert!(
        status.get("errorOutput").is_none_or(Value::is_null),
        "{status}"
    );
    assert_eq!(result.data["status"]["history"]["passedRuns"], 1);

    // The verdict is written before the pod completes, as an experiment does.
    let events = sim.events_for(&done.metadata.name.unwrap_or_default());
    let verdict_at = events.iter().position(
        |e| matches!(&e.kind, SimEventKind::ResultWritten { verdict, .. } if verdict == "Pass"),
    );
    let completed_at = events
        .iter()
        .position(|e| matches!(e.kind, SimEventKind::Completed { .. }));
    assert!(
        verdict_at.is_some() && verdict_at < completed_at,
        "{events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn fail_writes_fail_with_error_output_and_the_pod_still_succeeds() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-fail").await?;
    let _sim = ns.start_simulator()?;
    let env = [
        ("PODSIM_BEHAVIOUR", "fail"),
        ("PODSIM_SECONDS", "0.2"),
        ("PODSIM_REASON", "target pods did not recover"),
    ];
    create_job(&ns, &experiment_job("exp-fail", &env)).await?;

    let done = job_pod(&ns, "exp-fail", "pod Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await?;
    assert!(terminated(&done).iter().all(|(_, code, _)| *code == 0));
    let result = chaos_result(&ns, &format!("{ENGINE}-exp-fail"))
        .await?
        .context("result")?;
    let status = experiment_status(&result);
    assert_eq!(status["phase"], "Completed");
    assert_eq!(status["verdict"], "Fail");
    assert_eq!(status["probeSuccessPercentage"], "0");
    assert_eq!(
        status["errorOutput"]["reason"],
        "target pods did not recover"
    );
    assert_eq!(status["errorOutput"]["errorCode"], "STATUS_CHECKS_ERROR");
    assert_eq!(result.data["status"]["history"]["failedRuns"], 1);
    wait_for_object(&ns.api::<Job>(), "exp-fail", WAIT, "Job Complete", |j| {
        job_condition(j, "Complete")
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn error_writes_error_and_the_main_container_exits_1() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-error").await?;
    let _sim = ns.start_simulator()?;
    create_job(
        &ns,
        &experiment_job(
            "exp-error",
            &[("PODSIM_BEHAVIOUR", "error"), ("PODSIM_SECONDS", "0.2")],
        ),
    )
    .await?;

    let done = job_pod(&ns, "exp-error", "pod Failed", |p| phase(p) == "Failed").await?;
    let exits = terminated(&done);
    assert_eq!(exits[0], ("exp-error".to_owned(), 1, "Error".to_owned()));
    assert_eq!(exits[1].1, 0, "the sidecar ends normally");
    let result = chaos_result(&ns, &format!("{ENGINE}-exp-error"))
        .await?
        .context("result")?;
    let status = experiment_status(&result);
    assert_eq!(
        (status["phase"].as_str(), status["verdict"].as_str()),
        (Some("Error"), Some("Error"))
    );
    assert_eq!(status["errorOutput"]["errorCode"], "GENERIC_ERROR");
    wait_for_object(&ns.api::<Job>(), "exp-error", WAIT, "Job Failed", |j| {
        job_condition(j, "Failed")
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn hang_stays_running_with_the_result_awaited() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-hang").await?;
    let sim = ns.start_simulator()?;
    create_job(
        &ns,
        &experiment_job(
            "exp-hang",
            &[("PODSIM_BEHAVIOUR", "hang"), ("PODSIM_SECONDS", "0.2")],
        ),
    )
    .await?;

    let pod = job_pod(&ns, "exp-hang", "pod Running", |p| phase(p) == "Running").await?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    sim.wait_for_event(WAIT, |e| {
        e.pod == pod_name && matches!(e.kind, SimEventKind::ResultWritten { .. })
    })
    .await
    .context("result written")?;
    // Ten times the duration later, nothing has moved.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pod: Pod = ns.api().get(&pod_name).await?;
    assert_eq!(phase(&pod), "Running");
    assert!(container_statuses(&pod).iter().all(|c| c.ready));
    let result = chaos_result(&ns, &format!("{ENGINE}-exp-hang"))
        .await?
        .context("result")?;
    assert_eq!(experiment_status(&result)["verdict"], "Awaited");
    assert_eq!(completion_of(&sim, &pod_name), None);
    Ok(())
}

#[tokio::test]
async fn crash_fails_the_pod_with_oom_kill_and_writes_no_verdict() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-crash").await?;
    let _sim = ns.start_simulator()?;
    create_job(
        &ns,
        &experiment_job(
            "exp-crash",
            &[("PODSIM_BEHAVIOUR", "crash"), ("PODSIM_SECONDS", "0.3")],
        ),
    )
    .await?;

    let running = job_pod(&ns, "exp-crash", "pod Running", |p| phase(p) == "Running").await?;
    assert!(container_statuses(&running).iter().all(|c| c.ready));
    let done = job_pod(&ns, "exp-crash", "pod Failed", |p| phase(p) == "Failed").await?;
    let exits = terminated(&done);
    assert_eq!(
        exits[0],
        ("exp-crash".to_owned(), 137, "OOMKilled".to_owned())
    );
    assert!(
        chaos_result(&ns, &format!("{ENGINE}-exp-crash"))
            .await?
            .is_none(),
        "a crashed experiment leaves no result"
    );
    Ok(())
}

#[tokio::test]
async fn pending_stays_unschedulable() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-pending").await?;
    let sim = ns.start_simulator()?;
    create_job(
        &ns,
        &experiment_job("exp-pending", &[("PODSIM_BEHAVIOUR", "pending")]),
    )
    .await?;

    let pod = job_pod(&ns, "exp-pending", "pod Unschedulable", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pod: Pod = ns.api().get(&pod.metadata.name.unwrap_or_default()).await?;
    assert_eq!(phase(&pod), "Pending");
    assert!(container_statuses(&pod).is_empty());
    assert_eq!(
        pod.spec.and_then(|s| s.node_name),
        None,
        "an unschedulable pod is not bound"
    );
    assert!(
        chaos_result(&ns, &format!("{ENGINE}-exp-pending"))
            .await?
            .is_none()
    );
    assert_eq!(sim.counters().results_written, 0);
    Ok(())
}

#[tokio::test]
async fn imagepull_waits_with_err_image_pull_then_back_off() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-imagepull").await?;
    let sim = ns.start_simulator()?;
    create_job(
        &ns,
        &experiment_job(
            "exp-pull",
            &[("PODSIM_BEHAVIOUR", "imagepull"), ("PODSIM_SECONDS", "0.5")],
        ),
    )
    .await?;

    let waiting_reason = |p: &Pod| {
        container_statuses(p)
            .into_iter()
            .find(|c| c.name == "exp-pull")
            .and_then(|c| c.state?.waiting?.reason)
    };
    let first = job_pod(&ns, "exp-pull", "ErrImagePull or ImagePullBackOff", |p| {
        waiting_reason(p).is_some()
    })
    .await?;
    let backing_off = job_pod(&ns, "exp-pull", "ImagePullBackOff", |p| {
        waiting_reason(p).as_deref() == Some("ImagePullBackOff")
    })
    .await?;
    assert_eq!(phase(&backing_off), "Pending");
    assert_eq!(
        backing_off.spec.and_then(|s| s.node_name).as_deref(),
        Some(podsim::NODE_NAME)
    );
    // The simulator went through ErrImagePull first.
    let pod_name = first.metadata.name.unwrap_or_default();
    let reasons: Vec<String> = sim
        .events_for(&pod_name)
        .into_iter()
        .filter_map(|e| match e.kind {
            SimEventKind::ImagePullFailing { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["ErrImagePull", "ImagePullBackOff"]);
    assert!(
        chaos_result(&ns, &format!("{ENGINE}-exp-pull"))
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn the_duration_is_honoured_and_instance_id_names_the_result() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-duration").await?;
    let sim = ns.start_simulator()?;
    let env = [
        ("PODSIM_SECONDS", "2"),
        ("INSTANCE_ID", "run7"),
        ("TOTAL_CHAOS_DURATION", "60"),
    ];
    create_job(&ns, &experiment_job("exp-slow", &env)).await?;

    let done = job_pod(&ns, "exp-slow", "pod Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await?;
    let pod_name = done.metadata.name.clone().unwrap_or_default();
    let events = sim.events_for(&pod_name);
    let running = events
        .iter()
        .find(|e| e.kind == SimEventKind::Running)
        .context("Running event")?;
    let completed = events
        .iter()
        .find(|e| matches!(e.kind, SimEventKind::Completed { .. }))
        .context("Completed event")?;
    let took = completed.instant - running.instant;
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "took {took:?}"
    );
    let result = chaos_result(&ns, &format!("{ENGINE}-exp-slow-run7"))
        .await?
        .context("result with instance id")?;
    assert_eq!(result.data["spec"]["instance"], "run7");
    assert_eq!(experiment_status(&result)["verdict"], "Pass");
    Ok(())
}

#[tokio::test]
async fn a_rerun_updates_the_existing_result() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-rerun").await?;
    let _sim = ns.start_simulator()?;
    // Two Jobs of the same experiment (the second named differently, as a new attempt is).
    let mut first = experiment_job(
        "exp-rerun",
        &[("PODSIM_BEHAVIOUR", "fail"), ("PODSIM_SECONDS", "0.1")],
    );
    create_job(&ns, &first).await?;
    wait_for_object(
        &ns.api::<Job>(),
        "exp-rerun",
        WAIT,
        "first Job Complete",
        |j| job_condition(j, "Complete"),
    )
    .await?;
    first.metadata.name = Some("exp-rerun-2".into());
    let mut second = first;
    let main = &mut second
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .context("pod spec")?
        .containers[0];
    main.name = "exp-rerun-2".into();
    for var in main.env.iter_mut().flatten() {
        if var.name == "PODSIM_BEHAVIOUR" {
            var.value = Some("pass".into());
        }
        if var.name == "EXPERIMENT_NAME" {
            var.value = Some("exp-rerun".into());
        }
    }
    create_job(&ns, &second).await?;
    wait_for_object(
        &ns.api::<Job>(),
        "exp-rerun-2",
        WAIT,
        "second Job Complete",
        |j| job_condition(j, "Complete"),
    )
    .await?;

    let result = chaos_result(&ns, &format!("{ENGINE}-exp-rerun"))
        .await?
        .context("result")?;
    let status = experiment_status(&result);
    assert_eq!(status["verdict"], "Pass");
    assert!(
        status.get("errorOutput").is_none_or(Value::is_null),
        "the first run's error is cleared: {status}"
    );
    assert_eq!(result.data["status"]["history"]["failedRuns"], 1);
    assert_eq!(result.data["status"]["history"]["passedRuns"], 1);
    Ok(())
}

#[tokio::test]
async fn deleting_the_chaos_engine_garbage_collects_its_job_and_pod() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-gc").await?;
    let sim = ns.start_simulator()?;
    let engine = ns
        .apply_yaml(
            "apiVersion: litmuschaos.io/v1alpha1\nkind: ChaosEngine\nmetadata:\n  name: gc-engine\nspec:\n  engineState: active\n",
        )
        .await?
        .pop()
        .context("applied engine")?;
    let engine_uid = engine.metadata.uid.clone().context("engine uid")?;
    let mut job = experiment_job("exp-owned", &[("PODSIM_BEHAVIOUR", "hang")]);
    job.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "litmuschaos.io/v1alpha1",
        "kind": "ChaosEngine",
        "name": "gc-engine",
        "uid": engine_uid,
        "controller": true,
        "blockOwnerDeletion": true,
    }))?]);
    create_job(&ns, &job).await?;
    let pod = job_pod(&ns, "exp-owned", "pod Running", |p| phase(p) == "Running").await?;
    let pod_name = pod.metadata.name.unwrap_or_default();

    ns.litmus_api(common::LitmusKind::ChaosEngine)
        .delete("gc-engine", &DeleteParams::default())
        .await?;
    wait_for_deletion(&ns.api::<Job>(), "exp-owned", WAIT).await?;
    wait_for_deletion(&ns.api::<Pod>(), &pod_name, WAIT).await?;
    assert!(
        sim.events_for(&pod_name)
            .iter()
            .any(|e| e.kind == SimEventKind::ForceDeleted),
        "the bound pod needed the simulator's force delete: {:?}",
        sim.events_for(&pod_name)
    );
    Ok(())
}

#[tokio::test]
async fn a_foreground_job_delete_removes_its_bound_pods() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-foreground").await?;
    let sim = ns.start_simulator()?;
    create_job(
        &ns,
        &experiment_job("exp-fg", &[("PODSIM_BEHAVIOUR", "hang")]),
    )
    .await?;
    let pod = job_pod(&ns, "exp-fg", "pod Running", |p| phase(p) == "Running").await?;
    let pod_name = pod.metadata.name.unwrap_or_default();
    assert!(
        pod.spec.and_then(|s| s.node_name).is_some(),
        "bound, so a delete is graceful"
    );

    ns.api::<Job>()
        .delete("exp-fg", &DeleteParams::foreground())
        .await?;
    wait_for_deletion(&ns.api::<Pod>(), &pod_name, WAIT).await?;
    wait_for_deletion(&ns.api::<Job>(), "exp-fg", WAIT).await?;
    assert_eq!(sim.counters().pods_force_deleted, 1, "{:?}", sim.events());
    Ok(())
}

/// Verbs the runner needs (contract §5, plus list+watch where the deploy/ Role allows
/// watching): (verb, group, resource).
const RUNNER_NEEDS: &[(&str, &str, &str)] = &[
    ("get", "litmuschaos.io", "chaosengines"),
    ("watch", "litmuschaos.io", "chaosengines"),
    ("patch", "litmuschaos.io", "chaosengines"),
    ("get", "litmuschaos.io", "chaosexperiments"),
    ("get", "litmuschaos.io", "chaosresults"),
    ("create", "batch", "jobs"),
    ("get", "batch", "jobs"),
    ("delete", "batch", "jobs"),
    ("list", "", "pods"),
    ("watch", "", "pods"),
    ("get", "", "configmaps"),
    ("get", "", "secrets"),
    ("create", "", "events"),
    ("patch", "", "events"),
    ("create", "apps", "deployments"),
    ("create", "", "services"),
];

#[tokio::test]
async fn the_deploy_role_grants_the_runner_what_it_needs_in_its_namespace_only()
-> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-rbac").await?;
    let other = TestNamespace::create("selftest-rbac-other").await?;
    ns.apply_yaml("deploy/rbac.yaml").await?;
    let runner = ns.sa_client("chaos-runner").await?;

    let mut wrong = Vec::new();
    for &(verb, group, resource) in RUNNER_NEEDS {
        if !can_i(&runner, verb, group, resource, Some(ns.name())).await? {
            wrong.push(format!(
                "denied in own namespace: {verb} {group}/{resource}"
            ));
        }
        if can_i(&runner, verb, group, resource, Some(other.name())).await? {
            wrong.push(format!(
                "allowed in another namespace: {verb} {group}/{resource}"
            ));
        }
        if can_i(&runner, verb, group, resource, None).await? {
            wrong.push(format!("allowed cluster-wide: {verb} {group}/{resource}"));
        }
    }
    for (verb, group, resource) in [
        ("list", "", "namespaces"),
        ("get", "", "nodes"),
        ("create", "rbac.authorization.k8s.io", "rolebindings"),
        ("update", "", "pods"),
        ("create", "", "pods"),
        ("create", "events.k8s.io", "events"),
        ("list", "batch", "jobs"),
        ("delete", "apps", "deployments"),
        ("list", "litmuschaos.io", "chaosengines"),
    ] {
        if can_i(&runner, verb, group, resource, Some(ns.name())).await? {
            wrong.push(format!("more than needed: {verb} {group}/{resource}"));
        }
    }
    ensure!(wrong.is_empty(), "deploy/rbac.yaml: {wrong:#?}");

    // The kubeconfig really acts as the ServiceAccount: it lists pods and is refused secrets.
    ns.apply_yaml("apiVersion: v1\nkind: Secret\nmetadata:\n  name: probe\nstringData:\n  k: v\n")
        .await?;
    let pods: Api<Pod> = Api::namespaced(runner.clone(), ns.name());
    pods.list(&Default::default())
        .await
        .context("list pods as chaos-runner")?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(runner.clone(), ns.name());
    secrets
        .get("probe")
        .await
        .context("get secret as chaos-runner (only existence is read)")?;
    match secrets.list(&Default::default()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => anyhow::bail!("list secrets as chaos-runner should be 403, got {other:?}"),
    }
    let pods_elsewhere: Api<Pod> = Api::namespaced(runner, other.name());
    match pods_elsewhere.list(&Default::default()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => anyhow::bail!("list pods in another namespace should be 403, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn the_litmus_user_role_lists_but_cannot_watch_and_reads_no_secrets() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-userrole").await?;
    ns.apply_yaml("fixtures/rbac/litmus-user-role.yaml").await?;
    let user = ns.sa_client("litmus-user-sa").await?;
    let here = Some(ns.name());
    let expectations = [
        ("list", "", "pods", true),
        ("get", "", "pods", true),
        ("create", "batch", "jobs", true),
        ("patch", "litmuschaos.io", "chaosengines", true),
        ("create", "", "events", true),
        ("watch", "", "pods", false),
        ("watch", "batch", "jobs", false),
        ("watch", "litmuschaos.io", "chaosengines", false),
        ("watch", "litmuschaos.io", "chaosresults", false),
        ("get", "", "secrets", false),
        ("create", "events.k8s.io", "events", false),
    ];
    let mut wrong = Vec::new();
    for (verb, group, resource, expected) in expectations {
        if can_i(&user, verb, group, resource, here).await? != expected {
            wrong.push(format!(
                "{verb} {group}/{resource}: expected allowed={expected}"
            ));
        }
    }
    ensure!(
        wrong.is_empty(),
        "fixtures/rbac/litmus-user-role.yaml: {wrong:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn runner_process_starts_the_binary_as_the_service_account() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-runner").await?;
    ns.apply_yaml("deploy/rbac.yaml").await?;
    let kubeconfig = ns.sa_kubeconfig("chaos-runner").await?;
    let spec = RunnerSpec {
        engine: "smoke-engine".into(),
        namespace: ns.name().into(),
        experiments: vec!["pod-delete".into(), "container-kill".into()],
        service_account: "chaos-runner".into(),
        env_extra: vec![
            ("TARGETS".into(), "deployment:default:[app=nginx]".into()),
            ("AUXILIARY_APPINFO".into(), String::new()),
        ],
        kubeconfig: kubeconfig.clone(),
    };
    let env = spec.operator_env();
    assert!(
        env.iter()
            .any(|(k, v)| k == "EXPERIMENT_LIST" && v == "pod-delete,container-kill")
    );
    assert!(
        env.iter()
            .any(|(k, v)| k == "KUBECONFIG" && *v == kubeconfig.display().to_string())
    );
    assert!(
        !env.iter().any(|(k, _)| k == "AUXILIARY_APPINFO"),
        "empty values are omitted"
    );

    let audit = common::AuditCursor::now()?;
    let mut runner = RunnerProcess::spawn(&spec)?;
    assert!(runner.pid() > 0);
    let status = runner.wait(Duration::from_secs(60)).await?;
    let output = runner.output();
    assert!(
        status.code().is_some(),
        "the runner died of a signal: {status:?}\n{output}"
    );
    assert!(!output.contains("panicked"), "{output}");
    assert!(
        output.contains("smoke-engine"),
        "the output names the engine:\n{output}"
    );
    // The apiserver saw the runner's requests as the ServiceAccount (when the plane audits).
    if let Some(audit) = audit {
        let user = format!("system:serviceaccount:{}:chaos-runner", ns.name());
        common::wait_until(
            Duration::from_secs(5),
            "the runner's requests in the audit log",
            async || Ok((!audit.requests_by(&user)?.is_empty()).then_some(())),
        )
        .await
        .with_context(|| format!("runner output:\n{output}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn a_restarted_simulator_resumes_running_pods_and_leaves_finished_ones_alone()
-> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-resume").await?;
    let first = ns.start_simulator()?;
    assert!(
        ns.start_simulator().is_err(),
        "a second simulator on the same namespace is refused"
    );
    create_job(&ns, &experiment_job("exp-done", &[("PODSIM_SECONDS", "0")])).await?;
    job_pod(&ns, "exp-done", "first pod Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await?;
    create_job(&ns, &experiment_job("exp-long", &[("PODSIM_SECONDS", "3")])).await?;
    let running = job_pod(&ns, "exp-long", "pod Running", |p| phase(p) == "Running").await?;
    let pod_name = running.metadata.name.unwrap_or_default();
    first
        .wait_for_event(WAIT, |e| {
            e.pod == pod_name && matches!(e.kind, SimEventKind::ResultWritten { .. })
        })
        .await
        .context("Awaited result written by the first simulator")?;
    first.stop().await;

    let second = ns.start_simulator()?;
    let done = job_pod(&ns, "exp-long", "pod Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await?;
    let kinds: Vec<SimEventKind> = second
        .events_for(&pod_name)
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.first(), Some(&SimEventKind::Resumed), "{kinds:?}");
    assert!(
        !kinds.contains(&SimEventKind::Running),
        "no second Running write: {kinds:?}"
    );
    let counters = second.counters();
    assert_eq!(
        counters.pods_played,
        1,
        "the finished pod is left alone: {:?}",
        second.events()
    );
    assert_eq!(counters.results_written, 1, "only the verdict");
    // The chaos still lasted its duration, counted from the pod's start.
    let exits = terminated(&done);
    assert_eq!(exits[0].1, 0);
    let result = chaos_result(&ns, &format!("{ENGINE}-exp-long"))
        .await?
        .context("result")?;
    assert_eq!(experiment_status(&result)["verdict"], "Pass");
    Ok(())
}

#[tokio::test]
async fn an_unknown_behaviour_is_rejected_and_the_pod_left_pending() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-reject").await?;
    let sim = ns.start_simulator()?;
    create_job(
        &ns,
        &experiment_job("exp-odd", &[("PODSIM_BEHAVIOUR", "explode")]),
    )
    .await?;
    let rejected = sim
        .wait_for_event(WAIT, |e| matches!(e.kind, SimEventKind::Rejected { .. }))
        .await
        .context("Rejected event")?;
    let SimEventKind::Rejected { reason } = &rejected.kind else {
        unreachable!("matched above")
    };
    assert!(
        reason.contains("explode") && reason.contains("PODSIM_BEHAVIOUR"),
        "{reason}"
    );
    let pod: Pod = ns.api().get(&rejected.pod).await?;
    assert_eq!(phase(&pod), "Pending");
    assert_eq!(sim.counters().failures, 1);
    Ok(())
}

/// The upstream CRDs as `deploy/crds/fetch` gets them (chaos-operator's deploy/chaos_crds.yaml
/// from the Go module proxy), by name, typed: what the apiserver keeps of them.
fn upstream_crds() -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let fetch = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/crds/fetch");
    let output = std::process::Command::new(fetch)
        .arg("path")
        .output()
        .with_context(|| format!("running {fetch} path"))?;
    ensure!(
        output.status.success(),
        "{fetch} path: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let path = String::from_utf8(output.stdout)?.trim().to_owned();
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|err| anyhow::anyhow!("{path}: invalid YAML: {err}"))?;
    documents
        .into_iter()
        .filter(|document| !document.is_null())
        .map(|document| Ok(serde_json::from_value(document)?))
        .collect()
}

/// Up to 10 JSON pointers where `a` and `b` differ.
fn differences(a: &Value, b: &Value, at: String, found: &mut Vec<String>) {
    if found.len() >= 10 {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let (left, right) = (
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                );
                differences(left, right, format!("{at}/{key}"), found);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (index, (left, right)) in x.iter().zip(y).enumerate() {
                differences(left, right, format!("{at}/{index}"), found);
            }
        }
        _ if a != b => found.push(format!(
            "{at}: plane {} / upstream {}",
            abbreviated(a),
            abbreviated(b)
        )),
        _ => {}
    }
}

/// `value` as JSON, cut to 100 characters.
fn abbreviated(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// The plane runs the CRDs Litmus users install (upstream's), not a schema of our own: the
/// same spec as chaos-operator's file, so a field spelled as upstream spells it survives a write
/// and the runner sees objects as it would on a real cluster.
#[tokio::test]
async fn the_planes_litmus_crds_are_upstreams() -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(common::admin_client().await?);
    let upstream = upstream_crds()?;
    let mut names: Vec<String> = upstream
        .iter()
        .map(|crd| crd.metadata.name.clone().unwrap_or_default())
        .collect();
    names.sort();
    ensure!(
        names
            == [
                "chaosengines.litmuschaos.io",
                "chaosexperiments.litmuschaos.io",
                "chaosresults.litmuschaos.io"
            ],
        "upstream's file defines {names:?}"
    );
    let mut installed = std::collections::BTreeMap::new();
    for wanted in &upstream {
        let name = wanted.metadata.name.clone().unwrap_or_default();
        let crd = crds
            .get(&name)
            .await
            .with_context(|| format!("CRD {name}"))?;
        let mut found = Vec::new();
        differences(
            &serde_json::to_value(&crd.spec)?,
            &serde_json::to_value(&wanted.spec)?,
            String::new(),
            &mut found,
        );
        ensure!(
            found.is_empty(),
            "{name}: the plane's spec is not upstream's: {found:#?}"
        );
        for version in &crd.spec.versions {
            ensure!(
                version
                    .subresources
                    .as_ref()
                    .is_none_or(|s| s.status.is_none() && s.scale.is_none()),
                "{name} {}: upstream has no status (or scale) subresource",
                version.name
            );
        }
        installed.insert(name, serde_json::to_value(&crd)?);
    }

    // What the old hand-written schema got wrong, spelled out.
    let definition = installed["chaosexperiments.litmuschaos.io"]
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/definition")
        .context("ChaosExperiment spec.definition schema")?;
    ensure!(
        definition["properties"].get("configMaps").is_some()
            && definition["properties"].get("configmaps").is_none(),
        "ChaosExperiment spec.definition spells configMaps as upstream does: {:?}",
        definition["properties"]
            .as_object()
            .map(|p| p.keys().collect::<Vec<_>>())
    );
    ensure!(
        definition["x-kubernetes-preserve-unknown-fields"] == json!(true),
        "ChaosExperiment spec.definition keeps unknown fields"
    );
    let engine_spec = installed["chaosengines.litmuschaos.io"]
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .context("ChaosEngine spec schema")?;
    ensure!(
        engine_spec["x-kubernetes-preserve-unknown-fields"] == json!(true),
        "ChaosEngine spec keeps unknown fields"
    );
    Ok(())
}

#[tokio::test]
async fn a_chaos_experiment_keeps_its_config_maps_and_unknown_definition_fields()
-> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-crd").await?;
    let experiments = ns.litmus_api(common::LitmusKind::ChaosExperiment);
    let experiment: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "litmuschaos.io/v1alpha1",
        "kind": "ChaosExperiment",
        "metadata": {"name": "keeps-fields"},
        "spec": {"definition": {
            "image": "litmuschaos/go-runner:3.18.0",
            "configMaps": [{"name": "x", "mountPath": "/y"}],
            "secrets": [{"name": "s", "mountPath": "/s"}],
            "notInTheSchema": {"kept": true},
        }},
    }))?;
    experiments
        .create(&PostParams::default(), &experiment)
        .await
        .context("creating ChaosExperiment keeps-fields")?;
    let read = experiments.get("keeps-fields").await?;
    let definition = &read.data["spec"]["definition"];
    ensure!(
        definition["configMaps"] == json!([{"name": "x", "mountPath": "/y"}])
            && definition["secrets"] == json!([{"name": "s", "mountPath": "/s"}])
            && definition["notInTheSchema"] == json!({"kept": true}),
        "fields were pruned: {definition:#}"
    );

    // Upstream validates the volume entries: an empty mountPath is refused.
    let mut invalid = experiment.clone();
    invalid.metadata.name = Some("empty-mount-path".into());
    invalid.data["spec"]["definition"]["configMaps"] = json!([{"name": "x", "mountPath": ""}]);
    match experiments.create(&PostParams::default(), &invalid).await {
        Err(kube::Error::Api(status)) if status.code == 422 => {}
        other => anyhow::bail!("an empty mountPath should be 422 Invalid, got {other:?}"),
    }
    Ok(())
}

/// kube-apiserver runs OwnerReferencesPermissionEnforcement (as OpenShift does): an
/// ownerReference with blockOwnerDeletion needs `update` on the owner's finalizers.
#[tokio::test]
async fn block_owner_deletion_needs_update_on_the_owners_finalizers() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-ownerref").await?;
    let role = |extra: &str| {
        format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: owner-probe\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: owner-probe\n\
             rules:\n  - apiGroups: [\"\"]\n    resources: [configmaps]\n    verbs: [create]\n\
             {extra}---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: owner-probe\n\
             roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: owner-probe\n\
             subjects:\n  - kind: ServiceAccount\n    name: owner-probe\n    namespace: {}\n",
            ns.name()
        )
    };
    ns.apply_yaml(&role("")).await?;
    let engine = ns
        .apply_yaml(
            "apiVersion: litmuschaos.io/v1alpha1\nkind: ChaosEngine\nmetadata:\n  name: owner\nspec:\n  engineState: active\n",
        )
        .await?
        .pop()
        .context("applied engine")?;
    let uid = engine.metadata.uid.clone().context("engine uid")?;
    let owned = |name: &str, block: bool| -> anyhow::Result<ConfigMap> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [{
                "apiVersion": "litmuschaos.io/v1alpha1",
                "kind": "ChaosEngine",
                "name": "owner",
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": block,
            }]},
        }))?)
    };
    let probe: Api<ConfigMap> = Api::namespaced(ns.sa_client("owner-probe").await?, ns.name());

    probe
        .create(&PostParams::default(), &owned("not-blocking", false)?)
        .await
        .context("an ownerReference without blockOwnerDeletion needs no extra permission")?;
    match probe
        .create(&PostParams::default(), &owned("blocking", true)?)
        .await
    {
        Err(kube::Error::Api(status))
            if status.code == 403 && status.message.contains("blockOwnerDeletion") => {}
        other => anyhow::bail!(
            "blockOwnerDeletion without update on chaosengines/finalizers should be 403, got {other:?}"
        ),
    }

    ns.apply_yaml(&role(
        "  - apiGroups: [litmuschaos.io]\n    resources: [chaosengines/finalizers]\n    verbs: [update]\n",
    ))
    .await?;
    // RBAC changes reach the authorizer through an informer: retry briefly.
    common::wait_until(
        WAIT,
        "blockOwnerDeletion allowed with the finalizers rule",
        async || match probe
            .create(&PostParams::default(), &owned("blocking", true)?)
            .await
        {
            Ok(_) => Ok(Some(())),
            Err(kube::Error::Api(status)) if status.code == 403 => Ok(None),
            Err(err) => Err(err.into()),
        },
    )
    .await?;
    Ok(())
}

/// The benchmark measures the runner's engine writes in bytes: the plane's audit policy logs the
/// body (`requestObject`) of patches and updates of ChaosEngines, and of nothing else.
#[tokio::test]
async fn the_audit_log_holds_the_bodies_of_chaos_engine_writes_only() -> anyhow::Result<()> {
    let ns = TestNamespace::create("selftest-audit").await?;
    ns.apply_yaml(
        "apiVersion: litmuschaos.io/v1alpha1\nkind: ChaosEngine\nmetadata:\n  name: audit-engine\nspec:\n  engineState: active\n---\napiVersion: litmuschaos.io/v1alpha1\nkind: ChaosExperiment\nmetadata:\n  name: audit-experiment\nspec:\n  definition:\n    scope: Namespaced\n",
    )
    .await?;
    // After the apply (itself a patch): only the two merge patches below count.
    let Some(audit) = common::AuditCursor::now()? else {
        return Ok(()); // the plane exports no audit log
    };
    let body = json!({"metadata": {"annotations": {"selftest/audit": "x".repeat(100)}}});
    let patch = kube::api::Patch::Merge(&body);
    let params = kube::api::PatchParams::default();
    ns.litmus_api(common::LitmusKind::ChaosEngine)
        .patch("audit-engine", &params, &patch)
        .await?;
    ns.litmus_api(common::LitmusKind::ChaosExperiment)
        .patch("audit-experiment", &params, &patch)
        .await?;

    let patch_of = |requests: &[Value], resource: &str| -> Option<Value> {
        requests
            .iter()
            .find(|event| {
                event["verb"] == "patch"
                    && event["objectRef"]["resource"] == resource
                    && event["objectRef"]["namespace"] == ns.name()
            })
            .cloned()
    };
    let (engine, experiment) = common::wait_until(
        Duration::from_secs(5),
        "both patches in the audit log",
        async || {
            let requests = audit.requests()?;
            Ok(patch_of(&requests, "chaosengines").zip(patch_of(&requests, "chaosexperiments")))
        },
    )
    .await?;
    ensure!(
        engine["level"] == "Request" && engine["requestObject"] == body,
        "the engine patch is logged with its body: {engine}"
    );
    ensure!(
        experiment["level"] == "Metadata" && experiment.get("requestObject").is_none(),
        "other writes are logged without bodies: {experiment}"
    );
    Ok(())
}
