//! The on-disk/object format of every repository blob (chunks and indexes): an 8-byte header,
//! then the payload — zstd-compressed when that saves space, AES-256-GCM sealed when the
//! repository is encrypted — and an integrity trailer.
//!
//! ```text
//! header   = "NCB1" | kind u8 (1 chunk, 2 index) | flags u8 (1 zstd, 2 encrypted) | 0u16
//! encrypted  : header | nonce[12] | ciphertext | tag[16]      aad = header ‖ binding
//! plain chunk: header | payload                               (the chunk id is the checksum)
//! plain other: header | payload | blake3(header ‖ binding ‖ payload)
//! ```
//! `binding` is the chunk id or the backup id, so a blob moved to another name fails to open.

use aws_lc_rs::aead::NONCE_LEN;

use crate::crypto::{ChunkId, DataKeys, plain_chunk_id};

const MAGIC: &[u8; 4] = b"NCB1";
const HEADER_LEN: usize = 8;
const FLAG_ZSTD: u8 = 1;
const FLAG_ENCRYPTED: u8 = 2;

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobKind {
    Chunk = 1,
    Index = 2,
}

/// Why a blob failed to decode (mapped to `CorruptChunk`/`CorruptIndex` by callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobError(pub String);

impl std::fmt::Display for BlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(s: impl Into<String>) -> Result<T, BlobError> {
    Err(BlobError(s.into()))
}

/// Compresses and (optionally) encrypts `data` into a blob. zstd is skipped when it would save
/// less than 1/64 of the size (incompressible data is stored as is).
pub fn encode(
    kind: BlobKind,
    keys: Option<&DataKeys>,
    binding: &[u8],
    data: &[u8],
    zstd_level: i32,
) -> Result<Vec<u8>, crate::error::BackupError> {
    let compressed = zstd::bulk::compress(data, zstd_level).ok();
    let (payload, flags_zstd) = match &compressed {
        Some(c) if c.len() < data.len() - data.len() / 64 => (c.as_slice(), FLAG_ZSTD),
        _ => (data, 0),
    };
    let mut flags = flags_zstd;
    if keys.is_some() {
        flags |= FLAG_ENCRYPTED;
    }
    let header = [
        MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], kind as u8, flags, 0, 0,
    ];
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + payload.len() + 32);
    out.extend_from_slice(&header);
    match keys {
        Some(k) => {
            out.resize(HEADER_LEN + NONCE_LEN, 0);
            out.extend_from_slice(payload);
            let aad = aad(&header, binding);
            k.seal_tail(&mut out, HEADER_LEN + NONCE_LEN, &aad)?;
        }
        None => {
            out.extend_from_slice(payload);
            if kind != BlobKind::Chunk {
                let sum = trailer(&header, binding, payload);
                out.extend_from_slice(&sum);
            }
        }
    }
    Ok(out)
}

fn aad(header: &[u8], binding: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() + binding.len());
    a.extend_from_slice(header);
    a.extend_from_slice(binding);
    a
}

fn trailer(header: &[u8], binding: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(header);
    h.update(binding);
    h.update(payload);
    *h.finalize().as_bytes()
}

/// Decodes a blob: checks header and kind, authenticates/decrypts, decompresses (at most
/// `max_len` bytes). Never panics on arbitrary input.
pub fn decode(
    kind: BlobKind,
    keys: Option<&DataKeys>,
    binding: &[u8],
    mut blob: Vec<u8>,
    max_len: usize,
) -> Result<Vec<u8>, BlobError> {
    if blob.len() < HEADER_LEN || &blob[..4] != MAGIC {
        return err("bad magic (not a NovaCron blob)");
    }
    if blob[4] != kind as u8 {
        return err(format!("blob kind {} where {:?} expected", blob[4], kind));
    }
    let flags = blob[5];
    if flags & !(FLAG_ZSTD | FLAG_ENCRYPTED) != 0 || blob[6] != 0 || blob[7] != 0 {
        return err("unknown flags in header");
    }
    let encrypted = flags & FLAG_ENCRYPTED != 0;
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&blob[..HEADER_LEN]);
    let payload: Vec<u8> = match (encrypted, keys) {
        (true, None) => return err("blob is encrypted but the repository is not"),
        (false, Some(_)) => return err("blob is not encrypted but the repository is"),
        (true, Some(k)) => {
            let aad = aad(&header, binding);
            match k.open(&mut blob[HEADER_LEN..], &aad) {
                Some(p) => {
                    let n = p.len();
                    blob.copy_within(HEADER_LEN + NONCE_LEN..HEADER_LEN + NONCE_LEN + n, 0);
                    blob.truncate(n);
                    blob
                }
                None => return err("authentication failed (AES-GCM tag mismatch)"),
            }
        }
        (false, None) => {
            if kind == BlobKind::Chunk {
                blob.drain(..HEADER_LEN);
                blob
            } else {
                if blob.len() < HEADER_LEN + 32 {
                    return err("truncated");
                }
                let end = blob.len() - 32;
                let sum = trailer(&header, binding, &blob[HEADER_LEN..end]);
                if sum[..] != blob[end..] {
                    return err("checksum mismatch");
                }
                blob.truncate(end);
                blob.drain(..HEADER_LEN);
                blob
            }
        }
    };
    if flags & FLAG_ZSTD != 0 {
        // The frame's declared size is checked by zstd against `max_len`.
        zstd::bulk::decompress(&payload, max_len).or_else(|e| err(format!("zstd: {e}")))
    } else if payload.len() > max_len {
        err("payload larger than the maximum chunk size")
    } else {
        Ok(payload)
    }
}

/// The chunk id of `data` under the repository's keys.
pub fn chunk_id(keys: Option<&DataKeys>, data: &[u8]) -> ChunkId {
    match keys {
        Some(k) => k.chunk_id(data),
        None => plain_chunk_id(data),
    }
}

/// Decodes a chunk blob for a restore. Encrypted blobs are authenticated by their AES-GCM tag,
/// which binds the ciphertext to the chunk id (associated data) — only a holder of the keys can
/// produce a blob that opens under that id — so re-hashing adds nothing there; plain blobs are
/// re-hashed. `verify` re-hashes always ([`decode_chunk`]).
pub fn decode_chunk_for_restore(
    keys: Option<&DataKeys>,
    id: &ChunkId,
    blob: Vec<u8>,
    max_len: usize,
) -> Result<Vec<u8>, BlobError> {
    if keys.is_some() {
        decode(BlobKind::Chunk, keys, &id.0, blob, max_len)
    } else {
        decode_chunk(None, id, blob, max_len)
    }
}

/// Decodes a chunk blob and checks that its content hashes to `id`.
pub fn decode_chunk(
    keys: Option<&DataKeys>,
    id: &ChunkId,
    blob: Vec<u8>,
    max_len: usize,
) -> Result<Vec<u8>, BlobError> {
    let data = decode(BlobKind::Chunk, keys, &id.0, blob, max_len)?;
    if chunk_id(keys, &data) != *id {
        return err("content does not hash to the chunk id");
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn roundtrip_plain_and_encrypted() {
        let keys = DataKeys::generate().unwrap();
        for k in [None, Some(&keys)] {
            let data = sample();
            let id = chunk_id(k, &data);
            let blob = encode(BlobKind::Chunk, k, &id.0, &data, 1).unwrap();
            assert!(blob.len() < data.len() / 2, "compressible data must shrink");
            assert_eq!(decode_chunk(k, &id, blob.clone(), 1 << 22).unwrap(), data);
            // A flipped byte anywhere is caught.
            for pos in [0, 5, 9, blob.len() / 2, blob.len() - 1] {
                let mut bad = blob.clone();
                bad[pos] ^= 0x40;
                assert!(decode_chunk(k, &id, bad, 1 << 22).is_err(), "pos {pos}");
            }
            let idx = encode(BlobKind::Index, k, b"backup-1", b"hello index", 1).unwrap();
            assert_eq!(
                decode(BlobKind::Index, k, b"backup-1", idx.clone(), 1 << 20).unwrap(),
                b"hello index"
            );
            assert!(decode(BlobKind::Index, k, b"backup-2", idx.clone(), 1 << 20).is_err());
            let mut bad = idx.clone();
            let last = bad.len() - 3;
            bad[last] ^= 1;
            assert!(decode(BlobKind::Index, k, b"backup-1", bad, 1 << 20).is_err());
        }
    }

    #[test]
    fn incompressible_is_stored_raw() {
        let mut data = vec![0u8; 65536];
        crate::util::random_fill(&mut data).unwrap();
        let blob = encode(BlobKind::Chunk, None, &[], &data, 1).unwrap();
        assert_eq!(blob.len(), data.len() + HEADER_LEN);
        assert_eq!(blob[5] & FLAG_ZSTD, 0);
    }

    #[test]
    fn garbage_never_panics() {
        let keys = DataKeys::generate().unwrap();
        let mut seed = 1u64;
        for len in 0..300usize {
            let mut v = vec![0u8; len];
            for b in v.iter_mut() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                *b = (seed >> 56) as u8;
            }
            if len >= 8 {
                v[..4].copy_from_slice(MAGIC);
                v[4] = (len % 3) as u8;
                v[5] = (len % 4) as u8;
                v[6] = 0;
                v[7] = 0;
            }
            let _ = decode(BlobKind::Chunk, None, &[], v.clone(), 1 << 20);
            let _ = decode(BlobKind::Index, Some(&keys), b"x", v, 1 << 20);
        }
    }
}
