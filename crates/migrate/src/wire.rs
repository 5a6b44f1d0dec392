//! The migration stream as it travels between the two agents: QEMU's bytes cut into messages
//! of operations, literal bytes and one HDE batch of RAM pages, from which the destination
//! rebuilds QEMU's exact byte stream.
//!
//! A data message is
//! ```text
//! 0x01 | varint ops_len | ops | varint lit_len | u8 lit_codec (0 stored, 1 zstd) | varint lit_stored_len | lit | HDE batch (may be empty)
//! ```
//! and the operations say how to rebuild the stream: `LIT n` copies `n` literal bytes,
//! `PAGES`/`ZEROS` render a run of consecutive page entries of one RAM block (the page data
//! comes from the HDE batch, in order), `BASE` renders one page whose data the destination reads
//! from a base image it announced. The end message (`0x02`) carries the length and BLAKE3 hash of
//! the whole stream; the destination compares them with what it rebuilt before it reports
//! success, so a rebuilt stream is exactly QEMU's or the migration fails.
//!
//! [`WireEncoder`] is the parser's [`Sink`] on the source; [`WireDecoder`] renders on the destination.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use novacron_dwcp::hde::{Decoder, DecoderConfig, Encoder, EncoderConfig, Fingerprint};

use crate::base::{BaseFiles, BaseIndex};
use crate::error::WireError;
use crate::qevm::{self, PAGE_BYTES, PageHeader, Sink, flags};

const MSG_DATA: u8 = 0x01;
const MSG_END: u8 = 0x02;

const OP_LIT: u8 = 1;
const OP_PAGES: u8 = 2;
const OP_ZEROS: u8 = 3;
const OP_BASE: u8 = 4;

const LIT_STORED: u8 = 0;
const LIT_ZSTD: u8 = 1;
/// Literal blobs at least this long are offered to zstd.
const LIT_COMPRESS_MIN: usize = 512;
/// Largest literal blob a decoder accepts per message (guards against decompression bombs).
const MAX_LIT_BYTES: usize = 64 << 20;
/// Largest page run a decoder accepts.
const MAX_RUN_PAGES: u64 = 1 << 24;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn get_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or(WireError::Truncated)?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err(WireError::Corrupt("varint overflows u64"));
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WireError::Corrupt("varint too long"))
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], WireError> {
    let end = pos.checked_add(n).ok_or(WireError::Truncated)?;
    let s = buf.get(*pos..end).ok_or(WireError::Truncated)?;
    *pos = end;
    Ok(s)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RunKind {
    Pages,
    Zeros,
}

#[derive(Debug)]
struct Run {
    kind: RunKind,
    cont: bool,
    name: Vec<u8>,
    first_page: u64,
    count: u64,
}

/// What the encoder did, split by first sends and re-sends of a page (re-sends are what the
/// stop-and-copy tail consists of, so their cost predicts downtime).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WireStats {
    /// QEMU stream bytes encoded.
    pub raw_bytes: u64,
    /// Message bytes produced.
    pub wire_bytes: u64,
    /// Page entries (data pages) and zero entries.
    pub pages: u64,
    pub zero_pages: u64,
    /// Pages sent as references to a base image the destination holds.
    pub base_pages: u64,
    /// Pages HDE sent as references, deltas and raw (possibly compressed).
    pub hde_ref_pages: u64,
    pub hde_delta_pages: u64,
    pub hde_raw_pages: u64,
    /// Literal bytes (headers, device state, ...).
    pub literal_bytes: u64,
    /// Raw page bytes and estimated wire bytes of pages sent for the first time.
    pub first_raw_bytes: u64,
    pub first_wire_bytes: f64,
    /// Raw page bytes and estimated wire bytes of pages sent again.
    pub resend_raw_bytes: u64,
    pub resend_wire_bytes: f64,
    /// Pages sent again.
    pub resend_pages: u64,
}

impl WireStats {
    /// Wire bytes per raw byte of re-sent pages (None before any re-send).
    pub fn resend_ratio(&self) -> Option<f64> {
        (self.resend_raw_bytes > 0).then(|| self.resend_wire_bytes / self.resend_raw_bytes as f64)
    }
    /// Wire bytes per raw byte overall.
    pub fn ratio(&self) -> Option<f64> {
        (self.raw_bytes > 0).then(|| self.wire_bytes as f64 / self.raw_bytes as f64)
    }
}

/// Encodes parser output into messages. See the [module docs](self).
pub struct WireEncoder {
    hde: Encoder,
    ops: Vec<u8>,
    lit: Vec<u8>,
    lit_uncovered: u64,
    run: Option<Run>,
    block_index: HashMap<Vec<u8>, u64>,
    base: Option<Arc<BaseIndex>>,
    sent: HashSet<u64>,
    lit_level: Option<i32>,
    stats: WireStats,
    // Body bytes of the current batch, per class, for the first/resend split.
    batch_first_body: u64,
    batch_resend_body: u64,
    hasher: blake3::Hasher,
}

impl WireEncoder {
    /// A new encoder; `base` lists content the destination holds.
    pub fn new(cfg: EncoderConfig, base: Option<Arc<BaseIndex>>) -> WireEncoder {
        let lit_level = cfg.zstd_level;
        WireEncoder {
            hde: Encoder::new(cfg),
            ops: Vec::new(),
            lit: Vec::new(),
            lit_uncovered: 0,
            run: None,
            block_index: HashMap::new(),
            base: base.filter(|b| !b.is_empty()),
            sent: HashSet::new(),
            lit_level,
            stats: WireStats::default(),
            batch_first_body: 0,
            batch_resend_body: 0,
            hasher: blake3::Hasher::new(),
        }
    }

    /// Sets the zstd level of HDE batches and literal blobs (`None`: no compression).
    pub fn set_zstd_level(&mut self, level: Option<i32>) {
        self.hde.set_zstd_level(level);
        self.lit_level = level;
    }

    /// Counters so far.
    pub fn stats(&self) -> &WireStats {
        &self.stats
    }

    /// HDE's own counters.
    pub fn hde_stats(&self) -> &novacron_dwcp::hde::EncoderStats {
        self.hde.stats()
    }

    /// Bytes waiting for the next message (before compression).
    pub fn pending_bytes(&self) -> usize {
        self.hde.pending_bytes() + self.lit.len() + self.ops.len()
    }

    /// True when nothing waits for a message.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.lit_uncovered == 0 && self.run.is_none()
    }

    /// Feeds raw stream bytes through `parser` into this encoder.
    pub fn feed(&mut self, parser: &mut qevm::Parser, bytes: &[u8]) {
        self.stats.raw_bytes += bytes.len() as u64;
        self.hasher.update(bytes);
        parser.feed(bytes, self);
    }

    /// Flushes what the parser holds back (end of stream).
    pub fn finish_stream(&mut self, parser: &mut qevm::Parser) {
        parser.finish(self);
    }

    fn block_id(&mut self, name: &[u8], offset: u64) -> u64 {
        let next = self.block_index.len() as u64;
        let idx = match self.block_index.get(name) {
            Some(i) => *i,
            None => {
                self.block_index.insert(name.to_vec(), next);
                next
            }
        };
        (idx << 40) | (offset / PAGE_BYTES as u64)
    }

    fn close_lit(&mut self) {
        if self.lit_uncovered > 0 {
            self.ops.push(OP_LIT);
            put_varint(&mut self.ops, self.lit_uncovered);
            self.lit_uncovered = 0;
        }
    }

    fn close_run(&mut self) {
        if let Some(r) = self.run.take() {
            self.ops.push(match r.kind {
                RunKind::Pages => OP_PAGES,
                RunKind::Zeros => OP_ZEROS,
            });
            push_name(&mut self.ops, r.cont, &r.name);
            put_varint(&mut self.ops, r.first_page);
            put_varint(&mut self.ops, r.count);
        }
    }

    /// Adds an entry to the current run, or starts a new one.
    fn add_to_run(&mut self, kind: RunKind, h: &PageHeader<'_>) {
        let page = h.offset / PAGE_BYTES as u64;
        if let Some(r) = &mut self.run
            && r.kind == kind
            && h.cont
            && r.first_page + r.count == page
        {
            r.count += 1;
            return;
        }
        self.close_run();
        self.close_lit();
        self.run = Some(Run {
            kind,
            cont: h.cont,
            name: if h.cont { Vec::new() } else { h.block.to_vec() },
            first_page: page,
            count: 1,
        });
    }

    /// Closes the current message: `None` when there is nothing to send.
    pub fn take_message(&mut self) -> Option<Vec<u8>> {
        self.close_run();
        self.close_lit();
        if self.ops.is_empty() {
            return None;
        }
        let batch = self.hde.finish_batch();
        let mut msg = Vec::with_capacity(
            16 + self.ops.len() + self.lit.len() + batch.as_ref().map_or(0, Vec::len),
        );
        msg.push(MSG_DATA);
        put_varint(&mut msg, self.ops.len() as u64);
        msg.extend_from_slice(&self.ops);
        put_varint(&mut msg, self.lit.len() as u64);
        let compressed = match self.lit_level {
            Some(level) if self.lit.len() >= LIT_COMPRESS_MIN => {
                zstd::bulk::compress(&self.lit, level)
                    .ok()
                    .filter(|z| z.len() < self.lit.len() - self.lit.len() / 16)
            }
            _ => None,
        };
        match compressed {
            Some(z) => {
                msg.push(LIT_ZSTD);
                put_varint(&mut msg, z.len() as u64);
                msg.extend_from_slice(&z);
            }
            None => {
                msg.push(LIT_STORED);
                put_varint(&mut msg, self.lit.len() as u64);
                msg.extend_from_slice(&self.lit);
            }
        }
        if let Some(b) = &batch {
            msg.extend_from_slice(b);
            // Share the batch's bytes between first sends and re-sends by their body bytes.
            let body = (self.batch_first_body + self.batch_resend_body).max(1) as f64;
            let per_body = b.len() as f64 / body;
            self.stats.first_wire_bytes += self.batch_first_body as f64 * per_body;
            self.stats.resend_wire_bytes += self.batch_resend_body as f64 * per_body;
        }
        self.batch_first_body = 0;
        self.batch_resend_body = 0;
        self.ops.clear();
        self.lit.clear();
        self.stats.wire_bytes += msg.len() as u64;
        Some(msg)
    }

    /// The end-of-stream message: length and hash of every raw byte fed.
    pub fn end_message(&self) -> Vec<u8> {
        let mut msg = Vec::with_capacity(41);
        msg.push(MSG_END);
        msg.extend_from_slice(&self.stats.raw_bytes.to_le_bytes());
        msg.extend_from_slice(self.hasher.clone().finalize().as_bytes());
        msg
    }
}

fn push_name(out: &mut Vec<u8>, cont: bool, name: &[u8]) {
    out.push(u8::from(cont));
    if !cont {
        out.push(name.len() as u8);
        out.extend_from_slice(name);
    }
}

impl Sink for WireEncoder {
    fn literal(&mut self, bytes: &[u8]) {
        if self.run.is_some() {
            self.close_run();
        }
        self.lit.extend_from_slice(bytes);
        self.lit_uncovered += bytes.len() as u64;
        self.stats.literal_bytes += bytes.len() as u64;
    }

    fn page(&mut self, h: PageHeader<'_>, data: &[u8]) {
        self.stats.pages += 1;
        let id = self.block_id(h.block, h.offset);
        let resend = !self.sent.insert(id);
        if let Some(base) = &self.base
            && let Some((file, block)) = base.lookup(&Fingerprint::of(data))
        {
            self.close_run();
            self.close_lit();
            self.ops.push(OP_BASE);
            push_name(&mut self.ops, h.cont, h.block);
            put_varint(&mut self.ops, h.offset / PAGE_BYTES as u64);
            put_varint(&mut self.ops, u64::from(file));
            put_varint(&mut self.ops, block);
            self.stats.base_pages += 1;
            let cost = 8.0;
            if resend {
                self.stats.resend_raw_bytes += PAGE_BYTES as u64;
                self.stats.resend_wire_bytes += cost;
                self.stats.resend_pages += 1;
            } else {
                self.stats.first_raw_bytes += PAGE_BYTES as u64;
                self.stats.first_wire_bytes += cost;
            }
            return;
        }
        self.add_to_run(RunKind::Pages, &h);
        let before = self.hde.pending_bytes();
        let kind = self.hde.encode_block(id, data);
        let body = (self.hde.pending_bytes() - before) as u64;
        match kind {
            novacron_dwcp::hde::BlockKind::Ref | novacron_dwcp::hde::BlockKind::Zero => {
                self.stats.hde_ref_pages += 1
            }
            novacron_dwcp::hde::BlockKind::Delta => self.stats.hde_delta_pages += 1,
            novacron_dwcp::hde::BlockKind::Raw => self.stats.hde_raw_pages += 1,
        }
        if resend {
            self.batch_resend_body += body;
            self.stats.resend_raw_bytes += PAGE_BYTES as u64;
            self.stats.resend_pages += 1;
        } else {
            self.batch_first_body += body;
            self.stats.first_raw_bytes += PAGE_BYTES as u64;
        }
    }

    fn zero(&mut self, h: PageHeader<'_>) {
        self.stats.zero_pages += 1;
        self.add_to_run(RunKind::Zeros, &h);
    }
}

/// What a decoded message asks the caller to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Bytes were appended to the output.
    Data,
    /// The stream ended; the rebuilt stream matched the source's length and hash.
    End { total_bytes: u64 },
}

/// Rebuilds QEMU's stream from messages. See the [module docs](self).
pub struct WireDecoder {
    hde: Decoder,
    base: Option<BaseFiles>,
    total: u64,
    hasher: blake3::Hasher,
    poisoned: bool,
}

impl WireDecoder {
    /// A new decoder; `base` opens the files this side announced.
    pub fn new(cfg: DecoderConfig, base: Option<BaseFiles>) -> WireDecoder {
        WireDecoder {
            hde: Decoder::new(cfg),
            base,
            total: 0,
            hasher: blake3::Hasher::new(),
            poisoned: false,
        }
    }

    /// Bytes rebuilt so far.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Decodes one message, appending the rebuilt stream bytes to `out`. After an error the
    /// decoder refuses further messages.
    pub fn decode(&mut self, msg: Bytes, out: &mut Vec<u8>) -> Result<Decoded, WireError> {
        if self.poisoned {
            return Err(WireError::Poisoned);
        }
        let start = out.len();
        let r = self.decode_inner(msg, out);
        match &r {
            Ok(Decoded::Data) => {
                self.hasher.update(&out[start..]);
                self.total += (out.len() - start) as u64;
            }
            Ok(Decoded::End { .. }) => {}
            Err(_) => {
                out.truncate(start);
                self.poisoned = true;
            }
        }
        r
    }

    fn decode_inner(&mut self, msg: Bytes, out: &mut Vec<u8>) -> Result<Decoded, WireError> {
        let b = &msg[..];
        let kind = *b.first().ok_or(WireError::Truncated)?;
        if kind == MSG_END {
            if b.len() != 41 {
                return Err(WireError::Corrupt("end message length"));
            }
            let mut len = [0u8; 8];
            len.copy_from_slice(&b[1..9]);
            let total = u64::from_le_bytes(len);
            let hash = self.hasher.clone().finalize();
            if total != self.total || hash.as_bytes() != &b[9..41] {
                return Err(WireError::StreamMismatch {
                    source_bytes: total,
                    rebuilt_bytes: self.total,
                });
            }
            return Ok(Decoded::End { total_bytes: total });
        }
        if kind != MSG_DATA {
            return Err(WireError::Corrupt("unknown message kind"));
        }
        let mut pos = 1;
        let ops_len =
            usize::try_from(get_varint(b, &mut pos)?).map_err(|_| WireError::Truncated)?;
        let ops = take(b, &mut pos, ops_len)?;
        let lit_len = usize::try_from(get_varint(b, &mut pos)?).map_err(|_| WireError::TooLarge)?;
        if lit_len > MAX_LIT_BYTES {
            return Err(WireError::TooLarge);
        }
        let codec = *take(b, &mut pos, 1)?.first().ok_or(WireError::Truncated)?;
        let stored_len =
            usize::try_from(get_varint(b, &mut pos)?).map_err(|_| WireError::Truncated)?;
        let stored = take(b, &mut pos, stored_len)?;
        let lit_owned;
        let lit: &[u8] = match codec {
            LIT_STORED => {
                if stored.len() != lit_len {
                    return Err(WireError::Corrupt("literal length"));
                }
                stored
            }
            LIT_ZSTD => {
                lit_owned = zstd::bulk::decompress(stored, lit_len)
                    .map_err(|_| WireError::Corrupt("literal zstd"))?;
                if lit_owned.len() != lit_len {
                    return Err(WireError::Corrupt("literal length"));
                }
                &lit_owned
            }
            _ => return Err(WireError::Corrupt("literal codec")),
        };
        let blocks = if pos < b.len() {
            self.hde.decode_batch_bytes(msg.slice(pos..))?
        } else {
            Vec::new()
        };
        let mut blocks = blocks.into_iter();
        let mut lit_pos = 0usize;
        let mut op_pos = 0usize;
        while op_pos < ops.len() {
            let op = ops[op_pos];
            op_pos += 1;
            match op {
                OP_LIT => {
                    let n = usize::try_from(get_varint(ops, &mut op_pos)?)
                        .map_err(|_| WireError::Truncated)?;
                    out.extend_from_slice(take(lit, &mut lit_pos, n)?);
                }
                OP_PAGES | OP_ZEROS | OP_BASE => {
                    let cont = match *take(ops, &mut op_pos, 1)?
                        .first()
                        .ok_or(WireError::Truncated)?
                    {
                        0 => false,
                        1 => true,
                        _ => return Err(WireError::Corrupt("continue flag")),
                    };
                    let name: &[u8] = if cont {
                        &[]
                    } else {
                        let l = *take(ops, &mut op_pos, 1)?
                            .first()
                            .ok_or(WireError::Truncated)?;
                        take(ops, &mut op_pos, l as usize)?
                    };
                    let first = get_varint(ops, &mut op_pos)?;
                    if first > (u64::MAX >> 13) {
                        return Err(WireError::Corrupt("page offset"));
                    }
                    if op == OP_BASE {
                        let file = get_varint(ops, &mut op_pos)?;
                        let block = get_varint(ops, &mut op_pos)?;
                        let h = PageHeader {
                            offset: first * PAGE_BYTES as u64,
                            cont,
                            block: name,
                        };
                        qevm::render_page_header(out, flags::PAGE, &h);
                        let base = self.base.as_ref().ok_or(WireError::NoBase)?;
                        let at = out.len();
                        out.resize(at + PAGE_BYTES, 0);
                        base.read_block(file, block, &mut out[at..])?;
                        continue;
                    }
                    let count = get_varint(ops, &mut op_pos)?;
                    if count == 0
                        || count > MAX_RUN_PAGES
                        || first
                            .checked_add(count)
                            .is_none_or(|e| e > (u64::MAX >> 13))
                    {
                        return Err(WireError::Corrupt("page run"));
                    }
                    for i in 0..count {
                        let h = PageHeader {
                            offset: (first + i) * PAGE_BYTES as u64,
                            cont: cont || i > 0,
                            block: name,
                        };
                        if op == OP_ZEROS {
                            qevm::render_page_header(out, flags::ZERO, &h);
                            out.push(0);
                        } else {
                            let blk = blocks
                                .next()
                                .ok_or(WireError::Corrupt("fewer pages than entries"))?;
                            if blk.data.len() != PAGE_BYTES {
                                return Err(WireError::Corrupt("page of the wrong size"));
                            }
                            qevm::render_page_header(out, flags::PAGE, &h);
                            out.extend_from_slice(&blk.data);
                        }
                    }
                }
                _ => return Err(WireError::Corrupt("unknown operation")),
            }
        }
        if lit_pos != lit.len() {
            return Err(WireError::Corrupt("unused literal bytes"));
        }
        if blocks.next().is_some() {
            return Err(WireError::Corrupt("more pages than entries"));
        }
        Ok(Decoded::Data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qevm::Parser;

    fn roundtrip(
        stream: &[u8],
        chunk: usize,
        msg_every: usize,
        base: Option<(Arc<BaseIndex>, BaseFiles)>,
    ) -> (Vec<u8>, WireStats) {
        let (bi, bf) = match base {
            Some((i, f)) => (Some(i), Some(f)),
            None => (None, None),
        };
        let mut enc = WireEncoder::new(EncoderConfig::default(), bi);
        let mut dec = WireDecoder::new(DecoderConfig::default(), bf);
        let mut parser = Parser::new();
        let mut out = Vec::new();
        let mut since = 0;
        for c in stream.chunks(chunk) {
            enc.feed(&mut parser, c);
            since += c.len();
            if since >= msg_every {
                since = 0;
                if let Some(m) = enc.take_message() {
                    assert_eq!(dec.decode(Bytes::from(m), &mut out).unwrap(), Decoded::Data);
                }
            }
        }
        enc.finish_stream(&mut parser);
        if let Some(m) = enc.take_message() {
            dec.decode(Bytes::from(m), &mut out).unwrap();
        }
        let end = enc.end_message();
        assert_eq!(
            dec.decode(Bytes::from(end), &mut out).unwrap(),
            Decoded::End {
                total_bytes: stream.len() as u64
            }
        );
        (out, enc.stats().clone())
    }

    #[test]
    fn rebuilds_the_sample_stream_exactly() {
        let s = crate::qevm::tests::sample_stream(7);
        for (chunk, every) in [(1, 1), (7, 100), (4096, 5000), (100_000, 1)] {
            let (out, st) = roundtrip(&s, chunk, every, None);
            assert_eq!(out, s, "chunk {chunk} every {every}");
            assert_eq!(st.pages, 8);
            assert!(st.wire_bytes < s.len() as u64);
        }
    }

    #[test]
    fn resent_pages_are_counted_and_cheap() {
        // Two passes over the same pages, the second with one byte changed per page.
        let mut s = crate::qevm::tests::sample_stream(1)[..92].to_vec();
        let pass = |s: &mut Vec<u8>, v: u8| {
            s.push(0x02);
            s.extend_from_slice(&2u32.to_be_bytes());
            for i in 0..64u64 {
                crate::qevm::tests::entry(
                    s,
                    i * 4096,
                    flags::PAGE,
                    if i == 0 { Some(b"pc.ram") } else { None },
                );
                let mut p: Vec<u8> = (0..PAGE_BYTES)
                    .map(|j| (j as u64 * 31 + i * 7) as u8 ^ (j >> 3) as u8)
                    .collect();
                p[100] = v;
                s.extend_from_slice(&p);
            }
            s.extend_from_slice(&flags::EOS.to_be_bytes());
        };
        pass(&mut s, 1);
        pass(&mut s, 2);
        let (out, st) = roundtrip(&s, 9000, 300_000, None);
        assert_eq!(out, s);
        assert_eq!(st.resend_pages, 64);
        assert_eq!(st.hde_delta_pages, 64);
        let r = st.resend_ratio().unwrap();
        assert!(r < 0.05, "re-sent pages cost {r} of their size");
    }

    #[test]
    fn base_image_pages_travel_as_references() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("base.raw");
        let mut data = vec![0u8; 16 * PAGE_BYTES];
        crate::util::fill_pseudo_random(&mut data, 42);
        std::fs::write(&img, &data).unwrap();
        let (index, files) = crate::base::index_files(std::slice::from_ref(&img)).unwrap();
        let index = Arc::new(BaseIndex::from_announcement(&index.announcement()).unwrap());
        let mut s = crate::qevm::tests::sample_stream(1)[..92].to_vec();
        s.push(0x02);
        s.extend_from_slice(&2u32.to_be_bytes());
        for i in 0..16u64 {
            crate::qevm::tests::entry(
                &mut s,
                (100 + i) * 4096,
                flags::PAGE,
                if i == 0 { Some(b"pc.ram") } else { None },
            );
            let b = (15 - i) as usize * PAGE_BYTES;
            s.extend_from_slice(&data[b..b + PAGE_BYTES]);
        }
        s.extend_from_slice(&flags::EOS.to_be_bytes());
        let (out, st) = roundtrip(&s, 5000, 1 << 20, Some((index, files)));
        assert_eq!(out, s);
        assert_eq!(st.base_pages, 16);
        assert!(st.wire_bytes < 1024, "{} wire bytes", st.wire_bytes);
    }

    #[test]
    fn tampered_stream_fails_at_the_end() {
        let s = crate::qevm::tests::sample_stream(3);
        let mut enc = WireEncoder::new(EncoderConfig::default(), None);
        let mut dec = WireDecoder::new(DecoderConfig::default(), None);
        let mut p = Parser::new();
        enc.feed(&mut p, &s);
        enc.finish_stream(&mut p);
        let m = enc.take_message().unwrap();
        let mut out = Vec::new();
        dec.decode(Bytes::from(m), &mut out).unwrap();
        // Claim one more byte than was rebuilt.
        let mut end = enc.end_message();
        end[1] ^= 1;
        assert!(matches!(
            dec.decode(Bytes::from(end), &mut out),
            Err(WireError::StreamMismatch { .. })
        ));
        assert!(matches!(
            dec.decode(Bytes::from_static(&[2]), &mut out),
            Err(WireError::Poisoned)
        ));
    }

    proptest::proptest! {
        #[test]
        fn garbage_messages_never_panic(msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
            let mut dec = WireDecoder::new(DecoderConfig::default(), None);
            let mut out = Vec::new();
            let _ = dec.decode(Bytes::from(msg), &mut out);
        }

        #[test]
        fn mutated_messages_fail_or_decode_without_panic(
            flips in proptest::collection::vec((0usize..100_000, proptest::prelude::any::<u8>()), 1..6),
        ) {
            let s = crate::qevm::tests::sample_stream(11);
            let mut enc = WireEncoder::new(EncoderConfig::default(), None);
            let mut p = Parser::new();
            enc.feed(&mut p, &s);
            enc.finish_stream(&mut p);
            let mut m = enc.take_message().unwrap();
            for (at, v) in flips {
                let n = m.len();
                m[at % n] = v;
            }
            let mut dec = WireDecoder::new(DecoderConfig::default(), None);
            let mut out = Vec::new();
            let _ = dec.decode(Bytes::from(m), &mut out);
        }
    }
}
