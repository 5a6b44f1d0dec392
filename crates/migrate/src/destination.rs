//! The destination side of a live migration: exports the VM's disks for the source's mirror,
//! announces the base images it holds, rebuilds QEMU's exact stream from the source's messages
//! and feeds it to the destination QEMU (started with `-incoming defer -S`), then waits for the
//! source's decision.

use std::io::Read;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use novacron_dwcp::hde::DecoderConfig;
use novacron_dwcp::{Channel, Session};
use novacron_qemu::Qmp;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::base;
use crate::control::{self, Channels, Control, PROTOCOL_VERSION};
use crate::error::MigrateError;
use crate::nbd::NbdProxy;
use crate::pause;
use crate::postcopy::{self, FaultClock, FaultSummary, Hook, ReturnPathDecoder, ReturnPathMessage};
use crate::qapi;
use crate::qevm::{PageHeader, Parser, Sink};
use crate::util::{block_on_until, send_all_blocking};
use crate::wire::{Decoded, WireDecoder};

const SIDE: &str = "destination";
/// Longest a blocked write into QEMU goes without checking whether the migration stopped.
const PIPELINE_STOP_CHECK: Duration = Duration::from_millis(200);
/// Longest wait for QEMU's RESUME event after `cont`, and for the report of it to leave.
const RESUME_EVENT_WAIT: Duration = Duration::from_secs(2);
/// Rounds of gratuitous announcements after a resume (QEMU's own default is 5).
const ANNOUNCE_ROUNDS: u32 = 5;

/// What the destination agent prepared.
#[derive(Clone, Debug)]
pub struct DestinationParams {
    /// Directory for the sockets of this migration (keep the path short: unix sockets).
    pub work_dir: PathBuf,
    /// Block nodes of the destination VM that may receive a disk mirror (`disk0`, ...), each a
    /// disk of the same size as the source's, over the same base image for `sync=top`.
    pub disks: Vec<String>,
    /// Raw base images this node holds; pages equal to one of their 4 KiB blocks are not sent.
    pub base_images: Vec<PathBuf>,
    /// Channel id offset in the session; must equal the source's.
    pub channel_base: u32,
    /// How long to wait for the source during set-up and for its decision.
    pub peer_timeout: Duration,
    /// Why this node cannot take post-copy (None: it may, if its QEMU accepts it).
    pub postcopy_refusal: Option<String>,
    /// Post-copy: confirms the commit (e.g. with the control plane) before the VM resumes here
    /// on the source's `Postcopy`; None resumes on the source's word.
    pub confirm_postcopy: Option<Hook>,
}

impl Default for DestinationParams {
    fn default() -> Self {
        DestinationParams {
            work_dir: std::env::temp_dir(),
            disks: Vec::new(),
            base_images: Vec::new(),
            channel_base: 0,
            peer_timeout: Duration::from_secs(60),
            postcopy_refusal: None,
            confirm_postcopy: None,
        }
    }
}

/// The source's verdict after the destination loaded the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Committed: resume the VM here.
    Go,
    /// Aborted: the VM stays on the source; kill this QEMU and remove its disks.
    Abort(String),
    /// The source went silent (crashed, link cut): ask the store whether the switch-over was
    /// committed, and resume here only if it was.
    Unknown(String),
}

/// The destination holds the complete state, paused, ready for `cont`.
pub struct DestinationReady {
    qmp: Qmp,
    control: Channel,
    /// When `Go` arrived (this host's wall clock, µs since the Unix epoch).
    go_received: AtomicI64,
    /// Stream bytes the destination QEMU loaded.
    pub stream_bytes: u64,
    /// From the start of [`destination`] to Loaded.
    pub elapsed_ms: u64,
    /// Post-copy: the VM already runs here since this RESUME (µs since the Unix epoch; 0 when
    /// QEMU did not report it), and the faults it took.
    pub postcopy_resumed: Option<i64>,
    pub faults: Option<FaultSummary>,
}

impl std::fmt::Debug for DestinationReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationReady")
            .field("stream_bytes", &self.stream_bytes)
            .finish()
    }
}

impl DestinationReady {
    /// Waits for the source's decision (sent after its commit), at most `timeout`.
    pub async fn wait_decision(&self, timeout: Duration) -> Decision {
        match tokio::time::timeout(timeout, control::recv(&self.control)).await {
            Ok(Ok(Some(Control::Go))) => {
                self.go_received
                    .store(pause::now_unix_micros(), Ordering::Relaxed);
                Decision::Go
            }
            Ok(Ok(Some(Control::Abort { reason }))) => Decision::Abort(reason),
            Ok(Ok(Some(other))) => Decision::Unknown(format!("unexpected message {other:?}")),
            Ok(Ok(None)) => Decision::Unknown("the source closed the control channel".into()),
            Ok(Err(e)) => Decision::Unknown(e.to_string()),
            Err(_) => Decision::Unknown(format!(
                "no decision from the source within {} s",
                timeout.as_secs()
            )),
        }
    }

    /// Resumes the VM here (`cont`; QEMU activates the disks now, see late-block-activate),
    /// then tells the source, with QEMU's RESUME timestamp, so it can measure the real pause
    /// (see [`crate::pause`]). Returns that timestamp (µs since the Unix epoch, this host's
    /// clock) when QEMU reported it.
    pub async fn resume(&self) -> Result<Option<i64>, MigrateError> {
        if let Some(at) = self.postcopy_resumed {
            // Post-copy: the VM runs here since the switch; report that resume.
            let resumed = (at > 0).then_some(at);
            let go = self.go_received.load(Ordering::Relaxed);
            if go > 0 {
                let msg = Control::Resumed {
                    resume_unix_micros: resumed,
                    go_received_unix_micros: go,
                    sent_unix_micros: pause::now_unix_micros(),
                };
                let _ = tokio::time::timeout(RESUME_EVENT_WAIT, control::send(&self.control, &msg))
                    .await;
            }
            return Ok(resumed);
        }
        let mut events = self.qmp.subscribe();
        let cont_sent = pause::now_unix_micros();
        self.qmp
            .cont()
            .await
            .map_err(|e| MigrateError::qemu(SIDE, "cont", e))?;
        tracing::debug!(
            go_to_cont_ms = (cont_sent - self.go_received.load(Ordering::Relaxed)) as f64 / 1000.0,
            cont_ms = (pause::now_unix_micros() - cont_sent) as f64 / 1000.0,
            "cont answered"
        );
        let resumed = tokio::time::timeout(RESUME_EVENT_WAIT, async {
            loop {
                match events.recv().await {
                    Ok(ev) if ev.event == "RESUME" => return Some(ev.timestamp_micros),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten();
        // QEMU announced the NICs when the incoming stream ended, while the VM was still
        // paused here and the source may still have been the one answering; announce again
        // now that it runs here, so the network forgets the old place from this moment.
        if let Err(e) = self.qmp.announce_self(ANNOUNCE_ROUNDS).await {
            tracing::debug!(error = %e, "announce-self after the resume");
        }
        let go = self.go_received.load(Ordering::Relaxed);
        if go > 0 {
            let msg = Control::Resumed {
                resume_unix_micros: resumed,
                go_received_unix_micros: go,
                sent_unix_micros: pause::now_unix_micros(),
            };
            // The VM runs here whatever the source hears: a lost report costs only the figure.
            match tokio::time::timeout(RESUME_EVENT_WAIT, control::send(&self.control, &msg)).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "cannot report the resume to the source"),
                Err(_) => tracing::debug!("reporting the resume to the source timed out"),
            }
        }
        Ok(resumed)
    }
}

/// Receives a migration from the peer of `session` (which runs [`crate::source`]) into the
/// QEMU of `qmp`, launched with `incoming: Some("defer")` and `start_paused: true`.
///
/// Returns when that QEMU holds the complete state, paused. On error the destination QEMU
/// must be killed and its disks removed by the caller; the source is told to give up.
pub async fn destination(
    qmp: &Qmp,
    session: &Session,
    params: &DestinationParams,
    cancel: &CancellationToken,
) -> Result<DestinationReady, MigrateError> {
    let ch = Channels {
        base: params.channel_base,
    };
    let control = session.open_channel(ch.control())?;
    let started = Instant::now();
    let mut nbd_started = false;
    let r = tokio::select! {
        r = run(qmp, session, params, &control, &mut nbd_started, started) => r,
        _ = cancel.cancelled() => Err(MigrateError::Cancelled),
    };
    if let Err(e) = &r {
        tracing::warn!(error = %e, "incoming migration failed");
        if !matches!(e, MigrateError::Aborted(_)) {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                control::send(
                    &control,
                    &Control::Failed {
                        // The source words a post-copy failure itself (once).
                        reason: match e {
                            MigrateError::PostcopyFailed(inner) => inner.clone(),
                            other => other.to_string(),
                        },
                    },
                ),
            )
            .await;
        }
        if nbd_started && !qmp.is_closed() {
            let _ = qapi::exec(qmp, SIDE, "nbd-server-stop", json!({})).await;
        }
    }
    r
}

async fn local_disk_size(qmp: &Qmp, node: &str) -> Result<u64, MigrateError> {
    let v = qapi::exec(qmp, SIDE, "query-named-block-nodes", json!({"flat": true})).await?;
    v.as_array()
        .and_then(|a| {
            a.iter()
                .find(|n| n.get("node-name").and_then(Value::as_str) == Some(node))
        })
        .and_then(|n| n.pointer("/image/virtual-size").and_then(Value::as_u64))
        .ok_or_else(|| {
            MigrateError::Refused(format!("the destination VM has no block node {node:?}"))
        })
}

async fn run(
    qmp: &Qmp,
    session: &Session,
    p: &DestinationParams,
    control: &Channel,
    nbd_started: &mut bool,
    started: Instant,
) -> Result<DestinationReady, MigrateError> {
    let ch = Channels {
        base: p.channel_base,
    };
    let stream = session.open_channel(ch.stream())?;
    let announce = session.open_channel(ch.announce())?;
    qapi::check_version(qmp, SIDE)?;
    let st = qmp
        .query_status()
        .await
        .map_err(|e| MigrateError::qemu(SIDE, "query-status", e))?;
    if st.status != "inmigrate" {
        return Err(MigrateError::Refused(format!(
            "the destination QEMU is {}; it must be started with -incoming defer",
            st.status
        )));
    }
    std::fs::create_dir_all(&p.work_dir)
        .map_err(|e| MigrateError::io(format!("creating {}", p.work_dir.display()), e))?;
    let images = p.base_images.clone();
    let indexing = tokio::task::spawn_blocking(move || base::index_files(&images));
    let hello = control::recv_timeout(control, p.peer_timeout, "the source's hello").await?;
    let Some(Control::Hello {
        protocol,
        memory_bytes,
        disks,
        history_bytes,
        postcopy: postcopy_wanted,
    }) = hello
    else {
        return Err(MigrateError::Protocol(format!(
            "expected Hello from the source, got {hello:?}"
        )));
    };
    if protocol != PROTOCOL_VERSION {
        return Err(MigrateError::Refused(format!(
            "source speaks migration protocol {protocol}, this node {PROTOCOL_VERSION}"
        )));
    }
    let local_mem = qapi::memory_bytes(qmp, SIDE).await?;
    if local_mem != memory_bytes {
        return Err(MigrateError::Refused(format!(
            "the source VM has {memory_bytes} bytes of RAM, the destination QEMU {local_mem}"
        )));
    }
    for d in &disks {
        if !p.disks.contains(&d.node) {
            return Err(MigrateError::Refused(format!(
                "the source mirrors disk {} but the destination did not prepare it",
                d.node
            )));
        }
        let size = local_disk_size(qmp, &d.node).await?;
        if size != d.size_bytes {
            return Err(MigrateError::Refused(format!(
                "disk {} is {} bytes on the source and {size} here",
                d.node, d.size_bytes
            )));
        }
    }
    let mut proxies = Vec::new();
    if !disks.is_empty() {
        let sock = p.work_dir.join("nbd.sock");
        let _ = std::fs::remove_file(&sock);
        qapi::exec(
            qmp,
            SIDE,
            "nbd-server-start",
            // 7.2 takes the legacy socket address form here.
            json!({"addr": {"type": "unix", "data": {"path": sock.to_string_lossy()}}}),
        )
        .await?;
        *nbd_started = true;
        for (i, d) in disks.iter().enumerate() {
            qapi::exec(
                qmp,
                SIDE,
                "block-export-add",
                json!({"type": "nbd", "id": format!("mig-exp-{}", d.node), "node-name": d.node,
                       "name": d.node, "writable": true}),
            )
            .await?;
            proxies.push(NbdProxy::destination(session, ch.nbd(i), &sock)?);
        }
    }
    qapi::set_capabilities(
        qmp,
        SIDE,
        &[("late-block-activate", true), ("events", true)],
    )
    .await?;
    // Post-copy needs userfaultfd in this QEMU: QEMU itself checks when asked to enable it.
    let mut postcopy_refused = None;
    if postcopy_wanted {
        postcopy_refused = p.postcopy_refusal.clone();
        if postcopy_refused.is_none()
            && let Err(e) = qapi::set_capabilities(qmp, SIDE, &[("postcopy-ram", true)]).await
        {
            let host = postcopy::DestinationHost::probe(true);
            postcopy_refused = Some(match postcopy::destination_refusal(&host) {
                Some(why) => format!("{e}; {why}"),
                None => e.to_string(),
            });
        }
    }
    let postcopy_on = postcopy_wanted && postcopy_refused.is_none();
    let in_sock = p.work_dir.join("incoming.sock");
    let _ = std::fs::remove_file(&in_sock);
    qapi::exec(
        qmp,
        SIDE,
        "migrate-incoming",
        json!({"uri": format!("unix:{}", in_sock.display())}),
    )
    .await?;
    let conn = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match StdUnixStream::connect(&in_sock) {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    tracing::trace!(error = %e, "incoming socket not there yet");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => {
                    return Err(MigrateError::io(
                        format!("connecting to QEMU's incoming socket {}", in_sock.display()),
                        e,
                    ));
                }
            }
        }
    };
    let _ = std::fs::remove_file(&in_sock);
    // Writes into QEMU time out now and then so the pipeline notices a stop (see feed_qemu).
    conn.set_write_timeout(Some(PIPELINE_STOP_CHECK))
        .map_err(|e| MigrateError::io("incoming migration socket", e))?;
    let (index, files) = indexing
        .await
        .map_err(|e| MigrateError::Protocol(format!("base image indexing: {e}")))?
        .map_err(|e| MigrateError::io("reading base images", e))?;
    for m in index.announcement() {
        announce.send(m).await?;
    }
    announce.finish().await?;
    // Post-copy: the return path (QEMU writes it into the incoming socket) goes to the source
    // as is; a copy is decoded here to time the page faults.
    let faults = postcopy_on.then(|| Arc::new(Mutex::new(FaultClock::default())));
    let rp_stop = CancellationToken::new();
    struct CancelOnDrop(CancellationToken);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
    let _rp_guard = CancelOnDrop(rp_stop.clone());
    if let Some(clock) = &faults {
        let rp_ch = session.open_channel(ch.return_path())?;
        let mut reader = conn
            .try_clone()
            .map_err(|e| MigrateError::io("incoming migration socket", e))?;
        reader
            .set_read_timeout(Some(PIPELINE_STOP_CHECK))
            .map_err(|e| MigrateError::io("incoming migration socket", e))?;
        let rt = tokio::runtime::Handle::current();
        let clock = clock.clone();
        let stop = rp_stop.clone();
        tokio::task::spawn_blocking(move || {
            relay_return_path(&mut reader, &rp_ch, &rt, &clock, &stop)
        });
    }
    control::send(
        control,
        &Control::Ready {
            base_blocks: index.blocks() as u64,
            postcopy: postcopy_on,
            postcopy_refused: if postcopy_wanted {
                postcopy_refused.clone()
            } else {
                None
            },
        },
    )
    .await?;
    tracing::info!(
        base_blocks = index.blocks(),
        disks = disks.len(),
        "ready for the incoming migration"
    );

    // Rebuild the stream into QEMU.
    let stop = CancellationToken::new();
    let pipeline = {
        let rt = tokio::runtime::Handle::current();
        let control = control.clone();
        let stop = stop.clone();
        let dec = WireDecoder::new(
            DecoderConfig {
                history_bytes,
                ..DecoderConfig::default()
            },
            Some(files),
        );
        let faults = faults.clone();
        tokio::task::spawn_blocking(move || feed_qemu(conn, stream, control, rt, dec, stop, faults))
    };
    /// Ends the pipeline's blocking thread wherever it waits (never blocks itself).
    struct Stop(CancellationToken);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
    let _stop = Stop(stop);
    let mut pipeline = pipeline;
    // Post-copy: the resume after the source's `Postcopy`, and its RESUME timestamp.
    let mut resuming: Option<ResumeFuture> = None;
    let mut postcopy_resumed: Option<i64> = None;
    let total = loop {
        let r: Result<u64, MigrateError> = async {
            tokio::select! {
                r = &mut pipeline => {
                    return r.map_err(|e| MigrateError::Protocol(format!("stream pipeline: {e}")))?;
                }
                at = async {
                    match resuming.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                } => {
                    resuming = None;
                    postcopy_resumed = Some(at?);
                    tracing::info!("post-copy: the VM runs here; faulting in the pages it lacks");
                }
                m = control::recv(control) => match m? {
                    Some(Control::Postcopy) if postcopy_on && resuming.is_none() && postcopy_resumed.is_none() => {
                        resuming = Some(Box::pin(resume_in_postcopy(qmp.clone(), p.confirm_postcopy.clone(), p.peer_timeout)));
                    }
                    Some(Control::Abort { reason }) => return Err(MigrateError::Aborted(reason)),
                    Some(Control::Failed { reason }) => return Err(MigrateError::Aborted(reason)),
                    Some(other) => return Err(MigrateError::Protocol(format!("unexpected {other:?} during the transfer"))),
                    None => return Err(MigrateError::Aborted("the source closed the control channel".into())),
                },
                _ = qmp.closed() => return Err(MigrateError::DestinationFailed("the destination QEMU exited".into())),
            }
            Ok(u64::MAX)
        }
        .await;
        match r {
            Ok(u64::MAX) => continue,
            Ok(total) => break total,
            // After the resume here the VM is this side's: a failure is not an abort.
            Err(e) if postcopy_resumed.is_some() => {
                return Err(MigrateError::PostcopyFailed(e.to_string()));
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(f) = resuming.take() {
        // The stream ended before the resume finished (a tiny remainder): finish it now.
        postcopy_resumed = Some(f.await?);
    }
    // QEMU has every byte; wait until it loaded them.
    let info = qapi::wait_status(qmp, SIDE, Duration::from_millis(5), p.peer_timeout, |s| {
        matches!(s, "completed" | "failed" | "cancelled")
    })
    .await?;
    if info.status() != "completed" {
        return Err(MigrateError::DestinationFailed(format!(
            "destination QEMU could not load the state: {}",
            info.error_desc
                .clone()
                .unwrap_or_else(|| info.status().to_string())
        )));
    }
    let st = qmp
        .query_status()
        .await
        .map_err(|e| MigrateError::qemu(SIDE, "query-status", e))?;
    if st.running && postcopy_resumed.is_none() {
        let _ = qmp.stop().await;
        return Err(MigrateError::Refused(
            "the destination QEMU resumed on its own: launch it with start_paused (-S)".into(),
        ));
    }
    for px in proxies {
        // The source removed its NBD client before completing: the connection is closed.
        if let Err(e) = px.join(Duration::from_secs(10)).await {
            tracing::warn!(error = %e, "NBD proxy did not end cleanly");
        }
    }
    if *nbd_started {
        qapi::exec(qmp, SIDE, "nbd-server-stop", json!({})).await?;
        *nbd_started = false;
    }
    control::send(
        control,
        &Control::Loaded {
            stream_bytes: total,
            faults: faults
                .as_ref()
                .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).summary()),
        },
    )
    .await?;
    tracing::info!(stream_bytes = total, "destination loaded the whole state");
    Ok(DestinationReady {
        qmp: qmp.clone(),
        control: control.clone(),
        go_received: AtomicI64::new(0),
        stream_bytes: total,
        elapsed_ms: started.elapsed().as_millis() as u64,
        postcopy_resumed,
        faults: faults
            .as_ref()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).summary()),
    })
}

/// The post-copy resume in progress (see [`resume_in_postcopy`]).
type ResumeFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<i64, MigrateError>> + Send>>;

/// Post-copy: waits until QEMU ran its post-copy switch (it then sits paused, started with
/// `-S`), confirms the commit, resumes the VM here. Returns QEMU's RESUME timestamp (0: none).
async fn resume_in_postcopy(
    qmp: Qmp,
    confirm: Option<Hook>,
    timeout: Duration,
) -> Result<i64, MigrateError> {
    let until = Instant::now() + timeout;
    loop {
        let st = qmp
            .query_status()
            .await
            .map_err(|e| MigrateError::qemu(SIDE, "query-status", e))?;
        match st.status.as_str() {
            "paused" | "running" => break,
            "inmigrate" | "prelaunch" | "finish-migrate" | "postmigrate" => {}
            other => {
                return Err(MigrateError::DestinationFailed(format!(
                    "the destination QEMU is {other} at the switch to post-copy"
                )));
            }
        }
        if Instant::now() >= until {
            return Err(MigrateError::DestinationFailed(
                "the destination QEMU did not reach post-copy in time".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(h) = confirm {
        h.call().await.map_err(|why| {
            MigrateError::Aborted(format!("the switch to post-copy is not committed: {why}"))
        })?;
    }
    let mut events = qmp.subscribe();
    qmp.cont()
        .await
        .map_err(|e| MigrateError::qemu(SIDE, "cont (post-copy)", e))?;
    let at = tokio::time::timeout(RESUME_EVENT_WAIT, async {
        loop {
            match events.recv().await {
                Ok(ev) if ev.event == "RESUME" => return ev.timestamp_micros,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return 0,
            }
        }
    })
    .await
    .unwrap_or(0);
    Ok(at)
}

/// Post-copy: copies what the destination QEMU writes on its return path to the source, and
/// times the page requests in it.
fn relay_return_path(
    reader: &mut StdUnixStream,
    ch: &Channel,
    rt: &tokio::runtime::Handle,
    clock: &Mutex<FaultClock>,
    stop: &CancellationToken,
) {
    let mut buf = vec![0u8; 16 << 10];
    let mut dec = ReturnPathDecoder::new();
    let mut msgs = Vec::new();
    loop {
        if stop.is_cancelled() {
            return;
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "return path read ended");
                break;
            }
        };
        let now = Instant::now();
        msgs.clear();
        if dec.error().is_none() {
            if let Err(e) = dec.feed(&buf[..n], &mut msgs) {
                tracing::warn!(error = %e, "cannot decode the return path; relaying it without fault timing");
            }
            let mut c = clock.lock().unwrap_or_else(|p| p.into_inner());
            for m in &msgs {
                if let ReturnPathMessage::RequestPages {
                    block,
                    offset,
                    length,
                } = m
                {
                    c.requested(block, *offset, *length, now);
                }
            }
        }
        if block_on_until(rt, stop, ch.send(bytes::Bytes::copy_from_slice(&buf[..n]))).is_err() {
            return;
        }
    }
    let _ = block_on_until(rt, stop, ch.finish());
}

/// Records, for the fault clock, each page written into the destination QEMU.
struct Arrivals<'a> {
    clock: &'a Mutex<FaultClock>,
    at: Instant,
}

impl Sink for Arrivals<'_> {
    fn literal(&mut self, _: &[u8]) {}
    fn page(&mut self, h: PageHeader<'_>, _: &[u8]) {
        self.clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .arrived(h.block, h.offset, self.at);
    }
    fn zero(&mut self, h: PageHeader<'_>) {
        self.clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .arrived(h.block, h.offset, self.at);
    }
}

/// Decodes messages and writes the rebuilt stream into QEMU; returns the stream length once the
/// end message verified it.
fn feed_qemu(
    conn: StdUnixStream,
    stream: Channel,
    control: Channel,
    rt: tokio::runtime::Handle,
    mut dec: WireDecoder,
    stop: CancellationToken,
    faults: Option<Arc<Mutex<FaultClock>>>,
) -> Result<u64, MigrateError> {
    let mut out = Vec::with_capacity(2 << 20);
    // Post-copy: the rebuilt stream is parsed again to see when requested pages reach QEMU.
    let mut arrivals = faults.as_ref().map(|_| Parser::new());
    let mut consumed = 0u64;
    loop {
        let Some(msg) = block_on_until(&rt, &stop, stream.recv())? else {
            return Err(MigrateError::Aborted(
                "the source ended the stream before its end".into(),
            ));
        };
        let len = msg.len() as u64;
        out.clear();
        match dec.decode(msg, &mut out)? {
            Decoded::Data => {
                send_all_blocking(&conn, &out, &stop).map_err(|e| {
                    if stop.is_cancelled() {
                        MigrateError::Cancelled
                    } else {
                        MigrateError::io("writing to the destination QEMU", e)
                    }
                })?;
                if let (Some(parser), Some(clock)) = (arrivals.as_mut(), faults.as_ref()) {
                    let mut sink = Arrivals {
                        clock,
                        at: Instant::now(),
                    };
                    parser.feed(&out, &mut sink);
                }
                consumed += len;
                // Every message: the source's window must never wait for an ack held back here.
                block_on_until(
                    &rt,
                    &stop,
                    control::send(
                        &control,
                        &Control::Ack {
                            consumed_wire_bytes: consumed,
                        },
                    ),
                )?;
            }
            Decoded::End { total_bytes } => return Ok(total_bytes),
        }
    }
}
