//! Fuzzes the OVF descriptor reader (crates/qemu/src/ova.rs `parse_ovf`; the descriptor comes
//! from an uploaded OVA). Properties: no panic; every disk names the file its References
//! entry gives, which appears in the descriptor; disk ids are unique.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(appliance) = novacron_qemu::ova::parse_ovf(xml) else {
        return;
    };
    let mut ids = std::collections::HashSet::new();
    for d in &appliance.disks {
        assert!(ids.insert(d.id.as_str()), "disk {:?} listed twice", d.id);
        // Attribute values are unescaped and their whitespace normalised: where neither can
        // apply, the href is text of the input.
        if !xml.contains('&') && !d.file.contains(' ') {
            assert!(xml.contains(d.file.as_str()), "disk file {:?} not in the descriptor", d.file);
        }
    }
});
