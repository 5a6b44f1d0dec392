//! The OpenAPI document, generated from the handlers and types themselves. Each operation
//! carries the role router it is on (`x-novacron-access`: public, project-read,
//! project-operate, project-admin, cluster-read, cluster-admin, authenticated, node, register,
//! node-or-admin), and public ones say they need no token.

use axum::http::Method;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{
    Access, agent, audit, backups, cluster, console, disks, events, exec, images, join_tokens,
    migrations, networks, nics, nodes, operations, security_groups, snapshots, tenancy, vms,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "NovaCron API", description = "Control plane of the NovaCron distributed hypervisor. Every call except health, cluster/ca and this document needs `Authorization: Bearer <token>`; `x-novacron-access` on each operation says who may call it: project-read, project-operate, project-admin (the role viewer, operator or admin in the request's project), cluster-read, cluster-admin (the cluster roles), authenticated (any user or API token), public, node, register (join, node or admin token), node-or-admin. The project of a request is the path's {project}, else the `project` query parameter, else the `X-Novacron-Project` header, else the project of a project-scoped token, else `default`; a project the caller has no role in answers 404, like a missing one."),
    paths(
        super::health, super::cluster_ca, document, super::metrics,
        vms::create, vms::list, vms::show, vms::start, vms::stop, vms::reboot, vms::pause, vms::resume, vms::delete, vms::set,
        snapshots::create, snapshots::list, snapshots::revert, snapshots::delete,
        disks::add, disks::detach, disks::resize, disks::template, disks::clone, nics::add, nics::remove,
        console::log, console::attach, console::websocket, console::vnc, console::vnc_websocket, exec::exec,
        operations::show, operations::list, events::stream,
        nodes::list, nodes::show, nodes::action, nodes::delete,
        join_tokens::create, join_tokens::list, join_tokens::revoke,
        images::list, images::show, images::build_tiny, images::import, images::import_url, images::local_files, images::import_local, images::import_ova, images::import_ova_local, images::download, images::delete,
        agent::register, agent::heartbeat, agent::desired_vms, agent::report_status, agent::overlay,
        cluster::status, cluster::storage_list, cluster::storage_add, cluster::storage_delete,
        backups::repo_add, backups::repo_list, backups::list, backups::show, backups::delete, backups::create, backups::restore,
        backups::verify, backups::prune, backups::gc, backups::sync, backups::schedule_set, backups::schedule_list,
        backups::schedule_delete, backups::agent_update_operation,
        migrations::start, migrations::list, migrations::show, migrations::cancel, migrations::evacuation_plan,
        migrations::agent_report, migrations::agent_commit, migrations::agent_abort,
        networks::create, networks::list, networks::show, networks::delete,
        security_groups::create, security_groups::list, security_groups::show, security_groups::delete,
        security_groups::rule_add, security_groups::rule_delete, security_groups::vm_set,
        tenancy::project_create, tenancy::whoami, tenancy::project_list, tenancy::project_show, tenancy::project_set,
        tenancy::project_delete, tenancy::project_usage, tenancy::user_create, tenancy::user_list,
        tenancy::user_delete, tenancy::binding_add, tenancy::binding_list, tenancy::binding_remove,
        tenancy::token_create, tenancy::token_list, tenancy::token_revoke, tenancy::login,
        audit::list, audit::head, audit::export,
        super::vm_metrics::show,
    ),
    modifiers(&BearerAuth, &RoleAccess, &OperationIds, &Conformance, &FlattenedUnions),
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

/// Names every operation `<resource>_<action>` from its method and path: `GET /api/v1/vms`
/// is `vms_list`, `POST /api/v1/vms` `vms_create`, `GET /api/v1/vms/{name}` `vms_show`,
/// `POST /api/v1/vms/{name}/migrate` `vms_migrate`. Unique by construction (the uniqueness
/// test below checks it), where the handlers' function names (`list`, `show`, `create` in
/// every module) are not.
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

/// Paths without a parameter that are not collections: a `GET` shows the one thing, a
/// `POST` is the action the path names.
const NOT_COLLECTIONS: &[&str] = &[
    "/api/v1/health",
    "/api/v1/cluster/ca",
    "/api/v1/cluster/status",
    "/api/v1/openapi.json",
    "/metrics",
    "/api/v1/images/build-tiny",
    "/api/v1/evacuations/plan",
    "/api/v1/agent/register",
    "/api/v1/agent/heartbeat",
    "/api/v1/login",
];

/// Collections inside one resource: `GET` lists them, `POST` makes one
/// (`vms_snapshots_list`, `vms_snapshots_create`).
const SUB_COLLECTIONS: &[&str] = &["/api/v1/vms/{name}/snapshots"];

fn operation_id(method: &Method, path: &str) -> String {
    let words = |segments: &[&str]| {
        segments
            .iter()
            .map(|s| s.replace(['-', '.'], "_"))
            .collect::<Vec<_>>()
            .join("_")
    };
    let is_param = |s: &&str| s.starts_with('{');
    let segments: Vec<&str> = path
        .trim_start_matches("/api/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    // The resource: the words before the first parameter; after it, what is done to one.
    let first_param = segments.iter().position(is_param);
    let resource = words(&segments[..first_param.unwrap_or(segments.len())]);
    let rest: Vec<&str> = first_param
        .map(|i| {
            segments[i..]
                .iter()
                .copied()
                .filter(|s| !is_param(s))
                .collect()
        })
        .unwrap_or_default();
    let action = match (first_param, rest.is_empty()) {
        (None, _) if NOT_COLLECTIONS.contains(&path) => {
            if *method == Method::GET {
                "show".to_string()
            } else {
                return resource;
            }
        }
        (None, _) => match *method {
            Method::GET => "list".into(),
            Method::POST => "create".into(),
            Method::PUT => "set".into(),
            _ => "delete_all".into(),
        },
        (Some(_), true) => match *method {
            Method::GET => "show".into(),
            Method::DELETE => "delete".into(),
            Method::PUT => "update".into(),
            // `POST /nodes/{name}/{action}`: the action is a parameter.
            _ => segments
                .last()
                .map(|s| s.trim_matches(['{', '}']).to_string())
                .unwrap_or_default(),
        },
        (Some(_), false) if SUB_COLLECTIONS.contains(&path) => match *method {
            Method::GET => format!("{}_list", words(&rest)),
            _ => format!("{}_create", words(&rest)),
        },
        (Some(_), false) if *method == Method::DELETE => format!("{}_delete", words(&rest)),
        (Some(_), false) => words(&rest),
    };
    format!("{resource}_{action}")
}

/// What the code's annotations leave out and validators require: a description on every
/// response (from its status), and query parameters declared `in: query` (utoipa puts the
/// fields of a parameter struct in the path unless told otherwise).
struct Conformance;

impl utoipa::Modify for Conformance {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::path::ParameterIn;
        for (path, item) in openapi.paths.paths.iter_mut() {
            let in_path: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
            ] {
                let Some(op) = operation_mut(item, method) else {
                    continue;
                };
                for p in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(p) = p
                        && p.parameter_in == ParameterIn::Path
                        && !in_path.contains(&p.name.as_str())
                    {
                        p.parameter_in = ParameterIn::Query;
                    }
                    // An `Option` field of a query struct may be left out; utoipa marks it
                    // required (with a nullable type), which makes generated clients demand it.
                    if let RefOr::T(p) = p
                        && p.parameter_in == ParameterIn::Query
                        && p.schema.as_ref().is_some_and(is_nullable)
                    {
                        p.required = utoipa::openapi::Required::False;
                    }
                }
                for (status, response) in op.responses.responses.iter_mut() {
                    if let RefOr::T(r) = response
                        && r.description.is_empty()
                    {
                        r.description = describe_status(status);
                    }
                }
            }
        }
    }
}

/// A schema whose type includes `null` (an `Option` field).
fn is_nullable(schema: &utoipa::openapi::RefOr<utoipa::openapi::Schema>) -> bool {
    let Ok(v) = serde_json::to_value(schema) else {
        return false;
    };
    match &v["type"] {
        serde_json::Value::String(t) => t == "null",
        serde_json::Value::Array(ts) => ts.iter().any(|t| t == "null"),
        _ => false,
    }
}

/// A struct with a `#[serde(flatten)]`ed internally tagged enum (`Image` and its `kind`)
/// comes out of utoipa as `allOf: [<the enum's oneOf>, <the struct's fields>]`. Valid, but
/// client generators (openapi-python-client among them) cannot take allOf of a oneOf and
/// drop the type. Written out as what it is on the wire, `oneOf` of one object per
/// variant with the struct's fields added, every generator reads it.
struct FlattenedUnions;

impl utoipa::Modify for FlattenedUnions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Ok(before) = serde_json::to_value(&components.schemas) else {
            return;
        };
        for (name, schema) in components.schemas.iter_mut() {
            let Some(merged) = flatten_union(&before, &before[name.as_str()]) else {
                continue;
            };
            match serde_json::from_value(merged) {
                Ok(s) => *schema = s,
                Err(e) => {
                    tracing::warn!(schema = %name, error = %e, "cannot rewrite a flattened union")
                }
            }
        }
    }
}

/// `allOf: [{$ref: <oneOf of objects>}, <objects>...]` as `oneOf` of the merged objects;
/// `None` for any other schema.
fn flatten_union(
    schemas: &serde_json::Value,
    schema: &serde_json::Value,
) -> Option<serde_json::Value> {
    use serde_json::{Map, Value};
    let parts = schema.get("allOf")?.as_array()?;
    let (refs, objects): (Vec<&Value>, Vec<&Value>) =
        parts.iter().partition(|p| p.get("$ref").is_some());
    let [union] = refs.as_slice() else {
        return None;
    };
    let target = union["$ref"]
        .as_str()?
        .strip_prefix("#/components/schemas/")?;
    let variants = schemas.get(target)?.get("oneOf")?.as_array()?;
    let is_object = |v: &&Value| v.get("type") == Some(&Value::from("object"));
    if !variants.iter().all(|v| is_object(&v)) || !objects.iter().all(is_object) {
        return None;
    }
    let merged = variants
        .iter()
        .map(|variant| {
            let mut out = variant.as_object().cloned().unwrap_or_default();
            let mut required: Vec<Value> = Vec::new();
            let mut properties = Map::new();
            for part in objects.iter().copied().chain([variant]) {
                for r in part["required"].as_array().into_iter().flatten() {
                    if !required.contains(r) {
                        required.push(r.clone());
                    }
                }
                for (k, v) in part["properties"].as_object().into_iter().flatten() {
                    properties.insert(k.clone(), v.clone());
                }
            }
            out.insert("required".into(), Value::Array(required));
            out.insert("properties".into(), Value::Object(properties));
            Value::Object(out)
        })
        .collect();
    let mut out = Map::new();
    out.insert("oneOf".into(), Value::Array(merged));
    if let Some(d) = schema.get("description") {
        out.insert("description".into(), d.clone());
    }
    Some(Value::Object(out))
}

/// A response description for a status the annotation did not describe.
fn describe_status(status: &str) -> String {
    let error = "; the body is an error `{\"code\", \"message\"}`";
    match status {
        "200" => "OK.".into(),
        "201" => "Created.".into(),
        "202" => "Accepted: the work goes on in the background.".into(),
        "204" => "Done; no body.".into(),
        "400" => format!("The request is invalid{error}."),
        "401" => format!("No token, or a token the control plane does not know{error}."),
        "403" => format!("This token may not make this call{error}."),
        "404" => format!("No such resource{error}."),
        "409" => format!("Conflicts with the resource's current state{error}."),
        "413" => format!("The body is too large{error}."),
        "422" => format!("The request cannot be carried out as it stands{error}."),
        "429" => format!("Too many requests{error}."),
        "500" => format!("The control plane failed{error}."),
        "502" => format!("An agent or replica answered badly{error}."),
        "503" => format!("The store or an agent is unavailable; retry{error}."),
        other => {
            let reason = other
                .parse::<u16>()
                .ok()
                .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                .and_then(|c| c.canonical_reason())
                .unwrap_or("Response");
            format!("{reason}.")
        }
    }
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

/// The document as JSON, for tools that need it without a running server
/// (`novacron openapi`, which the Python SDK is generated from).
pub fn document_json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json()
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "cluster", responses((status = 200, content_type = "application/json", body = Object)))]
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
    fn operation_ids_name_the_resource_and_the_action() {
        let id = operation_id;
        assert_eq!(id(&Method::GET, "/api/v1/vms"), "vms_list");
        assert_eq!(id(&Method::POST, "/api/v1/vms"), "vms_create");
        assert_eq!(id(&Method::GET, "/api/v1/vms/{name}"), "vms_show");
        assert_eq!(id(&Method::DELETE, "/api/v1/vms/{name}"), "vms_delete");
        assert_eq!(
            id(&Method::POST, "/api/v1/vms/{name}/migrate"),
            "vms_migrate"
        );
        assert_eq!(
            id(&Method::GET, "/api/v1/vms/{name}/console/attach"),
            "vms_console_attach"
        );
        assert_eq!(
            id(&Method::POST, "/api/v1/join-tokens"),
            "join_tokens_create"
        );
        assert_eq!(
            id(&Method::POST, "/api/v1/backup/repos/{name}/verify"),
            "backup_repos_verify"
        );
        assert_eq!(
            id(&Method::POST, "/api/v1/nodes/{name}/{action}"),
            "nodes_action"
        );
        assert_eq!(
            id(&Method::GET, "/api/v1/vms/{name}/snapshots"),
            "vms_snapshots_list"
        );
        assert_eq!(
            id(&Method::POST, "/api/v1/vms/{name}/snapshots"),
            "vms_snapshots_create"
        );
        assert_eq!(
            id(
                &Method::POST,
                "/api/v1/vms/{name}/snapshots/{snapshot}/revert"
            ),
            "vms_snapshots_revert"
        );
        assert_eq!(
            id(&Method::DELETE, "/api/v1/vms/{name}/snapshots/{snapshot}"),
            "vms_snapshots_delete"
        );
        assert_eq!(
            id(&Method::PUT, "/api/v1/agent/vms/{project}/{name}/status"),
            "agent_vms_status"
        );
        assert_eq!(
            id(&Method::GET, "/api/v1/openapi.json"),
            "openapi_json_show"
        );
        assert_eq!(
            id(&Method::POST, "/api/v1/images/build-tiny"),
            "images_build_tiny"
        );
        assert_eq!(id(&Method::GET, "/metrics"), "metrics_show");
        assert_eq!(id(&Method::GET, "/api/v1/events"), "events_list");
    }

    /// Every response has a description and every parameter sits where its name does: a
    /// path parameter in the path template, anything else in the query or a header.
    #[test]
    fn responses_are_described_and_parameters_are_in_place() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut problems = vec![];
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let here = format!("{} {path}", method.to_uppercase());
                for (status, r) in op["responses"].as_object().unwrap() {
                    if r["description"].as_str().is_none_or(str::is_empty) {
                        problems.push(format!("{here}: response {status} undescribed"));
                    }
                }
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    let templated = path.contains(&format!("{{{name}}}"));
                    if (p["in"] == "path") != templated {
                        problems.push(format!("{here}: parameter {name} is in {}", p["in"]));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// The document passes `openapi-spec-validator` (what generators such as
    /// openapi-python-client rely on). Needs python3 with the package (`scripts/deps.sh test`).
    #[test]
    fn the_document_passes_openapi_spec_validator() {
        if std::process::Command::new("python3")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: python3 is not installed, so openapi-spec-validator cannot run");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("openapi.json");
        std::fs::write(&file, serde_json::to_vec(&ApiDoc::openapi()).unwrap()).unwrap();
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys\n\
                 try:\n    from openapi_spec_validator import validate\n\
                 except ImportError:\n    sys.exit('openapi-spec-validator is missing: run scripts/deps.sh test')\n\
                 import json\n\
                 validate(json.load(open(sys.argv[1])))\n",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openapi-spec-validator refuses the document:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `Option` query fields may be left out, and `Image` (a struct with its flattened
    /// `kind` enum) is a plain `oneOf` of objects: what openapi-python-client can generate.
    #[test]
    fn optional_query_parameters_and_flattened_unions_read_as_generators_need() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut required_nullable = vec![];
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let nullable = p["schema"]["type"]
                        .as_array()
                        .is_some_and(|ts| ts.iter().any(|t| t == "null"));
                    if p["in"] == "query" && nullable && p["required"] == true {
                        required_nullable.push(format!("{method} {path} {}", p["name"]));
                    }
                }
            }
        }
        assert!(required_nullable.is_empty(), "{required_nullable:?}");
        let wait = &doc["paths"]["/api/v1/operations/{id}"]["get"]["parameters"];
        assert!(
            wait.as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "wait_seconds" && p["required"] == false),
            "{wait}"
        );
        let image = &doc["components"]["schemas"]["Image"];
        assert!(image.get("allOf").is_none(), "{image}");
        let variants = image["oneOf"].as_array().unwrap();
        assert_eq!(variants.len(), 3, "kernel, disk, iso");
        for v in variants {
            assert_eq!(v["type"], "object");
            for field in ["name", "project", "kind", "files", "created_at"] {
                assert!(
                    v["properties"].get(field).is_some(),
                    "{field} missing in {v}"
                );
            }
        }
    }

    #[test]
    fn public_operations_need_no_token_and_others_do() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let health = &doc["paths"]["/api/v1/health"]["get"];
        assert_eq!(health["x-novacron-access"], "public");
        assert_eq!(health["security"], serde_json::json!([]));
        let vms = &doc["paths"]["/api/v1/vms"]["get"];
        assert_eq!(vms["x-novacron-access"], "project-read");
        assert!(
            vms.get("security").is_none(),
            "project routes use the document's bearer default"
        );
        assert_eq!(
            doc["paths"]["/api/v1/projects"]["post"]["x-novacron-access"],
            "cluster-admin"
        );
        assert_eq!(
            doc["paths"]["/api/v1/agent/register"]["post"]["x-novacron-access"],
            "register"
        );
    }
}
