//! Runs the scheduler benchmark: `cargo run --release -p novacron-sched --example bench --
//! --hosts 100000 --vms 10000000 --seed 1 [--trace FILE] [-o json]`.

use novacron_sched::bench::{BenchConfig, BenchOptions, Trace, run_with};
use std::io::BufReader;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = BenchConfig {
        hosts: 100_000,
        vms: 10_000_000,
        seed: 1,
        trace: None,
    };
    let mut json = false;
    let mut opts = BenchOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--hosts" => cfg.hosts = val()?.parse()?,
            "--vms" => cfg.vms = val()?.parse()?,
            "--seed" => cfg.seed = val()?.parse()?,
            "--trace" => {
                let path = val()?;
                let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
                cfg.trace = Some(Trace::from_reader(BufReader::new(f))?);
            }
            "-o" => json = val()? == "json",
            // Experiment knobs (defaults are what `novacron bench scheduler` runs).
            "--max-scored" => opts.scheduler.max_scored = val()?.parse()?,
            "--max-examined" => opts.scheduler.max_examined = val()?.parse()?,
            "--balance-weight" => opts.scheduler.weights.balance = val()?.parse()?,
            "--scarcity-weight" => opts.scheduler.weights.scarcity = val()?.parse()?,
            "--departure-share" => opts.fill_departure_share = val()?.parse()?,
            "--churn-share" => opts.churn_share = val()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let r = run_with(&cfg, &opts)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "placements/s {:.0} (decision only {:.0}, steady {:.0}); p50 {:.2} µs p99 {:.2} µs p99.9 {:.2} µs max {:.0} µs",
            r.placements_per_sec,
            r.decision_only_per_sec,
            r.steady_placements_per_sec,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.max_us
        );
        println!(
            "used-host utilisation cpu/mem/disk {:.3?}",
            r.used_host_utilisation
        );
        println!(
            "rebalance: {} moves, gain {:.5} of imbalance {:.5}, {:.1} ms; evacuation plan for {} VMs: {:.2} ms",
            r.rebalance_moves,
            r.rebalance_gain,
            r.imbalance_before,
            r.rebalance_ms,
            r.evacuation_vms,
            r.evacuation_ms
        );
        println!(
            "on-CPU: {:.1} s, {:.0} placements per CPU-second; mean examined {:.1} (steady {:.1})",
            r.cpu_seconds_placement,
            r.placements_per_cpu_sec,
            r.mean_hosts_examined,
            r.steady_mean_hosts_examined
        );
        println!(
            "hosts used {} vs FFD {} (ratio {:.4}, lower bound {}, FFD unplaced {}); vms {} placements {} departures {} no-fit {} {:?}; violations {}",
            r.hosts_used,
            r.ffd_hosts,
            r.ffd_ratio,
            r.lower_bound_hosts,
            r.ffd_unplaced,
            r.vms,
            r.placements,
            r.departures,
            r.no_fit,
            r.no_fit_by_binding,
            r.violations
        );
        println!(
            "peak RSS {:.0} MiB (after placement {:.0} MiB); {:.1} s placement, {:.1} s FFD, {:.1} s validate, {:.1} s total",
            r.peak_rss_bytes as f64 / 1048576.0,
            r.rss_after_placement_bytes as f64 / 1048576.0,
            r.seconds_placement,
            r.seconds_ffd,
            r.seconds_validate,
            r.seconds_total
        );
    }
    Ok(())
}
