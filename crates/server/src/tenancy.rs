//! Projects, local users, role bindings and API tokens in the control plane: their store
//! records and keys, password hashing, and the [`Principal`] a token resolves to (its roles
//! in the cluster and in each project). The role routers' gates (`api::roles`) decide with
//! it; the handlers (`api::tenancy`) parse and delegate here.
//!
//! Upgrade in place: the `default` project is created if missing ([`ensure_default_project`]),
//! records written before projects existed already carry `project: "default"`, and the
//! original admin token ([`crate::records::TokenRecord::Admin`]) is a cluster-admin.

use crate::records::store_err;
use std::collections::BTreeMap;
use std::sync::Arc;

use novacron_api_types::tenancy::{ApiToken, Project, Role, RoleBinding};
use novacron_api_types::{ApiError, DEFAULT_PROJECT, ErrorCode, UnixSeconds};
use novacron_store::Store;
use serde::{Deserialize, Serialize};

use crate::records::{ROOT, now};
use crate::state::AppState;

pub fn project_prefix() -> String {
    format!("{ROOT}projects/")
}
pub fn user_prefix() -> String {
    format!("{ROOT}users/")
}
pub fn user_key(name: &str) -> String {
    format!("{ROOT}users/{name}")
}
pub fn binding_prefix() -> String {
    format!("{ROOT}rolebindings/")
}
/// One binding per (user, scope): `_cluster` cannot be a project name (names start with a
/// letter), so it stands for the cluster.
pub fn binding_key(user: &str, project: Option<&str>) -> String {
    format!(
        "{ROOT}rolebindings/{user}/{}",
        project.unwrap_or("_cluster")
    )
}
/// The usage record of a project: rewritten by every create that counts against its limits,
/// which compares its revision, so two creates cannot both pass the check on the same usage.
pub fn usage_key(project: &str) -> String {
    format!("{ROOT}usage/{project}")
}

/// A local user. The password is kept only as an argon2id PHC string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    #[serde(default)]
    pub password_hash: Option<String>,
    pub created_at: UnixSeconds,
}

impl crate::typed_store::Record for UserRecord {
    const WHAT: &'static str = "user record";
}
impl crate::typed_store::Record for Project {
    const WHAT: &'static str = "project record";
}
impl crate::typed_store::Record for crate::records::TokenRecord {
    const WHAT: &'static str = "token record";
}

/// An API token (stored under `token_key(hash)` like every token; the hash is BLAKE3 of the
/// secret, which is printed once).
pub type ApiTokenRecord = ApiToken;

/// The public id of the API token whose secret hashes to `hash`.
pub fn api_token_id(hash: &str) -> String {
    format!("tk-{}", hash.get(..16).unwrap_or(hash))
}

/// Hashes `password` with argon2id (the crate's defaults: 19 MiB, 2 passes) and a random
/// 128-bit salt.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| ApiError::internal("the system random generator failed"))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ApiError::internal(format!("password salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("hashing the password: {e}")))
}

/// Whether `password` matches the stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Who a request acts for, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// For messages and logs: `admin token`, `user alice`, `token tk-…`.
    pub who: String,
    pub user: Option<String>,
    pub token_id: Option<String>,
    /// Its cluster role (cluster-admin or cluster-viewer), if any.
    pub cluster: Option<Role>,
    /// Its role in each project it is bound to.
    pub projects: BTreeMap<String, Role>,
    /// The project of a project-scoped token: its requests' project unless they name one.
    pub home: Option<String>,
}

impl Principal {
    /// The original admin token: a cluster-admin.
    pub fn admin_token() -> Principal {
        Principal {
            who: "admin token".into(),
            user: None,
            token_id: None,
            cluster: Some(Role::ClusterAdmin),
            projects: BTreeMap::new(),
            home: None,
        }
    }

    /// Its role in `project` (a cluster role counts in every project).
    pub fn role_in(&self, project: &str) -> Option<Role> {
        let direct = self.projects.get(project).copied();
        let via_cluster = self.cluster.map(Role::in_any_project);
        direct.max(via_cluster)
    }

    pub fn is_cluster_admin(&self) -> bool {
        self.cluster == Some(Role::ClusterAdmin)
    }

    /// Whether it may see `project` at all.
    pub fn sees(&self, project: &str) -> bool {
        self.role_in(project).is_some()
    }

    /// Whether it may read `project`'s audit records: any cluster role, or admin there.
    pub fn reads_audit_of(&self, project: &str) -> bool {
        self.cluster.is_some()
            || self
                .projects
                .get(project)
                .is_some_and(|r| *r >= Role::Admin)
    }
}

/// The bindings of `user` as (cluster role, project roles).
pub fn bindings_of(
    bindings: &BTreeMap<String, Arc<RoleBinding>>,
    user: &str,
) -> (Option<Role>, BTreeMap<String, Role>) {
    let mut cluster = None;
    let mut projects = BTreeMap::new();
    for b in bindings.values().filter(|b| b.user == user) {
        match &b.project {
            None => cluster = cluster.max(Some(b.role)),
            Some(p) => {
                let e = projects.entry(p.clone()).or_insert(b.role);
                *e = (*e).max(b.role);
            }
        }
    }
    (cluster, projects)
}

/// What an API token may do: the token's own scope (project and role), and, when it acts for
/// a user, never more than that user's bindings allow today (a removed binding takes effect
/// at once on every token of the user).
pub fn resolve_token(
    tok: &ApiTokenRecord,
    user_bindings: Option<(Option<Role>, BTreeMap<String, Role>)>,
) -> Principal {
    let who = match &tok.user {
        Some(u) => format!("user {u} (token {})", tok.id),
        None => format!("token {}", tok.id),
    };
    let mut p = Principal {
        who,
        user: tok.user.clone(),
        token_id: Some(tok.id.clone()),
        cluster: None,
        projects: BTreeMap::new(),
        home: tok.project.clone(),
    };
    let user_role_in = |ub: &(Option<Role>, BTreeMap<String, Role>), project: &str| {
        ub.1.get(project)
            .copied()
            .max(ub.0.map(Role::in_any_project))
    };
    match (tok.role, &tok.project, &user_bindings) {
        (Some(r), _, None) if r.is_cluster() => p.cluster = Some(r),
        (Some(r), _, Some(ub)) if r.is_cluster() => {
            p.cluster = ub.0.min(Some(r)).filter(|_| ub.0.is_some());
            p.projects =
                ub.1.iter()
                    .map(|(k, v)| (k.clone(), (*v).min(r.in_any_project())))
                    .collect();
        }
        (Some(r), Some(project), None) => {
            p.projects.insert(project.clone(), r);
        }
        (Some(r), Some(project), Some(ub)) => {
            if let Some(ur) = user_role_in(ub, project) {
                p.projects.insert(project.clone(), ur.min(r));
            }
        }
        (None, Some(project), Some(ub)) => {
            if let Some(ur) = user_role_in(ub, project) {
                p.projects.insert(project.clone(), ur);
            }
        }
        (None, None, Some(ub)) => {
            p.cluster = ub.0;
            p.projects = ub.1.clone();
        }
        // A project role without a project: refused at creation; grants nothing.
        (Some(_), None, _) | (None, _, None) => {}
    }
    p
}

/// Why an API token no longer authenticates, if it does not.
pub fn token_refusal(tok: &ApiTokenRecord, users_exist: bool, now: UnixSeconds) -> Option<String> {
    if let Some(t) = tok.expires_at
        && t <= now
    {
        return Some(format!(
            "token {} expired: ask for a new one (`novacron token create`, or `novacron login`)",
            tok.id
        ));
    }
    if tok.user.is_some() && !users_exist {
        return Some(format!("the user of token {} no longer exists", tok.id));
    }
    None
}

/// The principal of an API token, from the mirrors of users and bindings.
pub fn principal_of(state: &AppState, tok: &ApiTokenRecord) -> Result<Principal, String> {
    let user_exists = tok
        .user
        .as_ref()
        .is_none_or(|u| state.users.get(&user_key(u)).is_some());
    if let Some(why) = token_refusal(tok, user_exists, now()) {
        return Err(why);
    }
    let ub = tok
        .user
        .as_ref()
        .map(|u| state.bindings.with(|b| bindings_of(b, u)));
    Ok(resolve_token(tok, ub))
}

tokio::task_local! {
    /// The project of the request being handled (set by the role gate).
    static REQUEST_PROJECT: String;
}

/// Runs `fut` (a request's handler) with `project` as its project.
pub async fn with_project<F: Future>(project: String, fut: F) -> F::Output {
    REQUEST_PROJECT.scope(project, fut).await
}

/// The project of the request being handled: what the role gate resolved and checked. Outside
/// a project route (controllers, agent routes) it is `default`.
pub fn current_project() -> String {
    REQUEST_PROJECT
        .try_with(String::clone)
        .unwrap_or_else(|_| DEFAULT_PROJECT.to_string())
}

/// Creates the `default` project if it is missing, and gives a project record written
/// before projects had fields its defaults (an upgrade in place).
pub async fn ensure_default_project(store: &dyn Store) -> Result<(), novacron_store::StoreError> {
    let key = crate::records::project_key(DEFAULT_PROJECT);
    if store.get(&key).await?.is_none() {
        let rec = Project {
            name: DEFAULT_PROJECT.into(),
            description: "the project every resource belonged to before projects".into(),
            limits: Default::default(),
            created_at: now(),
            deleting: false,
        };
        let _ = store
            .txn(
                vec![novacron_store::Compare::ModRevision {
                    key: key.clone(),
                    equals: 0,
                }],
                vec![novacron_store::Op::Put {
                    key,
                    value: serde_json::to_vec(&rec).unwrap_or_default(),
                }],
            )
            .await?;
        tracing::info!("created the default project");
    }
    Ok(())
}

/// "no project named …", the same answer whether it does not exist or the caller may not
/// see it (names do not leak).
pub fn no_project(project: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no project named {project:?}: see `novacron project list`"),
    )
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::internal(format!("encoding: {e}")))
}

fn name_ok(kind: &'static str, name: &str) -> Result<(), ApiError> {
    novacron_api_types::validate_name(kind, name).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Creates a project (409 if it exists).
pub async fn create_project(
    state: &AppState,
    req: &novacron_api_types::tenancy::ProjectCreateRequest,
) -> Result<Project, ApiError> {
    name_ok("project", &req.name)?;
    if req.name == novacron_api_types::PUBLIC_IMAGES {
        return Err(ApiError::invalid(format!(
            "{:?} is reserved: public images live there; pick another project name",
            req.name
        )));
    }
    let rec = Project {
        name: req.name.clone(),
        description: req.description.clone(),
        limits: Default::default(),
        created_at: now(),
        deleting: false,
    };
    let key = crate::records::project_key(&rec.name);
    let out = state
        .store
        .txn(
            vec![novacron_store::Compare::ModRevision {
                key: key.clone(),
                equals: 0,
            }],
            vec![novacron_store::Op::Put {
                key,
                value: encode(&rec)?,
            }],
        )
        .await
        .map_err(store_err)?;
    if !out.succeeded {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("project {} already exists", rec.name),
        ));
    }
    state
        .projects
        .wait_for(out.revision, AppState::CATCH_UP)
        .await;
    tracing::info!(project = %rec.name, "project created");
    Ok(rec)
}

/// Every project `principal` may see.
pub fn list_projects(state: &AppState, principal: &Principal) -> Vec<Project> {
    state
        .projects
        .values()
        .iter()
        .filter(|p| principal.sees(&p.name))
        .map(|p| (**p).clone())
        .collect()
}

/// Sets a project's description and limits (the limits given replace the current ones).
pub async fn set_project(
    state: &AppState,
    name: &str,
    req: &novacron_api_types::tenancy::ProjectSetRequest,
) -> Result<Project, ApiError> {
    name_ok("project", name)?;
    let key = crate::records::project_key(name);
    let l = req.limits;
    let updated =
        crate::typed_store::update(state.store.as_ref(), &key, |mut p: Project| async move {
            if let Some(d) = &req.description {
                p.description = d.clone();
            }
            let lim = &mut p.limits;
            for (new, old) in [
                (l.max_vms, &mut lim.max_vms),
                (l.max_cpus, &mut lim.max_cpus),
                (l.max_memory_bytes, &mut lim.max_memory_bytes),
                (l.max_disk_bytes, &mut lim.max_disk_bytes),
                (l.max_networks, &mut lim.max_networks),
                (
                    l.max_backup_storage_bytes,
                    &mut lim.max_backup_storage_bytes,
                ),
            ] {
                if new.is_some() {
                    *old = new;
                }
            }
            Ok(crate::typed_store::Change::Write(p))
        })
        .await
        .map_err(|e| e.0)?
        .ok_or_else(|| no_project(name))?;
    state
        .projects
        .wait_for(updated.revision, AppState::CATCH_UP)
        .await;
    tracing::info!(project = name, limits = ?updated.record.limits, "project changed");
    Ok(updated.record)
}

/// Deletes a project that holds nothing (no VMs, networks or images), with its role
/// bindings, its usage record, its security groups and the tokens scoped to it.
///
/// Creates in a project without limits do not touch its usage record, so the delete first
/// marks the project `deleting` (a write of the project record): every create still in
/// flight compared the record's old revision and fails, and every later one sees the mark
/// and is refused. What the project holds is counted after the mark, and the delete
/// compares the marked record. When the project still holds something the mark is taken
/// off again and the delete is refused; a mark left by a crash is taken off (or the
/// project deleted) by the next `project delete`.
pub async fn delete_project(state: &AppState, name: &str) -> Result<Project, ApiError> {
    name_ok("project", name)?;
    if name == DEFAULT_PROJECT {
        return Err(ApiError::conflict("project default cannot be deleted"));
    }
    for _ in 0..20 {
        let Some(marked) = set_deleting(state, name, true).await? else {
            return Err(crate::tenancy::no_project(name));
        };
        let (project, project_rev) = (marked.record, marked.revision);
        let used = crate::quota::usage(state, name).await?;
        let (images, _) = state
            .store
            .list(&crate::records::image_key(name, ""))
            .await
            .map_err(store_err)?;
        if used.vms > 0 || used.networks > 0 || !images.is_empty() {
            if let Err(e) = set_deleting(state, name, false).await {
                tracing::warn!(project = name, error = %e.message, "cannot take the deleting mark off the project");
            }
            return Err(ApiError::conflict(format!(
                "project {name} still holds {} VM(s), {} network(s) and {} image(s): delete them first",
                used.vms,
                used.networks,
                images.len()
            )));
        }
        let mut ops = vec![
            novacron_store::Op::Delete {
                key: crate::records::project_key(name),
            },
            novacron_store::Op::Delete {
                key: usage_key(name),
            },
        ];
        state.bindings.with(|b| {
            for (k, v) in b {
                if v.project.as_deref() == Some(name) {
                    ops.push(novacron_store::Op::Delete { key: k.clone() });
                }
            }
        });
        // Its security groups go with it: with no VM left, nothing uses them.
        for g in state
            .security_groups
            .values_under(&crate::records::security_group_key(name, ""))
        {
            ops.push(novacron_store::Op::Delete {
                key: crate::records::security_group_key(name, &g.name),
            });
        }
        state.tokens.with(|t| {
            for (k, v) in t {
                if let crate::records::TokenRecord::Api(tok) = v.as_ref()
                    && tok.project.as_deref() == Some(name)
                {
                    ops.push(novacron_store::Op::Delete { key: k.clone() });
                }
            }
        });
        let out = state
            .store
            .txn(
                vec![novacron_store::Compare::ModRevision {
                    key: crate::records::project_key(name),
                    equals: project_rev,
                }],
                ops,
            )
            .await
            .map_err(store_err)?;
        if out.succeeded {
            state
                .projects
                .wait_for(out.revision, AppState::CATCH_UP)
                .await;
            tracing::info!(project = name, "project deleted");
            return Ok(Project {
                deleting: false,
                ..project
            });
        }
    }
    Err(ApiError::unavailable(format!(
        "project {name} kept changing while deleting it: try again"
    )))
}

/// Writes project `name`'s `deleting` mark (always a write, so that creates in flight fail
/// on the record's revision). `None` when there is no such project.
async fn set_deleting(
    state: &AppState,
    name: &str,
    deleting: bool,
) -> Result<Option<crate::typed_store::Updated<Project>>, ApiError> {
    crate::typed_store::update(
        state.store.as_ref(),
        &crate::records::project_key(name),
        |p: Project| {
            std::future::ready(Ok(crate::typed_store::Change::Write(Project {
                deleting,
                ..p
            })))
        },
    )
    .await
    .map_err(|e| e.0)
}

fn user_view(u: &UserRecord) -> novacron_api_types::tenancy::User {
    novacron_api_types::tenancy::User {
        name: u.name.clone(),
        has_password: u.password_hash.is_some(),
        created_at: u.created_at,
    }
}

/// Creates a local user (409 if the name is taken).
pub async fn create_user(
    state: &AppState,
    req: &novacron_api_types::tenancy::UserCreateRequest,
) -> Result<novacron_api_types::tenancy::User, ApiError> {
    name_ok("user", &req.name)?;
    let password_hash = match &req.password {
        Some(p) if p.len() < 8 => {
            return Err(ApiError::invalid(
                "the password is too short: use at least 8 characters",
            ));
        }
        Some(p) => Some(hash_password(p)?),
        None => None,
    };
    let rec = UserRecord {
        name: req.name.clone(),
        password_hash,
        created_at: now(),
    };
    let rev = crate::typed_store::create(state.store.as_ref(), &user_key(&rec.name), &rec, vec![])
        .await
        .map_err(|e| e.0)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::AlreadyExists,
                format!("user {} already exists", rec.name),
            )
        })?;
    state.users.wait_for(rev, AppState::CATCH_UP).await;
    tracing::info!(user = %rec.name, "user created");
    Ok(user_view(&rec))
}

pub fn list_users(state: &AppState) -> Vec<novacron_api_types::tenancy::User> {
    state.users.values().iter().map(|u| user_view(u)).collect()
}

/// Deletes a user with its role bindings and tokens.
pub async fn delete_user(
    state: &AppState,
    name: &str,
) -> Result<novacron_api_types::tenancy::User, ApiError> {
    name_ok("user", name)?;
    let rec = state.users.get(&user_key(name)).ok_or_else(|| {
        ApiError::not_found(format!("no user named {name:?}: see `novacron user list`"))
    })?;
    let mut ops = vec![novacron_store::Op::Delete {
        key: user_key(name),
    }];
    state.bindings.with(|b| {
        for (k, v) in b {
            if v.user == name {
                ops.push(novacron_store::Op::Delete { key: k.clone() });
            }
        }
    });
    state.tokens.with(|t| {
        for (k, v) in t {
            if let crate::records::TokenRecord::Api(tok) = v.as_ref()
                && tok.user.as_deref() == Some(name)
            {
                ops.push(novacron_store::Op::Delete { key: k.clone() });
            }
        }
    });
    let out = state.store.txn(vec![], ops).await.map_err(store_err)?;
    state.users.wait_for(out.revision, AppState::CATCH_UP).await;
    tracing::info!(user = name, "user deleted");
    Ok(user_view(&rec))
}

/// Binds a user to a role in a project or in the cluster. The role must fit the scope, and
/// the user and project must exist; the binding is written only while they do (compares on
/// both records).
pub async fn add_binding(state: &AppState, b: &RoleBinding) -> Result<RoleBinding, ApiError> {
    name_ok("user", &b.user)?;
    match (&b.project, b.role.is_cluster()) {
        (Some(_), true) => {
            return Err(ApiError::invalid(format!(
                "{} is a cluster role: bind it with --cluster, not --project",
                b.role
            )));
        }
        (None, false) => {
            return Err(ApiError::invalid(format!(
                "{} is a project role: bind it with --project P (cluster roles: cluster-admin, cluster-viewer)",
                b.role
            )));
        }
        _ => {}
    }
    let user = state
        .store
        .get(&user_key(&b.user))
        .await
        .map_err(store_err)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no user named {:?}: create it with `novacron user create {}`",
                b.user, b.user
            ))
        })?;
    let mut compares = vec![novacron_store::Compare::ModRevision {
        key: user_key(&b.user),
        equals: user.mod_revision,
    }];
    if let Some(p) = &b.project {
        name_ok("project", p)?;
        let (_, rev) = crate::quota::project(state, p).await?;
        compares.push(novacron_store::Compare::ModRevision {
            key: crate::records::project_key(p),
            equals: rev,
        });
    }
    let out = state
        .store
        .txn(
            compares,
            vec![novacron_store::Op::Put {
                key: binding_key(&b.user, b.project.as_deref()),
                value: encode(b)?,
            }],
        )
        .await
        .map_err(store_err)?;
    if !out.succeeded {
        return Err(ApiError::unavailable(
            "the user or project changed meanwhile: try again",
        ));
    }
    state
        .bindings
        .wait_for(out.revision, AppState::CATCH_UP)
        .await;
    tracing::info!(user = %b.user, project = ?b.project, role = %b.role, "role binding added");
    Ok(b.clone())
}

pub fn list_bindings(state: &AppState) -> Vec<RoleBinding> {
    state
        .bindings
        .values()
        .iter()
        .map(|b| (**b).clone())
        .collect()
}

/// Removes the binding of `user` in `project` (or in the cluster).
pub async fn remove_binding(
    state: &AppState,
    user: &str,
    project: Option<&str>,
) -> Result<RoleBinding, ApiError> {
    name_ok("user", user)?;
    let key = binding_key(user, project);
    let b = state.bindings.get(&key).ok_or_else(|| {
        ApiError::not_found(format!(
            "user {user} has no role binding in {}",
            project.map_or("the cluster".to_string(), |p| format!("project {p}"))
        ))
    })?;
    let rev = state.store.delete(&key).await.map_err(store_err)?;
    state.bindings.wait_for(rev, AppState::CATCH_UP).await;
    tracing::info!(user, project = ?project, "role binding removed");
    Ok((*b).clone())
}

/// Mints an API token for `principal`'s request: the secret (never stored) and its entry.
/// Nobody mints a token with more than they have: a cluster role or another user's token
/// needs cluster-admin; a project role needs admin in that project.
pub async fn create_token(
    state: &AppState,
    principal: &Principal,
    request_project: &str,
    req: &novacron_api_types::tenancy::TokenCreateRequest,
) -> Result<(String, ApiToken), ApiError> {
    if let Some(n) = &req.name {
        name_ok("token", n)?;
    }
    let denied = |why: String| ApiError::new(ErrorCode::PermissionDenied, why);
    let user = match (&req.user, &principal.user) {
        (Some(u), me) if me.as_deref() != Some(u.as_str()) && !principal.is_cluster_admin() => {
            return Err(denied(format!(
                "only a cluster-admin creates tokens for another user ({u})"
            )));
        }
        (Some(u), _) => Some(u.clone()),
        // A user's token without --user acts for that user.
        (None, Some(me)) => Some(me.clone()),
        (None, None) => None,
    };
    if let Some(u) = &user {
        name_ok("user", u)?;
        if state.users.get(&user_key(u)).is_none() {
            return Err(ApiError::not_found(format!(
                "no user named {u:?}: see `novacron user list`"
            )));
        }
    }
    let project = match req.role {
        Some(r) if r.is_cluster() => {
            if req.project.is_some() {
                return Err(ApiError::invalid(format!(
                    "{r} is a cluster role: a token with it names no project"
                )));
            }
            if !principal.is_cluster_admin() {
                return Err(denied(format!("only a cluster-admin creates {r} tokens")));
            }
            None
        }
        Some(_) => Some(
            req.project
                .clone()
                .unwrap_or_else(|| request_project.to_string()),
        ),
        None => req.project.clone(),
    };
    if let Some(p) = &project {
        crate::api::roles::authorize_project(state, principal, p, crate::api::Action::Admin)
            .map_err(|e| e.0)?;
    }
    if req.role.is_none() && user.is_none() {
        return Err(ApiError::invalid(
            "give the token a --role (and --project), or a --user it acts for",
        ));
    }
    let created_at = now();
    let expires_at = match req.ttl_seconds {
        Some(0) => return Err(ApiError::invalid("--expires must be positive")),
        Some(t) => Some(created_at.saturating_add(t)),
        None => None,
    };
    let secret = crate::auth::new_token();
    let hash = crate::auth::token_hash(&secret);
    let tok = ApiToken {
        id: api_token_id(&hash),
        name: req.name.clone(),
        user,
        project,
        role: req.role,
        created_at,
        expires_at,
    };
    let rev = crate::typed_store::create(
        state.store.as_ref(),
        &crate::records::token_key(&hash),
        &crate::records::TokenRecord::Api(tok.clone()),
        vec![],
    )
    .await
    .map_err(|e| e.0)?
    .ok_or_else(|| ApiError::internal("a token with this secret exists already"))?;
    state.tokens.wait_for(rev, AppState::CATCH_UP).await;
    tracing::info!(token = %tok.id, user = ?tok.user, project = ?tok.project, role = ?tok.role, by = %principal.who, "API token created");
    Ok((secret, tok))
}

/// Whether `principal` manages token `tok`: cluster-admins every one, project admins (of the
/// request's project) that project's, anyone their own user's.
fn manages(principal: &Principal, request_project: &str, tok: &ApiToken) -> bool {
    principal.is_cluster_admin()
        || (tok.project.as_deref() == Some(request_project)
            && principal.role_in(request_project) >= Some(Role::Admin))
        || (tok.user.is_some() && tok.user == principal.user)
}

/// The API tokens `principal` manages (never the secrets).
pub fn list_tokens(
    state: &AppState,
    principal: &Principal,
    request_project: &str,
) -> Vec<ApiToken> {
    let mut out: Vec<ApiToken> = state.tokens.with(|t| {
        t.values()
            .filter_map(|v| match v.as_ref() {
                crate::records::TokenRecord::Api(tok) => Some(tok.clone()),
                _ => None,
            })
            .filter(|tok| manages(principal, request_project, tok))
            .collect()
    });
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    out
}

/// Revokes (deletes) API token `id`; one `principal` does not manage answers 404.
pub async fn revoke_token(
    state: &AppState,
    principal: &Principal,
    request_project: &str,
    id: &str,
) -> Result<ApiToken, ApiError> {
    let found = state.tokens.with(|t| {
        t.iter().find_map(|(k, v)| match v.as_ref() {
            crate::records::TokenRecord::Api(tok) if tok.id == id => Some((k.clone(), tok.clone())),
            _ => None,
        })
    });
    let Some((key, tok)) = found.filter(|(_, tok)| manages(principal, request_project, tok)) else {
        return Err(ApiError::not_found(format!(
            "no token {id}: see `novacron token list`"
        )));
    };
    let rev = state.store.delete(&key).await.map_err(store_err)?;
    state.tokens.wait_for(rev, AppState::CATCH_UP).await;
    tracing::info!(token = id, by = %principal.who, "API token revoked");
    Ok(tok)
}

/// Exchanges a user's password for a token acting for that user. Wrong user names and wrong
/// passwords get the same answer.
pub async fn login(
    state: &AppState,
    req: &novacron_api_types::tenancy::LoginRequest,
) -> Result<(String, ApiToken), ApiError> {
    let refused = || ApiError::new(ErrorCode::Unauthenticated, "wrong user name or password");
    let user = state.users.get(&user_key(&req.user));
    let ok = match user.as_ref().and_then(|u| u.password_hash.clone()) {
        Some(phc) => {
            let password = req.password.clone();
            tokio::task::spawn_blocking(move || verify_password(&password, &phc))
                .await
                .unwrap_or(false)
        }
        None => false,
    };
    if !ok {
        tracing::info!(user = %req.user, "login refused");
        return Err(refused());
    }
    let me = Principal {
        who: format!("user {}", req.user),
        user: Some(req.user.clone()),
        token_id: None,
        cluster: None,
        projects: BTreeMap::new(),
        home: None,
    };
    let ttl = req
        .ttl_seconds
        .unwrap_or(novacron_api_types::tenancy::DEFAULT_LOGIN_TTL_SECONDS);
    create_token(
        state,
        &me,
        DEFAULT_PROJECT,
        &novacron_api_types::tenancy::TokenCreateRequest {
            name: Some("login".into()),
            user: Some(req.user.clone()),
            project: None,
            role: None,
            ttl_seconds: Some(ttl),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn token(user: Option<&str>, project: Option<&str>, role: Option<Role>) -> ApiTokenRecord {
        ApiToken {
            id: "tk-1".into(),
            name: None,
            user: user.map(Into::into),
            project: project.map(Into::into),
            role,
            created_at: 0,
            expires_at: None,
        }
    }

    fn binding(user: &str, project: Option<&str>, role: Role) -> (String, Arc<RoleBinding>) {
        (
            binding_key(user, project),
            Arc::new(RoleBinding {
                user: user.into(),
                project: project.map(Into::into),
                role,
            }),
        )
    }

    #[test]
    fn passwords_hash_with_salt_and_verify() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("wrong", &a));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn a_users_token_never_exceeds_the_users_bindings() {
        let bindings: BTreeMap<_, _> = [
            binding("alice", Some("team-a"), Role::Operator),
            binding("alice", Some("team-b"), Role::Viewer),
            binding("bob", None, Role::ClusterViewer),
        ]
        .into_iter()
        .collect();
        let alice = bindings_of(&bindings, "alice");
        // A login token: everything alice has.
        let p = resolve_token(&token(Some("alice"), None, None), Some(alice.clone()));
        assert_eq!(p.role_in("team-a"), Some(Role::Operator));
        assert_eq!(p.role_in("team-b"), Some(Role::Viewer));
        assert_eq!(p.role_in("default"), None);
        assert!(!p.is_cluster_admin());
        // Asking for admin in team-a gives what alice has there (operator).
        let p = resolve_token(
            &token(Some("alice"), Some("team-a"), Some(Role::Admin)),
            Some(alice.clone()),
        );
        assert_eq!(p.role_in("team-a"), Some(Role::Operator));
        assert_eq!(p.role_in("team-b"), None, "scoped to its project");
        assert_eq!(p.home.as_deref(), Some("team-a"));
        // A cluster role asked by a user without one grants no cluster role.
        let p = resolve_token(
            &token(Some("alice"), None, Some(Role::ClusterAdmin)),
            Some(alice),
        );
        assert_eq!(p.cluster, None);
        let bob = bindings_of(&bindings, "bob");
        let p = resolve_token(&token(Some("bob"), None, None), Some(bob));
        assert_eq!(p.cluster, Some(Role::ClusterViewer));
        assert_eq!(p.role_in("anything"), Some(Role::Viewer));
        // A token without a user has exactly its own scope.
        let p = resolve_token(&token(None, Some("team-a"), Some(Role::Viewer)), None);
        assert_eq!(p.role_in("team-a"), Some(Role::Viewer));
        assert_eq!(p.role_in("default"), None);
        let p = resolve_token(&token(None, None, Some(Role::ClusterAdmin)), None);
        assert!(p.is_cluster_admin());
    }

    #[test]
    fn expired_tokens_and_tokens_of_deleted_users_are_refused() {
        let mut t = token(Some("alice"), None, None);
        assert!(token_refusal(&t, true, 100).is_none());
        assert!(
            token_refusal(&t, false, 100)
                .unwrap()
                .contains("no longer exists")
        );
        t.expires_at = Some(100);
        assert!(token_refusal(&t, true, 100).unwrap().contains("expired"));
        assert!(token_refusal(&t, true, 99).is_none());
    }
}
