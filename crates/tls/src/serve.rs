//! Serving an axum router over HTTPS: one task per connection, HTTP/1.1 with upgrades, a
//! graceful stop that ends the accept loop, and the limits that keep a flood of idle or slow
//! connections from exhausting the process's file descriptors ([`ServeLimits`]).
//!
//! How each limit is enforced:
//! - caps: a connection over the per-address cap is dropped right after `accept`, before
//!   any TLS work, and counted in a rate-limited warning. At the total cap a newcomer from an
//!   address holding fewer connections than the heaviest address is let in, and that address's
//!   oldest connection is closed to make room: a flood from many addresses fills the endpoint,
//!   but never keeps out a client (an agent, the CLI) that holds fewer connections than the
//!   flood's heaviest source. Otherwise the newcomer is dropped like one over the per-address
//!   cap;
//! - header-read timeout: the TLS handshake, and afterwards a request head whose first bytes
//!   arrived (or the first request of a new connection), must complete within it, else the
//!   connection is dropped;
//! - idle timeout: a connection with no request in flight and no bytes either way for that
//!   long gets a graceful shutdown. A request is in flight from its head until its response
//!   body is finished or dropped, so long polls, watches and streamed bodies are never idle;
//!   an upgraded connection (console attach) leaves hyper and this accounting, but keeps
//!   its slot under the caps until it closes;
//! - accept errors from resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) back off
//!   (10 ms doubling to 1 s) instead of spinning on a listener that stays readable.
//!
//! Only HTTP/1.1 is served (ALPN offers `http/1.1` only); the timeouts live below hyper, on
//! the connection's byte stream, so they would cover HTTP/2 as well.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::limits::ServeLimits;

/// The client certificate a connection presented (verified during the handshake by the
/// server configuration), as a request extension: what revocation checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Serial number, lowercase hex (as [`crate::IssuedCert::serial`]).
    pub serial: String,
}

/// Stops the listener when dropped or on [`ServeHandle::stop`].
pub struct ServeHandle {
    pub local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    slots: Arc<Slots>,
}

impl ServeHandle {
    /// Stops accepting; connections in flight finish on their own.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Connections open now (including upgraded ones), as counted against the caps.
    pub fn open_connections(&self) -> usize {
        self.slots.lock().total
    }
}

/// Serves `router` on `listener` over TLS until the handle is stopped, with
/// [`ServeLimits::from_env`]. The peer's address is available to handlers through
/// `ConnectInfo<SocketAddr>`, and a client certificate, when one was presented, as a
/// [`PeerCertificate`] extension.
pub fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: axum::Router,
) -> std::io::Result<ServeHandle> {
    serve_https_with(listener, tls, router, ServeLimits::from_env())
}

/// [`serve_https`] with explicit limits.
pub fn serve_https_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: axum::Router,
    limits: ServeLimits,
) -> std::io::Result<ServeHandle> {
    let local_addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Slots {
        state: Mutex::new(SlotCounts::default()),
        max_total: limits.max_connections.max(1),
        max_per_address: limits.max_connections_per_address.max(1),
    });
    tracing::debug!(%local_addr, ?limits, "serving HTTPS");
    let limits = Arc::new(limits);
    let task_slots = slots.clone();
    let task = tokio::spawn(async move {
        let slots = task_slots;
        let mut backoff = ACCEPT_BACKOFF_MIN;
        let mut rejected = RateLimitedWarning::default();
        let mut evictions = RateLimitedWarning::default();
        let mut accept_errors = RateLimitedWarning::default();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.changed() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    x
                }
                Err(e) => {
                    let pause = match AcceptError::classify(&e) {
                        AcceptError::Exhausted => {
                            let pause = backoff;
                            backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                            pause
                        }
                        AcceptError::PeerGone => Duration::ZERO,
                        AcceptError::Other => ACCEPT_BACKOFF_MIN,
                    };
                    if let Some(suppressed) = accepted_warning(&mut accept_errors) {
                        tracing::warn!(%local_addr, error = %e, pause_ms = pause.as_millis() as u64,
                            similar_since_last_warning = suppressed, "accept failed; backing off");
                    }
                    if !pause.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stopped.changed() => break,
                        }
                    }
                    continue;
                }
            };
            let slot = match slots.acquire(peer.ip()) {
                Ok((slot, evicted)) => {
                    if let Some(victim) = evicted
                        && let Some(suppressed) = accepted_warning(&mut evictions)
                    {
                        tracing::warn!(%local_addr, %peer, from = %victim,
                            limit = slots.max_total, evicted_since_last_warning = suppressed,
                            "at the connection limit: closed the oldest connection of the \
                             address holding the most to let a lighter one in");
                    }
                    slot
                }
                Err(over) => {
                    // Dropping the socket closes it: no TLS, no task, no buffer.
                    drop(tcp);
                    if let Some(suppressed) = accepted_warning(&mut rejected) {
                        tracing::warn!(%local_addr, %peer, cap = over.cap(),
                            limit = over.limit(), rejected_since_last_warning = suppressed,
                            "connection over the limit closed");
                    }
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(serve_connection(
                tcp,
                peer,
                slot,
                acceptor.clone(),
                router.clone(),
                limits.clone(),
            ));
        }
    });
    Ok(ServeHandle {
        local_addr,
        stop,
        task,
        slots,
    })
}

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning of a kind per this interval (floods must not flood the log too).
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

enum AcceptError {
    /// Out of descriptors or memory: retrying at once fails again, and the listener stays
    /// readable, so the loop would spin.
    Exhausted,
    /// The peer went away between the handshake and `accept`: nothing to wait for.
    PeerGone,
    Other,
}

impl AcceptError {
    fn classify(e: &std::io::Error) -> AcceptError {
        match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                AcceptError::Exhausted
            }
            Some(libc::ECONNABORTED | libc::ECONNRESET | libc::EPROTO | libc::EINTR) => {
                AcceptError::PeerGone
            }
            _ => AcceptError::Other,
        }
    }
}

/// Counts events and says when to log one: `Some(events suppressed since the last warning)`.
#[derive(Default)]
struct RateLimitedWarning {
    last: Option<Instant>,
    suppressed: u64,
}

fn accepted_warning(w: &mut RateLimitedWarning) -> Option<u64> {
    let now = Instant::now();
    match w.last {
        Some(t) if now.duration_since(t) < WARNING_INTERVAL => {
            w.suppressed += 1;
            None
        }
        _ => {
            w.last = Some(now);
            Some(std::mem::take(&mut w.suppressed))
        }
    }
}

/// Open connections, in total and per source address.
struct Slots {
    state: Mutex<SlotCounts>,
    max_total: usize,
    max_per_address: usize,
}

#[derive(Default)]
struct SlotCounts {
    total: usize,
    per_address: HashMap<IpAddr, AddressSlots>,
    next_id: u64,
}

/// One address's open connections, by accept sequence number (lowest: oldest).
#[derive(Default)]
struct AddressSlots {
    conns: std::collections::BTreeMap<u64, Arc<Eviction>>,
    /// How many of `conns` were told to go and have not closed yet.
    told: usize,
}

impl AddressSlots {
    fn live(&self) -> usize {
        self.conns.len() - self.told
    }
}

/// Tells one connection to close to make room for another ([`Slots::acquire`]).
#[derive(Default)]
struct Eviction {
    notify: tokio::sync::Notify,
    /// Already told: an evicted connection is never chosen twice.
    told: std::sync::atomic::AtomicBool,
}

impl Eviction {
    fn evict(&self) {
        self.told.store(true, Ordering::Relaxed);
        // `notify_one` keeps a permit when nobody waits yet (still in `accept` or the
        // handshake's first poll), so the eviction is never lost.
        self.notify.notify_one();
    }

    /// Resolves once this connection has been evicted.
    async fn evicted(&self) {
        self.notify.notified().await;
    }
}

/// How far past the total cap evictions in progress may take the count (each evicted
/// connection closes within a poll of its task; this bounds what a stuck one can cost).
fn eviction_headroom(max_total: usize) -> usize {
    (max_total / 16).max(1)
}

/// Which cap a connection hit.
#[derive(Debug)]
enum OverLimit {
    Total(usize),
    PerAddress(usize),
}

impl OverLimit {
    fn cap(&self) -> &'static str {
        match self {
            OverLimit::Total(_) => "total",
            OverLimit::PerAddress(_) => "per_address",
        }
    }
    fn limit(&self) -> usize {
        match self {
            OverLimit::Total(n) | OverLimit::PerAddress(n) => *n,
        }
    }
}

/// The key a peer is counted under: its IPv4 address, or its IPv6 /64 (one host usually
/// owns a whole /64, so counting single IPv6 addresses would cap nothing).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotCounts> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a connection from `ip`, and the address a connection was evicted from
    /// to make room for it, if one was.
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<(Slot, Option<IpAddr>), OverLimit> {
        let key = address_key(ip);
        let mut s = self.lock();
        let mine = s.per_address.get(&key).map_or(0, |c| c.conns.len());
        if mine >= self.max_per_address {
            return Err(OverLimit::PerAddress(self.max_per_address));
        }
        let mut evicted_from = None;
        if s.total >= self.max_total {
            if s.total >= self.max_total + eviction_headroom(self.max_total) {
                return Err(OverLimit::Total(self.max_total));
            }
            // The heaviest address, counting only connections not already told to go.
            let heaviest = s
                .per_address
                .iter()
                .map(|(k, c)| (*k, c.live()))
                .max_by_key(|(_, n)| *n);
            match heaviest {
                // Let the newcomer in only when it stays lighter than the heaviest address
                // after its arrival, so two equally heavy addresses never evict each other.
                Some((victim_key, n)) if mine + 1 < n => {
                    let Some(c) = s.per_address.get_mut(&victim_key) else {
                        return Err(OverLimit::Total(self.max_total));
                    };
                    // Evictions go oldest first, so the told ones lead the map.
                    let Some(victim) = c
                        .conns
                        .values()
                        .find(|e| !e.told.load(Ordering::Relaxed))
                        .cloned()
                    else {
                        return Err(OverLimit::Total(self.max_total));
                    };
                    victim.evict();
                    c.told += 1;
                    evicted_from = Some(victim_key);
                }
                _ => return Err(OverLimit::Total(self.max_total)),
            }
        }
        let id = s.next_id;
        s.next_id += 1;
        let eviction = Arc::new(Eviction::default());
        s.per_address
            .entry(key)
            .or_default()
            .conns
            .insert(id, eviction.clone());
        s.total += 1;
        Ok((
            Slot {
                slots: self.clone(),
                key,
                id,
                eviction,
            },
            evicted_from,
        ))
    }
}

/// One connection's place under the caps; released when the connection's I/O is dropped.
struct Slot {
    slots: Arc<Slots>,
    key: IpAddr,
    id: u64,
    eviction: Arc<Eviction>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock();
        s.total = s.total.saturating_sub(1);
        if let Some(c) = s.per_address.get_mut(&self.key) {
            if c.conns.remove(&self.id).is_some() && self.eviction.told.load(Ordering::Relaxed) {
                c.told = c.told.saturating_sub(1);
            }
            if c.conns.is_empty() {
                s.per_address.remove(&self.key);
            }
        }
    }
}

/// What a connection is doing, for the header-read and idle timeouts. Times are
/// milliseconds since the connection was accepted.
struct Activity {
    start: Instant,
    in_flight: AtomicU32,
    last_io_ms: AtomicU64,
    /// When the head of the next request began arriving ([`NO_HEAD`]: not waiting for one
    /// that has begun).
    head_since_ms: AtomicU64,
}

const NO_HEAD: u64 = u64::MAX;

enum Verdict {
    /// Look again at this instant.
    Fine(Instant),
    HeaderTimeout,
    Idle,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            in_flight: AtomicU32::new(0),
            last_io_ms: AtomicU64::new(0),
            // The first request is due at once: the header timeout runs from the accept.
            head_since_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_since_ms.compare_exchange(
                NO_HEAD,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn on_write(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn check(&self, limits: &ServeLimits) -> Verdict {
        let now = self.now_ms();
        let at = |ms: u64| self.start + Duration::from_millis(ms);
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::Fine(at(now) + limits.idle_timeout);
        }
        let header_ms = limits.header_read_timeout.as_millis() as u64;
        let head = self.head_since_ms.load(Ordering::Relaxed);
        if head != NO_HEAD {
            return if now.saturating_sub(head) >= header_ms {
                Verdict::HeaderTimeout
            } else {
                Verdict::Fine(at(head + header_ms))
            };
        }
        let idle_ms = limits.idle_timeout.as_millis() as u64;
        let last = self.last_io_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= idle_ms {
            Verdict::Idle
        } else {
            Verdict::Fine(at(last + idle_ms))
        }
    }
}

/// A request in flight, from its head until its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.on_write();
    }
}

/// A response body that holds its request's [`InFlight`] until hyper drops it.
struct TrackedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = <axum::body::Body as HttpBody>::Data;
    type Error = <axum::body::Body as HttpBody>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's decrypted byte stream, recording activity; it owns the connection's
/// [`Slot`], so an upgraded connection keeps counting until it closes.
struct TrackedIo<S> {
    inner: S,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.on_read();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    slot: Slot,
    acceptor: TlsAcceptor,
    router: axum::Router,
    limits: Arc<ServeLimits>,
) {
    let eviction = slot.eviction.clone();
    tokio::select! {
        _ = serve_tls(tcp, peer, slot, acceptor, router, limits) => {}
        _ = eviction.evicted() => {
            tracing::debug!(%peer, "connection closed to make room for a lighter address");
        }
    }
}

async fn serve_tls(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    slot: Slot,
    acceptor: TlsAcceptor,
    router: axum::Router,
    limits: Arc<ServeLimits>,
) {
    let tls = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let peer_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| PeerCertificate {
            serial: crate::der::certificate_serial(der).unwrap_or_default(),
        });
    let activity = Arc::new(Activity::new());
    let io = TrackedIo {
        inner: tls,
        activity: activity.clone(),
        _slot: slot,
    };
    let requests = activity.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let in_flight = requests.request_started();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            if let Some(cert) = &peer_cert {
                req.extensions_mut().insert(cert.clone());
            }
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(axum::body::Body::new)).await?;
                Ok::<_, std::convert::Infallible>(resp.map(|inner| TrackedBody {
                    inner,
                    _in_flight: in_flight,
                }))
            }
        });
    let builder = {
        let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // hyper's own header timer needs a hyper timer and would also cut idle keep-alive
        // connections at the header timeout; the watch below does both jobs instead.
        b.http1().header_read_timeout(None);
        b.http1_only()
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut next_check = tokio::time::Instant::now() + limits.header_read_timeout;
    let mut closing = false;
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = tokio::time::sleep_until(next_check) => {}
        }
        if closing {
            tracing::debug!(%peer, "connection did not close after a graceful shutdown");
            return;
        }
        match activity.check(&limits) {
            Verdict::Fine(at) => next_check = at.into(),
            Verdict::HeaderTimeout => {
                tracing::debug!(%peer, "no complete request head within the header read timeout");
                return;
            }
            Verdict::Idle => {
                tracing::debug!(%peer, "closing an idle connection");
                conn.as_mut().graceful_shutdown();
                closing = true;
                next_check = tokio::time::Instant::now() + limits.header_read_timeout;
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(max_total: usize, max_per_address: usize) -> Arc<Slots> {
        Arc::new(Slots {
            state: Mutex::new(SlotCounts::default()),
            max_total,
            max_per_address,
        })
    }

    #[test]
    fn caps_count_per_address_and_in_total_and_release_on_drop() {
        let slots = slots(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let (a1, _) = slots.acquire(a).unwrap();
        let _a2 = slots.acquire(a).unwrap();
        assert!(matches!(slots.acquire(a), Err(OverLimit::PerAddress(2))));
        let _b1 = slots.acquire(b).unwrap();
        // b would hold as many as a after its arrival: no eviction, refused.
        assert!(matches!(slots.acquire(b), Err(OverLimit::Total(3))));
        drop(a1);
        let _a3 = slots.acquire(a).unwrap();
        assert_eq!(slots.lock().total, 3);
    }

    #[test]
    fn at_the_total_cap_a_lighter_address_evicts_the_oldest_of_the_heaviest() {
        let slots = slots(4, 4);
        let flood: IpAddr = "192.0.2.1".parse().unwrap();
        let cli: IpAddr = "192.0.2.9".parse().unwrap();
        let held: Vec<Slot> = (0..4).map(|_| slots.acquire(flood).unwrap().0).collect();
        let (c1, evicted) = slots.acquire(cli).unwrap();
        assert_eq!(evicted, Some(flood));
        assert!(
            held[0].eviction.told.load(Ordering::Relaxed),
            "the oldest goes"
        );
        assert!(!held[1].eviction.told.load(Ordering::Relaxed));
        // Until the evicted one closes the count is one over the cap, within the headroom.
        assert_eq!(slots.lock().total, 5);
        assert!(matches!(slots.acquire(cli), Err(OverLimit::Total(4))));
        let mut held = held.into_iter();
        drop(held.next());
        // The flood (3 live) still outweighs the CLI (1 -> 2): the next one gets in too.
        let (_c2, evicted) = slots.acquire(cli).unwrap();
        assert_eq!(evicted, Some(flood));
        drop(held.next());
        // Now 2 against 2 (+1): no eviction; the flood itself never evicts a lighter peer.
        assert!(matches!(slots.acquire(cli), Err(OverLimit::Total(4))));
        assert!(matches!(slots.acquire(flood), Err(OverLimit::Total(4))));
        drop(c1);
        assert_eq!(slots.lock().total, 3);
    }

    #[tokio::test]
    async fn an_eviction_told_before_anyone_waits_is_not_lost() {
        let e = Eviction::default();
        e.evict();
        tokio::time::timeout(Duration::from_secs(1), e.evicted())
            .await
            .expect("the permit was kept");
    }

    #[test]
    fn ipv6_peers_count_per_64_and_mapped_ipv4_as_ipv4() {
        let x: IpAddr = "2001:db8:1:2::5".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::5".parse().unwrap();
        assert_eq!(address_key(x), address_key(y));
        assert_ne!(address_key(x), address_key(z));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn warnings_are_rate_limited_and_count_what_they_skipped() {
        let mut w = RateLimitedWarning::default();
        assert_eq!(accepted_warning(&mut w), Some(0));
        for _ in 0..5 {
            assert_eq!(accepted_warning(&mut w), None);
        }
        w.last = Some(Instant::now() - WARNING_INTERVAL);
        assert_eq!(accepted_warning(&mut w), Some(5));
    }
}
