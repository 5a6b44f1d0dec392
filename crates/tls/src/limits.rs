//! How many connections an HTTPS endpoint holds and for how long, and the process's open-file
//! limit those numbers are derived from. Every accepted connection costs a file descriptor; a
//! process that runs out of them cannot accept its own agent's heartbeat, open a disk or
//! touch the fence heartbeat file, so the endpoints stay well below the limit.

use std::time::Duration;

/// Connection limits of one HTTPS endpoint ([`crate::serve_https_with`]).
///
/// Defaults ([`ServeLimits::default`]), and why:
/// - `header_read_timeout` 10 s: a client must finish the TLS handshake, and then send a
///   complete request head, within this each. Our clients send a request right after
///   connecting; a connection that sends nothing is an attack or a broken client.
/// - `idle_timeout` 60 s: a kept-alive connection with no request in flight and no bytes in
///   either direction for this long is closed. Longer than the client's pool idle time
///   (30 s), so clients drop idle connections first and never reuse one the server is
///   closing. Requests in flight (long polls, watches, streamed bodies) are never idle, and
///   upgraded connections (console attach) leave this accounting entirely.
/// - `max_connections`: a quarter of the soft `RLIMIT_NOFILE` when the endpoint starts,
///   between 16 and 16384. `novacron up` serves two endpoints (API and agent) in one
///   process, so together they take at most half of the descriptors; the rest stays for
///   QEMU monitors, disks, the store, DWCP streams and outgoing connections. With the limit
///   raised to a typical hard limit (524288 or more) this is 16384.
/// - `max_connections_per_address`: 256, and at most a quarter of `max_connections`, so
///   one address (IPv6: one /64) can never fill the endpoint. An agent uses a handful of
///   connections to the control plane; a CLI one or two.
///
/// Connections over either cap are closed right after `accept`, before any TLS work, except
/// that at the total cap a newcomer from an address lighter than the heaviest one is let in
/// and the heaviest address's oldest connection closed instead (see `serve`), so a flood from
/// many addresses cannot keep out an agent or the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

/// Default header/handshake timeout (see [`ServeLimits`]).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default keep-alive idle timeout (see [`ServeLimits`]).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound of the default total cap (see [`ServeLimits`]).
pub const DEFAULT_MAX_CONNECTIONS_CEILING: usize = 16384;
/// Default per-address cap (see [`ServeLimits`]).
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;

impl Default for ServeLimits {
    fn default() -> ServeLimits {
        ServeLimits::for_open_file_limit(open_file_limit().unwrap_or(1024))
    }
}

impl ServeLimits {
    /// The default limits for a process whose soft `RLIMIT_NOFILE` is `nofile`.
    pub fn for_open_file_limit(nofile: u64) -> ServeLimits {
        let total = usize::try_from(nofile / 4)
            .unwrap_or(usize::MAX)
            .clamp(16, DEFAULT_MAX_CONNECTIONS_CEILING);
        ServeLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: total,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS.min(total / 4),
        }
    }

    /// The defaults, overridden by environment variables where set (for operators; the
    /// roles have no flags for these): `NOVACRON_MAX_CONNECTIONS`,
    /// `NOVACRON_MAX_CONNECTIONS_PER_ADDRESS`, `NOVACRON_HEADER_READ_TIMEOUT_SECS`,
    /// `NOVACRON_IDLE_TIMEOUT_SECS`. Invalid values are logged and ignored.
    pub fn from_env() -> ServeLimits {
        let mut limits = ServeLimits::default();
        if let Some(n) = env_number("NOVACRON_MAX_CONNECTIONS") {
            limits.max_connections = n.max(1) as usize;
        }
        if let Some(n) = env_number("NOVACRON_MAX_CONNECTIONS_PER_ADDRESS") {
            limits.max_connections_per_address = n.max(1) as usize;
        }
        if let Some(n) = env_number("NOVACRON_HEADER_READ_TIMEOUT_SECS") {
            limits.header_read_timeout = Duration::from_secs(n.max(1));
        }
        if let Some(n) = env_number("NOVACRON_IDLE_TIMEOUT_SECS") {
            limits.idle_timeout = Duration::from_secs(n.max(1));
        }
        limits
    }
}

fn env_number(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    match raw.trim().parse::<u64>() {
        Ok(n) => Some(n),
        Err(_) => {
            tracing::warn!(variable = name, value = %raw, "not a number; using the default");
            None
        }
    }
}

/// The soft `RLIMIT_NOFILE` of this process (`None`: unlimited or unknown).
pub fn open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid, exclusively borrowed struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    Some(lim.rlim_cur)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, for the long-running roles: a control
/// plane or agent holds a socket per peer and the usual soft limit of 1024 is far too low
/// for a thousand nodes. Returns the soft limit in force afterwards (`None`: unknown).
/// Call it before any thread starts, so every thread sees the raised limit.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, exclusively borrowed struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!(
                    soft = lim.rlim_cur,
                    hard = lim.rlim_max,
                    "cannot raise the open-file limit"
                );
            }
        }
    }
    open_file_limit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_stay_well_below_the_file_limit() {
        let small = ServeLimits::for_open_file_limit(1024);
        assert_eq!(small.max_connections, 256);
        assert_eq!(small.max_connections_per_address, 64);
        let big = ServeLimits::for_open_file_limit(1 << 20);
        assert_eq!(big.max_connections, 16384);
        assert_eq!(big.max_connections_per_address, 256);
        let tiny = ServeLimits::for_open_file_limit(20);
        assert_eq!(tiny.max_connections, 16);
        assert_eq!(tiny.max_connections_per_address, 4);
        // Two endpoints in one process never take more than half the descriptors.
        for nofile in [256u64, 1024, 20000, 65536, 1 << 20] {
            let l = ServeLimits::for_open_file_limit(nofile);
            assert!(
                2 * l.max_connections as u64 <= nofile / 2 + 32,
                "{nofile}: {l:?}"
            );
        }
    }
}
