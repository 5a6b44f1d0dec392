//! `vm nic add | remove` as decisions over the VM's record, without I/O: whether a NIC may
//! be added or removed, the name and port it takes, and the record while the agent plugs
//! it (docs/nics.md). Added NICs share the VM's hot-plug ports with added disks and the
//! same in-flight marker ([`crate::disk_ops::DiskPlug`], named after the NIC), so one disk
//! or NIC change runs at a time and a live migration waits for it.

use novacron_api_types::nics::{AddedNic, NicLink};
use novacron_api_types::overlay::{Nic, NicRequest};
use novacron_api_types::{ApiError, Network, UnixSeconds, VmState};

use crate::disk_ops::{DiskPlug, PlugRefusal, check_pluggable, claim_port, not_stopped};
use crate::records::VmRecord;

/// Why a NIC may not be added or removed, as data; `Display` is the user's answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NicRefusal {
    #[error(transparent)]
    Plug(#[from] PlugRefusal),
    #[error(
        "VM {vm} already has a NIC on network {network} ({nic}): a VM has one NIC per overlay network"
    )]
    SameNetwork {
        vm: String,
        network: String,
        nic: String,
    },
    #[error("VM {vm} has no NIC {nic:?}: {}", removable_text(.vm, .added))]
    NoSuchNic {
        vm: String,
        nic: String,
        added: Vec<String>,
    },
    #[error(
        "{nic} of VM {vm} is one it was created with: only NICs added with `vm nic add` are removed"
    )]
    CreatedWith { vm: String, nic: String },
    #[error(
        "VM {vm} is {observed}: removing {nic} unplugs it from the running guest, which loses that network; add --force to do so, or stop the VM first"
    )]
    NeedsForce {
        vm: String,
        nic: String,
        observed: VmState,
    },
}

fn removable_text(vm: &str, added: &[String]) -> String {
    if added.is_empty() {
        format!("it has no added NICs (`novacron vm nic add {vm} ...` adds one)")
    } else {
        format!("its added NICs are {}", added.join(", "))
    }
}

impl From<NicRefusal> for ApiError {
    fn from(r: NicRefusal) -> ApiError {
        match r {
            NicRefusal::Plug(p) => p.into(),
            NicRefusal::NoSuchNic { .. } => ApiError::not_found(r.to_string()),
            NicRefusal::CreatedWith { .. } => ApiError::invalid(r.to_string()),
            NicRefusal::SameNetwork { .. } | NicRefusal::NeedsForce { .. } => {
                ApiError::conflict(r.to_string())
            }
        }
    }
}

impl From<NicRefusal> for crate::api::ApiFailure {
    fn from(r: NicRefusal) -> Self {
        crate::api::ApiFailure(r.into())
    }
}

/// How many NICs the VM was created with: `nic0` ... are theirs, added ones come after.
pub fn created_nics(rec: &VmRecord) -> usize {
    usize::from(!matches!(rec.network, Network::None)) + rec.nics.len()
}

/// The record with a NIC on `link` with `mac` added under `operation` (in the first free
/// hot-plug port, named after the lowest free `nic<N>` past those it was created with), and
/// that NIC; or why not.
pub fn begin_add(
    rec: &VmRecord,
    observed: VmState,
    link: NicLink,
    mac: &str,
    operation: &str,
    now: UnixSeconds,
) -> Result<(VmRecord, AddedNic), NicRefusal> {
    check_pluggable(rec, now)?;
    if let NicLink::Network { network, .. } = &link
        && let Some(i) = rec
            .overlay_nics()
            .iter()
            .position(|n| &n.network == network)
    {
        let nic = rec
            .added_nics
            .iter()
            .find(|n| n.overlay().is_some_and(|o| &o.network == network))
            .map(|n| n.name.clone())
            .unwrap_or_else(|| {
                format!(
                    "nic{}",
                    i + usize::from(!matches!(rec.network, Network::None))
                )
            });
        return Err(NicRefusal::SameNetwork {
            vm: rec.name.clone(),
            network: network.clone(),
            nic,
        });
    }
    let (mut next, port) = claim_port(rec, observed)?;
    let name = (created_nics(rec)..)
        .map(|n| format!("nic{n}"))
        .find(|n| !rec.added_nics.iter().any(|a| &a.name == n))
        .unwrap_or_else(|| format!("nic{}", created_nics(rec) + rec.added_nics.len()));
    let nic = AddedNic {
        name,
        port,
        mac: mac.to_string(),
        link,
    };
    next.added_nics.push(nic.clone());
    next.disk_plug = Some(DiskPlug {
        operation: operation.into(),
        disk: nic.name.clone(),
        attach: true,
        started_at: now,
    });
    Ok((next, nic))
}

/// The record with added NIC `nic` (its name or MAC) being removed under `operation`, and
/// that NIC; or why not (a running VM's only with `force`).
pub fn begin_remove(
    rec: &VmRecord,
    observed: VmState,
    nic: &str,
    force: bool,
    operation: &str,
    now: UnixSeconds,
) -> Result<(VmRecord, AddedNic), NicRefusal> {
    check_pluggable(rec, now)?;
    let vm = || rec.name.clone();
    let wanted = nic.trim().to_ascii_lowercase();
    let Some(found) = rec
        .added_nics
        .iter()
        .find(|n| n.name == wanted || n.mac == wanted)
        .cloned()
    else {
        let created = wanted
            .strip_prefix("nic")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n < created_nics(rec));
        if created {
            return Err(NicRefusal::CreatedWith {
                vm: vm(),
                nic: wanted,
            });
        }
        return Err(NicRefusal::NoSuchNic {
            vm: vm(),
            nic: nic.to_string(),
            added: rec.added_nics.iter().map(|n| n.name.clone()).collect(),
        });
    };
    if !force && let Some(observed) = not_stopped(rec, observed) {
        return Err(NicRefusal::NeedsForce {
            vm: vm(),
            nic: found.name.clone(),
            observed,
        });
    }
    let mut next = rec.clone();
    next.disk_plug = Some(DiskPlug {
        operation: operation.into(),
        disk: found.name.clone(),
        attach: false,
        started_at: now,
    });
    Ok((next, found))
}

/// Overlay NICs `before` had and `after` has not: their addresses are freed in the
/// transaction that writes `after`.
pub fn dropped_overlay_nics(
    before: &VmRecord,
    after: &VmRecord,
) -> Vec<novacron_api_types::overlay::Nic> {
    let kept = after.overlay_nics();
    before
        .overlay_nics()
        .into_iter()
        .filter(|n| !kept.contains(n))
        .collect()
}

/// The address requests for the overlay NICs among `shapes` (the added NICs of a VM being
/// cloned or restored), in order: new addresses, new MACs.
pub fn carried_requests(shapes: &[AddedNic]) -> Vec<NicRequest> {
    shapes
        .iter()
        .filter_map(|n| match &n.link {
            NicLink::Network { network, .. } => Some(NicRequest {
                network: network.clone(),
                ip: None,
                mac: None,
            }),
            NicLink::Bridge { .. } | NicLink::Nat => None,
        })
        .collect()
}

/// The added NICs `shapes` carried over to a new VM (a clone, a restore), so its machine has
/// the source's shape: the same names, ports and links; on overlay networks the NICs IPAM
/// gave for [`carried_requests`] (`overlay`, in order), elsewhere the new MACs `macs` (one
/// per shape, in order).
pub fn carried_nics(shapes: &[AddedNic], macs: &[String], overlay: &[Nic]) -> Vec<AddedNic> {
    let mut overlay = overlay.iter();
    shapes
        .iter()
        .zip(macs)
        .filter_map(|(n, mac)| {
            let (mac, link) = match &n.link {
                NicLink::Network { .. } => {
                    let o = overlay.next()?;
                    (
                        o.mac.clone(),
                        NicLink::Network {
                            network: o.network.clone(),
                            vni: o.vni,
                            ips: o.ips.clone(),
                        },
                    )
                }
                other => (mac.clone(), other.clone()),
            };
            Some(AddedNic {
                name: n.name.clone(),
                port: n.port,
                mac,
                link,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_nics_keep_names_ports_and_links_with_new_macs_and_addresses() {
        let shape = |name: &str, port, link| AddedNic {
            name: name.into(),
            port,
            mac: "02:00:00:00:00:01".into(),
            link,
        };
        let shapes = [
            shape("nic1", 3, NicLink::Nat),
            shape(
                "nic2",
                4,
                NicLink::Network {
                    network: "app".into(),
                    vni: 4100,
                    ips: vec!["10.0.0.5".into()],
                },
            ),
            shape(
                "nic3",
                5,
                NicLink::Bridge {
                    bridge: "br0".into(),
                },
            ),
        ];
        let requests = carried_requests(&shapes);
        assert_eq!(
            requests,
            vec![NicRequest {
                network: "app".into(),
                ip: None,
                mac: None
            }]
        );
        let macs: Vec<String> = (1..=3).map(|i| format!("02:aa:00:00:00:0{i}")).collect();
        let given = Nic {
            network: "app".into(),
            vni: 4100,
            mac: "02:bb:00:00:00:01".into(),
            ips: vec!["10.0.0.9".into()],
        };
        let carried = carried_nics(&shapes, &macs, std::slice::from_ref(&given));
        let names: Vec<(&str, u32, &str)> = carried
            .iter()
            .map(|n| (n.name.as_str(), n.port, n.mac.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("nic1", 3, "02:aa:00:00:00:01"),
                ("nic2", 4, "02:bb:00:00:00:01"),
                ("nic3", 5, "02:aa:00:00:00:03"),
            ]
        );
        assert_eq!(carried[1].overlay(), Some(given));
        assert_eq!(carried[0].link, NicLink::Nat);
    }
    use crate::disk_ops::{abandon_plug, disk_busy, finish_plug};
    use novacron_api_types::disks::DataDisk;

    fn vm() -> VmRecord {
        VmRecord {
            hotplug_ports: 4,
            ..crate::records::example_vm(novacron_api_types::PowerState::Running)
        }
    }

    fn nat() -> NicLink {
        NicLink::Nat
    }

    #[test]
    fn an_added_nic_takes_the_next_name_and_a_free_port() {
        let mut rec = vm();
        rec.data_disks.push(DataDisk {
            name: "disk1".into(),
            size_bytes: 1 << 20,
            port: 0,
            image: None,
        });
        let (next, nic) = begin_add(
            &rec,
            VmState::Running,
            nat(),
            "02:00:00:00:00:01",
            "op1",
            100,
        )
        .unwrap();
        // Created with user NAT: that is nic0.
        assert_eq!(nic.name, "nic1");
        assert_eq!(nic.port, 1);
        assert_eq!(next.added_nics, vec![nic.clone()]);
        assert_eq!(disk_busy(&next, 101), Some("op1"));
        // While it is plugged, nothing else starts.
        let e = begin_add(
            &next,
            VmState::Running,
            nat(),
            "02:00:00:00:00:02",
            "op2",
            101,
        )
        .unwrap_err();
        assert!(e.to_string().contains("operation op1"), "{e}");
        let done = finish_plug(&next, "op1", 200).unwrap();
        assert_eq!(done.added_nics.len(), 1);
        assert_eq!(done.nics_changed_at, Some(200), "a NIC change is dated");
        assert!(done.disk_plug.is_none());
        // A failed add leaves nothing.
        let undone = abandon_plug(&next, "op1").unwrap();
        assert!(undone.added_nics.is_empty());
        assert_eq!(crate::disk_ops::free_disk_slots(&done), 2);
    }

    #[test]
    fn ports_are_shared_with_disks_and_run_out() {
        let mut rec = vm();
        for i in 0..4 {
            let (next, _) = begin_add(
                &rec,
                VmState::Stopped,
                nat(),
                &format!("02:00:00:00:00:0{i}"),
                &format!("op{i}"),
                100,
            )
            .unwrap();
            rec = finish_plug(&next, &format!("op{i}"), 200).unwrap();
        }
        let names: Vec<&str> = rec.added_nics.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["nic1", "nic2", "nic3", "nic4"]);
        let e = begin_add(
            &rec,
            VmState::Stopped,
            nat(),
            "02:00:00:00:00:09",
            "op9",
            100,
        )
        .unwrap_err();
        assert!(e.to_string().contains("all its 4 hot-plug ports"), "{e}");
        let e = crate::disk_ops::begin_add(&rec, VmState::Stopped, 1 << 20, None, "op9", 100)
            .unwrap_err();
        assert!(e.to_string().contains("nic1, nic2, nic3, nic4"), "{e}");
    }

    #[test]
    fn one_nic_per_overlay_network() {
        let link = || NicLink::Network {
            network: "app".into(),
            vni: 10,
            ips: vec!["10.10.0.2".into()],
        };
        let (next, _) = begin_add(
            &vm(),
            VmState::Running,
            link(),
            "02:00:00:00:00:01",
            "op1",
            100,
        )
        .unwrap();
        let rec = finish_plug(&next, "op1", 200).unwrap();
        assert_eq!(rec.overlay_nics().len(), 1);
        let e = begin_add(
            &rec,
            VmState::Running,
            link(),
            "02:00:00:00:00:02",
            "op2",
            100,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("already has a NIC on network app (nic1)"),
            "{e}"
        );
    }

    #[test]
    fn removal_names_the_nic_and_needs_force_on_a_running_vm() {
        let (next, _) = begin_add(
            &vm(),
            VmState::Running,
            nat(),
            "02:00:00:00:00:01",
            "op1",
            100,
        )
        .unwrap();
        let rec = finish_plug(&next, "op1", 200).unwrap();
        let e = begin_remove(&rec, VmState::Running, "nic1", false, "op2", 100).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        let e = begin_remove(&rec, VmState::Running, "nic0", true, "op2", 100).unwrap_err();
        assert!(e.to_string().contains("created with"), "{e}");
        let e = begin_remove(&rec, VmState::Running, "nic7", true, "op2", 100).unwrap_err();
        assert!(e.to_string().contains("its added NICs are nic1"), "{e}");
        // By MAC too; the NIC leaves the record only once the agent took it out.
        let (removing, nic) = begin_remove(
            &rec,
            VmState::Running,
            "02:00:00:00:00:01",
            true,
            "op2",
            100,
        )
        .unwrap();
        assert_eq!(nic.name, "nic1");
        assert_eq!(removing.added_nics.len(), 1);
        assert!(abandon_plug(&removing, "op2").unwrap().added_nics.len() == 1);
        let removed = finish_plug(&removing, "op2", 200).unwrap();
        assert!(removed.added_nics.is_empty());
        let stopped = VmRecord {
            power: novacron_api_types::PowerState::Stopped,
            ..rec
        };
        let (_, nic) = begin_remove(&stopped, VmState::Stopped, "nic1", false, "op3", 100).unwrap();
        assert_eq!(nic.port, 0);
    }

    #[test]
    fn a_removed_overlay_nic_frees_its_address() {
        let link = NicLink::Network {
            network: "app".into(),
            vni: 10,
            ips: vec!["10.10.0.2".into()],
        };
        let (next, _) = begin_add(
            &vm(),
            VmState::Stopped,
            link,
            "02:00:00:00:00:01",
            "op1",
            100,
        )
        .unwrap();
        let rec = finish_plug(&next, "op1", 200).unwrap();
        let (removing, _) = begin_remove(&rec, VmState::Stopped, "nic1", true, "op2", 100).unwrap();
        let removed = finish_plug(&removing, "op2", 200).unwrap();
        let dropped = dropped_overlay_nics(&removing, &removed);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].ips, ["10.10.0.2"]);
        assert!(dropped_overlay_nics(&rec, &removing).is_empty());
    }
}
