//! The OpenAPI document of the agent API (what the control plane calls on each node),
//! generated from the handlers and types themselves, like the control plane's own
//! document. `novacron openapi --agent` prints it.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "NovaCron agent API", description = "The HTTPS endpoint of a NovaCron node agent, which only the control plane calls: a VM's serial console (log and attach), the jobs on a VM of this node (backup, snapshots, disk resize and export, a command run in the guest), this node's side of migrations, and metrics. Every call needs `Authorization: Bearer <secret>`, the secret the control plane gave this node when it registered; any other answers 401. Errors are `{\"code\", \"message\"}` (`ApiError`), except for a body that is not JSON or does not fit the request's schema, which the HTTP layer refuses with a plain-text 400, 415 or 422."),
    paths(
        super::console_log, super::console_attach, super::vnc_attach,
        super::backup, super::snapshot, super::disk_attach, super::disk_detach, super::disk_resize, super::disk_export, super::nic_attach, super::nic_detach, super::exec,
        super::migration_incoming, super::migration_outgoing, super::migration_cancel,
        super::metrics,
    ),
    tags(
        (name = "console", description = "A VM's serial console."),
        (name = "vms", description = "Jobs on one of this node's VMs."),
        (name = "migrations", description = "This node's side of a live migration."),
        (name = "metrics", description = "This agent's metrics."),
    ),
    modifiers(&BearerAuth),
)]
pub struct AgentApiDoc;

/// Every operation needs the bearer secret (there is no public route on an agent).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The secret the control plane gave this node at registration.",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The document as JSON, for tools that need it without a running agent
/// (`novacron openapi --agent`).
pub fn document_json() -> Result<String, serde_json::Error> {
    AgentApiDoc::openapi().to_pretty_json()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::http::Method;

    use super::*;

    fn document() -> serde_json::Value {
        serde_json::to_value(AgentApiDoc::openapi()).unwrap()
    }

    /// The router and the document list the same routes: a route cannot be served without
    /// being documented, nor documented without being served.
    #[test]
    fn router_and_document_list_the_same_routes() {
        let doc = AgentApiDoc::openapi();
        let mut documented = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
                (Method::HEAD, &item.head),
                (Method::OPTIONS, &item.options),
                (Method::TRACE, &item.trace),
            ] {
                if op.is_some() {
                    documented.insert((method.to_string(), path.clone()));
                }
            }
        }
        let table = super::super::route_table();
        let routed: BTreeSet<_> = table
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "served but not documented: {undocumented:?}\ndocumented but not served: {unrouted:?}"
        );
        assert_eq!(routed.len(), table.len(), "a route is added twice");
        assert_eq!(table.len(), 16, "{table:?}");
    }

    /// Every operation has a snake_case operationId, starting `agent_`, that no other one
    /// has (clients generated from the document name their calls after it; the prefix keeps
    /// them apart from the control plane's), a tag, and at least one response.
    #[test]
    fn operation_ids_are_unique_and_every_operation_describes_its_responses() {
        let doc = document();
        let mut seen = std::collections::BTreeMap::new();
        let mut problems = vec![];
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let here = format!("{} {path}", method.to_uppercase());
                match op["operationId"].as_str() {
                    Some(id) => {
                        let snake = id
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                        if !snake || !id.starts_with("agent_") {
                            problems.push(format!(
                                "{here}: operationId {id} is not agent_<snake_case>"
                            ));
                        }
                        if let Some(first) = seen.insert(id.to_string(), here.clone()) {
                            problems.push(format!("{here}: operationId {id} also on {first}"));
                        }
                    }
                    None => problems.push(format!("{here}: no operationId")),
                }
                if op["tags"].as_array().is_none_or(|t| t.is_empty()) {
                    problems.push(format!("{here}: no tag"));
                }
                if op["responses"].as_object().is_none_or(|r| r.is_empty()) {
                    problems.push(format!("{here}: no response described"));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// Every response has a description, every error answer is an `ApiError`, and every
    /// parameter sits where its name does: a path parameter in the path template, anything
    /// else in the query or a header.
    #[test]
    fn responses_are_described_and_parameters_are_in_place() {
        let doc = document();
        let mut problems = vec![];
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let here = format!("{} {path}", method.to_uppercase());
                for (status, r) in op["responses"].as_object().unwrap() {
                    if r["description"].as_str().is_none_or(str::is_empty) {
                        problems.push(format!("{here}: response {status} undescribed"));
                    }
                    let schema = &r["content"]["application/json"]["schema"]["$ref"];
                    if status.starts_with(['4', '5']) && schema != "#/components/schemas/ApiError" {
                        problems.push(format!("{here}: response {status} is not an ApiError"));
                    }
                }
                let mut templated_params: Vec<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                    .collect();
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    let templated = templated_params.contains(&name);
                    if (p["in"] == "path") != templated {
                        problems.push(format!("{here}: parameter {name} is in {}", p["in"]));
                    }
                    if p["in"] == "path" {
                        templated_params.retain(|t| *t != name);
                    }
                }
                if !templated_params.is_empty() {
                    problems.push(format!("{here}: {templated_params:?} not described"));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// The bearer secret is required everywhere, the console attach is the upgrade that
    /// answers 101, the log's `tail_bytes` is an optional query parameter, and /metrics
    /// answers text.
    #[test]
    fn security_upgrade_query_and_metrics_are_described() {
        let doc = document();
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(doc["security"], serde_json::json!([{ "bearer": [] }]));
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(
                    op.get("security").is_none(),
                    "{method} {path}: no public route"
                );
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path}: no 401"
                );
            }
        }
        let attach = &doc["paths"]["/agent/v1/vms/{project}/{name}/console/attach"]["get"];
        assert!(attach["responses"].get("101").is_some(), "{attach}");
        assert!(attach["responses"].get("200").is_none(), "{attach}");
        let log = &doc["paths"]["/agent/v1/vms/{project}/{name}/console"]["get"]["parameters"];
        assert!(
            log.as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "tail_bytes" && p["in"] == "query" && p["required"] == false),
            "{log}"
        );
        let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
        assert!(
            metrics.get("application/openmetrics-text").is_some(),
            "{metrics}"
        );
        let export =
            &doc["paths"]["/agent/v1/vms/{project}/{name}/disks/export"]["post"]["responses"];
        assert!(
            export["200"]["content"]
                .get("application/octet-stream")
                .is_some(),
            "{export}"
        );
    }

    /// The JSON `novacron openapi --agent` prints is the document.
    #[test]
    fn document_json_is_the_document() {
        let printed: serde_json::Value = serde_json::from_str(&document_json().unwrap()).unwrap();
        assert_eq!(printed, document());
        assert_eq!(printed["info"]["title"], "NovaCron agent API");
    }

    /// The document passes `openapi-spec-validator` (what generators rely on). Needs
    /// python3 with the package (`scripts/deps.sh test`).
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
        let file = dir.path().join("agent-openapi.json");
        std::fs::write(&file, document_json().unwrap()).unwrap();
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
            "openapi-spec-validator refuses the agent API's document:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
