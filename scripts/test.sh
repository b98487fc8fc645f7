#!/usr/bin/env bash
# Runs every check hoist has: formatting, lints, unit and integration tests (which drive the real
# binary and compare it with buildah, skopeo and umoci). Installs what the tests need when it is
# missing, and fails (never skips) when something cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need_pkgs+=(busybox-static)
have skopeo || need_pkgs+=(skopeo)
have umoci || need_pkgs+=(umoci)
have buildah || need_pkgs+=(buildah)
have podman || need_pkgs+=(podman)
have runc || need_pkgs+=(runc)
have newuidmap || need_pkgs+=(uidmap)
have setpriv || need_pkgs+=(util-linux)
have script || need_pkgs+=(bsdutils)
have pasta || need_pkgs+=(passt)
have docker-registry || need_pkgs+=(docker-registry)
have openssl || need_pkgs+=(openssl)
# tests/distro.rs builds on a Debian bookworm base made by scripts/make-debian-rootfs.sh
have mmdebstrap || need_pkgs+=(mmdebstrap)
# the hostile-RUN tests compile small static C programs
{ have gcc && [ "$(gcc -print-file-name=libc.a)" != libc.a ]; } || need_pkgs+=(gcc libc6-dev)
# tests/sign.rs checks hoist's signatures against an independent cosign-format implementation
# (scripts/cosign_spec.py) on Python's `cryptography` and `PyNaCl`, from PyPI into a venv
# (Debian's python3 makes venvs with pip only when python3-venv is installed)
have python3 || need_pkgs+=(python3)
if [ -x /usr/bin/python3 ] && ! dpkg -s python3-venv >/dev/null 2>&1; then need_pkgs+=(python3-venv); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${need_pkgs[*]}" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need_pkgs[@]}" >/dev/null
fi

# tests/sandbox.rs runs hoist as `hoisttest`, an ordinary user with a subordinate id range
# (podman's layout needs one); made here when running as root, checked by the tests otherwise
if [ "$(id -u)" = 0 ]; then
  id hoisttest >/dev/null 2>&1 || useradd --no-create-home --shell /usr/sbin/nologin hoisttest
  grep -q '^hoisttest:' /etc/subuid 2>/dev/null || echo 'hoisttest:300000:65536' >> /etc/subuid
  grep -q '^hoisttest:' /etc/subgid 2>/dev/null || echo 'hoisttest:300000:65536' >> /etc/subgid
fi

venv=target/test-venv
if ! "$venv/bin/python3" -c 'import cryptography, nacl' >/dev/null 2>&1; then
  echo "scripts/test.sh: installing cryptography and PyNaCl into $venv" >&2
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install -q cryptography pynacl
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked "$@"
