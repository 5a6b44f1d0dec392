//! Self-fencing. A node that loses contact with the control plane for longer than its lease
//! must stop its HA VMs before the control plane restarts them elsewhere, or two copies
//! would write to one shared disk. The agent itself may be dead (killed, hung), so the job
//! belongs to a small watchdog process of its own that outlives the agent, like a hardware
//! watchdog: the agent touches `<fence dir>/alive` after every acknowledged heartbeat and
//! lists its HA VMs' QEMU processes in `<fence dir>/vms/`; when `alive` is older than the
//! lease, the watchdog kills every listed QEMU.
//!
//! The watchdog runs only while it guards a VM: the agent starts it when it lists the first
//! one, and it ends when the list is empty, when `<fence dir>/stop` appears
//! ([`Fence::stop_watchdog`]) or when its directory goes away. One watchdog per directory:
//! it holds an exclusive `flock` on `<fence dir>/watchdog.lock` for its whole life.
//!
//! `alive` stays open in the agent from start to stop and is touched through that
//! descriptor (`futimens`), so a process that has run out of descriptors still records its
//! heartbeats.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The agent's side of fencing.
pub struct Fence {
    dir: PathBuf,
    /// `<dir>/alive`, open for the agent's whole life.
    alive: Mutex<std::fs::File>,
    watchdog: Option<WatchdogCommand>,
}

/// How to start the watchdog process.
struct WatchdogCommand {
    /// Program and leading arguments; `--dir` and `--timeout-ms` are appended.
    command: Vec<String>,
    timeout: Duration,
}

/// One fenced process: its pid and a string its command line must contain (its run dir), so
/// a recycled pid is never killed.
fn entry_path(dir: &Path, vm_key: &str) -> PathBuf {
    dir.join("vms").join(vm_key.replace('/', "__"))
}

fn open_alive(dir: &Path) -> std::io::Result<std::fs::File> {
    // Never truncate: only its modification time matters, and opening must not change it.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("alive"))
}

/// `flock(2)` without waiting. `Ok(false)`: someone else holds it.
fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor this `File` owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn unlock(file: &std::fs::File) {
    // SAFETY: flock on a descriptor this `File` owns.
    unsafe {
        libc::flock(file.as_raw_fd(), libc::LOCK_UN);
    }
}

fn open_lock(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("watchdog.lock"))
}

/// Whether `<dir>/vms` lists a VM. `None`: cannot tell (the directory cannot be read).
fn guards_any(dir: &Path) -> Option<bool> {
    let mut entries = std::fs::read_dir(dir.join("vms")).ok()?;
    Some(entries.next().is_some())
}

impl Fence {
    /// Opens (creating) the fence directory and its `alive` file, and clears a stop request
    /// left by an earlier [`Fence::stop_watchdog`].
    pub fn new(dir: PathBuf) -> std::io::Result<Fence> {
        std::fs::create_dir_all(dir.join("vms"))?;
        match std::fs::remove_file(dir.join("stop")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let alive = Mutex::new(open_alive(&dir)?);
        Ok(Fence {
            dir,
            alive,
            watchdog: None,
        })
    }

    /// Sets how the watchdog is started: `command` (program and leading arguments, e.g.
    /// `[novacron, fence-watchdog]`) with `--dir` and `--timeout-ms <timeout>` appended.
    /// Without it, HA VMs are not fenced if the agent dies.
    pub fn with_watchdog(mut self, command: Vec<String>, timeout: Duration) -> Fence {
        self.watchdog = Some(WatchdogCommand { command, timeout });
        self
    }

    /// Records a heartbeat the control plane acknowledged. Needs no new descriptor, unless
    /// `alive` was removed or replaced behind the agent's back.
    pub fn alive(&self) {
        let path = self.dir.join("alive");
        let mut file = self.alive.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.set_modified(SystemTime::now()) {
            tracing::warn!(error = %e, "cannot touch the fence heartbeat file");
        }
        // stat(2) needs no descriptor: check that the watchdog reads the file we touch.
        use std::os::unix::fs::MetadataExt;
        let same = match (std::fs::metadata(&path), file.metadata()) {
            (Ok(on_disk), Ok(ours)) => on_disk.ino() == ours.ino() && on_disk.dev() == ours.dev(),
            _ => false,
        };
        if !same {
            match open_alive(&self.dir).and_then(|f| {
                f.set_modified(SystemTime::now())?;
                Ok(f)
            }) {
                Ok(f) => *file = f,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot recreate the fence heartbeat file")
                }
            }
        }
    }

    /// Puts an HA VM's QEMU under the watchdog, starting the watchdog if none runs.
    pub fn guard(&self, vm_key: &str, pid: u32, run_dir: &Path) {
        let body = format!("{pid}\n{}\n", run_dir.display());
        if let Err(e) = std::fs::write(entry_path(&self.dir, vm_key), body) {
            tracing::warn!(vm = vm_key, error = %e, "cannot register the VM with the fence watchdog");
        }
        // After the entry is written: a watchdog that is just ending because its list was
        // empty looks at the list again after releasing its lock, so one of us sees the other.
        self.ensure_watchdog();
    }

    /// Takes a VM off the watchdog (stopped, deleted, moved). The watchdog ends by itself
    /// when it guards nothing.
    pub fn release(&self, vm_key: &str) {
        let _ = std::fs::remove_file(entry_path(&self.dir, vm_key));
    }

    /// Whether a watchdog holds this directory's lock. `None`: cannot tell.
    pub fn watchdog_running(&self) -> Option<bool> {
        let lock = open_lock(&self.dir).ok()?;
        match try_lock(&lock) {
            Ok(true) => {
                unlock(&lock);
                Some(false)
            }
            Ok(false) => Some(true),
            Err(_) => None,
        }
    }

    /// Starts the watchdog process if it guards a VM and none runs for this directory.
    pub fn ensure_watchdog(&self) {
        let Some(w) = &self.watchdog else {
            return;
        };
        if guards_any(&self.dir) == Some(false) {
            return;
        }
        match self.watchdog_running() {
            Some(false) => {}
            Some(true) => return,
            None => {
                tracing::warn!(dir = %self.dir.display(), "cannot tell whether the fence watchdog runs");
                return;
            }
        }
        let Some((prog, args)) = w.command.split_first() else {
            return;
        };
        let mut cmd = std::process::Command::new(prog);
        cmd.args(args)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--timeout-ms")
            .arg(w.timeout.as_millis().to_string())
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
        // It outlives the agent: it must not keep the agent's descriptors open.
        novacron_qemu::process::inherit_only_stdio(&mut cmd, &[]);
        match cmd.spawn() {
            Ok(child) => {
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

    /// Asks the watchdog to end and waits (up to `wait`) until it has. Guarded VMs are left
    /// running and unguarded: only for a stop after which no control plane can restart them
    /// elsewhere (`novacron up`, whose control plane stops with it). Returns whether no
    /// watchdog runs any more.
    pub fn stop_watchdog(&self, wait: Duration) -> bool {
        if let Err(e) = std::fs::write(self.dir.join("stop"), b"") {
            tracing::warn!(error = %e, "cannot ask the fence watchdog to stop");
            return false;
        }
        let deadline = std::time::Instant::now() + wait;
        loop {
            if self.watchdog_running() == Some(false) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn age(path: &Path) -> Option<Duration> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    SystemTime::now().duration_since(m).ok()
}

/// The watchdog loop (runs in its own process): kills every guarded QEMU once the agent's
/// last acknowledged heartbeat is older than `timeout`. Ends when it guards no VM, when
/// `<dir>/stop` exists, when its directory goes away, or at once when another watchdog
/// holds the directory's lock.
pub fn run_watchdog(dir: &Path, timeout: Duration) -> std::io::Result<()> {
    let lock = open_lock(dir)?;
    if !try_lock(&lock)? {
        return Ok(()); // another watchdog guards this directory
    }
    // For people and tests; the lock is what counts.
    std::fs::write(dir.join("watchdog.pid"), std::process::id().to_string())?;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if !dir.exists() || dir.join("stop").exists() {
            return Ok(());
        }
        if guards_any(dir) == Some(false) {
            // Let go, then look again: an agent that listed a VM meanwhile either saw the
            // lock still held (and we see its entry now) or sees it free and starts another.
            unlock(&lock);
            if guards_any(dir) != Some(true) || !try_lock(&lock)? {
                return Ok(());
            }
            continue;
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

    /// A stand-in for QEMU whose command line names its "run dir".
    fn fake_qemu(marker: &Path) -> std::process::Child {
        std::process::Command::new("python3")
            .arg("-c")
            .arg("import time; time.sleep(30)")
            .arg(marker)
            .spawn()
            .unwrap()
    }

    #[test]
    fn watchdog_kills_guarded_processes_when_heartbeats_stop() {
        let dir = tempfile::tempdir().unwrap();
        let fence = Fence::new(dir.path().join("fence")).unwrap();
        fence.alive();
        let marker = dir.path().join("run-marker");
        let mut child = fake_qemu(&marker);
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
        // With nothing left to guard it ends by itself.
        let end = std::time::Instant::now();
        while !t.is_finished() {
            assert!(
                end.elapsed() < Duration::from_secs(3),
                "watchdog kept running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        t.join().unwrap().unwrap();
    }

    #[test]
    fn watchdog_runs_only_while_it_guards_a_vm_and_stops_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("fence");
        // `run_watchdog` runs on threads here; the lock makes them exclusive like processes.
        let fence = Fence::new(d.clone()).unwrap();
        fence.alive();
        assert_eq!(fence.watchdog_running(), Some(false));
        // Nothing guarded: a watchdog started anyway ends at once.
        let t = {
            let d = d.clone();
            std::thread::spawn(move || run_watchdog(&d, Duration::from_secs(5)))
        };
        let start = std::time::Instant::now();
        while !t.is_finished() {
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "idle watchdog kept running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        t.join().unwrap().unwrap();
        assert_eq!(fence.watchdog_running(), Some(false));

        // Guarding: it runs (and holds the lock) until asked to stop; the VM lives on.
        let marker = dir.path().join("run-marker");
        let mut child = fake_qemu(&marker);
        fence.guard("default/ha1", child.id(), &marker);
        let t = {
            let d = d.clone();
            std::thread::spawn(move || run_watchdog(&d, Duration::from_secs(5)))
        };
        let start = std::time::Instant::now();
        while fence.watchdog_running() != Some(true) {
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "watchdog never took the lock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A second one for the same directory leaves at once.
        run_watchdog(&d, Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(!t.is_finished(), "watchdog ended while guarding a VM");
        // flock is per open file description: probing from this process sees the thread's
        // lock like another process would.
        assert!(fence.stop_watchdog(Duration::from_secs(3)));
        t.join().unwrap().unwrap();
        assert!(
            child.try_wait().unwrap().is_none(),
            "stopping the watchdog killed the VM"
        );
        let _ = child.kill();
        let _ = child.wait();
        // The next agent start clears the stop request.
        drop(fence);
        let _fence = Fence::new(d.clone()).unwrap();
        assert!(!d.join("stop").exists());
    }
}
