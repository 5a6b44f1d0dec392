//! Test harness: a real `novacron up` (control plane + agent + embedded store) in a temp
//! dir on a free port, driven through the real CLI binary. Everything it started (the up
//! process, extra agents, QEMU processes under its dirs) is killed on drop.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod browser_net;
pub mod webdriver;

pub const BIN: &str = env!("CARGO_BIN_EXE_novacron");

/// Sector of a guest's /dev/vda where tests write their marks (past the tiny image's data).
#[allow(dead_code)]
pub const MARK_SECTOR: u64 = 2048;

/// Runs `ip ARGS`, panicking with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    pub url: String,
    pub join_token: String,
    up: Option<Child>,
    agents: Vec<(String, Child)>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("nc-e2e-")
            .tempdir_in(scratch())
            .unwrap();
        // The agent's VMs run as users of their own, who pass through here to their files.
        std::fs::set_permissions(
            dir.path(),
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o711),
        )
        .unwrap();
        let data_dir = dir.path().join("data");
        let config = dir.path().join("cli.json");
        let mut c = Cluster {
            data_dir,
            config,
            port: free_port(),
            url: String::new(),
            join_token: String::new(),
            up: None,
            agents: vec![],
            dir,
        };
        c.launch_up();
        c
    }

    /// Starts `novacron up` and waits for its JSON summary line.
    pub fn launch_up(&mut self) {
        let mut child = Command::new(BIN)
            .args([
                "up",
                "--no-demo",
                "--node-name",
                "node-a",
                "-o",
                "json",
                "--listen",
            ])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("NOVACRON_CONFIG", &self.config)
            .env("NOVACRON_LOG", log_filter())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.path().join("up.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("novacron up did not start; log:\n{}", self.log()));
        let v: Value = serde_json::from_str(&line).unwrap();
        self.url = v["api_url"].as_str().unwrap().to_string();
        self.join_token = v["join_token"].as_str().unwrap().to_string();
        self.up = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("up.log")).unwrap_or_default()
    }

    /// kill -9 of the whole control plane + agent process.
    pub fn kill9_up(&mut self) {
        if let Some(mut c) = self.up.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// A CLI command against this cluster, to run or spawn.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("NOVACRON_CONFIG", &self.config)
            .env_remove("NOVACRON_URL")
            .env_remove("NOVACRON_TOKEN")
            .stdin(Stdio::null());
        cmd
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().unwrap()
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "`novacron {}` failed: {}\n--- up log tail ---\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 40),
            self.agents
                .iter()
                .map(|(n, _)| format!("\n--- {n} log tail ---\n{}", tail(&self.agent_log(n), 25)))
                .collect::<String>()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a CLI command that must fail; returns its error line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "`novacron {}` unexpectedly succeeded",
            args.join(" ")
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with("error: "),
            "error output is not one clear line: {err:?}"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "error output is not one line: {err:?}"
        );
        err
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    pub fn vm(&self, name: &str) -> Value {
        self.json(&["vm", "show", name])
    }

    pub fn console(&self, name: &str) -> String {
        self.ok(&["vm", "console", name, "--tail", "--bytes", "1M"])
    }

    /// Waits until the guest's console log contains `needle` at least `count` times.
    pub fn wait_console(&self, name: &str, needle: &str, count: usize, timeout: Duration) {
        let start = Instant::now();
        loop {
            let log = self.console(name);
            if log.matches(needle).count() >= count {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{needle:?} x{count} not on the console of {name} after {timeout:?}; console:\n{}",
                tail(&log, 30)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Sends `input` to the interactive console (stdin not a terminal).
    pub fn console_send(&self, name: &str, input: &str) -> String {
        self.ok_with_stdin(&["vm", "console", name], input)
    }

    /// Runs a CLI command that must succeed with `input` on its stdin; returns stdout.
    pub fn ok_with_stdin(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = self
            .cli_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (60 s at most) until every node in `names` is listed ready.
    pub fn wait_nodes_ready(&self, names: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let nodes = self.json(&["node", "list"]);
            let ready = nodes
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["state"] == "ready" && names.iter().any(|w| n["name"] == *w))
                .count();
            if ready == names.len() {
                return;
            }
            assert!(Instant::now() < deadline, "nodes not ready: {nodes}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// What the guest's shell prints for `expr` (shell text valid inside `$(...)`), read back
    /// over the serial console.
    pub fn console_eval(&self, vm: &str, expr: &str) -> String {
        let out = self.console_send(vm, &format!("echo \"<<$({expr})>>\"\n"));
        let start = out.rfind("<<").expect("console answered") + 2;
        let end = out[start..].find(">>").expect("console answered") + start;
        out[start..end].to_string()
    }

    /// Writes `mark` on the guest's /dev/vda at [`MARK_SECTOR`], runs `then` (more shell, or
    /// nothing) and syncs; fails the test if the guest did not get that far.
    pub fn write_disk_mark(&self, vm: &str, mark: &str, then: &str) {
        let out = self.console_send(
            vm,
            &format!(
                "printf '{mark}' | dd of=/dev/vda bs=512 seek={MARK_SECTOR} conv=notrunc 2>/dev/null; {then} sync; echo wrote-$((2+2))\n"
            ),
        );
        assert!(out.contains("wrote-4"), "console: {out}");
    }

    /// The first `len` bytes at [`MARK_SECTOR`] of the guest's /dev/vda.
    pub fn read_disk_mark(&self, vm: &str, len: usize) -> String {
        self.console_eval(
            vm,
            &format!(
                "dd if=/dev/vda bs=512 skip={MARK_SECTOR} count=1 2>/dev/null | head -c {len}"
            ),
        )
    }

    /// Waits until `vm show` reports `state`.
    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let v = self.vm(name);
            if v["state"] == state {
                return v;
            }
            assert!(
                start.elapsed() < timeout,
                "VM {name} not {state} after {timeout:?}: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts a second agent process that joins this cluster.
    /// `novacron agent` named `name` joining with `token`, its data in `<cluster dir>/<name>`.
    pub fn agent_command(&self, name: &str, token: &str) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "agent",
            "--server",
            &self.url,
            "--join-token",
            token,
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(self.dir.path().join(name));
        cmd
    }

    pub fn start_agent(&mut self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        let child = self
            .agent_command(name, &self.join_token)
            .env("NOVACRON_LOG", log_filter())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join(format!("{name}.log")))
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        self.agents.push((name.to_string(), child));
        dir
    }

    /// kill -9 of the agent process `name` started by [`Cluster::start_agent`] (its QEMUs live on).
    pub fn kill9_agent(&mut self, name: &str) {
        if let Some(i) = self.agents.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.agents.remove(i);
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts agent `name` again (after [`Cluster::kill9_agent`]) and waits until it serves.
    pub fn restart_agent(&mut self, name: &str) {
        let before = self.agent_log(name).matches("agent running").count();
        self.start_agent(name);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.agent_log(name).matches("agent running").count() <= before {
            assert!(
                Instant::now() < deadline,
                "agent {name} did not come back; its log:\n{}",
                tail(&self.agent_log(name), 30)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn agent_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// PIDs of QEMU processes whose command line mentions this cluster's directory.
    pub fn qemu_pids(&self) -> Vec<u32> {
        qemu_pids_under(self.dir.path())
    }
}

/// Longest a cleanup waits for one killed child to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// SIGKILL, then reap within `timeout`: `Child::wait` in a `Drop` blocks for good on a process
/// stuck in the kernel, and a panicking test must end. True when reaped.
pub fn stop_child(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let _ = child.kill();
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

impl Drop for Cluster {
    // Never panics and never waits without a bound: it also runs while a test panics.
    fn drop(&mut self) {
        for (_, mut a) in self.agents.drain(..) {
            stop_child(&mut a, REAP_TIMEOUT);
        }
        if let Some(mut up) = self.up.take() {
            stop_child(&mut up, REAP_TIMEOUT);
        }
        let mut pids = self.qemu_pids();
        pids.extend(dnsmasq_pids_under(self.dir.path()));
        for pid in pids {
            // SAFETY: plain kill(2) of a process this test started.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.qemu_pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Processes whose command line starts with `program` and names `dir`: those a test's
/// agents started there (QEMU and dnsmasq outlive their agent on purpose).
pub fn pids_under(dir: &Path, program: &str) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with(program) && cmd.contains(&needle) {
            out.push(pid);
        }
    }
    out
}

pub fn qemu_pids_under(dir: &Path) -> Vec<u32> {
    pids_under(dir, "qemu-system")
}

pub fn dnsmasq_pids_under(dir: &Path) -> Vec<u32> {
    pids_under(dir, "dnsmasq")
}

pub fn pid_alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Tests keep their files on /work-sized disks rather than a small /tmp.
fn scratch() -> PathBuf {
    let p = std::env::var_os("NOVACRON_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The log filter the test cluster runs with: `NOVACRON_TEST_LOG` when set (e.g.
/// `info,novacron_server=debug,novacron_qemu=debug` to see an import's phases), else `info`.
pub fn log_filter() -> String {
    std::env::var("NOVACRON_TEST_LOG").unwrap_or_else(|_| "info".into())
}

impl Cluster {
    /// The first interface with an address that `vm`'s guest agent reported to `vm show`
    /// (its name, and its first address with the prefix length), waiting up to a minute.
    pub fn wait_guest_address(&self, vm: &str) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.vm(vm);
            let found = v["guest_interfaces"].as_array().and_then(|ifs| {
                ifs.iter().find_map(|i| {
                    let ip = i["ips"].as_array()?.first()?.as_str()?.to_string();
                    Some((i["name"].as_str()?.to_string(), ip))
                })
            });
            if let Some(found) = found {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no guest address in vm show: {v}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `novacron vm console VM --vnc --listen 127.0.0.1:0` running, and the address it
    /// printed; stop it with [`stop_child`].
    pub fn vnc_relay(&self, vm: &str) -> (Child, String) {
        let mut relay = self
            .cli_command(&["vm", "console", vm, "--vnc", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(relay.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        match line.trim().strip_prefix("listening ") {
            Some(addr) => (relay, addr.to_string()),
            None => {
                stop_child(&mut relay, Duration::from_secs(5));
                panic!("no address from the VNC relay of {vm}: {line:?}")
            }
        }
    }
}

/// What a VNC server said when a viewer connected: the screen's size and the desktop's name
/// (QEMU names it `QEMU (<vm>)`).
#[derive(Debug)]
pub struct RfbScreen {
    pub width: u16,
    pub height: u16,
    pub name: String,
}

/// A VNC viewer's first steps against `addr` (RFB 3.8, security type None, shared), then one
/// full framebuffer update request, whose answer must be a FramebufferUpdate with at least
/// one rectangle: pixels flow, not only a greeting.
pub fn rfb_viewer(addr: &str) -> RfbScreen {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let read = |s: &mut std::net::TcpStream, n: usize| {
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).unwrap();
        buf
    };
    let version = read(&mut s, 12);
    assert_eq!(
        version,
        b"RFB 003.008\n",
        "{:?}",
        String::from_utf8_lossy(&version)
    );
    s.write_all(b"RFB 003.008\n").unwrap();
    let n = read(&mut s, 1)[0] as usize;
    let types = read(&mut s, n);
    assert!(types.contains(&1), "no security type None in {types:?}");
    s.write_all(&[1]).unwrap();
    assert_eq!(read(&mut s, 4), [0, 0, 0, 0], "security result");
    s.write_all(&[1]).unwrap(); // ClientInit: shared
    let init = read(&mut s, 24);
    let width = u16::from_be_bytes([init[0], init[1]]);
    let height = u16::from_be_bytes([init[2], init[3]]);
    let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    let name = String::from_utf8_lossy(&read(&mut s, name_len)).into_owned();
    let mut request = vec![3u8, 0];
    for v in [0, 0, width, height] {
        request.extend(v.to_be_bytes());
    }
    s.write_all(&request).unwrap();
    let update = read(&mut s, 4);
    assert_eq!(update[0], 0, "not a FramebufferUpdate: {update:?}");
    assert!(
        u16::from_be_bytes([update[2], update[3]]) >= 1,
        "an update without rectangles"
    );
    RfbScreen {
        width,
        height,
        name,
    }
}

/// What the boot program of [`write_boot_iso`] prints on the first serial port.
pub const ISO_BOOTED: &str = "NOVACRON-ISO-BOOTED";

/// Writes a bootable ISO 9660 medium at `path`, as an installer CD is: an El Torito
/// no-emulation boot image that the BIOS loads from the CD and runs. The program (16-bit
/// real mode, at 0:7C00) writes [`ISO_BOOTED`] to COM1 and halts.
pub fn write_boot_iso(path: &Path) {
    const SECTOR: usize = 2048;
    const CATALOG: usize = 19;
    const PROGRAM: usize = 20;
    let mut iso = vec![0u8; SECTOR * 21];
    let descriptor = |iso: &mut Vec<u8>, sector: usize, kind: u8| {
        let d = &mut iso[sector * SECTOR..];
        d[0] = kind;
        d[1..6].copy_from_slice(b"CD001");
        d[6] = 1;
    };
    descriptor(&mut iso, 16, 1); // primary volume descriptor
    descriptor(&mut iso, 17, 0); // boot record
    iso[17 * SECTOR + 7..17 * SECTOR + 30].copy_from_slice(b"EL TORITO SPECIFICATION");
    iso[17 * SECTOR + 0x47..17 * SECTOR + 0x4b].copy_from_slice(&(CATALOG as u32).to_le_bytes());
    descriptor(&mut iso, 18, 255); // terminator
    // Boot catalog: a validation entry (its 16-bit words sum to 0), then the default entry.
    let mut validation = [0u8; 32];
    validation[0] = 1;
    validation[30] = 0x55;
    validation[31] = 0xaa;
    let sum = validation.chunks(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    validation[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    let mut entry = [0u8; 32];
    entry[0] = 0x88; // bootable, no emulation, load segment 0 (07C0)
    entry[6..8].copy_from_slice(&4u16.to_le_bytes()); // 4 x 512 bytes
    entry[8..12].copy_from_slice(&(PROGRAM as u32).to_le_bytes());
    iso[CATALOG * SECTOR..CATALOG * SECTOR + 32].copy_from_slice(&validation);
    iso[CATALOG * SECTOR + 32..CATALOG * SECTOR + 64].copy_from_slice(&entry);
    #[rustfmt::skip]
    let mut program = vec![
        0xfa,             // cli
        0x31, 0xc0,       // xor ax, ax
        0x8e, 0xd8,       // mov ds, ax
        0xbe, 0x16, 0x7c, // mov si, 0x7c16 (the text, after these 22 bytes)
        0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
        0xac,             // next: lodsb
        0x84, 0xc0,       // test al, al
        0x74, 0x03,       // jz done
        0xee,             // out dx, al
        0xeb, 0xf8,       // jmp next
        0xf4,             // done: hlt
        0xeb, 0xfd,       // jmp done
    ];
    assert_eq!(program.len(), 0x16);
    program.extend(format!("{ISO_BOOTED}\r\n\0").bytes());
    iso[PROGRAM * SECTOR..PROGRAM * SECTOR + program.len()].copy_from_slice(&program);
    std::fs::write(path, iso).unwrap();
}

/// TPM 2.0 commands the TPM tests send from inside a guest, raw on /dev/tpm0. Those with
/// sessions carry one empty password authorization (TPM_RS_PW).
pub mod tpm_cmd {
    const PASSWORD_AUTH: [u8; 13] = [0, 0, 0, 9, 0x40, 0, 0, 9, 0, 0, 0, 0, 0];
    /// The NV index the test defines (owner space).
    const NV_INDEX: [u8; 4] = [0x01, 0x50, 0x00, 0x16];

    fn command(tag: u16, code: u32, body: &[u8]) -> Vec<u8> {
        let mut c = tag.to_be_bytes().to_vec();
        c.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
        c.extend_from_slice(&code.to_be_bytes());
        c.extend_from_slice(body);
        c
    }

    /// TPM2_NV_DefineSpace of an 8-byte index readable and writable by owner and auth.
    pub fn nv_define() -> Vec<u8> {
        let mut body = vec![0x40, 0, 0, 1]; // TPM_RH_OWNER
        body.extend_from_slice(&PASSWORD_AUTH);
        body.extend_from_slice(&[0, 0]); // no auth value for the index
        body.extend_from_slice(&[0, 14]); // TPM2B_NV_PUBLIC
        body.extend_from_slice(&NV_INDEX);
        body.extend_from_slice(&[0, 0x0b]); // SHA-256
        body.extend_from_slice(&0x0006_0006u32.to_be_bytes()); // OWNER/AUTH WRITE and READ
        body.extend_from_slice(&[0, 0, 0, 8]); // no policy, 8 bytes
        command(0x8002, 0x12a, &body)
    }

    /// TPM2_NV_ReadPublic of that index: succeeds only if it exists.
    pub fn nv_read_public() -> Vec<u8> {
        command(0x8001, 0x169, &NV_INDEX)
    }

    /// TPM2_PCR_Extend of PCR 16 with a SHA-256 digest.
    pub fn pcr16_extend() -> Vec<u8> {
        let mut body = vec![0, 0, 0, 16];
        body.extend_from_slice(&PASSWORD_AUTH);
        body.extend_from_slice(&[0, 0, 0, 1, 0, 0x0b]);
        body.extend_from_slice(&[0x5a; 32]);
        command(0x8002, 0x182, &body)
    }

    /// Guest shell that sends `command` to /dev/tpm0 and prints the response in hex.
    pub fn exchange(command: &[u8]) -> String {
        let octal: String = command.iter().map(|b| format!("\\{b:03o}")).collect();
        format!(
            "exec 3<>/dev/tpm0; printf '{octal}' >&3; dd bs=4096 count=1 <&3 2>/dev/null | od -An -tx1 | tr -d ' \\n'; exec 3>&-"
        )
    }
}

/// `s` without its ANSI colour sequences (the logs colour field names).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
