"""Checkpoint files on disk, named as DeepSpeed and PyTorch DCP name them, plus iobench's
manifest of content seeds and per-chunk CRC32C checksums used to verify restores.

DeepSpeed: `global_step{N}/` holding `mp_rank_{MM}_model_states.pt` (ZeRO-0/1/2, data-
parallel rank 0 only) or `zero_pp_rank_{dp}_mp_rank_{MM}_model_states.pt` (ZeRO-3, every
rank), and `[bf16_]zero_pp_rank_{dp}_mp_rank_{MM}_optim_states.pt` (ZeRO >= 1; the bf16_
prefix when the model trains in bf16, as DeepSpeed's engine names it). With pipeline
parallelism the weights are one `layer_{idx:02d}-model_{tp:02d}-model_states.pt` per module
(PipelineModule.ckpt_layer_path) and DeepSpeed refuses ZeRO-2/3 (model.validate). A
`latest` file beside the step directories names the newest. PyTorch DCP: `step_{N}/`
holding one `__{rank}_0.distcp` per rank and a `.metadata` file (here JSON, iobench's
manifest; real DCP pickles its Metadata, so torch cannot load these files: the layout,
names and sizes are what matter to storage).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iobench import safepath
from iobench.errors import UsageError
from iobench.kinds.checkpoint import model
from iobench.kinds.checkpoint.model import ModelSpec, RankShare

MANIFEST_DEEPSPEED = "iobench_checksums.json"
MANIFEST_DCP = ".metadata"
ALIGN = 4096
LAYER_STREAMS = 1 << 40  # content streams of per-layer files, apart from the r * 4 + k ones


@dataclass(frozen=True)
class FileEntry:
    relpath: str  # relative to the checkpoint's step directory
    bytes: int
    rank: int  # world rank that writes it
    stream: int  # content stream (with the checkpoint's seed): reproducible bytes
    kind: str  # model, optim or state (DCP: both)


def step_dir(layout: str, step: int) -> str:
    return f"global_step{step}" if layout == "deepspeed" else f"step_{step}"


def manifest_name(layout: str) -> str:
    return MANIFEST_DEEPSPEED if layout == "deepspeed" else MANIFEST_DCP


def scaled(nbytes: int, scale: float) -> int:
    """Scale a file size, keeping it a whole number of 4 KiB blocks (>= 4 KiB, or 0)."""
    if nbytes == 0:
        return 0
    if scale == 1.0:
        return nbytes
    return max(ALIGN, math.ceil(nbytes * scale / ALIGN) * ALIGN)


def _layer_bytes(mods: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    """Split `total` bytes over the modules in proportion to their parameters, exactly."""
    params = sum(p for _, p in mods)
    out, cum, done = [], 0, 0
    for idx, p in mods:
        cum += p
        upto = total * cum // params
        out.append((idx, upto - done))
        done = upto
    return out


def rank_files(share: RankShare, spec: ModelSpec, layout: str,
               scale: float = 1.0) -> list[FileEntry]:
    """The files one rank writes, in the order it writes them."""
    z = spec.parallelism.zero
    r, dp, mp = share.rank, share.dp, share.mp
    out: list[FileEntry] = []
    if layout == "dcp":
        n = scaled(share.total_bytes, scale)
        if n:
            out.append(FileEntry(f"__{r}_0.distcp", n, r, r * 4, "state"))
        return out
    mb = scaled(share.model_bytes, scale)
    ob = scaled(share.optim_bytes, scale)
    # DeepSpeed engine._get_zero_ckpt_prefix: "bf16_" in front when bf16 is enabled
    optim = f"{'bf16_' if spec.dtype == 'bf16' else ''}zero_pp_rank_{dp}_mp_rank_{mp:02d}" \
            "_optim_states.pt"
    if spec.parallelism.pp > 1:
        # PipelineEngine: each module's weights in layer_{idx:02d}-model_{tp:02d}-
        # model_states.pt (PipelineModule.ckpt_layer_path), written by data-parallel rank
        # 0; mp_rank_XX_model_states.pt keeps the engine state (a stub here) or, without
        # ZeRO, the optimizer. ZeRO-2/3 cannot be (model.validate).
        if share.model_bytes:
            mods = model.stage_modules(spec.model, spec.parallelism.pp)[share.pp]
            for i, (idx, n) in enumerate(_layer_bytes(mods, share.model_bytes)):
                if n:
                    out.append(FileEntry(f"layer_{idx:02d}-model_{share.tp:02d}-model_states.pt",
                                         scaled(n, scale), r, LAYER_STREAMS + r * 65536 + i,
                                         "model"))
            state = scaled(share.optim_bytes, scale) if z == 0 else ALIGN
            out.append(FileEntry(f"mp_rank_{mp:02d}_model_states.pt", state, r, r * 4,
                                 "optim" if z == 0 else "state"))
        if z >= 1 and ob:
            out.append(FileEntry(optim, ob, r, r * 4 + 1, "optim"))
        return out
    if z == 3:
        if mb:
            out.append(FileEntry(f"zero_pp_rank_{dp}_mp_rank_{mp:02d}_model_states.pt", mb, r,
                                 r * 4, "model"))
        if ob:
            out.append(FileEntry(optim, ob, r, r * 4 + 1, "optim"))
    elif z in (1, 2):
        if mb:
            out.append(FileEntry(f"mp_rank_{mp:02d}_model_states.pt", mb, r, r * 4, "model"))
        if ob:
            out.append(FileEntry(optim, ob, r, r * 4 + 1, "optim"))
    else:  # ZeRO-0: DeepSpeed keeps the optimizer inside the model-states file
        n = scaled(share.total_bytes, scale)
        if n:
            out.append(FileEntry(f"mp_rank_{mp:02d}_model_states.pt", n, r, r * 4, "model"))
    return out


def write_manifest(step_path: Path, layout: str, info: dict[str, Any],
                   files: list[FileEntry], crcs: dict[str, list[int]]) -> Path:
    doc = dict(info)
    doc["iobench_checkpoint"] = 1
    doc["files"] = [dict(asdict(f), crc32c=crcs.get(f.relpath, [])) for f in files]
    path = step_path / manifest_name(layout)
    safepath.write_file(path, json.dumps(doc, indent=None, separators=(",", ":")))
    return path


def read_manifest(step_path: Path, layout: str) -> dict[str, Any]:
    path = step_path / manifest_name(layout)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{step_path}: no {manifest_name(layout)}: not a complete iobench "
                         "checkpoint; write one first (drop --no-write)") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: cannot read the checkpoint manifest ({e}); "
                         "rewrite the checkpoint") from None
    if not isinstance(doc, dict) or doc.get("iobench_checkpoint") != 1:
        raise UsageError(f"{path}: not an iobench checkpoint manifest; rewrite the checkpoint")
    return doc


def manifest_files(doc: dict[str, Any]) -> list[tuple[FileEntry, list[int]]]:
    out = []
    for f in doc["files"]:
        crc = list(f.get("crc32c") or [])
        out.append((FileEntry(f["relpath"], int(f["bytes"]), int(f["rank"]), int(f["stream"]),
                              f["kind"]), crc))
    return out
