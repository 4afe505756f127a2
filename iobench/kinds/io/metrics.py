"""The metrics `io` results carry (beyond every phase's common fields)."""

from iobench.kinds.base import declare, metric

METRICS = declare(
    "io",
    metric("gb_per_s", "higher", "throughput of the main phase, GB/s"),
    metric("ops_per_s", "higher", "operations per second of the main phase", was="iops"),
    metric("p99_us", "lower", "p99 latency of the main phase, us"),
    metric("bytes", "neither", "bytes moved by the main phase"),
    metric("ranks", "neither", "MPI ranks that ran the pattern", unit="count"),
    # per phase: what was verified (iobench.verify) and measured residency
    metric("resident_start_pct", "neither",
           "share of the data set in the page cache when the phase began, %", phase=True,
           optional=True),
    metric("resident_end_pct", "neither",
           "share of the data set in the page cache when the phase ended, %", phase=True),
)
