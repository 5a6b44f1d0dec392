//! A small typed async QMP client: one connection to one QEMU, many concurrent callers matched by command id, events broadcast to subscribers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

use crate::QemuError;

/// Default time a command may take before [`QemuError::QmpTimeout`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest QMP line accepted; QEMU's answers are far smaller, this only bounds memory.
const MAX_LINE_BYTES: usize = 64 << 20;

/// Called with the command name and its round-trip time whenever QEMU answers a command.
pub type LatencyObserver = Arc<dyn Fn(&str, Duration) + Send + Sync>;

static GLOBAL_LATENCY_OBSERVER: RwLock<Option<LatencyObserver>> = RwLock::new(None);

/// Installs the process-wide latency observer (e.g. a Prometheus histogram), used by clients without their own.
pub fn set_latency_observer(observer: LatencyObserver) {
    if let Ok(mut slot) = GLOBAL_LATENCY_OBSERVER.write() {
        *slot = Some(observer);
    }
}

/// Removes the process-wide latency observer.
pub fn clear_latency_observer() {
    if let Ok(mut slot) = GLOBAL_LATENCY_OBSERVER.write() {
        *slot = None;
    }
}

/// An asynchronous QMP event, e.g. `STOP`, `RESUME`, `SHUTDOWN`, `RESET`.
#[derive(Clone, Debug, PartialEq)]
pub struct QmpEvent {
    pub event: String,
    pub data: Value,
    /// QEMU's timestamp of the event, microseconds since the Unix epoch.
    pub timestamp_micros: i64,
}

/// Answer of `query-status`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RunStatus {
    pub running: bool,
    /// QEMU's run state: "running", "paused", "inmigrate", "postmigrate", "shutdown", "guest-panicked", ...
    pub status: String,
}

type Pending = HashMap<u64, (String, oneshot::Sender<Result<Value, QemuError>>)>;

/// State shared by the client handles and the reader task.
struct Shared {
    pending: Mutex<Pending>,
    events: broadcast::Sender<QmpEvent>,
    closed_tx: watch::Sender<bool>,
}

struct Inner {
    socket: PathBuf,
    greeting: Value,
    shared: Arc<Shared>,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    next_id: AtomicU64,
    command_timeout_ms: AtomicU64,
    observer: RwLock<Option<LatencyObserver>>,
    reader: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last handle gone: stop reading so both halves close and QEMU frees the monitor for the next client.
        self.reader.abort();
    }
}

/// A QMP connection. Cheap to clone; all clones share the one connection, which closes when the last clone is dropped.
#[derive(Clone)]
pub struct Qmp {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("socket", &self.inner.socket)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Qmp {
    /// Connects to QEMU's QMP socket, retrying until `timeout` (the socket may not exist yet), reads the greeting and negotiates capabilities.
    pub async fn connect(socket: &Path, timeout: Duration) -> Result<Qmp, QemuError> {
        let (qmp, _events) = Qmp::connect_with_events(socket, timeout).await?;
        Ok(qmp)
    }

    /// Like [`Qmp::connect`], also returning an event receiver subscribed before capabilities negotiation, so no event is missed.
    pub async fn connect_with_events(
        socket: &Path,
        timeout: Duration,
    ) -> Result<(Qmp, broadcast::Receiver<QmpEvent>), QemuError> {
        let deadline = Instant::now() + timeout;
        let stream = connect_until(socket, deadline).await?;
        let (read_half, write_half) = stream.into_split();
        let mut reader = BufReader::new(read_half);

        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(200));
        let greeting_line = match tokio::time::timeout(remaining, read_line(&mut reader)).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                return Err(QemuError::QmpConnect {
                    socket: socket.to_path_buf(),
                    reason: "QEMU closed the connection before the greeting".into(),
                });
            }
            Ok(Err(e)) => {
                return Err(QemuError::QmpConnect {
                    socket: socket.to_path_buf(),
                    reason: format!("reading the greeting: {e}"),
                });
            }
            Err(_) => {
                return Err(QemuError::QmpConnect {
                    socket: socket.to_path_buf(),
                    reason: "no QMP greeting in time: another client may hold the monitor".into(),
                });
            }
        };
        let greeting: Value = serde_json::from_str(&greeting_line).map_err(|e| {
            QemuError::QmpProtocol(format!("greeting is not JSON ({e}): {greeting_line}"))
        })?;
        let greeting = greeting.get("QMP").cloned().ok_or_else(|| {
            QemuError::QmpProtocol(format!("expected a QMP greeting, got {greeting_line}"))
        })?;

        let (events, events_rx) = broadcast::channel(1024);
        let (closed_tx, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            events,
            closed_tx,
        });
        let reader_task = tokio::spawn(read_loop(reader, shared.clone(), socket.to_path_buf()));
        let qmp = Qmp {
            inner: Arc::new(Inner {
                socket: socket.to_path_buf(),
                greeting,
                shared,
                writer: tokio::sync::Mutex::new(write_half),
                next_id: AtomicU64::new(1),
                command_timeout_ms: AtomicU64::new(DEFAULT_COMMAND_TIMEOUT.as_millis() as u64),
                observer: RwLock::new(None),
                reader: reader_task,
            }),
        };
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        qmp.execute_with_timeout("qmp_capabilities", None, remaining)
            .await?;
        tracing::debug!(socket = %socket.display(), version = ?qmp.qemu_version(), "QMP connected");
        Ok((qmp, events_rx))
    }

    /// Runs one QMP command and returns its `return` value; QEMU errors become [`QemuError::Qmp`].
    pub async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QemuError> {
        let timeout = Duration::from_millis(self.inner.command_timeout_ms.load(Ordering::Relaxed));
        self.execute_with_timeout(command, arguments, timeout).await
    }

    /// Runs one QMP command with its own timeout.
    pub async fn execute_with_timeout(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, QemuError> {
        self.run(command, arguments, timeout, None).await
    }

    /// Runs one QMP command that hands `fd` to QEMU with it (SCM_RIGHTS on the monitor's
    /// socket), as `getfd` and `add-fd` take one. QEMU gets its own copy; ours stays open.
    pub async fn execute_with_fd(
        &self,
        command: &str,
        arguments: Option<Value>,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<Value, QemuError> {
        let timeout = Duration::from_millis(self.inner.command_timeout_ms.load(Ordering::Relaxed));
        self.run(command, arguments, timeout, Some(fd)).await
    }

    async fn run(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
        fd: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Value, QemuError> {
        let shared = &self.inner.shared;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&shared.pending).insert(id, (command.to_string(), tx));
        // Checked after inserting: the reader marks closed before draining, so either we see closed here or the drain sees us.
        if *shared.closed_tx.borrow() {
            lock(&shared.pending).remove(&id);
            return Err(QemuError::QmpClosed);
        }
        let mut message = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let mut line = serde_json::to_vec(&message)
            .map_err(|e| QemuError::QmpProtocol(format!("cannot encode {command}: {e}")))?;
        line.push(b'\n');
        let started = Instant::now();
        {
            let mut writer = self.inner.writer.lock().await;
            let sent = match fd {
                // The descriptor rides on the first bytes; the rest of the line follows.
                Some(fd) => match send_with_fd(writer.as_ref(), &line, fd).await {
                    Ok(n) => writer.write_all(&line[n..]).await,
                    Err(e) => Err(e),
                },
                None => writer.write_all(&line).await,
            };
            if let Err(e) = sent {
                lock(&shared.pending).remove(&id);
                tracing::debug!(command, error = %e, "QMP write failed");
                return Err(QemuError::QmpClosed);
            }
        }
        let answer = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(QemuError::QmpClosed),
            Err(_) => {
                lock(&shared.pending).remove(&id);
                return Err(QemuError::QmpTimeout {
                    command: command.to_string(),
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
        };
        let elapsed = started.elapsed();
        self.observe(command, elapsed);
        tracing::trace!(
            command,
            latency_us = elapsed.as_micros() as u64,
            ok = answer.is_ok(),
            "QMP command"
        );
        answer
    }

    fn observe(&self, command: &str, elapsed: Duration) {
        let own = self.inner.observer.read().ok().and_then(|o| o.clone());
        let observer = own.or_else(|| GLOBAL_LATENCY_OBSERVER.read().ok().and_then(|o| o.clone()));
        if let Some(observer) = observer {
            observer(command, elapsed);
        }
    }

    /// Sets this connection's latency observer (overrides the process-wide one).
    pub fn set_latency_observer(&self, observer: LatencyObserver) {
        if let Ok(mut slot) = self.inner.observer.write() {
            *slot = Some(observer);
        }
    }

    /// Sets the timeout used by [`Qmp::execute`].
    pub fn set_command_timeout(&self, timeout: Duration) {
        self.inner
            .command_timeout_ms
            .store(timeout.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    /// A receiver of every event QEMU sends from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<QmpEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Resolves when the connection is gone (QEMU exited or closed the socket).
    pub async fn closed(&self) {
        let mut rx = self.inner.shared.closed_tx.subscribe();
        // wait_for only fails when the sender is gone, which also means closed.
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        *self.inner.shared.closed_tx.borrow()
    }

    /// The socket this client is connected to.
    pub fn socket(&self) -> &Path {
        &self.inner.socket
    }

    /// The `QMP` object of QEMU's greeting (version and capabilities).
    pub fn greeting(&self) -> &Value {
        &self.inner.greeting
    }

    /// QEMU's (major, minor, micro) version from the greeting.
    pub fn qemu_version(&self) -> Option<(u64, u64, u64)> {
        let v = self.inner.greeting.get("version")?.get("qemu")?;
        Some((
            v.get("major")?.as_u64()?,
            v.get("minor")?.as_u64()?,
            v.get("micro")?.as_u64()?,
        ))
    }

    /// `query-status`: whether the guest runs and QEMU's run state.
    pub async fn query_status(&self) -> Result<RunStatus, QemuError> {
        let value = self.execute("query-status", None).await?;
        serde_json::from_value(value.clone()).map_err(|e| {
            QemuError::QmpProtocol(format!("unexpected query-status answer ({e}): {value}"))
        })
    }

    /// `stop`: pause the guest's vCPUs (STOP event).
    pub async fn stop(&self) -> Result<(), QemuError> {
        self.execute("stop", None).await.map(drop)
    }

    /// `cont`: resume the guest (RESUME event).
    pub async fn cont(&self) -> Result<(), QemuError> {
        self.execute("cont", None).await.map(drop)
    }

    /// `announce-self`: gratuitous RARPs from every NIC (and, for a virtio-net guest that
    /// supports it, the guest's own ARP/ND announcements), `rounds` times, the first after
    /// 50 ms and then 100 ms further apart each time (at most 550 ms): switches and the
    /// overlay learn where the VM is now.
    pub async fn announce_self(&self, rounds: u32) -> Result<(), QemuError> {
        let args = serde_json::json!({ "initial": 50, "max": 550, "rounds": rounds, "step": 100 });
        self.execute("announce-self", Some(args)).await.map(drop)
    }

    /// `system_powerdown`: press the ACPI power button (POWERDOWN event); the guest decides what to do.
    pub async fn system_powerdown(&self) -> Result<(), QemuError> {
        self.execute("system_powerdown", None).await.map(drop)
    }

    /// `system_reset`: hard reset of the machine (RESET event).
    pub async fn system_reset(&self) -> Result<(), QemuError> {
        self.execute("system_reset", None).await.map(drop)
    }

    /// `quit`: QEMU exits at once (SHUTDOWN event with reason host-qmp-quit). A connection closed before the answer also counts as done.
    pub async fn quit(&self) -> Result<(), QemuError> {
        match self.execute("quit", None).await {
            Ok(_) | Err(QemuError::QmpClosed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Writes a prefix of `bytes` (at least one byte) to `stream` with `fd` attached as
/// SCM_RIGHTS ancillary data; answers how many bytes went.
async fn send_with_fd(
    stream: &UnixStream,
    bytes: &[u8],
    fd: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let raw_fd = fd.as_raw_fd();
    let socket = stream.as_raw_fd();
    loop {
        stream.writable().await?;
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            // Room for one descriptor, aligned as cmsghdr needs.
            let mut control = [0u64; 4];
            let mut iov = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE only computes a size.
            msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) } as _;
            // SAFETY: msg_control points at `control`, large enough for one cmsghdr with an
            // int (CMSG_SPACE(4) is 24 bytes, `control` 32), so CMSG_FIRSTHDR is non-null and
            // CMSG_DATA lies inside it.
            let sent = unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), raw_fd);
                libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL)
            };
            if sent < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(sent as usize)
            }
        });
        match sent {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent (single insert/remove), so poisoning is ignored.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn connect_until(socket: &Path, deadline: Instant) -> Result<UnixStream, QemuError> {
    loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                if Instant::now() >= deadline {
                    return Err(QemuError::QmpConnect {
                        socket: socket.to_path_buf(),
                        reason: format!("{e} (gave up waiting for the socket)"),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Reads one line; `Ok(None)` at end of stream.
async fn read_line(reader: &mut BufReader<OwnedReadHalf>) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(None);
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                buf.extend_from_slice(&available[..pos]);
                reader.consume(pos + 1);
                break;
            }
            None => {
                let n = available.len();
                buf.extend_from_slice(available);
                reader.consume(n);
            }
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("QMP line longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
    }
    Ok(Some(
        String::from_utf8_lossy(&buf)
            .trim_end_matches('\r')
            .to_string(),
    ))
}

async fn read_loop(mut reader: BufReader<OwnedReadHalf>, shared: Arc<Shared>, socket: PathBuf) {
    loop {
        match read_line(&mut reader).await {
            Ok(Some(line)) => dispatch(&shared, &line),
            Ok(None) => {
                tracing::debug!(socket = %socket.display(), "QMP connection closed by QEMU");
                break;
            }
            Err(e) => {
                tracing::warn!(socket = %socket.display(), error = %e, "QMP read failed");
                break;
            }
        }
    }
    shared.closed_tx.send_replace(true);
    let drained: Vec<_> = lock(&shared.pending).drain().collect();
    for (_, (_, tx)) in drained {
        let _ = tx.send(Err(QemuError::QmpClosed));
    }
}

/// Handles one message from QEMU. Never panics on malformed input.
fn dispatch(shared: &Shared, line: &str) {
    if line.trim().is_empty() {
        return;
    }
    let message: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, line, "QMP sent a line that is not JSON");
            return;
        }
    };
    if let Some(name) = message.get("event").and_then(Value::as_str) {
        let event = QmpEvent {
            event: name.to_string(),
            data: message.get("data").cloned().unwrap_or(Value::Null),
            timestamp_micros: event_timestamp_micros(&message),
        };
        tracing::debug!(event = %event.event, data = %event.data, "QMP event");
        // No subscriber is not an error.
        let _ = shared.events.send(event);
        return;
    }
    let Some(id) = message.get("id").and_then(Value::as_u64) else {
        tracing::warn!(line, "QMP message without a known id");
        return;
    };
    let Some((command, tx)) = lock(&shared.pending).remove(&id) else {
        tracing::debug!(id, "QMP answer for a command nobody waits for (timed out?)");
        return;
    };
    let answer = if let Some(ret) = message.get("return") {
        Ok(ret.clone())
    } else if let Some(err) = message.get("error") {
        Err(QemuError::Qmp {
            command,
            class: err
                .get("class")
                .and_then(Value::as_str)
                .unwrap_or("GenericError")
                .to_string(),
            desc: err
                .get("desc")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    } else {
        Err(QemuError::QmpProtocol(format!(
            "answer to {command} has neither return nor error: {line}"
        )))
    };
    let _ = tx.send(answer);
}

fn event_timestamp_micros(message: &Value) -> i64 {
    let ts = message.get("timestamp");
    let seconds = ts
        .and_then(|t| t.get("seconds"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let micros = ts
        .and_then(|t| t.get("microseconds"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    seconds.saturating_mul(1_000_000).saturating_add(micros)
}

/// Answers delivered by [`fuzz_dispatch`], by command id.
#[doc(hidden)]
pub type FuzzAnswers = Vec<(u64, Result<Value, QemuError>)>;

/// Fuzzing entry, not an API: splits `bytes` into lines as the reader does and dispatches each
/// with commands 0..16 waiting for answers. Returns the answers delivered (by id) and the
/// events broadcast.
#[doc(hidden)]
pub fn fuzz_dispatch(bytes: &[u8]) -> (FuzzAnswers, Vec<QmpEvent>) {
    let (events, mut events_rx) = broadcast::channel(1024);
    let (closed_tx, _) = watch::channel(false);
    let shared = Shared {
        pending: Mutex::new(HashMap::new()),
        events,
        closed_tx,
    };
    let mut waiting = Vec::new();
    for id in 0..16u64 {
        let (tx, rx) = oneshot::channel();
        lock(&shared.pending).insert(id, (format!("cmd{id}"), tx));
        waiting.push((id, rx));
    }
    for line in bytes.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        dispatch(&shared, line.trim_end_matches('\r'));
    }
    let answers = waiting
        .into_iter()
        .filter_map(|(id, mut rx)| rx.try_recv().ok().map(|a| (id, a)))
        .collect();
    let mut seen = Vec::new();
    while let Ok(e) = events_rx.try_recv() {
        seen.push(e);
    }
    (answers, seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// A scripted QMP server: greets, accepts capabilities, answers with a closure.
    async fn fake_qemu(
        dir: &Path,
        answer: impl Fn(&Value) -> Vec<String> + Send + 'static,
    ) -> (PathBuf, JoinHandle<()>) {
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (r, mut w) = stream.into_split();
            w.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n")
                .await
                .unwrap();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let msg: Value = serde_json::from_str(&line).unwrap();
                for out in answer(&msg) {
                    w.write_all(out.as_bytes()).await.unwrap();
                    w.write_all(b"\r\n").await.unwrap();
                }
            }
        });
        (path, task)
    }

    #[tokio::test]
    async fn matches_answers_by_id_even_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        // Answers "slow" only when the next command arrives, so the two answers come back swapped.
        let held = Arc::new(Mutex::new(None::<Value>));
        let (path, _server) = fake_qemu(dir.path(), move |msg| {
            let id = msg["id"].clone();
            match msg["execute"].as_str().unwrap() {
                "qmp_capabilities" => vec![json!({"return": {}, "id": id}).to_string()],
                "slow" => {
                    *held.lock().unwrap() = Some(id);
                    vec![]
                }
                "fast" => {
                    let slow_id = held.lock().unwrap().take().unwrap();
                    vec![
                        json!({"event": "STOP", "data": {}, "timestamp": {"seconds": 3, "microseconds": 5}}).to_string(),
                        json!({"return": {"who": "fast"}, "id": id}).to_string(),
                        json!({"return": {"who": "slow"}, "id": slow_id}).to_string(),
                    ]
                }
                "bad" => vec![json!({"error": {"class": "CommandNotFound", "desc": "no such thing"}, "id": id}).to_string()],
                _ => vec!["garbage that is not json".into()],
            }
        })
        .await;
        let qmp = Qmp::connect(&path, Duration::from_secs(2)).await.unwrap();
        assert_eq!(qmp.qemu_version(), Some((7, 2, 22)));
        let mut events = qmp.subscribe();
        let observed = Arc::new(Mutex::new(Vec::<String>::new()));
        let o2 = observed.clone();
        qmp.set_latency_observer(Arc::new(move |cmd, _| {
            o2.lock().unwrap().push(cmd.to_string())
        }));

        let q2 = qmp.clone();
        let slow = tokio::spawn(async move { q2.execute("slow", None).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let fast = qmp.execute("fast", Some(json!({"x": 1}))).await.unwrap();
        assert_eq!(fast["who"], "fast");
        assert_eq!(slow.await.unwrap().unwrap()["who"], "slow");

        let ev = events.recv().await.unwrap();
        assert_eq!(ev.event, "STOP");
        assert_eq!(ev.timestamp_micros, 3_000_005);

        match qmp.execute("bad", None).await {
            Err(QemuError::Qmp {
                class,
                desc,
                command,
            }) => {
                assert_eq!(class, "CommandNotFound");
                assert_eq!(desc, "no such thing");
                assert_eq!(command, "bad");
            }
            other => panic!("expected a QMP error, got {other:?}"),
        }
        // A garbage line must not break the connection; the command then times out.
        qmp.set_command_timeout(Duration::from_millis(100));
        assert!(matches!(
            qmp.execute("junk", None).await,
            Err(QemuError::QmpTimeout { .. })
        ));
        assert!(!qmp.is_closed());
        let seen = observed.lock().unwrap().clone();
        assert!(
            seen.contains(&"fast".to_string()) && seen.contains(&"bad".to_string()),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn closed_fails_pending_and_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let (path, server) = fake_qemu(dir.path(), |msg| {
            if msg["execute"] == "qmp_capabilities" {
                vec![json!({"return": {}, "id": msg["id"]}).to_string()]
            } else {
                vec![]
            }
        })
        .await;
        let qmp = Qmp::connect(&path, Duration::from_secs(2)).await.unwrap();
        let q2 = qmp.clone();
        let pending = tokio::spawn(async move { q2.execute("never", None).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.abort();
        tokio::time::timeout(Duration::from_secs(2), qmp.closed())
            .await
            .unwrap();
        assert!(qmp.is_closed());
        assert!(matches!(pending.await.unwrap(), Err(QemuError::QmpClosed)));
        assert!(matches!(
            qmp.execute("after", None).await,
            Err(QemuError::QmpClosed)
        ));
    }

    #[tokio::test]
    async fn connect_times_out_on_missing_socket() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let err = Qmp::connect(&dir.path().join("absent.sock"), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(matches!(err, QemuError::QmpConnect { .. }), "{err}");
    }

    /// Mutation fuzzing of the message dispatcher: flipped, dropped and inserted bytes, truncations, odd ids.
    #[test]
    fn dispatch_never_panics_on_mutated_messages() {
        let (events, _rx) = broadcast::channel(8);
        let (closed_tx, _) = watch::channel(false);
        let shared = Shared {
            pending: Mutex::new(HashMap::new()),
            events,
            closed_tx,
        };
        let seeds = [
            r#"{"return": {"running": true, "status": "running"}, "id": 7}"#,
            r#"{"error": {"class": "GenericError", "desc": "x"}, "id": 8}"#,
            r#"{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}, "timestamp": {"seconds": 1, "microseconds": 2}}"#,
            r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}"#,
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000u64 {
            // Keep some ids pending so answers are actually delivered too.
            let (tx, _rx) = oneshot::channel();
            lock(&shared.pending).insert(i % 16, ("cmd".to_string(), tx));
            let mut bytes = seeds[(rand() % seeds.len() as u64) as usize]
                .as_bytes()
                .to_vec();
            for _ in 0..(rand() % 6) {
                let pos = (rand() as usize) % bytes.len().max(1);
                match rand() % 4 {
                    0 if !bytes.is_empty() => bytes[pos] = rand() as u8,
                    1 if !bytes.is_empty() => {
                        bytes.remove(pos);
                    }
                    2 => bytes.insert(
                        pos.min(bytes.len()),
                        b"{}[]\":,0-9eE"[(rand() % 12) as usize],
                    ),
                    _ => bytes.truncate(pos),
                }
            }
            dispatch(&shared, &String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn dispatch_survives_malformed_messages() {
        let (events, _) = broadcast::channel(4);
        let (closed_tx, _) = watch::channel(false);
        let shared = Shared {
            pending: Mutex::new(HashMap::new()),
            events,
            closed_tx,
        };
        for line in [
            "",
            "{",
            "[]",
            "null",
            "{\"id\": \"x\"}",
            "{\"id\": 99, \"return\": 1}",
            "{\"event\": 5}",
            "{\"event\": \"X\", \"timestamp\": {\"seconds\": \"a\"}}",
            "{\"event\": \"X\", \"timestamp\": {\"seconds\": 9223372036854775807, \"microseconds\": 9}}",
        ] {
            dispatch(&shared, line);
        }
    }
}
