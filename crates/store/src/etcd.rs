//! The etcd backend: the store trait mapped natively onto the etcd v3 API (txn with
//! mod-revision compares, prefix ranges, watches from a revision, leases). The client
//! balances across every endpoint given; reads are retried on another member when one
//! fails, watches reconnect from the last delivered revision, writes are never retried
//! (their outcome is unknown after a failure; the caller re-reads).

use std::time::{Duration, Instant};

use etcd_client::{
    Client, CompactionOptions, Compare as EtcdCompare, CompareOp, ConnectOptions, DeleteOptions,
    Error as EtcdError, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use tonic::Code;

use crate::txn_rules::validate_txn;
use crate::watch_stream::{WatchSender, watch_channel};
use crate::{
    BoxFuture, Compare, KeyValue, LeaseId, Op, Revision, Store, StoreError, TxnOutcome, WatchEvent,
    WatchStream, prefix_range_end,
};

/// Keys fetched per range request while listing (one consistent revision across pages).
const LIST_PAGE_KEYS: i64 = 1000;
/// Attempts for a read before giving up (each on whichever member the balancer picks).
const READ_ATTEMPTS: u32 = 4;

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
    client: Client,
    endpoints: Vec<String>,
    options: EtcdOptions,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// Map an etcd client error to a store error.
fn map_err(e: EtcdError) -> StoreError {
    match e {
        EtcdError::GRpcStatus(status) => {
            let message = status.message();
            match status.code() {
                Code::InvalidArgument => StoreError::Invalid(format!("etcd: {message}")),
                Code::OutOfRange if message.contains("future revision") => {
                    StoreError::Invalid(format!("etcd: {message}"))
                }
                _ => StoreError::Unavailable(format!("etcd: {status}")),
            }
        }
        EtcdError::InvalidArgs(m) => StoreError::Invalid(format!("etcd: {m}")),
        other => StoreError::Unavailable(format!("etcd: {other}")),
    }
}

fn is_lease_not_found(e: &EtcdError) -> bool {
    match e {
        EtcdError::GRpcStatus(status) => {
            status.code() == Code::NotFound && status.message().contains("lease not found")
        }
        EtcdError::LeaseKeepAliveError(m) => m.contains("not found"),
        _ => false,
    }
}

fn is_compacted(e: &EtcdError) -> bool {
    matches!(e, EtcdError::GRpcStatus(s) if s.code() == Code::OutOfRange && s.message().contains("compacted"))
}

fn key_string(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        StoreError::Corrupt(format!(
            "etcd key is not UTF-8: {:?}",
            String::from_utf8_lossy(bytes)
        ))
    })
}

fn kv_from(kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    Ok(KeyValue {
        key: key_string(kv.key())?,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    })
}

fn event_from(event: &etcd_client::Event) -> Result<WatchEvent, StoreError> {
    let kv = event
        .kv()
        .ok_or_else(|| StoreError::Corrupt("etcd watch event without a key".to_string()))?;
    // A delete event carries a tombstone (version 0); a put always has version >= 1.
    // Reading it this way also avoids `Event::event_type`, which panics on unknown types.
    if kv.version() == 0 {
        Ok(WatchEvent::Delete {
            key: key_string(kv.key())?,
            revision: kv.mod_revision(),
        })
    } else {
        Ok(WatchEvent::Put(kv_from(kv)?))
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision, StoreError> {
    header
        .map(|h| h.revision())
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
        let connect_options = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(options.keep_alive_interval, options.request_timeout)
            .with_keep_alive_while_idle(true)
            // A member cut off from the quorum refuses requests instead of serving stale
            // reads or hanging; the client then tries another member.
            .with_require_leader(true);
        let client = Client::connect(endpoints, Some(connect_options))
            .await
            .map_err(map_err)?;
        let store = EtcdStore {
            client,
            endpoints: endpoints.to_vec(),
            options,
        };
        let deadline = Instant::now() + store.options.connect_timeout;
        loop {
            match store.revision_once().await {
                Ok(revision) => {
                    tracing::info!(endpoints = ?store.endpoints, revision, "connected to etcd");
                    return Ok(store);
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "etcd not reachable yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "no etcd member answered at {}: {e}",
                        store.endpoints.join(",")
                    )));
                }
            }
        }
    }

    /// The endpoints this store was connected with.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Drop the history of revisions before `before` (etcd compaction, physical). Watches
    /// from earlier revisions then get [`StoreError::Compacted`]. Production clusters
    /// should rather run etcd with `--auto-compaction-retention`.
    pub async fn compact(&self, before: Revision) -> Result<(), StoreError> {
        let mut kv = self.client.kv_client();
        match kv
            .compact(before, Some(CompactionOptions::new().with_physical()))
            .await
        {
            Ok(_) => Ok(()),
            // Already compacted at or past it: nothing to do.
            Err(e) if is_compacted(&e) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Run a read, retrying on failures (the balancer moves to another member).
    async fn read<T, F, Fut>(&self, mut f: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match f().await {
                Err(StoreError::Unavailable(m)) if attempt < READ_ATTEMPTS => {
                    tracing::debug!(attempt, error = %m, "etcd read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                other => return other,
            }
        }
    }

    async fn revision_once(&self) -> Result<Revision, StoreError> {
        let mut kv = self.client.kv_client();
        let resp = kv
            .get(vec![0u8], Some(GetOptions::new().with_count_only()))
            .await
            .map_err(map_err)?;
        header_revision(resp.header())
    }

    async fn get_once(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let mut kv = self.client.kv_client();
        let resp = kv.get(key, None).await.map_err(map_err)?;
        resp.kvs().first().map(kv_from).transpose()
    }

    async fn list_once(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        let (mut start, end) = prefix_range(prefix);
        let mut kv = self.client.kv_client();
        let mut out = Vec::new();
        let mut at_revision: Option<Revision> = None;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE_KEYS);
            if let Some(rev) = at_revision {
                options = options.with_revision(rev);
            }
            let resp = kv.get(start.clone(), Some(options)).await.map_err(|e| {
                if is_compacted(&e) {
                    // Compacted between two pages: the caller's retry lists again.
                    StoreError::Unavailable(format!("etcd compacted during a list: {e}"))
                } else {
                    map_err(e)
                }
            })?;
            let revision = header_revision(resp.header())?;
            let rev = *at_revision.get_or_insert(revision);
            for item in resp.kvs() {
                out.push(kv_from(item)?);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok((out, rev)),
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
        let etcd_compares: Vec<EtcdCompare> = compares
            .into_iter()
            .map(|Compare::ModRevision { key, equals }| {
                EtcdCompare::mod_revision(key, CompareOp::Equal, equals)
            })
            .collect();
        let etcd_ops: Vec<TxnOp> = ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value } => TxnOp::put(key, value, None),
                Op::PutWithLease { key, value, lease } => {
                    TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease.0)))
                }
                Op::Delete { key } => TxnOp::delete(key, None),
                Op::DeletePrefix { prefix } => {
                    let (start, end) = prefix_range(&prefix);
                    TxnOp::delete(start, Some(DeleteOptions::new().with_range(end)))
                }
            })
            .collect();
        let mut kv = self.client.kv_client();
        let resp = kv
            .txn(Txn::new().when(etcd_compares).and_then(etcd_ops))
            .await
            .map_err(|e| match first_lease {
                Some(lease) if is_lease_not_found(&e) => StoreError::LeaseNotFound(lease),
                _ => map_err(e),
            })?;
        Ok(TxnOutcome {
            succeeded: resp.succeeded(),
            revision: header_revision(resp.header())?,
        })
    }

    async fn watch_impl(
        &self,
        prefix: &str,
        after_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        // The first watch is opened here so that an unreachable cluster is reported now.
        let first = open_watch(&self.client, prefix, after_revision, &self.options).await?;
        let (tx, stream) = watch_channel();
        let client = self.client.clone();
        let prefix = prefix.to_string();
        let options = self.options.clone();
        tokio::spawn(async move {
            let result = follow(client, prefix, after_revision, first, &tx, options).await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(stream)
    }

    async fn grant_impl(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        if ttl.is_zero() {
            return Err(StoreError::Invalid(
                "lease TTL must be positive".to_string(),
            ));
        }
        // etcd leases are in whole seconds; round up so a lease never lives less than asked.
        let ttl_secs = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .map_err(|_| StoreError::Invalid(format!("lease TTL {ttl:?} is too large")))?;
        let mut lease = self.client.lease_client();
        let resp = lease.grant(ttl_secs, None).await.map_err(map_err)?;
        if !resp.error().is_empty() {
            return Err(StoreError::Unavailable(format!(
                "etcd refused the lease: {}",
                resp.error()
            )));
        }
        Ok(LeaseId(resp.id()))
    }

    async fn keep_alive_impl(&self, lease: LeaseId) -> Result<(), StoreError> {
        let mut client = self.client.lease_client();
        // etcd-client sends one keep-alive and waits for its answer; a TTL of 0 in the
        // answer means the lease is gone.
        match client.keep_alive(lease.0).await {
            Ok((_keeper, _responses)) => Ok(()),
            Err(e) if is_lease_not_found(&e) => Err(StoreError::LeaseNotFound(lease)),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn revoke_impl(&self, lease: LeaseId) -> Result<(), StoreError> {
        let mut client = self.client.lease_client();
        match client.revoke(lease.0).await {
            Ok(_) => Ok(()),
            Err(e) if is_lease_not_found(&e) => Err(StoreError::LeaseNotFound(lease)),
            Err(e) => Err(map_err(e)),
        }
    }
}

/// Open an etcd watch for events after `after_revision`, and wait until etcd confirms it.
async fn open_watch(
    client: &Client,
    prefix: &str,
    after_revision: Revision,
    options: &EtcdOptions,
) -> Result<etcd_client::WatchStream, StoreError> {
    let (start, end) = prefix_range(prefix);
    let watch_options = WatchOptions::new()
        .with_range(end)
        .with_start_revision(after_revision + 1);
    let mut watch_client = client.watch_client();
    let mut stream = watch_client
        .watch(start, Some(watch_options))
        .await
        .map_err(map_err)?;
    let first = tokio::time::timeout(options.request_timeout, stream.message())
        .await
        .map_err(|_| StoreError::Unavailable("etcd did not confirm the watch in time".to_string()))?
        .map_err(map_err)?;
    match first {
        Some(resp) => {
            check_watch_response(&resp, after_revision)?;
            if !resp.created() {
                return Err(StoreError::Unavailable(
                    "etcd answered a watch request without creating it".to_string(),
                ));
            }
            Ok(stream)
        }
        None => Err(StoreError::Unavailable(
            "etcd closed the watch before creating it".to_string(),
        )),
    }
}

/// Errors carried inside a watch response.
fn check_watch_response(
    resp: &etcd_client::WatchResponse,
    delivered: Revision,
) -> Result<(), StoreError> {
    if resp.compact_revision() > 0 {
        return Err(StoreError::Compacted {
            requested: delivered + 1,
            oldest: resp.compact_revision(),
        });
    }
    if resp.canceled() {
        return Err(StoreError::Unavailable(format!(
            "etcd canceled the watch: {}",
            resp.cancel_reason()
        )));
    }
    Ok(())
}

/// Forward events to the consumer; when the stream to etcd breaks (member down, leader
/// lost), reopen it from the last delivered revision on any member.
async fn follow(
    client: Client,
    prefix: String,
    mut delivered: Revision,
    first: etcd_client::WatchStream,
    tx: &WatchSender,
    options: EtcdOptions,
) -> Result<(), StoreError> {
    let mut current = Some(first);
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut stream = match current.take() {
            Some(stream) => stream,
            None => match open_watch(&client, &prefix, delivered, &options).await {
                Ok(stream) => {
                    tracing::info!(prefix, delivered, "etcd watch re-established");
                    failing_since = None;
                    backoff = Duration::from_millis(100);
                    stream
                }
                Err(e @ StoreError::Compacted { .. }) => return Err(e),
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= options.watch_retry_for {
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
                    for event in resp.events() {
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
                    tracing::warn!(prefix, delivered, "etcd closed the watch stream; reopening");
                    break;
                }
                Err(e) => {
                    tracing::warn!(prefix, delivered, error = %e, "etcd watch stream failed; reopening");
                    break;
                }
            }
        }
        failing_since.get_or_insert_with(Instant::now);
    }
}

impl Store for EtcdStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>, StoreError>> {
        Box::pin(async move {
            if key.is_empty() {
                return Err(StoreError::Invalid("empty key".to_string()));
            }
            self.read(|| self.get_once(key)).await
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<(Vec<KeyValue>, Revision), StoreError>> {
        Box::pin(self.read(move || self.list_once(prefix)))
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
        Box::pin(self.read(move || self.revision_once()))
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
