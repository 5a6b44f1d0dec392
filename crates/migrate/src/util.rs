//! Small helpers shared by the migration modules: socket writes that cannot raise SIGPIPE,
//! and deterministic filler data for tests.

use std::io;
use std::os::fd::AsRawFd;

/// Writes all of `buf` to a connected socket with `send(MSG_NOSIGNAL)`: a peer that went away
/// gives `EPIPE` instead of a SIGPIPE that would end a CLI process (the `novacron` CLI restores
/// the default SIGPIPE disposition).
pub(crate) fn send_all_blocking(sock: &impl AsRawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
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
            if e.kind() == io::ErrorKind::Interrupted {
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
