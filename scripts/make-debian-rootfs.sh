#!/bin/sh
# Make a Debian bookworm root file system tarball for the real-distribution tests and benchmarks.
# Usage: scripts/make-debian-rootfs.sh OUT.tar
# Reuses OUT.tar when it exists (delete it to rebuild). Reaches only Debian's package registry
# (the mirror apt already uses on this machine, via mmdebstrap's defaults).
set -eu
out=${1:?usage: make-debian-rootfs.sh OUT.tar}
if [ -s "$out" ]; then
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "make-debian-rootfs: mmdebstrap is not installed (apt-get install mmdebstrap)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# --variant=minbase: essential + apt, the shape of docker's debian:bookworm-slim.
# --format=tar keeps device nodes and owners as a root-made tarball has them.
mmdebstrap --quiet --variant=minbase --format=tar bookworm "$tmp"
mv "$tmp" "$out"
trap - EXIT
