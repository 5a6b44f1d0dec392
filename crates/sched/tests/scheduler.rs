//! Behaviour of the public scheduler API: placement, bookkeeping, host states, constraints,
//! no-fit messages, evacuation and rebalancing.
#![allow(clippy::unwrap_used)]

use novacron_sched::*;

fn dom(zone: &str, rack: &str) -> FailureDomain {
    FailureDomain {
        region: "r1".into(),
        zone: zone.into(),
        rack: rack.into(),
    }
}

fn host(name: &str, vcpus: u64, mem_gib: u64, zone: &str, rack: &str) -> HostSpec {
    HostSpec::new(
        name,
        Resources::new(vcpus, mem_gib * 1024, 1000),
        dom(zone, rack),
    )
}

fn req(vcpus: u64, mem_gib: u64) -> Request {
    Request::new(Resources::new(vcpus, mem_gib * 1024, 10))
}

fn sched(hosts: &[HostSpec]) -> Scheduler {
    let mut s = Scheduler::new(SchedulerConfig::default());
    for h in hosts {
        s.upsert_host(h.clone()).unwrap();
    }
    s
}

fn in_group(mut r: Request, name: &str, rules: Vec<GroupRule>) -> Request {
    r.groups.push(GroupMembership {
        name: name.into(),
        rules,
    });
    r
}

#[test]
fn place_commit_release_keep_accounts() {
    let mut s = sched(&[host("h1", 16, 64, "a", "k1"), host("h2", 16, 64, "a", "k1")]);
    let p = s.place_and_commit("vm-1", &req(4, 16)).unwrap();
    let h = s.host(&p.host).unwrap();
    assert_eq!(h.used, Resources::new(4, 16 * 1024, 10));
    assert_eq!(h.vms, 1);
    // Bin-packing: the second VM goes to the same host.
    let p2 = s.place_and_commit("vm-2", &req(4, 16)).unwrap();
    assert_eq!(p2.host, p.host);
    assert_eq!(
        s.stats(),
        FleetStats {
            hosts: 2,
            ready_hosts: 2,
            hosts_used: 1,
            vms: 2
        }
    );
    assert_eq!(s.vm_host("vm-2"), Some(p.host.as_str()));
    assert!(matches!(
        s.place_and_commit("vm-2", &req(1, 1)),
        Err(SchedError::VmExists(_))
    ));
    s.release("vm-1").unwrap();
    s.release("vm-2").unwrap();
    assert_eq!(s.host(&p.host).unwrap().used, Resources::default());
    assert!(matches!(s.release("vm-2"), Err(SchedError::UnknownVm(_))));
    s.verify_bookkeeping().unwrap();
}

#[test]
fn no_fit_names_binding_dimension_scope_and_best_host() {
    let mut hosts = vec![host("host-1", 64, 256, "a", "k1")];
    for i in 10..17 {
        hosts.push(host(&format!("host-{i}"), 64, 40, "b", "k2"));
    }
    let mut s = sched(&hosts);
    // host-17 has 64 GiB but already runs 16 GiB: 48 GiB free, the most in zone b.
    s.upsert_host(host("host-17", 64, 64, "b", "k3")).unwrap();
    s.commit("vm-0", "host-17", &req(2, 16)).unwrap();
    let mut r = req(8, 64);
    r.selectors.push(LabelSelector::eq("zone", "b"));
    let before = s.hosts();
    let err = s.place(&r).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no host has 64 GiB free memory in zone b; largest free: 48 GiB on host-17"
    );
    match err {
        SchedError::NoFit(nf) => {
            assert!(matches!(
                nf.binding,
                Binding::Capacity {
                    dimension: Dimension::Memory,
                    demand: 65536,
                    largest_free: 49152,
                    ..
                }
            ));
            // host-1 (zone a) was rejected by the selector, the zone-b hosts by capacity.
            assert!(
                nf.rejected_by.contains(&("selector".to_string(), 1)),
                "{:?}",
                nf.rejected_by
            );
        }
        other => panic!("{other:?}"),
    }
    // A failed place changes nothing.
    assert_eq!(s.hosts(), before);
}

#[test]
fn no_fit_exact_example_message() {
    let mut s = sched(&[
        host("host-3", 64, 256, "a", "k1"),
        host("host-17", 64, 64, "b", "k2"),
    ]);
    s.commit("vm-0", "host-17", &req(2, 16)).unwrap();
    let mut r = req(8, 64);
    r.selectors.push(LabelSelector::eq("zone", "b"));
    assert_eq!(
        s.place(&r).unwrap_err().to_string(),
        "no host has 64 GiB free memory in zone b; largest free: 48 GiB on host-17"
    );
}

#[test]
fn no_fit_combined_and_state_and_constraint_bindings() {
    let mut s = sched(&[host("h1", 4, 64, "a", "k1"), host("h2", 16, 8, "a", "k1")]);
    // 8 vCPU exist (h2) and 32 GiB exist (h1), never together.
    assert_eq!(
        s.place(&req(8, 32)).unwrap_err().to_string(),
        "no host has 8 vCPU, 32 GiB memory and 10 GiB disk free at once; closest: h1 with 4 vCPU, 64 GiB memory, 1000 GiB disk free"
    );
    // Anti-affinity binds once every host has a member.
    let aa = |r| in_group(r, "web", vec![GroupRule::anti_affinity(Level::Host, true)]);
    s.place_and_commit("web-1", &aa(req(1, 1))).unwrap();
    s.place_and_commit("web-2", &aa(req(1, 1))).unwrap();
    assert_ne!(s.vm_host("web-1"), s.vm_host("web-2"));
    let err = s.place(&aa(req(1, 1))).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("group web") && msg.contains("spread filter"),
        "{msg}"
    );
    // Cordon both: the state binds.
    s.set_host_state("h1", HostState::Cordoned).unwrap();
    s.set_host_state("h2", HostState::Down).unwrap();
    assert_eq!(
        s.place(&req(1, 1)).unwrap_err().to_string(),
        "no ready host: 1 cordoned, 0 draining, 1 down"
    );
    let empty = Scheduler::new(SchedulerConfig::default());
    assert_eq!(
        empty.place(&req(1, 1)).unwrap_err().to_string(),
        "no hosts registered"
    );
}

#[test]
fn cordon_drain_uncordon_and_evacuation_plan() {
    let mut s = sched(&[
        host("h1", 16, 64, "a", "k1"),
        host("h2", 16, 64, "a", "k1"),
        host("h3", 16, 64, "b", "k2"),
    ]);
    for i in 0..6 {
        s.commit(&format!("vm-{i}"), "h1", &req(2, 8)).unwrap();
    }
    s.set_host_state("h2", HostState::Cordoned).unwrap();
    for i in 0..4 {
        let p = s.place_and_commit(&format!("new-{i}"), &req(2, 8)).unwrap();
        assert_ne!(p.host, "h2", "cordoned host took a VM");
    }
    s.set_host_state("h2", HostState::Ready).unwrap();
    s.set_host_state("h1", HostState::Draining).unwrap();
    let before = s.hosts();
    let plan = s.plan_evacuation("h1").unwrap();
    assert_eq!(plan.len(), s.vms_on("h1").unwrap().len());
    assert!(plan.iter().all(|m| m.from == "h1" && m.to != "h1"));
    // The plan is only a proposal.
    assert_eq!(s.hosts(), before);
    s.verify_bookkeeping().unwrap();
    // Carry it out: every move is accepted.
    for m in &plan {
        s.move_vm(&m.vm, &m.to).unwrap();
    }
    assert_eq!(s.host("h1").unwrap().vms, 0);
    s.remove_host("h1").unwrap();
    assert!(matches!(
        s.remove_host("h2"),
        Err(SchedError::HostNotEmpty { .. })
    ));
    s.verify_bookkeeping().unwrap();
}

#[test]
fn evacuation_that_cannot_fit_names_the_constraint() {
    let mut s = sched(&[host("h1", 16, 64, "a", "k1"), host("h2", 16, 16, "a", "k1")]);
    s.commit("big", "h1", &req(4, 32)).unwrap();
    let msg = s.plan_evacuation("h1").unwrap_err().to_string();
    assert_eq!(
        msg,
        "no host has 32 GiB free memory excluding h1; largest free: 16 GiB on h2"
    );
    assert_eq!(s.vm_host("big"), Some("h1"));
}

#[test]
fn evacuation_with_per_vm_rules_skips_and_constrains_vms() {
    let mut h2 = host("h2", 16, 64, "a", "k1");
    h2.labels.insert("qemu".into(), "7.2".into());
    let mut h3 = host("h3", 16, 64, "a", "k1");
    h3.labels.insert("qemu".into(), "8.2".into());
    let mut s = sched(&[host("h1", 16, 64, "a", "k1"), h2, h3]);
    s.commit("moves", "h1", &req(2, 8)).unwrap();
    s.commit("stays", "h1", &req(2, 8)).unwrap();
    let plan = s
        .plan_evacuation_with("h1", |vm, mut r| {
            (vm == "moves").then(|| {
                r.selectors.push(LabelSelector::eq("qemu", "8.2"));
                r
            })
        })
        .unwrap();
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!((plan[0].vm.as_str(), plan[0].to.as_str()), ("moves", "h3"));
    let err = s
        .plan_evacuation_with("h1", |_, mut r| {
            r.selectors.push(LabelSelector::eq("qemu", "9.0"));
            Some(r)
        })
        .unwrap_err();
    assert!(["moves", "stays"].contains(&err.vm.as_str()), "{err}");
    assert!(err.to_string().contains("qemu=9.0"), "{err}");
    assert_eq!(s.vm_host("moves"), Some("h1"));
    s.verify_bookkeeping().unwrap();
}

#[test]
fn selectors_match_labels_as_the_filter_does() {
    let labels: std::collections::BTreeMap<String, String> =
        [("kvm".to_string(), "false".to_string())].into();
    assert!(LabelSelector::eq("kvm", "false").matches(&labels));
    assert!(!LabelSelector::eq("kvm", "true").matches(&labels));
    let bridge = LabelSelector {
        key: "bridge.br0".into(),
        op: SelectorOp::Exists,
    };
    assert!(!bridge.matches(&labels));
    let not_kvm = LabelSelector {
        key: "kvm".into(),
        op: SelectorOp::NotIn(vec!["true".into()]),
    };
    assert!(not_kvm.matches(&labels));
    assert!(not_kvm.matches(&Default::default()));
}

#[test]
fn ha_restart_excludes_failed_host() {
    let mut s = sched(&[host("h1", 16, 64, "a", "k1"), host("h2", 16, 64, "a", "k2")]);
    s.commit("vm-1", "h1", &req(2, 8)).unwrap();
    s.set_host_state("h1", HostState::Down).unwrap();
    let mut r = s.vm_request("vm-1").unwrap();
    r.exclude_hosts.push("h1".into());
    assert_eq!(s.place(&r).unwrap().host, "h2");
    s.move_vm("vm-1", "h2").unwrap();
    assert_eq!(s.vm_host("vm-1"), Some("h2"));
}

#[test]
fn commit_checks_every_filter_and_changes_nothing_on_refusal() {
    let mut s = sched(&[host("h1", 4, 8, "a", "k1")]);
    let err = s.commit("vm-1", "h1", &req(8, 4)).unwrap_err();
    assert!(
        matches!(&err, SchedError::Infeasible { filter, .. } if filter == "capacity"),
        "{err}"
    );
    assert_eq!(s.stats().vms, 0);
    // restore() records actual state even when it breaks capacity.
    s.restore("vm-1", "h1", &req(8, 4)).unwrap();
    assert_eq!(s.host("h1").unwrap().vms, 1);
    s.verify_bookkeeping().unwrap();
    assert!(matches!(
        s.commit("vm-2", "nope", &req(1, 1)),
        Err(SchedError::UnknownHost(_))
    ));
    assert!(matches!(
        s.commit("", "h1", &req(1, 1)),
        Err(SchedError::InvalidName { .. })
    ));
    let huge = Request::new(Resources {
        cpu_millis: u64::MAX,
        memory_mib: 1,
        disk_gib: 1,
    });
    assert!(matches!(
        s.place(&huge),
        Err(SchedError::DemandTooLarge { .. })
    ));
}

#[test]
fn group_rules_are_fixed_by_the_first_member() {
    let mut s = sched(&[host("h1", 16, 64, "a", "k1"), host("h2", 16, 64, "a", "k2")]);
    s.place_and_commit(
        "a",
        &in_group(
            req(1, 1),
            "g",
            vec![GroupRule::anti_affinity(Level::Host, true)],
        ),
    )
    .unwrap();
    let err = s
        .place(&in_group(
            req(1, 1),
            "g",
            vec![GroupRule::Affinity {
                level: Level::Host,
                hard: true,
            }],
        ))
        .unwrap_err();
    assert!(
        matches!(err, SchedError::GroupRulesConflict { .. }),
        "{err}"
    );
    // No rules = inherit: still anti-affine.
    let p = s
        .place_and_commit("b", &in_group(req(1, 1), "g", vec![]))
        .unwrap();
    assert_ne!(Some(p.host.as_str()), s.vm_host("a"));
    s.release("a").unwrap();
    s.release("b").unwrap();
    // Empty group: the next member sets new rules.
    s.place_and_commit(
        "c",
        &in_group(
            req(1, 1),
            "g",
            vec![GroupRule::Affinity {
                level: Level::Host,
                hard: true,
            }],
        ),
    )
    .unwrap();
    s.verify_bookkeeping().unwrap();
}

#[test]
fn selectors_affinity_and_symmetric_anti_affinity() {
    let mut hosts = vec![
        host("ssd-1", 16, 64, "a", "k1"),
        host("hdd-1", 16, 64, "a", "k1"),
        host("hdd-2", 16, 64, "b", "k2"),
    ];
    hosts[0].labels.insert("disk".into(), "ssd".into());
    hosts[1].labels.insert("disk".into(), "hdd".into());
    let mut s = sched(&hosts);
    let mut r = req(1, 1);
    r.selectors.push(LabelSelector::eq("disk", "ssd"));
    assert_eq!(s.place(&r).unwrap().host, "ssd-1");
    r.selectors = vec![LabelSelector {
        key: "disk".into(),
        op: SelectorOp::DoesNotExist,
    }];
    assert_eq!(s.place(&r).unwrap().host, "hdd-2");
    r.selectors = vec![LabelSelector {
        key: "disk".into(),
        op: SelectorOp::NotIn(vec!["ssd".into(), "hdd".into()]),
    }];
    assert_eq!(s.place(&r).unwrap().host, "hdd-2");
    r.selectors = vec![LabelSelector {
        key: "gpu".into(),
        op: SelectorOp::Exists,
    }];
    assert!(
        s.place(&r)
            .unwrap_err()
            .to_string()
            .contains("needs a host with gpu")
    );

    // Hard affinity at rack level keeps members in one rack.
    let aff = |n: &str, s: &mut Scheduler| {
        s.place_and_commit(
            n,
            &in_group(
                req(1, 1),
                "db",
                vec![GroupRule::Affinity {
                    level: Level::Rack,
                    hard: true,
                }],
            ),
        )
        .unwrap()
        .host
    };
    let first = aff("db-1", &mut s);
    for i in 2..6 {
        let h = aff(&format!("db-{i}"), &mut s);
        let rack = |h: &str| if h == "hdd-2" { "k2" } else { "k1" };
        assert_eq!(rack(&h), rack(&first));
    }
    // Hard anti-affinity to group db at zone level keeps "app" out of db's zone...
    let mut app = req(1, 1);
    app.anti_affinity_to.push(GroupTerm {
        group: "db".into(),
        level: Level::Zone,
        hard: true,
    });
    let p = s.place_and_commit("app", &app).unwrap();
    let zone = |h: &str| if h == "hdd-2" { "b" } else { "a" };
    assert_ne!(zone(&p.host), zone(&first));
    // ...and, symmetrically, later db members avoid app's zone (here: every other host is in it).
    let err = s.place(&in_group(req(1, 1), "db", vec![])).unwrap();
    assert_ne!(zone(&err.host), zone(&p.host));
    // Hard affinity_to a group with no members cannot be met.
    let mut lonely = req(1, 1);
    lonely.affinity_to.push(GroupTerm {
        group: "nobody".into(),
        level: Level::Host,
        hard: true,
    });
    assert!(
        s.place(&lonely)
            .unwrap_err()
            .to_string()
            .contains("group nobody (it has no members)")
    );
    s.verify_bookkeeping().unwrap();
}

#[test]
fn quota_hook_refuses_with_its_reason() {
    struct NoBigTenants;
    impl QuotaHook for NoBigTenants {
        fn check(&self, tenant: &str, demand: &Resources) -> Result<(), String> {
            if tenant == "acme" && demand.memory_mib > 4096 {
                Err("memory quota 4 GiB".into())
            } else {
                Ok(())
            }
        }
    }
    let mut s = sched(&[host("h1", 16, 64, "a", "k1")]);
    s.set_quota_hook(Box::new(NoBigTenants));
    let mut r = req(1, 8);
    r.tenant = Some("acme".into());
    assert_eq!(
        s.place(&r).unwrap_err().to_string(),
        "quota exceeded for tenant acme: memory quota 4 GiB"
    );
    r.tenant = Some("other".into());
    assert!(s.place(&r).is_ok());
}

#[test]
fn a_new_rule_is_one_new_filter() {
    struct NotOdd;
    impl Filter for NotOdd {
        fn name(&self) -> &'static str {
            "not-odd"
        }
        fn feasible(&self, _ctx: &RequestContext<'_>, host: &HostView<'_>) -> bool {
            !host.name().ends_with(['1', '3'])
        }
        fn explain(&self, _ctx: &RequestContext<'_>) -> String {
            "an even-numbered host".into()
        }
    }
    let mut s = sched(&[
        host("h1", 16, 64, "a", "k1"),
        host("h2", 4, 8, "a", "k1"),
        host("h3", 16, 64, "a", "k1"),
    ]);
    s.add_filter(Box::new(NotOdd));
    assert_eq!(s.place(&req(1, 1)).unwrap().host, "h2");
    // Capacity still binds last: h2 is too small, h1/h3 are odd.
    assert_eq!(
        s.place(&req(8, 1)).unwrap_err().to_string(),
        "no host has 8 vCPU free; largest free: 4 vCPU on h2"
    );
    s.set_host_state("h2", HostState::Cordoned).unwrap();
    let msg = s.place(&req(1, 1)).unwrap_err().to_string();
    assert!(
        msg.contains("an even-numbered host") && msg.contains("not-odd"),
        "{msg}"
    );
}

#[test]
fn spread_strategy_fills_emptiest_and_overcommit_counts() {
    let cfg = SchedulerConfig {
        strategy: Strategy::Spread,
        ..Default::default()
    };
    let mut s = Scheduler::new(cfg);
    let mut h1 = host("h1", 4, 64, "a", "k1");
    h1.overcommit.cpu = 4.0; // 16 vCPU offered
    s.upsert_host(h1).unwrap();
    s.upsert_host(host("h2", 16, 64, "a", "k1")).unwrap();
    let a = s.place_and_commit("a", &req(2, 4)).unwrap().host;
    let b = s.place_and_commit("b", &req(2, 4)).unwrap().host;
    assert_ne!(a, b, "spread puts the second VM on the other host");
    assert_eq!(s.host("h1").unwrap().capacity.cpu_millis, 16_000);
    s.commit("c", "h1", &req(12, 1))
        .unwrap_or_else(|_| s.commit("c", "h2", &req(12, 1)).unwrap());
    s.verify_bookkeeping().unwrap();
}

#[test]
fn same_seed_same_decisions() {
    let run = |seed: u64| {
        let mut s = Scheduler::new(SchedulerConfig {
            seed,
            ..Default::default()
        });
        for i in 0..50 {
            s.upsert_host(host(
                &format!("h{i}"),
                32,
                128,
                ["a", "b", "c"][i % 3],
                &format!("k{}", i / 5),
            ))
            .unwrap();
        }
        (0..400)
            .map(|i| {
                let r = in_group(
                    req(1 + i % 4, 2 + i % 7),
                    &format!("g{}", i / 3),
                    vec![GroupRule::anti_affinity(Level::Host, true)],
                );
                s.place_and_commit(&format!("vm-{i}"), &r).unwrap().host
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
}

#[test]
fn rebalance_lowers_imbalance_and_respects_constraints() {
    let mut s = sched(&[
        host("h1", 32, 128, "a", "k1"),
        host("h2", 32, 128, "a", "k1"),
        host("h3", 32, 128, "a", "k2"),
    ]);
    // h1 heavily loaded, h2 and h3 lightly.
    for i in 0..12 {
        s.commit(&format!("vm-{i}"), "h1", &req(2, 8)).unwrap();
    }
    s.commit("light-2", "h2", &req(1, 4)).unwrap();
    s.commit("light-3", "h3", &req(1, 4)).unwrap();
    // Two anti-affine members: one on h1, one on h2 — moving h1's member to h2 is forbidden.
    let aa = |r| in_group(r, "pair", vec![GroupRule::anti_affinity(Level::Host, true)]);
    s.commit("pair-1", "h1", &aa(req(2, 8))).unwrap();
    s.commit("pair-2", "h2", &aa(req(1, 1))).unwrap();
    let before = s.imbalance();
    let hosts_before = s.hosts();
    let moves = s.propose_rebalance(6);
    assert!(!moves.is_empty());
    assert!(moves.len() <= 6);
    assert_eq!(s.hosts(), hosts_before, "proposing changed the fleet");
    s.verify_bookkeeping().unwrap();
    assert!(moves.iter().all(|m| m.gain > 0.0));
    assert!(!moves.iter().any(|m| m.vm == "pair-1" && m.to == "h2"));
    for m in &moves {
        s.move_vm(&m.vm, &m.to).unwrap();
    }
    let after = s.imbalance();
    assert!(after < before, "imbalance {before} -> {after}");
    let total_gain: f64 = moves.iter().map(|m| m.gain).sum();
    assert!(
        (before - after - total_gain).abs() < 1e-9,
        "gains add up: {before} {after} {total_gain}"
    );
    s.verify_bookkeeping().unwrap();
}

#[test]
fn hard_anti_affinity_terms_bind_both_ways() {
    let mut s = sched(&[host("h1", 16, 64, "a", "k1"), host("h2", 16, 64, "a", "k2")]);
    let mut loner = req(1, 1);
    loner.anti_affinity_to.push(GroupTerm {
        group: "noisy".into(),
        level: Level::Host,
        hard: true,
    });
    s.commit("loner", "h1", &loner).unwrap();
    // Members of "noisy" placed later keep off the loner's host, whatever bin-packing prefers.
    for i in 0..5 {
        let p = s
            .place_and_commit(&format!("noisy-{i}"), &in_group(req(1, 1), "noisy", vec![]))
            .unwrap();
        assert_eq!(p.host, "h2");
    }
    let err = s
        .commit("noisy-x", "h1", &in_group(req(1, 1), "noisy", vec![]))
        .unwrap_err();
    assert!(
        matches!(&err, SchedError::Infeasible { filter, .. } if filter == "anti-affinity"),
        "{err}"
    );
    s.release("loner").unwrap();
    s.commit("noisy-x", "h1", &in_group(req(1, 1), "noisy", vec![]))
        .unwrap();
    s.verify_bookkeeping().unwrap();
}
