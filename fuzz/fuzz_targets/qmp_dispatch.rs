//! Fuzzes the QMP client's handling of what QEMU writes on the monitor socket
//! (crates/qemu/src/qmp.rs: lines → answers to waiting commands, or events). Property: no
//! panic; an answer is delivered only to a command that waits under that id, at most once,
//! and only for a line that is a JSON object carrying that id; every event broadcast comes
//! from a line that is a JSON object with that string `event`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (answers, events) = novacron_qemu::qmp::fuzz_dispatch(data);
    let lines: Vec<Value> = data
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            let l = String::from_utf8_lossy(l);
            serde_json::from_str::<Value>(l.trim_end_matches('\r')).ok()
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (id, _) in &answers {
        assert!(*id < 16, "answer for an id nobody waited for");
        assert!(seen.insert(*id), "two answers for one id");
        assert!(
            lines
                .iter()
                .any(|v| v.get("id").and_then(Value::as_u64) == Some(*id)),
            "answer for id {id} without a line carrying it"
        );
    }
    for e in &events {
        assert!(
            lines
                .iter()
                .any(|v| v.get("event").and_then(Value::as_str) == Some(&e.event)),
            "event {} without a line naming it",
            e.event
        );
    }
});
