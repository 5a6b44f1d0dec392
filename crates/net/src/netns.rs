//! Entering a network namespace from one thread. `setns(CLONE_NEWNET)` moves only the calling
//! thread, and a socket stays in the namespace it was made in, so the pattern everywhere is a
//! short-lived thread that enters the namespace, makes its sockets or runs its commands (whose
//! processes start in the namespace), and ends.

use std::os::fd::{AsFd, AsRawFd};

/// Moves the calling thread into the network namespace `ns` (an open `/run/netns/NAME` or
/// `/proc/PID/ns/net`). The rest of the process stays where it was.
pub fn enter(ns: &impl AsFd) -> std::io::Result<()> {
    // SAFETY: setns(2) on a descriptor borrowed for the call; CLONE_NEWNET changes the network
    // namespace of the calling thread only.
    if unsafe { libc::setns(ns.as_fd().as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a thread of its own that has entered the network namespace `ns`, and returns
/// what it returned; the caller's thread never moves. `Err` only when the namespace could not
/// be entered. A panic in `f` is resumed on the caller's thread.
pub fn run_in<T: Send>(ns: &impl AsFd, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let ns = ns.as_fd();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                enter(&ns)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn inode(path: &str) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).expect("stat a namespace").ino()
    }

    /// The thread runs in the namespace (its /proc/thread-self/ns/net is the namespace's),
    /// the caller's thread stays where it was, and a namespace that cannot be entered is an
    /// error, not a run in the wrong place.
    #[test]
    fn runs_on_a_thread_inside_the_namespace_only() {
        let name = format!("nc-netns-test-{}", std::process::id());
        let added = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add");
        assert!(added.success());
        let path = format!("/run/netns/{name}");
        let ns = std::fs::File::open(&path).expect("open the namespace");
        let ours = inode("/proc/thread-self/ns/net");
        let theirs = inode(&path);
        let inside = run_in(&ns, || inode("/proc/thread-self/ns/net")).expect("enter it");
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        assert_eq!(inside, theirs);
        assert_ne!(inside, ours);
        assert_eq!(inode("/proc/thread-self/ns/net"), ours);

        let not_a_namespace = std::fs::File::open("/proc/self/status").expect("open a file");
        let ran = run_in(&not_a_namespace, || unreachable!("must not run"));
        assert_eq!(ran.err().and_then(|e| e.raw_os_error()), Some(libc::EINVAL));
    }
}
