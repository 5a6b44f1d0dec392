//! Accelerator choice: KVM only when the host can really run ordinary guests with it, TCG otherwise.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::QemuError;

/// What the operator asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    /// KVM when usable, TCG otherwise.
    #[default]
    Auto,
    /// KVM or an error saying why not.
    Kvm,
    /// Software emulation, always available.
    Tcg,
}

impl FromStr for AccelChoice {
    type Err = QemuError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(QemuError::InvalidAccelChoice(s.to_string())),
        }
    }
}

impl fmt::Display for AccelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccelChoice::Auto => "auto",
            AccelChoice::Kvm => "kvm",
            AccelChoice::Tcg => "tcg",
        })
    }
}

/// The accelerator a VM actually runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

impl FromStr for Accel {
    type Err = QemuError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            _ => Err(QemuError::InvalidAccelChoice(s.to_string())),
        }
    }
}

/// What the host offers, gathered once so the decision itself is pure and testable.
#[derive(Clone, Debug)]
pub struct HostAccelFacts {
    /// `Ok(())` when /dev/kvm opened read-write, otherwise why not.
    pub kvm_device: Result<(), String>,
    /// Contents of /proc/cpuinfo (only the `flags` lines matter).
    pub cpuinfo: String,
}

impl HostAccelFacts {
    /// Probes /dev/kvm and /proc/cpuinfo of this host.
    pub fn probe() -> HostAccelFacts {
        HostAccelFacts::probe_paths(Path::new("/dev/kvm"), Path::new("/proc/cpuinfo"))
    }

    /// Probes the given device and cpuinfo file (tests point these elsewhere).
    pub fn probe_paths(kvm_device: &Path, cpuinfo: &Path) -> HostAccelFacts {
        let kvm_device = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(kvm_device)
            .map(|_| ())
            .map_err(|e| format!("cannot open {} read-write: {e}", kvm_device.display()));
        let cpuinfo = std::fs::read_to_string(cpuinfo).unwrap_or_default();
        HostAccelFacts {
            kvm_device,
            cpuinfo,
        }
    }
}

/// True when any `flags` line of cpuinfo names hardware virtualisation (Intel vmx or AMD svm).
pub fn cpuinfo_has_virtualisation(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "flags").then_some(value)
        })
        .any(|flags| flags.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// The decision on given facts: KVM needs both a usable /dev/kvm and vmx/svm in cpuinfo.
pub fn decide_accel(choice: AccelChoice, facts: &HostAccelFacts) -> Result<Accel, QemuError> {
    let kvm_problem = match (&facts.kvm_device, cpuinfo_has_virtualisation(&facts.cpuinfo)) {
        (Ok(()), true) => None,
        (Err(why), _) => Some(why.clone()),
        (Ok(()), false) => Some(
            "/proc/cpuinfo shows no vmx or svm flag (no hardware virtualisation for ordinary guests)"
                .to_string(),
        ),
    };
    match (choice, kvm_problem) {
        (AccelChoice::Tcg, _) => Ok(Accel::Tcg),
        (AccelChoice::Auto, None) | (AccelChoice::Kvm, None) => Ok(Accel::Kvm),
        (AccelChoice::Auto, Some(why)) => {
            tracing::debug!(reason = %why, "KVM unusable, choosing TCG");
            Ok(Accel::Tcg)
        }
        (AccelChoice::Kvm, Some(reason)) => Err(QemuError::KvmUnavailable { reason }),
    }
}

/// Resolves the operator's choice on this host.
pub fn resolve_accel(choice: AccelChoice) -> Result<Accel, QemuError> {
    if choice == AccelChoice::Tcg {
        return Ok(Accel::Tcg);
    }
    decide_accel(choice, &HostAccelFacts::probe())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTEL: &str =
        "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae vmx sse2\nbugs\t\t: spectre\n";
    const AMD: &str = "processor\t: 0\nflags\t\t: fpu svm lm\n";
    const NONE: &str =
        "processor\t: 0\nflags\t\t: fpu vme hypervisor vmxx svmx\nvmx flags\t: ept\n";

    fn facts(open: bool, cpuinfo: &str) -> HostAccelFacts {
        HostAccelFacts {
            kvm_device: if open {
                Ok(())
            } else {
                Err("cannot open /dev/kvm: No such file".into())
            },
            cpuinfo: cpuinfo.to_string(),
        }
    }

    #[test]
    fn parses_choices() {
        assert_eq!("auto".parse::<AccelChoice>().unwrap(), AccelChoice::Auto);
        assert_eq!("KVM".parse::<AccelChoice>().unwrap(), AccelChoice::Kvm);
        assert_eq!("tcg".parse::<AccelChoice>().unwrap(), AccelChoice::Tcg);
        let err = "xen".parse::<AccelChoice>().unwrap_err().to_string();
        assert!(
            err.contains("'xen'") && err.contains("auto, kvm or tcg"),
            "{err}"
        );
        assert_eq!(Accel::Kvm.to_string(), "kvm");
        assert_eq!(Accel::Tcg.to_string(), "tcg");
    }

    #[test]
    fn flags_are_whole_words_on_flags_lines() {
        assert!(cpuinfo_has_virtualisation(INTEL));
        assert!(cpuinfo_has_virtualisation(AMD));
        // "vmx flags" line and look-alike words must not count.
        assert!(!cpuinfo_has_virtualisation(NONE));
        assert!(!cpuinfo_has_virtualisation(""));
    }

    #[test]
    fn auto_needs_both_device_and_flags() {
        assert_eq!(
            decide_accel(AccelChoice::Auto, &facts(true, INTEL)).unwrap(),
            Accel::Kvm
        );
        assert_eq!(
            decide_accel(AccelChoice::Auto, &facts(true, AMD)).unwrap(),
            Accel::Kvm
        );
        assert_eq!(
            decide_accel(AccelChoice::Auto, &facts(true, NONE)).unwrap(),
            Accel::Tcg
        );
        assert_eq!(
            decide_accel(AccelChoice::Auto, &facts(false, INTEL)).unwrap(),
            Accel::Tcg
        );
        assert_eq!(
            decide_accel(AccelChoice::Tcg, &facts(true, INTEL)).unwrap(),
            Accel::Tcg
        );
    }

    #[test]
    fn explicit_kvm_says_why_not() {
        assert_eq!(
            decide_accel(AccelChoice::Kvm, &facts(true, AMD)).unwrap(),
            Accel::Kvm
        );
        let no_flags = decide_accel(AccelChoice::Kvm, &facts(true, NONE))
            .unwrap_err()
            .to_string();
        assert!(no_flags.contains("vmx or svm"), "{no_flags}");
        let no_dev = decide_accel(AccelChoice::Kvm, &facts(false, INTEL))
            .unwrap_err()
            .to_string();
        assert!(no_dev.contains("/dev/kvm"), "{no_dev}");
    }

    #[test]
    fn probe_with_missing_device() {
        let dir = tempfile::tempdir().unwrap();
        let cpu = dir.path().join("cpuinfo");
        std::fs::write(&cpu, INTEL).unwrap();
        let f = HostAccelFacts::probe_paths(&dir.path().join("nokvm"), &cpu);
        assert!(f.kvm_device.is_err());
        assert_eq!(decide_accel(AccelChoice::Auto, &f).unwrap(), Accel::Tcg);
    }

    #[test]
    fn this_host_auto_is_tcg_without_vmx_svm() {
        // The brief for these machines: no vmx/svm in cpuinfo, so auto must give TCG here.
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        if !cpuinfo_has_virtualisation(&cpuinfo) {
            assert_eq!(resolve_accel(AccelChoice::Auto).unwrap(), Accel::Tcg);
            assert!(resolve_accel(AccelChoice::Kvm).is_err());
        } else {
            println!("host has vmx/svm; skipping the TCG-on-this-host check");
        }
    }
}
