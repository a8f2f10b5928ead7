//! The engine/experiment merge (contract §3 step 2): a ChaosExperiment plus the overrides of a
//! ChaosEngine become one [`ExperimentRun`], everything the Job builder and the driver need.
//!
//! Pure: objects in, values out. Existence of ConfigMaps and Secrets is the driver's to check;
//! [`dependencies`] lists them and [`check_structure`] does the checks that need no cluster.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, EnvVarSource, LocalObjectReference, ObjectFieldSelector,
    PodSecurityContext, ResourceRequirements, SecurityContext, Toleration,
};
use thiserror::Error;

use crate::contract::config::RunnerConfig;
use crate::contract::crd::{
    ChaosEngine, ChaosExperiment, ExperimentOverrides, JobCleanUpPolicy, OBJECT_NAME_RULE,
    VolumeSource, is_object_name,
};

/// Label that ties every Job and pod of a run to its engine; the operator's abort uses it.
pub const CHAOS_UID_LABEL: &str = "chaosUID";
/// Default `STATUS_CHECK_DELAY`, seconds.
pub const DEFAULT_STATUS_CHECK_DELAY: u64 = 2;
/// Default `STATUS_CHECK_TIMEOUT`, seconds.
pub const DEFAULT_STATUS_CHECK_TIMEOUT: u64 = 180;
/// Experiment image pull policy when the ChaosExperiment sets none.
pub const DEFAULT_EXPERIMENT_PULL_POLICY: &str = "Always";
/// Sidecar image pull policy when the engine sets none.
pub const DEFAULT_SIDECAR_PULL_POLICY: &str = "IfNotPresent";
/// hostPath type of a hostFileVolume when the ChaosExperiment sets none.
pub const DEFAULT_HOST_FILE_TYPE: &str = "File";

/// Which custom resource a field belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    ChaosEngine,
    ChaosExperiment,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ChaosEngine => "ChaosEngine",
            Self::ChaosExperiment => "ChaosExperiment",
        })
    }
}

/// Where a merged value came from: `ChaosEngine demo: spec.experiments[0].spec.components...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldOrigin {
    pub kind: ObjectKind,
    pub object: String,
    /// Field path inside the object, e.g. `spec.definition.configMaps[1]`.
    pub path: String,
}

impl fmt::Display for FieldOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.object, self.path)
    }
}

/// The runner's own values that go into every experiment's env (contract §3 step 2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunnerEnv {
    pub engine_name: String,
    pub namespace: String,
    pub service_account: Option<String>,
    pub targets: Option<String>,
    pub auxiliary_app_info: Option<String>,
    pub otel_endpoint: Option<String>,
    /// Trace carrier JSON for the experiment pods.
    pub trace_parent: Option<String>,
}

impl RunnerEnv {
    /// The values from the runner's configuration (a malformed `TRACE_PARENT` is dropped).
    pub fn from_config(config: &RunnerConfig) -> Self {
        Self {
            engine_name: config.engine_name.clone(),
            namespace: config.namespace.clone(),
            service_account: config.service_account.clone(),
            targets: config.targets.clone(),
            auxiliary_app_info: config.auxiliary_app_info.clone(),
            otel_endpoint: config.otel_endpoint.clone(),
            trace_parent: config
                .valid_trace_parent()
                .map(|carrier| carrier.raw.clone()),
        }
    }

    /// Values derived from the engine alone, for offline rendering. The operator's env is
    /// approximated: namespace `default` when the engine has none; `TARGETS` as
    /// `<appkind>:<appns>:[<applabel>]` when `spec.appinfo` has all three; no tracing.
    pub fn offline(engine: &ChaosEngine) -> Self {
        let targets = engine.spec.appinfo.as_ref().and_then(|app| {
            (!app.appkind.is_empty() && !app.appns.is_empty() && !app.applabel.is_empty())
                .then(|| format!("{}:{}:[{}]", app.appkind, app.appns, app.applabel))
        });
        Self {
            engine_name: engine.name().to_owned(),
            namespace: engine
                .metadata
                .namespace
                .clone()
                .filter(|namespace| !namespace.is_empty())
                .unwrap_or_else(|| "default".to_owned()),
            service_account: non_empty(&engine.spec.chaos_service_account),
            targets,
            auxiliary_app_info: non_empty(&engine.spec.auxiliary_app_info),
            otel_endpoint: None,
            trace_parent: None,
        }
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// A ConfigMap or Secret mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountedVolume {
    pub name: String,
    pub mount_path: String,
    /// The entry that gave the final mountPath.
    pub origin: FieldOrigin,
}

/// A host file mounted into the experiment container (experiment only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFileVolume {
    pub name: String,
    pub mount_path: String,
    pub node_path: String,
    /// hostPath type, `File` by default.
    pub type_: String,
    pub origin: FieldOrigin,
}

/// The status-check timings passed to the experiment, seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusCheckTimeouts {
    pub delay_seconds: u64,
    pub timeout_seconds: u64,
}

/// A sidecar container of the experiment pod (when the engine enables sidecars).
#[derive(Clone, Debug, PartialEq)]
pub struct SidecarRun {
    pub image: String,
    pub image_pull_policy: String,
    pub env: Vec<EnvVar>,
    pub env_from: Vec<EnvFromSource>,
    pub secrets: Vec<MountedVolume>,
}

/// Everything needed to launch one experiment: the merge of engine and experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentRun {
    pub engine_name: String,
    pub engine_uid: String,
    pub namespace: String,
    pub experiment_name: String,
    /// Index of the experiment in the engine's `spec.experiments`, if listed there.
    pub engine_entry: Option<usize>,
    pub image: String,
    pub image_pull_policy: String,
    pub args: Vec<String>,
    pub command: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Unique names, in the order described at [`merge_env`].
    pub env: Vec<EnvVar>,
    /// Where each var of `env` that the experiment or the engine defines was defined (the
    /// winning definition), by name; the runner's own vars have none.
    pub env_origins: BTreeMap<String, FieldOrigin>,
    pub config_maps: Vec<MountedVolume>,
    pub secrets: Vec<MountedVolume>,
    pub host_file_volumes: Vec<HostFileVolume>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub resources: Option<ResourceRequirements>,
    pub image_pull_secrets: Vec<LocalObjectReference>,
    pub pod_security_context: Option<PodSecurityContext>,
    pub container_security_context: Option<SecurityContext>,
    pub host_pid: bool,
    pub termination_grace_period_seconds: Option<i64>,
    pub status_check_timeouts: StatusCheckTimeouts,
    /// `None` leaves the pod on the namespace's default service account.
    pub service_account: Option<String>,
    pub sidecars: Vec<SidecarRun>,
    pub job_cleanup_policy: Option<JobCleanUpPolicy>,
}

impl ExperimentRun {
    /// The plain value of an env var of the merged env (`None` if absent or from `valueFrom`).
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|var| var.name == name)
            .and_then(|var| var.value.as_deref())
    }

    /// `INSTANCE_ID` of the merged env, when set and non-empty.
    pub fn instance_id(&self) -> Option<&str> {
        self.env_value("INSTANCE_ID").filter(|id| !id.is_empty())
    }

    /// Name of the ChaosResult the experiment pod writes.
    pub fn result_name(&self) -> String {
        result_name(&self.engine_name, &self.experiment_name, self.instance_id())
    }

    /// `TOTAL_CHAOS_DURATION` in seconds, for the Monitor deadline. `None` when absent, given
    /// through `valueFrom`, or not a whole number of seconds: the driver then uses its default.
    pub fn total_chaos_duration_seconds(&self) -> Option<u64> {
        self.env_value("TOTAL_CHAOS_DURATION")
            .and_then(|value| value.trim().parse().ok())
    }

    /// Status-check delay and timeout (the Pending limit of the experiment pod).
    pub fn status_check_timeouts(&self) -> StatusCheckTimeouts {
        self.status_check_timeouts
    }

    /// Whether Jobs are deleted after the experiment (only the exact policy `delete`).
    pub fn deletes_job(&self) -> bool {
        self.job_cleanup_policy
            .as_ref()
            .is_some_and(JobCleanUpPolicy::deletes)
    }
}

/// `<engine>-<experiment>`, or `<engine>-<experiment>-<instance>` when `INSTANCE_ID` is set.
pub fn result_name(engine: &str, experiment: &str, instance_id: Option<&str>) -> String {
    match instance_id.filter(|id| !id.is_empty()) {
        Some(id) => format!("{engine}-{experiment}-{id}"),
        None => format!("{engine}-{experiment}"),
    }
}

/// The objects cannot be merged at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MergeError {
    #[error("ChaosEngine {engine}: metadata.uid is empty (needed for the chaosUID label)")]
    MissingEngineUid { engine: String },
    #[error("ChaosExperiment in the run of ChaosEngine {engine}: metadata.name is empty")]
    MissingExperimentName { engine: String },
}

/// Merges a ChaosExperiment with the engine's overrides for it (contract §3 step 2).
///
/// The engine entry is the first of `spec.experiments` with the experiment's name; an
/// experiment the engine does not list gets no overrides.
// Long on purpose: the merge follows the contract's rules (§3.2) in their order, one block per
// field; each block is short and the order is the specification.
pub fn merge(
    engine: &ChaosEngine,
    experiment: &ChaosExperiment,
    runner: &RunnerEnv,
) -> Result<ExperimentRun, MergeError> {
    let engine_name = runner.engine_name.clone();
    let engine_uid = engine
        .metadata
        .uid
        .clone()
        .filter(|uid| !uid.is_empty())
        .ok_or_else(|| MergeError::MissingEngineUid {
            engine: engine_name.clone(),
        })?;
    let experiment_name = experiment.name().to_owned();
    if experiment_name.is_empty() {
        return Err(MergeError::MissingExperimentName {
            engine: engine_name,
        });
    }
    let definition = &experiment.spec.definition;
    let entry = engine.experiment_entry(&experiment_name);
    let no_overrides = ExperimentOverrides::default();
    let overrides = entry.map_or(&no_overrides, |(_, entry)| &entry.spec.components);
    let overrides_path = |index: usize| format!("spec.experiments[{index}].spec.components");

    let engine_origin = |path: String| FieldOrigin {
        kind: ObjectKind::ChaosEngine,
        object: engine_name.clone(),
        path,
    };
    let experiment_origin = |path: String| FieldOrigin {
        kind: ObjectKind::ChaosExperiment,
        object: experiment_name.clone(),
        path,
    };

    let image = if overrides.experiment_image.is_empty() {
        definition.image.clone()
    } else {
        overrides.experiment_image.clone()
    };
    let image_pull_policy = non_empty(&definition.image_pull_policy)
        .unwrap_or_else(|| DEFAULT_EXPERIMENT_PULL_POLICY.to_owned());

    // Labels: experiment's, then chaosUID, then the engine's. chaosUID is re-applied last so
    // that no engine label can hide a Job from the operator's abort cleanup.
    let mut labels = definition.labels.clone();
    labels.insert(CHAOS_UID_LABEL.to_owned(), engine_uid.clone());
    if let Some(engine_labels) = &engine.metadata.labels {
        labels.extend(engine_labels.clone());
    }
    labels.insert(CHAOS_UID_LABEL.to_owned(), engine_uid.clone());

    let status_check_timeouts = StatusCheckTimeouts {
        delay_seconds: positive_or(
            overrides.status_check_timeouts.delay,
            DEFAULT_STATUS_CHECK_DELAY,
        ),
        timeout_seconds: positive_or(
            overrides.status_check_timeouts.timeout,
            DEFAULT_STATUS_CHECK_TIMEOUT,
        ),
    };

    let mut config_maps = Vec::new();
    for (index, source) in definition.config_maps.iter().enumerate() {
        merge_volume(
            &mut config_maps,
            source,
            experiment_origin(format!("spec.definition.configMaps[{index}]")),
        );
    }
    let mut secrets = Vec::new();
    for (index, source) in definition.secrets.iter().enumerate() {
        merge_volume(
            &mut secrets,
            source,
            experiment_origin(format!("spec.definition.secrets[{index}]")),
        );
    }
    if let Some((entry_index, _)) = entry {
        for (index, source) in overrides.config_maps.iter().enumerate() {
            let path = format!("{}.configMaps[{index}]", overrides_path(entry_index));
            merge_volume(&mut config_maps, source, engine_origin(path));
        }
        for (index, source) in overrides.secrets.iter().enumerate() {
            let path = format!("{}.secrets[{index}]", overrides_path(entry_index));
            merge_volume(&mut secrets, source, engine_origin(path));
        }
    }

    let host_file_volumes = definition
        .host_file_volumes
        .iter()
        .enumerate()
        .map(|(index, source)| HostFileVolume {
            name: source.name.clone(),
            mount_path: source.mount_path.clone(),
            node_path: source.node_path.clone(),
            type_: non_empty(&source.type_).unwrap_or_else(|| DEFAULT_HOST_FILE_TYPE.to_owned()),
            origin: experiment_origin(format!("spec.definition.hostFileVolumes[{index}]")),
        })
        .collect();

    let runner_vars = runner_env_vars(
        runner,
        engine,
        &engine_uid,
        &experiment_name,
        &image_pull_policy,
    );
    let mut forced = vec![
        plain_var(
            "STATUS_CHECK_DELAY",
            &status_check_timeouts.delay_seconds.to_string(),
        ),
        plain_var(
            "STATUS_CHECK_TIMEOUT",
            &status_check_timeouts.timeout_seconds.to_string(),
        ),
    ];
    if let Some(policy) = &engine.spec.job_clean_up_policy {
        forced.push(plain_var("JOB_CLEANUP_POLICY", policy.as_str()));
    }
    forced.push(field_ref_var("POD_NAME", "metadata.name"));
    let env = merge_env([
        runner_vars.as_slice(),
        definition.env.as_slice(),
        overrides.env.as_slice(),
        forced.as_slice(),
    ]);
    // Later definitions win, as in `merge_env`.
    let mut env_origins = BTreeMap::new();
    for (index, var) in definition.env.iter().enumerate() {
        let origin = experiment_origin(format!("spec.definition.env[{index}]"));
        env_origins.insert(var.name.clone(), origin);
    }
    if let Some((entry_index, _)) = entry {
        for (index, var) in overrides.env.iter().enumerate() {
            let origin = engine_origin(format!("{}.env[{index}]", overrides_path(entry_index)));
            env_origins.insert(var.name.clone(), origin);
        }
    }

    let sidecars = if engine.sidecars_enabled() {
        engine
            .spec
            .components
            .sidecar
            .iter()
            .enumerate()
            .map(|(sidecar_index, sidecar)| SidecarRun {
                image: sidecar.image.clone(),
                image_pull_policy: non_empty(&sidecar.image_pull_policy)
                    .unwrap_or_else(|| DEFAULT_SIDECAR_PULL_POLICY.to_owned()),
                env: sidecar.env.clone(),
                env_from: sidecar.env_from.clone(),
                secrets: sidecar
                    .secrets
                    .iter()
                    .enumerate()
                    .map(|(index, source)| MountedVolume {
                        name: source.name.clone(),
                        mount_path: source.mount_path.clone(),
                        origin: engine_origin(format!(
                            "spec.components.sidecar[{sidecar_index}].secrets[{index}]"
                        )),
                    })
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };

    Ok(ExperimentRun {
        engine_name: engine_name.clone(),
        engine_uid,
        namespace: runner.namespace.clone(),
        experiment_name: experiment_name.clone(),
        engine_entry: entry.map(|(index, _)| index),
        image,
        image_pull_policy,
        args: definition.args.clone(),
        command: definition.command.clone(),
        labels,
        annotations: overrides.experiment_annotations.clone(),
        env,
        env_origins,
        config_maps,
        secrets,
        host_file_volumes,
        node_selector: overrides.node_selector.clone(),
        tolerations: overrides.tolerations.clone(),
        resources: overrides.resources.clone(),
        image_pull_secrets: overrides.experiment_image_pull_secrets.clone(),
        pod_security_context: definition.security_context.pod_security_context.clone(),
        container_security_context: definition
            .security_context
            .container_security_context
            .clone(),
        host_pid: definition.host_pid,
        // 0 means unset, as for the operator's `omitempty` int: the pod keeps the cluster's
        // default grace (0 would kill it without the chance to revert its chaos).
        termination_grace_period_seconds: engine
            .spec
            .termination_grace_period_seconds
            .filter(|seconds| *seconds > 0),
        status_check_timeouts,
        service_account: runner.service_account.clone(),
        sidecars,
        job_cleanup_policy: engine.spec.job_clean_up_policy.clone(),
    })
}

fn positive_or(value: Option<i64>, default: u64) -> u64 {
    value
        .and_then(|value| u64::try_from(value).ok())
        .filter(|value| *value > 0)
        .unwrap_or(default)
}

/// Same name: the later entry replaces the mountPath in place; a new name is appended.
/// Entries without a name are kept apart so that each is reported by [`check_structure`].
fn merge_volume(volumes: &mut Vec<MountedVolume>, source: &VolumeSource, origin: FieldOrigin) {
    let existing = volumes
        .iter_mut()
        .find(|volume| !source.name.is_empty() && volume.name == source.name);
    match existing {
        Some(volume) => {
            volume.mount_path = source.mount_path.clone();
            volume.origin = origin;
        }
        None => volumes.push(MountedVolume {
            name: source.name.clone(),
            mount_path: source.mount_path.clone(),
            origin,
        }),
    }
}

fn plain_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

/// An env var from the downward API (`fieldRef`).
pub(crate) fn field_ref_var(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".to_owned()),
                field_path: field_path.to_owned(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// The runner values, in contract order, empty ones skipped.
fn runner_env_vars(
    runner: &RunnerEnv,
    engine: &ChaosEngine,
    engine_uid: &str,
    experiment_name: &str,
    image_pull_policy: &str,
) -> Vec<EnvVar> {
    let grace = engine
        .spec
        .termination_grace_period_seconds
        .unwrap_or(0)
        .to_string();
    let health_check = engine
        .spec
        .default_health_check
        .unwrap_or(false)
        .to_string();
    let values: [(&str, Option<&str>); 12] = [
        ("CHAOSENGINE", Some(&runner.engine_name)),
        ("TARGETS", runner.targets.as_deref()),
        ("CHAOS_NAMESPACE", Some(&runner.namespace)),
        ("AUXILIARY_APPINFO", runner.auxiliary_app_info.as_deref()),
        ("CHAOS_UID", Some(engine_uid)),
        ("EXPERIMENT_NAME", Some(experiment_name)),
        ("LIB_IMAGE_PULL_POLICY", Some(image_pull_policy)),
        ("TERMINATION_GRACE_PERIOD_SECONDS", Some(&grace)),
        ("DEFAULT_HEALTH_CHECK", Some(&health_check)),
        ("CHAOS_SERVICE_ACCOUNT", runner.service_account.as_deref()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            runner.otel_endpoint.as_deref(),
        ),
        ("TRACE_PARENT", runner.trace_parent.as_deref()),
    ];
    values
        .into_iter()
        .filter_map(|(name, value)| {
            value
                .filter(|value| !value.is_empty())
                .map(|value| plain_var(name, value))
        })
        .collect()
}

/// Concatenates env sources (earlier sources first) and keeps one var per name: the last one
/// wins, at the position of that last occurrence.
///
/// Why the last position and not the first: Kubernetes expands `$(VAR)` only from vars defined
/// earlier in the list. The Go runner emitted duplicates, where the effective (last) entry sees
/// everything before it; keeping the winning entry at its own position keeps exactly that
/// context, so an engine override may still refer to another engine var defined before it.
pub fn merge_env<'a>(sources: impl IntoIterator<Item = &'a [EnvVar]>) -> Vec<EnvVar> {
    let mut merged: Vec<EnvVar> = Vec::new();
    for var in sources.into_iter().flatten() {
        merged.retain(|existing| existing.name != var.name);
        merged.push(var.clone());
    }
    merged
}

/// What an experiment needs to exist before its Job can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DependencyKind {
    ConfigMap,
    Secret,
    /// A file on the node: only its fields can be checked, not its existence.
    HostFile,
}

impl fmt::Display for DependencyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
            Self::HostFile => "hostFileVolume",
        })
    }
}

/// One dependency of an experiment run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub kind: DependencyKind,
    pub name: String,
    /// Empty for a ConfigMap an env var reads (`mounted` false).
    pub mount_path: String,
    /// For host files only.
    pub node_path: Option<String>,
    pub origin: FieldOrigin,
    /// False for a ConfigMap read by an env var (`valueFrom.configMapKeyRef`, a sidecar's
    /// `envFrom.configMapRef`): no volume, only its existence matters.
    pub mounted: bool,
}

/// The ConfigMaps the containers' env reads and cannot start without (not `optional`), with
/// the field that names each: the kubelet would leave the pod in `CreateContainerConfigError`
/// until the status-check timeout. Secrets read this way are not listed: the Litmus users' Role
/// cannot read Secrets, so their existence is left to the kubelet.
fn env_config_maps(run: &ExperimentRun) -> Vec<(String, FieldOrigin)> {
    let mut found = Vec::new();
    for var in &run.env {
        let reference = var
            .value_from
            .as_ref()
            .and_then(|v| v.config_map_key_ref.as_ref());
        if let (Some(reference), Some(origin)) = (reference, run.env_origins.get(&var.name))
            && reference.optional != Some(true)
        {
            let mut origin = origin.clone();
            origin.path.push_str(".valueFrom.configMapKeyRef");
            found.push((reference.name.clone(), origin));
        }
    }
    for (sidecar_index, sidecar) in run.sidecars.iter().enumerate() {
        let sidecar_origin = |path: String| FieldOrigin {
            kind: ObjectKind::ChaosEngine,
            object: run.engine_name.clone(),
            path: format!("spec.components.sidecar[{sidecar_index}].{path}"),
        };
        for (index, var) in sidecar.env.iter().enumerate() {
            let reference = var
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref());
            if let Some(reference) = reference.filter(|r| r.optional != Some(true)) {
                let origin = sidecar_origin(format!("env[{index}].valueFrom.configMapKeyRef"));
                found.push((reference.name.clone(), origin));
            }
        }
        for (index, source) in sidecar.env_from.iter().enumerate() {
            if let Some(reference) = source
                .config_map_ref
                .as_ref()
                .filter(|r| r.optional != Some(true))
            {
                let origin = sidecar_origin(format!("envFrom[{index}].configMapRef"));
                found.push((reference.name.clone(), origin));
            }
        }
    }
    found
}

/// The run's ConfigMaps, Secrets (the experiment's and the sidecars') and host files, and the
/// ConfigMaps its env reads (each ConfigMap once).
pub fn dependencies(run: &ExperimentRun) -> Vec<Dependency> {
    let mounted = |kind: DependencyKind, volume: &MountedVolume| Dependency {
        kind,
        name: volume.name.clone(),
        mount_path: volume.mount_path.clone(),
        node_path: None,
        origin: volume.origin.clone(),
        mounted: true,
    };
    let mut found: Vec<Dependency> = Vec::new();
    found.extend(
        run.config_maps
            .iter()
            .map(|v| mounted(DependencyKind::ConfigMap, v)),
    );
    found.extend(
        run.secrets
            .iter()
            .map(|v| mounted(DependencyKind::Secret, v)),
    );
    for sidecar in &run.sidecars {
        for secret in &sidecar.secrets {
            let already = found
                .iter()
                .any(|dep| dep.kind == DependencyKind::Secret && dep.name == secret.name);
            if secret.name.is_empty() || !already {
                found.push(mounted(DependencyKind::Secret, secret));
            }
        }
    }
    found.extend(run.host_file_volumes.iter().map(|host| Dependency {
        kind: DependencyKind::HostFile,
        name: host.name.clone(),
        mount_path: host.mount_path.clone(),
        node_path: Some(host.node_path.clone()),
        origin: host.origin.clone(),
        mounted: true,
    }));
    for (name, origin) in env_config_maps(run) {
        let known = found
            .iter()
            .any(|dep| dep.kind == DependencyKind::ConfigMap && dep.name == name);
        if name.is_empty() || !known {
            found.push(Dependency {
                kind: DependencyKind::ConfigMap,
                name,
                mount_path: String::new(),
                node_path: None,
                origin,
                mounted: false,
            });
        }
    }
    found
}

/// One structural problem of a run, naming the object and field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StructureError {
    #[error("{origin}.{field} is empty")]
    EmptyField {
        origin: FieldOrigin,
        field: &'static str,
    },
    #[error(
        "ChaosExperiment {experiment}: spec.definition.image is empty and ChaosEngine {engine} sets no experimentImage"
    )]
    NoImage { experiment: String, engine: String },
    #[error("volume name {name:?} is used by both {first} and {second}")]
    VolumeNameClash {
        name: String,
        first: FieldOrigin,
        second: FieldOrigin,
    },
    /// No ConfigMap or Secret can have this name (and a request for it may not even be built).
    #[error("{origin}.{field} {value:?} is not a valid object name ({OBJECT_NAME_RULE})")]
    InvalidName {
        origin: FieldOrigin,
        field: &'static str,
        value: String,
    },
    #[error(
        "ChaosResult name {name:?} (<engine>-<experiment>-<INSTANCE_ID>, INSTANCE_ID from {origin}) is not a valid object name ({OBJECT_NAME_RULE}): the experiment could never write its result"
    )]
    InvalidResultName { name: String, origin: String },
}

/// All structural problems of a run, in field order (never empty).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct StructureErrors(pub Vec<StructureError>);

/// Checks what needs no cluster: an image (the sidecars' too), and name + mountPath (+ nodePath
/// for host files) on every dependency, ConfigMap and Secret names that an object can have, no
/// volume name used for two different volumes, env vars with names, and a ChaosResult name the
/// experiment can write.
// Long on purpose: one pass per kind of field, in the order the problems are reported.
pub fn check_structure(run: &ExperimentRun) -> Result<(), StructureErrors> {
    let mut problems = Vec::new();
    if run.image.is_empty() {
        problems.push(StructureError::NoImage {
            experiment: run.experiment_name.clone(),
            engine: run.engine_name.clone(),
        });
    }
    for (index, sidecar) in run.sidecars.iter().enumerate() {
        if sidecar.image.is_empty() {
            problems.push(StructureError::EmptyField {
                origin: FieldOrigin {
                    kind: ObjectKind::ChaosEngine,
                    object: run.engine_name.clone(),
                    path: format!("spec.components.sidecar[{index}]"),
                },
                field: "image",
            });
        }
    }
    for var in &run.env {
        let Some(origin) = run.env_origins.get(&var.name) else {
            continue;
        };
        if var.name.is_empty() {
            problems.push(StructureError::EmptyField {
                origin: origin.clone(),
                field: "name",
            });
        }
        let secret = var
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref());
        if let Some(secret) = secret {
            let mut origin = origin.clone();
            origin.path.push_str(".valueFrom.secretKeyRef");
            problems.extend(name_problem(&origin, &secret.name));
        }
    }
    let mut volume_names: BTreeMap<&str, (DependencyKind, &FieldOrigin)> = BTreeMap::new();
    let dependencies = dependencies(run);
    for dependency in &dependencies {
        let empty = |field: &'static str| StructureError::EmptyField {
            origin: dependency.origin.clone(),
            field,
        };
        if dependency.kind == DependencyKind::HostFile {
            if dependency.name.is_empty() {
                problems.push(empty("name"));
            }
        } else {
            problems.extend(name_problem(&dependency.origin, &dependency.name));
        }
        if !dependency.mounted {
            continue;
        }
        if dependency.mount_path.is_empty() {
            problems.push(empty("mountPath"));
        }
        if dependency.node_path.as_deref() == Some("") {
            problems.push(empty("nodePath"));
        }
        if dependency.name.is_empty() {
            continue;
        }
        match volume_names.get(dependency.name.as_str()) {
            // The same Secret for the experiment and a sidecar shares one volume.
            Some((kind, _)) if *kind == dependency.kind && *kind != DependencyKind::HostFile => {}
            Some((_, first)) => problems.push(StructureError::VolumeNameClash {
                name: dependency.name.clone(),
                first: (*first).clone(),
                second: dependency.origin.clone(),
            }),
            None => {
                volume_names.insert(&dependency.name, (dependency.kind, &dependency.origin));
            }
        }
    }
    if let Some(instance) = run.instance_id() {
        let name = run.result_name();
        if !is_object_name(&name) {
            let origin = run
                .env_origins
                .get("INSTANCE_ID")
                .map_or_else(|| format!("INSTANCE_ID {instance:?}"), ToString::to_string);
            problems.push(StructureError::InvalidResultName { name, origin });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StructureErrors(problems))
    }
}

/// An empty name, or one no ConfigMap or Secret can have.
fn name_problem(origin: &FieldOrigin, name: &str) -> Option<StructureError> {
    if name.is_empty() {
        Some(StructureError::EmptyField {
            origin: origin.clone(),
            field: "name",
        })
    } else if !is_object_name(name) {
        Some(StructureError::InvalidName {
            origin: origin.clone(),
            field: "name",
            value: name.to_owned(),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::crd::{
        ChaosEngineSpec, EngineExperiment, EngineExperimentSpec, ExperimentDefinition,
        HostFileVolumeSource, StatusCheckTimeoutsSpec,
    };

    fn var(name: &str, value: &str) -> EnvVar {
        plain_var(name, value)
    }

    fn engine_with(overrides: ExperimentOverrides) -> ChaosEngine {
        let mut engine = ChaosEngine::new(
            "demo",
            ChaosEngineSpec {
                experiments: vec![EngineExperiment {
                    name: "pod-delete".into(),
                    spec: EngineExperimentSpec {
                        components: overrides,
                        probe: Vec::new(),
                    },
                }],
                ..ChaosEngineSpec::default()
            },
        );
        engine.metadata.uid = Some("uid-1".into());
        engine.metadata.namespace = Some("litmus".into());
        engine
    }

    fn experiment(definition: ExperimentDefinition) -> ChaosExperiment {
        ChaosExperiment::new("pod-delete", definition)
    }

    fn run(engine: &ChaosEngine, definition: ExperimentDefinition) -> ExperimentRun {
        merge(engine, &experiment(definition), &RunnerEnv::offline(engine)).unwrap()
    }

    fn names(env: &[EnvVar]) -> Vec<&str> {
        env.iter().map(|var| var.name.as_str()).collect()
    }

    #[test]
    fn env_follows_contract_order_and_later_sources_win_at_their_position() {
        let engine = engine_with(ExperimentOverrides {
            env: vec![
                var("TOTAL_CHAOS_DURATION", "60"),
                var("POD_NAME", "x"),
                var("EXTRA", "1"),
            ],
            ..ExperimentOverrides::default()
        });
        let merged = run(
            &engine,
            ExperimentDefinition {
                image: "img".into(),
                env: vec![
                    var("TOTAL_CHAOS_DURATION", "15"),
                    var("RAMP_TIME", ""),
                    var("CHAOSENGINE", "wrong"),
                ],
                ..ExperimentDefinition::default()
            },
        );
        assert_eq!(
            names(&merged.env),
            [
                "CHAOS_NAMESPACE",
                "CHAOS_UID",
                "EXPERIMENT_NAME",
                "LIB_IMAGE_PULL_POLICY",
                "TERMINATION_GRACE_PERIOD_SECONDS",
                "DEFAULT_HEALTH_CHECK",
                "RAMP_TIME",
                "CHAOSENGINE",
                "TOTAL_CHAOS_DURATION",
                "EXTRA",
                "STATUS_CHECK_DELAY",
                "STATUS_CHECK_TIMEOUT",
                "POD_NAME",
            ]
        );
        assert_eq!(merged.env_value("CHAOSENGINE"), Some("wrong"));
        assert_eq!(merged.total_chaos_duration_seconds(), Some(60));
        assert_eq!(
            merged.env_value("TERMINATION_GRACE_PERIOD_SECONDS"),
            Some("0")
        );
        assert_eq!(merged.env_value("DEFAULT_HEALTH_CHECK"), Some("false"));
        // POD_NAME once, from the downward API.
        let pod_name: Vec<_> = merged.env.iter().filter(|v| v.name == "POD_NAME").collect();
        assert_eq!(pod_name.len(), 1);
        assert!(pod_name[0].value.is_none());
        assert_eq!(
            pod_name[0]
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.name"
        );
    }

    proptest::proptest! {
        #[test]
        fn merged_env_has_unique_names_last_value_wins_at_last_position(
            sources in proptest::collection::vec(
                proptest::collection::vec(("[A-D]", "[a-z]{0,3}"), 0..6), 0..5)
        ) {
            let sources: Vec<Vec<EnvVar>> = sources
                .into_iter()
                .map(|source| source.into_iter().map(|(name, value)| var(&name, &value)).collect())
                .collect();
            let merged = merge_env(sources.iter().map(Vec::as_slice));
            let all: Vec<&EnvVar> = sources.iter().flatten().collect();
            // Expected: for each name, its last occurrence; ordered by those positions.
            let mut last: Vec<(usize, &EnvVar)> = all
                .iter()
                .enumerate()
                .filter(|(index, var)| all[index + 1..].iter().all(|later| later.name != var.name))
                .map(|(index, var)| (index, *var))
                .collect();
            last.sort_by_key(|(index, _)| *index);
            let expected: Vec<EnvVar> = last.into_iter().map(|(_, var)| var.clone()).collect();
            proptest::prop_assert_eq!(merged, expected);
        }
    }

    #[test]
    fn status_check_timeouts_are_forced_over_user_env() {
        let engine = engine_with(ExperimentOverrides {
            env: vec![var("STATUS_CHECK_TIMEOUT", "5")],
            status_check_timeouts: StatusCheckTimeoutsSpec {
                delay: Some(0),
                timeout: Some(300),
            },
            ..ExperimentOverrides::default()
        });
        let merged = run(&engine, ExperimentDefinition::default());
        assert_eq!(
            merged.status_check_timeouts(),
            StatusCheckTimeouts {
                delay_seconds: 2,
                timeout_seconds: 300
            }
        );
        assert_eq!(merged.env_value("STATUS_CHECK_DELAY"), Some("2"));
        assert_eq!(merged.env_value("STATUS_CHECK_TIMEOUT"), Some("300"));
    }

    #[test]
    fn volumes_merge_by_name_replacing_mount_path_in_place() {
        let engine = engine_with(ExperimentOverrides {
            config_maps: vec![
                VolumeSource {
                    name: "b".into(),
                    mount_path: "/engine/b".into(),
                },
                VolumeSource {
                    name: "c".into(),
                    mount_path: "/engine/c".into(),
                },
            ],
            ..ExperimentOverrides::default()
        });
        let merged = run(
            &engine,
            ExperimentDefinition {
                config_maps: vec![
                    VolumeSource {
                        name: "a".into(),
                        mount_path: "/a".into(),
                    },
                    VolumeSource {
                        name: "b".into(),
                        mount_path: "/b".into(),
                    },
                ],
                ..ExperimentDefinition::default()
            },
        );
        let pairs: Vec<_> = merged
            .config_maps
            .iter()
            .map(|v| (v.name.as_str(), v.mount_path.as_str()))
            .collect();
        assert_eq!(pairs, [("a", "/a"), ("b", "/engine/b"), ("c", "/engine/c")]);
        assert_eq!(
            merged.config_maps[1].origin.to_string(),
            "ChaosEngine demo: spec.experiments[0].spec.components.configMaps[0]"
        );
    }

    #[test]
    fn structure_errors_name_object_and_field() {
        let engine = engine_with(ExperimentOverrides {
            config_maps: vec![
                VolumeSource {
                    name: "ok".into(),
                    mount_path: "/ok".into(),
                },
                VolumeSource {
                    name: "cfg".into(),
                    mount_path: String::new(),
                },
            ],
            secrets: vec![VolumeSource {
                name: "ok".into(),
                mount_path: "/s".into(),
            }],
            ..ExperimentOverrides::default()
        });
        let merged = run(
            &engine,
            ExperimentDefinition {
                image: "img".into(),
                host_file_volumes: vec![HostFileVolumeSource {
                    name: "sock".into(),
                    mount_path: "/run/sock".into(),
                    ..HostFileVolumeSource::default()
                }],
                ..ExperimentDefinition::default()
            },
        );
        let errors = check_structure(&merged).unwrap_err();
        let messages: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "ChaosEngine demo: spec.experiments[0].spec.components.configMaps[1].mountPath is empty",
                "volume name \"ok\" is used by both ChaosEngine demo: spec.experiments[0].spec.components.configMaps[0] and ChaosEngine demo: spec.experiments[0].spec.components.secrets[0]",
                "ChaosExperiment pod-delete: spec.definition.hostFileVolumes[0].nodePath is empty",
            ]
        );
        let host = dependencies(&merged).pop().unwrap();
        assert_eq!(host.kind, DependencyKind::HostFile);
        assert_eq!(merged.host_file_volumes[0].type_, "File");
    }

    fn config_map_ref(name: &str, optional: Option<bool>) -> Option<EnvVarSource> {
        Some(EnvVarSource {
            config_map_key_ref: Some(k8s_openapi::api::core::v1::ConfigMapKeySelector {
                name: name.into(),
                key: "k".into(),
                optional,
            }),
            ..EnvVarSource::default()
        })
    }

    #[test]
    fn env_config_map_references_are_dependencies_named_by_their_field() {
        // fixtures/bad/engine-valuefrom-*: a missing ConfigMap read by an env var left the pod
        // in CreateContainerConfigError until the status-check timeout; now it is checked first.
        let engine = engine_with(ExperimentOverrides {
            env: vec![
                EnvVar {
                    name: "TARGET".into(),
                    value: None,
                    value_from: config_map_ref("targets", None),
                },
                EnvVar {
                    name: "MAYBE".into(),
                    value: None,
                    value_from: config_map_ref("absent-is-fine", Some(true)),
                },
                EnvVar {
                    name: "MOUNTED".into(),
                    value: None,
                    value_from: config_map_ref("settings", None),
                },
            ],
            config_maps: vec![VolumeSource {
                name: "settings".into(),
                mount_path: "/etc/settings".into(),
            }],
            ..ExperimentOverrides::default()
        });
        let merged = run(
            &engine,
            ExperimentDefinition {
                image: "img".into(),
                ..ExperimentDefinition::default()
            },
        );
        let found: Vec<(String, bool, String)> = dependencies(&merged)
            .into_iter()
            .map(|d| (d.name, d.mounted, d.origin.to_string()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "settings".to_owned(),
                    true,
                    "ChaosEngine demo: spec.experiments[0].spec.components.configMaps[0]".to_owned()
                ),
                (
                    "targets".to_owned(),
                    false,
                    "ChaosEngine demo: spec.experiments[0].spec.components.env[0].valueFrom.configMapKeyRef"
                        .to_owned()
                ),
            ]
        );
        assert_eq!(check_structure(&merged), Ok(()));
    }

    #[test]
    fn names_no_object_can_have_and_unnamed_env_vars_are_structure_errors() {
        // fixtures/bad/engine-configmap-name-invalid, -instance-id-invalid, -env-without-name,
        // -sidecar-without-image: the ConfigMap name with a space made a request the runner
        // could not build (exit 1, restarted for ever); the others made a Job the API server
        // refuses or a ChaosResult name the experiment cannot write.
        let mut engine = engine_with(ExperimentOverrides {
            env: vec![var("", "x"), var("INSTANCE_ID", "run 1")],
            config_maps: vec![VolumeSource {
                name: "my config".into(),
                mount_path: "/etc/x".into(),
            }],
            ..ExperimentOverrides::default()
        });
        engine.spec.components.sidecar = vec![crate::contract::crd::Sidecar::default()];
        engine.metadata.annotations = Some(BTreeMap::from([(
            crate::contract::crd::SIDECAR_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
        let merged = run(
            &engine,
            ExperimentDefinition {
                image: "img".into(),
                ..ExperimentDefinition::default()
            },
        );
        let messages: Vec<String> = check_structure(&merged)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        let path = "ChaosEngine demo: spec.experiments[0].spec.components";
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert_eq!(
            messages[0],
            "ChaosEngine demo: spec.components.sidecar[0].image is empty"
        );
        assert_eq!(messages[1], format!("{path}.env[0].name is empty"));
        assert!(
            messages[2].starts_with(&format!(
                "{path}.configMaps[0].name \"my config\" is not a valid object name"
            )),
            "{}",
            messages[2]
        );
        assert!(
            messages[3].starts_with(&format!(
                "ChaosResult name \"demo-pod-delete-run 1\" (<engine>-<experiment>-<INSTANCE_ID>, INSTANCE_ID from {path}.env[1])"
            )),
            "{}",
            messages[3]
        );
    }

    #[test]
    fn missing_image_and_missing_uid_are_reported() {
        let engine = engine_with(ExperimentOverrides::default());
        let merged = run(&engine, ExperimentDefinition::default());
        assert!(matches!(
            check_structure(&merged).unwrap_err().0.as_slice(),
            [StructureError::NoImage { .. }]
        ));
        let mut no_uid = engine.clone();
        no_uid.metadata.uid = None;
        let error = merge(
            &no_uid,
            &experiment(ExperimentDefinition::default()),
            &RunnerEnv::offline(&engine),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "ChaosEngine demo: metadata.uid is empty (needed for the chaosUID label)"
        );
    }

    #[test]
    fn labels_keep_chaos_uid_and_engine_labels_win_otherwise() {
        let mut engine = engine_with(ExperimentOverrides::default());
        engine.metadata.labels = Some(BTreeMap::from([
            ("name".to_owned(), "engine".to_owned()),
            (CHAOS_UID_LABEL.to_owned(), "forged".to_owned()),
        ]));
        let merged = run(
            &engine,
            ExperimentDefinition {
                labels: BTreeMap::from([
                    ("name".to_owned(), "pod-delete".to_owned()),
                    ("app".to_owned(), "x".to_owned()),
                ]),
                ..ExperimentDefinition::default()
            },
        );
        assert_eq!(merged.labels["name"], "engine");
        assert_eq!(merged.labels["app"], "x");
        assert_eq!(merged.labels[CHAOS_UID_LABEL], "uid-1");
    }

    #[test]
    fn result_name_uses_instance_id_from_merged_env() {
        assert_eq!(result_name("e", "x", None), "e-x");
        assert_eq!(result_name("e", "x", Some("")), "e-x");
        assert_eq!(result_name("e", "x", Some("7")), "e-x-7");
        let engine = engine_with(ExperimentOverrides {
            env: vec![var("INSTANCE_ID", "abc")],
            ..ExperimentOverrides::default()
        });
        assert_eq!(
            run(&engine, ExperimentDefinition::default()).result_name(),
            "demo-pod-delete-abc"
        );
    }

    #[test]
    fn sidecars_only_when_annotation_enables_them() {
        let mut engine = engine_with(ExperimentOverrides::default());
        engine.spec.components.sidecar = vec![crate::contract::crd::Sidecar {
            image: "sidecar:1".into(),
            ..crate::contract::crd::Sidecar::default()
        }];
        assert!(
            run(&engine, ExperimentDefinition::default())
                .sidecars
                .is_empty()
        );
        engine.metadata.annotations = Some(BTreeMap::from([(
            crate::contract::crd::SIDECAR_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
        let merged = run(&engine, ExperimentDefinition::default());
        assert_eq!(merged.sidecars.len(), 1);
        assert_eq!(merged.sidecars[0].image_pull_policy, "IfNotPresent");
    }

    #[test]
    fn unlisted_experiment_gets_no_overrides_and_empty_lists_are_fine() {
        let engine = engine_with(ExperimentOverrides::default());
        let other = ChaosExperiment::new("container-kill", ExperimentDefinition::default());
        let merged = merge(&engine, &other, &RunnerEnv::offline(&engine)).unwrap();
        assert_eq!(merged.engine_entry, None);
        assert!(merged.tolerations.is_empty() && merged.image_pull_secrets.is_empty());
        assert_eq!(merged.image_pull_policy, "Always");
        assert_eq!(merged.labels.len(), 1);
    }
}
