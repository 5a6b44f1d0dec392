//! Fuzzes the decoding of what a guest's qemu-guest-agent writes back (crates/qemu/src/qga.rs):
//! a reply line, then its `return` read as `guest-exec-status` (`vm exec`) and as
//! `guest-network-get-interfaces` (`vm show`). The guest is not trusted. Property: no panic;
//! a reply decodes only when the line is a JSON object with `return`; a finished command's
//! output is never longer than the line that carried it; interfaces kept are at most 16, never
//! loopback, with printable names and addresses that parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use novacron_qemu::qga::{decode_exec_status, decode_interfaces, decode_reply};

fuzz_target!(|data: &[u8]| {
    let Ok(ret) = decode_reply(data) else {
        return;
    };
    let line: serde_json::Value = serde_json::from_slice(data).expect("a decoded reply is JSON");
    assert!(line.get("return").is_some(), "decoded a reply without `return`");
    if let Ok(Some(done)) = decode_exec_status(&ret) {
        assert!(done.stdout.len() + done.stderr.len() <= data.len());
    }
    if let Ok(interfaces) = decode_interfaces(&ret) {
        assert!(interfaces.len() <= 16);
        for i in &interfaces {
            assert!(i.name != "lo" && i.name.chars().all(|c| c.is_ascii_graphic()));
            assert!(i.ips.len() <= 16);
            for ip in &i.ips {
                let addr = ip.split('/').next().unwrap_or_default();
                assert!(addr.parse::<std::net::IpAddr>().is_ok(), "kept {ip}");
            }
        }
    }
});
