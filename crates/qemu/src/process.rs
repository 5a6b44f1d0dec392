//! QEMU process supervision: launch in its own session so it outlives the agent, adopt it again after an agent restart, stop it and tell a requested stop from a crash.

use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::spec::tail_lines;
use crate::{QemuError, Qmp, QmpEvent, RunDir, VmSpec, build_command_line};

/// Environment variable naming the QEMU binary to run instead of `qemu-system-x86_64` from PATH.
pub const QEMU_BINARY_ENV: &str = "NOVACRON_QEMU_BINARY";

/// Default QEMU binary.
pub const DEFAULT_QEMU_BINARY: &str = "qemu-system-x86_64";

/// First bytes of the header line written to the QEMU log at each launch.
const LAUNCH_HEADER: &str = "=== novacron launch";

/// How long launch waits for QMP to answer.
const LAUNCH_QMP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long adopt waits for QMP of a process that is known to run.
const ADOPT_QMP_TIMEOUT: Duration = Duration::from_secs(10);

/// How many log lines go into error messages and crash reasons.
const LOG_TAIL_LINES: usize = 8;

/// How a QEMU process ended, as far as the agent can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    /// True for an orderly end: guest powered off, quit, or a terminating signal QEMU handled.
    pub clean: bool,
    /// One line for humans: "guest powered off", "killed by signal 9", or QEMU's last log lines.
    pub reason: String,
    /// True when the agent asked for the end (shutdown, quit, kill), so a non-clean end is still not a crash.
    pub requested: bool,
    /// Exit code, when the process was our child and exited.
    pub exit_code: Option<i32>,
    /// Terminating signal, when the process was our child and was killed.
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// True when the VM ended without anyone asking for it and not through an orderly guest power-off.
    pub fn is_crash(&self) -> bool {
        !self.clean && !self.requested
    }
}

/// What the exit watcher learnt about the process end.
#[derive(Clone, Copy, Debug)]
enum ProcessEnd {
    /// Our child: we have its status.
    Status(std::process::ExitStatus),
    /// Adopted: it is gone, status unknown.
    Vanished,
}

#[derive(Default, Debug)]
struct ExitTracking {
    /// `reason` of the SHUTDOWN event, if one came.
    shutdown_reason: Option<String>,
    /// A GUEST_PANICKED event came.
    panicked: bool,
    /// What the agent asked for: "shutdown", "quit", "kill".
    requested: Option<&'static str>,
    /// Set when a graceful shutdown had to escalate.
    escalation: Option<String>,
}

struct VmInner {
    pid: u32,
    run_dir: RunDir,
    spec: Option<VmSpec>,
    qmp: Qmp,
    adopted: bool,
    log_offset: u64,
    exit_rx: watch::Receiver<Option<ProcessEnd>>,
    events: Mutex<broadcast::Receiver<QmpEvent>>,
    tracking: Mutex<ExitTracking>,
    exit_info: OnceLock<ExitInfo>,
    exit_lock: tokio::sync::Mutex<()>,
    /// Held by the one guest agent session the channel allows.
    guest_agent: Arc<tokio::sync::Mutex<()>>,
}

/// A QEMU process we launched or adopted. Cloning shares the handle; dropping every clone closes QMP but never stops QEMU.
#[derive(Clone)]
pub struct RunningVm {
    inner: Arc<VmInner>,
}

impl std::fmt::Debug for RunningVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningVm")
            .field("pid", &self.inner.pid)
            .field("run_dir", &self.inner.run_dir.path())
            .field("adopted", &self.inner.adopted)
            .finish()
    }
}

/// A guest agent connection that holds the VM's one turn on the channel until dropped.
pub struct GuestAgentSession {
    agent: crate::qga::GuestAgent,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl std::ops::Deref for GuestAgentSession {
    type Target = crate::qga::GuestAgent;
    fn deref(&self) -> &Self::Target {
        &self.agent
    }
}

impl std::ops::DerefMut for GuestAgentSession {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.agent
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The QEMU binary to run: `$NOVACRON_QEMU_BINARY` or `qemu-system-x86_64` from PATH.
pub fn qemu_binary() -> String {
    std::env::var(QEMU_BINARY_ENV).unwrap_or_else(|_| DEFAULT_QEMU_BINARY.to_string())
}

/// Makes the program `cmd` starts inherit only stdin, stdout, stderr and the descriptors in `keep`.
///
/// Rust opens its own files close-on-exec, but descriptors opened by C libraries, inherited from
/// our parent or opened with plain `open(2)` are not, and a child would hold them for its whole
/// life (an orphaned QEMU kept unrelated lock files held). Every QEMU and helper process
/// (qemu-img, qemu-nbd, ...) is started through this. The descriptors in `keep` reach the child
/// even when the parent opened them close-on-exec (the flag is cleared in the child only).
///
/// Descriptors are marked close-on-exec rather than closed: the standard library reports a
/// failed `exec` (binary not found) to the parent through a close-on-exec pipe the child holds,
/// and closing it would turn that error into a silent success.
pub fn inherit_only_stdio(cmd: &mut std::process::Command, keep: &[RawFd]) {
    use std::os::unix::process::CommandExt;
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    // SAFETY: the closure runs in the forked child before exec; it reads `keep` (allocated before the fork, not
    // modified) and makes only close_range(2), getrlimit(2) and fcntl(2) calls, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let mut first: RawFd = 3;
            for &fd in &keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if fd > first {
                    mark_cloexec(first, (fd - 1) as libc::c_uint)?;
                }
                first = fd.saturating_add(1);
            }
            mark_cloexec(first, libc::c_uint::MAX)
        });
    }
}

/// Sets `FD_CLOEXEC` on every open descriptor from `first` to `last` (inclusive). Runs between
/// fork and exec: async-signal-safe calls only, no allocation.
fn mark_cloexec(first: RawFd, last: libc::c_uint) -> std::io::Result<()> {
    let Ok(first_u) = libc::c_uint::try_from(first) else {
        return Ok(());
    };
    if first_u > last {
        return Ok(());
    }
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only changes descriptor flags of this process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first_u,
            last,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    // ENOSYS: kernel before 5.9; EINVAL: CLOSE_RANGE_CLOEXEC unknown (before 5.11). Walk the descriptors instead.
    if !matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) {
        return Err(err);
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes into the rlimit struct we own.
    let max_open = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(1 << 20) as libc::c_uint
    } else {
        1 << 16
    };
    let end = last.min(max_open.saturating_sub(1));
    let mut fd = first_u;
    while fd <= end {
        let raw = fd as RawFd;
        // SAFETY: fcntl(2) on a descriptor number; a closed one only yields EBADF.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFD) };
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            // SAFETY: as above.
            unsafe { libc::fcntl(raw, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
        }
        fd += 1;
    }
    Ok(())
}

/// Starts QEMU for `spec` with its runtime files in `run_dir` and waits until QMP answers.
///
/// QEMU runs in its own session (setsid) with stdout/stderr appended to `qemu_log`, so it survives the agent being
/// killed. The VM runs at once unless `spec.start_paused` or `spec.incoming` is set. On failure no process is left
/// and the error carries the end of QEMU's log.
pub async fn launch(spec: &VmSpec, run_dir: &RunDir) -> Result<RunningVm, QemuError> {
    spec.validate(run_dir)?;
    run_dir.create()?;
    if let Some(pid) = live_qemu_pid(run_dir) {
        return Err(QemuError::AlreadyRunning {
            pid,
            run_dir: run_dir.path().to_path_buf(),
        });
    }
    remove_runtime_files(run_dir);
    write_spec(spec, run_dir)?;

    let log_path = run_dir.qemu_log();
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| QemuError::io(format!("opening QEMU log {}", log_path.display()), e))?;
    let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    {
        use std::io::Write;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        writeln!(log, "{LAUNCH_HEADER} vm={} unix_time={now} ===", spec.name)
            .map_err(|e| QemuError::io(format!("writing {}", log_path.display()), e))?;
    }
    let stderr_log = log
        .try_clone()
        .map_err(|e| QemuError::io(format!("duplicating {}", log_path.display()), e))?;

    // One tap per bridged NIC, made and attached here; QEMU gets the descriptors, and ours close when this function
    // returns, so each tap lives exactly as long as QEMU.
    // In command-line order: the NICs of `nics`, then those in hot-plug ports.
    let taps = spec
        .nics
        .iter()
        .filter_map(|nic| match nic {
            crate::NicSpec::Bridge { bridge, mac } => Some((bridge, mac)),
            crate::NicSpec::User { .. } => None,
        })
        .chain(
            spec.plugged_nics
                .iter()
                .filter_map(|n| n.bridge.as_ref().map(|b| (b, &n.mac))),
        )
        .map(|(bridge, mac)| crate::tap::Tap::on_bridge(bridge, mac))
        .collect::<Result<Vec<_>, _>>()?;
    let tap_fds: Vec<RawFd> = taps.iter().map(crate::tap::Tap::raw_fd).collect();
    if !taps.is_empty() {
        tracing::info!(vm = %spec.name, taps = ?taps.iter().map(crate::tap::Tap::name).collect::<Vec<_>>(), "bridged NICs on taps");
    }
    let binary = qemu_binary();
    let args = build_command_line(spec, run_dir, &tap_fds);
    tracing::info!(vm = %spec.name, run_dir = %run_dir.path().display(), binary, accel = %spec.accel, "launching QEMU");
    tracing::debug!(vm = %spec.name, args = ?args, "QEMU command line");
    let mut command = tokio::process::Command::new(&binary);
    command
        .args(&args)
        .current_dir(run_dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr_log))
        .kill_on_drop(false);
    // QEMU's own cgroup with the spec's CPU and memory limits (see [`crate::cgroup`]); QEMU enters it before exec.
    let cgroup = crate::cgroup::VmCgroup::create(spec, run_dir.path());
    let cgroup_fds = cgroup.as_ref().map(|g| g.procs_fds()).unwrap_or_default();
    // QEMU's own user (see [`crate::user`]): its files first, then the switch in the child, after the cgroup.
    let run_as = match &spec.run_as {
        Some(who) => {
            crate::user::prepare_files(spec, run_dir, who)?;
            let mut who = who.clone();
            if spec.accel == crate::Accel::Kvm
                && let Some(kvm) = crate::user::kvm_group()
                && kvm != 0
                && !who.groups.contains(&kvm)
            {
                who.groups.push(kvm);
            }
            tracing::info!(vm = %spec.name, uid = who.uid, gid = who.gid, groups = ?who.groups, "QEMU runs as the VM's own user");
            Some(who)
        }
        None => None,
    };
    // The TPM's swtpm first: QEMU connects to it at start-up. It ends when QEMU does, or here if QEMU fails.
    let swtpm = match &spec.tpm {
        Some(tpm) => Some(crate::tpm::start(tpm, run_dir, run_as.as_ref()).await?),
        None => None,
    };
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2), write(2) (into the
    // cgroup.procs files opened above), setgroups(2), setresgid(2), setresuid(2) and setuid(2), which are
    // async-signal-safe; it reads `cgroup_fds` and `run_as`, allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            crate::cgroup::join_in_child(&cgroup_fds)?;
            if let Some(who) = &run_as {
                crate::user::become_in_child(who)?;
            }
            Ok(())
        });
    }
    // QEMU outlives the agent: any agent descriptor it inherited (lock files, sockets, the store) would stay open
    // with it. Only stdio and the tap descriptors reach it.
    inherit_only_stdio(command.as_std_mut(), &tap_fds);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(QemuError::QemuNotFound { binary });
        }
        Err(e) => return Err(QemuError::io(format!("starting {binary}"), e)),
    };
    let Some(pid) = child.id() else {
        return Err(QemuError::LaunchFailed {
            reason: "QEMU exited immediately".into(),
            log_tail: tail_lines(&log_path, log_offset, LOG_TAIL_LINES),
        });
    };

    drop(cgroup);
    let (exit_tx, mut exit_rx) = watch::channel(None);
    let (uuid, group_run_dir) = (spec.uuid.clone(), run_dir.path().to_path_buf());
    tokio::spawn(async move {
        // This task is the reaper: it outlives every handle so the process never lingers as a zombie.
        let end = match child.wait().await {
            Ok(status) => ProcessEnd::Status(status),
            Err(e) => {
                tracing::warn!(pid, error = %e, "waiting for QEMU failed; watching /proc instead");
                wait_gone_by_proc(pid).await;
                ProcessEnd::Vanished
            }
        };
        crate::cgroup::VmCgroup::remove_for(&uuid, &group_run_dir);
        exit_tx.send_replace(Some(end));
    });

    let qmp_socket = run_dir.qmp_socket();
    let connect = Qmp::connect_with_events(&qmp_socket, LAUNCH_QMP_TIMEOUT);
    let exited = exit_rx.wait_for(Option::is_some);
    let outcome = tokio::select! {
        connected = connect => connected.map_err(|e| e.to_string()),
        end = exited => Err(match end.ok().and_then(|e| *e) {
            Some(ProcessEnd::Status(status)) => format!("QEMU exited during start-up ({status})"),
            _ => "QEMU exited during start-up".to_string(),
        }),
    };
    match outcome {
        Ok((qmp, events)) => {
            tracing::info!(vm = %spec.name, pid, "QEMU is up");
            if let Some(swtpm) = swtpm {
                swtpm.detach();
            }
            Ok(RunningVm {
                inner: Arc::new(VmInner {
                    pid,
                    run_dir: run_dir.clone(),
                    spec: Some(spec.clone()),
                    qmp,
                    adopted: false,
                    log_offset,
                    exit_rx: exit_rx.clone(),
                    events: Mutex::new(events),
                    tracking: Mutex::new(ExitTracking::default()),
                    exit_info: OnceLock::new(),
                    exit_lock: tokio::sync::Mutex::new(()),
                    guest_agent: Arc::default(),
                }),
            })
        }
        Err(reason) => {
            // Leave nothing behind: kill and wait for the reaper.
            let _ = send_signal(pid, libc::SIGKILL);
            let mut rx = exit_rx.clone();
            let _ =
                tokio::time::timeout(Duration::from_secs(10), rx.wait_for(Option::is_some)).await;
            remove_runtime_files(run_dir);
            tracing::warn!(vm = %spec.name, reason, "QEMU failed to start");
            Err(QemuError::LaunchFailed {
                reason,
                log_tail: tail_lines(&log_path, log_offset, LOG_TAIL_LINES),
            })
        }
    }
}

/// After an agent restart: finds the QEMU of `run_dir` by its pidfile, checks it really is ours, and reconnects QMP.
///
/// `Ok(None)` when no such process runs any more (stale sockets and pidfile are removed).
pub async fn adopt(run_dir: &RunDir) -> Result<Option<RunningVm>, QemuError> {
    let Some(pid) = live_qemu_pid(run_dir) else {
        tracing::info!(run_dir = %run_dir.path().display(), "no QEMU to adopt; cleaning up");
        remove_runtime_files(run_dir);
        return Ok(None);
    };
    let spec = run_dir.read_spec().unwrap_or_else(|e| {
        tracing::warn!(run_dir = %run_dir.path().display(), error = %e, "unreadable spec file");
        None
    });
    if let Some(spec) = &spec {
        let args = proc_cmdline(pid).unwrap_or_default();
        let uuid_matches = args
            .windows(2)
            .any(|w| w[0] == "-uuid" && w[1] == spec.uuid);
        if !uuid_matches {
            return Err(QemuError::InvalidSpec(format!(
                "QEMU pid {pid} of {} does not run uuid {} recorded in {}",
                run_dir.path().display(),
                spec.uuid,
                run_dir.spec_file().display()
            )));
        }
    }
    let (qmp, events) = Qmp::connect_with_events(&run_dir.qmp_socket(), ADOPT_QMP_TIMEOUT).await?;
    let (exit_tx, exit_rx) = watch::channel(None);
    let group = spec
        .as_ref()
        .map(|s| (s.uuid.clone(), run_dir.path().to_path_buf()));
    tokio::spawn(async move {
        tokio::select! {
            _ = wait_gone_by_proc(pid) => {
                if let Some((uuid, dir)) = &group {
                    crate::cgroup::VmCgroup::remove_for(uuid, dir);
                }
                exit_tx.send_replace(Some(ProcessEnd::Vanished));
            }
            _ = exit_tx.closed() => {}
        }
    });
    let log_offset = last_launch_offset(&run_dir.qemu_log());
    tracing::info!(run_dir = %run_dir.path().display(), pid, "adopted running QEMU");
    Ok(Some(RunningVm {
        inner: Arc::new(VmInner {
            pid,
            run_dir: run_dir.clone(),
            spec,
            qmp,
            adopted: true,
            log_offset,
            exit_rx,
            events: Mutex::new(events),
            tracking: Mutex::new(ExitTracking::default()),
            exit_info: OnceLock::new(),
            exit_lock: tokio::sync::Mutex::new(()),
            guest_agent: Arc::default(),
        }),
    }))
}

impl RunningVm {
    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The QMP connection to this QEMU.
    pub fn qmp(&self) -> &Qmp {
        &self.inner.qmp
    }

    /// Where this VM's runtime files are.
    pub fn run_dir(&self) -> &RunDir {
        &self.inner.run_dir
    }

    /// The spec it was launched with (read from the run directory for adopted VMs; `None` if that file is gone).
    pub fn spec(&self) -> Option<&VmSpec> {
        self.inner.spec.as_ref()
    }

    /// A session with the guest's qemu-guest-agent, once the sessions before it ended (the
    /// channel takes one client at a time). Fails with a clear error when the guest runs no
    /// agent; see [`crate::qga`].
    pub async fn guest_agent(&self) -> Result<GuestAgentSession, QemuError> {
        let turn = self.inner.guest_agent.clone().lock_owned().await;
        let agent = crate::qga::GuestAgent::connect(
            &self.inner.run_dir.guest_agent_socket(),
            crate::qga::SYNC_TIMEOUT,
        )
        .await?;
        Ok(GuestAgentSession { agent, _turn: turn })
    }

    /// True when this handle came from [`adopt`].
    pub fn is_adopted(&self) -> bool {
        self.inner.adopted
    }

    /// True once the process is gone.
    pub fn has_exited(&self) -> bool {
        self.inner.exit_rx.borrow().is_some()
    }

    /// Asks the guest to power off (ACPI), waits up to `graceful_timeout`, then QMP `quit`, then SIGKILL.
    /// Always ends with the process gone. A guest that is not running (paused, migrating) cannot react to the
    /// power button, so it gets `quit` at once.
    pub async fn shutdown(&self, graceful_timeout: Duration) -> Result<ExitInfo, QemuError> {
        if self.has_exited() {
            return Ok(self.wait_exit().await);
        }
        self.request("shutdown");
        let status = self
            .qmp()
            .execute_with_timeout("query-status", None, Duration::from_secs(5))
            .await;
        let running =
            matches!(status, Ok(ref s) if s.get("running").and_then(|r| r.as_bool()) == Some(true));
        if running {
            match self.qmp().system_powerdown().await {
                Ok(()) => {
                    if let Ok(info) = tokio::time::timeout(graceful_timeout, self.wait_exit()).await
                    {
                        return Ok(info);
                    }
                    self.escalate(format!(
                        "guest did not power off within {} ms",
                        graceful_timeout.as_millis()
                    ));
                    tracing::warn!(
                        pid = self.pid(),
                        "guest ignored the ACPI power button; quitting QEMU"
                    );
                }
                Err(e) => {
                    tracing::warn!(pid = self.pid(), error = %e, "system_powerdown failed; quitting QEMU")
                }
            }
        }
        if self.qmp().quit().await.is_ok()
            && let Ok(info) = tokio::time::timeout(Duration::from_secs(5), self.wait_exit()).await
        {
            return Ok(info);
        }
        self.escalate("QEMU did not quit; killed".to_string());
        self.kill_inner().await
    }

    /// Kills QEMU with SIGKILL and waits until it is gone.
    pub async fn kill(&self) -> Result<ExitInfo, QemuError> {
        if self.has_exited() {
            return Ok(self.wait_exit().await);
        }
        self.request("kill");
        self.kill_inner().await
    }

    async fn kill_inner(&self) -> Result<ExitInfo, QemuError> {
        if !self.has_exited() {
            match send_signal(self.pid(), libc::SIGKILL) {
                Ok(()) => {}
                // Already gone between the check and the signal.
                Err(QemuError::Signal { ref source, .. })
                    if source.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(e),
            }
        }
        match tokio::time::timeout(Duration::from_secs(30), self.wait_exit()).await {
            Ok(info) => Ok(info),
            Err(_) => Err(QemuError::Signal {
                pid: self.pid(),
                source: std::io::Error::other(
                    "process still present 30 s after SIGKILL (stuck in the kernel?)",
                ),
            }),
        }
    }

    fn request(&self, what: &'static str) {
        let mut t = lock(&self.inner.tracking);
        if t.requested.is_none() {
            t.requested = Some(what);
        }
    }

    fn escalate(&self, note: String) {
        lock(&self.inner.tracking).escalation.get_or_insert(note);
    }

    /// Resolves when the process is gone, with how it ended. Works for adopted processes (watched through /proc).
    pub async fn wait_exit(&self) -> ExitInfo {
        if let Some(info) = self.inner.exit_info.get() {
            return info.clone();
        }
        let mut rx = self.inner.exit_rx.clone();
        let end = match rx.wait_for(Option::is_some).await {
            Ok(end) => *end,
            Err(_) => None,
        };
        let _guard = self.inner.exit_lock.lock().await;
        if let Some(info) = self.inner.exit_info.get() {
            return info.clone();
        }
        // QEMU writes its last events before exiting; once the socket is at EOF every event has been dispatched.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.qmp.closed()).await;
        self.drain_events();
        let info = self.exit_info_for(end.unwrap_or(ProcessEnd::Vanished));
        // Only clean up when no newer QEMU has been launched into the same directory meanwhile.
        if live_qemu_pid(&self.inner.run_dir).is_none() {
            remove_runtime_files(&self.inner.run_dir);
        }
        tracing::info!(pid = self.pid(), clean = info.clean, requested = info.requested, reason = %info.reason, "QEMU exited");
        let _ = self.inner.exit_info.set(info.clone());
        info
    }

    fn drain_events(&self) {
        let mut rx = lock(&self.inner.events);
        let mut t = lock(&self.inner.tracking);
        loop {
            match rx.try_recv() {
                Ok(ev) => match ev.event.as_str() {
                    "SHUTDOWN" => {
                        let reason = ev
                            .data
                            .get("reason")
                            .and_then(|r| r.as_str())
                            .unwrap_or("unknown");
                        t.shutdown_reason = Some(reason.to_string());
                        if reason == "guest-panic" {
                            t.panicked = true;
                        }
                    }
                    "GUEST_PANICKED" => t.panicked = true,
                    _ => {}
                },
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
    }

    fn exit_info_for(&self, end: ProcessEnd) -> ExitInfo {
        let t = lock(&self.inner.tracking);
        let requested = t.requested.is_some();
        let (exit_code, signal) = match end {
            ProcessEnd::Status(status) => {
                use std::os::unix::process::ExitStatusExt;
                (status.code(), status.signal())
            }
            ProcessEnd::Vanished => (None, None),
        };
        let log_tail = || {
            let tail = tail_lines(
                &self.inner.run_dir.qemu_log(),
                self.inner.log_offset,
                LOG_TAIL_LINES,
            );
            let tail: Vec<&str> = tail
                .lines()
                .filter(|l| !l.starts_with(LAUNCH_HEADER))
                .collect();
            tail.join(" | ")
        };
        let with_log = |base: String| {
            let tail = log_tail();
            if tail.is_empty() {
                base
            } else {
                format!("{base}; QEMU log: {tail}")
            }
        };
        let (clean, mut reason) = if t.panicked {
            (false, with_log("guest kernel panicked".to_string()))
        } else if let Some(shutdown) = &t.shutdown_reason {
            let clean = exit_code.is_none_or(|c| c == 0) && signal.is_none();
            let what = match shutdown.as_str() {
                "guest-shutdown" => "guest powered off".to_string(),
                "host-qmp-quit" => "quit through QMP".to_string(),
                "host-signal" => "QEMU terminated by a host signal".to_string(),
                "guest-reset" => "guest rebooted (reboot action is shutdown)".to_string(),
                other => format!("QEMU shut down ({other})"),
            };
            if clean {
                (true, what)
            } else {
                (false, with_log(format!("{what}, then exit {exit_code:?}")))
            }
        } else if signal.is_none() && exit_code.is_none() && t.requested == Some("kill") {
            (
                false,
                "killed by SIGKILL as requested (adopted process: exit status unknown)".to_string(),
            )
        } else if let Some(sig) = signal {
            (false, with_log(format!("killed by signal {sig}")))
        } else if let Some(code) = exit_code {
            if code == 0 {
                (true, "QEMU exited normally".to_string())
            } else {
                (false, with_log(format!("QEMU exited with code {code}")))
            }
        } else {
            (
                false,
                with_log(
                    "QEMU vanished without a shutdown event (adopted process: exit status unknown)"
                        .to_string(),
                ),
            )
        };
        if let Some(note) = &t.escalation {
            reason = format!("{note}; {reason}");
        }
        ExitInfo {
            clean,
            reason,
            requested,
            exit_code,
            signal,
        }
    }
}

fn write_spec(spec: &VmSpec, run_dir: &RunDir) -> Result<(), QemuError> {
    let path = run_dir.spec_file();
    let tmp = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(spec)
        .map_err(|e| QemuError::InvalidSpec(format!("cannot serialise spec: {e}")))?;
    std::fs::write(&tmp, json)
        .map_err(|e| QemuError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| QemuError::io(format!("renaming to {}", path.display()), e))
}

/// Removes sockets and the pidfile; logs and the spec stay.
fn remove_runtime_files(run_dir: &RunDir) {
    for path in [
        run_dir.qmp_socket(),
        run_dir.console_socket(),
        run_dir.guest_agent_socket(),
        run_dir.tpm_socket(),
        run_dir.pidfile(),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::debug!(path = %path.display(), "removed stale runtime file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove runtime file")
            }
        }
    }
}

/// The pid in the run directory's pidfile, if that process is alive and is QEMU started for this run directory.
pub fn live_qemu_pid(run_dir: &RunDir) -> Option<u32> {
    let text = std::fs::read_to_string(run_dir.pidfile()).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    if pid == 0 || !process_alive(pid) {
        return None;
    }
    let args = proc_cmdline(pid)?;
    is_our_qemu(&args, run_dir).then_some(pid)
}

/// True when `args` (a /proc cmdline) is a QEMU system emulator with this run directory's pidfile.
fn is_our_qemu(args: &[String], run_dir: &RunDir) -> bool {
    let Some(argv0) = args.first() else {
        return false;
    };
    let name = Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let pidfile = run_dir.pidfile();
    name.starts_with("qemu-system")
        && args
            .windows(2)
            .any(|w| w[0] == "-pidfile" && Path::new(&w[1]) == pidfile.as_path())
}

pub(crate) fn proc_cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).to_string())
            .collect(),
    )
}

/// True when /proc shows the process and it is not a zombie.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Format: "pid (comm) S ..."; comm may contain spaces and parentheses, so look after the last ')'.
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
    {
        Some(state) => state != "Z" && state != "X",
        None => false,
    }
}

async fn wait_gone_by_proc(pid: u32) {
    while process_alive(pid) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn send_signal(pid: u32, signal: i32) -> Result<(), QemuError> {
    let Ok(raw) = i32::try_from(pid) else {
        return Err(QemuError::Signal {
            pid,
            source: std::io::Error::other("pid out of range"),
        });
    };
    // SAFETY: kill(2) takes plain integers and has no memory effects in this process.
    let rc = unsafe { libc::kill(raw, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(QemuError::Signal {
            pid,
            source: std::io::Error::last_os_error(),
        })
    }
}

/// Byte offset of the last launch header in the QEMU log (0 when none), so crash reasons show only the current run.
fn last_launch_offset(path: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    let needle = LAUNCH_HEADER.as_bytes();
    bytes
        .windows(needle.len())
        .rposition(|w| w == needle)
        .map(|p| p as u64)
        .unwrap_or(0)
}

/// Kills every process of `pids` with SIGKILL and reaps those that are our children, waiting at most `timeout`
/// in all; true when every one is gone.
///
/// For cleanup guards (`Drop`), which may run while a test panics or on a runtime thread: it never waits
/// longer than `timeout`, unlike `Child::wait`. A QEMU started by [`launch`] is reaped by a runtime task; if that
/// runtime is shutting down the task is gone and only this reaps the zombie. When the task reaps first, this sees
/// `ECHILD` and goes by /proc; when this reaps first, the task notices the process vanished.
pub fn kill_and_reap(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut left: Vec<libc::pid_t> = pids
        .iter()
        .filter_map(|&p| libc::pid_t::try_from(p).ok())
        .filter(|&p| p > 0)
        .collect();
    for &pid in &left {
        // SAFETY: kill(2) takes plain integers and has no memory effects in this process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    loop {
        left.retain(|&pid| {
            let mut status = 0;
            // SAFETY: waitpid(2) with WNOHANG never blocks; it writes only into `status`.
            let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if rc == pid {
                return false;
            }
            // Not our child (or reaped elsewhere): gone once /proc shows no live process.
            rc != -1 || process_alive(pid as u32)
        });
        if left.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            tracing::warn!(pids = ?left, "processes still present after SIGKILL; giving up waiting");
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills a child started with `std::process::Command` and reaps it, waiting at most `timeout`
/// (`Child::wait` in a `Drop` can block for good on a process stuck in the kernel). True when reaped.
pub fn stop_child(child: &mut std::process::Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let _ = child.kill();
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => {
                tracing::warn!(
                    pid = child.id(),
                    "child still present after SIGKILL; giving up waiting"
                );
                return false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Waits until `pid` is gone (for tests and callers that only have a pid), up to `timeout`; true when gone.
pub async fn wait_pid_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_our_qemu_only() {
        let rd = RunDir::new("/run/nc/vm1");
        let ours: Vec<String> = [
            "/usr/bin/qemu-system-x86_64",
            "-name",
            "x",
            "-pidfile",
            "/run/nc/vm1/qemu.pid",
        ]
        .map(String::from)
        .into();
        assert!(is_our_qemu(&ours, &rd));
        let other_dir: Vec<String> = [
            "/usr/bin/qemu-system-x86_64",
            "-pidfile",
            "/run/nc/vm2/qemu.pid",
        ]
        .map(String::from)
        .into();
        assert!(!is_our_qemu(&other_dir, &rd));
        let not_qemu: Vec<String> = ["/bin/sleep", "-pidfile", "/run/nc/vm1/qemu.pid"]
            .map(String::from)
            .into();
        assert!(!is_our_qemu(&not_qemu, &rd));
        assert!(!is_our_qemu(&[], &rd));
    }

    #[test]
    fn alive_checks_proc() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX - 1));
    }

    #[test]
    fn stale_pidfile_is_not_live() {
        let dir = tempfile::tempdir().unwrap();
        let rd = RunDir::new(dir.path());
        // Our own pid is alive but is not QEMU: a recycled pid must not be adopted.
        std::fs::write(rd.pidfile(), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(live_qemu_pid(&rd), None);
        std::fs::write(rd.pidfile(), "garbage").unwrap();
        assert_eq!(live_qemu_pid(&rd), None);
    }

    #[test]
    fn launch_offset_finds_last_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("qemu.log");
        std::fs::write(
            &p,
            format!("{LAUNCH_HEADER} a ===\nold\n{LAUNCH_HEADER} b ===\nnew\n"),
        )
        .unwrap();
        let off = last_launch_offset(&p);
        assert_eq!(
            tail_lines(&p, off, 10),
            format!("{LAUNCH_HEADER} b ===\nnew")
        );
    }
}
