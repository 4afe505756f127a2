#!/bin/sh
# Regenerates the golden fio outputs in tests/fio/data/ with the real fio (small sizes).
# The tests hold numbers read off these files; regenerate only together with the tests.
set -eu
out=$(cd "$(dirname "$0")" && pwd)/data
work=$(mktemp -d /tmp/iobench-golden.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
head -c 4194304 /dev/urandom > f0
head -c 4194304 /dev/urandom > f1
common="--invalidate=0 --randrepeat=0 --percentile_list=50:90:99:99.9:99.99"
for fmt in json json+; do
  sfx=$( [ "$fmt" = json ] && echo json || echo jsonplus.json )
  fio --name=seqread --rw=read --bs=64k --size=4m --filename=f0 $common \
      --output-format=$fmt --output="$out/seqread-1job.$sfx"
  fio $common --rw=read --bs=4k --size=4m --output-format=$fmt \
      --output="$out/seqread-2jobs.$sfx" \
      --name=seqread --filename=f0 --name=seqread --filename=f1
done
# a write job with end_fsync, incompressible refilled buffers
fio --name=randwrite --rw=randwrite --bs=4k --size=2m --filename=w0 --end_fsync=1 \
    --refill_buffers=1 --buffer_compress_percentage=0 $common \
    --output-format=json+ --output="$out/randwrite-end-fsync.jsonplus.json"
# fsync every 16 writes: fio reports a `sync` block with its own latencies
fio --name=seqwrite --rw=write --bs=64k --size=2m --filename=w1 --fsync=16 $common \
    --output-format=json+ --output="$out/seqwrite-fsync16.jsonplus.json"
# no percentiles at all: the write block has no `percentile`, the read block has N=0
fio --name=nopct --rw=write --bs=64k --size=1m --filename=w2 --clat_percentiles=0 \
    --invalidate=0 --output-format=json --output="$out/write-no-percentiles.json"
# fio prints a warning line into the output file before the JSON document
printf '[warned]\nrw=read\nbs=128k\nsize=1m\nfilename=f0\ninvalidate=0\ntime_based=1\n' > warned.fio
fio --output-format=json --output="$out/warning-before-json.json" warned.fio
# one JSON document a second (status-interval), the last is the summary
fio --name=randread --rw=randread --bs=4k --size=4m --filename=f1 --time_based=1 \
    --runtime=2500ms --status-interval=1 $common \
    --output-format=json --output="$out/randread-status-interval.json"
# two reporting groups (stonewall): a write, then a read of the same file
fio $common --bs=64k --size=1m --filename=g0 --output-format=json+ \
    --output="$out/two-groups.jsonplus.json" \
    --name=fill --rw=write --name=check --rw=read --stonewall
ls -l "$out"
