//! `novacron bench ...`: every benchmark, measured side by side with its baseline in the
//! same run, human summary or one JSON object with `-o json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::output::Format;

mod control_plane;
mod failover;
mod infra;
mod interrupt;
mod net_migration;
mod network;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Placement throughput, latency and packing quality on a simulated fleet (no I/O).
    Scheduler(SchedulerArgs),
    /// Node loss end to end: HA restart time of a VM, and no VM ever running twice.
    Failover(failover::FailoverArgs),
    /// Control-plane throughput with many hollow nodes: creates/s, API and watch latency, memory.
    ControlPlane(control_plane::ControlPlaneArgs),
    /// DWCP against TCP baselines on an emulated WAN (novacron-wanem), one run side by side.
    Transport(TransportArgs),
    /// Backup first/incremental/restore against restic and borg on the same disk image.
    Backup(BackupArgs),
    /// Live migration of a TCG guest against QEMU's migration baselines on an emulated WAN.
    Migration(MigrationArgs),
    /// Overlay networks: TCP across VXLAN against the same path without it (iperf3), and how
    /// fast a security-group change reaches the nftables of hollow nodes.
    Network(network::NetworkArgs),
}

#[derive(Args, Debug)]
pub struct MigrationArgs {
    /// Link rate, e.g. 100mbit, 1gbit.
    #[arg(long, default_value = "100mbit")]
    pub rate: String,
    /// Round-trip time, e.g. 50ms.
    #[arg(long, default_value = "50ms")]
    pub rtt: String,
    /// Random loss per direction, e.g. 0.1%.
    #[arg(long, default_value = "0.1%")]
    pub loss: String,
    /// Guest RAM, e.g. 1G (QEMU gets 8 KiB more: TCG dirty tracking of QEMU 7.2). Default
    /// 1G, or 256M with --quick.
    #[arg(long)]
    pub memory: Option<String>,
    /// idle, hotset, dirty:RATE (pages/s, or e.g. dirty:20MiB), mixed, pagecache, random or
    /// bursty[:RATE] (without a rate: twice the link rate, then a fifth of it, 2 s each).
    #[arg(long, default_value = "hotset")]
    pub workload: String,
    /// Run a grid of links × workloads instead of one scenario (--links, --workloads). JSON:
    /// {"cells": [{"link", "workload", "floor_bytes", "results", "targets"}]}.
    #[arg(long)]
    pub matrix: bool,
    /// With --matrix: 256 MiB guests and a 300 s limit per migration.
    #[arg(long, requires = "matrix")]
    pub quick: bool,
    /// With --matrix: comma-separated RATE/RTT/LOSS links [default:
    /// 1gbit/10ms/0%,100mbit/50ms/0.1%,20mbit/120ms/0.5%].
    #[arg(long, requires = "matrix")]
    pub links: Option<String>,
    /// With --matrix: comma-separated workloads [default:
    /// idle,hotset,dirty:8MiB,mixed,pagecache,random,bursty].
    #[arg(long, requires = "matrix")]
    pub workloads: Option<String>,
    /// Skip the information floor (two RAM images and a zstd -19 pass over them per scenario).
    #[arg(long)]
    pub no_floor: bool,
    /// Comma-separated: novacron, qemu-default, qemu-multifd-zstd, qemu-xbzrle.
    #[arg(
        long,
        default_value = "novacron,qemu-default,qemu-multifd-zstd,qemu-xbzrle"
    )]
    pub systems: String,
    /// Congestion control of the QEMU baselines' sockets (the site namespaces' default).
    #[arg(long, default_value = "cubic")]
    pub cc: String,
    /// A migration not finished after this long is cancelled and reported as not completed.
    /// Default 600s, or 300s with --quick.
    #[arg(long)]
    pub limit: Option<String>,
    /// Scratch directory (removed afterwards, also on error and Ctrl-C).
    #[arg(long, default_value = "/var/tmp/novacron-bench-mig")]
    pub work_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct TransportArgs {
    /// Link rate, e.g. 100mbit, 1gbit.
    #[arg(long, default_value = "100mbit")]
    pub rate: String,
    /// Round-trip time, e.g. 50ms.
    #[arg(long, default_value = "50ms")]
    pub rtt: String,
    /// Random loss per direction, e.g. 0.1%.
    #[arg(long, default_value = "0.1%")]
    pub loss: String,
    /// Bytes to send (the memory corpus is a whole guest RAM image of this size).
    #[arg(long, default_value = "512M")]
    pub size: String,
    /// memory, text, random or mixed.
    #[arg(long, default_value = "random")]
    pub corpus: String,
    /// Congestion control of DWCP's own streams: bbr (where available) or cubic.
    #[arg(long, default_value = "bbr")]
    pub dwcp_cc: String,
    /// Comma-separated systems (default: all baselines and DWCP).
    #[arg(long)]
    pub systems: Option<String>,
    /// Jitter per direction, e.g. 2ms.
    #[arg(long)]
    pub jitter: Option<String>,
    /// Bottleneck queue in milliseconds at the link rate.
    #[arg(long)]
    pub queue_ms: Option<u64>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Size of the VM disk image, e.g. 4G.
    #[arg(long, default_value = "4G")]
    pub size: String,
    /// Runs (figures are medians with the spread).
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Scratch directory (everything the bench makes is removed afterwards).
    #[arg(long, default_value = "/var/tmp/novacron-bench-backup")]
    pub work_dir: PathBuf,
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

/// Runs one bench. SIGINT or SIGTERM stops it: the migration bench is asked to stop and
/// given a bounded time to clean up itself; then every process, namespace and scratch
/// directory a bench recorded (see `interrupt`) is removed, and the process exits 130/143.
pub async fn run(cmd: BenchCommand, out: Format) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    // Only the migration bench watches `stop`; the others are swept at once.
    let watches_stop = matches!(cmd, BenchCommand::Migration(_));
    let bench = async {
        match cmd {
            BenchCommand::Scheduler(a) => scheduler(a, out).await,
            BenchCommand::Failover(a) => failover::run(a, out).await,
            BenchCommand::ControlPlane(a) => control_plane::run(a, out).await,
            BenchCommand::Transport(a) => transport(a, out).await,
            BenchCommand::Backup(a) => backup(a, out).await,
            BenchCommand::Migration(a) => migration(a, out, stop.clone()).await,
            BenchCommand::Network(a) => network::run(a, out).await,
        }
    };
    tokio::pin!(bench);
    let code = tokio::select! {
        r = &mut bench => return r,
        code = interrupt::signalled() => code,
    };
    eprintln!("interrupted: stopping the bench, its guests and namespaces");
    stop.store(true, Ordering::Relaxed);
    // A bench that watches `stop` ends on its own and its guards clean up; wait for that
    // (bounded), then sweep whatever is left either way.
    if watches_stop {
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut bench).await;
    }
    let removed = tokio::task::spawn_blocking(interrupt::sweep)
        .await
        .unwrap_or(0);
    if removed > 0 {
        eprintln!("interrupted: removed {removed} leftover processes, namespaces or directories");
    }
    std::process::exit(code);
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

async fn transport(a: TransportArgs, out: Format) -> anyhow::Result<()> {
    use novacron_bench::transport::{self, TransportBenchConfig};
    use novacron_wanem::parse;
    let mut cfg = TransportBenchConfig {
        rate_bps: parse::rate_bps(&a.rate)?,
        rtt: parse::duration(&a.rtt)?,
        loss: parse::loss(&a.loss)?,
        size_bytes: novacron_api_types::parse_size(&a.size).context("--size")?,
        corpus: a
            .corpus
            .parse()
            .map_err(|e: novacron_bench::corpus::CorpusError| anyhow::anyhow!("--corpus: {e}"))?,
        dwcp_cc: match a.dwcp_cc.as_str() {
            "bbr" => None,
            other => Some(other.to_string()),
        },
        ..TransportBenchConfig::default()
    };
    if let Some(s) = &a.systems {
        cfg.systems = s.split(',').map(|x| x.trim().to_string()).collect();
    }
    if let Some(j) = &a.jitter {
        cfg.jitter = parse::duration(j)?;
    }
    if let Some(q) = a.queue_ms {
        cfg.queue = std::time::Duration::from_millis(q);
    }
    interrupt::wanem(&cfg.netns_prefix);
    let report = on_plain_thread("transport", move || transport::run(&cfg)).await??;
    match out {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Table => print!("{}", transport::render_table(&report)),
    }
    Ok(())
}

/// Runs `f` on a plain thread and waits for it: the transport and migration benches build
/// their own runtimes inside the emulated sites, which a runtime thread cannot do.
async fn on_plain_thread<T: Send + 'static>(
    bench: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.with_context(|| format!("{bench} bench thread"))
}

async fn migration(a: MigrationArgs, out: Format, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    use novacron_bench::matrix;
    use novacron_bench::migration::{self, MigrationBenchConfig};
    use novacron_wanem::parse;
    let memory_arg = a
        .memory
        .clone()
        .unwrap_or_else(|| if a.quick { "256M" } else { "1G" }.into());
    let memory = novacron_api_types::parse_size(&memory_arg).context("--memory")?;
    let limit = a
        .limit
        .clone()
        .unwrap_or_else(|| if a.quick { "300s" } else { "600s" }.into());
    let cfg = MigrationBenchConfig {
        rate_bps: parse::rate_bps(&a.rate)?,
        rtt: parse::duration(&a.rtt)?,
        loss: parse::loss(&a.loss)?,
        memory_mib: memory >> 20,
        workload: a.workload,
        systems: a.systems.split(',').map(|x| x.trim().to_string()).collect(),
        cc: a.cc,
        limit: parse::duration(&limit).context("--limit")?,
        work_dir: a.work_dir,
        stop,
        floor: !a.no_floor,
        ..MigrationBenchConfig::default()
    };
    if memory % (1 << 20) != 0 {
        anyhow::bail!("--memory must be a whole number of MiB");
    }
    let links = match &a.links {
        Some(l) => l
            .split(',')
            .map(matrix::parse_link)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--links: {e}"))?,
        None => matrix::default_links(),
    };
    let workloads: Vec<String> = match &a.workloads {
        Some(w) => w.split(',').map(|x| x.trim().to_string()).collect(),
        None => matrix::DEFAULT_WORKLOADS
            .iter()
            .map(|w| w.to_string())
            .collect(),
    };
    interrupt::dir(cfg.work_dir.clone());
    interrupt::wanem(&cfg.netns_prefix);
    // The bench builds its own runtimes inside the emulated sites: run it on a plain thread.
    // SIGINT/SIGTERM set `stop` (see `run`); it kills its QEMUs and removes its files.
    if a.matrix {
        let max_ms = cfg.max_downtime.as_millis() as u64;
        let report = on_plain_thread("migration", move || {
            // Each cell as it ends, on stderr: a grid runs for hours.
            let mut progress = |i: usize, n: usize, c: &matrix::Cell| {
                eprint!("cell {i}/{n}: {}", matrix::render_cell(c, max_ms));
            };
            matrix::run(&cfg, &links, &workloads, &mut progress)
        })
        .await??;
        match out {
            Format::Json => println!("{}", serde_json::to_string(&report)?),
            Format::Table => print!("{}", matrix::render_table(&report)),
        }
        let bad = report
            .cells
            .iter()
            .flat_map(|c| c.results.iter().map(move |r| (c, r)))
            .find(|(_, r)| r.integrity != "ok");
        if let Some((c, r)) = bad {
            anyhow::bail!(
                "{} in the {} cell: the guest's integrity check failed: {}",
                r.system,
                c.workload,
                r.note.as_deref().unwrap_or("")
            );
        }
        return Ok(());
    }
    let report = on_plain_thread("migration", move || migration::run(&cfg)).await??;
    match out {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Table => print!("{}", migration::render_table(&report)),
    }
    if let Some(r) = report.results.iter().find(|r| r.integrity != "ok") {
        anyhow::bail!(
            "{}: the guest's integrity check failed: {}",
            r.system,
            r.note.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

async fn backup(a: BackupArgs, out: Format) -> anyhow::Result<()> {
    use novacron_backup::bench::{BackupBenchConfig, run};
    let mut cfg = BackupBenchConfig::new(
        novacron_api_types::parse_size(&a.size).context("--size")?,
        a.work_dir,
    );
    cfg.runs = a.runs.max(1);
    let r = run(&cfg).await?;
    match out {
        Format::Json => println!("{}", serde_json::to_string(&r)?),
        Format::Table => {
            println!(
                "backup bench: {} disk image, {} run(s), TCG not involved (files only)",
                novacron_api_types::format_size(r.size_bytes),
                r.runs
            );
            print!(
                "{}",
                crate::output::table(
                    &[
                        "SYSTEM",
                        "FIRST s",
                        "INCREMENTAL s",
                        "RESTORE s",
                        "REPO BYTES",
                        "RESTORE MATCHES"
                    ],
                    &r.results
                        .iter()
                        .map(|x| vec![
                            x.system.to_string(),
                            format!("{:.2}", x.first_seconds),
                            format!("{:.2}", x.incremental_seconds),
                            format!("{:.2}", x.restore_seconds),
                            x.repo_bytes.to_string(),
                            x.restore_matches.to_string(),
                        ])
                        .collect::<Vec<_>>()
                )
            );
            println!(
                "disk write limit here: {:.2} GB/s buffered+fsync, {:.2} GB/s direct",
                r.disk_write_bytes_per_s / 1e9,
                r.disk_write_direct_bytes_per_s / 1e9
            );
        }
    }
    if r.results.iter().any(|x| !x.restore_matches) {
        anyhow::bail!("a restored image did not match its source");
    }
    Ok(())
}
