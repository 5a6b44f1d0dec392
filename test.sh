#!/usr/bin/env bash
# Runs NovaCron's whole test suite (unit, property, and end-to-end tests with real QEMU
# guests, real etcd, real network namespaces), installing what it needs first.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
scripts/deps.sh test
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
cargo nextest run --workspace --locked --no-fail-fast "$@"
