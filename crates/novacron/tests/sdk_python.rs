//! The Python SDK under `sdk/python` (issue 16 §4): the checked-in tree is what the pinned
//! generator makes of today's OpenAPI document, and the SDK lists, creates and deletes a VM
//! against a real `novacron up` (TCG guest), over TLS verified against the cluster CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{BIN, Cluster};

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python")
}

/// Every file under `dir`, by path relative to it.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "__pycache__") {
                    continue;
                }
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `sdk/python/generate.sh` run again (with this build's `novacron openapi`) gives exactly
/// the checked-in `sdk/python/novacron-client`: the SDK cannot drift from the server.
#[test]
fn the_checked_in_sdk_is_what_the_generator_makes_of_the_document() {
    // README's test command installs the pinned generator (scripts/deps.sh test): without
    // it this test would prove nothing, so it fails instead of passing quietly.
    assert!(
        Command::new("openapi-python-client")
            .arg("--version")
            .output()
            .is_ok(),
        "openapi-python-client is not installed: run scripts/deps.sh test"
    );
    let out_dir = tempfile::tempdir().unwrap();
    let fresh = out_dir.path().join("novacron-client");
    let run = Command::new(sdk_dir().join("generate.sh"))
        .arg(&fresh)
        .env("NOVACRON", BIN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "generate.sh failed:\n{stderr}");
    let checked_in = tree(&sdk_dir().join("novacron-client"));
    let generated = tree(&fresh);
    let differ: Vec<String> = checked_in
        .keys()
        .chain(generated.keys())
        .filter(|p| checked_in.get(*p) != generated.get(*p))
        .map(|p| p.display().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        differ.is_empty(),
        "the checked-in Python SDK differs from a fresh generation in {differ:?}: \
         run sdk/python/generate.sh and commit the result"
    );
    assert!(generated.contains_key(Path::new("novacron_client/api/vms/vms_create.py")));
}

/// The SDK's script lists, creates (TCG, tiny image) and deletes a VM; the Rust client
/// then finds no such VM and no QEMU process is left.
#[test]
fn the_python_sdk_lists_creates_and_deletes_a_vm() {
    let deps = Command::new("python3")
        .args(["-c", "import httpx, attrs, dateutil"])
        .output()
        .unwrap();
    assert!(
        deps.status.success(),
        "the Python SDK needs httpx, attrs and python-dateutil: run scripts/deps.sh test\n{}",
        String::from_utf8_lossy(&deps.stderr)
    );

    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let cli: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&c.config).unwrap()).unwrap();
    let token = cli["token"].as_str().unwrap().to_string();
    let ca_pem = cli["ca_cert_pem"].as_str().unwrap().to_string();
    let ca_file = c.dir.path().join("sdk-ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();

    let script = sdk_dir().join("tests/vm_lifecycle.py");
    let run = Command::new("python3")
        .arg(&script)
        .args(["py-vm", "tiny"])
        .env("PYTHONPATH", sdk_dir().join("novacron-client"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NOVACRON_URL", &c.url)
        .env("NOVACRON_TOKEN", &token)
        .env("NOVACRON_CA_CERT", &ca_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the SDK script failed:\n{stdout}{}\n--- up log tail ---\n{}",
        String::from_utf8_lossy(&run.stderr),
        common::tail(&c.log(), 40)
    );
    eprintln!("{stdout}");
    for step in [
        "listed 0 VMs",
        "created py-vm: running",
        "listed py-vm",
        "deleted py-vm (not_found)",
    ] {
        assert!(stdout.contains(step), "{step:?} missing from:\n{stdout}");
    }

    // The Rust client, on its own, agrees the VM is gone.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = novacron_client::Client::new(novacron_client::Config {
        servers: vec![c.url.clone()],
        token,
        ca_cert_pem: ca_pem,
    })
    .unwrap();
    let vms = rt.block_on(client.vm_list()).unwrap();
    assert!(vms.iter().all(|vm| vm.name != "py-vm"), "{vms:?}");
    let err = rt.block_on(client.vm_get("py-vm")).unwrap_err();
    assert_eq!(
        err.code(),
        Some(novacron_api_types::ErrorCode::NotFound),
        "{err}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !c.qemu_pids().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(c.qemu_pids(), Vec::<u32>::new(), "QEMU left running");
}
