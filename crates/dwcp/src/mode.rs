//! Mode detection: datacenter profile (sub-millisecond RTT: few streams, light or no
//! compression) versus WAN profile (many streams, full HDE), from measurement or forced.

/// The profile a session runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Short, fast path.
    Datacenter,
    /// Long and/or lossy path.
    Wan,
}

/// How to choose the mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModeSetting {
    /// From the measured RTT of the first stream.
    #[default]
    Auto,
    /// Always this mode.
    Force(Mode),
}

/// RTT under which a path counts as datacenter.
pub const DATACENTER_RTT_US: u32 = 1_000;

/// Detects the mode from the first stream's RTT (microseconds).
pub fn detect(setting: ModeSetting, rtt_us: u32) -> Mode {
    match setting {
        ModeSetting::Force(m) => m,
        ModeSetting::Auto if rtt_us > 0 && rtt_us < DATACENTER_RTT_US => Mode::Datacenter,
        ModeSetting::Auto => Mode::Wan,
    }
}

impl Mode {
    /// Streams to open at first.
    pub fn initial_streams(self, loss_based_cc: bool) -> usize {
        match (self, loss_based_cc) {
            (Mode::Datacenter, _) => 2,
            (Mode::Wan, false) => 4,
            (Mode::Wan, true) => 12,
        }
    }

    /// Most streams this profile opens.
    pub fn max_streams(self) -> usize {
        match self {
            Mode::Datacenter => 4,
            Mode::Wan => 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_from_rtt_and_honours_override() {
        assert_eq!(detect(ModeSetting::Auto, 80), Mode::Datacenter);
        assert_eq!(detect(ModeSetting::Auto, 50_000), Mode::Wan);
        assert_eq!(detect(ModeSetting::Force(Mode::Wan), 80), Mode::Wan);
    }
}
