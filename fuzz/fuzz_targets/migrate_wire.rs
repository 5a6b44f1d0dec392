//! Fuzzes the migration wire format (crates/migrate/src/wire.rs), as the destination agent
//! receives it from the source. Two modes, chosen by the first byte:
//! - raw: arbitrary messages (length-prefixed in the input) go to a `WireDecoder`; no panic;
//! - round trip: a QEVM-shaped stream generated from the input is encoded by `WireEncoder`
//!   in input-chosen pieces and decoded; the rebuilt bytes must equal the stream and the end
//!   message must be accepted. Then one message of the same run is corrupted (a flipped bit
//!   or a truncation): decoding must fail somewhere, or, if it does reach `End`, the rebuilt
//!   stream must be exactly the original (the end-to-end length and hash promise).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use bytes::Bytes;
use common::Input;
use libfuzzer_sys::fuzz_target;
use novacron_dwcp::hde::{DecoderConfig, EncoderConfig};
use novacron_migrate::qevm::Parser;
use novacron_migrate::wire::{Decoded, WireDecoder, WireEncoder};

fn decoder_config() -> DecoderConfig {
    DecoderConfig {
        history_bytes: 8 << 20,
        max_batch_bytes: 16 << 20,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    if mode & 1 == 0 {
        let mut dec = WireDecoder::new(decoder_config(), None);
        let mut out = Vec::new();
        while !inp.is_empty() {
            let n = inp.u16() as usize;
            let msg = inp.bytes(n).to_vec();
            let before = out.len();
            if dec.decode(Bytes::from(msg), &mut out).is_err() {
                assert_eq!(out.len(), before, "a failed message left output behind");
            }
        }
        return;
    }
    let piece = 1 + inp.u16() as usize;
    let corrupt_at = inp.u32();
    let corrupt_bit = inp.u8();
    let stream = common::qevm_stream(&mut inp);
    let cfg = EncoderConfig {
        history_bytes: 8 << 20,
        ..EncoderConfig::default()
    };
    let mut enc = WireEncoder::new(cfg, None);
    if mode & 2 != 0 {
        enc.set_zstd_level(Some(1));
    }
    let mut parser = Parser::new();
    let mut messages = Vec::new();
    for c in stream.chunks(piece) {
        enc.feed(&mut parser, c);
        if let Some(m) = enc.take_message() {
            messages.push(m);
        }
    }
    enc.finish_stream(&mut parser);
    if let Some(m) = enc.take_message() {
        messages.push(m);
    }
    messages.push(enc.end_message());

    let run = |msgs: &[Vec<u8>]| -> (Vec<u8>, Option<u64>) {
        let mut dec = WireDecoder::new(decoder_config(), None);
        let mut out = Vec::new();
        for m in msgs {
            match dec.decode(Bytes::from(m.clone()), &mut out) {
                Ok(Decoded::Data) => {}
                Ok(Decoded::End { total_bytes }) => return (out, Some(total_bytes)),
                Err(_) => return (out, None),
            }
        }
        (out, None)
    };

    let (out, end) = run(&messages);
    assert_eq!(end, Some(stream.len() as u64), "valid stream not accepted");
    assert!(out == stream, "rebuilt stream differs");

    // Corrupt one message.
    let total: usize = messages.iter().map(Vec::len).sum();
    if total == 0 {
        return;
    }
    let mut at = corrupt_at as usize % total;
    let mut bad = messages.clone();
    for m in bad.iter_mut() {
        if at < m.len() {
            if corrupt_bit & 0x80 != 0 {
                m.truncate(at);
            } else {
                m[at] ^= 1 << (corrupt_bit % 8);
            }
            break;
        }
        at -= m.len();
    }
    let (out, end) = run(&bad);
    if end.is_some() {
        assert!(
            out == stream,
            "corrupted messages accepted with different content"
        );
    }
});
