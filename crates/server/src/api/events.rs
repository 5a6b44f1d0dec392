//! `GET /api/v1/events`: the events stream as Server-Sent Events. The handler parses the
//! filter and the resume position; [`crate::events`] makes the events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use novacron_api_types::ApiError;
use novacron_api_types::events::{Event, EventFilter, EventGap, EventId, EventKind, parse_kinds};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::roles::Scope;
use super::{ApiFailure, ApiResult};
use crate::events::{Item, Replay};
use crate::state::AppState;
use crate::tenancy::Principal;

/// The request header with which an SSE client resumes.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// A comment line sent this often keeps proxies and idle timeouts from closing the stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this project's events (node events belong to no project and are left out).
    /// Without it, every event the caller may see: its projects' events, and the cluster's
    /// (nodes, backups) for cluster roles.
    pub project: Option<String>,
    /// Only these kinds, comma-separated: vm, operation, migration, node, backup, ha,
    /// network, audit.
    pub kind: Option<String>,
    /// Only events concerning this resource, itself or as a related one: `vm/web1`,
    /// `node/n1`, `migration/<id>`, `operation/<id>`.
    pub resource: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header takes precedence); `0` sends
    /// every retained event first. Without either, only new events are sent.
    pub after: Option<String>,
    /// `false`: send the retained events after `after` and end the stream (default: follow).
    pub follow: Option<bool>,
}

fn bad_request(message: String) -> ApiFailure {
    ApiFailure(ApiError::invalid(message))
}

/// What a caller may see of the stream: the events of the projects it has a role in, and
/// the cluster's own events (nodes, backups: no project) only with a cluster role. Audit
/// records follow `GET /api/v1/audit`: a project's only for its admins.
#[derive(Debug, Clone)]
struct Audience(Arc<Principal>);

impl Audience {
    fn sees(&self, e: &Event) -> bool {
        let p = &self.0;
        match (e.kind, e.project.as_deref()) {
            (_, None) => p.cluster.is_some(),
            (EventKind::Audit, Some(project)) => p.reads_audit_of(project),
            (_, Some(project)) => p.sees(project),
        }
    }
}

/// What one client is sent: the events its filter asks for, among those it may see.
struct Selection {
    filter: EventFilter,
    audience: Audience,
}

impl Selection {
    fn admits(&self, e: &Event) -> bool {
        self.audience.sees(e) && self.filter.matches(e)
    }
}

/// The filter and the resume position of a request.
fn parse(headers: &HeaderMap, q: &EventsQuery) -> ApiResult<(EventFilter, Option<EventId>, bool)> {
    let kinds = match &q.kind {
        Some(k) => parse_kinds(k).map_err(|e| bad_request(e.to_string()))?,
        None => vec![],
    };
    let header_id = headers
        .get(LAST_EVENT_ID)
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| bad_request("Last-Event-ID is not text".into()))
        })
        .transpose()?;
    let after = header_id
        .or_else(|| q.after.clone())
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.parse::<EventId>().map_err(|e| bad_request(e.to_string())))
        .transpose()?;
    let filter = EventFilter {
        project: q.project.clone().filter(|p| !p.is_empty()),
        kinds,
        resource: q.resource.clone().filter(|r| !r.is_empty()),
    };
    Ok((filter, after, q.follow.unwrap_or(true)))
}

fn event_frame(e: &Event) -> Bytes {
    let data = serde_json::to_string(e).unwrap_or_default();
    Bytes::from(format!("id: {}\nevent: {}\ndata: {data}\n\n", e.id, e.kind))
}

fn gap_frame(retained_after: EventId) -> Bytes {
    let gap = EventGap {
        message: "events were lost (no longer retained): re-read the state of what you follow"
            .into(),
        retained_after: retained_after.to_string(),
    };
    let data = serde_json::to_string(&gap).unwrap_or_default();
    Bytes::from(format!("event: gap\ndata: {data}\n\n"))
}

fn id_of(e: &Event) -> EventId {
    e.id.parse().unwrap_or(EventId::end_of(e.revision))
}

/// Events as they happen (Server-Sent Events): VM state, operations, migrations, nodes,
/// backups, HA actions, networks and audit records, each with an id to resume from with `Last-Event-ID`. The
/// control plane retains the last 10,000 events; a client resuming from before them first
/// gets an `event: gap` frame.
#[utoipa::path(get, path = "/api/v1/events",
    params(EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (as sent in the stream's `id:` lines).")),
    responses(
        (status = 200, content_type = "text/event-stream", body = Event,
            description = "A stream of `id:`/`event:`/`data:` frames; `data` is an Event as JSON."),
        (status = 400, body = ApiError, description = "A filter or event id that cannot be parsed.")))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let (filter, after, follow) = parse(&headers, &q)?;
    if let Some(project) = &filter.project
        && !scope.principal.sees(project)
    {
        return Err(crate::tenancy::no_project(project).into());
    }
    let selection = Selection {
        filter,
        audience: Audience(scope.principal.clone()),
    };
    let (replay, rx) = state.events.subscribe(after);
    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    tracing::debug!(filter = ?selection.filter, ?after, follow, who = %scope.principal.who, "events stream opened");
    tokio::spawn(pump(state, selection, after, follow, replay, rx, tx));
    let body = Body::from_stream(futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }));
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}

/// Feeds one client: the replay, then live events, until the client goes away.
async fn pump(
    state: Arc<AppState>,
    filter: Selection,
    mut last: Option<EventId>,
    follow: bool,
    replay: Replay,
    mut rx: broadcast::Receiver<Item>,
    tx: mpsc::Sender<Bytes>,
) {
    // Browsers reconnect after this many milliseconds.
    if tx
        .send(Bytes::from_static(b"retry: 1000\n\n"))
        .await
        .is_err()
    {
        return;
    }
    if send_replay(&filter, &mut last, replay, &tx).await.is_err() || !follow {
        return;
    }
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    loop {
        let sent = tokio::select! {
            item = rx.recv() => match item {
                Ok(Item::Event(e)) => {
                    let id = id_of(&e);
                    if last.is_some_and(|l| id <= l) {
                        continue;
                    }
                    last = Some(id);
                    if !filter.admits(&e) {
                        continue;
                    }
                    tx.send(event_frame(&e)).await.map_err(|_| ())
                }
                Ok(Item::Gap { retained_after }) => {
                    last = Some(retained_after);
                    tx.send(gap_frame(retained_after)).await.map_err(|_| ())
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "events follower fell behind; replaying from the window");
                    let replay = state.events.replay(Some(last.unwrap_or(EventId::end_of(0))));
                    send_replay(&filter, &mut last, replay, &tx).await
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = keep_alive.tick() => tx.send(Bytes::from_static(b": keep-alive\n\n")).await.map_err(|_| ()),
            _ = tx.closed() => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

async fn send_replay(
    filter: &Selection,
    last: &mut Option<EventId>,
    replay: Replay,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), ()> {
    if let Some(retained_after) = replay.gap {
        tx.send(gap_frame(retained_after)).await.map_err(|_| ())?;
    }
    for e in replay.events {
        let id = id_of(&e);
        if last.is_some_and(|l| id <= l) {
            continue;
        }
        *last = Some(id);
        if filter.admits(&e) {
            tx.send(event_frame(&e)).await.map_err(|_| ())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_the_query_and_bad_input_is_refused() {
        let mut headers = HeaderMap::new();
        let q = EventsQuery {
            kind: Some("vm,migration".into()),
            after: Some("5".into()),
            resource: Some("vm/web1".into()),
            ..Default::default()
        };
        let (f, after, follow) = parse(&headers, &q).unwrap();
        assert_eq!(f.kinds, vec![EventKind::Vm, EventKind::Migration]);
        assert_eq!(after, Some(EventId::end_of(5)));
        assert!(follow);
        headers.insert(LAST_EVENT_ID, "7-2".parse().unwrap());
        let (_, after, _) = parse(&headers, &q).unwrap();
        assert_eq!(
            after,
            Some(EventId {
                revision: 7,
                index: 2
            })
        );
        let bad_kind = EventsQuery {
            kind: Some("vms".into()),
            ..Default::default()
        };
        assert!(parse(&HeaderMap::new(), &bad_kind).is_err());
        headers.insert(LAST_EVENT_ID, "seven".parse().unwrap());
        assert!(parse(&headers, &q).is_err());
    }
}

#[cfg(test)]
mod audience_tests {
    use super::*;
    use novacron_api_types::tenancy::Role;

    fn event(project: Option<&str>, resource: &str) -> Event {
        Event {
            id: "1-0".into(),
            revision: 1,
            kind: if project.is_some() {
                EventKind::Vm
            } else {
                EventKind::Node
            },
            action: "changed".into(),
            resource: resource.into(),
            related: vec![],
            project: project.map(str::to_string),
            message: String::new(),
            data: serde_json::Value::Null,
        }
    }

    fn principal(cluster: Option<Role>, projects: &[(&str, Role)]) -> Audience {
        Audience(Arc::new(Principal {
            who: "test".into(),
            user: None,
            token_id: None,
            cluster,
            projects: projects.iter().map(|(p, r)| (p.to_string(), *r)).collect(),
            home: None,
        }))
    }

    #[test]
    fn a_caller_sees_its_projects_and_the_cluster_only_with_a_cluster_role() {
        let team_a = event(Some("team-a"), "vm/web1");
        let team_b = event(Some("team-b"), "vm/db1");
        let node = event(None, "node/n1");

        let viewer = principal(None, &[("team-a", Role::Viewer)]);
        assert!(viewer.sees(&team_a));
        assert!(!viewer.sees(&team_b));
        assert!(!viewer.sees(&node), "nodes are the cluster's");

        let cluster_viewer = principal(Some(Role::ClusterViewer), &[]);
        for e in [&team_a, &team_b, &node] {
            assert!(cluster_viewer.sees(e), "{}", e.resource);
        }

        // Audit records: a project's admins and cluster roles, as GET /api/v1/audit.
        let audit = |project: Option<&str>| Event {
            kind: EventKind::Audit,
            ..event(project, "audit/7")
        };
        let admin = principal(None, &[("team-a", Role::Admin)]);
        assert!(admin.sees(&audit(Some("team-a"))));
        assert!(!admin.sees(&audit(Some("team-b"))));
        assert!(!admin.sees(&audit(None)));
        assert!(
            !viewer.sees(&audit(Some("team-a"))),
            "a viewer reads no audit log"
        );
        assert!(cluster_viewer.sees(&audit(Some("team-b"))) && cluster_viewer.sees(&audit(None)));

        // A project filter narrows what the caller may see; it never widens it.
        let selection = Selection {
            filter: EventFilter {
                project: Some("team-b".into()),
                kinds: vec![],
                resource: None,
            },
            audience: viewer,
        };
        assert!(!selection.admits(&team_a));
        assert!(!selection.admits(&team_b));
    }
}
