//! Who may call what. Every route sits on exactly one role router ([`Access`]); the router's
//! gate checks the caller before any handler runs, so a handler cannot forget the check.
//! Handlers that act for a node take [`NodeCaller`]; where a node may touch only records it
//! is a party to (its migrations, the operations of its VMs, the images its VMs run), the
//! handler checks that with the helpers here or next to the record's code.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use novacron_api_types::{ApiError, ErrorCode};

use super::{ApiFailure, ApiResult};
use crate::auth::Caller;
use crate::records::{self, VmRecord};
use crate::state::AppState;

/// The role routers. A route belongs to one of them; the table of routes and their access is
/// [`super::route_table`], and the OpenAPI document lists the same routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// No token: liveness, the CA certificate that join tokens pin, the OpenAPI document.
    Public,
    /// Operators: admin tokens only.
    Admin,
    /// Agents: node tokens only. The handler gets the node's name ([`NodeCaller`]) and checks
    /// the node is a party to the record it touches.
    Node,
    /// Registration: the join token (a new node), a node token (that node registering again),
    /// or an admin token. The only route a join token may call.
    Register,
    /// Image files: node tokens (only images their VMs use, see [`require_image_party`]),
    /// admin tokens, and replica credentials (other control-plane replicas fetch files from
    /// the replica that has them; that is all a replica credential opens).
    NodeOrAdmin,
}

impl Access {
    /// The name used in the OpenAPI document (`x-novacron-access`) and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Admin => "admin",
            Access::Node => "node",
            Access::Register => "register",
            Access::NodeOrAdmin => "node-or-admin",
        }
    }

    /// Whether `caller` may call routes of this router.
    pub fn admits(self, caller: &Caller) -> bool {
        match (self, caller) {
            (Access::Public, _) => true,
            (Access::Admin, Caller::Admin) => true,
            (Access::Node, Caller::Node(_)) => true,
            (Access::Register, Caller::Admin | Caller::Join(_) | Caller::Node(_)) => true,
            (Access::NodeOrAdmin, Caller::Admin | Caller::Node(_) | Caller::Replica(_)) => true,
            (Access::Admin | Access::Node | Access::NodeOrAdmin | Access::Register, _) => false,
        }
    }

    fn refusal(self, caller: &Caller) -> ApiError {
        let what = match caller {
            Caller::Join(_) => "a join token may only register a node",
            Caller::Replica(_) => "a replica credential may only fetch image files",
            Caller::Node(_) | Caller::Admin => "",
        };
        let needs = match self {
            Access::Admin => "this call needs an admin token",
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

/// The gate of one role router: runs after [`crate::auth::authenticate`] resolved the token
/// (401 without a valid one) and answers 403 to callers the router does not admit.
pub async fn gate(State(access): State<Access>, req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>() else {
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
    if !access.admits(caller) {
        tracing::debug!(access = access.name(), path = %req.uri().path(), "role refused");
        return ApiFailure(access.refusal(caller)).into_response();
    }
    next.run(req).await
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

/// A node may fetch the files of an image only while one of its VMs uses it: a VM placed on
/// the node, or migrating to it (the destination prepares the same disk chain).
pub async fn require_image_party(
    state: &Arc<AppState>,
    node: &str,
    project: &str,
    image: &str,
) -> ApiResult<()> {
    let uses = |v: &VmRecord| {
        v.project == project
            && v.image == image
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
    use super::*;

    #[test]
    fn join_tokens_pass_only_the_registration_and_public_gates() {
        let node = Caller::Node("n1".into());
        for (access, admin, node_ok, join) in [
            (Access::Public, true, true, true),
            (Access::Admin, true, false, false),
            (Access::Node, false, true, false),
            (Access::Register, true, true, true),
            (Access::NodeOrAdmin, true, true, false),
        ] {
            assert_eq!(access.admits(&Caller::Admin), admin, "{access:?} admin");
            assert_eq!(access.admits(&node), node_ok, "{access:?} node");
            assert_eq!(
                access.admits(&Caller::Join("k".into())),
                join,
                "{access:?} join"
            );
        }
        let replica = Caller::Replica("cp-1".into());
        for (access, ok) in [
            (Access::Public, true),
            (Access::Admin, false),
            (Access::Node, false),
            (Access::Register, false),
            (Access::NodeOrAdmin, true),
        ] {
            assert_eq!(access.admits(&replica), ok, "{access:?} replica");
        }
        let refusal = Access::Admin.refusal(&Caller::Join("k".into()));
        assert_eq!(refusal.code, ErrorCode::PermissionDenied);
        assert!(
            refusal.message.contains("admin token"),
            "{}",
            refusal.message
        );
    }
}
