//! Usage sampling: every [`SAMPLE_INTERVAL_SECONDS`] the agent reads the figures of its node
//! (/proc/stat, /proc/meminfo, the data directory's file system) and of each running VM
//! (its QEMU process in /proc, QMP `query-blockstats` and `query-balloon`, its taps in
//! /sys/class/net), and leaves the sample for the heartbeat to carry to the control plane.
//!
//! Sampling runs on the agent's runtime, not the heartbeat's thread: a slow QMP answer delays
//! a sample, never a beat. Only the newest sample waits for the heartbeat; one the heartbeat
//! could not deliver is replaced by the next.
//!
//! A VM's taps are found from its QEMU process, not from what the agent remembers: each tap
//! is an open `/dev/net/tun` descriptor whose fdinfo names the device (`iff:`), so a VM
//! adopted after an agent restart is counted the same way.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::stats::{
    NicCounters, NodeSample, NodeUsage, SAMPLE_INTERVAL_SECONDS, VmSample, VmUsage,
};
use novacron_qemu::RunningVm;
use serde_json::Value;
use tokio::sync::watch;

use crate::state::Shared;

/// How long one QMP query of a sample may take before the figure is left out.
const QMP_TIMEOUT: Duration = Duration::from_secs(2);

/// A VM to sample: who it is and its running QEMU.
pub struct Target {
    pub project: String,
    pub name: String,
    pub uuid: String,
    pub vm: Arc<RunningVm>,
}

/// Samples the node and its VMs until `stop`, leaving each sample in `shared.latest_sample`.
pub async fn sample_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(SAMPLE_INTERVAL_SECONDS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let sample = sample(&shared).await;
        *shared
            .latest_sample
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(sample);
    }
}

async fn sample(shared: &Shared) -> NodeSample {
    let targets = shared.sampling_targets();
    let mut vms = Vec::with_capacity(targets.len());
    for t in targets {
        if t.vm.has_exited() {
            continue;
        }
        vms.push(VmSample {
            usage: vm_usage(&t.vm).await,
            project: t.project,
            name: t.name,
            uuid: t.uuid,
        });
    }
    let data_dir = shared.data_dir.clone();
    let usage = tokio::task::spawn_blocking(move || node_usage(&data_dir))
        .await
        .unwrap_or_default();
    NodeSample {
        at_ms: unix_ms(),
        usage,
        vms,
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One VM's figures; a figure that cannot be read is left at zero (or absent), with a debug
/// log, so one failing source does not hide the others.
async fn vm_usage(vm: &RunningVm) -> VmUsage {
    let pid = vm.pid();
    let mut usage = VmUsage::default();
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => match parse_process_stat(&text, clock_ticks_per_second(), page_size()) {
            Some((cpu, rss)) => {
                usage.cpu_seconds = cpu;
                usage.rss_bytes = rss;
            }
            None => tracing::debug!(pid, "unreadable /proc/<pid>/stat"),
        },
        Err(e) => tracing::debug!(pid, error = %e, "cannot read the QEMU process's stat"),
    }
    match vm
        .qmp()
        .execute_with_timeout("query-blockstats", None, QMP_TIMEOUT)
        .await
    {
        Ok(v) => {
            let d = sum_blockstats(&v);
            usage.disk_read_bytes = d.read_bytes;
            usage.disk_write_bytes = d.write_bytes;
            usage.disk_read_ops = d.read_ops;
            usage.disk_write_ops = d.write_ops;
        }
        Err(e) => tracing::debug!(pid, error = %e, "query-blockstats failed"),
    }
    // Fails with "no balloon device" on VMs without one: then there is nothing to report.
    if let Ok(v) = vm
        .qmp()
        .execute_with_timeout("query-balloon", None, QMP_TIMEOUT)
        .await
    {
        usage.balloon_actual_bytes = v.get("actual").and_then(Value::as_u64);
    }
    usage.nic = nic_counters(pid);
    usage
}

/// CPU seconds (user + system, all threads) and resident bytes from `/proc/<pid>/stat`.
/// The command name (field 2) may hold spaces and parentheses, so fields are counted from
/// its last `)`.
pub fn parse_process_stat(text: &str, ticks_per_second: u64, page_size: u64) -> Option<(f64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime 15, rss (pages) 24.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss_pages: i64 = fields.get(21)?.parse().ok()?;
    let cpu = (utime + stime) as f64 / ticks_per_second.max(1) as f64;
    Some((cpu, rss_pages.max(0) as u64 * page_size))
}

/// Disk counters summed over every device of a `query-blockstats` answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DiskCounters {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

pub fn sum_blockstats(answer: &Value) -> DiskCounters {
    let mut d = DiskCounters::default();
    for dev in answer.as_array().into_iter().flatten() {
        let s = &dev["stats"];
        let n = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
        d.read_bytes += n("rd_bytes");
        d.write_bytes += n("wr_bytes");
        d.read_ops += n("rd_operations");
        d.write_ops += n("wr_operations");
    }
    d
}

/// The tap devices QEMU process `pid` holds open, from the `iff:` line of the fdinfo of its
/// `/dev/net/tun` descriptors.
fn taps_of(pid: u32) -> Vec<String> {
    let mut taps = vec![];
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return taps;
    };
    for fd in fds.flatten() {
        let is_tun = std::fs::read_link(fd.path()).is_ok_and(|t| t == Path::new("/dev/net/tun"));
        if !is_tun {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        if let Some(name) = tap_name_from_fdinfo(&info) {
            taps.push(name);
        }
    }
    taps.sort();
    taps.dedup();
    taps
}

pub fn tap_name_from_fdinfo(fdinfo: &str) -> Option<String> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("iff:"))
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

/// The VM's traffic over its taps, from the guest's side: what the tap transmits the guest
/// receives. `None` when it has no tap.
fn nic_counters(pid: u32) -> Option<NicCounters> {
    let taps = taps_of(pid);
    if taps.is_empty() {
        return None;
    }
    let mut c = NicCounters::default();
    for tap in taps {
        let read = |f: &str| -> u64 {
            std::fs::read_to_string(format!("/sys/class/net/{tap}/statistics/{f}"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        c.rx_bytes += read("tx_bytes");
        c.tx_bytes += read("rx_bytes");
        c.rx_packets += read("tx_packets");
        c.tx_packets += read("rx_packets");
    }
    Some(c)
}

/// The node's own figures.
fn node_usage(data_dir: &Path) -> NodeUsage {
    let mut u = NodeUsage {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        ..NodeUsage::default()
    };
    if let Ok(text) = std::fs::read_to_string("/proc/stat")
        && let Some(busy) = parse_cpu_busy_seconds(&text, clock_ticks_per_second())
    {
        u.cpu_busy_seconds = busy;
    }
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        let (total, available) = parse_meminfo(&text);
        u.memory_total_bytes = total;
        u.memory_available_bytes = available;
    }
    if let Some((total, free)) = file_system_space(data_dir) {
        u.disk_total_bytes = total;
        u.disk_free_bytes = free;
    }
    u
}

/// Busy CPU time of the host from the `cpu` line of /proc/stat: user, nice, system, irq,
/// softirq and steal (guest time is already inside user and nice).
pub fn parse_cpu_busy_seconds(proc_stat: &str, ticks_per_second: u64) -> Option<f64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    Some(busy as f64 / ticks_per_second.max(1) as f64)
}

/// (MemTotal, MemAvailable) in bytes.
pub fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// (total, free for unprivileged use) of the file system holding `path`.
fn file_system_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes the struct we pass; zeroed is a valid statvfs.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `s` a valid, exclusively borrowed struct.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let unit = s.f_frsize;
    Some((
        s.f_blocks.saturating_mul(unit),
        s.f_bavail.saturating_mul(unit),
    ))
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stat_fields_are_counted_from_the_last_parenthesis() {
        // comm "qemu (vm) 1" holds spaces and parentheses; utime 250, stime 50, rss 1000.
        let stat = "4242 (qemu (vm) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 123 456789 1000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_process_stat(stat, 100, 4096),
            Some((3.0, 1000 * 4096))
        );
        assert_eq!(parse_process_stat("4242 (qemu) S 1", 100, 4096), None);
    }

    #[test]
    fn the_own_process_has_a_readable_stat() {
        let text = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (_, rss) = parse_process_stat(&text, clock_ticks_per_second(), page_size()).unwrap();
        assert!(rss > 0);
    }

    #[test]
    fn blockstats_are_summed_over_devices() {
        let answer = serde_json::json!([
            {"device": "", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
             "stats": {"rd_bytes": 1000, "wr_bytes": 4096, "rd_operations": 3, "wr_operations": 1}},
            {"device": "", "qdev": "/machine/peripheral/seed-disk/virtio-backend",
             "stats": {"rd_bytes": 24, "wr_bytes": 0, "rd_operations": 1, "wr_operations": 0}}
        ]);
        assert_eq!(
            sum_blockstats(&answer),
            DiskCounters {
                read_bytes: 1024,
                write_bytes: 4096,
                read_ops: 4,
                write_ops: 1
            }
        );
        assert_eq!(
            sum_blockstats(&serde_json::json!({})),
            DiskCounters::default()
        );
    }

    #[test]
    fn tap_names_come_from_the_iff_line() {
        let info = "pos:\t0\nflags:\t02004002\nmnt_id:\t25\nino:\t1071\niff:\tnctap3\n";
        assert_eq!(tap_name_from_fdinfo(info).as_deref(), Some("nctap3"));
        assert_eq!(tap_name_from_fdinfo("pos:\t0\n"), None);
        assert_eq!(tap_name_from_fdinfo("iff:\t../x\n"), None);
    }

    #[test]
    fn host_cpu_and_memory_parse() {
        let stat = "cpu  100 20 30 1000 50 5 5 10 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(parse_cpu_busy_seconds(stat, 100), Some(1.7));
        let meminfo = "MemTotal:       16384 kB\nMemFree:  100 kB\nMemAvailable:    8192 kB\n";
        assert_eq!(parse_meminfo(meminfo), (16384 * 1024, 8192 * 1024));
        let real = node_usage(Path::new("/"));
        assert!(real.memory_total_bytes > 0 && real.disk_total_bytes > 0 && real.cpus > 0);
        assert!(real.cpu_busy_seconds > 0.0);
    }
}
