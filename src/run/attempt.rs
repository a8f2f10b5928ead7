//! One experiment attempt, driven to a terminal phase.
//!
//! The loop: perform the current phase's command (fetch, validate, create, watch, read,
//! delete…), feed the answer to the phase engine, then carry out the effects it returns in
//! order — the checkpoint (with the status entry and the audit record) is written before any
//! side effect and before any long wait, and events go out after the write they describe.
//! A restarted runner enters the same loop from the stored checkpoint (or from `Init` when
//! there is none): deterministic Job names make a repeated create an adoption.

use std::sync::Arc;
use std::time::Duration;

use chaos_runner_states::{self as states, Checkpoint, Effect, Input};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams, PropagationPolicy};

use crate::cluster::api::{ApiError, call, call_opt, call_raw_opt};
use crate::cluster::engine_writer::{ExperimentEntry, StatusChange};
use crate::cluster::events::{EventReport, EventType};
use crate::cluster::observe::{PodPhase, PodView};
use crate::contract::crd::{ChaosExperiment, ChaosResult, ResultReading, read_however_deep};
use crate::contract::merge::{self, DependencyKind, ExperimentRun};
use crate::contract::plan::PlanItem;
use crate::contract::record::{
    AuditEntry, Mark, PLANNED, Progress, millis, transition_event_key, unstarted_event_key,
};
use crate::contract::schedule::ItemState;
use crate::run::context::{ExperimentRead, RunContext, RunError, now};
use crate::run::monitor::{Judgement, MonitorClock, MonitorTimers};

/// How many observations in a row the phase engine may reject before the attempt stops
/// with an error (a restart then resumes it) instead of observing again forever.
const REJECTION_LIMIT: u32 = 50;
/// How long a finished pod's ChaosResult may take to show a final verdict.
const RESULT_GRACE: Duration = Duration::from_secs(10);

/// Which attempt: experiment, instance and iteration, and the key they make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptKey {
    pub key: String,
    /// The attempt's position in the plan (where its progress is kept).
    pub position: usize,
    pub experiment: String,
    pub instance: Option<String>,
    pub iteration: u32,
    pub iterations: u32,
}

impl AttemptKey {
    pub fn of(position: usize, item: &PlanItem, context: &RunContext) -> AttemptKey {
        let instance = context
            .engine
            .experiment_entry(&item.experiment)
            .and_then(|(_, entry)| {
                entry
                    .spec
                    .components
                    .env
                    .iter()
                    .rev()
                    .find(|var| var.name == "INSTANCE_ID")
                    .and_then(|var| var.value.clone())
            })
            .filter(|id| !id.is_empty());
        AttemptKey {
            key: item.key.clone(),
            position,
            experiment: item.experiment.clone(),
            instance,
            iteration: item.iteration,
            iterations: item.iterations,
        }
    }
}

/// How an attempt ended, as the scheduler and the final log need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd {
    pub verdict: String,
    pub detail: Option<String>,
    pub passed: bool,
    pub skipped: bool,
    pub ended_at_ms: u64,
}

impl AttemptEnd {
    pub fn summary(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{} ({detail})", self.verdict),
            None => self.verdict.clone(),
        }
    }

    pub fn item_state(&self) -> ItemState {
        if self.skipped {
            ItemState::Skipped {
                reason: self.summary(),
            }
        } else {
            ItemState::Finished {
                passed: self.passed,
                ended_at_ms: self.ended_at_ms,
            }
        }
    }

    fn of(checkpoint: &Checkpoint) -> AttemptEnd {
        let ended_at_ms = millis(&checkpoint.entered_at);
        match &checkpoint.phase {
            states::Phase::Completed { verdict, detail } => AttemptEnd {
                verdict: format!("{verdict:?}"),
                detail: detail.clone(),
                passed: *verdict == states::FinalVerdict::Pass,
                skipped: false,
                ended_at_ms,
            },
            states::Phase::Skipped { reason } => AttemptEnd {
                verdict: "Skipped".into(),
                detail: Some(reason.describe()),
                passed: false,
                skipped: false,
                ended_at_ms,
            },
            states::Phase::Aborted { reason } => AttemptEnd {
                verdict: "Aborted".into(),
                detail: Some(reason.clone()),
                passed: false,
                skipped: false,
                ended_at_ms,
            },
            other => AttemptEnd {
                verdict: format!("{:?}", other.kind()),
                detail: None,
                passed: false,
                skipped: false,
                ended_at_ms,
            },
        }
    }
}

/// The progress mark an ended attempt leaves.
impl AttemptEnd {
    pub fn mark(&self) -> Mark {
        if self.verdict == "Aborted" {
            Mark::Aborted
        } else if self.skipped {
            Mark::Skipped
        } else if self.passed {
            Mark::Passed
        } else {
            Mark::NotPassed
        }
    }

    /// How an attempt ended, from its progress mark alone (its checkpoint is gone once it
    /// ended); `verdict` is the experiment's entry, which names the last iteration's verdict.
    pub fn recorded(progress: Progress, started_at: &str, verdict: Option<&str>) -> AttemptEnd {
        let verdict = match progress.mark {
            Mark::Passed => "Pass",
            Mark::Aborted => "Aborted",
            Mark::Skipped => "Skipped",
            _ => verdict.filter(|v| *v != "Pass").unwrap_or("Fail"),
        };
        AttemptEnd {
            verdict: verdict.into(),
            detail: Some("as recorded".into()),
            passed: progress.mark == Mark::Passed,
            skipped: progress.mark == Mark::Skipped,
            ended_at_ms: progress.at_ms(started_at),
        }
    }
}

/// The progress mark of a phase that is not terminal (`None`: nothing created yet).
fn progress_mark(phase: &states::Phase) -> Option<Mark> {
    match phase {
        states::Phase::LaunchJob { .. } => Some(Mark::LaunchJob),
        states::Phase::Monitor { .. } => Some(Mark::Monitor),
        states::Phase::AwaitResult { .. }
        | states::Phase::Cleanup { .. }
        | states::Phase::Verdict { .. } => Some(Mark::PastMonitor),
        _ => None,
    }
}

/// The Event for a recorded transition whose Event may have been lost (the runner died between
/// the checkpoint and the Event): same name, reason and type as the original; the message says
/// it is sent again (the original's message is not kept in the trail).
pub fn recorded_transition_event(run_id: &str, entry: &AuditEntry) -> EventReport {
    let warning = entry.from == PLANNED
        || states::TRANSITIONS.iter().any(|row| {
            row.from.to_string() == entry.from
                && row.to.to_string() == entry.to
                && row.event.1 == entry.reason
                && row.event.0 == states::EventKind::Warning
        });
    let experiment = entry.attempt.split('#').next().unwrap_or(&entry.attempt);
    EventReport {
        kind: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: entry.reason.clone(),
        message: format!(
            "Chaos Experiment {experiment} ({}): {} -> {} at {} (sent again by a restarted runner)",
            entry.attempt, entry.from, entry.to, entry.at
        ),
        key: transition_event_key(run_id, entry),
    }
}

/// Where an attempt without a checkpoint starts again, from the furthest progress recorded
/// for it. Only facts the cluster still holds are used: the deterministic Job name, the pod
/// named in the status entry, and the ChaosResult (which outlives the Job). A Job that was
/// created (Monitor reached) and may already be gone is not created again: the attempt goes on
/// from reading its result. Otherwise it starts over at Init, which creates nothing that could
/// not be adopted.
pub fn rebuilt_phase(
    reached: Option<Mark>,
    job: &str,
    pod_in_entry: Option<&str>,
) -> states::Phase {
    let pod = pod_in_entry
        .filter(|pod| pod.starts_with(&format!("{job}-")))
        .map(str::to_string);
    match reached {
        Some(Mark::PastMonitor) => states::Phase::AwaitResult {
            job: job.to_string(),
            pod,
            end: states::PodEnd::Succeeded,
        },
        Some(Mark::Monitor) => states::Phase::Monitor {
            job: job.to_string(),
            pod,
        },
        Some(Mark::LaunchJob) => states::Phase::LaunchJob {
            job: job.to_string(),
        },
        _ => states::Phase::Init,
    }
}

/// What the phases after the launch need of the merged experiment.
#[derive(Debug, Clone)]
struct RunFacts {
    timeouts: merge::StatusCheckTimeouts,
    /// `TOTAL_CHAOS_DURATION`, seconds.
    chaos_seconds: Option<u64>,
    result_name: String,
}

impl RunFacts {
    fn of(run: &ExperimentRun) -> RunFacts {
        RunFacts {
            timeouts: run.status_check_timeouts(),
            chaos_seconds: run.total_chaos_duration_seconds(),
            result_name: run.result_name(),
        }
    }
}

/// Drives one attempt.
pub struct AttemptRunner {
    context: Arc<RunContext>,
    key: AttemptKey,
    /// What Monitor and Verdict need of the merged experiment, known once it was read (or why
    /// it could not be). The merged experiment itself is made again where it is used and not
    /// kept: with hundreds of attempts in flight, a copy each was megabytes.
    facts: Option<Result<RunFacts, String>>,
    pending: StatusChange,
    pending_events: Vec<EventReport>,
    /// An abort is fed to the engine once; after that the phase's own commands run (the
    /// cleanup of an aborted attempt must not be interrupted by the same abort again).
    abort_delivered: bool,
    /// The progress mark last recorded for the attempt.
    marked: Option<Mark>,
    /// The verdict entry is stored (written before the Job's deletion).
    verdict_stored: bool,
    /// The span the attempt was created under (the run's): the attempt's span is its child
    /// even though the attempt runs in a task of its own.
    parent_span: tracing::Span,
}

impl AttemptRunner {
    pub fn new(context: Arc<RunContext>, key: AttemptKey) -> AttemptRunner {
        let marked = context.found.progress.get(&key.key).map(|p| p.mark);
        AttemptRunner {
            marked,
            verdict_stored: false,
            context,
            key,
            facts: None,
            pending: StatusChange::default(),
            pending_events: Vec::new(),
            abort_delivered: false,
            parent_span: tracing::Span::current(),
        }
    }

    fn job_name(&self) -> String {
        let scope = format!("{}/{}", self.context.engine_uid, self.context.run_id);
        crate::contract::job::job_name(
            &scope,
            &self.key.experiment,
            self.key.instance.as_deref(),
            self.key.iteration,
        )
    }

    fn load_checkpoint(&self) -> Result<Checkpoint, RunError> {
        match self.context.found.checkpoints.get(&self.key.key) {
            Some(stored) => {
                Checkpoint::from_json_value(stored.clone()).map_err(|e| RunError::Engine {
                    name: self.context.config.engine_name.clone(),
                    message: format!("checkpoint of {}: {e}", self.key.key),
                })
            }
            None => {
                let mut checkpoint = Checkpoint::new(
                    self.key.experiment.clone(),
                    self.key.instance.clone(),
                    self.key.iteration,
                    now(),
                );
                let reached = self.context.found.progress.get(&self.key.key).copied();
                checkpoint.phase = rebuilt_phase(
                    reached.map(|p| p.mark),
                    &self.job_name(),
                    self.context
                        .found
                        .pods
                        .get(&self.key.experiment)
                        .map(String::as_str),
                );
                // The verdict entry names the pod from `observed`, not from the phase.
                checkpoint.observed.pod = match &checkpoint.phase {
                    states::Phase::Monitor { pod, .. } | states::Phase::AwaitResult { pod, .. } => {
                        pod.clone()
                    }
                    _ => None,
                };
                // Phase clocks count from the real entry, as the progress recorded it.
                if let Some(progress) = reached.filter(|_| checkpoint.phase != states::Phase::Init)
                {
                    checkpoint.entered_at = progress.at_rfc3339(&self.context.found.started_at);
                }
                if checkpoint.phase != states::Phase::Init {
                    tracing::info!(phase = %checkpoint.phase.kind(), "no checkpoint: resuming from the recorded progress");
                }
                Ok(checkpoint)
            }
        }
    }

    /// Runs the attempt to a terminal phase; `None` when the runner was suspended first (its
    /// checkpoint written, its Job left running for the next runner).
    #[tracing::instrument(name = "attempt", parent = &self.parent_span, skip(self), fields(engine = %self.context.config.engine_name, experiment = %self.key.experiment, iteration = self.key.iteration))]
    pub async fn run(mut self) -> Result<Option<AttemptEnd>, RunError> {
        let mut checkpoint = self.load_checkpoint()?;
        if let Some(progress) = self.context.found.progress.get(&self.key.key)
            && progress.mark.is_final()
            && !self.context.found.checkpoints.contains_key(&self.key.key)
        {
            // The checkpoint is gone but the progress says this attempt ended: never run twice.
            tracing::info!("already finished according to the recorded progress");
            let verdict = self.context.found.verdicts.get(&self.key.experiment);
            let started_at = &self.context.found.started_at;
            return Ok(Some(AttemptEnd::recorded(
                *progress,
                started_at,
                verdict.map(String::as_str),
            )));
        }
        let mut commands = states::resume_effects(&checkpoint);
        let mut suspend = self.context.suspend.clone();
        let mut rejections = 0;
        loop {
            if checkpoint.is_terminal() {
                // With the verdict already stored (it goes out before the Job's deletion), the
                // end travels with the next write; otherwise the verdict is written now.
                if self.verdict_stored {
                    self.stage()?;
                } else {
                    self.flush().await?;
                }
                return Ok(Some(AttemptEnd::of(&checkpoint)));
            }
            // An abort outranks a suspension: it is delivered as an input below.
            if *suspend.borrow_and_update() && self.context.abort.borrow().is_none() {
                self.flush().await?;
                tracing::info!(phase = %checkpoint.phase.kind(), "suspended: checkpoint written, nothing left running is touched");
                return Ok(None);
            }
            let Some(command) = commands.iter().find(|e| is_command(e)).cloned() else {
                // A phase without a command would stall: treat as a defect of the table.
                return Err(RunError::Engine {
                    name: self.context.config.engine_name.clone(),
                    message: format!("phase {:?} asked for no command", checkpoint.phase.kind()),
                });
            };
            // A few launches at a time: each holds its merged experiment, its Job and the
            // request body until the answer, and a plan may start hundreds of attempts at
            // once. Taken before the checkpoint, so the create follows it at once: a
            // checkpoint fences its side effect only while no newer runner has written
            // (compare-and-swap), and a wait for a permit after it would leave that open.
            let context = self.context.clone();
            let _launching = match command {
                Effect::CreateJob { .. } => Some(context.launches.acquire().await),
                _ => None,
            };
            match write_before(&command) {
                WriteBefore::Commit => {
                    self.flush().await?;
                    self.verdict_stored = matches!(command, Effect::DeleteJob { .. });
                }
                WriteBefore::Stage => self.stage()?,
                WriteBefore::Nothing => {}
            }
            // A suspension interrupts whatever the command waits for; as at a crash, the phase
            // is checkpointed before its side effect, so the next runner redoes or adopts it.
            let input = tokio::select! {
                biased;
                input = self.perform(&checkpoint, &command) => input?,
                () = suspended(&mut suspend) => continue,
            };
            tracing::debug!(phase = %checkpoint.phase.kind(), input = ?input.kind(), "observed");
            let context = states::StepContext {
                cleanup: self.context.cleanup,
                now: now(),
            };
            match states::step(&checkpoint, &input, &context) {
                Ok(step) => {
                    rejections = 0;
                    if let Some(record) = &step.transition {
                        tracing::info!(from = %record.from, to = %record.to, reason = %record.reason, "transition");
                    }
                    self.absorb(&step);
                    checkpoint = step.checkpoint;
                    commands = step.effects;
                    if commands.iter().all(|e| !is_command(e)) {
                        commands = states::resume_effects(&checkpoint);
                    }
                }
                Err(rejected) => {
                    // The engine and the driver disagree (a defect): observe again a few times
                    // (the cluster may have moved on), then stop with an error rather than spin.
                    rejections += 1;
                    if rejections > REJECTION_LIMIT {
                        return Err(RunError::Engine {
                            name: self.context.config.engine_name.clone(),
                            message: format!(
                                "{rejected}: rejected {rejections} times in a row for {}",
                                self.key.key
                            ),
                        });
                    }
                    tracing::warn!(%rejected, "observation not accepted in this phase; observing again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
    }

    /// Ends an attempt that never started (a failed dependency, or an abort before it began).
    pub async fn skip_unstarted(
        mut self,
        reason: &str,
        aborted: bool,
    ) -> Result<AttemptEnd, RunError> {
        let at = now();
        let (status, verdict, to) = if aborted {
            ("Forcefully Aborted", "Stopped", "Aborted")
        } else {
            ("Skipped", "N/A", "Skipped")
        };
        self.pending
            .entries
            .push(self.entry("N/A", status, verdict, &at));
        self.pending.audit.push(AuditEntry {
            attempt: self.key.key.clone(),
            from: PLANNED.into(),
            to: to.into(),
            reason: reason.into(),
            at: at.clone(),
        });
        self.pending_events.push(EventReport {
            kind: EventType::Warning,
            reason: if aborted {
                "ExperimentAborted"
            } else {
                "ExperimentSkipped"
            }
            .into(),
            message: format!("Chaos Experiment {} not run: {reason}", self.key.experiment),
            // Keyed by run (as every Event of an attempt): a later run of the same engine
            // reports its own instead of meeting the earlier run's Event name and staying silent.
            key: unstarted_event_key(&self.context.run_id, &self.key.key),
        });
        let end = AttemptEnd {
            verdict: to.into(),
            detail: Some(reason.into()),
            passed: false,
            skipped: true,
            ended_at_ms: millis(&at),
        };
        let started_at = &self.context.found.started_at;
        let progress = Progress::at(end.mark(), &at, started_at);
        self.pending.progress.push((self.key.position, progress));
        self.flush().await?;
        Ok(end)
    }

    fn entry(&self, pod: &str, status: &str, verdict: &str, at: &str) -> ExperimentEntry {
        ExperimentEntry {
            name: self.key.experiment.clone(),
            runner: format!("{}-runner", self.context.config.engine_name),
            experiment_pod: pod.into(),
            status: status.into(),
            verdict: verdict.into(),
            last_update_time: at.into(),
            iteration: (self.key.iterations > 1).then_some(self.key.iteration),
            iterations: (self.key.iterations > 1).then_some(self.key.iterations),
        }
    }

    /// Queues the step's checkpoint, entry, audit record and events.
    fn absorb(&mut self, step: &states::Step) {
        let at = step.checkpoint.entered_at.clone();
        // The verdict is known once the result is read: show it at once, in the patch that
        // goes before the Job's cleanup (the Go runner's order too: verdict, then cleanup). The
        // Verdict phase writes the same entry again; an abort during cleanup overwrites it.
        if let states::Phase::Cleanup {
            outcome: outcome @ states::Outcome::Ran { .. },
            ..
        } = &step.checkpoint.phase
        {
            let verdict_phase = Checkpoint {
                phase: states::Phase::Verdict {
                    outcome: outcome.clone(),
                },
                ..step.checkpoint.clone()
            };
            if let Some(entry) = states::entry_for(&verdict_phase) {
                self.pending.entries.push(self.entry(
                    &entry.pod,
                    entry.status.as_str(),
                    entry.verdict.as_str(),
                    &at,
                ));
            }
        }
        for effect in &step.effects {
            match effect {
                Effect::Checkpoint => {
                    let started_at = &self.context.found.started_at;
                    if step.checkpoint.is_terminal() {
                        // An ended attempt keeps only its progress mark.
                        let mark = AttemptEnd::of(&step.checkpoint).mark();
                        let progress = Progress::at(mark, &at, started_at);
                        self.pending.progress.push((self.key.position, progress));
                        self.pending.checkpoints.push((self.key.key.clone(), None));
                    } else {
                        if let Ok(value) = serde_json::to_value(&step.checkpoint) {
                            let key = self.key.key.clone();
                            self.pending.checkpoints.push((key, Some(value)));
                        }
                        // A mark keeps the time the attempt first reached it.
                        if let Some(mark) = progress_mark(&step.checkpoint.phase)
                            && self.marked != Some(mark)
                        {
                            let progress = Progress::at(mark, &at, started_at);
                            self.pending.progress.push((self.key.position, progress));
                            self.marked = Some(mark);
                        }
                    }
                    if let Some(record) = &step.transition {
                        self.pending.audit.push(AuditEntry {
                            attempt: self.key.key.clone(),
                            from: record.from.to_string(),
                            to: record.to.to_string(),
                            reason: record.reason.to_string(),
                            at: at.clone(),
                        });
                    }
                }
                Effect::WriteEntry(entry) | Effect::WriteVerdict(entry) => {
                    self.pending.entries.push(self.entry(
                        &entry.pod,
                        entry.status.as_str(),
                        entry.verdict.as_str(),
                        &at,
                    ));
                }
                Effect::Emit(event) => {
                    let Some(record) = &step.transition else {
                        continue;
                    };
                    let audit = AuditEntry {
                        attempt: self.key.key.clone(),
                        from: record.from.to_string(),
                        to: record.to.to_string(),
                        reason: record.reason.to_string(),
                        at: at.clone(),
                    };
                    self.pending_events.push(EventReport {
                        kind: match event.kind {
                            states::EventKind::Normal => EventType::Normal,
                            states::EventKind::Warning => EventType::Warning,
                        },
                        reason: event.reason.to_string(),
                        message: event.message.clone(),
                        key: transition_event_key(&self.context.run_id, &audit),
                    });
                }
                _ => {}
            }
        }
    }

    /// Writes what is queued (one compare-and-swap patch, shared with other attempts), then
    /// emits the events that describe it.
    async fn flush(&mut self) -> Result<(), RunError> {
        let change = std::mem::take(&mut self.pending);
        // Due before the write: the trail keeps these transitions until they are sent.
        let keys = self.pending_events.iter().map(|r| r.key.as_str());
        self.context.events.pending().expect(keys);
        // Committed even when this attempt has nothing to store: a resumed attempt's first
        // command (the Job create or delete its checkpoint names) must follow a stored write
        // of this runner's, or it would act unfenced, on a run an older runner may have moved
        // on since it was read. Once the runner has written, an empty commit costs no request.
        match self.context.writer.commit(change).await {
            Ok(()) => {}
            // Deleted engine: the run is being aborted; the Jobs go by garbage collection.
            Err(crate::cluster::engine_writer::WriteError::EngineGone(name)) => {
                tracing::warn!(engine = %name, "engine gone; status not written");
            }
            Err(error) => return Err(error.into()),
        }
        for report in std::mem::take(&mut self.pending_events) {
            self.context.events.emit(report);
        }
        Ok(())
    }

    /// Hands what is queued to the writer without waiting: it is stored with the next commit
    /// (any attempt's) or within the writer's linger, and its events are sent after that.
    fn stage(&mut self) -> Result<(), RunError> {
        let change = std::mem::take(&mut self.pending);
        let events = std::mem::take(&mut self.pending_events);
        let keys = events.iter().map(|r| r.key.as_str());
        self.context.events.pending().expect(keys);
        self.context.writer.stage(change, events)?;
        Ok(())
    }

    /// The abort reason, the first time it is asked after an abort.
    fn take_abort(&mut self) -> Option<String> {
        if self.abort_delivered {
            return None;
        }
        let reason = self.context.abort.borrow().clone()?;
        self.abort_delivered = true;
        Some(reason)
    }

    /// Performs a command and returns the observation that answers it.
    async fn perform(
        &mut self,
        checkpoint: &Checkpoint,
        command: &Effect,
    ) -> Result<Input, RunError> {
        if let Some(reason) = self.take_abort() {
            return Ok(Input::AbortRequested { reason });
        }
        // The short, large commands are boxed: inline, the largest of them (a Job being
        // created: ~7.5 KiB) sets the size of every attempt task for its whole life, most of
        // which it spends in the small wait for its pod.
        match command {
            Effect::FetchExperiment => self.fetch_experiment().await,
            Effect::CheckDependencies => Box::pin(self.check_dependencies()).await,
            Effect::CreateJob { job } => Box::pin(self.create_job(job)).await,
            Effect::WatchPod { job } => self.watch_pod(checkpoint, job).await,
            Effect::ReadResult => Box::pin(self.read_result(checkpoint)).await,
            Effect::DeleteJob { job } => self.delete_job(job).await,
            Effect::RetainJob { .. } => Ok(Input::JobRetained),
            // The entry is queued; the terminal phase that follows at once is flushed with it in
            // one atomic patch, so "written" and "terminal" become durable together.
            Effect::WriteVerdict(entry) => {
                let at = now();
                let entry = self.entry(
                    &entry.pod,
                    entry.status.as_str(),
                    entry.verdict.as_str(),
                    &at,
                );
                self.pending.entries.push(entry);
                Ok(Input::StatusWritten)
            }
            other => Err(RunError::Engine {
                name: self.context.config.engine_name.clone(),
                message: format!("{other:?} is not a command"),
            }),
        }
    }

    async fn fetch_experiment(&mut self) -> Result<Input, RunError> {
        Ok(match self.read_experiment().await? {
            Some(_) => Input::ExperimentFound,
            None => Input::ExperimentMissing,
        })
    }

    /// The ChaosExperiment, read once per run and experiment (as the Go runner does: iterations
    /// share it); `None` if it does not exist. Sets [`Self::facts`].
    async fn read_experiment(&mut self) -> Result<Option<ExperimentRead>, RunError> {
        let name = self.key.experiment.clone();
        let cached = self
            .context
            .experiments
            .lock()
            .ok()
            .and_then(|c| c.get(&name).cloned());
        let experiment = match cached {
            Some(experiment) => experiment,
            None => {
                let api: Api<DynamicObject> = Api::namespaced_with(
                    self.context.client.clone(),
                    &self.context.config.namespace,
                    &kube::api::ApiResource::erase::<ChaosExperiment>(&()),
                );
                let what = format!("get ChaosExperiment {name}");
                let raw = match call_opt(&what, || api.get(&name)).await {
                    Ok(Some(raw)) => Ok(raw),
                    Ok(None) => {
                        self.facts = Some(Err(format!("ChaosExperiment {name} not found")));
                        return Ok(None);
                    }
                    // E.g. nested deeper than kube's decoder reads (the CRD keeps unknown
                    // fields in the definition): as malformed as a wrong type.
                    Err(error) if error.is_undecodable() => {
                        Err(format!("ChaosExperiment {name} cannot be decoded: {error}"))
                    }
                    Err(error) => return Err(error.into()),
                };
                let experiment = raw.and_then(|raw| {
                    decode_experiment(raw)
                        .map(Arc::new)
                        .map_err(|e| format!("ChaosExperiment {name} is malformed: {e}"))
                });
                if let Ok(mut cache) = self.context.experiments.lock() {
                    cache.insert(name, experiment.clone());
                }
                experiment
            }
        };
        if self.facts.is_none() {
            let facts = experiment
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|experiment| self.merge(experiment))
                .map(|run| RunFacts::of(&run));
            self.facts = Some(facts);
        }
        Ok(Some(experiment))
    }

    fn merge(&self, experiment: &ChaosExperiment) -> Result<ExperimentRun, String> {
        // With an exporter, the experiment's TRACE_PARENT is this attempt's span (its spans
        // become the attempt's children); otherwise the runner's own, unchanged.
        let inherited = self.context.runner_env.trace_parent.as_deref();
        let trace_parent = crate::cluster::telemetry::experiment_trace_parent(
            &tracing::Span::current(),
            inherited,
        );
        if trace_parent.as_deref() == inherited {
            merge::merge(&self.context.engine, experiment, &self.context.runner_env)
        } else {
            let runner_env = merge::RunnerEnv {
                trace_parent,
                ..self.context.runner_env.clone()
            };
            merge::merge(&self.context.engine, experiment, &runner_env)
        }
        .map_err(|e| e.to_string())
    }

    /// The experiment merged with the engine (read again after a restart).
    async fn experiment_run(&mut self) -> Result<Result<ExperimentRun, String>, RunError> {
        if let Some(Err(reason)) = &self.facts {
            return Ok(Err(reason.clone()));
        }
        Ok(match self.read_experiment().await? {
            Some(Ok(experiment)) => self.merge(&experiment),
            Some(Err(reason)) => Err(reason),
            None => Err(format!("ChaosExperiment {} not found", self.key.experiment)),
        })
    }

    /// What Monitor and Verdict need of the merged experiment.
    async fn run_facts(&mut self) -> Result<Result<RunFacts, String>, RunError> {
        if self.facts.is_none() {
            self.read_experiment().await?;
        }
        Ok(self
            .facts
            .clone()
            .unwrap_or_else(|| Err("experiment not read".into())))
    }

    async fn check_dependencies(&mut self) -> Result<Input, RunError> {
        let run = match self.experiment_run().await? {
            Ok(run) => run,
            Err(reason) => {
                return Ok(Input::DependenciesInvalid {
                    reasons: vec![reason],
                });
            }
        };
        // The Go runner skips such an experiment with this Warning (`SideCarPatchError`).
        if self.context.engine.sidecars_enabled_without_any() {
            let reason = format!(
                "the engine's {} annotation enables sidecars but spec.components.sidecar defines none",
                crate::contract::crd::SIDECAR_ANNOTATION
            );
            // Queued: it goes out after the checkpoint of the skip it explains.
            self.pending_events.push(EventReport {
                kind: EventType::Warning,
                reason: "SideCarPatchError".into(),
                message: format!("Chaos Experiment {} not run: {reason}", self.key.experiment),
                key: format!("{}/{}/sidecar", self.context.run_id, self.key.key),
            });
            return Ok(Input::DependenciesInvalid {
                reasons: vec![reason],
            });
        }
        if let Err(errors) = merge::check_structure(&run) {
            return Ok(Input::DependenciesInvalid {
                reasons: errors.0.iter().map(ToString::to_string).collect(),
            });
        }
        let namespace = &self.context.config.namespace;
        let configmaps: Api<ConfigMap> = Api::namespaced(self.context.client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(self.context.client.clone(), namespace);
        let dependencies = merge::dependencies(&run);
        // Not held across the reads below (see `facts`).
        drop(run);
        let mut reasons = Vec::new();
        for dependency in dependencies {
            let name = dependency.name.clone();
            // A secret is asked for even when the review showed no general `get secrets`: a
            // rule with `resourceNames` may grant exactly this one. A 403 is a named failure.
            let found = match dependency.kind {
                DependencyKind::HostFile => continue,
                DependencyKind::ConfigMap => {
                    let what = format!("get ConfigMap {name}");
                    call_opt(&what, || configmaps.get_metadata(&name))
                        .await
                        .map(|o| o.is_some())
                }
                DependencyKind::Secret => {
                    let what = format!("get Secret {name}");
                    call_opt(&what, || secrets.get_metadata(&name))
                        .await
                        .map(|o| o.is_some())
                }
            };
            match found {
                Ok(true) => {}
                Ok(false) => reasons.push(format!(
                    "{} {name} ({}) not found in namespace {namespace}",
                    dependency.kind, dependency.origin
                )),
                Err(error) if error.is_forbidden() => reasons.push(format!(
                    "{} {name} ({}) cannot be checked: {error}",
                    dependency.kind, dependency.origin
                )),
                Err(error) => return Err(error.into()),
            }
        }
        if reasons.is_empty() {
            Ok(Input::DependenciesValid {
                job: self.job_name(),
            })
        } else {
            Ok(Input::DependenciesInvalid { reasons })
        }
    }

    async fn create_job(&mut self, job_name: &str) -> Result<Input, RunError> {
        let run = match self.experiment_run().await? {
            Ok(run) => run,
            Err(reason) => return Ok(Input::JobCreateFailed { reason }),
        };
        let job = match crate::contract::job::build_job(&run, job_name, &self.context.engine) {
            Ok(mut job) => {
                // Hardened clusters (OwnerReferencesPermissionEnforcement) refuse
                // blockOwnerDeletion to a creator that may not update the engine's finalizers;
                // the reference alone still lets the engine's deletion collect the Job.
                if !self.context.access.block_owner_deletion {
                    for owner in job.metadata.owner_references.iter_mut().flatten() {
                        owner.block_owner_deletion = None;
                    }
                }
                job
            }
            Err(error) => {
                return Ok(Input::JobCreateFailed {
                    reason: error.to_string(),
                });
            }
        };
        let jobs: Api<Job> =
            Api::namespaced(self.context.client.clone(), &self.context.config.namespace);
        let what = format!("create Job {job_name}");
        let post = PostParams::default();
        match call(&what, || jobs.create(&post, &job)).await {
            Ok(_) => Ok(Input::JobCreated),
            Err(error) if error.is_conflict() => self.adopt(&jobs, job_name).await,
            Err(error) if error.is_transient() => {
                // Unknown whether it was created: look before deciding.
                self.adopt(&jobs, job_name).await
            }
            Err(error) => Ok(Input::JobCreateFailed {
                reason: error.to_string(),
            }),
        }
    }

    async fn adopt(&self, jobs: &Api<Job>, job_name: &str) -> Result<Input, RunError> {
        let what = format!("get Job {job_name}");
        let Some(existing) = call_opt(&what, || jobs.get(job_name)).await? else {
            return Err(RunError::Api(ApiError::Timeout {
                what: format!("create Job {job_name}"),
                after: crate::cluster::api::CALL_DEADLINE,
            }));
        };
        let owner = existing
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(merge::CHAOS_UID_LABEL))
            .cloned();
        if owner.as_deref() == Some(self.context.engine_uid.as_str()) {
            Ok(Input::JobAlreadyExists)
        } else {
            Ok(Input::JobCreateFailed {
                reason: format!(
                    "a Job named {job_name} already exists and is not this engine's (chaosUID {})",
                    owner.unwrap_or_else(|| "unset".into())
                ),
            })
        }
    }

    /// Waits for the pod to tell something new: running (first time), done, failed, Pending
    /// too long, the user's deadline, or an abort. Every clock is judged on observed state
    /// ([`crate::run::monitor`]); a pod running past its expected end gets one Warning and is waited for.
    async fn watch_pod(&mut self, checkpoint: &Checkpoint, job: &str) -> Result<Input, RunError> {
        let (mut clock, chaos) = self.monitor_clock(checkpoint).await?;
        let known_pod = match &checkpoint.phase {
            states::Phase::Monitor { pod, .. } => pod.clone(),
            _ => None,
        };
        let context = self.context.clone();
        let watcher = self.key.key.clone();
        context.monitoring.send_modify(|m| {
            m.insert(watcher.clone(), None);
        });
        let _guard = MonitorGuard(&context.monitoring, watcher.clone());
        let mut pods = self.context.pods.clone();
        let mut abort = self.context.abort.clone();
        loop {
            abort.borrow_and_update();
            if let Some(reason) = self.take_abort() {
                return Ok(Input::AbortRequested { reason });
            }
            // Only this Job's pod is kept across the wait below, not a version of the whole
            // map per waiting attempt.
            let (view, synced) = {
                let snapshot = pods.borrow_and_update();
                (snapshot.get(job).cloned(), snapshot.synced)
            };
            let view = view.as_ref();
            let now_ms = crate::cluster::clock::now_ms();
            if let Some(news) = pod_news(view, known_pod.as_deref()) {
                return Ok(news);
            }
            if let Some(pod) = view.filter(|v| v.phase == PodPhase::Running) {
                // Tell the poller (if the runner polls) when this pod is expected to end.
                let started = pod.started_ms.or(pod.created_ms).unwrap_or(now_ms);
                let expected_end = Some(started + chaos * 1000);
                context.monitoring.send_if_modified(|m| {
                    let slot = m.entry(watcher.clone()).or_default();
                    let changed = *slot != expected_end;
                    *slot = expected_end;
                    changed
                });
            }
            let until_ms = match clock.judge(synced, view, now_ms) {
                Judgement::DeadlinePassed => {
                    let seconds = self.context.monitor_timeout.unwrap_or_default().as_secs();
                    return Ok(Input::DeadlinePassed {
                        what: format!("the Monitor deadline ({seconds}s)"),
                    });
                }
                Judgement::PendingTooLong => return Ok(Input::PendingTimeout),
                Judgement::Overdue { running_ms } => {
                    self.report_overdue(job, view, running_ms, chaos);
                    None
                }
                Judgement::Wait { until_ms } => until_ms,
            };
            let wait = until_ms.map(|at| Duration::from_millis(at.saturating_sub(now_ms)));
            tokio::select! {
                biased;
                changed = pods.changed() => if changed.is_err() {
                    return Err(RunError::Engine { name: self.context.config.engine_name.clone(), message: "pod observer stopped".into() });
                },
                _ = crate::run::context::sleep_opt(wait) => {}
                () = crate::run::context::changed_or_never(&mut abort) => {}
            }
        }
    }

    /// Monitor's clocks for this attempt, and its `TOTAL_CHAOS_DURATION` (seconds). The Monitor
    /// entry they count from survives a self-transition (the pod seen running) and, for an
    /// attempt resumed from the audit trail, comes from there.
    async fn monitor_clock(
        &mut self,
        checkpoint: &Checkpoint,
    ) -> Result<(MonitorClock, u64), RunError> {
        let facts = self.run_facts().await?.ok();
        let timeouts = facts
            .as_ref()
            .map(|f| f.timeouts)
            .unwrap_or(merge::StatusCheckTimeouts {
                delay_seconds: merge::DEFAULT_STATUS_CHECK_DELAY,
                timeout_seconds: merge::DEFAULT_STATUS_CHECK_TIMEOUT,
            });
        let chaos = facts.as_ref().and_then(|f| f.chaos_seconds).unwrap_or(0);
        let timers = MonitorTimers::new(
            timeouts.timeout_seconds,
            chaos,
            millis(&checkpoint.entered_at),
            self.context.monitor_timeout.map(|d| d.as_millis() as u64),
        );
        Ok((MonitorClock::new(timers), chaos))
    }

    /// One Warning for a pod that runs past its expected end; the attempt goes on waiting.
    fn report_overdue(&self, job: &str, view: Option<&PodView>, running_ms: u64, chaos: u64) {
        let pod = view.map(|v| v.name.as_str()).unwrap_or(job);
        let message = format!(
            "Experiment pod {pod} of Chaos Experiment {} has run {}s, past its expected end \
             (TOTAL_CHAOS_DURATION {chaos}s plus the status checks); still waiting for it \
             (set chaos-runner.io/monitor-timeout to end such runs)",
            self.key.experiment,
            running_ms / 1000
        );
        tracing::warn!(%pod, running_s = running_ms / 1000, "experiment overdue");
        self.context.events.emit(EventReport {
            kind: EventType::Warning,
            reason: "ExperimentOverdue".into(),
            message,
            // One per attempt: a restarted runner's repeat lands on the same Event.
            key: format!("{}/{}/overdue", self.context.run_id, self.key.key),
        });
    }

    async fn read_result(&mut self, checkpoint: &Checkpoint) -> Result<Input, RunError> {
        let facts = self.run_facts().await?;
        let name = match facts {
            Ok(facts) => facts.result_name,
            Err(_) => merge::result_name(
                &self.context.config.engine_name,
                &self.key.experiment,
                self.key.instance.as_deref(),
            ),
        };
        let pod_succeeded = matches!(
            &checkpoint.phase,
            states::Phase::AwaitResult {
                end: states::PodEnd::Succeeded,
                ..
            }
        );
        let results: Api<ChaosResult> =
            Api::namespaced(self.context.client.clone(), &self.context.config.namespace);
        let what = format!("get ChaosResult {name}");
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            let found = match call_opt(&what, || results.get(&name)).await {
                Ok(found) => found.map(|result| result.reading()),
                // Nested too deep for kube's decoder (the CRD keeps unknown fields in spec
                // and status): read raw, without the limit.
                Err(error) if error.is_undecodable() => self.read_result_raw(&name).await?,
                Err(error) => return Err(error.into()),
            };
            let final_verdict = found
                .as_ref()
                .and_then(|r| r.verdict.as_deref())
                .is_some_and(|v| states::FinalVerdict::from_result(v).is_some());
            if final_verdict || !pod_succeeded || started.elapsed() >= RESULT_GRACE {
                return Ok(match found {
                    None => Input::ResultMissing,
                    Some(reading) => Input::ResultSeen {
                        verdict: reading.verdict.unwrap_or_default(),
                        phase: reading.phase,
                        fail_reason: reading.fail_reason,
                    },
                });
            }
            if let Some(reason) = self.take_abort() {
                return Ok(Input::AbortRequested { reason });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    /// ChaosResult `name` read raw and decoded however deep it is nested; one that does not
    /// decode even so reads as having no verdict, with the reason as its failure.
    async fn read_result_raw(&self, name: &str) -> Result<Option<ResultReading>, RunError> {
        use kube::Resource as _;
        let path = ChaosResult::url_path(&(), Some(&self.context.config.namespace));
        let requests = kube::core::Request::new(path);
        let params = kube::api::GetParams::default();
        let what = format!("get ChaosResult {name} (raw)");
        let client = &self.context.client;
        let Some(text) = call_raw_opt(client, &what, || requests.get(name, &params)).await? else {
            return Ok(None);
        };
        let reading = read_however_deep(text, |result: ChaosResult| result.reading())
            .unwrap_or_else(|error| ResultReading {
                fail_reason: Some(format!("the ChaosResult cannot be decoded: {error}")),
                ..ResultReading::default()
            });
        Ok(Some(reading))
    }

    async fn delete_job(&mut self, job: &str) -> Result<Input, RunError> {
        let jobs: Api<Job> =
            Api::namespaced(self.context.client.clone(), &self.context.config.namespace);
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Default::default()
        };
        let what = format!("delete Job {job}");
        call_opt(&what, || jobs.delete(job, &params)).await?;
        Ok(Input::JobDeleted)
    }
}

/// Resolves once the run is suspended; never when it is not (also once nobody can suspend it
/// any more: the stop watcher ends after an abort).
async fn suspended(suspend: &mut tokio::sync::watch::Receiver<bool>) {
    if suspend.wait_for(|suspended| *suspended).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What the pod tells that moves the attempt on: it ended (done or failed), or it runs and no
/// pod is recorded yet. (A running pod other than the recorded one is not news: reporting it
/// would be ignored by the engine and the same watch issued again at once, a spin.)
fn pod_news(view: Option<&PodView>, known_pod: Option<&str>) -> Option<Input> {
    let view = view?;
    match view.phase {
        PodPhase::Done => Some(Input::PodSucceeded {
            pod: view.name.clone(),
        }),
        PodPhase::Failed => Some(Input::PodFailed {
            pod: view.name.clone(),
            reason: view.reason.clone().unwrap_or_else(|| "pod Failed".into()),
        }),
        PodPhase::Running if known_pod.is_none() => Some(Input::PodRunning {
            pod: view.name.clone(),
        }),
        PodPhase::Running | PodPhase::Pending => None,
    }
}

/// Takes the attempt off the poller's list when its watch ends, however it ends.
struct MonitorGuard<'a>(
    &'a tokio::sync::watch::Sender<crate::cluster::observe::Monitored>,
    String,
);

impl Drop for MonitorGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|m| {
            m.remove(&self.1);
        });
    }
}

fn is_command(effect: &Effect) -> bool {
    !matches!(
        effect,
        Effect::Checkpoint | Effect::WriteEntry(_) | Effect::Emit(_)
    )
}

/// How the checkpoint is written before a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteBefore {
    /// Stored before the command runs: a side effect (create, delete) follows a written
    /// checkpoint.
    Commit,
    /// Handed to the writer, stored with the next commit or within its linger: watching a pod
    /// changes nothing in the cluster (a Job already created is adopted by name after a crash).
    Stage,
    /// Reads go before the checkpoint is stored; the verdict entry goes out with the terminal
    /// checkpoint.
    Nothing,
}

fn write_before(command: &Effect) -> WriteBefore {
    match command {
        Effect::CreateJob { .. } | Effect::DeleteJob { .. } => WriteBefore::Commit,
        Effect::WatchPod { .. } => WriteBefore::Stage,
        Effect::FetchExperiment
        | Effect::CheckDependencies
        | Effect::ReadResult
        | Effect::RetainJob { .. }
        | Effect::WriteVerdict(_)
        | Effect::Checkpoint
        | Effect::WriteEntry(_)
        | Effect::Emit(_) => WriteBefore::Nothing,
    }
}

/// The experiment as the merge reads it. Read as a `DynamicObject` so that a malformed one is
/// an error with its reason, not a failed GET; kept without its managed fields, which the runner
/// never reads and which are most of a small object's size.
fn decode_experiment(raw: DynamicObject) -> Result<ChaosExperiment, String> {
    let value = serde_json::to_value(raw).map_err(|e| e.to_string())?;
    let mut experiment: ChaosExperiment =
        crate::contract::crd::decode(value).map_err(|e| e.to_string())?;
    experiment.metadata.managed_fields = None;
    Ok(experiment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(phase: PodPhase, name: &str) -> PodView {
        PodView {
            name: name.into(),
            job: "a-x1".into(),
            phase,
            reason: None,
            deleting: false,
            created_ms: Some(0),
            started_ms: Some(0),
        }
    }

    #[test]
    fn a_running_pod_is_news_only_until_one_is_recorded() {
        let running = view(PodPhase::Running, "a-x1-p1");
        assert_eq!(
            pod_news(Some(&running), None),
            Some(Input::PodRunning {
                pod: "a-x1-p1".into()
            })
        );
        assert_eq!(pod_news(Some(&running), Some("a-x1-p1")), None);
        // Another running pod than the recorded one: not news (the engine would ignore it and
        // the same watch would be issued again at once).
        assert_eq!(pod_news(Some(&running), Some("a-x1-p0")), None);
        assert_eq!(pod_news(Some(&view(PodPhase::Pending, "p")), None), None);
        assert_eq!(pod_news(None, None), None);
        assert!(matches!(
            pod_news(Some(&view(PodPhase::Done, "p")), Some("p")),
            Some(Input::PodSucceeded { .. })
        ));
        assert!(matches!(
            pod_news(Some(&view(PodPhase::Failed, "p")), None),
            Some(Input::PodFailed { .. })
        ));
    }

    #[test]
    fn an_attempt_never_seen_starts_at_init() {
        assert_eq!(rebuilt_phase(None, "a-x1", None), states::Phase::Init);
    }

    #[test]
    fn a_launched_attempt_adopts_or_creates_its_job() {
        assert_eq!(
            rebuilt_phase(Some(Mark::LaunchJob), "a-x1", None),
            states::Phase::LaunchJob { job: "a-x1".into() }
        );
    }

    #[test]
    fn a_monitored_attempt_keeps_its_pod_from_the_entry() {
        assert_eq!(
            rebuilt_phase(Some(Mark::Monitor), "a-x1", Some("a-x1-q2w3e")),
            states::Phase::Monitor {
                job: "a-x1".into(),
                pod: Some("a-x1-q2w3e".into())
            }
        );
        // A pod of another Job in the entry is not this attempt's.
        assert_eq!(
            rebuilt_phase(Some(Mark::Monitor), "a-x1", Some("a-zz9-q2w3e")),
            states::Phase::Monitor {
                job: "a-x1".into(),
                pod: None
            }
        );
    }

    #[test]
    fn past_monitor_the_job_is_never_created_again() {
        assert!(matches!(
            rebuilt_phase(Some(Mark::PastMonitor), "a-x1", None),
            states::Phase::AwaitResult { .. }
        ));
    }

    #[test]
    fn every_phase_with_a_created_job_leaves_a_mark() {
        let job = || "a-x1".to_string();
        let checkpoint = Checkpoint::new("a", None, 1, "2026-11-25T00:00:00Z");
        for phase in [
            states::Phase::Monitor {
                job: job(),
                pod: None,
            },
            states::Phase::AwaitResult {
                job: job(),
                pod: None,
                end: states::PodEnd::Succeeded,
            },
        ] {
            let mark = progress_mark(&phase);
            assert!(matches!(mark, Some(Mark::Monitor | Mark::PastMonitor)));
            // Rebuilt from its mark, the attempt is where it was (or past its Job's creation).
            assert_eq!(rebuilt_phase(mark, "a-x1", None).kind(), phase.kind());
        }
        assert_eq!(progress_mark(&checkpoint.phase), None);
    }

    #[test]
    fn an_ended_attempt_is_told_by_its_mark() {
        let started = "2026-11-25T00:00:00Z";
        let end = |mark| AttemptEnd::recorded(Progress { mark, at_s: 7 }, started, Some("Fail"));
        assert!(end(Mark::Passed).passed && end(Mark::Passed).mark() == Mark::Passed);
        assert_eq!(end(Mark::NotPassed).mark(), Mark::NotPassed);
        assert!(end(Mark::Skipped).item_state().is_terminal());
        assert_eq!(end(Mark::Aborted).mark(), Mark::Aborted);
        assert_eq!(end(Mark::Passed).ended_at_ms, millis(started) + 7000);
    }
}
