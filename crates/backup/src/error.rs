//! Typed errors of the backup repository and its jobs.

use std::path::PathBuf;

/// Everything that can go wrong in the backup crate. Messages say what happened and, where it
/// helps, what to do next.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object {key} not found in the repository")]
    NotFound { key: String },
    #[error("storage backend error on {key}: {message}")]
    Backend { key: String, message: String },
    #[error("{path} is not a NovaCron backup repository (no config.json)")]
    NotARepository { path: String },
    #[error("a repository already exists at {path}")]
    AlreadyExists { path: String },
    #[error(
        "repository format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("the repository is encrypted: pass its key file")]
    KeyRequired,
    #[error("the key file does not open this repository (wrong key or damaged config.json)")]
    WrongKey,
    #[error("bad key file {path}: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error("invalid repository config: {0}")]
    BadConfig(String),
    #[error("chunk {id} is corrupt: {reason}")]
    CorruptChunk { id: String, reason: String },
    #[error("chunk {id} is missing from the repository")]
    MissingChunk { id: String },
    #[error("index of backup {backup} is corrupt: {reason}")]
    CorruptIndex { backup: String, reason: String },
    #[error("backup {0} not found")]
    UnknownBackup(String),
    #[error("backup {backup} has no disk named {disk}")]
    UnknownDisk { backup: String, disk: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("source disk {disk}: {message}")]
    Source { disk: String, message: String },
    #[error("restore of backup {backup} refused: {reason}; nothing was written to {target}")]
    RestoreRefused {
        backup: String,
        target: PathBuf,
        reason: String,
    },
    #[error(
        "the backups of project {project} in this repository would hold {after} bytes with this one, over the {limit} bytes its storage limit leaves them ({before} bytes without it); it was not kept"
    )]
    StorageLimit {
        project: String,
        before: u64,
        after: u64,
        limit: u64,
    },
    #[error("garbage collection sweep deferred: {0}")]
    SweepDeferred(String),
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("external command {command} failed: {message}")]
    Command { command: String, message: String },
    #[error("QEMU: {0}")]
    Qemu(String),
    #[error("internal task failed: {0}")]
    Task(String),
}

impl BackupError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BackupError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias used across the crate.
pub type Result<T, E = BackupError> = std::result::Result<T, E>;

impl From<tokio::task::JoinError> for BackupError {
    fn from(e: tokio::task::JoinError) -> Self {
        BackupError::Task(e.to_string())
    }
}
