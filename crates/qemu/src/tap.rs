//! Tap devices for bridged NICs, made by the agent and handed to QEMU as open descriptors.
//!
//! QEMU's own `-netdev bridge` runs the setuid `qemu-bridge-helper`, which a sandboxed QEMU
//! (`-sandbox spawn=deny`) may not start and which needs a host-wide `bridge.conf`. Instead
//! the agent opens `/dev/net/tun`, lets the kernel name the tap (`nctap%d`, so two QEMUs of
//! one VM during a same-host migration never collide), attaches it to the bridge, brings it
//! up and passes the descriptor (`-netdev tap,fd=N`). The tap is not persistent: it goes away
//! with the last descriptor, that is when QEMU ends, so nothing is left to clean up.
//!
//! Only ioctls on `/dev/net/tun` and a local datagram socket, and one sysfs write: the tap's
//! alias names the guest NIC's MAC ([`GUEST_ALIAS_PREFIX`]), so the node's network side
//! can tell which tap carries which NIC (a NIC's bandwidth limit is a qdisc on its tap);
//! no `ip` command, no netlink.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::QemuError;

/// A tap's alias (`ip link` shows it): this and the guest NIC's MAC, lowercase, e.g.
/// `nc-guest=02:aa:bb:cc:dd:ee`. `novacron_net::TAP_ALIAS_PREFIX` reads the same.
pub const GUEST_ALIAS_PREFIX: &str = "nc-guest=";

/// Name template: the kernel replaces `%d` with the first free number.
const NAME_TEMPLATE: &[u8] = b"nctap%d";
// From <linux/if_tun.h> and <linux/sockios.h>; libc has no constants for these.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// An open tap device; closing it (drop) removes the device once QEMU's copy is closed too.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
}

impl Tap {
    /// Creates a tap for the guest NIC with MAC `guest_mac`, attaches it to `bridge` and
    /// sets it up.
    pub fn on_bridge(bridge: &str, guest_mac: &str) -> Result<Tap, QemuError> {
        let tap = Tap::create()?;
        tap.attach(bridge)?;
        tap.set_alias(guest_mac);
        Ok(tap)
    }

    /// Writes [`GUEST_ALIAS_PREFIX`] and `guest_mac` into the tap's alias. Without it the NIC
    /// still works, only unshaped, so a failure is logged, not returned.
    fn set_alias(&self, guest_mac: &str) {
        let path = format!("/sys/class/net/{}/ifalias", self.name);
        let alias = format!("{GUEST_ALIAS_PREFIX}{}", guest_mac.to_ascii_lowercase());
        if let Err(e) = std::fs::write(&path, &alias) {
            tracing::warn!(tap = %self.name, %alias, error = %e, "cannot set the tap's alias: a bandwidth limit will not find it");
        }
    }

    /// The kernel's name for the device (`nctapN`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor to pass to QEMU.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The descriptor, borrowed (to hand it over QMP).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    fn create() -> Result<Tap, QemuError> {
        // SAFETY: a NUL-terminated constant path; the result is checked.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(tap_error(
                "opening /dev/net/tun",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = ifreq_named(NAME_TEMPLATE);
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI;
        // SAFETY: TUNSETIFF reads and writes a valid, exclusively borrowed ifreq.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            return Err(tap_error(
                "creating a tap (TUNSETIFF)",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: the kernel wrote a NUL-terminated name into ifr_name.
        let name = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Ok(Tap { fd, name })
    }

    /// Gives the tap a MAC starting `fe:` (five random bytes after it). A Linux bridge whose
    /// own MAC was not set takes the lowest MAC of its ports, so a tap with a random one
    /// could take over the bridge's MAC when it joins, and hand it back when it leaves: every
    /// host and guest that cached the old one loses the bridge until its ARP entry expires.
    /// No real NIC's MAC starts `fe:`, so the bridge keeps its uplink's (or, with taps only,
    /// changes only when a tap joins with a lower one). The guest never sees this MAC: its
    /// NIC has its own.
    fn set_high_mac(&self, sock: &OwnedFd) -> Result<(), QemuError> {
        let mut tail = [0u8; 5];
        // SAFETY: getrandom writes at most `tail.len()` bytes into `tail`.
        let got = unsafe { libc::getrandom(tail.as_mut_ptr().cast(), tail.len(), 0) };
        if got != tail.len() as isize {
            // Unlikely (getrandom on a booted system does not fail); a fixed tail still
            // keeps the tap above every real NIC.
            tail = [0x4e, 0x43, 0x00, 0x00, 0x01];
        }
        let mut req = ifreq_named(self.name.as_bytes());
        // SAFETY: writing the hwaddr member of the union of a zeroed ifreq.
        unsafe {
            req.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
            for (dst, src) in req
                .ifr_ifru
                .ifru_hwaddr
                .sa_data
                .iter_mut()
                .zip(std::iter::once(0xfe_u8).chain(tail))
            {
                *dst = src as libc::c_char;
            }
        }
        // SAFETY: SIOCSIFHWADDR reads a valid ifreq (tap name, Ethernet address).
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFHWADDR, &mut req) } < 0 {
            return Err(tap_error(
                &format!("setting the MAC of {}", self.name),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn attach(&self, bridge: &str) -> Result<(), QemuError> {
        let sock = control_socket()?;
        self.set_high_mac(&sock)?;
        let index = {
            let c = std::ffi::CString::new(self.name.as_bytes())
                .map_err(|_| invalid(format!("tap name {:?}", self.name)))?;
            // SAFETY: a valid NUL-terminated name.
            unsafe { libc::if_nametoindex(c.as_ptr()) }
        };
        if index == 0 {
            return Err(tap_error(
                &format!("finding tap {}", self.name),
                std::io::Error::last_os_error(),
            ));
        }
        if bridge.is_empty() || bridge.len() >= libc::IFNAMSIZ {
            return Err(invalid(format!(
                "bridge name {bridge:?} (1 to {} bytes)",
                libc::IFNAMSIZ - 1
            )));
        }
        // The tap takes the bridge's MTU first: a bridge set to less (an overlay's 1450)
        // would otherwise carry a 1500-byte port until something else noticed.
        let mut req = ifreq_named(bridge.as_bytes());
        // SAFETY: SIOCGIFMTU reads a valid ifreq and writes its MTU field.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } == 0 {
            // SAFETY: the kernel just wrote the MTU member of the union.
            let mtu = unsafe { req.ifr_ifru.ifru_mtu };
            let mut tap_req = ifreq_named(self.name.as_bytes());
            tap_req.ifr_ifru.ifru_mtu = mtu;
            // SAFETY: SIOCSIFMTU reads a valid ifreq (tap name, MTU).
            if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &mut tap_req) } < 0 {
                return Err(tap_error(
                    &format!("setting the MTU of {} to {mtu}", self.name),
                    std::io::Error::last_os_error(),
                ));
            }
        }
        let mut req = ifreq_named(bridge.as_bytes());
        req.ifr_ifru.ifru_ifindex = index as libc::c_int;
        // SAFETY: SIOCBRADDIF reads a valid ifreq (bridge name, port index).
        if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCBRADDIF, &mut req) } < 0 {
            let e = std::io::Error::last_os_error();
            let hint = match e.raw_os_error() {
                Some(libc::ENODEV) => format!(" (no bridge named {bridge} on this host)"),
                Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => {
                    format!(" ({bridge} is not a Linux bridge)")
                }
                _ => String::new(),
            };
            return Err(tap_error(
                &format!("attaching {} to bridge {bridge}{hint}", self.name),
                e,
            ));
        }
        let mut req = ifreq_named(self.name.as_bytes());
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write a valid ifreq.
        unsafe {
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
                return Err(tap_error(
                    &format!("reading flags of {}", self.name),
                    std::io::Error::last_os_error(),
                ));
            }
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) < 0 {
                return Err(tap_error(
                    &format!("setting {} up", self.name),
                    std::io::Error::last_os_error(),
                ));
            }
        }
        Ok(())
    }
}

/// An ifreq whose name is `name` (at most IFNAMSIZ - 1 bytes; longer names are cut, and the
/// callers check lengths first).
fn ifreq_named(name: &[u8]) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.iter().take(libc::IFNAMSIZ - 1))
    {
        *dst = *src as libc::c_char;
    }
    req
}

fn control_socket() -> Result<OwnedFd, QemuError> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_LOCAL, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(tap_error(
            "opening a control socket",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a descriptor we just opened and own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn tap_error(context: &str, source: std::io::Error) -> QemuError {
    let hint = if source.raw_os_error() == Some(libc::EPERM) {
        " (bridged NICs need CAP_NET_ADMIN: run the agent as root)"
    } else {
        ""
    };
    QemuError::io(format!("{context}{hint}"), source)
}

fn invalid(what: String) -> QemuError {
    QemuError::InvalidSpec(format!("invalid {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_names_are_cut_to_fit_and_nul_terminated() {
        let req = ifreq_named(b"a-very-long-interface-name");
        assert_eq!(req.ifr_name[libc::IFNAMSIZ - 1], 0);
        let req = ifreq_named(b"br0");
        assert_eq!(
            &req.ifr_name[..4],
            &[b'b' as libc::c_char, b'r' as _, b'0' as _, 0]
        );
    }

    /// A bridge with an uplink keeps the uplink's MAC while taps join and leave (a tap's MAC
    /// starts `fe:`, above any real NIC's).
    #[test]
    fn a_bridge_keeps_its_uplinks_mac_when_taps_join_and_leave() {
        if !std::path::Path::new("/dev/net/tun").exists() || unsafe { libc::geteuid() } != 0 {
            println!("needs root and /dev/net/tun; skipped");
            return;
        }
        let id = std::process::id() % 100_000;
        let (bridge, uplink) = (format!("nctb{id}"), format!("nctu{id}"));
        let ip = |args: &[&str]| {
            let ok = std::process::Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {args:?}");
        };
        let mac_of = |dev: &str| {
            std::fs::read_to_string(format!("/sys/class/net/{dev}/address"))
                .unwrap()
                .trim()
                .to_string()
        };
        ip(&["link", "add", &bridge, "type", "bridge"]);
        // An uplink (a veth end) with a MAC as high as a real NIC's can be (locally
        // administered).
        let peer = format!("nctv{id}");
        let made = std::process::Command::new("ip")
            .args([
                "link",
                "add",
                &uplink,
                "address",
                "fa:ff:ff:ff:ff:ff",
                "type",
                "veth",
            ])
            .args(["peer", "name", &peer])
            .status()
            .is_ok_and(|s| s.success());
        let checked = std::panic::catch_unwind(|| {
            assert!(made, "a veth pair");
            ip(&["link", "set", &uplink, "master", &bridge]);
            assert_eq!(mac_of(&bridge), "fa:ff:ff:ff:ff:ff");
            let tap = Tap::on_bridge(&bridge, "02:AA:00:00:00:01").unwrap();
            assert!(
                mac_of(tap.name()).starts_with("fe:"),
                "{}",
                mac_of(tap.name())
            );
            let alias = std::fs::read_to_string(format!("/sys/class/net/{}/ifalias", tap.name()))
                .unwrap_or_default();
            assert_eq!(alias.trim(), "nc-guest=02:aa:00:00:00:01");
            assert_eq!(
                mac_of(&bridge),
                "fa:ff:ff:ff:ff:ff",
                "the tap took the bridge's MAC"
            );
            drop(tap);
            assert_eq!(mac_of(&bridge), "fa:ff:ff:ff:ff:ff");
        });
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &uplink])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &bridge])
            .status();
        if let Err(e) = checked {
            std::panic::resume_unwind(e);
        }
    }

    #[test]
    fn a_missing_bridge_is_named_in_the_error() {
        if !std::path::Path::new("/dev/net/tun").exists() || unsafe { libc::geteuid() } != 0 {
            println!("needs root and /dev/net/tun; skipped");
            return;
        }
        let err = Tap::on_bridge("ncnobridge0", "02:00:00:00:00:01")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no bridge named ncnobridge0"), "{err}");
    }
}
