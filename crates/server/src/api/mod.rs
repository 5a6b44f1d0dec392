//! The REST API under `/api/v1`: the role routers (every route on exactly one, see
//! [`roles`]), the error body, and the OpenAPI document.

pub mod agent;
pub mod audit;
pub mod backups;
pub mod body;
pub mod cluster;
pub mod console;
pub mod disks;
pub mod events;
pub mod exec;
pub mod images;
pub mod join_tokens;
pub mod migrations;
pub mod networks;
pub mod nics;
pub mod nodes;
pub mod openapi;
pub mod operations;
pub mod roles;
pub mod security_groups;
pub mod snapshots;
pub mod tenancy;
pub mod vm_metrics;
pub mod vms;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use novacron_api_types::{ApiError, ErrorCode, Health};
use novacron_store::StoreError;

use crate::state::AppState;
pub use roles::{Access, Action};

/// An [`ApiError`] on its way to becoming an HTTP answer.
#[derive(Debug)]
pub struct ApiFailure(pub ApiError);

pub type ApiResult<T> = Result<T, ApiFailure>;

impl From<ApiError> for ApiFailure {
    fn from(e: ApiError) -> Self {
        ApiFailure(e)
    }
}

impl From<StoreError> for ApiFailure {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        ApiFailure(ApiError::unavailable(format!(
            "the state store failed: {e}"
        )))
    }
}

impl From<novacron_api_types::NameError> for ApiFailure {
    fn from(e: novacron_api_types::NameError) -> Self {
        ApiFailure(ApiError::invalid(e.to_string()))
    }
}

impl From<novacron_api_types::Invalid> for ApiFailure {
    fn from(e: novacron_api_types::Invalid) -> Self {
        ApiFailure(e.into())
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0)).into_response()
    }
}

pub use body::Json;

pub fn json_bytes<T: serde::Serialize>(v: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| ApiFailure(ApiError::internal(format!("encoding: {e}"))))
}

/// One route: its method, its path template, and the role router it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// The routes of one role: each route added is recorded in the route table and goes behind
/// that role's gate (nothing else adds routes to the API router).
struct RoleRouter {
    access: Access,
    router: Router<Arc<AppState>>,
    routes: Vec<RouteInfo>,
}

impl RoleRouter {
    fn new(access: Access) -> Self {
        RoleRouter {
            access,
            router: Router::new(),
            routes: vec![],
        }
    }

    /// Adds `method path`; `endpoint` must answer exactly `method` (see the helpers below).
    fn on(
        mut self,
        method: Method,
        path: &'static str,
        endpoint: MethodRouter<Arc<AppState>>,
    ) -> Self {
        self.routes.push(RouteInfo {
            method,
            path,
            access: self.access,
        });
        self.router = self.router.route(path, endpoint);
        self
    }

    fn get<H: Handler<T, Arc<AppState>>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::GET, path, get(h))
    }

    fn post<H: Handler<T, Arc<AppState>>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::POST, path, post(h))
    }

    fn put<H: Handler<T, Arc<AppState>>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::PUT, path, put(h))
    }

    fn delete<H: Handler<T, Arc<AppState>>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::DELETE, path, delete(h))
    }

    /// The router with its gate (public routes have none), and its routes.
    fn finish(self) -> (Router<Arc<AppState>>, Vec<RouteInfo>) {
        let router = match self.access {
            Access::Public => self.router,
            access => self
                .router
                .route_layer(axum::middleware::from_fn_with_state(access, roles::gate)),
        };
        (router, self.routes)
    }
}

/// The role routers, unassembled: (public, token-checked) routers and every route.
fn role_routers() -> (Router<Arc<AppState>>, Router<Arc<AppState>>, Vec<RouteInfo>) {
    let public = RoleRouter::new(Access::Public)
        .get("/api/v1/health", health)
        .get("/api/v1/cluster/ca", cluster_ca)
        .get("/api/v1/openapi.json", openapi::document);

    let public = public.post("/api/v1/login", tenancy::login);

    // A project's resources: the caller's role in the request's project decides.
    let project_read = RoleRouter::new(Access::Project(Action::Read))
        .get("/api/v1/vms", vms::list)
        .get("/api/v1/vms/{name}", vms::show)
        .get("/api/v1/vms/{name}/console", console::log)
        .get("/api/v1/vms/{name}/metrics", vm_metrics::show)
        .get("/api/v1/vms/{name}/snapshots", snapshots::list)
        .get("/api/v1/operations", operations::list)
        .get("/api/v1/operations/{id}", operations::show)
        .get("/api/v1/images", images::list)
        .get("/api/v1/images/{name}", images::show)
        .get("/api/v1/migrations", migrations::list)
        .get("/api/v1/migrations/{id}", migrations::show)
        .get("/api/v1/networks", networks::list)
        .get("/api/v1/networks/{name}", networks::show)
        .get("/api/v1/security-groups", security_groups::list)
        .get("/api/v1/security-groups/{name}", security_groups::show)
        .get("/api/v1/backup/schedules", backups::schedule_list)
        .get("/api/v1/backups", backups::list)
        .get("/api/v1/backups/{id}", backups::show)
        .get("/api/v1/projects/{project}", tenancy::project_show)
        .get("/api/v1/projects/{project}/usage", tenancy::project_usage);

    let project_operate = RoleRouter::new(Access::Project(Action::Operate))
        .post("/api/v1/vms/{name}/start", vms::start)
        .post("/api/v1/vms/{name}/stop", vms::stop)
        .post("/api/v1/vms/{name}/reboot", vms::reboot)
        .post("/api/v1/vms/{name}/pause", vms::pause)
        .post("/api/v1/vms/{name}/resume", vms::resume)
        .post("/api/v1/vms/{name}/snapshots", snapshots::create)
        .post(
            "/api/v1/vms/{name}/snapshots/{snapshot}/revert",
            snapshots::revert,
        )
        .delete("/api/v1/vms/{name}/snapshots/{snapshot}", snapshots::delete)
        .get("/api/v1/vms/{name}/console/attach", console::attach)
        .get("/api/v1/vms/{name}/console/ws", console::websocket)
        .get("/api/v1/vms/{name}/vnc", console::vnc)
        .get("/api/v1/vms/{name}/vnc/ws", console::vnc_websocket)
        .post("/api/v1/vms/{name}/exec", exec::exec)
        .post("/api/v1/vms/{name}/backup", backups::create)
        .post("/api/v1/backups/{id}/restore", backups::restore)
        .post("/api/v1/vms/{name}/migrate", migrations::start)
        .post("/api/v1/migrations/{id}/cancel", migrations::cancel);

    let project_admin = RoleRouter::new(Access::Project(Action::Admin))
        .post("/api/v1/vms", vms::create)
        .delete("/api/v1/vms/{name}", vms::delete)
        .post("/api/v1/vms/{name}/set", vms::set)
        .post("/api/v1/vms/{name}/disks", disks::add)
        .delete("/api/v1/vms/{name}/disks/{disk}", disks::detach)
        .post("/api/v1/vms/{name}/nics", nics::add)
        .delete("/api/v1/vms/{name}/nics/{nic}", nics::remove)
        .post("/api/v1/vms/{name}/disks/{disk}/resize", disks::resize)
        .post("/api/v1/vms/{name}/template", disks::template)
        .post("/api/v1/vms/{name}/clone", disks::clone)
        .post("/api/v1/images/build-tiny", images::build_tiny)
        .delete("/api/v1/images/{name}", images::delete)
        .on(
            Method::PUT,
            "/api/v1/images/{name}/import",
            put(images::import).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .post("/api/v1/images/{name}/import-url", images::import_url)
        .get("/api/v1/local-files", images::local_files)
        .post("/api/v1/images/{name}/import-local", images::import_local)
        .post(
            "/api/v1/images/{name}/import-ova-local",
            images::import_ova_local,
        )
        .on(
            Method::PUT,
            "/api/v1/images/{name}/import-ova",
            put(images::import_ova).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .delete("/api/v1/backups/{id}", backups::delete)
        .post("/api/v1/backup/schedules", backups::schedule_set)
        .delete("/api/v1/backup/schedules/{vm}", backups::schedule_delete)
        .post("/api/v1/networks", networks::create)
        .delete("/api/v1/networks/{name}", networks::delete)
        .post("/api/v1/security-groups", security_groups::create)
        .delete("/api/v1/security-groups/{name}", security_groups::delete)
        .post(
            "/api/v1/security-groups/{name}/rules",
            security_groups::rule_add,
        )
        .delete(
            "/api/v1/security-groups/{name}/rules/{id}",
            security_groups::rule_delete,
        )
        .on(
            Method::PUT,
            "/api/v1/vms/{name}/security-groups",
            put(security_groups::vm_set),
        )
        .post("/api/v1/tokens", tenancy::token_create)
        .get("/api/v1/tokens", tenancy::token_list)
        .delete("/api/v1/tokens/{id}", tenancy::token_revoke);

    // The cluster's resources. Repositories are the cluster's; the backups in them are
    // their VMs' projects'.
    let cluster_read = RoleRouter::new(Access::Cluster(Action::Read))
        .get("/api/v1/nodes", nodes::list)
        .get("/api/v1/nodes/{name}", nodes::show)
        .get("/api/v1/backup/repos", backups::repo_list)
        .get("/api/v1/cluster/status", cluster::status)
        .get("/api/v1/storage", cluster::storage_list)
        .get("/api/v1/users", tenancy::user_list)
        .get("/api/v1/role-bindings", tenancy::binding_list)
        .get("/api/v1/audit/head", audit::head)
        .get("/api/v1/audit/export", audit::export)
        .get("/metrics", metrics);

    let cluster_admin = RoleRouter::new(Access::Cluster(Action::Admin))
        .delete("/api/v1/nodes/{name}", nodes::delete)
        .post("/api/v1/nodes/{name}/{action}", nodes::action)
        .post("/api/v1/backup/repos", backups::repo_add)
        .post("/api/v1/backup/repos/{name}/verify", backups::verify)
        .post("/api/v1/backup/repos/{name}/prune", backups::prune)
        .post("/api/v1/backup/repos/{name}/gc", backups::gc)
        .post("/api/v1/backup/repos/{name}/sync", backups::sync)
        .post("/api/v1/evacuations/plan", migrations::evacuation_plan)
        .post("/api/v1/join-tokens", join_tokens::create)
        .get("/api/v1/join-tokens", join_tokens::list)
        .delete("/api/v1/join-tokens/{id}", join_tokens::revoke)
        .post("/api/v1/storage", cluster::storage_add)
        .delete("/api/v1/storage/{name}", cluster::storage_delete)
        .post("/api/v1/projects", tenancy::project_create)
        .put("/api/v1/projects/{project}", tenancy::project_set)
        .delete("/api/v1/projects/{project}", tenancy::project_delete)
        .post("/api/v1/users", tenancy::user_create)
        .delete("/api/v1/users/{name}", tenancy::user_delete)
        .post("/api/v1/role-bindings", tenancy::binding_add)
        .delete("/api/v1/role-bindings/{user}", tenancy::binding_remove);

    // Any user or API token; the handler shows only what the caller may see.
    let authenticated = RoleRouter::new(Access::Authenticated)
        .get("/api/v1/whoami", tenancy::whoami)
        .get("/api/v1/projects", tenancy::project_list)
        .get("/api/v1/audit", audit::list)
        .get("/api/v1/events", events::stream);

    // What agents call. Operations, migrations and images have no node-readable list or show:
    // a node reports on (and learns the outcome of) its own migrations and operations
    // through these routes, with a party check in each handler.
    let node = RoleRouter::new(Access::Node)
        .post("/api/v1/agent/heartbeat", agent::heartbeat)
        .get("/api/v1/agent/vms", agent::desired_vms)
        .get("/api/v1/agent/overlay", agent::overlay)
        .put(
            "/api/v1/agent/vms/{project}/{name}/status",
            agent::report_status,
        )
        .put(
            "/api/v1/agent/operations/{id}",
            backups::agent_update_operation,
        )
        .put("/api/v1/agent/migrations/{id}", migrations::agent_report)
        .post(
            "/api/v1/agent/migrations/{id}/commit",
            migrations::agent_commit,
        )
        .post(
            "/api/v1/agent/migrations/{id}/abort",
            migrations::agent_abort,
        );

    let register =
        RoleRouter::new(Access::Register).post("/api/v1/agent/register", agent::register);

    let image_files = RoleRouter::new(Access::NodeOrAdmin)
        .get("/api/v1/images/{name}/files/{role}", images::download);

    let (public, mut routes) = public.finish();
    let mut authed = Router::new();
    for r in [
        project_read,
        project_operate,
        project_admin,
        cluster_read,
        cluster_admin,
        authenticated,
        node,
        register,
        image_files,
    ] {
        let (router, more) = r.finish();
        authed = authed.merge(router);
        routes.extend(more);
    }
    (public, authed, routes)
}

/// Every route of the API with its role router (the OpenAPI document lists the same ones).
pub fn route_table() -> Vec<RouteInfo> {
    role_routers().2
}

/// The whole API: the public router, and the role routers behind the token check.
pub fn router(state: Arc<AppState>) -> Router {
    let (public, authed, _) = role_routers();
    let authed = authed.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::auth::authenticate,
    ));
    authed
        .merge(public)
        // Around every route (not the fallback): who did what, into the audit log.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::record,
        ))
        .merge(crate::ui::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(body::drain_refused_bodies))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(axum::middleware::from_fn(body::json_errors))
        .with_state(state)
}

async fn not_found() -> ApiFailure {
    ApiFailure(ApiError::new(
        ErrorCode::NotFound,
        "no such API route (see /api/v1/openapi.json)",
    ))
}

/// Liveness of the control plane and its store.
#[utoipa::path(get, path = "/api/v1/health", tag = "cluster", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> ApiResult<axum::Json<Health>> {
    let store = match state.store.revision().await {
        Ok(rev) => format!("ok (revision {rev})"),
        Err(e) => return Err(ApiFailure(ApiError::unavailable(format!("store: {e}")))),
    };
    Ok(axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        store,
    }))
}

/// The cluster CA certificate (public), which join tokens pin.
#[utoipa::path(get, path = "/api/v1/cluster/ca", tag = "cluster", responses((status = 200, content_type = "application/x-pem-file", body = String)))]
pub async fn cluster_ca(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        state.ca.identity.cert_pem.clone(),
    )
}

/// Control-plane metrics, with every VM's and node's usage (see docs/metrics.md):
/// OpenMetrics text, or Prometheus text 0.0.4 when `Accept` prefers `text/plain`.
#[utoipa::path(get, path = "/metrics", tag = "cluster", responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = crate::metrics::Exposition::negotiate(accept);
    Ok((
        [(axum::http::header::CONTENT_TYPE, format.content_type())],
        crate::metrics::render(&state, format),
    ))
}
