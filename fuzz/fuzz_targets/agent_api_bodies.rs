//! Fuzzes the JSON bodies of the agent protocol (crates/api-types): what the agent accepts on
//! its API (backup jobs, incoming/outgoing migrations), what the control plane accepts from
//! agents (register, heartbeat, VM status reports, migration reports, operation updates), a
//! command to run in a guest and its result (`vm exec`), and
//! what agents read back (register response, desired VMs, incoming-ready). The first byte
//! picks the type. Property: no panic; a body that decodes serialises to JSON that decodes
//! to a value serialising to the same JSON (decode → encode round trip, compared as JSON
//! values so no text float parsing is involved).
#![no_main]

use libfuzzer_sys::fuzz_target;
use novacron_api_types::{agent, backup, exec, migration};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn check<T: Serialize + DeserializeOwned>(body: &[u8]) {
    let Ok(v) = serde_json::from_slice::<T>(body) else {
        return;
    };
    let first = serde_json::to_value(&v).expect("a decoded body serialises");
    let again: T = serde_json::from_value(first.clone()).expect("own serialisation decodes");
    let second = serde_json::to_value(&again).expect("serialises");
    assert_eq!(first, second, "round trip changed the body");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 14 {
        0 => check::<backup::BackupJob>(body),
        1 => check::<migration::IncomingMigration>(body),
        2 => check::<migration::OutgoingMigration>(body),
        3 => check::<agent::RegisterRequest>(body),
        4 => check::<agent::HeartbeatRequest>(body),
        5 => check::<agent::VmStatusReport>(body),
        6 => check::<migration::MigrationReport>(body),
        7 => check::<backup::OperationUpdate>(body),
        8 => check::<agent::RegisterResponse>(body),
        9 => check::<agent::DesiredVms>(body),
        10 => check::<migration::IncomingReady>(body),
        11 => check::<exec::ExecRequest>(body),
        12 => check::<exec::ExecResult>(body),
        _ => check::<serde_json::Value>(body),
    }
});
