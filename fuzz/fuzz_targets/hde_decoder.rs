//! Fuzzes the HDE batch decoder. Two modes, chosen by the first byte:
//! - raw: arbitrary bytes go to a decoder that already holds some history; it must return an
//!   error or blocks, never panic;
//! - mutated: a valid batch (built from the input) is corrupted at an input-chosen position;
//!   the decoder must fail, never deliver bytes other than the ones encoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use novacron_dwcp::hde::{Decoder, DecoderConfig, Encoder, EncoderConfig};

fn primed() -> (Encoder, Decoder) {
    let mut enc = Encoder::new(EncoderConfig::default());
    let mut dec = Decoder::new(DecoderConfig {
        max_batch_bytes: 1 << 20,
        ..DecoderConfig::default()
    });
    for i in 0..4u64 {
        enc.encode_block(i, &vec![i as u8 + 1; 512]);
    }
    let b = enc.finish_batch().expect("blocks pending");
    dec.decode_batch(&b).expect("valid batch");
    (enc, dec)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mut enc, mut dec) = primed();
    if mode & 1 == 0 {
        let _ = dec.decode_batch(rest);
        return;
    }
    if rest.len() < 4 {
        return;
    }
    let (ctl, payload) = rest.split_at(4);
    // Blocks from the payload: some new, some repeats and changes of the primed ones.
    let mut blocks = Vec::new();
    for (i, chunk) in payload.chunks(97).enumerate() {
        let id = (i % 6) as u64;
        let mut d = vec![id as u8 + 1; 512];
        for (j, b) in chunk.iter().enumerate() {
            d[(j * 5) % 512] = *b;
        }
        enc.encode_block(id, &d);
        blocks.push((id, d));
    }
    let Some(mut batch) = enc.finish_batch() else {
        return;
    };
    let at = u16::from_le_bytes([ctl[0], ctl[1]]) as usize % batch.len();
    let bit = ctl[2] % 8;
    let truncate = ctl[3] & 1 == 1;
    if truncate {
        batch.truncate(at);
    } else {
        batch[at] ^= 1 << bit;
    }
    if let Ok(out) = dec.decode_batch(&batch) {
        // Only possible if the corruption did not change anything the decoder reads; then the
        // bytes must still be exactly the originals.
        assert_eq!(out.len(), blocks.len());
        for (o, (id, d)) in out.iter().zip(&blocks) {
            assert_eq!(o.block_id, *id);
            assert_eq!(&o.data[..], &d[..]);
        }
    }
});
