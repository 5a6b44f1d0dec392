//! The repository on S3-compatible object storage: a real `moto_server` (PyPI `moto[server]`)
//! on loopback. The test fails — it does not skip — when moto_server cannot be started.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use novacron_backup::backend::s3::{S3Backend, S3Config};
use novacron_backup::repo::chunk_key;
use novacron_backup::*;

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    // Kill, then reap within a bound: a failing test must end even if moto_server hangs.
    fn drop(&mut self) {
        novacron_qemu::process::stop_child(&mut self.child, Duration::from_secs(5));
    }
}

fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start moto_server ({e}); install it with: pip install 'moto[server]'")
        });
    let mut moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!(
                "moto_server exited at start with {status}; install it with: pip install 'moto[server]'"
            );
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto.port = port;
    moto
}

/// Creates a bucket with a plain HTTP request (moto accepts unsigned requests).
fn create_bucket(port: u16, bucket: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "bucket creation failed: {resp}"
    );
}

fn backend(port: u16, bucket: &str, prefix: &str) -> Arc<S3Backend> {
    let cfg = S3Config {
        bucket: bucket.into(),
        prefix: prefix.into(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: "us-east-1".into(),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        allow_http: true,
    };
    Arc::new(S3Backend::new(&cfg).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_on_s3() {
    let moto = start_moto();
    create_bucket(moto.port, "novacron");
    let b = backend(moto.port, "novacron", "site-a/repo1");

    // Raw backend contract.
    b.put("locks/x", b"1".to_vec()).await.unwrap();
    assert!(b.exists("locks/x").await.unwrap());
    assert!(
        !b.put_new("locks/x", b"2".to_vec()).await.unwrap(),
        "put_new must not overwrite"
    );
    assert_eq!(b.get("locks/x").await.unwrap(), b"1");
    assert!(matches!(
        b.get("locks/nope").await,
        Err(BackupError::NotFound { .. })
    ));
    let l = b.list("locks/").await.unwrap();
    assert_eq!(
        l.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        vec!["locks/x"]
    );
    b.delete("locks/x").await.unwrap();
    b.delete("locks/x").await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.raw");
    let cs = 64u64 << 10;
    let mut data: Vec<u8> = (0..(24 * cs as usize))
        .map(|i| ((i / 4096) % 13) as u8 * (i % 3 == 0) as u8)
        .collect();
    data[3 * cs as usize..4 * cs as usize]
        .iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i * 7919 % 251) as u8);
    std::fs::write(&img, &data).unwrap();

    let key = KeyFile::from_bytes([9; 32]);
    let repo = Repository::create(
        b.clone(),
        CreateOptions {
            chunk_size_bytes: cs,
            zstd_level: 1,
            key: Some(KeyFile::from_bytes([9; 32])),
        },
    )
    .await
    .unwrap();
    let src = || Arc::new(FileSource::open(&img).unwrap()) as Arc<dyn DiskSource>;
    let meta = BackupMeta {
        vm: "web1".into(),
        ..Default::default()
    };
    let b1 = repo
        .backup(
            meta.clone(),
            vec![DiskInput {
                name: "vda".into(),
                format: "raw".into(),
                source: src(),
                changes: Changes::Full {
                    reason: "first".into(),
                },
                bitmap: None,
            }],
            &BackupOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    data[10 * cs as usize] ^= 0x5a;
    std::fs::write(&img, &data).unwrap();
    let mut map = DirtyMap::new(data.len() as u64, 65536).unwrap();
    map.mark(10 * cs, 1);
    let b2 = repo
        .backup(
            meta,
            vec![DiskInput {
                name: "vda".into(),
                format: "raw".into(),
                source: src(),
                changes: Changes::Dirty {
                    parent: b1.id.clone(),
                    map,
                },
                bitmap: None,
            }],
            &BackupOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(b2.stats.bytes_read, cs);

    // Disaster recovery: a fresh process opens the bucket with only the key file.
    let reopened = Repository::open(backend(moto.port, "novacron", "site-a/repo1"), Some(&key))
        .await
        .unwrap();
    assert_eq!(reopened.list_backups(None, None).await.unwrap().len(), 2);
    let out = dir.path().join("restored.raw");
    reopened
        .restore_disk(&b2.id, "vda", &out, &RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert!(reopened.verify(&VerifyOptions::default()).await.unwrap().ok);

    // Corrupt a chunk only b2 has, in the bucket: verify names b2 only.
    let ChunkRef::Data(c) = b2.disks[0].chunks[10] else {
        panic!()
    };
    let k = chunk_key(&c);
    let mut blob = b.get(&k).await.unwrap();
    let n = blob.len();
    blob[n / 2] ^= 1;
    b.put(&k, blob).await.unwrap();
    let v = reopened.verify(&VerifyOptions::default()).await.unwrap();
    assert_eq!(
        v.affected_backups
            .iter()
            .map(|a| a.id.clone())
            .collect::<Vec<_>>(),
        vec![b2.id.clone()]
    );
    let err = reopened
        .restore_disk(
            &b2.id,
            "vda",
            &dir.path().join("r2"),
            &RestoreOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::RestoreRefused { .. }), "{err}");

    // Forget b2 and collect: its private chunk goes, b1 still restores.
    reopened.forget(&b2.id).await.unwrap();
    let g = reopened
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(g.chunks_deleted, 1);
    assert!(!b.exists(&k).await.unwrap());
    let out1 = dir.path().join("restored1.raw");
    reopened
        .restore_disk(&b1.id, "vda", &out1, &RestoreOptions::default())
        .await
        .unwrap();
    data[10 * cs as usize] ^= 0x5a;
    assert_eq!(std::fs::read(&out1).unwrap(), data);
    // Another prefix in the same bucket is a different (empty) place.
    assert!(matches!(
        Repository::open(backend(moto.port, "novacron", "site-b"), Some(&key)).await,
        Err(BackupError::NotARepository { .. })
    ));
}
