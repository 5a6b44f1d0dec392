//! A writer of "newc" cpio archives, the format the Linux kernel unpacks as an initramfs.

use std::collections::BTreeSet;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Builds a newc archive in memory. Parent directories are added automatically (mode 0755) before their
/// children, because the kernel's unpacker does not create them.
#[derive(Debug)]
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
    dirs: BTreeSet<String>,
    names: BTreeSet<String>,
}

impl Default for CpioWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// Normalises a path for the archive: no leading '/', no empty, "." or ".." components.
fn normalise(path: &str) -> Option<String> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

impl CpioWriter {
    pub fn new() -> CpioWriter {
        CpioWriter {
            out: Vec::new(),
            next_ino: 1,
            dirs: BTreeSet::new(),
            names: BTreeSet::new(),
        }
    }

    /// True when `path` is already in the archive.
    pub fn contains(&self, path: &str) -> bool {
        normalise(path).is_some_and(|p| self.names.contains(&p))
    }

    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), String> {
        let p = normalise(path).ok_or_else(|| format!("bad archive path {path:?}"))?;
        if self.dirs.contains(&p) {
            return Ok(());
        }
        self.parents(&p)?;
        self.dirs.insert(p.clone());
        self.entry(&p, S_IFDIR | (mode & 0o7777), 2, (0, 0), &[])
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), String> {
        let p = self.new_leaf(path)?;
        self.entry(&p, S_IFREG | (mode & 0o7777), 1, (0, 0), data)
    }

    /// Adds a symbolic link pointing at `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), String> {
        let p = self.new_leaf(path)?;
        self.entry(&p, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// Adds a character device node.
    pub fn char_device(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), String> {
        let p = self.new_leaf(path)?;
        self.entry(&p, S_IFCHR | (mode & 0o7777), 1, (major, minor), &[])
    }

    fn new_leaf(&mut self, path: &str) -> Result<String, String> {
        let p = normalise(path).ok_or_else(|| format!("bad archive path {path:?}"))?;
        if self.names.contains(&p) {
            return Err(format!("{path} is in the archive twice"));
        }
        self.parents(&p)?;
        Ok(p)
    }

    fn parents(&mut self, p: &str) -> Result<(), String> {
        if let Some((parent, _)) = p.rsplit_once('/') {
            self.dir(parent, 0o755)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), String> {
        let size = u32::try_from(data.len()).map_err(|_| format!("{name} is larger than 4 GiB"))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.names.insert(name.to_string());
        self.raw_entry(name, ino, mode, nlink, rdev, size, data);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn raw_entry(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        size: u32,
        data: &[u8],
    ) {
        let name_size = name.len() as u32 + 1;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
        let header = format!(
            "070701{ino:08X}{mode:08X}{:08X}{:08X}{nlink:08X}{:08X}{size:08X}{:08X}{:08X}{:08X}{:08X}{name_size:08X}{:08X}",
            0, 0, 0, 0, 0, rdev.0, rdev.1, 0
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// Appends the trailer and returns the archive bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.raw_entry("TRAILER!!!", 0, 0, 1, (0, 0), 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, rdev, data) of one archive entry.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// A minimal newc reader.
    fn read(archive: &[u8]) -> Vec<Entry> {
        let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            let h = &archive[pos..pos + 110];
            assert_eq!(&h[..6], b"070701");
            let field = |i: usize| hex(&h[6 + i * 8..14 + i * 8]);
            let (mode, size, rmaj, rmin, namesize) = (
                field(1),
                field(6) as usize,
                field(9),
                field(10),
                field(11) as usize,
            );
            let name = std::str::from_utf8(&archive[pos + 110..pos + 110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(archive[pos + 110 + namesize - 1], 0);
            pos = (pos + 110 + namesize).next_multiple_of(4);
            let data = archive[pos..pos + size].to_vec();
            pos = (pos + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(pos, archive.len());
                return out;
            }
            out.push((name, mode, (rmaj, rmin), data));
        }
    }

    #[test]
    fn writes_parents_first_and_pads() {
        let mut w = CpioWriter::new();
        w.file("/etc/novacron/init.d/10-x", 0o755, b"#!/bin/sh\necho hi\n")
            .unwrap();
        w.symlink("bin/sh", "/bin/busybox").unwrap();
        w.char_device("/dev/console", 0o600, 5, 1).unwrap();
        w.dir("etc", 0o755).unwrap(); // already there: no duplicate
        assert!(w.file("etc/novacron/init.d/10-x", 0o644, b"").is_err());
        assert!(w.file("../escape", 0o644, b"").is_err());
        assert!(w.contains("/bin/sh"));
        let entries = read(&w.finish());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc",
                "etc/novacron",
                "etc/novacron/init.d",
                "etc/novacron/init.d/10-x",
                "bin",
                "bin/sh",
                "dev",
                "dev/console"
            ]
        );
        assert_eq!(entries[3].1, 0o100755);
        assert_eq!(entries[3].3, b"#!/bin/sh\necho hi\n");
        assert_eq!(entries[5].1, 0o120777);
        assert_eq!(entries[5].3, b"/bin/busybox");
        assert_eq!(entries[7].1, 0o020600);
        assert_eq!(entries[7].2, (5, 1));
        assert_eq!(entries[0].1, 0o040755);
    }

    #[test]
    fn gnu_cpio_reads_it() {
        let Ok(out) = std::process::Command::new("cpio").arg("--version").output() else {
            println!("cpio not installed; skipping the cross-check with GNU cpio");
            return;
        };
        assert!(out.status.success());
        let dir = tempfile::tempdir().unwrap();
        let mut w = CpioWriter::new();
        w.file("a/b/c.txt", 0o640, b"payload").unwrap();
        w.symlink("a/link", "b/c.txt").unwrap();
        let archive = dir.path().join("x.cpio");
        std::fs::write(&archive, w.finish()).unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let status = std::process::Command::new("cpio")
            .args(["-idm", "--quiet", "-F"])
            .arg(&archive)
            .current_dir(&dest)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read(dest.join("a/b/c.txt")).unwrap(), b"payload");
        assert_eq!(std::fs::read(dest.join("a/link")).unwrap(), b"payload");
    }
}
