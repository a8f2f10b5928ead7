//! The LitmusChaos custom resources (`litmuschaos.io/v1alpha1`): ChaosEngine, ChaosExperiment,
//! ChaosResult.
//!
//! Hand-written serde types rather than `#[derive(CustomResource)]`: every field is optional or
//! defaulted (an explicit `null` reads as the default too), so objects written by other versions
//! of Litmus still parse. Where the runner writes an object back (the engine's `status`), unknown
//! keys are kept in `extra` so a patch built from a read object does not drop them. Contract
//! strings are enums with an `Other(String)` variant that keeps values this version does not know.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements,
    SecurityContext, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// API group of the Litmus custom resources.
pub const GROUP: &str = "litmuschaos.io";
/// API version of the Litmus custom resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` string of the Litmus custom resources.
pub const API_VERSION: &str = "litmuschaos.io/v1alpha1";

/// The ChaosEngine as a dynamic resource (the runner reads and patches it untyped, so that
/// fields it does not know survive its writes).
pub fn engine_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("litmuschaos.io", "v1alpha1", "ChaosEngine"),
        "chaosengines",
    )
}

/// The stack of the thread of [`read_however_deep`]: serde recurses once per level of nesting
/// (a few hundred bytes each). The API server decodes JSON at most 10,000 levels deep and
/// `managedFields` mirror a field's nesting about twice over: a few MiB at most. Reserved, not
/// touched, beyond what the nesting uses.
const DEEP_READ_STACK: usize = 64 << 20;

/// Decodes a `T` from `json` however deeply it is nested, and gives it to `take`: serde_json
/// refuses more than 128 levels, which a CRD's `x-kubernetes-preserve-unknown-fields` lets a
/// user store (and the object's `managedFields` mirror). Decoded without that limit on a thread
/// whose stack fits the nesting, where `take` runs and the `T` is dropped too (dropping a deep
/// value recurses as well); only what `take` returns comes back.
pub fn read_however_deep<T, R>(
    json: String,
    take: impl FnOnce(T) -> R + Send + 'static,
) -> Result<R, String>
where
    T: serde::de::DeserializeOwned,
    R: Send + 'static,
{
    let reader = std::thread::Builder::new()
        .name("deep-read".into())
        .stack_size(DEEP_READ_STACK)
        .spawn(move || {
            let mut deserializer = serde_json::Deserializer::from_str(&json);
            deserializer.disable_recursion_limit();
            T::deserialize(&mut deserializer).map(take)
        })
        .map_err(|error| format!("cannot start a thread to read it: {error}"))?;
    match reader.join() {
        Ok(read) => read.map_err(|error| error.to_string()),
        Err(_) => Err("reading it panicked".into()),
    }
}

/// `metadata.uid` of an object in `json`, however deep ([`read_however_deep`]); everything
/// else is skipped. `Ok(None)` when the object has none.
pub fn uid_however_deep(json: String) -> Result<Option<String>, String> {
    #[derive(Deserialize)]
    struct Metadata {
        #[serde(default)]
        uid: Option<String>,
    }
    #[derive(Deserialize)]
    struct Object {
        metadata: Metadata,
    }
    read_however_deep(json, |object: Object| object.metadata.uid)
}

/// Engine annotation that enables `spec.components.sidecar` (any value but `"false"`).
pub const SIDECAR_ANNOTATION: &str = "sidecar/enabled";

/// Reads an explicit `null` as the type's default (serde's `default` only covers a missing key).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads `null` and `""` as `None`: the Go types use `omitempty`, so both mean "unset".
fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.filter(|value| !value.is_empty()).map(T::from))
}

/// Reads a field of an object another program writes (the experiment pod writes the
/// ChaosResult): a value of the wrong shape reads as the default instead of failing the whole
/// object, so one odd field cannot keep the runner from the verdict.
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

/// Reads a contract string written by another program: `null` and `""` mean unset, any other
/// scalar reads as its text (`42` as `"42"`), a list or map as its JSON, so an odd value is kept
/// (and reported as unknown) instead of failing the whole object.
fn lenient_text<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) if text.is_empty() => None,
        serde_json::Value::String(text) => Some(T::from(text)),
        other => Some(T::from(other.to_string())),
    })
}

/// What an object name may be, for messages.
pub const OBJECT_NAME_RULE: &str = "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters";
/// What a namespace name may be, for messages.
pub const DNS_LABEL_RULE: &str = "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

/// Whether `name` can name a ConfigMap, a Secret or a custom resource (ChaosEngine,
/// ChaosExperiment, ChaosResult): an RFC 1123 subdomain. The API server refuses any other name,
/// so no such object can exist (and a name with a space or a `/` would not even make a request).
pub fn is_object_name(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label_text)
}

/// Whether `name` can name a namespace: an RFC 1123 label.
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && is_dns_label_text(name)
}

fn is_dns_label_text(text: &str) -> bool {
    let alphanumeric = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alphanumeric(first)
                && alphanumeric(last)
                && bytes.iter().all(|byte| alphanumeric(byte) || *byte == b'-')
        }
        _ => false,
    }
}

/// An object from the API that does not decode, with the field that does not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct DecodeError {
    /// The field, e.g. `spec.experiments[0].spec.components.resources.limits`; empty when the
    /// object as a whole is wrong (not a map).
    pub path: String,
    pub message: String,
}

/// Decodes an object read from the API (a ChaosEngine, a ChaosExperiment) so that an error
/// names the field: serde_json reports none for a `Value`, and "invalid type: string, expected
/// a map" alone does not tell a user what to fix.
///
/// The field is found on the error path only, by removing one key or element at a time (every
/// field of these types may be absent) and descending into the one whose removal makes the
/// object decode.
pub fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, DecodeError> {
    // Decoded from a reference: the value is cloned only on the error path, to find the field.
    let error = match T::deserialize(&value) {
        Ok(decoded) => return Ok(decoded),
        Err(error) => error,
    };
    let mut pointer = String::new();
    let mut path = String::new();
    loop {
        let children: Vec<(String, String)> = match value.pointer(&pointer) {
            Some(serde_json::Value::Object(map)) => map
                .keys()
                .map(|key| {
                    let token = key.replace('~', "~0").replace('/', "~1");
                    let shown = if path.is_empty() {
                        key.clone()
                    } else {
                        format!(".{key}")
                    };
                    (token, shown)
                })
                .collect(),
            Some(serde_json::Value::Array(items)) => (0..items.len())
                .map(|index| (index.to_string(), format!("[{index}]")))
                .collect(),
            _ => break,
        };
        let culprit = children.into_iter().find(|(token, _)| {
            let mut trial = value.clone();
            match trial.pointer_mut(&pointer) {
                Some(serde_json::Value::Object(map)) => {
                    let key = token.replace("~1", "/").replace("~0", "~");
                    map.remove(&key);
                }
                Some(serde_json::Value::Array(items)) => {
                    if let Ok(index) = token.parse::<usize>() {
                        items.remove(index);
                    }
                }
                _ => return false,
            }
            serde_json::from_value::<T>(trial).is_ok()
        });
        let Some((token, shown)) = culprit else {
            break;
        };
        pointer = format!("{pointer}/{token}");
        path.push_str(&shown);
    }
    Err(DecodeError {
        path,
        message: error.to_string(),
    })
}

/// Reads a bool written either as a YAML/JSON bool or as the text `true`/`false`
/// (empty text and `null` mean unset).
fn bool_or_text<'de, D>(deserializer: D) -> Result<Option<bool>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrText {
        Bool(bool),
        Text(String),
    }
    match Option::<BoolOrText>::deserialize(deserializer)? {
        None => Ok(None),
        Some(BoolOrText::Bool(value)) => Ok(Some(value)),
        Some(BoolOrText::Text(text)) if text.is_empty() => Ok(None),
        Some(BoolOrText::Text(text)) => text.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("expected true or false, found {text:?}"))
        }),
    }
}

/// Declares an enum of contract strings that keeps unknown values in `Other`.
macro_rules! contract_strings {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
            /// A value this version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The exact contract string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Other(text) => text,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $( $text => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                match Self::from(text.as_str()) {
                    Self::Other(_) => Self::Other(text),
                    known => known,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(Self::from(String::deserialize(deserializer)?))
            }
        }
    };
}

contract_strings! {
    /// `spec.engineState` of a ChaosEngine.
    pub enum EngineState {
        Active => "active",
        Stop => "stop",
    }
}

contract_strings! {
    /// `spec.jobCleanUpPolicy` of a ChaosEngine. Unset means retain; only the exact `delete`
    /// deletes (see [`JobCleanUpPolicy::deletes`]).
    pub enum JobCleanUpPolicy {
        Delete => "delete",
        Retain => "retain",
    }
}

impl JobCleanUpPolicy {
    /// Whether Jobs are deleted after the experiment: only for the exact string `delete`.
    pub fn deletes(&self) -> bool {
        matches!(self, Self::Delete)
    }
}

contract_strings! {
    /// `status.engineStatus` of a ChaosEngine (written by the operator only).
    pub enum EngineStatus {
        Initialized => "initialized",
        Completed => "completed",
        Stopped => "stopped",
    }
}

contract_strings! {
    /// `status.experiments[].status` of a ChaosEngine.
    pub enum ExperimentStatusValue {
        WaitingForJobCreation => "Waiting for Job Creation",
        Running => "Running",
        Completed => "Completed",
        NotFound => "ChaosExperiment Not Found",
        Skipped => "Skipped",
        /// Written by the operator on abort, never by the runner.
        ForcefullyAborted => "Forcefully Aborted",
    }
}

contract_strings! {
    /// A verdict, as in `status.experiments[].verdict` of a ChaosEngine and
    /// `status.experimentStatus.verdict` of a ChaosResult.
    pub enum Verdict {
        NotApplicable => "N/A",
        Awaited => "Awaited",
        Pass => "Pass",
        Fail => "Fail",
        Stopped => "Stopped",
        Error => "Error",
    }
}

contract_strings! {
    /// `status.experimentStatus.phase` of a ChaosResult.
    pub enum ResultPhase {
        Running => "Running",
        Completed => "Completed",
        CompletedWithError => "Completed_With_Error",
        CompletedWithProbeFailure => "Completed_With_Probe_Failure",
        Stopped => "Stopped",
        Error => "Error",
    }
}

/// Implements the k8s-openapi traits, which give kube's `Resource` through its blanket impl.
macro_rules! litmus_resource {
    ($name:ident, $kind:literal, $plural:literal) => {
        impl k8s_openapi::Resource for $name {
            const API_VERSION: &'static str = API_VERSION;
            const GROUP: &'static str = GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = VERSION;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $name {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }

        impl $name {
            /// The object's `metadata.name`, empty when unset.
            pub fn name(&self) -> &str {
                self.metadata.name.as_deref().unwrap_or_default()
            }
        }
    };
}

fn engine_api_version() -> String {
    API_VERSION.to_owned()
}
fn engine_kind() -> String {
    "ChaosEngine".to_owned()
}
fn experiment_kind() -> String {
    "ChaosExperiment".to_owned()
}
fn result_kind() -> String {
    "ChaosResult".to_owned()
}

// ---------------------------------------------------------------------------------------------
// ChaosEngine

/// A ChaosEngine: which experiments to run against which application, with overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChaosEngine {
    #[serde(default = "engine_api_version")]
    pub api_version: String,
    #[serde(default = "engine_kind")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: ChaosEngineSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ChaosEngineStatus>,
}
litmus_resource!(ChaosEngine, "ChaosEngine", "chaosengines");

/// `spec` of a ChaosEngine (the fields the runner reads; others are ignored).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChaosEngineSpec {
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub engine_state: Option<EngineState>,
    /// Unset (or empty) means retain.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub job_clean_up_policy: Option<JobCleanUpPolicy>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub chaos_service_account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// A bool in Litmus 3.x; older engines wrote the strings `"true"`/`"false"`, read too.
    #[serde(
        default,
        deserialize_with = "bool_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_health_check: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appinfo: Option<AppInfo>,
    /// Opaque to the runner (the operator turns it into `TARGETS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectors: Option<serde_json::Value>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub auxiliary_app_info: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub components: EngineComponents,
    #[serde(default, deserialize_with = "null_as_default")]
    pub experiments: Vec<EngineExperiment>,
}

/// `spec.appinfo` of a ChaosEngine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppInfo {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub appns: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub applabel: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub appkind: String,
}

/// `spec.components` of a ChaosEngine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineComponents {
    #[serde(default, deserialize_with = "null_as_default")]
    pub runner: RunnerComponent,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sidecar: Vec<Sidecar>,
}

/// `spec.components.runner` of a ChaosEngine (used by the operator for the runner pod).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerComponent {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub image: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub image_pull_policy: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub command: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub runner_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub runner_annotations: BTreeMap<String, String>,
}

/// One entry of `spec.components.sidecar` of a ChaosEngine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub image: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub image_pull_policy: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub secrets: Vec<VolumeSource>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<EnvVar>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub env_from: Vec<EnvFromSource>,
}

/// A ConfigMap or Secret to mount: `{name, mountPath}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSource {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub mount_path: String,
}

/// One entry of `spec.experiments` of a ChaosEngine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineExperiment {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: EngineExperimentSpec,
}

/// `spec.experiments[].spec` of a ChaosEngine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineExperimentSpec {
    #[serde(default, deserialize_with = "null_as_default")]
    pub components: ExperimentOverrides,
    /// Probes are run by the experiment pod; opaque to the runner.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub probe: Vec<serde_json::Value>,
}

/// `spec.experiments[].spec.components` of a ChaosEngine: the engine's overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentOverrides {
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<EnvVar>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub config_maps: Vec<VolumeSource>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub secrets: Vec<VolumeSource>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub experiment_image: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub experiment_annotations: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub experiment_image_pull_secrets: Vec<LocalObjectReference>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub status_check_timeouts: StatusCheckTimeoutsSpec,
}

/// `statusCheckTimeouts` as written in the engine, in seconds; 0 or unset means the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCheckTimeoutsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// `status` of a ChaosEngine. Unknown keys are kept so that a read-modify-write keeps them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChaosEngineStatus {
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub engine_status: Option<EngineStatus>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub experiments: Vec<ExperimentStatus>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One entry of `status.experiments` of a ChaosEngine, written by the runner.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub runner: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub experiment_pod: String,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub status: Option<ExperimentStatusValue>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub verdict: Option<Verdict>,
    #[serde(default)]
    pub last_update_time: Option<Time>,
}

impl ChaosEngine {
    /// An engine with the given name and spec (apiVersion and kind set).
    pub fn new(name: &str, spec: ChaosEngineSpec) -> Self {
        Self {
            api_version: engine_api_version(),
            kind: engine_kind(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }

    /// Whether the `sidecar/enabled` annotation enables `spec.components.sidecar`: present
    /// with any value but `"false"`.
    pub fn sidecars_enabled(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(SIDECAR_ANNOTATION))
            .is_some_and(|value| value != "false")
    }

    /// `sidecar/enabled` set with no sidecar defined: the Go runner skips such an experiment
    /// (`SideCarPatchError`), and so do the run and `render`.
    pub fn sidecars_enabled_without_any(&self) -> bool {
        self.sidecars_enabled() && self.spec.components.sidecar.is_empty()
    }

    /// The first `spec.experiments` entry with this name, and its index.
    pub fn experiment_entry(&self, experiment: &str) -> Option<(usize, &EngineExperiment)> {
        self.spec
            .experiments
            .iter()
            .enumerate()
            .find(|(_, entry)| entry.name == experiment)
    }
}

// ---------------------------------------------------------------------------------------------
// ChaosExperiment

/// A ChaosExperiment: the image and defaults of one kind of chaos.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChaosExperiment {
    #[serde(default = "engine_api_version")]
    pub api_version: String,
    #[serde(default = "experiment_kind")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: ChaosExperimentSpec,
}
litmus_resource!(ChaosExperiment, "ChaosExperiment", "chaosexperiments");

impl ChaosExperiment {
    /// An experiment with the given name and definition (apiVersion and kind set).
    pub fn new(name: &str, definition: ExperimentDefinition) -> Self {
        Self {
            api_version: engine_api_version(),
            kind: experiment_kind(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec: ChaosExperimentSpec { definition },
        }
    }
}

/// `spec` of a ChaosExperiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChaosExperimentSpec {
    #[serde(default, deserialize_with = "null_as_default")]
    pub definition: ExperimentDefinition,
}

/// `spec.definition` of a ChaosExperiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentDefinition {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub image: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub image_pull_policy: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub command: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<EnvVar>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// `configMaps`, as the upstream CRD and the operator's Go types spell it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub config_maps: Vec<VolumeSource>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub secrets: Vec<VolumeSource>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub host_file_volumes: Vec<HostFileVolumeSource>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub security_context: ExperimentSecurityContext,
    #[serde(rename = "hostPID", default, deserialize_with = "null_as_default")]
    pub host_pid: bool,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub scope: String,
    /// RBAC rules the experiment needs; informative for the runner.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub permissions: Vec<serde_json::Value>,
}

/// `spec.definition.hostFileVolumes[]` of a ChaosExperiment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostFileVolumeSource {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub mount_path: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub node_path: String,
    /// hostPath type; empty means `File`.
    #[serde(
        rename = "type",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub type_: String,
}

/// `spec.definition.securityContext` of a ChaosExperiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSecurityContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_security_context: Option<SecurityContext>,
}

// ---------------------------------------------------------------------------------------------
// ChaosResult

/// A ChaosResult, written by the experiment pod; the runner only reads its verdict.
///
/// Read leniently below `metadata`: the experiment pod (any version, any image) writes it, so a
/// field of the wrong shape reads as unset and a verdict or phase that is not a string as its
/// text; the runner then records an unknown verdict as Error, naming it, rather than failing to
/// read the object (which made it exit and restart on the same object for ever).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChaosResult {
    #[serde(default = "engine_api_version")]
    pub api_version: String,
    #[serde(default = "result_kind")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "lenient")]
    pub spec: ChaosResultSpec,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<ChaosResultStatus>,
}
litmus_resource!(ChaosResult, "ChaosResult", "chaosresults");

impl ChaosResult {
    /// The verdict recorded by the experiment pod, if any.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.status
            .as_ref()
            .and_then(|status| status.experiment_status.verdict.as_ref())
    }

    /// The phase recorded by the experiment pod, if any.
    pub fn phase(&self) -> Option<&ResultPhase> {
        self.status
            .as_ref()
            .and_then(|status| status.experiment_status.phase.as_ref())
    }
    /// What the runner takes from it.
    pub fn reading(&self) -> ResultReading {
        let status = self.status.as_ref().map(|s| &s.experiment_status);
        ResultReading {
            verdict: self.verdict().map(|v| v.as_str().to_string()),
            phase: self
                .phase()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            fail_reason: status
                .and_then(|s| s.error_output.as_ref())
                .map(|e| e.reason.clone())
                .filter(|r| !r.is_empty()),
        }
    }
}

/// What the runner takes from a ChaosResult: the verdict, the phase, the failure's reason.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResultReading {
    pub verdict: Option<String>,
    pub phase: String,
    pub fail_reason: Option<String>,
}

/// `spec` of a ChaosResult.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChaosResultSpec {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub engine: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub experiment: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub instance: String,
}

/// `status` of a ChaosResult.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChaosResultStatus {
    #[serde(default, deserialize_with = "lenient")]
    pub experiment_status: ResultExperimentStatus,
    /// Run history kept by the experiment pod; opaque to the runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<serde_json::Value>,
}

/// `status.experimentStatus` of a ChaosResult.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultExperimentStatus {
    #[serde(
        default,
        deserialize_with = "lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub phase: Option<ResultPhase>,
    #[serde(
        default,
        deserialize_with = "lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub verdict: Option<Verdict>,
    /// A string such as `"100"` in current Litmus, a number in some older ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_success_percentage: Option<serde_json::Value>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_output: Option<ErrorOutput>,
}

/// `status.experimentStatus.errorOutput` of a ChaosResult.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorOutput {
    #[serde(default, deserialize_with = "null_as_default")]
    pub error_code: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub reason: String,
}

#[cfg(test)]
mod tests {
    /// `{"x":{"x":…}}` `levels` deep, as a string (no serde_json::Value that deep is built).
    fn nested(levels: usize) -> String {
        format!("{}{{}}{}", r#"{"x":"#.repeat(levels), "}".repeat(levels))
    }

    #[test]
    fn the_uid_is_read_however_deep_the_object_is_nested() {
        let levels = 40_000;
        let json = format!(
            r#"{{"kind":"ChaosEngine","spec":{},"metadata":{{"name":"e","uid":"u-1","managedFields":[{{"fieldsV1":{}}}]}}}}"#,
            nested(levels),
            nested(2 * levels)
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(&json)
                .unwrap_err()
                .to_string()
                .contains("recursion limit"),
            "serde_json's default limit refuses it"
        );
        assert_eq!(super::uid_however_deep(json), Ok(Some("u-1".into())));
        assert_eq!(
            super::uid_however_deep(r#"{"metadata":{}}"#.into()),
            Ok(None)
        );
        assert!(super::uid_however_deep("{".into()).is_err());
    }

    use super::*;

    #[test]
    fn contract_strings_round_trip_and_keep_unknown_values() {
        for text in [
            "Waiting for Job Creation",
            "Running",
            "Completed",
            "ChaosExperiment Not Found",
            "Skipped",
            "Forcefully Aborted",
        ] {
            let value = ExperimentStatusValue::from(text);
            assert!(!matches!(value, ExperimentStatusValue::Other(_)), "{text}");
            assert_eq!(value.as_str(), text);
        }
        assert_eq!(Verdict::from("N/A"), Verdict::NotApplicable);
        assert_eq!(
            ResultPhase::from("Completed_With_Probe_Failure"),
            ResultPhase::CompletedWithProbeFailure
        );
        let unknown: Verdict = serde_json::from_str("\"Maybe\"").unwrap();
        assert_eq!(unknown, Verdict::Other("Maybe".into()));
        assert_eq!(serde_json::to_string(&unknown).unwrap(), "\"Maybe\"");
    }

    #[test]
    fn only_exact_delete_deletes() {
        assert!(JobCleanUpPolicy::from("delete").deletes());
        for text in ["Delete", "retain", "DELETE", "delete "] {
            assert!(!JobCleanUpPolicy::from(text).deletes(), "{text}");
        }
    }

    #[test]
    fn engine_reads_with_nulls_missing_fields_and_unknown_keys() {
        let engine: ChaosEngine = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo"},
            "spec": {
                "jobCleanUpPolicy": "",
                "futureField": {"x": 1},
                "components": null,
                "experiments": [{"name": "pod-delete", "spec": {"components": {
                    "tolerations": null, "experimentImagePullSecrets": [], "env": null
                }}}]
            },
            "status": {"engineStatus": "initialized", "checkpoint": {"v": 1},
                       "experiments": [{"name": "pod-delete", "status": "Paused", "verdict": "Awaited"}]}
        }))
        .unwrap();
        assert_eq!(engine.name(), "demo");
        assert_eq!(engine.spec.job_clean_up_policy, None);
        assert!(
            engine.spec.experiments[0]
                .spec
                .components
                .tolerations
                .is_empty()
        );
        let status = engine.status.as_ref().unwrap();
        assert_eq!(status.engine_status, Some(EngineStatus::Initialized));
        assert_eq!(
            status.experiments[0].status,
            Some(ExperimentStatusValue::Other("Paused".into()))
        );
        assert_eq!(status.extra["checkpoint"], serde_json::json!({"v": 1}));
        // The unknown status key survives a write back.
        let written = serde_json::to_value(&engine).unwrap();
        assert_eq!(written["status"]["checkpoint"], serde_json::json!({"v": 1}));
        assert_eq!(written["apiVersion"], "litmuschaos.io/v1alpha1");
        assert_eq!(written["kind"], "ChaosEngine");
    }

    #[test]
    fn default_health_check_reads_bools_and_texts() {
        for (value, expected) in [
            (serde_json::json!(true), Some(true)),
            (serde_json::json!("false"), Some(false)),
            (serde_json::json!(""), None),
            (serde_json::Value::Null, None),
        ] {
            let spec: ChaosEngineSpec =
                serde_json::from_value(serde_json::json!({ "defaultHealthCheck": value })).unwrap();
            assert_eq!(spec.default_health_check, expected, "{value}");
        }
        let error = serde_json::from_value::<ChaosEngineSpec>(
            serde_json::json!({"defaultHealthCheck": "maybe"}),
        )
        .unwrap_err();
        assert!(error.to_string().contains("maybe"), "{error}");
    }

    #[test]
    fn sidecars_need_the_annotation_with_a_value_other_than_false() {
        let mut engine = ChaosEngine::new("demo", ChaosEngineSpec::default());
        assert!(!engine.sidecars_enabled());
        for (value, enabled) in [("true", true), ("false", false), ("", true), ("no", true)] {
            engine.metadata.annotations = Some(BTreeMap::from([(
                SIDECAR_ANNOTATION.to_owned(),
                value.to_owned(),
            )]));
            assert_eq!(engine.sidecars_enabled(), enabled, "{value:?}");
        }
    }

    #[test]
    fn kube_resource_metadata_is_litmus() {
        use kube::Resource;
        assert_eq!(ChaosEngine::plural(&()), "chaosengines");
        assert_eq!(ChaosExperiment::kind(&()), "ChaosExperiment");
        assert_eq!(ChaosResult::api_version(&()), "litmuschaos.io/v1alpha1");
    }

    #[test]
    fn result_fields_of_the_wrong_shape_read_as_unset_or_as_text() {
        // fixtures/bad/result-*: each of these failed to decode, and the runner, unable to read
        // the verdict, exited 1 and read the same object again after every restart.
        let result: ChaosResult = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-pod-delete"},
            "spec": "demo/pod-delete",
            "status": {"experimentStatus": {"phase": 7, "verdict": 42,
                       "errorOutput": "boom"}}
        }))
        .unwrap();
        assert_eq!(result.verdict(), Some(&Verdict::Other("42".into())));
        assert_eq!(result.phase(), Some(&ResultPhase::Other("7".into())));
        assert_eq!(result.spec, ChaosResultSpec::default());
        let status = &result.status.as_ref().unwrap().experiment_status;
        assert_eq!(status.error_output, None);
        for (experiment_status, verdict) in [
            (serde_json::json!("done"), None),
            (serde_json::json!({"verdict": ["Pass"]}), Some("[\"Pass\"]")),
            (serde_json::json!({"verdict": ""}), None),
            (serde_json::json!({"verdict": null}), None),
            (serde_json::json!({"verdict": true}), Some("true")),
        ] {
            let result: ChaosResult = serde_json::from_value(serde_json::json!({
                "status": {"experimentStatus": experiment_status}
            }))
            .unwrap();
            assert_eq!(result.verdict().map(Verdict::as_str), verdict);
        }
        let result: ChaosResult =
            serde_json::from_value(serde_json::json!({"status": "over"})).unwrap();
        assert_eq!(result.status, None);
    }

    #[test]
    fn decode_errors_name_the_field() {
        // fixtures/bad/engine-resources-wrong-type: the upstream CRD leaves resources unchecked;
        // `serde_json::from_value` says only "invalid type: string \"lots\", expected a map".
        let engine = serde_json::json!({
            "metadata": {"name": "bad"},
            "spec": {"experiments": [
                {"name": "ok"},
                {"name": "e2e-pass", "spec": {"components": {"resources": {"limits": "lots"}}}}
            ]}
        });
        let error = decode::<ChaosEngine>(engine).unwrap_err();
        assert_eq!(
            error.path,
            "spec.experiments[1].spec.components.resources.limits"
        );
        assert_eq!(
            error.to_string(),
            "spec.experiments[1].spec.components.resources.limits: invalid type: string \"lots\", expected a map"
        );
        let error = decode::<ChaosExperiment>(serde_json::json!({"spec": {"definition": {
            "securityContext": {"podSecurityContext": {"runAsUser": "root"}}
        }}}))
        .unwrap_err();
        assert_eq!(
            error.path,
            "spec.definition.securityContext.podSecurityContext.runAsUser"
        );
        let error = decode::<ChaosEngine>(serde_json::json!("engine")).unwrap_err();
        assert_eq!(error.path, "");
        assert!(decode::<ChaosEngine>(serde_json::json!({"spec": {"a/b~c": 1}})).is_ok());
    }

    #[test]
    fn object_names_are_rfc_1123_subdomains_and_namespaces_labels() {
        for good in [
            "a",
            "pod-delete",
            "pod.delete",
            "0",
            "a-b.c-d",
            &"a".repeat(253),
        ] {
            assert!(is_object_name(good), "{good}");
        }
        for bad in [
            "",
            "Pod-Delete",
            "pod delete",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a/b",
            "../x",
            "a?b",
            "é",
            &"a".repeat(254),
        ] {
            assert!(!is_object_name(bad), "{bad}");
        }
        assert!(is_dns_label("litmus") && is_dns_label(&"a".repeat(63)));
        for bad in ["", "a.b", "Litmus", "a_b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn result_verdict_and_phase_are_read() {
        let result: ChaosResult = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-pod-delete"},
            "spec": {"engine": "demo", "experiment": "pod-delete"},
            "status": {"experimentStatus": {"phase": "Completed", "verdict": "Pass",
                       "probeSuccessPercentage": "100"}, "history": {}}
        }))
        .unwrap();
        assert_eq!(result.verdict(), Some(&Verdict::Pass));
        assert_eq!(result.phase(), Some(&ResultPhase::Completed));
    }
}
