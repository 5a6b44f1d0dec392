//! Runs the transport benchmark until `novacron bench transport` is wired into the binary:
//! `cargo run --release -p novacron-bench --example transport -- --rate 100mbit --rtt 50ms --loss 0.1% --size 512M --corpus random [--dwcp-cc cubic] [--systems dwcp,tcp-bbr] [-o json]`

use std::time::Duration;

use novacron_bench::transport::{self, TransportBenchConfig};
use novacron_wanem::parse;

fn size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let (n, m) = match t.chars().last() {
        Some('G') => (&t[..t.len() - 1], 1u64 << 30),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('K') => (&t[..t.len() - 1], 1 << 10),
        _ => (t.as_str(), 1),
    };
    n.parse::<u64>()
        .map(|v| v * m)
        .map_err(|_| format!("invalid size {s:?}: use e.g. 512M"))
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = TransportBenchConfig::default();
    let mut json = false;
    let mut i = 0;
    let r = (|| -> Result<(), String> {
        while i < args.len() {
            let v = args.get(i + 1).cloned().unwrap_or_default();
            match args[i].as_str() {
                "--rate" => cfg.rate_bps = parse::rate_bps(&v).map_err(|e| e.to_string())?,
                "--rtt" => cfg.rtt = parse::duration(&v).map_err(|e| e.to_string())?,
                "--loss" => cfg.loss = parse::loss(&v).map_err(|e| e.to_string())?,
                "--jitter" => cfg.jitter = parse::duration(&v).map_err(|e| e.to_string())?,
                "--queue-ms" => {
                    cfg.queue = Duration::from_millis(v.parse().map_err(|_| "bad --queue-ms")?)
                }
                "--size" => cfg.size_bytes = size(&v)?,
                "--corpus" => {
                    cfg.corpus = v
                        .parse()
                        .map_err(|e: novacron_bench::corpus::CorpusError| e.to_string())?
                }
                "--dwcp-cc" => cfg.dwcp_cc = if v == "bbr" { None } else { Some(v) },
                "--parallel" => cfg.parallel_streams = v.parse().map_err(|_| "bad --parallel")?,
                "--systems" => cfg.systems = v.split(',').map(str::to_string).collect(),
                "--limit" => cfg.baseline_limit = parse::duration(&v).map_err(|e| e.to_string())?,
                "--cache" => cfg.cache_dir = v.into(),
                "-o" => {
                    json = v == "json";
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
            i += 2;
        }
        Ok(())
    })();
    if let Err(e) = r {
        eprintln!("transport bench: {e}");
        std::process::exit(2);
    }
    match transport::run(&cfg) {
        Ok(rep) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&rep).unwrap_or_default());
            } else {
                print!("{}", transport::render_table(&rep));
            }
        }
        Err(e) => {
            eprintln!("transport bench: {e}");
            std::process::exit(1);
        }
    }
}
