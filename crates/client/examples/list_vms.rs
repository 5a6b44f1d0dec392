//! Lists the VMs of a NovaCron cluster with the Rust client on its own.
//!
//! ```sh
//! NOVACRON_URL=https://127.0.0.1:9440 NOVACRON_TOKEN=<token> NOVACRON_CA_CERT=ca.pem \
//!     cargo run --example list_vms
//! ```
//!
//! `NOVACRON_CA_CERT` is the cluster CA in PEM (`GET /api/v1/cluster/ca`, or `ca_cert_pem` in
//! the config `novacron up` writes); the server's certificate is verified against it.
//! `NOVACRON_PROJECT` optionally names the project (else the token's, else `default`).

use novacron_client::{Client, Config};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("set {name} (see the example's header)"))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let ca_file = env("NOVACRON_CA_CERT")?;
    let config = Config {
        servers: vec![env("NOVACRON_URL")?],
        token: env("NOVACRON_TOKEN")?,
        ca_cert_pem: std::fs::read_to_string(&ca_file)
            .map_err(|e| format!("cannot read {ca_file}: {e}"))?,
    };
    let client = Client::new(config)?.with_project(std::env::var("NOVACRON_PROJECT").ok());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let vms = runtime.block_on(client.vm_list())?;
    println!(
        "{:<24} {:<10} {:>4} {:>10}  NODE",
        "NAME", "STATE", "CPUS", "MEMORY"
    );
    for vm in &vms {
        println!(
            "{:<24} {:<10} {:>4} {:>9}M  {}",
            vm.name,
            vm.state.to_string(),
            vm.cpus,
            vm.memory_bytes / (1024 * 1024),
            vm.node.as_deref().unwrap_or("-"),
        );
    }
    eprintln!("{} VMs", vms.len());
    Ok(())
}
