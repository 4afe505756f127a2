"""The metrics `checkpoint` results carry (beyond every phase's common fields)."""

from iobench.kinds.base import declare, metric


def _io(prefix: str, what: str) -> list:
    """The figures of the write or read (restore) phases, averaged over the checkpoints."""
    return [
        metric(f"{prefix}_s", "lower", f"{what} duration (slowest rank), mean over the "
               "checkpoints, s", was=f"{prefix}_seconds"),
        metric(f"{prefix}_gb_per_s", "higher", f"{what} throughput: all bytes / all "
               "durations, GB/s"),
        metric(f"{prefix}_rank_min_gb_per_s", "higher", f"{what} throughput of the slowest "
               "rank (MLPerf's rule), GB/s"),
        metric(f"{prefix}_aggregate_gb_per_s", "higher", f"{what} bytes / (last end - first "
               "start), mean over the checkpoints, GB/s"),
        metric(f"{prefix}_lat_p50_ns", "lower", f"{what} call latency p50 (merged "
               "histogram), ns", optional=True),
        metric(f"{prefix}_lat_p99_ns", "lower", f"{what} call latency p99 (merged "
               "histogram), ns", optional=True),
        metric(f"{prefix}_first_s", "lower", f"first checkpoint's {what} duration, s",
               was=f"{prefix}_first_seconds"),
        metric(f"{prefix}_last_s", "lower", f"last checkpoint's {what} duration, s",
               was=f"{prefix}_last_seconds"),
        metric(f"{prefix}_last_vs_first", "higher", f"{what} throughput of the last "
               "checkpoint / the first", unit="ratio"),
    ]


METRICS = declare(
    "checkpoint",
    metric("checkpoint_bytes", "neither", "bytes of one checkpoint (all ranks)"),
    metric("ranks", "neither", "rank processes that wrote and read", unit="count"),
    metric("files_per_checkpoint", "neither", "files of one checkpoint", unit="count"),
    metric("params", "neither", "the model's parameters (iobench.model.parameters)",
           unit="count"),
    *_io("write", "write + fsync"),
    *_io("read", "restore (read + CRC32C verify)"),
    metric("write_fsync_s", "lower", "fsync time of the slowest rank, mean over the "
           "checkpoints, s", was="write_fsync_seconds", optional=True),
    metric("stall_s", "lower", "--async: time training stalls (snapshot into the staging "
           "buffer), slowest rank, s", was="stall_seconds", optional=True),
    metric("persist_s", "lower", "--async: time until the checkpoint is on storage "
           "(= write_s), s", was="persist_seconds", optional=True),
    metric("verify_errors", "lower", "files whose restore did not match what was written",
           unit="count"),
    metric("mtbf_s", "neither", "the job's mean time between failures used, s",
           was="mtbf_hours", was_scale=3600.0),
    metric("mtbf_source", "neither", "where the MTBF came from", unit="text"),
    metric("young_interval_s", "neither", "Young's optimal checkpoint interval "
           "sqrt(2 delta M) for the measured write_s, s"),
    metric("daly_interval_s", "neither", "Daly's optimal checkpoint interval, s"),
    metric("waste_pct", "lower", "training time lost at Young's interval (writing + redone "
           "work + restore), %", was="waste_fraction", was_scale=100.0),
    metric("waste_daly_pct", "lower", "training time lost at Daly's interval, %"),
    metric("async_young_interval_s", "neither", "--async: Young's interval for the stall "
           "only, s", optional=True),
    metric("async_waste_pct", "lower", "--async: training time lost when only the stall "
           "blocks training, %", optional=True),
    # per phase (write-N, read-N)
    metric("checkpoint", "neither", "which checkpoint of the run (1..count)", unit="count",
           phase=True),
    metric("step", "neither", "the training step the checkpoint is named for",
           unit="count", phase=True),
    metric("path", "neither", "the checkpoint's step directory", unit="text", phase=True),
    metric("async", "neither", "--async: stall and persist reported apart", unit="flag",
           phase=True, optional=True),
    metric("duration_max_s", "lower", "duration of the slowest rank, s", phase=True),
    metric("rank_min_bytes_per_s", "higher", "throughput of the slowest rank, B/s",
           phase=True),
    metric("aggregate_bytes_per_s", "higher", "bytes / (last end - first start), B/s",
           phase=True),
    metric("span_s", "lower", "last rank's end - first rank's start, s", phase=True,
           optional=True),
    metric("ranks", "neither", "per-rank rows: rank, bytes, files, seconds, bytes_per_s, "
           "fsync_s, stall_s (writes), source_rank (reads), peak_rss_bytes, base_rss_bytes, "
           "buffer_bytes", unit="text", phase=True),
    metric("fsync_max_s", "lower", "fsync time of the slowest rank, s", phase=True,
           optional=True),
    metric("fsync_latency_ns", "lower", "fsync latency summary (merged histogram), ns",
           phase=True, optional=True),
    metric("stall_max_s", "lower", "time until the slowest rank's state was staged, s",
           phase=True, optional=True),
    metric("rank_peak_rss_growth_max_bytes", "lower", "largest growth of a rank's peak "
           "RSS over its start", phase=True, optional=True,
           was="rank_peak_rss_growth_bytes_max"),
    metric("rank_shift", "neither", "restores: rank r read rank r+K's files", unit="count",
           phase=True, optional=True),
    metric("verified_files", "neither", "restores: files checked against their CRC32C",
           unit="count", phase=True, optional=True),
    metric("verify_errors", "lower", "restores: files that did not match", unit="count",
           phase=True, optional=True),
    metric("mismatches", "neither", "restores: the first 20 mismatches (path, offset, "
           "what)", unit="text", phase=True, optional=True),
    metric("jobfile", "neither", "--engine fio: the job file fio ran", unit="text",
           phase=True, optional=True),
    metric("includes_end_fsync", "neither", "--engine fio: the time includes end_fsync",
           unit="flag", phase=True, optional=True),
)

# per-rank rows (phase metrics "ranks"): their renamed fields, for readers of v1 results
RANK_ROW_RENAMES = {"fsync_seconds": "fsync_s", "stall_seconds": "stall_s"}
