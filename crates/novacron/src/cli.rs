//! The command line: `novacron <noun> <verb>`, every command with `-o json`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use novacron_api_types::{
    AccelChoice, Image, ImageKind, Network, Node, Operation, OperationState, PortForward, Vm,
    VmCreateRequest, format_size, parse_size,
};
use novacron_client::{Client, Config};

use crate::output::{self, Format, ago};
use crate::roles;

#[derive(Parser, Debug)]
#[command(
    name = "novacron",
    version,
    about = "NovaCron distributed hypervisor",
    propagate_version = true,
    after_help = "Examples:\n  \
        novacron up                                   # a whole cluster on this machine\n  \
        novacron vm create web1 --image tiny --memory 256M\n  \
        novacron vm list -o json\n  \
        novacron events --follow --kind vm,migration\n  \
        novacron completion bash > /etc/bash_completion.d/novacron"
)]
pub struct Cli {
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// The project commands act in (default: NOVACRON_PROJECT, else the CLI config's
    /// default from `project use`, else the token's project, else `default`).
    #[arg(long, global = true, env = "NOVACRON_PROJECT")]
    pub project: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Long-running roles log at info level by default; CLI commands stay quiet.
    pub fn is_daemon(&self) -> bool {
        matches!(
            self.command,
            Command::Up(_) | Command::Server(_) | Command::Agent(_)
        )
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a whole cluster on this machine: control plane, a node agent, embedded store, demo VM.
    Up(roles::UpArgs),
    /// Run the control plane.
    Server(roles::ServerArgs),
    /// Run a node agent that joins a control plane.
    Agent(roles::AgentArgs),
    /// Virtual machines.
    #[command(subcommand)]
    Vm(VmCommand),
    /// Nodes (hosts running an agent).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Projects: create, list, show, delete, set limits, usage, use (the CLI's default).
    #[command(subcommand)]
    Project(crate::tenancy::ProjectCommand),
    /// Local users: create, list, delete.
    #[command(subcommand)]
    User(crate::tenancy::UserCommand),
    /// Who holds which role: a user's role in a project or in the cluster.
    #[command(subcommand)]
    RoleBinding(crate::tenancy::RoleBindingCommand),
    /// API tokens: create (printed once), list, revoke.
    #[command(subcommand)]
    Token(crate::tenancy::TokenCommand),
    /// Exchange a user's password for a token kept in the CLI config.
    Login(crate::tenancy::LoginArgs),
    /// Who the configured token is, and its roles (cluster, and per project).
    Whoami,
    /// The audit log (a hash chain of every change and refusal): list, verify, export.
    #[command(subcommand)]
    Audit(crate::audit::AuditCommand),
    /// Tokens that let new nodes join: create, list, revoke.
    #[command(subcommand)]
    JoinToken(crate::join_tokens::JoinTokenCommand),
    /// Overlay networks spanning every node: create, list, show, delete.
    #[command(subcommand)]
    Network(crate::networks::NetworkCommand),
    /// Security groups: stateful firewall rules for VM NICs on overlay networks.
    #[command(subcommand)]
    SecurityGroup(crate::security_groups::SecurityGroupCommand),
    /// Bootable images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Long operations (create, start, stop...).
    #[command(subcommand)]
    Operation(OperationCommand),
    /// What happens in the cluster: VM states, operations, migrations, nodes, backups, HA.
    Events(crate::events::EventsArgs),
    /// Live migrations: list, show, cancel.
    #[command(subcommand)]
    Migration(crate::migrations::MigrationCommand),
    /// Storage pools shared by every node.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Backups: repositories, backups of VMs, restores, verify, prune, gc, schedules.
    #[command(subcommand)]
    Backup(crate::backups::BackupCommand),
    /// The control plane itself.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The state store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Benchmarks, measured side by side with their baselines.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Shell completions: `novacron completion bash|zsh|fish`.
    Completion(crate::docs::CompletionArgs),
    /// Man pages, generated from this command tree.
    Man(crate::docs::ManArgs),
    /// The HTTP API's OpenAPI document (`--agent`: the node agent API's), printed from this
    /// binary (no server needed).
    Openapi(crate::docs::OpenapiArgs),
    /// The fence watchdog an agent starts for itself.
    #[command(hide = true)]
    FenceWatchdog(roles::WatchdogArgs),
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Add a pool: a directory every node mounts at the same path (NFS, CephFS...).
    Add {
        /// Name of the new pool.
        name: String,
        /// Pool type (only `shared-dir` so far).
        #[arg(long = "type", default_value = "shared-dir")]
        kind: String,
        /// The directory, mounted at this same path on every node.
        #[arg(long)]
        path: String,
    },
    /// List pools.
    List,
    /// Remove a pool no VM uses.
    Delete {
        /// The pool's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Control-plane members, store health, controller leader, node leases.
    Status,
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy a single-node (embedded) store into etcd. Stop `novacron up`/`server` first.
    Migrate {
        /// Target, e.g. etcd://10.0.0.1:2379,10.0.0.2:2379
        #[arg(long)]
        to: String,
        /// Data dir of the single-node install (default as for `novacron up`).
        #[arg(long, env = "NOVACRON_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Overwrite NovaCron keys already in the target.
        #[arg(long)]
        overwrite: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum VmCommand {
    /// Create a VM (and start it, unless --no-start).
    #[command(
        after_help = "Example:\n  novacron vm create web1 --image tiny --memory 256M --forward 2222:22"
    )]
    Create(Box<VmCreateArgs>),
    /// List VMs.
    #[command(after_help = "Example:\n  novacron vm list --selector role=web -o json")]
    List {
        /// Only VMs whose labels match: KEY=VALUE, KEY!=VALUE or KEY, joined by commas.
        #[arg(long, short = 'l')]
        selector: Option<String>,
    },
    /// Snapshots of a VM's disk (and running state): create, list, revert, delete.
    #[command(
        after_help = "Examples:\n  novacron vm snapshot create web1 before-upgrade --memory\n  novacron vm snapshot revert web1 before-upgrade"
    )]
    Snapshot {
        #[command(subcommand)]
        cmd: crate::snapshots::SnapshotCommand,
    },
    /// A VM's disks: resize (grow) them.
    #[command(after_help = "Example:\n  novacron vm disk resize web1 disk0 --size 40G")]
    Disk {
        #[command(subcommand)]
        cmd: crate::disks::DiskCommand,
    },
    /// A VM's NICs: add one (on an overlay network, a node bridge or user NAT) or remove an
    /// added one, on a running or stopped VM.
    #[command(
        after_help = "Examples:\n  novacron vm nic add web1 --network app\n  novacron vm nic remove web1 nic1 --force"
    )]
    Nic {
        #[command(subcommand)]
        cmd: crate::nics::NicCommand,
    },
    /// Put a VM in these security groups (all of them; none leaves its overlay NICs
    /// unfiltered). Takes effect on a running VM.
    #[command(after_help = "Examples:
  novacron vm set-security-groups web1 web ssh
  novacron vm set-security-groups web1")]
    SetSecurityGroups(crate::security_groups::SetArgs),
    /// Make an image from a stopped VM's disk (flattened; the VM is kept as it was).
    #[command(after_help = "Example:\n  novacron vm template web1 --as web-golden")]
    Template(crate::disks::TemplateArgs),
    /// Make a new VM from a stopped VM: same settings, new uuid and MACs, its disk copied
    /// (or, with --linked, shared as a frozen base).
    #[command(
        after_help = "Examples:\n  novacron vm clone web1 web2\n  novacron vm clone web1 web3 --linked"
    )]
    Clone(crate::disks::CloneArgs),
    /// Change a VM: labels, description and bandwidth at once; CPUs and memory when it next
    /// starts.
    #[command(
        after_help = "Examples:\n  novacron vm set web1 --cpus 2 --memory 1G --label role=web --remove-label old\n  novacron vm set web1 --bandwidth 100mbit\n  novacron vm set web1 --bandwidth none"
    )]
    Set(VmSetArgs),
    /// Show one VM.
    #[command(after_help = "Example:\n  novacron vm show web1")]
    Show {
        /// The VM's name.
        name: String,
    },
    /// Start a stopped or crashed VM.
    #[command(after_help = "Example:\n  novacron vm start web1")]
    Start(VmActionArgs),
    /// Stop a VM (ACPI power-off, then force after a timeout).
    #[command(after_help = "Example:\n  novacron vm stop web1 --timeout 60")]
    Stop {
        #[command(flatten)]
        common: VmActionArgs,
        /// Kill QEMU at once instead of asking the guest.
        #[arg(long)]
        force: bool,
    },
    /// Reset a running VM.
    #[command(after_help = "Example:\n  novacron vm reboot web1")]
    Reboot(VmActionArgs),
    /// Pause a running VM.
    #[command(after_help = "Example:\n  novacron vm pause web1")]
    Pause(VmActionArgs),
    /// Resume a paused VM.
    #[command(after_help = "Example:\n  novacron vm resume web1")]
    Resume(VmActionArgs),
    /// Delete a VM and its disk (a running VM only with --force).
    #[command(after_help = "Example:\n  novacron vm delete web1 --force")]
    Delete {
        #[command(flatten)]
        common: VmActionArgs,
        /// Delete the VM even while it runs: QEMU is killed at once, the guest is not asked.
        #[arg(long)]
        force: bool,
    },
    /// Move a running VM to another node while it runs (live migration over DWCP).
    #[command(after_help = "Example:\n  novacron vm migrate web1 --to node2 --max-downtime 300ms")]
    Migrate(crate::migrations::MigrateArgs),
    /// A VM's usage: CPU, memory, disk and network totals and rates (from the last hour's samples).
    #[command(
        after_help = "Examples:\n  novacron vm stats web1\n  novacron vm stats web1 --watch\n  novacron vm stats web1 --since 1h -o json"
    )]
    Stats(crate::vm_stats::StatsArgs),
    /// Run a command inside the guest through its qemu-guest-agent, and exit with its status.
    #[command(
        after_help = "The guest must run qemu-guest-agent (the tiny image does). The command is not parsed by a shell:\nuse `sh -c '...'` for one. Its output is printed when it has ended; with -o json the answer is\nprinted as JSON (exit_code, stdout, stderr, encoding) and the CLI exits 0.\n\nExamples:\n  novacron vm exec web1 -- uname -a\n  novacron vm exec web1 --stdin -- sh -c 'cat > /etc/motd' < motd.txt\n  novacron vm exec web1 --timeout 5m -- sh -c 'apt-get -y upgrade'"
    )]
    Exec {
        /// The VM's name.
        name: String,
        /// Give the command what this CLI reads on its standard input (at most 1 MiB).
        #[arg(long, short = 'i')]
        stdin: bool,
        /// How long to wait for the command to end, e.g. 90s or 4m (at most 240s); it keeps running in the guest after that.
        #[arg(long, default_value = "60s")]
        timeout: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// The serial console: attach interactively (Ctrl-] detaches), or print what the guest
    /// wrote; or, with --vnc, serve the VM's screen to a VNC viewer on a local port.
    #[command(
        after_help = "Examples:\n  novacron vm console web1 --tail --bytes 4K\n  novacron vm console web1 --vnc --listen 127.0.0.1:5901   # then: vncviewer 127.0.0.1:5901"
    )]
    Console {
        /// The VM's name.
        name: String,
        /// Print the console log and exit.
        #[arg(long, conflicts_with = "vnc")]
        tail: bool,
        /// With --tail: how much of the end of the log to print.
        #[arg(long, default_value = "64K")]
        bytes: String,
        /// The graphical console of a VM created with --vnc: listen on a local port and relay
        /// each VNC viewer that connects to the VM's screen, through the API, until Ctrl-C.
        #[arg(long)]
        vnc: bool,
        /// With --vnc: the address to listen on (default 127.0.0.1:5901, or the next free port
        /// up to 5999; port 0 picks any free port). The relay asks viewers for no password:
        /// keep it on loopback.
        #[arg(long, value_name = "ADDR:PORT", requires = "vnc")]
        listen: Option<std::net::SocketAddr>,
    },
}

#[derive(Args, Debug)]
pub struct VmActionArgs {
    /// The VM's name.
    pub name: String,
    /// Return at once with the operation instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct VmSetArgs {
    /// The VM's name.
    pub name: String,
    /// Virtual CPUs (from the next start; at once when the VM is stopped).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory, e.g. 512M or 8G (from the next start; at once when the VM is stopped).
    #[arg(long)]
    pub memory: Option<String>,
    /// Add or overwrite a label, KEY=VALUE. Repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label_arg)]
    pub labels: Vec<(String, String)>,
    /// Remove the label with this key. Repeatable.
    #[arg(long = "remove-label", value_name = "KEY")]
    pub remove_labels: Vec<String>,
    /// A new description ("" clears it).
    #[arg(long)]
    pub description: Option<String>,
    /// Limit each of the VM's NICs on networks to this rate in each direction, e.g.
    /// 100mbit or 1gbit (at once, running or not); `none` removes the limit.
    #[arg(long, value_name = "RATE|none", value_parser = parse_bandwidth_or_none)]
    pub bandwidth: Option<u64>,
}

/// A `--bandwidth` rate in bits per second; `none` is 0 (no limit).
fn parse_bandwidth_or_none(s: &str) -> Result<u64, String> {
    if s.trim() == "none" {
        return Ok(0);
    }
    novacron_api_types::parse_bandwidth(s)
}

fn parse_label_arg(s: &str) -> Result<(String, String), String> {
    novacron_api_types::labels::parse_label(s).map_err(|e| e.to_string())
}

/// Reads a `--user-data`/`--vendor-data` file and checks it is a cloud-config of at most
/// 64 KiB (the control plane checks again).
fn read_cloud_config(flag: &str, path: &std::path::Path) -> anyhow::Result<String> {
    let limit = novacron_api_types::cloud_init::MAX_CLOUD_INIT_BYTES as u64;
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {flag} {}", path.display()))?
        .len();
    if len > limit {
        anyhow::bail!(
            "{flag} {} is {len} bytes; at most {limit} (64 KiB) are allowed",
            path.display()
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {flag} {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{flag} {} is not UTF-8 text", path.display()))?;
    novacron_api_types::cloud_init::cloud_config(&format!("{flag} {}", path.display()), &text)?;
    Ok(text)
}

#[derive(Args, Debug)]
pub struct VmCreateArgs {
    /// Name of the new VM.
    pub name: String,
    /// Image to boot (see `novacron image list`); with --iso alone, the ISO (an installer VM).
    #[arg(long, required_unless_present = "iso")]
    pub image: Option<String>,
    /// An ISO image (`image import NAME FILE.iso`) in a CD-ROM drive, booted after the disk.
    /// Without --image: install from it onto a blank disk of --disk SIZE (add --vnc to see it).
    #[arg(long, value_name = "IMAGE")]
    pub iso: Option<String>,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Memory, e.g. 256M or 2G.
    #[arg(long, default_value = "256M")]
    pub memory: String,
    /// Disk size, e.g. 2G (cloud images: at least the image size; default the image size).
    #[arg(long)]
    pub disk: Option<String>,
    /// Place on this node instead of letting the scheduler choose.
    #[arg(long)]
    pub node: Option<String>,
    /// Accelerator: auto (KVM when it really works), kvm or tcg.
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Forward a host port to a guest port (user-mode NAT), e.g. 2222:22. Repeatable.
    #[arg(long = "forward", value_name = "HOSTPORT:GUESTPORT")]
    pub forwards: Vec<PortForward>,
    /// Attach to this existing Linux bridge instead of user-mode NAT.
    #[arg(long, conflicts_with = "forwards")]
    pub bridge: Option<String>,
    /// No network device at all.
    #[arg(long, conflicts_with_all = ["forwards", "bridge"])]
    pub no_network: bool,
    /// A NIC on this overlay network (see `novacron network create`) instead of user-mode NAT.
    #[arg(long, value_name = "NET", conflicts_with_all = ["forwards", "bridge", "no_network"])]
    pub network: Option<String>,
    /// The NIC's IPv4 address in the network's subnet (default: the lowest free one).
    #[arg(long, value_name = "A", requires = "network")]
    pub ip: Option<String>,
    /// The NIC's MAC address (default: a generated locally administered one).
    #[arg(long, value_name = "M", requires = "network")]
    pub mac: Option<String>,
    /// A security group (of the VM's project) that filters its overlay NICs. Repeatable.
    #[arg(long = "security-group", value_name = "GROUP")]
    pub security_groups: Vec<String>,
    /// Limit each NIC on a network to this rate in each direction, e.g. 200mbit or 1gbit
    /// (`vm set --bandwidth` changes it).
    #[arg(long, value_name = "RATE", requires = "network", value_parser = novacron_api_types::parse_bandwidth)]
    pub bandwidth: Option<u64>,
    /// An SSH public key file for cloud-init (cloud images). Repeatable.
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<PathBuf>,
    /// Create it stopped.
    #[arg(long)]
    pub no_start: bool,
    /// Keep the disk in this storage pool (see `novacron storage add`).
    #[arg(long)]
    pub storage: Option<String>,
    /// `restart`: when its node is lost, restart the VM on another node (needs --storage).
    #[arg(long, default_value = "none")]
    pub ha: novacron_api_types::HaPolicy,
    /// Higher restarts first.
    #[arg(long, default_value_t = 0)]
    pub ha_priority: i32,
    /// A label, KEY=VALUE (find VMs with `vm list --selector`). Repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label_arg)]
    pub labels: Vec<(String, String)>,
    /// Free text shown by `vm show`.
    #[arg(long)]
    pub description: Option<String>,
    /// cloud-init user-data: a `#cloud-config` YAML file of at most 64 KiB (cloud images).
    #[arg(long, value_name = "FILE")]
    pub user_data: Option<PathBuf>,
    /// cloud-init vendor-data: a `#cloud-config` YAML file of at most 64 KiB (cloud images).
    #[arg(long, value_name = "FILE")]
    pub vendor_data: Option<PathBuf>,
    /// Give the VM a graphics card and a graphical console: `vm console NAME --vnc` (an
    /// installer's screen, a desktop). Reached only through the API, never a port on the node.
    #[arg(long)]
    pub vnc: bool,
    /// What the guest boots through: bios (SeaBIOS) or uefi (OVMF, with a variable store of
    /// the VM's own that migrations, backups and restores carry).
    /// (Default: the image's, which is bios unless it was made by `vm template` of a UEFI VM.)
    #[arg(long, value_name = "bios|uefi")]
    pub firmware: Option<novacron_api_types::Firmware>,
    /// UEFI Secure Boot (with --firmware uefi): Microsoft's keys enrolled, so shim-signed
    /// OSes boot and unsigned ones are refused.
    #[arg(long)]
    pub secure_boot: bool,
    /// A TPM 2.0 (swtpm) with state of the VM's own, carried by migrations, backups,
    /// restores and clones.
    #[arg(long)]
    pub tpm: bool,
    /// Return at once with the operation instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// List nodes.
    List,
    /// Show one node.
    Show {
        /// The node's name.
        name: String,
    },
    /// Stop placing new VMs on a node.
    Cordon {
        /// The node's name.
        name: String,
    },
    /// Allow placement on a node again.
    Uncordon {
        /// The node's name.
        name: String,
    },
    /// Cordon a node and mark it for its VMs to move away.
    Drain {
        /// The node's name.
        name: String,
    },
    /// Forget a node that has no VMs.
    Delete {
        /// The node's name.
        name: String,
    },
    /// Cordon a node and live-migrate every VM off it, in a planned order.
    Evacuate(crate::migrations::EvacuateArgs),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Build the tiny bootable image (host kernel + busybox initramfs), no download.
    BuildTiny {
        /// Name of the new image.
        name: String,
        /// Make it a public image, which every project can use (cluster admins only).
        #[arg(long)]
        public: bool,
    },
    /// Import a disk image (qcow2, raw, VMDK, VHDX, VHD; kind detected from the content) or an ISO, from a file or a URL.
    #[command(
        after_help = "Examples:\n  novacron image import web ./disk.vmdk\n  novacron image import debian https://example.org/debian.qcow2 --sha256 9f86d08...\n  novacron image import installer ./install.iso"
    )]
    Import {
        /// Name of the new image.
        name: String,
        /// A local file, or an http:// or https:// URL the control plane downloads. A local
        /// file is handed to a control plane on this host (it reads it from the disk) and
        /// uploaded to one elsewhere.
        source: String,
        /// The file's expected SHA-256 (64 hex digits): a mismatch imports nothing.
        #[arg(long)]
        sha256: Option<String>,
        /// Make it a public image, which every project can use by its name (cluster admins
        /// only; no project may have an image of the same name).
        #[arg(long)]
        public: bool,
        /// Upload a local file over the API even when the control plane runs on this host.
        #[arg(long)]
        upload: bool,
    },
    /// List the project's images, then the public ones (project `public`).
    List,
    /// Show one image (the project's, else the public one of that name).
    Show {
        /// The image's name.
        name: String,
    },
    /// Delete an image no VM uses.
    Delete {
        /// The image's name.
        name: String,
        /// Delete the public image of that name; no VM of any project may use it (cluster admins only).
        #[arg(long)]
        public: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OperationCommand {
    /// Recent operations.
    List,
    /// Show one operation.
    Show {
        /// The operation's id.
        id: String,
    },
    /// Wait for an operation to finish.
    Wait {
        /// The operation's id.
        id: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

/// The project named by `--project`, NOVACRON_PROJECT or the CLI config's default.
static PROJECT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The project named by `--project` or NOVACRON_PROJECT for this command (not the config's
/// default), if any: for commands that span every project unless told otherwise.
pub fn explicit_project() -> Option<String> {
    EXPLICIT_PROJECT.get().cloned()
}

static EXPLICIT_PROJECT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The project the user selected (flag, environment, then the config's default), if any.
pub fn selected_project() -> Option<String> {
    PROJECT
        .get_or_init(|| novacron_client::default_project(&novacron_client::default_config_path()))
        .clone()
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = cli.output;
    if let Some(p) = &cli.project {
        novacron_api_types::validate_name("project", p)?;
        let _ = PROJECT.set(Some(p.clone()));
        let _ = EXPLICIT_PROJECT.set(p.clone());
    }
    match cli.command {
        Command::Up(a) => roles::up(a, out).await,
        Command::Server(a) => roles::server(a, out).await,
        Command::Agent(a) => roles::agent(a).await,
        Command::Vm(c) => vm(c, out).await,
        Command::Node(c) => node(c, out).await,
        Command::JoinToken(c) => crate::join_tokens::run(c, out).await,
        Command::Project(c) => crate::tenancy::project(c, out).await,
        Command::User(c) => crate::tenancy::user(c, out).await,
        Command::RoleBinding(c) => crate::tenancy::role_binding(c, out).await,
        Command::Token(c) => crate::tenancy::token(c, out).await,
        Command::Login(a) => crate::tenancy::login(a, out).await,
        Command::Whoami => crate::tenancy::whoami(out).await,
        Command::Audit(c) => crate::audit::run(c, out).await,
        Command::Network(c) => crate::networks::run(c, out).await,
        Command::SecurityGroup(c) => crate::security_groups::run(c, out).await,
        Command::Image(c) => image(c, out).await,
        Command::Operation(c) => operation(c, out).await,
        Command::Bench(c) => crate::bench::run(c, out).await,
        Command::Storage(c) => storage(c, out).await,
        Command::Migration(c) => crate::migrations::migration(c, out).await,
        Command::Events(a) => crate::events::run(a, out).await,
        Command::Completion(a) => crate::docs::completion(a),
        Command::Man(a) => crate::docs::man(a),
        Command::Openapi(a) => crate::docs::openapi(a),
        Command::Backup(c) => crate::backups::run(c, out).await,
        Command::Cluster(ClusterCommand::Status) => cluster_status(out).await,
        Command::Store(StoreCommand::Migrate {
            to,
            data_dir,
            overwrite,
        }) => roles::store_migrate(&to, data_dir, overwrite, out).await,
        Command::FenceWatchdog(a) => {
            tokio::task::spawn_blocking(move || roles::fence_watchdog(a)).await?
        }
    }
}

/// The SDK client from the CLI config, naming the selected project in every request.
pub fn client() -> anyhow::Result<Client> {
    Ok(Client::new(Config::load()?)?.with_project(selected_project()))
}

/// Waits for an operation, showing its progress on stderr; fails when it failed.
pub async fn wait_op(
    client: &Client,
    op: Operation,
    timeout: Duration,
) -> anyhow::Result<Operation> {
    let tty = is_tty(2);
    let mut shown = String::new();
    let done = client
        .operation_wait(&op.id, timeout, |o| {
            if tty && !o.is_done() && o.message != shown {
                eprint!("\r\x1b[2K{}: {}", o.kind, o.message);
                let _ = std::io::stderr().flush();
                shown = o.message.clone();
            }
        })
        .await?;
    if tty && !shown.is_empty() {
        eprint!("\r\x1b[2K");
    }
    if done.state == OperationState::Failed {
        bail!("{} failed: {}", done.kind, done.message);
    }
    Ok(done)
}

/// `--no-wait` and `--timeout` of a command that starts an operation.
#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// Return at once with the operation instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

impl WaitArgs {
    /// Waits for `op` and answers it finished; with `--no-wait`, prints it as started and
    /// answers `None` (the command has nothing more to show).
    pub async fn apply(
        &self,
        client: &Client,
        op: Operation,
        out: Format,
    ) -> anyhow::Result<Option<Operation>> {
        if self.no_wait {
            output::print_details(out, &op, || {
                vec![
                    ("operation", op.id.clone()),
                    ("message", op.message.clone()),
                ]
            })?;
            return Ok(None);
        }
        wait_op(client, op, Duration::from_secs(self.timeout))
            .await
            .map(Some)
    }
}

/// Runs `import` (of image `name` from `source`) while showing, on stderr's line, the message of
/// the running `image.import` operation of that image: which disk the control plane is reading.
async fn showing_import_op<T>(
    c: &Client,
    name: &str,
    source: &str,
    import: impl std::future::Future<Output = T>,
) -> T {
    let target = format!("image/{name}");
    let mut import = std::pin::pin!(import);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            done = &mut import => return done,
            _ = tick.tick() => {
                let Ok(ops) = c.operation_list().await else { continue };
                let running = ops.iter().find(|op| {
                    op.kind == "image.import" && op.target == target && !op.is_done()
                });
                if let Some(op) = running {
                    eprint!("\r\x1b[2Kimporting {source}: {}", op.message);
                    let _ = std::io::stderr().flush();
                }
            }
        }
    }
}

pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

fn vm_rows(vms: &[Vm]) -> Vec<Vec<String>> {
    vms.iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.state.to_string(),
                v.node.clone().unwrap_or_default(),
                v.cpus.to_string(),
                format_size(v.memory_bytes),
                v.image.clone(),
                v.state_reason.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

fn print_vm(out: Format, vm: &Vm) -> anyhow::Result<()> {
    output::print_details(out, vm, || {
        let mut p = vec![
            ("name", vm.name.clone()),
            ("state", vm.state.to_string()),
            ("desired", format!("{:?}", vm.desired).to_lowercase()),
            ("node", vm.node.clone().unwrap_or_default()),
            (
                "cpus",
                match vm.pending_cpus {
                    Some(n) => format!("{} ({n} at next start)", vm.cpus),
                    None => vm.cpus.to_string(),
                },
            ),
            (
                "memory",
                match vm.pending_memory_bytes {
                    Some(m) => format!(
                        "{} ({} at next start)",
                        format_size(vm.memory_bytes),
                        format_size(m)
                    ),
                    None => format_size(vm.memory_bytes),
                },
            ),
            (
                "disk",
                vm.disk_bytes.map(format_size).unwrap_or_else(|| "-".into()),
            ),
            ("image", vm.image.clone()),
            (
                "accel",
                match &vm.accel_in_use {
                    Some(a) => format!("{} ({})", vm.accel, a),
                    None => vm.accel.to_string(),
                },
            ),
            (
                "network",
                match &vm.network {
                    Network::User { forwards } if forwards.is_empty() => "user NAT".into(),
                    Network::User { forwards } => format!(
                        "user NAT, forwards {}",
                        forwards
                            .iter()
                            .map(|f| format!("{}:{}", f.host_port, f.guest_port))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    Network::Bridge { bridge } => format!("bridge {bridge}"),
                    Network::None if !vm.nics.is_empty() => "overlay".into(),
                    Network::None => "none".into(),
                },
            ),
            ("uuid", vm.uuid.clone()),
            ("project", vm.project.clone()),
            (
                "firmware",
                if vm.secure_boot {
                    format!("{} (secure boot)", vm.firmware)
                } else {
                    vm.firmware.clone()
                },
            ),
            ("tpm", if vm.tpm { "2.0 (swtpm)" } else { "-" }.to_string()),
            (
                "labels",
                if vm.labels.is_empty() {
                    "-".into()
                } else {
                    vm.labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                },
            ),
            (
                "description",
                vm.description.clone().unwrap_or_else(|| "-".into()),
            ),
        ];
        for nic in &vm.nics {
            p.push((
                "nic",
                format!(
                    "network {}, mac {}, ip {}",
                    nic.network,
                    nic.mac,
                    nic.ips.join(",")
                ),
            ));
        }
        for nic in &vm.added_nics {
            p.push(("nic", format!("{}: {}", nic.name, nic.describe())));
        }
        if !vm.security_groups.is_empty() {
            p.push(("security groups", vm.security_groups.join(", ")));
        }
        if let Some(bps) = vm.bandwidth_bps {
            p.push((
                "bandwidth",
                format!(
                    "{} each way, per NIC on a network",
                    novacron_api_types::format_bandwidth(bps)
                ),
            ));
        }
        for i in &vm.guest_interfaces {
            p.push((
                "guest nic",
                format!(
                    "{}{}, ip {}",
                    i.name,
                    i.mac
                        .as_ref()
                        .map(|m| format!(", mac {m}"))
                        .unwrap_or_default(),
                    if i.ips.is_empty() {
                        "-".to_string()
                    } else {
                        i.ips.join(",")
                    }
                ),
            ));
        }
        if !vm.snapshots.is_empty() {
            p.push((
                "snapshots",
                vm.snapshots
                    .iter()
                    .map(|s| {
                        if s.memory {
                            format!("{} (with memory)", s.name)
                        } else {
                            s.name.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        if !vm.data_disks.is_empty() {
            p.push(("added disks", crate::disks::describe_added(&vm.data_disks)));
        }
        if vm.vnc {
            p.push(("consoles", "serial, vnc".into()));
        }
        if let Some(iso) = &vm.iso {
            p.push(("cd-rom", iso.clone()));
        }
        if vm.user_data || vm.vendor_data {
            let given: Vec<&str> = [(vm.user_data, "user-data"), (vm.vendor_data, "vendor-data")]
                .into_iter()
                .filter_map(|(g, n)| g.then_some(n))
                .collect();
            p.push(("cloud-init", given.join(", ")));
        }
        if let Some(pid) = vm.pid {
            p.push(("pid", pid.to_string()));
        }
        if let Some(r) = &vm.state_reason {
            p.push(("reason", r.clone()));
        }
        p
    })
}

async fn vm(cmd: VmCommand, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    // Runs an action, waits unless asked not to, then prints the VM (or the operation).
    async fn act(c: &Client, out: Format, a: &VmActionArgs, op: Operation) -> anyhow::Result<()> {
        if a.no_wait {
            return output::print_details(out, &op, || {
                vec![
                    ("operation", op.id.clone()),
                    ("message", op.message.clone()),
                ]
            });
        }
        let done = wait_op(c, op, Duration::from_secs(a.timeout)).await?;
        if done.kind == "vm.delete" {
            return output::print_details(out, &done, || vec![("deleted", a.name.clone())]);
        }
        print_vm(out, &c.vm_get(&a.name).await?)
    }
    match cmd {
        VmCommand::Create(a) => {
            let a = *a;
            let memory_bytes = parse_size(&a.memory).context("--memory")?;
            let disk_bytes = a
                .disk
                .as_deref()
                .map(parse_size)
                .transpose()
                .context("--disk")?;
            let mut ssh_keys = vec![];
            for f in &a.ssh_keys {
                let k = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read --ssh-key {}", f.display()))?;
                // The check the control plane makes on each key, plus: a file with no key
                // is a mistake, not "no keys".
                ssh_keys.extend(
                    novacron_api_types::validate::ssh_keys_from_file(&k)
                        .map_err(|e| anyhow::anyhow!("{e}: {}", f.display()))?,
                );
            }
            let user_data = a
                .user_data
                .as_deref()
                .map(|p| read_cloud_config("--user-data", p))
                .transpose()?;
            let vendor_data = a
                .vendor_data
                .as_deref()
                .map(|p| read_cloud_config("--vendor-data", p))
                .transpose()?;
            let network = if a.no_network || a.network.is_some() {
                Network::None
            } else if let Some(b) = a.bridge.clone() {
                Network::Bridge { bridge: b }
            } else {
                Network::User {
                    forwards: a.forwards.clone(),
                }
            };
            let op = c
                .vm_create(&VmCreateRequest {
                    name: a.name.clone(),
                    image: a
                        .image
                        .clone()
                        .or_else(|| a.iso.clone())
                        .unwrap_or_default(),
                    cpus: a.cpus,
                    memory_bytes,
                    disk_bytes,
                    node: a.node.clone(),
                    accel: a.accel,
                    network,
                    ssh_keys,
                    start: !a.no_start,
                    storage: a.storage.clone(),
                    ha: a.ha,
                    ha_priority: a.ha_priority,
                    nics: a
                        .network
                        .iter()
                        .map(|n| novacron_api_types::overlay::NicRequest {
                            network: n.clone(),
                            ip: a.ip.clone(),
                            mac: a.mac.clone(),
                        })
                        .collect(),
                    security_groups: a.security_groups.clone(),
                    bandwidth_bps: a.bandwidth,
                    labels: a.labels.iter().cloned().collect(),
                    description: a.description.clone(),
                    user_data,
                    vendor_data,
                    vnc: a.vnc,
                    iso: a.iso.clone(),
                    firmware: a.firmware,
                    secure_boot: a.secure_boot,
                    tpm: a.tpm,
                })
                .await?
                .operation;
            act(
                &c,
                out,
                &VmActionArgs {
                    name: a.name,
                    no_wait: a.no_wait,
                    timeout: a.timeout,
                },
                op,
            )
            .await
        }
        VmCommand::List { selector } => {
            let vms = match &selector {
                Some(s) => c.vm_list_selected(s).await?,
                None => c.vm_list().await?,
            };
            output::print(
                out,
                &vms,
                &["NAME", "STATE", "NODE", "CPUS", "MEMORY", "IMAGE", "REASON"],
                || vm_rows(&vms),
            )
        }
        VmCommand::Show { name } => print_vm(out, &c.vm_get(&name).await?),
        VmCommand::Snapshot { cmd } => crate::snapshots::run(cmd, out).await,
        VmCommand::Disk { cmd } => crate::disks::run(cmd, out).await,
        VmCommand::Nic { cmd } => crate::nics::run(cmd, out).await,
        VmCommand::SetSecurityGroups(args) => crate::security_groups::set(args, out).await,
        VmCommand::Template(a) => crate::disks::template(a, out).await,
        VmCommand::Clone(a) => crate::disks::clone(a, out).await,
        VmCommand::Set(a) => {
            let memory_bytes = a
                .memory
                .as_deref()
                .map(parse_size)
                .transpose()
                .context("--memory")?;
            let r = c
                .vm_set(
                    &a.name,
                    &novacron_api_types::VmSetRequest {
                        cpus: a.cpus,
                        memory_bytes,
                        labels: a.labels.iter().cloned().collect(),
                        remove_labels: a.remove_labels.clone(),
                        description: a.description.clone(),
                        bandwidth_bps: a.bandwidth,
                    },
                )
                .await?;
            match out {
                Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
                Format::Table => {
                    if r.at_next_start.is_empty() {
                        println!("VM {} changed (operation {}).", a.name, r.operation.id);
                    } else {
                        println!(
                            "VM {} changed (operation {}); {} apply at its next start (`novacron vm stop {}` then `vm start`).",
                            a.name,
                            r.operation.id,
                            r.at_next_start.join(" and "),
                            a.name
                        );
                    }
                    print_vm(out, &r.vm)?;
                }
            }
            Ok(())
        }
        VmCommand::Start(a) => {
            let op = c.vm_action(&a.name, "start").await?.operation;
            act(&c, out, &a, op).await
        }
        VmCommand::Stop { common, force } => {
            let op = c.vm_stop(&common.name, force).await?.operation;
            act(&c, out, &common, op).await
        }
        VmCommand::Reboot(a) => {
            let op = c.vm_action(&a.name, "reboot").await?.operation;
            act(&c, out, &a, op).await
        }
        VmCommand::Pause(a) => {
            let op = c.vm_action(&a.name, "pause").await?.operation;
            act(&c, out, &a, op).await
        }
        VmCommand::Resume(a) => {
            let op = c.vm_action(&a.name, "resume").await?.operation;
            act(&c, out, &a, op).await
        }
        VmCommand::Delete { common, force } => {
            let op = c.vm_delete(&common.name, force).await?.operation;
            act(&c, out, &common, op).await
        }
        VmCommand::Migrate(a) => crate::migrations::vm_migrate(a, out).await,
        VmCommand::Stats(a) => crate::vm_stats::run(a, out).await,
        VmCommand::Exec {
            name,
            stdin,
            timeout,
            command,
        } => crate::exec::run(&c, out, &name, stdin, &timeout, command).await,
        VmCommand::Console {
            name,
            tail,
            bytes,
            vnc,
            listen,
        } => {
            if vnc {
                crate::vnc::serve(c, out, &name, listen).await
            } else if tail {
                let n = parse_size(&bytes).context("--bytes")?;
                let log = c.vm_console_log(&name, n).await?;
                match out {
                    Format::Json => println!("{}", serde_json::to_string_pretty(&log)?),
                    Format::Table => {
                        // The guest's bytes must not make the user's terminal type answers.
                        print!(
                            "{}",
                            crate::terminal_safe::strip_terminal_controls(&log.text)
                        );
                        std::io::stdout().flush()?;
                    }
                }
                Ok(())
            } else {
                crate::roles::console_attach(&c, &name).await
            }
        }
    }
}

fn node_rows(nodes: &[Node]) -> Vec<Vec<String>> {
    nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.state.to_string(),
                n.vms.to_string(),
                format!("{}/{}", n.allocated.cpus, n.capacity.cpus),
                format!(
                    "{}/{}",
                    format_size(n.allocated.memory_bytes),
                    format_size(n.capacity.memory_bytes)
                ),
                if n.kvm_usable {
                    "kvm".into()
                } else {
                    "tcg".into()
                },
                ago(n.last_heartbeat),
                n.site.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect()
}

const NODE_HEADERS: [&str; 8] = [
    "NAME",
    "STATE",
    "VMS",
    "CPUS",
    "MEMORY",
    "ACCEL",
    "HEARTBEAT",
    "SITE",
];

async fn node(cmd: NodeCommand, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let one = |n: Node| {
        output::print(out, &n, &NODE_HEADERS, || {
            node_rows(std::slice::from_ref(&n))
        })
    };
    match cmd {
        NodeCommand::List => {
            let nodes = c.node_list().await?;
            output::print(out, &nodes, &NODE_HEADERS, || node_rows(&nodes))
        }
        NodeCommand::Show { name } => one(c.node_get(&name).await?),
        NodeCommand::Cordon { name } => one(c.node_action(&name, "cordon").await?),
        NodeCommand::Uncordon { name } => one(c.node_action(&name, "uncordon").await?),
        NodeCommand::Drain { name } => one(c.node_action(&name, "drain").await?),
        NodeCommand::Evacuate(a) => crate::migrations::evacuate(a, out).await,
        NodeCommand::Delete { name } => {
            let v = c.node_delete(&name).await?;
            output::print_details(out, &v, || vec![("deleted", name.clone())])
        }
    }
}

fn image_rows(images: &[Image]) -> Vec<Vec<String>> {
    images
        .iter()
        .map(|i| {
            let (kind, format) = match &i.kind {
                ImageKind::Kernel { .. } => ("kernel", "-".to_string()),
                ImageKind::Disk { format } => ("disk", format.to_string()),
                ImageKind::Iso => ("iso", "iso".to_string()),
            };
            let mut kind = match i.firmware {
                Some(novacron_api_types::Firmware::Uefi) => format!("{kind} (uefi)"),
                _ => kind.to_string(),
            };
            if i.project == novacron_api_types::PUBLIC_IMAGES {
                kind.push_str(", public");
            }
            vec![
                i.name.clone(),
                kind,
                format,
                format_size(i.size_bytes),
                i.virtual_size_bytes
                    .map(format_size)
                    .unwrap_or_else(|| "-".into()),
                ago(i.created_at),
            ]
        })
        .collect()
}

const IMAGE_HEADERS: [&str; 6] = ["NAME", "KIND", "FORMAT", "SIZE", "VIRTUAL", "CREATED"];

async fn image(cmd: ImageCommand, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let one = |i: Image| {
        output::print(out, &i, &IMAGE_HEADERS, || {
            image_rows(std::slice::from_ref(&i))
        })
    };
    match cmd {
        ImageCommand::BuildTiny { name, public } => one(c
            .image_build(&novacron_api_types::BuildTinyRequest { name, public })
            .await?),
        ImageCommand::Import {
            name,
            source,
            sha256,
            public,
            upload,
        } => image_import(&c, &name, &source, sha256, public, upload, out).await,
        ImageCommand::List => {
            let images = c.image_list().await?;
            output::print(out, &images, &IMAGE_HEADERS, || image_rows(&images))
        }
        ImageCommand::Show { name } => one(c.image_get(&name).await?),
        ImageCommand::Delete { name, public } => {
            let v = if public {
                c.image_delete_public(&name).await?
            } else {
                c.image_delete(&name).await?
            };
            output::print_details(out, &v, || vec![("deleted", name.clone())])
        }
    }
}

/// `image import`: a URL is downloaded by the control plane as an operation (its progress
/// shown from the operation's message); a file is handed to a control plane on this host (an
/// operation too, unless `upload`; an OVA is answered when imported) or else uploaded with a
/// progress line on a TTY.
async fn image_import(
    c: &Client,
    name: &str,
    source: &str,
    sha256: Option<String>,
    public: bool,
    upload: bool,
    out: Format,
) -> anyhow::Result<()> {
    let print = |i: Image| {
        output::print(out, &i, &IMAGE_HEADERS, || {
            image_rows(std::slice::from_ref(&i))
        })
    };
    if source.starts_with("http://") || source.starts_with("https://") {
        let req = novacron_api_types::ImageUrlImportRequest {
            url: source.to_string(),
            sha256,
            public,
        };
        let op = c.image_import_url(name, &req).await?;
        wait_op(c, op, Duration::from_secs(6 * 3600)).await?;
        return print(c.image_get(name).await?);
    }
    let file = PathBuf::from(source);
    let total = std::fs::metadata(&file)
        .with_context(|| format!("cannot read {source}"))?
        .len();
    let mut head = [0u8; 263];
    let is_tar = std::fs::File::open(&file)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head[257..262] == b"ustar";
    let named_ova = source.to_ascii_lowercase().ends_with(".ova");
    if (is_tar || named_ova) && public {
        bail!(
            "--public is not supported for OVA appliances yet: import it into a project, or import its disks one by one with --public"
        );
    }
    if (is_tar || named_ova) && sha256.is_some() {
        bail!(
            "--sha256 is not supported for OVA appliances yet: check the file with sha256sum first"
        );
    }
    let progress: Option<novacron_client::UploadProgress> = is_tty(2).then(|| {
        let started = std::time::Instant::now();
        let last = std::sync::Mutex::new(None::<std::time::Instant>);
        std::sync::Arc::new(move |sent: u64| {
            let Ok(mut last) = last.lock() else { return };
            let done = sent >= total;
            if !done && last.is_some_and(|t| t.elapsed() < Duration::from_millis(250)) {
                return;
            }
            *last = Some(std::time::Instant::now());
            let rate = sent as f64 / started.elapsed().as_secs_f64().max(0.001);
            let eta = (total.saturating_sub(sent)) as f64 / rate.max(1.0);
            if done {
                eprint!(
                    "\r\x1b[2Kuploaded {}; the control plane checks (and converts) it ...",
                    format_size(total)
                );
            } else {
                eprint!(
                    "\r\x1b[2Kuploading: {} of {} ({}/s, ETA {}s)",
                    format_size(sent),
                    format_size(total),
                    format_size(rate as u64),
                    eta.ceil() as u64
                );
            }
            let _ = std::io::stderr().flush();
        }) as novacron_client::UploadProgress
    });
    let shown = progress.is_some();
    if is_tar || named_ova {
        let handed = if upload {
            Ok(None)
        } else {
            let import = c.image_import_ova_local(name, &file);
            if shown {
                eprint!("importing {source}: its disks are checked and converted ...");
                let _ = std::io::stderr().flush();
                showing_import_op(c, name, source, import).await
            } else {
                import.await
            }
        };
        // An upload's progress line replaces the line above.
        let result = match handed {
            Ok(Some(ova)) => Ok(ova),
            Ok(None) => c.image_import_ova(name, &file, progress).await,
            Err(e) => Err(e),
        };
        if shown {
            eprint!("\r\x1b[2K");
        }
        let ova = result?;
        output::print(out, &ova, &IMAGE_HEADERS, || image_rows(&ova.images))?;
        if out == Format::Table {
            let nics: Vec<String> = ova
                .nics
                .iter()
                .map(|n| {
                    format!(
                        "{} on {}",
                        n.model.as_deref().unwrap_or("NIC"),
                        n.network.as_deref().unwrap_or("?")
                    )
                })
                .collect();
            println!(
                "\nappliance {}: {} CPUs, {} memory, NICs: {}",
                ova.appliance.as_deref().unwrap_or(name),
                ova.cpus.map_or("?".into(), |c| c.to_string()),
                ova.memory_bytes.map_or("?".into(), format_size),
                if nics.is_empty() {
                    "none".into()
                } else {
                    nics.join(", ")
                }
            );
            println!("create the VM with:\n  {}", ova.vm_create);
            if !ova.disk_adds.is_empty() {
                println!("then give it the appliance's other disks:");
                for add in &ova.disk_adds {
                    println!("  {add}");
                }
            }
        }
        return Ok(());
    }
    if !upload
        && let Some(op) = c
            .image_import_local(name, &file, sha256.as_deref(), public)
            .await?
    {
        wait_op(c, op, Duration::from_secs(6 * 3600)).await?;
        return print(c.image_get(name).await?);
    }
    let result = c
        .image_import_file(name, &file, sha256.as_deref(), public, progress)
        .await;
    if shown {
        eprint!("\r\x1b[2K");
    }
    print(result?)
}

fn op_rows(ops: &[Operation]) -> Vec<Vec<String>> {
    ops.iter()
        .map(|o| {
            vec![
                o.id.clone(),
                o.kind.clone(),
                o.target.clone(),
                format!("{:?}", o.state).to_lowercase(),
                ago(o.created_at),
                o.message.clone(),
            ]
        })
        .collect()
}

const OP_HEADERS: [&str; 6] = ["ID", "KIND", "TARGET", "STATE", "CREATED", "MESSAGE"];

async fn operation(cmd: OperationCommand, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    match cmd {
        OperationCommand::List => {
            let ops = c.operation_list().await?;
            output::print(out, &ops, &OP_HEADERS, || op_rows(&ops))
        }
        OperationCommand::Show { id } => {
            let o = c.operation_get(&id).await?;
            output::print(out, &o, &OP_HEADERS, || op_rows(std::slice::from_ref(&o)))
        }
        OperationCommand::Wait { id, timeout } => {
            let o = c.operation_get(&id).await?;
            let o = wait_op(&c, o, Duration::from_secs(timeout)).await?;
            output::print(out, &o, &OP_HEADERS, || op_rows(std::slice::from_ref(&o)))
        }
    }
}

async fn storage(cmd: StorageCommand, out: Format) -> anyhow::Result<()> {
    use novacron_api_types::{StorageKind, StoragePool};
    let c = client()?;
    let rows = |pools: &[StoragePool]| -> Vec<Vec<String>> {
        pools
            .iter()
            .map(|p| vec![p.name.clone(), "shared-dir".into(), p.path.clone()])
            .collect()
    };
    match cmd {
        StorageCommand::Add { name, kind, path } => {
            let kind = match kind.as_str() {
                "shared-dir" => StorageKind::SharedDir,
                other => bail!("unknown storage type {other:?}: use shared-dir"),
            };
            let p = c
                .storage_add(&StoragePool {
                    name,
                    kind,
                    path,
                    created_at: 0,
                })
                .await?;
            output::print(out, &p, &["NAME", "TYPE", "PATH"], || {
                rows(std::slice::from_ref(&p))
            })
        }
        StorageCommand::List => {
            let pools = c.storage_list().await?;
            output::print(out, &pools, &["NAME", "TYPE", "PATH"], || rows(&pools))
        }
        StorageCommand::Delete { name } => {
            let v = c.storage_delete(&name).await?;
            output::print_details(out, &v, || vec![("deleted", name.clone())])
        }
    }
}

async fn cluster_status(out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let st = c.cluster_status().await?;
    match out {
        Format::Json => println!("{}", serde_json::to_string_pretty(&st)?),
        Format::Table => {
            println!("cluster {} (answered by {})", st.cluster_id, st.answered_by);
            println!(
                "store: {} {} (revision {}){}",
                st.store.backend,
                if st.store.healthy {
                    "healthy"
                } else {
                    "UNHEALTHY"
                },
                st.store.revision,
                if st.store.healthy {
                    String::new()
                } else {
                    format!(": {}", st.store.detail)
                }
            );
            println!();
            print!(
                "{}",
                output::table(
                    &["MEMBER", "URL", "VERSION", "STARTED"],
                    &st.members
                        .iter()
                        .map(|m| vec![
                            m.id.clone(),
                            m.url.clone(),
                            m.version.clone(),
                            ago(m.started_at)
                        ])
                        .collect::<Vec<_>>()
                )
            );
            println!();
            print!(
                "{}",
                output::table(
                    &["CONTROLLER", "LEADER"],
                    &st.controllers
                        .iter()
                        .map(|(k, v)| vec![k.clone(), v.clone()])
                        .collect::<Vec<_>>()
                )
            );
            println!();
            print!(
                "{}",
                output::table(
                    &["NODE", "LEASE", "TTL"],
                    &st.node_leases
                        .iter()
                        .map(|l| vec![
                            l.node.clone(),
                            if l.alive {
                                "alive".into()
                            } else {
                                "expired".into()
                            },
                            format!("{}s", l.ttl_seconds)
                        ])
                        .collect::<Vec<_>>()
                )
            );
        }
    }
    Ok(())
}
