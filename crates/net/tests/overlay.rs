//! The data plane against the real kernel: two "node" network namespaces
//! joined by a veth underlay (198.18.0.0/30), each reconciled by its own
//! [`Reconciler`]; endpoint namespaces attached by a veth in place of a VM tap.
//! Traffic crosses the VXLAN overlay, stays inside its VNI, and everything the
//! reconciler made goes away when the network does.
//!
//! Needs root (CAP_NET_ADMIN, /run/netns) and the vxlan and bridge modules.
//! Fixture set-up uses `ip` (the code under test speaks netlink only); every
//! namespace is deleted on drop, so a failing test leaves nothing behind.

mod common;

use common::{Netns, ip};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use novacron_net::model::OwnedDevice;
use novacron_net::{
    DEFAULT_VXLAN_PORT, DesiredNode, KernelError, MacAddr, NodeNetwork, Reconciler, RemotePeer,
    Underlay, Vni,
};

const TEST_TIMEOUT: Duration = Duration::from_secs(90);
const VTEP1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VTEP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const MAC_A1: MacAddr = MacAddr([0x02, 0xac, 0, 0, 0x0a, 0x01]);
const MAC_A2: MacAddr = MacAddr([0x02, 0xac, 0, 0, 0x0a, 0x02]);
const MAC_B2: MacAddr = MacAddr([0x02, 0xac, 0, 0, 0x0b, 0x02]);
/// Endpoints of both networks share one subnet, so only the VNI keeps them apart.
const IP_A1: Ipv4Addr = Ipv4Addr::new(198, 19, 10, 1);
const IP_A2: Ipv4Addr = Ipv4Addr::new(198, 19, 10, 2);
const IP_B2: Ipv4Addr = Ipv4Addr::new(198, 19, 10, 3);
const MTU: u32 = 1450;
/// An address behind node 2 whose MAC no endpoint there has: only node 1's bridge can
/// answer an ARP request for it.
const MAC_GHOST: MacAddr = MacAddr([0x02, 0xac, 0, 0, 0x0a, 0x09]);
const IP_GHOST: Ipv4Addr = Ipv4Addr::new(198, 19, 10, 9);

/// An endpoint namespace whose `eth0` (with `mac`, `addr`/24) is a veth whose
/// other end, `port`, sits in `node` like a VM's tap.
fn endpoint(node: &Netns, tag: &str, port: &str, mac: MacAddr, addr: Ipv4Addr) -> Netns {
    let ep = Netns::new(tag);
    let mac = mac.to_string();
    #[rustfmt::skip]
    ip(&["-n", &node.name, "link", "add", port, "type", "veth", "peer", "name", "eth0", "address", &mac, "netns", &ep.name]);
    ip(&[
        "-n",
        &ep.name,
        "link",
        "set",
        "eth0",
        "mtu",
        &MTU.to_string(),
        "up",
    ]);
    ip(&[
        "-n",
        &ep.name,
        "addr",
        "add",
        &format!("{addr}/24"),
        "dev",
        "eth0",
    ]);
    ep
}

fn vni(v: u32) -> Vni {
    Vni::new(v).unwrap_or_else(|e| panic!("{e}"))
}

fn network(v: u32, ports: &[&str], peer: Ipv4Addr, macs: &[MacAddr]) -> NodeNetwork {
    NodeNetwork {
        vni: vni(v),
        mtu: MTU,
        ports: ports.iter().map(|p| p.to_string()).collect(),
        peers: vec![RemotePeer {
            vtep: peer,
            macs: macs.to_vec(),
            addresses: vec![],
        }],
    }
}

fn node_state(local: Ipv4Addr, networks: Vec<NodeNetwork>) -> DesiredNode {
    DesiredNode {
        underlay: Underlay {
            local_vtep: local,
            vxlan_port: DEFAULT_VXLAN_PORT,
        },
        networks,
        adopt_port_prefix: None,
    }
}

/// Two nodes joined by a veth underlay with 198.18.0.1/30 and .2/30.
fn two_nodes() -> (Netns, Netns) {
    let n1 = Netns::new("node1");
    let n2 = Netns::new("node2");
    #[rustfmt::skip]
    ip(&["-n", &n1.name, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", &n2.name]);
    for (ns, addr) in [(&n1, VTEP1), (&n2, VTEP2)] {
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            "ul0",
        ]);
        ip(&["-n", &ns.name, "link", "set", "ul0", "up"]);
    }
    (n1, n2)
}

/// Echoes `payload` from a client in `client` to a server on `server_ip` in
/// `server`; Err when the connection cannot be made within `connect_timeout`.
fn tcp_echo(
    server: &Netns,
    server_ip: Ipv4Addr,
    client: &Netns,
    payload: Vec<u8>,
    connect_timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let addr = SocketAddr::from((server_ip, 7007));
    let listener = server.run(move || TcpListener::bind(addr))?;
    listener.set_nonblocking(false)?;
    let expected = payload.len();
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        // The listener accepts in whichever namespace it was created in.
        listener.set_nonblocking(true)?;
        let deadline = std::time::Instant::now() + connect_timeout + Duration::from_secs(10);
        let (mut conn, _) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() > deadline {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = vec![0; expected];
        conn.read_exact(&mut buf)?;
        conn.write_all(&buf)
    });
    let result = client.run(move || -> std::io::Result<Vec<u8>> {
        let mut conn = TcpStream::connect_timeout(&addr, connect_timeout)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        conn.write_all(&payload)?;
        let mut back = vec![0; payload.len()];
        conn.read_exact(&mut back)?;
        Ok(back)
    });
    if result.is_ok() {
        echo.join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))?;
    }
    result
}

fn owned_links(observed: &novacron_net::Observed) -> Vec<String> {
    observed
        .links
        .iter()
        .filter(|l| OwnedDevice::from_name(&l.name).is_some())
        .map(|l| l.name.clone())
        .collect()
}

#[tokio::test]
async fn overlay_carries_traffic_within_a_vni_and_cleans_up() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (n1, n2) = two_nodes();
        let ep_a1 = endpoint(&n1, "epa1", "ncpa1", MAC_A1, IP_A1);
        let ep_a2 = endpoint(&n2, "epa2", "ncpa2", MAC_A2, IP_A2);
        let ep_b2 = endpoint(&n2, "epb2", "ncpb2", MAC_B2, IP_B2);

        // Node 1 has network B too (no ports), so B's floods do reach node 1:
        // only the VNI keeps them off A.
        let desired1 = node_state(
            VTEP1,
            vec![
                network(100, &["ncpa1"], VTEP2, &[MAC_A2]),
                network(200, &[], VTEP2, &[MAC_B2]),
            ],
        );
        let desired2 = node_state(
            VTEP2,
            vec![
                network(100, &["ncpa2"], VTEP1, &[MAC_A1]),
                network(200, &["ncpb2"], VTEP1, &[]),
            ],
        );
        let r1 = Reconciler::connect_in_netns(&n1.path()).unwrap_or_else(|e| panic!("{e}"));
        let r2 = Reconciler::connect_in_netns(&n2.path()).unwrap_or_else(|e| panic!("{e}"));
        for (r, d) in [(&r1, &desired1), (&r2, &desired2)] {
            let report = r.reconcile(d).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(report.converged(), "{:?}", report.failures);
            assert!(!report.applied.is_empty());
        }

        // The kernel has what was asked: devices, flood and unicast entries.
        let seen = r1.observe().await.unwrap_or_else(|e| panic!("{e}"));
        let mut names = owned_links(&seen);
        names.sort();
        assert_eq!(names, ["ncbr100", "ncbr200", "ncvx100", "ncvx200"]);
        let vx100 = seen
            .links
            .iter()
            .find(|l| l.name == "ncvx100")
            .map(|l| l.index);
        let fdb100: Vec<(MacAddr, Ipv4Addr)> = seen
            .fdb
            .iter()
            .filter(|e| Some(e.ifindex) == vx100)
            .map(|e| (e.mac, e.dst))
            .collect();
        assert!(fdb100.contains(&(MacAddr::ZERO, VTEP2)), "{fdb100:?}");
        assert!(fdb100.contains(&(MAC_A2, VTEP2)), "{fdb100:?}");

        // A second reconcile with the same state changes nothing.
        for (r, d) in [(&r1, &desired1), (&r2, &desired2)] {
            let report = r.reconcile(d).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(report.applied.is_empty(), "{:?}", report.applied);
            assert!(report.converged(), "{:?}", report.failures);
        }

        // TCP across the overlay, with segments of the full overlay MTU.
        let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        let back = tcp_echo(
            &ep_a2,
            IP_A2,
            &ep_a1,
            payload.clone(),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("A1 -> A2 over VXLAN: {e}"));
        assert!(back == payload, "echoed bytes differ");

        // Network B cannot reach A, neither across nodes nor on the same node.
        let across = tcp_echo(&ep_a1, IP_A1, &ep_b2, vec![1; 16], Duration::from_secs(2));
        assert!(across.is_err(), "B reached A across nodes");
        let same_node = tcp_echo(&ep_a2, IP_A2, &ep_b2, vec![1; 16], Duration::from_secs(2));
        assert!(same_node.is_err(), "B reached A on the same node");

        // Removing the networks leaves no NovaCron device behind; the ports
        // (not ours) stay.
        for (r, local) in [(&r1, VTEP1), (&r2, VTEP2)] {
            let report = r
                .reconcile(&node_state(local, vec![]))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(report.converged(), "{:?}", report.failures);
            let seen = r.observe().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(owned_links(&seen), Vec::<String>::new());
            assert!(seen.fdb.is_empty(), "{:?}", seen.fdb);
        }
        let seen = r2.observe().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            seen.links
                .iter()
                .any(|l| l.name == "ncpa2" && l.controller.is_none())
        );
    })
    .await
    .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}

#[tokio::test]
async fn reconcile_converges_after_a_partial_failure() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (n1, _n2) = two_nodes();
        let r1 = Reconciler::connect_in_netns(&n1.path()).unwrap_or_else(|e| panic!("{e}"));
        let desired = node_state(VTEP1, vec![network(300, &["ncpa1"], VTEP2, &[MAC_A2])]);

        // The port does not exist yet: that one action fails with what to fix,
        // the rest is built.
        let report = r1
            .reconcile(&desired)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            report.failures,
            vec![KernelError::PortMissing {
                port: "ncpa1".into(),
                vni: vni(300)
            }]
        );
        assert!(report.failures[0].to_string().contains("create the tap"));
        let seen = r1.observe().await.unwrap_or_else(|e| panic!("{e}"));
        let mut names = owned_links(&seen);
        names.sort();
        assert_eq!(names, ["ncbr300", "ncvx300"]);

        // Someone deletes the VXLAN device behind our back and the port appears:
        // the next reconcile rebuilds and attaches, the one after does nothing.
        ip(&["-n", &n1.name, "link", "del", "ncvx300"]);
        let _ep = endpoint(&n1, "epa1", "ncpa1", MAC_A1, IP_A1);
        let report = r1
            .reconcile(&desired)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.converged(), "{:?}", report.failures);
        let seen = r1.observe().await.unwrap_or_else(|e| panic!("{e}"));
        let bridge = seen
            .links
            .iter()
            .find(|l| l.name == "ncbr300")
            .map(|l| l.index);
        let port = seen.links.iter().find(|l| l.name == "ncpa1");
        assert!(port.is_some_and(|p| p.controller == bridge && p.up && p.mtu == MTU));
        assert_eq!(seen.fdb.len(), 2, "{:?}", seen.fdb);
        let report = r1
            .reconcile(&desired)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.applied.is_empty(), "{:?}", report.applied);

        // A bad desired state is refused before anything changes.
        let mut bad = desired.clone();
        bad.networks[0].mtu = 20;
        assert!(r1.reconcile(&bad).await.is_err());
        let after = r1.observe().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            after
                .links
                .iter()
                .find(|l| l.name == "ncbr300")
                .map(|l| l.mtu),
            Some(MTU)
        );
    })
    .await
    .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}

/// A packet socket for every frame, both directions (a socket for ARP alone would not see
/// outgoing ones), in the calling thread's namespace.
fn arp_socket() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let proto = i32::from((libc::ETH_P_ALL as u16).to_be());
    // SAFETY: socket(2) with constant arguments; the descriptor is owned from here.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )
    };
    assert!(
        fd >= 0,
        "packet socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a descriptor we just opened and nothing else owns.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// The target addresses of the ARP requests the socket has seen so far.
fn arp_requests(sock: &std::os::fd::OwnedFd) -> Vec<Ipv4Addr> {
    use std::os::fd::AsRawFd;
    let mut out = vec![];
    let mut buf = [0u8; 2048];
    loop {
        // SAFETY: recv into a buffer we own, of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else {
            return out;
        };
        // Ethernet (14) + ARP for IPv4 (28): operation 1 is a request; target at 38.
        let frame = &buf[..n];
        if n >= 42 && frame[12..14] == [0x08, 0x06] && frame[20..22] == [0, 1] {
            out.push(Ipv4Addr::new(frame[38], frame[39], frame[40], frame[41]));
        }
    }
}

/// The MAC `ns` has for `addr` in its neighbour table, if any.
fn neighbour_mac(ns: &Netns, addr: Ipv4Addr) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", &ns.name, "neigh", "show", "to", &addr.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = text.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_string)
}

#[tokio::test]
async fn arp_for_remote_addresses_is_answered_by_the_local_bridge() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (n1, n2) = two_nodes();
        let ep_a1 = endpoint(&n1, "epa1", "ncpa1", MAC_A1, IP_A1);
        let ep_a2 = endpoint(&n2, "epa2", "ncpa2", MAC_A2, IP_A2);
        let mut net1 = network(100, &["ncpa1"], VTEP2, &[MAC_A2, MAC_GHOST]);
        net1.peers[0].addresses = vec![(IP_A2, MAC_A2), (IP_GHOST, MAC_GHOST)];
        let mut net2 = network(100, &["ncpa2"], VTEP1, &[MAC_A1]);
        net2.peers[0].addresses = vec![(IP_A1, MAC_A1)];
        let desired1 = node_state(VTEP1, vec![net1]);
        let desired2 = node_state(VTEP2, vec![net2]);
        let r1 = Reconciler::connect_in_netns(&n1.path()).unwrap_or_else(|e| panic!("{e}"));
        let r2 = Reconciler::connect_in_netns(&n2.path()).unwrap_or_else(|e| panic!("{e}"));
        for (r, d) in [(&r1, &desired1), (&r2, &desired2)] {
            let report = r.reconcile(d).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(report.converged(), "{:?}", report.failures);
            let again = r.reconcile(d).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(again.applied.is_empty(), "{:?}", again.applied);
        }
        let seen = r1.observe().await.unwrap_or_else(|e| panic!("{e}"));
        let vx = seen.links.iter().find(|l| l.name == "ncvx100");
        assert!(vx.is_some_and(|l| l.neigh_suppress), "{vx:?}");
        let mut statics: Vec<MacAddr> = seen.static_fdb.iter().map(|e| e.mac).collect();
        statics.sort();
        assert_eq!(statics, [MAC_A2, MAC_GHOST]);
        assert_eq!(seen.neighbours.len(), 2, "{:?}", seen.neighbours);

        // What reaches node 2's endpoint, from here on.
        let sock = ep_a2.run(arp_socket);
        arp_requests(&sock);

        // A datagram to the ghost needs its MAC first: node 1's bridge gives it, as no
        // one on node 2 could.
        ep_a1.run(|| {
            let s = std::net::UdpSocket::bind((IP_A1, 0)).unwrap_or_else(|e| panic!("{e}"));
            s.send_to(b"x", (IP_GHOST, 9))
                .unwrap_or_else(|e| panic!("{e}"));
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while neighbour_mac(&ep_a1, IP_GHOST).is_none() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(neighbour_mac(&ep_a1, IP_GHOST), Some(MAC_GHOST.to_string()));

        // Real traffic still crosses, both ways resolved on each side's own node.
        let back = tcp_echo(&ep_a2, IP_A2, &ep_a1, vec![7; 4096], Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("A1 -> A2 over VXLAN: {e}"));
        assert_eq!(back, vec![7; 4096]);
        assert_eq!(neighbour_mac(&ep_a1, IP_A2), Some(MAC_A2.to_string()));

        // Node 2's endpoint asked for A1 itself (its node answered), and never saw a
        // request for the ghost or for itself: those were answered on node 1.
        let seen_at_a2 = arp_requests(&sock);
        assert!(seen_at_a2.contains(&IP_A1), "{seen_at_a2:?}");
        assert!(!seen_at_a2.contains(&IP_GHOST), "{seen_at_a2:?}");
        assert!(!seen_at_a2.contains(&IP_A2), "{seen_at_a2:?}");

        // The ghost leaves the view: its entries go, the others stay.
        let mut fewer = desired1.clone();
        fewer.networks[0].peers[0].macs = vec![MAC_A2];
        fewer.networks[0].peers[0].addresses = vec![(IP_A2, MAC_A2)];
        let report = r1.reconcile(&fewer).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(report.converged(), "{:?}", report.failures);
        let seen = r1.observe().await.unwrap_or_else(|e| panic!("{e}"));
        let statics: Vec<MacAddr> = seen.static_fdb.iter().map(|e| e.mac).collect();
        assert_eq!(statics, [MAC_A2]);
        let ips: Vec<Ipv4Addr> = seen.neighbours.iter().map(|n| n.ip).collect();
        assert_eq!(ips, [IP_A2]);
    })
    .await
    .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}
