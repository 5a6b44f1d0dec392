//! Durable transaction throughput of a store: small (1 KiB) single-put transactions from
//! one client (the baseline: one fsync per transaction) and from many concurrent clients
//! (group commit), measured in the same run.
//!
//! ```text
//! cargo run --release -p novacron-store --example store_bench -- \
//!     [--store sqlite:///tmp/bench.db | --store etcd://127.0.0.1:2379] \
//!     [--clients 64] [--seconds 5] [--value-bytes 1024]
//! ```
//! Without `--store`, a fresh SQLite database in a temporary directory is used and removed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use novacron_store::{Store, StoreError, open_store, parse_store_url};

struct Args {
    store: Option<String>,
    clients: usize,
    seconds: u64,
    value_bytes: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        store: None,
        clients: 64,
        seconds: 5,
        value_bytes: 1024,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => args.store = Some(value()?),
            "--clients" => {
                args.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?
            }
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--value-bytes" => {
                args.value_bytes = value()?
                    .parse()
                    .map_err(|e| format!("--value-bytes: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.clients == 0 || args.seconds == 0 || args.seconds > 600 {
        return Err("--clients must be > 0 and --seconds within 1..=600".to_string());
    }
    Ok(args)
}

/// Run `clients` writers for `run_for`; returns (transactions, elapsed).
async fn measure(
    store: &Arc<dyn Store>,
    label: &str,
    clients: usize,
    run_for: Duration,
    value_bytes: usize,
) -> Result<(u64, Duration), StoreError> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let store = Arc::clone(store);
            let label = label.to_string();
            tokio::spawn(async move {
                let value = vec![b'v'; value_bytes];
                let mut done = 0u64;
                while started.elapsed() < run_for {
                    let key = format!("/bench/{label}/{c}/{}", done % 256);
                    store.put(&key, value.clone()).await?;
                    done += 1;
                }
                Ok::<u64, StoreError>(done)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t
            .await
            .map_err(|e| StoreError::Unavailable(format!("bench task failed: {e}")))??;
    }
    Ok((total, started.elapsed()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().map_err(|e| {
        format!(
            "{e}\nusage: store_bench [--store URL] [--clients N] [--seconds S] [--value-bytes B]"
        )
    })?;
    let tmp = tempfile::tempdir()?;
    let url = match &args.store {
        Some(s) => parse_store_url(s)?,
        None => parse_store_url(&format!(
            "sqlite://{}",
            tmp.path().join("bench.db").display()
        ))?,
    };
    let store = open_store(&url).await?;
    let run_for = Duration::from_secs(args.seconds);
    let mut results = Vec::new();
    for (label, clients) in [("baseline-1-client", 1), ("concurrent", args.clients)] {
        let (txns, elapsed) = measure(&store, label, clients, run_for, args.value_bytes).await?;
        let rate = txns as f64 / elapsed.as_secs_f64();
        println!(
            "{url} {label}: clients={clients} value_bytes={} txns={txns} seconds={:.2} txns_per_s={rate:.0}",
            args.value_bytes,
            elapsed.as_secs_f64()
        );
        results.push(format!(
            "{{\"run\":\"{label}\",\"clients\":{clients},\"txns\":{txns},\"seconds\":{:.3},\"txns_per_s\":{rate:.1}}}",
            elapsed.as_secs_f64()
        ));
    }
    println!(
        "{{\"store\":\"{url}\",\"value_bytes\":{},\"results\":[{}]}}",
        args.value_bytes,
        results.join(",")
    );
    // Leave nothing behind in a store the caller named.
    if args.store.is_some() {
        store
            .txn(
                vec![],
                vec![novacron_store::Op::DeletePrefix {
                    prefix: "/bench/".to_string(),
                }],
            )
            .await?;
    }
    Ok(())
}
