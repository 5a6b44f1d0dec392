//! Shared set-up of the end-to-end migration tests: two QEMUs (TCG), a DWCP session on loopback.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use novacron_dwcp::testing::TestCa;
use novacron_dwcp::{Listener, Session, SessionOptions};
use novacron_qemu::{Accel, Boot, DiskSpec, RunDir, RunningVm, TinyImage, VmSpec};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

pub fn spec(name: &str, tiny: &TinyImage, memory_mib: u64, disks: Vec<DiskSpec>) -> VmSpec {
    VmSpec {
        name: name.into(),
        uuid: "6f0c1f1e-8a8e-4f0e-9c55-2d2b8f3f0a01".into(),
        cpus: 1,
        memory_bytes: memory_mib << 20,
        accel: Accel::Tcg,
        machine: Some("pc-q35-7.2".into()),
        boot: Boot::Kernel {
            kernel: tiny.kernel.clone(),
            initrd: Some(tiny.initrd.clone()),
            cmdline: tiny.cmdline.clone(),
        },
        disks,
        ..Default::default()
    }
}

/// The destination of `spec`: same VM, `-incoming defer -S`.
pub fn incoming(spec: &VmSpec, disks: Vec<DiskSpec>) -> VmSpec {
    VmSpec {
        incoming: Some("defer".into()),
        start_paused: true,
        disks,
        ..spec.clone()
    }
}

/// Launches QEMUs and kills every one of them when dropped (also when the test panics): QEMU
/// runs in its own session and would outlive the test otherwise.
///
/// The drop never blocks for long: SIGKILL, then a reap bounded in time. It runs on the test's
/// runtime thread while the runtime may be shutting down, when the runtime task that normally
/// reaps QEMU is gone; without the reap the killed QEMUs stay zombies.
#[derive(Default)]
pub struct Reaper(std::sync::Mutex<Vec<RunningVm>>);

/// Longest the reaper waits for killed QEMUs to be gone.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

impl Reaper {
    pub async fn launch(&self, spec: &VmSpec, dir: &Path) -> RunningVm {
        let vm = novacron_qemu::launch(spec, &RunDir::new(dir))
            .await
            .unwrap();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(vm.clone());
        vm
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let vms = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        // A VM that has exited was reaped by its runtime task: its pid may be reused by now.
        let pids: Vec<u32> = vms
            .iter()
            .filter(|vm| !vm.has_exited())
            .map(RunningVm::pid)
            .collect();
        novacron_qemu::process::kill_and_reap(&pids, REAP_TIMEOUT);
    }
}

pub async fn wait_ready(vm: &RunningVm) {
    novacron_qemu::console::wait_for_text(
        &vm.run_dir().console_log(),
        novacron_qemu::GUEST_READY_MARKER,
        0,
        Duration::from_secs(120),
    )
    .await
    .unwrap();
}

/// A DWCP session pair over loopback: (source side = client, destination side = server).
/// Runs the destination side of a migration into `dst` on its own task.
pub fn spawn_destination(
    dst: &RunningVm,
    session: Session,
    params: novacron_migrate::DestinationParams,
    cancel: &novacron_migrate::CancellationToken,
) -> tokio::task::JoinHandle<
    Result<novacron_migrate::DestinationReady, novacron_migrate::MigrateError>,
> {
    let (qmp, cancel) = (dst.qmp().clone(), cancel.clone());
    tokio::spawn(
        async move { novacron_migrate::destination(&qmp, &session, &params, &cancel).await },
    )
}

pub async fn session_pair() -> (Session, Session) {
    let ca = TestCa::new("migrate test").unwrap();
    let (a, b) = (ca.issue("node-a").unwrap(), ca.issue("node-b").unwrap());
    let opts = SessionOptions {
        server_name: "node-b".into(),
        ..SessionOptions::default()
    };
    let l = Listener::bind("127.0.0.1:0".parse().unwrap(), &b, opts.clone())
        .await
        .unwrap();
    let addr = l.local_addr();
    let accept = tokio::spawn(async move { l.accept().await.unwrap() });
    let client = novacron_dwcp::connect(addr, &a, opts).await.unwrap();
    let server = accept.await.unwrap();
    (client, server)
}

/// Types `cmd` into the console and waits for `expect` after it.
pub async fn console_roundtrip(vm: &RunningVm, cmd: &str, expect: &str) {
    let from = novacron_qemu::console::console_log_len(vm.run_dir());
    novacron_qemu::console::send_console_line(vm.run_dir(), cmd)
        .await
        .unwrap();
    novacron_qemu::console::wait_for_text(
        &vm.run_dir().console_log(),
        expect,
        from,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
}

pub fn short_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(format!("/tmp/ncm-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
