//! Overlay traffic between sites, encrypted: WireGuard's protocol (Noise IK handshake,
//! ChaCha20-Poly1305 data packets, replay protection, key rotation every two minutes),
//! spoken in user space by the `boringtun` library over a TUN device, because this
//! project's kernels may lack the WireGuard module.
//!
//! How a VXLAN packet finds the tunnel: the VXLAN devices keep sending to the remote
//! node's VTEP address (their FDB entries do not change); one policy rule sends UDP to the
//! VXLAN port through routing table [`TUNNEL_TABLE`], which holds a /32 route into the TUN
//! device ([`TUNNEL_DEVICE`]) for each VTEP of another site only. A VTEP of this site is not
//! in the table, so its traffic falls through to the main table and leaves unencrypted.
//! The tunnel reads the VXLAN packet from the TUN device, seals it for the peer whose VTEP
//! it is addressed to and sends it over UDP to the peer's endpoint; the peer opens it,
//! checks that the inner source is the sender's own VTEP (WireGuard's allowed-IPs rule)
//! and writes it into its TUN device, where its kernel hands it to the VXLAN device as if
//! it had come from the wire. An nftables table (`inet novacron_tunnel`) drops VXLAN from
//! a VTEP of another site that did not come through the tunnel, so nobody on the WAN can
//! inject frames into a network by sending plain VXLAN with a peer's address.
//!
//! Keys: each node has a static X25519 key ([`TunnelKey`], a 0600 file) and publishes the
//! public half through the control plane; peers are configured from the control plane's
//! view ([`SiteTunnel::set_peers`]), never learnt from the wire.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use futures_util::TryStreamExt as _;
use rtnetlink::packet_route::IpProtocol;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RulePortRange};
use rtnetlink::{Handle, IpVersion, LinkUnspec, RouteMessageBuilder};

use crate::error::NetError;
use crate::firewall::run_nft;

/// UDP port the tunnel listens on unless told otherwise (WireGuard's customary port).
pub const DEFAULT_TUNNEL_PORT: u16 = 51820;
/// The TUN device that carries VXLAN packets into the tunnel.
pub const TUNNEL_DEVICE: &str = "ncwg0";
/// What the tunnel adds to each VXLAN packet: outer IPv4 (20) + UDP (8) + WireGuard's data
/// header (16) + its authentication tag (16). A network that spans sites needs an MTU this
/// much below one that stays in a site.
pub const TUNNEL_OVERHEAD: u32 = 60;
/// Routing table (and rule priority) that sends VXLAN to other sites into the tunnel:
/// "NC" in ASCII, like the node's other tables and qdisc handles.
pub const TUNNEL_TABLE: u32 = 0x4e43;
/// The underlay MTU the tunnel assumes (an Ethernet path).
const UNDERLAY_MTU: u32 = 1500;
/// nftables table that drops unsealed VXLAN from other sites.
const NFT_TABLE: &str = "novacron_tunnel";
/// How often WireGuard's timers run (handshake retries, keepalives, rekeys).
const TICK: Duration = Duration::from_millis(250);
/// How long a data thread waits for a packet before it looks at the stop flag.
const POLL_MS: i32 = 200;
/// Largest packet read from the TUN device or the socket.
const BUF: usize = 65_536;
/// Room WireGuard needs around a packet (data overhead; a handshake message is 148 bytes).
const SEAL_ROOM: usize = 256;
/// Handshakes a second accepted before the tunnel answers with cookies (WireGuard's DoS
/// defence).
const HANDSHAKE_LIMIT: u64 = 100;
/// WireGuard's message types (the first byte, little-endian u32).
/// The least time between two handshakes started unasked with one peer ([`greet`]).
const GREETING_INTERVAL: Duration = Duration::from_secs(5);
const HANDSHAKE_INIT: u8 = 1;
const HANDSHAKE_RESPONSE: u8 = 2;
const DATA_MESSAGE: u8 = 4;

/// A node's static tunnel key. Its `Debug` never shows the secret.
pub struct TunnelKey {
    secret: StaticSecret,
}

impl std::fmt::Debug for TunnelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TunnelKey(public {})", self.public())
    }
}

impl TunnelKey {
    /// A new random key.
    pub fn generate() -> Result<Self, NetError> {
        let mut bytes = [0u8; 32];
        random_bytes(&mut bytes).map_err(tunnel_io("reading random bytes for the tunnel key"))?;
        Ok(Self {
            secret: StaticSecret::from(bytes),
        })
    }

    /// The key in `path` (base64, as WireGuard writes it), made there (mode 0600) when the
    /// file does not exist. A key file others can read is refused, not used.
    pub fn load_or_create(path: &Path) -> Result<Self, NetError> {
        let bad = |problem: String| NetError::TunnelKey {
            path: path.display().to_string(),
            problem,
        };
        match File::open(path) {
            Ok(mut f) => {
                let mode = f.metadata().map_err(|e| bad(e.to_string()))?.mode();
                if mode & 0o077 != 0 {
                    return Err(bad(format!(
                        "it is readable by others (mode {:o}): chmod 600 it, or delete it to get a new key",
                        mode & 0o777
                    )));
                }
                let mut text = String::new();
                f.read_to_string(&mut text)
                    .map_err(|e| bad(e.to_string()))?;
                let bytes = decode_key(text.trim()).map_err(|e| {
                    bad(format!(
                        "{e}: delete it to get a new key (peers learn it from the control plane)"
                    ))
                })?;
                Ok(Self {
                    secret: StaticSecret::from(bytes),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                let tmp = path.with_extension("tmp");
                let _ = std::fs::remove_file(&tmp);
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| bad(format!("cannot write {}: {e}", tmp.display())))?;
                let text = format!("{}\n", BASE64.encode(key.secret.to_bytes()));
                f.write_all(text.as_bytes())
                    .and_then(|()| f.sync_all())
                    .and_then(|()| std::fs::rename(&tmp, path))
                    .map_err(|e| bad(e.to_string()))?;
                Ok(key)
            }
            Err(e) => Err(bad(e.to_string())),
        }
    }

    pub fn public(&self) -> TunnelPublicKey {
        TunnelPublicKey(PublicKey::from(&self.secret).to_bytes())
    }
}

/// A node's public tunnel key: 32 bytes, written in base64 (44 characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelPublicKey(pub [u8; 32]);

impl std::fmt::Display for TunnelPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl FromStr for TunnelPublicKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        decode_key(s).map(Self)
    }
}

fn decode_key(s: &str) -> Result<[u8; 32], String> {
    let bytes = BASE64
        .decode(s)
        .map_err(|_| format!("{s:?} is not base64"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("a key is 32 bytes, {s:?} holds {}", b.len()))
}

/// A node of another site that overlay traffic reaches through the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPeer {
    /// The peer's VTEP: where its VXLAN packets come from and ours go to.
    pub vtep: Ipv4Addr,
    /// Where its tunnel listens (its underlay address and tunnel port).
    pub endpoint: SocketAddrV4,
    pub key: TunnelPublicKey,
}

/// What crossed the tunnel since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelStats {
    /// VXLAN packets sealed and sent, and their bytes before sealing.
    pub sealed_packets: u64,
    pub sealed_bytes: u64,
    /// VXLAN packets received, opened and handed to the kernel, and their bytes.
    pub opened_packets: u64,
    pub opened_bytes: u64,
    /// Packets dropped: to or from no known peer, failed authentication, replays, an inner
    /// source that is not the sender's VTEP.
    pub dropped: u64,
    /// Handshakes completed (a session is renewed every two minutes of traffic).
    pub handshakes: u64,
}

#[derive(Default)]
struct Counters {
    sealed_packets: AtomicU64,
    sealed_bytes: AtomicU64,
    opened_packets: AtomicU64,
    opened_bytes: AtomicU64,
    dropped: AtomicU64,
    handshakes: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

struct Peer {
    spec: TunnelPeer,
    /// Its session's index: the top 24 bits of the receiver index in what it sends us.
    index: u32,
    tunn: Mutex<Tunn>,
    /// When we last started a handshake unasked (see [`greet`]).
    greeted: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct PeerTable {
    by_vtep: HashMap<Ipv4Addr, Arc<Peer>>,
    by_index: HashMap<u32, Arc<Peer>>,
    by_key: HashMap<[u8; 32], Arc<Peer>>,
    next_index: u32,
}

struct Shared {
    stop: AtomicBool,
    tun: Tun,
    sock: UdpSocket,
    secret: StaticSecret,
    public: PublicKey,
    limiter: Arc<RateLimiter>,
    peers: RwLock<PeerTable>,
    counters: Counters,
}

enum Control {
    Routes(BTreeSet<Ipv4Addr>, mpsc::Sender<Result<(), NetError>>),
    /// Stop; with `true`, remove the rule and the table too (the device goes with the
    /// descriptor once it is no longer persistent).
    Stop(bool),
}

/// The running tunnel of one node: a TUN device, a UDP socket and three threads (TUN to
/// network, network to TUN, timers) plus one that keeps the routes and the nftables table.
///
/// It fails closed. The TUN device is persistent: dropping the tunnel (an agent that stops
/// or crashes) stops the threads but leaves the device, its routes, the rule and the drop
/// table, so VXLAN to another site is routed into a device nobody reads (lost, never sent
/// in the clear) and plain VXLAN from another site is still dropped, until the next start
/// takes the device over. [`SiteTunnel::remove`] takes everything away.
///
/// Everything it makes lives in the network namespace of the thread that starts it.
pub struct SiteTunnel {
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    threads: Vec<JoinHandle<()>>,
}

impl SiteTunnel {
    /// Creates the TUN device (or takes over the one a previous run left), binds UDP `port`
    /// on every address, installs the policy rule for VXLAN on `vxlan_port` if missing and
    /// starts the threads. Fails if another tunnel (another agent) holds the device or the
    /// port.
    pub fn start(key: &TunnelKey, port: u16, vxlan_port: u16) -> Result<Self, NetError> {
        let tun = Tun::create(TUNNEL_DEVICE)?;
        let sock = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).map_err(
            tunnel_io(&format!("binding UDP port {port} for the tunnel")),
        )?;
        sock.set_nonblocking(true)
            .map_err(tunnel_io("configuring the tunnel socket"))?;
        let secret = key.secret.clone();
        let public = PublicKey::from(&secret);
        // Session indices start at a random point, so a restarted tunnel does not hand out
        // the indices its peers' stale sessions still point at.
        let mut first_index = [0u8; 4];
        random_bytes(&mut first_index).map_err(tunnel_io("reading random bytes for the tunnel"))?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            tun,
            sock,
            limiter: Arc::new(RateLimiter::new(&public, HANDSHAKE_LIMIT)),
            secret,
            public,
            peers: RwLock::new(PeerTable {
                next_index: u32::from_le_bytes(first_index),
                ..PeerTable::default()
            }),
            counters: Counters::default(),
        });

        let (control, requests) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut threads = vec![];
        threads.push(spawn("nc-tunnel-ctl", move || {
            control_loop(vxlan_port, requests, ready_tx);
        })?);
        let ready = ready_rx.recv().unwrap_or_else(|_| {
            Err(NetError::Tunnel {
                what: "starting the tunnel's control thread".into(),
                source: io::Error::other("it ended before it was ready"),
            })
        });
        let mut tunnel = Self {
            shared: shared.clone(),
            control,
            threads,
        };
        ready?;
        for (name, f) in [
            ("nc-tunnel-tx", tun_to_network as fn(&Shared)),
            ("nc-tunnel-rx", network_to_tun),
            ("nc-tunnel-tick", timers),
        ] {
            let shared = shared.clone();
            tunnel.threads.push(spawn(name, move || f(&shared))?);
        }
        Ok(tunnel)
    }

    /// Makes `peers` the nodes reached through the tunnel: their routes into the TUN device
    /// and their VTEPs in the drop set are in place when this returns. A peer whose VTEP,
    /// endpoint and key are unchanged keeps its session; a new one is greeted with a
    /// handshake at once.
    pub fn set_peers(&self, peers: &[TunnelPeer]) -> Result<(), NetError> {
        let mut new = vec![];
        {
            let mut table = self
                .shared
                .peers
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut next = PeerTable {
                next_index: table.next_index,
                ..PeerTable::default()
            };
            for spec in peers {
                let kept = table.by_vtep.get(&spec.vtep).filter(|p| p.spec == *spec);
                let peer = match kept {
                    Some(peer) => peer.clone(),
                    None => {
                        next.next_index = (next.next_index + 1) & 0x00ff_ffff;
                        let index = next.next_index;
                        let tunn = Tunn::new(
                            self.shared.secret.clone(),
                            PublicKey::from(spec.key.0),
                            None,
                            None,
                            index,
                            Some(self.shared.limiter.clone()),
                        );
                        let peer = Arc::new(Peer {
                            spec: spec.clone(),
                            index,
                            tunn: Mutex::new(tunn),
                            greeted: Mutex::new(None),
                        });
                        new.push(peer.clone());
                        peer
                    }
                };
                next.by_vtep.insert(spec.vtep, peer.clone());
                next.by_key.insert(spec.key.0, peer.clone());
                next.by_index.insert(peer.index, peer);
            }
            *table = next;
        }
        for peer in new {
            greet(&self.shared, &peer);
        }
        let vteps = peers.iter().map(|p| p.vtep).collect();
        let (reply, answer) = mpsc::channel();
        self.control
            .send(Control::Routes(vteps, reply))
            .map_err(|_| control_gone())?;
        answer.recv().map_err(|_| control_gone())?
    }

    pub fn stats(&self) -> TunnelStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TunnelStats {
            sealed_packets: get(&c.sealed_packets),
            sealed_bytes: get(&c.sealed_bytes),
            opened_packets: get(&c.opened_packets),
            opened_bytes: get(&c.opened_bytes),
            dropped: get(&c.dropped),
            handshakes: get(&c.handshakes),
        }
    }
}

impl SiteTunnel {
    /// Stops the tunnel and removes all it made: the device, its routes, the rule, the drop
    /// table. Overlay traffic to other sites then leaves in the clear, so only for a node
    /// that leaves every network, or in tests.
    pub fn remove(mut self) {
        if let Err(e) = self.shared.tun.set_persistent(false) {
            tracing::warn!(error = %e, "making the tunnel device temporary");
        }
        self.stop(true);
    }

    fn stop(&mut self, remove: bool) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.control.send(Control::Stop(remove));
        // The data threads wake at least every POLL_MS to see the flag; the control thread
        // ends after its clean-up (bounded by nft's own timeout).
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for SiteTunnel {
    /// Stops the threads and leaves the kernel objects (see the type's documentation).
    /// Joins threads that end within [`POLL_MS`]: call it off an async runtime's threads.
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// Fills `buf` from the kernel's random source (getrandom(2)).
fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: getrandom(2) writes at most `len` bytes into the buffer it is given.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        filled += n as usize;
    }
    Ok(())
}

fn control_gone() -> NetError {
    NetError::Tunnel {
        what: "updating the tunnel's routes".into(),
        source: io::Error::other("the tunnel's control thread has stopped"),
    }
}

fn tunnel_io(what: &str) -> impl Fn(io::Error) -> NetError + '_ {
    move |source| NetError::Tunnel {
        what: what.to_string(),
        source,
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, NetError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(tunnel_io("starting a tunnel thread"))
}

/// The kernel side: device up, policy rule, per-peer routes, the drop table. Runs on its
/// own thread (with its own small runtime for netlink) so the tunnel can be driven from any
/// thread, in any namespace, while its kernel objects stay in the one it started in.
fn control_loop(
    vxlan_port: u16,
    requests: mpsc::Receiver<Control>,
    ready: mpsc::Sender<Result<(), NetError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(tunnel_io("starting the tunnel's runtime")(e)));
            return;
        }
    };
    runtime.block_on(async move {
        let handle = match rtnetlink::new_connection() {
            Ok((conn, handle, _)) => {
                tokio::spawn(conn);
                handle
            }
            Err(e) => {
                let _ = ready.send(Err(NetError::Socket(e)));
                return;
            }
        };
        let index = match setup_kernel(&handle, vxlan_port).await {
            Ok(index) => {
                let _ = ready.send(Ok(()));
                index
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        // Routes a previous run left (the device outlived it) are ours to keep or remove.
        let mut routed = match routes_in_table(&handle).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "listing the tunnel's routes");
                BTreeSet::new()
            }
        };
        let mut remove = false;
        while let Ok(req) = requests.recv() {
            match req {
                Control::Routes(vteps, reply) => {
                    // Drop table first: what a new peer sends in the clear is refused
                    // before what we send it is sealed.
                    let result = run_nft(&drop_table(vxlan_port, &vteps));
                    let result = match result {
                        Ok(()) => sync_routes(&handle, index, &mut routed, &vteps).await,
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(result);
                }
                Control::Stop(and_remove) => {
                    remove = and_remove;
                    break;
                }
            }
        }
        if !remove {
            return;
        }
        if let Err(e) = remove_rule(&handle).await {
            tracing::warn!(error = %e, "removing the tunnel's routing rule");
        }
        if let Err(e) = run_nft(&format!(
            "table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n"
        )) {
            tracing::warn!(error = %e, "removing the tunnel's nftables table");
        }
    });
}

fn netlink_err(what: &str) -> impl Fn(rtnetlink::Error) -> NetError + '_ {
    move |e| NetError::Tunnel {
        what: what.to_string(),
        source: io::Error::other(e.to_string()),
    }
}

/// Brings the TUN device up at the tunnel's MTU and adds the policy rule if missing;
/// returns the device's index.
async fn setup_kernel(handle: &Handle, vxlan_port: u16) -> Result<u32, NetError> {
    let link = handle
        .link()
        .get()
        .match_name(TUNNEL_DEVICE.to_string())
        .execute()
        .try_next()
        .await
        .map_err(netlink_err("finding the tunnel device"))?
        .ok_or_else(|| NetError::Tunnel {
            what: "finding the tunnel device".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })?;
    let index = link.header.index;
    handle
        .link()
        .change(
            LinkUnspec::new_with_index(index)
                .mtu(UNDERLAY_MTU - TUNNEL_OVERHEAD)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(netlink_err("bringing the tunnel device up"))?;
    // The kernel's reverse-path check looks up the source of what comes out of the tunnel
    // with the same rule, so it finds the route into the tunnel and accepts it. A rule a
    // previous run left stays (removing it, even briefly, would let VXLAN out in the clear).
    if !tunnel_rules(handle).await?.is_empty() {
        return Ok(index);
    }
    let mut add = handle
        .rule()
        .add()
        .v4()
        .table_id(TUNNEL_TABLE)
        .priority(TUNNEL_TABLE)
        .action(RuleAction::ToTable);
    let attrs = &mut add.message_mut().attributes;
    attrs.push(RuleAttribute::IpProtocol(IpProtocol::Udp));
    attrs.push(RuleAttribute::DestinationPortRange(RulePortRange {
        start: vxlan_port,
        end: vxlan_port,
    }));
    add.execute()
        .await
        .map_err(netlink_err("adding the tunnel's routing rule"))?;
    Ok(index)
}

/// Deletes every rule that points at [`TUNNEL_TABLE`].
async fn remove_rule(handle: &Handle) -> Result<(), NetError> {
    for rule in tunnel_rules(handle).await? {
        handle
            .rule()
            .del(rule)
            .execute()
            .await
            .map_err(netlink_err("deleting the tunnel's routing rule"))?;
    }
    Ok(())
}

/// The IPv4 rules that point at [`TUNNEL_TABLE`].
async fn tunnel_rules(
    handle: &Handle,
) -> Result<Vec<rtnetlink::packet_route::rule::RuleMessage>, NetError> {
    let mut rules = vec![];
    let mut stream = handle.rule().get(IpVersion::V4).execute();
    while let Some(rule) = stream
        .try_next()
        .await
        .map_err(netlink_err("listing routing rules"))?
    {
        let table = rule
            .attributes
            .iter()
            .find_map(|a| match a {
                RuleAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(rule.header.table));
        if table == TUNNEL_TABLE {
            rules.push(rule);
        }
    }
    Ok(rules)
}

/// The /32 destinations in [`TUNNEL_TABLE`].
async fn routes_in_table(handle: &Handle) -> Result<BTreeSet<Ipv4Addr>, NetError> {
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
    let mut out = BTreeSet::new();
    let mut stream = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(route) = stream
        .try_next()
        .await
        .map_err(netlink_err("listing routes"))?
    {
        let mut table = u32::from(route.header.table);
        let mut dst = None;
        for a in &route.attributes {
            match a {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(*ip),
                _ => {}
            }
        }
        if let (TUNNEL_TABLE, Some(ip), 32) = (table, dst, route.header.destination_prefix_length) {
            out.insert(ip);
        }
    }
    Ok(out)
}

async fn sync_routes(
    handle: &Handle,
    index: u32,
    routed: &mut BTreeSet<Ipv4Addr>,
    want: &BTreeSet<Ipv4Addr>,
) -> Result<(), NetError> {
    let route = |vtep: Ipv4Addr| {
        RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(vtep, 32)
            .output_interface(index)
            .table_id(TUNNEL_TABLE)
            .build()
    };
    for gone in routed.difference(want).copied().collect::<Vec<_>>() {
        match handle.route().del(route(gone)).execute().await {
            Ok(()) => {}
            // Already gone (someone flushed the table): the goal is reached.
            Err(rtnetlink::Error::NetlinkError(m)) if -m.raw_code() == libc::ESRCH => {}
            Err(e) => return Err(netlink_err("removing a route from the tunnel")(e)),
        }
        routed.remove(&gone);
    }
    for vtep in want {
        // Replace, not add: re-applied on every change, so a route someone deleted returns.
        handle
            .route()
            .add(route(*vtep))
            .replace()
            .execute()
            .await
            .map_err(netlink_err("routing a peer's VTEP into the tunnel"))?;
        routed.insert(*vtep);
    }
    Ok(())
}

/// The nftables table that drops VXLAN from the tunnel's peers unless it came out of the
/// tunnel. Replaced whole on every change.
pub fn drop_table(vxlan_port: u16, vteps: &BTreeSet<Ipv4Addr>) -> String {
    let mut set = String::from("type ipv4_addr;");
    if !vteps.is_empty() {
        let list: Vec<String> = vteps.iter().map(Ipv4Addr::to_string).collect();
        set.push_str(&format!(" elements = {{ {} }}", list.join(", ")));
    }
    format!(
        "table inet {NFT_TABLE}\n\
         delete table inet {NFT_TABLE}\n\
         table inet {NFT_TABLE} {{\n\
         \tset sealed {{ {set} }}\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter - 10; policy accept;\n\
         \t\tiifname != \"{TUNNEL_DEVICE}\" ip saddr @sealed udp dport {vxlan_port} counter drop\n\
         \t}}\n\
         }}\n"
    )
}

/// Waits until `fd` is readable or POLL_MS passed; true when readable.
fn readable(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, POLL_MS) };
    n > 0
}

fn send(shared: &Shared, packet: &[u8], to: SocketAddrV4) {
    if shared.sock.send_to(packet, to).is_err() {
        bump(&shared.counters.dropped, 1);
    }
}

/// VXLAN packets the kernel routed into the TUN device: sealed for the peer they are
/// addressed to.
fn tun_to_network(shared: &Shared) {
    let mut packet = vec![0u8; BUF];
    let mut out = vec![0u8; BUF + SEAL_ROOM];
    while !shared.stop.load(Ordering::Relaxed) {
        if !readable(shared.tun.fd()) {
            continue;
        }
        loop {
            let n = match shared.tun.read(&mut packet) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the tunnel device");
                    std::thread::sleep(Duration::from_millis(POLL_MS as u64));
                    break;
                }
            };
            let packet = &packet[..n];
            let Some(IpAddr::V4(dst)) = Tunn::dst_address(packet) else {
                bump(&shared.counters.dropped, 1);
                continue;
            };
            let peer = shared
                .peers
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .by_vtep
                .get(&dst)
                .cloned();
            let Some(peer) = peer else {
                bump(&shared.counters.dropped, 1);
                continue;
            };
            let mut tunn = peer.tunn.lock().unwrap_or_else(PoisonError::into_inner);
            match tunn.encapsulate(packet, &mut out) {
                TunnResult::WriteToNetwork(sealed) => {
                    send(shared, sealed, peer.spec.endpoint);
                    // A handshake message instead means the packet waits in Tunn's queue.
                    if sealed.first() == Some(&DATA_MESSAGE) {
                        bump(&shared.counters.sealed_packets, 1);
                        bump(&shared.counters.sealed_bytes, n as u64);
                    }
                }
                TunnResult::Err(_) => bump(&shared.counters.dropped, 1),
                _ => {}
            }
        }
    }
}

/// Datagrams from peers: handshakes answered, data opened and written into the TUN device.
fn network_to_tun(shared: &Shared) {
    let mut datagram = vec![0u8; BUF];
    let mut out = vec![0u8; BUF + SEAL_ROOM];
    while !shared.stop.load(Ordering::Relaxed) {
        if !readable(shared.sock.as_raw_fd()) {
            continue;
        }
        loop {
            let (n, from) = match shared.sock.recv_from(&mut datagram) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "receiving on the tunnel socket");
                    break;
                }
            };
            receive(shared, &datagram[..n], from, &mut out);
        }
    }
}

fn receive(shared: &Shared, datagram: &[u8], from: SocketAddr, out: &mut [u8]) {
    let dropped = || bump(&shared.counters.dropped, 1);
    let peer = {
        let table = shared.peers.read().unwrap_or_else(PoisonError::into_inner);
        match Tunn::parse_incoming_packet(datagram) {
            Ok(Packet::HandshakeInit(init)) => {
                // The cheap MAC check (and cookies under load) before the costly DH
                // that finds out who is knocking.
                let mut cookie = [0u8; 64];
                match shared
                    .limiter
                    .verify_packet(Some(from.ip()), datagram, &mut cookie)
                {
                    Ok(_) => {}
                    Err(TunnResult::WriteToNetwork(reply)) => {
                        if let SocketAddr::V4(to) = from {
                            send(shared, reply, to);
                        }
                        return;
                    }
                    Err(_) => return dropped(),
                }
                parse_handshake_anon(&shared.secret, &shared.public, &init)
                    .ok()
                    .and_then(|h| table.by_key.get(&h.peer_static_public).cloned())
            }
            Ok(Packet::HandshakeResponse(p)) => table.by_index.get(&(p.receiver_idx >> 8)).cloned(),
            Ok(Packet::PacketCookieReply(p)) => table.by_index.get(&(p.receiver_idx >> 8)).cloned(),
            Ok(Packet::PacketData(p)) => match table.by_index.get(&(p.receiver_idx >> 8)) {
                Some(peer) => Some(peer.clone()),
                None => {
                    // A session index we never gave out, or gave out before a restart.
                    if let Some(peer) = peer_at(&table, from) {
                        greet(shared, &peer);
                    }
                    None
                }
            },
            Err(_) => None,
        }
    };
    let Some(peer) = peer else {
        return dropped();
    };
    let mut tunn = peer.tunn.lock().unwrap_or_else(PoisonError::into_inner);
    let opened = open_datagram(
        &mut tunn,
        peer.spec.vtep,
        from.ip(),
        datagram,
        out,
        &mut |r| send(shared, r, peer.spec.endpoint),
    );
    match opened {
        Ok(Opened::Packet { start, len }) => {
            if shared.tun.write(&out[start..start + len]).is_err() {
                return dropped();
            }
            bump(&shared.counters.opened_packets, 1);
            bump(&shared.counters.opened_bytes, len as u64);
        }
        Ok(Opened::Handshake) => bump(&shared.counters.handshakes, 1),
        Ok(Opened::Nothing) => {}
        Ok(Opened::NoSession) => {
            drop(tunn);
            dropped();
            let at = peer_at(
                &shared.peers.read().unwrap_or_else(PoisonError::into_inner),
                from,
            );
            if let Some(peer) = at {
                greet(shared, &peer);
            }
        }
        Err(why) => {
            tracing::trace!(peer = %peer.spec.vtep, %why, "tunnel datagram dropped");
            dropped();
        }
    }
}

/// What one datagram from a peer held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A VXLAN packet from the peer's VTEP, at `out[start..start + len]`.
    Packet { start: usize, len: usize },
    /// A handshake message, answered or completing ours.
    Handshake,
    /// A keepalive, or a message that needed only replies.
    Nothing,
    /// A data packet for a session this side does not hold (it restarted, or the session
    /// expired here): dropped, and the sender is owed a new handshake.
    NoSession,
}

/// Runs one datagram from the network through `tunn`, the session of the peer whose VTEP is
/// `vtep`: each datagram to send back (handshake answers, cookies, packets that waited for
/// the handshake) goes to `reply`. A data packet is accepted only when it authenticates and
/// its inner packet is IPv4 from `vtep` itself; anything else is refused with the reason.
pub fn open_datagram(
    tunn: &mut Tunn,
    vtep: Ipv4Addr,
    from: IpAddr,
    datagram: &[u8],
    out: &mut [u8],
    reply: &mut dyn FnMut(&[u8]),
) -> Result<Opened, String> {
    let handshake = matches!(
        datagram.first(),
        Some(&(HANDSHAKE_INIT | HANDSHAKE_RESPONSE))
    );
    let mut input = datagram;
    let mut answered = false;
    let base = out.as_ptr() as usize;
    loop {
        match tunn.decapsulate(Some(from), input, out) {
            TunnResult::WriteToNetwork(r) => {
                answered |= !input.is_empty();
                reply(r);
                // Packets queued while the handshake ran go out now, one per call.
                input = &[];
            }
            TunnResult::WriteToTunnelV4(inner, src) => {
                // Only the sender's own VTEP may speak through its tunnel.
                if src != vtep {
                    return Err(format!("inner source {src} is not the peer's VTEP {vtep}"));
                }
                let start = inner.as_ptr() as usize - base;
                return Ok(Opened::Packet {
                    start,
                    len: inner.len(),
                });
            }
            TunnResult::WriteToTunnelV6(..) => return Err("an IPv6 inner packet".into()),
            TunnResult::Done => {
                return Ok(if handshake && (answered || !input.is_empty()) {
                    Opened::Handshake
                } else {
                    Opened::Nothing
                });
            }
            TunnResult::Err(WireGuardError::NoCurrentSession) => return Ok(Opened::NoSession),
            TunnResult::Err(e) => return Err(format!("{e:?}")),
        }
    }
}

/// The peer whose tunnel endpoint is `from`.
fn peer_at(table: &PeerTable, from: SocketAddr) -> Option<Arc<Peer>> {
    let SocketAddr::V4(from) = from else {
        return None;
    };
    table
        .by_vtep
        .values()
        .find(|p| p.spec.endpoint == from)
        .cloned()
}

/// Starts a handshake with `peer` now, at most once per [`GREETING_INTERVAL`] and never
/// over one under way. A side that restarted lost its sessions while its peers kept theirs:
/// their packets would be dropped until their own timers gave up on the session (15 s and
/// more), so the side that knows greets first. The interval bounds what packets with a
/// forged source address can make us do.
fn greet(shared: &Shared, peer: &Peer) {
    {
        let mut greeted = peer.greeted.lock().unwrap_or_else(PoisonError::into_inner);
        if greeted.is_some_and(|at| at.elapsed() < GREETING_INTERVAL) {
            return;
        }
        *greeted = Some(Instant::now());
    }
    let mut out = [0u8; SEAL_ROOM];
    let mut tunn = peer.tunn.lock().unwrap_or_else(PoisonError::into_inner);
    if let TunnResult::WriteToNetwork(p) = tunn.format_handshake_initiation(&mut out, false) {
        send(shared, p, peer.spec.endpoint);
    }
}

/// WireGuard's timers for every peer: handshake retries, keepalives, rekeys.
fn timers(shared: &Shared) {
    let mut out = vec![0u8; SEAL_ROOM];
    let mut last_reset = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        if last_reset.elapsed() >= Duration::from_secs(1) {
            shared.limiter.reset_count();
            last_reset = Instant::now();
        }
        let peers: Vec<Arc<Peer>> = shared
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_vtep
            .values()
            .cloned()
            .collect();
        for peer in peers {
            let mut tunn = peer.tunn.lock().unwrap_or_else(PoisonError::into_inner);
            if let TunnResult::WriteToNetwork(p) = tunn.update_timers(&mut out) {
                send(shared, p, peer.spec.endpoint);
            }
        }
    }
}

/// A TUN device (IPv4 packets, no packet-info header), non-blocking and persistent: it
/// outlives its descriptor until made temporary again.
struct Tun {
    file: File,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;

impl Tun {
    fn create(name: &str) -> Result<Self, NetError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(tunnel_io(
                "opening /dev/net/tun (is the tun module loaded?)",
            ))?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes an `ifreq`, which `IfReq` lays out.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            let what = if e.raw_os_error() == Some(libc::EBUSY) {
                format!("creating {name}: another tunnel (another agent?) already holds it")
            } else {
                format!("creating the tunnel device {name}")
            };
            return Err(NetError::Tunnel { what, source: e });
        }
        let tun = Self { file };
        tun.set_persistent(true)
            .map_err(tunnel_io("making the tunnel device persistent"))?;
        Ok(tun)
    }

    fn set_persistent(&self, on: bool) -> io::Result<()> {
        // SAFETY: TUNSETPERSIST takes an integer argument, no pointer.
        let rc = unsafe { libc::ioctl(self.fd(), TUNSETPERSIST, libc::c_ulong::from(on)) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// One packet; `Ok(0)` when none is waiting.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match (&self.file).read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            r => r,
        }
    }

    fn write(&self, packet: &[u8]) -> io::Result<()> {
        (&self.file).write(packet).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_round_trip_and_refuse_garbage() {
        let key = TunnelKey::generate().expect("test setup");
        let public = key.public();
        let text = public.to_string();
        assert_eq!(text.len(), 44);
        assert_eq!(text.parse::<TunnelPublicKey>().expect("test setup"), public);
        assert!(!format!("{key:?}").contains(&BASE64.encode(key.secret.to_bytes())));
        for bad in ["", "abc", "!!!!", &BASE64.encode([1u8; 31])] {
            assert!(bad.parse::<TunnelPublicKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn key_file_is_private_and_stable() {
        let dir = std::env::temp_dir().join(format!("nc-tunkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test setup");
        let path = dir.join("tunnel.key");
        let first = TunnelKey::load_or_create(&path).expect("test setup");
        let mode = std::fs::metadata(&path)
            .expect("test setup")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = TunnelKey::load_or_create(&path).expect("test setup");
        assert_eq!(first.public(), again.public());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .expect("test setup");
        let e = TunnelKey::load_or_create(&path)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("test setup");
        std::fs::write(&path, "not a key\n").expect("test setup");
        let e = TunnelKey::load_or_create(&path)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("delete it"), "{e}");
        std::fs::remove_dir_all(&dir).expect("test setup");
    }

    /// A minimal IPv4 packet from `src`.
    fn ipv4_from(src: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0u8; 48];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&48u16.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&[198, 18, 0, 2]);
        p
    }

    /// A session from `ours` to `theirs` with session index `index`.
    fn session(ours: &TunnelKey, theirs: &TunnelKey, index: u32) -> Tunn {
        Tunn::new(
            ours.secret.clone(),
            PublicKey::from(theirs.public().0),
            None,
            None,
            index,
            None,
        )
    }

    /// `packet` sealed by `tunn` (or, before a session, the handshake it waits for).
    fn seal(tunn: &mut Tunn, packet: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; BUF];
        match tunn.encapsulate(packet, &mut out) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            _ => panic!("not sealed"),
        }
    }

    #[test]
    fn only_the_peers_own_authentic_packets_open_and_a_restart_is_greeted() {
        let (peer_key, our_key) = (
            TunnelKey::generate().expect("key"),
            TunnelKey::generate().expect("key"),
        );
        let vtep = Ipv4Addr::new(198, 18, 0, 1);
        let mut them = session(&peer_key, &our_key, 1);
        let mut us = session(&our_key, &peer_key, 2);
        let from = IpAddr::V4(vtep);
        let mut out = vec![0u8; BUF];
        // The first packet waits for the handshake, which runs through open_datagram.
        let init = seal(&mut them, &ipv4_from(vtep));
        assert_eq!(
            init.first(),
            Some(&HANDSHAKE_INIT),
            "a handshake initiation first"
        );
        let mut replies = vec![];
        let r = open_datagram(&mut us, vtep, from, &init, &mut out, &mut |r| {
            replies.push(r.to_vec())
        });
        assert_eq!(r, Ok(Opened::Handshake));
        assert_eq!(replies.len(), 1);
        // The response completes theirs; the queued packet then goes out sealed.
        let mut theirs = vec![0u8; BUF];
        let mut queued = vec![];
        let mut input = replies[0].clone();
        while let TunnResult::WriteToNetwork(p) = them.decapsulate(None, &input, &mut theirs) {
            queued.push(p.to_vec());
            input.clear();
        }
        let mut opened = 0;
        for q in &queued {
            if let Ok(Opened::Packet { start, len }) =
                open_datagram(&mut us, vtep, from, q, &mut out, &mut |_| {})
            {
                assert_eq!(&out[start..start + len], &ipv4_from(vtep)[..]);
                opened += 1;
            }
        }
        assert_eq!(opened, 1, "the queued packet arrives once");
        // Another inner source, a flipped bit, a replay: refused.
        let other = seal(&mut them, &ipv4_from(Ipv4Addr::new(10, 0, 0, 9)));
        let e = open_datagram(&mut us, vtep, from, &other, &mut out, &mut |_| {});
        assert!(e.expect_err("refused").contains("not the peer's VTEP"));
        let good = seal(&mut them, &ipv4_from(vtep));
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(open_datagram(&mut us, vtep, from, &bad, &mut out, &mut |_| {}).is_err());
        assert!(matches!(
            open_datagram(&mut us, vtep, from, &good, &mut out, &mut |_| {}),
            Ok(Opened::Packet { .. })
        ));
        assert!(open_datagram(&mut us, vtep, from, &good, &mut out, &mut |_| {}).is_err());
        // Garbage.
        for junk in [&b""[..], b"\x04\0\0\0", &[0xff; 200]] {
            assert!(!matches!(
                open_datagram(&mut us, vtep, from, junk, &mut out, &mut |_| {}),
                Ok(Opened::Packet { .. })
            ));
        }

        // We restart: their packets on the old session are owed a handshake, and ours (a
        // greeting) gives both sides a new session at once.
        let mut us = session(&our_key, &peer_key, 3);
        let stale = seal(&mut them, &ipv4_from(vtep));
        assert_eq!(
            open_datagram(&mut us, vtep, from, &stale, &mut out, &mut |_| {}),
            Ok(Opened::NoSession)
        );
        let TunnResult::WriteToNetwork(greeting) = us.format_handshake_initiation(&mut out, false)
        else {
            panic!("no greeting");
        };
        let greeting = greeting.to_vec();
        let TunnResult::WriteToNetwork(response) = them.decapsulate(None, &greeting, &mut theirs)
        else {
            panic!("no response");
        };
        let response = response.to_vec();
        let mut confirm = vec![];
        let r = open_datagram(&mut us, vtep, from, &response, &mut out, &mut |r| {
            confirm.push(r.to_vec())
        });
        assert_eq!(r, Ok(Opened::Handshake));
        for c in &confirm {
            assert!(matches!(
                them.decapsulate(None, c, &mut theirs),
                TunnResult::Done
            ));
        }
        let fresh = seal(&mut them, &ipv4_from(vtep));
        assert!(matches!(
            open_datagram(&mut us, vtep, from, &fresh, &mut out, &mut |_| {}),
            Ok(Opened::Packet { .. })
        ));
    }

    #[test]
    fn drop_table_lists_peers_and_spares_the_tunnel() {
        let vteps: BTreeSet<Ipv4Addr> =
            [Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 3)]
                .into_iter()
                .collect();
        let t = drop_table(4789, &vteps);
        assert!(t.contains("elements = { 198.18.0.2, 198.18.0.3 }"), "{t}");
        assert!(
            t.contains("iifname != \"ncwg0\" ip saddr @sealed udp dport 4789"),
            "{t}"
        );
        let empty = drop_table(4789, &BTreeSet::new());
        assert!(!empty.contains("elements"), "{empty}");
    }
}
