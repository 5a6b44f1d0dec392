//! The node's side of overlay networks: follow the control plane's view of the networks
//! this node's VMs use (`GET /api/v1/agent/overlay`, long-polled) and make the kernel
//! match it with [`novacron_net::Reconciler`] (bridge + VXLAN per VNI, unicast FDB entries
//! for remote VM MACs, flood entries per remote VTEP), give each bridge the network's
//! gateway address and MAC (the same on every node), and run one dnsmasq per network that
//! answers DHCP for this node's VMs only (static leases from the control plane's IPAM, no
//! router unless the network NATs) and, with `--dns`, the names of the network's VMs. The
//! node's nftables tables follow the same view: security groups ([`firewall`]) and the
//! gateways' isolation and NAT ([`gateways`]); see docs/networks.md and
//! docs/security-groups.md. Each VM tap's source MAC pin and bandwidth limit
//! ([`node_ports`]) are kept by a task of their own ([`keep_ports`]), which also looks for
//! new taps every few seconds: a VM that restarts or arrives by migration gets a new tap
//! while the network view stays the same.
//!
//! VM taps are made by the VM's launch (`nctapN`, on the bridge) and adopted here, so an
//! agent restart changes nothing on a running VM: the first reconcile finds the taps and
//! FDB entries it would have made. A network no local VM uses loses its devices and its
//! dnsmasq.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::overlay::{Ipv4Cidr, NodeOverlay, NodeOverlayNetwork, OverlayPeer};
use novacron_api_types::security::{Direction, Protocol, SecurityRule};
use novacron_client::Client;
use novacron_net::{
    DEFAULT_VXLAN_PORT, DesiredNode, Firewall, FirewallApplier, FwPeer, FwProtocol, FwRule,
    Gateway, GatewayApplier, GuardedPort, MacAddr, NodeNetwork, NodePorts, PortApplier, RemotePeer,
    ShapedNic, SiteTunnel, TunnelKey, TunnelPeer, TunnelPublicKey, Underlay, Vni, gateway_mac,
};
use tokio::sync::watch;

/// Taps of VM NICs: named by the kernel from `novacron_qemu`'s template.
pub const TAP_PREFIX: &str = "nctap";
/// How long a long poll for changes waits.
const POLL_WAIT: Duration = Duration::from_secs(30);
/// Pause after a failed poll or reconcile before trying again.
const RETRY: Duration = Duration::from_secs(2);
/// Whatever happens, the data plane is checked again this often (something outside may
/// have changed the kernel).
const RESYNC: Duration = Duration::from_secs(60);
/// How often the port task looks for taps that appeared (one netlink dump).
const TAP_CHECK: Duration = Duration::from_secs(2);

/// How this node may send overlay traffic to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPath {
    /// Same site: VXLAN straight over the underlay.
    Direct,
    /// Another site: through the tunnel, sealed.
    Tunnel(TunnelPeer),
    /// Another site, but the peer has no usable tunnel end (an agent from before tunnels,
    /// or a bad key): not reached at all rather than in the clear.
    Unreachable,
}

pub fn peer_path(own_site: Option<&str>, peer: &OverlayPeer) -> PeerPath {
    if peer.site.as_deref() == own_site {
        return PeerPath::Direct;
    }
    let Some(t) = &peer.tunnel else {
        return PeerPath::Unreachable;
    };
    match (
        peer.vtep.parse::<Ipv4Addr>(),
        t.public_key.parse::<TunnelPublicKey>(),
    ) {
        (Ok(vtep), Ok(key)) if t.port != 0 => PeerPath::Tunnel(TunnelPeer {
            vtep,
            endpoint: SocketAddrV4::new(vtep, t.port),
            key,
        }),
        _ => PeerPath::Unreachable,
    }
}

/// The peers of every network that are reached through the tunnel, one per VTEP.
pub fn tunnel_peers(vtep: Ipv4Addr, overlay: &NodeOverlay) -> Vec<TunnelPeer> {
    let mut out: BTreeMap<Ipv4Addr, TunnelPeer> = BTreeMap::new();
    for p in overlay.networks.iter().flat_map(|n| &n.peers) {
        if let PeerPath::Tunnel(t) = peer_path(overlay.site.as_deref(), p)
            && t.vtep != vtep
        {
            out.entry(t.vtep).or_insert(t);
        }
    }
    out.into_values().collect()
}

/// The data plane `overlay` asks of this node with VTEP `vtep`. Peers of other sites are
/// in it only when `tunnel_ready` (their traffic would otherwise leave in the clear).
pub fn desired_node(vtep: Ipv4Addr, overlay: &NodeOverlay, tunnel_ready: bool) -> DesiredNode {
    DesiredNode {
        underlay: Underlay {
            local_vtep: vtep,
            vxlan_port: DEFAULT_VXLAN_PORT,
        },
        networks: overlay
            .networks
            .iter()
            .filter_map(|n| {
                let mut peers: Vec<RemotePeer> = n
                    .peers
                    .iter()
                    .filter_map(|p| {
                        let peer_vtep: Ipv4Addr = p.vtep.parse().ok()?;
                        // A peer advertising our own VTEP would loop our floods back.
                        if peer_vtep == vtep {
                            return None;
                        }
                        match peer_path(overlay.site.as_deref(), p) {
                            PeerPath::Direct => {}
                            PeerPath::Tunnel(_) if tunnel_ready => {}
                            PeerPath::Tunnel(_) | PeerPath::Unreachable => return None,
                        }
                        let endpoints: Vec<(MacAddr, &Vec<String>)> = p
                            .endpoints
                            .iter()
                            .filter_map(|e| Some((e.mac.parse::<MacAddr>().ok()?, &e.ips)))
                            .collect();
                        Some(RemotePeer {
                            vtep: peer_vtep,
                            macs: endpoints.iter().map(|(mac, _)| *mac).collect(),
                            addresses: endpoints
                                .iter()
                                .flat_map(|(mac, ips)| {
                                    ips.iter()
                                        .filter_map(|ip| ip.parse::<Ipv4Addr>().ok())
                                        .map(|ip| (ip, *mac))
                                })
                                .collect(),
                        })
                    })
                    .collect();
                // One MAC per address, unicast only: an odd view answers fewer ARP
                // requests locally (the rest are flooded as before) rather than stopping
                // the whole reconcile.
                let mut claimed = std::collections::BTreeSet::new();
                for p in &mut peers {
                    p.addresses.retain(|(ip, _)| {
                        !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast())
                            && claimed.insert(*ip)
                    });
                }
                Some(NodeNetwork {
                    vni: Vni::new(n.vni).ok()?,
                    mtu: n.mtu,
                    ports: vec![],
                    peers,
                })
            })
            .collect(),
        adopt_port_prefix: Some(TAP_PREFIX.into()),
    }
}

/// The nftables set of a security group's members: `g` and 16 hex digits of a hash of
/// `project/name` (names may be 63 bytes each; a set name must stay short and stable, so
/// a membership change updates the set in place).
pub fn group_set_name(project: &str, name: &str) -> String {
    // FNV-1a, 64 bits: stable across runs and builds, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in project.bytes().chain([b'/']).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("g{h:016x}")
}

fn fw_rule(
    project: &str,
    rule: &SecurityRule,
    sets: &mut BTreeMap<String, Vec<Ipv4Addr>>,
    overlay: &NodeOverlay,
) -> Option<FwRule> {
    let protocol = match rule.protocol {
        Protocol::Any => FwProtocol::Any,
        Protocol::Tcp => FwProtocol::Tcp,
        Protocol::Udp => FwProtocol::Udp,
        Protocol::Icmp => FwProtocol::Icmp,
    };
    let peer = match (&rule.group, &rule.cidr) {
        (Some(g), _) => {
            let set = group_set_name(project, g);
            sets.entry(set.clone()).or_insert_with(|| {
                overlay
                    .security_groups
                    .iter()
                    .find(|sg| sg.project == project && &sg.name == g)
                    .map(|sg| sg.members.iter().filter_map(|ip| ip.parse().ok()).collect())
                    .unwrap_or_default()
            });
            FwPeer::Set(set)
        }
        (None, Some(c)) => {
            let (addr, len) = c.split_once('/')?;
            FwPeer::Cidr(addr.parse().ok()?, len.parse().ok()?)
        }
        (None, None) => FwPeer::Cidr(Ipv4Addr::UNSPECIFIED, 0),
    };
    Some(FwRule {
        protocol,
        ports: rule.port_min.zip(rule.port_max),
        peer,
    })
}

/// The firewall `overlay` asks of this node: each local NIC of a VM with security groups
/// is guarded (default deny in; out limited only once a group has an `out` rule); a NIC
/// of a VM without groups is not filtered. A group the control plane no longer knows adds
/// no rule, so the NIC takes in less, never more.
pub fn firewall(overlay: &NodeOverlay) -> Firewall {
    let mut fw = Firewall::default();
    let mut seen = std::collections::BTreeSet::new();
    for net in &overlay.networks {
        for e in net.local.iter().filter(|e| !e.security_groups.is_empty()) {
            let Ok(mac) = e.mac.parse::<MacAddr>() else {
                continue;
            };
            if !seen.insert(mac) {
                continue;
            }
            let mut ingress = vec![];
            let mut egress = vec![];
            for g in &e.security_groups {
                let Some(group) = overlay
                    .security_groups
                    .iter()
                    .find(|sg| sg.project == net.project && &sg.name == g)
                else {
                    continue;
                };
                for rule in &group.rules {
                    let Some(r) = fw_rule(&net.project, rule, &mut fw.sets, overlay) else {
                        continue;
                    };
                    match rule.direction {
                        Direction::In => ingress.push(r),
                        Direction::Out => egress.push(r),
                    }
                }
            }
            fw.ports.push(GuardedPort {
                mac,
                ips: e.ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
                ingress,
                egress: (!egress.is_empty()).then_some(egress),
            });
        }
    }
    fw
}

/// What this node's VM taps must hold: every local NIC on a network pinned to its MAC,
/// and those of VMs with a bandwidth limit shaped (a MAC on two networks of one VM is one
/// tap: the first wins, as in [`firewall`]).
pub fn node_ports(overlay: &NodeOverlay) -> NodePorts {
    let mut out = NodePorts::default();
    for e in overlay.networks.iter().flat_map(|n| &n.local) {
        let Ok(mac) = e.mac.parse::<MacAddr>() else {
            continue;
        };
        if out.guests.contains(&mac) {
            continue;
        }
        out.guests.push(mac);
        if let Some(rate_bps) = e.bandwidth_bps {
            out.shaped.push(ShapedNic { mac, rate_bps });
        }
    }
    out
}

/// Keeps the taps at what `wanted` holds until `stop` (sources pinned, bandwidth limits):
/// at once when it changes, and every [`TAP_CHECK`] for taps that came since (found by
/// their alias, see `novacron_qemu::tap`).
async fn keep_ports(mut wanted: watch::Receiver<NodePorts>, mut stop: watch::Receiver<bool>) {
    let mut applier = PortApplier::new();
    let mut last_error = String::new();
    let mut last_full = tokio::time::Instant::now();
    loop {
        let ports = wanted.borrow_and_update().clone();
        if last_full.elapsed() >= RESYNC {
            // Rewrite the table in full: repairs one someone else changed or removed.
            applier.forget();
            last_full = tokio::time::Instant::now();
        }
        // tc and nft are processes (bounded, but seconds at worst): off the runtime's threads.
        let (back, result) = match tokio::task::spawn_blocking(move || {
            let r = applier.apply_ports(&ports).map_err(|e| e.to_string());
            (applier, r)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => (
                PortApplier::new(),
                Err(format!("the VM port task failed: {e}")),
            ),
        };
        applier = back;
        match result {
            Ok(_) => last_error.clear(),
            Err(e) => {
                // Once per distinct failure, not every few seconds.
                if e != last_error {
                    tracing::warn!(error = %e, "VM port pins and limits not applied; retrying");
                    last_error = e;
                }
                applier.forget();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TAP_CHECK) => {}
            r = wanted.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// The gateways this node holds: every network whose bridge has an address here (DHCP,
/// NAT or DNS on).
pub fn gateways(overlay: &NodeOverlay) -> Vec<Gateway> {
    overlay
        .networks
        .iter()
        .filter(|n| n.dhcp || n.nat || n.dns)
        .filter_map(|n| {
            let subnet = n.subnet.parse::<Ipv4Cidr>().ok()?;
            Some(Gateway {
                vni: Vni::new(n.vni).ok()?,
                subnet: (subnet.network(), subnet.prefix_len()),
                address: n.gateway.parse().ok()?,
                nat: n.nat,
            })
        })
        .collect()
}

/// dnsmasq's static leases for the network's local VMs: `MAC,IP,NAME` lines.
pub fn dhcp_hosts(net: &NodeOverlayNetwork) -> String {
    let mut out = String::new();
    for e in &net.local {
        if let Some(ip) = e.ips.first() {
            let _ = writeln!(out, "{},{},{}", e.mac, ip, e.vm);
        }
    }
    out
}

/// The dnsmasq arguments for a network, on its bridge only: DHCP with static leases only (a
/// MAC the control plane does not know gets nothing) and a default route through the
/// gateway only when the network NATs; DNS only with `--dns` (other names go upstream only
/// when the network NATs).
pub fn dnsmasq_args(net: &NodeOverlayNetwork, subnet: Ipv4Cidr, dir: &Path) -> Vec<String> {
    let mask = Ipv4Addr::from(u32::MAX << (32 - u32::from(subnet.prefix_len())));
    let bridge = Vni::new(net.vni)
        .map(|v| v.bridge_name())
        .unwrap_or_default();
    let mut args: Vec<String> = vec![
        "--keep-in-foreground".into(),
        "--conf-file=/dev/null".into(),
        format!("--interface={bridge}"),
        "--bind-interfaces".into(),
        "--except-interface=lo".into(),
        "--user=root".into(),
        format!("--pid-file={}", dir.join("pid").display()),
        "--log-facility=-".into(),
        "--quiet-dhcp".into(),
    ];
    if net.dns {
        // Names `VM.NETWORK` of the network's VMs on every node, from the control plane, and
        // no name of the node's own. Names of the network's domain, names without a dot and
        // reverse lookups of private addresses never leave the node.
        args.extend([
            "--port=53".into(),
            "--no-hosts".into(),
            format!("--addn-hosts={}", dir.join("names").display()),
            format!("--local=/{}/", net.name),
            "--domain-needed".into(),
            "--bogus-priv".into(),
        ]);
        // A NAT network's VMs reach the outside through the node: other names go to the
        // node's own resolvers (its /etc/resolv.conf, read again when it changes). Without
        // NAT there is no upstream, and other names are not found.
        if !net.nat {
            args.push("--no-resolv".into());
        }
    } else {
        args.push("--port=0".into());
    }
    if !net.dhcp {
        return args;
    }
    args.extend([
        format!("--dhcp-range={},static,{mask},12h", subnet.network()),
        format!("--dhcp-hostsfile={}", dir.join("hosts").display()),
        format!("--dhcp-leasefile={}", dir.join("leases").display()),
        // The gateway is the default route only when the network NATs through the node;
        // otherwise no router. And the network's MTU.
        if net.nat {
            format!("--dhcp-option=option:router,{}", net.gateway)
        } else {
            "--dhcp-option=option:router".into()
        },
        format!("--dhcp-option=option:mtu,{}", net.mtu),
        "--dhcp-authoritative".into(),
        // Broadcasts cross the VXLAN to every node's server of this network, and all of
        // them use the gateway as their identity: a server that does not know the MAC (a
        // VM on another node) must stay silent, not NAK the lease its owner just offered.
        "--dhcp-ignore=tag:!known".into(),
    ]);
    if net.dns {
        args.push(format!("--dhcp-option=option:dns-server,{}", net.gateway));
    }
    args
}

/// dnsmasq's names for a network with DNS: `IP VM.NETWORK` for every NIC of every VM on
/// it, on this node or another.
pub fn dns_names(net: &NodeOverlayNetwork) -> String {
    let mut out = String::new();
    let endpoints = net
        .local
        .iter()
        .chain(net.peers.iter().flat_map(|p| p.endpoints.iter()));
    for e in endpoints {
        for ip in &e.ips {
            let _ = writeln!(out, "{ip} {}.{}", e.vm, net.name);
        }
    }
    out
}

/// What this node's DHCP servers answer, for each network of the view last applied: VNI ->
/// the MACs its server has been given (lower case), or `None` for a network without DHCP.
type KnownLeases = BTreeMap<u32, Option<std::collections::BTreeSet<String>>>;

/// [`KnownLeases`], as the overlay loop last published it, for VM starts to wait on.
static KNOWN_LEASES: std::sync::LazyLock<watch::Sender<KnownLeases>> =
    std::sync::LazyLock::new(|| watch::channel(KnownLeases::new()).0);

/// Waits (at most `timeout`) until this node's DHCP server of network `vni` answers `mac`,
/// so that the guest's first request gets its lease rather than silence and a retry
/// seconds later (the VM's start and the view that names its NIC come from the control
/// plane separately). True at once for a network without DHCP; false after `timeout`,
/// after which the guest's DHCP client asks again anyway.
pub async fn wait_for_lease(vni: u32, mac: &str, timeout: Duration) -> bool {
    let mac = mac.to_ascii_lowercase();
    let mut known = KNOWN_LEASES.subscribe();
    let answered = |k: &KnownLeases| match k.get(&vni) {
        Some(None) => true,
        Some(Some(macs)) => macs.contains(&mac),
        None => false,
    };
    tokio::time::timeout(timeout, known.wait_for(answered))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// One dnsmasq per network on this node.
struct Dhcp {
    root: PathBuf,
    /// VNI -> the running server's pid and the hosts it was last given.
    servers: BTreeMap<u32, (u32, String)>,
    /// Where the servers this agent started report their end.
    exits: tokio::sync::mpsc::UnboundedSender<DhcpExit>,
    /// VNI -> how its server last ended, so a server that keeps failing the same way is
    /// reported once.
    last_exit: BTreeMap<u32, String>,
}

/// A dnsmasq this agent started has ended.
struct DhcpExit {
    vni: u32,
    pid: u32,
    status: String,
}

/// How long a just-started dnsmasq may take to be ready for SIGHUP.
const DNSMASQ_READY: Duration = Duration::from_secs(5);

fn alive_dnsmasq(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "dnsmasq")
}

/// Whether the process catches `sig` (its `SigCgt` mask in /proc): until dnsmasq has set
/// its handlers, a SIGHUP ends it instead of making it read its files again.
fn catches(pid: u32, sig: libc::c_int) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| sig >= 1 && mask & (1u64 << (sig - 1)) != 0)
}

/// The last line of what a network's dnsmasq printed (its errors; routine DHCP is quiet).
fn last_words(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log"))
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid we read from our own pid file and checked is dnsmasq.
        unsafe { libc::kill(pid, sig) };
    }
}

impl Dhcp {
    fn dir(&self, vni: u32) -> PathBuf {
        self.root.join(vni.to_string())
    }

    /// A server this agent started has ended: true when it is one the network still
    /// wants (not one stopped or replaced here), which the next [`Dhcp::sync`] starts again.
    fn ended(&mut self, exit: DhcpExit) -> bool {
        if self.servers.get(&exit.vni).map(|s| s.0) != Some(exit.pid) {
            return false;
        }
        self.servers.remove(&exit.vni);
        let said = last_words(&self.dir(exit.vni));
        let how = format!("{}: {said}", exit.status);
        if self.last_exit.get(&exit.vni) != Some(&how) {
            tracing::warn!(vni = exit.vni, pid = exit.pid, status = %exit.status, said = %said, "DHCP server of the network ended; starting it again");
            self.last_exit.insert(exit.vni, how);
        }
        true
    }

    /// Makes the set of servers and their leases and names match `networks` (those with
    /// DHCP or DNS on); a server that ended is started again.
    async fn sync(&mut self, networks: &[NodeOverlayNetwork]) {
        let wanted: BTreeMap<u32, &NodeOverlayNetwork> = networks
            .iter()
            .filter(|n| n.dhcp || n.dns)
            .map(|n| (n.vni, n))
            .collect();
        // Servers of an earlier agent run are adopted through their pid files.
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let Some(vni) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if self.servers.contains_key(&vni) {
                    continue;
                }
                let pid = std::fs::read_to_string(e.path().join("pid"))
                    .ok()
                    .and_then(|p| p.trim().parse::<u32>().ok())
                    .filter(|p| alive_dnsmasq(*p));
                if let Some(pid) = pid {
                    self.servers.insert(vni, (pid, String::new()));
                }
            }
        }
        let gone: Vec<u32> = self
            .servers
            .keys()
            .filter(|v| !wanted.contains_key(v))
            .copied()
            .collect();
        for vni in gone {
            if let Some((pid, _)) = self.servers.remove(&vni)
                && alive_dnsmasq(pid)
            {
                signal(pid, libc::SIGTERM);
            }
            let _ = std::fs::remove_dir_all(self.dir(vni));
            self.last_exit.remove(&vni);
            tracing::info!(vni, "DHCP server of the network stopped");
        }
        let mut known = KnownLeases::new();
        for n in networks.iter().filter(|n| !n.dhcp) {
            known.insert(n.vni, None);
        }
        for (vni, net) in wanted {
            match self.ensure(net).await {
                Ok(()) if net.dhcp => {
                    let macs = net.local.iter().map(|e| e.mac.to_ascii_lowercase());
                    known.insert(vni, Some(macs.collect()));
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(vni, network = %net.name, error = %e, "DHCP server of the network");
                }
            }
        }
        KNOWN_LEASES.send_replace(known);
    }

    async fn ensure(&mut self, net: &NodeOverlayNetwork) -> Result<(), String> {
        let subnet: Ipv4Cidr = net.subnet.parse().map_err(|e| format!("{e}"))?;
        let dir = self.dir(net.vni);
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let hosts = dhcp_hosts(net);
        let names = dns_names(net);
        let both = format!("{hosts}\0{names}");
        if let Some((pid, written)) = self.servers.get_mut(&net.vni)
            && alive_dnsmasq(*pid)
        {
            if *written == both {
                return Ok(());
            }
            write_private(&dir.join("hosts"), &hosts)?;
            write_private(&dir.join("names"), &names)?;
            // dnsmasq reads its hosts and names files again on SIGHUP, once it has set its
            // handlers (a few milliseconds after it starts; two VMs created together change
            // the view within them). One that is not ready by then is started afresh.
            let pid = *pid;
            let deadline = tokio::time::Instant::now() + DNSMASQ_READY;
            while !catches(pid, libc::SIGHUP) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if catches(pid, libc::SIGHUP) {
                signal(pid, libc::SIGHUP);
                *written = both;
                return Ok(());
            }
            tracing::warn!(vni = net.vni, network = %net.name, pid, "DHCP server of the network not ready for new leases; starting it again");
            self.servers.remove(&net.vni);
            signal(pid, libc::SIGKILL);
            let deadline = tokio::time::Instant::now() + DNSMASQ_READY;
            while alive_dnsmasq(pid) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        write_private(&dir.join("hosts"), &hosts)?;
        write_private(&dir.join("names"), &names)?;
        // What it prints is its errors (routine DHCP is quiet): kept for the operator and
        // quoted when it ends.
        let log = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(dir.join("log"))
                .map_err(|e| format!("{}: {e}", dir.join("log").display()))?
        };
        let mut command = std::process::Command::new("dnsmasq");
        command
            .args(dnsmasq_args(net, subnet, &dir))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log);
        // It outlives the agent: none of the agent's descriptors may go with it.
        novacron_qemu::process::inherit_only_stdio(&mut command, &[]);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start dnsmasq (install dnsmasq-base): {e}"))?;
        let pid = child.id();
        // It outlives the agent on purpose (a restarted agent adopts it through its pid
        // file), like QEMU; reap it when it ends so it leaves no zombie while we run, and
        // tell the overlay loop, which starts it again if the network still wants it.
        let exits = self.exits.clone();
        let vni = net.vni;
        std::thread::spawn(move || {
            let mut child = child;
            let status = match child.wait() {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            let _ = exits.send(DhcpExit { vni, pid, status });
        });
        tracing::info!(vni = net.vni, network = %net.name, pid, "DHCP server of the network started");
        self.servers.insert(net.vni, (pid, both));
        Ok(())
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Makes the node's data plane match `overlay` once.
/// This node's end of the tunnel between sites: its key and port, and the tunnel once a
/// peer of another site needed it (it then runs until the agent stops).
pub struct Tunnel {
    key: Arc<TunnelKey>,
    port: u16,
    running: Option<Arc<SiteTunnel>>,
}

impl Tunnel {
    pub fn new(key: Arc<TunnelKey>, port: u16) -> Self {
        Self {
            key,
            port,
            running: None,
        }
    }

    /// Makes `peers` the tunnel's peers, starting it when a first one comes. Ok(true) when
    /// peers of other sites may be programmed (their routes into the tunnel are in place).
    async fn sync(&mut self, peers: Vec<TunnelPeer>) -> Result<bool, String> {
        let tunnel = match &self.running {
            Some(t) => t.clone(),
            None if peers.is_empty() => return Ok(true),
            None => {
                let (key, port) = (self.key.clone(), self.port);
                let started = tokio::task::spawn_blocking(move || {
                    SiteTunnel::start(&key, port, DEFAULT_VXLAN_PORT)
                })
                .await
                .map_err(|e| format!("the tunnel start task failed: {e}"))?
                .map_err(|e| e.to_string())?;
                tracing::info!(port, peers = peers.len(), "tunnel between sites started");
                self.running.insert(Arc::new(started)).clone()
            }
        };
        tokio::task::spawn_blocking(move || tunnel.set_peers(&peers))
            .await
            .map_err(|e| format!("the tunnel peer task failed: {e}"))?
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Stops the threads off the runtime (the kernel objects stay: it fails closed).
    async fn stop(&mut self) {
        if let Some(t) = self.running.take() {
            let _ = tokio::task::spawn_blocking(move || drop(t)).await;
        }
    }
}

async fn apply(
    reconciler: &novacron_net::Reconciler,
    dhcp: &mut Dhcp,
    rules: &mut FirewallApplier,
    gateway_rules: &mut GatewayApplier,
    tunnel: Option<&mut Tunnel>,
    vtep: Ipv4Addr,
    overlay: &NodeOverlay,
) -> Result<(), String> {
    let mut failures = vec![];
    // The tunnel before the FDB: a peer of another site is programmed only once what we
    // send it is routed into the tunnel.
    let peers = tunnel_peers(vtep, overlay);
    let tunnel_ready = match tunnel {
        Some(t) => t.sync(peers).await.unwrap_or_else(|e| {
            failures.push(format!("tunnel between sites: {e}"));
            false
        }),
        None if peers.is_empty() => true,
        None => {
            failures.push(
                "peers of other sites need the tunnel, and this node has no tunnel key".into(),
            );
            false
        }
    };
    let unreachable: std::collections::BTreeSet<&str> = overlay
        .networks
        .iter()
        .flat_map(|n| &n.peers)
        .filter(|p| peer_path(overlay.site.as_deref(), p) == PeerPath::Unreachable)
        .map(|p| p.node.as_str())
        .collect();
    if !unreachable.is_empty() {
        // Once per change of the view (and per resync), not per packet.
        tracing::warn!(
            nodes = ?unreachable,
            "nodes of another site without a usable tunnel key are not reached: upgrade or restart their agents"
        );
    }
    let desired = desired_node(vtep, overlay, tunnel_ready);
    let report = reconciler
        .reconcile(&desired)
        .await
        .map_err(|e| e.to_string())?;
    failures.extend(report.failures.iter().map(|f| f.to_string()));
    let gateways = gateways(overlay);
    for g in &gateways {
        // The MAC first: a VM's ARP entry for the gateway stays valid on every node.
        if let Err(e) = reconciler
            .ensure_bridge_mac(g.vni, gateway_mac(g.vni))
            .await
        {
            failures.push(e.to_string());
        }
        if let Err(e) = reconciler
            .ensure_bridge_address(g.vni, g.address, g.subnet.1)
            .await
        {
            failures.push(e.to_string());
        }
    }
    if let Err(e) = gateway_rules.apply(&gateways) {
        failures.push(e.to_string());
    }
    dhcp.sync(&overlay.networks).await;
    // After the bridges: the rules name no device, only the NICs' MACs.
    // Logged by the applier when it changes the kernel.
    if let Err(e) = rules.apply(&firewall(overlay)) {
        failures.push(e.to_string());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Follows the control plane's overlay view for this node until `stop`.
pub async fn run(
    client: Client,
    vtep: Ipv4Addr,
    data_dir: PathBuf,
    tunnel: Option<(Arc<TunnelKey>, u16)>,
    stop: watch::Receiver<bool>,
) {
    let mut tunnel = tunnel.map(|(key, port)| Tunnel::new(key, port));
    follow(client, vtep, data_dir, tunnel.as_mut(), stop).await;
    if let Some(t) = tunnel.as_mut() {
        t.stop().await;
    }
}

async fn follow(
    client: Client,
    vtep: Ipv4Addr,
    data_dir: PathBuf,
    mut tunnel: Option<&mut Tunnel>,
    mut stop: watch::Receiver<bool>,
) {
    let reconciler = match novacron_net::Reconciler::connect() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "overlay networks disabled: no netlink socket");
            return;
        }
    };
    let (exits, mut exited) = tokio::sync::mpsc::unbounded_channel();
    let mut dhcp = Dhcp {
        root: data_dir.join("networks"),
        servers: BTreeMap::new(),
        exits,
        last_exit: BTreeMap::new(),
    };
    let mut rules = FirewallApplier::new();
    let mut gateway_rules = GatewayApplier::new();
    let (ports_tx, ports_rx) = watch::channel(NodePorts::default());
    tokio::spawn(keep_ports(ports_rx, stop.clone()));
    let mut after: Option<(i64, i64)> = None;
    let mut last: Option<NodeOverlay> = None;
    let mut last_apply = tokio::time::Instant::now();
    // When a DHCP server that ended is started again: after a pause, so one that cannot
    // start does not spin, and without cancelling the poll under way.
    let mut restart_at: Option<tokio::time::Instant> = None;
    loop {
        let poll = client.agent_overlay(after, POLL_WAIT);
        tokio::pin!(poll);
        let polled = loop {
            tokio::select! {
                r = &mut poll => break r,
                Some(exit) = exited.recv() => {
                    if dhcp.ended(exit) && restart_at.is_none() {
                        restart_at = Some(tokio::time::Instant::now() + RETRY);
                    }
                }
                _ = tokio::time::sleep_until(restart_at.unwrap_or_else(tokio::time::Instant::now)),
                    if restart_at.is_some() =>
                {
                    restart_at = None;
                    if let Some(l) = &last {
                        dhcp.sync(&l.networks).await;
                    }
                }
                _ = stop.changed() => return,
            }
        };
        match polled {
            Ok(overlay) => {
                after = Some((overlay.revision, overlay.groups_revision));
                let ports = node_ports(&overlay);
                ports_tx.send_if_modified(|old| {
                    let changed = *old != ports;
                    if changed {
                        *old = ports;
                    }
                    changed
                });
                let changed = last.as_ref().is_none_or(|l| {
                    l.networks != overlay.networks
                        || l.security_groups != overlay.security_groups
                        || l.site != overlay.site
                });
                if changed || last_apply.elapsed() >= RESYNC {
                    if !changed {
                        // Rewrite the rules in full: repairs tables someone else changed.
                        rules.forget();
                        gateway_rules.forget();
                    }
                    match apply(
                        &reconciler,
                        &mut dhcp,
                        &mut rules,
                        &mut gateway_rules,
                        tunnel.as_deref_mut(),
                        vtep,
                        &overlay,
                    )
                    .await
                    {
                        Ok(()) => {
                            tracing::debug!(
                                networks = overlay.networks.len(),
                                "overlay data plane converged"
                            );
                            last = Some(overlay);
                            last_apply = tokio::time::Instant::now();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "overlay data plane not converged; retrying");
                            last = None;
                            after = None;
                            tokio::time::sleep(RETRY).await;
                        }
                    }
                } else {
                    // Only whether the servers still run (one adopted from an earlier agent
                    // run tells no one when it ends).
                    dhcp.sync(&overlay.networks).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the overlay networks of this node");
                after = None;
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Waits until the bridge of network `vni` exists (the overlay loop makes it once the
/// control plane shows the VM on this node), so a VM's tap can be put on it.
pub async fn wait_for_bridge(vni: u32, timeout: Duration) -> Result<(), String> {
    let bridge = Vni::new(vni).map_err(|e| e.to_string())?.bridge_name();
    let path = PathBuf::from("/sys/class/net").join(&bridge);
    let deadline = tokio::time::Instant::now() + timeout;
    while !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the bridge {bridge} of network VNI {vni} did not appear within {}s: is the agent started with a VTEP address (--vtep-address)?",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use novacron_api_types::overlay::{OverlayEndpoint, OverlayPeer};

    /// The control plane's view with `networks` and nothing else.
    fn view(networks: Vec<NodeOverlayNetwork>) -> NodeOverlay {
        NodeOverlay {
            revision: 1,
            groups_revision: 0,
            networks,
            security_groups: vec![],
            site: None,
        }
    }

    fn net() -> NodeOverlayNetwork {
        NodeOverlayNetwork {
            project: "default".into(),
            name: "app".into(),
            vni: 1000,
            mtu: 1450,
            subnet: "10.10.0.0/24".into(),
            gateway: "10.10.0.1".into(),
            dhcp: true,
            nat: false,
            dns: false,
            local: vec![OverlayEndpoint {
                vm: "a".into(),
                mac: "02:00:00:00:00:0a".into(),
                ips: vec!["10.10.0.2".into()],
                security_groups: vec![],
                bandwidth_bps: None,
            }],
            peers: vec![
                OverlayPeer {
                    node: "n2".into(),
                    vtep: "198.18.0.2".into(),
                    endpoints: vec![OverlayEndpoint {
                        vm: "b".into(),
                        mac: "02:00:00:00:00:0b".into(),
                        ips: vec!["10.10.0.3".into()],
                        security_groups: vec![],
                        bandwidth_bps: None,
                    }],
                    site: None,
                    tunnel: None,
                },
                // Misconfigured: our own VTEP. Never a flood target.
                OverlayPeer {
                    node: "n3".into(),
                    vtep: "198.18.0.1".into(),
                    endpoints: vec![],
                    site: None,
                    tunnel: None,
                },
            ],
        }
    }

    #[test]
    fn limited_nics_are_shaped_and_their_taps_found_by_alias() {
        let mut n = net();
        n.local[0].bandwidth_bps = Some(200_000_000);
        n.local.push(OverlayEndpoint {
            vm: "c".into(),
            mac: "02:00:00:00:00:0c".into(),
            ips: vec!["10.10.0.4".into()],
            security_groups: vec![],
            bandwidth_bps: None,
        });
        // A peer's limit is its own node's business.
        n.peers[0].endpoints[0].bandwidth_bps = Some(1_000_000);
        let overlay = view(vec![n]);
        let ports = node_ports(&overlay);
        // Every local NIC is pinned; only the limited one is shaped.
        let guests: Vec<String> = ports.guests.iter().map(|m| m.to_string()).collect();
        assert_eq!(guests, ["02:00:00:00:00:0a", "02:00:00:00:00:0c"]);
        assert_eq!(ports.shaped.len(), 1);
        assert_eq!(ports.shaped[0].mac.to_string(), "02:00:00:00:00:0a");
        assert_eq!(ports.shaped[0].rate_bps, 200_000_000);
        // The tap QEMU's launch makes names the NIC the way the limit looks for it.
        assert_eq!(
            novacron_qemu::tap::GUEST_ALIAS_PREFIX,
            novacron_net::TAP_ALIAS_PREFIX
        );
    }

    #[test]
    fn the_control_planes_view_becomes_fdb_and_flood_entries() {
        let overlay = view(vec![net()]);
        let d = desired_node(Ipv4Addr::new(198, 18, 0, 1), &overlay, false);
        assert_eq!(d.networks.len(), 1);
        let n = &d.networks[0];
        assert_eq!((n.vni.get(), n.mtu), (1000, 1450));
        assert_eq!(n.peers.len(), 1);
        assert_eq!(n.peers[0].vtep, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(
            n.peers[0].macs,
            ["02:00:00:00:00:0b"
                .parse::<MacAddr>()
                .unwrap_or(MacAddr::ZERO)]
        );
        let b: MacAddr = "02:00:00:00:00:0b".parse().unwrap_or(MacAddr::ZERO);
        assert_eq!(n.peers[0].addresses, [(Ipv4Addr::new(10, 10, 0, 3), b)]);
        assert_eq!(d.adopt_port_prefix.as_deref(), Some(TAP_PREFIX));
        assert!(tunnel_peers(Ipv4Addr::new(198, 18, 0, 1), &overlay).is_empty());

        // An address claimed twice (a view caught mid-change) is answered for its first
        // MAC only, and one that is not unicast not at all: the state stays valid.
        let mut odd = net();
        odd.peers[1] = OverlayPeer {
            node: "n4".into(),
            vtep: "198.18.0.4".into(),
            endpoints: vec![OverlayEndpoint {
                vm: "c".into(),
                mac: "02:00:00:00:00:0c".into(),
                ips: vec![
                    "10.10.0.3".into(),
                    "255.255.255.255".into(),
                    "10.10.0.4".into(),
                ],
                security_groups: vec![],
                bandwidth_bps: None,
            }],
            site: None,
            tunnel: None,
        };
        let d = desired_node(Ipv4Addr::new(198, 18, 0, 1), &view(vec![odd]), false);
        let c: MacAddr = "02:00:00:00:00:0c".parse().unwrap_or(MacAddr::ZERO);
        assert_eq!(
            d.networks[0].peers[1].addresses,
            [(Ipv4Addr::new(10, 10, 0, 4), c)]
        );
    }

    #[test]
    fn peers_of_other_sites_go_through_the_tunnel_or_not_at_all() {
        let key = TunnelKey::generate()
            .unwrap_or_else(|e| panic!("{e}"))
            .public()
            .to_string();
        let mut n = net();
        n.peers[0].site = Some("east".into());
        n.peers[0].tunnel = Some(novacron_api_types::overlay::TunnelEndpoint {
            public_key: key.clone(),
            port: 51999,
        });
        // Another site without a tunnel end (an old agent): never reached.
        n.peers[1] = OverlayPeer {
            node: "n4".into(),
            vtep: "198.18.0.4".into(),
            endpoints: vec![],
            site: Some("west".into()),
            tunnel: None,
        };
        let overlay = view(vec![n]);
        let local = Ipv4Addr::new(198, 18, 0, 1);
        let peers = tunnel_peers(local, &overlay);
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].vtep, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(peers[0].endpoint.to_string(), "198.18.0.2:51999");
        assert_eq!(peers[0].key.to_string(), key);
        // Until the tunnel is up, no FDB entry sends there in the clear; n4 never.
        let vteps = |ready| -> Vec<Ipv4Addr> {
            desired_node(local, &overlay, ready).networks[0]
                .peers
                .iter()
                .map(|p| p.vtep)
                .collect()
        };
        assert!(vteps(false).is_empty());
        assert_eq!(vteps(true), [Ipv4Addr::new(198, 18, 0, 2)]);
        // Seen from a node of site east, the same peer is direct.
        let east = NodeOverlay {
            site: Some("east".into()),
            ..overlay.clone()
        };
        assert!(tunnel_peers(local, &east).is_empty());
        assert_eq!(desired_node(local, &east, false).networks[0].peers.len(), 1);
        // A garbled key makes the peer unreachable, not plain.
        let mut bad = overlay.networks[0].peers[0].clone();
        if let Some(t) = bad.tunnel.as_mut() {
            t.public_key = "garbage".into();
        }
        assert_eq!(peer_path(None, &bad), PeerPath::Unreachable);
    }

    #[tokio::test]
    async fn a_start_waits_until_the_networks_dhcp_server_knows_the_mac() {
        // VNIs no other test publishes.
        let (vni, plain) = (4_000_001, 4_000_002);
        let mac = "02:00:00:00:00:AA";
        assert!(!wait_for_lease(vni, mac, Duration::from_millis(50)).await);
        let waiter = tokio::spawn(wait_for_lease(vni, mac, Duration::from_secs(10)));
        KNOWN_LEASES.send_modify(|k| {
            k.insert(vni, Some(["02:00:00:00:00:bb".to_string()].into()));
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "another MAC does not count");
        KNOWN_LEASES.send_modify(|k| {
            k.insert(vni, Some(["02:00:00:00:00:aa".to_string()].into()));
        });
        assert!(waiter.await.expect("the waiter"));
        // A network without DHCP has nothing to wait for.
        KNOWN_LEASES.send_modify(|k| {
            k.insert(plain, None);
        });
        assert!(wait_for_lease(plain, mac, Duration::from_millis(50)).await);
    }

    #[test]
    fn a_signal_is_caught_only_once_the_process_set_its_handler() {
        let mut plain = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let mut trapping = std::process::Command::new("sh")
            .args(["-c", "trap 'exit 7' HUP; while :; do sleep 0.05; done"])
            .spawn()
            .expect("sh");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !catches(trapping.id(), libc::SIGHUP) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(catches(trapping.id(), libc::SIGHUP));
        assert!(!catches(trapping.id(), libc::SIGUSR2));
        assert!(!catches(plain.id(), libc::SIGHUP));
        // What the mask says is what the signal does: the handler runs, the plain process
        // dies of it.
        signal(trapping.id(), libc::SIGHUP);
        signal(plain.id(), libc::SIGHUP);
        assert_eq!(trapping.wait().expect("wait").code(), Some(7));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(plain.wait().expect("wait").signal(), Some(libc::SIGHUP));
        assert!(!catches(u32::MAX, libc::SIGHUP));
    }

    #[test]
    fn dnsmasq_serves_only_local_static_leases_and_no_router() {
        let n = net();
        assert_eq!(dhcp_hosts(&n), "02:00:00:00:00:0a,10.10.0.2,a\n");
        let args = dnsmasq_args(
            &n,
            "10.10.0.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
            Path::new("/d"),
        );
        assert!(args.contains(&"--interface=ncbr1000".to_string()));
        assert!(args.contains(&"--dhcp-range=10.10.0.0,static,255.255.255.0,12h".to_string()));
        assert!(args.contains(&"--dhcp-option=option:router".to_string()));
        // A NAT network's VMs route through the gateway, which every node holds.
        let nat = NodeOverlayNetwork { nat: true, ..n };
        let args = dnsmasq_args(
            &nat,
            "10.10.0.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
            Path::new("/d"),
        );
        assert!(args.contains(&"--dhcp-option=option:router,10.10.0.1".to_string()));
        let overlay = view(vec![nat]);
        let gws = gateways(&overlay);
        assert_eq!(gws.len(), 1);
        assert!(gws[0].nat);
        assert_eq!(gws[0].subnet, (Ipv4Addr::new(10, 10, 0, 0), 24));
        assert_eq!(gws[0].address, Ipv4Addr::new(10, 10, 0, 1));
        assert!(args.contains(&"--port=0".to_string()), "no DNS: {args:?}");
        // DNS: names of the VMs on every node, served on port 53, named in the leases.
        let dns = NodeOverlayNetwork { dns: true, ..net() };
        assert_eq!(
            dns_names(&dns),
            "10.10.0.2 a.app\n10.10.0.3 b.app\n",
            "local and remote VMs"
        );
        let args = dnsmasq_args(
            &dns,
            "10.10.0.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
            Path::new("/d"),
        );
        for a in [
            "--port=53",
            "--no-resolv",
            "--addn-hosts=/d/names",
            "--local=/app/",
            "--dhcp-option=option:dns-server,10.10.0.1",
        ] {
            assert!(args.contains(&a.to_string()), "{a}: {args:?}");
        }
        assert!(!args.contains(&"--port=0".to_string()));
        assert!(args.contains(&"--dhcp-ignore=tag:!known".to_string()));
        // With NAT as well, other names go to the node's resolvers.
        let both = NodeOverlayNetwork {
            dns: true,
            nat: true,
            ..net()
        };
        let args = dnsmasq_args(
            &both,
            "10.10.0.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
            Path::new("/d"),
        );
        assert!(!args.contains(&"--no-resolv".to_string()), "{args:?}");
        for a in [
            "--port=53",
            "--local=/app/",
            "--domain-needed",
            "--bogus-priv",
        ] {
            assert!(args.contains(&a.to_string()), "{a}: {args:?}");
        }
    }

    #[test]
    fn security_groups_become_guarded_ports_and_member_sets() {
        use novacron_api_types::security::{NodeSecurityGroup, SecurityRuleRequest};
        let rule = |direction, traffic: &str, cidr: Option<&str>, group: Option<&str>| {
            SecurityRuleRequest {
                direction,
                traffic: traffic.into(),
                cidr: cidr.map(Into::into),
                group: group.map(Into::into),
            }
            .check(1)
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let mut n = net();
        n.local[0].security_groups = vec!["web".into(), "gone".into()];
        let overlay = NodeOverlay {
            security_groups: vec![
                NodeSecurityGroup {
                    project: "default".into(),
                    name: "web".into(),
                    rules: vec![
                        rule(Direction::In, "tcp/80", None, Some("lb")),
                        rule(Direction::In, "icmp", Some("10.10.0.0/24"), None),
                    ],
                    members: vec![],
                },
                NodeSecurityGroup {
                    project: "default".into(),
                    name: "lb".into(),
                    rules: vec![],
                    members: vec!["10.10.0.3".into(), "10.10.0.4".into()],
                },
            ],
            ..view(vec![n.clone()])
        };
        let fw = firewall(&overlay);
        assert_eq!(fw.ports.len(), 1);
        let port = &fw.ports[0];
        assert_eq!(port.mac.to_string(), "02:00:00:00:00:0a");
        assert_eq!(port.ips, [Ipv4Addr::new(10, 10, 0, 2)]);
        // No out rule in any of its groups: everything may leave.
        assert_eq!(port.egress, None);
        let lb = group_set_name("default", "lb");
        assert_eq!(
            port.ingress,
            [
                FwRule {
                    protocol: FwProtocol::Tcp,
                    ports: Some((80, 80)),
                    peer: FwPeer::Set(lb.clone()),
                },
                FwRule {
                    protocol: FwProtocol::Icmp,
                    ports: None,
                    peer: FwPeer::Cidr(Ipv4Addr::new(10, 10, 0, 0), 24),
                },
            ]
        );
        assert_eq!(
            fw.sets.get(&lb).map(Vec::as_slice),
            Some(&[Ipv4Addr::new(10, 10, 0, 3), Ipv4Addr::new(10, 10, 0, 4)][..])
        );
        assert!(fw.validate().is_ok());
        // Set names are stable, short, and differ per project.
        assert_eq!(lb, group_set_name("default", "lb"));
        assert_ne!(lb, group_set_name("other", "lb"));
        assert_eq!(lb.len(), 17);
        // A VM without groups is not filtered at all.
        let mut plain = n;
        plain.local[0].security_groups.clear();
        let overlay = NodeOverlay {
            networks: vec![plain],
            ..overlay
        };
        assert_eq!(firewall(&overlay), Firewall::default());
    }
}
