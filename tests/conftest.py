"""Shared test setup. Nothing here touches a model hub: tests run offline on tiny local models."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# `from tests.varied import ...` works however pytest is started (--import-mode=importlib does not add the
# repository root to sys.path by itself).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Qwen2.5-VL (size `test`) saved like a real checkpoint; built once per test session.

    Load it with `AutoModelForImageTextToText.from_pretrained(tiny_model_dir)` / `AutoProcessor.from_pretrained`.
    """
    from visionr1.models.tiny import get_tiny_model

    return get_tiny_model("qwen2_5_vl", "test", cache_root=tmp_path_factory.mktemp("visionr1-cache"))


@pytest.fixture
def varied():
    """tests/varied.py: writers of varied synthetic fixtures in every published format (see its docstring)."""
    import tests.varied

    return tests.varied


def _scale_deps_missing() -> list[str]:
    import importlib.util

    return [name for name in ("deepspeed", "vllm") if importlib.util.find_spec(name) is None]


def pytest_collection_modifyitems(config, items):
    """`scale` tests (FSDP2, ZeRO-3, vLLM: minutes of multi-process runs) run where `make scale-deps` installed their
    dependencies (CI does); elsewhere each is skipped with the one command that runs them."""
    missing = _scale_deps_missing()
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"scale test: needs {', '.join(missing)}; run `make test-scale` (installs them)")
    for item in items:
        if "scale" in item.keywords:
            item.add_marker(skip)
