//! An in-memory mirror of one store prefix (an "informer"): listed once, then kept current
//! by a watch. API reads and placement come from here instead of the store, and handlers
//! wait until the mirror has caught up with their own writes before answering.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use novacron_store::{Revision, Store, StoreError, WatchEvent};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

/// One change seen by the mirror.
#[derive(Debug)]
pub struct Change<T> {
    pub key: String,
    pub old: Option<Arc<T>>,
    pub new: Option<Arc<T>>,
    pub revision: Revision,
}

impl<T> Clone for Change<T> {
    fn clone(&self) -> Self {
        Change {
            key: self.key.clone(),
            old: self.old.clone(),
            new: self.new.clone(),
            revision: self.revision,
        }
    }
}

/// How many amounts a [`Tally`] sums per group.
pub const TALLY_WIDTH: usize = 4;

/// Sums kept per group of mirrored values (for example, per project: VMs, CPUs, memory and
/// disk of its VMs), updated under the same lock as every change, so reading one group's
/// sums costs the same whether it holds ten values or a hundred thousand.
pub struct Tally<T> {
    /// The group a value counts in.
    pub group: fn(&T) -> String,
    /// What it adds to its group's sums.
    pub amounts: fn(&T) -> [u64; TALLY_WIDTH],
}

// By hand: a derive would ask `T: Copy`, and only the function pointers are copied.
impl<T> Clone for Tally<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Tally<T> {}

impl<T> Tally<T> {
    fn add(&self, sums: &mut std::collections::HashMap<String, [u64; TALLY_WIDTH]>, v: &T) {
        let entry = sums.entry((self.group)(v)).or_default();
        for (s, a) in entry.iter_mut().zip((self.amounts)(v)) {
            *s = s.wrapping_add(a);
        }
    }

    fn remove(&self, sums: &mut std::collections::HashMap<String, [u64; TALLY_WIDTH]>, v: &T) {
        let group = (self.group)(v);
        if let Some(entry) = sums.get_mut(&group) {
            // Exactly what `add` added for the same value: the sums never go below zero.
            for (s, a) in entry.iter_mut().zip((self.amounts)(v)) {
                *s = s.wrapping_sub(a);
            }
            if entry.iter().all(|s| *s == 0) {
                sums.remove(&group);
            }
        }
    }
}

struct State<T> {
    items: BTreeMap<String, Arc<T>>,
    revision: Revision,
    tally: Option<Tally<T>>,
    tallies: std::collections::HashMap<String, [u64; TALLY_WIDTH]>,
    /// Optional secondary key (e.g. a VM's node) and the revision of the last change under
    /// each value of it, so waiters can tell whether a change concerned them.
    index: Option<fn(&T) -> String>,
    index_revisions: std::collections::HashMap<String, Revision>,
    /// Index value → keys holding it.
    index_keys: std::collections::HashMap<String, std::collections::BTreeSet<String>>,
    /// Index value → the most recent changes under it (revision, key), oldest first, so a
    /// follower can ask for what changed since a revision instead of everything.
    index_log: std::collections::HashMap<String, std::collections::VecDeque<(Revision, String)>>,
    /// Changes older than this are not in the logs (start, re-list, or trimmed).
    index_log_floor: std::collections::HashMap<String, Revision>,
    log_start: Revision,
    /// Per index value, the revision of its last change, for waiters on that value only
    /// (a thousand nodes long-polling must not all wake for every change).
    index_watchers: std::collections::HashMap<String, watch::Sender<Revision>>,
}

/// How many recent changes are kept per index value.
const INDEX_LOG_LEN: usize = 1024;

/// What changed under an index value since a revision.
pub enum ChangedSince {
    /// These keys changed (their current values, or their absence, are what to send).
    Keys(Vec<String>),
    /// The log does not reach back that far: send everything.
    Everything,
}

/// The mirror of one prefix, decoded as `T` (JSON). Cheap to clone.
pub struct Cache<T> {
    state: Arc<RwLock<State<T>>>,
    revision_tx: Arc<watch::Sender<Revision>>,
    changes_tx: broadcast::Sender<Change<T>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl<T> Clone for Cache<T> {
    fn clone(&self) -> Self {
        Cache {
            state: self.state.clone(),
            revision_tx: self.revision_tx.clone(),
            changes_tx: self.changes_tx.clone(),
            task: self.task.clone(),
        }
    }
}

impl<T> Drop for Cache<T> {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Option<T> {
    match serde_json::from_slice(value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key, error = %e, "skipping a store record this version cannot read");
            None
        }
    }
}

impl<T: DeserializeOwned + Send + Sync + 'static> Cache<T> {
    /// Lists `prefix` and starts following it.
    pub async fn start(store: Arc<dyn Store>, prefix: String) -> Result<Cache<T>, StoreError> {
        Self::start_indexed(store, prefix, None).await
    }

    /// Like [`Cache::start`], also tracking the last change revision per `index(value)`.
    pub async fn start_indexed(
        store: Arc<dyn Store>,
        prefix: String,
        index: Option<fn(&T) -> String>,
    ) -> Result<Cache<T>, StoreError> {
        Self::start_with(store, prefix, index, None).await
    }

    /// Like [`Cache::start_indexed`], also keeping `tally`'s sums per group (see
    /// [`Cache::tally`]).
    pub async fn start_with(
        store: Arc<dyn Store>,
        prefix: String,
        index: Option<fn(&T) -> String>,
        tally: Option<Tally<T>>,
    ) -> Result<Cache<T>, StoreError> {
        let (kvs, revision) = store.list(&prefix).await?;
        let items: BTreeMap<String, Arc<T>> = kvs
            .into_iter()
            .filter_map(|kv| decode::<T>(&kv.key, &kv.value).map(|v| (kv.key, Arc::new(v))))
            .collect();
        let mut st = State {
            items,
            revision,
            tally,
            tallies: Default::default(),
            index,
            index_revisions: Default::default(),
            index_keys: Default::default(),
            index_log: Default::default(),
            index_log_floor: Default::default(),
            log_start: revision,
            index_watchers: Default::default(),
        };
        st.rebuild_index();
        let state = Arc::new(RwLock::new(st));
        let (revision_tx, _) = watch::channel(revision);
        let revision_tx = Arc::new(revision_tx);
        let (changes_tx, _) = broadcast::channel(4096);
        let task = tokio::spawn(follow(
            store,
            prefix,
            state.clone(),
            revision_tx.clone(),
            changes_tx.clone(),
        ));
        Ok(Cache {
            state,
            revision_tx,
            changes_tx,
            task: Arc::new(task),
        })
    }

    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.read().items.get(key).cloned()
    }

    /// Every value under `sub` (a longer prefix inside the mirrored one).
    pub fn values_under(&self, sub: &str) -> Vec<Arc<T>> {
        self.read()
            .items
            .range(sub.to_string()..)
            .take_while(|(k, _)| k.starts_with(sub))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn values(&self) -> Vec<Arc<T>> {
        self.read().items.values().cloned().collect()
    }

    /// Runs `f` over the whole map under one read lock.
    pub fn with<R>(&self, f: impl FnOnce(&BTreeMap<String, Arc<T>>) -> R) -> R {
        f(&self.read().items)
    }

    /// Every value whose index is `value` (see [`Cache::start_indexed`]).
    pub fn values_by_index(&self, value: &str) -> Vec<Arc<T>> {
        let st = self.read();
        st.index_keys
            .get(value)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| st.items.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A receiver of the revision of the last change under index `value`.
    pub fn subscribe_index(&self, value: &str) -> watch::Receiver<Revision> {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        let current = st.index_revisions.get(value).copied().unwrap_or(0);
        st.index_watchers
            .entry(value.to_string())
            .or_insert_with(|| watch::channel(current).0)
            .subscribe()
    }

    /// The keys under index `value` that changed after `after`.
    pub fn changed_since(&self, value: &str, after: Revision) -> ChangedSince {
        let st = self.read();
        let floor = st
            .index_log_floor
            .get(value)
            .copied()
            .unwrap_or(st.log_start);
        if after < floor {
            return ChangedSince::Everything;
        }
        let mut keys: Vec<String> = st
            .index_log
            .get(value)
            .map(|log| {
                log.iter()
                    .filter(|(r, _)| *r > after)
                    .map(|(_, k)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        keys.sort();
        keys.dedup();
        ChangedSince::Keys(keys)
    }

    /// The revision of the last change that touched a value whose index is `value`
    /// (0 when none was seen since start).
    pub fn index_revision(&self, value: &str) -> Revision {
        self.read().index_revisions.get(value).copied().unwrap_or(0)
    }

    /// The sums of `group` (zeros when it holds nothing) and the revision they are as of,
    /// read together. Zeros when the mirror keeps no tally.
    pub fn tally(&self, group: &str) -> ([u64; TALLY_WIDTH], Revision) {
        let st = self.read();
        (
            st.tallies.get(group).copied().unwrap_or_default(),
            st.revision,
        )
    }

    /// The revision of the last change applied.
    pub fn revision(&self) -> Revision {
        self.read().revision
    }

    /// Waits until the mirror has applied `revision` (e.g. the caller's own write).
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> bool {
        let mut rx = self.revision_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn subscribe_revision(&self) -> watch::Receiver<Revision> {
        self.revision_tx.subscribe()
    }

    pub fn subscribe_changes(&self) -> broadcast::Receiver<Change<T>> {
        self.changes_tx.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<T>> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> State<T> {
    fn rebuild_index(&mut self) {
        self.tallies.clear();
        if let Some(tally) = self.tally {
            for v in self.items.values() {
                tally.add(&mut self.tallies, v);
            }
        }
        self.index_keys.clear();
        if let Some(index) = self.index {
            for (k, v) in &self.items {
                self.index_keys
                    .entry(index(v))
                    .or_default()
                    .insert(k.clone());
            }
        }
    }
}

async fn follow<T: DeserializeOwned + Send + Sync + 'static>(
    store: Arc<dyn Store>,
    prefix: String,
    state: Arc<RwLock<State<T>>>,
    revision_tx: Arc<watch::Sender<Revision>>,
    changes_tx: broadcast::Sender<Change<T>>,
) {
    loop {
        let after = state.read().unwrap_or_else(|p| p.into_inner()).revision;
        let result = async {
            let mut stream = store.watch(&prefix, after).await?;
            while let Some(event) = stream.next().await {
                let event = event?;
                let revision = event.revision();
                let key = event.key().to_string();
                let new = match &event {
                    WatchEvent::Put(kv) => decode::<T>(&kv.key, &kv.value).map(Arc::new),
                    WatchEvent::Delete { .. } => None,
                };
                let old = {
                    let mut st = state.write().unwrap_or_else(|p| p.into_inner());
                    let old = match &new {
                        Some(v) => st.items.insert(key.clone(), v.clone()),
                        None => st.items.remove(&key),
                    };
                    st.revision = st.revision.max(revision);
                    if let Some(tally) = st.tally {
                        if let Some(v) = &old {
                            tally.remove(&mut st.tallies, v);
                        }
                        if let Some(v) = &new {
                            tally.add(&mut st.tallies, v);
                        }
                    }
                    if let Some(index) = st.index {
                        let mut touched = Vec::with_capacity(2);
                        if let Some(v) = &old {
                            let i = index(v);
                            if let Some(keys) = st.index_keys.get_mut(&i) {
                                keys.remove(&key);
                            }
                            touched.push(i);
                        }
                        if let Some(v) = &new {
                            let i = index(v);
                            st.index_keys
                                .entry(i.clone())
                                .or_default()
                                .insert(key.clone());
                            touched.push(i);
                        }
                        touched.dedup();
                        for i in touched {
                            if let Some(tx) = st.index_watchers.get(&i) {
                                tx.send_replace(revision);
                            }
                            st.index_revisions.insert(i.clone(), revision);
                            let log = st.index_log.entry(i.clone()).or_default();
                            log.push_back((revision, key.clone()));
                            if log.len() > INDEX_LOG_LEN
                                && let Some((r, _)) = log.pop_front()
                            {
                                st.index_log_floor.insert(i, r);
                            }
                        }
                    }
                    old
                };
                let _ = changes_tx.send(Change {
                    key,
                    old,
                    new,
                    revision,
                });
                revision_tx.send_replace(revision);
            }
            Ok::<(), StoreError>(())
        }
        .await;
        match result {
            Ok(()) => tracing::debug!(prefix, "store watch ended; resuming"),
            Err(StoreError::Compacted { .. }) => {
                tracing::warn!(prefix, "watch fell behind compaction; re-listing");
                if let Ok((kvs, revision)) = store.list(&prefix).await {
                    let mut st = state.write().unwrap_or_else(|p| p.into_inner());
                    st.items = kvs
                        .into_iter()
                        .filter_map(|kv| {
                            decode::<T>(&kv.key, &kv.value).map(|v| (kv.key, Arc::new(v)))
                        })
                        .collect();
                    st.revision = revision;
                    st.rebuild_index();
                    st.index_log.clear();
                    st.index_log_floor.clear();
                    st.log_start = revision;
                    // Everyone may have missed something: mark every index value changed.
                    let keys: Vec<String> = st.index_revisions.keys().cloned().collect();
                    for k in keys {
                        st.index_revisions.insert(k, revision);
                    }
                    for tx in st.index_watchers.values() {
                        tx.send_replace(revision);
                    }
                    drop(st);
                    revision_tx.send_replace(revision);
                }
            }
            Err(e) => tracing::warn!(prefix, error = %e, "store watch failed; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use novacron_store::Op;

    #[derive(serde::Deserialize)]
    struct Item {
        group: String,
        size: u64,
    }

    fn put(key: &str, group: &str, size: u64) -> Op {
        Op::Put {
            key: key.into(),
            value: serde_json::to_vec(&serde_json::json!({"group": group, "size": size})).unwrap(),
        }
    }

    /// The tally follows creates, changes (a value moving between groups too) and deletes,
    /// and a mirror started on existing records counts them.
    #[tokio::test]
    async fn a_tally_follows_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            novacron_store::open_store(&novacron_store::StoreUrl::Sqlite(dir.path().join("s.db")))
                .await
                .unwrap();
        store.txn(vec![], vec![put("/t/a", "p1", 5)]).await.unwrap();
        let tally = Tally {
            group: |i: &Item| i.group.clone(),
            amounts: |i: &Item| [1, i.size, 0, 0],
        };
        let cache = Cache::<Item>::start_with(store.clone(), "/t/".into(), None, Some(tally))
            .await
            .unwrap();
        assert_eq!(cache.tally("p1").0, [1, 5, 0, 0]);

        let r = store
            .txn(vec![], vec![put("/t/b", "p1", 7), put("/t/c", "p2", 1)])
            .await
            .unwrap()
            .revision;
        assert!(cache.wait_for(r, Duration::from_secs(5)).await);
        assert_eq!(cache.tally("p1").0, [2, 12, 0, 0]);
        assert_eq!(cache.tally("p2").0, [1, 1, 0, 0]);

        // b grows and moves to p2; a goes.
        let r = store
            .txn(
                vec![],
                vec![put("/t/b", "p2", 9), Op::Delete { key: "/t/a".into() }],
            )
            .await
            .unwrap()
            .revision;
        assert!(cache.wait_for(r, Duration::from_secs(5)).await);
        let (p1, at) = cache.tally("p1");
        assert_eq!(p1, [0; TALLY_WIDTH]);
        assert!(at >= r);
        assert_eq!(cache.tally("p2").0, [2, 10, 0, 0]);
    }
}
