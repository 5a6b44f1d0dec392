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
/// time (a VMDK grain by grain), so what counts is the round trip of each. The connection gets a
/// thread of its own with blocking I/O: a request wakes that thread alone, which reads the bytes
/// (just written, so in the page cache) and answers in one write, with no hop between the
/// runtime's threads and the blocking pool.
async fn transmission(
    s: tokio::net::UnixStream,
    file: &Path,
    size: u64,
    arrived: watch::Receiver<Arrived>,
) -> std::io::Result<()> {
    let f = std::fs::File::open(file)?;
    let s = s.into_std()?;
    s.set_nonblocking(false)?;
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || serve_requests(s, &f, size, arrived, &runtime))
        .await
        .map_err(std::io::Error::other)?
}

/// Answers requests on `s` until the client disconnects (blocking; see [`transmission`]).
fn serve_requests(
    s: std::os::unix::net::UnixStream,
    f: &std::fs::File,
    size: u64,
    mut arrived: watch::Receiver<Arrived>,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut r = std::io::BufReader::new(s.try_clone()?);
    let mut w = s;
    let mut header = [0u8; 28];
    loop {
        r.read_exact(&mut header)?;
        let field = |at: usize, n: usize| {
            header[at..at + n]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        };
        if field(0, 4) != u64::from(REQUEST_MAGIC) {
            return Err(std::io::Error::other("bad request magic"));
        }
        let kind = field(6, 2) as u16;
        let cookie = field(8, 8);
        let offset = field(16, 8);
        let len = field(24, 4) as u32;
        let reply = match kind {
            CMD_READ => read(f, &mut arrived, runtime, size, cookie, offset, len),
            CMD_DISC => return Ok(()),
            _ => {
                // A write command carries its data: the length says how much to skip.
                if kind == 1 {
                    std::io::copy(&mut (&mut r).take(u64::from(len)), &mut std::io::sink())?;
                }
                reply(cookie, EPERM, 0)
            }
        };
        w.write_all(&reply)?;
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

/// Serves one read: waits until its bytes have arrived (on `runtime` only when they have not),
/// then reads them.
fn read(
    f: &std::fs::File,
    arrived: &mut watch::Receiver<Arrived>,
    runtime: &tokio::runtime::Handle,
    size: u64,
    cookie: u64,
    offset: u64,
    len: u32,
) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    match offset.checked_add(u64::from(len)) {
        Some(end) if end <= size && len <= MAX_READ => {
            let there = match *arrived.borrow() {
                Arrived::Partial(n) | Arrived::Done(Ok(n)) => n >= end,
                Arrived::Done(Err(())) => false,
            };
            if !there && !runtime.block_on(wait_for(arrived, end)) {
                return reply(cookie, EIO, 0);
            }
        }
        _ => return reply(cookie, EINVAL, 0),
    }
    let mut out = reply(cookie, 0, len as usize);
    match f.read_exact_at(&mut out[16..], offset) {
        Ok(()) => out,
        Err(_) => reply(cookie, EIO, 0),
    }
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

    /// Converts the raw file `raw` to a VMDK beside it, `src.vmdk`.
    fn vmdk_of(raw: &Path) -> PathBuf {
        let vmdk = raw.with_file_name("src.vmdk");
        let st = std::process::Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "vmdk"])
            .arg(raw)
            .arg(&vmdk)
            .status()
            .unwrap();
        assert!(st.success());
        vmdk
    }

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
        let vmdk = vmdk_of(&raw);
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

    /// An upload that gives up halfway fails the conversion reading it at once (the read waiting
    /// for the missing bytes answers EIO), and the export lets go of the connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_that_gives_up_fails_the_conversion_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("src.raw");
        let data: Vec<u8> = (0..8usize << 20).map(|i| (i * 13 % 241) as u8).collect();
        std::fs::write(&raw, &data).unwrap();
        let vmdk = vmdk_of(&raw);
        let bytes = std::fs::read(&vmdk).unwrap();
        let growing = dir.path().join("growing");
        std::fs::write(&growing, &bytes[..bytes.len() / 2]).unwrap();
        let (tx, rx) = watch::channel(Arrived::Partial(bytes.len() as u64 / 2));
        let export = GrowingExport::start(&growing, bytes.len() as u64, &dir.path().join("s"), rx)
            .await
            .unwrap();
        let mut convert = tokio::process::Command::new("qemu-img")
            .args(["convert", "-f", "vmdk", "-O", "qcow2", &export.uri()])
            .arg(dir.path().join("out.qcow2"))
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // qemu-img has read what is there and now waits for the rest.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(
            convert.try_wait().unwrap().is_none(),
            "qemu-img did not wait"
        );
        tx.send(Arrived::Done(Err(()))).unwrap();
        let status = tokio::time::timeout(std::time::Duration::from_secs(20), convert.wait())
            .await
            .expect("qemu-img still waits after the upload gave up")
            .unwrap();
        assert!(!status.success());
    }

    /// Not a test of behaviour: how much slower qemu-img converts a complete VMDK through the
    /// export than from the file itself (`NOVACRON_BENCH_NBD_MIB`, default 512, half filled).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn bench_conversion_through_the_export_against_the_file() {
        let mib: usize = std::env::var("NOVACRON_BENCH_NBD_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(512);
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("src.raw");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&raw).unwrap();
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            for m in 0..mib {
                let mut chunk = vec![0u8; 1 << 20];
                if m % 2 == 1 {
                    for b in chunk.iter_mut() {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        *b = seed as u8;
                    }
                }
                f.write_all(&chunk).unwrap();
            }
        }
        let vmdk = vmdk_of(&raw);
        std::fs::remove_file(&raw).unwrap();
        let size = std::fs::metadata(&vmdk).unwrap().len();
        let out = dir.path().join("out.qcow2");
        let convert = |source: String| {
            let out = out.clone();
            async move {
                let t = std::time::Instant::now();
                let st = tokio::process::Command::new("qemu-img")
                    .args(["convert", "-f", "vmdk", "-O", "qcow2", &source])
                    .arg(&out)
                    .status()
                    .await
                    .unwrap();
                assert!(st.success());
                std::fs::remove_file(&out).unwrap();
                t.elapsed().as_secs_f64()
            }
        };
        let file = convert(vmdk.to_str().unwrap().to_string()).await;
        let (_tx, rx) = watch::channel(Arrived::Done(Ok(size)));
        let export = GrowingExport::start(&vmdk, size, &dir.path().join("s"), rx)
            .await
            .unwrap();
        let through = convert(export.uri()).await;
        let file_again = convert(vmdk.to_str().unwrap().to_string()).await;
        println!(
            "BENCH {mib} MiB VMDK: from the file {file:.2} s / {file_again:.2} s, through the export {through:.2} s"
        );
    }
}
