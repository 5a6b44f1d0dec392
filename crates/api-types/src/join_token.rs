//! Join tokens as the API shows them: what an admin asks for when minting one, and what
//! `join-token list` shows about each (never the secret, which is printed once at creation
//! and stored only as a hash).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::UnixSeconds;

/// Join tokens last a day unless asked otherwise.
pub const DEFAULT_JOIN_TOKEN_TTL_SECONDS: u64 = 86_400;
/// The longest a join token may live (a year): a join token is a standing invitation.
pub const MAX_JOIN_TOKEN_TTL_SECONDS: u64 = 365 * 86_400;

/// Body of `POST /api/v1/join-tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenCreateRequest {
    /// A label for `join-token list` (a DNS-label-like name).
    #[serde(default)]
    pub name: Option<String>,
    /// How long the token registers nodes (default a day, at most a year).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Registers exactly one node.
    #[serde(default)]
    pub single_use: bool,
}

/// One join token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JoinTokenInfo {
    /// What `join-token revoke` takes.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Unknown (`None`) for tokens minted before join tokens were listed.
    #[serde(default)]
    pub created_at: Option<UnixSeconds>,
    #[serde(default)]
    pub expires_at: Option<UnixSeconds>,
    pub single_use: bool,
    /// Whether it registered a node (a single-use token then registers no other).
    pub used: bool,
    /// The node it registered last.
    #[serde(default)]
    pub used_by: Option<String>,
    pub revoked: bool,
    /// `active`, `expired`, `used` (single-use, spent) or `revoked`.
    pub state: String,
}

/// Answer of `POST /api/v1/join-tokens`: the token itself (shown this once) and its entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JoinTokenCreated {
    /// `NVC1.<CA fingerprint>.<secret>`, what `novacron agent --join-token` takes.
    pub token: String,
    #[serde(flatten)]
    pub info: JoinTokenInfo,
}
