import pytest

from iobench.errors import UsageError
from iobench.units import (
    format_bytes,
    format_count,
    format_gbps,
    format_ns,
    parse_duration,
    parse_list,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4k", 4096), ("4K", 4096), ("4KiB", 4096), ("4kB", 4000), ("1.5GiB", 1610612736),
        ("10GB", 10_000_000_000), ("512", 512), ("1m", 1048576), ("2MB", 2_000_000),
        ("1t", 1024**4), ("0", 0), (" 8 KiB ", 8192), (4096, 4096),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "4x", "1.5", "-4k", "4 k b", "0.3k", "k4", True])
def test_parse_size_rejects(text):
    with pytest.raises(UsageError) as e:
        parse_size(text, "--size")
    assert "--size" in e.value.format_message()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500ms", 0.5), ("2m", 120.0), ("30s", 30.0), ("1.5h", 5400.0), ("10", 10.0),
     ("250us", 0.00025), (3, 3.0)],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["fast", "5 parsecs", "-1s", "inf"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError):
        parse_duration(text, "--runtime")


def test_parse_list():
    assert parse_list("4k, 16k,64k", parse_size, "--block-size") == [4096, 16384, 65536]
    with pytest.raises(UsageError):
        parse_list(" , ", parse_size, "--block-size")


def test_formatters():
    assert format_bytes(4096) == "4 KiB"
    assert format_bytes(1536 * 1024**2) == "1.5 GiB"
    assert format_bytes(4000, binary=False) == "4 kB"
    assert format_gbps(12_345_000_000) == "12.35 GB/s"
    assert format_ns(850) == "850 ns"
    assert format_ns(85_200) == "85.2 us"
    assert format_ns(1_200_000) == "1.2 ms"
    assert format_ns(None) == "-"
    assert format_count(37_600) == "37.6k"
    assert format_count(1_200_000) == "1.2M"
