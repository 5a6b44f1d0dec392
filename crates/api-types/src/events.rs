//! The events stream (`GET /api/v1/events`, Server-Sent Events): what one event says, its
//! id (resumable with `Last-Event-ID`), and the filters a client may ask for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A VM's desired state (created, changed, deleted) or observed state (running, stopped...).
    Vm,
    /// A long operation's state, message or progress (other than backups and restores).
    Operation,
    /// A live migration's state, phase and progress.
    Migration,
    /// A node registered, removed, up, down, cordoned, draining or ready again.
    Node,
    /// A backup or restore operation's state and progress.
    Backup,
    /// The HA controller restarted a VM on another node.
    Ha,
    /// An overlay network created or deleted.
    Network,
    /// A record of the audit log (a change or a refusal); seen by cluster roles, and by a
    /// project's admins for the project's records, as in `GET /api/v1/audit`.
    Audit,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::Vm,
        EventKind::Operation,
        EventKind::Migration,
        EventKind::Node,
        EventKind::Backup,
        EventKind::Ha,
        EventKind::Network,
        EventKind::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Vm => "vm",
            EventKind::Operation => "operation",
            EventKind::Migration => "migration",
            EventKind::Node => "node",
            EventKind::Backup => "backup",
            EventKind::Ha => "ha",
            EventKind::Network => "network",
            EventKind::Audit => "audit",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event kind that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event kind {0:?} (kinds: vm, operation, migration, node, backup, ha, network, audit)"
)]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEventKind(s.to_string()))
    }
}

/// Parses a comma-separated list of kinds (`vm,migration`); empty items are ignored.
pub fn parse_kinds(list: &str) -> Result<Vec<EventKind>, UnknownEventKind> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(EventKind::from_str)
        .collect()
}

/// The position of an event in the stream: the store revision of the change it comes from
/// and the change's place among the changes of that revision (one store transaction may
/// change several records). Ordered by (revision, index); written `<revision>-<index>`.
/// Every control-plane replica derives the same id for the same change, so a client may
/// resume on another replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    pub revision: i64,
    pub index: u32,
}

impl EventId {
    /// Just after every event of `revision` (what a bare revision as `Last-Event-ID` means).
    pub fn end_of(revision: i64) -> EventId {
        EventId {
            revision,
            index: u32::MAX,
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.revision, self.index)
    }
}

/// A `Last-Event-ID` that is not `<revision>-<index>` or `<revision>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad event id {0:?}: expected <revision>-<index> (as sent in the stream) or <revision>")]
pub struct BadEventId(pub String);

impl FromStr for EventId {
    type Err = BadEventId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEventId(s.to_string());
        let s = s.trim();
        match s.split_once('-') {
            Some((r, i)) => Ok(EventId {
                revision: r.parse().map_err(|_| bad())?,
                index: i.parse().map_err(|_| bad())?,
            }),
            None => Ok(EventId::end_of(s.parse().map_err(|_| bad())?)),
        }
        .and_then(|id: EventId| if id.revision < 0 { Err(bad()) } else { Ok(id) })
    }
}

/// One event of the stream. The SSE frame carries `id` as its `id:` field and `kind` as its
/// `event:` field; `data:` is this object as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// `<revision>-<index>`, increasing along the stream (see [`EventId`]).
    pub id: String,
    /// The store revision of the change.
    pub revision: i64,
    pub kind: EventKind,
    /// What happened: `created`, `changed`, `deleted`, `state`, `progress`, `up`, `down`,
    /// `restarted`...
    pub action: String,
    /// The resource the event is about: `vm/web1`, `node/n1`, `operation/<id>`,
    /// `migration/<id>`.
    pub resource: String,
    /// Other resources concerned (the VM of an operation or migration, its nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
    /// The project of the resource (none for nodes, which belong to the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// One line for people.
    pub message: String,
    /// The figures behind the message (state, phase, progress...), for programs.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl Event {
    /// Whether the event concerns `resource` (`vm/web1`), itself or as a related resource.
    pub fn concerns(&self, resource: &str) -> bool {
        self.resource == resource || self.related.iter().any(|r| r == resource)
    }
}

/// Which events a client wants (`GET /api/v1/events` query parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this project's events (node events belong to no project and are left out).
    pub project: Option<String>,
    /// Only these kinds (empty: every kind).
    pub kinds: Vec<EventKind>,
    /// Only events concerning this resource (`vm/web1`), directly or as a related resource.
    pub resource: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && self
                .project
                .as_deref()
                .is_none_or(|p| e.project.as_deref() == Some(p))
            && self.resource.as_deref().is_none_or(|r| e.concerns(r))
    }
}

/// Sent (SSE `event: gap`, no id) when the stream cannot give every event after the
/// client's `Last-Event-ID`: they are no longer retained. Re-read the resources' state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventGap {
    pub message: String,
    /// The oldest position still complete: events after it follow.
    pub retained_after: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_print_and_order() {
        let a: EventId = "12-0".parse().unwrap();
        let b: EventId = "12-3".parse().unwrap();
        let c: EventId = "12".parse().unwrap();
        let d: EventId = "13-0".parse().unwrap();
        assert!(a < b && b < c && c < d);
        assert_eq!(b.to_string(), "12-3");
        assert!("x-1".parse::<EventId>().is_err());
        assert!("-1".parse::<EventId>().is_err());
        assert!("".parse::<EventId>().is_err());
    }

    #[test]
    fn kinds_parse_from_a_list() {
        assert_eq!(
            parse_kinds("vm, migration,").unwrap(),
            vec![EventKind::Vm, EventKind::Migration]
        );
        assert!(parse_kinds("vm,bogus").is_err());
    }

    #[test]
    fn filters_match_kind_project_and_resource() {
        let e = Event {
            id: "5-0".into(),
            revision: 5,
            kind: EventKind::Migration,
            action: "progress".into(),
            resource: "migration/m1".into(),
            related: vec!["vm/web1".into()],
            project: Some("default".into()),
            message: String::new(),
            data: serde_json::Value::Null,
        };
        assert!(EventFilter::default().matches(&e));
        let vm = |r: &str| EventFilter {
            resource: Some(r.into()),
            ..Default::default()
        };
        assert!(vm("vm/web1").matches(&e));
        assert!(!vm("vm/web2").matches(&e));
        let kinds = EventFilter {
            kinds: vec![EventKind::Vm],
            ..Default::default()
        };
        assert!(!kinds.matches(&e));
        let project = EventFilter {
            project: Some("other".into()),
            ..Default::default()
        };
        assert!(!project.matches(&e));
    }
}
