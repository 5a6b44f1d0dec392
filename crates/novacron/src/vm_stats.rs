//! `novacron vm stats`: a VM's newest usage figures and their rates, from the control plane's
//! history; with `--watch`, refreshed every few seconds until Ctrl-C.

use std::time::Duration;

use clap::Args;
use novacron_api_types::format_size;
use novacron_api_types::stats::{VmMetrics, VmRates};
use novacron_api_types::tenancy::parse_duration_secs;

use crate::output::{self, Format};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The VM's name.
    pub name: String,
    /// Refresh every few seconds until Ctrl-C (with -o json: one JSON object a line).
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// With --watch: seconds between refreshes.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub every: u64,
    /// How far back the samples in -o json reach, e.g. 10m or 1h (the history keeps one hour).
    #[arg(long, default_value = "5m")]
    pub since: String,
}

pub async fn run(args: StatsArgs, out: Format) -> anyhow::Result<()> {
    let back = parse_duration_secs(&args.since).map_err(anyhow::Error::msg)?;
    let client = crate::cli::client()?;
    let since = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .saturating_sub(back)
    };
    if !args.watch {
        let m = client.vm_metrics(&args.name, Some(since())).await?;
        return print(&m, out, false);
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let clear = out == Format::Table && crate::cli::is_tty(1);
    loop {
        let m = client.vm_metrics(&args.name, Some(since())).await?;
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        print(&m, out, true)?;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.every)) => {}
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}

fn print(m: &VmMetrics, out: Format, watching: bool) -> anyhow::Result<()> {
    if out == Format::Json {
        if watching {
            println!("{}", serde_json::to_string(m)?);
        } else {
            println!("{}", serde_json::to_string_pretty(m)?);
        }
        return Ok(());
    }
    let Some(latest) = m.latest else {
        println!(
            "no usage samples for VM {} yet: its agent sends one every {} s while it runs",
            m.name, m.interval_seconds
        );
        return Ok(());
    };
    let age = output::ago(latest.at_ms / 1000);
    println!("VM {} on node {}, sampled {age}", m.name, m.node);
    print!(
        "{}",
        output::table(&["FIGURE", "TOTAL", "RATE"], &rows(m, &latest.usage))
    );
    if watching {
        println!();
    }
    Ok(())
}

fn rows(m: &VmMetrics, u: &novacron_api_types::stats::VmUsage) -> Vec<Vec<String>> {
    let r: Option<&VmRates> = m.rates.as_ref();
    let rate = |f: fn(&VmRates) -> f64, unit: &str| -> String {
        r.map(|r| format!("{:.1}{unit}", f(r)))
            .unwrap_or_else(|| "-".into())
    };
    let byte_rate = |f: fn(&VmRates) -> f64| -> String {
        r.map(|r| format!("{}/s", format_size(f(r).round() as u64)))
            .unwrap_or_else(|| "-".into())
    };
    let mut rows = vec![
        vec![
            "cpu time".into(),
            format!("{:.1}s", u.cpu_seconds),
            rate(|r| r.cpu_percent, "%"),
        ],
        vec!["memory (rss)".into(), format_size(u.rss_bytes), "".into()],
    ];
    if let Some(b) = u.balloon_actual_bytes {
        rows.push(vec!["balloon".into(), format_size(b), "".into()]);
    }
    rows.extend([
        vec![
            "disk read".into(),
            format_size(u.disk_read_bytes),
            byte_rate(|r| r.disk_read_bytes_per_second),
        ],
        vec![
            "disk write".into(),
            format_size(u.disk_write_bytes),
            byte_rate(|r| r.disk_write_bytes_per_second),
        ],
        vec![
            "disk read ops".into(),
            u.disk_read_ops.to_string(),
            rate(|r| r.disk_read_ops_per_second, "/s"),
        ],
        vec![
            "disk write ops".into(),
            u.disk_write_ops.to_string(),
            rate(|r| r.disk_write_ops_per_second, "/s"),
        ],
    ]);
    if let Some(n) = u.nic {
        let nic_rate = |v: Option<f64>| {
            v.map(|b| format!("{}/s", format_size(b.round() as u64)))
                .unwrap_or_else(|| "-".into())
        };
        rows.extend([
            vec![
                "net received".into(),
                format!("{} ({} packets)", format_size(n.rx_bytes), n.rx_packets),
                nic_rate(r.and_then(|r| r.nic_rx_bytes_per_second)),
            ],
            vec![
                "net sent".into(),
                format!("{} ({} packets)", format_size(n.tx_bytes), n.tx_packets),
                nic_rate(r.and_then(|r| r.nic_tx_bytes_per_second)),
            ],
        ]);
    }
    rows
}
