//! A node for the runner pods: no kubelet and no container runtime run here, so [`Node`] plays
//! the kubelet for the pods the chaos-operator creates (`<engine>-runner`, label
//! `app.kubernetes.io/component=chaos-runner`, one container named `chaos-runner`) and runs the
//! container as a local process of this project's `chaos-runner` binary (the image's
//! ENTRYPOINT), with the container's env and a kubeconfig holding a TokenRequest token of the
//! pod's ServiceAccount, bound to the pod as a kubelet's projected token is. It reports back as
//! a kubelet does: binding, `Running` with the container ready, `terminated` on exit, restarts
//! per `restartPolicy` (`OnFailure`: non-zero exits restart in the same pod, `restartCount` + 1,
//! `lastState.terminated`), and on deletion SIGTERM, the pod's grace period, SIGKILL, the final
//! status, then the delete with grace 0 that lets the pod go.
//!
//! The experiment pods (label `job-name`) stay with the pod simulator (`podsim`), which
//! selects only those; this node selects only the runner pods and skips any with `job-name`.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use futures::StreamExt;
use k8s_openapi::api::authentication::v1::BoundObjectReference;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::operator::RUNNER_IMAGE;
use super::{files_dir, runner_binary, token_kubeconfig};

/// The label selector of the pods this node runs.
pub const RUNNER_POD_SELECTOR: &str = "app.kubernetes.io/component=chaos-runner";
/// The one container of a runner pod.
pub const RUNNER_CONTAINER: &str = "chaos-runner";
/// The image's ENTRYPOINT (`Dockerfile`): a container `command` naming it runs the binary.
const ENTRYPOINT: &str = "/chaos-runner";
/// Host IP reported for the node's pods (TEST-NET-1, as podsim's).
const HOST_IP: &str = podsim::HOST_IP;

/// How the node runs pods.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// What the image runs: this build's `chaos-runner` (or `CHAOS_RUNNER_BIN`).
    pub binary: PathBuf,
    /// The image reference that means [`NodeConfig::binary`]; a pod with another image is left
    /// waiting with `ErrImageNeverPull` (this node pulls nothing).
    pub image: String,
    /// Node name the pods are bound to.
    pub node_name: String,
    /// Pause before a failed container is restarted (a kubelet's back-off starts at 10 s).
    pub restart_delay: Duration,
    /// Deadline of every API call.
    pub api_deadline: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            binary: runner_binary(),
            image: RUNNER_IMAGE.to_owned(),
            node_name: podsim::NODE_NAME.to_owned(),
            restart_delay: Duration::from_secs(1),
            api_deadline: Duration::from_secs(10),
        }
    }
}

/// What the node did to a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEventKind {
    /// Bound to the node (`pods/binding`).
    Bound,
    /// The container's process started (status `Running`, ready, written after it).
    Started {
        restart_count: i32,
        pid: u32,
        log: PathBuf,
    },
    /// The process ended by itself or by a signal: the code a kubelet reports (128 + signal
    /// for a signal).
    Exited { restart_count: i32, code: i32 },
    /// The pod got a deletionTimestamp: SIGTERM sent if the process ran.
    Terminating { grace_seconds: i64, running: bool },
    /// The grace period ran out: SIGKILL.
    Killed,
    /// The pod was deleted with grace 0 by the node, after its final status.
    Removed,
    /// The pod cannot be run here (image, env, command); it stays waiting.
    Rejected { reason: String },
    /// An API call failed.
    Failed { reason: String },
}

/// A [`NodeEventKind`] with its pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    pub pod: String,
    pub uid: String,
    pub kind: NodeEventKind,
    pub at: Instant,
}

impl std::fmt::Display for NodeEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uid: String = self.uid.chars().take(8).collect();
        write!(f, "{} ({uid}): {:?}", self.pod, self.kind)
    }
}

struct Journal {
    events: Mutex<Vec<NodeEvent>>,
    changes: watch::Sender<usize>,
}

impl Journal {
    fn new() -> Journal {
        Journal {
            events: Mutex::new(Vec::new()),
            changes: watch::channel(0).0,
        }
    }

    fn record(&self, pod: &str, uid: &str, kind: NodeEventKind) {
        let count = {
            let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
            events.push(NodeEvent {
                pod: pod.to_owned(),
                uid: uid.to_owned(),
                kind,
                at: Instant::now(),
            });
            events.len()
        };
        self.changes.send_replace(count);
    }

    fn events(&self) -> Vec<NodeEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn subscribe(&self) -> watch::Receiver<usize> {
        self.changes.subscribe()
    }
}

/// A running node on one namespace. Dropping it kills every process it started (SIGKILL).
pub struct Node {
    namespace: String,
    journal: Arc<Journal>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        // Aborting drops the pod tasks, and with them the children (kill_on_drop).
        self.task.abort();
    }
}

impl Node {
    /// Starts the node on `namespace` (needs a tokio runtime).
    pub fn start(client: Client, namespace: &str, config: NodeConfig) -> Node {
        let journal = Arc::new(Journal::new());
        let context = Arc::new(Context {
            pods: Api::namespaced(client.clone(), namespace),
            client,
            namespace: namespace.to_owned(),
            config,
            journal: journal.clone(),
        });
        Node {
            namespace: namespace.to_owned(),
            journal,
            task: tokio::spawn(watch_pods(context)),
        }
    }

    /// The namespace it runs.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Everything it did so far, oldest first.
    pub fn events(&self) -> Vec<NodeEvent> {
        self.journal.events()
    }

    /// The events of pod object `uid`.
    pub fn events_of_uid(&self, uid: &str) -> Vec<NodeEvent> {
        self.events().into_iter().filter(|e| e.uid == uid).collect()
    }

    /// Waits until an event (past or future) matches; `None` after `timeout`.
    pub async fn wait_for_event(
        &self,
        timeout: Duration,
        predicate: impl Fn(&NodeEvent) -> bool,
    ) -> Option<NodeEvent> {
        let mut changes = self.journal.subscribe();
        let search = async {
            loop {
                changes.borrow_and_update();
                if let Some(found) = self.events().into_iter().find(|e| predicate(e)) {
                    return Some(found);
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, search).await.ok().flatten()
    }

    /// The log files of every process started, in start order.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.kind {
                NodeEventKind::Started { log, .. } => Some(log),
                _ => None,
            })
            .collect()
    }

    /// The output of the `index`-th process started (0-based).
    pub fn output(&self, index: usize) -> Option<String> {
        let path = self.logs().into_iter().nth(index)?;
        Some(fs::read_to_string(&path).unwrap_or_else(|e| format!("<{}: {e}>", path.display())))
    }

    /// For error messages: the node's events, then the last `lines` lines of every process.
    pub fn report(&self, lines: usize) -> String {
        let mut text = String::from("node events:\n");
        for event in self.events() {
            text.push_str(&format!("  {event}\n"));
        }
        for path in self.logs() {
            let output = fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = output.lines().collect();
            text.push_str(&format!("==> {} <==\n", path.display()));
            text.push_str(&all[all.len().saturating_sub(lines)..].join("\n"));
            text.push('\n');
        }
        text
    }
}

struct Context {
    client: Client,
    pods: Api<Pod>,
    namespace: String,
    config: NodeConfig,
    journal: Arc<Journal>,
}

impl Context {
    fn record(&self, pod: &Pod, kind: NodeEventKind) {
        self.journal
            .record(&pod.name_any(), &pod.uid().unwrap_or_default(), kind);
    }
}

/// The pod as last seen by the watch; `None` once it is gone.
type PodUpdates = watch::Receiver<Option<Pod>>;

async fn watch_pods(context: Arc<Context>) {
    let config = watcher::Config::default().labels(RUNNER_POD_SELECTOR);
    let mut stream = watcher(context.pods.clone(), config)
        .default_backoff()
        .boxed();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut pods: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    loop {
        tokio::select! {
            event = stream.next() => match event {
                None => return,
                Some(Err(err)) => eprintln!("node {}: pod watch failed, retrying: {err}", context.namespace),
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                    let Some(uid) = pod.uid() else { continue };
                    if let Some(updates) = pods.get(&uid) {
                        updates.send_replace(Some(pod));
                    } else if runs_here(&pod) {
                        let (sender, receiver) = watch::channel(Some(pod.clone()));
                        pods.insert(uid, sender);
                        tasks.spawn(run_pod(context.clone(), pod, receiver));
                    }
                }
                Some(Ok(watcher::Event::Delete(pod))) => {
                    if let Some(updates) = pod.uid().and_then(|uid| pods.remove(&uid)) {
                        updates.send_replace(None);
                    }
                }
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// A runner pod: the container `chaos-runner`, and not an experiment pod (podsim's).
fn runs_here(pod: &Pod) -> bool {
    !pod.labels().contains_key(podsim::JOB_NAME_LABEL) && runner_container(pod).is_some()
}

fn runner_container(pod: &Pod) -> Option<&Container> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == RUNNER_CONTAINER)
}

/// Whether the pod is being deleted (or gone), and its grace period.
fn deletion(updates: &PodUpdates) -> Option<i64> {
    match updates.borrow().as_ref() {
        None => Some(spec_grace(None)),
        Some(pod) if pod.metadata.deletion_timestamp.is_some() => Some(
            pod.metadata
                .deletion_grace_period_seconds
                .unwrap_or_else(|| spec_grace(Some(pod))),
        ),
        Some(_) => None,
    }
}

fn spec_grace(pod: Option<&Pod>) -> i64 {
    pod.and_then(|p| p.spec.as_ref())
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
}

/// Resolves when the pod is being deleted or gone; its grace period.
async fn deletion_requested(updates: &mut PodUpdates) -> i64 {
    loop {
        if let Some(grace) = deletion(updates) {
            return grace;
        }
        if updates.changed().await.is_err() {
            return spec_grace(None);
        }
    }
}

/// The whole life of one pod on the node.
async fn run_pod(context: Arc<Context>, pod: Pod, mut updates: PodUpdates) {
    if let Err(err) = play(&context, &pod, &mut updates).await {
        context.record(
            &pod,
            NodeEventKind::Failed {
                reason: format!("{err:#}"),
            },
        );
        // Whatever went wrong, a deleted pod must still go away.
        deletion_requested(&mut updates).await;
        let _ = remove(&context, &pod, &updates).await;
    }
}

/// One process of the container: what a kubelet knows of it.
struct Run {
    child: tokio::process::Child,
    started_at: String,
    container_id: String,
}

/// How a run ended, for `state.terminated` / `lastState.terminated`.
#[derive(Clone)]
struct Ended {
    code: i32,
    started_at: String,
    finished_at: String,
    container_id: String,
}

impl Ended {
    fn terminated(&self) -> Value {
        json!({
            "exitCode": self.code,
            "reason": if self.code == 0 { "Completed" } else { "Error" },
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        })
    }
}

async fn play(context: &Context, pod: &Pod, updates: &mut PodUpdates) -> anyhow::Result<()> {
    let name = pod.name_any();
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if deletion(updates).is_some() || matches!(phase, Some("Succeeded" | "Failed")) {
        // Deleted before it ran, or run to its end before this node started.
        deletion_requested(updates).await;
        return remove(context, pod, updates).await;
    }
    bind(context, pod).await?;
    let container = runner_container(pod).ok_or_else(|| anyhow!("no container"))?;
    let pod_start = now();
    let prepared = match prepare(context, pod, container).await {
        Ok(prepared) => prepared,
        Err(Rejection { reason, message }) => {
            context.record(
                pod,
                NodeEventKind::Rejected {
                    reason: format!("{reason}: {message}"),
                },
            );
            let waiting = json!({"waiting": {"reason": reason, "message": message}});
            patch_status(
                context,
                &name,
                &status(
                    pod,
                    "Pending",
                    &pod_start,
                    Reported {
                        ready: false,
                        restart_count: 0,
                        container_id: None,
                        state: waiting,
                        last_state: json!({}),
                    },
                ),
            )
            .await?;
            deletion_requested(updates).await;
            return remove(context, pod, updates).await;
        }
    };
    let restart_policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".to_owned());
    let mut restart_count = 0;
    let mut last_state = json!({});
    loop {
        let mut run = start(context, pod, &prepared, restart_count).await?;
        let running = json!({"running": {"startedAt": run.started_at}});
        patch_status(
            context,
            &name,
            &status(
                pod,
                "Running",
                &pod_start,
                Reported {
                    ready: true,
                    restart_count,
                    container_id: Some(&run.container_id),
                    state: running,
                    last_state: last_state.clone(),
                },
            ),
        )
        .await?;
        let deleting = tokio::select! {
            exit = run.child.wait() => Err(exit?),
            grace = deletion_requested(updates) => Ok(grace),
        };
        let (exit, deleting) = match deleting {
            Err(exit) => (exit, false),
            Ok(grace) => (stop(context, pod, &mut run, grace).await?, true),
        };
        let ended = Ended {
            code: exit_code(exit),
            started_at: run.started_at.clone(),
            finished_at: now(),
            container_id: run.container_id.clone(),
        };
        context.record(
            pod,
            NodeEventKind::Exited {
                restart_count,
                code: ended.code,
            },
        );
        let restarts = match restart_policy.as_str() {
            "Always" => true,
            "OnFailure" => ended.code != 0,
            _ => false,
        };
        let terminal = deleting || deletion(updates).is_some() || !restarts;
        // A kubelet puts a pod whose containers will not run again in a terminal phase.
        let phase = match (terminal, ended.code) {
            (false, _) => "Running",
            (true, 0) => "Succeeded",
            (true, _) => "Failed",
        };
        let state = json!({"terminated": ended.terminated()});
        patch_status(
            context,
            &name,
            &status(
                pod,
                phase,
                &pod_start,
                Reported {
                    ready: false,
                    restart_count,
                    container_id: Some(&ended.container_id),
                    state,
                    last_state: last_state.clone(),
                },
            ),
        )
        .await?;
        if terminal {
            deletion_requested(updates).await;
            return remove(context, pod, updates).await;
        }
        tokio::select! {
            () = tokio::time::sleep(context.config.restart_delay) => {}
            _ = deletion_requested(updates) => return remove(context, pod, updates).await,
        }
        restart_count += 1;
        last_state = json!({"terminated": ended.terminated()});
    }
}

/// A pod the node cannot run: the container's waiting reason and message.
struct Rejection {
    reason: &'static str,
    message: String,
}

/// What every start of the container uses.
struct Prepared {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

async fn prepare(
    context: &Context,
    pod: &Pod,
    container: &Container,
) -> Result<Prepared, Rejection> {
    let image = container.image.clone().unwrap_or_default();
    if image != context.config.image {
        return Err(Rejection {
            reason: "ErrImageNeverPull",
            message: format!(
                "this node runs only image {:?} (the chaos-runner binary), not {image:?}",
                context.config.image
            ),
        });
    }
    let mut argv = Vec::new();
    if let Some(command) = container.command.as_ref().filter(|c| !c.is_empty()) {
        if command[0] != ENTRYPOINT && command[0] != RUNNER_CONTAINER {
            return Err(Rejection {
                reason: "RunContainerError",
                message: format!(
                    "this node runs only the image's {ENTRYPOINT}, not command {command:?}"
                ),
            });
        }
        argv.extend(command[1..].iter().cloned());
    }
    argv.extend(container.args.iter().flatten().cloned());
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(Rejection {
            reason: "CreateContainerConfigError",
            message: "envFrom is not supported by this node".to_owned(),
        });
    }
    let mut env = Vec::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => field_value(pod, from).map_err(|message| Rejection {
                reason: "CreateContainerConfigError",
                message: format!("env {}: {message}", var.name),
            })?,
            (value, None) => value.clone().unwrap_or_default(),
        };
        env.push((var.name.clone(), value));
    }
    let service_account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_owned());
    let uid = pod.uid().unwrap_or_default();
    let bound = BoundObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Pod".to_owned()),
        name: Some(pod.name_any()),
        uid: Some(uid.clone()),
    };
    let kubeconfig = token_kubeconfig(
        &context.client,
        &context.namespace,
        &service_account,
        Some(bound),
        &format!("node-{}-{}.kubeconfig", pod.name_any(), short(&uid)),
    )
    .await
    .map_err(|err| Rejection {
        reason: "CreateContainerConfigError",
        message: format!("token of ServiceAccount {service_account}: {err:#}"),
    })?;
    env.push(("KUBECONFIG".to_owned(), kubeconfig.display().to_string()));
    Ok(Prepared { argv, env })
}

/// The downward API values a runner pod could name.
fn field_value(
    pod: &Pod,
    from: &k8s_openapi::api::core::v1::EnvVarSource,
) -> Result<String, String> {
    let Some(field) = &from.field_ref else {
        return Err("only fieldRef is supported by this node".to_owned());
    };
    let spec = pod.spec.as_ref();
    Ok(match field.field_path.as_str() {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.uid().unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "status.hostIP" => HOST_IP.to_owned(),
        other => return Err(format!("fieldRef {other} is not supported by this node")),
    })
}

/// Starts the process: only the container's env (plus `PATH`, `HOSTNAME`, `RUST_LOG` and
/// `RUST_BACKTRACE` when set, and `KUBECONFIG` in place of the in-cluster config).
async fn start(
    context: &Context,
    pod: &Pod,
    prepared: &Prepared,
    restart_count: i32,
) -> anyhow::Result<Run> {
    static STARTS: AtomicU64 = AtomicU64::new(0);
    let name = pod.name_any();
    let uid = pod.uid().unwrap_or_default();
    let dir = files_dir(&context.namespace);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join(format!("node-{name}-{}-{restart_count}.log", short(&uid)));
    let stdout = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let stderr = stdout.try_clone()?;
    let mut command = tokio::process::Command::new(&context.config.binary);
    command
        .env_clear()
        .args(&prepared.argv)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    for inherited in ["PATH", "RUST_LOG", "RUST_BACKTRACE"] {
        if let Some(value) = std::env::var_os(inherited) {
            command.env(inherited, value);
        }
    }
    command.env("HOSTNAME", &name);
    command.envs(prepared.env.iter().cloned());
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", context.config.binary.display()))?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("the process exited before its pid could be read"))?;
    let sequence = STARTS.fetch_add(1, Ordering::Relaxed);
    context.record(
        pod,
        NodeEventKind::Started {
            restart_count,
            pid,
            log,
        },
    );
    Ok(Run {
        child,
        started_at: now(),
        container_id: format!("node://{}-{pid}-{sequence}", short(&uid)),
    })
}

/// SIGTERM, up to `grace` seconds, then SIGKILL; the exit.
async fn stop(
    context: &Context,
    pod: &Pod,
    run: &mut Run,
    grace: i64,
) -> anyhow::Result<ExitStatus> {
    context.record(
        pod,
        NodeEventKind::Terminating {
            grace_seconds: grace,
            running: true,
        },
    );
    if let Some(pid) = run.child.id() {
        // kill(1): the same way the tests signal the runner (no libc binding here).
        let _ = std::process::Command::new("kill")
            .args(["-s", "TERM", &pid.to_string()])
            .status();
    }
    let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
    match tokio::time::timeout(grace, run.child.wait()).await {
        Ok(exit) => Ok(exit?),
        Err(_) => {
            context.record(pod, NodeEventKind::Killed);
            run.child.start_kill()?;
            Ok(run.child.wait().await?)
        }
    }
}

/// The code a kubelet reports: the exit code, or 128 + the signal that ended the process.
fn exit_code(exit: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    exit.code()
        .or_else(|| exit.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// The pod is done on this node: delete it with grace 0 (if it still exists), so it goes.
async fn remove(context: &Context, pod: &Pod, updates: &PodUpdates) -> anyhow::Result<()> {
    if updates.borrow().is_none() {
        return Ok(()); // already gone
    }
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let name = pod.name_any();
    let outcome = tokio::time::timeout(
        context.config.api_deadline,
        context.pods.delete(&name, &params),
    )
    .await
    .map_err(|_| anyhow!("deleting pod {name}: no answer within the deadline"))?;
    match outcome {
        Ok(_) => {
            context.record(pod, NodeEventKind::Removed);
            Ok(())
        }
        // Gone already, or a new pod of the same name (another uid): nothing to do.
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(err) => Err(anyhow!(err).context(format!("deleting pod {name}"))),
    }
}

async fn bind(context: &Context, pod: &Pod) -> anyhow::Result<()> {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some()
    {
        return Ok(());
    }
    let name = pod.name_any();
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "uid": pod.uid()},
        "target": {"apiVersion": "v1", "kind": "Node", "name": context.config.node_name},
    });
    let outcome = tokio::time::timeout(
        context.config.api_deadline,
        context.pods.create_subresource::<_, Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        ),
    )
    .await
    .map_err(|_| anyhow!("binding pod {name}: no answer within the deadline"))?;
    match outcome {
        Ok(_) => {
            context.record(pod, NodeEventKind::Bound);
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => bail!("binding pod {name}: {err}"),
    }
}

/// What the node reports of the one container.
struct Reported<'a> {
    ready: bool,
    restart_count: i32,
    container_id: Option<&'a str>,
    /// `state`: `{"running": ..}`, `{"terminated": ..}` or `{"waiting": ..}`.
    state: Value,
    last_state: Value,
}

/// A `pods/status` merge patch: the pod in `phase` since `pod_start`, its container as
/// `reported`.
fn status(pod: &Pod, phase: &str, pod_start: &str, reported: Reported<'_>) -> Value {
    let Reported {
        ready,
        restart_count,
        container_id,
        state,
        last_state,
    } = reported;
    let container = runner_container(pod);
    let image = container.and_then(|c| c.image.clone()).unwrap_or_default();
    let now = now();
    let condition = |kind: &str, on: bool, reason: Option<&str>| {
        let mut c = json!({
            "type": kind,
            "status": if on { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": now,
        });
        if let Some(reason) = reason {
            c["reason"] = json!(reason);
        }
        c
    };
    let not_ready = match phase {
        "Succeeded" | "Failed" => Some("PodCompleted"),
        _ => Some("ContainersNotReady"),
    };
    let ready_reason = if ready { None } else { not_ready };
    let pod_ip = pod_ip(&pod.uid().unwrap_or_default());
    json!({"status": {
        "phase": phase,
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": pod_start,
        "qosClass": "BestEffort",
        "conditions": [
            condition("PodReadyToStartContainers", true, None),
            condition("Initialized", true, None),
            condition("Ready", ready, ready_reason),
            condition("ContainersReady", ready, ready_reason),
            condition("PodScheduled", true, None),
        ],
        "containerStatuses": [{
            "name": RUNNER_CONTAINER,
            "image": image,
            "imageID": format!("node-local://{image}"),
            "containerID": container_id,
            "ready": ready,
            "started": state.get("running").is_some(),
            "restartCount": restart_count,
            "state": state,
            "lastState": last_state,
        }],
    }})
}

async fn patch_status(context: &Context, name: &str, patch: &Value) -> anyhow::Result<()> {
    tokio::time::timeout(
        context.config.api_deadline,
        context
            .pods
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch)),
    )
    .await
    .map_err(|_| anyhow!("patching the status of pod {name}: no answer within the deadline"))?
    .with_context(|| format!("patching the status of pod {name}"))?;
    Ok(())
}

/// A pod IP in 10.88.0.0/16 derived from the uid.
fn pod_ip(uid: &str) -> String {
    let sum = uid
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("10.88.{}.{}", (sum >> 8) % 256, (sum % 254) + 1)
}

fn short(uid: &str) -> String {
    uid.chars().take(8).collect()
}

/// RFC 3339 at whole seconds, as Kubernetes serialises times.
fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
