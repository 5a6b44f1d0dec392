//! The forwarder: one thread per direction reads packets from one site's TUN and writes them
//! into the other's after loss, rate limiting with a bounded queue, delay and jitter.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::LinkParams;
use crate::tun::Tun;

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionStats {
    /// Packets read from the sending site.
    pub received_packets: u64,
    /// Bytes (IP packets) read from the sending site.
    pub received_bytes: u64,
    /// Packets that crossed (written into the receiving site).
    pub packets: u64,
    /// Bytes that crossed.
    pub bytes: u64,
    /// Packets dropped by random loss (or blackhole).
    pub dropped_loss: u64,
    /// Packets dropped because the bottleneck queue was full.
    pub dropped_queue: u64,
    /// Packets the receiving TUN refused.
    pub write_errors: u64,
}

impl DirectionStats {
    /// Differences `self - earlier`.
    pub fn since(&self, e: &DirectionStats) -> DirectionStats {
        DirectionStats {
            received_packets: self.received_packets - e.received_packets,
            received_bytes: self.received_bytes - e.received_bytes,
            packets: self.packets - e.packets,
            bytes: self.bytes - e.bytes,
            dropped_loss: self.dropped_loss - e.dropped_loss,
            dropped_queue: self.dropped_queue - e.dropped_queue,
            write_errors: self.write_errors - e.write_errors,
        }
    }
}

#[derive(Default)]
pub struct Counters {
    received_packets: AtomicU64,
    received_bytes: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    dropped_loss: AtomicU64,
    dropped_queue: AtomicU64,
    write_errors: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> DirectionStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DirectionStats {
            received_packets: l(&self.received_packets),
            received_bytes: l(&self.received_bytes),
            packets: l(&self.packets),
            bytes: l(&self.bytes),
            dropped_loss: l(&self.dropped_loss),
            dropped_queue: l(&self.dropped_queue),
            write_errors: l(&self.write_errors),
        }
    }
}

pub struct Forwarder {
    pub from: Arc<Tun>,
    pub to: Arc<Tun>,
    pub a_to_b: bool,
    pub params: Arc<RwLock<LinkParams>>,
    pub stop: Arc<AtomicBool>,
    pub counters: Arc<Counters>,
    pub blackhole_until: Arc<RwLock<Option<Instant>>>,
    pub seed: u64,
}

struct Pending {
    due: Instant,
    pkt: Vec<u8>,
}

/// xorshift64*: fast, good enough for loss and jitter draws.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

const BATCH: usize = 64;

impl Forwarder {
    pub fn run(self) {
        let mut rng = Rng(self.seed | 1);
        let mut line: VecDeque<Pending> = VecDeque::new();
        // Time the bottleneck finishes sending what is queued so far.
        let mut link_free_at = Instant::now();
        let mut last_due = Instant::now();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let mut rd = vec![0u8; 65536];
        let c = &self.counters;
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            // Sleep until a packet is due or input arrives (at most 50 ms, to notice `stop`).
            let wait = line
                .front()
                .map(|p| p.due.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(50))
                .min(Duration::from_millis(50));
            if !wait.is_zero() {
                poll_in(self.from.fd(), wait);
            }
            let p = *self.params.read().unwrap_or_else(|e| e.into_inner());
            let d = if self.a_to_b { p.a_to_b } else { p.b_to_a };
            let blackholed = self
                .blackhole_until
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|t| Instant::now() < t);
            for _ in 0..BATCH {
                let n = match self.from.read(&mut rd) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "wanem read failed");
                        break;
                    }
                };
                let mut buf = spare.pop().unwrap_or_default();
                buf.clear();
                buf.extend_from_slice(&rd[..n]);
                c.received_packets.fetch_add(1, Ordering::Relaxed);
                c.received_bytes.fetch_add(n as u64, Ordering::Relaxed);
                let now = Instant::now();
                if blackholed || (d.loss > 0.0 && rng.next_f64() < d.loss) {
                    c.dropped_loss.fetch_add(1, Ordering::Relaxed);
                    spare.push(buf);
                    continue;
                }
                let departs = if let Some(ns) = (n as u64 * 8)
                    .saturating_mul(1_000_000_000)
                    .checked_div(d.rate_bps)
                {
                    let start = link_free_at.max(now);
                    if start.saturating_duration_since(now) > d.queue {
                        c.dropped_queue.fetch_add(1, Ordering::Relaxed);
                        spare.push(buf);
                        continue;
                    }
                    link_free_at = start + Duration::from_nanos(ns);
                    link_free_at
                } else {
                    now
                };
                let mut due = departs + d.delay;
                if !d.jitter.is_zero() {
                    let j = d.jitter.as_secs_f64() * (2.0 * rng.next_f64() - 1.0);
                    due = if j >= 0.0 {
                        due + Duration::from_secs_f64(j)
                    } else {
                        due.checked_sub(Duration::from_secs_f64(-j)).unwrap_or(due)
                    };
                }
                // No reordering: a packet never overtakes the one before it.
                due = due.max(last_due);
                last_due = due;
                line.push_back(Pending { due, pkt: buf });
            }
            let now = Instant::now();
            while line.front().is_some_and(|p| p.due <= now) {
                let Some(p) = line.pop_front() else { break };
                match self.to.write(&p.pkt) {
                    Ok(()) => {
                        c.packets.fetch_add(1, Ordering::Relaxed);
                        c.bytes.fetch_add(p.pkt.len() as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        c.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if spare.len() < 1024 {
                    spare.push(p.pkt);
                }
            }
        }
    }
}

fn poll_in(fd: i32, wait: Duration) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd and a valid timespec, both live for the call.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
}
