//! Post-copy: what must hold before it may start, and what the destination QEMU says on its
//! return path while it runs.
//!
//! In post-copy the destination runs the VM before all of its memory arrived; a vCPU touching a
//! missing page faults, the destination QEMU catches the fault with userfaultfd and asks the
//! source for the page on the *return path* (the reverse direction of the migration socket).
//! NovaCron carries that direction over DWCP byte for byte; [`ReturnPathDecoder`] reads a copy
//! of it to time the faults ([`FaultClock`]) without ever changing what QEMU receives.
//!
//! Preconditions ([`destination_refusal`], [`shared_memory_refusal`]), checked before anything
//! starts:
//! - QEMU 7.2 creates its userfaultfd with the `userfaultfd(2)` syscall only (no fallback to
//!   `/dev/userfaultfd`, which came with QEMU 8.1) and without `UFFD_USER_MODE_ONLY` (it must
//!   catch faults taken inside the kernel too, e.g. KVM or vhost touching guest memory). With
//!   `vm.unprivileged_userfaultfd = 0` such a call needs CAP_SYS_PTRACE, so a destination QEMU
//!   that runs as the VM's own unprivileged user answers `Postcopy is not supported` (checked on
//!   this project's hosts: kernel 6.18, QEMU 7.2). NovaCron does not give QEMU that capability
//!   (it would let a compromised QEMU trace every process of its user); the operator may allow
//!   the syscall with `sysctl vm.unprivileged_userfaultfd=1`, a host-wide choice.
//! - Memory shared with another process (`share=on` backends, e.g. memfd for vhost-user) can be
//!   written behind QEMU's back while the pages are split across two hosts: refused.
//!
//! Return-path message format (QEMU 7.2, migration/migration.c): be16 type, be16 length, then
//! `length` bytes: SHUT (be32 error), PONG (be32), REQ_PAGES_ID (be64 offset, be32 length,
//! u8 + block name), REQ_PAGES (be64 offset, be32 length; the block of the last REQ_PAGES_ID),
//! RECV_BITMAP (u8 + block name, then outside the message a be64 size, that many bitmap bytes
//! and a be64 end marker), RESUME_ACK (be32).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Whether and when a migration may switch to post-copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PostcopyUse {
    /// Pre-copy only.
    #[default]
    Never,
    /// Switch when the policy finds that throttling cannot meet the pause limit before the
    /// deadline (`--mode auto`); stays pre-copy if the destination cannot take post-copy.
    WhenStuck,
    /// One pre-copy pass, then switch (`--mode postcopy`); refused when the destination
    /// cannot take post-copy.
    AfterFirstPass,
}

/// The future of a [`Hook`].
pub type HookFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// A step the caller performs at a point of the migration (e.g. recording the commit in the
/// control plane before the switch to post-copy); `Err` says why it did not happen.
#[derive(Clone)]
pub struct Hook(std::sync::Arc<dyn Fn() -> HookFuture + Send + Sync>);

impl Hook {
    pub fn new(f: impl Fn() -> HookFuture + Send + Sync + 'static) -> Hook {
        Hook(std::sync::Arc::new(f))
    }

    /// A hook that always succeeds (tests without a control plane).
    pub fn accept() -> Hook {
        Hook::new(|| Box::pin(async { Ok(()) }))
    }

    pub async fn call(&self) -> Result<(), String> {
        (self.0)().await
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// Where the kernel says whether unprivileged processes may create a userfaultfd.
pub const UNPRIVILEGED_USERFAULTFD: &str = "/proc/sys/vm/unprivileged_userfaultfd";

/// What the destination host offers post-copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationHost {
    /// `vm.unprivileged_userfaultfd` (None: unreadable, e.g. a kernel without userfaultfd).
    pub unprivileged_userfaultfd: Option<bool>,
    /// The destination QEMU runs as an unprivileged user (the VM's own), not as root.
    pub qemu_unprivileged: bool,
}

impl DestinationHost {
    /// Reads this host's sysctl; `qemu_unprivileged` is the caller's knowledge.
    pub fn probe(qemu_unprivileged: bool) -> DestinationHost {
        let unprivileged_userfaultfd = std::fs::read_to_string(UNPRIVILEGED_USERFAULTFD)
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok())
            .map(|v| v != 0);
        DestinationHost {
            unprivileged_userfaultfd,
            qemu_unprivileged,
        }
    }
}

/// Why this host cannot be a post-copy destination, if it cannot.
pub fn destination_refusal(h: &DestinationHost) -> Option<String> {
    match (h.unprivileged_userfaultfd, h.qemu_unprivileged) {
        (None, _) => Some(format!(
            "post-copy needs userfaultfd on the destination, and this kernel has none ({UNPRIVILEGED_USERFAULTFD} is missing)"
        )),
        (Some(false), true) => Some(
            "post-copy needs the userfaultfd syscall in the destination QEMU, which runs as the VM's \
             unprivileged user, and this host forbids it (vm.unprivileged_userfaultfd = 0; QEMU 7.2 \
             cannot use /dev/userfaultfd). Allow it on the destination with \
             `sysctl vm.unprivileged_userfaultfd=1`, or use --mode precopy"
                .into(),
        ),
        _ => None,
    }
}

/// Why a VM with these memory backends (`query-memdev`'s answer) cannot be moved by post-copy.
pub fn shared_memory_refusal(memdevs: &Value) -> Option<String> {
    let shared: Vec<String> = memdevs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m.get("share").and_then(Value::as_bool) == Some(true))
        .map(|m| {
            m.get("id")
                .and_then(Value::as_str)
                .unwrap_or("(unnamed)")
                .to_string()
        })
        .collect();
    if shared.is_empty() {
        return None;
    }
    Some(format!(
        "post-copy cannot move memory shared with another process (memory backend {} has share=on): \
         use --mode precopy",
        shared.join(", ")
    ))
}

/// One message of the return path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReturnPathMessage {
    /// The destination will send nothing more (`error`: it failed).
    Shut {
        error: bool,
    },
    Pong(u32),
    /// A page request: `length` bytes from `offset` of RAM block `block`.
    RequestPages {
        block: Vec<u8>,
        offset: u64,
        length: u32,
    },
    /// Recovery: the destination's received-pages bitmap of `block` follows.
    ReceivedBitmap {
        block: Vec<u8>,
        bitmap_bytes: u64,
    },
    ResumeAck(u32),
}

/// A return path that does not follow QEMU's format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReturnPathError {
    #[error("return path message type {0} is unknown")]
    UnknownType(u16),
    #[error("return path message type {kind} has length {len}, expected {expected}")]
    BadLength { kind: u16, len: u16, expected: u16 },
    #[error("return path page request names no RAM block")]
    NoBlock,
    #[error("return path bitmap of {0} bytes is not whole 8-byte words or too large")]
    BadBitmap(u64),
    #[error("return path bitmap ends with {0:#x}, not the end marker")]
    BadBitmapEnd(u64),
}

const RP_SHUT: u16 = 1;
const RP_PONG: u16 = 2;
const RP_REQ_PAGES_ID: u16 = 3;
const RP_REQ_PAGES: u16 = 4;
const RP_RECV_BITMAP: u16 = 5;
const RP_RESUME_ACK: u16 = 6;
/// QEMU's source reads at most this many bytes of one message.
const RP_MAX_LEN: u16 = 512;
/// Marker after a received-pages bitmap.
const BITMAP_END: u64 = 0x0123_4567_89ab_cdef;
/// Largest bitmap accepted (covers 16 TiB of 4 KiB pages).
const MAX_BITMAP_BYTES: u64 = 1 << 29;

/// Push decoder of the return path: bytes in chunks of any size, messages out.
#[derive(Debug, Default)]
pub struct ReturnPathDecoder {
    pending: Vec<u8>,
    /// The block of the last REQ_PAGES_ID.
    block: Vec<u8>,
    /// Bytes of a received-pages bitmap still to skip (plus its 8-byte end marker).
    bitmap_left: Option<u64>,
    broken: Option<ReturnPathError>,
}

impl ReturnPathDecoder {
    pub fn new() -> ReturnPathDecoder {
        ReturnPathDecoder::default()
    }

    /// Why decoding stopped, if it did (later bytes are ignored).
    pub fn error(&self) -> Option<&ReturnPathError> {
        self.broken.as_ref()
    }

    /// Decodes `input`, appending complete messages to `out`. After an error, nothing more is
    /// decoded (the error stays, see [`Self::error`]).
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<ReturnPathMessage>,
    ) -> Result<(), ReturnPathError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(input);
        let mut pos = 0;
        let r = loop {
            if pos == buf.len() {
                break Ok(());
            }
            match self.step(&buf[pos..], out) {
                Ok(0) => break Ok(()),
                Ok(n) => pos += n,
                Err(e) => break Err(e),
            }
        };
        buf.drain(..pos);
        self.pending = buf;
        if let Err(e) = &r {
            self.broken = Some(e.clone());
            self.pending.clear();
        }
        r
    }

    /// One item from `b`: bytes consumed (0: more needed).
    fn step(
        &mut self,
        b: &[u8],
        out: &mut Vec<ReturnPathMessage>,
    ) -> Result<usize, ReturnPathError> {
        if let Some(left) = self.bitmap_left {
            if left > 0 {
                let n = (b.len() as u64).min(left) as usize;
                self.bitmap_left = Some(left - n as u64);
                return Ok(n);
            }
            if b.len() < 8 {
                return Ok(0);
            }
            let end = be64(&b[..8]);
            if end != BITMAP_END {
                return Err(ReturnPathError::BadBitmapEnd(end));
            }
            self.bitmap_left = None;
            return Ok(8);
        }
        if b.len() < 4 {
            return Ok(0);
        }
        let kind = u16::from_be_bytes([b[0], b[1]]);
        let len = u16::from_be_bytes([b[2], b[3]]);
        let fixed = |expected: u16| {
            if len == expected {
                Ok(())
            } else {
                Err(ReturnPathError::BadLength {
                    kind,
                    len,
                    expected,
                })
            }
        };
        match kind {
            RP_SHUT | RP_PONG | RP_RESUME_ACK => fixed(4)?,
            RP_REQ_PAGES => fixed(12)?,
            RP_REQ_PAGES_ID | RP_RECV_BITMAP => {
                if len > RP_MAX_LEN || len < if kind == RP_RECV_BITMAP { 1 } else { 13 } {
                    return Err(ReturnPathError::BadLength {
                        kind,
                        len,
                        expected: if kind == RP_RECV_BITMAP { 1 } else { 13 },
                    });
                }
            }
            other => return Err(ReturnPathError::UnknownType(other)),
        }
        let total = 4 + len as usize;
        if b.len() < total {
            return Ok(0);
        }
        let d = &b[4..total];
        let name_at = |at: usize| -> Result<Vec<u8>, ReturnPathError> {
            let n = d[at] as usize;
            let name = d
                .get(at + 1..at + 1 + n)
                .ok_or(ReturnPathError::BadLength {
                    kind,
                    len,
                    expected: (at + 1 + n) as u16,
                })?;
            Ok(name.to_vec())
        };
        match kind {
            RP_SHUT => out.push(ReturnPathMessage::Shut {
                error: be32(d) != 0,
            }),
            RP_PONG => out.push(ReturnPathMessage::Pong(be32(d))),
            RP_RESUME_ACK => out.push(ReturnPathMessage::ResumeAck(be32(d))),
            RP_REQ_PAGES | RP_REQ_PAGES_ID => {
                if kind == RP_REQ_PAGES_ID {
                    self.block = name_at(12)?;
                }
                if self.block.is_empty() {
                    return Err(ReturnPathError::NoBlock);
                }
                out.push(ReturnPathMessage::RequestPages {
                    block: self.block.clone(),
                    offset: be64(d),
                    length: be32(&d[8..]),
                });
            }
            _ => {
                // RECV_BITMAP: the bitmap follows the message: be64 size first.
                let block = name_at(0)?;
                if b.len() < total + 8 {
                    return Ok(0);
                }
                let size = be64(&b[total..total + 8]);
                if !size.is_multiple_of(8) || size > MAX_BITMAP_BYTES {
                    return Err(ReturnPathError::BadBitmap(size));
                }
                self.bitmap_left = Some(size);
                out.push(ReturnPathMessage::ReceivedBitmap {
                    block,
                    bitmap_bytes: size,
                });
                return Ok(total + 8);
            }
        }
        Ok(total)
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Times page faults at the destination: from the page request QEMU wrote on the return path
/// to the arrival of that page in the stream written into QEMU.
#[derive(Debug, Default)]
pub struct FaultClock {
    waiting: HashMap<(Vec<u8>, u64), Instant>,
    latencies_us: Vec<u64>,
}

/// Fault figures for `migration show`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultSummary {
    /// Page requests answered.
    pub faults_served: u64,
    pub fault_latency_p50_us: Option<u64>,
    pub fault_latency_p99_us: Option<u64>,
}

impl FaultClock {
    /// Largest number of outstanding requests remembered (a runaway peer cannot grow it).
    const MAX_WAITING: usize = 1 << 16;

    /// QEMU asked for `length` bytes at `offset` of `block` at `at`.
    pub fn requested(&mut self, block: &[u8], offset: u64, length: u32, at: Instant) {
        let first = offset & !(crate::qevm::PAGE_BYTES as u64 - 1);
        let pages = (length as u64)
            .div_ceil(crate::qevm::PAGE_BYTES as u64)
            .max(1);
        for i in 0..pages.min(512) {
            if self.waiting.len() >= Self::MAX_WAITING {
                return;
            }
            self.waiting
                .entry((block.to_vec(), first + i * crate::qevm::PAGE_BYTES as u64))
                .or_insert(at);
        }
    }

    /// The page at `offset` of `block` reached QEMU at `at`.
    pub fn arrived(&mut self, block: &[u8], offset: u64, at: Instant) {
        if self.waiting.is_empty() {
            return;
        }
        if let Some(t) = self.waiting.remove(&(block.to_vec(), offset)) {
            self.latencies_us
                .push(at.saturating_duration_since(t).as_micros() as u64);
        }
    }

    pub fn summary(&self) -> FaultSummary {
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let pct = |p: f64| -> Option<u64> {
            if v.is_empty() {
                return None;
            }
            let i = ((v.len() as f64 - 1.0) * p).round() as usize;
            v.get(i).copied()
        };
        FaultSummary {
            faults_served: v.len() as u64,
            fault_latency_p50_us: pct(0.50),
            fault_latency_p99_us: pct(0.99),
        }
    }
}

/// How long a page request may wait before the link counts as unhealthy for post-copy (the
/// guest is stalled on it).
pub const FAULT_STALL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut v = kind.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn req_id(offset: u64, len: u32, block: &[u8]) -> Vec<u8> {
        let mut d = offset.to_be_bytes().to_vec();
        d.extend_from_slice(&len.to_be_bytes());
        d.push(block.len() as u8);
        d.extend_from_slice(block);
        msg(RP_REQ_PAGES_ID, &d)
    }

    fn req(offset: u64, len: u32) -> Vec<u8> {
        let mut d = offset.to_be_bytes().to_vec();
        d.extend_from_slice(&len.to_be_bytes());
        msg(RP_REQ_PAGES, &d)
    }

    fn sample() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(msg(RP_PONG, &1u32.to_be_bytes()));
        s.extend(req_id(0x2000, 4096, b"pc.ram"));
        s.extend(req(0x5000, 8192));
        s.extend(msg(RP_RECV_BITMAP, b"\x06pc.ram"));
        s.extend(16u64.to_be_bytes());
        s.extend([0xffu8; 16]);
        s.extend(BITMAP_END.to_be_bytes());
        s.extend(msg(RP_RESUME_ACK, &1u32.to_be_bytes()));
        s.extend(msg(RP_SHUT, &0u32.to_be_bytes()));
        s
    }

    fn expected() -> Vec<ReturnPathMessage> {
        use ReturnPathMessage::*;
        vec![
            Pong(1),
            RequestPages {
                block: b"pc.ram".to_vec(),
                offset: 0x2000,
                length: 4096,
            },
            RequestPages {
                block: b"pc.ram".to_vec(),
                offset: 0x5000,
                length: 8192,
            },
            ReceivedBitmap {
                block: b"pc.ram".to_vec(),
                bitmap_bytes: 16,
            },
            ResumeAck(1),
            Shut { error: false },
        ]
    }

    #[test]
    fn decodes_every_message_at_any_chunking() {
        let s = sample();
        for chunk in [1, 2, 3, 5, 13, 64, s.len()] {
            let mut d = ReturnPathDecoder::new();
            let mut out = Vec::new();
            for c in s.chunks(chunk) {
                d.feed(c, &mut out).unwrap();
            }
            assert_eq!(out, expected(), "chunk {chunk}");
            assert!(d.error().is_none());
        }
    }

    #[test]
    fn bad_input_is_an_error_that_sticks() {
        let mut d = ReturnPathDecoder::new();
        let mut out = Vec::new();
        assert_eq!(
            d.feed(&msg(9, &[]), &mut out),
            Err(ReturnPathError::UnknownType(9))
        );
        assert!(d.feed(&sample(), &mut out).is_err());
        assert!(out.is_empty());
        // A page request before any block was named.
        let mut d = ReturnPathDecoder::new();
        assert_eq!(
            d.feed(&req(0, 4096), &mut out),
            Err(ReturnPathError::NoBlock)
        );
        // Wrong fixed length.
        let mut d = ReturnPathDecoder::new();
        assert!(matches!(
            d.feed(&msg(RP_PONG, &[0; 3]), &mut out),
            Err(ReturnPathError::BadLength { .. })
        ));
        // A block name longer than the message.
        let mut d = ReturnPathDecoder::new();
        let mut m = req_id(0, 4096, b"pc.ram");
        m[4 + 12] = 200;
        assert!(d.feed(&m, &mut out).is_err());
        // A bitmap without its end marker.
        let mut d = ReturnPathDecoder::new();
        let mut m = msg(RP_RECV_BITMAP, b"\x01r");
        m.extend(8u64.to_be_bytes());
        m.extend([0u8; 8]);
        m.extend(1u64.to_be_bytes());
        assert_eq!(d.feed(&m, &mut out), Err(ReturnPathError::BadBitmapEnd(1)));
    }

    #[test]
    fn refusals_name_the_fix() {
        let why = destination_refusal(&DestinationHost {
            unprivileged_userfaultfd: Some(false),
            qemu_unprivileged: true,
        })
        .unwrap();
        assert!(
            why.contains("sysctl vm.unprivileged_userfaultfd=1"),
            "{why}"
        );
        for ok in [
            DestinationHost {
                unprivileged_userfaultfd: Some(true),
                qemu_unprivileged: true,
            },
            DestinationHost {
                unprivileged_userfaultfd: Some(false),
                qemu_unprivileged: false,
            },
        ] {
            assert_eq!(destination_refusal(&ok), None, "{ok:?}");
        }
        assert!(
            destination_refusal(&DestinationHost {
                unprivileged_userfaultfd: None,
                qemu_unprivileged: false,
            })
            .is_some()
        );
        let mem: Value = serde_json::from_str(
            r#"[{"id":"pc.ram","size":1,"merge":true,"dump":true,"prealloc":false,"share":false,"policy":"default"},
                {"id":"vhost-mem","size":1,"share":true,"policy":"default"}]"#,
        )
        .unwrap();
        let why = shared_memory_refusal(&mem).unwrap();
        assert!(why.contains("vhost-mem"), "{why}");
        assert_eq!(shared_memory_refusal(&serde_json::json!([])), None);
    }

    #[test]
    fn fault_clock_reports_percentiles_of_served_requests() {
        let mut c = FaultClock::default();
        let t0 = Instant::now();
        for i in 0..100u64 {
            c.requested(b"pc.ram", i * 4096, 4096, t0);
        }
        for i in 0..100u64 {
            c.arrived(b"pc.ram", i * 4096, t0 + Duration::from_millis(i + 1));
        }
        // A page nobody asked for is background traffic, not a fault.
        c.arrived(b"pc.ram", 1 << 30, t0);
        let s = c.summary();
        assert_eq!(s.faults_served, 100);
        assert_eq!(s.fault_latency_p50_us, Some(51_000));
        assert_eq!(s.fault_latency_p99_us, Some(99_000));
    }

    fn decode_in_chunks(data: &[u8], chunk: usize) -> (Vec<ReturnPathMessage>, bool) {
        let mut d = ReturnPathDecoder::new();
        let mut out = Vec::new();
        for c in data.chunks(chunk.max(1)) {
            if d.feed(c, &mut out).is_err() {
                return (out, true);
            }
        }
        (out, false)
    }

    proptest::proptest! {
        // The fuzz target's property (fuzz/fuzz_targets/migrate_return_path.rs), on valid
        // streams with bytes flipped and on noise: what is decoded does not depend on chunking.
        #[test]
        fn decoding_does_not_depend_on_chunking(
            flips in proptest::collection::vec((0usize..200, proptest::prelude::any::<u8>()), 0..4),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            chunk in 1usize..40,
        ) {
            let mut s = sample();
            for (at, v) in flips {
                let n = s.len();
                s[at % n] = v;
            }
            s.extend_from_slice(&noise);
            let (whole, whole_failed) = decode_in_chunks(&s, s.len());
            let (chunked, chunked_failed) = decode_in_chunks(&s, chunk);
            proptest::prop_assert_eq!(whole_failed, chunked_failed);
            if !whole_failed {
                proptest::prop_assert_eq!(whole, chunked);
            }
        }
    }
}
