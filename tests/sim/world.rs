//! The rest of the cluster, played on the paused clock: the Job controller (one pod per Job),
//! the kubelet (Pending, Running, Succeeded after seeded durations) and the experiment inside
//! the pod, which writes its ChaosResult as a Litmus experiment does (created or updated when
//! it starts with verdict Awaited, its verdict written before the pod ends).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{FakeApi, NAMESPACE, now_rfc3339};
use super::rng::SplitMix;

/// How one experiment's pods behave.
#[derive(Debug, Clone)]
pub struct PodBehaviour {
    /// Pass or Fail, written into the ChaosResult.
    pub verdict: &'static str,
    /// The pods' times, instead of drawing them (a scenario shared with the plane).
    pub times: Option<PodTimes>,
}

/// What happens to one pod, drawn when its Job is created.
#[derive(Debug, Clone, Copy)]
pub struct PodTimes {
    /// Job created → pod created (the Job controller).
    pub create: Duration,
    /// Pod created → Running (scheduling, image pull).
    pub start: Duration,
    /// Running → the experiment ends.
    pub run: Duration,
}

#[derive(Debug)]
enum Step {
    CreatePod,
    Start,
    Finish,
}

/// Durations of pods: mostly short, some long (past the overdue warning), some starting late.
fn draw_times(rng: &mut SplitMix) -> PodTimes {
    let create = Duration::from_millis(50 + rng.below(1500));
    let start = match rng.below(10) {
        0 => Duration::from_secs(20 + rng.below(100)),
        _ => Duration::from_millis(100 + rng.below(3000)),
    };
    let run = match rng.below(20) {
        0 => Duration::from_secs(500 + rng.below(1500)),
        1..=4 => Duration::from_secs(60 + rng.below(300)),
        _ => Duration::from_secs(1 + rng.below(45)),
    };
    PodTimes { create, start, run }
}

/// The longest a pod can take, for the convergence bound.
pub const LONGEST_POD: Duration = Duration::from_secs(2 + 120 + 2000);

/// Runs the cluster's controllers until the simulation ends.
pub async fn run(
    api: FakeApi,
    seed: u64,
    engine: String,
    behaviours: BTreeMap<String, PodBehaviour>,
) {
    let mut rng = SplitMix::new(seed ^ 0x005e_ed0f_c1a0);
    // (when, job, step)
    let mut due: Vec<(Instant, String, Step)> = Vec::new();
    let mut times: BTreeMap<String, PodTimes> = BTreeMap::new();
    let mut pods: BTreeMap<String, String> = BTreeMap::new();
    loop {
        for job in std::mem::take(&mut api.lock().new_jobs) {
            let name = job
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let drawn = draw_times(&mut rng);
            let fixed = behaviours
                .iter()
                .find(|(experiment, _)| name.starts_with(&format!("{experiment}-")))
                .and_then(|(_, b)| b.times);
            let t = fixed.unwrap_or(drawn);
            times.insert(name.clone(), t);
            due.push((Instant::now() + t.create, name, Step::CreatePod));
        }
        due.sort_by_key(|(at, _, _)| *at);
        let next = due.first().map(|(at, _, _)| *at);
        if next.is_some_and(|at| at <= Instant::now()) {
            let (_, job, step) = due.remove(0);
            let Some(t) = times.get(&job).copied() else {
                continue;
            };
            match step {
                Step::CreatePod => {
                    if let Some(pod) = create_pod(&api, &job, &mut rng) {
                        pods.insert(job.clone(), pod);
                        due.push((Instant::now() + t.start, job, Step::Start));
                    }
                }
                Step::Start => {
                    let Some(pod) = pods.get(&job) else { continue };
                    if start_pod(&api, pod, &engine) {
                        due.push((Instant::now() + t.run, job, Step::Finish));
                    }
                }
                Step::Finish => {
                    let Some(pod) = pods.get(&job) else { continue };
                    finish_pod(&api, pod, &engine, &behaviours);
                }
            }
            continue;
        }
        let notified = api.jobs_created.notified();
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = notified => {}
                }
            }
            None => notified.await,
        }
    }
}

/// The Job controller: one pod from the template, labelled with the Job's name and uid.
fn create_pod(api: &FakeApi, job_name: &str, rng: &mut SplitMix) -> Option<String> {
    let mut state = api.lock();
    let job = state.get("jobs", NAMESPACE, job_name)?.clone();
    let job_uid = job
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    for (k, v) in [
        ("job-name", job_name),
        ("batch.kubernetes.io/job-name", job_name),
        ("controller-uid", &job_uid),
        ("batch.kubernetes.io/controller-uid", &job_uid),
    ] {
        labels[k] = json!(v);
    }
    let suffix: String = (0..5)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect();
    let name = format!("{job_name}-{suffix}");
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels,
            "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name,
                                 "uid": job_uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    });
    state.create("pods", NAMESPACE, pod).ok()?;
    drop(state);
    Some(name)
}

fn container_names(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn experiment_of_pod(pod: &Value) -> Option<String> {
    pod.pointer("/spec/containers/0/env")?
        .as_array()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some("EXPERIMENT_NAME"))?
        .get("value")?
        .as_str()
        .map(str::to_string)
}

/// The kubelet starts the pod; the experiment marks its ChaosResult Awaited.
fn start_pod(api: &FakeApi, pod_name: &str, engine: &str) -> bool {
    let mut state = api.lock();
    let Some(mut pod) = state.get("pods", NAMESPACE, pod_name).cloned() else {
        return false;
    };
    let at = now_rfc3339();
    let statuses: Vec<Value> = container_names(&pod)
        .into_iter()
        .map(|name| {
            json!({"name": name, "image": "sim", "imageID": "", "ready": true, "started": true,
                           "restartCount": 0, "state": {"running": {"startedAt": at}}})
        })
        .collect();
    pod["status"] = json!({"phase": "Running", "startTime": at, "containerStatuses": statuses,
                           "hostIP": "192.0.2.10", "podIP": "10.0.0.1", "qosClass": "BestEffort"});
    state.update("pods", NAMESPACE, pod_name, pod.clone());
    if let Some(experiment) = experiment_of_pod(&pod) {
        write_result(&mut state, engine, &experiment, "Running", "Awaited");
    }
    true
}

/// The experiment writes its verdict, then the pod ends (Succeeded).
fn finish_pod(
    api: &FakeApi,
    pod_name: &str,
    engine: &str,
    behaviours: &BTreeMap<String, PodBehaviour>,
) {
    let mut state = api.lock();
    let Some(mut pod) = state.get("pods", NAMESPACE, pod_name).cloned() else {
        return;
    };
    if let Some(experiment) = experiment_of_pod(&pod) {
        let verdict = behaviours.get(&experiment).map_or("Pass", |b| b.verdict);
        write_result(&mut state, engine, &experiment, "Completed", verdict);
    }
    let started = pod
        .pointer("/status/startTime")
        .cloned()
        .unwrap_or(json!(now_rfc3339()));
    let at = now_rfc3339();
    let statuses: Vec<Value> = container_names(&pod)
        .into_iter()
        .map(|name| json!({"name": name, "image": "sim", "imageID": "", "ready": false, "started": false,
                           "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                           "startedAt": started, "finishedAt": at}}}))
        .collect();
    pod["status"]["phase"] = json!("Succeeded");
    pod["status"]["containerStatuses"] = json!(statuses);
    state.update("pods", NAMESPACE, pod_name, pod);
}

/// The ChaosResult `<engine>-<experiment>`: created, or updated when an earlier iteration's
/// exists; `history` counts the verdicts.
fn write_result(
    state: &mut super::api::State,
    engine: &str,
    experiment: &str,
    phase: &str,
    verdict: &str,
) {
    let name = format!("{engine}-{experiment}");
    let experiment_status = json!({"phase": phase, "verdict": verdict,
        "probeSuccessPercentage": if verdict == "Pass" { "100" } else if verdict == "Fail" { "0" } else { "Awaited" },
        "errorOutput": if verdict == "Fail" { json!({"errorCode": "SIM", "reason": "simulated failure"}) } else { Value::Null }});
    match state.get("chaosresults", NAMESPACE, &name).cloned() {
        None => {
            let result = json!({"apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosResult",
                "metadata": {"name": name, "labels": {"name": name, "chaosUID": "", "app.kubernetes.io/component": "experiment-job"}},
                "spec": {"engine": engine, "experiment": experiment},
                "status": {"experimentStatus": experiment_status,
                           "history": {"passedRuns": 0, "failedRuns": 0, "stoppedRuns": 0}}});
            let _ = state.create("chaosresults", NAMESPACE, result);
        }
        Some(mut result) => {
            result["status"]["experimentStatus"] = experiment_status;
            let counter = match verdict {
                "Pass" => Some("passedRuns"),
                "Fail" => Some("failedRuns"),
                _ => None,
            };
            if let Some(counter) = counter {
                let runs = result
                    .pointer(&format!("/status/history/{counter}"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                result["status"]["history"][counter] = json!(runs + 1);
            }
            state.update("chaosresults", NAMESPACE, &name, result);
        }
    }
}
