"""The metrics `infer-kvcache` results carry (beyond every phase's common fields).

Latencies are in microseconds (`_us`; schema 1 had milliseconds, `_ms`: upgraded x1000),
byte figures end in `_bytes`, rates in `_per_s`; hit ratios are ratios (0-1).
"""

from iobench.kinds.base import declare, metric


def _lat(prefix: str, what: str, keys: tuple[str, ...] = ("p50", "p90", "p99", "p99_9"),
         optional: bool = False, v1: bool = True) -> list:
    return [metric(f"{prefix}_{k}_us", "lower", f"{k.replace('_', '.')} {what}, us",
                   was=f"{prefix}_{k}_ms" if v1 else (), was_scale=1000.0 if v1 else 1.0,
                   optional=optional)
            for k in keys]


METRICS = declare(
    "infer-kvcache",
    # what is stored
    metric("kv_token_bytes", "neither", "KV bytes per token (2 x layers x kv_heads/TP x "
           "head_dim x bytes per element)", was="bytes_per_token"),
    metric("chunk_tokens", "neither", "tokens per chunk", unit="count"),
    metric("chunk_bytes", "neither", "bytes per chunk on storage (payload rounded up to "
           "4 KiB)"),
    metric("chunk_payload_bytes", "neither", "KV bytes one chunk holds"),
    # the replay
    metric("replay_s", "neither", "time of the replay, s", was="replay_seconds"),
    metric("requests", "neither", "requests replayed", unit="count"),
    metric("requests_restored", "neither", "requests that restored a stored prefix",
           unit="count"),
    *_lat("restore", "restore latency per request (every chunk of its prefix)"),
    *_lat("chunk_read", "storage chunk read latency"),
    *_lat("chunk_write", "storage chunk write latency"),
    metric("read_bytes", "neither", "storage bytes read in the replay"),
    metric("write_bytes", "neither", "storage bytes written in the replay"),
    metric("read_gb_per_s", "higher", "storage read throughput during the replay, GB/s"),
    metric("write_gb_per_s", "higher", "storage write throughput during the replay, GB/s"),
    metric("chunk_ops_per_s", "higher", "storage chunk reads + writes per second"),
    metric("chunk_reads", "neither", "storage chunk reads", unit="count"),
    metric("chunk_writes", "neither", "storage chunk writes", unit="count"),
    metric("cached_tokens", "neither", "cached tokens served (RAM + storage)", unit="count"),
    metric("cached_tokens_storage", "neither", "cached tokens restored from storage",
           unit="count"),
    metric("cached_tokens_ram", "neither", "cached tokens restored from the RAM tier",
           unit="count"),
    metric("read_per_cached_token_bytes", "lower", "storage bytes read per cached token "
           "served (RAM + storage)", was="bytes_read_per_cached_token"),
    metric("written_per_cached_token_bytes", "lower", "storage bytes written per cached "
           "token served", was="bytes_written_per_cached_token"),
    metric("storage_hit_ratio", "higher", "chunks restored from storage / chunks looked up",
           unit="ratio"),
    metric("ram_hit_ratio", "higher", "chunks restored from the RAM tier / chunks looked up",
           unit="ratio"),
    metric("miss_ratio", "lower", "chunks recomputed / chunks looked up", unit="ratio"),
    metric("chunks_looked_up", "neither", "chunks of every request's context",
           unit="count"),
    metric("storage_hits", "neither", "chunks restored from storage", unit="count"),
    metric("ram_hits", "neither", "chunks restored from the RAM tier", unit="count"),
    metric("misses", "neither", "chunks recomputed (not cached)", unit="count"),
    metric("evictions_storage", "neither", "chunks evicted from the storage tier",
           unit="count"),
    metric("evictions_ram", "neither", "chunks evicted from the RAM tier", unit="count"),
    metric("skipped_full", "neither", "chunks not stored: every storage slot pinned",
           unit="count"),
    metric("skipped_dup", "neither", "chunks not stored: already being written",
           unit="count"),
    metric("written_per_hour_bytes", "lower", "storage writes per hour at the replay's rate "
           "(endurance), bytes", was="write_gb_per_hour", was_scale=1e9),
    metric("storage_tokens_per_s", "higher", "cached tokens per second restored from "
           "storage (storage hits only: RAM-tier hits apart)"),
    metric("ram_tokens_per_s", "neither", "cached tokens per second restored from the RAM "
           "tier"),
    metric("verify_errors", "lower", "restored chunks whose header (or CRC with --verify) "
           "did not match", unit="count"),
    metric("turn_syncs", "neither", "fdatasyncs at the end of turns (slab, --fsync turn)",
           unit="count"),
    metric("trace_lag_p99_us", "lower", "p99 of how late trace requests started "
           "(--trace-speed > 0), us", was="trace_lag_p99_ms", was_scale=1000.0,
           optional=True),
    metric("dwpd", "lower", "drive writes per day at this write rate for --drive-size",
           unit="ratio", optional=True),
    # the TTFT search (--search, the default)
    metric("ttft_us", "neither", "the TTFT budget (--ttft), us", was="ttft_ms",
           was_scale=1000.0, optional=True),
    metric("prefill_rate_tokens_per_s", "neither", "recompute rate (--prefill-rate, an "
           "input)", optional=True),
    metric("ttft_probes", "neither", "each probe: context tokens, p99 (us), passed",
           unit="text", optional=True),
    metric("ttft_search_limit_tokens", "neither", "the search's upper limit, tokens",
           unit="count", optional=True),
    metric("max_context_tokens", "higher", "longest context restoring within --ttft at p99 "
           "(the headline)", unit="count", optional=True),
    metric("restore_p99_at_max_us", "lower", "p99 restore latency at that context, us",
           was="restore_p99_ms_at_max", was_scale=1000.0, optional=True),
    metric("recompute_at_max_us", "neither", "time to recompute that context at "
           "--prefill-rate, us (an input)", was="recompute_ms_at_max", was_scale=1000.0,
           optional=True),
    metric("speedup_vs_recompute", "higher", "recompute time / p99 restore time at that "
           "context", unit="ratio", optional=True),
    metric("restore_at_max_gb_per_s", "higher", "restore throughput at that context, GB/s",
           was="restore_gb_per_s_at_max", optional=True),
    metric("ttft_statement", "neither", "the headline in words", unit="text",
           optional=True),
    # --engine fio: chunk reads side by side, and the replay's chunk pattern as a fio job
    metric("native_chunk_read_gb_per_s", "higher", "native random chunk reads, GB/s",
           optional=True),
    metric("fio_chunk_read_gb_per_s", "higher", "fio random chunk reads, same files, bs "
           "and iodepth, GB/s", optional=True),
    metric("native_to_fio", "higher", "native / fio chunk read throughput", unit="ratio",
           optional=True),
    metric("native_chunk_read_p99_us", "lower", "native chunk read p99 beside fio, us",
           was="native_chunk_read_p99_ms", was_scale=1000.0, optional=True),
    metric("fio_chunk_read_p99_us", "lower", "fio chunk read p99 beside native, us",
           was="fio_chunk_read_p99_ms", was_scale=1000.0, optional=True),
    metric("fio_pattern_read_gb_per_s", "higher", "the replay's chunk pattern as an fio job: "
           "read throughput, GB/s", optional=True),
    metric("fio_pattern_write_gb_per_s", "higher", "the chunk pattern through fio: write "
           "throughput, GB/s", optional=True),
    metric("fio_pattern_chunk_ops_per_s", "higher", "the chunk pattern through fio: chunk reads + "
           "writes per second", optional=True),
    *_lat("fio_pattern_read", "chunk read latency of the pattern through fio",
          ("p50", "p99"), optional=True, v1=False),
    *_lat("fio_pattern_write", "chunk write latency of the pattern through fio",
          ("p50", "p99"), optional=True, v1=False),
    metric("fio_pattern_read_share_pct", "neither", "share of chunk I/Os that are reads in the "
           "pattern fio ran (the replay's), %", optional=True),
    # per phase
    metric("latency_unit", "neither", "what one latency sample is", unit="text",
           phase=True),
    metric("block_size_bytes", "neither", "bytes per I/O (one chunk)", phase=True,
           was="block_size"),
    metric("queue_depth", "neither", "chunk I/Os in flight", unit="count", phase=True),
    metric("chunks", "neither", "chunks in the set", unit="count", phase=True),
    metric("ioengine", "neither", "fio's ioengine", unit="text", phase=True),
    metric("huge_buffers", "neither", "fio's buffers on transparent huge pages, as the "
           "native chunk buffers (chunks of 2 MiB or more)", unit="flag", phase=True,
           optional=True),
    metric("bssplit", "neither", "fio's bssplit (chunk sizes and their shares)",
           unit="text", phase=True),
    metric("rwmixread", "neither", "fio's read share of the pattern, %", unit="count",
           phase=True),
    metric("context_tokens", "neither", "the probe's context, tokens", unit="count",
           phase=True),
    metric("passed", "neither", "the probe's p99 met --ttft", unit="flag", phase=True),
    metric("restore_p99_us", "lower", "the probe's p99 restore latency, us", phase=True,
           was="p99_ms", was_scale=1000.0),
    metric("restores", "neither", "restores the probe timed", unit="count", phase=True),
    metric("ranks", "neither", "MPI ranks merged into the phase", unit="count", phase=True,
           optional=True),
)
