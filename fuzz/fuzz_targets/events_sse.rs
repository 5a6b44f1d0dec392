//! Fuzzes the events stream's frame reader (crates/api-types/src/sse.rs; the bytes come from
//! the server over the network). The input is cut into pieces at positions the input chooses.
//! Properties: no panic; the reader never holds more than the frame bound plus one piece; the
//! frames (or the refusal of a too-long frame) are the same however the stream is cut; every
//! frame has data.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::Input;
use libfuzzer_sys::fuzz_target;
use novacron_api_types::sse::{FrameTooLong, MAX_FRAME_BYTES, SseFrame, SseReader};

fn read(pieces: &[&[u8]]) -> (Vec<SseFrame>, Option<FrameTooLong>) {
    let mut reader = SseReader::default();
    let mut frames = vec![];
    for piece in pieces {
        reader.feed(piece);
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => {
                    assert!(!f.data.is_empty(), "a frame without data");
                    frames.push(f);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
        assert!(
            reader.pending() <= MAX_FRAME_BYTES + piece.len(),
            "the reader holds {} bytes",
            reader.pending()
        );
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cut = usize::from(input.u8()) % 64 + 1;
    // A long frame now and then, so the bound is reached within the input's size.
    let stretch = usize::from(input.u8() == 0xff) * (MAX_FRAME_BYTES + 1);
    let mut stream = input.rest().to_vec();
    if stretch > 0 {
        let at = stream.len() / 2;
        stream.splice(at..at, std::iter::repeat_n(b'x', stretch));
    }
    let whole = read(&[&stream]);
    // A stretched stream in bigger pieces: a million one-byte feeds would take the run's time.
    let cut = if stretch > 0 { cut << 12 } else { cut };
    let pieces: Vec<&[u8]> = stream.chunks(cut).collect();
    let cut_up = read(&pieces);
    assert_eq!(whole, cut_up, "the frames depend on where the stream was cut");
});
