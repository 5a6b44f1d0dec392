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
}

impl LiveBackupOptions {
    pub fn new(work_dir: impl Into<PathBuf>) -> LiveBackupOptions {
        LiveBackupOptions {
            work_dir: work_dir.into(),
            granularity_bytes: DEFAULT_GRANULARITY_BYTES,
            force_full: false,
            backup: BackupOptions::default(),
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
    if disks.is_empty() {
        return Err(BackupError::InvalidArgument("no disks to back up".into()));
    }
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| BackupError::io(&opts.work_dir, e))?;
    let previous = repo.latest_backup(&meta.vm).await?;
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
        let image = opts.work_dir.join(format!("fleece-{tag}-{i}.qcow2"));
        novacron_qemu::create_blank(&image, DiskFormat::Qcow2, size)
            .await
            .map_err(|e| qemu_err("fleecing image", e))?;
        // QEMU may run as the VM's own user, who owns the work directory.
        novacron_qemu::user::give_to_dir_owner(&image)
            .map_err(|e| qemu_err("fleecing image", e))?;
        fleeces.push(Fleece {
            disk: d.clone(),
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
        let sock = socket.to_path_buf();
        let name = f.disk.name.clone();
        let ctx = f
            .old
            .as_ref()
            .map(|(_, b)| format!("qemu:dirty-bitmap:{}", b.name));
        let gran = f
            .old
            .as_ref()
            .map(|(_, b)| b.granularity_bytes)
            .unwrap_or(DEFAULT_GRANULARITY_BYTES);
        let (source, map) =
            tokio::task::spawn_blocking(move || -> Result<(NbdSource, Option<DirtyMap>)> {
                let ctxs: Vec<String> = ctx.iter().cloned().collect();
                let mut c = NbdClient::connect_unix(&sock, &name, &ctxs).map_err(|e| {
                    BackupError::Source {
                        disk: name.clone(),
                        message: e.to_string(),
                    }
                })?;
                let map = match &ctx {
                    Some(ctx) => {
                        let size = c.size_bytes();
                        let ext =
                            c.block_status(ctx, 0, size)
                                .map_err(|e| BackupError::Source {
                                    disk: name.clone(),
                                    message: e.to_string(),
                                })?;
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
            .await??;
        let changes = match (map, &f.old) {
            (Some(map), Some((parent, _))) => {
                info!(vm = %meta.vm, disk = %f.disk.name, dirty_bytes = map.dirty_bytes(), "incremental read from dirty bitmap");
                Changes::Dirty {
                    parent: parent.clone(),
                    map,
                }
            }
            _ => Changes::Full {
                reason: f.full_reason.clone().unwrap_or_default(),
            },
        };
        inputs.push(DiskInput {
            name: f.disk.name.clone(),
            format: f.disk.format.as_str().to_string(),
            source: Arc::new(source),
            changes,
            bitmap: (f.disk.format == DiskFormat::Qcow2).then(|| BitmapRef {
                node: f.disk.node.clone(),
                name: f.new_bitmap.clone(),
                granularity_bytes: opts.granularity_bytes,
            }),
        });
    }
    let mut meta = meta.clone();
    meta.created_unix_ms = Some(meta.created_unix_ms.unwrap_or(point_in_time));
    repo.backup(meta, inputs, &opts.backup, progress).await
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

/// Backs up a disk image of a stopped VM: raw images are read directly (always full); qcow2
/// images are exported with `qemu-nbd` (read-only) so that the previous backup's persistent
/// bitmap drives an incremental read, and a new bitmap is added with `qemu-img bitmap` for the
/// next one.
pub async fn backup_stopped_disk(
    repo: &Repository,
    disk_name: &str,
    path: &Path,
    format: DiskFormat,
    meta: BackupMeta,
    opts: &LiveBackupOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<BackupIndex> {
    if format == DiskFormat::Raw {
        let src = Arc::new(FileSource::open(path)?);
        let input = DiskInput {
            name: disk_name.into(),
            format: "raw".into(),
            source: src,
            changes: Changes::Full {
                reason: "raw image: it cannot hold a persistent dirty bitmap".into(),
            },
            bitmap: None,
        };
        return repo.backup(meta, vec![input], &opts.backup, progress).await;
    }
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| BackupError::io(&opts.work_dir, e))?;
    let info = qemu_img_info(path).await?;
    let size = info["virtual-size"]
        .as_u64()
        .ok_or_else(|| BackupError::Qemu("qemu-img info: no virtual-size".into()))?;
    let bitmaps: Vec<BitmapState> = info["format-specific"]["data"]["bitmaps"]
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
        .unwrap_or_default();
    let previous = repo.latest_backup(&meta.vm).await?;
    let disk = LiveDisk {
        name: disk_name.into(),
        node: "stopped".into(),
        format,
    };
    let (old, full_reason) =
        match choose_mode(&disk, size, &bitmaps, previous.as_ref(), opts.force_full) {
            Ok(x) => (Some(x), None),
            Err(r) => (None, Some(r)),
        };
    let socket = opts
        .work_dir
        .join(format!("qemu-nbd-{}.sock", random_hex8()?));
    let mut cmd = tokio::process::Command::new("qemu-nbd");
    cmd.args([
        "--read-only",
        "--persistent",
        "--shared=2",
        "-f",
        "qcow2",
        "-x",
        disk_name,
    ])
    .arg(format!("--socket={}", socket.display()));
    if let Some((_, b)) = &old {
        cmd.arg(format!("--bitmap={}", b.name));
    }
    novacron_qemu::process::inherit_only_stdio(cmd.as_std_mut(), &[]);
    cmd.arg(path)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| BackupError::Command {
        command: "qemu-nbd".into(),
        message: e.to_string(),
    })?;
    let result = async {
        for _ in 0..200 {
            if socket.exists() {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(BackupError::Command {
                    command: "qemu-nbd".into(),
                    message: format!("exited with {st}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let sock = socket.clone();
        let name = disk_name.to_string();
        let ctx = old
            .as_ref()
            .map(|(_, b)| format!("qemu:dirty-bitmap:{}", b.name));
        let gran = old
            .as_ref()
            .map(|(_, b)| b.granularity_bytes)
            .unwrap_or(DEFAULT_GRANULARITY_BYTES);
        let (source, map) =
            tokio::task::spawn_blocking(move || -> Result<(NbdSource, Option<DirtyMap>)> {
                let ctxs: Vec<String> = ctx.iter().cloned().collect();
                let mut c = NbdClient::connect_unix(&sock, &name, &ctxs).map_err(|e| {
                    BackupError::Source {
                        disk: name.clone(),
                        message: e.to_string(),
                    }
                })?;
                let map = match &ctx {
                    Some(ctx) => {
                        let size = c.size_bytes();
                        let ext =
                            c.block_status(ctx, 0, size)
                                .map_err(|e| BackupError::Source {
                                    disk: name.clone(),
                                    message: e.to_string(),
                                })?;
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
            .await??;
        let changes = match (map, &old) {
            (Some(map), Some((parent, _))) => Changes::Dirty {
                parent: parent.clone(),
                map,
            },
            _ => Changes::Full {
                reason: full_reason.clone().unwrap_or_default(),
            },
        };
        let new_bitmap = format!("{BITMAP_PREFIX}{}", random_hex8()?);
        let input = DiskInput {
            name: disk_name.into(),
            format: "qcow2".into(),
            source: Arc::new(source),
            changes,
            bitmap: Some(BitmapRef {
                node: "stopped".into(),
                name: new_bitmap.clone(),
                granularity_bytes: opts.granularity_bytes,
            }),
        };
        let idx = repo
            .backup(meta, vec![input], &opts.backup, progress)
            .await?;
        Ok((idx, new_bitmap))
    }
    .await;
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&socket);
    let (idx, new_bitmap) = result?;
    // The image is unchanged since the backup: start the next bitmap now, drop the old ones.
    qemu_img(
        &["bitmap", "--add", "-g", &opts.granularity_bytes.to_string()],
        path,
        Some(&new_bitmap),
    )
    .await?;
    for b in bitmaps.iter().filter(|b| b.name.starts_with(BITMAP_PREFIX)) {
        if let Err(e) = qemu_img(&["bitmap", "--remove"], path, Some(&b.name)).await {
            warn!(bitmap = %b.name, error = %e, "could not remove an old bitmap");
        }
    }
    Ok(idx)
}

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
    use crate::index::{BackupStats, ReadMode};

    fn prev(bitmap: Option<&str>) -> BackupIndex {
        BackupIndex {
            id: BackupId("20261123T000000Z-0000000000000001".into()),
            vm: "vm".into(),
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
