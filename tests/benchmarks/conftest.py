"""What the benchmark smoke tests share: loading a script under benchmarks/ as a module."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"visionr1_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench_script():
    """``bench_script("overhead")``: benchmarks/overhead.py as a module."""
    return load_script
