//! One measured run of the runner binary against the local control plane: the runner as a child
//! process, the pod simulator playing the experiment pods, the engine followed with the admin
//! client (every copy's size, each verdict's arrival), the runner's memory sampled from `/proc`,
//! its requests read from the audit log, its per-attempt outcomes from its own final log lines.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject, GetParams, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use podsim::SimEventKind;
use serde_json::Value;
use tokio::sync::watch;

use crate::audit::{self, AuditRequest};
use crate::common::{LitmusKind, RunnerProcess, RunnerSpec, TestNamespace, plane};

/// How long the sampler waits between two reads of `/proc/<pid>/status`.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(20);

/// An experiment of the run, the verdict its simulated pod is scripted to produce, and how many
/// attempts (iterations) of it the plan has.
#[derive(Debug, Clone)]
pub struct Expected {
    pub experiment: String,
    pub verdict: String,
    pub iterations: u32,
}

/// What one run of the runner measured.
#[derive(Debug)]
pub struct RunMeasurement {
    /// The mode line the runner logged (`watch mode…` / `poll mode: …`).
    pub mode_logged: Option<String>,
    /// The exit status, as text, and whether it was 0.
    pub exit: String,
    pub exit_ok: bool,
    /// Process spawn to exit.
    pub wall: Duration,
    /// Per experiment: expected verdict and what the final `status.experiments` entry says:
    /// its verdict when the entry is `Completed` on the last iteration, else
    /// `<status>/<verdict>` (and the iteration it is on) — never equal to an expected verdict.
    pub verdicts: Vec<(Expected, Option<String>)>,
    /// Per attempt (`<experiment>#<iteration>`), the outcome the runner logged at its end
    /// (`experiment finished`, one line per attempt; e.g. `Pass`, `Fail (…)`).
    pub attempt_outcomes: Vec<(String, String)>,
    /// The runner's last `ERROR` log line of its own (message and error), if any.
    pub last_error: Option<String>,
    /// Warning Events on the engine after the run: (reason, message), first seen first, each
    /// reason once — why a run that went wrong went wrong (e.g. `PlanInvalid`).
    pub warnings: Vec<(String, String)>,
    /// Every request the runner's identity made, from the audit log.
    pub requests: Vec<AuditRequest>,
    /// Per experiment: pod completion (podsim) → first engine copy with that entry final.
    pub verdict_latency: Vec<(String, f64)>,
    /// Per experiment: the runner's requests received between its pod's completion and the
    /// arrival of its final verdict (`verb resource`, in order): the verdict's critical path.
    pub verdict_paths: Vec<(String, Vec<String>)>,
    /// Last pod completion → first engine copy with every entry final, in ms.
    pub all_final_after_last_completion_ms: Option<f64>,
    /// Process spawn → first / last `create jobs` answered (audit `stageTimestamp`), in ms.
    pub first_job_ms: Option<f64>,
    pub last_job_ms: Option<f64>,
    /// Requests received while some experiment pod was running, and the seconds that covers.
    pub monitoring: Option<(usize, f64)>,
    /// The last `VmHWM` read before the process exited, in KiB.
    pub peak_rss_kib: Option<u64>,
    /// Spawn → the first and last experiment pod created (by the Job controller; audit log).
    pub pods_created_ms: Option<(f64, f64)>,
    /// Spawn → the first and last pod that podsim bound (saw), wrote Running, wrote terminal
    /// (ms).
    pub pods_bound_ms: Option<(f64, f64)>,
    pub pods_running_ms: Option<(f64, f64)>,
    pub pods_completed_ms: Option<(f64, f64)>,
    /// Spawn → the first engine copy with every entry final (ms).
    pub all_final_ms: Option<f64>,
    /// Sizes in the engine's last copy the admin watch saw: `status.chaosRunner` (JSON) and
    /// the runner's annotations (`run`, `progress-<n>`, `trail-<n>`: keys and values, bytes).
    /// The largest copy of the engine the admin watch delivered during the run (it delivers
    /// every version written, unless it falls behind), as compact JSON (bytes).
    pub engine_peak_bytes: usize,
    /// The body of a GET of the engine after the run (the JSON as the apiserver serves it).
    pub engine_final_bytes: Option<usize>,
    pub record_bytes: usize,
    pub trail_bytes: usize,
}

impl RunMeasurement {
    pub fn verdicts_right(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|(expected, got)| got.as_deref() == Some(expected.verdict.as_str()))
            .count()
    }

    /// The attempts the plan has: every experiment's iterations.
    pub fn attempts_expected(&self) -> usize {
        self.verdicts
            .iter()
            .map(|(expected, _)| expected.iterations as usize)
            .sum()
    }

    /// Attempts whose logged outcome is the verdict their experiment's pod was scripted to
    /// produce (each attempt counted once).
    pub fn attempts_right(&self) -> usize {
        let wanted: BTreeMap<&str, &str> = self
            .verdicts
            .iter()
            .map(|(e, _)| (e.experiment.as_str(), e.verdict.as_str()))
            .collect();
        let right: std::collections::BTreeSet<&str> = self
            .attempt_outcomes
            .iter()
            .filter(|(attempt, outcome)| {
                let experiment = attempt.split('#').next().unwrap_or(attempt);
                let verdict = outcome.split_whitespace().next().unwrap_or_default();
                wanted.get(experiment) == Some(&verdict)
            })
            .map(|(attempt, _)| attempt.as_str())
            .collect();
        right.len()
    }

    /// Every attempt ended with the right verdict, every entry is final and right, exit 0.
    pub fn all_right(&self) -> bool {
        self.exit_ok
            && self.verdicts_right() == self.verdicts.len()
            && self.attempts_right() == self.attempts_expected()
    }

    /// Requests with this verb on this resource (`verb resource`, as [`AuditRequest::kind`]).
    pub fn count(&self, kind: &str) -> usize {
        self.requests.iter().filter(|r| r.kind() == kind).count()
    }
}

/// Runs the runner once in `namespace` (engine, experiments and RBAC already there) and
/// measures it. `expected` lists every experiment of the run.
pub async fn measure_run(
    namespace: &TestNamespace,
    spec: &RunnerSpec,
    expected: &[Expected],
    timeout: Duration,
) -> anyhow::Result<RunMeasurement> {
    let audit_log = plane()?
        .audit_log
        .clone()
        .ok_or_else(|| anyhow!("CHAOS_PLANE_AUDIT_LOG is not set: no audit log to count from"))?;
    let username = runner_username(spec)?;
    let simulator = namespace.start_simulator()?;

    // Follow the engine from before the start, so the first copy with a verdict is seen.
    let engine_log = Arc::new(Mutex::new(EngineLog::default()));
    let (copies_tx, mut copies_rx) = watch::channel(0usize);
    // Stopped when this function returns, also early (a timeout, an error).
    let follower = AbortOnDrop(tokio::spawn(follow_engine(
        namespace.litmus_api(LitmusKind::ChaosEngine),
        spec.engine.clone(),
        expected.to_vec(),
        engine_log.clone(),
        copies_tx,
    )));
    tokio::time::timeout(Duration::from_secs(20), copies_rx.wait_for(|n| *n > 0))
        .await
        .context("the admin watch did not deliver the engine within 20 s")?
        .context("the engine follower stopped")?;

    let audit_from = audit::end_of(&audit_log)?;
    let spawned_at = SystemTime::now();
    let spawned = Instant::now();
    let mut runner = RunnerProcess::spawn(spec)?;
    let (stop_sampler, stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(sample_peak_rss(runner.pid(), stop_rx));

    let exited = runner.wait_timeout(timeout).await;
    let wall = runner.elapsed();
    stop_sampler.send_replace(true);
    let peak_rss_kib = sampler.await.context("the RSS sampler panicked")?;
    let status = match exited {
        Ok(Some(status)) => status,
        Ok(None) => {
            return Err(anyhow!(
                "the runner did not finish within {timeout:?}; log {}:\n{}",
                runner.log_path().display(),
                runner.log_tail(30)
            ));
        }
        Err(error) => return Err(error),
    };

    // The final status may reach the admin watch a moment after the runner has exited.
    let settle = Instant::now() + Duration::from_secs(3);
    while engine_log
        .lock()
        .map_err(|_| anyhow!("engine log poisoned"))?
        .all_final_at
        .is_none()
        && Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(follower);
    let engine_final_bytes = engine_json_bytes(namespace, &spec.engine).await;
    let warnings = warning_events(namespace, &spec.engine).await;
    // The apiserver writes the audit event of a request when it answers; give the last
    // answers a moment to reach the file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = audit::requests_since(&audit_from, &username)?;
    let pod_creations = audit::creations_since(&audit_from, namespace.name(), "pods")?;
    let sim_events = simulator.events();
    simulator.stop().await;
    let engine_log = engine_log
        .lock()
        .map_err(|_| anyhow!("engine log poisoned"))?
        .clone();

    // Experiment → its pod: the entry's experimentPod, else the pod named `<experiment>-…`.
    let entries: BTreeMap<String, &Value> = engine_log
        .last_entries
        .iter()
        .filter_map(|entry| Some((entry["name"].as_str()?.to_owned(), entry)))
        .collect();
    let completed: BTreeMap<&str, (Instant, SystemTime)> = sim_events
        .iter()
        .filter(|e| matches!(e.kind, SimEventKind::Completed { .. }))
        .map(|e| (e.pod.as_str(), (e.instant, e.at)))
        .collect();
    let running: BTreeMap<&str, SystemTime> = sim_events
        .iter()
        .filter(|e| matches!(e.kind, SimEventKind::Running))
        .map(|e| (e.pod.as_str(), e.at))
        .collect();
    let pod_of = |experiment: &str| -> Option<String> {
        let named = entries
            .get(experiment)
            .and_then(|entry| entry["experimentPod"].as_str())
            .filter(|pod| completed.contains_key(pod))
            .map(str::to_owned);
        named.or_else(|| {
            let prefix = format!("{experiment}-");
            completed
                .keys()
                .find(|pod| {
                    pod.strip_prefix(&prefix)
                        .is_some_and(|rest| rest.matches('-').count() == 1)
                })
                .map(|pod| (*pod).to_owned())
        })
    };

    let verdicts = expected
        .iter()
        .map(|e| {
            let got = entries.get(&e.experiment).map(|entry| {
                let verdict = entry["verdict"].as_str().unwrap_or("no verdict");
                let status = entry["status"].as_str().unwrap_or("no status");
                match entry_iteration(entry) {
                    _ if status != "Completed" => format!("{status}/{verdict}"),
                    Some(at) if at < e.iterations => {
                        format!("{status}/{verdict} at iteration {at}/{}", e.iterations)
                    }
                    None if e.iterations > 1 => format!("{status}/{verdict} without iteration"),
                    _ => verdict.to_owned(),
                }
            });
            (e.clone(), got)
        })
        .collect();
    let mut verdict_latency = Vec::new();
    let mut verdict_paths = Vec::new();
    for e in expected {
        let (Some(pod), Some((verdict_instant, verdict_at))) = (
            pod_of(&e.experiment),
            engine_log.first_final.get(&e.experiment),
        ) else {
            continue;
        };
        if let Some((completed_instant, completed_at)) = completed.get(pod.as_str()) {
            verdict_latency.push((
                e.experiment.clone(),
                signed_ms(*verdict_instant, *completed_instant),
            ));
            let mut path: Vec<String> = requests
                .iter()
                .filter(|r| r.received >= *completed_at && r.received <= *verdict_at)
                .map(|r| r.kind())
                .collect();
            // The verdict arrived with the last engine write; later requests only overlapped
            // the watch's delivery.
            if let Some(last_write) = path
                .iter()
                .rposition(|kind| kind == "patch chaosengines.litmuschaos.io")
            {
                path.truncate(last_write + 1);
            }
            verdict_paths.push((e.experiment.clone(), path));
        }
    }
    let last_completion = completed.values().map(|(instant, _)| *instant).max();
    let since_spawn = |at: Option<Instant>| at.map(|at| signed_ms(at, spawned));
    let span = |wanted: fn(&SimEventKind) -> bool| -> Option<(f64, f64)> {
        let times = sim_events
            .iter()
            .filter(|e| wanted(&e.kind))
            .map(|e| e.instant);
        Some((since_spawn(times.clone().min())?, since_spawn(times.max())?))
    };
    let all_final_after_last_completion_ms = match (engine_log.all_final_at, last_completion) {
        (Some(done), Some(last)) => Some(signed_ms(done, last)),
        _ => None,
    };

    let job_times: Vec<f64> = requests
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs.batch")
        .filter_map(|r| r.answered.duration_since(spawned_at).ok())
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    let first_job_ms = job_times.iter().copied().reduce(f64::min);
    let last_job_ms = job_times.iter().copied().reduce(f64::max);

    // Monitoring: the union of the intervals in which a pod was Running (podsim's writes).
    let windows: Vec<(SystemTime, SystemTime)> = running
        .iter()
        .filter_map(|(pod, start)| Some((*start, completed.get(pod)?.1)))
        .collect();
    let monitoring = merged(windows).map(|intervals| {
        let seconds: f64 = intervals
            .iter()
            .filter_map(|(from, to)| to.duration_since(*from).ok())
            .map(|d| d.as_secs_f64())
            .sum();
        let inside = requests
            .iter()
            .filter(|r| {
                intervals
                    .iter()
                    .any(|(from, to)| r.received >= *from && r.received <= *to)
            })
            .count();
        (inside, seconds)
    });

    let output = runner.output();
    Ok(RunMeasurement {
        mode_logged: mode_line(&output),
        attempt_outcomes: attempt_outcomes(&output),
        last_error: last_error(&output),
        warnings,
        exit: status
            .code()
            .map_or_else(|| status.to_string(), |code| code.to_string()),
        exit_ok: status.success(),
        wall,
        verdicts,
        requests,
        verdict_latency,
        verdict_paths,
        all_final_after_last_completion_ms,
        first_job_ms,
        last_job_ms,
        monitoring,
        peak_rss_kib,
        pods_created_ms: {
            let times: Vec<f64> = pod_creations
                .iter()
                .filter_map(|r| r.answered.duration_since(spawned_at).ok())
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect();
            times
                .iter()
                .copied()
                .reduce(f64::min)
                .zip(times.iter().copied().reduce(f64::max))
        },
        pods_bound_ms: span(|k| matches!(k, SimEventKind::Bound { .. })),
        pods_running_ms: span(|k| matches!(k, SimEventKind::Running)),
        pods_completed_ms: span(|k| matches!(k, SimEventKind::Completed { .. })),
        all_final_ms: since_spawn(engine_log.all_final_at),
        engine_peak_bytes: engine_log
            .engine_peak_bytes
            .max(engine_final_bytes.unwrap_or(0)),
        engine_final_bytes,
        record_bytes: engine_log.record_bytes,
        trail_bytes: engine_log.trail_bytes,
    })
}

/// The username the apiserver logs for the runner: the ServiceAccount of its kubeconfig.
fn runner_username(spec: &RunnerSpec) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&spec.kubeconfig)
        .with_context(|| format!("reading {}", spec.kubeconfig.display()))?;
    let kubeconfig: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the JSON kubeconfig", spec.kubeconfig.display()))?;
    kubeconfig["users"][0]["name"]
        .as_str()
        .filter(|name| name.starts_with("system:serviceaccount:"))
        .map(str::to_owned)
        .ok_or_else(|| {
            anyhow!(
                "{}: no ServiceAccount user (expected a kubeconfig from sa_kubeconfig)",
                spec.kubeconfig.display()
            )
        })
}

/// `later - earlier` in milliseconds, negative when `later` came first.
fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(earlier.duration_since(later).as_secs_f64() * 1000.0),
    }
}

/// Merges overlapping intervals; `None` when there are none.
fn merged(mut intervals: Vec<(SystemTime, SystemTime)>) -> Option<Vec<(SystemTime, SystemTime)>> {
    intervals.sort();
    let mut out: Vec<(SystemTime, SystemTime)> = Vec::new();
    for (from, to) in intervals {
        match out.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => out.push((from, to)),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The runner's log line naming its mode: the text from `watch mode` / `poll mode` to the
/// end of that string in the JSON log line.
fn mode_line(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let start = line.find("watch mode").or_else(|| line.find("poll mode"))?;
        let rest = &line[start..];
        let end = rest.find('"').unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    })
}

/// A spawned task that is aborted when this is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The runner's per-attempt outcomes from its JSON log: the `experiment finished` lines it
/// writes at the end of a run (`attempt`, `outcome`).
fn attempt_outcomes(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter(|line| line.contains("experiment finished"))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "experiment finished")
        .filter_map(|line| {
            let fields = &line["fields"];
            Some((
                fields["attempt"].as_str()?.to_owned(),
                fields["outcome"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The runner's last `ERROR` line of its own (target `chaos_runner…`): `message: error`.
fn last_error(output: &str) -> Option<String> {
    output
        .lines()
        .rev()
        .filter(|line| line.contains("\"ERROR\""))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["level"] == "ERROR"
                && line["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("chaos_runner"))
        })
        .map(|line| {
            let fields = &line["fields"];
            let message = fields["message"].as_str().unwrap_or_default();
            match fields["error"].as_str() {
                Some(error) => format!("{message}: {error}"),
                None => message.to_owned(),
            }
        })
}

/// The iteration an entry is on (`iteration`, a field the runner adds with iterations).
fn entry_iteration(entry: &Value) -> Option<u32> {
    entry["iteration"]
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
}

/// The size of the engine's JSON as a GET returns it (what `kubectl get -o json` receives
/// before pretty-printing); `None` when the GET fails.
async fn engine_json_bytes(namespace: &TestNamespace, engine: &str) -> Option<usize> {
    let path = format!(
        "/apis/litmuschaos.io/v1alpha1/namespaces/{}/chaosengines",
        namespace.name()
    );
    let request = kube::core::Request::new(path)
        .get(engine, &GetParams::default())
        .ok()?;
    match namespace.client().request_text(request).await {
        Ok(text) => Some(text.trim_end().len()),
        Err(error) => {
            eprintln!("bench: GET of engine {engine}: {error}");
            None
        }
    }
}

/// The engine's Warning Events (reason, message), oldest first, one per reason.
async fn warning_events(namespace: &TestNamespace, engine: &str) -> Vec<(String, String)> {
    let params = ListParams::default().fields(&format!(
        "involvedObject.name={engine},involvedObject.kind=ChaosEngine,type=Warning"
    ));
    let mut events = match namespace.api::<Event>().list(&params).await {
        Ok(list) => list.items,
        Err(error) => {
            eprintln!("bench: listing the engine's Warning Events: {error}");
            return Vec::new();
        }
    };
    events.sort_by_key(|e| {
        e.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_nanosecond())
    });
    let mut seen = std::collections::BTreeSet::new();
    events
        .into_iter()
        .filter_map(|e| Some((e.reason?, e.message.unwrap_or_default())))
        .filter(|(reason, _)| seen.insert(reason.clone()))
        .collect()
}

/// What the admin watch saw of the engine.
#[derive(Debug, Default, Clone)]
struct EngineLog {
    /// Per experiment: when the first copy with a final verdict arrived.
    first_final: BTreeMap<String, (Instant, SystemTime)>,
    /// When the first copy with every expected entry final arrived.
    all_final_at: Option<Instant>,
    /// `status.experiments` of the last copy.
    last_entries: Vec<Value>,
    /// Sizes in the last copy: the whole object as compact JSON, and the parts of
    /// [`RunMeasurement::record_bytes`] and [`RunMeasurement::trail_bytes`].
    engine_bytes: usize,
    /// The largest copy's size.
    engine_peak_bytes: usize,
    record_bytes: usize,
    trail_bytes: usize,
}

/// A verdict the runner writes only once the experiment is over.
fn is_final(verdict: &str) -> bool {
    matches!(verdict, "Pass" | "Fail" | "Error" | "Stopped")
}

/// Watches one engine with the admin client and timestamps, on arrival, each entry's first final
/// verdict on its last iteration. `copies` counts the copies seen.
async fn follow_engine(
    api: Api<DynamicObject>,
    name: String,
    expected: Vec<Expected>,
    log: Arc<Mutex<EngineLog>>,
    copies: watch::Sender<usize>,
) {
    let last_iteration: BTreeMap<String, u32> = expected
        .iter()
        .map(|e| (e.experiment.clone(), e.iterations))
        .collect();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    while let Some(item) = stream.next().await {
        let arrived = Instant::now();
        let arrived_at = SystemTime::now();
        let engine = match item {
            Ok(engine) => engine,
            Err(error) => {
                eprintln!("bench: watch of engine {name}: {error}; retrying");
                continue;
            }
        };
        let entries: Vec<Value> = engine
            .data
            .get("status")
            .and_then(|s| s.get("experiments"))
            .and_then(|e| e.as_array())
            .cloned()
            .unwrap_or_default();
        let Ok(mut log) = log.lock() else { return };
        let mut final_count = 0;
        for entry in &entries {
            let (Some(experiment), Some(verdict)) =
                (entry["name"].as_str(), entry["verdict"].as_str())
            else {
                continue;
            };
            let last = last_iteration.get(experiment).copied().unwrap_or(1);
            if is_final(verdict) && entry_iteration(entry).unwrap_or(1) >= last {
                final_count += 1;
                log.first_final
                    .entry(experiment.to_owned())
                    .or_insert((arrived, arrived_at));
            }
        }
        if final_count >= last_iteration.len() && log.all_final_at.is_none() {
            log.all_final_at = Some(arrived);
        }
        log.last_entries = entries;
        log.engine_bytes = serde_json::to_string(&engine).map_or(0, |t| t.len());
        log.engine_peak_bytes = log.engine_peak_bytes.max(log.engine_bytes);
        log.record_bytes = engine
            .data
            .get("status")
            .and_then(|s| s.get("chaosRunner"))
            .and_then(|r| serde_json::to_string(r).ok())
            .map_or(0, |t| t.len());
        // The runner's annotations: run header, progress tokens, trail segments.
        log.trail_bytes = engine
            .metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(key, _)| {
                key.as_str() == "chaos-runner.io/run"
                    || key.starts_with("chaos-runner.io/progress-")
                    || key.starts_with("chaos-runner.io/trail-")
            })
            .map(|(key, value)| key.len() + value.len())
            .sum();
        drop(log);
        copies.send_modify(|n| *n += 1);
    }
}

/// Reads `VmHWM` (peak resident set) of `pid` every [`RSS_SAMPLE_INTERVAL`] until told to stop
/// or the process is gone; the last value read is the peak.
async fn sample_peak_rss(pid: u32, mut stop: watch::Receiver<bool>) -> Option<u64> {
    let path = format!("/proc/{pid}/status");
    let mut peak = None;
    loop {
        // A reaped process has no file; a zombie has one without VmHWM: keep the last value.
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Some(kib) = text
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak = Some(kib);
        }
        if *stop.borrow_and_update() {
            return peak;
        }
        tokio::select! {
            _ = tokio::time::sleep(RSS_SAMPLE_INTERVAL) => {}
            _ = stop.changed() => {}
        }
    }
}
