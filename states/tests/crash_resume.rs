//! Property test: random observations, crashes between steps and between effects, restarts
//! from the last checkpoint actually written, against a simulated cluster that keeps its Job.
//!
//! Cases: 4096 by default, `PROPTEST_CASES` overrides.

use std::collections::VecDeque;

use chaos_runner_states::*;
use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

const JOB: &str = "pod-delete-abc123";
const POD: &str = "pod-delete-abc123-xyz";

/// What the cluster will do, fixed for one run.
#[derive(Clone, Debug)]
struct Facts {
    policy: CleanupPolicy,
    experiment_exists: bool,
    deps_valid: bool,
    create_refused: bool,
    pod_script: PodScript,
    /// The verdict the experiment writes when its pod ends; `None`: it never writes one.
    result: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum PodScript {
    Succeeds,
    Fails,
    StaysPending,
}

/// One thing that happens to the runner.
#[derive(Clone, Debug)]
enum Op {
    /// The driver feeds the oldest queued observation / command answer.
    Deliver,
    /// The simulated pod moves one step along its script.
    PodAdvance,
    /// The driver's status-check timer fires (only while watching a Pending pod).
    PendingTimeout,
    /// The overall Monitor deadline fires (only while watching).
    Deadline,
    /// `engineState: stop` (stays set: a restarted runner sees it again).
    Abort,
    /// The process dies between two steps.
    Crash,
    /// The process will die after this many writes of the next effect batch.
    CrashDuringNext(u8),
}

/// The reference model: the cluster's facts and what was done to the runner.
#[derive(Clone, Debug)]
struct Model {
    facts: Facts,
    abort_sent: bool,
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        (
            prop_oneof![Just(CleanupPolicy::Delete), Just(CleanupPolicy::Retain)],
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.1),
            prop_oneof![
                6 => Just(PodScript::Succeeds),
                3 => Just(PodScript::Fails),
                1 => Just(PodScript::StaysPending),
            ],
            prop_oneof![
                3 => Just(Some("Pass")),
                2 => Just(Some("Fail")),
                1 => Just(Some("Stopped")),
                1 => Just(Some("Error")),
                1 => Just(Some("Awaited")),
                1 => Just(Some("Bogus")),
                1 => Just(None),
            ],
        )
            .prop_map(
                |(policy, experiment_exists, deps_valid, create_refused, pod_script, result)| {
                    Model {
                        facts: Facts {
                            policy,
                            experiment_exists,
                            deps_valid,
                            create_refused,
                            pod_script,
                            result,
                        },
                        abort_sent: false,
                    }
                },
            )
            .boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Op> {
        prop_oneof![
            12 => Just(Op::Deliver),
            3 => Just(Op::PodAdvance),
            1 => Just(Op::PendingTimeout),
            1 => Just(Op::Deadline),
            1 => Just(Op::Abort),
            2 => Just(Op::Crash),
            2 => (0u8..8).prop_map(Op::CrashDuringNext),
        ]
        .boxed()
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        if matches!(op, Op::Abort) {
            state.abort_sent = true;
        }
        state
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Pod {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// The runner process (volatile) plus everything that survives it (cluster, engine status).
struct Harness {
    facts: Facts,
    // Durable: the cluster and the engine status.
    stored: Option<Checkpoint>,
    /// Audit history kept in the engine status, written atomically with the checkpoint.
    status_audit: Vec<AuditRecord>,
    /// The long-lived audit copy, written after the checkpoint and deduped by (from, to).
    mirror_audit: Vec<AuditRecord>,
    mirror_dedup_hits: u32,
    job_exists: bool,
    creations: u32,
    pod: Option<Pod>,
    pod_ever_ran: bool,
    entry: Option<Entry>,
    events: Vec<Event>,
    abort_signal: bool,
    /// Phase the engine was in each time an abort was fed.
    abort_fed_in: Vec<PhaseKind>,
    // Volatile: the runner's memory.
    memory: Checkpoint,
    inbox: VecDeque<Input>,
    watching: bool,
    crash_budget: Option<u8>,
    // Coverage counters (test evidence that the interesting paths were taken).
    adopted: u32,
    crashed_mid_batch: u32,
    rejected: u32,
    aborts_accepted_in: Vec<PhaseKind>,
}

/// Raised when an armed crash fires inside an effect batch.
struct Crashed;

impl Harness {
    fn new(facts: Facts) -> Harness {
        let mut harness = Harness {
            facts,
            stored: None,
            status_audit: Vec::new(),
            mirror_audit: Vec::new(),
            mirror_dedup_hits: 0,
            job_exists: false,
            creations: 0,
            pod: None,
            pod_ever_ran: false,
            entry: None,
            events: Vec::new(),
            abort_signal: false,
            abort_fed_in: Vec::new(),
            memory: fresh(),
            inbox: VecDeque::new(),
            watching: false,
            crash_budget: None,
            adopted: 0,
            crashed_mid_batch: 0,
            rejected: 0,
            aborts_accepted_in: Vec::new(),
        };
        harness.start();
        harness
    }

    fn ctx(&self) -> StepContext {
        StepContext {
            cleanup: self.facts.policy,
            now: "2025-01-01T00:00:00Z".to_owned(),
        }
    }

    /// One durable write; fails when an armed crash is due.
    fn write(&mut self) -> Result<(), Crashed> {
        match self.crash_budget {
            Some(0) => {
                self.crash_budget = None;
                Err(Crashed)
            }
            Some(n) => {
                self.crash_budget = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn mirror(&mut self, record: &AuditRecord) {
        if self
            .mirror_audit
            .iter()
            .any(|r| (r.from, r.to) == (record.from, record.to))
        {
            self.mirror_dedup_hits += 1;
        } else {
            self.mirror_audit.push(record.clone());
        }
    }

    /// (Re)start the runner from the last checkpoint written, with the cluster as it is.
    fn start(&mut self) {
        self.memory = self.stored.clone().unwrap_or_else(fresh);
        self.inbox.clear();
        self.watching = false;
        // Re-sync the long-lived audit copy from the status history (deduped).
        for record in self.status_audit.clone() {
            self.mirror(&record);
        }
        let resume = resume_effects(&self.memory);
        for effect in &resume {
            assert!(
                allowed_effects(self.memory.phase.kind()).contains(&effect.kind()),
                "resume asks for {effect:?} in {:?}",
                self.memory.phase
            );
            assert!(
                !matches!(effect, Effect::Checkpoint | Effect::Emit(_)),
                "resume re-records {effect:?}"
            );
        }
        if self.perform(resume, None).is_err() {
            self.crashed_mid_batch += 1;
            return self.start();
        }
        if self.abort_signal {
            self.feed(Input::AbortRequested {
                reason: "engineState stop".to_owned(),
            });
        }
    }

    fn crash(&mut self) {
        self.start();
    }

    /// Performs one effect batch in order; stops at an armed crash.
    fn perform(
        &mut self,
        effects: Vec<Effect>,
        record: Option<&AuditRecord>,
    ) -> Result<(), Crashed> {
        for effect in effects {
            self.write()?;
            match effect {
                Effect::Checkpoint => {
                    let record = record.expect("a checkpoint belongs to a transition");
                    let previous = self.stored.as_ref().map(|cp| cp.phase.kind());
                    if let Some(previous) = previous {
                        assert!(
                            self.memory.phase.kind().ordinal() >= previous.ordinal(),
                            "stored phase moved back from {previous} to {:?}",
                            self.memory.phase
                        );
                        assert!(!previous.is_terminal(), "stored terminal {previous} left");
                    }
                    self.stored = Some(self.memory.clone());
                    self.status_audit.push(record.clone());
                    self.write()?;
                    self.mirror(record);
                }
                Effect::WriteEntry(entry) => self.entry = Some(entry),
                Effect::Emit(event) => {
                    let last = self.status_audit.last().expect("event after a checkpoint");
                    assert_eq!(last.reason, event.reason, "event without its checkpoint");
                    self.events.push(event);
                }
                Effect::FetchExperiment => self.inbox.push_back(if self.facts.experiment_exists {
                    Input::ExperimentFound
                } else {
                    Input::ExperimentMissing
                }),
                Effect::CheckDependencies => self.inbox.push_back(if self.facts.deps_valid {
                    Input::DependenciesValid {
                        job: JOB.to_owned(),
                    }
                } else {
                    Input::DependenciesInvalid {
                        reasons: vec!["configmap cm not found".to_owned()],
                    }
                }),
                Effect::CreateJob { job } => {
                    assert_eq!(job, JOB);
                    let answer = if self.job_exists {
                        Input::JobAlreadyExists
                    } else if self.facts.create_refused {
                        Input::JobCreateFailed {
                            reason: "admission denied".to_owned(),
                        }
                    } else {
                        self.job_exists = true;
                        self.creations += 1;
                        self.pod = Some(Pod::Pending);
                        Input::JobCreated
                    };
                    self.inbox.push_back(answer);
                }
                Effect::WatchPod { job } => {
                    assert_eq!(job, JOB);
                    self.watching = true;
                    // A watch (or the first poll) reports the pod as it is now.
                    if let Some(input) = self.pod.and_then(pod_input) {
                        self.inbox.push_back(input);
                    }
                }
                Effect::ReadResult => {
                    let ended = matches!(self.pod, Some(Pod::Succeeded | Pod::Failed));
                    let answer = match self.facts.result {
                        Some(verdict) if self.pod_ever_ran => Input::ResultSeen {
                            verdict: if ended { verdict } else { "Awaited" }.to_owned(),
                            phase: "Completed".to_owned(),
                            fail_reason: None,
                        },
                        _ => Input::ResultMissing,
                    };
                    self.inbox.push_back(answer);
                }
                Effect::DeleteJob { job } => {
                    assert_eq!(job, JOB);
                    self.job_exists = false;
                    self.pod = None;
                    self.inbox.push_back(Input::JobDeleted);
                }
                Effect::RetainJob { job } => {
                    assert_eq!(job, JOB);
                    self.inbox.push_back(Input::JobRetained);
                }
                Effect::WriteVerdict(entry) => {
                    self.entry = Some(entry);
                    self.inbox.push_back(Input::StatusWritten);
                }
            }
        }
        Ok(())
    }

    /// The driver's loop body for one observation.
    fn feed(&mut self, input: Input) {
        let before = self.memory.clone();
        if matches!(input, Input::AbortRequested { .. }) {
            self.abort_fed_in.push(before.phase.kind());
        }
        let result = step(&before, &input, &self.ctx());
        if before.is_terminal() {
            assert!(
                result.is_err(),
                "terminal {:?} accepted {input:?}",
                before.phase
            );
        }
        let Ok(step) = result else {
            self.rejected += 1;
            return; // Rejected: logged and ignored by the driver.
        };
        let Some(record) = step.transition.clone() else {
            assert!(step.effects.is_empty());
            assert_eq!(step.checkpoint, before);
            return;
        };
        let (from, to) = (before.phase.kind(), step.checkpoint.phase.kind());
        assert!(to.ordinal() >= from.ordinal(), "{from} -> {to} goes back");
        assert_eq!((record.from, record.to), (from, to));
        assert_eq!(step.effects.first(), Some(&Effect::Checkpoint));
        assert!(matches!(step.effects.get(1), Some(Effect::Emit(_))));
        for effect in &step.effects {
            assert!(
                allowed_effects(to).contains(&effect.kind()),
                "{effect:?} not allowed in {to}"
            );
        }
        if matches!(input, Input::JobAlreadyExists) {
            self.adopted += 1;
        }
        if matches!(input, Input::AbortRequested { .. }) {
            self.aborts_accepted_in.push(from);
        }
        self.memory = step.checkpoint;
        if to != PhaseKind::Monitor {
            self.watching = false;
        }
        if self.perform(step.effects, Some(&record)).is_err() {
            self.crashed_mid_batch += 1;
            self.crash();
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Deliver => {
                if let Some(input) = self.inbox.pop_front() {
                    self.feed(input);
                }
            }
            Op::PodAdvance => self.advance_pod(),
            Op::PendingTimeout => {
                if self.watching && self.pod == Some(Pod::Pending) {
                    self.inbox.push_back(Input::PendingTimeout);
                }
            }
            Op::Deadline => {
                if self.watching {
                    self.inbox.push_back(Input::DeadlinePassed {
                        what: "monitor deadline".to_owned(),
                    });
                }
            }
            Op::Abort => {
                self.abort_signal = true;
                self.feed(Input::AbortRequested {
                    reason: "engineState stop".to_owned(),
                });
            }
            Op::Crash => self.crash(),
            Op::CrashDuringNext(writes) => self.crash_budget = Some(*writes),
        }
    }

    fn advance_pod(&mut self) {
        let next = match (self.pod, self.facts.pod_script) {
            (Some(Pod::Pending), PodScript::StaysPending) | (None, _) => return,
            (Some(Pod::Pending), _) => Pod::Running,
            (Some(Pod::Running), PodScript::Succeeds) => Pod::Succeeded,
            (Some(Pod::Running), _) => Pod::Failed,
            (Some(Pod::Succeeded | Pod::Failed), _) => return,
        };
        if next == Pod::Running {
            self.pod_ever_ran = true;
        }
        self.pod = Some(next);
        if self.watching
            && let Some(input) = pod_input(next)
        {
            self.inbox.push_back(input);
        }
    }

    /// Runs the attempt to its end with no more crashes, as a healthy driver would.
    fn drain(&mut self) {
        self.crash_budget = None;
        for _ in 0..200 {
            if let Some(input) = self.inbox.pop_front() {
                self.feed(input);
            } else if self.memory.is_terminal() {
                return;
            } else if self.watching {
                match (self.pod, self.facts.pod_script) {
                    (Some(Pod::Pending), PodScript::StaysPending) => {
                        self.inbox.push_back(Input::PendingTimeout)
                    }
                    _ => self.advance_pod(),
                }
            } else {
                panic!(
                    "stalled in {:?} with nothing to wait for",
                    self.memory.phase
                );
            }
        }
        panic!("no terminal phase after 200 steps: {:?}", self.memory.phase);
    }

    fn check_durable_invariants(&self) {
        assert!(self.creations <= 1, "{} Jobs created", self.creations);
        // The status audit is one unbroken chain from Init; the mirror holds the same records.
        let mut at = PhaseKind::Init;
        for record in &self.status_audit {
            assert_eq!(
                record.from, at,
                "audit chain broken: {:?}",
                self.status_audit
            );
            at = record.to;
        }
        if let Some(stored) = &self.stored {
            assert_eq!(stored.phase.kind(), at);
        }
        let keys = |records: &[AuditRecord]| -> Vec<(PhaseKind, PhaseKind)> {
            records.iter().map(|r| (r.from, r.to)).collect()
        };
        assert_eq!(
            keys(&self.mirror_audit)[..],
            keys(&self.status_audit)[..self.mirror_audit.len()],
            "mirror diverged"
        );
    }
}

fn fresh() -> Checkpoint {
    Checkpoint::new("pod-delete", None, 1, "2025-01-01T00:00:00Z")
}

fn pod_input(pod: Pod) -> Option<Input> {
    Some(match pod {
        Pod::Pending => Input::PodPending,
        Pod::Running => Input::PodRunning {
            pod: POD.to_owned(),
        },
        Pod::Succeeded => Input::PodSucceeded {
            pod: POD.to_owned(),
        },
        Pod::Failed => Input::PodFailed {
            pod: POD.to_owned(),
            reason: "Error".to_owned(),
        },
    })
}

struct EngineUnderCrashes;

impl StateMachineTest for EngineUnderCrashes {
    type SystemUnderTest = Harness;
    type Reference = Reference;

    fn init_test(model: &Model) -> Harness {
        Harness::new(model.facts.clone())
    }

    fn apply(mut harness: Harness, _: &Model, op: Op) -> Harness {
        harness.apply(&op);
        harness
    }

    fn check_invariants(harness: &Harness, model: &Model) {
        harness.check_durable_invariants();
        if !model.abort_sent {
            assert!(harness.abort_fed_in.is_empty());
        }
    }

    fn teardown(harness: Harness, model: Model) {
        finish(harness, &model);
    }
}

/// Runs the attempt to its end and checks the final properties; returns the harness for stats.
fn finish(mut harness: Harness, model: &Model) -> Harness {
    {
        harness.drain();
        harness.check_durable_invariants();
        let last = harness.memory.clone();
        assert!(last.is_terminal());
        assert_eq!(
            harness.stored.as_ref(),
            Some(&last),
            "terminal never written"
        );
        assert_eq!(
            harness.mirror_audit.len(),
            harness.status_audit.len(),
            "mirror incomplete"
        );
        let facts = &model.facts;
        let aborted = harness
            .abort_fed_in
            .iter()
            .any(|phase| phase.ordinal() < PhaseKind::Verdict.ordinal());
        assert_eq!(
            aborted,
            matches!(last.phase, Phase::Aborted { .. }),
            "abort accepted in {:?} but ended {:?}",
            harness.abort_fed_in,
            last.phase
        );
        if !model.abort_sent {
            assert!(!aborted);
        }
        // Cleanup: every created Job is deleted on abort and under `delete`, kept under `retain`.
        if harness.creations == 1 {
            let should_delete = aborted || facts.policy == CleanupPolicy::Delete;
            assert_eq!(
                harness.job_exists, !should_delete,
                "Job left as it should not be"
            );
        }
        // The reference outcome from the cluster's facts alone.
        let entry = harness.entry.clone().expect("a final entry");
        match &last.phase {
            Phase::Aborted { .. } => {
                assert_eq!(entry.status, EntryStatus::ForcefullyAborted);
                assert_eq!(entry.verdict, EntryVerdict::Stopped);
            }
            Phase::Skipped { reason } => {
                let expected = if !facts.experiment_exists {
                    SkipReason::ExperimentNotFound
                } else if !facts.deps_valid {
                    SkipReason::DependenciesInvalid {
                        reasons: vec!["configmap cm not found".to_owned()],
                    }
                } else {
                    assert!(facts.create_refused);
                    SkipReason::JobCreateFailed {
                        reason: "admission denied".to_owned(),
                    }
                };
                assert_eq!(reason, &expected);
                assert_eq!(harness.creations, 0);
                assert_eq!(entry.verdict, EntryVerdict::Fail);
                assert_eq!(entry.pod, NO_POD);
            }
            Phase::Completed { verdict, .. } => {
                assert!(facts.experiment_exists && facts.deps_valid && !facts.create_refused);
                assert_eq!(harness.creations, 1);
                // The verdict is the result's when the engine read a final one, else Error; and
                // when the pod ended before the read, the read saw the experiment's verdict.
                let monitor_exit = harness
                    .status_audit
                    .iter()
                    .find(|r| r.from == PhaseKind::Monitor && r.to == PhaseKind::AwaitResult)
                    .expect("left Monitor for AwaitResult")
                    .on;
                let read = last.observed.result_verdict.clone();
                if matches!(monitor_exit, InputKind::PodSucceeded | InputKind::PodFailed) {
                    assert_eq!(read.as_deref(), facts.result, "exit {monitor_exit}");
                }
                let expected = read
                    .as_deref()
                    .and_then(FinalVerdict::from_result)
                    .unwrap_or(FinalVerdict::Error);
                assert_eq!(*verdict, expected, "facts {facts:?}, exit {monitor_exit}");
                assert_eq!(entry.verdict, EntryVerdict::from(expected));
            }
            other => panic!("not terminal: {other:?}"),
        }
        // Every transition appears once: no (from, to) twice in the status history.
        let mut keys: Vec<_> = harness
            .status_audit
            .iter()
            .map(|r| (r.from, r.to))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), harness.status_audit.len());
        // At most one event per recorded transition (events are after their checkpoint).
        assert!(harness.events.len() <= harness.status_audit.len());
    }
    harness
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(4096)
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: cases(),
        failure_persistence: None,
        .. Config::default()
    })]

    #[test]
    fn crash_anywhere_still_converges(sequential 1..48 => EngineUnderCrashes);
}

/// The generated runs reach the paths the properties are about: adoption after a crash, abort
/// in every phase that takes it, crashes inside effect batches, dedup of the audit mirror,
/// rejected late inputs and every terminal outcome.
#[test]
fn generated_runs_cover_the_interesting_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = Reference::sequential_strategy(1..48);
    let (mut adopted, mut crashed, mut dedup, mut rejected) = (0, 0, 0, 0);
    let mut abort_phases = std::collections::HashSet::new();
    let mut terminals = std::collections::HashSet::new();
    for _ in 0..2000 {
        let (model, ops, _) = strategy.new_tree(&mut runner).expect("tree").current();
        let mut harness = Harness::new(model.facts.clone());
        let mut model_now = model;
        for op in &ops {
            model_now = Reference::apply(model_now, op);
            harness.apply(op);
        }
        let harness = finish(harness, &model_now);
        adopted += harness.adopted;
        crashed += harness.crashed_mid_batch;
        dedup += harness.mirror_dedup_hits;
        rejected += harness.rejected;
        abort_phases.extend(harness.aborts_accepted_in.iter().copied());
        terminals.insert(harness.memory.phase.kind());
    }
    eprintln!(
        "2000 runs: {adopted} adoptions, {crashed} crashes inside batches, {dedup} mirror dedups, \
         {rejected} rejections, aborts accepted in {abort_phases:?}, terminals {terminals:?}"
    );
    assert!(adopted > 10, "adoptions: {adopted}");
    assert!(crashed > 100, "crashes inside batches: {crashed}");
    assert!(dedup > 100, "mirror dedups: {dedup}");
    assert!(rejected > 100, "rejections: {rejected}");
    for phase in [
        PhaseKind::Init,
        PhaseKind::ValidateDeps,
        PhaseKind::LaunchJob,
        PhaseKind::Monitor,
        PhaseKind::AwaitResult,
        PhaseKind::Cleanup,
    ] {
        assert!(
            abort_phases.contains(&phase),
            "no abort accepted in {phase}"
        );
    }
    assert_eq!(terminals.len(), 3, "terminals reached: {terminals:?}");
}
