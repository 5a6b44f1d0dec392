//! The benchmark harness end to end at a size that suits a debug test run: generated workload
//! and the example trace, both validated independently and compared with FFD.
#![allow(clippy::unwrap_used)]

use novacron_sched::bench::{BenchConfig, Trace, TraceOp, run};
use std::io::Cursor;

#[test]
fn generated_workload_packs_as_well_as_ffd_without_violations() {
    let r = run(&BenchConfig {
        hosts: 500,
        vms: 25_000,
        seed: 3,
        trace: None,
    })
    .unwrap();
    assert_eq!(r.violations, 0, "{:?}", r.validation);
    assert_eq!(r.no_fit, 0, "{:?}", r.first_no_fit);
    assert_eq!(r.vms, 25_000);
    assert!(r.departures > 0 && r.placements == r.vms as u64 + r.departures);
    assert!(r.hosts_used > 0 && r.ffd_hosts > 0 && r.ffd_unplaced == 0);
    assert!(
        r.ffd_ratio <= 1.03,
        "hosts used {} vs FFD {}",
        r.hosts_used,
        r.ffd_hosts
    );
    assert!(r.hosts_used >= r.lower_bound_hosts);
    assert!(r.p50_us > 0.0 && r.p99_us >= r.p50_us);
    assert!(r.placements_per_sec > 0.0);
    if cfg!(target_os = "linux") {
        assert!(r.peak_rss_bytes > 0);
    }
    let json = serde_json::to_value(&r).unwrap();
    for k in [
        "placements_per_sec",
        "p50_us",
        "p99_us",
        "hosts_used",
        "ffd_hosts",
        "peak_rss_bytes",
        "violations",
    ] {
        assert!(json.get(k).is_some(), "report lacks {k}");
    }
}

#[test]
fn example_trace_replays_cleanly() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/small-trace.csv"
    ))
    .unwrap();
    let trace = Trace::from_reader(Cursor::new(text)).unwrap();
    let adds = trace
        .ops
        .iter()
        .filter(|o| matches!(o, TraceOp::Add { .. }))
        .count() as u64;
    let dels = trace
        .ops
        .iter()
        .filter(|o| matches!(o, TraceOp::Del { .. }))
        .count() as u64;
    assert_eq!((adds, dels), (16, 4));
    let r = run(&BenchConfig {
        hosts: 200,
        vms: 0,
        seed: 1,
        trace: Some(trace),
    })
    .unwrap();
    assert_eq!(r.workload, "trace");
    assert_eq!(r.no_fit, 0, "{:?}", r.first_no_fit);
    assert_eq!(r.placements, adds);
    assert_eq!(r.departures, dels);
    assert_eq!(r.vms as u64, adds - dels);
    assert_eq!(r.violations, 0, "{:?}", r.validation);
    assert!(r.hosts_used <= r.ffd_hosts + 2);
}

#[test]
fn trace_errors_name_the_line() {
    let bad = "time_ms,op,vm\n0,add,vm-1,2,4096,40\n1,add,vm-2,two,4096,40\n";
    let e = Trace::from_reader(Cursor::new(bad))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "trace line 3: vcpus \"two\" is not a number");
    let e = Trace::from_reader(Cursor::new("5,add,a,1,1,1\n4,del,a\n"))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "trace line 2: time_ms 4 goes back from 5");
    let e = Trace::from_reader(Cursor::new("0,move,a\n"))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "trace line 1: op \"move\" is not add|del");
    let e = Trace::from_reader(Cursor::new("0,add,a,1,1,1,g,spread,rack,0,hard,\n"))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "trace line 1: max_per_domain must be at least 1");
    let e = Trace::from_reader(Cursor::new("0,add,a,1,1,1,g,anti-affinity,shelf,,hard,\n"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "trace line 1: level \"shelf\" is not host|rack|zone|region"
    );
    // Deleting a VM the trace never added is an error of the trace.
    let t = Trace::from_reader(Cursor::new("0,del,ghost\n")).unwrap();
    let e = run(&BenchConfig {
        hosts: 10,
        vms: 0,
        seed: 1,
        trace: Some(t),
    })
    .unwrap_err()
    .to_string();
    assert_eq!(e, "trace replay: del of vm ghost, which was never added");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Whatever bytes a trace file holds, parsing returns a trace or an error naming a line,
    /// never a panic.
    #[test]
    fn trace_parser_never_panics(text in "(?s)[0-9a-z,;=.#\\-\\n ]{0,400}") {
        match Trace::from_reader(Cursor::new(text)) {
            Ok(_) => {}
            Err(e) => proptest::prop_assert!(e.to_string().starts_with("trace line ")),
        }
    }

    #[test]
    fn trace_parser_survives_mangled_valid_rows(cut in 0usize..60, junk in "[^\\n]{0,8}") {
        let row = "0,add,web-1,2,4096,40,web,spread,rack,2,hard,disk=ssd;zone=b";
        let mangled = format!("{}{}{}", &row[..cut.min(row.len())], junk, &row[cut.min(row.len())..]);
        let _ = Trace::from_reader(Cursor::new(mangled));
    }
}
