//! Prometheus metrics of the control plane: API requests by route and status with a latency
//! histogram, and VMs by state (counted from the mirror when scraped).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
}

impl ServerMetrics {
    pub fn register(registry: Arc<std::sync::Mutex<Registry>>) -> ServerMetrics {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let vms = Family::<StateLabels, Gauge>::default();
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
        }
        ServerMetrics {
            requests,
            latency,
            vms,
            registry,
        }
    }
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

/// The text exposition, with VM counts refreshed from the mirror.
pub fn render(state: &AppState) -> String {
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
    let mut out = String::new();
    let registry = state
        .metrics
        .registry
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "metrics encoding failed");
    }
    out
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
