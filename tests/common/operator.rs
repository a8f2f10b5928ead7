//! Upstream's chaos-operator as a local process of one test ([`OperatorProcess`]), the way it
//! runs out of cluster: built by `tests/cluster/operator build`, authenticated as its own
//! ServiceAccount (`fixtures/operator/rbac.yaml`) through a TokenRequest kubeconfig, no leader
//! election, no metrics or probe listeners, no analytics. The runner pods it creates are run by
//! [`super::node::Node`].

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;

use super::{LitmusKind, TestNamespace, admin_client, can_i, wait_until};

/// The runner image the operator is told to use (`CHAOS_RUNNER_IMAGE`); the node runs this
/// project's binary for a pod with this image.
pub const RUNNER_IMAGE: &str = "chaos-runner:dev";
/// The operator's ServiceAccount (`fixtures/operator/rbac.yaml`), in the test's namespace.
pub const OPERATOR_SERVICE_ACCOUNT: &str = "chaos-operator";
/// The ClusterRole of `fixtures/operator/rbac.yaml`, shared by every test.
pub const OPERATOR_CLUSTER_ROLE: &str = "chaos-runner-e2e-operator";
/// The finalizer the operator puts on every engine it initialises.
pub const ENGINE_FINALIZER: &str = "chaosengine.litmuschaos.io/finalizer";
/// How long the operator may take to start and sync its caches.
pub const OPERATOR_START_TIMEOUT: Duration = Duration::from_secs(45);
/// controller-runtime logs this once its caches are synced and the reconciler runs.
const READY_LINE: &str = "Starting workers";

/// Which namespaces the operator reconciles (`WATCH_NAMESPACE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchScope {
    /// Only the test's namespace (`WATCH_NAMESPACE=<ns>`; a RoleBinding grants the ClusterRole
    /// there). Operators of tests running at once do not see each other's engines.
    Namespace,
    /// Every namespace (`WATCH_NAMESPACE=""`, as upstream deploys it; a ClusterRoleBinding owned
    /// by the test's namespace, so it goes with it). It reconciles every engine on the plane:
    /// those of other tests running at the same time, from this run or any other sharing the
    /// plane, get its finalizer and a runner pod. Use it only on a plane nothing else uses.
    AllNamespaces,
}

/// How to start the operator.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    pub scope: WatchScope,
    /// `CHAOS_RUNNER_IMAGE`: the runner image of engines that name none.
    pub runner_image: String,
    /// More env for the operator process.
    pub env_extra: Vec<(String, String)>,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        OperatorOptions {
            scope: WatchScope::Namespace,
            runner_image: RUNNER_IMAGE.to_owned(),
            env_extra: Vec::new(),
        }
    }
}

/// The operator binary: `CHAOS_OPERATOR_BIN`, else the one `tests/cluster/operator build` cached.
pub fn operator_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CHAOS_OPERATOR_BIN").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/operator");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .arg("path")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} path", script.display()))?;
    if !output.status.success() {
        bail!(
            "the chaos-operator is not built: run `bash tests/cluster/operator build` (bash \
             tests/test.sh does): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let path = String::from_utf8(output.stdout)?.trim().to_owned();
    Ok(PathBuf::from(path))
}

/// The chaos-operator running as a child process of the test, its output in a log file.
/// Dropping it kills it (SIGKILL), then takes its finalizer off the engines of its namespace
/// (nothing else would remove it, and the namespace could not be deleted).
pub struct OperatorProcess {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
    namespace: String,
    started: Instant,
}

impl OperatorProcess {
    /// Grants the operator's RBAC in `ns`, starts it and waits until its reconciler runs.
    pub async fn start(
        ns: &TestNamespace,
        options: OperatorOptions,
    ) -> anyhow::Result<OperatorProcess> {
        let binary = operator_binary()?;
        ns.apply_yaml("fixtures/operator/rbac.yaml").await?;
        let client = ns.client();
        let watch_namespace = match options.scope {
            WatchScope::Namespace => {
                bind_in_namespace(&client, ns.name()).await?;
                ns.name().to_owned()
            }
            WatchScope::AllNamespaces => {
                bind_cluster_wide(&client, ns.name()).await?;
                String::new()
            }
        };
        let kubeconfig = ns.sa_kubeconfig(OPERATOR_SERVICE_ACCOUNT).await?;
        // RBAC reaches the authorizer through an informer: wait until the grant is in effect.
        let sa_client = super::client_from_kubeconfig(&kubeconfig).await?;
        wait_until(
            Duration::from_secs(15),
            "the operator's RBAC to take effect",
            async || {
                Ok(can_i(
                    &sa_client,
                    "watch",
                    "litmuschaos.io",
                    "chaosengines",
                    Some(ns.name()),
                )
                .await?
                .then_some(()))
            },
        )
        .await?;

        let dir = ns.files_dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join("chaos-operator.log");
        let stdout = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let stderr = stdout.try_clone()?;
        let mut command = tokio::process::Command::new(&binary);
        command
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("WATCH_NAMESPACE", &watch_namespace)
            .env("ANALYTICS", "FALSE")
            .env("CHAOS_RUNNER_IMAGE", &options.runner_image)
            .envs(options.env_extra.iter().cloned())
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg("-metrics-bind-address=0")
            .arg("-health-probe-bind-address=0");
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the operator exited before its pid could be read"))?;
        let mut operator = OperatorProcess {
            child,
            pid,
            log,
            namespace: ns.name().to_owned(),
            started: Instant::now(),
        };
        operator.wait_ready().await?;
        Ok(operator)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + OPERATOR_START_TIMEOUT;
        loop {
            if self.output().contains(READY_LINE) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the chaos-operator exited ({status}) before it was ready; log tail:\n{}",
                    self.log_tail(30)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "the chaos-operator did not log {READY_LINE:?} within {OPERATOR_START_TIMEOUT:?}; log tail:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How long ago it was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything it logged so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log)
            .unwrap_or_else(|err| format!("<cannot read {}: {err}>", self.log.display()))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let output = self.output();
        let all: Vec<&str> = output.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Log lines where the authorizer refused it something (a rule missing from its RBAC:
    /// `... is forbidden: User "system:serviceaccount:..." cannot ...`).
    pub fn forbidden(&self) -> Vec<String> {
        self.output()
            .lines()
            .filter(|l| l.contains("forbidden: User"))
            .map(str::to_owned)
            .collect()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::env::var("KEEP_NS").is_ok_and(|v| v == "1") {
            return;
        }
        // Drop cannot await and the test's runtime may be single-threaded (see TestNamespace).
        let namespace = self.namespace.clone();
        let cleared = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(remove_engine_finalizers(&namespace))
        })
        .join();
        match cleared {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!(
                "could not remove the operator's finalizer from the engines of {}: {err:#}",
                self.namespace
            ),
            Err(_) => eprintln!("removing the operator's finalizers: the thread panicked"),
        }
    }
}

/// Takes [`ENGINE_FINALIZER`] off every ChaosEngine in `namespace`.
async fn remove_engine_finalizers(namespace: &str) -> anyhow::Result<()> {
    let client = admin_client().await?;
    let engines: Api<DynamicObject> =
        Api::namespaced_with(client, namespace, &LitmusKind::ChaosEngine.resource());
    for engine in engines.list(&ListParams::default()).await? {
        let finalizers = engine.finalizers();
        if !finalizers.iter().any(|f| f == ENGINE_FINALIZER) {
            continue;
        }
        let kept: Vec<&String> = finalizers
            .iter()
            .filter(|f| *f != ENGINE_FINALIZER)
            .collect();
        let patch = json!({"metadata": {"finalizers": kept}});
        match engines
            .patch(
                &engine.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// A RoleBinding of the ClusterRole to the operator's ServiceAccount in `namespace`.
async fn bind_in_namespace(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": OPERATOR_SERVICE_ACCOUNT, "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": OPERATOR_CLUSTER_ROLE,
        },
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": namespace}],
    }))?;
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .patch(
            OPERATOR_SERVICE_ACCOUNT,
            &PatchParams::apply("chaos-runner-e2e").force(),
            &Patch::Apply(&binding),
        )
        .await
        .with_context(|| format!("binding {OPERATOR_CLUSTER_ROLE} in {namespace}"))?;
    Ok(())
}

/// A ClusterRoleBinding of the ClusterRole to the operator's ServiceAccount of `namespace`,
/// owned by that Namespace (the garbage collector removes it with the namespace).
async fn bind_cluster_wide(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let owner = Api::<Namespace>::all(client.clone())
        .get(namespace)
        .await
        .with_context(|| format!("reading namespace {namespace}"))?;
    let name = format!("{OPERATOR_CLUSTER_ROLE}-{namespace}");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Namespace",
                "name": namespace,
                "uid": owner.uid().unwrap_or_default(),
            }],
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": OPERATOR_CLUSTER_ROLE,
        },
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": namespace}],
    }))?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply("chaos-runner-e2e").force(),
            &Patch::Apply(&binding),
        )
        .await
        .with_context(|| format!("binding {OPERATOR_CLUSTER_ROLE} cluster-wide for {namespace}"))?;
    Ok(())
}
