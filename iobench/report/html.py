"""One self-contained HTML report (inline CSS and SVG, no scripts, no network) for results.

Charts are hand-written SVG rather than matplotlib: the report then needs nothing beyond
the core dependencies, renders identically everywhere, stays small (a few hundred KB for
a suite) and its text is real text a browser can search and a test can read.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from iobench.results import Result
from iobench.stats import Histogram
from iobench.units import format_bytes, format_count, format_ns

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22")
_VERDICT_COLOUR = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INCOMPLETE": "#9a6700",
                   "SKIP": "#9a6700", "ok": "#1a7f37", "partial": "#9a6700",
                   "failed": "#cf222e", "error": "#cf222e", "interrupted": "#9a6700"}

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI','DejaVu Sans',sans-serif;margin:0;
 color:#1f2328;background:#f6f8fa}
main{max-width:1120px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:26px;margin:8px 0 4px} h2{font-size:20px;margin:28px 0 6px;
 border-bottom:2px solid #d0d7de;padding-bottom:4px} h3{font-size:15px;margin:18px 0 6px}
.meta{color:#57606a;font-size:13px;margin:2px 0}
.banner{border-radius:8px;padding:14px 18px;margin:12px 0;color:#fff;font-size:22px;
 font-weight:700}
.banner small{font-size:14px;font-weight:400;display:block;margin-top:4px}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;color:#fff;font-size:12px;
 font-weight:600;vertical-align:middle}
table{border-collapse:collapse;font-size:13px;background:#fff;margin:4px 0 10px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right}
th{background:#eaeef2} td.l,th.l{text-align:left}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;
 margin:10px 0}
.warn{color:#9a6700} .cache{font-size:13px}
.legend{font-size:12px;margin:2px 0 8px} .legend span{margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
.charts{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:8px}
figcaption{font-size:13px;font-weight:600;margin-bottom:2px}
details{margin:8px 0} summary{cursor:pointer;font-weight:600}
svg text{font-family:inherit}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:,.0f}" if abs(v) >= 10000 else f"{v:.4g}"
    return str(v)


_TEXT_COLUMNS = ("note", "command", "verdict", "status", "required")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    """A table; the first `left` columns (names) and text columns are left-aligned."""
    lcol = [i < left or h in _TEXT_COLUMNS for i, h in enumerate(headers)]
    out = ["<table><tr>"]
    out += [f"<th class='{'l' if lcol[i] else ''}'>{_e(h)}</th>" for i, h in enumerate(headers)]
    out.append("</tr>")
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            cls = "l" if i < len(lcol) and lcol[i] else ""
            text = cell if isinstance(cell, _Raw) else _e(cell)
            out.append(f"<td class='{cls}'>{text}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


class _Raw(str):
    """Markup already escaped (a badge inside a table cell)."""


def _badge(state: str) -> _Raw:
    colour = _VERDICT_COLOUR.get(state, "#57606a")
    return _Raw(f"<span class='badge' style='background:{colour}'>{_e(state)}</span>")


# --- charts --------------------------------------------------------------------------------
def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not hi > lo:
        hi = lo + 1.0
    span = hi - lo
    mag = 10 ** math.floor(math.log10(span / n))
    step = mag
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if span / step <= n:
            break
    t = math.floor(lo / step) * step
    ticks = []
    while t < hi + step * 0.999:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _legend(labels: Sequence[str]) -> str:
    items = "".join(f"<span><i style='background:{PALETTE[i % len(PALETTE)]}'></i>{_e(lab)}"
                    f"</span>" for i, lab in enumerate(labels))
    return f"<div class='legend'>{items}</div>"


def line_chart(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], *, title: str,
               x_label: str, y_label: str, log_x: bool = False, y_max: float | None = None,
               shade: Sequence[tuple[float, float]] = (), shade_label: str = "",
               width: int = 500, height: int = 250) -> str:
    """An SVG line chart (optionally log x) with shaded x-ranges, as a <figure>."""
    pts = [(x, y) for _, s in series for x, y in s if not log_x or x > 0]
    if not pts:
        return ""
    ml, mr, mt, mb = 62, 30, 10, 40
    pw, ph = width - ml - mr, height - mt - mb
    xs = [x for x, _ in pts]
    x_lo, x_hi = min(xs), max(xs)
    if log_x:
        lx_lo = math.floor(math.log10(x_lo))
        lx_hi = max(math.ceil(math.log10(x_hi)), lx_lo + 1)
        xticks = [10.0 ** e for e in range(lx_lo, lx_hi + 1)]

        def sx(x: float) -> float:
            return ml + (math.log10(max(x, 10.0 ** lx_lo)) - lx_lo) / (lx_hi - lx_lo) * pw
    else:
        for _a, b in shade:
            x_hi = max(x_hi, b)
        xticks = _nice_ticks(min(0.0, x_lo), x_hi)
        x0, x1 = xticks[0], xticks[-1]

        def sx(x: float) -> float:
            return ml + (x - x0) / (x1 - x0) * pw
    top = y_max if y_max is not None else max(y for _, y in pts) * 1.05 or 1.0
    yticks = _nice_ticks(0.0, top)
    y1 = yticks[-1]

    def sy(y: float) -> float:
        return mt + ph - y / y1 * ph

    o = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
         f"viewBox='0 0 {width} {height}' role='img'><title>{_e(title)}</title>"]
    for a, b in shade:
        xa, xb = sx(max(a, 0.0)), sx(b)
        o.append(f"<rect x='{xa:.1f}' y='{mt}' width='{max(xb - xa, 1.5):.1f}' height='{ph}' "
                 "fill='#f2cc60' fill-opacity='0.35'/>")
    for t in yticks:
        y = sy(t)
        o.append(f"<line x1='{ml}' x2='{ml + pw}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e1e4e8'/>"
                 f"<text x='{ml - 6}' y='{y + 4:.1f}' font-size='11' text-anchor='end'>"
                 f"{_tick(t)}</text>")
    for t in xticks:
        x = sx(t)
        lab = _tick(t) if not log_x else _tick(t)
        o.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{mt}' y2='{mt + ph}' stroke='#eef0f2'/>"
                 f"<text x='{x:.1f}' y='{mt + ph + 15}' font-size='11' text-anchor='middle'>"
                 f"{lab}</text>")
    o.append(f"<rect x='{ml}' y='{mt}' width='{pw}' height='{ph}' fill='none' "
             "stroke='#8c959f'/>")
    for i, (_, s) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        use = [(x, y) for x, y in s if not log_x or x > 0]
        if not use:
            continue
        coords = [f"{sx(x):.1f},{sy(y):.1f}" for x, y in use]
        if len(use) == 1:
            o.append(f"<circle cx='{sx(use[0][0]):.1f}' cy='{sy(use[0][1]):.1f}' r='3' "
                     f"fill='{colour}'/>")
        else:
            o.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.8' "
                     f"points='{' '.join(coords)}'/>")
    o.append(f"<text x='{ml + pw / 2:.0f}' y='{height - 6}' font-size='12' "
             f"text-anchor='middle'>{_e(x_label)}</text>")
    o.append(f"<text transform='translate(14 {mt + ph / 2:.0f}) rotate(-90)' font-size='12' "
             f"text-anchor='middle'>{_e(y_label)}</text></svg>")
    labels = [lab for lab, _ in series]
    legend = _legend(labels) if len(labels) > 1 or shade else ""
    if shade and shade_label:
        legend = legend.replace("</div>", "<span><i style='background:#f2cc60'></i>"
                                f"{_e(shade_label)}</span></div>")
    return (f"<figure style='width:{width}px'><figcaption>{_e(title)}</figcaption>"
            f"{''.join(o)}{legend}</figure>")


def _heat_colour(frac: float) -> str:
    """White -> blue ramp for 0..1."""
    frac = min(max(frac, 0.0), 1.0)
    r = int(247 - frac * (247 - 31))
    g = int(251 - frac * (251 - 119))
    b = int(255 - frac * (255 - 180))
    return f"rgb({r},{g},{b})"


def heatmap(rows: Sequence[str], cols: Sequence[str], cells: dict[tuple[int, int], float],
            labels: dict[tuple[int, int], str], *, title: str, row_label: str,
            col_label: str) -> str:
    """An SVG heat-map: colour = value (log scale), text = label per cell."""
    if not cells:
        return ""
    cw, ch, ml, mt = 118, 42, 84, 34
    width, height = ml + cw * len(cols) + 10, mt + ch * len(rows) + 10
    vals = [v for v in cells.values() if v > 0]
    lo, hi = (math.log10(min(vals)), math.log10(max(vals))) if vals else (0.0, 1.0)
    o = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
         f"viewBox='0 0 {width} {height}' role='img'><title>{_e(title)}</title>",
         f"<text x='{ml + cw * len(cols) / 2:.0f}' y='12' font-size='12' "
         f"text-anchor='middle'>{_e(col_label)}</text>",
         f"<text x='4' y='{mt - 8}' font-size='12'>{_e(row_label)}</text>"]
    for j, c in enumerate(cols):
        o.append(f"<text x='{ml + cw * j + cw / 2:.0f}' y='{mt - 6}' font-size='12' "
                 f"text-anchor='middle' font-weight='600'>{_e(c)}</text>")
    for i, r in enumerate(rows):
        y = mt + ch * i
        o.append(f"<text x='{ml - 8}' y='{y + ch / 2 + 4:.0f}' font-size='12' "
                 f"text-anchor='end' font-weight='600'>{_e(r)}</text>")
        for j in range(len(cols)):
            x = ml + cw * j
            v = cells.get((i, j))
            if v is None:
                fill, txt = "#f6f8fa", "-"
            else:
                frac = (math.log10(v) - lo) / (hi - lo) if v > 0 and hi > lo else 1.0
                fill, txt = _heat_colour(frac), labels.get((i, j), _num(v))
            dark = fill != "#f6f8fa" and v is not None and hi > lo and v > 0 and \
                (math.log10(v) - lo) / (hi - lo) > 0.6
            o.append(f"<rect x='{x}' y='{y}' width='{cw - 2}' height='{ch - 2}' fill='{fill}' "
                     f"stroke='#d0d7de'/><text x='{x + cw / 2 - 1:.0f}' y='{y + ch / 2 + 4:.0f}' "
                     f"font-size='11' text-anchor='middle' fill='{'#fff' if dark else '#1f2328'}'>"
                     f"{_e(txt)}</text>")
    o.append("</svg>")
    return f"<figure><figcaption>{_e(title)}</figcaption>{''.join(o)}</figure>"


def bar_chart(bars: Sequence[tuple[str, float, int]], *, title: str, unit: str,
              groups: Sequence[str] = ()) -> str:
    """Horizontal bars: (label, value, colour index); `groups` names the colours."""
    if not bars:
        return ""
    ml, bh, width = 190, 20, 500
    pw = width - ml - 70
    height = 10 + bh * len(bars) + 28
    hi = max(v for _, v, _ in bars) or 1.0
    ticks = _nice_ticks(0.0, hi)
    top = ticks[-1]
    o = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
         f"viewBox='0 0 {width} {height}' role='img'><title>{_e(title)}</title>"]
    for t in ticks:
        x = ml + t / top * pw
        o.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='6' y2='{height - 22}' stroke='#eef0f2'/>"
                 f"<text x='{x:.1f}' y='{height - 8}' font-size='11' text-anchor='middle'>"
                 f"{_tick(t)}</text>")
    for i, (label, v, c) in enumerate(bars):
        y = 8 + i * bh
        w = max(v / top * pw, 1.0)
        o.append(f"<text x='{ml - 6}' y='{y + 13}' font-size='11' text-anchor='end'>"
                 f"{_e(label)}</text><rect x='{ml}' y='{y + 2}' width='{w:.1f}' "
                 f"height='{bh - 5}' fill='{PALETTE[c % len(PALETTE)]}'/>"
                 f"<text x='{ml + w + 4:.1f}' y='{y + 13}' font-size='11'>{_num(v)} "
                 f"{_e(unit)}</text>")
    o.append("</svg>")
    legend = _legend(groups) if groups else ""
    return (f"<figure style='width:{width}px'><figcaption>{_e(title)}</figcaption>"
            f"{''.join(o)}{legend}</figure>")


# --- sections ---------------------------------------------------------------------------------
def timeline_chart(r: Result) -> str:
    series: list[tuple[str, list[tuple[float, float]]]] = []
    shade: list[tuple[float, float]] = []
    for p in r.phases:
        tl = p.get("timeline")
        if not tl or not tl.get("bytes"):
            continue
        iv = float(tl.get("interval_s") or 1.0)
        bins = tl["bytes"]
        pts: list[tuple[float, float]] = []
        for i, b in enumerate(bins):
            # each bin's rate holds over its interval; the last one is cut short where the
            # phase ended inside it, so divide by the time it really covered
            dur = iv
            if i == len(bins) - 1 and p.get("seconds"):
                dur = min(iv, max(float(p["seconds"]) - i * iv, iv / 100))
            rate = b / dur / 1e9
            pts += [(i * iv, rate), (i * iv + dur, rate)]
        series.append((p["name"], pts))
        for w in (p.get("metrics") or {}).get("checkpoint_windows_s") or []:
            if isinstance(w, list | tuple) and len(w) == 2:
                shade.append((float(w[0]), float(w[1])))
    if not series:
        return ""
    return line_chart(series[:10], title="Throughput over time", x_label="seconds from phase "
                      "start", y_label="GB/s", shade=shade, shade_label="checkpoint write")


def cdf_chart(r: Result) -> str:
    series = []
    for p in r.phases:
        h = p.get("histogram")
        if not h or not h.get("count"):
            continue
        try:
            pts = Histogram.from_dict(h).cdf_points()
        except (ValueError, KeyError):
            continue
        if not pts:
            continue
        # start the curve at 0% at the first bucket, so it rises from the axis
        pts = [(pts[0][0], 0.0), *pts]
        series.append((p["name"], [(x / 1e3, y * 100) for x, y in pts]))
    if not series:
        return ""
    return line_chart(series[:10], title="Latency CDF per phase", x_label="latency, us (log)",
                      y_label="% of I/Os <= latency", log_x=True, y_max=100.0)


def randread_heatmap(r: Result) -> str:
    cells = [p for p in r.phases
             if "block_size" in (p.get("metrics") or {}) and "queue_depth" in p["metrics"]]
    if not cells:
        return ""
    bss = sorted({p["metrics"]["block_size"] for p in cells})
    qds = sorted({p["metrics"]["queue_depth"] for p in cells})
    values: dict[tuple[int, int], float] = {}
    labels: dict[tuple[int, int], str] = {}
    for p in cells:
        k = (bss.index(p["metrics"]["block_size"]), qds.index(p["metrics"]["queue_depth"]))
        values[k] = float(p.get("ops_per_s") or 0.0)
        labels[k] = (f"{format_count(p.get('ops_per_s') or 0)} / "
                     f"{format_ns((p.get('latency_ns') or {}).get('p99'))}")
    return heatmap([format_bytes(b) for b in bss], [f"QD {q}" for q in qds], values, labels,
                   title="Random reads: IOPS / p99 latency (colour: IOPS, log scale)",
                   row_label="block size", col_label="queue depth")


def load_chart(r: Result) -> str:
    loads = [p for p in r.phases if "precision" in (p.get("metrics") or {})
             and "replicas" not in p["metrics"]]
    if not loads:
        return ""
    precisions = list(dict.fromkeys(p["metrics"]["precision"] for p in loads))
    # grouped by method and cache state, one colour per precision, so sizes line up
    order = sorted(loads, key=lambda p: (p["metrics"].get("method", ""),
                                         p["metrics"].get("state", ""),
                                         precisions.index(p["metrics"]["precision"])))
    bars = [(f"{p['metrics'].get('method', '')} {p['metrics'].get('state', '')} "
             f"{p['metrics']['precision']}", float(p["seconds"]),
             precisions.index(p["metrics"]["precision"])) for p in order]
    return bar_chart(bars, title="Model load time by precision (lower is better)",
                     unit="s", groups=precisions)


def _cache_html(r: Result) -> str:
    c = r.cache
    if not c:
        return ""
    flag = (" <b class='warn'>MAY BE FROM RAM: not a storage figure</b>"
            if c.get("may_be_cached") else "")
    parts = [f"policy <b>{_e(c.get('policy'))}</b> via <b>{_e(c.get('method'))}</b>"]
    if c.get("note"):
        parts.append(_e(c["note"]))
    return f"<p class='cache'>cache: {'; '.join(parts)}{flag}</p>"


def _flat(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        elif isinstance(v, list):
            out.append((f"{prefix}{k}", ", ".join(map(str, v))))
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _phases_html(phases: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for p in phases:
        lat = p.get("latency_ns") or {}
        rows.append((p["name"], p.get("engine", ""), format_bytes(p["bytes"]),
                     f"{p['seconds']:.3f}", f"{p['bytes_per_s'] / 1e9:.3f}",
                     f"{p['bytes_per_s'] / 2**30:.3f}", format_count(p.get("ops_per_s") or 0.0),
                     format_ns(lat.get("p50")), format_ns(lat.get("p99")),
                     format_ns(lat.get("p99_9")), format_ns(lat.get("max"))))
    return _table(("phase", "engine", "bytes", "s", "GB/s", "GiB/s", "IOPS", "p50", "p99",
                   "p99.9", "max"), rows, left=2)


_SUITE_KEYS = ("criteria", "steps")


def _metrics_html(m: Mapping[str, Any]) -> str:
    rows = [(k, _num(v)) for k, v in m.items()
            if k not in _SUITE_KEYS and not isinstance(v, dict | list)]
    if not rows:
        return ""
    return "<details><summary>Metrics (" + str(len(rows)) + ")</summary>" + \
        _table(("metric", "value"), rows) + "</details>"


def result_section(label: str, r: Result, heading: str, anchor: str = "") -> str:
    ident = f" id='{_e(anchor)}'" if anchor else ""
    o = [f"<section{ident}><h2>{_e(heading)} {_badge(r.status)}</h2>",
         f"<p class='meta'>{_e(label)} &middot; engine {_e(r.engine)} &middot; started "
         f"{_e(r.started_utc)} &middot; iobench {_e(r.iobench_version)}</p>"]
    if r.command_line:
        o.append(f"<p class='meta'><code>{_e(' '.join(r.command_line))}</code></p>")
    if r.reason:
        o.append(f"<p class='warn'>{_e(r.reason)}</p>")
    o.append(_cache_html(r))
    o += [f"<p class='warn'>warning: {_e(w)}</p>" for w in r.warnings]
    if r.phases:
        o.append(_phases_html(r.phases))
        o.append("<p class='meta'>GB/s = 10^9 B/s, GiB/s = 2^30 B/s; latency per I/O</p>")
    charts = [c for c in (randread_heatmap(r), load_chart(r), timeline_chart(r), cdf_chart(r),
                          *kind_sections(r)) if c]
    if charts:
        o.append(f"<div class='charts'>{''.join(charts)}</div>")
    o.append(_metrics_html(r.metrics))
    o.append("</section>")
    return "".join(o)


def kind_sections(r: Result) -> list[str]:
    """A kind's own HTML sections: iobench.kinds.<kind>.render.html(result), if it has one
    (self-contained HTML/SVG strings, placed with the charts)."""
    from iobench import kinds

    mod = kinds.module(r.kind, "render")
    fn = getattr(mod, "html", None) if mod is not None else None
    return list(fn(r)) if fn is not None else []


def _sysinfo_html(r: Result) -> str:
    if not r.sysinfo:
        return ""
    return ("<details><summary>System: host, kernel, CPU, RAM, filesystem, device, tools"
            "</summary>" + _table(("key", "value"), _flat(r.sysinfo), left=2) + "</details>")


def _sysinfo_line(r: Result) -> str:
    s = r.sysinfo
    tgt = s.get("target") or {}
    bits = [str(v) for v in (
        s.get("host"), s.get("cpu_model"),
        f"{s.get('cpu_count')} CPUs" if s.get("cpu_count") else None,
        f"{s['ram_bytes'] / 2**30:.0f} GiB RAM" if s.get("ram_bytes") else None,
        s.get("kernel"), tgt.get("fs_type"), tgt.get("device"), s.get("fio")) if v]
    return f"<p class='meta'>{_e(' · '.join(bits))}</p>" if bits else ""


def suite_section(label: str, r: Result) -> str:
    m = r.metrics
    verdict = m.get("verdict", "INCOMPLETE")
    colour = _VERDICT_COLOUR.get(verdict, "#57606a")
    o = [f"<div class='banner' style='background:{colour}'>{_e(verdict)}"
         f"<small>suite {_e(r.name)}: {m.get('criteria_passed', 0)} of "
         f"{m.get('criteria_total', 0)} criteria passed; {m.get('steps_run', 0)} of "
         f"{m.get('steps_total', 0)} steps run, {m.get('steps_failed', 0)} failed"
         f"{' (' + _e(r.reason) + ')' if r.reason else ''}</small></div>"]
    crit = m.get("criteria") or []
    if crit:
        rows = []
        for v in crit:
            req = v["required"]
            req_s = ("true" if req else "false") if isinstance(req, bool) else f"{req:g}"
            ref = v["step"] + (f".{v['phase']}" if v.get("phase") else "") + f".{v['metric']}"
            rows.append((ref, _num(v.get("measured")), f"{v['op']} {req_s}",
                         _badge(v["state"]), v.get("note") or ""))
        o.append("<h3>Criteria</h3>" + _table(("criterion", "measured", "required", "verdict",
                                               "note"), rows))
    steps = m.get("steps") or []
    if steps:
        srows = [(s["id"], s["command_line"], _badge(s["state"]), f"{s['seconds']:.1f}",
                  s.get("reason") or "") for s in steps]
        o.append("<h3>Steps</h3>" + _table(("step", "command", "status", "s", "note"), srows,
                                           left=3))
    return "".join(o)


def page_title(results: Sequence[tuple[str, Result]]) -> str:
    first = results[0][1]
    if first.kind == "suite":
        t = f"iobench report: suite {first.name} ({first.metrics.get('verdict', 'INCOMPLETE')})"
    else:
        t = f"iobench report: {first.kind} {first.name}"
    if len(results) > 1:
        t += f" + {len(results) - 1} more"
    return t


def render(results: Sequence[tuple[str, Result]]) -> str:
    """The whole report for one or more (label, Result) pairs, suites expanded."""
    if not results:
        raise ValueError("no results to report")
    title = page_title(results)
    body: list[str] = [f"<h1>{_e(title)}</h1>", _sysinfo_line(results[0][1])]
    for label, r in results:
        if r.kind == "suite":
            body.append(suite_section(label, r))
            for child in r.children:
                c = Result.from_dict(child, source=f"{label} step")
                sid = child.get("step_id")
                heading = f"step {sid}: {c.kind} {c.name}" if sid else f"{c.kind} {c.name}"
                body.append(result_section(label, c, heading, f"step-{sid}" if sid else ""))
        else:
            body.append(result_section(label, r, f"{r.kind} {r.name}"))
        body.append(_sysinfo_html(r))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width'><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body><main>{''.join(body)}"
            "<p class='meta'>generated by iobench; self-contained: no scripts, no network"
            "</p></main></body></html>\n")
