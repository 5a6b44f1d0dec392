//! The CLI and the API refuse the same bad inputs with the same message (one validator in
//! api-types), and an upload the server refuses early ends the CLI with the server's answer,
//! not a silent death by SIGPIPE. A real `novacron up`, the real binary, and raw HTTP
//! requests (curl) for what the API answers by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::Cluster;
use serde_json::{Value, json};

/// Answers (HTTP status, JSON body) of `method path` with `body`, as the CLI's admin.
fn api(c: &Cluster, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let cfg: Value = serde_json::from_slice(&std::fs::read(&c.config).unwrap()).unwrap();
    let ca = c.dir.path().join("ca.pem");
    std::fs::write(&ca, cfg["ca_cert_pem"].as_str().unwrap()).unwrap();
    let mut child = Command::new("curl")
        .args(["-sS", "-X", method, "--cacert"])
        .arg(&ca)
        .args([
            "-H",
            &format!("Authorization: Bearer {}", cfg["token"].as_str().unwrap()),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            "-w",
            "\n%{http_code}",
            &format!("{}/api/v1{path}", c.url),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(body).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn create_body(patch: Value) -> Value {
    let mut b = json!({"name": "web1", "image": "tiny", "cpus": 1, "memory_bytes": 256u64 << 20});
    for (k, v) in patch.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

/// The CLI's stderr for a command that must fail with exit status 1 or 2 (never a signal).
fn cli_refusal(c: &Cluster, args: &[&str]) -> String {
    let out = c.cli(args);
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "`novacron {}` ended with {:?}: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    err
}

#[test]
fn cli_and_api_refuse_the_same_inputs_with_the_same_message() {
    let c = Cluster::start();
    let empty_key = c.dir.path().join("empty.pub");
    std::fs::write(&empty_key, "").unwrap();
    let key_path = empty_key.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>, Value)> = vec![
        (
            "forward 0:0",
            vec!["--forward", "0:0"],
            json!({"network": {"mode": "user", "forwards": [{"host_port": 0, "guest_port": 0}]}}),
        ),
        (
            "bridge name with a newline",
            vec!["--bridge", "br0\nevil"],
            json!({"network": {"mode": "bridge", "bridge": "br0\nevil"}}),
        ),
        (
            "bridge name with a space",
            vec!["--bridge", "br 0"],
            json!({"network": {"mode": "bridge", "bridge": "br 0"}}),
        ),
        (
            "bridge name over 15 bytes",
            vec!["--bridge", "bridge-too-long0"],
            json!({"network": {"mode": "bridge", "bridge": "bridge-too-long0"}}),
        ),
        (
            "empty ssh-key file",
            vec!["--ssh-key", key_path],
            json!({"ssh_keys": [""]}),
        ),
        ("bad image name", vec![], json!({"image": "Tiny"})),
    ];
    for (what, flags, patch) in cases {
        let body = create_body(patch);
        let (status, answer) = api(&c, "POST", "/vms", &body);
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(answer["code"], "invalid_argument", "{what}: {answer}");
        let message = answer["message"].as_str().unwrap();
        let image = body["image"].as_str().unwrap();
        let mut args = vec!["vm", "create", "web1", "--image", image];
        args.extend(flags);
        let err = cli_refusal(&c, &args);
        assert!(
            err.contains(message),
            "{what}: the CLI said {err:?}, the API {message:?}"
        );
    }
    // Unknown fields are refused by name, not ignored.
    let (status, answer) = api(&c, "POST", "/vms", &create_body(json!({"memory": "1G"})));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("`memory`"),
        "{answer}"
    );
    // Nothing was created along the way.
    assert_eq!(c.json(&["vm", "list"]), json!([]));
}

#[test]
fn an_upload_refused_early_prints_the_servers_error() {
    let c = Cluster::start();
    let small = c.dir.path().join("small.qcow2");
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&small)
        .arg("1M")
        .status()
        .unwrap();
    assert!(made.success());
    c.ok(&["image", "import", "disk1", small.to_str().unwrap()]);
    // A big upload to a name that is taken: the server answers 409 before reading it.
    let big = c.dir.path().join("big.raw");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(2 << 30).unwrap();
    drop(f);
    for _ in 0..3 {
        let out = c.cli(&["image", "import", "disk1", big.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            None,
            "the CLI was killed by a signal; stderr: {err:?}"
        );
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("error: ") && err.contains("already exists"),
            "not the server's answer: {err:?}"
        );
    }
    // The image that was there is untouched.
    let img = c.json(&["image", "show", "disk1"]);
    assert_eq!(
        img["size_bytes"],
        std::fs::metadata(&small).unwrap().len(),
        "{img}"
    );
}
