//! `novacron bench transport`: DWCP against plain TCP baselines on an emulated WAN, in one run.
//!
//! Sets up `novacron-wanem` (site-a → site-b), then sends the corpus with each system in turn:
//! one TCP stream with CUBIC, one with BBR, N parallel CUBIC streams, DWCP, and for the memory
//! corpus also zstd over the best single baseline stream. Each run reports goodput (payload
//! bytes / seconds), bytes on the emulated link (the emulator's counters, site-a → site-b),
//! link utilisation and CPU seconds of sender and receiver threads. Every run verifies that
//! the receiver got exactly the bytes sent (BLAKE3).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use novacron_dwcp::hde::{DecoderConfig, EncoderConfig};
use novacron_dwcp::{
    BlockReceiver, BlockSender, CongestionControl, Listener, SessionOptions, sockopt,
};
use novacron_wanem::{LinkParams, Site, Wanem, WanemConfig};
use serde::Serialize;

use crate::corpus::{self, Corpus, CorpusKind};

/// What to measure.
#[derive(Clone, Debug)]
pub struct TransportBenchConfig {
    /// Link rate, bits/s.
    pub rate_bps: u64,
    /// Round-trip time added by the emulator.
    pub rtt: Duration,
    /// Random loss per direction, 0..1.
    pub loss: f64,
    /// Jitter per direction.
    pub jitter: Duration,
    /// Bottleneck queue (time at the link rate).
    pub queue: Duration,
    /// Corpus size in bytes (the memory corpus is the whole guest RAM image).
    pub size_bytes: u64,
    /// Which corpus.
    pub corpus: CorpusKind,
    /// Congestion control of DWCP's streams: `None` = BBR where available, or e.g. `cubic`.
    pub dwcp_cc: Option<String>,
    /// Streams of the `tcp-parallel-N` baseline.
    pub parallel_streams: usize,
    /// Systems to run (default: tcp-cubic, tcp-bbr, tcp-parallel, dwcp, and zstd-tcp for the
    /// memory corpus). `tcp-bbr-parallel` (N plain BBR streams) measures what the machine can
    /// push through the emulator with the cheapest endpoints (the forwarding ceiling).
    pub systems: Vec<String>,
    /// A baseline still running after this long is stopped; its goodput covers what it moved.
    pub baseline_limit: Duration,
    /// DWCP not done after this long fails the run.
    pub dwcp_timeout: Duration,
    /// Where corpora (the guest RAM image) are cached.
    pub cache_dir: PathBuf,
    /// Namespace prefix for the emulator.
    pub netns_prefix: String,
    /// HDE block size for non-memory corpora.
    pub block_bytes: usize,
}

impl Default for TransportBenchConfig {
    fn default() -> Self {
        TransportBenchConfig {
            rate_bps: 100_000_000,
            rtt: Duration::from_millis(50),
            loss: 0.001,
            jitter: Duration::ZERO,
            queue: Duration::from_millis(50),
            size_bytes: 256 << 20,
            corpus: CorpusKind::Random,
            dwcp_cc: None,
            parallel_streams: 8,
            systems: Vec::new(),
            baseline_limit: Duration::from_secs(60),
            dwcp_timeout: Duration::from_secs(600),
            cache_dir: PathBuf::from("/var/tmp/novacron-bench"),
            netns_prefix: "nbt-".into(),
            block_bytes: 64 << 10,
        }
    }
}

/// The emulated link.
#[derive(Clone, Debug, Serialize)]
pub struct LinkReport {
    pub rate_bps: u64,
    pub rtt_ms: f64,
    pub loss: f64,
}

/// One system's measurement.
#[derive(Clone, Debug, Serialize)]
pub struct SystemResult {
    /// `dwcp`, `tcp-cubic`, `tcp-bbr`, `tcp-parallel-N`, `zstd-tcp-<cc>`.
    pub system: String,
    /// Payload bits per second delivered (payload_bytes × 8 / seconds).
    pub goodput_bps: f64,
    /// Bits per second on the emulated link, site-a → site-b.
    pub link_bps: f64,
    /// Bytes on the emulated link site-a → site-b (IP packets, the emulator's count).
    pub wire_bytes: u64,
    /// Bytes on the emulated link site-b → site-a.
    pub reverse_wire_bytes: u64,
    /// Corpus bytes delivered and verified.
    pub payload_bytes: u64,
    /// Wall time from the first connect to the last byte received.
    pub seconds: f64,
    /// CPU seconds of sender and receiver threads (the emulator excluded).
    pub cpu_seconds: f64,
    /// Link utilisation: wire bits / (rate × seconds).
    pub utilisation: f64,
    /// False when a baseline hit `baseline_limit` before moving the whole corpus.
    pub complete: bool,
    /// Packets the emulator dropped (random loss, queue overflow), site-a → site-b.
    pub dropped_loss: u64,
    pub dropped_queue: u64,
    /// DWCP only: streams at the end and PBA's estimate then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dwcp: Option<DwcpDetail>,
}

/// DWCP-specific observations.
#[derive(Clone, Debug, Serialize)]
pub struct DwcpDetail {
    pub streams: usize,
    pub congestion: String,
    pub tls_group: String,
    pub pba_bandwidth_bps: f64,
    pub pba_rtt_ms: f64,
    pub pba_forecast_bps: f64,
    pub hde_zero_blocks: u64,
    pub hde_ref_blocks: u64,
    pub hde_delta_blocks: u64,
    pub hde_raw_blocks: u64,
    pub hde_output_bytes: u64,
    pub frames_sent: u64,
    pub frames_resent: u64,
    pub frames_hedged: u64,
    pub streams_opened: u64,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct TransportReport {
    pub link: LinkReport,
    pub corpus: String,
    pub corpus_description: String,
    pub results: Vec<SystemResult>,
}

/// Errors of the transport benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Corpus(#[from] corpus::CorpusError),
    #[error("emulator: {0}")]
    Wanem(#[from] novacron_wanem::WanemError),
    #[error("{system}: {message}")]
    Run { system: String, message: String },
    #[error("{system}: received bytes differ from the bytes sent")]
    Integrity { system: String },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "unknown system {0:?}: use dwcp, tcp-cubic, tcp-bbr, tcp-parallel, tcp-bbr-parallel, zstd-tcp"
    )]
    UnknownSystem(String),
}

fn run_err(system: &str, m: impl std::fmt::Display) -> BenchError {
    BenchError::Run {
        system: system.to_string(),
        message: m.to_string(),
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs the benchmark: sets up the link, runs each system in turn, tears the link down.
pub fn run(cfg: &TransportBenchConfig) -> Result<TransportReport, BenchError> {
    let wanted: Vec<String> = if cfg.systems.is_empty() {
        let mut s = vec![
            "tcp-cubic".to_string(),
            "tcp-bbr".into(),
            "tcp-parallel".into(),
            "dwcp".into(),
        ];
        if cfg.corpus == CorpusKind::Memory {
            s.push("zstd-tcp".into());
        }
        s
    } else {
        cfg.systems.clone()
    };
    for s in &wanted {
        if ![
            "dwcp",
            "tcp-cubic",
            "tcp-bbr",
            "tcp-parallel",
            "tcp-bbr-parallel",
            "zstd-tcp",
            "dwcp-cubic",
        ]
        .contains(&s.as_str())
        {
            return Err(BenchError::UnknownSystem(s.clone()));
        }
    }
    let corpus = corpus::build(cfg.corpus, cfg.size_bytes, &cfg.cache_dir)?;
    let _ = novacron_wanem::delete_sites(&cfg.netns_prefix);
    let link = LinkParams::symmetric(cfg.rate_bps, cfg.rtt, cfg.loss)
        .with_jitter(cfg.jitter)
        .with_queue(cfg.queue);
    let wan = Wanem::up(WanemConfig::new(&cfg.netns_prefix, link))?;
    let mut results: Vec<SystemResult> = Vec::new();
    let data = Bytes::from(corpus.data.clone());
    let mut port = 7100u16;
    for s in &wanted {
        port += 1;
        // Let queues drain and counters settle between systems.
        std::thread::sleep(Duration::from_millis(500));
        let r = match s.as_str() {
            "tcp-cubic" => tcp_run(&wan, cfg, &data, "tcp-cubic", "cubic", 1, false, port)?,
            "tcp-bbr" => tcp_run(&wan, cfg, &data, "tcp-bbr", "bbr", 1, false, port)?,
            "tcp-parallel" => {
                let name = format!("tcp-parallel-{}", cfg.parallel_streams);
                tcp_run(
                    &wan,
                    cfg,
                    &data,
                    &name,
                    "cubic",
                    cfg.parallel_streams,
                    false,
                    port,
                )?
            }
            "tcp-bbr-parallel" => {
                let name = format!("tcp-bbr-parallel-{}", cfg.parallel_streams);
                tcp_run(
                    &wan,
                    cfg,
                    &data,
                    &name,
                    "bbr",
                    cfg.parallel_streams,
                    false,
                    port,
                )?
            }
            "zstd-tcp" => {
                // zstd alone over the best single baseline stream measured so far (BBR if none).
                let cc = results
                    .iter()
                    .filter(|r| r.system == "tcp-cubic" || r.system == "tcp-bbr")
                    .max_by(|a, b| a.goodput_bps.total_cmp(&b.goodput_bps))
                    .map(|r| r.system.trim_start_matches("tcp-").to_string())
                    .unwrap_or_else(|| "bbr".into());
                tcp_run(
                    &wan,
                    cfg,
                    &data,
                    &format!("zstd-tcp-{cc}"),
                    &cc,
                    1,
                    true,
                    port,
                )?
            }
            "dwcp" => dwcp_run(&wan, cfg, &corpus, &data, port, cfg.dwcp_cc.clone())?,
            "dwcp-cubic" => dwcp_run(&wan, cfg, &corpus, &data, port, Some("cubic".into()))?,
            other => return Err(BenchError::UnknownSystem(other.to_string())),
        };
        tracing::info!(system = %r.system, goodput_mbps = r.goodput_bps / 1e6, seconds = r.seconds, "transport run");
        results.push(r);
    }
    wan.down()?;
    Ok(TransportReport {
        link: LinkReport {
            rate_bps: cfg.rate_bps,
            rtt_ms: cfg.rtt.as_secs_f64() * 1000.0,
            loss: cfg.loss,
        },
        corpus: cfg.corpus.to_string(),
        corpus_description: corpus.description,
        results,
    })
}

#[allow(clippy::too_many_arguments)]
fn finish_result(
    system: &str,
    cfg: &TransportBenchConfig,
    wan: &Wanem,
    before: &novacron_wanem::Stats,
    payload: u64,
    seconds: f64,
    cpu: Duration,
    complete: bool,
) -> SystemResult {
    let d = wan.stats().since(before);
    let link_bps = d.a_to_b.bytes as f64 * 8.0 / seconds;
    SystemResult {
        system: system.to_string(),
        goodput_bps: payload as f64 * 8.0 / seconds,
        link_bps,
        wire_bytes: d.a_to_b.bytes,
        reverse_wire_bytes: d.b_to_a.bytes,
        payload_bytes: payload,
        seconds,
        cpu_seconds: cpu.as_secs_f64(),
        utilisation: if cfg.rate_bps > 0 {
            link_bps / cfg.rate_bps as f64
        } else {
            0.0
        },
        complete,
        dropped_loss: d.a_to_b.dropped_loss,
        dropped_queue: d.a_to_b.dropped_queue,
        dwcp: None,
    }
}

/// Plain TCP: `streams` connections, each carrying an equal range of the corpus; optionally
/// through a zstd stream (level 3).
#[allow(clippy::too_many_arguments)]
fn tcp_run(
    wan: &Wanem,
    cfg: &TransportBenchConfig,
    data: &Bytes,
    system: &str,
    cc: &str,
    streams: usize,
    zstd: bool,
    port: u16,
) -> Result<SystemResult, BenchError> {
    let addr = SocketAddr::from((wan.site_b().addr, port));
    let site_b = wan.site_b().clone();
    let site_a = wan.site_a().clone();
    let cpu_nanos = Arc::new(AtomicU64::new(0));
    // Receiver: listener in site-b.
    let (ltx, lrx) = std::sync::mpsc::channel();
    let recv_cpu = cpu_nanos.clone();
    let receiver = std::thread::spawn(
        move || -> Result<Vec<(u32, u64, blake3::Hash, Instant)>, String> {
            site_b.enter_current_thread().map_err(|e| e.to_string())?;
            let l = TcpListener::bind(addr).map_err(|e| e.to_string())?;
            let _ = ltx.send(());
            let mut handles = Vec::new();
            for _ in 0..streams {
                let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
                let cpu = recv_cpu.clone();
                handles.push(std::thread::spawn(
                    move || -> Result<(u32, u64, blake3::Hash, Instant), String> {
                        let mut idx = [0u8; 4];
                        s.read_exact(&mut idx).map_err(|e| e.to_string())?;
                        let mut h = blake3::Hasher::new();
                        let mut n = 0u64;
                        let mut buf = vec![0u8; 1 << 20];
                        let mut reader: Box<dyn Read> = if zstd {
                            Box::new(
                                zstd::stream::read::Decoder::new(s).map_err(|e| e.to_string())?,
                            )
                        } else {
                            Box::new(s)
                        };
                        loop {
                            let k = reader.read(&mut buf).map_err(|e| e.to_string())?;
                            if k == 0 {
                                break;
                            }
                            h.update(&buf[..k]);
                            n += k as u64;
                        }
                        let done = Instant::now();
                        cpu.fetch_add(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
                        Ok((u32::from_le_bytes(idx), n, h.finalize(), done))
                    },
                ));
            }
            let mut out = Vec::new();
            for h in handles {
                out.push(
                    h.join()
                        .map_err(|_| "receiver thread panicked".to_string())??,
                );
            }
            recv_cpu.fetch_add(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
            Ok(out)
        },
    );
    lrx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| run_err(system, "receiver did not start"))?;
    let before = wan.stats();
    let start = Instant::now();
    let deadline = start + cfg.baseline_limit;
    let range = data.len().div_ceil(streams);
    let mut senders = Vec::new();
    for i in 0..streams {
        let site_a = site_a.clone();
        let cc = cc.to_string();
        let slice = data.slice((i * range).min(data.len())..((i + 1) * range).min(data.len()));
        let cpu = cpu_nanos.clone();
        senders.push(std::thread::spawn(
            move || -> Result<(u64, blake3::Hash, bool), String> {
                site_a.enter_current_thread().map_err(|e| e.to_string())?;
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                sockopt::set_congestion(&s, &cc).map_err(|e| format!("setting {cc}: {e}"))?;
                s.write_all(&(i as u32).to_le_bytes())
                    .map_err(|e| e.to_string())?;
                let mut h = blake3::Hasher::new();
                let mut sent = 0usize;
                let mut complete = true;
                let mut w: Box<dyn Write> = if zstd {
                    Box::new(
                        zstd::stream::write::Encoder::new(
                            s.try_clone().map_err(|e| e.to_string())?,
                            3,
                        )
                        .map_err(|e| e.to_string())?
                        .auto_finish(),
                    )
                } else {
                    Box::new(s.try_clone().map_err(|e| e.to_string())?)
                };
                while sent < slice.len() {
                    if Instant::now() > deadline {
                        complete = false;
                        break;
                    }
                    let end = (sent + (256 << 10)).min(slice.len());
                    w.write_all(&slice[sent..end]).map_err(|e| e.to_string())?;
                    h.update(&slice[sent..end]);
                    sent = end;
                }
                w.flush().map_err(|e| e.to_string())?;
                drop(w);
                s.shutdown(std::net::Shutdown::Write)
                    .map_err(|e| e.to_string())?;
                cpu.fetch_add(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
                Ok((sent as u64, h.finalize(), complete))
            },
        ));
    }
    let mut sent = Vec::new();
    for s in senders {
        sent.push(
            s.join()
                .map_err(|_| run_err(system, "sender thread panicked"))?
                .map_err(|e| run_err(system, e))?,
        );
    }
    let got = receiver
        .join()
        .map_err(|_| run_err(system, "receiver panicked"))?
        .map_err(|e| run_err(system, e))?;
    let end = got.iter().map(|g| g.3).max().unwrap_or_else(Instant::now);
    let seconds = end.duration_since(start).as_secs_f64();
    let mut payload = 0u64;
    for (idx, n, hash, _) in &got {
        let (sn, sh, _) = sent
            .get(*idx as usize)
            .ok_or_else(|| run_err(system, "bad stream index"))?;
        if sn != n || sh != hash {
            return Err(BenchError::Integrity {
                system: system.into(),
            });
        }
        payload += n;
    }
    let complete = sent.iter().all(|s| s.2);
    Ok(finish_result(
        system,
        cfg,
        wan,
        &before,
        payload,
        seconds,
        Duration::from_nanos(cpu_nanos.load(Ordering::Relaxed)),
        complete,
    ))
}

/// A tokio runtime whose threads live in `site`'s namespace and add their CPU time to `cpu`.
pub fn site_runtime(
    site: &Site,
    cpu: Arc<AtomicU64>,
) -> Result<tokio::runtime::Runtime, BenchError> {
    let s = site.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            if let Err(e) = s.enter_current_thread() {
                tracing::error!(error = %e, "entering the site namespace");
            }
        })
        .on_thread_stop(move || {
            cpu.fetch_add(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
        })
        .build()
        .map_err(BenchError::Io)
}

fn dwcp_run(
    wan: &Wanem,
    cfg: &TransportBenchConfig,
    corpus: &Corpus,
    data: &Bytes,
    port: u16,
    cc_name: Option<String>,
) -> Result<SystemResult, BenchError> {
    let system = if cc_name.as_deref() == Some("cubic") && cfg.dwcp_cc.is_none() {
        "dwcp-cubic"
    } else {
        "dwcp"
    };
    let ca =
        novacron_dwcp::testing::TestCa::new("bench cluster").map_err(|e| run_err(system, e))?;
    let id_a = ca.issue("site-a").map_err(|e| run_err(system, e))?;
    let id_b = ca.issue("site-b").map_err(|e| run_err(system, e))?;
    let cc = match &cc_name {
        None => CongestionControl::PreferBbr,
        Some(n) => CongestionControl::Named(n.clone()),
    };
    let opts = SessionOptions {
        server_name: "site-b".into(),
        congestion: cc,
        progress_timeout: Duration::from_secs(60),
        ..SessionOptions::default()
    };
    let cpu = Arc::new(AtomicU64::new(0));
    let rt_b = site_runtime(wan.site_b(), cpu.clone())?;
    let rt_a = site_runtime(wan.site_a(), cpu.clone())?;
    let addr = SocketAddr::from((wan.site_b().addr, port));
    let listener = rt_b
        .block_on(rt_b.spawn({
            let (id_b, opts) = (id_b.clone(), opts.clone());
            async move { Listener::bind(addr, &id_b, opts).await }
        }))
        .map_err(|e| run_err(system, e))?
        .map_err(|e| run_err(system, e))?;
    let memory = cfg.corpus == CorpusKind::Memory;
    let block = if memory {
        4096
    } else {
        cfg.block_bytes.max(512)
    };
    let total = data.len();
    let holds = corpus.receiver_holds.clone();
    // Receiver.
    let receiver = rt_b.spawn(async move {
        let session = listener.accept().await?;
        let ch = session.open_channel(1)?;
        let mut rx = BlockReceiver::new(ch, DecoderConfig::default());
        for h in &holds {
            rx.preload(h);
        }
        rx.announce().await?;
        let mut out = vec![0u8; total];
        let mut got = 0u64;
        while let Some(batch) = rx.recv_batch().await? {
            for b in batch {
                let off = b.block_id as usize;
                let end = off
                    .checked_add(b.data.len())
                    .filter(|e| *e <= total)
                    .ok_or(novacron_dwcp::DwcpError::Protocol(
                        "block outside the corpus".into(),
                    ))?;
                out[off..end].copy_from_slice(&b.data);
                got += b.data.len() as u64;
            }
        }
        let done = Instant::now();
        Ok::<_, novacron_dwcp::DwcpError>((got, blake3::hash(&out), done, session))
    });
    let before = wan.stats();
    let start = Instant::now();
    let send_data = data.clone();
    let timeout = cfg.dwcp_timeout;
    let sender = rt_a.spawn(async move {
        let t0 = Instant::now();
        let session = novacron_dwcp::connect(addr, &id_a, opts).await?;
        tracing::info!(ms = t0.elapsed().as_millis() as u64, "dwcp connected");
        let ch = session.open_channel(1)?;
        // Block ids of file-like corpora are never sent twice: keeping delta history for them
        // would only cost a copy. Guest memory keeps it (pages are re-sent as they change).
        let enc = EncoderConfig {
            delta: memory,
            ..EncoderConfig::default()
        };
        let mut tx = BlockSender::new(ch, enc).auto_level(&session);
        let announced = tx.receive_announcement().await?;
        tracing::info!(
            ms = t0.elapsed().as_millis() as u64,
            announced,
            "dwcp announcement received"
        );
        let mut off = 0usize;
        while off < send_data.len() {
            let end = (off + block).min(send_data.len());
            tx.send_block(off as u64, &send_data[off..end]).await?;
            off = end;
        }
        let stats = tx.finish().await?;
        session.flush().await?;
        let est = session.path_estimate();
        let streams = session.stream_count();
        let tls = session
            .tls_info()
            .map(|t| t.key_exchange_group)
            .unwrap_or_default();
        let sstats = session.stats();
        Ok::<_, novacron_dwcp::DwcpError>(((stats, sstats), est, streams, tls, session))
    });
    let outcome = rt_a.block_on(async {
        tokio::time::timeout(timeout, async {
            let s = sender
                .await
                .map_err(|e| run_err(system, e))?
                .map_err(|e| run_err(system, e))?;
            let r = receiver
                .await
                .map_err(|e| run_err(system, e))?
                .map_err(|e| run_err(system, e))?;
            Ok::<_, BenchError>((s, r))
        })
        .await
    });
    let (((stats, sstats), est, streams, tls_group, client), (got, hash, done, server)) =
        match outcome {
            Ok(r) => r?,
            Err(_) => {
                return Err(run_err(
                    system,
                    format!("transfer not finished after {timeout:?}"),
                ));
            }
        };
    let seconds = done.duration_since(start).as_secs_f64();
    if got != total as u64 || hash != blake3::hash(data) {
        return Err(BenchError::Integrity {
            system: system.into(),
        });
    }
    let stats_snapshot = wan.stats();
    rt_a.block_on(async {
        let _ = client.close().await;
    });
    drop(server);
    rt_a.shutdown_timeout(Duration::from_secs(5));
    rt_b.shutdown_timeout(Duration::from_secs(5));
    let cpu = Duration::from_nanos(cpu.load(Ordering::Relaxed));
    let mut r = finish_result(system, cfg, wan, &before, got, seconds, cpu, true);
    // Count link bytes up to the end of the transfer, not the close handshake after it.
    let d = stats_snapshot.since(&before);
    r.wire_bytes = d.a_to_b.bytes;
    r.reverse_wire_bytes = d.b_to_a.bytes;
    r.link_bps = d.a_to_b.bytes as f64 * 8.0 / seconds;
    r.utilisation = if cfg.rate_bps > 0 {
        r.link_bps / cfg.rate_bps as f64
    } else {
        0.0
    };
    let congestion = cc_name.unwrap_or_else(|| "bbr".into());
    r.dwcp = Some(DwcpDetail {
        streams,
        congestion,
        tls_group,
        pba_bandwidth_bps: est.bandwidth_bps,
        pba_rtt_ms: est.rtt_ms,
        pba_forecast_bps: est.forecast.bandwidth_bps,
        hde_zero_blocks: stats.zero_blocks,
        hde_ref_blocks: stats.ref_blocks,
        hde_delta_blocks: stats.delta_blocks,
        hde_raw_blocks: stats.raw_blocks,
        hde_output_bytes: stats.output_bytes,
        frames_sent: sstats.frames_sent,
        frames_resent: sstats.frames_resent,
        frames_hedged: sstats.frames_hedged,
        streams_opened: sstats.streams_opened,
    });
    Ok(r)
}

/// Renders the report as the table printed by `novacron bench transport`.
pub fn render_table(r: &TransportReport) -> String {
    let mut s = format!(
        "link {:.0} Mbit/s, RTT {:.0} ms, loss {:.3} %, corpus {}\n",
        r.link.rate_bps as f64 / 1e6,
        r.link.rtt_ms,
        r.link.loss * 100.0,
        r.corpus
    );
    s.push_str(&format!(
        "{:<18} {:>14} {:>12} {:>8} {:>14} {:>14} {:>9} {:>8}\n",
        "system",
        "goodput Mbit/s",
        "link Mbit/s",
        "util",
        "wire bytes",
        "payload bytes",
        "seconds",
        "cpu s"
    ));
    for x in &r.results {
        s.push_str(&format!(
            "{:<18} {:>14.1} {:>12.1} {:>7.1}% {:>14} {:>14} {:>9.2} {:>8.2}{}\n",
            x.system,
            x.goodput_bps / 1e6,
            x.link_bps / 1e6,
            x.utilisation * 100.0,
            x.wire_bytes,
            x.payload_bytes,
            x.seconds,
            x.cpu_seconds,
            if x.complete {
                ""
            } else {
                "  (stopped at the time limit)"
            }
        ));
    }
    s
}
