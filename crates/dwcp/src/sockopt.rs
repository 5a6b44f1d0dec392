//! Linux TCP socket options DWCP relies on: congestion control, buffers, TCP_INFO.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

fn setsockopt_bytes(fd: RawFd, level: i32, opt: i32, val: &[u8]) -> io::Result<()> {
    // SAFETY: `val` is a live buffer of `val.len()` bytes for the duration of the call; the
    // kernel copies it and does not keep the pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            val.as_ptr().cast(),
            val.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn setsockopt_int(fd: RawFd, level: i32, opt: i32, val: i32) -> io::Result<()> {
    setsockopt_bytes(fd, level, opt, &val.to_ne_bytes())
}

fn getsockopt_bytes(fd: RawFd, level: i32, opt: i32, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is writable for `len` bytes and `len` is a valid in/out length pointer.
    let rc = unsafe { libc::getsockopt(fd, level, opt, buf.as_mut_ptr().cast(), &mut len) };
    if rc == 0 {
        Ok(len as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Selects the congestion-control algorithm of one socket (e.g. `bbr`, `cubic`).
pub fn set_congestion(sock: &impl AsRawFd, name: &str) -> io::Result<()> {
    setsockopt_bytes(
        sock.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_CONGESTION,
        name.as_bytes(),
    )
}

/// The congestion-control algorithm a socket uses.
pub fn congestion(sock: &impl AsRawFd) -> io::Result<String> {
    let mut buf = [0u8; 16];
    let n = getsockopt_bytes(
        sock.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_CONGESTION,
        &mut buf,
    )?;
    let s = &buf[..n];
    let end = s.iter().position(|b| *b == 0).unwrap_or(s.len());
    Ok(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// Sets the send buffer, beyond `net.core.wmem_max` when the process may (CAP_NET_ADMIN).
pub fn set_send_buffer(sock: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize / 2) as i32;
    setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, v)
        .or_else(|_| setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, v))
}

/// Sets the receive buffer, beyond `net.core.rmem_max` when the process may.
pub fn set_recv_buffer(sock: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize / 2) as i32;
    setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v)
        .or_else(|_| setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, v))
}

/// Limits unsent bytes queued in the socket, so a writer blocks while the stream has no
/// free congestion window and the scheduler sends on another stream instead.
pub fn set_notsent_lowat(sock: &impl AsRawFd, bytes: u32) -> io::Result<()> {
    setsockopt_int(
        sock.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_NOTSENT_LOWAT,
        bytes.min(i32::MAX as u32) as i32,
    )
}

/// Aborts the connection when sent data stays unacknowledged this long.
pub fn set_user_timeout(sock: &impl AsRawFd, ms: u32) -> io::Result<()> {
    setsockopt_int(
        sock.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_USER_TIMEOUT,
        ms.min(i32::MAX as u32) as i32,
    )
}

/// Closes the socket with a reset instead of a FIN when it is closed.
pub fn set_linger_reset(sock: &impl AsRawFd) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is plain old data; reading its bytes is sound.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&l as *const libc::linger).cast::<u8>(),
            std::mem::size_of::<libc::linger>(),
        )
    };
    setsockopt_bytes(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, bytes)
}

/// The parts of Linux `struct tcp_info` DWCP uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Smoothed RTT, microseconds.
    pub rtt_us: u32,
    /// Minimum RTT seen, microseconds.
    pub min_rtt_us: u32,
    /// Congestion window, segments.
    pub snd_cwnd: u32,
    /// Sender MSS, bytes.
    pub snd_mss: u32,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// Segments sent over the connection's life.
    pub segs_out: u32,
    /// Bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Latest delivery-rate sample, bytes/s.
    pub delivery_rate: u64,
    /// The delivery-rate sample was limited by the application, not the network.
    pub delivery_rate_app_limited: bool,
    /// Bytes queued but not yet sent.
    pub notsent_bytes: u32,
    /// Pacing rate, bytes/s.
    pub pacing_rate: u64,
}

/// Reads `TCP_INFO` of a socket.
pub fn tcp_info(sock: &impl AsRawFd) -> io::Result<TcpInfo> {
    let mut b = [0u8; 232];
    let n = getsockopt_bytes(sock.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, &mut b)?;
    let u32_at = |o: usize| {
        if o + 4 <= n {
            u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
        } else {
            0
        }
    };
    let u64_at = |o: usize| {
        if o + 8 <= n {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_ne_bytes(x)
        } else {
            0
        }
    };
    // Offsets follow include/uapi/linux/tcp.h (stable ABI: fields are only ever appended).
    Ok(TcpInfo {
        delivery_rate_app_limited: n > 7 && b[7] & 1 != 0,
        snd_mss: u32_at(16),
        rtt_us: u32_at(68),
        snd_cwnd: u32_at(80),
        total_retrans: u32_at(100),
        pacing_rate: u64_at(104),
        bytes_acked: u64_at(120),
        bytes_received: u64_at(128),
        segs_out: u32_at(136),
        notsent_bytes: u32_at(144),
        min_rtt_us: u32_at(148),
        delivery_rate: u64_at(160),
    })
}
