//! The built binary: `render` reproduces the golden Jobs, `transitions` prints the table, bad
//! input exits 2 with a message naming the file and field, the run mode validates the env.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_chaos-runner");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The binary with a clean environment (no runner env vars leaking in from the test host).
fn runner() -> Command {
    let mut command = Command::new(BIN);
    command.env_clear().env("RUST_LOG", "info");
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the binary runs");
    (
        status.code().expect("exited, not killed"),
        String::from_utf8(stdout).expect("utf-8 stdout"),
        String::from_utf8(stderr).expect("utf-8 stderr"),
    )
}

fn experiment_files(case: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(case)
        .expect("case directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with("experiment") && name.ends_with(".yaml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn render_prints_the_golden_jobs_for_every_case() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures().join("cases")).expect("fixtures/cases") {
        let case = entry.expect("entry").path();
        let mut command = runner();
        command
            .arg("render")
            .arg("--engine")
            .arg(case.join("engine.yaml"))
            .arg("--experiment")
            .args(experiment_files(&case));
        let (code, stdout, stderr) = run(&mut command);
        assert_eq!(code, 0, "{}: {stderr}", case.display());
        let expected = std::fs::read_to_string(case.join("expected-jobs.yaml")).expect("golden");
        assert_eq!(stdout, expected, "{}", case.display());
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} cases");
}

#[test]
fn render_is_deterministic_and_repeatable_flags_work() {
    let case = fixtures().join("cases/instance-id");
    let render = |split: bool| {
        let mut command = runner();
        command
            .arg("render")
            .arg("--engine")
            .arg(case.join("engine.yaml"));
        for file in experiment_files(&case) {
            if split {
                command.arg("--experiment").arg(file);
            } else {
                command.arg(format!("--experiment={}", file.display()));
            }
        }
        run(&mut command)
    };
    let (first_code, first, _) = render(true);
    let (second_code, second, _) = render(false);
    assert_eq!((first_code, second_code), (0, 0));
    assert_eq!(first, second);
    assert_eq!(
        first.matches("\n---\n").count(),
        1,
        "two Jobs, one separator"
    );
}

#[test]
fn bad_field_exits_2_naming_file_line_and_field() {
    let engine = fixtures().join("invalid/engine-bad-field.yaml");
    let experiment = fixtures().join("cases/pod-delete/experiment.yaml");
    let (code, stdout, stderr) = run(runner()
        .args(["render", "--engine"])
        .arg(&engine)
        .arg("--experiment")
        .arg(&experiment));
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("engine-bad-field.yaml"), "{stderr}");
    assert!(stderr.contains("line 9"), "{stderr}");
    assert!(stderr.contains("terminationGracePeriodSeconds"), "{stderr}");
}

#[test]
fn structural_problem_exits_2_naming_object_and_field() {
    let engine = fixtures().join("invalid/engine-empty-mount-path.yaml");
    let experiment = fixtures().join("cases/pod-delete/experiment.yaml");
    let (code, _, stderr) = run(runner()
        .args(["render", "--engine"])
        .arg(&engine)
        .arg("--experiment")
        .arg(&experiment));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("engine-empty-mount-path.yaml"), "{stderr}");
    assert!(
        stderr.contains(
            "ChaosEngine no-mount: spec.experiments[0].spec.components.configMaps[0].mountPath is empty"
        ),
        "{stderr}"
    );
}

#[test]
fn wrong_kind_missing_file_and_missing_experiment_exit_2() {
    let experiment = fixtures().join("cases/pod-delete/experiment.yaml");
    let wrong = fixtures().join("invalid/engine-wrong-kind.yaml");
    let (code, _, stderr) = run(runner()
        .args(["render", "--engine"])
        .arg(&wrong)
        .arg("--experiment")
        .arg(&experiment));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("engine-wrong-kind.yaml") && stderr.contains("expected ChaosEngine"),
        "{stderr}"
    );

    let (code, _, stderr) = run(runner()
        .args([
            "render",
            "--engine",
            "/nonexistent/engine.yaml",
            "--experiment",
        ])
        .arg(&experiment));
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/engine.yaml"), "{stderr}");

    // The engine lists container-kill too, but only pod-delete is given.
    let engine = fixtures().join("cases/instance-id/engine.yaml");
    let (code, _, stderr) = run(runner()
        .args(["render", "--engine"])
        .arg(&engine)
        .arg("--experiment")
        .arg(&experiment));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("spec.experiments[1]") && stderr.contains("container-kill"),
        "{stderr}"
    );
}

#[test]
fn transitions_prints_both_formats() {
    let (code, markdown, stderr) = run(runner().arg("transitions"));
    assert_eq!(code, 0, "{stderr}");
    let (code, explicit, _) = run(runner().args(["transitions", "--format", "markdown"]));
    assert_eq!(code, 0);
    assert_eq!(markdown, explicit);
    let (code, mermaid, _) = run(runner().args(["transitions", "--format", "mermaid"]));
    assert_eq!(code, 0);
    // The same text the states crate renders from its transition table.
    assert_eq!(markdown, chaos_runner_states::render_markdown());
    assert_eq!(mermaid, chaos_runner_states::render_mermaid());
    assert!(markdown.starts_with("| from |"), "{markdown}");
    assert!(mermaid.starts_with("stateDiagram-v2"), "{mermaid}");
    for phase in ["Init", "ValidateDeps", "LaunchJob", "Monitor", "Cleanup"] {
        assert!(
            markdown.contains(phase) && mermaid.contains(phase),
            "{phase}"
        );
    }
    let (code, _, _) = run(runner().args(["transitions", "--format", "svg"]));
    assert_eq!(code, 2);
}

#[test]
fn run_mode_validates_the_env() {
    let (code, _, stderr) = run(runner().args(["--log-format", "plain"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("CHAOSENGINE"), "{stderr}");

    let (code, _, stderr) = run(runner()
        .args(["-kubeconfig", "/tmp/kubeconfig", "--log-format", "json"])
        .env("CHAOSENGINE", "demo")
        .env("CHAOS_NAMESPACE", "litmus")
        .env("EXPERIMENT_LIST", "pod-delete,,pod-delete"));
    // The env names an engine, so the error is reported to it: that needs a client, and the
    // kubeconfig does not exist — an infrastructure failure (exit 1, the kubelet retries).
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("pod-delete") && stderr.contains("empty entry"),
        "{stderr}"
    );
    assert!(stderr.trim_start().starts_with('{'), "json logs: {stderr}");

    let (code, _, stderr) = run(runner()
        .args(["-kubeconfig", "/tmp/kubeconfig"])
        .env("CHAOSENGINE", "demo")
        .env("CHAOS_NAMESPACE", "litmus")
        .env("EXPERIMENT_LIST", "pod-delete")
        .env("TRACE_PARENT", "not json"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("TRACE_PARENT"), "{stderr}");
    assert!(stderr.contains("/tmp/kubeconfig"), "{stderr}");
}

#[test]
fn help_describes_the_commands() {
    let (code, stdout, _) = run(runner().arg("--help"));
    assert_eq!(code, 0);
    for word in [
        "render",
        "transitions",
        "--kubeconfig",
        "--log-format",
        "CHAOSENGINE",
    ] {
        assert!(stdout.contains(word), "--help lacks {word}: {stdout}");
    }
    let (code, stdout, _) = run(runner().args(["render", "--help"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("00000000-0000-0000-0000-000000000000"),
        "{stdout}"
    );
}
