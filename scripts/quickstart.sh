#!/usr/bin/env bash
# The quick start: builds hoist, makes the busybox base image from Debian's busybox-static,
# builds the shipped example (examples/hello) with `hoist build` and runs it with `hoist run`.
# Works as root or as an ordinary user (installing busybox-static needs root or sudo once).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! [ -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
  echo "quickstart: installing busybox-static" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends busybox-static >/dev/null
fi

cargo build --release --locked
hoist=$PWD/target/release/hoist
export HOIST_ROOT=${HOIST_ROOT:-$PWD/target/quickstart-store}

rootfs=$(mktemp --suffix=.tar)
trap 'rm -f "$rootfs"' EXIT
fixtures/make-busybox-rootfs.sh "$rootfs"
"$hoist" import "$rootfs" localhost/busybox >/dev/null

"$hoist" build -t localhost/hello examples/hello
"$hoist" images
"$hoist" run --rm localhost/hello
