//! Security groups on a node: a [`Firewall`] (the guarded VM NICs, their rules,
//! and named address sets) rendered to one nftables table, `inet novacron`, and
//! applied atomically by [`FirewallApplier`].
//!
//! Why an `inet` table: the kernel has no `nf_conntrack_bridge`, so a `bridge`
//! table cannot be stateful. Bridged IPv4/IPv6 frames reach the `inet` forward
//! hook through br_netfilter (the per-namespace sysctls
//! `net.bridge.bridge-nf-call-iptables` and `-ip6tables`, which the applier
//! turns on), with their Ethernet header intact, so a NIC is recognised by its
//! MAC address. ARP never reaches an `inet` hook and needs no rule.
//!
//! Rules of the ruleset:
//! - `forward` (filter, priority 0, policy accept): the replies of tracked
//!   connections (conntrack's reply direction) and related traffic are accepted
//!   first (so a NIC's own connections always get their answers, whatever its
//!   `in` rules); then the sender's chain `out_<i>` (by source MAC), then the
//!   receiver's `in_<i>` (by destination MAC). What a connection's opener sends
//!   goes through the chains on every packet, not only the first: a rule or a
//!   group member removed stops the connections it let in at their next packet. `out_<i>` never accepts, it only drops or returns, so a
//!   packet between two guarded NICs passes both. Unguarded MACs (the VXLAN
//!   device's remote VMs, NICs of VMs without groups) are not filtered.
//! - `in_<i>`: IPv6 only for neighbour discovery (solicit, advert, router
//!   solicit, router advert); IPv4 for what an ingress rule accepts (the peer
//!   is the source); everything else is counted and dropped.
//! - `out_<i>`: anti-spoofing first: DHCP client traffic from 0.0.0.0 (udp
//!   68 -> 67) returns, any other IPv4 source but the NIC's own addresses is
//!   dropped (all IPv4 when it has none). With `egress: None` the rest is
//!   allowed. With `Some(rules)`: DHCP client traffic (lease renewals from its
//!   own address), IPv6 neighbour and router solicitations and neighbour
//!   adverts, and what a rule matches (the peer is the destination) return;
//!   the rest is dropped.
//! - Ports are destination ports in both directions (the NIC's own port for
//!   ingress, the remote one for egress).
//! - Set `NAME` is the kernel set `sg_NAME` (`ipv4_addr`, interval): the prefix
//!   keeps a name like `tcp` or `counter` from being read as an nft keyword.
//!
//! Known gap: broadcast and multicast frames carry no NIC's MAC as destination
//! and skip every `in_<i>`. (A guest sending with a MAC other than its own would
//! skip its `out_<i>`; the agent pins each tap to its NIC's MAC, see
//! [`crate::ports`].)
//!
//! [`render`] and [`render_set_update`] are pure and unit-tested; the applier
//! runs `nft -f -`, which applies a whole script as one transaction, so a
//! failed update changes nothing and there is never a moment without rules.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{InvalidState, NetError};
use crate::model::MacAddr;

/// The nftables table NovaCron owns (family `inet`); nothing else in the
/// ruleset is touched.
pub const TABLE: &str = "novacron";
/// Longest set name accepted (before the `sg_` prefix).
pub const MAX_SET_NAME_LEN: usize = 32;
/// How long one `nft` run may take before it is killed.
pub const NFT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefix of a set's name in the kernel.
const SET_PREFIX: &str = "sg_";
/// The sysctls that send bridged IPv4 and IPv6 through the `inet` hooks.
const BRIDGE_NF_SYSCTLS: [&str; 2] = [
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
];
/// Creates our table if missing, then deletes it: works whether or not it exists.
const REMOVE_SCRIPT: &str = "table inet novacron {}\ndelete table inet novacron\n";
/// ICMPv6 a NIC always receives.
const ND_IN: &str = "nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert";
/// ICMPv6 a NIC with egress rules may still send (not router adverts).
const ND_OUT: &str = "nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit";
/// Most stderr kept in an error.
const MAX_STDERR: usize = 4000;

/// A node's security-group state: the NICs that are filtered and the address
/// sets their rules name. The default (no ports, no sets) means no table at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Firewall {
    pub ports: Vec<GuardedPort>,
    /// Named address sets (a security group's members), referenced by FwPeer::Set.
    pub sets: BTreeMap<String, Vec<Ipv4Addr>>,
}

/// A VM NIC (or a test endpoint) that is filtered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedPort {
    pub mac: MacAddr,
    /// Its own addresses: anything else it sends as an IPv4 source is dropped (anti-spoofing),
    /// except DHCP client traffic from 0.0.0.0 (udp sport 68 dport 67).
    pub ips: Vec<Ipv4Addr>,
    /// In: default deny; each rule accepts.
    pub ingress: Vec<FwRule>,
    /// Out: None = everything allowed; Some(rules) = only what the rules accept.
    pub egress: Option<Vec<FwRule>>,
}

/// One allow rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwRule {
    pub protocol: FwProtocol,
    /// Inclusive destination port range; only with [`FwProtocol::Tcp`] or [`FwProtocol::Udp`].
    pub ports: Option<(u16, u16)>,
    pub peer: FwPeer,
}

/// The IPv4 protocol a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FwProtocol {
    Any,
    Tcp,
    Udp,
    Icmp,
}

/// The remote end of a rule: the source for ingress, the destination for egress.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FwPeer {
    /// A network: address and prefix length (host bits zero; `/0` is everyone).
    Cidr(Ipv4Addr, u8),
    /// A key of [`Firewall::sets`].
    Set(String),
}

/// Which list of a [`GuardedPort`] a rule is in (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FwDirection {
    Ingress,
    Egress,
}

impl fmt::Display for FwDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        })
    }
}

impl fmt::Display for FwProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Any => "any",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
        })
    }
}

impl Firewall {
    /// True when there is nothing to filter and no set: our table should not exist.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.sets.is_empty()
    }

    /// Checks everything nft would refuse (or silently misread), so a bad state
    /// changes nothing.
    pub fn validate(&self) -> Result<(), InvalidState> {
        for name in self.sets.keys() {
            if !is_set_name(name) {
                return Err(InvalidState::BadSetName { name: name.clone() });
            }
        }
        let mut macs = BTreeSet::new();
        for port in &self.ports {
            let mac = port.mac;
            if !mac.is_unicast() {
                return Err(InvalidState::GuardedMacNotUnicast { mac });
            }
            if !macs.insert(mac) {
                return Err(InvalidState::DuplicateGuardedMac { mac });
            }
            let lists = [
                (FwDirection::Ingress, Some(&port.ingress)),
                (FwDirection::Egress, port.egress.as_ref()),
            ];
            for (direction, rules) in lists {
                for (rule, r) in rules.into_iter().flatten().enumerate() {
                    self.check_rule(r, mac, direction, rule)?;
                }
            }
        }
        Ok(())
    }

    fn check_rule(
        &self,
        r: &FwRule,
        mac: MacAddr,
        direction: FwDirection,
        rule: usize,
    ) -> Result<(), InvalidState> {
        if let Some((lo, hi)) = r.ports {
            if !matches!(r.protocol, FwProtocol::Tcp | FwProtocol::Udp) {
                return Err(InvalidState::PortsWithoutTcpUdp {
                    mac,
                    direction,
                    rule,
                    protocol: r.protocol,
                });
            }
            if lo == 0 || lo > hi {
                return Err(InvalidState::BadPortRange {
                    mac,
                    direction,
                    rule,
                    lo,
                    hi,
                });
            }
        }
        match &r.peer {
            &FwPeer::Cidr(addr, prefix) => {
                if prefix > 32 {
                    return Err(InvalidState::PrefixTooLong {
                        mac,
                        direction,
                        rule,
                        addr,
                        prefix,
                    });
                }
                let network = mask(addr, prefix);
                if network != addr {
                    return Err(InvalidState::HostBitsSet {
                        mac,
                        direction,
                        rule,
                        addr,
                        prefix,
                        network,
                    });
                }
            }
            FwPeer::Set(set) => {
                if !self.sets.contains_key(set) {
                    return Err(InvalidState::UnknownSet {
                        mac,
                        direction,
                        rule,
                        set: set.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// `[a-z][a-z0-9_]{0,31}`.
fn is_set_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && name.len() <= MAX_SET_NAME_LEN
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `addr` with the bits after `prefix` cleared (`prefix` <= 32).
fn mask(addr: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(addr);
    let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(bits & m)
}

/// A set's name in the kernel.
fn kernel_set(name: &str) -> String {
    format!("{SET_PREFIX}{name}")
}

/// Sorted, deduplicated, as nft writes an element list: `{ a, b }`.
fn element_list(elements: &[Ipv4Addr]) -> Option<String> {
    let unique: BTreeSet<&Ipv4Addr> = elements.iter().collect();
    if unique.is_empty() {
        return None;
    }
    let items: Vec<String> = unique.iter().map(|a| a.to_string()).collect();
    Some(format!("{{ {} }}", items.join(", ")))
}

/// The address match of a peer, None for `/0` (everyone).
fn peer_match(peer: &FwPeer, field: &str) -> Option<String> {
    match peer {
        FwPeer::Cidr(_, 0) => None,
        FwPeer::Cidr(addr, 32) => Some(format!("ip {field} {addr}")),
        FwPeer::Cidr(addr, prefix) => Some(format!("ip {field} {addr}/{prefix}")),
        FwPeer::Set(name) => Some(format!("ip {field} @{}", kernel_set(name))),
    }
}

/// One rule as an nft statement line ending in `verdict`.
fn rule_line(rule: &FwRule, direction: FwDirection, verdict: &str) -> String {
    let field = match direction {
        FwDirection::Ingress => "saddr",
        FwDirection::Egress => "daddr",
    };
    let mut parts = vec!["meta nfproto ipv4".to_string()];
    parts.extend(peer_match(&rule.peer, field));
    match (rule.protocol, rule.ports) {
        (FwProtocol::Any, _) => {}
        (p @ (FwProtocol::Tcp | FwProtocol::Udp), Some((lo, hi))) => {
            if lo == hi {
                parts.push(format!("{p} dport {lo}"));
            } else {
                parts.push(format!("{p} dport {lo}-{hi}"));
            }
        }
        (p, _) => parts.push(format!("ip protocol {p}")),
    }
    parts.push(verdict.to_string());
    parts.join(" ")
}

/// Lines of a script with tab indentation.
#[derive(Default)]
struct Script(String);

impl Script {
    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.0.push('\t');
        }
        self.0.push_str(text);
        self.0.push('\n');
    }
}

/// The whole nft script that replaces our table in one transaction: create it
/// if missing, delete it, build it again. For an empty firewall, only the
/// deletion (nothing stale stays). Expects a validated firewall; the same input
/// always gives the same text.
pub fn render(fw: &Firewall) -> String {
    if fw.is_empty() {
        return REMOVE_SCRIPT.to_string();
    }
    let mut s = Script(REMOVE_SCRIPT.to_string());
    s.line(0, "table inet novacron {");
    for (name, elements) in &fw.sets {
        s.line(1, &format!("set {} {{", kernel_set(name)));
        s.line(2, "type ipv4_addr");
        s.line(2, "flags interval");
        if let Some(list) = element_list(elements) {
            s.line(2, &format!("elements = {list}"));
        }
        s.line(1, "}");
    }
    for (i, port) in fw.ports.iter().enumerate() {
        s.line(1, &format!("chain in_{i} {{"));
        s.line(
            2,
            &format!("meta nfproto ipv6 icmpv6 type {{ {ND_IN} }} accept"),
        );
        for rule in &port.ingress {
            s.line(2, &rule_line(rule, FwDirection::Ingress, "accept"));
        }
        s.line(2, "counter drop");
        s.line(1, "}");

        s.line(1, &format!("chain out_{i} {{"));
        s.line(
            2,
            "meta nfproto ipv4 ip saddr 0.0.0.0 udp sport 68 udp dport 67 return",
        );
        match element_list(&port.ips) {
            Some(own) => s.line(
                2,
                &format!("meta nfproto ipv4 ip saddr != {own} counter drop"),
            ),
            None => s.line(2, "meta nfproto ipv4 counter drop"),
        }
        if let Some(egress) = &port.egress {
            if !port.ips.is_empty() {
                // Lease renewals from its own address.
                s.line(2, "meta nfproto ipv4 udp sport 68 udp dport 67 return");
            }
            s.line(
                2,
                &format!("meta nfproto ipv6 icmpv6 type {{ {ND_OUT} }} return"),
            );
            for rule in egress {
                s.line(2, &rule_line(rule, FwDirection::Egress, "return"));
            }
            s.line(2, "counter drop");
        }
        s.line(1, "}");
    }
    if !fw.ports.is_empty() {
        let vmap = |prefix: &str| {
            let items: Vec<String> = fw
                .ports
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{} : jump {prefix}_{i}", p.mac))
                .collect();
            items.join(", ")
        };
        s.line(1, "chain forward {");
        s.line(2, "type filter hook forward priority 0; policy accept;");
        // Replies only: what a connection's opener sends meets the rules on every packet,
        // so a rule removed or a member gone stops connections already open too.
        s.line(2, "ct direction reply ct state established accept");
        s.line(2, "ct state related accept");
        s.line(2, &format!("ether saddr vmap {{ {} }}", vmap("out")));
        s.line(2, &format!("ether daddr vmap {{ {} }}", vmap("in")));
        s.line(1, "}");
    }
    s.line(0, "}");
    s.0
}

/// When `next` differs from `previous` only in the members of existing sets
/// (same ports and rules, same set names), the script that empties and refills
/// just the sets whose members changed (`Some("")` when none did). None when
/// anything else changed: then the whole table must be [`render`]ed.
pub fn render_set_update(previous: &Firewall, next: &Firewall) -> Option<String> {
    if previous.ports != next.ports || !previous.sets.keys().eq(next.sets.keys()) {
        return None;
    }
    let mut s = Script::default();
    for (name, before) in &previous.sets {
        let after = next.sets.get(name)?;
        let old: BTreeSet<&Ipv4Addr> = before.iter().collect();
        let new: BTreeSet<&Ipv4Addr> = after.iter().collect();
        if old == new {
            continue;
        }
        let set = kernel_set(name);
        s.line(0, &format!("flush set inet {TABLE} {set}"));
        if let Some(list) = element_list(after) {
            s.line(0, &format!("add element inet {TABLE} {set} {list}"));
        }
    }
    Some(s.0)
}

/// Keeps the kernel's `inet novacron` table equal to the last [`Firewall`]
/// given, with as little work as possible: nothing when it did not change,
/// set members only when only they changed, the whole table otherwise.
///
/// ```no_run
/// # fn demo(fw: novacron_net::Firewall) -> Result<(), novacron_net::NetError> {
/// let mut applier = novacron_net::FirewallApplier::new();
/// if applier.apply(&fw)? {
///     println!("firewall updated");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct FirewallApplier {
    /// What the kernel has, as far as we know: the last firewall applied.
    last: Option<Firewall>,
    /// Namespace file (`/run/netns/NAME`) to work in; None is the caller's.
    netns: Option<PathBuf>,
    last_was_incremental: bool,
}

impl FirewallApplier {
    /// An applier for the caller's network namespace. Its first apply replaces
    /// whatever table a previous run left.
    pub fn new() -> Self {
        Self::default()
    }

    /// An applier for the network namespace at `path` (e.g. `/run/netns/NAME`):
    /// `nft` runs and the br_netfilter sysctls are written from a short-lived
    /// thread that entered it; the caller's namespace is untouched.
    pub fn in_netns(path: &Path) -> Self {
        Self {
            netns: Some(path.to_path_buf()),
            ..Self::default()
        }
    }

    /// True when the last call to [`Self::apply`] changed the kernel by
    /// refilling sets only.
    pub fn last_was_incremental(&self) -> bool {
        self.last_was_incremental
    }

    /// Makes the kernel's table match `fw`. Validates first (an invalid state
    /// changes nothing). Ok(true) when it ran nft, Ok(false) when nothing had
    /// changed since the last successful apply. After a failure the next call
    /// renders the whole table again.
    pub fn apply(&mut self, fw: &Firewall) -> Result<bool, NetError> {
        fw.validate()?;
        self.last_was_incremental = false;
        if self.last.as_ref() == Some(fw) {
            return Ok(false);
        }
        let update = self
            .last
            .as_ref()
            .and_then(|previous| render_set_update(previous, fw));
        if update.as_deref() == Some("") {
            // Only the order or repetition of members changed.
            self.last = Some(fw.clone());
            return Ok(false);
        }
        let incremental = update.is_some();
        let script = update.unwrap_or_else(|| render(fw));
        let needs_bridge_nf = !fw.ports.is_empty();
        let result = self.in_namespace(|| {
            if needs_bridge_nf {
                ensure_bridge_netfilter()?;
            }
            run_nft(&script)
        });
        match result {
            Ok(()) => {
                tracing::info!(
                    ports = fw.ports.len(),
                    sets = fw.sets.len(),
                    incremental,
                    "firewall applied"
                );
                self.last = Some(fw.clone());
                self.last_was_incremental = incremental;
                Ok(true)
            }
            Err(e) => {
                // The kernel may not hold what `last` says (someone removed the
                // table, or nft timed out after committing): start over in full.
                self.last = None;
                Err(e)
            }
        }
    }

    /// Forgets what was applied, so the next [`FirewallApplier::apply`] renders the whole
    /// table again (repairs a table someone else changed or removed).
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// Runs `f` in this applier's namespace.
    fn in_namespace<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, NetError> + Send,
    ) -> Result<T, NetError> {
        match &self.netns {
            None => f(),
            Some(path) => on_thread_in(Some(path), f),
        }
    }
}

/// Runs `f` on a short-lived thread that entered the network namespace at `netns`
/// (stays in the caller's when None): processes it spawns and netlink sockets it
/// opens belong to that namespace, and the caller's thread is untouched.
pub(crate) fn on_thread_in<T: Send>(
    netns: Option<&Path>,
    f: impl FnOnce() -> Result<T, NetError> + Send,
) -> Result<T, NetError> {
    let Some(path) = netns else {
        // A thread all the same: f may run a runtime of its own, which a runtime's thread
        // (the caller's, often) would refuse to.
        return std::thread::scope(|scope| {
            scope
                .spawn(f)
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
    };
    let ns_err = |source| NetError::Namespace {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(ns_err)?;
    // Processes f spawns start in the namespace.
    crate::netns::run_in(&file, f).map_err(ns_err)?
}

/// Deletes our table from the caller's network namespace, if it is there.
/// An applier that still exists should instead be given an empty [`Firewall`],
/// so it knows the table is gone.
pub fn remove_table() -> Result<(), NetError> {
    run_nft(REMOVE_SCRIPT)
}

/// Turns on the br_netfilter sysctls of the current namespace when off.
fn ensure_bridge_netfilter() -> Result<(), NetError> {
    for path in BRIDGE_NF_SYSCTLS {
        match sysctl_on(path) {
            Err(NetError::Sysctl { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(NetError::BrNetfilterMissing { path: path.into() });
            }
            Err(e) => return Err(e),
            Ok(Some(was)) => tracing::info!(
                sysctl = path,
                was,
                "set to 1 so bridged traffic passes the firewall"
            ),
            Ok(None) => {}
        }
    }
    Ok(())
}

/// Writes 1 to the sysctl file `path` of the current namespace unless it holds 1 already;
/// the value it had when it changed it.
pub(crate) fn sysctl_on(path: &str) -> Result<Option<String>, NetError> {
    let err = |source| NetError::Sysctl {
        path: path.into(),
        source,
    };
    let current = std::fs::read_to_string(path).map_err(err)?;
    if current.trim() == "1" {
        return Ok(None);
    }
    std::fs::write(path, "1").map_err(err)?;
    Ok(Some(current.trim().to_string()))
}

/// Where the program `name` (`nft`, `tc`) is: on PATH, else in the sbin directories a
/// service's PATH may lack.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `nft -f -` with `script` on stdin, killed after [`NFT_TIMEOUT`].
pub(crate) fn run_nft(script: &str) -> Result<(), NetError> {
    let program = find_program("nft").ok_or(NetError::NftMissing)?;
    match run_bounded(&program, &["-f", "-"], script, NFT_TIMEOUT) {
        Ok(exited) if exited.status.success() => Ok(()),
        Ok(exited) => Err(NetError::NftFailed {
            status: exited.status.to_string(),
            stderr: exited.stderr,
        }),
        Err(RunFailure::Spawn(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(NetError::NftMissing)
        }
        Err(RunFailure::Spawn(e) | RunFailure::Wait(e)) => Err(NetError::NftRun(e)),
        Err(RunFailure::TimedOut) => Err(NetError::NftTimeout {
            timeout: NFT_TIMEOUT,
        }),
    }
}

/// A helper program (`nft`, `tc`) that exited.
pub(crate) struct Exited {
    pub(crate) status: std::process::ExitStatus,
    /// Trimmed, at most [`MAX_STDERR`] bytes.
    pub(crate) stderr: String,
}

/// Why a helper program has no exit status.
pub(crate) enum RunFailure {
    Spawn(std::io::Error),
    Wait(std::io::Error),
    /// Killed after the timeout.
    TimedOut,
}

/// Runs `program ARGS` with `input` on stdin and stdout discarded, killed after
/// `timeout`.
pub(crate) fn run_bounded(
    program: &Path,
    args: &[&str],
    input: &str,
    timeout: Duration,
) -> Result<Exited, RunFailure> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RunFailure::Spawn)?;
    let stdin = child.stdin.take();
    let stderr = child.stderr.take();
    std::thread::scope(|scope| {
        // Separate threads so neither pipe can fill up and stall the program.
        scope.spawn(move || {
            if let Some(mut stdin) = stdin {
                // A write error means the program exited early: its status says why.
                let _ = stdin.write_all(input.as_bytes());
            }
        });
        let reader = scope.spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_end(&mut buf);
            }
            buf
        });
        let status = wait_bounded(&mut child, timeout);
        let stderr = reader.join().unwrap_or_default();
        let status = status
            .map_err(RunFailure::Wait)?
            .ok_or(RunFailure::TimedOut)?;
        let mut stderr = String::from_utf8_lossy(&stderr).trim().to_string();
        if stderr.len() > MAX_STDERR {
            let mut end = MAX_STDERR;
            while !stderr.is_char_boundary(end) {
                end -= 1;
            }
            stderr.truncate(end);
            stderr.push_str(" ...");
        }
        Ok(Exited { status, stderr })
    })
}

/// Waits for `child` at most `timeout`, then kills it: None when it was killed.
fn wait_bounded(
    child: &mut std::process::Child,
    timeout: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                // Reaped if it dies promptly; a SIGKILLed program does.
                let reap_deadline = Instant::now() + Duration::from_secs(1);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < reap_deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return Ok(None);
            }
            Err(e) => {
                let _ = child.kill();
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
    const MAC_B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, d)
    }

    fn rule(protocol: FwProtocol, ports: Option<(u16, u16)>, peer: FwPeer) -> FwRule {
        FwRule {
            protocol,
            ports,
            peer,
        }
    }

    fn port(mac: MacAddr, ingress: Vec<FwRule>, egress: Option<Vec<FwRule>>) -> GuardedPort {
        GuardedPort {
            mac,
            ips: vec![ip(mac.0[5])],
            ingress,
            egress,
        }
    }

    fn sets(entries: &[(&str, &[Ipv4Addr])]) -> BTreeMap<String, Vec<Ipv4Addr>> {
        entries
            .iter()
            .map(|(n, e)| (n.to_string(), e.to_vec()))
            .collect()
    }

    /// The lines of chain `name` in a rendered script, trimmed.
    fn chain<'a>(script: &'a str, name: &str) -> Vec<&'a str> {
        let header = format!("chain {name} {{");
        script
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != header)
            .skip(1)
            .take_while(|l| *l != "}")
            .collect()
    }

    fn sample() -> Firewall {
        Firewall {
            ports: vec![port(
                MAC_A,
                vec![
                    rule(
                        FwProtocol::Tcp,
                        Some((80, 90)),
                        FwPeer::Cidr(Ipv4Addr::new(10, 0, 0, 0), 8),
                    ),
                    rule(FwProtocol::Udp, Some((53, 53)), FwPeer::Set("lb".into())),
                    rule(
                        FwProtocol::Icmp,
                        None,
                        FwPeer::Cidr(Ipv4Addr::UNSPECIFIED, 0),
                    ),
                    rule(FwProtocol::Any, None, FwPeer::Cidr(ip(7), 32)),
                    rule(FwProtocol::Tcp, None, FwPeer::Set("lb".into())),
                ],
                None,
            )],
            sets: sets(&[("lb", &[ip(3), ip(2), ip(3)]), ("empty", &[])]),
        }
    }

    #[test]
    fn ingress_rules_render_one_accept_each_then_drop() {
        let script = render(&sample());
        assert_eq!(
            chain(&script, "in_0"),
            [
                "meta nfproto ipv6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept",
                "meta nfproto ipv4 ip saddr 10.0.0.0/8 tcp dport 80-90 accept",
                "meta nfproto ipv4 ip saddr @sg_lb udp dport 53 accept",
                "meta nfproto ipv4 ip protocol icmp accept",
                "meta nfproto ipv4 ip saddr 10.0.0.7 accept",
                "meta nfproto ipv4 ip saddr @sg_lb ip protocol tcp accept",
                "counter drop",
            ]
        );
    }

    #[test]
    fn script_replaces_the_table_in_one_go_with_sets_and_forward_chain() {
        let script = render(&sample());
        assert!(
            script.starts_with(
                "table inet novacron {}\ndelete table inet novacron\ntable inet novacron {\n"
            ),
            "{script}"
        );
        assert!(script.ends_with("}\n"));
        // Sorted, deduplicated; an empty set has no element list.
        assert_eq!(
            chain(&script.replace("set sg_lb {", "chain sg_lb {"), "sg_lb"),
            [
                "type ipv4_addr",
                "flags interval",
                "elements = { 10.0.0.2, 10.0.0.3 }"
            ]
        );
        assert_eq!(
            chain(
                &script.replace("set sg_empty {", "chain sg_empty {"),
                "sg_empty"
            ),
            ["type ipv4_addr", "flags interval"]
        );
        assert_eq!(
            chain(&script, "forward"),
            [
                "type filter hook forward priority 0; policy accept;",
                "ct direction reply ct state established accept",
                "ct state related accept",
                "ether saddr vmap { 02:00:00:00:00:0a : jump out_0 }",
                "ether daddr vmap { 02:00:00:00:00:0a : jump in_0 }",
            ]
        );
    }

    #[test]
    fn egress_none_only_stops_spoofing() {
        let script = render(&sample());
        assert_eq!(
            chain(&script, "out_0"),
            [
                "meta nfproto ipv4 ip saddr 0.0.0.0 udp sport 68 udp dport 67 return",
                "meta nfproto ipv4 ip saddr != { 10.0.0.10 } counter drop",
            ]
        );
    }

    #[test]
    fn egress_rules_return_then_drop() {
        let mut fw = sample();
        fw.ports[0].egress = Some(vec![
            rule(
                FwProtocol::Tcp,
                Some((443, 443)),
                FwPeer::Cidr(Ipv4Addr::new(192, 168, 0, 0), 16),
            ),
            rule(FwProtocol::Any, None, FwPeer::Set("lb".into())),
        ]);
        fw.ports[0].ips = vec![ip(11), ip(10)];
        assert_eq!(
            chain(&render(&fw), "out_0"),
            [
                "meta nfproto ipv4 ip saddr 0.0.0.0 udp sport 68 udp dport 67 return",
                "meta nfproto ipv4 ip saddr != { 10.0.0.10, 10.0.0.11 } counter drop",
                "meta nfproto ipv4 udp sport 68 udp dport 67 return",
                "meta nfproto ipv6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } return",
                "meta nfproto ipv4 ip daddr 192.168.0.0/16 tcp dport 443 return",
                "meta nfproto ipv4 ip daddr @sg_lb return",
                "counter drop",
            ]
        );

        // Nothing allowed out: only DHCP and neighbour discovery.
        fw.ports[0].egress = Some(vec![]);
        fw.ports[0].ips = vec![];
        assert_eq!(
            chain(&render(&fw), "out_0"),
            [
                "meta nfproto ipv4 ip saddr 0.0.0.0 udp sport 68 udp dport 67 return",
                "meta nfproto ipv4 counter drop",
                "meta nfproto ipv6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } return",
                "counter drop",
            ]
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let mut fw = sample();
        fw.ports.push(port(MAC_B, vec![], Some(vec![])));
        let first = render(&fw);
        assert_eq!(first, render(&fw.clone()));
        // Member order and repeats do not matter.
        fw.sets.insert("lb".into(), vec![ip(2), ip(3)]);
        assert_eq!(first, render(&fw));
        assert!(first.contains(
            "ether daddr vmap { 02:00:00:00:00:0a : jump in_0, 02:00:00:00:00:0b : jump in_1 }"
        ));
    }

    #[test]
    fn an_empty_firewall_removes_the_table_and_sets_alone_need_no_chain() {
        assert_eq!(render(&Firewall::default()), REMOVE_SCRIPT);
        let only_sets = Firewall {
            ports: vec![],
            sets: sets(&[("lb", &[ip(1)])]),
        };
        let script = render(&only_sets);
        assert!(script.contains("set sg_lb {"), "{script}");
        assert!(!script.contains("chain"), "{script}");
    }

    #[test]
    fn validation_rejects_what_nft_would_misread() {
        let bad_rule = |r: FwRule| {
            let mut fw = sample();
            fw.ports[0].egress = Some(vec![r]);
            let err = fw.validate().err().unwrap_or_else(|| panic!("accepted"));
            (err.to_string(), err)
        };
        assert!(sample().validate().is_ok());

        let (msg, err) = bad_rule(rule(FwProtocol::Tcp, None, FwPeer::Set("web".into())));
        assert_eq!(
            err,
            InvalidState::UnknownSet {
                mac: MAC_A,
                direction: FwDirection::Egress,
                rule: 0,
                set: "web".into()
            }
        );
        assert!(msg.contains("egress[0]") && msg.contains("add it"), "{msg}");
        for ports in [(90, 80), (0, 10)] {
            let (msg, err) = bad_rule(rule(FwProtocol::Udp, Some(ports), FwPeer::Cidr(ip(1), 32)));
            assert!(matches!(err, InvalidState::BadPortRange { .. }), "{msg}");
        }
        let (msg, err) = bad_rule(rule(
            FwProtocol::Icmp,
            Some((1, 2)),
            FwPeer::Cidr(ip(1), 32),
        ));
        assert!(
            matches!(err, InvalidState::PortsWithoutTcpUdp { .. }),
            "{msg}"
        );
        let (msg, err) = bad_rule(rule(FwProtocol::Any, None, FwPeer::Cidr(ip(1), 24)));
        assert!(matches!(err, InvalidState::HostBitsSet { .. }), "{msg}");
        assert!(msg.contains("use 10.0.0.0/24"), "{msg}");
        let (msg, err) = bad_rule(rule(FwProtocol::Any, None, FwPeer::Cidr(ip(0), 33)));
        assert!(matches!(err, InvalidState::PrefixTooLong { .. }), "{msg}");

        // Ingress rules are checked too.
        let mut fw = sample();
        fw.ports[0].ingress[1].peer = FwPeer::Set("nope".into());
        assert!(matches!(
            fw.validate(),
            Err(InvalidState::UnknownSet {
                direction: FwDirection::Ingress,
                rule: 1,
                ..
            })
        ));

        let mut fw = sample();
        fw.ports.push(fw.ports[0].clone());
        assert_eq!(
            fw.validate(),
            Err(InvalidState::DuplicateGuardedMac { mac: MAC_A })
        );

        let mut fw = sample();
        fw.ports[0].mac = MacAddr([0x01, 0, 0x5e, 0, 0, 1]);
        assert!(matches!(
            fw.validate(),
            Err(InvalidState::GuardedMacNotUnicast { .. })
        ));

        for name in ["", "1lb", "Lb", "l-b", &"a".repeat(33)] {
            let mut fw = sample();
            fw.sets.insert(name.to_string(), vec![]);
            assert_eq!(
                fw.validate(),
                Err(InvalidState::BadSetName {
                    name: name.to_string()
                }),
                "{name:?}"
            );
        }
        let mut fw = sample();
        fw.sets.insert(format!("a{}", "_9".repeat(15)), vec![]);
        assert!(fw.validate().is_ok());
    }

    #[test]
    fn set_update_only_for_member_changes() {
        let before = sample();

        let mut after = before.clone();
        after.sets.insert("lb".into(), vec![ip(9), ip(8)]);
        assert_eq!(
            render_set_update(&before, &after).as_deref(),
            Some(
                "flush set inet novacron sg_lb\nadd element inet novacron sg_lb { 10.0.0.8, 10.0.0.9 }\n"
            )
        );

        // Emptied: flushed, nothing added; filled: flushed and added.
        let mut after = before.clone();
        after.sets.insert("lb".into(), vec![]);
        after.sets.insert("empty".into(), vec![ip(1)]);
        assert_eq!(
            render_set_update(&before, &after).as_deref(),
            Some(
                "flush set inet novacron sg_empty\nadd element inet novacron sg_empty { 10.0.0.1 }\nflush set inet novacron sg_lb\n"
            )
        );

        // Same members in another order: nothing to do.
        let mut after = before.clone();
        after.sets.insert("lb".into(), vec![ip(2), ip(3)]);
        assert_eq!(render_set_update(&before, &after).as_deref(), Some(""));

        // Anything else needs the full render.
        let mut after = before.clone();
        after.sets.insert("web".into(), vec![]);
        assert_eq!(render_set_update(&before, &after), None);
        let mut after = before.clone();
        after.sets.remove("empty");
        assert_eq!(render_set_update(&before, &after), None);
        let mut after = before.clone();
        after.ports[0].ingress.pop();
        assert_eq!(render_set_update(&before, &after), None);
        let mut after = before.clone();
        after.ports[0].ips.push(ip(99));
        assert_eq!(render_set_update(&before, &after), None);
        let mut after = before.clone();
        after.ports[0].egress = Some(vec![]);
        assert_eq!(render_set_update(&before, &after), None);
    }

    #[test]
    fn mask_clears_host_bits() {
        assert_eq!(
            mask(Ipv4Addr::new(10, 1, 2, 3), 8),
            Ipv4Addr::new(10, 0, 0, 0)
        );
        assert_eq!(
            mask(Ipv4Addr::new(10, 1, 2, 3), 32),
            Ipv4Addr::new(10, 1, 2, 3)
        );
        assert_eq!(mask(Ipv4Addr::new(10, 1, 2, 3), 0), Ipv4Addr::UNSPECIFIED);
    }
}
