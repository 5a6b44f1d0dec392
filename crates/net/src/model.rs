//! The desired state of one node's overlay data plane: which networks exist here
//! (VNI, MTU), which local ports sit on them, and which remote nodes (VTEPs) and
//! VM MACs are reachable through the VXLAN device. The control plane computes it;
//! [`crate::Reconciler`] makes the kernel match it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::InvalidState;

/// The IANA port for VXLAN (RFC 7348).
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14): what a network's
/// MTU must leave free below the underlay's.
pub const VXLAN_OVERHEAD: u32 = 50;
/// Smallest overlay MTU accepted: IPv4's minimum datagram every host must take.
pub const MIN_MTU: u32 = 576;
/// Largest overlay MTU accepted: a 9000-byte jumbo underlay minus the overhead.
pub const MAX_MTU: u32 = 9000 - VXLAN_OVERHEAD;
/// Linux's IFNAMSIZ minus the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

/// Prefix of the bridge NovaCron owns for a network: `ncbr<vni>`.
pub const BRIDGE_PREFIX: &str = "ncbr";
/// Prefix of the VXLAN device NovaCron owns for a network: `ncvx<vni>`.
pub const VXLAN_PREFIX: &str = "ncvx";

/// A VXLAN network identifier (24 bits; 0 is reserved here so a zeroed record
/// can never name a real network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vni(u32);

impl Vni {
    /// Largest VNI the 24-bit field holds.
    pub const MAX: u32 = (1 << 24) - 1;

    /// A VNI in 1..=2^24-1.
    pub fn new(value: u32) -> Result<Self, InvalidState> {
        if value == 0 || value > Self::MAX {
            return Err(InvalidState::VniOutOfRange { vni: value });
        }
        Ok(Self(value))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The bridge this network uses on every node: `ncbr<vni>` (at most 12 bytes).
    pub fn bridge_name(self) -> String {
        format!("{BRIDGE_PREFIX}{}", self.0)
    }

    /// The VXLAN device this network uses on every node: `ncvx<vni>`.
    pub fn vxlan_name(self) -> String {
        format!("{VXLAN_PREFIX}{}", self.0)
    }
}

impl TryFrom<u32> for Vni {
    type Error = InvalidState;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Vni> for u32 {
    fn from(v: Vni) -> u32 {
        v.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which NovaCron device a link name denotes, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedDevice {
    Bridge(Vni),
    Vxlan(Vni),
}

impl OwnedDevice {
    /// Parses `ncbr<vni>` / `ncvx<vni>`; anything else is not ours and is left alone.
    pub fn from_name(name: &str) -> Option<Self> {
        let parse = |digits: &str| {
            // Canonical decimal only, so `ncbr007` is not mistaken for `ncbr7`.
            if digits.is_empty() || digits.starts_with('0') {
                return None;
            }
            digits.parse::<u32>().ok().and_then(|v| Vni::new(v).ok())
        };
        if let Some(rest) = name.strip_prefix(BRIDGE_PREFIX) {
            parse(rest).map(Self::Bridge)
        } else if let Some(rest) = name.strip_prefix(VXLAN_PREFIX) {
            parse(rest).map(Self::Vxlan)
        } else {
            None
        }
    }
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The all-zeros address: a VXLAN FDB entry with it lists a flood destination.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// A unicast address (the I/G bit clear) that is not all zeros.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && *self != Self::ZERO
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = InvalidState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidState::BadMac { mac: s.to_string() };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(out))
    }
}

impl TryFrom<String> for MacAddr {
    type Error = InvalidState;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

/// How this node terminates VXLAN tunnels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Underlay {
    /// This node's VTEP: the source address of its VXLAN packets, and the
    /// address other nodes' FDB entries point at.
    pub local_vtep: Ipv4Addr,
    /// UDP destination port of every VXLAN device (the same on all nodes).
    pub vxlan_port: u16,
}

/// A remote node that has (some of) the network: its VTEP and the MACs of the
/// ports behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemotePeer {
    pub vtep: Ipv4Addr,
    /// VM (or endpoint) MACs on this network that live behind `vtep`.
    #[serde(default)]
    pub macs: Vec<MacAddr>,
    /// The IPv4 addresses of those MACs. The bridge answers local ports' ARP requests
    /// for them itself (a permanent neighbour entry, a static FDB entry on the VXLAN port
    /// and `neigh_suppress` on it), so those requests are not flooded to every node.
    #[serde(default)]
    pub addresses: Vec<(Ipv4Addr, MacAddr)>,
}

/// One overlay network as it must exist on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeNetwork {
    pub vni: Vni,
    /// MTU of the bridge, the VXLAN device and every port.
    pub mtu: u32,
    /// Local interfaces (VM taps, or a veth end for a test endpoint) to attach
    /// to the network's bridge. They must exist; the reconciler does not create them.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Every other node with this network: each gets a flood entry (head-end
    /// replication of broadcast, unknown unicast and multicast) and one unicast
    /// entry per MAC.
    #[serde(default)]
    pub peers: Vec<RemotePeer>,
}

/// Everything the reconciler owns on a node. Networks not listed are removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredNode {
    pub underlay: Underlay,
    #[serde(default)]
    pub networks: Vec<NodeNetwork>,
    /// Interfaces with this name prefix already on a network's bridge are kept there (and
    /// given its MTU) even when not listed in `ports`: VM taps that QEMU holds open and the
    /// kernel names (`nctap0`, ...), which go away with their QEMU.
    #[serde(default)]
    pub adopt_port_prefix: Option<String>,
}

/// Checked form of [`DesiredNode`]: networks keyed by VNI, peers and MACs
/// deduplicated, so the planner can compare sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValidNode {
    pub underlay: Underlay,
    pub networks: BTreeMap<Vni, ValidNetwork>,
    pub adopt_port_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValidNetwork {
    pub mtu: u32,
    pub ports: BTreeSet<String>,
    /// Remote VTEPs (flood list).
    pub vteps: BTreeSet<Ipv4Addr>,
    /// Remote MAC -> the VTEP it sits behind.
    pub macs: BTreeMap<MacAddr, Ipv4Addr>,
    /// Remote address -> its MAC (one of `macs`).
    pub neighbours: BTreeMap<Ipv4Addr, MacAddr>,
}

impl DesiredNode {
    /// Checks everything that can be checked without the kernel, so a bad
    /// desired state changes nothing.
    pub(crate) fn validate(&self) -> Result<ValidNode, InvalidState> {
        let vtep = self.underlay.local_vtep;
        if vtep.is_unspecified() || vtep.is_multicast() || vtep.is_broadcast() {
            return Err(InvalidState::BadLocalVtep { vtep });
        }
        if self.underlay.vxlan_port == 0 {
            return Err(InvalidState::ZeroVxlanPort);
        }
        let mut networks = BTreeMap::new();
        let mut port_owner: BTreeMap<&str, Vni> = BTreeMap::new();
        for net in &self.networks {
            if !(MIN_MTU..=MAX_MTU).contains(&net.mtu) {
                return Err(InvalidState::MtuOutOfRange {
                    vni: net.vni,
                    mtu: net.mtu,
                });
            }
            let mut ports = BTreeSet::new();
            for port in &net.ports {
                if port.is_empty()
                    || port.len() > MAX_IFNAME_LEN
                    || port.contains(['/', ' ', '\0'])
                    || OwnedDevice::from_name(port).is_some()
                {
                    return Err(InvalidState::BadPortName {
                        vni: net.vni,
                        port: port.clone(),
                    });
                }
                if let Some(other) = port_owner.insert(port, net.vni)
                    && other != net.vni
                {
                    return Err(InvalidState::PortOnTwoNetworks {
                        port: port.clone(),
                        first: other,
                        second: net.vni,
                    });
                }
                ports.insert(port.clone());
            }
            let mut vteps = BTreeSet::new();
            let mut macs = BTreeMap::new();
            for peer in &net.peers {
                if peer.vtep == vtep {
                    return Err(InvalidState::PeerIsLocal { vni: net.vni, vtep });
                }
                if peer.vtep.is_unspecified() || peer.vtep.is_multicast() {
                    return Err(InvalidState::BadPeerVtep {
                        vni: net.vni,
                        vtep: peer.vtep,
                    });
                }
                vteps.insert(peer.vtep);
                for mac in &peer.macs {
                    if !mac.is_unicast() {
                        return Err(InvalidState::NotUnicastMac {
                            vni: net.vni,
                            mac: *mac,
                        });
                    }
                    if let Some(first) = macs.insert(*mac, peer.vtep)
                        && first != peer.vtep
                    {
                        return Err(InvalidState::MacBehindTwoVteps {
                            vni: net.vni,
                            mac: *mac,
                            first,
                            second: peer.vtep,
                        });
                    }
                }
            }
            let mut neighbours = BTreeMap::new();
            for peer in &net.peers {
                for &(ip, mac) in &peer.addresses {
                    if !peer.macs.contains(&mac) {
                        return Err(InvalidState::AddressOfUnknownMac {
                            vni: net.vni,
                            ip,
                            mac,
                            vtep: peer.vtep,
                        });
                    }
                    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
                        return Err(InvalidState::BadNeighbourAddress {
                            vni: net.vni,
                            ip,
                            mac,
                        });
                    }
                    if let Some(first) = neighbours.insert(ip, mac)
                        && first != mac
                    {
                        return Err(InvalidState::AddressOnTwoMacs {
                            vni: net.vni,
                            ip,
                            first,
                            second: mac,
                        });
                    }
                }
            }
            let valid = ValidNetwork {
                mtu: net.mtu,
                ports,
                vteps,
                macs,
                neighbours,
            };
            if networks.insert(net.vni, valid).is_some() {
                return Err(InvalidState::DuplicateVni { vni: net.vni });
            }
        }
        Ok(ValidNode {
            underlay: self.underlay.clone(),
            networks,
            adopt_port_prefix: self.adopt_port_prefix.clone().filter(|p| !p.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vni(v: u32) -> Vni {
        Vni::new(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn node(networks: Vec<NodeNetwork>) -> DesiredNode {
        DesiredNode {
            underlay: Underlay {
                local_vtep: Ipv4Addr::new(198, 18, 0, 1),
                vxlan_port: DEFAULT_VXLAN_PORT,
            },
            networks,
            adopt_port_prefix: None,
        }
    }

    fn net(v: u32) -> NodeNetwork {
        NodeNetwork {
            vni: vni(v),
            mtu: 1450,
            ports: vec![],
            peers: vec![],
        }
    }

    #[test]
    fn device_names_fit_ifnamsiz_and_parse_back() {
        let max = vni(Vni::MAX);
        assert!(max.bridge_name().len() <= MAX_IFNAME_LEN);
        assert!(max.vxlan_name().len() <= MAX_IFNAME_LEN);
        assert_eq!(
            OwnedDevice::from_name(&max.bridge_name()),
            Some(OwnedDevice::Bridge(max))
        );
        assert_eq!(
            OwnedDevice::from_name("ncvx42"),
            Some(OwnedDevice::Vxlan(vni(42)))
        );
        for foreign in ["ncbr", "ncbr0", "ncbr007", "ncvx16777216", "br0", "ncbrx1"] {
            assert_eq!(OwnedDevice::from_name(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn vni_range_is_24_bits_without_zero() {
        assert!(Vni::new(0).is_err());
        assert!(Vni::new(1 << 24).is_err());
        assert!(Vni::new(1).is_ok());
    }

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "02:00:0a:FF:00:01"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.to_string(), "02:00:0a:ff:00:01");
        assert!(m.is_unicast());
        for bad in [
            "",
            "02:00:0a:ff:00",
            "02:00:0a:ff:00:01:02",
            "2:00:0a:ff:00:01",
            "zz:00:00:00:00:00",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(!MacAddr([1, 0, 0, 0, 0, 1]).is_unicast());
    }

    #[test]
    fn validation_rejects_inconsistent_states() {
        let mut a = net(100);
        a.mtu = 9001;
        assert!(matches!(
            node(vec![a]).validate(),
            Err(InvalidState::MtuOutOfRange { .. })
        ));

        assert!(matches!(
            node(vec![net(7), net(7)]).validate(),
            Err(InvalidState::DuplicateVni { .. })
        ));

        let mut a = net(1);
        a.ports = vec!["tap0".into()];
        let mut b = net(2);
        b.ports = vec!["tap0".into()];
        assert!(matches!(
            node(vec![a, b]).validate(),
            Err(InvalidState::PortOnTwoNetworks { .. })
        ));

        let mut a = net(1);
        a.ports = vec!["a-very-long-port-name".into()];
        assert!(matches!(
            node(vec![a]).validate(),
            Err(InvalidState::BadPortName { .. })
        ));

        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let mut a = net(1);
        a.peers = vec![
            RemotePeer {
                vtep: Ipv4Addr::new(198, 18, 0, 2),
                macs: vec![mac],
                addresses: vec![],
            },
            RemotePeer {
                vtep: Ipv4Addr::new(198, 18, 0, 3),
                macs: vec![mac],
                addresses: vec![],
            },
        ];
        assert!(matches!(
            node(vec![a]).validate(),
            Err(InvalidState::MacBehindTwoVteps { .. })
        ));

        let mut a = net(1);
        a.peers = vec![RemotePeer {
            vtep: Ipv4Addr::new(198, 18, 0, 1),
            macs: vec![],
            addresses: vec![],
        }];
        assert!(matches!(
            node(vec![a]).validate(),
            Err(InvalidState::PeerIsLocal { .. })
        ));

        let other = MacAddr([2, 0, 0, 0, 0, 8]);
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let mut a = net(1);
        a.peers = vec![RemotePeer {
            vtep: Ipv4Addr::new(198, 18, 0, 2),
            macs: vec![mac],
            addresses: vec![(ip, other)],
        }];
        assert!(matches!(
            node(vec![a]).validate(),
            Err(InvalidState::AddressOfUnknownMac { .. })
        ));
        let mut a = net(1);
        a.peers = vec![
            RemotePeer {
                vtep: Ipv4Addr::new(198, 18, 0, 2),
                macs: vec![mac],
                addresses: vec![(ip, mac)],
            },
            RemotePeer {
                vtep: Ipv4Addr::new(198, 18, 0, 3),
                macs: vec![other],
                addresses: vec![(ip, other)],
            },
        ];
        assert!(matches!(
            node(vec![a]).validate(),
            Err(InvalidState::AddressOnTwoMacs { .. })
        ));
        let mut a = net(1);
        a.peers = vec![RemotePeer {
            vtep: Ipv4Addr::new(198, 18, 0, 2),
            macs: vec![mac],
            addresses: vec![(Ipv4Addr::BROADCAST, mac)],
        }];
        assert!(matches!(
            node(vec![a]).validate(),
            Err(InvalidState::BadNeighbourAddress { .. })
        ));
    }
}
