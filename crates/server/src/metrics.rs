//! Prometheus metrics of the control plane: API requests by route and status with a latency
//! histogram, VMs by state (counted from the mirror when scraped), and the usage of every VM
//! and node from the newest samples their agents sent (see [`crate::history`]).
//!
//! Per-VM series carry the labels `project`, `vm` and `node`, per-node series `node`: one
//! series per existing VM and node, so cardinality is bounded by the fleet. A VM's series
//! leave with its record (deleted, or renamed away) and while its samples are stale (it
//! stopped, or its node went quiet). `docs/metrics.md` lists every family.
//!
//! The exposition is OpenMetrics 1.0, or Prometheus text 0.0.4 for a scraper whose `Accept`
//! prefers `text/plain` ([`Exposition::negotiate`]).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use novacron_api_types::Resources;
use novacron_api_types::stats::{NodeUsage, VmUsage};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::history::History;
use crate::records;
use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone)]
pub struct ServerMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub vms: Family<StateLabels, Gauge>,
    /// The whole registry (server metrics and, in `novacron up`, the agent's), shared.
    pub registry: Arc<std::sync::Mutex<Registry>>,
    /// The usage history the agents' heartbeats feed.
    pub history: Arc<Mutex<History>>,
    /// Finished operations and migrations by outcome (see [`crate::outcomes`]).
    pub outcomes: crate::outcomes::Outcomes,
    /// The VM and node rows the next encoding exposes, refreshed by [`render`].
    resources: Arc<Mutex<ResourceRows>>,
}

impl ServerMetrics {
    pub fn register(registry: Arc<std::sync::Mutex<Registry>>) -> ServerMetrics {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let vms = Family::<StateLabels, Gauge>::default();
        let resources = Arc::new(Mutex::new(ResourceRows::default()));
        let outcomes;
        {
            let mut r = registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register(
                "novacron_api_requests",
                "API requests by method, route and status",
                requests.clone(),
            );
            r.register(
                "novacron_api_request_duration_seconds",
                "API request latency by route",
                latency.clone(),
            );
            r.register("novacron_vms", "VMs by observed state", vms.clone());
            r.register_collector(Box::new(ResourceCollector(resources.clone())));
            outcomes = crate::outcomes::Outcomes::register(&mut r);
        }
        ServerMetrics {
            requests,
            latency,
            vms,
            registry,
            history: Arc::new(Mutex::new(History::default())),
            outcomes,
            resources,
        }
    }

    /// Adds a sample from `node`'s heartbeat to the history.
    pub fn record_sample(&self, node: &str, sample: &novacron_api_types::stats::NodeSample) {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(node, sample, unix_ms());
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Middleware: counts and times every request under its route template.
pub async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.requests
        .get_or_create(&RequestLabels {
            method,
            route: route.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    m.latency
        .get_or_create(&RouteLabels { route })
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// The exposition in `format`, with VM counts and usage refreshed from the mirrors and the
/// history.
pub fn render(state: &AppState, format: Exposition) -> String {
    let mut counts = std::collections::HashMap::new();
    for s in novacron_api_types::VmState::ALL {
        counts.insert(s, 0i64);
    }
    state.vms.with(|vms| {
        for vm in vms.values() {
            let st = crate::api::vms::observed_state(state, vm);
            *counts.entry(st).or_default() += 1;
        }
    });
    for (s, n) in counts {
        state.vms_gauge(s).set(n);
    }
    let rows = resource_rows(state, unix_ms());
    let mut out = String::new();
    let registry = state
        .metrics
        .registry
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Under the registry's lock, so a concurrent scrape cannot swap the rows mid-encoding.
    *state
        .metrics
        .resources
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = rows;
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "metrics encoding failed");
    }
    match format {
        Exposition::OpenMetrics => out,
        Exposition::PrometheusText => openmetrics_to_prometheus_text(&out),
    }
}

/// Drops the history of VMs and nodes that no longer exist, and returns the rows to expose:
/// every existing VM with fresh samples, every registered node.
fn resource_rows(state: &AppState, now_ms: u64) -> ResourceRows {
    let mut history = state
        .metrics
        .history
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    history.retain_vms(|project, name, uuid| {
        state
            .vms
            .get(&records::vm_key(project, name))
            .is_some_and(|v| v.uuid == uuid)
    });
    history.retain_nodes(|name| state.nodes.get(&records::node_key(name)).is_some());
    let vms = history
        .fresh_vms(now_ms)
        .map(|(s, usage)| VmRow {
            project: s.project.clone(),
            vm: s.name.clone(),
            node: s.node.clone(),
            usage: *usage,
        })
        .collect();
    let usage: std::collections::HashMap<&String, &NodeUsage> =
        history.fresh_nodes(now_ms).collect();
    let allocations = state.allocations();
    let nodes = state
        .nodes
        .values()
        .iter()
        .map(|n| {
            let (allocated, vms) = allocations.get(&n.name).copied().unwrap_or_default();
            NodeRow {
                node: n.name.clone(),
                capacity: n.capacity,
                allocated,
                vms,
                usage: usage.get(&n.name).map(|u| **u),
            }
        })
        .collect();
    ResourceRows { vms, nodes }
}

/// What `/metrics` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    PrometheusText,
}

impl Exposition {
    /// The format for a scraper's `Accept` header: Prometheus text when it rates
    /// `text/plain` above `application/openmetrics-text` (or asks for no OpenMetrics at all),
    /// OpenMetrics otherwise (no header, `*/*`, or a tie).
    pub fn negotiate(accept: Option<&str>) -> Exposition {
        let (mut openmetrics, mut text) = (None::<f64>, None::<f64>);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            let slot = match media.as_str() {
                "application/openmetrics-text" => &mut openmetrics,
                "text/plain" => &mut text,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        match (openmetrics, text) {
            (om, Some(t)) if t > 0.0 && t > om.unwrap_or(0.0) => Exposition::PrometheusText,
            _ => Exposition::OpenMetrics,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Exposition::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Rewrites an OpenMetrics exposition (as this crate's encoder writes it) in the Prometheus
/// text format 0.0.4: no `# EOF` and no `# UNIT`; a counter family is named with its
/// `_total` suffix; `_created` samples, exemplars and the `info`/`stateset`/`unknown` types
/// become what 0.0.4 has (dropped, dropped, `gauge`/`gauge`/`untyped`).
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let mut types = std::collections::HashMap::new();
    for line in openmetrics.lines() {
        if let Some((name, kind)) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.split_once(' '))
        {
            types.insert(name.to_string(), kind.trim().to_string());
        }
    }
    let renamed = |family: &str| -> String {
        match types.get(family).map(String::as_str) {
            Some("counter") => format!("{family}_total"),
            Some("info") => format!("{family}_info"),
            _ => family.to_string(),
        }
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (family, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!(
                "# HELP {} {}\n",
                renamed(family),
                help.replace("\\\"", "\"")
            ));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let kind = match kind.trim() {
                k @ ("counter" | "gauge" | "histogram" | "summary") => k,
                "info" | "stateset" => "gauge",
                _ => "untyped",
            };
            out.push_str(&format!("# TYPE {} {kind}\n", renamed(family)));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        if let Some(family) = name.strip_suffix("_created")
            && matches!(
                types.get(family).map(String::as_str),
                Some("counter" | "histogram" | "summary")
            )
        {
            continue;
        }
        out.push_str(without_exemplar(line));
        out.push('\n');
    }
    out
}

/// A sample line without its exemplar (` # {...} value`), which 0.0.4 does not have. The
/// exemplar starts after the label set, whose quoted values may hold `#`.
fn without_exemplar(line: &str) -> &str {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut labels_end = 0;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => {
                labels_end = i;
                break;
            }
            ' ' if !in_quotes && labels_end == 0 && !line[..i].contains('{') => break,
            _ => {}
        }
    }
    match line[labels_end..].find(" # ") {
        Some(i) => &line[..labels_end + i],
        None => line,
    }
}

/// One VM's newest usage, with its labels.
#[derive(Debug, Clone)]
struct VmRow {
    project: String,
    vm: String,
    node: String,
    usage: VmUsage,
}

/// One node: its capacity and what is placed on it, and its newest usage if fresh.
#[derive(Debug, Clone)]
struct NodeRow {
    node: String,
    capacity: Resources,
    allocated: Resources,
    vms: u32,
    usage: Option<NodeUsage>,
}

#[derive(Debug, Clone, Default)]
struct ResourceRows {
    vms: Vec<VmRow>,
    nodes: Vec<NodeRow>,
}

/// Encodes the rows [`render`] left, on each scrape.
#[derive(Debug)]
struct ResourceCollector(Arc<Mutex<ResourceRows>>);

type Labels = Vec<(&'static str, String)>;

/// One metric family from rows that have the figure; a family without rows is left out.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: Vec<(Labels, Box<dyn EncodeMetric>)>,
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in &rows {
        value.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter_u64(v: u64) -> Box<dyn EncodeMetric> {
    Box::new(ConstCounter::new(v))
}

fn counter_f64(v: f64) -> Box<dyn EncodeMetric> {
    Box::new(ConstCounter::new(v))
}

fn gauge(v: u64) -> Box<dyn EncodeMetric> {
    Box::new(ConstGauge::new(v))
}

impl Collector for ResourceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let vm_labels = |r: &VmRow| -> Labels {
            vec![
                ("project", r.project.clone()),
                ("vm", r.vm.clone()),
                ("node", r.node.clone()),
            ]
        };
        type VmFigure = (
            &'static str,
            &'static str,
            MetricType,
            fn(&VmUsage) -> Option<Box<dyn EncodeMetric>>,
        );
        let vm_families: [VmFigure; 11] = [
            (
                "novacron_vm_cpu_seconds",
                "CPU time of the VM's QEMU process (vCPUs and QEMU's own threads)",
                MetricType::Counter,
                |u| Some(counter_f64(u.cpu_seconds)),
            ),
            (
                "novacron_vm_memory_rss_bytes",
                "Resident memory of the VM's QEMU process",
                MetricType::Gauge,
                |u| Some(gauge(u.rss_bytes)),
            ),
            (
                "novacron_vm_balloon_actual_bytes",
                "Guest memory as the balloon leaves it (VMs with a balloon device)",
                MetricType::Gauge,
                |u| u.balloon_actual_bytes.map(gauge),
            ),
            (
                "novacron_vm_disk_read_bytes",
                "Bytes read from the VM's disks",
                MetricType::Counter,
                |u| Some(counter_u64(u.disk_read_bytes)),
            ),
            (
                "novacron_vm_disk_write_bytes",
                "Bytes written to the VM's disks",
                MetricType::Counter,
                |u| Some(counter_u64(u.disk_write_bytes)),
            ),
            (
                "novacron_vm_disk_read_ops",
                "Read operations on the VM's disks",
                MetricType::Counter,
                |u| Some(counter_u64(u.disk_read_ops)),
            ),
            (
                "novacron_vm_disk_write_ops",
                "Write operations on the VM's disks",
                MetricType::Counter,
                |u| Some(counter_u64(u.disk_write_ops)),
            ),
            (
                "novacron_vm_network_receive_bytes",
                "Bytes the VM received on its tap NICs",
                MetricType::Counter,
                |u| u.nic.map(|n| counter_u64(n.rx_bytes)),
            ),
            (
                "novacron_vm_network_transmit_bytes",
                "Bytes the VM sent on its tap NICs",
                MetricType::Counter,
                |u| u.nic.map(|n| counter_u64(n.tx_bytes)),
            ),
            (
                "novacron_vm_network_receive_packets",
                "Packets the VM received on its tap NICs",
                MetricType::Counter,
                |u| u.nic.map(|n| counter_u64(n.rx_packets)),
            ),
            (
                "novacron_vm_network_transmit_packets",
                "Packets the VM sent on its tap NICs",
                MetricType::Counter,
                |u| u.nic.map(|n| counter_u64(n.tx_packets)),
            ),
        ];
        for (name, help, kind, figure) in vm_families {
            let series = rows
                .vms
                .iter()
                .filter_map(|r| figure(&r.usage).map(|v| (vm_labels(r), v)))
                .collect();
            family(&mut encoder, name, help, kind, series)?;
        }

        let node_labels = |r: &NodeRow| -> Labels { vec![("node", r.node.clone())] };
        type NodeFigure = (
            &'static str,
            &'static str,
            MetricType,
            fn(&NodeRow) -> Option<Box<dyn EncodeMetric>>,
        );
        let node_families: [NodeFigure; 13] = [
            (
                "novacron_node_cpus",
                "Online CPUs of the node",
                MetricType::Gauge,
                |r| r.usage.map(|u| gauge(u64::from(u.cpus))),
            ),
            (
                "novacron_node_cpu_busy_seconds",
                "CPU time the node spent not idle, summed over its CPUs",
                MetricType::Counter,
                |r| r.usage.map(|u| counter_f64(u.cpu_busy_seconds)),
            ),
            (
                "novacron_node_memory_total_bytes",
                "Memory of the node",
                MetricType::Gauge,
                |r| r.usage.map(|u| gauge(u.memory_total_bytes)),
            ),
            (
                "novacron_node_memory_available_bytes",
                "Memory available for new work on the node (MemAvailable)",
                MetricType::Gauge,
                |r| r.usage.map(|u| gauge(u.memory_available_bytes)),
            ),
            (
                "novacron_node_disk_total_bytes",
                "Size of the file system holding the agent's data directory",
                MetricType::Gauge,
                |r| r.usage.map(|u| gauge(u.disk_total_bytes)),
            ),
            (
                "novacron_node_disk_free_bytes",
                "Free space on the file system holding the agent's data directory",
                MetricType::Gauge,
                |r| r.usage.map(|u| gauge(u.disk_free_bytes)),
            ),
            (
                "novacron_node_capacity_cpus",
                "CPUs the node offers to VMs",
                MetricType::Gauge,
                |r| Some(gauge(u64::from(r.capacity.cpus))),
            ),
            (
                "novacron_node_capacity_memory_bytes",
                "Memory the node offers to VMs",
                MetricType::Gauge,
                |r| Some(gauge(r.capacity.memory_bytes)),
            ),
            (
                "novacron_node_capacity_disk_bytes",
                "Disk the node offers to VMs",
                MetricType::Gauge,
                |r| Some(gauge(r.capacity.disk_bytes)),
            ),
            (
                "novacron_node_allocated_cpus",
                "CPUs the VMs placed on the node asked for",
                MetricType::Gauge,
                |r| Some(gauge(u64::from(r.allocated.cpus))),
            ),
            (
                "novacron_node_allocated_memory_bytes",
                "Memory the VMs placed on the node asked for",
                MetricType::Gauge,
                |r| Some(gauge(r.allocated.memory_bytes)),
            ),
            (
                "novacron_node_allocated_disk_bytes",
                "Disk the VMs placed on the node asked for",
                MetricType::Gauge,
                |r| Some(gauge(r.allocated.disk_bytes)),
            ),
            (
                "novacron_node_vms",
                "VMs placed on the node",
                MetricType::Gauge,
                |r| Some(gauge(u64::from(r.vms))),
            ),
        ];
        for (name, help, kind, figure) in node_families {
            let series = rows
                .nodes
                .iter()
                .filter_map(|r| figure(r).map(|v| (node_labels(r), v)))
                .collect();
            family(&mut encoder, name, help, kind, series)?;
        }
        Ok(())
    }
}

impl AppState {
    fn vms_gauge(&self, s: novacron_api_types::VmState) -> Gauge {
        self.metrics
            .vms
            .get_or_create(&StateLabels {
                state: s.as_str().to_string(),
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use novacron_api_types::stats::NicCounters;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn scrapers_get_the_format_they_prefer() {
        use Exposition::{OpenMetrics, PrometheusText};
        // Prometheus 2.x's own Accept header.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, want) in [
            (Some(prometheus), OpenMetrics),
            (
                Some("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"),
                PrometheusText,
            ),
            (Some("text/plain"), PrometheusText),
            (Some("text/plain; version=0.0.4"), PrometheusText),
            (Some("TEXT/PLAIN;Q=0.9, */*;q=0.1"), PrometheusText),
            (
                Some("application/openmetrics-text; version=1.0.0"),
                OpenMetrics,
            ),
            (
                Some("text/plain;q=0.5,application/openmetrics-text;q=0.5"),
                OpenMetrics,
            ),
            (Some("text/plain;q=0"), OpenMetrics),
            (Some("*/*"), OpenMetrics),
            (Some("application/json"), OpenMetrics),
            (Some(""), OpenMetrics),
            (None, OpenMetrics),
        ] {
            assert_eq!(Exposition::negotiate(accept), want, "{accept:?}");
        }
    }

    /// A registry like the server's: a counter family, a histogram, a gauge family, and the
    /// resource collector with a VM that has a tap, one that has none, and a node.
    fn sample_exposition() -> String {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        requests
            .get_or_create(&RequestLabels {
                method: "GET".into(),
                route: "/api/v1/vms".into(),
                status: 200,
            })
            .inc();
        registry.register("novacron_api_requests", "API requests", requests);
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 4))
        });
        latency
            .get_or_create(&RouteLabels {
                route: "/metrics".into(),
            })
            .observe(0.002);
        registry.register("novacron_api_request_duration_seconds", "latency", latency);
        let rows = ResourceRows {
            vms: vec![
                VmRow {
                    project: "default".into(),
                    vm: "web1".into(),
                    node: "node-a".into(),
                    usage: VmUsage {
                        cpu_seconds: 1.5,
                        rss_bytes: 100 << 20,
                        disk_write_bytes: 4096,
                        disk_write_ops: 1,
                        nic: Some(NicCounters {
                            rx_bytes: 10,
                            tx_bytes: 20,
                            rx_packets: 1,
                            tx_packets: 2,
                        }),
                        ..VmUsage::default()
                    },
                },
                VmRow {
                    project: "team \"b\"".into(),
                    vm: "db1".into(),
                    node: "node-a".into(),
                    usage: VmUsage {
                        balloon_actual_bytes: Some(64 << 20),
                        ..VmUsage::default()
                    },
                },
            ],
            nodes: vec![NodeRow {
                node: "node-a".into(),
                capacity: Resources {
                    cpus: 2,
                    memory_bytes: 4 << 30,
                    disk_bytes: 100 << 30,
                },
                allocated: Resources {
                    cpus: 1,
                    memory_bytes: 128 << 20,
                    disk_bytes: 0,
                },
                vms: 2,
                usage: Some(NodeUsage {
                    cpus: 2,
                    cpu_busy_seconds: 1234.5,
                    ..NodeUsage::default()
                }),
            }],
        };
        registry.register_collector(Box::new(ResourceCollector(Arc::new(Mutex::new(rows)))));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn both_expositions_are_well_formed_and_carry_the_resources() {
        let om = sample_exposition();
        check(&om, true).unwrap_or_else(|e| panic!("OpenMetrics: {e}\n{om}"));
        for want in [
            "# TYPE novacron_vm_cpu_seconds counter",
            r#"novacron_vm_cpu_seconds_total{project="default",vm="web1",node="node-a"} 1.5"#,
            r#"novacron_vm_disk_write_bytes_total{project="default",vm="web1",node="node-a"} 4096"#,
            r#"novacron_vm_network_receive_bytes_total{project="default",vm="web1",node="node-a"} 10"#,
            r#"novacron_vm_balloon_actual_bytes{project="team \"b\"",vm="db1",node="node-a"} 67108864"#,
            r#"novacron_node_allocated_cpus{node="node-a"} 1"#,
            r#"novacron_node_cpu_busy_seconds_total{node="node-a"} 1234.5"#,
        ] {
            assert!(om.contains(want), "{want} missing from\n{om}");
        }
        // Only the VM with a tap has network series; only the one with a balloon, balloon.
        assert!(!om.contains(r#"novacron_vm_network_receive_bytes_total{project="team"#));
        assert_eq!(om.matches("novacron_vm_balloon_actual_bytes{").count(), 1);

        let text = openmetrics_to_prometheus_text(&om);
        check(&text, false).unwrap_or_else(|e| panic!("0.0.4: {e}\n{text}"));
        for want in [
            "# TYPE novacron_vm_cpu_seconds_total counter",
            "# HELP novacron_api_requests_total API requests",
            r#"novacron_vm_cpu_seconds_total{project="default",vm="web1",node="node-a"} 1.5"#,
            "# TYPE novacron_api_request_duration_seconds histogram",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        assert!(!text.contains("# EOF") && !text.contains("_created"));
    }

    #[test]
    fn conversion_drops_what_0_0_4_lacks() {
        let om = "# HELP x_seconds Some \\\"time\\\".\n# TYPE x_seconds counter\n# UNIT x_seconds seconds\nx_seconds_total{a=\"1 # 2\"} 3 # {trace=\"t\"} 1\nx_seconds_created{a=\"1 # 2\"} 1700000000\n# TYPE up unknown\nup 1\n# TYPE build info\nbuild_info{v=\"1\"} 1\n# EOF\n";
        let text = openmetrics_to_prometheus_text(om);
        assert_eq!(
            text,
            "# HELP x_seconds_total Some \"time\".\n# TYPE x_seconds_total counter\nx_seconds_total{a=\"1 # 2\"} 3\n# TYPE up untyped\nup 1\n# TYPE build_info gauge\nbuild_info{v=\"1\"} 1\n"
        );
        check(&text, false).unwrap();
    }

    #[test]
    fn the_checker_catches_broken_expositions() {
        let good = "# TYPE a gauge\na{x=\"1\"} 2\n# EOF\n";
        check(good, true).unwrap();
        for bad in [
            "# TYPE a gauge\na{x=\"1\"} 2\n",                    // no EOF
            "# TYPE a gauge\na{x=\"1} 2\n# EOF\n",               // open quote
            "# TYPE a gauge\na{1x=\"1\"} 2\n# EOF\n",            // bad label name
            "# TYPE a gauge\na 2 3 4\n# EOF\n",                  // junk after the value
            "# TYPE a gauge\nb 2\n# EOF\n",                      // sample of an undeclared family
            "# TYPE a gauge\na two\n# EOF\n",                    // not a number
            "# TYPE a gauge\na 1\n# TYPE a gauge\na 2\n# EOF\n", // family twice
            "# TYPE a counter\na 1\n# EOF\n",                    // counter sample without _total
        ] {
            assert!(check(bad, true).is_err(), "accepted: {bad:?}");
        }
        assert!(check("# TYPE a_total counter\na_total 1\n# EOF\n", false).is_err());
        assert!(
            check("# TYPE a counter\na 1\n", false).is_err(),
            "0.0.4 counters end in _total"
        );
    }

    fn valid_name(n: &str, colons: bool) -> bool {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
    }

    /// Label set `{k="v",...}` at the start of `s`; returns the label names and the rest.
    fn labels(s: &str) -> Result<(Vec<String>, &str), String> {
        let Some(mut rest) = s.strip_prefix('{') else {
            return Ok((vec![], s));
        };
        let mut names = vec![];
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                return Ok((names, r));
            }
            let eq = rest.find('=').ok_or("label without =")?;
            let name = &rest[..eq];
            if !valid_name(name, false) {
                return Err(format!("bad label name {name:?}"));
            }
            names.push(name.to_string());
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("unquoted label value")?;
            let mut end = None;
            let mut escaped = false;
            for (i, c) in rest.char_indices() {
                match c {
                    _ if escaped => {
                        if !matches!(c, '\\' | '"' | 'n') {
                            return Err(format!("bad escape \\{c}"));
                        }
                        escaped = false;
                    }
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    '\n' => return Err("newline in a label value".into()),
                    _ => {}
                }
            }
            rest = &rest[end.ok_or("unterminated label value")? + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }

    /// Well-formedness of an exposition: OpenMetrics 1.0 (`openmetrics`) or Prometheus text
    /// 0.0.4 — names, label sets, values, each sample under its declared family, no family
    /// twice, and the EOF rule of each.
    fn check(text: &str, openmetrics: bool) -> Result<(), String> {
        let mut lines: Vec<&str> = text.lines().collect();
        if openmetrics {
            if lines.pop() != Some("# EOF") || !text.ends_with('\n') {
                return Err("no # EOF at the end".into());
            }
        } else if text.contains("# EOF") {
            return Err("# EOF in 0.0.4".into());
        }
        let mut declared: HashMap<String, String> = HashMap::new();
        let mut done: HashSet<String> = HashSet::new();
        let mut current: Option<(String, String)> = None;
        for line in lines {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or("TYPE without a type")?;
                let kinds: &[&str] = if openmetrics {
                    &[
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "stateset",
                        "unknown",
                        "gaugehistogram",
                    ]
                } else {
                    &["counter", "gauge", "histogram", "summary", "untyped"]
                };
                if !valid_name(name, true) || !kinds.contains(&kind) {
                    return Err(format!("bad TYPE line {line:?}"));
                }
                if !openmetrics && kind == "counter" && !name.ends_with("_total") {
                    return Err(format!("0.0.4 counter {name} without _total"));
                }
                if openmetrics && kind == "counter" && name.ends_with("_total") {
                    return Err(format!("OpenMetrics counter family {name} ends in _total"));
                }
                if declared
                    .insert(name.to_string(), kind.to_string())
                    .is_some()
                {
                    return Err(format!("family {name} declared twice"));
                }
                if let Some((old, _)) = current.take() {
                    done.insert(old);
                }
                current = Some((name.to_string(), kind.to_string()));
                continue;
            }
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# UNIT ").filter(|_| openmetrics))
            {
                let name = rest.split(' ').next().unwrap_or("");
                if !valid_name(name, true) {
                    return Err(format!("bad name in {line:?}"));
                }
                continue;
            }
            if line.starts_with('#') {
                if openmetrics {
                    return Err(format!("unknown comment {line:?}"));
                }
                continue;
            }
            let name_end = line
                .find(['{', ' '])
                .ok_or_else(|| format!("no value: {line:?}"))?;
            let name = &line[..name_end];
            let (label_names, rest) = labels(&line[name_end..])?;
            let mut parts = rest
                .strip_prefix(' ')
                .ok_or("no space before the value")?
                .split(' ');
            let value = parts.next().unwrap_or("");
            if !matches!(value, "+Inf" | "-Inf" | "NaN") && value.parse::<f64>().is_err() {
                return Err(format!("bad value {value:?} in {line:?}"));
            }
            if parts.next().is_some_and(|t| t.parse::<f64>().is_err()) || parts.next().is_some() {
                return Err(format!("junk after the value in {line:?}"));
            }
            let (family, kind) = current
                .clone()
                .ok_or_else(|| format!("sample before any TYPE: {line:?}"))?;
            let suffixes: &[&str] = match (kind.as_str(), openmetrics) {
                ("counter", true) => &["_total", "_created"],
                ("counter", false) | ("gauge" | "untyped" | "unknown", _) => &[""],
                ("histogram", true) => &["_bucket", "_sum", "_count", "_created"],
                ("histogram", false) => &["_bucket", "_sum", "_count"],
                ("info", _) => &["_info"],
                _ => &["", "_sum", "_count", "_created"],
            };
            if !name
                .strip_prefix(family.as_str())
                .is_some_and(|rest| suffixes.contains(&rest))
            {
                return Err(format!(
                    "sample {name} does not belong to family {family} ({kind})"
                ));
            }
            if name.ends_with("_bucket") && !label_names.iter().any(|l| l == "le") {
                return Err(format!("bucket without le: {line:?}"));
            }
            if done.contains(&family) {
                return Err(format!("family {family} interleaved"));
            }
        }
        Ok(())
    }
}
