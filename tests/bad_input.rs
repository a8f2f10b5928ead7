//! Bad input, catalogued (issue 10, item 5), offline: every case under `fixtures/bad/<case>/`
//! is run through the parser, merge or planner it targets, and must end with the outcome its
//! `expect.yaml` names — a refusal whose message names the file and field, or an acceptance
//! that shows what was made of the input — and never with a panic.
//!
//! A case is a folder: `expect.yaml` plus its inputs (`engine.yaml`, `experiment*.yaml`,
//! `result.yaml`, `env`). Adding a case is adding a folder; nothing here lists them.
//!
//! `expect.yaml`:
//!
//! ```yaml
//! about: what is wrong with the input
//! check: render | plan | env | result   # what runs it (below)
//! args: [--experiments, "a,b"]          # extra command-line arguments (plan)
//! outcome: rejected | accepted
//! contains: [engine.yaml, spec.x]       # every string must appear in the message / output
//! absent: [tolerations]                 # no string may appear there
//! entry: [Completed, Error]             # result: the status entry the run ends with
//! plane: {...}                          # read by tests/bad_input_e2e.rs only
//! ```
//!
//! - `render`: `chaos-runner render --engine engine.yaml --experiment <files>` (the case's
//!   `experiment*.yaml`, else `fixtures/e2e/experiments.yaml`). Rejected = exit 2 with the
//!   message on stderr, which must name a file of the case; accepted = exit 0, the Jobs on stdout.
//! - `plan`: `chaos-runner plan --engine engine.yaml --seed 1 <args>`, likewise.
//! - `env`: `RunnerConfig::from_env` on the `KEY=VALUE` lines of `env`. Accepted: the message is
//!   `experiments: …`, `repeated: …` and the TRACE_PARENT warning, as the runner would log them.
//! - `result`: `result.yaml` decoded as the runner decodes the API's answer (JSON into
//!   `ChaosResult`; no file = the result never appeared), fed to the phase engine in AwaitResult
//!   after a succeeded pod exactly as the driver does, then through Cleanup to the entry. The
//!   message is `<Event reason>: <Event message>`.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

use chaos_runner::contract::config::RunnerConfig;
use chaos_runner::contract::crd::ChaosResult;
use chaos_runner_states as states;
use serde::Deserialize;

const BIN: &str = env!("CARGO_BIN_EXE_chaos-runner");

/// The least number of cases the catalogue must hold (the issue asks for 50).
const MIN_CASES: usize = 50;

fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    about: String,
    check: Check,
    #[serde(default)]
    args: Vec<String>,
    outcome: Outcome,
    #[serde(default)]
    contains: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    entry: Option<[String; 2]>,
    /// The plane's expectations: `tests/bad_input_e2e.rs` reads them.
    #[serde(default)]
    #[allow(dead_code)]
    plane: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Check {
    Render,
    Plan,
    Env,
    Result,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Rejected,
    Accepted,
}

/// What running a case produced.
struct Observed {
    outcome: Outcome,
    /// The refusal's message, or the acceptance's output.
    text: String,
    /// The final status entry (`result` only).
    entry: Option<[String; 2]>,
}

/// The case folders, sorted (folders starting with `_` or `.` are not cases).
fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(bad_dir())
        .expect("fixtures/bad")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            path.is_dir() && !name.starts_with(['_', '.'])
        })
        .collect();
    cases.sort();
    cases
}

fn read_expect(case: &Path) -> Result<Expect, String> {
    let path = case.join("expect.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[test]
fn every_bad_input_case_ends_as_its_expect_yaml_says() {
    let cases = cases();
    let mut failures = Vec::new();
    let mut by_check: BTreeMap<(Check, &'static str), usize> = BTreeMap::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let result = read_expect(case).and_then(|expect| {
            let outcome = match expect.outcome {
                Outcome::Rejected => "rejected",
                Outcome::Accepted => "accepted",
            };
            *by_check.entry((expect.check, outcome)).or_default() += 1;
            check_case(case, &expect)
        });
        if let Err(problem) = result {
            failures.push(format!("{name}: {problem}"));
        }
    }
    eprintln!("{} cases: {by_check:?}", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    assert!(
        cases.len() >= MIN_CASES,
        "only {} cases in fixtures/bad",
        cases.len()
    );
}

fn check_case(case: &Path, expect: &Expect) -> Result<(), String> {
    if expect.about.trim().is_empty() {
        return Err("expect.yaml: `about` is empty".into());
    }
    let observed = match expect.check {
        Check::Render => run_render(case, &expect.args)?,
        Check::Plan => run_plan(case, &expect.args)?,
        Check::Env => guarded(|| run_env(case))?,
        Check::Result => guarded(|| run_result(case))?,
    };
    if observed.outcome != expect.outcome {
        return Err(format!(
            "expected {:?}, got {:?}:\n{}",
            expect.outcome,
            observed.outcome,
            excerpt(&observed.text)
        ));
    }
    for part in &expect.contains {
        if !observed.text.contains(part.as_str()) {
            return Err(format!(
                "{:?} output lacks {part:?}:\n{}",
                observed.outcome,
                excerpt(&observed.text)
            ));
        }
    }
    for part in &expect.absent {
        if observed.text.contains(part.as_str()) {
            return Err(format!(
                "{:?} output has {part:?}, which must not appear:\n{}",
                observed.outcome,
                excerpt(&observed.text)
            ));
        }
    }
    if expect.entry.is_some() && observed.entry != expect.entry {
        return Err(format!(
            "entry {:?}, expected {:?}",
            observed.entry, expect.entry
        ));
    }
    // A refusal by the command line must say which file it is about.
    if observed.outcome == Outcome::Rejected && matches!(expect.check, Check::Render | Check::Plan)
    {
        let names_a_file = case_files(case)
            .iter()
            .any(|file| observed.text.contains(&file.display().to_string()));
        if !names_a_file {
            return Err(format!(
                "the refusal names no file of the case:\n{}",
                excerpt(&observed.text)
            ));
        }
    }
    Ok(())
}

/// A long output cut for a failure message (huge fields are part of the catalogue).
fn excerpt(text: &str) -> String {
    const LIMIT: usize = 3000;
    if text.len() <= LIMIT {
        return text.to_owned();
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// Runs a library check, turning a panic into a failure of the case.
fn guarded(check: impl FnOnce() -> Result<Observed, String>) -> Result<Observed, String> {
    catch_unwind(AssertUnwindSafe(check)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Err(format!("panicked: {message}"))
    })
}

fn case_files(case: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(case)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|file| file.file_name().is_some_and(|name| name != "expect.yaml"));
    files.sort();
    files
}

fn experiment_files(case: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = case_files(case)
        .into_iter()
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with("experiment") && name.ends_with(".yaml")
        })
        .collect();
    if files.is_empty() {
        files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/e2e/experiments.yaml"));
    }
    files
}

/// Runs the binary with a clean environment; exit 0 = accepted, 2 = rejected, anything else
/// (a panic, a signal) fails the case.
fn run_binary(command: &mut Command) -> Result<Observed, String> {
    let output = command
        .env_clear()
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("cannot start {BIN}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if stderr.contains("panicked") {
        return Err(format!("the binary panicked:\n{}", excerpt(&stderr)));
    }
    match output.status.code() {
        Some(0) => Ok(Observed {
            outcome: Outcome::Accepted,
            text: format!("{stdout}{stderr}"),
            entry: None,
        }),
        Some(2) => {
            if !stdout.is_empty() {
                return Err(format!(
                    "exit 2 but output on stdout:\n{}",
                    excerpt(&stdout)
                ));
            }
            Ok(Observed {
                outcome: Outcome::Rejected,
                text: stderr,
                entry: None,
            })
        }
        other => Err(format!(
            "exit {other:?} (expected 0 or 2):\n{}",
            excerpt(&stderr)
        )),
    }
}

fn run_render(case: &Path, args: &[String]) -> Result<Observed, String> {
    let mut command = Command::new(BIN);
    command
        .arg("render")
        .arg("--engine")
        .arg(case.join("engine.yaml"))
        .arg("--experiment")
        .args(experiment_files(case))
        .args(args);
    run_binary(&mut command)
}

fn run_plan(case: &Path, args: &[String]) -> Result<Observed, String> {
    let mut command = Command::new(BIN);
    command
        .arg("plan")
        .arg("--engine")
        .arg(case.join("engine.yaml"))
        .args(["--seed", "1"])
        .args(args);
    run_binary(&mut command)
}

/// `KEY=VALUE` lines; blank lines and `#` comments skipped; the value is everything after the
/// first `=`, spaces included.
fn read_env(case: &Path) -> Result<BTreeMap<String, String>, String> {
    let path = case.join("env");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut env = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("{}: line {line:?} is not KEY=VALUE", path.display()))?;
        env.insert(key.to_owned(), value.to_owned());
    }
    Ok(env)
}

fn run_env(case: &Path) -> Result<Observed, String> {
    let env = read_env(case)?;
    Ok(match RunnerConfig::from_env(&env) {
        Err(error) => Observed {
            outcome: Outcome::Rejected,
            text: error.to_string(),
            entry: None,
        },
        Ok(config) => {
            let mut lines = vec![format!("experiments: {}", config.experiments.join(", "))];
            if !config.repeated_experiments.is_empty() {
                lines.push(format!(
                    "repeated: {}",
                    config.repeated_experiments.join(", ")
                ));
            }
            if let Some(Err(error)) = &config.trace_parent {
                lines.push(error.to_string());
            }
            Observed {
                outcome: Outcome::Accepted,
                text: lines.join("\n"),
                entry: None,
            }
        }
    })
}

/// The result as the runner reads it, through the phase engine, to the final entry.
fn run_result(case: &Path) -> Result<Observed, String> {
    let path = case.join("result.yaml");
    let result: Option<ChaosResult> = if path.exists() {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // The API server answers JSON: decode from JSON, as `Api<ChaosResult>::get` does.
        let json: serde_json::Value =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        match serde_json::from_value::<ChaosResult>(json) {
            Ok(result) => Some(result),
            Err(error) => {
                return Ok(Observed {
                    outcome: Outcome::Rejected,
                    text: format!("{}: {error}", path.display()),
                    entry: None,
                });
            }
        }
    } else {
        None
    };
    // The driver's mapping of the result to the engine's input (`attempt.rs`, `read_result`).
    let input = match &result {
        None => states::Input::ResultMissing,
        Some(result) => {
            let status = result.status.as_ref().map(|s| &s.experiment_status);
            states::Input::ResultSeen {
                verdict: result
                    .verdict()
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default(),
                phase: status
                    .and_then(|s| s.phase.as_ref())
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
                fail_reason: status
                    .and_then(|s| s.error_output.as_ref())
                    .map(|e| e.reason.clone())
                    .filter(|r| !r.is_empty()),
            }
        }
    };
    let context = states::StepContext {
        cleanup: states::CleanupPolicy::Delete,
        now: "2026-01-01T00:00:00Z".into(),
    };
    let mut checkpoint = states::Checkpoint::new("e2e-pass", None, 1, "2026-01-01T00:00:00Z");
    checkpoint.phase = states::Phase::AwaitResult {
        job: "e2e-pass-abcdef".into(),
        pod: Some("e2e-pass-abcdef-xyz12".into()),
        end: states::PodEnd::Succeeded,
    };
    let read = states::step(&checkpoint, &input, &context).map_err(|e| e.to_string())?;
    let events: Vec<String> = read
        .effects
        .iter()
        .filter_map(|effect| match effect {
            states::Effect::Emit(event) => Some(format!("{}: {}", event.reason, event.message)),
            _ => None,
        })
        .collect();
    let deleted = states::step(&read.checkpoint, &states::Input::JobDeleted, &context)
        .map_err(|e| e.to_string())?;
    let entry = states::entry_for(&deleted.checkpoint)
        .ok_or_else(|| format!("no entry in {:?}", deleted.checkpoint.phase))?;
    Ok(Observed {
        outcome: Outcome::Accepted,
        text: events.join("\n"),
        entry: Some([
            entry.status.as_str().to_owned(),
            entry.verdict.as_str().to_owned(),
        ]),
    })
}
