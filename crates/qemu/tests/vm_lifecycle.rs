//! End-to-end tests with real QEMU (TCG, 128 MiB) booting the built-in tiny image.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use novacron_qemu::console::{console_log_len, send_console_line, wait_for_text};
use novacron_qemu::process::wait_pid_gone;
use novacron_qemu::{
    Accel, Boot, GUEST_READY_MARKER, QmpEvent, RunDir, RunningVm, TinyOptions, VmSpec, adopt,
    build_tiny, launch,
};
use tokio::sync::broadcast;

const BOOT_TIMEOUT: Duration = Duration::from_secs(40);

async fn tiny_spec(dir: &Path, name: &str, opts: &TinyOptions) -> VmSpec {
    let image = build_tiny(&dir.join("image"), opts).await.unwrap();
    VmSpec {
        name: name.into(),
        uuid: "6f0c1f1e-8a8e-4f0e-9c55-2d2b8f3f0a01".into(),
        cpus: 1,
        memory_bytes: 128 << 20,
        accel: Accel::Tcg,
        boot: Boot::Kernel {
            kernel: image.kernel,
            initrd: Some(image.initrd),
            cmdline: image.cmdline,
        },
        ..Default::default()
    }
}

async fn next_event(rx: &mut broadcast::Receiver<QmpEvent>, name: &str) -> QmpEvent {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let ev = rx.recv().await.unwrap();
            if ev.event == name {
                return ev;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {name} event within 20 s"))
}

async fn wait_ready(vm: &RunningVm, from: u64) -> u64 {
    wait_for_text(
        &vm.run_dir().console_log(),
        GUEST_READY_MARKER,
        from,
        BOOT_TIMEOUT,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boots_pauses_resumes_console_reset_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny_spec(dir.path(), "lifecycle", &TinyOptions::default()).await;
    let run_dir = RunDir::new(dir.path().join("run"));
    let started = Instant::now();
    let vm = launch(&spec, &run_dir).await.unwrap();
    let pid = vm.pid();
    let mut events = vm.qmp().subscribe();
    let after_ready = wait_ready(&vm, 0).await;
    println!("boot to marker: {} ms", started.elapsed().as_millis());

    // Pause.
    vm.qmp().stop().await.unwrap();
    next_event(&mut events, "STOP").await;
    let status = vm.qmp().query_status().await.unwrap();
    assert!(!status.running);
    assert_eq!(status.status, "paused");
    // Resume.
    vm.qmp().cont().await.unwrap();
    next_event(&mut events, "RESUME").await;
    assert!(vm.qmp().query_status().await.unwrap().running);

    // Console: type a command whose output differs from its echo.
    let from = console_log_len(vm.run_dir());
    send_console_line(vm.run_dir(), "echo console-$((6*7))")
        .await
        .unwrap();
    wait_for_text(
        &vm.run_dir().console_log(),
        "console-42",
        from,
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert!(after_ready <= from);

    // This guest runs no guest agent: asking for one says so instead of hanging.
    let no_agent = vm.guest_agent().await.err().unwrap().to_string();
    assert!(no_agent.contains("runs no qemu-guest-agent"), "{no_agent}");

    // Reset: the guest boots again.
    let from = console_log_len(vm.run_dir());
    vm.qmp().system_reset().await.unwrap();
    next_event(&mut events, "RESET").await;
    wait_ready(&vm, from).await;

    // Graceful shutdown through the ACPI power button.
    let t = Instant::now();
    let info = vm.shutdown(Duration::from_secs(20)).await.unwrap();
    println!("graceful shutdown: {} ms", t.elapsed().as_millis());
    let shutdown = next_event(&mut events, "SHUTDOWN").await;
    assert_eq!(shutdown.data["reason"], "guest-shutdown", "{shutdown:?}");
    assert!(info.clean, "{info:?}");
    assert!(info.reason.contains("guest powered off"), "{info:?}");
    assert!(
        wait_pid_gone(pid, Duration::from_secs(5)).await,
        "QEMU pid {pid} still there"
    );
    assert!(!run_dir.qmp_socket().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_kill_is_reported_as_crash() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny_spec(dir.path(), "crash", &TinyOptions::default()).await;
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    let pid = vm.pid();
    wait_ready(&vm, 0).await;
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let info = tokio::time::timeout(Duration::from_secs(10), vm.wait_exit())
        .await
        .unwrap();
    assert!(!info.clean, "{info:?}");
    assert!(!info.requested, "{info:?}");
    assert!(info.is_crash());
    assert_eq!(info.signal, Some(9));
    assert!(info.reason.contains("killed by signal 9"), "{info:?}");
    assert!(wait_pid_gone(pid, Duration::from_secs(5)).await);
    assert!(vm.qmp().is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_after_agent_death_then_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny_spec(dir.path(), "adopt", &TinyOptions::default()).await;
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    let pid = vm.pid();
    wait_ready(&vm, 0).await;
    // Simulate the agent dying: drop every handle; QEMU must keep running.
    drop(vm);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !wait_pid_gone(pid, Duration::from_millis(100)).await,
        "QEMU died with the handle"
    );

    let adopted = adopt(&run_dir)
        .await
        .unwrap()
        .expect("QEMU should be adoptable");
    assert_eq!(adopted.pid(), pid);
    assert!(adopted.is_adopted());
    assert_eq!(adopted.spec().unwrap().uuid, spec.uuid);
    assert!(adopted.qmp().query_status().await.unwrap().running);
    // A second launch into the same run directory is refused while QEMU runs there.
    match launch(&spec, &run_dir).await {
        Err(novacron_qemu::QemuError::AlreadyRunning { pid: p, .. }) => assert_eq!(p, pid),
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    // The guest still answers on its console.
    let from = console_log_len(adopted.run_dir());
    send_console_line(adopted.run_dir(), "echo adopted-$((40+2))")
        .await
        .unwrap();
    wait_for_text(
        &run_dir.console_log(),
        "adopted-42",
        from,
        Duration::from_secs(20),
    )
    .await
    .unwrap();

    let info = adopted.shutdown(Duration::from_secs(20)).await.unwrap();
    assert!(info.clean, "{info:?}");
    assert!(info.requested);
    assert!(wait_pid_gone(pid, Duration::from_secs(5)).await);
    // Nothing left to adopt, and stale files are gone.
    assert!(adopt(&run_dir).await.unwrap().is_none());
    assert!(!run_dir.pidfile().exists());
    assert!(!run_dir.qmp_socket().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_launch_reports_log_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = tiny_spec(dir.path(), "broken", &TinyOptions::default()).await;
    spec.extra_args = vec!["-device".into(), "no-such-device-xyz".into()];
    let run_dir = RunDir::new(dir.path().join("run"));
    let err = launch(&spec, &run_dir).await.unwrap_err().to_string();
    assert!(err.contains("failed to start"), "{err}");
    assert!(
        err.contains("no-such-device-xyz"),
        "log tail should name the bad device: {err}"
    );
    assert!(adopt(&run_dir).await.unwrap().is_none());
    // A second launch with a good spec in the same run dir works.
    spec.extra_args.clear();
    let vm = launch(&spec, &run_dir).await.unwrap();
    let pid = vm.pid();
    let info = vm.kill().await.unwrap();
    assert!(
        info.requested && !info.clean && !info.is_crash(),
        "{info:?}"
    );
    assert!(wait_pid_gone(pid, Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_panic_ends_qemu_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TinyOptions {
        extra_files: vec![novacron_qemu::GuestFile {
            path_in_guest: "/etc/novacron/init.d/90-panic".into(),
            contents: b"#!/bin/sh\necho PANICKING-NOW\necho c > /proc/sysrq-trigger\n".to_vec(),
            mode: 0o755,
        }],
        ..Default::default()
    };
    let spec = tiny_spec(dir.path(), "panic", &opts).await;
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    let pid = vm.pid();
    let mut events = vm.qmp().subscribe();
    let info = tokio::time::timeout(BOOT_TIMEOUT, vm.wait_exit())
        .await
        .expect("QEMU should end on a guest panic");
    let panicked = next_event(&mut events, "GUEST_PANICKED").await;
    assert_eq!(panicked.data["action"], "poweroff", "{panicked:?}");
    assert!(
        !info.clean && !info.requested && info.is_crash(),
        "{info:?}"
    );
    assert!(info.reason.contains("guest kernel panicked"), "{info:?}");
    assert!(wait_pid_gone(pid, Duration::from_secs(5)).await);
    let console = std::fs::read_to_string(run_dir.console_log()).unwrap();
    assert!(console.contains("PANICKING-NOW"), "{console}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_vm_shuts_down_by_quit() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = tiny_spec(dir.path(), "paused", &TinyOptions::default()).await;
    spec.start_paused = true;
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    let status = vm.qmp().query_status().await.unwrap();
    assert!(!status.running);
    assert_eq!(status.status, "prelaunch");
    let t = Instant::now();
    let info = vm.shutdown(Duration::from_secs(30)).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "a paused guest must not wait for the power button"
    );
    assert!(info.clean && info.requested, "{info:?}");
    assert!(info.reason.contains("quit"), "{info:?}");
    assert!(wait_pid_gone(vm.pid(), Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_network_dhcp_and_port_forward() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let opts = TinyOptions {
        extra_files: vec![novacron_qemu::GuestFile {
            path_in_guest: "/etc/novacron/init.d/20-net".into(),
            contents: b"#!/bin/sh\n\
                echo \"NET-ADDR $(ip -4 -o addr show eth0)\"\n\
                (while true; do echo guest-says-hello | nc -l -p 7777; done) &\n\
                echo NET-LISTENING\n"
                .to_vec(),
            mode: 0o755,
        }],
        ..Default::default()
    };
    let mut spec = tiny_spec(dir.path(), "net", &opts).await;
    let host_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    spec.nics = vec![novacron_qemu::NicSpec::User {
        forwards: vec![novacron_qemu::PortForward {
            host_port,
            guest_port: 7777,
        }],
    }];
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    let pid = vm.pid();
    wait_for_text(&run_dir.console_log(), "NET-LISTENING", 0, BOOT_TIMEOUT)
        .await
        .unwrap();
    let console = std::fs::read_to_string(run_dir.console_log()).unwrap();
    assert!(
        console.contains("inet 10.0.2.15/24"),
        "guest got no DHCP lease from slirp:\n{console}"
    );

    let mut got = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !got.contains("guest-says-hello") && Instant::now() < deadline {
        got.clear();
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", host_port)).await {
            let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut got)).await;
        }
        if !got.contains("guest-says-hello") {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    vm.kill().await.unwrap();
    assert!(wait_pid_gone(pid, Duration::from_secs(5)).await);
    assert!(
        got.contains("guest-says-hello"),
        "read {got:?} through the port forward"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_qmp_callers_share_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = tiny_spec(dir.path(), "qmp-load", &TinyOptions::default()).await;
    spec.start_paused = true;
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    let observed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let o2 = observed.clone();
    vm.qmp()
        .set_latency_observer(std::sync::Arc::new(move |cmd, _| {
            if cmd == "query-name" {
                o2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let qmp = vm.qmp().clone();
        tasks.push(tokio::spawn(async move {
            qmp.execute("query-name", None).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap()["name"], "qmp-load");
    }
    assert_eq!(observed.load(std::sync::atomic::Ordering::Relaxed), 50);
    let err = vm.qmp().execute("no-such-command", None).await.unwrap_err();
    assert!(
        matches!(&err, novacron_qemu::QemuError::Qmp { class, .. } if class == "CommandNotFound"),
        "{err}"
    );
    let info = vm.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(info.clean, "{info:?}");
}

/// A bridge with a veth into a network namespace of the test's own (198.18.77.1/24), removed on drop.
struct BridgeNet {
    bridge: String,
    netns: String,
}

impl BridgeNet {
    fn create() -> BridgeNet {
        let tag = std::process::id() % 100_000;
        let net = BridgeNet {
            bridge: format!("ncbt{tag}"),
            netns: format!("nc-tap-test-{tag}"),
        };
        let (host_end, ns_end) = (format!("ncvh{tag}"), format!("ncvn{tag}"));
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // Less than Ethernet's 1500, as on an overlay: the tap must follow the bridge.
        ip(&["link", "add", &net.bridge, "mtu", "1400", "type", "bridge"]);
        ip(&["link", "set", &net.bridge, "up"]);
        ip(&["netns", "add", &net.netns]);
        ip(&[
            "link", "add", &host_end, "mtu", "1400", "type", "veth", "peer", "name", &ns_end,
            "mtu", "1400",
        ]);
        ip(&["link", "set", &host_end, "master", &net.bridge, "up"]);
        ip(&["link", "set", &ns_end, "netns", &net.netns]);
        ip(&[
            "-n",
            &net.netns,
            "addr",
            "add",
            "198.18.77.1/24",
            "dev",
            &ns_end,
        ]);
        ip(&["-n", &net.netns, "link", "set", &ns_end, "up"]);
        net
    }

    fn ports(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(format!("/sys/class/net/{}/brif", self.bridge))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for BridgeNet {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridged_nic_on_an_agent_made_tap_in_a_sandboxed_qemu() {
    if unsafe { libc::geteuid() } != 0 || !Path::new("/dev/net/tun").exists() {
        println!("needs root and /dev/net/tun; skipped");
        return;
    }
    let net = BridgeNet::create();
    let dir = tempfile::tempdir().unwrap();
    let opts = TinyOptions {
        extra_files: vec![novacron_qemu::GuestFile {
            path_in_guest: "/etc/novacron/init.d/20-net".into(),
            contents: b"#!/bin/sh\n\
                ip addr add 198.18.77.2/24 dev eth0\n\
                ip link set eth0 up\n\
                (while true; do echo guest-says-hello | nc -l -p 7777; done) &\n\
                echo NET-LISTENING\n"
                .to_vec(),
            mode: 0o755,
        }],
        ..Default::default()
    };
    let mut spec = tiny_spec(dir.path(), "bridged", &opts).await;
    spec.nics = vec![novacron_qemu::NicSpec::Bridge {
        bridge: net.bridge.clone(),
        mac: "52:54:00:12:77:02".into(),
    }];
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    let pid = vm.pid();

    // The agent made one tap and attached it; QEMU runs under its seccomp filter.
    let taps: Vec<String> = net
        .ports()
        .into_iter()
        .filter(|p| p.starts_with("nctap"))
        .collect();
    assert_eq!(taps.len(), 1, "bridge ports: {:?}", net.ports());
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", taps[0])).unwrap();
    assert_eq!(mtu.trim(), "1400", "the tap took the bridge's MTU");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l == "Seccomp:\t2"),
        "QEMU runs without its seccomp filter:\n{status}"
    );

    // A TCP connection from the namespace behind the bridge reaches the guest.
    wait_for_text(&run_dir.console_log(), "NET-LISTENING", 0, BOOT_TIMEOUT)
        .await
        .unwrap();
    let mut got = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !got.contains("guest-says-hello") && Instant::now() < deadline {
        let out = tokio::process::Command::new("ip")
            .args(["netns", "exec", &net.netns, "python3", "-c"])
            .arg(
                "import socket\n\
                 s = socket.create_connection(('198.18.77.2', 7777), 3)\n\
                 s.settimeout(3)\n\
                 print(s.recv(100).decode())",
            )
            .output()
            .await
            .unwrap();
        got = String::from_utf8_lossy(&out.stdout).into_owned();
        if !got.contains("guest-says-hello") {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    vm.kill().await.unwrap();
    assert!(wait_pid_gone(pid, Duration::from_secs(5)).await);
    assert!(
        got.contains("guest-says-hello"),
        "read {got:?} from the guest through the bridge; console:\n{}",
        std::fs::read_to_string(run_dir.console_log()).unwrap_or_default()
    );
    // The tap lived exactly as long as QEMU.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/sys/class/net/{}", taps[0])).exists() {
        assert!(Instant::now() < deadline, "{} outlived QEMU", taps[0]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_runs_in_its_own_cgroup_with_the_specs_limits() {
    if unsafe { libc::geteuid() } != 0 || !Path::new("/sys/fs/cgroup").exists() {
        println!("needs root and a cgroup file system; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny_spec(dir.path(), "limited", &TinyOptions::default()).await;
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    let pid = vm.pid();
    let limits = novacron_qemu::cgroup::Limits::for_spec(&spec);

    // /proc/PID/cgroup: "N:controllers:/path" (v1) or "0::/path" (v2).
    let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut dirs = vec![];
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        if !path.starts_with("/novacron/vm-") {
            continue;
        }
        let (dir, quota_file, quota, mem_file) = match controllers {
            "" => (
                "/sys/fs/cgroup".to_string(),
                "cpu.max",
                format!("{} 100000", limits.cpu_quota_us),
                "memory.max",
            ),
            c if c.split(',').any(|x| x == "cpu") => (
                "/sys/fs/cgroup/cpu".to_string(),
                "cpu.cfs_quota_us",
                limits.cpu_quota_us.to_string(),
                "",
            ),
            c if c.split(',').any(|x| x == "memory") => (
                "/sys/fs/cgroup/memory".to_string(),
                "",
                String::new(),
                "memory.limit_in_bytes",
            ),
            _ => continue,
        };
        let group = format!("{dir}{path}");
        if !quota_file.is_empty() {
            let got = std::fs::read_to_string(format!("{group}/{quota_file}")).unwrap();
            assert_eq!(got.trim(), quota, "{group}/{quota_file}");
        }
        if !mem_file.is_empty() {
            let got = std::fs::read_to_string(format!("{group}/{mem_file}")).unwrap();
            assert_eq!(
                got.trim(),
                limits.memory_bytes.to_string(),
                "{group}/{mem_file}"
            );
        }
        dirs.push(group);
    }
    assert!(
        !dirs.is_empty(),
        "QEMU is in no group of its own:\n{groups}"
    );
    wait_ready(&vm, 0).await;
    vm.kill().await.unwrap();
    assert!(wait_pid_gone(pid, Duration::from_secs(5)).await);
    let deadline = Instant::now() + Duration::from_secs(5);
    while dirs.iter().any(|d| Path::new(d).exists()) {
        assert!(
            Instant::now() < deadline,
            "cgroups left after QEMU ended: {dirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `python3` as `uid`:`uid` and reports, for each path, whether that user could open it
/// (a file: read; a socket: connect).
fn opens_as(uid: u32, paths: &[&Path]) -> Vec<bool> {
    use std::os::unix::process::CommandExt;
    let script = "import os,socket,stat,sys\n\
        for p in sys.argv[1:]:\n\
        \x20   try:\n\
        \x20       if stat.S_ISSOCK(os.stat(p).st_mode):\n\
        \x20           s=socket.socket(socket.AF_UNIX); s.connect(p); s.close()\n\
        \x20       else:\n\
        \x20           open(p,'rb').close()\n\
        \x20       print('yes')\n\
        \x20   except OSError:\n\
        \x20       print('no')\n";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(paths)
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l == "yes")
        .collect()
}

/// Two QEMUs, each as its own unprivileged user: each boots from its own disk, the agent (root)
/// still drives both over QMP, and one VM's user can open neither the other's disk nor its QMP
/// socket, while it can open its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_qemu_runs_as_its_own_user_and_cannot_open_anothers_files() {
    use std::os::unix::fs::PermissionsExt;
    if unsafe { libc::geteuid() } != 0 {
        println!("needs root to switch users; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The VMs' users must be able to walk to their files and read the shared kernel.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let base = tiny_spec(dir.path(), "base", &TinyOptions::default()).await;
    let uids = [0x7000_0f01_u32, 0x7000_0f02];
    let mut vms = vec![];
    for (i, uid) in uids.iter().enumerate() {
        let vm_dir = dir.path().join(format!("vm{i}"));
        std::fs::create_dir(&vm_dir).unwrap();
        std::fs::set_permissions(&vm_dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        let disk = vm_dir.join("disk0.qcow2");
        novacron_qemu::create_blank(&disk, novacron_qemu::DiskFormat::Qcow2, 16 << 20)
            .await
            .unwrap();
        let spec = VmSpec {
            name: format!("user{i}"),
            disks: vec![novacron_qemu::DiskSpec {
                path: disk.clone(),
                format: novacron_qemu::DiskFormat::Qcow2,
                read_only: false,
                backing: Vec::new(),
            }],
            run_as: Some(novacron_qemu::RunAs {
                uid: *uid,
                gid: *uid,
                groups: vec![],
            }),
            ..base.clone()
        };
        let run_dir = RunDir::new(vm_dir.join("run"));
        let vm = launch(&spec, &run_dir).await.unwrap();
        let status = std::fs::read_to_string(format!("/proc/{}/status", vm.pid())).unwrap();
        let ids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        let want = format!("{uid}");
        assert!(
            ids.split_whitespace().skip(1).all(|x| x == want),
            "QEMU of vm{i} runs as {ids:?}, expected uid {uid} everywhere"
        );
        vms.push((vm, disk, run_dir));
    }
    for (vm, _, _) in &vms {
        wait_ready(vm, 0).await;
        assert!(vm.qmp().query_status().await.unwrap().running);
    }
    let (a_disk, a_qmp) = (&vms[0].1, vms[0].2.qmp_socket());
    let (b_disk, b_qmp) = (&vms[1].1, vms[1].2.qmp_socket());
    assert_eq!(
        opens_as(uids[0], &[a_disk, &a_qmp, b_disk, &b_qmp]),
        vec![true, true, false, false],
        "vm0's user opens: its disk, its QMP socket, vm1's disk, vm1's QMP socket"
    );
    assert_eq!(
        opens_as(uids[1], &[a_disk, &a_qmp]),
        vec![false, false],
        "vm1's user opens vm0's disk, vm0's QMP socket"
    );
    for (vm, _, _) in vms {
        let pid = vm.pid();
        vm.kill().await.unwrap();
        assert!(wait_pid_gone(pid, Duration::from_secs(5)).await);
    }
}

/// A guest with qemu-guest-agent (the tiny image carries the host's): commands run in the
/// guest with their output, exit status and input; sessions queue for the one channel; an
/// adopted QEMU (after an agent restart) still reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_agent_runs_commands_in_the_guest() {
    let Some(agent) = novacron_qemu::host_guest_agent() else {
        panic!("qemu-guest-agent is not installed: run scripts/deps.sh test");
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = TinyOptions {
        guest_agent: Some(agent),
        ..Default::default()
    };
    let spec = tiny_spec(dir.path(), "exec", &opts).await;
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    wait_ready(&vm, 0).await;
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(30);

    // The agent starts after the ready marker: the first session waits for its sync.
    let started = Instant::now();
    let mut session = loop {
        match vm.guest_agent().await {
            Ok(s) => break s,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                println!("guest agent not there yet: {e}")
            }
            Err(e) => panic!("{e}"),
        }
    };
    println!(
        "guest agent answered {} ms after the marker",
        started.elapsed().as_millis()
    );
    let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let out = session
        .exec(&argv(&["cat", "/etc/hostname"]), None, deadline())
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.stdout, b"novacron-tiny\n");
    let out = session
        .exec(
            &argv(&["sh", "-c", "echo to-out; echo to-err >&2; exit 3"]),
            None,
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_slice(), out.stderr.as_slice()),
        (Some(3), &b"to-out\n"[..], &b"to-err\n"[..])
    );
    // Input reaches the command; 300 KiB of output comes back whole.
    let out = session
        .exec(&argv(&["tr", "a-z", "A-Z"]), Some(b"shout\n"), deadline())
        .await
        .unwrap();
    assert_eq!(out.stdout, b"SHOUT\n");
    let out = session
        .exec(
            &argv(&["sh", "-c", "head -c 307200 /dev/zero | tr '\\0' x"]),
            None,
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 307_200);
    assert!(out.stdout.iter().all(|b| *b == b'x'));
    // A command the guest cannot find is the agent's refusal, not an empty success.
    let missing = session
        .exec(&argv(&["/no/such/program"]), None, deadline())
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("refused"), "{missing}");

    // A second session waits for the first to end.
    let second = {
        let vm = vm.clone();
        tokio::spawn(async move {
            let mut s = vm.guest_agent().await.unwrap();
            s.exec(&argv(&["echo", "second"]), None, deadline())
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second session did not wait");
    drop(session);
    assert_eq!(second.await.unwrap().stdout, b"second\n");

    // An agent restart: the adopted handle reaches the guest agent too.
    drop(vm);
    let adopted = adopt(&run_dir).await.unwrap().unwrap();
    let out = adopted
        .guest_agent()
        .await
        .unwrap()
        .exec(&argv(&["uname", "-s"]), None, deadline())
        .await
        .unwrap();
    assert_eq!(out.stdout, b"Linux\n");
    adopted.kill().await.unwrap();
}
