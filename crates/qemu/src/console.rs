//! The serial console of a VM: wait for text in the log QEMU keeps, and type lines into the console socket.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use crate::spec::tail_lines;
use crate::{QemuError, RunDir};

/// Current size of the console log (0 when absent): pass it to [`wait_for_text`] to see only newer output.
pub fn console_log_len(run_dir: &RunDir) -> u64 {
    std::fs::metadata(run_dir.console_log())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Waits until `needle` appears in the file at `log` at or after byte `from`; returns the offset just after it.
pub async fn wait_for_text(
    log: &Path,
    needle: &str,
    from: u64,
    timeout: Duration,
) -> Result<u64, QemuError> {
    let deadline = Instant::now() + timeout;
    let needle_bytes = needle.as_bytes();
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = from;
    loop {
        if let Ok(mut file) = std::fs::File::open(log) {
            let read_from = buf_start + buf.len() as u64;
            if file.seek(SeekFrom::Start(read_from)).is_ok() {
                let _ = file.read_to_end(&mut buf);
            }
            if let Some(pos) = buf
                .windows(needle_bytes.len().max(1))
                .position(|w| w == needle_bytes)
            {
                return Ok(buf_start + (pos + needle_bytes.len()) as u64);
            }
            // Keep only what could still be the start of a match.
            let keep = needle_bytes.len().saturating_sub(1);
            if buf.len() > keep {
                let drop = buf.len() - keep;
                buf.drain(..drop);
                buf_start += drop as u64;
            }
        }
        if Instant::now() >= deadline {
            return Err(QemuError::ConsoleTimeout {
                needle: needle.to_string(),
                log: log.to_path_buf(),
                timeout_ms: timeout.as_millis() as u64,
                tail: tail_lines(log, from, 5).replace('\n', " | "),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Types `line` followed by Enter into the VM's serial console (connects, writes, disconnects).
/// QEMU serves one console client at a time: this waits behind an attached `vm console` session.
pub async fn send_console_line(run_dir: &RunDir, line: &str) -> Result<(), QemuError> {
    send_line(&run_dir.console_socket(), line).await
}

async fn send_line(socket: &Path, line: &str) -> Result<(), QemuError> {
    let mut stream = UnixStream::connect(&socket)
        .await
        .map_err(|e| QemuError::io(format!("connecting to console {}", socket.display()), e))?;
    let mut bytes = line.as_bytes().to_vec();
    bytes.push(b'\n');
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| QemuError::io(format!("writing to console {}", socket.display()), e))?;
    stream
        .flush()
        .await
        .map_err(|e| QemuError::io(format!("writing to console {}", socket.display()), e))?;
    // QEMU reads from the socket only as fast as the guest's UART takes bytes (a 16-byte
    // FIFO), and drops what it has not read when the connection closes: on a busy guest a
    // fixed pause cut lines after 16 characters. Stay connected until QEMU has read it all.
    let deadline = Instant::now() + Duration::from_secs(30);
    while unread_bytes(&stream) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// What the peer has not read yet of what we sent on `stream` (SIOCOUTQ; 0 if unknown).
fn unread_bytes(stream: &UnixStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int through a valid pointer.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc == 0 { n } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_reaches_a_slow_reader_whole() {
        // Like QEMU behind a busy guest's UART: reads a few bytes at a time, slowly, and
        // keeps only what it read before the writer hung up.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = vec![];
            let mut buf = [0u8; 4];
            loop {
                tokio::time::sleep(Duration::from_millis(15)).await;
                // QEMU drops the connection, unread bytes and all, once the peer hangs up.
                let mut p = libc::pollfd {
                    fd: std::os::fd::AsRawFd::as_raw_fd(&s),
                    events: libc::POLLRDHUP,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, no wait.
                if unsafe { libc::poll(&mut p, 1, 0) } > 0 && p.revents & libc::POLLRDHUP != 0 {
                    return got;
                }
                match s.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        let line = "echo HOP-$((4*1000+7)) and then some more";
        send_line(&path, line).await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), format!("{line}\n"));
    }

    #[tokio::test]
    async fn finds_text_written_later_and_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        std::fs::write(&log, "boot noise READY-old\n").unwrap();
        let from = std::fs::metadata(&log).unwrap().len();
        let l2 = log.clone();
        tokio::spawn(async move {
            use std::io::Write;
            tokio::time::sleep(Duration::from_millis(60)).await;
            let mut f = std::fs::OpenOptions::new().append(true).open(&l2).unwrap();
            f.write_all(b"abc REA").unwrap();
            f.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
            f.write_all(b"DY-old tail\n").unwrap();
        });
        let end = wait_for_text(&log, "READY-old", from, Duration::from_secs(3))
            .await
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(&text[..end as usize], "boot noise READY-old\nabc READY-old");
        let err = wait_for_text(&log, "never", 0, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("never"));
    }
}
