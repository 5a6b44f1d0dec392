//! Security-group endpoints: create, list, show, delete, rules added and deleted, and a
//! VM's groups set. The logic is in [`crate::security_groups`].

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use novacron_api_types::security::{
    SecurityGroup, SecurityGroupCreateRequest, SecurityRuleAdded, SecurityRuleRequest,
    VmSecurityGroupsRequest,
};
use novacron_api_types::{ApiError, Vm};

use super::images::ProjectQuery;
use super::roles::{Scope, authorize_project};
use super::{Action, ApiResult, Json};
use crate::security_groups;
use crate::state::AppState;

/// Create a security group (no rules yet: a VM in it takes in nothing until rules are
/// added). Refused (409) when the name is taken in the project.
#[utoipa::path(post, path = "/api/v1/security-groups", request_body = SecurityGroupCreateRequest,
    responses((status = 201, body = SecurityGroup), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Json(req): Json<SecurityGroupCreateRequest>,
) -> ApiResult<(StatusCode, AxumJson<SecurityGroup>)> {
    // A project named in the body needs the same role there as the request's project.
    let project = req.project.clone().unwrap_or_else(|| scope.project.clone());
    authorize_project(&state, &scope.principal, &project, Action::Admin)?;
    let group = security_groups::create(&state, &project, &req).await?;
    Ok((StatusCode::CREATED, AxumJson(group)))
}

/// Security groups of one project (`?project=`), or of every project the caller sees.
#[utoipa::path(get, path = "/api/v1/security-groups", params(ProjectQuery),
    responses((status = 200, body = Vec<SecurityGroup>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<AxumJson<Vec<SecurityGroup>>> {
    let mut list = security_groups::list(&state, q.project.as_deref())?;
    list.retain(|g| scope.principal.sees(&g.project));
    Ok(AxumJson(list))
}

/// One security group of the request's project, with its rules.
#[utoipa::path(get, path = "/api/v1/security-groups/{name}", params(("name" = String, Path), ProjectQuery),
    responses((status = 200, body = SecurityGroup), (status = 404, body = ApiError)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<SecurityGroup>> {
    Ok(AxumJson(security_groups::show(
        &state,
        &scope.project,
        &name,
    )?))
}

/// Delete a security group; refused (409) while a VM is in it or a rule of another group
/// names it.
#[utoipa::path(delete, path = "/api/v1/security-groups/{name}", params(("name" = String, Path), ProjectQuery),
    responses((status = 200, body = SecurityGroup), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<SecurityGroup>> {
    Ok(AxumJson(
        security_groups::delete(&state, &scope.project, &name).await?,
    ))
}

/// Add a rule (`in tcp/80 from 10.0.0.0/8`, `in any from group lb`, `out udp/53 to
/// 10.0.0.2`); enforced on every NIC of the group's VMs within about a second.
#[utoipa::path(post, path = "/api/v1/security-groups/{name}/rules", params(("name" = String, Path), ProjectQuery),
    request_body = SecurityRuleRequest,
    responses((status = 201, body = SecurityRuleAdded), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn rule_add(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(name): Path<String>,
    Json(req): Json<SecurityRuleRequest>,
) -> ApiResult<(StatusCode, AxumJson<SecurityRuleAdded>)> {
    let (group, rule) = security_groups::add_rule(&state, &scope.project, &name, &req).await?;
    Ok((
        StatusCode::CREATED,
        AxumJson(SecurityRuleAdded { group, rule }),
    ))
}

/// Delete rule `id` of a security group.
#[utoipa::path(delete, path = "/api/v1/security-groups/{name}/rules/{id}",
    params(("name" = String, Path), ("id" = u32, Path), ProjectQuery),
    responses((status = 200, body = SecurityGroup), (status = 404, body = ApiError)))]
pub async fn rule_delete(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path((name, id)): Path<(String, u32)>,
) -> ApiResult<AxumJson<SecurityGroup>> {
    Ok(AxumJson(
        security_groups::delete_rule(&state, &scope.project, &name, id).await?,
    ))
}

/// Set the security groups of a VM (the whole list; empty leaves its NICs unfiltered).
/// Takes effect on a running VM.
#[utoipa::path(put, path = "/api/v1/vms/{name}/security-groups", params(("name" = String, Path)),
    request_body = VmSecurityGroupsRequest,
    responses((status = 200, body = Vm), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn vm_set(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(name): Path<String>,
    Json(req): Json<VmSecurityGroupsRequest>,
) -> ApiResult<AxumJson<Vm>> {
    let rec =
        security_groups::set_vm_groups(&state, &scope.project, &name, &req.security_groups).await?;
    Ok(AxumJson(super::vms::view(&state, &rec)))
}
