//! Network namespaces and the `ip` commands that configure the sites.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

use crate::{MTU, WanemError, io_err};

fn ip(args: &[&str]) -> Result<(), WanemError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(io_err("running ip (iproute2)"))?;
    if !out.status.success() {
        return Err(WanemError::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

pub fn exists(ns: &str) -> bool {
    std::path::Path::new("/run/netns").join(ns).exists()
}

pub fn add(ns: &str) -> Result<(), WanemError> {
    ip(&["netns", "add", ns])
}

pub fn del(ns: &str) -> Result<(), WanemError> {
    ip(&["netns", "del", ns])
}

/// Moves the TUN device into the namespace and gives it its point-to-point address.
pub fn setup_site(ns: &str, dev: &str, local: Ipv4Addr, peer: Ipv4Addr) -> Result<(), WanemError> {
    ip(&["link", "set", "dev", dev, "netns", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    ip(&[
        "-n",
        ns,
        "link",
        "set",
        "dev",
        dev,
        "mtu",
        &MTU.to_string(),
        "txqueuelen",
        "1000",
        "up",
    ])?;
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &local.to_string(),
        "peer",
        &format!("{peer}/32"),
        "dev",
        dev,
    ])?;
    Ok(())
}

/// Moves the calling thread into namespace `ns`.
pub fn enter(ns: &str) -> Result<(), WanemError> {
    let path = std::path::Path::new("/run/netns").join(ns);
    let f = std::fs::File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
    // SAFETY: `f` is an open namespace file for the duration of the call.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(WanemError::Io {
            what: format!("entering network namespace {ns}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Deletes namespaces created by a setup step that failed half way.
#[derive(Default)]
pub struct Cleanup {
    pub namespaces: Vec<String>,
}

impl Drop for Cleanup {
    // Runs while a set-up error (or a panic) unwinds, possibly on a runtime thread: every
    // `ip` call is bounded in time, and a stuck one is killed and reaped.
    fn drop(&mut self) {
        for ns in &self.namespaces {
            del_bounded(ns, std::time::Duration::from_secs(5));
        }
    }
}

/// `ip netns del ns`, waiting at most `timeout`; errors are only logged.
fn del_bounded(ns: &str, timeout: std::time::Duration) {
    let deadline = std::time::Instant::now() + timeout;
    let mut child = match Command::new("ip")
        .args(["netns", "del", ns])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(netns = ns, error = %e, "cannot run ip netns del");
            return;
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    tracing::warn!(netns = ns, %status, "ip netns del failed");
                }
                return;
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Ok(None) | Err(_) => {
                tracing::warn!(netns = ns, "ip netns del did not finish in time; killed");
                let _ = child.kill();
                let reap_until = std::time::Instant::now() + std::time::Duration::from_secs(1);
                while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < reap_until
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                return;
            }
        }
    }
}
