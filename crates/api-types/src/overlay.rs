//! Overlay networks as the API shows them: a NovaCron-owned L2 network (one VXLAN VNI)
//! with an IPv4 subnet that spans every node. Not to be confused with [`crate::Network`],
//! which says how one VM NIC is connected today (user NAT, an existing bridge, none).
//!
//! The checks that need only the request (CIDR, gateway, MTU, name) live here, so the
//! CLI and the control plane refuse a bad request with the same message.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Invalid, UnixSeconds, validate_name};

/// Outer IPv4 + UDP + VXLAN + inner Ethernet headers: 50 bytes.
pub const VXLAN_OVERHEAD_BYTES: u32 = 50;
/// A 1500-byte underlay less the VXLAN overhead.
pub const DEFAULT_NETWORK_MTU: u32 = 1500 - VXLAN_OVERHEAD_BYTES;
/// What the tunnel between sites adds to each VXLAN packet: outer IPv4 (20) + UDP (8) +
/// WireGuard's data header (16) and tag (16).
pub const TUNNEL_OVERHEAD_BYTES: u32 = 60;
/// The default MTU of a network created while the cluster has nodes in more than one site:
/// its packets between sites cross a 1500-byte underlay through the tunnel unfragmented.
pub const DEFAULT_SITES_NETWORK_MTU: u32 = DEFAULT_NETWORK_MTU - TUNNEL_OVERHEAD_BYTES;
/// IPv4's minimum datagram size every host must accept.
pub const MIN_NETWORK_MTU: u32 = 576;
/// A 9000-byte jumbo underlay less the VXLAN overhead.
pub const MAX_NETWORK_MTU: u32 = 9000 - VXLAN_OVERHEAD_BYTES;
/// Widest subnet accepted (a /8 is already 16 M addresses).
pub const MIN_PREFIX_LEN: u8 = 8;
/// Narrowest subnet accepted: a /29 leaves a gateway and five VMs.
pub const MAX_PREFIX_LEN: u8 = 29;

/// An IPv4 network in CIDR notation, host bits zero (`10.10.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// `addr/prefix_len`; refused when host bits are set or the length is outside
    /// [`MIN_PREFIX_LEN`]..=[`MAX_PREFIX_LEN`].
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Self, Invalid> {
        if !(MIN_PREFIX_LEN..=MAX_PREFIX_LEN).contains(&prefix_len) {
            return Err(Invalid(format!(
                "subnet {addr}/{prefix_len}: the prefix length must be between /{MIN_PREFIX_LEN} and /{MAX_PREFIX_LEN}"
            )));
        }
        let mask = Self::mask_of(prefix_len);
        let network = Ipv4Addr::from(u32::from(addr) & mask);
        if network != addr {
            return Err(Invalid(format!(
                "subnet {addr}/{prefix_len} has host bits set: did you mean {network}/{prefix_len}?"
            )));
        }
        Ok(Self { addr, prefix_len })
    }

    fn mask_of(prefix_len: u8) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(prefix_len))
            .unwrap_or(0)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !Self::mask_of(self.prefix_len))
    }

    /// Whether `ip` is in the subnet (network and broadcast addresses included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask_of(self.prefix_len) == u32::from(self.addr)
    }

    /// Whether `ip` is a usable host address: inside, and not the network or broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.addr && ip != self.broadcast()
    }

    /// The first host address: the default gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = || {
            Invalid(format!(
                "invalid subnet {s:?}: expected an IPv4 network in CIDR notation, e.g. 10.10.0.0/24"
            ))
        };
        let (addr, len) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 2 {
            return Err(bad());
        }
        let len: u8 = len.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        Self::new(addr, len)
    }
}

/// Body of `POST /api/v1/networks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreateRequest {
    pub name: String,
    /// Defaults to the `default` project.
    #[serde(default)]
    pub project: Option<String>,
    /// IPv4 subnet in CIDR notation, e.g. `10.10.0.0/24`.
    pub subnet: String,
    /// Defaults to the subnet's first host address.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Outbound access through the node each VM runs on.
    #[serde(default)]
    pub nat: bool,
    /// Hand out addresses by DHCP (default on).
    #[serde(default = "default_true")]
    pub dhcp: bool,
    /// DNS names `VM.NETWORK` for the network's VMs.
    #[serde(default)]
    pub dns: bool,
    /// MTU inside the network (default 1450: a 1500-byte underlay less VXLAN's 50).
    #[serde(default)]
    pub mtu: Option<u32>,
}

fn default_true() -> bool {
    true
}

/// An overlay network: what `network show` prints and what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OverlayNetwork {
    pub name: String,
    pub project: String,
    /// The VXLAN network identifier, unique in the cluster.
    pub vni: u32,
    /// CIDR, e.g. `10.10.0.0/24`.
    pub subnet: String,
    pub gateway: String,
    pub nat: bool,
    pub dhcp: bool,
    pub dns: bool,
    pub mtu: u32,
    pub created_at: UnixSeconds,
}

/// Parses a node's VTEP: a unicast IPv4 address (VXLAN runs over IPv4 here).
pub fn parse_vtep(s: &str) -> Result<Ipv4Addr, Invalid> {
    let ip: Ipv4Addr = s.trim().parse().map_err(|_| {
        Invalid(format!(
            "invalid VTEP address {s:?}: expected an IPv4 address, e.g. 198.18.0.1"
        ))
    })?;
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        return Err(Invalid(format!(
            "VTEP address {ip} is not a unicast address: use the node's address on the underlay"
        )));
    }
    Ok(ip)
}

/// Parses a NIC's MAC address (`52:54:00:12:34:56`, lower or upper case): unicast, not
/// all zeros. Returned in lower case.
pub fn parse_mac(s: &str) -> Result<String, Invalid> {
    let bad = || {
        Invalid(format!(
            "invalid MAC address {s:?}: expected six hex bytes like 02:00:0a:0a:00:05"
        ))
    };
    let mut bytes = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut bytes {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if bytes[0] & 1 == 1 || bytes == [0; 6] {
        return Err(Invalid(format!(
            "MAC address {s} is not a unicast address (the lowest bit of the first byte must be 0)"
        )));
    }
    Ok(format_mac(bytes))
}

fn format_mac(b: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

/// A locally administered unicast MAC (first byte 0x02) from five random bytes.
pub fn local_mac(random: [u8; 5]) -> String {
    format_mac([0x02, random[0], random[1], random[2], random[3], random[4]])
}

/// A NIC on an overlay network, as `vm create --network NET [--ip A] [--mac M]` asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NicRequest {
    /// The overlay network (in the VM's project).
    pub network: String,
    /// A fixed IPv4 address in the network's subnet; otherwise the lowest free one.
    #[serde(default)]
    pub ip: Option<String>,
    /// A fixed MAC; otherwise a generated locally administered one.
    #[serde(default)]
    pub mac: Option<String>,
}

/// A VM's NIC on an overlay network: what `vm show` prints, what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Nic {
    pub network: String,
    /// The network's VNI (its bridge on the node is `ncbr<vni>`).
    pub vni: u32,
    pub mac: String,
    /// Addresses the control plane allocated to this NIC.
    pub ips: Vec<String>,
}

/// The overlay data plane one node must build, as `GET /api/v1/agent/overlay` answers it:
/// every network a VM placed on the node uses, and where the network's other VMs are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeOverlay {
    /// Store revision of the VM records it was computed from; pass it back as `after` to
    /// wait for a change.
    pub revision: i64,
    pub networks: Vec<NodeOverlayNetwork>,
    /// Revision of the security groups it was computed from; pass it back as
    /// `after_groups` to wait for a change of those too.
    #[serde(default)]
    pub groups_revision: i64,
    /// The security groups of this node's endpoints and the groups their rules name.
    #[serde(default)]
    pub security_groups: Vec<crate::security::NodeSecurityGroup>,
    /// This node's site as the control plane knows it (none: the default site). Peers of
    /// another site are reached through the tunnel only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

/// One network on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeOverlayNetwork {
    pub project: String,
    pub name: String,
    pub vni: u32,
    pub mtu: u32,
    pub subnet: String,
    pub gateway: String,
    pub dhcp: bool,
    /// Outbound access through this node (masquerade; the gateway is the default route).
    #[serde(default)]
    pub nat: bool,
    /// Names `VM.NETWORK` served by the gateway.
    #[serde(default)]
    pub dns: bool,
    /// NICs of the VMs placed on this node.
    pub local: Vec<OverlayEndpoint>,
    /// Every other node with VMs on the network: its VTEP and their NICs.
    pub peers: Vec<OverlayPeer>,
}

/// A VM NIC on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OverlayEndpoint {
    pub vm: String,
    pub mac: String,
    pub ips: Vec<String>,
    /// The VM's security groups (local endpoints only): none leaves the NIC unfiltered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// The VM's limit in bits per second, each direction (local endpoints only): none is
    /// no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bps: Option<u64>,
}

/// A remote node of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OverlayPeer {
    pub node: String,
    pub vtep: String,
    pub endpoints: Vec<OverlayEndpoint>,
    /// The peer's site (none: the default site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The peer's end of the tunnel between sites, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelEndpoint>,
}

/// A node's end of the tunnel between sites: WireGuard's protocol, over UDP to the node's
/// VTEP address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TunnelEndpoint {
    /// The node's public X25519 key, base64 (44 characters).
    pub public_key: String,
    /// The UDP port its tunnel listens on.
    pub port: u16,
}

impl TunnelEndpoint {
    /// Refuses a key that is not 32 bytes of base64 or port 0.
    pub fn check(&self) -> Result<(), Invalid> {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD
            .decode(self.public_key.trim())
            .ok()
            .filter(|k| k.len() == 32);
        if key.is_none() {
            return Err(Invalid(format!(
                "tunnel public key {:?} is not 32 bytes of base64 (44 characters)",
                self.public_key
            )));
        }
        if self.port == 0 {
            return Err(Invalid(
                "tunnel port 0 is not usable: give the port the agent's tunnel listens on".into(),
            ));
        }
        Ok(())
    }
}

/// A create request after its checks: parsed subnet and gateway, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedNetwork {
    pub name: String,
    pub project: String,
    pub subnet: Ipv4Cidr,
    pub gateway: Ipv4Addr,
    pub nat: bool,
    pub dhcp: bool,
    pub dns: bool,
    pub mtu: u32,
}

impl NetworkCreateRequest {
    /// Every check that needs only the request.
    pub fn check(&self) -> Result<CheckedNetwork, Invalid> {
        validate_name("network", &self.name)?;
        let project = self
            .project
            .clone()
            .unwrap_or_else(|| crate::DEFAULT_PROJECT.to_string());
        validate_name("project", &project)?;
        let subnet: Ipv4Cidr = self.subnet.parse()?;
        let gateway = match &self.gateway {
            None => subnet.first_host(),
            Some(g) => {
                let gw: Ipv4Addr = g.trim().parse().map_err(|_| {
                    Invalid(format!(
                        "invalid gateway {g:?}: expected an IPv4 address, e.g. {}",
                        subnet.first_host()
                    ))
                })?;
                if !subnet.is_host(gw) {
                    return Err(Invalid(format!(
                        "gateway {gw} is not a host address of subnet {subnet}: use an address between {} and the broadcast address {} (exclusive)",
                        subnet.network(),
                        subnet.broadcast()
                    )));
                }
                gw
            }
        };
        let mtu = self.mtu.unwrap_or(DEFAULT_NETWORK_MTU);
        if !(MIN_NETWORK_MTU..=MAX_NETWORK_MTU).contains(&mtu) {
            return Err(Invalid(format!(
                "MTU {mtu} is out of range: use {MIN_NETWORK_MTU}..={MAX_NETWORK_MTU} (the underlay carries {VXLAN_OVERHEAD_BYTES} more bytes per packet)"
            )));
        }
        Ok(CheckedNetwork {
            name: self.name.clone(),
            project,
            subnet,
            gateway,
            nat: self.nat,
            dhcp: self.dhcp,
            dns: self.dns,
            mtu,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(subnet: &str) -> NetworkCreateRequest {
        NetworkCreateRequest {
            name: "app".into(),
            project: None,
            subnet: subnet.into(),
            gateway: None,
            nat: false,
            dhcp: true,
            dns: false,
            mtu: None,
        }
    }

    #[test]
    fn cidrs_parse_strictly() {
        let c: Ipv4Cidr = "10.10.0.0/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.10.0.0/24");
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 10, 0, 255));
        assert_eq!(c.first_host(), Ipv4Addr::new(10, 10, 0, 1));
        let e = "10.10.0.5/24".parse::<Ipv4Cidr>().unwrap_err();
        assert!(e.0.contains("did you mean 10.10.0.0/24"), "{e}");
        for bad in [
            "",
            "10.10.0.0",
            "10.10.0.0/",
            "10.10.0.0/33",
            "10.10.0/24",
            "x/24",
            "10.0.0.0/+8",
            "10.0.0.0/30",
            "10.0.0.0/7",
            "::/64",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        let a: Ipv4Cidr = "10.10.0.0/16".parse().unwrap();
        let b: Ipv4Cidr = "10.10.5.0/24".parse().unwrap();
        let c: Ipv4Cidr = "10.11.0.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
        assert!(a.overlaps(&a));
    }

    #[test]
    fn gateway_defaults_to_first_host_and_must_be_a_host() {
        let ok = req("10.10.0.0/24").check().unwrap();
        assert_eq!(ok.gateway, Ipv4Addr::new(10, 10, 0, 1));
        assert_eq!(ok.mtu, DEFAULT_NETWORK_MTU);
        assert_eq!(ok.project, crate::DEFAULT_PROJECT);
        for gw in ["10.10.1.1", "10.10.0.0", "10.10.0.255", "nope"] {
            let mut r = req("10.10.0.0/24");
            r.gateway = Some(gw.into());
            assert!(r.check().is_err(), "{gw}");
        }
        let mut r = req("10.10.0.0/24");
        r.gateway = Some("10.10.0.254".into());
        assert_eq!(r.check().unwrap().gateway, Ipv4Addr::new(10, 10, 0, 254));
    }

    #[test]
    fn macs_and_vteps_parse_strictly() {
        assert_eq!(parse_mac("02:AA:00:0a:0B:05").unwrap(), "02:aa:00:0a:0b:05");
        for bad in [
            "",
            "02:aa:00:0a:0b",
            "02:aa:00:0a:0b:05:06",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "2:aa:00:0a:0b:05",
            "zz:aa:00:0a:0b:05",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        let m = local_mac([1, 2, 3, 4, 5]);
        assert_eq!(m, "02:01:02:03:04:05");
        assert!(parse_mac(&m).is_ok());
        assert_eq!(
            parse_vtep(" 198.18.0.1 ").unwrap(),
            Ipv4Addr::new(198, 18, 0, 1)
        );
        for bad in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "x"] {
            assert!(parse_vtep(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mtu_and_name_bounds() {
        let mut r = req("10.10.0.0/24");
        r.mtu = Some(575);
        assert!(r.check().is_err());
        r.mtu = Some(MAX_NETWORK_MTU + 1);
        assert!(r.check().is_err());
        r.mtu = Some(MAX_NETWORK_MTU);
        assert!(r.check().is_ok());
        let mut r = req("10.10.0.0/24");
        r.name = "Bad Name".into();
        assert!(r.check().is_err());
    }
}
