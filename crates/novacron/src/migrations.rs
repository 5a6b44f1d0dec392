//! `novacron vm migrate`, `novacron migration list|show|cancel`, `novacron node evacuate`.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use novacron_api_types::format_size;
use novacron_api_types::migration::{
    EvacuateRequest, MigrateRequest, Migration, MigrationMode, MigrationState,
};
use novacron_client::Client;

use crate::cli::{client, is_tty};
use crate::output::{self, Format, ago};

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The VM to move.
    pub name: String,
    /// Destination node (default: the node with the most free memory that can take the VM).
    #[arg(long)]
    pub to: Option<String>,
    /// Longest acceptable pause of the guest, e.g. 300ms; refused when the link cannot pause
    /// it for that little (default: 300ms, raised to what the link allows).
    #[arg(long)]
    pub max_downtime: Option<String>,
    /// Cap on the link rate this migration uses, e.g. 50mbit.
    #[arg(long)]
    pub bandwidth: Option<String>,
    /// Stop the VM first and copy it stopped (no convergence; the pause is the whole copy).
    #[arg(long)]
    pub offline: bool,
    /// Give up (the VM stays on the source) when not switched over by then, e.g. 10m.
    #[arg(long)]
    pub deadline: Option<String>,
    /// auto (pre-copy, throttling a guest that outruns the link, then post-copy when throttling
    /// cannot meet --max-downtime), precopy (never post-copy), or postcopy (one pre-copy pass,
    /// then post-copy; refused when the destination cannot take it).
    #[arg(long, default_value = "auto")]
    pub mode: MigrationMode,
    /// Return at once with the migration instead of following it.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Subcommand, Debug)]
pub enum MigrationCommand {
    /// Migrations, newest first.
    List,
    /// One migration with its progress.
    Show {
        /// The migration's id.
        id: String,
    },
    /// Abort a migration before its switch-over (the VM keeps running where it was).
    Cancel {
        /// The migration's id.
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct EvacuateArgs {
    /// The node to empty.
    pub node: String,
    /// Move every VM to this node (default: each to the node with the most free memory).
    #[arg(long)]
    pub to: Option<String>,
    /// Migrations at once (default: planned, 2).
    #[arg(long)]
    pub parallel: Option<u32>,
    /// Longest acceptable pause of each guest, e.g. 300ms; refused when the link cannot pause
    /// it for that little (default: 300ms, raised to what the link allows).
    #[arg(long)]
    pub max_downtime: Option<String>,
    /// Cap on the link rate of each migration, e.g. 50mbit.
    #[arg(long)]
    pub bandwidth: Option<String>,
    /// Print the plan and move nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn millis(s: &str, what: &str) -> anyhow::Result<u64> {
    let d = novacron_wanem::parse::duration(s).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok(d.as_millis() as u64)
}

fn rate(s: &Option<String>) -> anyhow::Result<Option<u64>> {
    s.as_deref()
        .map(|r| {
            novacron_wanem::parse::rate_bps(r).map_err(|e| anyhow::anyhow!("--bandwidth: {e}"))
        })
        .transpose()
}

const HEADERS: [&str; 8] = ["ID", "VM", "FROM", "TO", "STATE", "PHASE", "SENT", "AGE"];

fn rows(ms: &[Migration]) -> Vec<Vec<String>> {
    ms.iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.vm.clone(),
                m.source.clone(),
                m.destination.clone(),
                m.state.to_string(),
                m.progress.phase.clone(),
                format_size(m.progress.bytes_sent),
                ago(m.created_at),
            ]
        })
        .collect()
}

fn details(out: Format, m: &Migration) -> anyhow::Result<()> {
    output::print_details(out, m, || {
        let p = &m.progress;
        let mut v = vec![
            ("id", m.id.clone()),
            ("vm", m.vm.clone()),
            ("from", m.source.clone()),
            ("to", m.destination.clone()),
            ("state", m.state.to_string()),
            ("phase", p.phase.clone()),
            ("message", m.message.clone()),
            ("elapsed", format!("{:.1} s", p.elapsed_ms as f64 / 1000.0)),
            ("sent", format_size(p.bytes_sent)),
            ("payload", format_size(p.payload_bytes)),
            ("disk payload", format_size(p.disk_payload_bytes)),
            ("max downtime", max_downtime_line(m)),
        ];
        if let Some(f) = p.pause_floor_ms {
            v.push((
                "pause floor",
                format!(
                    "{f} ms (the shortest pause this link allows: round trips, drain, device state)"
                ),
            ));
        }
        if let Some(d) = p.downtime_ms {
            v.push((
                "downtime",
                match p.downtime_bound_ms {
                    Some(b) => format!(
                        "{d} ms (source STOP to destination RESUME, clocks compared to ±{b:.1} ms)"
                    ),
                    None => format!("{d} ms (source STOP to destination RESUME)"),
                },
            ));
        }
        if let Some(d) = p.source_downtime_ms {
            v.push((
                "source downtime",
                format!("{d} ms (QEMU's figure: stop to its last byte written)"),
            ));
        }
        if p.throttle_percent > 0 {
            v.push((
                "throttle",
                format!("{} % (auto-converge)", p.throttle_percent),
            ));
        }
        if let Some(t) = p.postcopy_switch_ms {
            v.push((
                "post-copy switch",
                format!(
                    "at {:.1} s ({})",
                    t as f64 / 1000.0,
                    p.postcopy_reason.as_deref().unwrap_or("no reason recorded")
                ),
            ));
            let latency = match (p.fault_latency_p50_ms, p.fault_latency_p99_ms) {
                (Some(a), Some(b)) => format!(", latency p50 {a:.1} ms, p99 {b:.1} ms"),
                _ => String::new(),
            };
            v.push((
                "faults served",
                format!("{} (destination page requests{latency})", p.faults_served),
            ));
        }
        v.push(("operation", m.operation.clone()));
        v
    })
}

fn max_downtime_line(m: &Migration) -> String {
    match m.progress.raised_max_downtime_ms {
        Some(r) => format!(
            "{r} ms (the default {} ms, raised: the link cannot pause the guest for that little)",
            m.max_downtime_ms
        ),
        None if m.max_downtime_default => format!("{} ms (default)", m.max_downtime_ms),
        None => format!("{} ms", m.max_downtime_ms),
    }
}

/// One status line of a running migration.
fn progress_line(m: &Migration) -> String {
    let p = &m.progress;
    let mut s = format!(
        "{}: {}  sent {}  payload {}  {:.1} Mbit/s",
        m.vm,
        if p.phase.is_empty() {
            m.state.as_str()
        } else {
            &p.phase
        },
        format_size(p.bytes_sent),
        format_size(p.payload_bytes),
        p.rate_bps / 1e6
    );
    if p.dirty_rate_bytes_per_sec > 0 {
        s += &format!("  dirty {}/s", format_size(p.dirty_rate_bytes_per_sec));
    }
    if p.disk_remaining_bytes > 0 {
        s += &format!("  disk left {}", format_size(p.disk_remaining_bytes));
    }
    match (p.downtime_ms, p.predicted_downtime_ms) {
        (Some(d), _) => s += &format!("  downtime {d} ms"),
        (None, Some(d)) => s += &format!("  downtime ~{d} ms"),
        (None, None) => {}
    }
    if let Some(r) = p.raised_max_downtime_ms {
        s += &format!("  limit raised to {r} ms");
    }
    if let Some(eta) = p.eta_seconds {
        s += &format!("  ETA {eta:.0} s");
    }
    if p.throttle_percent > 0 {
        s += &format!("  throttled {} %", p.throttle_percent);
    }
    s
}

/// Follows a migration until it ends, showing progress on stderr. `Ok(None)`: detached (Ctrl-C).
async fn follow(c: &Client, id: &str) -> anyhow::Result<Option<Migration>> {
    let tty = is_tty(2);
    let mut last_phase = String::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let m = c.migration_get(id).await?;
        let committed_and_done = m.state == MigrationState::Committed
            && c.operation_get(&m.operation)
                .await
                .map(|o| o.is_done())
                .unwrap_or(false);
        if m.state.is_done() || committed_and_done {
            if tty {
                eprint!("\r\x1b[2K");
            }
            return Ok(Some(m));
        }
        if tty {
            let mut line = progress_line(&m);
            line.truncate(160);
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else if m.progress.phase != last_phase {
            eprintln!("{}", progress_line(&m));
            last_phase = m.progress.phase.clone();
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut ctrl_c => {
                if tty {
                    eprint!("\r\x1b[2K");
                }
                eprintln!("detached; the migration goes on: `novacron migration show {id}`, `novacron migration cancel {id}`");
                return Ok(None);
            }
        }
    }
}

fn result(out: Format, m: &Migration) -> anyhow::Result<()> {
    details(out, m)?;
    match m.state {
        MigrationState::Failed | MigrationState::Cancelled => {
            bail!("migration {} {}: {}", m.id, m.state, m.message)
        }
        _ => Ok(()),
    }
}

/// `--max-downtime`, when given (omitted, the control plane's default applies and may be
/// raised to what the link allows).
fn max_downtime(v: &Option<String>) -> anyhow::Result<Option<u64>> {
    v.as_deref()
        .map(|s| millis(s, "--max-downtime"))
        .transpose()
}

pub async fn vm_migrate(a: MigrateArgs, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let req = MigrateRequest {
        to: a.to.clone(),
        max_downtime_ms: max_downtime(&a.max_downtime)?,
        bandwidth_bps: rate(&a.bandwidth)?,
        offline: a.offline,
        deadline_seconds: a
            .deadline
            .as_deref()
            .map(|d| millis(d, "--deadline").map(|ms| ms.div_ceil(1000)))
            .transpose()?,
        mode: Some(a.mode),
    };
    if let Some(why) = a.mode.unsupported_reason() {
        bail!("{why}");
    }
    let m = c.vm_migrate(&a.name, &req).await?;
    if a.no_wait {
        return details(out, &m);
    }
    if is_tty(2) {
        eprintln!(
            "migrating {} from {} to {} ({}); Ctrl-C detaches",
            m.vm, m.source, m.destination, m.id
        );
    }
    match follow(&c, &m.id).await? {
        Some(done) => result(out, &done),
        None => details(out, &c.migration_get(&m.id).await?),
    }
}

pub async fn migration(cmd: MigrationCommand, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    match cmd {
        MigrationCommand::List => {
            let ms = c.migration_list().await?;
            output::print(out, &ms, &HEADERS, || rows(&ms))
        }
        MigrationCommand::Show { id } => details(out, &c.migration_get(&id).await?),
        MigrationCommand::Cancel { id } => {
            let m = c.migration_cancel(&id).await?;
            details(out, &m)
        }
    }
}

pub async fn evacuate(a: EvacuateArgs, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let plan = c
        .evacuation_plan(&EvacuateRequest {
            node: a.node.clone(),
            to: a.to.clone(),
            parallel: a.parallel,
            max_downtime_ms: max_downtime(&a.max_downtime)?,
            bandwidth_bps: rate(&a.bandwidth)?,
        })
        .await?;
    if a.dry_run {
        return output::print(out, &plan, &["ORDER", "VM", "TO", "WHY"], || {
            plan.steps
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    vec![
                        (i + 1).to_string(),
                        s.vm.clone(),
                        s.destination.clone(),
                        s.reason.clone(),
                    ]
                })
                .collect()
        });
    }
    // No new VM lands on the node while it empties.
    c.node_action(&a.node, "cordon")
        .await
        .context("cordoning the node first")?;
    eprintln!(
        "evacuating {}: {} VM(s), {} at a time",
        plan.node,
        plan.steps.len(),
        plan.parallel
    );
    let mut pending = plan.steps.iter();
    let mut running: Vec<Migration> = vec![];
    let mut finished: Vec<Migration> = vec![];
    let mut failures = 0usize;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        while running.len() < plan.parallel as usize {
            let Some(step) = pending.next() else { break };
            let req = MigrateRequest {
                to: Some(step.destination.clone()),
                max_downtime_ms: max_downtime(&a.max_downtime)?,
                bandwidth_bps: rate(&a.bandwidth)?,
                offline: false,
                deadline_seconds: None,
                mode: None,
            };
            match c.vm_migrate(&step.vm, &req).await {
                Ok(m) => {
                    eprintln!("{}: moving to {} ({})", m.vm, m.destination, m.id);
                    running.push(m);
                }
                Err(e) => {
                    eprintln!("{}: not moved: {e}", step.vm);
                    failures += 1;
                }
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut ctrl_c => {
                eprintln!("detached; running migrations go on, no new ones start: `novacron migration list`");
                return Ok(());
            }
        }
        let mut still = vec![];
        for m in running {
            let now = c.migration_get(&m.id).await?;
            let op_done = now.state == MigrationState::Committed
                && c.operation_get(&now.operation)
                    .await
                    .map(|o| o.is_done())
                    .unwrap_or(false);
            if now.state.is_done() || op_done {
                match now.state {
                    MigrationState::Failed | MigrationState::Cancelled => {
                        failures += 1;
                        eprintln!("{}: {} ({})", now.vm, now.state, now.message);
                    }
                    _ => eprintln!("{}: now on {}", now.vm, now.destination),
                }
                finished.push(now);
            } else {
                still.push(now);
            }
        }
        running = still;
    }
    output::print(out, &finished, &HEADERS, || rows(&finished))?;
    if failures > 0 {
        bail!("{failures} VM(s) were not moved off {}", a.node);
    }
    Ok(())
}
