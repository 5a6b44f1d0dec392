//! Live migration: what a user asks (`vm migrate`, `node evacuate`), what the control plane
//! keeps about each migration, and what it tells the two agents.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::UnixSeconds;
use crate::agent::DesiredVm;

/// Body of `POST /api/v1/vms/{name}/migrate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    /// Destination node (omitted: the node with the most free memory that can take the VM).
    #[serde(default)]
    pub to: Option<String>,
    /// Longest acceptable pause of the guest, ms; refused when the link cannot pause the guest
    /// for that little (omitted: 300, raised to 1.5 × the link's floor where the link cannot).
    #[serde(default)]
    pub max_downtime_ms: Option<u64>,
    /// Cap on the wire rate of this migration, bits/s.
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
    /// Stop the VM first and copy it stopped.
    #[serde(default)]
    pub offline: bool,
    /// Give up (VM stays on the source) when not switched over within this many seconds.
    #[serde(default)]
    pub deadline_seconds: Option<u64>,
    /// How memory moves (omitted: `auto`).
    #[serde(default)]
    pub mode: Option<MigrationMode>,
}

/// How a live migration moves memory (`vm migrate --mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MigrationMode {
    /// Pre-copy, escalating to guest throttling when the guest dirties memory faster than
    /// the link carries it, then to post-copy when throttling cannot meet the pause limit
    /// (only if the destination can take post-copy).
    #[default]
    Auto,
    /// Pre-copy only (with throttling), never post-copy.
    Precopy,
    /// One pre-copy pass, then post-copy (refused before anything starts when the
    /// destination cannot take it, with the reason).
    Postcopy,
}

impl MigrationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationMode::Auto => "auto",
            MigrationMode::Precopy => "precopy",
            MigrationMode::Postcopy => "postcopy",
        }
    }

    /// Why this mode cannot run anywhere, if it cannot (checked before anything starts).
    /// Every mode runs now; what a node offers (post-copy needs userfaultfd in the destination
    /// QEMU) is checked by the destination agent when it prepares.
    pub fn unsupported_reason(self) -> Option<&'static str> {
        None
    }
}

impl std::fmt::Display for MigrationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MigrationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(MigrationMode::Auto),
            "precopy" => Ok(MigrationMode::Precopy),
            "postcopy" => Ok(MigrationMode::Postcopy),
            other => Err(format!(
                "unknown mode {other:?}: use auto, precopy or postcopy"
            )),
        }
    }
}

/// Where a migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MigrationState {
    /// The destination is being prepared.
    Preparing,
    /// Data is moving.
    Running,
    /// The switch-over is recorded: the VM belongs to the destination.
    Committed,
    /// The VM runs on the destination; the source is cleaned up.
    Succeeded,
    /// The VM stays on the source; `message` says why.
    Failed,
    /// Cancelled by a user; the VM stays on the source.
    Cancelled,
}

impl MigrationState {
    /// No more changes will come.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            MigrationState::Succeeded | MigrationState::Failed | MigrationState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Preparing => "preparing",
            MigrationState::Running => "running",
            MigrationState::Committed => "committed",
            MigrationState::Succeeded => "succeeded",
            MigrationState::Failed => "failed",
            MigrationState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for MigrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Live figures of a running migration (reported by the source agent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MigrationProgress {
    /// `preparing`, `disk sync`, `memory pre-copy pass N`, `stop-and-copy`, `switch-over`,
    /// `completed`, `failed`.
    pub phase: String,
    pub elapsed_ms: u64,
    /// Bytes put on the link (after dedup, deltas and compression).
    pub bytes_sent: u64,
    /// Bytes carried for the VM: QEMU's migration stream plus disk blocks.
    pub payload_bytes: u64,
    /// Of `payload_bytes`, disk blocks.
    pub disk_payload_bytes: u64,
    /// Wire rate over the last second, bits/s.
    pub rate_bps: f64,
    /// Bytes the guest dirties per second.
    pub dirty_rate_bytes_per_sec: u64,
    /// RAM still to send in this pass.
    pub remaining_ram_bytes: u64,
    /// Disk bytes still to mirror.
    pub disk_remaining_bytes: u64,
    /// Pause expected if the VM stopped now.
    #[serde(default)]
    pub predicted_downtime_ms: Option<u64>,
    #[serde(default)]
    pub eta_seconds: Option<f64>,
    /// Guest CPU throttle applied by auto-converge, percent (0: none).
    pub throttle_percent: u64,
    /// The shortest pause the link allows (round trips, the pipe's drain, the device state),
    /// once measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_floor_ms: Option<u64>,
    /// The pause limit in force when `max_downtime_ms` was the default and the link cannot
    /// pause the guest for that little.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raised_max_downtime_ms: Option<u64>,
    /// The guest's real pause, once known: the source QEMU's STOP to the destination QEMU's
    /// RESUME (event timestamps, the two hosts' clocks compared by the agents).
    #[serde(default)]
    pub downtime_ms: Option<u64>,
    /// Error bound of `downtime_ms` from the clock comparison, ms.
    #[serde(default)]
    pub downtime_bound_ms: Option<f64>,
    /// QEMU's own downtime figure on the source (its stop to its last byte written; leaves out
    /// the WAN, the load at the destination, the commit and the resume).
    #[serde(default)]
    pub source_downtime_ms: Option<u64>,
    /// Post-copy: when the source switched, ms since the start, and the policy's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcopy_switch_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcopy_reason: Option<String>,
    /// Post-copy: page faults the destination served (its page requests on the return path).
    #[serde(default)]
    pub faults_served: u64,
    /// Post-copy: how long a faulted page waited, from the destination's request to the page
    /// reaching its QEMU, ms (median and 99th percentile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_latency_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_latency_p99_ms: Option<f64>,
}

/// One migration, as `migration show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Migration {
    pub id: String,
    pub project: String,
    pub vm: String,
    pub source: String,
    pub destination: String,
    pub state: MigrationState,
    /// What is happening, or why it failed.
    pub message: String,
    pub max_downtime_ms: u64,
    /// `max_downtime_ms` was not given: the default, raised to what the link allows when it
    /// cannot pause the guest for that little (a given limit is refused instead).
    #[serde(default)]
    pub max_downtime_default: bool,
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
    pub offline: bool,
    #[serde(default)]
    pub deadline_seconds: Option<u64>,
    pub progress: MigrationProgress,
    /// The operation a CLI can wait on.
    pub operation: String,
    pub created_at: UnixSeconds,
    pub updated_at: UnixSeconds,
}

/// Answer of `POST /api/v1/vms/{name}/migrate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MigrationRef {
    pub migration: Migration,
}

/// Body of `POST /api/v1/evacuations/plan`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvacuateRequest {
    /// The node to empty.
    pub node: String,
    /// Move every VM to this node (omitted: the scheduler chooses each destination).
    #[serde(default)]
    pub to: Option<String>,
    /// Migrations at once (omitted: planned from the VMs and the link).
    #[serde(default)]
    pub parallel: Option<u32>,
    #[serde(default)]
    pub max_downtime_ms: Option<u64>,
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
}

/// One VM of an evacuation plan, in the order it moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvacuationStep {
    pub vm: String,
    pub destination: String,
    /// Why it is at this position (e.g. `stopped: moves first, no memory to copy`).
    pub reason: String,
}

/// The plan of `node evacuate`: order and concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvacuationPlan {
    pub node: String,
    pub parallel: u32,
    pub steps: Vec<EvacuationStep>,
}

/// A per-migration secret (64 hex digits) the control plane hands to both agents: the
/// source proves it on every DWCP stream, the destination refuses streams without the proof.
/// Its `Debug` form hides it, so it cannot reach a log through a `{:?}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct MigrationSecret(pub String);

impl std::fmt::Debug for MigrationSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MigrationSecret(<redacted>)")
    }
}

/// Control plane → destination agent: prepare to receive a VM
/// (`POST /agent/v1/migrations/incoming`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IncomingMigration {
    pub id: String,
    /// The only node whose DWCP connection the destination accepts for this migration.
    pub source: String,
    /// What the source must prove on the DWCP session.
    pub secret: MigrationSecret,
    /// The VM as it must run here (same devices as on the source).
    pub vm: DesiredVm,
    /// Block nodes to receive a disk mirror (empty: the disk is on shared storage).
    pub disks: Vec<String>,
    /// How memory moves (`postcopy`: refused here when this node cannot take post-copy).
    #[serde(default)]
    pub mode: MigrationMode,
}

/// Destination agent's answer: where the source's DWCP session must connect.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IncomingReady {
    /// `host:port` of the DWCP listener for this migration.
    pub dwcp_addr: String,
}

/// Control plane → source agent: send the VM (`POST /agent/v1/migrations/outgoing`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutgoingMigration {
    pub id: String,
    pub project: String,
    pub vm: String,
    pub destination: String,
    /// The destination's DWCP listener.
    pub dwcp_addr: String,
    /// What to prove to the destination on the DWCP session.
    pub secret: MigrationSecret,
    /// Block nodes to mirror (empty: shared storage).
    pub disks: Vec<String>,
    /// Mirror the whole disk (no base image shared by both sides).
    #[serde(default)]
    pub full_disk: bool,
    pub max_downtime_ms: u64,
    /// `max_downtime_ms` is the default, not the caller's (omitted by an older control plane:
    /// a given limit).
    #[serde(default)]
    pub max_downtime_default: bool,
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
    #[serde(default)]
    pub offline: bool,
    #[serde(default)]
    pub deadline_seconds: Option<u64>,
    /// How memory moves (omitted by an older control plane: `auto`).
    #[serde(default)]
    pub mode: MigrationMode,
}

/// Agent → control plane: progress or failure of a migration
/// (`PUT /api/v1/agent/migrations/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MigrationReport {
    pub progress: MigrationProgress,
    /// Set when this side failed (the VM stays on the source).
    #[serde(default)]
    pub failed: Option<String>,
    /// Source only, after the switch-over: the source is released.
    #[serde(default)]
    pub finished: bool,
}

/// Answer of `POST /api/v1/agent/migrations/{id}/commit` and `.../abort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MigrationOutcome {
    /// The VM belongs to the destination.
    Committed,
    /// The VM stays on the source.
    Aborted,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mode_is_a_lowercase_word_and_every_mode_runs() {
        for m in [
            MigrationMode::Auto,
            MigrationMode::Precopy,
            MigrationMode::Postcopy,
        ] {
            let j = serde_json::to_string(&m).unwrap();
            assert_eq!(j, format!("\"{m}\""));
            assert_eq!(m.as_str().parse::<MigrationMode>().unwrap(), m);
        }
        assert!("post-copy".parse::<MigrationMode>().is_err());
        assert!(MigrationMode::Auto.unsupported_reason().is_none());
        assert!(MigrationMode::Precopy.unsupported_reason().is_none());
        assert!(MigrationMode::Postcopy.unsupported_reason().is_none());
        // An older client's request (no mode) still parses; an older agent's request too.
        let r: MigrateRequest = serde_json::from_str(r#"{"to":"node-b"}"#).unwrap();
        assert_eq!(r.mode, None);
        assert_eq!(r.mode.unwrap_or_default(), MigrationMode::Auto);
    }
}
