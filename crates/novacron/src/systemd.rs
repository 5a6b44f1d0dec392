//! Readiness and status for systemd's `Type=notify` units (the sd_notify protocol): one
//! datagram of `KEY=value` lines to the socket named by `NOTIFY_SOCKET`. Without that
//! variable (not started by systemd) every call does nothing.

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;

/// Where systemd listens: a path, or a name in the abstract namespace (`@name`).
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

fn target(var: &OsStr) -> Option<Target> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = var.as_bytes();
    match bytes.first()? {
        b'@' => Some(Target::Abstract(bytes[1..].to_vec())),
        b'/' => Some(Target::Path(std::path::PathBuf::from(var))),
        _ => None,
    }
}

fn send(target: &Target, message: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match target {
        Target::Path(p) => sock.send_to(message.as_bytes(), p)?,
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(message.as_bytes(), &addr)?
        }
    };
    Ok(())
}

/// Sends `message` (newline-separated assignments such as `READY=1`) when systemd asked
/// for notifications. A failure is logged, never fatal: the service runs either way.
pub fn notify(message: &str) {
    let Some(var) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Some(target) = target(&var) else {
        tracing::warn!(socket = ?var, "NOTIFY_SOCKET is neither a path nor @name; not notifying systemd");
        return;
    };
    if let Err(e) = send(&target, message) {
        tracing::warn!(socket = ?var, error = %e, "cannot notify systemd");
    }
}

/// The service is up: `READY=1` with a one-line status for `systemctl status`.
pub fn ready(status: &str) {
    notify(&format!(
        "READY=1\nMAINPID={}\nSTATUS={status}",
        std::process::id()
    ));
}

/// The service is shutting down.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_path_or_an_abstract_socket() {
        assert_eq!(
            target(OsStr::new("/run/systemd/notify")),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            target(OsStr::new("@sd-123")),
            Some(Target::Abstract(b"sd-123".to_vec()))
        );
        assert_eq!(target(OsStr::new("relative")), None);
        assert_eq!(target(OsStr::new("")), None);
    }

    #[test]
    fn a_datagram_reaches_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        send(&Target::Path(path), "READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("novacron-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send(&Target::Abstract(name.into_bytes()), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
