//! Audit log endpoints: a filtered list (cluster roles see every record, a project admin the
//! records of its projects), and for cluster roles the chain's head and a JSON Lines export
//! of the whole chain, which `novacron audit verify` checks. The log itself is
//! [`crate::audit`].

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Extension, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use novacron_api_types::audit::{AuditHead, AuditPage};
use novacron_api_types::{ApiError, ErrorCode};
use serde::Deserialize;

use super::ApiResult;
use super::roles::Scope;
use crate::audit::{self, Filter};
use crate::records::store_err;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only records of this project.
    pub project: Option<String>,
    /// Only requests made with this user's tokens.
    pub user: Option<String>,
    /// Only records from this time on (Unix seconds).
    pub since: Option<u64>,
    /// Only records after this number (paging: the previous page's `next_after`).
    pub after: Option<u64>,
    /// At most this many records (default 1000, at most 10000).
    pub limit: Option<usize>,
}

/// Audit records, oldest first. A cluster role sees all of them; anyone else only those of
/// the projects it is admin in (another project answers 404, like a missing one).
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 404, body = ApiError)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<AxumJson<AuditPage>> {
    let p = &scope.principal;
    let visible = if p.cluster.is_some() {
        None
    } else {
        let admin_in: Vec<String> = p
            .projects
            .keys()
            .filter(|name| p.reads_audit_of(name))
            .cloned()
            .collect();
        if let Some(project) = &q.project
            && !p.reads_audit_of(project)
        {
            return Err(if p.sees(project) {
                ApiError::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "reading the audit log of project {project} needs the role admin there"
                    ),
                )
            } else {
                crate::tenancy::no_project(project)
            }
            .into());
        }
        Some(admin_in)
    };
    let records = audit::all_records(state.store.as_ref())
        .await
        .map_err(store_err)?;
    let filter = Filter {
        project: q.project,
        user: q.user,
        since: q.since,
        after: q.after.unwrap_or(0),
        limit: q.limit.unwrap_or(1000),
        visible,
    };
    Ok(AxumJson(audit::page(records, &filter)))
}

/// The chain's head as stored: the last record's number and hash.
#[utoipa::path(get, path = "/api/v1/audit/head", responses((status = 200, body = AuditHead)))]
pub async fn head(State(state): State<Arc<AppState>>) -> ApiResult<AxumJson<AuditHead>> {
    let (h, _) = audit::read_head(state.store.as_ref())
        .await
        .map_err(store_err)?;
    Ok(AxumJson(h))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// Only records from this time on (Unix seconds); the whole chain without it.
    pub since: Option<u64>,
}

/// Every record in chain order, one JSON object per line (`application/x-ndjson`).
#[utoipa::path(get, path = "/api/v1/audit/export", params(ExportQuery),
    responses((status = 200, description = "one AuditRecord per line", content_type = "application/x-ndjson", body = String)))]
pub async fn export(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<impl IntoResponse> {
    let records = audit::all_records(state.store.as_ref())
        .await
        .map_err(store_err)?;
    let mut body = String::new();
    for r in records
        .iter()
        .filter(|r| q.since.is_none_or(|s| r.time >= s))
    {
        let line = serde_json::to_string(r)
            .map_err(|e| ApiError::internal(format!("encoding an audit record: {e}")))?;
        body.push_str(&line);
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body))
}
