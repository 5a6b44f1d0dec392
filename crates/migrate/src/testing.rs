//! Test and benchmark support (feature `testing`): the workload guest (tools/guest-workload
//! inside the tiny image) and the host side of its heartbeat port.
//!
//! The guest prints `.` every millisecond on its second serial port (ttyS1), which QEMU
//! connects to a unix socket; [`Heartbeat`] reads the sockets of the source and destination
//! QEMUs, timestamps what arrives, and measures the longest gap across both.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use novacron_qemu::{GuestFile, TinyImage, TinyOptions};

/// Errors of the test support.
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    #[error("building the guest workload program: {0}")]
    Build(String),
    #[error("{0}")]
    Guest(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestingError {
    let context = context.into();
    move |source| TestingError::Io { context, source }
}

/// Where tools/guest-workload lives in the source tree this crate was built from.
pub fn workload_source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/guest-workload")
}

/// Builds the guest workload program (static, for the guest) and returns its path.
/// `NOVACRON_GUEST_WORKLOAD` names a prebuilt binary instead.
pub fn build_workload_binary(target_dir: &Path) -> Result<PathBuf, TestingError> {
    if let Ok(p) = std::env::var("NOVACRON_GUEST_WORKLOAD") {
        return Ok(PathBuf::from(p));
    }
    let manifest = workload_source_dir().join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            "x86_64-unknown-linux-gnu",
            "--manifest-path",
        ])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|e| {
            TestingError::Build(format!(
                "running {cargo} (a Rust toolchain is needed, or set NOVACRON_GUEST_WORKLOAD): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(TestingError::Build(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(target_dir.join("x86_64-unknown-linux-gnu/release/novacron-guest-workload"))
}

/// What the guest holds and does. Sizes in MiB.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WorkloadConfig {
    pub page_cache_mib: u64,
    pub compressible_mib: u64,
    pub incompressible_mib: u64,
    /// Page-aligned copies of the incompressible data.
    pub incompressible_copies: u64,
    pub duplicate_mib: u64,
    pub duplicate_distinct_pages: u64,
    /// Text and binary-like code repeated at offsets that never line up with a page.
    pub unaligned_mib: u64,
    pub disk_write_mib: u64,
    pub disk_write_offset_mib: u64,
    /// What the guest program runs: `idle`, `hotset` or `dirty`.
    pub workload: String,
    pub hotset_mib: u64,
    pub hotset_spread: u64,
    pub hotset_bytes_per_page: u64,
    pub hotset_pause_us: u64,
    pub dirty_mib: u64,
    pub dirty_pages_per_sec: u64,
    /// `dirty` in bursts: the set rate for half of each period, `burst_low_percent` of it for
    /// the other half (0: steady).
    pub burst_period_ms: u64,
    pub burst_low_percent: u64,
    pub seed: u64,
}

/// Workloads [`WorkloadConfig::scaled`] knows (`dirty` and `bursty` take `:RATE`).
pub const WORKLOADS: &[&str] = &[
    "idle",
    "hotset",
    "dirty",
    "mixed",
    "pagecache",
    "random",
    "bursty",
];

/// Checks a workload name as [`WorkloadConfig::scaled`] reads it: `dirty` needs a rate,
/// `bursty` may have one (the benchmark derives it from the link otherwise).
pub fn check_workload(workload: &str) -> Result<(), String> {
    let (kind, rate) = match workload.split_once(':') {
        Some((k, r)) => (k, Some(parse_rate(r))),
        None => (workload, None),
    };
    let ok = WORKLOADS.contains(&kind)
        && match kind {
            "dirty" => rate.is_some_and(|r| r > 0),
            "bursty" => rate.is_none_or(|r| r > 0),
            _ => rate.is_none(),
        };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "workload {workload:?}: use idle, hotset, dirty:RATE, mixed, pagecache, random or \
             bursty[:RATE] (RATE in pages/s, or e.g. 20MiB)"
        ))
    }
}

impl WorkloadConfig {
    /// Contents for a guest of `memory_mib`, scaled like a busy server: a quarter page cache of
    /// its disk (at most `disk_mib`), 15 % text, 5 % incompressible, 10 % duplicated pages.
    /// The other workloads change that mix:
    /// - `mixed`: text and binary-like code repeated at unaligned offsets (15 %), incompressible
    ///   data and a page-aligned copy of it (6 % each), with 2 MiB/s of page rewrites;
    /// - `pagecache`: as much of its own disk in the page cache as the disk allows, little else;
    /// - `random`: half of it incompressible;
    /// - `bursty:RATE`: the usual contents, and page rewrites that alternate every 2 s between
    ///   RATE and a tenth of it.
    pub fn scaled(memory_mib: u64, disk_mib: u64, workload: &str) -> WorkloadConfig {
        let (kind, rate) = match workload.split_once(':') {
            Some((k, r)) => (k, parse_rate(r)),
            _ => (workload, 0),
        };
        let m = memory_mib;
        let disk_cache = disk_mib.saturating_sub(disk_mib / 4);
        let mut c = WorkloadConfig {
            page_cache_mib: (m / 4).min(disk_cache),
            compressible_mib: m * 15 / 100,
            incompressible_mib: m * 5 / 100,
            incompressible_copies: 0,
            duplicate_mib: m / 10,
            duplicate_distinct_pages: 64,
            unaligned_mib: 0,
            disk_write_mib: (disk_mib / 16).max(1),
            disk_write_offset_mib: disk_mib - disk_mib / 8,
            workload: kind.into(),
            hotset_mib: (m / 64).max(1),
            hotset_spread: 8,
            hotset_bytes_per_page: 64,
            hotset_pause_us: 2000,
            dirty_mib: (m / 8).max(4),
            dirty_pages_per_sec: rate,
            burst_period_ms: 0,
            burst_low_percent: 10,
            seed: 20261123,
        };
        match kind {
            "mixed" => {
                c.page_cache_mib = (m / 8).min(disk_cache);
                c.compressible_mib = m * 8 / 100;
                c.unaligned_mib = m * 15 / 100;
                c.incompressible_mib = m * 6 / 100;
                c.incompressible_copies = 1;
                c.duplicate_mib = m * 4 / 100;
                c.workload = "dirty".into();
                c.dirty_mib = (m / 16).max(4);
                c.dirty_pages_per_sec = 512;
            }
            "pagecache" => {
                c.page_cache_mib = disk_cache.min(m * 6 / 10);
                c.compressible_mib = m / 20;
                c.incompressible_mib = m / 50;
                c.duplicate_mib = m / 20;
                c.workload = "idle".into();
            }
            "random" => {
                c.page_cache_mib = (m / 16).min(disk_cache);
                c.compressible_mib = m * 3 / 100;
                c.incompressible_mib = m / 2;
                c.duplicate_mib = m * 3 / 100;
                c.workload = "idle".into();
            }
            "bursty" => {
                c.workload = "dirty".into();
                c.burst_period_ms = 4000;
            }
            _ => {}
        }
        c
    }

    /// The guest's config file.
    pub fn to_conf(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        let mut s = String::new();
        if let Some(m) = v.as_object() {
            for (k, v) in m {
                let v = v
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string());
                s.push_str(&format!("{k}={v}\n"));
            }
        }
        s
    }
}

/// Parses a page rate like `5000` (pages/s), `20MiB` or `20mb` (per second).
pub fn parse_rate(s: &str) -> u64 {
    let t = s.trim().to_ascii_lowercase();
    let num: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = num.parse().unwrap_or(0);
    match &t[num.len()..] {
        "mib" | "mb" | "m" => n * 256,
        "gib" | "gb" | "g" => n * 256 * 1024,
        "kib" | "kb" | "k" => n / 4,
        _ => n,
    }
}

const INIT_SCRIPT: &str = "#!/bin/sh\nstty -F /dev/ttyS1 115200 raw -echo 2>/dev/null\nexec /usr/bin/novacron-guest-workload /etc/novacron/workload.conf > /dev/ttyS0 2>&1\n";

/// Builds the tiny guest with the workload program into `dir`.
pub async fn build_guest(
    dir: &Path,
    binary: &Path,
    cfg: &WorkloadConfig,
) -> Result<TinyImage, TestingError> {
    let bin = std::fs::read(binary).map_err(io(format!("reading {}", binary.display())))?;
    let opts = TinyOptions {
        extra_files: vec![
            GuestFile {
                path_in_guest: "/usr/bin/novacron-guest-workload".into(),
                contents: bin,
                mode: 0o755,
            },
            GuestFile {
                path_in_guest: "/etc/novacron/workload.conf".into(),
                contents: cfg.to_conf().into_bytes(),
                mode: 0o644,
            },
            GuestFile {
                path_in_guest: "/etc/novacron/init.d/50-workload".into(),
                contents: INIT_SCRIPT.as_bytes().to_vec(),
                mode: 0o755,
            },
        ],
        ..TinyOptions::default()
    };
    novacron_qemu::build_tiny(dir, &opts)
        .await
        .map_err(|e| TestingError::Guest(e.to_string()))
}

/// QEMU arguments adding the heartbeat port (ttyS1) on a unix socket at `socket`.
pub fn heartbeat_args(socket: &Path) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!("socket,id=hb,path={},server=on,wait=off", socket.display()),
        "-serial".into(),
        "chardev:hb".into(),
    ]
}

/// What came from one QEMU's heartbeat port.
#[derive(Default)]
struct Side {
    /// (arrival, beats in that read).
    beats: Vec<(Instant, u32)>,
    lines: Vec<(Instant, String)>,
    partial: Option<String>,
}

/// One QEMU's port: its name, what came from it, and the stream to write to it.
type Port = (String, Side, Option<UnixStream>);

/// Reads the heartbeat ports of several QEMUs (source, destination) and measures gaps.
#[derive(Clone, Default)]
pub struct Heartbeat {
    sides: Arc<Mutex<Vec<Port>>>,
}

impl Heartbeat {
    pub fn new() -> Heartbeat {
        Heartbeat::default()
    }

    /// Connects to the heartbeat socket of a QEMU (retrying while it appears) and reads it on
    /// a thread of its own until the socket closes.
    pub fn attach(&self, name: &str, socket: &Path) -> Result<(), TestingError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(io(format!("connecting to {}", socket.display()))(e)),
            }
        };
        let writer = stream
            .try_clone()
            .map_err(io("cloning the heartbeat socket"))?;
        let idx = {
            let mut s = self.sides.lock().unwrap_or_else(|p| p.into_inner());
            s.push((name.to_string(), Side::default(), Some(writer)));
            s.len() - 1
        };
        let sides = self.sides.clone();
        std::thread::Builder::new()
            .name(format!("hb-{name}"))
            .spawn(move || {
                // The reader's own delays would count as guest gaps: run it at high priority.
                // SAFETY: setpriority(2) on the calling thread, plain integers.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -15) };
                let mut stream = stream;
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let now = Instant::now();
                    let mut s = sides.lock().unwrap_or_else(|p| p.into_inner());
                    let side = &mut s[idx].1;
                    let mut beats = 0u32;
                    for &b in &buf[..n] {
                        match (&mut side.partial, b) {
                            (Some(line), b'\n') => {
                                let l = std::mem::take(line);
                                side.partial = None;
                                side.lines.push((now, l));
                            }
                            (Some(line), b) => line.push(b as char),
                            (None, b'.') => beats += 1,
                            (None, b'#') => side.partial = Some("#".into()),
                            _ => {}
                        }
                    }
                    if beats > 0 {
                        side.beats.push((now, beats));
                    }
                }
            })
            .map_err(io("starting the heartbeat reader"))?;
        Ok(())
    }

    /// Sends `bytes` to the guest through side `name`'s port.
    pub fn send(&self, name: &str, bytes: &[u8]) -> Result<(), TestingError> {
        let mut s = self.sides.lock().unwrap_or_else(|p| p.into_inner());
        let w = s
            .iter_mut()
            .find(|x| x.0 == name)
            .and_then(|x| x.2.as_mut())
            .ok_or_else(|| TestingError::Guest(format!("no heartbeat port {name}")))?;
        w.write_all(bytes)
            .map_err(io("writing to the heartbeat port"))
    }

    /// Waits for a line starting with `prefix` from any side that arrived after `after`.
    pub fn wait_line(
        &self,
        prefix: &str,
        after: Instant,
        timeout: Duration,
    ) -> Result<String, TestingError> {
        self.wait_line_unless(prefix, after, timeout, &AtomicBool::new(false))
    }

    /// [`Heartbeat::wait_line`] that gives up as soon as `stop` is set (e.g. on Ctrl-C).
    pub fn wait_line_unless(
        &self,
        prefix: &str,
        after: Instant,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<String, TestingError> {
        let deadline = Instant::now() + timeout;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(TestingError::Guest(format!(
                    "interrupted while waiting for {prefix} from the guest"
                )));
            }
            {
                let s = self.sides.lock().unwrap_or_else(|p| p.into_inner());
                for (_, side, _) in s.iter() {
                    if let Some((_, l)) = side
                        .lines
                        .iter()
                        .find(|(t, l)| *t >= after && l.starts_with(prefix))
                    {
                        return Ok(l.clone());
                    }
                    if let Some((_, l)) = side
                        .lines
                        .iter()
                        .find(|(t, l)| *t >= after && l.starts_with("#ERR"))
                    {
                        return Err(TestingError::Guest(format!("guest reported {l}")));
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(TestingError::Guest(format!(
                    "no {prefix} line from the guest within {} s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Longest interval without a heartbeat between `from` and `to`, over all sides, and the
    /// number of beats seen in that interval. A period at the end with no beat counts as a gap.
    pub fn max_gap(&self, from: Instant, to: Instant) -> (Duration, u64) {
        let s = self.sides.lock().unwrap_or_else(|p| p.into_inner());
        let mut times: Vec<Instant> = Vec::new();
        let mut beats = 0u64;
        for (_, side, _) in s.iter() {
            for (t, n) in &side.beats {
                if *t >= from && *t <= to {
                    times.push(*t);
                    beats += u64::from(*n);
                }
            }
        }
        times.sort();
        let mut gap = Duration::ZERO;
        let mut prev = from;
        for t in &times {
            gap = gap.max(t.duration_since(prev));
            prev = *t;
        }
        gap = gap.max(to.duration_since(prev));
        (gap, beats)
    }

    /// Time of the last beat seen from side `name`.
    pub fn last_beat(&self, name: &str) -> Option<Instant> {
        let s = self.sides.lock().unwrap_or_else(|p| p.into_inner());
        s.iter()
            .find(|x| x.0 == name)
            .and_then(|x| x.1.beats.last().map(|b| b.0))
    }
}

/// The integrity verdict from a guest's `#READY` and `#AFTER` lines.
pub fn integrity(ready: &str, after: &str) -> Result<(), String> {
    let field = |line: &str, k: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")).map(String::from))
    };
    for k in ["mem", "pc", "disk"] {
        let (a, b) = (field(ready, k), field(after, k));
        if a.is_none() || a != b {
            return Err(format!("{k}: before {a:?}, after {b:?}"));
        }
    }
    for k in ["hot", "dirty"] {
        if field(after, k).as_deref() != Some("ok") {
            return Err(format!("{k}: {:?}", field(after, k)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_conf() {
        assert_eq!(parse_rate("5000"), 5000);
        assert_eq!(parse_rate("20MiB"), 5120);
        let c = WorkloadConfig::scaled(1024, 256, "dirty:20MiB");
        assert_eq!(c.workload, "dirty");
        assert_eq!(c.dirty_pages_per_sec, 5120);
        let conf = c.to_conf();
        assert!(conf.contains("workload=dirty\n"), "{conf}");
        assert!(conf.contains("page_cache_mib=192\n"), "{conf}");
    }

    #[test]
    fn workloads_map_to_guest_programs_and_bad_names_are_refused() {
        let m = WorkloadConfig::scaled(1024, 512, "mixed");
        assert_eq!((m.workload.as_str(), m.incompressible_copies), ("dirty", 1));
        assert!(m.unaligned_mib > 0 && m.dirty_pages_per_sec > 0);
        let b = WorkloadConfig::scaled(1024, 512, "bursty:8MiB");
        assert_eq!((b.dirty_pages_per_sec, b.burst_period_ms), (2048, 4000));
        assert_eq!(
            WorkloadConfig::scaled(1024, 512, "random").incompressible_mib,
            512
        );
        assert_eq!(
            WorkloadConfig::scaled(1024, 512, "pagecache").page_cache_mib,
            384
        );
        for ok in [
            "idle",
            "hotset",
            "dirty:20MiB",
            "mixed",
            "bursty",
            "bursty:5000",
        ] {
            assert!(check_workload(ok).is_ok(), "{ok}");
        }
        for bad in ["dirty", "dirty:0", "idle:5", "bursty:x", "nope", ""] {
            assert!(check_workload(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integrity_compares_fields() {
        let r = "#READY mem=1 pc=2 disk=3 fill_ms=9";
        assert!(integrity(r, "#AFTER mem=1 pc=2 disk=3 hot=ok dirty=ok").is_ok());
        assert!(integrity(r, "#AFTER mem=9 pc=2 disk=3 hot=ok dirty=ok").is_err());
        assert!(integrity(r, "#AFTER mem=1 pc=2 disk=3 hot=bad:1 dirty=ok").is_err());
    }
}
