//! A deterministic simulation of whole runs: the unchanged driver
//! (`chaos_runner::run::driver::run`) against the in-memory API server (`api.rs`) and the
//! cluster around it (`world.rs`), on tokio's paused clock. A seed decides the plan, the pods'
//! durations, the API faults, where each runner incarnation is killed and when the run is
//! aborted; `check` then asks what the e2e crash tests ask of a real run.

pub mod api;
pub mod observed;
pub mod world;

pub mod rng {
    pub use chaos_runner::contract::plan::SplitMix64 as SplitMix;
}

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chaos_runner::cluster::engine_writer::WriteError;
use chaos_runner::contract::config::RunnerConfig;
use chaos_runner::contract::hash::fnv1a64;
use chaos_runner::contract::job::job_name;
use chaos_runner::contract::record::{Ledger, Mark, PLANNED, transition_event_key};
use chaos_runner::run::context::{RunEnd, RunError, RunOptions};
use serde_json::{Value, json};

use api::{CrashPoint, FakeApi, FaultRates, NAMESPACE};
use rng::SplitMix;
use world::{PodBehaviour, PodTimes};

pub const ENGINE: &str = "sim-engine";

/// Everything a seed decides.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub seed: u64,
    /// Experiments in EXPERIMENT_LIST order, with their verdicts.
    pub experiments: Vec<(String, &'static str)>,
    /// Iterations per experiment (1 when the annotation is absent).
    pub iterations: BTreeMap<String, u32>,
    /// The `chaos-runner.io/iterations` annotation, if any.
    pub iterations_annotation: Option<String>,
    pub max_parallel: Option<u32>,
    pub cleanup_delete: bool,
    pub poll_mode: bool,
    pub fault_per_mille: u64,
    /// The most simulated time a request takes each way (0: none).
    pub latency_max_ms: u64,
    /// The crash point of each incarnation, in order (the ones after are not killed).
    pub crashes: Vec<CrashPoint>,
    /// Simulated time after which `spec.engineState` is set to `stop`.
    pub abort_after: Option<Duration>,
    /// `chaos-runner.io/monitor-timeout` (seconds): the user's deadline on Monitor.
    pub monitor_timeout: Option<u64>,
    /// Every pod's times, instead of drawn ones (scenarios shared with the plane).
    pub pod_times: Option<PodTimes>,
    /// The runner could not listen for SIGTERM (its shutdown channel is closed from the start).
    pub no_sigterm_listener: bool,
}

impl Schedule {
    pub fn from_seed(seed: u64) -> Schedule {
        let mut rng = SplitMix::new(seed);
        let count = 1 + rng.below(3) as usize;
        let names = ["pod-delete", "container-kill", "pod-cpu-hog"];
        let experiments: Vec<(String, &'static str)> = names[..count]
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    if rng.below(3) == 0 { "Fail" } else { "Pass" },
                )
            })
            .collect();
        let mut iterations: BTreeMap<String, u32> =
            experiments.iter().map(|(n, _)| (n.clone(), 1)).collect();
        let iterations_annotation = match rng.below(4) {
            0 => {
                let n = 2 + rng.below(2) as u32;
                iterations.values_mut().for_each(|i| *i = n);
                Some(n.to_string())
            }
            1 => {
                let (name, _) = &experiments[rng.below(count as u64) as usize];
                let n = 2 + rng.below(2) as u32;
                iterations.insert(name.clone(), n);
                Some(format!("{name}: {n}"))
            }
            _ => None,
        };
        let max_parallel = match rng.below(3) {
            0 => Some(2 + rng.below(3) as u32),
            _ => None,
        };
        let cleanup_delete = rng.below(4) != 0;
        let poll_mode = rng.below(4) == 0;
        let fault_per_mille = match rng.below(4) {
            0 => 0,
            1 => 20,
            2 => 60,
            _ => 120,
        };
        let crash_count = match rng.below(8) {
            0 | 1 => 0,
            2..=4 => 1,
            5 | 6 => 2,
            _ => 3 + rng.below(3) as usize,
        };
        let crashes = (0..crash_count)
            .map(|_| CrashPoint {
                request: 1 + rng.below(60) as u32,
                after_apply: rng.below(2) == 0,
                overlap: false,
            })
            .collect::<Vec<_>>();
        let abort_after = match rng.below(5) {
            0 => Some(Duration::from_millis(rng.below(240_000))),
            _ => None,
        };
        // Drawn last: the draws above, hence the schedules of older seeds, stay the same.
        let monitor_timeout = (rng.below(4) == 0).then(|| 120 + rng.below(300));
        // One crash in five is a force-deleted runner pod whose process lives on beside the
        // next incarnation (drawn after the rest; `SIM_OVERLAPS=0` leaves them out, for seeds
        // found before they existed).
        let mut crashes = crashes;
        if overlaps_drawn() {
            for crash in &mut crashes {
                crash.overlap = rng.below(5) == 0;
            }
        }
        // From a generator of its own, so the draws above stay as they were; `SIM_LATENCY=0`
        // leaves it out, for seeds found before requests took time.
        let latency_max_ms = match SplitMix::new(seed ^ 0x1a7e_4c11_d3a5_0b0e).below(4) {
            _ if !latency_drawn() => 0,
            0 => 0,
            1 => 5,
            2 => 50,
            _ => 400,
        };
        Schedule {
            seed,
            experiments,
            iterations,
            iterations_annotation,
            max_parallel,
            cleanup_delete,
            poll_mode,
            fault_per_mille,
            latency_max_ms,
            crashes,
            abort_after,
            monitor_timeout,
            pod_times: None,
            no_sigterm_listener: false,
        }
    }

    fn attempts(&self) -> u32 {
        self.iterations.values().sum()
    }

    /// How long the run may take in simulated time: every pod one after the other at its
    /// longest, plus restarts (kubelet back-off up to 5 min each) and slack.
    pub fn bound(&self) -> Duration {
        world::LONGEST_POD * self.attempts()
            + Duration::from_secs(330) * (self.crashes.len() as u32 + 4)
            + Duration::from_secs(600)
    }

    fn engine(&self) -> Value {
        let mut annotations = serde_json::Map::new();
        if let Some(iterations) = &self.iterations_annotation {
            annotations.insert("chaos-runner.io/iterations".into(), json!(iterations));
        }
        if let Some(parallel) = self.max_parallel {
            annotations.insert(
                "chaos-runner.io/max-parallel".into(),
                json!(parallel.to_string()),
            );
        }
        if let Some(seconds) = self.monitor_timeout {
            annotations.insert(
                "chaos-runner.io/monitor-timeout".into(),
                json!(seconds.to_string()),
            );
        }
        let experiments: Vec<Value> = self
            .experiments
            .iter()
            .map(|(name, _)| {
                json!({"name": name, "spec": {"components": {"env": [
                {"name": "TOTAL_CHAOS_DURATION", "value": "30"}]}}})
            })
            .collect();
        json!({
            "apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine",
            "metadata": {"name": ENGINE, "annotations": annotations, "labels": {"app": "sim"},
                         "finalizers": ["chaosengine.litmuschaos.io/finalizer"]},
            "spec": {"engineState": "active", "chaosServiceAccount": "chaos-runner",
                     "jobCleanUpPolicy": if self.cleanup_delete { "delete" } else { "retain" },
                     "appinfo": {"appns": "default", "applabel": "app=nginx", "appkind": "deployment"},
                     "experiments": experiments},
            "status": {"engineStatus": "initialized"},
        })
    }

    fn config(&self) -> RunnerConfig {
        let list: Vec<&str> = self.experiments.iter().map(|(n, _)| n.as_str()).collect();
        let env: BTreeMap<String, String> = [
            ("CHAOSENGINE", ENGINE.to_string()),
            ("CHAOS_NAMESPACE", NAMESPACE.to_string()),
            ("EXPERIMENT_LIST", list.join(",")),
            ("CHAOS_SVC_ACC", "chaos-runner".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        RunnerConfig::from_env(&env).expect("the simulated env is valid")
    }

    /// One line for logs and replays.
    pub fn describe(&self) -> String {
        format!(
            "experiments {:?} iterations {:?} max-parallel {:?} policy {} mode {} faults {}‰ latency ≤ {} ms crashes {:?} abort {:?} monitor-timeout {:?}",
            self.experiments,
            self.iterations_annotation,
            self.max_parallel,
            if self.cleanup_delete {
                "delete"
            } else {
                "retain"
            },
            if self.poll_mode { "poll" } else { "watch" },
            self.fault_per_mille,
            self.latency_max_ms,
            self.crashes
                .iter()
                .map(|c| format!(
                    "{}{}{}",
                    c.request,
                    if c.after_apply { "a" } else { "b" },
                    if c.overlap { " overlapped" } else { "" }
                ))
                .collect::<Vec<_>>(),
            self.abort_after,
            self.monitor_timeout,
        )
    }
}

/// Whether requests take time (`SIM_LATENCY=0`: not).
fn latency_drawn() -> bool {
    std::env::var("SIM_LATENCY").map_or(true, |v| v.trim() != "0")
}

/// Whether schedules draw overlapping runners (`SIM_OVERLAPS=0`: not).
fn overlaps_drawn() -> bool {
    std::env::var("SIM_OVERLAPS").map_or(true, |v| v.trim() != "0")
}

fn experiment_object(name: &str) -> Value {
    json!({
        "apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosExperiment",
        "metadata": {"name": name, "labels": {"name": name, "app.kubernetes.io/part-of": "litmus"}},
        "spec": {"definition": {
            "scope": "Namespaced",
            "image": "litmuschaos/go-runner:3.18.0",
            "imagePullPolicy": "Always",
            "command": ["/bin/bash"],
            "args": ["-c", format!("./experiments -name {name}")],
            "labels": {"name": name, "app.kubernetes.io/component": "experiment-job"},
            "env": [{"name": "TOTAL_CHAOS_DURATION", "value": "30"}],
        }}
    })
}

/// What one schedule did, for the report.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub seed: u64,
    pub problems: Vec<String>,
    /// Crash points reached: `(incarnation, request index, the request)`.
    pub crash_points: Vec<(u32, u32, String)>,
    pub incarnations: u32,
    pub simulated: Duration,
    pub requests: usize,
    pub aborted: bool,
    pub faults: BTreeMap<String, u64>,
    /// Requests refused with 422.
    pub invalid: u64,
    /// What a user sees of the finished run (`None` when it did not finish).
    pub observed: Option<observed::Observed>,
    /// The first incarnation's requests: (its index, the resource).
    pub first_requests: Vec<(u32, String)>,
    /// A hash of the request log: equal when a replay made the same requests at the same times.
    pub fingerprint: u64,
}

/// Runs one schedule to its end on a fresh paused runtime; `verbose` prints the request log.
pub fn run_schedule(seed: u64, verbose: bool) -> Outcome {
    run_given(Schedule::from_seed(seed), verbose)
}

/// Runs `schedule` to its end on a fresh paused runtime.
pub fn run_given(schedule: Schedule, verbose: bool) -> Outcome {
    // backon's retry jitter draws from fastrand's thread-local generator (forked per call):
    // seeded, it replays the same waits.
    fastrand::seed(schedule.seed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(simulate(schedule, verbose))
}

/// The wall time every schedule starts at (2026-01-01T00:00:00Z), plus up to a second drawn
/// from the seed: a replay sees the same timestamps, and schedules still start at every
/// sub-second phase (Kubernetes rounds most timestamps to whole seconds).
fn epoch(seed: u64) -> k8s_openapi::jiff::Timestamp {
    let millis = 1_767_225_600_000 + (seed % 1000) as i64;
    k8s_openapi::jiff::Timestamp::from_millisecond(millis).expect("a valid timestamp")
}

async fn simulate(schedule: Schedule, verbose: bool) -> Outcome {
    chaos_runner::cluster::clock::start_at(epoch(schedule.seed));
    let started = tokio::time::Instant::now();
    let api = FakeApi::new(
        schedule.seed,
        FaultRates {
            per_mille: schedule.fault_per_mille,
            latency_max_ms: schedule.latency_max_ms,
        },
        schedule.poll_mode,
    );
    {
        let mut state = api.lock();
        state
            .create("chaosengines", NAMESPACE, schedule.engine())
            .expect("the engine");
        for (name, _) in &schedule.experiments {
            state
                .create("chaosexperiments", NAMESPACE, experiment_object(name))
                .expect("an experiment");
        }
        for (incarnation, crash) in schedule.crashes.iter().enumerate() {
            state.crashes.insert(incarnation as u32, *crash);
        }
    }
    let behaviours: BTreeMap<String, PodBehaviour> = schedule
        .experiments
        .iter()
        .map(|(n, v)| {
            let behaviour = PodBehaviour {
                verdict: v,
                times: schedule.pod_times,
            };
            (n.clone(), behaviour)
        })
        .collect();
    let world = tokio::spawn(world::run(
        api.clone(),
        schedule.seed,
        ENGINE.to_string(),
        behaviours,
    ));
    let aborter = schedule.abort_after.map(|after| {
        let api = api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let mut state = api.lock();
            state.aborted = true;
            if let Some(mut engine) = state.get("chaosengines", NAMESPACE, ENGINE).cloned() {
                engine["spec"]["engineState"] = json!("stop");
                state.update("chaosengines", NAMESPACE, ENGINE, engine);
            }
        })
    });

    let mut outcome = Outcome {
        seed: schedule.seed,
        ..Default::default()
    };
    let deadline = started + schedule.bound();
    let mut restarts_after_error = 0u32;
    let mut finished = None;
    let mut incarnation = 0u32;
    // Each incarnation's life on the runner's clock (ms): from its start to its end.
    let mut lives: Vec<(u64, u64)> = Vec::new();
    // Incarnations frozen at an overlapping crash point, still running.
    let mut overlapped = Vec::new();
    let mut overlapping = None;
    let mut fenced_during_abort = false;
    loop {
        if incarnation >= 40 {
            outcome
                .problems
                .push(format!("no convergence after {incarnation} incarnations"));
            break;
        }
        let client = api.client(incarnation);
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        // Held as long as the incarnation runs, as the process's signal listener is.
        let shutdown_tx = (!schedule.no_sigterm_listener).then_some(shutdown_tx);
        let mut run = tokio::spawn(chaos_runner::run::driver::run(
            client,
            schedule.config(),
            RunOptions {
                // A process id of its own, the same in a replay.
                process: Some(format!("sim-{incarnation}")),
                ..RunOptions::default()
            },
            shutdown,
        ));
        let crash = api.crash.notified();
        // Alive until its end is known (the last one, to the end of the simulation).
        lives.push((chaos_runner::cluster::clock::now_ms(), u64::MAX));
        tokio::select! {
            // A crash point reached comes first: an overlapped incarnation may also have
            // ended by the time this is polled, and its crash point was earlier.
            biased;
            () = crash => {
                let (inc, what) = api.lock().crashed.last().cloned().unwrap_or_default();
                let point = schedule.crashes.get(inc as usize);
                let nth = point.map_or(0, |c| c.request);
                if point.is_some_and(|c| c.overlap) {
                    // Not killed: it runs on beside the next incarnation.
                    if verbose { eprintln!("incarnation {inc} overlapped at its request {nth}: {what}"); }
                    overlapping = Some(inc);
                } else {
                    if verbose { eprintln!("incarnation {inc} killed at its request {nth}: {what}"); }
                    run.abort();
                    let _ = (&mut run).await;
                }
                outcome.crash_points.push((inc, nth, what));
                // A new container in the same pod, after the kubelet notices (or a new pod).
                let mut rng = SplitMix::new(schedule.seed ^ u64::from(incarnation));
                tokio::time::sleep(Duration::from_millis(200 + rng.below(5000))).await;
            }
            ended = &mut run => {
                api.lock().kill(incarnation);
                match ended {
                    Ok(Ok(end @ RunEnd::Finished { .. })) => { finished = Some(end); break; }
                    Ok(Ok(other)) => {
                        outcome.problems.push(format!("incarnation {incarnation} ended with {other:?}"));
                        break;
                    }
                    Ok(Err(error)) => {
                        if verbose { eprintln!("incarnation {incarnation} exited 1: {error}"); }
                        if api.lock().aborted {
                            let yielded = matches!(
                                error,
                                RunError::Write(WriteError::Replaced { .. } | WriteError::Overtaken(_))
                            );
                            if yielded && !overlapped.is_empty() {
                                // Fenced (or kept overtaken) by a force-deleted runner that runs
                                // on: that one carries the abort to its end (awaited below).
                                fenced_during_abort = true;
                                break;
                            }
                            // Exit 1 during an abort: the operator deletes the runner pod; no
                            // restart would follow.
                            outcome.problems.push(format!("incarnation {incarnation} failed during the abort: {error}"));
                            break;
                        }
                        // The kubelet restarts the container with its back-off (10 s doubling,
                        // at most 5 min).
                        let wait = Duration::from_secs(10 << restarts_after_error.min(5)).min(Duration::from_secs(300));
                        restarts_after_error += 1;
                        tokio::time::sleep(wait).await;
                    }
                    Err(join) => {
                        outcome.problems.push(format!("incarnation {incarnation} panicked: {join}"));
                        break;
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                run.abort();
                outcome.problems.push(format!(
                    "the run did not end within {:?} of simulated time",
                    schedule.bound()
                ));
                break;
            }
        }
        if let Some(life) = lives.last_mut() {
            life.1 = chaos_runner::cluster::clock::now_ms();
        }
        if let Some(inc) = overlapping.take() {
            overlapped.push((inc, run, shutdown_tx));
        }
        incarnation += 1;
    }
    // Every overlapped incarnation stops by itself: fenced by a newer one's write, or done.
    for (inc, run, _shutdown_tx) in overlapped {
        *outcome.faults.entry("Overlapped".into()).or_default() += 1;
        match tokio::time::timeout(Duration::from_secs(3600), run).await {
            Err(_) => outcome.problems.push(format!(
                "overlapped incarnation {inc} still ran an hour after the run ended"
            )),
            Ok(Err(join)) => outcome
                .problems
                .push(format!("overlapped incarnation {inc} panicked: {join}")),
            Ok(Ok(Err(RunError::Write(WriteError::Replaced { .. })))) => {
                *outcome.faults.entry("Fenced".into()).or_default() += 1;
            }
            // The run's end when the operator's runner was fenced during the abort.
            Ok(Ok(Ok(end @ RunEnd::Finished { .. }))) if fenced_during_abort => {
                finished.get_or_insert(end);
            }
            // Done before a newer one wrote, or failed: the checks below judge its writes.
            Ok(Ok(_)) => {}
        }
    }
    if fenced_during_abort && finished.is_none() {
        outcome.problems.push(
            "the newest runner was fenced during the abort and no other runner finished it".into(),
        );
    }
    outcome.incarnations = incarnation + 1;
    outcome.simulated = started.elapsed();
    world.abort();
    if let Some(aborter) = aborter {
        aborter.abort();
    }
    let state = api.lock();
    outcome.aborted = state.aborted;
    outcome.requests = state.log.len();
    outcome.fingerprint = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        for entry in &state.log {
            (entry.at_ms, entry.incarnation, entry.nth, &entry.method).hash(&mut hasher);
            (&entry.resource, &entry.name, entry.code, entry.wrote).hash(&mut hasher);
        }
        hasher.finish()
    };
    outcome.first_requests = state
        .log
        .iter()
        .filter(|entry| entry.incarnation == 0)
        .map(|entry| (entry.nth, entry.resource.clone()))
        .collect();
    outcome.faults.extend(state.faults.clone());
    if verbose {
        for entry in &state.log {
            eprintln!(
                "{:>9} ms  inc {:>2} #{:<3} {:>6} {:<24} {:<40} {}{}",
                entry.at_ms,
                entry.incarnation,
                entry.nth,
                entry.method,
                entry.resource,
                entry.name,
                entry.code,
                if entry.wrote { " wrote" } else { "" }
            );
        }
    }
    // A re-sent JSON patch whose lost answer had been applied is refused as invalid (422): the
    // writer computes it again from a fresh copy, so it is counted, not a problem.
    outcome.invalid = state.invalid.len() as u64;
    if verbose {
        for invalid in &state.invalid {
            eprintln!("refused as invalid: {invalid}");
        }
    }
    if verbose && let Some(engine) = state.get("chaosengines", NAMESPACE, ENGINE) {
        eprintln!(
            "final status: {}",
            engine.get("status").cloned().unwrap_or_default()
        );
        let trail: Vec<String> = engine
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(k, _)| {
                k.starts_with("chaos-runner.io/trail") || k.starts_with("chaos-runner.io/progress")
            })
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        eprintln!("final annotations:\n  {}", trail.join("\n  "));
    }
    if finished.is_some() {
        outcome.observed = state.get("chaosengines", NAMESPACE, ENGINE).map(|engine| {
            let created: Vec<&str> = state.job_creates.keys().map(String::as_str).collect();
            let jobs = state.list("jobs", NAMESPACE);
            let left: Vec<&str> = jobs
                .iter()
                .filter_map(|job| job.pointer("/metadata/name")?.as_str())
                .collect();
            let events: Vec<&Value> = state.list("events", NAMESPACE);
            observed::Observed::of(engine, &events, &created, &left)
        });
        check(&schedule, &state, &mut outcome.problems);
        check_monitor_deadlines(&schedule, &state, &lives, &mut outcome.problems);
    }
    outcome
}

fn check(schedule: &Schedule, state: &api::State, problems: &mut Vec<String>) {
    let aborted = state.aborted;
    let Some(engine) = state.get("chaosengines", NAMESPACE, ENGINE) else {
        problems.push("the engine is gone".into());
        return;
    };
    // One entry per experiment, with its verdict.
    let entries: Vec<&Value> = engine
        .pointer("/status/experiments")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    for (name, verdict) in &schedule.experiments {
        let found: Vec<&&Value> = entries
            .iter()
            .filter(|e| e.get("name").and_then(Value::as_str) == Some(name))
            .collect();
        if found.len() != 1 {
            problems.push(format!("{} entries for {name}", found.len()));
            continue;
        }
        let got = found[0]
            .get("verdict")
            .and_then(Value::as_str)
            .unwrap_or("");
        let status = found[0].get("status").and_then(Value::as_str).unwrap_or("");
        // A user deadline may end an attempt before its verdict: Error, Skipped.
        let cut = schedule.monitor_timeout.is_some() && got == "Error" && status == "Skipped";
        let ok = (got == *verdict && status == "Completed")
            || (aborted && got == "Stopped" && status == "Forcefully Aborted")
            || cut;
        if !ok {
            problems.push(format!(
                "entry of {name}: status {status:?} verdict {got:?}, expected {verdict:?}{}{}",
                if aborted {
                    " (or Stopped, aborted)"
                } else {
                    ""
                },
                if schedule.monitor_timeout.is_some() {
                    " (or Error, Skipped: the deadline)"
                } else {
                    ""
                }
            ));
        }
    }
    if entries.len() != schedule.experiments.len() {
        problems.push(format!(
            "{} entries for {} experiments",
            entries.len(),
            schedule.experiments.len()
        ));
    }
    // Exactly one Job per attempt: each name created once, one name per iteration.
    for (job, creates) in &state.job_creates {
        if *creates != 1 {
            problems.push(format!("Job {job} created {creates} times"));
        }
    }
    for (name, _) in &schedule.experiments {
        let iterations = schedule.iterations.get(name).copied().unwrap_or(1) as usize;
        let jobs = state
            .job_creates
            .keys()
            .filter(|job| job.len() == name.len() + 7 && job.starts_with(&format!("{name}-")))
            .count();
        if jobs > iterations || (!aborted && jobs != iterations) {
            problems.push(format!(
                "{jobs} Jobs created for {name}, {iterations} attempts"
            ));
        }
    }
    // No Job left when they are deleted; after an abort none whose pod has not ended (the
    // attempt in flight is always cleaned up, finished ones follow the policy).
    let pod_ended = |job: &Value| {
        let name = job
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        state.list("pods", NAMESPACE).into_iter().any(|pod| {
            pod.pointer("/metadata/labels/job-name")
                .and_then(Value::as_str)
                == Some(name)
                && pod.pointer("/status/phase").and_then(Value::as_str) == Some("Succeeded")
        })
    };
    // After an abort under the policy retain, only the Jobs of attempts that had ended before
    // it (by the progress the runner recorded) may stay, their pods maybe still running (a
    // user deadline ends an attempt without stopping its pod).
    let ended_before_abort = ended_attempts_jobs(engine);
    if schedule.cleanup_delete || aborted {
        let left: Vec<&Value> = state
            .list("jobs", NAMESPACE)
            .into_iter()
            .filter(|job| {
                let name = job.pointer("/metadata/name").and_then(Value::as_str);
                let kept = match &ended_before_abort {
                    Some(ended) => name.is_some_and(|n| ended.contains(n)),
                    None => pod_ended(job),
                };
                schedule.cleanup_delete || !kept
            })
            .collect();
        if !left.is_empty() {
            let names: Vec<&str> = left
                .iter()
                .filter_map(|j| j.pointer("/metadata/name")?.as_str())
                .collect();
            problems.push(format!("Jobs left: {names:?}"));
        }
    }
    // Every transition of the kept trail has its Event, exactly once.
    let uid = engine
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let annotations: Option<BTreeMap<String, String>> = engine
        .pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok());
    match Ledger::from_annotations(annotations.as_ref()) {
        None => problems.push("no run record in the annotations".into()),
        Some(ledger) => {
            if ledger.trail.is_empty() {
                problems.push("the trail is empty".into());
            }
            for entry in &ledger.trail {
                let key = transition_event_key(&ledger.header.run_id, entry);
                let name = format!("{ENGINE}.{:016x}", fnv1a64(&[uid, &key]));
                match state.get("events", NAMESPACE, &name) {
                    None => problems.push(format!(
                        "no Event for {} {} -> {} ({})",
                        entry.attempt, entry.from, entry.to, entry.reason
                    )),
                    Some(event)
                        if entry.from != PLANNED
                            && event.get("reason").and_then(Value::as_str)
                                != Some(entry.reason.as_str()) =>
                    {
                        problems.push(format!(
                            "Event {name} has another reason than {}",
                            entry.reason
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    for event in state.list("events", NAMESPACE) {
        let count = event.get("count").and_then(Value::as_i64).unwrap_or(1);
        if count > 1 {
            let reason = event.get("reason").and_then(Value::as_str).unwrap_or("");
            problems.push(format!("Event {reason} counted {count} times"));
        }
    }
    // Fencing, by the incarnations the records name (an incarnation is newer when it read the
    // engine later, whatever its process's age): once the engine names a newer runner, an
    // older one writes the engine no more (compare-and-swap), and makes no other write later
    // than FENCE_WINDOW_MS after (its Job creates and deletes confirm ownership when their
    // checkpoint is older than that). Events are left out: each is of a transition already
    // recorded, under a name derived from it, so a late one is the same Event, sent once.
    let replaces = |newer: &(u64, String), older: &(u64, String)| {
        newer.0 > older.0 || (newer.0 == older.0 && newer.1 != older.1)
    };
    let mut current: Option<((u64, String), u64)> = None;
    let mut mine: BTreeMap<u32, (u64, String)> = BTreeMap::new();
    let mut stale = BTreeSet::new();
    for entry in state
        .log
        .iter()
        .filter(|e| e.wrote && e.resource != "events")
    {
        let replaced_since = match (&current, mine.get(&entry.incarnation)) {
            (Some((newest, since)), Some(own)) if replaces(newest, own) => Some(*since),
            _ => None,
        };
        let late = match replaced_since {
            Some(_) if entry.resource == "chaosengines" => true,
            Some(since) => entry.at_ms > since + FENCE_WINDOW_MS,
            None => false,
        };
        if late {
            stale.insert(format!(
                "incarnation {} {} {} {}",
                entry.incarnation, entry.method, entry.resource, entry.name
            ));
        }
        if let Some(record) = &entry.record {
            mine.insert(entry.incarnation, record.clone());
            if current.as_ref().is_none_or(|(newest, _)| newest != record) {
                current = Some((record.clone(), entry.at_ms));
            }
        }
    }
    for write in stale {
        problems.push(format!("write after a newer incarnation wrote: {write}"));
    }
}

/// How long after a newer runner's first write an older one may still create or delete a Job
/// (`CHECKPOINT_FENCES_FOR` in `src/run/attempt.rs`).
const FENCE_WINDOW_MS: u64 = 2_000;

/// How late Monitor may end past the user's deadline while a runner is up and settled.
const DEADLINE_SLACK_MS: u64 = 3_000;
/// How long a runner that starts after the deadline passed may take to act on it (start-up
/// reads under faults and their retries).
const RESUME_SLACK_MS: u64 = 60_000;

/// The user's deadline counts from the Monitor entry, across restarts: every attempt of the
/// kept trail leaves Monitor by entry + deadline, or soon after a runner came up near or after
/// that time. A runner counting from its own start would leave it a deadline after its start.
fn check_monitor_deadlines(
    schedule: &Schedule,
    state: &api::State,
    lives: &[(u64, u64)],
    problems: &mut Vec<String>,
) {
    let Some(seconds) = schedule.monitor_timeout else {
        return;
    };
    let Some(engine) = state.get("chaosengines", NAMESPACE, ENGINE) else {
        return;
    };
    let annotations: Option<BTreeMap<String, String>> = engine
        .pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok());
    let Some(ledger) = Ledger::from_annotations(annotations.as_ref()) else {
        return;
    };
    let ms = |at: &str| {
        at.parse::<k8s_openapi::jiff::Timestamp>()
            .map(|t| t.as_millisecond() as u64)
            .ok()
    };
    let mut entered: BTreeMap<&str, u64> = BTreeMap::new();
    for entry in &ledger.trail {
        let Some(at) = ms(&entry.at) else { continue };
        if entry.to == "Monitor" && entry.from != "Monitor" {
            entered.insert(&entry.attempt, at);
        } else if entry.from == "Monitor"
            && entry.to == "AwaitResult"
            && let Some(&since) = entered.get(entry.attempt.as_str())
        {
            let due = since + seconds * 1000;
            // On time; or decided again by a runner that came up near or after the deadline
            // (the one up at the deadline may have died before its decision was stored).
            let redecided = lives.iter().any(|(born, _)| {
                born + RESUME_SLACK_MS > due && *born <= at && at <= born + RESUME_SLACK_MS
            });
            let allowed = due + DEADLINE_SLACK_MS;
            if at > allowed && !redecided {
                problems.push(format!(
                    "{} left Monitor {} ms after entering it: deadline {seconds} s, and no \
                     runner came up near then",
                    entry.attempt,
                    at - since
                ));
            }
        }
    }
}

/// The Jobs of the attempts the record shows ended with a verdict or skipped (not aborted, not
/// in flight), by name; `None` without a readable record and plan.
fn ended_attempts_jobs(engine: &Value) -> Option<BTreeSet<String>> {
    let uid = engine.pointer("/metadata/uid").and_then(Value::as_str)?;
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(engine.pointer("/metadata/annotations")?.clone()).ok()?;
    let ledger = Ledger::from_annotations(Some(&annotations))?;
    let plan = ledger.header.plan.as_ref()?.resolve().ok()?;
    let scope = format!("{uid}/{}", ledger.header.run_id);
    Some(
        plan.items
            .iter()
            .enumerate()
            .filter(|(position, _)| {
                ledger.progress_of(*position).is_some_and(|p| {
                    matches!(p.mark, Mark::Passed | Mark::NotPassed | Mark::Skipped)
                })
            })
            .map(|(_, item)| job_name(&scope, &item.experiment, None, item.iteration))
            .collect(),
    )
}
