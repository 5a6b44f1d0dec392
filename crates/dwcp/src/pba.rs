//! PBA, predictive bandwidth allocation: online estimate and short-horizon forecast of the
//! path's bandwidth and RTT, from per-stream `TCP_INFO` and session-level acknowledged bytes.
//!
//! The bandwidth series is smoothed with Holt's linear method (level + trend), which gives a
//! forecast for a horizon and a conservative lower bound from the smoothed deviation. Callers
//! (live migration predicting downtime) read it through [`crate::Session::path_estimate`].

use std::time::Duration;

use crate::mode::Mode;

/// What the session knows about its path now, and expects shortly.
#[derive(Clone, Debug, PartialEq)]
pub struct PathEstimate {
    /// Smoothed RTT, milliseconds (minimum over the session's streams).
    pub rtt_ms: f64,
    /// Lowest RTT seen, milliseconds (the path's propagation delay).
    pub min_rtt_ms: f64,
    /// Estimated available bandwidth, bits/s.
    pub bandwidth_bps: f64,
    /// Payload bits/s acknowledged by the peer (smoothed).
    pub goodput_bps: f64,
    /// Fraction of segments retransmitted recently.
    pub loss_rate: f64,
    /// Streams open now.
    pub streams: usize,
    /// Profile in use.
    pub mode: Mode,
    /// Bandwidth forecast for [`PathEstimate::forecast_horizon`].
    pub forecast: Forecast,
}

/// Horizon of the forecast in [`PathEstimate::forecast`].
pub const FORECAST_HORIZON: Duration = Duration::from_secs(2);

/// Forecast of the bandwidth a little ahead.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Forecast {
    /// How far ahead, milliseconds.
    pub horizon_ms: u64,
    /// Expected bandwidth, bits/s.
    pub bandwidth_bps: f64,
    /// Bandwidth that will be exceeded with high likelihood (expected − 2 deviations), bits/s.
    pub bandwidth_low_bps: f64,
}

impl PathEstimate {
    /// The forecast horizon.
    pub fn forecast_horizon(&self) -> Duration {
        Duration::from_millis(self.forecast.horizon_ms)
    }
}

/// One sample of the session's sending side.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Seconds since the previous sample.
    pub interval_s: f64,
    /// Payload bytes acknowledged by the peer in the interval.
    pub acked_bytes: u64,
    /// Sum of the streams' delivery-rate samples that were not application-limited, bytes/s.
    pub delivery_rate_bytes_per_s: f64,
    /// Minimum smoothed RTT over streams, microseconds (0 = unknown).
    pub rtt_us: u32,
    /// Minimum RTT over streams, microseconds (0 = unknown).
    pub min_rtt_us: u32,
    /// Segments sent / retransmitted in the interval, summed over streams.
    pub segs_out: u64,
    pub retrans: u64,
    /// The sender had data waiting for the network throughout the interval: goodput is then
    /// the path's available bandwidth.
    pub backlogged: bool,
}

/// The estimator. Not thread-safe on its own; the session keeps it under its lock.
#[derive(Clone, Debug, Default)]
pub struct Estimator {
    level_bps: f64,
    trend_bps_per_step: f64,
    dev_bps: f64,
    delivery_bps: f64,
    goodput_bps: f64,
    rtt_ms: f64,
    min_rtt_ms: f64,
    loss: f64,
    step_s: f64,
    samples: u64,
}

const ALPHA: f64 = 0.3;
const BETA: f64 = 0.1;

impl Estimator {
    /// Folds one sample in.
    pub fn update(&mut self, s: &Sample) {
        if s.interval_s <= 0.0 {
            return;
        }
        let goodput = s.acked_bytes as f64 * 8.0 / s.interval_s;
        self.goodput_bps = if self.samples == 0 {
            goodput
        } else {
            0.7 * self.goodput_bps + 0.3 * goodput
        };
        let delivery = s.delivery_rate_bytes_per_s * 8.0;
        self.delivery_bps = if self.samples == 0 {
            delivery
        } else {
            0.7 * self.delivery_bps + 0.3 * delivery
        };
        // Available bandwidth: what is delivered while the sender has a backlog. When it has
        // not, the streams' delivery-rate samples say what the path could carry (summed
        // snapshots over-count, so they never raise a backlogged estimate).
        let x = if s.backlogged {
            goodput
        } else {
            goodput.max(delivery)
        };
        if self.samples == 0 {
            self.level_bps = x;
            self.trend_bps_per_step = 0.0;
        } else {
            let prev = self.level_bps;
            let predicted = self.level_bps + self.trend_bps_per_step;
            self.level_bps = ALPHA * x + (1.0 - ALPHA) * predicted;
            self.trend_bps_per_step =
                BETA * (self.level_bps - prev) + (1.0 - BETA) * self.trend_bps_per_step;
            self.dev_bps = 0.8 * self.dev_bps + 0.2 * (x - predicted).abs();
        }
        if s.rtt_us > 0 {
            let r = f64::from(s.rtt_us) / 1000.0;
            self.rtt_ms = if self.rtt_ms == 0.0 {
                r
            } else {
                0.8 * self.rtt_ms + 0.2 * r
            };
        }
        if s.min_rtt_us > 0 {
            let m = f64::from(s.min_rtt_us) / 1000.0;
            self.min_rtt_ms = if self.min_rtt_ms == 0.0 {
                m
            } else {
                self.min_rtt_ms.min(m)
            };
        }
        if s.segs_out > 0 {
            let l = s.retrans as f64 / s.segs_out as f64;
            self.loss = 0.9 * self.loss + 0.1 * l.min(1.0);
        }
        self.step_s = s.interval_s;
        self.samples += 1;
    }

    /// Forecast `horizon` ahead.
    pub fn forecast(&self, horizon: Duration) -> Forecast {
        let steps = if self.step_s > 0.0 {
            horizon.as_secs_f64() / self.step_s
        } else {
            0.0
        };
        // Damp the trend: a short noisy rise must not extrapolate to an absurd rate.
        let expected = (self.level_bps + self.trend_bps_per_step * steps.min(10.0))
            .clamp(0.0, 2.0 * self.level_bps.max(0.0));
        Forecast {
            horizon_ms: horizon.as_millis() as u64,
            bandwidth_bps: expected,
            bandwidth_low_bps: (expected - 2.0 * self.dev_bps).max(0.0),
        }
    }

    /// The estimate now.
    pub fn estimate(&self, streams: usize, mode: Mode) -> PathEstimate {
        PathEstimate {
            rtt_ms: self.rtt_ms,
            min_rtt_ms: self.min_rtt_ms,
            bandwidth_bps: self.level_bps.max(0.0),
            goodput_bps: self.goodput_bps,
            loss_rate: self.loss,
            streams,
            mode,
            forecast: self.forecast(FORECAST_HORIZON),
        }
    }

    /// Smoothed goodput, bits/s.
    pub fn goodput_bps(&self) -> f64 {
        self.goodput_bps
    }
}

/// zstd level that keeps up with a link of `bandwidth_bps` on one core (None: do not compress).
pub fn zstd_level_for(bandwidth_bps: f64) -> Option<i32> {
    match bandwidth_bps {
        b if b <= 0.0 => Some(3),
        b if b < 300e6 => Some(3),
        b if b < 2.5e9 => Some(1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(bytes_per_s: f64) -> Sample {
        Sample {
            interval_s: 0.1,
            acked_bytes: (bytes_per_s * 0.1) as u64,
            rtt_us: 50_000,
            min_rtt_us: 50_000,
            ..Sample::default()
        }
    }

    #[test]
    fn steady_rate_converges_and_forecasts_flat() {
        let mut e = Estimator::default();
        for _ in 0..100 {
            e.update(&sample(12.5e6));
        }
        let est = e.estimate(4, Mode::Wan);
        assert!((est.bandwidth_bps - 100e6).abs() < 1e6, "{est:?}");
        assert!((est.forecast.bandwidth_bps - 100e6).abs() < 2e6, "{est:?}");
        assert!((est.rtt_ms - 50.0).abs() < 0.1);
    }

    #[test]
    fn rising_rate_forecasts_higher() {
        let mut e = Estimator::default();
        for i in 0..50 {
            e.update(&sample(1e6 * f64::from(i)));
        }
        let est = e.estimate(1, Mode::Wan);
        assert!(est.forecast.bandwidth_bps > est.bandwidth_bps);
        assert!(est.forecast.bandwidth_low_bps <= est.forecast.bandwidth_bps);
    }
}
