//! TUN devices (layer 3, no packet-information header).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::{WanemError, io_err};

pub struct Tun {
    file: File,
    name: String,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Short tag unique to this process and prefix, for device names (at most 15 bytes).
pub fn unique_tag(prefix: &str) -> String {
    let mut h: u32 = 2166136261;
    for b in prefix.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(16777619);
    }
    format!("{:05x}{:05x}", std::process::id() & 0xfffff, h & 0xfffff)
}

impl Tun {
    pub fn create(name: &str) -> Result<Tun, WanemError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(io_err("opening /dev/net/tun"))?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            _pad: [0; 22],
        };
        let n = name.len().min(libc::IFNAMSIZ - 1);
        req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        // SAFETY: TUNSETIFF reads and writes an `ifreq`, which `IfReq` lays out (name, flags, padding to 40 bytes).
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) };
        if rc != 0 {
            return Err(WanemError::Io {
                what: format!("creating TUN device {name}"),
                source: io::Error::last_os_error(),
            });
        }
        let end = req
            .name
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(libc::IFNAMSIZ);
        Ok(Tun {
            file,
            name: String::from_utf8_lossy(&req.name[..end]).into_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// Reads one packet; `Ok(0)` when none is waiting.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        let n = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    /// Writes one packet.
    pub fn write(&self, pkt: &[u8]) -> io::Result<()> {
        // SAFETY: `pkt` is readable for `pkt.len()` bytes.
        let n = unsafe { libc::write(self.fd(), pkt.as_ptr().cast(), pkt.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
