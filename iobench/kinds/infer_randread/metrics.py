"""The metrics `infer randread` results carry (beyond every phase's common fields).

A cell's result metrics are keyed `{cell}.<metric>` with cell = randread.bs<B>.qd<Q>
(randread.bs4096.qd4.ops_per_s); the grid's best and worst are plain names.
"""

from iobench.kinds.base import declare, metric

METRICS = declare(
    "infer-randread",
    metric("{cell}.ops_per_s", "higher", "reads per second of one cell (block size x "
           "queue depth)", was="{cell}.iops"),
    metric("{cell}.gb_per_s", "higher", "throughput of one cell, GB/s"),
    metric("{cell}.p99_us", "lower", "p99 read latency of one cell, us"),
    metric("max_ops_per_s", "higher", "best reads per second over the block-size x "
           "queue-depth grid", was="max_iops"),
    metric("p99_us", "lower", "worst p99 read latency over the grid, us"),
    metric("p99_9_us", "lower", "worst p99.9 read latency over the grid, us"),
    # per cell (phase)
    metric("block_bytes", "neither", "bytes per read of the cell", phase=True,
           was="block_size"),
    metric("queue_depth", "neither", "reads in flight the cell asked for (over all ranks)",
           unit="count", phase=True),
    metric("direct", "neither", "O_DIRECT reads (--cache direct)", unit="flag", phase=True),
    metric("threads", "neither", "reader threads (native; 1 for the AIO lane)",
           unit="count", phase=True, optional=True),
    metric("iodepth", "neither", "fio's iodepth of the cell (under mpirun)", unit="count",
           phase=True, optional=True),
    metric("ioengine", "neither", "fio's ioengine (--engine fio)", unit="text", phase=True,
           optional=True),
    metric("files", "neither", "files of the set (under mpirun)", unit="count", phase=True,
           optional=True),
)
