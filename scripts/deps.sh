#!/usr/bin/env bash
# Installs the Debian packages NovaCron needs, only those that are missing.
#   scripts/deps.sh run    what `novacron up` needs (QEMU, qemu-img, busybox, a guest kernel)
#   scripts/deps.sh test   plus what the test suite needs (etcd, restic, borg, iperf3, ...)
set -euo pipefail

want=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }

run_deps() {
  need_cmd qemu-system-x86_64 qemu-system-x86
  # busybox-static: the tiny guest needs a static busybox, not Debian's dynamic one.
  installed busybox-static || want+=(busybox-static)
  # A kernel for the tiny guest when the host has none in /boot (containers, some VMs).
  compgen -G '/boot/vmlinuz-*' >/dev/null || want+=(linux-image-cloud-amd64)
  # qemu-guest-agent: put into the tiny guest image, so `vm exec` works in the demo VM.
  installed qemu-guest-agent || want+=(qemu-guest-agent)
  # dnsmasq-base: the DHCP server an agent runs per overlay network (no system service).
  need_cmd dnsmasq dnsmasq-base
  # nftables: an agent enforces security groups with one nftables table (`nft -f`).
  need_cmd nft nftables
  # ovmf: the UEFI firmware of `vm create --firmware uefi`.
  [ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || want+=(ovmf)
  # swtpm: the TPM 2.0 of `vm create --tpm` (one swtpm process per VM with a TPM).
  need_cmd swtpm swtpm
}

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

test_deps() {
  run_deps
  need_cmd etcd etcd-server
  need_cmd restic restic
  need_cmd borg borgbackup
  need_cmd iperf3 iperf3
  need_cmd ip iproute2
  need_cmd curl curl
  need_cmd blkid util-linux
  need_cmd python3 python3
  # chromium and its WebDriver: the web UI is tested in a real browser.
  need_cmd chromium chromium
  need_cmd chromedriver chromium-driver
  # shim, GRUB and a FAT image's tools: the e2e test boots a Secure Boot guest through the
  # signed chain shim -> GRUB -> the Debian kernel.
  [ -e /usr/lib/shim/shimx64.efi.signed ] || want+=(shim-signed)
  [ -e /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed ] || want+=(grub-efi-amd64-signed)
  need_cmd mcopy mtools
  need_cmd mkfs.vfat dosfstools
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: installing $* needs root; run as root or install sudo" >&2; exit 1; fi
}

apt_install() {
  [ $# -gt 0 ] || return 0
  echo "installing: $*" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

case "${1:-run}" in
  run) run_deps ;;
  test) test_deps ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

if [ ${#want[@]} -gt 0 ] || ! command -v qemu-img >/dev/null 2>&1; then
  if [ -z "${NOVACRON_APT_UPDATED:-}" ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    export NOVACRON_APT_UPDATED=1
  fi
  # Deduplicate.
  mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u | sed '/^$/d')
  apt_install "${want[@]}"
  # qemu-utils separately and after qemu-system-x86: a newer qemu-utils from backports
  # conflicts with Debian 12's QEMU, and installing QEMU removes it.
  command -v qemu-img >/dev/null 2>&1 || apt_install qemu-utils
fi

# moto_server: an S3-compatible object store on loopback for the backup repository's S3 tests.
if [ "${1:-run}" = test ] && ! command -v moto_server >/dev/null 2>&1; then
  echo "installing: moto[server] (pip)" >&2
  python3 -m pip install -q 'moto[server]' >&2 || python3 -m pip install -q --break-system-packages 'moto[server]' >&2
  hash -r
fi

# openapi-spec-validator: the server's OpenAPI document is checked with it (crates/server tests).
if [ "${1:-run}" = test ] && ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
  echo "installing: openapi-spec-validator (pip)" >&2
  python3 -m pip install -q openapi-spec-validator >&2 || python3 -m pip install -q --break-system-packages openapi-spec-validator >&2
fi

# The Python SDK (sdk/python): its runtime packages for the e2e test that drives a VM
# through it, and the pinned generator for the test that regenerates it.
if [ "${1:-run}" = test ] && ! python3 -c 'import httpx, attrs, dateutil' >/dev/null 2>&1; then
  echo "installing: httpx attrs python-dateutil (pip)" >&2
  python3 -m pip install -q httpx attrs python-dateutil >&2 || python3 -m pip install -q --break-system-packages httpx attrs python-dateutil >&2
fi
sdk_generator=openapi-python-client==0.29.1 # keep in step with sdk/python/generate.sh
if [ "${1:-run}" = test ] && [ "$(openapi-python-client --version 2>/dev/null | awk '{print $NF}')" != "${sdk_generator#*==}" ]; then
  echo "installing: $sdk_generator (pip)" >&2
  python3 -m pip install -q "$sdk_generator" >&2 || python3 -m pip install -q --break-system-packages "$sdk_generator" >&2
  hash -r
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo (Rust 1.90 or newer) is needed to build NovaCron; install it with rustup" >&2
  exit 1
fi
