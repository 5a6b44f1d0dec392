//! Reading Server-Sent Events frames (the events stream's wire format) from a byte stream that
//! arrives in pieces. A frame is a block of `field: value` lines ended by a blank line; only
//! `event` and `data` matter here (`id` is inside each event's data as well), and comment lines
//! (`: keep-alive`) and blocks without data are skipped.
//!
//! The bytes come from the network, so the reader holds at most [`MAX_FRAME_BYTES`] of an
//! unfinished frame and scans each byte for the frame end once, however the stream is cut.

/// The longest frame accepted, blank line included. An event is a few hundred bytes.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// One frame's `event:` and `data:` fields (several `data:` lines joined with `\n`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseFrame {
    pub event: String,
    pub data: String,
}

/// A frame longer than [`MAX_FRAME_BYTES`]: the stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an events-stream frame is longer than {MAX_FRAME_BYTES} bytes")]
pub struct FrameTooLong;

/// Splits a byte stream into frames: [`SseReader::feed`] what arrives, then take frames with
/// [`SseReader::next_frame`] until it answers `Ok(None)`.
#[derive(Debug, Default)]
pub struct SseReader {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no frame end.
    scanned: usize,
}

impl SseReader {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame with data; `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<SseFrame>, FrameTooLong> {
        loop {
            // A frame end is "\n\n": its first newline may be the last byte already scanned.
            let from = self.scanned.saturating_sub(1);
            let Some(at) = self.buf[from..].windows(2).position(|w| w == b"\n\n") else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_FRAME_BYTES {
                    return Err(FrameTooLong);
                }
                return Ok(None);
            };
            let end = from + at + 2;
            if end > MAX_FRAME_BYTES {
                return Err(FrameTooLong);
            }
            let block: Vec<u8> = self.buf.drain(..end).collect();
            self.scanned = 0;
            if let Some(frame) = parse_block(&block) {
                return Ok(Some(frame));
            }
        }
    }

    /// Bytes held of a frame not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn parse_block(block: &[u8]) -> Option<SseFrame> {
    let text = String::from_utf8_lossy(block);
    let mut frame = SseFrame::default();
    let mut has_data = false;
    for line in text.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => frame.event = value.to_string(),
            "data" => {
                if has_data {
                    frame.data.push('\n');
                }
                frame.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    (!frame.data.is_empty()).then_some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(r: &mut SseReader) -> Vec<SseFrame> {
        let mut out = vec![];
        while let Some(f) = r.next_frame().unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn frames_split_across_chunks_are_reassembled() {
        let mut r = SseReader::default();
        r.feed(b"retry: 1000\n\n: keep-alive\n\nid: 3-0\nevent: vm\nda");
        assert_eq!(frames(&mut r), vec![]);
        r.feed(b"ta: {\"a\":1}\n");
        assert_eq!(frames(&mut r), vec![]);
        r.feed(b"\nevent: gap\ndata: x\ndata: y\n\n");
        assert_eq!(
            frames(&mut r),
            vec![
                SseFrame {
                    event: "vm".into(),
                    data: "{\"a\":1}".into()
                },
                SseFrame {
                    event: "gap".into(),
                    data: "x\ny".into()
                }
            ]
        );
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn a_frame_end_split_between_two_reads_is_found() {
        let mut r = SseReader::default();
        r.feed(b"data: 1\n");
        assert_eq!(r.next_frame(), Ok(None));
        r.feed(b"\n");
        assert_eq!(r.next_frame().unwrap().unwrap().data, "1");
    }

    #[test]
    fn an_endless_frame_is_refused_at_the_bound() {
        let mut r = SseReader::default();
        let chunk = vec![b'x'; 64 << 10];
        let mut fed = 0;
        let refused = loop {
            r.feed(&chunk);
            fed += chunk.len();
            match r.next_frame() {
                Ok(None) => assert!(fed <= MAX_FRAME_BYTES, "held {fed} bytes"),
                Ok(Some(_)) => panic!("a frame from no frame end"),
                Err(e) => break e,
            }
        };
        assert_eq!(refused, FrameTooLong);
        assert!(fed <= MAX_FRAME_BYTES + chunk.len());
    }
}
