//! Tenancy as the API shows it: projects and their limits and usage, local users, role
//! bindings (a user's role in a project or in the cluster) and API tokens (never their
//! secret, which is printed once at creation and stored only as a hash).
//!
//! The project of a request is, in this order: the `{project}` segment of the path
//! (`/api/v1/projects/{project}`), the `project` query parameter, the [`PROJECT_HEADER`]
//! header (the SDK sets it from `--project`, `NOVACRON_PROJECT` or the CLI config), the
//! project of a project-scoped token, else [`crate::DEFAULT_PROJECT`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::UnixSeconds;

/// The header that names the project of a request.
pub const PROJECT_HEADER: &str = "x-novacron-project";

/// A role: three within a project, two over the cluster. Each includes the ones below it
/// (`admin` ⊃ `operator` ⊃ `viewer`; `cluster-admin` ⊃ `cluster-viewer`); a cluster role also
/// holds the project role of the same rank in every project.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads a project's resources.
    Viewer,
    /// Also starts, stops, migrates, backs up and restores.
    Operator,
    /// Also creates and deletes resources and manages the project's tokens.
    Admin,
    /// Reads everything, nodes, pools, projects and users included.
    ClusterViewer,
    /// Everything.
    ClusterAdmin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Operator,
        Role::Admin,
        Role::ClusterViewer,
        Role::ClusterAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::ClusterViewer => "cluster-viewer",
            Role::ClusterAdmin => "cluster-admin",
        }
    }

    /// Whether this role is bound to the cluster (not to one project).
    pub fn is_cluster(self) -> bool {
        matches!(self, Role::ClusterViewer | Role::ClusterAdmin)
    }

    /// The project role this role holds in every project (a cluster role), or itself.
    pub fn in_any_project(self) -> Role {
        match self {
            Role::ClusterViewer => Role::Viewer,
            Role::ClusterAdmin => Role::Admin,
            r => r,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role {0:?}: use admin, operator, viewer (in a project) or cluster-admin, cluster-viewer (with --cluster)"
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// What a project may hold at most; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectLimits {
    #[serde(default)]
    pub max_vms: Option<u64>,
    #[serde(default)]
    pub max_cpus: Option<u64>,
    #[serde(default)]
    pub max_memory_bytes: Option<u64>,
    #[serde(default)]
    pub max_disk_bytes: Option<u64>,
    #[serde(default)]
    pub max_networks: Option<u64>,
    #[serde(default)]
    pub max_backup_storage_bytes: Option<u64>,
}

impl ProjectLimits {
    /// No limit is set: nothing a create adds can exceed one.
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// What a project holds (the counted resources of [`ProjectLimits`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectUsage {
    pub vms: u64,
    pub cpus: u64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub networks: u64,
    pub backup_storage_bytes: u64,
}

/// A project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub limits: ProjectLimits,
    #[serde(default)]
    pub created_at: UnixSeconds,
    /// A `project delete` is under way: creates in the project are refused until it ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
}

/// Body of `POST /api/v1/projects`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectCreateRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Body of `PUT /api/v1/projects/{project}`: the fields given replace the current ones (the
/// limits not given stay as they are).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectSetRequest {
    #[serde(default)]
    pub description: Option<String>,
    /// Limits to set (the others stay as they are).
    #[serde(default)]
    pub limits: ProjectLimits,
}

/// Answer of `GET /api/v1/projects/{project}/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectUsageReport {
    pub project: String,
    pub usage: ProjectUsage,
    pub limits: ProjectLimits,
}

/// A local user (never its password or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub name: String,
    /// Whether the user can `login` with a password.
    pub has_password: bool,
    pub created_at: UnixSeconds,
}

/// Body of `POST /api/v1/users`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreateRequest {
    pub name: String,
    /// Without one the user works only through tokens an admin creates for it.
    #[serde(default)]
    pub password: Option<String>,
}

/// A user's role in a project (`project` set) or in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleBinding {
    pub user: String,
    /// `None`: a cluster binding.
    #[serde(default)]
    pub project: Option<String>,
    pub role: Role,
}

/// Body of `POST /api/v1/role-bindings` and `DELETE` of the same.
pub type RoleBindingRequest = RoleBinding;

/// One API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    /// What `token revoke` takes: `tk-` and 16 hex digits.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// The user it acts for (its roles are then at most the user's).
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    pub created_at: UnixSeconds,
    #[serde(default)]
    pub expires_at: Option<UnixSeconds>,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreateRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    /// Lifetime; none: the token does not expire.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// Answer of `POST /api/v1/tokens` and `POST /api/v1/login`: the secret (shown this once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub token: String,
    #[serde(flatten)]
    pub info: ApiToken,
}

/// Answer of `GET /api/v1/whoami`: who the caller's token is, and its roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// For messages: `admin token`, `user alice`, `token tk-...`.
    pub who: String,
    /// The user the token belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Its cluster role (`cluster-admin`, `cluster-viewer`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_role: Option<Role>,
    /// Its role in each project it is bound to (a cluster role adds the same rank everywhere).
    #[serde(default)]
    pub projects: std::collections::BTreeMap<String, Role>,
    /// The project a project-scoped token acts in unless a request names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_project: Option<String>,
}

/// Body of `POST /api/v1/login`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub user: String,
    pub password: String,
    /// Lifetime of the token (default 30 days).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// Login tokens last 30 days unless asked otherwise.
pub const DEFAULT_LOGIN_TTL_SECONDS: u64 = 30 * 86_400;

/// Parses a lifetime such as `30d`, `12h`, `45m`, `90s` (a bare number is seconds).
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 30d, 12h, 45m, 90s"))?;
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: use e.g. 30d, 12h, 45m, 90s"
            ));
        }
    };
    n.checked_mul(mul)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("invalid duration {s:?}: it must be positive and not huge"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_rank() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .to_string()
                .contains("unknown role")
        );
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!(Role::ClusterAdmin.in_any_project(), Role::Admin);
        assert_eq!(Role::ClusterViewer.in_any_project(), Role::Viewer);
        assert_eq!(
            serde_json::to_string(&Role::ClusterAdmin).unwrap(),
            "\"cluster-admin\""
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration_secs("90").unwrap(), 90);
        assert_eq!(parse_duration_secs("2h").unwrap(), 7200);
        assert!(parse_duration_secs("0d").is_err());
        assert!(parse_duration_secs("1y").is_err());
        assert!(parse_duration_secs("d").is_err());
    }
}
