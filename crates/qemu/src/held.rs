//! A handed-in file held still while qemu-img reads it in place, so an import need not copy it first.
//!
//! A file a user hands in stays theirs: they can write it while it is being vetted and converted, and
//! a change between the vetting and the conversion could slip a reference to another file past the
//! vetting. Copying it first closes that, at the price of writing the whole file once more. A read
//! lease (`fcntl(F_SETLEASE, F_RDLCK)`) closes it without the copy: the kernel grants it only while
//! nothing has the file open for writing, and any later open for writing or truncation breaks it,
//! blocking the writer until the lease is given up (or `/proc/sys/fs/lease-break-time` passes). So
//! while [`Held::still_held`] answers true, the bytes have not changed since the lease was taken.
//!
//! The lease is taken on a descriptor of our own (the handed-in one shares its open file with the
//! sender, who could give up a lease taken on it), and only on local filesystems: on FUSE or a network
//! filesystem the bytes can change without any open on this host. Anything else is copied.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

/// Local filesystems whose bytes change only through opens on this host.
const LOCAL_FILESYSTEMS: [(libc::__fsword_t, &str); 4] = [
    (libc::EXT4_SUPER_MAGIC, "ext4"),
    (libc::XFS_SUPER_MAGIC, "xfs"),
    (libc::BTRFS_SUPER_MAGIC, "btrfs"),
    (libc::TMPFS_MAGIC, "tmpfs"),
];

/// `fcntl`'s F_SETSIG (asm-generic/fcntl.h; the libc crate does not export it).
const F_SETSIG: libc::c_int = 10;

/// A read lease on a descriptor of our own for a handed-in file. Dropping it gives the lease up.
#[derive(Debug)]
pub struct Held {
    file: File,
}

impl Held {
    /// Leases `handed` (its content, through a descriptor of our own), or answers why it cannot be
    /// held still: not a regular file, not on a local filesystem, open for writing somewhere, or a
    /// lease refused (another user's file without `CAP_LEASE`).
    pub fn take(handed: &File) -> Result<Held, String> {
        // Our own open file: a reopen of the same inode through the descriptor's magic link.
        let file = File::open(format!("/proc/self/fd/{}", handed.as_raw_fd()))
            .map_err(|e| format!("cannot reopen it ({e})"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot stat it ({e})"))?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        let fd = file.as_raw_fd();
        // SAFETY: fstatfs writes into the zeroed struct it is given, for a descriptor `file` keeps open.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(fd, &mut fs) } != 0 {
            return Err(format!(
                "cannot read its filesystem ({})",
                std::io::Error::last_os_error()
            ));
        }
        if !LOCAL_FILESYSTEMS
            .iter()
            .any(|(magic, _)| *magic == fs.f_type)
        {
            return Err(format!(
                "its filesystem (magic {:#x}) is not a local one",
                fs.f_type
            ));
        }
        // A broken lease signals its holder, SIGIO by default, which would end this process. SIGURG
        // instead: nobody here handles it and its default action is to ignore it. (The signal goes to
        // this open file's owner, which is ours alone.)
        // SAFETY: fcntl on a descriptor `file` keeps open; F_SETSIG and F_SETLEASE take an int.
        if unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGURG) } != 0 {
            return Err(format!(
                "cannot choose the lease's signal ({})",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EAGAIN) {
                "it is open for writing".into()
            } else {
                format!("no read lease ({e})")
            });
        }
        Ok(Held { file })
    }

    /// The descriptor to read through (and to keep open in a qemu-img child).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// The path that reads the held file, in this process and in a child that kept [`Held::fd`].
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd()))
    }

    /// Whether the lease still stands: nothing has opened the file for writing or truncated it
    /// since [`Held::take`], so its bytes are the ones read then.
    pub fn still_held(&self) -> bool {
        // SAFETY: F_GETLEASE only reads the lease state of a descriptor `file` keeps open.
        unsafe { libc::fcntl(self.fd(), libc::F_GETLEASE) == libc::F_RDLCK }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Closing our open file gives the lease up as well; say it first so a blocked writer goes on
        // at once.
        // SAFETY: as in `take`.
        unsafe {
            libc::fcntl(self.fd(), libc::F_SETLEASE, libc::F_UNLCK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch_file(name: &str) -> (PathBuf, File) {
        let dir = std::env::temp_dir().join(format!("nc-held-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"content").unwrap();
        drop(f);
        (dir, File::open(&path).unwrap())
    }

    #[test]
    fn an_open_for_writing_breaks_the_lease_and_the_writer_waits_for_it() {
        let (dir, handed) = scratch_file("break");
        // The temp dir is on a local filesystem on every machine these tests run on.
        let held = Held::take(&handed).unwrap();
        assert!(held.still_held());
        let path = dir.join("f");
        let writer = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all(b"changed").unwrap();
            started.elapsed()
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while held.still_held() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            !held.still_held(),
            "the writer's open did not break the lease"
        );
        // The writer is still blocked in open(2): the bytes are unchanged until the lease is given up.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"content");
        assert!(!writer.is_finished());
        drop(held);
        let waited = writer.join().unwrap();
        assert!(
            waited >= std::time::Duration::from_millis(200),
            "{waited:?}"
        );
        assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"changed");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_open_for_writing_is_not_held() {
        let (dir, handed) = scratch_file("writer");
        let _writer = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("f"))
            .unwrap();
        let refused = Held::take(&handed).unwrap_err();
        assert_eq!(refused, "it is open for writing");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_senders_descriptor_cannot_give_our_lease_up() {
        let (dir, handed) = scratch_file("sender");
        let held = Held::take(&handed).unwrap();
        // The sender's open file is not ours: unlocking through it leaves our lease standing.
        // SAFETY: fcntl on a descriptor the test keeps open.
        unsafe {
            libc::fcntl(handed.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
        }
        assert!(held.still_held());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
