//! The reconcile decision as a pure function: from what the kernel has
//! ([`Observed`]) and what should be ([`crate::model::ValidNode`]) to the ordered
//! list of [`Action`]s that closes the gap. No I/O here, so every rule (what is
//! ours, what is replaced, what is removed) is unit-tested without a kernel.
//!
//! Rules:
//! - Links named `ncbr<vni>` / `ncvx<vni>` are NovaCron's. One that is not
//!   desired, or has the wrong kind, or a VXLAN device whose VNI, local VTEP,
//!   port or learning flag differ, is deleted (and recreated if desired): these
//!   attributes cannot be changed in place.
//! - MTU, up state and bridge membership are changed in place.
//! - Ports are not ours: an unwanted port is detached from our bridge, never deleted.
//! - Only FDB entries with a remote destination on our VXLAN devices are
//!   managed; the bridge's learned entries are left to the bridge.
//! - The bridge answers ARP for remote VMs: our VXLAN ports have `neigh_suppress`,
//!   each remote MAC has a static bridge FDB entry on the VXLAN port and each remote
//!   address a permanent neighbour entry on the bridge. Static entries on our VXLAN
//!   ports and permanent neighbours on our bridges are ours: others are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use crate::model::{MacAddr, OwnedDevice, ValidNode, Vni};

/// The kind of a link, as far as the planner cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Bridge,
    Vxlan(VxlanParams),
    Other,
}

/// The attributes of a VXLAN device that are fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanParams {
    pub vni: u32,
    pub local: Option<Ipv4Addr>,
    pub port: u16,
    pub learning: bool,
}

/// One link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLink {
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    pub mtu: u32,
    pub up: bool,
    /// Index of the bridge it is a port of.
    pub controller: Option<u32>,
    /// A bridge port with `neigh_suppress` on.
    pub neigh_suppress: bool,
}

/// A VXLAN FDB entry with a remote destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FdbEntry {
    pub ifindex: u32,
    pub mac: MacAddr,
    pub dst: Ipv4Addr,
}

/// A static entry of a bridge's FDB (added by hand or by us, never learned) whose port
/// is `ifindex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaticFdbEntry {
    pub ifindex: u32,
    pub mac: MacAddr,
}

/// A permanent IPv4 neighbour entry of the device `ifindex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NeighbourEntry {
    pub ifindex: u32,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
}

/// What the kernel has, as read by one dump of links and bridge FDB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub links: Vec<ObservedLink>,
    pub fdb: Vec<FdbEntry>,
    /// Static bridge FDB entries whose port is one of our VXLAN devices.
    pub static_fdb: Vec<StaticFdbEntry>,
    /// Permanent neighbour entries of our bridges.
    pub neighbours: Vec<NeighbourEntry>,
}

/// One change to the kernel. Devices are named, not indexed, because a link
/// created earlier in the same plan has no index yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    DeleteLink {
        name: String,
    },
    CreateBridge {
        name: String,
        mtu: u32,
    },
    CreateVxlan {
        name: String,
        vni: Vni,
        local: Ipv4Addr,
        port: u16,
        mtu: u32,
        bridge: String,
    },
    /// Makes `name` a port of `bridge` (when `bridge` is None, `name` is a
    /// network's bridge and is made nobody's port), with this MTU, and up.
    SetLink {
        name: String,
        mtu: u32,
        bridge: Option<String>,
    },
    /// Attaches a port that is missing: reported, since only its owner can create it.
    PortMissing {
        port: String,
        vni: Vni,
    },
    DetachPort {
        name: String,
    },
    /// A VM MAC is replaced in place when it moved to another VTEP; an
    /// all-zeros flood entry is appended (one per remote VTEP).
    AddFdb {
        vxlan: String,
        mac: MacAddr,
        dst: Ipv4Addr,
    },
    DelFdb {
        vxlan: String,
        mac: MacAddr,
        dst: Ipv4Addr,
    },
    /// Turns `neigh_suppress` on for a network's VXLAN port: an ARP request the bridge
    /// answered itself is not flooded to it.
    SuppressArp {
        port: String,
    },
    /// A remote MAC in the bridge's FDB, static, behind the VXLAN port (replaced in place
    /// when it was elsewhere): the bridge answers ARP for an address only when it knows
    /// the port of its MAC.
    AddStaticFdb {
        vxlan: String,
        mac: MacAddr,
    },
    DelStaticFdb {
        vxlan: String,
        mac: MacAddr,
    },
    /// A remote address's permanent neighbour entry on the bridge, which the bridge's
    /// ARP answers come from (replaced in place when its MAC changed).
    AddNeighbour {
        bridge: String,
        ip: Ipv4Addr,
        mac: MacAddr,
    },
    DelNeighbour {
        bridge: String,
        ip: Ipv4Addr,
        mac: MacAddr,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeleteLink { name } => write!(f, "delete link {name}"),
            Self::CreateBridge { name, mtu } => write!(f, "create bridge {name} mtu {mtu}"),
            Self::CreateVxlan {
                name,
                vni,
                local,
                port,
                mtu,
                bridge,
            } => write!(
                f,
                "create vxlan {name} id {vni} local {local} dstport {port} mtu {mtu} master {bridge}"
            ),
            Self::SetLink { name, mtu, bridge } => match bridge {
                Some(b) => write!(f, "set {name} mtu {mtu} master {b} up"),
                None => write!(f, "set {name} mtu {mtu} up"),
            },
            Self::PortMissing { port, vni } => write!(f, "attach missing port {port} to VNI {vni}"),
            Self::DetachPort { name } => write!(f, "detach port {name}"),
            Self::AddFdb { vxlan, mac, dst } => write!(f, "fdb add {mac} dev {vxlan} dst {dst}"),
            Self::DelFdb { vxlan, mac, dst } => write!(f, "fdb del {mac} dev {vxlan} dst {dst}"),
            Self::SuppressArp { port } => write!(f, "set {port} neigh_suppress on"),
            Self::AddStaticFdb { vxlan, mac } => {
                write!(f, "fdb replace {mac} dev {vxlan} master static")
            }
            Self::DelStaticFdb { vxlan, mac } => write!(f, "fdb del {mac} dev {vxlan} master"),
            Self::AddNeighbour { bridge, ip, mac } => {
                write!(
                    f,
                    "neigh replace {ip} lladdr {mac} dev {bridge} nud permanent"
                )
            }
            Self::DelNeighbour { bridge, ip, mac } => {
                write!(f, "neigh del {ip} lladdr {mac} dev {bridge}")
            }
        }
    }
}

/// The actions, in an order that works: deletions first, then bridges, VXLAN
/// devices, ports, FDB entries (they need their VXLAN device), and last what answers
/// ARP (it needs the VXLAN device on its bridge).
pub(crate) fn plan(desired: &ValidNode, observed: &Observed) -> Vec<Action> {
    let by_name: BTreeMap<&str, &ObservedLink> = observed
        .links
        .iter()
        .map(|l| (l.name.as_str(), l))
        .collect();

    let mut deletes = Vec::new();
    let mut creates = Vec::new();
    let mut sets = Vec::new();
    let mut ports = Vec::new();
    let mut fdb = Vec::new();
    let mut arp = Vec::new();

    // Ours but not wanted.
    for link in &observed.links {
        let wanted = match OwnedDevice::from_name(&link.name) {
            None => continue,
            Some(OwnedDevice::Bridge(vni)) | Some(OwnedDevice::Vxlan(vni)) => {
                desired.networks.contains_key(&vni)
            }
        };
        if !wanted {
            deletes.push(Action::DeleteLink {
                name: link.name.clone(),
            });
        }
    }

    for (&vni, net) in &desired.networks {
        let br = vni.bridge_name();
        let vx = vni.vxlan_name();

        match by_name.get(br.as_str()) {
            Some(link) if link.kind == LinkKind::Bridge => {
                if link.mtu != net.mtu || !link.up || link.controller.is_some() {
                    sets.push(Action::SetLink {
                        name: br.clone(),
                        mtu: net.mtu,
                        bridge: None,
                    });
                }
            }
            found => {
                if found.is_some() {
                    deletes.push(Action::DeleteLink { name: br.clone() });
                }
                creates.push(Action::CreateBridge {
                    name: br.clone(),
                    mtu: net.mtu,
                });
            }
        }
        let bridge_index = by_name
            .get(br.as_str())
            .filter(|l| l.kind == LinkKind::Bridge)
            .map(|l| l.index);

        let want_vx = VxlanParams {
            vni: vni.get(),
            local: Some(desired.underlay.local_vtep),
            port: desired.underlay.vxlan_port,
            learning: false,
        };
        let create_vx = Action::CreateVxlan {
            name: vx.clone(),
            vni,
            local: desired.underlay.local_vtep,
            port: desired.underlay.vxlan_port,
            mtu: net.mtu,
            bridge: br.clone(),
        };
        let vx_index = match by_name.get(vx.as_str()) {
            Some(link) if link.kind == LinkKind::Vxlan(want_vx.clone()) => {
                if link.mtu != net.mtu
                    || !link.up
                    || bridge_index.is_none()
                    || link.controller != bridge_index
                {
                    sets.push(Action::SetLink {
                        name: vx.clone(),
                        mtu: net.mtu,
                        bridge: Some(br.clone()),
                    });
                }
                Some(link.index)
            }
            found => {
                if found.is_some() {
                    deletes.push(Action::DeleteLink { name: vx.clone() });
                }
                creates.push(create_vx);
                // A new device starts with an empty FDB.
                None
            }
        };

        // Ports.
        for port in &net.ports {
            match by_name.get(port.as_str()) {
                None => ports.push(Action::PortMissing {
                    port: port.clone(),
                    vni,
                }),
                Some(link) => {
                    if bridge_index.is_none()
                        || link.controller != bridge_index
                        || link.mtu != net.mtu
                        || !link.up
                    {
                        ports.push(Action::SetLink {
                            name: port.clone(),
                            mtu: net.mtu,
                            bridge: Some(br.clone()),
                        });
                    }
                }
            }
        }
        if let Some(bi) = bridge_index {
            for link in observed.links.iter().filter(|l| l.controller == Some(bi)) {
                if link.name == vx || net.ports.contains(&link.name) {
                    continue;
                }
                let adopted = desired
                    .adopt_port_prefix
                    .as_deref()
                    .is_some_and(|p| link.name.starts_with(p));
                if !adopted {
                    ports.push(Action::DetachPort {
                        name: link.name.clone(),
                    });
                } else if link.mtu != net.mtu || !link.up {
                    ports.push(Action::SetLink {
                        name: link.name.clone(),
                        mtu: net.mtu,
                        bridge: Some(br.clone()),
                    });
                }
            }
        }

        // FDB on the VXLAN device.
        let mut want: BTreeSet<(MacAddr, Ipv4Addr)> =
            net.vteps.iter().map(|v| (MacAddr::ZERO, *v)).collect();
        want.extend(net.macs.iter().map(|(m, v)| (*m, *v)));
        let have: BTreeSet<(MacAddr, Ipv4Addr)> = match vx_index {
            Some(ix) => observed
                .fdb
                .iter()
                .filter(|e| e.ifindex == ix)
                .map(|e| (e.mac, e.dst))
                .collect(),
            None => BTreeSet::new(),
        };
        for &(mac, dst) in have.difference(&want) {
            // A unicast MAC that moved is replaced in place by its AddFdb.
            let moved = mac != MacAddr::ZERO && net.macs.contains_key(&mac);
            if !moved {
                fdb.push(Action::DelFdb {
                    vxlan: vx.clone(),
                    mac,
                    dst,
                });
            }
        }
        for &(mac, dst) in want.difference(&have) {
            fdb.push(Action::AddFdb {
                vxlan: vx.clone(),
                mac,
                dst,
            });
        }

        // ARP for remote addresses answered by the bridge: the VXLAN port suppressed, each
        // remote MAC static behind it, each remote address a permanent neighbour.
        let suppressed =
            vx_index.is_some() && by_name.get(vx.as_str()).is_some_and(|l| l.neigh_suppress);
        if !suppressed {
            arp.push(Action::SuppressArp { port: vx.clone() });
        }
        let have: BTreeSet<MacAddr> = observed
            .static_fdb
            .iter()
            .filter(|e| Some(e.ifindex) == vx_index)
            .map(|e| e.mac)
            .collect();
        let want: BTreeSet<MacAddr> = net.macs.keys().copied().collect();
        for &mac in have.difference(&want) {
            arp.push(Action::DelStaticFdb {
                vxlan: vx.clone(),
                mac,
            });
        }
        for &mac in want.difference(&have) {
            arp.push(Action::AddStaticFdb {
                vxlan: vx.clone(),
                mac,
            });
        }
        let have: BTreeMap<Ipv4Addr, MacAddr> = observed
            .neighbours
            .iter()
            .filter(|n| bridge_index.is_some() && Some(n.ifindex) == bridge_index)
            .map(|n| (n.ip, n.mac))
            .collect();
        for (&ip, &mac) in &have {
            if !net.neighbours.contains_key(&ip) {
                arp.push(Action::DelNeighbour {
                    bridge: br.clone(),
                    ip,
                    mac,
                });
            }
        }
        for (&ip, &mac) in &net.neighbours {
            if have.get(&ip) != Some(&mac) {
                arp.push(Action::AddNeighbour {
                    bridge: br.clone(),
                    ip,
                    mac,
                });
            }
        }
    }

    let mut out = deletes;
    out.extend(creates);
    out.extend(sets);
    out.extend(ports);
    out.extend(fdb);
    out.extend(arp);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DEFAULT_VXLAN_PORT, DesiredNode, NodeNetwork, RemotePeer, Underlay};

    const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const PEER2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn vni(v: u32) -> Vni {
        Vni::new(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn desired(ports: &[&str], peers: Vec<RemotePeer>) -> ValidNode {
        DesiredNode {
            underlay: Underlay {
                local_vtep: LOCAL,
                vxlan_port: DEFAULT_VXLAN_PORT,
            },
            networks: vec![NodeNetwork {
                vni: vni(100),
                mtu: 1450,
                ports: ports.iter().map(|p| p.to_string()).collect(),
                peers,
            }],
            adopt_port_prefix: None,
        }
        .validate()
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn link(index: u32, name: &str, kind: LinkKind, controller: Option<u32>) -> ObservedLink {
        ObservedLink {
            index,
            name: name.into(),
            kind,
            mtu: 1450,
            up: true,
            controller,
            neigh_suppress: false,
        }
    }

    fn good_vxlan() -> LinkKind {
        LinkKind::Vxlan(VxlanParams {
            vni: 100,
            local: Some(LOCAL),
            port: DEFAULT_VXLAN_PORT,
            learning: false,
        })
    }

    /// The kernel state `desired(&["tap0"], [PEER with MAC])` converges to.
    fn converged() -> Observed {
        Observed {
            links: vec![
                link(1, "lo", LinkKind::Other, None),
                link(10, "ncbr100", LinkKind::Bridge, None),
                ObservedLink {
                    neigh_suppress: true,
                    ..link(11, "ncvx100", good_vxlan(), Some(10))
                },
                link(12, "tap0", LinkKind::Other, Some(10)),
            ],
            fdb: vec![
                FdbEntry {
                    ifindex: 11,
                    mac: MacAddr::ZERO,
                    dst: PEER,
                },
                FdbEntry {
                    ifindex: 11,
                    mac: MAC,
                    dst: PEER,
                },
            ],
            static_fdb: vec![StaticFdbEntry {
                ifindex: 11,
                mac: MAC,
            }],
            neighbours: vec![],
        }
    }

    fn peer(vtep: Ipv4Addr, macs: Vec<MacAddr>) -> RemotePeer {
        RemotePeer {
            vtep,
            macs,
            addresses: vec![],
        }
    }

    #[test]
    fn empty_kernel_gets_everything_in_order() {
        let observed = Observed {
            links: vec![link(12, "tap0", LinkKind::Other, None)],
            ..Default::default()
        };
        let actions = plan(&desired(&["tap0"], vec![peer(PEER, vec![MAC])]), &observed);
        let text: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            text,
            [
                "create bridge ncbr100 mtu 1450",
                "create vxlan ncvx100 id 100 local 198.18.0.1 dstport 4789 mtu 1450 master ncbr100",
                "set tap0 mtu 1450 master ncbr100 up",
                "fdb add 00:00:00:00:00:00 dev ncvx100 dst 198.18.0.2",
                "fdb add 02:00:00:00:00:01 dev ncvx100 dst 198.18.0.2",
                "set ncvx100 neigh_suppress on",
                "fdb replace 02:00:00:00:00:01 dev ncvx100 master static",
            ]
        );
    }

    #[test]
    fn remote_addresses_become_neighbours_and_static_entries_and_nothing_else_stays() {
        const MAC2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
        const GONE: MacAddr = MacAddr([2, 0, 0, 0, 0, 3]);
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let old_ip = Ipv4Addr::new(10, 0, 0, 9);
        let d = desired(
            &["tap0"],
            vec![RemotePeer {
                vtep: PEER,
                macs: vec![MAC, MAC2],
                addresses: vec![(ip, MAC)],
            }],
        );
        let mut observed = converged();
        observed.fdb.push(FdbEntry {
            ifindex: 11,
            mac: MAC2,
            dst: PEER,
        });
        // A MAC no longer remote (its VM is gone or moved here), and a static entry on a
        // tap, which is not ours to manage.
        observed.static_fdb.push(StaticFdbEntry {
            ifindex: 11,
            mac: GONE,
        });
        observed.static_fdb.push(StaticFdbEntry {
            ifindex: 12,
            mac: MAC2,
        });
        // An address no longer wanted, and the wanted one with another MAC; one on a
        // foreign device.
        observed.neighbours = vec![
            NeighbourEntry {
                ifindex: 10,
                ip: old_ip,
                mac: MAC2,
            },
            NeighbourEntry {
                ifindex: 10,
                ip,
                mac: MAC2,
            },
            NeighbourEntry {
                ifindex: 1,
                ip: old_ip,
                mac: MAC2,
            },
        ];
        let text: Vec<String> = plan(&d, &observed).iter().map(|a| a.to_string()).collect();
        assert_eq!(
            text,
            [
                "fdb del 02:00:00:00:00:03 dev ncvx100 master",
                "fdb replace 02:00:00:00:00:02 dev ncvx100 master static",
                "neigh del 10.0.0.9 lladdr 02:00:00:00:00:02 dev ncbr100",
                "neigh replace 10.0.0.5 lladdr 02:00:00:00:00:01 dev ncbr100 nud permanent",
            ]
        );
        // Once there, nothing more.
        observed.static_fdb = vec![
            StaticFdbEntry {
                ifindex: 11,
                mac: MAC,
            },
            StaticFdbEntry {
                ifindex: 11,
                mac: MAC2,
            },
        ];
        observed.neighbours = vec![NeighbourEntry {
            ifindex: 10,
            ip,
            mac: MAC,
        }];
        assert_eq!(plan(&d, &observed), vec![]);
    }

    #[test]
    fn converged_state_plans_nothing() {
        let d = desired(&["tap0"], vec![peer(PEER, vec![MAC])]);
        assert_eq!(plan(&d, &converged()), vec![]);
    }

    #[test]
    fn undesired_network_is_deleted_and_foreign_links_are_left_alone() {
        let d = DesiredNode {
            underlay: Underlay {
                local_vtep: LOCAL,
                vxlan_port: DEFAULT_VXLAN_PORT,
            },
            networks: vec![],
            adopt_port_prefix: None,
        }
        .validate()
        .unwrap_or_else(|e| panic!("{e}"));
        let mut observed = converged();
        observed.links.push(link(20, "br0", LinkKind::Bridge, None));
        observed
            .links
            .push(link(21, "ncbr007", LinkKind::Bridge, None));
        let actions = plan(&d, &observed);
        assert_eq!(
            actions,
            vec![
                Action::DeleteLink {
                    name: "ncbr100".into()
                },
                Action::DeleteLink {
                    name: "ncvx100".into()
                },
            ]
        );
    }

    #[test]
    fn vxlan_with_wrong_fixed_attributes_is_recreated() {
        let d = desired(&["tap0"], vec![peer(PEER, vec![MAC])]);
        let mut observed = converged();
        observed.links[2].kind = LinkKind::Vxlan(VxlanParams {
            vni: 100,
            local: Some(LOCAL),
            port: DEFAULT_VXLAN_PORT,
            learning: true,
        });
        let actions = plan(&d, &observed);
        assert_eq!(
            actions[0],
            Action::DeleteLink {
                name: "ncvx100".into()
            }
        );
        assert!(matches!(actions[1], Action::CreateVxlan { .. }));
        // Its FDB went with it: both entries are added again.
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::AddFdb { .. }))
                .count(),
            2
        );
    }

    #[test]
    fn moved_mac_is_replaced_and_gone_peer_removed() {
        // MAC moved from PEER to PEER2; PEER has no more ports of this network.
        let d = desired(&["tap0"], vec![peer(PEER2, vec![MAC])]);
        let actions = plan(&d, &converged());
        assert_eq!(
            actions,
            vec![
                Action::DelFdb {
                    vxlan: "ncvx100".into(),
                    mac: MacAddr::ZERO,
                    dst: PEER
                },
                Action::AddFdb {
                    vxlan: "ncvx100".into(),
                    mac: MacAddr::ZERO,
                    dst: PEER2
                },
                Action::AddFdb {
                    vxlan: "ncvx100".into(),
                    mac: MAC,
                    dst: PEER2
                },
            ]
        );
    }

    #[test]
    fn adopted_taps_stay_on_the_bridge_and_get_its_mtu() {
        let mut d = desired(&[], vec![]);
        d.adopt_port_prefix = Some("nctap".into());
        let vni = Vni::new(100).unwrap_or_else(|e| panic!("{e}"));
        let bridge = ObservedLink {
            index: 10,
            name: vni.bridge_name(),
            kind: LinkKind::Bridge,
            mtu: 1450,
            up: true,
            controller: None,
            neigh_suppress: false,
        };
        let tap = |name: &str, mtu| ObservedLink {
            index: 20,
            name: name.into(),
            kind: LinkKind::Other,
            mtu,
            up: true,
            controller: Some(10),
            neigh_suppress: false,
        };
        let observed = Observed {
            links: vec![bridge, tap("nctap3", 1500), tap("eth9", 1450)],
            ..Default::default()
        };
        let actions = plan(&d, &observed);
        assert!(actions.contains(&Action::SetLink {
            name: "nctap3".into(),
            mtu: 1450,
            bridge: Some(vni.bridge_name()),
        }));
        assert!(actions.contains(&Action::DetachPort {
            name: "eth9".into()
        }));
        assert!(!actions.contains(&Action::DetachPort {
            name: "nctap3".into()
        }));
    }

    #[test]
    fn unwanted_port_is_detached_and_missing_port_reported() {
        let d = desired(&["tap1"], vec![peer(PEER, vec![MAC])]);
        let actions = plan(&d, &converged());
        assert_eq!(
            actions,
            vec![
                Action::PortMissing {
                    port: "tap1".into(),
                    vni: vni(100)
                },
                Action::DetachPort {
                    name: "tap0".into()
                },
            ]
        );
    }

    #[test]
    fn mtu_drift_is_fixed_in_place() {
        let d = desired(&["tap0"], vec![peer(PEER, vec![MAC])]);
        let mut observed = converged();
        observed.links[1].mtu = 1500;
        observed.links[3].up = false;
        let actions = plan(&d, &observed);
        assert_eq!(
            actions,
            vec![
                Action::SetLink {
                    name: "ncbr100".into(),
                    mtu: 1450,
                    bridge: None
                },
                Action::SetLink {
                    name: "tap0".into(),
                    mtu: 1450,
                    bridge: Some("ncbr100".into())
                },
            ]
        );
    }
}
