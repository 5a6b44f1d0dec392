//! Control messages between the source and destination of one migration (JSON, one per
//! message on the control channel), and the channel ids a migration uses in its session.

use std::time::Duration;

use novacron_dwcp::Channel;
use serde::{Deserialize, Serialize};

use crate::error::MigrateError;

/// Version of this protocol; both sides must speak the same.
pub const PROTOCOL_VERSION: u32 = 1;

/// Channel ids of one migration, offset by its `channel_base` (several migrations may share a
/// session: give each a different base, e.g. 1000 × slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channels {
    pub base: u32,
}

impl Channels {
    pub fn control(self) -> u32 {
        self.base + 1
    }
    pub fn stream(self) -> u32 {
        self.base + 2
    }
    pub fn announce(self) -> u32 {
        self.base + 3
    }
    /// Post-copy: the destination QEMU's return path (page requests, acks), byte for byte.
    pub fn return_path(self) -> u32 {
        self.base + 4
    }
    pub fn nbd(self, disk: usize) -> u32 {
        self.base + 16 + disk as u32
    }
}

/// A disk the source mirrors to the destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskPlan {
    /// Block node name, the same on both sides (`disk0`, ...).
    pub node: String,
    /// Virtual size, bytes (the destination's disk must have the same).
    pub size_bytes: u64,
}

/// One control message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// Source → destination: what is coming.
    Hello {
        protocol: u32,
        memory_bytes: u64,
        disks: Vec<DiskPlan>,
        history_bytes: u64,
        /// The source may switch to post-copy: enable it on the destination QEMU.
        #[serde(default)]
        postcopy: bool,
    },
    /// Destination → source: NBD exports are up, the incoming socket is connected, the base
    /// image announcement was sent.
    Ready {
        base_blocks: u64,
        /// Post-copy was asked for and the destination QEMU accepted it.
        #[serde(default)]
        postcopy: bool,
        /// Why the destination cannot take post-copy, when it was asked for and cannot.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        postcopy_refused: Option<String>,
    },
    /// Destination → source: stream message bytes written to QEMU so far.
    Ack { consumed_wire_bytes: u64 },
    /// Destination → source: QEMU loaded the whole state and is paused.
    Loaded {
        stream_bytes: u64,
        /// Post-copy: the page faults the destination served.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        faults: Option<crate::postcopy::FaultSummary>,
    },
    /// Source → destination: the switch-over is committed and the source starts post-copy
    /// now: resume the VM as soon as QEMU runs its post-copy phase (after confirming the
    /// commit), and keep taking pages until the stream ends.
    Postcopy,
    /// Either side: this side failed; the other must give up.
    Failed { reason: String },
    /// Source → destination: the switch-over is committed: resume.
    Go,
    /// Source → destination: drop everything, the VM stays on the source.
    Abort { reason: String },
    /// Destination → source, after `Go`: the VM runs here. Timestamps are µs since the Unix
    /// epoch on the destination's wall clock: QEMU's RESUME event (None if QEMU did not report
    /// one in time), when `Go` arrived, and when this message left (see [`crate::pause`]).
    Resumed {
        resume_unix_micros: Option<i64>,
        go_received_unix_micros: i64,
        sent_unix_micros: i64,
    },
}

/// Sends one control message.
pub async fn send(ch: &Channel, msg: &Control) -> Result<(), MigrateError> {
    let bytes = serde_json::to_vec(msg)
        .map_err(|e| MigrateError::Protocol(format!("encoding a control message: {e}")))?;
    ch.send(bytes).await?;
    Ok(())
}

/// Receives one control message; `None` when the peer finished the channel.
pub async fn recv(ch: &Channel) -> Result<Option<Control>, MigrateError> {
    match ch.recv().await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| MigrateError::Protocol(format!("bad control message: {e}"))),
    }
}

/// Receives one control message within `timeout`.
pub async fn recv_timeout(
    ch: &Channel,
    timeout: Duration,
    waiting_for: &str,
) -> Result<Option<Control>, MigrateError> {
    tokio::time::timeout(timeout, recv(ch)).await.map_err(|_| {
        MigrateError::Protocol(format!(
            "no answer from the peer within {} s while waiting for {waiting_for}",
            timeout.as_secs()
        ))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json() {
        let m = Control::Ack {
            consumed_wire_bytes: 7,
        };
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(s, r#"{"type":"ack","consumed_wire_bytes":7}"#);
        assert_eq!(serde_json::from_str::<Control>(&s).unwrap(), m);
        assert!(serde_json::from_str::<Control>(r#"{"type":"launch_missiles"}"#).is_err());
    }
}
