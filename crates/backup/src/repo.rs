//! The repository: create/open, backup (full or incremental from a dirty map), restore,
//! list, verify, prune, forget and garbage collection, on top of any [`Backend`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::backend::Backend;
use crate::blob::{self, BlobKind};
use crate::config::{
    CONFIG_KEY, ChunkingConfig, CompressionConfig, DEFAULT_CHUNK_SIZE_BYTES, EncryptionConfig,
    FORMAT_VERSION, RepoConfig,
};
use crate::crypto::{ChunkId, DataKeys, KeyFile};
use crate::error::{BackupError, Result};
use crate::index::{
    BackupId, BackupIndex, BackupStats, BitmapRef, ChunkRef, DiskIndex, INDEX_PREFIX, ReadMode,
    distinct_data_bytes,
};
use crate::locks::{Lease, LockKind, list_locks};
use crate::retention::{RetentionPolicy, select};
use crate::source::{DirtyMap, DiskSource};
use crate::util::{compact_timestamp, from_hex, now_unix_ms, random_fill, random_hex8, to_hex};

/// Object key prefix of chunks.
pub const CHUNK_PREFIX: &str = "chunks/";
/// Largest index accepted when decoding (a 64 TiB disk at 64 KiB chunks).
const MAX_INDEX_BYTES: usize = 1 << 30;

/// Object key of a chunk: `chunks/<first two hex digits>/<64 hex digits>`.
pub fn chunk_key(id: &ChunkId) -> String {
    let h = id.to_hex();
    format!("{CHUNK_PREFIX}{}/{h}", &h[..2])
}

fn parse_chunk_key(key: &str) -> Option<ChunkId> {
    let rest = key.strip_prefix(CHUNK_PREFIX)?;
    let (dir, name) = rest.split_once('/')?;
    let id = ChunkId::from_hex(name)?;
    (dir.len() == 2 && name.starts_with(dir)).then_some(id)
}

/// Parameters of a new repository.
pub struct CreateOptions {
    pub chunk_size_bytes: u64,
    pub zstd_level: i32,
    /// Encrypt with AES-256-GCM under data keys wrapped by this key file.
    pub key: Option<KeyFile>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            chunk_size_bytes: DEFAULT_CHUNK_SIZE_BYTES,
            zstd_level: crate::config::DEFAULT_ZSTD_LEVEL,
            key: None,
        }
    }
}

/// What a backup is of, as recorded in its index.
#[derive(Clone, Debug, Default)]
pub struct BackupMeta {
    pub vm: String,
    /// The VM's project (`None`: as [`BackupIndex::project`] reads an index without one).
    pub project: Option<String>,
    /// At most this much data (as [`crate::index::distinct_data_bytes`] counts it) may the
    /// project's backups hold in this repository once this one is published; a backup that
    /// would bring them over it is not published ([`BackupError::StorageLimit`]).
    pub storage_limit: Option<u64>,
    /// VM definition (opaque JSON) for restoring onto a fresh install.
    pub vm_spec: serde_json::Value,
    pub labels: BTreeMap<String, String>,
    /// Overrides the backup's point in time (imports and tests); `None` = now.
    pub created_unix_ms: Option<u64>,
}

impl BackupMeta {
    /// The project the backup will belong to (what [`BackupIndex::project`] will read).
    pub fn project(&self) -> &str {
        crate::index::project_of(self.project.as_deref(), &self.vm_spec)
    }
}

/// How to read one disk.
pub enum Changes {
    /// Read every chunk (still deduplicated against the repository); `reason` is recorded
    /// and logged, e.g. "first backup" or "dirty bitmap missing after host crash".
    Full { reason: String },
    /// Read only chunks overlapping `map`; take the others from the same disk in `parent`.
    Dirty { parent: BackupId, map: DirtyMap },
}

/// One disk to back up.
pub struct DiskInput {
    pub name: String,
    /// Format of the VM's image (`raw`, `qcow2`): default format on restore.
    pub format: String,
    pub source: Arc<dyn DiskSource>,
    pub changes: Changes,
    /// Dirty bitmap that now tracks writes after this backup (live backups).
    pub bitmap: Option<BitmapRef>,
}

/// Tuning of a backup run.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// Chunks hashed/compressed/encrypted/uploaded concurrently.
    pub concurrency: usize,
    /// How long to wait for a running garbage-collection sweep before giving up.
    pub sweep_wait: Duration,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            concurrency: default_concurrency(),
            sweep_wait: Duration::from_secs(600),
        }
    }
}

fn default_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        * 2
}

/// Progress of a running backup or restore.
#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    pub disk: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// A short description of a backup for `backup list`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupListing {
    pub id: BackupId,
    /// `None` when the index cannot be read (see `error`).
    pub vm: Option<String>,
    /// `None` when the index cannot be read (see `error`).
    pub project: Option<String>,
    pub created_unix_ms: Option<u64>,
    pub size_bytes: Option<u64>,
    pub disks: Vec<String>,
    pub error: Option<String>,
}

/// Output format of a restored disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreFormat {
    Raw,
    /// Written as raw next to the target, then `qemu-img convert -O qcow2`.
    Qcow2,
}

/// Tuning of a restore.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    pub format: RestoreFormat,
    pub concurrency: usize,
    /// Replace an existing target file (restore over the original, VM stopped).
    pub overwrite: bool,
    /// fsync the result before returning.
    pub sync: bool,
    /// Write 4 KiB-aligned chunks with O_DIRECT (large sequential writes that bypass the page
    /// cache, which on these machines is far slower than the disk); falls back to buffered
    /// writes where the file system refuses O_DIRECT.
    pub direct_io: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            format: RestoreFormat::Raw,
            // Deeper than backups: restores wait on reads and O_DIRECT writes more than on CPU.
            concurrency: default_concurrency() * 2,
            overwrite: false,
            sync: true,
            direct_io: true,
        }
    }
}

/// What a restore did.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    pub backup: BackupId,
    pub disk: String,
    pub target: PathBuf,
    pub size_bytes: u64,
    pub bytes_written: u64,
    /// Bytes left as holes (all-zero chunks).
    pub zero_bytes: u64,
    pub duration_ms: u64,
}

/// Options of `verify`.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Also re-hash chunks no backup references (not yet collected).
    pub include_unreferenced: bool,
    pub concurrency: Option<usize>,
}

/// A chunk that failed verification.
#[derive(Clone, Debug, Serialize)]
pub struct BadChunk {
    pub id: String,
    pub reason: String,
    pub backups: Vec<BackupId>,
}

/// A backup that cannot be restored intact, and why.
#[derive(Clone, Debug, Serialize)]
pub struct AffectedBackup {
    pub id: BackupId,
    pub vm: Option<String>,
    pub reasons: Vec<String>,
}

/// Result of `verify`.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub backups_checked: u64,
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    pub affected_backups: Vec<AffectedBackup>,
    pub bad_chunks: Vec<BadChunk>,
    /// Corrupt chunks that no backup references (harmless; gc removes them).
    pub bad_unreferenced_chunks: Vec<String>,
    pub unreferenced_chunks: u64,
    pub duration_ms: u64,
}

/// One backup's fate in `prune`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PruneItem {
    pub id: BackupId,
    pub vm: String,
    #[serde(default)]
    pub project: String,
    pub created_unix_ms: u64,
    /// Rule(s) that keep it (`daily`, `weekly,monthly`, …); empty when removed.
    pub reason: String,
}

/// Result of `prune`.
#[derive(Clone, Debug, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub kept: Vec<PruneItem>,
    pub removed: Vec<PruneItem>,
    /// Backups whose index cannot be read: never removed by prune.
    pub unreadable: Vec<BackupId>,
}

/// Options of `gc`.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Unreferenced chunks younger than this are kept (defence in depth on top of the
    /// writer/sweep handshake, e.g. against a remote writer whose lease went stale).
    pub grace: Duration,
    /// How long to keep retrying while backups are in progress before deferring the sweep.
    pub writer_wait: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            writer_wait: Duration::from_secs(60),
        }
    }
}

/// Result of `gc`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    pub backups_marked: u64,
    pub chunks_total: u64,
    pub chunks_referenced: u64,
    pub chunks_deleted: u64,
    pub bytes_deleted: u64,
    /// Unreferenced but younger than the grace period.
    pub chunks_in_grace: u64,
    pub partial_files_removed: u64,
    pub stale_locks_removed: u64,
}

/// An open repository.
#[derive(Clone)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: RepoConfig,
    keys: Option<Arc<DataKeys>>,
}

impl Repository {
    /// Creates a new repository on an empty backend.
    pub async fn create(backend: Arc<dyn Backend>, opts: CreateOptions) -> Result<Repository> {
        if backend.exists(CONFIG_KEY).await? {
            return Err(BackupError::AlreadyExists {
                path: backend.location(),
            });
        }
        let cs = opts.chunk_size_bytes;
        let mut repo_id = [0u8; 16];
        random_fill(&mut repo_id)?;
        let repo_id = to_hex(&repo_id);
        let (encryption, keys) = match &opts.key {
            Some(kf) => {
                let keys = DataKeys::generate()?;
                let mut salt = [0u8; 32];
                random_fill(&mut salt)?;
                let wrapped = keys.wrap(kf, &salt, repo_id.as_bytes())?;
                (
                    Some(EncryptionConfig {
                        algorithm: "aes-256-gcm".into(),
                        kdf: "hkdf-sha256".into(),
                        salt_hex: to_hex(&salt),
                        wrapped_keys_hex: to_hex(&wrapped),
                    }),
                    Some(Arc::new(keys)),
                )
            }
            None => (None, None),
        };
        let config = RepoConfig {
            format: "novacron-backup".into(),
            version: FORMAT_VERSION,
            repo_id,
            created_unix_ms: now_unix_ms(),
            chunking: ChunkingConfig {
                kind: "fixed".into(),
                chunk_size_bytes: cs,
            },
            compression: CompressionConfig {
                algorithm: "zstd".into(),
                level: opts.zstd_level,
            },
            chunk_id: if keys.is_some() {
                "blake3-keyed"
            } else {
                "blake3"
            }
            .into(),
            encryption,
        };
        config.validate().map_err(BackupError::InvalidArgument)?;
        let json =
            serde_json::to_vec_pretty(&config).map_err(|e| BackupError::Task(e.to_string()))?;
        if !backend.put_new(CONFIG_KEY, json).await? {
            return Err(BackupError::AlreadyExists {
                path: backend.location(),
            });
        }
        backend.flush().await?;
        info!(repo = %backend.location(), chunk_size_bytes = cs, encrypted = keys.is_some(), "repository created");
        Ok(Repository {
            backend,
            config,
            keys,
        })
    }

    /// Opens an existing repository; `key` is required when it is encrypted.
    pub async fn open(backend: Arc<dyn Backend>, key: Option<&KeyFile>) -> Result<Repository> {
        let raw = match backend.get(CONFIG_KEY).await {
            Ok(r) => r,
            Err(BackupError::NotFound { .. }) => {
                return Err(BackupError::NotARepository {
                    path: backend.location(),
                });
            }
            Err(e) => return Err(e),
        };
        let config: RepoConfig = serde_json::from_slice(&raw)
            .map_err(|e| BackupError::BadConfig(format!("config.json: {e}")))?;
        if config.version != FORMAT_VERSION {
            return Err(BackupError::UnsupportedFormat {
                found: config.version,
                supported: FORMAT_VERSION,
            });
        }
        config.validate().map_err(BackupError::BadConfig)?;
        let keys = match (&config.encryption, key) {
            (None, _) => None,
            (Some(_), None) => return Err(BackupError::KeyRequired),
            (Some(enc), Some(kf)) => {
                let salt = from_hex(&enc.salt_hex)
                    .ok_or_else(|| BackupError::BadConfig("salt_hex".into()))?;
                let wrapped = from_hex(&enc.wrapped_keys_hex)
                    .ok_or_else(|| BackupError::BadConfig("wrapped_keys_hex".into()))?;
                Some(Arc::new(DataKeys::unwrap(
                    kf,
                    &salt,
                    config.repo_id.as_bytes(),
                    &wrapped,
                )?))
            }
        };
        Ok(Repository {
            backend,
            config,
            keys,
        })
    }

    /// The repository's self-description.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The storage behind it.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Whether blobs are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.keys.is_some()
    }

    fn chunk_size(&self) -> u64 {
        self.config.chunking.chunk_size_bytes
    }

    /// Ids of all published backups, oldest first.
    pub async fn backup_ids(&self) -> Result<Vec<BackupId>> {
        let mut ids: Vec<BackupId> = self
            .backend
            .list(INDEX_PREFIX)
            .await?
            .into_iter()
            .filter_map(|o| BackupId::parse(o.key.strip_prefix(INDEX_PREFIX)?))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Reads and checks one backup's index.
    pub async fn load_index(&self, id: &BackupId) -> Result<BackupIndex> {
        let raw = match self.backend.get(&id.key()).await {
            Ok(r) => r,
            Err(BackupError::NotFound { .. }) => {
                return Err(BackupError::UnknownBackup(id.0.clone()));
            }
            Err(e) => return Err(e),
        };
        let keys = self.keys.clone();
        let id2 = id.clone();
        tokio::task::spawn_blocking(move || decode_index(keys.as_deref(), &id2, raw)).await?
    }

    /// All backups (optionally of one project, of one VM), oldest first; unreadable indexes
    /// are listed with their error rather than hidden.
    pub async fn list_backups(
        &self,
        project: Option<&str>,
        vm: Option<&str>,
    ) -> Result<Vec<BackupListing>> {
        let mut out = Vec::new();
        for id in self.backup_ids().await? {
            match self.load_index(&id).await {
                Ok(idx) => {
                    if !idx.is_of(project, vm) {
                        continue;
                    }
                    out.push(BackupListing {
                        id,
                        vm: Some(idx.vm.clone()),
                        project: Some(idx.project().to_string()),
                        created_unix_ms: Some(idx.created_unix_ms),
                        size_bytes: Some(idx.size_bytes()),
                        disks: idx.disks.iter().map(|d| d.name.clone()).collect(),
                        error: None,
                    })
                }
                Err(BackupError::UnknownBackup(_)) => continue,
                Err(e) => out.push(BackupListing {
                    id,
                    vm: None,
                    project: None,
                    created_unix_ms: None,
                    size_bytes: None,
                    disks: Vec::new(),
                    error: Some(e.to_string()),
                }),
            }
        }
        Ok(out)
    }

    /// The readable backups of `project`, oldest first.
    pub async fn project_backups(&self, project: &str) -> Result<Vec<BackupIndex>> {
        let mut out = Vec::new();
        for id in self.backup_ids().await? {
            match self.load_index(&id).await {
                Ok(idx) if idx.project() == project => out.push(idx),
                Ok(_) | Err(BackupError::UnknownBackup(_)) => {}
                Err(e) => warn!(backup = %id, error = %e, "skipping unreadable index"),
            }
        }
        Ok(out)
    }

    /// The data `project`'s backups hold in this repository (see
    /// [`crate::index::distinct_data_bytes`]).
    pub async fn project_data_bytes(&self, project: &str) -> Result<u64> {
        Ok(distinct_data_bytes(&self.project_backups(project).await?))
    }

    /// The newest readable backup of `vm` in `project` by point in time (ids sort by second
    /// only), if any.
    pub async fn latest_backup(&self, project: &str, vm: &str) -> Result<Option<BackupIndex>> {
        let mut best: Option<BackupIndex> = None;
        for id in self.backup_ids().await?.into_iter().rev() {
            if let Some(b) = &best
                && id.0.get(..16) < b.id.0.get(..16)
            {
                break; // older second than the best found: nothing newer can follow
            }
            match self.load_index(&id).await {
                Ok(idx) if idx.is_of(Some(project), Some(vm)) => {
                    let newer = best.as_ref().is_none_or(|b| {
                        (idx.created_unix_ms, idx.finished_unix_ms)
                            > (b.created_unix_ms, b.finished_unix_ms)
                    });
                    if newer {
                        best = Some(idx);
                    }
                }
                Ok(_) | Err(BackupError::UnknownBackup(_)) => {}
                Err(e) => warn!(backup = %id, error = %e, "skipping unreadable index"),
            }
        }
        Ok(best)
    }

    /// Backs up `disks` into a new backup of `meta.vm` and publishes it atomically: chunks
    /// first (each durable), then the index under a fresh name. Returns the published index.
    pub async fn backup(
        &self,
        meta: BackupMeta,
        disks: Vec<DiskInput>,
        opts: &BackupOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<BackupIndex> {
        if meta.vm.is_empty() || disks.is_empty() {
            return Err(BackupError::InvalidArgument(
                "a backup needs a VM name and at least one disk".into(),
            ));
        }
        // The project names a lock object: a name, not a path.
        if BackupId::parse(meta.project()).is_none() {
            return Err(BackupError::InvalidArgument(format!(
                "project {:?} is not a name (letters, digits, - and _)",
                meta.project()
            )));
        }
        let mut names = HashSet::new();
        for d in &disks {
            if !names.insert(d.name.clone()) {
                return Err(BackupError::InvalidArgument(format!(
                    "disk {} given twice",
                    d.name
                )));
            }
        }
        let started = Instant::now();
        let created = meta.created_unix_ms.unwrap_or_else(now_unix_ms);
        let id = BackupId(format!("{}-{}", compact_timestamp(created), random_hex8()?));
        let lease = Lease::acquire(
            self.backend.clone(),
            LockKind::Writer,
            &format!("backup {id} of {}", meta.vm),
        )
        .await?;
        let result = self
            .backup_locked(&id, &meta, created, disks, opts, progress, started)
            .await;
        let release = lease.release().await;
        let idx = result?;
        release?;
        Ok(idx)
    }

    #[allow(clippy::too_many_arguments)]
    async fn backup_locked(
        &self,
        id: &BackupId,
        meta: &BackupMeta,
        created: u64,
        disks: Vec<DiskInput>,
        opts: &BackupOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
        started: Instant,
    ) -> Result<BackupIndex> {
        self.wait_for_sweeps(opts.sweep_wait).await?;
        let mut parents: HashMap<BackupId, BackupIndex> = HashMap::new();
        let mut known: HashSet<ChunkId> = HashSet::new();
        let mut disk_indexes = Vec::new();
        let mut stats = BackupStats::default();
        for disk in disks {
            // Resolve the parent disk for incremental reads, or fall back to a full read.
            let mut parent_disk: Option<(BackupId, DiskIndex, DirtyMap)> = None;
            let mut read_mode = ReadMode::Full {
                reason: String::new(),
            };
            match disk.changes {
                Changes::Full { reason } => read_mode = ReadMode::Full { reason },
                Changes::Dirty { parent, map } => {
                    if !parents.contains_key(&parent) {
                        match self.load_index(&parent).await {
                            Ok(p) => {
                                parents.insert(parent.clone(), p);
                            }
                            Err(e) => {
                                read_mode = ReadMode::Full {
                                    reason: format!("parent backup {parent} unusable: {e}"),
                                }
                            }
                        }
                    }
                    if let Some(p) = parents.get(&parent) {
                        let size = disk.source.size_bytes();
                        match p.disks.iter().find(|d| d.name == disk.name) {
                            Some(pd)
                                if pd.size_bytes == size
                                    && pd.chunk_size_bytes == self.chunk_size()
                                    && map.size_bytes() == size =>
                            {
                                known.extend(pd.chunks.iter().filter_map(|c| match c {
                                    ChunkRef::Data(id) => Some(*id),
                                    ChunkRef::Zero => None,
                                }));
                                read_mode = ReadMode::Incremental {
                                    parent: parent.clone(),
                                };
                                parent_disk = Some((parent.clone(), pd.clone(), map));
                            }
                            Some(_) => {
                                read_mode = ReadMode::Full {
                                    reason: format!(
                                        "disk {} changed size or chunking since parent backup {parent}",
                                        disk.name
                                    ),
                                }
                            }
                            None => {
                                read_mode = ReadMode::Full {
                                    reason: format!(
                                        "parent backup {parent} has no disk {}",
                                        disk.name
                                    ),
                                }
                            }
                        }
                    }
                }
            }
            if let ReadMode::Full { reason } = &read_mode {
                info!(backup = %id, vm = %meta.vm, disk = %disk.name, reason = %reason, "full read of disk (deduplicated)");
            }
            let (chunks, dstats) = self
                .backup_disk(
                    &disk.name,
                    disk.source.clone(),
                    parent_disk.as_ref().map(|(_, d, m)| (d, m)),
                    &mut known,
                    opts,
                    progress,
                )
                .await?;
            add_stats(&mut stats, &dstats);
            disk_indexes.push(DiskIndex {
                name: disk.name,
                size_bytes: disk.source.size_bytes(),
                chunk_size_bytes: self.chunk_size(),
                format: disk.format,
                read_mode,
                bitmap: disk.bitmap,
                chunks,
            });
        }
        // Every chunk is durable (fsync before rename); make their directory entries durable
        // before the index that references them appears.
        self.backend.flush().await?;
        stats.duration_ms = started.elapsed().as_millis() as u64;
        let index = BackupIndex {
            id: id.clone(),
            vm: meta.vm.clone(),
            project: meta.project.clone(),
            created_unix_ms: created,
            finished_unix_ms: now_unix_ms(),
            vm_spec: meta.vm_spec.clone(),
            labels: meta.labels.clone(),
            disks: disk_indexes,
            stats,
        };
        // Under a limit, one backup of the project at a time counts and publishes, so two
        // finishing together cannot each pass without the other.
        let counting = match meta.storage_limit {
            Some(limit) => {
                let lease = Lease::acquire_exclusive(
                    self.backend.clone(),
                    LockKind::Count,
                    index.project(),
                    &format!("counting project {}'s backups", index.project()),
                    opts.sweep_wait,
                )
                .await?;
                if let Err(e) = self.check_storage_limit(&index, limit).await {
                    if let Err(r) = lease.release().await {
                        warn!(backup = %id, error = %r, "could not remove the count lock");
                    }
                    return Err(e);
                }
                Some(lease)
            }
            None => None,
        };
        let payload = index.encode().map_err(BackupError::Task)?;
        let blob = blob::encode(
            BlobKind::Index,
            self.keys.as_deref(),
            id.0.as_bytes(),
            &payload,
            self.config.compression.level,
        )?;
        if !self.backend.put_new(&id.key(), blob).await? {
            return Err(BackupError::Task(format!("backup id {id} already exists")));
        }
        self.backend.flush().await?;
        if let Some(lease) = counting
            && let Err(e) = lease.release().await
        {
            // Published already; a lock left behind is taken over once its holder is gone.
            warn!(backup = %id, error = %e, "could not remove the count lock");
        }
        info!(backup = %id, vm = %meta.vm, bytes_read = index.stats.bytes_read, chunks_new = index.stats.chunks_new, bytes_stored = index.stats.bytes_stored, duration_ms = index.stats.duration_ms, "backup published");
        Ok(index)
    }

    /// Refuses `index` (not yet published) when its project's backups in this repository
    /// would hold more than `limit` with it. Its chunks stay until the next `gc`, like those
    /// of a failed backup.
    async fn check_storage_limit(&self, index: &BackupIndex, limit: u64) -> Result<()> {
        let others = self.project_backups(index.project()).await?;
        let before = distinct_data_bytes(&others);
        let after = distinct_data_bytes(others.iter().chain([index]));
        if after > limit {
            info!(backup = %index.id, project = index.project(), before, after, limit, "backup over its project's storage limit: not published");
            return Err(BackupError::StorageLimit {
                project: index.project().to_string(),
                before,
                after,
                limit,
            });
        }
        Ok(())
    }

    async fn wait_for_sweeps(&self, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            let (active, _) = list_locks(self.backend.as_ref(), LockKind::Sweep).await?;
            if active.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BackupError::Timeout(format!(
                    "garbage collection ({}) to finish its sweep",
                    active[0].what
                )));
            }
            info!(sweep = %active[0].id, "waiting for a garbage-collection sweep to finish");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn backup_disk(
        &self,
        name: &str,
        source: Arc<dyn DiskSource>,
        parent: Option<(&DiskIndex, &DirtyMap)>,
        known: &mut HashSet<ChunkId>,
        opts: &BackupOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(Vec<ChunkRef>, BackupStats)> {
        let size = source.size_bytes();
        let cs = self.chunk_size();
        let n = DiskIndex::chunk_count(size, cs);
        let mut stats = BackupStats {
            chunks_total: n,
            ..Default::default()
        };
        let mut chunks: Vec<Option<ChunkRef>> = vec![None; n as usize];
        // Which chunks must be read.
        let mut to_read = Vec::new();
        for i in 0..n {
            let off = i * cs;
            let len = (size - off).min(cs);
            match parent {
                Some((pd, map)) if !map.is_dirty(off, len) => {
                    chunks[i as usize] = Some(pd.chunks[i as usize]);
                    stats.chunks_clean += 1;
                    if pd.chunks[i as usize] == ChunkRef::Zero {
                        stats.chunks_zero += 1;
                    }
                }
                _ => to_read.push(i),
            }
        }
        let bytes_total: u64 = to_read.iter().map(|&i| (size - i * cs).min(cs)).sum();
        // Reader: one blocking thread reading sequentially in chunk-sized pieces.
        let depth = opts.concurrency.max(1);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<(u64, Vec<u8>)>>(depth);
        let reader = {
            let source = source.clone();
            let to_read = to_read.clone();
            tokio::task::spawn_blocking(move || {
                for i in to_read {
                    let off = i * cs;
                    let len = (size - off).min(cs) as usize;
                    let mut buf = vec![0u8; len];
                    let r = source.read_exact_at(&mut buf, off).map(|_| (i, buf));
                    let failed = r.is_err();
                    if tx.blocking_send(r).is_err() || failed {
                        return;
                    }
                }
            })
        };
        let known_arc = Arc::new(std::sync::Mutex::new(std::mem::take(known)));
        let mut set: JoinSet<Result<(u64, ChunkRef, ChunkOutcome, u64)>> = JoinSet::new();
        let mut bytes_done = 0u64;
        let mut finish = |r: Result<(u64, ChunkRef, ChunkOutcome, u64)>,
                          stats: &mut BackupStats,
                          chunks: &mut Vec<Option<ChunkRef>>|
         -> Result<()> {
            let (i, cref, outcome, stored) = r?;
            let len = (size - i * cs).min(cs);
            stats.bytes_read += len;
            match outcome {
                ChunkOutcome::Zero => stats.chunks_zero += 1,
                ChunkOutcome::Dedup => stats.chunks_dedup += 1,
                ChunkOutcome::New => stats.chunks_new += 1,
            }
            stats.bytes_stored += stored;
            chunks[i as usize] = Some(cref);
            bytes_done += len;
            progress(Progress {
                disk: name.to_string(),
                bytes_done,
                bytes_total,
            });
            Ok(())
        };
        let mut failure: Option<BackupError> = None;
        while let Some(item) = rx.recv().await {
            let (i, data) = match item {
                Ok(x) => x,
                Err(e) => {
                    failure = Some(BackupError::Source {
                        disk: name.to_string(),
                        message: format!("read failed: {e}"),
                    });
                    break;
                }
            };
            while set.len() >= depth {
                if let Some(r) = set.join_next().await
                    && let Err(e) = finish(
                        r.map_err(BackupError::from).and_then(|x| x),
                        &mut stats,
                        &mut chunks,
                    )
                {
                    failure = Some(e);
                    break;
                }
            }
            if failure.is_some() {
                break;
            }
            let backend = self.backend.clone();
            let keys = self.keys.clone();
            let known = known_arc.clone();
            let level = self.config.compression.level;
            set.spawn(async move { store_chunk(backend, keys, known, level, i, data).await });
        }
        drop(rx);
        if failure.is_none() {
            while let Some(r) = set.join_next().await {
                if let Err(e) = finish(
                    r.map_err(BackupError::from).and_then(|x| x),
                    &mut stats,
                    &mut chunks,
                ) {
                    failure = Some(e);
                    break;
                }
            }
        }
        set.abort_all();
        let _ = reader.await;
        if let Some(e) = failure {
            return Err(e);
        }
        *known = Arc::try_unwrap(known_arc)
            .map(|m| m.into_inner().unwrap_or_default())
            .unwrap_or_default();
        let chunks = chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                c.ok_or_else(|| BackupError::Task(format!("chunk {i} of {name} was not processed")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((chunks, stats))
    }

    /// Restores one disk of a backup to `target`. Every chunk is authenticated and re-hashed
    /// before it is written; on any error the partial output is removed and the existing
    /// target (if any) is left untouched. Zero chunks become holes.
    pub async fn restore_disk(
        &self,
        backup: &BackupId,
        disk: &str,
        target: &Path,
        opts: &RestoreOptions,
    ) -> Result<RestoreReport> {
        let started = Instant::now();
        let refused = |reason: String| BackupError::RestoreRefused {
            backup: backup.0.clone(),
            target: target.to_path_buf(),
            reason,
        };
        let index = match self.load_index(backup).await {
            Ok(i) => i,
            Err(e @ BackupError::CorruptIndex { .. }) => return Err(refused(e.to_string())),
            Err(e) => return Err(e),
        };
        let d = index
            .disks
            .iter()
            .find(|d| d.name == disk)
            .ok_or_else(|| BackupError::UnknownDisk {
                backup: backup.0.clone(),
                disk: disk.to_string(),
            })?
            .clone();
        let is_blockdev = std::fs::metadata(target)
            .map(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_block_device()
            })
            .unwrap_or(false);
        if target.exists() && !opts.overwrite && !is_blockdev {
            return Err(BackupError::InvalidArgument(format!(
                "{} exists; pass overwrite to restore over it",
                target.display()
            )));
        }
        if is_blockdev && opts.format != RestoreFormat::Raw {
            return Err(BackupError::InvalidArgument(
                "a block device target takes raw format".into(),
            ));
        }
        let file_name = target
            .file_name()
            .ok_or_else(|| {
                BackupError::InvalidArgument(format!("bad target {}", target.display()))
            })?
            .to_string_lossy()
            .into_owned();
        let partial = target.with_file_name(format!(".{file_name}.novacron-partial"));
        let out_path = if is_blockdev {
            target.to_path_buf()
        } else {
            partial.clone()
        };
        let file = {
            let p = out_path.clone();
            let size = d.size_bytes;
            let direct_io = opts.direct_io;
            tokio::task::spawn_blocking(move || -> Result<OutFile> {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(!is_blockdev)
                    .truncate(!is_blockdev)
                    .open(&p)
                    .map_err(|e| BackupError::io(&p, e))?;
                if !is_blockdev {
                    f.set_len(size).map_err(|e| BackupError::io(&p, e))?;
                }
                let direct = if direct_io {
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_DIRECT)
                        .open(&p)
                        .ok()
                } else {
                    None
                };
                Ok(OutFile {
                    buffered: f,
                    direct,
                })
            })
            .await??
        };
        let file = Arc::new(file);
        let result = self
            .restore_chunks(&d, file.clone(), is_blockdev, opts)
            .await;
        let cleanup = |p: &Path| {
            if !is_blockdev {
                let _ = std::fs::remove_file(p);
            }
        };
        let (bytes_written, zero_bytes) = match result {
            Ok(x) => x,
            Err(e) => {
                cleanup(&partial);
                return Err(match e {
                    e @ (BackupError::CorruptChunk { .. } | BackupError::MissingChunk { .. }) => {
                        refused(e.to_string())
                    }
                    e => e,
                });
            }
        };
        if opts.sync {
            let f = file.clone();
            let p = out_path.clone();
            tokio::task::spawn_blocking(move || {
                f.buffered.sync_all().map_err(|e| BackupError::io(&p, e))
            })
            .await??;
        }
        drop(file);
        if !is_blockdev {
            match opts.format {
                RestoreFormat::Raw => {
                    std::fs::rename(&partial, target).map_err(|e| BackupError::io(target, e))?;
                }
                RestoreFormat::Qcow2 => {
                    let tmp_q =
                        target.with_file_name(format!(".{file_name}.novacron-partial.qcow2"));
                    let mut cmd = tokio::process::Command::new("qemu-img");
                    cmd.args(["convert", "-f", "raw", "-O", "qcow2"])
                        .arg(&partial)
                        .arg(&tmp_q);
                    novacron_qemu::process::inherit_only_stdio(cmd.as_std_mut(), &[]);
                    let out = cmd.output().await.map_err(|e| BackupError::Command {
                        command: "qemu-img convert".into(),
                        message: e.to_string(),
                    });
                    let _ = std::fs::remove_file(&partial);
                    let out = out?;
                    if !out.status.success() {
                        let _ = std::fs::remove_file(&tmp_q);
                        return Err(BackupError::Command {
                            command: "qemu-img convert".into(),
                            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                        });
                    }
                    std::fs::rename(&tmp_q, target).map_err(|e| BackupError::io(target, e))?;
                }
            }
            if let Some(dir) = target.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                if let Ok(f) = std::fs::File::open(dir) {
                    let _ = f.sync_all();
                }
            }
        }
        let report = RestoreReport {
            backup: backup.clone(),
            disk: disk.to_string(),
            target: target.to_path_buf(),
            size_bytes: d.size_bytes,
            bytes_written,
            zero_bytes,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        info!(backup = %backup, disk, target = %target.display(), bytes_written, duration_ms = report.duration_ms, "restore finished");
        Ok(report)
    }

    async fn restore_chunks(
        &self,
        d: &DiskIndex,
        file: Arc<OutFile>,
        write_zeros: bool,
        opts: &RestoreOptions,
    ) -> Result<(u64, u64)> {
        let depth = opts.concurrency.max(1);
        let mut set: JoinSet<Result<u64>> = JoinSet::new();
        let mut written = 0u64;
        let mut zero = 0u64;
        let max_len = self.chunk_size() as usize;
        for (i, c) in d.chunks.iter().enumerate() {
            let off = i as u64 * d.chunk_size_bytes;
            let len = d.chunk_len(i as u64);
            while set.len() >= depth {
                if let Some(r) = set.join_next().await {
                    written += r??;
                }
            }
            match *c {
                ChunkRef::Zero => {
                    zero += len as u64;
                    if write_zeros {
                        let f = file.clone();
                        set.spawn_blocking(move || {
                            f.write_at(&vec![0u8; len], off)
                                .map_err(|e| BackupError::io("restore target", e))?;
                            Ok(len as u64)
                        });
                    }
                }
                ChunkRef::Data(id) => {
                    let backend = self.backend.clone();
                    let keys = self.keys.clone();
                    let f = file.clone();
                    set.spawn(async move {
                        let blob = match backend.get(&chunk_key(&id)).await {
                            Ok(b) => b,
                            Err(BackupError::NotFound { .. }) => {
                                return Err(BackupError::MissingChunk { id: id.to_hex() });
                            }
                            Err(e) => return Err(e),
                        };
                        tokio::task::spawn_blocking(move || {
                            let data =
                                blob::decode_chunk_for_restore(keys.as_deref(), &id, blob, max_len)
                                    .map_err(|e| BackupError::CorruptChunk {
                                        id: id.to_hex(),
                                        reason: e.0,
                                    })?;
                            if data.len() != len {
                                return Err(BackupError::CorruptChunk {
                                    id: id.to_hex(),
                                    reason: format!(
                                        "{} bytes where the index says {len}",
                                        data.len()
                                    ),
                                });
                            }
                            f.write_at(&data, off)
                                .map_err(|e| BackupError::io("restore target", e))?;
                            Ok(len as u64)
                        })
                        .await?
                    });
                }
            }
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(n)) => written += n,
                Ok(Err(e)) => {
                    set.abort_all();
                    return Err(e);
                }
                Err(e) => {
                    set.abort_all();
                    return Err(e.into());
                }
            }
        }
        Ok((written, zero))
    }

    /// Re-reads and re-hashes every chunk referenced by any backup (and, optionally, every
    /// other chunk), decodes every index, and names exactly the backups that cannot be
    /// restored intact.
    pub async fn verify(&self, opts: &VerifyOptions) -> Result<VerifyReport> {
        let started = Instant::now();
        let mut affected: BTreeMap<BackupId, AffectedBackup> = BTreeMap::new();
        let mut refs: HashMap<ChunkId, Vec<BackupId>> = HashMap::new();
        let ids = self.backup_ids().await?;
        for id in &ids {
            match self.load_index(id).await {
                Ok(idx) => {
                    for c in idx.chunk_ids() {
                        let v = refs.entry(c).or_default();
                        if v.last() != Some(id) {
                            v.push(id.clone());
                        }
                    }
                }
                Err(BackupError::UnknownBackup(_)) => {}
                Err(e) => {
                    affected.insert(
                        id.clone(),
                        AffectedBackup {
                            id: id.clone(),
                            vm: None,
                            reasons: vec![e.to_string()],
                        },
                    );
                }
            }
        }
        let present: HashSet<ChunkId> = self
            .backend
            .list(CHUNK_PREFIX)
            .await?
            .iter()
            .filter_map(|o| parse_chunk_key(&o.key))
            .collect();
        let mut bad_chunks = Vec::new();
        let mut to_check: Vec<(ChunkId, bool)> = Vec::new();
        for (id, backups) in &refs {
            if present.contains(id) {
                to_check.push((*id, true));
            } else {
                bad_chunks.push(BadChunk {
                    id: id.to_hex(),
                    reason: "missing".into(),
                    backups: backups.clone(),
                });
            }
        }
        let unreferenced: Vec<ChunkId> = present
            .iter()
            .filter(|c| !refs.contains_key(c))
            .copied()
            .collect();
        if opts.include_unreferenced {
            to_check.extend(unreferenced.iter().map(|c| (*c, false)));
        }
        let depth = opts.concurrency.unwrap_or_else(default_concurrency).max(1);
        let max_len = self.chunk_size() as usize;
        let mut set: JoinSet<(ChunkId, bool, Result<u64, String>)> = JoinSet::new();
        let mut chunks_checked = 0u64;
        let mut bytes_checked = 0u64;
        let mut bad_unreferenced = Vec::new();
        let mut it = to_check.into_iter();
        loop {
            while set.len() < depth {
                let Some((id, referenced)) = it.next() else {
                    break;
                };
                let backend = self.backend.clone();
                let keys = self.keys.clone();
                set.spawn(async move {
                    let r = match backend.get(&chunk_key(&id)).await {
                        Ok(blob) => tokio::task::spawn_blocking(move || {
                            blob::decode_chunk(keys.as_deref(), &id, blob, max_len)
                                .map(|d| d.len() as u64)
                                .map_err(|e| e.0)
                        })
                        .await
                        .unwrap_or_else(|e| Err(e.to_string())),
                        Err(BackupError::NotFound { .. }) => Err("missing".into()),
                        Err(e) => Err(e.to_string()),
                    };
                    (id, referenced, r)
                });
            }
            let Some(r) = set.join_next().await else {
                break;
            };
            let (id, referenced, r) = r?;
            chunks_checked += 1;
            match r {
                Ok(n) => bytes_checked += n,
                Err(reason) if referenced => bad_chunks.push(BadChunk {
                    id: id.to_hex(),
                    reason,
                    backups: refs.get(&id).cloned().unwrap_or_default(),
                }),
                Err(_) => bad_unreferenced.push(id.to_hex()),
            }
        }
        for bc in &bad_chunks {
            for b in &bc.backups {
                affected
                    .entry(b.clone())
                    .or_insert_with(|| AffectedBackup {
                        id: b.clone(),
                        vm: None,
                        reasons: Vec::new(),
                    })
                    .reasons
                    .push(format!("chunk {} {}", bc.id, bc.reason));
            }
        }
        // Name the VM of affected backups whose index is readable.
        for a in affected.values_mut() {
            if a.vm.is_none()
                && let Ok(idx) = self.load_index(&a.id).await
            {
                a.vm = Some(idx.vm);
            }
        }
        bad_chunks.sort_by(|a, b| a.id.cmp(&b.id));
        let report = VerifyReport {
            ok: affected.is_empty() && bad_unreferenced.is_empty(),
            backups_checked: ids.len() as u64,
            chunks_checked,
            bytes_checked,
            affected_backups: affected.into_values().collect(),
            bad_chunks,
            bad_unreferenced_chunks: bad_unreferenced,
            unreferenced_chunks: unreferenced.len() as u64,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        if report.ok {
            info!(
                backups = report.backups_checked,
                chunks = report.chunks_checked,
                "verify passed"
            );
        } else {
            warn!(
                affected = report.affected_backups.len(),
                bad_chunks = report.bad_chunks.len(),
                "verify found damage"
            );
        }
        Ok(report)
    }

    /// Applies `policy` to every VM's backups (or only `vm`'s) and removes the indexes of the
    /// backups it does not keep (chunks are freed by the next `gc`). Unreadable indexes are
    /// never removed.
    pub async fn prune(
        &self,
        policy: &RetentionPolicy,
        project: Option<&str>,
        vm: Option<&str>,
        dry_run: bool,
    ) -> Result<PruneReport> {
        if policy.is_empty() {
            return Err(BackupError::InvalidArgument(
                "retention policy keeps nothing; give at least one --keep-* option".into(),
            ));
        }
        // A group is one VM of one project: a VM of the same name in another project keeps
        // its own backups.
        let mut groups: BTreeMap<(String, String), Vec<PruneItem>> = BTreeMap::new();
        let mut unreadable = Vec::new();
        for id in self.backup_ids().await? {
            match self.load_index(&id).await {
                Ok(idx) => {
                    if !idx.is_of(project, vm) {
                        continue;
                    }
                    let group = (idx.project().to_string(), idx.vm.clone());
                    groups.entry(group).or_default().push(PruneItem {
                        id,
                        project: idx.project().to_string(),
                        vm: idx.vm,
                        created_unix_ms: idx.created_unix_ms,
                        reason: String::new(),
                    })
                }
                Err(BackupError::UnknownBackup(_)) => {}
                Err(_) => unreadable.push(id),
            }
        }
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for (_, items) in groups {
            let times: Vec<u64> = items.iter().map(|i| i.created_unix_ms).collect();
            for (mut item, decision) in items.into_iter().zip(select(&times, policy)) {
                match decision {
                    Some(reason) => {
                        item.reason = reason;
                        kept.push(item)
                    }
                    None => removed.push(item),
                }
            }
        }
        if !dry_run {
            for item in &removed {
                self.backend.delete(&item.id.key()).await?;
                info!(backup = %item.id, vm = %item.vm, "backup pruned");
            }
            self.backend.flush().await?;
        }
        Ok(PruneReport {
            dry_run,
            kept,
            removed,
            unreadable,
        })
    }

    /// Removes one backup's index (its chunks are freed by the next `gc`).
    pub async fn forget(&self, id: &BackupId) -> Result<()> {
        if !self.backend.exists(&id.key()).await? {
            return Err(BackupError::UnknownBackup(id.0.clone()));
        }
        self.backend.delete(&id.key()).await?;
        self.backend.flush().await
    }

    /// Mark and sweep: deletes chunks no published backup references. Never deletes a chunk
    /// a concurrent backup needs (writer lease / sweep marker handshake, see `locks`); if
    /// backups keep running for longer than `writer_wait`, the sweep is deferred.
    pub async fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let mut report = GcReport::default();
        for kind in [LockKind::Writer, LockKind::Sweep] {
            let (_, stale) = list_locks(self.backend.as_ref(), kind).await?;
            for key in stale {
                self.backend.delete(&key).await?;
                report.stale_locks_removed += 1;
            }
        }
        // Phase 1, concurrent with writers: mark everything published so far.
        let mut live: HashSet<ChunkId> = HashSet::new();
        let mut marked: HashSet<BackupId> = HashSet::new();
        self.mark(&mut live, &mut marked).await?;
        // Phase 2: handshake. Publish the sweep marker, then look for writers.
        let deadline = Instant::now() + opts.writer_wait;
        let sweep = loop {
            let sweep =
                Lease::acquire(self.backend.clone(), LockKind::Sweep, "garbage collection").await?;
            let (writers, _) = list_locks(self.backend.as_ref(), LockKind::Writer).await?;
            if writers.is_empty() {
                break sweep;
            }
            // Writers have priority: withdraw and retry, so a writer waiting for us can go on.
            sweep.release().await?;
            if Instant::now() >= deadline {
                return Err(BackupError::SweepDeferred(format!(
                    "{} backup(s) in progress ({}); nothing was deleted, run gc again later",
                    writers.len(),
                    writers[0].what
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let result = async {
            // Backups published between phase 1 and the handshake.
            self.mark(&mut live, &mut marked).await?;
            report.backups_marked = marked.len() as u64;
            let cutoff = now_unix_ms().saturating_sub(opts.grace.as_millis() as u64);
            for obj in self.backend.list(CHUNK_PREFIX).await? {
                let Some(id) = parse_chunk_key(&obj.key) else {
                    continue;
                };
                report.chunks_total += 1;
                if live.contains(&id) {
                    report.chunks_referenced += 1;
                } else if obj.modified_unix_ms >= cutoff {
                    report.chunks_in_grace += 1;
                } else {
                    self.backend.delete(&obj.key).await?;
                    report.chunks_deleted += 1;
                    report.bytes_deleted += obj.size_bytes;
                }
            }
            report.partial_files_removed = self
                .backend
                .cleanup_partial(opts.grace.as_millis() as u64)
                .await?;
            self.backend.flush().await
        }
        .await;
        let released = sweep.release().await;
        result?;
        released?;
        info!(
            deleted = report.chunks_deleted,
            bytes_deleted = report.bytes_deleted,
            referenced = report.chunks_referenced,
            "gc finished"
        );
        Ok(report)
    }

    async fn mark(
        &self,
        live: &mut HashSet<ChunkId>,
        marked: &mut HashSet<BackupId>,
    ) -> Result<()> {
        for id in self.backup_ids().await? {
            if marked.contains(&id) {
                continue;
            }
            match self.load_index(&id).await {
                Ok(idx) => live.extend(idx.chunk_ids()),
                Err(BackupError::UnknownBackup(_)) => continue,
                Err(e) => {
                    return Err(BackupError::CorruptIndex {
                        backup: id.0.clone(),
                        reason: format!(
                            "{e}; gc stops so as not to delete its chunks — remove it with `backup forget {id}` if it is beyond repair"
                        ),
                    });
                }
            }
            marked.insert(id);
        }
        Ok(())
    }
}

/// The restore target: a buffered descriptor, and an O_DIRECT one for aligned writes.
struct OutFile {
    buffered: std::fs::File,
    direct: Option<std::fs::File>,
}

const DIRECT_ALIGN: usize = 4096;

impl OutFile {
    fn write_at(&self, data: &[u8], off: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if let Some(d) = &self.direct
            && off.is_multiple_of(DIRECT_ALIGN as u64)
            && data.len().is_multiple_of(DIRECT_ALIGN)
        {
            // O_DIRECT needs an aligned buffer: over-allocate and use an aligned window.
            let mut v = vec![0u8; data.len() + DIRECT_ALIGN];
            let start = v.as_ptr().align_offset(DIRECT_ALIGN);
            let buf = &mut v[start..start + data.len()];
            buf.copy_from_slice(data);
            return d.write_all_at(buf, off);
        }
        self.buffered.write_all_at(data, off)
    }
}

fn decode_index(keys: Option<&DataKeys>, id: &BackupId, raw: Vec<u8>) -> Result<BackupIndex> {
    let corrupt = |reason: String| BackupError::CorruptIndex {
        backup: id.0.clone(),
        reason,
    };
    let payload = blob::decode(BlobKind::Index, keys, id.0.as_bytes(), raw, MAX_INDEX_BYTES)
        .map_err(|e| corrupt(e.0))?;
    let idx = BackupIndex::decode(&payload).map_err(corrupt)?;
    if idx.id != *id {
        return Err(corrupt(format!("index names itself {}", idx.id)));
    }
    Ok(idx)
}

enum ChunkOutcome {
    Zero,
    Dedup,
    New,
}

fn is_all_zero(data: &[u8]) -> bool {
    // OR-folding fixed 64-byte blocks vectorises; stop at the first non-zero block.
    let blocks = data.chunks_exact(64);
    let rem = blocks.remainder();
    blocks
        .into_iter()
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
        && rem.iter().all(|&b| b == 0)
}

async fn store_chunk(
    backend: Arc<dyn Backend>,
    keys: Option<Arc<DataKeys>>,
    known: Arc<std::sync::Mutex<HashSet<ChunkId>>>,
    level: i32,
    i: u64,
    data: Vec<u8>,
) -> Result<(u64, ChunkRef, ChunkOutcome, u64)> {
    let keys2 = keys.clone();
    let (data, id) = tokio::task::spawn_blocking(move || {
        if is_all_zero(&data) {
            (data, None)
        } else {
            let id = blob::chunk_id(keys2.as_deref(), &data);
            (data, Some(id))
        }
    })
    .await?;
    let Some(id) = id else {
        return Ok((i, ChunkRef::Zero, ChunkOutcome::Zero, 0));
    };
    let already = known.lock().map(|k| k.contains(&id)).unwrap_or(false);
    let key = chunk_key(&id);
    if already || backend.exists(&key).await? {
        if let Ok(mut k) = known.lock() {
            k.insert(id);
        }
        return Ok((i, ChunkRef::Data(id), ChunkOutcome::Dedup, 0));
    }
    let blob = tokio::task::spawn_blocking(move || {
        blob::encode(BlobKind::Chunk, keys.as_deref(), &id.0, &data, level)
    })
    .await??;
    let stored = blob.len() as u64;
    backend.put(&key, blob).await?;
    if let Ok(mut k) = known.lock() {
        k.insert(id);
    }
    Ok((i, ChunkRef::Data(id), ChunkOutcome::New, stored))
}

fn add_stats(total: &mut BackupStats, d: &BackupStats) {
    total.bytes_read += d.bytes_read;
    total.chunks_total += d.chunks_total;
    total.chunks_zero += d.chunks_zero;
    total.chunks_clean += d.chunks_clean;
    total.chunks_dedup += d.chunks_dedup;
    total.chunks_new += d.chunks_new;
    total.bytes_stored += d.bytes_stored;
}
