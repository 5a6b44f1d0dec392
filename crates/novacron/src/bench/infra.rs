//! Scaffolding shared by the cluster benchmarks: a scratch directory, child processes that
//! are always killed, a real 3-member etcd on loopback, and small network topologies made
//! of namespaces on a bridge. Everything is torn down on drop, also after a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A scratch directory; every process whose command line mentions it is killed on drop.
pub struct Scratch {
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl Scratch {
    pub fn new(tag: &str) -> anyhow::Result<Scratch> {
        let base = std::env::var_os("NOVACRON_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("nc-{tag}-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // Agents' VMs run as users of their own, who pass through here to their files.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
                .with_context(|| format!("cannot open {} for passing", dir.display()))?;
        }
        super::interrupt::dir(dir.clone());
        Ok(Scratch {
            dir,
            children: vec![],
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Spawns `cmd` with stdout/stderr to `<name>.log` in the scratch dir; returns its pid.
    pub fn spawn(&mut self, name: &str, cmd: &mut Command) -> anyhow::Result<u32> {
        let log = std::fs::File::create(self.path(&format!("{name}.log")))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Spawns `cmd` and returns its first stdout line (stderr to `<name>.log`).
    pub fn spawn_first_line(
        &mut self,
        name: &str,
        cmd: &mut Command,
        timeout: Duration,
    ) -> anyhow::Result<(u32, String)> {
        let log = std::fs::File::create(self.path(&format!("{name}.log")))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("no stdout")?;
        self.children.push(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        match rx.recv_timeout(timeout) {
            Ok(line) => Ok((pid, line)),
            Err(_) => bail!(
                "{name} did not start within {timeout:?}; its log:\n{}",
                tail(&self.path(&format!("{name}.log")), 20)
            ),
        }
    }

    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        tail(&self.path(&format!("{name}.log")), lines)
    }
}

/// The CLI of a benchmark's cluster: `novacron ARGS` with the cluster's config, run inside
/// network namespace `netns` when the control plane is reachable only there.
pub struct Cli {
    pub exe: PathBuf,
    pub config: PathBuf,
    pub netns: Option<String>,
}

impl Cli {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        cmd.args(args)
            .env("NOVACRON_CONFIG", &self.config)
            .env_remove("NOVACRON_URL")
            .env_remove("NOVACRON_TOKEN");
        cmd
    }

    /// `novacron ARGS`; its standard output, or an error with its standard error.
    pub fn text(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command(args).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            bail!(
                "`novacron {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `novacron ARGS -o json`.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.text(&all)?;
        Ok(serde_json::from_str(&out).unwrap_or(serde_json::Value::Null))
    }

    pub fn vm(&self, name: &str) -> anyhow::Result<serde_json::Value> {
        self.run(&["vm", "show", name])
    }

    /// The last megabyte of `vm`'s serial console.
    pub fn console(&self, vm: &str) -> anyhow::Result<String> {
        self.text(&["vm", "console", vm, "--tail", "--bytes", "1M"])
    }

    /// Types `line` into `vm`'s serial console, as a user would.
    pub fn type_in(&self, vm: &str, line: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut child = self
            .command(&["vm", "console", vm])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("the console's stdin")?
            .write_all(format!("{line}\n").as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "typing into {vm}'s console failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Waits until `vm`'s console shows `needle`.
    pub fn wait_console(
        &self,
        vm: &str,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let start = Instant::now();
        loop {
            let log = self.console(vm)?;
            if log.contains(needle) {
                return Ok(log);
            }
            if start.elapsed() > timeout {
                let last: Vec<&str> = log.lines().rev().take(15).collect();
                bail!(
                    "{needle:?} not on {vm}'s console after {timeout:?}; it ends with:\n{}",
                    last.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Runs shell command `cmd` in `vm` through its console and returns its exit status.
    /// `tag` names this run's answer on the console (unique per VM).
    pub fn guest_rc(
        &self,
        vm: &str,
        tag: &str,
        cmd: &str,
        timeout: Duration,
    ) -> anyhow::Result<i32> {
        // `$((0))` keeps the echoed command line from matching the answer.
        self.type_in(
            vm,
            &format!("{cmd} >/dev/null 2>&1; echo {tag}-rc$((0))-$?"),
        )?;
        let answer = format!("{tag}-rc0-");
        let log = self.wait_console(vm, &answer, timeout)?;
        let at = log.rfind(&answer).map_or(0, |i| i + answer.len());
        log[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .with_context(|| format!("no exit status after {answer} on {vm}'s console"))
    }
}

/// Calls `f` every 200 ms until it says done; an error from it counts as not yet (the last
/// one is in the timeout's message).
pub fn wait_for(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    while Instant::now() < deadline {
        match f() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "timed out waiting for {what}{}",
        last_err.map(|e| format!(": {e}")).unwrap_or_default()
    )
}

pub fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// PIDs of processes whose command line contains `needle`.
pub fn pids_with(needle: &str) -> Vec<u32> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

pub fn kill9(pid: u32) {
    // SAFETY: kill(2) of a process this benchmark started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        let needle = self.dir.to_string_lossy().into_owned();
        for _ in 0..50 {
            let pids = pids_with(&needle);
            if pids.is_empty() {
                break;
            }
            for p in pids {
                kill9(p);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        if std::env::var_os("NOVACRON_KEEP_SCRATCH").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// How one attempt to start etcd ended, when it did not.
enum Attempt {
    /// A member could not bind its port: the members started (their pids) are to be ended.
    PortTaken(Vec<u32>),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Attempt {
    fn from(e: anyhow::Error) -> Attempt {
        Attempt::Failed(e)
    }
}

/// A real etcd cluster on loopback (Debian's etcd-server).
pub struct Etcd {
    pub client_urls: Vec<String>,
    pub pids: Vec<u32>,
}

impl Etcd {
    /// Starts `members` etcd members on loopback ports picked at random. Another process can
    /// take a picked port before etcd binds it; such an attempt is ended and retried on new
    /// ports.
    pub fn start(scratch: &mut Scratch, members: usize) -> anyhow::Result<Etcd> {
        let mut attempt = 0;
        loop {
            match Etcd::start_once(scratch, members, attempt) {
                Err(Attempt::PortTaken(pids)) if attempt < 2 => {
                    pids.into_iter().for_each(kill9);
                    attempt += 1;
                }
                Err(Attempt::PortTaken(pids)) => {
                    pids.into_iter().for_each(kill9);
                    bail!("etcd: its loopback ports kept being taken by other processes");
                }
                Err(Attempt::Failed(e)) => return Err(e),
                Ok(etcd) => return Ok(etcd),
            }
        }
    }

    fn start_once(scratch: &mut Scratch, members: usize, attempt: u32) -> Result<Etcd, Attempt> {
        let etcd = which("etcd").context("etcd is not installed: apt-get install etcd-server")?;
        let ports: Vec<(u16, u16)> = (0..members)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let mut pids = vec![];
        for (i, (client, peer)) in ports.iter().enumerate() {
            let data = scratch.path(&format!("etcd-m{i}-{attempt}"));
            let mut cmd = Command::new(&etcd);
            cmd.arg("--name")
                .arg(format!("m{i}"))
                .arg("--data-dir")
                .arg(&data)
                .arg("--listen-client-urls")
                .arg(format!("http://127.0.0.1:{client}"))
                .arg("--advertise-client-urls")
                .arg(format!("http://127.0.0.1:{client}"))
                .arg("--listen-peer-urls")
                .arg(format!("http://127.0.0.1:{peer}"))
                .arg("--initial-advertise-peer-urls")
                .arg(format!("http://127.0.0.1:{peer}"))
                .arg("--initial-cluster")
                .arg(initial.join(","))
                .arg("--initial-cluster-state")
                .arg("new")
                .arg("--initial-cluster-token")
                .arg(format!("nc-{}", std::process::id()))
                .arg("--heartbeat-interval")
                .arg("100")
                .arg("--election-timeout")
                .arg("1000")
                .arg("--auto-compaction-retention")
                .arg("1")
                .arg("--quota-backend-bytes")
                .arg((4u64 << 30).to_string());
            pids.push(scratch.spawn(&format!("etcd-m{i}-{attempt}"), &mut cmd)?);
        }
        let client_urls: Vec<String> = ports
            .iter()
            .map(|(c, _)| format!("127.0.0.1:{c}"))
            .collect();
        // Ready when every member answers /health.
        let deadline = Instant::now() + Duration::from_secs(30);
        for (c, _) in &ports {
            loop {
                if http_get_ok(*c, "/health") {
                    break;
                }
                let logs: Vec<String> = (0..ports.len())
                    .map(|i| scratch.log_tail(&format!("etcd-m{i}-{attempt}"), 20))
                    .collect();
                if logs.iter().any(|l| l.contains("address already in use")) {
                    return Err(Attempt::PortTaken(pids));
                }
                if Instant::now() > deadline {
                    return Err(Attempt::Failed(anyhow::anyhow!(
                        "etcd did not become healthy; log:\n{}",
                        logs.join("\n")
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(Etcd { client_urls, pids })
    }

    pub fn store_url(&self) -> String {
        format!("etcd://{}", self.client_urls.join(","))
    }
}

fn http_get_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_millis(300),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.") && buf.contains(" 200 ") && buf.contains("\"health\":\"true\"")
}

pub fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(prog))
            .find(|f| f.is_file())
    })
}

/// Runs `ip ARGS` (iproute2); its stderr is the error.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Network namespaces on one bridge: the host is `.1` on the bridge, namespace i is `.(i+2)`
/// in a /24 of 198.19.0.0/16 (inside the benchmarking range 198.18.0.0/15).
pub struct Lan {
    pub bridge: String,
    pub host_ip: String,
    pub namespaces: Vec<(String, String)>,
}

impl Lan {
    pub fn create(tag: u32, members: usize) -> anyhow::Result<Lan> {
        let subnet = 10 + tag % 240;
        // Not `ncbr*`: those are the overlay networks' bridges (novacron-net).
        let bridge = format!("nclan{}", tag % 100_000);
        let host_ip = format!("198.19.{subnet}.1");
        let mut lan = Lan {
            bridge: bridge.clone(),
            host_ip: host_ip.clone(),
            namespaces: vec![],
        };
        let _ = ip(&["link", "del", &bridge]);
        super::interrupt::link(&bridge);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..members {
            let ns = format!("{bridge}n{i}");
            let host_end = format!("{bridge}h{i}");
            let ns_end = format!("{bridge}v{i}");
            let addr = format!("198.19.{subnet}.{}", i + 2);
            let _ = ip(&["netns", "del", &ns]);
            super::interrupt::netns(&ns);
            ip(&["netns", "add", &ns])?;
            lan.namespaces.push((ns.clone(), addr.clone()));
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
            ])?;
            ip(&["link", "set", &ns_end, "netns", &ns])?;
            ip(&["link", "set", &host_end, "master", &bridge, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &ns_end,
            ])?;
            ip(&["-n", &ns, "link", "set", &ns_end, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lan)
    }

    /// Cuts namespace `i` off the network (or reconnects it).
    pub fn set_connected(&self, i: usize, up: bool) -> anyhow::Result<()> {
        let host_end = format!("{}h{i}", self.bridge);
        ip(&["link", "set", &host_end, if up { "up" } else { "down" }])
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (ns, _) in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// The value at fraction `p` (0..=1) of `sorted` (nearest rank); NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Peak and current resident memory of a process, from /proc.
pub fn rss_bytes(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}
