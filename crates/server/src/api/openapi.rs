//! The OpenAPI document, generated from the handlers and types themselves. Each operation
//! carries the role router it is on (`x-novacron-access`: public, admin, node, register,
//! node-or-admin), and public ones say they need no token.

use axum::http::Method;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{
    Access, agent, backups, cluster, console, events, images, join_tokens, migrations, nodes,
    operations, vms,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "NovaCron API", description = "Control plane of the NovaCron distributed hypervisor. Every call except health, cluster/ca and this document needs `Authorization: Bearer <token>`; `x-novacron-access` on each operation says which token kinds it takes (admin; node; register: join, node or admin; node-or-admin)."),
    paths(
        super::health, super::cluster_ca, document, super::metrics,
        vms::create, vms::list, vms::show, vms::start, vms::stop, vms::reboot, vms::pause, vms::resume, vms::delete,
        console::log, console::attach,
        operations::show, operations::list, events::stream,
        nodes::list, nodes::show, nodes::action, nodes::delete,
        join_tokens::create, join_tokens::list, join_tokens::revoke,
        images::list, images::show, images::build_tiny, images::import, images::download, images::delete,
        agent::register, agent::heartbeat, agent::desired_vms, agent::report_status,
        cluster::status, cluster::storage_list, cluster::storage_add, cluster::storage_delete,
        backups::repo_add, backups::repo_list, backups::list, backups::show, backups::create, backups::restore,
        backups::verify, backups::prune, backups::gc, backups::sync, backups::schedule_set, backups::schedule_list,
        backups::schedule_delete, backups::agent_update_operation,
        migrations::start, migrations::list, migrations::show, migrations::cancel, migrations::evacuation_plan,
        migrations::agent_report, migrations::agent_commit, migrations::agent_abort,
    ),
    modifiers(&BearerAuth, &RoleAccess, &OperationIds),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// Marks every operation with its role router, from the route table the API router is built from.
struct RoleAccess;

impl utoipa::Modify for RoleAccess {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for route in super::route_table() {
            let Some(item) = openapi.paths.paths.get_mut(route.path) else {
                continue; // the unit test below catches a route missing from the document
            };
            let Some(op) = operation_mut(item, route.method.clone()) else {
                continue;
            };
            op.extensions
                .get_or_insert_with(Default::default)
                .insert("x-novacron-access".into(), route.access.name().into());
            if route.access == Access::Public {
                op.security = Some(vec![]);
            }
        }
    }
}

/// Names every operation after its method and path (`GET /api/v1/vms/{name}` is
/// `get_vms_by_name`): unique by construction, where the handlers' function names (`list`,
/// `show`, `create` in every module) are not.
struct OperationIds;

impl utoipa::Modify for OperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for route in super::route_table() {
            if let Some(op) = openapi
                .paths
                .paths
                .get_mut(route.path)
                .and_then(|item| operation_mut(item, route.method.clone()))
            {
                op.operation_id = Some(operation_id(&route.method, route.path));
            }
        }
    }
}

fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for segment in path.trim_start_matches("/api/v1").split('/') {
        if segment.is_empty() {
            continue;
        }
        id.push('_');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) => {
                id.push_str("by_");
                id.push_str(param);
            }
            None => id.push_str(&segment.replace(['-', '.'], "_")),
        }
    }
    id
}

fn operation_mut(item: &mut PathItem, method: Method) -> Option<&mut Operation> {
    match method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        Method::PATCH => item.patch.as_mut(),
        _ => None,
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn document() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The router and the document list the same routes: a route cannot be served without
    /// being documented (with its role), nor documented without being served.
    #[test]
    fn router_and_document_list_the_same_routes() {
        let doc = ApiDoc::openapi();
        let mut documented = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ] {
                if let Some(op) = op {
                    let access = op
                        .extensions
                        .as_ref()
                        .and_then(|e| e.get("x-novacron-access"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    documented.insert((method.to_string(), path.clone(), access));
                }
            }
        }
        let routed: BTreeSet<_> = super::super::route_table()
            .into_iter()
            .map(|r| {
                (
                    r.method.to_string(),
                    r.path.to_string(),
                    Some(r.access.name().to_string()),
                )
            })
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "served but not documented (or documented with another role): {undocumented:?}\n\
             documented but not served: {unrouted:?}"
        );
        assert_eq!(
            routed.len(),
            super::super::route_table().len(),
            "a route is added twice"
        );
    }

    /// Every operation has an operationId no other one has (clients generated from the
    /// document name their calls after it) and describes at least one response.
    #[test]
    fn operation_ids_are_unique_and_every_operation_describes_its_responses() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut seen = std::collections::BTreeMap::new();
        let mut problems = vec![];
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let here = format!("{} {path}", method.to_uppercase());
                match op["operationId"].as_str() {
                    Some(id) => {
                        if let Some(first) = seen.insert(id.to_string(), here.clone()) {
                            problems.push(format!("{here}: operationId {id} also on {first}"));
                        }
                    }
                    None => problems.push(format!("{here}: no operationId")),
                }
                if op["responses"].as_object().is_none_or(|r| r.is_empty()) {
                    problems.push(format!("{here}: no response described"));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn operation_ids_follow_method_and_path() {
        assert_eq!(
            operation_id(&Method::GET, "/api/v1/vms/{name}"),
            "get_vms_by_name"
        );
        assert_eq!(
            operation_id(&Method::POST, "/api/v1/join-tokens"),
            "post_join_tokens"
        );
        assert_eq!(
            operation_id(&Method::GET, "/api/v1/openapi.json"),
            "get_openapi_json"
        );
        assert_eq!(operation_id(&Method::GET, "/metrics"), "get_metrics");
    }

    #[test]
    fn public_operations_need_no_token_and_others_do() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let health = &doc["paths"]["/api/v1/health"]["get"];
        assert_eq!(health["x-novacron-access"], "public");
        assert_eq!(health["security"], serde_json::json!([]));
        let vms = &doc["paths"]["/api/v1/vms"]["get"];
        assert_eq!(vms["x-novacron-access"], "admin");
        assert!(
            vms.get("security").is_none(),
            "admin routes use the document's bearer default"
        );
        assert_eq!(
            doc["paths"]["/api/v1/agent/register"]["post"]["x-novacron-access"],
            "register"
        );
    }
}
