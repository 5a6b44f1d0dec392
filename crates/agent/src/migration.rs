//! Live migration on a node: receiving a VM (a QEMU started with `-incoming defer`, a DWCP
//! listener for the source) and sending one (the VM's QEMU streams through DWCP to the
//! destination). The switch-over is decided by the control plane only: the source asks it
//! to commit once the destination holds the whole state; a side that loses its peer asks it
//! what was decided. Markers in the VM directory let a restarted agent finish the job.
//!
//! The destination's DWCP listener accepts only the source node the control plane named,
//! proving the per-migration secret the control plane handed to both agents; and it resumes
//! the VM only once the control plane confirms the commit, never on the source's word alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::migration::{
    IncomingMigration, IncomingReady, MigrationMode, MigrationOutcome, MigrationProgress,
    MigrationReport, OutgoingMigration,
};
use novacron_api_types::{ApiError, ErrorCode, validate_name};
use novacron_migrate::postcopy::{self, Hook, PostcopyUse};
use novacron_migrate::{
    CancellationToken, Decision, DestinationParams, DiskMirror, MigrateError, MirrorSync,
    SourceParams,
};
use novacron_qemu::{RunDir, RunningVm};
use serde::{Deserialize, Serialize};

use crate::state::Shared;

/// File in the VM directory of the source while an outgoing migration runs.
pub const OUTGOING_MARKER: &str = "outgoing-migration.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct Marker {
    pub id: String,
}

/// Directory in the data dir that holds the work directories of running migrations.
const WORK_DIRS: &str = "migrations";

/// Longest socket path a work directory must leave room for (`sun_path` holds 108 bytes;
/// the longest name QEMU or the agent binds there is `incoming.sock`).
const MAX_WORK_DIR_LEN: usize = 108 - 1 - "/incoming.sock".len() - 4;

/// Where migration `id` keeps its sockets on this side: in the data dir, so a killed agent's
/// leftovers go with the data dir and are cleared when it starts again
/// ([`clear_stale_work_dirs`]); in the system temp dir only when the data dir's path is too
/// long for a Unix socket path.
fn work_dir(shared: &Shared, id: &str, side: &str) -> PathBuf {
    let name = format!("{id}-{side}");
    let inside = shared.data_dir.join(WORK_DIRS).join(&name);
    if inside.as_os_str().len() <= MAX_WORK_DIR_LEN {
        inside
    } else {
        std::env::temp_dir().join(format!("ncm-{name}"))
    }
}

/// Removes the work directories a previous run of this agent left behind (it was killed in
/// the middle of migrations; no migration runs before the agent has started) and prepares
/// the directory new ones go in, passable for the VMs' users.
pub fn clear_stale_work_dirs(data_dir: &std::path::Path) -> std::io::Result<()> {
    let dir = data_dir.join(WORK_DIRS);
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                tracing::info!(path = %entry.path().display(), "removing the work directory of a migration a previous run left behind");
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&dir)?,
        Err(e) => return Err(e),
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
}

/// Registers a cancel token for migration `id` on this node; removed by the guard on drop.
struct Registration {
    shared: Arc<Shared>,
    id: String,
}

impl Registration {
    fn new(shared: &Arc<Shared>, id: &str) -> Result<(Registration, CancellationToken), ApiError> {
        let token = CancellationToken::new();
        let mut m = shared.migrations.lock().unwrap_or_else(|p| p.into_inner());
        if m.contains_key(id) {
            return Err(ApiError::conflict(format!(
                "migration {id} is already running on this node"
            )));
        }
        m.insert(id.to_string(), token.clone());
        Ok((
            Registration {
                shared: shared.clone(),
                id: id.to_string(),
            },
            token,
        ))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared
            .migrations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Stops the work of migration `id` on this node (the control plane already recorded the abort).
pub fn cancel(shared: &Shared, id: &str) -> bool {
    match shared
        .migrations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
    {
        Some(t) => {
            t.cancel();
            true
        }
        None => false,
    }
}

fn progress_view(p: &novacron_migrate::MigrationProgress) -> MigrationProgress {
    MigrationProgress {
        phase: p.phase.to_string(),
        elapsed_ms: p.elapsed_ms,
        bytes_sent: p.bytes_on_wire,
        payload_bytes: p.payload_bytes,
        disk_payload_bytes: p.disk_payload_bytes,
        rate_bps: p.rate_bps,
        dirty_rate_bytes_per_sec: p.dirty_rate_bytes_per_sec,
        remaining_ram_bytes: p.remaining_ram_bytes,
        disk_remaining_bytes: p.disk_remaining_bytes,
        predicted_downtime_ms: p.predicted_downtime_ms,
        eta_seconds: p.eta_seconds,
        throttle_percent: p.throttle_percent,
        pause_floor_ms: p.pause_floor_ms,
        raised_max_downtime_ms: p.raised_max_downtime_ms,
        downtime_ms: p.downtime_ms,
        downtime_bound_ms: None,
        source_downtime_ms: p.source_downtime_ms,
        postcopy_switch_ms: p.postcopy_switch_ms,
        postcopy_reason: p.postcopy_reason.clone(),
        faults_served: p.faults_served,
        fault_latency_p50_ms: p.fault_latency_p50_ms,
        fault_latency_p99_ms: p.fault_latency_p99_ms,
    }
}

/// Tells the control plane this side failed (retried briefly; the other side and a restart
/// resolve it otherwise).
async fn report_failure(shared: &Shared, id: &str, why: &str) {
    let r = MigrationReport {
        progress: MigrationProgress {
            phase: "failed".into(),
            ..MigrationProgress::default()
        },
        failed: Some(why.to_string()),
        finished: false,
    };
    for attempt in 0..10u32 {
        match shared.client.agent_migration_report(id, &r).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(migration = id, error = %e, "cannot report the migration failure; retrying");
                tokio::time::sleep(Duration::from_millis(200 << attempt.min(4))).await;
            }
        }
    }
}

/// Asks the control plane what holds for migration `id`, giving up this side's claim: the
/// answer is final (committed, or aborted). Retries until the control plane answers.
pub async fn resolve(shared: &Shared, id: &str) -> MigrationOutcome {
    let mut delay = Duration::from_millis(200);
    loop {
        match shared.client.agent_migration_abort(id).await {
            Ok(o) => return o,
            Err(novacron_client::ClientError::Api(e)) if e.code == ErrorCode::NotFound => {
                return MigrationOutcome::Aborted;
            }
            Err(e) => {
                tracing::warn!(migration = id, error = %e, "cannot ask the control plane about the migration; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

// ---- destination --------------------------------------------------------------------------

/// Prepares to receive a VM: disk (empty overlay over the same image) and a QEMU waiting
/// for the incoming stream, plus a DWCP listener for the source. Returns where to connect.
pub async fn incoming(
    shared: Arc<Shared>,
    req: IncomingMigration,
) -> Result<IncomingReady, ApiError> {
    let d = &req.vm;
    validate_name("project", &d.project).map_err(|e| ApiError::invalid(e.to_string()))?;
    validate_name("vm", &d.name).map_err(|e| ApiError::invalid(e.to_string()))?;
    validate_name("node", &req.source).map_err(|e| ApiError::invalid(e.to_string()))?;
    let secret = novacron_dwcp::SessionSecret::from_hex(&req.secret.0)
        .map_err(|e| ApiError::invalid(format!("migration secret: {e}")))?;
    let key = format!("{}/{}", d.project, d.name);
    if shared
        .workers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .is_some_and(|w| w.is_live())
    {
        return Err(ApiError::conflict(format!(
            "VM {} is still on this node (its files are being removed); try again in a moment",
            d.name
        )));
    }
    let dir = shared.vm_dir(&d.project, &d.name);
    let run_dir = RunDir::new(dir.join("run"));
    if let Ok(Some(vm)) = novacron_qemu::adopt(&run_dir).await {
        // A leftover of an earlier attempt whose cleanup did not happen (agent restarted).
        tracing::warn!(vm = %d.name, pid = vm.pid(), "removing a leftover QEMU of an earlier incoming migration");
        let _ = vm.kill().await;
    }
    let (registration, cancel) = Registration::new(&shared, &req.id)?;
    let prepared = async {
        let mut spec = crate::worker::prepare_spec(&shared, &dir, d, true)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, e))?;
        // Post-copy needs userfaultfd in this QEMU, which runs as the VM's user (if any):
        // `--mode postcopy` is refused here, before anything starts; `auto` stays pre-copy.
        let postcopy_refusal =
            postcopy::destination_refusal(&postcopy::DestinationHost::probe(spec.run_as.is_some()));
        if req.mode == MigrationMode::Postcopy
            && let Some(why) = &postcopy_refusal
        {
            return Err(ApiError::invalid(format!(
                "node {}: {why}",
                shared.node_name
            )));
        }
        spec.incoming = Some("defer".into());
        spec.start_paused = true;
        let vm = novacron_qemu::launch(&spec, &run_dir).await.map_err(|e| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!("starting the destination QEMU: {e}"),
            )
        })?;
        Ok::<_, ApiError>((vm, postcopy_refusal))
    }
    .await;
    let (vm, postcopy_refusal) = match prepared {
        Ok(x) => x,
        Err(e) => {
            remove_vm_dir(&shared, d, &dir).await;
            return Err(e);
        }
    };
    // Only the source node, proving this migration's secret, gets a session here.
    let opts = novacron_dwcp::SessionOptions {
        peer_name: Some(req.source.clone()),
        secret: Some(secret),
        ..Default::default()
    };
    let bind = SocketAddr::new(shared.migration_ip, 0);
    let listener = match novacron_dwcp::Listener::bind(bind, &shared.dwcp_identity(), opts).await {
        Ok(l) => l,
        Err(e) => {
            let _ = vm.kill().await;
            remove_vm_dir(&shared, d, &dir).await;
            return Err(ApiError::unavailable(format!(
                "cannot listen for the migration stream on {bind}: {e}"
            )));
        }
    };
    let port = listener.local_addr().port();
    tracing::info!(migration = %req.id, vm = %d.name, port, "waiting for the migration stream (DWCP)");
    let host = if shared.advertise_host.contains(':') && !shared.advertise_host.starts_with('[') {
        format!("[{}]", shared.advertise_host)
    } else {
        shared.advertise_host.clone()
    };
    let base_images = base_images(&shared, d).await;
    let work = work_dir(&shared, &req.id, "d");
    if let Err(e) = crate::users::own_work_dir(&work, run_dir.path()) {
        let _ = vm.kill().await;
        remove_vm_dir(&shared, d, &dir).await;
        return Err(ApiError::unavailable(e));
    }
    let params = DestinationParams {
        work_dir: work,
        disks: req.disks.clone(),
        base_images,
        channel_base: 0,
        peer_timeout: Duration::from_secs(60),
        postcopy_refusal,
        // The VM resumes here in post-copy only when the control plane confirms the commit
        // the source recorded before switching.
        confirm_postcopy: Some({
            let shared = shared.clone();
            let id = req.id.clone();
            Hook::new(move || {
                let shared = shared.clone();
                let id = id.clone();
                Box::pin(async move {
                    match resolve(&shared, &id).await {
                        MigrationOutcome::Committed => Ok(()),
                        other => Err(format!("the control plane answered {other:?}")),
                    }
                })
            })
        }),
    };
    let task_shared = shared.clone();
    tokio::spawn(async move {
        let _registration = registration;
        let id = req.id.clone();
        let vm = Arc::new(vm);
        let outcome = receive(&task_shared, &req, &vm, listener, &params, &cancel).await;
        let _ = std::fs::remove_dir_all(&params.work_dir);
        match outcome {
            Ok(()) => {
                tracing::info!(migration = %id, vm = %req.vm.name, "incoming migration done: the VM runs here");
            }
            Err(why) => {
                tracing::warn!(migration = %id, vm = %req.vm.name, error = %why, "incoming migration failed; removing the destination copy");
                let _ = vm.kill().await;
                remove_vm_dir(
                    &task_shared,
                    &req.vm,
                    &task_shared.vm_dir(&req.vm.project, &req.vm.name),
                )
                .await;
                report_failure(
                    &task_shared,
                    &id,
                    &format!("destination {}: {why}", task_shared.node_name),
                )
                .await;
            }
        }
    });
    Ok(IncomingReady {
        dwcp_addr: format!("{host}:{port}"),
    })
}

/// Raw base images of the VM's image this node holds (pages equal to their blocks are not sent).
async fn base_images(shared: &Shared, d: &novacron_api_types::agent::DesiredVm) -> Vec<PathBuf> {
    match d.image.as_ref().map(|i| (&i.kind, i)) {
        Some((
            novacron_api_types::ImageKind::Disk {
                format: novacron_api_types::DiskFormat::Raw,
            },
            image,
        )) => shared
            .images
            .ensure(image, "disk")
            .await
            .map(|p| vec![p])
            .unwrap_or_default(),
        _ => vec![],
    }
}

/// Removes what an incoming migration made here: never a disk in a shared storage pool, but
/// this node's TPM state directory there.
async fn remove_vm_dir(shared: &Shared, d: &novacron_api_types::agent::DesiredVm, dir: &Path) {
    let placed_here = shared
        .workers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&format!("{}/{}", d.project, d.name))
        .is_some_and(|w| w.is_live());
    if placed_here {
        return; // the VM lives here after all; its worker owns the directory
    }
    if d.tpm && d.storage.is_some() {
        // This node's TPM state directory in the pool: what QEMU wrote there is not the VM's
        // state, and being the newest it would be taken by the VM's next start.
        let tpm_dir = crate::worker::disk_dir(shared, d)
            .join(novacron_qemu::tpm::STATE_ROOT)
            .join(&shared.node_name);
        match tokio::fs::remove_dir_all(&tpm_dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %tpm_dir.display(), error = %e, "cannot remove the destination's TPM state")
            }
        }
    }
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the destination copy")
        }
    }
}

/// Runs the destination side to the end: `Ok` when the VM runs here.
async fn receive(
    shared: &Arc<Shared>,
    req: &IncomingMigration,
    vm: &Arc<RunningVm>,
    listener: novacron_dwcp::Listener,
    params: &DestinationParams,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let session = tokio::select! {
        s = tokio::time::timeout(Duration::from_secs(120), listener.accept()) => match s {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("accepting the source's session: {e}")),
            Err(_) => return Err("the source did not connect within 120 s".into()),
        },
        _ = cancel.cancelled() => return Err("cancelled".into()),
    };
    // The listener stays open while the session lives: the source adds and re-dials streams.
    let _listener = listener;
    let ready = novacron_migrate::destination(vm.qmp(), &session, params, cancel)
        .await
        .map_err(|e| e.to_string())?;
    // The worker that adopts this QEMU after the commit acts on the commit's generation
    // (it resumes the VM if this task did not get to it).
    crate::worker::seed_local_state(shared, &req.vm);
    let decision = tokio::select! {
        d = ready.wait_decision(Duration::from_secs(120)) => d,
        _ = cancel.cancelled() => Decision::Unknown("cancelled".into()),
    };
    confirmed_commit(&req.id, decision, || resolve(shared, &req.id)).await?;
    // Committed: the VM is this node's now, whatever happens next. Never tear it down here; a
    // failed resume is retried by the VM's worker, which acts on the commit's generation.
    if let Err(e) = ready.resume().await {
        tracing::warn!(migration = %req.id, error = %e, "resuming after the commit failed; the VM's worker retries");
    }
    let _ = session.close().await;
    Ok(())
}

/// `Ok` when the VM may resume here: only the control plane's answer counts. The source's
/// `Go` (sent after its commit) says when to ask, never whether; `ask` gets the outcome from
/// the control plane (giving up this side's claim, so an unconfirmed commit ends aborted and
/// the source keeps the VM).
async fn confirmed_commit<F, Fut>(id: &str, decision: Decision, ask: F) -> Result<(), String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = MigrationOutcome>,
{
    match decision {
        Decision::Go => {
            tracing::info!(migration = %id, "the source reports the commit; confirming with the control plane");
            if ask().await == MigrationOutcome::Committed {
                return Ok(());
            }
            tracing::warn!(migration = %id, "the control plane does not confirm the commit the source reported");
            Err("the source reported a commit the control plane does not confirm; the VM stays on the source".into())
        }
        Decision::Abort(why) => Err(format!("the source aborted: {why}")),
        Decision::Unknown(why) => {
            tracing::warn!(migration = %id, why, "no decision from the source; asking the control plane");
            if ask().await == MigrationOutcome::Committed {
                Ok(())
            } else {
                Err("the switch-over was not committed".into())
            }
        }
    }
}

// ---- source -------------------------------------------------------------------------------

/// Starts sending a VM of this node to the destination named in `req`.
pub fn outgoing(shared: Arc<Shared>, req: OutgoingMigration) -> Result<(), ApiError> {
    validate_name("project", &req.project).map_err(|e| ApiError::invalid(e.to_string()))?;
    validate_name("vm", &req.vm).map_err(|e| ApiError::invalid(e.to_string()))?;
    let addr: SocketAddr = req
        .dwcp_addr
        .parse()
        .map_err(|e| ApiError::invalid(format!("dwcp_addr {:?}: {e}", req.dwcp_addr)))?;
    let secret = novacron_dwcp::SessionSecret::from_hex(&req.secret.0)
        .map_err(|e| ApiError::invalid(format!("migration secret: {e}")))?;
    let access = {
        let workers = shared.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers
            .get(&format!("{}/{}", req.project, req.vm))
            .map(|w| w.access(&shared))
    };
    let access =
        access.ok_or_else(|| ApiError::not_found(format!("VM {} is not on this node", req.vm)))?;
    let running = access.running.clone().ok_or_else(|| {
        ApiError::conflict(format!("VM {} has no QEMU running on this node", req.vm))
    })?;
    let (registration, cancel) = Registration::new(&shared, &req.id)?;
    let marker = shared.vm_dir(&req.project, &req.vm).join(OUTGOING_MARKER);
    let bytes = serde_json::to_vec(&Marker { id: req.id.clone() })
        .map_err(|e| ApiError::internal(e.to_string()))?;
    crate::host::write_atomic(&marker, &bytes, 0o644)
        .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", marker.display())))?;
    tokio::spawn(async move {
        let _registration = registration;
        // Backups and power changes of this VM wait until the migration is over.
        let _busy = access.disk_lock.lock().await;
        let id = req.id.clone();
        match send(&shared, &req, &running, addr, secret, &cancel).await {
            Ok(()) => {
                tracing::info!(migration = %id, vm = %req.vm, to = %req.destination, "VM moved")
            }
            Err(why) => {
                tracing::warn!(migration = %id, vm = %req.vm, error = %why, "outgoing migration failed; the VM stays here");
                report_failure(&shared, &id, &why).await;
            }
        }
        let _ = std::fs::remove_file(&marker);
    });
    Ok(())
}

/// Runs the source side: `Ok` once the destination runs the VM (the commit is recorded).
async fn send(
    shared: &Arc<Shared>,
    req: &OutgoingMigration,
    vm: &Arc<RunningVm>,
    addr: SocketAddr,
    secret: novacron_dwcp::SessionSecret,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let qmp = vm.qmp();
    if !req.offline {
        let memory = novacron_migrate::qapi::memory_bytes(qmp, "source")
            .await
            .map_err(|e| e.to_string())?;
        novacron_migrate::compat::check_dirty_tracking(qmp, memory)
            .await
            .map_err(|e| e.to_string())?;
    }
    let opts = novacron_dwcp::SessionOptions {
        server_name: req.destination.clone(),
        secret: Some(secret),
        ..Default::default()
    };
    // The commit's cost in the pause: the source's commit and the destination's confirmation,
    // one control-plane round trip each, timed on a report the control plane takes anyway.
    let commit_allowance = control_plane_round_trip(shared, &req.id).await * 2 + COMMIT_MARGIN;
    let identity = shared.dwcp_identity();
    let session = tokio::select! {
        s = novacron_dwcp::connect(addr, &identity, opts) => s.map_err(|e| format!("connecting to {} at {addr}: {e}", req.destination))?,
        _ = cancel.cancelled() => return Err("cancelled by a user".into()),
    };
    let work = work_dir(shared, &req.id, "s");
    // QEMU connects to the migration and NBD sockets there, as the VM's user.
    crate::users::own_work_dir(&work, vm.run_dir().path())?;
    let params = SourceParams {
        work_dir: work,
        max_downtime: Duration::from_millis(req.max_downtime_ms),
        max_downtime_raisable: req.max_downtime_default,
        bandwidth_limit_bps: req.bandwidth_bps,
        deadline: req.deadline_seconds.map(Duration::from_secs),
        offline: req.offline,
        disks: req
            .disks
            .iter()
            .map(|n| DiskMirror {
                node: n.clone(),
                sync: if req.full_disk {
                    MirrorSync::Full
                } else {
                    MirrorSync::Top
                },
            })
            .collect(),
        // `auto` and `precopy` both throttle a guest that outruns the link; only `auto` may
        // then switch to post-copy, `postcopy` switches after one pass.
        auto_converge: true,
        commit_allowance,
        postcopy: match req.mode {
            MigrationMode::Auto => PostcopyUse::WhenStuck,
            MigrationMode::Precopy => PostcopyUse::Never,
            MigrationMode::Postcopy => PostcopyUse::AfterFirstPass,
        },
        // Post-copy splits the VM across the two nodes: the commit (the VM is the
        // destination's) is recorded before QEMU switches, and the source never resumes after.
        commit_before_postcopy: Some({
            let shared = shared.clone();
            let id = req.id.clone();
            Hook::new(move || {
                let shared = shared.clone();
                let id = id.clone();
                Box::pin(async move {
                    match commit_or_resolve(&shared, &id).await {
                        MigrationOutcome::Committed => Ok(()),
                        other => Err(format!("the control plane answered {other:?}")),
                    }
                })
            })
        }),
        ..SourceParams::default()
    };
    let (ptx, prx) = tokio::sync::watch::channel(novacron_migrate::MigrationProgress::default());
    let reporter = tokio::spawn(report_progress(shared.clone(), req.id.clone(), prx));
    let result = novacron_migrate::source(qmp, &session, &params, &ptx, cancel).await;
    let _ = std::fs::remove_dir_all(&params.work_dir);
    let handover = match result {
        Ok(h) => h,
        Err(e) => {
            reporter.abort();
            return Err(match e {
                MigrateError::Cancelled => "cancelled by a user".to_string(),
                other => other.to_string(),
            });
        }
    };
    // The destination holds the whole state and the VM is paused here: ask for the commit.
    let outcome = commit_or_resolve(shared, &req.id).await;
    if outcome != MigrationOutcome::Committed {
        reporter.abort();
        let _ = handover
            .roll_back("the switch-over was not committed")
            .await;
        return Err("the switch-over was not committed (cancelled or given up by the destination); the VM runs here".into());
    }
    let summary = match handover.release_destination().await {
        // The destination confirms the commit with the control plane, resumes and says so:
        // the pause is measured from the source's STOP to its RESUME.
        Ok(released) => Ok(released.wait_resumed(RESUME_REPORT_WAIT).await),
        Err(e) => Err(format!(
            "the commit is recorded but telling the destination failed ({e}); it resumes the VM when it asks the control plane"
        )),
    };
    reporter.abort();
    let mut last = progress_view(&ptx.borrow());
    last.phase = "completed".into();
    if let Ok(s) = &summary {
        last.downtime_ms = s.downtime_ms;
        last.downtime_bound_ms = s.downtime_bound_ms;
        last.source_downtime_ms = s.qemu_downtime_ms;
        last.elapsed_ms = s.total_ms;
    }
    let _ = shared
        .client
        .agent_migration_report(
            &req.id,
            &MigrationReport {
                progress: last,
                failed: None,
                finished: true,
            },
        )
        .await;
    let _ = session.close().await;
    if let Err(e) = summary {
        tracing::warn!(migration = %req.id, error = %e, "after the commit");
    }
    Ok(())
}

/// Longest wait for the destination's word that the VM runs there (it confirms the commit with
/// the control plane first); without it the migration is done but its pause unknown.
const RESUME_REPORT_WAIT: Duration = Duration::from_secs(30);
/// Added to the measured commit round trips in the downtime budget (store write, `cont`).
const COMMIT_MARGIN: Duration = Duration::from_millis(10);

/// One round trip to the control plane, timed on a progress report (at most 1 s counted; a
/// failed report counts as 30 ms, the figure used before this was measured).
async fn control_plane_round_trip(shared: &Shared, id: &str) -> Duration {
    let r = MigrationReport {
        progress: MigrationProgress {
            phase: "preparing".into(),
            ..MigrationProgress::default()
        },
        failed: None,
        finished: false,
    };
    let t = std::time::Instant::now();
    match tokio::time::timeout(
        Duration::from_secs(1),
        shared.client.agent_migration_report(id, &r),
    )
    .await
    {
        Ok(Ok(())) => t.elapsed(),
        Ok(Err(_)) => Duration::from_millis(30),
        Err(_) => Duration::from_secs(1),
    }
}

/// Asks for the commit until the control plane answers; an unreachable control plane keeps
/// the VM paused here (never running on both sides).
async fn commit_or_resolve(shared: &Shared, id: &str) -> MigrationOutcome {
    let mut delay = Duration::from_millis(100);
    for _ in 0..8 {
        match shared.client.agent_migration_commit(id).await {
            Ok(o) => return o,
            Err(novacron_client::ClientError::Api(e)) => {
                tracing::warn!(migration = id, error = %e, "the control plane refused the commit");
                return resolve(shared, id).await;
            }
            Err(e) => {
                tracing::warn!(migration = id, error = %e, "commit not answered; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    resolve(shared, id).await
}

async fn report_progress(
    shared: Arc<Shared>,
    id: String,
    mut rx: tokio::sync::watch::Receiver<novacron_migrate::MigrationProgress>,
) {
    loop {
        let p = progress_view(&rx.borrow_and_update());
        let r = MigrationReport {
            progress: p,
            failed: None,
            finished: false,
        };
        if let Err(e) = shared.client.agent_migration_report(&id, &r).await {
            tracing::debug!(migration = %id, error = %e, "progress report failed");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// After an agent restart: a VM whose outgoing migration was cut short by the restart. The
/// control plane decides; when the VM stays here and QEMU is left paused by the migration,
/// it is resumed.
pub async fn recover_outgoing(
    shared: &Shared,
    vm_dir: &Path,
    vm: Option<&RunningVm>,
    want_running: bool,
) {
    let marker = vm_dir.join(OUTGOING_MARKER);
    let Ok(bytes) = std::fs::read(&marker) else {
        return;
    };
    let Ok(m) = serde_json::from_slice::<Marker>(&bytes) else {
        let _ = std::fs::remove_file(&marker);
        return;
    };
    let outcome = resolve(shared, &m.id).await;
    tracing::warn!(migration = %m.id, ?outcome, "an outgoing migration was interrupted by an agent restart");
    if outcome == MigrationOutcome::Aborted
        && want_running
        && let Some(vm) = vm
    {
        let _ = vm.qmp().execute("migrate_cancel", None).await;
        if let Err(e) = novacron_migrate::clear_leftovers(vm.qmp()).await {
            tracing::warn!(migration = %m.id, error = %e, "cannot remove what the interrupted migration left in QEMU");
        }
        if let Ok(st) = vm.qmp().query_status().await
            && !st.running
            && (st.status == "postmigrate"
                || st.status == "finish-migrate"
                || st.status == "paused")
            && let Err(e) = vm.qmp().cont().await
        {
            tracing::warn!(migration = %m.id, error = %e, "cannot resume the VM after the interrupted migration");
        }
    }
    let _ = std::fs::remove_file(&marker);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_destination_resumes_only_on_the_control_planes_word() {
        // The source says go, the control plane did not record the commit: stay paused.
        let r = confirmed_commit("mig-1", Decision::Go, || async {
            MigrationOutcome::Aborted
        })
        .await;
        assert!(r.unwrap_err().contains("does not confirm"));
        let r = confirmed_commit("mig-1", Decision::Go, || async {
            MigrationOutcome::Committed
        })
        .await;
        assert!(r.is_ok());
        // A silent source: the control plane decides alone.
        let r = confirmed_commit("mig-1", Decision::Unknown("cut".into()), || async {
            MigrationOutcome::Committed
        })
        .await;
        assert!(r.is_ok());
        // An abort from the source needs no question.
        let r = confirmed_commit("mig-1", Decision::Abort("x".into()), || async {
            panic!("asked the control plane after an abort")
        })
        .await;
        assert!(r.is_err());
    }
}
