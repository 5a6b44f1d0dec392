//! Fuzzes the QEMU migration stream parser (crates/migrate/src/qevm.rs) with arbitrary bytes
//! in arbitrary chunkings. Property (the module's promise): no panic, and the stream rebuilt
//! from what the parser reports (literal bytes verbatim, page and zero entries re-rendered
//! with `render_page_header`) is exactly the input, whatever the chunking; every reported page
//! carries exactly 4096 bytes.
//! The first input byte picks raw bytes or a QEVM-shaped stream generated from the input
//! (so recognised pages, not only pass-through, are exercised).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::Input;
use libfuzzer_sys::fuzz_target;
use novacron_migrate::qevm::{PAGE_BYTES, PageHeader, Parser, Sink, flags, render_page_header};

#[derive(Default)]
struct Rebuild {
    out: Vec<u8>,
}

impl Sink for Rebuild {
    fn literal(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }
    fn page(&mut self, h: PageHeader<'_>, data: &[u8]) {
        assert_eq!(data.len(), PAGE_BYTES, "page of the wrong size");
        render_page_header(&mut self.out, flags::PAGE, &h);
        self.out.extend_from_slice(data);
    }
    fn zero(&mut self, h: PageHeader<'_>) {
        render_page_header(&mut self.out, flags::ZERO, &h);
        self.out.push(0);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let chunk_seed = inp.u16();
    let stream = if mode & 1 == 0 {
        inp.rest().to_vec()
    } else {
        let mut s = common::qevm_stream(&mut inp);
        // Corrupt one byte of the generated stream now and then.
        if mode & 2 != 0 && !s.is_empty() {
            let at = (chunk_seed as usize * 31) % s.len();
            s[at] ^= mode | 1;
        }
        s
    };
    let mut p = Parser::new();
    let mut r = Rebuild::default();
    // Chunk sizes vary along the stream: 1..=4099 bytes, steered by the input.
    let mut pos = 0;
    let mut x = chunk_seed as usize | 1;
    while pos < stream.len() {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        let n = 1 + (x >> 8) % if mode & 4 != 0 { 4099 } else { 17 };
        let end = (pos + n).min(stream.len());
        p.feed(&stream[pos..end], &mut r);
        pos = end;
    }
    p.finish(&mut r);
    assert_eq!(p.buffered(), 0);
    assert!(r.out == stream, "rebuilt stream differs from the input");
});
