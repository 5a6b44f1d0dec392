//! QEMU and helper processes start with only the descriptors meant for them: a descriptor the
//! agent holds open without close-on-exec (a lock file opened by a C library, say) must not
//! leak into a QEMU that outlives the agent.
#![allow(clippy::unwrap_used)]

use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use novacron_qemu::process::inherit_only_stdio;
use novacron_qemu::{Accel, Boot, DiskSpec, RunDir, VmSpec, launch};

/// Opens `path` read-write with plain open(2): no O_CLOEXEC, as C code and old libraries do.
fn open_inheritable(path: &Path) -> RawFd {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600) };
    assert!(fd >= 0, "open: {}", std::io::Error::last_os_error());
    // SAFETY: fcntl(2) on the descriptor just opened.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_eq!(
        flags & libc::FD_CLOEXEC,
        0,
        "the test file must be inheritable"
    );
    fd
}

fn close(fd: RawFd) {
    // SAFETY: closes a descriptor this test opened and owns.
    unsafe { libc::close(fd) };
}

/// Where each open descriptor of `pid` points: (fd number, link target).
fn open_files(pid: u32) -> Vec<(RawFd, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        if let Ok(target) = std::fs::read_link(e.path()) {
            out.push((fd, target));
        }
    }
    out.sort();
    out
}

fn holds(files: &[(RawFd, PathBuf)], path: &Path) -> bool {
    files.iter().any(|(_, t)| t == path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_does_not_inherit_the_agents_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let leaked = dir.path().join("agent.lock");
    let fd = open_inheritable(&leaked);
    // The smallest QEMU this code path launches: paused before the firmware runs, one disk.
    let disk = dir.path().join("disk.raw");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let spec = VmSpec {
        name: "fd-hygiene".into(),
        uuid: "0b9a4f8e-1d3c-4c5e-9f1a-2b3c4d5e6f70".into(),
        cpus: 1,
        memory_bytes: 64 << 20,
        accel: Accel::Tcg,
        boot: Boot::Disk,
        disks: vec![DiskSpec {
            path: disk.clone(),
            format: novacron_qemu::DiskFormat::Raw,
            read_only: false,
            backing: Vec::new(),
        }],
        start_paused: true,
        ..Default::default()
    };
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    let files = open_files(vm.pid());
    vm.kill().await.unwrap();
    close(fd);
    assert!(
        !holds(&files, &leaked),
        "QEMU inherited the test's descriptor {fd}: {files:?}"
    );
    // QEMU's own files are there: its disk, its log on stdout and stderr.
    assert!(holds(&files, &disk), "QEMU opened its disk: {files:?}");
    let log = run_dir.qemu_log();
    assert!(
        files.iter().any(|(n, t)| *n == 2 && t == &log),
        "stderr goes to the QEMU log: {files:?}"
    );
}

/// The helper itself, on a plain child: without it the child inherits the descriptor (so the
/// check can fail), with it only stdio and the descriptors explicitly kept remain.
#[test]
fn helper_processes_keep_only_stdio_and_what_is_passed() {
    let dir = tempfile::tempdir().unwrap();
    let leaked = dir.path().join("leaked");
    let passed = dir.path().join("passed");
    let fd_leaked = open_inheritable(&leaked);
    let fd_passed = open_inheritable(&passed);
    let spawn = |confine: Option<&[RawFd]>| {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        if let Some(keep) = confine {
            inherit_only_stdio(&mut cmd, keep);
        }
        let mut child = cmd.spawn().unwrap();
        // Wait for the exec: the fd table is the program's own from then on.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{}/exe", child.id()))
            .is_ok_and(|p| !p.to_string_lossy().contains("sleep"))
        {
            assert!(std::time::Instant::now() < deadline, "sleep did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The dynamic loader holds each shared library open while it maps it, after the exec,
        // and the program's setlocale then each locale file: read the table once they have
        // let go of them, or a library or a locale file shows up as a stray fd.
        let files = loop {
            let files = open_files(child.id());
            let loading = files.iter().any(|(_, t)| {
                let t = t.to_string_lossy();
                t.contains(".so") || t.starts_with("/usr/lib/locale/")
            });
            if !loading {
                break files;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the loader kept libraries open: {files:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        novacron_qemu::process::stop_child(&mut child, Duration::from_secs(5));
        files
    };
    let plain = spawn(None);
    assert!(
        holds(&plain, &leaked),
        "control: a plain child inherits a descriptor without close-on-exec: {plain:?}"
    );
    let confined = spawn(Some(&[fd_passed]));
    close(fd_leaked);
    close(fd_passed);
    assert!(!holds(&confined, &leaked), "{confined:?}");
    assert!(
        confined
            .iter()
            .any(|(n, t)| *n == fd_passed && t == &passed),
        "the descriptor passed on purpose stays, at its number: {confined:?}"
    );
    assert!(
        confined.iter().all(|(n, _)| *n <= 2 || *n == fd_passed),
        "nothing else beyond stdio: {confined:?}"
    );
}

/// A binary that does not exist is still reported as such (descriptors are marked
/// close-on-exec, not closed, so the standard library's exec-error pipe survives).
#[test]
fn exec_errors_still_reach_the_parent() {
    let mut cmd = std::process::Command::new("/nonexistent/novacron-no-such-binary");
    inherit_only_stdio(&mut cmd, &[]);
    let err = cmd.spawn().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}
