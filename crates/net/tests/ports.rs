//! Bandwidth limits against the real kernel: a "host" network namespace with a bridge and
//! two endpoint namespaces A and B on it by veth pairs whose host ends stand for VM taps
//! (`nctapa`, `nctapb`, each with the alias naming its endpoint's MAC), limited by a
//! [`PortApplier`] working inside the host namespace. Every check is an iperf3 TCP transfer
//! between A and B, bounded in time: A's upload meets the policer, its download the tbf.
//!
//! Needs root, nft (Debian package nftables), tc (iproute2) and iperf3; skipped with a
//! message otherwise. Every namespace is deleted and every iperf3 killed on drop, so a
//! failing test leaves nothing behind.

mod common;

use common::{Netns, ip};
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use novacron_net::{InvalidState, MacAddr, NetError, NodePorts, PortApplier, ShapedNic, tap_alias};

const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 202, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 202, 2);
const MAC_A: MacAddr = MacAddr([0x02, 0xfe, 0, 0xca, 0, 0x01]);
const MAC_B: MacAddr = MacAddr([0x02, 0xfe, 0, 0xca, 0, 0x02]);
/// A NIC with a limit whose tap does not exist (its VM is starting).
const MAC_LATE: MacAddr = MacAddr([0x02, 0xfe, 0, 0xca, 0, 0x03]);
const TAP_A: &str = "nctapa";
const TAP_B: &str = "nctapb";
const LIMIT_BPS: u64 = 20_000_000;
const PORT: u16 = 5201;
/// How long the iperf3 server may take to listen, and a client to end after its run.
const START_TIMEOUT: Duration = Duration::from_secs(5);
const END_SLACK: Duration = Duration::from_secs(10);

/// Why the test cannot run here, if it cannot.
fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, nftables, qdiscs)");
    }
    if program("nft").is_none() {
        return Some("needs nft: install the nftables package");
    }
    if program("tc").is_none() {
        return Some("needs tc: install the iproute2 package");
    }
    if program("iperf3").is_none() {
        return Some("needs iperf3: install the iperf3 package");
    }
    None
}

fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs `name ARGS` inside `ns`, its stdout; panics when it fails.
fn output_in(ns: &Netns, name: &str, args: &[&str]) -> String {
    let program = program(name).unwrap_or_else(|| panic!("{name} vanished"));
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    ns.run(move || {
        let out = Command::new(&program)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        assert!(
            out.status.success(),
            "{} {args:?}: {out:?}",
            program.display()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

fn has_qos_table(ns: &Netns) -> bool {
    output_in(ns, "nft", &["list", "tables"])
        .lines()
        .any(|l| l.trim() == "table bridge novacron_ports")
}

/// The root qdisc line of `tap` in the host namespace, as `tc` prints it.
fn root_qdisc(lab: &Lab, tap: &str) -> String {
    output_in(&lab.host, "tc", &["qdisc", "show", "dev", tap, "root"])
        .trim()
        .to_string()
}

/// A process killed (and reaped) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The host with its bridge and the two endpoints.
struct Lab {
    a: Netns,
    b: Netns,
    host: Netns,
}

impl Lab {
    fn new() -> Self {
        let host = Netns::new("qhost");
        ip(&["-n", &host.name, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &host.name, "link", "set", "br0", "up"]);
        let lab = Self {
            a: Netns::new("qa"),
            b: Netns::new("qb"),
            host,
        };
        lab.plug(&lab.a, TAP_A, MAC_A, IP_A);
        lab.plug(&lab.b, TAP_B, MAC_B, IP_B);
        lab
    }

    /// Joins endpoint `ep` (its `eth0` with `mac` and `addr`) to the bridge by a veth
    /// whose host end `tap` is aliased like a VM tap.
    fn plug(&self, ep: &Netns, tap: &str, mac: MacAddr, addr: Ipv4Addr) {
        let host = &self.host.name;
        let mac_text = mac.to_string();
        #[rustfmt::skip]
        ip(&["-n", host, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "address", &mac_text, "netns", &ep.name]);
        ip(&["-n", host, "link", "set", tap, "alias", &tap_alias(mac)]);
        ip(&["-n", host, "link", "set", tap, "master", "br0", "up"]);
        ip(&["-n", &ep.name, "link", "set", "eth0", "up"]);
        #[rustfmt::skip]
        ip(&["-n", &ep.name, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
    }

    /// TCP throughput in bits per second, as the receiver saw it, of a `secs` iperf3 run
    /// from A to B (`reverse`: from B to A), client in A, one-shot server in B.
    fn iperf(&self, secs: u64, reverse: bool) -> f64 {
        let server = self.b.run(|| {
            #[rustfmt::skip]
            let args = ["-s", "-1", "-B", &IP_B.to_string(), "-p", &PORT.to_string()];
            Command::new("iperf3")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(Killed)
        });
        let _server = server.unwrap_or_else(|e| panic!("start iperf3 -s: {e}"));
        assert!(listening(&self.b, PORT), "iperf3 -s did not listen");
        let client = self.a.run(move || {
            let mut args = vec!["-c".to_string(), IP_B.to_string()];
            for a in ["-p", &PORT.to_string(), "-t", &secs.to_string()] {
                args.push(a.to_string());
            }
            args.extend(["-J", "--connect-timeout", "3000"].map(String::from));
            if reverse {
                args.push("-R".into());
            }
            Command::new("iperf3")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map(Killed)
        });
        let mut client = client.unwrap_or_else(|e| panic!("start iperf3 -c: {e}"));
        let stdout = client.0.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut stdout) = stdout {
                let _ = stdout.read_to_string(&mut text);
            }
            text
        });
        let deadline = Instant::now() + Duration::from_secs(secs) + END_SLACK;
        let status = loop {
            match client.0.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(None) => panic!("iperf3 -c ran past {secs} s + {END_SLACK:?}"),
                Err(e) => panic!("wait for iperf3 -c: {e}"),
            }
        };
        let json = reader.join().unwrap_or_default();
        assert!(status.success(), "iperf3 -c: {status}: {json}");
        received_bps(&json).unwrap_or_else(|| panic!("no sum_received in {json}"))
    }
}

/// Whether a TCP socket in `ns` listens on `port` within [`START_TIMEOUT`]
/// (`/proc/thread-self/net/tcp` lists the calling thread's namespace).
fn listening(ns: &Netns, port: u16) -> bool {
    let local = format!(":{port:04X}");
    ns.run(move || {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let table = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap_or_default();
            // sl local_address rem_address st ...; st 0A is LISTEN.
            let listens = table.lines().any(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.len() > 3 && fields[1].ends_with(&local) && fields[3] == "0A"
            });
            if listens {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    })
}

/// `end.sum_received.bits_per_second` of iperf3's JSON report.
fn received_bps(json: &str) -> Option<f64> {
    let rest = &json[json.find("\"sum_received\"")?..];
    let rest = &rest[rest.find("\"bits_per_second\"")? + "\"bits_per_second\"".len()..];
    let number: String = rest
        .trim_start_matches(|c: char| c == ':' || c.is_whitespace())
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        .collect();
    number.parse().ok()
}

fn mbit(bps: f64) -> String {
    format!("{:.1} Mbit/s", bps / 1e6)
}

fn nic(mac: MacAddr, rate_bps: u64) -> ShapedNic {
    ShapedNic { mac, rate_bps }
}

#[test]
fn a_nic_limit_shapes_its_download_and_polices_its_upload_until_lifted() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let lab = Lab::new();
    let mut qos = PortApplier::in_netns(&lab.host.path());

    // A bad list changes nothing.
    assert!(matches!(
        qos.apply(&[nic(MAC_A, 0)]),
        Err(NetError::Invalid(InvalidState::RateOutOfRange { .. }))
    ));
    assert!(!has_qos_table(&lab.host));

    // A's NIC at 20 Mbit/s; a NIC whose tap does not exist yet is no error.
    let nics = [nic(MAC_A, LIMIT_BPS), nic(MAC_LATE, 10_000_000)];
    assert!(qos.apply(&nics).unwrap_or_else(|e| panic!("{e}")));
    let qdisc = root_qdisc(&lab, TAP_A);
    assert!(
        qdisc.contains("tbf 4e43:") && qdisc.contains("rate 20Mbit"),
        "{qdisc}"
    );
    assert!(!root_qdisc(&lab, TAP_B).contains("tbf"));
    assert!(has_qos_table(&lab.host));
    assert!(!has_qos_table(&lab.a), "only the host namespace is touched");
    // The same list again (in another order) runs nothing.
    let swapped = [nics[1], nics[0]];
    assert!(!qos.apply(&swapped).unwrap_or_else(|e| panic!("{e}")));

    let limit = LIMIT_BPS as f64;
    // The policer's bucket holds a second at the rate: 6 s average up to 7/6 of it.
    let upload = lab.iperf(6, false);
    eprintln!("A upload at 20 Mbit/s: {}", mbit(upload));
    assert!(
        (0.6 * limit..=1.3 * limit).contains(&upload),
        "upload {} with a 20 Mbit/s limit",
        mbit(upload)
    );
    let download = lab.iperf(4, true);
    eprintln!("A download at 20 Mbit/s: {}", mbit(download));
    assert!(
        (0.6 * limit..=1.1 * limit).contains(&download),
        "download {} with a 20 Mbit/s limit",
        mbit(download)
    );

    // The limit doubles: the download follows.
    let nics = [nic(MAC_A, 2 * LIMIT_BPS), nic(MAC_LATE, 10_000_000)];
    assert!(qos.apply(&nics).unwrap_or_else(|e| panic!("{e}")));
    let download = lab.iperf(4, true);
    eprintln!("A download at 40 Mbit/s: {}", mbit(download));
    assert!(
        (1.5 * limit..=2.2 * limit).contains(&download),
        "download {} with a 40 Mbit/s limit",
        mbit(download)
    );

    // The VM restarts: its tap is deleted and made again under the same name, without a
    // qdisc. The same list puts the tbf on the new tap.
    ip(&["-n", &lab.host.name, "link", "del", TAP_A]);
    assert!(!qos.apply(&nics).unwrap_or_else(|e| panic!("{e}")));
    lab.plug(&lab.a, TAP_A, MAC_A, IP_A);
    assert!(!root_qdisc(&lab, TAP_A).contains("tbf"));
    assert!(qos.apply(&nics).unwrap_or_else(|e| panic!("{e}")));
    let qdisc = root_qdisc(&lab, TAP_A);
    assert!(
        qdisc.contains("tbf 4e43:") && qdisc.contains("rate 40Mbit"),
        "{qdisc}"
    );

    // No limits: the table and the tbf are gone, and A runs at full speed both ways.
    assert!(qos.apply(&[]).unwrap_or_else(|e| panic!("{e}")));
    assert!(!has_qos_table(&lab.host));
    let qdisc = root_qdisc(&lab, TAP_A);
    assert!(!qdisc.contains("tbf"), "{qdisc}");
    assert!(!qos.apply(&[]).unwrap_or_else(|e| panic!("{e}")));
    let upload = lab.iperf(2, false);
    let download = lab.iperf(2, true);
    eprintln!(
        "A without a limit: upload {}, download {}",
        mbit(upload),
        mbit(download)
    );
    assert!(
        upload > 3.0 * limit,
        "upload {} without a limit",
        mbit(upload)
    );
    assert!(
        download > 3.0 * limit,
        "download {} without a limit",
        mbit(download)
    );
}

/// Whether a TCP connection from A reaches a listener on B within `wait`.
fn a_reaches_b(lab: &Lab, port: u16, wait: Duration) -> bool {
    let listener = lab.b.run(move || std::net::TcpListener::bind((IP_B, port)));
    let _listener = listener.unwrap_or_else(|e| panic!("listen in B: {e}"));
    lab.a
        .run(move || std::net::TcpStream::connect_timeout(&(IP_B, port).into(), wait).is_ok())
}

/// How long a connection that must get through may take: ARP first, on a CI machine whose
/// two cores run other tests too (2 s was once not enough after the spoofing below).
const GETS_THROUGH: Duration = Duration::from_secs(10);
/// How long a connection that must not get through is given.
const BLOCKED: Duration = Duration::from_secs(2);

#[test]
fn a_guest_tap_sends_only_as_its_nic() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let lab = Lab::new();
    let mut ports = PortApplier::in_netns(&lab.host.path());
    let pinned = NodePorts {
        guests: vec![MAC_A, MAC_B],
        shaped: vec![],
    };
    assert!(ports.apply_ports(&pinned).unwrap_or_else(|e| panic!("{e}")));
    assert!(has_qos_table(&lab.host));
    assert!(
        a_reaches_b(&lab, 7001, GETS_THROUGH),
        "A as itself is let through"
    );

    // A's guest takes another MAC: nothing it sends passes its tap any more (B forgets
    // A's old address first, so it must ask again).
    let spoofed = "02:fe:00:ca:00:99";
    ip(&["-n", &lab.a.name, "link", "set", "eth0", "address", spoofed]);
    ip(&["-n", &lab.b.name, "neigh", "flush", "all"]);
    assert!(
        !a_reaches_b(&lab, 7002, BLOCKED),
        "a spoofed source MAC got through"
    );
    // What stopped it is the pin: without the table the same frames pass.
    let unpinned = NodePorts::default();
    assert!(
        ports
            .apply_ports(&unpinned)
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(!has_qos_table(&lab.host));
    // A's failed attempt left its entry for B unresolved: resolve afresh.
    ip(&["-n", &lab.a.name, "neigh", "flush", "all"]);
    assert!(
        a_reaches_b(&lab, 7003, GETS_THROUGH),
        "A with another MAC and no pin"
    );
    // A steady state runs nothing.
    assert!(
        !ports
            .apply_ports(&unpinned)
            .unwrap_or_else(|e| panic!("{e}"))
    );
}
