//! Fuzzes what the tunnel between sites reads off the WAN (crates/net/src/tunnel.rs,
//! `open_datagram`), on a session whose handshake with a known peer completed. The first
//! byte picks the case: a datagram made up by the fuzzer, or a packet the peer sealed (the
//! rest of the input as its plaintext), possibly with one byte flipped on the way.
//! Property: no panic; a made-up or altered datagram never opens into a packet; a sealed
//! one opens only when its plaintext is an IPv4 packet from the peer's own VTEP, and then
//! byte for byte.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use novacron_net::boringtun::noise::{Tunn, TunnResult};
use novacron_net::boringtun::x25519::{PublicKey, StaticSecret};
use novacron_net::tunnel::{Opened, open_datagram};

const PEER_VTEP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const BUF: usize = 65_536 + 256;

/// The peer's session and ours, handshake done in memory.
fn sessions() -> (Tunn, Tunn) {
    let peer = StaticSecret::from([0x11; 32]);
    let ours = StaticSecret::from([0x22; 32]);
    let (peer_public, our_public) = (PublicKey::from(&peer), PublicKey::from(&ours));
    let mut them = Tunn::new(peer, our_public, None, None, 1, None);
    let mut us = Tunn::new(ours, peer_public, None, None, 2, None);
    let mut buf = vec![0u8; 2048];
    let TunnResult::WriteToNetwork(init) = them.format_handshake_initiation(&mut buf, false) else {
        panic!("no handshake initiation");
    };
    let init = init.to_vec();
    let mut out = vec![0u8; 2048];
    let TunnResult::WriteToNetwork(response) = us.decapsulate(None, &init, &mut out) else {
        panic!("no handshake response");
    };
    let response = response.to_vec();
    let mut out = vec![0u8; 2048];
    match them.decapsulate(None, &response, &mut out) {
        TunnResult::WriteToNetwork(_) | TunnResult::Done => {}
        other => panic!("the handshake did not complete: {other:?}"),
    }
    (them, us)
}

thread_local! {
    /// The sessions and how many inputs they served: a handshake costs several Diffie-Hellman
    /// operations, so a pair serves many inputs (a packet that opened advances the replay
    /// window only; nothing made up can change a session).
    static SESSIONS: std::cell::RefCell<Option<(Tunn, Tunn, u32)>> = const { std::cell::RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    SESSIONS.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|s| s.2 >= 1000) {
            let (them, us) = sessions();
            *cell = Some((them, us, 0));
        }
        let Some((them, us, served)) = cell.as_mut() else {
            return;
        };
        *served += 1;
        one(data, them, us);
    });
});

fn one(data: &[u8], them: &mut Tunn, us: &mut Tunn) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut out = vec![0u8; BUF];
    let from = IpAddr::V4(PEER_VTEP);
    if mode & 1 == 0 {
        let r = open_datagram(us, PEER_VTEP, from, rest, &mut out, &mut |_| {});
        assert!(
            !matches!(r, Ok(Opened::Packet { .. })),
            "a made-up datagram opened: {r:?}"
        );
        return;
    }
    let mut sealed = vec![0u8; rest.len() + 256];
    let TunnResult::WriteToNetwork(datagram) = them.encapsulate(rest, &mut sealed) else {
        return;
    };
    let mut datagram = datagram.to_vec();
    let flip = usize::from(mode >> 1);
    if flip > 0 {
        let i = flip % datagram.len();
        datagram[i] ^= 0x80;
    }
    if let Ok(Opened::Packet { start, len }) =
        open_datagram(us, PEER_VTEP, from, &datagram, &mut out, &mut |_| {})
    {
        assert_eq!(flip, 0, "an altered datagram opened");
        assert!(rest.len() >= 20 && rest[0] >> 4 == 4, "not IPv4 yet opened");
        assert_eq!(&rest[12..16], &PEER_VTEP.octets(), "another source opened");
        assert_eq!(&out[start..start + len], &rest[..len]);
    }
}
