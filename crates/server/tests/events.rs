//! The events stream end to end: a real control plane over an embedded store, records
//! written to the store as handlers and agents write them, and the SDK reading
//! `GET /api/v1/events` over HTTPS: events arrive in order, a client resuming with
//! `Last-Event-ID` gets exactly what it missed (on this replica or another one), and filters
//! leave out what they should.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::events::{Event, EventKind};
use novacron_api_types::{Operation, OperationState, VmState};
use novacron_client::{Client, EventStream, EventsRequest, StreamItem};
use novacron_server::Server;
use novacron_server::records::{self, VmStatusRecord};
use novacron_store::{Op, Store};

fn status(state: VmState) -> Vec<u8> {
    serde_json::to_vec(&VmStatusRecord {
        observed_generation: 1,
        state,
        reason: None,
        pid: None,
        accel_in_use: None,
        updated_at: 1,
        guest_interfaces: Vec::new(),
    })
    .unwrap()
}

fn operation(id: &str, target: &str, state: OperationState, progress: Option<f64>) -> Vec<u8> {
    serde_json::to_vec(&Operation {
        id: id.into(),
        project: "default".into(),
        kind: "vm.start".into(),
        target: target.into(),
        state,
        message: String::new(),
        progress,
        created_at: 1,
        updated_at: 1,
    })
    .unwrap()
}

async fn next_event(stream: &mut EventStream) -> Event {
    match tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("an event within 20 s")
        .unwrap()
    {
        Some(StreamItem::Event(e)) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Every event of a stream that ends (`follow: false`).
async fn drain(client: &Client, req: EventsRequest) -> Vec<Event> {
    let mut stream = client
        .events(&EventsRequest {
            follow: false,
            ..req
        })
        .await
        .unwrap();
    let mut events = vec![];
    while let Some(item) = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .unwrap()
        .unwrap()
    {
        match item {
            StreamItem::Event(e) => events.push(e),
            StreamItem::Gap(g) => panic!("unexpected gap: {g:?}"),
        }
    }
    events
}

fn summary(events: &[Event]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| (e.resource.clone(), e.action.clone(), e.message.clone()))
        .collect()
}

async fn put(store: &Arc<dyn Store>, key: &str, value: Vec<u8>) {
    store.put(key, value).await.unwrap();
}

#[tokio::test]
async fn events_arrive_in_order_and_a_client_resumes_with_exactly_what_it_missed() {
    let common::Started {
        dir,
        store,
        server,
        admin,
    } = common::start().await;
    let client = common::client(&server, &admin);

    // Following from now on: the stream is subscribed once the answer's headers arrive.
    let mut live = client
        .events(&EventsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let web1 = records::vm_status_key("default", "web1");
    put(&store, &web1, status(VmState::Starting)).await;
    // Heartbeat-like rewrite that changes nothing an event shows: no event.
    put(&store, &web1, status(VmState::Starting)).await;
    put(&store, &web1, status(VmState::Running)).await;
    put(
        &store,
        &records::op_key("op1"),
        operation("op1", "vm/web1", OperationState::Running, Some(0.5)),
    )
    .await;
    let first: Vec<Event> = [
        next_event(&mut live).await,
        next_event(&mut live).await,
        next_event(&mut live).await,
    ]
    .into();
    assert_eq!(
        summary(&first),
        vec![
            (
                "vm/web1".into(),
                "state".into(),
                "VM web1 is starting".into()
            ),
            (
                "vm/web1".into(),
                "state".into(),
                "VM web1 is running".into()
            ),
            (
                "operation/op1".into(),
                "created".into(),
                "operation op1 (vm.start vm/web1): running (50 %)".into()
            ),
        ]
    );
    assert!(first.windows(2).all(|w| w[0].revision < w[1].revision));
    assert_eq!(first[0].kind, EventKind::Vm);

    // The client goes away after the second event; meanwhile more happens, two records in
    // one transaction among it (one revision, two events).
    drop(live);
    let resume_after = first[1].id.clone();
    put(
        &store,
        &records::op_key("op1"),
        operation("op1", "vm/web1", OperationState::Succeeded, Some(1.0)),
    )
    .await;
    store
        .txn(
            vec![],
            vec![
                Op::Put {
                    key: records::vm_status_key("default", "web2"),
                    value: status(VmState::Starting),
                },
                Op::Put {
                    key: web1.clone(),
                    value: status(VmState::Stopped),
                },
            ],
        )
        .await
        .unwrap();
    put(
        &store,
        &records::node_lease_key("n1"),
        br#"{"lease":1,"ttl_ms":10000,"since":1}"#.to_vec(),
    )
    .await;

    // Wait until the server has seen the last write.
    let all = loop {
        let all = drain(
            &client,
            EventsRequest {
                after: Some("0".into()),
                ..Default::default()
            },
        )
        .await;
        if all.last().is_some_and(|e| e.resource == "node/n1") {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let missed = drain(
        &client,
        EventsRequest {
            after: Some(resume_after.clone()),
            ..Default::default()
        },
    )
    .await;
    let expected: Vec<Event> = all
        .iter()
        .skip_while(|e| e.id != resume_after)
        .skip(1)
        .cloned()
        .collect();
    assert_eq!(missed, expected, "exactly the events after {resume_after}");
    assert_eq!(
        summary(&missed),
        vec![
            (
                "operation/op1".into(),
                "created".into(),
                "operation op1 (vm.start vm/web1): running (50 %)".into()
            ),
            (
                "operation/op1".into(),
                "succeeded".into(),
                "operation op1 (vm.start vm/web1): succeeded (100 %)".into()
            ),
            (
                "vm/web2".into(),
                "state".into(),
                "VM web2 is starting".into()
            ),
            (
                "vm/web1".into(),
                "state".into(),
                "VM web1 is stopped".into()
            ),
            (
                "node/n1".into(),
                "up".into(),
                "node n1 is up (heartbeats)".into()
            ),
        ]
    );
    // One transaction, one revision, two events with consecutive ids.
    assert_eq!(missed[2].revision, missed[3].revision);
    assert_eq!(missed[2].id, format!("{}-0", missed[2].revision));
    assert_eq!(missed[3].id, format!("{}-1", missed[3].revision));
    // Resuming between the two gives the second only.
    let between = drain(
        &client,
        EventsRequest {
            after: Some(missed[2].id.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(between, missed[3..].to_vec());

    // Filters: a kind, a resource (operations count for the VM they act on), a project.
    let nodes = drain(
        &client,
        EventsRequest {
            after: Some("0".into()),
            kinds: vec![EventKind::Node],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(summary(&nodes).len(), 1);
    assert_eq!(nodes[0].resource, "node/n1");
    let web2 = drain(
        &client,
        EventsRequest {
            after: Some("0".into()),
            resource: Some("vm/web2".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        web2.iter().map(|e| e.resource.as_str()).collect::<Vec<_>>(),
        vec!["vm/web2"]
    );
    let web1_events = drain(
        &client,
        EventsRequest {
            after: Some("0".into()),
            resource: Some("vm/web1".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(web1_events.iter().any(|e| e.resource == "operation/op1"));
    assert!(web1_events.iter().all(|e| e.resource != "vm/web2"));
    let other_project = drain(
        &client,
        EventsRequest {
            after: Some("0".into()),
            project: Some("other".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(other_project.is_empty(), "{other_project:?}");

    // A bad filter is a 400 with the usual error body.
    let err = client
        .events(&EventsRequest {
            resource: None,
            after: Some("yesterday".into()),
            ..Default::default()
        })
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("bad event id"), "{err}");

    // Another replica on the same store (a failover): same ids, same events, so the
    // client resumes there without losing any.
    std::fs::create_dir_all(dir.path().join("b/cp")).unwrap();
    std::fs::copy(dir.path().join("cp/ca.key"), dir.path().join("b/cp/ca.key")).unwrap();
    let replica = Server::start(common::config(store.clone(), &dir.path().join("b")))
        .await
        .unwrap();
    // A replica that has just started may still be replaying the store's history into its
    // window: ask until it has reached the last event.
    let replica_client = common::client(&replica, &admin);
    let on_replica = loop {
        let events = drain(
            &replica_client,
            EventsRequest {
                after: Some(resume_after.clone()),
                ..Default::default()
            },
        )
        .await;
        if events.last().map(|e| &e.id) == expected.last().map(|e| &e.id) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(on_replica, expected);
}

#[tokio::test]
async fn networks_and_audit_records_are_in_the_stream() {
    let cp = common::start().await;
    let (server, client) = (&cp.server, common::client(&cp.server, &cp.admin));

    let req = novacron_api_types::overlay::NetworkCreateRequest {
        name: "app".into(),
        project: None,
        subnet: "10.10.0.0/24".into(),
        gateway: None,
        nat: false,
        dhcp: true,
        dns: false,
        mtu: None,
    };
    let net = client.network_create(&req).await.unwrap();
    let stranger = common::client(server, "not-a-token");
    assert!(stranger.network_list(None).await.is_err());
    client.network_delete("app", "default").await.unwrap();

    let kinds = vec![EventKind::Network, EventKind::Audit];
    let events = loop {
        let events = drain(
            &client,
            EventsRequest {
                after: Some("0".into()),
                kinds: kinds.clone(),
                ..Default::default()
            },
        )
        .await;
        if events
            .iter()
            .any(|e| e.action == "ok" && e.data["action"] == "DELETE /api/v1/networks/{name}")
        {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let got: Vec<(EventKind, String, String)> = events
        .iter()
        .map(|e| (e.kind, e.resource.clone(), e.action.clone()))
        .collect();
    let at = |kind: EventKind, resource: &str, action: &str| {
        got.iter()
            .position(|g| *g == (kind, resource.to_string(), action.to_string()))
            .unwrap_or_else(|| panic!("no {kind} {resource} {action} in {got:?}"))
    };
    let created = at(EventKind::Network, "network/app", "created");
    let deleted = at(EventKind::Network, "network/app", "deleted");
    assert!(created < deleted);
    assert_eq!(events[created].project.as_deref(), Some("default"));
    assert_eq!(events[created].data["vni"], net.vni);

    let audit: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == EventKind::Audit)
        .collect();
    let summary: Vec<(String, String, u64)> = audit
        .iter()
        .map(|e| {
            (
                e.data["action"].as_str().unwrap().to_string(),
                e.action.clone(),
                e.data["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("POST /api/v1/networks".into(), "ok".into(), 201),
            ("GET /api/v1/networks".into(), "refused".into(), 401),
            ("DELETE /api/v1/networks/{name}".into(), "ok".into(), 200),
        ],
        "one audit event per record, in chain order"
    );
    assert!(
        audit
            .windows(2)
            .all(|w| w[0].data["seq"].as_u64() < w[1].data["seq"].as_u64())
    );
    assert_eq!(
        audit[1].project, None,
        "a refused anonymous call has no project"
    );
}
