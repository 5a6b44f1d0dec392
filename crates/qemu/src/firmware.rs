//! UEFI firmware: OVMF's code (shared, read-only) and each VM's own variable store.
//!
//! OVMF comes as two flash images. The code is the same for every VM and stays read-only.
//! The variable store (boot entries, Secure Boot keys, whatever the guest's OS writes with
//! `efibootmgr`) is a VM's own: a copy of the package's template, made once, kept beside the
//! VM's disks and given to the VM's user. QEMU writes the guest's changes through to that
//! file, and a live migration's destination writes the migrated contents into its own copy
//! when the guest resumes, so the store follows the VM.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::QemuError;

/// Where Debian's `ovmf` package puts the images (the 4 MiB builds: room for Secure Boot keys).
pub const OVMF_DIR: &str = "/usr/share/OVMF";
/// The variable store's file name, beside the VM's disks.
pub const VARS_FILE: &str = "efivars.fd";

/// UEFI boot through OVMF, with the VM's own variable store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uefi {
    /// The firmware's code, shared and read-only (e.g. /usr/share/OVMF/OVMF_CODE_4M.fd).
    pub code: PathBuf,
    /// This VM's variable store: written by the guest.
    pub vars: PathBuf,
    /// Secure Boot: the code is OVMF's Secure Boot build, which needs SMM and a flash only
    /// SMM code may write (so the guest's OS cannot rewrite the keys behind the firmware).
    pub secure_boot: bool,
}

/// The package's files for one kind of UEFI boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OvmfFiles {
    pub code: PathBuf,
    /// What a new VM's variable store starts as. For Secure Boot it has Microsoft's keys
    /// enrolled (what signed installers, shim among them, are checked against).
    pub vars_template: PathBuf,
}

impl OvmfFiles {
    /// The files under `dir` (normally [`OVMF_DIR`]), or an error naming the missing file and
    /// the package that has it.
    pub fn find(dir: &Path, secure_boot: bool) -> Result<OvmfFiles, QemuError> {
        let (code, vars) = if secure_boot {
            ("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd")
        } else {
            ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd")
        };
        let files = OvmfFiles {
            code: dir.join(code),
            vars_template: dir.join(vars),
        };
        for path in [&files.code, &files.vars_template] {
            if !path.is_file() {
                return Err(QemuError::InvalidSpec(format!(
                    "UEFI firmware needs {} (Debian's package `ovmf`: apt-get install ovmf)",
                    path.display()
                )));
            }
        }
        Ok(files)
    }
}

/// Makes `vars` a copy of `template` unless it exists: a VM's store is made once and then
/// belongs to the guest. Written under a temporary name and renamed, so a crash leaves either
/// no store or a whole one.
pub fn ensure_vars(template: &Path, vars: &Path) -> Result<bool, QemuError> {
    if vars.exists() {
        return Ok(false);
    }
    copy_whole(template, vars)?;
    Ok(true)
}

/// Copies `from` to `to` under a temporary name, synced, then renamed: a crash leaves either
/// the old `to` (or none) or a whole copy.
pub(crate) fn copy_whole(from: &Path, to: &Path) -> Result<(), QemuError> {
    let tmp = to.with_extension("creating");
    let copy = std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, to));
    if let Err(e) = copy {
        let _ = std::fs::remove_file(&tmp);
        return Err(QemuError::io(
            format!("copying {} to {}", from.display(), to.display()),
            e,
        ));
    }
    Ok(())
}

/// The `-machine` properties and extra arguments for `uefi`: the two flash images as block
/// nodes `fw-code` (read-only) and `fw-vars`, and for Secure Boot SMM and a flash locked to it.
pub(crate) fn args(uefi: &Uefi) -> (String, Vec<String>) {
    let file = |node: &str, path: &Path, read_only: bool| {
        format!(
            "driver=file,node-name={node},filename={},read-only={}",
            crate::cmdline::escape_opt(&path.to_string_lossy()),
            if read_only { "on" } else { "off" }
        )
    };
    let mut args = vec![
        "-blockdev".to_string(),
        file("fw-code", &uefi.code, true),
        "-blockdev".to_string(),
        file("fw-vars", &uefi.vars, false),
    ];
    let mut machine = ",pflash0=fw-code,pflash1=fw-vars".to_string();
    if uefi.secure_boot {
        machine.push_str(",smm=on");
        args.extend(["-global", "driver=cfi.pflash01,property=secure,value=on"].map(String::from));
    }
    (machine, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_firmware_names_the_file_and_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let err = OvmfFiles::find(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("OVMF_CODE_4M.fd"), "{err}");
        assert!(err.contains("apt-get install ovmf"), "{err}");
        std::fs::write(dir.path().join("OVMF_CODE_4M.secboot.fd"), b"code").unwrap();
        let err = OvmfFiles::find(dir.path(), true).unwrap_err().to_string();
        assert!(err.contains("OVMF_VARS_4M.ms.fd"), "{err}");
        std::fs::write(dir.path().join("OVMF_VARS_4M.ms.fd"), b"vars").unwrap();
        let found = OvmfFiles::find(dir.path(), true).unwrap();
        assert_eq!(found.code, dir.path().join("OVMF_CODE_4M.secboot.fd"));
    }

    #[test]
    fn the_store_is_copied_once_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("template.fd");
        let vars = dir.path().join(VARS_FILE);
        std::fs::write(&template, b"fresh").unwrap();
        assert!(ensure_vars(&template, &vars).unwrap());
        assert_eq!(std::fs::read(&vars).unwrap(), b"fresh");
        std::fs::write(&vars, b"the guest's boot entries").unwrap();
        assert!(!ensure_vars(&template, &vars).unwrap());
        assert_eq!(std::fs::read(&vars).unwrap(), b"the guest's boot entries");
        assert!(!vars.with_extension("creating").exists());
    }

    #[test]
    fn a_missing_template_leaves_no_store() {
        let dir = tempfile::tempdir().unwrap();
        let vars = dir.path().join(VARS_FILE);
        let err = ensure_vars(&dir.path().join("none.fd"), &vars).unwrap_err();
        assert!(err.to_string().contains("none.fd"), "{err}");
        assert!(!vars.exists());
        assert!(!vars.with_extension("creating").exists());
    }

    #[test]
    fn secure_boot_adds_smm_and_locks_the_flash() {
        let plain = Uefi {
            code: "/fw/code.fd".into(),
            vars: "/vm/a,b/efivars.fd".into(),
            secure_boot: false,
        };
        let (machine, args) = super::args(&plain);
        assert_eq!(machine, ",pflash0=fw-code,pflash1=fw-vars");
        assert_eq!(
            args,
            [
                "-blockdev",
                "driver=file,node-name=fw-code,filename=/fw/code.fd,read-only=on",
                "-blockdev",
                "driver=file,node-name=fw-vars,filename=/vm/a,,b/efivars.fd,read-only=off",
            ]
        );
        let (machine, args) = super::args(&Uefi {
            secure_boot: true,
            ..plain
        });
        assert!(machine.ends_with(",smm=on"), "{machine}");
        assert!(args.contains(&"driver=cfi.pflash01,property=secure,value=on".to_string()));
    }
}
