//! Disk operations on this node's VMs: adding a blank disk (plugged into a running guest
//! through QMP) and removing it again; growing a disk through QMP `block_resize` while QEMU
//! runs, with `qemu-img resize` while it is stopped; standalone copies of a stopped VM's disk
//! for `vm template`; the disk of a new VM that `vm clone` made. The control plane records
//! a resize once this module answered with the size the disk has afterwards, read from the
//! disk itself, so the record follows the disk even when an earlier call was cut short after
//! QEMU grew it (asking again for the same size then answers at once).

use std::time::Duration;

use novacron_api_types::agent::DesiredVm;
use novacron_api_types::disks::{
    CloneSource, DISK0, DiskAttachJob, DiskDetachJob, DiskExportJob, DiskPlugged, DiskResizeJob,
    DiskResized, disk_name,
};
use novacron_api_types::{ApiError, format_size};
use novacron_qemu::DiskFormat;

use crate::backup::VmAccess;
use crate::state::Shared;

pub(crate) fn failed(vm: &str, what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what} of VM {vm} failed: {e}"))
}

/// The guest-visible size of a disk of the VM (readable while QEMU has it open).
async fn size_of(vm: &VmAccess, path: &std::path::Path) -> Result<u64, ApiError> {
    novacron_qemu::inspect_as(path, DiskFormat::Qcow2)
        .await
        .map(|i| i.virtual_size_bytes)
        .map_err(|e| failed(&vm.desired.name, "reading the disk's size", e))
}

/// The disk a job names: `disk0` (or `disk`), or an added one (the control plane checked it
/// is the VM's; this node's view of the VM may be a moment behind).
fn job_disk(vm: &str, given: &str) -> Result<String, ApiError> {
    if novacron_qemu::spec::is_plugged_node(given) {
        return Ok(given.to_string());
    }
    disk_name(vm, given, &[])
}

/// How long a detach (of a disk or a NIC) waits for the guest to release the device.
pub(crate) const UNPLUG_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an add or detach waits for a start, stop, backup or snapshot of the VM to end.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// The VM's disk lock, once a start, stop, backup or snapshot of it that holds it ended (at
/// most [`LOCK_WAIT`]).
pub(crate) async fn wait_disk_lock(
    vm: &VmAccess,
) -> Result<tokio::sync::OwnedMutexGuard<()>, ApiError> {
    tokio::time::timeout(LOCK_WAIT, vm.disk_lock.clone().lock_owned())
        .await
        .map_err(|_| {
            ApiError::conflict(format!(
                "VM {} stayed busy (a backup, a snapshot, or a start or stop) for {} s; try again when it is done",
                vm.desired.name,
                LOCK_WAIT.as_secs()
            ))
        })
}

/// Adds `job.disk` to the VM: makes its file (blank, or a standalone copy of `job.image`
/// grown to the disk's size; through a temporary name, so a crash never leaves a half-made
/// one), and plugs it into the running guest. When plugging fails, the file this call made
/// is removed again. Asking again for a disk that is there answers at once.
pub async fn attach(
    shared: &Shared,
    vm: VmAccess,
    job: DiskAttachJob,
) -> Result<DiskPlugged, ApiError> {
    let disk = job.disk;
    let name = vm.desired.name.clone();
    if !novacron_qemu::spec::is_plugged_node(&disk.name) {
        return Err(ApiError::invalid(format!(
            "{:?} is not the name of an added disk (disk1, disk2, ...)",
            disk.name
        )));
    }
    let _guard = wait_disk_lock(&vm).await?;
    // Read again under the lock: the worker may have started or stopped QEMU meanwhile.
    let running = vm.current_vm();
    let path = vm.disk_file(&disk.name);
    let made = !path.exists();
    if made {
        let (size, image) = (disk.size_bytes, job.image.as_ref());
        crate::worker::create_then_rename(&path, |tmp| async move {
            make_disk(shared, &tmp, size, image).await
        })
        .await
        .map_err(|e| failed(&name, "adding the disk", e))?;
    }
    let Some(qemu) = running else {
        tracing::info!(vm = %name, disk = %disk.name, "disk added; the VM has it from its next start");
        return Ok(DiskPlugged {
            disk: disk.name,
            live: false,
        });
    };
    let plugged = async {
        if let Some(who) = shared
            .vm_users
            .assign(&shared.vm_dir(&vm.desired.project, &name))
            .map_err(|e| failed(&name, "finding the VM's user", e))?
        {
            novacron_qemu::user::hand_over(&path, who.uid, who.gid, 0o600)
                .map_err(|e| failed(&name, "giving the disk to the VM's user", e))?;
        }
        let spec = novacron_qemu::PluggedDisk {
            node: disk.name.clone(),
            path: path.clone(),
            format: DiskFormat::Qcow2,
            port: disk.port,
        };
        novacron_qemu::hotplug::attach_disk(qemu.qmp(), &spec, vm.desired.storage.is_some())
            .await
            .map_err(|e| failed(&name, "plugging the disk in", e))
    }
    .await;
    if let Err(e) = plugged {
        if made {
            let _ = tokio::fs::remove_file(&path).await;
        }
        return Err(e);
    }
    tracing::info!(vm = %name, disk = %disk.name, port = disk.port, "disk plugged into the running VM");
    Ok(DiskPlugged {
        disk: disk.name,
        live: true,
    })
}

/// Makes `file`: a blank qcow2 of `size_bytes`, or a standalone qcow2 copy of `image`'s disk
/// (its backing chain flattened) grown to `size_bytes`.
async fn make_disk(
    shared: &Shared,
    file: &std::path::Path,
    size_bytes: u64,
    image: Option<&novacron_api_types::Image>,
) -> Result<(), String> {
    let Some(image) = image else {
        return novacron_qemu::create_blank(file, DiskFormat::Qcow2, size_bytes)
            .await
            .map_err(|e| e.to_string());
    };
    let format = match novacron_api_types::disks::image_disk_format(image) {
        Some(novacron_api_types::DiskFormat::Qcow2) => DiskFormat::Qcow2,
        Some(novacron_api_types::DiskFormat::Raw) => DiskFormat::Raw,
        None => return Err(format!("image {} holds no disk", image.name)),
    };
    let base = shared.images.ensure(image, "disk").await?;
    novacron_qemu::img::copy_standalone(&base, format, file)
        .await
        .map_err(|e| format!("copying image {}: {e}", image.name))?;
    novacron_qemu::resize::grow_offline(file, DiskFormat::Qcow2, size_bytes)
        .await
        .map_err(|e| format!("growing the copy of image {}: {e}", image.name))
}

/// Removes added disk `job.disk` from the VM: unplugged from the running guest first (which
/// must release it), then its file deleted. A disk that is gone already answers at once.
pub async fn detach(vm: VmAccess, job: DiskDetachJob) -> Result<DiskPlugged, ApiError> {
    let name = vm.desired.name.clone();
    let disk = job_disk(&name, &job.disk)?;
    if disk == DISK0 {
        return Err(ApiError::invalid(format!(
            "{DISK0} is the boot disk of VM {name}: only added disks are detached"
        )));
    }
    let _guard = wait_disk_lock(&vm).await?;
    let running = vm.current_vm();
    if let Some(qemu) = &running {
        novacron_qemu::hotplug::detach_disk(qemu.qmp(), &disk, UNPLUG_TIMEOUT)
            .await
            .map_err(|e| failed(&name, &format!("unplugging {disk}"), e))?;
    }
    let path = vm.disk_file(&disk);
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(&name, &format!("deleting {}", path.display()), e)),
    }
    tracing::info!(vm = %name, disk = %disk, live = running.is_some(), "disk detached and deleted");
    Ok(DiskPlugged {
        disk,
        live: running.is_some(),
    })
}

/// Grows a disk of the VM to `job.size_bytes`; answers its size before and after.
pub async fn resize(vm: VmAccess, job: DiskResizeJob) -> Result<DiskResized, ApiError> {
    let name = vm.desired.name.clone();
    let disk = job_disk(&name, &job.disk)?;
    let path = vm.disk_file(&disk);
    if !path.exists() {
        return Err(ApiError::invalid(format!(
            "VM {name} has no disk {disk} to resize (create it with --disk, or add one with `novacron vm disk add`)"
        )));
    }
    // Start, stop, backups and snapshots take the same lock: no power change mid-resize.
    let Ok(_guard) = vm.disk_lock.clone().try_lock_owned() else {
        return Err(ApiError::conflict(format!(
            "VM {name} is busy (a backup, a snapshot, or a start or stop); try again when it is done"
        )));
    };
    let previous = size_of(&vm, &path).await?;
    if job.size_bytes < previous {
        return Err(ApiError::invalid(format!(
            "{disk} of VM {name} is {}; it can only grow (asked for {})",
            format_size(previous),
            format_size(job.size_bytes)
        )));
    }
    match &vm.running {
        Some(qemu) => {
            novacron_qemu::resize::grow_live(qemu.qmp(), &path, &disk, previous, job.size_bytes)
                .await
        }
        None => novacron_qemu::resize::grow_offline(&path, DiskFormat::Qcow2, job.size_bytes).await,
    }
    .map_err(|e| failed(&name, "growing the disk", e))?;
    let size_bytes = size_of(&vm, &path).await?;
    tracing::info!(vm = %name, disk, previous, size_bytes, live = vm.running.is_some(), "disk grown");
    Ok(DiskResized {
        disk,
        previous_bytes: previous,
        size_bytes,
        live: vm.running.is_some(),
    })
}

/// A standalone copy of the stopped VM's disk (its backing chain flattened, no snapshots),
/// as an open file that is already unlinked: nothing is left on this node once the reader
/// is done or gone. Answers the file and its length.
pub async fn export(
    vm: VmAccess,
    job: DiskExportJob,
    work_dir: &std::path::Path,
) -> Result<(tokio::fs::File, u64), ApiError> {
    let name = vm.desired.name.clone();
    // Only the boot disk is copied: any other name is refused here.
    disk_name(&name, &job.disk, &[])?;
    if !vm.disk.exists() {
        return Err(ApiError::invalid(format!(
            "VM {name} has no disk to copy (create it with --disk)"
        )));
    }
    // Held while the copy is made: the worker does not start the VM over it meanwhile.
    let Ok(_guard) = vm.disk_lock.clone().try_lock_owned() else {
        return Err(ApiError::conflict(format!(
            "VM {name} is busy (a backup, a snapshot, or a start or stop); try again when it is done"
        )));
    };
    if vm.running.is_some() {
        return Err(ApiError::conflict(format!(
            "VM {name} is running: its disk is copied only while it is stopped (`novacron vm stop {name}`)"
        )));
    }
    tokio::fs::create_dir_all(work_dir)
        .await
        .map_err(|e| failed(&name, "preparing the copy", e))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let copy = work_dir.join(format!(".export-{stamp}.qcow2"));
    let _ = tokio::fs::remove_file(&copy).await;
    let made = novacron_qemu::img::copy_standalone(&vm.disk, DiskFormat::Qcow2, &copy).await;
    let opened = match made {
        Ok(()) => tokio::fs::File::open(&copy).await,
        Err(e) => return Err(failed(&name, "copying the disk", e)),
    };
    let _ = tokio::fs::remove_file(&copy).await;
    let file = opened.map_err(|e| failed(&name, "opening the disk's copy", e))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| failed(&name, "reading the disk's copy", e))?
        .len();
    tracing::info!(vm = %name, bytes = len, "disk copied for export");
    Ok((file, len))
}

/// Makes `disk`, the disk of the new VM `clone` that `vm clone` made, from the disk of
/// `src` (a stopped VM on this node). A full clone gets a standalone copy (the backing chain
/// flattened). A linked clone freezes the source's disk as a base (see [`link`]) and gets a
/// copy-on-write overlay over it. Made under a temporary name, so a crash never leaves a
/// half-made disk in place.
pub async fn clone_disk(
    shared: &Shared,
    src: &CloneSource,
    clone: &DesiredVm,
    disk: &std::path::Path,
) -> Result<(), String> {
    let access = || -> Result<VmAccess, String> {
        let workers = shared.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers
            .get(&format!("{}/{}", src.project, src.name))
            .map(|w| w.access(shared))
            .ok_or_else(|| format!("VM {} to clone is not on this node (any more)", src.name))
    };
    // The source's worker holds this lock while it starts or stops the VM.
    let lock = access()?.disk_lock;
    let _guard = lock.lock_owned().await;
    let source = access()?;
    if source.running.is_some() {
        return Err(format!(
            "VM {} was started before its disk was copied; stop it and clone again",
            src.name
        ));
    }
    if !source.disk.exists() {
        return Err(format!("VM {} has no disk to clone", src.name));
    }
    if let Some(dir) = disk.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // The added disks first, each a standalone copy: the boot disk, made last, marks the
    // clone complete (a worker that restarts half-way copies again).
    for added in &clone.data_disks {
        let from = source.disk_file(&added.name);
        let to = disk.with_file_name(format!("{}.qcow2", added.name));
        crate::worker::create_then_rename(&to, |tmp| async move {
            novacron_qemu::img::copy_standalone(&from, DiskFormat::Qcow2, &tmp).await
        })
        .await
        .map_err(|e| format!("copying disk {} of VM {}: {e}", added.name, src.name))?;
    }
    // A TPM clone starts with its source's TPM state (what the guest sealed to it included).
    let tpm_root = |disk: &std::path::Path| disk.with_file_name(novacron_qemu::tpm::STATE_ROOT);
    if clone.tpm
        && let Some(state) = novacron_qemu::tpm::newest_state(&tpm_root(&source.disk), None)
    {
        let to = tpm_root(disk).join(&shared.node_name);
        tokio::fs::create_dir_all(&to)
            .await
            .map_err(|e| format!("cannot create {}: {e}", to.display()))?;
        let to = to.join(novacron_qemu::tpm::STATE_FILE);
        crate::worker::create_then_rename(&to, |tmp| async move {
            tokio::fs::copy(&state, &tmp).await.map(|_| ())
        })
        .await
        .map_err(|e| format!("copying the TPM state of VM {}: {e}", src.name))?;
    }
    let (linked, from) = (src.linked, &source);
    crate::worker::create_then_rename(disk, |tmp| async move {
        if linked {
            let base = link(shared, from, clone).await?;
            novacron_qemu::create_overlay(&base, DiskFormat::Qcow2, &tmp, None).await
        } else {
            novacron_qemu::img::copy_standalone(&from.disk, DiskFormat::Qcow2, &tmp).await
        }
        .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("making the clone's disk from VM {}: {e}", src.name))?;
    tracing::info!(source = %src.name, clone = %clone.name, linked = src.linked, disk = %disk.display(), "disk cloned");
    // A UEFI clone starts with its source's boot entries, not the firmware's defaults.
    let vars = source
        .disk
        .with_file_name(novacron_qemu::firmware::VARS_FILE);
    if clone.firmware == novacron_api_types::Firmware::Uefi && vars.exists() {
        let dest = disk.with_file_name(novacron_qemu::firmware::VARS_FILE);
        tokio::task::spawn_blocking(move || novacron_qemu::firmware::ensure_vars(&vars, &dest))
            .await
            .map_err(|e| format!("copying the UEFI variable store: {e}"))?
            .map_err(|e| format!("copying the UEFI variable store: {e}"))?;
    }
    Ok(())
}

/// Freezes the disk of `source` (stopped, its lock held) as the base the linked clone
/// `clone` shares, and answers the base's path: `bases/<project>/<source>-<clone uuid>.qcow2`
/// under the node's data directory (or the storage pool holding the disk, so the base is
/// wherever the disk is). The base is a second name (hard link) of the source's disk file;
/// the source then gets a new overlay over it, renamed over its disk. Every step can be
/// redone after a crash: the source's disk is at all times its old file or an overlay over
/// the base, which holds the same data.
async fn link(
    shared: &Shared,
    source: &VmAccess,
    clone: &DesiredVm,
) -> Result<std::path::PathBuf, String> {
    let s = &source.desired;
    let root = match &s.storage {
        Some(pool) => std::path::PathBuf::from(&pool.path),
        None => shared.data_dir.clone(),
    };
    let dir = root.join("bases").join(&s.project);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // The VMs' users pass through to the base (share_image opens its own directory).
    crate::users::open_for_passing(&root.join("bases"))?;
    let base = dir.join(format!("{}-{}.qcow2", s.name, clone.uuid));
    let info = novacron_qemu::inspect_as(&source.disk, DiskFormat::Qcow2)
        .await
        .map_err(|e| format!("reading the disk of VM {}: {e}", s.name))?;
    // Already switched over (an earlier attempt got that far): its backing file is the base.
    let switched = match (&info.backing_file, tokio::fs::canonicalize(&base).await) {
        (Some(backing), Ok(base)) => *backing == base,
        _ => false,
    };
    if !switched {
        // Not yet switched over: the base is (or becomes) the source's current file.
        let same = |a: &std::path::Path, b: &std::path::Path| {
            use std::os::unix::fs::MetadataExt;
            match (std::fs::metadata(a), std::fs::metadata(b)) {
                (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
                _ => false,
            }
        };
        if !same(&source.disk, &base) {
            let _ = tokio::fs::remove_file(&base).await;
            tokio::fs::hard_link(&source.disk, &base)
                .await
                .map_err(|e| format!("freezing the disk of VM {} as a base: {e}", s.name))?;
        }
        let tmp = source.disk.with_extension("linking");
        let _ = tokio::fs::remove_file(&tmp).await;
        novacron_qemu::create_overlay(&base, DiskFormat::Qcow2, &tmp, None)
            .await
            .map_err(|e| format!("giving VM {} an overlay over its frozen disk: {e}", s.name))?;
        tokio::fs::rename(&tmp, &source.disk)
            .await
            .map_err(|e| format!("placing the overlay of VM {}: {e}", s.name))?;
    }
    // Read-only for both VMs' users (through the images group); written by no one again.
    shared.vm_users.share_image(&base)?;
    tracing::info!(vm = %s.name, base = %base.display(), "disk frozen as a linked clone's base");
    Ok(base)
}
