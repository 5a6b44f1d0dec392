//! `novacron bench control-plane`: a control plane (its own process, so its memory is its
//! own) with many hollow nodes (agents that register, heartbeat, follow their desired VMs
//! and report them running, without QEMU), loaded with VM creations through the API.
//! Measures creates/s, API latency, how long a node takes to see a change, and the
//! server's memory.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use novacron_agent::{Agent, AgentConfig};
use novacron_api_types::{AccelChoice, Network, VmCreateRequest};
use novacron_client::{Client, Config};
use serde::Serialize;

use super::infra::{Etcd, Scratch, percentile, rss_bytes};
use crate::output::Format;

#[derive(Args, Debug)]
pub struct ControlPlaneArgs {
    /// Hollow nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// VMs to create.
    #[arg(long, default_value_t = 100_000)]
    pub vms: usize,
    /// `sqlite` (embedded) or `etcd` (a real 3-member etcd on loopback).
    #[arg(long, default_value = "sqlite")]
    pub store: String,
    /// Concurrent API clients creating VMs.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Nodes whose view is timed (spread over the fleet; every VM the scheduler places on
    /// one of them is a sample).
    #[arg(long, default_value_t = 16)]
    pub watched: usize,
    /// Also measure what authorization and quotas cost: make this many projects, each with
    /// quotas, and create half the VMs in them through user tokens, in rounds alternating
    /// with rounds through the admin token in the limitless `default` project
    /// (`authz_overhead` in the report). 0: admin token only.
    #[arg(long, default_value_t = 0)]
    pub projects: usize,
    /// Users for `--projects`, each bound as admin to one project (round robin) and creating
    /// through its own token (default: one per project).
    #[arg(long, default_value_t = 0)]
    pub users: usize,
    /// After the creates, fetch the whole VM list (what the web console's VM list page
    /// loads) this many times, one after another, and report its latency (`list_p50_ms`,
    /// `list_p99_ms`). 0: skip.
    #[arg(long, default_value_t = 0)]
    pub list_samples: usize,
    /// Keep the control plane and its hollow nodes up when done, for a browser test: write
    /// `{"url", "token"}` (the admin's) to this file (mode 0600), and tear down once the file
    /// is removed, or after 10 minutes.
    #[arg(long)]
    pub hold_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct ControlPlaneReport {
    pub store: String,
    pub nodes: usize,
    pub vms: usize,
    /// VM-create requests per second through the API (202 answers).
    pub creates_per_sec: f64,
    /// p99 latency of the create requests, ms.
    pub api_p99_ms: f64,
    pub api_p50_ms: f64,
    /// Time from a create request to the placed node seeing the VM in its desired state, p99, ms.
    pub watch_p99_ms: f64,
    pub watch_p50_ms: f64,
    /// Peak resident memory of the control-plane process, bytes.
    pub server_rss_bytes: u64,
    pub seconds: f64,
    pub errors: u64,
    /// VMs the hollow nodes reported running when the run ended.
    pub vms_running: usize,
    pub concurrency: usize,
    /// CPU seconds the control-plane process used during the load, and this (load
    /// generator + hollow nodes) process: both share the machine's cores.
    pub server_cpu_seconds: f64,
    pub load_cpu_seconds: f64,
    /// With `--projects`: projects and users the authorized half of the VMs was created in
    /// and by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projects: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<usize>,
    /// With `--projects`: creates/s through the admin token in the limitless `default`
    /// project (no role-binding lookup, no limit to check) ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_creates_per_sec: Option<f64>,
    /// ... and through user tokens bound in projects with quotas, in the same run
    /// (alternating rounds on the same control plane and fleet) ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authz_creates_per_sec: Option<f64>,
    /// ... and their ratio, authorized ÷ baseline (1.0: authorization and quotas cost
    /// nothing; the target is ≥ 0.95).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authz_overhead: Option<f64>,
    /// With `--list-samples`: latency of `GET /api/v1/vms` listing every VM of the run
    /// (request to the last byte decoded), p50 and p99, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_p99_ms: Option<f64>,
}

pub async fn run(a: ControlPlaneArgs, out: Format) -> anyhow::Result<()> {
    let r = scenario(&a).await?;
    match out {
        Format::Json => println!("{}", serde_json::to_string(&r)?),
        Format::Table => {
            println!(
                "control plane ({} store): {} hollow nodes, {} VMs created by {} clients",
                r.store, r.nodes, r.vms, r.concurrency
            );
            println!("  creates/s        {:.0}", r.creates_per_sec);
            println!(
                "  API latency      p50 {:.1} ms, p99 {:.1} ms",
                r.api_p50_ms, r.api_p99_ms
            );
            println!(
                "  watch latency    p50 {:.1} ms, p99 {:.1} ms  (create request → node sees the VM)",
                r.watch_p50_ms, r.watch_p99_ms
            );
            println!(
                "  server memory    {:.0} MiB peak",
                r.server_rss_bytes as f64 / 1048576.0
            );
            println!(
                "  running          {} of {} VMs reported running; {} errors; {:.1} s",
                r.vms_running, r.vms, r.errors, r.seconds
            );
            println!(
                "  CPU              server {:.1} s, load generator + hollow nodes {:.1} s",
                r.server_cpu_seconds, r.load_cpu_seconds
            );
            if let (Some(base), Some(authz), Some(ratio)) = (
                r.baseline_creates_per_sec,
                r.authz_creates_per_sec,
                r.authz_overhead,
            ) {
                println!(
                    "  authorization    {:.0} creates/s by {} users in {} projects with quotas vs {:.0} by the admin token: {:.3} ×",
                    authz,
                    r.users.unwrap_or(0),
                    r.projects.unwrap_or(0),
                    base,
                    ratio
                );
            }
            if let (Some(p50), Some(p99)) = (r.list_p50_ms, r.list_p99_ms) {
                println!(
                    "  VM list          p50 {p50:.1} ms, p99 {p99:.1} ms  (GET /api/v1/vms with all {} VMs)",
                    r.vms
                );
            }
        }
    }
    Ok(())
}

async fn scenario(a: &ControlPlaneArgs) -> anyhow::Result<ControlPlaneReport> {
    if a.nodes == 0 || a.vms == 0 || a.concurrency == 0 {
        bail!("--nodes, --vms and --concurrency must be at least 1");
    }
    if a.users > 0 && a.projects == 0 {
        bail!("--users needs --projects (the projects the users are bound in)");
    }
    let exe = std::env::current_exe()?;
    let mut scratch = Scratch::new("cpbench")?;
    let store_url = match a.store.as_str() {
        "sqlite" => None,
        "etcd" => Some(Etcd::start(&mut scratch, 3)?.store_url()),
        other => bail!("unknown --store {other}: use sqlite or etcd"),
    };
    let port = super::infra::free_port()?;
    let cfg_path = scratch.path("cli.json");
    let mut cmd = Command::new(&exe);
    cmd.args([
        "server",
        "-o",
        "json",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--node-lease-secs",
        "30",
    ])
    .arg("--data-dir")
    .arg(scratch.path("cp"))
    .env("NOVACRON_CONFIG", &cfg_path)
    // NOVACRON_BENCH_SERVER_LOG (a NOVACRON_LOG filter) shows the server's logs, e.g. to
    // see where a create spends its time; its stderr goes to the scratch directory's log.
    .env(
        "NOVACRON_LOG",
        std::env::var("NOVACRON_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
    )
    // The hollow nodes and the API clients stand for many hosts, but all connect from
    // 127.0.0.1: the per-address cap against floods (256 by default) would reset them.
    .env("NOVACRON_MAX_CONNECTIONS_PER_ADDRESS", "1000000");
    if let Some(u) = &store_url {
        cmd.args(["--store", u]);
    }
    let (server_pid, line) =
        scratch.spawn_first_line("server", &mut cmd, Duration::from_secs(60))?;
    let summary: serde_json::Value = serde_json::from_str(&line)?;
    let url = summary["api_url"].as_str().unwrap_or_default().to_string();
    let join = summary["join_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let config: Config = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
    let admin = Client::new(config.clone())?;
    admin.image_build_tiny("tiny").await?;

    // Hollow nodes, registered a few at a time.
    let registry = Arc::new(std::sync::Mutex::new(
        prometheus_client::registry::Registry::default(),
    ));
    let mut agents = Vec::with_capacity(a.nodes);
    let names: Vec<String> = (0..a.nodes).map(|i| format!("hollow-{i:05}")).collect();
    for chunk in names.chunks(32) {
        let starts: Vec<_> = chunk
            .iter()
            .map(|name| {
                tokio::spawn(Agent::start(AgentConfig {
                    servers: vec![url.clone()],
                    join_token: Some(join.clone()),
                    name: name.clone(),
                    data_dir: scratch.path(&format!("hollow/{name}")),
                    listen: "127.0.0.1:0".parse().expect("static address"),
                    advertise: None,
                    heartbeat_interval: Duration::from_secs(5),
                    stop_timeout: Duration::from_secs(1),
                    registry: registry.clone(),
                    watchdog_command: None,
                    hollow: true,
                    vtep_address: None,
                    site: None,
                    tunnel_port: novacron_net::DEFAULT_TUNNEL_PORT,
                }))
            })
            .collect();
        for h in starts {
            agents.push(h.await?.context("starting a hollow node")?);
        }
    }

    // Watchers: the view of a few nodes, read with their own credentials.
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let k = a.watched.clamp(1, a.nodes);
    let watched: Vec<String> = (0..k).map(|i| names[i * a.nodes / k].clone()).collect();
    let mut watchers = vec![];
    for w in &watched {
        let creds: serde_json::Value = serde_json::from_slice(&std::fs::read(
            scratch.path(&format!("hollow/{w}/node.json")),
        )?)?;
        let client = Client::new(Config {
            servers: vec![url.clone()],
            token: creds["node_token"].as_str().unwrap_or_default().into(),
            ca_cert_pem: config.ca_cert_pem.clone(),
        })?;
        let seen = seen.clone();
        watchers.push(tokio::spawn(async move {
            let mut after = None;
            loop {
                if let Ok(d) = client
                    .agent_desired_vms(after, Duration::from_secs(20))
                    .await
                {
                    let now = Instant::now();
                    let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                    for vm in d.vms {
                        s.entry(vm.name).or_insert(now);
                    }
                    after = Some(d.revision);
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }

    // The callers: the admin token in `default`, and with --projects users bound in
    // projects with quotas.
    let tenants = if a.projects > 0 {
        tenants(&admin, &config, a).await?
    } else {
        vec![]
    };

    // The load: `concurrency` clients creating VMs as fast as the API answers, in rounds
    // that alternate between the admin token and the tenants' tokens when there are
    // tenants (so neither is favoured by the store's size as it grows).
    let errors = Arc::new(AtomicU64::new(0));
    let latencies: Arc<Mutex<Vec<f64>>> = Default::default();
    let t0 = Instant::now();
    let (server_cpu0, load_cpu0) = (
        super::infra::cpu_seconds(server_pid),
        super::infra::cpu_seconds(std::process::id()),
    );
    // One client (one connection) per concurrent request, as each tenant user has its own.
    let admins = (0..a.concurrency)
        .map(|_| Client::new(config.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let rounds = if tenants.is_empty() {
        1
    } else {
        AUTHZ_ROUNDS.min(a.vms.max(2) / 2 * 2).max(2)
    };
    let mut by_mode = [(Duration::ZERO, 0u64); 2];
    for round in 0..rounds {
        let range = (a.vms * round / rounds)..(a.vms * (round + 1) / rounds);
        let authorized = round % 2 == 1;
        let callers = if authorized {
            tenants.clone()
        } else {
            admins.clone()
        };
        let before = latencies.lock().unwrap_or_else(|p| p.into_inner()).len();
        let took = load(range, &callers, a.concurrency, &sent, &errors, &latencies).await?;
        let done = latencies.lock().unwrap_or_else(|p| p.into_inner()).len() - before;
        let m = &mut by_mode[usize::from(authorized)];
        m.0 += took;
        m.1 += done as u64;
    }
    let elapsed = t0.elapsed();
    let server_cpu_seconds = super::infra::cpu_seconds(server_pid) - server_cpu0;
    let load_cpu_seconds = super::infra::cpu_seconds(std::process::id()) - load_cpu0;
    // Give the watched nodes a moment to see the last changes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (server_rss_bytes, _) = rss_bytes(server_pid);

    let mut lat = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    lat.sort_by(|x, y| x.total_cmp(y));
    let mut watch: Vec<f64> = {
        let sent = sent.lock().unwrap_or_else(|p| p.into_inner());
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        sent.iter()
            .filter_map(|(n, t)| {
                seen.get(n)
                    .map(|s| s.saturating_duration_since(*t).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    watch.sort_by(|x, y| x.total_cmp(y));
    for w in watchers {
        w.abort();
    }
    let mut vms_running = 0;
    let projects = std::iter::once(None).chain(tenants.iter().map(|t| t.project()));
    let mut counted = std::collections::BTreeSet::new();
    for project in projects {
        if !counted.insert(project) {
            continue;
        }
        vms_running += admin
            .with_project(project.map(str::to_string))
            .vm_list()
            .await
            .map(|v| {
                v.iter()
                    .filter(|x| x.state == novacron_api_types::VmState::Running)
                    .count()
            })
            .unwrap_or(0);
    }
    let mut list = Vec::with_capacity(a.list_samples);
    for _ in 0..a.list_samples {
        let t = Instant::now();
        admin.vm_list().await?;
        list.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    list.sort_by(|x, y| x.total_cmp(y));
    if let Some(path) = &a.hold_file {
        hold(path, &url, &config.token).await?;
    }
    for ag in agents {
        ag.stop().await;
    }
    Ok(ControlPlaneReport {
        store: a.store.clone(),
        nodes: a.nodes,
        vms: a.vms,
        creates_per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        api_p99_ms: percentile(&lat, 0.99),
        api_p50_ms: percentile(&lat, 0.50),
        watch_p99_ms: percentile(&watch, 0.99),
        watch_p50_ms: percentile(&watch, 0.50),
        server_rss_bytes,
        seconds: elapsed.as_secs_f64(),
        errors: errors.load(Ordering::Relaxed),
        vms_running,
        concurrency: a.concurrency,
        server_cpu_seconds,
        load_cpu_seconds,
        projects: (a.projects > 0).then_some(a.projects),
        users: (a.projects > 0).then_some(if a.users == 0 { a.projects } else { a.users }),
        baseline_creates_per_sec: (a.projects > 0).then_some(rate(by_mode[0])),
        authz_creates_per_sec: (a.projects > 0).then_some(rate(by_mode[1])),
        authz_overhead: (a.projects > 0).then_some(rate(by_mode[1]) / rate(by_mode[0])),
        list_p50_ms: (!list.is_empty()).then(|| percentile(&list, 0.50)),
        list_p99_ms: (!list.is_empty()).then(|| percentile(&list, 0.99)),
    })
}

/// `--hold-file`: hands the running control plane to another program until it removes the
/// file (bounded, so a crashed caller cannot keep the fleet up for good).
async fn hold(path: &std::path::Path, url: &str, token: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(
        serde_json::json!({"url": url, "token": token})
            .to_string()
            .as_bytes(),
    )?;
    std::fs::rename(&tmp, path)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while path.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Rounds of a run with `--projects` (half through the admin token, half through tenants).
const AUTHZ_ROUNDS: usize = 10;

fn rate((took, done): (Duration, u64)) -> f64 {
    done as f64 / took.as_secs_f64().max(1e-9)
}

/// Makes `--projects` projects with quotas (roomy enough for every VM of the run, so every
/// create is checked and none refused) and the tiny image, and `--users` users, each bound as admin to one
/// project; returns clients with the users' tokens naming their projects, one per user or
/// per concurrent request, whichever is more (each its own connection).
async fn tenants(
    admin: &Client,
    config: &Config,
    a: &ControlPlaneArgs,
) -> anyhow::Result<Vec<Client>> {
    use novacron_api_types::tenancy::{
        ProjectCreateRequest, ProjectLimits, ProjectSetRequest, Role, RoleBinding,
        TokenCreateRequest, UserCreateRequest,
    };
    let vms = a.vms as u64;
    let projects: Vec<String> = (0..a.projects).map(|p| format!("bench-{p:04}")).collect();
    for p in &projects {
        admin
            .project_create(&ProjectCreateRequest {
                name: p.clone(),
                description: "novacron bench control-plane".into(),
            })
            .await?;
        admin
            .project_set(
                p,
                &ProjectSetRequest {
                    description: None,
                    limits: ProjectLimits {
                        max_vms: Some(vms),
                        max_cpus: Some(vms),
                        max_memory_bytes: Some(vms << 28),
                        max_disk_bytes: Some(vms << 30),
                        max_networks: Some(1),
                        max_backup_storage_bytes: None,
                    },
                },
            )
            .await?;
        // Images belong to a project (there are no public images yet): each gets its own.
        admin
            .with_project(Some(p.clone()))
            .image_build_tiny("tiny")
            .await?;
    }
    let users = if a.users == 0 { a.projects } else { a.users };
    let mut clients = Vec::with_capacity(users);
    for u in 0..users {
        let user = format!("bench-user-{u:05}");
        let project = projects[u % projects.len()].clone();
        admin
            .user_create(&UserCreateRequest {
                name: user.clone(),
                password: None,
            })
            .await?;
        admin
            .role_binding_add(&RoleBinding {
                user: user.clone(),
                project: Some(project.clone()),
                role: Role::Admin,
            })
            .await?;
        let token = admin
            .token_create(&TokenCreateRequest {
                user: Some(user),
                ..Default::default()
            })
            .await?
            .token;
        clients.push((token, project));
    }
    // As many connections as the admin token's rounds have (one per concurrent client), or
    // one per user if there are more users.
    (0..users.max(a.concurrency))
        .map(|i| {
            let (token, project) = &clients[i % clients.len()];
            Ok(Client::new(Config {
                token: token.clone(),
                ..config.clone()
            })?
            .with_project(Some(project.clone())))
        })
        .collect()
}

/// Creates the VMs numbered `range` through `callers` (VM i through caller i mod n) with
/// `concurrency` requests in flight; returns how long it took.
async fn load(
    range: std::ops::Range<usize>,
    callers: &[Client],
    concurrency: usize,
    sent: &Arc<Mutex<HashMap<String, Instant>>>,
    errors: &Arc<AtomicU64>,
    latencies: &Arc<Mutex<Vec<f64>>>,
) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicU64::new(range.start as u64));
    let end = range.end as u64;
    let callers: Arc<Vec<Client>> = Arc::new(callers.to_vec());
    let t0 = Instant::now();
    let mut workers = vec![];
    for _ in 0..concurrency {
        let (next, errors, latencies, sent, callers) = (
            next.clone(),
            errors.clone(),
            latencies.clone(),
            sent.clone(),
            callers.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut local = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let client = &callers[i as usize % callers.len()];
                let name = format!("vm-{i:07}");
                let req = VmCreateRequest {
                    name: name.clone(),
                    image: "tiny".into(),
                    cpus: 1,
                    memory_bytes: 256 << 20,
                    disk_bytes: None,
                    node: None,
                    accel: AccelChoice::Tcg,
                    network: Network::None,
                    ssh_keys: vec![],
                    start: true,
                    storage: None,
                    ha: Default::default(),
                    ha_priority: 0,
                    nics: vec![],
                    security_groups: vec![],
                    bandwidth_bps: None,
                    labels: Default::default(),
                    description: None,
                    user_data: None,
                    vendor_data: None,
                    vnc: false,
                    iso: None,
                    firmware: None,
                    secure_boot: false,
                    tpm: false,
                };
                let start = Instant::now();
                sent.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.clone(), start);
                match client.vm_create(&req).await {
                    Ok(_) => local.push(start.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            tracing::warn!(error = %e, "create failed");
                        }
                    }
                }
            }
            latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(local);
        }));
    }
    for w in workers {
        w.await?;
    }
    Ok(t0.elapsed())
}
