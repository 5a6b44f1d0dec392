//! The source side of a live migration: mirrors disks, streams memory through HDE, applies the
//! convergence policy, and either hands over (destination loaded, source paused) or puts
//! everything back as it was (VM running on the source).

use std::io::Read;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use novacron_dwcp::hde::EncoderConfig;
use novacron_dwcp::{Channel, Session};
use novacron_qemu::{Qmp, QmpEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::base::BaseIndex;
use crate::control::{self, Channels, Control, DiskPlan, PROTOCOL_VERSION};
use crate::error::MigrateError;
use crate::flow::{RateLimit, Window};
use crate::nbd::NbdProxy;
use crate::pause;
use crate::policy::{self, PolicyInput};
use crate::postcopy::{self, FaultSummary, Hook, PostcopyUse};
use crate::progress::{MigrationPhase, MigrationProgress};
use crate::qapi::{self, MigrateInfo};
use crate::qevm::{PAGE_BYTES, Parser};
use crate::util::block_on_until;
use crate::wire::{WireEncoder, WireStats};

const SIDE: &str = "source";
/// Raw stream bytes gathered into one message at most.
const BATCH_BYTES: usize = 256 << 10;
/// A read that waits this long flushes what is pending (QEMU paused between writes).
const IDLE_FLUSH: Duration = Duration::from_millis(2);
const TICK: Duration = Duration::from_millis(100);
/// In-flight stream bytes in post-copy before any decision gave a tail window.
const MIN_POSTCOPY_WINDOW: u64 = 256 << 10;
/// Stream bytes in flight from the decision to switch to post-copy until the pipe drained:
/// the device state QEMU sends at the switch queues behind them, and each of them is pause.
const SWITCH_WINDOW: u64 = 64 << 10;
/// Longest wait for the pipe to drain to [`SWITCH_WINDOW`] before a switch to post-copy.
const POSTCOPY_DRAIN_LIMIT: Duration = Duration::from_secs(3);
/// How long a bandwidth estimate counts (see [`Monitor::apply`]).
const BANDWIDTH_MEMORY: Duration = Duration::from_secs(10);
/// Largest raw-rate cap QEMU accepts comfortably; the link, not QEMU, must be the limit.
pub const UNLIMITED_QEMU_BANDWIDTH: u64 = 1 << 40;

/// How a disk is copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorSync {
    /// Only the overlay's allocated clusters (the destination has the same backing base).
    #[default]
    Top,
    /// Every allocated block (a disk without a backing file, or a destination without the base).
    Full,
}

/// A local disk to mirror to the destination. Disks on shared storage are simply not listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskMirror {
    /// Block node name on both sides (`disk0`, ...).
    pub node: String,
    pub sync: MirrorSync,
}

/// What the caller asks of a migration (source side).
#[derive(Clone, Debug)]
pub struct SourceParams {
    /// Directory for the sockets of this migration (keep the path short: unix sockets).
    pub work_dir: PathBuf,
    /// Longest acceptable downtime.
    pub max_downtime: Duration,
    /// `max_downtime` is a default, not the caller's: when the link cannot pause the guest
    /// for that little, the limit is raised to [`policy::raised_limit_ms`] of the link's floor
    /// (and said in the progress) instead of refusing the migration.
    pub max_downtime_raisable: bool,
    /// Cap on the wire rate of this migration (stream and disks), bits/s.
    pub bandwidth_limit_bps: Option<u64>,
    /// Fail (VM stays on the source) when not completed within this time.
    pub deadline: Option<Duration>,
    /// Stop the VM first and copy it stopped (no convergence needed; downtime = whole copy).
    pub offline: bool,
    /// Local disks to mirror.
    pub disks: Vec<DiskMirror>,
    /// Let QEMU throttle the guest when its dirty rate outruns the link.
    pub auto_converge: bool,
    /// Channel id offset in the session (distinct per concurrent migration on one session).
    pub channel_base: u32,
    /// HDE history (both sides hold up to this much distinct page content). Default: guest RAM + 64 MiB.
    pub history_bytes: Option<u64>,
    /// Time the caller's commit takes between [`source`] returning and [`SourceHandover::release_destination`];
    /// counted in the downtime budget.
    pub commit_allowance: Duration,
    /// How long to wait for the peer's answers during set-up and switch-over.
    pub peer_timeout: Duration,
    /// Whether and when to switch to post-copy.
    pub postcopy: PostcopyUse,
    /// Records the commit (the VM belongs to the destination from now on) before the switch
    /// to post-copy; without it (None) the switch never happens. After it the source never
    /// resumes its copy.
    pub commit_before_postcopy: Option<Hook>,
}

impl Default for SourceParams {
    fn default() -> Self {
        SourceParams {
            work_dir: std::env::temp_dir(),
            max_downtime: Duration::from_millis(300),
            max_downtime_raisable: false,
            bandwidth_limit_bps: None,
            deadline: None,
            offline: false,
            disks: Vec::new(),
            auto_converge: true,
            channel_base: 0,
            history_bytes: None,
            commit_allowance: Duration::ZERO,
            peer_timeout: Duration::from_secs(60),
            postcopy: PostcopyUse::Never,
            commit_before_postcopy: None,
        }
    }
}

/// What a finished (handed-over) migration measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MigrationSummary {
    /// From the call to [`source`] to the destination's Loaded.
    pub total_ms: u64,
    /// QEMU's own downtime figure on the source (stop to last byte written): not the pause,
    /// which goes on over the WAN, through the load, the commit and the resume.
    pub qemu_downtime_ms: Option<u64>,
    /// The guest's real pause: the source's STOP to the destination's RESUME, ms (see
    /// [`crate::pause`]). Known after [`ReleasedSource::wait_resumed`].
    pub downtime_ms: Option<u64>,
    /// Error bound of [`Self::downtime_ms`] from comparing the two hosts' clocks, ms.
    pub downtime_bound_ms: Option<f64>,
    /// Destination clock minus source clock as measured, µs.
    pub clock_offset_us: Option<i64>,
    /// The source QEMU's STOP event, µs since the Unix epoch (source clock).
    pub stop_unix_micros: Option<i64>,
    /// The destination QEMU's RESUME event, µs since the Unix epoch (destination clock).
    pub resume_unix_micros: Option<i64>,
    /// Bytes of QEMU's migration stream, and message bytes sent for them.
    pub stream_bytes: u64,
    pub stream_wire_bytes: u64,
    /// Disk (NBD) bytes carried, and message bytes sent for them.
    pub disk_payload_bytes: u64,
    pub disk_wire_bytes: u64,
    /// Memory passes (dirty-bitmap syncs).
    pub passes: u64,
    /// Highest auto-converge throttle applied, percent.
    pub max_throttle_percent: u64,
    /// Stream encoder counters.
    #[serde(skip)]
    pub wire: WireStats,
    /// Time from the stop (pre-switchover) to the destination's Loaded, ms.
    pub stop_to_loaded_ms: Option<u64>,
    /// Post-copy: when the source switched (ms since the start) and why.
    pub postcopy_switch_ms: Option<u64>,
    pub postcopy_reason: Option<String>,
    /// Post-copy: the page faults the destination served.
    pub faults: Option<FaultSummary>,
    /// The pause limit in force at the switch-over: the one given, or the one it was raised
    /// to because the link cannot pause the guest for that little, ms.
    pub max_downtime_ms: u64,
}

/// The source after a successful transfer: the destination holds the whole state (paused), the
/// source QEMU is stopped (`postmigrate`). Commit the switch-over, then call
/// [`SourceHandover::release_destination`]; if the commit fails, [`SourceHandover::roll_back`].
pub struct SourceHandover {
    qmp: Qmp,
    control: Channel,
    was_running: bool,
    /// What the migration measured.
    pub summary: MigrationSummary,
}

impl std::fmt::Debug for SourceHandover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceHandover")
            .field("summary", &self.summary)
            .finish()
    }
}

impl SourceHandover {
    /// True when the VM was running before the migration (the destination should resume it).
    pub fn was_running(&self) -> bool {
        self.was_running
    }

    /// Tells the destination the switch-over is committed: it resumes the VM. Call only after
    /// the commit is durable. The source QEMU stays stopped; quit it afterwards. The pause is
    /// measured once the destination says it resumed: [`ReleasedSource::wait_resumed`].
    pub async fn release_destination(self) -> Result<ReleasedSource, MigrateError> {
        let go_sent = pause::now_unix_micros();
        control::send(&self.control, &Control::Go).await?;
        Ok(ReleasedSource {
            control: self.control,
            go_sent_unix_micros: go_sent,
            summary: self.summary,
        })
    }

    /// The commit failed: resumes the VM on the source and tells the destination to drop its copy.
    pub async fn roll_back(self, reason: &str) -> Result<(), MigrateError> {
        let _ = control::send(
            &self.control,
            &Control::Abort {
                reason: reason.to_string(),
            },
        )
        .await;
        if self.was_running {
            resume_if_stopped(&self.qmp).await?;
        }
        Ok(())
    }
}

/// The source after `Go`: the destination resumes the VM and says so.
pub struct ReleasedSource {
    control: Channel,
    go_sent_unix_micros: i64,
    /// What the migration measured so far (no pause yet).
    pub summary: MigrationSummary,
}

impl std::fmt::Debug for ReleasedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleasedSource")
            .field("summary", &self.summary)
            .finish()
    }
}

impl ReleasedSource {
    /// Waits (at most `timeout`) for the destination's `Resumed` and measures the pause from
    /// the source's STOP to the destination's RESUME, the two hosts' clocks compared on the way
    /// (see [`crate::pause`]). Without an answer the pause stays unknown (`downtime_ms: None`);
    /// the migration itself is done either way.
    pub async fn wait_resumed(self, timeout: Duration) -> MigrationSummary {
        let mut summary = self.summary;
        let answer = tokio::time::timeout(timeout, control::recv(&self.control)).await;
        let received = pause::now_unix_micros();
        let _ = self.control.finish().await;
        let (resume, go_received, sent) = match answer {
            Ok(Ok(Some(Control::Resumed {
                resume_unix_micros,
                go_received_unix_micros,
                sent_unix_micros,
            }))) => (
                resume_unix_micros,
                go_received_unix_micros,
                sent_unix_micros,
            ),
            Ok(other) => {
                tracing::warn!(answer = ?other, "the destination did not report its resume; the pause is unknown");
                return summary;
            }
            Err(_) => {
                tracing::warn!(
                    timeout_s = timeout.as_secs(),
                    "no resume report from the destination in time; the pause is unknown"
                );
                return summary;
            }
        };
        let exchange = pause::ClockExchange {
            go_sent: self.go_sent_unix_micros,
            go_received,
            resumed_sent: sent,
            resumed_received: received,
        };
        let Some(clock) = exchange.offset() else {
            tracing::warn!(
                ?exchange,
                "inconsistent clock exchange; the pause is unknown"
            );
            return summary;
        };
        summary.clock_offset_us = Some(clock.offset_us);
        summary.resume_unix_micros = resume;
        if let (Some(stop), Some(resume)) = (summary.stop_unix_micros, resume) {
            let p = pause::Pause::measure(stop, resume, clock);
            summary.downtime_ms = Some(p.downtime_ms.max(0.0).round() as u64);
            summary.downtime_bound_ms = Some(p.bound_ms());
            // Where the pause went: until Go left the source (the transfer, Loaded, the
            // commit), and from Go's arrival to the RESUME (`cont`), each on its own clock.
            tracing::info!(
                downtime_ms = p.downtime_ms,
                bound_ms = p.bound_ms(),
                clock_offset_us = clock.offset_us,
                qemu_downtime_ms = summary.qemu_downtime_ms,
                stop_to_go_ms = (self.go_sent_unix_micros - stop) as f64 / 1000.0,
                go_to_resume_ms = (resume - go_received) as f64 / 1000.0,
                "pause measured: source STOP to destination RESUME"
            );
        }
        summary
    }
}

/// What [`source`] changed, so a failure can put it back.
#[derive(Default)]
struct Undo {
    was_running: bool,
    stopped_for_offline: bool,
    migrate_started: bool,
    jobs: Vec<String>,
    nbd_nodes: Vec<String>,
    control: Option<Channel>,
    sockets: Vec<PathBuf>,
    pipeline_stop: Option<Arc<Window>>,
    /// The commit was recorded for a switch to post-copy: the VM belongs to the destination,
    /// and this side must never resume its (stale) copy.
    postcopy_committed: bool,
}

/// Migrates the VM of `qmp` to the peer of `session`, which runs [`crate::destination`].
///
/// Returns when the destination holds the complete state, paused; the source QEMU is then
/// stopped. On any error or cancel before that, the source is put back (mirror jobs cancelled,
/// migration cancelled, the VM resumed if it was running) and the destination told to give up.
pub async fn source(
    qmp: &Qmp,
    session: &Session,
    params: &SourceParams,
    progress: &watch::Sender<MigrationProgress>,
    cancel: &CancellationToken,
) -> Result<SourceHandover, MigrateError> {
    let started = Instant::now();
    let mut undo = Undo::default();
    let result = run(qmp, session, params, progress, cancel, &mut undo, started).await;
    match result {
        Ok(h) => {
            progress.send_modify(|p| {
                p.phase = MigrationPhase::SwitchOver;
                p.message = "destination holds the whole state; waiting for the commit".into();
            });
            Ok(h)
        }
        Err(e) if undo.postcopy_committed => {
            // The destination owns the VM (committed) and runs it; the pages it still lacks
            // were here. Resuming this copy would run the VM twice: it stays stopped, and the
            // destination's QEMU fails on its own if it needed a page it cannot get.
            if let Some(w) = &undo.pipeline_stop {
                w.close();
            }
            // A failure between the commit and QEMU's switch leaves the guest running here:
            // stop it, the control plane gave the VM to the destination.
            if let Ok(st) = qmp.query_status().await
                && st.running
            {
                let _ = qmp.stop().await;
            }
            let e = MigrateError::PostcopyFailed(e.to_string());
            tracing::error!(error = %e, "post-copy failed after the commit; the source keeps its copy stopped");
            progress.send_modify(|p| {
                p.phase = MigrationPhase::Failed;
                p.elapsed_ms = started.elapsed().as_millis() as u64;
                p.message = e.to_string();
            });
            Err(e)
        }
        Err(e) => {
            tracing::warn!(error = %e, "migration failed on the source side; rolling back");
            let rb = roll_back(qmp, &undo, &e.to_string()).await;
            let (final_err, where_vm) = match rb {
                Ok(()) => (e, "the VM runs on the source"),
                Err(r) => (
                    MigrateError::RollbackFailed {
                        cause: e.to_string(),
                        rollback: r.to_string(),
                    },
                    "the VM may be stopped on the source",
                ),
            };
            progress.send_modify(|p| {
                p.phase = MigrationPhase::Failed;
                p.elapsed_ms = started.elapsed().as_millis() as u64;
                p.message = format!("{final_err}; {where_vm}");
            });
            Err(final_err)
        }
    }
}

async fn cancellable<T>(
    cancel: &CancellationToken,
    deadline: Option<(Instant, Duration)>,
    fut: impl std::future::Future<Output = Result<T, MigrateError>>,
) -> Result<T, MigrateError> {
    let sleep = async {
        match deadline {
            Some((at, _)) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = fut => r,
        _ = cancel.cancelled() => Err(MigrateError::Cancelled),
        _ = sleep => Err(MigrateError::DeadlineExceeded {
            deadline_s: deadline.map(|d| d.1.as_secs()).unwrap_or(0),
            reason: "still preparing".into(),
        }),
    }
}

async fn disk_size(qmp: &Qmp, node: &str) -> Result<u64, MigrateError> {
    let v = qapi::exec(qmp, SIDE, "query-named-block-nodes", json!({"flat": true})).await?;
    v.as_array()
        .and_then(|a| {
            a.iter()
                .find(|n| n.get("node-name").and_then(Value::as_str) == Some(node))
        })
        .and_then(|n| n.pointer("/image/virtual-size").and_then(Value::as_u64))
        .ok_or_else(|| {
            MigrateError::Refused(format!(
                "the source VM has no block node {node:?} to mirror"
            ))
        })
}

fn job_id(node: &str) -> String {
    format!("mig-{node}")
}

#[allow(clippy::too_many_arguments)]
async fn run(
    qmp: &Qmp,
    session: &Session,
    p: &SourceParams,
    progress: &watch::Sender<MigrationProgress>,
    cancel: &CancellationToken,
    undo: &mut Undo,
    started: Instant,
) -> Result<SourceHandover, MigrateError> {
    let deadline = p.deadline.map(|d| (started + d, d));
    let ch = Channels {
        base: p.channel_base,
    };
    let mut events = qmp.subscribe();
    // STOP events only (the main receiver's events are also consumed by the mirror code).
    let mut stops = StopWatch::new(qmp.subscribe());
    qapi::check_version(qmp, SIDE)?;
    let status = qmp
        .query_status()
        .await
        .map_err(|e| MigrateError::qemu(SIDE, "query-status", e))?;
    match status.status.as_str() {
        "running" | "paused" => {}
        other => {
            return Err(MigrateError::Refused(format!(
                "the VM is {other}; only a running or paused VM can be migrated"
            )));
        }
    }
    undo.was_running = status.running;
    if qapi::query_migrate(qmp, SIDE).await?.is_active() {
        return Err(MigrateError::Refused(
            "a migration of this VM is already in progress".into(),
        ));
    }
    clear_leftovers(qmp).await?;
    if p.max_downtime.is_zero() {
        return Err(MigrateError::Refused(
            "max downtime must be above 0 ms".into(),
        ));
    }
    let memory_bytes = qapi::memory_bytes(qmp, SIDE).await?;
    let mut postcopy_use = if p.offline || p.commit_before_postcopy.is_none() {
        PostcopyUse::Never
    } else {
        p.postcopy
    };
    if postcopy_use != PostcopyUse::Never {
        let memdevs = qapi::exec(qmp, SIDE, "query-memdev", json!({})).await?;
        if let Some(why) = postcopy::shared_memory_refusal(&memdevs) {
            if postcopy_use == PostcopyUse::AfterFirstPass {
                return Err(MigrateError::Refused(why));
            }
            tracing::info!(reason = %why, "post-copy ruled out for this migration");
            postcopy_use = PostcopyUse::Never;
        }
    }
    let mut disks = Vec::new();
    for d in &p.disks {
        disks.push(DiskPlan {
            node: d.node.clone(),
            size_bytes: disk_size(qmp, &d.node).await?,
        });
    }
    std::fs::create_dir_all(&p.work_dir)
        .map_err(|e| MigrateError::io(format!("creating {}", p.work_dir.display()), e))?;
    let history_bytes = p
        .history_bytes
        .unwrap_or(memory_bytes + (64 << 20))
        .min(16 << 30);
    let limit = p.bandwidth_limit_bps.map(|b| Arc::new(RateLimit::new(b)));

    // Handshake.
    let control = session.open_channel(ch.control())?;
    undo.control = Some(control.clone());
    let announce = session.open_channel(ch.announce())?;
    control::send(
        &control,
        &Control::Hello {
            protocol: PROTOCOL_VERSION,
            memory_bytes,
            disks: disks.clone(),
            history_bytes,
            postcopy: postcopy_use != PostcopyUse::Never,
        },
    )
    .await?;
    // The announcement arrives before Ready (one delivery order for the whole session); a
    // destination that fails says so on the control channel instead.
    let announcement = async {
        let mut index = BaseIndex::new();
        while let Some(m) = announce.recv().await? {
            index.add_announcement(&m)?;
        }
        Ok::<_, MigrateError>(index)
    };
    tokio::pin!(announcement);
    let mut base = None;
    let ready = cancellable(cancel, deadline, async {
        loop {
            tokio::select! {
                r = &mut announcement, if base.is_none() => base = Some(r?),
                m = control::recv_timeout(&control, p.peer_timeout, "the destination to get ready") => return m,
            }
        }
    })
    .await?;
    match ready {
        Some(Control::Ready {
            base_blocks,
            postcopy,
            postcopy_refused,
        }) => {
            tracing::info!(base_blocks, postcopy, "destination ready");
            if postcopy_use != PostcopyUse::Never && !postcopy {
                let why = postcopy_refused
                    .unwrap_or_else(|| "the destination did not enable post-copy".into());
                if postcopy_use == PostcopyUse::AfterFirstPass {
                    return Err(MigrateError::Refused(format!("destination: {why}")));
                }
                tracing::info!(reason = %why, "post-copy ruled out by the destination");
                postcopy_use = PostcopyUse::Never;
            }
        }
        Some(Control::Failed { reason }) => return Err(MigrateError::DestinationFailed(reason)),
        other => {
            return Err(MigrateError::Protocol(format!(
                "expected Ready from the destination, got {other:?}"
            )));
        }
    }
    let base = match base {
        Some(b) => b,
        None => tokio::time::timeout(p.peer_timeout, &mut announcement)
            .await
            .map_err(|_| MigrateError::Protocol("base image announcement incomplete".into()))??,
    };

    // The switch-over's own steps and round trips may exceed the limit: known from the
    // handshake (the RTT, when measured already), before any byte of the VM moves.
    let mut max_downtime = p.max_downtime;
    let rtt_ms = session.path_estimate().min_rtt_ms.max(0.0);
    if !p.offline {
        let overhead = policy::overhead_ms(rtt_ms, !disks.is_empty(), commit_ms(p));
        let limit = max_downtime.as_secs_f64() * 1000.0;
        match policy::limit_against_floor(overhead, limit, p.max_downtime_raisable) {
            Ok(None) => {}
            Ok(Some(raised)) => {
                max_downtime = Duration::from_millis(raised);
                tracing::info!(
                    rtt_ms,
                    overhead,
                    raised,
                    "the switch-over's round trips exceed the default pause limit: raising it"
                );
                progress.send_modify(|x| x.raised_max_downtime_ms = Some(raised));
            }
            Err(why) => {
                return Err(MigrateError::Refused(format!(
                    "{why} (the switch-over's own steps and round trips, at {rtt_ms:.0} ms RTT)"
                )));
            }
        }
    }

    // Control messages from the destination from now on.
    let window = Arc::new(Window::new(4 << 20));
    undo.pipeline_stop = Some(window.clone());
    let (peer_tx, mut peer_rx) = mpsc::unbounded_channel::<Control>();
    // When the destination last acknowledged stream bytes (post-copy needs a live peer).
    let last_ack = Arc::new(Mutex::new(Instant::now()));
    let reader = {
        let control = control.clone();
        let window = window.clone();
        let last_ack = last_ack.clone();
        tokio::spawn(async move {
            loop {
                match control::recv(&control).await {
                    Ok(Some(Control::Ack {
                        consumed_wire_bytes,
                    })) => {
                        window.acked(consumed_wire_bytes);
                        *last_ack.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                    }
                    Ok(Some(m)) => {
                        if peer_tx.send(m).is_err() {
                            break;
                        }
                    }
                    Ok(None) => {
                        let _ = peer_tx.send(Control::Failed {
                            reason: "destination closed the control channel".into(),
                        });
                        break;
                    }
                    Err(e) => {
                        let _ = peer_tx.send(Control::Failed {
                            reason: format!("control channel: {e}"),
                        });
                        break;
                    }
                }
            }
        })
    };
    let _reader_guard = AbortOnDrop(reader);

    // Disks.
    let mut proxies = Vec::new();
    if !p.disks.is_empty() {
        progress.send_modify(|x| {
            x.phase = MigrationPhase::DiskSync;
            x.message = format!("mirroring {} disk(s)", p.disks.len());
        });
        for (i, d) in p.disks.iter().enumerate() {
            let sock = p.work_dir.join(format!("nbd{i}.sock"));
            undo.sockets.push(sock.clone());
            proxies.push(NbdProxy::source(session, ch.nbd(i), &sock, limit.clone())?);
            let node = format!("mig-nbd{i}");
            cancellable(
                cancel,
                deadline,
                qapi::exec(
                    qmp,
                    SIDE,
                    "blockdev-add",
                    json!({"driver": "nbd", "node-name": node,
                           "server": {"type": "unix", "path": sock.to_string_lossy()},
                           "export": d.node}),
                ),
            )
            .await?;
            undo.nbd_nodes.push(node.clone());
            let sync = match d.sync {
                MirrorSync::Top => "top",
                MirrorSync::Full => "full",
            };
            qapi::exec(
                qmp,
                SIDE,
                "blockdev-mirror",
                json!({"job-id": job_id(&d.node), "device": d.node, "target": node, "sync": sync}),
            )
            .await?;
            undo.jobs.push(job_id(&d.node));
        }
        wait_mirrors_ready(
            qmp,
            p,
            &mut events,
            progress,
            cancel,
            deadline,
            &proxies,
            started,
        )
        .await?;
    }

    // Memory.
    let caps: Vec<(&str, bool)> = vec![
        ("xbzrle", false),
        ("compress", false),
        ("multifd", false),
        ("postcopy-ram", postcopy_use != PostcopyUse::Never),
        ("x-ignore-shared", false),
        ("block", false),
        ("return-path", false),
        ("release-ram", false),
        ("events", true),
        ("pause-before-switchover", true),
        ("auto-converge", p.auto_converge && !p.offline),
    ];
    qapi::set_capabilities(qmp, SIDE, &caps).await?;
    let max_downtime_ms = max_downtime.as_millis() as u64;
    qapi::set_parameters(
        qmp,
        SIDE,
        json!({
            "downtime-limit": if p.offline { 2_000_000 } else { policy::hold_limit_ms(max_downtime_ms as f64) },
            "max-bandwidth": UNLIMITED_QEMU_BANDWIDTH,
            // The policy sets the throttle from its model when pre-copy cannot converge;
            // until then QEMU throttles only a guest that dirties more than it sent.
            "cpu-throttle-initial": 20,
            "cpu-throttle-increment": 10,
            "throttle-trigger-threshold": 100,
        }),
    )
    .await?;
    if p.offline && undo.was_running {
        qmp.stop()
            .await
            .map_err(|e| MigrateError::qemu(SIDE, "stop (offline migration)", e))?;
        undo.stopped_for_offline = true;
    }
    let sock_path = p.work_dir.join("migrate.sock");
    let _ = std::fs::remove_file(&sock_path);
    let listener = tokio::net::UnixListener::bind(&sock_path)
        .map_err(|e| MigrateError::io(format!("binding {}", sock_path.display()), e))?;
    // QEMU may run as the VM's own user, who owns the work directory.
    novacron_qemu::user::give_to_dir_owner(&sock_path)
        .map_err(|e| MigrateError::qemu(SIDE, "migration socket", e))?;
    undo.sockets.push(sock_path.clone());
    let stream_ch = session.open_channel(ch.stream())?;
    qapi::exec(
        qmp,
        SIDE,
        "migrate",
        json!({"uri": format!("unix:{}", sock_path.display())}),
    )
    .await?;
    undo.migrate_started = true;
    let conn = cancellable(cancel, deadline, async {
        tokio::time::timeout(Duration::from_secs(30), listener.accept())
            .await
            .map_err(|_| {
                MigrateError::SourceFailed("QEMU did not connect to the migration socket".into())
            })?
            .map(|(c, _)| c)
            .map_err(|e| MigrateError::io("accepting QEMU's migration connection", e))
    })
    .await?;
    drop(listener);
    let _ = std::fs::remove_file(&sock_path);
    let conn = conn
        .into_std()
        .map_err(|e| MigrateError::io("migration socket", e))?;
    conn.set_nonblocking(false)
        .and_then(|_| conn.set_read_timeout(Some(IDLE_FLUSH)))
        .map_err(|e| MigrateError::io("migration socket", e))?;
    // Post-copy: the destination QEMU's return path arrives on its own channel and goes into
    // this socket's other direction, where QEMU's return-path thread reads it.
    let rp_relay = if postcopy_use != PostcopyUse::Never {
        let rp_ch = session.open_channel(ch.return_path())?;
        let writer = conn
            .try_clone()
            .map_err(|e| MigrateError::io("migration socket", e))?;
        let rt = tokio::runtime::Handle::current();
        let stop = CancellationToken::new();
        let stop2 = stop.clone();
        let h = tokio::task::spawn_blocking(move || -> Result<(), MigrateError> {
            while let Some(msg) = block_on_until(&rt, &stop2, rp_ch.recv())? {
                crate::util::send_all_blocking(&writer, &msg, &stop2)
                    .map_err(|e| MigrateError::io("writing the return path into QEMU", e))?;
            }
            Ok(())
        });
        Some((h, stop))
    } else {
        None
    };
    struct CancelOnDrop(Option<CancellationToken>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            if let Some(t) = &self.0 {
                t.cancel();
            }
        }
    }
    let _rp_guard = CancelOnDrop(rp_relay.as_ref().map(|r| r.1.clone()));
    let enc_cfg = EncoderConfig {
        history_bytes,
        zstd_level: session.suggested_zstd_level(),
        delta: true,
        dedup: true,
    };
    let shared = Arc::new(Mutex::new(WireStats::default()));
    let stop_flag = CancellationToken::new();
    let pipeline = {
        let rt = tokio::runtime::Handle::current();
        let window = window.clone();
        let shared = shared.clone();
        let stop_flag = stop_flag.clone();
        let session = session.clone();
        let limit = limit.clone();
        let base = Arc::new(base);
        tokio::task::spawn_blocking(move || {
            let enc = WireEncoder::new(enc_cfg, Some(base));
            stream_pipeline(
                conn, stream_ch, rt, window, limit, enc, shared, stop_flag, session,
            )
        })
    };
    let stop_guard = StopOnDrop(stop_flag.clone(), window.clone());
    let mut pipeline = Some(pipeline);
    let mut end_message: Option<(Vec<u8>, Channel)> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mon = Monitor::new(p, max_downtime, started, disks.is_empty());
    mon.postcopy_allowed = postcopy_use != PostcopyUse::Never;
    let mut stopped_at: Option<Instant> = None;
    let mut completed = false;
    // Set once `migrate-continue` went to QEMU: it is sent exactly once per migration.
    let mut continued = false;
    let mut info = MigrateInfo::default();
    // Post-copy: when the switch was asked of QEMU, and why.
    let mut switched: Option<(Instant, String)> = None;
    progress.send_modify(|x| {
        x.phase = MigrationPhase::MemoryPrecopy { pass: 1 };
        x.message = "copying memory".into();
    });
    loop {
        if completed && end_message.is_some() {
            break;
        }
        let mut poll_now = false;
        tokio::select! {
            _ = cancel.cancelled() => return Err(MigrateError::Cancelled),
            _ = tick.tick() => poll_now = true,
            ev = events.recv() => match ev {
                Ok(QmpEvent { event, data, .. }) => match event.as_str() {
                    "MIGRATION" | "MIGRATION_PASS" => poll_now = true,
                    "BLOCK_JOB_ERROR" => {
                        return Err(MigrateError::Mirror {
                            disk: data.get("device").and_then(Value::as_str).unwrap_or("?").into(),
                            reason: format!("{data}"),
                        });
                    }
                    _ => {}
                },
                Err(broadcast::error::RecvError::Lagged(_)) => poll_now = true,
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(MigrateError::SourceFailed("source QEMU went away".into()));
                }
            },
            m = peer_rx.recv() => match m {
                Some(Control::Failed { reason }) => return Err(MigrateError::DestinationFailed(reason)),
                Some(other) => return Err(MigrateError::Protocol(format!("unexpected {other:?} during the transfer"))),
                None => return Err(MigrateError::DestinationFailed("control channel ended".into())),
            },
            r = async {
                match pipeline.as_mut() {
                    Some(h) => h.await,
                    None => std::future::pending().await,
                }
            } => {
                pipeline = None;
                match r {
                    Ok(Ok(end)) => {
                        end_message = Some(end);
                        poll_now = true;
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(MigrateError::Protocol(format!("stream pipeline: {e}"))),
                }
            }
        }
        stops.drain();
        if !poll_now {
            continue;
        }
        info = qapi::query_migrate(qmp, SIDE).await?;
        let wire = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match info.status() {
            "failed" => {
                return Err(MigrateError::SourceFailed(
                    info.error_desc
                        .clone()
                        .unwrap_or_else(|| "no reason given".into()),
                ));
            }
            "cancelled" | "cancelling" => {
                return Err(MigrateError::SourceFailed(
                    "migration was cancelled in QEMU".into(),
                ));
            }
            "pre-switchover" if continued => {
                // `migrate-continue` only wakes QEMU's migration thread; the state moves on to
                // `device` a moment later, so a poll in between still reads pre-switchover.
                // A second `migrate-continue` then races that move and fails with "not in
                // expected state: device". Sent once, wait for QEMU to move on.
                tracing::debug!("still pre-switchover after migrate-continue; waiting for QEMU");
                continue;
            }
            "pre-switchover" => {
                stopped_at.get_or_insert_with(Instant::now);
                progress.send_modify(|x| {
                    x.phase = MigrationPhase::StopAndCopy;
                    x.message = "VM stopped on the source; completing disks and memory".into();
                });
                let t = Instant::now();
                complete_mirrors(qmp, p, undo, &mut events).await?;
                continued = true;
                continue_switchover(qmp).await?;
                tracing::debug!(
                    mirrors_ms = t.elapsed().as_millis() as u64,
                    remaining = info.ram.as_ref().map_or(0, |r| r.remaining),
                    "source stopped; disks completed; continuing"
                );
                continue;
            }
            "device" => {
                stopped_at.get_or_insert_with(Instant::now);
            }
            "postcopy-active" => {
                stopped_at.get_or_insert_with(Instant::now);
                // The tail window keeps the pipe full and the bytes queued ahead of a requested
                // page at about one round trip's worth.
                window.set_limit(mon.tail_window.max(MIN_POSTCOPY_WINDOW));
                let sent = shared.lock().unwrap_or_else(|p| p.into_inner()).raw_bytes;
                progress.send_modify(|x| {
                    x.phase = MigrationPhase::Postcopy;
                    x.elapsed_ms = started.elapsed().as_millis() as u64;
                    x.payload_bytes = sent;
                    x.bytes_on_wire = window.sent();
                    x.remaining_ram_bytes = info.ram.as_ref().map_or(0, |r| r.remaining);
                    x.message = format!(
                        "post-copy: the VM runs on the destination; {} MiB of memory still to send",
                        info.ram.as_ref().map_or(0, |r| r.remaining) >> 20
                    );
                });
                continue;
            }
            "postcopy-paused" => {
                return Err(MigrateError::SourceFailed(
                    "post-copy paused: the link to the destination broke".into(),
                ));
            }
            "completed" => {
                stopped_at.get_or_insert_with(Instant::now);
                completed = true;
                tracing::debug!(
                    since_stop_ms = stopped_at.map_or(0, |s| s.elapsed().as_millis() as u64),
                    qemu_downtime_ms = info.downtime,
                    "source QEMU completed"
                );
                progress.send_modify(|x| {
                    x.phase = MigrationPhase::StopAndCopy;
                    x.source_downtime_ms = info.downtime;
                    x.message =
                        "source QEMU wrote its last byte; waiting for the destination".into();
                });
                continue;
            }
            _ => {}
        }
        if stopped_at.is_none() {
            if let Some((at, d)) = deadline
                && Instant::now() >= at
            {
                return Err(MigrateError::DeadlineExceeded {
                    deadline_s: d.as_secs(),
                    reason: format!(
                        "memory did not converge ({} passes, predicted downtime {} ms)",
                        info.ram.as_ref().map_or(0, |r| r.dirty_sync_count),
                        mon.last_predicted_ms
                            .map_or("unknown".into(), |v| v.to_string())
                    ),
                });
            }
            mon.apply(qmp, session, &info, &wire, &window, progress, &proxies)
                .await?;
            let pass = info.ram.as_ref().map_or(0, |r| r.dirty_sync_count);
            let reason = match postcopy_use {
                PostcopyUse::Never => None,
                _ if switched.is_some() || mon.released => None,
                PostcopyUse::AfterFirstPass => (pass >= 2).then(|| {
                    "--mode postcopy: switching after the first pre-copy pass".to_string()
                }),
                PostcopyUse::WhenStuck => {
                    let acked_recently =
                        last_ack.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
                            < Duration::from_secs(3)
                            || window.in_flight() == 0;
                    policy::postcopy_reason(&policy::PostcopyCheck {
                        pass,
                        converging: mon.last_converge,
                        dirty_to_goodput: mon.last_dirty_to_goodput,
                        throttle_percent: info.cpu_throttle_percentage.unwrap_or(0),
                        may_throttle: mon.may_throttle,
                        elapsed: started.elapsed(),
                        deadline: p.deadline,
                        healthy: acked_recently && session.stream_count() > 0,
                        stall: mon.passes.stalled(),
                    })
                }
            };
            // Decided once: the pipe first drains (what was in flight at the decision crosses,
            // and SWITCH_WINDOW, or one larger message, is let in meanwhile), since the
            // switch's device state queues behind every byte in flight and each of them is
            // pause: at 20 Mbit/s, 120 ms, ~550 ms behind the bulk window, ~190 ms behind the
            // tail window, ~25 ms behind this one.
            let pending = mon.switch_pending.take();
            let fresh = pending.is_none();
            let reason = match pending {
                _ if mon.released => None,
                Some(pending) => Some(pending),
                None => reason.map(|r| (Instant::now(), r, window.sent())),
            };
            let reason = match reason {
                Some((since, r, sent))
                    if window.consumed() < sent
                        && window.in_flight() > SWITCH_WINDOW
                        && since.elapsed() < POSTCOPY_DRAIN_LIMIT =>
                {
                    if fresh {
                        tracing::info!(
                            reason = %r,
                            in_flight = window.in_flight(),
                            "post-copy decided: draining the pipe first"
                        );
                        window.set_limit(SWITCH_WINDOW);
                    }
                    mon.switch_pending = Some((since, r, sent));
                    None
                }
                other => other.map(|(since, r, _)| {
                    tracing::debug!(
                        drained_ms = since.elapsed().as_millis() as u64,
                        in_flight = window.in_flight(),
                        "pipe drained for the switch"
                    );
                    r
                }),
            };
            if let Some(reason) = reason {
                let hook = p.commit_before_postcopy.as_ref().ok_or_else(|| {
                    MigrateError::Protocol("post-copy without a commit hook".into())
                })?;
                tracing::info!(%reason, pass, "switching to post-copy: recording the commit first");
                hook.call().await.map_err(|why| {
                    MigrateError::Refused(format!(
                        "the switch to post-copy was not committed: {why}"
                    ))
                })?;
                // From here on the VM belongs to the destination.
                undo.postcopy_committed = true;
                control::send(&control, &Control::Postcopy).await?;
                // The pipe drained; now the switch's own bytes (the rest of QEMU's iteration,
                // the device state, the discard bitmap) cross at the link's rate. The window
                // cannot wait for `postcopy-active`: QEMU holds its big lock from the stop
                // until the device state is written, so `query-migrate` answers only then, and
                // the switch window would have let the device state through 64 KiB per round
                // trip (QEMU counted 723 ms of its own downtime at 20 Mbit/s, 120 ms).
                window.set_limit(mon.tail_window.max(SWITCH_WINDOW));
                qapi::exec(qmp, SIDE, "migrate-start-postcopy", json!({})).await?;
                stopped_at.get_or_insert_with(Instant::now);
                progress.send_modify(|x| {
                    x.phase = MigrationPhase::Postcopy;
                    x.postcopy_switch_ms = Some(started.elapsed().as_millis() as u64);
                    x.postcopy_reason = Some(reason.clone());
                    x.message = format!("switching to post-copy ({reason})");
                });
                switched = Some((Instant::now(), reason));
            }
        }
    }
    drop(stop_guard);
    // The source wrote everything: finish the stream and wait for the destination's verdict.
    let Some((end, stream_ch)) = end_message else {
        return Err(MigrateError::Protocol(
            "stream ended without its end message".into(),
        ));
    };
    stream_ch.send(end).await?;
    let _ = stream_ch.finish().await;
    tracing::debug!(
        since_stop_ms = stopped_at.map_or(0, |s| s.elapsed().as_millis() as u64),
        "stream end sent"
    );
    let loaded = cancellable(cancel, None, async {
        match tokio::time::timeout(p.peer_timeout, peer_rx.recv()).await {
            Err(_) => Err(MigrateError::DestinationFailed(
                "the destination did not confirm the state in time".into(),
            )),
            Ok(Some(Control::Loaded {
                stream_bytes,
                faults,
            })) => Ok((stream_bytes, faults)),
            Ok(Some(Control::Failed { reason })) => Err(MigrateError::DestinationFailed(reason)),
            Ok(Some(other)) => Err(MigrateError::Protocol(format!(
                "expected Loaded, got {other:?}"
            ))),
            Ok(None) => Err(MigrateError::DestinationFailed(
                "control channel ended".into(),
            )),
        }
    })
    .await?;
    let (loaded, faults) = loaded;
    if let Some((h, _)) = rp_relay {
        // The destination's QEMU sent its last return-path message (SHUT) before Loaded.
        h.abort();
    }
    let wire = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if loaded != wire.raw_bytes {
        return Err(MigrateError::Protocol(format!(
            "destination loaded {loaded} stream bytes, the source sent {}",
            wire.raw_bytes
        )));
    }
    let (disk_payload, disk_wire) = proxies.iter().fold((0, 0), |(a, b), x| {
        let c = x.counters();
        (
            a + c.payload_out.load(Ordering::Relaxed),
            b + c.wire_out.load(Ordering::Relaxed),
        )
    });
    stops.drain();
    let summary = MigrationSummary {
        total_ms: started.elapsed().as_millis() as u64,
        qemu_downtime_ms: info.downtime,
        stop_unix_micros: if undo.was_running { stops.first } else { None },
        downtime_ms: None,
        downtime_bound_ms: None,
        clock_offset_us: None,
        resume_unix_micros: None,
        stream_bytes: wire.raw_bytes,
        stream_wire_bytes: wire.wire_bytes,
        disk_payload_bytes: disk_payload,
        disk_wire_bytes: disk_wire,
        passes: info.ram.as_ref().map_or(0, |r| r.dirty_sync_count),
        max_throttle_percent: mon.max_throttle,
        stop_to_loaded_ms: stopped_at.map(|s| s.elapsed().as_millis() as u64),
        postcopy_switch_ms: switched
            .as_ref()
            .map(|(t, _)| t.duration_since(started).as_millis() as u64),
        postcopy_reason: switched.map(|(_, r)| r),
        faults,
        max_downtime_ms: mon.max_downtime_ms.round() as u64,
        wire,
    };
    progress.send_modify(|x| {
        x.elapsed_ms = summary.total_ms;
        x.bytes_on_wire = summary.stream_wire_bytes + summary.disk_wire_bytes;
        x.payload_bytes = summary.stream_bytes + summary.disk_payload_bytes;
        x.disk_payload_bytes = summary.disk_payload_bytes;
        x.source_downtime_ms = summary.qemu_downtime_ms;
        x.remaining_ram_bytes = 0;
        if let Some(f) = &summary.faults {
            x.faults_served = f.faults_served;
            x.fault_latency_p50_ms = f.fault_latency_p50_us.map(|v| v as f64 / 1000.0);
            x.fault_latency_p99_ms = f.fault_latency_p99_us.map(|v| v as f64 / 1000.0);
        }
    });
    tracing::info!(
        total_ms = summary.total_ms,
        stream_bytes = summary.stream_bytes,
        wire_bytes = summary.stream_wire_bytes,
        passes = summary.passes,
        "migration transferred; destination loaded"
    );
    Ok(SourceHandover {
        qmp: qmp.clone(),
        control,
        was_running: undo.was_running,
        summary,
    })
}

/// Lets QEMU leave `pre-switchover` (the disks are complete). Called once per migration; if
/// QEMU refuses because it already left that state, the refusal stands unless QEMU did move on
/// to the switch-over (`device`, `completed`), which only this call can have caused.
async fn continue_switchover(qmp: &Qmp) -> Result<(), MigrateError> {
    let Err(e) = qapi::exec(
        qmp,
        SIDE,
        "migrate-continue",
        json!({"state": "pre-switchover"}),
    )
    .await
    else {
        return Ok(());
    };
    // An answer lost to a QMP timeout while QEMU acted on the command looks like a failure
    // here; QEMU's state tells.
    match qapi::query_migrate(qmp, SIDE).await {
        Ok(info) if matches!(info.status(), "device" | "completed") => {
            tracing::debug!(status = info.status(), error = %e, "migrate-continue answered with an error, but QEMU continued");
            Ok(())
        }
        _ => Err(e),
    }
}

/// The first STOP event QEMU reported since the watch began (its timestamp, µs since the Unix
/// epoch): the start of the guest's pause.
struct StopWatch {
    rx: broadcast::Receiver<QmpEvent>,
    first: Option<i64>,
}

impl StopWatch {
    fn new(rx: broadcast::Receiver<QmpEvent>) -> StopWatch {
        StopWatch { rx, first: None }
    }

    fn drain(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(ev) if ev.event == "STOP" && self.first.is_none() => {
                    self.first = Some(ev.timestamp_micros);
                }
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Ends the stream pipeline's blocking thread, wherever it waits (never blocks itself).
struct StopOnDrop(CancellationToken, Arc<Window>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
        self.1.close();
    }
}

/// Reads QEMU's stream, encodes it, sends it within the window. Returns the end message and
/// the channel (sent by the caller once QEMU reports completion) when QEMU closed the socket.
#[allow(clippy::too_many_arguments)]
fn stream_pipeline(
    mut conn: StdUnixStream,
    ch: Channel,
    rt: tokio::runtime::Handle,
    window: Arc<Window>,
    limit: Option<Arc<RateLimit>>,
    mut enc: WireEncoder,
    shared: Arc<Mutex<WireStats>>,
    stop: CancellationToken,
    session: Session,
) -> Result<(Vec<u8>, Channel), MigrateError> {
    let mut parser = Parser::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut last_level = Instant::now();
    let send = |enc: &mut WireEncoder| -> Result<(), MigrateError> {
        let Some(msg) = enc.take_message() else {
            return Ok(());
        };
        if !window.acquire_blocking(msg.len() as u64) {
            return Err(MigrateError::Cancelled);
        }
        if let Some(l) = &limit {
            let wait = l.reserve(msg.len());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        block_on_until(&rt, &stop, ch.send(Bytes::from(msg)))?;
        *shared.lock().unwrap_or_else(|p| p.into_inner()) = enc.stats().clone();
        Ok(())
    };
    loop {
        if stop.is_cancelled() {
            return Err(MigrateError::Cancelled);
        }
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                enc.feed(&mut parser, &buf[..n]);
                if enc.pending_bytes() >= BATCH_BYTES {
                    send(&mut enc)?;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                if !enc.is_empty() {
                    send(&mut enc)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(MigrateError::io("reading QEMU's migration stream", e)),
        }
        if last_level.elapsed() >= Duration::from_millis(500) {
            last_level = Instant::now();
            enc.set_zstd_level(session.suggested_zstd_level());
        }
    }
    enc.finish_stream(&mut parser);
    send(&mut enc)?;
    if let Some(r) = parser.pass_through_reason() {
        tracing::debug!(reason = ?r, "stream parser ended in pass-through");
    }
    *shared.lock().unwrap_or_else(|p| p.into_inner()) = enc.stats().clone();
    Ok((enc.end_message(), ch))
}

#[allow(clippy::too_many_arguments)]
async fn wait_mirrors_ready(
    qmp: &Qmp,
    p: &SourceParams,
    events: &mut broadcast::Receiver<QmpEvent>,
    progress: &watch::Sender<MigrationProgress>,
    cancel: &CancellationToken,
    deadline: Option<(Instant, Duration)>,
    proxies: &[NbdProxy],
    started: Instant,
) -> Result<(), MigrateError> {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Err(MigrateError::Cancelled),
            _ = tick.tick() => {}
            ev = events.recv() => {
                if let Ok(QmpEvent { event, data, .. }) = ev
                    && (event == "BLOCK_JOB_ERROR"
                        || (event == "BLOCK_JOB_COMPLETED" && data.get("error").is_some()))
                {
                    return Err(MigrateError::Mirror {
                        disk: data.get("device").and_then(Value::as_str).unwrap_or("?").into(),
                        reason: data.get("error").and_then(Value::as_str).unwrap_or("I/O error").into(),
                    });
                }
                continue;
            }
        }
        if let Some((at, d)) = deadline
            && Instant::now() >= at
        {
            return Err(MigrateError::DeadlineExceeded {
                deadline_s: d.as_secs(),
                reason: "disks were still being mirrored".into(),
            });
        }
        let jobs = qapi::block_jobs(qmp, SIDE).await?;
        let mut all_ready = true;
        let (mut done, mut total) = (0u64, 0u64);
        for d in &p.disks {
            let id = job_id(&d.node);
            let Some(j) = jobs.iter().find(|j| j.device == id) else {
                return Err(MigrateError::Mirror {
                    disk: d.node.clone(),
                    reason: "the mirror job ended before it was in sync".into(),
                });
            };
            if let Some(e) = &j.error {
                return Err(MigrateError::Mirror {
                    disk: d.node.clone(),
                    reason: e.clone(),
                });
            }
            all_ready &= j.ready;
            done += j.offset;
            total += j.len;
        }
        let (payload, wire) = proxies.iter().fold((0, 0), |(a, b), x| {
            let c = x.counters();
            (
                a + c.payload_out.load(Ordering::Relaxed),
                b + c.wire_out.load(Ordering::Relaxed),
            )
        });
        progress.send_modify(|x| {
            x.phase = MigrationPhase::DiskSync;
            x.elapsed_ms = started.elapsed().as_millis() as u64;
            x.disk_remaining_bytes = total.saturating_sub(done);
            x.disk_payload_bytes = payload;
            x.payload_bytes = payload;
            x.bytes_on_wire = wire;
            x.message = format!("mirroring disks: {} of {} MiB", done >> 20, total >> 20);
        });
        if all_ready {
            tracing::info!(disks = p.disks.len(), "disk mirrors in sync");
            return Ok(());
        }
    }
}

/// With the VM stopped: completes every mirror (a READY mirror cancelled without force ends with
/// the target a consistent copy) and removes the NBD client nodes.
async fn complete_mirrors(
    qmp: &Qmp,
    p: &SourceParams,
    undo: &mut Undo,
    events: &mut broadcast::Receiver<QmpEvent>,
) -> Result<(), MigrateError> {
    if undo.jobs.is_empty() {
        return Ok(());
    }
    for id in &undo.jobs {
        qapi::exec(qmp, SIDE, "block-job-cancel", json!({"device": id})).await?;
    }
    let deadline = Instant::now() + p.peer_timeout;
    let mut pending: Vec<String> = undo.jobs.clone();
    while !pending.is_empty() {
        if Instant::now() >= deadline {
            return Err(MigrateError::Mirror {
                disk: pending.join(","),
                reason: "the mirror did not finish its last writes in time".into(),
            });
        }
        match tokio::time::timeout(Duration::from_millis(50), events.recv()).await {
            Ok(Ok(QmpEvent { event, data, .. }))
                if event == "BLOCK_JOB_COMPLETED" || event == "BLOCK_JOB_CANCELLED" =>
            {
                let dev = data.get("device").and_then(Value::as_str).unwrap_or("");
                if let Some(e) = data.get("error").and_then(Value::as_str) {
                    return Err(MigrateError::Mirror {
                        disk: dev.to_string(),
                        reason: e.to_string(),
                    });
                }
                if event == "BLOCK_JOB_CANCELLED" {
                    // Cancelled before READY would leave the target incomplete.
                    tracing::debug!(device = dev, "mirror reported cancelled at switch-over");
                }
                pending.retain(|j| j != dev);
            }
            _ => {
                let jobs = qapi::block_jobs(qmp, SIDE).await?;
                pending.retain(|j| jobs.iter().any(|x| &x.device == j));
            }
        }
    }
    undo.jobs.clear();
    for node in std::mem::take(&mut undo.nbd_nodes) {
        qapi::exec(qmp, SIDE, "blockdev-del", json!({"node-name": node})).await?;
    }
    Ok(())
}

/// Per-tick policy application and progress.
struct Monitor {
    max_downtime_ms: f64,
    bandwidth_cap_bps: Option<f64>,
    commit_ms: f64,
    no_disks: bool,
    offline: bool,
    started: Instant,
    released: bool,
    qemu_rates: std::collections::VecDeque<(Instant, f64)>,
    last_pass: u64,
    dirty_set: Option<u64>,
    max_throttle: u64,
    last_predicted_ms: Option<u64>,
    rate_samples: std::collections::VecDeque<(Instant, u64)>,
    may_throttle: bool,
    bw_samples: std::collections::VecDeque<(Instant, f64)>,
    /// The auto-converge settings last given to QEMU by the policy, and the pass they were
    /// given in (QEMU's dirty rate changes once per pass: so does the throttle).
    applied_throttle: Option<(policy::Throttle, u64)>,
    /// The last tick's decision: converging, and dirty rate ÷ re-send goodput.
    last_converge: bool,
    last_dirty_to_goodput: Option<f64>,
    max_downtime_raisable: bool,
    /// QEMU's `downtime-limit` while held.
    hold_ms: u64,
    /// Wire bits/s that crossed over each of the last seconds.
    delivered: std::collections::VecDeque<(Instant, f64)>,
    /// The link's floor was set against the limit (once, when the bandwidth is known).
    floor_checked: bool,
    /// The dirty sets found at the syncs after the first pass.
    passes: policy::PassHistory,
    /// The last decision's tail window.
    tail_window: u64,
    /// A switch to post-copy was decided (when, why, stream bytes sent by then) and waits
    /// for the pipe to drain to [`SWITCH_WINDOW`]. Dropped when QEMU is released into
    /// stop-and-copy instead: its tail then needs the tail window, not the switch's.
    switch_pending: Option<(Instant, String, u64)>,
    /// Post-copy may follow a stall at the throttle's ceiling.
    postcopy_allowed: bool,
    /// The throttle of the last tick: the one the guest ran under until the next sync.
    throttle_seen: u64,
}

/// Drops the samples older than `span`.
fn forget_older<T>(
    samples: &mut std::collections::VecDeque<(Instant, T)>,
    now: Instant,
    span: Duration,
) {
    while samples
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) > span)
    {
        samples.pop_front();
    }
}

/// How long the bandwidth must have been measured before the link's floor is trusted.
const FLOOR_SETTLE: Duration = Duration::from_secs(4);

fn commit_ms(p: &SourceParams) -> f64 {
    p.commit_allowance.as_secs_f64() * 1000.0
}

impl Monitor {
    fn new(p: &SourceParams, max_downtime: Duration, started: Instant, no_disks: bool) -> Monitor {
        Monitor {
            max_downtime_ms: max_downtime.as_secs_f64() * 1000.0,
            bandwidth_cap_bps: p.bandwidth_limit_bps.map(|b| b as f64),
            commit_ms: commit_ms(p),
            no_disks,
            offline: p.offline,
            started,
            released: false,
            qemu_rates: Default::default(),
            last_pass: 0,
            dirty_set: None,
            max_throttle: 0,
            last_predicted_ms: None,
            rate_samples: Default::default(),
            may_throttle: p.auto_converge && !p.offline,
            bw_samples: Default::default(),
            applied_throttle: None,
            last_converge: false,
            last_dirty_to_goodput: None,
            max_downtime_raisable: p.max_downtime_raisable,
            hold_ms: policy::hold_limit_ms(max_downtime.as_secs_f64() * 1000.0),
            delivered: Default::default(),
            floor_checked: p.offline,
            passes: Default::default(),
            tail_window: 0,
            switch_pending: None,
            postcopy_allowed: false,
            throttle_seen: 0,
        }
    }

    /// Once the bandwidth has been measured for a while (or the policy would converge): the
    /// limit against the link's floor. A given limit the link cannot meet ends the migration
    /// in its first seconds, with the reason; a default one is raised.
    fn check_floor(
        &mut self,
        d: &policy::Decision,
        input: &PolicyInput,
        now: Instant,
        progress: &watch::Sender<MigrationProgress>,
    ) -> Result<(), MigrateError> {
        let measured_for = self
            .bw_samples
            .front()
            .map_or(Duration::ZERO, |(t, _)| now.duration_since(*t));
        if self.floor_checked || (measured_for < FLOOR_SETTLE && !d.converge) {
            return Ok(());
        }
        self.floor_checked = true;
        let floor = d.floor_ms;
        progress.send_modify(|x| x.pause_floor_ms = Some(floor as u64));
        match policy::limit_against_floor(floor, self.max_downtime_ms, self.max_downtime_raisable) {
            Ok(None) => Ok(()),
            Ok(Some(raised)) => {
                tracing::info!(
                    floor_ms = floor,
                    raised_ms = raised,
                    rtt_ms = input.rtt_ms,
                    bw_mbps = input.bandwidth_bps / 1e6,
                    "the link cannot pause the guest for the default limit: raising it"
                );
                self.max_downtime_ms = raised as f64;
                progress.send_modify(|x| x.raised_max_downtime_ms = Some(raised));
                Ok(())
            }
            Err(why) => Err(MigrateError::Refused(format!(
                "{why} (measured: {:.0} ms RTT, {:.1} Mbit/s)",
                input.rtt_ms,
                input.bandwidth_bps / 1e6
            ))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &mut self,
        qmp: &Qmp,
        session: &Session,
        info: &MigrateInfo,
        wire: &WireStats,
        window: &Window,
        progress: &watch::Sender<MigrationProgress>,
        proxies: &[NbdProxy],
    ) -> Result<(), MigrateError> {
        let ram = info.ram.clone().unwrap_or_default();
        if ram.dirty_sync_count > self.last_pass {
            if self.last_pass >= 1 {
                self.dirty_set = Some(ram.remaining);
                self.passes
                    .record(Instant::now(), ram.remaining, self.throttle_seen);
            }
            self.last_pass = ram.dirty_sync_count;
        }
        let est = session.path_estimate();
        let sample = if est.forecast.bandwidth_low_bps > 0.0 {
            est.forecast.bandwidth_low_bps.max(0.5 * est.bandwidth_bps)
        } else {
            est.bandwidth_bps
        };
        let now = Instant::now();
        // A nearly converged (or throttled) guest leaves the link idle, and the estimate of an
        // idle link decays: the best estimate of the last seconds is what the remainder gets.
        if sample > 0.0 {
            self.bw_samples.push_back((now, sample));
        }
        forget_older(&mut self.bw_samples, now, BANDWIDTH_MEMORY);
        let (disk_payload, disk_wire) = proxies.iter().fold((0, 0), |(a, b), x| {
            let c = x.counters();
            (
                a + c.payload_out.load(Ordering::Relaxed),
                b + c.wire_out.load(Ordering::Relaxed),
            )
        });
        let on_wire = window.sent() + disk_wire;
        // The rate counts what the destination consumed: bytes merely let into the window
        // would count a burst the link has not carried yet.
        let crossed = on_wire.saturating_sub(window.in_flight());
        self.rate_samples.push_back((now, crossed));
        forget_older(&mut self.rate_samples, now, Duration::from_secs(1));
        let rate = match (self.rate_samples.front(), self.rate_samples.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                b.1.saturating_sub(a.1) as f64 * 8.0 / b.0.duration_since(a.0).as_secs_f64()
            }
            _ => 0.0,
        };
        // What actually crossed, over each of the last seconds: PBA's forecast can run above
        // it (a burst into the path's queues), and the policy takes the lower.
        if self
            .rate_samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_millis(900))
        {
            self.delivered.push_back((now, rate));
        }
        forget_older(&mut self.delivered, now, BANDWIDTH_MEMORY);
        let mut bw = self.bw_samples.iter().map(|x| x.1).fold(sample, f64::max);
        let delivered = self.delivered.iter().map(|x| x.1).fold(0.0, f64::max);
        if delivered > 0.0 {
            bw = bw.min(delivered);
        }
        if let Some(cap) = self.bandwidth_cap_bps {
            bw = bw.min(cap);
        }
        if ram.mbps > 0.0 {
            self.qemu_rates.push_back((now, ram.mbps));
        }
        forget_older(&mut self.qemu_rates, now, Duration::from_secs(5));
        let max_qemu_mbps = self.qemu_rates.iter().map(|r| r.1).fold(0.0, f64::max);
        let input = PolicyInput {
            max_downtime_ms: self.max_downtime_ms,
            rtt_ms: if est.min_rtt_ms > 0.0 {
                est.rtt_ms.max(est.min_rtt_ms)
            } else {
                est.rtt_ms
            },
            bandwidth_bps: bw,
            resend_ratio: wire.resend_ratio(),
            overall_ratio: wire.ratio(),
            qemu_mbps: max_qemu_mbps,
            dirty_set_bytes: self.dirty_set,
            remaining_bytes: ram.remaining,
            disks: !self.no_disks,
            commit_ms: self.commit_ms,
            dirty_rate_bytes_per_sec: (ram.dirty_pages_rate * PAGE_BYTES as u64) as f64,
            throttle_percent: info.cpu_throttle_percentage.unwrap_or(0),
            may_throttle: self.may_throttle,
        };
        let mut d = policy::decide(&input);
        if !self.floor_checked {
            // Until the check, the progress shows the current estimate: a migration that ends
            // before it (a small guest on a fast link) still reports the floor it ran against.
            if bw > 0.0 {
                progress.send_modify(|x| x.pause_floor_ms = Some(d.floor_ms as u64));
            }
            self.check_floor(&d, &input, now, progress)?;
            let limit = self.max_downtime_ms;
            if input.max_downtime_ms != limit {
                d = policy::decide(&PolicyInput {
                    max_downtime_ms: limit,
                    ..input.clone()
                });
            }
        }
        // A stall raises the throttle even where the rate model is content (or asks for less).
        let stall = self.passes.stalled().filter(|_| !d.converge);
        if self.may_throttle
            && let Some(stall) = stall
            && let Some(t) = policy::stall_throttle(input.throttle_percent, self.postcopy_allowed)
            && d.throttle
                .is_none_or(|m| m.target_percent < t.target_percent)
        {
            tracing::debug!(
                passes = stall.passes,
                best_earlier = stall.best_earlier,
                best_recent = stall.best_recent,
                target_percent = t.target_percent,
                "the dirty set stopped shrinking: throttling the guest further"
            );
            d.throttle = Some(t);
        }
        self.last_converge = d.converge;
        self.last_dirty_to_goodput = d.dirty_to_goodput;
        // The throttle only goes up: a model that asks for less a pass after a stall's
        // escalation leaves it in place.
        let asked = match (d.throttle, self.applied_throttle) {
            (Some(t), Some((old, _))) => Some(old.ratchet(t)),
            (t, _) => t,
        };
        if let Some(t) = asked
            && !self.released
            && self
                .applied_throttle
                .is_none_or(|(old, pass)| pass < ram.dirty_sync_count && old != t)
        {
            qapi::set_parameters(
                qmp,
                SIDE,
                json!({
                    "cpu-throttle-initial": t.target_percent,
                    "cpu-throttle-increment": t.increment_percent,
                    "throttle-trigger-threshold": t.trigger_threshold_percent,
                }),
            )
            .await?;
            tracing::info!(
                target_percent = t.target_percent,
                increment_percent = t.increment_percent,
                throttle_now = input.throttle_percent,
                dirty_rate = input.dirty_rate_bytes_per_sec,
                dirty_to_goodput = d.dirty_to_goodput,
                bw_mbps = bw / 1e6,
                "pre-copy cannot converge at this dirty rate: throttling the guest (auto-converge)"
            );
            self.applied_throttle = Some((t, ram.dirty_sync_count));
        }
        self.tail_window = d.tail_window_bytes;
        window.set_limit(if self.switch_pending.is_some() {
            SWITCH_WINDOW
        } else if self.released {
            d.tail_window_bytes
        } else {
            d.window_bytes
        });
        // Held: QEMU's own threshold stays under the budget.
        if !self.released && !self.offline && d.hold_ms != self.hold_ms {
            qapi::set_parameters(qmp, SIDE, json!({"downtime-limit": d.hold_ms})).await?;
            self.hold_ms = d.hold_ms;
        }
        // Release once the pipe drained to the tail window: what is in flight at the stop must
        // still cross the link during the downtime.
        if d.converge
            && !self.released
            && !self.offline
            && window.in_flight() <= d.tail_window_bytes
        {
            qapi::set_parameters(qmp, SIDE, json!({"downtime-limit": d.downtime_limit_ms})).await?;
            tracing::debug!(
                limit_ms = d.downtime_limit_ms,
                budget_bytes = d.budget_raw_bytes,
                dirty_set = self.dirty_set,
                bw_mbps = bw / 1e6,
                max_qemu_mbps,
                predicted_ms = d.predicted_downtime_ms,
                "dirty set fits the downtime budget: releasing QEMU into stop-and-copy"
            );
            self.released = true;
            // A switch to post-copy that was waiting for the pipe is not needed any more, and
            // the stop-and-copy's bytes must not queue behind its small window: they get the
            // tail window every released tick sets.
            if self.switch_pending.take().is_some() {
                tracing::info!(
                    "released into stop-and-copy while draining for post-copy: the switch is dropped"
                );
                window.set_limit(d.tail_window_bytes);
            }
        }
        let throttle = info.cpu_throttle_percentage.unwrap_or(0);
        self.max_throttle = self.max_throttle.max(throttle);
        self.throttle_seen = throttle;
        self.last_predicted_ms = d.predicted_downtime_ms.map(|v| v as u64);
        let pass = ram.dirty_sync_count.max(1);
        let message = if let Some(st) = stall {
            format!(
                "pass {pass}: the dirty set stopped shrinking ({} MiB or more over the last passes); {}",
                st.best_recent >> 20,
                match (self.may_throttle, throttle >= policy::MAX_THROTTLE_PERCENT) {
                    (true, false) =>
                        format!("throttling the guest's CPU further (now {throttle}%)"),
                    _ if self.postcopy_allowed => "post-copy moves the rest".to_string(),
                    (true, true) =>
                        format!("the guest's CPU is throttled by {throttle}%, the most there is"),
                    (false, _) => "the guest may not be throttled".to_string(),
                }
            )
        } else if let (Some((t, _)), Some(r)) = (self.applied_throttle, d.dirty_to_goodput)
            && !d.converge
            && (throttle > 0 || d.throttle.is_some())
        {
            format!(
                "pass {pass}: the guest dirties {:.1}x what the link re-sends; throttling its CPU by {throttle}% (policy target {}%, then +{}% while it still outruns the link)",
                r, t.target_percent, t.increment_percent
            )
        } else if throttle > 0 {
            format!(
                "pass {pass}: the guest dirties memory faster than the link carries it; auto-converge throttles its CPU by {throttle}%"
            )
        } else {
            match d.predicted_downtime_ms {
                Some(p) if p <= self.max_downtime_ms => {
                    format!("pass {pass}: converging, predicted downtime {p:.0} ms")
                }
                Some(p) => format!(
                    "pass {pass}: predicted downtime {p:.0} ms is above the {:.0} ms limit; copying again",
                    self.max_downtime_ms
                ),
                None => format!("pass {pass}: copying memory"),
            }
        };
        progress.send_modify(|x| {
            x.phase = MigrationPhase::MemoryPrecopy { pass };
            x.elapsed_ms = self.started.elapsed().as_millis() as u64;
            x.bytes_on_wire = on_wire;
            x.payload_bytes = wire.raw_bytes + disk_payload;
            x.disk_payload_bytes = disk_payload;
            x.rate_bps = rate;
            x.dirty_rate_pages_per_sec = ram.dirty_pages_rate;
            x.dirty_rate_bytes_per_sec = ram.dirty_pages_rate * PAGE_BYTES as u64;
            x.remaining_ram_bytes = ram.remaining;
            x.predicted_downtime_ms = d.predicted_downtime_ms.map(|v| v as u64);
            x.eta_seconds = d.eta_seconds;
            x.throttle_percent = throttle;
            x.resend_wire_ratio = wire.resend_ratio();
            x.message = message;
        });
        Ok(())
    }
}

/// Resumes the guest unless it runs already.
async fn resume_if_stopped(qmp: &Qmp) -> Result<(), MigrateError> {
    let st = qmp
        .query_status()
        .await
        .map_err(|e| MigrateError::qemu(SIDE, "query-status", e))?;
    if !st.running {
        qmp.cont()
            .await
            .map_err(|e| MigrateError::qemu(SIDE, format!("cont (VM was {})", st.status), e))?;
    }
    Ok(())
}

async fn roll_back(qmp: &Qmp, undo: &Undo, reason: &str) -> Result<(), MigrateError> {
    if let Some(w) = &undo.pipeline_stop {
        w.close();
    }
    if let Some(c) = &undo.control {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            control::send(
                c,
                &Control::Abort {
                    reason: reason.to_string(),
                },
            ),
        )
        .await;
    }
    if qmp.is_closed() {
        return Err(MigrateError::SourceFailed("the source QEMU is gone".into()));
    }
    let mut first_err: Option<MigrateError> = None;
    if undo.migrate_started {
        let info = qapi::query_migrate(qmp, SIDE).await;
        if info.as_ref().is_ok_and(|i| i.is_active()) {
            if let Err(e) = qapi::exec(qmp, SIDE, "migrate_cancel", json!({})).await {
                first_err.get_or_insert(e);
            }
            if let Err(e) = qapi::wait_status(
                qmp,
                SIDE,
                Duration::from_millis(20),
                Duration::from_secs(30),
                |s| matches!(s, "cancelled" | "failed" | "completed"),
            )
            .await
            {
                first_err.get_or_insert(e);
            }
        }
    }
    for id in &undo.jobs {
        let _ = qapi::exec(
            qmp,
            SIDE,
            "block-job-cancel",
            json!({"device": id, "force": true}),
        )
        .await;
    }
    if let Err(e) = wait_jobs_gone(qmp, &undo.jobs).await {
        first_err.get_or_insert(e);
    }
    for node in &undo.nbd_nodes {
        if let Err(e) = qapi::exec(qmp, SIDE, "blockdev-del", json!({"node-name": node})).await {
            tracing::warn!(node, error = %e, "removing the NBD client node");
        }
    }
    if undo.was_running
        && let Err(e) = resume_if_stopped(qmp).await
    {
        first_err.get_or_insert(e);
    }
    for s in &undo.sockets {
        let _ = std::fs::remove_file(s);
    }
    match first_err {
        Some(e) => Err(e),
        None => {
            tracing::info!("source rolled back; the VM runs on the source");
            Ok(())
        }
    }
}

/// Waits (at most 30 s) until none of the block jobs `ids` exists any more.
async fn wait_jobs_gone(qmp: &Qmp, ids: &[String]) -> Result<(), MigrateError> {
    let until = Instant::now() + Duration::from_secs(30);
    while !ids.is_empty() && Instant::now() < until {
        let left = qapi::block_jobs(qmp, SIDE).await?;
        if !left.iter().any(|j| ids.contains(&j.device)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Removes what an earlier migration of this QEMU left behind when its driver died (an agent
/// killed mid-way): disk mirror jobs named `mig-*` and NBD client nodes `mig-nbd*`.
pub async fn clear_leftovers(qmp: &Qmp) -> Result<(), MigrateError> {
    let jobs: Vec<String> = qapi::block_jobs(qmp, SIDE)
        .await?
        .into_iter()
        .map(|j| j.device)
        .filter(|d| d.starts_with("mig-"))
        .collect();
    for id in &jobs {
        tracing::info!(job = %id, "cancelling a mirror job left by an earlier migration");
        let _ = qapi::exec(
            qmp,
            SIDE,
            "block-job-cancel",
            json!({"device": id, "force": true}),
        )
        .await;
    }
    wait_jobs_gone(qmp, &jobs).await?;
    let nodes = qapi::exec(qmp, SIDE, "query-named-block-nodes", json!({"flat": true})).await?;
    for n in nodes.as_array().into_iter().flatten() {
        if let Some(name) = n.get("node-name").and_then(Value::as_str)
            && name.starts_with("mig-nbd")
        {
            tracing::info!(
                node = name,
                "removing an NBD client node left by an earlier migration"
            );
            if let Err(e) = qapi::exec(qmp, SIDE, "blockdev-del", json!({"node-name": name})).await
            {
                tracing::warn!(node = name, error = %e, "cannot remove a leftover NBD client node");
            }
        }
    }
    Ok(())
}

/// Socket path helper for callers choosing a work dir: fails early when too long.
pub fn check_work_dir(dir: &Path) -> Result<(), MigrateError> {
    let longest = dir.join("migrate.sock");
    if longest.as_os_str().len() > novacron_qemu::spec::MAX_SOCKET_PATH_BYTES - 4 {
        return Err(MigrateError::Refused(format!(
            "work dir {} is too long for unix sockets",
            dir.display()
        )));
    }
    Ok(())
}
