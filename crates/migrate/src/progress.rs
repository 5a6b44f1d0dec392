//! What a running migration reports: phase, bytes, rates, predictions. Sent through a
//! `tokio::sync::watch` channel so watchers always see the latest state.

use serde::{Deserialize, Serialize};

/// Where a migration is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum MigrationPhase {
    /// Handshake, pre-checks, NBD export and base image announcement.
    #[default]
    Preparing,
    /// Disks are being mirrored while the VM runs.
    DiskSync,
    /// Memory pre-copy, pass `pass` (1 = the first full pass).
    MemoryPrecopy { pass: u64 },
    /// The VM is stopped on the source; the rest of its state is on the way.
    StopAndCopy,
    /// Post-copy: the VM runs on the destination, which faults missing pages in.
    Postcopy,
    /// The destination holds everything; waiting for the commit and the resume.
    SwitchOver,
    /// The VM runs on the destination.
    Completed,
    /// The migration failed; `message` says why and where the VM is.
    Failed,
}

impl std::fmt::Display for MigrationPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrationPhase::Preparing => f.write_str("preparing"),
            MigrationPhase::DiskSync => f.write_str("disk sync"),
            MigrationPhase::MemoryPrecopy { pass } => write!(f, "memory pre-copy pass {pass}"),
            MigrationPhase::StopAndCopy => f.write_str("stop-and-copy"),
            MigrationPhase::Postcopy => f.write_str("post-copy"),
            MigrationPhase::SwitchOver => f.write_str("switch-over"),
            MigrationPhase::Completed => f.write_str("completed"),
            MigrationPhase::Failed => f.write_str("failed"),
        }
    }
}

/// A snapshot of a migration's progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationProgress {
    pub phase: MigrationPhase,
    /// Since the migration started.
    pub elapsed_ms: u64,
    /// Bytes this migration put into the DWCP session (after HDE and compression; before TLS/TCP framing).
    pub bytes_on_wire: u64,
    /// Bytes carried: QEMU's migration stream plus disk (NBD) traffic.
    pub payload_bytes: u64,
    /// Of `payload_bytes`, disk traffic.
    pub disk_payload_bytes: u64,
    /// Wire rate over the last second, bits/s.
    pub rate_bps: f64,
    /// Pages the guest dirties per second (QEMU's measure, updated once per pass).
    pub dirty_rate_pages_per_sec: u64,
    /// The same in bytes.
    pub dirty_rate_bytes_per_sec: u64,
    /// RAM still to send in this pass, bytes (QEMU's count).
    pub remaining_ram_bytes: u64,
    /// Disk bytes still to mirror before the disks are in sync.
    pub disk_remaining_bytes: u64,
    /// Downtime expected if the VM stopped at the end of this pass.
    pub predicted_downtime_ms: Option<u64>,
    /// Time to completion as predicted now.
    pub eta_seconds: Option<f64>,
    /// Guest CPU throttle set by auto-converge, percent.
    pub throttle_percent: u64,
    /// The shortest pause the link allows (round trips, the pipe's drain, the device state),
    /// once measured.
    #[serde(default)]
    pub pause_floor_ms: Option<u64>,
    /// The pause limit in force when the default limit was raised because the link cannot
    /// pause the guest for that little.
    #[serde(default)]
    pub raised_max_downtime_ms: Option<u64>,
    /// The guest's real pause, the source's STOP to the destination's RESUME, once known.
    pub downtime_ms: Option<u64>,
    /// QEMU's own downtime figure on the source (stop to its last byte written).
    #[serde(default)]
    pub source_downtime_ms: Option<u64>,
    /// Wire bytes per RAM byte re-sent (deltas), as measured.
    pub resend_wire_ratio: Option<f64>,
    /// Post-copy: when the switch happened, ms since the start, and why.
    #[serde(default)]
    pub postcopy_switch_ms: Option<u64>,
    #[serde(default)]
    pub postcopy_reason: Option<String>,
    /// Post-copy: page faults the destination served, and how long they waited (request on
    /// the return path to the page written into the destination QEMU).
    #[serde(default)]
    pub faults_served: u64,
    #[serde(default)]
    pub fault_latency_p50_ms: Option<f64>,
    #[serde(default)]
    pub fault_latency_p99_ms: Option<f64>,
    /// Human summary of the state.
    pub message: String,
}
