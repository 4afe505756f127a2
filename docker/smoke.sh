#!/bin/sh
# Build the iobench image and run `iobench run quick --target /data` in it against a
# bind-mounted host directory, with docker or podman. Not in CI (slow, needs an engine).
#
#   docker/smoke.sh [HOST_DIR]           default HOST_DIR: ./iobench-smoke (created)
#
# Environment: ENGINE=docker|podman (default: whichever is installed, docker first),
# BASE=image (default debian:bookworm-slim; when it cannot be pulled, a Debian rootfs
# is made with debootstrap and imported as localhost/iobench-base:bookworm),
# SUITE=quick, MIRROR=http://deb.debian.org/debian, NO_CACHE=1 (rebuild every layer).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
data=${1:-$PWD/iobench-smoke}
suite=${SUITE:-quick}
mirror=${MIRROR:-http://deb.debian.org/debian}
base=${BASE:-debian:bookworm-slim}
tag=localhost/iobench:smoke

engine=${ENGINE:-}
if [ -z "$engine" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then engine=docker
  elif command -v podman >/dev/null 2>&1; then engine=podman
  else echo "smoke.sh: needs docker or podman (apt-get install podman)" >&2; exit 2; fi
fi
run_opts=""
if [ "$engine" = podman ]; then
  # Rootful podman inside a VM or container: runc, and no default ulimits (the host may
  # not allow raising them). A private containers.conf keeps the system's untouched.
  conf=$(mktemp)
  printf '[containers]\ndefault_ulimits = []\n' > "$conf"
  export CONTAINERS_CONF="$conf"
  run_opts="--runtime runc"
  trap 'rm -f "$conf"' EXIT
fi
if ! $engine image inspect "$base" >/dev/null 2>&1 && ! $engine pull -q "$base" >/dev/null 2>&1; then
  base=localhost/iobench-base:bookworm
  if ! $engine image inspect "$base" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || { echo "smoke.sh: cannot pull an image and debootstrap is missing (apt-get install debootstrap)" >&2; exit 2; }
    root=$(mktemp -d)
    echo "smoke.sh: no base image can be pulled; building $base with debootstrap ($mirror)"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
    tar -C "$root" -c . | $engine import - "$base" >/dev/null
    rm -rf "$root"
  fi
fi

echo "smoke.sh: engine $engine, base $base, data $data"
t0=$(date +%s)
build_opts=""
[ -n "${NO_CACHE:-}" ] && build_opts="--no-cache"
# shellcheck disable=SC2086
$engine build $run_opts $build_opts --build-arg BASE="$base" -f "$here/Dockerfile" -t "$tag" "$repo"
t1=$(date +%s)
mkdir -p "$data"
rc=0
# shellcheck disable=SC2086
$engine run --rm $run_opts --privileged -v "$data:/data" "$tag" \
  run "$suite" --target /data/ib --results-dir /data/results || rc=$?
t2=$(date +%s)
echo "smoke.sh: build $((t1 - t0)) s, run $((t2 - t1)) s, iobench exit status $rc"
echo "smoke.sh: results and report.html under $data/results"
exit $rc
