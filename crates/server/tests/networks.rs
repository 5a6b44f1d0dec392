//! Overlay networks through the API of a real control plane (embedded store, HTTPS on
//! loopback): create, list, show, delete; bad input refused with a clear 4xx and nothing
//! stored; VNIs unique under concurrent creates; overlapping subnets refused under them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use novacron_api_types::ErrorCode;
use novacron_api_types::overlay::{NetworkCreateRequest, OverlayNetwork};
use novacron_client::{Client, ClientError};
use novacron_server::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Cp {
    _dir: tempfile::TempDir,
    store: Arc<dyn novacron_store::Store>,
    server: Server,
    admin: String,
    http: reqwest::Client,
}

impl Cp {
    async fn start() -> Cp {
        let common::Started {
            dir,
            store,
            server,
            admin,
        } = common::start().await;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(novacron_tls::client_config(server.ca_cert_pem(), None).unwrap())
            .build()
            .unwrap();
        Cp {
            _dir: dir,
            store,
            server,
            admin,
            http,
        }
    }

    fn client(&self) -> Client {
        common::client(&self.server, &self.admin)
    }

    /// POSTs a raw body to /api/v1/networks as admin (no SDK checks on the way).
    async fn post(&self, body: &Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/api/v1/networks", self.server.url))
            .bearer_auth(&self.admin)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Keys under the networks and VNI prefixes: what a refused request must not change.
    async fn stored_keys(&self) -> Vec<String> {
        let mut keys = vec![];
        for prefix in ["/novacron/networks/", "/novacron/vnis/"] {
            let (kvs, _) = self.store.list(prefix).await.unwrap();
            keys.extend(kvs.into_iter().map(|kv| kv.key));
        }
        keys
    }
}

fn req(name: &str, subnet: &str) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: name.into(),
        project: None,
        subnet: subnet.into(),
        gateway: None,
        nat: false,
        dhcp: true,
        dns: false,
        mtu: None,
    }
}

fn api_code(e: &ClientError) -> Option<ErrorCode> {
    match e {
        ClientError::Api(a) => Some(a.code),
        _ => None,
    }
}

#[tokio::test]
async fn networks_are_created_listed_shown_and_deleted() {
    let cp = Cp::start().await;
    let c = cp.client();

    let mut r = req("app", "10.10.0.0/24");
    r.nat = true;
    r.dns = true;
    let app = c.network_create(&r).await.unwrap();
    assert_eq!(app.subnet, "10.10.0.0/24");
    assert_eq!(app.gateway, "10.10.0.1");
    assert_eq!(app.mtu, 1450);
    assert_eq!(app.project, "default");
    assert!(app.nat && app.dhcp && app.dns);
    assert!(app.vni >= 1000);

    let mut r = req("db", "10.20.0.0/24");
    r.gateway = Some("10.20.0.254".into());
    r.mtu = Some(8950);
    r.dhcp = false;
    let db = c.network_create(&r).await.unwrap();
    assert_ne!(db.vni, app.vni);
    assert_eq!(db.gateway, "10.20.0.254");

    // Another project may reuse a subnet (its VNI keeps it apart), not a VNI.
    c.project_create(&novacron_api_types::tenancy::ProjectCreateRequest {
        name: "other".into(),
        description: String::new(),
    })
    .await
    .unwrap();
    let mut r = req("app", "10.10.0.0/24");
    r.project = Some("other".into());
    let other = c.network_create(&r).await.unwrap();
    assert!(other.vni != app.vni && other.vni != db.vni);

    let all = c.network_list(None).await.unwrap();
    assert_eq!(all.len(), 3);
    let default: Vec<String> = c
        .network_list(Some("default"))
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(default, ["app", "db"]);
    assert_eq!(c.network_show("app", "default").await.unwrap(), app);
    assert_eq!(c.network_show("app", "other").await.unwrap(), other);

    // The JSON the CLI's -o json prints has the fields by these names.
    let v = serde_json::to_value(&app).unwrap();
    for field in [
        "name", "project", "vni", "subnet", "gateway", "nat", "dhcp", "dns", "mtu",
    ] {
        assert!(v.get(field).is_some(), "{field} missing from {v}");
    }

    let deleted = c.network_delete("app", "default").await.unwrap();
    assert_eq!(deleted.vni, app.vni);
    let e = c.network_show("app", "default").await.unwrap_err();
    assert_eq!(api_code(&e), Some(ErrorCode::NotFound));
    let e = c.network_delete("app", "default").await.unwrap_err();
    assert_eq!(api_code(&e), Some(ErrorCode::NotFound));
    // The VNI is free again: the next network gets it back.
    let again = c
        .network_create(&req("app2", "10.10.0.0/24"))
        .await
        .unwrap();
    assert_eq!(again.vni, app.vni);
}

/// Show and delete act in the request's project however it was chosen: the header (or a
/// project-scoped token) as well as `?project=`, the project the role gate authorized.
#[tokio::test]
async fn show_and_delete_act_in_the_project_the_header_names() {
    let cp = Cp::start().await;
    let c = cp.client();
    c.project_create(&novacron_api_types::tenancy::ProjectCreateRequest {
        name: "other".into(),
        description: String::new(),
    })
    .await
    .unwrap();
    let in_default = c.network_create(&req("app", "10.10.0.0/24")).await.unwrap();
    let mut r = req("app", "10.30.0.0/24");
    r.project = Some("other".into());
    let in_other = c.network_create(&r).await.unwrap();
    let call = |method: reqwest::Method| {
        cp.http
            .request(method, format!("{}/api/v1/networks/app", cp.server.url))
            .bearer_auth(&cp.admin)
            .header(novacron_api_types::tenancy::PROJECT_HEADER, "other")
    };
    let shown: OverlayNetwork = call(reqwest::Method::GET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown, in_other);
    let resp = call(reqwest::Method::DELETE).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let deleted: OverlayNetwork = resp.json().await.unwrap();
    assert_eq!(deleted, in_other);
    // default's network of the same name is untouched; other's is gone.
    assert_eq!(c.network_show("app", "default").await.unwrap(), in_default);
    let e = c.network_show("app", "other").await.unwrap_err();
    assert_eq!(api_code(&e), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let cp = Cp::start().await;
    let (status, body) = cp
        .post(&json!({"name": "app", "subnet": "10.10.0.0/24"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = cp.stored_keys().await;
    assert_eq!(before.len(), 2, "{before:?}");

    let cases: [(Value, u16, &str, &str); 10] = [
        (
            json!({"name": "x", "subnet": "10.11.0.0/33"}),
            400,
            "invalid_argument",
            "CIDR",
        ),
        (
            json!({"name": "x", "subnet": "banana"}),
            400,
            "invalid_argument",
            "CIDR",
        ),
        (
            json!({"name": "x", "subnet": "10.11.0.5/24"}),
            400,
            "invalid_argument",
            "did you mean 10.11.0.0/24",
        ),
        (
            json!({"name": "x", "subnet": "10.11.0.0/24", "gateway": "10.12.0.1"}),
            400,
            "invalid_argument",
            "not a host address of subnet 10.11.0.0/24",
        ),
        (
            json!({"name": "x", "subnet": "10.11.0.0/24", "gateway": "10.11.0.255"}),
            400,
            "invalid_argument",
            "broadcast",
        ),
        (
            json!({"name": "x", "subnet": "10.11.0.0/24", "mtu": 100}),
            400,
            "invalid_argument",
            "MTU 100 is out of range",
        ),
        (
            json!({"name": "x", "subnet": "10.11.0.0/24", "mtu": 9000}),
            400,
            "invalid_argument",
            "MTU 9000 is out of range",
        ),
        (
            json!({"name": "Not A Name", "subnet": "10.11.0.0/24"}),
            400,
            "invalid_argument",
            "network",
        ),
        (
            json!({"name": "app", "subnet": "10.11.0.0/24"}),
            409,
            "already_exists",
            "already exists",
        ),
        (
            json!({"name": "web", "subnet": "10.10.0.128/25"}),
            409,
            "conflict",
            "overlaps network app",
        ),
    ];
    for (body, status, code, text) in cases {
        let (got, answer) = cp.post(&body).await;
        assert_eq!(got.as_u16(), status, "{body} -> {answer}");
        assert_eq!(answer["code"], code, "{body} -> {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(text), "{body} -> {message}");
    }
    assert_eq!(cp.stored_keys().await, before);

    // The SDK refuses what the API refuses, with the same message, before sending.
    let e = cp
        .client()
        .network_create(&req("x", "10.11.0.5/24"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("did you mean 10.11.0.0/24"), "{e}");
}

#[tokio::test]
async fn concurrent_creates_get_distinct_vnis_and_one_wins_an_overlap() {
    let cp = Cp::start().await;
    let c = cp.client();

    // Disjoint subnets: every create succeeds, each with its own VNI.
    let creates = (0..8).map(|i| {
        let c = c.clone();
        async move {
            c.network_create(&req(&format!("n{i}"), &format!("10.{}.0.0/24", 40 + i)))
                .await
        }
    });
    let made: Vec<OverlayNetwork> = futures_util::future::join_all(creates)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let vnis: BTreeSet<u32> = made.iter().map(|n| n.vni).collect();
    assert_eq!(vnis.len(), 8, "{made:?}");

    // Overlapping subnets under different names: exactly one wins, the rest get 409.
    let creates = (0..6).map(|i| {
        let c = c.clone();
        async move {
            c.network_create(&req(&format!("o{i}"), "10.99.0.0/24"))
                .await
        }
    });
    let results = futures_util::future::join_all(creates).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(api_code(r), Some(ErrorCode::Conflict), "{r}");
    }
    assert_eq!(c.network_list(None).await.unwrap().len(), 9);
}
