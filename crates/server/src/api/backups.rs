//! Backup endpoints: repositories, backups of VMs (run by the agent of the VM's node, which
//! holds QEMU's QMP socket and the disks), restores (a new VM whose disk is filled from a
//! backup, or a restore over a stopped VM), verify / prune / gc, and schedules.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use novacron_api_types::backup::{
    Backup, BackupCreateRequest, BackupJob, BackupRepo, BackupRepoAddRequest, BackupRestoreRequest,
    BackupSchedule, BackupStorageLimit, PruneRequest, RepoLocation, RestoreSource, Retention,
};
use novacron_api_types::{
    ApiError, DEFAULT_PROJECT, ErrorCode, Operation, OperationRef, validate_name,
};
use novacron_backup::location::{self, Location};
use novacron_store::{Compare, Op};
use serde::Deserialize;

use super::operations::{finish, new_operation, put_op};
use super::roles::NodeCaller;
use super::{ApiFailure, ApiResult, Json, json_bytes};
use crate::records::{self, VmRecord, now};
use crate::state::AppState;
use crate::typed_store::{self, Change};

fn backup_err(e: novacron_backup::BackupError) -> ApiFailure {
    use novacron_backup::BackupError as E;
    let msg = e.to_string();
    ApiFailure(match e {
        E::UnknownBackup(_) => ApiError::not_found(msg),
        E::InvalidArgument(_) | E::NotARepository { .. } | E::BadConfig(_) => {
            ApiError::invalid(msg)
        }
        _ => ApiError::unavailable(msg),
    })
}

pub fn location_of(repo: &BackupRepo) -> Location {
    match &repo.location {
        RepoLocation::Dir { path } => Location::Dir(path.clone()),
        RepoLocation::S3 { url } => Location::S3(url.clone()),
    }
}

async fn open(repo: &BackupRepo) -> ApiResult<novacron_backup::repo::Repository> {
    location::open(
        &location_of(repo),
        repo.key_file.as_deref().map(FsPath::new),
    )
    .await
    .map_err(backup_err)
}

fn find_repo(state: &AppState, name: &str) -> ApiResult<Arc<BackupRepo>> {
    validate_name("repository", name)?;
    state
        .backup_repos
        .get(&records::backup_repo_key(name))
        .ok_or_else(|| {
            ApiFailure(ApiError::not_found(format!(
                "no backup repository named {name:?}: see `novacron backup repo list`"
            )))
        })
}

/// Add a repository: created where there is none, adopted where one exists (a repository
/// describes itself, so a fresh install can restore from it).
#[utoipa::path(post, path = "/api/v1/backup/repos", request_body = BackupRepoAddRequest,
    responses((status = 201, body = BackupRepo), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn repo_add(
    State(state): State<Arc<AppState>>,
    Json(req): Json<BackupRepoAddRequest>,
) -> ApiResult<(StatusCode, AxumJson<BackupRepo>)> {
    validate_name("repository", &req.name)?;
    let location = parse_location(&req.path, &req.s3)?;
    let key_file = match (req.encrypt, &req.key_file) {
        (true, Some(k)) if k.starts_with('/') => Some(k.clone()),
        (true, Some(k)) => {
            return Err(
                ApiError::invalid(format!("--key-file must be absolute, got {k:?}")).into(),
            );
        }
        (true, None) => {
            return Err(ApiError::invalid(
                "--encrypt needs --key-file (created with a new random key when missing)",
            )
            .into());
        }
        (false, Some(_)) => return Err(ApiError::invalid("--key-file goes with --encrypt").into()),
        (false, None) => None,
    };
    let repo = BackupRepo {
        name: req.name.clone(),
        location,
        key_file,
        created_at: now(),
    };
    let key = records::backup_repo_key(&repo.name);
    if state.backup_repos.get(&key).is_some() {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("a backup repository named {} already exists", repo.name),
        )
        .into());
    }
    let (_, created) = location::open_or_create(
        &location_of(&repo),
        repo.key_file.as_deref().map(FsPath::new),
    )
    .await
    .map_err(backup_err)?;
    register(&state, &repo).await?;
    tracing::info!(repo = %repo.name, created, "backup repository added");
    Ok((StatusCode::CREATED, AxumJson(repo)))
}

/// Records `repo` in the store unless a repository of that name exists.
async fn register(state: &AppState, repo: &BackupRepo) -> ApiResult<()> {
    let key = records::backup_repo_key(&repo.name);
    let out = state
        .store
        .txn(
            vec![Compare::ModRevision {
                key: key.clone(),
                equals: 0,
            }],
            vec![Op::Put {
                key,
                value: json_bytes(repo)?,
            }],
        )
        .await?;
    if !out.succeeded {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("a backup repository named {} already exists", repo.name),
        )
        .into());
    }
    state
        .backup_repos
        .wait_for(out.revision, AppState::CATCH_UP)
        .await;
    Ok(())
}

/// The repository named `name`, or every repository.
fn repos_named(state: &AppState, name: Option<&str>) -> ApiResult<Vec<Arc<BackupRepo>>> {
    Ok(match name {
        Some(r) => vec![find_repo(state, r)?],
        None => state.backup_repos.values(),
    })
}

fn parse_location(path: &Option<String>, s3: &Option<String>) -> ApiResult<RepoLocation> {
    Ok(match (path, s3) {
        (Some(p), None) if p.starts_with('/') => RepoLocation::Dir {
            path: p.trim_end_matches('/').to_string(),
        },
        (Some(p), None) => {
            return Err(ApiError::invalid(format!("--path must be absolute, got {p:?}")).into());
        }
        (None, Some(u)) if u.starts_with("s3://") => RepoLocation::S3 { url: u.clone() },
        (None, Some(u)) => {
            return Err(ApiError::invalid(format!("--s3 must be an s3:// URL, got {u:?}")).into());
        }
        _ => return Err(ApiError::invalid("give exactly one of --path or --s3").into()),
    })
}

/// Replicate a repository to another location (another site): chunks before the indexes that
/// name them, so the copy is a valid repository at every moment and an interrupted sync
/// resumes. With `as`, the copy is registered as a repository (same key file).
#[utoipa::path(post, path = "/api/v1/backup/repos/{name}/sync", params(("name" = String, Path)),
    request_body = novacron_api_types::backup::RepoSyncRequest,
    responses((status = 200, body = Object), (status = 400, body = ApiError)))]
pub async fn sync(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<novacron_api_types::backup::RepoSyncRequest>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    let src = find_repo(&state, &name)?;
    let target = BackupRepo {
        name: req.r#as.clone().unwrap_or_default(),
        location: parse_location(&req.path, &req.s3)?,
        key_file: src.key_file.clone(),
        created_at: now(),
    };
    if target.location == src.location {
        return Err(ApiError::invalid("the copy must live somewhere else than the source").into());
    }
    if let Some(n) = &req.r#as {
        validate_name("repository", n)?;
        if state
            .backup_repos
            .get(&records::backup_repo_key(n))
            .is_some()
        {
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!("a backup repository named {n} already exists; sync without --as to update its copy"),
            )
            .into());
        }
    }
    let from = location::backend(&location_of(&src)).map_err(backup_err)?;
    let to = location::backend(&location_of(&target)).map_err(backup_err)?;
    let report = novacron_backup::replicate::sync_repository(from, to, req.prune_target, 8)
        .await
        .map_err(backup_err)?;
    if req.r#as.is_some() {
        register(&state, &target).await?;
    }
    tracing::info!(repo = %name, to = ?target.location, ?report, "repository synced");
    Ok(AxumJson(
        serde_json::to_value(&report).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// Repositories.
#[utoipa::path(get, path = "/api/v1/backup/repos", responses((status = 200, body = Vec<BackupRepo>)))]
pub async fn repo_list(State(state): State<Arc<AppState>>) -> ApiResult<AxumJson<Vec<BackupRepo>>> {
    Ok(AxumJson(
        state
            .backup_repos
            .values()
            .iter()
            .map(|r| (**r).clone())
            .collect(),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    pub vm: Option<String>,
    pub repo: Option<String>,
}

/// What `project`'s backups hold in each repository, as its `--max-backup-storage` counts
/// them (each distinct chunk once, before compression: see
/// [`novacron_backup::index::distinct_data_bytes`]). Fails when a repository cannot be
/// read, naming it, rather than checking a limit against what the others hold. An index
/// that cannot be decoded names no project, so it counts for none (it is logged).
pub async fn held_by_project(state: &AppState, project: &str) -> ApiResult<Vec<(String, u64)>> {
    let mut out = vec![];
    for r in repos_named(state, None)? {
        let held = async {
            open(&r)
                .await?
                .project_data_bytes(project)
                .await
                .map_err(backup_err)
        };
        let bytes = held.await.map_err(|ApiFailure(e)| {
            ApiFailure(ApiError::unavailable(format!(
                "backup repository {} cannot be read to count project {project}'s backups: {}",
                r.name, e.message
            )))
        })?;
        out.push((r.name.clone(), bytes));
    }
    Ok(out)
}

/// The share of `project`'s `--max-backup-storage` a new backup into `repo` may use, or a
/// refusal when its backups already hold all of it; `None` when the project has no limit.
async fn storage_limit(
    state: &AppState,
    project: &str,
    repo: &str,
) -> ApiResult<Option<BackupStorageLimit>> {
    let (p, _) = crate::quota::project(state, project).await?;
    let Some(max_bytes) = p.limits.max_backup_storage_bytes else {
        return Ok(None);
    };
    let held = held_by_project(state, project).await?;
    let total: u64 = held.iter().map(|(_, b)| b).sum();
    let here: u64 = held.iter().filter(|(r, _)| r == repo).map(|(_, b)| b).sum();
    let limit = BackupStorageLimit {
        max_bytes,
        elsewhere_bytes: total - here,
    };
    if total >= max_bytes {
        let refusal = limit.refusal(project, total, None);
        return Err(ApiError::new(ErrorCode::NoCapacity, refusal).into());
    }
    Ok(Some(limit))
}

/// The current project's backups in every repository (or one), oldest first.
#[utoipa::path(get, path = "/api/v1/backups", params(ListQuery), responses((status = 200, body = Vec<Backup>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<AxumJson<Vec<Backup>>> {
    let repos = repos_named(&state, q.repo.as_deref())?;
    let project = crate::tenancy::current_project();
    let mut out = vec![];
    for r in repos {
        let repo = open(&r).await?;
        for b in repo
            .list_backups(Some(&project), q.vm.as_deref())
            .await
            .map_err(backup_err)?
        {
            out.push(Backup {
                id: b.id.0.clone(),
                repo: r.name.clone(),
                vm: b.vm,
                project: b.project,
                created_unix_ms: b.created_unix_ms,
                size_bytes: b.size_bytes,
                disks: b.disks,
                error: b.error,
            });
        }
    }
    out.sort_by_key(|b| b.created_unix_ms.unwrap_or(0));
    Ok(AxumJson(out))
}

async fn locate(
    state: &AppState,
    id: &str,
    repo: Option<&str>,
) -> ApiResult<(Arc<BackupRepo>, novacron_backup::BackupIndex)> {
    // Another project's backup is answered like one that does not exist.
    let project = crate::tenancy::current_project();
    for r in repos_named(state, repo)? {
        let repo = open(&r).await?;
        match repo
            .load_index(&novacron_backup::BackupId(id.to_string()))
            .await
        {
            Ok(idx) if idx.project() == project => return Ok((r, idx)),
            Ok(_) | Err(novacron_backup::BackupError::UnknownBackup(_)) => continue,
            Err(e) => return Err(backup_err(e)),
        }
    }
    Err(ApiError::not_found(format!(
        "no backup {id} in any repository: see `novacron backup list`"
    ))
    .into())
}

/// One backup, with its index (disks, chunks, how it was read).
#[utoipa::path(get, path = "/api/v1/backups/{id}", params(("id" = String, Path)), responses((status = 200, body = Object), (status = 404, body = ApiError)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    let (repo, idx) = locate(&state, &id, None).await?;
    let mut v = serde_json::to_value(&idx).map_err(|e| ApiError::internal(e.to_string()))?;
    v["repo"] = serde_json::Value::String(repo.name.clone());
    Ok(AxumJson(v))
}

/// Starts a backup of `vm` on its node's agent; returns the operation.
pub async fn start_backup(
    state: &AppState,
    vm: &str,
    repo: &BackupRepo,
    retention: Option<Retention>,
) -> ApiResult<Operation> {
    validate_name("vm", vm)?;
    let rec = state
        .vms
        .get(&records::vm_key(&crate::tenancy::current_project(), vm))
        .ok_or_else(|| {
            ApiError::not_found(format!("no VM named {vm:?}: see `novacron vm list`"))
        })?;
    if rec.disk_bytes.is_none() {
        return Err(ApiError::invalid(format!(
            "VM {vm} has no disk to back up (create it with --disk)"
        ))
        .into());
    }
    let node = super::vms::node_of(state, &rec)?;
    let storage_limit = storage_limit(state, &rec.project, &repo.name).await?;
    let op = new_operation(
        "vm.backup",
        &rec.project,
        &format!("vm/{vm}"),
        &format!("backing up to {}", repo.name),
    );
    state.store.txn(vec![], vec![put_op(&op)?]).await?;
    let job = BackupJob {
        operation: op.id.clone(),
        repo: repo.clone(),
        retention,
        storage_limit,
    };
    let path = format!("/agent/v1/vms/{}/{}/backup", rec.project, rec.name);
    match super::agent::call_agent::<_, serde_json::Value>(state, &node, &path, &job).await {
        Ok(_) => Ok(op),
        Err(err) => {
            finish(
                state.store.as_ref(),
                &op.id,
                novacron_api_types::OperationState::Failed,
                err.message.clone(),
            )
            .await?;
            Err(err.into())
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeleteQuery {
    /// The repository holding the backup (default: searched in every repository).
    pub repo: Option<String>,
}

/// Delete one of the project's backups: its index goes at once (the backup is no longer
/// listed, restored or counted against `--max-backup-storage`); chunks no other backup uses
/// go at the repository's next `gc`. Later backups of the VM stay whole (each lists all its
/// chunks).
#[utoipa::path(delete, path = "/api/v1/backups/{id}", params(("id" = String, Path), DeleteQuery),
    responses((status = 200, body = Object), (status = 404, body = ApiError)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    let (r, idx) = locate(&state, &id, q.repo.as_deref()).await?;
    open(&r).await?.forget(&idx.id).await.map_err(backup_err)?;
    tracing::info!(backup = %id, repo = %r.name, vm = %idx.vm, project = idx.project(), "backup deleted");
    Ok(AxumJson(
        serde_json::json!({"deleted": id, "repo": r.name, "vm": idx.vm}),
    ))
}

/// Back up a VM (live when it runs; incremental after the first).
#[utoipa::path(post, path = "/api/v1/vms/{name}/backup", params(("name" = String, Path)), request_body = BackupCreateRequest,
    responses((status = 202, body = OperationRef), (status = 404, body = ApiError)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<BackupCreateRequest>,
) -> ApiResult<(StatusCode, AxumJson<OperationRef>)> {
    let repo = find_repo(&state, &req.repo)?;
    let op = start_backup(&state, &name, &repo, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        AxumJson(OperationRef { operation: op }),
    ))
}

/// Restore a backup into a new VM (`as`), or over its original VM (stopped).
#[utoipa::path(post, path = "/api/v1/backups/{id}/restore", params(("id" = String, Path)), request_body = BackupRestoreRequest,
    responses((status = 202, body = OperationRef), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn restore(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(req): Json<BackupRestoreRequest>,
) -> ApiResult<(StatusCode, AxumJson<OperationRef>)> {
    let (repo, idx) = locate(&state, &id, req.repo.as_deref()).await?;
    if req.over_original {
        if req.r#as.is_some() {
            return Err(ApiError::invalid("give either --as NAME or --over, not both").into());
        }
        let vm = idx.vm.clone();
        let rec = super::vms::find(&state, &vm)?;
        // A UEFI VM's variable store and a TPM's state are restored with the disks; they are
        // not disks.
        let mut held: Vec<&str> = idx
            .disks
            .iter()
            .map(|d| d.name.as_str())
            .filter(|n| !novacron_api_types::disks::is_side_file(n))
            .collect();
        let mut has: Vec<&str> = std::iter::once(novacron_api_types::disks::DISK0)
            .chain(rec.data_disks.iter().map(|d| d.name.as_str()))
            .collect();
        held.sort_unstable();
        has.sort_unstable();
        if held != has {
            return Err(ApiError::conflict(format!(
                "backup {id} holds disks {} and VM {vm} has {}: restoring over it would mix two moments; restore it as a new VM (`novacron backup restore {id} --as NAME`)",
                held.join(", "),
                has.join(", ")
            ))
            .into());
        }
        let repo = (*repo).clone();
        let id2 = id.clone();
        let op = super::vms::change(
            &state,
            &vm,
            "vm.restore",
            "restoring the disk",
            crate::lifecycle::Event::RestoreOver { repo, backup: id2 },
        )
        .await?;
        return Ok((
            StatusCode::ACCEPTED,
            AxumJson(OperationRef { operation: op }),
        ));
    }
    let name = req.r#as.clone().ok_or_else(|| {
        ApiError::invalid(
            "say where to restore: --as NEW-NAME, or --over to replace the original (stopped) VM",
        )
    })?;
    // The VM's definition travels inside the backup.
    let spec: novacron_api_types::agent::DesiredVm = serde_json::from_value(idx.vm_spec.clone())
        .map_err(|e| {
            ApiError::invalid(format!(
                "backup {id} has no usable VM definition ({e}); it cannot be restored as a VM"
            ))
        })?;
    for d in &spec.data_disks {
        d.validate()?;
    }
    let create = crate::disk_ops::restore_request(&spec, &name, req.node.clone());
    let source = RestoreSource {
        repo: (*repo).clone(),
        backup: id.clone(),
        generation: 1,
    };
    // The added disks too (the agent fills each from the backup before the first start),
    // and the added NICs in their ports, with new MACs and addresses.
    let op = super::vms::create_vm_from(
        &state,
        create,
        Some(source),
        None,
        spec.data_disks.clone(),
        spec.added_nics.clone(),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        AxumJson(OperationRef { operation: op }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct VerifyQuery {
    /// Also re-hash chunks no backup references.
    pub all: Option<bool>,
}

/// Re-hash every chunk and decode every index; names the backups a damaged chunk affects.
#[utoipa::path(post, path = "/api/v1/backup/repos/{name}/verify", params(("name" = String, Path), VerifyQuery), responses((status = 200, body = Object)))]
pub async fn verify(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<VerifyQuery>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    let r = find_repo(&state, &name)?;
    let repo = open(&r).await?;
    let report = repo
        .verify(&novacron_backup::repo::VerifyOptions {
            include_unreferenced: q.all.unwrap_or(false),
            concurrency: None,
        })
        .await
        .map_err(backup_err)?;
    Ok(AxumJson(
        serde_json::to_value(&report).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

pub fn policy(r: &Retention) -> novacron_backup::retention::RetentionPolicy {
    novacron_backup::retention::RetentionPolicy {
        keep_last: r.keep_last,
        keep_hourly: r.keep_hourly,
        keep_daily: r.keep_daily,
        keep_weekly: r.keep_weekly,
        keep_monthly: r.keep_monthly,
        keep_yearly: r.keep_yearly,
    }
}

/// Forget backups the retention rules do not keep (chunks go at the next gc).
#[utoipa::path(post, path = "/api/v1/backup/repos/{name}/prune", params(("name" = String, Path)), request_body = PruneRequest, responses((status = 200, body = Object), (status = 400, body = ApiError)))]
pub async fn prune(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<PruneRequest>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    if req.retention.is_empty() {
        return Err(ApiError::invalid(
            "give at least one --keep-* rule (pruning with none would remove every backup)",
        )
        .into());
    }
    let r = find_repo(&state, &name)?;
    let repo = open(&r).await?;
    let report = repo
        .prune(
            &policy(&req.retention),
            None,
            req.vm.as_deref(),
            req.dry_run,
        )
        .await
        .map_err(backup_err)?;
    Ok(AxumJson(
        serde_json::to_value(&report).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// Delete chunks no backup references (never one a running backup still needs).
#[utoipa::path(post, path = "/api/v1/backup/repos/{name}/gc", params(("name" = String, Path)), responses((status = 200, body = Object)))]
pub async fn gc(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    let r = find_repo(&state, &name)?;
    let repo = open(&r).await?;
    let report = repo
        .gc(&novacron_backup::repo::GcOptions::default())
        .await
        .map_err(backup_err)?;
    Ok(AxumJson(
        serde_json::to_value(&report).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// Back up a VM periodically (and prune its backups with the rules after each).
#[utoipa::path(post, path = "/api/v1/backup/schedules", request_body = BackupSchedule, responses((status = 200, body = BackupSchedule), (status = 400, body = ApiError)))]
pub async fn schedule_set(
    State(state): State<Arc<AppState>>,
    Json(mut s): Json<BackupSchedule>,
) -> ApiResult<AxumJson<BackupSchedule>> {
    validate_name("vm", &s.vm)?;
    if crate::tenancy::current_project() != DEFAULT_PROJECT {
        return Err(
            ApiError::invalid("backup schedules exist only in project default so far").into(),
        );
    }
    find_repo(&state, &s.repo)?;
    if state
        .vms
        .get(&records::vm_key(DEFAULT_PROJECT, &s.vm))
        .is_none()
    {
        return Err(ApiError::not_found(format!("no VM named {:?}", s.vm)).into());
    }
    if s.every_seconds < 60 {
        return Err(ApiError::invalid("--every must be at least 1m").into());
    }
    s.last_run = 0;
    s.last_operation = None;
    let rev = state
        .store
        .put(&records::backup_schedule_key(&s.vm), json_bytes(&s)?)
        .await?;
    state
        .backup_schedules
        .wait_for(rev, AppState::CATCH_UP)
        .await;
    Ok(AxumJson(s))
}

/// Schedules.
#[utoipa::path(get, path = "/api/v1/backup/schedules", responses((status = 200, body = Vec<BackupSchedule>)))]
pub async fn schedule_list(
    State(state): State<Arc<AppState>>,
) -> ApiResult<AxumJson<Vec<BackupSchedule>>> {
    Ok(AxumJson(
        state
            .backup_schedules
            .values()
            .iter()
            .map(|s| (**s).clone())
            .collect(),
    ))
}

/// Remove a VM's schedule.
#[utoipa::path(delete, path = "/api/v1/backup/schedules/{vm}", params(("vm" = String, Path)), responses((status = 200), (status = 404, body = ApiError)))]
pub async fn schedule_delete(
    State(state): State<Arc<AppState>>,
    Path(vm): Path<String>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    validate_name("vm", &vm)?;
    let key = records::backup_schedule_key(&vm);
    if state.store.get(&key).await?.is_none() {
        return Err(ApiError::not_found(format!("VM {vm} has no backup schedule")).into());
    }
    let rev = state.store.delete(&key).await?;
    state
        .backup_schedules
        .wait_for(rev, AppState::CATCH_UP)
        .await;
    Ok(AxumJson(serde_json::json!({"deleted": vm})))
}

/// Runs due schedules (a leader-only controller).
pub async fn schedule_controller(state: Arc<AppState>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        for s in state.backup_schedules.values() {
            if now() < s.last_run + s.every_seconds {
                continue;
            }
            // One at a time per VM: skip while the previous run is still going.
            if let Some(id) = &s.last_operation
                && let Ok(Some(kv)) = state.store.get(&records::op_key(id)).await
                && serde_json::from_slice::<Operation>(&kv.value).is_ok_and(|o| !o.is_done())
            {
                continue;
            }
            let Some(repo) = state.backup_repos.get(&records::backup_repo_key(&s.repo)) else {
                continue;
            };
            let retention = (!s.retention.is_empty()).then_some(s.retention);
            let result = start_backup(&state, &s.vm, &repo, retention).await;
            let mut next = (*s).clone();
            next.last_run = now();
            next.last_operation = result.as_ref().ok().map(|o| o.id.clone());
            if let Err(e) = &result {
                tracing::warn!(vm = %s.vm, error = %e.0.message, "scheduled backup could not start");
            }
            let _ = state
                .store
                .put(
                    &records::backup_schedule_key(&s.vm),
                    serde_json::to_vec(&next).unwrap_or_default(),
                )
                .await;
        }
    }
}

/// An agent's progress on an operation it runs (backups).
#[utoipa::path(put, path = "/api/v1/agent/operations/{id}", params(("id" = String, Path)), request_body = novacron_api_types::backup::OperationUpdate, responses((status = 200)))]
pub async fn agent_update_operation(
    State(state): State<Arc<AppState>>,
    NodeCaller(node): NodeCaller,
    Path(id): Path<String>,
    Json(u): Json<novacron_api_types::backup::OperationUpdate>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    let key = records::op_key(&id);
    let (id, node, u) = (&id, &node, &u);
    typed_store::update(state.store.as_ref(), &key, |mut op: Operation| {
        // Only the node that runs the VM may report on its operations.
        let vm = op.target.strip_prefix("vm/").unwrap_or("");
        let on_node = state
            .vms
            .get(&records::vm_key(&op.project, vm))
            .is_some_and(|v: Arc<VmRecord>| &v.node == node);
        let change = if !on_node {
            Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!("operation {id} is not about a VM of node {node}"),
            )
            .into())
        } else if op.is_done() {
            Ok(Change::Keep)
        } else {
            op.state = u.state;
            op.message = u.message.clone();
            op.progress = u.progress;
            op.updated_at = now();
            Ok(Change::Write(op))
        };
        std::future::ready(change)
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no operation {id}")))?;
    Ok(AxumJson(serde_json::json!({})))
}
