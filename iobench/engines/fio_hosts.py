"""fio across hosts: one job file per `fio --server` daemon, `client_stats` parsed into
per-client phases and an aggregate whose percentiles come from the merged json+ bins.

How it runs: `fio --output-format=json+ --output=FILE --client=A h0.fio --client=B h1.fio`.
Each server gets its own job file (fio allows one per --client), whose job sections are
named `h<i>.<pattern>.<j>` and whose files are `<target>/io/h<i>.job<j>.dat`: the paths are
the same on every host (each host sees the target at the same path, shared or local),
and no two clients ever touch the same file, even on a shared target or two servers on
one host. fio's own "All clients" entry is not used: it vanishes when a job file has
several job sections (fio issue 1881) and carries no json+ bins; the aggregate is built
here from every job's bins, so its percentiles are read off one merged histogram.
"""

from __future__ import annotations

import contextlib
import re
import socket
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from iobench import cache
from iobench.engines import IOSpec, fio
from iobench.errors import RunFailed, UsageError
from iobench.results import Recorder

DEFAULT_PORT = 8765  # fio --server's default
CONNECT_TIMEOUT_S = 3.0
ALL_CLIENTS = "All clients"
_JOB_RE = re.compile(r"^h(\d+)\.")
# fio prefixes each line a server prints with "<server's hostname> "
_NOTE_RE = re.compile(r"^<([^>]*)> h(\d+)\.")


class ServerUnreachable(UsageError):
    """A listed fio server does not accept connections (checked before anything runs)."""


@dataclass(frozen=True)
class Server:
    """One fio server as the hosts file names it (fio's --client syntax)."""

    address: str  # passed to fio's --client= as written
    kind: str  # ip, ip6 or sock
    host: str  # host name or IP; the socket path for sock
    port: int  # 0 for sock
    line: int  # 1-based line in the hosts file

    @property
    def client_arg(self) -> str:
        """The server string for fio's --client= (fio needs ip6: before a bare IPv6)."""
        if self.kind == "ip6" and not self.address.startswith("ip6:"):
            return f"ip6:{self.host},{self.port}"
        return self.address

    @property
    def name(self) -> str:
        """How results name this client: host, host:port when not 8765, sock:PATH."""
        if self.kind == "sock":
            return f"sock:{self.host}"
        if self.port == DEFAULT_PORT:
            return self.host
        return f"[{self.host}]:{self.port}" if self.kind == "ip6" else f"{self.host}:{self.port}"


def parse_address(token: str, where: str = "") -> Server:
    """`host`, `host,port`, `ip:host,port`, `ip6:addr,port`, `sock:PATH` (as fio --server)."""
    at = f" ({where})" if where else ""
    kind = "ip"
    rest = token
    for prefix, k in (("sock:", "sock"), ("ip6:", "ip6"), ("ip4:", "ip"), ("ip:", "ip")):
        if token.startswith(prefix):
            kind, rest = k, token[len(prefix):]
            break
    if kind == "sock":
        if not rest:
            raise UsageError(f"fio server {token!r}{at}: sock: needs a socket path, "
                             "e.g. sock:/tmp/fio.sock")
        return Server(token, "sock", rest, 0, 0)
    host, sep, port_s = rest.rpartition(",")
    if not sep:
        host, port_s = rest, str(DEFAULT_PORT)
    if not host:
        raise UsageError(f"fio server {token!r}{at}: no host name; write host or host,port, "
                         "e.g. node1,8765")
    try:
        port = int(port_s)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise UsageError(f"fio server {token!r}{at}: port {port_s!r} is not a number in "
                         "1..65535; write host,port, e.g. node1,8766")
    if kind == "ip" and ":" in host:
        kind = "ip6"  # a bare IPv6 address, as fio accepts it
    return Server(token, kind, host, port, 0)


def read_hostfile(path: Path) -> list[Server]:
    """The servers listed in a hosts file: fio's --client hostfile format (whitespace-
    separated server strings, normally one a line), plus blank lines and # comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not a text file"
        raise UsageError(f"--fio-hosts {path}: cannot read it ({reason})") from None
    servers: list[Server] = []
    seen: dict[tuple[str, str, int], int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        for token in raw.split("#", 1)[0].split():
            s = replace(parse_address(token, f"{path} line {lineno}"), line=lineno)
            key = (s.kind, s.host, s.port)
            if key in seen:
                raise UsageError(f"--fio-hosts {path}: server {token!r} on line {lineno} is "
                                 f"already listed on line {seen[key]}; list each server once")
            seen[key] = lineno
            servers.append(s)
    if not servers:
        raise UsageError(f"--fio-hosts {path}: lists no fio server; write one host or "
                         "host,port a line (see docs/guide/many-hosts.md, 'fio across hosts')")
    return servers


def unreachable(server: Server, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why `server` does not accept a connection, or None when it does."""
    try:
        if server.kind == "sock":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                sock.connect(server.host)
        else:
            with socket.create_connection((server.host, server.port), timeout=timeout_s):
                pass
    except socket.gaierror as e:
        return f"cannot resolve {server.host!r} ({e.strerror})"
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as e:
        return (e.strerror or str(e)).lower()
    return None


def check_reachable(servers: Sequence[Server], source: Path | str,
                    timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """ServerUnreachable (exit 2) naming every server that refuses, before anything runs:
    fio itself skips an unreachable server and exits 0 with the others' results."""
    bad = []
    for s in servers:
        why = unreachable(s, timeout_s)
        if why is not None:
            listen = f"sock:{s.host}" if s.kind == "sock" else f"{s.kind}:{s.host},{s.port}"
            bad.append(f"{s.address} ({source} line {s.line}): {why}; start `fio "
                       f"--server={listen}` there")
    if bad:
        raise ServerUnreachable(f"fio server unreachable: {' | '.join(bad)}")


def load(path: Path, engine: str) -> list[Server]:
    """The servers of `--fio-hosts FILE`, checked: fio installed, --engine fio, reachable."""
    if engine != "fio":
        raise UsageError(f"--fio-hosts needs --engine fio (got --engine {engine})")
    fio.fio_binary()
    servers = read_hostfile(path)
    check_reachable(servers, path)
    return servers


# --- job files -----------------------------------------------------------------------------
def client_files(workdir: Path, index: int, jobs: int) -> tuple[Path, ...]:
    """Client `index`'s files: distinct from every other client's, same path on each host."""
    return tuple(workdir / f"h{index}.job{j}.dat" for j in range(jobs))


def jobfiles(spec: IOSpec, n_clients: int, workdir: Path, policy: str) -> list[str]:
    """One job file per client: `spec` on that client's own files, job names h<i>.*."""
    out = []
    for i in range(n_clients):
        text = fio.jobfile_for(replace(spec, files=client_files(workdir.resolve(), i,
                                                                spec.jobs)),
                               f"h{i}.{spec.pattern}")
        if policy in ("drop", "drop-global") and not spec.is_write:
            # iobench cannot drop a remote host's cache; fio's invalidate=1 makes each
            # server fadvise(DONTNEED) its files before the job (after laying them out)
            assert "\ninvalidate=0\n" in text
            text = text.replace("\ninvalidate=0\n", "\ninvalidate=1\n", 1)
        out.append(text)
    return out


# --- running -------------------------------------------------------------------------------
def run_clients(servers: Sequence[Server], texts: Sequence[str], workdir: Path,
                timeout: float | None = None) -> dict[str, Any]:
    """Run fio as the client of every server, one job file each; its final JSON document.

    fio exiting non-zero (a server lost mid-run: fio waits for it about 40 s) raises
    RunFailed with whatever JSON fio wrote attached as `exc.fio_output`. Ctrl-C stops fio
    (which stops the servers' jobs) and re-raises with the partial document attached.
    """
    exe = fio.fio_binary()
    with tempfile.TemporaryDirectory(prefix="iobench-fio-hosts-") as tmp:
        outpath = Path(tmp) / "output.json"
        errpath = Path(tmp) / "stderr.txt"
        cmd = [exe, "--output-format=json+", f"--output={outpath}"]
        shown = [exe, "--output-format=json+", "--output=FILE"]
        for i, (s, text) in enumerate(zip(servers, texts, strict=True)):
            jobpath = Path(tmp) / f"h{i}.fio"
            jobpath.write_text(text, encoding="utf-8")
            cmd += [f"--client={s.client_arg}", str(jobpath)]
            shown += [f"--client={s.client_arg}", f"h{i}.fio"]
        rc = fio.run_process(cmd, workdir, errpath, timeout,
                             lambda: _read_doc(outpath, shown, texts))
        stderr = errpath.read_text(encoding="utf-8", errors="replace")
        doc = _read_doc(outpath, shown, texts)
        if rc != 0:
            text = outpath.read_text(encoding="utf-8", errors="replace") \
                if outpath.exists() else ""
            _docs, notes = fio.documents(text)
            tail = fio._tail(stderr, "\n".join(notes), lines=6) or "it printed nothing"
            what = f"exit {rc}" if rc > 0 else f"killed by signal {-rc}"
            exc = RunFailed(f"fio client failed ({what}): {tail}")
            exc.fio_output = doc  # type: ignore[attr-defined]
            raise exc
        if doc is None:
            raise RunFailed(f"fio wrote no JSON result: {fio._tail(stderr) or 'no output'}")
        doc["iobench"]["stderr"] = [ln for ln in stderr.splitlines() if ln.strip()]
        return doc


def layout(servers: Sequence[Server], texts: Sequence[str], workdir: Path,
           timeout: float | None = None) -> None:
    """Create (or extend) every client's read files before the timed run, all servers at
    once: fio would otherwise lay them out as each job starts, so one client writing its
    files would overlap another's measured reads (the servers start without a barrier)."""
    # create_only: fio's setup phase alone; fresh random blocks, as iobench writes data
    setup = [t.replace("[global]\n", "[global]\ncreate_only=1\nrefill_buffers=1\n"
                       "buffer_compress_percentage=0\n", 1) for t in texts]
    try:
        run_clients(servers, setup, workdir, timeout=timeout)
    except RunFailed as e:
        raise RunFailed(f"laying out the read files on the servers failed: "
                        f"{e.format_message()}") from None


def _read_doc(outpath: Path, shown: list[str], texts: Sequence[str]) -> dict[str, Any] | None:
    try:
        doc = fio.load_output(outpath.read_text(encoding="utf-8", errors="replace"))
    except (OSError, RunFailed):
        return None
    doc["iobench"].update(command=shown, jobfiles=list(texts))
    return doc


# --- parsing -------------------------------------------------------------------------------
def client_entries(doc: Mapping[str, Any]) -> dict[int, list[Mapping[str, Any]]]:
    """client_stats job entries by client index (from the h<i>. job name prefix)."""
    out: dict[int, list[Mapping[str, Any]]] = {}
    for job in doc.get("client_stats") or []:
        m = _JOB_RE.match(str(job.get("jobname", "")))
        if m:
            out.setdefault(int(m.group(1)), []).append(job)
    return out


def server_hostnames(doc: Mapping[str, Any]) -> dict[int, str]:
    """Each client's own hostname, from the `<hostname> h<i>.job: ...` lines fio relays."""
    out: dict[int, str] = {}
    for line in (doc.get("iobench") or {}).get("notes") or []:
        m = _NOTE_RE.match(line)
        if m:
            out.setdefault(int(m.group(2)), m.group(1))
    return out


def parse_clients(doc: Mapping[str, Any], servers: Sequence[Server],
                  name: str) -> tuple[list[dict[str, Any]], list[Server]]:
    """fio client/server JSON -> (phases, servers that reported nothing).

    Phases: first the aggregate (`name`): bytes and ops summed over every client's jobs,
    seconds = the longest job runtime of any client, latency from all jobs' json+ bins
    merged; then one phase per client (`name@client`), in hosts-file order.
    """
    by_client = client_entries(doc)
    missing = [s for i, s in enumerate(servers) if i not in by_client]
    if not by_client:
        return [], missing
    hostnames = server_hostnames(doc)
    unknown = sorted(set(by_client) - set(range(len(servers))))
    if unknown:
        raise RunFailed(f"fio's client_stats has jobs of client h{unknown[0]}, but only "
                        f"{len(servers)} server(s) were given: not this run's output")
    every = [j for i in sorted(by_client) for j in by_client[i]]
    errors = [f"{servers[i].name} {j.get('jobname')}: error {j.get('error')}"
              for i in sorted(by_client) for j in by_client[i] if j.get("error")]
    if errors:
        raise RunFailed(f"fio reported job errors: {'; '.join(errors)}")
    base = dict(doc)
    base.pop("jobs", None)
    aggregate = fio.parse({**base, "client_stats": every}, name=name)
    per_client: list[dict[str, Any]] = []
    rates: dict[str, list[tuple[float, float, str]]] = {}  # direction -> (GB/s, s, client)
    for i in sorted(by_client):
        s = servers[i]
        for p in fio.parse({**base, "client_stats": by_client[i]}, name=f"{name}@{s.name}"):
            p["metrics"].update(client=s.name, client_address=s.address, client_index=i)
            if i in hostnames:
                p["metrics"]["server_hostname"] = hostnames[i]
            per_client.append(p)
            if p["direction"] != "sync":
                rates.setdefault(p["direction"], []).append(
                    (p["gb_per_s"], p["seconds"], s.name))
    all_clients = [j for j in doc.get("client_stats") or [] if j.get("jobname") == ALL_CLIENTS]
    for p in aggregate:
        got = rates.get(p["direction"])
        m = p["metrics"]
        m.update(clients=len(by_client), client_names=[servers[i].name for i in sorted(by_client)],
                 throughput_basis="total bytes / longest client runtime")
        if got:
            gbps = sorted(g for g, _, _ in got)
            m.update(client_gb_per_s_min=gbps[0], client_gb_per_s_median=statistics.median(gbps),
                     client_gb_per_s_max=gbps[-1],
                     slowest_client=min(got)[2], fastest_client=max(got)[2],
                     first_done_s=min(t for _, t, _ in got),
                     last_done_s=max(t for _, t, _ in got))
        with contextlib.suppress(TypeError, ValueError):
            if all_clients and p["direction"] in fio.DIRECTIONS:
                # fio's own sum, when it printed one: a cross-check of the bytes only
                m["fio_all_clients_bytes"] = int(all_clients[0][p["direction"]]["io_bytes"])
    return aggregate + per_client, missing


def _annotate(phases: list[dict[str, Any]], doc: Mapping[str, Any] | None,
              texts: Sequence[str]) -> list[dict[str, Any]]:
    extra = (doc or {}).get("iobench") or {}
    info = {"jobfiles": list(texts), "command": extra.get("command"),
            "notes": list(extra.get("notes") or []), "warnings": []}
    for p in phases:
        p["fio"] = info
    return phases


# --- the io command's body -----------------------------------------------------------------
def spec_files(spec: IOSpec, n_clients: int, workdir: Path) -> list[str]:
    return [str(f) for i in range(n_clients) for f in client_files(workdir, i, spec.jobs)]


def run_io(spec: IOSpec, servers: Sequence[Server], policy: str, workdir: Path,
           result: Recorder, timeout: float | None = None) -> None:
    """Run `spec` on every server at once; add the aggregate and per-client phases.

    Reads: a setup-only fio pass first lays out missing files on every server (untimed).
    A server that reports nothing -> the others' phases are kept and the run fails
    naming it.
    """
    texts = jobfiles(spec, len(servers), workdir, policy)
    reads = not spec.is_write
    method = {"drop": "fio_invalidate", "drop-global": "fio_invalidate",
              "direct": "o_direct"}.get(policy, "none") if reads \
        else ("o_direct" if spec.direct else "none")
    verdict = cache.verdict(policy, method, spec.size * spec.jobs, reads=reads,
                            rereads=spec.runtime > 0 or spec.is_random)
    verdict["scope"] = f"per server ({len(servers)} servers); ram_bytes is this host's"
    if reads and policy in ("drop", "drop-global"):
        verdict["note"] = verdict["note"].replace(
            "fadvise(DONTNEED) per file (not root, or drop_caches refused)",
            "fio's invalidate=1 on each server (fadvise DONTNEED per file)")
    result.cache = verdict
    if reads:
        layout(servers, texts, workdir, timeout)
    try:
        doc = run_clients(servers, texts, workdir, timeout=timeout)
    except (KeyboardInterrupt, RunFailed) as e:
        partial = getattr(e, "fio_output", None)
        if partial is not None:
            with contextlib.suppress(RunFailed):
                for p in _annotate(parse_clients(partial, servers, spec.pattern)[0],
                                   partial, texts):
                    result.add_phase(p)
        raise
    phases, missing = parse_clients(doc, servers, spec.pattern)
    for p in _annotate(phases, doc, texts):
        result.add_phase(p)
    if phases:
        main = phases[0]
        m = main["metrics"]
        result.metrics.update({
            "gb_per_s": main["bytes_per_s"] / 1e9, "ops_per_s": main["ops_per_s"],
            "p99_us": (main["latency_ns"].get("p99") or 0) / 1e3, "bytes": main["bytes"],
            "clients": m.get("clients", 0),
            **{k: m[k] for k in ("client_gb_per_s_min", "client_gb_per_s_median",
                                 "client_gb_per_s_max") if k in m},
        })
        want = m.get("fio_all_clients_bytes")
        if want is not None and want != main["bytes"]:
            result.warnings.append(f"fio's 'All clients' counts {want} bytes, the clients' "
                                   f"jobs {main['bytes']}: the aggregate uses the jobs")
    if missing:
        names = ", ".join(f"{s.address} (line {s.line})" for s in missing)
        raise RunFailed(f"fio server(s) {names} reported no results; the other "
                        f"{len(servers) - len(missing)} server(s)' phases are kept")
