//! A fault-injecting TCP proxy between the runner and the kube-apiserver, on 127.0.0.1.
//!
//! It forwards the TLS bytes untouched (the apiserver's certificate names 127.0.0.1, so the
//! runner's verification still holds) and, decided per connection by a seeded generator,
//! refuses it, stalls it before forwarding, or cuts it after some bytes of the answer — what a
//! flaky load balancer, a restarting apiserver or a dropped node network does to a client.
//! HTTP-level faults (429, 5xx) cannot be injected without terminating TLS; the runner's
//! handling of those is unit-tested in `src/cluster/api.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How often each fault strikes: one connection in `n` (0: never).
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub refuse_one_in: u64,
    pub stall_one_in: u64,
    pub cut_one_in: u64,
    /// Every connection is cut at the latest after a random 1..=this many KiB of answers (0:
    /// never). The runner speaks HTTP/2, so one connection carries a whole run: dice thrown
    /// once per connection alone could spare it every fault.
    pub lifetime_kib: u64,
}

/// What the proxy has done so far.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub stalled: AtomicU64,
    pub cut: AtomicU64,
}

impl ProxyStats {
    pub fn summary(&self) -> String {
        format!(
            "{} connections: {} refused, {} stalled, {} cut",
            self.connections.load(Ordering::SeqCst),
            self.refused.load(Ordering::SeqCst),
            self.stalled.load(Ordering::SeqCst),
            self.cut.load(Ordering::SeqCst)
        )
    }
}

/// The running proxy; stopped when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    pub stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// SplitMix64: small, seedable, the same sequence for the same seed (a failing run replays).
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn one_in(&mut self, n: u64) -> bool {
        n > 0 && self.next().is_multiple_of(n)
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` with `faults`.
    pub async fn start(upstream: SocketAddr, seed: u64, faults: Faults) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ProxyStats::default());
        let counters = stats.clone();
        let task = tokio::spawn(async move {
            let mut dice = Dice(seed);
            while let Ok((client, _)) = listener.accept().await {
                counters.connections.fetch_add(1, Ordering::SeqCst);
                if dice.one_in(faults.refuse_one_in) {
                    counters.refused.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                    continue;
                }
                let stall = dice
                    .one_in(faults.stall_one_in)
                    .then(|| Duration::from_millis(500 + dice.next() % 2500));
                let lifetime = (faults.lifetime_kib > 0)
                    .then(|| 1024 * (1 + dice.next() % faults.lifetime_kib));
                let cut_after = dice
                    .one_in(faults.cut_one_in)
                    .then(|| 1 + dice.next() % 8_192)
                    .or(lifetime);
                let counters = counters.clone();
                tokio::spawn(async move {
                    if let Some(stall) = stall {
                        counters.stalled.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(stall).await;
                    }
                    if let Ok(true) = forward(client, upstream, cut_after).await {
                        counters.cut.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        Ok(FaultProxy { addr, stats, task })
    }
}

/// Copies both ways; with `cut_after`, closes both sides once that many bytes of the answer
/// went through (mid-response, as a broken connection does). Whether it cut the connection.
async fn forward(
    mut client: TcpStream,
    upstream: SocketAddr,
    cut_after: Option<u64>,
) -> std::io::Result<bool> {
    let mut server = TcpStream::connect(upstream).await?;
    let Some(limit) = cut_after else {
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        return Ok(false);
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let requests = tokio::io::copy(&mut client_read, &mut server_write);
    let answers = async {
        let mut sent = 0u64;
        let mut buffer = vec![0u8; 8192];
        while sent < limit {
            let n = server_read.read(&mut buffer).await?;
            if n == 0 {
                return Ok(false);
            }
            let n = n.min((limit - sent) as usize);
            client_write.write_all(&buffer[..n]).await?;
            sent += n as u64;
        }
        Ok::<_, std::io::Error>(true)
    };
    tokio::select! {
        _ = requests => Ok(false),
        cut = answers => cut,
    }
}

/// The plane's apiserver address (`https://127.0.0.1:<port>`).
pub fn apiserver_addr(server: &str) -> anyhow::Result<SocketAddr> {
    let host_port = server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    host_port
        .parse()
        .with_context(|| format!("the plane's server {server:?} is not https://<ip>:<port>"))
}

/// A copy of the (JSON) kubeconfig `path` whose cluster server is the proxy.
pub fn kubeconfig_through(path: &Path, proxy: SocketAddr) -> anyhow::Result<PathBuf> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut kubeconfig: serde_json::Value = serde_json::from_str(&text)?;
    for cluster in kubeconfig["clusters"].as_array_mut().into_iter().flatten() {
        cluster["cluster"]["server"] = serde_json::json!(format!("https://{proxy}"));
    }
    let through = path.with_extension("proxied.kubeconfig");
    std::fs::write(&through, serde_json::to_vec_pretty(&kubeconfig)?)?;
    Ok(through)
}
