//! Tenancy endpoints: projects (with limits and usage), users, role bindings, API tokens and
//! login. Which role each needs is in the route table (`api::role_routers`); the logic is in
//! [`crate::tenancy`] and [`crate::quota`].

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use novacron_api_types::ApiError;
use novacron_api_types::tenancy::{
    ApiToken, LoginRequest, Project, ProjectCreateRequest, ProjectSetRequest, ProjectUsageReport,
    RoleBinding, TokenCreateRequest, TokenCreated, User, UserCreateRequest, WhoAmI,
};

use super::roles::Scope;
use super::{ApiResult, Json};
use crate::state::AppState;
use crate::tenancy;

/// Create a project (cluster-admin).
#[utoipa::path(post, path = "/api/v1/projects", request_body = ProjectCreateRequest,
    responses((status = 201, body = Project), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn project_create(
    State(state): State<Arc<AppState>>,
    Json(req): Json<ProjectCreateRequest>,
) -> ApiResult<(StatusCode, AxumJson<Project>)> {
    let p = tenancy::create_project(&state, &req).await?;
    Ok((StatusCode::CREATED, AxumJson(p)))
}

/// Who the caller's token is and what roles it holds: what a client (the web console) asks
/// before offering pages and actions, instead of trying routes it may not call.
#[utoipa::path(get, path = "/api/v1/whoami", responses((status = 200, body = WhoAmI)))]
pub async fn whoami(Extension(scope): Extension<Scope>) -> AxumJson<WhoAmI> {
    let p = &scope.principal;
    AxumJson(WhoAmI {
        who: p.who.clone(),
        user: p.user.clone(),
        cluster_role: p.cluster,
        projects: p.projects.clone(),
        home_project: p.home.clone(),
    })
}

/// The projects the caller may see.
#[utoipa::path(get, path = "/api/v1/projects", responses((status = 200, body = Vec<Project>)))]
pub async fn project_list(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<AxumJson<Vec<Project>>> {
    Ok(AxumJson(tenancy::list_projects(&state, &scope.principal)))
}

/// One project.
#[utoipa::path(get, path = "/api/v1/projects/{project}", params(("project" = String, Path)),
    responses((status = 200, body = Project), (status = 404, body = ApiError)))]
pub async fn project_show(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<AxumJson<Project>> {
    Ok(AxumJson(crate::quota::project(&state, &project).await?.0))
}

/// Change a project's description or limits (cluster-admin); limits not given stay.
#[utoipa::path(put, path = "/api/v1/projects/{project}", params(("project" = String, Path)), request_body = ProjectSetRequest,
    responses((status = 200, body = Project), (status = 404, body = ApiError)))]
pub async fn project_set(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    Json(req): Json<ProjectSetRequest>,
) -> ApiResult<AxumJson<Project>> {
    Ok(AxumJson(
        tenancy::set_project(&state, &project, &req).await?,
    ))
}

/// Delete a project (cluster-admin): refused (409) while it holds VMs, networks or images.
#[utoipa::path(delete, path = "/api/v1/projects/{project}", params(("project" = String, Path)),
    responses((status = 200, body = Project), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn project_delete(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<AxumJson<Project>> {
    Ok(AxumJson(tenancy::delete_project(&state, &project).await?))
}

/// What a project holds, and its limits.
#[utoipa::path(get, path = "/api/v1/projects/{project}/usage", params(("project" = String, Path)),
    responses((status = 200, body = ProjectUsageReport), (status = 404, body = ApiError)))]
pub async fn project_usage(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<AxumJson<ProjectUsageReport>> {
    let (p, _) = crate::quota::project(&state, &project).await?;
    let mut usage = crate::quota::usage(&state, &project).await?;
    usage.backup_storage_bytes = super::backups::held_by_project(&state, &project)
        .await?
        .iter()
        .map(|(_, bytes)| bytes)
        .sum();
    Ok(AxumJson(ProjectUsageReport {
        project,
        usage,
        limits: p.limits,
    }))
}

/// Create a local user (cluster-admin); the password is stored only as an argon2id hash.
#[utoipa::path(post, path = "/api/v1/users", request_body = UserCreateRequest,
    responses((status = 201, body = User), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn user_create(
    State(state): State<Arc<AppState>>,
    Json(req): Json<UserCreateRequest>,
) -> ApiResult<(StatusCode, AxumJson<User>)> {
    Ok((
        StatusCode::CREATED,
        AxumJson(tenancy::create_user(&state, &req).await?),
    ))
}

/// Every local user.
#[utoipa::path(get, path = "/api/v1/users", responses((status = 200, body = Vec<User>)))]
pub async fn user_list(State(state): State<Arc<AppState>>) -> ApiResult<AxumJson<Vec<User>>> {
    Ok(AxumJson(tenancy::list_users(&state)))
}

/// Delete a user with its role bindings and tokens.
#[utoipa::path(delete, path = "/api/v1/users/{name}", params(("name" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = ApiError)))]
pub async fn user_delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<User>> {
    Ok(AxumJson(tenancy::delete_user(&state, &name).await?))
}

/// Bind a user to a role in a project (`project` set) or in the cluster.
#[utoipa::path(post, path = "/api/v1/role-bindings", request_body = RoleBinding,
    responses((status = 201, body = RoleBinding), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub async fn binding_add(
    State(state): State<Arc<AppState>>,
    Json(req): Json<RoleBinding>,
) -> ApiResult<(StatusCode, AxumJson<RoleBinding>)> {
    Ok((
        StatusCode::CREATED,
        AxumJson(tenancy::add_binding(&state, &req).await?),
    ))
}

/// Every role binding.
#[utoipa::path(get, path = "/api/v1/role-bindings", responses((status = 200, body = Vec<RoleBinding>)))]
pub async fn binding_list(
    State(state): State<Arc<AppState>>,
) -> ApiResult<AxumJson<Vec<RoleBinding>>> {
    Ok(AxumJson(tenancy::list_bindings(&state)))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BindingScopeQuery {
    /// The project of the binding to remove (without it: the cluster binding).
    #[serde(default)]
    pub project: Option<String>,
}

/// Remove a user's role binding in a project (`?project=`) or in the cluster.
#[utoipa::path(delete, path = "/api/v1/role-bindings/{user}", params(("user" = String, Path), BindingScopeQuery),
    responses((status = 200, body = RoleBinding), (status = 404, body = ApiError)))]
pub async fn binding_remove(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    Query(q): Query<BindingScopeQuery>,
) -> ApiResult<AxumJson<RoleBinding>> {
    Ok(AxumJson(
        tenancy::remove_binding(&state, &user, q.project.as_deref()).await?,
    ))
}

/// Mint an API token. The answer holds the token itself, shown this once: the control plane
/// keeps only its BLAKE3 hash.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = TokenCreateRequest,
    responses((status = 201, body = TokenCreated), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
pub async fn token_create(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Json(req): Json<TokenCreateRequest>,
) -> ApiResult<(StatusCode, AxumJson<TokenCreated>)> {
    let (token, info) =
        tenancy::create_token(&state, &scope.principal, &scope.project, &req).await?;
    Ok((StatusCode::CREATED, AxumJson(TokenCreated { token, info })))
}

/// The API tokens the caller manages (never the secrets).
#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = Vec<ApiToken>)))]
pub async fn token_list(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
) -> ApiResult<AxumJson<Vec<ApiToken>>> {
    Ok(AxumJson(tenancy::list_tokens(
        &state,
        &scope.principal,
        &scope.project,
    )))
}

/// Revoke an API token: it authenticates nothing any more.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ApiToken), (status = 404, body = ApiError)))]
pub async fn token_revoke(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<ApiToken>> {
    Ok(AxumJson(
        tenancy::revoke_token(&state, &scope.principal, &scope.project, &id).await?,
    ))
}

/// Exchange a user's password for a token acting for that user (30 days unless asked).
#[utoipa::path(post, path = "/api/v1/login", request_body = LoginRequest,
    responses((status = 201, body = TokenCreated), (status = 401, body = ApiError)))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    Json(req): Json<LoginRequest>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut resp = match tenancy::login(&state, &req).await {
        Ok((token, info)) => {
            (StatusCode::CREATED, AxumJson(TokenCreated { token, info })).into_response()
        }
        Err(e) => super::ApiFailure::from(e).into_response(),
    };
    // The audit log names who tried, whether or not the password was right.
    resp.extensions_mut().insert(crate::audit::AuditLogin(
        req.user.chars().take(64).collect(),
    ));
    resp
}
