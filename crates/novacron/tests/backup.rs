//! End-to-end backup and restore through the CLI, as a user runs it: a real control plane and
//! agent, a real TCG guest writing to its disk, live backups through QEMU (full, then
//! incremental), restore into a new VM and over the original, verify, and a damaged chunk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Cluster;
use serde_json::Value;

const BOOT: Duration = Duration::from_secs(90);
const MARKER: &str = "NOVACRON-GUEST-READY";
fn write_version(c: &Cluster, vm: &str, text: &str) {
    c.write_disk_mark(vm, text, "");
}

fn read_version(c: &Cluster, vm: &str) -> String {
    c.read_disk_mark(vm, 14)
}

fn backup(c: &Cluster, vm: &str) -> Value {
    let op = c.json(&["backup", "create", vm, "--repo", "r1"]);
    assert_eq!(op["state"], "succeeded", "{op}");
    op
}

#[test]
fn live_backup_incremental_restore_verify_and_damage() {
    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let repo_dir = c.dir.path().join("backups");
    c.ok(&[
        "vm", "create", "web1", "--image", "tiny", "--cpus", "1", "--memory", "128M", "--accel",
        "tcg", "--disk", "32M",
    ]);
    c.wait_console("web1", MARKER, 1, BOOT);

    // Bad input is refused and creates nothing.
    let err = c.fails(&["backup", "create", "web1", "--repo", "r1"]);
    assert!(err.contains("no backup repository named"), "{err}");
    let err = c.fails(&["backup", "repo", "add", "r1"]);
    assert!(err.contains("--path"), "{err}");
    let repo = c.json(&[
        "backup",
        "repo",
        "add",
        "r1",
        "--path",
        repo_dir.to_str().unwrap(),
    ]);
    assert_eq!(repo["name"], "r1");
    assert!(repo_dir.join("config").exists() || repo_dir.read_dir().unwrap().next().is_some());
    let err = c.fails(&["backup", "repo", "add", "r1", "--path", "/tmp/elsewhere"]);
    assert!(err.contains("already exists"), "{err}");

    // First backup of the running VM: a full read.
    write_version(&c, "web1", "first-version!");
    let b1 = backup(&c, "web1");
    assert!(
        b1["message"].as_str().unwrap().contains("full read"),
        "{b1}"
    );

    // Second: only the blocks written since (QEMU's persistent dirty bitmap).
    write_version(&c, "web1", "second-version");
    let b2 = backup(&c, "web1");
    assert!(
        b2["message"].as_str().unwrap().contains("incremental"),
        "{b2}"
    );

    let list = c.json(&["backup", "list", "web1"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let id1 = list[0]["id"].as_str().unwrap().to_string();
    let id2 = list[1]["id"].as_str().unwrap().to_string();
    let shown = c.json(&["backup", "show", &id2]);
    assert_eq!(shown["vm"], "web1");
    assert_eq!(
        shown["disks"][0]["read_mode"]["mode"], "incremental",
        "{shown}"
    );
    let report = c.json(&["backup", "verify", "r1"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["backups_checked"], 2);

    // Replicate to a second site and register the copy: it verifies and lists the same backups.
    let site2 = c.dir.path().join("site2");
    let synced = c.json(&[
        "backup",
        "repo",
        "sync",
        "r1",
        "--path",
        site2.to_str().unwrap(),
        "--as",
        "r2",
    ]);
    assert!(synced["chunks_copied"].as_u64().unwrap() > 0, "{synced}");
    assert_eq!(synced["indexes_copied"], 2, "{synced}");
    assert_eq!(c.json(&["backup", "verify", "r2"])["ok"], true);
    assert_eq!(
        c.json(&["backup", "list", "--repo", "r2"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let again = c.json(&[
        "backup",
        "repo",
        "sync",
        "r1",
        "--path",
        site2.to_str().unwrap(),
    ]);
    assert_eq!(
        again["chunks_copied"], 0,
        "a second sync copies nothing new: {again}"
    );

    // Restore the first backup as a new VM: it boots and holds the first version.
    let op = c.json(&["backup", "restore", &id1, "--as", "web1-old"]);
    assert_eq!(op["state"], "succeeded", "{op}");
    c.wait_console("web1-old", MARKER, 1, BOOT);
    assert_eq!(read_version(&c, "web1-old"), "first-version!");
    assert_eq!(read_version(&c, "web1"), "second-version");

    // Over the original: refused while it runs, then done once it is stopped.
    let err = c.fails(&["backup", "restore", &id1, "--over"]);
    assert!(err.contains("stop it"), "{err}");
    c.ok(&["vm", "stop", "web1", "--force"]);
    let op = c.json(&["backup", "restore", &id1, "--over"]);
    assert_eq!(op["state"], "succeeded", "{op}");
    c.ok(&["vm", "start", "web1"]);
    c.wait_console("web1", MARKER, 2, BOOT);
    assert_eq!(read_version(&c, "web1"), "first-version!");

    // A flipped byte in a chunk: verify names the damage and fails; a restore that needs the
    // chunk refuses instead of writing bad data.
    let chunks = find_files(&repo_dir.join("chunks"));
    assert!(!chunks.is_empty(), "the repository stores chunks");
    for f in &chunks {
        let mut b = std::fs::read(f).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        std::fs::write(f, &b).unwrap();
    }
    let out = c.cli(&["backup", "verify", "r1", "-o", "json"]);
    assert!(
        !out.status.success(),
        "verify of a damaged repository fails"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let affected: Vec<&str> = report["affected_backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(
        affected.contains(&id1.as_str()) && affected.contains(&id2.as_str()),
        "{report}"
    );
    let err = c.fails(&["backup", "restore", &id2, "--as", "web1-bad"]);
    assert!(
        err.contains("restore of backup") && err.contains("everything it made was removed"),
        "{err}"
    );
    let err = c.fails(&["vm", "show", "web1-bad"]);
    assert!(err.contains("no VM named"), "nothing half-created: {err}");

    // Schedules: recorded, listed, removable; a nonsense interval is refused.
    let err = c.fails(&[
        "backup", "schedule", "web1", "--repo", "r1", "--every", "6x",
    ]);
    assert!(err.contains("unit must be"), "{err}");
    let s = c.json(&[
        "backup",
        "schedule",
        "web1",
        "--repo",
        "r1",
        "--every",
        "6h",
        "--keep-daily",
        "7",
    ]);
    assert_eq!(s["every_seconds"], 6 * 3600);
    assert_eq!(
        c.json(&["backup", "schedules"]).as_array().unwrap().len(),
        1
    );
    c.ok(&["backup", "schedule", "web1", "--remove"]);
    assert_eq!(c.json(&["backup", "schedules"]), serde_json::json!([]));

    // Prune keeps the newest.
    let pruned = c.json(&["backup", "prune", "r1", "--keep-last", "1"]);
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 1, "{pruned}");
    assert_eq!(
        c.json(&["backup", "list", "web1", "--repo", "r1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn find_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(find_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Backups belong to their VM's project: two projects with a VM named web1 back up into one
/// repository, each lists and shows only its own, pruning keeps each project's own, and
/// `--max-backup-storage` counts a project's backups: a backup that would go over it is not
/// kept, and none starts once the project is at it.
#[test]
fn backups_belong_to_their_project_and_count_against_its_limit() {
    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny", "--public"]);
    c.ok(&["project", "create", "team-b"]);
    let repo_dir = c.dir.path().join("backups");
    c.ok(&[
        "backup",
        "repo",
        "add",
        "r1",
        "--path",
        repo_dir.to_str().unwrap(),
    ]);
    let create = [
        "vm", "create", "web1", "--image", "tiny", "--cpus", "1", "--memory", "128M", "--accel",
        "tcg", "--disk", "32M",
    ];
    c.ok(&create);
    fn in_b<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["--project", "team-b"], args].concat()
    }
    c.ok(&in_b(&create));
    c.wait_console("web1", MARKER, 1, BOOT);

    write_version(&c, "web1", "first-version!");
    backup(&c, "web1");
    let op = c.json(&in_b(&["backup", "create", "web1", "--repo", "r1"]));
    assert_eq!(op["state"], "succeeded", "{op}");
    let listed = |project: &str| -> Vec<Value> {
        c.json(&["--project", project, "backup", "list"])
            .as_array()
            .unwrap()
            .clone()
    };
    let (a, b) = (listed("default"), listed("team-b"));
    assert_eq!((a.len(), b.len()), (1, 1), "{a:?} {b:?}");
    assert_eq!(a[0]["project"], "default");
    assert_eq!(b[0]["project"], "team-b");
    let id_a = a[0]["id"].as_str().unwrap().to_string();
    let err = c.fails(&in_b(&["backup", "show", &id_a]));
    assert!(
        err.contains("no backup"),
        "team-b reads no backup of default: {err}"
    );
    let err = c.fails(&in_b(&["backup", "restore", &id_a, "--as", "stolen"]));
    assert!(err.contains("no backup"), "nor restores one: {err}");

    // What each project's backups hold, counted on its own.
    let held = |project: &str| -> u64 {
        c.json(&["project", "usage", project])["usage"]["backup_storage_bytes"]
            .as_u64()
            .unwrap()
    };
    // team-b's disk was never written: its backup holds only zero chunks, and default's
    // data does not count against it.
    let held_a = held("default");
    assert!(held_a > 0);
    assert_eq!(held("team-b"), 0);
    assert!(held_a <= 32 << 20, "{held_a}");

    // A limit one byte above what default holds: the next backup carries new data, so it is
    // not kept, and the project's backups are unchanged.
    let limit = (held_a + 1).to_string();
    c.ok(&["project", "set", "default", "--max-backup-storage", &limit]);
    write_version(&c, "web1", "second-version");
    let err = c.fails(&["backup", "create", "web1", "--repo", "r1"]);
    assert!(
        err.contains("max-backup-storage") && err.contains("not kept"),
        "{err}"
    );
    assert_eq!(listed("default").len(), 1);
    assert_eq!(held("default"), held_a);
    // At the limit, no backup starts (and no operation is left behind).
    c.ok(&[
        "project",
        "set",
        "default",
        "--max-backup-storage",
        &held_a.to_string(),
    ]);
    let running_before = c.json(&["operation", "list"]).as_array().unwrap().len();
    let err = c.fails(&["backup", "create", "web1", "--repo", "r1"]);
    assert!(err.contains("no new backup starts"), "{err}");
    assert_eq!(
        c.json(&["operation", "list"]).as_array().unwrap().len(),
        running_before
    );
    // Deleting its only backup makes room (and team-b may not delete it).
    let err = c.fails(&in_b(&["backup", "delete", &id_a]));
    assert!(err.contains("no backup"), "{err}");
    let deleted = c.json(&["backup", "delete", &id_a]);
    assert_eq!(deleted["repo"], "r1", "{deleted}");
    assert!(listed("default").is_empty());
    assert_eq!(held("default"), 0);
    backup(&c, "web1");
    assert_eq!(listed("default").len(), 1);
    // Room again: it is kept, and pruning web1 to one backup keeps one in each project.
    c.ok(&["project", "set", "default", "--max-backup-storage", "1G"]);
    write_version(&c, "web1", "third-version!");
    backup(&c, "web1");
    assert_eq!(listed("default").len(), 2);
    assert!(held("default") > held_a);
    let pruned = c.json(&["backup", "prune", "r1", "--vm", "web1", "--keep-last", "1"]);
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 1, "{pruned}");
    assert_eq!(pruned["removed"][0]["project"], "default", "{pruned}");
    assert_eq!((listed("default").len(), listed("team-b").len()), (1, 1));
}
