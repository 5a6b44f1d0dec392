//! The connection limits of `serve_https_with`, over real TLS connections on loopback:
//! silent, slow and idle connections are closed after their timeouts, while long requests
//! and upgraded connections (console attach) live on; connections over the caps are closed
//! at once, and other addresses still get in.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn router() -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(2500)).await;
                "done"
            }),
        )
        .route(
            "/echo",
            get(|mut req: axum::extract::Request| async move {
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    if let Ok(up) = on_upgrade.await {
                        let mut io = hyper_util::rt::TokioIo::new(up);
                        let mut buf = [0u8; 64];
                        while let Ok(n) = io.read(&mut buf).await {
                            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                });
                axum::response::Response::builder()
                    .status(101)
                    .header("connection", "upgrade")
                    .header("upgrade", "echo")
                    .body(axum::body::Body::empty())
                    .unwrap()
            }),
        )
}

async fn serve(tls: &common::Tls, limits: novacron_tls::ServeLimits) -> novacron_tls::ServeHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    novacron_tls::serve_https_with(listener, tls.server.clone(), router(), limits).unwrap()
}

const LOCAL: &str = "127.0.0.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_silent_connections_close_while_long_requests_and_upgrades_live_on() {
    let tls = common::tls();
    let limits = novacron_tls::ServeLimits {
        header_read_timeout: Duration::from_millis(1000),
        idle_timeout: Duration::from_millis(1000),
        max_connections: 64,
        max_connections_per_address: 64,
    };
    let handle = serve(&tls, limits).await;
    let addr: SocketAddr = handle.local_addr;
    let from = LOCAL.parse().unwrap();

    // Kept alive after a request: closed after the idle timeout, not before.
    let idle = async {
        let mut s = common::tls_from(&tls, from, addr).await.unwrap();
        assert_eq!(
            common::get(&mut s, "/ping").await.unwrap(),
            (200, "pong".into())
        );
        common::closed_within(&mut s, Duration::from_secs(4)).await
    };
    // Handshake, then silence: closed after the header timeout.
    let silent = async {
        let mut s = common::tls_from(&tls, from, addr).await.unwrap();
        common::closed_within(&mut s, Duration::from_secs(4)).await
    };
    // Plain TCP, no handshake: closed after the header timeout too.
    let no_tls = async {
        let mut s = common::tcp_from(from, addr).await.unwrap();
        common::closed_within(&mut s, Duration::from_secs(4)).await
    };
    // A request head trickling in a byte at a time: the bytes do not extend the timeout.
    let trickle = async {
        let mut s = common::tls_from(&tls, from, addr).await.unwrap();
        s.write_all(b"GET /ping HTTP/1.1\r\nX-Slow: ")
            .await
            .unwrap();
        let start = tokio::time::Instant::now();
        while start.elapsed() < Duration::from_secs(4) {
            if s.write_all(b"a").await.is_err() || s.flush().await.is_err() {
                return Some(start.elapsed());
            }
            if let Some(t) = common::closed_within(&mut s, Duration::from_millis(200)).await {
                return Some(start.elapsed().max(t));
            }
        }
        None
    };
    // A request slower than the idle timeout is answered.
    let slow = async {
        let mut s = common::tls_from(&tls, from, addr).await.unwrap();
        common::get(&mut s, "/slow").await.unwrap()
    };
    // An upgraded connection idle for longer than the idle timeout still works.
    let upgraded = async {
        let mut s = common::tls_from(&tls, from, addr).await.unwrap();
        s.write_all(
            b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
        let (status, _) = common::read_response(&mut s).await.unwrap();
        assert_eq!(status, 101);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        s.write_all(b"still here").await.unwrap();
        let mut buf = [0u8; 10];
        tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut buf))
            .await
            .expect("no echo")
            .expect("upgraded connection closed");
        buf
    };
    let (idle, silent, no_tls, trickle, slow, upgraded) =
        tokio::join!(idle, silent, no_tls, trickle, slow, upgraded);

    let idle = idle.expect("idle keep-alive connection was never closed");
    assert!(
        idle >= Duration::from_millis(800),
        "closed after {idle:?}, before the idle timeout"
    );
    let silent = silent.expect("silent connection was never closed");
    assert!(
        silent >= Duration::from_millis(800),
        "silent closed after {silent:?}"
    );
    no_tls.expect("connection without a TLS handshake was never closed");
    let trickle = trickle.expect("trickling request head was never cut off");
    assert!(
        trickle < Duration::from_millis(2500),
        "trickle lasted {trickle:?}"
    );
    assert_eq!(slow, (200, "done".into()));
    assert_eq!(&upgraded, b"still here");
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_close_at_once_and_other_addresses_still_get_in() {
    let tls = common::tls();
    let limits = novacron_tls::ServeLimits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_connections: 6,
        max_connections_per_address: 4,
    };
    let handle = serve(&tls, limits).await;
    let addr = handle.local_addr;
    let a = "127.0.0.1".parse().unwrap();
    let b = "127.0.0.2".parse().unwrap();
    let c = "127.0.0.3".parse().unwrap();

    let mut from_a = Vec::new();
    for _ in 0..4 {
        let mut s = common::tls_from(&tls, a, addr).await.unwrap();
        assert_eq!(common::get(&mut s, "/ping").await.unwrap().0, 200);
        from_a.push(s);
    }
    // The fifth from the same address is closed right after accept.
    let mut over = common::tcp_from(a, addr).await.unwrap();
    let closed = common::closed_within(&mut over, Duration::from_secs(2)).await;
    assert!(
        closed.is_some(),
        "a connection over the per-address cap stayed open"
    );
    assert!(common::tls_from(&tls, a, addr).await.is_err());

    // Another address gets in, up to the total cap.
    let mut from_b = Vec::new();
    for _ in 0..2 {
        let mut s = common::tls_from(&tls, b, addr).await.unwrap();
        assert_eq!(common::get(&mut s, "/ping").await.unwrap().0, 200);
        from_b.push(s);
    }
    assert_eq!(handle.open_connections(), 6);
    // A newcomer from an address holding nothing gets in, and the heaviest address (a)
    // loses its oldest connection for it: a flood cannot keep a light client out.
    let mut from_c = common::tls_from(&tls, c, addr).await.unwrap();
    assert_eq!(common::get(&mut from_c, "/ping").await.unwrap().0, 200);
    assert!(
        common::closed_within(&mut from_a[0], Duration::from_secs(2))
            .await
            .is_some(),
        "the heaviest address's oldest connection was not closed for the newcomer"
    );
    drop(from_a.remove(0));
    let start = std::time::Instant::now();
    while handle.open_connections() > 6 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "evicted slot not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // At the total cap, b would hold 3 against a's 3: not lighter enough to evict, closed.
    let mut over_total = common::tcp_from(b, addr).await.unwrap();
    assert!(
        common::closed_within(&mut over_total, Duration::from_secs(2))
            .await
            .is_some(),
        "a connection over the total cap stayed open"
    );

    // The connections still open keep working, and a closed one frees its slot.
    assert_eq!(common::get(&mut from_a[0], "/ping").await.unwrap().0, 200);
    assert_eq!(common::get(&mut from_b[1], "/ping").await.unwrap().0, 200);
    drop(from_a.pop());
    let start = std::time::Instant::now();
    while handle.open_connections() > 5 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "slot not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut s = common::tls_from(&tls, c, addr).await.unwrap();
    assert_eq!(
        common::get(&mut s, "/ping").await.unwrap(),
        (200, "pong".into())
    );
    handle.stop().await;
}
