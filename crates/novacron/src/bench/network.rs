//! `novacron bench network` (issue 13): the overlay data plane against the same path without
//! the overlay, and how fast a security-group change reaches every port of every node.
//!
//! Throughput: two node namespaces joined by a veth pair (the underlay), each with the
//! network built by `novacron_net::Reconciler` as an agent builds it (bridge `ncbr<vni>`,
//! VXLAN device `ncvx<vni>`, a flood entry and a unicast FDB entry for the remote endpoint),
//! and one endpoint namespace per node attached by a veth whose node end, `nctap0`, is put on
//! the bridge and adopted like a VM's tap. TCG guests are far too slow to load a data plane;
//! the endpoint namespace stands in for the guest. iperf3 measures TCP endpoint → endpoint
//! across the overlay and node → node on the underlay, and endpoint → endpoint over bridges
//! joined by a plain veth (the overlay's path without VXLAN), in rotating order, with the
//! same streams, duration and settings.
//!
//! Rule propagation: a control plane (`novacron server`) and hollow nodes (`novacron agent
//! --hollow --vtep-address`: no QEMU, VMs reported running), each in a namespace on a host
//! bridge, each running the agent's overlay loop that keeps `table inet novacron`; hollow
//! VMs with one NIC each on a network and in one security group. Every rule added or deleted
//! through the API is timed from the call's return to the commit of the nftables transaction
//! that shows it on each node: nftables' own notification of every commit wakes a watcher in
//! the node's namespace, and `nft list chain` there confirms what the commit changed.

use std::io::Read as _;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use novacron_api_types::NodeState;
use novacron_client::{Client, Config};
use novacron_net::{
    DEFAULT_VXLAN_PORT, DesiredNode, MacAddr, NodeNetwork, Reconciler, RemotePeer, Underlay,
    VXLAN_OVERHEAD, Vni,
};
use serde::Serialize;

use super::infra::{Lan, Scratch, free_port, ip, percentile, which};
use crate::output::Format;

/// Issue 13: overlay throughput at least this fraction of the underlay's.
const OVERLAY_RATIO_TARGET: f64 = 0.9;
/// Issue 13: a security-group change on every port of every node within this, at p99.
const PROPAGATION_P99_TARGET_MS: f64 = 1000.0;

#[derive(Args, Debug, Clone)]
pub struct NetworkArgs {
    /// Seconds of each iperf3 run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// iperf3 runs of each path (underlay, overlay, bridged) in rotating order; figures are
    /// medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Parallel TCP streams of every iperf3 run (the same on every path).
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Hollow nodes (agents without QEMU), each in its own network namespace.
    #[arg(long, default_value_t = 10)]
    pub nodes: usize,
    /// Hollow VMs per node, each with one NIC on the network and in the security group.
    #[arg(long, default_value_t = 100)]
    pub ports: usize,
    /// Rule changes through the API: a rule added, then deleted, and so on.
    #[arg(long, default_value_t = 20)]
    pub changes: usize,
    /// Skip the throughput part (iperf3 across the overlay and the underlay).
    #[arg(long)]
    pub skip_throughput: bool,
    /// Skip the rule propagation part (control plane, hollow nodes, nftables).
    #[arg(long)]
    pub skip_propagation: bool,
    /// Skip the part between sites (the overlay sealed by the tunnel over an emulated WAN).
    #[arg(long)]
    pub skip_sites: bool,
    /// Skip the migration part (a TCP stream to a TCG guest live-migrated to the other site
    /// over the emulated WAN, with a control plane and two agents).
    #[arg(long)]
    pub skip_migration: bool,
    /// The emulated WAN between the two sites: rate (bits/s, e.g. 100mbit).
    #[arg(long, default_value = "100mbit")]
    pub wan_rate: String,
    /// The emulated WAN's round-trip time.
    #[arg(long, default_value = "50ms")]
    pub wan_rtt: String,
    /// The emulated WAN's random loss (e.g. 0.1%).
    #[arg(long, default_value = "0")]
    pub wan_loss: String,
    /// Seconds of each iperf3 run between sites (a WAN's slow start takes a while).
    #[arg(long, default_value_t = 10)]
    pub wan_seconds: u64,
    /// The rule propagation part fails if it has not finished after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

/// One JSON object: the throughput fields, the rule propagation fields (each absent when
/// its part is skipped) and the conditions of the run.
#[derive(Debug, Serialize)]
pub struct NetworkReport {
    #[serde(flatten)]
    pub throughput: Option<ThroughputReport>,
    #[serde(flatten)]
    pub propagation: Option<PropagationReport>,
    #[serde(flatten)]
    pub sites: Option<SitesReport>,
    #[serde(flatten)]
    pub migration: Option<super::net_migration::MigrationReport>,
    /// The machine's cores, and its 1-minute load average when the bench started and ended:
    /// every path here is CPU-bound and shares those cores with whatever else runs.
    pub cores: usize,
    pub load_average_start: f64,
    pub load_average_end: f64,
    /// Wall time of the whole bench.
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct ThroughputReport {
    /// TCP endpoint → endpoint across the VXLAN overlay, bits/s (median of the runs).
    pub overlay_bps: f64,
    /// TCP node → node on the underlay, bits/s (median of the runs, same run as the overlay).
    pub underlay_bps: f64,
    /// `overlay_bps ÷ underlay_bps` (target ≥ 0.9).
    pub overlay_ratio: f64,
    pub overlay_bps_runs: Vec<f64>,
    pub underlay_bps_runs: Vec<f64>,
    /// Bits carried per CPU second of the two iperf3 processes (their own user and system
    /// time, which includes the kernel's forwarding done in their context), median: less
    /// sensitive than wall-clock rates to other load on the machine.
    pub overlay_bits_per_cpu_second: f64,
    pub underlay_bits_per_cpu_second: f64,
    /// `overlay_bits_per_cpu_second ÷ underlay_bits_per_cpu_second`.
    pub overlay_cpu_ratio: f64,
    /// Endpoint → endpoint through the same attachment and bridges as the overlay, the
    /// bridges joined by a plain veth instead of VXLAN (MTU 1500), bits/s (median): what the
    /// endpoints' attachment costs without the encapsulation.
    pub bridged_bps: f64,
    pub bridged_bps_runs: Vec<f64>,
    pub bridged_bits_per_cpu_second: f64,
    /// `overlay_bps ÷ bridged_bps`: what VXLAN alone costs.
    pub overlay_to_bridged_ratio: f64,
    /// The overlay network's MTU (the underlay's less VXLAN's 50 bytes) and the underlay's.
    pub overlay_mtu: u32,
    pub underlay_mtu: u32,
    pub throughput_runs: usize,
    pub throughput_seconds_per_run: u64,
    pub streams: usize,
    pub overlay_ratio_target: f64,
    pub overlay_ratio_met: bool,
}

/// The overlay between two sites: endpoint → endpoint with every VXLAN packet sealed by the
/// nodes' tunnels (`novacron_net::SiteTunnel`), over an emulated WAN (`novacron-wanem`).
#[derive(Debug, Serialize)]
pub struct SitesReport {
    /// TCP endpoint → endpoint across the overlay and the tunnel, bits/s (median).
    pub sites_encrypted_bps: f64,
    /// TCP site → site on the same link without overlay or tunnel, bits/s (median, same run).
    pub sites_wan_tcp_bps: f64,
    /// The link's configured rate, bits/s, its round-trip time and loss.
    pub sites_link_bps: f64,
    pub sites_link_rtt_ms: f64,
    pub sites_link_loss: f64,
    /// `sites_encrypted_bps ÷ sites_link_bps` (target ≥ 0.9).
    pub sites_encrypted_ratio: f64,
    /// `sites_encrypted_bps ÷ sites_wan_tcp_bps`: what the overlay and the tunnel cost.
    pub sites_encrypted_to_wan_tcp_ratio: f64,
    pub sites_encrypted_bps_runs: Vec<f64>,
    pub sites_wan_tcp_bps_runs: Vec<f64>,
    /// VXLAN packets the two tunnels sealed and opened, and dropped (replays, unknown
    /// peers, failed authentication).
    pub sites_sealed_packets: u64,
    pub sites_opened_packets: u64,
    pub sites_tunnel_dropped: u64,
    /// Plain VXLAN packets that crossed the link into site b: must be 0.
    pub sites_plain_vxlan_packets: u64,
    /// The overlay network's MTU between sites (1500 less VXLAN's 50 and the tunnel's 60).
    pub sites_overlay_mtu: u32,
    pub sites_seconds_per_run: u64,
    pub sites_encrypted_ratio_target: f64,
    pub sites_encrypted_ratio_met: bool,
}

#[derive(Debug, Serialize)]
pub struct PropagationReport {
    /// API call returned → the node's kernel has the change, over every node × change, ms.
    /// A change committed before the call returned counts as 0.
    pub rule_propagation_p50_ms: f64,
    pub rule_propagation_p99_ms: f64,
    pub rule_propagation_max_ms: f64,
    /// The same from the moment the request was sent, p99, ms.
    pub rule_propagation_from_request_p99_ms: f64,
    /// Samples: nodes × changes.
    pub rule_propagation_samples: usize,
    /// Samples whose change was committed on the node before the API call returned.
    pub rule_propagation_before_return: usize,
    /// Latency of the rule add/delete calls themselves, ms.
    pub rule_api_p50_ms: f64,
    pub rule_api_p99_ms: f64,
    pub nodes: usize,
    pub ports_per_node: usize,
    pub changes: usize,
    /// From the first VM create to every node guarding all its ports, seconds.
    pub ports_ready_seconds: f64,
    pub rule_propagation_p99_target_ms: f64,
    pub rule_propagation_met: bool,
}

pub async fn run(a: NetworkArgs, out: Format) -> anyhow::Result<()> {
    if a.skip_throughput && a.skip_propagation && a.skip_sites && a.skip_migration {
        bail!(
            "--skip-throughput, --skip-propagation, --skip-sites and --skip-migration together leave nothing to measure"
        );
    }
    if a.seconds == 0 || a.runs == 0 || a.streams == 0 || a.wan_seconds == 0 {
        bail!("--seconds, --wan-seconds, --runs and --streams must be at least 1");
    }
    let wan = WanLink::parse(&a)?;
    if a.nodes == 0 || a.ports == 0 || !(1..=50_000).contains(&a.changes) {
        bail!("--nodes and --ports must be at least 1, --changes 1 to 50000");
    }
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench network needs root: it makes network namespaces, links and nftables tables");
    }
    let t0 = Instant::now();
    let load_average_start = load_average();
    let throughput = if a.skip_throughput {
        None
    } else {
        let args = a.clone();
        let rt = tokio::runtime::Handle::current();
        // Process runs and `ip` calls block: off the runtime, which drives the reconcilers.
        Some(tokio::task::spawn_blocking(move || throughput(&args, &rt)).await??)
    };
    let propagation = if a.skip_propagation {
        None
    } else {
        // The scenario has its own deadline with a clearer message; this one is the backstop.
        let limit = Duration::from_secs(a.timeout_secs + 60);
        Some(
            tokio::time::timeout(limit, propagation(&a))
                .await
                .map_err(|_| anyhow!("rule propagation did not finish within {limit:?}"))??,
        )
    };
    let sites = if a.skip_sites {
        None
    } else {
        let args = a.clone();
        let rt = tokio::runtime::Handle::current();
        Some(tokio::task::spawn_blocking(move || sites(&args, wan, &rt)).await??)
    };
    let migration = if a.skip_migration {
        None
    } else {
        let exe = std::env::current_exe()?;
        Some(tokio::task::spawn_blocking(move || super::net_migration::run(&exe, wan)).await??)
    };
    let r = NetworkReport {
        throughput,
        propagation,
        sites,
        migration,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average_start,
        load_average_end: load_average(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    match out {
        Format::Json => println!("{}", serde_json::to_string(&r)?),
        Format::Table => print!("{}", render_table(&r)),
    }
    Ok(())
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}

fn render_table(r: &NetworkReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "network bench: {} cores, load average {:.2} at the start, {:.2} at the end, {:.0} s",
        r.cores, r.load_average_start, r.load_average_end, r.seconds
    );
    if let Some(t) = &r.throughput {
        let _ = writeln!(
            s,
            "  overlay           {:6.2} Gbit/s  endpoint → endpoint across VXLAN (MTU {})",
            t.overlay_bps / 1e9,
            t.overlay_mtu
        );
        let _ = writeln!(
            s,
            "  underlay          {:6.2} Gbit/s  node → node, same veth, no overlay (MTU {})",
            t.underlay_bps / 1e9,
            t.underlay_mtu
        );
        let _ = writeln!(
            s,
            "  bridged           {:6.2} Gbit/s  endpoint → endpoint over bridges and a plain veth: the overlay's path without VXLAN",
            t.bridged_bps / 1e9
        );
        let _ = writeln!(
            s,
            "  overlay ratio     {:6.3} ×       target ≥ {:.2}: {}  ({} runs of {} s per path, {} TCP stream(s), medians)",
            t.overlay_ratio,
            t.overlay_ratio_target,
            met(t.overlay_ratio_met),
            t.throughput_runs,
            t.throughput_seconds_per_run,
            t.streams
        );
        let _ = writeln!(
            s,
            "  per CPU second    {:6.3} ×       overlay {:.2} vs underlay {:.2} Gbit per CPU second of iperf3",
            t.overlay_cpu_ratio,
            t.overlay_bits_per_cpu_second / 1e9,
            t.underlay_bits_per_cpu_second / 1e9
        );
        let _ = writeln!(
            s,
            "  VXLAN alone       {:6.3} ×       overlay ÷ bridged (bridged per CPU second {:.2} Gbit)",
            t.overlay_to_bridged_ratio,
            t.bridged_bits_per_cpu_second / 1e9
        );
    }
    if let Some(p) = &r.propagation {
        let _ = writeln!(
            s,
            "  rule propagation  p99 {:.0} ms    target ≤ {:.0} ms: {}  (p50 {:.0} ms, max {:.0} ms; API call returned → node's nftables)",
            p.rule_propagation_p99_ms,
            p.rule_propagation_p99_target_ms,
            met(p.rule_propagation_met),
            p.rule_propagation_p50_ms,
            p.rule_propagation_max_ms
        );
        let _ = writeln!(
            s,
            "                    {} samples: {} hollow nodes × {} changes, {} guarded ports per node; from the request p99 {:.0} ms; API call p50 {:.0} ms, p99 {:.0} ms",
            p.rule_propagation_samples,
            p.nodes,
            p.changes,
            p.ports_per_node,
            p.rule_propagation_from_request_p99_ms,
            p.rule_api_p50_ms,
            p.rule_api_p99_ms
        );
        let _ = writeln!(
            s,
            "  ports ready       {:.1} s from the first VM create to all {} ports guarded",
            p.ports_ready_seconds,
            p.nodes * p.ports_per_node
        );
    }
    if let Some(w) = &r.sites {
        let _ = writeln!(
            s,
            "  between sites     {:6.1} Mbit/s  endpoint → endpoint, overlay sealed by the tunnel (MTU {}), over {:.0} Mbit/s, {:.0} ms RTT, {}% loss",
            w.sites_encrypted_bps / 1e6,
            w.sites_overlay_mtu,
            w.sites_link_bps / 1e6,
            w.sites_link_rtt_ms,
            w.sites_link_loss * 100.0
        );
        let _ = writeln!(
            s,
            "  plain TCP on WAN  {:6.1} Mbit/s  site → site, no overlay, no tunnel",
            w.sites_wan_tcp_bps / 1e6
        );
        let _ = writeln!(
            s,
            "  sealed ÷ link     {:6.3} ×       target ≥ {:.2}: {}  (÷ plain TCP {:.3}; {} VXLAN packets sealed, {} opened, {} in the clear)",
            w.sites_encrypted_ratio,
            w.sites_encrypted_ratio_target,
            met(w.sites_encrypted_ratio_met),
            w.sites_encrypted_to_wan_tcp_ratio,
            w.sites_sealed_packets,
            w.sites_opened_packets,
            w.sites_plain_vxlan_packets
        );
    }
    if let Some(m) = &r.migration {
        let _ = writeln!(
            s,
            "  migration stream  {}  a TCP stream to a TCG guest moved {} → {} by `vm migrate` ({:.1} s)",
            if m.migration_tcp_survived {
                "survived"
            } else {
                "BROKEN  "
            },
            m.migration_from_site,
            m.migration_to_site,
            m.migration_seconds
        );
        let _ = writeln!(
            s,
            "  stream stall      {:6.0} ms      target ≤ pause {:.0} ms + 1 s: {}  (longest gap before the migration {:.0} ms; {} segments sent again)",
            m.migration_stall_ms,
            m.migration_downtime_ms,
            met(m.migration_stall_met),
            m.migration_gap_before_ms,
            m.migration_resent_segments
        );
        let _ = writeln!(
            s,
            "  pause             {:6.0} ms      limit {} ms{}",
            m.migration_downtime_ms,
            m.migration_max_downtime_ms,
            m.migration_pause_floor_ms
                .map(|f| format!(" (the link's floor {f} ms)"))
                .unwrap_or_default()
        );
    }
    s
}

/// The 1-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// A child process that is killed and reaped when dropped.
struct Reaped(Child);

impl Reaped {
    fn spawn(cmd: &mut Command) -> anyhow::Result<Reaped> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        Ok(Reaped(child))
    }

    /// Gives the process up to `limit` to end by itself.
    fn finish(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        // SIGKILL, then reap: a killed process ends at once.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to completion with its output captured; killed after `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> anyhow::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    // Read both pipes while waiting, so a big output cannot stall the process.
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    let out_reader = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {limit:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// [`run_bounded`] for a short command (10 s) that must succeed; its output.
fn run_ok(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = run_bounded(cmd, Duration::from_secs(10))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Network namespaces made by the bench, deleted on drop (their links and nftables tables go
/// with them) and on Ctrl-C (see `interrupt`).
#[derive(Default)]
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, name: &str) -> anyhow::Result<()> {
        let _ = ip(&["netns", "del", name]);
        super::interrupt::netns(name);
        ip(&["netns", "add", name])?;
        self.0.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

// ---------------------------------------------------------------------------------------
// Throughput
// ---------------------------------------------------------------------------------------

/// The network of the throughput lab (any VNI: the namespaces are the bench's own).
const VNI: u32 = 4201;
/// A veth end MTU's default, and the underlay's.
const UNDERLAY_MTU: u32 = 1500;
/// What a network's MTU is by default: the underlay's less the VXLAN encapsulation.
const OVERLAY_MTU: u32 = UNDERLAY_MTU - VXLAN_OVERHEAD;
const IPERF_PORT: &str = "5201";

/// One node of the throughput lab and its endpoints.
struct Side {
    node: String,
    /// On the overlay network.
    endpoint: String,
    vtep: Ipv4Addr,
    endpoint_ip: Ipv4Addr,
    endpoint_mac: MacAddr,
    /// On a plain bridge (see [`Route::Bridged`]).
    bridged: String,
    bridged_ip: Ipv4Addr,
}

/// One iperf3 run: received bits/s, and CPU seconds per second of its client and server.
struct IperfRun {
    bps: f64,
    cpu: f64,
}

/// The paths measured, in the same run.
#[derive(Clone, Copy, PartialEq)]
enum Route {
    /// Node → node on the veth underlay: the target's baseline.
    Underlay,
    /// Endpoint → endpoint across the overlay network.
    Overlay,
    /// Endpoint → endpoint through the same attachment (a veth into the node, a bridge) but
    /// with the nodes' bridges joined by a veth of their own instead of VXLAN: the overlay's
    /// path without the encapsulation, which splits the overlay's cost in two.
    Bridged,
}

fn throughput(a: &NetworkArgs, rt: &tokio::runtime::Handle) -> anyhow::Result<ThroughputReport> {
    which("iperf3").context("iperf3 is not installed: apt-get install iperf3")?;
    let scratch = Scratch::new("netbench-tp")?;
    let tag = std::process::id() % 100_000;
    let mut namespaces = Namespaces::default();
    let sides = [
        Side {
            node: format!("ncnb{tag}-node-a"),
            endpoint: format!("ncnb{tag}-ep-a"),
            vtep: Ipv4Addr::new(198, 19, 251, 1),
            endpoint_ip: Ipv4Addr::new(198, 19, 252, 1),
            endpoint_mac: MacAddr([0x02, 0x4e, 0x42, 0, 0, 0x0a]),
            bridged: format!("ncnb{tag}-br-a"),
            bridged_ip: Ipv4Addr::new(198, 19, 253, 1),
        },
        Side {
            node: format!("ncnb{tag}-node-b"),
            endpoint: format!("ncnb{tag}-ep-b"),
            vtep: Ipv4Addr::new(198, 19, 251, 2),
            endpoint_ip: Ipv4Addr::new(198, 19, 252, 2),
            endpoint_mac: MacAddr([0x02, 0x4e, 0x42, 0, 0, 0x0b]),
            bridged: format!("ncnb{tag}-br-b"),
            bridged_ip: Ipv4Addr::new(198, 19, 253, 2),
        },
    ];
    for s in &sides {
        namespaces.add(&s.node)?;
        namespaces.add(&s.endpoint)?;
        namespaces.add(&s.bridged)?;
    }
    // The underlay: one veth pair between the nodes, a /30 of the benchmarking range.
    #[rustfmt::skip]
    ip(&["-n", &sides[0].node, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", &sides[1].node])?;
    for s in &sides {
        ip(&[
            "-n",
            &s.node,
            "addr",
            "add",
            &format!("{}/30", s.vtep),
            "dev",
            "ul0",
        ])?;
        ip(&["-n", &s.node, "link", "set", "ul0", "up"])?;
    }
    for s in &sides {
        attach_endpoint(
            &s.node,
            &s.endpoint,
            s.endpoint_mac,
            s.endpoint_ip,
            OVERLAY_MTU,
        )?;
    }
    let vni = Vni::new(VNI)?;
    let mut reconcilers = vec![];
    for (i, s) in sides.iter().enumerate() {
        let other = &sides[1 - i];
        let local = (s.vtep, s.endpoint_mac);
        let peer = (other.vtep, other.endpoint_mac);
        reconcilers.push(build_network(rt, &s.node, vni, OVERLAY_MTU, local, peer)?);
    }

    // The bridged path: a second veth pair between the nodes on a plain bridge `ncbl0` in
    // each (not a network's: the reconciler leaves it alone), an endpoint on each bridge
    // attached the same way, the underlay's MTU (nothing is encapsulated).
    #[rustfmt::skip]
    ip(&["-n", &sides[0].node, "link", "add", "ul1", "type", "veth", "peer", "name", "ul1", "netns", &sides[1].node])?;
    for s in &sides {
        ip(&["-n", &s.node, "link", "add", "ncbl0", "type", "bridge"])?;
        ip(&["-n", &s.node, "link", "set", "ncbl0", "up"])?;
        ip(&["-n", &s.node, "link", "set", "ul1", "master", "ncbl0", "up"])?;
        #[rustfmt::skip]
        ip(&["-n", &s.node, "link", "add", "ncblp0", "type", "veth", "peer", "name", "eth0", "netns", &s.bridged])?;
        ip(&[
            "-n", &s.node, "link", "set", "ncblp0", "master", "ncbl0", "up",
        ])?;
        ip(&["-n", &s.bridged, "link", "set", "eth0", "up"])?;
        #[rustfmt::skip]
        ip(&["-n", &s.bridged, "addr", "add", &format!("{}/24", s.bridged_ip), "dev", "eth0"])?;
    }

    let mut overlay = vec![];
    let mut underlay = vec![];
    let mut bridged = vec![];
    let routes = [Route::Underlay, Route::Overlay, Route::Bridged];
    for run in 0..a.runs {
        // Rotate which path goes first, so a trend in the machine's load favours none.
        for k in 0..routes.len() {
            let route = routes[(run + k) % routes.len()];
            let (server, client, addr, label) = match route {
                Route::Underlay => (&sides[1].node, &sides[0].node, sides[1].vtep, "underlay"),
                Route::Overlay => (
                    &sides[1].endpoint,
                    &sides[0].endpoint,
                    sides[1].endpoint_ip,
                    "overlay",
                ),
                Route::Bridged => (
                    &sides[1].bridged,
                    &sides[0].bridged,
                    sides[1].bridged_ip,
                    "bridged",
                ),
            };
            let r = iperf(&scratch, server, client, addr, a, &format!("{label}-{run}"))?;
            match route {
                Route::Underlay => underlay.push(r),
                Route::Overlay => overlay.push(r),
                Route::Bridged => bridged.push(r),
            }
        }
    }
    drop(reconcilers);
    let bps = |v: &[IperfRun]| v.iter().map(|r| r.bps).collect::<Vec<_>>();
    let per_cpu = |v: &[IperfRun]| {
        median(
            &v.iter()
                .map(|r| r.bps / r.cpu.max(1e-9))
                .collect::<Vec<_>>(),
        )
    };
    let (overlay_bps, underlay_bps) = (median(&bps(&overlay)), median(&bps(&underlay)));
    let (overlay_cpu, underlay_cpu) = (per_cpu(&overlay), per_cpu(&underlay));
    let overlay_ratio = overlay_bps / underlay_bps;
    let bridged_bps = median(&bps(&bridged));
    Ok(ThroughputReport {
        overlay_bps,
        underlay_bps,
        overlay_ratio,
        overlay_bps_runs: bps(&overlay),
        underlay_bps_runs: bps(&underlay),
        overlay_bits_per_cpu_second: overlay_cpu,
        underlay_bits_per_cpu_second: underlay_cpu,
        overlay_cpu_ratio: overlay_cpu / underlay_cpu,
        bridged_bps,
        bridged_bps_runs: bps(&bridged),
        bridged_bits_per_cpu_second: per_cpu(&bridged),
        overlay_to_bridged_ratio: overlay_bps / bridged_bps,
        overlay_mtu: OVERLAY_MTU,
        underlay_mtu: UNDERLAY_MTU,
        throughput_runs: a.runs,
        throughput_seconds_per_run: a.seconds,
        streams: a.streams,
        overlay_ratio_target: OVERLAY_RATIO_TARGET,
        overlay_ratio_met: overlay_ratio >= OVERLAY_RATIO_TARGET,
    })
}

/// The endpoint's tap: `nctap0` in the node, named as a VM's is.
fn endpoint_tap() -> String {
    format!("{}0", novacron_agent::overlay::TAP_PREFIX)
}

/// Attaches endpoint namespace `endpoint` to `node` as a VM NIC is: its `eth0` (with `mac`,
/// `addr`/24 and the network's `mtu`, what the network's DHCP tells a guest) is a veth whose
/// peer is [`endpoint_tap`] in the node.
fn attach_endpoint(
    node: &str,
    endpoint: &str,
    mac: MacAddr,
    addr: Ipv4Addr,
    mtu: u32,
) -> anyhow::Result<()> {
    let (tap, mac) = (endpoint_tap(), mac.to_string());
    #[rustfmt::skip]
    ip(&["-n", node, "link", "add", &tap, "type", "veth", "peer", "name", "eth0", "address", &mac, "netns", endpoint])?;
    #[rustfmt::skip]
    ip(&["-n", endpoint, "link", "set", "eth0", "mtu", &mtu.to_string(), "up"])?;
    #[rustfmt::skip]
    ip(&["-n", endpoint, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
    Ok(())
}

/// Network `vni` on `node`, by the data plane's reconciler, as an agent builds it: first
/// the bridge and the VXLAN device (local VTEP `local.0`) with the flood and MAC entries of
/// the one peer (`peer`: its VTEP and its endpoint's MAC); then, as a VM's launch does with
/// its tap, the endpoint's tap goes on the bridge (named after `local.1`, the endpoint's
/// MAC) and the next reconcile adopts it with the network's MTU.
fn build_network(
    rt: &tokio::runtime::Handle,
    node: &str,
    vni: Vni,
    mtu: u32,
    local: (Ipv4Addr, MacAddr),
    peer: (Ipv4Addr, MacAddr),
) -> anyhow::Result<Reconciler> {
    let r = rt
        .block_on(async { Reconciler::connect_in_netns(&netns_path(node)) })
        .with_context(|| format!("netlink in {node}"))?;
    let desired = DesiredNode {
        underlay: Underlay {
            local_vtep: local.0,
            vxlan_port: DEFAULT_VXLAN_PORT,
        },
        networks: vec![NodeNetwork {
            vni,
            mtu,
            ports: vec![],
            peers: vec![RemotePeer {
                vtep: peer.0,
                macs: vec![peer.1],
                addresses: vec![],
            }],
        }],
        adopt_port_prefix: Some(novacron_agent::overlay::TAP_PREFIX.into()),
    };
    converge(rt, &r, &desired, node)?;
    let alias = format!("{}{}", novacron_net::TAP_ALIAS_PREFIX, local.1);
    #[rustfmt::skip]
    ip(&["-n", node, "link", "set", &endpoint_tap(), "master", &vni.bridge_name(), "alias", &alias, "up"])?;
    converge(rt, &r, &desired, node)?;
    Ok(r)
}

/// One reconcile that must leave the node as desired.
fn converge(
    rt: &tokio::runtime::Handle,
    r: &Reconciler,
    desired: &DesiredNode,
    node: &str,
) -> anyhow::Result<()> {
    let report = rt
        .block_on(r.reconcile(desired))
        .with_context(|| format!("reconciling {node}"))?;
    if let Some(f) = report.failures.first() {
        bail!("reconciling {node}: {f}");
    }
    Ok(())
}

/// One iperf3 run from `client_ns` to a one-off server on `addr` in `server_ns`.
fn iperf(
    scratch: &Scratch,
    server_ns: &str,
    client_ns: &str,
    addr: Ipv4Addr,
    a: &NetworkArgs,
    label: &str,
) -> anyhow::Result<IperfRun> {
    let addr = addr.to_string();
    // Logs in the scratch directory: its path on their command lines lets Ctrl-C find them.
    let server_log = scratch.path(&format!("iperf3-{label}-server.log"));
    #[rustfmt::skip]
    let mut server = Reaped::spawn(
        Command::new("ip")
            .args(["netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", &addr, "-p", IPERF_PORT, "--logfile"])
            .arg(&server_log),
    )?;
    let json = scratch.path(&format!("iperf3-{label}.json"));
    let limit = Duration::from_secs(a.seconds + 30);
    let listening_by = Instant::now() + Duration::from_secs(10);
    loop {
        // iperf3 appends to its log file.
        let _ = std::fs::remove_file(&json);
        let (secs, streams) = (a.seconds.to_string(), a.streams.to_string());
        #[rustfmt::skip]
        run_bounded(
            Command::new("ip")
                .args(["netns", "exec", client_ns, "iperf3", "-c", &addr, "-p", IPERF_PORT, "-t", &secs, "-P", &streams, "-J", "--connect-timeout", "3000", "--logfile"])
                .arg(&json),
            limit,
        )?;
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&json).with_context(|| format!("iperf3 {label} wrote no report"))?,
        )
        .with_context(|| format!("iperf3 {label}'s report"))?;
        if let Some(err) = v["error"].as_str() {
            // The server may not listen yet.
            if err.contains("Connection refused") && Instant::now() < listening_by {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            bail!(
                "iperf3 {label}: {err}; server log: {}",
                super::infra::tail(&server_log, 5)
            );
        }
        let end = &v["end"];
        let bps = end["sum_received"]["bits_per_second"]
            .as_f64()
            .with_context(|| format!("iperf3 {label}: no received rate in its report"))?;
        let cpu = &end["cpu_utilization_percent"];
        let cpu = (cpu["host_total"].as_f64().unwrap_or(0.0)
            + cpu["remote_total"].as_f64().unwrap_or(0.0))
            / 100.0;
        server.finish(Duration::from_secs(5));
        return Ok(IperfRun { bps, cpu });
    }
}

// ---------------------------------------------------------------------------------------
// Between sites
// ---------------------------------------------------------------------------------------

/// Issue 13: TCP through the overlay between sites at least this fraction of the link rate.
const SITES_RATIO_TARGET: f64 = 0.9;
/// The network between sites: its VNI and its default MTU when the cluster spans sites.
const SITES_VNI: u32 = 4202;
const SITES_MTU: u32 = UNDERLAY_MTU - VXLAN_OVERHEAD - novacron_net::TUNNEL_OVERHEAD;

/// The emulated WAN, checked before anything is built.
#[derive(Debug, Clone, Copy)]
pub struct WanLink {
    pub rate_bps: u64,
    pub rtt: Duration,
    pub loss: f64,
}

impl WanLink {
    fn parse(a: &NetworkArgs) -> anyhow::Result<Self> {
        use novacron_wanem::parse;
        Ok(Self {
            rate_bps: parse::rate_bps(&a.wan_rate).context("--wan-rate")?,
            rtt: parse::duration(&a.wan_rtt).context("--wan-rtt")?,
            loss: parse::loss(&a.wan_loss).context("--wan-loss")?,
        })
    }
}

/// Which path a run between sites measures.
#[derive(Clone, Copy, PartialEq)]
enum SitePath {
    /// Site → site TCP on the link itself.
    Wan,
    /// Endpoint → endpoint across the overlay, sealed by the tunnel.
    Sealed,
}

/// Two sites joined by `novacron-wanem` (namespaces `ncnb<pid>-site-a`/`-site-b`), each a
/// node with the network built by the reconciler, an endpoint attached like a VM tap and a
/// tunnel that has the other node as its peer; iperf3 alternates between the sealed overlay
/// and plain TCP on the link.
fn sites(
    a: &NetworkArgs,
    link: WanLink,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<SitesReport> {
    use novacron_net::{DEFAULT_TUNNEL_PORT, SiteTunnel, TunnelKey, TunnelPeer};
    use novacron_wanem::{LinkParams, Wanem, WanemConfig};
    which("iperf3").context("iperf3 is not installed: apt-get install iperf3")?;
    let scratch = Scratch::new("netbench-sites")?;
    let tag = std::process::id() % 100_000;
    let prefix = format!("ncnb{tag}-");
    super::interrupt::wanem(&prefix);
    let wan = Wanem::up(WanemConfig::new(
        &prefix,
        LinkParams::symmetric(link.rate_bps, link.rtt, link.loss),
    ))
    .context("starting novacron-wanem")?;
    let nodes = [wan.site_a().clone(), wan.site_b().clone()];
    let mut namespaces = Namespaces::default();
    let endpoints = [format!("ncnb{tag}-sep-a"), format!("ncnb{tag}-sep-b")];
    let endpoint_ips = [
        Ipv4Addr::new(198, 19, 250, 1),
        Ipv4Addr::new(198, 19, 250, 2),
    ];
    let macs = [
        MacAddr([0x02, 0x4e, 0x42, 0, 1, 0x0a]),
        MacAddr([0x02, 0x4e, 0x42, 0, 1, 0x0b]),
    ];
    for i in 0..2 {
        namespaces.add(&endpoints[i])?;
        attach_endpoint(
            &nodes[i].netns,
            &endpoints[i],
            macs[i],
            endpoint_ips[i],
            SITES_MTU,
        )?;
    }
    // What crosses the link into site b in the clear (the tunnel's output is excluded).
    let wire = format!(
        "table inet ncnb_wire {{\n chain c {{\n type filter hook prerouting priority -400;\n \
         iifname != \"{}\" udp dport {DEFAULT_VXLAN_PORT} counter\n }}\n}}\n",
        novacron_net::TUNNEL_DEVICE
    );
    let wire_file = scratch.path("wire.nft");
    std::fs::write(&wire_file, wire)?;
    run_ok(
        Command::new("ip")
            .args(["netns", "exec", &nodes[1].netns, "nft", "-f"])
            .arg(&wire_file),
    )?;

    // The tunnels first, as an agent does: no FDB entry sends to the other site before
    // its traffic is routed into the tunnel.
    let keys = [TunnelKey::generate()?, TunnelKey::generate()?];
    let publics = [keys[0].public(), keys[1].public()];
    let mut tunnels = vec![];
    for (i, key) in keys.into_iter().enumerate() {
        let path = netns_path(&nodes[i].netns);
        let started = std::thread::spawn(move || -> anyhow::Result<SiteTunnel> {
            enter_netns(&path).context("entering a site")?;
            Ok(SiteTunnel::start(
                &key,
                DEFAULT_TUNNEL_PORT,
                DEFAULT_VXLAN_PORT,
            )?)
        })
        .join()
        .map_err(|_| anyhow!("the tunnel start thread panicked"))??;
        tunnels.push(started);
    }
    for (i, t) in tunnels.iter().enumerate() {
        let other = nodes[1 - i].addr;
        t.set_peers(&[TunnelPeer {
            vtep: other,
            endpoint: std::net::SocketAddrV4::new(other, DEFAULT_TUNNEL_PORT),
            key: publics[1 - i],
        }])?;
    }
    let vni = Vni::new(SITES_VNI)?;
    let mut reconcilers = vec![];
    for i in 0..2 {
        let local = (nodes[i].addr, macs[i]);
        let peer = (nodes[1 - i].addr, macs[1 - i]);
        reconcilers.push(build_network(
            rt,
            &nodes[i].netns,
            vni,
            SITES_MTU,
            local,
            peer,
        )?);
    }

    let per_run = NetworkArgs {
        seconds: a.wan_seconds,
        ..a.clone()
    };
    let (mut sealed, mut plain) = (vec![], vec![]);
    let paths = [SitePath::Sealed, SitePath::Wan];
    for run in 0..a.runs {
        for k in 0..paths.len() {
            let path = paths[(run + k) % paths.len()];
            let r = match path {
                SitePath::Wan => iperf(
                    &scratch,
                    &nodes[1].netns,
                    &nodes[0].netns,
                    nodes[1].addr,
                    &per_run,
                    &format!("wan-{run}"),
                )?,
                SitePath::Sealed => iperf(
                    &scratch,
                    &endpoints[1],
                    &endpoints[0],
                    endpoint_ips[1],
                    &per_run,
                    &format!("sealed-{run}"),
                )?,
            };
            match path {
                SitePath::Wan => plain.push(r.bps),
                SitePath::Sealed => sealed.push(r.bps),
            }
        }
    }
    let stats: Vec<_> = tunnels.iter().map(|t| t.stats()).collect();
    let in_clear = nft_counter(&nodes[1].netns, "ncnb_wire")?;
    drop(reconcilers);
    for t in tunnels {
        t.remove();
    }
    drop(namespaces);
    wan.down().context("stopping novacron-wanem")?;

    let (sealed_bps, plain_bps) = (median(&sealed), median(&plain));
    let ratio = sealed_bps / link.rate_bps as f64;
    Ok(SitesReport {
        sites_encrypted_bps: sealed_bps,
        sites_wan_tcp_bps: plain_bps,
        sites_link_bps: link.rate_bps as f64,
        sites_link_rtt_ms: ms(link.rtt),
        sites_link_loss: link.loss,
        sites_encrypted_ratio: ratio,
        sites_encrypted_to_wan_tcp_ratio: sealed_bps / plain_bps,
        sites_encrypted_bps_runs: sealed,
        sites_wan_tcp_bps_runs: plain,
        sites_sealed_packets: stats.iter().map(|s| s.sealed_packets).sum(),
        sites_opened_packets: stats.iter().map(|s| s.opened_packets).sum(),
        sites_tunnel_dropped: stats.iter().map(|s| s.dropped).sum(),
        sites_plain_vxlan_packets: in_clear,
        sites_overlay_mtu: SITES_MTU,
        sites_seconds_per_run: a.wan_seconds,
        sites_encrypted_ratio_target: SITES_RATIO_TARGET,
        sites_encrypted_ratio_met: ratio >= SITES_RATIO_TARGET,
    })
}

/// The packet count of the first counter in table `inet NAME` of namespace `ns`.
fn nft_counter(ns: &str, table: &str) -> anyhow::Result<u64> {
    let out = run_ok(
        Command::new("ip").args(["netns", "exec", ns, "nft", "list", "table", "inet", table]),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("counter packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no counter in table inet {table}: {text}"))
}

// ---------------------------------------------------------------------------------------
// Rule propagation
// ---------------------------------------------------------------------------------------

const NETWORK: &str = "bench-net";
const GROUP: &str = "bench-sg";
/// The rules changed by the bench open TCP ports from here up (five digits, so no port's
/// text is a prefix of another's).
const FIRST_PORT: u16 = 40000;
/// A change not on every node after this long fails the bench.
const CHANGE_LIMIT: Duration = Duration::from_secs(60);

fn node_name(i: usize) -> String {
    format!("hollow-{i:02}")
}

/// Where the network's subnet starts (benchmarking range); its first host is the gateway.
const SUBNET_BASE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 0);

/// The smallest subnet at [`SUBNET_BASE`] with room for `hosts` NICs besides the network and
/// broadcast addresses and the gateway; at least a /24.
fn subnet_for(hosts: usize) -> anyhow::Result<String> {
    let needed = hosts as u64 + 3;
    let bits = 64 - (needed - 1).leading_zeros();
    let prefix = 32u32.saturating_sub(bits).min(24);
    if prefix < 16 {
        bail!("{hosts} ports do not fit in 198.19.0.0/16: use fewer --nodes or --ports");
    }
    Ok(format!("{SUBNET_BASE}/{prefix}"))
}

async fn propagation(a: &NetworkArgs) -> anyhow::Result<PropagationReport> {
    which("nft").context("nft is not installed: apt-get install nftables")?;
    let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
    let subnet = subnet_for(a.nodes * a.ports)?;
    let exe = std::env::current_exe()?;
    let tag = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    // Dropped last: the processes in the namespaces end first (the scratch's drop).
    let lan = Lan::create(tag, a.nodes)?;
    let mut scratch = Scratch::new("netbench")?;

    let port = free_port()?;
    let cfg_path = scratch.path("cli.json");
    let mut cmd = Command::new(&exe);
    cmd.args([
        "server",
        "-o",
        "json",
        "--listen",
        &format!("{}:{port}", lan.host_ip),
    ])
    .arg("--data-dir")
    .arg(scratch.path("cp"))
    .env("NOVACRON_CONFIG", &cfg_path)
    .env("NOVACRON_LOG", "warn");
    let (_, line) = scratch.spawn_first_line("server", &mut cmd, Duration::from_secs(60))?;
    let summary: serde_json::Value = serde_json::from_str(&line).context("server summary")?;
    let url = summary["api_url"].as_str().unwrap_or_default().to_string();
    let join = summary["join_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let config: Config = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
    let admin = Client::new(config)?;

    // Hollow nodes: each agent in its namespace, its LAN address as its VTEP, so it runs the
    // overlay loop (bridge, VXLAN, FDB and `table inet novacron` of its namespace).
    let names: Vec<String> = (0..a.nodes).map(node_name).collect();
    for (name, (ns, addr)) in names.iter().zip(&lan.namespaces) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(&exe)
            .args(["agent", "--hollow", "--server", &url, "--join-token", &join])
            .args(["--name", name, "--listen", &format!("{addr}:0")])
            .args(["--advertise", addr, "--vtep-address", addr])
            .args(["--stop-timeout-secs", "1", "--data-dir"])
            .arg(scratch.path(name))
            .env("NOVACRON_LOG", "info");
        scratch.spawn(&format!("agent-{name}"), &mut cmd)?;
    }
    let ready_by = (Instant::now() + Duration::from_secs(120)).min(deadline);
    loop {
        let ready = admin
            .node_list()
            .await
            .map(|n| {
                n.iter()
                    .filter(|x| x.state == NodeState::Ready && names.contains(&x.name))
                    .count()
            })
            .unwrap_or(0);
        if ready == a.nodes {
            break;
        }
        if Instant::now() > ready_by {
            bail!(
                "{ready} of {} hollow nodes registered; {}'s log:\n{}",
                a.nodes,
                names[0],
                scratch.log_tail(&format!("agent-{}", names[0]), 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    admin.image_build_tiny("tiny").await?;
    // Requests as the API takes them (JSON): fields the bench leaves at their defaults need
    // no mention.
    let network = admin
        .network_create(&serde_json::from_value(serde_json::json!({
            "name": NETWORK,
            "subnet": subnet,
            "dhcp": false,
        }))?)
        .await?;
    admin
        .security_group_create(&serde_json::from_value(serde_json::json!({
            "name": GROUP,
            "description": "novacron bench network",
        }))?)
        .await?;
    admin
        .security_rule_add(
            GROUP,
            "default",
            &serde_json::from_value(serde_json::json!({"direction": "in", "traffic": "tcp/22"}))?,
        )
        .await?;

    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watchers = vec![];
    for (i, (ns, _)) in lan.namespaces.iter().enumerate() {
        watchers.push(NftWatcher::start(i, netns_path(ns), seen_tx.clone())?);
    }
    drop(seen_tx);

    let created_at = Instant::now();
    for w in &watchers {
        w.expect(Want::Ports(a.ports), created_at);
    }
    create_vms(&admin, a, &names, deadline).await?;
    let ready = collect(&mut seen_rx, a.nodes, deadline)
        .await
        .map_err(|missing| {
            not_seen(
                &format!("all {} ports guarded", a.ports),
                &missing,
                &names,
                &lan,
                &scratch,
                network.vni,
            )
        })?;
    let ports_ready_seconds = ready
        .iter()
        .map(|t| t.saturating_duration_since(created_at).as_secs_f64())
        .fold(0.0, f64::max);

    let mut from_return = vec![];
    let mut from_request = vec![];
    let mut api = vec![];
    let mut before_return = 0;
    let mut added: Option<u32> = None;
    for k in 0..a.changes {
        let port = FIRST_PORT + (k as u16 / 2);
        let text = format!("tcp dport {port} ");
        let sent = Instant::now();
        let present = match added.take() {
            None => {
                let r = admin
                    .security_rule_add(
                        GROUP,
                        "default",
                        &serde_json::from_value(serde_json::json!({
                            "direction": "in",
                            "traffic": format!("tcp/{port}"),
                            "cidr": "198.18.0.0/15",
                        }))?,
                    )
                    .await?;
                added = Some(r.rule.id);
                true
            }
            Some(id) => {
                admin.security_rule_delete(GROUP, "default", id).await?;
                false
            }
        };
        let returned = Instant::now();
        api.push(ms(returned - sent));
        for w in &watchers {
            w.expect(
                Want::Rule {
                    text: text.clone(),
                    present,
                },
                sent,
            );
        }
        let what = format!(
            "the rule for tcp/{port} {}",
            if present { "added" } else { "deleted" }
        );
        let limit = (returned + CHANGE_LIMIT).min(deadline);
        let seen = collect(&mut seen_rx, a.nodes, limit)
            .await
            .map_err(|missing| not_seen(&what, &missing, &names, &lan, &scratch, network.vni))?;
        for t in seen {
            if t < returned {
                before_return += 1;
            }
            from_return.push(ms(t.saturating_duration_since(returned)));
            from_request.push(ms(t.saturating_duration_since(sent)));
        }
        // Changes apart, as a person makes them: each is its own transaction on each node.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(watchers);
    for v in [&mut from_return, &mut from_request, &mut api] {
        v.sort_by(f64::total_cmp);
    }
    let p99 = percentile(&from_return, 0.99);
    Ok(PropagationReport {
        rule_propagation_p50_ms: percentile(&from_return, 0.5),
        rule_propagation_p99_ms: p99,
        rule_propagation_max_ms: from_return.last().copied().unwrap_or(f64::NAN),
        rule_propagation_from_request_p99_ms: percentile(&from_request, 0.99),
        rule_propagation_samples: from_return.len(),
        rule_propagation_before_return: before_return,
        rule_api_p50_ms: percentile(&api, 0.5),
        rule_api_p99_ms: percentile(&api, 0.99),
        nodes: a.nodes,
        ports_per_node: a.ports,
        changes: a.changes,
        ports_ready_seconds,
        rule_propagation_p99_target_ms: PROPAGATION_P99_TARGET_MS,
        rule_propagation_met: p99 <= PROPAGATION_P99_TARGET_MS,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Creates `ports` hollow VMs on each node, a few requests in flight.
async fn create_vms(
    admin: &Client,
    a: &NetworkArgs,
    names: &[String],
    deadline: Instant,
) -> anyhow::Result<()> {
    const IN_FLIGHT: usize = 8;
    let total = a.nodes * a.ports;
    let next = Arc::new(AtomicUsize::new(0));
    let names = Arc::new(names.to_vec());
    let mut workers = vec![];
    for _ in 0..IN_FLIGHT.min(total) {
        let (admin, next, names, ports) = (admin.clone(), next.clone(), names.clone(), a.ports);
        workers.push(tokio::spawn(async move {
            loop {
                let v = next.fetch_add(1, Ordering::Relaxed);
                if v >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                if Instant::now() > deadline {
                    bail!("--timeout-secs passed while creating the hollow VMs ({v} of {total})");
                }
                let (node, port) = (v / ports, v % ports);
                // Fixed addresses: concurrent creates asking for "the lowest free one" would
                // keep taking each other's.
                let ip = Ipv4Addr::from(u32::from(SUBNET_BASE) + 2 + v as u32);
                let req = serde_json::from_value(serde_json::json!({
                    "name": format!("hollow-vm-{node:02}-{port:04}"),
                    "image": "tiny",
                    "cpus": 1,
                    "memory_bytes": 64u64 << 20,
                    "node": names[node],
                    "nics": [{"network": NETWORK, "ip": ip.to_string()}],
                    "security_groups": [GROUP],
                }))?;
                admin
                    .vm_create(&req)
                    .await
                    .with_context(|| format!("creating hollow VM {v} on {}", names[node]))?;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(())
}

/// Nodes that did not show a change, and why the bench stopped waiting for them.
struct Missing {
    nodes: Vec<usize>,
    why: String,
}

/// Waits for every node's watcher to answer, until `deadline`.
async fn collect(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, Result<Instant, String>)>,
    nodes: usize,
    deadline: Instant,
) -> Result<Vec<Instant>, Missing> {
    let mut seen: Vec<Option<Instant>> = vec![None; nodes];
    let mut left = nodes;
    let mut why = String::new();
    while left > 0 {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some((node, Ok(t)))) => {
                if seen[node].replace(t).is_none() {
                    left -= 1;
                }
            }
            Ok(Some((node, Err(e)))) => {
                why = format!("the watcher of node {node} failed: {e}");
                break;
            }
            Ok(None) => {
                why = "every watcher ended".into();
                break;
            }
            Err(_) => {
                why = "timed out".into();
                break;
            }
        }
    }
    if left > 0 {
        return Err(Missing {
            nodes: (0..nodes).filter(|i| seen[*i].is_none()).collect(),
            why,
        });
    }
    Ok(seen.into_iter().flatten().collect())
}

/// The error for nodes that never showed `what`: names them, tells whether they built the
/// network at all, and shows the first one's agent log.
fn not_seen(
    what: &str,
    missing: &Missing,
    names: &[String],
    lan: &Lan,
    scratch: &Scratch,
    vni: u32,
) -> anyhow::Error {
    let first = missing.nodes.first().copied().unwrap_or(0);
    let bridge = Vni::new(vni).map(|v| v.bridge_name()).unwrap_or_default();
    let has_bridge = Command::new("ip")
        .args(["-n", &lan.namespaces[first].0, "link", "show", &bridge])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let hint = if has_bridge {
        String::new()
    } else {
        format!(
            " {} never made the network's bridge {bridge}: its agent did not run the overlay loop (a hollow agent needs one that takes its --vtep-address).",
            names[first]
        )
    };
    anyhow!(
        "{} of {} nodes did not show {what} ({}: {}).{hint} Its agent's log:\n{}",
        missing.nodes.len(),
        names.len(),
        missing.why,
        missing
            .nodes
            .iter()
            .map(|i| names[*i].as_str())
            .collect::<Vec<_>>()
            .join(", "),
        scratch.log_tail(&format!("agent-{}", names[first]), 20)
    )
}

/// What a node's `table inet novacron` must show.
#[derive(Debug, Clone)]
enum Want {
    /// Every one of this many ports has its `in_<i>` chain.
    Ports(usize),
    /// The first port's `in_0` chain has (or no longer has) a rule with this text. One `nft
    /// -f` of the agent is one transaction, so one port's chain shows the whole node's state.
    Rule { text: String, present: bool },
}

struct Expect {
    want: Want,
    /// When the change was asked for: no commit before it can have made it.
    since: Instant,
}

/// Follows one node namespace's nftables from a thread of its own in that namespace.
struct NftWatcher {
    tx: std::sync::mpsc::Sender<Expect>,
}

/// How often a watcher looks with `nft` even without a notification (one lost to an
/// overflowing socket buffer, say).
const RECHECK: Duration = Duration::from_millis(500);
/// How long a watcher waits for a notification before it looks at its orders again.
const EVENT_WAIT_US: libc::suseconds_t = 20_000;

impl NftWatcher {
    /// Starts watching the namespace at `netns`; answers `(node, the commit that showed what
    /// was expected)` on `seen`. It ends when dropped.
    fn start(
        node: usize,
        netns: PathBuf,
        seen: tokio::sync::mpsc::UnboundedSender<(usize, Result<Instant, String>)>,
    ) -> anyhow::Result<NftWatcher> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("nft-watch-{node}"))
            .spawn(move || watch(node, &netns, &rx, &seen, &ready_tx))?;
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow!("the nftables watcher of node {node} did not start"))?
            .map_err(|e| anyhow!("the nftables watcher of node {node}: {e}"))?;
        Ok(NftWatcher { tx })
    }

    fn expect(&self, want: Want, since: Instant) {
        let _ = self.tx.send(Expect { want, since });
    }
}

fn watch(
    node: usize,
    netns: &Path,
    orders: &std::sync::mpsc::Receiver<Expect>,
    seen: &tokio::sync::mpsc::UnboundedSender<(usize, Result<Instant, String>)>,
    ready: &std::sync::mpsc::Sender<Result<(), String>>,
) {
    let events = match enter_netns(netns).and_then(|()| NftEvents::open()) {
        Ok(e) => {
            let _ = ready.send(Ok(()));
            e
        }
        Err(e) => {
            let _ = ready.send(Err(format!("{}: {e}", netns.display())));
            return;
        }
    };
    let mut buf = vec![0u8; 1 << 16];
    // The last commit notified, the order being worked on, and whether to look again.
    let mut last_commit: Option<Instant> = None;
    let mut pending: Option<Expect> = None;
    let mut look = false;
    let mut last_look = Instant::now();
    loop {
        match events.wait(&mut buf) {
            Ok(0) => {}
            Ok(_) => {
                last_commit = Some(Instant::now());
                look = true;
            }
            Err(e) => {
                let _ = seen.send((node, Err(format!("nftables notifications: {e}"))));
                return;
            }
        }
        loop {
            match orders.try_recv() {
                Ok(e) => {
                    pending = Some(e);
                    look = true;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                // The bench is done with this node.
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
        }
        let Some(p) = &pending else { continue };
        if !look && last_look.elapsed() < RECHECK {
            continue;
        }
        look = false;
        let looked = Instant::now();
        last_look = looked;
        if shows(&p.want) {
            // The kernel showed it from the last commit notified before this look (a look
            // follows every notification); without a notification since the order, this look.
            let at = last_commit.filter(|t| *t >= p.since).unwrap_or(looked);
            let _ = seen.send((node, Ok(at)));
            pending = None;
        }
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter_netns(path: &Path) -> std::io::Result<()> {
    // The watcher's own thread, which stays in the namespace until it ends.
    novacron_net::netns::enter(&std::fs::File::open(path)?)
}

/// True when the node's kernel (the calling thread's namespace) shows `want`. `nft` runs as a
/// child of this thread, so in its namespace.
fn shows(want: &Want) -> bool {
    let list = |args: &[&str]| {
        run_bounded(Command::new("nft").args(args), Duration::from_secs(10))
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    match want {
        // `list chains` takes a family only: every inet table's chains, ours among them.
        Want::Ports(n) => {
            list(&["list", "chains", "inet"]).is_some_and(|s| guarded_ports(&s) >= *n)
        }
        Want::Rule { text, present } => list(&["list", "chain", "inet", "novacron", "in_0"])
            .is_some_and(|s| s.contains(text.as_str()) == *present),
    }
}

/// The `in_<i>` chains of `table inet novacron` in `nft list chains` output: one per guarded
/// port.
fn guarded_ports(listing: &str) -> usize {
    let mut ours = false;
    let mut ports = 0;
    for line in listing.lines() {
        let line = line.trim();
        if let Some(table) = line.strip_prefix("table ") {
            ours = table.trim_end_matches('{').trim() == "inet novacron";
        } else if ours && line.starts_with("chain in_") {
            ports += 1;
        }
    }
    ports
}

/// `NFT_MSG_NEWGEN` of nfnetlink's nftables subsystem: the notification that ends every
/// committed nftables transaction.
const NEWGEN: u16 = ((libc::NFNL_SUBSYS_NFTABLES as u16) << 8) | libc::NFT_MSG_NEWGEN as u16;

/// A netlink socket, in the namespace of the thread that opened it, subscribed to nftables'
/// notifications (what `nft monitor` reads).
struct NftEvents(OwnedFd);

impl NftEvents {
    fn open() -> std::io::Result<NftEvents> {
        // SAFETY: socket(2) with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let sock = NftEvents(unsafe { OwnedFd::from_raw_fd(fd) });
        // SAFETY: sockaddr_nl is plain data; all zeros is a valid unbound address.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: bind(2) with a sockaddr_nl we own and its size.
        let rc = unsafe {
            libc::bind(
                sock.0.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        sock.set(
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            &libc::NFNLGRP_NFTABLES,
        )?;
        // A whole-table rewrite notifies every chain and rule: room for that (root may exceed
        // rmem_max). An overflow still counts as a commit (see `wait`).
        let _ = sock.set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &(16 << 20));
        sock.set(
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &libc::timeval {
                tv_sec: 0,
                tv_usec: EVENT_WAIT_US,
            },
        )?;
        Ok(sock)
    }

    fn set<T>(&self, level: libc::c_int, name: libc::c_int, value: &T) -> std::io::Result<()> {
        // SAFETY: setsockopt(2) reading a live `T` of exactly the size passed.
        let rc = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to [`EVENT_WAIT_US`] for notifications; returns how many commits they report
    /// (an overflow of the socket's buffer counts as one: something was committed).
    fn wait(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: recv(2) into a buffer we own, at most its length.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(0),
                Some(libc::ENOBUFS) => Ok(1),
                _ => Err(e),
            };
        }
        Ok(count_commits(&buf[..(n as usize).min(buf.len())]))
    }
}

/// The `NFT_MSG_NEWGEN` messages in one datagram of netlink messages.
fn count_commits(mut buf: &[u8]) -> usize {
    const HEADER: usize = 16;
    let mut commits = 0;
    while buf.len() >= HEADER {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if u16::from_ne_bytes([buf[4], buf[5]]) == NEWGEN {
            commits += 1;
        }
        // Messages are 4-byte aligned.
        let step = (len + 3) & !3;
        if len < HEADER || step > buf.len() {
            break;
        }
        buf = &buf[step..];
    }
    commits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, payload: usize) -> Vec<u8> {
        let len = (16 + payload) as u32;
        let mut m = len.to_ne_bytes().to_vec();
        m.extend(kind.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(vec![0u8; payload]);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    #[test]
    fn commits_are_counted_among_other_notifications() {
        let new_rule = ((libc::NFNL_SUBSYS_NFTABLES as u16) << 8) | libc::NFT_MSG_NEWRULE as u16;
        let mut dgram = message(new_rule, 37);
        dgram.extend(message(NEWGEN, 8));
        dgram.extend(message(new_rule, 3));
        assert_eq!(count_commits(&dgram), 1);
        assert_eq!(count_commits(&message(new_rule, 0)), 0);
        // A truncated datagram ends the count, it does not read past the end.
        let mut cut = message(NEWGEN, 8);
        cut.truncate(10);
        assert_eq!(count_commits(&cut), 0);
    }

    #[test]
    fn guarded_ports_are_counted_in_our_table_only() {
        let listing = "table inet novacron {\n\tchain in_0 {\n\t}\n\tchain out_0 {\n\t}\n\tchain in_1 {\n\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\ntable inet other {\n\tchain in_9 {\n\t}\n}\n";
        assert_eq!(guarded_ports(listing), 2);
        assert_eq!(guarded_ports(""), 0);
    }

    #[test]
    fn the_subnet_holds_every_port_and_the_gateway() {
        assert_eq!(subnet_for(5).ok().as_deref(), Some("198.19.0.0/24"));
        assert_eq!(subnet_for(253).ok().as_deref(), Some("198.19.0.0/24"));
        assert_eq!(subnet_for(254).ok().as_deref(), Some("198.19.0.0/23"));
        assert_eq!(subnet_for(1000).ok().as_deref(), Some("198.19.0.0/22"));
        assert!(subnet_for(70_000).is_err());
    }
}
