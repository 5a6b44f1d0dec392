#!/usr/bin/env bash
# Proves that README's first command works on a fresh Debian 12 machine: builds a minimal
# Debian 12 root (mmdebstrap, the packages a user starts from), bind-mounts this machine's
# Rust toolchain and cargo registry cache into it, clones the commit under test, runs
# `./novacron up` there until the demo VM has booted (it prints NOVACRON-GUEST-READY on its
# serial console), then stops it and removes everything.
#
#   scripts/clean-room.sh [COMMIT]      default: HEAD of this repository
#
# Prints how long each step took; exits non-zero on any failure. Needs root (chroot, mounts).
# NOVACRON_CLEANROOM_DIR picks where the root is built (default /var/tmp), and
# NOVACRON_CLEANROOM_KEEP=1 keeps it for inspection after a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
commit="$(git -C "$repo" rev-parse "${1:-HEAD}")"

# What a user starts from: a minimal Debian 12 plus the packages README assumes.
base_packages=build-essential,git,ca-certificates,curl,python3
mirrors=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
boot_timeout_s=${NOVACRON_CLEANROOM_BOOT_TIMEOUT:-2400}

[ "$(id -u)" -eq 0 ] || { echo "clean-room: needs root (chroot and bind mounts)" >&2; exit 1; }

t0=$(date +%s)
step_start=$t0
step() {
  local now
  now=$(date +%s)
  printf 'clean-room: %-44s %5ss\n' "$1" "$((now - step_start))"
  step_start=$now
}

if ! command -v mmdebstrap >/dev/null 2>&1; then
  [ -n "${NOVACRON_APT_UPDATED:-}" ] || apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >&2
  step "install mmdebstrap"
fi

rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
toolchain="$(rustup show active-toolchain 2>/dev/null | cut -d' ' -f1)" || toolchain=""
[ -d "$rustup_home" ] && [ -x "$cargo_home/bin/cargo" ] \
  || { echo "clean-room: no rustup toolchain under $rustup_home / $cargo_home" >&2; exit 1; }
mkdir -p "$cargo_home/registry"

# Every mount under a root, deepest first, then the root itself when nothing is left mounted.
unmount_under() {
  local m
  for _ in 1 2 3; do
    awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r |
      while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  done
  ! awk -v r="$1" '$2 == r || index($2, r "/") == 1 { found = 1 } END { exit !found }' /proc/mounts
}

# A run that was killed (machine stopped, SIGKILL) leaves its root and bind mounts behind,
# the writable cargo registry among them: unmount them before anything is removed.
workdir="${NOVACRON_CLEANROOM_DIR:-/var/tmp}"
for stale in "$workdir"/novacron-clean-room.*; do
  [ -d "$stale" ] || continue
  owner="$(cat "$stale.pid" 2>/dev/null)" || owner=""
  [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null && continue
  if unmount_under "$stale"; then
    rm -rf --one-file-system "$stale" "$stale.pid"
    echo "clean-room: removed $stale left by an earlier run" >&2
  else
    echo "clean-room: $stale (earlier run) still has mounts; left alone" >&2
  fi
done

root="$(mktemp -d "$workdir/novacron-clean-room.XXXXXX")"
echo $$ >"$root.pid"
mounted=()
up_pid=""

in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo ${toolchain:+RUSTUP_TOOLCHAIN=$toolchain} \
    NOVACRON_CONFIG=/root/novacron-cli.json \
    bash -c "$1"
}

# Signals `novacron up` itself (the background job is a subshell around chroot, and a
# background job of a script ignores SIGINT, so SIGTERM goes to the process in the root).
stop_up() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] || continue
    [ "$(cat "$p/comm" 2>/dev/null)" = novacron ] && kill -TERM "${p#/proc/}" 2>/dev/null
  done
  return 0
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    stop_up
    for _ in $(seq 1 30); do kill -0 "$up_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$up_pid" 2>/dev/null
  fi
  # Whatever still runs inside the root (QEMU outlives `up` on purpose) is ours to stop.
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null
  done
  sleep 1
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -R "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null
  done
  if [ $rc -ne 0 ] && [ -n "${NOVACRON_CLEANROOM_KEEP:-}" ]; then
    echo "clean-room: kept $root for inspection" >&2
  elif ! unmount_under "$root"; then
    echo "clean-room: $root still has mounts; not removing it" >&2
  else
    rm -rf --one-file-system "$root" "$root.pid"
  fi
  if [ $rc -eq 0 ]; then
    echo "clean-room: passed in $(($(date +%s) - t0))s (commit $commit)"
  else
    echo "clean-room: FAILED after $(($(date +%s) - t0))s (commit $commit)" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mmdebstrap --quiet --variant=apt --include="$base_packages" bookworm "$root" "${mirrors[@]}" >&2
step "minimal Debian 12 root (mmdebstrap)"

bind() { # bind SRC DST [ro]
  mkdir -p "$root$2"
  mount --rbind "$1" "$root$2"
  mounted+=("$root$2")
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$root$2"
  return 0
}
bind /proc /proc
bind /sys /sys
bind /dev /dev
mkdir -p "$root/dev/shm" "$root/run"
mount -t tmpfs tmpfs "$root/run" && mounted+=("$root/run")
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# The toolchain and the download cache only: nothing else of this machine is visible.
bind "$rustup_home" /root/.rustup ro
bind "$cargo_home/bin" /root/.cargo/bin ro
bind "$cargo_home/registry" /root/.cargo/registry
step "mounts and toolchain"

git clone --quiet --no-local --no-checkout "$repo" "$root/root/novacron"
git -C "$root/root/novacron" checkout --quiet --detach "$commit"
step "clone $commit"

# README's first command, exactly as a user types it, in the background: it runs until
# stopped. Its output goes to a log we watch.
log="$root/root/up.log"
in_root "cd /root/novacron && exec ./novacron up" >"$log" 2>&1 &
up_pid=$!

deadline=$(($(date +%s) + boot_timeout_s))
stage=build
while :; do
  if ! kill -0 "$up_pid" 2>/dev/null; then
    echo "clean-room: \`./novacron up\` exited early; its output:" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
  if [ $(($(date +%s))) -gt $deadline ]; then
    echo "clean-room: the demo VM did not boot within ${boot_timeout_s}s; output of \`./novacron up\`:" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
  case $stage in
    build)
      if grep -q "NovaCron is up" "$log"; then
        step "deps + build + start (./novacron up)"
        stage=demo
      fi
      ;;
    demo)
      if grep -q "warning: the demo VM could not be started" "$log"; then
        echo "clean-room: the demo VM failed to start:" >&2
        tail -n 40 "$log" >&2
        exit 1
      fi
      if grep -q "Demo VM \`demo\` is running" "$log"; then
        step "demo VM created and running"
        stage=boot
      fi
      ;;
    boot)
      if in_root "cd /root/novacron && ./novacron vm console demo --tail" 2>/dev/null \
        | grep -q NOVACRON-GUEST-READY; then
        step "demo VM booted (guest ready on its console)"
        break
      fi
      ;;
  esac
  sleep 2
done

in_root "cd /root/novacron && ./novacron vm list" >&2
in_root "cd /root/novacron && ./novacron vm delete demo --force" >&2
stop_up
for _ in $(seq 1 60); do kill -0 "$up_pid" 2>/dev/null || break; sleep 1; done
if kill -0 "$up_pid" 2>/dev/null; then
  echo "clean-room: \`novacron up\` did not stop within 60 s of SIGTERM" >&2
  exit 1
fi
wait "$up_pid" || { echo "clean-room: \`novacron up\` exited with an error when stopped" >&2; tail -n 20 "$log" >&2; exit 1; }
up_pid=""
step "demo VM deleted, \`novacron up\` stopped"
