//! `podsim --namespace NS [--kubeconfig FILE]`: plays the experiment pods of one namespace
//! until SIGINT or SIGTERM, printing one line per thing it does (the demo's pod timeline).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use podsim::{Simulator, SimulatorConfig};
use tokio::signal::unix::{SignalKind, signal};

/// Plays the kubelet and the Litmus experiment for pods with a `job-name` label.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Namespace whose experiment pods to play.
    #[arg(long, short = 'n', env = "PODSIM_NAMESPACE")]
    namespace: String,
    /// kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Leave pods unbound (deletes then need no force delete).
    #[arg(long)]
    no_bind: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let client = match &args.kubeconfig {
        None => Client::try_default()
            .await
            .context("no usable kubeconfig (set KUBECONFIG or pass --kubeconfig)")?,
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .with_context(|| format!("loading kubeconfig {}", path.display()))?;
            Client::try_from(config).context("building the API client")?
        }
    };
    let config = SimulatorConfig {
        bind_pods: !args.no_bind,
        ..SimulatorConfig::default()
    };
    let simulator = Simulator::start_with(client, &args.namespace, config)?;
    println!(
        "podsim: playing pods with a job-name label in namespace {}",
        args.namespace
    );

    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut printed = 0;
    loop {
        let new_events = tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            new_events = simulator.events_after(printed) => new_events,
        };
        for event in new_events {
            println!("{event}");
            printed += 1;
        }
    }
    let counters = simulator.counters();
    simulator.stop().await;
    println!(
        "podsim: stopped; pods played {}, completed {}, results written {}, force-deleted {}, failures {}",
        counters.pods_played,
        counters.pods_completed,
        counters.results_written,
        counters.pods_force_deleted,
        counters.failures
    );
    Ok(())
}
