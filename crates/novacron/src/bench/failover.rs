//! `novacron bench failover`: the node-loss scenario end to end on this machine. A 3-member
//! etcd, two control-plane replicas, two agents in their own network namespaces, a shared
//! directory, a TCG VM with `--ha restart`; then SIGKILL of the VM's agent. Measures the
//! time from the kill to the new QEMU answering QMP on the other node, and watches for two
//! copies of the VM running at once, also after the old node returns.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use super::infra::{Cli, Etcd, Lan, Scratch, kill9, pids_with, wait_for};
use crate::output::Format;

#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// `etcd` (3 members, 2 control-plane replicas) or `sqlite` (one replica).
    #[arg(long, default_value = "etcd")]
    pub store: String,
    /// Node lease: how long without a heartbeat before a node counts as lost.
    #[arg(long, default_value_t = 5)]
    pub lease_secs: u64,
    /// Extra wait after the lease expired (the lost node fences itself meanwhile).
    #[arg(long, default_value_t = 2)]
    pub fence_margin_secs: u64,
    /// Also lose a control-plane replica and an etcd member afterwards, and check the CLI
    /// still completes its commands through the survivors.
    #[arg(long)]
    pub control_plane_loss: bool,
    /// How node-a is lost: `kill` (SIGKILL of its agent) or `partition` (its namespace cut
    /// off the network while everything on it keeps running).
    #[arg(long, default_value = "kill")]
    pub loss: String,
    /// Also add a disk of SIZE (e.g. 16M) to the running VM before node-a is lost, and check
    /// the VM restarted on node-b with it in the same hot-plug port.
    #[arg(long, value_name = "SIZE")]
    pub added_disk: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FailoverReport {
    pub store: String,
    /// `kill` or `partition`.
    pub loss: String,
    /// SIGKILL of the VM's agent → the new QEMU answering QMP on the other node.
    pub recovery_seconds: f64,
    /// Most extra copies of the VM seen running at once (0: never two).
    pub duplicate_runs: u32,
    /// SIGKILL → the old node's QEMU gone (fenced by its watchdog).
    pub fenced_after_seconds: f64,
    pub lease_seconds: u64,
    pub fence_margin_seconds: u64,
    pub from_node: String,
    pub to_node: String,
    /// After the old node returned: where the VM runs, and that it stayed there.
    pub final_node: String,
    /// With --control-plane-loss: the CLI completed its commands after a replica and an
    /// etcd member were killed, and no acknowledged change was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane_loss_ok: Option<bool>,
    /// With --added-disk: the restarted QEMU has the disk added before the loss, in its port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_disk_restarted: Option<bool>,
    pub accel: &'static str,
}

/// QEMU processes running the VM with this UUID, anywhere on the machine.
fn copies(uuid: &str) -> usize {
    pids_with(uuid)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| c.starts_with(b"qemu-system"))
                .unwrap_or(false)
        })
        .count()
}

pub async fn run(a: FailoverArgs, out: Format) -> anyhow::Result<()> {
    let report = tokio::task::spawn_blocking(move || scenario(&a)).await??;
    match out {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Table => {
            println!(
                "failover ({} store, TCG guest, lease {} s + fence margin {} s)",
                report.store, report.lease_seconds, report.fence_margin_seconds
            );
            let how = if report.loss == "kill" {
                "SIGKILL of the agent of"
            } else {
                "network cut of"
            };
            println!(
                "  recovery         {:.2} s  ({how} {} → QEMU answering QMP on {})",
                report.recovery_seconds, report.from_node, report.to_node
            );
            println!(
                "  old copy fenced  {:.2} s after the kill",
                report.fenced_after_seconds
            );
            println!("  duplicate runs   {}", report.duplicate_runs);
            println!("  after return     VM runs on {}", report.final_node);
            if let Some(ok) = report.control_plane_loss_ok {
                println!(
                    "  replica + etcd member loss: CLI {}",
                    if ok {
                        "kept working, nothing lost"
                    } else {
                        "FAILED"
                    }
                );
            }
        }
    }
    if report.duplicate_runs > 0 {
        bail!("the VM ran twice at once");
    }
    Ok(())
}

fn scenario(a: &FailoverArgs) -> anyhow::Result<FailoverReport> {
    let exe = std::env::current_exe()?;
    let mut scratch = Scratch::new("failover")?;
    let tag = std::process::id() ^ (Instant::now().elapsed().subsec_nanos());
    let lan = Lan::create(tag, 2)?;
    let etcd = match a.store.as_str() {
        "etcd" => Some(Etcd::start(&mut scratch, 3)?),
        "sqlite" => None,
        other => bail!("unknown --store {other}: use etcd or sqlite"),
    };
    let replicas = if etcd.is_some() { 2 } else { 1 };
    let mut servers = vec![];
    let mut join_token = String::new();
    for i in 0..replicas {
        let port = super::infra::free_port()?;
        let listen = format!("{}:{port}", lan.host_ip);
        let cfg = scratch.path(&format!("cp{i}-cli.json"));
        let mut cmd = Command::new(&exe);
        cmd.args([
            "server",
            "-o",
            "json",
            "--listen",
            &listen,
            "--member-id",
            &format!("cp{i}"),
        ])
        .arg("--data-dir")
        .arg(scratch.path(&format!("cp{i}")))
        .args([
            "--node-lease-secs",
            &a.lease_secs.to_string(),
            "--fence-margin-secs",
            &a.fence_margin_secs.to_string(),
        ])
        .env("NOVACRON_CONFIG", &cfg)
        .env("NOVACRON_LOG", "info");
        if let Some(e) = &etcd {
            cmd.args(["--store", &e.store_url()]);
        }
        if i > 0 {
            // The CA key lives outside the store: every replica gets a copy of the first's.
            let dir = scratch.path(&format!("cp{i}/control-plane"));
            std::fs::create_dir_all(&dir)?;
            std::fs::copy(scratch.path("cp0/control-plane/ca.key"), dir.join("ca.key"))?;
        }
        let (pid, line) =
            scratch.spawn_first_line(&format!("cp{i}"), &mut cmd, Duration::from_secs(60))?;
        let v: serde_json::Value = serde_json::from_str(&line).context("server summary")?;
        if i == 0 {
            join_token = v["join_token"].as_str().unwrap_or_default().to_string();
        }
        servers.push((
            pid,
            v["api_url"].as_str().unwrap_or_default().to_string(),
            cfg,
        ));
    }
    // One CLI config that knows every replica.
    let cli_cfg = scratch.path("cli.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&servers[0].2)?)?;
    cfg["servers"] = serde_json::json!(servers.iter().map(|s| s.1.clone()).collect::<Vec<_>>());
    std::fs::write(&cli_cfg, serde_json::to_vec(&cfg)?)?;
    let cli = Cli {
        exe: exe.clone(),
        config: cli_cfg,
        netns: None,
    };
    let server_list = servers
        .iter()
        .map(|s| s.1.clone())
        .collect::<Vec<_>>()
        .join(",");

    let start_agent =
        |scratch: &mut Scratch, i: usize, name: &str, join: bool| -> anyhow::Result<u32> {
            let (ns, _) = &lan.namespaces[i];
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns])
                .arg(&exe)
                .args([
                    "agent",
                    "--server",
                    &server_list,
                    "--name",
                    name,
                    "--listen",
                    "0.0.0.0:0",
                    "--stop-timeout-secs",
                    "5",
                ])
                .arg("--data-dir")
                .arg(scratch.path(name))
                .env("NOVACRON_LOG", "info");
            if join {
                cmd.args(["--join-token", &join_token]);
            }
            scratch.spawn(
                &format!("agent-{name}-{}", Instant::now().elapsed().as_nanos()),
                &mut cmd,
            )
        };
    let agent_a = start_agent(&mut scratch, 0, "node-a", true)?;
    start_agent(&mut scratch, 1, "node-b", true)?;
    wait_for(Duration::from_secs(60), "both nodes ready", || {
        let nodes = cli.run(&["node", "list"])?;
        Ok(nodes
            .as_array()
            .is_some_and(|n| n.len() == 2 && n.iter().all(|x| x["state"] == "ready")))
    })?;

    let shared = scratch.path("shared");
    std::fs::create_dir_all(&shared)?;
    cli.run(&[
        "storage",
        "add",
        "shared1",
        "--type",
        "shared-dir",
        "--path",
        &shared.to_string_lossy(),
    ])?;
    cli.run(&["image", "build-tiny", "tiny"])?;
    let vm = cli.run(&[
        "vm",
        "create",
        "db1",
        "--image",
        "tiny",
        "--cpus",
        "1",
        "--memory",
        "128M",
        "--disk",
        "32M",
        "--accel",
        "tcg",
        "--storage",
        "shared1",
        "--ha",
        "restart",
        "--ha-priority",
        "10",
        "--node",
        "node-a",
    ])?;
    if vm["state"] != "running" {
        bail!("the HA VM did not start: {vm}");
    }
    let uuid = vm["uuid"].as_str().unwrap_or_default().to_string();
    if let Some(size) = &a.added_disk {
        let op = cli.run(&["vm", "disk", "add", "db1", "--size", size])?;
        if op["operation"]["state"] != "succeeded" {
            bail!("adding a disk to the HA VM failed: {op}");
        }
    }

    // Lose node-a: its agent is SIGKILLed, or its network cut (its QEMU keeps running until
    // the watchdog fences it).
    let t0 = Instant::now();
    match a.loss.as_str() {
        "kill" => kill9(agent_a),
        "partition" => lan.set_connected(0, false)?,
        other => bail!("unknown --loss {other}: use kill or partition"),
    }
    let mut max_copies = copies(&uuid);
    let mut fenced_after = None;
    let mut recovered_after = None;
    let mut to_node = String::new();
    let mut new_pid = None;
    let deadline = t0 + Duration::from_secs(120);
    let mut last_poll = Instant::now() - Duration::from_secs(1);
    while recovered_after.is_none() || fenced_after.is_none() {
        let n = copies(&uuid);
        max_copies = max_copies.max(n);
        let old_alive = pids_with(&scratch.path("node-a").to_string_lossy())
            .into_iter()
            .any(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .map(|c| c.starts_with(b"qemu-system"))
                    .unwrap_or(false)
            });
        if !old_alive && fenced_after.is_none() {
            fenced_after = Some(t0.elapsed());
        }
        if recovered_after.is_none() && last_poll.elapsed() >= Duration::from_millis(100) {
            last_poll = Instant::now();
            if let Ok(v) = cli.vm("db1")
                && v["node"] == "node-b"
                && v["state"] == "running"
                && v["pid"].as_u64().is_some()
            {
                recovered_after = Some(t0.elapsed());
                to_node = "node-b".into();
                new_pid = v["pid"].as_u64();
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no recovery within 120 s (fenced: {fenced_after:?}); cp0 log:\n{}",
                scratch.log_tail("cp0", 30)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    // The restarted machine has the added disk where hot-plug had put it.
    let added_disk_restarted = a.added_disk.as_ref().map(|_| {
        new_pid
            .and_then(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
            .is_some_and(|c| {
                String::from_utf8_lossy(&c)
                    .contains("virtio-blk-pci,drive=disk1,id=virtio-disk1,bus=hp0")
            })
    });

    // The old node comes back: it must not start a second copy.
    if a.loss == "kill" {
        start_agent(&mut scratch, 0, "node-a", false)?;
    } else {
        lan.set_connected(0, true)?;
    }
    let watch_until = Instant::now() + Duration::from_secs(a.lease_secs * 2 + 6);
    while Instant::now() < watch_until {
        max_copies = max_copies.max(copies(&uuid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let nodes = cli.run(&["node", "list"])?;
    let a_back = nodes
        .as_array()
        .and_then(|n| n.iter().find(|x| x["name"] == "node-a"))
        .is_some_and(|x| x["state"] == "ready");
    if !a_back {
        bail!("node-a did not come back: {nodes}");
    }
    let v = cli.vm("db1")?;
    let final_node = v["node"].as_str().unwrap_or_default().to_string();

    let control_plane_loss_ok = if a.control_plane_loss && servers.len() > 1 {
        Some(control_plane_loss(&cli, &servers, etcd.as_ref())?)
    } else {
        None
    };

    drop(lan);
    Ok(FailoverReport {
        store: a.store.clone(),
        loss: a.loss.clone(),
        recovery_seconds: recovered_after.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN),
        duplicate_runs: max_copies.saturating_sub(1) as u32,
        fenced_after_seconds: fenced_after.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN),
        lease_seconds: a.lease_secs,
        fence_margin_seconds: a.fence_margin_secs,
        from_node: "node-a".into(),
        to_node,
        final_node,
        control_plane_loss_ok,
        added_disk_restarted,
        accel: "tcg",
    })
}

/// Kills one control-plane replica and one etcd member; the CLI (which knows every replica)
/// must keep completing commands, and a change acknowledged before stays.
fn control_plane_loss(
    cli: &Cli,
    servers: &[(u32, String, PathBuf)],
    etcd: Option<&Etcd>,
) -> anyhow::Result<bool> {
    cli.run(&[
        "storage",
        "add",
        "before-loss",
        "--type",
        "shared-dir",
        "--path",
        "/srv/before-loss",
    ])?;
    kill9(servers[0].0);
    if let Some(e) = etcd {
        kill9(e.pids[0]);
    }
    // Writes and reads through the surviving replica and the etcd majority.
    let mut ok = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cli
            .run(&[
                "storage",
                "add",
                "after-loss",
                "--type",
                "shared-dir",
                "--path",
                "/srv/after-loss",
            ])
            .is_ok()
        {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let pools = cli.run(&["storage", "list"])?;
    let names: Vec<&str> = pools
        .as_array()
        .map(|p| p.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    let vms = cli.run(&["vm", "list"])?;
    Ok(ok
        && names.contains(&"before-loss")
        && names.contains(&"after-loss")
        && vms.as_array().is_some_and(|v| v.len() == 1))
}
