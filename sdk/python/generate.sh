#!/usr/bin/env bash
# Regenerates the Python SDK (sdk/python/novacron-client) from the server's OpenAPI
# document, which `novacron openapi` prints without a running server.
#
#   sdk/python/generate.sh [OUT_DIR]
#
# OUT_DIR defaults to sdk/python/novacron-client (the checked-in tree, replaced whole).
# NOVACRON names the novacron binary to take the document from; without it the binary is
# built with `cargo build --workspace --bins`. The generator's version is pinned below;
# install it with `python3 -m pip install openapi-python-client==<that version>`
# (scripts/deps.sh test does).
set -euo pipefail

GENERATOR_VERSION=0.29.1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here/novacron-client}

if ! command -v openapi-python-client >/dev/null 2>&1; then
  echo "error: openapi-python-client is not installed: python3 -m pip install openapi-python-client==$GENERATOR_VERSION" >&2
  exit 2
fi
have=$(openapi-python-client --version | awk '{print $NF}')
if [ "$have" != "$GENERATOR_VERSION" ]; then
  echo "error: openapi-python-client $have is installed, the SDK is generated with $GENERATOR_VERSION: python3 -m pip install openapi-python-client==$GENERATOR_VERSION" >&2
  exit 2
fi

if [ -z "${NOVACRON:-}" ]; then
  (cd "$root" && cargo build --workspace --bins --locked >&2)
  NOVACRON="$root/target/debug/novacron"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$NOVACRON" openapi >"$work/openapi.json"
# The generator writes into a directory it creates; build there, then replace OUT_DIR whole
# so files of removed operations do not linger.
(cd "$work" && openapi-python-client generate --path openapi.json --config "$here/config.yml" \
  --meta setup --output-path "$work/novacron-client" >"$work/generator.log" 2>&1) || {
  cat "$work/generator.log" >&2
  exit 1
}
# Warnings other than the known plain-text responses mean the document lost something.
if grep -E '^(Unable|Cannot|WARNING)' "$work/generator.log" >/dev/null; then
  cat "$work/generator.log" >&2
  echo "error: the generator warned about the document (see above); fix crates/server/src/api/openapi.rs" >&2
  exit 1
fi
rm -rf "$out"
mkdir -p "$(dirname "$out")"
cp -r "$work/novacron-client" "$out"
echo "generated $out" >&2
