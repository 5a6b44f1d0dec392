//! Fuzzes what a DWCP session does with the frames a peer sends after the handshake (data,
//! ack, ping, pong, goodbye, stream hint, a stray hello), i.e. the session's control-message
//! and reassembly logic behind the checksum (a peer holding a valid certificate can produce
//! any checksum-correct frame). Property: no panic, and every message delivered to a channel
//! fits the session's `max_message_bytes` and consists of exactly the payloads of that
//! channel's frames (in sequence order) that preceded its end-of-message frame.
//! Before the frames, a prefix of the input is decoded as the hello that opens every stream
//! (with or without the proof of the session secret): it either decodes to a hello that
//! encodes back to the same bytes, or is refused.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::Input;
use libfuzzer_sys::fuzz_target;
use novacron_dwcp::SessionOptions;
use novacron_dwcp::auth::Hello;
use novacron_dwcp::frame::{self, FLAG_END_OF_MESSAGE, FLAG_FIN, Kind};

const KINDS: [Kind; 8] = [
    Kind::Data,
    Kind::Ack,
    Kind::Ping,
    Kind::Pong,
    Kind::Hello,
    Kind::HelloOk,
    Kind::Goodbye,
    Kind::StreamHint,
];

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let hello_len = (inp.u8() % 64) as usize;
    let hello = inp.bytes(hello_len);
    if let Ok(h) = Hello::decode(hello) {
        assert_eq!(
            h.encode(),
            hello,
            "a hello does not encode back to its bytes"
        );
    }
    let opts = SessionOptions {
        max_message_bytes: 4096,
        channel_buffer_bytes: 8192,
        window_bytes: 64 << 10,
        frame_bytes: 1024,
        ..SessionOptions::default()
    };
    let mut frames = Vec::new();
    let mut next_seq = 0u64;
    while !inp.is_empty() && frames.len() < 256 {
        let c = inp.u8();
        let kind = KINDS[(c % 8) as usize];
        // Mostly data frames near the expected sequence, so reassembly is exercised.
        let kind = if c & 0x30 != 0 { Kind::Data } else { kind };
        let flags = inp.u8() & 0x07;
        let channel = (inp.u8() % 4) as u32;
        let seq = match kind {
            Kind::Data if c & 0x08 == 0 => {
                next_seq += 1;
                next_seq - 1
            }
            _ => inp.u64() % 512,
        };
        let len = inp.u8() as usize * if c & 0x40 != 0 { 32 } else { 1 };
        let payload = inp.bytes(len);
        let encoded = frame::encode(kind, flags, channel, seq, payload);
        // Flags outside the known set are refused by the frame decoder already.
        if let Ok(Some((f, _))) = frame::decode(&encoded) {
            frames.push(f);
        }
    }
    let (delivered, _err) = novacron_dwcp::fuzz_peer_frames(frames.clone(), opts.clone());

    // Model: data frames in sequence order from 0, stopping at the first gap.
    let mut by_seq = BTreeMap::new();
    for f in &frames {
        if f.header.kind == Kind::Data {
            by_seq.entry(f.header.seq).or_insert_with(|| f.clone());
        }
    }
    let mut expected: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    let mut partial: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    for (i, (seq, f)) in by_seq.iter().enumerate() {
        if *seq != i as u64 {
            break;
        }
        if f.header.flags & FLAG_FIN != 0 {
            continue;
        }
        let p = partial.entry(f.header.channel).or_default();
        p.extend_from_slice(&f.payload);
        if f.header.flags & FLAG_END_OF_MESSAGE != 0 {
            expected
                .entry(f.header.channel)
                .or_default()
                .push(std::mem::take(p));
        }
    }
    let mut got: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    for (ch, m) in &delivered {
        assert!(m.len() <= opts.max_message_bytes, "message over the limit");
        got.entry(*ch).or_default().push(m.to_vec());
    }
    // Delivery may stop early (an error, flow control), never differ: each channel's
    // delivered messages are a prefix of the model's.
    for (ch, msgs) in &got {
        let want = expected.get(ch).map(Vec::as_slice).unwrap_or(&[]);
        assert!(
            msgs.len() <= want.len(),
            "channel {ch}: more messages than sent"
        );
        assert_eq!(
            &want[..msgs.len()],
            &msgs[..],
            "channel {ch}: messages differ"
        );
    }
});
