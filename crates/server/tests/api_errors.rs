//! Every error the API answers is `{"code","message"}` JSON with the status that fits: a real
//! control plane (embedded store, HTTPS on loopback) driven with raw HTTP requests, so nothing
//! the SDK checks first can hide what the server does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use novacron_api_types::agent::{HeartbeatRequest, RegisterRequest};
use novacron_api_types::{ErrorCode, Resources};
use novacron_client::Client;
use novacron_server::{Server, ServerConfig, TokenKind};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Cp {
    _dir: tempfile::TempDir,
    server: Server,
    admin: String,
    http: reqwest::Client,
}

impl Cp {
    async fn start() -> Cp {
        let dir = tempfile::tempdir().unwrap();
        let store = common::sqlite_store(dir.path()).await;
        let server = Server::start(ServerConfig {
            node_lease_ttl: Duration::from_secs(30),
            ..common::config(store, dir.path())
        })
        .await
        .unwrap();
        let admin = server.issue_token(TokenKind::Admin).await.unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(novacron_tls::client_config(server.ca_cert_pem(), None).unwrap())
            .build()
            .unwrap();
        Cp {
            _dir: dir,
            server,
            admin,
            http,
        }
    }

    fn client(&self, token: &str) -> Client {
        common::client(&self.server, token)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// Sends a request as admin; answers (status, content type, body as JSON or Null).
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, String, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.admin);
        if let Some((ctype, bytes)) = body {
            req = req.header("content-type", ctype).body(bytes);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            ctype,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post_json(&self, path: &str, v: &Value) -> (StatusCode, String, Value) {
        self.raw(
            reqwest::Method::POST,
            path,
            Some(("application/json", serde_json::to_vec(v).unwrap())),
        )
        .await
    }

    /// A node with room (no agent behind it: placement only needs its record) and a
    /// disk image, so VM creates get as far as the store.
    async fn with_node_and_image(&self) {
        let join = self.server.issue_token(TokenKind::Join).await.unwrap();
        let reg = self
            .client(&join)
            .agent_register(&RegisterRequest {
                name: "node-a".into(),
                capacity: Resources {
                    cpus: 64,
                    memory_bytes: 256 << 30,
                    disk_bytes: 10 << 40,
                },
                agent_url: "https://127.0.0.1:9443".into(),
                kvm_usable: false,
                qemu_version: "9.0".into(),
                bridges: vec![],
                vtep_address: None,
                site: None,
                tunnel: None,
            })
            .await
            .unwrap();
        self.client(&reg.node_token)
            .agent_heartbeat(&HeartbeatRequest {
                running_vms: 0,
                stats: None,
            })
            .await
            .unwrap();
        let disk = self._dir.path().join("disk.qcow2");
        let made = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&disk)
            .arg("1M")
            .status()
            .unwrap();
        assert!(made.success());
        let admin = self.client(&self.admin);
        admin.image_import("img", &disk).await.unwrap();
        // Wait until placement knows the node (its mirror catches up after registration).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.post_json("/api/v1/vms", &vm("warm-up")).await;
            if got.0 == StatusCode::ACCEPTED {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{got:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn assert_error(what: &str, got: &(StatusCode, String, Value), status: u16, code: &str) {
    let (s, ctype, body) = got;
    assert_eq!(s.as_u16(), status, "{what}: {body}");
    assert!(
        ctype.starts_with("application/json"),
        "{what}: content type {ctype:?}"
    );
    assert_eq!(body["code"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

fn vm(name: &str) -> Value {
    json!({"name": name, "image": "img", "cpus": 1, "memory_bytes": 64u64 << 20, "start": false})
}

#[tokio::test]
async fn concurrent_creates_of_one_name_answer_accepted_or_conflict() {
    let cp = Cp::start().await;
    cp.with_node_and_image().await;
    for round in 0..5 {
        let name = format!("race{round}");
        let body = vm(&name);
        let answers =
            futures_util::future::join_all((0..8).map(|_| cp.post_json("/api/v1/vms", &body)))
                .await;
        let mut created = 0;
        for a in &answers {
            match a.0.as_u16() {
                202 => created += 1,
                409 => assert_error("losing create", a, 409, "already_exists"),
                _ => panic!("a same-name create answered {}: {}", a.0, a.2),
            }
        }
        assert_eq!(created, 1, "{name}: {answers:?}");
    }
    cp.server.stop().await;
}

#[tokio::test]
async fn oversize_bodies_answer_413_with_json() {
    let cp = Cp::start().await;
    let mut big = vm("big");
    big["ssh_keys"] = json!(["x".repeat(3 << 20)]);
    let got = cp.post_json("/api/v1/vms", &big).await;
    assert_error("3 MiB body", &got, 413, "payload_too_large");
    // Chunked, with no Content-Length to refuse it by.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..48).map(|_| Ok(vec![b' '; 64 << 10])).collect();
    let resp = cp
        .http
        .post(cp.url("/api/v1/backup/repos"))
        .bearer_auth(&cp.admin)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large", "{body}");
    cp.server.stop().await;
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes_answer_json() {
    let cp = Cp::start().await;
    let got = cp.raw(reqwest::Method::PATCH, "/api/v1/vms", None).await;
    assert_error("PATCH /vms", &got, 405, "method_not_allowed");
    assert!(
        got.2["message"].as_str().unwrap().contains("PATCH"),
        "{}",
        got.2
    );
    let got = cp.raw(reqwest::Method::PUT, "/api/v1/health", None).await;
    assert_error("PUT /health", &got, 405, "method_not_allowed");
    let got = cp
        .raw(reqwest::Method::GET, "/api/v1/no-such-thing", None)
        .await;
    assert_error("unknown route", &got, 404, "not_found");
    let got = cp
        .raw(
            reqwest::Method::POST,
            "/api/v1/vms",
            Some(("text/plain", b"hello".to_vec())),
        )
        .await;
    assert_error("not JSON", &got, 415, "unsupported_media_type");
    let got = cp
        .raw(reqwest::Method::DELETE, "/api/v1/vms/x?force=perhaps", None)
        .await;
    assert_error("bad query", &got, 400, "invalid_argument");
    cp.server.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_refused_by_name() {
    let cp = Cp::start().await;
    let mut body = vm("web1");
    body["cpu"] = json!(2);
    let got = cp.post_json("/api/v1/vms", &body).await;
    assert_error("unknown field", &got, 400, "invalid_argument");
    assert!(
        got.2["message"].as_str().unwrap().contains("`cpu`"),
        "{}",
        got.2
    );
    let got = cp
        .post_json(
            "/api/v1/storage",
            &json!({"name": "pool", "type": "shared-dir", "path": "/srv", "mode": "0777"}),
        )
        .await;
    assert_error("unknown storage field", &got, 400, "invalid_argument");
    assert!(
        got.2["message"].as_str().unwrap().contains("`mode`"),
        "{}",
        got.2
    );
    cp.server.stop().await;
}

#[tokio::test]
async fn the_api_refuses_what_the_sdk_refuses_with_the_same_message() {
    let cp = Cp::start().await;
    let client = cp.client(&cp.admin);
    for (what, patch) in [
        (
            "forward 0:0",
            json!({"network": {"mode": "user", "forwards": [{"host_port": 0, "guest_port": 0}]}}),
        ),
        (
            "bridge with a newline",
            json!({"network": {"mode": "bridge", "bridge": "br0\nx"}}),
        ),
        (
            "bridge with a space",
            json!({"network": {"mode": "bridge", "bridge": "br 0"}}),
        ),
        (
            "bridge of 16 bytes",
            json!({"network": {"mode": "bridge", "bridge": "b".repeat(16)}}),
        ),
        ("empty ssh key", json!({"ssh_keys": [""]})),
        ("bad name", json!({"name": "Web_1"})),
        ("no cpus", json!({"cpus": 0})),
    ] {
        let mut body = vm("web1");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let got = cp.post_json("/api/v1/vms", &body).await;
        assert_error(what, &got, 400, "invalid_argument");
        let req: novacron_api_types::VmCreateRequest = serde_json::from_value(body).unwrap();
        let e = client.vm_create(&req).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{what}");
        assert_eq!(e.to_string(), got.2["message"].as_str().unwrap(), "{what}");
    }
    cp.server.stop().await;
}
