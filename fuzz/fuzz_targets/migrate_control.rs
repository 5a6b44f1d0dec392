//! Fuzzes the decoding of migration control messages (crates/migrate/src/control.rs, JSON on
//! the control channel, from the peer agent). Property: no panic; a message that decodes
//! encodes to JSON that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use novacron_migrate::control::Control;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Control>(data) {
        let again = serde_json::to_vec(&m).expect("a decoded message encodes");
        let back: Control = serde_json::from_slice(&again).expect("own encoding decodes");
        assert_eq!(back, m);
    }
});
