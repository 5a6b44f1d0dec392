//! The REST API under `/api/v1`: routes, the error body, and the OpenAPI document.

pub mod agent;
pub mod backups;
pub mod cluster;
pub mod console;
pub mod images;
pub mod migrations;
pub mod nodes;
pub mod openapi;
pub mod operations;
pub mod vms;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use novacron_api_types::{ApiError, ErrorCode, Health};
use novacron_store::StoreError;

use crate::state::AppState;

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

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0)).into_response()
    }
}

/// JSON body extractor whose rejections use the standard error body.
pub struct Json<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiFailure;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rej) => Err(ApiFailure(ApiError::invalid(format!(
                "invalid request body: {}",
                rej.body_text()
            )))),
        }
    }
}

pub fn json_bytes<T: serde::Serialize>(v: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| ApiFailure(ApiError::internal(format!("encoding: {e}"))))
}

/// The whole API router (authenticated routes behind the token check).
pub fn router(state: Arc<AppState>) -> Router {
    let authed = Router::new()
        .route("/api/v1/vms", post(vms::create).get(vms::list))
        .route("/api/v1/vms/{name}", get(vms::show).delete(vms::delete))
        .route("/api/v1/vms/{name}/start", post(vms::start))
        .route("/api/v1/vms/{name}/stop", post(vms::stop))
        .route("/api/v1/vms/{name}/reboot", post(vms::reboot))
        .route("/api/v1/vms/{name}/pause", post(vms::pause))
        .route("/api/v1/vms/{name}/resume", post(vms::resume))
        .route("/api/v1/vms/{name}/console", get(console::log))
        .route("/api/v1/vms/{name}/console/attach", get(console::attach))
        .route("/api/v1/operations", get(operations::list))
        .route("/api/v1/operations/{id}", get(operations::show))
        .route("/api/v1/nodes", get(nodes::list))
        .route(
            "/api/v1/nodes/{name}",
            get(nodes::show).delete(nodes::delete),
        )
        .route("/api/v1/nodes/{name}/{action}", post(nodes::action))
        .route("/api/v1/images", get(images::list))
        .route("/api/v1/images/build-tiny", post(images::build_tiny))
        .route(
            "/api/v1/images/{name}",
            get(images::show).delete(images::delete),
        )
        .route(
            "/api/v1/images/{name}/import",
            put(images::import).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/v1/images/{name}/files/{role}", get(images::download))
        .route("/api/v1/agent/register", post(agent::register))
        .route("/api/v1/agent/heartbeat", post(agent::heartbeat))
        .route("/api/v1/agent/vms", get(agent::desired_vms))
        .route(
            "/api/v1/agent/vms/{project}/{name}/status",
            put(agent::report_status),
        )
        .route(
            "/api/v1/backup/repos",
            get(backups::repo_list).post(backups::repo_add),
        )
        .route("/api/v1/backup/repos/{name}/verify", post(backups::verify))
        .route("/api/v1/backup/repos/{name}/prune", post(backups::prune))
        .route("/api/v1/backup/repos/{name}/gc", post(backups::gc))
        .route("/api/v1/backup/repos/{name}/sync", post(backups::sync))
        .route("/api/v1/backups", get(backups::list))
        .route("/api/v1/backups/{id}", get(backups::show))
        .route("/api/v1/backups/{id}/restore", post(backups::restore))
        .route("/api/v1/vms/{name}/backup", post(backups::create))
        .route(
            "/api/v1/backup/schedules",
            get(backups::schedule_list).post(backups::schedule_set),
        )
        .route(
            "/api/v1/backup/schedules/{vm}",
            axum::routing::delete(backups::schedule_delete),
        )
        .route(
            "/api/v1/agent/operations/{id}",
            put(backups::agent_update_operation),
        )
        .route("/api/v1/vms/{name}/migrate", post(migrations::start))
        .route("/api/v1/migrations", get(migrations::list))
        .route("/api/v1/migrations/{id}", get(migrations::show))
        .route("/api/v1/migrations/{id}/cancel", post(migrations::cancel))
        .route(
            "/api/v1/evacuations/plan",
            post(migrations::evacuation_plan),
        )
        .route(
            "/api/v1/agent/migrations/{id}",
            put(migrations::agent_report),
        )
        .route(
            "/api/v1/agent/migrations/{id}/commit",
            post(migrations::agent_commit),
        )
        .route(
            "/api/v1/agent/migrations/{id}/abort",
            post(migrations::agent_abort),
        )
        .route("/api/v1/cluster/status", get(cluster::status))
        .route(
            "/api/v1/storage",
            get(cluster::storage_list).post(cluster::storage_add),
        )
        .route(
            "/api/v1/storage/{name}",
            axum::routing::delete(cluster::storage_delete),
        )
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ));
    let open = Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/cluster/ca", get(cluster_ca))
        .route("/api/v1/openapi.json", get(openapi::document));
    authed
        .merge(open)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

async fn not_found() -> ApiFailure {
    ApiFailure(ApiError::new(
        ErrorCode::NotFound,
        "no such API route (see /api/v1/openapi.json)",
    ))
}

/// Liveness of the control plane and its store.
#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, body = Health)))]
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
#[utoipa::path(get, path = "/api/v1/cluster/ca", responses((status = 200, content_type = "application/x-pem-file", body = String)))]
pub async fn cluster_ca(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        state.ca.identity.cert_pem.clone(),
    )
}

async fn metrics(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::render(&state),
    ))
}
