//! An in-memory Kubernetes API server behind `kube::Client::new`: only what the runner relies
//! on. Objects by (resource, namespace, name) with `resourceVersion` and `uid`; GET, LIST and
//! WATCH with label and field selectors; POST (409 when the name exists); PATCH (JSON merge
//! patch and JSON patch, 409 when the patched `metadata.resourceVersion` is not the stored
//! one); DELETE (a Job takes its pods with it); the access reviews answer "all allowed" (or
//! "no watch" in poll mode). A Job gets one pod, which the world (`world.rs`) plays.
//!
//! Every request names the runner incarnation that sent it (one client per incarnation). Faults
//! are drawn per request from the schedule's generator; a crash point makes the request hang
//! forever (before or after it is applied) and marks the incarnation dead: a dead incarnation's
//! requests fail without effect, as those of a killed process would never arrive. An
//! overlapping crash point (a force-deleted pod whose process lives on) does not kill: the
//! incarnation runs on beside the next one. (A frozen process, SIGSTOP, is the plane's test:
//! here a frozen incarnation's tasks would still run, only its requests would wait.)

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::rng::SplitMix;

/// The body of every answer: one frame, or a watch's stream of lines.
pub type SimBody = StreamBody<BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

/// Where the engine lives.
pub const NAMESPACE: &str = "sim";

/// Kinds of fault the API can answer a request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500, 503 or 429 before anything is applied.
    Status(u16),
    /// The connection fails before the request arrives.
    Refused,
    /// The request is applied, the answer is lost.
    LostAnswer,
    /// 409 on a patch (as if someone wrote in between).
    PatchConflict,
    /// A watch answered with an ERROR event 410 (resourceVersion too old).
    WatchGone,
    /// A watch stream that ends after this many events.
    WatchDrop(u32),
}

/// When an incarnation is killed: at its n-th request (1-based), before or after the API
/// server applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashPoint {
    pub request: u32,
    pub after_apply: bool,
    /// Not killed: it runs on beside the next incarnation (overlapping runners).
    pub overlap: bool,
}

/// One request as the API server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub incarnation: u32,
    /// Its number within the incarnation (1-based).
    pub nth: u32,
    pub method: String,
    pub resource: String,
    pub name: String,
    /// HTTP status answered (0: connection error, hang, or a dead incarnation).
    pub code: u16,
    /// True when it changed the stored state.
    pub wrote: bool,
    pub at_ms: u64,
    /// For a write of the engine: the incarnation (counter, id) its record names after it.
    pub record: Option<(u64, String)>,
}

/// A schedule's API faults: the probability (per mille) that a request gets one.
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    pub per_mille: u64,
    /// Each request travels to the server, and its answer back, in 0 to this many simulated
    /// milliseconds (0: no time at all).
    pub latency_max_ms: u64,
}

struct Watcher {
    incarnation: u32,
    resource: String,
    namespace: String,
    labels: String,
    fields: String,
    tx: mpsc::UnboundedSender<Bytes>,
    /// Events left before the stream is cut (a dropped watch).
    left: Option<u32>,
}

/// A change, as watches replay it.
struct Change {
    rv: u64,
    resource: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

/// The store and everything the checks read afterwards.
pub struct State {
    /// When the simulation started (unix ms, simulated): the log's times count from it.
    pub start_ms: u64,
    rv: u64,
    uids: u64,
    pub objects: BTreeMap<(String, String, String), Value>,
    history: Vec<Change>,
    watchers: Vec<Watcher>,
    rng: SplitMix,
    rates: FaultRates,
    /// Draws request latencies, apart from `rng` (schedules without latency stay as they were).
    latency_rng: SplitMix,
    /// Answer access reviews without watch (the runner then polls).
    pub poll_mode: bool,
    pub log: Vec<Logged>,
    /// Requests made per incarnation.
    counts: BTreeMap<u32, u32>,
    dead: BTreeSet<u32>,
    /// The crash point of each incarnation.
    pub crashes: BTreeMap<u32, CrashPoint>,
    /// Incarnations whose crash point was reached, with the request that hit it.
    pub crashed: Vec<(u32, String)>,
    /// Set once an abort was requested: no crash after it (the operator deletes the runner
    /// pod on stop; a container of a terminating pod is not restarted).
    pub aborted: bool,
    /// Successful Job creates by name.
    pub job_creates: BTreeMap<String, u32>,
    /// Jobs created and not yet handed to the world.
    pub new_jobs: Vec<Value>,
    /// Faults answered, by kind, for the report.
    pub faults: BTreeMap<String, u64>,
    /// Requests refused as invalid (422), with why: the runner sent something the API server
    /// would not take.
    pub invalid: Vec<String>,
}

/// The API server: cheap to clone.
#[derive(Clone)]
pub struct FakeApi {
    pub state: Arc<Mutex<State>>,
    /// Woken when a Job is created (the world has a pod to play).
    pub jobs_created: Arc<Notify>,
    /// Woken when an incarnation reached its crash point.
    pub crash: Arc<Notify>,
}

type Answer = Result<Response<SimBody>, std::io::Error>;

fn body(bytes: Vec<u8>) -> SimBody {
    StreamBody::new(
        futures::stream::once(async move { Ok(Frame::data(Bytes::from(bytes))) }).boxed(),
    )
}

fn answer(code: u16, value: &Value) -> Answer {
    let mut response = Response::new(body(serde_json::to_vec(value).unwrap_or_default()));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn refused() -> Answer {
    Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "simulated connection failure",
    ))
}

/// `(apiVersion, kind)` of a resource's objects.
fn kind_of(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "pods" => ("v1", "Pod"),
        "events" => ("v1", "Event"),
        "configmaps" => ("v1", "ConfigMap"),
        "secrets" => ("v1", "Secret"),
        "jobs" => ("batch/v1", "Job"),
        "chaosengines" => ("litmuschaos.io/v1alpha1", "ChaosEngine"),
        "chaosexperiments" => ("litmuschaos.io/v1alpha1", "ChaosExperiment"),
        "chaosresults" => ("litmuschaos.io/v1alpha1", "ChaosResult"),
        _ => ("v1", "Unknown"),
    }
}

/// The object at a dotted path, as a string.
fn field<'a>(object: &'a Value, path: &str) -> Option<&'a str> {
    path.split('.')
        .try_fold(object, |v, key| v.get(key))?
        .as_str()
}

/// Label selector: `k=v`, `k==v`, `k!=v`, `k` (exists), `!k`, comma-separated.
pub fn labels_match(object: &Value, selector: &str) -> bool {
    let labels = object.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            label(k) != Some(v)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            label(k) == Some(v)
        } else if let Some(k) = term.strip_prefix('!') {
            label(k).is_none()
        } else {
            label(term).is_some()
        }
    })
}

fn fields_match(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            field(object, k) != Some(v)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            field(object, k) == Some(v)
        } else {
            false
        }
    })
}

/// A request's target: `(resource, namespace, name)`.
fn target(path: &str) -> Option<(String, String, Option<String>)> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    match rest {
        ["namespaces", ns, resource] => Some((resource.to_string(), ns.to_string(), None)),
        ["namespaces", ns, resource, name] => {
            Some((resource.to_string(), ns.to_string(), Some(name.to_string())))
        }
        [resource] => Some((resource.to_string(), String::new(), None)),
        _ => None,
    }
}

fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .map(|q| {
            url_decode_pairs(q)
                .into_iter()
                .collect::<BTreeMap<String, String>>()
        })
        .unwrap_or_default()
}

fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

impl State {
    pub fn now_ms() -> u64 {
        chaos_runner::cluster::clock::now_ms()
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Records a change and sends it to the watches it matches.
    fn publish(&mut self, resource: &str, namespace: &str, kind: &'static str, object: Value) {
        let rv = self.rv;
        let line = {
            let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap();
            line.push(b'\n');
            Bytes::from(line)
        };
        self.watchers.retain_mut(|w| {
            if w.resource != resource
                || w.namespace != namespace
                || !labels_match(&object, &w.labels)
                || !fields_match(&object, &w.fields)
            {
                return !w.tx.is_closed();
            }
            if w.left == Some(0) {
                return false;
            }
            if w.tx.send(line.clone()).is_err() {
                return false;
            }
            if let Some(left) = w.left.as_mut() {
                *left -= 1;
            }
            true
        });
        self.history.push(Change {
            rv,
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            kind,
            object,
        });
    }

    /// Stores a new object (stamped with uid, resourceVersion, creationTimestamp).
    pub fn create(
        &mut self,
        resource: &str,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, (u16, Value)> {
        let Some(name) = field(&object, "metadata.name").map(str::to_string) else {
            return Err((422, status(422, "Invalid", "metadata.name is required")));
        };
        let key = (resource.to_string(), namespace.to_string(), name.clone());
        if self.objects.contains_key(&key) {
            let message = format!("{resource} \"{name}\" already exists");
            return Err((409, status(409, "AlreadyExists", &message)));
        }
        self.uids += 1;
        let rv = self.next_rv();
        let (api_version, kind) = kind_of(resource);
        let meta = object
            .as_object_mut()
            .map(|o| {
                o.entry("apiVersion").or_insert(json!(api_version));
                o.entry("kind").or_insert(json!(kind));
                o.entry("metadata").or_insert(json!({}))
            })
            .and_then(Value::as_object_mut);
        if let Some(meta) = meta {
            meta.insert("namespace".into(), json!(namespace));
            meta.insert("uid".into(), json!(format!("uid-{:06}", self.uids)));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
            meta.insert("generation".into(), json!(1));
        }
        self.objects.insert(key, object.clone());
        self.publish(resource, namespace, "ADDED", object.clone());
        Ok(object)
    }

    /// Replaces a stored object (a new resourceVersion), unless nothing changed.
    pub fn update(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        mut object: Value,
    ) -> Value {
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let old = self.objects.get(&key).cloned().unwrap_or(Value::Null);
        let rv_of = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
        if let Some(meta) = object
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
        {
            meta.insert("resourceVersion".into(), rv_of(&old).unwrap_or(json!("0")));
        }
        if object == old {
            return old;
        }
        let rv = self.next_rv();
        if let Some(meta) = object
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
        {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        self.objects.insert(key, object.clone());
        self.publish(resource, namespace, "MODIFIED", object.clone());
        object
    }

    pub fn remove(&mut self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let mut object = self.objects.remove(&key)?;
        let rv = self.next_rv();
        if let Some(meta) = object
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
        {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        self.publish(resource, namespace, "DELETED", object.clone());
        if resource == "jobs" {
            // Propagation (Foreground or Background): the Job controller's pods go with it.
            let pods: Vec<String> = self
                .objects
                .iter()
                .filter(|((r, ns, _), pod)| {
                    r == "pods"
                        && ns == namespace
                        && field(pod, "metadata.labels.job-name") == Some(name)
                })
                .map(|((_, _, pod), _)| pod.clone())
                .collect();
            for pod in pods {
                self.remove("pods", namespace, &pod);
            }
        }
        Some(object)
    }

    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        ))
    }

    pub fn list(&self, resource: &str, namespace: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((r, ns, _), _)| r == resource && ns == namespace)
            .map(|(_, v)| v)
            .collect()
    }

    /// Kills an incarnation: its requests fail from now on and its watches end.
    pub fn kill(&mut self, incarnation: u32) {
        self.dead.insert(incarnation);
        self.watchers.retain(|w| w.incarnation != incarnation);
    }

    fn draw_fault(&mut self, method: &Method, resource: &str, is_watch: bool) -> Option<Fault> {
        if self.rng.below(1000) >= self.rates.per_mille {
            return None;
        }
        // Reviews have no fault: the runner would fall back to poll mode, which the schedule
        // chooses by itself.
        if resource.starts_with("selfsubject") {
            return None;
        }
        if is_watch {
            return Some(match self.rng.below(3) {
                0 => Fault::WatchGone,
                1 => Fault::WatchDrop(self.rng.below(4) as u32),
                _ => Fault::Status(500),
            });
        }
        let patch = *method == Method::PATCH;
        Some(match self.rng.below(if patch { 7 } else { 6 }) {
            0 => Fault::Status(500),
            1 => Fault::Status(503),
            2 => Fault::Status(429),
            3 => Fault::Refused,
            4 | 5 if *method != Method::GET => Fault::LostAnswer,
            4 | 5 => Fault::Status(503),
            _ => Fault::PatchConflict,
        })
    }
}

/// The current (simulated) wall time, as the API server stamps objects.
pub fn now_rfc3339() -> String {
    // Whole seconds, as the apiserver writes metav1.Time.
    let now = chaos_runner::cluster::clock::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

impl FakeApi {
    pub fn new(seed: u64, rates: FaultRates, poll_mode: bool) -> FakeApi {
        FakeApi {
            state: Arc::new(Mutex::new(State {
                start_ms: State::now_ms(),
                rv: 100,
                uids: 0,
                objects: BTreeMap::new(),
                history: Vec::new(),
                watchers: Vec::new(),
                rng: SplitMix::new(seed ^ 0xa5a5_5a5a_0f0f_f0f0),
                latency_rng: SplitMix::new(seed ^ 0x1a7e_4c11_d3a5_0b0e),
                rates,
                poll_mode,
                log: Vec::new(),
                counts: BTreeMap::new(),
                dead: BTreeSet::new(),
                crashes: BTreeMap::new(),
                crashed: Vec::new(),
                aborted: false,
                job_creates: BTreeMap::new(),
                new_jobs: Vec::new(),
                faults: BTreeMap::new(),
                invalid: Vec::new(),
            })),
            jobs_created: Arc::new(Notify::new()),
            crash: Arc::new(Notify::new()),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A kube client whose every request is one of `incarnation`'s.
    pub fn client(&self, incarnation: u32) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let api = api.clone();
            async move {
                // Logged and applied when it reaches the server: the log is in server order.
                api.travel().await;
                let answer = api.serve(incarnation, request).await;
                api.travel().await;
                answer
            }
        });
        kube::Client::new(service, NAMESPACE)
    }

    /// One way of a request's trip, if the schedule gives requests time.
    async fn travel(&self) {
        let millis = {
            let mut state = self.lock();
            match state.rates.latency_max_ms {
                0 => return,
                max => state.latency_rng.below(max + 1),
            }
        };
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }

    async fn serve(&self, incarnation: u32, request: Request<kube::client::Body>) -> Answer {
        let (parts, request_body) = request.into_parts();
        let bytes = match request_body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return refused(),
        };
        let params = query(&parts.uri);
        let is_watch = params.get("watch").is_some_and(|w| w == "true" || w == "1");
        let Some((resource, namespace, name)) = target(parts.uri.path()) else {
            return answer(404, &status(404, "NotFound", "no such path"));
        };
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();

        let (fault, crash) = {
            let mut state = self.lock();
            if state.dead.contains(&incarnation) {
                return refused();
            }
            let nth = {
                let count = state.counts.entry(incarnation).or_default();
                *count += 1;
                *count
            };
            let crash = state
                .crashes
                .get(&incarnation)
                .copied()
                .filter(|c| c.request == nth && !state.aborted);
            let fault = if crash.is_some() {
                None
            } else {
                state.draw_fault(&parts.method, &resource, is_watch)
            };
            if let Some(fault) = fault {
                *state
                    .faults
                    .entry(
                        format!("{fault:?}")
                            .split('(')
                            .next()
                            .unwrap_or("")
                            .to_string(),
                    )
                    .or_default() += 1;
            }
            let at_ms = State::now_ms().saturating_sub(state.start_ms);
            state.log.push(Logged {
                incarnation,
                nth,
                method: if is_watch {
                    "WATCH".into()
                } else {
                    parts.method.to_string()
                },
                resource: resource.clone(),
                name: name.clone().unwrap_or_default(),
                code: 0,
                wrote: false,
                at_ms,
                record: None,
            });
            (fault, crash)
        };
        let index = self.lock().log.len() - 1;
        // The request takes effect: now, or before a crash or a lost answer (fault `None`).
        let apply = |fault| {
            self.apply(
                index,
                &parts.method,
                &resource,
                &namespace,
                name.as_deref(),
                &params,
                &content_type,
                &bytes,
                is_watch,
                fault,
                incarnation,
            )
        };

        if let Some(crash) = crash {
            let what = format!(
                "{} {}{}",
                if is_watch {
                    "WATCH"
                } else {
                    parts.method.as_str()
                },
                resource,
                if crash.after_apply { " (applied)" } else { "" }
            );
            if crash.overlap {
                {
                    let mut state = self.lock();
                    state
                        .crashed
                        .push((incarnation, format!("{what} (overlapped)")));
                }
                self.crash.notify_one();
                return apply(None);
            }
            if crash.after_apply {
                let _ = apply(None);
            }
            {
                let mut state = self.lock();
                state.kill(incarnation);
                state.crashed.push((incarnation, what));
            }
            self.crash.notify_one();
            return std::future::pending().await;
        }
        match fault {
            Some(Fault::Status(code)) => {
                self.set_code(index, code);
                let reason = if code == 429 {
                    "TooManyRequests"
                } else {
                    "InternalError"
                };
                return answer(code, &status(code, reason, "simulated fault"));
            }
            Some(Fault::Refused) => return refused(),
            Some(Fault::PatchConflict) if parts.method == Method::PATCH => {
                self.set_code(index, 409);
                return answer(409, &status(409, "Conflict", "simulated conflict"));
            }
            Some(Fault::LostAnswer) => {
                let _ = apply(None);
                self.set_code(index, 0);
                return refused();
            }
            _ => {}
        }
        apply(fault)
    }

    fn set_code(&self, index: usize, code: u16) {
        if let Some(entry) = self.lock().log.get_mut(index) {
            entry.code = code;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        index: usize,
        method: &Method,
        resource: &str,
        namespace: &str,
        name: Option<&str>,
        params: &BTreeMap<String, String>,
        content_type: &str,
        bytes: &Bytes,
        is_watch: bool,
        fault: Option<Fault>,
        incarnation: u32,
    ) -> Answer {
        let mut state = self.lock();
        let (code, wrote, result) = self.route(
            &mut state,
            method,
            resource,
            namespace,
            name,
            params,
            content_type,
            bytes,
            is_watch,
            fault,
            incarnation,
        );
        let record = (wrote && resource == "chaosengines")
            .then(|| {
                let engine = state.get(resource, namespace, name?)?;
                let incarnation = engine.pointer("/status/chaosRunner/incarnation")?;
                Some((
                    incarnation.get("counter")?.as_u64()?,
                    incarnation.get("id")?.as_str()?.to_string(),
                ))
            })
            .flatten();
        if let Some(entry) = state.log.get_mut(index) {
            entry.code = code;
            entry.wrote = wrote;
            entry.record = record;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn route(
        &self,
        state: &mut State,
        method: &Method,
        resource: &str,
        namespace: &str,
        name: Option<&str>,
        params: &BTreeMap<String, String>,
        content_type: &str,
        bytes: &Bytes,
        is_watch: bool,
        fault: Option<Fault>,
        incarnation: u32,
    ) -> (u16, bool, Answer) {
        let not_found = |what: &str| {
            let message = format!("{resource} \"{what}\" not found");
            (404, false, answer(404, &status(404, "NotFound", &message)))
        };
        let parsed = || serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
        match (method.clone(), name) {
            (Method::POST, None) if resource.starts_with("selfsubject") => {
                let mut review = parsed();
                let verbs = if state.poll_mode {
                    json!(["get", "list", "create", "update", "patch", "delete"])
                } else {
                    json!(["*"])
                };
                review["status"] = if resource == "selfsubjectrulesreviews" {
                    json!({"resourceRules": [{"verbs": verbs, "apiGroups": ["*"], "resources": ["*"]}],
                           "nonResourceRules": [], "incomplete": false})
                } else {
                    let verb = review
                        .pointer("/spec/resourceAttributes/verb")
                        .and_then(Value::as_str);
                    json!({"allowed": !(state.poll_mode && verb == Some("watch"))})
                };
                (201, false, answer(201, &review))
            }
            (Method::POST, None) => match state.create(resource, namespace, parsed()) {
                Ok(object) => {
                    if resource == "jobs" {
                        let job = field(&object, "metadata.name").unwrap_or("").to_string();
                        *state.job_creates.entry(job).or_default() += 1;
                        state.new_jobs.push(object.clone());
                        self.jobs_created.notify_one();
                    }
                    (201, true, answer(201, &object))
                }
                Err((code, error)) => (code, false, answer(code, &error)),
            },
            (Method::GET, Some(name)) => match state.get(resource, namespace, name) {
                Some(object) => (200, false, answer(200, object)),
                None => not_found(name),
            },
            (Method::GET, None) if is_watch => {
                let (code, result) =
                    self.watch(state, incarnation, resource, namespace, params, fault);
                (code, false, result)
            }
            (Method::GET, None) => {
                let labels = params.get("labelSelector").cloned().unwrap_or_default();
                let fields = params.get("fieldSelector").cloned().unwrap_or_default();
                let items: Vec<Value> = state
                    .list(resource, namespace)
                    .into_iter()
                    .filter(|o| labels_match(o, &labels) && fields_match(o, &fields))
                    .cloned()
                    .collect();
                let (api_version, kind) = kind_of(resource);
                let list = json!({"apiVersion": api_version, "kind": format!("{kind}List"),
                                  "metadata": {"resourceVersion": state.rv.to_string()}, "items": items});
                (200, false, answer(200, &list))
            }
            (Method::PATCH, Some(name)) => {
                let Some(current) = state.get(resource, namespace, name).cloned() else {
                    return not_found(name);
                };
                let mut patched = current.clone();
                let patch = parsed();
                let applied = if content_type.starts_with("application/json-patch+json") {
                    serde_json::from_value::<json_patch::Patch>(patch)
                        .map_err(|e| e.to_string())
                        .and_then(|p| {
                            json_patch::patch(&mut patched, &p).map_err(|e| e.to_string())
                        })
                } else if content_type.starts_with("application/merge-patch+json") {
                    json_patch::merge(&mut patched, &patch);
                    Ok(())
                } else {
                    Err(format!("unsupported patch type {content_type}"))
                };
                if let Err(error) = applied {
                    let shown: Vec<String> = parsed()
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|op| {
                            let text = serde_json::to_string(op).unwrap_or_default();
                            text.chars().take(160).collect()
                        })
                        .collect();
                    let shown = shown.join("\n    ");
                    state.invalid.push(format!(
                        "PATCH {resource} {name} ({content_type}): {error}; patch {shown}"
                    ));
                    return (422, false, answer(422, &status(422, "Invalid", &error)));
                }
                let rv = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
                if rv(&patched) != rv(&current) {
                    let message = format!(
                        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                    );
                    return (409, false, answer(409, &status(409, "Conflict", &message)));
                }
                let stored = state.update(resource, namespace, name, patched);
                let wrote = stored != current;
                (200, wrote, answer(200, &stored))
            }
            (Method::DELETE, Some(name)) => match state.remove(resource, namespace, name) {
                Some(object) => (200, true, answer(200, &object)),
                None => not_found(name),
            },
            _ => (
                405,
                false,
                answer(405, &status(405, "MethodNotAllowed", "not simulated")),
            ),
        }
    }

    fn watch(
        &self,
        state: &mut State,
        incarnation: u32,
        resource: &str,
        namespace: &str,
        params: &BTreeMap<String, String>,
        fault: Option<Fault>,
    ) -> (u16, Answer) {
        let labels = params.get("labelSelector").cloned().unwrap_or_default();
        let fields = params.get("fieldSelector").cloned().unwrap_or_default();
        let initial = params.get("sendInitialEvents").is_some_and(|v| v == "true");
        let version = params.get("resourceVersion").cloned().unwrap_or_default();
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let line = |value: Value| {
            let mut line = serde_json::to_vec(&value).unwrap();
            line.push(b'\n');
            Bytes::from(line)
        };
        let stream = |rx: mpsc::UnboundedReceiver<Bytes>| -> SimBody {
            StreamBody::new(
                tokio_stream_from(rx)
                    .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)))
                    .boxed(),
            )
        };
        let response = |rx| {
            let mut response = Response::new(stream(rx));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        };
        if fault == Some(Fault::WatchGone) && !(initial && version.is_empty()) {
            let gone = status(410, "Expired", "too old resource version");
            let _ = tx.send(line(json!({"type": "ERROR", "object": gone})));
            drop(tx);
            return (200, response(rx));
        }
        let (api_version, kind) = kind_of(resource);
        let matches = |o: &Value| labels_match(o, &labels) && fields_match(o, &fields);
        if initial {
            for object in state
                .list(resource, namespace)
                .into_iter()
                .filter(|o| matches(o))
            {
                let _ = tx.send(line(json!({"type": "ADDED", "object": object})));
            }
            let mark = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version, "kind": kind,
                "metadata": {"resourceVersion": state.rv.to_string(),
                             "annotations": {"k8s.io/initial-events-end": "true"}}}});
            let _ = tx.send(line(mark));
        } else if let Ok(after) = version.parse::<u64>() {
            for change in state.history.iter().filter(|c| {
                c.rv > after
                    && c.resource == resource
                    && c.namespace == namespace
                    && matches(&c.object)
            }) {
                let _ = tx.send(line(json!({"type": change.kind, "object": change.object})));
            }
        }
        let left = match fault {
            Some(Fault::WatchDrop(n)) => Some(n),
            _ => None,
        };
        if left == Some(0) {
            drop(tx);
        } else {
            state.watchers.push(Watcher {
                incarnation,
                resource: resource.to_string(),
                namespace: namespace.to_string(),
                labels,
                fields,
                tx,
                left,
            });
        }
        (200, response(rx))
    }
}

/// An unbounded receiver as a stream.
fn tokio_stream_from(mut rx: mpsc::UnboundedReceiver<Bytes>) -> BoxStream<'static, Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
