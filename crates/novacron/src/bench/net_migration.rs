//! The migration part of `novacron bench network` (issue 13): a TCP stream through a live
//! migration of one of its ends to another site.
//!
//! Two sites joined by `novacron-wanem`, each a node (`novacron agent --site`) in its
//! namespace; the control plane runs in site a, so site b's agent reaches it over the WAN
//! as a real remote site would. Two TCG guests from the tiny image on one network, both in
//! site a: `client` listens, `mover` sends it a numbered line every 10 ms. `mover` then moves
//! to site b with `vm migrate` while the stream runs, so the stream's path changes from one
//! bridge to the overlay sealed by the tunnel over the WAN. The bench times every data
//! segment of the stream as it reaches the client's tap (a packet socket in site a), and
//! asks the client at the end whether every line arrived, in order, on the one connection.
//!
//! Reported: whether the connection survived, the longest gap in the stream around the
//! switch-over against the migration's own measured pause (target: gap ≤ pause + 1 s), and
//! the longest gap before the migration for scale (a TCG guest's shell does not tick evenly).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use novacron_wanem::{LinkParams, Site, Wanem, WanemConfig};
use serde::Serialize;
use serde_json::Value;

use super::infra::{Cli, Scratch, free_port, wait_for};
use super::network::WanLink;

/// Issue 13: the stall in the stream at most the migration's pause plus this.
const STALL_MARGIN_MS: f64 = 1000.0;
const NETWORK: &str = "bench-mig";
const SUBNET: &str = "10.91.0.0/24";
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 91, 0, 20);
const MOVER_IP: Ipv4Addr = Ipv4Addr::new(10, 91, 0, 10);
const STREAM_PORT: u16 = 5000;
/// A guest booting under TCG, and a command in it.
const BOOT: Duration = Duration::from_secs(180);
/// Stream before the migration starts, and after it ends, before the stream is stopped.
const BEFORE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct MigrationReport {
    /// The stream's TCP connection carried every line, in order, across the migration, and
    /// data flowed on it after the switch-over.
    pub migration_tcp_survived: bool,
    /// The longest gap between the stream's segments reaching the client, from the
    /// migration's start to the end of the stream, ms.
    pub migration_stall_ms: f64,
    /// The migration's pause as NovaCron measured it (source STOP to destination RESUME), ms.
    pub migration_downtime_ms: f64,
    /// The pause limit in force: `vm migrate`'s default, or what it was raised to because the
    /// link cannot pause the guest for that little, ms.
    pub migration_max_downtime_ms: u64,
    /// The shortest pause the link allows, as the source measured it, ms.
    pub migration_pause_floor_ms: Option<u64>,
    /// The longest gap in the stream before the migration started, ms: the sender's own
    /// unevenness (a shell loop in a TCG guest).
    pub migration_gap_before_ms: f64,
    /// `vm migrate`'s wall time, seconds.
    pub migration_seconds: f64,
    /// Data segments of the stream seen at the client's tap, and of those after the
    /// migration ended.
    pub migration_stream_segments: usize,
    pub migration_segments_after: usize,
    /// Data segments the sender sent again (TCP retransmissions) from the migration's start.
    pub migration_resent_segments: usize,
    pub migration_from_site: String,
    pub migration_to_site: String,
    /// `migration_downtime_ms` + 1000: the stall's bound.
    pub migration_stall_target_ms: f64,
    pub migration_stall_met: bool,
}

/// Runs the scenario; everything it made is gone when it returns, also after a failure.
pub fn run(exe: &std::path::Path, link: WanLink) -> anyhow::Result<MigrationReport> {
    let mut scratch = Scratch::new("netbench-mig")?;
    let tag = std::process::id() % 100_000;
    let prefix = format!("ncnm{tag}-");
    super::interrupt::wanem(&prefix);
    let wan = Wanem::up(WanemConfig::new(
        &prefix,
        LinkParams::symmetric(link.rate_bps, link.rtt, link.loss),
    ))
    .context("starting novacron-wanem")?;
    let sites = [wan.site_a().clone(), wan.site_b().clone()];
    let result = scenario(&mut scratch, exe, &sites);
    // The guests and the agents go before the namespaces they live in.
    drop(scratch);
    wan.down().context("stopping novacron-wanem")?;
    result
}

fn scenario(
    scratch: &mut Scratch,
    exe: &std::path::Path,
    sites: &[Site; 2],
) -> anyhow::Result<MigrationReport> {
    let names = ["east", "west"];
    let (cli, join_token, url) = start_control_plane(scratch, exe, &sites[0])?;
    for (site, name) in sites.iter().zip(names) {
        let addr = site.addr.to_string();
        let mut cmd = site.command(&exe.to_string_lossy());
        cmd.args(["agent", "--server", &url, "--join-token", &join_token])
            .args(["--name", name, "--site", name])
            .args(["--listen", &format!("{addr}:0"), "--advertise", &addr])
            .args(["--vtep-address", &addr])
            .arg("--data-dir")
            .arg(scratch.path(name))
            .env("NOVACRON_LOG", "info");
        scratch.spawn(&format!("agent-{name}"), &mut cmd)?;
    }
    wait_for(Duration::from_secs(90), "both nodes ready", || {
        let nodes = cli.run(&["node", "list"])?;
        Ok(nodes
            .as_array()
            .is_some_and(|n| n.len() == 2 && n.iter().all(|x| x["state"] == "ready")))
    })
    .map_err(|e| anyhow!("{e}; agent logs:\n{}", agent_logs(scratch)))?;

    cli.run(&["image", "build-tiny", "tiny"])?;
    cli.run(&["network", "create", NETWORK, "--subnet", SUBNET])?;
    for (vm, ip) in [("client", CLIENT_IP), ("mover", MOVER_IP)] {
        let ip = ip.to_string();
        cli.run(&[
            "vm",
            "create",
            vm,
            "--image",
            "tiny",
            "--accel",
            "tcg",
            "--memory",
            "96M",
            "--node",
            names[0],
            "--network",
            NETWORK,
            "--ip",
            &ip,
            "--no-wait",
        ])?;
    }
    for (vm, ip) in [("client", CLIENT_IP), ("mover", MOVER_IP)] {
        wait_for(BOOT, &format!("{vm} running"), || {
            Ok(cli.vm(vm)?["state"] == "running")
        })?;
        cli.wait_console(vm, "NOVACRON-GUEST-READY", BOOT)?;
        let rc = cli.guest_rc(
            vm,
            &format!("{vm}addr"),
            &format!(
                "i=0; while [ $i -lt 30 ] && ! ip addr show eth0 | grep -q 'inet {ip}/'; do sleep 1; i=$((i+1)); done; ip addr show eth0 | grep -q 'inet {ip}/'"
            ),
            BOOT,
        )?;
        if rc != 0 {
            bail!(
                "{vm} did not get {ip} by DHCP:\n{}\n{}",
                cli.console(vm)?,
                agent_logs(scratch)
            );
        }
    }

    // The client's tap in site a: where the stream arrives, before and after the move.
    let client_mac = cli.vm("client")?["nics"][0]["mac"]
        .as_str()
        .context("the client's MAC")?
        .to_string();
    let tap = tap_of(&sites[0], &client_mac)?;
    let sniffer = Sniffer::start(sites[0].clone(), tap, MOVER_IP, STREAM_PORT)?;

    // busybox nc ends at the end of its stdin: a `sleep` keeps the listener's open.
    cli.type_in(
        "client",
        &format!("sleep 900 | nc -l -p {STREAM_PORT} > /tmp/got &"),
    )?;
    std::thread::sleep(Duration::from_secs(1));
    cli.type_in(
        "mover",
        &format!(
            "(i=0; while [ ! -e /tmp/stop ] && [ $i -lt 30000 ]; do echo tick$i; i=$((i+1)); sleep 0.01; done; echo end$i) | nc {CLIENT_IP} {STREAM_PORT} &"
        ),
    )?;
    wait_for(Duration::from_secs(30), "the stream flowing", || {
        Ok(sniffer.count() >= 20)
    })
    .map_err(|e| {
        let tail = |vm| {
            cli.console(vm)
                .map(|c| c.lines().rev().take(10).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default()
        };
        anyhow!(
            "{e} (seen at the client's tap: {}); client's console (last lines first):\n{}\nmover's:\n{}",
            sniffer.count(),
            tail("client"),
            tail("mover")
        )
    })?;
    std::thread::sleep(BEFORE);

    let started = Instant::now();
    let migration = cli.run(&["vm", "migrate", "mover", "--to", names[1]])?;
    let ended = Instant::now();
    if migration["state"] != "succeeded" {
        bail!("the migration did not succeed: {migration}");
    }
    let downtime_ms = migration["progress"]["downtime_ms"]
        .as_f64()
        .with_context(|| format!("no measured pause in {migration}"))?;
    let progress = &migration["progress"];
    let max_downtime_ms = progress["raised_max_downtime_ms"]
        .as_u64()
        .or(migration["max_downtime_ms"].as_u64())
        .with_context(|| format!("no pause limit in {migration}"))?;
    let pause_floor_ms = progress["pause_floor_ms"].as_u64();
    std::thread::sleep(AFTER);
    cli.type_in("mover", "touch /tmp/stop")?;
    let complete = cli.guest_rc(
        "client",
        "streamed",
        "i=0; while [ $i -lt 60 ] && ! grep -q ^end /tmp/got; do sleep 1; i=$((i+1)); done; \
         n=$(grep -c ^tick /tmp/got); e=$(sed -n 's/^end//p' /tmp/got); \
         [ -n \"$e\" ] && [ \"$n\" = \"$e\" ] && [ \"$(sed -n \"${n}p\" /tmp/got)\" = \"tick$((n-1))\" ]",
        BOOT,
    )? == 0;
    let Seen { arrivals, resent } = sniffer.stop()?;
    let moved = cli.vm("mover")?;
    let kept_ip = moved["node"] == names[1]
        && moved["nics"][0]["ips"][0].as_str() == Some(&MOVER_IP.to_string());

    let before: Vec<Instant> = arrivals.iter().copied().filter(|t| *t < started).collect();
    let around: Vec<Instant> = arrivals.iter().copied().filter(|t| *t >= started).collect();
    // The gap across the start counts: the last segment before it to the first after.
    let around = before
        .last()
        .into_iter()
        .copied()
        .chain(around)
        .collect::<Vec<_>>();
    let after = arrivals.iter().filter(|t| **t > ended).count();
    let stall_ms = longest_gap_ms(&around);
    let target = downtime_ms + STALL_MARGIN_MS;
    Ok(MigrationReport {
        migration_tcp_survived: complete && kept_ip && after > 0,
        migration_stall_ms: stall_ms,
        migration_downtime_ms: downtime_ms,
        migration_max_downtime_ms: max_downtime_ms,
        migration_pause_floor_ms: pause_floor_ms,
        migration_gap_before_ms: longest_gap_ms(&before),
        migration_seconds: (ended - started).as_secs_f64(),
        migration_stream_segments: arrivals.len(),
        migration_resent_segments: resent.iter().filter(|t| **t >= started).count(),
        migration_segments_after: after,
        migration_from_site: names[0].into(),
        migration_to_site: names[1].into(),
        migration_stall_target_ms: target,
        migration_stall_met: complete && stall_ms <= target,
    })
}

/// A control plane in `site` with its embedded store; the CLI runs there too.
fn start_control_plane(
    scratch: &mut Scratch,
    exe: &std::path::Path,
    site: &Site,
) -> anyhow::Result<(Cli, String, String)> {
    let port = free_port()?;
    let config = scratch.path("cli.json");
    let mut cmd = site.command(&exe.to_string_lossy());
    cmd.args([
        "server",
        "-o",
        "json",
        "--listen",
        &format!("{}:{port}", site.addr),
    ])
    .arg("--data-dir")
    .arg(scratch.path("cp"))
    .env("NOVACRON_CONFIG", &config)
    .env("NOVACRON_LOG", "info");
    let (_, line) = scratch.spawn_first_line("cp", &mut cmd, Duration::from_secs(60))?;
    let v: Value = serde_json::from_str(&line).context("the server's summary")?;
    let token = v["join_token"]
        .as_str()
        .context("no join token")?
        .to_string();
    let url = v["api_url"].as_str().context("no API URL")?.to_string();
    let cli = Cli {
        exe: exe.to_path_buf(),
        config,
        netns: Some(site.netns.clone()),
    };
    Ok((cli, token, url))
}

fn agent_logs(scratch: &Scratch) -> String {
    ["cp", "agent-east", "agent-west"]
        .iter()
        .map(|n| format!("--- {n} ---\n{}\n", scratch.log_tail(n, 15)))
        .collect()
}

/// The tap in `site` whose alias names the guest NIC with `mac`.
fn tap_of(site: &Site, mac: &str) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(["-j", "-n", &site.netns, "link", "show"])
        .output()?;
    let links: Value = serde_json::from_slice(&out.stdout).context("`ip -j link` output")?;
    let alias = novacron_net::tap_alias(mac.parse().map_err(|e| anyhow!("{mac}: {e}"))?);
    links
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["ifalias"].as_str() == Some(alias.as_str()))
        .and_then(|l| l["ifname"].as_str())
        .map(str::to_string)
        .with_context(|| format!("no tap with alias {alias} in {}", site.netns))
}

/// The longest gap between consecutive instants, ms (0 with fewer than two).
fn longest_gap_ms(times: &[Instant]) -> f64 {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .fold(0.0, f64::max)
}

/// What the sniffer saw: when each data segment crossed, and when those that were sent a
/// second time did.
#[derive(Default, Clone)]
struct Seen {
    arrivals: Vec<Instant>,
    resent: Vec<Instant>,
}

/// Times the data segments from `from` to TCP port `port` crossing one interface, from a
/// packet socket on its own thread inside the interface's namespace.
struct Sniffer {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: JoinHandle<anyhow::Result<()>>,
}

impl Sniffer {
    fn start(site: Site, ifname: String, from: Ipv4Addr, port: u16) -> anyhow::Result<Sniffer> {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::Builder::new()
            .name("nc-bench-sniff".into())
            .spawn(move || -> anyhow::Result<()> {
                let sock = site
                    .enter_current_thread()
                    .map_err(anyhow::Error::from)
                    .and_then(|()| packet_socket(&ifname));
                let sock = match sock {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                let mut frame = vec![0u8; 65_536];
                let mut highest = None;
                while !stop2.load(Ordering::Relaxed) {
                    // SAFETY: recv(2) into a buffer we own, of its length.
                    let n = unsafe {
                        libc::recv(sock.as_raw_fd(), frame.as_mut_ptr().cast(), frame.len(), 0)
                    };
                    if n <= 0 {
                        continue; // the receive timeout: look at the stop flag
                    }
                    if let Some(seg) = stream_segment(&frame[..n as usize], from, port) {
                        let now = Instant::now();
                        let end = seg.seq.wrapping_add(seg.len);
                        let mut seen = seen2.lock().unwrap_or_else(PoisonError::into_inner);
                        seen.arrivals.push(now);
                        if resent(end, highest) {
                            seen.resent.push(now);
                        } else {
                            highest = Some(end);
                        }
                    }
                }
                Ok(())
            })?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("the packet capture thread ended"))??;
        Ok(Sniffer { stop, seen, thread })
    }

    fn count(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .arrivals
            .len()
    }

    fn stop(self) -> anyhow::Result<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow!("the packet capture thread panicked"))??;
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(seen.clone())
    }
}

/// An AF_PACKET socket on `ifname` (every frame, both directions), with a 100 ms receive
/// timeout.
fn packet_socket(ifname: &str) -> anyhow::Result<OwnedFd> {
    // ETH_P_ALL: a socket bound to one protocol sees only what the interface receives, and
    // the stream leaves the node through the tap, towards the guest.
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto as i32,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("a packet socket");
    }
    // SAFETY: a descriptor socket(2) just returned, owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(ifname)?;
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("no interface {ifname}");
    }
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = index as i32;
    // SAFETY: bind(2) with a sockaddr_ll of its size.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("binding to {ifname}"));
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: SO_RCVTIMEO reads a timeval of the given size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("a receive timeout");
    }
    Ok(sock)
}

/// A data segment of the stream: its sequence number and payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    seq: u32,
    len: u32,
}

/// The data segment in an Ethernet frame carrying IPv4 TCP from `from` to port `port` with
/// a payload.
fn stream_segment(frame: &[u8], from: Ipv4Addr, port: u16) -> Option<Segment> {
    const ETH: usize = 14;
    let ip = frame.get(ETH..)?;
    if frame.get(12..14) != Some(&[0x08, 0x00]) || ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[12..16] != from.octets() || ihl < 20 || total > ip.len() {
        return None;
    }
    let tcp = ip.get(ihl..total)?;
    if tcp.len() < 20 || u16::from_be_bytes([tcp[2], tcp[3]]) != port {
        return None;
    }
    let offset = usize::from(tcp[12] >> 4) * 4;
    let len = tcp.len().checked_sub(offset).filter(|l| *l > 0)?;
    Some(Segment {
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        len: len as u32,
    })
}

/// Whether a segment ending at `end` was sent before: `highest` is the furthest end seen so
/// far (sequence numbers wrap).
fn resent(end: u32, highest: Option<u32>) -> bool {
    highest.is_some_and(|h| h.wrapping_sub(end) as i32 >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src: Ipv4Addr, dport: u16, payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = 20 + 20 + payload;
        let mut ip = vec![0u8; total];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[9] = 6;
        ip[12..16].copy_from_slice(&src.octets());
        ip[20 + 2..20 + 4].copy_from_slice(&dport.to_be_bytes());
        ip[20 + 12] = 5 << 4;
        f.extend(ip);
        // Ethernet padding after the IP packet is not payload.
        f.extend([0u8; 6]);
        f
    }

    fn is_stream_data(frame: &[u8], from: Ipv4Addr, port: u16) -> bool {
        stream_segment(frame, from, port).is_some()
    }

    #[test]
    fn only_the_streams_data_segments_count() {
        let mut f = frame(MOVER_IP, 5000, 7);
        f[14 + 20 + 4..14 + 20 + 8].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(
            stream_segment(&f, MOVER_IP, 5000),
            Some(Segment { seq: 1000, len: 7 })
        );
        // Sent again: a segment that ends where one seen before did, across the wrap too.
        assert!(!resent(1007, None));
        assert!(resent(1007, Some(1007)));
        assert!(resent(1000, Some(1007)));
        assert!(!resent(1014, Some(1007)));
        assert!(!resent(5, Some(u32::MAX - 10)));
        assert!(resent(u32::MAX - 20, Some(5)));
        assert!(
            !is_stream_data(&frame(MOVER_IP, 5000, 0), MOVER_IP, 5000),
            "a bare ACK"
        );
        assert!(!is_stream_data(&frame(CLIENT_IP, 5000, 7), MOVER_IP, 5000));
        assert!(!is_stream_data(&frame(MOVER_IP, 5001, 7), MOVER_IP, 5000));
        let mut arp = frame(MOVER_IP, 5000, 7);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!is_stream_data(&arp, MOVER_IP, 5000));
        for cut in [0, 13, 20, 40, 50] {
            assert!(!is_stream_data(
                &frame(MOVER_IP, 5000, 7)[..cut],
                MOVER_IP,
                5000
            ));
        }
    }

    #[test]
    fn the_longest_gap_is_found() {
        let t = Instant::now();
        let at = |ms| t + Duration::from_millis(ms);
        assert_eq!(longest_gap_ms(&[]), 0.0);
        assert_eq!(longest_gap_ms(&[at(5)]), 0.0);
        assert_eq!(longest_gap_ms(&[at(0), at(10), at(350), at(360)]), 340.0);
    }
}
