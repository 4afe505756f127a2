"""Fixtures for the inference tests: the tiny model written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from iobench.kinds.infer_load import files, preset
from iobench.kinds.infer_load.layouts import GGUF_PRECISIONS, PRECISIONS

ALL = [("safetensors", p) for p in PRECISIONS] + [("gguf", p) for p in GGUF_PRECISIONS]


@pytest.fixture(scope="session")
def tiny() -> preset.InferenceModel:
    return preset.load("tiny")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory, tiny: preset.InferenceModel) -> Path:
    root = tmp_path_factory.mktemp("models")
    for fmt, pr in ALL:
        files.write(files.plan(tiny, pr, fmt), root)
    return root
