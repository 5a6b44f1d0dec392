//! Per-backup index: which chunks make up each disk of one backup, plus what is needed to
//! recreate the VM. Stored as a blob of kind `Index` under `indexes/<backup id>`; its
//! appearance under that name is the backup's atomic publication.
//!
//! Payload layout: `u32 LE json_len | json (BackupIndex without chunk lists) | per disk:
//! u64 LE n | n × 32-byte chunk ids` (32 zero bytes = an all-zero chunk, not stored).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::ChunkId;

/// Object key prefix of indexes.
pub const INDEX_PREFIX: &str = "indexes/";

/// Identifier of one backup: `YYYYMMDDTHHMMSSZ-<16 hex>`, sortable by creation time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BackupId(pub String);

impl BackupId {
    /// Validates the characters (the id becomes part of an object key).
    pub fn parse(s: &str) -> Option<BackupId> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| BackupId(s.to_string()))
    }
    /// Object key of this backup's index.
    pub fn key(&self) -> String {
        format!("{INDEX_PREFIX}{}", self.0)
    }
}

impl std::fmt::Display for BackupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One chunk slot of a disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkRef {
    /// All bytes zero; nothing stored, restored as a hole.
    Zero,
    Data(ChunkId),
}

/// How a disk's data was read for this backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ReadMode {
    /// Every chunk was read (first backup, or no usable dirty bitmap: `reason` says why).
    Full { reason: String },
    /// Only chunks overlapping the dirty map were read; the rest came from `parent`.
    Incremental { parent: BackupId },
}

/// The dirty bitmap that tracked writes after this backup's point in time (live backups).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BitmapRef {
    /// QEMU block node the bitmap lives on.
    pub node: String,
    /// Bitmap name (`novacron-<backup id>`), persistent in the qcow2.
    pub name: String,
    pub granularity_bytes: u64,
}

/// One disk in a backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiskIndex {
    /// Device name in the VM (e.g. `drive0`, `vda`).
    pub name: String,
    pub size_bytes: u64,
    pub chunk_size_bytes: u64,
    /// Source image format (`raw`, `qcow2`), the default format on restore.
    pub format: String,
    pub read_mode: ReadMode,
    pub bitmap: Option<BitmapRef>,
    #[serde(skip)]
    pub chunks: Vec<ChunkRef>,
}

impl DiskIndex {
    /// Number of chunks a disk of `size_bytes` has.
    pub fn chunk_count(size_bytes: u64, chunk_size_bytes: u64) -> u64 {
        size_bytes.div_ceil(chunk_size_bytes)
    }
    /// Length of chunk `i` (the last one may be short).
    pub fn chunk_len(&self, i: u64) -> usize {
        let start = i * self.chunk_size_bytes;
        (self.size_bytes - start).min(self.chunk_size_bytes) as usize
    }
}

/// Counters of one backup run, kept in the index for `backup show`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStats {
    pub bytes_read: u64,
    pub chunks_total: u64,
    pub chunks_zero: u64,
    /// Chunks taken from the parent without reading (clean in the dirty map).
    pub chunks_clean: u64,
    /// Chunks read whose content the repository already had.
    pub chunks_dedup: u64,
    pub chunks_new: u64,
    /// Bytes of new blobs written (after compression and encryption).
    pub bytes_stored: u64,
    pub duration_ms: u64,
}

/// Everything recorded about one backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupIndex {
    pub id: BackupId,
    /// The VM this backup belongs to (with `project`, its backup group).
    pub vm: String,
    /// The project of the VM; `None` in backups written before backups recorded one (see
    /// [`BackupIndex::project`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Point in time of the backup (start).
    pub created_unix_ms: u64,
    pub finished_unix_ms: u64,
    /// VM definition as given by the caller (opaque here), to recreate the VM on restore.
    pub vm_spec: serde_json::Value,
    pub labels: BTreeMap<String, String>,
    pub disks: Vec<DiskIndex>,
    pub stats: BackupStats,
}

impl BackupIndex {
    /// Serialises to the payload layout described in the module docs.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let json = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        let n: usize = self.disks.iter().map(|d| d.chunks.len()).sum();
        let mut out = Vec::with_capacity(4 + json.len() + self.disks.len() * 8 + n * 32);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        for d in &self.disks {
            out.extend_from_slice(&(d.chunks.len() as u64).to_le_bytes());
            for c in &d.chunks {
                match c {
                    ChunkRef::Zero => out.extend_from_slice(&[0u8; 32]),
                    ChunkRef::Data(id) => out.extend_from_slice(&id.0),
                }
            }
        }
        Ok(out)
    }

    /// Parses and checks a payload; never panics on arbitrary bytes.
    pub fn decode(buf: &[u8]) -> Result<BackupIndex, String> {
        let take = |pos: &mut usize, n: usize| -> Result<&[u8], String> {
            let end = pos.checked_add(n).ok_or("length overflow")?;
            let s = buf.get(*pos..end).ok_or("truncated index")?;
            *pos = end;
            Ok(s)
        };
        let mut pos = 0usize;
        let mut l4 = [0u8; 4];
        l4.copy_from_slice(take(&mut pos, 4)?);
        let json_len = u32::from_le_bytes(l4) as usize;
        let mut idx: BackupIndex =
            serde_json::from_slice(take(&mut pos, json_len)?).map_err(|e| format!("json: {e}"))?;
        for d in idx.disks.iter_mut() {
            if d.chunk_size_bytes == 0 {
                return Err(format!("disk {}: zero chunk size", d.name));
            }
            let mut l8 = [0u8; 8];
            l8.copy_from_slice(take(&mut pos, 8)?);
            let n = u64::from_le_bytes(l8);
            if n != DiskIndex::chunk_count(d.size_bytes, d.chunk_size_bytes) {
                return Err(format!(
                    "disk {}: {n} chunks for {} bytes",
                    d.name, d.size_bytes
                ));
            }
            let bytes = take(&mut pos, (n as usize).checked_mul(32).ok_or("overflow")?)?;
            d.chunks = bytes
                .chunks_exact(32)
                .map(|c| {
                    let mut id = [0u8; 32];
                    id.copy_from_slice(c);
                    if id == [0u8; 32] {
                        ChunkRef::Zero
                    } else {
                        ChunkRef::Data(ChunkId(id))
                    }
                })
                .collect();
        }
        if pos != buf.len() {
            return Err("trailing bytes after the chunk lists".into());
        }
        Ok(idx)
    }

    /// Data chunk ids referenced by this backup (with repeats).
    pub fn chunk_ids(&self) -> impl Iterator<Item = ChunkId> + '_ {
        self.disks.iter().flat_map(|d| {
            d.chunks.iter().filter_map(|c| match c {
                ChunkRef::Data(id) => Some(*id),
                ChunkRef::Zero => None,
            })
        })
    }

    /// Logical size of all disks.
    pub fn size_bytes(&self) -> u64 {
        self.disks.iter().map(|d| d.size_bytes).sum()
    }

    /// The project this backup belongs to. An index written before indexes recorded it
    /// belongs to the project its VM definition names (the control plane's definitions
    /// carry `project`), else to [`UNRECORDED_PROJECT`].
    pub fn project(&self) -> &str {
        project_of(self.project.as_deref(), &self.vm_spec)
    }

    /// Whether this backup belongs to `project` (any, when `None`) and `vm` (any, when `None`).
    pub fn is_of(&self, project: Option<&str>, vm: Option<&str>) -> bool {
        project.is_none_or(|p| p == self.project()) && vm.is_none_or(|v| v == self.vm)
    }
}

/// The project of a backup that records none, in its index or its VM definition: the control
/// plane's default project.
pub const UNRECORDED_PROJECT: &str = "default";

/// A backup's project: the one `recorded`, else the one its VM definition names, else
/// [`UNRECORDED_PROJECT`].
pub fn project_of<'a>(recorded: Option<&'a str>, vm_spec: &'a serde_json::Value) -> &'a str {
    recorded
        .or_else(|| vm_spec.get("project").and_then(|p| p.as_str()))
        .unwrap_or(UNRECORDED_PROJECT)
}

/// The data `indexes` hold together: each distinct chunk once, at its length before
/// compression. For one project's backups this is what they take in a repository on their
/// own: a chunk another project's backups share counts in full for each project, so no
/// project's figure depends on what another keeps or deletes.
pub fn distinct_data_bytes<'a>(indexes: impl IntoIterator<Item = &'a BackupIndex>) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0u64;
    for disk in indexes.into_iter().flat_map(|i| &i.disks) {
        for (i, c) in disk.chunks.iter().enumerate() {
            if let ChunkRef::Data(id) = c
                && seen.insert(*id)
            {
                bytes = bytes.saturating_add(disk.chunk_len(i as u64) as u64);
            }
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BackupIndex {
        BackupIndex {
            id: BackupId("20261123T000000Z-0011223344556677".into()),
            vm: "web1".into(),
            project: None,
            created_unix_ms: 1,
            finished_unix_ms: 2,
            vm_spec: serde_json::json!({"memory_mib": 512}),
            labels: BTreeMap::new(),
            disks: vec![DiskIndex {
                name: "vda".into(),
                size_bytes: 3 * 65536 + 10,
                chunk_size_bytes: 65536,
                format: "raw".into(),
                read_mode: ReadMode::Full {
                    reason: "first backup".into(),
                },
                bitmap: None,
                chunks: vec![
                    ChunkRef::Zero,
                    ChunkRef::Data(ChunkId([1; 32])),
                    ChunkRef::Data(ChunkId([2; 32])),
                    ChunkRef::Zero,
                ],
            }],
            stats: BackupStats::default(),
        }
    }

    #[test]
    fn roundtrip_and_rejects() {
        let i = sample();
        let enc = i.encode().unwrap();
        assert_eq!(BackupIndex::decode(&enc).unwrap(), i);
        assert_eq!(i.chunk_ids().count(), 2);
        assert!(BackupIndex::decode(&enc[..enc.len() - 1]).is_err());
        let mut extra = enc.clone();
        extra.push(0);
        assert!(BackupIndex::decode(&extra).is_err());
        for cut in 0..enc.len() {
            let _ = BackupIndex::decode(&enc[..cut]);
        }
        assert_eq!(i.disks[0].chunk_len(3), 10);
        assert!(BackupId::parse("../x").is_none());
        assert!(BackupId::parse("20261123T000000Z-ab").is_some());
    }

    #[test]
    fn a_chunk_counts_once_across_backups_and_a_short_last_chunk_at_its_length() {
        let first = sample();
        // One chunk in common, one new in the short last slot.
        let mut second = sample();
        second.project = Some("team-b".into());
        second.disks[0].chunks[2] = ChunkRef::Zero;
        second.disks[0].chunks[3] = ChunkRef::Data(ChunkId([3; 32]));
        assert_eq!(distinct_data_bytes([&first]), 2 * 65536);
        assert_eq!(distinct_data_bytes([&second]), 65536 + 10);
        assert_eq!(distinct_data_bytes([&first, &second]), 2 * 65536 + 10);
        assert_eq!(distinct_data_bytes([&first, &first]), 2 * 65536);
        assert_eq!(distinct_data_bytes(std::iter::empty()), 0);

        assert_eq!(first.project(), UNRECORDED_PROJECT);
        // An older index of a VM in another project: its definition names the project.
        let mut older = sample();
        older.vm_spec = serde_json::json!({"name": "web1", "project": "team-c"});
        assert_eq!(older.project(), "team-c");
        older.project = Some("team-d".into());
        assert_eq!(older.project(), "team-d", "the recorded project wins");
        assert!(first.is_of(Some("default"), Some("web1")));
        assert!(!first.is_of(Some("team-b"), None));
        assert!(second.is_of(Some("team-b"), None) && second.is_of(None, Some("web1")));
        assert!(!second.is_of(None, Some("web2")));
        // The project survives encoding; an index without one decodes as before.
        let enc = second.encode().unwrap();
        assert_eq!(BackupIndex::decode(&enc).unwrap().project(), "team-b");
    }
}
