//! Boot time of the tiny guest to its ready marker under TCG, per machine type and kernel command line.
//! A measurement, not a check: run with
//! `cargo test -p novacron-qemu --release --test boot_time -- --ignored --nocapture`.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use novacron_qemu::console::wait_for_text;
use novacron_qemu::{
    Accel, Boot, GUEST_READY_MARKER, RunDir, TinyOptions, VmSpec, build_tiny, launch,
};

async fn boot_ms(dir: &std::path::Path, machine: &str, cmdline: &str, run: String) -> (u128, u128) {
    let image = build_tiny(&dir.join("image"), &TinyOptions::default())
        .await
        .unwrap();
    let spec = VmSpec {
        name: format!("boot-{machine}"),
        uuid: "11111111-2222-4333-8444-555555555555".into(),
        memory_bytes: 128 << 20,
        accel: Accel::Tcg,
        machine: Some(machine.into()),
        boot: Boot::Kernel {
            kernel: image.kernel,
            initrd: Some(image.initrd),
            cmdline: cmdline.into(),
        },
        ..Default::default()
    };
    let run_dir = RunDir::new(dir.join(format!("run-{run}")));
    let t = Instant::now();
    let vm = launch(&spec, &run_dir).await.unwrap();
    wait_for_text(
        &run_dir.console_log(),
        GUEST_READY_MARKER,
        0,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let boot = t.elapsed().as_millis();
    let t = Instant::now();
    let info = vm.shutdown(Duration::from_secs(20)).await.unwrap();
    assert!(info.clean, "{info:?}");
    (boot, t.elapsed().as_millis())
}

fn median(mut v: Vec<u128>) -> (u128, u128, u128) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn tiny_boot_time_by_machine_type() {
    let dir = tempfile::tempdir().unwrap();
    let runs = 5;
    let variants = [
        ("q35", novacron_qemu::tiny::TINY_CMDLINE.to_string()),
        ("pc", novacron_qemu::tiny::TINY_CMDLINE.to_string()),
        (
            "q35",
            "console=ttyS0 quiet panic=-1 oops=panic i8042.noaux i8042.nokbd i8042.nopnp"
                .to_string(),
        ),
    ];
    for (variant, (machine, cmdline)) in variants.iter().enumerate() {
        let mut boots = Vec::new();
        let mut stops = Vec::new();
        for run in 0..runs {
            let (b, s) = boot_ms(dir.path(), machine, cmdline, format!("{variant}-{run}")).await;
            boots.push(b);
            stops.push(s);
        }
        let (bm, bmin, bmax) = median(boots);
        let (sm, smin, smax) = median(stops);
        println!(
            "machine={machine} cmdline={cmdline:?} runs={runs} boot_to_ready_ms median={bm} min={bmin} max={bmax} \
             acpi_shutdown_ms median={sm} min={smin} max={smax}"
        );
    }
}
