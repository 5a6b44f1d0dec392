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
//!
//! The pause this bounds is the real one, the source's STOP to the destination's RESUME: the
//! remainder's transfer at the forecast goodput, the pipe's drain, the device state, the
//! destination's load, one and a half round trips (Loaded back, Go forth) and the caller's
//! commit (the control plane's round trips on both sides).
//!
//! When the guest dirties memory faster than the link can carry it again, pre-copy cannot
//! converge: each pass re-sends at least as much as the one before. The policy then escalates
//! instead of switching over anyway or failing: it throttles the guest through QEMU's
//! auto-converge, with the throttle computed from the model. A pass of `S` dirty bytes takes
//! `S / G` at the re-send goodput `G` (wire rate ÷ wire bytes per re-sent byte) while the
//! guest dirties `D · S / G`; pre-copy shrinks the dirty set by `D / G` per pass. Throttling
//! the vCPU by `p` scales the dirty rate by `1 − p` (the measured `D` already carries the
//! current throttle, so the unthrottled rate is `D / (1 − p_now)`). The policy asks for the
//! `p` that brings `D / G` to [`TARGET_SHRINK`]; QEMU applies it (`cpu-throttle-initial`) at
//! the next sync where the guest still dirtied more than [`TARGET_SHRINK`] of what was sent
//! (`throttle-trigger-threshold`), and adds `cpu-throttle-increment` each time that repeats,
//! so a guest that slows down less than the model says is throttled further in steps sized
//! by the remaining gap.

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
    /// Bytes/s the guest dirtied at the last sync (QEMU's rate, already throttled).
    pub dirty_rate_bytes_per_sec: f64,
    /// Guest CPU throttle in force, percent.
    pub throttle_percent: u64,
    /// The caller allows throttling the guest (auto-converge).
    pub may_throttle: bool,
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The last dirty set fits the budget: release QEMU (set `downtime-limit` to
    /// [`Decision::downtime_limit_ms`]); otherwise hold it at [`hold_limit_ms`].
    pub converge: bool,
    /// Value for QEMU's `downtime-limit` once converging, ms.
    pub downtime_limit_ms: u64,
    /// Value for QEMU's `downtime-limit` while holding it in pre-copy, ms: at most
    /// [`hold_limit_ms`], and low enough that QEMU's own threshold (its measured rate times
    /// the limit) stays under the budget, so it cannot stop the guest with more left than the
    /// pause carries.
    pub hold_ms: u64,
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
    /// The window to use now: the tail window once converging or near the end of a pass (where
    /// QEMU syncs and may stop the guest), the bulk window otherwise.
    pub window_bytes: u64,
    /// The shortest pause this link allows: the downtime with nothing left dirty (round trips,
    /// the tail window's drain, the device state), ms. Above `max_downtime_ms`, no dirty set
    /// fits and pre-copy can never switch over within the limit.
    pub floor_ms: f64,
    /// Expected seconds to completion.
    pub eta_seconds: Option<f64>,
    /// Pre-copy cannot converge at this dirty rate: throttle the guest so.
    pub throttle: Option<Throttle>,
    /// Dirty rate over re-send goodput (`D / G`); pre-copy converges when it is below 1.
    pub dirty_to_goodput: Option<f64>,
}

/// Auto-converge settings the policy asks for (QEMU parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// Throttle the model says brings the dirty rate to [`TARGET_SHRINK`] of the goodput,
    /// percent (`cpu-throttle-initial`; the level to reach when already throttled).
    pub target_percent: u64,
    /// Step QEMU adds at each further sync that still dirtied too much
    /// (`cpu-throttle-increment`).
    pub increment_percent: u64,
    /// Dirtied ÷ sent per sync above which QEMU throttles, percent
    /// (`throttle-trigger-threshold`).
    pub trigger_threshold_percent: u64,
}

/// Device state and other non-RAM bytes of the final section, a typical upper bound (a tiny
/// TCG guest's whole final section, remainder included, crossed a 4 Mbit/s link as under
/// 80 KB).
pub const DEVICE_STATE_BYTES: f64 = 128.0 * 1024.0;
/// Fixed cost of stopping the source and starting the destination, ms (QMP, `cont`).
pub const FIXED_SWITCH_MS: f64 = 15.0;
/// The destination QEMU's load of the last section (device state, RAM it still holds in its
/// buffer) and its block activation at `cont`, ms: measured 20-60 ms with TCG guests on a
/// loaded 2-core host.
pub const DESTINATION_LOAD_MS: f64 = 40.0;
/// Dirty rate ÷ re-send goodput the throttle aims at: each pass then re-sends at most half of
/// the one before, so the dirty set reaches the budget in a few passes.
pub const TARGET_SHRINK: f64 = 0.5;
/// QEMU's ceiling for the throttle (`max-cpu-throttle` default).
pub const MAX_THROTTLE_PERCENT: u64 = 99;
const MIN_WINDOW: f64 = 1024.0 * 1024.0;
/// Bytes the tail window holds beyond the path's BDP at least, and its smallest size: on a
/// slow link every byte of it is pause. (A message larger than the window is still sent,
/// alone, once nothing else is in flight.)
const TAIL_SLACK: f64 = 64.0 * 1024.0;
const MIN_TAIL_WINDOW: f64 = 64.0 * 1024.0;

/// `downtime-limit` while holding QEMU in pre-copy: small enough that it never stops on its own
/// with a real dirty set, large enough that each pass still ends with a sync.
pub fn hold_limit_ms(max_downtime_ms: f64) -> u64 {
    (max_downtime_ms / 20.0).clamp(1.0, 5.0) as u64
}
const MAX_WINDOW: f64 = 64.0 * 1024.0 * 1024.0;

/// The fixed part of the pause, whatever the link's rate: Loaded → commit → Go is one RTT and
/// a half, the mirror's last writes and flush another two, plus the switch, the destination's
/// load and the caller's commit.
pub fn overhead_ms(rtt_ms: f64, disks: bool, commit_ms: f64) -> f64 {
    1.5 * rtt_ms
        + FIXED_SWITCH_MS
        + DESTINATION_LOAD_MS
        + commit_ms
        + if disks { 2.0 * rtt_ms } else { 0.0 }
}

/// The limit a migration without one given takes when the link cannot pause the guest for the
/// default: half again the floor (room for a dirty remainder beside it), in 10 ms steps.
pub fn raised_limit_ms(floor_ms: f64) -> u64 {
    ((floor_ms * 1.5 / 10.0).ceil() as u64).max(1) * 10
}

/// The pause limit set against the link's floor (the shortest pause it allows, or a lower
/// bound of it): `Ok(None)` when it fits, `Ok(Some(limit))` for a raised default, and the
/// reason when a limit the caller gave cannot be met.
pub fn limit_against_floor(
    floor_ms: f64,
    limit_ms: f64,
    raisable: bool,
) -> Result<Option<u64>, String> {
    if floor_ms < limit_ms {
        return Ok(None);
    }
    let raised = raised_limit_ms(floor_ms);
    if raisable {
        return Ok(Some(raised));
    }
    Err(format!(
        "on this link the guest cannot pause for less than about {floor_ms:.0} ms, so a \
         {limit_ms:.0} ms limit cannot be met: give --max-downtime {raised}ms or more \
         (or leave it out and the default is raised to what the link allows)"
    ))
}

/// Applies the policy.
pub fn decide(i: &PolicyInput) -> Decision {
    let rtt_ms = if i.rtt_ms > 0.0 { i.rtt_ms } else { 1.0 };
    let bytes_per_ms = i.bandwidth_bps / 8.0 / 1000.0;
    let bdp = bytes_per_ms * rtt_ms;
    let bulk_window = (3.0 * bdp + 512.0 * 1024.0).clamp(MIN_WINDOW, MAX_WINDOW);
    // Near the end the link needs a BDP in flight to stay full, and little more: what is in
    // flight at the stop drains during the pause.
    let tail_window = (bdp + (0.25 * bdp).max(TAIL_SLACK)).clamp(MIN_TAIL_WINDOW, MAX_WINDOW);
    let overhead_ms = overhead_ms(rtt_ms, i.disks, i.commit_ms);
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
            hold_ms: hold_limit_ms(i.max_downtime_ms),
            budget_raw_bytes: 0,
            predicted_downtime_ms: None,
            overhead_ms,
            bulk_window_bytes: 4 << 20,
            tail_window_bytes: 4 << 20,
            window_bytes: 4 << 20,
            floor_ms: overhead_ms,
            eta_seconds: None,
            throttle: None,
            dirty_to_goodput: None,
        };
    }
    let drain_ms = tail_window / bytes_per_ms;
    let device_ms = DEVICE_STATE_BYTES * dev_ratio / bytes_per_ms;
    let floor_ms = overhead_ms + drain_ms + device_ms;
    let budget_ms = i.max_downtime_ms - floor_ms;
    let budget_raw = (budget_ms.max(0.0) * bytes_per_ms / ratio).floor();
    // QEMU's threshold is its raw rate (bytes/ms = mbps × 125) times the limit.
    let qemu_bytes_per_ms = i.qemu_mbps * 125.0;
    let hold = hold_limit_ms(i.max_downtime_ms);
    let (downtime_limit_ms, hold_ms) = if qemu_bytes_per_ms > 0.0 {
        let fits = budget_raw / qemu_bytes_per_ms;
        (
            fits.clamp(hold as f64, 2_000_000.0) as u64,
            fits.clamp(1.0, hold as f64) as u64,
        )
    } else {
        (hold, hold)
    };
    let predicted = i
        .dirty_set_bytes
        .map(|d| floor_ms + d as f64 * ratio / bytes_per_ms);
    let first_ratio = i.overall_ratio.unwrap_or(1.0).clamp(0.001, 1.5);
    let eta = Some(
        i.remaining_bytes as f64 * first_ratio / bytes_per_ms / 1000.0
            + predicted.unwrap_or(overhead_ms) / 1000.0,
    );
    let converge = i
        .dirty_set_bytes
        .is_some_and(|d| budget_raw > 0.0 && (d as f64) <= budget_raw);
    // QEMU syncs (and may stop) once what is left of a pass falls under its threshold; a
    // compressible stretch empties the bulk window's worth of raw bytes faster than the
    // window itself drains, so the tail window takes over while two bulk windows are left.
    let near_pass_end = i.remaining_bytes as f64 * first_ratio <= 2.0 * bulk_window;
    let window = if converge || near_pass_end {
        tail_window
    } else {
        bulk_window
    };
    // Re-send goodput, raw bytes/s.
    let goodput = bytes_per_ms * 1000.0 / ratio;
    let dirty_to_goodput = (i.dirty_set_bytes.is_some() && i.dirty_rate_bytes_per_sec > 0.0)
        .then(|| i.dirty_rate_bytes_per_sec / goodput);
    let throttle = match dirty_to_goodput {
        Some(r) if i.may_throttle && !converge && r > TARGET_SHRINK => {
            Some(throttle_for(r, i.throttle_percent))
        }
        _ => None,
    };
    Decision {
        converge,
        downtime_limit_ms,
        hold_ms,
        budget_raw_bytes: budget_raw as u64,
        predicted_downtime_ms: predicted,
        overhead_ms,
        bulk_window_bytes: bulk_window as u64,
        tail_window_bytes: tail_window as u64,
        window_bytes: window as u64,
        floor_ms,
        eta_seconds: eta,
        throttle,
        dirty_to_goodput,
    }
}

/// The throttle that brings a dirty-to-goodput ratio `r`, measured under `now_percent`, to
/// [`TARGET_SHRINK`], and the step for QEMU's further increments.
fn throttle_for(r: f64, now_percent: u64) -> Throttle {
    let now = (now_percent.min(MAX_THROTTLE_PERCENT) as f64) / 100.0;
    // The unthrottled ratio, and the share of CPU the guest may keep.
    let r0 = r / (1.0 - now);
    let keep = (TARGET_SHRINK / r0).clamp(0.0, 1.0);
    let target = ((1.0 - keep) * 100.0).ceil() as u64;
    let target = target.clamp(now_percent.max(5), MAX_THROTTLE_PERCENT);
    // Unthrottled so far: QEMU starts at the target, then steps of half the distance still to
    // cover (at least 5), so two or three syncs reach the ceiling if the guest slows down less
    // than the model says.
    let increment = if now_percent == 0 {
        (MAX_THROTTLE_PERCENT - target).div_ceil(2).clamp(5, 50)
    } else {
        // Already throttled: the next step goes straight to the new target.
        target.saturating_sub(now_percent).max(5)
    };
    Throttle {
        target_percent: target,
        increment_percent: increment,
        trigger_threshold_percent: (TARGET_SHRINK * 100.0) as u64,
    }
}

/// Passes after which pre-copy may count as stalled.
pub const STALL_PASSES: usize = 3;
/// And the time they must span: a guest whose dirty rate swings (bursts, a periodic job) gets
/// at least this long to show a quiet phase in which the dirty set fits.
pub const STALL_SPAN: std::time::Duration = std::time::Duration::from_secs(10);
/// A recent pass counts as progress when its dirty set is below this share of the best one
/// before it.
pub const STALL_PROGRESS: f64 = 0.9;
/// How many of the last passes must all fail to make progress.
const STALL_RECENT: usize = 2;

/// The dirty set found at each sync after the first pass. Pre-copy works while each pass
/// leaves less than the ones before (a rising throttle is how it gets there); a dirty set that
/// stopped shrinking will not shrink, whatever the average rates say (bursts, or pages
/// rewritten even when throttled, never let a pass fit). Pre-copy then only burns the link and
/// the deadline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassHistory {
    passes: Vec<(std::time::Instant, u64)>,
    /// The throttle the last recorded pass ran under.
    last_throttle_percent: u64,
}

/// Pre-copy stopped making progress: the best dirty set of the last passes and of the ones
/// before, bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stall {
    pub passes: usize,
    pub span: std::time::Duration,
    pub best_earlier: u64,
    pub best_recent: u64,
    /// The throttle the last pass ran under, percent.
    pub throttle_percent: u64,
}

impl PassHistory {
    /// One sync's dirty set, and the throttle the guest ran under while it was dirtied.
    pub fn record(&mut self, at: std::time::Instant, dirty_set: u64, throttle_percent: u64) {
        self.passes.push((at, dirty_set));
        self.last_throttle_percent = throttle_percent;
    }

    /// Some when at least [`STALL_PASSES`] passes spanning [`STALL_SPAN`] were recorded and
    /// none of the last two beat the best before them by a tenth.
    pub fn stalled(&self) -> Option<Stall> {
        let n = self.passes.len();
        let (first, last) = (self.passes.first()?, self.passes.last()?);
        let span = last.0.saturating_duration_since(first.0);
        if n < STALL_PASSES || span < STALL_SPAN {
            return None;
        }
        let (earlier, recent) = self.passes.split_at(n - STALL_RECENT);
        let best_earlier = earlier.iter().map(|x| x.1).min()?;
        let best_recent = recent.iter().map(|x| x.1).min()?;
        ((best_recent as f64) >= STALL_PROGRESS * best_earlier as f64).then_some(Stall {
            passes: n,
            span,
            best_earlier,
            best_recent,
            throttle_percent: self.last_throttle_percent,
        })
    }
}

/// The throttle for a stalled pre-copy ([`PassHistory::stalled`]), the first escalation in
/// every mode: the rate model said the guest was slow enough, the passes say the dirty set does
/// not shrink, so the guest is treated as re-dirtying all that each pass sends (`D / G` = 1).
/// That halves the CPU it keeps, and QEMU's further steps (at each sync that still dirtied half
/// of what it sent) reach the ceiling in two or three passes. With post-copy to follow
/// (`to_ceiling`), it goes to the ceiling at once: on a slow link each pass takes many seconds,
/// and one pass at the ceiling shows whether pre-copy can land. None at the ceiling.
///
/// Either way QEMU's trigger drops to [`STALL_TRIGGER_PERCENT`]: the stall showed that the
/// dirtied-to-sent ratio does not tell (a `bursty` guest at 20 Mbit/s dirtied 40-55 % of what
/// each sync sent, around the default trigger of 50 %, and QEMU applied no step for minutes).
pub fn stall_throttle(now_percent: u64, to_ceiling: bool) -> Option<Throttle> {
    if now_percent >= MAX_THROTTLE_PERCENT {
        return None;
    }
    let (target_percent, increment_percent) = if to_ceiling {
        (MAX_THROTTLE_PERCENT, MAX_THROTTLE_PERCENT - now_percent)
    } else {
        let t = throttle_for(1.0, now_percent);
        (t.target_percent, t.increment_percent)
    };
    Some(Throttle {
        target_percent,
        increment_percent,
        trigger_threshold_percent: STALL_TRIGGER_PERCENT,
    })
}

/// QEMU's `throttle-trigger-threshold` once pre-copy stalled: it steps the throttle up at
/// every other sync in which the guest dirtied anything, its lowest setting.
pub const STALL_TRIGGER_PERCENT: u64 = 1;

impl Throttle {
    /// What to ask of QEMU when `self` was asked before and `next` is wanted now: the throttle
    /// only goes up within a migration (as QEMU's own does), so the higher target with its
    /// step, and the lower trigger. A model that asks for less after a stall (its ratio fell
    /// for a pass) must not undo the stall's escalation: lowering `cpu-throttle-initial`
    /// before QEMU applied it once would leave the guest at the model's few per cent.
    pub fn ratchet(self, next: Throttle) -> Throttle {
        let (target_percent, increment_percent) = if next.target_percent >= self.target_percent {
            (next.target_percent, next.increment_percent)
        } else {
            (self.target_percent, self.increment_percent)
        };
        Throttle {
            target_percent,
            increment_percent,
            trigger_threshold_percent: self
                .trigger_threshold_percent
                .min(next.trigger_threshold_percent),
        }
    }
}

/// What the post-copy decision of `--mode auto` looks at, each tick of pre-copy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PostcopyCheck {
    /// Dirty-bitmap syncs so far (QEMU's `dirty-sync-count`; 2 once the first pass ended).
    pub pass: u64,
    /// [`Decision::converge`] of this tick.
    pub converging: bool,
    /// [`Decision::dirty_to_goodput`] of this tick.
    pub dirty_to_goodput: Option<f64>,
    /// The guest's throttle now, percent.
    pub throttle_percent: u64,
    /// Whether the policy may throttle the guest at all.
    pub may_throttle: bool,
    pub elapsed: std::time::Duration,
    pub deadline: Option<std::time::Duration>,
    /// The destination answers, its acks keep coming and no page request waits too long.
    pub healthy: bool,
    /// [`PassHistory::stalled`] of this tick.
    pub stall: Option<Stall>,
}

/// `--mode auto`: whether to leave pre-copy for post-copy now, and why. Post-copy splits the
/// VM across two hosts, so it is chosen only when pre-copy cannot land the VM within the
/// limit on its pause: the throttle is at its ceiling and the guest still dirties at least what
/// the link re-sends (each pass is no smaller than the one before), or throttling is not
/// allowed and two passes showed the same, or the dirty set stopped shrinking
/// ([`PassHistory::stalled`]: the guest's average rate may be below the link's while its
/// bursts, or a floor of pages it rewrites even when throttled, never let a pass fit) with the
/// throttle at its ceiling or not allowed (before that a stall raises the throttle:
/// [`stall_throttle`]), or
/// half of the deadline went by without converging (the throttle's steps would not finish in
/// the rest). Never while the peer or the link is unhealthy: a split VM needs both.
pub fn postcopy_reason(c: &PostcopyCheck) -> Option<String> {
    if !c.healthy || c.converging || c.pass < 2 {
        return None;
    }
    let outruns = c.dirty_to_goodput.is_some_and(|r| r >= 1.0);
    if outruns && c.throttle_percent >= MAX_THROTTLE_PERCENT {
        return Some(format!(
            "throttled to {}% the guest still dirties {:.1}x what the link re-sends",
            c.throttle_percent,
            c.dirty_to_goodput.unwrap_or(0.0)
        ));
    }
    if outruns && !c.may_throttle && c.pass >= 3 {
        return Some(format!(
            "the guest dirties {:.1}x what the link re-sends and may not be throttled",
            c.dirty_to_goodput.unwrap_or(0.0)
        ));
    }
    if let Some(s) = c.stall
        && (!c.may_throttle || s.throttle_percent >= MAX_THROTTLE_PERCENT)
    {
        let at = match s.throttle_percent {
            0 => "unthrottled".to_string(),
            p => format!("throttled to {p}%"),
        };
        return Some(format!(
            "pre-copy stalled: {at}, the dirty set stayed at {} MiB or more over the last {STALL_RECENT} of {} passes in {} s (best before: {} MiB)",
            s.best_recent >> 20,
            s.passes,
            s.span.as_secs(),
            s.best_earlier >> 20
        ));
    }
    if let Some(d) = c.deadline
        && c.elapsed * 2 >= d
    {
        return Some(format!(
            "half of the {} s deadline passed without converging",
            d.as_secs()
        ));
    }
    None
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
            dirty_rate_bytes_per_sec: 0.0,
            throttle_percent: 0,
            may_throttle: true,
        }
    }

    #[test]
    fn deltas_make_the_budget_larger_than_the_raw_link_allows() {
        let d = decide(&wan());
        // 300 ms minus 130 ms of round trips, load and fixed cost, ~84 ms of drain, ~6 ms of device state.
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
        // Room for a few dozen raw pages at most, against a 16 MiB dirty set.
        assert!(d.budget_raw_bytes < 64 << 10, "{d:?}");
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
    fn the_real_pause_counts_the_load_and_both_commits() {
        let mut i = wan();
        i.commit_ms = 60.0;
        let d = decide(&i);
        // 1.5 RTT + fixed switch + the destination's load + the caller's commit round trips.
        assert!(
            (d.overhead_ms - (75.0 + FIXED_SWITCH_MS + DESTINATION_LOAD_MS + 60.0)).abs() < 1e-9
        );
        let p = d.predicted_downtime_ms.unwrap();
        assert!(p > d.overhead_ms, "{d:?}");
        // A dirty set that fit on the source's timer alone but not within the whole pause is
        // not released.
        i.dirty_set_bytes = Some(d.budget_raw_bytes + 4096);
        let d = decide(&i);
        assert!(
            !d.converge && d.predicted_downtime_ms.unwrap() > 300.0,
            "{d:?}"
        );
    }

    /// 768 MiB hot-set guest on a 20 Mbit/s link: raw pages dirtied at 8 MiB/s against
    /// 2.5 MB/s of goodput. The policy neither releases nor gives up: it asks for a throttle.
    fn outrun() -> PolicyInput {
        PolicyInput {
            max_downtime_ms: 300.0,
            rtt_ms: 120.0,
            bandwidth_bps: 20e6,
            resend_ratio: Some(1.0),
            overall_ratio: Some(0.5),
            qemu_mbps: 40.0,
            dirty_set_bytes: Some(48 << 20),
            remaining_bytes: 48 << 20,
            disks: false,
            commit_ms: 30.0,
            dirty_rate_bytes_per_sec: 8.0 * 1048576.0,
            throttle_percent: 0,
            may_throttle: true,
        }
    }

    #[test]
    fn a_guest_that_outruns_the_link_is_throttled_by_the_model() {
        let d = decide(&outrun());
        assert!(!d.converge);
        let r = d.dirty_to_goodput.unwrap();
        assert!((r - 8.0 * 1048576.0 / 2.5e6).abs() < 1e-6, "{d:?}");
        let t = d.throttle.expect("escalates");
        // keep = 0.5 / 3.36 → throttle ≈ 86 %.
        assert_eq!(t.target_percent, 86, "{t:?}");
        assert_eq!(t.trigger_threshold_percent, 50);
        assert!(t.increment_percent >= 5 && t.target_percent + 2 * t.increment_percent >= 99);
    }

    #[test]
    fn a_throttled_guest_still_too_fast_is_throttled_further() {
        // At 86 % the guest still dirties 1.5 MB/s (the model expected ~1.25): the unthrottled
        // rate is re-estimated from the throttled one and the target goes up.
        let mut i = outrun();
        i.throttle_percent = 86;
        i.dirty_rate_bytes_per_sec = 1.5e6;
        let t = decide(&i).throttle.unwrap();
        assert!(
            t.target_percent > 86 && t.target_percent <= MAX_THROTTLE_PERCENT,
            "{t:?}"
        );
        // Slow enough now: no further throttle requested.
        i.dirty_rate_bytes_per_sec = 1.0e6;
        assert_eq!(decide(&i).throttle, None);
    }

    #[test]
    fn no_throttle_when_pre_copy_converges_or_throttling_is_off() {
        // Dirty rate a fifth of the goodput: passes shrink by 5x, no throttle.
        let mut i = outrun();
        i.dirty_rate_bytes_per_sec = 0.5e6;
        assert_eq!(decide(&i).throttle, None);
        // The user did not allow throttling: the policy keeps copying (and the deadline decides).
        let mut i = outrun();
        i.may_throttle = false;
        let d = decide(&i);
        assert_eq!(d.throttle, None);
        assert!(!d.converge);
        // A dirty set that fits is released, whatever the rate.
        let mut i = outrun();
        i.dirty_set_bytes = Some(4096);
        i.bandwidth_bps = 1e9;
        i.rtt_ms = 10.0;
        let d = decide(&i);
        assert!(d.converge && d.throttle.is_none(), "{d:?}");
        // Before the second pass nothing is known about the dirty rate.
        let mut i = outrun();
        i.dirty_set_bytes = None;
        assert_eq!(decide(&i).throttle, None);
    }

    #[test]
    fn unknown_bandwidth_falls_back_to_the_limit() {
        let mut i = wan();
        i.bandwidth_bps = 0.0;
        let d = decide(&i);
        assert!(!d.converge);
        assert_eq!(d.predicted_downtime_ms, None);
    }

    #[test]
    fn postcopy_only_when_pre_copy_cannot_land_and_all_is_healthy() {
        use std::time::Duration;
        let stuck = PostcopyCheck {
            pass: 6,
            converging: false,
            dirty_to_goodput: Some(1.4),
            throttle_percent: MAX_THROTTLE_PERCENT,
            may_throttle: true,
            elapsed: Duration::from_secs(30),
            deadline: Some(Duration::from_secs(600)),
            healthy: true,
            stall: None,
        };
        assert!(postcopy_reason(&stuck).unwrap().contains("99%"));
        for not_yet in [
            PostcopyCheck {
                healthy: false,
                ..stuck
            },
            PostcopyCheck {
                converging: true,
                ..stuck
            },
            PostcopyCheck { pass: 1, ..stuck },
            PostcopyCheck {
                throttle_percent: 60,
                ..stuck
            },
            PostcopyCheck {
                dirty_to_goodput: Some(0.8),
                ..stuck
            },
        ] {
            assert_eq!(postcopy_reason(&not_yet), None, "{not_yet:?}");
        }
        let unthrottled = PostcopyCheck {
            may_throttle: false,
            throttle_percent: 0,
            ..stuck
        };
        assert!(postcopy_reason(&unthrottled).is_some());
        let late = PostcopyCheck {
            throttle_percent: 60,
            elapsed: Duration::from_secs(300),
            ..stuck
        };
        assert!(postcopy_reason(&late).unwrap().contains("deadline"));
        assert_eq!(
            postcopy_reason(&PostcopyCheck {
                healthy: false,
                ..late
            }),
            None
        );
    }

    fn history(sets_mib: &[u64], every: std::time::Duration) -> PassHistory {
        let t0 = std::time::Instant::now();
        let mut h = PassHistory::default();
        for (i, m) in sets_mib.iter().enumerate() {
            h.record(t0 + every * i as u32, m << 20, MAX_THROTTLE_PERCENT);
        }
        h
    }

    #[test]
    fn a_dirty_set_that_stops_shrinking_is_a_stall() {
        use std::time::Duration;
        let s = Duration::from_secs(3);
        // Bursts: the quiet phase's passes come back to ~12 MiB and never below.
        let bursty = history(&[40, 12, 38, 13, 40, 14], s);
        let stall = bursty.stalled().unwrap();
        assert_eq!(
            (stall.passes, stall.best_earlier, stall.best_recent),
            (6, 12 << 20, 14 << 20)
        );
        assert_eq!(stall.span, Duration::from_secs(15));
        // Still shrinking by more than a tenth a pass (a rising throttle does that): pre-copy
        // is getting there.
        assert_eq!(history(&[40, 30, 22, 16, 12], s).stalled(), None);
        // One recent pass that beats the best is progress.
        assert_eq!(history(&[40, 12, 38, 9, 40], s).stalled(), None);
        // Too few passes, or too short a time for a quiet phase to show.
        assert_eq!(history(&[20, 20], Duration::from_secs(10)).stalled(), None);
        assert!(
            history(&[20, 20, 20], Duration::from_secs(10))
                .stalled()
                .is_some()
        );
        assert_eq!(history(&[20; 8], Duration::from_secs(1)).stalled(), None);
        // A flat set after a shrinking start.
        let mut h = history(&[64, 40, 24, 20, 19], s);
        assert_eq!(h.stalled(), None, "19 beat 24 by more than a tenth");
        h.record(std::time::Instant::now() + s * 5, 19 << 20, 0);
        assert!(h.stalled().is_some(), "19 and 19 against 20 before them");
    }

    #[test]
    fn a_stall_halves_the_cpu_the_guest_keeps() {
        let t = stall_throttle(0, false).unwrap();
        assert_eq!(
            (t.target_percent, t.trigger_threshold_percent),
            (50, STALL_TRIGGER_PERCENT)
        );
        assert!(t.increment_percent >= 20, "{t:?}");
        assert_eq!(stall_throttle(50, false).unwrap().target_percent, 75);
        assert_eq!(
            stall_throttle(98, false).unwrap().target_percent,
            MAX_THROTTLE_PERCENT
        );
        assert_eq!(stall_throttle(MAX_THROTTLE_PERCENT, false), None);
        // Post-copy next: one step to the ceiling.
        let t = stall_throttle(24, true).unwrap();
        assert_eq!(t.target_percent, MAX_THROTTLE_PERCENT);
        assert_eq!(t.target_percent, 24 + t.increment_percent);
        assert_eq!(stall_throttle(MAX_THROTTLE_PERCENT, true), None);
    }

    #[test]
    fn the_throttle_asked_of_qemu_only_goes_up() {
        let stall = stall_throttle(0, true).unwrap();
        // The model, a pass later, asks for 8 % with the default trigger: the stall's stays.
        let model = throttle_for(0.54, 0);
        assert!(model.target_percent < 20, "{model:?}");
        assert_eq!(stall.ratchet(model), stall);
        // A model that asks for more than before gets its target and step, and keeps the
        // stall's trigger.
        let low = stall_throttle(0, false).unwrap();
        let high = throttle_for(3.0, 50);
        assert!(high.target_percent > low.target_percent, "{high:?}");
        let r = low.ratchet(high);
        assert_eq!(
            (
                r.target_percent,
                r.increment_percent,
                r.trigger_threshold_percent
            ),
            (
                high.target_percent,
                high.increment_percent,
                STALL_TRIGGER_PERCENT
            )
        );
    }

    #[test]
    fn a_stall_switches_to_postcopy_before_the_half_deadline() {
        use std::time::Duration;
        let stall = history(&[40, 12, 38, 13, 40, 14], Duration::from_secs(3)).stalled();
        let c = PostcopyCheck {
            pass: 8,
            converging: false,
            // The average rate is below the link's: the outrun rule does not fire.
            dirty_to_goodput: Some(0.6),
            throttle_percent: MAX_THROTTLE_PERCENT,
            may_throttle: true,
            elapsed: Duration::from_secs(40),
            deadline: Some(Duration::from_secs(300)),
            healthy: true,
            stall,
        };
        let why = postcopy_reason(&c).unwrap();
        assert!(why.contains("stalled") && why.contains("12 MiB"), "{why}");
        let unthrottled = PostcopyCheck {
            may_throttle: false,
            throttle_percent: 0,
            stall: stall.map(|s| Stall {
                throttle_percent: 0,
                ..s
            }),
            ..c
        };
        assert!(
            postcopy_reason(&unthrottled)
                .unwrap()
                .contains("unthrottled")
        );
        for not_now in [
            PostcopyCheck {
                healthy: false,
                ..c
            },
            PostcopyCheck {
                converging: true,
                ..c
            },
            PostcopyCheck { stall: None, ..c },
            // The last pass ran below the ceiling: the throttle goes up first, and a pass at
            // the ceiling must show the same.
            PostcopyCheck {
                stall: stall.map(|s| Stall {
                    throttle_percent: 50,
                    ..s
                }),
                ..c
            },
        ] {
            assert_eq!(postcopy_reason(&not_now), None, "{not_now:?}");
        }
    }

    #[test]
    fn a_long_thin_link_has_a_floor_above_the_default_limit() {
        // 20 Mbit/s, 150 ms: the round trips alone take 225 ms; no dirty set fits 300 ms.
        let i = PolicyInput {
            rtt_ms: 150.0,
            bandwidth_bps: 20e6,
            dirty_set_bytes: Some(0),
            ..wan()
        };
        let d = decide(&i);
        assert!(d.floor_ms > 300.0, "{d:?}");
        assert!(!d.converge && d.budget_raw_bytes == 0, "{d:?}");
        // The floor is the pause of an empty dirty set, and the raised limit leaves room
        // beside it: an empty set converges under it.
        assert_eq!(d.predicted_downtime_ms, Some(d.floor_ms));
        let raised = raised_limit_ms(d.floor_ms);
        assert!(
            raised as f64 >= 1.5 * d.floor_ms && raised.is_multiple_of(10),
            "{raised}"
        );
        let d = decide(&PolicyInput {
            max_downtime_ms: raised as f64,
            ..i
        });
        assert!(d.converge && d.budget_raw_bytes > 0, "{d:?}");
    }

    #[test]
    fn a_given_limit_under_the_floor_is_refused_a_default_one_raised() {
        assert_eq!(limit_against_floor(200.0, 300.0, false), Ok(None));
        assert_eq!(limit_against_floor(200.0, 300.0, true), Ok(None));
        assert_eq!(limit_against_floor(400.0, 300.0, true), Ok(Some(600)));
        let why = limit_against_floor(400.0, 300.0, false).unwrap_err();
        assert!(
            why.contains("400 ms") && why.contains("--max-downtime 600ms"),
            "{why}"
        );
        // A floor equal to the limit leaves nothing for the dirty remainder.
        assert!(limit_against_floor(300.0, 300.0, false).is_err());
    }

    #[test]
    fn held_qemu_cannot_stop_with_more_than_the_budget() {
        // QEMU measured 4 Gbit/s into the agent's socket (the window's burst): with the 5 ms
        // hold it would stop with up to 2.5 MB dirty, above a budget of about 1.2 MB.
        let i = PolicyInput {
            rtt_ms: 50.0,
            bandwidth_bps: 100e6,
            qemu_mbps: 4000.0,
            resend_ratio: Some(1.0),
            overall_ratio: Some(1.0),
            dirty_set_bytes: Some(8 << 20),
            ..wan()
        };
        let d = decide(&i);
        assert!(!d.converge && d.budget_raw_bytes > 0, "{d:?}");
        let threshold = |limit_ms: u64| 4000.0 * 125.0 * limit_ms as f64;
        assert!(threshold(hold_limit_ms(300.0)) > d.budget_raw_bytes as f64);
        assert!(
            d.hold_ms >= 1 && threshold(d.hold_ms) <= d.budget_raw_bytes as f64,
            "{d:?}"
        );
        // A slow QEMU keeps the plain hold.
        let d = decide(&PolicyInput {
            qemu_mbps: 1.0,
            ..i
        });
        assert_eq!(d.hold_ms, hold_limit_ms(300.0));
    }

    #[test]
    fn the_tail_window_takes_over_near_the_end_of_each_pass() {
        let i = PolicyInput {
            dirty_set_bytes: Some(512 << 20),
            overall_ratio: Some(0.5),
            ..wan()
        };
        let bulk = decide(&PolicyInput {
            remaining_bytes: 256 << 20,
            ..i.clone()
        });
        assert!(
            !bulk.converge && bulk.window_bytes == bulk.bulk_window_bytes,
            "{bulk:?}"
        );
        let end = decide(&PolicyInput {
            remaining_bytes: bulk.bulk_window_bytes,
            ..i
        });
        assert!(
            !end.converge && end.window_bytes == end.tail_window_bytes,
            "{end:?}"
        );
        assert!(end.tail_window_bytes < end.bulk_window_bytes);
    }

    #[test]
    fn the_tail_window_keeps_the_pipe_full_and_little_more() {
        for (bps, rtt) in [(20e6, 150.0), (100e6, 50.0), (1e9, 10.0), (1e9, 0.5)] {
            let d = decide(&PolicyInput {
                rtt_ms: rtt,
                bandwidth_bps: bps,
                ..wan()
            });
            let bdp = bps / 8.0 * rtt / 1000.0;
            let tail = d.tail_window_bytes as f64;
            assert!(tail >= bdp, "{bps} {rtt}: {d:?}");
            assert!(
                tail <= (1.25 * bdp + TAIL_SLACK).max(MIN_TAIL_WINDOW),
                "{d:?}"
            );
        }
        // On the slow link it is under half of the 1 MiB it used to be at least.
        let d = decide(&PolicyInput {
            rtt_ms: 150.0,
            bandwidth_bps: 20e6,
            ..wan()
        });
        assert!(d.tail_window_bytes < 512 * 1024, "{d:?}");
    }
}
