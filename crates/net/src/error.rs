//! Errors of the data plane, each saying what to fix: a desired state that
//! cannot be built ([`InvalidState`], nothing changed), or one kernel operation
//! that failed ([`KernelError`], the rest of the reconcile went on).

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::firewall::{FwDirection, FwProtocol, MAX_SET_NAME_LEN};
use crate::model::{MAX_MTU, MIN_MTU, MacAddr, Vni};
use crate::ports::{MAX_RATE_BPS, MIN_RATE_BPS};

/// A desired state rejected before touching the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidState {
    #[error("VNI {vni} is out of range: use 1..=16777215")]
    VniOutOfRange { vni: u32 },
    #[error("network VNI {vni}: MTU {mtu} is out of range: use {MIN_MTU}..={MAX_MTU}")]
    MtuOutOfRange { vni: Vni, mtu: u32 },
    #[error("network VNI {vni} is listed twice: merge the two entries")]
    DuplicateVni { vni: Vni },
    #[error(
        "network VNI {vni}: port name {port:?} is not a usable interface name (1-15 bytes, no '/', not a NovaCron bridge or VXLAN name)"
    )]
    BadPortName { vni: Vni, port: String },
    #[error(
        "port {port} is listed on networks VNI {first} and VNI {second}: a port belongs to one network"
    )]
    PortOnTwoNetworks {
        port: String,
        first: Vni,
        second: Vni,
    },
    #[error("local VTEP {vtep} is not a unicast address: give the node's underlay address")]
    BadLocalVtep { vtep: Ipv4Addr },
    #[error("VXLAN UDP port 0 is not usable: use 4789 or the cluster's configured port")]
    ZeroVxlanPort,
    #[error("network VNI {vni}: peer VTEP {vtep} is not a unicast address")]
    BadPeerVtep { vni: Vni, vtep: Ipv4Addr },
    #[error("network VNI {vni}: peer VTEP {vtep} is this node's own VTEP: drop it from the peers")]
    PeerIsLocal { vni: Vni, vtep: Ipv4Addr },
    #[error("network VNI {vni}: {mac} is not a unicast MAC address")]
    NotUnicastMac { vni: Vni, mac: MacAddr },
    #[error(
        "network VNI {vni}: MAC {mac} is listed behind both {first} and {second}: keep only the node it runs on"
    )]
    MacBehindTwoVteps {
        vni: Vni,
        mac: MacAddr,
        first: Ipv4Addr,
        second: Ipv4Addr,
    },
    #[error(
        "network VNI {vni}: address {ip} is given for MAC {mac}, which peer {vtep} does not list: list the MAC with its addresses"
    )]
    AddressOfUnknownMac {
        vni: Vni,
        ip: Ipv4Addr,
        mac: MacAddr,
        vtep: Ipv4Addr,
    },
    #[error(
        "network VNI {vni}: address {ip} is given for both {first} and {second}: an address belongs to one NIC"
    )]
    AddressOnTwoMacs {
        vni: Vni,
        ip: Ipv4Addr,
        first: MacAddr,
        second: MacAddr,
    },
    #[error("network VNI {vni}: {ip} is not a unicast address for MAC {mac}")]
    BadNeighbourAddress {
        vni: Vni,
        ip: Ipv4Addr,
        mac: MacAddr,
    },
    #[error("{mac:?} is not a MAC address: use six hex pairs separated by ':'")]
    BadMac { mac: String },
    #[error(
        "firewall set name {name:?} is not usable: use 1-{MAX_SET_NAME_LEN} of a-z, 0-9 and '_', starting with a letter"
    )]
    BadSetName { name: String },
    #[error("firewall port {mac} is not a unicast MAC address: give the NIC's own MAC")]
    GuardedMacNotUnicast { mac: MacAddr },
    #[error("firewall port {mac} is listed twice: merge its rules into one entry")]
    DuplicateGuardedMac { mac: MacAddr },
    #[error(
        "firewall port {mac} {direction}[{rule}]: set {set:?} is not in the firewall's sets: add it (it may be empty) or drop the rule"
    )]
    UnknownSet {
        mac: MacAddr,
        direction: FwDirection,
        rule: usize,
        set: String,
    },
    #[error(
        "firewall port {mac} {direction}[{rule}]: protocol {protocol} has no ports: drop the port range or use tcp or udp"
    )]
    PortsWithoutTcpUdp {
        mac: MacAddr,
        direction: FwDirection,
        rule: usize,
        protocol: FwProtocol,
    },
    #[error(
        "firewall port {mac} {direction}[{rule}]: port range {lo}-{hi} is not usable: use ports in 1..=65535, the low one first"
    )]
    BadPortRange {
        mac: MacAddr,
        direction: FwDirection,
        rule: usize,
        lo: u16,
        hi: u16,
    },
    #[error(
        "firewall port {mac} {direction}[{rule}]: {addr}/{prefix} is not a network: an IPv4 prefix is 0 to 32 bits"
    )]
    PrefixTooLong {
        mac: MacAddr,
        direction: FwDirection,
        rule: usize,
        addr: Ipv4Addr,
        prefix: u8,
    },
    #[error(
        "firewall port {mac} {direction}[{rule}]: {addr}/{prefix} has host bits set: use {network}/{prefix}"
    )]
    HostBitsSet {
        mac: MacAddr,
        direction: FwDirection,
        rule: usize,
        addr: Ipv4Addr,
        prefix: u8,
        network: Ipv4Addr,
    },
    #[error("bandwidth limit for {mac}: not a unicast MAC address: give the NIC's own MAC")]
    ShapedMacNotUnicast { mac: MacAddr },
    #[error("source pin for {mac}: not a unicast MAC address: give the NIC's own MAC")]
    PinnedMacNotUnicast { mac: MacAddr },
    #[error(
        "bandwidth limit for {mac}: {rate_bps} bit/s is out of range: use {MIN_RATE_BPS}..={MAX_RATE_BPS} bit/s (64 kbit/s to 100 Gbit/s)"
    )]
    RateOutOfRange { mac: MacAddr, rate_bps: u64 },
    #[error("bandwidth limit for {mac} is listed twice: give each NIC one rate")]
    DuplicateShapedMac { mac: MacAddr },
}

/// One kernel operation that failed; the reconciler carries on with the others
/// and the next reconcile retries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error(
        "port {port} for network VNI {vni} does not exist on this node: create the tap (or veth) before asking for it"
    )]
    PortMissing { port: String, vni: Vni },
    #[error("{action}: the device {device} vanished while reconciling: reconcile again")]
    DeviceVanished { action: String, device: String },
    #[error("{action}: permission denied: the agent needs CAP_NET_ADMIN in this network namespace")]
    PermissionDenied { action: String },
    #[error(
        "{action}: the kernel has no VXLAN or bridge support (errno {errno}): load the vxlan and bridge modules"
    )]
    NotSupported { action: String, errno: i32 },
    #[error(
        "{action}: address or port in use: another VXLAN device (not NovaCron's) already uses this VNI and UDP port, or the local VTEP is wrong"
    )]
    InUse { action: String },
    #[error("{action}: kernel said {message} (errno {errno})")]
    Other {
        action: String,
        errno: i32,
        message: String,
    },
}

/// Why [`crate::Reconciler`] could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Invalid(#[from] InvalidState),
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("cannot enter network namespace {path}: {source}")]
    Namespace {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the kernel's links and FDB: {0}")]
    Observe(KernelError),
    #[error(
        "nft is not installed (not on PATH, /usr/sbin or /sbin): install the nftables package (Debian: apt-get install nftables)"
    )]
    NftMissing,
    #[error("cannot run nft: {0}")]
    NftRun(#[source] std::io::Error),
    #[error("nft refused the firewall ruleset ({status}), so nothing changed: {stderr}")]
    NftFailed { status: String, stderr: String },
    #[error(
        "nft did not finish within {timeout:?} and was killed: the next apply replaces the whole table"
    )]
    NftTimeout { timeout: Duration },
    #[error(
        "{path} does not exist: the kernel lacks br_netfilter, so bridged traffic would bypass the firewall: load it (modprobe br_netfilter) or build it in (CONFIG_BRIDGE_NETFILTER)"
    )]
    BrNetfilterMissing { path: String },
    #[error("cannot read the VM taps and their qdiscs: {0}")]
    ObserveTaps(KernelError),
    #[error(
        "tc is not installed (not on PATH, /usr/sbin or /sbin): install the iproute2 package (Debian: apt-get install iproute2)"
    )]
    TcMissing,
    #[error("cannot run tc: {0}")]
    TcRun(#[source] std::io::Error),
    #[error(
        "tc refused {failed} of {total} tap bandwidth changes (the next apply retries them): {detail}"
    )]
    TcFailed {
        failed: usize,
        total: usize,
        detail: String,
    },
    #[error(
        "tc did not finish within {timeout:?} and was killed: the next apply shapes those taps again"
    )]
    TcTimeout { timeout: Duration },
    #[error("tunnel between sites: {what}: {source}")]
    Tunnel {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tunnel key {path}: {problem}")]
    TunnelKey { path: String, problem: String },
    #[error("cannot set {path} to 1 (bridged traffic must pass the firewall): {source}")]
    Sysctl {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl KernelError {
    /// Maps a netlink failure of `action` to the error that says what to fix.
    pub(crate) fn from_netlink(action: String, err: &rtnetlink::Error) -> Self {
        match err {
            rtnetlink::Error::NetlinkError(msg) => {
                let errno = -msg.raw_code();
                match errno {
                    libc::EPERM | libc::EACCES => Self::PermissionDenied { action },
                    libc::EOPNOTSUPP | libc::EAFNOSUPPORT => Self::NotSupported { action, errno },
                    libc::EADDRINUSE | libc::EEXIST => Self::InUse { action },
                    libc::ENODEV => Self::DeviceVanished {
                        device: "a device it names".into(),
                        action,
                    },
                    _ => Self::Other {
                        action,
                        errno,
                        message: std::io::Error::from_raw_os_error(errno).to_string(),
                    },
                }
            }
            other => Self::Other {
                action,
                errno: 0,
                message: other.to_string(),
            },
        }
    }
}
