//! The watch loop and the per-pod plays.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::PodsimError;
use crate::error::with_deadline;
use crate::events::{Journal, SimCounters, SimEvent, SimEventKind};
use crate::result::{ResultUpdate, ResultWriter};
use crate::script::{Behaviour, JOB_NAME_LABEL, PodScript};
use crate::status::{self, Exit, NODE_NAME};

/// Namespaces that a simulator of this process plays: two simulators on one namespace would
/// play the same pods twice.
static CLAIMED_NAMESPACES: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// How the simulator behaves where a real cluster could differ.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Bind pods to a fake node (`pods/binding`), so that a delete leaves them `Terminating`
    /// as on a real node, until the simulator force-deletes them. Default: true.
    pub bind_pods: bool,
    /// Node name used for binding. Default: [`NODE_NAME`].
    pub node_name: String,
    /// Deadline of every API call. Default: 10 s.
    pub api_deadline: Duration,
    /// Delay between a pod getting a deletionTimestamp and the force delete, standing in for
    /// the time a real container takes to stop. Default: zero.
    pub termination_delay: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            bind_pods: true,
            node_name: NODE_NAME.to_owned(),
            api_deadline: Duration::from_secs(10),
            termination_delay: Duration::ZERO,
        }
    }
}

/// Entry point: plays every pod with a `job-name` label in one namespace.
pub struct Simulator;

impl Simulator {
    /// Starts a simulator with the default [`SimulatorConfig`]. Needs a tokio runtime.
    pub fn start(client: Client, namespace: &str) -> Result<SimulatorHandle, PodsimError> {
        Simulator::start_with(client, namespace, SimulatorConfig::default())
    }

    /// Starts a simulator with `config`. Fails if this process already simulates `namespace`.
    pub fn start_with(
        client: Client,
        namespace: &str,
        config: SimulatorConfig,
    ) -> Result<SimulatorHandle, PodsimError> {
        let claim = NamespaceClaim::take(namespace)?;
        let journal = Arc::new(Journal::new());
        let context = Arc::new(Context {
            pods: Api::namespaced(client.clone(), namespace),
            results: ResultWriter::new(client, namespace, config.api_deadline),
            config,
            journal: journal.clone(),
        });
        let task = tokio::spawn(watch_pods(context));
        Ok(SimulatorHandle {
            namespace: namespace.to_owned(),
            journal,
            task: Some(task),
            _claim: claim,
        })
    }
}

/// A running simulator. Dropping it (or [`SimulatorHandle::stop`]) ends every play.
pub struct SimulatorHandle {
    namespace: String,
    journal: Arc<Journal>,
    task: Option<JoinHandle<()>>,
    _claim: NamespaceClaim,
}

impl SimulatorHandle {
    /// The namespace this simulator plays.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// What the simulator did so far, counted.
    pub fn counters(&self) -> SimCounters {
        self.journal.counters()
    }

    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<SimEvent> {
        self.journal.events()
    }

    /// The events of one pod, oldest first.
    pub fn events_for(&self, pod: &str) -> Vec<SimEvent> {
        self.journal
            .events()
            .into_iter()
            .filter(|e| e.pod == pod)
            .collect()
    }

    /// Waits until an event (past or future) matches `predicate`; `None` after `timeout`.
    pub async fn wait_for_event(
        &self,
        timeout: Duration,
        predicate: impl Fn(&SimEvent) -> bool,
    ) -> Option<SimEvent> {
        let mut changes = self.journal.subscribe();
        let search = async {
            loop {
                changes.borrow_and_update();
                if let Some(found) = self.journal.events().into_iter().find(|e| predicate(e)) {
                    return Some(found);
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, search).await.ok().flatten()
    }

    /// Waits until more than `seen` events exist, then returns those after the first `seen`
    /// (for following the log as it grows).
    pub async fn events_after(&self, seen: usize) -> Vec<SimEvent> {
        let mut changes = self.journal.subscribe();
        loop {
            let count = *changes.borrow_and_update();
            if count > seen {
                return self.journal.events().into_iter().skip(seen).collect();
            }
            if changes.changed().await.is_err() {
                return Vec::new();
            }
        }
    }

    /// Stops the simulator and waits until its tasks are gone.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // An aborted task answers with a cancellation error: that is the expected end.
            let _ = task.await;
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Holds a namespace in [`CLAIMED_NAMESPACES`] while the simulator lives.
struct NamespaceClaim(String);

impl NamespaceClaim {
    fn take(namespace: &str) -> Result<Self, PodsimError> {
        let mut claimed = CLAIMED_NAMESPACES.lock().unwrap_or_else(|p| p.into_inner());
        if !claimed
            .get_or_insert_with(HashSet::new)
            .insert(namespace.to_owned())
        {
            return Err(PodsimError::AlreadyRunning {
                namespace: namespace.to_owned(),
            });
        }
        Ok(NamespaceClaim(namespace.to_owned()))
    }
}

impl Drop for NamespaceClaim {
    fn drop(&mut self) {
        let mut claimed = CLAIMED_NAMESPACES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = claimed.as_mut() {
            set.remove(&self.0);
        }
    }
}

struct Context {
    pods: Api<Pod>,
    results: ResultWriter,
    config: SimulatorConfig,
    journal: Arc<Journal>,
}

/// What the watch loop remembers of a pod it has seen.
#[derive(Default)]
struct Tracked {
    /// The pod's play began (or the pod was terminal when first seen): never play it again.
    started: bool,
    play: Option<AbortHandle>,
    force_deleted: bool,
}

async fn watch_pods(context: Arc<Context>) {
    let config = watcher::Config::default().labels(JOB_NAME_LABEL);
    let mut stream = watcher(context.pods.clone(), config)
        .default_backoff()
        .boxed();
    // Dropping the JoinSet (when this task is aborted) aborts every play with it.
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    loop {
        tokio::select! {
            event = stream.next() => match event {
                None => return,
                Some(Err(err)) => tracing::warn!(error = %err, "pod watch failed; retrying"),
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                    on_pod(&context, &mut tasks, &mut tracked, pod);
                }
                Some(Ok(watcher::Event::Delete(pod))) => {
                    if let Some(gone) = pod.metadata.uid.and_then(|uid| tracked.remove(&uid))
                        && let Some(play) = gone.play
                    {
                        play.abort();
                    }
                }
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

fn on_pod(
    context: &Arc<Context>,
    tasks: &mut JoinSet<()>,
    tracked: &mut HashMap<String, Tracked>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let entry = tracked.entry(uid).or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        // A real kubelet stops the containers, then removes the pod with grace 0.
        if let Some(play) = entry.play.take() {
            play.abort();
        }
        let already_forced = pod.metadata.deletion_grace_period_seconds == Some(0);
        if !entry.force_deleted && !already_forced {
            entry.force_deleted = true;
            tasks.spawn(force_delete(context.clone(), pod));
        }
        return;
    }
    if entry.started {
        return;
    }
    entry.started = true;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        // Played to the end before (maybe by an earlier simulator): leave it alone.
        return;
    }
    entry.play = Some(tasks.spawn(play(context.clone(), pod)));
}

async fn force_delete(context: Arc<Context>, pod: Pod) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    tokio::time::sleep(context.config.termination_delay).await;
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let outcome = with_deadline(
        "force-delete pod",
        &name,
        context.config.api_deadline,
        || context.pods.delete(&name, &params),
    )
    .await;
    match outcome {
        Ok(_) => context.journal.record(&name, SimEventKind::ForceDeleted),
        // Gone already, or replaced by a pod of the same name: nothing left to do.
        Err(err) if matches!(err.api_status(), Some(404 | 409)) => {}
        Err(err) => context.journal.record(
            &name,
            SimEventKind::Failed {
                reason: err.to_string(),
            },
        ),
    }
}

async fn play(context: Arc<Context>, pod: Pod) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let script = match PodScript::from_pod(&pod) {
        Ok(Some(script)) => script,
        Ok(None) => return,
        Err(err) => {
            context.journal.record(
                &name,
                SimEventKind::Rejected {
                    reason: err.to_string(),
                },
            );
            return;
        }
    };
    context
        .journal
        .pods_played
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Err(err) = play_script(&context, &pod, &script).await {
        context.journal.record(
            &name,
            SimEventKind::Failed {
                reason: err.to_string(),
            },
        );
    }
}

async fn play_script(context: &Context, pod: &Pod, script: &PodScript) -> Result<(), PodsimError> {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    match script.behaviour {
        Behaviour::Pending => {
            patch_status(context, script, &status::unschedulable(&now())).await?;
            context
                .journal
                .record(&script.pod, SimEventKind::Unschedulable);
            return Ok(());
        }
        Behaviour::ImagePull => {
            bind(context, pod, script).await?;
            let since = status
                .and_then(|s| s.start_time.as_ref())
                .map(|t| format_time(t.0))
                .unwrap_or_else(now);
            let backing_off = status
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
                .any(|reason| reason == "ImagePullBackOff");
            if !backing_off {
                image_pull_failing(context, script, "ErrImagePull", &since).await?;
                tokio::time::sleep(script.duration).await;
            }
            image_pull_failing(context, script, "ImagePullBackOff", &since).await?;
            return Ok(());
        }
        Behaviour::Pass
        | Behaviour::Fail
        | Behaviour::Error
        | Behaviour::Hang
        | Behaviour::Crash => {}
    }

    bind(context, pod, script).await?;
    let resumed_start = match phase {
        Some("Running") => status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
        _ => None,
    };
    let (started_at, remaining) = match resumed_start {
        Some(start) => {
            context.journal.record(&script.pod, SimEventKind::Resumed);
            let elapsed = jiff::Timestamp::now().duration_since(start);
            let elapsed = Duration::try_from(elapsed).unwrap_or_default();
            (format_time(start), script.duration.saturating_sub(elapsed))
        }
        None => {
            let started_at = now();
            patch_status(context, script, &status::running(script, &started_at)).await?;
            context.journal.record(&script.pod, SimEventKind::Running);
            if script.behaviour.writes_result() {
                write_result(context, script, ResultUpdate::Started).await?;
            }
            (started_at, script.duration)
        }
    };
    if script.behaviour == Behaviour::Hang {
        return Ok(());
    }
    tokio::time::sleep(remaining).await;

    let main_exit = match script.behaviour {
        Behaviour::Pass => {
            write_result(context, script, ResultUpdate::Passed).await?;
            Exit::COMPLETED
        }
        Behaviour::Fail => {
            let update = ResultUpdate::Failed {
                error_code: script.error_code.clone(),
                reason: script.error_reason.clone(),
            };
            write_result(context, script, update).await?;
            // A Litmus experiment that reaches a Fail verdict still exits 0.
            Exit::COMPLETED
        }
        Behaviour::Error => {
            let update = ResultUpdate::Errored {
                error_code: script.error_code.clone(),
                reason: script.error_reason.clone(),
            };
            write_result(context, script, update).await?;
            Exit::ERROR
        }
        _ => Exit::OOM_KILLED,
    };
    let terminal = status::terminated(script, &started_at, &now(), main_exit);
    patch_status(context, script, &terminal).await?;
    let phase = terminal["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    context.journal.record(
        &script.pod,
        SimEventKind::Completed {
            phase,
            main_exit_code: main_exit.code,
        },
    );
    Ok(())
}

async fn bind(context: &Context, pod: &Pod, script: &PodScript) -> Result<(), PodsimError> {
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some();
    if !context.config.bind_pods || bound {
        return Ok(());
    }
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": script.pod, "uid": script.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": context.config.node_name},
    });
    let post = PostParams::default();
    let outcome = with_deadline("bind pod", &script.pod, context.config.api_deadline, || {
        context
            .pods
            .create_subresource::<_, Value>("binding", &script.pod, &post, &binding)
    })
    .await;
    match outcome {
        Ok(_) => {
            context.journal.record(
                &script.pod,
                SimEventKind::Bound {
                    node: context.config.node_name.clone(),
                },
            );
            Ok(())
        }
        // Already bound (an earlier simulator did it): fine.
        Err(err) if err.api_status() == Some(409) => Ok(()),
        Err(err) => Err(err),
    }
}

async fn image_pull_failing(
    context: &Context,
    script: &PodScript,
    reason: &str,
    since: &str,
) -> Result<(), PodsimError> {
    patch_status(
        context,
        script,
        &status::image_pull_failing(script, reason, since),
    )
    .await?;
    context.journal.record(
        &script.pod,
        SimEventKind::ImagePullFailing {
            reason: reason.to_owned(),
        },
    );
    Ok(())
}

async fn patch_status(
    context: &Context,
    script: &PodScript,
    patch: &Value,
) -> Result<(), PodsimError> {
    let (params, merge) = (PatchParams::default(), Patch::Merge(patch));
    with_deadline(
        "patch pod status",
        &script.pod,
        context.config.api_deadline,
        || context.pods.patch_status(&script.pod, &params, &merge),
    )
    .await?;
    Ok(())
}

async fn write_result(
    context: &Context,
    script: &PodScript,
    update: ResultUpdate,
) -> Result<(), PodsimError> {
    let Some(target) = &script.result else {
        tracing::warn!(
            pod = %script.pod,
            "no ChaosResult written: the main container sets no CHAOSENGINE/EXPERIMENT_NAME"
        );
        return Ok(());
    };
    context.results.write(target, &update).await?;
    let (phase, verdict) = update.phase_and_verdict();
    context.journal.record(
        &script.pod,
        SimEventKind::ResultWritten {
            result: target.name.clone(),
            phase: phase.to_owned(),
            verdict: verdict.to_owned(),
        },
    );
    Ok(())
}

/// RFC 3339 at whole seconds, as Kubernetes serialises times.
fn format_time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn now() -> String {
    format_time(jiff::Timestamp::now())
}
