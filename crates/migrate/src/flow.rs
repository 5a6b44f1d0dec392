//! Flow control of the migration stream: a window of wire bytes in flight (sent, not yet
//! written into the destination QEMU) and an optional rate cap shared by stream and disks.
//!
//! The window keeps QEMU's own view of the bandwidth true: QEMU measures how fast its socket
//! drains, and without a bound the agent would swallow the stream into buffers, QEMU would
//! think the link fast, stop the guest too early, and the downtime would include draining
//! those buffers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bytes sent versus bytes the destination consumed.
#[derive(Debug)]
pub struct Window {
    state: Mutex<(u64, u64)>,
    changed: Condvar,
    limit: AtomicU64,
    closed: AtomicBool,
}

impl Window {
    /// A window of `limit` bytes.
    pub fn new(limit: u64) -> Window {
        Window {
            state: Mutex::new((0, 0)),
            changed: Condvar::new(),
            limit: AtomicU64::new(limit),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, u64)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the limit.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit.max(1), Ordering::Relaxed);
        self.changed.notify_all();
    }

    /// The limit now.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes sent and not yet consumed.
    pub fn in_flight(&self) -> u64 {
        let s = self.lock();
        s.0.saturating_sub(s.1)
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.lock().0
    }

    /// Bytes the destination consumed so far.
    pub fn consumed(&self) -> u64 {
        self.lock().1
    }

    /// Records the destination's count of consumed bytes.
    pub fn acked(&self, consumed: u64) {
        let mut s = self.lock();
        if consumed > s.1 {
            s.1 = consumed;
        }
        drop(s);
        self.changed.notify_all();
    }

    /// Wakes waiters for good: the migration is over.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }

    /// Blocks until `bytes` more fit (or nothing is in flight), then counts them as sent.
    /// Returns false when the window was closed.
    pub fn acquire_blocking(&self, bytes: u64) -> bool {
        let mut s = self.lock();
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return false;
            }
            let in_flight = s.0.saturating_sub(s.1);
            if in_flight == 0 || in_flight + bytes <= self.limit() {
                s.0 += bytes;
                return true;
            }
            s = self
                .changed
                .wait_timeout(s, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// Token bucket over wire bytes (the user's `--bandwidth`).
#[derive(Debug)]
pub struct RateLimit {
    bytes_per_s: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// A limit of `bits_per_s`; bursts of up to 50 ms.
    pub fn new(bits_per_s: u64) -> RateLimit {
        let bytes_per_s = bits_per_s as f64 / 8.0;
        RateLimit {
            bytes_per_s,
            state: Mutex::new((bytes_per_s * 0.05, Instant::now())),
        }
    }

    /// Takes `bytes` from the bucket and says how long the caller must wait before sending them.
    pub fn reserve(&self, bytes: usize) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let burst = self.bytes_per_s * 0.05;
        let refill = now.duration_since(s.1).as_secs_f64() * self.bytes_per_s;
        s.0 = (s.0 + refill).min(burst) - bytes as f64;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / self.bytes_per_s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn window_blocks_until_acked() {
        let w = Arc::new(Window::new(100));
        assert!(w.acquire_blocking(80));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            assert!(w2.acquire_blocking(50));
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(100));
        w.acked(60);
        let waited = t.join().unwrap();
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
        assert_eq!(w.in_flight(), 70);
        assert_eq!((w.sent(), w.consumed()), (130, 60));
        // An older count arriving late changes nothing.
        w.acked(40);
        assert_eq!(w.consumed(), 60);
        // A message larger than the window still goes when nothing is in flight.
        w.acked(130);
        assert!(w.acquire_blocking(1000));
        w.close();
        assert!(!w.acquire_blocking(1));
    }

    #[test]
    fn rate_limit_spaces_sends() {
        let r = RateLimit::new(8_000_000); // 1 MB/s
        let mut wait = Duration::ZERO;
        for _ in 0..10 {
            wait += r.reserve(100_000);
        }
        // 1 MB at 1 MB/s minus the 50 ms burst.
        assert!(wait >= Duration::from_millis(800), "{wait:?}");
    }
}
