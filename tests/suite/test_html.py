"""The HTML report: self-contained markup, every chart kind, and a real headless Chromium."""

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from iobench.cli import cli
from iobench.report import html
from iobench.results import Recorder, Result, make_phase, save
from iobench.stats import Histogram, Timeline


def hist(values):
    h = Histogram()
    h.record_many(values)
    return h


def step(kind, name, sid, phases, metrics=None):
    r = Recorder(kind=kind, name=name, spec={})
    for p in phases:
        r.add_phase(p)
    r.metrics.update(metrics or {})
    r.cache = {"policy": "drop", "method": "drop_caches", "note": "page cache dropped",
               "may_be_cached": kind == "train"}
    d = r.to_dict()
    d["step_id"] = sid
    return d


def sample_suite() -> Result:
    tl = Timeline(start_ns=0, interval_ns=500_000_000, bins=[4 * 10**8, 5 * 10**8, 10**8, 6e8])
    train = make_phase("train", nbytes=16 * 10**8, seconds=2.0, ops=400,
                       latency=hist([200_000 + i * 1000 for i in range(400)]), timeline=tl,
                       metrics={"checkpoint_windows_s": [[0.9, 1.4]]})
    cells = [make_phase(f"randread bs={bs} qd={qd}", nbytes=bs * qd * 1000, seconds=1.0,
                        ops=qd * 1000, latency=hist([50_000 * qd] * 100),
                        metrics={"block_bytes": bs, "queue_depth": qd})
             for bs in (4096, 65536) for qd in (1, 16)]
    loads = [make_phase(f"load {p} pread cold", nbytes=n, seconds=n / 1e9, ops=10,
                        latency=hist([10**6] * 10),
                        metrics={"precision": p, "method": "pread", "state": "cold"})
             for p, n in (("bf16", 16 * 10**9), ("fp8", 9 * 10**9), ("int4", 5 * 10**9))]
    s = Recorder(kind="suite", name="demo", spec={})
    s.sysinfo = {"host": "box", "cpu_count": 2, "ram_bytes": 2**34,
                 "target": {"fs_type": "ext4", "device": "/dev/vda"}}
    s.children = [step("train", "unet3d", "train", [train], {"au_pct": 93.5}),
                  step("infer-randread", "randread", "randread", cells),
                  step("infer-load", "llama3-8b", "load", loads, {"load_s": 16.0})]
    s.metrics.update({
        "verdict": "FAIL", "criteria_total": 2, "criteria_passed": 1, "criteria_failed": 1,
        "steps_total": 3, "steps_run": 3, "steps_failed": 0,
        "criteria": [
            {"criterion": "train.au_pct >= 90", "step": "train", "phase": None,
             "metric": "au_pct", "op": ">=", "required": 90.0, "measured": 93.5,
             "state": "PASS", "note": ""},
            {"criterion": "load.load_s <= 10", "step": "load", "phase": None,
             "metric": "load_s", "op": "<=", "required": 10.0, "measured": 16.0,
             "state": "FAIL", "note": ""}],
        "steps": [{"id": i, "command_line": f"iobench {i}", "state": "ok", "seconds": 1.0}
                  for i in ("train", "randread", "load")]})
    return s


def test_report_is_self_contained_with_every_chart():
    page = html.render([("run-1", sample_suite())])
    assert "<title>iobench report: suite demo (FAIL)</title>" in page
    assert "<script" not in page
    # the only URL is the SVG namespace: no CDN, no fonts, no images fetched
    assert set(re.findall(r"https?://[^'\" ]+", page)) == {"http://www.w3.org/2000/svg"}
    for text in ("Throughput over time", "checkpoint write", "Latency CDF per phase",
                 "Random reads: IOPS / p99 latency", "Model load time by precision",
                 "load.load_s", "step randread: infer-randread randread", "MAY BE FROM RAM",
                 "box · 2 CPUs · 16 GiB RAM"):
        assert text in page, text
    assert page.count("<svg") == 1 + 1 + 1 + 1 + 1 + 1  # tl + cdf, heatmap + cdf, bars + cdf
    # the shaded checkpoint window: from 0.9 s to 1.4 s on the timeline
    assert "fill='#f2cc60'" in page
    # heat-map cell labels: IOPS / p99
    assert "16k / 800 us" in page


def test_report_cli_html(runner, tmp_path):
    r = Recorder(kind="io", name="seqread", spec={})
    r.add_phase(make_phase("seqread", nbytes=10**6, seconds=0.01, ops=16,
                           latency=hist([10_000] * 16)))
    path = save(r, tmp_path / "res")
    out = tmp_path / "x.html"
    res = runner.invoke(cli, ["report", str(path.parent), "--html", str(out)])
    assert res.exit_code == 0, res.output
    assert "<title>iobench report: io seqread</title>" in out.read_text()


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    pytest.skip("Chromium is not installed (CI installs the Debian package: make test)")
    return ""


def png_rows(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the raw (still filtered) scanlines of an 8-bit PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h, bpp = 8, b"", 0, 0, 4
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            bpp = {2: 3, 6: 4, 0: 1, 4: 2}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = 1 + w * bpp
    return w, h, [raw[i:i + stride] for i in range(0, len(raw), stride)]


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.mark.browser
def test_report_in_headless_chromium(tmp_path):
    exe = chromium()
    page = tmp_path / "report.html"
    page.write_text(html.render([("run-1", sample_suite())]))
    env = {**os.environ, "HOME": str(tmp_path)}
    common = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=60, env=env)
    assert "<title>iobench report: suite demo (FAIL)</title>" in dom.stdout, dom.stderr[-2000:]
    assert "Random reads: IOPS / p99 latency" in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,1600",
                    page.as_uri()], capture_output=True, timeout=60, env=env)
    assert shot.exists(), "Chromium wrote no screenshot"
    w, h, rows = png_rows(shot)
    assert (w, h) == (1200, 1600)
    # a blank page has a handful of distinct scanlines; this report has hundreds
    assert len(set(rows)) > 200, f"screenshot looks blank: {len(set(rows))} distinct rows"
