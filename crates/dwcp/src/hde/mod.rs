//! HDE, hierarchical delta encoding: sends fewer bytes than the data, per block.
//!
//! Each block (a 4 KiB guest page, a disk range, ...) is identified by a caller-chosen
//! `block_id` (for memory: the page address) and encoded as the cheapest of:
//! 1. `Zero`: an all-zero block;
//! 2. `Ref`: a block whose content the receiver already holds (sent earlier in this session,
//!    or [announced](Encoder::announce) by the receiver, e.g. a base image both sites store),
//!    sent as its 16-byte fingerprint;
//! 3. `Delta`: an XOR + run-length delta against the previous version of the same block;
//! 4. `Raw`: the bytes themselves.
//!
//! Records are gathered in a batch, and the batch is compressed with zstd at a level the
//! caller sets (from the link speed), or sent as is when it does not compress. Every record
//! carries the fingerprint of the original bytes; the [`Decoder`] recomputes it, so a batch
//! decodes to exactly the original bytes or fails with an error.
//!
//! ```
//! use novacron_dwcp::hde::{Decoder, DecoderConfig, Encoder, EncoderConfig};
//! let mut enc = Encoder::new(EncoderConfig::default());
//! let mut dec = Decoder::new(DecoderConfig::default());
//! let page = vec![42u8; 4096];
//! enc.encode_block(0x1000, &page);
//! enc.encode_block(0x2000, &page); // same content: travels as a 16-byte reference
//! let batch = enc.finish_batch().expect("two blocks are pending");
//! let blocks = dec.decode_batch(&batch).unwrap();
//! assert_eq!(blocks.len(), 2);
//! assert_eq!(&blocks[1].data[..], &page[..]);
//! ```

pub mod delta;
pub(crate) mod varint;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use bytes::Bytes;

use crate::error::HdeError;

/// Length of a block fingerprint (truncated BLAKE3), in bytes.
pub const FINGERPRINT_BYTES: usize = 16;
/// Largest block the decoder accepts.
pub const MAX_BLOCK_BYTES: usize = 64 << 20;

const BATCH_MAGIC: u8 = 0xD7;
const BATCH_VERSION: u8 = 1;
const FLAG_ZSTD: u8 = 0x01;

const TAG_RAW: u8 = 1;
const TAG_REF: u8 = 2;
const TAG_DELTA: u8 = 3;
const TAG_ZERO: u8 = 4;
// Batch: magic, version, flags, u32 LE body length, u32 LE block count, body (zstd or raw), crc32 (LE) of all before it.
const BATCH_HEADER_BYTES: usize = 11;

/// Content fingerprint of a block: the first 16 bytes of its BLAKE3 hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; FINGERPRINT_BYTES]);

impl Fingerprint {
    /// Fingerprint of `data`.
    pub fn of(data: &[u8]) -> Self {
        let h = blake3::hash(data);
        let mut fp = [0u8; FINGERPRINT_BYTES];
        fp.copy_from_slice(&h.as_bytes()[..FINGERPRINT_BYTES]);
        Fingerprint(fp)
    }
}

/// How a block was encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlockKind {
    /// All zero bytes.
    Zero,
    /// Content the receiver holds; sent as a fingerprint.
    Ref,
    /// Delta against the previous version of the same block.
    Delta,
    /// The bytes themselves (compressed with the batch if that helps).
    Raw,
}

/// Encoder settings. Both sides must use the same `history_bytes`.
#[derive(Clone, Debug)]
pub struct EncoderConfig {
    /// Bytes of distinct content both sides remember for references and deltas (content
    /// the receiver preloaded does not count). Past this, new content is not remembered.
    pub history_bytes: u64,
    /// zstd level for batches; `None` sends batches uncompressed.
    pub zstd_level: Option<i32>,
    /// Send changed blocks as deltas against their previous version.
    pub delta: bool,
    /// Send repeated content as references.
    pub dedup: bool,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            history_bytes: 4 << 30,
            zstd_level: Some(3),
            delta: true,
            dedup: true,
        }
    }
}

/// Decoder settings. `history_bytes` must equal the encoder's.
#[derive(Clone, Debug)]
pub struct DecoderConfig {
    /// See [`EncoderConfig::history_bytes`].
    pub history_bytes: u64,
    /// Largest decoded batch body accepted (guards against decompression bombs).
    pub max_batch_bytes: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            history_bytes: EncoderConfig::default().history_bytes,
            max_batch_bytes: 256 << 20,
        }
    }
}

/// Counters of what the encoder did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncoderStats {
    /// Blocks and input bytes per kind: zero, ref, delta, raw.
    pub zero_blocks: u64,
    pub ref_blocks: u64,
    pub delta_blocks: u64,
    pub raw_blocks: u64,
    /// Bytes handed to `encode_block`.
    pub input_bytes: u64,
    /// Bytes of finished batches (what goes on the wire before framing).
    pub output_bytes: u64,
    /// Batches compressed with zstd / sent uncompressed.
    pub compressed_batches: u64,
    pub stored_batches: u64,
    /// Nanoseconds spent in zstd.
    pub compress_nanos: u64,
}

/// Sender half of HDE. See the [module docs](self).
pub struct Encoder {
    cfg: EncoderConfig,
    known: HashSet<Fingerprint>,
    prev: HashMap<u64, (Fingerprint, Bytes)>,
    remembered_bytes: u64,
    body: Vec<u8>,
    body_blocks: u64,
    compressor: Option<(i32, zstd::bulk::Compressor<'static>)>,
    /// Batches to send uncompressed before trying compression again.
    skip_compression: u32,
    skip_backoff: u32,
    stats: EncoderStats,
}

impl Encoder {
    /// A new encoder with empty history.
    pub fn new(cfg: EncoderConfig) -> Self {
        Encoder {
            cfg,
            known: HashSet::new(),
            prev: HashMap::new(),
            remembered_bytes: 0,
            body: vec![0u8; BATCH_HEADER_BYTES],
            body_blocks: 0,
            compressor: None,
            skip_compression: 0,
            skip_backoff: 1,
            stats: EncoderStats::default(),
        }
    }

    /// Marks content the receiver holds (from its announcement) as available for references.
    pub fn announce(&mut self, fingerprints: impl IntoIterator<Item = Fingerprint>) {
        self.known.extend(fingerprints);
    }

    /// Sets the zstd level for following batches (`None`: no compression).
    pub fn set_zstd_level(&mut self, level: Option<i32>) {
        self.cfg.zstd_level = level;
    }

    /// Current zstd level.
    pub fn zstd_level(&self) -> Option<i32> {
        self.cfg.zstd_level
    }

    /// What the encoder did so far.
    pub fn stats(&self) -> &EncoderStats {
        &self.stats
    }

    /// Bytes of encoded records waiting in the current batch (before compression).
    pub fn pending_bytes(&self) -> usize {
        self.body.len() - BATCH_HEADER_BYTES
    }

    /// Encodes one block into the current batch and says how it was encoded.
    pub fn encode_block(&mut self, block_id: u64, data: &[u8]) -> BlockKind {
        self.stats.input_bytes += data.len() as u64;
        self.body_blocks += 1;
        if is_zero(data) {
            self.body.push(TAG_ZERO);
            varint::put(&mut self.body, block_id);
            varint::put(&mut self.body, data.len() as u64);
            self.prev.remove(&block_id);
            self.stats.zero_blocks += 1;
            return BlockKind::Zero;
        }
        let fp = Fingerprint::of(data);
        let kind = if self.cfg.dedup && self.known.contains(&fp) {
            self.body.push(TAG_REF);
            varint::put(&mut self.body, block_id);
            varint::put(&mut self.body, data.len() as u64);
            self.body.extend_from_slice(&fp.0);
            BlockKind::Ref
        } else {
            let mut kind = BlockKind::Raw;
            if self.cfg.delta
                && let Some((old_fp, old)) = self.prev.get(&block_id)
                && old.len() == data.len()
                && self.known.contains(old_fp)
            {
                let mark = self.body.len();
                self.body.push(TAG_DELTA);
                varint::put(&mut self.body, block_id);
                varint::put(&mut self.body, data.len() as u64);
                self.body.extend_from_slice(&fp.0);
                let mut d = Vec::with_capacity(data.len() / 4);
                if delta::encode(old, data, data.len() / 2, &mut d) {
                    varint::put(&mut self.body, d.len() as u64);
                    self.body.extend_from_slice(&d);
                    kind = BlockKind::Delta;
                } else {
                    self.body.truncate(mark);
                }
            }
            if kind == BlockKind::Raw {
                self.body.push(TAG_RAW);
                varint::put(&mut self.body, block_id);
                varint::put(&mut self.body, data.len() as u64);
                self.body.extend_from_slice(&fp.0);
                self.body.extend_from_slice(data);
            }
            kind
        };
        match kind {
            BlockKind::Ref => self.stats.ref_blocks += 1,
            BlockKind::Delta => self.stats.delta_blocks += 1,
            _ => self.stats.raw_blocks += 1,
        }
        // Mirror of the decoder's memory rule (see `Decoder::remember`).
        let remembered = if self.known.contains(&fp) {
            true
        } else if self.remembered_bytes + data.len() as u64 <= self.cfg.history_bytes {
            self.remembered_bytes += data.len() as u64;
            self.known.insert(fp);
            true
        } else {
            false
        };
        if remembered && self.cfg.delta {
            self.prev
                .insert(block_id, (fp, Bytes::copy_from_slice(data)));
        } else {
            self.prev.remove(&block_id);
        }
        kind
    }

    /// Closes the current batch: returns its wire form, or `None` when no block is pending.
    pub fn finish_batch(&mut self) -> Option<Vec<u8>> {
        if self.body_blocks == 0 {
            return None;
        }
        // `body` starts with room for the header, so an uncompressed batch is sent in place.
        let mut body = std::mem::replace(&mut self.body, vec![0u8; BATCH_HEADER_BYTES]);
        let blocks = std::mem::take(&mut self.body_blocks);
        let body_len = body.len() - BATCH_HEADER_BYTES;
        let mut header = [0u8; BATCH_HEADER_BYTES];
        header[0] = BATCH_MAGIC;
        header[1] = BATCH_VERSION;
        header[3..7].copy_from_slice(&(body_len as u32).to_le_bytes());
        header[7..11].copy_from_slice(&(blocks as u32).to_le_bytes());
        let mut out = None;
        if let Some(level) = self.cfg.zstd_level {
            if self.skip_compression > 0 {
                self.skip_compression -= 1;
            } else {
                let started = Instant::now();
                let mut z = Vec::with_capacity(body_len / 2 + 64);
                z.extend_from_slice(&header);
                let ok = self.compress_into(level, &body[BATCH_HEADER_BYTES..], &mut z);
                self.stats.compress_nanos += started.elapsed().as_nanos() as u64;
                if ok {
                    z[2] |= FLAG_ZSTD;
                    out = Some(z);
                    self.skip_backoff = 1;
                } else {
                    // Incompressible: skip a growing number of batches before probing again.
                    self.skip_compression = self.skip_backoff;
                    self.skip_backoff = (self.skip_backoff * 2).min(32);
                }
            }
        }
        let mut out = match out {
            Some(z) => {
                self.stats.compressed_batches += 1;
                z
            }
            None => {
                body[..BATCH_HEADER_BYTES].copy_from_slice(&header);
                self.stats.stored_batches += 1;
                body
            }
        };
        // Batch checksum: block ids and framing are covered too, not only block contents.
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        self.stats.output_bytes += out.len() as u64;
        Some(out)
    }

    /// Appends the zstd form of `body` to `out` if it saves at least 3 %.
    fn compress_into(&mut self, level: i32, body: &[u8], out: &mut Vec<u8>) -> bool {
        if self.compressor.as_ref().map(|(l, _)| *l) != Some(level) {
            match zstd::bulk::Compressor::new(level) {
                Ok(c) => self.compressor = Some((level, c)),
                Err(e) => {
                    tracing::warn!(level, error = %e, "zstd compressor unavailable, sending uncompressed");
                    return false;
                }
            }
        }
        let Some((_, comp)) = self.compressor.as_mut() else {
            return false;
        };
        let limit = body.len() - body.len() / 32;
        let start = out.len();
        out.resize(start + zstd::zstd_safe::compress_bound(body.len()), 0);
        match comp.compress_to_buffer(body, &mut out[start..]) {
            Ok(n) if n < limit => {
                out.truncate(start + n);
                true
            }
            _ => {
                out.truncate(start);
                false
            }
        }
    }
}

/// One decoded block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedBlock {
    /// The caller's identity for the block (e.g. page address).
    pub block_id: u64,
    /// Exactly the bytes given to [`Encoder::encode_block`].
    pub data: Bytes,
}

/// Receiver half of HDE. See the [module docs](self).
pub struct Decoder {
    cfg: DecoderConfig,
    store: HashMap<Fingerprint, Bytes>,
    current: HashMap<u64, Fingerprint>,
    remembered_bytes: u64,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    poisoned: bool,
}

impl Decoder {
    /// A new decoder with empty history.
    pub fn new(cfg: DecoderConfig) -> Self {
        Decoder {
            cfg,
            store: HashMap::new(),
            current: HashMap::new(),
            remembered_bytes: 0,
            decompressor: None,
            poisoned: false,
        }
    }

    /// Makes content this side already holds (e.g. a base image) available for references
    /// and returns its fingerprint; send the fingerprints to the encoder's [`Encoder::announce`].
    pub fn preload(&mut self, data: &[u8]) -> Fingerprint {
        let fp = Fingerprint::of(data);
        self.store
            .entry(fp)
            .or_insert_with(|| Bytes::copy_from_slice(data));
        fp
    }

    /// Decodes one batch into its blocks, in order. On any error the decoder refuses all
    /// further batches (its history may no longer match the encoder's).
    pub fn decode_batch(&mut self, batch: &[u8]) -> Result<Vec<DecodedBlock>, HdeError> {
        self.decode_batch_bytes(Bytes::copy_from_slice(batch))
    }

    /// Like [`Decoder::decode_batch`], without copying an uncompressed batch: decoded blocks
    /// share its buffer.
    pub fn decode_batch_bytes(&mut self, batch: Bytes) -> Result<Vec<DecodedBlock>, HdeError> {
        if self.poisoned {
            return Err(HdeError::Poisoned);
        }
        let result = self.decode_inner(batch);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn decode_inner(&mut self, whole: Bytes) -> Result<Vec<DecodedBlock>, HdeError> {
        if whole.len() < BATCH_HEADER_BYTES + 4 {
            return Err(HdeError::Truncated);
        }
        if whole[0] != BATCH_MAGIC || whole[1] != BATCH_VERSION {
            return Err(HdeError::Corrupt("not an HDE batch"));
        }
        let batch_bytes = whole.slice(..whole.len() - 4);
        let batch = &batch_bytes[..];
        let crc = &whole[whole.len() - 4..];
        let mut crc_bytes = [0u8; 4];
        crc_bytes.copy_from_slice(crc);
        if crc32fast::hash(batch) != u32::from_le_bytes(crc_bytes) {
            return Err(HdeError::ChecksumMismatch);
        }
        let flags = batch[2];
        if flags & !FLAG_ZSTD != 0 {
            return Err(HdeError::Corrupt("unknown batch flags"));
        }
        let body_len = u64::from(u32::from_le_bytes([batch[3], batch[4], batch[5], batch[6]]));
        let blocks = u64::from(u32::from_le_bytes([
            batch[7], batch[8], batch[9], batch[10],
        ]));
        let rd = BATCH_HEADER_BYTES;
        if body_len > self.cfg.max_batch_bytes as u64 {
            return Err(HdeError::TooLarge);
        }
        let body_len = body_len as usize;
        let body: Bytes = if flags & FLAG_ZSTD != 0 {
            let dec = match self.decompressor.as_mut() {
                Some(d) => d,
                None => self.decompressor.insert(
                    zstd::bulk::Decompressor::new()
                        .map_err(|_| HdeError::Corrupt("zstd unavailable"))?,
                ),
            };
            let mut buf = vec![0u8; body_len];
            let n = dec
                .decompress_to_buffer(&batch[rd..], &mut buf)
                .map_err(|_| HdeError::Corrupt("zstd body does not decompress"))?;
            if n != body_len {
                return Err(HdeError::Corrupt("batch body length mismatch"));
            }
            Bytes::from(buf)
        } else {
            if batch.len() - rd != body_len {
                return Err(if batch.len() - rd < body_len {
                    HdeError::Truncated
                } else {
                    HdeError::Corrupt("batch body length mismatch")
                });
            }
            batch_bytes.slice(rd..)
        };
        // Every record takes at least 3 bytes: refuse counts that cannot be true before allocating.
        if blocks > (body.len() / 3) as u64 {
            return Err(HdeError::Corrupt("block count exceeds batch size"));
        }
        let mut out = Vec::with_capacity(blocks as usize);
        let mut rd = 0usize;
        let b = &body[..];
        for _ in 0..blocks {
            let tag = *b.get(rd).ok_or(HdeError::Truncated)?;
            rd += 1;
            let block_id = varint::get(b, &mut rd)?;
            let len = varint::get(b, &mut rd)?;
            if len > MAX_BLOCK_BYTES as u64 {
                return Err(HdeError::TooLarge);
            }
            let len = len as usize;
            let data = match tag {
                TAG_ZERO => {
                    self.current.remove(&block_id);
                    out.push(DecodedBlock {
                        block_id,
                        data: Bytes::from(vec![0u8; len]),
                    });
                    continue;
                }
                TAG_RAW => {
                    let fp = take_fp(b, &mut rd)?;
                    let end = rd.checked_add(len).ok_or(HdeError::Truncated)?;
                    if end > b.len() {
                        return Err(HdeError::Truncated);
                    }
                    let data = body.slice(rd..end);
                    rd = end;
                    verify(&data, &fp)?;
                    (fp, data)
                }
                TAG_REF => {
                    let fp = take_fp(b, &mut rd)?;
                    let data = self
                        .store
                        .get(&fp)
                        .ok_or(HdeError::UnknownReference)?
                        .clone();
                    if data.len() != len {
                        return Err(HdeError::Corrupt("reference length mismatch"));
                    }
                    (fp, data)
                }
                TAG_DELTA => {
                    let fp = take_fp(b, &mut rd)?;
                    let dlen = varint::get(b, &mut rd)?;
                    let dend = usize::try_from(dlen)
                        .ok()
                        .and_then(|d| rd.checked_add(d))
                        .ok_or(HdeError::Truncated)?;
                    if dend > b.len() {
                        return Err(HdeError::Truncated);
                    }
                    let old = self
                        .current
                        .get(&block_id)
                        .and_then(|ofp| self.store.get(ofp))
                        .ok_or(HdeError::MissingDeltaBase(block_id))?;
                    if old.len() != len {
                        return Err(HdeError::Corrupt("delta base length mismatch"));
                    }
                    let mut new = Vec::with_capacity(len);
                    delta::decode(old, &b[rd..dend], &mut new)?;
                    rd = dend;
                    verify(&new, &fp)?;
                    (fp, Bytes::from(new))
                }
                _ => return Err(HdeError::Corrupt("unknown block tag")),
            };
            let (fp, data) = data;
            self.remember(block_id, fp, &data);
            out.push(DecodedBlock { block_id, data });
        }
        if rd != body.len() {
            return Err(HdeError::Corrupt("trailing bytes after the last block"));
        }
        Ok(out)
    }

    /// The memory rule the encoder mirrors: content is remembered while the history budget lasts.
    fn remember(&mut self, block_id: u64, fp: Fingerprint, data: &Bytes) {
        let remembered = if self.store.contains_key(&fp) {
            true
        } else if self.remembered_bytes + data.len() as u64 <= self.cfg.history_bytes {
            self.remembered_bytes += data.len() as u64;
            self.store.insert(fp, data.clone());
            true
        } else {
            false
        };
        if remembered {
            self.current.insert(block_id, fp);
        } else {
            self.current.remove(&block_id);
        }
    }
}

fn take_fp(b: &[u8], rd: &mut usize) -> Result<Fingerprint, HdeError> {
    let end = rd
        .checked_add(FINGERPRINT_BYTES)
        .ok_or(HdeError::Truncated)?;
    let s = b.get(*rd..end).ok_or(HdeError::Truncated)?;
    let mut fp = [0u8; FINGERPRINT_BYTES];
    fp.copy_from_slice(s);
    *rd = end;
    Ok(Fingerprint(fp))
}

fn verify(data: &[u8], fp: &Fingerprint) -> Result<(), HdeError> {
    if Fingerprint::of(data) != *fp {
        return Err(HdeError::ChecksumMismatch);
    }
    Ok(())
}

fn is_zero(data: &[u8]) -> bool {
    let (chunks, tail) = data.as_chunks::<8>();
    chunks.iter().all(|c| u64::from_ne_bytes(*c) == 0) && tail.iter().all(|b| *b == 0)
}

/// Serialises fingerprints for an announcement message (receiver → sender).
pub fn encode_announcement(fps: &[Fingerprint]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fps.len() * FINGERPRINT_BYTES);
    for fp in fps {
        out.extend_from_slice(&fp.0);
    }
    out
}

/// Parses an announcement made by [`encode_announcement`].
pub fn decode_announcement(bytes: &[u8]) -> Result<Vec<Fingerprint>, HdeError> {
    let (chunks, tail) = bytes.as_chunks::<FINGERPRINT_BYTES>();
    if !tail.is_empty() {
        return Err(HdeError::Truncated);
    }
    Ok(chunks.iter().map(|c| Fingerprint(*c)).collect())
}

#[cfg(test)]
mod tests;
