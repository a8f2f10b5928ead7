//! Golden Job manifests: every case under `fixtures/cases/<case>/` renders byte for byte to its
//! `expected-jobs.yaml`. `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expected files;
//! review the diff by hand against the contract before committing it.

use std::path::{Path, PathBuf};

use chaos_runner::cli::{RenderArgs, render};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases")
}

/// `(case name, engine file, experiment files sorted by name)` for every case.
fn cases() -> Vec<(String, PathBuf, Vec<PathBuf>)> {
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(cases_dir()).expect("fixtures/cases is readable") {
        let dir = entry.expect("directory entry").path();
        if !dir.is_dir() {
            continue;
        }
        let mut experiments: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("case directory is readable")
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("experiment") && name.ends_with(".yaml"))
            })
            .collect();
        experiments.sort();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        cases.push((name, dir.join("engine.yaml"), experiments));
    }
    cases.sort();
    cases
}

#[test]
fn every_case_renders_its_golden_jobs() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|value| value == "1");
    let mut failures = Vec::new();
    for (name, engine, experiments) in cases() {
        assert!(
            !experiments.is_empty(),
            "case {name} has no experiment*.yaml"
        );
        let rendered = render(&RenderArgs {
            engine: engine.clone(),
            experiments,
            run_id: "0".into(),
        })
        .unwrap_or_else(|error| panic!("case {name}: {error}"));
        let expected_path = engine.with_file_name("expected-jobs.yaml");
        if update {
            std::fs::write(&expected_path, &rendered).expect("expected file is writable");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|error| panic!("case {name}: {}: {error}", expected_path.display()));
        if rendered != expected {
            failures.push(format!(
                "case {name}: rendered Jobs differ from {}\n--- rendered ---\n{rendered}",
                expected_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_required_cases_exist() {
    let names: Vec<String> = cases().into_iter().map(|(name, ..)| name).collect();
    for required in [
        "pod-delete",
        "engine-overrides",
        "volumes",
        "sidecars",
        "instance-id",
        "status-check-timeouts",
        "minimal",
    ] {
        assert!(
            names.iter().any(|name| name == required),
            "missing case {required}: {names:?}"
        );
    }
}
