//! Shared helpers for the end-to-end tests of the root crate (`mod common;`).
//!
//! One control plane serves the whole test run: `bash tests/test.sh` starts it, or
//! `eval "$(tests/cluster/plane env)"` points a shell at a running one; these helpers only read
//! `KUBECONFIG` (and `CHAOS_PLANE_AUDIT_LOG`). Every test gets its own namespace
//! ([`TestNamespace`]), deleted when the test ends unless `KEEP_NS=1`.
//!
//! Helpers return `anyhow::Result` with context, so a test reads `ns.apply_yaml(..).await?`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod node;
pub mod operator;
pub mod proxy;
pub mod run;

use std::collections::hash_map::RandomState;
use std::fs::{self, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use kube::{Client, Config, Resource};
use podsim::{Simulator, SimulatorHandle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// What to tell a developer who ran an e2e test without a plane.
const NO_PLANE: &str = "no control plane: KUBECONFIG is not set. Run `bash tests/test.sh`, or \
     `tests/cluster/plane up && eval \"$(tests/cluster/plane env)\"` and then cargo test --features e2e";

/// Field manager of the test helpers' server-side applies.
const FIELD_MANAGER: &str = "chaos-runner-e2e";

/// Label on every test namespace, so leftovers can be found: `kubectl delete ns -l chaos-runner-e2e`.
pub const TEST_NAMESPACE_LABEL: &str = "chaos-runner-e2e";

/// The running control plane, as read from the environment once per test run.
#[derive(Debug, Clone)]
pub struct Plane {
    /// The admin kubeconfig (`system:masters`).
    pub kubeconfig: PathBuf,
    /// The kube-apiserver URL.
    pub server: String,
    /// The cluster CA: base64 PEM (`certificate-authority-data`) or a file path.
    pub ca: CertificateAuthority,
    /// The apiserver's audit log, when the plane exports `CHAOS_PLANE_AUDIT_LOG`.
    pub audit_log: Option<PathBuf>,
}

/// How a kubeconfig names the cluster CA.
#[derive(Debug, Clone)]
pub enum CertificateAuthority {
    /// `certificate-authority-data`: base64 of the PEM.
    Data(String),
    /// `certificate-authority`: a file path.
    File(String),
}

/// The plane of this test run; an error that says how to start one when there is none.
pub fn plane() -> anyhow::Result<&'static Plane> {
    static PLANE: OnceLock<Result<Plane, String>> = OnceLock::new();
    PLANE
        .get_or_init(|| read_plane().map_err(|err| format!("{err:#}")))
        .as_ref()
        .map_err(|message| anyhow!("{message}"))
}

fn read_plane() -> anyhow::Result<Plane> {
    let path = std::env::var_os("KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!(NO_PLANE))?;
    let kubeconfig = Kubeconfig::read_from(&path)
        .with_context(|| format!("reading KUBECONFIG {} ({NO_PLANE})", path.display()))?;
    let context_name = kubeconfig
        .current_context
        .clone()
        .ok_or_else(|| anyhow!("{}: no current-context", path.display()))?;
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| anyhow!("{}: context {context_name} not found", path.display()))?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| anyhow!("{}: cluster {cluster_name} not found", path.display()))?;
    let server = cluster
        .server
        .clone()
        .ok_or_else(|| anyhow!("{}: cluster {cluster_name} has no server", path.display()))?;
    let ca = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => CertificateAuthority::Data(data.clone()),
        (None, Some(file)) => CertificateAuthority::File(file.clone()),
        (None, None) => bail!("{}: cluster {cluster_name} has no CA", path.display()),
    };
    Ok(Plane {
        kubeconfig: path,
        server,
        ca,
        audit_log: std::env::var_os("CHAOS_PLANE_AUDIT_LOG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    })
}

/// An admin client for the plane. Make one per test: a client belongs to the tokio runtime
/// it was made in, and every `#[tokio::test]` has its own.
pub async fn admin_client() -> anyhow::Result<Client> {
    client_from_kubeconfig(&plane()?.kubeconfig).await
}

/// A client that authenticates as the given kubeconfig says.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    Client::try_from(config).with_context(|| format!("client for kubeconfig {}", path.display()))
}

/// Where helper files of test namespace `namespace` go (SA kubeconfigs, runner logs).
pub fn files_dir(namespace: &str) -> PathBuf {
    std::env::temp_dir()
        .join("chaos-runner-e2e")
        .join(namespace)
}

/// A namespace of one test: unique name, deleted on drop unless `KEEP_NS=1`.
pub struct TestNamespace {
    name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `<prefix>-<6 random chars>` and waits for its `default` ServiceAccount (pods
    /// cannot be created before it exists).
    pub async fn create(prefix: &str) -> anyhow::Result<TestNamespace> {
        let client = admin_client().await?;
        let name = format!("{}-{}", dns_label_prefix(prefix), random_suffix());
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {TEST_NAMESPACE_LABEL: "true"}}
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let test_namespace = TestNamespace { name, client };
        let accounts: Api<ServiceAccount> = test_namespace.api();
        wait_until(
            Duration::from_secs(20),
            "the default ServiceAccount",
            async || Ok(accounts.get_opt("default").await?.map(|_| ())),
        )
        .await
        .with_context(|| format!("namespace {}", test_namespace.name))?;
        Ok(test_namespace)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin client this namespace was made with.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A namespaced API for a built-in kind.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// A namespaced API for ChaosEngines, ChaosExperiments or ChaosResults.
    pub fn litmus_api(&self, kind: LitmusKind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.name, &kind.resource())
    }

    /// Applies a YAML file (a path ending in `.yaml`/`.yml`, relative to the repository root
    /// unless absolute) or YAML text, multi-document, into this namespace.
    pub async fn apply_yaml(&self, path_or_yaml: &str) -> anyhow::Result<Vec<DynamicObject>> {
        apply_yaml(&self.client, &self.name, path_or_yaml).await
    }

    /// Starts the pod simulator on this namespace.
    pub fn start_simulator(&self) -> anyhow::Result<SimulatorHandle> {
        Simulator::start(self.client.clone(), &self.name)
            .with_context(|| format!("starting the pod simulator in {}", self.name))
    }

    /// A kubeconfig file that authenticates as ServiceAccount `service_account` of this
    /// namespace (TokenRequest API, 1 h token) against the plane's server and CA.
    pub async fn sa_kubeconfig(&self, service_account: &str) -> anyhow::Result<PathBuf> {
        sa_kubeconfig(&self.client, &self.name, service_account).await
    }

    /// A client acting as ServiceAccount `service_account` of this namespace.
    pub async fn sa_client(&self, service_account: &str) -> anyhow::Result<Client> {
        client_from_kubeconfig(&self.sa_kubeconfig(service_account).await?).await
    }

    /// Helper files of this namespace (kubeconfigs, runner logs).
    pub fn files_dir(&self) -> PathBuf {
        files_dir(&self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var("KEEP_NS").is_ok_and(|v| v == "1") {
            eprintln!("KEEP_NS=1: keeping namespace {}", self.name);
            return;
        }
        // Drop cannot await, and the test's runtime may be single-threaded: delete from a
        // thread with its own runtime and client.
        let name = self.name.clone();
        let deleted = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = admin_client().await?;
                match Api::<Namespace>::all(client.clone())
                    .delete(&name, &DeleteParams::background())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
                    Err(err) => return Err(err.into()),
                }
                // Bound pods would stay Terminating for ever once the simulator is gone (no
                // kubelet confirms their end), and the namespace with them: force them out.
                // The namespace is Terminating now, so no new pod can appear in it.
                Api::<Pod>::namespaced(client, &name)
                    .delete_collection(
                        &DeleteParams::default().grace_period(0),
                        &ListParams::default(),
                    )
                    .await?;
                Ok(())
            })
        })
        .join();
        match deleted {
            Ok(Ok(())) => {
                let _ = fs::remove_dir_all(files_dir(&self.name));
            }
            Ok(Err(err)) => eprintln!("could not delete test namespace {}: {err:#}", self.name),
            Err(_) => eprintln!(
                "could not delete test namespace {}: cleanup thread panicked",
                self.name
            ),
        }
    }
}

/// A DNS-label-safe prefix of at most 40 characters.
fn dns_label_prefix(prefix: &str) -> String {
    let cleaned: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "e2e".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Six random `[a-z0-9]` characters (std's per-process random hasher keys plus a counter).
fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let mut value = hasher.finish();
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..6)
        .map(|_| {
            let c = ALPHABET[(value % 36) as usize] as char;
            value /= 36;
            c
        })
        .collect()
}

/// The three Litmus kinds.
// The variants are the Kubernetes kind names verbatim.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LitmusKind {
    ChaosEngine,
    ChaosExperiment,
    ChaosResult,
}

impl LitmusKind {
    /// The `litmuschaos.io/v1alpha1` resource of this kind.
    pub fn resource(self) -> ApiResource {
        let (kind, plural) = match self {
            LitmusKind::ChaosEngine => ("ChaosEngine", "chaosengines"),
            LitmusKind::ChaosExperiment => ("ChaosExperiment", "chaosexperiments"),
            LitmusKind::ChaosResult => ("ChaosResult", "chaosresults"),
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("litmuschaos.io", "v1alpha1", kind),
            plural,
        )
    }
}

/// Server-side applies every document of a YAML file or text (see
/// [`TestNamespace::apply_yaml`]); namespaced objects go to `namespace`. The kind of each
/// document is found by discovery, so CRD objects work as well as built-ins.
pub async fn apply_yaml(
    client: &Client,
    namespace: &str,
    path_or_yaml: &str,
) -> anyhow::Result<Vec<DynamicObject>> {
    let (origin, text) = read_yaml_source(path_or_yaml)?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|err| anyhow!("{origin}: invalid YAML: {err}"))?;
    let mut applied = Vec::new();
    for (index, mut document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue; // an empty document (comments only, trailing `---`)
        }
        let at = format!("{origin}, document {}", index + 1);
        let api_version = document["apiVersion"]
            .as_str()
            .ok_or_else(|| anyhow!("{at}: no apiVersion"))?
            .to_owned();
        let kind = document["kind"]
            .as_str()
            .ok_or_else(|| anyhow!("{at}: no kind"))?
            .to_owned();
        let name = document["metadata"]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("{at}: {kind} has no metadata.name"))?
            .to_owned();
        let (group, version) = api_version
            .rsplit_once('/')
            .unwrap_or(("", api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("{at}: discovering {api_version} {kind}"))?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => {
                document["metadata"]["namespace"] = json!(namespace);
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let object = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&document),
            )
            .await
            .with_context(|| format!("{at}: applying {kind} {name} in {namespace}"))?;
        applied.push(object);
    }
    Ok(applied)
}

fn read_yaml_source(path_or_yaml: &str) -> anyhow::Result<(String, String)> {
    let looks_like_path = !path_or_yaml.contains('\n')
        && (path_or_yaml.ends_with(".yaml") || path_or_yaml.ends_with(".yml"));
    if !looks_like_path {
        return Ok(("inline YAML".to_owned(), path_or_yaml.to_owned()));
    }
    let path = Path::new(path_or_yaml);
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    };
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((path.display().to_string(), text))
}

/// Writes a kubeconfig that authenticates as `service_account` in `namespace` with a token
/// from the TokenRequest API, and returns its path.
pub async fn sa_kubeconfig(
    client: &Client,
    namespace: &str,
    service_account: &str,
) -> anyhow::Result<PathBuf> {
    token_kubeconfig(
        client,
        namespace,
        service_account,
        None,
        &format!("{service_account}.kubeconfig"),
    )
    .await
}

/// [`sa_kubeconfig`] with the token bound to an object (`bound`, e.g. a pod, as a kubelet asks
/// for its pods: the token stops working once the pod is gone), written to `file_name` in
/// [`files_dir`] of `namespace`.
pub async fn token_kubeconfig(
    client: &Client,
    namespace: &str,
    service_account: &str,
    bound: Option<BoundObjectReference>,
    file_name: &str,
) -> anyhow::Result<PathBuf> {
    let plane = plane()?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(), // the apiserver's own audience
            expiration_seconds: Some(3600),
            bound_object_ref: bound,
        },
        ..TokenRequest::default()
    };
    let answer: TokenRequest = accounts
        .create_subresource("token", service_account, &PostParams::default(), &request)
        .await
        .with_context(|| {
            format!("TokenRequest for ServiceAccount {namespace}/{service_account}")
        })?;
    let token = answer
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("TokenRequest for {namespace}/{service_account}: no token"))?;
    let mut cluster = json!({"server": plane.server});
    match &plane.ca {
        CertificateAuthority::Data(data) => cluster["certificate-authority-data"] = json!(data),
        CertificateAuthority::File(file) => cluster["certificate-authority"] = json!(file),
    }
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    // JSON is YAML: kube-rs and kubectl both read it.
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "plane", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "plane", "user": user, "namespace": namespace}}],
        "current-context": "sa",
    });
    let dir = files_dir(namespace);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(file_name);
    fs::write(&path, serde_json::to_vec_pretty(&kubeconfig)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Asks the apiserver whether the client's identity may do `verb` on `resource` (`group` ""
/// for the core group) in `namespace` (`None`: cluster-wide / all namespaces).
pub async fn can_i(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> anyhow::Result<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                namespace: namespace.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .with_context(|| {
            format!("SelfSubjectAccessReview {verb} {group}/{resource} in {namespace:?}")
        })?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Polls `probe` every 100 ms until it yields `Some`, or fails after `timeout` naming `what`.
/// Errors of the probe are retried too (the last one is reported).
pub async fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last_error = match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => None,
            Err(err) => Some(err),
        };
        if Instant::now() >= deadline {
            return Err(match last_error {
                Some(err) => err.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until object `name` exists and satisfies `condition`; on timeout the error shows the
/// object as last seen.
pub async fn wait_for_object<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    condition: impl Fn(&K) -> bool,
) -> anyhow::Result<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let mut last_seen: Option<K> = None;
    let outcome = wait_until(timeout, what, async || {
        let object = api.get_opt(name).await?;
        let done = object.as_ref().is_some_and(&condition);
        last_seen = object.clone();
        Ok(object.filter(|_| done))
    })
    .await;
    outcome.map_err(|err| {
        let seen = last_seen
            .map(|o| abbreviated_json(&o))
            .unwrap_or_else(|| "absent".to_owned());
        err.context(format!("{name}, last seen: {seen}"))
    })
}

/// Waits until object `name` is gone.
pub async fn wait_for_deletion<K>(api: &Api<K>, name: &str, timeout: Duration) -> anyhow::Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    wait_until(timeout, &format!("{name} to be deleted"), async || {
        Ok(match api.get_opt(name).await? {
            None => Some(()),
            Some(_) => None,
        })
    })
    .await
}

fn abbreviated_json(value: &impl Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|err| format!("<{err}>"));
    if text.len() > 4000 {
        let cut = (0..=4000)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &text[..cut])
    } else {
        text
    }
}

/// The `status` of ChaosEngine `engine` as JSON (`null` when it has none).
pub async fn engine_status(
    client: &Client,
    namespace: &str,
    engine: &str,
) -> anyhow::Result<Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &LitmusKind::ChaosEngine.resource(),
    );
    let object = api
        .get(engine)
        .await
        .with_context(|| format!("reading ChaosEngine {namespace}/{engine}"))?;
    Ok(object.data.get("status").cloned().unwrap_or(Value::Null))
}

/// The Jobs labelled `chaosUID=<uid>`.
pub async fn jobs_by_chaos_uid(
    client: &Client,
    namespace: &str,
    uid: &str,
) -> anyhow::Result<Vec<Job>> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("chaosUID={uid}")))
        .await
        .with_context(|| format!("listing Jobs with chaosUID={uid} in {namespace}"))?;
    Ok(list.items)
}

/// The pods labelled `chaosUID=<uid>`.
pub async fn pods_by_chaos_uid(
    client: &Client,
    namespace: &str,
    uid: &str,
) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("chaosUID={uid}")))
        .await
        .with_context(|| format!("listing pods with chaosUID={uid} in {namespace}"))?;
    Ok(list.items)
}

/// The pods of Job `job` (label `job-name`).
pub async fn pods_of_job(client: &Client, namespace: &str, job: &str) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .with_context(|| format!("listing pods of Job {namespace}/{job}"))?;
    Ok(list.items)
}

/// How the operator would start one runner: the inputs of contract §1.
#[derive(Debug, Clone)]
pub struct RunnerSpec {
    /// `CHAOSENGINE`.
    pub engine: String,
    /// `CHAOS_NAMESPACE`.
    pub namespace: String,
    /// `EXPERIMENT_LIST`, joined with `,`.
    pub experiments: Vec<String>,
    /// `CHAOS_SVC_ACC`.
    pub service_account: String,
    /// More env (`TARGETS`, `AUXILIARY_APPINFO`, `RUST_LOG`...); later entries win.
    pub env_extra: Vec<(String, String)>,
    /// `KUBECONFIG` of the runner: normally [`TestNamespace::sa_kubeconfig`].
    pub kubeconfig: PathBuf,
}

impl RunnerSpec {
    /// The env the runner gets, in order; empty values are left out, as the operator does.
    pub fn operator_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("CHAOSENGINE".to_owned(), self.engine.clone()),
            ("CHAOS_NAMESPACE".to_owned(), self.namespace.clone()),
            ("EXPERIMENT_LIST".to_owned(), self.experiments.join(",")),
            ("CHAOS_SVC_ACC".to_owned(), self.service_account.clone()),
            (
                "KUBECONFIG".to_owned(),
                self.kubeconfig.display().to_string(),
            ),
        ];
        env.extend(self.env_extra.iter().cloned());
        env.retain(|(_, value)| !value.is_empty());
        env
    }
}

/// A signal for [`RunnerProcess::kill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Kill,
    Term,
    Int,
    /// Freezes the process (it cannot catch it) until [`Signal::Cont`].
    Stop,
    Cont,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Kill => "KILL",
            Signal::Term => "TERM",
            Signal::Int => "INT",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
        }
    }
}

/// The runner binary the tests start: this build's, or `CHAOS_RUNNER_BIN` (another build, e.g.
/// an older commit's, to show that a test fails there).
pub fn runner_binary() -> PathBuf {
    std::env::var_os("CHAOS_RUNNER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_chaos-runner")))
}

/// The `chaos-runner` binary running as a child process, output captured in a log file.
/// Killed (SIGKILL) when dropped.
pub struct RunnerProcess {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
    started: Instant,
}

impl RunnerProcess {
    /// Starts the runner with only the operator's env (plus `PATH`, and `RUST_LOG` /
    /// `RUST_BACKTRACE` when set), stdout and stderr appended to one log file.
    pub fn spawn(spec: &RunnerSpec) -> anyhow::Result<RunnerProcess> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let dir = files_dir(&spec.namespace);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join(format!(
            "runner-{}-{}.log",
            spec.engine,
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let stdout = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let stderr = stdout
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?;
        let binary = runner_binary();
        let mut command = tokio::process::Command::new(&binary);
        command
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        for inherited in ["PATH", "RUST_LOG", "RUST_BACKTRACE"] {
            if let Some(value) = std::env::var_os(inherited) {
                command.env(inherited, value);
            }
        }
        command.envs(spec.operator_env());
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the runner exited before its pid could be read"))?;
        Ok(RunnerProcess {
            child,
            pid,
            log,
            started: Instant::now(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The log file with the runner's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the runner printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log)
            .unwrap_or_else(|err| format!("<cannot read {}: {err}>", self.log.display()))
    }

    /// How long ago the process was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits up to `timeout` for the exit; `None` if it is still running.
    pub async fn wait_timeout(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => {
                Ok(Some(status.with_context(|| {
                    format!("waiting for runner pid {}", self.pid)
                })?))
            }
            Err(_) => Ok(None),
        }
    }

    /// Waits up to `timeout` for the exit; an error with the log's tail if it does not come.
    pub async fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        match self.wait_timeout(timeout).await? {
            Some(status) => Ok(status),
            None => Err(anyhow!(
                "runner pid {} still running after {timeout:?}; log tail:\n{}",
                self.pid,
                self.log_tail(40)
            )),
        }
    }

    /// Sends `signal` with kill(1).
    pub fn kill(&self, signal: Signal) -> anyhow::Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-s", signal.name(), &self.pid.to_string()])
            .status()
            .context("running kill(1)")?;
        if !status.success() {
            bail!("kill -s {} {} failed: {status}", signal.name(), self.pid);
        }
        Ok(())
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let output = self.output();
        let all: Vec<&str> = output.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A position in the plane's audit log: the requests the apiserver recorded after it.
///
/// The apiserver rotates its audit log at 100 MB (renamed to `audit-<time>.log`, same inode, and
/// a new `audit.log` started): the cursor follows its file by inode and also reads every audit
/// file begun after it, so requests are not lost when a rotation falls inside a test.
#[derive(Debug, Clone)]
pub struct AuditCursor {
    path: PathBuf,
    offset: u64,
    /// Inode of the log file the offset belongs to.
    inode: u64,
    /// When the cursor was taken: audit files last written before it hold nothing after it.
    taken_at: std::time::SystemTime,
}

impl AuditCursor {
    /// The end of the audit log now; `None` when the plane exports no audit log.
    pub fn now() -> anyhow::Result<Option<AuditCursor>> {
        use std::os::unix::fs::MetadataExt as _;
        let Some(path) = plane()?.audit_log.clone() else {
            return Ok(None);
        };
        let taken_at = std::time::SystemTime::now();
        let metadata =
            fs::metadata(&path).with_context(|| format!("reading audit log {}", path.display()))?;
        Ok(Some(AuditCursor {
            path,
            offset: metadata.len(),
            inode: metadata.ino(),
            taken_at,
        }))
    }

    /// The audit files holding requests since the cursor, with the offset to read each from:
    /// the cursor's own file (wherever rotation renamed it) and every file started after it.
    fn files_since(&self) -> anyhow::Result<Vec<(PathBuf, u64)>> {
        use std::os::unix::fs::MetadataExt as _;
        let dir = self.path.parent().unwrap_or_else(|| Path::new("."));
        let stem = self
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("audit")
            .to_owned();
        let mut files = Vec::new();
        for dir_entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let dir_entry = dir_entry?;
            let name = dir_entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(&stem) && name.ends_with(".log")) {
                continue;
            }
            let Ok(metadata) = dir_entry.metadata() else {
                continue; // removed while listing
            };
            if metadata.ino() == self.inode {
                files.push((dir_entry.path(), self.offset));
            } else if metadata.modified().is_ok_and(|m| m >= self.taken_at) {
                files.push((dir_entry.path(), 0));
            }
        }
        Ok(files)
    }

    /// Every audit event written since the cursor, one per request (stage ResponseComplete,
    /// deduplicated by auditID; a watch still open has none yet).
    pub fn requests(&self) -> anyhow::Result<Vec<Value>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut seen = std::collections::HashSet::new();
        let mut requests = Vec::new();
        for (path, offset) in self.files_since()? {
            let mut file = fs::File::open(&path)
                .with_context(|| format!("opening audit log {}", path.display()))?;
            file.seek(SeekFrom::Start(offset))?;
            let mut text = String::new();
            file.read_to_string(&mut text)
                .with_context(|| format!("reading audit log {}", path.display()))?;
            requests.extend(
                text.lines()
                    .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                    .filter(|event| event["stage"] == "ResponseComplete")
                    .filter(|event| {
                        seen.insert(event["auditID"].as_str().unwrap_or_default().to_owned())
                    }),
            );
        }
        Ok(requests)
    }

    /// The requests since the cursor made by `username` (e.g.
    /// `system:serviceaccount:<ns>:chaos-runner`).
    pub fn requests_by(&self, username: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .requests()?
            .into_iter()
            .filter(|event| event["user"]["username"] == username)
            .collect())
    }
}
