//! Self-fencing. A node that loses contact with the control plane for longer than its lease
//! must stop its HA VMs before the control plane restarts them elsewhere, or two copies
//! would write to one shared disk. The agent itself may be dead (killed, hung), so the job
//! belongs to a small watchdog process of its own that outlives the agent, like a hardware
//! watchdog: the agent touches `<fence dir>/alive` after every acknowledged heartbeat and
//! lists its HA VMs' QEMU processes in `<fence dir>/vms/`; when `alive` is older than the
//! lease, the watchdog kills every listed QEMU.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The agent's side of fencing.
pub struct Fence {
    dir: PathBuf,
}

/// One fenced process: its pid and a string its command line must contain (its run dir), so
/// a recycled pid is never killed.
fn entry_path(dir: &Path, vm_key: &str) -> PathBuf {
    dir.join("vms").join(vm_key.replace('/', "__"))
}

impl Fence {
    pub fn new(dir: PathBuf) -> std::io::Result<Fence> {
        std::fs::create_dir_all(dir.join("vms"))?;
        Ok(Fence { dir })
    }

    /// Records a successful heartbeat.
    pub fn alive(&self) {
        let path = self.dir.join("alive");
        if let Err(e) = std::fs::write(&path, b"") {
            tracing::warn!(error = %e, "cannot touch the fence heartbeat file");
        }
    }

    /// Puts an HA VM's QEMU under the watchdog.
    pub fn guard(&self, vm_key: &str, pid: u32, run_dir: &Path) {
        let body = format!("{pid}\n{}\n", run_dir.display());
        if let Err(e) = std::fs::write(entry_path(&self.dir, vm_key), body) {
            tracing::warn!(vm = vm_key, error = %e, "cannot register the VM with the fence watchdog");
        }
    }

    /// Takes a VM off the watchdog (stopped, deleted, moved).
    pub fn release(&self, vm_key: &str) {
        let _ = std::fs::remove_file(entry_path(&self.dir, vm_key));
    }

    /// Starts the watchdog process unless one runs for this directory already.
    pub fn ensure_watchdog(&self, command: &[String], timeout: Duration) {
        let pidfile = self.dir.join("watchdog.pid");
        if let Ok(s) = std::fs::read_to_string(&pidfile)
            && let Ok(pid) = s.trim().parse::<u32>()
            && is_watchdog(pid, &self.dir)
        {
            return;
        }
        let Some((prog, args)) = command.split_first() else {
            return;
        };
        let mut cmd = std::process::Command::new(prog);
        cmd.args(args)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--timeout-ms")
            .arg(timeout.as_millis().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: setsid in the child before exec, so the watchdog leaves the agent's session
        // and outlives it; setsid is async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(child) => {
                let _ = std::fs::write(&pidfile, child.id().to_string());
                tracing::info!(pid = child.id(), "fence watchdog started");
                // Reap it if it ever exits while we live; it is not waited for otherwise.
                std::thread::spawn(move || {
                    let mut child = child;
                    let _ = child.wait();
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the fence watchdog; HA VMs are not fenced")
            }
        }
    }
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn is_watchdog(pid: u32, dir: &Path) -> bool {
    let c = cmdline(pid);
    c.contains("fence-watchdog") && c.contains(&*dir.to_string_lossy())
}

fn age(path: &Path) -> Option<Duration> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    SystemTime::now().duration_since(m).ok()
}

/// The watchdog loop (runs in its own process): kills every guarded QEMU once the agent's
/// last acknowledged heartbeat is older than `timeout`. Ends when its directory goes away
/// or another watchdog took over.
pub fn run_watchdog(dir: &Path, timeout: Duration) -> std::io::Result<()> {
    let me = std::process::id();
    std::fs::write(dir.join("watchdog.pid"), me.to_string())?;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if !dir.exists() {
            return Ok(());
        }
        match std::fs::read_to_string(dir.join("watchdog.pid")) {
            Ok(s) if s.trim() == me.to_string() => {}
            _ => return Ok(()), // replaced
        }
        let stale = age(&dir.join("alive")).is_none_or(|a| a > timeout);
        if !stale {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir.join("vms")) else {
            continue;
        };
        for e in entries.flatten() {
            let body = std::fs::read_to_string(e.path()).unwrap_or_default();
            let mut lines = body.lines();
            let pid = lines.next().and_then(|p| p.trim().parse::<u32>().ok());
            let marker = lines.next().unwrap_or("").trim().to_string();
            if let Some(pid) = pid
                && !marker.is_empty()
                && cmdline(pid).contains(&marker)
            {
                // SAFETY: kill(2) of a QEMU whose command line names the guarded run dir.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("fence.log"))
                    .and_then(|mut f| {
                        use std::io::Write;
                        writeln!(
                            f,
                            "{:?}: no acknowledged heartbeat for more than {} ms: killed QEMU {pid} ({})",
                            SystemTime::now(),
                            timeout.as_millis(),
                            e.file_name().to_string_lossy()
                        )
                    });
            }
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_kills_guarded_processes_when_heartbeats_stop() {
        let dir = tempfile::tempdir().unwrap();
        let fence = Fence::new(dir.path().join("fence")).unwrap();
        fence.alive();
        // A stand-in for QEMU whose command line names its "run dir".
        let marker = dir.path().join("run-marker");
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg("import time; time.sleep(30)")
            .arg(&marker)
            .spawn()
            .unwrap();
        fence.guard("default/ha1", child.id(), &marker);
        let d = dir.path().join("fence");
        let t = std::thread::spawn(move || run_watchdog(&d, Duration::from_millis(400)));
        // Heartbeats keep it alive...
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(100));
            fence.alive();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "killed while heartbeats were fresh"
        );
        // ...and when they stop, the guarded process is killed within the timeout.
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "not fenced");
            std::thread::sleep(Duration::from_millis(20));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(start.elapsed() >= Duration::from_millis(250));
        std::fs::remove_dir_all(dir.path().join("fence")).unwrap();
        t.join().unwrap().unwrap();
    }
}
