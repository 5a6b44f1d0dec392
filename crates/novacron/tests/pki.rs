//! End-to-end checks of who may join and what stays valid, through the real CLI against a
//! real `novacron up` on loopback: join tokens (single use, expiry, revocation, listing
//! without secrets, stored only as hashes).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::Value;

/// Runs `novacron agent` joining with `token`; it must give up (non-zero exit) within a
/// minute. Returns what it printed on stderr.
fn agent_refused(c: &Cluster, name: &str, token: &str) -> String {
    let mut child = c
        .agent_command(name, token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            common::stop_child(&mut child, Duration::from_secs(5));
            panic!("agent {name} joined with a token that should have been refused");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "agent {name} exited successfully: {err}");
    err
}

fn wait_ready(c: &Cluster, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&c.cli(&["node", "show", node, "-o", "json"]).stdout)
        .contains("\"ready\"")
    {
        assert!(
            Instant::now() < deadline,
            "{node} did not join; its log:\n{}",
            common::tail(&c.agent_log(node), 30)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn entry(c: &Cluster, id: &str) -> Value {
    let list = c.json(&["join-token", "list"]);
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

/// Every file of the embedded store (the database and its WAL), concatenated.
fn store_bytes(data_dir: &Path) -> Vec<u8> {
    let mut all = vec![];
    for f in ["state.db", "state.db-wal"] {
        if let Ok(b) = std::fs::read(data_dir.join(f)) {
            all.extend(b);
        }
    }
    all
}

#[test]
fn join_tokens_are_single_use_expire_revoke_and_list_without_secrets() {
    let mut c = Cluster::start();
    let default_token = c.join_token.clone();

    // Create: the token is printed once, with its entry.
    let created = c.json(&[
        "join-token",
        "create",
        "--single-use",
        "--name",
        "one-node",
        "--ttl",
        "1h",
    ]);
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let secret = token.rsplit('.').next().unwrap().to_string();
    assert!(token.starts_with("NVC1."), "{created}");
    assert_eq!(created["single_use"], true);
    let expires = created["expires_at"].as_u64().unwrap();
    let created_at = created["created_at"].as_u64().unwrap();
    assert!((3590..=3610).contains(&(expires - created_at)), "{created}");

    // Listed without its secret; the store holds only its hash.
    let listed = c.ok(&["join-token", "list", "-o", "json"]);
    assert!(!listed.contains(&secret), "list shows a secret: {listed}");
    let table = c.ok(&["join-token", "list"]);
    assert!(table.contains(&id) && table.contains("one-node"), "{table}");
    let e = entry(&c, &id);
    assert_eq!(
        (&e["name"], &e["single_use"], &e["used"], &e["state"]),
        (
            &Value::from("one-node"),
            &Value::from(true),
            &Value::from(false),
            &Value::from("active")
        ),
        "{e}"
    );
    let store = store_bytes(&c.data_dir);
    assert!(
        !store.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the join secret is in the store"
    );

    // A single-use token registers exactly one node.
    c.join_token = token.clone();
    c.start_agent("node-b");
    wait_ready(&c, "node-b");
    let e = entry(&c, &id);
    assert_eq!(e["used"], true, "{e}");
    assert_eq!(e["used_by"], "node-b", "{e}");
    assert_eq!(e["state"], "used", "{e}");
    let err = agent_refused(&c, "node-c", &token);
    assert!(
        err.contains("single-use") && err.contains("node-b") && err.contains("join-token create"),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&c.cli(&["node", "list", "-o", "json"]).stdout).contains("node-c")
    );

    // An expired token is refused, saying what to do.
    let short = c.json(&["join-token", "create", "--ttl", "1s"]);
    std::thread::sleep(Duration::from_secs(2));
    let err = agent_refused(&c, "node-d", short["token"].as_str().unwrap());
    assert!(
        err.contains("expired") && err.contains("join-token create"),
        "{err}"
    );
    assert_eq!(entry(&c, short["id"].as_str().unwrap())["state"], "expired");

    // A revoked one too.
    let revoked = c.json(&["join-token", "create", "--name", "to-revoke"]);
    let rid = revoked["id"].as_str().unwrap();
    let r = c.json(&["join-token", "revoke", rid]);
    assert_eq!(r["revoked"], true, "{r}");
    assert_eq!(entry(&c, rid)["state"], "revoked");
    let err = agent_refused(&c, "node-e", revoked["token"].as_str().unwrap());
    assert!(
        err.contains("revoked") && err.contains("join-token create"),
        "{err}"
    );
    let err = c.fails(&["join-token", "revoke", "jt-nosuch"]);
    assert!(err.contains("join-token list"), "{err}");
    let err = c.fails(&["join-token", "create", "--ttl", "0h"]);
    assert!(err.contains("ttl") || err.contains("duration"), "{err}");

    // The token `up` printed is the default join token: listed, reusable, still working.
    let all = c.json(&["join-token", "list"]);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "default" && t["single_use"] == false && t["state"] == "active"),
        "{all}"
    );
    c.join_token = default_token;
    c.start_agent("node-f");
    wait_ready(&c, "node-f");
}

/// Every run of at least 20 characters that could be a token (base64url or hex) in `bytes`.
fn secret_looking(bytes: &[u8]) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut run = String::new();
    for &b in bytes.iter().chain(std::iter::once(&0u8)) {
        let c = b as char;
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            run.push(c);
            continue;
        }
        if (20..=200).contains(&run.len()) {
            out.insert(run.clone());
        }
        run.clear();
    }
    out
}

/// One HTTPS call with curl trusting `ca`; returns the status.
fn status_of(url: &str, ca: &Path, method: &str, token: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["-X", method, "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn no_value_in_the_store_authenticates_and_the_ca_key_is_a_private_file() {
    use std::os::unix::fs::MetadataExt;
    let mut c = Cluster::start();
    // Tokens of every kind exist: admin (CLI), join (default and a created one), node and
    // agent server tokens (two nodes), the replica credential of this control plane.
    c.json(&["join-token", "create", "--name", "extra"]);
    c.start_agent("node-b");
    wait_ready(&c, "node-b");

    let cli: Value = serde_json::from_slice(&std::fs::read(&c.config).unwrap()).unwrap();
    let ca = c.dir.path().join("ca.pem");
    std::fs::write(&ca, cli["ca_cert_pem"].as_str().unwrap()).unwrap();
    let admin = cli["token"].as_str().unwrap().to_string();
    let node_b: Value =
        serde_json::from_slice(&std::fs::read(c.dir.path().join("node-b/node.json")).unwrap())
            .unwrap();
    let agent_url = c.json(&["node", "show", "node-a"])["agent_url"]
        .as_str()
        .unwrap()
        .to_string();
    let register = format!("{}/api/v1/agent/register", c.url);
    let agent_route = format!("{agent_url}/agent/v1/vms/default/nosuch/console");

    // The probes can tell a valid token from an invalid one.
    assert_ne!(status_of(&register, &ca, "POST", &admin), 401);
    assert_ne!(
        status_of(
            &register,
            &ca,
            "POST",
            node_b["node_token"].as_str().unwrap()
        ),
        401
    );
    assert_eq!(status_of(&register, &ca, "POST", "not-a-token"), 401);
    let agent_a: Value =
        serde_json::from_slice(&std::fs::read(c.data_dir.join("agent/node.json")).unwrap())
            .unwrap();
    assert_ne!(
        status_of(
            &agent_route,
            &ca,
            "GET",
            agent_a["server_token"].as_str().unwrap()
        ),
        401
    );

    // Read the store as an attacker would (the raw files, WAL included): no value in it
    // authenticates, to the control plane (any token kind: the register route admits
    // admin, join and node tokens, and a replica credential gets 403 there, not 401) or to
    // an agent.
    let store = store_bytes(&c.data_dir);
    assert!(!store.is_empty());
    let candidates = secret_looking(&store);
    assert!(candidates.len() > 10, "{candidates:?}");
    for secret in [
        &admin,
        node_b["node_token"].as_str().unwrap().to_string().as_str(),
    ] {
        assert!(!candidates.contains(secret), "a token is in the store");
    }
    for value in &candidates {
        assert_eq!(
            status_of(&register, &ca, "POST", value),
            401,
            "{value} from the store authenticates to the control plane"
        );
        assert_eq!(
            status_of(&agent_route, &ca, "GET", value),
            401,
            "{value} from the store authenticates to an agent"
        );
    }
    assert!(
        !store.windows(11).any(|w| w == b"PRIVATE KEY"),
        "the store holds a private key"
    );

    // The CA key is a file of the control plane, readable by its owner only.
    let key = c.data_dir.join("control-plane/ca.key");
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600, "{}", key.display());
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("PRIVATE KEY")
    );

    // A restart keeps the cluster (same CA, the agent still works) and the store clean.
    c.kill9_up();
    c.launch_up();
    let again: Value = serde_json::from_slice(&std::fs::read(&c.config).unwrap()).unwrap();
    assert_eq!(again["ca_cert_pem"], cli["ca_cert_pem"]);
    wait_ready(&c, "node-b");
    assert!(
        !store_bytes(&c.data_dir)
            .windows(11)
            .any(|w| w == b"PRIVATE KEY")
    );
}
