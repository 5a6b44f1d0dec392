//! Backup resources: repositories, backups, schedules, and the requests that act on them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::UnixSeconds;

/// Where a repository lives. Every node that backs up or restores must reach it (a local
/// directory on a single machine, a shared directory, or S3-compatible storage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RepoLocation {
    Dir { path: String },
    S3 { url: String },
}

/// A backup repository known to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupRepo {
    pub name: String,
    pub location: RepoLocation,
    /// Key file for client-side encryption (same path on every node), if encrypted.
    #[serde(default)]
    pub key_file: Option<String>,
    pub created_at: UnixSeconds,
}

/// Body of `POST /api/v1/backup/repos`. An existing repository at the location is adopted
/// (disaster recovery: the repository describes itself).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRepoAddRequest {
    pub name: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub s3: Option<String>,
    #[serde(default)]
    pub encrypt: bool,
    /// With `encrypt`: the key file (created with a new random key when missing).
    #[serde(default)]
    pub key_file: Option<String>,
}

/// One backup in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Backup {
    pub id: String,
    pub repo: String,
    pub vm: Option<String>,
    /// The VM's project (a backup written before backups recorded one belongs to the
    /// project its stored VM definition names, else `default`); `None` when the backup
    /// cannot be read.
    #[serde(default)]
    pub project: Option<String>,
    pub created_unix_ms: Option<u64>,
    pub size_bytes: Option<u64>,
    pub disks: Vec<String>,
    /// Why the backup cannot be read, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Keep rules (the newest backup of each period is kept, for that many periods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default)]
    pub keep_last: u32,
    #[serde(default)]
    pub keep_hourly: u32,
    #[serde(default)]
    pub keep_daily: u32,
    #[serde(default)]
    pub keep_weekly: u32,
    #[serde(default)]
    pub keep_monthly: u32,
    #[serde(default)]
    pub keep_yearly: u32,
}

impl Retention {
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }
}

/// Body of `POST /api/v1/vms/{name}/backup`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupCreateRequest {
    pub repo: String,
}

/// Body of `POST /api/v1/backups/{id}/restore`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRestoreRequest {
    /// Restore into a new VM of this name.
    #[serde(default)]
    pub r#as: Option<String>,
    /// Place the new VM on this node.
    #[serde(default)]
    pub node: Option<String>,
    /// Restore over the original VM (it must be stopped).
    #[serde(default)]
    pub over_original: bool,
    /// Repository holding the backup (default: the one where it is found).
    #[serde(default)]
    pub repo: Option<String>,
}

/// Body of `POST /api/v1/backup/repos/{name}/sync`: replicate to another location (another
/// site), blob for blob; the copy opens with the same key file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoSyncRequest {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub s3: Option<String>,
    /// Register the copy as a repository of this name (when it is not one yet).
    #[serde(default)]
    pub r#as: Option<String>,
    /// Also remove from the copy the backups the source no longer has.
    #[serde(default)]
    pub prune_target: bool,
}

/// Body of `POST /api/v1/backup/repos/{name}/prune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(from = "PruneRequestWire")]
pub struct PruneRequest {
    #[serde(flatten)]
    pub retention: Retention,
    #[serde(default)]
    pub dry_run: bool,
    /// Only this VM's backups.
    #[serde(default)]
    pub vm: Option<String>,
}

/// [`PruneRequest`] as it is read: the retention fields inline, so unknown fields are refused
/// (serde cannot refuse them through `flatten`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PruneRequestWire {
    #[serde(default)]
    keep_last: u32,
    #[serde(default)]
    keep_hourly: u32,
    #[serde(default)]
    keep_daily: u32,
    #[serde(default)]
    keep_weekly: u32,
    #[serde(default)]
    keep_monthly: u32,
    #[serde(default)]
    keep_yearly: u32,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    vm: Option<String>,
}

impl From<PruneRequestWire> for PruneRequest {
    fn from(w: PruneRequestWire) -> Self {
        PruneRequest {
            retention: Retention {
                keep_last: w.keep_last,
                keep_hourly: w.keep_hourly,
                keep_daily: w.keep_daily,
                keep_weekly: w.keep_weekly,
                keep_monthly: w.keep_monthly,
                keep_yearly: w.keep_yearly,
            },
            dry_run: w.dry_run,
            vm: w.vm,
        }
    }
}

/// A periodic backup of one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupSchedule {
    pub vm: String,
    pub repo: String,
    pub every_seconds: u64,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub last_run: UnixSeconds,
    #[serde(default)]
    pub last_operation: Option<String>,
}

/// Where a VM's disk is restored from (the agent fills the disk from the repository).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestoreSource {
    pub repo: BackupRepo,
    pub backup: String,
    /// The desired-state generation that asked for the restore (applied once).
    pub generation: u64,
}

/// What the control plane asks an agent to back up.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupJob {
    pub operation: String,
    pub repo: BackupRepo,
    /// Prune this VM's backups with these rules after a successful backup.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// The project's `--max-backup-storage`, when it has one: the backup is kept only if the
    /// project's backups stay within it.
    #[serde(default)]
    pub storage_limit: Option<BackupStorageLimit>,
}

/// What a project's `--max-backup-storage` leaves a backup in its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupStorageLimit {
    /// The project's limit.
    pub max_bytes: u64,
    /// What the project's backups hold in its other repositories.
    pub elsewhere_bytes: u64,
}

impl BackupStorageLimit {
    /// The refusal when `project`'s backups, holding `held` bytes, are at this limit (`added`:
    /// none) or a finished backup would add `added` bytes over it.
    pub fn refusal(&self, project: &str, held: u64, added: Option<u64>) -> String {
        let what = match added {
            None => "so no new backup starts".to_string(),
            Some(a) => format!(
                "this backup would add {} more, so it was not kept",
                crate::format_size(a)
            ),
        };
        format!(
            "project {project} is at its limit max-backup-storage = {}: its backups hold {}, {what} (make room with `novacron backup list` and `novacron backup delete ID`, or a cluster admin raises the limit with `novacron project set {project} --max-backup-storage ...`)",
            crate::format_size(self.max_bytes),
            crate::format_size(held),
        )
    }
}

/// An agent's progress report on an operation it runs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationUpdate {
    pub state: crate::OperationState,
    pub message: String,
    #[serde(default)]
    pub progress: Option<f64>,
}
