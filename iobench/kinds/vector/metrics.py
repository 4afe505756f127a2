"""The metrics `infer vector` results carry (beyond every phase's common fields).

One suffix rule: a rate of queries is `queries_per_s`, of reads `reads_per_s`; latencies
are `_us` (result level) or `_ns` (the per-read summary); schema-1 names are in `was=`
(with the factor where the unit changed: `p99_ms` -> `p99_us` x 1000). A phase that counts
queries (not I/Os) says so with `op_unit: query`, so tables never label queries/s IOPS.

Mode 1 (engine diskann) and mode 2 (the pattern) carry different result metrics: those
of one mode are declared optional, and MODE_METRICS lists what each mode always carries
(tests/kinds/test_vector_kind.py checks both).
"""

from iobench.kinds.base import declare, metric

MS = 1000.0  # ms -> us

METRICS = declare(
    "infer-vector",
    # both modes
    metric("queries_per_s", "higher", "diskann: headline queries/s (recall@10 >= 0.95 "
           "within the latency budget, 0 if none); pattern: best queries/s of the sweep",
           was="qps"),
    metric("max_queries_per_s", "higher", "best queries/s of any setting", was="max_qps"),
    metric("reads_per_query", "lower", "diskann: measured 4 KiB reads per query of the "
           "headline setting; pattern: hops x beam width", unit="ratio", optional=True),
    metric("p99_us", "lower", "diskann: headline p99 query latency; pattern: worst query p99 "
           "of the sweep, us", was="p99_ms", was_scale=MS, optional=True),
    # mode 1
    metric("recall_at_10", "higher", "diskann: best recall@10 of any setting (0-1)",
           unit="ratio", optional=True),
    metric("latency_budget_us", "neither", "diskann: the headline's p99 budget, us",
           was="latency_budget_ms", was_scale=MS, optional=True),
    metric("headline", "neither", "diskann: the headline setting {state, beam_width, "
           "complexity, queries_per_s, recall_at_10, p99_us, reads_4k_per_query, "
           "query_read_bytes}, or null", unit="text", optional=True),
    metric("best_at_recall", "neither", "diskann: the best queries/s at recall@10 >= 0.95 "
           "whatever its p99 (what the budget left out)", unit="text", optional=True),
    metric("build_s", "lower", "diskann: index build time, s", was="build_seconds",
           optional=True),
    metric("index_bytes", "neither", "diskann: bytes of the index files", optional=True),
    metric("disk_index_bytes", "neither", "diskann: bytes of the disk index (graph + full "
           "vectors, whole sectors)", optional=True),
    metric("index_reused", "neither", "diskann: the index was built by an earlier run",
           unit="flag", optional=True),
    metric("ground_truth_s", "neither", "diskann: time of the exact ground truth (once), s",
           was="ground_truth_seconds", optional=True),
    metric("procs_curve", "neither", "diskann --search-procs: [{procs, beam_width, "
           "complexity, state, queries_per_s, p99_us, recall_at_10}], P searcher processes "
           "at once", unit="text", optional=True),
    metric("max_procs_queries_per_s", "higher", "diskann --search-procs: best queries/s "
           "with P searcher processes", optional=True),
    # mode 2
    metric("curve", "neither", "pattern: [{concurrency, queries_per_s, p99_us, read_p99_us, "
           "reads_per_s, gb_per_s, fio_reads_per_s, fio_read_p99_us}]", unit="text",
           optional=True),
    metric("read_p99_us", "lower", "pattern: worst per-read p99 of the sweep, us",
           optional=True),
    metric("{cell}.queries_per_s", "higher", "pattern: queries/s at c<concurrency>",
           was="{cell}.qps", optional=True),
    metric("{cell}.p99_us", "lower", "pattern: query p99 at c<concurrency>, us",
           was="{cell}.p99_ms", was_scale=MS, optional=True),
    # per phase: a search setting (mode 1), a build, a pattern point (mode 2), fio beside
    metric("beam_width", "neither", "W: reads a hop issues together", unit="count",
           phase=True),
    metric("complexity", "neither", "L: DiskANN's search list size", unit="count", phase=True),
    metric("state", "neither", "cold (index files evicted) or warm", unit="text", phase=True),
    metric("k", "neither", "neighbours asked for (recall@k)", unit="count", phase=True),
    metric("queries_per_s", "higher", "queries per second", phase=True, was="qps"),
    metric("recall_at_10", "higher", "mean |found top-10 & true top-10| / 10", unit="ratio",
           phase=True),
    metric("query_read_bytes", "lower", "bytes read per query (measured, /proc/self/io)",
           phase=True, was="read_bytes_per_query"),
    metric("reads_4k_per_query", "lower", "4 KiB reads per query (measured)", unit="ratio",
           phase=True),
    metric("reads_source", "neither", "how reads were counted", unit="text", phase=True),
    metric("searchers", "neither", "searching processes (MPI ranks)", unit="count",
           phase=True),
    metric("major_faults", "lower", "major page faults during the pass (their reads are in "
           "the read count)", unit="count", phase=True),
    metric("latency_unit", "neither", "what one latency sample is", unit="text", phase=True),
    metric("op_unit", "neither", "what the phase's ops count (query: ops_per_s is "
           "queries/s, not IOPS)", unit="text", phase=True),
    metric("device", "neither", "the target's block device", unit="text", phase=True),
    metric("device_reads_per_query", "lower", "device-wide reads per query (/proc/diskstats)",
           unit="ratio", phase=True),
    metric("query_device_bytes", "lower", "device-wide bytes read per query "
           "(/proc/diskstats)", phase=True, was="device_bytes_per_query"),
    metric("device_source", "neither", "how the device counts were taken", unit="text",
           phase=True),
    metric("what", "neither", "what the phase is", unit="text", phase=True),
    metric("procs", "neither", "searcher processes per host (--search-procs)",
           unit="count", phase=True),
    metric("concurrency", "neither", "queries in flight", unit="count", phase=True),
    metric("hops", "neither", "rounds per query", unit="count", phase=True),
    metric("sector_bytes", "neither", "bytes per read", phase=True, was="sector"),
    metric("queries", "neither", "finished queries", unit="count", phase=True),
    metric("reads", "neither", "reads completed", unit="count", phase=True),
    metric("reads_per_query", "neither", "reads / queries (= hops x beam width)",
           unit="ratio", phase=True),
    metric("reads_per_s", "higher", "reads per second (per-read IOPS)", phase=True,
           was="read_iops"),
    metric("read_latency_ns", "lower", "per-read latency summary (submit to completion), "
           "ns", phase=True),
    metric("queue_depth", "neither", "concurrency x beam width: most reads in flight",
           unit="count", phase=True),
    metric("ranks", "neither", "MPI ranks", unit="count", phase=True),
    metric("ioengine", "neither", "fio's ioengine (the fio randread beside the pattern)",
           unit="text", phase=True, optional=True),
)

# what each mode's result always carries (beyond the non-optional metrics)
MODE_METRICS = {
    "diskann": ("recall_at_10", "latency_budget_us", "headline", "build_s", "index_bytes",
                "disk_index_bytes", "index_reused", "ground_truth_s"),
    "pattern": ("curve", "read_p99_us", "reads_per_query", "p99_us", "{cell}.queries_per_s",
                "{cell}.p99_us"),
}
