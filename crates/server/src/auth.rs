//! Bearer tokens: random 256-bit secrets, stored only as their BLAKE3 hash, each with a kind
//! (admin, API, join, node, replica) that decides which routes it may call. This module
//! resolves a token into a [`Caller`] (an API token into its [`Principal`], with the roles of
//! its user's bindings); the role routers' gates (`api::roles`) decide what the caller may do.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use novacron_api_types::{ApiError, ErrorCode};

use crate::api::ApiFailure;
use crate::records::TokenRecord;
use crate::state::AppState;
use crate::tenancy::Principal;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The cluster's original admin token: a cluster-admin.
    Admin,
    /// An API token (a user's, or one with its own project and role).
    User(Arc<Principal>),
    /// A join token, by its store key (registration consumes single-use ones).
    Join(String),
    Node(String),
    /// Another control-plane replica (its member id), fetching image files.
    Replica(String),
}

impl Caller {
    /// The user or API token behind this call, with its roles (`None`: an agent, a join
    /// token or a replica).
    pub fn principal(&self) -> Option<Arc<Principal>> {
        match self {
            Caller::Admin => Some(Arc::new(Principal::admin_token())),
            Caller::User(p) => Some(p.clone()),
            Caller::Join(_) | Caller::Node(_) | Caller::Replica(_) => None,
        }
    }
}

/// What a derived secret is for (part of the HMAC input, so one never stands for another).
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// A replica's internal credential; the subject is its member id.
    Replica,
    /// The token the control plane presents to an agent; the subject is the node name.
    AgentServerToken,
}

/// A secret the control plane derives instead of storing it: HMAC-SHA256, keyed with the
/// cluster CA's private key (which replicas hold outside the store), over the purpose, the
/// subject and a public `nonce` kept in the store. Reading the store gives the nonce, not the
/// secret; every replica can recompute it.
pub fn derived_secret(ca_key_pem: &str, purpose: Purpose, subject: &str, nonce: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, ca_key_pem.as_bytes());
    let purpose = match purpose {
        Purpose::Replica => "replica",
        Purpose::AgentServerToken => "agent-server-token",
    };
    let msg = format!("novacron derived secret v1\0{purpose}\0{subject}\0{nonce}");
    base64url(aws_lc_rs::hmac::sign(&key, msg.as_bytes()).as_ref())
}

/// A fresh public nonce (128 random bits) for [`derived_secret`].
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator failed");
    base64url(&bytes)
}

/// A new random token (URL-safe, 43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator failed");
    base64url(&bytes)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// What the store keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Resolves the bearer token into a [`Caller`]; requests without a valid token get 401.
/// The WebSocket subprotocol that carries a bearer token: a browser's WebSocket cannot set
/// `Authorization`, so it offers `novacron.bearer.<token>` beside the real protocol (the
/// server never selects it, so the token is not echoed). Read only on WebSocket upgrades.
pub const WEBSOCKET_BEARER_PREFIX: &str = "novacron.bearer.";

fn websocket_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let upgrade = headers.get(axum::http::header::UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    websocket_protocols(headers)
        .find_map(|p| p.strip_prefix(WEBSOCKET_BEARER_PREFIX))
        .filter(|t| !t.is_empty())
}

/// The subprotocols a WebSocket client offers (`Sec-WebSocket-Protocol`, comma-separated,
/// possibly over several header lines).
pub fn websocket_protocols(headers: &axum::http::HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .or_else(|| websocket_token(req.headers()));
    // A revoked certificate is refused whatever token comes with it.
    if let Some(cert) = req.extensions().get::<novacron_tls::PeerCertificate>()
        && let Some(why) = revoked_cert(&state, &cert.serial)
    {
        return ApiFailure(ApiError::new(ErrorCode::Unauthenticated, why)).into_response();
    }
    let Some(token) = token else {
        return ApiFailure(ApiError::new(
            ErrorCode::Unauthenticated,
            "missing bearer token: set NOVACRON_TOKEN or use the config written by `novacron up`",
        ))
        .into_response();
    };
    let hash = token_hash(token);
    let key = crate::records::token_key(&hash);
    let caller = match state.tokens.get(&key) {
        Some(rec) => match rec.as_ref() {
            TokenRecord::Admin => Caller::Admin,
            TokenRecord::Api(tok) => match crate::tenancy::principal_of(&state, tok) {
                Ok(p) => Caller::User(Arc::new(p)),
                Err(why) => {
                    return ApiFailure(ApiError::new(ErrorCode::Unauthenticated, why))
                        .into_response();
                }
            },
            TokenRecord::Join(join) => {
                let id = crate::records::join_token_id(&hash);
                if let Some(why) = crate::join_tokens::refusal(join, &id, crate::records::now()) {
                    return ApiFailure(ApiError::new(ErrorCode::Unauthenticated, why))
                        .into_response();
                }
                Caller::Join(key)
            }
            TokenRecord::Node { node } => Caller::Node(node.clone()),
            TokenRecord::Replica { member } => Caller::Replica(member.clone()),
        },
        None => {
            return ApiFailure(ApiError::new(
                ErrorCode::Unauthenticated,
                "invalid or revoked token: check the token you use (NOVACRON_TOKEN, the CLI config, the agent's data dir), or ask an admin for a new one",
            ))
            .into_response();
        }
    };
    req.extensions_mut().insert(caller.clone());
    // The role gates check projects against the store's mirrors.
    req.extensions_mut().insert(state);
    let mut resp = next.run(req).await;
    // For the audit log, which wraps this.
    resp.extensions_mut().insert(caller);
    resp
}

/// Why a client certificate with `serial` is refused, if it was revoked.
pub fn revoked_cert(state: &AppState, serial: &str) -> Option<String> {
    let rec = state
        .revoked_certs
        .get(&crate::records::revoked_cert_key(serial))?;
    tracing::warn!(serial, node = %rec.node, "revoked client certificate refused");
    Some(format!(
        "the client certificate {serial} of node {} was revoked ({}): that node must join again with a new join token",
        rec.node, rec.reason
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn derived_secrets_depend_on_every_input() {
        let a = derived_secret("key", Purpose::Replica, "m1", "n1");
        assert_eq!(a, derived_secret("key", Purpose::Replica, "m1", "n1"));
        assert_eq!(a.len(), 43);
        for other in [
            derived_secret("key2", Purpose::Replica, "m1", "n1"),
            derived_secret("key", Purpose::AgentServerToken, "m1", "n1"),
            derived_secret("key", Purpose::Replica, "m2", "n1"),
            derived_secret("key", Purpose::Replica, "m1", "n2"),
        ] {
            assert_ne!(a, other);
        }
        assert_ne!(new_nonce(), new_nonce());
    }

    #[test]
    fn a_websocket_upgrade_may_carry_its_token_as_a_subprotocol() {
        use axum::http::{HeaderMap, HeaderValue, header};
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("novacron.console.v1, novacron.bearer.abc-_1"),
        );
        assert_eq!(websocket_token(&h), None, "only on a WebSocket upgrade");
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(websocket_token(&h), Some("abc-_1"));
        h.insert(
            header::UPGRADE,
            HeaderValue::from_static("novacron-console"),
        );
        assert_eq!(websocket_token(&h), None);
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("novacron.console.v1, novacron.bearer."),
        );
        assert_eq!(websocket_token(&h), None, "an empty token is no token");
    }
}
