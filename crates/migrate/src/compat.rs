//! Can the destination QEMU take this VM? Pure comparisons of facts gathered from both QEMUs
//! over QMP ([`QemuFacts::collect`]), for the control plane's pre-checks, plus the check for a
//! QEMU defect that makes live migration of TCG guests lose memory writes.

use novacron_qemu::Qmp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::MigrateError;

/// What one QEMU offers, as far as migration compatibility goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuFacts {
    /// (major, minor, micro).
    pub version: (u64, u64, u64),
    /// Versioned machine types it can run (e.g. `pc-q35-7.2`), aliases resolved.
    pub machines: Vec<String>,
    /// Alias → versioned name (e.g. `q35` → `pc-q35-7.2`).
    pub machine_aliases: Vec<(String, String)>,
    /// CPU models it knows, with whether each is usable on this host.
    pub cpu_models: Vec<(String, bool)>,
    /// KVM in use (false: TCG).
    pub kvm: bool,
}

impl QemuFacts {
    /// Gathers the facts from a running QEMU (any state).
    pub async fn collect(qmp: &Qmp) -> Result<QemuFacts, MigrateError> {
        let q = |c: &'static str| async move {
            qmp.execute(c, None)
                .await
                .map_err(|e| MigrateError::qemu("compat", c, e))
        };
        let version = qmp.qemu_version().unwrap_or_default();
        let machines = q("query-machines").await?;
        let cpus = q("query-cpu-definitions").await?;
        let kvm = q("query-kvm").await?;
        let mut facts = QemuFacts {
            version,
            kvm: kvm.get("enabled").and_then(Value::as_bool).unwrap_or(false),
            ..QemuFacts::default()
        };
        for m in machines.as_array().into_iter().flatten() {
            let Some(name) = m.get("name").and_then(Value::as_str) else {
                continue;
            };
            facts.machines.push(name.to_string());
            if let Some(alias) = m.get("alias").and_then(Value::as_str) {
                facts
                    .machine_aliases
                    .push((alias.to_string(), name.to_string()));
            }
        }
        for c in cpus.as_array().into_iter().flatten() {
            if let Some(name) = c.get("name").and_then(Value::as_str) {
                let usable = c
                    .get("unavailable-features")
                    .and_then(Value::as_array)
                    .is_none_or(|a| a.is_empty());
                facts.cpu_models.push((name.to_string(), usable));
            }
        }
        Ok(facts)
    }

    /// The versioned machine type `name` stands for (aliases like `q35` resolved).
    pub fn resolve_machine(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.machine_aliases.iter().find(|(a, _)| a == name) {
            return Some(v.clone());
        }
        self.machines.iter().find(|m| *m == name).cloned()
    }
}

/// What the VM needs from the destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmNeeds {
    /// Machine type the source runs, versioned (resolve aliases on the source first).
    pub machine: String,
    /// CPU model the VM was started with (`None`: QEMU's default for the accelerator).
    pub cpu_model: Option<String>,
}

/// One reason the destination cannot take the VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incompatibility {
    pub what: String,
}

/// Compares the two QEMUs for this VM; empty when the destination can take it.
pub fn check(src: &QemuFacts, dst: &QemuFacts, vm: &VmNeeds) -> Vec<Incompatibility> {
    let mut out = Vec::new();
    let mut no = |what: String| out.push(Incompatibility { what });
    if dst.version < crate::qapi::MIN_QEMU {
        no(format!(
            "destination QEMU {}.{}.{} is older than 7.2",
            dst.version.0, dst.version.1, dst.version.2
        ));
    }
    if dst.version < src.version {
        no(format!(
            "destination QEMU {}.{}.{} is older than the source's {}.{}.{} (migration goes forward only)",
            dst.version.0,
            dst.version.1,
            dst.version.2,
            src.version.0,
            src.version.1,
            src.version.2
        ));
    }
    if !dst.machines.contains(&vm.machine) {
        no(format!(
            "destination QEMU has no machine type {} (launch the destination with exactly this versioned type)",
            vm.machine
        ));
    }
    if src.kvm != dst.kvm {
        no(format!(
            "source runs {} and destination {}: both must use the same accelerator",
            if src.kvm { "KVM" } else { "TCG" },
            if dst.kvm { "KVM" } else { "TCG" }
        ));
    }
    if let Some(model) = &vm.cpu_model {
        if model == "host" {
            no("CPU model `host` depends on the host CPU: use a named model to migrate between hosts".into());
        } else {
            match dst.cpu_models.iter().find(|(n, _)| n == model) {
                None => no(format!("destination QEMU does not know CPU model {model}")),
                Some((_, false)) => no(format!(
                    "CPU model {model} lacks features on the destination host"
                )),
                Some(_) => {}
            }
        }
    }
    out
}

/// RAM block sizes whose dirty tracking QEMU before 9.0 gets wrong under TCG: blocks that are a
/// whole multiple of 64 pages (256 KiB) take a fast path that clears dirty bits without making
/// TCG's TLB trap the next write (fixed upstream by commit 03bfc2188f, "physmem: Fix migration
/// dirty bitmap coherency with TCG memory access", QEMU 9.0). A guest write through such an
/// entry after the first bitmap sync is then never sent: measured here, a hot-set guest panics
/// on the destination after ~20 passes. KVM is not affected; neither is a stopped (offline) VM.
pub fn tcg_dirty_tracking_loses_writes(
    version: (u64, u64, u64),
    kvm: bool,
    ram_bytes: u64,
) -> bool {
    !kvm && version < (9, 0, 0) && ram_bytes.is_multiple_of(256 << 10)
}

/// The bytes to give QEMU's `-m` for a TCG guest of `mib` MiB so that migration is safe on
/// QEMU before 9.0: 8 KiB more (QEMU aligns RAM to 8 KiB), which sends its dirty-bitmap sync
/// down the per-page path that does reset the TLB.
pub fn tcg_safe_ram_bytes(mib: u64) -> u64 {
    (mib << 20) + (8 << 10)
}

/// Checks the source for [`tcg_dirty_tracking_loses_writes`].
pub async fn check_dirty_tracking(qmp: &Qmp, ram_bytes: u64) -> Result<(), MigrateError> {
    let kvm = qmp
        .execute("query-kvm", Some(json!({})))
        .await
        .map_err(|e| MigrateError::qemu("source", "query-kvm", e))?
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let version = qmp.qemu_version().unwrap_or_default();
    if tcg_dirty_tracking_loses_writes(version, kvm, ram_bytes) {
        return Err(MigrateError::Refused(format!(
            "this VM runs under TCG on QEMU {}.{}.{} with {} MiB of RAM: QEMU before 9.0 loses guest memory writes during a live migration of such a VM (TCG dirty tracking, fixed by QEMU commit 03bfc2188f). Migrate it offline, or start TCG guests with RAM that is not a multiple of 256 KiB (e.g. {} bytes)",
            version.0,
            version.1,
            version.2,
            ram_bytes >> 20,
            tcg_safe_ram_bytes(ram_bytes >> 20)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(v: (u64, u64, u64), kvm: bool) -> QemuFacts {
        QemuFacts {
            version: v,
            machines: vec!["pc-q35-7.2".into(), "pc-q35-7.1".into()],
            machine_aliases: vec![("q35".into(), "pc-q35-7.2".into())],
            cpu_models: vec![("qemu64".into(), true), ("Skylake-Server".into(), false)],
            kvm,
        }
    }

    #[test]
    fn same_qemu_is_compatible() {
        let f = facts((7, 2, 0), false);
        let vm = VmNeeds {
            machine: f.resolve_machine("q35").unwrap(),
            cpu_model: Some("qemu64".into()),
        };
        assert_eq!(vm.machine, "pc-q35-7.2");
        assert!(check(&f, &f, &vm).is_empty());
    }

    #[test]
    fn refusals_say_why() {
        let src = facts((8, 0, 0), false);
        let mut dst = facts((7, 2, 0), true);
        dst.machines.retain(|m| m != "pc-q35-7.2");
        let vm = VmNeeds {
            machine: "pc-q35-7.2".into(),
            cpu_model: Some("Skylake-Server".into()),
        };
        let r = check(&src, &dst, &vm);
        let text: Vec<&str> = r.iter().map(|i| i.what.as_str()).collect();
        assert_eq!(r.len(), 4, "{text:?}");
        assert!(text.iter().any(|t| t.contains("older than the source")));
        assert!(text.iter().any(|t| t.contains("machine type pc-q35-7.2")));
        assert!(text.iter().any(|t| t.contains("accelerator")));
        assert!(text.iter().any(|t| t.contains("lacks features")));
        let host = VmNeeds {
            machine: "pc-q35-7.1".into(),
            cpu_model: Some("host".into()),
        };
        assert!(check(&src, &src, &host)[0].what.contains("host"));
    }

    #[test]
    fn tcg_defect_window() {
        assert!(tcg_dirty_tracking_loses_writes(
            (7, 2, 22),
            false,
            256 << 20
        ));
        assert!(!tcg_dirty_tracking_loses_writes(
            (7, 2, 22),
            false,
            tcg_safe_ram_bytes(256)
        ));
        assert!(!tcg_dirty_tracking_loses_writes(
            (7, 2, 22),
            true,
            256 << 20
        ));
        assert!(!tcg_dirty_tracking_loses_writes(
            (9, 0, 0),
            false,
            256 << 20
        ));
    }
}
