//! `novacron bench ...`: every benchmark, measured side by side with its baseline in the
//! same run, human summary or one JSON object with `-o json`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::output::Format;

mod control_plane;
mod failover;
mod infra;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Placement throughput, latency and packing quality on a simulated fleet (no I/O).
    Scheduler(SchedulerArgs),
    /// Node loss end to end: HA restart time of a VM, and no VM ever running twice.
    Failover(failover::FailoverArgs),
    /// Control-plane throughput with many hollow nodes: creates/s, API and watch latency, memory.
    ControlPlane(control_plane::ControlPlaneArgs),
}

#[derive(Args, Debug)]
pub struct SchedulerArgs {
    /// Hosts in the simulated fleet.
    #[arg(long, default_value_t = 100_000)]
    pub hosts: usize,
    /// Resident VMs to reach (generated workload).
    #[arg(long, default_value_t = 10_000_000)]
    pub vms: usize,
    /// Replay this trace (CSV, see docs/scheduler.md) instead of a generated workload.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub async fn run(cmd: BenchCommand, out: Format) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Scheduler(a) => scheduler(a, out).await,
        BenchCommand::Failover(a) => failover::run(a, out).await,
        BenchCommand::ControlPlane(a) => control_plane::run(a, out).await,
    }
}

async fn scheduler(a: SchedulerArgs, out: Format) -> anyhow::Result<()> {
    use novacron_sched::bench::{BenchConfig, Trace, run};
    let trace = match &a.trace {
        Some(p) => {
            let f = std::fs::File::open(p)
                .with_context(|| format!("cannot open --trace {}", p.display()))?;
            Some(
                Trace::from_reader(std::io::BufReader::new(f))
                    .with_context(|| format!("--trace {}", p.display()))?,
            )
        }
        None => None,
    };
    let cfg = BenchConfig {
        hosts: a.hosts,
        vms: a.vms,
        seed: a.seed,
        trace,
    };
    // The scheduler is single-threaded by design: one scheduling thread, off the runtime.
    let r = tokio::task::spawn_blocking(move || run(&cfg)).await??;
    match out {
        Format::Json => println!("{}", serde_json::to_string(&r)?),
        Format::Table => {
            println!(
                "scheduler bench: {} hosts, {} resident VMs ({} workload, seed {})",
                r.hosts, r.vms, r.workload, r.seed
            );
            println!(
                "  placements/s      {:.0}  (steady phase {:.0})",
                r.placements_per_sec, r.steady_placements_per_sec
            );
            println!(
                "  latency           p50 {:.2} µs, p99 {:.2} µs, max {:.0} µs",
                r.p50_us, r.p99_us, r.max_us
            );
            println!(
                "  hosts used        {}  vs first-fit-decreasing {}  (ratio {:.4})",
                r.hosts_used, r.ffd_hosts, r.ffd_ratio
            );
            println!(
                "  peak memory       {:.0} MiB",
                r.peak_rss_bytes as f64 / 1048576.0
            );
            println!(
                "  violations        {}  (independent validator)",
                r.violations
            );
            println!("  no fit            {}", r.no_fit);
            println!(
                "  rebalance         {} moves proposed, {:.1} ms",
                r.rebalance_moves, r.rebalance_ms
            );
            println!("  took              {:.1} s", r.seconds_total);
        }
    }
    if r.violations > 0 {
        anyhow::bail!(
            "the validator found {} hard-constraint violations",
            r.violations
        );
    }
    Ok(())
}
