//! Who may call what, against a real `novacron up` on loopback: every route the OpenAPI
//! document lists is called with an admin token, node-a's node token, the join token and no
//! token, and the answers must match the explicit table below. A route missing from the
//! table (or from the document) fails the test, so every new route needs a role decision.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Cluster;
use serde_json::Value;

/// What one caller gets from one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The role check let the call through (the handler may still refuse the dummy input).
    Allowed,
    /// 401 with `{"code":"unauthenticated","message":...}`.
    Unauthenticated,
    /// 403 with `{"code":"permission_denied","message":...}`.
    Forbidden,
}
use Expect::{Allowed, Forbidden, Unauthenticated};

/// One role router as the table sees it: its name in the OpenAPI document
/// (`x-novacron-access`) and what each caller gets. Columns of `expect`: admin token, node
/// token (node-a), join token, no token.
struct Rule {
    access: &'static str,
    expect: [Expect; 4],
}
const PUBLIC: Rule = Rule {
    access: "public",
    expect: [Allowed, Allowed, Allowed, Allowed],
};
const ADMIN: Rule = Rule {
    access: "admin",
    expect: [Allowed, Forbidden, Forbidden, Unauthenticated],
};
const NODE: Rule = Rule {
    access: "node",
    expect: [Forbidden, Allowed, Forbidden, Unauthenticated],
};
const REGISTER: Rule = Rule {
    access: "register",
    expect: [Allowed, Allowed, Allowed, Unauthenticated],
};
/// Image files: control-plane replicas (admin tokens) and nodes, but a node only for images
/// its VMs use; the dummy image here is used by none, so node-a is refused.
const IMAGE_FILES: Rule = Rule {
    access: "node-or-admin",
    expect: [Allowed, Forbidden, Forbidden, Unauthenticated],
};

/// Every route of the API and who may call it.
const TABLE: &[(&str, &str, Rule)] = &[
    ("GET", "/api/v1/health", PUBLIC),
    ("GET", "/api/v1/cluster/ca", PUBLIC),
    ("GET", "/api/v1/openapi.json", PUBLIC),
    ("GET", "/metrics", ADMIN),
    ("POST", "/api/v1/vms", ADMIN),
    ("GET", "/api/v1/vms", ADMIN),
    ("GET", "/api/v1/vms/{name}", ADMIN),
    ("DELETE", "/api/v1/vms/{name}", ADMIN),
    ("POST", "/api/v1/vms/{name}/start", ADMIN),
    ("POST", "/api/v1/vms/{name}/stop", ADMIN),
    ("POST", "/api/v1/vms/{name}/reboot", ADMIN),
    ("POST", "/api/v1/vms/{name}/pause", ADMIN),
    ("POST", "/api/v1/vms/{name}/resume", ADMIN),
    ("POST", "/api/v1/vms/{name}/set", ADMIN),
    ("POST", "/api/v1/vms/{name}/snapshots", ADMIN),
    ("GET", "/api/v1/vms/{name}/snapshots", ADMIN),
    ("POST", "/api/v1/vms/{name}/snapshots/{snapshot}/revert", ADMIN),
    ("DELETE", "/api/v1/vms/{name}/snapshots/{snapshot}", ADMIN),
    ("GET", "/api/v1/vms/{name}/console", ADMIN),
    ("GET", "/api/v1/vms/{name}/console/attach", ADMIN),
    ("POST", "/api/v1/vms/{name}/backup", ADMIN),
    ("POST", "/api/v1/vms/{name}/migrate", ADMIN),
    ("GET", "/api/v1/operations", ADMIN),
    ("GET", "/api/v1/operations/{id}", ADMIN),
    ("GET", "/api/v1/nodes", ADMIN),
    ("GET", "/api/v1/nodes/{name}", ADMIN),
    ("DELETE", "/api/v1/nodes/{name}", ADMIN),
    ("POST", "/api/v1/nodes/{name}/{action}", ADMIN),
    ("GET", "/api/v1/images", ADMIN),
    ("POST", "/api/v1/images/build-tiny", ADMIN),
    ("GET", "/api/v1/images/{name}", ADMIN),
    ("DELETE", "/api/v1/images/{name}", ADMIN),
    ("PUT", "/api/v1/images/{name}/import", ADMIN),
    ("GET", "/api/v1/images/{name}/files/{role}", IMAGE_FILES),
    ("GET", "/api/v1/backup/repos", ADMIN),
    ("POST", "/api/v1/backup/repos", ADMIN),
    ("POST", "/api/v1/backup/repos/{name}/verify", ADMIN),
    ("POST", "/api/v1/backup/repos/{name}/prune", ADMIN),
    ("POST", "/api/v1/backup/repos/{name}/gc", ADMIN),
    ("POST", "/api/v1/backup/repos/{name}/sync", ADMIN),
    ("GET", "/api/v1/backups", ADMIN),
    ("GET", "/api/v1/backups/{id}", ADMIN),
    ("POST", "/api/v1/backups/{id}/restore", ADMIN),
    ("GET", "/api/v1/backup/schedules", ADMIN),
    ("POST", "/api/v1/backup/schedules", ADMIN),
    ("DELETE", "/api/v1/backup/schedules/{vm}", ADMIN),
    ("GET", "/api/v1/migrations", ADMIN),
    ("GET", "/api/v1/migrations/{id}", ADMIN),
    ("POST", "/api/v1/migrations/{id}/cancel", ADMIN),
    ("POST", "/api/v1/evacuations/plan", ADMIN),
    ("POST", "/api/v1/join-tokens", ADMIN),
    ("GET", "/api/v1/join-tokens", ADMIN),
    ("DELETE", "/api/v1/join-tokens/{id}", ADMIN),
    ("GET", "/api/v1/cluster/status", ADMIN),
    ("GET", "/api/v1/events", ADMIN),
    ("POST", "/api/v1/networks", ADMIN),
    ("GET", "/api/v1/networks", ADMIN),
    ("GET", "/api/v1/networks/{name}", ADMIN),
    ("DELETE", "/api/v1/networks/{name}", ADMIN),
    ("GET", "/api/v1/storage", ADMIN),
    ("POST", "/api/v1/storage", ADMIN),
    ("DELETE", "/api/v1/storage/{name}", ADMIN),
    ("POST", "/api/v1/agent/register", REGISTER),
    ("POST", "/api/v1/agent/heartbeat", NODE),
    ("GET", "/api/v1/agent/vms", NODE),
    ("PUT", "/api/v1/agent/vms/{project}/{name}/status", NODE),
    ("PUT", "/api/v1/agent/operations/{id}", NODE),
    ("PUT", "/api/v1/agent/migrations/{id}", NODE),
    ("POST", "/api/v1/agent/migrations/{id}/commit", NODE),
    ("POST", "/api/v1/agent/migrations/{id}/abort", NODE),
];

/// The tokens of one cluster, and the CA file curl trusts.
struct Callers {
    url: String,
    ca_file: PathBuf,
    /// admin, node, join, none (in the table's column order).
    tokens: [Option<String>; 4],
}

const COLUMN: [&str; 4] = ["admin token", "node token", "join token", "no token"];

impl Callers {
    fn of(c: &Cluster) -> Callers {
        let cli: Value = serde_json::from_slice(&std::fs::read(&c.config).unwrap()).unwrap();
        let ca_file = c.dir.path().join("roles-ca.pem");
        std::fs::write(&ca_file, cli["ca_cert_pem"].as_str().unwrap()).unwrap();
        let node: Value =
            serde_json::from_slice(&std::fs::read(c.data_dir.join("agent/node.json")).unwrap())
                .unwrap();
        let join_secret = c.join_token.rsplit('.').next().unwrap().to_string();
        Callers {
            url: c.url.clone(),
            ca_file,
            tokens: [
                Some(cli["token"].as_str().unwrap().to_string()),
                Some(node["node_token"].as_str().unwrap().to_string()),
                Some(join_secret),
                None,
            ],
        }
    }

    /// One HTTPS request without a body; returns the status and the body.
    fn call(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        call(&self.url, &self.ca_file, method, path, token)
    }
}

fn call(url: &str, ca: &Path, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "--cacert"])
        .arg(ca)
        .args(["-X", method, "-w", "\n%{http_code}"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd
        .arg(format!("{url}{path}"))
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.to_string())
}

/// A concrete path for a template: dummy names that match no record.
fn concrete(template: &str) -> String {
    if template == "/api/v1/events" {
        // The stream follows forever by default; the retained events are enough here.
        return "/api/v1/events?follow=false".into();
    }
    template
        .replace("{project}", "default")
        .replace("{role}", "kernel")
        .replace("{action}", "cordon")
        .replace("{name}", "roles-nosuch")
        .replace("{id}", "roles-nosuch")
        .replace("{vm}", "roles-nosuch")
}

/// Checks one answer against what the table expects; returns the mismatch, if any.
fn judge(expect: Expect, status: u16, body: &str) -> Option<String> {
    let error_body = |code: &str| -> Option<String> {
        let v: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(_) => return Some(format!("error body is not JSON: {body:?}")),
        };
        let keys: BTreeSet<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if keys != BTreeSet::from(["code", "message"])
            || v["code"] != code
            || v["message"].as_str().is_none_or(str::is_empty)
        {
            return Some(format!(
                "error body is not {{\"code\":{code:?},\"message\"}}: {body}"
            ));
        }
        None
    };
    match expect {
        Allowed => {
            if matches!(status, 401 | 403 | 405) {
                Some(format!("expected the call through, got {status}: {body}"))
            } else if status == 404 && body.contains("no such API route") {
                Some(format!("the router has no such route: {body}"))
            } else {
                None
            }
        }
        Unauthenticated if status != 401 => Some(format!("expected 401, got {status}: {body}")),
        Unauthenticated => error_body("unauthenticated"),
        Forbidden if status != 403 => Some(format!("expected 403, got {status}: {body}")),
        Forbidden => error_body("permission_denied"),
    }
}

/// The (method, path) pairs the OpenAPI document lists.
fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if ["get", "post", "put", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_documented_route_has_an_explicit_role_decision() {
    let c = Cluster::start();
    let callers = Callers::of(&c);

    let (status, body) = callers.call("GET", "/api/v1/openapi.json", None);
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let documented = documented_routes(&doc);
    let tabled: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(tabled.len(), TABLE.len(), "a route is twice in the table");
    let untabled: Vec<_> = documented.difference(&tabled).collect();
    let undocumented: Vec<_> = tabled.difference(&documented).collect();
    assert!(
        untabled.is_empty() && undocumented.is_empty(),
        "routes in the document without a role decision in TABLE: {untabled:?}\n\
         routes in TABLE the document does not list: {undocumented:?}"
    );

    // The detector sees a route the router does not have.
    let (status, body) = callers.call("GET", "/api/v1/no-such-route", callers.tokens[0].as_deref());
    assert!(judge(Allowed, status, &body).is_some(), "{status} {body}");

    let mut wrong = vec![];
    for (method, template, rule) in TABLE {
        let path = concrete(template);
        for (i, expect) in rule.expect.iter().enumerate() {
            let (status, body) = callers.call(method, &path, callers.tokens[i].as_deref());
            if let Some(why) = judge(*expect, status, &body) {
                wrong.push(format!("{method} {path} with {}: {why}", COLUMN[i]));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} answers differ from the table:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // The document says the same as the table, route by route.
    for (method, template, rule) in TABLE {
        let access = &doc["paths"][template][method.to_lowercase()]["x-novacron-access"];
        assert_eq!(access, rule.access, "{method} {template} in the document");
    }
}

/// A node reads image files only for images its VMs use; admins (replicas) read any.
#[test]
fn nodes_fetch_only_the_images_their_vms_use() {
    let c = Cluster::start();
    let callers = Callers::of(&c);
    let [admin, node, join, _] = callers.tokens.clone();
    c.ok(&["image", "build-tiny", "tiny"]);
    c.ok(&["image", "build-tiny", "spare"]);
    // node-a's real agent fetched the kernel and initrd of the image its VM runs.
    c.ok(&[
        "vm", "create", "web", "--image", "tiny", "--cpus", "1", "--memory", "128M", "--accel",
        "tcg",
    ]);
    assert_eq!(c.vm("web")["node"], "node-a");

    let (status, body) = callers.call("GET", "/api/v1/images/tiny/files/kernel", node.as_deref());
    assert_eq!(status, 200, "node-a reads the kernel of its VM's image");
    assert!(
        body.len() > 100_000,
        "a kernel, not an error: {} bytes",
        body.len()
    );

    let (status, body) = callers.call("GET", "/api/v1/images/spare/files/kernel", node.as_deref());
    assert_eq!(status, 403, "no VM of node-a uses spare: {body}");
    assert!(judge(Forbidden, status, &body).is_none(), "{body}");
    assert!(body.contains("node-a") && body.contains("spare"), "{body}");

    let (status, _) = callers.call("GET", "/api/v1/images/spare/files/kernel", admin.as_deref());
    assert_eq!(status, 200, "an admin token (a replica) reads any image");
    let (status, _) = callers.call("GET", "/api/v1/images/tiny/files/kernel", join.as_deref());
    assert_eq!(status, 403, "the join token reads no image");

    // Operations and migrations are admin reads; the node sees neither list.
    for path in ["/api/v1/operations", "/api/v1/migrations", "/api/v1/images"] {
        let (status, body) = callers.call("GET", path, node.as_deref());
        assert_eq!(status, 403, "{path} with the node token: {body}");
    }
}
