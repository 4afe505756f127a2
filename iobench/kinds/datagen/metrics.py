"""The metrics `datagen` results carry: a generation run's (files and bytes written, the
data set it completed) and a --verify run's (files checked, files bad)."""

from iobench.kinds.base import declare, metric

METRICS = declare(
    "datagen",
    # a generation run
    metric("files", "neither", "files written by this run", unit="count"),
    metric("bytes", "neither", "bytes written by this run (--verify: bytes read)"),
    metric("gb_per_s", "higher",
           "write throughput from the first write to the last fsync, GB/s (10^9 B/s)"),
    metric("files_skipped", "neither", "files already complete from an earlier run",
           unit="count"),
    metric("files_total", "neither", "files in the data set", unit="count"),
    metric("dataset_bytes", "neither", "bytes of the complete files in the data set "
           "(data files and index sidecars)"),
    metric("dataset_data_bytes", "neither",
           "bytes of the complete data files (no index sidecars): what sizing promises"),
    metric("complete", "higher", "every file of the data set is written and synced",
           unit="flag"),
    metric("worker_max_rss_bytes", "lower", "peak resident memory of one worker process"),
    metric("directory", "neither", "where the data set is", unit="text"),
    metric("dataset_requested_bytes", "neither", "--dataset-size: the sample bytes asked for",
           was="dataset_size_requested", optional=True),
    metric("dataset_to_ram", "neither", "--auto-size: data bytes written / host RAM",
           unit="ratio", optional=True),
    # a --verify run (it also carries `bytes`: bytes read and checked)
    metric("files_checked", "neither", "files checked against the manifest (--verify)",
           unit="count", optional=True),
    metric("files_bad", "lower", "files that failed verification (--verify)", unit="count",
           optional=True),
    # the `datagen` phase
    metric("files", "neither", "files written (verify phase: files checked)", unit="count",
           phase=True),
    metric("bytes", "neither", "bytes written", phase=True),
    metric("gb_per_s", "higher", "write throughput, GB/s", phase=True),
    metric("files_skipped", "neither", "files already complete from an earlier run",
           unit="count", phase=True),
    metric("files_total", "neither", "files in the data set", unit="count", phase=True),
    metric("samples_total", "neither", "samples in the data set", unit="count", phase=True),
    metric("dataset_bytes", "neither", "bytes of the complete files in the data set",
           phase=True),
    metric("dataset_data_bytes", "neither", "bytes of the complete data files", phase=True),
    metric("complete", "higher", "every file of the data set is written and synced",
           unit="flag", phase=True),
    metric("jobs", "neither", "worker processes per rank", unit="count", phase=True),
    metric("worker_max_rss_bytes", "lower", "peak resident memory of one worker process",
           phase=True),
    metric("ranks", "neither", "MPI ranks that wrote", unit="count", phase=True),
    # the `verify` phase
    metric("bad", "lower", "files that failed verification", unit="count", phase=True),
)
