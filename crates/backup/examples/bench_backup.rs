//! Stand-in for `novacron bench backup --size 4G -o json` until the CLI wires it:
//! `cargo run --release -p novacron-backup --example bench_backup -- --size 4G --runs 3 --work-dir /work/scratch/backup`.

use std::path::PathBuf;

use novacron_backup::bench::{BackupBenchConfig, System, run};

fn parse_size(s: &str) -> Option<u64> {
    let (n, m) = match s.chars().last()? {
        'G' | 'g' => (&s[..s.len() - 1], 1u64 << 30),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        _ => (s, 1),
    };
    Some(n.parse::<u64>().ok()? * m)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut size = 4u64 << 30;
    let mut runs = 1;
    let mut work = PathBuf::from("/var/tmp");
    let mut chunk = None;
    let mut level = None;
    let mut systems = None;
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--size" => size = parse_size(&v).unwrap_or_else(|| die("bad --size")),
            "--runs" => runs = v.parse().unwrap_or_else(|_| die("bad --runs")),
            "--work-dir" => work = PathBuf::from(v),
            "--chunk-size" => {
                chunk = Some(parse_size(&v).unwrap_or_else(|| die("bad --chunk-size")))
            }
            "--zstd-level" => level = Some(v.parse().unwrap_or_else(|_| die("bad --zstd-level"))),
            "--systems" => {
                systems = Some(
                    v.split(',')
                        .map(|s| match s {
                            "novacron" => System::Novacron,
                            "restic" => System::Restic,
                            "borg" => System::Borg,
                            _ => die("bad --systems"),
                        })
                        .collect(),
                )
            }
            "-o" => {}
            a => die(&format!("unknown argument {a}")),
        }
        i += 2;
    }
    let mut cfg = BackupBenchConfig::new(size, work);
    cfg.runs = runs;
    if let Some(l) = level {
        cfg.zstd_level = l;
    }
    if let Some(s) = systems {
        cfg.systems = s;
    }
    if let Some(c) = chunk {
        cfg.chunk_size_bytes = c;
    }
    match run(&cfg).await {
        Ok(r) => println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()),
        Err(e) => die(&e.to_string()),
    }
}

fn die(m: &str) -> ! {
    eprintln!("error: {m}");
    std::process::exit(1)
}
