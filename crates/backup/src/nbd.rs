//! A small NBD client (fixed newstyle, structured replies, block status) for reading a point-in-time
//! export of a VM disk and its dirty-bitmap meta context (`qemu:dirty-bitmap:NAME`). Synchronous
//! over a Unix or TCP socket, used from blocking worker threads. Every length coming from the
//! server is bounds-checked: a hostile or broken server yields an error, never a panic.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::source::DiskSource;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_SET_META_CONTEXT: u32 = 10;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_META_CONTEXT: u32 = 4;
const INFO_EXPORT: u16 = 0;
const CMD_READ: u16 = 0;
const CMD_DISC: u16 = 2;
const CMD_BLOCK_STATUS: u16 = 7;
const REPLY_FLAG_DONE: u16 = 1;
const REPLY_TYPE_NONE: u16 = 0;
const REPLY_TYPE_OFFSET_DATA: u16 = 1;
const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
const REPLY_TYPE_ERROR_BIT: u16 = 1 << 15;
/// Largest option reply or structured chunk accepted from a server.
const MAX_PAYLOAD: usize = 64 << 20;
/// Largest single read request (QEMU serves up to 32 MiB).
pub const MAX_READ: usize = 32 << 20;

/// Errors of the NBD client.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    #[error("NBD I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("NBD protocol violation: {0}")]
    Protocol(String),
    #[error("NBD server refused {what}: error {code}{}", if .message.is_empty() { String::new() } else { format!(" ({})", .message) })]
    Refused {
        what: String,
        code: u32,
        message: String,
    },
}

fn proto<T>(m: impl Into<String>) -> Result<T, NbdError> {
    Err(NbdError::Protocol(m.into()))
}

/// Records that a reply chunk wrote `buf[start..end]`; fails if it overlaps an earlier one.
/// `written` maps the start of each range to its end; ranges never overlap, so only the last
/// one starting before `end` can.
fn claim(written: &mut BTreeMap<usize, usize>, start: usize, end: usize) -> Result<(), NbdError> {
    if start == end {
        return Ok(());
    }
    if let Some((_, &prev_end)) = written.range(..end).next_back()
        && prev_end > start
    {
        return proto("overlapping chunks in a read reply");
    }
    written.insert(start, end);
    Ok(())
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// One extent of a meta context: `length` bytes with `flags` (for a dirty bitmap, bit 0 = dirty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
    pub flags: u32,
}

/// A connected NBD client in transmission phase.
pub struct NbdClient {
    stream: Box<dyn Stream>,
    size_bytes: u64,
    contexts: Vec<(u32, String)>,
    next_handle: u64,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

impl NbdClient {
    /// Connects over a Unix socket to `export`, negotiating structured replies and the given
    /// meta contexts (e.g. `qemu:dirty-bitmap:novacron-…`). Each requested context must be
    /// granted, or the connection fails.
    pub fn connect_unix(
        path: &Path,
        export: &str,
        meta_contexts: &[String],
    ) -> Result<NbdClient, NbdError> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        s.set_write_timeout(Some(Duration::from_secs(120)))?;
        Self::handshake(Box::new(s), export, meta_contexts)
    }

    /// Fuzzing entry, not an API: the handshake over any byte stream (a fake server).
    #[doc(hidden)]
    pub fn handshake_over(
        stream: impl Read + Write + Send + 'static,
        export: &str,
        meta_contexts: &[String],
    ) -> Result<NbdClient, NbdError> {
        Self::handshake(Box::new(stream), export, meta_contexts)
    }

    fn handshake(
        mut s: Box<dyn Stream>,
        export: &str,
        meta_contexts: &[String],
    ) -> Result<NbdClient, NbdError> {
        let mut hdr = [0u8; 18];
        s.read_exact(&mut hdr)?;
        if be64(&hdr) != NBDMAGIC || be64(&hdr[8..]) != IHAVEOPT {
            return proto("not a fixed-newstyle NBD server");
        }
        let flags = be16(&hdr[16..]);
        if flags & FLAG_FIXED_NEWSTYLE == 0 {
            return proto("server lacks fixed newstyle negotiation");
        }
        let no_zeroes = flags & FLAG_NO_ZEROES != 0;
        let cflags: u32 = 1 | if no_zeroes { 2 } else { 0 };
        s.write_all(&cflags.to_be_bytes())?;
        let mut c = NbdClient {
            stream: s,
            size_bytes: 0,
            contexts: Vec::new(),
            next_handle: 1,
        };
        c.send_option(OPT_STRUCTURED_REPLY, &[])?;
        loop {
            let (ty, _) = c.read_option_reply(OPT_STRUCTURED_REPLY, "structured replies")?;
            if ty == REP_ACK {
                break;
            }
        }
        if !meta_contexts.is_empty() {
            let mut d = Vec::new();
            d.extend_from_slice(&(export.len() as u32).to_be_bytes());
            d.extend_from_slice(export.as_bytes());
            d.extend_from_slice(&(meta_contexts.len() as u32).to_be_bytes());
            for q in meta_contexts {
                d.extend_from_slice(&(q.len() as u32).to_be_bytes());
                d.extend_from_slice(q.as_bytes());
            }
            c.send_option(OPT_SET_META_CONTEXT, &d)?;
            loop {
                let (ty, data) = c.read_option_reply(OPT_SET_META_CONTEXT, "meta contexts")?;
                match ty {
                    REP_ACK => break,
                    REP_META_CONTEXT if data.len() >= 4 => {
                        let id = be32(&data);
                        let name = String::from_utf8_lossy(&data[4..]).into_owned();
                        c.contexts.push((id, name));
                    }
                    _ => return proto(format!("unexpected reply {ty} to SET_META_CONTEXT")),
                }
            }
            for q in meta_contexts {
                if !c.contexts.iter().any(|(_, n)| n == q) {
                    return Err(NbdError::Refused {
                        what: format!("meta context {q}"),
                        code: 0,
                        message: "not offered by the server".into(),
                    });
                }
            }
        }
        let mut d = Vec::new();
        d.extend_from_slice(&(export.len() as u32).to_be_bytes());
        d.extend_from_slice(export.as_bytes());
        d.extend_from_slice(&0u16.to_be_bytes());
        c.send_option(OPT_GO, &d)?;
        let mut got_size = false;
        loop {
            let (ty, data) = c.read_option_reply(OPT_GO, &format!("export {export}"))?;
            match ty {
                REP_ACK => break,
                REP_INFO if data.len() >= 2 => {
                    if be16(&data) == INFO_EXPORT {
                        if data.len() < 12 {
                            return proto("short NBD_INFO_EXPORT");
                        }
                        c.size_bytes = be64(&data[2..]);
                        got_size = true;
                    }
                }
                _ => return proto(format!("unexpected reply {ty} to GO")),
            }
        }
        if !got_size {
            return proto("server did not send the export size");
        }
        Ok(c)
    }

    fn send_option(&mut self, opt: u32, data: &[u8]) -> Result<(), NbdError> {
        let mut m = Vec::with_capacity(16 + data.len());
        m.extend_from_slice(&IHAVEOPT.to_be_bytes());
        m.extend_from_slice(&opt.to_be_bytes());
        m.extend_from_slice(&(data.len() as u32).to_be_bytes());
        m.extend_from_slice(data);
        self.stream.write_all(&m)?;
        Ok(())
    }

    fn read_option_reply(&mut self, opt: u32, what: &str) -> Result<(u32, Vec<u8>), NbdError> {
        let mut h = [0u8; 20];
        self.stream.read_exact(&mut h)?;
        if be64(&h) != OPT_REPLY_MAGIC {
            return proto("bad option reply magic");
        }
        if be32(&h[8..]) != opt {
            return proto("option reply for another option");
        }
        let ty = be32(&h[12..]);
        let len = be32(&h[16..]) as usize;
        if len > MAX_PAYLOAD {
            return proto("option reply too long");
        }
        let mut data = vec![0u8; len];
        self.stream.read_exact(&mut data)?;
        if ty & (1 << 31) != 0 {
            return Err(NbdError::Refused {
                what: what.to_string(),
                code: ty,
                message: String::from_utf8_lossy(&data).into_owned(),
            });
        }
        Ok((ty, data))
    }

    /// Size of the export.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn request(&mut self, ty: u16, offset: u64, len: u32) -> Result<u64, NbdError> {
        let h = self.next_handle;
        self.next_handle += 1;
        let mut m = [0u8; 28];
        m[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        m[6..8].copy_from_slice(&ty.to_be_bytes());
        m[8..16].copy_from_slice(&h.to_be_bytes());
        m[16..24].copy_from_slice(&offset.to_be_bytes());
        m[24..28].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&m)?;
        Ok(h)
    }

    /// Reads the chunks of one structured (or simple) reply; `on_chunk(type, payload)`.
    fn replies(
        &mut self,
        handle: u64,
        simple: Option<(u64, usize)>,
        mut on_chunk: impl FnMut(u16, &[u8]) -> Result<(), NbdError>,
    ) -> Result<(), NbdError> {
        loop {
            let mut m = [0u8; 4];
            self.stream.read_exact(&mut m)?;
            match be32(&m) {
                SIMPLE_REPLY_MAGIC => {
                    let mut r = [0u8; 12];
                    self.stream.read_exact(&mut r)?;
                    if be64(&r[4..]) != handle {
                        return proto("reply to another request");
                    }
                    let err = be32(&r);
                    if err != 0 {
                        return Err(NbdError::Refused {
                            what: "request".into(),
                            code: err,
                            message: String::new(),
                        });
                    }
                    let Some((offset, len)) = simple else {
                        return proto("simple reply to a request that needs a structured one");
                    };
                    let mut p = Vec::with_capacity(8 + len);
                    p.extend_from_slice(&offset.to_be_bytes());
                    p.resize(8 + len, 0);
                    self.stream.read_exact(&mut p[8..])?;
                    return on_chunk(REPLY_TYPE_OFFSET_DATA, &p);
                }
                STRUCTURED_REPLY_MAGIC => {
                    let mut r = [0u8; 16];
                    self.stream.read_exact(&mut r)?;
                    let flags = be16(&r);
                    let ty = be16(&r[2..]);
                    if be64(&r[4..]) != handle {
                        return proto("reply to another request");
                    }
                    let len = be32(&r[12..]) as usize;
                    if len > MAX_PAYLOAD {
                        return proto("structured reply chunk too long");
                    }
                    let mut payload = vec![0u8; len];
                    self.stream.read_exact(&mut payload)?;
                    if ty & REPLY_TYPE_ERROR_BIT != 0 {
                        let code = if payload.len() >= 4 {
                            be32(&payload)
                        } else {
                            0
                        };
                        let msg = if payload.len() >= 6 {
                            let ml = (be16(&payload[4..]) as usize).min(payload.len() - 6);
                            String::from_utf8_lossy(&payload[6..6 + ml]).into_owned()
                        } else {
                            String::new()
                        };
                        return Err(NbdError::Refused {
                            what: "request".into(),
                            code,
                            message: msg,
                        });
                    }
                    on_chunk(ty, &payload)?;
                    if flags & REPLY_FLAG_DONE != 0 {
                        return Ok(());
                    }
                }
                _ => return proto("bad reply magic"),
            }
        }
    }

    /// Reads `buf.len()` bytes at `offset` (≤ [`MAX_READ`]).
    pub fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<(), NbdError> {
        if buf.len() > MAX_READ
            || offset
                .checked_add(buf.len() as u64)
                .is_none_or(|e| e > self.size_bytes)
        {
            return proto("read beyond the export or too large");
        }
        let h = self.request(CMD_READ, offset, buf.len() as u32)?;
        // Chunks must not overlap (NBD spec); otherwise summed lengths could reach `len` while
        // part of `buf` was never written.
        let mut written = BTreeMap::new();
        let mut covered = 0usize;
        let len = buf.len();
        self.replies(h, Some((offset, len)), |ty, p| {
            match ty {
                REPLY_TYPE_OFFSET_DATA => {
                    if p.len() < 8 {
                        return proto("short OFFSET_DATA");
                    }
                    let rel = be64(p)
                        .checked_sub(offset)
                        .ok_or(NbdError::Protocol("data before the request".into()))?
                        as usize;
                    let data = &p[8..];
                    let end = rel
                        .checked_add(data.len())
                        .filter(|&e| e <= len)
                        .ok_or(NbdError::Protocol("data beyond the request".into()))?;
                    claim(&mut written, rel, end)?;
                    buf[rel..end].copy_from_slice(data);
                    covered += data.len();
                }
                REPLY_TYPE_OFFSET_HOLE => {
                    if p.len() != 12 {
                        return proto("bad OFFSET_HOLE");
                    }
                    let rel = be64(p)
                        .checked_sub(offset)
                        .ok_or(NbdError::Protocol("hole before the request".into()))?
                        as usize;
                    let hl = be32(&p[8..]) as usize;
                    let end = rel
                        .checked_add(hl)
                        .filter(|&e| e <= len)
                        .ok_or(NbdError::Protocol("hole beyond the request".into()))?;
                    claim(&mut written, rel, end)?;
                    buf[rel..end].fill(0);
                    covered += hl;
                }
                REPLY_TYPE_NONE => {}
                t => return proto(format!("unexpected reply type {t} to READ")),
            }
            Ok(())
        })?;
        if covered != len {
            return proto(format!("read reply covered {covered} of {len} bytes"));
        }
        Ok(())
    }

    /// Extents of meta context `name` over `[offset, offset+len)`; repeats block-status
    /// requests until the whole range is described.
    pub fn block_status(
        &mut self,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<Extent>, NbdError> {
        let id = self
            .contexts
            .iter()
            .find(|(_, n)| n == name)
            .map(|(i, _)| *i)
            .ok_or_else(|| NbdError::Protocol(format!("meta context {name} was not negotiated")))?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= self.size_bytes)
            .ok_or(NbdError::Protocol("block status beyond the export".into()))?;
        let mut out: Vec<Extent> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let want = (end - pos).min(1 << 30) as u32;
            let h = self.request(CMD_BLOCK_STATUS, pos, want)?;
            let mut got = Vec::new();
            self.replies(h, None, |ty, p| {
                match ty {
                    REPLY_TYPE_BLOCK_STATUS => {
                        if p.len() < 4 || (p.len() - 4) % 8 != 0 {
                            return proto("bad BLOCK_STATUS chunk");
                        }
                        if be32(p) == id {
                            for e in p[4..].chunks_exact(8) {
                                got.push((be32(e) as u64, be32(&e[4..])));
                            }
                        }
                    }
                    REPLY_TYPE_NONE => {}
                    t => return proto(format!("unexpected reply type {t} to BLOCK_STATUS")),
                }
                Ok(())
            })?;
            if got.is_empty() {
                return proto("BLOCK_STATUS returned no extent");
            }
            for (l, f) in got {
                if l == 0 || pos >= end {
                    break;
                }
                let l = l.min(end - pos);
                out.push(Extent {
                    offset: pos,
                    length: l,
                    flags: f,
                });
                pos += l;
            }
        }
        Ok(out)
    }

    /// Ends the session politely.
    pub fn disconnect(mut self) {
        let _ = self.request(CMD_DISC, 0, 0);
    }
}

/// A [`DiskSource`] over one NBD connection (requests are serialised).
pub struct NbdSource {
    client: Mutex<NbdClient>,
    size_bytes: u64,
}

impl NbdSource {
    pub fn new(client: NbdClient) -> NbdSource {
        let size_bytes = client.size_bytes();
        NbdSource {
            client: Mutex::new(client),
            size_bytes,
        }
    }
}

impl DiskSource for NbdSource {
    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let mut c = self
            .client
            .lock()
            .map_err(|_| std::io::Error::other("NBD client poisoned"))?;
        for (i, part) in buf.chunks_mut(MAX_READ).enumerate() {
            c.read_at(part, offset + (i * MAX_READ) as u64)
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake server that replays `reply` and swallows what the client writes.
    struct Replay(std::io::Cursor<Vec<u8>>);
    impl Read for Replay {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(b)
        }
    }
    impl Write for Replay {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Server bytes: handshake of a 1 MiB export, then one structured READ reply (handle 1)
    /// made of OFFSET_DATA chunks `(offset, data)`.
    fn read_reply(chunks: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&NBDMAGIC.to_be_bytes());
        v.extend_from_slice(&IHAVEOPT.to_be_bytes());
        v.extend_from_slice(&3u16.to_be_bytes());
        let mut opt = |opt: u32, ty: u32, data: &[u8]| {
            v.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
            v.extend_from_slice(&opt.to_be_bytes());
            v.extend_from_slice(&ty.to_be_bytes());
            v.extend_from_slice(&(data.len() as u32).to_be_bytes());
            v.extend_from_slice(data);
        };
        opt(OPT_STRUCTURED_REPLY, REP_ACK, &[]);
        let mut info = INFO_EXPORT.to_be_bytes().to_vec();
        info.extend_from_slice(&(1u64 << 20).to_be_bytes());
        info.extend_from_slice(&0u16.to_be_bytes());
        opt(OPT_GO, REP_INFO, &info);
        opt(OPT_GO, REP_ACK, &[]);
        for (i, (offset, data)) in chunks.iter().enumerate() {
            let done = i + 1 == chunks.len();
            v.extend_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
            v.extend_from_slice(&(if done { REPLY_FLAG_DONE } else { 0 }).to_be_bytes());
            v.extend_from_slice(&REPLY_TYPE_OFFSET_DATA.to_be_bytes());
            v.extend_from_slice(&1u64.to_be_bytes());
            v.extend_from_slice(&(8 + data.len() as u32).to_be_bytes());
            v.extend_from_slice(&offset.to_be_bytes());
            v.extend_from_slice(data);
        }
        v
    }

    /// Found by fuzz/fuzz_targets/backup_nbd_replies.rs: two overlapping data chunks whose
    /// lengths add up to the request (156 + 101 = 257 bytes) were accepted, leaving bytes
    /// 0..4 and 195..257 of the buffer as they were before the read.
    #[test]
    fn overlapping_read_chunks_are_refused() {
        let server = read_reply(&[(39, vec![0x4e; 156]), (4, vec![0; 101])]);
        let mut c =
            NbdClient::handshake_over(Replay(std::io::Cursor::new(server)), "x", &[]).unwrap();
        let mut buf = vec![0xa5u8; 257];
        let err = c.read_at(&mut buf, 0).unwrap_err();
        assert!(err.to_string().contains("overlapping"), "{err}");

        // The same length in two adjacent chunks is a complete read.
        let server = read_reply(&[(128, vec![2; 129]), (0, vec![1; 128])]);
        let mut c =
            NbdClient::handshake_over(Replay(std::io::Cursor::new(server)), "x", &[]).unwrap();
        c.read_at(&mut buf, 0).unwrap();
        assert!(buf[..128].iter().all(|&b| b == 1) && buf[128..].iter().all(|&b| b == 2));
    }

    /// Feeds arbitrary bytes to the handshake and reply parsers: errors, never panics.
    #[test]
    fn garbage_from_server_never_panics() {
        struct Fake(std::io::Cursor<Vec<u8>>);
        impl Read for Fake {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.0.read(b)
            }
        }
        impl Write for Fake {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut seed = 7u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..2000 {
            let mut v = Vec::new();
            v.extend_from_slice(&NBDMAGIC.to_be_bytes());
            v.extend_from_slice(&IHAVEOPT.to_be_bytes());
            v.extend_from_slice(&3u16.to_be_bytes());
            // Plausible option replies with random types/lengths, then random bytes.
            for _ in 0..(round % 5) {
                v.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
                v.extend_from_slice(
                    &[OPT_STRUCTURED_REPLY, OPT_SET_META_CONTEXT, OPT_GO][(rnd() % 3) as usize]
                        .to_be_bytes(),
                );
                v.extend_from_slice(&((rnd() % 5) as u32).to_be_bytes());
                let l = (rnd() % 24) as u32;
                v.extend_from_slice(&l.to_be_bytes());
                for _ in 0..l {
                    v.push(rnd() as u8);
                }
            }
            for _ in 0..(rnd() % 64) {
                v.push(rnd() as u8);
            }
            let ctx = vec!["qemu:dirty-bitmap:b".to_string()];
            if let Ok(mut c) = NbdClient::handshake(
                Box::new(Fake(std::io::Cursor::new(v))),
                "x",
                if round % 2 == 0 { &ctx } else { &[] },
            ) {
                let mut buf = vec![0u8; 4096];
                let _ = c.read_at(&mut buf, 0);
                let _ = c.block_status("qemu:dirty-bitmap:b", 0, 4096);
            }
        }
    }
}
