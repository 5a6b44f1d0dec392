//! Passing an open file descriptor over a unix socket (SCM_RIGHTS): a CLI on the control
//! plane's own host hands it the file to import instead of sending its bytes over TLS. Both
//! ends are single system calls that callers drive from their own readiness loop (or on a
//! blocking socket). (novacron-qemu sends descriptors to QEMU with its own copy of the send: it
//! does not depend on this crate, and the fuzz targets build it.)

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Room for the control message of at most this many descriptors (more are closed unread).
const MAX_FDS: usize = 4;

/// One `sendmsg` of a prefix of `bytes` (at least one byte) with `fd` attached; answers how
/// many bytes went. `WouldBlock` on a non-blocking socket that is full.
pub fn send_with_fd(socket: RawFd, bytes: &[u8], fd: BorrowedFd<'_>) -> std::io::Result<usize> {
    // Room for one descriptor, aligned as cmsghdr needs.
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) } as _;
    // SAFETY: msg_control points at `control`, large enough for one cmsghdr with an int
    // (CMSG_SPACE(4) is 24 bytes, `control` 32), so CMSG_FIRSTHDR is non-null and CMSG_DATA
    // lies inside it.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// One `recvmsg` into `buf`: answers how many bytes came and the first descriptor attached to
/// them, if any (received close-on-exec; any others are closed at once). `WouldBlock` on a
/// non-blocking socket with nothing to read.
pub fn recv_with_fd(socket: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Option<OwnedFd>)> {
    let mut control = [0u64; (MAX_FDS * size_of::<libc::c_int>()).div_ceil(8) + 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: the buffers above are valid for the lengths given.
    let got = unsafe { libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if got < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut first = None;
    // SAFETY: the kernel filled `control` up to msg_controllen; CMSG_FIRSTHDR/CMSG_NXTHDR walk
    // only within it, and each SCM_RIGHTS payload holds (cmsg_len - CMSG_LEN(0)) / 4 ints, each
    // a descriptor now owned by this process.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / size_of::<libc::c_int>();
                for i in 0..count {
                    let fd = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                    if first.is_none() {
                        first = Some(fd);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((got as usize, first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_descriptor_crosses_and_reads_the_same_file() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = tempfile_in_tmp();
        file.write_all(b"the bytes of a disk").unwrap();
        file.rewind().unwrap();
        assert_eq!(send_with_fd(a.as_raw_fd(), b"F", file.as_fd()).unwrap(), 1);
        let mut buf = [0u8; 8];
        let (n, fd) = recv_with_fd(b.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"F");
        let mut got = String::new();
        std::fs::File::from(fd.expect("a descriptor came"))
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "the bytes of a disk");
        // Bytes without a descriptor come without one.
        (&a).write_all(b"x").unwrap();
        let (n, fd) = recv_with_fd(b.as_raw_fd(), &mut buf).unwrap();
        assert_eq!((n, fd.is_none()), (1, true));
    }

    fn tempfile_in_tmp() -> std::fs::File {
        let path = std::env::temp_dir().join(format!("nc-fdpass-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }
}
