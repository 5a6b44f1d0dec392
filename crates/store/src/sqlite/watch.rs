//! Watches on the embedded store: each watch is a task that replays the revision log from
//! the requested revision, then follows live commits. A watcher that falls behind the live
//! buffer goes back to the log (writers never wait for watchers); one that falls behind
//! the kept history ends with [`StoreError::Compacted`].

use std::sync::Arc;

use rusqlite::{Connection, params};
use tokio::sync::broadcast::{self, error::RecvError};

use super::schema::{LogRow, META_COMPACTED_BEFORE, META_REVISION, db_err, require_meta};
use super::writer::EventBatch;
use super::{ReaderPool, read_snapshot};
use crate::watch_stream::{WatchSender, watch_channel};
use crate::{Revision, StoreError, WatchEvent, WatchStream, prefix_range_end};

/// Revisions read from the log per query while replaying.
const REPLAY_REVISIONS_PER_READ: i64 = 1024;

/// Start the task behind one watch. `live` must have been subscribed before any history
/// is read.
pub(super) fn spawn(
    readers: Arc<ReaderPool>,
    prefix: String,
    after_revision: Revision,
    live: broadcast::Receiver<EventBatch>,
) -> WatchStream {
    let (tx, stream) = watch_channel();
    tokio::spawn(async move {
        if let Err(e) = follow(readers, prefix, after_revision, live, &tx).await {
            // The consumer may be gone already; then nobody needs the error.
            let _ = tx.send(Err(e)).await;
        }
    });
    stream
}

/// Why following stopped without an error to report.
struct ConsumerGone;

async fn follow(
    readers: Arc<ReaderPool>,
    prefix: String,
    after_revision: Revision,
    mut live: broadcast::Receiver<EventBatch>,
    tx: &WatchSender,
) -> Result<(), StoreError> {
    // Every event with a revision <= `delivered` has been sent (or did not match).
    let mut delivered = after_revision;
    loop {
        match replay(&readers, &prefix, &mut delivered, tx).await {
            Ok(Ok(())) => {}
            Ok(Err(ConsumerGone)) => return Ok(()),
            Err(e) => return Err(e),
        }
        loop {
            let received = tokio::select! {
                () = tx.closed() => return Ok(()),
                received = live.recv() => received,
            };
            match received {
                Ok(batch) => {
                    for event in batch.iter() {
                        if event.revision() > delivered
                            && event.key().starts_with(prefix.as_str())
                            && tx.send(Ok(event.clone())).await.is_err()
                        {
                            return Ok(());
                        }
                    }
                    if let Some(last) = batch.last() {
                        delivered = delivered.max(last.revision());
                    }
                }
                Err(RecvError::Lagged(missed_commits)) => {
                    tracing::debug!(
                        prefix,
                        delivered,
                        missed_commits,
                        "watcher fell behind the live buffer; catching up from the log"
                    );
                    live = live.resubscribe();
                    break;
                }
                Err(RecvError::Closed) => {
                    return Err(StoreError::Unavailable(
                        "the embedded store was closed".to_string(),
                    ));
                }
            }
        }
    }
}

/// Send every logged event after `delivered` up to the current revision.
async fn replay(
    readers: &Arc<ReaderPool>,
    prefix: &str,
    delivered: &mut Revision,
    tx: &WatchSender,
) -> Result<Result<(), ConsumerGone>, StoreError> {
    loop {
        let from = *delivered;
        let prefix_owned = prefix.to_string();
        let chunk = readers
            .run(move |conn| read_log(conn, &prefix_owned, from))
            .await?;
        for event in chunk.events {
            if tx.send(Ok(event)).await.is_err() {
                return Ok(Err(ConsumerGone));
            }
        }
        *delivered = chunk.through;
        if chunk.through >= chunk.current {
            return Ok(Ok(()));
        }
    }
}

struct LogChunk {
    events: Vec<WatchEvent>,
    /// Every event up to this revision was read.
    through: Revision,
    /// The store revision when the chunk was read.
    current: Revision,
}

fn read_log(conn: &Connection, prefix: &str, after: Revision) -> Result<LogChunk, StoreError> {
    read_snapshot(conn, |conn| {
        let current = require_meta(conn, META_REVISION)?;
        let oldest = require_meta(conn, META_COMPACTED_BEFORE)?;
        if after + 1 < oldest {
            return Err(StoreError::Compacted {
                requested: after + 1,
                oldest,
            });
        }
        if after >= current {
            return Ok(LogChunk {
                events: Vec::new(),
                through: after,
                current,
            });
        }
        let through = current.min(after + REPLAY_REVISIONS_PER_READ);
        let end = prefix_range_end(prefix.as_bytes());
        let rows = conn
            .prepare_cached(
                "SELECT rev, key, value, create_rev, lease FROM log \
                 WHERE rev > ?1 AND rev <= ?2 AND key >= ?3 AND (?4 IS NULL OR key < ?4) \
                 ORDER BY rev, seq",
            )
            .and_then(|mut stmt| {
                stmt.query_map(
                    params![after, through, prefix.as_bytes(), end],
                    LogRow::from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(db_err)?;
        let events = rows
            .into_iter()
            .map(LogRow::into_event)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LogChunk {
            events,
            through,
            current,
        })
    })
}
