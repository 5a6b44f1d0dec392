//! The audit log: every request that changes something, and every refused one, appended to a
//! hash chain in the store ([`novacron_api_types::audit`] defines the chain).
//!
//! The [`record`] middleware wraps every API route. It gives each request an id (the
//! caller's `X-Request-Id` when it is a sane one, else a new one, answered in the same
//! header), lets the request run, and then appends what happened: who (from the token check),
//! which project (from the role gate), the route and path, the status, the source address.
//! Bodies, headers and tokens never enter a record. Reads are not recorded unless refused;
//! agents' own calls (heartbeats, status reports) are recorded only when refused, or the log
//! would be mostly heartbeats.
//!
//! One writer task per replica appends in batches: requests that finish together share one
//! store transaction, which writes their records and moves the head with a compare-and-swap
//! on it, so replicas never fork the chain. The request is answered once its record is
//! durable. Every [`CHECKPOINT_EVERY`] records (and at least every [`CHECKPOINT_PERIOD`] while
//! records arrive) the head is written as a checkpoint: a line in
//! `<data-dir>/audit-checkpoints.jsonl` and an `audit checkpoint` log line, for the operator
//! to keep elsewhere; `novacron audit verify --checkpoints FILE` checks the chain against them.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use novacron_api_types::audit::{
    AuditCheckpoint, AuditHead, AuditOutcome, AuditPage, AuditRecord, chain,
};
use novacron_store::{Compare, MAX_TXN_BYTES, MAX_TXN_OPS, Op, Revision, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Caller;
use crate::state::AppState;

/// Store prefix of the records (`<prefix><seq, 20 digits>`, so key order is chain order).
pub const RECORD_PREFIX: &str = "/novacron/audit/records/";
/// Store key of the chain's head.
pub const HEAD_KEY: &str = "/novacron/audit/head";
/// A checkpoint every this many records...
pub const CHECKPOINT_EVERY: u64 = 100;
/// ...and at least this often while records arrive.
pub const CHECKPOINT_PERIOD: Duration = Duration::from_secs(300);
/// The header carrying a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The file checkpoints are appended to, under the data dir.
pub const CHECKPOINT_FILE: &str = "audit-checkpoints.jsonl";

/// Records per store transaction (each is one op; the head is one more).
const BATCH: usize = 64;
const _: () = assert!(BATCH < MAX_TXN_OPS);

pub fn record_key(seq: u64) -> String {
    format!("{RECORD_PREFIX}{seq:020}")
}

/// The project a request acted in, put on the response by the role gate.
#[derive(Debug, Clone)]
pub struct AuditProject(pub String);

/// Put on a response by the role gate when it refused the request (its 404 for a project
/// the caller may not see counts as a refusal).
#[derive(Debug, Clone, Copy)]
pub struct AuditRefused;

/// Put on the answer to a login by its handler: the user name it was for.
#[derive(Debug, Clone)]
pub struct AuditLogin(pub String);

/// This replica's way into the chain.
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
}

struct Pending {
    record: AuditRecord,
    done: oneshot::Sender<Result<u64, String>>,
}

impl AuditLog {
    /// Starts the writer task; checkpoints go to `checkpoint_file` (and the log).
    pub fn start(store: Arc<dyn Store>, checkpoint_file: PathBuf) -> AuditLog {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(writer(store, rx, checkpoint_file));
        AuditLog { tx }
    }

    /// Appends `record` (its `seq`, `prev` and `hash` are set here); resolves once it is in
    /// the store, with its number.
    pub async fn append(&self, record: AuditRecord) -> Result<u64, String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { record, done })
            .await
            .map_err(|_| "the audit writer has stopped".to_string())?;
        wait.await
            .map_err(|_| "the audit writer has stopped".to_string())?
    }
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Pending>, checkpoint_file: PathBuf) {
    let mut head: Option<(AuditHead, Revision)> = None;
    let mut last_checkpoint = Instant::now();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut bytes = 0usize;
        while batch.len() < BATCH && bytes < MAX_TXN_BYTES / 4 {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.record.target.len() + p.record.action.len() + 512;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let drafts: Vec<AuditRecord> = batch.iter().map(|p| p.record.clone()).collect();
        let before = head.as_ref().map(|(h, _)| h.seq);
        match commit(store.as_ref(), &mut head, &drafts).await {
            Ok(first_seq) => {
                for (i, p) in batch.into_iter().enumerate() {
                    let _ = p.done.send(Ok(first_seq + i as u64));
                }
                if let Some((h, _)) = &head {
                    let crossed =
                        before.is_some_and(|b| b / CHECKPOINT_EVERY != h.seq / CHECKPOINT_EVERY);
                    if crossed || last_checkpoint.elapsed() >= CHECKPOINT_PERIOD {
                        checkpoint(&checkpoint_file, h);
                        last_checkpoint = Instant::now();
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "audit records could not be written");
                for p in batch {
                    let _ = p.done.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Writes `drafts` after the current head in one transaction; returns the first one's
/// number. `head` caches the head and its revision between batches (re-read on conflict).
async fn commit(
    store: &dyn Store,
    head: &mut Option<(AuditHead, Revision)>,
    drafts: &[AuditRecord],
) -> Result<u64, StoreError> {
    for attempt in 0..100u32 {
        let (current, rev) = match head.take() {
            Some(h) => h,
            None => read_head(store).await?,
        };
        let mut h = current.clone();
        let mut ops = Vec::with_capacity(drafts.len() + 1);
        for d in drafts {
            let mut r = d.clone();
            h = chain(&h, &mut r);
            ops.push(Op::Put {
                key: record_key(r.seq),
                value: to_json(&r)?,
            });
        }
        ops.push(Op::Put {
            key: HEAD_KEY.to_string(),
            value: to_json(&h)?,
        });
        let out = store
            .txn(
                vec![Compare::ModRevision {
                    key: HEAD_KEY.to_string(),
                    equals: rev,
                }],
                ops,
            )
            .await?;
        if out.succeeded {
            *head = Some((h, out.revision));
            return Ok(current.seq + 1);
        }
        // Another replica appended: read the head again.
        tokio::time::sleep(Duration::from_millis(u64::from(attempt % 10) + 1)).await;
    }
    Err(StoreError::Unavailable(
        "the audit chain's head kept changing under this replica".into(),
    ))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Invalid(format!("audit record: {e}")))
}

/// The stored head and its revision (an empty chain and 0 when there is none).
pub async fn read_head(store: &dyn Store) -> Result<(AuditHead, Revision), StoreError> {
    match store.get(HEAD_KEY).await? {
        Some(kv) => {
            let h: AuditHead = serde_json::from_slice(&kv.value)
                .map_err(|e| StoreError::Corrupt(format!("audit head: {e}")))?;
            Ok((h, kv.mod_revision))
        }
        None => Ok((
            AuditHead {
                seq: 0,
                hash: novacron_api_types::audit::GENESIS.to_string(),
            },
            0,
        )),
    }
}

fn checkpoint(file: &PathBuf, head: &AuditHead) {
    let c = AuditCheckpoint {
        seq: head.seq,
        hash: head.hash.clone(),
        time: crate::records::now(),
    };
    tracing::info!(seq = c.seq, hash = %c.hash, "audit checkpoint");
    let line = match serde_json::to_string(&c) {
        Ok(l) => l,
        Err(_) => return,
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        tracing::warn!(file = %file.display(), error = %e, "could not write the audit checkpoint file");
    }
}

/// Every record in chain order (whatever their numbers say), as stored.
pub async fn all_records(store: &dyn Store) -> Result<Vec<AuditRecord>, StoreError> {
    let (kvs, _) = store.list(RECORD_PREFIX).await?;
    kvs.iter()
        .map(|kv| {
            serde_json::from_slice(&kv.value)
                .map_err(|e| StoreError::Corrupt(format!("audit record {}: {e}", kv.key)))
        })
        .collect()
}

/// What `GET /api/v1/audit` selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub project: Option<String>,
    pub user: Option<String>,
    pub since: Option<u64>,
    pub after: u64,
    pub limit: usize,
    /// `None`: every project (a cluster role); else only these projects' records.
    pub visible: Option<Vec<String>>,
}

/// One page of the records `filter` selects, oldest first.
pub fn page(records: Vec<AuditRecord>, filter: &Filter) -> AuditPage {
    let limit = filter.limit.clamp(1, 10_000);
    let mut out: Vec<AuditRecord> = records
        .into_iter()
        .filter(|r| r.seq > filter.after)
        .filter(|r| filter.since.is_none_or(|s| r.time >= s))
        .filter(|r| {
            filter
                .project
                .as_ref()
                .is_none_or(|p| r.project.as_ref() == Some(p))
        })
        .filter(|r| {
            filter
                .user
                .as_ref()
                .is_none_or(|u| r.user.as_ref() == Some(u))
        })
        .filter(|r| {
            filter
                .visible
                .as_ref()
                .is_none_or(|v| r.project.as_ref().is_some_and(|p| v.iter().any(|x| x == p)))
        })
        .take(limit + 1)
        .collect();
    let next_after = if out.len() > limit {
        out.truncate(limit);
        out.last().map(|r| r.seq)
    } else {
        None
    };
    AuditPage {
        records: out,
        next_after,
    }
}

/// The id of a request: the caller's, if it is 1 to 64 characters of `[A-Za-z0-9._-]`, else
/// a new random one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", crate::auth::new_nonce()))
}

/// Who called, for the record: `(actor, user, token id)`.
fn actor(caller: Option<&Caller>) -> (String, Option<String>, Option<String>) {
    match caller {
        None => ("anonymous".into(), None, None),
        Some(Caller::Admin) => ("admin token".into(), None, None),
        Some(Caller::User(p)) => (p.who.clone(), p.user.clone(), p.token_id.clone()),
        Some(Caller::Join(key)) => (
            format!(
                "join token {}",
                crate::records::join_token_id(key.rsplit('/').next().unwrap_or(key))
            ),
            None,
            None,
        ),
        Some(Caller::Node(n)) => (format!("node {n}"), None, None),
        Some(Caller::Replica(m)) => (format!("replica {m}"), None, None),
    }
}

/// How `status` counts in the log.
pub fn outcome(status: StatusCode, refused_by_gate: bool) -> AuditOutcome {
    if refused_by_gate || status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        AuditOutcome::Refused
    } else if status.is_success() || status.is_redirection() {
        AuditOutcome::Ok
    } else {
        AuditOutcome::Failed
    }
}

/// The middleware around every route: see the module documentation.
pub async fn record(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let method = req.method().clone();
    let target = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| target.clone(), |m| m.as_str().to_string());
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);

    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let outcome = outcome(
        resp.status(),
        resp.extensions().get::<AuditRefused>().is_some(),
    );
    let caller = resp.extensions().get::<Caller>();
    let agent_traffic = matches!(caller, Some(Caller::Node(_) | Caller::Replica(_)));
    let worth = match outcome {
        AuditOutcome::Refused => true,
        _ => changes && !agent_traffic,
    };
    if !worth {
        return resp;
    }
    let (actor, user, token_id) = match (caller, resp.extensions().get::<AuditLogin>()) {
        (None, Some(AuditLogin(u))) => (format!("login as {u}"), Some(u.clone()), None),
        _ => actor(caller),
    };
    let record = AuditRecord {
        seq: 0,
        time: crate::records::now(),
        actor,
        user,
        token_id,
        project: resp.extensions().get::<AuditProject>().map(|p| p.0.clone()),
        action: format!("{method} {route}"),
        target,
        outcome,
        status: resp.status().as_u16(),
        request_id: id,
        source,
        prev: String::new(),
        hash: String::new(),
    };
    if let Err(e) = state.audit.append(record).await {
        // The request has happened; say loudly that its record is missing.
        tracing::error!(error = %e, request_id = ?resp.headers().get(REQUEST_ID_HEADER), "request not recorded in the audit log");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use novacron_api_types::audit::verify;

    fn draft(i: u64) -> AuditRecord {
        AuditRecord {
            seq: 0,
            time: i,
            actor: "admin token".into(),
            user: None,
            token_id: None,
            project: Some("default".into()),
            action: "POST /api/v1/vms".into(),
            target: format!("/api/v1/vms/v{i}"),
            outcome: AuditOutcome::Ok,
            status: 201,
            request_id: format!("r{i}"),
            source: String::new(),
            prev: String::new(),
            hash: String::new(),
        }
    }

    #[tokio::test]
    async fn concurrent_appends_from_two_writers_make_one_sound_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            novacron_store::open_store(&novacron_store::StoreUrl::Sqlite(dir.path().join("s.db")))
                .await
                .unwrap();
        // Two replicas' writers on one store: compare-and-swap on the head keeps one chain.
        let a = Arc::new(AuditLog::start(store.clone(), dir.path().join("cp")));
        let b = Arc::new(AuditLog::start(store.clone(), dir.path().join("cp")));
        let mut tasks = vec![];
        for i in 0..300u64 {
            let log = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move { log.append(draft(i)).await }));
        }
        let mut seqs = vec![];
        for t in tasks {
            seqs.push(t.await.unwrap().unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
        let records = all_records(store.as_ref()).await.unwrap();
        let (head, _) = read_head(store.as_ref()).await.unwrap();
        let v = verify(&records, &head, &[]).unwrap();
        assert_eq!(v.records, 300);
        // Crossing 100, 200 and 300 wrote checkpoints, each naming a real record.
        let cps: Vec<AuditCheckpoint> = std::fs::read_to_string(dir.path().join("cp"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(cps.len() >= 2, "{cps:?}");
        assert!(verify(&records, &head, &cps).is_ok());
    }

    #[test]
    fn pages_filter_by_project_user_time_and_visibility() {
        let mut rs = vec![];
        let mut h = AuditHead::default();
        for i in 0..10u64 {
            let mut r = draft(i);
            r.project = Some(if i % 2 == 0 { "a" } else { "b" }.into());
            r.user = (i < 5).then(|| "alice".to_string());
            h = chain(&h, &mut r);
            rs.push(r);
        }
        let f = |project: Option<&str>, user: Option<&str>, visible: Option<Vec<&str>>| Filter {
            project: project.map(str::to_string),
            user: user.map(str::to_string),
            since: Some(2),
            after: 0,
            limit: 3,
            visible: visible.map(|v| v.into_iter().map(str::to_string).collect()),
        };
        let p = page(rs.clone(), &f(Some("a"), None, None));
        let seqs: Vec<u64> = p.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![3, 5, 7]);
        assert_eq!(p.next_after, Some(7));
        let p = page(rs.clone(), &f(None, Some("alice"), Some(vec!["b"])));
        let seqs: Vec<u64> = p.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![4]);
        assert_eq!(p.next_after, None);
    }

    #[test]
    fn refusals_by_status_or_by_the_gate() {
        assert_eq!(outcome(StatusCode::CREATED, false), AuditOutcome::Ok);
        assert_eq!(outcome(StatusCode::FORBIDDEN, false), AuditOutcome::Refused);
        assert_eq!(outcome(StatusCode::NOT_FOUND, true), AuditOutcome::Refused);
        assert_eq!(outcome(StatusCode::NOT_FOUND, false), AuditOutcome::Failed);
    }
}
