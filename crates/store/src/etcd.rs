//! The etcd backend: the store trait mapped natively onto the etcd v3 API (txn with
//! mod-revision compares, prefix ranges, watches from a revision, leases).
//!
//! Failover: one client per endpoint and a preferred member; a failure that points at the
//! member (connection refused, no leader, timeout) moves the preference to the next one.
//! Requests that certainly did not reach a member are retried there; reads, watches and
//! lease keep-alives are retried after any such failure; a write whose outcome is unknown
//! is reported as [`StoreError::Unavailable`] (the caller re-reads; CAS makes retries safe).
//!
//! The gRPC client underneath is our own ([`client`], on the generated stubs of [`proto`]):
//! a plain channel per member, so that failover stays here, and no `protoc` at build time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tonic::Code;

mod client;
mod proto;

use client::{ChannelSettings, MemberClient, RpcError, WatchStream as EtcdWatchStream};
use proto::etcdserverpb::{
    CompactionRequest, Compare as EtcdCompare, DeleteRangeRequest, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
    WatchCreateRequest, WatchResponse, compare, request_op,
};
use proto::mvccpb;

use crate::txn_rules::{validate_lease_ttl, validate_txn, validate_watch_start};
use crate::watch_stream::{WatchSender, watch_channel};
use crate::{
    BoxFuture, Compare, KeyValue, LeaseId, Op, Revision, Store, StoreError, TxnOutcome, WatchEvent,
    WatchStream, prefix_range_end,
};

/// Keys fetched per range request while listing (one consistent revision across pages).
const LIST_PAGE_KEYS: i64 = 1000;

/// How the etcd client connects and how long it keeps trying.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Time allowed to open a connection to one endpoint, and for `connect` to find a
    /// working member.
    pub connect_timeout: Duration,
    /// Time allowed for one request (not for a watch stream as a whole).
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive ping interval; a member that stops answering is dropped after
    /// `keep_alive_interval + request_timeout`.
    pub keep_alive_interval: Duration,
    /// How long a watch keeps reconnecting (to any member) before ending with an error.
    pub watch_retry_for: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(5),
            watch_retry_for: Duration::from_secs(30),
        }
    }
}

/// A store backed by an etcd v3 cluster. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<EtcdInner>,
}

struct EtcdInner {
    /// One client per endpoint, in the order given.
    members: Vec<Member>,
    /// Index of the member requests go to first.
    preferred: AtomicUsize,
    options: EtcdOptions,
}

struct Member {
    endpoint: String,
    client: MemberClient,
}

/// What one etcd member says about itself and its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdMemberStatus {
    /// The member's own ID.
    pub member_id: u64,
    /// The member it follows as leader; `None` while it knows of no leader.
    pub leader: Option<u64>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints())
            .finish_non_exhaustive()
    }
}

/// What a failed request tells about retrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The request never reached a member able to apply it: safe to send elsewhere.
    NotApplied,
    /// The member failed while the request was in flight: it may or may not have applied.
    Unknown,
    /// An answer about the request itself (invalid, not found...): retrying won't help.
    Final,
}

fn classify(e: &RpcError) -> Failure {
    if is_lease_not_found(e) || is_compacted(e) {
        return Failure::Final;
    }
    match e {
        RpcError::Status(status) => {
            let message = status.message();
            match status.code() {
                // Connection refused (the transport's message) or refused by a member that
                // has no leader: nothing was applied.
                Code::Unavailable
                    if message.contains("tcp connect error")
                        || message.contains("no leader")
                        || message.contains("not capable") =>
                {
                    Failure::NotApplied
                }
                Code::Unavailable
                | Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::Internal => Failure::Unknown,
                _ => Failure::Final,
            }
        }
        RpcError::Stream(_) => Failure::Unknown,
        RpcError::InvalidArgs(_) | RpcError::LeaseNotFound => Failure::Final,
    }
}

/// Map a client error to a store error.
fn map_err(e: RpcError) -> StoreError {
    match e {
        RpcError::Status(status) => {
            let message = status.message();
            match status.code() {
                Code::InvalidArgument => StoreError::Invalid(format!("etcd: {message}")),
                Code::OutOfRange if message.contains("future revision") => {
                    StoreError::Invalid(format!("etcd: {message}"))
                }
                _ => StoreError::Unavailable(format!("etcd: {status}")),
            }
        }
        RpcError::InvalidArgs(m) => StoreError::Invalid(format!("etcd: {m}")),
        other => StoreError::Unavailable(format!("etcd: {other}")),
    }
}

fn is_lease_not_found(e: &RpcError) -> bool {
    match e {
        RpcError::Status(status) => {
            status.code() == Code::NotFound && status.message().contains("lease not found")
        }
        RpcError::LeaseNotFound => true,
        _ => false,
    }
}

fn is_compacted(e: &RpcError) -> bool {
    matches!(e, RpcError::Status(s) if s.code() == Code::OutOfRange && s.message().contains("compacted"))
}

fn key_string(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        StoreError::Corrupt(format!(
            "etcd key is not UTF-8: {:?}",
            String::from_utf8_lossy(bytes)
        ))
    })
}

fn kv_from(kv: mvccpb::KeyValue) -> Result<KeyValue, StoreError> {
    Ok(KeyValue {
        key: key_string(&kv.key)?,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        lease: (kv.lease != 0).then_some(LeaseId(kv.lease)),
    })
}

fn event_from(event: mvccpb::Event) -> Result<WatchEvent, StoreError> {
    let kind = mvccpb::event::EventType::try_from(event.r#type).map_err(|_| {
        StoreError::Corrupt(format!("etcd watch event of unknown type {}", event.r#type))
    })?;
    let kv = event
        .kv
        .ok_or_else(|| StoreError::Corrupt("etcd watch event without a key".to_string()))?;
    match kind {
        mvccpb::event::EventType::Put => Ok(WatchEvent::Put(kv_from(kv)?)),
        mvccpb::event::EventType::Delete => Ok(WatchEvent::Delete {
            key: key_string(&kv.key)?,
            revision: kv.mod_revision,
        }),
    }
}

fn header_revision(header: Option<&ResponseHeader>) -> Result<Revision, StoreError> {
    header
        .map(|h| h.revision)
        .ok_or_else(|| StoreError::Corrupt("etcd response without a header".to_string()))
}

/// `[key, range_end)` covering every key with `prefix` (etcd's "\0" means "no end").
fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let start = if prefix.is_empty() {
        vec![0]
    } else {
        prefix.as_bytes().to_vec()
    };
    let end = prefix_range_end(prefix.as_bytes()).unwrap_or_else(|| vec![0]);
    (start, end)
}

impl EtcdStore {
    /// Connect to an etcd cluster through any of `endpoints` (`http://host:port` or
    /// `host:port`), failing over between them. Fails if no member answers within
    /// `options.connect_timeout`.
    pub async fn connect(
        endpoints: &[String],
        options: EtcdOptions,
    ) -> Result<EtcdStore, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::Invalid("no etcd endpoints given".to_string()));
        }
        let settings = ChannelSettings {
            connect_timeout: Some(options.connect_timeout),
            request_timeout: Some(options.request_timeout),
            keep_alive: Some((options.keep_alive_interval, options.request_timeout)),
            // A member cut off from the quorum refuses requests instead of serving stale
            // reads or hanging; the store then tries another member.
            require_leader: true,
        };
        let mut members = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            // Connections are made lazily: a member that is down now is not an error.
            let client = MemberClient::connect_lazy(endpoint, &settings).map_err(map_err)?;
            members.push(Member {
                endpoint: endpoint.clone(),
                client,
            });
        }
        let store = EtcdStore {
            inner: Arc::new(EtcdInner {
                members,
                preferred: AtomicUsize::new(0),
                options,
            }),
        };
        let deadline = Instant::now() + store.inner.options.connect_timeout;
        loop {
            match store.revision_once().await {
                Ok(revision) => {
                    tracing::info!(endpoints = ?store.endpoints(), revision, "connected to etcd");
                    return Ok(store);
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "etcd not reachable yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "no etcd member answered at {}: {e}",
                        store.endpoints().join(",")
                    )));
                }
            }
        }
    }

    /// The endpoints this store was connected with.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner
            .members
            .iter()
            .map(|m| m.endpoint.clone())
            .collect()
    }

    /// Ask the one member at `endpoint` for its status, without failover and without
    /// requiring a leader (so it also answers during an election). For tools and tests
    /// that watch a cluster form or fail over; `timeout` bounds connecting and the request.
    pub async fn member_status(
        endpoint: &str,
        timeout: Duration,
    ) -> Result<EtcdMemberStatus, StoreError> {
        let settings = ChannelSettings {
            connect_timeout: Some(timeout),
            request_timeout: Some(timeout),
            keep_alive: None,
            require_leader: false,
        };
        let client = MemberClient::connect_lazy(endpoint, &settings).map_err(map_err)?;
        let status = tokio::time::timeout(timeout, client.status())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!("etcd member {endpoint} did not answer in time"))
            })?
            .map_err(map_err)?;
        let header = status
            .header
            .ok_or_else(|| StoreError::Corrupt("etcd response without a header".to_string()))?;
        Ok(EtcdMemberStatus {
            member_id: header.member_id,
            leader: (status.leader != 0).then_some(status.leader),
        })
    }

    /// Drop the history of revisions before `before` (etcd compaction, physical). Watches
    /// from earlier revisions then get [`StoreError::Compacted`]. Production clusters
    /// should rather run etcd with `--auto-compaction-retention`.
    pub async fn compact(&self, before: Revision) -> Result<(), StoreError> {
        let result = self
            .call(true, |client| async move {
                client
                    .compact(CompactionRequest {
                        revision: before,
                        physical: true,
                    })
                    .await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already compacted at or past it: nothing to do.
            Err(e) if is_compacted(&e) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Send a request to the preferred member, failing over to the others. `retry_unknown`
    /// says whether the request may be repeated when its outcome is unknown (reads, watches,
    /// keep-alives: yes; writes: no).
    async fn call<T, F, Fut>(&self, retry_unknown: bool, mut f: F) -> Result<T, RpcError>
    where
        F: FnMut(MemberClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, RpcError>>,
    {
        let members = &self.inner.members;
        let started = Instant::now();
        let budget = self.inner.options.request_timeout;
        let mut attempt = 0usize;
        loop {
            let index = self.inner.preferred.load(Ordering::Acquire) % members.len();
            let member = &members[index];
            let error = match f(member.client.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let failure = classify(&error);
            if failure == Failure::Final {
                return Err(error);
            }
            attempt += 1;
            if members.len() > 1 {
                let next = (index + 1) % members.len();
                // Only the first caller to see this member fail moves the preference.
                if self
                    .inner
                    .preferred
                    .compare_exchange(index, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    tracing::warn!(
                        failed = member.endpoint,
                        next = members[next].endpoint,
                        error = %error,
                        "etcd member failed; switching"
                    );
                }
            }
            let retry = failure == Failure::NotApplied || retry_unknown;
            if !retry || started.elapsed() >= budget {
                return Err(error);
            }
            // Try every member once right away, then back off between rounds.
            if attempt.is_multiple_of(members.len()) {
                let round = (attempt / members.len()) as u64;
                tokio::time::sleep(Duration::from_millis(100 * round.min(10))).await;
            }
        }
    }

    async fn revision_once(&self) -> Result<Revision, StoreError> {
        let resp = self
            .call(true, |client| async move {
                client
                    .range(RangeRequest {
                        // One key that never exists: only the header's revision is wanted.
                        key: vec![0],
                        count_only: true,
                        ..RangeRequest::default()
                    })
                    .await
            })
            .await
            .map_err(map_err)?;
        header_revision(resp.header.as_ref())
    }

    async fn get_impl(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        if key.is_empty() {
            return Err(StoreError::Invalid("empty key".to_string()));
        }
        let resp = self
            .call(true, |client| async move {
                client
                    .range(RangeRequest {
                        key: key.as_bytes().to_vec(),
                        ..RangeRequest::default()
                    })
                    .await
            })
            .await
            .map_err(map_err)?;
        resp.kvs.into_iter().next().map(kv_from).transpose()
    }

    async fn list_impl(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        // A compaction between two pages invalidates the snapshot: list again.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.list_once(prefix).await {
                Err(ListError::CompactedMidway) if attempts < 3 => continue,
                Err(ListError::CompactedMidway) => {
                    return Err(StoreError::Unavailable(
                        "etcd kept compacting while listing; try again".to_string(),
                    ));
                }
                Err(ListError::Store(e)) => return Err(e),
                Ok(listed) => return Ok(listed),
            }
        }
    }

    async fn list_once(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), ListError> {
        let (mut start, end) = prefix_range(prefix);
        let mut out = Vec::new();
        let mut at_revision: Option<Revision> = None;
        loop {
            let request = RangeRequest {
                key: start.clone(),
                range_end: end.clone(),
                limit: LIST_PAGE_KEYS,
                // 0 (the first page): the latest revision.
                revision: at_revision.unwrap_or(0),
                ..RangeRequest::default()
            };
            let resp = self
                .call(true, |client| {
                    let request = request.clone();
                    async move { client.range(request).await }
                })
                .await
                .map_err(|e| {
                    if is_compacted(&e) {
                        ListError::CompactedMidway
                    } else {
                        ListError::Store(map_err(e))
                    }
                })?;
            let revision = header_revision(resp.header.as_ref()).map_err(ListError::Store)?;
            let rev = *at_revision.get_or_insert(revision);
            let next_start = match resp.kvs.last() {
                Some(last) if resp.more => {
                    let mut next = last.key.clone();
                    next.push(0);
                    Some(next)
                }
                _ => None,
            };
            for item in resp.kvs {
                out.push(kv_from(item).map_err(ListError::Store)?);
            }
            match next_start {
                Some(next) => start = next,
                None => return Ok((out, rev)),
            }
        }
    }

    async fn txn_impl(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> Result<TxnOutcome, StoreError> {
        validate_txn(&compares, &ops)?;
        let first_lease = ops.iter().find_map(|op| match op {
            Op::PutWithLease { lease, .. } => Some(*lease),
            _ => None,
        });
        let txn = txn_request(compares, ops);
        let resp = self
            .call(false, |client| {
                let txn = txn.clone();
                async move { client.txn(txn).await }
            })
            .await
            .map_err(|e| match first_lease {
                Some(lease) if is_lease_not_found(&e) => StoreError::LeaseNotFound(lease),
                _ => map_err(e),
            })?;
        Ok(TxnOutcome {
            succeeded: resp.succeeded,
            revision: header_revision(resp.header.as_ref())?,
        })
    }

    /// Open an etcd watch for events after `after_revision` on a working member, and wait
    /// until etcd confirms it.
    async fn open_watch(
        &self,
        prefix: &str,
        after_revision: Revision,
    ) -> Result<EtcdWatchStream, StoreError> {
        let (start, end) = prefix_range(prefix);
        let timeout = self.inner.options.request_timeout;
        let opened = self
            .call(true, |client| {
                let create = WatchCreateRequest {
                    key: start.clone(),
                    range_end: end.clone(),
                    start_revision: after_revision + 1,
                };
                async move {
                    let mut stream = client.watch(create).await?;
                    let first = tokio::time::timeout(timeout, stream.message())
                        .await
                        .map_err(|_| {
                            RpcError::Stream("etcd did not confirm the watch in time".into())
                        })??;
                    Ok((stream, first))
                }
            })
            .await
            .map_err(map_err)?;
        match opened {
            (stream, Some(resp)) => {
                check_watch_response(&resp, after_revision)?;
                if !resp.created {
                    return Err(StoreError::Unavailable(
                        "etcd answered a watch request without creating it".to_string(),
                    ));
                }
                Ok(stream)
            }
            (_, None) => Err(StoreError::Unavailable(
                "etcd closed the watch before creating it".to_string(),
            )),
        }
    }

    async fn watch_impl(
        &self,
        prefix: &str,
        after_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        validate_watch_start(after_revision)?;
        // The first watch is opened here so that an unreachable cluster is reported now.
        let first = self.open_watch(prefix, after_revision).await?;
        let (tx, stream) = watch_channel();
        let store = self.clone();
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            let result = store.follow(prefix, after_revision, first, &tx).await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(stream)
    }

    /// Forward events to the consumer; when the stream to etcd breaks (member down, leader
    /// lost), reopen it from the last delivered revision on any member.
    async fn follow(
        &self,
        prefix: String,
        mut delivered: Revision,
        first: EtcdWatchStream,
        tx: &WatchSender,
    ) -> Result<(), StoreError> {
        let retry_for = self.inner.options.watch_retry_for;
        let mut current = Some(first);
        let mut failing_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut stream = match current.take() {
                Some(stream) => stream,
                None => match self.open_watch(&prefix, delivered).await {
                    Ok(stream) => {
                        tracing::info!(prefix, delivered, "etcd watch re-established");
                        failing_since = None;
                        backoff = Duration::from_millis(100);
                        stream
                    }
                    Err(e @ StoreError::Compacted { .. }) => return Err(e),
                    Err(e) => {
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= retry_for {
                            return Err(e);
                        }
                        tracing::debug!(prefix, error = %e, "reopening etcd watch failed; retrying");
                        tokio::select! {
                            () = tx.closed() => return Ok(()),
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                },
            };
            loop {
                let message = tokio::select! {
                    () = tx.closed() => return Ok(()),
                    message = stream.message() => message,
                };
                match message {
                    Ok(Some(resp)) => {
                        match check_watch_response(&resp, delivered) {
                            Ok(()) => {}
                            Err(e @ StoreError::Compacted { .. }) => return Err(e),
                            Err(e) => {
                                tracing::warn!(prefix, error = %e, "etcd watch ended; reopening");
                                break;
                            }
                        }
                        let mut last = delivered;
                        for event in resp.events {
                            let event = event_from(event)?;
                            let revision = event.revision();
                            if revision <= delivered {
                                continue;
                            }
                            if tx.send(Ok(event)).await.is_err() {
                                return Ok(());
                            }
                            last = last.max(revision);
                        }
                        // etcd never splits one revision across responses (no fragmenting).
                        delivered = last;
                    }
                    Ok(None) => {
                        tracing::warn!(
                            prefix,
                            delivered,
                            "etcd closed the watch stream; reopening"
                        );
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(prefix, delivered, error = %e, "etcd watch stream failed; reopening");
                        break;
                    }
                }
            }
            // The member behind the broken stream is probably gone: prefer the next one.
            let members = self.inner.members.len();
            let index = self.inner.preferred.load(Ordering::Acquire);
            let _ = self.inner.preferred.compare_exchange(
                index,
                (index + 1) % members,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            failing_since.get_or_insert_with(Instant::now);
        }
    }

    async fn grant_impl(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        validate_lease_ttl(ttl)?;
        // etcd leases are in whole seconds; round up so a lease never lives less than asked.
        let ttl_secs = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .map_err(|_| StoreError::Invalid(format!("lease TTL {ttl:?} is too large")))?;
        // Repeating a grant whose outcome is unknown at worst leaves an unused lease that
        // expires by itself.
        let resp = self
            .call(true, |client| async move {
                client
                    .lease_grant(LeaseGrantRequest {
                        ttl: ttl_secs,
                        // 0: etcd picks the ID.
                        id: 0,
                    })
                    .await
            })
            .await
            .map_err(map_err)?;
        if !resp.error.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "etcd refused the lease: {}",
                resp.error
            )));
        }
        Ok(LeaseId(resp.id))
    }

    async fn keep_alive_impl(&self, lease: LeaseId) -> Result<(), StoreError> {
        // One keep-alive on a fresh stream and its answer; a TTL of 0 in the answer means
        // the lease is gone.
        let timeout = self.inner.options.request_timeout;
        let result = self
            .call(true, |client| async move {
                client
                    .lease_keep_alive_once(lease.0, timeout)
                    .await
                    .map(|_| ())
            })
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_lease_not_found(&e) => Err(StoreError::LeaseNotFound(lease)),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn revoke_impl(&self, lease: LeaseId) -> Result<(), StoreError> {
        let result = self
            .call(false, |client| async move {
                client
                    .lease_revoke(LeaseRevokeRequest { id: lease.0 })
                    .await
                    .map(|_| ())
            })
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_lease_not_found(&e) => Err(StoreError::LeaseNotFound(lease)),
            Err(e) => Err(map_err(e)),
        }
    }
}

enum ListError {
    CompactedMidway,
    Store(StoreError),
}

/// Errors carried inside a watch response.
fn check_watch_response(resp: &WatchResponse, delivered: Revision) -> Result<(), StoreError> {
    if resp.compact_revision > 0 {
        return Err(StoreError::Compacted {
            requested: delivered + 1,
            oldest: resp.compact_revision,
        });
    }
    if resp.canceled {
        return Err(StoreError::Unavailable(format!(
            "etcd canceled the watch: {}",
            resp.cancel_reason
        )));
    }
    Ok(())
}

/// The etcd transaction for a validated store transaction: every compare must hold, then
/// every op is applied (no ops on failure).
fn txn_request(compares: Vec<Compare>, ops: Vec<Op>) -> TxnRequest {
    let compare = compares
        .into_iter()
        .map(|Compare::ModRevision { key, equals }| EtcdCompare {
            result: compare::CompareResult::Equal.into(),
            target: compare::CompareTarget::Mod.into(),
            key: key.into_bytes(),
            target_union: Some(compare::TargetUnion::ModRevision(equals)),
        })
        .collect();
    let put = |key: String, value: Vec<u8>, lease: i64| RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.into_bytes(),
            value,
            lease,
        })),
    };
    let delete = |key: Vec<u8>, range_end: Vec<u8>| RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest { key, range_end },
        )),
    };
    let success = ops
        .into_iter()
        .map(|op| match op {
            // Lease 0: no lease (a plain put also detaches the key from any lease).
            Op::Put { key, value } => put(key, value, 0),
            Op::PutWithLease { key, value, lease } => put(key, value, lease.0),
            // No range end: just this key.
            Op::Delete { key } => delete(key.into_bytes(), Vec::new()),
            Op::DeletePrefix { prefix } => {
                let (start, end) = prefix_range(&prefix);
                delete(start, end)
            }
        })
        .collect();
    TxnRequest { compare, success }
}

impl Store for EtcdStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>, StoreError>> {
        Box::pin(self.get_impl(key))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<(Vec<KeyValue>, Revision), StoreError>> {
        Box::pin(self.list_impl(prefix))
    }

    fn txn<'a>(
        &'a self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> BoxFuture<'a, Result<TxnOutcome, StoreError>> {
        Box::pin(self.txn_impl(compares, ops))
    }

    fn watch<'a>(
        &'a self,
        prefix: &'a str,
        after_revision: Revision,
    ) -> BoxFuture<'a, Result<WatchStream, StoreError>> {
        Box::pin(self.watch_impl(prefix, after_revision))
    }

    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>> {
        Box::pin(self.revision_once())
    }

    fn grant_lease(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId, StoreError>> {
        Box::pin(self.grant_impl(ttl))
    }

    fn keep_alive(&self, lease: LeaseId) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.keep_alive_impl(lease))
    }

    fn revoke_lease(&self, lease: LeaseId) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.revoke_impl(lease))
    }
}
