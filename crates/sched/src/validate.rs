//! Independent validator: recomputes host usage and group placement from scratch, from a list of
//! final assignments and the host specs, and counts hard-constraint violations. It shares no
//! code or state with the scheduler's bookkeeping (labels are matched as strings, domains keyed
//! by their names, overcommit applied here again), so a bug there cannot hide here.

use crate::model::{GroupRule, HostSpec, HostState, LabelSelector, Level, Resources, SelectorOp};
use serde::Serialize;
use std::collections::HashMap;

/// One resident VM as the caller recorded it from the scheduler's decisions.
#[derive(Clone, Copy, Debug)]
pub struct Assignment<'a> {
    /// Index of its host in the `hosts` slice.
    pub host: usize,
    /// Demand.
    pub demand: Resources,
    /// Hard selectors.
    pub selectors: &'a [LabelSelector],
    /// Groups it is a member of (indices into the `groups` slice).
    pub groups: &'a [usize],
    /// Hard anti-affinity terms: (group index, level).
    pub anti_affinity_to: &'a [(usize, Level)],
}

/// What the validator found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ValidationReport {
    /// Total violations (capacity per host and dimension, selector per VM, state per VM, group
    /// rule per domain, anti-affinity per VM).
    pub violations: u64,
    /// Capacity violations.
    pub capacity: u64,
    /// VMs on hosts whose labels do not match their selectors.
    pub selector: u64,
    /// VMs on hosts that are not ready.
    pub host_state: u64,
    /// Spread/anti-affinity caps exceeded (per group and domain).
    pub spread: u64,
    /// Hard-affinity groups split over domains (per group).
    pub affinity: u64,
    /// VMs sharing a domain with a group they refuse.
    pub anti_affinity: u64,
    /// Up to 10 examples, as text.
    pub examples: Vec<String>,
}

impl ValidationReport {
    fn note(&mut self, what: String) {
        self.violations += 1;
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

fn effective(amount: u64, ratio: f64) -> u64 {
    (amount as f64 * ratio).floor() as u64
}

fn domain_name(h: &HostSpec, level: Level) -> String {
    match level {
        Level::Host => format!("host/{}", h.name),
        Level::Rack => format!(
            "rack/{}/{}/{}",
            h.domain.region, h.domain.zone, h.domain.rack
        ),
        Level::Zone => format!("zone/{}/{}", h.domain.region, h.domain.zone),
        Level::Region => format!("region/{}", h.domain.region),
    }
}

fn label<'a>(h: &'a HostSpec, key: &str) -> Option<&'a str> {
    match key {
        "region" => Some(&h.domain.region),
        "zone" => Some(&h.domain.zone),
        "rack" => Some(&h.domain.rack),
        _ => h.labels.get(key).map(String::as_str),
    }
}

fn selector_ok(h: &HostSpec, s: &LabelSelector) -> bool {
    let v = label(h, &s.key);
    match &s.op {
        SelectorOp::In(vs) => v.is_some_and(|v| vs.iter().any(|x| x == v)),
        SelectorOp::NotIn(vs) => v.is_none_or(|v| !vs.iter().any(|x| x == v)),
        SelectorOp::Exists => v.is_some(),
        SelectorOp::DoesNotExist => v.is_none(),
    }
}

/// Check final assignments against hosts and group rules. `hosts[i].state` must be the state
/// the host had for the whole run (a VM on a non-ready host counts as a violation).
pub fn validate<'a>(
    hosts: &[HostSpec],
    groups: &[Vec<GroupRule>],
    assignments: impl IntoIterator<Item = Assignment<'a>>,
) -> ValidationReport {
    let mut report = ValidationReport::default();
    let mut used = vec![[0u64; 3]; hosts.len()];
    // Domain names per host and level, computed once.
    let mut domain_ids: HashMap<String, u32> = HashMap::new();
    let doms: Vec<[u32; 4]> = hosts
        .iter()
        .map(|h| {
            let mut ids = [0u32; 4];
            for l in Level::ALL {
                let n = domain_ids.len() as u32;
                ids[l as usize] = *domain_ids.entry(domain_name(h, l)).or_insert(n);
            }
            ids
        })
        .collect();
    // (group, level, domain) -> members.
    let mut members: HashMap<(usize, u8, u32), u32> = HashMap::new();
    let mut refusals: Vec<(usize, usize, Level, bool)> = Vec::new(); // (host, group, level, self member)
    for a in assignments {
        let Some(h) = hosts.get(a.host) else {
            report.note(format!("assignment to unknown host index {}", a.host));
            continue;
        };
        let u = &mut used[a.host];
        u[0] += a.demand.cpu_millis;
        u[1] += a.demand.memory_mib;
        u[2] += a.demand.disk_gib;
        if h.state != HostState::Ready {
            report.host_state += 1;
            report.note(format!("vm on {} host {}", h.state.as_str(), h.name));
        }
        for s in a.selectors {
            if !selector_ok(h, s) {
                report.selector += 1;
                report.note(format!("vm needing {s} on host {}", h.name));
            }
        }
        for &g in a.groups {
            for l in Level::ALL {
                *members
                    .entry((g, l as u8, doms[a.host][l as usize]))
                    .or_default() += 1;
            }
        }
        for &(g, l) in a.anti_affinity_to {
            refusals.push((a.host, g, l, a.groups.contains(&g)));
        }
    }
    for (i, h) in hosts.iter().enumerate() {
        let cap = [
            effective(h.capacity.cpu_millis, h.overcommit.cpu),
            effective(h.capacity.memory_mib, h.overcommit.memory),
            effective(h.capacity.disk_gib, h.overcommit.disk),
        ];
        for d in 0..3 {
            if used[i][d] > cap[d] {
                report.capacity += 1;
                report.note(format!(
                    "host {} dimension {d}: used {} > capacity {}",
                    h.name, used[i][d], cap[d]
                ));
            }
        }
    }
    let mut affinity_domains: HashMap<(usize, u8), u32> = HashMap::new();
    for (&(g, l, _dom), &count) in &members {
        let Some(rules) = groups.get(g) else { continue };
        for r in rules {
            match *r {
                GroupRule::Spread {
                    level,
                    max_per_domain,
                    hard: true,
                } if level as u8 == l && count > max_per_domain => {
                    report.spread += 1;
                    report.note(format!(
                        "group {g}: {count} members in one {level} (max {max_per_domain})"
                    ));
                }
                GroupRule::Affinity { level, hard: true } if level as u8 == l => {
                    *affinity_domains.entry((g, l)).or_default() += 1;
                }
                _ => {}
            }
        }
    }
    for ((g, l), n) in affinity_domains {
        if n > 1 {
            report.affinity += 1;
            report.note(format!(
                "group {g} with hard affinity spans {n} domains of level {l}"
            ));
        }
    }
    for (host, g, l, self_member) in refusals {
        let n = members
            .get(&(g, l as u8, doms[host][l as usize]))
            .copied()
            .unwrap_or(0);
        let others = if self_member { n.saturating_sub(1) } else { n };
        if others > 0 {
            report.anti_affinity += 1;
            report.note(format!(
                "vm on {} shares its {l} with {others} member(s) of group {g} it refuses",
                hosts[host].name
            ));
        }
    }
    report
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::FailureDomain;

    fn host(name: &str, rack: &str) -> HostSpec {
        let mut h = HostSpec::new(
            name,
            Resources::new(4, 8192, 100),
            FailureDomain {
                region: "r".into(),
                zone: "z".into(),
                rack: rack.into(),
            },
        );
        h.labels.insert("disk".into(), "ssd".into());
        h
    }

    #[test]
    fn catches_each_kind_of_violation() {
        let mut hosts = vec![host("h0", "a"), host("h1", "a"), host("h2", "b")];
        hosts[2].state = HostState::Cordoned;
        let groups = vec![
            vec![GroupRule::anti_affinity(Level::Host, true)],
            vec![GroupRule::Affinity {
                level: Level::Rack,
                hard: true,
            }],
        ];
        let hdd = [LabelSelector::eq("disk", "hdd")];
        let g0 = [0usize];
        let g1 = [1usize];
        let d = Resources::new(3, 4096, 10);
        let ok = validate(
            &hosts,
            &groups,
            [
                Assignment {
                    host: 0,
                    demand: d,
                    selectors: &[],
                    groups: &g0,
                    anti_affinity_to: &[],
                },
                Assignment {
                    host: 1,
                    demand: d,
                    selectors: &[],
                    groups: &g0,
                    anti_affinity_to: &[],
                },
            ],
        );
        assert_eq!(ok.violations, 0, "{ok:?}");
        let refuse = [(0usize, Level::Rack)];
        let bad = validate(
            &hosts,
            &groups,
            [
                Assignment {
                    host: 0,
                    demand: d,
                    selectors: &[],
                    groups: &g0,
                    anti_affinity_to: &[],
                },
                Assignment {
                    host: 0,
                    demand: d,
                    selectors: &hdd,
                    groups: &g0,
                    anti_affinity_to: &[],
                },
                Assignment {
                    host: 2,
                    demand: d,
                    selectors: &[],
                    groups: &g1,
                    anti_affinity_to: &[],
                },
                Assignment {
                    host: 1,
                    demand: d,
                    selectors: &[],
                    groups: &g1,
                    anti_affinity_to: &refuse,
                },
            ],
        );
        assert_eq!(bad.capacity, 1, "{bad:?}"); // h0 cpu 6 > 4
        assert_eq!(bad.selector, 1);
        assert_eq!(bad.spread, 1);
        assert_eq!(bad.host_state, 1);
        assert_eq!(bad.affinity, 1);
        assert_eq!(bad.anti_affinity, 1);
        assert_eq!(bad.violations, 6);
    }
}
