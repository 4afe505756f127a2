"""The hosts file (fio's --client syntax) and the checks before a run: bad files,
--engine native, unreachable servers -> one line and exit 2, nothing written."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from iobench.cli import cli
from iobench.engines import fio_hosts
from iobench.errors import UsageError


@pytest.mark.parametrize(("token", "kind", "host", "port", "name"), [
    ("node1", "ip", "node1", 8765, "node1"),
    ("node1,8766", "ip", "node1", 8766, "node1:8766"),
    ("ip:10.0.0.5,4444", "ip", "10.0.0.5", 4444, "10.0.0.5:4444"),
    ("ip4:10.0.0.5", "ip", "10.0.0.5", 8765, "10.0.0.5"),
    ("ip6:::1,4444", "ip6", "::1", 4444, "[::1]:4444"),
    ("fe80::1,9000", "ip6", "fe80::1", 9000, "[fe80::1]:9000"),
    ("sock:/tmp/fio.sock", "sock", "/tmp/fio.sock", 0, "sock:/tmp/fio.sock"),
])
def test_addresses_as_fio_reads_them(token, kind, host, port, name):
    s = fio_hosts.parse_address(token)
    assert (s.kind, s.host, s.port, s.name, s.address) == (kind, host, port, name, token)
    # fio reads a bare IPv6 address only after ip6: ("fe80::1,9000" -> bad server port)
    assert s.client_arg == ("ip6:fe80::1,9000" if token == "fe80::1,9000" else token)


def test_hostfile_comments_lines_and_several_per_line(tmp_path):
    p = tmp_path / "hosts"
    p.write_text("# rack 1\nnode1\n\nnode2,8766   # second daemon\nnode3 node4\n")
    servers = fio_hosts.read_hostfile(p)
    assert [(s.name, s.line) for s in servers] == [
        ("node1", 2), ("node2:8766", 4), ("node3", 5), ("node4", 5)]


@pytest.mark.parametrize(("text", "message"), [
    ("# nothing\n\n", "lists no fio server"),
    ("node1,http\n", "port 'http' is not a number"),
    ("node1,0\n", "port '0' is not a number in 1..65535"),
    (",8765\n", "no host name"),
    ("sock:\n", "needs a socket path"),
    ("node1\nip:node1,8765\n", "on line 2 is already listed on line 1"),
])
def test_bad_hostfiles(tmp_path, text, message):
    p = tmp_path / "hosts"
    p.write_text(text)
    with pytest.raises(UsageError, match=message):
        fio_hosts.read_hostfile(p)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket closes


def io_args(tmp_path: Path, hosts: Path, *extra: str) -> list[str]:
    return ["io", "randread", "--target", str(tmp_path / "t"), "--results-dir",
            str(tmp_path / "r"), "--size", "64k", "-b", "4k", "--fio-hosts", str(hosts),
            *extra]


@pytest.mark.parametrize(("text", "engine", "message"), [
    ("127.0.0.1\n", "native", "--fio-hosts needs --engine fio (got --engine native)"),
    ("", "fio", "lists no fio server"),
    ("127.0.0.1,99999\n", "fio", "port '99999' is not a number"),
])
def test_cli_bad_input_exits_2(runner, tmp_path, have_fio, text, engine, message):
    hosts = tmp_path / "hosts"
    hosts.write_text(text)
    res = runner.invoke(cli, io_args(tmp_path, hosts, "--engine", engine))
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not (tmp_path / "t").exists()


def test_cli_missing_hostfile_exits_2(runner, tmp_path, have_fio):
    res = runner.invoke(cli, io_args(tmp_path, tmp_path / "nope", "--engine", "fio"))
    assert res.exit_code == 2
    assert "cannot read it (No such file or directory)" in res.output


@pytest.mark.fio
def test_unreachable_server_is_one_line_exit_2(runner, tmp_path, fio_servers):
    port = closed_port()
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1,{fio_servers[0]}\n127.0.0.1,{port}\nno-such-host.invalid\n")
    res = runner.invoke(cli, io_args(tmp_path, hosts, "--engine", "fio"))
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: fio server unreachable: ")
    # both bad servers named with their line and the command that starts them
    assert f"127.0.0.1,{port} ({hosts} line 2): connection refused" in lines[0]
    assert f"start `fio --server=ip:127.0.0.1,{port}` there" in lines[0]
    assert "no-such-host.invalid (" in lines[0]
    assert "line 3): cannot resolve" in lines[0]
    assert f"127.0.0.1,{fio_servers[0]} (" not in lines[0]  # the live one is fine
    assert not (tmp_path / "t").exists()
    assert not (tmp_path / "r").exists()
