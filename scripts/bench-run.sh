#!/usr/bin/env bash
# Benchmark (not a test): median wall time of `hoist run IMAGE true` over N runs, as root and
# rootless (uid 65534 through setpriv, single-id mode), side by side with `podman run --rm` and
# `buildah run` where they are installed (runc runtime, storage in temp dirs, podman given
# rlimits this VM's hard limits allow), plus how long
# `hoist run IMAGE sleep` takes to end after SIGINT. Prints numbers; asserts nothing.
# Usage: scripts/bench-run.sh [N]   (HOIST=path/to/hoist to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
if [ -z "${HOIST:-}" ]; then
  cargo build --release --quiet
  HOIST=$PWD/target/release/hoist
fi
work=$(mktemp -d /tmp/hoist-bench-XXXXXX)
chmod 755 "$work"
cleanup() {
  if command -v podman >/dev/null 2>&1 && [ -d "$work/podman" ]; then
    podman "${podman_opts[@]}" rm -af >/dev/null 2>&1 || true
    buildah "${podman_opts[@]}" rm -a >/dev/null 2>&1 || true
    umount -R "$work/podman/root/overlay" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fixtures/make-busybox-rootfs.sh "$work/busybox.tar"
chmod 644 "$work/busybox.tar"

# median (ms) of N runs of a command, with hyperfine when installed, else a shell loop
median_ms() {
  if command -v hyperfine >/dev/null 2>&1; then
    if ! hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/h.json" "$1" >/dev/null 2>&1; then
      echo failed; return
    fi
    python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$work/h.json"
  else
    local t=()
    for _ in $(seq "$runs"); do
      local s; s=$(date +%s%N); bash -c "$1" >/dev/null; t+=($(( $(date +%s%N) - s )))
    done
    printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f\n", a[int((NR+1)/2)]/1e6}'
  fi
}

row() { printf '%-44s %10s ms\n' "$1" "$2"; }
# a second median under SCHED_FIFO (root only) shows the cost without other jobs competing for
# the cores, when the machine is shared
fifo=""
if [ "$(id -u)" = 0 ] && command -v chrt >/dev/null 2>&1; then fifo="chrt -f 10"; fi
bench() {
  local normal; normal=$(median_ms "$2")
  if [ -n "$fifo" ]; then
    printf '%-44s %10s ms %14s ms\n' "$1" "$normal" "$(median_ms "$fifo $2")"
  else
    row "$1" "$normal"
  fi
}

echo "median wall time over $runs runs ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), kernel $(uname -r))"
if [ -n "$fifo" ]; then printf '%-44s %13s %17s\n' "" "normal" "SCHED_FIFO"; fi

# hoist as root
export HOIST_ROOT=$work/root-store
"$HOIST" import "$work/busybox.tar" busybox >/dev/null
"$HOIST" run busybox true
bench "hoist run busybox true (root)" "$HOIST run busybox true"

# hoist rootless, single-id mode
as_nobody="setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all --"
mkdir -p "$work/nobody" && chown 65534:65534 "$work/nobody"
export HOIST_ROOT=$work/nobody/store
$as_nobody "$HOIST" import "$work/busybox.tar" busybox >/dev/null
$as_nobody "$HOIST" run busybox true
bench "hoist run busybox true (rootless, uid 65534)" \
  "env HOIST_ROOT=$HOIST_ROOT $as_nobody $HOIST run busybox true"

# SIGINT to a running container: time until hoist has exited and cleaned up
export HOIST_ROOT=$work/root-store
"$HOIST" run busybox sleep 100 & pid=$!
for _ in $(seq 500); do pgrep -f '^sleep 100$' >/dev/null && break; sleep 0.01; done
s=$(date +%s%N); kill -INT "$pid"; wait "$pid" || true
row "hoist run busybox sleep 100: SIGINT to exit" "$(( ($(date +%s%N) - s) / 1000000 ))"

if command -v podman >/dev/null 2>&1; then
  podman_opts=(--root "$work/podman/root" --runroot "$work/podman/runroot" --storage-driver overlay)
  popts="${podman_opts[*]}"
  podman "${podman_opts[@]}" --runtime runc import "$work/busybox.tar" localhost/busybox >/dev/null 2>&1
  podman "${podman_opts[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend none \
    run --rm --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/busybox true
  # (runc under SCHED_FIFO fails here, so podman and buildah get the normal column only)
  fifo=""
  bench "podman run --rm busybox true (runc, root)" \
    "podman $popts --runtime runc --cgroup-manager cgroupfs --events-backend none run --rm --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/busybox true"
  if command -v buildah >/dev/null 2>&1; then
    ctr=$(buildah "${podman_opts[@]}" from --pull-never localhost/busybox)
    buildah "${podman_opts[@]}" run --runtime runc --isolation oci --network host "$ctr" true
    bench "buildah run CONTAINER true (runc, root)" \
      "buildah $popts run --runtime runc --isolation oci --network host $ctr true"
  fi
else
  echo "podman/buildah: not installed"
fi
