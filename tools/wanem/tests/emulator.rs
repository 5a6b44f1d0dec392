//! The emulator against physics and its own promises. Needs root (network namespaces, TUN).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use novacron_wanem::{LinkParams, Wanem, WanemConfig};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `f` on a thread inside `site`.
fn in_site<T: Send + 'static>(
    site: &novacron_wanem::Site,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let site = site.clone();
    std::thread::spawn(move || {
        site.enter_current_thread().unwrap();
        f()
    })
}

#[test]
fn round_trip_time_and_rate_are_what_was_asked() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let link = LinkParams::symmetric(20_000_000, Duration::from_millis(40), 0.0);
    let wan = Wanem::up(WanemConfig::new("tw1-", link)).unwrap();
    let addr = SocketAddr::from((wan.site_b().addr, 9000));
    let server = in_site(wan.site_b(), move || {
        let l = TcpListener::bind(addr).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0usize;
        loop {
            let k = s.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    });
    std::thread::sleep(Duration::from_millis(200));
    let before = wan.stats();
    let client = in_site(wan.site_a(), move || {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        let connect = t.elapsed();
        let data = vec![7u8; 5 << 20];
        let t = Instant::now();
        s.write_all(&data).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut sink = [0u8; 1];
        let _ = s.read(&mut sink);
        (connect, t.elapsed())
    });
    let (connect, send) = client.join().unwrap();
    assert_eq!(server.join().unwrap(), 5 << 20);
    // A TCP connect takes one round trip: 40 ms plus a little.
    assert!(
        connect >= Duration::from_millis(39) && connect < Duration::from_millis(80),
        "connect took {connect:?}"
    );
    // 5 MiB at 20 Mbit/s takes at least 2.1 s on the wire.
    assert!(
        send >= Duration::from_millis(2000),
        "5 MiB crossed 20 Mbit/s in {send:?}"
    );
    let d = wan.stats().since(&before);
    assert!(d.a_to_b.bytes >= 5 << 20, "{d:?}");
    assert!(d.b_to_a.packets > 0);
    wan.down().unwrap();
    assert!(!std::path::Path::new("/run/netns/tw1-site-a").exists());
}

#[test]
fn loss_and_blackhole_drop_packets_and_dropping_the_emulator_cleans_up() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    {
        let link = LinkParams::symmetric(0, Duration::from_millis(2), 0.5);
        let wan = Wanem::up(WanemConfig::new("tw2-", link)).unwrap();
        let addr = SocketAddr::from((wan.site_b().addr, 9001));
        // UDP datagrams: about half must be lost.
        let rx = in_site(wan.site_b(), move || {
            let s = std::net::UdpSocket::bind(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut n = 0;
            let mut buf = [0u8; 64];
            while s.recv(&mut buf).is_ok() {
                n += 1;
            }
            n
        });
        std::thread::sleep(Duration::from_millis(100));
        in_site(wan.site_a(), move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            for i in 0..2000 {
                s.send_to(b"x", addr).unwrap();
                if i % 50 == 49 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
        .join()
        .unwrap();
        let got = rx.join().unwrap();
        let st = wan.stats().a_to_b;
        // The site's own stack may add a packet or two (e.g. IPv6 neighbour discovery).
        assert!((2000..2010).contains(&st.received_packets), "{st:?}");
        assert!((850..1150).contains(&st.dropped_loss), "{st:?}");
        assert!(
            got as u64 <= st.packets && got as u64 + 10 >= st.packets,
            "{got} delivered, {st:?}"
        );
        // Blackhole: nothing crosses while it lasts.
        wan.set_params(LinkParams::symmetric(0, Duration::from_millis(2), 0.0));
        wan.blackhole(Duration::from_millis(500));
        let before = wan.stats();
        in_site(wan.site_a(), move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..100 {
                s.send_to(b"x", addr).unwrap();
            }
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let d = wan.stats().since(&before);
        assert_eq!(d.a_to_b.packets, 0, "{d:?}");
        assert_eq!(d.a_to_b.dropped_loss, 100);
        // Dropped without `down`: Drop must delete the namespaces.
    }
    assert!(!std::path::Path::new("/run/netns/tw2-site-a").exists());
    assert!(!std::path::Path::new("/run/netns/tw2-site-b").exists());
}
