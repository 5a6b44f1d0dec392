//! Typed errors of live migration; each message says what happened and where the VM is.

use novacron_dwcp::{DwcpError, HdeError};
use novacron_qemu::QemuError;

/// Errors decoding the migration stream messages.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A message ended in the middle of a field.
    #[error("migration stream message is truncated")]
    Truncated,
    /// A message is not valid.
    #[error("migration stream message is corrupt: {0}")]
    Corrupt(&'static str),
    /// A size field exceeds the limits.
    #[error("migration stream message exceeds the size limit")]
    TooLarge,
    /// An earlier message failed; the decoder's history can no longer be trusted.
    #[error("migration stream decoder refused input after an earlier error")]
    Poisoned,
    /// The HDE batch of a message failed to decode.
    #[error(transparent)]
    Hde(#[from] HdeError),
    /// The rebuilt stream differs from what the source read from QEMU.
    #[error(
        "rebuilt migration stream differs from the source's ({rebuilt_bytes} bytes rebuilt, source read {source_bytes})"
    )]
    StreamMismatch {
        source_bytes: u64,
        rebuilt_bytes: u64,
    },
    /// A page refers to a base image, but this side announced none.
    #[error("a page refers to a base image this side did not announce")]
    NoBase,
    /// Reading a base image block failed.
    #[error("reading a base image block: {0}")]
    BaseRead(std::io::Error),
}

/// Errors of a migration. Unless the variant says otherwise, the VM keeps running on the source.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A QMP command failed.
    #[error("{side} QEMU: {during}: {source}")]
    Qemu {
        side: &'static str,
        during: String,
        #[source]
        source: QemuError,
    },
    /// The DWCP session failed.
    #[error("DWCP session: {0}")]
    Dwcp(#[from] DwcpError),
    /// The stream could not be rebuilt.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A local file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The caller cancelled the migration.
    #[error("migration cancelled")]
    Cancelled,
    /// The deadline passed before the migration could complete.
    #[error(
        "migration did not complete within its deadline of {deadline_s} s ({reason}); the VM stays on the source"
    )]
    DeadlineExceeded { deadline_s: u64, reason: String },
    /// QEMU on the source reported the migration failed.
    #[error("source QEMU failed the migration: {0}")]
    SourceFailed(String),
    /// The destination reported a failure.
    #[error("destination failed: {0}")]
    DestinationFailed(String),
    /// The source aborted the migration (told the destination to drop its state).
    #[error("source aborted the migration: {0}")]
    Aborted(String),
    /// The peer sent something that is not part of the protocol.
    #[error("migration protocol violation: {0}")]
    Protocol(String),
    /// The request cannot be carried out as asked; nothing was changed.
    #[error("migration refused: {0}")]
    Refused(String),
    /// A block job (disk mirror) failed.
    #[error("disk mirror of {disk} failed: {reason}")]
    Mirror { disk: String, reason: String },
    /// Post-copy failed after the commit: the VM belongs to the destination; the source keeps
    /// its stale copy stopped (never two running copies).
    #[error(
        "post-copy failed after the switch was committed: {0}; the VM belongs to the destination and the source will not resume its copy (if the destination lost it, the VM has crashed: restart it there)"
    )]
    PostcopyFailed(String),
    /// The migration failed and putting the source back failed too: the VM may not be running.
    #[error(
        "{cause}; then resuming the VM on the source failed: {rollback}. The VM may be paused on the source: check it and resume it (`cont`)"
    )]
    RollbackFailed { cause: String, rollback: String },
}

impl MigrateError {
    pub(crate) fn qemu(side: &'static str, during: impl Into<String>, source: QemuError) -> Self {
        MigrateError::Qemu {
            side,
            during: during.into(),
            source,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        MigrateError::Io {
            context: context.into(),
            source,
        }
    }
}
