//! Join-token endpoints (admin only): create (the token is in this one answer), list (never
//! the secrets), revoke. The logic is in [`crate::join_tokens`].

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use novacron_api_types::ApiError;
use novacron_api_types::join_token::{JoinTokenCreateRequest, JoinTokenCreated, JoinTokenInfo};

use super::{ApiResult, Json};
use crate::join_tokens;
use crate::state::AppState;

/// Mint a join token. The answer holds the token itself, shown this once: the control plane
/// keeps only its hash.
#[utoipa::path(post, path = "/api/v1/join-tokens", request_body = JoinTokenCreateRequest,
    responses((status = 201, body = JoinTokenCreated), (status = 400, body = ApiError)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Json(req): Json<JoinTokenCreateRequest>,
) -> ApiResult<(StatusCode, AxumJson<JoinTokenCreated>)> {
    let (secret, info) = join_tokens::create(&state, &req).await?;
    let token = crate::join_token_string(&state.ca.identity.cert_pem, &secret)
        .map_err(|e| ApiError::internal(format!("cluster CA: {e}")))?;
    Ok((
        StatusCode::CREATED,
        AxumJson(JoinTokenCreated { token, info }),
    ))
}

/// Every join token: id, name, created, expires, single-use, used, revoked (never the secret).
#[utoipa::path(get, path = "/api/v1/join-tokens", responses((status = 200, body = Vec<JoinTokenInfo>)))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<AxumJson<Vec<JoinTokenInfo>>> {
    Ok(AxumJson(join_tokens::list(&state).await?))
}

/// Revoke a join token: it registers no more nodes (nodes it registered are not affected).
#[utoipa::path(delete, path = "/api/v1/join-tokens/{id}", params(("id" = String, Path)),
    responses((status = 200, body = JoinTokenInfo), (status = 404, body = ApiError)))]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<JoinTokenInfo>> {
    Ok(AxumJson(join_tokens::revoke(&state, &id).await?))
}
