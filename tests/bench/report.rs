//! The benchmark's markdown report: every figure with its target and how it was measured.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::Mode;
use crate::audit;
use crate::measure::RunMeasurement;

/// The Go runner's figures on this machine, same run (issue 5).
const GO_REQUESTS: usize = 63;

/// The repeated standard runs of one mode.
pub struct StandardFigures {
    pub mode: Mode,
    /// Each run, or why it failed.
    pub runs: Vec<Result<RunMeasurement, String>>,
}

impl StandardFigures {
    fn ok_runs(&self) -> Vec<&RunMeasurement> {
        self.runs.iter().filter_map(|r| r.as_ref().ok()).collect()
    }
}

/// The scale run.
pub struct ScaleFigures {
    pub experiments: usize,
    pub run: Result<RunMeasurement, String>,
}

/// Everything the bench measured.
pub struct Report {
    pub binary: PathBuf,
    pub binary_size: u64,
    pub repeats: usize,
    /// Watch first, then poll.
    pub standard: Vec<StandardFigures>,
    pub scale: ScaleFigures,
}

/// A figure compared with its target.
fn judged(text: String, meets: Option<bool>) -> String {
    match meets {
        Some(true) => format!("{text} ✅"),
        Some(false) => format!("{text} ❌"),
        None => text,
    }
}

/// `median (min–max)` of the values, or the one value when they agree; `—` when none.
fn spread(values: &[f64], format: impl Fn(f64) -> String) -> String {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return "—".to_owned();
    }
    sorted.sort_by(f64::total_cmp);
    let (low, high) = (format(sorted[0]), format(sorted[sorted.len() - 1]));
    if low == high {
        low
    } else {
        format!("{} ({low}–{high})", format(median(&sorted)))
    }
}

/// The median of sorted values.
fn median(sorted: &[f64]) -> f64 {
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::max)
}

fn ms(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{:.2} s", value / 1000.0)
    } else {
        format!("{value:.0} ms")
    }
}

fn count(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

fn seconds(value: f64) -> String {
    format!("{value:.1} s")
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "# chaos-runner benchmark\n")?;
        writeln!(
            out,
            "Runner binary `{}` ({}, release profile). Local control plane (kube-apiserver \
             v1.34.4 + etcd + kube-controller-manager on 127.0.0.1), the pod simulator playing \
             the experiment pods, {} CPU cores shared by everything. Reproduce: `bash \
             tests/bench.sh`.\n",
            self.binary.display(),
            format_bytes(self.binary_size),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        )?;
        self.write_standard(out)?;
        self.write_scale(out)?;
        self.write_failures(out)
    }

    fn write_standard(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "## Standard run: two 5-second experiments\n\n\
             deploy/'s engine and experiments: `pod-delete` (simulated verdict Pass), then \
             `container-kill` (Fail), `PODSIM_SECONDS=5`, `jobCleanUpPolicy: delete`. \
             Watch mode: the runner runs as deploy/'s ServiceAccount `chaos-runner` (its Role \
             grants `watch`). Poll mode: as `litmus-user-sa` with \
             fixtures/rbac/litmus-user-role.yaml, the Role Litmus users already have (no \
             watch, no secrets). Runs per mode: {}, each in a fresh namespace; a figure shows \
             `median (min–max)` over the runs, or one value when all runs agree.\n",
            self.repeats
        )?;
        writeln!(
            out,
            "| figure | watch | poll | target (issue 5) | Go runner | how it is measured |"
        )?;
        writeln!(out, "|---|---|---|---|---|---|")?;
        let cells = |f: &dyn Fn(&StandardFigures) -> String| -> String {
            self.standard.iter().map(f).collect::<Vec<_>>().join(" | ")
        };
        writeln!(
            out,
            "| mode the runner logged | {} | — | — | the runner's own log line |",
            cells(&|m| {
                let lines: BTreeSet<String> = m
                    .ok_runs()
                    .iter()
                    .map(|r| r.mode_logged.clone().unwrap_or_else(|| "not logged".into()))
                    .collect();
                lines.into_iter().collect::<Vec<_>>().join("; ")
            })
        )?;
        writeln!(
            out,
            "| runs finished, verdicts right, exit 0 | {} | all | — | final `status.experiments[].verdict` vs the simulated behaviour; the process exit status |",
            cells(&|m| {
                let ok = m.ok_runs();
                let right = ok
                    .iter()
                    .filter(|r| r.verdicts_right() == r.verdicts.len() && r.exit_ok)
                    .count();
                judged(
                    format!("{right}/{} runs", m.runs.len()),
                    Some(right == m.runs.len()),
                )
            })
        )?;
        writeln!(
            out,
            "| API requests, whole run | {} | watch ≤ 40; poll < {GO_REQUESTS} | {GO_REQUESTS} | apiserver audit log, user `system:serviceaccount:<ns>:<sa>`, from the spawn on; each `auditID` once (stages ResponseComplete, and ResponseStarted for watches) |",
            cells(&|m| {
                let totals: Vec<f64> = m
                    .ok_runs()
                    .iter()
                    .map(|r| r.requests.len() as f64)
                    .collect();
                let limit = match m.mode {
                    Mode::Watch => 40.0,
                    Mode::Poll => GO_REQUESTS as f64 - 1.0,
                };
                judged(
                    spread(&totals, count),
                    max(&totals).map(|worst| worst <= limit),
                )
            })
        )?;
        writeln!(
            out,
            "| API requests per experiment | {} | watch ≤ 20 | 31.5 | the line above ÷ 2 |",
            cells(&|m| {
                let per: Vec<f64> = m
                    .ok_runs()
                    .iter()
                    .map(|r| r.requests.len() as f64 / r.verdicts.len().max(1) as f64)
                    .collect();
                let meets = match m.mode {
                    Mode::Watch => max(&per).map(|worst| worst <= 20.0),
                    Mode::Poll => None,
                };
                judged(spread(&per, count), meets)
            })
        )?;
        writeln!(
            out,
            "| requests per second while monitoring | {} | — | ≈ 0.65 | requests received (audit `requestReceivedTimestamp`) while an experiment pod was Running (from podsim's Running write to its terminal write), ÷ that time |",
            cells(&|m| {
                let rates: Vec<f64> = m
                    .ok_runs()
                    .iter()
                    .filter_map(|r| r.monitoring)
                    .map(|(n, s)| n as f64 / s.max(f64::EPSILON))
                    .collect();
                spread(&rates, |v| format!("{v:.2}/s"))
            })
        )?;
        writeln!(
            out,
            "| verdict in `status.experiments` after the pod completed | {} | watch ≤ 100 ms; poll ≤ 1 s | 5–10 s (median 8 s) | an admin watch on the engine timestamps, on arrival, the first copy where the experiment's entry has a final verdict (Pass/Fail/Error/Stopped); minus podsim's instant of the pod's terminal status write; same process, monotonic clock. All experiments of all runs pooled: median, max (samples) |",
            cells(&|m| {
                let mut samples: Vec<f64> = m
                    .ok_runs()
                    .iter()
                    .flat_map(|r| r.verdict_latency.iter().map(|(_, v)| *v))
                    .collect();
                if samples.is_empty() {
                    return "—".to_owned();
                }
                samples.sort_by(f64::total_cmp);
                let worst = samples[samples.len() - 1];
                let limit = match m.mode {
                    Mode::Watch => 100.0,
                    Mode::Poll => 1000.0,
                };
                judged(
                    format!(
                        "median {}, max {} ({} samples)",
                        ms(median(&samples)),
                        ms(worst),
                        samples.len()
                    ),
                    Some(worst <= limit),
                )
            })
        )?;
        writeln!(
            out,
            "| the runner's requests between a pod's completion and its verdict | {} | — | — | audit log: requests received after podsim's terminal pod write and before the verdict's copy arrived; first experiment of the first run (the same in every run unless noted) |",
            cells(&|m| {
                let paths: BTreeSet<String> = m
                    .ok_runs()
                    .iter()
                    .flat_map(|r| r.verdict_paths.iter())
                    .map(|(_, path)| path.join(" → "))
                    .collect();
                let first = m
                    .ok_runs()
                    .first()
                    .and_then(|r| r.verdict_paths.first())
                    .map(|(_, path)| path.join(" → "))
                    .unwrap_or_else(|| "—".to_owned());
                if paths.len() > 1 {
                    format!("{first} ({} different paths seen)", paths.len())
                } else {
                    first
                }
            })
        )?;
        writeln!(
            out,
            "| first Job created after the runner started | {} | watch ≤ 100 ms | 0.8 s | audit `stageTimestamp` of the runner's first `create jobs` minus the host clock just before the process was spawned |",
            cells(&|m| {
                let times: Vec<f64> = m.ok_runs().iter().filter_map(|r| r.first_job_ms).collect();
                let meets = match m.mode {
                    Mode::Watch => max(&times).map(|worst| worst <= 100.0),
                    Mode::Poll => None,
                };
                judged(spread(&times, ms), meets)
            })
        )?;
        writeln!(
            out,
            "| peak RSS of the runner | {} | < 16 MiB (aim 10) | ≈ 32 MiB | `VmHWM` of `/proc/<pid>/status`, read every 20 ms until the process exits; the last value read |",
            cells(&|m| {
                let peaks: Vec<f64> = m
                    .ok_runs()
                    .iter()
                    .filter_map(|r| r.peak_rss_kib)
                    .map(|k| k as f64)
                    .collect();
                judged(
                    spread(&peaks, mib),
                    max(&peaks).map(|worst| worst < 16.0 * 1024.0),
                )
            })
        )?;
        writeln!(
            out,
            "| binary size | {} | — | — | size of the file that ran (stripped, `opt-level = \"s\"`, thin LTO) |",
            cells(&|_| format_bytes(self.binary_size))
        )?;
        writeln!(
            out,
            "| runner wall time | {} | — | — | spawn to exit |\n",
            cells(&|m| {
                let walls: Vec<f64> = m.ok_runs().iter().map(|r| r.wall.as_secs_f64()).collect();
                spread(&walls, seconds)
            })
        )?;

        writeln!(
            out,
            "### Requests of the standard run by verb and resource\n\n\
             From the audit log, as above (`watch` = one watch request opened; a resource \
             `x.group` is in API group `group`).\n"
        )?;
        writeln!(out, "| request | watch | poll |")?;
        writeln!(out, "|---|---|---|")?;
        let kinds: BTreeSet<String> = self
            .standard
            .iter()
            .flat_map(|m| m.ok_runs())
            .flat_map(|r| audit::by_kind(&r.requests).into_keys())
            .collect();
        for kind in kinds {
            writeln!(
                out,
                "| `{kind}` | {} |",
                cells(&|m| {
                    let counts: Vec<f64> =
                        m.ok_runs().iter().map(|r| r.count(&kind) as f64).collect();
                    spread(&counts, count)
                })
            )?;
        }
        writeln!(out)
    }

    fn write_scale(&self, out: &mut String) -> std::fmt::Result {
        let n = self.scale.experiments;
        writeln!(
            out,
            "## Scale run: {n} experiments in parallel (watch mode)\n\n\
             One engine with {n} ChaosExperiments `exp-000`… (every third one fails, the others \
             pass; 5.0–5.4 s of simulated chaos), annotation `chaos-runner.io/max-parallel: \
             \"{n}\"`, `jobCleanUpPolicy: delete`, the runner as `chaos-runner`. One run.\n"
        )?;
        let run = match &self.scale.run {
            Ok(run) => run,
            Err(error) => {
                writeln!(out, "**The scale run failed:** {}\n", one_line(error))?;
                return Ok(());
            }
        };
        let watch_per_experiment: Vec<f64> = self
            .standard
            .iter()
            .filter(|m| m.mode == Mode::Watch)
            .flat_map(|m| m.ok_runs())
            .map(|r| r.requests.len() as f64 / r.verdicts.len().max(1) as f64)
            .collect();
        let per_experiment = run.requests.len() as f64 / n.max(1) as f64;
        let patches: Vec<_> = run
            .requests
            .iter()
            .filter(|r| r.verb == "patch" && r.resource == "chaosengines.litmuschaos.io")
            .collect();
        let conflicts = patches.iter().filter(|r| r.code == Some(409)).count();
        let standard_patches = {
            let mut per: Vec<f64> = self
                .standard
                .iter()
                .filter(|m| m.mode == Mode::Watch)
                .flat_map(|m| m.ok_runs())
                .map(|r| {
                    r.count("patch chaosengines.litmuschaos.io") as f64
                        / r.verdicts.len().max(1) as f64
                })
                .collect();
            per.sort_by(f64::total_cmp);
            (!per.is_empty()).then(|| median(&per))
        };
        let mut latencies: Vec<f64> = run.verdict_latency.iter().map(|(_, v)| *v).collect();
        latencies.sort_by(f64::total_cmp);

        writeln!(
            out,
            "| figure | value | target (issue 6) | how it is measured |"
        )?;
        writeln!(out, "|---|---|---|---|")?;
        writeln!(
            out,
            "| verdicts right | {} | all | final `status.experiments[].verdict` vs the simulated behaviour |",
            judged(
                format!("{}/{}", run.verdicts_right(), run.verdicts.len()),
                Some(run.verdicts_right() == n),
            )
        )?;
        writeln!(
            out,
            "| runner exit | {} | 0 | process exit status |",
            judged(run.exit.clone(), Some(run.exit_ok))
        )?;
        writeln!(
            out,
            "| API requests, whole run | {} | — | audit log, as in the standard run |",
            run.requests.len()
        )?;
        let watch_median = {
            let mut sorted = watch_per_experiment.clone();
            sorted.sort_by(f64::total_cmp);
            (!sorted.is_empty()).then(|| median(&sorted))
        };
        writeln!(
            out,
            "| API requests per experiment | {} | ≤ a one-experiment run's{} | the line above ÷ {n} |",
            judged(
                count((per_experiment * 10.0).round() / 10.0),
                watch_median.map(|limit| per_experiment <= limit),
            ),
            watch_median
                .map(|m| format!(" (standard watch run: {})", count(m)))
                .unwrap_or_default()
        )?;
        writeln!(
            out,
            "| engine writes (`patch chaosengines`) | {} | coalesced: far fewer than {n} × 7 = {} (judged here: ≤ a fifth, {}) | audit log: the runner's `patch` requests on `chaosengines` (409 = compare-and-swap conflict, retried) |",
            judged(
                format!(
                    "{} = {:.2} per experiment ({conflicts} answered 409){}",
                    patches.len(),
                    patches.len() as f64 / n.max(1) as f64,
                    standard_patches
                        .map(|p| format!("; one experiment alone: {}", count(p)))
                        .unwrap_or_default()
                ),
                Some(patches.len() * 5 <= n * 7),
            ),
            n * 7,
            n * 7 / 5
        )?;
        writeln!(
            out,
            "| last pod completed → every entry final | {} | — | podsim's last terminal pod write to the first engine copy (admin watch) with all {n} entries final |",
            run.all_final_after_last_completion_ms
                .map(ms)
                .unwrap_or_else(|| "—".into())
        )?;
        writeln!(
            out,
            "| pod completed → its verdict, per experiment | {} | — | as in the standard run, {} samples |",
            if latencies.is_empty() {
                "—".to_owned()
            } else {
                format!(
                    "median {}, max {}",
                    ms(median(&latencies)),
                    ms(latencies[latencies.len() - 1])
                )
            },
            latencies.len()
        )?;
        writeln!(
            out,
            "| start → first / last Job created | {} / {} | — | audit `stageTimestamp` of the first and last `create jobs` minus the spawn time |",
            run.first_job_ms.map(ms).unwrap_or_else(|| "—".into()),
            run.last_job_ms.map(ms).unwrap_or_else(|| "—".into())
        )?;
        writeln!(
            out,
            "| peak RSS of the runner | {} | < 32 MiB | `VmHWM`, sampled every 20 ms |",
            judged(
                run.peak_rss_kib
                    .map(|k| mib(k as f64))
                    .unwrap_or_else(|| "—".into()),
                run.peak_rss_kib.map(|k| k < 32 * 1024),
            )
        )?;
        writeln!(
            out,
            "| runner wall time | {} | — | spawn to exit |\n",
            seconds(run.wall.as_secs_f64())
        )?;
        self.write_scale_timeline(out, run)?;
        let wrong: Vec<String> = run
            .verdicts
            .iter()
            .filter(|(e, got)| got.as_deref() != Some(e.verdict.as_str()))
            .map(|(e, got)| {
                format!(
                    "{} expected {} got {}",
                    e.experiment,
                    e.verdict,
                    got.as_deref().unwrap_or("no entry")
                )
            })
            .collect();
        if !wrong.is_empty() {
            writeln!(out, "Wrong verdicts: {}.\n", wrong.join("; "))?;
        }
        writeln!(out, "### Requests of the scale run by verb and resource\n")?;
        writeln!(out, "| request | count | per experiment |")?;
        writeln!(out, "|---|---|---|")?;
        for (kind, total) in audit::by_kind(&run.requests) {
            writeln!(
                out,
                "| `{kind}` | {total} | {:.2} |",
                total as f64 / n.max(1) as f64
            )?;
        }
        writeln!(out)
    }

    /// Where the scale run's time goes: its timeline and the cost of its engine writes.
    fn write_scale_timeline(&self, out: &mut String, run: &RunMeasurement) -> std::fmt::Result {
        let at = |value: Option<f64>| value.map(ms).unwrap_or_else(|| "—".into());
        let both = |span: Option<(f64, f64)>| match span {
            Some((first, last)) => format!("{} – {}", ms(first), ms(last)),
            None => "—".to_owned(),
        };
        writeln!(
            out,
            "### Where the scale run's time goes\n\n\
             Timeline from the spawn (first – last of the {n}): Jobs created {} · \
             pods created by the Job controller {} (audit log) · pods seen and bound by podsim {} · pods Running {} · pods completed {} (podsim's \
             writes) · every entry final {} (admin watch) · runner exited {}.\n",
            both(run.first_job_ms.zip(run.last_job_ms)),
            both(run.pods_created_ms),
            both(run.pods_bound_ms),
            both(run.pods_running_ms),
            both(run.pods_completed_ms),
            at(run.all_final_ms),
            ms(run.wall.as_secs_f64() * 1000.0),
            n = run.verdicts.len(),
        )?;
        writeln!(out, "| cost | value | how it is measured |")?;
        writeln!(out, "|---|---|---|")?;
        for (label, verb, resource) in [
            ("engine writes", "patch", "chaosengines.litmuschaos.io"),
            ("event creations", "create", "events"),
        ] {
            let mut times: Vec<f64> = run
                .requests
                .iter()
                .filter(|r| r.verb == verb && r.resource == resource)
                .filter_map(|r| r.answered.duration_since(r.received).ok())
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect();
            times.sort_by(f64::total_cmp);
            let total: f64 = times.iter().sum();
            writeln!(
                out,
                "| {label}: apiserver time per request | {} | audit `stageTimestamp` − `requestReceivedTimestamp` of `{verb} {resource}`: median, max, sum over {} requests |",
                if times.is_empty() {
                    "—".to_owned()
                } else {
                    format!(
                        "median {}, max {}, sum {}",
                        ms(median(&times)),
                        ms(times[times.len() - 1]),
                        ms(total)
                    )
                },
                times.len()
            )?;
        }
        writeln!(
            out,
            "| engine object at the end | {} in all, of which `status.chaosRunner` {} and the `chaos-runner.io/audit` annotation {} | JSON length of the last copy the admin watch saw |\n",
            format_bytes(run.engine_bytes as u64),
            format_bytes(run.record_bytes as u64),
            format_bytes(run.trail_bytes as u64),
        )
    }

    fn write_failures(&self, out: &mut String) -> std::fmt::Result {
        let mut failures = BTreeMap::new();
        for figures in &self.standard {
            for (index, run) in figures.runs.iter().enumerate() {
                if let Err(error) = run {
                    failures.insert(
                        format!(
                            "standard run, {} mode, #{}",
                            figures.mode.label(),
                            index + 1
                        ),
                        error.clone(),
                    );
                }
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        writeln!(out, "## Failed runs (left out of the figures above)\n")?;
        for (run, error) in failures {
            writeln!(out, "- {run}: {}", one_line(&error))?;
        }
        writeln!(out)
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn format_bytes(bytes: u64) -> String {
    if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}
