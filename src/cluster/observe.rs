//! Observing the cluster: experiment pods and the ChaosEngine, by watch where the Role permits
//! it and by polling where it does not. The phase engine sees the same observations either way.
//!
//! Polling is kept cheap: one `list pods` per interval for every experiment of the engine (the
//! pods share the `chaosUID` label), and only while some experiment is being monitored; the
//! engine is read every few intervals (the writer's patch answers refresh it too).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, ObjectMeta, WatchEvent, WatchParams};
use tokio::sync::watch;

use crate::cluster::api::call;

/// Poll interval for pods when they may not be watched: short enough that a verdict is written
/// within a second of the pod's end.
pub const POD_POLL_INTERVAL: Duration = Duration::from_millis(700);
/// Read the engine every this many pod polls when it may not be watched.
pub const ENGINE_POLL_EVERY: u32 = 4;

/// What the runner needs to know of an experiment pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub job: String,
    pub phase: PodPhase,
    /// A reason from a waiting container (`ErrImagePull`, …) or the pod, for messages.
    pub reason: Option<String>,
    pub deleting: bool,
    /// When the pod was created (unix ms): a pod still Pending has been Pending since then.
    pub created_ms: Option<u64>,
    /// When the pod started running (unix ms), from `status.startTime`.
    pub started_ms: Option<u64>,
}

/// The pod's state as far as the experiment is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    /// Succeeded, or Running with every experiment container terminated (contract §3.5).
    Done,
    Failed,
}

impl PodView {
    /// Reads a pod; `None` for pods that are not an experiment Job's.
    pub fn from_pod(pod: &Pod) -> Option<PodView> {
        let labels = pod.metadata.labels.as_ref()?;
        let job = labels
            .get("job-name")
            .or_else(|| labels.get("batch.kubernetes.io/job-name"))?
            .clone();
        let status = pod.status.as_ref();
        let statuses = status
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        let experiment_containers: Vec<_> =
            statuses.iter().filter(|c| c.name.contains(&job)).collect();
        let all_terminated = !experiment_containers.is_empty()
            && experiment_containers
                .iter()
                .all(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()));
        let phase = match status.and_then(|s| s.phase.as_deref()) {
            Some("Succeeded") => PodPhase::Done,
            Some("Failed") => PodPhase::Failed,
            Some("Running") if all_terminated => PodPhase::Done,
            Some("Running") => PodPhase::Running,
            _ => PodPhase::Pending,
        };
        let waiting = statuses
            .iter()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .next();
        let reason = waiting.or_else(|| status.and_then(|s| s.reason.clone()));
        let millis = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| {
            t.0.as_millisecond().max(0) as u64
        };
        Some(PodView {
            name: pod.metadata.name.clone().unwrap_or_default(),
            job,
            phase,
            reason,
            deleting: pod.metadata.deletion_timestamp.is_some(),
            created_ms: pod.metadata.creation_timestamp.as_ref().map(millis),
            started_ms: status.and_then(|s| s.start_time.as_ref()).map(millis),
        })
    }
}

/// The experiment pods as last observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSnapshot {
    /// True once the map holds the whole state of the cluster (a list answered, or a watch
    /// delivered its initial events). Before that, and after every watch restart until the new
    /// initial state is in, a pod missing from the map may simply not have been seen yet:
    /// nothing that ends an attempt may be judged on it.
    pub synced: bool,
    /// Experiment pods by Job name.
    pub pods: BTreeMap<String, PodView>,
}

impl PodSnapshot {
    pub fn get(&self, job: &str) -> Option<&PodView> {
        self.pods.get(job)
    }
}

/// The shared, cheaply cloned snapshot.
pub type PodMap = Arc<PodSnapshot>;

fn insert(map: &mut BTreeMap<String, PodView>, view: PodView) {
    // One pod per Job (backoffLimit 0); if a second shows up, the live one wins.
    match map.get(&view.job) {
        Some(existing) if !existing.deleting && view.deleting => {}
        _ => {
            map.insert(view.job.clone(), view);
        }
    }
}

/// Label selector of the engine's experiment pods.
pub fn pod_selector(engine_uid: &str) -> String {
    format!("chaosUID={engine_uid},job-name")
}

/// What a watch stream told, after resumption details are handled.
enum Seen<K> {
    /// The stream (re)started from scratch: the objects that follow are the whole state.
    Restart,
    /// Every object that existed at the restart has been delivered.
    Synced,
    Applied(K),
    Deleted(K),
}

/// The bookmark annotation that ends a watch's initial events (streaming lists).
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// One watch request at a time, resumed from the last resourceVersion seen when the server ends
/// it, restarted from scratch when that version is too old. A restart asks for the current
/// state as initial events ending in a bookmark (streaming lists), so the caller learns when
/// it has the whole state; an API server that refuses that is listed once, then watched.
/// Unlike a list-then-watch reflector this costs one request per stream, which matters when a
/// run makes only a few dozen. `version` is where to start: `""` means "the current state
/// first", a known resourceVersion means "changes after it".
async fn watch_stream<K, F>(api: Api<K>, selector: WatchParams, mut version: String, mut seen: F)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: FnMut(Seen<K>),
{
    let mut failures: u32 = 0;
    let mut streaming = true;
    loop {
        let mut params = selector.clone();
        if version.is_empty() {
            seen(Seen::Restart);
            if streaming {
                params.send_initial_events = true;
                params.bookmarks = true;
            } else {
                match list_state(&api, &selector, &mut seen).await {
                    Ok(listed) => version = listed,
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(%error, "listing for a watch restart failed; retrying");
                        tokio::time::sleep(retry_wait(failures)).await;
                        continue;
                    }
                }
            }
        }
        let stream = match api.watch(&params, &version).await {
            Ok(stream) => stream,
            Err(kube::Error::Api(status)) if params.send_initial_events && status.code < 500 => {
                tracing::info!(
                    code = status.code,
                    "the API server refuses streaming lists; listing instead"
                );
                streaming = false;
                continue;
            }
            Err(error) => {
                failures += 1;
                let wait = retry_wait(failures);
                tracing::warn!(%error, ?wait, "watch request failed; retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(obj) | WatchEvent::Modified(obj)) => {
                    failures = 0;
                    version = obj.meta().resource_version.clone().unwrap_or_default();
                    seen(Seen::Applied(obj));
                }
                Ok(WatchEvent::Deleted(obj)) => {
                    version = obj.meta().resource_version.clone().unwrap_or_default();
                    seen(Seen::Deleted(obj));
                }
                Ok(WatchEvent::Bookmark(mark)) => {
                    version = mark.metadata.resource_version;
                    if mark
                        .metadata
                        .annotations
                        .get(INITIAL_EVENTS_END)
                        .map(String::as_str)
                        == Some("true")
                    {
                        seen(Seen::Synced);
                    }
                }
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    tracing::info!(
                        "watch resourceVersion expired; starting from the current state"
                    );
                    version.clear();
                    break;
                }
                Ok(WatchEvent::Error(status)) => {
                    tracing::warn!(code = status.code, message = %status.message, "watch error; resuming");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "watch stream broken; resuming");
                    break;
                }
            }
        }
    }
}

fn retry_wait(failures: u32) -> Duration {
    Duration::from_millis(200 * u64::from(failures.min(25)))
}

/// The whole current state by one list, for an API server without streaming lists; returns
/// the resourceVersion to watch from.
async fn list_state<K, F>(
    api: &Api<K>,
    selector: &WatchParams,
    seen: &mut F,
) -> Result<String, crate::cluster::api::ApiError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: FnMut(Seen<K>),
{
    let params = ListParams {
        label_selector: selector.label_selector.clone(),
        field_selector: selector.field_selector.clone(),
        ..Default::default()
    };
    let list = call("list for a watch", || api.list(&params)).await?;
    for item in list.items {
        seen(Seen::Applied(item));
    }
    seen(Seen::Synced);
    Ok(list.metadata.resource_version.unwrap_or_default())
}

fn watch_params(selector: WatchParams) -> WatchParams {
    selector.timeout(WATCH_TIMEOUT_SECONDS)
}

/// How long the server keeps one watch request open before the runner re-issues it.
const WATCH_TIMEOUT_SECONDS: u32 = 1800;

/// Follows the experiment pods of one engine by watch; publishes the snapshot on every change.
pub async fn watch_pods(api: Api<Pod>, engine_uid: String, out: watch::Sender<PodMap>) {
    let params = watch_params(WatchParams::default().labels(&pod_selector(&engine_uid)));
    let mut snapshot = PodSnapshot::default();
    watch_stream(api, params, String::new(), |seen| {
        match seen {
            Seen::Restart => snapshot = PodSnapshot::default(),
            Seen::Synced => snapshot.synced = true,
            Seen::Applied(pod) => {
                if let Some(view) = PodView::from_pod(&pod) {
                    insert(&mut snapshot.pods, view);
                }
            }
            Seen::Deleted(pod) => {
                if let Some(view) = PodView::from_pod(&pod)
                    && snapshot
                        .pods
                        .get(&view.job)
                        .is_some_and(|v| v.name == view.name)
                {
                    snapshot.pods.remove(&view.job);
                }
            }
        }
        out.send_replace(Arc::new(snapshot.clone()));
    })
    .await;
}

/// The attempts being monitored, each with the time (unix ms) its pod is expected to end, once
/// it is known to run.
pub type Monitored = BTreeMap<String, Option<u64>>;

/// How long to wait before the next poll: every [`POD_POLL_INTERVAL`] when a pod may end any
/// moment (or has run past its expected end), every second while a pod has not started yet
/// (to see it running), otherwise asleep until shortly before the earliest expected end — at
/// most [`POD_POLL_IDLE`], so a pod that fails early is still seen within seconds. `None` when
/// nothing is monitored.
pub fn next_poll(monitored: &Monitored, now_ms: u64) -> Option<Duration> {
    let fast = POD_POLL_INTERVAL.as_millis() as u64;
    monitored
        .values()
        .map(|expected_end| match expected_end {
            None => 1000,
            Some(end) => end
                .saturating_sub(POD_POLL_LEAD.as_millis() as u64)
                .saturating_sub(now_ms)
                .clamp(fast, POD_POLL_IDLE.as_millis() as u64),
        })
        .min()
        .map(Duration::from_millis)
}

/// Longest wait between two polls while pods run.
pub const POD_POLL_IDLE: Duration = Duration::from_secs(5);
/// Fast polling starts this long before a pod's expected end.
const POD_POLL_LEAD: Duration = Duration::from_secs(1);

/// Follows the experiment pods by listing them (one request for all of them), as often as
/// [`next_poll`] says and only while someone is monitoring.
pub async fn poll_pods(
    api: Api<Pod>,
    engine_uid: String,
    out: watch::Sender<PodMap>,
    mut wanted: watch::Receiver<Monitored>,
) {
    let params = ListParams::default().labels(&pod_selector(&engine_uid));
    loop {
        if wanted.borrow_and_update().is_empty() {
            if wanted.changed().await.is_err() {
                return;
            }
            continue;
        }
        match call("list experiment pods", || api.list(&params)).await {
            Ok(list) => {
                let mut snapshot = PodSnapshot {
                    synced: true,
                    pods: BTreeMap::new(),
                };
                for view in list.items.iter().filter_map(PodView::from_pod) {
                    insert(&mut snapshot.pods, view);
                }
                out.send_if_modified(|current| {
                    let changed = **current != snapshot;
                    if changed {
                        *current = Arc::new(snapshot);
                    }
                    changed
                });
            }
            Err(error) => tracing::warn!(%error, "listing experiment pods failed; polling on"),
        }
        let now_ms = crate::cluster::clock::now_ms();
        let wait = next_poll(&wanted.borrow_and_update(), now_ms).unwrap_or(POD_POLL_INTERVAL);
        // A newly monitored attempt (or a pod now known to run) is polled for at once.
        tokio::select! {
            biased;
            _ = tokio::time::sleep(wait) => {}
            changed = wanted.changed() => if changed.is_err() { return },
        }
    }
}

/// What the runner watches the ChaosEngine for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineSignal {
    Active,
    /// `spec.engineState: stop`.
    Stop,
    /// Deleted, or being deleted (a deletionTimestamp under the operator's finalizer).
    Deleted,
}

impl EngineSignal {
    pub fn of(engine: Option<&DynamicObject>) -> EngineSignal {
        match engine {
            None => EngineSignal::Deleted,
            Some(engine) => EngineSignal::from_parts(
                engine.metadata.deletion_timestamp.is_some(),
                engine
                    .data
                    .get("spec")
                    .and_then(|s| s.get("engineState"))
                    .and_then(|s| s.as_str()),
            ),
        }
    }

    fn from_parts(being_deleted: bool, engine_state: Option<&str>) -> EngineSignal {
        if being_deleted {
            EngineSignal::Deleted
        } else if engine_state == Some("stop") {
            EngineSignal::Stop
        } else {
            EngineSignal::Active
        }
    }
}

/// A ChaosEngine as the stop watcher reads it: only what [`EngineSignal`] and a watch need.
/// Every copy of the engine the watch delivers (one per write of the runner's, up to hundreds
/// of KiB with a large plan) is parsed into this, skipping the rest without building it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct EngineGlimpse {
    #[serde(deserialize_with = "glimpse_metadata")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: GlimpseSpec,
}

/// `spec.engineState` if it is a string. Lenient: a malformed spec must not stop the watch
/// (the run reports it from its own read of the engine).
#[derive(Clone, Debug, Default)]
struct GlimpseSpec {
    engine_state: Option<String>,
}

impl<'de> serde::Deserialize<'de> for GlimpseSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = GlimpseSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a ChaosEngine spec")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<GlimpseSpec, A::Error> {
                let mut spec = GlimpseSpec::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "engineState" {
                        let value: serde_json::Value = map.next_value()?;
                        spec.engine_state = value.as_str().map(str::to_string);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(spec)
            }
            fn visit_unit<E>(self) -> Result<GlimpseSpec, E> {
                Ok(GlimpseSpec::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<GlimpseSpec, E> {
                Ok(GlimpseSpec::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<GlimpseSpec, E> {
                Ok(GlimpseSpec::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<GlimpseSpec, E> {
                Ok(GlimpseSpec::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<GlimpseSpec, E> {
                Ok(GlimpseSpec::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<GlimpseSpec, E> {
                Ok(GlimpseSpec::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<GlimpseSpec, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(GlimpseSpec::default())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl EngineGlimpse {
    pub fn signal(&self) -> EngineSignal {
        EngineSignal::from_parts(
            self.metadata.deletion_timestamp.is_some(),
            self.spec.engine_state.as_deref(),
        )
    }
}

/// The metadata fields a watch and the signal read; managed fields and annotations (the bulk
/// of a large engine) are skipped.
fn glimpse_metadata<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<ObjectMeta, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Glimpsed {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
        deletion_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    }
    let glimpsed = <Glimpsed as serde::Deserialize>::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: glimpsed.name,
        namespace: glimpsed.namespace,
        uid: glimpsed.uid,
        resource_version: glimpsed.resource_version,
        deletion_timestamp: glimpsed.deletion_timestamp,
        ..ObjectMeta::default()
    })
}

impl kube::Resource for EngineGlimpse {
    type DynamicType = kube::api::ApiResource;
    type Scope = kube::core::DynamicResourceScope;

    fn kind(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// What every copy of the ChaosEngine seen says, in order. A channel that keeps every signal
/// rather than the latest: a stale copy arriving late must not hide a `stop`. Signals, not
/// copies: the runner keeps no copy of the engine it does not need.
pub type EngineCopies = tokio::sync::mpsc::UnboundedSender<EngineSignal>;

/// Follows the ChaosEngine by watch from `version` (the copy the runner read at start).
pub async fn watch_engine(
    api: Api<EngineGlimpse>,
    name: String,
    version: String,
    out: EngineCopies,
) {
    let params = watch_params(WatchParams::default().fields(&format!("metadata.name={name}")));
    watch_stream(api, params, version, |seen| match seen {
        Seen::Restart | Seen::Synced => {}
        Seen::Applied(engine) => {
            let _ = out.send(engine.signal());
        }
        Seen::Deleted(_) => {
            let _ = out.send(EngineSignal::Deleted);
        }
    })
    .await;
}

/// Follows the ChaosEngine by reading it every `interval`.
pub async fn poll_engine(
    api: Api<EngineGlimpse>,
    name: String,
    out: EngineCopies,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let what = format!("get ChaosEngine {name}");
        match call(&what, || api.get_opt(&name)).await {
            Ok(found) => {
                let _ = out.send(found.map_or(EngineSignal::Deleted, |e| e.signal()));
            }
            Err(error) => tracing::warn!(%error, "reading the engine failed; polling on"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn polling_is_fast_only_near_an_expected_end() {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        let mut monitored = Monitored::new();
        assert_eq!(next_poll(&monitored, 0), None);
        monitored.insert("a#1".into(), Some(60_000));
        // Far from the end: asleep, but never longer than the idle bound.
        assert_eq!(ms(next_poll(&monitored, 0)), Some(5_000));
        assert_eq!(ms(next_poll(&monitored, 56_000)), Some(3_000));
        // Within the lead and past the end: fast.
        assert_eq!(ms(next_poll(&monitored, 59_500)), Some(700));
        assert_eq!(ms(next_poll(&monitored, 90_000)), Some(700));
        // A pod not yet running is looked for every second.
        monitored.insert("b#1".into(), None);
        assert_eq!(ms(next_poll(&monitored, 0)), Some(1_000));
    }

    #[test]
    fn a_glimpse_of_the_engine_reads_its_signal_and_skips_the_rest() {
        let engine = |spec: serde_json::Value, deleting: bool| {
            let mut metadata = json!({
                "name": "e", "namespace": "n", "resourceVersion": "42",
                "annotations": {"chaos-runner.io/trail-0": "x".repeat(4096)},
                "managedFields": [{"manager": "m", "fieldsV1": {"f:status": {}}}],
            });
            if deleting {
                metadata["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            let text = json!({"apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine",
                "metadata": metadata, "spec": spec, "status": {"experiments": []}})
            .to_string();
            serde_json::from_str::<EngineGlimpse>(&text).unwrap()
        };
        let stopped = engine(
            json!({"engineState": "stop", "experiments": [{"name": "x"}]}),
            false,
        );
        assert_eq!(stopped.signal(), EngineSignal::Stop);
        assert_eq!(stopped.metadata.resource_version.as_deref(), Some("42"));
        assert!(stopped.metadata.annotations.is_none());
        assert!(stopped.metadata.managed_fields.is_none());
        assert_eq!(
            engine(json!({"engineState": "active"}), false).signal(),
            EngineSignal::Active
        );
        assert_eq!(
            engine(json!({"engineState": "stop"}), true).signal(),
            EngineSignal::Deleted
        );
        // Malformed specs are read as active, not as a failed watch.
        for spec in [
            json!({"engineState": 5}),
            json!("x"),
            json!(null),
            json!([1, {"a": 2}]),
        ] {
            assert_eq!(engine(spec, false).signal(), EngineSignal::Active);
        }
    }

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_running_pod_whose_experiment_container_ended_is_done() {
        let p = pod(json!({
            "metadata": {"name": "exp-abc123-xyz", "labels": {"job-name": "exp-abc123"}},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "exp-abc123", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"terminated": {"exitCode": 0}}},
                {"name": "exp-abc123-sidecar-q1w2e3", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"running": {}}}
            ]}
        }));
        let view = PodView::from_pod(&p).unwrap();
        // The sidecar's name contains the Job name too, so it must end first.
        assert_eq!(view.phase, PodPhase::Running);
        let mut p2 = p.clone();
        p2.status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[1]
            .state = serde_json::from_value(json!({"terminated": {"exitCode": 0}})).unwrap();
        assert_eq!(PodView::from_pod(&p2).unwrap().phase, PodPhase::Done);
    }

    #[test]
    fn phases_and_reasons_are_read() {
        let p = pod(json!({
            "metadata": {"name": "p", "labels": {"job-name": "j"}},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "j", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"waiting": {"reason": "ImagePullBackOff"}}}
            ]}
        }));
        let view = PodView::from_pod(&p).unwrap();
        assert_eq!(view.phase, PodPhase::Pending);
        assert_eq!(view.reason.as_deref(), Some("ImagePullBackOff"));
        let failed = pod(
            json!({"metadata": {"name": "p", "labels": {"job-name": "j"}}, "status": {"phase": "Failed"}}),
        );
        assert_eq!(PodView::from_pod(&failed).unwrap().phase, PodPhase::Failed);
        let succeeded = pod(
            json!({"metadata": {"name": "p", "labels": {"job-name": "j"}}, "status": {"phase": "Succeeded"}}),
        );
        assert_eq!(PodView::from_pod(&succeeded).unwrap().phase, PodPhase::Done);
    }

    #[test]
    fn pods_without_a_job_are_not_experiment_pods() {
        let runner = pod(json!({"metadata": {"name": "demo-runner", "labels": {"chaosUID": "u"}}}));
        assert!(PodView::from_pod(&runner).is_none());
    }

    #[test]
    fn engine_signals() {
        let engine = |v: serde_json::Value| -> DynamicObject { serde_json::from_value(v).unwrap() };
        let active = engine(
            json!({"apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine",
            "metadata": {"name": "e"}, "spec": {"engineState": "active"}}),
        );
        assert_eq!(EngineSignal::of(Some(&active)), EngineSignal::Active);
        let stop = engine(
            json!({"apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine",
            "metadata": {"name": "e"}, "spec": {"engineState": "stop"}}),
        );
        assert_eq!(EngineSignal::of(Some(&stop)), EngineSignal::Stop);
        let deleting = engine(
            json!({"apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine",
            "metadata": {"name": "e", "deletionTimestamp": "2026-11-25T00:00:00Z"}, "spec": {}}),
        );
        assert_eq!(EngineSignal::of(Some(&deleting)), EngineSignal::Deleted);
        assert_eq!(EngineSignal::of(None), EngineSignal::Deleted);
    }
}
