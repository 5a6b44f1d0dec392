//! End-to-end tests of DWCP sessions over real loopback sockets with real TLS.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use novacron_dwcp::hde::{DecoderConfig, EncoderConfig};
use novacron_dwcp::testing::TestCa;
use novacron_dwcp::{
    BlockReceiver, BlockSender, DwcpError, KeyExchange, Listener, Session, SessionOptions,
    SessionSecret, TlsIdentity, connect,
};

fn opts() -> SessionOptions {
    SessionOptions {
        server_name: "node-b".into(),
        ..SessionOptions::default()
    }
}

async fn pair(
    client_opts: SessionOptions,
    server_opts: SessionOptions,
) -> (Session, Session, Listener) {
    let ca = TestCa::new("test cluster").unwrap();
    let a = ca.issue("node-a").unwrap();
    let b = ca.issue("node-b").unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), &b, server_opts)
        .await
        .unwrap();
    let addr = listener.local_addr();
    let (client, server) = tokio::join!(connect(addr, &a, client_opts), listener.accept());
    (client.unwrap(), server.unwrap(), listener)
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_in_order_on_each_channel_with_hybrid_pq_tls() {
    let (client, server, _l) = pair(opts(), opts()).await;
    let info = client.tls_info().unwrap();
    assert_eq!(info.key_exchange_group, "X25519MLKEM768");
    assert_eq!(
        server.tls_info().unwrap().key_exchange_group,
        "X25519MLKEM768"
    );
    let c1 = client.open_channel(1).unwrap();
    let c2 = client.open_channel(2).unwrap();
    let sender = tokio::spawn(async move {
        for i in 0..200u32 {
            let m = pattern(1 + (i as usize * 7919) % 300_000, u64::from(i));
            if i % 2 == 0 {
                c1.send(m).await.unwrap()
            } else {
                c2.send(m).await.unwrap()
            }
        }
        c1.finish().await.unwrap();
        c2.finish().await.unwrap();
    });
    let mut got = std::collections::HashMap::new();
    for _ in 0..2 {
        let ch = tokio::time::timeout(Duration::from_secs(20), server.accept_channel())
            .await
            .unwrap()
            .unwrap();
        let mut msgs = Vec::new();
        while let Some(m) = ch.recv().await.unwrap() {
            msgs.push(m);
        }
        got.insert(ch.id(), msgs);
    }
    sender.await.unwrap();
    for i in 0..200u32 {
        let want = pattern(1 + (i as usize * 7919) % 300_000, u64::from(i));
        let ch = if i % 2 == 0 { 1 } else { 2 };
        assert_eq!(&got[&ch][(i / 2) as usize][..], &want[..], "message {i}");
    }
    assert_eq!(got[&1].len(), 100);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classical_fallback_negotiates_x25519() {
    let server_opts = SessionOptions {
        key_exchange: KeyExchange::ClassicalOnly,
        ..opts()
    };
    let (client, _server, _l) = pair(opts(), server_opts).await;
    assert_eq!(client.tls_info().unwrap().key_exchange_group, "X25519");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_without_a_cluster_certificate_gets_nothing() {
    let ca = TestCa::new("test cluster").unwrap();
    let rogue_ca = TestCa::new("rogue").unwrap();
    let b = ca.issue("node-b").unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), &b, opts())
        .await
        .unwrap();
    let addr = listener.local_addr();
    // A certificate from another CA, presented with the right CA to trust the server.
    let rogue = rogue_ca.issue("node-a").unwrap();
    let rogue = TlsIdentity {
        ca_cert_pem: ca.cert_pem().to_string(),
        ..rogue
    };
    let r = connect(addr, &rogue, opts()).await;
    assert!(r.is_err(), "rogue client connected");
    // No client certificate at all: a plain TLS client that trusts the CA.
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let conn = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect("node-b".try_into().unwrap(), tcp)
        .await;
    if let Ok(mut tls) = conn {
        // TLS 1.3: the client learns of the rejection on its first read.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = tls.write_all(b"hello").await;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .unwrap();
        assert!(
            matches!(n, Err(_) | Ok(0)),
            "server answered a client without a certificate"
        );
    }
    // Neither attempt produced a session.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.accept())
            .await
            .is_err()
    );
}

async fn transfer_with_kills(total: usize, kills: &[(usize, usize)], streams: usize) {
    let o = SessionOptions {
        initial_streams: Some(streams),
        adaptive_streams: false,
        frame_bytes: 16 << 10,
        window_bytes: 4 << 20,
        ..opts()
    };
    let (client, server, _l) = pair(o.clone(), o).await;
    let data = Bytes::from(pattern(total, 42));
    let ch = client.open_channel(9).unwrap();
    let send_data = data.clone();
    let killer = client.clone();
    let kills = kills.to_vec();
    let sender = tokio::spawn(async move {
        let mut off = 0;
        let chunk = 100_000;
        let mut next_kill = 0;
        while off < send_data.len() {
            let end = (off + chunk).min(send_data.len());
            ch.send(send_data.slice(off..end)).await.unwrap();
            while next_kill < kills.len() && off >= kills[next_kill].0 {
                killer.kill_stream_for_test(kills[next_kill].1 % killer.stream_count().max(1));
                next_kill += 1;
            }
            off = end;
        }
        ch.finish().await.unwrap();
        killer.flush().await.unwrap();
    });
    let rx = server.accept_channel().await.unwrap();
    let mut got = Vec::with_capacity(total);
    while let Some(m) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap()
    {
        got.extend_from_slice(&m);
    }
    tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got[..] == data[..], "received bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_streams_mid_transfer_loses_nothing() {
    transfer_with_kills(
        48 << 20,
        &[(4 << 20, 0), (16 << 20, 1), (30 << 20, 2), (31 << 20, 0)],
        4,
    )
    .await;
}

mod drops {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
        #[test]
        fn session_delivers_exactly_under_random_stream_drops(
            total in (1usize << 20)..(6usize << 20),
            kills in proptest::collection::vec((0usize..(6 << 20), 0usize..4), 0..5),
            streams in 1usize..5,
        ) {
            let mut kills = kills;
            kills.sort();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(transfer_with_kills(total, &kills, streams));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_travel_through_hde_with_references_to_announced_content() {
    let (client, server, _l) = pair(opts(), opts()).await;
    let base: Vec<Vec<u8>> = (0..64).map(|i| pattern(4096, 2 * i + 1001)).collect();
    let tx_ch = client.open_channel(3).unwrap();
    // Receiver side: preload the base image and announce it.
    let recv = tokio::spawn({
        let server = server.clone();
        let base = base.clone();
        async move {
            let ch = server.open_channel(3).unwrap();
            let mut rx = BlockReceiver::new(ch, DecoderConfig::default());
            for b in &base {
                rx.preload(b);
            }
            rx.announce().await.unwrap();
            let mut blocks = Vec::new();
            while let Some(batch) = rx.recv_batch().await.unwrap() {
                blocks.extend(batch);
            }
            blocks
        }
    });
    let mut tx = BlockSender::new(tx_ch, EncoderConfig::default()).auto_level(&client);
    assert_eq!(tx.receive_announcement().await.unwrap(), 64);
    let mut sent = Vec::new();
    for i in 0..256u64 {
        let data = match i % 4 {
            0 => base[(i as usize / 4) % 64].clone(),
            1 => vec![0u8; 4096],
            2 => pattern(4096, i),
            _ => b"text text text ".repeat(274)[..4096].to_vec(),
        };
        tx.send_block(i * 4096, &data).await.unwrap();
        sent.push((i * 4096, data));
    }
    let stats = tx.finish().await.unwrap();
    assert_eq!(stats.ref_blocks, 64 + 63);
    let got = recv.await.unwrap();
    assert_eq!(got.len(), sent.len());
    for (g, (id, d)) in got.iter().zip(&sent) {
        assert_eq!(g.block_id, *id);
        assert_eq!(&g.data[..], &d[..]);
    }
    // PBA samples every 100 ms: give it a few samples.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let est = client.path_estimate();
    assert!(est.rtt_ms > 0.0 && est.rtt_ms < 50.0, "{est:?}");
    assert_eq!(est.mode, novacron_dwcp::Mode::Datacenter);
}

/// A listener made for one migration: only the named source node, proving the secret the
/// control plane handed out, gets a session; a third node of the cluster and a wrong secret
/// are refused, and the expected peer still connects afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_accepts_only_the_named_peer_with_the_secret() {
    let ca = TestCa::new("test cluster").unwrap();
    let a = ca.issue("node-a").unwrap();
    let b = ca.issue("node-b").unwrap();
    let third = ca.issue("node-c").unwrap();
    let secret = SessionSecret::generate().unwrap();
    let server_opts = SessionOptions {
        peer_name: Some("node-a".into()),
        secret: Some(secret.clone()),
        ..opts()
    };
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), &b, server_opts)
        .await
        .unwrap();
    let addr = listener.local_addr();
    let with = |s: Option<SessionSecret>| SessionOptions {
        secret: s,
        ..opts()
    };

    // A third node with a valid cluster certificate and even the right secret.
    let r = connect(addr, &third, with(Some(secret.clone()))).await;
    assert!(
        matches!(r, Err(DwcpError::PeerRefused(_))),
        "third node: {r:?}"
    );
    // The source node with a wrong secret, and with none.
    let wrong = SessionSecret::generate().unwrap();
    let r = connect(addr, &a, with(Some(wrong))).await;
    assert!(
        matches!(r, Err(DwcpError::PeerRefused(_))),
        "wrong secret: {r:?}"
    );
    let r = connect(addr, &a, with(None)).await;
    assert!(
        matches!(r, Err(DwcpError::PeerRefused(_))),
        "no secret: {r:?}"
    );
    // None of them produced a session on the listener.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.accept())
            .await
            .is_err(),
        "a refused peer got a session"
    );

    // The named node with the secret: a working session, and the first one accepted.
    let (client, server) = tokio::join!(
        connect(addr, &a, with(Some(secret.clone()))),
        listener.accept()
    );
    let (client, server) = (client.unwrap(), server.unwrap());
    let ch = client.open_channel(1).unwrap();
    ch.send(Bytes::from_static(b"state")).await.unwrap();
    let rx = server.accept_channel().await.unwrap();
    assert_eq!(&rx.recv().await.unwrap().unwrap()[..], b"state");
    client.close().await.unwrap();
}

/// A peer that sends past its window into a channel nobody reads is cut off once the
/// bytes it has outstanding exceed the receiver's bound, instead of being buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_sending_past_the_byte_bound_is_cut_off() {
    let client_opts = SessionOptions {
        window_bytes: 32 << 20,
        frame_bytes: 64 << 10,
        ..opts()
    };
    let server_opts = SessionOptions {
        channel_buffer_bytes: 64 << 10,
        max_receive_bytes: 1 << 20,
        ..opts()
    };
    let (client, server, _l) = pair(client_opts, server_opts).await;
    let ch = client.open_channel(5).unwrap();
    let sender = tokio::spawn(async move {
        for i in 0..64u64 {
            if ch.send(pattern(256 << 10, i)).await.is_err() {
                return;
            }
        }
    });
    // The server's application holds the channel but never reads it.
    let _rx = server.open_channel(5).unwrap();
    let Err(err) = tokio::time::timeout(Duration::from_secs(20), server.accept_channel())
        .await
        .expect("the session was not cut off")
    else {
        panic!("no channel is expected");
    };
    let text = err.to_string();
    assert!(
        text.contains("more than 1048576 bytes beyond"),
        "unexpected error: {text}"
    );
    sender.abort();
}

/// A client that dials far more streams than the server allows per session gets the extra
/// ones refused; the session keeps working on the streams it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_flood_is_refused() {
    let client_opts = SessionOptions {
        initial_streams: Some(40),
        max_streams: Some(40),
        adaptive_streams: false,
        ..opts()
    };
    let server_opts = SessionOptions {
        max_peer_streams: 4,
        ..opts()
    };
    let (client, server, _l) = pair(client_opts, server_opts).await;
    let mut most = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        most = most.max(server.stream_count());
    }
    assert!(most <= 4, "the server held {most} streams of one session");
    let ch = client.open_channel(2).unwrap();
    ch.send(pattern(1 << 20, 9)).await.unwrap();
    let rx = server.accept_channel().await.unwrap();
    assert_eq!(rx.recv().await.unwrap().unwrap(), pattern(1 << 20, 9));
    client.close().await.unwrap();
}
