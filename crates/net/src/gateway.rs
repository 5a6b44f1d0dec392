//! A network's gateway on every node: the bridge `ncbr<vni>` holds the gateway address
//! with the same MAC on every node ([`gateway_mac`]), so a VM that moves keeps a valid
//! ARP entry for it; the gateway is kept off the VXLAN (each node answers for it only to
//! its own VMs); and a network with NAT gets outbound access through whichever node its
//! VM runs on (masquerade of the subnet's traffic leaving it, IPv4 forwarding on).
//!
//! Two nftables tables, replaced together by one `nft -f` transaction:
//! - `bridge novacron_gw`: ARP requests for a gateway address are not sent over the
//!   network's VXLAN device, and frames from a gateway MAC neither leave nor enter by it.
//! - `ip novacron_nat`: `ip saddr SUBNET ip daddr != SUBNET masquerade` per NAT network.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::error::NetError;
use crate::model::{MacAddr, Vni};

/// One network's gateway on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub vni: Vni,
    /// The subnet: network address and prefix length.
    pub subnet: (Ipv4Addr, u8),
    pub address: Ipv4Addr,
    /// Outbound access through this node.
    pub nat: bool,
}

/// The MAC of network `vni`'s gateway, the same on every node: locally administered,
/// `02:4e:43` ("NC") and the VNI's 24 bits.
pub fn gateway_mac(vni: Vni) -> MacAddr {
    let v = vni.get().to_be_bytes();
    MacAddr([0x02, 0x4e, 0x43, v[1], v[2], v[3]])
}

const REMOVE: &str = "table bridge novacron_gw {}\ndelete table bridge novacron_gw\ntable ip novacron_nat {}\ndelete table ip novacron_nat\n";

/// The script that makes both tables match `gateways` (an empty list removes them).
pub fn render(gateways: &[Gateway]) -> String {
    let mut out = String::from(REMOVE);
    if gateways.is_empty() {
        return out;
    }
    let mut forward = String::new();
    let mut output = String::new();
    let mut input = String::new();
    for g in gateways {
        let vx = g.vni.vxlan_name();
        let mac = gateway_mac(g.vni);
        let _ = writeln!(
            forward,
            "    oifname \"{vx}\" arp daddr ip {} drop",
            g.address
        );
        let _ = writeln!(output, "    oifname \"{vx}\" ether saddr {mac} drop");
        let _ = writeln!(input, "    iifname \"{vx}\" ether saddr {mac} drop");
    }
    let hook = |name: &str, rules: &str| {
        format!(
            "  chain {name} {{\n    type filter hook {name} priority 0; policy accept;\n{rules}  }}\n"
        )
    };
    out.push_str("table bridge novacron_gw {\n");
    out.push_str(&hook("forward", &forward));
    out.push_str(&hook("output", &output));
    out.push_str(&hook("input", &input));
    out.push_str("}\n");
    let nat: Vec<&Gateway> = gateways.iter().filter(|g| g.nat).collect();
    if !nat.is_empty() {
        out.push_str("table ip novacron_nat {\n  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n");
        for g in nat {
            let (net, len) = g.subnet;
            let _ = writeln!(
                out,
                "    ip saddr {net}/{len} ip daddr != {net}/{len} masquerade"
            );
        }
        out.push_str("  }\n}\n");
    }
    out
}

/// Applies [`render`] when the gateways changed, turning IPv4 forwarding on first when a
/// network NATs.
#[derive(Debug, Default)]
pub struct GatewayApplier {
    last: Option<Vec<Gateway>>,
}

impl GatewayApplier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets what was applied, so the next apply writes everything again.
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// Ok(true) when it changed the kernel.
    pub fn apply(&mut self, gateways: &[Gateway]) -> Result<bool, NetError> {
        if self.last.as_deref() == Some(gateways) {
            return Ok(false);
        }
        if gateways.iter().any(|g| g.nat)
            && let Some(was) = crate::firewall::sysctl_on(IP_FORWARD)?
        {
            tracing::info!(
                sysctl = IP_FORWARD,
                was,
                "set to 1: a network NATs through this node"
            );
        }
        match crate::firewall::run_nft(&render(gateways)) {
            Ok(()) => {
                tracing::info!(
                    gateways = gateways.len(),
                    nat = gateways.iter().filter(|g| g.nat).count(),
                    "network gateways applied"
                );
                self.last = Some(gateways.to_vec());
                Ok(true)
            }
            Err(e) => {
                self.last = None;
                Err(e)
            }
        }
    }
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

#[cfg(test)]
mod tests {
    use super::*;

    fn vni(v: u32) -> Vni {
        Vni::new(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_gateway_mac_is_per_network_and_the_same_everywhere() {
        assert_eq!(gateway_mac(vni(1000)).to_string(), "02:4e:43:00:03:e8");
        assert_eq!(gateway_mac(vni(Vni::MAX)).to_string(), "02:4e:43:ff:ff:ff");
        assert!(gateway_mac(vni(1)).is_unicast());
    }

    #[test]
    fn gateways_stay_off_the_vxlan_and_only_nat_networks_masquerade() {
        let gws = [
            Gateway {
                vni: vni(1000),
                subnet: (Ipv4Addr::new(10, 77, 0, 0), 24),
                address: Ipv4Addr::new(10, 77, 0, 1),
                nat: true,
            },
            Gateway {
                vni: vni(1001),
                subnet: (Ipv4Addr::new(10, 78, 0, 0), 24),
                address: Ipv4Addr::new(10, 78, 0, 1),
                nat: false,
            },
        ];
        let s = render(&gws);
        assert!(s.starts_with(REMOVE), "{s}");
        assert!(
            s.contains("oifname \"ncvx1000\" arp daddr ip 10.77.0.1 drop"),
            "{s}"
        );
        assert!(
            s.contains("oifname \"ncvx1001\" ether saddr 02:4e:43:00:03:e9 drop"),
            "{s}"
        );
        assert!(
            s.contains("iifname \"ncvx1000\" ether saddr 02:4e:43:00:03:e8 drop"),
            "{s}"
        );
        assert!(
            s.contains("ip saddr 10.77.0.0/24 ip daddr != 10.77.0.0/24 masquerade"),
            "{s}"
        );
        assert!(!s.contains("10.78.0.0/24 ip daddr"), "{s}");
        // No NAT network: no NAT table.
        let s = render(&gws[1..]);
        assert!(!s.contains("table ip novacron_nat {\n"), "{s}");
        assert_eq!(render(&[]), REMOVE);
    }
}
