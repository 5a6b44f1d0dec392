//! DWCP wire frames: the unit carried on each TLS stream of a session.
//!
//! Header (22 bytes, little endian): kind u8, flags u8, channel u32, seq u64, len u32,
//! crc32 u32 (over the header with the crc field zeroed, then the payload). Data frames carry
//! a session-wide sequence number so the receiver can reassemble frames striped over many
//! streams in order; control frames (ack, ping, hello) live outside that sequence.

use bytes::{Bytes, BytesMut};

use crate::error::FrameError;

/// Header length in bytes.
pub const HEADER_BYTES: usize = 22;
/// Largest payload the decoder accepts.
pub const MAX_PAYLOAD_BYTES: u32 = 4 << 20;

/// What a frame is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Channel data in the session sequence.
    Data = 1,
    /// Cumulative acknowledgement: `seq` = next expected sequence number; payload = highest
    /// sequence number seen (u64).
    Ack = 2,
    /// Liveness probe; `seq` = sender's timestamp, echoed by `Pong`.
    Ping = 3,
    /// Answer to `Ping`.
    Pong = 4,
    /// First frame of a stream, client to server: payload = session id (16) + stream number (u32) + flags (u32).
    Hello = 5,
    /// Server's answer to `Hello`: payload = session id (16).
    HelloOk = 6,
    /// The sender will close this stream; no more data on it.
    Goodbye = 7,
    /// Receiver's wish for a stream count (`seq` = streams), sent server to client.
    StreamHint = 8,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Data,
            2 => Kind::Ack,
            3 => Kind::Ping,
            4 => Kind::Pong,
            5 => Kind::Hello,
            6 => Kind::HelloOk,
            7 => Kind::Goodbye,
            8 => Kind::StreamHint,
            _ => return None,
        })
    }
}

/// Data-frame flag: this frame ends a message.
pub const FLAG_END_OF_MESSAGE: u8 = 0x01;
/// Data-frame flag: the sender finished the channel (no more messages).
pub const FLAG_FIN: u8 = 0x02;
const KNOWN_FLAGS: u8 = FLAG_END_OF_MESSAGE | FLAG_FIN;

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Frame kind.
    pub kind: Kind,
    /// Flags (data frames only).
    pub flags: u8,
    /// Channel id (data frames only).
    pub channel: u32,
    /// Sequence number, timestamp or value, by kind.
    pub seq: u64,
    /// Payload length in bytes.
    pub len: u32,
    /// Checksum of header and payload.
    pub crc: u32,
}

/// A whole frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Header fields.
    pub header: Header,
    /// Payload bytes.
    pub payload: Bytes,
}

impl Header {
    /// Parses and validates the fixed header (not the checksum, which needs the payload).
    pub fn parse(b: &[u8]) -> Result<Header, FrameError> {
        if b.len() < HEADER_BYTES {
            return Err(FrameError::Truncated);
        }
        let kind = Kind::from_u8(b[0]).ok_or(FrameError::Malformed("unknown frame kind"))?;
        let flags = b[1];
        if flags & !KNOWN_FLAGS != 0 || (kind != Kind::Data && flags != 0) {
            return Err(FrameError::Malformed("unknown frame flags"));
        }
        let channel = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[6..14]);
        let len = u32::from_le_bytes([b[14], b[15], b[16], b[17]]);
        let crc = u32::from_le_bytes([b[18], b[19], b[20], b[21]]);
        if len > MAX_PAYLOAD_BYTES {
            return Err(FrameError::TooLarge(len));
        }
        Ok(Header {
            kind,
            flags,
            channel,
            seq: u64::from_le_bytes(seq),
            len,
            crc,
        })
    }

    fn write_without_crc(&self, out: &mut [u8; HEADER_BYTES]) {
        out[0] = self.kind as u8;
        out[1] = self.flags;
        out[2..6].copy_from_slice(&self.channel.to_le_bytes());
        out[6..14].copy_from_slice(&self.seq.to_le_bytes());
        out[14..18].copy_from_slice(&self.len.to_le_bytes());
        out[18..22].fill(0);
    }

    /// Verifies the checksum against `payload`.
    pub fn verify(&self, payload: &[u8]) -> Result<(), FrameError> {
        if payload.len() != self.len as usize {
            return Err(FrameError::Truncated);
        }
        let mut h = [0u8; HEADER_BYTES];
        self.write_without_crc(&mut h);
        let mut c = crc32fast::Hasher::new();
        c.update(&h);
        c.update(payload);
        if c.finalize() != self.crc {
            return Err(FrameError::Checksum);
        }
        Ok(())
    }
}

/// Builds the wire header for a frame with this payload (checksum filled in).
pub fn encode_header(
    kind: Kind,
    flags: u8,
    channel: u32,
    seq: u64,
    payload: &[u8],
) -> [u8; HEADER_BYTES] {
    let hdr = Header {
        kind,
        flags,
        channel,
        seq,
        len: payload.len() as u32,
        crc: 0,
    };
    let mut h = [0u8; HEADER_BYTES];
    hdr.write_without_crc(&mut h);
    let mut c = crc32fast::Hasher::new();
    c.update(&h);
    c.update(payload);
    h[18..22].copy_from_slice(&c.finalize().to_le_bytes());
    h
}

/// Encodes a whole frame into one buffer.
pub fn encode(kind: Kind, flags: u8, channel: u32, seq: u64, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(&encode_header(kind, flags, channel, seq, payload));
    out.extend_from_slice(payload);
    out.freeze()
}

/// Decodes one frame from the start of `buf`; returns it and the bytes consumed.
/// `Ok(None)` means more bytes are needed.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < HEADER_BYTES {
        return Ok(None);
    }
    let header = Header::parse(buf)?;
    let total = HEADER_BYTES + header.len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let payload = &buf[HEADER_BYTES..total];
    header.verify(payload)?;
    Ok(Some((
        Frame {
            header,
            payload: Bytes::copy_from_slice(payload),
        },
        total,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let f = encode(Kind::Data, FLAG_END_OF_MESSAGE, 7, 99, b"hello");
        let (got, n) = decode(&f).unwrap().unwrap();
        assert_eq!(n, f.len());
        assert_eq!(got.header.channel, 7);
        assert_eq!(got.header.seq, 99);
        assert_eq!(&got.payload[..], b"hello");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn any_bit_flip_is_caught(payload in proptest::collection::vec(any::<u8>(), 0..300),
                                  seq: u64, chan: u32, at: usize, bit in 0u8..8) {
            let f = encode(Kind::Data, FLAG_END_OF_MESSAGE, chan, seq, &payload).to_vec();
            let mut bad = f.clone();
            let i = at % bad.len();
            bad[i] ^= 1 << bit;
            if let Ok(Some((frame, _))) = decode(&bad) { prop_assert!(false, "corrupted frame decoded: {:?}", frame.header) }
            // Truncation never yields a frame.
            prop_assert!(matches!(decode(&f[..f.len() - 1]), Ok(None)));
        }
    }
}
