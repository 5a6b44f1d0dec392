//! Backups and restores of this node's VMs. The control plane asks for a backup; the agent
//! runs it here, where QEMU's QMP socket and the disk are, and reports progress on the
//! operation. A restore is part of the desired state (`DesiredVm::restore`): the worker fills
//! the disk from the repository before it starts the VM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::agent::DesiredVm;
use novacron_api_types::backup::{BackupJob, BackupRepo, OperationUpdate, RepoLocation};
use novacron_api_types::{ApiError, OperationState};
use novacron_backup::live::{self, LiveBackupOptions, LiveDisk, StoppedDisk};
use novacron_backup::location::{self, Location};
use novacron_backup::repo::{BackupMeta, Progress, Repository};
use novacron_backup::{BackupError, BackupId, RetentionPolicy};
use novacron_qemu::{DiskFormat, RunningVm};
use tokio::sync::watch;

use crate::state::Shared;

/// The disk NovaCron gives every VM: `disk0.qcow2`, QEMU block node `disk0`.
pub const DISK_NAME: &str = "disk0";

/// What a backup needs from the VM's worker.
pub struct VmAccess {
    pub desired: DesiredVm,
    pub disk: PathBuf,
    pub running: Option<Arc<RunningVm>>,
    /// Held by a backup for its whole run, and by the worker while it changes the VM's power
    /// state: a VM is not started over a disk being read offline, nor stopped mid-backup.
    pub disk_lock: Arc<tokio::sync::Mutex<()>>,
    /// The worker's slot for its QEMU, to read again once `disk_lock` is held.
    pub live: crate::worker::LiveVm,
}

impl VmAccess {
    /// The VM's QEMU now (the worker may have started or stopped it since `running` was
    /// read): read it while holding `disk_lock`, which the worker holds while it does.
    pub fn current_vm(&self) -> Option<Arc<RunningVm>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The file of the VM's disk `disk` (`disk0` or an added one), beside the boot disk's.
    pub fn disk_file(&self, disk: &str) -> PathBuf {
        self.disk.with_file_name(format!("{disk}.qcow2"))
    }

    /// The names of the VM's disks: `disk0`, then the added ones.
    pub fn disk_names(&self) -> Vec<String> {
        std::iter::once(DISK_NAME.to_string())
            .chain(self.desired.data_disks.iter().map(|d| d.name.clone()))
            .collect()
    }
}

pub async fn open_repo(repo: &BackupRepo) -> Result<Repository, String> {
    let loc = match &repo.location {
        RepoLocation::Dir { path } => Location::Dir(path.clone()),
        RepoLocation::S3 { url } => Location::S3(url.clone()),
    };
    location::open(&loc, repo.key_file.as_deref().map(Path::new))
        .await
        .map_err(|e| format!("backup repository {}: {e}", repo.name))
}

/// Starts a backup job in the background; errors that make it impossible are returned at once.
pub fn start(shared: Arc<Shared>, vm: VmAccess, job: BackupJob) -> Result<(), ApiError> {
    if !vm.disk.exists() {
        return Err(ApiError::invalid(format!(
            "VM {} has no disk on this node to back up ({})",
            vm.desired.name,
            vm.disk.display()
        )));
    }
    let Ok(guard) = vm.disk_lock.clone().try_lock_owned() else {
        return Err(ApiError::conflict(format!(
            "VM {} is busy (another backup, or a start or stop in progress); try again when it is done",
            vm.desired.name
        )));
    };
    tokio::spawn(async move {
        let op = job.operation.clone();
        let name = vm.desired.name.clone();
        let (tx, rx) = watch::channel(None::<Progress>);
        let reporter = tokio::spawn(report_progress(shared.clone(), op.clone(), rx));
        let result = run(&shared, &vm, &job, tx).await;
        drop(guard);
        reporter.abort();
        let update = match result {
            Ok(msg) => {
                tracing::info!(vm = %name, %msg, "backup done");
                OperationUpdate {
                    state: OperationState::Succeeded,
                    message: msg,
                    progress: Some(1.0),
                }
            }
            Err(e) => {
                tracing::warn!(vm = %name, error = %e, "backup failed");
                OperationUpdate {
                    state: OperationState::Failed,
                    message: e,
                    progress: None,
                }
            }
        };
        // The final word must arrive: retry for a while (the control plane may be failing over).
        for attempt in 0..60 {
            match shared.client.agent_update_operation(&op, &update).await {
                Ok(()) => break,
                Err(e) if attempt == 59 => {
                    tracing::warn!(operation = %op, error = %e, "cannot report the backup's outcome")
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    });
    Ok(())
}

async fn report_progress(
    shared: Arc<Shared>,
    op: String,
    mut rx: watch::Receiver<Option<Progress>>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if rx.changed().await.is_err() {
            return;
        }
        let Some(p) = rx.borrow_and_update().clone() else {
            continue;
        };
        let fraction = if p.bytes_total > 0 {
            Some(p.bytes_done as f64 / p.bytes_total as f64)
        } else {
            None
        };
        let u = OperationUpdate {
            state: OperationState::Running,
            message: format!(
                "{}: {} of {} MiB read",
                p.disk,
                p.bytes_done >> 20,
                p.bytes_total >> 20
            ),
            progress: fraction,
        };
        if let Err(e) = shared.client.agent_update_operation(&op, &u).await {
            tracing::debug!(operation = %op, error = %e, "progress report not delivered");
        }
    }
}

async fn run(
    shared: &Shared,
    vm: &VmAccess,
    job: &BackupJob,
    progress: watch::Sender<Option<Progress>>,
) -> Result<String, String> {
    let repo = open_repo(&job.repo).await?;
    let mut spec = vm.desired.clone();
    spec.restore = None;
    let meta = BackupMeta {
        vm: vm.desired.name.clone(),
        project: Some(vm.desired.project.clone()),
        storage_limit: job
            .storage_limit
            .map(|l| l.max_bytes.saturating_sub(l.elsewhere_bytes)),
        vm_spec: serde_json::to_value(&spec).map_err(|e| e.to_string())?,
        labels: BTreeMap::from([("node".to_string(), node_name(shared))]),
        created_unix_ms: None,
    };
    let work = shared
        .vm_dir(&vm.desired.project, &vm.desired.name)
        .join("backup");
    if vm.running.is_some() {
        // QEMU opens the fleecing images and makes its NBD socket there, as the VM's user.
        let run_dir = shared
            .vm_dir(&vm.desired.project, &vm.desired.name)
            .join("run");
        crate::users::own_work_dir(&work, &run_dir)?;
    }
    let mut opts = LiveBackupOptions::new(&work);
    if vm.desired.firmware == novacron_api_types::Firmware::Uefi {
        // QEMU writes the guest's variables through to the file: read it as it is.
        opts.side_files.push(StoppedDisk {
            name: novacron_api_types::disks::UEFI_VARS.to_string(),
            path: vm.disk.with_file_name(novacron_qemu::firmware::VARS_FILE),
            format: DiskFormat::Raw,
        });
    }
    if vm.desired.tpm {
        // swtpm replaces its state file whole (written aside, renamed): read the newest.
        let root = vm.disk.with_file_name(novacron_qemu::tpm::STATE_ROOT);
        if let Some(state) = novacron_qemu::tpm::newest_state(&root, None) {
            opts.side_files.push(StoppedDisk {
                name: novacron_api_types::disks::TPM_STATE.to_string(),
                path: state,
                format: DiskFormat::Raw,
            });
        }
    }
    let report = move |p: Progress| {
        let _ = progress.send(Some(p));
    };
    let idx = match &vm.running {
        // Every disk in one backup: the boot disk, then the added ones.
        Some(q) => {
            let disks: Vec<LiveDisk> = vm
                .disk_names()
                .into_iter()
                .map(|name| LiveDisk {
                    node: name.clone(),
                    name,
                    format: DiskFormat::Qcow2,
                })
                .collect();
            live::backup_running_vm(q.qmp(), &disks, &repo, meta, &opts, &report).await
        }
        None => {
            let disks: Vec<StoppedDisk> = vm
                .disk_names()
                .into_iter()
                .map(|name| StoppedDisk {
                    path: vm.disk_file(&name),
                    name,
                    format: DiskFormat::Qcow2,
                })
                .collect();
            live::backup_stopped_disks(&repo, &disks, meta, &opts, &report).await
        }
    }
    .map_err(|e| match (e, job.storage_limit) {
        // `before` and `after`: what the project's backups hold in this repository without
        // and with this one.
        (BackupError::StorageLimit { before, after, .. }, Some(limit)) => limit.refusal(
            &vm.desired.project,
            limit.elsewhere_bytes.saturating_add(before),
            Some(after.saturating_sub(before)),
        ),
        (e, _) => format!("backup of {}: {e}", vm.desired.name),
    })?;
    let _ = std::fs::remove_dir_all(&work);
    let read: Vec<String> = idx
        .disks
        .iter()
        .map(|d| format!("{} {}", d.name, read_mode(&d.read_mode)))
        .collect();
    let mut msg = format!(
        "backup {} in {}: {} MiB stored of {} MiB read ({})",
        idx.id.0,
        job.repo.name,
        idx.stats.bytes_stored >> 20,
        idx.stats.bytes_read >> 20,
        read.join(", ")
    );
    if let Some(r) = &job.retention {
        let policy = RetentionPolicy {
            keep_last: r.keep_last,
            keep_hourly: r.keep_hourly,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
            keep_yearly: r.keep_yearly,
        };
        let project = Some(vm.desired.project.as_str());
        match repo
            .prune(&policy, project, Some(&vm.desired.name), false)
            .await
        {
            Ok(p) => msg.push_str(&format!("; pruned {} old backup(s)", p.removed.len())),
            Err(e) => msg.push_str(&format!("; prune failed: {e}")),
        }
    }
    Ok(msg)
}

fn read_mode(m: &novacron_backup::ReadMode) -> String {
    match m {
        novacron_backup::ReadMode::Full { reason } if reason.is_empty() => "full read".into(),
        novacron_backup::ReadMode::Full { reason } => format!("full read: {reason}"),
        novacron_backup::ReadMode::Incremental { parent } => {
            format!("incremental after {}", parent.0)
        }
    }
}

fn node_name(shared: &Shared) -> String {
    shared.node_name.clone()
}

/// Fills the VM's disks in `dir` (`<name>.qcow2`) from the backup's: its boot disk (`disk0`,
/// or the only disk of a backup from elsewhere), each added disk, and a UEFI VM's variable
/// store (`efivars.fd`). Every old file is replaced only once its restore has succeeded. A
/// disk name in the backup that is not one NovaCron makes is refused before anything is
/// written (it becomes a file name).
pub async fn restore_disks(
    repo: &BackupRepo,
    backup: &str,
    dir: &Path,
    node: &str,
) -> Result<(), String> {
    let r = open_repo(repo).await?;
    let id = BackupId(backup.to_string());
    let idx = r
        .load_index(&id)
        .await
        .map_err(|e| format!("backup {backup}: {e}"))?;
    let boot = idx
        .disks
        .iter()
        .find(|d| d.name == DISK_NAME)
        .or_else(|| idx.disks.first())
        .ok_or_else(|| format!("backup {backup} holds no disk"))?;
    let mut wanted = vec![(boot, DISK_NAME.to_string())];
    let (mut uefi_vars, mut tpm_state) = (None, None);
    for d in idx.disks.iter().filter(|d| !std::ptr::eq(*d, boot)) {
        if d.name == novacron_api_types::disks::UEFI_VARS {
            uefi_vars = Some(d);
            continue;
        }
        if d.name == novacron_api_types::disks::TPM_STATE {
            tpm_state = Some(d);
            continue;
        }
        if !novacron_qemu::spec::is_plugged_node(&d.name) {
            return Err(format!(
                "backup {backup} holds a disk named {:?}, which is not a disk NovaCron adds (disk1, disk2, ...)",
                d.name
            ));
        }
        wanted.push((d, d.name.clone()));
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (d, name) in wanted {
        let file = dir.join(format!("{name}.qcow2"));
        let rep = live::restore_over_original(&r, &id, d, &file, DiskFormat::Qcow2)
            .await
            .map_err(|e| format!("restore of {name} from backup {backup}: {e}"))?;
        tracing::info!(backup, disk = %file.display(), report = ?rep, "disk restored");
    }
    if let Some(d) = uefi_vars {
        let file = dir.join(novacron_qemu::firmware::VARS_FILE);
        live::restore_over_original(&r, &id, d, &file, DiskFormat::Raw)
            .await
            .map_err(|e| format!("restore of the UEFI variable store from backup {backup}: {e}"))?;
        tracing::info!(backup, file = %file.display(), "UEFI variable store restored");
    }
    if let Some(d) = tpm_state {
        // Into this node's state directory, restored last so it is the newest state there.
        let tpm_dir = dir.join(novacron_qemu::tpm::STATE_ROOT).join(node);
        tokio::fs::create_dir_all(&tpm_dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", tpm_dir.display()))?;
        let file = tpm_dir.join(novacron_qemu::tpm::STATE_FILE);
        live::restore_over_original(&r, &id, d, &file, DiskFormat::Raw)
            .await
            .map_err(|e| format!("restore of the TPM state from backup {backup}: {e}"))?;
        tracing::info!(backup, file = %file.display(), "TPM state restored");
    }
    Ok(())
}
