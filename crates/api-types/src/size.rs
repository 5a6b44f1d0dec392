//! Human sizes such as `256M` or `2G` (binary units: K = 1024 bytes).

/// Why a size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid size {input:?}: {why} (use a number with an optional unit K, M, G or T, e.g. 256M)"
)]
pub struct SizeError {
    pub input: String,
    pub why: &'static str,
}

/// Parses `512`, `256M`, `2G`, `1.5G`, `64MiB`, `10GB` (all binary multiples) into bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |why| SizeError {
        input: input.to_string(),
        why,
    };
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(err("no number"));
    }
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(err("unknown unit")),
    };
    let value: f64 = number.parse().map_err(|_| err("not a number"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(err("too large"));
    }
    if bytes.fract() != 0.0 {
        return Err(err("not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// Formats bytes with the largest binary unit that keeps the value exact to 0.1.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{}{}", value as u64, UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// Least and most `--bandwidth` a NIC may be given, in bits per second.
pub const MIN_BANDWIDTH_BPS: u64 = 1_000_000;
pub const MAX_BANDWIDTH_BPS: u64 = 100_000_000_000;

/// Parses a NIC's `--bandwidth` in bits per second: `200mbit`, `1gbit`, `1.5gbit`, `500kbit`
/// (decimal, as `tc` counts: 1 kbit = 1,000 bits). Only `bit` units: `M` alone could mean bits
/// or bytes, so it is refused.
pub fn parse_bandwidth(input: &str) -> Result<u64, String> {
    let s = input.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let bad = |why: &str| {
        format!("invalid --bandwidth {input:?}: {why} (use kbit, mbit or gbit, e.g. 200mbit)")
    };
    let scale: u64 = match unit {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        "" => return Err(bad("no unit")),
        _ => return Err(bad("unknown unit")),
    };
    let value: f64 = number.parse().map_err(|_| bad("not a number"))?;
    let bps = value * scale as f64;
    if !bps.is_finite() || bps.fract() != 0.0 {
        return Err(bad("not a whole number of bits per second"));
    }
    if !(MIN_BANDWIDTH_BPS as f64..=MAX_BANDWIDTH_BPS as f64).contains(&bps) {
        return Err(format!(
            "--bandwidth {input} is out of range: between {} and {}",
            format_bandwidth(MIN_BANDWIDTH_BPS),
            format_bandwidth(MAX_BANDWIDTH_BPS)
        ));
    }
    Ok(bps as u64)
}

/// `200mbit`, `1.5gbit`: the largest unit that keeps the value exact to 0.1.
pub fn format_bandwidth(bps: u64) -> String {
    let units = [
        (1_000_000_000, "gbit"),
        (1_000_000, "mbit"),
        (1_000, "kbit"),
    ];
    for (scale, unit) in units {
        if bps >= scale {
            let v = bps as f64 / scale as f64;
            return if v.fract() == 0.0 {
                format!("{}{unit}", bps / scale)
            } else {
                format!("{v:.1}{unit}")
            };
        }
    }
    format!("{bps}bit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("10gb").unwrap(), 10 << 30);
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["512Q", "", "M", "1.2.3G", "-1G", "1e9", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse_size("512Q")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
    }

    #[test]
    fn formats() {
        assert_eq!(format_size(256 << 20), "256M");
        assert_eq!(format_size(3 << 29), "1.5G");
        assert_eq!(format_size(100), "100B");
    }

    #[test]
    fn bandwidths_are_bits_per_second() {
        assert_eq!(parse_bandwidth("200mbit"), Ok(200_000_000));
        assert_eq!(parse_bandwidth("1.5Gbit"), Ok(1_500_000_000));
        assert!(
            parse_bandwidth(" 500kbit")
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(parse_bandwidth("2000kbit"), Ok(2_000_000));
        for bad in [
            "200",
            "200M",
            "200mb",
            "mbit",
            "-5mbit",
            "0mbit",
            "101gbit",
            "1.0000001mbit",
        ] {
            assert!(parse_bandwidth(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse_bandwidth("200M")
                .unwrap_err()
                .contains("e.g. 200mbit")
        );
        assert_eq!(format_bandwidth(200_000_000), "200mbit");
        assert_eq!(format_bandwidth(1_500_000_000), "1.5gbit");
        assert_eq!(format_bandwidth(2_000_000), "2mbit");
    }
}
