//! Rebalancing and evacuation plans (what vSphere DRS does): propose a bounded list of
//! migrations that lowers load imbalance the most, or moves every VM off a host, without
//! changing the fleet (moves are applied to the live state to evaluate the next one, then undone).
//!
//! Imbalance is the population standard deviation of host load, where a host's load is its
//! highest utilisation over vCPU and memory. Under bin-packing only hosts that hold VMs count (and
//! only they receive moves), so rebalancing evens load among used hosts without undoing
//! consolidation; under spreading every ready host counts.

use crate::error::SchedError;
use crate::fleet::Fleet;
use crate::model::{HostState, Move, Request, Strategy};
use crate::pipeline::HostView;
use crate::scheduler::Scheduler;

/// Hosts whose VMs are tried as sources, per proposed move.
const SOURCE_HOSTS: usize = 4;
/// VMs tried per source host.
const VMS_PER_SOURCE: usize = 128;
/// Least-loaded hosts tried as targets, per proposed move.
const TARGET_POOL: usize = 32;

fn load(fleet: &Fleet, h: u32) -> f64 {
    let c = &fleet.cold[h as usize].capacity;
    let f = &fleet.hot[h as usize].free;
    let mut l: f64 = 0.0;
    for d in 0..2 {
        if c[d] > 0 {
            l = l.max((c[d] - f[d]) as f64 / c[d] as f64);
        }
    }
    l
}

impl Scheduler {
    fn counts_for_balance(&self, h: u32) -> bool {
        let c = &self.fleet.cold[h as usize];
        c.present
            && c.state == HostState::Ready
            && (self.config.strategy == Strategy::Spread || !c.vms.is_empty())
    }

    /// Current imbalance: standard deviation of host load (see the module docs).
    pub fn imbalance(&self) -> f64 {
        let (mut n, mut s1, mut s2) = (0usize, 0.0f64, 0.0f64);
        for h in 0..self.fleet.cold.len() as u32 {
            if self.counts_for_balance(h) {
                let l = load(&self.fleet, h);
                n += 1;
                s1 += l;
                s2 += l * l;
            }
        }
        std_dev(n, s1, s2)
    }

    /// Up to `max_moves` migrations, best first, each lowering imbalance by `gain`, each
    /// respecting every hard constraint given the moves before it. The fleet is unchanged.
    pub fn propose_rebalance(&mut self, max_moves: usize) -> Vec<Move> {
        let mut applied: Vec<(u32, u32, u32)> = Vec::new();
        let mut moves = Vec::new();
        while moves.len() < max_moves {
            let Some((gain, v, from, to)) = self.best_move() else {
                break;
            };
            self.fleet.detach(v);
            self.fleet.attach(v, to);
            applied.push((v, from, to));
            moves.push(Move {
                vm: self.fleet.vm_names.name(v).to_string(),
                from: self.fleet.host_name(from).to_string(),
                to: self.fleet.host_name(to).to_string(),
                gain,
            });
        }
        for &(v, from, _) in applied.iter().rev() {
            self.fleet.detach(v);
            self.fleet.attach(v, from);
        }
        tracing::info!(moves = moves.len(), "scheduler: rebalance proposed");
        moves
    }

    fn best_move(&mut self) -> Option<(f64, u32, u32, u32)> {
        let mut hosts: Vec<(f64, u32)> = Vec::new();
        let (mut n, mut s1, mut s2) = (0usize, 0.0f64, 0.0f64);
        for h in 0..self.fleet.cold.len() as u32 {
            if self.counts_for_balance(h) {
                let l = load(&self.fleet, h);
                n += 1;
                s1 += l;
                s2 += l * l;
                hosts.push((l, h));
            }
        }
        if n < 2 {
            return None;
        }
        let before = std_dev(n, s1, s2);
        let k = SOURCE_HOSTS.min(hosts.len());
        hosts.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut sources: Vec<(f64, u32)> = hosts[..k].to_vec();
        sources.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let p = TARGET_POOL.min(hosts.len());
        hosts.select_nth_unstable_by(p - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut pool: Vec<(f64, u32)> = hosts[..p].to_vec();
        pool.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let pool: Vec<u32> = pool.into_iter().map(|x| x.1).collect();
        let mut best: Option<(f64, u32, u32, u32)> = None;
        for &(l_src, src) in &sources {
            let vms: Vec<u32> = self.fleet.cold[src as usize]
                .vms
                .iter()
                .take(VMS_PER_SOURCE)
                .copied()
                .collect();
            for v in vms {
                let mut req = self.request_of(v);
                req.exclude_hosts
                    .push(self.fleet.host_name(src).to_string());
                self.fleet.detach(v);
                let l_src_after = load(&self.fleet, src);
                let src_counts_after = self.counts_for_balance(src);
                let targets = self.feasible_targets(&req, &pool);
                for t in targets {
                    let l_t = load(&self.fleet, t);
                    let demand = self.fleet.vms[v as usize].demand;
                    let c = &self.fleet.cold[t as usize].capacity;
                    let f = &self.fleet.hot[t as usize].free;
                    let mut l_t_after: f64 = 0.0;
                    for d in 0..2 {
                        if c[d] > 0 {
                            l_t_after = l_t_after
                                .max((c[d] - f[d] + i64::from(demand[d])) as f64 / c[d] as f64);
                        }
                    }
                    // Recompute the moments with src and t changed.
                    let (mut n2, mut a1, mut a2) = (n, s1 - l_src, s2 - l_src * l_src);
                    if src_counts_after {
                        a1 += l_src_after;
                        a2 += l_src_after * l_src_after;
                    } else {
                        n2 -= 1;
                    }
                    a1 += l_t_after - l_t;
                    a2 += l_t_after * l_t_after - l_t * l_t;
                    let gain = before - std_dev(n2, a1, a2);
                    if gain > 1e-9 && best.is_none_or(|b| gain > b.0) {
                        best = Some((gain, v, src, t));
                    }
                }
                self.fleet.attach(v, src);
            }
        }
        best
    }

    /// The hosts of `pool` that pass every filter for `req`.
    fn feasible_targets(&self, req: &crate::model::Request, pool: &[u32]) -> Vec<u32> {
        let Ok(ctx) = self.resolve(req) else {
            return Vec::new();
        };
        let active: Vec<&dyn crate::pipeline::Filter> = self
            .filters
            .iter()
            .filter(|f| f.applies(&ctx))
            .map(|f| f.as_ref())
            .collect();
        pool.iter()
            .copied()
            .filter(|&h| {
                let view = HostView {
                    fleet: &self.fleet,
                    idx: h,
                };
                active.iter().all(|f| f.feasible(&ctx, &view))
            })
            .collect()
    }

    /// Where each VM on `host` would go if it were evacuated now (drain, HA restart after a
    /// failure), largest VM first, each decision seeing the ones before it. The fleet is
    /// unchanged. Fails with the first VM that cannot be placed, naming the binding constraint.
    pub fn plan_evacuation(&mut self, host: &str) -> Result<Vec<Move>, SchedError> {
        self.plan_evacuation_with(host, |_, req| Some(req))
            .map_err(|f| f.error)
    }

    /// [`Scheduler::plan_evacuation`] where the caller decides, per resident VM, what its move
    /// requires: `adjust(vm, request)` gets the request the VM was committed with (the host
    /// already excluded) and returns it with the move's own rules added (a live migration
    /// needs the same QEMU, say), or `None` to leave that VM where it is (a stopped VM, a
    /// reservation for a VM still arriving). The failure names the VM that fits nowhere.
    pub fn plan_evacuation_with(
        &mut self,
        host: &str,
        mut adjust: impl FnMut(&str, Request) -> Option<Request>,
    ) -> Result<Vec<Move>, EvacuationFailure> {
        let src = self.host_idx(host).map_err(|error| EvacuationFailure {
            vm: String::new(),
            error,
        })?;
        let mut vms: Vec<u32> = self.fleet.cold[src as usize].vms.clone();
        vms.sort_by_key(|&v| {
            let d = self.fleet.vms[v as usize].demand;
            (std::cmp::Reverse(u64::from(d[1]) + u64::from(d[0])), v)
        });
        let mut applied: Vec<(u32, u32)> = Vec::new();
        let mut moves = Vec::new();
        let mut failure = None;
        for v in vms {
            let mut req = self.request_of(v);
            req.exclude_hosts.push(host.to_string());
            let name = self.fleet.vm_names.name(v).to_string();
            let Some(req) = adjust(&name, req) else {
                continue;
            };
            self.fleet.detach(v);
            let decision = {
                let r = self.resolve(&req);
                match r {
                    Ok(ctx) => self.decide(&ctx).map(|(t, _)| t),
                    Err(e) => Err(e),
                }
            };
            match decision {
                Ok(t) => {
                    self.fleet.attach(v, t);
                    applied.push((v, t));
                    moves.push(Move {
                        vm: name,
                        from: host.to_string(),
                        to: self.fleet.host_name(t).to_string(),
                        gain: 0.0,
                    });
                }
                Err(error) => {
                    self.fleet.attach(v, src);
                    failure = Some(EvacuationFailure { vm: name, error });
                    break;
                }
            }
        }
        for &(v, _) in applied.iter().rev() {
            self.fleet.detach(v);
            self.fleet.attach(v, src);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(moves),
        }
    }
}

/// The VM an evacuation plan found no place for, and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{vm}: {error}")]
pub struct EvacuationFailure {
    /// The VM (empty when the host itself is unknown).
    pub vm: String,
    /// Why it fits nowhere.
    pub error: SchedError,
}

fn std_dev(n: usize, s1: f64, s2: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let m = s1 / n as f64;
    (s2 / n as f64 - m * m).max(0.0).sqrt()
}
