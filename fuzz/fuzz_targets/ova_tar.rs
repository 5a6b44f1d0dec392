//! Fuzzes the OVA archive reader (crates/qemu/src/ova.rs `tar_members_of`; the archive is an
//! upload). Properties: no panic; every member lies inside the archive, starts on a block
//! boundary after its header, and comes after the previous one; no more members than the
//! bound allows.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let Ok(members) = novacron_qemu::ova::tar_members_of(&mut std::io::Cursor::new(data), len)
    else {
        return;
    };
    assert!(members.len() <= 4096, "{} members", members.len());
    let mut end = 0u64;
    for m in &members {
        assert!(m.offset % 512 == 0 && m.offset >= end + 512, "member at {}", m.offset);
        assert!(m.offset + m.size <= len, "member runs past the archive");
        end = m.offset + m.size;
    }
});
