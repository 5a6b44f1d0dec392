//! The backup benchmark end to end at a small size: real ext4 image, real restic and borg
//! (Debian packages), NovaCron's incremental reads only the dirty map, every restore matches.
//! Needs root (mkfs.ext4 -d, mount -o loop); fails loudly otherwise.

#![allow(clippy::unwrap_used)]

use novacron_backup::bench::{BackupBenchConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_small_image_all_systems() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut cfg = BackupBenchConfig::new(96 << 20, dir.path().to_path_buf());
    cfg.drop_caches = false;
    cfg.command_timeout = std::time::Duration::from_secs(300);
    let report = run(&cfg).await.unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let results = json["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["system"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["novacron", "restic", "borg"]);
    for r in results {
        for k in ["first_seconds", "incremental_seconds", "restore_seconds"] {
            assert!(r[k].as_f64().unwrap() > 0.0, "{k} in {r}");
        }
        assert!(r["repo_bytes"].as_u64().unwrap() > 0);
        assert_eq!(
            r["restore_matches"], true,
            "{} restore must match",
            r["system"]
        );
    }
    assert!(report.changed_blocks > 0);
    let nc = &report.results[0].runs[0];
    let read = nc.incremental_bytes_read.unwrap();
    assert!(
        read < cfg.size_bytes / 2,
        "incremental read {read} bytes: only dirty chunks"
    );
    assert!(read >= report.changed_blocks * 4096 / 2);
    // Nothing left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
