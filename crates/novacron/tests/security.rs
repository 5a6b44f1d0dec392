//! End-to-end security checks through the real CLI and roles: images that refer to host files
//! are refused at import, and everything NovaCron writes (data dirs, store, VM disks, run dirs,
//! CLI config) is readable by its owner only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Cluster;

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn import_refuses_images_that_refer_to_host_files() {
    let c = Cluster::start();
    let d = c.dir.path();
    let host_file = d.join("host-secret");
    let mut secret = b"HOST-SECRET".to_vec();
    secret.resize(1 << 20, 0);
    std::fs::write(&host_file, &secret).unwrap();

    // The finding: a qcow2 whose header names an external (raw) data file.
    let evil = d.join("evil.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        &format!("data_file={},data_file_raw=on", host_file.display()),
        evil.to_str().unwrap(),
        "1M",
    ]);
    // `qemu-img create` itself rewrites the data file: put the secret in afterwards.
    std::fs::write(&host_file, &secret).unwrap();
    let err = c.fails(&["image", "import", "evil", evil.to_str().unwrap()]);
    assert!(
        err.contains("not a usable disk image") && err.contains("external data file"),
        "{err}"
    );
    assert!(
        err.contains(host_file.to_str().unwrap()),
        "names the file: {err}"
    );
    assert!(err.contains("qemu-img convert"), "says what to do: {err}");

    // A backing file stays refused.
    let base = d.join("base.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "1M"]);
    let backed = d.join("backed.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        base.to_str().unwrap(),
        backed.to_str().unwrap(),
    ]);
    let err = c.fails(&["image", "import", "backed", backed.to_str().unwrap()]);
    assert!(err.contains("backing file"), "{err}");

    // Nothing was recorded or left behind, and the host file is untouched.
    assert_eq!(c.json(&["image", "list"]), serde_json::json!([]));
    let incoming = c.data_dir.join("control-plane/images/.incoming");
    assert!(!incoming.exists() || std::fs::read_dir(&incoming).unwrap().next().is_none());
    assert!(
        std::fs::read(&host_file).unwrap() == secret,
        "the host file was touched"
    );

    // The same base without references imports fine.
    let img = c.json(&["image", "import", "base", base.to_str().unwrap()]);
    assert_eq!(img["format"], "qcow2");
}

/// Every entry under `root` whose mode lets group or other in, with its mode. Two exceptions
/// serve the VMs' own users (see `novacron_agent::users`): directories may be passable (not
/// listable) by others, and images of the images group readable by that group.
fn open_entries(root: &Path) -> Vec<String> {
    let mut bad = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let ft = meta.file_type();
        let mode = meta.mode() & 0o7777;
        let ok = if ft.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            mode == 0o700 || mode == 0o711
        } else if ft.is_file() {
            mode == 0o600 || (mode == 0o640 && meta.gid() == novacron_agent::users::IMAGE_GID)
        } else if ft.is_socket() {
            mode & 0o077 == 0
        } else {
            ft.is_symlink()
        };
        if !ok {
            bad.push(format!("{} {mode:o}", p.display()));
        }
    }
    bad
}

#[test]
fn data_dirs_and_cli_config_are_owner_only() {
    let mut c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let node_b = c.start_agent("node-b");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&c.cli(&["node", "show", "node-b", "-o", "json"]).stdout)
        .contains("\"ready\"")
    {
        assert!(std::time::Instant::now() < deadline, "node-b did not join");
        std::thread::sleep(Duration::from_millis(300));
    }
    let vm = c.json(&[
        "vm", "create", "web1", "--image", "tiny", "--cpus", "1", "--memory", "128M", "--accel",
        "tcg", "--disk", "16M", "--node", "node-a",
    ]);
    assert_eq!(vm["state"], "running", "{vm}");
    let base = c.dir.path().join("base.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "1M"]);
    c.ok(&["image", "import", "base", base.to_str().unwrap()]);

    // Everything that matters exists where we look.
    for p in [
        "state.db",
        "state.db-wal",
        "join-token",
        "agent/vms/default/web1/disk0.qcow2",
        "control-plane/images/default/base/disk",
    ] {
        assert!(c.data_dir.join(p).exists(), "{p} missing");
    }
    let bad = open_entries(&c.data_dir);
    assert!(bad.is_empty(), "readable by group or other: {bad:#?}");
    let bad = open_entries(&node_b);
    assert!(
        bad.is_empty(),
        "agent dir readable by group or other: {bad:#?}"
    );
    let config_mode = std::fs::metadata(&c.config).unwrap().mode() & 0o7777;
    assert_eq!(config_mode, 0o600, "CLI config");

    // What an older version (or an operator) left open is narrowed on the next start, with a warning.
    c.kill9_up();
    let set = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    set(&c.data_dir, 0o755).unwrap();
    set(&c.data_dir.join("state.db"), 0o644).unwrap();
    set(
        &c.data_dir.join("agent/vms/default/web1/disk0.qcow2"),
        0o644,
    )
    .unwrap();
    c.launch_up();
    let bad = open_entries(&c.data_dir);
    assert!(bad.is_empty(), "not narrowed on start: {bad:#?}");
    let log = c.log();
    assert!(
        log.contains("narrowed it to its owner") && log.contains("state.db"),
        "no warning naming the file:\n{}",
        common::tail(&log, 30)
    );
}
