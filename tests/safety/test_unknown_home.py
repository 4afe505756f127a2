"""`--target ~nosuchuser/x` is one line and exit 2 for the inference commands that size
free space before the target is prepared (found by the flag fuzz: a RuntimeError)."""

import pytest

from iobench.cli import cli


@pytest.mark.parametrize("argv", [
    ["infer", "kvcache", "tiny", "--requests", "2", "--capacity", "8MiB", "--no-search"],
    ["infer", "vector", "--index-size", "1MiB"],
])
def test_unknown_home_directory_is_one_line(runner, tmp_path, argv):
    res = runner.invoke(cli, [*argv, "--target", "~nobody_xyz_iobench/x",
                              "--results-dir", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "no such user's home directory" in res.output
    assert not (tmp_path / "r").exists()
