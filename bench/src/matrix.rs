//! `novacron bench migration --matrix`: the migration benchmark over a grid of links and
//! workloads. Each cell is one [`migration::run`]: every system on a fresh guest with the same
//! contents, one after the other, plus the guest's information floor; the cell then says which
//! of issue 11's targets it met.

use std::time::Duration;

use serde::Serialize;

use crate::floor::Floor;
use crate::migration::{self, MigrationBenchConfig, MigrationBenchError, MigrationResult};

/// One emulated link of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub rate_bps: u64,
    pub rtt: Duration,
    /// Random loss per direction, 0..1.
    pub loss: f64,
}

/// The grid's links: a fast one, the published scenario, and a thin long lossy one.
pub fn default_links() -> Vec<Link> {
    let ms = Duration::from_millis;
    vec![
        Link {
            rate_bps: 1_000_000_000,
            rtt: ms(10),
            loss: 0.0,
        },
        Link {
            rate_bps: 100_000_000,
            rtt: ms(50),
            loss: 0.001,
        },
        Link {
            rate_bps: 20_000_000,
            rtt: ms(120),
            loss: 0.005,
        },
    ]
}

/// The grid's workloads (tools/guest-workload; see `WorkloadConfig::scaled`).
pub const DEFAULT_WORKLOADS: &[&str] = &[
    "idle",
    "hotset",
    "dirty:8MiB",
    "mixed",
    "pagecache",
    "random",
    "bursty",
];

/// Parses `RATE/RTT/LOSS`, e.g. `100mbit/50ms/0.1%` (the loss may be left out).
pub fn parse_link(s: &str) -> Result<Link, String> {
    let parts: Vec<&str> = s.trim().split('/').collect();
    let bad =
        |what: &str| format!("link {s:?}: {what}; write RATE/RTT[/LOSS], e.g. 100mbit/50ms/0.1%");
    if !(2..=3).contains(&parts.len()) {
        return Err(bad("expected two or three parts"));
    }
    let rate_bps = novacron_wanem::parse::rate_bps(parts[0]).map_err(|e| bad(&e.to_string()))?;
    let rtt = novacron_wanem::parse::duration(parts[1]).map_err(|e| bad(&e.to_string()))?;
    let loss = match parts.get(2) {
        Some(l) => novacron_wanem::parse::loss(l).map_err(|e| bad(&e.to_string()))?,
        None => 0.0,
    };
    if rate_bps == 0 {
        return Err(bad("the rate must be above zero"));
    }
    Ok(Link {
        rate_bps,
        rtt,
        loss,
    })
}

/// A cell's link, as the JSON contract spells it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CellLink {
    pub rate_bps: u64,
    pub rtt_ms: f64,
    pub loss_percent: f64,
}

/// Which of issue 11's targets NovaCron met in a cell (`null` fields: not decidable, e.g. no
/// floor or no QEMU configuration completed).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CellTargets {
    pub novacron_completed: bool,
    /// NovaCron's wire bytes over the floor (target ≤ 1.3).
    pub wire_over_floor: Option<f64>,
    /// The QEMU configuration that completed fastest.
    pub best_qemu: Option<String>,
    /// NovaCron's total time over the best QEMU's (target ≤ 0.5).
    pub time_over_best_qemu: Option<f64>,
    /// The time target in force: 0.5 × the best QEMU's total, or 1.2 × (floor ÷ link rate) +
    /// 3 s where the floor makes that impossible (or no QEMU configuration completed).
    pub time_target_seconds: Option<f64>,
    /// NovaCron's real pause (STOP → RESUME) over the best QEMU's real pause (target ≤ 0.5).
    pub pause_over_best_qemu: Option<f64>,
    /// NovaCron's real pause against `--max-downtime` (the target).
    pub pause_within_max_downtime: Option<bool>,
    /// The limit NovaCron held itself to: `--max-downtime`, or what it raised that to on a
    /// link whose round trips and drain alone take most of it (see `vm migrate`).
    pub pause_limit_ms: Option<u64>,
    /// NovaCron's real pause against that limit: whether it kept its own word, apart from
    /// whether the link let it meet the target.
    pub pause_within_limit: Option<bool>,
    /// Every decidable target met.
    pub met: bool,
}

/// One link × workload.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub link: CellLink,
    pub workload: String,
    pub floor_bytes: Option<u64>,
    pub results: Vec<MigrationResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<Floor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_note: Option<String>,
    /// The cell could not run (the guest did not boot, the link could not be built, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub targets: CellTargets,
}

/// The whole grid.
#[derive(Clone, Debug, Serialize)]
pub struct MatrixReport {
    pub memory_mib: u64,
    pub max_downtime_ms: u64,
    pub limit_seconds: f64,
    pub baseline_cc: String,
    pub cells: Vec<Cell>,
}

/// Judges a cell's results against the targets.
pub fn targets(
    results: &[MigrationResult],
    floor_bytes: Option<u64>,
    rate_bps: u64,
    max_downtime_ms: u64,
) -> CellTargets {
    let nc = results
        .iter()
        .find(|r| r.system == "novacron" && r.completed);
    let best = results
        .iter()
        .filter(|r| r.system != "novacron" && r.completed)
        .min_by(|a, b| a.total_seconds.total_cmp(&b.total_seconds));
    let best_pause = results
        .iter()
        .filter(|r| r.system != "novacron" && r.completed)
        .filter_map(|r| r.downtime_ms)
        .min_by(f64::total_cmp);
    let floor_seconds = floor_bytes.map(|f| f as f64 * 8.0 / rate_bps as f64);
    let time_target_seconds = match (best, floor_seconds) {
        (Some(b), Some(f)) if 0.5 * b.total_seconds >= f => Some(0.5 * b.total_seconds),
        (Some(b), None) => Some(0.5 * b.total_seconds),
        (_, Some(f)) => Some(1.2 * f + 3.0),
        (None, None) => None,
    };
    let wire_over_floor = match (nc, floor_bytes) {
        (Some(n), Some(f)) if f > 0 => Some(n.wire_bytes as f64 / f as f64),
        _ => None,
    };
    let time_over_best_qemu = match (nc, best) {
        (Some(n), Some(b)) if b.total_seconds > 0.0 => Some(n.total_seconds / b.total_seconds),
        _ => None,
    };
    let pause = nc.and_then(|n| n.downtime_ms);
    let pause_over_best_qemu = match (pause, best_pause) {
        (Some(p), Some(b)) if b > 0.0 => Some(p / b),
        _ => None,
    };
    let pause_within_max_downtime = pause.map(|p| p <= max_downtime_ms as f64);
    let pause_limit_ms = nc.and_then(|n| n.pause_limit_ms);
    let pause_within_limit = pause.zip(pause_limit_ms).map(|(p, l)| p <= l as f64);
    let met = nc.is_some()
        && wire_over_floor.is_none_or(|w| w <= 1.3)
        && match (nc, time_target_seconds) {
            (Some(n), Some(t)) => n.total_seconds <= t,
            _ => true,
        }
        && pause_over_best_qemu.is_none_or(|p| p <= 0.5)
        && pause_within_max_downtime.unwrap_or(false);
    CellTargets {
        novacron_completed: nc.is_some(),
        wire_over_floor,
        best_qemu: best.map(|b| b.system.clone()),
        time_over_best_qemu,
        time_target_seconds,
        pause_over_best_qemu,
        pause_within_max_downtime,
        pause_limit_ms,
        pause_within_limit,
        met,
    }
}

/// Runs every link × workload with `base`'s other settings. A cell that cannot run is
/// reported with its error and the grid goes on; Ctrl-C ends it. `on_cell` sees each cell
/// when it is done (number, count, cell).
pub fn run(
    base: &MigrationBenchConfig,
    links: &[Link],
    workloads: &[String],
    on_cell: &mut dyn FnMut(usize, usize, &Cell),
) -> Result<MatrixReport, MigrationBenchError> {
    for w in workloads {
        novacron_migrate::testing::check_workload(w)
            .map_err(|e| MigrationBenchError::Config(format!("--workloads: {e}")))?;
    }
    if links.is_empty() || workloads.is_empty() {
        return Err(MigrationBenchError::Config(
            "the matrix needs at least one link and one workload".into(),
        ));
    }
    let count = links.len() * workloads.len();
    let mut cells = Vec::with_capacity(count);
    for link in links {
        for workload in workloads {
            let cfg = MigrationBenchConfig {
                rate_bps: link.rate_bps,
                rtt: link.rtt,
                loss: link.loss,
                workload: workload.clone(),
                ..base.clone()
            };
            let cell_link = CellLink {
                rate_bps: link.rate_bps,
                rtt_ms: link.rtt.as_secs_f64() * 1000.0,
                loss_percent: link.loss * 100.0,
            };
            let max_ms = base.max_downtime.as_millis() as u64;
            let cell = match migration::run(&cfg) {
                Ok(r) => Cell {
                    link: cell_link,
                    workload: workload.clone(),
                    floor_bytes: r.floor_bytes,
                    targets: targets(&r.results, r.floor_bytes, link.rate_bps, max_ms),
                    results: r.results,
                    floor: r.floor,
                    floor_note: r.floor_note,
                    error: None,
                },
                Err(MigrationBenchError::Interrupted) => {
                    return Err(MigrationBenchError::Interrupted);
                }
                Err(e) => Cell {
                    link: cell_link,
                    workload: workload.clone(),
                    floor_bytes: None,
                    targets: targets(&[], None, link.rate_bps, max_ms),
                    results: Vec::new(),
                    floor: None,
                    floor_note: None,
                    error: Some(e.to_string()),
                },
            };
            on_cell(cells.len() + 1, count, &cell);
            cells.push(cell);
        }
    }
    Ok(MatrixReport {
        memory_mib: base.memory_mib,
        max_downtime_ms: base.max_downtime.as_millis() as u64,
        limit_seconds: base.limit.as_secs_f64(),
        baseline_cc: base.cc.clone(),
        cells,
    })
}

fn yes_no(v: Option<bool>) -> &'static str {
    v.map(|b| if b { "yes" } else { "no" }).unwrap_or("-")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// One line per system of a cell, and the cell's verdict.
/// One cell as text; `max_downtime_ms` is the grid's `--max-downtime`.
pub fn render_cell(c: &Cell, max_downtime_ms: u64) -> String {
    let mut s = format!(
        "{:.0} Mbit/s, {:.0} ms, {:.2} % loss, {}: floor {}\n",
        c.link.rate_bps as f64 / 1e6,
        c.link.rtt_ms,
        c.link.loss_percent,
        c.workload,
        c.floor_bytes
            .map(|f| format!("{:.1} MB", f as f64 / 1e6))
            .unwrap_or_else(|| format!("- ({})", c.floor_note.as_deref().unwrap_or("none"))),
    );
    if let Some(e) = &c.error {
        s.push_str(&format!("  cell failed: {e}\n"));
    }
    for r in &c.results {
        s.push_str(&format!(
            "  {:<18} {:>9} {:>8} s {:>8} ms pause {:>8} ms in guest {:>9.1} MB{}\n",
            r.system,
            if r.completed { "completed" } else { "NOT DONE" },
            format!("{:.1}", r.total_seconds),
            opt(r.downtime_ms, 0),
            format!("{:.0}", r.guest_pause_ms),
            r.wire_bytes as f64 / 1e6,
            r.reason
                .as_ref()
                .map(|x| format!("  ({x})"))
                .unwrap_or_default(),
        ));
    }
    let t = &c.targets;
    s.push_str(&format!(
        "  targets: wire/floor {} (≤ 1.3), time/best QEMU {} (≤ 0.5; target {} s), pause/best \
         QEMU {} (≤ 0.5), pause within --max-downtime {}{}: {}\n",
        opt(t.wire_over_floor, 2),
        opt(t.time_over_best_qemu, 2),
        opt(t.time_target_seconds, 1),
        opt(t.pause_over_best_qemu, 2),
        yes_no(t.pause_within_max_downtime),
        match t.pause_limit_ms {
            Some(l) if l != max_downtime_ms => format!(
                " (raised for the link to {l} ms: within it {})",
                yes_no(t.pause_within_limit)
            ),
            _ => String::new(),
        },
        if t.met { "met" } else { "NOT met" },
    ));
    s
}

/// The grid as text.
pub fn render_table(r: &MatrixReport) -> String {
    let mut s = format!(
        "guest {} MiB, --max-downtime {} ms, limit {:.0} s per migration, QEMU baselines with {}\n",
        r.memory_mib, r.max_downtime_ms, r.limit_seconds, r.baseline_cc
    );
    for c in &r.cells {
        s.push_str(&render_cell(c, r.max_downtime_ms));
    }
    let met = r.cells.iter().filter(|c| c.targets.met).count();
    s.push_str(&format!(
        "{met} of {} cells met every target\n",
        r.cells.len()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(system: &str, completed: bool, total: f64, pause: f64, wire: u64) -> MigrationResult {
        MigrationResult {
            system: system.into(),
            total_seconds: total,
            downtime_ms: completed.then_some(pause),
            source_downtime_ms: None,
            guest_pause_ms: pause,
            guest_gap_ms: pause,
            wire_bytes: wire,
            cpu_seconds: 0.0,
            integrity: "ok".into(),
            completed,
            reason: (!completed).then(|| "did not converge".into()),
            migration_cpu_seconds: 0.0,
            wire_bytes_a_to_b: wire,
            wire_bytes_b_to_a: 0,
            congestion: "bbr".into(),
            pause_limit_ms: completed.then_some(300),
            note: None,
        }
    }

    #[test]
    fn links_parse_and_bad_ones_say_how_to_write_them() {
        assert_eq!(
            parse_link("20mbit/120ms/0.5%").unwrap(),
            Link {
                rate_bps: 20_000_000,
                rtt: Duration::from_millis(120),
                loss: 0.005
            }
        );
        assert_eq!(parse_link("1gbit/10ms").unwrap().loss, 0.0);
        for bad in ["", "100mbit", "x/50ms", "100mbit/50ms/1%/2", "0mbit/5ms"] {
            let e = parse_link(bad).unwrap_err();
            assert!(e.contains("RATE/RTT"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_cell_is_judged_against_the_best_qemu_that_completed_and_the_floor() {
        // 100 Mbit/s; floor 100 MB = 8 s of link.
        let rs = vec![
            result("novacron", true, 10.0, 200.0, 120_000_000),
            result("qemu-default", false, 600.0, 0.0, 900_000_000),
            result("qemu-xbzrle", true, 40.0, 500.0, 700_000_000),
            result("qemu-multifd-zstd", true, 30.0, 900.0, 600_000_000),
        ];
        let t = targets(&rs, Some(100_000_000), 100_000_000, 300);
        assert_eq!(t.best_qemu.as_deref(), Some("qemu-multifd-zstd"));
        assert_eq!(t.wire_over_floor, Some(1.2));
        assert_eq!(t.time_target_seconds, Some(15.0));
        assert_eq!(t.pause_over_best_qemu, Some(0.4));
        assert!(t.met, "{t:?}");
        // Too many bytes: not met.
        let mut heavy = rs.clone();
        heavy[0].wire_bytes = 140_000_000;
        assert!(!targets(&heavy, Some(100_000_000), 100_000_000, 300).met);
        // The floor makes half the best QEMU impossible: 1.2 × 8 s + 3 s applies.
        let mut fast = rs.clone();
        fast[3].total_seconds = 12.0;
        let t = targets(&fast, Some(100_000_000), 100_000_000, 300);
        assert!(
            (t.time_target_seconds.unwrap() - 12.6).abs() < 1e-9,
            "{t:?}"
        );
        assert_eq!(
            (
                t.pause_limit_ms,
                t.pause_within_limit,
                t.pause_within_max_downtime
            ),
            (Some(300), Some(true), Some(true))
        );
        // A limit raised for the link: the pause is judged against both, the target is
        // --max-downtime's.
        let mut raised = rs.clone();
        raised[0].downtime_ms = Some(450.0);
        raised[0].pause_limit_ms = Some(600);
        let t = targets(&raised, Some(100_000_000), 100_000_000, 300);
        assert_eq!(
            (
                t.pause_limit_ms,
                t.pause_within_limit,
                t.pause_within_max_downtime
            ),
            (Some(600), Some(true), Some(false))
        );
        assert!(!t.met);
        raised[0].downtime_ms = Some(650.0);
        let t = targets(&raised, Some(100_000_000), 100_000_000, 300);
        assert_eq!(t.pause_within_limit, Some(false));
        // NovaCron not completing fails the cell whatever else happened.
        let mut failed = rs;
        failed[0] = result("novacron", false, 600.0, 0.0, 1);
        let t = targets(&failed, Some(100_000_000), 100_000_000, 300);
        assert!(!t.novacron_completed && !t.met);
    }
}
