//! Every node choice through the scheduler, seen from outside: a real control plane (embedded
//! store, HTTPS on loopback) with two registered nodes whose agents are small HTTPS stand-ins
//! holding the node certificates the control plane issued (they accept a migration and
//! record what they are asked). No QEMU: the VMs' states are reported through the agent API
//! as an agent would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use novacron_api_types::agent::{HeartbeatRequest, RegisterRequest, VmStatusReport};
use novacron_api_types::migration::{MigrateRequest, MigrationState};
use novacron_api_types::{
    AccelChoice, ErrorCode, HaPolicy, Image, ImageKind, Network, Resources, VmCreateRequest,
    VmState,
};
use novacron_client::Client;
use novacron_server::{Server, TokenKind};

const MIB: u64 = 1 << 20;

/// A stand-in agent: answers every call like an agent that accepted it, records the paths.
struct FakeAgent {
    client: Client,
    calls: Arc<Mutex<Vec<String>>>,
    beating: Arc<std::sync::atomic::AtomicBool>,
    _serve: novacron_tls::ServeHandle,
}

struct Cp {
    _dir: tempfile::TempDir,
    server: Server,
    admin: Client,
}

impl Cp {
    async fn start() -> Cp {
        let dir = tempfile::tempdir().unwrap();
        let store = common::sqlite_store(dir.path()).await;
        let server = Server::start(common::config(store.clone(), dir.path()))
            .await
            .unwrap();
        // An image record is all a VM's creation needs from the image (no agent here boots it).
        let image = Image {
            name: "tiny".into(),
            project: "default".into(),
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
                &novacron_server::records::image_key("default", "tiny"),
                serde_json::to_vec(&image).unwrap(),
            )
            .await
            .unwrap();
        let admin_token = server.issue_token(TokenKind::Admin).await.unwrap();
        let admin = common::client(&server, &admin_token);
        // HA VMs need their disk on shared storage.
        admin
            .storage_add(&novacron_api_types::StoragePool {
                name: "shared1".into(),
                kind: novacron_api_types::StorageKind::SharedDir,
                path: dir.path().join("shared").display().to_string(),
                created_at: 0,
            })
            .await
            .unwrap();
        Cp {
            _dir: dir,
            server,
            admin,
        }
    }

    /// Registers node `name` (2 CPUs, `memory` bytes, 10 GiB disk, QEMU 9.0) with a stand-in
    /// agent that heartbeats every second until `beating` is cleared.
    async fn node(&self, name: &str, memory: u64) -> FakeAgent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let join = self.server.issue_token(TokenKind::Join).await.unwrap();
        let resp = common::client(&self.server, &join)
            .agent_register(&RegisterRequest {
                name: name.into(),
                capacity: Resources {
                    cpus: 2,
                    memory_bytes: memory,
                    disk_bytes: 10 << 30,
                },
                agent_url: url,
                kvm_usable: false,
                qemu_version: "9.0.2".into(),
                bridges: vec![],
                vtep_address: None,
                site: None,
                tunnel: None,
            })
            .await
            .unwrap();
        let calls: Arc<Mutex<Vec<String>>> = Default::default();
        let record = calls.clone();
        let router = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(uri.path().to_string());
                axum::Json(serde_json::json!({"dwcp_addr": "127.0.0.1:9"}))
            }
        });
        let id = novacron_tls::Identity {
            cert_pem: resp.cert_pem.clone(),
            key_pem: resp.key_pem.clone(),
        };
        let tls = novacron_tls::server_config(&id, None).unwrap();
        let serve = novacron_tls::serve_https(listener, tls, router).unwrap();
        let client = common::client(&self.server, &resp.node_token);
        let beating = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (c, b) = (client.clone(), beating.clone());
        tokio::spawn(async move {
            while b.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = c
                    .agent_heartbeat(&HeartbeatRequest {
                        running_vms: 0,
                        stats: None,
                    })
                    .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        client
            .agent_heartbeat(&HeartbeatRequest {
                running_vms: 0,
                stats: None,
            })
            .await
            .unwrap();
        FakeAgent {
            client,
            calls,
            beating,
            _serve: serve,
        }
    }

    /// Creates VM `name` on `node` and reports it running there, as its agent would.
    async fn running_vm(&self, agent: &FakeAgent, name: &str, node: &str, memory: u64, ha: bool) {
        self.admin
            .vm_create(&vm_request(name, Some(node), memory, ha))
            .await
            .unwrap();
        agent
            .client
            .agent_report_status(
                "default",
                name,
                &VmStatusReport {
                    observed_generation: 1,
                    state: VmState::Running,
                    reason: None,
                    pid: Some(1),
                    accel_in_use: Some("tcg".into()),
                    error: None,
                    guest_initiated_stop: false,
                    deleted: false,
                    guest_interfaces: Vec::new(),
                },
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.admin.vm_get(name).await.unwrap().state != VmState::Running {
            assert!(Instant::now() < deadline, "VM {name} never showed running");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn vm_request(name: &str, node: Option<&str>, memory: u64, ha: bool) -> VmCreateRequest {
    VmCreateRequest {
        name: name.into(),
        image: "tiny".into(),
        cpus: 1,
        memory_bytes: memory,
        disk_bytes: None,
        node: node.map(str::to_string),
        accel: AccelChoice::Tcg,
        network: Network::default(),
        ssh_keys: vec![],
        start: true,
        storage: ha.then(|| "shared1".to_string()),
        ha: if ha {
            HaPolicy::Restart
        } else {
            HaPolicy::None
        },
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

fn to(node: &str) -> MigrateRequest {
    MigrateRequest {
        to: Some(node.into()),
        max_downtime_ms: None,
        bandwidth_bps: None,
        offline: false,
        deadline_seconds: None,
        mode: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_on_a_migration_destination_sees_the_memory_promised_to_the_incoming_vm() {
    let cp = Cp::start().await;
    let a = cp.node("node-a", 1024 * MIB).await;
    let _b = cp.node("node-b", 1024 * MIB).await;
    cp.running_vm(&a, "mover", "node-a", 512 * MIB, false).await;

    let m = cp.admin.vm_migrate("mover", &to("node-b")).await.unwrap();
    assert_eq!(m.state, MigrationState::Running, "{m:?}");
    assert_eq!(m.destination, "node-b");

    // 768 MiB would fit node-b's 1 GiB if nothing were promised to it; 512 MiB are.
    let e = cp
        .admin
        .vm_create(&vm_request("late", Some("node-b"), 768 * MIB, false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NoCapacity), "{e}");
    assert!(e.to_string().contains("node-b"), "{e}");
    // Nor does the scheduler choose node-b (or node-a, which holds the VM still) by itself.
    let e = cp
        .admin
        .vm_create(&vm_request("late", None, 768 * MIB, false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NoCapacity), "{e}");
    // A second move of the same VM is refused while the first runs.
    let e = cp
        .admin
        .vm_migrate("mover", &to("node-b"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Conflict), "{e}");
    assert!(e.to_string().contains("already migrating"), "{e}");

    // Once the migration is cancelled the promise is gone and node-b takes the new VM.
    cp.admin.migration_cancel(&m.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cp
            .admin
            .vm_create(&vm_request("late", Some("node-b"), 768 * MIB, false))
            .await
        {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "node-b still refuses: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(
        cp.admin.vm_get("late").await.unwrap().node.as_deref(),
        Some("node-b")
    );
    cp.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_destination_refusals_say_why() {
    let cp = Cp::start().await;
    let a = cp.node("node-a", 1024 * MIB).await;
    let _b = cp.node("node-b", 512 * MIB).await;
    cp.running_vm(&a, "big", "node-a", 768 * MIB, false).await;
    let e = cp.admin.vm_migrate("big", &to("node-a")).await.unwrap_err();
    assert!(e.to_string().contains("already runs on node-a"), "{e}");
    let e = cp
        .admin
        .vm_migrate("big", &to("nowhere"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no node named"), "{e}");
    let e = cp.admin.vm_migrate("big", &to("node-b")).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NoCapacity), "{e}");
    assert!(
        e.to_string()
            .contains("node-b has 512 MiB of memory free and VM big needs 768 MiB"),
        "{e}"
    );
    cp.admin.node_action("node-b", "cordon").await.unwrap();
    let e = cp.admin.vm_migrate("big", &to("node-b")).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("node node-b is cordoned: only a ready node takes VMs"),
        "{e}"
    );
    // The evacuation plan goes through the same scheduler and names the VM that fits nowhere.
    let e = cp
        .admin
        .evacuation_plan(&novacron_api_types::migration::EvacuateRequest {
            node: "node-a".into(),
            to: None,
            parallel: None,
            bandwidth_bps: None,
            max_downtime_ms: None,
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no node can take VM big"), "{e}");
    cp.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_restart_ends_the_lost_nodes_migration_before_moving_its_vm() {
    let cp = Cp::start().await;
    let a = cp.node("node-a", 1024 * MIB).await;
    let b = cp.node("node-b", 1024 * MIB).await;
    cp.running_vm(&a, "keeper", "node-a", 256 * MIB, true).await;
    let m = cp.admin.vm_migrate("keeper", &to("node-b")).await.unwrap();
    assert_eq!(m.state, MigrationState::Running, "{m:?}");

    // node-a goes silent: its lease (10 s) expires, the fence margin (2 s) passes, HA acts.
    a.beating.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let vm = cp.admin.vm_get("keeper").await.unwrap();
        let mig = cp.admin.migration_get(&m.id).await.unwrap();
        if vm.node.as_deref() == Some("node-b") {
            // The VM moved only after its migration was decided: it stayed on the source.
            assert_eq!(mig.state, MigrationState::Failed, "{mig:?}");
            assert!(mig.message.contains("node-a was lost"), "{mig:?}");
            assert!(mig.message.contains("stays on node-a"), "{mig:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the HA VM was not restarted: {vm:?} {mig:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The destination was told to drop the incoming VM.
    let cancel = format!("/agent/v1/migrations/{}/cancel", m.id);
    assert!(
        b.calls.lock().unwrap().contains(&cancel),
        "{:?}",
        b.calls.lock().unwrap()
    );
    // A change of the restarted VM is accepted again (no migration holds it).
    cp.admin.vm_action("keeper", "start").await.unwrap();
    cp.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_commits_once_and_a_late_abort_changes_nothing() {
    use novacron_api_types::migration::MigrationOutcome;
    let cp = Cp::start().await;
    let a = cp.node("node-a", 1024 * MIB).await;
    let b = cp.node("node-b", 1024 * MIB).await;
    cp.running_vm(&a, "mover", "node-a", 256 * MIB, false).await;
    let m = cp.admin.vm_migrate("mover", &to("node-b")).await.unwrap();
    let e = b.client.agent_migration_commit(&m.id).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::PermissionDenied), "{e}");
    let out = a.client.agent_migration_commit(&m.id).await.unwrap();
    assert_eq!(out, MigrationOutcome::Committed);
    let vm = cp.admin.vm_get("mover").await.unwrap();
    assert_eq!(vm.node.as_deref(), Some("node-b"));
    assert_eq!(vm.generation, 2, "the switch-over is a new generation");
    assert_eq!(
        a.client.agent_migration_commit(&m.id).await.unwrap(),
        MigrationOutcome::Committed
    );
    assert_eq!(
        b.client.agent_migration_abort(&m.id).await.unwrap(),
        MigrationOutcome::Committed
    );
    let mig = cp.admin.migration_get(&m.id).await.unwrap();
    assert_eq!(mig.state, MigrationState::Committed, "{mig:?}");
    // The VM takes changes again.
    cp.admin.vm_action("mover", "start").await.unwrap();
    cp.server.stop().await;
}
