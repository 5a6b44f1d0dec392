//! What the agent keeps: its credentials on disk, and the state shared by its tasks.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use novacron_api_types::agent::RegisterResponse;
use novacron_client::Client;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::AgentError;
use crate::images::ImageCache;
use crate::worker::WorkerHandle;

/// The node's credentials, saved in `<data dir>/node.json` (mode 0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub name: String,
    pub node_token: String,
    pub server_token: String,
    pub ca_cert_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    #[serde(default)]
    pub lease_ttl_ms: u64,
    /// When the certificate expires, and when this agent received it (Unix seconds; `None`
    /// from control planes that did not say): renewal starts two thirds of the way.
    #[serde(default)]
    pub cert_not_after: Option<u64>,
    #[serde(default)]
    pub cert_received_at: Option<u64>,
}

impl Credentials {
    pub fn from_response(name: &str, r: RegisterResponse) -> Credentials {
        Credentials {
            name: name.into(),
            node_token: r.node_token,
            server_token: r.server_token,
            ca_cert_pem: r.ca_cert_pem,
            cert_pem: r.cert_pem,
            key_pem: r.key_pem,
            lease_ttl_ms: r.lease_ttl_ms,
            cert_not_after: r.cert_not_after,
            cert_received_at: Some(unix_now()),
        }
    }

    /// How long until the certificate should be renewed (two thirds into its life), or
    /// `None` when its expiry is unknown.
    pub fn renew_in(&self) -> Option<std::time::Duration> {
        let end = self.cert_not_after?;
        let start = self.cert_received_at.unwrap_or_else(unix_now).min(end);
        let at = start + (end - start) * 2 / 3;
        Some(std::time::Duration::from_secs(
            at.saturating_sub(unix_now()),
        ))
    }

    fn path(dir: &Path) -> std::path::PathBuf {
        dir.join("node.json")
    }

    pub fn load(dir: &Path) -> Result<Option<Credentials>, AgentError> {
        match std::fs::read(Self::path(dir)) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                AgentError::Config(format!(
                    "{} is damaged ({e}); remove it and join again with --join-token",
                    Self::path(dir).display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AgentError::Io {
                what: format!("cannot read {}", Self::path(dir).display()),
                source,
            }),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), AgentError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| AgentError::Config(format!("encoding credentials: {e}")))?;
        crate::host::write_atomic(&Self::path(dir), &bytes, 0o600).map_err(|source| {
            AgentError::Io {
                what: format!("cannot write {}", Self::path(dir).display()),
                source,
            }
        })
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: String,
}

/// Registers the agent's metrics (QMP command latency) and feeds them from every QMP client.
pub fn register_metrics(registry: &Arc<Mutex<Registry>>) {
    {
        let qmp_latency = Family::<CommandLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        registry.lock().unwrap_or_else(|p| p.into_inner()).register(
            "novacron_qmp_command_duration_seconds",
            "QMP command round-trip time by command",
            qmp_latency.clone(),
        );
        let family = qmp_latency.clone();
        novacron_qemu::set_latency_observer(Arc::new(move |command, took| {
            family
                .get_or_create(&CommandLabels {
                    command: command.to_string(),
                })
                .observe(took.as_secs_f64());
        }));
    }
}

/// Shared by the reconcile loop, the VM workers and the agent endpoint.
pub struct Shared {
    pub node_name: String,
    pub data_dir: std::path::PathBuf,
    pub client: Client,
    pub server_token: String,
    pub stop_timeout: std::time::Duration,
    pub images: ImageCache,
    /// One worker per VM, keyed by `project/name`.
    pub workers: Mutex<HashMap<String, WorkerHandle>>,
    pub registry: Arc<Mutex<Registry>>,
    /// `None` for hollow agents.
    pub fence: Option<Arc<crate::fence::Fence>>,
    pub lease_ttl: std::time::Duration,
    pub hollow: bool,
    /// Bounds concurrent status reports (each one is an HTTP request and maybe a connection).
    pub report_slots: tokio::sync::Semaphore,
    /// The node's certificate for node-to-node DWCP (migrations); replaced on renewal.
    pub dwcp_identity: std::sync::RwLock<novacron_dwcp::TlsIdentity>,
    /// Set (with the reason) once the control plane refused this node's credentials: the
    /// node was deleted, and the agent has nothing left to do.
    pub revoked: tokio::sync::watch::Sender<Option<String>>,
    /// Address migration listeners bind to, and the host name peers reach it by.
    pub migration_ip: std::net::IpAddr,
    pub advertise_host: String,
    /// Migrations running on this node (either side), by id.
    pub migrations: Mutex<HashMap<String, novacron_migrate::CancellationToken>>,
    /// The unprivileged user of each VM's QEMU.
    pub vm_users: crate::users::VmUsers,
    /// The newest usage sample not yet handed to the heartbeat (see [`crate::stats`]).
    pub latest_sample: Mutex<Option<novacron_api_types::stats::NodeSample>>,
}

impl Shared {
    pub fn running_count(&self) -> u32 {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|w| w.is_running())
            .count() as u32
    }

    /// The running VMs to sample usage from.
    pub fn sampling_targets(&self) -> Vec<crate::stats::Target> {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|w| w.sampling_target())
            .collect()
    }

    /// The newest usage sample, once: the heartbeat carries each sample one time.
    pub fn take_sample(&self) -> Option<novacron_api_types::stats::NodeSample> {
        self.latest_sample
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The current DWCP identity (a clone: renewal may replace it at any time).
    pub fn dwcp_identity(&self) -> novacron_dwcp::TlsIdentity {
        self.dwcp_identity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records that the control plane refused this node's credentials (once).
    pub fn mark_revoked(&self, why: &str) {
        self.revoked.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            tracing::error!(node = %self.node_name, reason = %why, "the control plane refused this node's credentials: the node was deleted or its token revoked; the agent stops. Join again with a new join token and an empty --data-dir");
            *r = Some(why.to_string());
            true
        });
    }

    /// `<data dir>/vms/<project>/<name>`
    pub fn vm_dir(&self, project: &str, name: &str) -> std::path::PathBuf {
        self.data_dir.join("vms").join(project).join(name)
    }
}
