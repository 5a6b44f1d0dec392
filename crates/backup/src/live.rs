//! Backups of running VMs through QEMU, and of stopped disks.
//!
//! Design (QEMU 7.2, see docs/backup.md): for every backup, one QMP `transaction` atomically
//! (a) starts image fleecing — `blockdev-backup sync=none` from the disk's format node into a
//! temporary qcow2 whose backing is that node, so the temporary node shows the disk exactly
//! as it was at that instant while the guest keeps writing —, (b) adds a new **persistent**
//! dirty bitmap that records writes from that instant on (stored in the qcow2, so it survives
//! VM restarts), and (c) disables the previous backup's bitmap, which then holds exactly the
//! writes between the two backups. The fleecing node is exported read-only over NBD (a Unix
//! socket in the VM's run directory) together with the previous bitmap; our own NBD client
//! asks for the bitmap's dirty extents and reads only those chunks. A bitmap that is missing,
//! not recording, or flagged inconsistent (QEMU died without saving it) makes that disk a
//! full read — still deduplicated against the repository — and the reason is recorded in the
//! index and logged.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{info, warn};

use novacron_qemu::{DiskFormat, Qmp};

use crate::error::{BackupError, Result};
use crate::index::{BackupId, BackupIndex, BitmapRef, DiskIndex};
use crate::nbd::{NbdClient, NbdSource};
use crate::repo::{
    BackupMeta, BackupOptions, Changes, DiskInput, Progress, Repository, RestoreFormat,
    RestoreOptions, RestoreReport,
};
use crate::source::{DirtyMap, FileSource};
use crate::util::{now_unix_ms, random_hex8};

/// Default dirty-bitmap granularity (QEMU's default for qcow2 with 64 KiB clusters).
pub const DEFAULT_GRANULARITY_BYTES: u64 = 64 << 10;
/// Prefix of the bitmaps NovaCron owns; others are never touched.
pub const BITMAP_PREFIX: &str = "novacron-";

fn qemu_err(what: &str, e: novacron_qemu::QemuError) -> BackupError {
    BackupError::Qemu(format!("{what}: {e}"))
}

/// One disk of a running VM.
#[derive(Clone, Debug)]
pub struct LiveDisk {
    /// Name recorded in the backup (and used on restore), e.g. `vda`.
    pub name: String,
    /// QEMU format node of the disk (`disk0`, … in novacron-qemu's command line).
    pub node: String,
    pub format: DiskFormat,
}

/// Options of a live backup.
#[derive(Clone, Debug)]
pub struct LiveBackupOptions {
    /// Directory for the NBD socket and the temporary fleecing images (the VM's run dir).
    pub work_dir: PathBuf,
    pub granularity_bytes: u64,
    /// Read every chunk even if a usable bitmap exists.
    pub force_full: bool,
    pub backup: BackupOptions,
    /// Small raw files read as they are, beside the disks, each recorded as a disk of its own
    /// and always read in full (deduplicated): files QEMU writes through to, such as a UEFI
    /// variable store.
    pub side_files: Vec<StoppedDisk>,
}

impl LiveBackupOptions {
    pub fn new(work_dir: impl Into<PathBuf>) -> LiveBackupOptions {
        LiveBackupOptions {
            work_dir: work_dir.into(),
            granularity_bytes: DEFAULT_GRANULARITY_BYTES,
            force_full: false,
            backup: BackupOptions::default(),
            side_files: Vec::new(),
        }
    }
}

/// State of one bitmap as QEMU reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitmapState {
    pub name: String,
    pub recording: bool,
    pub persistent: bool,
    pub inconsistent: bool,
    pub granularity_bytes: u64,
}

/// Bitmaps and virtual size of a block node (`query-named-block-nodes`).
pub async fn node_state(qmp: &Qmp, node: &str) -> Result<(u64, Vec<BitmapState>)> {
    let nodes = qmp
        .execute("query-named-block-nodes", Some(json!({"flat": true})))
        .await
        .map_err(|e| qemu_err("query-named-block-nodes", e))?;
    let n = nodes
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node-name"] == node))
        .ok_or_else(|| BackupError::Qemu(format!("block node {node} not found in the VM")))?;
    let size = n["image"]["virtual-size"]
        .as_u64()
        .ok_or_else(|| BackupError::Qemu(format!("node {node}: no virtual size")))?;
    let bitmaps = n["dirty-bitmaps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| BitmapState {
                    name: b["name"].as_str().unwrap_or_default().to_string(),
                    recording: b["recording"].as_bool().unwrap_or(false),
                    persistent: b["persistent"].as_bool().unwrap_or(false),
                    inconsistent: b["inconsistent"].as_bool().unwrap_or(false),
                    granularity_bytes: b["granularity"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((size, bitmaps))
}

/// Decides, for one disk, whether the previous backup's bitmap can drive an incremental read.
/// Returns `Ok(parent, old bitmap)` or `Err(reason for a full read)`.
fn choose_mode(
    disk: &LiveDisk,
    size: u64,
    bitmaps: &[BitmapState],
    previous: Option<&BackupIndex>,
    force_full: bool,
) -> std::result::Result<(BackupId, BitmapState), String> {
    if force_full {
        return Err("full backup requested".into());
    }
    if disk.format != DiskFormat::Qcow2 {
        return Err("raw image: it cannot hold a persistent dirty bitmap".into());
    }
    let Some(prev) = previous else {
        return Err("first backup of this VM".into());
    };
    let Some(pd) = prev.disks.iter().find(|d| d.name == disk.name) else {
        return Err(format!(
            "previous backup {} has no disk {}",
            prev.id, disk.name
        ));
    };
    if pd.size_bytes != size {
        return Err(format!("disk size changed since backup {}", prev.id));
    }
    let Some(bref) = &pd.bitmap else {
        return Err(format!(
            "previous backup {} recorded no dirty bitmap",
            prev.id
        ));
    };
    let Some(b) = bitmaps.iter().find(|b| b.name == bref.name) else {
        return Err(format!(
            "dirty bitmap {} of backup {} is missing on node {} (disk replaced or restored, or bitmap removed)",
            bref.name, prev.id, disk.node
        ));
    };
    if b.inconsistent {
        return Err(format!(
            "dirty bitmap {} is inconsistent (QEMU stopped without saving it)",
            b.name
        ));
    }
    if !b.recording {
        return Err(format!(
            "dirty bitmap {} is not recording (an earlier backup was interrupted)",
            b.name
        ));
    }
    if !b.persistent {
        return Err(format!("dirty bitmap {} is not persistent", b.name));
    }
    Ok((prev.id.clone(), b.clone()))
}

struct Fleece {
    disk: LiveDisk,
    /// Virtual size of the disk (and of its fleecing image).
    size_bytes: u64,
    fleece_node: String,
    job_id: String,
    export_id: String,
    image: PathBuf,
    new_bitmap: String,
    old: Option<(BackupId, BitmapState)>,
    full_reason: Option<String>,
    added_node: bool,
    started_job: bool,
    exported: bool,
}

/// Backs up a running VM's disks (crash-consistent: all disks at the same instant).
/// Incremental per disk when the previous backup's bitmap is usable, else a full read that
/// still deduplicates (the reason is in the index's `read_mode`).
pub async fn backup_running_vm(
    qmp: &Qmp,
    disks: &[LiveDisk],
    repo: &Repository,
    meta: BackupMeta,
    opts: &LiveBackupOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<BackupIndex> {
    check_disk_names(
        disks
            .iter()
            .map(|d| d.name.as_str())
            .chain(opts.side_files.iter().map(|f| f.name.as_str())),
    )?;
    check_side_files(&opts.side_files)?;
    let mut nodes = HashSet::new();
    if let Some(d) = disks.iter().find(|d| !nodes.insert(d.node.as_str())) {
        return Err(BackupError::InvalidArgument(format!(
            "block node {} is given twice (disk {})",
            d.node, d.name
        )));
    }
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| BackupError::io(&opts.work_dir, e))?;
    let previous = repo.latest_backup(meta.project(), &meta.vm).await?;
    let tag = random_hex8()?;
    let mut fleeces = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let (size, bitmaps) = node_state(qmp, &d.node).await?;
        let (old, full_reason) =
            match choose_mode(d, size, &bitmaps, previous.as_ref(), opts.force_full) {
                Ok(x) => (Some(x), None),
                Err(reason) => (None, Some(reason)),
            };
        if let Some(r) = &full_reason {
            info!(vm = %meta.vm, disk = %d.name, reason = %r, "full read (deduplicated)");
        }
        // Created by `run_live`, so that the teardown below removes it whatever fails.
        let image = opts.work_dir.join(format!("fleece-{tag}-{i}.qcow2"));
        fleeces.push(Fleece {
            disk: d.clone(),
            size_bytes: size,
            fleece_node: format!("nc-fleece-{tag}-{i}"),
            job_id: format!("nc-fleece-job-{tag}-{i}"),
            export_id: format!("nc-export-{tag}-{i}"),
            image,
            new_bitmap: format!("{BITMAP_PREFIX}{}", random_hex8()?),
            old,
            full_reason,
            added_node: false,
            started_job: false,
            exported: false,
        });
    }
    let socket = opts.work_dir.join(format!("nbd-backup-{tag}.sock"));
    let mut server_started = false;
    let result = run_live(
        qmp,
        repo,
        &meta,
        opts,
        progress,
        &mut fleeces,
        &socket,
        &mut server_started,
    )
    .await;
    // Tear down the fleecing, always.
    for f in &fleeces {
        if f.exported {
            let _ = qmp
                .execute(
                    "block-export-del",
                    Some(json!({"id": f.export_id, "mode": "hard"})),
                )
                .await;
        }
    }
    if server_started {
        let _ = qmp.execute("nbd-server-stop", None).await;
    }
    for f in &fleeces {
        if f.started_job {
            cancel_job(qmp, &f.job_id).await;
        }
        if f.added_node {
            delete_node(qmp, &f.fleece_node).await;
        }
        let _ = std::fs::remove_file(&f.image);
    }
    let _ = std::fs::remove_file(&socket);
    // Bitmaps: on success the old bitmaps go; on failure the old ones take the new writes back.
    let started = fleeces.iter().any(|f| f.started_job);
    for f in &fleeces {
        let node = &f.disk.node;
        match (&result, &f.old) {
            (Ok(_), Some((_, old))) => {
                bitmap_cmd(qmp, "block-dirty-bitmap-remove", node, &old.name).await;
            }
            (Ok(_), None) => {}
            (Err(_), Some((_, old))) if started => {
                let merged = qmp
                    .execute(
                        "block-dirty-bitmap-merge",
                        Some(json!({"node": node, "target": old.name, "bitmaps": [f.new_bitmap]})),
                    )
                    .await;
                if let Err(e) = merged {
                    warn!(node, error = %e, "could not merge the new bitmap back; the next backup of this disk will be a full read");
                } else {
                    bitmap_cmd(qmp, "block-dirty-bitmap-enable", node, &old.name).await;
                }
                bitmap_cmd(qmp, "block-dirty-bitmap-remove", node, &f.new_bitmap).await;
            }
            (Err(_), _) if started => {
                bitmap_cmd(qmp, "block-dirty-bitmap-remove", node, &f.new_bitmap).await
            }
            (Err(_), _) => {}
        }
        if result.is_ok() {
            // Leftovers of interrupted runs (ours only): they are stale by construction.
            if let Ok((_, bitmaps)) = node_state(qmp, node).await {
                for b in bitmaps {
                    if b.name.starts_with(BITMAP_PREFIX) && b.name != f.new_bitmap {
                        bitmap_cmd(qmp, "block-dirty-bitmap-remove", node, &b.name).await;
                    }
                }
            }
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_live(
    qmp: &Qmp,
    repo: &Repository,
    meta: &BackupMeta,
    opts: &LiveBackupOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
    fleeces: &mut [Fleece],
    socket: &Path,
    server_started: &mut bool,
) -> Result<BackupIndex> {
    for f in fleeces.iter() {
        novacron_qemu::create_blank(&f.image, DiskFormat::Qcow2, f.size_bytes)
            .await
            .map_err(|e| qemu_err("fleecing image", e))?;
        // QEMU may run as the VM's own user, who owns the work directory.
        novacron_qemu::user::give_to_dir_owner(&f.image)
            .map_err(|e| qemu_err("fleecing image", e))?;
    }
    for f in fleeces.iter_mut() {
        qmp.execute(
            "blockdev-add",
            Some(json!({
                "driver": "qcow2",
                "node-name": f.fleece_node,
                "file": {"driver": "file", "filename": f.image.to_string_lossy()},
                "backing": f.disk.node,
                "discard": "unmap",
            })),
        )
        .await
        .map_err(|e| qemu_err("blockdev-add (fleecing node)", e))?;
        f.added_node = true;
    }
    // The point in time: one atomic transaction over every disk.
    let mut actions: Vec<Value> = Vec::new();
    for f in fleeces.iter() {
        actions.push(json!({"type": "blockdev-backup", "data": {
            "job-id": f.job_id, "device": f.disk.node, "target": f.fleece_node, "sync": "none", "auto-dismiss": true}}));
        if f.disk.format == DiskFormat::Qcow2 {
            actions.push(json!({"type": "block-dirty-bitmap-add", "data": {
                "node": f.disk.node, "name": f.new_bitmap, "persistent": true, "granularity": opts.granularity_bytes}}));
        }
        if let Some((_, old)) = &f.old {
            actions.push(json!({"type": "block-dirty-bitmap-disable", "data": {"node": f.disk.node, "name": old.name}}));
        }
    }
    qmp.execute("transaction", Some(json!({"actions": actions})))
        .await
        .map_err(|e| qemu_err("transaction (fleecing + bitmaps)", e))?;
    let point_in_time = now_unix_ms();
    for f in fleeces.iter_mut() {
        f.started_job = true;
    }
    qmp.execute(
        "nbd-server-start",
        Some(json!({"addr": {"type": "unix", "data": {"path": socket.to_string_lossy()}}})),
    )
    .await
    .map_err(|e| qemu_err("nbd-server-start", e))?;
    *server_started = true;
    for f in fleeces.iter_mut() {
        let mut args = json!({"type": "nbd", "id": f.export_id, "node-name": f.fleece_node, "name": f.disk.name, "writable": false});
        if let Some((_, old)) = &f.old {
            args["bitmaps"] = json!([old.name]);
        }
        qmp.execute("block-export-add", Some(args))
            .await
            .map_err(|e| qemu_err("block-export-add", e))?;
        f.exported = true;
    }
    let mut inputs = Vec::new();
    for f in fleeces.iter() {
        let old = f.old.as_ref().map(|(_, b)| b);
        let (source, map) = open_export(socket, &f.disk.name, old).await?;
        inputs.push(DiskInput {
            name: f.disk.name.clone(),
            format: f.disk.format.as_str().to_string(),
            source: Arc::new(source),
            changes: changes(
                &meta.vm,
                &f.disk.name,
                map,
                f.old.clone(),
                f.full_reason.clone(),
            ),
            bitmap: (f.disk.format == DiskFormat::Qcow2).then(|| BitmapRef {
                node: f.disk.node.clone(),
                name: f.new_bitmap.clone(),
                granularity_bytes: opts.granularity_bytes,
            }),
        });
    }
    for f in &opts.side_files {
        inputs.push(raw_input(f, &meta.vm)?);
    }
    let mut meta = meta.clone();
    meta.created_unix_ms = Some(meta.created_unix_ms.unwrap_or(point_in_time));
    repo.backup(meta, inputs, &opts.backup, progress).await
}

/// Refuses a side file (see [`LiveBackupOptions::side_files`]) given in another format than
/// raw: side files are read as they are, never through QEMU.
fn check_side_files(files: &[StoppedDisk]) -> Result<()> {
    match files.iter().find(|f| f.format != DiskFormat::Raw) {
        Some(f) => Err(BackupError::InvalidArgument(format!(
            "{} ({}) is read as a raw file, but is given as {}",
            f.name,
            f.path.display(),
            f.format.as_str()
        ))),
        None => Ok(()),
    }
}

/// A raw file as a backup input: read in full, since a raw file holds no dirty bitmap.
fn raw_input(disk: &StoppedDisk, vm: &str) -> Result<DiskInput> {
    let reason = "raw image: it cannot hold a persistent dirty bitmap".to_string();
    info!(vm, disk = %disk.name, reason = %reason, "full read (deduplicated)");
    Ok(DiskInput {
        name: disk.name.clone(),
        format: DiskFormat::Raw.as_str().into(),
        source: Arc::new(FileSource::open(&disk.path)?),
        changes: Changes::Full { reason },
        bitmap: None,
    })
}

/// Refuses an empty disk list, an empty name and a name given twice, before anything starts.
/// A name that, as a file name, stays in its directory: not empty, `.` or `..`, no `/` and no
/// NUL.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

fn check_disk_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen = HashSet::new();
    for name in names {
        if name.is_empty() {
            return Err(BackupError::InvalidArgument(
                "a disk to back up has an empty name".into(),
            ));
        }
        if !seen.insert(name) {
            return Err(BackupError::InvalidArgument(format!(
                "disk {name} is given twice: every disk of a backup needs its own name"
            )));
        }
    }
    if seen.is_empty() {
        return Err(BackupError::InvalidArgument("no disks to back up".into()));
    }
    Ok(())
}

/// Connects to the NBD export `export` on `socket`; with `old` (the previous backup's bitmap,
/// exported alongside) also fetches its dirty extents as the map of what to read.
async fn open_export(
    socket: &Path,
    export: &str,
    old: Option<&BitmapState>,
) -> Result<(NbdSource, Option<DirtyMap>)> {
    let socket = socket.to_path_buf();
    let name = export.to_string();
    let ctx = old.map(|b| format!("qemu:dirty-bitmap:{}", b.name));
    let gran = old
        .map(|b| b.granularity_bytes)
        .unwrap_or(DEFAULT_GRANULARITY_BYTES);
    tokio::task::spawn_blocking(move || -> Result<(NbdSource, Option<DirtyMap>)> {
        let source_err = |e: crate::nbd::NbdError| BackupError::Source {
            disk: name.clone(),
            message: e.to_string(),
        };
        let ctxs: Vec<String> = ctx.iter().cloned().collect();
        let mut c = NbdClient::connect_unix(&socket, &name, &ctxs).map_err(source_err)?;
        let map = match &ctx {
            Some(ctx) => {
                let size = c.size_bytes();
                let ext = c.block_status(ctx, 0, size).map_err(source_err)?;
                let mut m = DirtyMap::new(size, gran)?;
                for e in ext.iter().filter(|e| e.flags & 1 != 0) {
                    m.mark(e.offset, e.length);
                }
                Some(m)
            }
            None => None,
        };
        Ok((NbdSource::new(c), map))
    })
    .await?
}

/// The read plan of one disk: the dirty map when the previous bitmap was usable, else a full
/// read with its reason.
fn changes(
    vm: &str,
    disk: &str,
    map: Option<DirtyMap>,
    old: Option<(BackupId, BitmapState)>,
    full_reason: Option<String>,
) -> Changes {
    match (map, old) {
        (Some(map), Some((parent, _))) => {
            info!(
                vm,
                disk,
                dirty_bytes = map.dirty_bytes(),
                "incremental read from dirty bitmap"
            );
            Changes::Dirty { parent, map }
        }
        _ => Changes::Full {
            reason: full_reason.unwrap_or_default(),
        },
    }
}

async fn bitmap_cmd(qmp: &Qmp, cmd: &str, node: &str, name: &str) {
    if let Err(e) = qmp
        .execute(cmd, Some(json!({"node": node, "name": name})))
        .await
    {
        warn!(node, bitmap = name, command = cmd, error = %e, "bitmap command failed");
    }
}

async fn cancel_job(qmp: &Qmp, job: &str) {
    let _ = qmp
        .execute(
            "block-job-cancel",
            Some(json!({"device": job, "force": true})),
        )
        .await;
    for _ in 0..200 {
        match qmp.execute("query-block-jobs", None).await {
            Ok(v)
                if v.as_array()
                    .is_some_and(|a| a.iter().any(|j| j["device"] == job)) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => return,
        }
    }
    warn!(job, "fleecing job still listed after cancel");
}

async fn delete_node(qmp: &Qmp, node: &str) {
    for _ in 0..100 {
        match qmp
            .execute("blockdev-del", Some(json!({"node-name": node})))
            .await
        {
            Ok(_) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    warn!(node, "could not delete the fleecing node");
}

/// One disk of a stopped VM: its name in the backup (`disk0`, ...), file and format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoppedDisk {
    pub name: String,
    pub path: PathBuf,
    pub format: DiskFormat,
}

/// Backs up one disk image of a stopped VM; see [`backup_stopped_disks`], of which this is the
/// one-disk case.
pub async fn backup_stopped_disk(
    repo: &Repository,
    disk_name: &str,
    path: &Path,
    format: DiskFormat,
    meta: BackupMeta,
    opts: &LiveBackupOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<BackupIndex> {
    let disk = StoppedDisk {
        name: disk_name.into(),
        path: path.into(),
        format,
    };
    backup_stopped_disks(repo, std::slice::from_ref(&disk), meta, opts, progress).await
}

/// Backs up every disk image of a stopped VM into one backup (one index, one entry per disk).
/// Raw images are read directly (always full); qcow2 images are exported read-only with
/// `qemu-nbd` so that the previous backup's persistent bitmap drives an incremental read, and a
/// new bitmap is added with `qemu-img bitmap` for the next one. Each disk decides on its own,
/// against the previous backup's disk of the same name; a disk that backup did not have is a
/// full read. The VM must stay stopped until this returns.
///
/// Every `qemu-nbd` started here is stopped and its socket removed before this returns,
/// whatever the outcome. Once the backup is published, a bitmap that cannot be added or
/// removed is only logged: the backup is valid, and the next backup of that disk notices the
/// missing bitmap and reads it in full.
pub async fn backup_stopped_disks(
    repo: &Repository,
    disks: &[StoppedDisk],
    meta: BackupMeta,
    opts: &LiveBackupOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<BackupIndex> {
    check_side_files(&opts.side_files)?;
    let with_side_files: Vec<StoppedDisk>;
    let disks = if opts.side_files.is_empty() {
        disks
    } else {
        with_side_files = disks.iter().chain(&opts.side_files).cloned().collect();
        &with_side_files[..]
    };
    check_disk_names(disks.iter().map(|d| d.name.as_str()))?;
    let mut images = HashSet::new();
    for d in disks {
        let image = std::fs::canonicalize(&d.path).unwrap_or_else(|_| d.path.clone());
        if !images.insert(image) {
            return Err(BackupError::InvalidArgument(format!(
                "image {} is given twice (disk {})",
                d.path.display(),
                d.name
            )));
        }
    }
    if disks.iter().any(|d| d.format == DiskFormat::Qcow2) {
        std::fs::create_dir_all(&opts.work_dir).map_err(|e| BackupError::io(&opts.work_dir, e))?;
    }
    let previous = repo.latest_backup(meta.project(), &meta.vm).await?;
    let mut servers = QemuNbdServers::default();
    let result: Result<(BackupIndex, Vec<BitmapRotation>)> = async {
        let tag = random_hex8()?;
        let mut inputs = Vec::new();
        let mut rotations = Vec::new();
        for (i, d) in disks.iter().enumerate() {
            let (input, rotation) = stopped_input(
                d,
                previous.as_ref(),
                opts,
                &meta.vm,
                &opts.work_dir.join(format!("qemu-nbd-{tag}-{i}.sock")),
                &mut servers,
            )
            .await?;
            inputs.push(input);
            rotations.extend(rotation);
        }
        let idx = repo.backup(meta, inputs, &opts.backup, progress).await?;
        Ok((idx, rotations))
    }
    .await;
    // qemu-nbd holds the images open: stop it before touching their bitmaps.
    servers.stop().await;
    let (idx, rotations) = result?;
    // The images are unchanged since the backup: start each disk's next bitmap now and drop
    // the old ones.
    for r in &rotations {
        let added = qemu_img(
            &["bitmap", "--add", "-g", &opts.granularity_bytes.to_string()],
            &r.path,
            Some(&r.new_bitmap),
        )
        .await;
        if let Err(e) = added {
            warn!(vm = %idx.vm, disk = %r.disk, backup = %idx.id, error = %e, "could not add the dirty bitmap; the next backup of this disk will be a full read");
        }
        for old in &r.old_bitmaps {
            if let Err(e) = qemu_img(&["bitmap", "--remove"], &r.path, Some(old)).await {
                warn!(vm = %idx.vm, disk = %r.disk, bitmap = %old, error = %e, "could not remove an old bitmap");
            }
        }
    }
    Ok(idx)
}

/// Bitmap work left for after a stopped disk's backup is published.
struct BitmapRotation {
    disk: String,
    path: PathBuf,
    new_bitmap: String,
    /// NovaCron bitmaps the image had before this backup.
    old_bitmaps: Vec<String>,
}

/// What to read of one stopped disk, and (qcow2) the bitmaps to rotate afterwards.
async fn stopped_input(
    disk: &StoppedDisk,
    previous: Option<&BackupIndex>,
    opts: &LiveBackupOptions,
    vm: &str,
    socket: &Path,
    servers: &mut QemuNbdServers,
) -> Result<(DiskInput, Option<BitmapRotation>)> {
    if disk.format == DiskFormat::Raw {
        return Ok((raw_input(disk, vm)?, None));
    }
    let info = qemu_img_info(&disk.path).await?;
    let size = info["virtual-size"].as_u64().ok_or_else(|| {
        BackupError::Qemu(format!(
            "qemu-img info {}: no virtual-size",
            disk.path.display()
        ))
    })?;
    let bitmaps = qcow2_bitmaps(&info);
    let live = LiveDisk {
        name: disk.name.clone(),
        node: STOPPED_NODE.into(),
        format: disk.format,
    };
    let (old, full_reason) = match choose_mode(&live, size, &bitmaps, previous, opts.force_full) {
        Ok(x) => (Some(x), None),
        Err(reason) => (None, Some(reason)),
    };
    if let Some(r) = &full_reason {
        info!(vm, disk = %disk.name, reason = %r, "full read (deduplicated)");
    }
    servers
        .start(
            &disk.path,
            &disk.name,
            socket,
            old.as_ref().map(|(_, b)| b.name.as_str()),
        )
        .await?;
    let (source, map) = open_export(socket, &disk.name, old.as_ref().map(|(_, b)| b)).await?;
    let new_bitmap = format!("{BITMAP_PREFIX}{}", random_hex8()?);
    let input = DiskInput {
        name: disk.name.clone(),
        format: DiskFormat::Qcow2.as_str().into(),
        source: Arc::new(source),
        changes: changes(vm, &disk.name, map, old, full_reason),
        bitmap: Some(BitmapRef {
            node: STOPPED_NODE.into(),
            name: new_bitmap.clone(),
            granularity_bytes: opts.granularity_bytes,
        }),
    };
    let rotation = BitmapRotation {
        disk: disk.name.clone(),
        path: disk.path.clone(),
        new_bitmap,
        old_bitmaps: bitmaps
            .into_iter()
            .filter(|b| b.name.starts_with(BITMAP_PREFIX))
            .map(|b| b.name)
            .collect(),
    };
    Ok((input, Some(rotation)))
}

/// `node` recorded in the bitmaps of stopped-disk backups (there is no QEMU node).
const STOPPED_NODE: &str = "stopped";

/// The persistent bitmaps of a qcow2 image, from `qemu-img info` (`auto` = recording,
/// `in-use` = not saved by the last writer, so inconsistent).
fn qcow2_bitmaps(info: &Value) -> Vec<BitmapState> {
    info["format-specific"]["data"]["bitmaps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    let flags: Vec<&str> = b["flags"]
                        .as_array()
                        .map(|f| f.iter().filter_map(|x| x.as_str()).collect())
                        .unwrap_or_default();
                    BitmapState {
                        name: b["name"].as_str().unwrap_or_default().into(),
                        recording: flags.contains(&"auto"),
                        persistent: true,
                        inconsistent: flags.contains(&"in-use"),
                        granularity_bytes: b["granularity"].as_u64().unwrap_or(0),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Read-only `qemu-nbd` exports of one stopped-VM backup. [`QemuNbdServers::stop`] kills them
/// and removes their sockets; if it is never reached (the backup future is dropped), `Drop`
/// does the same without waiting.
#[derive(Default)]
struct QemuNbdServers {
    running: Vec<(tokio::process::Child, PathBuf)>,
}

impl QemuNbdServers {
    /// Exports `image` as `export` on `socket` (with `bitmap`, if any) and waits until the
    /// socket exists.
    async fn start(
        &mut self,
        image: &Path,
        export: &str,
        socket: &Path,
        bitmap: Option<&str>,
    ) -> Result<()> {
        let mut cmd = tokio::process::Command::new("qemu-nbd");
        cmd.args([
            "--read-only",
            "--persistent",
            "--shared=2",
            "-f",
            "qcow2",
            "-x",
        ])
        .arg(export)
        .arg(format!("--socket={}", socket.display()));
        if let Some(b) = bitmap {
            cmd.arg(format!("--bitmap={b}"));
        }
        novacron_qemu::process::inherit_only_stdio(cmd.as_std_mut(), &[]);
        cmd.arg(image)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().map_err(|e| BackupError::Command {
            command: "qemu-nbd".into(),
            message: e.to_string(),
        })?;
        self.running.push((child, socket.to_path_buf()));
        let Some((child, _)) = self.running.last_mut() else {
            return Err(BackupError::Task("qemu-nbd process lost".into()));
        };
        let deadline = tokio::time::Instant::now() + QEMU_NBD_START;
        while !socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut s) = child.stderr.take() {
                    let _ = tokio::io::AsyncReadExt::read_to_string(&mut s, &mut stderr).await;
                }
                return Err(BackupError::Command {
                    command: format!("qemu-nbd {}", image.display()),
                    message: format!("exited with {status}: {}", stderr.trim()),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BackupError::Timeout(format!(
                    "qemu-nbd to create its socket {} ({} s)",
                    socket.display(),
                    QEMU_NBD_START.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }

    /// Kills every export (and reaps it), and removes the sockets.
    async fn stop(&mut self) {
        for (mut child, socket) in self.running.drain(..) {
            if let Err(e) = child.kill().await {
                warn!(socket = %socket.display(), error = %e, "could not stop qemu-nbd");
            }
            let _ = std::fs::remove_file(&socket);
        }
    }
}

impl Drop for QemuNbdServers {
    fn drop(&mut self) {
        for (child, socket) in &mut self.running {
            let _ = child.start_kill();
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// How long `qemu-nbd` may take to create its socket.
const QEMU_NBD_START: Duration = Duration::from_secs(10);

async fn qemu_img_info(path: &Path) -> Result<Value> {
    let mut cmd = tokio::process::Command::new("qemu-img");
    // Only qcow2 images come here; never let qemu-img probe the format.
    cmd.args(["info", "--force-share", "--output=json", "-f", "qcow2"])
        .arg(path);
    novacron_qemu::process::inherit_only_stdio(cmd.as_std_mut(), &[]);
    let out = cmd.output().await.map_err(|e| BackupError::Command {
        command: "qemu-img info".into(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(BackupError::Command {
            command: "qemu-img info".into(),
            message: String::from_utf8_lossy(&out.stderr).trim().into(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| BackupError::Command {
        command: "qemu-img info".into(),
        message: e.to_string(),
    })
}

async fn qemu_img(args: &[&str], path: &Path, bitmap: Option<&str>) -> Result<()> {
    let mut c = tokio::process::Command::new("qemu-img");
    c.args(args).args(["-f", "qcow2"]).arg(path);
    if let Some(b) = bitmap {
        c.arg(b);
    }
    novacron_qemu::process::inherit_only_stdio(c.as_std_mut(), &[]);
    let out = c.output().await.map_err(|e| BackupError::Command {
        command: "qemu-img".into(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(BackupError::Command {
            command: format!("qemu-img {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().into(),
        });
    }
    Ok(())
}

/// Restores every disk of a backup into `dir` as `<disk name>.<raw|qcow2>`, e.g. for a new VM
/// on any node or a fresh install (the index's `vm_spec` describes the VM). Returns the
/// reports in disk order.
pub async fn restore_vm_disks(
    repo: &Repository,
    backup: &BackupId,
    dir: &Path,
    format: RestoreFormat,
) -> Result<Vec<RestoreReport>> {
    let idx = repo.load_index(backup).await?;
    std::fs::create_dir_all(dir).map_err(|e| BackupError::io(dir, e))?;
    let ext = match format {
        RestoreFormat::Raw => "raw",
        RestoreFormat::Qcow2 => "qcow2",
    };
    // Disk names come from the repository and become file names: nothing outside `dir`.
    if let Some(bad) = idx.disks.iter().find(|d| !is_plain_file_name(&d.name)) {
        return Err(BackupError::InvalidArgument(format!(
            "backup {} holds a disk named {:?}, which cannot be a file name in {}",
            backup.0,
            bad.name,
            dir.display()
        )));
    }
    let mut out = Vec::new();
    for d in &idx.disks {
        let target = dir.join(format!("{}.{ext}", d.name));
        let opts = RestoreOptions {
            format,
            ..Default::default()
        };
        out.push(repo.restore_disk(backup, &d.name, &target, &opts).await?);
    }
    Ok(out)
}

/// Restores one disk over the original image of a **stopped** VM (`format` of the original);
/// the old image is replaced only after the restore has fully succeeded. The restored image
/// has no dirty bitmaps, so the next backup of that disk is a full (deduplicated) read.
pub async fn restore_over_original(
    repo: &Repository,
    backup: &BackupId,
    disk: &DiskIndex,
    original: &Path,
    format: DiskFormat,
) -> Result<RestoreReport> {
    let opts = RestoreOptions {
        format: match format {
            DiskFormat::Raw => RestoreFormat::Raw,
            DiskFormat::Qcow2 => RestoreFormat::Qcow2,
        },
        overwrite: true,
        ..Default::default()
    };
    repo.restore_disk(backup, &disk.name, original, &opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names_stay_file_names_in_their_directory() {
        for ok in ["disk0", "disk12", "vda", "a.b"] {
            assert!(is_plain_file_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "/abs", "a\0b"] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }
    use crate::index::{BackupStats, ReadMode};

    fn prev(bitmap: Option<&str>) -> BackupIndex {
        BackupIndex {
            id: BackupId("20261123T000000Z-0000000000000001".into()),
            vm: "vm".into(),
            project: None,
            created_unix_ms: 0,
            finished_unix_ms: 0,
            vm_spec: Value::Null,
            labels: Default::default(),
            disks: vec![DiskIndex {
                name: "vda".into(),
                size_bytes: 1 << 20,
                chunk_size_bytes: 1 << 20,
                format: "qcow2".into(),
                read_mode: ReadMode::Full {
                    reason: String::new(),
                },
                bitmap: bitmap.map(|b| BitmapRef {
                    node: "disk0".into(),
                    name: b.into(),
                    granularity_bytes: 65536,
                }),
                chunks: vec![],
            }],
            stats: BackupStats::default(),
        }
    }

    #[test]
    fn bitmap_checks() {
        let d = LiveDisk {
            name: "vda".into(),
            node: "disk0".into(),
            format: DiskFormat::Qcow2,
        };
        let ok = BitmapState {
            name: "novacron-a".into(),
            recording: true,
            persistent: true,
            inconsistent: false,
            granularity_bytes: 65536,
        };
        let p = prev(Some("novacron-a"));
        assert!(choose_mode(&d, 1 << 20, std::slice::from_ref(&ok), Some(&p), false).is_ok());
        assert!(
            choose_mode(&d, 1 << 20, std::slice::from_ref(&ok), Some(&p), true)
                .unwrap_err()
                .contains("requested")
        );
        assert!(
            choose_mode(&d, 2 << 20, std::slice::from_ref(&ok), Some(&p), false)
                .unwrap_err()
                .contains("size")
        );
        assert!(
            choose_mode(&d, 1 << 20, &[], Some(&p), false)
                .unwrap_err()
                .contains("missing")
        );
        let bad = BitmapState {
            inconsistent: true,
            ..ok.clone()
        };
        assert!(
            choose_mode(&d, 1 << 20, &[bad], Some(&p), false)
                .unwrap_err()
                .contains("inconsistent")
        );
        let off = BitmapState {
            recording: false,
            ..ok.clone()
        };
        assert!(
            choose_mode(&d, 1 << 20, &[off], Some(&p), false)
                .unwrap_err()
                .contains("not recording")
        );
        assert!(
            choose_mode(&d, 1 << 20, std::slice::from_ref(&ok), None, false)
                .unwrap_err()
                .contains("first")
        );
        let raw = LiveDisk {
            format: DiskFormat::Raw,
            ..d.clone()
        };
        assert!(
            choose_mode(&raw, 1 << 20, &[ok], Some(&p), false)
                .unwrap_err()
                .contains("raw")
        );
    }
}
