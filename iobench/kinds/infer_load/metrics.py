"""The metrics `infer load` results carry (beyond every phase's common fields).

Each load's result metrics are keyed `{cell}.<metric>` with cell =
load.<precision>.<method>.<state> (load.bf16.pread.cold.load_s), replica runs
load.<precision>.<method>.replicas<R>; `load_s` / `load_gb_per_s` are the first load
measured (first precision, method and state).
"""

from iobench.kinds.base import declare, metric

METRICS = declare(
    "infer-load",
    metric("load_s", "lower", "time of the first load measured (first precision, method, "
           "state), from open to the last tensor in memory, s", was="load.seconds"),
    metric("load_gb_per_s", "higher", "throughput of that load, GB/s", was="load.gb_per_s"),
    metric("{cell}.load_s", "lower", "time of one load (precision, method, cache state), s",
           was="{cell}.seconds"),
    metric("{cell}.gb_per_s", "higher", "throughput of one load, GB/s (file bytes; touched "
           "bytes for mmap and gguf)"),
    metric("{cell}.first_tensor_s", "lower", "time until the first tensor is in memory, s"),
    metric("{cell}.aggregate_gb_per_s", "higher", "all replicas' bytes over the fleet's "
           "time, GB/s", optional=True),
    metric("{cell}.ready_p99_s", "lower", "p99 over replicas of the time until loaded, s",
           optional=True),
    # per load (phase)
    metric("precision", "neither", "bf16, fp16, fp8, int8 or int4", unit="text", phase=True),
    metric("method", "neither", "read, pread, direct, mmap, safetensors or gguf", unit="text",
           phase=True),
    metric("state", "neither", "cold (page cache dropped) or warm (files cached)",
           unit="text", phase=True),
    metric("format", "neither", "safetensors or gguf", unit="text", phase=True),
    metric("tensors", "neither", "tensors loaded", unit="count", phase=True, optional=True),
    metric("files", "neither", "weight files of the precision", unit="count", phase=True,
           optional=True),
    metric("first_tensor_s", "lower", "time until the first tensor is in memory, s",
           phase=True, optional=True),
    metric("read_bytes", "neither", "bytes read (O_DIRECT widens reads to 4 KiB)",
           phase=True, optional=True, was="bytes_read"),
    metric("buffer_bytes", "lower", "peak bytes of the load's buffers", phase=True,
           optional=True),
    metric("size_ratio", "neither", "the precision's bytes / the first precision's",
           unit="ratio", phase=True, optional=True),
    metric("resident_start_pct", "neither", "share of the weight files in the page cache "
           "when the load began (measured: cachestat or mincore), %", phase=True),
    metric("latency_unit", "neither", "what one latency sample is: per read or per tensor",
           unit="text", phase=True, optional=True),
    metric("throughput_kind", "neither", "bytes moved/s, or touched bytes/s (mmap, gguf: "
           "pages mapped and one byte of each read)", unit="text", phase=True,
           optional=True),
    metric("replicas", "neither", "processes loading at once", unit="count", phase=True,
           optional=True),
    metric("ready_p50_s", "lower", "median over replicas of the time until loaded, s",
           phase=True, optional=True),
    metric("ready_p99_s", "lower", "p99 over replicas of the time until loaded, s",
           phase=True, optional=True),
    metric("ready_max_s", "lower", "slowest replica's time until loaded, s", phase=True,
           optional=True),
    metric("aggregate_gb_per_s", "higher", "all replicas' bytes over the fleet's time, GB/s",
           phase=True, optional=True),
    metric("ranks", "neither", "MPI ranks that ran replicas", unit="count", phase=True,
           optional=True),
    metric("replicas_per_rank", "neither", "replicas each rank ran (a list)", unit="text",
           phase=True, optional=True),
)
