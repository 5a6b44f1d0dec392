//! What the control-plane tests share: a control plane on loopback over an embedded store in
//! a temporary directory, and an SDK client for it.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use novacron_client::{Client, Config};
use novacron_server::{Server, ServerConfig, TokenKind};

/// Opens (creating it) the embedded store `state.db` in `dir`.
pub async fn sqlite_store(dir: &Path) -> Arc<dyn novacron_store::Store> {
    novacron_tls::install_crypto_provider();
    novacron_store::open_store(&novacron_store::StoreUrl::Sqlite(dir.join("state.db")))
        .await
        .unwrap()
}

/// A control plane on 127.0.0.1 (any port) with its data in `dir/cp`: 10 s node lease,
/// 2 s fence margin, 1 h node certificates.
pub fn config(store: Arc<dyn novacron_store::Store>, dir: &Path) -> ServerConfig {
    ServerConfig {
        store,
        data_dir: dir.join("cp"),
        listen: "127.0.0.1:0".parse().unwrap(),
        extra_sans: vec![],
        node_lease_ttl: Duration::from_secs(10),
        fence_margin: Duration::from_secs(2),
        node_cert_ttl: Duration::from_secs(3600),
        advertise_url: None,
        registry: Default::default(),
        member_id: None,
        store_backend: "sqlite".into(),
    }
}

/// The SDK client for `server` with `token`, pinning its CA.
pub fn client(server: &Server, token: &str) -> Client {
    Client::new(Config {
        servers: vec![server.url.clone()],
        token: token.into(),
        ca_cert_pem: server.ca_cert_pem().into(),
    })
    .unwrap()
}

/// A control plane started by [`start`]: its directory (removed on drop), store and admin token.
pub struct Started {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn novacron_store::Store>,
    pub server: Server,
    pub admin: String,
}

/// A control plane over an embedded store in a fresh temporary directory, with an admin token.
pub async fn start() -> Started {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let server = Server::start(config(store.clone(), dir.path()))
        .await
        .unwrap();
    let admin = server.issue_token(TokenKind::Admin).await.unwrap();
    Started {
        dir,
        store,
        server,
        admin,
    }
}
