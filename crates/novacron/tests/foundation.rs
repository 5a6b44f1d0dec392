//! End-to-end tests of the foundation: a real control plane, real agents and real QEMU
//! (TCG) guests from the tiny image, driven through the `novacron` CLI as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Cluster, pid_alive};

const BOOT: Duration = Duration::from_secs(90);
const MARKER: &str = "NOVACRON-GUEST-READY";

fn create_tiny(c: &Cluster, name: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "vm", "create", name, "--image", "tiny", "--cpus", "1", "--memory", "128M", "--accel",
        "tcg",
    ];
    args.extend_from_slice(extra);
    let mut a = args.clone();
    a.extend(["-o", "json"]);
    serde_json::from_str(&c.ok(&a)).unwrap()
}

#[test]
fn vm_lifecycle_end_to_end() {
    let c = Cluster::start();
    let img = c.json(&["image", "build-tiny", "tiny"]);
    assert_eq!(img["kind"], "kernel");

    let vm = create_tiny(&c, "web1", &["--disk", "32M"]);
    assert_eq!(vm["state"], "running");
    assert_eq!(vm["node"], "node-a");
    assert_eq!(vm["cpus"], 1);
    assert_eq!(vm["memory_bytes"], 128u64 << 20);
    assert_eq!(vm["accel_in_use"], "tcg");
    let pid = vm["pid"].as_u64().unwrap();
    assert!(pid_alive(pid));
    let disk = c.data_dir.join("agent/vms/default/web1/disk0.qcow2");
    assert!(disk.exists(), "the VM's qcow2 disk exists");
    // QEMU runs as the VM's own user, who owns the disk; nobody else may read it.
    if unsafe { libc::geteuid() } == 0 {
        use std::os::unix::fs::MetadataExt;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            novacron_agent::users::is_vm_uid(uid),
            "QEMU runs as uid {uid}, not a VM user"
        );
        let meta = std::fs::metadata(&disk).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o600));
    }

    // The guest really booted: its userspace printed the marker on the serial console,
    // and a command typed on the console runs in the guest (the disk is visible too).
    c.wait_console("web1", MARKER, 1, BOOT);
    let out = c.console_send("web1", "echo guest-says-$((6*7)); ls /sys/block\n");
    assert!(out.contains("guest-says-42"), "console answer: {out}");
    assert!(out.contains("vda"), "the 32M disk is attached: {out}");

    assert_eq!(c.json(&["vm", "pause", "web1"])["state"], "paused");
    assert_eq!(c.json(&["vm", "resume", "web1"])["state"], "running");

    let stopped = c.json(&["vm", "stop", "web1"]);
    assert_eq!(stopped["state"], "stopped");
    assert!(!pid_alive(pid), "QEMU {pid} is gone after stop");

    let started = c.json(&["vm", "start", "web1"]);
    assert_eq!(started["state"], "running");
    c.wait_console("web1", MARKER, 2, BOOT);

    assert_eq!(c.json(&["vm", "reboot", "web1"])["state"], "running");
    c.wait_console("web1", MARKER, 3, BOOT);

    // Powered off from inside: it stays off.
    c.console_send("web1", "poweroff\n");
    let v = c.wait_state("web1", "stopped", Duration::from_secs(30));
    assert_eq!(v["desired"], "stopped");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.vm("web1")["state"], "stopped");

    // Human output is a table; JSON lists hold the same VM.
    let table = c.ok(&["vm", "list"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("web1") && table.contains("stopped"));

    c.ok(&["vm", "start", "web1"]);
    let pid2 = c.vm("web1")["pid"].as_u64().unwrap();
    // A running VM is deleted only with --force, and the refusal changes nothing.
    let err = c.fails(&["vm", "delete", "web1"]);
    assert!(err.contains("--force") && err.contains("running"), "{err}");
    assert!(pid_alive(pid2), "a refused delete leaves QEMU running");
    assert_eq!(c.vm("web1")["state"], "running");
    c.ok(&["vm", "delete", "web1", "--force"]);
    assert!(!pid_alive(pid2), "no QEMU left after delete");
    assert!(c.qemu_pids().is_empty(), "no QEMU of this cluster remains");
    assert!(!disk.exists(), "the disk is gone after delete");
    assert!(!c.data_dir.join("agent/vms/default/web1").exists());
    assert_eq!(c.json(&["vm", "list"]), serde_json::json!([]));
    let err = c.fails(&["vm", "show", "web1"]);
    assert!(err.contains("no VM named"), "{err}");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);

    let cases: &[(&[&str], &str)] = &[
        (
            &["vm", "create", "Web_1", "--image", "tiny"],
            "invalid vm name",
        ),
        (
            &[
                "vm", "create", "web1", "--image", "tiny", "--memory", "512Q",
            ],
            "unknown unit",
        ),
        (
            &["vm", "create", "web1", "--image", "nope"],
            "no image named",
        ),
        (
            &[
                "vm", "create", "web1", "--image", "tiny", "--node", "node-z",
            ],
            "node node-z does not exist",
        ),
        (
            &["vm", "create", "web1", "--image", "tiny", "--memory", "64T"],
            "no host has 65536 GiB free memory; largest free",
        ),
        (
            &["vm", "create", "web1", "--image", "tiny", "--cpus", "0"],
            "--cpus must be between",
        ),
        (
            &["vm", "create", "web1", "--image", "tiny", "--forward", "22"],
            "HOSTPORT:GUESTPORT",
        ),
        (&["image", "build-tiny", "tiny"], "already exists"),
    ];
    for (args, expect) in cases {
        let err = c.fails(args);
        assert!(
            err.contains(expect),
            "`{}` said {err:?}, expected {expect:?}",
            args.join(" ")
        );
    }

    // A file that is not a disk image, and a corrupt qcow2, are refused on import.
    let text = c.dir.path().join("notes.txt");
    std::fs::write(&text, "just some text, not a disk\n".repeat(100)).unwrap();
    let err = c.fails(&["image", "import", "notes", text.to_str().unwrap()]);
    assert!(err.contains("not a usable disk image"), "{err}");
    let good = c.dir.path().join("good.qcow2");
    let st = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&good)
        .arg("64M")
        .status()
        .unwrap();
    assert!(st.success());
    let mut bytes = std::fs::read(&good).unwrap();
    let corrupt = c.dir.path().join("corrupt.qcow2");
    bytes.truncate(100);
    std::fs::write(&corrupt, &bytes).unwrap();
    let err = c.fails(&["image", "import", "broken", corrupt.to_str().unwrap()]);
    assert!(err.contains("not a usable disk image"), "{err}");

    // Nothing was half-created: no VM, no image besides tiny, no VM files, no QEMU, and
    // no scratch left by the refused imports.
    assert_eq!(c.json(&["vm", "list"]), serde_json::json!([]));
    let images = c.json(&["image", "list"]);
    assert_eq!(images.as_array().unwrap().len(), 1, "{images}");
    assert!(
        !c.data_dir.join("agent/vms/default").exists()
            || std::fs::read_dir(c.data_dir.join("agent/vms/default"))
                .unwrap()
                .next()
                .is_none()
    );
    assert!(c.qemu_pids().is_empty());
    let incoming = c.data_dir.join("control-plane/images/.incoming");
    assert!(!incoming.exists() || std::fs::read_dir(&incoming).unwrap().next().is_none());

    // A real qcow2 is accepted and its format detected.
    let img = c.json(&["image", "import", "blank", good.to_str().unwrap()]);
    assert_eq!(img["kind"], "disk");
    assert_eq!(img["format"], "qcow2");
    assert_eq!(img["virtual_size_bytes"], 64u64 << 20);

    // No token, wrong token: 401 with the standard body, and nothing is listed.
    let out = std::process::Command::new(common::BIN)
        .args(["vm", "list"])
        .env("NOVACRON_CONFIG", &c.config)
        .env("NOVACRON_TOKEN", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid or revoked token"));
}

#[test]
fn crashes_and_control_plane_restarts() {
    let mut c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let pid = create_tiny(&c, "db1", &[])["pid"].as_u64().unwrap();
    c.wait_console("db1", MARKER, 1, BOOT);

    // QEMU dies under a running VM: crashed, with the reason.
    // SAFETY: kill(2) of the QEMU this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let v = c.wait_state("db1", "crashed", Duration::from_secs(20));
    assert!(
        v["state_reason"].as_str().unwrap().contains("signal 9"),
        "{v}"
    );
    let restarted = c.json(&["vm", "start", "db1"]);
    assert_eq!(restarted["state"], "running");
    let pid = restarted["pid"].as_u64().unwrap();
    c.wait_console("db1", MARKER, 2, BOOT);

    // kill -9 of `novacron up` while the VM runs: QEMU survives, and the next `up`
    // adopts it (same process, no duplicate) with every acknowledged change kept.
    c.kill9_up();
    assert!(pid_alive(pid), "QEMU survives its agent");
    c.launch_up();
    let v = c.wait_state("db1", "running", Duration::from_secs(30));
    assert_eq!(
        v["pid"].as_u64().unwrap(),
        pid,
        "the running QEMU was adopted"
    );
    assert_eq!(c.qemu_pids(), vec![pid as u32], "no duplicate QEMU");
    let out = c.console_send("db1", "echo still-$((40+2))\n");
    assert!(out.contains("still-42"), "{out}");

    // The QEMU dies while no agent watches: the next agent marks it crashed.
    c.kill9_up();
    // SAFETY: as above.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    c.launch_up();
    let v = c.wait_state("db1", "crashed", Duration::from_secs(30));
    assert!(
        v["state_reason"].as_str().unwrap().contains("not running"),
        "{v}"
    );
    assert!(c.qemu_pids().is_empty());
    c.ok(&["vm", "delete", "db1"]);
}

#[test]
fn second_node_joins_and_runs_a_vm() {
    let mut c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let node_b_dir = c.start_agent("node-b");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = c.json(&["node", "list"]);
        let names: Vec<&str> = nodes
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap())
            .collect();
        if names.contains(&"node-a") && names.contains(&"node-b") {
            assert!(
                nodes
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|n| n["state"] == "ready"),
                "{nodes}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node-b did not join: {nodes}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let table = c.ok(&["node", "list"]);
    assert!(
        table.contains("node-a") && table.contains("node-b"),
        "{table}"
    );

    let vm = create_tiny(&c, "web2", &["--node", "node-b"]);
    assert_eq!(vm["node"], "node-b");
    assert!(
        node_b_dir.join("vms/default/web2").exists(),
        "the VM lives on node-b"
    );
    c.wait_console("web2", MARKER, 1, BOOT);
    let out = c.console_send("web2", "echo from-node-b\n");
    assert!(out.contains("from-node-b"), "{out}");
    c.ok(&["vm", "delete", "web2", "--force"]);
    assert!(!node_b_dir.join("vms/default/web2").exists());
    assert!(c.qemu_pids().is_empty());

    // The join token only joins: it cannot act as an admin.
    let secret = c.join_token.rsplit('.').next().unwrap().to_string();
    let out = std::process::Command::new(common::BIN)
        .args(["vm", "list"])
        .env("NOVACRON_CONFIG", &c.config)
        .env("NOVACRON_TOKEN", &secret)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a join token may only register a node"),
        "{err}"
    );
}

/// The packaged way to run the roles: settings from a TOML file (`--config`, a flag on the
/// command line wins over it) and readiness told to systemd over `NOTIFY_SOCKET`, as a
/// `Type=notify` unit would see it: READY=1 from the server once its API answers, from the
/// agent once its node joined, STOPPING=1 from both on SIGTERM.
#[test]
fn roles_read_a_config_file_and_notify_systemd() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;
    use std::process::{Command, Stdio};

    struct Reap(Vec<std::process::Child>);
    impl Drop for Reap {
        fn drop(&mut self) {
            for c in &mut self.0 {
                common::stop_child(c, Duration::from_secs(10));
            }
        }
    }
    let recv = |sock: &UnixDatagram| -> String {
        let mut buf = [0u8; 1024];
        let n = sock
            .recv(&mut buf)
            .expect("no sd_notify message within 60 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let sigterm = |pid: u32| {
        // SAFETY: plain kill(2) of a process this test started.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    };

    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let cli_config = dir.path().join("cli.json");
    let port = common::free_port();
    let server_toml = dir.path().join("server.toml");
    std::fs::write(
        &server_toml,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nmember-id = \"from-file\"\n",
            dir.path().join("cp").display()
        ),
    )
    .unwrap();
    let mut reap = Reap(vec![]);
    let mut server = Command::new(common::BIN)
        .args(["server", "--config"])
        .arg(&server_toml)
        .args(["--member-id", "from-cli", "-o", "json"])
        .env("NOTIFY_SOCKET", &notify)
        .env("NOVACRON_CONFIG", &cli_config)
        .env_remove("NOVACRON_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let server_pid = server.id();
    reap.0.push(server);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = summary["api_url"].as_str().unwrap().to_string();
    assert_eq!(
        url,
        format!("https://127.0.0.1:{port}"),
        "listen from the file"
    );

    let ready = recv(&sock);
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(ready.contains(&format!("MAINPID={server_pid}")), "{ready}");
    assert!(
        ready.contains(&format!("STATUS=serving at {url}")),
        "{ready}"
    );
    let cli = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(common::BIN)
            .args(args)
            .args(["-o", "json"])
            .env("NOVACRON_CONFIG", &cli_config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // The API answers once READY=1 arrived, and the flag won over the file.
    let status = cli(&["cluster", "status"]);
    let members: Vec<&str> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["from-cli"]);

    let agent_toml = dir.path().join("agent.toml");
    std::fs::write(
        &agent_toml,
        format!(
            "server = [\"{url}\"]\nname = \"node-cfg\"\ndata-dir = \"{}\"\nlisten = \"127.0.0.1:0\"\njoin-token = \"{}\"\n",
            dir.path().join("agent").display(),
            summary["join_token"].as_str().unwrap()
        ),
    )
    .unwrap();
    // A file holding the join token that others can read is refused, and nothing starts.
    std::fs::set_permissions(&agent_toml, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = Command::new(common::BIN)
        .args(["agent", "--hollow", "--config"])
        .arg(&agent_toml)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("chmod 600"), "{err}");
    assert!(
        !dir.path().join("agent").exists(),
        "a refused agent created its data dir"
    );

    std::fs::set_permissions(&agent_toml, std::fs::Permissions::from_mode(0o600)).unwrap();
    let agent = Command::new(common::BIN)
        .args(["agent", "--hollow", "--config"])
        .arg(&agent_toml)
        .env("NOTIFY_SOCKET", &notify)
        .env_remove("NOVACRON_JOIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent_pid = agent.id();
    reap.0.push(agent);
    let ready = recv(&sock);
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(ready.contains(&format!("MAINPID={agent_pid}")), "{ready}");
    assert!(ready.contains("STATUS=node node-cfg joined"), "{ready}");
    assert_eq!(cli(&["node", "show", "node-cfg"])["name"], "node-cfg");

    for pid in [agent_pid, server_pid] {
        sigterm(pid);
        let bye = recv(&sock);
        assert!(bye.contains("STOPPING=1"), "{bye}");
    }
    for child in &mut reap.0 {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a role did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}");
    }
}
