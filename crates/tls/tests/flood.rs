//! A flood of idle connections from one address must not take an HTTPS endpoint down (the
//! security issue's finding 1: 20,000 idle TLS connections exhausted the descriptors, the
//! agent lost its heartbeat and the fence watchdog killed an HA VM). The endpoint runs with
//! its default limits in a process whose soft RLIMIT_NOFILE is lowered to 512, so a few
//! thousand connections would exhaust it; the flood comes from a separate process. This
//! file holds a single test, so lowering the limit affects nothing else.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

const FLOOD: &str = r#"
import resource, socket, ssl, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, total, with_tls = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
held, deadline = [], time.time() + 15
for i in range(total):
    if time.time() > deadline:
        break
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        continue
    if i < with_tls:
        try:
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        except (OSError, ssl.SSLError):
            pass
    held.append(s)
print("flooded", len(held), flush=True)
sys.stdin.read()
"#;

#[test]
fn idle_flood_from_one_address_leaves_the_endpoint_answering_others() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tls = common::tls();

    let mut saved = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut saved), 0);
        let low = libc::rlimit {
            rlim_cur: 512.min(saved.rlim_cur),
            rlim_max: saved.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &low), 0);
    }

    let serve = rt.block_on(async {
        let router = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        novacron_tls::serve_https(listener, tls.server.clone(), router).unwrap()
    });
    let addr = serve.local_addr;

    let mut flood = std::process::Command::new("python3")
        .arg("-c")
        .arg(FLOOD)
        .arg(addr.port().to_string())
        .arg("3000")
        // TLS on every connection: a handshake timeout alone must not be what saves us.
        .arg("3000")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = flood.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let flooded = rx.recv_timeout(Duration::from_secs(60));

    // A fresh client from another address gets its answer at once.
    let answer = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            let mut s = common::tls_from(&tls, "127.0.0.2".parse().unwrap(), addr).await?;
            common::get(&mut s, "/ping").await
        })
        .await
    });

    drop(flood.stdin.take());
    let _ = flood.kill();
    let _ = flood.wait();
    rt.block_on(serve.stop());
    // SAFETY: restores the limit read above.
    unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &saved);
    }

    let flooded = flooded.expect("the flood did not finish within 60 s");
    let opened: usize = flooded
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    match answer {
        Ok(Ok((200, body))) => assert_eq!(body, "pong"),
        Ok(Ok((status, body))) => panic!("answer {status}: {body}"),
        Ok(Err(e)) => panic!("no answer during the flood: {e}"),
        Err(_) => panic!("no answer within 5 s during the flood"),
    }
    assert!(
        opened >= 500,
        "the flood opened only {opened} connections: not enough to exhaust 512 descriptors"
    );
}
