"""The metrics `fio` results carry: per direction over the job's phases."""

from iobench.kinds.base import declare, metric

_D = ("read", "write", "trim")

METRICS = declare(
    "fio",
    *(m for d in _D for m in (
        metric(f"{d}_bytes", "neither", f"{d} bytes moved", optional=True),
        metric(f"{d}_gb_per_s", "higher", f"{d} throughput over the phases' time, GB/s",
               optional=True),
        metric(f"{d}_ops_per_s", "higher", f"{d} operations per second", optional=True,
               was=f"{d}_iops"),
        metric(f"{d}_p99_us", "lower", f"{d} p99 latency merged from fio's histograms, us",
               optional=True),
    )),
    metric("fio_version", "neither", "fio's version", unit="text", optional=True),
)
