//! The firewall against the real kernel: a "host" network namespace with a
//! bridge and three endpoint namespaces A, B and C on it by veth pairs
//! (198.18.200.1/.2/.3), filtered by a [`FirewallApplier`] working inside the
//! host namespace. Every check is a real TCP connection, bounded by a timeout;
//! the servers are listening sockets of this process, created inside their
//! endpoint's namespace.
//!
//! Needs root and nft (Debian package nftables); skipped with a message
//! otherwise. Every namespace is deleted on drop, so a failing test leaves
//! nothing behind.

mod common;

use common::{Netns, ip};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use novacron_net::{
    Firewall, FirewallApplier, FwPeer, FwProtocol, FwRule, GuardedPort, InvalidState, MacAddr,
    NetError,
};

const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 2);
const IP_C: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 3);
const MAC_A: MacAddr = MacAddr([0x02, 0xfe, 0, 0xc8, 0, 0x01]);
const MAC_B: MacAddr = MacAddr([0x02, 0xfe, 0, 0xc8, 0, 0x02]);
const MAC_C: MacAddr = MacAddr([0x02, 0xfe, 0, 0xc8, 0, 0x03]);
const PORT: u16 = 8080;
/// How long a connection that the firewall drops is given before it counts as refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const BRIDGE_NF_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// Why the test cannot run here, if it cannot.
fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, nftables)");
    }
    if nft().is_none() {
        return Some("needs nft: install the nftables package");
    }
    None
}

fn nft() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nft"))
        .find(|p| p.is_file())
}

/// `nft list tables` inside `ns`.
fn nft_tables(ns: &Netns) -> String {
    let nft = nft().unwrap_or_else(|| panic!("nft vanished"));
    ns.run(move || {
        let out = Command::new(nft)
            .args(["list", "tables"])
            .output()
            .unwrap_or_else(|e| panic!("run nft: {e}"));
        assert!(out.status.success(), "nft list tables: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// A sysctl file's value inside `ns`.
fn sysctl(ns: &Netns, path: &'static str) -> String {
    ns.run(move || {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .trim()
            .to_string()
    })
}

/// The host with its bridge and the three endpoints, each with a TCP server on
/// port 8080 (listening sockets; the kernel completes handshakes without accept).
struct Lab {
    // Declared first so they close before their namespaces go.
    _servers: Vec<TcpListener>,
    a: Netns,
    b: Netns,
    c: Netns,
    host: Netns,
}

impl Lab {
    fn new() -> Self {
        let host = Netns::new("host");
        ip(&["-n", &host.name, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &host.name, "link", "set", "br0", "up"]);
        let endpoint = |tag: &str, mac: MacAddr, addr: Ipv4Addr| {
            let ep = Netns::new(tag);
            let port = format!("v{tag}");
            let mac = mac.to_string();
            #[rustfmt::skip]
            ip(&["-n", &host.name, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "address", &mac, "netns", &ep.name]);
            #[rustfmt::skip]
            ip(&["-n", &host.name, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", &ep.name, "link", "set", "eth0", "up"]);
            #[rustfmt::skip]
            ip(&["-n", &ep.name, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ep
        };
        let a = endpoint("a", MAC_A, IP_A);
        let b = endpoint("b", MAC_B, IP_B);
        let c = endpoint("c", MAC_C, IP_C);
        let mut servers = Vec::new();
        for (ns, addr) in [(&a, IP_A), (&b, IP_B), (&c, IP_C)] {
            let at = SocketAddr::from((addr, PORT));
            let listener = ns
                .run(move || TcpListener::bind(at))
                .unwrap_or_else(|e| panic!("listen on {at}: {e}"));
            servers.push(listener);
        }
        Self {
            _servers: servers,
            a,
            b,
            c,
            host,
        }
    }

    /// Whether a TCP connection from `from` to `to`:8080 is established within
    /// [`CONNECT_TIMEOUT`].
    fn connects(from: &Netns, to: Ipv4Addr) -> bool {
        from.run(move || {
            TcpStream::connect_timeout(&SocketAddr::from((to, PORT)), CONNECT_TIMEOUT).is_ok()
        })
    }
}

/// B takes in TCP 8080 from the members of set `lb` only.
fn guard_b(lb: Ipv4Addr, egress: Option<Vec<FwRule>>) -> Firewall {
    Firewall {
        ports: vec![GuardedPort {
            mac: MAC_B,
            ips: vec![IP_B],
            ingress: vec![FwRule {
                protocol: FwProtocol::Tcp,
                ports: Some((PORT, PORT)),
                peer: FwPeer::Set("lb".into()),
            }],
            egress,
        }],
        sets: [("lb".to_string(), vec![lb])].into(),
    }
}

/// The connection `listener` accepted from `client` (earlier ones wait in its backlog
/// too).
fn accept_from(listener: &TcpListener, client: &TcpStream) -> TcpStream {
    let want = client.local_addr().unwrap_or_else(|e| panic!("{e}"));
    loop {
        let (stream, peer) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
        if peer == want {
            return stream;
        }
    }
}

fn has_our_table(tables: &str) -> bool {
    tables.lines().any(|l| l.trim() == "table inet novacron")
}

#[test]
fn security_group_filters_bridged_tcp_and_updates_members_in_place() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let lab = Lab::new();
    assert!(
        Lab::connects(&lab.c, IP_B),
        "C -> B without a firewall: the fixture is broken"
    );

    // br_netfilter off in the host namespace: the applier turns it on.
    let host = lab.host.name.clone();
    #[rustfmt::skip]
    let off = Command::new("ip").args(["netns", "exec", &host, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0"]).status();
    assert!(off.is_ok_and(|s| s.success()), "sysctl in {host}");
    assert_eq!(sysctl(&lab.host, BRIDGE_NF_IPTABLES), "0");

    let mut applier = FirewallApplier::in_netns(&lab.host.path());
    let fw = guard_b(IP_A, None);
    assert!(applier.apply(&fw).unwrap_or_else(|e| panic!("{e}")));
    assert!(!applier.last_was_incremental());
    assert_eq!(sysctl(&lab.host, BRIDGE_NF_IPTABLES), "1");
    assert!(has_our_table(&nft_tables(&lab.host)));
    // Only the host namespace was touched.
    assert!(!has_our_table(&nft_tables(&lab.a)));

    assert!(Lab::connects(&lab.a, IP_B), "A is in lb: A -> B:8080");
    assert!(!Lab::connects(&lab.c, IP_B), "C is not in lb: C -> B:8080");
    assert!(
        Lab::connects(&lab.b, IP_C),
        "B's own connection out gets its replies"
    );

    // The same state again changes nothing.
    assert!(!applier.apply(&fw).unwrap_or_else(|e| panic!("{e}")));

    // A bad state is refused and the rules stay.
    let mut bad = fw.clone();
    bad.ports[0].ingress[0].peer = FwPeer::Set("web".into());
    assert!(matches!(
        applier.apply(&bad),
        Err(NetError::Invalid(InvalidState::UnknownSet { .. }))
    ));
    assert!(!Lab::connects(&lab.c, IP_B), "rules kept after a bad state");

    // A connection A opens while in lb carries data...
    let mut open = lab
        .a
        .run(|| TcpStream::connect_timeout(&SocketAddr::from((IP_B, PORT)), CONNECT_TIMEOUT))
        .unwrap_or_else(|e| panic!("A -> B:8080: {e}"));
    let mut accepted = accept_from(&lab._servers[1], &open);
    open.write_all(b"one").unwrap_or_else(|e| panic!("{e}"));
    let mut got = [0u8; 3];
    accepted
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("B reads: {e}"));
    assert_eq!(&got, b"one");

    // Membership moves from A to C: only the set is refilled.
    let fw = guard_b(IP_C, None);
    assert!(applier.apply(&fw).unwrap_or_else(|e| panic!("{e}")));
    assert!(applier.last_was_incremental());
    assert!(Lab::connects(&lab.c, IP_B), "C is now in lb: C -> B:8080");
    assert!(!Lab::connects(&lab.a, IP_B), "A left lb: A -> B:8080");
    // ...and none once A has left lb: the open connection is cut too.
    open.write_all(b"two").unwrap_or_else(|e| panic!("{e}"));
    accepted
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("{e}"));
    let late = accepted.read(&mut got);
    assert!(late.is_err(), "B still got {late:?} from A after A left lb");

    // Nothing allowed out of B: B cannot open connections, but still answers C.
    let fw = guard_b(IP_C, Some(vec![]));
    assert!(applier.apply(&fw).unwrap_or_else(|e| panic!("{e}")));
    assert!(!applier.last_was_incremental());
    assert!(!Lab::connects(&lab.b, IP_C), "B has no egress: B -> C:8080");
    assert!(
        Lab::connects(&lab.c, IP_B),
        "replies leave B without egress rules"
    );

    // An empty firewall removes the table: nothing is filtered any more.
    assert!(
        applier
            .apply(&Firewall::default())
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(!has_our_table(&nft_tables(&lab.host)));
    assert!(Lab::connects(&lab.a, IP_B), "no firewall: A -> B:8080");
    assert!(Lab::connects(&lab.b, IP_C), "no firewall: B -> C:8080");
}

/// Every rule form the renderer writes, loaded into a bare namespace; and a set
/// update against a table someone removed fails with nft's message, after which
/// the applier rebuilds the whole table.
#[test]
fn every_rule_form_loads_and_a_failed_update_is_retried_in_full() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let ns = Netns::new("forms");
    let rule = |protocol, ports, peer| FwRule {
        protocol,
        ports,
        peer,
    };
    let everything = vec![
        rule(
            FwProtocol::Tcp,
            Some((80, 90)),
            FwPeer::Cidr(Ipv4Addr::new(198, 18, 0, 0), 15),
        ),
        rule(FwProtocol::Udp, Some((53, 53)), FwPeer::Set("tcp".into())),
        rule(FwProtocol::Tcp, None, FwPeer::Set("empty".into())),
        rule(
            FwProtocol::Icmp,
            None,
            FwPeer::Cidr(Ipv4Addr::UNSPECIFIED, 0),
        ),
        rule(FwProtocol::Any, None, FwPeer::Cidr(IP_C, 32)),
    ];
    let mut fw = Firewall {
        ports: vec![
            GuardedPort {
                mac: MAC_A,
                ips: vec![IP_A, Ipv4Addr::new(198, 18, 201, 1)],
                ingress: everything.clone(),
                egress: Some(everything.clone()),
            },
            GuardedPort {
                mac: MAC_B,
                ips: vec![],
                ingress: vec![],
                egress: Some(vec![]),
            },
        ],
        // "tcp" is an nft keyword: the kernel set is sg_tcp.
        sets: [
            ("tcp".to_string(), vec![IP_A, IP_B]),
            ("empty".to_string(), vec![]),
        ]
        .into(),
    };
    let mut applier = FirewallApplier::in_netns(&ns.path());
    assert!(applier.apply(&fw).unwrap_or_else(|e| panic!("{e}")));
    assert!(has_our_table(&nft_tables(&ns)));

    // Filling the empty set is incremental.
    fw.sets.insert("empty".into(), vec![IP_C]);
    assert!(applier.apply(&fw).unwrap_or_else(|e| panic!("{e}")));
    assert!(applier.last_was_incremental());

    // Someone removes the table behind the applier's back: the set update fails
    // with nft's own words, and the next apply rebuilds everything.
    ns.run(|| novacron_net::remove_table().unwrap_or_else(|e| panic!("{e}")));
    assert!(!has_our_table(&nft_tables(&ns)));
    fw.sets.insert("empty".into(), vec![]);
    match applier.apply(&fw) {
        Err(e @ NetError::NftFailed { .. }) => {
            assert!(e.to_string().contains("sg_empty"), "{e}");
        }
        other => panic!("expected nft to refuse the set update, got {other:?}"),
    }
    assert!(applier.apply(&fw).unwrap_or_else(|e| panic!("{e}")));
    assert!(!applier.last_was_incremental());
    assert!(has_our_table(&nft_tables(&ns)));
}
