//! Reconciliation: the loop that follows the control plane's list of VMs for this node, and
//! one worker per VM that turns each new generation of desired state into QEMU actions and
//! reports what it observes (QMP events, process exits) back.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use novacron_api_types::agent::{DesiredVm, VmAction, VmStatusReport};
use novacron_api_types::{
    AccelChoice, ErrorCode, HaPolicy, ImageKind, Network, PowerState, VmState,
};
use novacron_client::ClientError;
use novacron_qemu::{Boot, DiskSpec, NicSpec, RunDir, RunningVm, VmSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::state::Shared;

/// How long a VM with an overlay NIC waits for its network's bridge before failing.
pub(crate) const OVERLAY_BRIDGE_WAIT: Duration = Duration::from_secs(30);
/// How long a start waits for the network's DHCP server to know a NIC's MAC (it goes on
/// without: the guest asks again).
pub(crate) const LEASE_WAIT: Duration = Duration::from_secs(5);

/// The reconcile loop's handle on one VM worker.
pub struct WorkerHandle {
    uuid: String,
    desired: watch::Sender<DesiredVm>,
    orphaned: watch::Sender<bool>,
    running: Arc<AtomicBool>,
    live: LiveVm,
    disk_lock: Arc<tokio::sync::Mutex<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// The worker's running QEMU, readable by the agent endpoint (backups).
pub(crate) type LiveVm = Arc<std::sync::Mutex<Option<Arc<RunningVm>>>>;

impl WorkerHandle {
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// False once the worker ended (the VM left this node or was deleted).
    pub fn is_live(&self) -> bool {
        !self.task.is_finished()
    }

    /// The VM's QEMU to sample usage from, when it runs.
    pub fn sampling_target(&self) -> Option<crate::stats::Target> {
        let vm = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let d = self.desired.borrow();
        Some(crate::stats::Target {
            project: d.project.clone(),
            name: d.name.clone(),
            uuid: d.uuid.clone(),
            vm,
        })
    }

    /// What a backup of this VM needs: its definition, disk, and QEMU if it runs.
    pub fn access(&self, shared: &Shared) -> crate::backup::VmAccess {
        let desired = self.desired.borrow().clone();
        crate::backup::VmAccess {
            disk: disk_dir(shared, &desired).join("disk0.qcow2"),
            running: self.live.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            disk_lock: self.disk_lock.clone(),
            live: self.live.clone(),
            desired,
        }
    }
}

/// Where the VM's disk lives: its storage pool, or the node's own VM directory.
pub(crate) fn disk_dir(shared: &Shared, d: &DesiredVm) -> PathBuf {
    match &d.storage {
        Some(pool) => PathBuf::from(&pool.path)
            .join("vms")
            .join(&d.project)
            .join(&d.name),
        None => shared.vm_dir(&d.project, &d.name),
    }
}

/// Follows the desired VMs of this node until `stop`.
pub async fn reconcile_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut after: Option<i64> = None;
    let mut first = true;
    let mut backoff = Duration::from_millis(200);
    loop {
        let fetch = shared
            .client
            .agent_desired_vms(after, Duration::from_secs(25));
        let result = tokio::select! {
            r = fetch => r,
            _ = stop.changed() => break,
        };
        match result {
            Ok(desired) => {
                backoff = Duration::from_millis(200);
                apply(&shared, desired.vms, desired.full, &desired.removed, first);
                first = false;
                after = Some(desired.revision);
            }
            Err(novacron_client::ClientError::Api(e))
                if e.code == novacron_api_types::ErrorCode::Unauthenticated =>
            {
                // The node was deleted: say so once and stop, instead of retrying forever.
                shared.mark_revoked(&e.message);
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch desired VMs; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    // The agent is stopping: workers end, QEMU processes keep running for the next agent.
    for (_, w) in shared
        .workers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
    {
        w.task.abort();
    }
}

fn key(project: &str, name: &str) -> String {
    format!("{project}/{name}")
}

/// Hands each desired VM to its worker, starts workers for new VMs, and retires workers (and
/// local leftovers) of VMs no longer placed here. `full`: `vms` is everything placed here;
/// otherwise only what changed, with `removed` gone from this node.
fn apply(shared: &Arc<Shared>, vms: Vec<DesiredVm>, full: bool, removed: &[String], first: bool) {
    let mut workers = shared.workers.lock().unwrap_or_else(|p| p.into_inner());
    workers.retain(|_, w| !w.task.is_finished());
    let wanted: HashSet<String> = vms.iter().map(|v| key(&v.project, &v.name)).collect();
    for vm in vms {
        let k = key(&vm.project, &vm.name);
        match workers.get(&k) {
            Some(w) if w.uuid == vm.uuid => {
                w.desired.send_replace(vm);
            }
            Some(w) => {
                // Same name, another VM: the old worker cleans up first; the new one starts
                // with a later list, once the old one is done.
                w.orphaned.send_replace(true);
            }
            None => {
                workers.insert(k, spawn_worker(shared.clone(), vm));
            }
        }
    }
    for (k, w) in workers.iter() {
        let gone = if full {
            !wanted.contains(k)
        } else {
            removed.contains(k)
        };
        if gone {
            w.orphaned.send_replace(true);
        }
    }
    if first && full {
        // VM directories nobody asks for any more (deleted or moved while the agent was down).
        for (project, name) in local_vm_dirs(shared) {
            if !wanted.contains(&key(&project, &name)) {
                let shared = shared.clone();
                tokio::spawn(async move { remove_orphan(&shared, &project, &name).await });
            }
        }
    }
}

fn local_vm_dirs(shared: &Shared) -> Vec<(String, String)> {
    let mut out = vec![];
    let root = shared.data_dir.join("vms");
    for p in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let Ok(project) = p.file_name().into_string() else {
            continue;
        };
        for v in std::fs::read_dir(p.path()).into_iter().flatten().flatten() {
            if let Ok(name) = v.file_name().into_string() {
                out.push((project.clone(), name));
            }
        }
    }
    out
}

async fn remove_orphan(shared: &Shared, project: &str, name: &str) {
    if let Some(f) = &shared.fence {
        f.release(&key(project, name));
    }
    let dir = shared.vm_dir(project, name);
    let run_dir = RunDir::new(dir.join("run"));
    if let Ok(Some(vm)) = novacron_qemu::adopt(&run_dir).await {
        tracing::warn!(
            vm = name,
            pid = vm.pid(),
            "stopping a VM that is no longer placed on this node"
        );
        let _ = vm.kill().await;
    }
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => tracing::info!(vm = name, "removed the files of a VM no longer placed here"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(vm = name, error = %e, "cannot remove leftover VM files"),
    }
}

fn spawn_worker(shared: Arc<Shared>, vm: DesiredVm) -> WorkerHandle {
    let (desired_tx, desired_rx) = watch::channel(vm.clone());
    let (orphaned_tx, orphaned_rx) = watch::channel(false);
    let running = Arc::new(AtomicBool::new(false));
    let live: LiveVm = Default::default();
    let disk_lock = Arc::new(tokio::sync::Mutex::new(()));
    let (report_tx, report_rx) = watch::channel(None);
    tokio::spawn(report_loop(
        shared.clone(),
        vm.project.clone(),
        vm.name.clone(),
        report_rx,
    ));
    let dir = shared.vm_dir(&vm.project, &vm.name);
    let worker = Worker {
        run_dir: RunDir::new(dir.join("run")),
        dir,
        local: LocalState::default(),
        vm: None,
        last_crash: None,
        desired: desired_rx,
        orphaned: orphaned_rx,
        report_tx,
        running: running.clone(),
        live: live.clone(),
        disk_lock: disk_lock.clone(),
        guest_interfaces: Vec::new(),
        guest_watch: None,
        shared,
        name: vm.name.clone(),
    };
    WorkerHandle {
        uuid: vm.uuid,
        desired: desired_tx,
        orphaned: orphaned_tx,
        running,
        live,
        disk_lock,
        task: tokio::spawn(worker.run()),
    }
}

/// Sends the latest report of one VM, retrying until the control plane takes it. A newer
/// report supersedes one not sent yet; the last one is delivered even after the worker ended.
async fn report_loop(
    shared: Arc<Shared>,
    project: String,
    name: String,
    mut rx: watch::Receiver<Option<VmStatusReport>>,
) {
    loop {
        let Some(report) = rx.borrow_and_update().clone() else {
            if rx.changed().await.is_err() {
                return;
            }
            continue;
        };
        let mut delay = Duration::from_millis(100);
        loop {
            let sent = {
                let _slot = shared.report_slots.acquire().await;
                shared
                    .client
                    .agent_report_status(&project, &name, &report)
                    .await
            };
            match sent {
                Ok(()) => break,
                Err(ClientError::Api(e))
                    if matches!(e.code, ErrorCode::NotFound | ErrorCode::Conflict) =>
                {
                    // The VM is gone or lives elsewhere now; nothing to tell.
                    tracing::debug!(vm = %name, error = %e, "status report not needed any more");
                    break;
                }
                Err(e) => {
                    tracing::warn!(vm = %name, error = %e, "status report failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    if rx.has_changed().unwrap_or(false) {
                        break; // a newer report replaces this one
                    }
                }
            }
        }
        if report.deleted {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// What the worker remembers across agent restarts (`<vm dir>/state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LocalState {
    uuid: String,
    /// The last generation of desired state acted on.
    acted_generation: u64,
    /// The generation of the last restore applied to the disk.
    #[serde(default)]
    restored_generation: u64,
}

struct Worker {
    shared: Arc<Shared>,
    name: String,
    dir: PathBuf,
    run_dir: RunDir,
    local: LocalState,
    vm: Option<Arc<RunningVm>>,
    last_crash: Option<String>,
    desired: watch::Receiver<DesiredVm>,
    orphaned: watch::Receiver<bool>,
    report_tx: watch::Sender<Option<VmStatusReport>>,
    running: Arc<AtomicBool>,
    live: LiveVm,
    disk_lock: Arc<tokio::sync::Mutex<()>>,
    /// What the running guest's agent last said of its interfaces, and the watch that says.
    guest_interfaces: Vec<novacron_api_types::GuestInterface>,
    guest_watch: Option<tokio::sync::mpsc::Receiver<Vec<novacron_api_types::GuestInterface>>>,
}

/// How a worker's loop ends.
enum Done {
    Continue,
    Finished,
}

async fn next_event(
    rx: &mut Option<broadcast::Receiver<novacron_qemu::QmpEvent>>,
) -> Option<novacron_qemu::QmpEvent> {
    match rx {
        Some(r) => loop {
            match r.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await;
                }
            }
        },
        None => std::future::pending().await,
    }
}

async fn wait_exit(vm: &Option<Arc<RunningVm>>) -> novacron_qemu::ExitInfo {
    match vm {
        Some(v) => v.wait_exit().await,
        None => std::future::pending().await,
    }
}

impl Worker {
    fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn load_local(&mut self, uuid: &str) {
        if let Ok(b) = std::fs::read(self.state_file())
            && let Ok(s) = serde_json::from_slice::<LocalState>(&b)
            && s.uuid == uuid
        {
            self.local = s;
            return;
        }
        self.local = LocalState {
            uuid: uuid.to_string(),
            ..LocalState::default()
        };
    }

    fn save_local(&self) {
        let Ok(bytes) = serde_json::to_vec(&self.local) else {
            return;
        };
        if let Err(e) = std::fs::create_dir_all(&self.dir)
            .and_then(|_| crate::host::write_atomic(&self.state_file(), &bytes, 0o644))
        {
            tracing::warn!(vm = %self.name, error = %e, "cannot record the VM's local state");
        }
    }

    fn key(&self) -> String {
        let d = self.desired.borrow();
        key(&d.project, &d.name)
    }

    fn set_vm(&mut self, vm: Option<RunningVm>) {
        self.vm = vm.map(Arc::new);
        self.guest_interfaces.clear();
        self.guest_watch = match (&self.vm, self.shared.hollow) {
            (Some(vm), false) => Some(crate::guest_info::watch(vm.clone())),
            _ => None,
        };
        self.running.store(self.vm.is_some(), Ordering::Relaxed);
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = self.vm.clone();
        let ha = self.desired.borrow().ha == HaPolicy::Restart;
        if let Some(f) = &self.shared.fence {
            match &self.vm {
                Some(v) if ha => f.guard(&self.key(), v.pid(), self.run_dir.path()),
                _ => f.release(&self.key()),
            }
        }
    }

    fn disk_dir(&self, d: &DesiredVm) -> PathBuf {
        disk_dir(&self.shared, d)
    }

    /// A hollow node (scale tests): desired state becomes observed state at once.
    async fn run_hollow(mut self) {
        loop {
            let d = self.desired.borrow_and_update().clone();
            if d.generation > self.local.acted_generation {
                self.local.acted_generation = d.generation;
                if d.deleting {
                    self.report_tx.send_replace(Some(VmStatusReport {
                        observed_generation: d.generation,
                        state: VmState::Stopped,
                        reason: None,
                        pid: None,
                        accel_in_use: None,
                        error: None,
                        guest_initiated_stop: false,
                        deleted: true,
                        guest_interfaces: Vec::new(),
                    }));
                    return;
                }
                let state = match d.power {
                    PowerState::Running => VmState::Running,
                    PowerState::Paused => VmState::Paused,
                    PowerState::Stopped => VmState::Stopped,
                };
                self.running
                    .store(state == VmState::Running, Ordering::Relaxed);
                self.report(state, Some("hollow node: no QEMU".into()), None, false);
            }
            tokio::select! {
                r = self.desired.changed() => if r.is_err() { return },
                r = self.orphaned.changed() => if r.is_err() || *self.orphaned.borrow() { return },
            }
        }
    }

    async fn run(mut self) {
        if self.shared.hollow {
            return self.run_hollow().await;
        }
        let first = self.desired.borrow().clone();
        self.load_local(&first.uuid);
        match novacron_qemu::adopt(&self.run_dir).await {
            Ok(Some(vm)) => {
                tracing::info!(vm = %self.name, pid = vm.pid(), "adopted a running QEMU");
                self.set_vm(Some(vm));
            }
            Ok(None) => {
                if self.local.acted_generation > 0
                    && first.power != PowerState::Stopped
                    && !first.deleting
                {
                    // It should be running but its QEMU is gone: it died while no agent watched.
                    let tail = self.run_dir.qemu_log_tail(4);
                    self.last_crash = Some(if tail.trim().is_empty() {
                        "QEMU exited while the agent was not running".to_string()
                    } else {
                        format!(
                            "QEMU exited while the agent was not running: {}",
                            tail.trim()
                        )
                    });
                }
            }
            Err(e) => {
                tracing::warn!(vm = %self.name, error = %e, "cannot check for a running QEMU")
            }
        }
        if !self.shared.hollow {
            crate::migration::recover_outgoing(
                &self.shared,
                &self.dir,
                self.vm.as_deref(),
                first.power == PowerState::Running,
            )
            .await;
        }
        if self.local.acted_generation > 0 {
            self.report_observed(None).await;
        }
        let mut events = self.vm.as_ref().map(|v| v.qmp().subscribe());
        loop {
            let d = self.desired.borrow_and_update().clone();
            if d.generation > self.local.acted_generation {
                match self.act(&d).await {
                    Done::Finished => return,
                    Done::Continue => {}
                }
                events = self.vm.as_ref().map(|v| v.qmp().subscribe());
                continue;
            }
            let vm = self.vm.clone();
            tokio::select! {
                r = self.desired.changed() => {
                    if r.is_err() { return; }
                }
                r = self.orphaned.changed() => {
                    if r.is_err() || *self.orphaned.borrow() {
                        // Deleted while we were away, or moved to another node: stop it here
                        // and drop the local files, never a disk on shared storage.
                        let _ = self.remove_local().await;
                        return;
                    }
                }
                Some(ev) = next_event(&mut events) => {
                    self.on_event(&ev).await;
                }
                exit = wait_exit(&vm) => {
                    self.on_exit(exit).await;
                    events = None;
                }
                seen = crate::guest_info::next(&mut self.guest_watch) => {
                    self.guest_interfaces = seen;
                    self.report_observed(None).await;
                }
            }
        }
    }

    async fn on_event(&mut self, ev: &novacron_qemu::QmpEvent) {
        tracing::debug!(vm = %self.name, event = %ev.event, "QMP event");
        match ev.event.as_str() {
            "STOP" | "RESUME" | "RESET" => self.report_observed(None).await,
            "SHUTDOWN" => {
                // The process exit that follows decides between stopped and crashed.
                self.report(VmState::Stopping, None, None, false);
            }
            _ => {}
        }
    }

    async fn on_exit(&mut self, exit: novacron_qemu::ExitInfo) {
        self.set_vm(None);
        if exit.is_crash() {
            tracing::warn!(vm = %self.name, reason = %exit.reason, "VM crashed");
            self.last_crash = Some(exit.reason.clone());
            self.report(VmState::Crashed, Some(exit.reason), None, false);
        } else {
            tracing::info!(vm = %self.name, reason = %exit.reason, "VM powered off");
            self.last_crash = None;
            self.report(VmState::Stopped, Some(exit.reason), None, !exit.requested);
        }
    }

    /// Reports what QEMU says now (or stopped/crashed when there is no process).
    async fn report_observed(&mut self, error: Option<String>) {
        let state = self.observe().await;
        let reason = if state == VmState::Crashed {
            self.last_crash.clone()
        } else {
            None
        };
        self.report(state, reason, error, false);
    }

    async fn observe(&self) -> VmState {
        match &self.vm {
            Some(vm) => match vm.qmp().query_status().await {
                Ok(s) if s.running => VmState::Running,
                Ok(s) if s.status == "inmigrate" || s.status == "postmigrate" => VmState::Migrating,
                Ok(_) => VmState::Paused,
                Err(_) => VmState::Stopping,
            },
            None if self.last_crash.is_some() => VmState::Crashed,
            None => VmState::Stopped,
        }
    }

    fn report(
        &self,
        state: VmState,
        reason: Option<String>,
        error: Option<String>,
        guest_stop: bool,
    ) {
        let pid = self.vm.as_ref().map(|v| v.pid());
        self.report_tx.send_replace(Some(VmStatusReport {
            observed_generation: self.local.acted_generation,
            state,
            reason,
            pid,
            accel_in_use: self
                .vm
                .as_ref()
                .and_then(|v| v.spec().map(|s| s.accel.to_string())),
            error,
            guest_initiated_stop: guest_stop,
            deleted: false,
            guest_interfaces: if state == VmState::Running {
                self.guest_interfaces.clone()
            } else {
                Vec::new()
            },
        }));
    }

    /// Acts on a new generation of desired state.
    async fn act(&mut self, d: &DesiredVm) -> Done {
        tracing::info!(vm = %self.name, generation = d.generation, power = ?d.power, deleting = d.deleting, "acting on desired state");
        // Wait for a backup of this VM to finish before changing its power state or files.
        let disk_lock = self.disk_lock.clone();
        let _busy = disk_lock.lock().await;
        if d.deleting {
            self.remove_everything().await;
            return Done::Finished;
        }
        let transitional = match (d.power, self.vm.is_some()) {
            (PowerState::Running, false) => Some(VmState::Starting),
            (PowerState::Stopped, true) => Some(VmState::Stopping),
            _ => None,
        };
        if let Some(t) = transitional {
            self.report(t, None, None, false);
        }
        let result = match self.clone_if_asked(d).await {
            Ok(()) => self.restore_if_asked(d).await,
            Err(e) => Err(e),
        };
        let result = match result {
            Ok(()) => self.apply_power(d).await,
            Err(e) => Err(e),
        };
        self.local.acted_generation = d.generation;
        self.save_local();
        match result {
            Ok(()) => self.report_observed(None).await,
            Err(e) => {
                tracing::warn!(vm = %self.name, error = %e, "acting on desired state failed");
                self.report_observed(Some(e)).await;
            }
        }
        Done::Continue
    }

    /// Makes a clone's disk from its source's (`vm clone`), once: before this worker first
    /// acted, while the disk does not exist yet (a migrated or restarted clone has its own).
    async fn clone_if_asked(&mut self, d: &DesiredVm) -> Result<(), String> {
        let Some(src) = &d.clone_of else {
            return Ok(());
        };
        let disk = self.disk_dir(d).join("disk0.qcow2");
        if self.local.acted_generation > 0 || tokio::fs::try_exists(&disk).await.unwrap_or(false) {
            return Ok(());
        }
        crate::disk::clone_disk(&self.shared, src, d, &disk).await
    }

    /// Fills the disk from a backup when the desired state asks for a restore not yet done.
    async fn restore_if_asked(&mut self, d: &DesiredVm) -> Result<(), String> {
        let Some(r) = &d.restore else { return Ok(()) };
        if r.generation <= self.local.restored_generation {
            return Ok(());
        }
        if self.vm.is_some() {
            return Err("the VM is running; stop it before restoring over its disk".into());
        }
        let dir = self.disk_dir(d);
        tracing::info!(vm = %self.name, backup = %r.backup, repo = %r.repo.name, "restoring the disks from a backup");
        crate::backup::restore_disks(&r.repo, &r.backup, &dir, &self.shared.node_name).await?;
        self.local.restored_generation = r.generation;
        self.save_local();
        Ok(())
    }

    async fn apply_power(&mut self, d: &DesiredVm) -> Result<(), String> {
        match d.power {
            PowerState::Stopped => {
                self.prepare(d).await?;
                if let Some(vm) = self.vm.clone() {
                    let exit = if d.force {
                        vm.kill().await
                    } else {
                        vm.shutdown(self.shared.stop_timeout).await
                    }
                    .map_err(|e| format!("stopping QEMU: {e}"))?;
                    tracing::info!(vm = %self.name, reason = %exit.reason, "VM stopped");
                    self.set_vm(None);
                }
                self.last_crash = None;
                Ok(())
            }
            PowerState::Running => {
                match self.vm.clone() {
                    None => {
                        let spec = self.prepare(d).await?;
                        self.last_crash = None;
                        let vm = novacron_qemu::launch(&spec, &self.run_dir)
                            .await
                            .map_err(|e| format!("starting QEMU: {e}"))?;
                        tracing::info!(vm = %self.name, pid = vm.pid(), accel = %spec.accel, "VM started");
                        self.set_vm(Some(vm));
                    }
                    Some(vm) => {
                        let st = vm.qmp().query_status().await.map_err(|e| e.to_string())?;
                        if d.action == Some(VmAction::Reboot) {
                            vm.qmp()
                                .system_reset()
                                .await
                                .map_err(|e| format!("reset: {e}"))?;
                        }
                        if !st.running {
                            vm.qmp().cont().await.map_err(|e| format!("resume: {e}"))?;
                        }
                    }
                }
                Ok(())
            }
            PowerState::Paused => match self.vm.clone() {
                Some(vm) => vm.qmp().stop().await.map_err(|e| format!("pause: {e}")),
                None => Err("the VM is not running; start it first".into()),
            },
        }
    }

    async fn prepare(&self, d: &DesiredVm) -> Result<VmSpec, String> {
        prepare_spec(&self.shared, &self.dir, d, false).await
    }

    /// Stops the VM if it runs here and removes its files on this node (not a disk in a
    /// storage pool).
    async fn remove_local(&mut self) -> Result<(), String> {
        if let Some(vm) = self.vm.clone() {
            if let Err(e) = vm.kill().await {
                tracing::warn!(vm = %self.name, error = %e, "killing QEMU failed");
            }
            self.set_vm(None);
        } else if let Ok(Some(vm)) = novacron_qemu::adopt(&self.run_dir).await {
            let _ = vm.kill().await;
        }
        if let Some(f) = &self.shared.fence {
            f.release(&self.key());
        }
        match tokio::fs::remove_dir_all(&self.dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                tracing::warn!(vm = %self.name, error = %e, "cannot remove the VM's files");
                Err(format!("cannot remove {}: {e}", self.dir.display()))
            }
        }
    }

    /// Deletes the VM: stops it, removes its files here and its disk in a storage pool,
    /// and reports `deleted`.
    async fn remove_everything(&mut self) {
        let d = self.desired.borrow().clone();
        let mut result = self.remove_local().await;
        if result.is_ok() && d.storage.is_some() {
            let shared = self.disk_dir(&d);
            if let Err(e) = tokio::fs::remove_dir_all(&shared).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                result = Err(format!("cannot remove {}: {e}", shared.display()));
            }
        }
        if let Err(e) = result {
            self.report(VmState::Stopped, None, Some(e), false);
            return;
        }
        tracing::info!(vm = %self.name, "VM removed from this node");
        self.report_tx.send_replace(Some(VmStatusReport {
            observed_generation: d.generation,
            state: VmState::Stopped,
            reason: None,
            pid: None,
            accel_in_use: None,
            error: None,
            guest_initiated_stop: false,
            deleted: true,
            guest_interfaces: Vec::new(),
        }));
    }
}

/// Makes sure the VM's disk (and cloud-init seed) exist in `dir`, and returns its QEMU spec
/// (also used to prepare the destination of a migration, which must match the source).
///
/// TCG guests get 8 KiB more RAM than asked: QEMU before 9.0 loses guest writes during live
/// migration when a TCG guest's RAM is a multiple of 256 KiB (see `novacron_migrate::compat`).
///
/// `incoming`: for a live migration's destination, whose TPM starts empty (QEMU fills it).
pub(crate) async fn prepare_spec(
    shared: &Shared,
    dir: &std::path::Path,
    d: &DesiredVm,
    incoming: bool,
) -> Result<VmSpec, String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let run_as = shared.vm_users.assign(dir)?;

    let accel = novacron_qemu::resolve_accel(match d.accel {
        AccelChoice::Auto => novacron_qemu::AccelChoice::Auto,
        AccelChoice::Kvm => novacron_qemu::AccelChoice::Kvm,
        AccelChoice::Tcg => novacron_qemu::AccelChoice::Tcg,
    })
    .map_err(|e| e.to_string())?;
    let disk_dir = disk_dir(shared, d);
    tokio::fs::create_dir_all(&disk_dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", disk_dir.display()))?;
    if let Some(who) = &run_as
        && disk_dir != dir
    {
        shared.vm_users.give_pool_dir(&disk_dir, who)?;
    }
    // Kernels, initrds and base images are read by the VM's user through the images group.
    let share = |path: PathBuf| -> Result<PathBuf, String> {
        shared.vm_users.share_image(&path)?;
        Ok(path)
    };
    let disk = disk_dir.join("disk0.qcow2");
    let disk_exists = tokio::fs::try_exists(&disk).await.unwrap_or(false);
    let mut seed_iso = None;
    let image = d
        .image
        .as_ref()
        .ok_or_else(|| "the VM's image no longer exists in the cluster".to_string())?;
    let boot = match &image.kind {
        ImageKind::Kernel { cmdline } => {
            let kernel = share(shared.images.ensure(image, "kernel").await?)?;
            let initrd = share(shared.images.ensure(image, "initrd").await?)?;
            if novacron_api_types::disks::image_disk_format(image).is_some() && !disk_exists {
                // A kernel image made by `vm template` carries the disk VMs start from.
                let mut base = share(shared.images.ensure(image, "disk").await?)?;
                if let Some(pool) = &d.storage {
                    base = share(shared_base_copy(&base, &PathBuf::from(&pool.path)).await?)?;
                }
                let size = d.disk_bytes;
                create_then_rename(&disk, |tmp| async move {
                    novacron_qemu::create_overlay(
                        &base,
                        novacron_qemu::DiskFormat::Qcow2,
                        &tmp,
                        size,
                    )
                    .await
                })
                .await?;
            } else if let Some(size) = d.disk_bytes
                && !disk_exists
            {
                create_then_rename(&disk, |tmp| async move {
                    novacron_qemu::create_blank(&tmp, novacron_qemu::DiskFormat::Qcow2, size).await
                })
                .await?;
            }
            Boot::Kernel {
                kernel,
                initrd: Some(initrd),
                cmdline: cmdline.clone(),
            }
        }
        ImageKind::Iso => {
            // An installer: a blank disk to install onto, the ISO (below) booted after it.
            if !disk_exists {
                let size = d.disk_bytes.ok_or_else(|| {
                    format!(
                        "image {} is an ISO 9660 medium and the VM has no disk size to install onto",
                        image.name
                    )
                })?;
                create_then_rename(&disk, |tmp| async move {
                    novacron_qemu::create_blank(&tmp, novacron_qemu::DiskFormat::Qcow2, size).await
                })
                .await?;
            }
            Boot::Disk
        }
        ImageKind::Disk { format } => {
            let mut base = share(shared.images.ensure(image, "disk").await?)?;
            if let Some(pool) = &d.storage {
                // Every node must reach the overlay's backing file: keep a copy in the pool.
                base = share(shared_base_copy(&base, &PathBuf::from(&pool.path)).await?)?;
            }
            let base_format = match format {
                novacron_api_types::DiskFormat::Qcow2 => novacron_qemu::DiskFormat::Qcow2,
                novacron_api_types::DiskFormat::Raw => novacron_qemu::DiskFormat::Raw,
            };
            if !disk_exists {
                let size = d.disk_bytes;
                create_then_rename(&disk, |tmp| async move {
                    novacron_qemu::create_overlay(&base, base_format, &tmp, size).await
                })
                .await?;
            }
            let seed = dir.join("seed.iso");
            novacron_qemu::NoCloudSeed {
                instance_id: d.uuid.clone(),
                hostname: d.name.clone(),
                ssh_authorized_keys: d.ssh_keys.clone(),
                user_data: d.user_data.clone(),
                vendor_data: d.vendor_data.clone(),
                ..novacron_qemu::NoCloudSeed::default()
            }
            .write(&seed)
            .map_err(|e| format!("cloud-init seed: {e}"))?;
            seed_iso = Some(seed);
            Boot::Disk
        }
    };
    let cdrom = match &d.iso {
        Some(iso) => Some(share(shared.images.ensure(iso, "iso").await?)?),
        None => None,
    };
    let has_disk = tokio::fs::try_exists(&disk).await.unwrap_or(false);
    let nics = match &d.network {
        Network::User { forwards } => vec![NicSpec::User {
            forwards: forwards
                .iter()
                .map(|f| novacron_qemu::PortForward {
                    host_port: f.host_port,
                    guest_port: f.guest_port,
                })
                .collect(),
        }],
        Network::Bridge { bridge } => vec![NicSpec::Bridge {
            bridge: bridge.clone(),
            mac: mac_from_uuid(&d.uuid),
        }],
        Network::None => vec![],
    };
    let mut nics = nics;
    for nic in &d.nics {
        // The overlay loop makes the bridge once the control plane shows the VM here.
        crate::overlay::wait_for_bridge(nic.vni, OVERLAY_BRIDGE_WAIT).await?;
        crate::overlay::wait_for_lease(nic.vni, &nic.mac, LEASE_WAIT).await;
        nics.push(NicSpec::Bridge {
            bridge: format!("ncbr{}", nic.vni),
            mac: nic.mac.clone(),
        });
    }
    let mut plugged_nics = Vec::new();
    for nic in &d.added_nics {
        if let novacron_api_types::nics::NicLink::Network { vni, .. } = &nic.link {
            crate::overlay::wait_for_bridge(*vni, OVERLAY_BRIDGE_WAIT).await?;
            crate::overlay::wait_for_lease(*vni, &nic.mac, LEASE_WAIT).await;
        }
        plugged_nics.push(crate::nic::plugged(nic));
    }
    let mut plugged_disks = Vec::new();
    for added in &d.data_disks {
        let path = disk_dir.join(format!("{}.qcow2", added.name));
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            // Added while the VM was stopped, or a migration's destination: a blank disk
            // (the destination's is filled by the source's mirror).
            let size = added.size_bytes;
            create_then_rename(&path, |tmp| async move {
                novacron_qemu::create_blank(&tmp, novacron_qemu::DiskFormat::Qcow2, size).await
            })
            .await?;
        }
        plugged_disks.push(novacron_qemu::PluggedDisk {
            node: added.name.clone(),
            path,
            format: novacron_qemu::DiskFormat::Qcow2,
            port: added.port,
        });
    }
    let uefi = match d.firmware {
        novacron_api_types::Firmware::Bios => None,
        novacron_api_types::Firmware::Uefi => Some(uefi_firmware(&disk_dir, d.secure_boot).await?),
    };
    let tpm = if d.tpm {
        let (root, node) = (
            disk_dir.join(novacron_qemu::tpm::STATE_ROOT),
            shared.node_name.clone(),
        );
        let tpm = tokio::task::spawn_blocking(move || {
            novacron_qemu::tpm::prepare_state(&root, &node, incoming)
        })
        .await
        .map_err(|e| format!("TPM state: {e}"))?
        .map_err(|e| e.to_string())?;
        Some(tpm)
    } else {
        None
    };
    // A host-local disk's backing files are named to QEMU, so that it keeps their page cache
    // at a migration's takeover too (see VmSpec::shared_storage).
    let backing = if has_disk && d.storage.is_none() {
        novacron_qemu::backing_chain(&disk, novacron_qemu::DiskFormat::Qcow2)
            .await
            .map_err(|e| format!("reading the backing files of {}: {e}", disk.display()))?
    } else {
        Vec::new()
    };
    Ok(VmSpec {
        name: d.name.clone(),
        uuid: d.uuid.clone(),
        cpus: d.cpus,
        memory_bytes: if accel == novacron_qemu::Accel::Tcg {
            novacron_migrate::compat::tcg_safe_ram_bytes(d.memory_bytes >> 20)
        } else {
            d.memory_bytes
        },
        accel,
        boot,
        disks: if has_disk {
            vec![DiskSpec {
                path: disk,
                format: novacron_qemu::DiskFormat::Qcow2,
                read_only: false,
                backing,
            }]
        } else {
            vec![]
        },
        nics,
        seed_iso,
        run_as,
        vnc: d.vnc,
        cdrom,
        hotplug_ports: d.hotplug_ports,
        plugged_disks,
        plugged_nics,
        uefi,
        tpm,
        shared_storage: d.storage.is_some(),
        ..VmSpec::default()
    })
}

/// OVMF's code and the VM's variable store in `disk_dir` (beside its disks, so a pool keeps
/// it for an HA restart), made from the package's template the first time. A migration's
/// destination makes a fresh one too: QEMU writes the migrated store into it when the guest
/// resumes there.
async fn uefi_firmware(
    disk_dir: &std::path::Path,
    secure_boot: bool,
) -> Result<novacron_qemu::firmware::Uefi, String> {
    use novacron_qemu::firmware::{OVMF_DIR, OvmfFiles, Uefi, VARS_FILE, ensure_vars};
    let vars = disk_dir.join(VARS_FILE);
    let (files, vars) = tokio::task::spawn_blocking(move || {
        let files = OvmfFiles::find(std::path::Path::new(OVMF_DIR), secure_boot)?;
        ensure_vars(&files.vars_template, &vars)?;
        Ok::<_, novacron_qemu::QemuError>((files, vars))
    })
    .await
    .map_err(|e| format!("UEFI variable store: {e}"))?
    .map_err(|e| e.to_string())?;
    Ok(Uefi {
        code: files.code,
        vars,
        secure_boot,
    })
}

/// Records, for the worker that will adopt an incoming VM's QEMU, that it was prepared at
/// `d.generation`: the worker then acts on the commit's generation (resuming the VM).
pub(crate) fn seed_local_state(shared: &Shared, d: &DesiredVm) {
    let state = LocalState {
        uuid: d.uuid.clone(),
        acted_generation: d.generation,
        restored_generation: d.restore.as_ref().map(|r| r.generation).unwrap_or(0),
    };
    let dir = shared.vm_dir(&d.project, &d.name);
    if let Ok(bytes) = serde_json::to_vec(&state)
        && let Err(e) = crate::host::write_atomic(&dir.join("state.json"), &bytes, 0o644)
    {
        tracing::warn!(vm = %d.name, error = %e, "cannot record the incoming VM's local state");
    }
}

/// The copy of a base image inside a storage pool (`<pool>/images/<file name>`), made once.
async fn shared_base_copy(
    local: &std::path::Path,
    pool: &std::path::Path,
) -> Result<PathBuf, String> {
    let name = local
        .file_name()
        .ok_or_else(|| "base image has no file name".to_string())?;
    let dir = pool.join("images");
    let dest = dir.join(name);
    if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
        return Ok(dest);
    }
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    tokio::fs::copy(local, &tmp)
        .await
        .map_err(|e| format!("copying the base image into the storage pool: {e}"))?;
    tokio::fs::rename(&tmp, &dest)
        .await
        .map_err(|e| format!("placing the base image in the storage pool: {e}"))?;
    Ok(dest)
}

/// Creates a file through a temporary name, so a crash never leaves a half-made disk in place.
pub(crate) async fn create_then_rename<F, Fut, E>(
    dest: &std::path::Path,
    make: F,
) -> Result<(), String>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let tmp = dest.with_extension("creating");
    let _ = tokio::fs::remove_file(&tmp).await;
    if let Err(e) = make(tmp.clone()).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(format!("creating the disk: {e}"));
    }
    tokio::fs::rename(&tmp, dest)
        .await
        .map_err(|e| format!("placing the disk: {e}"))
}

/// A stable locally administered MAC from the VM's UUID (52:54:00 is QEMU's prefix).
fn mac_from_uuid(uuid: &str) -> String {
    let h = blake3::hash(uuid.as_bytes());
    let b = h.as_bytes();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_stable_and_distinct() {
        assert_eq!(mac_from_uuid("a"), mac_from_uuid("a"));
        assert_ne!(mac_from_uuid("a"), mac_from_uuid("b"));
        assert!(mac_from_uuid("a").starts_with("52:54:00:"));
    }
}
