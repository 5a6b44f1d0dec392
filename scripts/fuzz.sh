#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (one per decoder that reads from the network or from disk:
# DWCP frames and session control, HDE, the QEMU migration stream parser, the post-copy return
# path, the migration wire format and control messages, the NBD proxy messages and the backup
# NBD client, QMP lines, backup index and blob formats, agent API bodies, the events stream's
# frames, OVA archives and OVF descriptors, the tunnel's datagrams between sites) for a bounded
# time each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 45; NOVACRON_FUZZ_TARGETS="a b" picks targets,
#                                            NOVACRON_FUZZ_JOBS=N runs N at once (default: one per core)
#
# Installs cargo-fuzz when missing, builds all targets once (nightly toolchain when rustup has
# one, else stable with RUSTC_BOOTSTRAP=1), runs each with libFuzzer, prints per target the
# executions run and whether it crashed, and exits non-zero if any target crashed, printing
# the crashing input and the command that reproduces it. Builds go to fuzz/target (never the
# workspace's target/). Seeds for the JSON decoders are written into fuzz/corpus/ on first run;
# the corpora grow across runs and are not committed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fuzz="$(cd "$here/../fuzz" && pwd)"
seconds="${1:-45}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz: SECONDS_PER_TARGET must be a number" >&2; exit 2; }
start=$(date +%s)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  cargo_fuzz=(cargo +nightly fuzz)
else
  echo "fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
  cargo_fuzz=(cargo fuzz)
fi

cd "$fuzz"
if [ -n "${NOVACRON_FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$NOVACRON_FUZZ_TARGETS"
else
  mapfile -t targets < <("${cargo_fuzz[@]}" list)
fi

# Seeds: a valid body of each JSON type, so the fuzzer starts from the shape, not from '{'.
seed() { # seed TARGET NAME CONTENT  (CONTENT: printf format, so \x01 selects a type byte)
  mkdir -p "corpus/$1"
  [ -e "corpus/$1/seed-$2" ] || printf "$3" >"corpus/$1/seed-$2"
}
seed migrate_control hello '{"type":"hello","protocol":1,"memory_bytes":536870912,"disks":[{"node":"disk0","size_bytes":1073741824}],"history_bytes":67108864}'
seed migrate_control ready '{"type":"ready","base_blocks":3}'
seed migrate_control failed '{"type":"failed","reason":"x"}'
seed migrate_control go '{"type":"go"}'
seed agent_api_bodies outgoing '\x02{"id":"m1","project":"default","vm":"web1","destination":"n2","dwcp_addr":"198.18.0.2:7000","disks":["disk0"],"max_downtime_ms":300,"bandwidth_bps":1000000,"deadline_seconds":60}'
seed agent_api_bodies register '\x03{"name":"n1","capacity":{"cpus":4,"memory_bytes":8589934592,"disk_bytes":107374182400},"agent_url":"https://198.18.0.1:7001","kvm_usable":false,"qemu_version":"7.2.0","bridges":["br0"]}'
seed agent_api_bodies heartbeat '\x04{"running_vms":2}'
seed agent_api_bodies status '\x05{"observed_generation":3,"state":"running","reason":null,"pid":42,"accel_in_use":"tcg","guest_initiated_stop":false,"deleted":false}'
seed agent_api_bodies update '\x07{"state":"running","message":"copying","progress":0.25}'
seed agent_api_bodies register_response '\x08{"node_token":"t","server_token":"s","ca_cert_pem":"","cert_pem":"","key_pem":"","lease_ttl_ms":10000,"cert_not_after":1}'
seed agent_api_bodies desired '\x09{"revision":7,"full":true,"vms":[],"removed":["default/old"]}'
seed agent_api_bodies ready '\x0a{"dwcp_addr":"198.18.0.2:7000"}'
# Return path: the seed byte, a page request naming its block, one reusing it, a PONG.
seed migrate_return_path requests '\x05\x00\x03\x00\x13\x00\x00\x00\x00\x00\x00\x20\x00\x00\x00\x10\x00\x06pc.ram\x00\x04\x00\x0c\x00\x00\x00\x00\x00\x00\x30\x00\x00\x00\x10\x00\x00\x02\x00\x04\x00\x00\x00\x01'
seed events_sse frames '\x05\x00retry: 1000\n\n: keep-alive\n\nid: 7-0\nevent: vm\ndata: {"id":"7-0","revision":7,"kind":"vm","action":"state","resource":"vm/web1","message":"running","data":{}}\n\nevent: gap\ndata: {"after":"3-0"}\n\n'
seed ovf_descriptor appliance '<Envelope><References><File href="d1.vmdk" id="f1"/></References><DiskSection><Disk capacity="1" capacityAllocationUnits="byte * 2^30" diskId="root" fileRef="f1"/></DiskSection><VirtualSystem id="app"><VirtualHardwareSection><Item><ResourceType>3</ResourceType><VirtualQuantity>2</VirtualQuantity></Item><Item><HostResource>ovf:/disk/root</HostResource><ResourceType>17</ResourceType></Item></VirtualHardwareSection></VirtualSystem></Envelope>'
seed qmp_dispatch answers '{"return": {"running": true, "status": "running"}, "id": 7}\r\n{"error": {"class": "GenericError", "desc": "x"}, "id": 8}\n{"event": "SHUTDOWN", "data": {"guest": true}, "timestamp": {"seconds": 1, "microseconds": 2}}\n'

echo "fuzz: building ${#targets[@]} targets"
nice -n 10 "${cargo_fuzz[@]}" build
echo "fuzz: build took $(( $(date +%s) - start ))s; ${seconds}s per target"

# Each fuzzer is one process on one core: run as many at once as there are cores.
jobs="${NOVACRON_FUZZ_JOBS:-$(nproc)}"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: NOVACRON_FUZZ_JOBS must be a positive number" >&2; exit 2; }
echo "fuzz: ${jobs} at a time"
run_one() { # run_one TARGET: fuzzes it, leaving its exit code in target/fuzz-TARGET.rc
  local t="$1" rc=0
  mkdir -p "corpus/$t" "artifacts/$t"
  nice -n 10 "${cargo_fuzz[@]}" run "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    >"$fuzz/target/fuzz-$t.log" 2>&1 || rc=$?
  echo "$rc" >"$fuzz/target/fuzz-$t.rc"
}
for t in "${targets[@]}"; do
  rm -f "$fuzz/target/fuzz-$t.rc"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$t" &
done
wait

failed=()
for t in "${targets[@]}"; do
  log="$fuzz/target/fuzz-$t.log"
  rc=$(cat "$fuzz/target/fuzz-$t.rc" 2>/dev/null || echo "no exit code")
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1 || true)
  if [ "$rc" = 0 ]; then
    printf 'fuzz: %-22s ok      %12s executions\n' "$t" "${runs:-?}"
  else
    failed+=("$t")
    input=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n1 | sed 's/Test unit written to //' || true)
    printf 'fuzz: %-22s CRASHED %12s executions (exit %s)\n' "$t" "${runs:-?}" "$rc"
    grep -m1 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | sed 's/^/fuzz:   /' || true
    echo "fuzz:   input: ${input:-see $log}"
    echo "fuzz:   reproduce: (cd fuzz && ${cargo_fuzz[*]} run $t ${input:-<input>})"
    echo "fuzz:   minimise:  (cd fuzz && ${cargo_fuzz[*]} tmin $t ${input:-<input>})"
    echo "fuzz:   log: $log"
  fi
done

echo "fuzz: ${#targets[@]} targets in $(( $(date +%s) - start ))s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashed: ${failed[*]}" >&2
  exit 1
fi
