//! A read-only NBD export (unix socket) of a file that is still being written: a read waits until the bytes it
//! asks for have arrived. qemu-img can then vet and convert an upload while it streams in, instead of after it.
//!
//! Protocol (NBD fixed newstyle, as QEMU's client speaks it): every option but `NBD_OPT_GO`, `NBD_OPT_INFO` and
//! `NBD_OPT_EXPORT_NAME` is answered "unsupported" (so no structured replies, no extended headers, no metadata
//! contexts: the client falls back to simple replies and treats every block as data); in transmission only `READ`
//! and `DISC` are served, anything else answers EPERM (the export is read-only).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::QemuError;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;
const CLIENT_NO_ZEROES: u32 = 2;
const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = 0x8000_0001;
const INFO_EXPORT: u16 = 0;
const TRANSMISSION_FLAGS: u16 = 1 | 2; // HAS_FLAGS | READ_ONLY
const CMD_READ: u16 = 0;
const CMD_DISC: u16 = 2;
const EIO: u32 = 5;
const EPERM: u32 = 1;
const EINVAL: u32 = 22;
/// Largest read served (QEMU asks for at most 32 MiB).
const MAX_READ: u32 = 32 << 20;

/// How much of the file has arrived; `Done` when the writer finished (`Ok`) or gave up (`Err`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrived {
    Partial(u64),
    Done(Result<u64, ()>),
}

/// A running export; the listener stops when this is dropped.
pub struct GrowingExport {
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl GrowingExport {
    /// Serves `file` (whose final size is `size` bytes) on a new unix socket `socket`; `arrived` says how much of
    /// it may be read so far.
    pub async fn start(
        file: &Path,
        size: u64,
        socket: &Path,
        arrived: watch::Receiver<Arrived>,
    ) -> Result<GrowingExport, QemuError> {
        let listener = tokio::net::UnixListener::bind(socket)
            .map_err(|e| QemuError::io(format!("NBD socket {}", socket.display()), e))?;
        let file = Arc::new(file.to_path_buf());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let file = file.clone();
                let arrived = arrived.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, &file, size, arrived).await {
                        tracing::debug!(error = %e, "NBD client done");
                    }
                });
            }
        });
        Ok(GrowingExport {
            socket: socket.to_path_buf(),
            task,
        })
    }

    /// The export as qemu-img names it.
    pub fn uri(&self) -> String {
        format!("nbd+unix:///?socket={}", self.socket.display())
    }
}

impl Drop for GrowingExport {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn serve(
    mut s: tokio::net::UnixStream,
    file: &Path,
    size: u64,
    arrived: watch::Receiver<Arrived>,
) -> std::io::Result<()> {
    s.write_u64(NBDMAGIC).await?;
    s.write_u64(IHAVEOPT).await?;
    s.write_u16(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).await?;
    let client_flags = s.read_u32().await?;
    // Option haggling.
    loop {
        if s.read_u64().await? != IHAVEOPT {
            return Err(std::io::Error::other("bad option magic"));
        }
        let option = s.read_u32().await?;
        let len = s.read_u32().await?;
        if len > 64 << 10 {
            return Err(std::io::Error::other("option too long"));
        }
        let mut data = vec![0u8; len as usize];
        s.read_exact(&mut data).await?;
        match option {
            OPT_EXPORT_NAME => {
                s.write_u64(size).await?;
                s.write_u16(TRANSMISSION_FLAGS).await?;
                if client_flags & CLIENT_NO_ZEROES == 0 {
                    s.write_all(&[0u8; 124]).await?;
                }
                break;
            }
            OPT_GO | OPT_INFO => {
                let mut info = Vec::with_capacity(12);
                info.extend_from_slice(&INFO_EXPORT.to_be_bytes());
                info.extend_from_slice(&size.to_be_bytes());
                info.extend_from_slice(&TRANSMISSION_FLAGS.to_be_bytes());
                option_reply(&mut s, option, REP_INFO, &info).await?;
                option_reply(&mut s, option, REP_ACK, &[]).await?;
                if option == OPT_GO {
                    break;
                }
            }
            OPT_ABORT => {
                option_reply(&mut s, option, REP_ACK, &[]).await?;
                return Ok(());
            }
            _ => option_reply(&mut s, option, REP_ERR_UNSUP, &[]).await?,
        }
    }
    transmission(s, file, size, arrived).await
}

/// The transmission phase. QEMU's VMDK, VHDX and VPC drivers read under a lock, one request at a
/// time (a VMDK grain by grain), so what counts is the round trip of each: requests are read
/// through a buffer and each reply goes out in one write.
async fn transmission(
    s: tokio::net::UnixStream,
    file: &Path,
    size: u64,
    mut arrived: watch::Receiver<Arrived>,
) -> std::io::Result<()> {
    let f = Arc::new(std::fs::File::open(file)?);
    let (r, mut w) = s.into_split();
    let mut r = tokio::io::BufReader::new(r);
    loop {
        if r.read_u32().await? != REQUEST_MAGIC {
            return Err(std::io::Error::other("bad request magic"));
        }
        let _flags = r.read_u16().await?;
        let kind = r.read_u16().await?;
        let cookie = r.read_u64().await?;
        let offset = r.read_u64().await?;
        let len = r.read_u32().await?;
        let reply = match kind {
            CMD_READ => read(&f, &mut arrived, size, cookie, offset, len).await,
            CMD_DISC => return Ok(()),
            _ => {
                // A write command carries its data: the length says how much to skip.
                if kind == 1 {
                    let mut sink = (&mut r).take(u64::from(len));
                    tokio::io::copy(&mut sink, &mut tokio::io::sink()).await?;
                }
                reply(cookie, EPERM, 0)
            }
        };
        w.write_all(&reply).await?;
    }
}

/// A simple reply's header followed by room for `len` bytes of data.
fn reply(cookie: u64, error: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; 16 + len];
    out[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    out[4..8].copy_from_slice(&error.to_be_bytes());
    out[8..16].copy_from_slice(&cookie.to_be_bytes());
    out
}

/// Serves one read: waits until its bytes have arrived, then reads them on the blocking pool.
async fn read(
    f: &Arc<std::fs::File>,
    arrived: &mut watch::Receiver<Arrived>,
    size: u64,
    cookie: u64,
    offset: u64,
    len: u32,
) -> Vec<u8> {
    match offset.checked_add(u64::from(len)) {
        Some(end) if end <= size && len <= MAX_READ => {
            if !wait_for(arrived, end).await {
                return reply(cookie, EIO, 0);
            }
        }
        _ => return reply(cookie, EINVAL, 0),
    }
    let f = f.clone();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut out = reply(cookie, 0, len as usize);
        match f.read_exact_at(&mut out[16..], offset) {
            Ok(()) => out,
            Err(_) => reply(cookie, EIO, 0),
        }
    })
    .await
    .unwrap_or_else(|_| reply(cookie, EIO, 0))
}

/// Waits until the first `end` bytes have arrived; false when the writer gave up or finished short.
pub async fn wait_for(arrived: &mut watch::Receiver<Arrived>, end: u64) -> bool {
    loop {
        match *arrived.borrow_and_update() {
            Arrived::Partial(n) if n >= end => return true,
            Arrived::Done(Ok(n)) => return n >= end,
            Arrived::Done(Err(())) => return false,
            Arrived::Partial(_) => {}
        }
        if arrived.changed().await.is_err() {
            return false;
        }
    }
}

async fn option_reply(
    s: &mut tokio::net::UnixStream,
    option: u32,
    kind: u32,
    data: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(20 + data.len());
    out.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    s.write_all(&out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// qemu-img reads a VMDK through the export while the file is still being written, and the converted
    /// image equals the source.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn qemu_img_converts_a_file_while_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("src.raw");
        let mut data = vec![0u8; 8 << 20];
        for (i, b) in data.iter_mut().enumerate().skip(1 << 20).take(3 << 20) {
            *b = (i * 7 % 251) as u8;
        }
        std::fs::write(&raw, &data).unwrap();
        let vmdk = dir.path().join("src.vmdk");
        let st = std::process::Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "vmdk"])
            .arg(&raw)
            .arg(&vmdk)
            .status()
            .unwrap();
        assert!(st.success());
        let bytes = std::fs::read(&vmdk).unwrap();
        let growing = dir.path().join("growing");
        std::fs::write(&growing, b"").unwrap();
        let (tx, rx) = watch::channel(Arrived::Partial(0));
        let export = GrowingExport::start(&growing, bytes.len() as u64, &dir.path().join("s"), rx)
            .await
            .unwrap();
        let uri = export.uri();
        let out = dir.path().join("out.qcow2");
        let out_s = out.to_str().unwrap().to_string();
        let convert = tokio::spawn(async move {
            tokio::process::Command::new("qemu-img")
                .args(["convert", "-f", "vmdk", "-O", "qcow2", &uri, &out_s])
                .output()
                .await
                .unwrap()
        });
        // Feed the file in pieces, slowly enough that qemu-img has to wait.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&growing)
            .unwrap();
        for piece in bytes.chunks(256 << 10) {
            use std::io::Write;
            f.write_all(piece).unwrap();
            let now = f.metadata().unwrap().len();
            tx.send(Arrived::Partial(now)).unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tx.send(Arrived::Done(Ok(bytes.len() as u64))).unwrap();
        let result = convert.await.unwrap();
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        let same = std::process::Command::new("qemu-img")
            .args(["compare", "-q", "-f", "raw", "-F", "qcow2"])
            .arg(&raw)
            .arg(&out)
            .status()
            .unwrap();
        assert!(same.success());
    }
}
