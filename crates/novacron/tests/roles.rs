//! Who may call what, against a real `novacron up` on loopback: every route the OpenAPI
//! document lists is called with the cluster's admin token (a cluster-admin), a
//! cluster-viewer, the admin, operator and viewer of project `default`, an admin token of
//! another project, node-a's node token, the join token and no token, and the answers must
//! match the explicit table below. A route missing from the table (or from the document)
//! fails the test, so every new route needs a role decision.

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
    /// 404 `no project named "default"`: a project the caller has no role in looks missing.
    Hidden,
}
use Expect::{Allowed, Forbidden, Hidden, Unauthenticated};

/// Who calls, in the table's column order. Every call names project `default` (the
/// `X-Novacron-Project` header), where the admin, operator and viewer users are bound.
const COLUMN: [&str; 9] = [
    "cluster-admin (the admin token)",
    "cluster-viewer",
    "project admin",
    "project operator",
    "project viewer",
    "admin token of another project",
    "node token",
    "join token",
    "no token",
];

/// One role router as the table sees it: its name in the OpenAPI document
/// (`x-novacron-access`) and what each caller (columns: [`COLUMN`]) gets.
struct Rule {
    access: &'static str,
    expect: [Expect; 9],
}
const PUBLIC: Rule = Rule {
    access: "public",
    expect: [Allowed; 9],
};
const PROJECT_READ: Rule = Rule {
    access: "project-read",
    expect: [
        Allowed,
        Allowed,
        Allowed,
        Allowed,
        Allowed,
        Hidden,
        Forbidden,
        Forbidden,
        Unauthenticated,
    ],
};
const PROJECT_OPERATE: Rule = Rule {
    access: "project-operate",
    expect: [
        Allowed,
        Forbidden,
        Allowed,
        Allowed,
        Forbidden,
        Hidden,
        Forbidden,
        Forbidden,
        Unauthenticated,
    ],
};
const PROJECT_ADMIN: Rule = Rule {
    access: "project-admin",
    expect: [
        Allowed,
        Forbidden,
        Allowed,
        Forbidden,
        Forbidden,
        Hidden,
        Forbidden,
        Forbidden,
        Unauthenticated,
    ],
};
const CLUSTER_READ: Rule = Rule {
    access: "cluster-read",
    expect: [
        Allowed,
        Allowed,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Unauthenticated,
    ],
};
const CLUSTER_ADMIN: Rule = Rule {
    access: "cluster-admin",
    expect: [
        Allowed,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Unauthenticated,
    ],
};
const AUTHENTICATED: Rule = Rule {
    access: "authenticated",
    expect: [
        Allowed,
        Allowed,
        Allowed,
        Allowed,
        Allowed,
        Allowed,
        Forbidden,
        Forbidden,
        Unauthenticated,
    ],
};
const NODE: Rule = Rule {
    access: "node",
    expect: [
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Allowed,
        Forbidden,
        Unauthenticated,
    ],
};
const REGISTER: Rule = Rule {
    access: "register",
    expect: [
        Allowed,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Allowed,
        Allowed,
        Unauthenticated,
    ],
};
/// Image files: control-plane replicas (admin tokens) and nodes, but a node only for images
/// its VMs use; the dummy image here is used by none, so node-a is refused.
const IMAGE_FILES: Rule = Rule {
    access: "node-or-admin",
    expect: [
        Allowed,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Unauthenticated,
    ],
};

/// Every route of the API and who may call it.
const TABLE: &[(&str, &str, Rule)] = &[
    ("GET", "/api/v1/health", PUBLIC),
    ("GET", "/api/v1/cluster/ca", PUBLIC),
    ("GET", "/api/v1/openapi.json", PUBLIC),
    ("POST", "/api/v1/login", PUBLIC),
    ("GET", "/metrics", CLUSTER_READ),
    ("POST", "/api/v1/vms", PROJECT_ADMIN),
    ("GET", "/api/v1/vms", PROJECT_READ),
    ("GET", "/api/v1/vms/{name}", PROJECT_READ),
    ("DELETE", "/api/v1/vms/{name}", PROJECT_ADMIN),
    ("POST", "/api/v1/vms/{name}/start", PROJECT_OPERATE),
    ("POST", "/api/v1/vms/{name}/stop", PROJECT_OPERATE),
    ("POST", "/api/v1/vms/{name}/reboot", PROJECT_OPERATE),
    ("POST", "/api/v1/vms/{name}/pause", PROJECT_OPERATE),
    ("POST", "/api/v1/vms/{name}/resume", PROJECT_OPERATE),
    ("POST", "/api/v1/vms/{name}/set", PROJECT_ADMIN),
    ("POST", "/api/v1/vms/{name}/disks", PROJECT_ADMIN),
    ("DELETE", "/api/v1/vms/{name}/disks/{disk}", PROJECT_ADMIN),
    ("POST", "/api/v1/vms/{name}/nics", PROJECT_ADMIN),
    ("DELETE", "/api/v1/vms/{name}/nics/{nic}", PROJECT_ADMIN),
    (
        "POST",
        "/api/v1/vms/{name}/disks/{disk}/resize",
        PROJECT_ADMIN,
    ),
    ("POST", "/api/v1/vms/{name}/template", PROJECT_ADMIN),
    ("POST", "/api/v1/vms/{name}/clone", PROJECT_ADMIN),
    ("POST", "/api/v1/vms/{name}/snapshots", PROJECT_OPERATE),
    ("GET", "/api/v1/vms/{name}/snapshots", PROJECT_READ),
    (
        "POST",
        "/api/v1/vms/{name}/snapshots/{snapshot}/revert",
        PROJECT_OPERATE,
    ),
    (
        "DELETE",
        "/api/v1/vms/{name}/snapshots/{snapshot}",
        PROJECT_OPERATE,
    ),
    ("GET", "/api/v1/vms/{name}/console", PROJECT_READ),
    ("GET", "/api/v1/vms/{name}/metrics", PROJECT_READ),
    ("GET", "/api/v1/vms/{name}/console/attach", PROJECT_OPERATE),
    ("GET", "/api/v1/vms/{name}/console/ws", PROJECT_OPERATE),
    ("POST", "/api/v1/vms/{name}/exec", PROJECT_OPERATE),
    ("GET", "/api/v1/vms/{name}/vnc", PROJECT_OPERATE),
    ("GET", "/api/v1/vms/{name}/vnc/ws", PROJECT_OPERATE),
    ("POST", "/api/v1/vms/{name}/backup", PROJECT_OPERATE),
    ("POST", "/api/v1/vms/{name}/migrate", PROJECT_OPERATE),
    ("GET", "/api/v1/operations", PROJECT_READ),
    ("GET", "/api/v1/operations/{id}", PROJECT_READ),
    ("GET", "/api/v1/nodes", CLUSTER_READ),
    ("GET", "/api/v1/nodes/{name}", CLUSTER_READ),
    ("DELETE", "/api/v1/nodes/{name}", CLUSTER_ADMIN),
    ("POST", "/api/v1/nodes/{name}/{action}", CLUSTER_ADMIN),
    ("GET", "/api/v1/images", PROJECT_READ),
    ("POST", "/api/v1/images/build-tiny", PROJECT_ADMIN),
    ("GET", "/api/v1/images/{name}", PROJECT_READ),
    ("DELETE", "/api/v1/images/{name}", PROJECT_ADMIN),
    ("PUT", "/api/v1/images/{name}/import", PROJECT_ADMIN),
    ("POST", "/api/v1/images/{name}/import-url", PROJECT_ADMIN),
    ("GET", "/api/v1/local-files", PROJECT_ADMIN),
    ("POST", "/api/v1/images/{name}/import-local", PROJECT_ADMIN),
    (
        "POST",
        "/api/v1/images/{name}/import-ova-local",
        PROJECT_ADMIN,
    ),
    ("PUT", "/api/v1/images/{name}/import-ova", PROJECT_ADMIN),
    ("GET", "/api/v1/images/{name}/files/{role}", IMAGE_FILES),
    ("GET", "/api/v1/backup/repos", CLUSTER_READ),
    ("POST", "/api/v1/backup/repos", CLUSTER_ADMIN),
    ("POST", "/api/v1/backup/repos/{name}/verify", CLUSTER_ADMIN),
    ("POST", "/api/v1/backup/repos/{name}/prune", CLUSTER_ADMIN),
    ("POST", "/api/v1/backup/repos/{name}/gc", CLUSTER_ADMIN),
    ("POST", "/api/v1/backup/repos/{name}/sync", CLUSTER_ADMIN),
    ("GET", "/api/v1/backups", PROJECT_READ),
    ("GET", "/api/v1/backups/{id}", PROJECT_READ),
    ("POST", "/api/v1/backups/{id}/restore", PROJECT_OPERATE),
    ("DELETE", "/api/v1/backups/{id}", PROJECT_ADMIN),
    ("GET", "/api/v1/backup/schedules", PROJECT_READ),
    ("POST", "/api/v1/backup/schedules", PROJECT_ADMIN),
    ("DELETE", "/api/v1/backup/schedules/{vm}", PROJECT_ADMIN),
    ("GET", "/api/v1/migrations", PROJECT_READ),
    ("GET", "/api/v1/migrations/{id}", PROJECT_READ),
    ("POST", "/api/v1/migrations/{id}/cancel", PROJECT_OPERATE),
    ("POST", "/api/v1/evacuations/plan", CLUSTER_ADMIN),
    ("POST", "/api/v1/join-tokens", CLUSTER_ADMIN),
    ("GET", "/api/v1/join-tokens", CLUSTER_ADMIN),
    ("DELETE", "/api/v1/join-tokens/{id}", CLUSTER_ADMIN),
    ("GET", "/api/v1/cluster/status", CLUSTER_READ),
    ("GET", "/api/v1/events", AUTHENTICATED),
    ("POST", "/api/v1/networks", PROJECT_ADMIN),
    ("GET", "/api/v1/networks", PROJECT_READ),
    ("GET", "/api/v1/networks/{name}", PROJECT_READ),
    ("DELETE", "/api/v1/networks/{name}", PROJECT_ADMIN),
    ("POST", "/api/v1/security-groups", PROJECT_ADMIN),
    ("GET", "/api/v1/security-groups", PROJECT_READ),
    ("GET", "/api/v1/security-groups/{name}", PROJECT_READ),
    ("DELETE", "/api/v1/security-groups/{name}", PROJECT_ADMIN),
    (
        "POST",
        "/api/v1/security-groups/{name}/rules",
        PROJECT_ADMIN,
    ),
    (
        "DELETE",
        "/api/v1/security-groups/{name}/rules/{id}",
        PROJECT_ADMIN,
    ),
    ("PUT", "/api/v1/vms/{name}/security-groups", PROJECT_ADMIN),
    ("GET", "/api/v1/storage", CLUSTER_READ),
    ("POST", "/api/v1/storage", CLUSTER_ADMIN),
    ("DELETE", "/api/v1/storage/{name}", CLUSTER_ADMIN),
    ("POST", "/api/v1/projects", CLUSTER_ADMIN),
    ("GET", "/api/v1/whoami", AUTHENTICATED),
    ("GET", "/api/v1/projects", AUTHENTICATED),
    ("GET", "/api/v1/projects/{project}", PROJECT_READ),
    ("PUT", "/api/v1/projects/{project}", CLUSTER_ADMIN),
    ("DELETE", "/api/v1/projects/{project}", CLUSTER_ADMIN),
    ("GET", "/api/v1/projects/{project}/usage", PROJECT_READ),
    ("POST", "/api/v1/users", CLUSTER_ADMIN),
    ("GET", "/api/v1/users", CLUSTER_READ),
    ("DELETE", "/api/v1/users/{name}", CLUSTER_ADMIN),
    ("POST", "/api/v1/role-bindings", CLUSTER_ADMIN),
    ("GET", "/api/v1/role-bindings", CLUSTER_READ),
    ("GET", "/api/v1/audit", AUTHENTICATED),
    ("GET", "/api/v1/audit/head", CLUSTER_READ),
    ("GET", "/api/v1/audit/export", CLUSTER_READ),
    ("DELETE", "/api/v1/role-bindings/{user}", CLUSTER_ADMIN),
    ("POST", "/api/v1/tokens", PROJECT_ADMIN),
    ("GET", "/api/v1/tokens", PROJECT_ADMIN),
    ("DELETE", "/api/v1/tokens/{id}", PROJECT_ADMIN),
    ("POST", "/api/v1/agent/register", REGISTER),
    ("POST", "/api/v1/agent/heartbeat", NODE),
    ("GET", "/api/v1/agent/vms", NODE),
    ("GET", "/api/v1/agent/overlay", NODE),
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
    /// In [`COLUMN`] order.
    tokens: [Option<String>; 9],
}

/// Creates a token with the CLI (as the admin token) and returns its secret.
fn mint(c: &Cluster, args: &[&str]) -> String {
    let mut a = vec!["token", "create"];
    a.extend_from_slice(args);
    let v = c.json(&a);
    v["token"].as_str().unwrap().to_string()
}

impl Callers {
    /// The cluster's own tokens, plus users bound in project `default` (admin, operator,
    /// viewer), a cluster-viewer and an admin token of project `team-b`.
    fn of(c: &Cluster) -> Callers {
        let cli: Value = serde_json::from_slice(&std::fs::read(&c.config).unwrap()).unwrap();
        let ca_file = c.dir.path().join("roles-ca.pem");
        std::fs::write(&ca_file, cli["ca_cert_pem"].as_str().unwrap()).unwrap();
        let node: Value =
            serde_json::from_slice(&std::fs::read(c.data_dir.join("agent/node.json")).unwrap())
                .unwrap();
        let join_secret = c.join_token.rsplit('.').next().unwrap().to_string();
        c.ok(&["project", "create", "team-b"]);
        for (user, scope, role) in [
            ("r-admin", Some("default"), "admin"),
            ("r-operator", Some("default"), "operator"),
            ("r-viewer", Some("default"), "viewer"),
            ("r-cviewer", None, "cluster-viewer"),
        ] {
            c.ok(&["user", "create", user, "--no-password"]);
            match scope {
                Some(p) => c.ok(&["role-binding", "add", user, "--project", p, "--role", role]),
                None => c.ok(&["role-binding", "add", user, "--cluster", "--role", role]),
            };
        }
        Callers {
            url: c.url.clone(),
            ca_file,
            tokens: [
                Some(cli["token"].as_str().unwrap().to_string()),
                Some(mint(c, &["--user", "r-cviewer"])),
                Some(mint(c, &["--user", "r-admin"])),
                Some(mint(c, &["--user", "r-operator"])),
                Some(mint(c, &["--user", "r-viewer"])),
                Some(mint(c, &["--project", "team-b", "--role", "admin"])),
                Some(node["node_token"].as_str().unwrap().to_string()),
                Some(join_secret),
                None,
            ],
        }
    }

    /// One HTTPS request without a body, in project `default`; returns status and body.
    fn call(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        call(&self.url, &self.ca_file, method, path, token)
    }
}

fn call(url: &str, ca: &Path, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "--cacert"])
        .arg(ca)
        .args(["-X", method, "-w", "\n%{http_code}"])
        .args(["-H", "X-Novacron-Project: default"]);
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
        .replace("{user}", "roles-nosuch")
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
        Hidden if status != 404 || !body.contains("no project named") => Some(format!(
            "expected 404 no project named ..., got {status}: {body}"
        )),
        Hidden => error_body("not_found"),
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
    let [admin, _, _, _, _, _, node, join, _] = callers.tokens.clone();
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

/// Public images: a cluster admin makes one, every project lists it and boots a VM from it
/// (the VM's node fetches its files from the public images), no project may take its name nor
/// it a project's, and only a cluster admin deletes it, once no VM of any project uses it.
#[test]
fn public_images_serve_every_project_and_only_cluster_admins_manage_them() {
    let c = Cluster::start();
    c.ok(&["project", "create", "team-b"]);
    let team_b = mint(&c, &["--project", "team-b", "--role", "admin"]);
    let names = |token: &str| -> Vec<(String, String)> {
        let v: Value =
            serde_json::from_slice(&ok_as(&c, token, &["image", "list", "-o", "json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().unwrap().to_string(),
                    i["project"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };

    // A project admin makes no public image, and nothing is left of the attempt.
    let out = cli_as(&c, &team_b, &["image", "build-tiny", "base", "--public"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cluster admins"),
        "{err}"
    );
    assert!(names(&team_b).is_empty(), "{:?}", names(&team_b));

    c.ok(&["image", "build-tiny", "base", "--public"]);
    let public = vec![("base".to_string(), "public".to_string())];
    assert_eq!(names(&team_b), public, "team-b sees the public image");
    let cli_token = {
        let cli: Value = serde_json::from_slice(&std::fs::read(&c.config).unwrap()).unwrap();
        cli["token"].as_str().unwrap().to_string()
    };
    assert_eq!(names(&cli_token), public, "so does project default");

    // A name means one image: no project image takes a public name, no public image a
    // project's, and no project is called `public`.
    let out = cli_as(&c, &team_b, &["image", "build-tiny", "base"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("public image"),
        "{err}"
    );
    ok_as(&c, &team_b, &["image", "build-tiny", "own"]);
    let err = c.fails(&["image", "build-tiny", "own", "--public"]);
    assert!(err.contains("project team-b has an image named"), "{err}");
    let err = c.fails(&["project", "create", "public"]);
    assert!(err.contains("reserved"), "{err}");

    // team-b boots a VM from it: node-a's agent fetched the public image's kernel and initrd.
    ok_as(
        &c,
        &team_b,
        &[
            "vm", "create", "web", "--image", "base", "--cpus", "1", "--memory", "128M", "--accel",
            "tcg",
        ],
    );
    let started = std::time::Instant::now();
    loop {
        let log = String::from_utf8_lossy(&ok_as(
            &c,
            &team_b,
            &["vm", "console", "web", "--tail", "--bytes", "1M"],
        ))
        .into_owned();
        if log.contains("NOVACRON-GUEST-READY") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "the VM from the public image did not boot; console:\n{}",
            common::tail(&log, 30)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    // Deleting: only a cluster admin, only with --public, only once no VM uses it.
    let out = cli_as(&c, &team_b, &["image", "delete", "base"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--public"), "{err}");
    let out = cli_as(&c, &team_b, &["image", "delete", "base", "--public"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cluster admins"),
        "{err}"
    );
    let err = c.fails(&["image", "delete", "base", "--public"]);
    assert!(err.contains("team-b/web"), "{err}");
    assert_eq!(names(&cli_token), public, "nothing deleted");

    ok_as(&c, &team_b, &["vm", "delete", "web", "--force"]);
    c.ok(&["image", "delete", "base", "--public"]);
    assert_eq!(
        names(&team_b),
        vec![("own".to_string(), "team-b".to_string())]
    );
    assert!(names(&cli_token).is_empty());
}

/// A token's answer to one call in an explicit project (`None`: no project header).
fn call_in(
    callers: &Callers,
    project: Option<&str>,
    method: &str,
    path: &str,
    token: &str,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "--cacert"])
        .arg(&callers.ca_file)
        .args(["-X", method, "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(p) = project {
        cmd.args(["-H", &format!("X-Novacron-Project: {p}")]);
    }
    let out = cmd.arg(format!("{}{path}", callers.url)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.to_string())
}

/// Bad tenancy input gets a clear error and changes nothing; another project's VM looks
/// missing (404, not 403); expired and revoked tokens authenticate nothing.
#[test]
fn tenancy_refusals_are_clear_and_change_nothing() {
    let c = Cluster::start();
    let callers = Callers::of(&c);
    let bindings_before = c.json(&["role-binding", "list"]);

    let e = c.fails(&[
        "role-binding",
        "add",
        "r-admin",
        "--project",
        "default",
        "--role",
        "root",
    ]);
    assert!(e.contains("unknown role \"root\""), "{e}");
    let e = c.fails(&[
        "role-binding",
        "add",
        "nobody",
        "--project",
        "default",
        "--role",
        "viewer",
    ]);
    assert!(e.contains("no user named \"nobody\""), "{e}");
    let e = c.fails(&[
        "role-binding",
        "add",
        "r-admin",
        "--project",
        "nosuch",
        "--role",
        "viewer",
    ]);
    assert!(e.contains("no project named \"nosuch\""), "{e}");
    let e = c.fails(&[
        "role-binding",
        "add",
        "r-admin",
        "--cluster",
        "--role",
        "admin",
    ]);
    assert!(e.contains("project role"), "{e}");
    assert_eq!(
        c.json(&["role-binding", "list"]),
        bindings_before,
        "nothing changed"
    );

    // A VM of project team-c (created stopped: nothing boots).
    c.ok(&["project", "create", "team-c"]);
    c.ok(&["--project", "team-c", "image", "build-tiny", "tiny"]);
    c.ok(&[
        "--project",
        "team-c",
        "vm",
        "create",
        "web",
        "--image",
        "tiny",
        "--memory",
        "128M",
        "--accel",
        "tcg",
        "--no-start",
    ]);
    let team_b = callers.tokens[5].clone().unwrap();
    // Another project's token: by its own project (team-b) the VM does not exist, and project
    // team-c itself looks missing.
    let (status, body) = call_in(&callers, None, "GET", "/api/v1/vms/web", &team_b);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no VM named"), "{body}");
    let (status, body) = call_in(&callers, Some("team-c"), "GET", "/api/v1/vms/web", &team_b);
    assert_eq!(status, 404, "{body}");
    // The JSON body escapes the quotes around the name.
    assert!(body.contains(r#"no project named \"team-c\""#), "{body}");
    let (status, body) = call_in(
        &callers,
        Some("team-c"),
        "DELETE",
        "/api/v1/vms/web",
        &team_b,
    );
    assert_eq!(status, 404, "{body}");
    let (_, body) = call_in(&callers, None, "GET", "/api/v1/projects", &team_b);
    let seen: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["team-b"], "a project token lists only its project");
    // The default project's viewer does not see team-c's VM either.
    let viewer = callers.tokens[4].clone().unwrap();
    let (status, _) = call_in(&callers, Some("team-c"), "GET", "/api/v1/vms", &viewer);
    assert_eq!(status, 404);
    assert_eq!(
        c.json(&["--project", "team-c", "vm", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The events stream shows a caller only its projects' events; the cluster's own (nodes)
    // need a cluster role.
    let retained = "/api/v1/events?follow=false&after=0";
    let admin = callers.tokens[0].clone().unwrap();
    let (status, all) = call_in(&callers, None, "GET", retained, &admin);
    assert_eq!(status, 200, "{all}");
    assert!(all.contains(r#""project":"team-c""#), "{all}");
    assert!(all.contains(r#""resource":"node/"#), "{all}");
    for token in [&team_b, &viewer] {
        let (status, seen) = call_in(&callers, None, "GET", retained, token);
        assert_eq!(status, 200, "{seen}");
        assert!(
            !seen.contains("team-c"),
            "another project's events leak: {seen}"
        );
        assert!(
            !seen.contains(r#""resource":"node/"#),
            "node events leak: {seen}"
        );
    }
    let (status, body) = call_in(
        &callers,
        None,
        "GET",
        "/api/v1/events?follow=false&after=0&project=team-c",
        &team_b,
    );
    assert_eq!(status, 404, "{body}");

    // A project that holds a VM is not deleted, and keeps everything.
    let e = c.fails(&["project", "delete", "team-c"]);
    assert!(e.contains("team-c still holds 1 VM(s)"), "{e}");
    assert_eq!(c.json(&["project", "show", "team-c"])["name"], "team-c");
    assert_eq!(
        c.json(&["--project", "team-c", "vm", "show", "web"])["name"],
        "web"
    );
    let e = c.fails(&["project", "delete", "default"]);
    assert!(e.contains("cannot be deleted"), "{e}");

    // Quotas: a refusal names the limit, the usage and the request; usage shows both.
    c.ok(&[
        "project",
        "set",
        "team-c",
        "--max-vms",
        "1",
        "--max-memory",
        "1G",
    ]);
    let e = c.fails(&[
        "--project",
        "team-c",
        "vm",
        "create",
        "web2",
        "--image",
        "tiny",
        "--memory",
        "128M",
        "--accel",
        "tcg",
        "--no-start",
    ]);
    assert!(
        e.contains("max-vms = 1") && e.contains("1 used") && e.contains("needs 1 more"),
        "{e}"
    );
    let usage = c.json(&["project", "usage", "team-c"]);
    assert_eq!(usage["usage"]["vms"], 1);
    assert_eq!(usage["limits"]["max_vms"], 1);

    // Expired and revoked tokens authenticate nothing.
    let short = mint(&c, &["--user", "r-viewer", "--expires", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (status, body) = call_in(&callers, None, "GET", "/api/v1/vms", &short);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired"), "{body}");
    let created = c.json(&[
        "token",
        "create",
        "--project",
        "team-b",
        "--role",
        "viewer",
        "--name",
        "ci",
    ]);
    let (secret, id) = (
        created["token"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let (status, _) = call_in(&callers, None, "GET", "/api/v1/vms", secret);
    assert_eq!(status, 200);
    let listed = c.json(&["token", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id && t["name"] == "ci")
    );
    assert!(
        !listed.to_string().contains(secret),
        "token list never shows secrets"
    );
    c.ok(&["token", "revoke", id]);
    let (status, body) = call_in(&callers, None, "GET", "/api/v1/vms", secret);
    assert_eq!(status, 401, "{body}");
    let e = c.fails(&["token", "revoke", id]);
    assert!(e.contains("no token"), "{e}");

    // A project admin cannot mint a cluster token or a token of another project.
    let padmin = callers.tokens[2].clone().unwrap();
    let mint_as = |body: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&callers.ca_file)
            .args([
                "-X",
                "POST",
                "-w",
                "\n%{http_code}",
                "-H",
                "Content-Type: application/json",
            ])
            .args(["-H", &format!("Authorization: Bearer {padmin}")])
            .args(["-d", body])
            .arg(format!("{}/api/v1/tokens", callers.url))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.trim().parse::<u16>().unwrap(), body.to_string())
    };
    let (status, body) = mint_as(r#"{"role":"cluster-admin"}"#);
    assert_eq!(status, 403, "{body}");
    let (status, body) = mint_as(r#"{"role":"admin","project":"team-b"}"#);
    assert_eq!(status, 404, "{body}");
    let (status, body) = mint_as(r#"{"role":"viewer","project":"default","name":"dash"}"#);
    assert_eq!(status, 201, "{body}");
}

/// Runs the CLI with `token` instead of the config's.
fn cli_as(c: &Cluster, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(common::BIN)
        .args(args)
        .env("NOVACRON_CONFIG", &c.config)
        .env("NOVACRON_TOKEN", token)
        .env_remove("NOVACRON_PROJECT")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Runs the CLI with `token`; it must succeed. Returns stdout.
fn ok_as(c: &Cluster, token: &str, args: &[&str]) -> Vec<u8> {
    let out = cli_as(c, token, args);
    assert!(
        out.status.success(),
        "`novacron {}`: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Applies `f` to the stopped control plane's store. The open is retried for a few seconds
/// (a CI run once could not open it right after the control plane was killed and reaped;
/// the message was not kept), and a failure names the processes that hold the database.
fn with_store<T>(c: &Cluster, f: impl AsyncFnOnce(&dyn novacron_store::Store) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = c.data_dir.join("state.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let store = loop {
        match rt.block_on(async { novacron_store::SqliteStore::open(&db) }) {
            Ok(store) => break store,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("with_store: opening {}: {e}; retrying", db.display());
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!(
                "opening {}: {e}; processes holding it: {:?}",
                db.display(),
                processes_holding(&c.data_dir)
            ),
        }
    };
    rt.block_on(async {
        let out = f(&store).await;
        // Released before the control plane starts again (it takes the database's lock).
        store.close().await.unwrap();
        out
    })
}

/// `pid: command line` of each process with a file under `dir` open.
fn processes_holding(dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(dir)))
        {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            out.push(format!(
                "{}: {}",
                entry.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    out
}

const AUDIT_RECORDS: &str = "/novacron/audit/records/";

/// Replaces every audit record in the store with `records` (key, value).
async fn replace_records(s: &dyn novacron_store::Store, records: &[(String, Vec<u8>)]) {
    s.txn(
        vec![],
        vec![novacron_store::Op::DeletePrefix {
            prefix: AUDIT_RECORDS.into(),
        }],
    )
    .await
    .unwrap();
    for (k, v) in records {
        s.put(k, v.clone()).await.unwrap();
    }
}

#[test]
fn the_audit_log_records_changes_and_refusals_and_verify_catches_tampering() {
    let mut c = Cluster::start();
    c.ok(&["project", "create", "team-a"]);
    c.ok(&["user", "create", "alice", "--no-password"]);
    c.ok(&["user", "create", "vic", "--no-password"]);
    c.ok(&[
        "role-binding",
        "add",
        "alice",
        "--project",
        "team-a",
        "--role",
        "admin",
    ]);
    c.ok(&[
        "role-binding",
        "add",
        "vic",
        "--project",
        "team-a",
        "--role",
        "viewer",
    ]);
    let alice = mint(&c, &["--user", "alice"]);
    let vic = mint(&c, &["--user", "vic"]);
    // A change in team-a by alice, and one refused to vic.
    ok_as(
        &c,
        &alice,
        &["--project", "team-a", "token", "create", "--role", "viewer"],
    );
    let out = cli_as(
        &c,
        &vic,
        &[
            "--project",
            "team-a",
            "network",
            "create",
            "n1",
            "--subnet",
            "10.5.0.0/24",
        ],
    );
    assert!(!out.status.success());

    // A failed login is recorded under the name it tried.
    let cli: Value = serde_json::from_slice(&std::fs::read(&c.config).unwrap()).unwrap();
    let ca = c.dir.path().join("audit-ca.pem");
    std::fs::write(&ca, cli["ca_cert_pem"].as_str().unwrap()).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--cacert"])
        .arg(&ca)
        .args(["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args([
            "-H",
            "content-type: application/json",
            "-H",
            "X-Request-Id: try-1",
        ])
        .args(["-d", r#"{"user":"alice","password":"guess"}"#])
        .arg(format!("{}/api/v1/login", c.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");

    let all = c.json(&["audit", "list"]);
    let records = all.as_array().unwrap();
    let find = |action: &str, actor: &str| {
        records
            .iter()
            .find(|r| r["action"] == action && r["actor"].as_str().unwrap().contains(actor))
            .unwrap_or_else(|| panic!("no {action} by {actor} in {all:#}"))
    };
    let made = find("POST /api/v1/projects", "admin token");
    assert_eq!(made["outcome"], "ok");
    assert_eq!(made["status"], 201);
    assert!(
        made["source"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{made}"
    );
    assert!(made["request_id"].as_str().unwrap().len() > 8, "{made}");
    let by_alice = find("POST /api/v1/tokens", "alice");
    assert_eq!(by_alice["project"], "team-a");
    assert_eq!(by_alice["user"], "alice");
    let refused = find("POST /api/v1/networks", "vic");
    assert_eq!(refused["outcome"], "refused", "{refused}");
    assert_eq!(refused["status"], 403);
    let login = find("POST /api/v1/login", "login as alice");
    assert_eq!(login["outcome"], "refused", "{login}");
    assert_eq!(login["request_id"], "try-1", "{login}");
    assert!(
        !all.to_string().contains("guess"),
        "a password in the audit log"
    );
    // Reads are not recorded; secrets never are.
    assert!(!records.iter().any(|r| r["action"] == "GET /api/v1/audit"));
    let export = c.ok(&["audit", "export"]);
    for secret in [&alice, &vic] {
        assert!(
            !export.contains(secret.as_str()),
            "a token in the audit log"
        );
    }
    assert_eq!(export.lines().count(), records.len());

    // A project admin sees its project's records only; a viewer may not read them.
    let mine: Value = serde_json::from_slice(&ok_as(
        &c,
        &alice,
        &["--project", "team-a", "audit", "list", "-o", "json"],
    ))
    .unwrap();
    assert!(!mine.as_array().unwrap().is_empty());
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|r| r["project"] == "team-a"),
        "{mine:#}"
    );
    let out = cli_as(&c, &vic, &["--project", "team-a", "audit", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs the role admin"));
    let out = cli_as(&c, &alice, &["audit", "verify"]);
    assert!(!out.status.success(), "verify needs a cluster role");

    let intact = c.ok(&["audit", "verify"]);
    assert!(intact.contains("intact"), "{intact}");

    // Tamper with the stopped control plane's store, one way at a time; each is caught and
    // named, and undoing it makes the chain whole again.
    let seq_of = |key: &str| key.rsplit('/').next().unwrap().parse::<u64>().unwrap();
    type Tamper = fn(&mut Vec<(String, Vec<u8>)>) -> (u64, &'static str);
    let tamperings: [(&str, Tamper); 4] = [
        ("edit", |kvs| {
            let (k, v) = &mut kvs[3];
            let mut r: Value = serde_json::from_slice(v).unwrap();
            r["actor"] = "user mallory".into();
            *v = serde_json::to_vec(&r).unwrap();
            (k.rsplit('/').next().unwrap().parse().unwrap(), "edited")
        }),
        ("delete", |kvs| {
            let (k, _) = kvs.remove(5);
            (k.rsplit('/').next().unwrap().parse().unwrap(), "missing")
        }),
        ("insert", |kvs| {
            // A copy of record 2 under a new key between 2 and 3 is out of place.
            let (k, v) = kvs[1].clone();
            kvs.insert(2, (format!("{k}5"), v));
            (3, "inserted or moved")
        }),
        ("reorder", |kvs| {
            let v4 = kvs[4].1.clone();
            kvs[4].1 = kvs[6].1.clone();
            kvs[6].1 = v4;
            (5, "numbered 7")
        }),
    ];
    for (what, tamper) in tamperings {
        c.kill9_up();
        let original = with_store(&c, async |s| {
            let (kvs, _) = s.list(AUDIT_RECORDS).await.unwrap();
            let original: Vec<(String, Vec<u8>)> =
                kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
            let mut changed = original.clone();
            let (seq, reason) = tamper(&mut changed);
            replace_records(s, &changed).await;
            (original, seq, reason)
        });
        let (original, seq, reason) = original;
        c.launch_up();
        let out = c.cli(&["audit", "verify"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} was not caught");
        assert!(
            err.contains(&format!("broken at record {seq}")) && err.contains(reason),
            "{what}: {err}"
        );
        // Undo; records appended since (the restart registers the agent) stay.
        c.kill9_up();
        with_store(&c, async |s| {
            let (now, _) = s.list(AUDIT_RECORDS).await.unwrap();
            let last_original = original.last().map_or(0, |(k, _)| seq_of(k));
            let newer: Vec<(String, Vec<u8>)> = now
                .into_iter()
                .filter(|kv| seq_of(&kv.key) > last_original && kv.key.len() == original[0].0.len())
                .map(|kv| (kv.key, kv.value))
                .collect();
            let all: Vec<(String, Vec<u8>)> = original.iter().chain(&newer).cloned().collect();
            replace_records(s, &all).await;
        });
        c.launch_up();
        let ok = c.ok(&["audit", "verify"]);
        assert!(ok.contains("intact"), "after undoing {what}: {ok}");
    }

    // Cutting the tail and moving the head back is caught by a checkpoint kept elsewhere.
    let head = c.json(&["audit", "verify"]);
    let (seq, hash) = (
        head["head"]["seq"].as_u64().unwrap(),
        head["head"]["hash"].clone(),
    );
    let kept = c.dir.path().join("kept-checkpoints.jsonl");
    std::fs::write(
        &kept,
        format!(
            "{}\n",
            serde_json::json!({"seq": seq, "hash": hash, "time": 0})
        ),
    )
    .unwrap();
    c.kill9_up();
    with_store(&c, async |s| {
        let (kvs, _) = s.list(AUDIT_RECORDS).await.unwrap();
        let cut = &kvs[kvs.len() - 3..];
        for kv in cut {
            s.delete(&kv.key).await.unwrap();
        }
        let last: Value = serde_json::from_slice(&kvs[kvs.len() - 4].value).unwrap();
        let head = serde_json::json!({"seq": last["seq"], "hash": last["hash"]});
        s.put("/novacron/audit/head", serde_json::to_vec(&head).unwrap())
            .await
            .unwrap();
    });
    c.launch_up();
    let out = c.cli(&["audit", "verify", "--checkpoints", kept.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a cut tail was not caught");
    assert!(err.contains(&format!("broken at record {seq}")), "{err}");
}
