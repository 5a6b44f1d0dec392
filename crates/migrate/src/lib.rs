//! Live migration of QEMU VMs between NovaCron nodes over DWCP.
//!
//! QEMU on the source writes its migration stream to a socket owned by [`source`]; the parser
//! ([`qevm`]) finds the RAM pages in it, HDE sends them as zero runs, references (to content
//! sent before or to a base image the destination holds), deltas or compressed bytes ([`wire`]),
//! and [`destination`] rebuilds the exact byte stream for the destination QEMU. Local disks are
//! mirrored by QEMU to an NBD export on the destination, carried over the same DWCP session
//! ([`nbd`]). [`policy`] decides, from the dirty rate and PBA's bandwidth forecast, how much
//! may be left for the stop-and-copy phase so the downtime stays under the limit. [`plan`]
//! orders an evacuation (ITP); [`compat`] checks the destination QEMU can take the VM.
//! [`postcopy`] holds post-copy's preconditions and the decoder of QEMU's return path, which
//! both sides relay over DWCP when the policy (or `--mode postcopy`) switches.
//!
//! See docs/migration.md in the repository for the protocol between the agents.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod base;
pub mod compat;
pub mod control;
mod destination;
mod error;
pub mod flow;
pub mod nbd;
pub mod pause;
pub mod policy;
pub mod postcopy;
pub mod progress;
pub mod qapi;
pub mod qevm;
mod source;
#[cfg(feature = "testing")]
pub mod testing;
pub mod util;
pub mod wire;

pub use destination::{Decision, DestinationParams, DestinationReady, destination};
pub use error::{MigrateError, WireError};
pub use progress::{MigrationPhase, MigrationProgress};
pub use source::{
    DiskMirror, MigrationSummary, MirrorSync, ReleasedSource, SourceHandover, SourceParams,
    check_work_dir, clear_leftovers, source,
};
pub use tokio_util::sync::CancellationToken;
