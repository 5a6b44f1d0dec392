//! The QEMU driver of a NovaCron node agent: QMP client, command line, process supervision that survives agent
//! restarts, accelerator choice, disk images through qemu-img, the built-in tiny guest and cloud-init seeds.
//!
//! QEMU 7.2 (Debian 12) is the minimum version.

// Tests may unwrap; product code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod accel;
pub mod cgroup;
pub mod cmdline;
pub mod console;
pub mod cpio;
mod error;
pub mod firmware;
pub mod held;
pub mod hotplug;
pub mod img;
pub mod import;
pub mod nbd;
pub mod ova;
pub mod process;
pub mod qga;
pub mod qmp;
pub mod resize;
pub mod seed;
pub mod snapshot;
pub mod spec;
pub mod tap;
pub mod tiny;
pub mod tpm;
pub mod user;

pub use accel::{Accel, AccelChoice, resolve_accel};
pub use cmdline::build_command_line;
pub use error::QemuError;
pub use img::{
    DiskFormat, ImageInfo, backing_chain, check_self_contained, create_blank, create_overlay,
    inspect_as, inspect_for_import,
};
pub use import::{ForeignFormat, Imported, import_file, import_held, import_range};
pub use process::{ExitInfo, RunningVm, adopt, launch};
pub use qga::{ExecOutput, GuestAgent, GuestInterface};
pub use qmp::{LatencyObserver, Qmp, QmpEvent, RunStatus, set_latency_observer};
pub use seed::{NoCloudSeed, write_nocloud_seed};
pub use spec::{
    BackingFile, Boot, DiskSpec, NicSpec, PluggedDisk, PluggedNic, PortForward, RunDir, VmSpec,
};
pub use tiny::{
    GUEST_READY_MARKER, GuestFile, TinyImage, TinyOptions, build_tiny, host_guest_agent,
};
pub use user::RunAs;
