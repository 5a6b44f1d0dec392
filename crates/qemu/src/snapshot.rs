//! Internal qcow2 snapshots of a VM's disk: taken, reverted and deleted through QMP while
//! QEMU runs (disk-only with `blockdev-snapshot-internal-sync`, with memory through the
//! `snapshot-save`/`snapshot-load`/`snapshot-delete` jobs of QEMU 6.0+), and with
//! `qemu-img snapshot` while it is stopped. The snapshots live inside the disk file itself,
//! so the disk stays one file (backups, storage pools and HA restarts see one file).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::img::{path_str, run_qemu_img};
use crate::{QemuError, Qmp};

/// One internal snapshot of a qcow2 file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// Bytes of saved guest memory and device state (0: a disk-only snapshot).
    pub vm_state_bytes: u64,
    /// When it was taken (Unix seconds).
    pub date_sec: i64,
}

/// Longest snapshot name qcow2 tools handle comfortably (qcow2 allows 65535).
pub const MAX_SNAPSHOT_NAME: usize = 63;

/// `qemu-img info` of `disk` as JSON (readable while QEMU runs: qemu-img opens it shared).
async fn info_json(disk: &Path) -> Result<String, QemuError> {
    let d = path_str(disk, "disk")?;
    let (code, out, stderr) =
        run_qemu_img("info", &["info", "-U", "--output=json", "-f", "qcow2", d]).await?;
    if code != 0 {
        return Err(QemuError::QemuImg {
            operation: "info".into(),
            stderr,
        });
    }
    Ok(out)
}

/// Snapshots of `disk`.
pub async fn list(disk: &Path) -> Result<Vec<SnapshotInfo>, QemuError> {
    parse_snapshots(&info_json(disk).await?)
}

/// Names of the persistent dirty bitmaps stored in `disk` (backups keep theirs there).
pub async fn bitmaps(disk: &Path) -> Result<Vec<String>, QemuError> {
    Ok(parse_bitmaps(&info_json(disk).await?))
}

/// The bitmap names in `qemu-img info --output=json`.
pub fn parse_bitmaps(info_json: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(info_json).unwrap_or(Value::Null);
    v["format-specific"]["data"]["bitmaps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Removes dirty bitmap `name` from a disk no QEMU has open.
pub async fn remove_bitmap_offline(disk: &Path, name: &str) -> Result<(), QemuError> {
    let d = path_str(disk, "disk")?;
    let (code, _, stderr) =
        run_qemu_img("bitmap", &["bitmap", "-f", "qcow2", "--remove", d, name]).await?;
    if code != 0 {
        return Err(QemuError::QemuImg {
            operation: format!("bitmap --remove {name}"),
            stderr,
        });
    }
    Ok(())
}

/// Removes dirty bitmap `name` from block node `node` of a running VM.
pub async fn remove_bitmap_live(qmp: &Qmp, node: &str, name: &str) -> Result<(), QemuError> {
    qmp.execute(
        "block-dirty-bitmap-remove",
        Some(json!({"node": node, "name": name})),
    )
    .await
    .map(|_| ())
}

/// The `snapshots` of `qemu-img info --output=json`.
pub fn parse_snapshots(info_json: &str) -> Result<Vec<SnapshotInfo>, QemuError> {
    let v: Value = serde_json::from_str(info_json).map_err(|e| QemuError::QemuImg {
        operation: "info".into(),
        stderr: format!("unreadable JSON: {e}"),
    })?;
    Ok(v["snapshots"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    Some(SnapshotInfo {
                        name: s["name"].as_str()?.to_string(),
                        vm_state_bytes: s["vm-state-size"].as_u64().unwrap_or(0),
                        date_sec: s["date-sec"].as_i64().unwrap_or(0),
                    })
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn qemu_img_snapshot(flag: &str, disk: &Path, name: &str) -> Result<(), QemuError> {
    let d = path_str(disk, "disk")?;
    let (code, _, stderr) = run_qemu_img("snapshot", &["snapshot", flag, name, d]).await?;
    if code != 0 {
        return Err(QemuError::QemuImg {
            operation: format!("snapshot {flag} {name}"),
            stderr,
        });
    }
    Ok(())
}

/// Takes a disk snapshot of a disk no QEMU has open.
pub async fn create_offline(disk: &Path, name: &str) -> Result<(), QemuError> {
    qemu_img_snapshot("-c", disk, name).await
}

/// Reverts a disk no QEMU has open to a snapshot (its saved memory, if any, is not used).
pub async fn revert_offline(disk: &Path, name: &str) -> Result<(), QemuError> {
    qemu_img_snapshot("-a", disk, name).await
}

/// Deletes a snapshot of a disk no QEMU has open.
pub async fn delete_offline(disk: &Path, name: &str) -> Result<(), QemuError> {
    qemu_img_snapshot("-d", disk, name).await
}

/// The dirty bitmaps of block node `node` of a running VM, as QEMU holds them (a persistent
/// bitmap added while it runs reaches the file only when QEMU closes it, so the file's own
/// list can lack it).
pub async fn bitmaps_live(qmp: &Qmp, node: &str) -> Result<Vec<String>, QemuError> {
    let nodes = qmp
        .execute("query-named-block-nodes", Some(json!({"flat": true})))
        .await?;
    Ok(live_bitmaps_of(&nodes, node))
}

/// The names of `node`'s dirty bitmaps in an answer of `query-named-block-nodes`.
fn live_bitmaps_of(nodes: &Value, node: &str) -> Vec<String> {
    nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["node-name"] == node)
        .flat_map(|n| n["dirty-bitmaps"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["name"].as_str().map(str::to_string))
        .collect()
}

/// Takes a disk-only snapshot of block nodes `nodes` of a running VM: one QMP transaction,
/// so every disk holds the same moment (atomic, no pause).
pub async fn create_live_disk(qmp: &Qmp, nodes: &[&str], name: &str) -> Result<(), QemuError> {
    let actions: Vec<Value> = nodes
        .iter()
        .map(|node| {
            json!({"type": "blockdev-snapshot-internal-sync",
                   "data": {"device": node, "name": name}})
        })
        .collect();
    qmp.execute("transaction", Some(json!({ "actions": actions })))
        .await
        .map(|_| ())
}

/// Saves memory and device state (into the first of `nodes`) and block nodes `nodes` of a
/// running VM as snapshot `name` (the guest pauses while its memory is written).
pub async fn create_live_memory(
    qmp: &Qmp,
    nodes: &[&str],
    name: &str,
    timeout: Duration,
) -> Result<(), QemuError> {
    run_job(
        qmp,
        "snapshot-save",
        json!({"tag": name, "vmstate": nodes.first(), "devices": nodes}),
        timeout,
    )
    .await
}

/// Loads snapshot `name` (memory from the first of `nodes`, and every node's disk) into a
/// running VM: the guest continues from the moment the snapshot was taken.
pub async fn load_live_memory(
    qmp: &Qmp,
    nodes: &[&str],
    name: &str,
    timeout: Duration,
) -> Result<(), QemuError> {
    run_job(
        qmp,
        "snapshot-load",
        json!({"tag": name, "vmstate": nodes.first(), "devices": nodes}),
        timeout,
    )
    .await
}

/// Deletes snapshot `name` from block nodes `nodes` of a running VM.
pub async fn delete_live(
    qmp: &Qmp,
    nodes: &[&str],
    name: &str,
    timeout: Duration,
) -> Result<(), QemuError> {
    run_job(
        qmp,
        "snapshot-delete",
        json!({"tag": name, "devices": nodes}),
        timeout,
    )
    .await
}

/// Starts a QEMU job and waits until it concluded; its error becomes [`QemuError::Qmp`].
async fn run_job(
    qmp: &Qmp,
    command: &str,
    mut arguments: Value,
    timeout: Duration,
) -> Result<(), QemuError> {
    let id = format!(
        "nc-{command}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    arguments["job-id"] = Value::String(id.clone());
    qmp.execute(command, Some(arguments)).await?;
    let started = Instant::now();
    loop {
        let jobs = qmp.execute("query-jobs", None).await?;
        let job = jobs
            .as_array()
            .and_then(|a| a.iter().find(|j| j["id"] == id.as_str()))
            .cloned();
        let Some(job) = job else {
            // Dismissed by QEMU itself: it succeeded (an error keeps the job).
            return Ok(());
        };
        if job["status"] == "concluded" || job["status"] == "null" {
            let _ = qmp.execute("job-dismiss", Some(json!({ "id": id }))).await;
            return match job["error"].as_str() {
                Some(e) => Err(QemuError::Qmp {
                    command: command.into(),
                    class: "JobFailed".into(),
                    desc: e.to_string(),
                }),
                None => Ok(()),
            };
        }
        if started.elapsed() > timeout {
            let _ = qmp.execute("job-cancel", Some(json!({ "id": id }))).await;
            return Err(QemuError::QmpTimeout {
                command: command.into(),
                timeout_ms: timeout.as_millis() as u64,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_snapshots_of_qemu_img_info() {
        let json = r#"{"format": "qcow2", "virtual-size": 1048576, "snapshots": [
            {"icount": 0, "vm-state-size": 0, "date-sec": 1700000000, "name": "before", "id": "1", "vm-clock-sec": 0, "date-nsec": 1, "vm-clock-nsec": 0},
            {"vm-state-size": 4096, "date-sec": 1700000100, "name": "mem", "id": "2"}]}"#;
        let s = parse_snapshots(json).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "before");
        assert_eq!(s[1].vm_state_bytes, 4096);
        assert!(
            parse_snapshots(r#"{"format": "qcow2"}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn reads_a_nodes_bitmaps_from_qemu() {
        let nodes = json!([
            {"node-name": "disk0", "dirty-bitmaps": [{"name": "novacron-1", "granularity": 65536}]},
            {"node-name": "disk0-file"},
            {"node-name": "disk1", "dirty-bitmaps": []}
        ]);
        assert_eq!(live_bitmaps_of(&nodes, "disk0"), ["novacron-1"]);
        assert!(live_bitmaps_of(&nodes, "disk1").is_empty());
        assert!(live_bitmaps_of(&nodes, "disk9").is_empty());
    }

    #[test]
    fn parses_the_bitmaps_of_qemu_img_info() {
        let json = r#"{"format": "qcow2", "format-specific": {"type": "qcow2", "data": {
            "bitmaps": [{"flags": ["auto"], "name": "novacron-1", "granularity": 65536}]}}}"#;
        assert_eq!(parse_bitmaps(json), ["novacron-1"]);
        assert!(parse_bitmaps(r#"{"format": "qcow2"}"#).is_empty());
    }
}
