//! File modes of everything NovaCron keeps on disk: the one place that decides who may read the
//! data directory (store and its WAL, join token, node credentials, images, VM disks, QEMU run
//! directories and logs) and the CLI config.
//!
//! Everything belongs to the user running NovaCron and nobody else: the process umask is 077
//! from the first line of `main`, so every file and directory any role creates is owner-only,
//! and on start each role checks what an older version or an operator left readable. Two
//! exceptions serve the per-VM users QEMU runs as (see `novacron_agent::users`): directories
//! may be passable (execute) by group and other, never readable or writable, and image files
//! of the images group may be readable by that group.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Process umask: no permission for group or other on anything created.
pub const UMASK: libc::mode_t = 0o077;
/// Mode of data directories.
pub const DIR_MODE: u32 = 0o700;
/// Mode of files holding data or secrets.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits that must be clear everywhere under a data directory.
const GROUP_OTHER: u32 = 0o077;
/// Paths named one by one in the log before the rest are only counted.
const LOG_PATHS: usize = 20;

/// Sets the process umask to [`UMASK`]; call before any thread starts or file is created.
pub fn restrict_umask() {
    // SAFETY: umask only changes this process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(UMASK);
    }
}

/// Creates `dir` (and missing parents) owner-only, and tightens it when it exists and is ours.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    tighten_if_ours(dir, DIR_MODE);
    Ok(())
}

/// Creates `path` empty and owner-only when missing (e.g. the SQLite store, whose WAL and shared
/// memory files SQLite creates with the database file's mode), and tightens it when it is ours.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    tighten_if_ours(path, FILE_MODE);
    Ok(())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Entries this process may narrow: its own, and as root those of the VMs' own users (see
/// `novacron_agent::users`), which live in the data directory only.
fn ours(meta: &std::fs::Metadata) -> bool {
    meta.uid() == euid() || (euid() == 0 && novacron_agent::users::is_vm_uid(meta.uid()))
}

fn tighten_if_ours(path: &Path, mode: u32) {
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.uid() == euid()
        && meta.mode() & GROUP_OTHER != 0
    {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
}

/// Group and other bits an entry may keep: passing through a directory, and reading an image
/// shared with the VMs' users through the images group.
fn allowed_bits(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() {
        0o011
    } else if meta.gid() == novacron_agent::users::IMAGE_GID {
        0o040
    } else {
        0
    }
}

/// What [`audit`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Entries group or other could read (or write), whose mode we narrowed to the owner.
    pub tightened: usize,
    /// Such entries we do not own and left alone.
    pub left_open: usize,
}

/// Walks `root` (without following symlinks) and narrows every file and directory group or other
/// can access to its owner bits, when this process owns it; warns naming each path and the fix.
pub fn audit(root: &Path) -> Audit {
    let mut found = Audit::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
        let mode = meta.mode() & 0o7777;
        let allowed = allowed_bits(&meta);
        if mode & GROUP_OTHER & !allowed == 0 {
            continue;
        }
        let fix = if meta.is_dir() { "go-rw" } else { "go=" };
        if ours(&meta) {
            let narrowed = mode & (0o700 | allowed);
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(narrowed)) {
                Ok(()) => {
                    found.tightened += 1;
                    if found.tightened <= LOG_PATHS {
                        tracing::warn!(
                            path = %path.display(),
                            was = format!("{mode:o}"),
                            now = format!("{narrowed:o}"),
                            "group or other could read this NovaCron data; narrowed it to its owner"
                        );
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot narrow the mode")
                }
            }
        }
        found.left_open += 1;
        if found.left_open <= LOG_PATHS {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                owner_uid = meta.uid(),
                "group or other can read this NovaCron data and it is not ours to change: run `chmod {fix} {}` as its owner",
                path.display()
            );
        }
    }
    if found.tightened > LOG_PATHS || found.left_open > LOG_PATHS {
        tracing::warn!(
            root = %root.display(),
            tightened = found.tightened,
            left_open = found.left_open,
            "more data readable by group or other than listed above: `chmod -R go-rw {}` fixes all of it",
            root.display()
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn audit_narrows_what_group_or_other_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("agent/vms")).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = root.join("state.db");
        std::fs::write(&db, b"x").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let disk = root.join("agent/vms/disk0.qcow2");
        std::fs::write(&disk, b"x").unwrap();
        std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o664)).unwrap();
        std::fs::set_permissions(root.join("agent"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        std::fs::set_permissions(
            root.join("agent/vms"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        // A symlink out of the tree is neither followed nor changed.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"o").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();

        // Passable directories and a shared image stay as they are.
        let images = root.join("agent/images");
        std::fs::create_dir(&images).unwrap();
        std::fs::set_permissions(&images, std::fs::Permissions::from_mode(0o711)).unwrap();
        let kernel = images.join("kernel");
        std::fs::write(&kernel, b"k").unwrap();
        std::os::unix::fs::chown(&kernel, None, Some(novacron_agent::users::IMAGE_GID)).unwrap();
        std::fs::set_permissions(&kernel, std::fs::Permissions::from_mode(0o640)).unwrap();
        let other_group = images.join("other");
        std::fs::write(&other_group, b"o").unwrap();
        std::fs::set_permissions(&other_group, std::fs::Permissions::from_mode(0o640)).unwrap();

        let a = audit(&root);
        assert_eq!(a.tightened, 5, "{a:?}");
        assert_eq!(
            mode(&root),
            0o711,
            "readable by others: only passing is left"
        );
        assert_eq!(mode(&root.join("agent")), 0o710);
        assert_eq!(mode(&root.join("agent/vms")), 0o700, "already private");
        assert_eq!(mode(&images), 0o711);
        assert_eq!(mode(&kernel), 0o640);
        assert_eq!(mode(&other_group), 0o600);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&disk), 0o600);
        assert_eq!(mode(&outside), 0o644);
        assert_eq!(
            audit(&root),
            Audit::default(),
            "a second pass finds nothing"
        );
    }

    #[test]
    fn private_dirs_and_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        let f = d.join("state.db");
        std::fs::write(&f, b"keep").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        create_private_file(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(std::fs::read(&f).unwrap(), b"keep", "never truncated");
        let g = d.join("new.db");
        create_private_file(&g).unwrap();
        assert_eq!(mode(&g), 0o600);
    }
}
