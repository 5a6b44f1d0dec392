//! The guest's real pause in a migration: from the source QEMU's `STOP` event to the
//! destination QEMU's `RESUME` event. The two timestamps come from two hosts' wall clocks, so
//! the agents compare their clocks over the migration's own control channel, NTP style, with
//! the four timestamps of the exchange that ends the migration anyway: the source sends `Go`
//! (t1, source clock), the destination receives it (t2) and, once the VM runs, answers
//! `Resumed` (t3, destination clock), which the source receives (t4). Whatever the destination
//! did between t2 and t3 (asking the control plane, `cont`) drops out of the estimate.
//!
//! Offset (destination − source) θ = ((t2 − t1) + (t3 − t4)) / 2; the network part of the
//! exchange δ = (t4 − t1) − (t3 − t2). θ is exact when both directions take equally long; the
//! error is at most δ / 2 whatever the asymmetry (a one-way trip cannot be shorter than 0 or
//! longer than δ). On one host both clocks are the same clock and θ comes out near 0.

use serde::{Deserialize, Serialize};

/// The four timestamps of the Go ↔ Resumed exchange, microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockExchange {
    /// Source clock: Go sent.
    pub go_sent: i64,
    /// Destination clock: Go received.
    pub go_received: i64,
    /// Destination clock: Resumed sent.
    pub resumed_sent: i64,
    /// Source clock: Resumed received.
    pub resumed_received: i64,
}

/// Clock offset between the two hosts and its bound.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// Destination clock minus source clock, µs.
    pub offset_us: i64,
    /// |true offset − `offset_us`| ≤ this, µs (half the network time of the exchange).
    pub bound_us: i64,
}

impl ClockExchange {
    /// The offset estimate, or `None` when the timestamps contradict causality beyond what
    /// the two clocks could explain (the destination claims it answered before it was asked).
    pub fn offset(&self) -> Option<ClockOffset> {
        let network =
            (self.resumed_received - self.go_sent) - (self.resumed_sent - self.go_received);
        if network < 0 || self.resumed_sent < self.go_received {
            return None;
        }
        let offset2 =
            (self.go_received - self.go_sent) + (self.resumed_sent - self.resumed_received);
        Some(ClockOffset {
            offset_us: offset2 / 2,
            bound_us: (network + 1) / 2,
        })
    }
}

/// The measured pause.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    /// Source STOP → destination RESUME, on the source's clock, ms.
    pub downtime_ms: f64,
    /// The clock comparison behind it.
    pub clock: ClockOffset,
}

impl Pause {
    /// `stop_us`: the source's STOP event (source clock); `resume_us`: the destination's
    /// RESUME event (destination clock).
    pub fn measure(stop_us: i64, resume_us: i64, clock: ClockOffset) -> Pause {
        let resume_on_source_clock = resume_us - clock.offset_us;
        Pause {
            downtime_ms: (resume_on_source_clock - stop_us) as f64 / 1000.0,
            clock,
        }
    }

    /// The error bound of [`Pause::downtime_ms`], ms.
    pub fn bound_ms(&self) -> f64 {
        self.clock.bound_us as f64 / 1000.0
    }
}

/// Now on this host's wall clock (what QMP event timestamps use), µs since the Unix epoch.
pub fn now_unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_paths_give_the_exact_offset() {
        // Destination clock 5 s ahead; 25 ms each way; 300 ms between receiving Go and
        // answering (the control plane's confirmation, cont).
        let skew = 5_000_000;
        let x = ClockExchange {
            go_sent: 1_000_000,
            go_received: 1_025_000 + skew,
            resumed_sent: 1_325_000 + skew,
            resumed_received: 1_350_000,
        };
        let c = x.offset().unwrap();
        assert_eq!(c.offset_us, skew);
        assert_eq!(c.bound_us, 25_000);
        // STOP at 0.9 s on the source, RESUME at 1.32 s on the destination's clock.
        let p = Pause::measure(900_000, 1_320_000 + skew, c);
        assert!((p.downtime_ms - 420.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn asymmetry_stays_within_the_bound() {
        // 40 ms there, 10 ms back: the estimate is off by 15 ms, within the 25 ms bound.
        let x = ClockExchange {
            go_sent: 0,
            go_received: 40_000,
            resumed_sent: 140_000,
            resumed_received: 150_000,
        };
        let c = x.offset().unwrap();
        assert!(c.offset_us.abs() <= c.bound_us);
        assert_eq!(c.offset_us, 15_000);
    }

    #[test]
    fn one_host_compares_a_clock_with_itself() {
        let x = ClockExchange {
            go_sent: 100,
            go_received: 180,
            resumed_sent: 5_180,
            resumed_received: 5_260,
        };
        let c = x.offset().unwrap();
        assert_eq!(c.offset_us, 0);
        assert_eq!(c.bound_us, 80);
    }

    #[test]
    fn impossible_timestamps_give_no_estimate() {
        let x = ClockExchange {
            go_sent: 0,
            go_received: 500,
            resumed_sent: 100,
            resumed_received: 50,
        };
        assert_eq!(x.offset(), None);
    }
}
