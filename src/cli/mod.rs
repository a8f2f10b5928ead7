//! The command line: run (no subcommand, how the operator starts the runner), `render`, and
//! `transitions`.

pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use thiserror::Error;

use crate::contract::config::RunnerConfig;
use crate::contract::crd::{ChaosEngine, ChaosExperiment};
use crate::contract::job::{BuildJobError, build_job, job_name};
use crate::contract::merge::{MergeError, RunnerEnv, StructureErrors, check_structure, merge};

pub use crate::run::context::{EXIT_BAD_INPUT, EXIT_RETRY, EXIT_SUSPENDED};
/// uid used by `render` when the engine file has no `metadata.uid`.
pub const PLACEHOLDER_ENGINE_UID: &str = "00000000-0000-0000-0000-000000000000";

/// chaos-runner: runs the experiments of one LitmusChaos ChaosEngine, resumably.
///
/// With no subcommand it runs the engine named by the environment, as the chaos-operator
/// starts it: CHAOSENGINE, CHAOS_NAMESPACE, EXPERIMENT_LIST (required), CHAOS_SVC_ACC,
/// TARGETS, AUXILIARY_APPINFO, OTEL_EXPORTER_OTLP_ENDPOINT, TRACE_PARENT (optional);
/// CLIENT_UUID is accepted and ignored.
#[derive(Debug, Parser)]
#[command(name = "chaos-runner", version, about, long_about)]
pub struct Cli {
    /// Kubeconfig file; in-cluster configuration when unset. The Go runner's single-dash
    /// `-kubeconfig PATH` is accepted too.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Log format on stderr [default: plain on a terminal, json otherwise]. Level filter:
    /// RUST_LOG (default info).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print, offline, the experiment Job(s) a run of this engine would create, as YAML.
    ///
    /// One document per experiment of the engine's spec.experiments, in that order, separated
    /// by `---`. Each experiment must be defined in an --experiment file (files may hold
    /// several documents; experiments the engine does not list are ignored). When the engine
    /// has no metadata.uid, the placeholder 00000000-0000-0000-0000-000000000000 is used; the
    /// namespace defaults to `default`; TARGETS is approximated from spec.appinfo as
    /// `<appkind>:<appns>:[<applabel>]`.
    Render(RenderArgs),
    /// Print the phase engine's transition table.
    Transitions(TransitionsArgs),
    /// Print, offline, the run plan of an engine: stages, start order (with the seed),
    /// iterations and waits, from its `chaos-runner.io/` annotations.
    Plan(PlanArgs),
    /// Print a run's timeline from the cluster: the audit trail of every phase transition, the
    /// Events on the ChaosEngine, the verdicts and the Jobs left. Works after the run too (the
    /// trail is kept in the annotation chaos-runner.io/audit).
    Report(ReportArgs),
}

/// Arguments of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The ChaosEngine's namespace.
    #[arg(long, short = 'n', env = "CHAOS_NAMESPACE")]
    pub namespace: String,
    /// The ChaosEngine's name.
    #[arg(long, env = "CHAOSENGINE")]
    pub engine: String,
}

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// ChaosEngine YAML file.
    #[arg(long, value_name = "FILE")]
    pub engine: PathBuf,
    /// Experiment names in EXPERIMENT_LIST order, comma-separated [default: the names of the
    /// engine's spec.experiments].
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub experiments: Option<Vec<String>>,
    /// Shuffle seed when the engine shuffles without a `chaos-runner.io/seed` annotation
    /// [default: from the clock; the output shows the seed used].
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Arguments of `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// ChaosEngine YAML file.
    #[arg(long, value_name = "FILE")]
    pub engine: PathBuf,
    /// ChaosExperiment YAML file(s); repeat the flag or list several after it.
    #[arg(long = "experiment", value_name = "FILE", required = true, num_args = 1..)]
    pub experiments: Vec<PathBuf>,
    /// Run id that goes into the Job names with the engine uid (the runner picks one per run
    /// and records it in status.chaosRunner.runId; give it here to see that run's names).
    #[arg(long, default_value = "0")]
    pub run_id: String,
}

/// Arguments of `transitions`.
#[derive(Debug, Args)]
pub struct TransitionsArgs {
    #[arg(long, value_enum, default_value_t = TransitionFormat::Markdown)]
    pub format: TransitionFormat,
}

/// Output format of `transitions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TransitionFormat {
    Markdown,
    Mermaid,
}

/// Options of the run that come from the command line rather than the env.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub kubeconfig: Option<PathBuf>,
}

/// Rewrites the Go runner's single-dash `-kubeconfig` into clap's `--kubeconfig`.
pub fn normalize_go_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| match arg.to_str() {
            Some(text) if text == "-kubeconfig" || text.starts_with("-kubeconfig=") => {
                OsString::from(format!("-{text}"))
            }
            _ => arg,
        })
        .collect()
}

/// The binary's entry point: parse, set up logging, dispatch.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(normalize_go_flags(std::env::args_os())) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(EXIT_BAD_INPUT));
        }
    };
    let env: BTreeMap<String, String> = std::env::vars().collect();
    // Only the run exports spans. Dropped last, so the final flush happens on every exit path.
    let telemetry = match cli.command {
        None => crate::cluster::telemetry::Telemetry::from_env(&env),
        Some(_) => Ok(None),
    };
    let _telemetry = init_tracing(cli.log_format, telemetry);
    match cli.command {
        Some(Command::Render(args)) => match render(&args) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(EXIT_BAD_INPUT)
            }
        },
        Some(Command::Transitions(args)) => {
            print!("{}", transitions(args.format));
            ExitCode::SUCCESS
        }
        Some(Command::Report(args)) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(report(&args, cli.kubeconfig.as_deref()))
        }
        Some(Command::Plan(args)) => match plan(&args) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(EXIT_BAD_INPUT)
            }
        },
        None => {
            // One thread: the runner waits on the API server, never on the CPU, and a
            // current-thread runtime keeps the footprint small.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "cannot start the async runtime");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(run_from_env(
                env,
                RunOptions {
                    kubeconfig: cli.kubeconfig,
                },
            ))
        }
    }
}

/// Sets up the tracing subscriber on stderr (stdout carries `render`/`transitions` output),
/// with the OpenTelemetry layer when the exporter is set up. Returns the exporter, which must
/// live until the process ends; a failed set-up is logged and the run goes on without traces.
fn init_tracing(
    format: Option<LogFormat>,
    telemetry: Result<
        Option<crate::cluster::telemetry::Telemetry>,
        crate::cluster::telemetry::TelemetryError,
    >,
) -> Option<crate::cluster::telemetry::Telemetry> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Plain
    } else {
        LogFormat::Json
    });
    let (telemetry, failure) = match telemetry {
        Ok(telemetry) => (telemetry, None),
        Err(error) => (None, Some(error)),
    };
    // Colour only for a terminal: a pod's log, a file or a pipe gets plain text.
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // RUST_LOG filters the log lines only; the OpenTelemetry layer has its own filter.
    let lines = match format {
        LogFormat::Plain => lines.with_filter(filter).boxed(),
        LogFormat::Json => lines.json().with_filter(filter).boxed(),
    };
    let spans = telemetry.as_ref().map(|telemetry| telemetry.layer());
    // try_init: a second initialisation (tests) is not an error worth dying for.
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(spans)
        .try_init();
    if let Some(error) = failure {
        tracing::warn!(%error, "OpenTelemetry export is off");
    }
    if let Some(telemetry) = &telemetry {
        let target = telemetry.target();
        tracing::info!(endpoint = %target.url, wire = ?target.wire, "exporting spans over OTLP");
    }
    telemetry
}

/// Env var that sets a hard Monitor deadline (seconds); none by default.
pub const ENV_MONITOR_TIMEOUT: &str = "CHAOS_RUNNER_MONITOR_TIMEOUT";

/// Runs the engine named by the env until every experiment reached an outcome.
///
/// Exit 0 when every experiment ended (failed experiments are verdicts, not failures) or when
/// there is nothing a restart could change (the engine is gone, the plan or env is invalid and
/// was reported); 1 for infrastructure failures, so the kubelet's restart resumes the run; 2
/// when the env does not even say which engine to report to.
pub async fn run_from_env(env: BTreeMap<String, String>, options: RunOptions) -> ExitCode {
    let config = RunnerConfig::from_env(&env);
    match &config {
        Err(
            error @ (crate::contract::config::ConfigError::Missing {
                variable:
                    crate::contract::config::ENV_CHAOSENGINE
                    | crate::contract::config::ENV_CHAOS_NAMESPACE,
            }
            | crate::contract::config::ConfigError::InvalidName {
                variable:
                    crate::contract::config::ENV_CHAOSENGINE
                    | crate::contract::config::ENV_CHAOS_NAMESPACE,
                ..
            }),
        ) => {
            tracing::error!(%error, "invalid runner environment: no engine to report to");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        Err(error) => tracing::error!(%error, "invalid runner environment"),
        Ok(config) => {
            if let Some(Err(error)) = &config.trace_parent {
                tracing::warn!(%error, "ignoring TRACE_PARENT");
            }
        }
    }
    let client = match client(options.kubeconfig.as_deref()).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build a Kubernetes client");
            return ExitCode::from(EXIT_RETRY);
        }
    };
    let config = match config {
        Ok(config) => config,
        Err(error) => return crate::run::driver::report_bad_env(&client, &env, &error).await,
    };
    let monitor_timeout = match env.get(ENV_MONITOR_TIMEOUT).filter(|v| !v.is_empty()) {
        None => None,
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(seconds) if seconds > 0 => Some(std::time::Duration::from_secs(seconds)),
            _ => {
                tracing::warn!(value = %raw, "ignoring {ENV_MONITOR_TIMEOUT}: not a positive number of seconds");
                None
            }
        },
    };
    let shutdown = crate::run::driver::shutdown_signal();
    let options = crate::run::context::RunOptions {
        monitor_timeout,
        process: None,
    };
    // The run's span joins the operator's trace (TRACE_PARENT); the attempts are its children.
    let span = crate::cluster::telemetry::run_span(
        &config.engine_name,
        &config.namespace,
        config.trace_parent.as_ref(),
    );
    let run = tracing::Instrument::instrument(
        crate::run::driver::run(client, config, options, shutdown),
        span,
    );
    match run.await {
        Ok(end @ crate::run::context::RunEnd::Suspended) => {
            end.log();
            ExitCode::from(EXIT_SUSPENDED)
        }
        Ok(end) => {
            end.log();
            ExitCode::SUCCESS
        }
        Err(
            error @ crate::run::context::RunError::Write(
                crate::cluster::engine_writer::WriteError::Replaced { .. },
            ),
        ) => {
            // Not Completed: the runner that replaced this one finishes the run.
            tracing::warn!(%error, "stopping: this runner has been replaced; nothing more is written");
            ExitCode::from(EXIT_SUSPENDED)
        }
        Err(error) => {
            tracing::error!(%error, "the run stopped on an infrastructure failure; a restart resumes it");
            ExitCode::from(EXIT_RETRY)
        }
    }
}

async fn report(args: &ReportArgs, kubeconfig: Option<&Path>) -> ExitCode {
    let client = match client(kubeconfig).await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: cannot build a Kubernetes client: {error}");
            return ExitCode::from(EXIT_RETRY);
        }
    };
    match crate::cli::report::fetch(&client, &args.namespace, &args.engine).await {
        Ok(Some(view)) => {
            print!("{}", crate::cli::report::render(&view));
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!(
                "error: ChaosEngine {}/{} not found",
                args.namespace, args.engine
            );
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_RETRY)
        }
    }
}

/// A client for `kubeconfig`, or the usual inference (KUBECONFIG, ~/.kube/config, in-cluster).
async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    crate::cluster::connect::client(config).map_err(|e| e.to_string())
}

/// The transition table in the requested format, from the same data the engine runs on.
pub fn transitions(format: TransitionFormat) -> String {
    match format {
        TransitionFormat::Markdown => chaos_runner_states::render_markdown(),
        TransitionFormat::Mermaid => chaos_runner_states::render_mermaid(),
    }
}

/// Why `render` could not produce the Jobs. Every variant names the file.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `message` is the YAML parser's report (line, column, snippet) pointing at the file.
    #[error("{}: {message}", file.display())]
    Parse { file: PathBuf, message: String },
    #[error("{}: document {document}: kind is {found:?}, expected {expected}", file.display())]
    WrongKind {
        file: PathBuf,
        document: usize,
        found: String,
        expected: &'static str,
    },
    #[error("{}: expected exactly one ChaosEngine document, found {found}", file.display())]
    EngineDocuments { file: PathBuf, found: usize },
    #[error("{}: document {document}: metadata.name is empty", file.display())]
    Unnamed { file: PathBuf, document: usize },
    /// The run skips every experiment of such an engine (Warning `SideCarPatchError`).
    #[error("{}: ChaosEngine {engine}: the {} annotation enables sidecars but spec.components.sidecar defines none", file.display(), crate::contract::crd::SIDECAR_ANNOTATION)]
    NoSidecar { file: PathBuf, engine: String },
    #[error("{}: ChaosEngine {engine}: spec.experiments[{index}].name is {problem}", file.display())]
    EngineEntry {
        file: PathBuf,
        engine: String,
        index: usize,
        problem: &'static str,
    },
    #[error("ChaosExperiment {name} is defined twice: in {} and in {}", first.display(), second.display())]
    DuplicateExperiment {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}: ChaosEngine {engine}: spec.experiments[{index}] names ChaosExperiment {name}, which no --experiment file defines", file.display())]
    MissingExperiment {
        file: PathBuf,
        engine: String,
        index: usize,
        name: String,
    },
    #[error("{}: {source}", file.display())]
    Merge {
        file: PathBuf,
        #[source]
        source: MergeError,
    },
    #[error("{}: {source}", files)]
    Structure {
        files: String,
        #[source]
        source: StructureErrors,
    },
    #[error("{}: {source}", file.display())]
    Build {
        file: PathBuf,
        #[source]
        source: BuildJobError,
    },
    #[error("{}: {source}", file.display())]
    Plan {
        file: PathBuf,
        #[source]
        source: crate::contract::plan::PlanError,
    },
    #[error("cannot write the Job as YAML: {0}")]
    Serialize(#[from] serde_saphyr::SerializeError),
}

fn read_documents<T: serde::de::DeserializeOwned>(file: &Path) -> Result<Vec<T>, RenderError> {
    let text = std::fs::read_to_string(file).map_err(|source| RenderError::Read {
        file: file.to_owned(),
        source,
    })?;
    serde_saphyr::from_multiple(&text).map_err(|source| {
        let report = source.to_string();
        let report = report.strip_prefix("error: ").unwrap_or(&report);
        RenderError::Parse {
            file: file.to_owned(),
            message: report.replace("<input>", &file.display().to_string()),
        }
    })
}

fn check_kind(
    file: &Path,
    document: usize,
    kind: &str,
    expected: &'static str,
) -> Result<(), RenderError> {
    if kind == expected {
        Ok(())
    } else {
        Err(RenderError::WrongKind {
            file: file.to_owned(),
            document,
            found: kind.to_owned(),
            expected,
        })
    }
}

/// Renders the Jobs of `render` as multi-document YAML.
// Long on purpose: one pass over the files in the order the errors are reported (file, then
// document, then field); split, the error paths would be spread over several functions.
pub fn render(args: &RenderArgs) -> Result<String, RenderError> {
    let mut engines: Vec<ChaosEngine> = read_documents(&args.engine)?;
    if engines.len() != 1 {
        return Err(RenderError::EngineDocuments {
            file: args.engine.clone(),
            found: engines.len(),
        });
    }
    let mut engine = engines.remove(0);
    check_kind(&args.engine, 1, &engine.kind, "ChaosEngine")?;
    if engine.name().is_empty() {
        return Err(RenderError::Unnamed {
            file: args.engine.clone(),
            document: 1,
        });
    }
    if engine
        .metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        engine.metadata.uid = Some(PLACEHOLDER_ENGINE_UID.to_owned());
    }
    if engine.sidecars_enabled_without_any() {
        return Err(RenderError::NoSidecar {
            file: args.engine.clone(),
            engine: engine.name().to_owned(),
        });
    }

    let mut experiments: BTreeMap<String, (ChaosExperiment, PathBuf)> = BTreeMap::new();
    for file in &args.experiments {
        let documents: Vec<ChaosExperiment> = read_documents(file)?;
        for (position, experiment) in documents.into_iter().enumerate() {
            check_kind(file, position + 1, &experiment.kind, "ChaosExperiment")?;
            let name = experiment.name().to_owned();
            if name.is_empty() {
                return Err(RenderError::Unnamed {
                    file: file.clone(),
                    document: position + 1,
                });
            }
            if let Some((_, first)) = experiments.get(&name) {
                return Err(RenderError::DuplicateExperiment {
                    name,
                    first: first.clone(),
                    second: file.clone(),
                });
            }
            experiments.insert(name, (experiment, file.clone()));
        }
    }

    let runner = RunnerEnv::offline(&engine);
    let mut seen = BTreeSet::new();
    let mut documents = Vec::new();
    let mut runs = BTreeMap::new();
    for (index, entry) in engine.spec.experiments.iter().enumerate() {
        let entry_error = |problem| RenderError::EngineEntry {
            file: args.engine.clone(),
            engine: engine.name().to_owned(),
            index,
            problem,
        };
        if entry.name.is_empty() {
            return Err(entry_error("empty"));
        }
        if !seen.insert(entry.name.as_str()) {
            return Err(entry_error("listed twice"));
        }
        let (experiment, experiment_file) =
            experiments
                .get(&entry.name)
                .ok_or_else(|| RenderError::MissingExperiment {
                    file: args.engine.clone(),
                    engine: engine.name().to_owned(),
                    index,
                    name: entry.name.clone(),
                })?;
        let run = merge(&engine, experiment, &runner).map_err(|source| RenderError::Merge {
            file: args.engine.clone(),
            source,
        })?;
        check_structure(&run).map_err(|source| RenderError::Structure {
            files: format!("{} + {}", args.engine.display(), experiment_file.display()),
            source,
        })?;
        runs.insert(entry.name.clone(), run);
    }

    // One Job per attempt of the plan (iterations included), in the plan's start order, named
    // exactly as the runner names them: engine uid + run id + experiment + instance + iteration.
    let names: Vec<String> = engine
        .spec
        .experiments
        .iter()
        .map(|e| e.name.clone())
        .collect();
    let annotations = engine.metadata.annotations.clone().unwrap_or_default();
    let plan = crate::contract::plan::resolve(&names, &annotations, 0).map_err(|source| {
        RenderError::Plan {
            file: args.engine.clone(),
            source,
        }
    })?;
    let scope = format!(
        "{}/{}",
        engine.metadata.uid.as_deref().unwrap_or_default(),
        args.run_id
    );
    for item in &plan.items {
        let Some(run) = runs.get(&item.experiment) else {
            continue;
        };
        let name = job_name(
            &scope,
            &run.experiment_name,
            run.instance_id(),
            item.iteration,
        );
        let job = build_job(run, &name, &engine).map_err(|source| RenderError::Build {
            file: args.engine.clone(),
            source,
        })?;
        documents.push(format!(
            "# {} iteration {} of {}\n{}",
            item.experiment,
            item.iteration,
            item.iterations,
            serde_saphyr::to_string(&job)?
        ));
    }
    Ok(documents.join("---\n"))
}

/// Why `plan` could not print a plan. Every variant names the file.
#[derive(Debug, Error)]
pub enum PlanCommandError {
    #[error(transparent)]
    Engine(#[from] RenderError),
    #[error("{}: {source}", file.display())]
    Plan {
        file: PathBuf,
        #[source]
        source: crate::contract::plan::PlanError,
    },
}

/// Resolves and renders the plan of `plan`.
pub fn plan(args: &PlanArgs) -> Result<String, PlanCommandError> {
    let mut engines: Vec<ChaosEngine> = read_documents(&args.engine)?;
    if engines.len() != 1 {
        return Err(RenderError::EngineDocuments {
            file: args.engine.clone(),
            found: engines.len(),
        }
        .into());
    }
    let engine = engines.remove(0);
    check_kind(&args.engine, 1, &engine.kind, "ChaosEngine")?;
    let experiments: Vec<String> = match &args.experiments {
        Some(names) => names
            .iter()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect(),
        None => engine
            .spec
            .experiments
            .iter()
            .map(|entry| entry.name.clone())
            .collect(),
    };
    let annotations = engine.metadata.annotations.clone().unwrap_or_default();
    // Only used when the engine shuffles without a seed; the rendered plan shows it.
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64)
    });
    let plan =
        crate::contract::plan::resolve(&experiments, &annotations, seed).map_err(|source| {
            PlanCommandError::Plan {
                file: args.engine.clone(),
                source,
            }
        })?;
    let mut text = crate::contract::plan::render_plan(&plan);
    text.push_str(&monitor_deadline_line(&annotations));
    Ok(text)
}

/// What `chaos-runner.io/monitor-timeout` does to the run, as `plan` shows it: nothing when the
/// annotation is absent; else the deadline, or why the run ignores the value (it reads whole
/// seconds only, and has no other way to say so than its log).
fn monitor_deadline_line(annotations: &BTreeMap<String, String>) -> String {
    let annotation = crate::contract::plan::MONITOR_TIMEOUT_ANNOTATION;
    match annotations.get(annotation) {
        None => String::new(),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(seconds) if seconds > 0 => {
                format!("monitor deadline: {seconds} s per attempt ({annotation})\n")
            }
            _ => format!(
                "monitor deadline: none: {annotation} {raw:?} is ignored (not a positive whole number of seconds)\n"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_kubeconfig_flag_is_accepted() {
        let args = normalize_go_flags(["chaos-runner", "-kubeconfig", "/k"].map(OsString::from));
        let cli = Cli::try_parse_from(args).unwrap();
        assert_eq!(cli.kubeconfig, Some(PathBuf::from("/k")));
        let args = normalize_go_flags(["chaos-runner", "-kubeconfig=/j"].map(OsString::from));
        assert_eq!(
            Cli::try_parse_from(args).unwrap().kubeconfig,
            Some(PathBuf::from("/j"))
        );
        assert!(
            Cli::try_parse_from(["chaos-runner"])
                .unwrap()
                .command
                .is_none()
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn plan_shows_the_monitor_deadline_or_why_it_is_ignored() {
        let with = |value: &str| {
            BTreeMap::from([(
                crate::contract::plan::MONITOR_TIMEOUT_ANNOTATION.to_owned(),
                value.to_owned(),
            )])
        };
        assert_eq!(monitor_deadline_line(&BTreeMap::new()), "");
        assert_eq!(
            monitor_deadline_line(&with(" 600 ")),
            "monitor deadline: 600 s per attempt (chaos-runner.io/monitor-timeout)\n"
        );
        for ignored in ["10m", "0", "-5", ""] {
            let line = monitor_deadline_line(&with(ignored));
            assert!(line.contains("is ignored"), "{ignored}: {line}");
        }
    }

    #[test]
    fn an_env_naming_no_valid_engine_exits_2_before_any_request() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (engine, namespace) in [("bad engine", "litmus"), ("bad", "Litmus_NS")] {
            let env = BTreeMap::from([
                ("CHAOSENGINE".to_owned(), engine.to_owned()),
                ("CHAOS_NAMESPACE".to_owned(), namespace.to_owned()),
                ("EXPERIMENT_LIST".to_owned(), "pod-delete".to_owned()),
            ]);
            let code = runtime.block_on(run_from_env(env, RunOptions::default()));
            assert_eq!(
                code,
                ExitCode::from(EXIT_BAD_INPUT),
                "{engine} / {namespace}"
            );
        }
    }

    #[test]
    fn run_without_env_reports_bad_input() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let code = runtime.block_on(run_from_env(BTreeMap::new(), RunOptions::default()));
        assert_eq!(code, ExitCode::from(EXIT_BAD_INPUT));
    }
}
