//! Overlay-network endpoints (admin only): create, list, show, delete. The logic is in
//! [`crate::networks`].

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use novacron_api_types::ApiError;
use novacron_api_types::overlay::{NetworkCreateRequest, OverlayNetwork};

use super::images::ProjectQuery;
use super::roles::{Scope, authorize_project};
use super::{Action, ApiResult, Json};
use crate::networks;
use crate::state::AppState;

/// Create an overlay network: a subnet and a VXLAN VNI unique in the cluster. Refused
/// (nothing stored) on a bad CIDR, a gateway outside the subnet, an MTU out of range, a
/// name taken in the project (409) or a subnet overlapping one of the project's (409).
#[utoipa::path(post, path = "/api/v1/networks", request_body = NetworkCreateRequest,
    responses((status = 201, body = OverlayNetwork), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Json(mut req): Json<NetworkCreateRequest>,
) -> ApiResult<(StatusCode, AxumJson<OverlayNetwork>)> {
    // A project named in the body needs the same role there as the request's project.
    let project = req.project.get_or_insert_with(|| scope.project.clone());
    authorize_project(&state, &scope.principal, project, Action::Admin)?;
    let network = networks::create(&state, &req).await?;
    Ok((StatusCode::CREATED, AxumJson(network)))
}

/// Overlay networks of one project (`?project=`), or of every project the caller sees.
#[utoipa::path(get, path = "/api/v1/networks", params(ProjectQuery),
    responses((status = 200, body = Vec<OverlayNetwork>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<AxumJson<Vec<OverlayNetwork>>> {
    let mut list = networks::list(&state, q.project.as_deref()).await?;
    list.retain(|n| scope.principal.sees(&n.project));
    Ok(AxumJson(list))
}

/// One overlay network of the request's project (`?project=`, the project header, a
/// project-scoped token's, else `default`).
#[utoipa::path(get, path = "/api/v1/networks/{name}", params(("name" = String, Path), ProjectQuery),
    responses((status = 200, body = OverlayNetwork), (status = 404, body = ApiError)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<OverlayNetwork>> {
    Ok(AxumJson(
        networks::show(&state, &scope.project, &name).await?,
    ))
}

/// Delete an overlay network of the request's project and free its VNI; refused (409) while
/// a VM uses it.
#[utoipa::path(delete, path = "/api/v1/networks/{name}", params(("name" = String, Path), ProjectQuery),
    responses((status = 200, body = OverlayNetwork), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<OverlayNetwork>> {
    Ok(AxumJson(
        networks::delete(&state, &scope.project, &name).await?,
    ))
}
