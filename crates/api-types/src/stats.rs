//! Usage figures of nodes and VMs: what an agent samples every few seconds and hands to the
//! control plane with its heartbeat ([`NodeSample`]), and what the control plane answers from
//! the short history it keeps ([`VmMetrics`]).
//!
//! Counters (CPU seconds, bytes, operations, packets) only grow while the QEMU process lives;
//! a VM that is stopped and started again starts from zero. [`VmRates::between`] turns two
//! samples into rates and gives none across such a restart.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How often an agent samples its node and VMs, and so the history's resolution.
pub const SAMPLE_INTERVAL_SECONDS: u64 = 10;

/// One sample of a node and of the VMs running on it, taken by its agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct NodeSample {
    /// When the sample was taken (Unix milliseconds, the agent's clock).
    pub at_ms: u64,
    pub usage: NodeUsage,
    /// The VMs whose QEMU runs on the node.
    pub vms: Vec<VmSample>,
}

/// A node's own figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct NodeUsage {
    /// Online CPUs.
    pub cpus: u32,
    /// CPU time spent not idle, summed over all CPUs (counter, seconds; /proc/stat).
    pub cpu_busy_seconds: f64,
    pub memory_total_bytes: u64,
    /// Memory available for new work without swapping (`MemAvailable`).
    pub memory_available_bytes: u64,
    /// Size of the file system holding the agent's data directory.
    pub disk_total_bytes: u64,
    /// Free space there for unprivileged use.
    pub disk_free_bytes: u64,
}

/// One VM in a [`NodeSample`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct VmSample {
    pub project: String,
    pub name: String,
    /// Tells a VM from an earlier one of the same name.
    pub uuid: String,
    pub usage: VmUsage,
}

/// What one VM's QEMU has used since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct VmUsage {
    /// CPU time of the QEMU process, all threads (vCPUs and QEMU's own work), in seconds.
    pub cpu_seconds: f64,
    /// Resident memory of the QEMU process.
    pub rss_bytes: u64,
    /// The balloon's current size of guest memory; absent when the VM has no balloon device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balloon_actual_bytes: Option<u64>,
    /// Summed over the VM's block devices (QMP `query-blockstats`).
    pub disk_read_bytes: u64,
    pub disk_write_bytes: u64,
    pub disk_read_ops: u64,
    pub disk_write_ops: u64,
    /// Summed over the VM's tap NICs, as the guest sees them (received = sent to the guest).
    /// Absent when the VM has no tap (user-mode networking, or none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nic: Option<NicCounters>,
}

/// Traffic of a VM's NICs, from the guest's side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct NicCounters {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// A VM's usage at one moment of the history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmUsagePoint {
    /// When the agent took the sample (Unix milliseconds).
    pub at_ms: u64,
    pub usage: VmUsage,
}

/// A node's usage at one moment of the history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeUsagePoint {
    pub at_ms: u64,
    pub usage: NodeUsage,
}

/// Rates between two samples of one VM, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmRates {
    /// Length of the interval the rates are over.
    pub over_seconds: f64,
    /// CPU use of the QEMU process; 100 is one host CPU fully busy.
    pub cpu_percent: f64,
    pub disk_read_bytes_per_second: f64,
    pub disk_write_bytes_per_second: f64,
    pub disk_read_ops_per_second: f64,
    pub disk_write_ops_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nic_rx_bytes_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nic_tx_bytes_per_second: Option<f64>,
}

impl VmRates {
    /// The rates from `earlier` to `later`; `None` when no time passed between them or a
    /// counter went down (QEMU was restarted in between, its counters began again).
    pub fn between(earlier: &VmUsagePoint, later: &VmUsagePoint) -> Option<VmRates> {
        if later.at_ms <= earlier.at_ms {
            return None;
        }
        let (a, b) = (&earlier.usage, &later.usage);
        let restarted = b.cpu_seconds < a.cpu_seconds
            || b.disk_read_bytes < a.disk_read_bytes
            || b.disk_write_bytes < a.disk_write_bytes
            || b.disk_read_ops < a.disk_read_ops
            || b.disk_write_ops < a.disk_write_ops;
        if restarted {
            return None;
        }
        let seconds = (later.at_ms - earlier.at_ms) as f64 / 1000.0;
        let per_second = |from: u64, to: u64| (to - from) as f64 / seconds;
        let nic = match (a.nic, b.nic) {
            (Some(x), Some(y)) if y.rx_bytes >= x.rx_bytes && y.tx_bytes >= x.tx_bytes => Some((
                per_second(x.rx_bytes, y.rx_bytes),
                per_second(x.tx_bytes, y.tx_bytes),
            )),
            _ => None,
        };
        Some(VmRates {
            over_seconds: seconds,
            cpu_percent: (b.cpu_seconds - a.cpu_seconds) / seconds * 100.0,
            disk_read_bytes_per_second: per_second(a.disk_read_bytes, b.disk_read_bytes),
            disk_write_bytes_per_second: per_second(a.disk_write_bytes, b.disk_write_bytes),
            disk_read_ops_per_second: per_second(a.disk_read_ops, b.disk_read_ops),
            disk_write_ops_per_second: per_second(a.disk_write_ops, b.disk_write_ops),
            nic_rx_bytes_per_second: nic.map(|n| n.0),
            nic_tx_bytes_per_second: nic.map(|n| n.1),
        })
    }
}

/// Answer of `GET /api/v1/vms/{name}/metrics`: the VM's recent usage from the control
/// plane's history (at most the last hour, one sample every [`SAMPLE_INTERVAL_SECONDS`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmMetrics {
    pub project: String,
    pub name: String,
    /// The node whose agent sent the latest sample (empty before any sample).
    pub node: String,
    /// Seconds between the agent's samples.
    pub interval_seconds: u64,
    /// The newest sample, also when it is older than `since`.
    pub latest: Option<VmUsagePoint>,
    /// Rates between the two newest samples.
    pub rates: Option<VmRates>,
    /// Samples from `since` on, oldest first.
    pub samples: Vec<VmUsagePoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_ms: u64, cpu: f64, written: u64, nic: Option<u64>) -> VmUsagePoint {
        VmUsagePoint {
            at_ms,
            usage: VmUsage {
                cpu_seconds: cpu,
                disk_write_bytes: written,
                nic: nic.map(|b| NicCounters {
                    rx_bytes: b,
                    tx_bytes: b * 2,
                    ..NicCounters::default()
                }),
                ..VmUsage::default()
            },
        }
    }

    #[test]
    fn rates_are_per_second_over_the_interval() {
        let r = VmRates::between(
            &point(10_000, 1.0, 1000, Some(100)),
            &point(20_000, 6.0, 11_000, Some(600)),
        )
        .unwrap();
        assert_eq!(r.over_seconds, 10.0);
        assert_eq!(r.cpu_percent, 50.0);
        assert_eq!(r.disk_write_bytes_per_second, 1000.0);
        assert_eq!(r.nic_rx_bytes_per_second, Some(50.0));
        assert_eq!(r.nic_tx_bytes_per_second, Some(100.0));
    }

    #[test]
    fn no_rates_across_a_restart_or_without_time() {
        let before = point(10_000, 5.0, 1000, None);
        assert_eq!(
            VmRates::between(&before, &point(20_000, 0.5, 2000, None)),
            None
        );
        assert_eq!(VmRates::between(&before, &before), None);
        let r = VmRates::between(&before, &point(20_000, 6.0, 2000, None)).unwrap();
        assert_eq!(r.nic_rx_bytes_per_second, None, "no tap, no NIC rates");
    }

    #[test]
    fn older_agents_and_servers_understand_each_other() {
        // A heartbeat without stats (an agent from before metrics) still parses...
        let old: crate::agent::HeartbeatRequest =
            serde_json::from_str(r#"{"running_vms":2}"#).unwrap();
        assert_eq!(old.stats, None);
        // ...and a sample with fields this version does not know yet does too.
        let s: NodeSample = serde_json::from_str(
            r#"{"at_ms":5,"usage":{"cpus":2,"future":1},"vms":[{"name":"a","usage":{"rss_bytes":7,"gpu":3}}]}"#,
        )
        .unwrap();
        assert_eq!(s.usage.cpus, 2);
        assert_eq!(s.vms[0].usage.rss_bytes, 7);
        assert_eq!(s.vms[0].usage.nic, None);
    }
}
