//! Overlay networks in the control plane: create (request checks, name and subnet
//! conflicts in the project, a VNI unique in the cluster, all in one store transaction),
//! list, show, delete (refused while a VM uses the network). The API handlers
//! (`api::networks`) parse and delegate here; the decisions are pure functions below.
//!
//! Concurrency: every create and delete in a project rewrites the project's guard key
//! ([`records::network_guard_key`]) and compares it, so two creates cannot both pass the
//! overlap check against the same old list; the VNI key ([`records::vni_key`]) is
//! created only if absent, so two projects cannot take the same VNI.

use crate::records::store_err;
use std::collections::BTreeSet;

use novacron_api_types::overlay::{
    CheckedNetwork, NetworkCreateRequest, NodeOverlay, NodeOverlayNetwork, OverlayEndpoint,
    OverlayNetwork, OverlayPeer,
};
use novacron_api_types::{ApiError, ErrorCode, validate_name};
use novacron_store::{Compare, Op};

use crate::records::{
    self, NetworkRecord, VmRecord, VniRecord, network_guard_key, network_key, vni_key,
};
use crate::state::AppState;

/// VNIs handed out start here, leaving the low range for networks built by hand.
pub const FIRST_VNI: u32 = 1000;
/// The 24-bit VNI field's largest value.
pub const LAST_VNI: u32 = (1 << 24) - 1;
/// How often a create or delete retries when another one changed the project meanwhile.
const ATTEMPTS: usize = 8;

/// Why `new` cannot join `existing` (the networks of its project): its name is taken
/// (409 already_exists) or its subnet overlaps one (409 conflict).
pub fn conflicts(new: &CheckedNetwork, existing: &[OverlayNetwork]) -> Result<(), ApiError> {
    for other in existing.iter().filter(|n| n.project == new.project) {
        if other.name == new.name {
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!(
                    "network {} already exists in project {} (subnet {}): choose another name or delete it first",
                    other.name, other.project, other.subnet
                ),
            ));
        }
        let Ok(subnet) = other
            .subnet
            .parse::<novacron_api_types::overlay::Ipv4Cidr>()
        else {
            continue; // a stored subnet always parses; an unreadable one blocks nothing
        };
        if subnet.overlaps(&new.subnet) {
            return Err(ApiError::conflict(format!(
                "subnet {} overlaps network {} ({subnet}) in project {}: choose a subnet that does not overlap",
                new.subnet, other.name, other.project
            )));
        }
    }
    Ok(())
}

/// The lowest free VNI from [`FIRST_VNI`], or None when all are taken.
pub fn next_vni(used: &BTreeSet<u32>) -> Option<u32> {
    let mut candidate = FIRST_VNI;
    for &v in used.range(FIRST_VNI..) {
        if v != candidate {
            break;
        }
        candidate = candidate.checked_add(1)?;
    }
    (candidate <= LAST_VNI).then_some(candidate)
}

/// Whether `vm` has a NIC on network `project/name`.
pub fn vm_uses_network(vm: &VmRecord, project: &str, name: &str) -> bool {
    vm.project == project && vm.overlay_networks().any(|n| n == name)
}

/// Refuses (409) an explicit `--mac` that a VM already has on the same network.
pub fn check_macs_free(
    state: &AppState,
    project: &str,
    requests: &[novacron_api_types::overlay::NicRequest],
) -> Result<(), ApiError> {
    for req in requests {
        let Some(mac) = &req.mac else { continue };
        let mac = novacron_api_types::overlay::parse_mac(mac)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let holder = state.vms.with(|vms| {
            vms.values()
                .find(|vm| {
                    vm_uses_network(vm, project, &req.network)
                        && vm
                            .overlay_nics()
                            .iter()
                            .any(|n| n.network == req.network && n.mac == mac)
                })
                .map(|vm| vm.name.clone())
        });
        if let Some(vm) = holder {
            return Err(ApiError::conflict(format!(
                "MAC {mac} is already used by VM {vm} on network {}: choose another --mac or leave it out",
                req.network
            )));
        }
    }
    Ok(())
}

/// The VMs (names) that use network `project/name`.
pub fn users(state: &AppState, project: &str, name: &str) -> Vec<String> {
    state.vms.with(|vms| {
        vms.values()
            .filter(|vm| vm_uses_network(vm, project, name))
            .map(|vm| vm.name.clone())
            .collect()
    })
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::internal(format!("encoding: {e}")))
}

async fn guard_revision(state: &AppState, project: &str) -> Result<i64, ApiError> {
    Ok(state
        .store
        .get(&network_guard_key(project))
        .await
        .map_err(store_err)?
        .map_or(0, |kv| kv.mod_revision))
}

/// Every network in the store, in (project, name) order.
async fn all(state: &AppState) -> Result<Vec<NetworkRecord>, ApiError> {
    let (kvs, _) = state
        .store
        .list(&records::network_prefix())
        .await
        .map_err(store_err)?;
    kvs.iter()
        .map(|kv| {
            serde_json::from_slice(&kv.value).map_err(|e| {
                ApiError::internal(format!("network record {} is unreadable: {e}", kv.key))
            })
        })
        .collect()
}

/// Creates a network: checks, a free VNI, one transaction.
pub async fn create(
    state: &AppState,
    req: &NetworkCreateRequest,
) -> Result<OverlayNetwork, ApiError> {
    let mut checked = req.check()?;
    if req.mtu.is_none() {
        checked.mtu = state
            .nodes
            .with(|nodes| default_mtu(nodes.values().map(|n| n.site.as_deref())));
    }
    for _ in 0..ATTEMPTS {
        // The guard first: any create or delete in the project after this read fails our
        // transaction, so the list below is what the overlap check must hold against.
        let guard = guard_revision(state, &checked.project).await?;
        // The project's usage record too: a project delete in between fails this create.
        let usage_rev = state
            .store
            .get(&crate::tenancy::usage_key(&checked.project))
            .await
            .map_err(store_err)?
            .map_or(0, |kv| kv.mod_revision);
        let existing = all(state).await?;
        conflicts(&checked, &existing)?;
        // The project's network limit, under the same guard as the overlap check.
        let (project, project_rev) = crate::quota::project(state, &checked.project).await?;
        let used = crate::quota::usage(state, &checked.project).await?;
        let one = novacron_api_types::tenancy::ProjectUsage {
            networks: 1,
            ..Default::default()
        };
        let after = crate::quota::check(&checked.project, &project.limits, &used, &one)?;
        let (vnis, _) = state
            .store
            .list(&records::vni_prefix())
            .await
            .map_err(store_err)?;
        let used: BTreeSet<u32> = vnis
            .iter()
            .filter_map(|kv| kv.key.rsplit('/').next()?.parse().ok())
            .collect();
        let vni = next_vni(&used).ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoCapacity,
                "every VNI is taken: delete unused networks",
            )
        })?;
        let network = OverlayNetwork {
            name: checked.name.clone(),
            project: checked.project.clone(),
            vni,
            subnet: checked.subnet.to_string(),
            gateway: checked.gateway.to_string(),
            nat: checked.nat,
            dhcp: checked.dhcp,
            dns: checked.dns,
            mtu: checked.mtu,
            created_at: records::now(),
        };
        let key = network_key(&network.project, &network.name);
        let outcome = state
            .store
            .txn(
                vec![
                    Compare::ModRevision {
                        key: key.clone(),
                        equals: 0,
                    },
                    Compare::ModRevision {
                        key: vni_key(vni),
                        equals: 0,
                    },
                    Compare::ModRevision {
                        key: network_guard_key(&network.project),
                        equals: guard,
                    },
                    Compare::ModRevision {
                        key: records::project_key(&network.project),
                        equals: project_rev,
                    },
                    Compare::ModRevision {
                        key: crate::tenancy::usage_key(&network.project),
                        equals: usage_rev,
                    },
                ],
                vec![
                    Op::Put {
                        key,
                        value: encode(&network)?,
                    },
                    Op::Put {
                        key: vni_key(vni),
                        value: encode(&VniRecord {
                            project: network.project.clone(),
                            network: network.name.clone(),
                        })?,
                    },
                    Op::Put {
                        key: network_guard_key(&network.project),
                        value: encode(&network.created_at)?,
                    },
                    Op::Put {
                        key: crate::tenancy::usage_key(&network.project),
                        value: encode(&after)?,
                    },
                ],
            )
            .await
            .map_err(store_err)?;
        if outcome.succeeded {
            tracing::info!(network = %network.name, project = %network.project, vni, subnet = %network.subnet, "network created");
            return Ok(network);
        }
    }
    Err(ApiError::unavailable(
        "networks in this project kept changing while creating it: try again",
    ))
}

/// Networks of `project`, or of every project when None.
pub async fn list(
    state: &AppState,
    project: Option<&str>,
) -> Result<Vec<OverlayNetwork>, ApiError> {
    if let Some(p) = project {
        validate_name("project", p).map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    Ok(all(state)
        .await?
        .into_iter()
        .filter(|n| project.is_none_or(|p| n.project == p))
        .collect())
}

fn not_found(project: &str, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "no network {name:?} in project {project}: see `novacron network list`"
    ))
}

pub async fn show(state: &AppState, project: &str, name: &str) -> Result<OverlayNetwork, ApiError> {
    validate_name("project", project).map_err(|e| ApiError::invalid(e.to_string()))?;
    validate_name("network", name).map_err(|e| ApiError::invalid(e.to_string()))?;
    let kv = state
        .store
        .get(&network_key(project, name))
        .await
        .map_err(store_err)?
        .ok_or_else(|| not_found(project, name))?;
    serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("network record {}: {e}", kv.key)))
}

/// Deletes network `project/name` and frees its VNI; refused while a VM uses it.
pub async fn delete(
    state: &AppState,
    project: &str,
    name: &str,
) -> Result<OverlayNetwork, ApiError> {
    validate_name("project", project).map_err(|e| ApiError::invalid(e.to_string()))?;
    validate_name("network", name).map_err(|e| ApiError::invalid(e.to_string()))?;
    for _ in 0..ATTEMPTS {
        let key = network_key(project, name);
        let kv = state
            .store
            .get(&key)
            .await
            .map_err(store_err)?
            .ok_or_else(|| not_found(project, name))?;
        let network: NetworkRecord = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("network record {key}: {e}")))?;
        let mut users = users(state, project, name);
        if users.is_empty() {
            // Addresses are written with their VM record: one held by a VM the cache has
            // not seen yet counts too.
            let (held, _) = state
                .store
                .list(&crate::ipam::address_prefix(project, name))
                .await
                .map_err(store_err)?;
            users = held
                .iter()
                .filter_map(|kv| {
                    serde_json::from_slice::<crate::ipam::AddressRecord>(&kv.value).ok()
                })
                .map(|a| a.vm.rsplit('/').next().unwrap_or(&a.vm).to_string())
                .collect();
        }
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "network {name} is in use by VM(s) {}: delete them or detach their NICs first",
                users.join(", ")
            )));
        }
        let guard = guard_revision(state, project).await?;
        let outcome = state
            .store
            .txn(
                vec![
                    Compare::ModRevision {
                        key: key.clone(),
                        equals: kv.mod_revision,
                    },
                    Compare::ModRevision {
                        key: network_guard_key(project),
                        equals: guard,
                    },
                ],
                vec![
                    Op::Delete { key },
                    Op::Delete {
                        key: vni_key(network.vni),
                    },
                    Op::Put {
                        key: network_guard_key(project),
                        value: encode(&records::now())?,
                    },
                ],
            )
            .await
            .map_err(store_err)?;
        if outcome.succeeded {
            tracing::info!(network = %name, project = %project, vni = network.vni, "network deleted");
            return Ok(network);
        }
    }
    Err(ApiError::unavailable(
        "the network kept changing while deleting it: try again",
    ))
}

/// The overlay data plane of `node`: every network a VM placed on it uses, with the NICs
/// of its VMs there (`local`) and, per other node with VMs on the network, that node's
/// VTEP and NICs (`peers`: the FDB entries and flood list). Nodes without a VTEP are left
/// out (they cannot be reached over VXLAN).
pub fn node_overlay(
    node: &str,
    vms: &[std::sync::Arc<VmRecord>],
    networks: &[OverlayNetwork],
    nodes: &std::collections::BTreeMap<String, OverlayNode>,
) -> Vec<NodeOverlayNetwork> {
    let endpoint = |vm: &VmRecord, nic: &novacron_api_types::overlay::Nic| OverlayEndpoint {
        vm: vm.name.clone(),
        mac: nic.mac.clone(),
        ips: nic.ips.clone(),
        security_groups: vec![],
        bandwidth_bps: None,
    };
    let mut out = vec![];
    for net in networks {
        let on_net = |vm: &&std::sync::Arc<VmRecord>| vm_uses_network(vm, &net.project, &net.name);
        let nic_of = |vm: &VmRecord| {
            vm.overlay_nics()
                .into_iter()
                .find(|n| n.network == net.name)
        };
        // A VM migrating here is local already: its tap must exist before the switch-over.
        // Until then its MAC has no entry here, so frames to it flood to every peer.
        let here = |vm: &VmRecord| vm.node == node || vm.migrating_to.as_deref() == Some(node);
        let local: Vec<OverlayEndpoint> = vms
            .iter()
            .filter(on_net)
            .filter(|vm| here(vm))
            .filter_map(|vm| {
                nic_of(vm).map(|n| OverlayEndpoint {
                    security_groups: vm.security_groups.clone(),
                    bandwidth_bps: vm.bandwidth_bps,
                    ..endpoint(vm, &n)
                })
            })
            .collect();
        if local.is_empty() {
            continue;
        }
        let mut peers: std::collections::BTreeMap<&str, Vec<OverlayEndpoint>> = Default::default();
        for vm in vms.iter().filter(on_net).filter(|vm| !here(vm)) {
            if let Some(nic) = nic_of(vm) {
                peers
                    .entry(vm.node.as_str())
                    .or_default()
                    .push(endpoint(vm, &nic));
            }
        }
        out.push(NodeOverlayNetwork {
            project: net.project.clone(),
            name: net.name.clone(),
            vni: net.vni,
            mtu: net.mtu,
            subnet: net.subnet.clone(),
            gateway: net.gateway.clone(),
            dhcp: net.dhcp,
            nat: net.nat,
            dns: net.dns,
            local,
            peers: peers
                .into_iter()
                .filter_map(|(node, endpoints)| {
                    let peer = nodes.get(node)?;
                    Some(OverlayPeer {
                        node: node.to_string(),
                        vtep: peer.vtep.clone(),
                        endpoints,
                        site: peer.site.clone(),
                        tunnel: peer.tunnel.clone(),
                    })
                })
                .collect(),
        });
    }
    out
}

/// How the overlay reaches a node: its VTEP, its site, its end of the tunnel between sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayNode {
    pub vtep: String,
    pub site: Option<String>,
    pub tunnel: Option<novacron_api_types::overlay::TunnelEndpoint>,
}

/// The MTU of a network created without `--mtu`: small enough to cross the tunnel between
/// sites unfragmented once the cluster has nodes in more than one site (a node without a
/// site is in the default one).
pub fn default_mtu<'a>(sites: impl IntoIterator<Item = Option<&'a str>>) -> u32 {
    let distinct: BTreeSet<Option<&str>> = sites.into_iter().collect();
    if distinct.len() > 1 {
        novacron_api_types::overlay::DEFAULT_SITES_NETWORK_MTU
    } else {
        novacron_api_types::overlay::DEFAULT_NETWORK_MTU
    }
}

/// [`node_overlay`] over the control plane's current records.
pub async fn node_overlay_now(state: &AppState, node: &str) -> Result<NodeOverlay, ApiError> {
    // Each revision is read before what it covers: a change not in the answer is after it.
    let revision = state.vms.revision();
    let groups_revision = state.security_groups.revision();
    let vms = state.vms.values();
    let groups = state.security_groups.values();
    let networks = all(state).await?;
    let (site, nodes) = state.nodes.with(|nodes| {
        let site = nodes.get(node).and_then(|n| n.site.clone());
        let reachable = nodes
            .values()
            .filter_map(|n| {
                let peer = OverlayNode {
                    vtep: n.vtep_address.clone()?,
                    site: n.site.clone(),
                    tunnel: n.tunnel.clone(),
                };
                Some((n.name.clone(), peer))
            })
            .collect();
        (site, reachable)
    });
    let networks = node_overlay(node, &vms, &networks, &nodes);
    Ok(NodeOverlay {
        site,
        revision,
        groups_revision,
        security_groups: crate::security_groups::node_security(&networks, &groups, &vms),
        networks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(name: &str, subnet: &str) -> CheckedNetwork {
        NetworkCreateRequest {
            name: name.into(),
            project: None,
            subnet: subnet.into(),
            gateway: None,
            nat: false,
            dhcp: true,
            dns: false,
            mtu: None,
        }
        .check()
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn stored(name: &str, project: &str, subnet: &str) -> OverlayNetwork {
        OverlayNetwork {
            name: name.into(),
            project: project.into(),
            vni: FIRST_VNI,
            subnet: subnet.into(),
            gateway: String::new(),
            nat: false,
            dhcp: true,
            dns: false,
            mtu: 1450,
            created_at: 0,
        }
    }

    #[test]
    fn names_and_subnets_conflict_within_a_project_only() {
        let existing = [
            stored("app", "default", "10.10.0.0/24"),
            stored("db", "other", "10.20.0.0/16"),
        ];
        let e = conflicts(&checked("app", "10.99.0.0/24"), &existing).unwrap_err();
        assert_eq!(e.code, ErrorCode::AlreadyExists);
        let e = conflicts(&checked("web", "10.10.0.128/25"), &existing).unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(e.message.contains("overlaps network app"), "{}", e.message);
        // Another project's subnet may be reused: the VNI keeps them apart.
        assert!(conflicts(&checked("web", "10.20.1.0/24"), &existing).is_ok());
    }

    fn vm_on(
        name: &str,
        node: &str,
        network: &str,
        mac: &str,
        ip: &str,
    ) -> std::sync::Arc<VmRecord> {
        std::sync::Arc::new(VmRecord {
            name: name.into(),
            node: node.into(),
            network: novacron_api_types::Network::None,
            generation: 1,
            nics: vec![novacron_api_types::overlay::Nic {
                network: network.into(),
                vni: FIRST_VNI,
                mac: mac.into(),
                ips: vec![ip.into()],
            }],
            ..crate::records::example_vm(novacron_api_types::PowerState::Running)
        })
    }

    #[test]
    fn a_node_gets_the_networks_of_its_vms_and_where_the_others_are() {
        let app = OverlayNetwork {
            vni: FIRST_VNI,
            ..stored("app", "default", "10.10.0.0/24")
        };
        let db = OverlayNetwork {
            vni: FIRST_VNI + 1,
            ..stored("db", "default", "10.20.0.0/24")
        };
        let limited = |mut vm: std::sync::Arc<VmRecord>| {
            std::sync::Arc::make_mut(&mut vm).bandwidth_bps = Some(50_000_000);
            vm
        };
        let vms = vec![
            vm_on("a1", "n1", "app", "02:00:00:00:00:01", "10.10.0.2"),
            limited(vm_on("a2", "n2", "app", "02:00:00:00:00:02", "10.10.0.3")),
            vm_on("a3", "n3", "app", "02:00:00:00:00:03", "10.10.0.4"),
            vm_on("d1", "n2", "db", "02:00:00:00:00:04", "10.20.0.2"),
        ];
        let node = |vtep: &str, site: Option<&str>| OverlayNode {
            vtep: vtep.into(),
            site: site.map(str::to_string),
            tunnel: site.map(|_| novacron_api_types::overlay::TunnelEndpoint {
                public_key: "k".repeat(43) + "=",
                port: 51820,
            }),
        };
        let vteps: std::collections::BTreeMap<String, OverlayNode> = [
            ("n1".to_string(), node("198.18.0.1", None)),
            ("n2".to_string(), node("198.18.0.2", Some("east"))),
        ]
        .into();
        let view = node_overlay("n1", &vms, &[app.clone(), db.clone()], &vteps);
        // Only app: n1 has no VM on db.
        assert_eq!(view.len(), 1);
        assert_eq!(view[0].name, "app");
        assert_eq!(view[0].local.len(), 1);
        assert_eq!(view[0].local[0].vm, "a1");
        // n2 is a peer with a2's MAC; n3 has no VTEP, so it cannot be reached and is left out.
        assert_eq!(view[0].peers.len(), 1);
        assert_eq!(view[0].peers[0].vtep, "198.18.0.2");
        assert_eq!(view[0].peers[0].endpoints[0].mac, "02:00:00:00:00:02");
        // Its site and tunnel travel with it, for n1 to seal what it sends there.
        assert_eq!(view[0].peers[0].site.as_deref(), Some("east"));
        assert_eq!(
            view[0].peers[0].tunnel.as_ref().map(|t| t.port),
            Some(51820)
        );
        // A limit is the local node's business only.
        assert_eq!(view[0].peers[0].endpoints[0].bandwidth_bps, None);
        assert_eq!(view[0].local[0].bandwidth_bps, None);
        // n2 has both networks; on db it has no peer.
        let view = node_overlay("n2", &vms, &[app, db], &vteps);
        assert_eq!(view.len(), 2);
        assert_eq!(view[0].local[0].bandwidth_bps, Some(50_000_000));
        assert!(view[1].peers.is_empty());
        // A node with no VM has nothing.
        assert!(node_overlay("n9", &vms, &[], &vteps).is_empty());
    }

    #[test]
    fn networks_made_while_sites_differ_leave_room_for_the_tunnel() {
        use novacron_api_types::overlay::{DEFAULT_NETWORK_MTU, DEFAULT_SITES_NETWORK_MTU};
        assert_eq!(default_mtu([]), DEFAULT_NETWORK_MTU);
        assert_eq!(default_mtu([None, None]), DEFAULT_NETWORK_MTU);
        assert_eq!(default_mtu([Some("a"), Some("a")]), DEFAULT_NETWORK_MTU);
        assert_eq!(default_mtu([Some("a"), None]), DEFAULT_SITES_NETWORK_MTU);
        assert_eq!(
            default_mtu([Some("a"), Some("b")]),
            DEFAULT_SITES_NETWORK_MTU
        );
        assert_eq!(DEFAULT_SITES_NETWORK_MTU, 1390);
    }

    #[test]
    fn vnis_fill_the_lowest_gap() {
        assert_eq!(next_vni(&BTreeSet::new()), Some(FIRST_VNI));
        let used: BTreeSet<u32> = [5, FIRST_VNI, FIRST_VNI + 1, FIRST_VNI + 3].into();
        assert_eq!(next_vni(&used), Some(FIRST_VNI + 2));
        let full: BTreeSet<u32> = (FIRST_VNI..=LAST_VNI).collect();
        assert_eq!(next_vni(&full), None);
    }
}
