//! The NovaCron SDK for Rust: a typed client for the REST API under `/api/v1`, used by the
//! CLI and by node agents, and usable on its own by any program that drives a cluster.
//!
//! # Connecting
//!
//! A [`Client`] needs a [`Config`]: the control-plane URLs (tried in order, with fail-over
//! to the next when one cannot be reached), a bearer token, and the cluster CA in PEM. The
//! client trusts only that CA (never the system roots), so a cluster's self-signed
//! certificate is verified, not waved through. Build the config yourself, or let
//! [`Config::load`] read the file `novacron up` / `novacron login` write
//! ([`default_config_path`]) with `NOVACRON_URL`, `NOVACRON_TOKEN` and `NOVACRON_CA_CERT`
//! (a PEM file) taking precedence.
//!
//! ```no_run
//! # async fn demo() -> Result<(), novacron_client::ClientError> {
//! use novacron_client::{Client, Config};
//!
//! let client = Client::new(Config {
//!     servers: vec!["https://10.0.0.5:9440".into()],
//!     token: std::env::var("NOVACRON_TOKEN").unwrap_or_default(),
//!     ca_cert_pem: std::fs::read_to_string("ca.pem").unwrap_or_default(),
//! })?;
//! for vm in client.vm_list().await? {
//!     println!("{} {}", vm.name, vm.state);
//! }
//! # Ok(()) }
//! ```
//!
//! # What it covers
//!
//! One async method per API operation, named after the resource: `vm_create`, `vm_list`,
//! `vm_get`, `vm_delete`, `vm_migrate`, `image_build_tiny`, `node_list`, `network_create`,
//! backups, tokens, projects and more; request and answer types come from
//! `novacron-api-types`. Long actions (create, start, stop, delete, migrate) answer at once
//! with an [`OperationRef`](novacron_api_types::OperationRef); [`Client::operation_wait`]
//! waits for it to finish. [`Client::with_project`] names the project of every request.
//! [`Client::events`] streams what happens in the cluster.
//!
//! # Errors
//!
//! Every method returns [`ClientError`]: [`ClientError::Api`] carries the server's
//! `{"code", "message"}` ([`ClientError::code`] gives the code, e.g. `NotFound`), the other
//! variants say the server could not be reached, answered something unexpected, or the
//! local configuration is wrong.
//!
//! # Example program
//!
//! `crates/client/examples/list_vms.rs` lists a cluster's VMs from `NOVACRON_URL`,
//! `NOVACRON_TOKEN` and `NOVACRON_CA_CERT`: `cargo run --example list_vms`. For Python, see
//! the SDK generated from the OpenAPI document under `sdk/python` (docs/sdk.md).

// Tests may unwrap; product code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bootstrap;
mod config;
mod events;
mod local_files;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use novacron_api_types::agent::{
    DesiredVms, HeartbeatRequest, RegisterRequest, RegisterResponse, VmStatusReport,
};
use novacron_api_types::backup::{
    Backup, BackupCreateRequest, BackupRepo, BackupRepoAddRequest, BackupRestoreRequest,
    BackupSchedule, OperationUpdate, PruneRequest, RepoSyncRequest,
};
use novacron_api_types::{
    ApiError, BuildTinyRequest, ConsoleLog, ErrorCode, Health, Image, Node, Operation,
    OperationRef, StopRequest, Vm, VmCreateRequest,
};
use reqwest::{Method, StatusCode};

/// Timeout of calls that read a whole repository (verify, gc, listings of many backups) or
/// answer when an import is done (a handed-in OVA).
const LONG: Duration = Duration::from_secs(6 * 3600);
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use bootstrap::{JoinToken, fetch_pinned_ca};
pub use config::{Config, default_config_path, default_project, set_default_project};
pub use events::{EventStream, EventsRequest, StreamItem};

/// What can go wrong talking to the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// No server could be reached.
    #[error("cannot reach the NovaCron API at {url}: {why}")]
    Unreachable { url: String, why: String },
    /// The answer was not what this client understands.
    #[error("unexpected answer from {url}: {why}")]
    Protocol { url: String, why: String },
    /// Local configuration problem (missing config file, bad CA...).
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// The API error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api(e) => Some(e.code),
            _ => None,
        }
    }
}

/// A connection to the control plane (cheap to clone).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    servers: Vec<String>,
    token: String,
    /// The project every request names (the `X-Novacron-Project` header), if any.
    project: Option<String>,
    /// Index of the server that answered last; tried first.
    preferred: AtomicUsize,
}

/// The `(segment)` of a URL path, percent-free because names are validated DNS labels;
/// anything else is rejected by the server with a clear error.
/// Called with the bytes sent so far while an upload runs.
pub type UploadProgress = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

fn seg(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32 & 0xff)
            }
        })
        .collect()
}

impl Client {
    /// A client for `config`. Requests time out after `config.timeout`.
    pub fn new(config: Config) -> Result<Client, ClientError> {
        novacron_tls::install_crypto_provider();
        if config.servers.is_empty() {
            return Err(ClientError::Config(
                "no server URL configured: set NOVACRON_URL or run `novacron up`".into(),
            ));
        }
        let tls = novacron_tls::client_config(&config.ca_cert_pem, None)
            .map_err(|e| ClientError::Config(format!("cluster CA in the client config: {e}")))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                servers: config
                    .servers
                    .iter()
                    .map(|s| s.trim_end_matches('/').to_string())
                    .collect(),
                token: config.token,
                project: None,
                preferred: AtomicUsize::new(0),
            }),
        })
    }

    /// The same connection, naming `project` in every request (`None`: the server decides,
    /// which is the project of a project-scoped token, else `default`).
    pub fn with_project(&self, project: Option<String>) -> Client {
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                servers: self.inner.servers.clone(),
                token: self.inner.token.clone(),
                project,
                preferred: AtomicUsize::new(self.inner.preferred.load(Ordering::Relaxed)),
            }),
        }
    }

    /// The project this client names, if any.
    pub fn project(&self) -> Option<&str> {
        self.inner.project.as_deref()
    }

    /// The server URLs, in the order they are tried.
    pub fn servers(&self) -> &[String] {
        &self.inner.servers
    }

    /// Sends a request, trying each server in turn when one cannot be reached. Only
    /// connection failures move on to the next server; an answer (even an error) is final.
    async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let n = self.inner.servers.len();
        let first = self.inner.preferred.load(Ordering::Relaxed) % n;
        let mut last_err = None;
        for i in 0..n {
            let idx = (first + i) % n;
            let url = format!("{}/api/v1{}", self.inner.servers[idx], path);
            let req = self
                .inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.inner.token)
                .timeout(timeout);
            let req = match &self.inner.project {
                Some(p) => req.header(novacron_api_types::tenancy::PROJECT_HEADER, p),
                None => req,
            };
            match build(req).send().await {
                Ok(resp) => {
                    self.inner.preferred.store(idx, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(e) => {
                    tracing::debug!(url, error = %e, "server unreachable, trying the next one");
                    last_err = Some(ClientError::Unreachable {
                        url: self.inner.servers[idx].clone(),
                        why: error_chain(&e),
                    });
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ClientError::Config("no servers".into())))
    }

    async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
        let (url, bytes) = Self::success_body(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            url,
            why: e.to_string(),
        })
    }

    /// The URL and body of a successful answer; an error answer becomes its API error.
    async fn success_body(resp: reqwest::Response) -> Result<(String, Vec<u8>), ClientError> {
        let url = resp.url().to_string();
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            why: error_chain(&e),
        })?;
        if status.is_success() {
            Ok((url, bytes.into()))
        } else {
            Err(api_error(status, &bytes))
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, ClientError> {
        self.call_with_timeout(method, path, body, Duration::from_secs(60))
            .await
    }

    async fn call_with_timeout<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let resp = self
            .send(
                method,
                path,
                |r| match body {
                    Some(b) => r.json(b),
                    None => r,
                },
                timeout,
            )
            .await?;
        Self::decode(resp).await
    }

    // ---- health -------------------------------------------------------------------------

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, "/health", None::<&()>).await
    }

    // ---- VMs ----------------------------------------------------------------------------

    /// Creates a VM. The request is checked first, as the control plane checks it, so a bad
    /// one is refused with the server's message without a round trip.
    pub async fn vm_create(&self, req: &VmCreateRequest) -> Result<OperationRef, ClientError> {
        req.validate().map_err(invalid)?;
        self.call(Method::POST, "/vms", Some(req)).await
    }

    pub async fn vm_list(&self) -> Result<Vec<Vm>, ClientError> {
        self.call(Method::GET, "/vms", None::<&()>).await
    }

    /// The VMs whose labels match `selector` (`key=value`, `key!=value` or `key`, joined by
    /// commas).
    pub async fn vm_list_selected(&self, selector: &str) -> Result<Vec<Vm>, ClientError> {
        novacron_api_types::labels::Selector::parse(selector).map_err(invalid)?;
        self.call(
            Method::GET,
            &format!("/vms?selector={}", seg(selector)),
            None::<&()>,
        )
        .await
    }

    /// Starts taking a snapshot of the VM.
    pub async fn vm_snapshot_create(
        &self,
        name: &str,
        req: &novacron_api_types::SnapshotCreateRequest,
    ) -> Result<OperationRef, ClientError> {
        if let Some(s) = &req.name {
            novacron_api_types::labels::snapshot_name(s).map_err(invalid)?;
        }
        self.call(
            Method::POST,
            &format!("/vms/{}/snapshots", seg(name)),
            Some(req),
        )
        .await
    }

    /// The VM's snapshots, oldest first.
    pub async fn vm_snapshot_list(
        &self,
        name: &str,
    ) -> Result<Vec<novacron_api_types::VmSnapshot>, ClientError> {
        self.call(
            Method::GET,
            &format!("/vms/{}/snapshots", seg(name)),
            None::<&()>,
        )
        .await
    }

    /// Starts reverting the VM to snapshot `snapshot`; a running VM is reverted only with
    /// `force` (what the guest did since the snapshot is lost).
    pub async fn vm_snapshot_revert(
        &self,
        name: &str,
        snapshot: &str,
        force: bool,
    ) -> Result<OperationRef, ClientError> {
        let mut path = format!("/vms/{}/snapshots/{}/revert", seg(name), seg(snapshot));
        if force {
            path.push_str("?force=true");
        }
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// Starts deleting snapshot `snapshot` of the VM.
    pub async fn vm_snapshot_delete(
        &self,
        name: &str,
        snapshot: &str,
    ) -> Result<OperationRef, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/vms/{}/snapshots/{}", seg(name), seg(snapshot)),
            None::<&()>,
        )
        .await
    }

    /// Starts adding a blank disk to the VM (plugged into the guest if it runs).
    pub async fn vm_disk_add(
        &self,
        name: &str,
        req: &novacron_api_types::disks::DiskAddRequest,
    ) -> Result<OperationRef, ClientError> {
        req.validate().map_err(ClientError::Api)?;
        self.call(
            Method::POST,
            &format!("/vms/{}/disks", seg(name)),
            Some(req),
        )
        .await
    }

    /// Starts detaching added disk `disk` from the VM and deleting it (`force`: also while
    /// the VM runs).
    pub async fn vm_disk_detach(
        &self,
        name: &str,
        disk: &str,
        force: bool,
    ) -> Result<OperationRef, ClientError> {
        let mut path = format!("/vms/{}/disks/{}", seg(name), seg(disk));
        if force {
            path.push_str("?force=true");
        }
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// Starts adding a NIC to the VM (plugged into the guest if it runs).
    pub async fn vm_nic_add(
        &self,
        name: &str,
        req: &novacron_api_types::nics::NicAddRequest,
    ) -> Result<OperationRef, ClientError> {
        req.validate().map_err(ClientError::Api)?;
        self.call(Method::POST, &format!("/vms/{}/nics", seg(name)), Some(req))
            .await
    }

    /// Starts removing added NIC `nic` (its name or MAC) from the VM (`force`: also while
    /// the VM runs).
    pub async fn vm_nic_remove(
        &self,
        name: &str,
        nic: &str,
        force: bool,
    ) -> Result<OperationRef, ClientError> {
        let mut path = format!("/vms/{}/nics/{}", seg(name), seg(nic));
        if force {
            path.push_str("?force=true");
        }
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// Starts growing disk `disk` of the VM (`disk0`, or an added one) to `req.size_bytes`.
    pub async fn vm_disk_resize(
        &self,
        name: &str,
        disk: &str,
        req: &novacron_api_types::disks::DiskResizeRequest,
    ) -> Result<OperationRef, ClientError> {
        req.validate().map_err(ClientError::Api)?;
        self.call(
            Method::POST,
            &format!("/vms/{}/disks/{}/resize", seg(name), seg(disk)),
            Some(req),
        )
        .await
    }

    /// Runs a command in the VM's guest through its qemu-guest-agent and waits for it to end
    /// (at most `req`'s timeout): its exit status and output.
    pub async fn vm_exec(
        &self,
        name: &str,
        req: &novacron_api_types::exec::ExecRequest,
    ) -> Result<novacron_api_types::exec::ExecResult, ClientError> {
        req.validate().map_err(ClientError::Api)?;
        self.call_with_timeout(
            Method::POST,
            &format!("/vms/{}/exec", seg(name)),
            Some(req),
            req.timeout() + Duration::from_secs(30),
        )
        .await
    }

    /// Starts making an image of the stopped VM's disk (`req.image`, default the VM's name).
    pub async fn vm_template(
        &self,
        name: &str,
        req: &novacron_api_types::disks::TemplateRequest,
    ) -> Result<OperationRef, ClientError> {
        self.call(
            Method::POST,
            &format!("/vms/{}/template", seg(name)),
            Some(req),
        )
        .await
    }

    /// Starts making VM `req.name` from the stopped VM `name` (its disk copied).
    pub async fn vm_clone(
        &self,
        name: &str,
        req: &novacron_api_types::disks::CloneRequest,
    ) -> Result<OperationRef, ClientError> {
        self.call(
            Method::POST,
            &format!("/vms/{}/clone", seg(name)),
            Some(req),
        )
        .await
    }

    /// Changes labels and description (at once) and CPUs and memory (at the next start).
    pub async fn vm_set(
        &self,
        name: &str,
        req: &novacron_api_types::VmSetRequest,
    ) -> Result<novacron_api_types::VmSetResponse, ClientError> {
        req.validate().map_err(invalid)?;
        self.call(Method::POST, &format!("/vms/{}/set", seg(name)), Some(req))
            .await
    }

    pub async fn vm_get(&self, name: &str) -> Result<Vm, ClientError> {
        self.call(Method::GET, &format!("/vms/{}", seg(name)), None::<&()>)
            .await
    }

    /// Starts a power action: `start`, `reboot`, `pause` or `resume`.
    pub async fn vm_action(&self, name: &str, action: &str) -> Result<OperationRef, ClientError> {
        self.call(
            Method::POST,
            &format!("/vms/{}/{}", seg(name), seg(action)),
            None::<&()>,
        )
        .await
    }

    pub async fn vm_stop(&self, name: &str, force: bool) -> Result<OperationRef, ClientError> {
        self.call(
            Method::POST,
            &format!("/vms/{}/stop", seg(name)),
            Some(&StopRequest { force }),
        )
        .await
    }

    /// Deletes a VM; one that runs is deleted only with `force` (QEMU is killed at once).
    pub async fn vm_delete(&self, name: &str, force: bool) -> Result<OperationRef, ClientError> {
        let path = if force {
            format!("/vms/{}?force=true", seg(name))
        } else {
            format!("/vms/{}", seg(name))
        };
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// The last `tail_bytes` of what the guest wrote on its serial console.
    pub async fn vm_console_log(
        &self,
        name: &str,
        tail_bytes: u64,
    ) -> Result<ConsoleLog, ClientError> {
        self.call(
            Method::GET,
            &format!("/vms/{}/console?tail_bytes={tail_bytes}", seg(name)),
            None::<&()>,
        )
        .await
    }

    /// Attaches to the serial console: a raw bidirectional byte stream.
    pub async fn vm_console_attach(&self, name: &str) -> Result<reqwest::Upgraded, ClientError> {
        self.upgrade_to(
            &format!("/vms/{}/console/attach", seg(name)),
            CONSOLE_PROTOCOL,
        )
        .await
    }

    /// Opens the VM's graphical console: a bidirectional byte stream speaking RFB (VNC),
    /// for one viewer connection.
    pub async fn vm_vnc_attach(&self, name: &str) -> Result<reqwest::Upgraded, ClientError> {
        self.upgrade_to(&format!("/vms/{}/vnc", seg(name)), VNC_PROTOCOL)
            .await
    }

    /// `GET path` asking to upgrade the connection to `protocol`; the upgraded stream.
    async fn upgrade_to(
        &self,
        path: &str,
        protocol: &'static str,
    ) -> Result<reqwest::Upgraded, ClientError> {
        let resp = self
            .send(
                Method::GET,
                path,
                |r| {
                    r.header(reqwest::header::CONNECTION, "upgrade")
                        .header(reqwest::header::UPGRADE, protocol)
                },
                Duration::from_secs(30),
            )
            .await?;
        upgrade(resp).await
    }

    // ---- operations ----------------------------------------------------------------------

    pub async fn operation_get(&self, id: &str) -> Result<Operation, ClientError> {
        self.call(
            Method::GET,
            &format!("/operations/{}", seg(id)),
            None::<&()>,
        )
        .await
    }

    /// Waits until the operation is done, calling `on_change` whenever its message or
    /// progress changes. Gives up after `timeout`.
    pub async fn operation_wait(
        &self,
        id: &str,
        timeout: Duration,
        mut on_change: impl FnMut(&Operation),
    ) -> Result<Operation, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last: Option<(String, Option<f64>)> = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = left.min(Duration::from_secs(20)).as_secs().max(1);
            let op: Operation = self
                .call_with_timeout(
                    Method::GET,
                    &format!("/operations/{}?wait_seconds={wait}", seg(id)),
                    None::<&()>,
                    Duration::from_secs(wait + 30),
                )
                .await?;
            let now = (op.message.clone(), op.progress);
            if last.as_ref() != Some(&now) {
                on_change(&op);
                last = Some(now);
            }
            if op.is_done() {
                return Ok(op);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Api(ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "operation {id} still running after {}s: {} (check again with `novacron operation show {id}`)",
                        timeout.as_secs(),
                        op.message
                    ),
                )));
            }
        }
    }

    pub async fn operation_list(&self) -> Result<Vec<Operation>, ClientError> {
        self.call(Method::GET, "/operations", None::<&()>).await
    }

    // ---- nodes ---------------------------------------------------------------------------

    pub async fn node_delete(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/nodes/{}", seg(name)),
            None::<&()>,
        )
        .await
    }

    pub async fn node_list(&self) -> Result<Vec<Node>, ClientError> {
        self.call(Method::GET, "/nodes", None::<&()>).await
    }

    pub async fn node_get(&self, name: &str) -> Result<Node, ClientError> {
        self.call(Method::GET, &format!("/nodes/{}", seg(name)), None::<&()>)
            .await
    }

    /// `cordon`, `uncordon` or `drain`.
    pub async fn node_action(&self, name: &str, action: &str) -> Result<Node, ClientError> {
        self.call(
            Method::POST,
            &format!("/nodes/{}/{}", seg(name), seg(action)),
            None::<&()>,
        )
        .await
    }

    // ---- migrations ----------------------------------------------------------------------

    pub async fn vm_migrate(
        &self,
        name: &str,
        req: &novacron_api_types::migration::MigrateRequest,
    ) -> Result<novacron_api_types::migration::Migration, ClientError> {
        let r: novacron_api_types::migration::MigrationRef = self
            .call(
                Method::POST,
                &format!("/vms/{}/migrate", seg(name)),
                Some(req),
            )
            .await?;
        Ok(r.migration)
    }

    pub async fn migration_list(
        &self,
    ) -> Result<Vec<novacron_api_types::migration::Migration>, ClientError> {
        self.call(Method::GET, "/migrations", None::<&()>).await
    }

    pub async fn migration_get(
        &self,
        id: &str,
    ) -> Result<novacron_api_types::migration::Migration, ClientError> {
        self.call(
            Method::GET,
            &format!("/migrations/{}", seg(id)),
            None::<&()>,
        )
        .await
    }

    pub async fn migration_cancel(
        &self,
        id: &str,
    ) -> Result<novacron_api_types::migration::Migration, ClientError> {
        self.call(
            Method::POST,
            &format!("/migrations/{}/cancel", seg(id)),
            None::<&()>,
        )
        .await
    }

    pub async fn evacuation_plan(
        &self,
        req: &novacron_api_types::migration::EvacuateRequest,
    ) -> Result<novacron_api_types::migration::EvacuationPlan, ClientError> {
        self.call(Method::POST, "/evacuations/plan", Some(req))
            .await
    }

    // ---- images --------------------------------------------------------------------------

    pub async fn image_list(&self) -> Result<Vec<Image>, ClientError> {
        self.call(Method::GET, "/images", None::<&()>).await
    }

    pub async fn image_get(&self, name: &str) -> Result<Image, ClientError> {
        self.call(Method::GET, &format!("/images/{}", seg(name)), None::<&()>)
            .await
    }

    pub async fn image_build_tiny(&self, name: &str) -> Result<Image, ClientError> {
        self.image_build(&BuildTinyRequest {
            name: name.into(),
            public: false,
        })
        .await
    }

    /// Builds the tiny image as `req` says (with `public`, one every project can use).
    pub async fn image_build(&self, req: &BuildTinyRequest) -> Result<Image, ClientError> {
        req.validate().map_err(invalid)?;
        self.call_with_timeout(
            Method::POST,
            "/images/build-tiny",
            Some(req),
            Duration::from_secs(300),
        )
        .await
    }

    pub async fn image_delete(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/images/{}", seg(name)),
            None::<&()>,
        )
        .await
    }

    /// Deletes the public image `name` (cluster admins only).
    pub async fn image_delete_public(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/images/{}?public=true", seg(name)),
            None::<&()>,
        )
        .await
    }

    /// Uploads a disk image or ISO; the server detects and checks the format.
    /// A refusal the server answers before reading the upload (bad name, name taken, no
    /// permission) comes back as that answer, not as a broken connection.
    pub async fn image_import(&self, name: &str, file: &Path) -> Result<Image, ClientError> {
        self.image_import_file(name, file, None, false, None).await
    }

    /// Uploads a disk image (qcow2, raw, VMDK, VHDX, VHD) or an ISO 9660 file; the server
    /// detects the kind from the content, converts foreign disks to qcow2 and vets the result.
    /// `sha256` is checked by the server before anything is published; with `public` the
    /// image is one every project can use (cluster admins only); `progress` sees the bytes
    /// sent so far as the upload goes.
    pub async fn image_import_file(
        &self,
        name: &str,
        file: &Path,
        sha256: Option<&str>,
        public: bool,
        progress: Option<UploadProgress>,
    ) -> Result<Image, ClientError> {
        novacron_api_types::validate_name("image", name)
            .map_err(|e| invalid(novacron_api_types::Invalid::from(e)))?;
        let mut query = vec![];
        if let Some(f) = file.file_name().and_then(|f| f.to_str()) {
            query.push(format!("filename={}", seg(f)));
        }
        if let Some(sum) = sha256 {
            query.push(format!("sha256={}", seg(sum)));
        }
        if public {
            query.push("public=true".to_string());
        }
        let path = format!("/images/{}/import?{}", seg(name), query.join("&"));
        let resp = self.upload(&path, file, progress).await?;
        Self::decode(resp).await
    }

    /// Hands `file` to the control plane when it runs on this host and takes local files
    /// (`GET /api/v1/local-files`): the file is opened here and its descriptor passed over the
    /// replica's unix socket, then imported as an operation (`POST .../import-local`), read
    /// from the disk instead of sent over TLS. Answers the operation to wait on, or `None` when
    /// the file cannot be handed in (another host, no access to the socket, an older server):
    /// the caller uploads it instead.
    pub async fn image_import_local(
        &self,
        name: &str,
        file: &Path,
        sha256: Option<&str>,
        public: bool,
    ) -> Result<Option<Operation>, ClientError> {
        novacron_api_types::validate_name("image", name)
            .map_err(|e| invalid(novacron_api_types::Invalid::from(e)))?;
        let Some(ticket) = self.hand_in(file).await? else {
            return Ok(None);
        };
        let req = novacron_api_types::ImageLocalImportRequest {
            ticket,
            filename: file
                .file_name()
                .and_then(|f| f.to_str())
                .map(str::to_string),
            sha256: sha256.map(str::to_string),
            public,
        };
        let r: novacron_api_types::OperationRef = self
            .call(
                Method::POST,
                &format!("/images/{}/import-local", seg(name)),
                Some(&req),
            )
            .await?;
        Ok(Some(r.operation))
    }

    /// Hands `file` to the control plane's local-files socket when this client runs on its
    /// host and may use the socket: the ticket it answered, or `None` when the file must be
    /// uploaded instead (another host, no access, an older server, another replica).
    async fn hand_in(&self, file: &Path) -> Result<Option<String>, ClientError> {
        let info: novacron_api_types::LocalFiles =
            match self.call(Method::GET, "/local-files", None::<&()>).await {
                Ok(info) => info,
                Err(e) if e.code() == Some(ErrorCode::NotFound) => return Ok(None),
                Err(e) => return Err(e),
            };
        let path = file.to_path_buf();
        let handed = tokio::task::spawn_blocking(move || {
            local_files::hand_in(std::path::Path::new(&info.socket), &path, &info.server)
        })
        .await
        .map_err(|e| ClientError::Config(format!("handing the file in: {e}")))?;
        match handed {
            Ok(ticket) => Ok(Some(ticket)),
            Err(why) => {
                tracing::debug!(%why, "the file cannot be handed to the control plane: uploading it");
                Ok(None)
            }
        }
    }

    /// Imports an OVA appliance on the control plane's host by handing the file to it, as
    /// [`Client::image_import_ova`] does by upload; `None` when it must be uploaded instead.
    pub async fn image_import_ova_local(
        &self,
        name: &str,
        file: &Path,
    ) -> Result<Option<novacron_api_types::OvaImport>, ClientError> {
        novacron_api_types::validate_name("image", name)
            .map_err(|e| invalid(novacron_api_types::Invalid::from(e)))?;
        let Some(ticket) = self.hand_in(file).await? else {
            return Ok(None);
        };
        let req = novacron_api_types::OvaLocalImportRequest { ticket };
        // Answered when every disk is imported, as an upload is: no 60 s limit.
        self.call_with_timeout(
            Method::POST,
            &format!("/images/{}/import-ova-local", seg(name)),
            Some(&req),
            LONG,
        )
        .await
        .map(Some)
    }

    /// Uploads an OVA appliance: the server imports every disk its OVF names as a qcow2 image
    /// (`NAME`, `NAME-disk2`, ...) and answers what the OVF says about the machine.
    pub async fn image_import_ova(
        &self,
        name: &str,
        file: &Path,
        progress: Option<UploadProgress>,
    ) -> Result<novacron_api_types::OvaImport, ClientError> {
        novacron_api_types::validate_name("image", name)
            .map_err(|e| invalid(novacron_api_types::Invalid::from(e)))?;
        let resp = self
            .upload(&format!("/images/{}/import-ova", seg(name)), file, progress)
            .await?;
        Self::decode(resp).await
    }

    /// PUTs the file at `file` as the body of `path`, streamed.
    async fn upload(
        &self,
        path: &str,
        file: &Path,
        progress: Option<UploadProgress>,
    ) -> Result<reqwest::Response, ClientError> {
        let meta = tokio::fs::metadata(file)
            .await
            .map_err(|source| ClientError::Io {
                what: format!("cannot read {}", file.display()),
                source,
            })?;
        if !meta.is_file() {
            return Err(ClientError::Config(format!(
                "{} is not a regular file",
                file.display()
            )));
        }
        let file = file.to_path_buf();
        self.send(
            Method::PUT,
            path,
            move |r| {
                let file = file.clone();
                let progress = progress.clone();
                let stream =
                    futures_util::stream::once(async move { tokio::fs::File::open(file).await });
                let body = futures_util::StreamExt::flat_map(stream, |f| match f {
                    Ok(f) => futures_util::future::Either::Left(
                        tokio_util::io::ReaderStream::with_capacity(f, 1 << 20),
                    ),
                    Err(e) => futures_util::future::Either::Right(futures_util::stream::once(
                        async move { Err(e) },
                    )),
                });
                let mut sent = 0u64;
                let body = futures_util::StreamExt::inspect(body, move |chunk| {
                    if let (Ok(chunk), Some(progress)) = (chunk, &progress) {
                        sent += chunk.len() as u64;
                        progress(sent);
                    }
                });
                r.header(reqwest::header::CONTENT_LENGTH, meta.len())
                    .body(reqwest::Body::wrap_stream(body))
            },
            Duration::from_secs(3600),
        )
        .await
    }

    /// Has the control plane download an image from an http(s) URL and import it; answers the
    /// operation to wait on.
    pub async fn image_import_url(
        &self,
        name: &str,
        req: &novacron_api_types::ImageUrlImportRequest,
    ) -> Result<Operation, ClientError> {
        novacron_api_types::validate_name("image", name)
            .map_err(|e| invalid(novacron_api_types::Invalid::from(e)))?;
        req.validate().map_err(invalid)?;
        let r: novacron_api_types::OperationRef = self
            .call(
                Method::POST,
                &format!("/images/{}/import-url", seg(name)),
                Some(req),
            )
            .await?;
        Ok(r.operation)
    }

    /// Downloads one file of an image (`kernel`, `initrd` or `disk`) to `dest`.
    pub async fn image_download(
        &self,
        name: &str,
        project: &str,
        role: &str,
        dest: &Path,
    ) -> Result<u64, ClientError> {
        let resp = self
            .send(
                Method::GET,
                &format!(
                    "/images/{}/files/{}?project={}",
                    seg(name),
                    seg(role),
                    seg(project)
                ),
                |r| r,
                Duration::from_secs(3600),
            )
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(api_error(status, &bytes));
        }
        let url = resp.url().to_string();
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|source| ClientError::Io {
                what: format!("cannot create {}", dest.display()),
                source,
            })?;
        let mut stream = resp.bytes_stream();
        let mut written = 0u64;
        use tokio::io::AsyncWriteExt;
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| ClientError::Unreachable {
                url: url.clone(),
                why: error_chain(&e),
            })?;
            file.write_all(&chunk)
                .await
                .map_err(|source| ClientError::Io {
                    what: format!("cannot write {}", dest.display()),
                    source,
                })?;
            written += chunk.len() as u64;
        }
        file.sync_all().await.map_err(|source| ClientError::Io {
            what: format!("cannot sync {}", dest.display()),
            source,
        })?;
        Ok(written)
    }

    // ---- Overlay networks ------------------------------------------------------------------

    /// Creates an overlay network. The request is checked first, as the control plane
    /// checks it (subnet, gateway, MTU, name).
    pub async fn network_create(
        &self,
        req: &novacron_api_types::overlay::NetworkCreateRequest,
    ) -> Result<novacron_api_types::overlay::OverlayNetwork, ClientError> {
        req.check().map_err(invalid)?;
        self.call(Method::POST, "/networks", Some(req)).await
    }

    /// Networks of `project`, or of every project.
    pub async fn network_list(
        &self,
        project: Option<&str>,
    ) -> Result<Vec<novacron_api_types::overlay::OverlayNetwork>, ClientError> {
        let path = match project {
            Some(p) => format!("/networks?project={}", seg(p)),
            None => "/networks".to_string(),
        };
        self.call(Method::GET, &path, None::<&()>).await
    }

    pub async fn network_show(
        &self,
        name: &str,
        project: &str,
    ) -> Result<novacron_api_types::overlay::OverlayNetwork, ClientError> {
        let path = format!("/networks/{}?project={}", seg(name), seg(project));
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Deletes a network; the control plane refuses while a VM uses it.
    pub async fn network_delete(
        &self,
        name: &str,
        project: &str,
    ) -> Result<novacron_api_types::overlay::OverlayNetwork, ClientError> {
        let path = format!("/networks/{}?project={}", seg(name), seg(project));
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    // ---- Security groups -------------------------------------------------------------------

    /// Creates a security group (no rules yet).
    pub async fn security_group_create(
        &self,
        req: &novacron_api_types::security::SecurityGroupCreateRequest,
    ) -> Result<novacron_api_types::security::SecurityGroup, ClientError> {
        req.check().map_err(invalid)?;
        self.call(Method::POST, "/security-groups", Some(req)).await
    }

    /// Security groups of `project`, or of every project you may see.
    pub async fn security_group_list(
        &self,
        project: Option<&str>,
    ) -> Result<Vec<novacron_api_types::security::SecurityGroup>, ClientError> {
        let path = match project {
            Some(p) => format!("/security-groups?project={}", seg(p)),
            None => "/security-groups".to_string(),
        };
        self.call(Method::GET, &path, None::<&()>).await
    }

    pub async fn security_group_show(
        &self,
        name: &str,
        project: &str,
    ) -> Result<novacron_api_types::security::SecurityGroup, ClientError> {
        let path = format!("/security-groups/{}?project={}", seg(name), seg(project));
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Deletes a group; the control plane refuses while a VM is in it or a rule names it.
    pub async fn security_group_delete(
        &self,
        name: &str,
        project: &str,
    ) -> Result<novacron_api_types::security::SecurityGroup, ClientError> {
        let path = format!("/security-groups/{}?project={}", seg(name), seg(project));
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// Adds a rule; checked first as the control plane checks it.
    pub async fn security_rule_add(
        &self,
        group: &str,
        project: &str,
        req: &novacron_api_types::security::SecurityRuleRequest,
    ) -> Result<novacron_api_types::security::SecurityRuleAdded, ClientError> {
        req.check(0).map_err(invalid)?;
        let path = format!(
            "/security-groups/{}/rules?project={}",
            seg(group),
            seg(project)
        );
        self.call(Method::POST, &path, Some(req)).await
    }

    pub async fn security_rule_delete(
        &self,
        group: &str,
        project: &str,
        id: u32,
    ) -> Result<novacron_api_types::security::SecurityGroup, ClientError> {
        let path = format!(
            "/security-groups/{}/rules/{id}?project={}",
            seg(group),
            seg(project)
        );
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// Sets a VM's security groups (the whole list; empty: none).
    pub async fn vm_set_security_groups(
        &self,
        name: &str,
        groups: &[String],
    ) -> Result<Vm, ClientError> {
        novacron_api_types::security::check_group_list(groups).map_err(invalid)?;
        let req = novacron_api_types::security::VmSecurityGroupsRequest {
            security_groups: groups.to_vec(),
        };
        self.call(
            Method::PUT,
            &format!("/vms/{}/security-groups", seg(name)),
            Some(&req),
        )
        .await
    }

    // ---- join tokens ------------------------------------------------------------------------

    /// Mints a join token; the answer holds the token itself (shown this once).
    pub async fn join_token_create(
        &self,
        req: &novacron_api_types::join_token::JoinTokenCreateRequest,
    ) -> Result<novacron_api_types::join_token::JoinTokenCreated, ClientError> {
        self.call(Method::POST, "/join-tokens", Some(req)).await
    }

    pub async fn join_token_list(
        &self,
    ) -> Result<Vec<novacron_api_types::join_token::JoinTokenInfo>, ClientError> {
        self.call(Method::GET, "/join-tokens", None::<&()>).await
    }

    pub async fn join_token_revoke(
        &self,
        id: &str,
    ) -> Result<novacron_api_types::join_token::JoinTokenInfo, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/join-tokens/{}", seg(id)),
            None::<&()>,
        )
        .await
    }

    // ---- projects, users, role bindings, tokens ----------------------------------------------

    pub async fn project_create(
        &self,
        req: &novacron_api_types::tenancy::ProjectCreateRequest,
    ) -> Result<novacron_api_types::tenancy::Project, ClientError> {
        self.call(Method::POST, "/projects", Some(req)).await
    }

    /// Who this client's token is, and its roles.
    pub async fn whoami(&self) -> Result<novacron_api_types::tenancy::WhoAmI, ClientError> {
        self.call(Method::GET, "/whoami", None::<&()>).await
    }

    pub async fn project_list(
        &self,
    ) -> Result<Vec<novacron_api_types::tenancy::Project>, ClientError> {
        self.call(Method::GET, "/projects", None::<&()>).await
    }

    pub async fn project_show(
        &self,
        name: &str,
    ) -> Result<novacron_api_types::tenancy::Project, ClientError> {
        self.call(
            Method::GET,
            &format!("/projects/{}", seg(name)),
            None::<&()>,
        )
        .await
    }

    pub async fn project_set(
        &self,
        name: &str,
        req: &novacron_api_types::tenancy::ProjectSetRequest,
    ) -> Result<novacron_api_types::tenancy::Project, ClientError> {
        self.call(Method::PUT, &format!("/projects/{}", seg(name)), Some(req))
            .await
    }

    pub async fn project_delete(
        &self,
        name: &str,
    ) -> Result<novacron_api_types::tenancy::Project, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/projects/{}", seg(name)),
            None::<&()>,
        )
        .await
    }

    pub async fn project_usage(
        &self,
        name: &str,
    ) -> Result<novacron_api_types::tenancy::ProjectUsageReport, ClientError> {
        self.call(
            Method::GET,
            &format!("/projects/{}/usage", seg(name)),
            None::<&()>,
        )
        .await
    }

    pub async fn user_create(
        &self,
        req: &novacron_api_types::tenancy::UserCreateRequest,
    ) -> Result<novacron_api_types::tenancy::User, ClientError> {
        self.call(Method::POST, "/users", Some(req)).await
    }

    pub async fn user_list(&self) -> Result<Vec<novacron_api_types::tenancy::User>, ClientError> {
        self.call(Method::GET, "/users", None::<&()>).await
    }

    pub async fn user_delete(
        &self,
        name: &str,
    ) -> Result<novacron_api_types::tenancy::User, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/users/{}", seg(name)),
            None::<&()>,
        )
        .await
    }

    pub async fn role_binding_add(
        &self,
        b: &novacron_api_types::tenancy::RoleBinding,
    ) -> Result<novacron_api_types::tenancy::RoleBinding, ClientError> {
        self.call(Method::POST, "/role-bindings", Some(b)).await
    }

    pub async fn role_binding_list(
        &self,
    ) -> Result<Vec<novacron_api_types::tenancy::RoleBinding>, ClientError> {
        self.call(Method::GET, "/role-bindings", None::<&()>).await
    }

    /// Removes `user`'s binding in `project` (`None`: its cluster binding).
    pub async fn role_binding_remove(
        &self,
        user: &str,
        project: Option<&str>,
    ) -> Result<novacron_api_types::tenancy::RoleBinding, ClientError> {
        let path = match project {
            Some(p) => format!("/role-bindings/{}?project={}", seg(user), seg(p)),
            None => format!("/role-bindings/{}", seg(user)),
        };
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    pub async fn token_create(
        &self,
        req: &novacron_api_types::tenancy::TokenCreateRequest,
    ) -> Result<novacron_api_types::tenancy::TokenCreated, ClientError> {
        self.call(Method::POST, "/tokens", Some(req)).await
    }

    pub async fn token_list(
        &self,
    ) -> Result<Vec<novacron_api_types::tenancy::ApiToken>, ClientError> {
        self.call(Method::GET, "/tokens", None::<&()>).await
    }

    // ---- audit --------------------------------------------------------------------------

    /// A page of audit records, oldest first (`after`: the previous page's `next_after`).
    pub async fn audit_list(
        &self,
        project: Option<&str>,
        user: Option<&str>,
        since: Option<u64>,
        after: Option<u64>,
        limit: Option<usize>,
    ) -> Result<novacron_api_types::audit::AuditPage, ClientError> {
        let mut q = vec![];
        if let Some(p) = project {
            q.push(format!("project={}", seg(p)));
        }
        if let Some(u) = user {
            q.push(format!("user={}", seg(u)));
        }
        if let Some(s) = since {
            q.push(format!("since={s}"));
        }
        if let Some(a) = after {
            q.push(format!("after={a}"));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let path = if q.is_empty() {
            "/audit".to_string()
        } else {
            format!("/audit?{}", q.join("&"))
        };
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// The audit chain's head as the control plane stores it.
    pub async fn audit_head(&self) -> Result<novacron_api_types::audit::AuditHead, ClientError> {
        self.call(Method::GET, "/audit/head", None::<&()>).await
    }

    /// A VM's recent usage from the control plane's history: samples taken at or after
    /// `since` (Unix seconds; `None`: all kept), the newest, and the current rates.
    pub async fn vm_metrics(
        &self,
        name: &str,
        since: Option<u64>,
    ) -> Result<novacron_api_types::stats::VmMetrics, ClientError> {
        let path = match since {
            Some(s) => format!("/vms/{}/metrics?since={s}", seg(name)),
            None => format!("/vms/{}/metrics", seg(name)),
        };
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Every audit record from `since` on (all without it), in chain order, as JSON Lines.
    pub async fn audit_export(&self, since: Option<u64>) -> Result<String, ClientError> {
        let path = match since {
            Some(s) => format!("/audit/export?since={s}"),
            None => "/audit/export".to_string(),
        };
        let resp = self
            .send(Method::GET, &path, |r| r, Duration::from_secs(600))
            .await?;
        let (url, bytes) = Self::success_body(resp).await?;
        String::from_utf8(bytes).map_err(|e| ClientError::Protocol {
            url,
            why: format!("the export is not UTF-8: {e}"),
        })
    }

    pub async fn token_revoke(
        &self,
        id: &str,
    ) -> Result<novacron_api_types::tenancy::ApiToken, ClientError> {
        self.call(Method::DELETE, &format!("/tokens/{}", seg(id)), None::<&()>)
            .await
    }

    /// Exchanges a user's password for a token (no token needed for this call).
    pub async fn login(
        &self,
        req: &novacron_api_types::tenancy::LoginRequest,
    ) -> Result<novacron_api_types::tenancy::TokenCreated, ClientError> {
        self.call(Method::POST, "/login", Some(req)).await
    }

    // ---- cluster and storage ---------------------------------------------------------------

    pub async fn cluster_status(&self) -> Result<novacron_api_types::ClusterStatus, ClientError> {
        self.call(Method::GET, "/cluster/status", None::<&()>).await
    }

    pub async fn storage_list(&self) -> Result<Vec<novacron_api_types::StoragePool>, ClientError> {
        self.call(Method::GET, "/storage", None::<&()>).await
    }

    pub async fn storage_add(
        &self,
        pool: &novacron_api_types::StoragePool,
    ) -> Result<novacron_api_types::StoragePool, ClientError> {
        pool.validate().map_err(invalid)?;
        self.call(Method::POST, "/storage", Some(pool)).await
    }

    pub async fn storage_delete(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/storage/{}", seg(name)),
            None::<&()>,
        )
        .await
    }

    // ---- backups -------------------------------------------------------------------------

    pub async fn backup_repo_add(
        &self,
        req: &BackupRepoAddRequest,
    ) -> Result<BackupRepo, ClientError> {
        self.call(Method::POST, "/backup/repos", Some(req)).await
    }

    pub async fn backup_repo_list(&self) -> Result<Vec<BackupRepo>, ClientError> {
        self.call(Method::GET, "/backup/repos", None::<&()>).await
    }

    /// Backups of every repository (or `repo`), of every VM (or `vm`), oldest first.
    pub async fn backup_list(
        &self,
        vm: Option<&str>,
        repo: Option<&str>,
    ) -> Result<Vec<Backup>, ClientError> {
        let mut q = vec![];
        if let Some(v) = vm {
            q.push(format!("vm={}", seg(v)));
        }
        if let Some(r) = repo {
            q.push(format!("repo={}", seg(r)));
        }
        let path = if q.is_empty() {
            "/backups".to_string()
        } else {
            format!("/backups?{}", q.join("&"))
        };
        self.call_with_timeout(Method::GET, &path, None::<&()>, LONG)
            .await
    }

    /// One backup with its whole index (disks, chunk counts, how each disk was read).
    pub async fn backup_show(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        self.call_with_timeout(
            Method::GET,
            &format!("/backups/{}", seg(id)),
            None::<&()>,
            LONG,
        )
        .await
    }

    /// Deletes one backup of the current project (in `repo`, or wherever it is).
    pub async fn backup_delete(
        &self,
        id: &str,
        repo: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut path = format!("/backups/{}", seg(id));
        if let Some(r) = repo {
            path.push_str(&format!("?repo={}", seg(r)));
        }
        self.call_with_timeout(Method::DELETE, &path, None::<&()>, LONG)
            .await
    }

    /// Starts a backup of a VM; the answer carries the operation to follow.
    pub async fn backup_create(
        &self,
        vm: &str,
        req: &BackupCreateRequest,
    ) -> Result<OperationRef, ClientError> {
        self.call(Method::POST, &format!("/vms/{}/backup", seg(vm)), Some(req))
            .await
    }

    pub async fn backup_restore(
        &self,
        id: &str,
        req: &BackupRestoreRequest,
    ) -> Result<OperationRef, ClientError> {
        self.call_with_timeout(
            Method::POST,
            &format!("/backups/{}/restore", seg(id)),
            Some(req),
            LONG,
        )
        .await
    }

    pub async fn backup_verify(
        &self,
        repo: &str,
        all: bool,
    ) -> Result<serde_json::Value, ClientError> {
        self.call_with_timeout(
            Method::POST,
            &format!("/backup/repos/{}/verify?all={all}", seg(repo)),
            None::<&()>,
            LONG,
        )
        .await
    }

    pub async fn backup_prune(
        &self,
        repo: &str,
        req: &PruneRequest,
    ) -> Result<serde_json::Value, ClientError> {
        self.call_with_timeout(
            Method::POST,
            &format!("/backup/repos/{}/prune", seg(repo)),
            Some(req),
            LONG,
        )
        .await
    }

    pub async fn backup_sync(
        &self,
        repo: &str,
        req: &RepoSyncRequest,
    ) -> Result<serde_json::Value, ClientError> {
        self.call_with_timeout(
            Method::POST,
            &format!("/backup/repos/{}/sync", seg(repo)),
            Some(req),
            LONG,
        )
        .await
    }

    pub async fn backup_gc(&self, repo: &str) -> Result<serde_json::Value, ClientError> {
        self.call_with_timeout(
            Method::POST,
            &format!("/backup/repos/{}/gc", seg(repo)),
            None::<&()>,
            LONG,
        )
        .await
    }

    pub async fn backup_schedule_set(
        &self,
        s: &BackupSchedule,
    ) -> Result<BackupSchedule, ClientError> {
        self.call(Method::POST, "/backup/schedules", Some(s)).await
    }

    pub async fn backup_schedule_list(&self) -> Result<Vec<BackupSchedule>, ClientError> {
        self.call(Method::GET, "/backup/schedules", None::<&()>)
            .await
    }

    pub async fn backup_schedule_delete(&self, vm: &str) -> Result<serde_json::Value, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/backup/schedules/{}", seg(vm)),
            None::<&()>,
        )
        .await
    }

    // ---- agent protocol ------------------------------------------------------------------

    /// An agent's progress on an operation it runs (a backup).
    pub async fn agent_update_operation(
        &self,
        id: &str,
        u: &OperationUpdate,
    ) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .call(
                Method::PUT,
                &format!("/agent/operations/{}", seg(id)),
                Some(u),
            )
            .await?;
        Ok(())
    }

    pub async fn agent_register(
        &self,
        req: &RegisterRequest,
    ) -> Result<RegisterResponse, ClientError> {
        self.call(Method::POST, "/agent/register", Some(req)).await
    }

    pub async fn agent_heartbeat(&self, req: &HeartbeatRequest) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .call_with_timeout(
                Method::POST,
                "/agent/heartbeat",
                Some(req),
                Duration::from_secs(10),
            )
            .await?;
        Ok(())
    }

    /// The VMs placed on the calling node. With `after`, waits (up to `wait`) until something
    /// changed after that store revision.
    pub async fn agent_desired_vms(
        &self,
        after: Option<i64>,
        wait: Duration,
    ) -> Result<DesiredVms, ClientError> {
        let path = match after {
            Some(rev) => format!("/agent/vms?after={rev}&wait_seconds={}", wait.as_secs()),
            None => "/agent/vms".to_string(),
        };
        self.call_with_timeout(
            Method::GET,
            &path,
            None::<&()>,
            wait + Duration::from_secs(30),
        )
        .await
    }

    /// The overlay networks the calling node must build. With `after`, waits (up to `wait`)
    /// until a VM changed after that store revision.
    /// The overlay this node must build; with `after` (the last answer's `revision` and
    /// `groups_revision`), once a VM or a security group changed (long poll).
    pub async fn agent_overlay(
        &self,
        after: Option<(i64, i64)>,
        wait: Duration,
    ) -> Result<novacron_api_types::overlay::NodeOverlay, ClientError> {
        let path = match after {
            Some((rev, groups)) => format!(
                "/agent/overlay?after={rev}&after_groups={groups}&wait_seconds={}",
                wait.as_secs()
            ),
            None => "/agent/overlay".to_string(),
        };
        self.call_with_timeout(
            Method::GET,
            &path,
            None::<&()>,
            wait + Duration::from_secs(30),
        )
        .await
    }

    pub async fn agent_migration_report(
        &self,
        id: &str,
        report: &novacron_api_types::migration::MigrationReport,
    ) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .call(
                Method::PUT,
                &format!("/agent/migrations/{}", seg(id)),
                Some(report),
            )
            .await?;
        Ok(())
    }

    /// Source only: records the switch-over. The answer is what holds (committed, or aborted
    /// by someone else first).
    pub async fn agent_migration_commit(
        &self,
        id: &str,
    ) -> Result<novacron_api_types::migration::MigrationOutcome, ClientError> {
        self.call(
            Method::POST,
            &format!("/agent/migrations/{}/commit", seg(id)),
            None::<&()>,
        )
        .await
    }

    /// Gives up a migration unless it already committed; answers what holds.
    pub async fn agent_migration_abort(
        &self,
        id: &str,
    ) -> Result<novacron_api_types::migration::MigrationOutcome, ClientError> {
        self.call(
            Method::POST,
            &format!("/agent/migrations/{}/abort", seg(id)),
            None::<&()>,
        )
        .await
    }

    pub async fn agent_report_status(
        &self,
        project: &str,
        name: &str,
        report: &VmStatusReport,
    ) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .call(
                Method::PUT,
                &format!("/agent/vms/{}/{}/status", seg(project), seg(name)),
                Some(report),
            )
            .await?;
        Ok(())
    }
}

/// The HTTP upgrade protocol name used for console attach.
pub const CONSOLE_PROTOCOL: &str = "novacron-console";

/// The HTTP upgrade protocol of the graphical console: after it, the connection carries
/// the VM's VNC server (RFB).
pub const VNC_PROTOCOL: &str = "novacron-vnc";

async fn upgrade(resp: reqwest::Response) -> Result<reqwest::Upgraded, ClientError> {
    let url = resp.url().to_string();
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        return Err(api_error(status, &bytes));
    }
    resp.upgrade().await.map_err(|e| ClientError::Protocol {
        url,
        why: format!("upgrade failed: {}", error_chain(&e)),
    })
}

/// Turns an error answer into an [`ApiError`], keeping the server's message when the body is
/// the standard `{"code","message"}`.
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => ClientError::Api(e),
        Err(_) => {
            let code = ErrorCode::from_http_status(status.as_u16());
            let text = String::from_utf8_lossy(body);
            ClientError::Api(ApiError::new(
                code,
                format!("HTTP {status}: {}", text.trim()),
            ))
        }
    }
}

/// A request the client refuses before sending, as the server would answer it.
fn invalid(e: novacron_api_types::Invalid) -> ClientError {
    ClientError::Api(e.into())
}

/// The error and its causes on one line (reqwest hides the interesting part in `source`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
