//! NovaCron's per-node network data plane: for each overlay network on a node,
//! a Linux bridge (`ncbr<vni>`) and a VXLAN device (`ncvx<vni>`, no learning, no
//! multicast) with the control plane's forwarding table programmed as FDB
//! entries (one unicast entry per remote VM MAC, one all-zeros flood entry per
//! remote VTEP for head-end replication), and local ports (VM taps) on the
//! bridge. Everything is reconciled from a [`DesiredNode`] over netlink.
//!
//! The pieces: [`model`] (the desired state and its validation), [`plan`] (a
//! pure diff from observed to desired), [`Reconciler`] (netlink I/O),
//! [`firewall`] (security groups as one nftables table, [`FirewallApplier`]), [`gateway`]
//! (a network's gateway and NAT, [`GatewayApplier`]) and [`ports`] (what each VM tap may
//! send as: its NIC's MAC only; and per-NIC bandwidth limits, a tbf on the tap and an
//! nftables policer; [`PortApplier`]), and [`tunnel`]: overlay traffic between sites sealed
//! with WireGuard's protocol in user space ([`SiteTunnel`]).

pub mod error;
pub mod firewall;
pub mod gateway;
mod kernel;
pub mod model;
pub mod netns;
pub mod plan;
pub mod ports;
pub mod tunnel;

/// The WireGuard protocol library the tunnel uses (for the fuzz target's sessions).
pub use boringtun;
pub use error::{InvalidState, KernelError, NetError};
pub use firewall::{
    Firewall, FirewallApplier, FwDirection, FwPeer, FwProtocol, FwRule, GuardedPort, remove_table,
    render, render_set_update,
};
pub use gateway::{Gateway, GatewayApplier, gateway_mac};
pub use kernel::{ReconcileReport, Reconciler};
pub use model::{
    DEFAULT_VXLAN_PORT, DesiredNode, MacAddr, NodeNetwork, RemotePeer, Underlay, VXLAN_OVERHEAD,
    Vni,
};
pub use plan::{Action, FdbEntry, LinkKind, Observed, ObservedLink};
pub use ports::{NodePorts, PortApplier, ShapedNic, TAP_ALIAS_PREFIX, tap_alias};
pub use tunnel::{
    DEFAULT_TUNNEL_PORT, SiteTunnel, TUNNEL_DEVICE, TUNNEL_OVERHEAD, TunnelKey, TunnelPeer,
    TunnelPublicKey, TunnelStats,
};
