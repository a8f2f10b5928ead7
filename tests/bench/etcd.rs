//! The plane's etcd, kept from filling up while the ladder runs.
//!
//! etcd keeps every revision of every object until it is compacted, and refuses all writes
//! ("mvcc: database space exceeded") once its file reaches the quota (the plane sets 512 MiB).
//! The apiserver compacts every 5 minutes, keeping about that much history; a runner whose
//! engine is a megabyte and is patched several times a second writes that much history in
//! minutes, which would stop the plane for everyone on it. So after each rung the bench
//! compacts away the rung's history and defragments (the next rung starts from a small
//! database), and a guard checks the database every [`GUARD_INTERVAL`] during the rung: above
//! half the quota it compacts to the revision of [`GUARD_HISTORY`] ago and defragments. Only
//! history behind the head is compacted, so the apiserver's watches on etcd (at the head) go on
//! undisturbed. What the guard did is reported.
//!
//! etcd is reached over its HTTP/JSON gateway on the plane's client port (from
//! `$CHAOS_PLANE_DIR/ports`), with curl (which the plane script needs anyway).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use serde_json::{Value, json};
use tokio::sync::watch;

/// How often the guard reads the database size during a rung.
const GUARD_INTERVAL: Duration = Duration::from_secs(2);
/// How much history the guard keeps when it compacts.
const GUARD_HISTORY: Duration = Duration::from_secs(30);

/// The plane's etcd.
#[derive(Debug, Clone)]
pub struct Etcd {
    url: String,
}

/// What etcd says about its database.
#[derive(Debug, Clone, Copy)]
pub struct EtcdStatus {
    /// The database file's size and its quota (bytes).
    pub db_size: u64,
    pub quota: u64,
    /// The store's current revision.
    pub revision: u64,
}

/// What happened to etcd's database during one rung.
#[derive(Debug, Clone, Copy, Default)]
pub struct EtcdFigures {
    /// Database size when the rung started (after the bench's compaction) and the largest the
    /// guard saw (bytes).
    pub start_bytes: u64,
    pub peak_bytes: u64,
    pub quota: u64,
    /// Compactions and defragmentations the guard made during the rung.
    pub maintenances: usize,
}

impl Etcd {
    /// The etcd of the plane in `CHAOS_PLANE_DIR`; `None` without that variable or its ports
    /// file (then nothing is guarded).
    pub fn of_plane() -> Option<Etcd> {
        let dir = PathBuf::from(std::env::var_os("CHAOS_PLANE_DIR")?);
        let ports = std::fs::read_to_string(dir.join("ports")).ok()?;
        let port = ports
            .lines()
            .find_map(|line| line.strip_prefix("etcd_client="))?
            .trim()
            .parse::<u16>()
            .ok()?;
        Some(Etcd {
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// POSTs `body` to the gateway's `path` and returns the answer.
    async fn call(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let output = tokio::process::Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "60", "-X", "POST"])
            .arg("--data")
            .arg(body.to_string())
            .arg(format!("{}{path}", self.url))
            .kill_on_drop(true)
            .output()
            .await
            .context("running curl")?;
        if !output.status.success() {
            return Err(anyhow!(
                "curl {path}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let answer: Value = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("etcd {path}: the answer is not JSON"))?;
        if let Some(error) = answer.get("error").or_else(|| answer.get("message")) {
            return Err(anyhow!("etcd {path}: {error}"));
        }
        Ok(answer)
    }

    pub async fn status(&self) -> anyhow::Result<EtcdStatus> {
        let answer = self.call("/v3/maintenance/status", &json!({})).await?;
        // The gateway writes 64-bit integers as strings.
        let number = |value: &Value| -> anyhow::Result<u64> {
            value
                .as_str()
                .and_then(|text| text.parse().ok())
                .or_else(|| value.as_u64())
                .ok_or_else(|| anyhow!("etcd status: not a number: {value} in {answer}"))
        };
        Ok(EtcdStatus {
            db_size: number(&answer["dbSize"])?,
            quota: number(&answer["dbSizeQuota"])?,
            revision: number(&answer["header"]["revision"])?,
        })
    }

    /// Compacts the history up to `revision` (an already compacted one is fine), then
    /// defragments, which gives the freed space back.
    pub async fn compact_and_defragment(&self, revision: u64) -> anyhow::Result<()> {
        let compacted = self
            .call(
                "/v3/kv/compaction",
                &json!({"revision": revision.to_string(), "physical": true}),
            )
            .await;
        if let Err(error) = compacted
            && !error.to_string().contains("compacted")
        {
            return Err(error);
        }
        self.call("/v3/maintenance/defragment", &json!({}))
            .await
            .map(|_| ())
    }

    /// Guards the database until `stop` turns true (see the module documentation).
    pub async fn guard(self, start: EtcdStatus, mut stop: watch::Receiver<bool>) -> EtcdFigures {
        let mut figures = EtcdFigures {
            start_bytes: start.db_size,
            peak_bytes: start.db_size,
            quota: start.quota,
            maintenances: 0,
        };
        // (when, revision) of the checks, oldest first, back to GUARD_HISTORY ago.
        let mut seen: VecDeque<(Instant, u64)> = VecDeque::from([(Instant::now(), start.revision)]);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(GUARD_INTERVAL) => {}
                _ = stop.changed() => return figures,
            }
            let status = match self.status().await {
                Ok(status) => status,
                Err(error) => {
                    eprintln!("bench: etcd guard: {error:#}");
                    continue;
                }
            };
            figures.peak_bytes = figures.peak_bytes.max(status.db_size);
            let now = Instant::now();
            while seen.len() > 1 && now.duration_since(seen[1].0) >= GUARD_HISTORY {
                seen.pop_front();
            }
            let (_, behind) = seen[0];
            if status.db_size > status.quota / 2 {
                eprintln!(
                    "bench: etcd guard: database at {} MiB of {} MiB: compacting to revision \
                     {behind} and defragmenting",
                    status.db_size >> 20,
                    status.quota >> 20
                );
                match self.compact_and_defragment(behind).await {
                    Ok(()) => figures.maintenances += 1,
                    Err(error) => eprintln!("bench: etcd guard: {error:#}"),
                }
            }
            seen.push_back((now, status.revision));
        }
    }
}
