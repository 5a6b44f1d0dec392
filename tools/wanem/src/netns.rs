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
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = del(ns);
        }
    }
}
