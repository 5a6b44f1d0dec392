//! `backup repo sync`: replicates a repository to a second one (another site) blob for blob.
//! Blobs are copied as they are (still encrypted, same keys: the target opens with the same
//! key file), chunks before the indexes that name them, so the target is a valid repository at
//! every moment and an interrupted sync simply resumes. The target can be any [`Backend`]:
//! a local directory, S3, or a NovaCron node reached over DWCP through a backend adapter.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use tokio::task::JoinSet;
use tracing::info;

use crate::backend::Backend;
use crate::config::{CONFIG_KEY, RepoConfig};
use crate::error::{BackupError, Result};
use crate::index::INDEX_PREFIX;
use crate::locks::{Lease, LockKind};
use crate::repo::CHUNK_PREFIX;

/// What a sync did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncReport {
    pub chunks_copied: u64,
    pub indexes_copied: u64,
    pub bytes_copied: u64,
    /// Indexes on the target that the source no longer has (removed only with `prune_target`).
    pub indexes_removed: u64,
    pub chunks_already_there: u64,
}

/// Copies every chunk and index of `source` missing from `target` (creating the target
/// repository if it is empty). With `prune_target`, indexes absent from the source are removed
/// from the target too (its `gc` then frees their chunks). Holds a writer lease on the target,
/// so a concurrent `gc` there never sweeps chunks that are being copied.
pub async fn sync_repository(
    source: Arc<dyn Backend>,
    target: Arc<dyn Backend>,
    prune_target: bool,
    concurrency: usize,
) -> Result<SyncReport> {
    let src_cfg_raw = source.get(CONFIG_KEY).await?;
    let src_cfg: RepoConfig =
        serde_json::from_slice(&src_cfg_raw).map_err(|e| BackupError::BadConfig(e.to_string()))?;
    match target.get(CONFIG_KEY).await {
        Ok(raw) => {
            let t: RepoConfig = serde_json::from_slice(&raw)
                .map_err(|e| BackupError::BadConfig(format!("target config.json: {e}")))?;
            if t != src_cfg {
                return Err(BackupError::InvalidArgument(format!(
                    "target {} holds another repository (id {}, source id {}); sync only between copies of one repository",
                    target.location(),
                    t.repo_id,
                    src_cfg.repo_id
                )));
            }
        }
        Err(BackupError::NotFound { .. }) => {
            target.put_new(CONFIG_KEY, src_cfg_raw).await?;
        }
        Err(e) => return Err(e),
    }
    let lease = Lease::acquire(
        target.clone(),
        LockKind::Writer,
        &format!("sync from {}", source.location()),
    )
    .await?;
    let r = copy_all(&source, &target, prune_target, concurrency.max(1)).await;
    let released = lease.release().await;
    let report = r?;
    released?;
    info!(from = %source.location(), to = %target.location(), chunks = report.chunks_copied, indexes = report.indexes_copied, bytes = report.bytes_copied, "repository synced");
    Ok(report)
}

async fn copy_all(
    source: &Arc<dyn Backend>,
    target: &Arc<dyn Backend>,
    prune_target: bool,
    concurrency: usize,
) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    // Indexes first listed, so every chunk they name is copied before them.
    let src_indexes = source.list(INDEX_PREFIX).await?;
    let have: HashSet<String> = target
        .list(CHUNK_PREFIX)
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    let mut set: JoinSet<Result<u64>> = JoinSet::new();
    for obj in source.list(CHUNK_PREFIX).await? {
        if have.contains(&obj.key) {
            report.chunks_already_there += 1;
            continue;
        }
        while set.len() >= concurrency {
            if let Some(r) = set.join_next().await {
                report.bytes_copied += r??;
                report.chunks_copied += 1;
            }
        }
        let (s, t) = (source.clone(), target.clone());
        set.spawn(async move {
            let data = s.get(&obj.key).await?;
            let n = data.len() as u64;
            t.put(&obj.key, data).await?;
            Ok(n)
        });
    }
    while let Some(r) = set.join_next().await {
        report.bytes_copied += r??;
        report.chunks_copied += 1;
    }
    target.flush().await?;
    let tgt_indexes: HashSet<String> = target
        .list(INDEX_PREFIX)
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    let src_keys: HashSet<String> = src_indexes.iter().map(|o| o.key.clone()).collect();
    for obj in &src_indexes {
        if tgt_indexes.contains(&obj.key) {
            continue;
        }
        let data = match source.get(&obj.key).await {
            Ok(d) => d,
            Err(BackupError::NotFound { .. }) => continue, // pruned meanwhile
            Err(e) => return Err(e),
        };
        report.bytes_copied += data.len() as u64;
        target.put_new(&obj.key, data).await?;
        report.indexes_copied += 1;
    }
    if prune_target {
        for k in tgt_indexes.iter().filter(|k| !src_keys.contains(*k)) {
            target.delete(k).await?;
            report.indexes_removed += 1;
        }
    }
    target.flush().await?;
    Ok(report)
}
