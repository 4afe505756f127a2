"""`iobench infer load MODEL`: write a model's weights as real checkpoints hold them
(safetensors, GGUF; bf16..int4) and time loading them, method by method, cold and warm.

    from iobench.kinds import infer_load
    result = infer_load.run(infer_load.build(model="llama3-8b", precisions="bf16,int4",
                                             methods="pread,safetensors", cold=True),
                            infer_load.RunOptions(target=Path("/mnt/nvme/iobench")))
"""

from iobench.kinds.base import RunOptions
from iobench.kinds.infer_load.metrics import METRICS
from iobench.kinds.infer_load.run import execute, run
from iobench.kinds.infer_load.spec import Spec, build

__all__ = ["METRICS", "RunOptions", "Spec", "build", "execute", "run"]
