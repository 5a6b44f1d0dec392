//! Repository keys: the key file, the wrapped data keys in config.json, AES-256-GCM sealing
//! and keyed chunk identifiers. All primitives come from aws-lc-rs (shared with rustls) and
//! BLAKE3.
//!
//! Key hierarchy: a 32-byte random **key file** (the user keeps it) → HKDF-SHA256 with a random
//! per-repository salt → a **key-encryption key** that AES-256-GCM-wraps the **data keys**
//! (a 32-byte AES-256-GCM key for blobs and a 32-byte BLAKE3 key for chunk ids) stored in
//! config.json. The key file is already uniformly random and 256 bits long, so a slow
//! password hash (Argon2id) would add nothing; HKDF is the right extractor for a
//! high-entropy secret.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};

use crate::error::{BackupError, Result};
use crate::util::{from_hex, random_fill, to_hex};

/// Length of the AES-GCM tag appended to every sealed blob.
pub const TAG_LEN: usize = 16;
const WRAP_INFO: &[u8] = b"novacron-backup v1 key-wrap";

/// A chunk identifier: BLAKE3 of the plaintext, keyed with the repository's id key when the
/// repository is encrypted (so ids reveal nothing about content to someone without the key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// Lower-case hex form used in object names.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<ChunkId> {
        let v = from_hex(s)?;
        Some(ChunkId(v.try_into().ok()?))
    }
}

impl std::fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkId({})", &self.to_hex()[..16])
    }
}

impl std::fmt::Display for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The 32-byte secret in a key file.
pub struct KeyFile(pub(crate) [u8; 32]);

impl KeyFile {
    /// Reads a key file: 32 raw bytes, or 64 hex digits (optionally followed by a newline).
    pub fn load(path: &Path) -> Result<KeyFile> {
        let bytes = std::fs::read(path).map_err(|e| BackupError::io(path, e))?;
        let bad = |reason: &str| BackupError::BadKeyFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        if bytes.len() == 32 {
            let mut k = [0u8; 32];
            k.copy_from_slice(&bytes);
            return Ok(KeyFile(k));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("neither 32 raw bytes nor hex"))?;
        let v = from_hex(text.trim()).ok_or_else(|| bad("not 64 hex digits"))?;
        let k: [u8; 32] = v
            .try_into()
            .map_err(|_| bad("must hold exactly 32 bytes (64 hex digits)"))?;
        Ok(KeyFile(k))
    }

    /// Creates a new random key file (64 hex digits, mode 0600); refuses to overwrite.
    pub fn generate(path: &Path) -> Result<KeyFile> {
        let mut k = [0u8; 32];
        random_fill(&mut k)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| BackupError::io(path, e))?;
        f.write_all(format!("{}\n", to_hex(&k)).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| BackupError::io(path, e))?;
        Ok(KeyFile(k))
    }

    /// A key from raw bytes (tests, or keys held by a secret store).
    pub fn from_bytes(k: [u8; 32]) -> KeyFile {
        KeyFile(k)
    }
}

/// Data keys of an encrypted repository.
pub struct DataKeys {
    aead: LessSafeKey,
    id_key: [u8; 32],
    raw: [u8; 64],
}

impl DataKeys {
    /// Fresh random data keys for a new repository.
    pub fn generate() -> Result<DataKeys> {
        let mut raw = [0u8; 64];
        random_fill(&mut raw)?;
        DataKeys::from_raw(raw)
    }

    /// Keys from fixed bytes, for the fuzz targets only (real keys come from [`DataKeys::generate`]
    /// or [`DataKeys::unwrap`]).
    #[doc(hidden)]
    pub fn from_raw_for_fuzzing(raw: [u8; 64]) -> Result<DataKeys> {
        DataKeys::from_raw(raw)
    }

    fn from_raw(raw: [u8; 64]) -> Result<DataKeys> {
        let unbound = UnboundKey::new(&AES_256_GCM, &raw[..32])
            .map_err(|_| BackupError::BadConfig("bad AES key length".into()))?;
        let mut id_key = [0u8; 32];
        id_key.copy_from_slice(&raw[32..]);
        Ok(DataKeys {
            aead: LessSafeKey::new(unbound),
            id_key,
            raw,
        })
    }

    /// Wraps the data keys under a key derived from `key_file` and `salt`; `aad` binds the
    /// wrapping to the repository id. Returns nonce ‖ ciphertext ‖ tag.
    pub fn wrap(&self, key_file: &KeyFile, salt: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let kek = kek(key_file, salt)?;
        let mut out = vec![0u8; NONCE_LEN];
        random_fill(&mut out)?;
        let nonce = Nonce::try_assume_unique_for_key(&out[..NONCE_LEN])
            .map_err(|_| BackupError::Task("nonce".into()))?;
        out.extend_from_slice(&self.raw);
        let tag = kek
            .seal_in_place_separate_tag(nonce, Aad::from(aad), &mut out[NONCE_LEN..])
            .map_err(|_| BackupError::Task("key wrap failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Unwraps data keys; `WrongKey` when the key file (or config) does not match.
    pub fn unwrap(key_file: &KeyFile, salt: &[u8], aad: &[u8], wrapped: &[u8]) -> Result<DataKeys> {
        if wrapped.len() != NONCE_LEN + 64 + TAG_LEN {
            return Err(BackupError::BadConfig(
                "wrapped key has the wrong length".into(),
            ));
        }
        let kek = kek(key_file, salt)?;
        let nonce = Nonce::try_assume_unique_for_key(&wrapped[..NONCE_LEN])
            .map_err(|_| BackupError::WrongKey)?;
        let mut buf = wrapped[NONCE_LEN..].to_vec();
        let plain = kek
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| BackupError::WrongKey)?;
        let mut raw = [0u8; 64];
        raw.copy_from_slice(plain);
        DataKeys::from_raw(raw)
    }

    /// Keyed chunk id of `data`.
    pub fn chunk_id(&self, data: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.id_key, data).as_bytes())
    }

    /// Seals `buf[start..]` in place (`buf[start - NONCE_LEN..start]` must be reserved for the
    /// nonce) and appends the tag.
    pub(crate) fn seal_tail(&self, buf: &mut Vec<u8>, start: usize, aad: &[u8]) -> Result<()> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        random_fill(&mut nonce_bytes)?;
        buf[start - NONCE_LEN..start].copy_from_slice(&nonce_bytes);
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        let tag = self
            .aead
            .seal_in_place_separate_tag(nonce, Aad::from(aad), &mut buf[start..])
            .map_err(|_| BackupError::Task("AES-GCM seal failed".into()))?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens nonce ‖ ciphertext ‖ tag; `None` when authentication fails.
    pub(crate) fn open<'a>(&self, sealed: &'a mut [u8], aad: &[u8]) -> Option<&'a mut [u8]> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (n, rest) = sealed.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
        self.aead.open_in_place(nonce, Aad::from(aad), rest).ok()
    }
}

fn kek(key_file: &KeyFile, salt: &[u8]) -> Result<LessSafeKey> {
    let prk = Salt::new(HKDF_SHA256, salt).extract(&key_file.0);
    let okm = prk
        .expand(&[WRAP_INFO], HKDF_SHA256)
        .map_err(|_| BackupError::Task("HKDF expand failed".into()))?;
    let mut k = [0u8; 32];
    okm.fill(&mut k)
        .map_err(|_| BackupError::Task("HKDF fill failed".into()))?;
    let unbound =
        UnboundKey::new(&AES_256_GCM, &k).map_err(|_| BackupError::Task("bad KEK".into()))?;
    Ok(LessSafeKey::new(unbound))
}

/// Unkeyed chunk id (unencrypted repositories).
pub fn plain_chunk_id(data: &[u8]) -> ChunkId {
    ChunkId(*blake3::hash(data).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_wrong_key() {
        let kf = KeyFile::from_bytes([7; 32]);
        let keys = DataKeys::generate().unwrap();
        let wrapped = keys.wrap(&kf, b"salt", b"repo").unwrap();
        let back = DataKeys::unwrap(&kf, b"salt", b"repo", &wrapped).unwrap();
        assert_eq!(back.chunk_id(b"x"), keys.chunk_id(b"x"));
        assert!(matches!(
            DataKeys::unwrap(&KeyFile::from_bytes([8; 32]), b"salt", b"repo", &wrapped),
            Err(BackupError::WrongKey)
        ));
        assert!(matches!(
            DataKeys::unwrap(&kf, b"salt", b"other-repo", &wrapped),
            Err(BackupError::WrongKey)
        ));
        // Keyed ids differ from plain ids and between repositories.
        assert_ne!(keys.chunk_id(b"x"), plain_chunk_id(b"x"));
        assert_ne!(
            keys.chunk_id(b"x"),
            DataKeys::generate().unwrap().chunk_id(b"x")
        );
    }

    #[test]
    fn key_file_formats() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let k = KeyFile::generate(&p).unwrap();
        assert_eq!(KeyFile::load(&p).unwrap().0, k.0);
        assert!(KeyFile::generate(&p).is_err(), "must not overwrite");
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [3u8; 32]).unwrap();
        assert_eq!(KeyFile::load(&raw).unwrap().0, [3u8; 32]);
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "abcd\n").unwrap();
        assert!(matches!(
            KeyFile::load(&bad),
            Err(BackupError::BadKeyFile { .. })
        ));
    }
}
