//! Disk mirroring transport: QEMU's NBD client on the source talks to the destination QEMU's
//! NBD server through a DWCP channel.
//!
//! The source QEMU connects its NBD client (`blockdev-add driver=nbd`) to a unix socket owned
//! here; each read from it becomes one channel message, and the destination side writes it into
//! the destination QEMU's NBD server socket; replies come back the same way. QEMU's mirror
//! keeps many requests in flight and NBD replies may come out of order, so nothing here waits
//! for a round trip: a 50 ms WAN costs the mirror latency, not throughput. Messages of 4 KiB or
//! more are zstd-compressed when that saves (the level follows PBA's bandwidth estimate).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use novacron_dwcp::{Channel, Session};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use crate::error::MigrateError;
use crate::flow::RateLimit;
use crate::util::send_all;

const STORED: u8 = 0;
const ZSTD: u8 = 1;
/// First message of a connection: QEMU's client connected on the source. NBD servers speak
/// first, so the destination connects to its server only then.
const CONNECT: u8 = 2;
const READ_BYTES: usize = 512 << 10;
const COMPRESS_MIN: usize = 4096;
/// Largest decompressed message accepted.
const MAX_MESSAGE: usize = 64 << 20;

/// Byte counters of one proxied NBD connection.
#[derive(Debug, Default)]
pub struct NbdCounters {
    /// Bytes QEMU wrote into the proxy on this side (NBD payload) and bytes sent on the channel for them.
    pub payload_out: AtomicU64,
    pub wire_out: AtomicU64,
    /// Bytes received from the channel (wire) and written to QEMU (payload).
    pub wire_in: AtomicU64,
    pub payload_in: AtomicU64,
}

/// A running proxy; dropping it stops it.
pub struct NbdProxy {
    task: JoinHandle<Result<(), MigrateError>>,
    counters: Arc<NbdCounters>,
    socket: Option<PathBuf>,
}

impl Drop for NbdProxy {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl NbdProxy {
    /// Counters so far.
    pub fn counters(&self) -> &Arc<NbdCounters> {
        &self.counters
    }

    /// True once the proxied connection ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Source side: listens on `socket` for QEMU's NBD client, then carries the connection
    /// over channel `channel` of `session`.
    pub fn source(
        session: &Session,
        channel: u32,
        socket: &Path,
        limit: Option<Arc<RateLimit>>,
    ) -> Result<NbdProxy, MigrateError> {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)
            .map_err(|e| MigrateError::io(format!("binding {}", socket.display()), e))?;
        // QEMU may run as the VM's own user, who owns the work directory.
        novacron_qemu::user::give_to_dir_owner(socket)
            .map_err(|e| MigrateError::qemu("source", "NBD socket", e))?;
        let ch = session.open_channel(channel)?;
        let counters = Arc::new(NbdCounters::default());
        let c = counters.clone();
        let s = session.clone();
        let task = tokio::spawn(async move {
            let (conn, _) = listener
                .accept()
                .await
                .map_err(|e| MigrateError::io("accepting QEMU's NBD connection", e))?;
            drop(listener);
            ch.send(vec![CONNECT]).await?;
            pump(conn, ch, s, c, limit).await
        });
        Ok(NbdProxy {
            task,
            counters,
            socket: Some(socket.to_path_buf()),
        })
    }

    /// Destination side: when the source's first message arrives on `channel`, connects to the
    /// destination QEMU's NBD server at `server` and carries the connection.
    pub fn destination(
        session: &Session,
        channel: u32,
        server: &Path,
    ) -> Result<NbdProxy, MigrateError> {
        let ch = session.open_channel(channel)?;
        let counters = Arc::new(NbdCounters::default());
        let c = counters.clone();
        let s = session.clone();
        let server = server.to_path_buf();
        let task = tokio::spawn(async move {
            let Some(first) = ch.recv().await? else {
                return Ok(());
            };
            if first[..] != [CONNECT] {
                return Err(MigrateError::Protocol(
                    "NBD proxy: expected the connect message first".into(),
                ));
            }
            let conn = UnixStream::connect(&server).await.map_err(|e| {
                MigrateError::io(format!("connecting to NBD server {}", server.display()), e)
            })?;
            pump(conn, ch, s, c, None).await
        });
        Ok(NbdProxy {
            task,
            counters,
            socket: None,
        })
    }

    /// Waits for the connection to end (both directions closed), at most `timeout`.
    pub async fn join(self, timeout: Duration) -> Result<(), MigrateError> {
        let mut this = self;
        let task = &mut this.task;
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(MigrateError::Protocol(format!("NBD proxy task: {e}"))),
            Err(_) => Err(MigrateError::Protocol(
                "NBD proxy did not finish in time".into(),
            )),
        }
    }
}

/// Opens one proxy message (public for the fuzz targets only).
#[doc(hidden)]
pub fn decode(msg: &Bytes) -> Result<Bytes, MigrateError> {
    match msg.first() {
        Some(&STORED) => Ok(msg.slice(1..)),
        Some(&ZSTD) => {
            let out = zstd::bulk::decompress(&msg[1..], MAX_MESSAGE).map_err(|e| {
                MigrateError::Protocol(format!("NBD message does not decompress: {e}"))
            })?;
            Ok(Bytes::from(out))
        }
        _ => Err(MigrateError::Protocol("bad NBD proxy message".into())),
    }
}

/// Makes one proxy message (public for the fuzz targets only).
#[doc(hidden)]
pub fn encode(data: &[u8], level: Option<i32>) -> Vec<u8> {
    if let Some(level) = level
        && data.len() >= COMPRESS_MIN
        && let Ok(z) = zstd::bulk::compress(data, level)
        && z.len() < data.len() - data.len() / 16
    {
        let mut m = Vec::with_capacity(z.len() + 1);
        m.push(ZSTD);
        m.extend_from_slice(&z);
        return m;
    }
    let mut m = Vec::with_capacity(data.len() + 1);
    m.push(STORED);
    m.extend_from_slice(data);
    m
}

/// Carries bytes both ways until both directions ended.
async fn pump(
    conn: UnixStream,
    ch: Channel,
    session: Session,
    c: Arc<NbdCounters>,
    limit: Option<Arc<RateLimit>>,
) -> Result<(), MigrateError> {
    let conn = Arc::new(conn);
    let (ch_out, ch_in) = (ch.clone(), ch);
    let (conn_r, conn_w) = (conn.clone(), conn);
    let c_out = c.clone();
    let outbound = async move {
        let mut buf = vec![0u8; READ_BYTES];
        loop {
            conn_r
                .readable()
                .await
                .map_err(|e| MigrateError::io("reading from NBD peer", e))?;
            let n = match conn_r.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(MigrateError::io("reading from NBD peer", e)),
            };
            let msg = encode(&buf[..n], session.suggested_zstd_level());
            if let Some(l) = &limit {
                let wait = l.reserve(msg.len());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            c_out.payload_out.fetch_add(n as u64, Ordering::Relaxed);
            c_out
                .wire_out
                .fetch_add(msg.len() as u64, Ordering::Relaxed);
            ch_out.send(msg).await?;
        }
        ch_out.finish().await?;
        Ok::<_, MigrateError>(())
    };
    let inbound = async move {
        while let Some(msg) = ch_in.recv().await? {
            let data = decode(&msg)?;
            c.wire_in.fetch_add(msg.len() as u64, Ordering::Relaxed);
            c.payload_in.fetch_add(data.len() as u64, Ordering::Relaxed);
            send_all(&conn_w, &data)
                .await
                .map_err(|e| MigrateError::io("writing to NBD peer", e))?;
        }
        // The peer closed its side: close ours for writing so QEMU sees the end.
        let _ = shutdown_write(&conn_w);
        Ok::<_, MigrateError>(())
    };
    let (a, b) = tokio::join!(outbound, inbound);
    a.and(b)
}

fn shutdown_write(s: &UnixStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: shutdown(2) on a descriptor borrowed from a live socket.
    let rc = unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_WR) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_compressed_or_not() {
        let text = b"abcdefgh".repeat(1000);
        let m = encode(&text, Some(3));
        assert_eq!(m[0], ZSTD);
        assert!(m.len() < 200);
        assert_eq!(&decode(&Bytes::from(m)).unwrap()[..], &text[..]);
        let mut rnd = vec![0u8; 8192];
        crate::util::fill_pseudo_random(&mut rnd, 1);
        let m = encode(&rnd, Some(3));
        assert_eq!(m[0], STORED);
        assert_eq!(&decode(&Bytes::from(m)).unwrap()[..], &rnd[..]);
        assert!(decode(&Bytes::from_static(&[9, 1])).is_err());
        assert!(decode(&Bytes::from_static(&[1, 1, 2, 3])).is_err());
        assert!(decode(&Bytes::new()).is_err());
    }
}
