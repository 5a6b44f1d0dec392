//! The long-running roles (`up`, `server`, `agent`) and the interactive console.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use novacron_agent::{Agent, AgentConfig};
use novacron_api_types::{AccelChoice, ErrorCode, Network, NodeState, VmCreateRequest, VmState};
use novacron_client::{Client, ClientError, Config, default_config_path};
use novacron_server::{Server, ServerConfig, TokenKind};
use novacron_store::StoreUrl;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::output::Format;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// A TOML file of settings whose keys are this command's long flags (`listen =
    /// "0.0.0.0:9440"`, lists for repeatable flags); flags and environment variables win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the store, images and VM disks live.
    #[arg(long, env = "NOVACRON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// API address.
    #[arg(long, default_value = "127.0.0.1:9440")]
    pub listen: SocketAddr,
    /// Accelerator of the demo VM.
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Do not create the demo VM.
    #[arg(long)]
    pub no_demo: bool,
    /// Name of this machine's node (default: derived from the host name).
    #[arg(long)]
    pub node_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// A TOML file of settings whose keys are this command's long flags (`listen =
    /// "0.0.0.0:9440"`, lists for repeatable flags); flags and environment variables win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the control plane keeps its store, CA key and images.
    #[arg(long, env = "NOVACRON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the API listens on.
    #[arg(long, default_value = "127.0.0.1:9440")]
    pub listen: SocketAddr,
    /// State store: a SQLite file path (`sqlite:///path`), or `etcd://host:2379,host:2379`.
    /// Default: the embedded store in the data dir.
    #[arg(long)]
    pub store: Option<String>,
    /// A node without a heartbeat for this long is lost: its agent fences its HA VMs, and
    /// they restart elsewhere shortly after.
    #[arg(long, default_value_t = 5)]
    pub node_lease_secs: u64,
    /// Extra wait after a node's lease expired before its HA VMs restart elsewhere.
    #[arg(long, default_value_t = 2)]
    pub fence_margin_secs: u64,
    /// URL agents and other replicas use for this replica (default: from --listen).
    #[arg(long)]
    pub advertise_url: Option<String>,
    /// This replica's name in `cluster status`.
    #[arg(long)]
    pub member_id: Option<String>,
    /// Extra names or IPs for the API certificate.
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// Days node certificates last; agents renew theirs after two thirds of that.
    #[arg(long, default_value_t = 30)]
    pub node_cert_days: u64,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// A TOML file of settings whose keys are this command's long flags (`listen =
    /// "0.0.0.0:9440"`, lists for repeatable flags); flags and environment variables win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Control-plane URL(s), comma-separated or repeated.
    #[arg(long = "server", required = true, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Join token printed by `novacron up` / `novacron server` (needed the first time).
    #[arg(long, env = "NOVACRON_JOIN_TOKEN")]
    pub join_token: Option<String>,
    /// This node's name in the cluster.
    #[arg(long)]
    pub name: String,
    /// Where the agent keeps disks, sockets and its identity.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address of the agent's own endpoint (port 0: any free port).
    #[arg(long, default_value = "0.0.0.0:0")]
    pub listen: SocketAddr,
    /// Host or IP the control plane uses to reach this agent (default: the address this host
    /// uses to reach the control plane).
    #[arg(long)]
    pub advertise: Option<String>,
    /// This node's VTEP for overlay networks: the IPv4 address other nodes send its VXLAN
    /// traffic to (default: the advertised address when it is IPv4).
    #[arg(long, value_name = "IP")]
    pub vtep_address: Option<std::net::Ipv4Addr>,
    /// The site this node is in (a name like `east`); default: the default site. Overlay
    /// traffic between nodes of different sites is encrypted (WireGuard's protocol, in the
    /// agent) and sent to the other node's VTEP address on `--tunnel-port`.
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// UDP port of this node's end of the tunnel between sites (open it between sites).
    #[arg(long, value_name = "PORT", default_value_t = novacron_net::DEFAULT_TUNNEL_PORT)]
    pub tunnel_port: u16,
    /// Seconds a guest gets to power off before it is killed.
    #[arg(long, default_value_t = 30)]
    pub stop_timeout_secs: u64,
    /// For scale benchmarks only (`novacron bench network` starts its nodes with it), hidden
    /// from `--help`: a hollow node registers and heartbeats like any other, and reports its
    /// VMs running without starting QEMU (no disks, no taps, no fence watchdog).
    #[arg(long, hide = true)]
    pub hollow: bool,
}

#[derive(Args, Debug)]
pub struct WatchdogArgs {
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub timeout_ms: u64,
}

/// How the agent starts its fence watchdog: this very binary.
fn watchdog_command() -> Option<Vec<String>> {
    let exe = std::env::current_exe().ok()?;
    Some(vec![
        exe.to_string_lossy().into_owned(),
        "fence-watchdog".into(),
    ])
}

/// `novacron fence-watchdog` (started by the agent, not by hand).
pub fn fence_watchdog(args: WatchdogArgs) -> anyhow::Result<()> {
    novacron_agent::fence::run_watchdog(&args.dir, Duration::from_millis(args.timeout_ms))
        .with_context(|| format!("fence watchdog in {}", args.dir.display()))
}

/// The file's settings were folded into the arguments before parsing
/// ([`crate::config_file`]); the log says where they came from.
fn note_config_file(file: Option<&Path>) {
    if let Some(file) = file {
        tracing::info!(file = %file.display(), "settings read from the config file (flags and environment variables win over it)");
    }
}

fn default_data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/novacron");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("novacron")
}

fn host_node_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut name: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name = name.trim_matches('-').chars().take(63).collect();
    if novacron_api_types::validate_name("node", &name).is_err() {
        name = "node-1".into();
    }
    name
}

fn registry() -> Arc<Mutex<Registry>> {
    Arc::new(Mutex::new(Registry::default()))
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Keeps the admin token of the CLI config when it is still valid, otherwise mints one;
/// writes the config so the CLI on this machine works at once. Returns the config path.
async fn ensure_cli_config(server: &Server) -> anyhow::Result<(PathBuf, Config)> {
    let path = default_config_path();
    let existing: Option<Config> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let token = match existing {
        Some(c) if server.token_is(&c.token, TokenKind::Admin) => c.token,
        _ => server.issue_token(TokenKind::Admin).await?,
    };
    let config = Config {
        servers: vec![server.url.clone()],
        token,
        ca_cert_pem: server.ca_cert_pem().to_string(),
    };
    config.save(&path)?;
    Ok((path, config))
}

/// The join secret kept in `<data dir>/join-token`, reused while valid.
async fn ensure_join_token(server: &Server, data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("join-token");
    if let Ok(s) = std::fs::read_to_string(&path)
        && server.token_is(s.trim(), TokenKind::Join)
    {
        return Ok(server.join_token_string(s.trim())?);
    }
    let secret = server.issue_token(TokenKind::Join).await?;
    write_secret(&path, &secret)?;
    Ok(server.join_token_string(&secret)?)
}

/// Creates the data dir owner-only and narrows whatever in it group or other can read (see
/// [`crate::perms`]); every role calls this before it opens or writes anything there.
fn prepare_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    crate::perms::create_private_dir(data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    crate::perms::audit(data_dir);
    Ok(())
}

/// Opens a SQLite store, its file created owner-only first: SQLite gives the WAL and shared
/// memory files the database file's mode.
async fn open_sqlite(db: &Path) -> anyhow::Result<Arc<dyn novacron_store::Store>> {
    // A directory of the user's choosing is created owner-only but, when it exists, left as it is.
    if let Some(dir) = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        crate::perms::create_private_dir(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::perms::create_private_file(db)
        .with_context(|| format!("cannot create the store {}", db.display()))?;
    Ok(novacron_store::open_store(&StoreUrl::Sqlite(db.to_path_buf())).await?)
}

async fn open_embedded(data_dir: &Path) -> anyhow::Result<Arc<dyn novacron_store::Store>> {
    prepare_data_dir(data_dir)?;
    open_sqlite(&data_dir.join("state.db")).await
}

/// `novacron up`: control plane + local agent + embedded store (+ demo VM).
pub async fn up(args: UpArgs, out: Format) -> anyhow::Result<()> {
    note_config_file(args.config.as_deref());
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let store = open_embedded(&data_dir).await?;
    let metrics = registry();
    let server = Server::start(ServerConfig {
        store,
        data_dir: data_dir.join("control-plane"),
        listen: args.listen,
        extra_sans: vec![],
        node_lease_ttl: Duration::from_secs(10),
        fence_margin: Duration::from_secs(2),
        node_cert_ttl: novacron_server::DEFAULT_NODE_CERT_TTL,
        advertise_url: None,
        registry: metrics.clone(),
        member_id: None,
        store_backend: "sqlite".into(),
    })
    .await?;
    let (config_path, config) = ensure_cli_config(&server).await?;
    let join_token = ensure_join_token(&server, &data_dir).await?;
    let node_name = args.node_name.unwrap_or_else(host_node_name);
    // The agent's VMs run as users of their own, who pass through here to their files.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        novacron_agent::users::open_for_passing(&data_dir).map_err(anyhow::Error::msg)?;
    }
    let agent = Agent::start(AgentConfig {
        servers: vec![server.url.clone()],
        join_token: Some(join_token.clone()),
        name: node_name.clone(),
        data_dir: data_dir.join("agent"),
        listen: "127.0.0.1:0".parse()?,
        advertise: None,
        heartbeat_interval: Duration::from_secs(2),
        stop_timeout: Duration::from_secs(30),
        registry: metrics,
        watchdog_command: watchdog_command(),
        hollow: false,
        vtep_address: None,
        site: None,
        tunnel_port: novacron_net::DEFAULT_TUNNEL_PORT,
    })
    .await?;

    let summary = serde_json::json!({
        "api_url": server.url,
        "ui_url": format!("{}/ui/", server.url.trim_end_matches('/')),
        "config_path": config_path,
        "node": node_name,
        "data_dir": data_dir,
        "join_token": join_token,
    });
    match out {
        Format::Json => println!("{summary}"),
        Format::Table => {
            println!("NovaCron is up.");
            println!("  API:         {}", server.url);
            println!(
                "  Web console: {}/ui/ (log in with a token from `novacron token create --name web`)",
                server.url.trim_end_matches('/')
            );
            println!(
                "  CLI config:  {} (token and CA for `novacron` commands)",
                config_path.display()
            );
            println!("  Node:        {node_name}");
            println!("  Data dir:    {}", data_dir.display());
            println!(
                "  Join a node: novacron agent --server {} --join-token {join_token} --name node-b --data-dir DIR",
                server.url
            );
        }
    }
    let client = Client::new(config)?;
    wait_node_ready(&client, &node_name, out).await?;
    crate::systemd::ready(&format!(
        "serving at {}, node {node_name} ready",
        server.url
    ));
    if !args.no_demo {
        match demo(&client, args.accel, out).await {
            Ok(()) => {}
            Err(e) => eprintln!("warning: the demo VM could not be started: {e:#}"),
        }
    }
    if out == Format::Table {
        println!(
            "Press Ctrl-C to stop NovaCron (VMs keep running and are adopted again by the next `novacron up`)."
        );
    }
    wait_for_signal().await;
    crate::systemd::stopping();
    eprintln!("stopping NovaCron...");
    agent.stop_and_end_fencing().await;
    server.stop().await;
    Ok(())
}

/// Waits until the local node holds a live lease, so that placing the demo VM (or the
/// user's first VM) does not race the agent's first heartbeat after a restart, and says
/// what it waits for when that takes more than a moment.
async fn wait_node_ready(client: &Client, node: &str, out: Format) -> anyhow::Result<()> {
    const LIMIT: Duration = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let state = match client.node_get(node).await {
            Ok(n) => Some(n.state),
            Err(ClientError::Api(e)) if e.code == ErrorCode::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        match state {
            Some(NodeState::Down) | None => {}
            Some(_) => {
                if said && out == Format::Table {
                    println!("Node {node} is ready.");
                }
                return Ok(());
            }
        }
        if !said && started.elapsed() > Duration::from_secs(1) && out == Format::Table {
            println!(
                "Waiting for node {node} to report ready (its agent registers and renews the node's lease)..."
            );
            said = true;
        }
        if started.elapsed() > LIMIT {
            anyhow::bail!(
                "node {node} did not report ready within {} s: see `novacron node show {node}` and the agent's log above",
                LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Builds the tiny image and boots the demo VM (or starts it again).
async fn demo(client: &Client, accel: AccelChoice, out: Format) -> anyhow::Result<()> {
    let say = |m: &str| {
        if out == Format::Table {
            println!("{m}");
        }
    };
    match client.image_get("tiny").await {
        Ok(_) => {}
        Err(ClientError::Api(e)) if e.code == ErrorCode::NotFound => {
            say("Building the tiny image from the host kernel and busybox...");
            client.image_build_tiny("tiny").await?;
        }
        Err(e) => return Err(e.into()),
    }
    let op = match client.vm_get("demo").await {
        Ok(vm) if vm.state == VmState::Running => None,
        Ok(_) => Some(client.vm_action("demo", "start").await?.operation),
        Err(ClientError::Api(e)) if e.code == ErrorCode::NotFound => {
            say("Booting the demo VM...");
            Some(
                client
                    .vm_create(&VmCreateRequest {
                        name: "demo".into(),
                        image: "tiny".into(),
                        cpus: 1,
                        memory_bytes: 128 << 20,
                        disk_bytes: None,
                        node: None,
                        accel,
                        network: Network::default(),
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
                    })
                    .await?
                    .operation,
            )
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(op) = op {
        crate::cli::wait_op(client, op, Duration::from_secs(120)).await?;
    }
    say("Demo VM `demo` is running. Try: novacron vm list; novacron vm console demo --tail");
    Ok(())
}

/// `novacron server`: the control plane alone.
pub async fn server(args: ServerArgs, out: Format) -> anyhow::Result<()> {
    note_config_file(args.config.as_deref());
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let (store, backend) = match &args.store {
        Some(url) => {
            prepare_data_dir(&data_dir)?;
            match novacron_store::parse_store_url(url)? {
                StoreUrl::Sqlite(db) => (open_sqlite(&db).await?, "sqlite"),
                parsed @ StoreUrl::Etcd(_) => (novacron_store::open_store(&parsed).await?, "etcd"),
            }
        }
        None => (open_embedded(&data_dir).await?, "sqlite"),
    };
    let server = Server::start(ServerConfig {
        store,
        data_dir: data_dir.join("control-plane"),
        listen: args.listen,
        extra_sans: args.sans,
        node_lease_ttl: Duration::from_secs(args.node_lease_secs.max(2)),
        fence_margin: Duration::from_secs(args.fence_margin_secs),
        node_cert_ttl: Duration::from_secs(args.node_cert_days.max(1) * 86400),
        advertise_url: args.advertise_url,
        registry: registry(),
        member_id: args.member_id,
        store_backend: backend.into(),
    })
    .await?;
    let (config_path, _) = ensure_cli_config(&server).await?;
    let join_token = ensure_join_token(&server, &data_dir).await?;
    match out {
        Format::Json => println!(
            "{}",
            serde_json::json!({"api_url": server.url, "config_path": config_path, "join_token": join_token})
        ),
        Format::Table => {
            println!("NovaCron control plane serving at {}", server.url);
            println!("  CLI config:  {}", config_path.display());
            println!("  Join token:  {join_token}");
        }
    }
    crate::systemd::ready(&format!("serving at {}", server.url));
    wait_for_signal().await;
    crate::systemd::stopping();
    server.stop().await;
    Ok(())
}

/// The local address this host uses to reach `url`'s host (what the control plane will see).
fn route_source(url: &str) -> Option<String> {
    let rest = url.split("://").nth(1)?;
    let hostport = rest.split('/').next()?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .ok()?
        .next()?;
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = std::net::UdpSocket::bind(bind).ok()?;
    sock.connect(addr).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
}

/// `novacron agent`: a node agent.
pub async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    note_config_file(args.config.as_deref());
    prepare_data_dir(&args.data_dir)?;
    let advertise = args
        .advertise
        .or_else(|| args.servers.first().and_then(|s| route_source(s)));
    let agent = Agent::start(AgentConfig {
        servers: args.servers,
        join_token: args.join_token,
        name: args.name,
        data_dir: args.data_dir,
        listen: args.listen,
        advertise,
        heartbeat_interval: Duration::from_secs(2),
        stop_timeout: Duration::from_secs(args.stop_timeout_secs),
        registry: registry(),
        watchdog_command: if args.hollow {
            None
        } else {
            watchdog_command()
        },
        hollow: args.hollow,
        vtep_address: args.vtep_address,
        site: args.site,
        tunnel_port: args.tunnel_port,
    })
    .await?;
    eprintln!(
        "node {} joined; agent endpoint {}",
        agent.name, agent.agent_url
    );
    crate::systemd::ready(&format!("node {} joined", agent.name));
    // A deleted node's agent stops with one clear error instead of retrying forever.
    let revoked = tokio::select! {
        _ = wait_for_signal() => None,
        why = agent.revoked() => Some(why),
    };
    crate::systemd::stopping();
    agent.stop().await;
    match revoked {
        Some(why) => anyhow::bail!(
            "the control plane refused this node's credentials ({why}): the node was deleted or its token revoked; join again with a new --join-token and an empty --data-dir"
        ),
        None => Ok(()),
    }
}

/// Restores the terminal mode when dropped.
struct RawMode(Option<libc::termios>);

impl RawMode {
    fn enable() -> RawMode {
        // SAFETY: termios is plain data; tcgetattr fills it for fd 0 or fails.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawMode(None);
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return RawMode(None);
            }
            RawMode(Some(saved))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restores the attributes read in `enable`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

/// Ctrl-] ends an interactive session.
const DETACH: u8 = 0x1d;

/// Interactive serial console. With a terminal: raw mode, Ctrl-] detaches. Without one:
/// stdin is sent to the guest, and the command ends one second after stdin ends and the
/// guest fell quiet (handy in scripts: `echo uname -a | novacron vm console web1`).
pub async fn console_attach(client: &Client, name: &str) -> anyhow::Result<()> {
    let upgraded = client.vm_console_attach(name).await?;
    let (mut rd, mut wr) = tokio::io::split(upgraded);
    let interactive = crate::cli::is_tty(0);
    let _raw = if interactive {
        eprintln!("Connected to the console of {name} (Ctrl-] to detach).\r");
        Some(RawMode::enable())
    } else {
        None
    };
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut inbuf = [0u8; 4096];
    let mut outbuf = [0u8; 16384];
    let mut stdin_open = true;
    // After stdin ends: leave once the guest is quiet for 1 s, or after 10 s for a guest
    // that never stops printing.
    let mut until = tokio::time::Instant::now() + Duration::from_secs(3600);
    loop {
        let quiet = tokio::time::sleep(Duration::from_secs(1));
        let cap = tokio::time::sleep_until(until);
        tokio::select! {
            n = stdin.read(&mut inbuf), if stdin_open => {
                let n = n?;
                if n == 0 {
                    stdin_open = false;
                    until = tokio::time::Instant::now() + Duration::from_secs(10);
                    continue;
                }
                let data = &inbuf[..n];
                if interactive && let Some(pos) = data.iter().position(|&b| b == DETACH) {
                    wr.write_all(&data[..pos]).await?;
                    break;
                }
                wr.write_all(data).await?;
            }
            n = rd.read(&mut outbuf) => {
                let n = n?;
                if n == 0 {
                    if interactive { eprintln!("\r\nconsole closed (the VM stopped?)\r"); }
                    break;
                }
                stdout.write_all(&outbuf[..n]).await?;
                stdout.flush().await?;
            }
            _ = quiet, if !stdin_open => break,
            _ = cap, if !stdin_open => break,
        }
    }
    if interactive {
        eprintln!("\r\ndetached\r");
    }
    Ok(())
}

/// `novacron store migrate --to etcd://...`: copies the embedded store into etcd.
pub async fn store_migrate(
    to: &str,
    data_dir: Option<PathBuf>,
    overwrite: bool,
    out: Format,
) -> anyhow::Result<()> {
    let data_dir = data_dir.unwrap_or_else(default_data_dir);
    let db = data_dir.join("state.db");
    if !db.exists() {
        anyhow::bail!(
            "no embedded store at {}: pass --data-dir of the single-node install",
            db.display()
        );
    }
    let target = novacron_store::parse_store_url(to)?;
    if !matches!(target, StoreUrl::Etcd(_)) {
        anyhow::bail!("--to must be an etcd URL such as etcd://10.0.0.1:2379,10.0.0.2:2379");
    }
    let from = novacron_store::open_store(&StoreUrl::Sqlite(db.clone()))
        .await
        .with_context(|| {
            format!(
                "opening {} (stop `novacron up`/`server` first)",
                db.display()
            )
        })?;
    let to_store = novacron_store::open_store(&target).await?;
    let opts = novacron_store::CopyOptions {
        prefixes: vec!["/novacron/".into()],
        overwrite,
    };
    let n = novacron_store::copy_with_options(from.as_ref(), to_store.as_ref(), &opts).await?;
    match out {
        Format::Json => println!("{}", serde_json::json!({"keys_copied": n, "to": to})),
        Format::Table => {
            println!("copied {n} keys from {} to {to}", db.display());
            println!(
                "start the control plane with: novacron server --store {to} --data-dir {}",
                data_dir.display()
            );
        }
    }
    Ok(())
}
