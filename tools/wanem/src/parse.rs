//! Parsers for command-line values: rates (`100mbit`), durations (`50ms`), loss (`0.1%`).

use std::time::Duration;

use crate::WanemError;

/// Parses a rate in bits/s: `100mbit`, `1gbit`, `500kbit`, `1000000` (bits/s).
pub fn rate_bps(s: &str) -> Result<u64, WanemError> {
    let err = || WanemError::Parse {
        what: "rate",
        value: s.into(),
        hint: "use e.g. 100mbit, 1gbit, 500kbit",
    };
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = t.strip_suffix("gbit") {
        (n, 1e9)
    } else if let Some(n) = t.strip_suffix("mbit") {
        (n, 1e6)
    } else if let Some(n) = t.strip_suffix("kbit") {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix("bit") {
        (n, 1.0)
    } else {
        (t.as_str(), 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| err())?;
    if !v.is_finite() || v < 0.0 {
        return Err(err());
    }
    Ok((v * mult) as u64)
}

/// Parses a duration: `50ms`, `2s`, `100us`, `0`.
pub fn duration(s: &str) -> Result<Duration, WanemError> {
    let err = || WanemError::Parse {
        what: "duration",
        value: s.into(),
        hint: "use e.g. 50ms, 2s, 100us",
    };
    let t = s.trim().to_ascii_lowercase();
    let (num, unit) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if t == "0" {
        ("0", 1.0)
    } else {
        return Err(err());
    };
    let v: f64 = num.trim().parse().map_err(|_| err())?;
    if !v.is_finite() || v < 0.0 {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(v * unit))
}

/// Parses a loss probability: `0.1%` or a fraction `0.001`.
pub fn loss(s: &str) -> Result<f64, WanemError> {
    let err = || WanemError::Parse {
        what: "loss",
        value: s.into(),
        hint: "use e.g. 0.1% or 0.001",
    };
    let t = s.trim();
    let v = if let Some(p) = t.strip_suffix('%') {
        p.trim().parse::<f64>().map_err(|_| err())? / 100.0
    } else {
        t.parse::<f64>().map_err(|_| err())?
    };
    if !(0.0..=1.0).contains(&v) {
        return Err(err());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_rejects_nonsense() {
        assert_eq!(rate_bps("100mbit").unwrap(), 100_000_000);
        assert_eq!(rate_bps("1gbit").unwrap(), 1_000_000_000);
        assert_eq!(duration("50ms").unwrap(), Duration::from_millis(50));
        assert_eq!(duration("2s").unwrap(), Duration::from_secs(2));
        assert!((loss("0.1%").unwrap() - 0.001).abs() < 1e-12);
        assert_eq!(loss("100%").unwrap(), 1.0);
        assert!(rate_bps("fast").is_err());
        assert!(duration("50").is_err());
        assert!(loss("150%").is_err());
    }
}
