//! Who may call what. Every route sits on exactly one role router ([`Access`]); the router's
//! gate checks the caller before any handler runs, so a handler cannot forget the check.
//! Handlers that act for a node take [`NodeCaller`]; where a node may touch only records it
//! is a party to (its migrations, the operations of its VMs, the images its VMs run), the
//! handler checks that with the helpers here or next to the record's code.

use std::sync::Arc;

use axum::RequestPartsExt;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use novacron_api_types::tenancy::{PROJECT_HEADER, Role};
use novacron_api_types::{ApiError, DEFAULT_PROJECT, ErrorCode};

use super::{ApiFailure, ApiResult};
use crate::auth::Caller;
use crate::records::{self, VmRecord};
use crate::state::AppState;
use crate::tenancy::Principal;

/// What a project or cluster route needs of its caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Reading (role `viewer`, or `cluster-viewer` on cluster routes).
    Read,
    /// Start, stop, reboot, pause, resume, console, exec, migrate, back up, restore (`operator`).
    Operate,
    /// Create, delete, change, tokens (`admin`, or `cluster-admin` on cluster routes).
    Admin,
}

impl Action {
    /// The least project role that may do this.
    pub fn project_role(self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::Operate => Role::Operator,
            Action::Admin => Role::Admin,
        }
    }

    /// The least cluster role that may do this on a cluster route.
    pub fn cluster_role(self) -> Role {
        match self {
            Action::Read => Role::ClusterViewer,
            Action::Operate | Action::Admin => Role::ClusterAdmin,
        }
    }
}

/// The role routers. A route belongs to one of them; the table of routes and their access is
/// [`super::route_table`], and the OpenAPI document lists the same routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// No token: liveness, the CA certificate that join tokens pin, the OpenAPI document,
    /// login (a password for a token).
    Public,
    /// A project's resources: the caller needs the action's role in the request's project
    /// ([`request_project`]). A project it has no role in answers 404, like a missing one.
    Project(Action),
    /// The cluster's resources (nodes, pools, repositories, projects, users): the caller needs
    /// the action's cluster role.
    Cluster(Action),
    /// Any user or API token; the handler shows only what the caller may see.
    Authenticated,
    /// Agents: node tokens only. The handler gets the node's name ([`NodeCaller`]) and checks
    /// the node is a party to the record it touches.
    Node,
    /// Registration: the join token (a new node), a node token (that node registering again),
    /// or the admin token. The only route a join token may call.
    Register,
    /// Image files: node tokens (only images their VMs use, see [`require_image_party`]),
    /// the admin token, and replica credentials (other control-plane replicas fetch files
    /// from the replica that has them; that is all a replica credential opens).
    NodeOrAdmin,
}

impl Access {
    /// The name used in the OpenAPI document (`x-novacron-access`) and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Project(Action::Read) => "project-read",
            Access::Project(Action::Operate) => "project-operate",
            Access::Project(Action::Admin) => "project-admin",
            Access::Cluster(Action::Read) => "cluster-read",
            Access::Cluster(Action::Operate | Action::Admin) => "cluster-admin",
            Access::Authenticated => "authenticated",
            Access::Node => "node",
            Access::Register => "register",
            Access::NodeOrAdmin => "node-or-admin",
        }
    }

    /// Whether `caller` may call routes of this router at all (project routes then also
    /// need the role in the request's project, see [`gate`]).
    pub fn admits(self, caller: &Caller) -> bool {
        let principal = caller.principal();
        match (self, caller) {
            (Access::Public, _) => true,
            (Access::Project(_) | Access::Authenticated, _) => principal.is_some(),
            (Access::Cluster(a), _) => principal
                .as_ref()
                .and_then(|p| p.cluster)
                .is_some_and(|r| r >= a.cluster_role()),
            (Access::Node, Caller::Node(_)) => true,
            (Access::Register, Caller::Admin | Caller::Join(_) | Caller::Node(_)) => true,
            (Access::NodeOrAdmin, Caller::Admin | Caller::Node(_) | Caller::Replica(_)) => true,
            (Access::Node | Access::NodeOrAdmin | Access::Register, _) => false,
        }
    }

    fn refusal(self, caller: &Caller) -> ApiError {
        if let (Access::Cluster(a), Caller::User(p)) = (self, caller) {
            let has = p
                .cluster
                .map_or("has no cluster role".to_string(), |r| format!("has {r}"));
            return ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "this call needs the cluster role {} ({} {has})",
                    a.cluster_role(),
                    p.who
                ),
            );
        }
        let what = match caller {
            Caller::Join(_) => "a join token may only register a node",
            Caller::Replica(_) => "a replica credential may only fetch image files",
            Caller::Node(_) => "a node token may only call the agent API",
            Caller::User(_) => "user and API tokens call the project and cluster API",
            Caller::Admin => "",
        };
        let needs = match self {
            Access::Project(_) | Access::Authenticated => "this call needs a user or API token",
            Access::Cluster(_) => "this call needs a cluster-admin or cluster-viewer token",
            Access::Node => "this call needs a node token",
            Access::NodeOrAdmin => "this call needs a node or admin token",
            Access::Public | Access::Register => "this call is not allowed with this token",
        };
        let message = if what.is_empty() {
            needs.to_string()
        } else {
            format!("{needs} ({what})")
        };
        ApiError::new(ErrorCode::PermissionDenied, message)
    }
}

/// The caller and project of a request on a project, cluster or authenticated route (an
/// extension the gate adds; handlers take it with `Extension<Scope>`).
#[derive(Debug, Clone)]
pub struct Scope {
    pub principal: Arc<Principal>,
    pub project: String,
}

/// The project of a request: the path's `{project}`, else the `project` query parameter,
/// else the [`PROJECT_HEADER`] header, else the project of a project-scoped token, else
/// `default`.
pub fn request_project(
    path_project: Option<&str>,
    query: Option<&str>,
    header: Option<&str>,
    principal: &Principal,
) -> String {
    let from_query = query.and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "project")
            .map(|(_, v)| v)
    });
    path_project
        .or(from_query)
        .or(header)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .or_else(|| principal.home.clone())
        .unwrap_or_else(|| DEFAULT_PROJECT.to_string())
}

/// Whether `principal` may do `action` in `project`: 404 when it has no role there or the
/// project does not exist (names do not leak), 403 when its role there is too small.
pub fn authorize_project(
    state: &AppState,
    principal: &Principal,
    project: &str,
    action: Action,
) -> ApiResult<()> {
    novacron_api_types::validate_name("project", project)?;
    let exists = state.projects.get(&records::project_key(project)).is_some();
    match principal.role_in(project) {
        Some(role) if exists && role >= action.project_role() => Ok(()),
        Some(role) if exists => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!(
                "this call needs the role {} in project {project} ({} has {role})",
                action.project_role(),
                principal.who
            ),
        )
        .into()),
        _ => Err(crate::tenancy::no_project(project).into()),
    }
}

/// The gate of one role router: runs after [`crate::auth::authenticate`] resolved the token
/// (401 without a valid one) and answers 403 to callers the router does not admit. On
/// project routes it resolves and checks the request's project and runs the handler with it
/// ([`crate::tenancy::current_project`]).
pub async fn gate(State(access): State<Access>, req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        // Only reachable if a router was assembled without the token check in front.
        tracing::error!(
            access = access.name(),
            "a role gate ran before authentication"
        );
        return ApiFailure(ApiError::new(
            ErrorCode::Unauthenticated,
            "missing bearer token",
        ))
        .into_response();
    };
    if !access.admits(&caller) {
        tracing::debug!(access = access.name(), path = %req.uri().path(), "role refused");
        return ApiFailure(access.refusal(&caller)).into_response();
    }
    let (Access::Project(_) | Access::Cluster(_) | Access::Authenticated, Some(principal)) =
        (access, caller.principal())
    else {
        return next.run(req).await;
    };
    let Some(state) = req.extensions().get::<Arc<AppState>>().cloned() else {
        tracing::error!("the role gate has no state: authentication did not run");
        return ApiFailure(ApiError::internal("the role gate has no state")).into_response();
    };
    let (mut parts, body) = req.into_parts();
    let path_project = parts
        .extract::<axum::extract::RawPathParams>()
        .await
        .ok()
        .and_then(|ps| {
            ps.iter()
                .find(|(k, _)| *k == "project")
                .map(|(_, v)| v.to_string())
        });
    let header = parts
        .headers
        .get(PROJECT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let project = request_project(
        path_project.as_deref(),
        parts.uri.query(),
        header.as_deref(),
        &principal,
    );
    // Whether the request named a project itself (else a cluster route acts on none).
    let named = path_project.is_some()
        || header.is_some()
        || parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("project=")));
    if let Access::Project(action) = access
        && let Err(e) = authorize_project(&state, &principal, &project, action)
    {
        tracing::debug!(access = access.name(), %project, who = %principal.who, "project refused");
        let mut resp = e.into_response();
        resp.extensions_mut()
            .insert(crate::audit::AuditProject(project));
        resp.extensions_mut().insert(crate::audit::AuditRefused);
        return resp;
    }
    parts.extensions.insert(Scope {
        principal,
        project: project.clone(),
    });
    let req = Request::from_parts(parts, body);
    let mut resp = crate::tenancy::with_project(project.clone(), next.run(req)).await;
    // Cluster and authenticated routes act on no one project unless they name one.
    if matches!(access, Access::Project(_)) || named {
        resp.extensions_mut()
            .insert(crate::audit::AuditProject(project));
    }
    resp
}

/// The node whose token called (routes of the node router only, whose gate admits nothing
/// else; elsewhere this extractor refuses with 403).
#[derive(Debug, Clone)]
pub struct NodeCaller(pub String);

impl<S: Send + Sync> FromRequestParts<S> for NodeCaller {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::Node(n)) => Ok(NodeCaller(n.clone())),
            _ => Err(
                ApiError::new(ErrorCode::PermissionDenied, "this call needs a node token").into(),
            ),
        }
    }
}

/// A node may fetch the files of an image only while one of its VMs uses it (boots it, has
/// it in its CD-ROM drive, or copies it onto an added disk): a VM placed on the node, or
/// migrating to it (the destination prepares the same disk chain).
pub async fn require_image_party(
    state: &Arc<AppState>,
    node: &str,
    project: &str,
    image: &str,
) -> ApiResult<()> {
    // Its boot image, the ISO in its drive, or the image an added disk is copied from.
    // A public image serves the VMs of every project that has no image of its own by that
    // name (none may have one, see `PUBLIC_IMAGES`).
    let uses = |v: &VmRecord| {
        state.names_image_of(&v.project, image, project)
            && (v.image == image
                || v.iso.as_deref() == Some(image)
                || v.data_disks
                    .iter()
                    .any(|d| d.image.as_deref() == Some(image)))
            && (v.node == node || v.migrating_to.as_deref() == Some(node))
    };
    if state.vms.with(|vms| vms.values().any(|v| uses(v))) {
        return Ok(());
    }
    // This replica's mirror may trail the replica that told the agent about the VM: the store
    // decides before refusing.
    let (kvs, _) = state.store.list(&records::vm_prefix()).await?;
    if kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<VmRecord>(&kv.value).ok())
        .any(|v| uses(&v))
    {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::PermissionDenied,
        format!("no VM of node {node} uses image {project}/{image}"),
    )
    .into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn user(cluster: Option<Role>, projects: &[(&str, Role)], home: Option<&str>) -> Caller {
        Caller::User(Arc::new(Principal {
            who: "user u".into(),
            user: Some("u".into()),
            token_id: None,
            cluster,
            projects: projects.iter().map(|(p, r)| (p.to_string(), *r)).collect(),
            home: home.map(Into::into),
        }))
    }

    #[test]
    fn join_tokens_pass_only_the_registration_and_public_gates() {
        let node = Caller::Node("n1".into());
        let join = Caller::Join("k".into());
        let cluster_admin = Access::Cluster(Action::Admin);
        for (access, admin, node_ok, join_ok) in [
            (Access::Public, true, true, true),
            (cluster_admin, true, false, false),
            (Access::Project(Action::Read), true, false, false),
            (Access::Authenticated, true, false, false),
            (Access::Node, false, true, false),
            (Access::Register, true, true, true),
            (Access::NodeOrAdmin, true, true, false),
        ] {
            assert_eq!(access.admits(&Caller::Admin), admin, "{access:?} admin");
            assert_eq!(access.admits(&node), node_ok, "{access:?} node");
            assert_eq!(access.admits(&join), join_ok, "{access:?} join");
        }
        let replica = Caller::Replica("cp-1".into());
        for (access, ok) in [
            (Access::Public, true),
            (cluster_admin, false),
            (Access::Node, false),
            (Access::Register, false),
            (Access::NodeOrAdmin, true),
        ] {
            assert_eq!(access.admits(&replica), ok, "{access:?} replica");
        }
        let refusal = cluster_admin.refusal(&join);
        assert_eq!(refusal.code, ErrorCode::PermissionDenied);
        assert!(
            refusal.message.contains("join token"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn cluster_routes_need_the_cluster_role() {
        let viewer = user(Some(Role::ClusterViewer), &[], None);
        let project_admin = user(None, &[("team-a", Role::Admin)], None);
        assert!(Access::Cluster(Action::Read).admits(&viewer));
        assert!(!Access::Cluster(Action::Admin).admits(&viewer));
        assert!(!Access::Cluster(Action::Read).admits(&project_admin));
        assert!(Access::Project(Action::Admin).admits(&project_admin));
        let e = Access::Cluster(Action::Admin).refusal(&viewer);
        assert!(e.message.contains("cluster-admin"), "{}", e.message);
    }

    #[test]
    fn the_request_project_comes_from_path_query_header_token_then_default() {
        let Caller::User(p) = user(None, &[], Some("home")) else {
            unreachable!()
        };
        let q = Some("a=1&project=from-query");
        assert_eq!(request_project(Some("path"), q, Some("hdr"), &p), "path");
        assert_eq!(request_project(None, q, Some("hdr"), &p), "from-query");
        assert_eq!(request_project(None, Some("a=1"), Some("hdr"), &p), "hdr");
        assert_eq!(request_project(None, None, None, &p), "home");
        let anyone = Principal::admin_token();
        assert_eq!(request_project(None, None, None, &anyone), "default");
    }
}
