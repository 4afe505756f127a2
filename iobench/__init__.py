"""iobench: a storage I/O benchmark for AI workloads (training, checkpoints, inference).

Every command is also a Python call (docs/reference/python-api.md)::

    from pathlib import Path
    import iobench

    spec = iobench.io.build(pattern="randread", size="1GiB", block_size="4k",
                            queue_depth=32, cache="direct")
    result = iobench.io.run(spec, iobench.RunOptions(target=Path("/mnt/nvme/iobench")))
    print(result.status, result.metrics["ops_per_s"])

`iobench.<kind>` is the kind's package (iobench.kinds.<kind>), imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# attribute -> package under iobench.kinds (the Python names of the kinds)
_KIND_ATTRS = {"io": "io", "fio": "fio", "datagen": "datagen", "train": "train",
               "checkpoint": "checkpoint", "infer_load": "infer_load",
               "infer_randread": "infer_randread", "kvcache": "kvcache", "vector": "vector"}


def __getattr__(name: str) -> Any:
    if name in _KIND_ATTRS:
        return importlib.import_module(f"iobench.kinds.{_KIND_ATTRS[name]}")
    if name in ("RunOptions", "Ctx"):
        from iobench.kinds import base

        return getattr(base, name)
    raise AttributeError(f"module 'iobench' has no attribute {name!r}")
