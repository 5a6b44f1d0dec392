//! Convergence policy: how much RAM may be left for stop-and-copy so the downtime stays under
//! the limit, from PBA's bandwidth forecast, the measured cost of re-sent pages and the pipe's
//! fill. Pure: the source feeds it measurements every tick and applies the decision.
//!
//! QEMU stops the guest when, at a dirty-bitmap sync, the dirty bytes are under
//! `bandwidth × downtime-limit`, where `bandwidth` is the raw rate at which it writes the
//! stream, re-measured every 100 ms (and jumping by 10× on a fast path). NovaCron decides
//! itself: it holds `downtime-limit` at a few milliseconds (QEMU keeps iterating), computes
//! the byte budget (the downtime it can afford minus round trips and the pipe's drain, times
//! the link's forecast rate, divided by the wire cost of a re-sent page, which HDE deltas make
//! small) and, once the dirty set found at the last sync fits, releases QEMU with
//! `downtime-limit = budget / highest recent QEMU rate`. QEMU then syncs at once and stops the
//! guest if the fresh dirty set is under a threshold that can only be smaller than the budget.

/// Measurements the policy needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyInput {
    /// Longest acceptable downtime.
    pub max_downtime_ms: f64,
    /// Path RTT (PBA), ms.
    pub rtt_ms: f64,
    /// Conservative bandwidth forecast (PBA's lower bound, capped by the user's limit), bits/s.
    pub bandwidth_bps: f64,
    /// Wire bytes per raw byte for pages sent again (HDE deltas); None before any re-send.
    pub resend_ratio: Option<f64>,
    /// Wire bytes per raw byte so far.
    pub overall_ratio: Option<f64>,
    /// Highest raw stream rate QEMU measured recently (query-migrate `mbps`).
    pub qemu_mbps: f64,
    /// Dirty bytes found at the last bitmap sync (None before the second pass).
    pub dirty_set_bytes: Option<u64>,
    /// RAM still to send in this pass.
    pub remaining_bytes: u64,
    /// Disks are mirrored (their switch-over costs round trips).
    pub disks: bool,
    /// Extra fixed cost of the switch-over the caller knows of (e.g. its commit), ms.
    pub commit_ms: f64,
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The last dirty set fits the budget: release QEMU (set `downtime-limit` to
    /// [`Decision::downtime_limit_ms`]); otherwise hold it at [`hold_limit_ms`].
    pub converge: bool,
    /// Value for QEMU's `downtime-limit` once converging, ms.
    pub downtime_limit_ms: u64,
    /// Raw RAM bytes that may be left for stop-and-copy.
    pub budget_raw_bytes: u64,
    /// Downtime if the guest stopped with the last dirty set; None when unknown.
    pub predicted_downtime_ms: Option<f64>,
    /// Fixed part of the downtime (round trips, device state), ms.
    pub overhead_ms: f64,
    /// Stream bytes allowed in flight while the bulk moves.
    pub bulk_window_bytes: u64,
    /// Stream bytes allowed in flight near the end (what must drain after the stop).
    pub tail_window_bytes: u64,
    /// Expected seconds to completion.
    pub eta_seconds: Option<f64>,
}

/// Device state and other non-RAM bytes of the final section, a typical upper bound.
pub const DEVICE_STATE_BYTES: f64 = 256.0 * 1024.0;
/// Fixed cost of stopping the source and starting the destination, ms (QMP, load).
pub const FIXED_SWITCH_MS: f64 = 15.0;
const MIN_WINDOW: f64 = 1024.0 * 1024.0;

/// `downtime-limit` while holding QEMU in pre-copy: small enough that it never stops on its own
/// with a real dirty set, large enough that each pass still ends with a sync.
pub fn hold_limit_ms(max_downtime_ms: f64) -> u64 {
    (max_downtime_ms / 20.0).clamp(1.0, 5.0) as u64
}
const MAX_WINDOW: f64 = 64.0 * 1024.0 * 1024.0;

/// Applies the policy.
pub fn decide(i: &PolicyInput) -> Decision {
    let rtt_ms = if i.rtt_ms > 0.0 { i.rtt_ms } else { 1.0 };
    let bytes_per_ms = i.bandwidth_bps / 8.0 / 1000.0;
    let bdp = bytes_per_ms * rtt_ms;
    let bulk_window = (3.0 * bdp + 512.0 * 1024.0).clamp(MIN_WINDOW, MAX_WINDOW);
    let tail_window = (1.25 * bdp + 256.0 * 1024.0).clamp(MIN_WINDOW, MAX_WINDOW);
    // Loaded → commit → Go is one RTT and a half; the mirror's last writes and flush another two.
    let overhead_ms =
        1.5 * rtt_ms + FIXED_SWITCH_MS + i.commit_ms + if i.disks { 2.0 * rtt_ms } else { 0.0 };
    let ratio = i
        .resend_ratio
        .or(i.overall_ratio)
        .unwrap_or(1.0)
        .clamp(0.001, 1.5);
    let dev_ratio = i.overall_ratio.unwrap_or(1.0).clamp(0.01, 1.5);
    if bytes_per_ms <= 0.0 {
        return Decision {
            converge: false,
            downtime_limit_ms: i.max_downtime_ms.max(1.0) as u64,
            budget_raw_bytes: 0,
            predicted_downtime_ms: None,
            overhead_ms,
            bulk_window_bytes: 4 << 20,
            tail_window_bytes: 4 << 20,
            eta_seconds: None,
        };
    }
    let drain_ms = tail_window / bytes_per_ms;
    let device_ms = DEVICE_STATE_BYTES * dev_ratio / bytes_per_ms;
    let budget_ms = i.max_downtime_ms - overhead_ms - drain_ms - device_ms;
    let budget_raw = (budget_ms.max(0.0) * bytes_per_ms / ratio).floor();
    // QEMU's threshold is its raw rate (bytes/ms = mbps × 125) times the limit.
    let qemu_bytes_per_ms = i.qemu_mbps * 125.0;
    let hold = hold_limit_ms(i.max_downtime_ms);
    let downtime_limit_ms = if qemu_bytes_per_ms > 0.0 {
        (budget_raw / qemu_bytes_per_ms).clamp(hold as f64, 2_000_000.0) as u64
    } else {
        hold
    };
    let predicted = i
        .dirty_set_bytes
        .map(|d| overhead_ms + drain_ms + device_ms + d as f64 * ratio / bytes_per_ms);
    let first_ratio = i.overall_ratio.unwrap_or(1.0).clamp(0.001, 1.5);
    let eta = Some(
        i.remaining_bytes as f64 * first_ratio / bytes_per_ms / 1000.0
            + predicted.unwrap_or(overhead_ms) / 1000.0,
    );
    let converge = i
        .dirty_set_bytes
        .is_some_and(|d| budget_raw > 0.0 && (d as f64) <= budget_raw);
    Decision {
        converge,
        downtime_limit_ms,
        budget_raw_bytes: budget_raw as u64,
        predicted_downtime_ms: predicted,
        overhead_ms,
        bulk_window_bytes: bulk_window as u64,
        tail_window_bytes: tail_window as u64,
        eta_seconds: eta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wan() -> PolicyInput {
        PolicyInput {
            max_downtime_ms: 300.0,
            rtt_ms: 50.0,
            bandwidth_bps: 100e6,
            resend_ratio: Some(0.02),
            overall_ratio: Some(0.3),
            qemu_mbps: 400.0,
            dirty_set_bytes: Some(16 << 20),
            remaining_bytes: 0,
            disks: false,
            commit_ms: 0.0,
        }
    }

    #[test]
    fn deltas_make_the_budget_larger_than_the_raw_link_allows() {
        let d = decide(&wan());
        // 300 ms minus 90 ms of round trips and fixed cost, ~84 ms of drain, ~6 ms of device state.
        let raw_link_budget = 0.3 * 12.5e6;
        assert!(d.budget_raw_bytes as f64 > 5.0 * raw_link_budget, "{d:?}");
        let p = d.predicted_downtime_ms.unwrap();
        assert!(p < 300.0, "16 MiB of deltas fit: {d:?}");
        assert!(d.converge);
        // QEMU's threshold (mbps × 125 × limit) equals the budget.
        let threshold = 400.0 * 125.0 * d.downtime_limit_ms as f64;
        assert!((threshold - d.budget_raw_bytes as f64).abs() < 400.0 * 125.0 + 1.0);
    }

    #[test]
    fn raw_pages_on_a_slow_link_do_not_fit() {
        let mut i = wan();
        i.resend_ratio = Some(1.0);
        i.bandwidth_bps = 10e6;
        let d = decide(&i);
        assert!(d.predicted_downtime_ms.unwrap() > 10_000.0);
        assert_eq!(d.budget_raw_bytes, 0);
        assert!(!d.converge, "keeps iterating");
    }

    #[test]
    fn disks_and_commit_cost_round_trips() {
        let a = decide(&wan());
        let mut i = wan();
        i.disks = true;
        i.commit_ms = 20.0;
        let b = decide(&i);
        assert!((b.overhead_ms - a.overhead_ms - 120.0).abs() < 1e-6);
        assert!(b.budget_raw_bytes < a.budget_raw_bytes);
    }

    #[test]
    fn unknown_bandwidth_falls_back_to_the_limit() {
        let mut i = wan();
        i.bandwidth_bps = 0.0;
        let d = decide(&i);
        assert!(!d.converge);
        assert_eq!(d.predicted_downtime_ms, None);
    }
}
