//! novacron-wanem: a userspace WAN emulator for tests and benchmarks.
//!
//! Two network namespaces (sites) are joined through a TUN device in each; forwarder threads
//! read IP packets from one site's TUN and write them into the other's after applying, per
//! direction: random loss (Bernoulli), a rate limit (token bucket) with a bounded queue
//! (tail drop), a one-way delay and jitter (without reordering). TCP inside the namespaces
//! therefore sees real RTT, loss and bottleneck queueing.
//!
//! ```no_run
//! use novacron_wanem::{Wanem, WanemConfig, LinkParams};
//! let link = LinkParams::symmetric(100_000_000, std::time::Duration::from_millis(50), 0.001);
//! let wan = Wanem::up(WanemConfig::new("doc-", link)).unwrap();
//! // Run code in site-b from this thread, e.g. bind a listener on wan.site_b().addr.
//! wan.site_b().enter_current_thread().unwrap();
//! println!("{:?}", wan.stats());
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod forward;
mod netns;
pub mod parse;
mod tun;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use forward::DirectionStats;

/// Address of site A inside its namespace (198.18.0.0/15 is the benchmarking range).
pub const SITE_A_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Address of site B inside its namespace.
pub const SITE_B_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// MTU of the emulated link.
pub const MTU: u32 = 1500;

/// Errors of the emulator.
#[derive(Debug, thiserror::Error)]
pub enum WanemError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Ip {
        /// Arguments.
        args: String,
        /// Its error output.
        stderr: String,
    },
    /// A value does not parse.
    #[error("invalid {what} {value:?}: {hint}")]
    Parse {
        /// Which value.
        what: &'static str,
        /// The input.
        value: String,
        /// What is expected.
        hint: &'static str,
    },
    /// The namespaces already exist (another emulator with this prefix is up).
    #[error(
        "namespace {0} already exists: run `novacron-wanem down` (with the same --prefix) first"
    )]
    Exists(String),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> WanemError {
    let what = what.into();
    move |source| WanemError::Io { what, source }
}

/// Impairments of one direction.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectionParams {
    /// Bottleneck rate, bits/s (0: unlimited).
    pub rate_bps: u64,
    /// One-way delay.
    pub delay: Duration,
    /// Jitter: each packet's delay varies uniformly within ± this (never reordering).
    pub jitter: Duration,
    /// Probability of dropping a packet, 0..=1.
    pub loss: f64,
    /// Longest queueing delay at the bottleneck before tail drop.
    pub queue: Duration,
}

/// Impairments of both directions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkParams {
    /// Site A to site B.
    pub a_to_b: DirectionParams,
    /// Site B to site A.
    pub b_to_a: DirectionParams,
}

impl LinkParams {
    /// Same rate and loss both ways, RTT split evenly, 50 ms of queue.
    pub fn symmetric(rate_bps: u64, rtt: Duration, loss: f64) -> LinkParams {
        let d = DirectionParams {
            rate_bps,
            delay: rtt / 2,
            jitter: Duration::ZERO,
            loss,
            queue: Duration::from_millis(50),
        };
        LinkParams {
            a_to_b: d,
            b_to_a: d,
        }
    }

    /// Sets jitter both ways.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.a_to_b.jitter = jitter;
        self.b_to_a.jitter = jitter;
        self
    }

    /// Sets the queue limit both ways.
    pub fn with_queue(mut self, queue: Duration) -> Self {
        self.a_to_b.queue = queue;
        self.b_to_a.queue = queue;
        self
    }
}

/// Emulator settings.
#[derive(Clone, Debug)]
pub struct WanemConfig {
    /// Prefix of the namespace names: `{prefix}site-a`, `{prefix}site-b`.
    pub prefix: String,
    /// Link impairments.
    pub link: LinkParams,
    /// Seed of the loss/jitter generator.
    pub seed: u64,
}

impl WanemConfig {
    /// Settings with a fixed seed.
    pub fn new(prefix: &str, link: LinkParams) -> Self {
        WanemConfig {
            prefix: prefix.to_string(),
            link,
            seed: 0x005E_ED0F_3A11,
        }
    }
}

/// One emulated site: a network namespace with one address on the link.
#[derive(Clone, Debug)]
pub struct Site {
    /// Namespace name.
    pub netns: String,
    /// This site's address.
    pub addr: Ipv4Addr,
}

impl Site {
    /// Moves the calling thread into this site's network namespace: sockets it creates
    /// afterwards live there. Use from dedicated threads (e.g. a tokio runtime's
    /// `on_thread_start`).
    pub fn enter_current_thread(&self) -> Result<(), WanemError> {
        netns::enter(&self.netns)
    }

    /// A command that runs inside this site (`ip netns exec`).
    pub fn command(&self, program: &str) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.netns, program]);
        c
    }
}

/// Counters of both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Site A to site B.
    pub a_to_b: DirectionStats,
    /// Site B to site A.
    pub b_to_a: DirectionStats,
}

impl Stats {
    /// Counter differences `self - earlier`.
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            a_to_b: self.a_to_b.since(&earlier.a_to_b),
            b_to_a: self.b_to_a.since(&earlier.b_to_a),
        }
    }
}

/// A running emulator. Dropping it stops the forwarder and deletes the namespaces.
pub struct Wanem {
    site_a: Site,
    site_b: Site,
    params: Arc<RwLock<LinkParams>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    counters: [Arc<forward::Counters>; 2],
    blackhole_until: Arc<RwLock<Option<Instant>>>,
}

impl Wanem {
    /// Creates the namespaces and TUN devices and starts forwarding.
    pub fn up(cfg: WanemConfig) -> Result<Wanem, WanemError> {
        let a = format!("{}site-a", cfg.prefix);
        let b = format!("{}site-b", cfg.prefix);
        for ns in [&a, &b] {
            if netns::exists(ns) {
                return Err(WanemError::Exists(ns.clone()));
            }
        }
        // From here on, anything created is undone by `Cleanup` if a later step fails.
        let mut cleanup = netns::Cleanup::default();
        netns::add(&a)?;
        cleanup.namespaces.push(a.clone());
        netns::add(&b)?;
        cleanup.namespaces.push(b.clone());
        let tag = tun::unique_tag(&cfg.prefix);
        let tun_a = tun::Tun::create(&format!("nw{tag}a"))?;
        let tun_b = tun::Tun::create(&format!("nw{tag}b"))?;
        netns::setup_site(&a, tun_a.name(), SITE_A_ADDR, SITE_B_ADDR)?;
        netns::setup_site(&b, tun_b.name(), SITE_B_ADDR, SITE_A_ADDR)?;
        let params = Arc::new(RwLock::new(cfg.link));
        let stop = Arc::new(AtomicBool::new(false));
        let blackhole_until = Arc::new(RwLock::new(None));
        let counters = [
            Arc::new(forward::Counters::default()),
            Arc::new(forward::Counters::default()),
        ];
        let tun_a = Arc::new(tun_a);
        let tun_b = Arc::new(tun_b);
        let mut threads = Vec::new();
        for (dir, (from, to)) in [
            (tun_a.clone(), tun_b.clone()),
            (tun_b.clone(), tun_a.clone()),
        ]
        .into_iter()
        .enumerate()
        {
            let fwd = forward::Forwarder {
                from,
                to,
                a_to_b: dir == 0,
                params: params.clone(),
                stop: stop.clone(),
                counters: counters[dir].clone(),
                blackhole_until: blackhole_until.clone(),
                seed: cfg.seed ^ (dir as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            let t = std::thread::Builder::new()
                .name(format!("wanem-{}", if dir == 0 { "a2b" } else { "b2a" }))
                .spawn(move || fwd.run())
                .map_err(io_err("spawning the forwarder"))?;
            threads.push(t);
        }
        cleanup.namespaces.clear();
        tracing::info!(site_a = %a, site_b = %b, "wanem up");
        Ok(Wanem {
            site_a: Site {
                netns: a,
                addr: SITE_A_ADDR,
            },
            site_b: Site {
                netns: b,
                addr: SITE_B_ADDR,
            },
            params,
            stop,
            threads,
            counters,
            blackhole_until,
        })
    }

    /// Site A.
    pub fn site_a(&self) -> &Site {
        &self.site_a
    }

    /// Site B.
    pub fn site_b(&self) -> &Site {
        &self.site_b
    }

    /// Counters now.
    pub fn stats(&self) -> Stats {
        Stats {
            a_to_b: self.counters[0].snapshot(),
            b_to_a: self.counters[1].snapshot(),
        }
    }

    /// Current impairments.
    pub fn params(&self) -> LinkParams {
        *self.params.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes impairments while running.
    pub fn set_params(&self, link: LinkParams) {
        *self.params.write().unwrap_or_else(|p| p.into_inner()) = link;
    }

    /// Drops every packet both ways for `d`, then restores the link.
    pub fn blackhole(&self, d: Duration) {
        *self
            .blackhole_until
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + d);
    }

    /// Stops forwarding and deletes the namespaces (also done on drop).
    pub fn down(mut self) -> Result<(), WanemError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), WanemError> {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The forwarder threads held the TUN fds; they are closed now, which removes the devices.
        let mut first_err = None;
        for ns in [&self.site_a.netns, &self.site_b.netns] {
            if netns::exists(ns)
                && let Err(e) = netns::del(ns)
            {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Wanem {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(error = %e, "wanem teardown");
        }
    }
}

/// Deletes the namespaces of an emulator with this prefix, e.g. one whose process died.
pub fn delete_sites(prefix: &str) -> Result<(), WanemError> {
    for s in ["site-a", "site-b"] {
        let ns = format!("{prefix}{s}");
        if netns::exists(&ns) {
            netns::del(&ns)?;
        }
    }
    Ok(())
}
