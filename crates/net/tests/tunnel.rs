//! The tunnel between sites against the real kernel: two "node" network namespaces joined by
//! a veth underlay, each with an overlay network built by its [`Reconciler`] and an endpoint
//! namespace on it, and each running a [`SiteTunnel`] that has the other as its peer. The
//! endpoints talk TCP across the overlay; the underlay carries WireGuard datagrams only (a
//! counter on the receiving node's underlay port sees no VXLAN), plain VXLAN sent with the
//! peer's address is dropped, and stopping a tunnel leaves no device, rule or table.
//!
//! Needs root and nft (Debian package nftables); skipped with a message otherwise.

mod common;

use common::{Netns, ip};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use novacron_net::{
    DEFAULT_TUNNEL_PORT, DEFAULT_VXLAN_PORT, DesiredNode, MacAddr, NodeNetwork, Reconciler,
    RemotePeer, SiteTunnel, TUNNEL_DEVICE, TUNNEL_OVERHEAD, TunnelKey, TunnelPeer, Underlay, Vni,
};

const TEST_TIMEOUT: Duration = Duration::from_secs(90);
const VTEP1: Ipv4Addr = Ipv4Addr::new(198, 18, 4, 1);
const VTEP2: Ipv4Addr = Ipv4Addr::new(198, 18, 4, 2);
const MAC1: MacAddr = MacAddr([0x02, 0xac, 0, 0, 0x4a, 0x01]);
const MAC2: MacAddr = MacAddr([0x02, 0xac, 0, 0, 0x4a, 0x02]);
const IP1: Ipv4Addr = Ipv4Addr::new(198, 19, 40, 1);
const IP2: Ipv4Addr = Ipv4Addr::new(198, 19, 40, 2);
/// The largest overlay MTU that crosses a 1500-byte underlay through the tunnel unfragmented.
const MTU: u32 = 1500 - 50 - TUNNEL_OVERHEAD;

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, TUN, nftables)");
    }
    if !["/usr/sbin/nft", "/sbin/nft"]
        .iter()
        .any(|p| std::path::Path::new(p).is_file())
    {
        return Some("needs nft: install the nftables package");
    }
    None
}

/// Runs `nft ARGS` inside `ns`; its stdout.
fn nft(ns: &Netns, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    ns.run(move || {
        let out = Command::new("nft").args(&args).output().expect("run nft");
        assert!(out.status.success(), "nft {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

fn endpoint(node: &Netns, tag: &str, port: &str, mac: MacAddr, addr: Ipv4Addr) -> Netns {
    let ep = Netns::new(tag);
    let mac = mac.to_string();
    #[rustfmt::skip]
    ip(&["-n", &node.name, "link", "add", port, "type", "veth", "peer", "name", "eth0", "address", &mac, "netns", &ep.name]);
    #[rustfmt::skip]
    ip(&["-n", &ep.name, "link", "set", "eth0", "mtu", &MTU.to_string(), "up"]);
    #[rustfmt::skip]
    ip(&["-n", &ep.name, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
    ep
}

fn desired(local: Ipv4Addr, port: &str, peer: Ipv4Addr, peer_mac: MacAddr) -> DesiredNode {
    DesiredNode {
        underlay: Underlay {
            local_vtep: local,
            vxlan_port: DEFAULT_VXLAN_PORT,
        },
        networks: vec![NodeNetwork {
            vni: Vni::new(400).expect("vni"),
            mtu: MTU,
            ports: vec![port.into()],
            peers: vec![RemotePeer {
                vtep: peer,
                macs: vec![peer_mac],
                addresses: vec![],
            }],
        }],
        adopt_port_prefix: None,
    }
}

/// Sends `len` bytes from `client` to an echo server on `server_ip` in `server` and reads
/// them back; Err when that does not work within `timeout`.
fn echo(
    server: &Netns,
    server_ip: Ipv4Addr,
    client: &Netns,
    len: usize,
    timeout: Duration,
) -> std::io::Result<()> {
    let addr = SocketAddr::from((server_ip, 7070));
    let listener = server.run(move || TcpListener::bind(addr))?;
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    let served = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(timeout))?;
        let mut buf = vec![0; len];
        conn.read_exact(&mut buf)?;
        conn.write_all(&buf)
    });
    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    let sent = payload.clone();
    let back = client.run(move || -> std::io::Result<Vec<u8>> {
        let mut conn = TcpStream::connect_timeout(&addr, timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.write_all(&sent)?;
        let mut back = vec![0; sent.len()];
        conn.read_exact(&mut back)?;
        Ok(back)
    })?;
    served
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))?;
    assert_eq!(back, payload, "the bytes that came back differ");
    Ok(())
}

/// The packet count of the rule holding `needle` in `nft list table FAMILY NAME` output.
fn counter(listing: &str, needle: &str) -> u64 {
    let line = listing
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no rule with {needle:?} in:\n{listing}"));
    let after = line.split("counter packets ").nth(1).expect("a counter");
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a packet count")
}

#[tokio::test]
async fn sites_talk_only_through_the_tunnel_and_leave_nothing_behind() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    tokio::time::timeout(TEST_TIMEOUT, async {
        let n1 = Netns::new("site1");
        let n2 = Netns::new("site2");
        #[rustfmt::skip]
        ip(&["-n", &n1.name, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", &n2.name]);
        for (ns, addr) in [(&n1, VTEP1), (&n2, VTEP2)] {
            ip(&["-n", &ns.name, "addr", "add", &format!("{addr}/24"), "dev", "ul0"]);
            ip(&["-n", &ns.name, "link", "set", "ul0", "up"]);
        }
        let ep1 = endpoint(&n1, "tep1", "ncte1", MAC1, IP1);
        let ep2 = endpoint(&n2, "tep2", "ncte2", MAC2, IP2);
        // A watcher on node 2's underlay port: what arrives there, unencrypted or not.
        n2.run(|| {
            let script = "table inet wire {\n chain c {\n type filter hook prerouting priority -400;\n \
                iifname \"ul0\" udp dport 4789 counter\n iifname \"ul0\" udp dport 51820 counter\n }\n \
                chain o {\n type filter hook postrouting priority 400;\n \
                oifname \"ul0\" udp dport 4789 counter\n }\n}\n";
            let mut child = Command::new("nft")
                .args(["-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("nft");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(script.as_bytes())
                .expect("write");
            assert!(child.wait().expect("nft").success());
        });

        let k1 = TunnelKey::generate().expect("key");
        let k2 = TunnelKey::generate().expect("key");
        let (p1, p2) = (k1.public(), k2.public());
        let t1 = n1.run(move || SiteTunnel::start(&k1, DEFAULT_TUNNEL_PORT, DEFAULT_VXLAN_PORT));
        let t1 = t1.unwrap_or_else(|e| panic!("{e}"));
        let t2 = n2.run(move || SiteTunnel::start(&k2, DEFAULT_TUNNEL_PORT, DEFAULT_VXLAN_PORT));
        let t2 = t2.unwrap_or_else(|e| panic!("{e}"));
        let peer = |vtep, key| TunnelPeer {
            vtep,
            endpoint: SocketAddrV4::new(vtep, DEFAULT_TUNNEL_PORT),
            key,
        };
        t1.set_peers(&[peer(VTEP2, p2)]).expect("peers of 1");
        t2.set_peers(&[peer(VTEP1, p1)]).expect("peers of 2");

        // The tunnels before the FDB entries, as the agent does: nothing leaves in the clear.
        let r1 = Reconciler::connect_in_netns(&n1.path()).expect("netlink in node 1");
        let r2 = Reconciler::connect_in_netns(&n2.path()).expect("netlink in node 2");
        for (r, d) in [
            (&r1, desired(VTEP1, "ncte1", VTEP2, MAC2)),
            (&r2, desired(VTEP2, "ncte2", VTEP1, MAC1)),
        ] {
            let report = r.reconcile(&d).await.expect("reconcile");
            assert!(report.converged(), "{:?}", report.failures);
        }

        // Full-size segments and more: the overlay's MTU crosses the tunnel whole.
        echo(&ep2, IP2, &ep1, 1 << 20, Duration::from_secs(20)).expect("echo through the tunnel");
        let (s1, s2) = (t1.stats(), t2.stats());
        assert!(s1.sealed_packets > 100 && s2.opened_packets > 100, "{s1:?} {s2:?}");
        assert!(s2.sealed_packets > 100 && s1.opened_packets > 100, "{s1:?} {s2:?}");
        assert!(s1.handshakes + s2.handshakes >= 1, "{s1:?} {s2:?}");
        let wire = nft(&n2, &["list", "table", "inet", "wire"]);
        assert_eq!(counter(&wire, "iifname \"ul0\" udp dport 4789"), 0, "VXLAN on the wire:\n{wire}");
        assert_eq!(counter(&wire, "oifname \"ul0\" udp dport 4789"), 0, "VXLAN on the wire:\n{wire}");
        assert!(counter(&wire, "dport 51820") > 100, "{wire}");

        // Plain VXLAN with node 1's address, sent past the tunnel (bound to the underlay
        // device): node 2 drops it before the VXLAN device sees it.
        n1.run(|| {
            let s = UdpSocket::bind(SocketAddr::from((VTEP1, 0))).expect("bind");
            let dev = b"ul0\0";
            // SAFETY: SO_BINDTODEVICE reads a NUL-terminated name of the given length.
            let rc = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_BINDTODEVICE,
                    dev.as_ptr().cast(),
                    dev.len() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
            let mut forged = vec![0x08, 0, 0, 0, 0, 0x01, 0x90, 0];
            forged.extend_from_slice(&[0xff; 6]);
            forged.extend_from_slice(&MAC1.0);
            forged.extend_from_slice(&[0x08, 0x06]);
            forged.extend_from_slice(&[0; 28]);
            s.send_to(&forged, (VTEP2, DEFAULT_VXLAN_PORT)).expect("send");
        });
        std::thread::sleep(Duration::from_millis(200));
        let drops = nft(&n2, &["list", "table", "inet", "novacron_tunnel"]);
        assert_eq!(counter(&drops, "@sealed"), 1, "{drops}");

        // Node 1 forgets its peer: its VXLAN leaves unencrypted and node 2 drops it, so the
        // endpoints can no longer talk.
        t1.set_peers(&[]).expect("no peers");
        assert!(
            echo(&ep2, IP2, &ep1, 1000, Duration::from_secs(2)).is_err(),
            "plain VXLAN from another site got through"
        );
        assert!(counter(&nft(&n2, &["list", "table", "inet", "novacron_tunnel"]), "@sealed") > 1);

        // An agent that stops fails closed: with node 2's tunnel stopped, what node 2's
        // endpoint sends is lost in the device nobody reads, never sent in the clear.
        t1.set_peers(&[peer(VTEP2, p2)]).expect("peers of 1 again");
        let key_dir = std::env::temp_dir().join(format!("nc-tunnel-key-{}", std::process::id()));
        std::fs::create_dir_all(&key_dir).expect("key dir");
        let key_file = key_dir.join("tunnel.key");
        let k2_again = TunnelKey::load_or_create(&key_file).expect("key");
        drop(t2);
        let out = "oifname \"ul0\" udp dport 4789";
        let before = counter(&nft(&n2, &["list", "table", "inet", "wire"]), out);
        assert!(echo(&ep1, IP1, &ep2, 1000, Duration::from_secs(2)).is_err());
        let after = counter(&nft(&n2, &["list", "table", "inet", "wire"]), out);
        assert_eq!(before, after, "VXLAN went out in the clear while node 2's tunnel was down");
        // The next start takes the device over, with a new key here.
        let p2 = k2_again.public();
        let t2 = n2.run(move || SiteTunnel::start(&k2_again, DEFAULT_TUNNEL_PORT, DEFAULT_VXLAN_PORT));
        let t2 = t2.unwrap_or_else(|e| panic!("{e}"));
        t2.set_peers(&[peer(VTEP1, p1)]).expect("peers of 2");
        t1.set_peers(&[peer(VTEP2, p2)]).expect("peers of 1, new key");
        echo(&ep2, IP2, &ep1, 100_000, Duration::from_secs(20)).expect("echo after a restart");

        // A restart with the same key (an agent killed and started again): node 1 keeps a
        // session node 2 no longer holds, and node 2 greets it at once, so node 1's packets
        // get through well before node 1's own timers would give up on the session (15 s).
        // Node 2's endpoint falls quiet first (the last echo's connection closes), so it
        // has nothing left to send that would start a handshake by itself.
        let mut last = t2.stats();
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_millis(1500) {
            std::thread::sleep(Duration::from_millis(100));
            let now = t2.stats();
            if now != last {
                (last, quiet_since) = (now, Instant::now());
            }
        }
        drop(t2);
        let k2_same = TunnelKey::load_or_create(&key_file).expect("the same key");
        std::fs::remove_dir_all(&key_dir).expect("key dir removed");
        let t2 = n2.run(move || SiteTunnel::start(&k2_same, DEFAULT_TUNNEL_PORT, DEFAULT_VXLAN_PORT));
        let t2 = t2.unwrap_or_else(|e| panic!("{e}"));
        t2.set_peers(&[peer(VTEP1, p1)]).expect("peers of 2 after a restart");
        let started = Instant::now();
        while t2.stats().handshakes == 0 {
            assert!(started.elapsed() < Duration::from_secs(2), "no greeting: {:?}", t2.stats());
            std::thread::sleep(Duration::from_millis(20));
        }
        echo(&ep2, IP2, &ep1, 1000, Duration::from_secs(5))
            .expect("node 1's old session renewed after node 2 restarted with the same key");

        // Removing leaves nothing: no device, no rule, no table.
        t1.remove();
        t2.remove();
        for ns in [&n1, &n2] {
            let links = ns.run(|| Command::new("ip").args(["-br", "link"]).output().expect("ip"));
            let links = String::from_utf8_lossy(&links.stdout).into_owned();
            assert!(!links.contains(TUNNEL_DEVICE), "{links}");
            let rules = ns.run(|| Command::new("ip").args(["rule"]).output().expect("ip"));
            let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
            assert!(!rules.contains("20035"), "{rules}");
            assert!(!nft(ns, &["list", "tables"]).contains("novacron_tunnel"));
        }
    })
    .await
    .expect("the test took too long");
}
