//! IP address management for overlay networks: which address of a network's subnet each
//! VM NIC holds. An address is a key of its own (`/novacron/ipam/<project>/<network>/<ip>`),
//! written in the same store transaction as the VM record and only if absent, so two
//! concurrent creates can never hold the same address; it is deleted with the VM record.
//!
//! The choice is a pure function ([`choose`]); [`commit_with_nics`] is the I/O around it:
//! read the taken addresses, choose, write with compare-and-swap, and choose again when a
//! concurrent create took the address first.

use crate::records::store_err;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use novacron_api_types::overlay::{Ipv4Cidr, Nic, NicRequest, OverlayNetwork, local_mac};
use novacron_api_types::{ApiError, ErrorCode};
use novacron_store::{Compare, Op, Revision, Store};
use serde::{Deserialize, Serialize};

use crate::records::{self, ROOT};

/// How often a create chooses again after losing an address to a concurrent one (each
/// time after a short random pause, so a crowd of creates spreads out instead of colliding
/// again in lockstep).
const ATTEMPTS: usize = 64;

/// Every address key of a network ends under this prefix.
pub fn address_prefix(project: &str, network: &str) -> String {
    format!("{ROOT}ipam/{project}/{network}/")
}

/// The key that holds `ip` on network `project/network`.
pub fn address_key(project: &str, network: &str, ip: Ipv4Addr) -> String {
    format!("{}{ip}", address_prefix(project, network))
}

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    /// `project/vm`.
    pub vm: String,
    pub mac: String,
}

/// Why no address could be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("{ip} is not in subnet {subnet} of network {network}: choose an address in {subnet}")]
    OutsideSubnet {
        ip: Ipv4Addr,
        subnet: Ipv4Cidr,
        network: String,
    },
    #[error(
        "{ip} is reserved on network {network} ({what}): choose another address or leave --ip out"
    )]
    Reserved {
        ip: Ipv4Addr,
        network: String,
        what: &'static str,
    },
    #[error("{ip} is already taken on network {network}: choose another address or leave --ip out")]
    Taken { ip: Ipv4Addr, network: String },
    #[error(
        "network {network} has no free address left in {subnet}: delete VMs on it or use a wider network"
    )]
    Exhausted { network: String, subnet: Ipv4Cidr },
}

impl From<IpamError> for ApiError {
    fn from(e: IpamError) -> Self {
        let code = match e {
            IpamError::OutsideSubnet { .. } | IpamError::Reserved { .. } => {
                ErrorCode::InvalidArgument
            }
            IpamError::Taken { .. } => ErrorCode::Conflict,
            IpamError::Exhausted { .. } => ErrorCode::NoCapacity,
        };
        ApiError::new(code, e.to_string())
    }
}

/// The address for a NIC: `requested` when it is a free host address of the subnet other
/// than the gateway, otherwise (nothing requested) the lowest such free address.
pub fn choose(
    network: &str,
    subnet: Ipv4Cidr,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    if let Some(ip) = requested {
        if !subnet.contains(ip) {
            return Err(IpamError::OutsideSubnet {
                ip,
                subnet,
                network: network.into(),
            });
        }
        let what = if ip == subnet.network() {
            Some("the network address")
        } else if ip == subnet.broadcast() {
            Some("the broadcast address")
        } else if ip == gateway {
            Some("the gateway")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(IpamError::Reserved {
                ip,
                network: network.into(),
                what,
            });
        }
        if used.contains(&ip) {
            return Err(IpamError::Taken {
                ip,
                network: network.into(),
            });
        }
        return Ok(ip);
    }
    let first = u32::from(subnet.network()) + 1;
    let last = u32::from(subnet.broadcast()) - 1;
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| *ip != gateway && !used.contains(ip))
        .ok_or_else(|| IpamError::Exhausted {
            network: network.into(),
            subnet,
        })
}

pub fn random_mac() -> String {
    let mut b = [0u8; 5];
    // The system generator does not fail on Linux; a zero MAC tail would still be valid.
    let _ = aws_lc_rs::rand::fill(&mut b);
    local_mac(b)
}

/// Addresses taken on a network.
async fn used(
    store: &dyn Store,
    project: &str,
    network: &str,
) -> Result<BTreeSet<Ipv4Addr>, ApiError> {
    let prefix = address_prefix(project, network);
    let (kvs, _) = store.list(&prefix).await.map_err(store_err)?;
    Ok(kvs
        .iter()
        .filter_map(|kv| kv.key.strip_prefix(&prefix)?.parse().ok())
        .collect())
}

/// Reads network `project/name` and its revision (a create compares it, so a network
/// deleted meanwhile takes no new NIC).
async fn network(
    store: &dyn Store,
    project: &str,
    name: &str,
) -> Result<(OverlayNetwork, Revision), ApiError> {
    let kv = store
        .get(&records::network_key(project, name))
        .await
        .map_err(store_err)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no network {name:?} in project {project}: see `novacron network list`"
            ))
        })?;
    let n = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("network record {}: {e}", kv.key)))?;
    Ok((n, kv.mod_revision))
}

/// One NIC's address, chosen: the NIC, the compares that keep the choice valid (the
/// address still free, the network unchanged) and the write that takes it.
pub struct Planned {
    pub nic: Nic,
    pub key: String,
    pub compares: Vec<Compare>,
    pub op: Op,
}

/// Chooses the address and MAC of NIC request `req` on network `net` (at revision
/// `net_rev`) with `taken` addresses in use, for `owner` (`project/vm`).
fn plan(
    project: &str,
    owner: &str,
    req: &NicRequest,
    net: &OverlayNetwork,
    net_rev: Revision,
    taken: &BTreeSet<Ipv4Addr>,
) -> Result<Planned, ApiError> {
    let subnet: Ipv4Cidr = net
        .subnet
        .parse()
        .map_err(|e| ApiError::internal(format!("network {}: {e}", net.name)))?;
    let gateway: Ipv4Addr = net.gateway.parse().map_err(|_| {
        ApiError::internal(format!("network {}: bad gateway {}", net.name, net.gateway))
    })?;
    let requested = req
        .ip
        .as_deref()
        .map(|s| {
            s.trim().parse::<Ipv4Addr>().map_err(|_| {
                ApiError::invalid(format!("invalid --ip {s:?}: expected an IPv4 address"))
            })
        })
        .transpose()?;
    let ip = choose(&net.name, subnet, gateway, taken, requested)?;
    let mac = match &req.mac {
        Some(m) => novacron_api_types::overlay::parse_mac(m)
            .map_err(|e| ApiError::invalid(e.to_string()))?,
        None => random_mac(),
    };
    let key = address_key(project, &net.name, ip);
    let compares = vec![
        Compare::ModRevision {
            key: key.clone(),
            equals: 0,
        },
        Compare::ModRevision {
            key: records::network_key(project, &net.name),
            equals: net_rev,
        },
    ];
    let op = Op::Put {
        key: key.clone(),
        value: serde_json::to_vec(&AddressRecord {
            vm: owner.to_string(),
            mac: mac.clone(),
        })
        .map_err(|e| ApiError::internal(format!("encoding: {e}")))?,
    };
    Ok(Planned {
        nic: Nic {
            network: net.name.clone(),
            vni: net.vni,
            mac,
            ips: vec![ip.to_string()],
        },
        key,
        compares,
        op,
    })
}

/// The address of one more NIC of `owner` (`project/vm`), read from the store now: a
/// caller writes `op` with its own record under `compares`, and plans again when that
/// transaction fails (`typed_store::update` does).
pub async fn plan_one(
    store: &dyn Store,
    project: &str,
    owner: &str,
    req: &NicRequest,
) -> Result<Planned, ApiError> {
    let (net, rev) = network(store, project, &req.network).await?;
    let taken = used(store, project, &net.name).await?;
    plan(project, owner, req, &net, rev, &taken)
}

/// A created record and the NICs it was given.
pub struct Committed {
    pub nics: Vec<Nic>,
    pub revision: Revision,
}

/// Writes what `ops` makes of the NICs (the VM record and its operation) together with
/// an address per NIC request, in one transaction that also holds `compares`. Each address
/// key is compared absent, each network compared unchanged. When the transaction fails
/// because a concurrent writer took an address, the addresses are chosen again; when it
/// fails on the caller's own `compares`, the answer is `None`. An explicit address that is
/// outside the subnet, reserved or taken is an error and nothing is written.
pub async fn commit_with_nics(
    store: &dyn Store,
    project: &str,
    owner: &str,
    requests: &[NicRequest],
    compares: Vec<Compare>,
    ops: impl Fn(&[Nic]) -> Result<Vec<Op>, ApiError>,
) -> Result<Option<Committed>, ApiError> {
    let mut networks = Vec::with_capacity(requests.len());
    for r in requests {
        networks.push(network(store, project, &r.network).await?);
    }
    for attempt in 0..ATTEMPTS {
        let mut nics = Vec::with_capacity(requests.len());
        let mut all_compares = compares.clone();
        let mut address_ops = vec![];
        let mut address_keys = vec![];
        for (req, (net, net_rev)) in requests.iter().zip(&networks) {
            let taken = used(store, project, &net.name).await?;
            let planned = plan(project, owner, req, net, *net_rev, &taken)?;
            all_compares.extend(planned.compares);
            address_ops.push(planned.op);
            address_keys.push(planned.key);
            nics.push(planned.nic);
        }
        let mut all_ops = ops(&nics)?;
        all_ops.extend(address_ops);
        let out = store.txn(all_compares, all_ops).await.map_err(store_err)?;
        if out.succeeded {
            return Ok(Some(Committed {
                nics,
                revision: out.revision,
            }));
        }
        // Lost an address (choose again), a network changed (read it again), or the
        // caller's own compare failed (answer None).
        let mut address_lost = false;
        for k in &address_keys {
            address_lost |= store.get(k).await.map_err(store_err)?.is_some();
        }
        let mut network_changed = false;
        for (n, rev) in networks.iter_mut() {
            let (fresh, fresh_rev) = network(store, project, &n.name).await?;
            network_changed |= fresh_rev != *rev;
            *n = fresh;
            *rev = fresh_rev;
        }
        if !address_lost && !network_changed {
            return Ok(None);
        }
        crate::quota::back_off(attempt).await;
    }
    Err(ApiError::unavailable(
        "addresses on the network kept being taken while creating the VM: try again",
    ))
}

/// The deletes that free a VM's addresses (with its record).
pub fn release_ops(project: &str, nics: &[Nic]) -> Vec<Op> {
    nics.iter()
        .flat_map(|nic| {
            nic.ips.iter().filter_map(|ip| {
                Some(Op::Delete {
                    key: address_key(project, &nic.network, ip.parse().ok()?),
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Arc;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn network_broadcast_and_gateway_are_never_given() {
        let subnet = cidr("10.0.0.0/29");
        let gw = ip("10.0.0.1");
        let mut used = BTreeSet::new();
        let mut given = vec![];
        while let Ok(a) = choose("app", subnet, gw, &used, None) {
            used.insert(a);
            given.push(a.to_string());
        }
        assert_eq!(
            given,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        assert!(matches!(
            choose("app", subnet, gw, &used, None),
            Err(IpamError::Exhausted { .. })
        ));
        // A gateway elsewhere frees .1 and takes its own place.
        let gw = ip("10.0.0.6");
        assert_eq!(
            choose("app", subnet, gw, &BTreeSet::new(), None).unwrap(),
            ip("10.0.0.1")
        );
        for (req, what) in [
            ("10.0.0.0", "network"),
            ("10.0.0.7", "broadcast"),
            ("10.0.0.6", "gateway"),
        ] {
            let e = choose("app", subnet, gw, &BTreeSet::new(), Some(ip(req))).unwrap_err();
            assert!(matches!(e, IpamError::Reserved { .. }), "{req}: {e}");
            assert!(e.to_string().contains(what), "{e}");
        }
    }

    #[test]
    fn an_explicit_address_must_be_inside_and_free() {
        let subnet = cidr("10.0.0.0/24");
        let gw = ip("10.0.0.1");
        let used: BTreeSet<_> = [ip("10.0.0.9")].into();
        assert_eq!(
            choose("app", subnet, gw, &used, Some(ip("10.0.0.200"))).unwrap(),
            ip("10.0.0.200")
        );
        let e = choose("app", subnet, gw, &used, Some(ip("10.0.1.5"))).unwrap_err();
        assert!(matches!(e, IpamError::OutsideSubnet { .. }), "{e}");
        assert_eq!(ApiError::from(e).code, ErrorCode::InvalidArgument);
        let e = choose("app", subnet, gw, &used, Some(ip("10.0.0.9"))).unwrap_err();
        assert!(matches!(e, IpamError::Taken { .. }), "{e}");
        assert_eq!(ApiError::from(e).code, ErrorCode::Conflict);
    }

    async fn store_with_network(dir: &std::path::Path, subnet: &str) -> Arc<dyn Store> {
        let store = novacron_store::open_store(&novacron_store::StoreUrl::Sqlite(dir.join("s.db")))
            .await
            .unwrap();
        let net = OverlayNetwork {
            name: "app".into(),
            project: "default".into(),
            vni: 1000,
            subnet: subnet.into(),
            gateway: cidr(subnet).first_host().to_string(),
            nat: false,
            dhcp: true,
            dns: false,
            mtu: 1450,
            created_at: 0,
        };
        put(
            store.as_ref(),
            &records::network_key("default", "app"),
            serde_json::to_vec(&net).unwrap(),
        )
        .await;
        store
    }

    async fn put(store: &dyn Store, key: &str, value: Vec<u8>) {
        let out = store
            .txn(
                vec![],
                vec![Op::Put {
                    key: key.into(),
                    value,
                }],
            )
            .await
            .unwrap();
        assert!(out.succeeded);
    }

    fn request(ip: Option<&str>) -> NicRequest {
        NicRequest {
            network: "app".into(),
            ip: ip.map(Into::into),
            mac: None,
        }
    }

    /// `n` VM creates with one NIC each (VM `vm<i>` at `/test/vms/vm<i>`), all started at once.
    fn creates_at_once(
        store: &Arc<dyn Store>,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<Option<Committed>, ApiError>>> {
        (0..n)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key = format!("/test/vms/vm{i}");
                    commit_with_nics(
                        store.as_ref(),
                        "default",
                        &format!("default/vm{i}"),
                        &[request(None)],
                        vec![Compare::ModRevision {
                            key: key.clone(),
                            equals: 0,
                        }],
                        |nics| {
                            Ok(vec![Op::Put {
                                key: key.clone(),
                                value: serde_json::to_vec(nics).unwrap(),
                            }])
                        },
                    )
                    .await
                })
            })
            .collect()
    }

    /// A crowd of creates at once on a roomy network: every one gets an address of its own,
    /// none gives up (they all start choosing from the same lowest free address).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crowd_of_creates_all_get_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_network(dir.path(), "10.9.0.0/24").await;
        let tasks = creates_at_once(&store, 32);
        let mut given = BTreeSet::new();
        for t in tasks {
            let c = t.await.unwrap().unwrap_or_else(|e| panic!("{}", e.message));
            let c = c.expect("no compare of the caller failed");
            assert!(given.insert(c.nics[0].ips[0].clone()));
        }
        assert_eq!(given.len(), 32);
    }

    /// Many creates at once on a /29 (five free addresses): five win distinct addresses,
    /// the others are told the network is full; deleting frees an address again.
    #[tokio::test]
    async fn concurrent_creates_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_network(dir.path(), "10.9.0.0/29").await;
        let tasks = creates_at_once(&store, 9);
        let mut given = BTreeSet::new();
        let mut full = 0;
        let mut winners = vec![];
        for t in tasks {
            match t.await.unwrap() {
                Ok(Some(c)) => {
                    assert!(
                        given.insert(c.nics[0].ips[0].clone()),
                        "address given twice: {}",
                        c.nics[0].ips[0]
                    );
                    assert!(c.nics[0].mac.starts_with("02:"));
                    winners.push(c.nics);
                }
                Ok(None) => panic!("no compare of the caller failed"),
                Err(e) => {
                    assert_eq!(e.code, ErrorCode::NoCapacity, "{}", e.message);
                    full += 1;
                }
            }
        }
        assert_eq!(given.len(), 5, "{given:?}");
        assert_eq!(full, 4);
        assert!(
            !given.contains("10.9.0.1")
                && !given.contains("10.9.0.0")
                && !given.contains("10.9.0.7")
        );
        // Stored keys match what was given.
        assert_eq!(
            used(store.as_ref(), "default", "app").await.unwrap().len(),
            5
        );

        // Free one; the next create gets exactly it.
        let freed = winners[0].clone();
        store
            .txn(vec![], release_ops("default", &freed))
            .await
            .unwrap();
        let c = commit_with_nics(
            store.as_ref(),
            "default",
            "default/again",
            &[request(None)],
            vec![],
            |_| Ok(vec![]),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(c.nics[0].ips, freed[0].ips);

        // A taken explicit address writes nothing.
        let taken = winners[1][0].ips[0].clone();
        let e = commit_with_nics(
            store.as_ref(),
            "default",
            "default/x",
            &[request(Some(&taken))],
            vec![],
            |_| {
                Ok(vec![Op::Put {
                    key: "/test/vms/x".into(),
                    value: vec![],
                }])
            },
        )
        .await
        .err()
        .unwrap();
        assert_eq!(e.code, ErrorCode::Conflict, "{}", e.message);
        assert!(store.get("/test/vms/x").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_callers_failed_compare_is_not_an_address_race() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_network(dir.path(), "10.9.0.0/24").await;
        put(store.as_ref(), "/test/vms/exists", vec![1]).await;
        let out = commit_with_nics(
            store.as_ref(),
            "default",
            "default/exists",
            &[request(None)],
            vec![Compare::ModRevision {
                key: "/test/vms/exists".into(),
                equals: 0,
            }],
            |_| Ok(vec![]),
        )
        .await
        .unwrap();
        assert!(out.is_none());
        assert!(
            used(store.as_ref(), "default", "app")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
