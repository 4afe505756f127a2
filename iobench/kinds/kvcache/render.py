"""Terminal tables for `infer-kvcache` results (after the common phases table)."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table

from iobench.results import Result


def _f(v: Any, fmt: str = ".3g", unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:{fmt}}{unit}"
    return f"{v}{unit}"


def _ms(v: Any) -> Any:
    return v / 1e3 if isinstance(v, int | float) else None


def tables(result: Result) -> list[RenderableType]:
    m = result.metrics
    t = Table(title=f"KV cache offload: {result.name} ({result.spec.get('layout')}, "
                    f"{m.get('chunk_tokens')} tokens = {m.get('chunk_bytes')} B per chunk)",
              title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("KV bytes per token", _f(m.get("kv_token_bytes"), unit=" B")),
        ("requests (with a restore)", f"{m.get('requests')} ({m.get('requests_restored')})"),
        ("restore per request p50/p90/p99/p99.9",
         " / ".join(_f(_ms(m.get(f"restore_{k}_us")), ".1f")
                    for k in ("p50", "p90", "p99", "p99_9"))
         + " ms"),
        ("storage chunk read p50/p90/p99/p99.9",
         " / ".join(_f(_ms(m.get(f"chunk_read_{k}_us")), ".2f")
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
         f"{_f(m.get('read_per_cached_token_bytes'), '.0f')} / "
         f"{_f(m.get('written_per_cached_token_bytes'), '.0f')} B"),
        ("evictions storage / RAM", f"{m.get('evictions_storage')} / {m.get('evictions_ram')}"),
        ("writes per hour" + (" (DWPD)" if "dwpd" in m else ""),
         _f((m.get("written_per_hour_bytes") or 0) / 1e9, ".2f", " GB/h")
         + (f" ({m['dwpd']:.3g})" if "dwpd" in m else "")),
    ]
    if "max_context_tokens" in m:
        rows.append(("longest context within TTFT at p99",
                     f"{m['max_context_tokens']} tokens "
                     f"(TTFT {_f(_ms(m.get('ttft_us')), 'g')} ms)"))
        rows.append(("speed-up vs recompute (prefill rate is an input)",
                     _f(m.get("speedup_vs_recompute"), ".1f", "x")))
    if "native_to_fio" in m:
        rows.append(("chunk reads native / fio", f"{_f(m['native_chunk_read_gb_per_s'], '.3f')}"
                     f" / {_f(m['fio_chunk_read_gb_per_s'], '.3f')} GB/s "
                     f"(ratio {_f(m['native_to_fio'], '.2f')})"))
    if "fio_pattern_read_gb_per_s" in m:
        rows.append(("chunk pattern through fio: read / write",
                     f"{_f(m['fio_pattern_read_gb_per_s'], '.3f')} / "
                     f"{_f(m.get('fio_pattern_write_gb_per_s'), '.3f')} GB/s, "
                     f"{_f(m.get('fio_pattern_chunk_ops_per_s'), '.1f')} chunk ops/s, read p99 "
                     f"{_f(_ms(m.get('fio_pattern_read_p99_us')), '.2f')} ms"))
    for r in rows:
        t.add_row(*r)
    if m.get("ttft_statement"):
        t.caption = str(m["ttft_statement"])
    return [t]
