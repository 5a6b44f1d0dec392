//! Project quotas under concurrency, against a real control plane (HTTPS on loopback) on the
//! embedded store and on a real etcd: many VM creates at once against `max-vms`, and exactly
//! the limit succeed; every refusal names the limit, the usage and the request. No QEMU: a
//! registered node with room for every VM is all placement needs (nothing boots them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use novacron_api_types::agent::{HeartbeatRequest, RegisterRequest};
use novacron_api_types::tenancy::{ProjectCreateRequest, ProjectLimits, ProjectSetRequest};
use novacron_api_types::{
    AccelChoice, ErrorCode, HaPolicy, Image, ImageKind, Network, Resources, VmCreateRequest,
};
use novacron_client::Client;
use novacron_server::{Server, TokenKind};

/// Concurrent creates per round, and the project's limit.
const CREATES: usize = 64;
const MAX_VMS: u64 = 10;

/// A single-member etcd on loopback, killed when dropped.
struct Etcd {
    child: Child,
    url: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_etcd(dir: &std::path::Path) -> Etcd {
    let bin = std::env::var("NOVACRON_ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into());
    assert!(
        std::path::Path::new(&bin).exists(),
        "etcd not found at {bin}: install etcd-server or set NOVACRON_ETCD_BIN"
    );
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
    let child = Command::new(bin)
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    Etcd { child, url }
}

async fn etcd_store(etcd: &Etcd) -> Arc<dyn novacron_store::Store> {
    novacron_tls::install_crypto_provider();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(s) =
            novacron_store::open_store(&novacron_store::StoreUrl::Etcd(vec![etcd.url.clone()]))
                .await
            && s.revision().await.is_ok()
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "etcd at {} never answered",
            etcd.url
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A control plane with one big node (heartbeating) and its admin client.
async fn control_plane(
    store: Arc<dyn novacron_store::Store>,
    dir: &std::path::Path,
    backend: &str,
) -> (Server, Client, tokio::task::JoinHandle<()>) {
    let mut config = common::config(store, dir);
    config.store_backend = backend.into();
    let server = Server::start(config).await.unwrap();
    let admin = common::client(
        &server,
        &server.issue_token(TokenKind::Admin).await.unwrap(),
    );
    let join = server.issue_token(TokenKind::Join).await.unwrap();
    let resp = common::client(&server, &join)
        .agent_register(&RegisterRequest {
            name: "big".into(),
            capacity: Resources {
                cpus: 4096,
                memory_bytes: 4 << 40,
                disk_bytes: 64 << 40,
            },
            agent_url: "https://127.0.0.1:9".into(),
            kvm_usable: false,
            qemu_version: "9.0.2".into(),
            bridges: vec![],
            vtep_address: None,
            site: None,
            tunnel: None,
        })
        .await
        .unwrap();
    let node = common::client(&server, &resp.node_token);
    node.agent_heartbeat(&HeartbeatRequest {
        running_vms: 0,
        stats: None,
    })
    .await
    .unwrap();
    let beat = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = node
                .agent_heartbeat(&HeartbeatRequest {
                    running_vms: 0,
                    stats: None,
                })
                .await;
        }
    });
    (server, admin, beat)
}

fn vm(name: &str) -> VmCreateRequest {
    VmCreateRequest {
        name: name.into(),
        image: "tiny".into(),
        cpus: 1,
        memory_bytes: 64 << 20,
        disk_bytes: None,
        node: None,
        accel: AccelChoice::Tcg,
        network: Network::default(),
        ssh_keys: vec![],
        start: false,
        storage: None,
        ha: HaPolicy::None,
        ha_priority: 0,
        nics: vec![],
        security_groups: vec![],
        bandwidth_bps: None,
        labels: Default::default(),
        description: None,
        user_data: None,
        vendor_data: None,
        vnc: false,
        iso: None,
        firmware: None,
        secure_boot: false,
        tpm: false,
    }
}

/// A fresh project with `limits` and a tiny image record; the client acting in it.
async fn project_with_image(
    store: &Arc<dyn novacron_store::Store>,
    admin: &Client,
    project: &str,
    limits: ProjectLimits,
) -> Client {
    admin
        .project_create(&ProjectCreateRequest {
            name: project.into(),
            description: "quota test".into(),
        })
        .await
        .unwrap();
    admin
        .project_set(
            project,
            &ProjectSetRequest {
                description: None,
                limits,
            },
        )
        .await
        .unwrap();
    // An image record is all a VM's creation needs of the image.
    let image = Image {
        name: "tiny".into(),
        project: project.into(),
        kind: ImageKind::Kernel {
            cmdline: "console=ttyS0".into(),
        },
        size_bytes: 1,
        virtual_size_bytes: None,
        files: vec![],
        created_at: 0,
        origin: None,
        firmware: None,
    };
    store
        .put(
            &novacron_server::records::image_key(project, "tiny"),
            serde_json::to_vec(&image).unwrap(),
        )
        .await
        .unwrap();
    let client = admin.with_project(Some(project.into()));
    let mirrored = Instant::now() + Duration::from_secs(10);
    while client.image_get("tiny").await.is_err() {
        assert!(
            Instant::now() < mirrored,
            "the image never reached the mirror"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client
}

/// One round: a fresh project limited to MAX_VMS, CREATES creates at once; exactly MAX_VMS
/// succeed, and the usage says so.
async fn round(store: &Arc<dyn novacron_store::Store>, admin: &Client, project: &str) {
    let limits = ProjectLimits {
        max_vms: Some(MAX_VMS),
        ..Default::default()
    };
    let client = project_with_image(store, admin, project, limits).await;
    let tasks: Vec<_> = (0..CREATES)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.vm_create(&vm(&format!("vm-{i}"))).await })
        })
        .collect();
    let mut ok = 0;
    let mut refusals = vec![];
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => refusals.push(e),
        }
    }
    for e in &refusals {
        assert_eq!(e.code(), Some(ErrorCode::NoCapacity), "{project}: {e}");
        let text = e.to_string();
        assert!(
            text.contains("max-vms = 10")
                && text.contains("10 used")
                && text.contains("needs 1 more"),
            "{project}: the refusal names limit, usage and request: {text}"
        );
    }
    assert_eq!(ok, MAX_VMS as usize, "{project}: creates that succeeded");
    let usage = admin.project_usage(project).await.unwrap();
    assert_eq!(usage.usage.vms, MAX_VMS, "{project}");
    assert_eq!(usage.usage.cpus, MAX_VMS, "{project}");
    assert_eq!(client.vm_list().await.unwrap().len(), MAX_VMS as usize);
    // Nothing leaked into another project.
    assert!(
        admin.vm_list().await.unwrap().is_empty(),
        "default holds nothing"
    );
}

/// A project without limits (whose creates do not write its usage record) deleted while
/// CREATES creates run in it: either the delete is refused because the project holds the
/// VMs that were made, or it succeeds and no VM was made and none is left in the store (an
/// orphan VM of a deleted project is the failure this guards against).
async fn delete_racing_creates(
    store: &Arc<dyn novacron_store::Store>,
    admin: &Client,
    project: &str,
    delay: Duration,
) {
    let client = project_with_image(store, admin, project, ProjectLimits::default()).await;
    let tasks: Vec<_> = (0..CREATES)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.vm_create(&vm(&format!("vm-{i}"))).await })
        })
        .collect();
    tokio::time::sleep(delay).await;
    // The image goes first (a project holding one is not deleted); creates past their
    // image check keep going.
    store
        .delete(&novacron_server::records::image_key(project, "tiny"))
        .await
        .unwrap();
    let deleted = admin.project_delete(project).await;
    let mut made = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            made += 1;
        }
    }
    let (left, _) = store
        .list(&novacron_server::records::vm_key(project, ""))
        .await
        .unwrap();
    match deleted {
        Ok(_) => {
            assert_eq!(made, 0, "{project}: deleted, yet {made} creates succeeded");
            assert!(
                left.is_empty(),
                "{project}: deleted, yet {} VM records remain",
                left.len()
            );
        }
        Err(e) => {
            assert_eq!(e.code(), Some(ErrorCode::Conflict), "{project}: {e}");
            assert_eq!(
                left.len(),
                made,
                "{project}: VMs in the store vs creates that succeeded"
            );
            let shown = admin.project_show(project).await.unwrap();
            assert!(
                !shown.deleting,
                "{project}: the refused delete left its mark"
            );
        }
    }
}

/// Rounds per store: NOVACRON_QUOTA_ROUNDS, default 20 in a row (a round takes well under a second).
fn rounds() -> usize {
    std::env::var("NOVACRON_QUOTA_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_exceed_max_vms_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::sqlite_store(dir.path()).await;
    let (server, admin, beat) = control_plane(store.clone(), dir.path(), "sqlite").await;
    for i in 0..rounds() {
        round(&store, &admin, &format!("team-{i}")).await;
    }
    for i in 0..rounds() {
        let delay = Duration::from_millis((i % 5) as u64 * 3);
        delete_racing_creates(&store, &admin, &format!("gone-{i}"), delay).await;
    }
    beat.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_exceed_max_vms_on_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(dir.path());
    let store = etcd_store(&etcd).await;
    let (server, admin, beat) = control_plane(store.clone(), dir.path(), "etcd").await;
    for i in 0..rounds() {
        round(&store, &admin, &format!("team-{i}")).await;
    }
    for i in 0..rounds() {
        let delay = Duration::from_millis((i % 5) as u64 * 3);
        delete_racing_creates(&store, &admin, &format!("gone-{i}"), delay).await;
    }
    beat.abort();
    server.stop().await;
}
