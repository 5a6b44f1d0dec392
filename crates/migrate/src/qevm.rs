//! Incremental parser of QEMU's migration stream (QEVM version 3), finding the RAM pages in it.
//!
//! The source side reads the stream QEMU writes and must hand each RAM page to HDE while
//! keeping every other byte exactly as it was. The parser is a push parser: [`Parser::feed`]
//! takes bytes in chunks of any size and reports, in stream order, [`Sink::literal`] bytes
//! (to reproduce verbatim), [`Sink::page`] entries (a RAM page: header fields + 4 KiB of data)
//! and [`Sink::zero`] entries (a zero page). A page entry's header is fully determined by its
//! fields, so the destination renders it again byte for byte ([`render_page_header`]).
//!
//! What is parsed (QEMU 7.2, see migration/savevm.c and migration/ram.c):
//! - the header: magic `QEVM`, version 3, and the `configuration` section (machine name and its
//!   known subsections);
//! - sections START/PART/END of the `ram` section: entries of a big-endian u64 `offset | flags`,
//!   then per flag: MEM_SIZE (the RAM block list), ZERO (one fill byte), PAGE (4096 bytes), EOS,
//!   XBZRLE and COMPRESS_PAGE (kept literal), MULTIFD_FLUSH; a block name follows the u64 unless
//!   CONTINUE is set; each section ends with the optional footer `0x7e` + section id;
//! - COMMAND records (`0x08`, be16 command, be16 length, data). Post-copy's commands (ADVISE,
//!   LISTEN, RUN, RAM_DISCARD, PING) are such records; PACKAGED (7) carries a be32 length and
//!   is followed by that many bytes of a wrapped stream (LISTEN, the device state, RUN), which
//!   stays literal; parsing goes on after it, so the pages the source sends after the switch
//!   (background pages and the ones the destination asked for) are recognised again.
//!
//! Anything else (the first device section, `EOF`, an unknown section or flag) switches the
//! parser to pass-through: every following byte is literal. That is always correct (the bytes
//! still arrive unchanged), only less compact, so the parser never has to guess.

/// Target page size of x86-64 guests; RAM entries carry pages of exactly this size.
pub const PAGE_BYTES: usize = 4096;
/// `QEVM`.
pub const MAGIC: u32 = 0x5145_564d;
/// Stream version written by every QEMU since 2.x.
pub const VERSION: u32 = 3;

const SECTION_EOF: u8 = 0x00;
const SECTION_START: u8 = 0x01;
const SECTION_PART: u8 = 0x02;
const SECTION_END: u8 = 0x03;
const SECTION_FULL: u8 = 0x04;
const SUBSECTION: u8 = 0x05;
const CONFIGURATION: u8 = 0x07;
const COMMAND: u8 = 0x08;
const SECTION_FOOTER: u8 = 0x7e;
/// MIG_CMD_PACKAGED: be32 length, then a wrapped stream of that length.
pub const CMD_PACKAGED: u16 = 7;

/// RAM entry flags (low 12 bits of the u64).
pub mod flags {
    pub const ZERO: u64 = 0x02;
    pub const MEM_SIZE: u64 = 0x04;
    pub const PAGE: u64 = 0x08;
    pub const EOS: u64 = 0x10;
    pub const CONTINUE: u64 = 0x20;
    pub const XBZRLE: u64 = 0x40;
    pub const HOOK: u64 = 0x80;
    pub const COMPRESS_PAGE: u64 = 0x100;
    pub const MULTIFD_FLUSH: u64 = 0x200;
    /// Bits of the u64 that are flags rather than the page offset.
    pub const MASK: u64 = 0xfff;
}

/// The fields of a ZERO or PAGE entry header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader<'a> {
    /// Offset of the page in its RAM block (a multiple of 4096).
    pub offset: u64,
    /// CONTINUE: same RAM block as the previous entry, so no block name follows.
    pub cont: bool,
    /// The RAM block's id string (known even when `cont`, from the earlier entry).
    pub block: &'a [u8],
}

/// Receives what the parser finds, in stream order.
pub trait Sink {
    /// Bytes to reproduce verbatim.
    fn literal(&mut self, bytes: &[u8]);
    /// A PAGE entry with its 4096 data bytes.
    fn page(&mut self, header: PageHeader<'_>, data: &[u8]);
    /// A ZERO entry whose fill byte is 0.
    fn zero(&mut self, header: PageHeader<'_>);
}

/// Appends the exact header bytes QEMU writes for an entry of type `kind` (flags::PAGE or flags::ZERO).
pub fn render_page_header(out: &mut Vec<u8>, kind: u64, h: &PageHeader<'_>) {
    let mut v = (h.offset & !flags::MASK) | kind;
    if h.cont {
        v |= flags::CONTINUE;
    }
    out.extend_from_slice(&v.to_be_bytes());
    if !h.cont {
        out.push(h.block.len() as u8);
        out.extend_from_slice(h.block);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting magic and version.
    Header,
    /// After the header: configuration or the first section.
    AfterHeader,
    /// Inside the configuration: optional subsections.
    ConfigSubsections,
    /// At a section type byte.
    Section,
    /// Inside the ram section: at an entry.
    RamEntry,
    /// Inside the MEM_SIZE block list: bytes of blocks still to list.
    RamBlockList { remaining: u64 },
    /// After the ram section's EOS: optional footer.
    Footer,
    /// Inside a PACKAGED blob: bytes still to pass literally, then sections again.
    Package { remaining: u64 },
    /// Everything from here on is literal.
    PassThrough,
}

/// Why the parser switched to pass-through (for logs and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassThroughReason {
    BadMagic,
    UnknownSubsection(String),
    Section(String),
    EndOfStream,
    UnknownRamFlags(u64),
    UnknownSectionType(u8),
    BlockList,
    ContinueWithoutBlock,
}

/// Counters of what the parser saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParseStats {
    pub bytes: u64,
    pub pages: u64,
    pub zero_pages: u64,
    pub literal_bytes: u64,
    /// Passes over RAM seen (ram sections started or continued).
    pub ram_sections: u64,
    /// PACKAGED blobs seen (one per switch to post-copy).
    pub packages: u64,
}

/// The push parser. See the [module docs](self).
#[derive(Debug)]
pub struct Parser {
    state: State,
    pending: Vec<u8>,
    ram_section_id: Option<u32>,
    current_block: Vec<u8>,
    /// RAM blocks listed by MEM_SIZE: (id string, used length).
    blocks: Vec<(Vec<u8>, u64)>,
    pass_through: Option<PassThroughReason>,
    stats: ParseStats,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

/// Outcome of one parsing step.
enum Step {
    /// Not enough bytes yet.
    Need,
    /// `n` bytes consumed (already reported to the sink).
    Done(usize),
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

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Parser {
        Parser {
            state: State::Header,
            pending: Vec::new(),
            ram_section_id: None,
            current_block: Vec::new(),
            blocks: Vec::new(),
            pass_through: None,
            stats: ParseStats::default(),
        }
    }

    /// What was seen so far.
    pub fn stats(&self) -> &ParseStats {
        &self.stats
    }

    /// Why the parser stopped recognising entries, if it did.
    pub fn pass_through_reason(&self) -> Option<&PassThroughReason> {
        self.pass_through.as_ref()
    }

    /// RAM blocks listed by the stream so far: (id string, bytes).
    pub fn ram_blocks(&self) -> &[(Vec<u8>, u64)] {
        &self.blocks
    }

    /// Bytes held back because they end in the middle of an entry.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Parses `input` (any chunk of the stream), reporting complete items to `sink`.
    pub fn feed(&mut self, input: &[u8], sink: &mut impl Sink) {
        self.stats.bytes += input.len() as u64;
        if self.state == State::PassThrough && self.pending.is_empty() {
            self.stats.literal_bytes += input.len() as u64;
            sink.literal(input);
            return;
        }
        self.pending.extend_from_slice(input);
        let buf = std::mem::take(&mut self.pending);
        let mut pos = 0;
        while pos < buf.len() {
            match self.step(&buf[pos..], sink) {
                Step::Need => break,
                Step::Done(n) => pos += n,
            }
        }
        self.pending = buf;
        self.pending.drain(..pos);
    }

    /// At the end of the stream: reports bytes held back (an incomplete last entry) as literal.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        if !self.pending.is_empty() {
            self.stats.literal_bytes += self.pending.len() as u64;
            sink.literal(&self.pending);
            self.pending.clear();
        }
    }

    fn lit(&mut self, sink: &mut impl Sink, b: &[u8]) -> Step {
        self.stats.literal_bytes += b.len() as u64;
        sink.literal(b);
        Step::Done(b.len())
    }

    fn pass(&mut self, reason: PassThroughReason) {
        tracing::debug!(?reason, "migration stream parser passes the rest through");
        self.pass_through = Some(reason);
        self.state = State::PassThrough;
    }

    fn step(&mut self, b: &[u8], sink: &mut impl Sink) -> Step {
        match self.state {
            State::PassThrough => self.lit(sink, b),
            State::Header => {
                if b.len() < 8 {
                    return Step::Need;
                }
                if be32(b) != MAGIC || be32(&b[4..]) != VERSION {
                    self.pass(PassThroughReason::BadMagic);
                    return Step::Done(0);
                }
                self.state = State::AfterHeader;
                self.lit(sink, &b[..8])
            }
            State::AfterHeader => {
                if b[0] != CONFIGURATION {
                    self.state = State::Section;
                    return Step::Done(0);
                }
                if b.len() < 5 {
                    return Step::Need;
                }
                let n = 5 + be32(&b[1..]) as usize;
                if b.len() < n {
                    return Step::Need;
                }
                self.state = State::ConfigSubsections;
                self.lit(sink, &b[..n])
            }
            State::ConfigSubsections => {
                if b[0] != SUBSECTION {
                    self.state = State::Section;
                    return Step::Done(0);
                }
                if b.len() < 2 {
                    return Step::Need;
                }
                let name_len = b[1] as usize;
                let head = 2 + name_len + 4;
                if b.len() < head {
                    return Step::Need;
                }
                let name = &b[2..2 + name_len];
                let body = match name {
                    b"configuration/target-page-bits" => Some(4),
                    b"configuration/uuid" => Some(16),
                    b"configuration/capabilities" => {
                        if b.len() < head + 4 {
                            return Step::Need;
                        }
                        let count = be32(&b[head..]) as usize;
                        let mut at = head + 4;
                        for _ in 0..count {
                            let Some(&l) = b.get(at) else {
                                return Step::Need;
                            };
                            at += 1 + l as usize;
                        }
                        Some(at - head)
                    }
                    _ => None,
                };
                match body {
                    Some(body) => {
                        if b.len() < head + body {
                            return Step::Need;
                        }
                        self.lit(sink, &b[..head + body])
                    }
                    None => {
                        let name = String::from_utf8_lossy(name).into_owned();
                        self.pass(PassThroughReason::UnknownSubsection(name));
                        Step::Done(0)
                    }
                }
            }
            State::Section => self.section(b, sink),
            State::Package { remaining } => {
                if remaining == 0 {
                    self.state = State::Section;
                    return Step::Done(0);
                }
                let n = (b.len() as u64).min(remaining) as usize;
                self.state = State::Package {
                    remaining: remaining - n as u64,
                };
                self.lit(sink, &b[..n])
            }
            State::Footer => {
                if b[0] != SECTION_FOOTER {
                    self.state = State::Section;
                    return Step::Done(0);
                }
                if b.len() < 5 {
                    return Step::Need;
                }
                self.state = State::Section;
                self.lit(sink, &b[..5])
            }
            State::RamBlockList { remaining } => {
                if remaining == 0 {
                    self.state = State::RamEntry;
                    return Step::Done(0);
                }
                let name_len = b[0] as usize;
                let n = 1 + name_len + 8;
                if b.len() < n {
                    return Step::Need;
                }
                let used = be64(&b[1 + name_len..]);
                match remaining.checked_sub(used) {
                    Some(rest) => {
                        self.blocks.push((b[1..1 + name_len].to_vec(), used));
                        self.state = State::RamBlockList { remaining: rest };
                        self.lit(sink, &b[..n])
                    }
                    None => {
                        self.pass(PassThroughReason::BlockList);
                        Step::Done(0)
                    }
                }
            }
            State::RamEntry => self.ram_entry(b, sink),
        }
    }

    fn section(&mut self, b: &[u8], sink: &mut impl Sink) -> Step {
        match b[0] {
            SECTION_START | SECTION_FULL => {
                if b.len() < 6 {
                    return Step::Need;
                }
                let id = be32(&b[1..]);
                let name_len = b[5] as usize;
                let n = 6 + name_len + 8;
                if b.len() < n {
                    return Step::Need;
                }
                let name = &b[6..6 + name_len];
                if b[0] == SECTION_START && name == b"ram" {
                    self.ram_section_id = Some(id);
                    self.stats.ram_sections += 1;
                    self.state = State::RamEntry;
                    self.current_block.clear();
                    self.lit(sink, &b[..n])
                } else {
                    let name = String::from_utf8_lossy(name).into_owned();
                    self.pass(PassThroughReason::Section(name));
                    Step::Done(0)
                }
            }
            SECTION_PART | SECTION_END => {
                if b.len() < 5 {
                    return Step::Need;
                }
                let id = be32(&b[1..]);
                if Some(id) == self.ram_section_id {
                    self.stats.ram_sections += 1;
                    self.state = State::RamEntry;
                    self.lit(sink, &b[..5])
                } else {
                    self.pass(PassThroughReason::Section(format!("section id {id}")));
                    Step::Done(0)
                }
            }
            COMMAND => {
                if b.len() < 5 {
                    return Step::Need;
                }
                let n = 5 + be16(&b[3..]) as usize;
                if b.len() < n {
                    return Step::Need;
                }
                if be16(&b[1..]) == CMD_PACKAGED && n == 9 {
                    self.stats.packages += 1;
                    self.state = State::Package {
                        remaining: be32(&b[5..]) as u64,
                    };
                }
                self.lit(sink, &b[..n])
            }
            SECTION_EOF => {
                self.pass(PassThroughReason::EndOfStream);
                Step::Done(0)
            }
            other => {
                self.pass(PassThroughReason::UnknownSectionType(other));
                Step::Done(0)
            }
        }
    }

    fn ram_entry(&mut self, b: &[u8], sink: &mut impl Sink) -> Step {
        if b.len() < 8 {
            return Step::Need;
        }
        let v = be64(b);
        let f = v & flags::MASK;
        let offset = v & !flags::MASK;
        let cont = f & flags::CONTINUE != 0;
        let kind = f & !flags::CONTINUE;
        match kind {
            flags::MEM_SIZE => {
                self.state = State::RamBlockList { remaining: offset };
                return self.lit(sink, &b[..8]);
            }
            flags::EOS => {
                self.state = State::Footer;
                return self.lit(sink, &b[..8]);
            }
            flags::MULTIFD_FLUSH => return self.lit(sink, &b[..8]),
            flags::ZERO | flags::PAGE | flags::XBZRLE | flags::COMPRESS_PAGE => {}
            _ => {
                self.pass(PassThroughReason::UnknownRamFlags(f));
                return Step::Done(0);
            }
        }
        // Block name, unless CONTINUE.
        let mut at = 8;
        let name_range = if cont {
            if self.current_block.is_empty() {
                self.pass(PassThroughReason::ContinueWithoutBlock);
                return Step::Done(0);
            }
            None
        } else {
            let Some(&l) = b.get(8) else {
                return Step::Need;
            };
            at = 9 + l as usize;
            Some(9..at)
        };
        let total = match kind {
            flags::ZERO => at + 1,
            flags::PAGE => at + PAGE_BYTES,
            flags::XBZRLE => {
                if b.len() < at + 3 {
                    return Step::Need;
                }
                at + 3 + be16(&b[at + 1..]) as usize
            }
            _ => {
                // COMPRESS_PAGE: be32 length + data.
                if b.len() < at + 4 {
                    return Step::Need;
                }
                at + 4 + be32(&b[at..]) as usize
            }
        };
        if b.len() < total {
            return Step::Need;
        }
        if let Some(r) = name_range {
            self.current_block.clear();
            self.current_block.extend_from_slice(&b[r]);
        }
        let header = PageHeader {
            offset,
            cont,
            block: &self.current_block,
        };
        match kind {
            flags::PAGE => {
                self.stats.pages += 1;
                sink.page(header, &b[at..total]);
                Step::Done(total)
            }
            flags::ZERO if b[at] == 0 => {
                self.stats.zero_pages += 1;
                sink.zero(header);
                Step::Done(total)
            }
            _ => self.lit(sink, &b[..total]),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Rebuilds the stream from what the parser reports.
    #[derive(Default)]
    struct Rebuild {
        out: Vec<u8>,
        pages: usize,
        zeros: usize,
    }

    impl Sink for Rebuild {
        fn literal(&mut self, b: &[u8]) {
            self.out.extend_from_slice(b);
        }
        fn page(&mut self, h: PageHeader<'_>, data: &[u8]) {
            assert_eq!(data.len(), PAGE_BYTES);
            render_page_header(&mut self.out, flags::PAGE, &h);
            self.out.extend_from_slice(data);
            self.pages += 1;
        }
        fn zero(&mut self, h: PageHeader<'_>) {
            render_page_header(&mut self.out, flags::ZERO, &h);
            self.out.push(0);
            self.zeros += 1;
        }
    }

    pub(crate) fn entry(out: &mut Vec<u8>, offset: u64, f: u64, block: Option<&[u8]>) {
        let cont = if block.is_none() { flags::CONTINUE } else { 0 };
        out.extend_from_slice(&(offset | f | cont).to_be_bytes());
        if let Some(b) = block {
            out.push(b.len() as u8);
            out.extend_from_slice(b);
        }
    }

    /// A small stream shaped like QEMU 7.2's: header, configuration, ram START with the block
    /// list, pages, a PART, an END, a device section and EOF with trailing bytes.
    pub(crate) fn sample_stream(seed: u8) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&MAGIC.to_be_bytes());
        s.extend_from_slice(&VERSION.to_be_bytes());
        s.push(CONFIGURATION);
        s.extend_from_slice(&10u32.to_be_bytes());
        s.extend_from_slice(b"pc-q35-7.2");
        s.push(SECTION_START);
        s.extend_from_slice(&2u32.to_be_bytes());
        s.push(3);
        s.extend_from_slice(b"ram");
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend_from_slice(&4u32.to_be_bytes());
        let blocks: [(&[u8], u64); 2] = [(b"pc.ram", 1 << 20), (b"pc.bios", 8192)];
        let total: u64 = blocks.iter().map(|b| b.1).sum();
        s.extend_from_slice(&(total | flags::MEM_SIZE).to_be_bytes());
        for (n, l) in blocks {
            s.push(n.len() as u8);
            s.extend_from_slice(n);
            s.extend_from_slice(&l.to_be_bytes());
        }
        s.extend_from_slice(&flags::EOS.to_be_bytes());
        s.push(SECTION_FOOTER);
        s.extend_from_slice(&2u32.to_be_bytes());
        // PART with pages and zeros.
        s.push(SECTION_PART);
        s.extend_from_slice(&2u32.to_be_bytes());
        entry(&mut s, 0, flags::ZERO, Some(b"pc.ram"));
        s.push(0);
        for i in 1..6u64 {
            entry(&mut s, i * 4096, flags::PAGE, None);
            s.extend((0..PAGE_BYTES).map(|j| (j as u8).wrapping_mul(seed).wrapping_add(i as u8)));
        }
        entry(&mut s, 0, flags::PAGE, Some(b"pc.bios"));
        s.extend(std::iter::repeat_n(seed, PAGE_BYTES));
        // A ZERO entry with a non-zero fill byte stays literal.
        entry(&mut s, 4096, flags::ZERO, None);
        s.push(7);
        // An XBZRLE entry stays literal.
        entry(&mut s, 8 * 4096, flags::XBZRLE, Some(b"pc.ram"));
        s.push(1);
        s.extend_from_slice(&3u16.to_be_bytes());
        s.extend_from_slice(&[1, 2, 3]);
        s.extend_from_slice(&flags::EOS.to_be_bytes());
        s.push(SECTION_FOOTER);
        s.extend_from_slice(&2u32.to_be_bytes());
        // A command record between sections.
        s.push(COMMAND);
        s.extend_from_slice(&3u16.to_be_bytes());
        s.extend_from_slice(&4u16.to_be_bytes());
        s.extend_from_slice(&[9, 9, 9, 9]);
        // A post-copy package (LISTEN, device state, RUN), opaque, then more RAM parts.
        let mut blob = vec![COMMAND, 0, 4, 0, 0, SECTION_FULL];
        blob.extend_from_slice(&[0, 0, 0, 9, 3, b'c', b'p', b'u', 0, 0, 0, 1, 0xaa]);
        blob.extend_from_slice(&[COMMAND, 0, 5, 0, 0]);
        s.push(COMMAND);
        s.extend_from_slice(&CMD_PACKAGED.to_be_bytes());
        s.extend_from_slice(&4u16.to_be_bytes());
        s.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        s.extend_from_slice(&blob);
        s.push(SECTION_PART);
        s.extend_from_slice(&2u32.to_be_bytes());
        entry(&mut s, 10 * 4096, flags::PAGE, Some(b"pc.ram"));
        s.extend(std::iter::repeat_n(seed ^ 0x33, PAGE_BYTES));
        s.extend_from_slice(&flags::EOS.to_be_bytes());
        // END.
        s.push(SECTION_END);
        s.extend_from_slice(&2u32.to_be_bytes());
        entry(&mut s, 9 * 4096, flags::PAGE, None);
        s.extend(std::iter::repeat_n(seed ^ 0x55, PAGE_BYTES));
        s.extend_from_slice(&flags::EOS.to_be_bytes());
        s.push(SECTION_FOOTER);
        s.extend_from_slice(&2u32.to_be_bytes());
        // Device state: opaque to the parser.
        s.push(SECTION_FULL);
        s.extend_from_slice(&0u32.to_be_bytes());
        s.push(5);
        s.extend_from_slice(b"timer");
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend_from_slice(&2u32.to_be_bytes());
        s.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 0x08, 0x7e]);
        s.push(SECTION_EOF);
        s.extend_from_slice(b"\x06\x00\x00\x00\x02{}");
        s
    }

    fn parse_in_chunks(stream: &[u8], chunk: usize) -> (Rebuild, Parser) {
        let mut p = Parser::new();
        let mut r = Rebuild::default();
        for c in stream.chunks(chunk.max(1)) {
            p.feed(c, &mut r);
        }
        p.finish(&mut r);
        (r, p)
    }

    #[test]
    fn finds_pages_and_rebuilds_exactly_at_any_chunking() {
        let s = sample_stream(3);
        for chunk in [1, 2, 3, 7, 64, 4095, 4096, 4097, 100_000] {
            let (r, p) = parse_in_chunks(&s, chunk);
            assert_eq!(r.out, s, "chunk {chunk}");
            assert_eq!(r.pages, 8, "chunk {chunk}");
            assert_eq!(p.stats().packages, 1, "chunk {chunk}");
            assert_eq!(r.zeros, 1, "chunk {chunk}");
            assert_eq!(p.ram_blocks().len(), 2);
            assert_eq!(
                p.pass_through_reason(),
                Some(&PassThroughReason::Section("timer".into()))
            );
        }
    }

    #[test]
    fn garbage_passes_through_unchanged() {
        let (r, p) = parse_in_chunks(b"not a migration stream at all", 5);
        assert_eq!(r.out, b"not a migration stream at all");
        assert_eq!(p.pass_through_reason(), Some(&PassThroughReason::BadMagic));
    }

    #[test]
    fn truncated_stream_is_flushed_by_finish() {
        let s = sample_stream(9);
        for cut in [3, 20, 60, 200, 5000, s.len() - 1] {
            let (r, _) = parse_in_chunks(&s[..cut], 13);
            assert_eq!(r.out, &s[..cut], "cut {cut}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_rebuild_exactly(
            prefix in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20_000),
            chunk in 1usize..5000,
            keep_header in proptest::prelude::any::<bool>(),
        ) {
            let mut s = if keep_header { sample_stream(1)[..40].to_vec() } else { Vec::new() };
            s.extend_from_slice(&prefix);
            s.extend_from_slice(&tail);
            let (r, _) = parse_in_chunks(&s, chunk);
            proptest::prop_assert_eq!(r.out, s);
        }

        #[test]
        fn corrupted_sample_rebuilds_exactly(
            flips in proptest::collection::vec((0usize..40_000, proptest::prelude::any::<u8>()), 1..8),
            chunk in 1usize..9000,
        ) {
            let mut s = sample_stream(5);
            for (at, v) in flips {
                let n = s.len();
                s[at % n] = v;
            }
            let (r, _) = parse_in_chunks(&s, chunk);
            proptest::prop_assert_eq!(r.out, s);
        }
    }
}
