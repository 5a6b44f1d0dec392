//! What a bench leaves behind when it is interrupted: every bench that starts processes
//! (QEMU, agents, etcd) or makes network namespaces records them here, and SIGINT or SIGTERM
//! tears them down before the process exits. On success, error and timeout the benches'
//! own guards (`Drop`) clean up; a signal ends the process without running those, and a
//! bench stuck in a blocking step may not reach them, so this sweep does the same work from
//! the signal handler's task.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::infra::{kill9, pids_with};

#[derive(Default)]
struct Leftovers {
    /// Directories: every process whose command line names one is killed, then it is removed.
    dirs: Vec<PathBuf>,
    /// Network namespaces.
    netns: Vec<String>,
    /// Host links (bridges, veth ends).
    links: Vec<String>,
    /// Prefixes of novacron-wanem emulators (their two site namespaces).
    wanem_prefixes: Vec<String>,
}

static LEFTOVERS: Mutex<Leftovers> = Mutex::new(Leftovers {
    dirs: Vec::new(),
    netns: Vec::new(),
    links: Vec::new(),
    wanem_prefixes: Vec::new(),
});

fn with<R>(f: impl FnOnce(&mut Leftovers) -> R) -> R {
    f(&mut LEFTOVERS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Records a scratch directory whose processes and files go on interrupt.
pub fn dir(path: PathBuf) {
    with(|l| l.dirs.push(path));
}

/// Records a network namespace to delete on interrupt.
pub fn netns(name: &str) {
    with(|l| l.netns.push(name.to_string()));
}

/// Records a host link to delete on interrupt.
pub fn link(name: &str) {
    with(|l| l.links.push(name.to_string()));
}

/// Records the namespace prefix of a WAN emulator to delete on interrupt.
pub fn wanem(prefix: &str) {
    with(|l| l.wanem_prefixes.push(prefix.to_string()));
}

fn ip(args: &[&str]) {
    let _ = std::process::Command::new("ip")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Kills what was recorded and deletes it; bounded (about 3 s of killing), never blocks on a
/// process. Returns what it removed, for the message.
pub fn sweep() -> usize {
    let l = with(std::mem::take);
    let mut removed = 0;
    for d in &l.dirs {
        let needle = d.to_string_lossy().into_owned();
        for _ in 0..60 {
            let pids = pids_with(&needle);
            if pids.is_empty() {
                break;
            }
            removed += pids.len();
            for p in pids {
                kill9(p);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for ns in &l.netns {
        if std::path::Path::new("/run/netns").join(ns).exists() {
            ip(&["netns", "del", ns]);
            removed += 1;
        }
    }
    for link in &l.links {
        if std::path::Path::new("/sys/class/net").join(link).exists() {
            ip(&["link", "del", link]);
            removed += 1;
        }
    }
    for p in &l.wanem_prefixes {
        if novacron_wanem::delete_sites(p).is_ok() {
            removed += 1;
        }
    }
    for d in &l.dirs {
        if std::fs::remove_dir_all(d).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Resolves with the exit code for the first SIGINT (130) or SIGTERM (143).
pub async fn signalled() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // No handler could be installed: never resolve (the default action still applies).
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => 130,
        _ = term.recv() => 143,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorded process and namespace are gone after the sweep, as after Ctrl-C.
    #[test]
    fn sweep_kills_recorded_processes_and_deletes_namespaces() {
        // SAFETY: geteuid(2) has no arguments and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root for network namespaces");
            return;
        }
        let dir = std::env::temp_dir().join(format!("nc-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("guest.img");
        std::fs::write(&marker, b"").unwrap();
        // A stand-in for QEMU: a process whose command line names a file in the directory.
        let mut child = std::process::Command::new("tail")
            .args(["-f", marker.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let ns = format!("ncsweep{}", std::process::id() % 100_000);
        ip(&["netns", "add", &ns]);
        assert!(std::path::Path::new("/run/netns").join(&ns).exists());
        super::dir(dir.clone());
        netns(&ns);
        assert!(sweep() >= 2);
        let status = child.wait().unwrap();
        assert!(!status.success(), "the recorded process was not killed");
        assert!(!std::path::Path::new("/run/netns").join(&ns).exists());
        assert!(!dir.exists());
    }
}
