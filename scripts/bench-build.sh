#!/usr/bin/env bash
# Benchmark (not a test): builds the cases under fixtures/bench/ with hoist and, where installed,
# with `buildah build --layers` (rootless, native overlay storage, runc), both as the same
# unprivileged user on the same base images, and prints each pair's median wall time and the ratio
# buildah/hoist (above 1: hoist is faster), and the CPU seconds (user + system, mean, the tool and
# every process it waited for), which say more than wall times on a machine others load too.
# Asserts nothing.
#
# Usage: scripts/bench-build.sh [RUNS]        (default 5; the Debian case runs min(RUNS, 3) times)
#   HOIST=path/to/hoist   skip the release build
#   CASES="run copy …"    only these groups: run cached context copy-small copy-big run-100mib (random and zeros)
#                         stages debian (default: all)
#   NO_BUILDAH=1          hoist only
# As root, the script makes the user `hoistbench` (subordinate ids 400000:65536) and runs every
# build as that user; otherwise it runs as the calling user, who needs a subuid range for buildah.
#
# Base images, identical for both tools: `bench-base` from fixtures/make-busybox-rootfs.sh, and
# `bench-debian`, Debian bookworm made once with `mmdebstrap --variant=minbase --skip=output/dev`
# (no device nodes, so that a rootless import works) and cached under
# ${XDG_CACHE_HOME:-~/.cache}/hoist-bench/. hoist gets them with `hoist import`, buildah with
# `podman import` into the same storage buildah uses. The Debian case downloads gcc from the
# Debian mirror on every cold build, for both tools.
#
# Cold builds use `--no-cache`; "cached" rows rebuild without it after one warm-up build. The
# stages row adds the ratio of its wall time to the sum of the two stages' 2 s; the Debian row
# adds hoist's commit time of the build's biggest layer (from one more build, `--log-level debug`).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if [ -z "${HOIST_BENCH_INNER:-}" ]; then
  runs=${1:-5}
  if [ -z "${HOIST:-}" ]; then
    cargo build --release --locked --quiet
    HOIST=$repo/target/release/hoist
  fi
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/hoist-bench
  mkdir -p "$cache"
  cases=${CASES:-run cached context copy-small copy-big run-100mib stages debian}
  if [[ " $cases " == *" debian "* ]] && ! [ -f "$cache/bookworm-minbase.tar" ]; then
    command -v mmdebstrap >/dev/null || { echo "bench-build.sh: install mmdebstrap for the debian case (or leave it out of CASES)" >&2; exit 1; }
    echo "making the Debian bookworm base once: $cache/bookworm-minbase.tar"
    tmpd=$(mktemp -d "$cache/mm-XXXXXX")
    mmdebstrap --quiet --variant=minbase --skip=output/dev bookworm "$tmpd/base.tar"
    mv "$tmpd/base.tar" "$cache/bookworm-minbase.tar"
    rm -rf "$tmpd"
  fi
  work=$(mktemp -d /var/tmp/hoist-bench-build-XXXXXX)
  chmod 755 "$work"
  cp -r fixtures/bench "$work/cases"
  fixtures/make-busybox-rootfs.sh "$work/busybox.tar"
  if [[ " $cases " == *" debian "* ]]; then cp "$cache/bookworm-minbase.tar" "$work/debian.tar"; fi
  cp "$HOIST" "$work/hoist"
  run_as=()
  if [ "$(id -u)" = 0 ]; then
    id hoistbench >/dev/null 2>&1 || useradd --no-create-home --shell /usr/sbin/nologin hoistbench
    grep -q '^hoistbench:' /etc/subuid 2>/dev/null || echo 'hoistbench:400000:65536' >> /etc/subuid
    grep -q '^hoistbench:' /etc/subgid 2>/dev/null || echo 'hoistbench:400000:65536' >> /etc/subgid
    chown -R hoistbench:hoistbench "$work"
    run_as=(setpriv --reuid=hoistbench --regid=hoistbench --init-groups --)
  fi
  status=0
  "${run_as[@]}" env -i PATH="$PATH" HOME="$work/home" XDG_RUNTIME_DIR="$work/xdg" \
    HOIST_BENCH_INNER=1 RUNS="$runs" CASES="$cases" NO_BUILDAH="${NO_BUILDAH:-}" \
    WORK="$work" bash "$repo/scripts/bench-build.sh" || status=$?
  # buildah's rootless storage belongs to subordinate ids: remove it from inside its namespace
  if [ -d "$work/buildah" ]; then
    "${run_as[@]}" env -i PATH="$PATH" HOME="$work/home" XDG_RUNTIME_DIR="$work/xdg" \
      buildah unshare rm -rf "$work/buildah" 2>/dev/null || true
  fi
  if [ -d "$work/hoist-store" ]; then
    "${run_as[@]}" env -i PATH="$PATH" HOME="$work/home" HOIST_ROOT="$work/hoist-store" \
      "$work/hoist" prune -a -f >/dev/null 2>&1 || true
  fi
  rm -rf "$work" 2>/dev/null || echo "bench-build.sh: some files of $work are left (owned by subordinate ids)"
  exit $status
fi

# ---- from here on: the unprivileged user ----
cd "$WORK"
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
H=$WORK/hoist
export HOIST_ROOT=$WORK/hoist-store
have_buildah=""
if [ -z "$NO_BUILDAH" ] && command -v buildah >/dev/null 2>&1 && command -v podman >/dev/null 2>&1; then
  have_buildah=1
fi
sopts="--root $WORK/buildah/root --runroot $WORK/buildah/runroot --storage-driver overlay"
B="buildah $sopts"
BB="$B build --layers --runtime runc --isolation oci --network host --jobs 2 -q"
P="podman $sopts --runtime runc --cgroup-manager cgroupfs --events-backend none"
debian_runs=$(( RUNS < 3 ? RUNS : 3 ))

"$H" import busybox.tar localhost/bench-base >/dev/null
[ -f debian.tar ] && "$H" import debian.tar localhost/bench-debian >/dev/null
# hoist unpacks an imported layer on first use, podman at import: unpack now, outside the timing
"$H" run --rm --network none localhost/bench-base true >/dev/null
[ -f debian.tar ] && "$H" run --rm --network none localhost/bench-debian true >/dev/null
if [ -n "$have_buildah" ]; then
  $P import -q busybox.tar localhost/bench-base >/dev/null 2>&1
  [ -f debian.tar ] && $P import -q debian.tar localhost/bench-debian >/dev/null 2>&1
fi

# made here rather than kept in git: 2,000 small files and 200 MiB of random bytes
mkdir -p cases/copy-small/files
for i in $(seq 1 2000); do echo "file $i" > "cases/copy-small/files/f$i.txt"; done
head -c 209715200 /dev/urandom > cases/copy-big/big.bin

# "WALL CPU" of N runs: median wall seconds, mean user+system seconds: median N PREPARE COMMAND
median() {
  local n=$1 prep=$2 cmd=$3
  if command -v hyperfine >/dev/null 2>&1; then
    if ! hyperfine -N --runs "$n" --prepare "$prep" --export-json "$WORK/h.json" "$cmd" >"$WORK/h.log" 2>&1; then
      echo failed -; sed 's/^/    /' "$WORK/h.log" | tail -5 >&2; return
    fi
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.3f %.2f" % (r["median"], r["user"] + r["system"]))' "$WORK/h.json"
  else
    local t=()
    for _ in $(seq "$n"); do
      bash -c "$prep" >/dev/null 2>&1
      local s; s=$(date +%s%N)
      if ! bash -c "$cmd" >/dev/null 2>&1; then echo failed -; return; fi
      t+=($(( $(date +%s%N) - s )))
    done
    printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.3f -\n", a[int((NR+1)/2)]/1e9}'
  fi
}

# one row: NAME RUNS PREPARE HOIST_CMD BUILDAH_CMD
declare -A hoist_s buildah_s
row() {
  local name=$1 n=$2 prep=$3 hcmd=$4 bcmd=$5 h hc b="-" bc="-" ratio="-"
  read -r h hc < <(median "$n" "$prep" "$hcmd")
  if [ -n "$have_buildah" ]; then
    read -r b bc < <(median "$n" "$prep" "$bcmd")
    if [ "$h" != failed ] && [ "$b" != failed ]; then
      ratio=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) / float(sys.argv[1])))" "$h" "$b")
    fi
  fi
  hoist_s[$name]=$h
  buildah_s[$name]=$b
  printf '%-34s %10s %10s %8s %9s %9s\n' "$name" "$h" "$b" "$ratio" "$hc" "$bc"
}

hb() { echo "$H build -q $* "; }
bb() { echo "$BB $* "; }
# after each run: drop what the run left behind (dangling images), outside the timing
clean="$H prune >/dev/null 2>&1; true"
[ -n "$have_buildah" ] && clean="$clean; $B rmi --prune >/dev/null 2>&1; true"
clean="bash -c '$clean'"

echo "median wall seconds of $RUNS runs ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), kernel $(uname -r), user $(id -un))"
echo "hoist: $("$H" --version 2>/dev/null | head -1)"
[ -n "$have_buildah" ] && echo "buildah: $(buildah --version) (rootless, overlay, runc, --layers --jobs 2)"
printf '%-34s %10s %10s %8s %9s %9s\n' case "hoist s" "buildah s" "b/h" "hoist cpu" "bldh cpu"

c=$WORK/cases
for group in $CASES; do
  case $group in
    run)
      row "1 RUN (cold)" "$RUNS" "$clean" "$(hb --no-cache -t r1 "$c/run-1")" "$(bb --no-cache -t r1 "$c/run-1")"
      row "20 RUN (cold)" "$RUNS" "$clean" "$(hb --no-cache -t r20 "$c/run-20")" "$(bb --no-cache -t r20 "$c/run-20")"
      per() { python3 -c "import sys; print('%.1f' % ((float(sys.argv[2]) - float(sys.argv[1])) / 19 * 1000))" "$1" "$2" 2>/dev/null || echo -; }
      printf '%-34s %10s %10s\n' "  per-RUN overhead (ms)" \
        "$(per "${hoist_s["1 RUN (cold)"]}" "${hoist_s["20 RUN (cold)"]}")" \
        "$(per "${buildah_s["1 RUN (cold)"]}" "${buildah_s["20 RUN (cold)"]}")"
      ;;
    cached)
      "$H" build -q -t r20 "$c/run-20" >/dev/null
      [ -n "$have_buildah" ] && $BB -t r20 "$c/run-20" >/dev/null
      row "20 RUN (cached rebuild)" "$RUNS" "true" "$(hb -t r20 "$c/run-20")" "$(bb -t r20 "$c/run-20")"
      ;;
    context)
      "$H" build -q -t ctx "$c/rebuild-context" >/dev/null
      [ -n "$have_buildah" ] && $BB -t ctx "$c/rebuild-context" >/dev/null
      row "rebuild, one context file changed" "$RUNS" \
        "bash -c 'date +%s%N > $c/rebuild-context/src/changed.txt'" \
        "$(hb -t ctx "$c/rebuild-context")" "$(bb -t ctx "$c/rebuild-context")"
      ;;
    copy-small)
      row "COPY 2,000 files (cold)" "$RUNS" "$clean" "$(hb --no-cache -t cs "$c/copy-small")" "$(bb --no-cache -t cs "$c/copy-small")"
      ;;
    copy-big)
      row "COPY 200 MiB file (cold)" "$RUNS" "$clean" "$(hb --no-cache -t cb "$c/copy-big")" "$(bb --no-cache -t cb "$c/copy-big")"
      row "COPY 200 MiB file (cached)" "$RUNS" "true" "$(hb -t cb "$c/copy-big")" "$(bb -t cb "$c/copy-big")"
      ;;
    run-100mib)
      row "RUN writing 100 MiB (cold)" "$RUNS" "$clean" "$(hb --no-cache -t r100 "$c/run-100mib")" "$(bb --no-cache -t r100 "$c/run-100mib")"
      row "RUN writing 100 MiB zeros (cold)" "$RUNS" "$clean" "$(hb --no-cache -t r100z "$c/run-100mib-zeros")" "$(bb --no-cache -t r100z "$c/run-100mib-zeros")"
      ;;
    stages)
      row "two independent 2 s stages (cold)" "$RUNS" "$clean" "$(hb --no-cache -t st "$c/stages")" "$(bb --no-cache -t st "$c/stages")"
      of_sum() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / 4.0))" "$1" 2>/dev/null || echo -; }
      printf '%-34s %10s %10s\n' "  wall / sum of stages (4 s)" \
        "$(of_sum "${hoist_s["two independent 2 s stages (cold)"]}")" \
        "$(of_sum "${buildah_s["two independent 2 s stages (cold)"]}")"
      ;;
    debian)
      if [ -f debian.tar ]; then
        row "Debian: apt gcc, compile (cold)" "$debian_runs" "$clean" "$(hb --no-cache -t deb "$c/debian")" "$(bb --no-cache -t deb "$c/debian")"
        # the commit of the apt layer, from hoist's own timing of each layer it commits
        bash -c "$clean" >/dev/null 2>&1
        biggest=$("$H" --log-level debug build -q --no-cache -t deb "$c/debian" 2>&1 >/dev/null \
          | sed -n 's/.*hoist: debug: layer sha256:[0-9a-f]* (\([0-9]*\) bytes[a-z ]*): committed in \([0-9.]*\) s (\([0-9.]*\) s CPU).*/\1 \2 \3/p' \
          | sort -n | tail -1)
        if [ -n "$biggest" ]; then
          read -r bytes wall cpu <<<"$biggest"
          printf '%-34s %10s %10s %8s %9s\n' "  commit of its $((bytes / 1000000)) MB layer" "$wall" - - "$cpu"
        fi
      else
        echo "debian: no base tarball"
      fi
      ;;
    *) echo "bench-build.sh: unknown case group \`$group\`" >&2; exit 2 ;;
  esac
done
