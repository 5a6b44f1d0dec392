//! End-to-end live migration through the CLI: a TCG guest with a local disk moves between
//! two nodes while a loop in it keeps printing. A cancel, a killed destination QEMU, a killed
//! destination or source agent and a 30 s link cut (nftables) each leave the VM running on
//! exactly one node with nothing left on the other, and the retry succeeds; `node evacuate`
//! brings it back. Needs root (nftables), like the other end-to-end tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Cluster, qemu_pids_under, tail};
use serde_json::Value;

const BOOT: Duration = Duration::from_secs(90);
const MARKER: &str = "NOVACRON-GUEST-READY";

fn last_beat(c: &Cluster, vm: &str) -> u64 {
    let log = c.console(vm);
    log.rsplit("HB")
        .filter_map(|s| {
            s.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .next()
        .unwrap_or(0)
}

/// Waits until the guest prints a heartbeat above `above`.
fn beats_after(c: &Cluster, vm: &str, above: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = last_beat(c, vm);
        if n > above {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "guest heartbeat stuck at {n} (wanted > {above}); console:\n{}",
            tail(&c.console(vm), 20)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn migration(c: &Cluster, id: &str) -> Value {
    c.json(&["migration", "show", id])
}

fn wait_migration(c: &Cluster, id: &str, states: &[&str], timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let m = migration(c, id);
        if states.iter().any(|s| m["state"] == *s) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "migration {id} not {states:?} after {timeout:?}: {m}\n--- up log ---\n{}",
            tail(&c.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts a slow migration (capped rate) and waits until memory or disk data is moving.
fn start_slow(c: &Cluster, vm: &str, to: &str) -> String {
    let m: Value = serde_json::from_str(&c.ok(&[
        "vm",
        "migrate",
        vm,
        "--to",
        to,
        "--bandwidth",
        "2mbit",
        "--no-wait",
        "-o",
        "json",
    ]))
    .unwrap();
    let id = m["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = migration(c, &id);
        assert_eq!(m["state"], "running", "{m}");
        if m["progress"]["bytes_sent"].as_u64().unwrap_or(0) > 0 {
            return id;
        }
        assert!(Instant::now() < deadline, "no data moving: {m}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The DWCP port the destination agent opened for its latest incoming migration.
fn incoming_port(c: &Cluster, node: &str) -> u16 {
    let log = common::strip_ansi(&c.agent_log(node));
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("waiting for the migration stream"))
        .expect("the destination logged its DWCP port");
    let at = line.find("port=").unwrap() + 5;
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// Drops every packet to and from `port` on this machine while it lives (nftables).
struct LinkCut(String);

impl LinkCut {
    fn new(port: u16) -> LinkCut {
        let table = format!("nctest{}", std::process::id());
        let script = format!(
            "table inet {table} {{ chain i {{ type filter hook input priority -10; tcp dport {port} drop; tcp sport {port} drop; }}; chain o {{ type filter hook output priority -10; tcp dport {port} drop; tcp sport {port} drop; }}; }}"
        );
        let out = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut ch| {
                use std::io::Write;
                ch.stdin.take().unwrap().write_all(script.as_bytes())?;
                ch.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success(), "nft: {out:?}");
        LinkCut(table)
    }
}

impl Drop for LinkCut {
    // Bounded: a hung nft must not keep a panicking test from ending.
    fn drop(&mut self) {
        if let Ok(mut nft) = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(nft.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            common::stop_child(&mut nft, Duration::from_secs(1));
        }
    }
}

/// After a failed or cancelled migration: the VM runs on `node`, beats on, and `other_dir`
/// (the destination's data dir) holds neither a QEMU nor files of it.
fn still_on(c: &Cluster, vm: &str, node: &str, other_dir: &Path) {
    let v = c.wait_state(vm, "running", Duration::from_secs(30));
    assert_eq!(v["node"], node, "{v}");
    let before = last_beat(c, vm);
    beats_after(c, vm, before);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !qemu_pids_under(other_dir).is_empty() || other_dir.join("vms/default").join(vm).exists()
    {
        assert!(
            Instant::now() < deadline,
            "the destination kept a QEMU ({:?}) or files of {vm}",
            qemu_pids_under(other_dir)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn vm_moves_between_nodes_faults_roll_back_and_evacuate_returns_it() {
    let mut c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let b_dir = c.start_agent("node-b");
    let a_dir = c.data_dir.join("agent");
    c.wait_nodes_ready(&["node-a", "node-b"]);
    let vm: Value = serde_json::from_str(&c.ok(&[
        "vm", "create", "mv1", "--image", "tiny", "--cpus", "1", "--memory", "96M", "--disk",
        "32M", "--accel", "tcg", "--node", "node-a", "--vnc", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(vm["node"], "node-a");
    c.wait_console("mv1", MARKER, 1, BOOT);
    // Data on the local disk that must move, then a heartbeat loop in the guest.
    c.console_send(
        "mv1",
        "echo disk-payload-4242 | dd of=/dev/vda bs=512 seek=2048 conv=fsync 2>/dev/null; sync\n",
    );
    c.console_send(
        "mv1",
        "(i=0; while true; do i=$((i+1)); echo HB$i; sleep 1.5; done) &\n",
    );
    let b0 = beats_after(&c, "mv1", 0);

    // Bad requests change nothing.
    let err = c.fails(&["vm", "migrate", "mv1", "--to", "node-a"]);
    assert!(err.contains("already runs on node-a"), "{err}");
    let err = c.fails(&["vm", "migrate", "mv1", "--to", "nowhere"]);
    assert!(err.contains("no node named"), "{err}");
    let err = c.fails(&[
        "vm",
        "migrate",
        "mv1",
        "--to",
        "node-b",
        "--max-downtime",
        "0ms",
    ]);
    assert!(err.contains("above 0"), "{err}");
    // Post-copy needs userfaultfd in the destination QEMU, which runs as the VM's own user:
    // with the host's default `vm.unprivileged_userfaultfd = 0` it is refused, with the fix,
    // and the refused migration stays in the list with its reason.
    let postcopy_refused = std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd")
        .is_ok_and(|v| v.trim() == "0");
    if postcopy_refused {
        let err = c.fails(&[
            "vm", "migrate", "mv1", "--to", "node-b", "--mode", "postcopy",
        ]);
        assert!(
            err.contains("sysctl vm.unprivileged_userfaultfd=1"),
            "{err}"
        );
    }

    // A pause limit the link cannot meet (the switch-over's own steps take longer) is refused
    // in the migration's first seconds, with what to give instead; the VM stays. (Its phase
    // lines come first on stderr: the error is the last line.)
    let out = c.cli(&[
        "vm",
        "migrate",
        "mv1",
        "--to",
        "node-b",
        "--max-downtime",
        "20ms",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        !out.status.success()
            && last.starts_with("error: ")
            && last.contains("cannot pause for less than")
            && last.contains("--max-downtime")
            && last.contains("stays on node-a"),
        "{err}"
    );
    still_on(&c, "mv1", "node-a", &b_dir);

    // 1. Cancel mid-way.
    let id = start_slow(&c, "mv1", "node-b");
    let err = c.fails(&["vm", "stop", "mv1"]);
    assert!(
        err.contains("migrating"),
        "changes wait for the migration: {err}"
    );
    c.ok(&["migration", "cancel", &id]);
    let m = wait_migration(&c, &id, &["cancelled"], Duration::from_secs(10));
    assert!(
        m["message"].as_str().unwrap().contains("stays on node-a"),
        "{m}"
    );
    still_on(&c, "mv1", "node-a", &b_dir);

    // 2. The destination QEMU dies mid-way.
    let id = start_slow(&c, "mv1", "node-b");
    let pids = qemu_pids_under(&b_dir);
    assert_eq!(pids.len(), 1, "one incoming QEMU on node-b");
    // SAFETY: kill(2) of a QEMU this test started.
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    let m = wait_migration(&c, &id, &["failed"], Duration::from_secs(60));
    assert!(
        m["message"].as_str().unwrap().contains("stays on node-a"),
        "{m}"
    );
    still_on(&c, "mv1", "node-a", &b_dir);

    // 3. The destination agent dies mid-way; once it is back it removes its leftovers.
    let id = start_slow(&c, "mv1", "node-b");
    c.kill9_agent("node-b");
    let m = wait_migration(&c, &id, &["failed"], Duration::from_secs(90));
    assert!(
        m["message"].as_str().unwrap().contains("stays on node-a"),
        "{m}"
    );
    c.restart_agent("node-b");
    c.wait_nodes_ready(&["node-a", "node-b"]);
    still_on(&c, "mv1", "node-a", &b_dir);

    // 4. The link between the nodes is cut for 30 s mid-way. Either the session dies and the
    //    migration rolls back, or it survives and goes on; the VM is on exactly one node.
    let id = start_slow(&c, "mv1", "node-b");
    let port = incoming_port(&c, "node-b");
    let sent_before = migration(&c, &id)["progress"]["bytes_sent"]
        .as_u64()
        .unwrap();
    {
        let _cut = LinkCut::new(port);
        std::thread::sleep(Duration::from_secs(30));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = migration(&c, &id);
        if m["state"] == "failed" {
            assert!(
                m["message"].as_str().unwrap().contains("stays on node-a"),
                "{m}"
            );
            break;
        }
        assert_eq!(m["state"], "running", "{m}");
        if m["progress"]["bytes_sent"].as_u64().unwrap() > sent_before + (1 << 20) {
            // The session survived the cut and moves data again: stop it here.
            c.ok(&["migration", "cancel", &id]);
            wait_migration(&c, &id, &["cancelled"], Duration::from_secs(30));
            break;
        }
        assert!(Instant::now() < deadline, "stuck after the cut: {m}");
        std::thread::sleep(Duration::from_millis(300));
    }
    still_on(&c, "mv1", "node-a", &b_dir);

    // 5. The real move, followed by the CLI to its end. What `vm exec` left in the guest's
    //    memory before is read back through the guest agent on node-b after.
    c.ok(&[
        "vm",
        "exec",
        "mv1",
        "--",
        "sh",
        "-c",
        "echo before-the-move > /tmp/moved",
    ]);
    let before = last_beat(&c, "mv1");
    assert!(before > b0);
    let t = Instant::now();
    let m: Value =
        serde_json::from_str(&c.ok(&["vm", "migrate", "mv1", "--to", "node-b", "-o", "json"]))
            .unwrap();
    eprintln!("migration took {:?}: {m}", t.elapsed());
    assert!(
        m["state"] == "succeeded" || m["state"] == "committed",
        "{m}"
    );
    assert!(m["progress"]["payload_bytes"].as_u64().unwrap() > 0, "{m}");
    // No limit given: the default, which this fast link can meet (the floor was measured).
    assert_eq!(m["max_downtime_default"], true, "{m}");
    assert!(m["progress"].get("raised_max_downtime_ms").is_none(), "{m}");
    assert!(
        m["progress"]["pause_floor_ms"]
            .as_u64()
            .is_some_and(|f| f < 300),
        "{m}"
    );
    if m["state"] == "succeeded" {
        // The pause is the real one (source STOP to destination RESUME); QEMU's source-side
        // figure, a part of it, is kept beside it.
        let p = &m["progress"];
        let (pause, source) = (p["downtime_ms"].as_u64(), p["source_downtime_ms"].as_u64());
        assert!(
            pause.is_some() && source.is_some() && pause >= source,
            "{m}"
        );
    }
    let v = c.wait_state("mv1", "running", Duration::from_secs(30));
    assert_eq!(v["node"], "node-b", "{v}");
    // The same guest goes on counting on node-b (its console there starts after the move).
    let after = beats_after(&c, "mv1", 0);
    assert!(
        after > before,
        "the guest kept its memory: {after} after {before}"
    );
    let out = c.console_send(
        "mv1",
        "dd if=/dev/vda bs=512 skip=2048 count=1 2>/dev/null | head -c 17; echo\n",
    );
    let _ = out;
    c.wait_console("mv1", "disk-payload-4242", 1, Duration::from_secs(30));
    assert_eq!(
        c.ok(&["vm", "exec", "mv1", "--", "cat", "/tmp/moved"]),
        "before-the-move\n"
    );
    // The graphics card moved with it: its screen is served from node-b.
    let (mut relay, addr) = c.vnc_relay("mv1");
    assert_eq!(common::rfb_viewer(&addr).name, "QEMU (mv1)");
    assert!(common::stop_child(&mut relay, Duration::from_secs(5)));
    // Nothing of it is left on node-a.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !qemu_pids_under(&a_dir).is_empty() || a_dir.join("vms/default/mv1").exists() {
        assert!(Instant::now() < deadline, "node-a kept the VM");
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = c.json(&["migration", "list"]);
    assert_eq!(
        list.as_array().unwrap().len(),
        6 + usize::from(postcopy_refused),
        "{list}"
    );

    // 6. The source agent (node-b now) dies mid-way: its QEMU goes on running the guest, the
    //    destination gives up and cleans up, and the restarted agent keeps the VM.
    let id = start_slow(&c, "mv1", "node-a");
    c.kill9_agent("node-b");
    let m = wait_migration(&c, &id, &["failed"], Duration::from_secs(120));
    assert!(
        m["message"].as_str().unwrap().contains("stays on node-b"),
        "{m}"
    );
    c.restart_agent("node-b");
    c.wait_nodes_ready(&["node-a", "node-b"]);
    still_on(&c, "mv1", "node-b", &a_dir);

    // 7. Evacuating node-b brings it back to node-a.
    let plan = c.json(&["node", "evacuate", "node-b", "--dry-run"]);
    assert_eq!(plan["steps"][0]["vm"], "mv1", "{plan}");
    assert_eq!(plan["steps"][0]["destination"], "node-a", "{plan}");
    c.ok(&["node", "evacuate", "node-b"]);
    let v = c.wait_state("mv1", "running", Duration::from_secs(30));
    assert_eq!(v["node"], "node-a", "{v}");
    let n = c.json(&["node", "show", "node-b"]);
    assert_eq!(n["state"], "cordoned", "{n}");
    beats_after(&c, "mv1", 0);
    c.ok(&["vm", "delete", "mv1", "--force"]);
    assert!(c.qemu_pids().is_empty());
}
