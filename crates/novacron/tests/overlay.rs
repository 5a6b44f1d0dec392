//! Overlay networks end to end: one control plane (`novacron server`, in the host's network
//! namespace), two agents each in its own network namespace joined
//! by a veth underlay (198.18.0.1 <-> 198.18.0.2, their VTEPs), in two sites (`--site east`,
//! `--site west`: everything between them crosses the encrypted tunnel, and the underlay
//! never carries a VXLAN packet), a TCG tiny guest on each
//! agent on network `app`: the guests get their addresses by DHCP from the control plane's
//! IPAM and ping each other across the VXLAN overlay; a guest on network `other` cannot
//! reach them, even with an address in `app`'s subnet. A backup restored as a new VM keeps
//! the NIC (new MAC and address), a live migration to the other node keeps MAC and
//! address (the guests reach it there, and a TCP stream into it from the other node loses
//! nothing across the switch-over); a kill -9 of an agent leaves its guests on the
//! network and the restarted agent adopts them; an HA VM of a lost node restarts on the
//! other with its MAC and address. Deleting the VMs removes the
//! bridges, VXLAN devices and DHCP servers; `network delete` refuses while a VM uses it.
//!
//! Needs root (network namespaces, taps, bridges), dnsmasq and QEMU.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, dnsmasq_pids_under, free_port, ip, qemu_pids_under, stop_child, tail, tpm_cmd};
use serde_json::Value;

const BOOT: Duration = Duration::from_secs(120);
/// A name only the lab's upstream DNS server (on the host) knows, and its answer.
const UPSTREAM_NAME: &str = "upstream.novacron.test";
const UPSTREAM_ADDR: &str = "198.18.9.9";

/// The lab's upstream DNS server's pid file, outside the lab's directory.
fn upstream_pid_file() -> PathBuf {
    std::env::temp_dir().join(format!("nc-upstream-dns-{}.pid", std::process::id()))
}

/// A named network namespace, deleted on drop (its veth ends go with it).
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ncov-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    /// The names of the links in the namespace.
    fn links(&self) -> Vec<String> {
        let path = PathBuf::from("/run/netns").join(&self.name);
        let file = std::fs::File::open(path).expect("open netns");
        novacron_net::netns::run_in(&file, || {
            // /sys shows the namespace it was mounted in; list through netlink's view
            // via `ip` run from this thread's namespace instead.
            let out = Command::new("ip")
                .args(["-o", "link", "show"])
                .output()
                .expect("ip link");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let name = l.split(": ").nth(1)?;
                    Some(name.split('@').next()?.to_string())
                })
                .collect()
        })
        .expect("enter the namespace")
    }
}

impl Netns {
    /// Makes `nameserver` the resolver of processes started by `ip netns exec` here (it
    /// mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf for them).
    fn set_resolver(&self, nameserver: &str) {
        let dir = Path::new("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir).expect("/etc/netns dir");
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\n"),
        )
        .expect("resolv.conf");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.name));
    }
}

/// The control plane in the host namespace, agents in namespaces `n1` and `n2`.
struct Lab {
    dir: tempfile::TempDir,
    config: PathBuf,
    server: Option<Child>,
    agents: Vec<Child>,
    url: String,
    token: String,
    upstream_dns: Child,
    // Dropped after the processes: declared last.
    _ns: Vec<Netns>,
}

impl Lab {
    fn start() -> (Lab, String) {
        let dir = tempfile::Builder::new()
            .prefix("nc-overlay-")
            .tempdir_in(
                std::env::var_os("NOVACRON_TEST_DIR")
                    .map_or_else(std::env::temp_dir, PathBuf::from),
            )
            .expect("tempdir");
        std::fs::set_permissions(
            dir.path(),
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o711),
        )
        .expect("chmod");
        let n1 = Netns::new("n1");
        let n2 = Netns::new("n2");
        let tag = std::process::id() % 10000;
        // Control links host <-> node (the API), and the underlay n1 <-> n2 (the VTEPs).
        let (h1, h2) = (format!("ncovh1-{tag}"), format!("ncovh2-{tag}"));
        ip(&[
            "link", "add", &h1, "type", "veth", "peer", "name", "ctl", "netns", &n1.name,
        ]);
        ip(&[
            "link", "add", &h2, "type", "veth", "peer", "name", "ctl", "netns", &n2.name,
        ]);
        ip(&["addr", "add", "198.18.1.1/24", "dev", &h1]);
        ip(&["addr", "add", "198.18.2.1/24", "dev", &h2]);
        ip(&["link", "set", &h1, "up"]);
        ip(&["link", "set", &h2, "up"]);
        for (ns, addr, gw) in [
            (&n1, "198.18.1.2/24", "198.18.1.1"),
            (&n2, "198.18.2.2/24", "198.18.2.1"),
        ] {
            ip(&["-n", &ns.name, "addr", "add", addr, "dev", "ctl"]);
            ip(&["-n", &ns.name, "link", "set", "ctl", "up"]);
            ip(&["-n", &ns.name, "route", "add", "198.18.0.0/15", "via", gw]);
        }
        ip(&[
            "-n", &n1.name, "link", "add", "under", "type", "veth", "peer", "name", "under",
            "netns", &n2.name,
        ]);
        ip(&[
            "-n",
            &n1.name,
            "addr",
            "add",
            "198.18.0.1/30",
            "dev",
            "under",
        ]);
        ip(&[
            "-n",
            &n2.name,
            "addr",
            "add",
            "198.18.0.2/30",
            "dev",
            "under",
        ]);
        ip(&["-n", &n1.name, "link", "set", "under", "up"]);
        ip(&["-n", &n2.name, "link", "set", "under", "up"]);
        // What crosses the underlay into n2: VXLAN (must be none, the sites differ) and the
        // tunnel's datagrams.
        let wire = "table inet wire {\n chain c {\n type filter hook prerouting priority -400;\n \
            iifname \"under\" udp dport 4789 counter\n \
            iifname \"under\" udp dport 51820 counter\n }\n}\n";
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &n2.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nft");
        {
            use std::io::Write;
            nft.stdin
                .take()
                .expect("stdin")
                .write_all(wire.as_bytes())
                .expect("nft script");
        }
        assert!(nft.wait().expect("nft").success());
        // Each agent reaches the other's advertised address (live migration connects agent
        // to agent) over the underlay; the host forwards nothing.
        for (ns, other, via) in [
            (&n1, "198.18.2.2/32", "198.18.0.2"),
            (&n2, "198.18.1.2/32", "198.18.0.1"),
        ] {
            ip(&[
                "-n", &ns.name, "route", "add", other, "via", via, "dev", "under",
            ]);
        }

        // The nodes' upstream DNS server: a dnsmasq on the host's end of n1's control link
        // that knows one name. The agents (and their dnsmasq) resolve through it.
        let upstream = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
            ])
            .args([
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=198.18.1.1",
            ])
            .args(["--port=53", "--user=root", "--log-facility=-"])
            .arg(format!("--address=/{UPSTREAM_NAME}/{UPSTREAM_ADDR}"))
            // Not under the lab's directory: the nodes' own dnsmasq are counted there. (Never
            // /dev/null: dnsmasq replaces its pid file with a new one.)
            .arg(format!("--pid-file={}", upstream_pid_file().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the upstream dnsmasq");
        n1.set_resolver("198.18.1.1");
        n2.set_resolver("198.18.1.1");

        let config = dir.path().join("cli.json");
        let port = free_port();
        let mut server = Command::new(BIN)
            .args(["server", "-o", "json", "--san", "198.18.1.1", "--listen"])
            .arg(format!("0.0.0.0:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("cp"))
            .env("NOVACRON_CONFIG", &config)
            .env("NOVACRON_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("server.log")).expect("log"),
            ))
            .spawn()
            .expect("start server");
        let stdout = server.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let mut lab = Lab {
            dir,
            config,
            server: Some(server),
            agents: vec![],
            url: String::new(),
            token: String::new(),
            upstream_dns: upstream,
            _ns: vec![n1, n2],
        };
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("server did not start: {}", lab.log("server")));
        let v: Value = serde_json::from_str(&line).expect("summary");
        let token = v["join_token"].as_str().expect("token").to_string();
        let url = format!("https://198.18.1.1:{port}");
        lab.url = url;
        lab.token = token.clone();
        for i in 0..2 {
            lab.spawn_agent(i, false);
        }
        (lab, token)
    }

    /// Starts agent `n{i+1}` in its namespace (appending to its log when `again`).
    fn spawn_agent(&mut self, i: usize, again: bool) {
        let (addr, vtep, site) = [
            ("198.18.1.2", "198.18.0.1", "east"),
            ("198.18.2.2", "198.18.0.2", "west"),
        ][i];
        let name = format!("n{}", i + 1);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(again)
            .write(true)
            .truncate(!again)
            .open(self.dir.path().join(format!("{name}.log")))
            .expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self._ns[i].name, BIN, "agent", "--server"])
            .arg(&self.url)
            .args(["--join-token", &self.token, "--name", &name])
            .args(["--listen", &format!("{addr}:0"), "--advertise", addr])
            .args(["--vtep-address", vtep, "--site", site, "--data-dir"])
            .arg(self.dir.path().join(&name))
            .env("NOVACRON_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start agent");
        if again {
            self.agents[i] = child;
        } else {
            self.agents.push(child);
        }
    }

    /// kill -9 of agent `n{i+1}` (its QEMU processes keep running).
    fn kill_agent(&mut self, i: usize) {
        let agent = &mut self.agents[i];
        agent.kill().expect("kill agent");
        agent.wait().expect("reap agent");
    }

    /// kill -9 of agent `n{i+1}`, then a new one.
    fn restart_agent(&mut self, i: usize) {
        self.kill_agent(i);
        self.spawn_agent(i, true);
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        ["server", "n1", "n2"]
            .iter()
            .map(|n| format!("\n--- {n} ---\n{}", tail(&self.log(n), 30)))
            .collect()
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("NOVACRON_CONFIG", &self.config)
            .env_remove("NOVACRON_URL")
            .env_remove("NOVACRON_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("run the CLI")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "`novacron {}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "`novacron {}` succeeded",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("JSON")
    }

    fn console(&self, vm: &str) -> String {
        self.ok(&["vm", "console", vm, "--tail", "--bytes", "1M"])
    }

    fn wait_console(&self, vm: &str, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let log = self.console(vm);
            if log.contains(needle) {
                return log;
            }
            assert!(
                start.elapsed() < timeout,
                "{needle:?} not on the console of {vm} after {timeout:?}:\n{}{}",
                tail(&log, 30),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Types a command line into the guest's serial console.
    fn type_in(&self, vm: &str, line: &str) {
        use std::io::Write;
        let mut child = Command::new(BIN)
            .args(["vm", "console", vm])
            .env("NOVACRON_CONFIG", &self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("console");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{line}\n").as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("console");
        assert!(
            out.status.success(),
            "console: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `cmd` in the guest and waits for its exit status, printed as `<tag>-rc-<N>`.
    fn guest_rc(&self, vm: &str, tag: &str, cmd: &str, timeout: Duration) -> i32 {
        // `$((0))` keeps the echoed command line from matching the answer.
        self.type_in(
            vm,
            &format!("{cmd} >/dev/null 2>&1; echo {tag}-rc$((0))-$?"),
        );
        let log = self.wait_console(vm, &format!("{tag}-rc0-"), timeout);
        let at = log.rfind(&format!("{tag}-rc0-")).expect("found") + tag.len() + 5;
        log[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("exit status")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for a in &mut self.agents {
            stop_child(a, Duration::from_secs(5));
        }
        if let Some(s) = &mut self.server {
            stop_child(s, Duration::from_secs(5));
        }
        stop_child(&mut self.upstream_dns, Duration::from_secs(5));
        let _ = std::fs::remove_file(upstream_pid_file());
        // QEMU and dnsmasq outlive their agent on purpose: end the ones this test started.
        let mut pids = qemu_pids_under(self.dir.path());
        pids.extend(dnsmasq_pids_under(self.dir.path()));
        for pid in pids {
            // SAFETY: kill(2) of a process this test started (its command line names our dir).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

fn wait_running(lab: &Lab, vm: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = lab.json(&["vm", "show", vm]);
        if v["state"] == "running" {
            return v;
        }
        assert!(
            start.elapsed() < BOOT,
            "VM {vm} not running: {v}{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn guests_on_two_nodes_reach_each_other_over_the_overlay_and_no_one_else() {
    if !Path::new("/usr/sbin/dnsmasq").exists()
        && Command::new("dnsmasq").arg("--version").output().is_err()
    {
        panic!("dnsmasq is missing: run scripts/deps.sh test");
    }
    let (mut lab, _) = Lab::start();
    let start = Instant::now();
    while lab.json(&["node", "list"]).as_array().map_or(0, Vec::len) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "agents did not join{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let n1 = lab.json(&["node", "show", "n1"]);
    assert_eq!(n1["vtep_address"], "198.18.0.1", "{n1}");
    assert_eq!(n1["site"], "east", "{n1}");
    assert_eq!(n1["tunnel"]["port"], 51820, "{n1}");
    assert_eq!(
        n1["tunnel"]["public_key"].as_str().map(str::len),
        Some(44),
        "{n1}"
    );
    let key = lab.dir.path().join("n1/tunnel.key");
    let mode = std::fs::metadata(&key).expect("tunnel key").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    lab.ok(&["image", "build-tiny", "tiny"]);
    lab.ok(&[
        "network",
        "create",
        "app",
        "--subnet",
        "10.77.0.0/24",
        "--nat",
        "--dns",
    ]);
    lab.ok(&["network", "create", "other", "--subnet", "10.78.0.0/24"]);
    // Two sites: the default MTU leaves room for the tunnel.
    assert_eq!(lab.json(&["network", "show", "app"])["mtu"], 1390);

    let create = |lab: &Lab, vm: &str, node: &str, extra: &[&str]| {
        let mut a = vec![
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
            node,
            "--no-wait",
        ];
        a.extend(extra);
        lab.ok(&a);
    };
    // a1 has a disk: it is backed up and restored below.
    create(&lab, "a1", "n1", &["--network", "app", "--disk", "32M"]);
    create(
        &lab,
        "a2",
        "n2",
        &["--network", "app", "--ip", "10.77.0.50"],
    );
    // o1 has a disk: it is cloned below.
    create(&lab, "o1", "n2", &["--network", "other", "--disk", "32M"]);

    // An address outside the subnet or taken: refused, nothing created.
    let e = lab.fails(&[
        "vm",
        "create",
        "bad",
        "--image",
        "tiny",
        "--node",
        "n1",
        "--network",
        "app",
        "--ip",
        "10.99.0.5",
    ]);
    assert!(e.contains("not in subnet 10.77.0.0/24"), "{e}");
    let e = lab.fails(&[
        "vm",
        "create",
        "bad",
        "--image",
        "tiny",
        "--node",
        "n1",
        "--network",
        "app",
        "--ip",
        "10.77.0.50",
    ]);
    assert!(e.contains("already taken"), "{e}");
    assert!(!lab.ok(&["vm", "list"]).contains("bad"));

    let a1 = wait_running(&lab, "a1");
    let a2 = wait_running(&lab, "a2");
    wait_running(&lab, "o1");
    assert_eq!(a1["nics"][0]["network"], "app", "{a1}");
    assert_eq!(
        a1["nics"][0]["ips"][0], "10.77.0.2",
        "lowest free after the gateway: {a1}"
    );
    assert_eq!(a2["nics"][0]["ips"][0], "10.77.0.50", "{a2}");
    let mac = a1["nics"][0]["mac"].as_str().expect("mac").to_string();
    assert!(mac.starts_with("02:"), "locally administered: {mac}");
    let shown = lab.ok(&["vm", "show", "a1"]);
    assert!(
        shown.contains(&mac) && shown.contains("10.77.0.2"),
        "{shown}"
    );

    let e = lab.fails(&["network", "delete", "app"]);
    assert!(e.contains("a1") && e.contains("a2"), "names the VMs: {e}");

    for vm in ["a1", "a2", "o1"] {
        lab.wait_console(vm, "NOVACRON-GUEST-READY", BOOT);
    }
    // DHCP from the node's dnsmasq gave each guest its IPAM address.
    assert_eq!(
        lab.guest_rc(
            "a1",
            "a1addr",
            "ip addr show eth0 | grep -q 'inet 10.77.0.2/24'",
            BOOT
        ),
        0,
        "{}",
        lab.console("a1")
    );
    assert_eq!(
        lab.guest_rc(
            "a2",
            "a2addr",
            "ip addr show eth0 | grep -q 'inet 10.77.0.50/24'",
            BOOT
        ),
        0,
        "{}",
        lab.console("a2")
    );
    // Across nodes, over VXLAN between the two namespaces.
    assert_eq!(
        lab.guest_rc("a1", "ping12", "ping -c 3 -W 3 10.77.0.50", BOOT),
        0,
        "{}",
        lab.console("a1")
    );
    assert_eq!(
        lab.guest_rc("a2", "ping21", "ping -c 3 -W 3 10.77.0.2", BOOT),
        0,
        "{}",
        lab.console("a2")
    );
    // ... sealed: the underlay carried the tunnel's datagrams and no VXLAN at all.
    let wire = wire_counts(&lab);
    assert_eq!(wire.0, 0, "VXLAN crossed between sites in the clear");
    assert!(wire.1 > 0, "nothing crossed the tunnel");
    // `app` NATs: each guest reaches the host side of its own node's link, through the
    // gateway every node holds (the answer comes back only to the node's masqueraded
    // address).
    for (vm, tag, host) in [("a1", "nat1", "198.18.1.1"), ("a2", "nat2", "198.18.2.1")] {
        assert_eq!(
            lab.guest_rc(vm, tag, &format!("ping -c 2 -W 3 {host}"), BOOT),
            0,
            "{}",
            lab.console(vm)
        );
    }
    // `app` has DNS: a1 (n1) finds a2 (n2) by name at its own node's gateway.
    assert_eq!(
        lab.guest_rc(
            "a1",
            "dns12",
            "nslookup a2.app 10.77.0.1 | grep -q 10.77.0.50",
            BOOT
        ),
        0,
        "{}",
        lab.console("a1")
    );
    // And, as `app` NATs, other names through its node's resolvers (the lab's upstream
    // server on the host).
    assert_eq!(
        lab.guest_rc(
            "a2",
            "upstream2",
            &format!("nslookup {UPSTREAM_NAME} 10.77.0.1 | grep -q {UPSTREAM_ADDR}"),
            BOOT
        ),
        0,
        "{}{}",
        lab.console("a2"),
        lab.logs()
    );
    security_groups_filter_between_guests_and_follow_membership(&lab, &a2);

    // From another network, even with an address in app's subnet: nothing answers.
    assert_ne!(
        lab.guest_rc(
            "o1",
            "iso",
            "ip addr add 10.77.0.99/24 dev eth0; ping -c 3 -W 2 10.77.0.50",
            BOOT
        ),
        0,
        "{}",
        lab.console("o1")
    );

    // A node's dnsmasq that dies is started again by its agent (within its 2 s pause),
    // in time for the DHCP below.
    let before = dnsmasq_pids_under(lab.dir.path());
    assert!(!before.is_empty());
    for pid in &before {
        // SAFETY: kill(2) on a dnsmasq of this test's own nodes (found under its directory).
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = dnsmasq_pids_under(lab.dir.path());
        if now.len() == before.len() && now.iter().all(|p| !before.contains(p)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "killed dnsmasq {before:?} not all replaced: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // `vm nic add` gives o1 a second NIC, on app, while it runs: the address IPAM chose
    // comes by DHCP from n2's dnsmasq, and a1 on the other node answers over VXLAN.
    let out = lab.json(&[
        "vm",
        "nic",
        "add",
        "o1",
        "--network",
        "app",
        "--ip",
        "10.77.0.60",
    ]);
    assert_eq!(out["operation"]["state"], "succeeded", "{out}");
    assert_eq!(out["nic"], "nic1", "{out}");
    assert_eq!(out["added"]["link"]["ips"][0], "10.77.0.60", "{out}");
    let added_mac = out["added"]["mac"].as_str().expect("mac").to_string();
    let e = lab.fails(&["vm", "nic", "add", "o1", "--network", "app"]);
    assert!(e.contains("already has a NIC on network app (nic1)"), "{e}");
    let e = lab.fails(&["network", "delete", "app"]);
    assert!(e.contains("o1"), "the added NIC uses app: {e}");
    let dhcp = format!(
        "ip addr del 10.77.0.99/24 dev eth0; i=$(for d in /sys/class/net/*; do [ \"$(cat $d/address)\" = {added_mac} ] && basename $d; done); udhcpc -i $i -s /etc/novacron/udhcpc.script -q -n -t 5 -T 2 && ip addr show $i | grep -q 'inet 10.77.0.60/24' && ping -c 3 -W 3 10.77.0.2"
    );
    assert_eq!(
        lab.guest_rc("o1", "added", &dhcp, BOOT),
        0,
        "{}",
        lab.console("o1")
    );
    // Removed, its address is free again: asking for it once more gets it.
    let out = lab.json(&["vm", "nic", "remove", "o1", "nic1", "--force"]);
    assert_eq!(out["operation"]["state"], "succeeded", "{out}");
    assert!(lab.json(&["vm", "show", "o1"])["added_nics"].is_null());
    let out = lab.json(&[
        "vm",
        "nic",
        "add",
        "o1",
        "--network",
        "app",
        "--ip",
        "10.77.0.60",
    ]);
    assert_eq!(out["operation"]["state"], "succeeded", "{out}");
    // A clone of o1 has the added NIC too, in the same port and on the same network, with
    // a MAC and an address of its own from IPAM (o1 still holds 10.77.0.60).
    lab.ok(&["vm", "stop", "o1", "--force"]);
    let start = Instant::now();
    while lab.json(&["vm", "show", "o1"])["state"] != "stopped" {
        assert!(start.elapsed() < BOOT, "o1 does not stop{}", lab.logs());
        std::thread::sleep(Duration::from_millis(300));
    }
    lab.ok(&["vm", "clone", "o1", "o2"]);
    let (o1, o2) = (
        lab.json(&["vm", "show", "o1"]),
        lab.json(&["vm", "show", "o2"]),
    );
    let (nic, copy) = (&o1["added_nics"][0], &o2["added_nics"][0]);
    assert_eq!(copy["name"], "nic1", "{o2}");
    assert_eq!(copy["port"], nic["port"], "{o2}");
    assert_eq!(copy["link"]["network"], "app", "{o2}");
    assert_ne!(copy["mac"], nic["mac"], "{o2}");
    let ip = copy["link"]["ips"][0]
        .as_str()
        .expect("an address")
        .to_string();
    assert!(ip.starts_with("10.77.0.") && ip != "10.77.0.60", "{o2}");
    assert_ne!(o2["nics"][0]["ips"][0], o1["nics"][0]["ips"][0], "{o2}");
    lab.ok(&["vm", "delete", "o2", "--force"]);
    lab.ok(&["vm", "nic", "remove", "o1", "nic1", "--force"]);

    // A backup of a1 restored as a new VM on the other node keeps a1's overlay NIC, with a
    // MAC and address of its own (a1 still holds its own), and the copy reaches a2.
    let repo_dir = lab.dir.path().join("backups");
    lab.ok(&[
        "backup",
        "repo",
        "add",
        "r1",
        "--path",
        repo_dir.to_str().expect("utf-8 path"),
    ]);
    let op = lab.json(&["backup", "create", "a1", "--repo", "r1"]);
    assert_eq!(op["state"], "succeeded", "{op}");
    let backups = lab.json(&["backup", "list", "a1"]);
    let id = backups[0]["id"].as_str().expect("backup id").to_string();
    let op = lab.json(&["backup", "restore", &id, "--as", "a3", "--node", "n2"]);
    assert_eq!(op["state"], "succeeded", "{op}");
    let a3 = wait_running(&lab, "a3");
    assert_eq!(a3["nics"][0]["network"], "app", "{a3}");
    let mac3 = a3["nics"][0]["mac"].as_str().expect("mac").to_string();
    assert_ne!(mac3, mac, "the restored VM has a MAC of its own: {a3}");
    let ip3 = a3["nics"][0]["ips"][0].as_str().expect("ip").to_string();
    assert!(
        ip3.starts_with("10.77.0.") && ip3 != "10.77.0.2" && ip3 != "10.77.0.50",
        "a free address of app: {a3}"
    );
    lab.wait_console("a3", "NOVACRON-GUEST-READY", BOOT);
    assert_eq!(
        lab.guest_rc(
            "a3",
            "a3addr",
            &format!("ip addr show eth0 | grep -q 'inet {ip3}/24' && ping -c 3 -W 3 10.77.0.50"),
            BOOT
        ),
        0,
        "{}",
        lab.console("a3")
    );

    // A bandwidth limit on the running a3 shapes its tap on n2 (node index 1) at once.
    let e = lab.fails(&["vm", "set", "a3", "--bandwidth", "20M"]);
    assert!(e.contains("e.g. 200mbit"), "{e}");
    let set = lab.json(&["vm", "set", "a3", "--bandwidth", "20mbit"]);
    assert_eq!(set["vm"]["bandwidth_bps"], 20_000_000, "{set}");
    assert!(lab.ok(&["vm", "show", "a3"]).contains("20mbit each way"));
    wait_qdisc(&lab, 1, &mac3, "tbf at 20Mbit", |q| {
        q.contains("tbf") && q.contains("rate 20Mbit")
    });
    wait_ruleset(&lab, 1, "a3's upload policer and source pin", |r| {
        r.contains("table bridge novacron_ports")
            && r.contains(&format!(
                "ether saddr {mac3} limit rate over 2500000 bytes/second"
            ))
            && r.contains(&format!("ether saddr != {mac3} drop"))
    });

    // Live migration keeps the network: a3 moves to n1 with its MAC and address, and the
    // guests on both nodes reach it there over the overlay.
    lab.ok(&["vm", "migrate", "a3", "--to", "n1"]);
    let moved = wait_running(&lab, "a3");
    assert_eq!(moved["node"], "n1", "{moved}");
    assert_eq!(moved["nics"][0]["mac"], a3["nics"][0]["mac"], "{moved}");
    assert_eq!(moved["nics"][0]["ips"][0], ip3.as_str(), "{moved}");
    for (from, tag) in [("a2", "a2to3"), ("a1", "a1to3")] {
        assert_eq!(
            lab.guest_rc(from, tag, &format!("ping -c 3 -W 3 {ip3}"), BOOT),
            0,
            "{}{}",
            lab.console(from),
            lab.logs()
        );
    }
    assert_eq!(
        lab.guest_rc(
            "a3",
            "a3after",
            &format!("ip addr show eth0 | grep -q 'inet {ip3}/24' && ping -c 3 -W 3 10.77.0.50"),
            BOOT
        ),
        0,
        "{}",
        lab.console("a3")
    );
    // Its name follows it: a2 (n2) resolves it at n2's gateway.
    assert_eq!(
        lab.guest_rc(
            "a2",
            "dns23",
            &format!("nslookup a3.app 10.77.0.1 | grep -q {ip3}"),
            BOOT
        ),
        0,
        "{}",
        lab.console("a2")
    );
    // Its limit moved with it: n1 shapes the new tap, n2 holds no policer for it.
    wait_qdisc(&lab, 0, &mac3, "tbf at 20Mbit", |q| {
        q.contains("tbf") && q.contains("rate 20Mbit")
    });
    wait_ruleset(&lab, 1, "no policer or pin for a3", |r| !r.contains(&mac3));
    lab.ok(&["vm", "set", "a3", "--bandwidth", "none"]);
    wait_qdisc(&lab, 0, &mac3, "no tbf", |q| !q.contains("tbf"));
    wait_ruleset(&lab, 0, "no policer, a3 still pinned", |r| {
        !r.contains("limit rate over") && r.contains(&format!("ether saddr != {mac3} drop"))
    });
    // Its default route, the same gateway address and MAC, now leads out through n1.
    assert_eq!(
        lab.guest_rc("a3", "a3nat", "ping -c 2 -W 3 198.18.1.1", BOOT),
        0,
        "{}",
        lab.console("a3")
    );

    // A TCP stream from a1 (n1) into a3 survives a3's live migration back to n2: every
    // line arrives, in order, over one connection.
    // (busybox nc ends at the end of its stdin: a `sleep` keeps it open, not the console)
    lab.type_in("a3", "sleep 90 | nc -l -p 5000 > /tmp/got &");
    std::thread::sleep(Duration::from_secs(1));
    lab.type_in(
        "a1",
        &format!(
            "(i=0; while [ $i -lt 150 ]; do echo line$i; i=$((i+1)); sleep 0.1; done) | nc {ip3} 5000 &"
        ),
    );
    std::thread::sleep(Duration::from_secs(2));
    lab.ok(&["vm", "migrate", "a3", "--to", "n2"]);
    assert_eq!(wait_running(&lab, "a3")["node"], "n2");
    // The stream is still under way after the switch-over (not done before it started).
    assert_eq!(
        lab.guest_rc(
            "a3",
            "midstream",
            "[ $(grep -c ^line /tmp/got) -lt 150 ]",
            BOOT
        ),
        0,
        "{}",
        lab.console("a3")
    );
    assert_eq!(
        lab.guest_rc(
            "a3",
            "tcpgot",
            "i=0; while [ $i -lt 60 ] && ! grep -qx line149 /tmp/got; do sleep 1; i=$((i+1)); done; \
             [ $(grep -c ^line /tmp/got) = 150 ] && [ $(tail -n1 /tmp/got) = line149 ]",
            BOOT
        ),
        0,
        "{}{}",
        lab.console("a3"),
        lab.logs()
    );

    // kill -9 of n2's agent: its guests keep their network, and the restarted agent adopts
    // them without breaking it.
    let a2_pid = lab.json(&["vm", "show", "a2"])["pid"].clone();
    assert!(a2_pid.is_u64(), "{a2_pid}");
    lab.restart_agent(1);
    let start = Instant::now();
    while lab.json(&["node", "show", "n2"])["state"] != "ready"
        || start.elapsed() < Duration::from_secs(3)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "n2 not ready again{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let a2 = wait_running(&lab, "a2");
    assert_eq!(a2["pid"], a2_pid, "the same QEMU, adopted: {a2}");
    for (from, to, tag) in [
        ("a1", "10.77.0.50", "after12"),
        ("a3", "10.77.0.50", "after32"),
    ] {
        assert_eq!(
            lab.guest_rc(from, tag, &format!("ping -c 3 -W 3 {to}"), BOOT),
            0,
            "{}{}",
            lab.console(from),
            lab.logs()
        );
    }

    // HA restart keeps the network and the TPM: n2 is lost (its agent killed for good, so its watchdog
    // fences h1), h1 restarts on n1 with the same MAC and address, and a1 reaches it there.
    let shared = lab.dir.path().join("shared");
    std::fs::create_dir(&shared).expect("shared dir");
    lab.ok(&[
        "storage",
        "add",
        "shared",
        "--path",
        shared.to_str().expect("utf-8 path"),
    ]);
    create(
        &lab,
        "h1",
        "n2",
        &[
            "--network",
            "app",
            "--storage",
            "shared",
            "--disk",
            "32M",
            "--ha",
            "restart",
            "--tpm",
        ],
    );
    let h1 = wait_running(&lab, "h1");
    let ip_h = h1["nics"][0]["ips"][0].as_str().expect("ip").to_string();
    lab.wait_console("h1", "NOVACRON-GUEST-READY", BOOT);
    // And its TPM's state: an NV index defined here is there after the restart.
    let tpm_ok = |command: &[u8], answer: &str| {
        format!(
            "r=$({}); case \"$r\" in {answer}*) true;; *) false;; esac",
            tpm_cmd::exchange(command)
        )
    };
    assert_eq!(
        lab.guest_rc(
            "h1",
            "nvdef",
            &tpm_ok(&tpm_cmd::nv_define(), "80020000001300000000"),
            BOOT
        ),
        0,
        "{}",
        lab.console("h1")
    );
    lab.kill_agent(1);
    let start = Instant::now();
    let moved = loop {
        let v = lab.json(&["vm", "show", "h1"]);
        if v["node"] == "n1" && v["state"] == "running" {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "h1 did not restart on n1: {v}{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(moved["nics"][0]["mac"], h1["nics"][0]["mac"], "{moved}");
    assert_eq!(moved["nics"][0]["ips"][0], ip_h.as_str(), "{moved}");
    lab.wait_console("h1", "NOVACRON-GUEST-READY", BOOT);
    assert_eq!(
        lab.guest_rc(
            "h1",
            "h1addr",
            &format!("ip addr show eth0 | grep -q 'inet {ip_h}/24' && ping -c 3 -W 3 10.77.0.2"),
            BOOT
        ),
        0,
        "{}{}",
        lab.console("h1"),
        lab.logs()
    );
    assert_eq!(
        lab.guest_rc(
            "h1",
            "nvkept",
            &tpm_ok(&tpm_cmd::nv_read_public(), "8001????????00000000"),
            BOOT
        ),
        0,
        "{}",
        lab.console("h1")
    );
    // n2 comes back (its non-HA guest a2 kept running there) for the cleanup below.
    lab.spawn_agent(1, true);

    // Deleting the VMs frees their addresses and removes the devices and DHCP servers.
    for vm in ["a1", "a2", "o1", "a3", "h1"] {
        lab.ok(&["vm", "delete", vm, "--force"]);
    }
    let start = Instant::now();
    loop {
        let left: Vec<String> = lab
            ._ns
            .iter()
            .flat_map(Netns::links)
            .filter(|l| l.starts_with("ncbr") || l.starts_with("ncvx"))
            .collect();
        if left.is_empty() && dnsmasq_pids_under(lab.dir.path()).is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "left behind: {left:?}{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    lab.ok(&["network", "delete", "app"]);
    lab.ok(&["network", "delete", "other"]);
}

/// Packets into n2 from the underlay so far: (VXLAN, tunnel datagrams).
fn wire_counts(lab: &Lab) -> (u64, u64) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab._ns[1].name,
            "nft",
            "list",
            "table",
            "inet",
            "wire",
        ])
        .output()
        .expect("nft");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |port: &str| -> u64 {
        text.lines()
            .find(|l| l.contains(&format!("udp dport {port} ")))
            .and_then(|l| l.split("counter packets ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter for port {port}: {text}"))
    };
    (count("4789"), count("51820"))
}

/// The nftables ruleset of node `i`'s namespace (empty when it has none).
fn node_ruleset(lab: &Lab, i: usize) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab._ns[i].name, "nft", "list", "ruleset"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tc qdisc show` of the tap that carries the guest NIC with MAC `mac` on node `i` (found
/// by its alias); None while there is no such tap.
fn tap_qdisc(lab: &Lab, i: usize, mac: &str) -> Option<String> {
    let ns = &lab._ns[i].name;
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ip", "-j", "link", "show"])
        .output()
        .expect("ip link");
    let links: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let alias = format!("nc-guest={mac}");
    let tap = links
        .as_array()?
        .iter()
        .find(|l| l["ifalias"] == alias.as_str())?["ifname"]
        .as_str()?
        .to_string();
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "tc", "qdisc", "show", "dev", &tap])
        .output()
        .expect("tc");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until the qdisc of `mac`'s tap on node `i` satisfies `ok`.
fn wait_qdisc(lab: &Lab, i: usize, mac: &str, what: &str, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let q = tap_qdisc(lab, i, mac);
        if q.as_deref().is_some_and(&ok) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node n{}: {what} not on the tap of {mac} within 20 s: {q:?}{}",
            i + 1,
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until node `i`'s ruleset satisfies `ok`.
fn wait_ruleset(lab: &Lab, i: usize, what: &str, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rules = node_ruleset(lab, i);
        if ok(&rules) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node n{}: {what} not applied within 20 s:\n{rules}{}",
            i + 1,
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// a2 (on n2) in group `web`, which takes in ICMP only from group `lb`: a1 (n1) cannot
/// ping it until a1 joins `lb`, while a2's own pings out get their answers (stateful);
/// groups in use cannot be deleted, a rule naming an unknown group is refused; with no
/// groups left, n2's table is gone.
fn security_groups_filter_between_guests_and_follow_membership(lab: &Lab, a2: &Value) {
    let a2_mac = a2["nics"][0]["mac"].as_str().expect("mac").to_string();
    lab.ok(&["security-group", "create", "web"]);
    lab.ok(&["security-group", "create", "lb"]);
    let added = lab.json(&[
        "security-group",
        "rule",
        "add",
        "web",
        "--in",
        "icmp",
        "--from-group",
        "lb",
    ]);
    assert_eq!(added["rule"]["group"], "lb", "{added}");
    let e = lab.fails(&[
        "security-group",
        "rule",
        "add",
        "web",
        "--in",
        "tcp/80",
        "--from-group",
        "nope",
    ]);
    assert!(e.contains("nope"), "{e}");
    let e = lab.fails(&["vm", "set-security-groups", "a2", "web", "nope"]);
    assert!(e.contains("no security group \"nope\""), "{e}");
    assert!(lab.json(&["vm", "show", "a2"])["security_groups"].is_null());

    let shown = lab.json(&["vm", "set-security-groups", "a2", "web"]);
    assert_eq!(shown["security_groups"][0], "web", "{shown}");
    wait_ruleset(lab, 1, "a2's port", |r| r.contains(&a2_mac));
    assert_ne!(
        lab.guest_rc("a1", "sgdeny", "ping -c 2 -W 2 10.77.0.50", BOOT),
        0,
        "a1 is not in lb: a2 must not answer\n{}",
        node_ruleset(lab, 1)
    );
    assert_eq!(
        lab.guest_rc("a2", "sgout", "ping -c 2 -W 3 10.77.0.2", BOOT),
        0,
        "a2 may send, and the answers come back\n{}",
        lab.console("a2")
    );

    lab.ok(&["vm", "set-security-groups", "a1", "lb"]);
    wait_ruleset(lab, 1, "lb's member 10.77.0.2", |r| r.contains("10.77.0.2"));
    assert_eq!(
        lab.guest_rc("a1", "sgallow", "ping -c 3 -W 3 10.77.0.50", BOOT),
        0,
        "a1 is in lb now\n{}",
        node_ruleset(lab, 1)
    );
    for (group, user) in [("web", "a2"), ("lb", "a1")] {
        let e = lab.fails(&["security-group", "delete", group]);
        assert!(e.contains(user), "{group} is in use: {e}");
    }

    lab.ok(&["vm", "set-security-groups", "a2"]);
    lab.ok(&["vm", "set-security-groups", "a1"]);
    wait_ruleset(lab, 1, "no table", |r| !r.contains("table inet novacron {"));
    wait_ruleset(lab, 0, "no table", |r| !r.contains("table inet novacron {"));
    let e = lab.fails(&["security-group", "delete", "lb"]);
    assert!(e.contains("web"), "web's rule names lb: {e}");
    let id = added["rule"]["id"].as_u64().expect("rule id").to_string();
    lab.ok(&["security-group", "rule", "delete", "web", &id]);
    lab.ok(&["security-group", "delete", "lb"]);
    lab.ok(&["security-group", "delete", "web"]);
    assert_eq!(lab.json(&["security-group", "list"]), serde_json::json!([]));
}
