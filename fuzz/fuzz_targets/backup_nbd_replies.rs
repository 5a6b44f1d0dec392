//! Fuzzes the backup NBD client (crates/backup/src/nbd.rs) against a fake server whose bytes
//! come from the input: the handshake (option replies), READ replies (simple and structured:
//! data, holes, errors) and BLOCK_STATUS replies. Two modes, chosen by the first byte:
//! - raw: arbitrary server bytes; the client must fail cleanly, never panic;
//! - shaped: a valid handshake, then replies generated from the input with correct handles.
//!   Properties: a `read_at` that succeeds had every byte of the buffer written by a reply
//!   chunk (none left stale), and the bytes equal what the server sent there; a `block_status`
//!   that succeeds returns contiguous, non-empty extents covering exactly the asked range.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::io::{Cursor, Read, Write};

use common::Input;
use libfuzzer_sys::fuzz_target;
use novacron_backup::nbd::NbdClient;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;
const EXPORT_BYTES: u64 = 1 << 20;
const CONTEXT: &str = "qemu:dirty-bitmap:b";

struct Fake(Cursor<Vec<u8>>);
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

fn option_reply(s: &mut Vec<u8>, opt: u32, ty: u32, data: &[u8]) {
    s.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
    s.extend_from_slice(&opt.to_be_bytes());
    s.extend_from_slice(&ty.to_be_bytes());
    s.extend_from_slice(&(data.len() as u32).to_be_bytes());
    s.extend_from_slice(data);
}

fn handshake(s: &mut Vec<u8>) {
    s.extend_from_slice(&NBDMAGIC.to_be_bytes());
    s.extend_from_slice(&IHAVEOPT.to_be_bytes());
    s.extend_from_slice(&3u16.to_be_bytes());
    option_reply(s, 8, 1, &[]);
    let mut ctx = 1u32.to_be_bytes().to_vec();
    ctx.extend_from_slice(CONTEXT.as_bytes());
    option_reply(s, 10, 4, &ctx);
    option_reply(s, 10, 1, &[]);
    let mut info = 0u16.to_be_bytes().to_vec();
    info.extend_from_slice(&EXPORT_BYTES.to_be_bytes());
    info.extend_from_slice(&0u16.to_be_bytes());
    option_reply(s, 7, 3, &info);
    option_reply(s, 7, 1, &[]);
}

fn chunk(s: &mut Vec<u8>, done: bool, ty: u16, handle: u64, payload: &[u8]) {
    s.extend_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    s.extend_from_slice(&(done as u16).to_be_bytes());
    s.extend_from_slice(&ty.to_be_bytes());
    s.extend_from_slice(&handle.to_be_bytes());
    s.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    s.extend_from_slice(payload);
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let ctx = vec![CONTEXT.to_string()];
    if mode & 1 == 0 {
        let mut s = Vec::new();
        if mode & 2 != 0 {
            handshake(&mut s);
        }
        s.extend_from_slice(inp.rest());
        let meta: &[String] = if mode & 4 != 0 { &ctx } else { &[] };
        if let Ok(mut c) = NbdClient::handshake_over(Fake(Cursor::new(s)), "x", meta) {
            let mut buf = vec![0u8; 4096];
            let _ = c.read_at(&mut buf, 0);
            let _ = c.block_status(CONTEXT, 0, 4096);
        }
        return;
    }

    let mut s = Vec::new();
    handshake(&mut s);
    // READ of `len` bytes at `offset`, handle 1; the model tracks what the server wrote.
    let offset = (inp.u32() as u64) % EXPORT_BYTES;
    let len = ((inp.u16() as u64) % 8192 + 1).min(EXPORT_BYTES - offset) as usize;
    let mut model: Vec<Option<u8>> = vec![None; len];
    let n = 1 + inp.u8() % 6;
    for i in 0..n {
        let done = i + 1 == n;
        let c = inp.u8();
        let rel = (inp.u16() as usize) % (len + 16);
        match c % 6 {
            0 | 1 => {
                let d = (inp.u16() as usize) % (len + 16);
                let fill = inp.u8();
                let mut p = (offset + rel as u64).to_be_bytes().to_vec();
                p.extend((0..d).map(|j| fill.wrapping_add(j as u8)));
                chunk(&mut s, done, 1, 1, &p);
                if rel + d <= len {
                    for j in 0..d {
                        model[rel + j] = Some(fill.wrapping_add(j as u8));
                    }
                }
            }
            2 => {
                let hl = (inp.u16() as u32) % (len as u32 + 16);
                let mut p = (offset + rel as u64).to_be_bytes().to_vec();
                p.extend_from_slice(&hl.to_be_bytes());
                chunk(&mut s, done, 2, 1, &p);
                if rel + hl as usize <= len {
                    for m in &mut model[rel..rel + hl as usize] {
                        *m = Some(0);
                    }
                }
            }
            3 => chunk(&mut s, done, 0, 1, &[]),
            4 => {
                // A whole simple reply.
                s.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
                s.extend_from_slice(&0u32.to_be_bytes());
                s.extend_from_slice(&1u64.to_be_bytes());
                let fill = inp.u8();
                s.extend(std::iter::repeat_n(fill, len));
                for m in model.iter_mut() {
                    *m = Some(fill);
                }
                break;
            }
            _ => {
                let extra = inp.bytes(8);
                chunk(&mut s, done, 0x8001, 1, extra);
            }
        }
    }
    // BLOCK_STATUS replies for handles 2, 3, ...
    let bs_offset = (inp.u32() as u64) % EXPORT_BYTES;
    let bs_len = ((inp.u32() as u64) % (1 << 18)).min(EXPORT_BYTES - bs_offset);
    for h in 2..2 + (inp.u8() % 4) as u64 {
        let n = inp.u8() % 4;
        let mut p = (if inp.u8() & 7 == 0 { 9u32 } else { 1u32 })
            .to_be_bytes()
            .to_vec();
        for _ in 0..n {
            p.extend_from_slice(&(inp.u32() % (1 << 19)).to_be_bytes());
            p.extend_from_slice(&(inp.u32() & 3).to_be_bytes());
        }
        chunk(&mut s, true, 5, h, &p);
    }

    let Ok(mut c) = NbdClient::handshake_over(Fake(Cursor::new(s)), "x", &ctx) else {
        panic!("valid handshake refused");
    };
    assert_eq!(c.size_bytes(), EXPORT_BYTES);
    let mut buf = vec![0xa5u8; len];
    if c.read_at(&mut buf, offset).is_ok() {
        for (i, (b, m)) in buf.iter().zip(&model).enumerate() {
            assert_eq!(
                Some(*b),
                *m,
                "byte {i} of the read was not written by the server"
            );
        }
    }
    if let Ok(extents) = c.block_status(CONTEXT, bs_offset, bs_len) {
        let mut pos = bs_offset;
        for e in &extents {
            assert_eq!(e.offset, pos, "extents not contiguous");
            assert!(e.length > 0, "empty extent");
            pos += e.length;
        }
        assert_eq!(pos, bs_offset + bs_len, "extents do not cover the range");
    }
});
