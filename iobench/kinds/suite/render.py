"""Terminal tables for suite results: the steps, the criteria, the verdict."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from iobench.results import Result

_STATE_STYLE = {"PASS": "bold green", "FAIL": "bold red", "SKIP": "yellow",
                "INCOMPLETE": "bold yellow", "ok": "green", "partial": "yellow",
                "failed": "red", "error": "red", "interrupted": "yellow"}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 10000 else f"{v:.4g}"
    return str(v)


def criteria_table(verdicts: list[dict[str, Any]]) -> Table:
    t = Table(title="Criteria", title_justify="left")
    for col, just in (("criterion", "left"), ("measured", "right"), ("required", "left"),
                      ("verdict", "left"), ("note", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for v in verdicts:
        req = v["required"]
        req_s = (("true" if req else "false") if isinstance(req, bool) else f"{req:g}")
        ref = v["step"] + (f".{v['phase']}" if v.get("phase") else "") + f".{v['metric']}"
        t.add_row(ref, _fmt(v["measured"]), f"{v['op']} {req_s}",
                  Text(v["state"], style=_STATE_STYLE.get(v["state"], "")), v.get("note") or "")
    return t


def steps_table(steps: list[dict[str, Any]]) -> Table:
    t = Table(title="Steps", title_justify="left")
    for col, just in (("step", "left"), ("command", "left"), ("status", "left"),
                      ("s", "right"), ("note", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for s in steps:
        t.add_row(s["id"], s["command_line"], Text(s["state"], style=_STATE_STYLE.get(
            s["state"], "")), f"{s['seconds']:.1f}", s.get("reason") or "")
    return t


def tables(result: Result) -> list[RenderableType]:
    m = result.metrics
    out: list[RenderableType] = []
    if m.get("steps"):
        out.append(steps_table(m["steps"]))
    if m.get("criteria"):
        out.append(criteria_table(m["criteria"]))
    verdict = m.get("verdict", "INCOMPLETE")
    line = Text("verdict: ")
    line.append(verdict, style=_STATE_STYLE.get(verdict, ""))
    line.append(f"  ({m.get('criteria_passed', 0)}/{m.get('criteria_total', 0)} criteria "
                f"passed, {m.get('steps_run', 0)}/{m.get('steps_total', 0)} steps run, "
                f"{m.get('steps_failed', 0)} failed)")
    out.append(line)
    return out
