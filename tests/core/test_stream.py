"""engines.stream: the write lane pwrites and fsyncs whole files from a bounded set of
buffers, the read lane reads them back; both measure bytes, ops, histogram, timeline."""

import os
import queue

import pytest

from iobench.engines import stream
from iobench.engines.native import aligned_buffer, open_file

CHUNK = 64 << 10


def _write(tmp_path, sizes):
    bufs = [aligned_buffer(CHUNK) for _ in range(2)]
    free: queue.Queue = queue.Queue()
    for i in range(2):
        free.put(i)
    full: queue.Queue = queue.Queue()
    st = stream.StreamStats()
    t = stream.start(stream.write_lane, full, free, bufs, direct=False, stats=st)
    for k, size in enumerate(sizes):
        path = tmp_path / f"f{k}"
        fd = open_file(path, write=True, create=True, truncate=True)
        for off in range(0, size, CHUNK):
            bi = stream.get(free, st)
            n = min(CHUNK, size - off)
            memoryview(bufs[bi])[:n] = bytes([k + 1]) * n
            full.put(("w", fd, str(path), off, n, bi))
        full.put(("close", fd, size, str(path)))
    full.put(None)
    t.join()
    return st


def test_write_then_read_lane_round_trip(tmp_path):
    sizes = [3 * CHUNK + 100, CHUNK]
    st = _write(tmp_path, sizes)
    assert st.error is None
    assert st.bytes == 4 * CHUNK + 100
    assert st.ops == 5  # 4 chunks + the 100-byte tail
    assert st.fsyncs == 2
    assert st.fsync_recorder.flush().count == 2
    assert st.recorder.flush().count == 5
    assert sum(st.timeline.bins) == st.bytes
    assert [os.path.getsize(tmp_path / f"f{k}") for k in range(2)] == sizes

    bufs = [aligned_buffer(CHUNK) for _ in range(2)]
    free: queue.Queue = queue.Queue()
    for i in range(2):
        free.put(i)
    full: queue.Queue = queue.Queue()
    rd = stream.StreamStats()
    files = [(str(tmp_path / "f0"), sizes[0]), (str(tmp_path / "gone"), 10),
             (str(tmp_path / "f1"), sizes[1] + 5)]  # the last file is 5 bytes short
    t = stream.start(stream.read_lane, files, full, free, bufs, chunk=CHUNK, direct=False,
                     stats=rd)
    seen = []
    while (item := stream.get(full, rd)) is not None:
        seen.append(item[:2] if item[0] == "missing" else item[:5])
        if item[0] == "r":
            if item[3]:  # bytes were read into the buffer
                want = bytes([1 if item[1] == 0 else 2])
                assert bytes(memoryview(bufs[item[5]])[:1]) == want
            free.put(item[5])
    t.join()
    assert rd.error is None
    assert ("missing", 1) in seen
    assert ("r", 2, CHUNK, 0, 5) in seen  # the short file: 0 of the 5 missing bytes
    assert rd.bytes == sum(sizes)


def test_a_failed_write_stops_both_sides(tmp_path):
    bufs = [aligned_buffer(CHUNK)]
    free: queue.Queue = queue.Queue()
    full: queue.Queue = queue.Queue()
    st = stream.StreamStats()
    t = stream.start(stream.write_lane, full, free, bufs, direct=False, stats=st)
    full.put(("w", 987654, "nowhere", 0, 10, 0))  # not an open descriptor
    t.join()
    assert isinstance(st.error, OSError)
    with pytest.raises(stream.Stopped):
        stream.get(free, st)  # the filling side gives up instead of waiting forever
