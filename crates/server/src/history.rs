//! The control plane's short usage history: the samples agents send with their heartbeats,
//! kept in memory per VM and per node for [`RETENTION`] (one hour) at the agents' sampling
//! interval, for `/metrics`, `GET /api/v1/vms/{name}/metrics` and `novacron vm stats`.
//!
//! Bounded by construction: each series holds at most [`MAX_POINTS`] points, a newest point
//! closer than [`MIN_SPACING_MS`] to the one before it is replaced by the next sample (an
//! agent that samples faster cannot push the hour out), and a VM's series goes with the VM
//! ([`History::retain_vms`]). The history is this replica's own: it starts empty after a
//! restart, and in an HA control plane each replica holds what the agents sent it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use novacron_api_types::stats::{
    NodeSample, NodeUsage, NodeUsagePoint, SAMPLE_INTERVAL_SECONDS, VmMetrics, VmRates, VmUsage,
    VmUsagePoint,
};

/// How far back the history reaches.
pub const RETENTION: Duration = Duration::from_secs(3600);
/// Points in a series are at least this far apart (but the newest, which may be closer).
pub const MIN_SPACING_MS: u64 = SAMPLE_INTERVAL_SECONDS * 1000 * 9 / 10;
/// Enough for [`RETENTION`] at [`MIN_SPACING_MS`], plus the newest point.
pub const MAX_POINTS: usize = (RETENTION.as_secs() * 1000 / MIN_SPACING_MS) as usize + 2;
/// A series whose newest sample arrived longer ago than this is stale: its VM stopped or
/// its node went quiet, and `/metrics` leaves it out.
pub const STALE_AFTER_MS: u64 = SAMPLE_INTERVAL_SECONDS * 1000 * 4;

/// Points of one series, oldest first, at least [`MIN_SPACING_MS`] apart but for the newest.
#[derive(Debug, Clone)]
pub struct Series<T> {
    points: VecDeque<T>,
    /// When this replica received the newest point (its own clock, Unix ms).
    pub received_ms: u64,
}

impl<T: Copy> Series<T> {
    fn new() -> Self {
        Series {
            points: VecDeque::new(),
            received_ms: 0,
        }
    }

    fn push(&mut self, point: T, at: impl Fn(&T) -> u64, received_ms: u64) {
        let t = at(&point);
        if self.points.back().is_some_and(|last| at(last) >= t) {
            return; // an old or repeated sample
        }
        // The newest point is provisional while it is closer than the spacing to the one
        // before it: a newer sample replaces it.
        let n = self.points.len();
        let provisional = n >= 2
            && at(&self.points[n - 1]).saturating_sub(at(&self.points[n - 2])) < MIN_SPACING_MS;
        if provisional {
            self.points.pop_back();
        }
        self.points.push_back(point);
        let horizon = t.saturating_sub(RETENTION.as_millis() as u64);
        while self.points.len() > MAX_POINTS || self.points.front().is_some_and(|p| at(p) < horizon)
        {
            self.points.pop_front();
        }
        self.received_ms = received_ms;
    }

    /// Oldest first.
    pub fn points(&self) -> impl Iterator<Item = &T> {
        self.points.iter()
    }

    pub fn newest(&self) -> Option<&T> {
        self.points.back()
    }

    /// The two newest points, older first.
    pub fn newest_two(&self) -> Option<(&T, &T)> {
        let n = self.points.len();
        (n >= 2).then(|| (&self.points[n - 2], &self.points[n - 1]))
    }

    pub fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.received_ms) <= STALE_AFTER_MS
    }
}

/// One VM's series, with the VM it belongs to.
#[derive(Debug, Clone)]
pub struct VmSeries {
    pub project: String,
    pub name: String,
    pub uuid: String,
    /// The node whose agent sent the newest sample.
    pub node: String,
    pub series: Series<VmUsagePoint>,
}

impl VmSeries {
    fn new(project: &str, name: &str, uuid: &str, node: &str) -> VmSeries {
        VmSeries {
            project: project.to_string(),
            name: name.to_string(),
            uuid: uuid.to_string(),
            node: node.to_string(),
            series: Series::new(),
        }
    }
}

/// Every series this replica holds.
#[derive(Debug, Default)]
pub struct History {
    /// By `project/name`.
    vms: HashMap<String, VmSeries>,
    nodes: HashMap<String, Series<NodeUsagePoint>>,
}

fn vm_key(project: &str, name: &str) -> String {
    format!("{project}/{name}")
}

impl History {
    /// Adds a sample `node`'s agent sent, received at `received_ms` (this replica's clock).
    /// A VM sample with another uuid than its series starts the series anew (the name now
    /// belongs to another VM).
    pub fn record(&mut self, node: &str, sample: &NodeSample, received_ms: u64) {
        self.nodes
            .entry(node.to_string())
            .or_insert_with(Series::new)
            .push(
                NodeUsagePoint {
                    at_ms: sample.at_ms,
                    usage: sample.usage,
                },
                |p| p.at_ms,
                received_ms,
            );
        for vm in &sample.vms {
            let entry = self
                .vms
                .entry(vm_key(&vm.project, &vm.name))
                .or_insert_with(|| VmSeries::new(&vm.project, &vm.name, &vm.uuid, node));
            if entry.uuid != vm.uuid {
                *entry = VmSeries::new(&vm.project, &vm.name, &vm.uuid, node);
            }
            entry.node = node.to_string();
            entry.series.push(
                VmUsagePoint {
                    at_ms: sample.at_ms,
                    usage: vm.usage,
                },
                |p| p.at_ms,
                received_ms,
            );
        }
    }

    /// Keeps only the VMs for which `exists(project, name, uuid)` holds (the others were
    /// deleted, or their name went to another VM).
    pub fn retain_vms(&mut self, exists: impl Fn(&str, &str, &str) -> bool) {
        self.vms.retain(|_, s| exists(&s.project, &s.name, &s.uuid));
    }

    /// Keeps only the nodes for which `exists(name)` holds.
    pub fn retain_nodes(&mut self, exists: impl Fn(&str) -> bool) {
        self.nodes.retain(|name, _| exists(name));
    }

    pub fn vm(&self, project: &str, name: &str) -> Option<&VmSeries> {
        self.vms.get(&vm_key(project, name))
    }

    /// Every VM's series.
    pub fn vms(&self) -> impl Iterator<Item = &VmSeries> {
        self.vms.values()
    }

    /// What `GET /api/v1/vms/{name}/metrics` answers for the VM `uuid`: its samples taken
    /// at or after `since_ms`, the newest, and the rates between the two newest.
    pub fn vm_metrics(
        &self,
        project: &str,
        name: &str,
        uuid: &str,
        since_ms: Option<u64>,
    ) -> VmMetrics {
        let mut answer = VmMetrics {
            project: project.to_string(),
            name: name.to_string(),
            interval_seconds: SAMPLE_INTERVAL_SECONDS,
            ..VmMetrics::default()
        };
        let Some(s) = self.vm(project, name).filter(|s| s.uuid == uuid) else {
            return answer;
        };
        answer.node = s.node.clone();
        answer.latest = s.series.newest().copied();
        answer.rates = s
            .series
            .newest_two()
            .and_then(|(a, b)| VmRates::between(a, b));
        answer.samples = s
            .series
            .points()
            .filter(|p| since_ms.is_none_or(|t| p.at_ms >= t))
            .copied()
            .collect();
        answer
    }

    pub fn node(&self, name: &str) -> Option<&Series<NodeUsagePoint>> {
        self.nodes.get(name)
    }

    /// The newest usage of every node whose samples are fresh at `now_ms`.
    pub fn fresh_nodes(&self, now_ms: u64) -> impl Iterator<Item = (&String, &NodeUsage)> {
        self.nodes
            .iter()
            .filter(move |(_, s)| s.is_fresh(now_ms))
            .filter_map(|(n, s)| s.newest().map(|p| (n, &p.usage)))
    }

    /// The newest usage of every VM whose samples are fresh at `now_ms`.
    pub fn fresh_vms(&self, now_ms: u64) -> impl Iterator<Item = (&VmSeries, &VmUsage)> {
        self.vms
            .values()
            .filter(move |s| s.series.is_fresh(now_ms))
            .filter_map(|s| s.series.newest().map(|p| (s, &p.usage)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use novacron_api_types::stats::VmSample;

    const NOW: u64 = 1_700_000_000_000;

    fn sample(at_ms: u64, vms: &[(&str, &str, u64)]) -> NodeSample {
        NodeSample {
            at_ms,
            usage: NodeUsage {
                cpus: 2,
                ..NodeUsage::default()
            },
            vms: vms
                .iter()
                .map(|(name, uuid, written)| VmSample {
                    project: "default".into(),
                    name: name.to_string(),
                    uuid: uuid.to_string(),
                    usage: VmUsage {
                        disk_write_bytes: *written,
                        ..VmUsage::default()
                    },
                })
                .collect(),
        }
    }

    fn written(h: &History, name: &str) -> Vec<u64> {
        h.vm("default", name)
            .map(|s| {
                s.series
                    .points()
                    .map(|p| p.usage.disk_write_bytes)
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn an_hour_at_ten_seconds_is_kept_and_no_more() {
        let mut h = History::default();
        let step = SAMPLE_INTERVAL_SECONDS * 1000;
        let n = 2 * 3600 / SAMPLE_INTERVAL_SECONDS; // two hours of samples
        for i in 0..n {
            let t = NOW + i * step;
            h.record("node-a", &sample(t, &[("web1", "u1", i)]), t);
        }
        let points: Vec<u64> = h
            .vm("default", "web1")
            .unwrap()
            .series
            .points()
            .map(|p| p.at_ms)
            .collect();
        let newest = NOW + (n - 1) * step;
        assert_eq!(*points.last().unwrap(), newest);
        assert!(newest - points[0] >= 3600 * 1000 - step, "an hour is kept");
        assert!(newest - points[0] <= 3600 * 1000, "no more than an hour");
        assert!(points.windows(2).all(|w| w[1] - w[0] == step));
        assert!(h.node("node-a").unwrap().points().count() <= MAX_POINTS);
    }

    #[test]
    fn fast_samples_replace_the_newest_point_and_stay_bounded() {
        let mut h = History::default();
        // One sample a second for two hours: still at most MAX_POINTS, still an hour.
        for i in 0..7200u64 {
            let t = NOW + i * 1000;
            h.record("node-a", &sample(t, &[("web1", "u1", i)]), t);
        }
        let s = &h.vm("default", "web1").unwrap().series;
        let at: Vec<u64> = s.points().map(|p| p.at_ms).collect();
        assert!(at.len() <= MAX_POINTS, "{}", at.len());
        assert_eq!(*at.last().unwrap(), NOW + 7199 * 1000, "the newest is kept");
        assert!(
            at.last().unwrap() - at[0] >= 3590 * 1000,
            "still about an hour"
        );
        let n = at.len();
        assert!(
            at[..n - 1]
                .windows(2)
                .all(|w| w[1] - w[0] >= MIN_SPACING_MS)
        );
    }

    #[test]
    fn old_and_repeated_samples_are_ignored() {
        let mut h = History::default();
        h.record("node-a", &sample(NOW, &[("web1", "u1", 5)]), NOW);
        h.record("node-a", &sample(NOW, &[("web1", "u1", 6)]), NOW);
        h.record("node-a", &sample(NOW - 10_000, &[("web1", "u1", 7)]), NOW);
        assert_eq!(written(&h, "web1"), [5]);
    }

    #[test]
    fn a_new_vm_of_the_same_name_starts_afresh_and_deleted_vms_go() {
        let mut h = History::default();
        h.record(
            "node-a",
            &sample(NOW, &[("web1", "u1", 5), ("db1", "u2", 1)]),
            NOW,
        );
        h.record("node-b", &sample(NOW + 10_000, &[("web1", "u9", 1)]), NOW);
        assert_eq!(written(&h, "web1"), [1]);
        assert_eq!(h.vm("default", "web1").unwrap().node, "node-b");

        h.retain_vms(|project, name, uuid| project == "default" && name == "web1" && uuid == "u9");
        assert_eq!(written(&h, "db1"), Vec::<u64>::new());
        assert_eq!(h.vms().count(), 1);
    }

    #[test]
    fn a_vms_answer_has_its_samples_since_the_newest_and_rates() {
        let mut h = History::default();
        for i in 0..5u64 {
            let t = NOW + i * 10_000;
            h.record("node-a", &sample(t, &[("web1", "u1", i * 1000)]), t);
        }
        let m = h.vm_metrics("default", "web1", "u1", Some(NOW + 20_000));
        assert_eq!(m.node, "node-a");
        assert_eq!(m.samples.len(), 3);
        assert_eq!(m.latest.unwrap().usage.disk_write_bytes, 4000);
        assert_eq!(m.rates.unwrap().disk_write_bytes_per_second, 100.0);
        assert_eq!(h.vm_metrics("default", "web1", "u1", None).samples.len(), 5);
        // Another VM that took the name sees none of it.
        let other = h.vm_metrics("default", "web1", "u2", None);
        assert!(other.samples.is_empty() && other.latest.is_none() && other.node.is_empty());
    }

    #[test]
    fn stale_series_are_left_out() {
        let mut h = History::default();
        h.record("node-a", &sample(NOW, &[("web1", "u1", 5)]), NOW);
        assert_eq!(h.fresh_vms(NOW + STALE_AFTER_MS).count(), 1);
        assert_eq!(h.fresh_vms(NOW + STALE_AFTER_MS + 1).count(), 0);
        assert_eq!(h.fresh_nodes(NOW + STALE_AFTER_MS + 1).count(), 0);
        assert_eq!(h.fresh_nodes(NOW).count(), 1);
    }
}
