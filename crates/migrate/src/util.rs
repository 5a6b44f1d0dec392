//! Small helpers shared by the migration modules: socket writes that cannot raise SIGPIPE,
//! waits of the stream pipelines' blocking threads that end when the migration stops, and
//! deterministic filler data for tests.

use std::io;
use std::os::fd::AsRawFd;

use tokio_util::sync::CancellationToken;

use crate::error::MigrateError;

/// Runs `fut` to completion on `rt` from a blocking thread, or until `stop` is cancelled.
///
/// The stream pipelines run on tokio's blocking pool and hold channels of the DWCP session,
/// which keep it open. A wait on the session (a full send window, a message that never comes)
/// is only woken by the session's own tasks; once the migration has given up, or the runtime
/// is shutting down and those tasks are gone, nothing would wake it, and dropping the runtime
/// waits for blocking threads forever. `stop` wakes the thread whatever the session does.
pub(crate) fn block_on_until<T, E>(
    rt: &tokio::runtime::Handle,
    stop: &CancellationToken,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, MigrateError>
where
    MigrateError: From<E>,
{
    if stop.is_cancelled() {
        return Err(MigrateError::Cancelled);
    }
    rt.block_on(async {
        tokio::select! {
            biased;
            _ = stop.cancelled() => Err(MigrateError::Cancelled),
            r = fut => r.map_err(MigrateError::from),
        }
    })
}

/// Writes all of `buf` to a connected socket with `send(MSG_NOSIGNAL)`: a peer that went away
/// gives `EPIPE` instead of a SIGPIPE that would end a CLI process (the `novacron` CLI restores
/// the default SIGPIPE disposition).
///
/// With a write timeout set on the socket, a peer that stops reading makes `send` time out;
/// the write then goes on unless `stop` is cancelled (`ErrorKind::Interrupted` then).
pub(crate) fn send_all_blocking(
    sock: &impl AsRawFd,
    mut buf: &[u8],
    stop: &CancellationToken,
) -> io::Result<()> {
    while !buf.is_empty() {
        if stop.is_cancelled() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the migration stopped",
            ));
        }
        // SAFETY: `buf` is a valid readable slice for its length; the descriptor is borrowed
        // from a live socket for the duration of the call.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Async counterpart of [`send_all_blocking`] for a tokio unix stream.
pub(crate) async fn send_all(sock: &tokio::net::UnixStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        sock.writable().await?;
        let r = sock.try_io(tokio::io::Interest::WRITABLE, || {
            // SAFETY: as in `send_all_blocking`.
            let n = unsafe {
                libc::send(
                    sock.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `buf` with incompressible bytes derived from `seed` (BLAKE3 XOF).
pub fn fill_pseudo_random(buf: &mut [u8], seed: u64) {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.finalize_xof().fill(buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A pipeline thread parked on a wait nobody will ever wake (as on a session whose tasks
    /// died with the runtime) ends when the migration stops, so dropping the runtime, which
    /// waits for its blocking threads, returns instead of hanging.
    #[test]
    fn a_stopped_pipeline_lets_the_runtime_shut_down() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let handle = rt.handle().clone();
        let s = stop.clone();
        let task = rt.spawn_blocking(move || {
            let _ = entered_tx.send(());
            block_on_until(
                &handle,
                &s,
                std::future::pending::<Result<(), MigrateError>>(),
            )
        });
        entered_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!task.is_finished(), "the pipeline waits until stopped");
        stop.cancel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(rt);
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "dropping the runtime hung on the pipeline thread"
        );
    }

    #[test]
    fn a_stopped_write_gives_up() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_write_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let writer = std::thread::spawn(move || {
            // Far more than the socket buffers: blocks once they are full, as with a QEMU that
            // stopped reading.
            send_all_blocking(&a, &vec![0u8; 64 << 20], &s)
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(!writer.is_finished(), "the write waits for the reader");
        stop.cancel();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !writer.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the write did not stop"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let err = writer.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
    }
}
