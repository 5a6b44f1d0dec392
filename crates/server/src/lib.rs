//! The NovaCron control plane: the REST API, authentication, placement, and the bookkeeping
//! that turns agents' status reports into finished operations. State lives in a [`Store`]
//! (embedded SQLite by default, etcd for HA); the server itself holds only mirrors of it.

// Tests may unwrap; product code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod disk_ops;
pub mod events;
pub mod ha;
pub mod history;
pub mod ipam;
pub mod join_tokens;
pub mod lifecycle;
pub mod local_files;
pub mod metrics;
pub mod networks;
pub mod nic_ops;
pub mod outcomes;
pub mod placement;
pub mod quota;
pub mod records;
pub mod security_groups;
pub mod state;
pub mod tenancy;
pub mod typed_store;
pub mod ui;
pub mod vm_config;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::{DEFAULT_PROJECT, Image};
use novacron_store::{Store, StoreError};
use novacron_tls::{Ca, ServeHandle};
use prometheus_client::registry::Registry;

use crate::cache::Cache;
use crate::metrics::ServerMetrics;
use crate::records::{CaRecord, ClusterRecord, TokenRecord, now};
use crate::state::AppState;

/// Errors that stop the control plane from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] novacron_tls::TlsError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the store holds a damaged {what}: {why}")]
    Corrupt { what: &'static str, why: String },
    #[error("the cluster CA private key is not in {}: it lives outside the store, with the replica that created the cluster; copy that replica's control-plane/ca.key here (mode 0600)", path.display())]
    CaKeyMissing { path: PathBuf },
}

/// How to run the control plane.
pub struct ServerConfig {
    pub store: Arc<dyn Store>,
    /// Images and other files of the control plane.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Extra DNS names / IPs for the API certificate.
    pub extra_sans: Vec<String>,
    /// A node without a heartbeat for this long is lost (`down`); its agent fences its HA
    /// VMs after the same time, and they restart elsewhere [`ServerConfig::fence_margin`] later.
    pub node_lease_ttl: Duration,
    pub fence_margin: Duration,
    /// How long node certificates last ([`DEFAULT_NODE_CERT_TTL`]); agents renew them after
    /// two thirds of that.
    pub node_cert_ttl: Duration,
    /// The URL other replicas and agents use for this replica (default: derived from `listen`).
    pub advertise_url: Option<String>,
    /// Where metrics are registered (shared with the agent in `novacron up`).
    pub registry: Arc<std::sync::Mutex<Registry>>,
    /// This replica's name in `cluster status` (default: host name and port).
    pub member_id: Option<String>,
    /// `sqlite` or `etcd`, for status pages.
    pub store_backend: String,
}

/// Node certificates last 30 days unless configured otherwise.
pub const DEFAULT_NODE_CERT_TTL: Duration = Duration::from_secs(30 * 86400);

/// Join tokens register nodes for a day after they are minted.
pub const DEFAULT_JOIN_TOKEN_TTL: Duration =
    Duration::from_secs(novacron_api_types::join_token::DEFAULT_JOIN_TOKEN_TTL_SECONDS);

/// Which kind of token to mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Admin,
    Join,
}

/// A running control plane.
pub struct Server {
    pub url: String,
    pub local_addr: SocketAddr,
    state: Arc<AppState>,
    serve: ServeHandle,
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// The file in the control plane's data directory that holds the cluster CA's private key
/// (mode 0600). It is never in the store: whoever can read the store must not be able to
/// issue certificates. Every replica of an HA control plane needs a copy.
pub const CA_KEY_FILE: &str = "ca.key";

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> ServerError {
    move |source| ServerError::Io { what, source }
}

/// Writes `contents` to `path` readable by its owner only (created 0600, never wider).
fn write_private(path: &Path, contents: &str) -> Result<(), ServerError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let what = || format!("cannot write {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(what()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(what()))?;
    f.write_all(contents.as_bytes()).map_err(io_err(what()))?;
    f.sync_all().map_err(io_err(what()))
}

fn read_key(path: &Path) -> Result<Option<String>, ServerError> {
    match std::fs::read_to_string(path) {
        Ok(k) => Ok(Some(k)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(format!("cannot read {}", path.display()))(e)),
    }
}

/// The cluster CA: created with the cluster (certificate in the store, key in
/// [`CA_KEY_FILE`] under `data_dir`), or loaded. A key an older version kept in the store is
/// moved out into the file, then removed from the store.
async fn ensure_cluster(store: &dyn Store, data_dir: &Path) -> Result<Ca, ServerError> {
    std::fs::create_dir_all(data_dir)
        .map_err(io_err(format!("cannot create {}", data_dir.display())))?;
    let key_path = data_dir.join(CA_KEY_FILE);
    // Written before the cluster record, renamed once that record is ours.
    let staged = data_dir.join(format!("{CA_KEY_FILE}.new"));
    for _ in 0..5 {
        if let Some(kv) = store.get(records::CA_KEY).await? {
            let rec: CaRecord =
                serde_json::from_slice(&kv.value).map_err(|e| ServerError::Corrupt {
                    what: "cluster CA",
                    why: e.to_string(),
                })?;
            if let Some(in_store) = &rec.key_pem {
                match read_key(&key_path)? {
                    Some(file) if file.trim() != in_store.trim() => {
                        return Err(ServerError::Corrupt {
                            what: "cluster CA key",
                            why: format!(
                                "{} holds another key than the store; remove the file that is wrong",
                                key_path.display()
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        Ca::from_pem(&rec.cert_pem, in_store)?;
                        write_private(&key_path, in_store)?;
                    }
                }
                let moved = CaRecord {
                    cert_pem: rec.cert_pem.clone(),
                    key_pem: None,
                };
                let value = serde_json::to_vec(&moved).unwrap_or_default();
                if store
                    .compare_and_swap(records::CA_KEY, kv.mod_revision, value)
                    .await?
                    .is_none()
                {
                    continue;
                }
                tracing::warn!(path = %key_path.display(), "moved the cluster CA private key out of the store into a file readable by its owner only");
                return Ok(Ca::from_pem(&rec.cert_pem, in_store)?);
            }
            let key = match read_key(&key_path)? {
                Some(k) => k,
                // A crash between creating the cluster and renaming the staged key.
                None => match read_key(&staged)? {
                    Some(k) if Ca::from_pem(&rec.cert_pem, &k).is_ok() => {
                        std::fs::rename(&staged, &key_path)
                            .map_err(io_err(format!("cannot rename {}", staged.display())))?;
                        k
                    }
                    _ => {
                        return Err(ServerError::CaKeyMissing { path: key_path });
                    }
                },
            };
            return Ca::from_pem(&rec.cert_pem, &key).map_err(|e| ServerError::Corrupt {
                what: "cluster CA key",
                why: format!("{}: {e}", key_path.display()),
            });
        }
        let ca = Ca::generate()?;
        write_private(&staged, &ca.identity.key_pem)?;
        let rec = CaRecord {
            cert_pem: ca.identity.cert_pem.clone(),
            key_pem: None,
        };
        let cluster = ClusterRecord {
            cluster_id: api::operations::new_id().replace("op-", "nc-"),
            created_at: now(),
        };
        let out = store
            .txn(
                vec![novacron_store::Compare::ModRevision {
                    key: records::CA_KEY.into(),
                    equals: 0,
                }],
                vec![
                    novacron_store::Op::Put {
                        key: records::CA_KEY.into(),
                        value: serde_json::to_vec(&rec).unwrap_or_default(),
                    },
                    novacron_store::Op::Put {
                        key: records::CLUSTER_KEY.into(),
                        value: serde_json::to_vec(&cluster).unwrap_or_default(),
                    },
                    novacron_store::Op::Put {
                        key: records::project_key(DEFAULT_PROJECT),
                        value: br#"{"name":"default"}"#.to_vec(),
                    },
                ],
            )
            .await?;
        if out.succeeded {
            std::fs::rename(&staged, &key_path)
                .map_err(io_err(format!("cannot rename {}", staged.display())))?;
            tracing::info!(cluster = %cluster.cluster_id, ca_key = %key_path.display(), "initialised a new cluster");
            return Ok(ca);
        }
        let _ = std::fs::remove_file(&staged);
    }
    Err(ServerError::Corrupt {
        what: "cluster CA",
        why: "it kept changing while starting".into(),
    })
}

/// Older versions stored each replica's internal credential, an admin token, in plain text
/// in its member record: revoke every such token still valid.
async fn revoke_plaintext_internal_tokens(store: &dyn Store) -> Result<(), ServerError> {
    let (members, _) = store.list(&records::member_prefix()).await?;
    for kv in members {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&kv.value) else {
            continue;
        };
        if let Some(token) = v.get("internal_token").and_then(|t| t.as_str()) {
            store
                .delete(&records::token_key(&auth::token_hash(token)))
                .await?;
            tracing::warn!(member = %kv.key, "revoked a replica's internal admin token that an older version stored in plain text");
        }
    }
    Ok(())
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Server {
    /// Initialises the cluster on first start (CA, default project), then serves the API.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        novacron_tls::install_crypto_provider();
        let store = config.store.clone();
        let ca = ensure_cluster(store.as_ref(), &config.data_dir).await?;
        revoke_plaintext_internal_tokens(store.as_ref()).await?;
        tenancy::ensure_default_project(store.as_ref()).await?;
        let member_id = config.member_id.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                hostname().unwrap_or_else(|| "cp".into()),
                config.listen.port()
            )
        });

        let images_dir = config.data_dir.join("images");
        std::fs::create_dir_all(&images_dir).map_err(|source| ServerError::Io {
            what: format!("cannot create {}", images_dir.display()),
            source,
        })?;
        // Scratch left by a crash mid-import is never referenced: drop it.
        let _ = std::fs::remove_dir_all(images_dir.join(".incoming"));

        let local_files = match local_files::LocalFiles::bind(
            &config.data_dir.join(local_files::SOCKET_NAME),
            &member_id,
        ) {
            Ok(bound) => Some(bound),
            Err(e) => {
                tracing::warn!(error = %e, "no local-files socket: local imports are uploaded");
                None
            }
        };

        // Agents must present node certificates: a control-plane certificate is not an agent.
        let agent_tls = novacron_tls::node_client_config(&ca.identity.cert_pem)?;
        let agent_http = http_client(agent_tls)?;
        // Other replicas present control-plane certificates.
        let replica_http = http_client(novacron_tls::client_config(&ca.identity.cert_pem, None)?)?;

        let state = Arc::new(AppState {
            vms: Cache::start_with(
                store.clone(),
                records::vm_prefix(),
                Some(|v: &records::VmRecord| v.node.clone()),
                Some(quota::vm_tally()),
            )
            .await?,
            statuses: Cache::start(store.clone(), records::vm_status_prefix()).await?,
            nodes: Cache::start(store.clone(), records::node_prefix()).await?,
            node_leases: Cache::start(store.clone(), records::node_lease_prefix()).await?,
            images: Cache::<Image>::start(store.clone(), records::image_prefix()).await?,
            security_groups: Cache::start(store.clone(), records::security_group_prefix()).await?,
            tokens: Cache::start(store.clone(), format!("{}tokens/", records::ROOT)).await?,
            projects: Cache::start(store.clone(), tenancy::project_prefix()).await?,
            users: Cache::start(store.clone(), tenancy::user_prefix()).await?,
            bindings: Cache::start(store.clone(), tenancy::binding_prefix()).await?,
            revoked_certs: Cache::start(store.clone(), records::revoked_cert_prefix()).await?,
            members: Cache::start(store.clone(), records::member_prefix()).await?,
            leader: Cache::start(store.clone(), records::leader_prefix()).await?,
            storage: Cache::start(store.clone(), records::storage_prefix()).await?,
            backup_repos: Cache::start(store.clone(), records::backup_repo_prefix()).await?,
            backup_schedules: Cache::start(store.clone(), records::backup_schedule_prefix())
                .await?,
            events: crate::events::EventHub::start(store.clone()).await?,
            audit: crate::audit::AuditLog::start(
                store.clone(),
                config.data_dir.join(crate::audit::CHECKPOINT_FILE),
            ),
            member_id: member_id.clone(),
            run_id: api::operations::new_id().replacen("op-", "run-", 1),
            last_seen: Default::default(),
            node_lease_ttl: config.node_lease_ttl,
            node_cert_ttl: config.node_cert_ttl,
            fence_margin: config.fence_margin,
            store_backend: config.store_backend.clone(),
            store: store.clone(),
            ca: ca.clone(),
            images_dir,
            local_files: local_files.as_ref().map(|(files, _)| files.clone()),
            metrics: ServerMetrics::register(config.registry.clone()),
            placement: crate::placement::Placement::new(),
            agent_http,
            replica_http,
        });

        let mut sans = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        if let Some(h) = hostname() {
            sans.push(h);
        }
        if !config.listen.ip().is_unspecified() {
            sans.push(config.listen.ip().to_string());
        }
        sans.extend(config.extra_sans.iter().cloned());
        sans.sort();
        sans.dedup();
        let identity = ca.issue_control_plane(&sans)?;
        // Clients may present a node certificate; a revoked one is refused (auth).
        let tls = novacron_tls::api_server_config(&identity, &ca.identity.cert_pem)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Io {
                what: format!("cannot listen on {}", config.listen),
                source,
            })?;
        let serve = novacron_tls::serve_https(listener, tls, api::router(state.clone())).map_err(
            |source| ServerError::Io {
                what: "serving the API".into(),
                source,
            },
        )?;
        let local_addr = serve.local_addr;
        let host = if config.listen.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            match local_addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            }
        };
        let url = format!("https://{host}:{}", local_addr.port());

        let url = config.advertise_url.clone().unwrap_or(url);
        // This replica's internal credential: derived from the CA key and a fresh nonce, so
        // it changes at every start; only its hash is stored, under the member lease.
        let member = records::MemberRecord {
            id: member_id.clone(),
            url: url.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: now(),
            credential_nonce: auth::new_nonce(),
            run: state.run_id.clone(),
        };
        let credential = state.replica_credential(&member);
        let credential_record = (
            records::token_key(&auth::token_hash(&credential)),
            serde_json::to_vec(&TokenRecord::Replica { member: member_id }).unwrap_or_default(),
        );
        let mut background = vec![
            tokio::spawn(placement::follow(state.clone())),
            tokio::spawn(ha::announce(state.clone(), member, credential_record)),
            tokio::spawn(ha::elect_and_run(state.clone())),
            tokio::spawn(outcomes::follow(state.clone())),
        ];
        if let Some((files, listener)) = local_files {
            background.push(tokio::spawn(local_files::serve(files, listener)));
        }
        tracing::info!(%url, "API serving");
        Ok(Server {
            url,
            local_addr,
            state,
            serve,
            background,
        })
    }

    /// The cluster CA certificate (PEM) that clients must trust.
    pub fn ca_cert_pem(&self) -> &str {
        &self.state.ca.identity.cert_pem
    }

    /// The join token string agents need, for a join secret.
    pub fn join_token_string(&self, secret: &str) -> Result<String, ServerError> {
        Ok(join_token_string(self.ca_cert_pem(), secret)?)
    }

    /// Mints a new token of `kind` (only its hash is stored).
    pub async fn issue_token(&self, kind: TokenKind) -> Result<String, ServerError> {
        let token = auth::new_token();
        let rec = match kind {
            TokenKind::Admin => TokenRecord::Admin,
            TokenKind::Join => TokenRecord::Join(records::JoinTokenRecord {
                expires_at: Some(now() + DEFAULT_JOIN_TOKEN_TTL.as_secs()),
                name: Some("default".into()),
                created_at: Some(now()),
                single_use: false,
                revoked_at: None,
            }),
        };
        let rev = self
            .state
            .store
            .put(
                &records::token_key(&auth::token_hash(&token)),
                serde_json::to_vec(&rec).unwrap_or_default(),
            )
            .await?;
        self.state.tokens.wait_for(rev, AppState::CATCH_UP).await;
        Ok(token)
    }

    /// Whether `token` is currently valid and of `kind`.
    pub fn token_is(&self, token: &str, kind: TokenKind) -> bool {
        let rec = self
            .state
            .tokens
            .get(&records::token_key(&auth::token_hash(token)));
        // A join token to be printed again must stay valid a while (an hour) yet.
        match (rec.as_deref(), kind) {
            (Some(TokenRecord::Admin), TokenKind::Admin) => true,
            (Some(TokenRecord::Join(rec)), TokenKind::Join) => {
                rec.revoked_at.is_none()
                    && !rec.single_use
                    && rec
                        .expires_at
                        .is_some_and(|t| now() + join_tokens::REPRINT_MARGIN.as_secs() < t)
            }
            _ => false,
        }
    }

    /// Stops serving (VMs keep running on their nodes).
    pub async fn stop(self) {
        for t in &self.background {
            t.abort();
        }
        self.serve.stop().await;
    }
}

/// The join token string agents take (`NVC1.<CA fingerprint>.<secret>`): it pins the
/// cluster CA the agent will trust.
pub fn join_token_string(
    ca_cert_pem: &str,
    secret: &str,
) -> Result<String, novacron_tls::TlsError> {
    Ok(format!(
        "NVC1.{}.{}",
        novacron_tls::ca_fingerprint(ca_cert_pem)?,
        secret
    ))
}

/// Deletes finished operations a day old, and join tokens a day past their expiry (a
/// leader-only controller).
pub(crate) async fn expire_operations(state: Arc<AppState>) {
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        match api::operations::expire(state.store.as_ref(), 86_400).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "expired finished operations"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiring operations failed"),
        }
        match expire_revoked_certs(&state).await {
            Ok(n) if n > 0 => {
                tracing::info!(removed = n, "forgot revoked certificates that expired")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "forgetting expired revoked certificates failed"),
        }
        match join_tokens::expire(&state).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "removed expired join tokens"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "removing expired join tokens failed"),
        }
    }
}

/// Deletes revocation records of certificates that have expired (an expired certificate is
/// refused by the TLS handshake already).
async fn expire_revoked_certs(state: &AppState) -> Result<usize, StoreError> {
    let now = now();
    let stale: Vec<String> = state.revoked_certs.with(|r| {
        r.iter()
            .filter(|(_, v)| v.not_after.is_some_and(|t| t < now))
            .map(|(k, _)| k.clone())
            .collect()
    });
    for k in &stale {
        state.store.delete(k).await?;
    }
    Ok(stale.len())
}

/// An HTTPS client for calls the control plane makes (to agents, to other replicas) over `tls`
/// (a `rustls::ClientConfig` from novacron_tls, as reqwest's `use_preconfigured_tls` takes it).
fn http_client(tls: impl std::any::Any) -> Result<reqwest::Client, ServerError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| ServerError::Io {
            what: "HTTP client".into(),
            source: std::io::Error::other(e),
        })
}
