//! End-to-end test of usage metrics (issue 16 §2) with a real TCG guest: the guest writes
//! its disk, and `vm stats -o json`, the `/metrics` exposition (OpenMetrics and Prometheus
//! text) show the bytes written grow and the CPU time; after `vm delete` the VM's series are
//! gone from `/metrics`. Through the real CLI and curl against a real `novacron up`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::Value;

const BOOT: Duration = Duration::from_secs(120);
const MARKER: &str = "NOVACRON-GUEST-READY";
/// Long enough for a 10 s sample to be taken and carried by the next heartbeat.
const SAMPLE_WAIT: Duration = Duration::from_secs(60);
const WRITTEN: u64 = 4 << 20;

/// `vm stats -o json` until `done` holds for it.
fn wait_stats(c: &Cluster, vm: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let m = c.json(&["vm", "stats", vm]);
        if done(&m) {
            return m;
        }
        assert!(
            start.elapsed() < SAMPLE_WAIT,
            "{what}: not within {SAMPLE_WAIT:?}; last answer: {m}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn usage(m: &Value, figure: &str) -> u64 {
    m["latest"]["usage"][figure].as_u64().unwrap_or(0)
}

/// `GET /metrics` with the CLI's token and CA; returns (content type, body).
fn scrape(c: &Cluster, accept: Option<&str>) -> (String, String) {
    let cli: Value = serde_json::from_slice(&std::fs::read(&c.config).unwrap()).unwrap();
    let ca = c.dir.path().join("metrics-ca.pem");
    std::fs::write(&ca, cli["ca_cert_pem"].as_str().unwrap()).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--max-time", "30", "--cacert"])
        .arg(&ca)
        .args(["-w", "\n%{content_type}"])
        .args([
            "-H",
            &format!("Authorization: Bearer {}", cli["token"].as_str().unwrap()),
        ]);
    if let Some(a) = accept {
        cmd.args(["-H", &format!("Accept: {a}")]);
    }
    let out = cmd.arg(format!("{}/metrics", c.url)).output().unwrap();
    assert!(
        out.status.success(),
        "curl /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, content_type) = text.rsplit_once('\n').unwrap();
    (content_type.to_string(), body.to_string())
}

/// The value of the series `name{labels}` in an exposition.
fn series(body: &str, name_and_labels: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.split(' ').next().unwrap().parse().unwrap())
}

#[test]
fn disk_writes_show_in_vm_stats_and_metrics_and_the_series_leave_with_the_vm() {
    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    c.ok(&[
        "vm", "create", "web1", "--image", "tiny", "--memory", "128M", "--accel", "tcg", "--disk",
        "64M",
    ]);
    c.wait_console("web1", MARKER, 1, BOOT);

    let before = wait_stats(&c, "web1", "a sample of the booted guest", |m| {
        m["latest"]["usage"]["cpu_seconds"].as_f64().unwrap_or(0.0) > 0.0
    });
    assert_eq!(before["node"], "node-a", "{before}");
    assert!(usage(&before, "rss_bytes") > 64 << 20, "{before}");
    assert!(
        before["latest"]["usage"].get("nic").is_none(),
        "user-mode networking has no tap: {before}"
    );
    let written_before = usage(&before, "disk_write_bytes");
    let ops_before = usage(&before, "disk_write_ops");
    let taken_before = before["latest"]["at_ms"].as_u64().unwrap();

    let out = c.console_send(
        "web1",
        &format!(
            "dd if=/dev/zero of=/dev/vda bs=64k count={} conv=fsync 2>/dev/null; sync; echo wrote-$((3+4))\n",
            WRITTEN / 65536
        ),
    );
    assert!(out.contains("wrote-7"), "console: {out}");

    let after = wait_stats(&c, "web1", "a sample after the write", |m| {
        m["latest"]["at_ms"].as_u64().unwrap_or(0) > taken_before
            && usage(m, "disk_write_bytes") >= written_before + WRITTEN
    });
    assert!(usage(&after, "disk_write_ops") > ops_before, "{after}");
    let cpu = after["latest"]["usage"]["cpu_seconds"].as_f64().unwrap();
    assert!(cpu > 0.0, "{after}");
    let samples = after["samples"].as_array().unwrap();
    assert!(samples.len() >= 2, "{after}");
    assert!(after["rates"]["cpu_percent"].as_f64().is_some(), "{after}");

    let table = c.ok(&["vm", "stats", "web1"]);
    for want in ["on node node-a", "cpu time", "disk write", "disk write ops"] {
        assert!(table.contains(want), "{want} missing from:\n{table}");
    }

    // OpenMetrics by default, and the guest's writes in it.
    let vm = r#"{project="default",vm="web1",node="node-a"}"#;
    let (content_type, om) = scrape(&c, None);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let written = series(&om, &format!("novacron_vm_disk_write_bytes_total{vm}"))
        .unwrap_or_else(|| panic!("no disk write series for web1:\n{om}"));
    assert!(written >= (written_before + WRITTEN) as f64, "{written}");
    assert!(series(&om, &format!("novacron_vm_cpu_seconds_total{vm}")).unwrap() > 0.0);
    assert!(series(&om, &format!("novacron_vm_memory_rss_bytes{vm}")).unwrap() > 0.0);
    assert!(series(&om, r#"novacron_node_memory_total_bytes{node="node-a"}"#).unwrap() > 0.0);
    assert_eq!(
        series(
            &om,
            r#"novacron_node_allocated_memory_bytes{node="node-a"}"#
        ),
        Some((128u64 << 20) as f64)
    );
    assert_eq!(
        series(&om, r#"novacron_node_vms{node="node-a"}"#),
        Some(1.0)
    );

    // Prometheus text 0.0.4 for a scraper that asks for it.
    let (content_type, text) = scrape(&c, Some("text/plain;version=0.0.4"));
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    assert!(text.contains("# TYPE novacron_vm_disk_write_bytes_total counter"));
    assert!(series(&text, &format!("novacron_vm_disk_write_bytes_total{vm}")).unwrap() >= written);

    // Deleted: its series leave /metrics, and there is nothing to ask `vm stats` about.
    c.ok(&["vm", "delete", "web1", "--force"]);
    let start = Instant::now();
    loop {
        let (_, om) = scrape(&c, None);
        if !om.contains(r#"vm="web1""#) {
            assert!(om.contains(r#"novacron_node_vms{node="node-a"} 0"#), "{om}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "web1's series are still in /metrics after its delete:\n{om}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let err = c.fails(&["vm", "stats", "web1"]);
    assert!(err.contains("no VM named"), "{err}");
}
