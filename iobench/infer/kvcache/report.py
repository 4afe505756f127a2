"""The metrics `infer kvcache` declares (suite criteria) and its terminal table."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table

from iobench.results import Result

METRICS = {
    "bytes_per_token": "KV bytes per token (2 x layers x kv_heads/TP x head_dim x bytes)",
    "chunk_bytes": "bytes per chunk on storage (chunk tokens x bytes per token, 4 KiB-rounded)",
    "requests": "requests replayed",
    "restore_p50_ms": "p50 restore latency per request (every chunk of its prefix), ms",
    "restore_p90_ms": "p90 restore latency per request, ms",
    "restore_p99_ms": "p99 restore latency per request, ms",
    "restore_p99_9_ms": "p99.9 restore latency per request, ms",
    "chunk_read_p50_ms": "p50 storage chunk read latency, ms",
    "chunk_read_p99_ms": "p99 storage chunk read latency, ms",
    "chunk_read_p99_9_ms": "p99.9 storage chunk read latency, ms",
    "chunk_write_p99_ms": "p99 storage chunk write latency, ms",
    "read_gb_per_s": "storage read throughput during the replay, GB/s",
    "write_gb_per_s": "storage write throughput during the replay, GB/s",
    "chunk_ops_per_s": "storage chunk reads + writes per second",
    "bytes_read_per_cached_token": "storage bytes read per cached token served (RAM+storage)",
    "bytes_written_per_cached_token": "storage bytes written per cached token served",
    "storage_hit_ratio": "chunks restored from storage / chunks looked up",
    "ram_hit_ratio": "chunks restored from the RAM tier / chunks looked up",
    "miss_ratio": "chunks recomputed / chunks looked up",
    "evictions_storage": "chunks evicted from the storage tier",
    "evictions_ram": "chunks evicted from the RAM tier",
    "write_gb_per_hour": "storage writes, GB per hour (endurance)",
    "dwpd": "drive writes per day at this write rate for --drive-size",
    "storage_tokens_per_s": "cached tokens per second restored from storage (storage hits only)",
    "ram_tokens_per_s": "cached tokens per second restored from the RAM tier",
    "trace_lag_p99_ms": "p99 of how late trace requests started (--trace-speed > 0), ms",
    "verify_errors": "restored chunks whose header (or CRC with --verify) did not match",
    "max_context_tokens": "longest context restoring within --ttft at p99 (the headline)",
    "restore_p99_ms_at_max": "p99 restore latency at that context, ms",
    "recompute_ms_at_max": "time to recompute that context at --prefill-rate, ms (an input)",
    "speedup_vs_recompute": "recompute time / p99 restore time at that context",
    "native_chunk_read_gb_per_s": "native random chunk reads (--engine fio comparison), GB/s",
    "fio_chunk_read_gb_per_s": "fio random chunk reads, same files, bs and iodepth, GB/s",
    "native_to_fio": "native / fio chunk read throughput",
    "native_chunk_read_p99_ms": "native chunk read p99 in the comparison, ms",
    "fio_chunk_read_p99_ms": "fio chunk read p99 in the comparison, ms",
}


def _f(v: Any, fmt: str = ".3g", unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:{fmt}}{unit}"
    return f"{v}{unit}"


def tables(result: Result) -> list[RenderableType]:
    m = result.metrics
    t = Table(title=f"KV cache offload: {result.name} ({result.spec.get('layout')}, "
                    f"{m.get('chunk_tokens')} tokens = {m.get('chunk_bytes')} B per chunk)",
              title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("KV bytes per token", _f(m.get("bytes_per_token"), unit=" B")),
        ("requests (with a restore)", f"{m.get('requests')} ({m.get('requests_restored')})"),
        ("restore per request p50/p90/p99/p99.9",
         " / ".join(_f(m.get(f"restore_{k}_ms"), ".1f") for k in ("p50", "p90", "p99", "p99_9"))
         + " ms"),
        ("storage chunk read p50/p90/p99/p99.9",
         " / ".join(_f(m.get(f"chunk_read_{k}_ms"), ".2f")
                    for k in ("p50", "p90", "p99", "p99_9")) + " ms"),
        ("storage read / write", f"{_f(m.get('read_gb_per_s'), '.3f')} / "
                                 f"{_f(m.get('write_gb_per_s'), '.3f')} GB/s"),
        ("chunk ops/s", _f(m.get("chunk_ops_per_s"), ".1f")),
        ("hit ratio storage / RAM / miss", f"{_f(m.get('storage_hit_ratio'), '.3f')} / "
                                           f"{_f(m.get('ram_hit_ratio'), '.3f')} / "
                                           f"{_f(m.get('miss_ratio'), '.3f')}"),
        ("cached tokens/s from storage (RAM apart)",
         f"{_f(m.get('storage_tokens_per_s'), '.0f')} ({_f(m.get('ram_tokens_per_s'), '.0f')})"),
        ("bytes read / written per cached token",
         f"{_f(m.get('bytes_read_per_cached_token'), '.0f')} / "
         f"{_f(m.get('bytes_written_per_cached_token'), '.0f')} B"),
        ("evictions storage / RAM", f"{m.get('evictions_storage')} / {m.get('evictions_ram')}"),
        ("writes per hour" + (" (DWPD)" if "dwpd" in m else ""),
         _f(m.get("write_gb_per_hour"), ".2f", " GB/h")
         + (f" ({m['dwpd']:.3g})" if "dwpd" in m else "")),
    ]
    if "max_context_tokens" in m:
        rows.append(("longest context within TTFT at p99",
                     f"{m['max_context_tokens']} tokens (TTFT {_f(m.get('ttft_ms'), 'g')} ms)"))
        rows.append(("speed-up vs recompute (prefill rate is an input)",
                     _f(m.get("speedup_vs_recompute"), ".1f", "x")))
    if "native_to_fio" in m:
        rows.append(("chunk reads native / fio", f"{_f(m['native_chunk_read_gb_per_s'], '.3f')}"
                     f" / {_f(m['fio_chunk_read_gb_per_s'], '.3f')} GB/s "
                     f"(ratio {_f(m['native_to_fio'], '.2f')})"))
    for r in rows:
        t.add_row(*r)
    if m.get("ttft_statement"):
        t.caption = str(m["ttft_statement"])
    return [t]
