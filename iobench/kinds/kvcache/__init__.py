"""`iobench infer kvcache`: LLM KV-cache offload to storage, judged against a TTFT budget.

    from iobench.kinds import kvcache
    result = kvcache.run(kvcache.build(model="llama3-8b", capacity="16GiB", users=8,
                                       duration="60s"),
                         kvcache.RunOptions(target=Path("/mnt/nvme/iobench")))

geometry: KV bytes per token and chunk sizes (iobench.model); profiles and trace: what is
replayed (context profiles, Mooncake-format traces); store: the two on-disk layouts
(file-per-chunk, slab); tiers: the RAM and storage tiers (LRU, admission, promotion);
engine: the replay and the TTFT search over iobench.engines' chunk I/O; run: execute/run;
metrics: what results carry; render: the terminal table.
"""

from iobench.kinds.base import RunOptions
from iobench.kinds.kvcache.metrics import METRICS
from iobench.kinds.kvcache.run import execute, run
from iobench.kinds.kvcache.spec import Spec, build

__all__ = ["METRICS", "RunOptions", "Spec", "build", "execute", "run"]
