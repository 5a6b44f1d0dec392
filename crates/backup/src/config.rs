//! `config.json` at the repository root: everything needed to read the repository with no
//! other state (format version, chunking, compression, and the wrapped data keys), which is
//! what makes disaster recovery from the repository alone possible.

use serde::{Deserialize, Serialize};

/// Format version written by this build.
pub const FORMAT_VERSION: u32 = 1;
/// Object key of the config.
pub const CONFIG_KEY: &str = "config.json";
/// Default chunk size (see docs/backup.md for the measurements behind it).
pub const DEFAULT_CHUNK_SIZE_BYTES: u64 = 1 << 20;
/// Default zstd level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Chunk sizes accepted: powers of two from 64 KiB to 16 MiB.
pub const MIN_CHUNK_SIZE_BYTES: u64 = 64 << 10;
pub const MAX_CHUNK_SIZE_BYTES: u64 = 16 << 20;

/// The repository's self-description.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RepoConfig {
    /// Always `novacron-backup`.
    pub format: String,
    pub version: u32,
    /// Random id, bound into the key wrapping.
    pub repo_id: String,
    pub created_unix_ms: u64,
    pub chunking: ChunkingConfig,
    pub compression: CompressionConfig,
    /// `blake3` (plain) or `blake3-keyed` (encrypted repositories).
    pub chunk_id: String,
    pub encryption: Option<EncryptionConfig>,
}

/// How disks are cut into chunks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChunkingConfig {
    /// `fixed`: chunk i covers bytes [i·size, (i+1)·size) of the disk.
    pub kind: String,
    pub chunk_size_bytes: u64,
}

/// Blob compression.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CompressionConfig {
    /// `zstd`; a blob is stored uncompressed when zstd saves less than 1/64.
    pub algorithm: String,
    pub level: i32,
}

/// Client-side encryption parameters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EncryptionConfig {
    /// `aes-256-gcm`.
    pub algorithm: String,
    /// `hkdf-sha256`: key-encryption key = HKDF-SHA256(key file, salt, "novacron-backup v1 key-wrap").
    pub kdf: String,
    pub salt_hex: String,
    /// AES-256-GCM(nonce ‖ ciphertext ‖ tag) of the 64 bytes of data keys, aad = repo_id.
    pub wrapped_keys_hex: String,
}

impl RepoConfig {
    /// Checks fields a reader depends on.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != "novacron-backup" {
            return Err(format!("format is {:?}, not novacron-backup", self.format));
        }
        if self.chunking.kind != "fixed" {
            return Err(format!("unknown chunking {:?}", self.chunking.kind));
        }
        let cs = self.chunking.chunk_size_bytes;
        if !cs.is_power_of_two() || !(MIN_CHUNK_SIZE_BYTES..=MAX_CHUNK_SIZE_BYTES).contains(&cs) {
            return Err(format!("chunk size {cs} out of range"));
        }
        if self.compression.algorithm != "zstd" || !(1..=19).contains(&self.compression.level) {
            return Err("unsupported compression".into());
        }
        match (&self.encryption, self.chunk_id.as_str()) {
            (None, "blake3") => Ok(()),
            (Some(e), "blake3-keyed") if e.algorithm == "aes-256-gcm" && e.kdf == "hkdf-sha256" => {
                Ok(())
            }
            _ => Err("inconsistent encryption / chunk id settings".into()),
        }
    }
}
