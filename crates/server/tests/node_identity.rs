//! Who may hold which certificate: a real control plane (embedded store, HTTPS on loopback)
//! registering nodes through the real client, and real rustls handshakes against the
//! certificates it hands out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use novacron_api_types::ErrorCode;
use novacron_api_types::agent::{HeartbeatRequest, RegisterRequest, RegisterResponse};
use novacron_client::{Client, ClientError, Config};
use novacron_server::{Server, TokenKind};

struct Cp {
    _dir: tempfile::TempDir,
    server: Server,
    store: std::sync::Arc<dyn novacron_store::Store>,
}

impl Cp {
    async fn start() -> Cp {
        let dir = tempfile::tempdir().unwrap();
        let store = common::sqlite_store(dir.path()).await;
        let server = Server::start(common::config(store.clone(), dir.path()))
            .await
            .unwrap();
        Cp {
            _dir: dir,
            server,
            store,
        }
    }

    fn client(&self, token: &str) -> Client {
        common::client(&self.server, token)
    }

    fn ca(&self) -> String {
        self.server.ca_cert_pem().to_string()
    }
}

fn request(name: &str, agent_url: &str) -> RegisterRequest {
    RegisterRequest {
        name: name.into(),
        capacity: Default::default(),
        agent_url: agent_url.into(),
        kvm_usable: false,
        qemu_version: "9.0".into(),
        bridges: vec![],
        vtep_address: None,
        site: None,
        tunnel: None,
    }
}

/// Serves `cert_pem`/`key_pem` on loopback over HTTPS; every request's bearer token is
/// recorded (what a fake server would steal).
async fn fake_server(
    cert_pem: &str,
    key_pem: &str,
) -> (novacron_tls::ServeHandle, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let record = seen.clone();
    let router = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let record = record.clone();
        async move {
            if let Some(v) = headers.get("authorization") {
                record
                    .lock()
                    .unwrap()
                    .push(v.to_str().unwrap_or_default().to_string());
            }
            axum::Json(serde_json::json!([]))
        }
    });
    let id = novacron_tls::Identity {
        cert_pem: cert_pem.into(),
        key_pem: key_pem.into(),
    };
    let tls = novacron_tls::server_config(&id, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (
        novacron_tls::serve_https(listener, tls, router).unwrap(),
        seen,
    )
}

/// Whether a client that wants node certificates accepts `addr` as `name`.
async fn node_cert_valid_for(ca: &str, addr: SocketAddr, name: &str) -> bool {
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(novacron_tls::node_client_config(ca).unwrap())
        .resolve(name, addr)
        .build()
        .unwrap();
    let host = if name.parse::<std::net::IpAddr>().is_ok() {
        addr.to_string()
    } else {
        format!("{name}:{}", addr.port())
    };
    http.get(format!("https://{host}/")).send().await.is_ok()
}

async fn join(cp: &Cp, name: &str, agent_url: &str) -> Result<RegisterResponse, ClientError> {
    let join = cp.server.issue_token(TokenKind::Join).await.unwrap();
    cp.client(&join)
        .agent_register(&request(name, agent_url))
        .await
}

#[tokio::test]
async fn node_certificates_carry_only_names_the_control_plane_chose() {
    let cp = Cp::start().await;
    // Names the registering agent may not have: wildcards, localhost, other hosts.
    for url in [
        "https://*.example.com:9443",
        "https://localhost:9443",
        "https://cp.example.com:9443",
        "https://198.18.0.7:9443",
    ] {
        let e = join(&cp, "node-x", url).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{url}: {e}");
    }
    for name in ["localhost"] {
        let e = join(&cp, name, "https://127.0.0.1:9443").await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{name}: {e}");
    }
    // Its own address (the one the registration came from) is fine.
    let resp = join(&cp, "node-x", "https://127.0.0.1:9443").await.unwrap();
    assert!(resp.cert_not_after.is_some());
    let (serve, _) = fake_server(&resp.cert_pem, &resp.key_pem).await;
    let ca = cp.ca();
    assert!(node_cert_valid_for(&ca, serve.local_addr, "node-x").await);
    assert!(node_cert_valid_for(&ca, serve.local_addr, "127.0.0.1").await);
    for foreign in ["cp.example.com", "x.example.com", "localhost", "node-y"] {
        assert!(
            !node_cert_valid_for(&ca, serve.local_addr, foreign).await,
            "the node certificate is valid for {foreign}"
        );
    }
    serve.stop().await;
    cp.server.stop().await;
}

#[tokio::test]
async fn the_client_refuses_a_server_with_a_node_certificate() {
    let cp = Cp::start().await;
    let resp = join(&cp, "node-x", "https://127.0.0.1:9443").await.unwrap();
    // A fake control plane on 127.0.0.1 with a node certificate that names 127.0.0.1.
    let (serve, seen) = fake_server(&resp.cert_pem, &resp.key_pem).await;
    let admin = cp.server.issue_token(TokenKind::Admin).await.unwrap();
    let victim = Client::new(Config {
        servers: vec![format!("https://{}", serve.local_addr)],
        token: admin.clone(),
        ca_cert_pem: cp.ca(),
    })
    .unwrap();
    let e = victim.node_list().await.unwrap_err();
    assert!(
        matches!(e, ClientError::Unreachable { .. }),
        "the client talked to a node certificate: {e}"
    );
    assert!(e.to_string().contains("control-plane"), "{e}");
    assert!(seen.lock().unwrap().is_empty(), "the admin token leaked");
    // The real control plane is accepted by the same client configuration.
    cp.client(&admin).node_list().await.unwrap();
    serve.stop().await;
    cp.server.stop().await;
}

#[tokio::test]
async fn node_delete_revokes_the_node_token() {
    let cp = Cp::start().await;
    let resp = join(&cp, "node-x", "https://127.0.0.1:9443").await.unwrap();
    let node = cp.client(&resp.node_token);
    node.agent_heartbeat(&HeartbeatRequest {
        running_vms: 0,
        stats: None,
    })
    .await
    .unwrap();
    // Renewal: registering again with the node token issues a new certificate.
    let renewed = node
        .agent_register(&request("node-x", "https://127.0.0.1:9443"))
        .await
        .unwrap();
    assert_ne!(renewed.cert_pem, resp.cert_pem);
    assert_eq!(renewed.node_token, resp.node_token);

    let admin = cp.server.issue_token(TokenKind::Admin).await.unwrap();
    cp.client(&admin).node_delete("node-x").await.unwrap();
    let e = node
        .agent_heartbeat(&HeartbeatRequest {
            running_vms: 0,
            stats: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unauthenticated), "{e}");
    let e = node
        .agent_register(&request("node-x", "https://127.0.0.1:9443"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unauthenticated), "{e}");
    cp.server.stop().await;
}

#[tokio::test]
async fn expired_and_unexpiring_join_tokens_cannot_register() {
    let cp = Cp::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (secret, record) in [
        (
            "expired-join-token",
            serde_json::json!({"kind": "join", "expires_at": now - 1}),
        ),
        // Stored before join tokens expired: it never would.
        ("legacy-join-token", serde_json::json!({"kind": "join"})),
    ] {
        let key = novacron_server::records::token_key(&novacron_server::auth::token_hash(secret));
        cp.store
            .put(&key, serde_json::to_vec(&record).unwrap())
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let e = loop {
            let e = cp
                .client(secret)
                .agent_register(&request("node-x", "https://127.0.0.1:9443"))
                .await
                .unwrap_err();
            // The token cache may not have seen the record yet ("invalid or revoked").
            if e.to_string().contains("expired") || std::time::Instant::now() > deadline {
                break e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(e.code(), Some(ErrorCode::Unauthenticated), "{secret}: {e}");
        assert!(e.to_string().contains("expired"), "{secret}: {e}");
        assert!(!cp.server.token_is(secret, TokenKind::Join), "{secret}");
    }
    // A fresh one works, and `up` would print it again.
    let fresh = cp.server.issue_token(TokenKind::Join).await.unwrap();
    assert!(cp.server.token_is(&fresh, TokenKind::Join));
    cp.client(&fresh)
        .agent_register(&request("node-x", "https://127.0.0.1:9443"))
        .await
        .unwrap();
    cp.server.stop().await;
}

/// An HTTPS client that presents the node certificate of `resp`.
fn presenting(cp: &Cp, resp: &RegisterResponse) -> reqwest::Client {
    let id = novacron_tls::Identity {
        cert_pem: resp.cert_pem.clone(),
        key_pem: resp.key_pem.clone(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(novacron_tls::client_config(&cp.ca(), Some(&id)).unwrap())
        .build()
        .unwrap()
}

/// Calls the node route `heartbeat` with `token`; returns the status and the error body.
async fn heartbeat(cp: &Cp, http: &reqwest::Client, token: &str) -> (u16, serde_json::Value) {
    let resp = http
        .post(format!("{}/api/v1/agent/heartbeat", cp.server.url))
        .bearer_auth(token)
        .json(&HeartbeatRequest {
            running_vms: 0,
            stats: None,
        })
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_deleted_nodes_certificates_are_refused_before_they_expire() {
    let cp = Cp::start().await;
    let x = join(&cp, "node-x", "https://127.0.0.1:9443").await.unwrap();
    // Renewal leaves the first certificate valid: both must be revoked.
    let x2 = cp
        .client(&x.node_token)
        .agent_register(&request("node-x", "https://127.0.0.1:9443"))
        .await
        .unwrap();
    let y = join(&cp, "node-y", "https://127.0.0.1:9444").await.unwrap();

    // Before: node-x's certificates pass the handshake and the API (with a valid token).
    for resp in [&x, &x2] {
        let (status, body) = heartbeat(&cp, &presenting(&cp, resp), &y.node_token).await;
        assert_eq!(status, 200, "{body}");
    }

    let admin = cp.server.issue_token(TokenKind::Admin).await.unwrap();
    cp.client(&admin).node_delete("node-x").await.unwrap();

    // After: both certificates are refused, whatever token comes with them, with a clear
    // error, although neither has expired.
    for resp in [&x, &x2] {
        let http = presenting(&cp, resp);
        for token in [&y.node_token, &admin] {
            let (status, body) = heartbeat(&cp, &http, token).await;
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["code"], "unauthenticated", "{body}");
            let msg = body["message"].as_str().unwrap();
            assert!(
                msg.contains("revoked") && msg.contains("node-x") && msg.contains("join again"),
                "{msg}"
            );
        }
        assert!(resp.cert_not_after.unwrap() > novacron_server::records::now() + 600);
    }
    // node-y's certificate still works.
    let (status, body) = heartbeat(&cp, &presenting(&cp, &y), &y.node_token).await;
    assert_eq!(status, 200, "{body}");
    cp.server.stop().await;
}

#[tokio::test]
async fn a_ca_key_in_the_store_moves_to_a_private_file() {
    use std::os::unix::fs::MetadataExt;
    novacron_tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let store = novacron_store::open_store(&novacron_store::StoreUrl::Sqlite(
        dir.path().join("state.db"),
    ))
    .await
    .unwrap();
    // What an older version wrote: the key in the CA record.
    let ca = novacron_tls::Ca::generate().unwrap();
    store
        .put(
            novacron_server::records::CA_KEY,
            serde_json::to_vec(&serde_json::json!({
                "cert_pem": ca.identity.cert_pem,
                "key_pem": ca.identity.key_pem,
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let config = |store| common::config(store, dir.path());
    let server = Server::start(config(store.clone())).await.unwrap();
    assert_eq!(server.ca_cert_pem(), ca.identity.cert_pem);
    let rec = store
        .get(novacron_server::records::CA_KEY)
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(rec.value).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let key_file = dir.path().join("cp/ca.key");
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        ca.identity.key_pem
    );
    assert_eq!(std::fs::metadata(&key_file).unwrap().mode() & 0o7777, 0o600);
    server.stop().await;

    // Without the file the control plane does not start, and says what to do.
    std::fs::rename(&key_file, dir.path().join("elsewhere")).unwrap();
    let e = Server::start(config(store.clone())).await.err().unwrap();
    assert!(e.to_string().contains("ca.key"), "{e}");
    // A key of another CA is refused.
    std::fs::write(
        &key_file,
        novacron_tls::Ca::generate().unwrap().identity.key_pem,
    )
    .unwrap();
    let e = Server::start(config(store.clone())).await.err().unwrap();
    assert!(e.to_string().contains("does not belong"), "{e}");
}
