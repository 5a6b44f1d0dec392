//! `novacron events` against a real `novacron up` with a real (TCG) guest: a follower sees
//! the VM's life in order, a later reader resuming after an id sees exactly the rest, a
//! filter leaves out what it should; and errors in `-o json` mode are JSON on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{BIN, Cluster};
use serde_json::Value;

fn id_of(e: &Value) -> (i64, u32) {
    let (r, i) = e["id"].as_str().unwrap().split_once('-').unwrap();
    (r.parse().unwrap(), i.parse().unwrap())
}

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn events_follow_a_vm_in_order_and_resume_exactly() {
    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);

    let mut follower = Command::new(BIN)
        .args(["events", "--follow", "--vm", "web1", "-o", "json"])
        .env("NOVACRON_CONFIG", &c.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });

    c.ok(&[
        "vm", "create", "web1", "--image", "tiny", "--cpus", "1", "--memory", "128M", "--accel",
        "tcg",
    ]);
    c.ok(&["vm", "stop", "web1"]);

    // The follower sees the VM created, starting, running, then stopped, in that order.
    let mut seen: Vec<Value> = vec![];
    let stopped = |e: &Value| e["action"] == "state" && e["data"]["state"] == "stopped";
    while !seen.last().is_some_and(stopped) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(e) => seen.push(e),
            Err(_) => {
                let _ = follower.kill();
                panic!("no stopped event within 60 s; saw {seen:#?}");
            }
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(
        seen.windows(2).all(|w| id_of(&w[0]) < id_of(&w[1])),
        "ids increase: {seen:#?}"
    );
    let states: Vec<&str> = seen
        .iter()
        .filter(|e| e["kind"] == "vm" && e["action"] == "state")
        .map(|e| e["data"]["state"].as_str().unwrap())
        .collect();
    let pos = |s: &str| states.iter().position(|x| *x == s);
    assert!(
        pos("running").is_some() && pos("running") < pos("stopped"),
        "VM states in order: {states:?}"
    );
    assert_eq!(seen[0]["action"], "created", "{:#?}", seen[0]);
    assert!(
        seen.iter().all(|e| e["resource"] == "vm/web1"
            || e["related"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == "vm/web1"))),
        "only events about web1"
    );
    assert!(
        seen.iter().any(|e| e["kind"] == "operation"),
        "web1's operations are among its events"
    );

    // A reader that stopped after the second event gets exactly the rest.
    let after = seen[1]["id"].as_str().unwrap();
    let rest = lines(&c.ok(&["events", "--vm", "web1", "--after", after, "-o", "json"]));
    assert_eq!(
        rest[..seen.len() - 2],
        seen[2..],
        "exactly the events after {after}"
    );

    // A filter that excludes: node events only, none of them about web1.
    let nodes = lines(&c.ok(&["events", "--kind", "node", "-o", "json"]));
    assert!(!nodes.is_empty(), "node-a came up");
    assert!(nodes.iter().all(|e| e["kind"] == "node"), "{nodes:#?}");
    let table = c.ok(&["events", "--kind", "node"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("node/node-a"), "{table}");
}

#[test]
fn errors_in_json_mode_are_json_on_stderr_with_the_same_exit_codes() {
    let c = Cluster::start();
    let out = c.cli(&["vm", "show", "nope", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["code"], "not_found", "{err}");
    assert!(err["message"].as_str().unwrap().contains("nope"), "{err}");
    let plain = c.cli(&["vm", "show", "nope"]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&plain.stderr).starts_with("error: "));

    let usage = c.cli(&["vm", "frobnicate", "-o", "json"]);
    assert_eq!(usage.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&usage.stderr).unwrap();
    assert_eq!(err["code"], "invalid_argument", "{err}");

    let bad_kind = c.cli(&["events", "--kind", "vms", "-o", "json"]);
    assert_eq!(bad_kind.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&bad_kind.stderr).unwrap();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("unknown event kind"),
        "{err}"
    );
}
