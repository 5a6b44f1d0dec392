//! Typed errors of the DWCP crate.

use std::io;

/// Errors from decoding HDE batches.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HdeError {
    /// The input ended in the middle of a record.
    #[error("HDE batch is truncated")]
    Truncated,
    /// The input is not a valid HDE batch.
    #[error("HDE batch is corrupt: {0}")]
    Corrupt(&'static str),
    /// A size field exceeds the decoder's limits.
    #[error("HDE batch or block exceeds the size limit")]
    TooLarge,
    /// A reference names content this side does not hold.
    #[error("HDE reference to content the receiver does not hold")]
    UnknownReference,
    /// A delta arrived for a block whose previous version is unknown.
    #[error("HDE delta for block {0:#x} without a previous version")]
    MissingDeltaBase(u64),
    /// The decoded bytes do not match the fingerprint sent with them.
    #[error("HDE block does not match its fingerprint")]
    ChecksumMismatch,
    /// An earlier batch failed; the decoder's history can no longer be trusted.
    #[error("HDE decoder refused input after an earlier error")]
    Poisoned,
}

/// Errors from decoding wire frames.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Not enough bytes for a whole frame.
    #[error("frame is truncated")]
    Truncated,
    /// Unknown frame kind or flags.
    #[error("frame is malformed: {0}")]
    Malformed(&'static str),
    /// Payload longer than the protocol allows.
    #[error("frame payload of {0} bytes exceeds the limit")]
    TooLarge(u32),
    /// Checksum mismatch.
    #[error("frame checksum mismatch")]
    Checksum,
}

/// Errors from TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM input holds no usable item.
    #[error("{what}: no PEM item found")]
    MissingPem {
        /// Which input.
        what: &'static str,
    },
    /// A PEM input does not parse.
    #[error("{what}: invalid PEM: {detail}")]
    BadPem {
        /// Which input.
        what: &'static str,
        /// Parser message.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),
    /// The certificate verifier could not be built.
    #[error("TLS verifier: {0}")]
    Verifier(String),
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

/// Errors from DWCP sessions.
#[derive(Debug, thiserror::Error)]
pub enum DwcpError {
    /// Socket-level failure.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// TLS setup failure.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The peer sent something that is not valid DWCP.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// Frame decoding failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// HDE decoding failed.
    #[error(transparent)]
    Hde(#[from] HdeError),
    /// Connecting or handshaking did not finish in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The session made no progress for too long, or lost all connections for too long.
    #[error("session failed: {0}")]
    SessionFailed(String),
    /// The session or channel was closed.
    #[error("session closed")]
    Closed,
    /// The channel id is already in use.
    #[error("channel {0} is already open")]
    ChannelInUse(u32),
    /// A message is larger than the session accepts.
    #[error("message of {0} bytes exceeds the limit")]
    MessageTooLarge(usize),
    /// The peer is not the one this side accepts (another node, no or a wrong proof of the
    /// session secret, too many streams).
    #[error("peer refused: {0}")]
    PeerRefused(String),
    /// The peer sent more than this side buffers (bytes beyond the window, too many channels).
    #[error("peer exceeded a receive limit: {0}")]
    LimitExceeded(String),
    /// A session secret in text form does not parse.
    #[error("invalid session secret: {0}")]
    BadSecret(String),
}
