//! DWCP over the emulated WAN: recovery from a blackholed link and a killed connection, and a
//! short end-to-end run of the transport benchmark. Needs root (namespaces, TUN).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use novacron_bench::corpus::{CorpusKind, random_fill};
use novacron_bench::transport::{self, TransportBenchConfig, site_runtime};
use novacron_dwcp::testing::TestCa;
use novacron_dwcp::{Listener, SessionOptions};
use novacron_wanem::{LinkParams, Wanem, WanemConfig};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `total` bytes from site-a to site-b over DWCP while `disturb` runs; returns the time taken.
fn transfer(
    prefix: &str,
    link: LinkParams,
    total: usize,
    disturb: impl FnOnce(&Wanem, &novacron_dwcp::Session) + Send,
) -> Duration {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let wan = Wanem::up(WanemConfig::new(prefix, link)).unwrap();
    let ca = TestCa::new("t").unwrap();
    let (ida, idb) = (ca.issue("site-a").unwrap(), ca.issue("site-b").unwrap());
    let opts = SessionOptions {
        server_name: "site-b".into(),
        initial_streams: Some(4),
        ..SessionOptions::default()
    };
    let cpu = Arc::new(AtomicU64::new(0));
    let rt_a = site_runtime(wan.site_a(), cpu.clone()).unwrap();
    let rt_b = site_runtime(wan.site_b(), cpu).unwrap();
    let addr = SocketAddr::from((wan.site_b().addr, 7001));
    let o = opts.clone();
    let listener = rt_b
        .block_on(rt_b.spawn(async move { Listener::bind(addr, &idb, o).await }))
        .unwrap()
        .unwrap();
    let mut data = vec![0u8; total];
    random_fill(&mut data, 9);
    let data = Bytes::from(data);
    let want = blake3::hash(&data);
    let rx = rt_b.spawn(async move {
        let s = listener.accept().await.unwrap();
        let ch = s.accept_channel().await.unwrap();
        let mut h = blake3::Hasher::new();
        let mut n = 0;
        while let Some(m) = ch.recv().await.unwrap() {
            h.update(&m);
            n += m.len();
        }
        (n, h.finalize())
    });
    let start = Instant::now();
    let session = rt_a
        .block_on(rt_a.spawn(async move { novacron_dwcp::connect(addr, &ida, opts).await }))
        .unwrap()
        .unwrap();
    let s2 = session.clone();
    let tx = rt_a.spawn(async move {
        let ch = s2.open_channel(5).unwrap();
        let mut off = 0;
        while off < data.len() {
            let end = (off + (1 << 20)).min(data.len());
            ch.send(data.slice(off..end)).await.unwrap();
            off = end;
        }
        ch.finish().await.unwrap();
        s2.flush().await.unwrap();
    });
    std::thread::sleep(Duration::from_millis(800));
    std::thread::scope(|sc| {
        sc.spawn(|| disturb(&wan, &session));
    });
    let (n, got) = rt_b
        .block_on(async { tokio::time::timeout(Duration::from_secs(90), rx).await })
        .expect("transfer finished in time")
        .unwrap();
    rt_a.block_on(tx).unwrap();
    let took = start.elapsed();
    assert_eq!(n, total);
    assert_eq!(got, want, "received bytes differ");
    drop(session);
    rt_a.shutdown_timeout(Duration::from_secs(2));
    rt_b.shutdown_timeout(Duration::from_secs(2));
    took
}

#[test]
fn blackholing_the_link_for_10_s_ends_with_the_transfer_complete_and_identical() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let link = LinkParams::symmetric(100_000_000, Duration::from_millis(20), 0.0);
    let took = transfer("tb1-", link, 32 << 20, |wan, _| {
        wan.blackhole(Duration::from_secs(10));
        std::thread::sleep(Duration::from_secs(10));
    });
    assert!(took >= Duration::from_secs(10), "{took:?}");
}

#[test]
fn killing_one_connection_mid_transfer_on_a_lossy_wan_loses_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let link = LinkParams::symmetric(100_000_000, Duration::from_millis(30), 0.001);
    transfer("tb2-", link, 24 << 20, |_, session| {
        assert!(session.kill_stream_for_test(1));
        std::thread::sleep(Duration::from_millis(500));
        assert!(session.kill_stream_for_test(0));
        std::thread::sleep(Duration::from_secs(1));
        assert!(session.stats().streams_lost >= 2, "{:?}", session.stats());
    });
}

#[test]
fn transport_benchmark_runs_every_system_and_verifies_bytes() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let cfg = TransportBenchConfig {
        rate_bps: 200_000_000,
        rtt: Duration::from_millis(10),
        loss: 0.0,
        size_bytes: 8 << 20,
        corpus: CorpusKind::Mixed,
        parallel_streams: 4,
        netns_prefix: "tb3-".into(),
        baseline_limit: Duration::from_secs(20),
        dwcp_timeout: Duration::from_secs(60),
        ..TransportBenchConfig::default()
    };
    let r = transport::run(&cfg).unwrap();
    let names: Vec<&str> = r.results.iter().map(|x| x.system.as_str()).collect();
    assert_eq!(names, ["tcp-cubic", "tcp-bbr", "tcp-parallel-4", "dwcp"]);
    for x in &r.results {
        assert_eq!(x.payload_bytes, 8 << 20, "{x:?}");
        assert!(
            x.wire_bytes > 0 && x.seconds > 0.0 && x.goodput_bps > 0.0,
            "{x:?}"
        );
    }
    // The mixed corpus has zeros and repeats: DWCP puts fewer bytes on the link than the data.
    let dwcp = &r.results[3];
    assert!(dwcp.wire_bytes < dwcp.payload_bytes, "{dwcp:?}");
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["link"]["rate_bps"].is_u64());
    assert!(json["results"][0]["goodput_bps"].is_f64());
}
