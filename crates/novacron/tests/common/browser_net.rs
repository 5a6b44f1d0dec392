//! The browser's own network namespace, holding only a loopback that nothing else touches.
//!
//! Chromium fails the requests it has in flight with `net::ERR_NETWORK_CHANGED` whenever an
//! address of its namespace comes or goes, and other tests of the suite add and remove
//! bridges, veths and VXLAN links on the host all the time (a CI run lost the web UI's
//! `app.js` that way). So chromedriver, and the chromium it starts, run in a namespace made
//! by `unshare --net` with only `lo` up, and reach the servers under test through a
//! [`Relay`]: a listener on the same port of the namespace's 127.0.0.1 that copies each
//! connection to that port of the host's 127.0.0.1. A URL reads the same in the browser as
//! in the test.

use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ip;

/// How long the namespace of a process just spawned may take to differ from ours.
const UNSHARE_WAIT: Duration = Duration::from_secs(10);
/// Interval between two looks for a connection to relay.
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// `program args…` run in a new network namespace whose loopback is up (the process keeps
/// the pid of the returned command's child: `unshare` and `sh` both exec).
pub fn command_in_new_netns(program: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "--",
        "sh",
        "-c",
        r#"ip link set lo up && exec "$0" "$@""#,
        program,
    ]);
    cmd
}

/// A handle on the network namespace of a process.
#[derive(Debug, Clone)]
pub struct Netns(Arc<File>);

impl Netns {
    /// The namespace of `pid`, once it is no longer ours (the process has unshared), or an
    /// error after [`UNSHARE_WAIT`].
    pub fn of_process(pid: u32) -> io::Result<Netns> {
        let ours = std::fs::read_link("/proc/self/ns/net")?;
        let path = format!("/proc/{pid}/ns/net");
        let deadline = Instant::now() + UNSHARE_WAIT;
        loop {
            let theirs = std::fs::read_link(&path)?;
            if theirs != ours {
                let file = File::open(&path)?;
                // Still the namespace read above, not a later one or another process's.
                if std::fs::read_link(&path)? == theirs {
                    return Ok(Netns(Arc::new(file)));
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "process {pid} still shares our network namespace after {UNSHARE_WAIT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs `f` on a thread of its own that has entered this namespace: a socket made
    /// there stays in the namespace, whatever thread uses it later.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        novacron_net::netns::run_in(&self.0, f)?
    }

    /// A TCP connection to `127.0.0.1:port` of this namespace.
    pub fn connect_loopback(&self, port: u16, timeout: Duration) -> io::Result<TcpStream> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        self.run(|| TcpStream::connect_timeout(&addr, timeout))
    }
}

/// Relays connections to `127.0.0.1:port` of a namespace to the same port of the host's
/// loopback until dropped. Connections already relayed live on until either side closes.
#[derive(Debug)]
pub struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    pub fn start(ns: &Netns, port: u16) -> io::Result<Relay> {
        let listener = ns.run(|| TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inside, _)) => relay_one(inside, port),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(ACCEPT_POLL)
                    }
                    Err(e) => eprintln!("webdriver: relay of port {port}: accept: {e}"),
                }
            }
        });
        Ok(Relay {
            port,
            stop,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects `inside` to the host's `127.0.0.1:port` and copies both ways on two threads;
/// each direction's end is passed on as a half-close. A refused connection just closes
/// `inside`, as the server itself would have.
fn relay_one(inside: TcpStream, port: u16) {
    let outside = match TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        ACCEPT_POLL * 500,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("webdriver: relay of port {port}: connecting to the host: {e}");
            return;
        }
    };
    let pair = inside
        .set_nonblocking(false)
        .and_then(|()| Ok((inside.try_clone()?, outside.try_clone()?)));
    let (inside_w, outside_w) = match pair {
        Ok(p) => p,
        Err(e) => {
            eprintln!("webdriver: relay of port {port}: {e}");
            return;
        }
    };
    for (mut from, mut to) in [(inside, outside_w), (outside, inside_w)] {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}

/// The port of `url` when it names the host's loopback (`127.0.0.1` or `localhost`), with
/// the scheme's default port when it names none; `None` for any other host.
pub fn loopback_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse().ok()?)),
        None => (authority, None),
    };
    if host != "127.0.0.1" && host != "localhost" {
        return None;
    }
    port.or(match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    })
}

/// For tests of the above: a veth pair on the host whose first end gets 198.18.251.1/32 and loses it again, over
/// and over, until stopped; the pair is deleted then (and on a panic).
pub struct AddressFlapper {
    link: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl AddressFlapper {
    pub fn start() -> AddressFlapper {
        let link = format!("ncwd{}", std::process::id());
        let peer = format!("{link}p");
        ip(&["link", "add", &link, "type", "veth", "peer", "name", &peer]);
        let stop = Arc::new(AtomicBool::new(false));
        let mut flapper = AddressFlapper {
            link: link.clone(),
            stop: stop.clone(),
            thread: None,
        };
        ip(&["link", "set", &peer, "up"]);
        ip(&["link", "set", &link, "up"]);
        flapper.thread = Some(std::thread::spawn(move || {
            let mut flips = 0;
            // Bounded whatever happens to the test.
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                ip(&["addr", "add", "198.18.251.1/32", "dev", &link]);
                std::thread::sleep(Duration::from_millis(20));
                ip(&["addr", "del", "198.18.251.1/32", "dev", &link]);
                std::thread::sleep(Duration::from_millis(20));
                flips += 2;
            }
            flips
        }));
        flapper
    }

    pub fn stop(mut self) -> u32 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for AddressFlapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
    }
}
