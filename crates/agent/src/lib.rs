//! The NovaCron node agent: registers the host with the control plane, heartbeats, and
//! reconciles the VMs placed on this node into QEMU processes, reporting what it observes.
//! QEMU processes outlive the agent; a restarted agent adopts them again.

// Tests may unwrap; product code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod api;
pub mod backup;
mod disk;
mod exec;
pub mod fence;
mod guest_info;
pub mod heartbeat;
mod host;
mod images;
pub mod migration;
mod nic;
pub mod overlay;
mod snapshot;
mod state;
mod stats;
pub mod users;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::agent::RegisterRequest;
use novacron_api_types::overlay::TunnelEndpoint;
use novacron_client::{Client, ClientError, Config as ClientConfig, JoinToken};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// The agent API's OpenAPI document (`novacron openapi --agent`).
pub use api::openapi;
pub use host::HostFacts;
/// For the binary's start-up (every role), so it need not depend on the TLS crate itself.
pub use novacron_tls::raise_open_file_limit;

use crate::state::Credentials;

/// Errors that stop the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Tls(#[from] novacron_tls::TlsError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// How to run an agent.
pub struct AgentConfig {
    /// Control-plane URLs (tried in order).
    pub servers: Vec<String>,
    /// Needed the first time only; afterwards the node's own credentials in `data_dir` are used.
    pub join_token: Option<String>,
    pub name: String,
    pub data_dir: PathBuf,
    /// Where the agent's own HTTPS endpoint listens (console access for the control plane).
    pub listen: SocketAddr,
    /// Host name or IP the control plane uses to reach `listen` (default: the listen IP, or
    /// 127.0.0.1 when it listens on all addresses).
    pub advertise: Option<String>,
    pub heartbeat_interval: Duration,
    /// How long a guest gets to power off after the ACPI button before it is killed.
    pub stop_timeout: Duration,
    pub registry: Arc<std::sync::Mutex<Registry>>,
    /// How to start the fence watchdog (program and leading arguments; `--dir` and
    /// `--timeout-ms` are appended), e.g. `[novacron, fence-watchdog]`. `None`: HA VMs of
    /// this node are not fenced if the agent dies.
    pub watchdog_command: Option<Vec<String>>,
    /// Scale tests only: register, heartbeat and report VMs without running QEMU.
    pub hollow: bool,
    /// This node's VTEP for overlay networks (default: the advertised host when it is an
    /// IPv4 address, else the listen address when it is a specific IPv4 one).
    pub vtep_address: Option<std::net::Ipv4Addr>,
    /// The node's site (none: the default site). Overlay traffic to nodes of other sites is
    /// encrypted ([`novacron_net::SiteTunnel`]).
    pub site: Option<String>,
    /// UDP port of the tunnel between sites.
    pub tunnel_port: u16,
}

/// File in the agent's data dir holding its tunnel key (mode 0600).
pub const TUNNEL_KEY_FILE: &str = "tunnel.key";

/// A running agent.
pub struct Agent {
    pub name: String,
    pub agent_url: String,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    serve: novacron_tls::ServeHandle,
    heartbeat: heartbeat::Heartbeat,
    fence: Option<Arc<fence::Fence>>,
    revoked: watch::Receiver<Option<String>>,
}

impl Agent {
    /// Registers (first with the join token, later with the stored node credentials), then
    /// starts the reconcile loop, heartbeats and the agent endpoint.
    pub async fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        novacron_tls::install_crypto_provider();
        novacron_api_types::validate_name("node", &config.name)
            .map_err(|e| AgentError::Config(e.to_string()))?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| AgentError::Io {
            what: format!("cannot create {}", config.data_dir.display()),
            source,
        })?;
        if !config.hollow {
            open_data_dir_to_vm_users(&config.data_dir)?;
        }
        migration::clear_stale_work_dirs(&config.data_dir).map_err(|source| AgentError::Io {
            what: format!(
                "cannot clear the migration work directories in {}",
                config.data_dir.display()
            ),
            source,
        })?;
        let facts = if config.hollow {
            HostFacts::hollow()
        } else {
            HostFacts::probe(&config.data_dir).await
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| AgentError::Io {
                what: format!("cannot listen on {}", config.listen),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| AgentError::Io {
            what: "listener address".into(),
            source,
        })?;
        let host = match &config.advertise {
            Some(h) => h.clone(),
            None if local.ip().is_unspecified() => "127.0.0.1".into(),
            None => local.ip().to_string(),
        };
        let host_in_url = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let agent_url = format!("https://{host_in_url}:{}", local.port());
        let vtep = vtep_address(config.vtep_address, &host, local.ip());
        if let Some(site) = &config.site {
            novacron_api_types::validate_name("site", site)
                .map_err(|e| AgentError::Config(e.to_string()))?;
        }
        // A node with a VTEP publishes its tunnel key, so nodes of other sites can reach it.
        let tunnel_key = match vtep {
            Some(_) => Some(Arc::new(
                novacron_net::TunnelKey::load_or_create(&config.data_dir.join(TUNNEL_KEY_FILE))
                    .map_err(|e| AgentError::Config(e.to_string()))?,
            )),
            None => None,
        };
        let tunnel = tunnel_key.as_ref().map(|k| TunnelEndpoint {
            public_key: k.public().to_string(),
            port: config.tunnel_port,
        });

        let creds = register(&config, &facts, &agent_url, vtep, tunnel.clone()).await?;
        let client = Client::new(ClientConfig {
            servers: config.servers.clone(),
            token: creds.node_token.clone(),
            ca_cert_pem: creds.ca_cert_pem.clone(),
        })?;

        state::register_metrics(&config.registry);
        let lease_ttl = Duration::from_millis(creds.lease_ttl_ms.max(1000));
        let fence = if config.hollow {
            None
        } else {
            let mut f = fence::Fence::new(config.data_dir.join("fence")).map_err(|source| {
                AgentError::Io {
                    what: "cannot create the fence directory".into(),
                    source,
                }
            })?;
            if let Some(cmd) = &config.watchdog_command {
                f = f.with_watchdog(cmd.clone(), lease_ttl);
            }
            // Registration was just acknowledged; VMs adopted from an earlier run are
            // guarded again at once.
            f.alive();
            f.ensure_watchdog();
            Some(Arc::new(f))
        };
        let shared = Arc::new(state::Shared {
            node_name: creds.name.clone(),
            data_dir: config.data_dir.clone(),
            client: client.clone(),
            server_token: creds.server_token.clone(),
            stop_timeout: config.stop_timeout,
            images: images::ImageCache::new(config.data_dir.join("images"), client.clone()),
            workers: Default::default(),
            registry: config.registry.clone(),
            fence: fence.clone(),
            lease_ttl,
            hollow: config.hollow,
            report_slots: tokio::sync::Semaphore::new(4),
            dwcp_identity: std::sync::RwLock::new(novacron_dwcp::TlsIdentity {
                ca_cert_pem: creds.ca_cert_pem.clone(),
                cert_pem: creds.cert_pem.clone(),
                key_pem: creds.key_pem.clone(),
            }),
            revoked: watch::channel(None).0,
            migration_ip: local.ip(),
            advertise_host: host.clone(),
            migrations: Default::default(),
            vm_users: users::VmUsers::new(&config.data_dir),
            latest_sample: Default::default(),
        });

        let identity = novacron_tls::Identity {
            cert_pem: creds.cert_pem.clone(),
            key_pem: creds.key_pem.clone(),
        };
        let cert = novacron_tls::ReloadableCert::new(&identity)?;
        let tls = novacron_tls::reloadable_server_config(cert.clone())?;
        let serve = novacron_tls::serve_https(listener, tls, api::router(shared.clone())).map_err(
            |source| AgentError::Io {
                what: "serving the agent endpoint".into(),
                source,
            },
        )?;

        let heartbeat = heartbeat::Heartbeat::start(heartbeat::HeartbeatConfig {
            // Its own client: one connection of its own, kept alive by the beats.
            client: Client::new(ClientConfig {
                servers: config.servers.clone(),
                token: creds.node_token.clone(),
                ca_cert_pem: creds.ca_cert_pem.clone(),
            })?,
            interval: config
                .heartbeat_interval
                .min(lease_ttl / 5)
                .max(Duration::from_millis(200)),
            fence: fence.clone(),
            running_vms: {
                let shared = shared.clone();
                Arc::new(move || shared.running_count())
            },
            take_sample: {
                let shared = shared.clone();
                Arc::new(move || shared.take_sample())
            },
        })
        .map_err(|source| AgentError::Io {
            what: "cannot start the heartbeat thread".into(),
            source,
        })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(worker::reconcile_loop(shared.clone(), stop_rx.clone())),
            tokio::spawn(overlay_loop(
                client.clone(),
                // A hollow node builds overlays only when given its own VTEP (scale
                // benchmarks run each in a namespace of its own); in-process hollow nodes
                // would all reconcile the host's namespace.
                if config.hollow {
                    config.vtep_address
                } else {
                    vtep
                },
                config.data_dir.clone(),
                tunnel_key.map(|k| (k, config.tunnel_port)),
                stop_rx.clone(),
            )),
            tokio::spawn(renew_loop(
                shared.clone(),
                cert,
                creds,
                register_request(&config, &facts, &agent_url, vtep, tunnel),
                stop_rx.clone(),
            )),
        ];
        if !config.hollow {
            tasks.push(tokio::spawn(stats::sample_loop(
                shared.clone(),
                stop_rx.clone(),
            )));
        }
        tracing::info!(node = %config.name, url = %agent_url, "agent running");
        Ok(Agent {
            name: config.name,
            agent_url,
            stop_tx,
            tasks,
            serve,
            heartbeat,
            fence,
            revoked: shared.revoked.subscribe(),
        })
    }

    /// Resolves, with the reason, once the control plane refuses this node's credentials
    /// (the node was deleted): the agent can do nothing more, and its owner should stop it.
    pub async fn revoked(&self) -> String {
        let mut rx = self.revoked.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or_default(),
            // The agent's state is gone: it is stopping anyway, so never resolve.
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops the agent. VMs keep running; the next agent start adopts them. The fence
    /// watchdog keeps guarding HA VMs (the control plane restarts them elsewhere once the
    /// lease runs out, so they must be fenced), and ends by itself when it guards none.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        self.heartbeat.stop().await;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.serve.stop().await;
    }

    /// Stops the agent and its fence watchdog, leaving HA VMs running unguarded. Only for
    /// an agent whose control plane stops with it (`novacron up`): with no control plane
    /// left, nobody restarts the VMs elsewhere, so fencing them would only kill them.
    pub async fn stop_and_end_fencing(self) {
        let fence = self.fence.clone();
        self.stop().await;
        if let Some(f) = fence {
            let stopped =
                tokio::task::spawn_blocking(move || f.stop_watchdog(Duration::from_secs(3)))
                    .await
                    .unwrap_or(false);
            if !stopped {
                tracing::warn!("the fence watchdog did not stop within 3 s");
            }
        }
    }
}

/// Overlay networks on this node, when it has a VTEP (see [`overlay`]).
async fn overlay_loop(
    client: Client,
    vtep: Option<std::net::Ipv4Addr>,
    data_dir: PathBuf,
    tunnel: Option<(Arc<novacron_net::TunnelKey>, u16)>,
    stop: watch::Receiver<bool>,
) {
    match vtep {
        Some(vtep) => overlay::run(client, vtep, data_dir, tunnel, stop).await,
        None => tracing::info!("no VTEP address: this node takes no part in overlay networks"),
    }
}

/// The VTEP the agent advertises: the configured one, else the advertised host or the
/// listen address when either is a usable IPv4 address.
fn vtep_address(
    configured: Option<std::net::Ipv4Addr>,
    advertised_host: &str,
    listen: std::net::IpAddr,
) -> Option<std::net::Ipv4Addr> {
    let usable =
        |ip: std::net::Ipv4Addr| !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast());
    configured.or_else(|| {
        advertised_host
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .filter(|ip| usable(*ip))
            .or(match listen {
                std::net::IpAddr::V4(ip) if usable(ip) => Some(ip),
                _ => None,
            })
    })
}

fn register_request(
    config: &AgentConfig,
    facts: &HostFacts,
    agent_url: &str,
    vtep: Option<std::net::Ipv4Addr>,
    tunnel: Option<TunnelEndpoint>,
) -> RegisterRequest {
    RegisterRequest {
        vtep_address: vtep.map(|ip| ip.to_string()),
        site: config.site.clone(),
        tunnel,
        name: config.name.clone(),
        capacity: facts.capacity,
        agent_url: agent_url.to_string(),
        kvm_usable: facts.kvm_usable,
        qemu_version: facts.qemu_version.clone(),
        bridges: facts.bridges.clone(),
    }
}

async fn register(
    config: &AgentConfig,
    facts: &HostFacts,
    agent_url: &str,
    vtep: Option<std::net::Ipv4Addr>,
    tunnel: Option<TunnelEndpoint>,
) -> Result<Credentials, AgentError> {
    let req = register_request(config, facts, agent_url, vtep, tunnel);
    let saved = Credentials::load(&config.data_dir)?;
    if let Some(saved) = saved.filter(|c| c.name == config.name) {
        let client = Client::new(ClientConfig {
            servers: config.servers.clone(),
            token: saved.node_token.clone(),
            ca_cert_pem: saved.ca_cert_pem.clone(),
        })?;
        match retry_register(&client, &req).await {
            Ok(resp) => {
                let creds = Credentials::from_response(&config.name, resp);
                creds.save(&config.data_dir)?;
                return Ok(creds);
            }
            Err(ClientError::Api(e))
                if e.code == novacron_api_types::ErrorCode::Unauthenticated
                    && config.join_token.is_some() =>
            {
                tracing::warn!(node = %config.name, "stored node credentials were refused; joining again with the join token");
            }
            Err(ClientError::Api(e))
                if e.code == novacron_api_types::ErrorCode::Unauthenticated =>
            {
                return Err(AgentError::Config(format!(
                    "the control plane refused the credentials of node {} in {} (the node was deleted, or its token revoked): join again with a new --join-token",
                    config.name,
                    config.data_dir.display()
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some(token) = &config.join_token else {
        return Err(AgentError::Config(format!(
            "node {} has no credentials in {} yet: pass --join-token (printed by `novacron up` / `novacron server`)",
            config.name,
            config.data_dir.display()
        )));
    };
    let join = JoinToken::parse(token)?;
    let mut last = None;
    let mut ca = None;
    for server in &config.servers {
        match novacron_client::fetch_pinned_ca(server, &join.ca_fingerprint).await {
            Ok(pem) => {
                ca = Some(pem);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let ca = match (ca, last) {
        (Some(ca), _) => ca,
        (None, Some(e)) => return Err(e.into()),
        (None, None) => return Err(AgentError::Config("no --server given".into())),
    };
    let client = Client::new(ClientConfig {
        servers: config.servers.clone(),
        token: join.secret.clone(),
        ca_cert_pem: ca,
    })?;
    let resp = retry_register(&client, &req).await?;
    let creds = Credentials::from_response(&config.name, resp);
    creds.save(&config.data_dir)?;
    Ok(creds)
}

/// Registration retries while the control plane is unreachable (it may be starting too).
async fn retry_register(
    client: &Client,
    req: &RegisterRequest,
) -> Result<novacron_api_types::agent::RegisterResponse, ClientError> {
    let mut delay = Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match client.agent_register(req).await {
            Err(ClientError::Unreachable { url, why })
                if tokio::time::Instant::now() < deadline =>
            {
                tracing::info!(%url, %why, "control plane unreachable; retrying registration");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Renews the node certificate two thirds into its life by registering again with the node
/// token (which issues a new certificate for the same names), then serves the new one on the
/// agent endpoint and for DWCP without a restart. Retries every minute while the control
/// plane is unreachable; stops for good if it refuses the node's credentials.
async fn renew_loop(
    shared: Arc<state::Shared>,
    cert: Arc<novacron_tls::ReloadableCert>,
    mut creds: Credentials,
    req: RegisterRequest,
    mut stop: watch::Receiver<bool>,
) {
    const RETRY: Duration = Duration::from_secs(60);
    let mut wait = creds.renew_in();
    loop {
        let Some(delay) = wait else {
            tracing::info!(node = %shared.node_name, "the control plane did not say when the node certificate expires; it is not renewed");
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        match shared.client.agent_register(&req).await {
            Ok(resp) => {
                let fresh = Credentials::from_response(&creds.name, resp);
                let identity = novacron_tls::Identity {
                    cert_pem: fresh.cert_pem.clone(),
                    key_pem: fresh.key_pem.clone(),
                };
                if let Err(e) = fresh.save(&shared.data_dir) {
                    tracing::warn!(node = %shared.node_name, error = %e, "saving the renewed certificate failed");
                }
                if let Err(e) = cert.replace(&identity) {
                    tracing::warn!(node = %shared.node_name, error = %e, "the renewed certificate cannot be served; retrying");
                    wait = Some(RETRY);
                    continue;
                }
                *shared
                    .dwcp_identity
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = novacron_dwcp::TlsIdentity {
                    ca_cert_pem: fresh.ca_cert_pem.clone(),
                    cert_pem: fresh.cert_pem.clone(),
                    key_pem: fresh.key_pem.clone(),
                };
                tracing::info!(node = %shared.node_name, not_after = ?fresh.cert_not_after, "node certificate renewed");
                creds = fresh;
                wait = creds.renew_in();
            }
            Err(ClientError::Api(e))
                if e.code == novacron_api_types::ErrorCode::Unauthenticated =>
            {
                shared.mark_revoked(&e.message);
                return;
            }
            Err(e) => {
                tracing::warn!(node = %shared.node_name, error = %e, "renewing the node certificate failed; retrying in a minute");
                wait = Some(RETRY);
            }
        }
    }
}

/// Each VM's QEMU runs as a user of its own (see [`users`]) that must pass through the data
/// directory to its files: the directory is opened for passing (`o+x`, not listing), and a
/// closed directory above it is refused with the command that fixes it.
fn open_data_dir_to_vm_users(data_dir: &std::path::Path) -> Result<(), AgentError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    users::open_for_passing(data_dir).map_err(AgentError::Config)?;
    let closed = users::closed_ancestors(data_dir);
    if let Some(dir) = closed.first() {
        return Err(AgentError::Config(format!(
            "each VM's QEMU runs as a user of its own, which cannot pass through {} on the way to the data directory {}: run `chmod o+x {}` or choose another --data-dir",
            dir.display(),
            data_dir.display(),
            dir.display()
        )));
    }
    Ok(())
}
