//! `GET /api/v1/vms/{name}/metrics`: a VM's recent usage from the control plane's history
//! ([`crate::history`]), for `novacron vm stats` and graphs.

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, Query, State};
use novacron_api_types::stats::VmMetrics;
use serde::Deserialize;

use super::ApiResult;
use super::vms::find;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct MetricsQuery {
    /// Only samples taken at or after this time (Unix seconds); default: all that is kept
    /// (the last hour).
    pub since: Option<u64>,
}

/// A VM's recent usage: every sample kept since `since`, the newest one, and the rates
/// between the two newest. Empty until the VM's agent sent a sample (the VM runs).
#[utoipa::path(get, path = "/api/v1/vms/{name}/metrics", tag = "vms", params(("name" = String, Path), MetricsQuery),
    responses((status = 200, body = VmMetrics), (status = 404, body = novacron_api_types::ApiError)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<AxumJson<VmMetrics>> {
    let vm = find(&state, &name)?;
    let history = state
        .metrics
        .history
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    Ok(AxumJson(history.vm_metrics(
        &vm.project,
        &vm.name,
        &vm.uuid,
        q.since.map(|s| s.saturating_mul(1000)),
    )))
}
