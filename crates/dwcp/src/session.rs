//! Sessions: one logical, mutually authenticated connection between two nodes, striped over
//! N TLS-over-TCP streams (AMST), carrying ordered channels of messages.
//!
//! Sending side: messages are cut into data frames with a session-wide sequence number. Each
//! stream's writer pulls the next frame when its socket has room (`TCP_NOTSENT_LOWAT` keeps
//! unsent bytes per socket small), so a slow or stalled stream simply pulls less. Frames stay
//! in a retransmit buffer until the peer's cumulative acknowledgement covers them; frames of
//! a stream that dies are resent on the others, and a frame stuck on a stalled stream while
//! later frames arrived is resent elsewhere too. The receiver drops duplicates and delivers
//! frames in sequence order, so callers see no loss, duplicate or reordering.
//!
//! The dialing side (client) owns the stream set: it re-dials dead streams and adapts the
//! stream count to the measured goodput (grow while aggregate goodput rises, back off when it
//! does not). The receiving side can ask for more streams with a hint frame.
//!
//! What a peer can make this side hold is bounded in bytes, and exceeding a bound is an
//! error, never a bigger buffer: per TCP stream one frame being read (at most
//! [`frame::MAX_PAYLOAD_BYTES`]) and a fixed number of queued control replies; per channel
//! `channel_buffer_bytes` of unread messages (then delivery holds back) and one message being
//! reassembled (`max_message_bytes`); per session `session_buffer_bytes` of unread messages
//! over all channels (hold back), `max_receive_bytes` of frames past the delivery point (the
//! session fails), `max_channels` channels and, on the server, `max_peer_streams` streams
//! (further streams are refused). A server can also accept only one named peer holding a
//! shared secret: see [`crate::auth`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::auth::{self, Hello, SessionSecret};
use crate::error::DwcpError;
use crate::frame::{self, FLAG_END_OF_MESSAGE, FLAG_FIN, HEADER_BYTES, Kind};
use crate::mode::{self, Mode, ModeSetting};
use crate::pba::{self, Estimator, PathEstimate, Sample};
use crate::sockopt;
use crate::tls::{self, KeyExchange, TlsIdentity, TlsInfo};

/// Congestion control for the session's TCP streams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CongestionControl {
    /// BBR where the kernel offers it, else the system default.
    #[default]
    PreferBbr,
    /// This algorithm on every stream (e.g. `cubic`); connecting fails if it is unavailable.
    Named(String),
}

/// Session settings. Defaults suit both datacenter and WAN paths.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Name in the server's certificate (client side).
    pub server_name: String,
    /// Datacenter or WAN profile: measured, or forced.
    pub mode: ModeSetting,
    /// Stream count to start with (default: from the mode).
    pub initial_streams: Option<usize>,
    /// Fewest streams.
    pub min_streams: usize,
    /// Most streams (default: from the mode).
    pub max_streams: Option<usize>,
    /// Adapt the stream count to the measured goodput.
    pub adaptive_streams: bool,
    /// Congestion control per stream.
    pub congestion: CongestionControl,
    /// Key-exchange groups offered.
    pub key_exchange: KeyExchange,
    /// Bytes sent but not yet acknowledged by the peer, at most (per direction).
    pub window_bytes: usize,
    /// Payload bytes per data frame, at most.
    pub frame_bytes: usize,
    /// Largest message accepted from the peer.
    pub max_message_bytes: usize,
    /// Bytes of received messages queued per channel before the receiver stops accepting more.
    /// With `max_message_bytes` (a message being reassembled) this bounds a channel's buffer.
    pub channel_buffer_bytes: usize,
    /// Bytes of received messages queued over all channels before the receiver stops
    /// accepting more (flow control: the peer waits in its window).
    pub session_buffer_bytes: usize,
    /// Bytes of frames (payload and header) the peer may have in flight past what this side
    /// delivered, at most: the reorder buffer. Must hold the peer's `window_bytes` plus one
    /// frame; a peer that sends beyond it is cut off with [`DwcpError::LimitExceeded`].
    pub max_receive_bytes: usize,
    /// Channels the two sides may have open in the session, at most; a peer opening more is
    /// cut off with [`DwcpError::LimitExceeded`].
    pub max_channels: usize,
    /// Server side: TCP streams one session may have, at most; further streams the peer
    /// dials are refused (the session goes on with the ones it has).
    pub max_peer_streams: usize,
    /// Server side: the node name the peer's certificate must hold (besides being signed by
    /// the cluster CA); `None` accepts any node of the cluster.
    pub peer_name: Option<String>,
    /// A secret both sides were given by whoever arranged the session: the client proves it
    /// on every stream, the server refuses streams without the proof. See [`crate::auth`].
    pub secret: Option<SessionSecret>,
    /// Time allowed for TCP connect + TLS handshake + hello of one stream.
    pub connect_timeout: Duration,
    /// How long the session survives with no stream at all before failing.
    pub reconnect_timeout: Duration,
    /// Pending data that makes no progress this long fails the session.
    pub progress_timeout: Duration,
    /// A stream that receives nothing this long is closed and replaced.
    pub stream_idle_timeout: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            server_name: "localhost".into(),
            mode: ModeSetting::Auto,
            initial_streams: None,
            min_streams: 1,
            max_streams: None,
            adaptive_streams: true,
            congestion: CongestionControl::PreferBbr,
            key_exchange: KeyExchange::PreferHybrid,
            window_bytes: 96 << 20,
            frame_bytes: 512 << 10,
            max_message_bytes: 256 << 20,
            channel_buffer_bytes: 32 << 20,
            session_buffer_bytes: 128 << 20,
            max_receive_bytes: 192 << 20,
            max_channels: 256,
            max_peer_streams: 128,
            peer_name: None,
            secret: None,
            connect_timeout: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(30),
            progress_timeout: Duration::from_secs(60),
            stream_idle_timeout: Duration::from_secs(20),
        }
    }
}

const HELLO_NEW: u32 = 1;
const HELLO_JOIN: u32 = 2;
const NOTSENT_LOWAT_BYTES: u32 = 256 << 10;
const TICK: Duration = Duration::from_millis(10);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const PING_EVERY: Duration = Duration::from_secs(1);
const USER_TIMEOUT_MS: u32 = 30_000;
/// Control frames (acks, pongs, goodbyes) queued per stream, at most: a peer that sends
/// pings without reading the pongs gets no more pongs instead of growing this queue.
const CTRL_QUEUE_FRAMES: usize = 256;

type SessionId = [u8; 16];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

struct OutFrame {
    header: [u8; HEADER_BYTES],
    payload: Bytes,
}

struct InFlight {
    frame: Arc<OutFrame>,
    stream: Option<u32>,
    sent_at: Instant,
    hedged: bool,
}

#[derive(Default)]
struct ChannelState {
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    partial: BytesMut,
    fin_received: bool,
    fin_sent: bool,
    /// A `Channel` handle was given out (by `open_channel` or `accept_channel`).
    claimed: bool,
    notify: Arc<Notify>,
}

struct StreamEntry {
    ctrl: mpsc::Sender<Bytes>,
    /// A duplicate of the socket for TCP_INFO and tuning; dropped with the entry.
    fd: OwnedFd,
    draining_since: Option<Instant>,
    last_rx: Instant,
    last_ping: Instant,
    goodbye_received: bool,
    prev_segs_out: u32,
    prev_retrans: u32,
    prev_bytes_acked: u64,
    /// Last time TCP reported new acknowledged bytes on this stream (or it had nothing in flight).
    last_tcp_progress: Instant,
    tasks: Vec<JoinHandle<()>>,
}

struct State {
    // Sending side.
    next_seq: u64,
    queue: VecDeque<Arc<OutFrame>>,
    resend: VecDeque<u64>,
    unacked: BTreeMap<u64, InFlight>,
    unacked_bytes: usize,
    peer_next: u64,
    peer_highest: u64,
    acked_payload_bytes: u64,
    last_progress: Instant,
    // Receiving side.
    next_expected: u64,
    reorder: BTreeMap<u64, frame::Frame>,
    /// Payload and header bytes held in `reorder`.
    reorder_bytes: usize,
    /// Bytes of complete messages queued over all channels.
    queued_total: usize,
    highest_seen: u64,
    ack_dirty: bool,
    unacked_rx_bytes: usize,
    last_ack_stream: Option<u32>,
    channels: HashMap<u32, ChannelState>,
    accept_queue: VecDeque<u32>,
    // Streams.
    streams: HashMap<u32, StreamEntry>,
    next_stream_id: u32,
    dialing: usize,
    target_streams: usize,
    peer_hint: Option<usize>,
    no_stream_since: Option<Instant>,
    mode: Mode,
    // Outcome.
    failed: Option<String>,
    closed: bool,
    counters: SessionStats,
    estimator: Estimator,
    adapt: Adapter,
}

/// Counters of a session's sending side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Data frames written for the first time.
    pub frames_sent: u64,
    /// Data frames written again (after a stream died, or copied off a stalled stream).
    pub frames_resent: u64,
    /// Frames copied off a stalled stream.
    pub frames_hedged: u64,
    /// Payload bytes acknowledged by the peer.
    pub payload_bytes_acked: u64,
    /// Streams opened over the session's life (including replacements).
    pub streams_opened: u64,
    /// Streams lost without a goodbye.
    pub streams_lost: u64,
}

/// Hill climbing on the stream count.
#[derive(Debug)]
struct Adapter {
    epoch_start: Instant,
    epoch_start_acked: u64,
    sample_acked: u64,
    samples: u32,
    backlogged: u32,
    settled: bool,
    prev_goodput: f64,
    growing: bool,
    last_step: usize,
    hold_epochs: u32,
    warmup_epochs: u32,
}

struct Inner {
    id: SessionId,
    role: Role,
    opts: SessionOptions,
    client: Option<ClientSide>,
    state: Mutex<State>,
    send_ready: Notify,
    space: Notify,
    accept: Notify,
    tls_info: Mutex<Option<TlsInfo>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    shut: AtomicBool,
}

struct ClientSide {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
}

/// Shuts the session down when the last user handle (session or channel) goes away.
struct Guard(Arc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// A DWCP session. Cheap to clone; the session ends when every clone and channel is dropped
/// or [`Session::close`] is called.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
    guard: Arc<Guard>,
}

/// One ordered, bidirectional channel of messages in a session.
#[derive(Clone)]
pub struct Channel {
    id: u32,
    inner: Arc<Inner>,
    _guard: Arc<Guard>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.inner.role)
            .finish()
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the state half-updated in a way later code
    // relies on more than on availability; keep serving.
    inner.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens a session to a DWCP listener.
pub async fn connect(
    addr: SocketAddr,
    identity: &TlsIdentity,
    opts: SessionOptions,
) -> Result<Session, DwcpError> {
    let config = identity.client_config(opts.key_exchange)?;
    tls::server_name(&opts.server_name)?;
    let mut id = [0u8; 16];
    fill_random(&mut id);
    let inner = Arc::new(Inner::new(
        id,
        Role::Client,
        opts,
        Some(ClientSide { addr, config }),
    ));
    // First stream: its failure is the caller's error.
    let first = dial(&inner, HELLO_NEW).await?;
    let rtt_us = sockopt::tcp_info(&first.1).map(|i| i.rtt_us).unwrap_or(0);
    {
        let mut st = lock(&inner);
        st.mode = mode::detect(inner.opts.mode, rtt_us);
        st.target_streams = inner.initial_streams(st.mode);
        tracing::info!(mode = ?st.mode, rtt_us, streams = st.target_streams, "dwcp session connected");
    }
    attach_stream(&inner, first.0, first.1);
    let guard = Arc::new(Guard(inner.clone()));
    spawn_background(&inner);
    Ok(Session { inner, guard })
}

/// Accepts DWCP sessions.
pub struct Listener {
    local_addr: SocketAddr,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Session>>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Listens on `addr` (port 0 picks one).
    pub async fn bind(
        addr: SocketAddr,
        identity: &TlsIdentity,
        opts: SessionOptions,
    ) -> Result<Listener, DwcpError> {
        let config = identity.server_config(opts.key_exchange)?;
        let tcp = TcpListener::bind(addr).await?;
        let local_addr = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), opts, tx));
        Ok(Listener {
            local_addr,
            incoming: tokio::sync::Mutex::new(rx),
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next new session from an authenticated peer.
    pub async fn accept(&self) -> Result<Session, DwcpError> {
        self.incoming
            .lock()
            .await
            .recv()
            .await
            .ok_or(DwcpError::Closed)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    opts: SessionOptions,
    tx: mpsc::Sender<Session>,
) {
    let sessions: Arc<Mutex<HashMap<SessionId, Weak<Inner>>>> = Arc::default();
    loop {
        let (sock, peer) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "dwcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let opts = opts.clone();
        let tx = tx.clone();
        let sessions = sessions.clone();
        tokio::spawn(async move {
            let timeout = opts.connect_timeout;
            match tokio::time::timeout(timeout, server_handshake(sock, acceptor, opts, &sessions))
                .await
            {
                Ok(Ok(Some(session))) => {
                    let _ = tx.send(session).await;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e @ DwcpError::PeerRefused(_))) => {
                    tracing::warn!(%peer, error = %e, "dwcp stream refused")
                }
                Ok(Err(e)) => tracing::info!(%peer, error = %e, "dwcp stream refused"),
                Err(_) => tracing::info!(%peer, "dwcp handshake timed out"),
            }
        });
    }
}

async fn server_handshake(
    sock: TcpStream,
    acceptor: TlsAcceptor,
    opts: SessionOptions,
    sessions: &Mutex<HashMap<SessionId, Weak<Inner>>>,
) -> Result<Option<Session>, DwcpError> {
    tune_socket(&sock, &opts.congestion)?;
    let dup = dup_fd(&sock)?;
    let mut tls = acceptor.accept(sock).await?;
    let info = tls::info(tls.get_ref().1);
    // TLS checked the certificate against the cluster CA; a listener made for one peer also
    // wants that peer's name in it, before reading anything from it.
    if let Some(want) = &opts.peer_name {
        auth::check_peer_name(&info.peer_certificate_der, want)?;
    }
    let first = read_frame(&mut tls).await?;
    if first.header.kind != Kind::Hello {
        return Err(DwcpError::Protocol("expected hello".into()));
    }
    let hello = Hello::decode(&first.payload)?;
    if let Some(secret) = &opts.secret {
        let binding = auth::binding(tls.get_ref().1)?;
        secret.verify(&binding, &hello)?;
    }
    let id = hello.session;
    let ok = frame::encode(Kind::HelloOk, 0, 0, 0, &id);
    match hello.flags {
        HELLO_NEW => {
            let inner = Arc::new(Inner::new(id, Role::Server, opts, None));
            *inner.tls_info.lock().unwrap_or_else(|p| p.into_inner()) = Some(info);
            tls.write_all(&ok).await?;
            tls.flush().await?;
            let rtt_us = sockopt::tcp_info(&dup).map(|i| i.rtt_us).unwrap_or(0);
            {
                let mut st = lock(&inner);
                st.mode = mode::detect(inner.opts.mode, rtt_us);
                st.target_streams = inner.initial_streams(st.mode);
            }
            {
                let mut map = sessions.lock().unwrap_or_else(|p| p.into_inner());
                map.retain(|_, w| w.strong_count() > 0);
                map.insert(id, Arc::downgrade(&inner));
            }
            attach_stream(&inner, Box::new(tls), dup);
            let guard = Arc::new(Guard(inner.clone()));
            spawn_background(&inner);
            Ok(Some(Session { inner, guard }))
        }
        HELLO_JOIN => {
            let inner = sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .and_then(Weak::upgrade);
            let Some(inner) = inner else {
                return Err(DwcpError::Protocol("join for an unknown session".into()));
            };
            if inner.shut.load(Ordering::Acquire) {
                return Err(DwcpError::Closed);
            }
            let streams = lock(&inner).streams.len();
            if streams >= inner.opts.max_peer_streams {
                return Err(DwcpError::PeerRefused(format!(
                    "the session already has {streams} streams, the most a peer may open"
                )));
            }
            tls.write_all(&ok).await?;
            tls.flush().await?;
            attach_stream(&inner, Box::new(tls), dup);
            Ok(None)
        }
        _ => Err(DwcpError::Protocol("bad hello flags".into())),
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

fn tune_socket(sock: &TcpStream, cc: &CongestionControl) -> Result<(), DwcpError> {
    sock.set_nodelay(true)?;
    match cc {
        CongestionControl::PreferBbr => {
            if let Err(e) = sockopt::set_congestion(sock, "bbr") {
                tracing::debug!(error = %e, "bbr unavailable, using the system default");
            }
        }
        CongestionControl::Named(name) => sockopt::set_congestion(sock, name)?,
    }
    sockopt::set_notsent_lowat(sock, NOTSENT_LOWAT_BYTES)?;
    sockopt::set_user_timeout(sock, USER_TIMEOUT_MS)?;
    Ok(())
}

fn dup_fd(sock: &TcpStream) -> Result<OwnedFd, DwcpError> {
    // SAFETY: `sock` owns a valid open descriptor for the duration of the call.
    let fd = unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: `fd` was just returned by F_DUPFD_CLOEXEC and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

async fn dial(inner: &Arc<Inner>, flags: u32) -> Result<(Box<dyn Io>, OwnedFd), DwcpError> {
    let client = inner.client.as_ref().ok_or(DwcpError::Closed)?;
    let timeout = inner.opts.connect_timeout;
    let fut = async {
        let sock = if client.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        let tcp = sock.connect(client.addr).await?;
        tune_socket(&tcp, &inner.opts.congestion)?;
        let dup = dup_fd(&tcp)?;
        let name = tls::server_name(&inner.opts.server_name)?;
        let mut tls = TlsConnector::from(client.config.clone())
            .connect(name, tcp)
            .await?;
        let info = tls::info(tls.get_ref().1);
        let binding = auth::binding(tls.get_ref().1)?;
        let hello = Hello::new(inner.id, flags, inner.opts.secret.as_ref(), &binding);
        // A server that refuses this node closes the connection, possibly before reading
        // the hello; the kernel then answers with a reset instead of an end of stream, and
        // which one the client sees depends on timing.
        let exchanged = async {
            tls.write_all(&frame::encode(Kind::Hello, 0, 0, 0, &hello.encode()))
                .await?;
            tls.flush().await?;
            read_frame(&mut tls).await
        };
        let ok = match exchanged.await {
            Err(DwcpError::Io(e)) if closed_by_peer(e.kind()) => {
                return Err(DwcpError::PeerRefused(
                    "the peer closed the stream during the hello: it does not accept this node, \
                     this session secret, or another stream"
                        .into(),
                ));
            }
            r => r?,
        };
        if ok.header.kind != Kind::HelloOk || ok.payload[..] != inner.id[..] {
            return Err(DwcpError::Protocol(
                "expected hello-ok for this session".into(),
            ));
        }
        let mut slot = inner.tls_info.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(info);
        }
        drop(slot);
        Ok::<_, DwcpError>((Box::new(tls) as Box<dyn Io>, dup))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| DwcpError::Timeout("connecting a DWCP stream"))?
}

/// An I/O error that means the other end closed or reset the connection.
fn closed_by_peer(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<frame::Frame, DwcpError> {
    let mut h = [0u8; HEADER_BYTES];
    r.read_exact(&mut h).await?;
    let header = frame::Header::parse(&h)?;
    let mut payload = BytesMut::zeroed(header.len as usize);
    r.read_exact(&mut payload).await?;
    header.verify(&payload)?;
    Ok(frame::Frame {
        header,
        payload: payload.freeze(),
    })
}

fn attach_stream(inner: &Arc<Inner>, io: Box<dyn Io>, fd: OwnedFd) {
    let (rd, wr) = tokio::io::split(io);
    let (ctrl_tx, ctrl_rx) = mpsc::channel(CTRL_QUEUE_FRAMES);
    let mut st = lock(inner);
    if st.closed || st.failed.is_some() {
        return;
    }
    if inner.role == Role::Server && st.streams.len() >= inner.opts.max_peer_streams {
        // Joins that raced past the check in the handshake: closing the stream refuses it.
        tracing::info!(
            streams = st.streams.len(),
            "dwcp stream refused: the session has the most streams a peer may open"
        );
        return;
    }
    let sid = st.next_stream_id;
    st.next_stream_id += 1;
    st.no_stream_since = None;
    st.counters.streams_opened += 1;
    let reader = tokio::spawn(reader_task(inner.clone(), sid, rd));
    let writer = tokio::spawn(writer_task(inner.clone(), sid, wr, ctrl_rx));
    let now = Instant::now();
    st.streams.insert(
        sid,
        StreamEntry {
            ctrl: ctrl_tx,
            fd,
            draining_since: None,
            last_rx: now,
            last_ping: now,
            goodbye_received: false,
            prev_segs_out: 0,
            prev_retrans: 0,
            prev_bytes_acked: 0,
            last_tcp_progress: now,
            tasks: vec![reader, writer],
        },
    );
    tracing::debug!(stream = sid, streams = st.streams.len(), "dwcp stream up");
    drop(st);
    inner.send_ready.notify_waiters();
}

async fn reader_task(inner: Arc<Inner>, sid: u32, mut rd: tokio::io::ReadHalf<Box<dyn Io>>) {
    let result: Result<(), DwcpError> = async {
        loop {
            let f = read_frame(&mut rd).await?;
            inner.on_frame(sid, f)?;
        }
    }
    .await;
    let clean = lock(&inner)
        .streams
        .get(&sid)
        .is_some_and(|s| s.goodbye_received || s.draining_since.is_some());
    if !clean {
        tracing::info!(stream = sid, error = %result.err().map(|e| e.to_string()).unwrap_or_default(), "dwcp stream lost");
    }
    inner.stream_gone(sid);
}

async fn writer_task(
    inner: Arc<Inner>,
    sid: u32,
    mut wr: tokio::io::WriteHalf<Box<dyn Io>>,
    mut ctrl: mpsc::Receiver<Bytes>,
) {
    let result: Result<(), DwcpError> = async {
        loop {
            while let Ok(c) = ctrl.try_recv() {
                wr.write_all(&c).await?;
            }
            let ready = inner.send_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            match inner.take_frame(sid) {
                Some(f) => {
                    wr.write_all(&f.header).await?;
                    wr.write_all(&f.payload).await?;
                    wr.flush().await?;
                }
                None => {
                    wr.flush().await?;
                    tokio::select! {
                        _ = &mut ready => {}
                        c = ctrl.recv() => match c {
                            Some(c) => wr.write_all(&c).await?,
                            None => return Ok(()),
                        },
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(stream = sid, error = %e, "dwcp stream writer stopped");
    }
    inner.stream_gone(sid);
}

fn spawn_background(inner: &Arc<Inner>) {
    let t = tokio::spawn(ticker(Arc::downgrade(inner)));
    inner
        .background
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(t);
}

/// Periodic work: acknowledgements, hedged resends, pings, sampling, stream management.
async fn ticker(weak: Weak<Inner>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_sample = Instant::now();
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.shut.load(Ordering::Acquire) {
            return;
        }
        inner.tick_acks_and_hedges();
        if last_sample.elapsed() >= SAMPLE_EVERY {
            let dt = last_sample.elapsed().as_secs_f64();
            last_sample = Instant::now();
            inner.sample(dt);
            inner.manage_streams();
        }
    }
}

impl Inner {
    fn new(id: SessionId, role: Role, opts: SessionOptions, client: Option<ClientSide>) -> Inner {
        let now = Instant::now();
        Inner {
            id,
            role,
            client,
            state: Mutex::new(State {
                next_seq: 0,
                queue: VecDeque::new(),
                resend: VecDeque::new(),
                unacked: BTreeMap::new(),
                unacked_bytes: 0,
                peer_next: 0,
                peer_highest: 0,
                acked_payload_bytes: 0,
                last_progress: now,
                next_expected: 0,
                reorder: BTreeMap::new(),
                reorder_bytes: 0,
                queued_total: 0,
                highest_seen: 0,
                ack_dirty: false,
                unacked_rx_bytes: 0,
                last_ack_stream: None,
                channels: HashMap::new(),
                accept_queue: VecDeque::new(),
                streams: HashMap::new(),
                next_stream_id: 0,
                dialing: 0,
                target_streams: 1,
                peer_hint: None,
                no_stream_since: None,
                mode: Mode::Wan,
                failed: None,
                closed: false,
                counters: SessionStats::default(),
                estimator: Estimator::default(),
                adapt: Adapter {
                    epoch_start: now,
                    epoch_start_acked: 0,
                    sample_acked: 0,
                    samples: 0,
                    backlogged: 0,
                    settled: false,
                    prev_goodput: 0.0,
                    growing: true,
                    last_step: 0,
                    hold_epochs: 0,
                    warmup_epochs: 2,
                },
            }),
            opts,
            send_ready: Notify::new(),
            space: Notify::new(),
            accept: Notify::new(),
            tls_info: Mutex::new(None),
            background: Mutex::new(Vec::new()),
            shut: AtomicBool::new(false),
        }
    }

    fn loss_based_cc(&self) -> bool {
        matches!(&self.opts.congestion, CongestionControl::Named(n) if n != "bbr")
    }

    fn initial_streams(&self, mode: Mode) -> usize {
        self.opts
            .initial_streams
            .unwrap_or_else(|| mode.initial_streams(self.loss_based_cc()))
            .clamp(self.opts.min_streams.max(1), self.max_streams(mode))
    }

    fn max_streams(&self, mode: Mode) -> usize {
        self.opts
            .max_streams
            .unwrap_or_else(|| mode.max_streams())
            .max(1)
    }

    fn check(&self, st: &State) -> Result<(), DwcpError> {
        if let Some(f) = &st.failed {
            return Err(DwcpError::SessionFailed(f.clone()));
        }
        if st.closed {
            return Err(DwcpError::Closed);
        }
        Ok(())
    }

    fn fail(&self, st: &mut State, why: String) {
        if st.failed.is_none() && !st.closed {
            tracing::warn!(reason = %why, "dwcp session failed");
            st.failed = Some(why);
        }
        self.wake_all(st);
    }

    fn wake_all(&self, st: &State) {
        for c in st.channels.values() {
            c.notify.notify_waiters();
        }
        self.space.notify_waiters();
        self.accept.notify_waiters();
        self.send_ready.notify_waiters();
    }

    /// Queues one message as data frames, waiting for window space.
    async fn send_frames(&self, channel: u32, msg: Bytes, fin: bool) -> Result<(), DwcpError> {
        let fb = self.opts.frame_bytes.max(1);
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut off = 0;
        while off < msg.len() {
            let end = (off + fb).min(msg.len());
            chunks.push(msg.slice(off..end));
            off = end;
        }
        if chunks.is_empty() {
            chunks.push(Bytes::new());
        }
        let n = chunks.len();
        for (i, payload) in chunks.into_iter().enumerate() {
            let mut flags = 0;
            if i + 1 == n {
                flags |= if fin { FLAG_FIN } else { FLAG_END_OF_MESSAGE };
            }
            loop {
                let space = self.space.notified();
                tokio::pin!(space);
                space.as_mut().enable();
                {
                    let mut st = lock(self);
                    self.check(&st)?;
                    if st.unacked_bytes == 0
                        || st.unacked_bytes + payload.len() <= self.opts.window_bytes
                    {
                        let seq = st.next_seq;
                        st.next_seq += 1;
                        st.unacked_bytes += payload.len() + HEADER_BYTES;
                        let header =
                            frame::encode_header(Kind::Data, flags, channel, seq, &payload);
                        st.queue.push_back(Arc::new(OutFrame { header, payload }));
                        if st.unacked.is_empty() && st.queue.len() == 1 {
                            st.last_progress = Instant::now();
                        }
                        break;
                    }
                }
                space.await;
            }
            self.send_ready.notify_waiters();
        }
        Ok(())
    }

    /// Next frame for a stream's writer: resends first, then new frames.
    fn take_frame(&self, sid: u32) -> Option<Arc<OutFrame>> {
        let mut st = lock(self);
        if st.failed.is_some() {
            return None;
        }
        match st.streams.get(&sid) {
            Some(s) if s.draining_since.is_none() => {}
            _ => return None,
        }
        let now = Instant::now();
        while let Some(seq) = st.resend.pop_front() {
            if let Some(f) = st.unacked.get_mut(&seq) {
                f.stream = Some(sid);
                f.sent_at = now;
                let frame = f.frame.clone();
                st.counters.frames_resent += 1;
                return Some(frame);
            }
        }
        let f = st.queue.pop_front()?;
        st.counters.frames_sent += 1;
        let seq = u64::from_le_bytes(f.header[6..14].try_into().unwrap_or_default());
        st.unacked.insert(
            seq,
            InFlight {
                frame: f.clone(),
                stream: Some(sid),
                sent_at: now,
                hedged: false,
            },
        );
        Some(f)
    }

    fn on_frame(&self, sid: u32, f: frame::Frame) -> Result<(), DwcpError> {
        let mut st = lock(self);
        if let Some(s) = st.streams.get_mut(&sid) {
            s.last_rx = Instant::now();
        }
        match f.header.kind {
            Kind::Data => {
                let seq = f.header.seq;
                st.highest_seen = st.highest_seen.max(seq);
                st.last_ack_stream = Some(sid);
                let fin = f.header.flags & FLAG_FIN != 0;
                if seq >= st.next_expected && !st.reorder.contains_key(&seq) {
                    let bytes = f.payload.len() + HEADER_BYTES;
                    if st.reorder_bytes + bytes > self.opts.max_receive_bytes {
                        // Checked before buffering: the frame is dropped with the session.
                        let why = format!(
                            "the peer sent more than {} bytes beyond what this side delivered \
                             (its window must not exceed max_receive_bytes)",
                            self.opts.max_receive_bytes
                        );
                        self.fail(&mut st, why.clone());
                        return Err(DwcpError::LimitExceeded(why));
                    }
                    st.reorder_bytes += bytes;
                    st.reorder.insert(seq, f);
                    if let Err(e) = self.deliver(&mut st) {
                        let why = e.to_string();
                        self.fail(&mut st, why);
                        return Err(e);
                    }
                }
                st.ack_dirty = true;
                // The end of a channel is acknowledged at once: the peer may be waiting in
                // `flush` while this side is about to drop the session.
                if fin
                    || st.unacked_rx_bytes >= (self.opts.window_bytes / 16).clamp(64 << 10, 1 << 20)
                {
                    self.send_ack(&mut st);
                }
            }
            Kind::Ack => {
                if f.payload.len() != 8 {
                    return Err(DwcpError::Protocol("bad ack".into()));
                }
                let next = f.header.seq;
                let highest = u64::from_le_bytes(f.payload[..8].try_into().unwrap_or_default());
                if next > st.next_seq {
                    return Err(DwcpError::Protocol("ack for data never sent".into()));
                }
                st.peer_highest = st.peer_highest.max(highest);
                if next > st.peer_next {
                    st.peer_next = next;
                    let rest = st.unacked.split_off(&next);
                    let done = std::mem::replace(&mut st.unacked, rest);
                    let mut freed = 0usize;
                    let mut payload = 0u64;
                    for f in done.values() {
                        freed += f.frame.payload.len() + HEADER_BYTES;
                        payload += f.frame.payload.len() as u64;
                    }
                    st.unacked_bytes = st.unacked_bytes.saturating_sub(freed);
                    st.acked_payload_bytes += payload;
                    st.last_progress = Instant::now();
                    drop(st);
                    self.space.notify_waiters();
                }
            }
            Kind::Ping => {
                if let Some(s) = st.streams.get(&sid) {
                    // Dropped when the queue is full: a peer that does not read its pongs.
                    let _ = s
                        .ctrl
                        .try_send(frame::encode(Kind::Pong, 0, 0, f.header.seq, &[]));
                }
            }
            Kind::Pong => {}
            Kind::Goodbye => {
                if let Some(s) = st.streams.get_mut(&sid) {
                    s.goodbye_received = true;
                    s.draining_since.get_or_insert_with(Instant::now);
                }
            }
            Kind::StreamHint => {
                st.peer_hint = Some((f.header.seq as usize).max(1));
            }
            Kind::Hello | Kind::HelloOk => {
                return Err(DwcpError::Protocol("unexpected hello".into()));
            }
        }
        Ok(())
    }

    /// Moves in-order frames from the reorder buffer into channel queues.
    fn deliver(&self, st: &mut State) -> Result<(), DwcpError> {
        while let Some(entry) = st.reorder.first_entry() {
            if *entry.key() != st.next_expected {
                break;
            }
            let ch_id = entry.get().header.channel;
            let cap = self.opts.channel_buffer_bytes;
            let is_new = !st.channels.contains_key(&ch_id);
            if !is_new
                && st
                    .channels
                    .get(&ch_id)
                    .is_some_and(|c| c.queued_bytes >= cap)
            {
                break; // The application is not reading this channel: hold back (flow control).
            }
            if st.queued_total >= self.opts.session_buffer_bytes {
                break; // Unread messages of all channels fill the session's buffer: hold back.
            }
            if is_new && st.channels.len() >= self.opts.max_channels {
                return Err(DwcpError::LimitExceeded(format!(
                    "the peer opened more than {} channels",
                    self.opts.max_channels
                )));
            }
            let f = entry.remove();
            st.reorder_bytes = st
                .reorder_bytes
                .saturating_sub(f.payload.len() + HEADER_BYTES);
            st.next_expected += 1;
            st.unacked_rx_bytes += f.payload.len() + HEADER_BYTES;
            if is_new {
                st.channels.insert(ch_id, ChannelState::default());
                st.accept_queue.push_back(ch_id);
                self.accept.notify_waiters();
            }
            let max_msg = self.opts.max_message_bytes;
            let Some(ch) = st.channels.get_mut(&ch_id) else {
                continue;
            };
            if ch.fin_received {
                return Err(DwcpError::Protocol(format!(
                    "data after the end of channel {ch_id}"
                )));
            }
            if ch.partial.len() + f.payload.len() > max_msg {
                return Err(DwcpError::Protocol(format!(
                    "message on channel {ch_id} exceeds {max_msg} bytes"
                )));
            }
            if f.header.flags & FLAG_FIN != 0 {
                if !ch.partial.is_empty() || !f.payload.is_empty() {
                    return Err(DwcpError::Protocol("channel end inside a message".into()));
                }
                ch.fin_received = true;
            } else if f.header.flags & FLAG_END_OF_MESSAGE != 0 {
                let msg = if ch.partial.is_empty() {
                    f.payload
                } else {
                    ch.partial.extend_from_slice(&f.payload);
                    ch.partial.split().freeze()
                };
                ch.queued_bytes += msg.len();
                let len = msg.len();
                ch.queue.push_back(msg);
                st.queued_total += len;
            } else {
                ch.partial.extend_from_slice(&f.payload);
            }
            ch.notify.notify_waiters();
        }
        Ok(())
    }

    fn send_ack(&self, st: &mut State) {
        let ack = frame::encode(
            Kind::Ack,
            0,
            0,
            st.next_expected,
            &st.highest_seen.to_le_bytes(),
        );
        let target = st
            .last_ack_stream
            .and_then(|s| st.streams.get(&s))
            .or_else(|| st.streams.values().next());
        // A full control queue keeps the ack due: the next tick sends a newer one.
        if let Some(s) = target
            && s.ctrl.try_send(ack).is_ok()
        {
            st.ack_dirty = false;
            st.unacked_rx_bytes = 0;
        }
    }

    fn stream_gone(&self, sid: u32) {
        let mut st = lock(self);
        let Some(entry) = st.streams.remove(&sid) else {
            return;
        };
        if !entry.goodbye_received && entry.draining_since.is_none() && !st.closed {
            st.counters.streams_lost += 1;
        }
        for t in &entry.tasks {
            t.abort();
        }
        // Resend what this stream carried and the peer has not acknowledged.
        let mut lost: Vec<u64> = st
            .unacked
            .iter()
            .filter(|(_, f)| f.stream == Some(sid))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &lost {
            if let Some(f) = st.unacked.get_mut(seq) {
                f.stream = None;
            }
        }
        lost.extend(st.resend.drain(..));
        lost.sort_unstable();
        lost.dedup();
        st.resend = lost.into();
        if st.streams.is_empty() && st.no_stream_since.is_none() {
            st.no_stream_since = Some(Instant::now());
        }
        tracing::debug!(
            stream = sid,
            resend = st.resend.len(),
            streams = st.streams.len(),
            "dwcp stream down"
        );
        drop(st);
        drop(entry);
        self.send_ready.notify_waiters();
    }

    fn tick_acks_and_hedges(&self) {
        let mut st = lock(self);
        if st.ack_dirty {
            self.send_ack(&mut st);
        }
        // A frame the peer still misses while it has seen later ones, on a stream whose TCP
        // has acknowledged nothing for a while (retransmission-timeout backoff, a dead path):
        // that stream is stalled, so send a copy on another. Ordinary loss recovery keeps
        // TCP acknowledgements flowing and does not trigger this.
        let rtt = st.estimator.estimate(0, st.mode).rtt_ms;
        let wait = Duration::from_millis((3.0 * rtt) as u64 + 500);
        let now = Instant::now();
        let peer_highest = st.peer_highest;
        let stalled: Vec<u32> = st
            .streams
            .iter()
            .filter(|(_, e)| now.duration_since(e.last_tcp_progress) > wait)
            .map(|(k, _)| *k)
            .collect();
        let mut hedge = Vec::new();
        if !stalled.is_empty() {
            for (seq, f) in st.unacked.iter_mut().take(256) {
                if *seq >= peer_highest {
                    break;
                }
                if !f.hedged
                    && f.stream.is_some_and(|s| stalled.contains(&s))
                    && now.duration_since(f.sent_at) > wait
                {
                    f.hedged = true;
                    hedge.push(*seq);
                }
            }
        }
        if !hedge.is_empty() && st.streams.len() > 1 {
            st.counters.frames_hedged += hedge.len() as u64;
            tracing::debug!(
                frames = hedge.len(),
                "dwcp resending frames held by a stalled stream"
            );
            for seq in hedge.into_iter().rev() {
                st.resend.push_front(seq);
            }
            drop(st);
            self.send_ready.notify_waiters();
        }
    }

    /// Samples TCP_INFO and acknowledged bytes into the estimator; runs the stream controller.
    fn sample(&self, dt: f64) {
        let mut st = lock(self);
        let mut s = Sample {
            interval_s: dt,
            ..Sample::default()
        };
        s.acked_bytes = st.acked_payload_bytes - st.adapt.sample_acked;
        st.adapt.sample_acked = st.acked_payload_bytes;
        let mut rtt = u32::MAX;
        let mut min_rtt = u32::MAX;
        for e in st.streams.values_mut() {
            if let Ok(i) = sockopt::tcp_info(&e.fd) {
                if i.rtt_us > 0 {
                    rtt = rtt.min(i.rtt_us);
                }
                if i.min_rtt_us > 0 {
                    min_rtt = min_rtt.min(i.min_rtt_us);
                }
                if !i.delivery_rate_app_limited {
                    s.delivery_rate_bytes_per_s += i.delivery_rate as f64;
                }
                if i.bytes_acked > e.prev_bytes_acked
                    || i.notsent_bytes == 0
                        && i.snd_cwnd > 0
                        && i.bytes_acked == e.prev_bytes_acked
                        && i.segs_out == e.prev_segs_out
                {
                    e.last_tcp_progress = Instant::now();
                }
                e.prev_bytes_acked = i.bytes_acked;
                s.segs_out += u64::from(i.segs_out.wrapping_sub(e.prev_segs_out));
                s.retrans += u64::from(i.total_retrans.wrapping_sub(e.prev_retrans));
                e.prev_segs_out = i.segs_out;
                e.prev_retrans = i.total_retrans;
            }
        }
        s.rtt_us = if rtt == u32::MAX { 0 } else { rtt };
        s.min_rtt_us = if min_rtt == u32::MAX { 0 } else { min_rtt };
        let backlogged = !st.queue.is_empty()
            || st.unacked_bytes + self.opts.frame_bytes > self.opts.window_bytes;
        s.backlogged = backlogged;
        st.estimator.update(&s);
        st.adapt.samples += 1;
        if backlogged {
            st.adapt.backlogged += 1;
        }
        // Size send buffers from the bandwidth-delay product once the default ceiling limits.
        let est = st.estimator.estimate(st.streams.len(), st.mode);
        let n = st.streams.len().max(1) as f64;
        let bdp = est.bandwidth_bps / 8.0 * (est.rtt_ms / 1000.0);
        let want = (4.0 * bdp / n) as usize;
        if want > (4 << 20) {
            for e in st.streams.values() {
                let _ = sockopt::set_send_buffer(&e.fd, want.min(64 << 20));
            }
        }
    }

    fn manage_streams(self: &Arc<Self>) {
        let mut st = lock(self);
        if st.failed.is_some() || st.closed {
            return;
        }
        let now = Instant::now();
        // Progress and liveness.
        if !st.unacked.is_empty() || !st.queue.is_empty() {
            if now.duration_since(st.last_progress) > self.opts.progress_timeout {
                let why = format!(
                    "no acknowledged progress for {:?}",
                    self.opts.progress_timeout
                );
                self.fail(&mut st, why);
                return;
            }
        } else {
            st.last_progress = now;
        }
        if let Some(since) = st.no_stream_since
            && now.duration_since(since) > self.opts.reconnect_timeout
        {
            let why = format!(
                "no stream to the peer for {:?}",
                self.opts.reconnect_timeout
            );
            self.fail(&mut st, why);
            return;
        }
        let idle = self.opts.stream_idle_timeout;
        let mut dead = Vec::new();
        for (sid, e) in st.streams.iter_mut() {
            if now.duration_since(e.last_rx) > idle {
                dead.push(*sid);
            } else if now.duration_since(e.last_ping) >= PING_EVERY {
                e.last_ping = now;
                let _ = e.ctrl.try_send(frame::encode(Kind::Ping, 0, 0, 0, &[]));
            }
            if let Some(d) = e.draining_since
                && now.duration_since(d) > Duration::from_secs(2)
            {
                dead.push(*sid);
            }
        }
        drop(st);
        for sid in dead {
            let st = lock(self);
            if let Some(e) = st.streams.get(&sid) {
                // Closing the socket ends both tasks; `stream_gone` resends its frames.
                // SAFETY: `e.fd` is a valid descriptor we own; shutdown does not close it.
                unsafe { libc::shutdown(e.fd.as_raw_fd(), libc::SHUT_RDWR) };
            }
            drop(st);
            self.stream_gone(sid);
        }
        self.adapt_streams();
        if self.role == Role::Client {
            self.dial_missing();
        }
    }

    /// Grow while aggregate goodput rises; step back when it does not.
    ///
    /// Epochs last 1.5 s or 16 RTTs. An epoch counts only when the sender was backlogged
    /// throughout and the stream count did not change during it (new streams first ramp up);
    /// the first two epochs of a session (slow start overshoot) are ignored.
    fn adapt_streams(&self) {
        let mut st = lock(self);
        let rtt_ms = st.estimator.estimate(0, st.mode).rtt_ms;
        let epoch = Duration::from_millis(((16.0 * rtt_ms) as u64).max(1500));
        let now = Instant::now();
        if now.duration_since(st.adapt.epoch_start) < epoch {
            return;
        }
        let secs = now.duration_since(st.adapt.epoch_start).as_secs_f64();
        let goodput = (st.acked_payload_bytes - st.adapt.epoch_start_acked) as f64 * 8.0 / secs;
        let backlogged = st.adapt.samples > 0 && st.adapt.backlogged * 10 >= st.adapt.samples * 8;
        let live = st
            .streams
            .values()
            .filter(|e| e.draining_since.is_none())
            .count();
        let settled = st.adapt.settled && live == st.target_streams;
        let acked_now = st.acked_payload_bytes;
        st.adapt.reset_epoch(now, acked_now);
        st.adapt.settled = live == st.target_streams;
        let warmup = st.adapt.warmup_epochs > 0;
        if backlogged && warmup {
            st.adapt.warmup_epochs -= 1;
        }
        if !self.opts.adaptive_streams || !backlogged || !settled || warmup {
            if backlogged && self.role == Role::Server {
                self.send_hint(&st);
            }
            return;
        }
        let max = self.max_streams(st.mode);
        let min = self.opts.min_streams.max(1);
        let n = st.target_streams;
        let a = &mut st.adapt;
        let new_n = if a.growing {
            if goodput <= 0.0 {
                // Nothing got through (a blackholed path): more streams would not help.
                n
            } else if a.prev_goodput == 0.0 || goodput > a.prev_goodput * 1.05 {
                a.prev_goodput = goodput;
                let step = (n / 2).max(2);
                a.last_step = step;
                (n + step).min(max)
            } else {
                // The last increase did not pay: return to the previous count and hold.
                a.growing = false;
                a.hold_epochs = 10;
                let back = n.saturating_sub(a.last_step).max(min);
                a.prev_goodput = a.prev_goodput.max(goodput);
                a.last_step = 0;
                back
            }
        } else if a.hold_epochs > 0 {
            a.hold_epochs -= 1;
            if goodput < a.prev_goodput * 0.7 {
                // The path changed: start probing again from here.
                a.growing = true;
                a.prev_goodput = goodput;
            }
            n
        } else {
            a.growing = true;
            a.prev_goodput = goodput;
            let step = (n / 4).max(1);
            a.last_step = step;
            (n + step).min(max)
        };
        let new_n = new_n.clamp(min, max);
        if new_n != n {
            tracing::debug!(
                from = n,
                to = new_n,
                goodput_mbps = goodput / 1e6,
                "dwcp stream count"
            );
            st.adapt.settled = false;
        }
        st.target_streams = new_n;
        if self.role == Role::Server {
            self.send_hint(&st);
        }
    }

    fn send_hint(&self, st: &State) {
        if let Some(e) = st.streams.values().next() {
            let _ = e.ctrl.try_send(frame::encode(
                Kind::StreamHint,
                0,
                0,
                st.target_streams as u64,
                &[],
            ));
        }
    }

    fn dial_missing(self: &Arc<Self>) {
        let mut st = lock(self);
        let mut target = st.target_streams;
        if let Some(h) = st.peer_hint {
            let own_backlog = !st.queue.is_empty();
            if !own_backlog {
                target = h.clamp(self.opts.min_streams.max(1), self.max_streams(st.mode));
            }
        }
        let live = st
            .streams
            .values()
            .filter(|e| e.draining_since.is_none())
            .count();
        if live > target {
            // Drain the newest extra streams: they stop taking frames, then close.
            let mut ids: Vec<u32> = st
                .streams
                .iter()
                .filter(|(_, e)| e.draining_since.is_none())
                .map(|(k, _)| *k)
                .collect();
            ids.sort_unstable();
            for sid in ids.into_iter().rev().take(live - target) {
                if let Some(e) = st.streams.get_mut(&sid) {
                    e.draining_since = Some(Instant::now());
                    let _ = e.ctrl.try_send(frame::encode(Kind::Goodbye, 0, 0, 0, &[]));
                }
            }
            return;
        }
        let missing = target.saturating_sub(live + st.dialing);
        // Dial a few at a time so a dead peer is not hammered.
        let n = missing.min(8);
        st.dialing += n;
        drop(st);
        for _ in 0..n {
            let inner = self.clone();
            tokio::spawn(async move {
                let r = dial(&inner, HELLO_JOIN).await;
                lock(&inner).dialing -= 1;
                match r {
                    Ok((io, fd)) => attach_stream(&inner, io, fd),
                    Err(e) => {
                        tracing::info!(error = %e, "dwcp re-dial failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            });
        }
    }

    fn shutdown(&self) {
        if self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut st = lock(self);
        st.closed = true;
        // Last words on every stream: a final acknowledgement and a goodbye. Dropping the
        // entries closes the control queues, so writers exit once those are written; readers
        // stop now. Writers stuck on a dead socket are stopped after a grace period.
        let ack = frame::encode(
            Kind::Ack,
            0,
            0,
            st.next_expected,
            &st.highest_seen.to_le_bytes(),
        );
        let bye = frame::encode(Kind::Goodbye, 0, 0, 0, &[]);
        let mut writers = Vec::new();
        for (_, e) in st.streams.drain() {
            let _ = e.ctrl.try_send(ack.clone());
            let _ = e.ctrl.try_send(bye.clone());
            let mut tasks = e.tasks.into_iter();
            if let Some(reader) = tasks.next() {
                reader.abort();
            }
            writers.extend(tasks);
        }
        self.wake_all(&st);
        drop(st);
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                for w in writers {
                    w.abort();
                }
            });
        } else {
            for w in writers {
                w.abort();
            }
        }
        for t in self
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

impl Adapter {
    fn reset_epoch(&mut self, now: Instant, acked: u64) {
        self.epoch_start = now;
        self.epoch_start_acked = acked;
        self.samples = 0;
        self.backlogged = 0;
    }
}

impl Session {
    /// Opens channel `id` for sending and receiving. Either side may open an id first: the
    /// other side opens the same id, or gets it from [`Session::accept_channel`] when the first
    /// message arrives. Fails if this side already holds a handle for `id`.
    pub fn open_channel(&self, id: u32) -> Result<Channel, DwcpError> {
        let mut st = lock(&self.inner);
        self.inner.check(&st)?;
        match st.channels.get_mut(&id) {
            Some(c) if c.claimed => return Err(DwcpError::ChannelInUse(id)),
            Some(c) => {
                // The peer's traffic created it first: hand it out here instead of via accept.
                c.claimed = true;
                st.accept_queue.retain(|x| *x != id);
            }
            None => {
                st.channels.insert(
                    id,
                    ChannelState {
                        claimed: true,
                        ..ChannelState::default()
                    },
                );
            }
        }
        Ok(Channel {
            id,
            inner: self.inner.clone(),
            _guard: self.guard.clone(),
        })
    }

    /// Waits for a channel the peer opened.
    pub async fn accept_channel(&self) -> Result<Channel, DwcpError> {
        loop {
            let n = self.inner.accept.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            {
                let mut st = lock(&self.inner);
                if let Some(id) = st.accept_queue.pop_front() {
                    if let Some(c) = st.channels.get_mut(&id) {
                        c.claimed = true;
                    }
                    return Ok(Channel {
                        id,
                        inner: self.inner.clone(),
                        _guard: self.guard.clone(),
                    });
                }
                self.inner.check(&st)?;
            }
            n.await;
        }
    }

    /// PBA's current estimate of the path (bandwidth, RTT, loss) and its short-term forecast.
    pub fn path_estimate(&self) -> PathEstimate {
        let st = lock(&self.inner);
        st.estimator.estimate(st.streams.len(), st.mode)
    }

    /// zstd level that keeps up with the path as estimated now.
    pub fn suggested_zstd_level(&self) -> Option<i32> {
        pba::zstd_level_for(self.path_estimate().bandwidth_bps)
    }

    /// What TLS negotiated on the first stream (key-exchange group, cipher suite, peer certificate).
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.inner
            .tls_info
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counters of the sending side.
    pub fn stats(&self) -> SessionStats {
        let st = lock(&self.inner);
        SessionStats {
            payload_bytes_acked: st.acked_payload_bytes,
            ..st.counters.clone()
        }
    }

    /// Number of TCP streams open now.
    pub fn stream_count(&self) -> usize {
        lock(&self.inner).streams.len()
    }

    /// The profile in use.
    pub fn mode(&self) -> Mode {
        lock(&self.inner).mode
    }

    /// Waits until everything sent was acknowledged by the peer.
    pub async fn flush(&self) -> Result<(), DwcpError> {
        loop {
            let n = self.inner.space.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            {
                let st = lock(&self.inner);
                self.inner.check(&st)?;
                if st.unacked_bytes == 0 {
                    return Ok(());
                }
            }
            n.await;
        }
    }

    /// Waits for everything sent to be acknowledged, then closes every stream.
    pub async fn close(&self) -> Result<(), DwcpError> {
        let r = self.flush().await;
        {
            let st = lock(&self.inner);
            for e in st.streams.values() {
                let _ = e.ctrl.try_send(frame::encode(Kind::Goodbye, 0, 0, 0, &[]));
            }
        }
        // Let the goodbyes reach the sockets before the tasks stop.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.inner.shutdown();
        r
    }

    /// Abruptly resets TCP stream number `index` (in opening order), as a network failure
    /// would. For failure tests; the session must recover without loss.
    #[doc(hidden)]
    pub fn kill_stream_for_test(&self, index: usize) -> bool {
        let st = lock(&self.inner);
        let mut ids: Vec<u32> = st.streams.keys().copied().collect();
        ids.sort_unstable();
        let Some(sid) = ids.get(index) else {
            return false;
        };
        let Some(e) = st.streams.get(sid) else {
            return false;
        };
        let _ = sockopt::set_linger_reset(&e.fd);
        // SAFETY: `e.fd` is a valid descriptor we own; shutdown does not close it.
        unsafe { libc::shutdown(e.fd.as_raw_fd(), libc::SHUT_RDWR) };
        true
    }
}

impl Channel {
    /// The channel id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends one message (any size up to the peer's `max_message_bytes`), waiting while the
    /// session's send window is full.
    pub async fn send(&self, msg: impl Into<Bytes>) -> Result<(), DwcpError> {
        let msg = msg.into();
        if msg.len() > self.inner.opts.max_message_bytes {
            return Err(DwcpError::MessageTooLarge(msg.len()));
        }
        {
            let st = lock(&self.inner);
            if st.channels.get(&self.id).is_some_and(|c| c.fin_sent) {
                return Err(DwcpError::Closed);
            }
        }
        self.inner.send_frames(self.id, msg, false).await
    }

    /// Ends the sending direction: the peer's [`Channel::recv`] returns `None` after the last message.
    pub async fn finish(&self) -> Result<(), DwcpError> {
        {
            let mut st = lock(&self.inner);
            if let Some(c) = st.channels.get_mut(&self.id) {
                if c.fin_sent {
                    return Ok(());
                }
                c.fin_sent = true;
            }
        }
        self.inner.send_frames(self.id, Bytes::new(), true).await
    }

    /// Next message from the peer, in order; `None` once the peer finished the channel.
    pub async fn recv(&self) -> Result<Option<Bytes>, DwcpError> {
        loop {
            let notify = {
                let st = lock(&self.inner);
                st.channels.get(&self.id).map(|c| c.notify.clone())
            };
            let Some(notify) = notify else {
                return Err(DwcpError::Closed);
            };
            let n = notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            {
                let mut st = lock(&self.inner);
                let cap = self.inner.opts.channel_buffer_bytes;
                let session_cap = self.inner.opts.session_buffer_bytes;
                let session_was_full = st.queued_total >= session_cap;
                let Some(c) = st.channels.get_mut(&self.id) else {
                    return Err(DwcpError::Closed);
                };
                if let Some(m) = c.queue.pop_front() {
                    let was_full = c.queued_bytes >= cap;
                    c.queued_bytes -= m.len();
                    let channel_freed = was_full && c.queued_bytes < cap;
                    st.queued_total = st.queued_total.saturating_sub(m.len());
                    let session_freed = session_was_full && st.queued_total < session_cap;
                    if channel_freed || session_freed {
                        if let Err(e) = self.inner.deliver(&mut st) {
                            let why = e.to_string();
                            self.inner.fail(&mut st, why);
                        }
                        st.ack_dirty = true;
                    }
                    return Ok(Some(m));
                }
                if c.fin_received {
                    return Ok(None);
                }
                self.inner.check(&st)?;
            }
            n.await;
        }
    }
}

fn fill_random(buf: &mut [u8]) {
    if rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(buf)
        .is_err()
    {
        // Session ids only need to be unique per listener; time + address entropy suffices then.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let h = blake3::hash(&t.to_le_bytes());
        let n = buf.len();
        buf.copy_from_slice(&h.as_bytes()[..n]);
    }
}

/// Fuzzing entry, not an API: hands `frames` (as a peer sent them on one stream, checksums
/// already verified) to a fresh server-side session state the way the reader task does,
/// stopping at the first protocol error. Returns the complete messages delivered, per channel
/// in arrival order, and the error that stopped it, if any.
#[doc(hidden)]
pub fn fuzz_peer_frames(
    frames: impl IntoIterator<Item = frame::Frame>,
    opts: SessionOptions,
) -> (Vec<(u32, Bytes)>, Option<DwcpError>) {
    let inner = Inner::new([0u8; 16], Role::Server, opts, None);
    let mut stopped = None;
    for f in frames {
        if let Err(e) = inner.on_frame(0, f) {
            stopped = Some(e);
            break;
        }
    }
    let mut st = lock(&inner);
    let mut ids: Vec<u32> = st.channels.keys().copied().collect();
    ids.sort_unstable();
    let mut out = Vec::new();
    for id in ids {
        if let Some(ch) = st.channels.get_mut(&id) {
            out.extend(ch.queue.drain(..).map(|m| (id, m)));
        }
    }
    (out, stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(channel: u32, seq: u64, len: usize) -> frame::Frame {
        let b = frame::encode(Kind::Data, FLAG_END_OF_MESSAGE, channel, seq, &vec![7; len]);
        frame::decode(&b).unwrap().unwrap().0
    }

    #[test]
    fn frames_past_the_byte_bound_are_refused_not_buffered() {
        let opts = SessionOptions {
            max_receive_bytes: 10 * (1024 + HEADER_BYTES),
            ..SessionOptions::default()
        };
        // Sequence 0 never arrives, so everything else waits in the reorder buffer.
        let frames = (1..=11).map(|seq| data(1, seq, 1024));
        let (delivered, err) = fuzz_peer_frames(frames, opts.clone());
        assert!(delivered.is_empty());
        assert!(matches!(err, Some(DwcpError::LimitExceeded(_))), "{err:?}");
        // Ten fit.
        let (_, err) = fuzz_peer_frames((1..=10).map(|seq| data(1, seq, 1024)), opts);
        assert!(err.is_none(), "{err:?}");
    }

    #[test]
    fn a_flood_of_channels_is_refused() {
        let opts = SessionOptions {
            max_channels: 8,
            ..SessionOptions::default()
        };
        let (delivered, err) = fuzz_peer_frames((0..9).map(|i| data(i as u32, i, 1)), opts);
        assert_eq!(delivered.len(), 8);
        assert!(matches!(err, Some(DwcpError::LimitExceeded(_))), "{err:?}");
    }

    #[test]
    fn unread_messages_of_all_channels_hold_back_delivery() {
        let opts = SessionOptions {
            session_buffer_bytes: 4096,
            ..SessionOptions::default()
        };
        // Eight channels of 1 KiB messages: delivery stops once 4 KiB wait unread.
        let (delivered, err) = fuzz_peer_frames((0..8).map(|i| data(i as u32, i, 1024)), opts);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(delivered.len(), 4);
    }
}
