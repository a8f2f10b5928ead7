//! The benchmark's markdown report: every figure with its target and how it was measured.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::audit;
use crate::etcd::EtcdFigures;
use crate::measure::RunMeasurement;
use crate::{Mode, Rung};

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

/// One rung of the scale ladder.
pub struct RungFigures {
    pub rung: Rung,
    /// The run, or why it could not be measured (timeout, set-up failure).
    pub run: Result<RunMeasurement, String>,
    /// etcd's database during the rung, when the bench could reach etcd.
    pub etcd: Option<EtcdFigures>,
}

impl RungFigures {
    /// ✅, or ❌ with why: the error, else the Warning Events, exit status and wrong verdicts.
    fn outcome(&self) -> String {
        let run = match &self.run {
            Ok(run) => run,
            Err(error) => {
                let why = clipped(&one_line(error), 300);
                return format!("❌ failed: {}", why.replace('|', "\\|"));
            }
        };
        if run.all_right() {
            return "✅".to_owned();
        }
        let mut why: Vec<String> = run
            .warnings
            .iter()
            .take(3)
            .map(|(reason, message)| format!("{reason}: {}", clipped(&one_line(message), 200)))
            .collect();
        if !run.exit_ok {
            why.push(format!("exit {}", run.exit));
            if let Some(error) = &run.last_error {
                why.push(format!(
                    "the runner's last error: {}",
                    clipped(&one_line(error), 300)
                ));
            }
        }
        if run.attempts_right() != run.attempts_expected() {
            why.push(format!(
                "{} of {} attempts ended right",
                run.attempts_right(),
                run.attempts_expected()
            ));
        }
        if run.verdicts_right() != run.verdicts.len() {
            why.push(format!(
                "{} of {} entries wrong",
                run.verdicts.len() - run.verdicts_right(),
                run.verdicts.len()
            ));
        }
        format!("❌ {}", why.join("; ").replace('|', "\\|"))
    }
}

/// The runner's writes of the engine (`patch`/`update chaosengines`).
fn engine_writes(run: &RunMeasurement) -> Vec<&audit::AuditRequest> {
    run.requests
        .iter()
        .filter(|r| {
            (r.verb == "patch" || r.verb == "update") && r.resource == "chaosengines.litmuschaos.io"
        })
        .collect()
}

/// Everything the bench measured.
pub struct Report {
    pub binary: PathBuf,
    pub binary_size: u64,
    pub repeats: usize,
    /// Watch first, then poll; empty with `BENCH_REPEATS=0`.
    pub standard: Vec<StandardFigures>,
    /// The scale ladder, smallest rung first as given.
    pub rungs: Vec<RungFigures>,
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
        if !self.standard.is_empty() {
            self.write_standard(out)?;
        }
        self.write_ladder(out)?;
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

    /// The requests per experiment of the standard watch runs (median), the yardstick of the
    /// ladder's requests per attempt.
    fn standard_watch_per_experiment(&self) -> Option<f64> {
        let mut per: Vec<f64> = self
            .standard
            .iter()
            .filter(|m| m.mode == Mode::Watch)
            .flat_map(|m| m.ok_runs())
            .map(|r| r.requests.len() as f64 / r.verdicts.len().max(1) as f64)
            .collect();
        per.sort_by(f64::total_cmp);
        (!per.is_empty()).then(|| median(&per))
    }

    fn write_ladder(&self, out: &mut String) -> std::fmt::Result {
        if self.rungs.is_empty() {
            return Ok(());
        }
        writeln!(
            out,
            "## Scale ladder (watch mode)\n\n\
             One run per rung, each in a fresh namespace: one engine whose experiments \
             `exp-000`… fail every third one and pass otherwise (5.0–5.4 s of simulated chaos, \
             or 0 s — the shortest the pod simulator plays — where the rung says so), \
             annotations `chaos-runner.io/max-parallel` and, with iterations, \
             `chaos-runner.io/iterations` (a bare count: every experiment), \
             `jobCleanUpPolicy: delete`, the runner as deploy/'s `chaos-runner`. Rungs are set \
             with `BENCH_LADDER` (default `10,100,1000,10000`).\n"
        )?;
        let mut header = "| figure |".to_owned();
        let mut rule = "|---|".to_owned();
        for figures in &self.rungs {
            let _ = write!(header, " {} |", figures.rung.requested);
            rule.push_str("---|");
        }
        writeln!(out, "{header} how it is measured |")?;
        writeln!(out, "{rule}---|")?;
        let row = |out: &mut String,
                   label: &str,
                   how: &str,
                   cell: &dyn Fn(&RunMeasurement, &RungFigures) -> String|
         -> std::fmt::Result {
            let cells: Vec<String> = self
                .rungs
                .iter()
                .map(|figures| match &figures.run {
                    Ok(run) => cell(run, figures),
                    Err(_) => "—".to_owned(),
                })
                .collect();
            writeln!(out, "| {label} | {} | {how} |", cells.join(" | "))
        };

        let plans: Vec<String> = self
            .rungs
            .iter()
            .map(|f| format!("{} attempts: {}", f.rung.attempts(), f.rung.describe()))
            .collect();
        writeln!(
            out,
            "| plan | {} | experiments × iterations, `max-parallel`, simulated chaos per attempt |",
            plans.join(" | ")
        )?;
        let outcomes: Vec<String> = self.rungs.iter().map(RungFigures::outcome).collect();
        writeln!(
            out,
            "| outcome | {} | ✅: exit 0, every attempt's and every entry's verdict right; else why not: the run's error (timeout…), the engine's Warning Events (e.g. `PlanInvalid`), the exit status, what was wrong |",
            outcomes.join(" | ")
        )?;
        row(
            out,
            "attempts with the right verdict",
            "the runner's `experiment finished` log line of each attempt (one per attempt at the end of the run) vs the experiment's simulated behaviour",
            &|run, _| {
                judged(
                    format!("{}/{}", run.attempts_right(), run.attempts_expected()),
                    Some(run.attempts_right() == run.attempts_expected()),
                )
            },
        )?;
        row(
            out,
            "entries right in `status.experiments`",
            "final entry per experiment: `Completed`, on the last iteration, with the expected verdict",
            &|run, _| {
                judged(
                    format!("{}/{}", run.verdicts_right(), run.verdicts.len()),
                    Some(run.verdicts_right() == run.verdicts.len()),
                )
            },
        )?;
        row(out, "runner exit", "process exit status", &|run, _| {
            judged(run.exit.clone(), Some(run.exit_ok))
        })?;
        row(out, "wall time", "runner spawn to exit", &|run, _| {
            seconds(run.wall.as_secs_f64())
        })?;
        let yardstick = self.standard_watch_per_experiment();
        row(
            out,
            "API requests: whole run; per attempt",
            &format!(
                "audit log, user `system:serviceaccount:<ns>:chaos-runner`, as in the standard run; ÷ the plan's attempts{}",
                yardstick
                    .map(|m| format!(
                        " (judged against the standard watch run's {} per experiment)",
                        count(m)
                    ))
                    .unwrap_or_default()
            ),
            &|run, _| {
                let per = run.requests.len() as f64 / run.attempts_expected().max(1) as f64;
                judged(
                    format!(
                        "{}; {}",
                        run.requests.len(),
                        count((per * 10.0).round() / 10.0)
                    ),
                    yardstick.map(|limit| per <= limit),
                )
            },
        )?;
        row(
            out,
            "engine patches: count (answered 409); per attempt",
            "audit log: the runner's `patch`/`update` requests on `chaosengines` (409 = compare-and-swap conflict, retried); an attempt makes 7 transitions, each checkpointed: fewer writes than that are group commits",
            &|run, _| {
                let writes = engine_writes(run);
                let conflicts = writes.iter().filter(|r| r.code == Some(409)).count();
                let attempts = run.attempts_expected().max(1);
                format!(
                    "{} ({conflicts}); {:.2}",
                    writes.len(),
                    writes.len() as f64 / attempts as f64
                )
            },
        )?;
        row(
            out,
            "engine patch body: median / max / total",
            "the plane's audit policy logs ChaosEngine patches and updates at level `Request`: size of each `requestObject` (compact JSON: the body as sent, up to whitespace and escapes)",
            &|run, _| {
                let mut sizes: Vec<f64> = engine_writes(run)
                    .iter()
                    .filter_map(|r| r.body_bytes)
                    .map(|b| b as f64)
                    .collect();
                if sizes.is_empty() {
                    return "— (no bodies in the audit log: restart the plane)".to_owned();
                }
                sizes.sort_by(f64::total_cmp);
                let total: f64 = sizes.iter().sum();
                format!(
                    "{} / {} / {}",
                    format_bytes(median(&sizes) as u64),
                    format_bytes(sizes[sizes.len() - 1] as u64),
                    format_bytes(total as u64)
                )
            },
        )?;
        row(
            out,
            "ChaosEngine object: final / peak",
            "final: body of a GET of the engine after the run (the JSON as the apiserver serves it); peak: the largest of every copy the admin watch delivered while running (compact JSON), or the final one",
            &|run, _| {
                format!(
                    "{} / {}",
                    run.engine_final_bytes
                        .map(|b| format_bytes(b as u64))
                        .unwrap_or_else(|| "—".into()),
                    format_bytes(run.engine_peak_bytes as u64)
                )
            },
        )?;
        row(
            out,
            "of the final object: `status.chaosRunner` / the runner's annotations",
            "JSON length of `status.chaosRunner`; keys and values of the annotations `chaos-runner.io/run`, `progress-<n>` and `trail-<n>`; in the last copy the admin watch saw",
            &|run, _| {
                format!(
                    "{} / {}",
                    format_bytes(run.record_bytes as u64),
                    format_bytes(run.trail_bytes as u64)
                )
            },
        )?;
        row(
            out,
            "peak RSS of the runner",
            "`VmHWM` of `/proc/<pid>/status`, read every 20 ms until the process exits",
            &|run, _| {
                run.peak_rss_kib
                    .map(|k| mib(k as f64))
                    .unwrap_or_else(|| "—".into())
            },
        )?;
        row(
            out,
            "last pod completed → every entry final",
            "podsim's last terminal pod write to the first engine copy (admin watch) with every entry final on its last iteration",
            &|run, _| {
                run.all_final_after_last_completion_ms
                    .map(ms)
                    .unwrap_or_else(|| "—".into())
            },
        )?;
        row(
            out,
            "pod completed → its entry's verdict: median, max",
            "as in the standard run; the last iteration's pod of each experiment",
            &|run, _| {
                let mut latencies: Vec<f64> = run.verdict_latency.iter().map(|(_, v)| *v).collect();
                if latencies.is_empty() {
                    return "—".to_owned();
                }
                latencies.sort_by(f64::total_cmp);
                format!(
                    "{}, {}",
                    ms(median(&latencies)),
                    ms(latencies[latencies.len() - 1])
                )
            },
        )?;
        let etcd: Vec<String> = self
            .rungs
            .iter()
            .map(|figures| match figures.etcd {
                Some(etcd) => format!(
                    "{} → {} ({}); {}",
                    format_bytes(etcd.start_bytes),
                    format_bytes(etcd.peak_bytes),
                    format_bytes(etcd.quota),
                    etcd.maintenances
                ),
                None => "—".to_owned(),
            })
            .collect();
        writeln!(
            out,
            "| etcd database: at the start → peak (quota); the bench's compactions | {} | etcd's `dbSize` (maintenance status, read every 2 s from the rung's start); the bench compacts away each rung's history and defragments after the rung, and during it whenever the file passes half the quota, keeping 30 s of history (etcd refuses every write at the quota: the history of a large, often patched engine fills it within minutes) |",
            etcd.join(" | ")
        )?;
        writeln!(out)?;

        for figures in &self.rungs {
            if let Ok(run) = &figures.run {
                self.write_rung_details(out, figures, run)?;
            }
        }
        Ok(())
    }

    /// Where one rung's time goes: its timeline, the cost of its writes, its requests by kind.
    fn write_rung_details(
        &self,
        out: &mut String,
        figures: &RungFigures,
        run: &RunMeasurement,
    ) -> std::fmt::Result {
        let attempts = run.attempts_expected().max(1);
        let at = |value: Option<f64>| value.map(ms).unwrap_or_else(|| "—".into());
        let both = |span: Option<(f64, f64)>| match span {
            Some((first, last)) => format!("{} – {}", ms(first), ms(last)),
            None => "—".to_owned(),
        };
        writeln!(
            out,
            "### Rung {}: {}\n\n\
             Timeline from the spawn (first – last of the {attempts} attempts): Jobs created {} · \
             pods created by the Job controller {} (audit log) · pods seen and bound by podsim {} · \
             pods Running {} · pods completed {} (podsim's writes) · every entry final {} (admin \
             watch) · runner exited {}.\n",
            figures.rung.requested,
            figures.rung.describe(),
            both(run.first_job_ms.zip(run.last_job_ms)),
            both(run.pods_created_ms),
            both(run.pods_bound_ms),
            both(run.pods_running_ms),
            both(run.pods_completed_ms),
            at(run.all_final_ms),
            ms(run.wall.as_secs_f64() * 1000.0),
        )?;
        writeln!(out, "| cost | value | how it is measured |")?;
        writeln!(out, "|---|---|---|")?;
        for (label, verbs, resource) in [
            (
                "engine writes",
                &["patch", "update"][..],
                "chaosengines.litmuschaos.io",
            ),
            ("event creations", &["create"][..], "events"),
        ] {
            let mut times: Vec<f64> = run
                .requests
                .iter()
                .filter(|r| verbs.contains(&r.verb.as_str()) && r.resource == resource)
                .filter_map(|r| r.answered.duration_since(r.received).ok())
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect();
            times.sort_by(f64::total_cmp);
            let total: f64 = times.iter().sum();
            writeln!(
                out,
                "| {label}: apiserver time per request | {} | audit `stageTimestamp` − `requestReceivedTimestamp` of `{} {resource}`: median, max, sum over {} requests |",
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
                verbs.join("/"),
                times.len()
            )?;
        }
        writeln!(out)?;
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
            writeln!(
                out,
                "Wrong entries ({}): {}{}.\n",
                wrong.len(),
                wrong[..wrong.len().min(5)].join("; "),
                if wrong.len() > 5 { "; …" } else { "" }
            )?;
        }
        writeln!(out, "| request | count | per attempt |")?;
        writeln!(out, "|---|---|---|")?;
        for (kind, total) in audit::by_kind(&run.requests) {
            writeln!(
                out,
                "| `{kind}` | {total} | {:.2} |",
                total as f64 / attempts as f64
            )?;
        }
        writeln!(out)
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
        for figures in &self.rungs {
            if let Err(error) = &figures.run {
                failures.insert(
                    format!("ladder rung {}", figures.rung.requested),
                    error.clone(),
                );
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

/// At most `limit` characters of `text`, with `…` when cut.
fn clipped(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn format_bytes(bytes: u64) -> String {
    if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}
