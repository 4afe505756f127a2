"""The `iobench infer` command group. Its commands are the inference kinds' own
(iobench/kinds/<kind>/cli.py `command`), added to it by iobench.cli's KIND_GROUPS table."""

from __future__ import annotations

import click


@click.group("infer")
def group() -> None:
    """Inference I/O: small random reads, and model-weight loading (safetensors, GGUF)."""
