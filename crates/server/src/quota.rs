//! Project quotas: what a project holds ([`ProjectUsage`]), whether a request fits its
//! limits ([`check`], a pure function), and the create that counts against them
//! ([`create_counted`]).
//!
//! Concurrency: a counted create reads the project's usage record ([`usage_key`]) first,
//! then the project (its limits) and the records that count, checks, and writes the new
//! record with the new usage in one transaction that compares the usage record's and the
//! project's revisions. Any other counted create (or project change or delete) in between
//! changes one of them, so the transaction fails and the create re-reads and re-checks: two
//! creates can never both pass against the same usage, on SQLite or etcd. Deletes do not
//! rewrite the usage record (usage is counted again at every create, from the VM mirror's
//! per-project tally once the mirror has caught up with the usage record: see
//! [`counted_usage`]), so a delete racing a create can only make that create count too
//! much, never too little.

use crate::records::store_err;
use novacron_api_types::tenancy::{Project, ProjectLimits, ProjectUsage};
use novacron_api_types::{ApiError, ErrorCode, format_size};
use novacron_store::{Compare, Op, Revision};

use std::time::Duration;

use crate::cache::{TALLY_WIDTH, Tally};
use crate::records::{self, VmRecord, project_key};
use crate::state::AppState;
use crate::tenancy::{no_project, usage_key};
use crate::typed_store::Change;

/// A limit a request would exceed, as data; `Display` is the user's one-line answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "project {project} is at its limit {limit} = {max}: {used} used, this request needs {wanted} more (`novacron project usage {project}`; an admin raises it with `novacron project set {project} --{limit} ...`)"
)]
pub struct QuotaExceeded {
    pub project: String,
    /// The CLI flag's name, e.g. `max-vms`.
    pub limit: &'static str,
    pub max: String,
    pub used: String,
    pub wanted: String,
}

impl From<QuotaExceeded> for ApiError {
    fn from(q: QuotaExceeded) -> ApiError {
        ApiError::new(ErrorCode::NoCapacity, q.to_string())
    }
}

/// One limit as [`check`] reads it: its name, maximum, use, the request, and how to show a value.
type LimitRow = (&'static str, Option<u64>, u64, u64, fn(u64) -> String);

/// The usage after adding `request` to `usage`, if it fits every limit of `limits`.
pub fn check(
    project: &str,
    limits: &ProjectLimits,
    usage: &ProjectUsage,
    request: &ProjectUsage,
) -> Result<ProjectUsage, QuotaExceeded> {
    let count = |n: u64| n.to_string();
    let size = |n: u64| format_size(n);
    let rows: [LimitRow; 6] = [
        ("max-vms", limits.max_vms, usage.vms, request.vms, count),
        ("max-cpus", limits.max_cpus, usage.cpus, request.cpus, count),
        (
            "max-memory",
            limits.max_memory_bytes,
            usage.memory_bytes,
            request.memory_bytes,
            size,
        ),
        (
            "max-disk",
            limits.max_disk_bytes,
            usage.disk_bytes,
            request.disk_bytes,
            size,
        ),
        (
            "max-networks",
            limits.max_networks,
            usage.networks,
            request.networks,
            count,
        ),
        (
            "max-backup-storage",
            limits.max_backup_storage_bytes,
            usage.backup_storage_bytes,
            request.backup_storage_bytes,
            size,
        ),
    ];
    for (limit, max, used, wanted, show) in rows {
        if let Some(max) = max
            && wanted > 0
            && used.saturating_add(wanted) > max
        {
            return Err(QuotaExceeded {
                project: project.to_string(),
                limit,
                max: show(max),
                used: show(used),
                wanted: show(wanted),
            });
        }
    }
    Ok(add(usage, request))
}

fn add(a: &ProjectUsage, b: &ProjectUsage) -> ProjectUsage {
    ProjectUsage {
        vms: a.vms.saturating_add(b.vms),
        cpus: a.cpus.saturating_add(b.cpus),
        memory_bytes: a.memory_bytes.saturating_add(b.memory_bytes),
        disk_bytes: a.disk_bytes.saturating_add(b.disk_bytes),
        networks: a.networks.saturating_add(b.networks),
        backup_storage_bytes: a
            .backup_storage_bytes
            .saturating_add(b.backup_storage_bytes),
    }
}

/// What one VM counts: CPUs and memory `vm set` gave it for its next start count already
/// (the larger of what it runs with and what it will get).
pub fn vm_usage(vm: &VmRecord) -> ProjectUsage {
    let pending = vm.pending.unwrap_or_default();
    ProjectUsage {
        vms: 1,
        cpus: u64::from(vm.cpus.max(pending.cpus.unwrap_or(0))),
        memory_bytes: vm.memory_bytes.max(pending.memory_bytes.unwrap_or(0)),
        disk_bytes: crate::disk_ops::counted_disk_bytes(vm),
        ..Default::default()
    }
}

/// What a VM adds to its project's sums in the VM mirror's tally ([`vm_tally`]): VMs,
/// CPUs, memory, disk, as [`vm_usage`] counts them.
fn vm_amounts(vm: &VmRecord) -> [u64; TALLY_WIDTH] {
    let u = vm_usage(vm);
    [u.vms, u.cpus, u.memory_bytes, u.disk_bytes]
}

/// The VM mirror's per-project sums, which let a counted create check its project's usage
/// without reading every VM of the project.
pub fn vm_tally() -> Tally<VmRecord> {
    Tally {
        group: |vm: &VmRecord| vm.project.clone(),
        amounts: vm_amounts,
    }
}

/// The usage the usage record holds, when it bounds the project's usage from above: the
/// record was written after the project record last changed (so by a counted change under
/// the current limits, not before creates made while the project had none). Each counted
/// change writes the usage it counted plus its request, and nothing adds to a project
/// without writing the record, while deletes, shrinks and failed creates do not lower it:
/// the true usage is never above it. A request that fits under it fits; one that does not
/// is counted exactly before it is refused.
fn recorded_bound(
    kv: Option<&novacron_store::KeyValue>,
    usage_rev: Revision,
    project_rev: Revision,
) -> Option<ProjectUsage> {
    let kv = kv.filter(|_| usage_rev > project_rev)?;
    serde_json::from_slice(&kv.value).ok()
}

/// How long a counted change waits for the VM mirror to catch up with the usage record
/// before counting from the store instead.
const MIRROR_WAIT: Duration = Duration::from_millis(200);

/// What `project` holds, for a counted change that read the usage record at `usage_rev`
/// (or the project record, when that is newer: creates made while the project had no
/// limits did not write the usage record, and all came before the limit was set).
///
/// Every counted VM change writes the usage record in its own transaction, so once the VM
/// mirror has applied `usage_rev` it holds every VM the project's counted changes made, and
/// its tally is the project's VM usage without a read of each VM (a project of 100,000 VMs
/// costs what a project of one does). A change committed after `usage_rev` would also have
/// changed the usage record, failing the caller's transaction, so none is missed; a delete
/// the mirror has not applied yet counts once too often, erring on the safe side. When the
/// mirror cannot reach `usage_rev` (the last counted change was not a VM's, e.g. a network
/// create, so no VM change carries that revision), the records in the store are counted.
async fn counted_usage(
    state: &AppState,
    project: &str,
    usage_rev: Revision,
) -> Result<ProjectUsage, ApiError> {
    if !state.vms.wait_for(usage_rev, MIRROR_WAIT).await {
        tracing::debug!(
            project,
            usage_rev,
            mirror = state.vms.revision(),
            "the VM mirror has not reached the usage record: counting from the store"
        );
        return usage(state, project).await;
    }
    let ([vms, cpus, memory_bytes, disk_bytes], _) = state.vms.tally(project);
    Ok(ProjectUsage {
        vms,
        cpus,
        memory_bytes,
        disk_bytes,
        networks: network_count(state, project).await?,
        ..Default::default()
    })
}

async fn network_count(state: &AppState, project: &str) -> Result<u64, ApiError> {
    let (networks, _) = state
        .store
        .list(&records::network_key(project, ""))
        .await
        .map_err(store_err)?;
    Ok(networks.len() as u64)
}

/// What `project` holds now, counted from the store's records.
pub async fn usage(state: &AppState, project: &str) -> Result<ProjectUsage, ApiError> {
    let (vms, _) = state
        .store
        .list(&records::vm_key(project, ""))
        .await
        .map_err(store_err)?;
    let mut u = ProjectUsage::default();
    for kv in vms {
        if let Ok(vm) = serde_json::from_slice::<VmRecord>(&kv.value) {
            u = add(&u, &vm_usage(&vm));
        }
    }
    u.networks = network_count(state, project).await?;
    Ok(u)
}

/// The project record and its revision; 404 when it does not exist.
pub async fn project(state: &AppState, project: &str) -> Result<(Project, Revision), ApiError> {
    let kv = state
        .store
        .get(&project_key(project))
        .await
        .map_err(store_err)?
        .ok_or_else(|| no_project(project))?;
    let p = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("project record {project}: {e}")))?;
    Ok((p, kv.mod_revision))
}

/// The quota's share of one attempt at a counted create: compares that fail the transaction
/// if the project or its usage changed since they were read, and the write of the new usage
/// (none in a project without limits: its creates do not serialize on the usage record).
pub struct Counted {
    pub compares: Vec<Compare>,
    pub usage: Option<Op>,
}

/// Reads `project_name`'s limits and usage and checks `request` against them (a refusal
/// names the limit, the usage and the request). The transaction that creates the resource
/// must include [`Counted::compares`] and [`Counted::usage`]; when it fails on them, wait
/// with [`back_off`] and prepare again.
///
/// A project without limits is not counted: its creates compare only the project record,
/// so they run side by side instead of one at a time on the usage record. Setting a limit
/// (or a `project delete` marking the project) changes that record and fails every such
/// create still in flight; the first counted create after it counts from a VM mirror that
/// has applied the project record's revision (see [`counted_usage`]), so it sees them all.
pub async fn prepare(
    state: &AppState,
    project_name: &str,
    request: &ProjectUsage,
) -> Result<Counted, ApiError> {
    // The usage record first: a counted create after this read fails our transaction.
    let usage_kv = state
        .store
        .get(&usage_key(project_name))
        .await
        .map_err(store_err)?;
    let usage_rev = usage_kv.as_ref().map_or(0, |kv| kv.mod_revision);
    let (project, project_rev) = project(state, project_name).await?;
    if project.deleting {
        return Err(ApiError::conflict(format!(
            "project {project_name} is being deleted: nothing can be created in it"
        )));
    }
    let project_unchanged = Compare::ModRevision {
        key: project_key(project_name),
        equals: project_rev,
    };
    if project.limits.is_unlimited() {
        return Ok(Counted {
            compares: vec![project_unchanged],
            usage: None,
        });
    }
    // What the last counted change wrote is an upper bound of the usage (see
    // [`recorded_bound`]): when the request fits under it, nothing needs counting.
    let fits = recorded_bound(usage_kv.as_ref(), usage_rev, project_rev)
        .and_then(|b| check(project_name, &project.limits, &b, request).ok());
    let after = match fits {
        Some(after) => after,
        None => {
            let used = counted_usage(state, project_name, usage_rev.max(project_rev)).await?;
            check(project_name, &project.limits, &used, request)?
        }
    };
    let encoded = serde_json::to_vec(&after)
        .map_err(|e| ApiError::internal(format!("encoding usage: {e}")))?;
    Ok(Counted {
        compares: vec![
            Compare::ModRevision {
                key: usage_key(project_name),
                equals: usage_rev,
            },
            project_unchanged,
        ],
        usage: Some(Op::Put {
            key: usage_key(project_name),
            value: encoded,
        }),
    })
}

/// What growing a VM from `before` to `after` adds to its project (nothing for a shrink).
pub fn vm_growth(before: &VmRecord, after: &VmRecord) -> Option<ProjectUsage> {
    let (b, a) = (vm_usage(before), vm_usage(after));
    let grow = ProjectUsage {
        cpus: a.cpus.saturating_sub(b.cpus),
        memory_bytes: a.memory_bytes.saturating_sub(b.memory_bytes),
        disk_bytes: a.disk_bytes.saturating_sub(b.disk_bytes),
        ..Default::default()
    };
    (grow != ProjectUsage::default()).then_some(grow)
}

/// The change that replaces VM record `before` with `next` together with `ops`, counting
/// what `next` adds (CPUs, memory, disk) against the project's limits in the same
/// transaction; a refusal names the limit.
pub async fn counted_change(
    state: &AppState,
    before: &VmRecord,
    next: VmRecord,
    mut ops: Vec<Op>,
) -> Result<Change<VmRecord>, ApiError> {
    let mut compares = vec![];
    if let Some(growth) = vm_growth(before, &next) {
        let counted = prepare(state, &before.project, &growth).await?;
        compares = counted.compares;
        ops.extend(counted.usage);
    }
    Ok(Change::WriteWith {
        record: next,
        compares,
        ops,
    })
}

/// How often a counted create re-reads after a concurrent one won, before it gives up.
const ATTEMPTS: usize = 200;

/// Another counted create won this round: back off a little, at random, before recounting.
pub(crate) async fn back_off(attempt: usize) {
    let jitter = u64::from(crate::auth::new_token().as_bytes()[0] % 16);
    tokio::time::sleep(std::time::Duration::from_millis(
        jitter + (attempt as u64).min(20),
    ))
    .await;
}

/// The answer when a counted create kept losing to others.
fn kept_changing(project_name: &str, key: &str) -> ApiError {
    ApiError::unavailable(format!(
        "project {project_name} kept changing while creating {key}: try again"
    ))
}

/// Creates `key` (which must not exist; `exists` says what to answer if it does) counting
/// `request` against `project_name`'s limits: `write` gets the compares (`key` absent, the
/// project and its usage unchanged) and the usage write (if any) its transaction must include, and
/// answers the revision, or `None` when the transaction failed on those compares; then the
/// usage is read again and `write` retried. Returns the store revision of the write.
pub async fn create_counted_with<F, Fut>(
    state: &AppState,
    project_name: &str,
    key: &str,
    request: &ProjectUsage,
    exists: impl Fn() -> ApiError,
    mut write: F,
) -> Result<Revision, ApiError>
where
    F: FnMut(Vec<Compare>, Option<Op>) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Revision>, ApiError>>,
{
    for attempt in 0..ATTEMPTS {
        let started = std::time::Instant::now();
        let counted = prepare(state, project_name, request).await?;
        let prepared = started.elapsed();
        let mut compares = vec![Compare::ModRevision {
            key: key.to_string(),
            equals: 0,
        }];
        compares.extend(counted.compares);
        let written = write(compares, counted.usage).await?;
        tracing::trace!(
            project = project_name,
            attempt,
            prepare_micros = prepared.as_micros() as u64,
            write_micros = (started.elapsed() - prepared).as_micros() as u64,
            committed = written.is_some(),
            "counted create attempt"
        );
        if let Some(revision) = written {
            return Ok(revision);
        }
        if state.store.get(key).await.map_err(store_err)?.is_some() {
            return Err(exists());
        }
        back_off(attempt).await;
    }
    Err(kept_changing(project_name, key))
}

/// [`create_counted_with`] for a create that writes `value` under `key` with `ops`.
pub async fn create_counted(
    state: &AppState,
    project_name: &str,
    key: &str,
    value: Vec<u8>,
    ops: Vec<Op>,
    request: &ProjectUsage,
    exists: impl Fn() -> ApiError,
) -> Result<Revision, ApiError> {
    create_counted_with(
        state,
        project_name,
        key,
        request,
        exists,
        |compares, usage| {
            let mut all = vec![Op::Put {
                key: key.to_string(),
                value: value.clone(),
            }];
            all.extend(usage);
            all.extend(ops.iter().cloned());
            async move {
                let out = state.store.txn(compares, all).await.map_err(store_err)?;
                Ok(out.succeeded.then_some(out.revision))
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_a_usage_record_newer_than_the_project_bounds_the_usage() {
        let used = ProjectUsage {
            vms: 3,
            cpus: 6,
            ..Default::default()
        };
        let kv = |rev, value: Vec<u8>| novacron_store::KeyValue {
            key: "usage".into(),
            value,
            create_revision: 1,
            mod_revision: rev,
            lease: None,
        };
        let written = kv(20, serde_json::to_vec(&used).unwrap());
        assert_eq!(recorded_bound(Some(&written), 20, 10), Some(used));
        // Limits set after it: creates made without limits are not in it.
        assert_eq!(recorded_bound(Some(&written), 20, 30), None);
        assert_eq!(recorded_bound(None, 0, 10), None);
        let garbled = kv(20, b"{".to_vec());
        assert_eq!(recorded_bound(Some(&garbled), 20, 10), None);
    }

    #[test]
    fn a_refusal_names_the_limit_the_usage_and_the_request() {
        let limits = ProjectLimits {
            max_vms: Some(10),
            max_memory_bytes: Some(1 << 30),
            ..Default::default()
        };
        let used = ProjectUsage {
            vms: 10,
            memory_bytes: 512 << 20,
            ..Default::default()
        };
        let one = ProjectUsage {
            vms: 1,
            memory_bytes: 256 << 20,
            ..Default::default()
        };
        let e = check("team-a", &limits, &used, &one).unwrap_err();
        assert_eq!(e.limit, "max-vms");
        let text = e.to_string();
        assert!(
            text.contains("max-vms = 10")
                && text.contains("10 used")
                && text.contains("needs 1 more"),
            "{text}"
        );
        let used = ProjectUsage { vms: 3, ..used };
        let big = ProjectUsage {
            memory_bytes: 768 << 20,
            ..one
        };
        let e = check("team-a", &limits, &used, &big).unwrap_err();
        assert_eq!(e.limit, "max-memory");
        let after = check("team-a", &limits, &used, &one).unwrap();
        assert_eq!((after.vms, after.memory_bytes), (4, 768 << 20));
        // No limit: anything fits; a request that adds nothing passes even at the limit.
        assert!(check("p", &ProjectLimits::default(), &used, &big).is_ok());
        let full = ProjectUsage { vms: 10, ..used };
        assert!(check("p", &limits, &full, &ProjectUsage::default()).is_ok());
    }
}
