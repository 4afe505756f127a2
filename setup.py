"""The optional C helper (iobench._fastio: the native engine's pread loop and its io_uring /
Linux AIO ring). Everything else is in pyproject.toml. Without a C compiler the build of
the helper is skipped (optional=True) and iobench uses its Python loops."""

import sys

from setuptools import Extension, setup

ext = [] if not sys.platform.startswith("linux") else [
    Extension("iobench._fastio", sources=["iobench/_fastio.c"], optional=True,
              extra_compile_args=["-O2", "-std=gnu11", "-Wall"]),
]
setup(ext_modules=ext)
