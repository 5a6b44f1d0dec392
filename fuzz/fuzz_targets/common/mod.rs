//! Helpers shared by the fuzz targets: a byte reader over the fuzz input, a generator of
//! QEVM-shaped migration streams, and a JSON comparison that tolerates serde_json's text
//! float parsing (which may differ from the printed value in the last bit).
#![allow(dead_code)]

/// Reads fields off the fuzz input; past its end every read yields zeros.
pub struct Input<'a> {
    pub data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        (self.u32() as u64) | ((self.u32() as u64) << 32)
    }
    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Appends a RAM entry header: `offset | flags` (big endian), then the block name unless
/// `block` is `None` (CONTINUE).
fn ram_entry(out: &mut Vec<u8>, offset: u64, f: u64, block: Option<&[u8]>) {
    use novacron_migrate::qevm::flags;
    let cont = if block.is_none() { flags::CONTINUE } else { 0 };
    out.extend_from_slice(&(offset | f | cont).to_be_bytes());
    if let Some(b) = block {
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
}

/// A migration stream shaped like QEMU 7.2's (header, configuration, ram START with a block
/// list, then PART sections of PAGE/ZERO/odd entries, command records and a device section),
/// steered by `inp`, so the parser's recognising paths are reached, not only pass-through.
pub fn qevm_stream(inp: &mut Input<'_>) -> Vec<u8> {
    use novacron_migrate::qevm::{MAGIC, PAGE_BYTES, VERSION, flags};
    let mut s = Vec::new();
    s.extend_from_slice(&MAGIC.to_be_bytes());
    s.extend_from_slice(&VERSION.to_be_bytes());
    s.push(0x07); // configuration
    s.extend_from_slice(&10u32.to_be_bytes());
    s.extend_from_slice(b"pc-q35-7.2");
    s.push(0x01); // section start
    s.extend_from_slice(&2u32.to_be_bytes());
    s.push(3);
    s.extend_from_slice(b"ram");
    s.extend_from_slice(&0u32.to_be_bytes());
    s.extend_from_slice(&4u32.to_be_bytes());
    let blocks: [(&[u8], u64); 2] = [(b"pc.ram", 1 << 20), (b"pc.bios", 1 << 16)];
    let total: u64 = blocks.iter().map(|b| b.1).sum();
    s.extend_from_slice(&(total | flags::MEM_SIZE).to_be_bytes());
    for (n, l) in blocks {
        s.push(n.len() as u8);
        s.extend_from_slice(n);
        s.extend_from_slice(&l.to_be_bytes());
    }
    s.extend_from_slice(&flags::EOS.to_be_bytes());
    s.push(0x7e);
    s.extend_from_slice(&2u32.to_be_bytes());
    let mut ops = 0;
    while !inp.is_empty() && ops < 64 {
        ops += 1;
        match inp.u8() % 8 {
            // A PART with a few entries.
            0..=4 => {
                s.push(0x02);
                s.extend_from_slice(&2u32.to_be_bytes());
                let n = 1 + inp.u8() % 4;
                let mut have_block = false;
                for _ in 0..n {
                    let c = inp.u8();
                    let block: &[u8] = if c & 0x80 == 0 { b"pc.ram" } else { b"pc.bios" };
                    let name = if have_block && c & 0x40 != 0 {
                        None
                    } else {
                        Some(block)
                    };
                    have_block = true;
                    let page = (inp.u16() as u64 % 256) * PAGE_BYTES as u64;
                    match c % 4 {
                        0 => {
                            ram_entry(&mut s, page, flags::ZERO, name);
                            s.push(if c & 0x20 != 0 { 0 } else { inp.u8() });
                        }
                        1 | 2 => {
                            ram_entry(&mut s, page, flags::PAGE, name);
                            let fill = inp.u8();
                            let sample = inp.bytes(16);
                            let start = s.len();
                            s.resize(start + PAGE_BYTES, fill);
                            for (i, b) in sample.iter().enumerate() {
                                s[start + (i * 251) % PAGE_BYTES] = *b;
                            }
                        }
                        _ => {
                            // XBZRLE entries stay literal.
                            ram_entry(&mut s, page, flags::XBZRLE, name);
                            s.push(1);
                            let d = inp.bytes(8);
                            s.extend_from_slice(&(d.len() as u16).to_be_bytes());
                            s.extend_from_slice(d);
                        }
                    }
                }
                s.extend_from_slice(&flags::EOS.to_be_bytes());
                if inp.u8() & 1 == 0 {
                    s.push(0x7e);
                    s.extend_from_slice(&2u32.to_be_bytes());
                }
            }
            // A command record.
            5 => {
                s.push(0x08);
                s.extend_from_slice(&3u16.to_be_bytes());
                let d = inp.bytes(6);
                s.extend_from_slice(&(d.len() as u16).to_be_bytes());
                s.extend_from_slice(d);
            }
            // Raw bytes from the input (may be anything).
            6 => {
                let n = inp.u8() as usize % 32;
                s.extend_from_slice(inp.bytes(n));
            }
            // A device section and EOF: the rest is opaque.
            _ => {
                s.push(0x04);
                s.extend_from_slice(&0u32.to_be_bytes());
                s.push(5);
                s.extend_from_slice(b"timer");
                s.extend_from_slice(&0u32.to_be_bytes());
                s.extend_from_slice(&2u32.to_be_bytes());
                s.extend_from_slice(inp.bytes(16));
                s.push(0x00);
            }
        }
    }
    s
}

/// Whether two JSON values are equal, numbers compared with a relative tolerance of 1e-12.
pub fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x == y {
                return true;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => (p - q).abs() <= 1e-12 * p.abs().max(q.abs()),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_close(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}
