//! `novacron bench migration`: NovaCron live migration against QEMU's own migration on an
//! emulated WAN, one system after the other in one run.
//!
//! Every system gets a freshly booted TCG guest from the same image with the same memory
//! contents (page cache of its disk, text, incompressible data, duplicated pages; see
//! tools/guest-workload) running the same workload, and moves it from a QEMU in site-a to a
//! QEMU in site-b of `novacron-wanem`. Both QEMUs open the same qcow2 overlay (shared storage,
//! the same for every system), so only memory and device state cross the link. Reported per
//! system: total time, QEMU's downtime figure, the longest gap in the guest's 1 ms heartbeat
//! (read from both QEMUs' serial ports), bytes on the emulated link (the emulator's counters,
//! both directions), CPU seconds of both QEMUs and the migration endpoints, and the guest's own
//! integrity verdict (memory, page cache and disk checksums before and after).
//!
//! Baselines: QEMU's TCP migration (`qemu-default`), multifd with 8 channels and zstd plus
//! auto-converge (`qemu-multifd-zstd`), XBZRLE plus auto-converge (`qemu-xbzrle`). Their QEMUs
//! run inside the site namespaces, whose default TCP congestion control (a per-namespace sysctl)
//! is set to `cc`. `novacron` is crates/migrate over a DWCP session between the sites, with the
//! guest's base image held by the destination, in `vm migrate`'s default mode (`auto`: pre-copy,
//! throttle, then post-copy when the pause limit cannot be met before the deadline).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use novacron_dwcp::{Listener, SessionOptions};
use novacron_migrate::compat::tcg_safe_ram_bytes;
use novacron_migrate::postcopy::{Hook, PostcopyUse};
use novacron_migrate::testing::{self, Heartbeat, WorkloadConfig};
use novacron_migrate::{
    CancellationToken, Decision, DestinationParams, MigrationProgress, SourceParams,
};
use novacron_qemu::{Accel, Boot, DiskFormat, DiskSpec, RunDir, RunningVm, TinyImage, VmSpec};
use novacron_wanem::{LinkParams, Site, Wanem, WanemConfig};
use serde::Serialize;
use serde_json::{Value, json};

use crate::floor::{self, Floor};
use crate::transport::site_runtime;

/// Systems this benchmark knows, in the order they run by default.
pub const SYSTEMS: &[&str] = &[
    "novacron",
    "qemu-default",
    "qemu-multifd-zstd",
    "qemu-xbzrle",
];

/// What to measure.
#[derive(Clone, Debug)]
pub struct MigrationBenchConfig {
    /// Link rate, bits/s.
    pub rate_bps: u64,
    /// Round-trip time added by the emulator.
    pub rtt: Duration,
    /// Random loss per direction, 0..1.
    pub loss: f64,
    /// Bottleneck queue (time at the link rate).
    pub queue: Duration,
    /// Guest RAM in MiB (QEMU gets 8 KiB more, see [`tcg_safe_ram_bytes`]).
    pub memory_mib: u64,
    /// `idle`, `hotset` or `dirty:RATE` (pages/s, or e.g. `20MiB`).
    pub workload: String,
    /// Systems to run, in order (default: [`SYSTEMS`]).
    pub systems: Vec<String>,
    /// Congestion control of the QEMU baselines' sockets (`cubic`, `bbr`).
    pub cc: String,
    /// Longest acceptable downtime, for every system (QEMU's `downtime-limit`).
    pub max_downtime: Duration,
    /// A migration not finished after this long is cancelled and reported as not completed.
    pub limit: Duration,
    /// How long the workload runs on the source before the migration starts.
    pub warm_up: Duration,
    /// Scratch directory (removed at the end, also on error).
    pub work_dir: PathBuf,
    /// Where the guest workload program is built (kept: cargo rebuilds only on change).
    pub build_dir: PathBuf,
    /// Namespace prefix for the emulator.
    pub netns_prefix: String,
    /// Set to stop the run early (Ctrl-C): it ends with an error after cleaning up.
    pub stop: Arc<AtomicBool>,
    /// Compute the information floor (see [`crate::floor`]) from the first system's run.
    pub floor: bool,
}

impl Default for MigrationBenchConfig {
    fn default() -> Self {
        MigrationBenchConfig {
            rate_bps: 100_000_000,
            rtt: Duration::from_millis(50),
            loss: 0.001,
            queue: Duration::from_millis(50),
            memory_mib: 1024,
            workload: "hotset".into(),
            systems: Vec::new(),
            cc: "cubic".into(),
            max_downtime: Duration::from_millis(300),
            limit: Duration::from_secs(600),
            warm_up: Duration::from_secs(3),
            work_dir: PathBuf::from("/var/tmp/novacron-bench-mig"),
            build_dir: PathBuf::from("/var/tmp/novacron-bench/guest-workload"),
            netns_prefix: "nbm-".into(),
            stop: Arc::new(AtomicBool::new(false)),
            floor: true,
        }
    }
}

/// The emulated link.
#[derive(Clone, Debug, Serialize)]
pub struct LinkReport {
    pub rate_bps: u64,
    pub rtt_ms: f64,
    pub loss: f64,
    /// Congestion control of the QEMU baselines' sockets.
    pub baseline_cc: String,
}

/// The guest every system migrates.
#[derive(Clone, Debug, Serialize)]
pub struct GuestReport {
    pub accel: String,
    pub qemu_version: String,
    pub memory_mib: u64,
    /// What QEMU's `-m` got.
    pub ram_bytes: u64,
    pub ram_note: String,
    pub workload: String,
    /// Raw base image under the guest's qcow2 overlay.
    pub disk_mib: u64,
    pub disk: String,
    pub heartbeat_interval_us: u64,
    pub max_downtime_ms: u64,
    /// The guest's memory contents and workload parameters.
    pub contents: WorkloadConfig,
}

/// One system's measurement.
#[derive(Clone, Debug, Serialize)]
pub struct MigrationResult {
    pub system: String,
    /// From the start of the migration (connect included) to the guest running at the
    /// destination.
    pub total_seconds: f64,
    /// The guest's real pause: the source QEMU's STOP event to the destination QEMU's RESUME
    /// event (both QEMUs run on this host: one clock, no offset); `null` when not completed.
    pub downtime_ms: Option<f64>,
    /// QEMU's own downtime figure on the source (`query-migrate`: its stop to its last byte
    /// written); `null` when not completed.
    pub source_downtime_ms: Option<f64>,
    /// Guest-visible pause: the longest gap in the guest's 1 ms heartbeat (a tick probe inside
    /// the guest, read from both QEMUs' ports) from 1 s before the STOP to 1 s after the
    /// RESUME; without those events, the same as `guest_gap_ms`.
    pub guest_pause_ms: f64,
    /// Longest gap in the guest's 1 ms heartbeat, over both QEMUs' ports, from the start of
    /// the migration to 2 s after the guest resumed (throttling included).
    pub guest_gap_ms: f64,
    /// Bytes on the emulated link, both directions (the emulator's count of IP packets).
    pub wire_bytes: u64,
    /// CPU seconds of both QEMU processes and the migration endpoints during the migration.
    pub cpu_seconds: f64,
    /// `ok` or `mismatch`: the guest's checksums of its memory, page cache and disk.
    pub integrity: String,
    /// False when the migration failed or did not finish within the limit (the guest then
    /// stays on the source, which verifies itself).
    pub completed: bool,
    /// Why the run did not complete (set exactly when `completed` is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// [`Self::cpu_seconds`] without the guest's vCPU threads (what migrating cost).
    pub migration_cpu_seconds: f64,
    pub wire_bytes_a_to_b: u64,
    pub wire_bytes_b_to_a: u64,
    /// Congestion control the system's sockets used.
    pub congestion: String,
    /// The pause limit the system held itself to: QEMU's `downtime-limit` is
    /// `--max-downtime`; NovaCron raises that limit (as `vm migrate` without
    /// `--max-downtime` does) when the link's own round trips and drain cannot fit in it.
    /// `null` when not completed.
    pub pause_limit_ms: Option<u64>,
    /// Failure, or what the guest reported when integrity is a mismatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct MigrationReport {
    pub link: LinkReport,
    pub guest: GuestReport,
    /// The guest's information floor (see [`crate::floor`]): what any encoder must send.
    /// `null` when it was not computed (`--no-floor`, or the RAM images could not be taken).
    pub floor_bytes: Option<u64>,
    /// The floor's parts, from the first system's run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<Floor>,
    /// Why the floor is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_note: Option<String>,
    pub results: Vec<MigrationResult>,
}

/// Errors of the migration benchmark.
#[derive(Debug, thiserror::Error)]
pub enum MigrationBenchError {
    #[error("emulator: {0}")]
    Wanem(#[from] novacron_wanem::WanemError),
    #[error("guest: {0}")]
    Guest(#[from] testing::TestingError),
    #[error("QEMU: {0}")]
    Qemu(#[from] novacron_qemu::QemuError),
    #[error("{system}: {message}")]
    Run { system: String, message: String },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("interrupted")]
    Interrupted,
}

type Result<T, E = MigrationBenchError> = std::result::Result<T, E>;

fn run_err(system: &str, m: impl std::fmt::Display) -> MigrationBenchError {
    MigrationBenchError::Run {
        system: system.to_string(),
        message: m.to_string(),
    }
}

/// Kills every QEMU it launched and removes the scratch directory when dropped: on success,
/// on error, on panic and on Ctrl-C (the CLI sets [`MigrationBenchConfig::stop`] and waits).
struct Cleanup {
    pids: std::sync::Mutex<Vec<u32>>,
    dir: PathBuf,
}

impl Cleanup {
    fn add(&self, pid: u32) {
        self.pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pid);
    }

    /// SIGKILL to every QEMU, then one reap bounded to 5 s in all (so its files can be removed):
    /// this runs in `Drop`, also while a panic unwinds, and must not wait without a bound.
    fn kill_all(&self) {
        let pids = std::mem::take(&mut *self.pids.lock().unwrap_or_else(|p| p.into_inner()));
        // Pids without a process (stopped and reaped through their handle) are skipped.
        let pids: Vec<u32> = pids
            .into_iter()
            .filter(|&p| Path::new(&format!("/proc/{p}")).exists())
            .collect();
        novacron_qemu::process::kill_and_reap(&pids, Duration::from_secs(5));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.kill_all();
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "removing the scratch directory");
        }
    }
}

/// CPU seconds a process used so far (all its threads, also exited ones), and those of its
/// threads whose name starts with "CPU " (QEMU's vCPU threads with `debug-threads=on`).
fn process_cpu(pid: u32) -> (f64, f64) {
    let tick = {
        // SAFETY: sysconf(3) with a valid name.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 { t as f64 } else { 100.0 }
    };
    let ticks = |stat: &str| -> f64 {
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return 0.0;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state is field 3; utime and stime are fields 14 and 15.
        let get = |i: usize| {
            f.get(i - 3)
                .and_then(|x| x.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (get(14) + get(15)) / tick
    };
    let total = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| ticks(&s))
        .unwrap_or(0.0);
    let mut vcpu = 0.0;
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.starts_with("CPU ") {
                vcpu += std::fs::read_to_string(t.path().join("stat"))
                    .map(|s| ticks(&s))
                    .unwrap_or(0.0);
            }
        }
    }
    (total, vcpu)
}

const ALLOWED_CC: &str = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";

/// A namespace other than the host's may only default to an algorithm the host allows
/// (`net.ipv4.tcp_allowed_congestion_control`, e.g. "reno bbr" on these machines). Adds `cc` to
/// that list for the run and puts the host's list back when dropped.
struct AllowedCc {
    original: Option<String>,
}

impl AllowedCc {
    fn ensure(cc: &str) -> Result<AllowedCc> {
        let now = std::fs::read_to_string(ALLOWED_CC)?;
        let now = now.trim().to_string();
        if now.split_whitespace().any(|x| x == cc) {
            return Ok(AllowedCc { original: None });
        }
        std::fs::write(ALLOWED_CC, format!("{now} {cc}"))?;
        tracing::info!(cc, host_list = %now, "allowing the baselines' congestion control in the sites for this run");
        Ok(AllowedCc {
            original: Some(now),
        })
    }
}

impl Drop for AllowedCc {
    fn drop(&mut self) {
        if let Some(o) = &self.original
            && let Err(e) = std::fs::write(ALLOWED_CC, o)
        {
            tracing::warn!(error = %e, "restoring {ALLOWED_CC}");
        }
    }
}

/// Sets the default TCP congestion control of a site's namespace.
fn set_site_cc(site: &Site, cc: &str) -> Result<()> {
    let out = site
        .command("sysctl")
        .args(["-q", "-w", &format!("net.ipv4.tcp_congestion_control={cc}")])
        .output()?;
    if !out.status.success() {
        return Err(MigrationBenchError::Config(format!(
            "cannot set congestion control {cc} in {}: {}",
            site.netns,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A raw base image: 3/8 incompressible, 3/8 text-like, 1/4 zeros (like an OS image with
/// binaries, text files and free space).
fn write_base_image(path: &Path, mib: u64) -> Result<()> {
    let len = (mib << 20) as usize;
    let mut data = vec![0u8; len];
    let third = len * 3 / 8;
    novacron_migrate::util::fill_pseudo_random(&mut data[..third], 77);
    let words: &[&[u8]] = &[
        b"the ",
        b"server ",
        b"request ",
        b"config ",
        b"value=",
        b"1024 ",
        b"error ",
        b"\n",
        b"usr/lib/",
        b"debian ",
        b"package ",
        b"version ",
        b"2.36-9 ",
        b"kernel ",
        b"module ",
        b"# comment ",
        b"return ",
        b"function ",
        b"{ ",
        b"} ",
    ];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut i = third;
    while i < 2 * third {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = words[(x % words.len() as u64) as usize];
        let n = w.len().min(2 * third - i);
        data[i..i + n].copy_from_slice(&w[..n]);
        i += n;
    }
    // Written back now, as the agent's image cache does: QEMU drops a backing file's pages
    // when the destination resumes, and dirty ones would be written inside the pause.
    let mut f = std::fs::File::create(path)?;
    std::io::Write::write_all(&mut f, &data)?;
    f.sync_data()?;
    Ok(())
}

/// XBZRLE cache of the `qemu-xbzrle` baseline: a quarter of the guest's RAM, rounded down to
/// a power of two. QEMU 7.2 refuses any other size (`migrate-set-parameters`: "expects a power
/// of two no less than the target page size"); a quarter of a 768 MiB guest (192 MiB) made the
/// baseline end before it sent a byte.
pub fn xbzrle_cache_bytes(memory_mib: u64) -> u64 {
    let quarter = ((memory_mib << 20) / 4).max(4096);
    1u64 << (63 - quarter.leading_zeros())
}

/// Runs the benchmark: builds the guest, sets up the link, migrates a fresh guest with each
/// system in turn, tears everything down.
pub fn run(cfg: &MigrationBenchConfig) -> Result<MigrationReport> {
    let systems: Vec<String> = if cfg.systems.is_empty() {
        SYSTEMS.iter().map(|s| s.to_string()).collect()
    } else {
        cfg.systems.clone()
    };
    for s in &systems {
        if !SYSTEMS.contains(&s.as_str()) {
            return Err(MigrationBenchError::Config(format!(
                "unknown system {s:?}: use {}",
                SYSTEMS.join(", ")
            )));
        }
    }
    if !["cubic", "bbr"].contains(&cfg.cc.as_str()) {
        return Err(MigrationBenchError::Config(format!(
            "--cc {:?}: use cubic or bbr",
            cfg.cc
        )));
    }
    testing::check_workload(&cfg.workload)
        .map_err(|e| MigrationBenchError::Config(format!("--{e}")))?;
    if cfg.memory_mib < 64 {
        return Err(MigrationBenchError::Config(
            "--memory: at least 64 MiB".into(),
        ));
    }
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(MigrationBenchError::Config(
            "needs root (network namespaces, TUN devices)".into(),
        ));
    }
    let _ = std::fs::remove_dir_all(&cfg.work_dir);
    std::fs::create_dir_all(&cfg.work_dir)?;
    let cleanup = Cleanup {
        pids: Default::default(),
        dir: cfg.work_dir.clone(),
    };
    let ctl = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    // The guest: same image, contents and workload for every system.
    let disk_mib = (cfg.memory_mib / 2).max(64);
    let contents = WorkloadConfig::scaled(
        cfg.memory_mib,
        disk_mib,
        &guest_workload(&cfg.workload, cfg.rate_bps),
    );
    let build_dir = cfg.build_dir.clone();
    let bin = testing::build_workload_binary(&build_dir)?;
    let tiny = ctl.block_on(testing::build_guest(
        &cfg.work_dir.join("img"),
        &bin,
        &contents,
    ))?;
    let base = cfg.work_dir.join("base.raw");
    write_base_image(&base, disk_mib)?;

    let _allowed_cc = AllowedCc::ensure(&cfg.cc)?;
    let _ = novacron_wanem::delete_sites(&cfg.netns_prefix);
    let link = LinkParams::symmetric(cfg.rate_bps, cfg.rtt, cfg.loss).with_queue(cfg.queue);
    let wan = Wanem::up(WanemConfig::new(&cfg.netns_prefix, link))?;
    let mut qemu_version = String::new();
    let mut results = Vec::new();
    let mut floor_outcome = None;
    for (i, system) in systems.iter().enumerate() {
        if cfg.stop.load(Ordering::Relaxed) {
            return Err(MigrationBenchError::Interrupted);
        }
        let run = SystemRun {
            cfg,
            system,
            wan: &wan,
            ctl: &ctl,
            cleanup: &cleanup,
            tiny: &tiny,
            base: &base,
            dir: cfg.work_dir.join(format!("s{i}")),
            port: 4400 + i as u16,
            floor: cfg.floor && i == 0,
        };
        let (r, version, f) = run.run()?;
        if f.is_some() {
            floor_outcome = f;
        }
        tracing::info!(
            system = %r.system,
            total_seconds = r.total_seconds,
            downtime_ms = ?r.downtime_ms,
            guest_gap_ms = r.guest_gap_ms,
            wire_bytes = r.wire_bytes,
            integrity = %r.integrity,
            "migration run"
        );
        qemu_version = version;
        results.push(r);
    }
    wan.down()?;
    drop(ctl);
    let (floor_bytes, floor, floor_note) = match floor_outcome {
        Some(Ok(f)) => (Some(f.bytes), Some(f), None),
        Some(Err(e)) => (None, None, Some(e)),
        None => (None, None, Some("not computed (--no-floor)".into())),
    };
    Ok(MigrationReport {
        floor_bytes,
        floor,
        floor_note,
        link: LinkReport {
            rate_bps: cfg.rate_bps,
            rtt_ms: cfg.rtt.as_secs_f64() * 1000.0,
            loss: cfg.loss,
            baseline_cc: cfg.cc.clone(),
        },
        guest: GuestReport {
            accel: "tcg (the machine's /dev/kvm is nested and unusable)".into(),
            qemu_version,
            memory_mib: cfg.memory_mib,
            ram_bytes: tcg_safe_ram_bytes(cfg.memory_mib),
            ram_note: "RAM is 8 KiB more than --memory: QEMU before 9.0 loses guest writes during \
                       TCG live migration when RAM is a multiple of 256 KiB (fixed by QEMU commit \
                       03bfc2188f)"
                .into(),
            workload: cfg.workload.clone(),
            disk_mib,
            disk: "qcow2 overlay on a raw base image, shared: both QEMUs open the same overlay \
                   (no disk bytes cross the link for any system); the novacron destination holds \
                   the raw base image"
                .into(),
            heartbeat_interval_us: 1000,
            max_downtime_ms: cfg.max_downtime.as_millis() as u64,
            contents,
        },
        results,
    })
}

/// One system's migration of one fresh guest.
struct SystemRun<'a> {
    cfg: &'a MigrationBenchConfig,
    system: &'a str,
    wan: &'a Wanem,
    ctl: &'a tokio::runtime::Runtime,
    cleanup: &'a Cleanup,
    tiny: &'a TinyImage,
    base: &'a Path,
    dir: PathBuf,
    port: u16,
    /// Take the RAM images of the floor (before the migration and at its end) and compute it.
    floor: bool,
}

/// The floor of one run, or why it could not be computed.
type FloorOutcome = std::result::Result<Floor, String>;

/// The workload the guest runs: `bursty` without a rate swings around the link rate (twice
/// it for 2 s, a fifth of it for 2 s).
pub fn guest_workload(workload: &str, rate_bps: u64) -> String {
    if workload == "bursty" {
        format!("bursty:{}", (rate_bps / 8 * 2 / 4096).max(1))
    } else {
        workload.to_string()
    }
}

/// Guest-physical bytes of RAM that `pmemsave` from address 0 covers: all of it on a q35
/// machine with less than 2.75 GiB (above that, QEMU puts part of it above 4 GiB).
fn contiguous_ram_bytes(ram_bytes: u64) -> Option<u64> {
    (ram_bytes < 0xb000_0000).then_some(ram_bytes)
}

/// Saves the guest's RAM into `path` (QMP `pmemsave`, from guest-physical address 0).
fn save_ram(
    ctl: &tokio::runtime::Runtime,
    vm: &RunningVm,
    ram_bytes: u64,
    path: &Path,
) -> std::result::Result<(), String> {
    let size = contiguous_ram_bytes(ram_bytes)
        .ok_or_else(|| format!("a guest with {ram_bytes} bytes of RAM is not one range"))?;
    ctl.block_on(vm.qmp().execute_with_timeout(
        "pmemsave",
        Some(json!({"val": 0, "size": size, "filename": path})),
        Duration::from_secs(300),
    ))
    .map(|_| ())
    .map_err(|e| format!("pmemsave to {}: {e}", path.display()))
}

/// What a migration itself measured (before verification).
struct Moved {
    completed: bool,
    /// QEMU's figure on the source.
    source_downtime_ms: Option<f64>,
    /// The source QEMU's STOP and the destination QEMU's RESUME, µs since the Unix epoch.
    stop_unix_micros: Option<i64>,
    resume_unix_micros: Option<i64>,
    started: Instant,
    /// Guest running at the destination (or the migration given up).
    ended: Instant,
    endpoint_cpu: f64,
    congestion: String,
    note: Option<String>,
    /// The pause limit the system held itself to, ms; `None` when it did not complete.
    pause_limit_ms: Option<u64>,
}

impl SystemRun<'_> {
    fn spec(&self, overlay: &Path, hb: &Path, incoming: bool) -> VmSpec {
        let extra_args = testing::heartbeat_args(hb);
        VmSpec {
            name: format!("bench-{}", self.system),
            uuid: "6f0c1f1e-8a8e-4f0e-9c55-2d2b8f3f0a02".into(),
            cpus: 1,
            memory_bytes: tcg_safe_ram_bytes(self.cfg.memory_mib),
            accel: Accel::Tcg,
            machine: Some("pc-q35-7.2".into()),
            boot: Boot::Kernel {
                kernel: self.tiny.kernel.clone(),
                initrd: Some(self.tiny.initrd.clone()),
                cmdline: self.tiny.cmdline.clone(),
            },
            disks: vec![DiskSpec {
                path: overlay.to_path_buf(),
                format: DiskFormat::Qcow2,
                read_only: false,
                // As the agent names a host-local disk's backing files.
                backing: vec![novacron_qemu::BackingFile {
                    path: self.base.to_path_buf(),
                    format: DiskFormat::Raw,
                }],
            }],
            incoming: incoming.then(|| "defer".into()),
            // NovaCron resumes the destination itself; QEMU's baselines start it on completion.
            start_paused: incoming && self.system == "novacron",
            extra_args,
            ..Default::default()
        }
    }

    /// Launches QEMU inside `site`'s namespace (the child inherits the launching thread's).
    fn launch_in(&self, site: &Site, spec: &VmSpec, dir: &Path) -> Result<RunningVm> {
        let ctl = self.ctl;
        let vm = std::thread::scope(|s| {
            s.spawn(|| -> Result<RunningVm> {
                site.enter_current_thread()?;
                Ok(ctl.block_on(novacron_qemu::launch(spec, &RunDir::new(dir)))?)
            })
            .join()
            .map_err(|_| run_err(self.system, "QEMU launcher thread panicked"))?
        })?;
        self.cleanup.add(vm.pid());
        Ok(vm)
    }

    fn run(&self) -> Result<(MigrationResult, String, Option<FloorOutcome>)> {
        let (cfg, system) = (self.cfg, self.system);
        std::fs::create_dir_all(&self.dir)?;
        let overlay = self.dir.join("disk.qcow2");
        self.ctl.block_on(novacron_qemu::create_overlay(
            self.base,
            DiskFormat::Raw,
            &overlay,
            None,
        ))?;
        let (a_dir, b_dir) = (self.dir.join("a"), self.dir.join("b"));
        let (a_hb, b_hb) = (self.dir.join("a.hb"), self.dir.join("b.hb"));
        let src = self.launch_in(
            self.wan.site_a(),
            &self.spec(&overlay, &a_hb, false),
            &a_dir,
        )?;
        let version = src
            .qmp()
            .qemu_version()
            .map(|(a, b, c)| format!("{a}.{b}.{c}"))
            .unwrap_or_default();
        let hb = Heartbeat::new();
        hb.attach("a", &a_hb)?;
        let t0 = Instant::now();
        let boot_limit = Duration::from_secs(120 + cfg.memory_mib / 2);
        let ready = hb.wait_line_unless("#READY", t0, boot_limit, &cfg.stop)?;
        tracing::info!(system, guest = %ready, secs = t0.elapsed().as_secs_f64(), "guest ready");
        let dst = self.launch_in(self.wan.site_b(), &self.spec(&overlay, &b_hb, true), &b_dir)?;
        hb.attach("b", &b_hb)?;
        std::thread::sleep(cfg.warm_up);
        let ram_bytes = tcg_safe_ram_bytes(cfg.memory_mib);
        let (ram_start, ram_end) = (self.dir.join("ram-start"), self.dir.join("ram-end"));
        let mut floor_err = None;
        if self.floor
            && let Err(e) = save_ram(self.ctl, &src, ram_bytes, &ram_start)
        {
            floor_err = Some(e);
        }

        let pids = [src.pid(), dst.pid()];
        let cpu_before: Vec<(f64, f64)> = pids.iter().map(|p| process_cpu(*p)).collect();
        let before = self.wan.stats();
        let moved = if system == "novacron" {
            self.novacron(&src, &dst)
        } else {
            self.qemu(&src, &dst)
        };
        let moved = match moved {
            Ok(m) => m,
            Err(MigrationBenchError::Interrupted) => return Err(MigrationBenchError::Interrupted),
            Err(e) => Moved {
                completed: false,
                source_downtime_ms: None,
                stop_unix_micros: None,
                resume_unix_micros: None,
                started: Instant::now(),
                ended: Instant::now(),
                endpoint_cpu: 0.0,
                congestion: String::new(),
                pause_limit_ms: None,
                note: Some(e.to_string()),
            },
        };
        let link = self.wan.stats().since(&before);
        let cpu_after: Vec<(f64, f64)> = pids.iter().map(|p| process_cpu(*p)).collect();
        let (mut cpu, mut vcpu) = (moved.endpoint_cpu, 0.0);
        for (b, a) in cpu_before.iter().zip(&cpu_after) {
            cpu += a.0 - b.0;
            vcpu += a.1 - b.1;
        }
        // Let the guest run at its new home, then look at the whole window.
        std::thread::sleep(Duration::from_secs(2));
        let (gap, beats) = hb.max_gap(moved.started, Instant::now());
        // The real pause, on this host's one clock.
        let downtime_ms = match (
            moved.completed,
            moved.stop_unix_micros,
            moved.resume_unix_micros,
        ) {
            (true, Some(stop), Some(resume)) => Some((resume - stop) as f64 / 1000.0),
            _ => None,
        };
        // The guest-visible pause around the switch-over: wall-clock event times mapped to the
        // heartbeat's monotonic clock.
        let guest_pause = match (moved.stop_unix_micros, moved.resume_unix_micros) {
            (Some(stop), Some(resume)) if moved.completed => {
                let (now_wall, now) = (novacron_migrate::pause::now_unix_micros(), Instant::now());
                let at = |us: i64| {
                    now.checked_sub(Duration::from_micros(
                        now_wall.saturating_sub(us).max(0) as u64
                    ))
                };
                match (at(stop - 1_000_000), at(resume + 1_000_000)) {
                    (Some(from), Some(to)) => hb.max_gap(from, to).0,
                    _ => gap,
                }
            }
            _ => gap,
        };
        tracing::info!(
            system,
            beats,
            gap_ms = gap.as_millis() as u64,
            guest_pause_ms = guest_pause.as_millis() as u64,
            downtime_ms,
            "heartbeat"
        );
        // The RAM at the end, for the floor, from where the guest runs now.
        let (here, side) = if moved.completed {
            (&dst, "b")
        } else {
            (&src, "a")
        };
        if self.floor
            && floor_err.is_none()
            && let Err(e) = save_ram(self.ctl, here, ram_bytes, &ram_end)
        {
            floor_err = Some(e);
        }
        // The guest verifies itself where it runs now.
        let t1 = Instant::now();
        hb.send(side, b"V")?;
        let verify_limit = Duration::from_secs(120 + cfg.memory_mib / 2);
        let (integrity, mut note) = match hb.wait_line_unless("#AFTER", t1, verify_limit, &cfg.stop)
        {
            Ok(after) => match testing::integrity(&ready, &after) {
                Ok(()) => ("ok".to_string(), None),
                Err(e) => ("mismatch".to_string(), Some(format!("{e} ({after})"))),
            },
            Err(e) if cfg.stop.load(Ordering::Relaxed) => {
                tracing::warn!(error = %e, "interrupted");
                return Err(MigrationBenchError::Interrupted);
            }
            Err(e) => ("mismatch".to_string(), Some(e.to_string())),
        };
        // Every run that did not complete says why, in the report itself.
        let reason = (!moved.completed).then(|| {
            moved
                .note
                .clone()
                .unwrap_or_else(|| "the migration did not complete (no reason recorded)".into())
        });
        if let Some(n) = moved.note {
            note = Some(match note {
                Some(m) => format!("{n}; {m}"),
                None => n,
            });
        }
        for vm in [&src, &dst] {
            let _ = self.ctl.block_on(vm.kill());
        }
        self.cleanup.kill_all();
        // The floor, with both QEMUs gone (it keeps both cores busy).
        let floor = self.floor.then(|| match floor_err {
            Some(e) => Err(e),
            None => {
                floor::compute(&ram_start, &ram_end, &cfg.stop).map_err(|e| format!("floor: {e}"))
            }
        });
        if cfg.stop.load(Ordering::Relaxed) {
            let _ = std::fs::remove_dir_all(&self.dir);
            return Err(MigrationBenchError::Interrupted);
        }
        if let Some(f) = &floor {
            tracing::info!(system, floor = ?f, "information floor");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok((
            MigrationResult {
                system: system.to_string(),
                total_seconds: moved.ended.duration_since(moved.started).as_secs_f64(),
                downtime_ms,
                source_downtime_ms: moved.source_downtime_ms,
                guest_pause_ms: guest_pause.as_secs_f64() * 1000.0,
                guest_gap_ms: gap.as_secs_f64() * 1000.0,
                wire_bytes: link.a_to_b.bytes + link.b_to_a.bytes,
                cpu_seconds: cpu,
                integrity,
                completed: moved.completed,
                reason,
                migration_cpu_seconds: cpu - vcpu,
                wire_bytes_a_to_b: link.a_to_b.bytes,
                wire_bytes_b_to_a: link.b_to_a.bytes,
                congestion: moved.congestion,
                pause_limit_ms: moved.pause_limit_ms,
                note,
            },
            version,
            floor,
        ))
    }

    /// A QEMU baseline: QEMU's own TCP migration between the sites.
    fn qemu(&self, src: &RunningVm, dst: &RunningVm) -> Result<Moved> {
        let (cfg, system) = (self.cfg, self.system);
        for site in [self.wan.site_a(), self.wan.site_b()] {
            set_site_cc(site, &cfg.cc)?;
        }
        let (caps, mut params): (Vec<&str>, Value) = match system {
            "qemu-default" => (vec![], json!({})),
            "qemu-multifd-zstd" => (
                vec!["multifd", "auto-converge"],
                json!({"multifd-channels": 8, "multifd-compression": "zstd"}),
            ),
            "qemu-xbzrle" => (
                vec!["xbzrle", "auto-converge"],
                json!({"xbzrle-cache-size": xbzrle_cache_bytes(cfg.memory_mib)}),
            ),
            other => return Err(run_err(other, "not a QEMU baseline")),
        };
        let src_params = {
            let mut p = params.clone();
            if let Some(m) = p.as_object_mut() {
                m.insert(
                    "downtime-limit".into(),
                    json!(cfg.max_downtime.as_millis() as u64),
                );
                // Never the bottleneck: the link is.
                m.insert(
                    "max-bandwidth".into(),
                    json!((cfg.rate_bps / 8 * 4).max(32 << 20)),
                );
            }
            p
        };
        if let Some(m) = params.as_object_mut() {
            // Only multifd's settings matter on the destination.
            m.retain(|k, _| k.starts_with("multifd"));
        }
        let uri = format!("tcp:{}:{}", self.wan.site_b().addr, self.port);
        let q = |e: novacron_qemu::QemuError| run_err(system, e);
        let caps_arg = |side_caps: &[&str]| json!({"capabilities": side_caps.iter().map(|c| json!({"capability": c, "state": true})).collect::<Vec<_>>()});
        let dst_caps: Vec<&str> = caps
            .iter()
            .copied()
            .filter(|c| *c != "auto-converge")
            .collect();
        let mut events = dst.qmp().subscribe();
        let mut src_events = src.qmp().subscribe();
        self.ctl.block_on(async {
            if !dst_caps.is_empty() {
                dst.qmp()
                    .execute("migrate-set-capabilities", Some(caps_arg(&dst_caps)))
                    .await
                    .map_err(q)?;
            }
            if params.as_object().is_some_and(|m| !m.is_empty()) {
                dst.qmp()
                    .execute("migrate-set-parameters", Some(params.clone()))
                    .await
                    .map_err(q)?;
            }
            dst.qmp()
                .execute("migrate-incoming", Some(json!({"uri": uri})))
                .await
                .map_err(q)?;
            if !caps.is_empty() {
                src.qmp()
                    .execute("migrate-set-capabilities", Some(caps_arg(&caps)))
                    .await
                    .map_err(q)?;
            }
            src.qmp()
                .execute("migrate-set-parameters", Some(src_params))
                .await
                .map_err(q)?;
            Ok::<_, MigrationBenchError>(())
        })?;
        let started = Instant::now();
        let limit = started + cfg.limit;
        self.ctl.block_on(async {
            src.qmp()
                .execute("migrate", Some(json!({"uri": uri})))
                .await
                .map_err(q)?;
            let mut downtime = None;
            let mut failure = None;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let info = src.qmp().execute("query-migrate", None).await.map_err(q)?;
                let status = info.get("status").and_then(Value::as_str).unwrap_or("");
                match status {
                    "completed" => {
                        downtime = info.get("downtime").and_then(Value::as_f64);
                        break;
                    }
                    "failed" | "cancelled" => {
                        failure = Some(format!(
                            "QEMU migration {status}: {}",
                            info.get("error-desc")
                                .and_then(Value::as_str)
                                .unwrap_or("QEMU gave no error-desc")
                        ));
                        break;
                    }
                    _ => {}
                }
                if cfg.stop.load(Ordering::Relaxed) || Instant::now() > limit {
                    let _ = src.qmp().execute("migrate_cancel", None).await;
                    if cfg.stop.load(Ordering::Relaxed) {
                        return Err(MigrationBenchError::Interrupted);
                    }
                    failure = Some(format!(
                        "not converged within {} s (QEMU status {status}, throttle {} %)",
                        cfg.limit.as_secs(),
                        info.get("cpu-throttle-percentage")
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                    ));
                    // Let the cancel take effect so the source keeps the guest.
                    for _ in 0..100 {
                        let s = src.qmp().query_status().await.map_err(q)?;
                        if s.running {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    break;
                }
            }
            let mut stop_unix_micros = None;
            while let Ok(e) = src_events.try_recv() {
                if e.event == "STOP" && stop_unix_micros.is_none() {
                    stop_unix_micros = Some(e.timestamp_micros);
                }
            }
            if let Some(f) = failure {
                return Ok(Moved {
                    completed: false,
                    source_downtime_ms: None,
                    stop_unix_micros: None,
                    resume_unix_micros: None,
                    started,
                    ended: Instant::now(),
                    endpoint_cpu: 0.0,
                    congestion: cfg.cc.clone(),
                    pause_limit_ms: None,
                    note: Some(f),
                });
            }
            // The destination starts by itself once it has loaded everything.
            let resumed = tokio::time::timeout(Duration::from_secs(60), async {
                loop {
                    match events.recv().await {
                        Ok(e) if e.event == "RESUME" => {
                            return Ok((Instant::now(), e.timestamp_micros));
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(e) => return Err(run_err(system, e)),
                    }
                }
            })
            .await
            .map_err(|_| run_err(system, "destination did not resume within 60 s"))??;
            let (resumed, resume_unix_micros) = resumed;
            Ok(Moved {
                completed: true,
                source_downtime_ms: downtime,
                stop_unix_micros,
                resume_unix_micros: Some(resume_unix_micros),
                started,
                ended: resumed,
                endpoint_cpu: 0.0,
                congestion: cfg.cc.clone(),
                pause_limit_ms: Some(cfg.max_downtime.as_millis() as u64),
                note: None,
            })
        })
    }

    /// NovaCron: crates/migrate over a DWCP session whose ends live in site-a and site-b.
    fn novacron(&self, src: &RunningVm, dst: &RunningVm) -> Result<Moved> {
        let (cfg, system) = (self.cfg, self.system);
        let ca = novacron_dwcp::testing::TestCa::new("bench migration")
            .map_err(|e| run_err(system, e))?;
        let id_a = ca.issue("site-a").map_err(|e| run_err(system, e))?;
        let id_b = ca.issue("site-b").map_err(|e| run_err(system, e))?;
        let opts = SessionOptions {
            server_name: "site-b".into(),
            ..SessionOptions::default()
        };
        let cpu = Arc::new(AtomicU64::new(0));
        let rt_a = site_runtime(self.wan.site_a(), cpu.clone()).map_err(|e| run_err(system, e))?;
        let rt_b = site_runtime(self.wan.site_b(), cpu.clone()).map_err(|e| run_err(system, e))?;
        let addr = std::net::SocketAddr::from((self.wan.site_b().addr, self.port));
        let listener = rt_b
            .block_on(rt_b.spawn({
                let (id_b, opts) = (id_b.clone(), opts.clone());
                async move { Listener::bind(addr, &id_b, opts).await }
            }))
            .map_err(|e| run_err(system, e))?
            .map_err(|e| run_err(system, e))?;
        let cancel = CancellationToken::new();
        let dparams = DestinationParams {
            work_dir: self.dir.join("wd-b"),
            base_images: vec![self.base.to_path_buf()],
            ..Default::default()
        };
        let sparams = SourceParams {
            work_dir: self.dir.join("wd-a"),
            max_downtime: cfg.max_downtime,
            // As `vm migrate` without --max-downtime: on a link that cannot pause the guest
            // for that little, the limit is raised (and the report's pause shows by how much).
            max_downtime_raisable: true,
            deadline: Some(cfg.limit),
            auto_converge: true,
            // As `vm migrate` with its default `--mode auto`: pre-copy, throttle, then
            // post-copy when the model finds the pause limit cannot be met before the
            // deadline. There is no control plane here to record the commit before the switch.
            postcopy: PostcopyUse::WhenStuck,
            commit_before_postcopy: Some(Hook::accept()),
            ..Default::default()
        };
        let started = Instant::now();
        let (dqmp, dcancel) = (dst.qmp().clone(), cancel.clone());
        let dtask = rt_b.spawn(async move {
            let session = listener.accept().await.map_err(|e| e.to_string())?;
            let r = novacron_migrate::destination(&dqmp, &session, &dparams, &dcancel)
                .await
                .map_err(|e| e.to_string());
            Ok::<_, String>((session, r))
        });
        let (sqmp, scancel) = (src.qmp().clone(), cancel.clone());
        let stask = rt_a.spawn(async move {
            let session = novacron_dwcp::connect(addr, &id_a, opts)
                .await
                .map_err(|e| e.to_string())?;
            let (ptx, _prx) = tokio::sync::watch::channel(MigrationProgress::default());
            let r = novacron_migrate::source(&sqmp, &session, &sparams, &ptx, &scancel)
                .await
                .map_err(|e| e.to_string());
            Ok::<_, String>((session, r))
        });
        // Ctrl-C cancels the migration (the source keeps the guest).
        let stop = cfg.stop.clone();
        let watcher_cancel = cancel.clone();
        let watcher = rt_a.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            watcher_cancel.cancel();
        });
        let outcome = rt_a.block_on(async {
            let (s_session, handover) = stask
                .await
                .map_err(|e| run_err(system, e))?
                .map_err(|e| run_err(system, e))?;
            let handover = match handover {
                Ok(h) => h,
                Err(e) => {
                    cancel.cancel();
                    let _ = dtask.await;
                    return Ok((None, s_session, Some(e)));
                }
            };
            let (d_session, ready) = dtask
                .await
                .map_err(|e| run_err(system, e))?
                .map_err(|e| run_err(system, e))?;
            let ready = ready.map_err(|e| run_err(system, format!("destination: {e}")))?;
            let released = handover
                .release_destination()
                .await
                .map_err(|e| run_err(system, e))?;
            // The destination resumes and reports it while the source waits for that report.
            let (summary, resumed) =
                tokio::join!(released.wait_resumed(Duration::from_secs(30)), async {
                    if ready.wait_decision(Duration::from_secs(10)).await != Decision::Go {
                        return Err(run_err(system, "destination did not get the go"));
                    }
                    ready.resume().await.map_err(|e| run_err(system, e))?;
                    Ok(Instant::now())
                });
            let resumed = resumed?;
            tracing::info!(system, ?summary, "novacron migration summary");
            let _ = s_session.close().await;
            drop(d_session);
            Ok::<_, MigrationBenchError>((Some((summary, resumed)), s_session, None))
        });
        watcher.abort();
        let ended = Instant::now();
        let result = match outcome {
            Ok((Some((summary, resumed)), session, _)) => {
                drop(session);
                Ok(Moved {
                    completed: true,
                    source_downtime_ms: summary.qemu_downtime_ms.map(|d| d as f64),
                    stop_unix_micros: summary.stop_unix_micros,
                    resume_unix_micros: summary.resume_unix_micros,
                    started,
                    ended: resumed,
                    endpoint_cpu: 0.0,
                    congestion: "bbr (DWCP's own choice)".into(),
                    pause_limit_ms: Some(summary.max_downtime_ms),
                    // Which mode landed it: a switch to post-copy is named with its reason.
                    note: summary.postcopy_switch_ms.map(|ms| {
                        format!(
                            "post-copy after {:.1} s ({}){}",
                            ms as f64 / 1000.0,
                            summary
                                .postcopy_reason
                                .as_deref()
                                .unwrap_or("no reason recorded"),
                            summary
                                .faults
                                .as_ref()
                                .map(|f| format!(", {} page faults served", f.faults_served))
                                .unwrap_or_default()
                        )
                    }),
                })
            }
            Ok((None, session, Some(e))) => {
                drop(session);
                if cfg.stop.load(Ordering::Relaxed) {
                    Err(MigrationBenchError::Interrupted)
                } else {
                    Ok(Moved {
                        completed: false,
                        source_downtime_ms: None,
                        stop_unix_micros: None,
                        resume_unix_micros: None,
                        started,
                        ended,
                        endpoint_cpu: 0.0,
                        congestion: "bbr (DWCP's own choice)".into(),
                        pause_limit_ms: None,
                        note: Some(e),
                    })
                }
            }
            Ok(_) => Err(run_err(system, "no outcome")),
            Err(e) => Err(e),
        };
        rt_a.shutdown_timeout(Duration::from_secs(5));
        rt_b.shutdown_timeout(Duration::from_secs(5));
        let endpoint_cpu = Duration::from_nanos(cpu.load(Ordering::Relaxed)).as_secs_f64();
        result.map(|m| Moved { endpoint_cpu, ..m })
    }
}

/// Renders the report as the table printed by `novacron bench migration`.
pub fn render_table(r: &MigrationReport) -> String {
    let mut s = format!(
        "link {:.0} Mbit/s, RTT {:.0} ms, loss {:.3} %, baselines' congestion control {}\n\
         guest {} MiB (QEMU {} TCG, -m {} bytes), workload {}, shared disk\n",
        r.link.rate_bps as f64 / 1e6,
        r.link.rtt_ms,
        r.link.loss * 100.0,
        r.link.baseline_cc,
        r.guest.memory_mib,
        r.guest.qemu_version,
        r.guest.ram_bytes,
        r.guest.workload,
    );
    match (&r.floor, &r.floor_note) {
        (Some(f), _) => s.push_str(&format!(
            "floor {:.1} MB: {:.1} MB of RAM ({} distinct of {} pages) and {:.1} MB rewritten \
             ({} pages), zstd -{} --long={}\n",
            f.bytes as f64 / 1e6,
            f.ram_compressed_bytes as f64 / 1e6,
            f.distinct_pages,
            f.ram_pages,
            f.rewritten_compressed_bytes as f64 / 1e6,
            f.rewritten_pages,
            floor::LEVEL,
            floor::WINDOW_LOG,
        )),
        (None, Some(n)) => s.push_str(&format!("floor: {n}\n")),
        (None, None) => {}
    }
    s.push_str(&format!(
        "{:<18} {:>9} {:>11} {:>10} {:>11} {:>12} {:>14} {:>8} {:>9}  {}\n",
        "system",
        "total s",
        "downtime ms",
        "source ms",
        "guest pause",
        "guest gap ms",
        "wire bytes",
        "cpu s",
        "integrity",
        ""
    ));
    for x in &r.results {
        s.push_str(&format!(
            "{:<18} {:>9.1} {:>11} {:>10} {:>11.0} {:>12.0} {:>14} {:>8.1} {:>9}  {}\n",
            x.system,
            x.total_seconds,
            x.downtime_ms
                .map(|d| format!("{d:.0}"))
                .unwrap_or_else(|| "-".into()),
            x.source_downtime_ms
                .map(|d| format!("{d:.0}"))
                .unwrap_or_else(|| "-".into()),
            x.guest_pause_ms,
            x.guest_gap_ms,
            x.wire_bytes,
            x.cpu_seconds,
            x.integrity,
            match (&x.reason, &x.note) {
                (Some(r), _) => format!("not completed: {r}"),
                (None, Some(n)) => n.clone(),
                (None, None) => String::new(),
            }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn xbzrle_cache_is_a_power_of_two_near_a_quarter_of_ram() {
        assert_eq!(xbzrle_cache_bytes(1024), 256 << 20);
        assert_eq!(xbzrle_cache_bytes(768), 128 << 20);
        assert_eq!(xbzrle_cache_bytes(256), 64 << 20);
        assert_eq!(xbzrle_cache_bytes(100), 16 << 20);
    }

    /// QEMU itself takes the cache size the baseline sets for a 768 MiB guest (a quarter of it,
    /// 192 MiB, is refused), and refuses the old value: the reason the baseline ended at once.
    #[test]
    fn qemu_accepts_the_xbzrle_cache_size_of_a_768_mib_guest() {
        let dir = std::env::temp_dir().join(format!("nbm-xbz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("qmp.sock");
        let mut child = std::process::Command::new("qemu-system-x86_64")
            .args(["-nodefaults", "-display", "none", "-S", "-machine", "none"])
            .args(["-m", &format!("{}b", tcg_safe_ram_bytes(768))])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", sock.display()))
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = rt.block_on(async {
            let qmp = novacron_qemu::Qmp::connect(&sock, Duration::from_secs(20))
                .await
                .unwrap();
            qmp.execute(
                "migrate-set-capabilities",
                Some(json!({"capabilities": [{"capability": "xbzrle", "state": true}]})),
            )
            .await
            .unwrap();
            let old = qmp
                .execute(
                    "migrate-set-parameters",
                    Some(json!({"xbzrle-cache-size": (768u64 << 20) / 4})),
                )
                .await;
            let new = qmp
                .execute(
                    "migrate-set-parameters",
                    Some(json!({"xbzrle-cache-size": xbzrle_cache_bytes(768)})),
                )
                .await;
            let set = qmp.execute("query-migrate-parameters", None).await.unwrap();
            (old.map_err(|e| e.to_string()), new.map(|_| ()), set)
        });
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        let (old, new, set) = outcome;
        assert!(
            old.as_ref().is_err_and(|e| e.contains("power of two")),
            "{old:?}"
        );
        new.unwrap();
        assert_eq!(
            set.get("xbzrle-cache-size").and_then(Value::as_u64),
            Some(128 << 20)
        );
    }

    #[test]
    fn a_run_that_did_not_complete_shows_its_reason_in_the_table() {
        let r = MigrationReport {
            link: LinkReport {
                rate_bps: 100_000_000,
                rtt_ms: 50.0,
                loss: 0.001,
                baseline_cc: "cubic".into(),
            },
            guest: GuestReport {
                accel: "tcg".into(),
                qemu_version: "7.2.22".into(),
                memory_mib: 256,
                ram_bytes: tcg_safe_ram_bytes(256),
                ram_note: String::new(),
                workload: "hotset".into(),
                disk_mib: 128,
                disk: String::new(),
                heartbeat_interval_us: 1000,
                max_downtime_ms: 300,
                contents: WorkloadConfig::scaled(256, 128, "hotset"),
            },
            floor_bytes: None,
            floor: None,
            floor_note: Some("not computed (--no-floor)".into()),
            results: vec![MigrationResult {
                system: "qemu-xbzrle".into(),
                total_seconds: 0.0,
                downtime_ms: None,
                source_downtime_ms: None,
                guest_pause_ms: 1.0,
                guest_gap_ms: 1.0,
                wire_bytes: 0,
                cpu_seconds: 0.0,
                integrity: "ok".into(),
                completed: false,
                reason: Some("QEMU migration failed: boom".into()),
                migration_cpu_seconds: 0.0,
                wire_bytes_a_to_b: 0,
                wire_bytes_b_to_a: 0,
                congestion: "cubic".into(),
                pause_limit_ms: Some(300),
                note: None,
            }],
        };
        let t = render_table(&r);
        assert!(
            t.contains("not completed: QEMU migration failed: boom"),
            "{t}"
        );
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["results"][0]["completed"], json!(false));
        assert_eq!(
            j["results"][0]["reason"],
            json!("QEMU migration failed: boom")
        );
    }
}
