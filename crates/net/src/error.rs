//! Errors of the data plane, each saying what to fix: a desired state that
//! cannot be built ([`InvalidState`], nothing changed), or one kernel operation
//! that failed ([`KernelError`], the rest of the reconcile went on).

use std::net::Ipv4Addr;

use crate::model::{MAX_MTU, MIN_MTU, MacAddr, Vni};

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
    #[error("{mac:?} is not a MAC address: use six hex pairs separated by ':'")]
    BadMac { mac: String },
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
