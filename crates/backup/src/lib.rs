//! NovaCron backup: an incremental, deduplicated, compressed and encrypted repository of VM
//! disk images, and the jobs that fill it from running VMs and restore from it.
//!
//! Layers, bottom up: [`backend`] (where objects live: local directory, S3), [`blob`] (the
//! format of one stored object), [`repo`] (chunks, indexes, backup/restore/verify/prune/gc),
//! [`live`] (QEMU: dirty bitmaps and point-in-time reads of running VMs), [`bench`] (the
//! `novacron bench backup` comparison with restic and borg). See docs/backup.md.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod backend;
pub mod bench;
pub mod blob;
pub mod config;
pub mod crypto;
pub mod error;
pub mod index;
pub mod live;
pub mod location;
pub mod locks;
pub mod nbd;
pub mod replicate;
pub mod repo;
pub mod retention;
pub mod source;
pub mod util;

pub use backend::local::{LocalBackend, SyncLevel};
pub use backend::{Backend, ObjectInfo};
pub use crypto::{ChunkId, KeyFile};
pub use error::{BackupError, Result};
pub use index::{
    BackupId, BackupIndex, BackupStats, BitmapRef, ChunkRef, DiskIndex, ReadMode,
    UNRECORDED_PROJECT, distinct_data_bytes,
};
pub use repo::{
    BackupListing, BackupMeta, BackupOptions, Changes, CreateOptions, DiskInput, GcOptions,
    GcReport, Progress, PruneReport, Repository, RestoreFormat, RestoreOptions, RestoreReport,
    VerifyOptions, VerifyReport,
};
pub use retention::RetentionPolicy;
pub use source::{DirtyMap, DiskSource, FileSource};
