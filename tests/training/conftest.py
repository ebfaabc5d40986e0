"""Data and run helpers for the training tests: tiny synthetic tasks, multi-image and video records.

Everything is small on purpose: the whole tests/training suite must stay within minutes on two shared CPU
cores, so runs use the `test`-size tiny model, 1-4 steps and completions of 8-32 tokens.
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


def _answer(solution: str, reasoning: str) -> str:
    return f"<think>{reasoning}</think><answer> Final Answer:{solution} </answer>"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """Counting data in the jsonl format: `grpo` (solutions), `sft` (plus completions), `multi` (records with
    two and three images, completions included) and `video` (frames sampled from small videos)."""
    from visionr1.tasks.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("tiny-data")
    make_synthetic("counting", 12, 0, root)
    rows = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    sft = [{**r, "completion": _answer(r["solution"], r["metadata"].get("reasoning", ""))} for r in rows]
    (root / "train-sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))

    multi = []
    for i, r in enumerate(rows):
        k = 2 + i % 2
        imgs = [rows[(i + j) % len(rows)]["images"][0] for j in range(k)]
        multi.append({**r, "id": f"multi-{i}", "images": imgs,
                      "question": " ".join(["<image>"] * k) + f" In the {k} images: " + r["question"],
                      "completion": _answer(r["solution"], f"I look at all {k} images.")})
    (root / "multi.jsonl").write_text("".join(json.dumps(r) + "\n" for r in multi))

    videos = []
    for i in range(4):
        path = _write_video(root / "videos" / f"v{i}.mp4", shade=40 * i)
        videos.append({"id": f"video-{i}", "video": str(path.relative_to(root)), "question": "How bright does it get?",
                       "solution": str(i)})
    (root / "video.jsonl").write_text("".join(json.dumps(r) + "\n" for r in videos))
    return {"grpo": root / "train.jsonl", "sft": root / "train-sft.jsonl", "multi": root / "multi.jsonl",
            "video": root / "video.jsonl"}


def _write_video(path: Path, shade: int, n_frames: int = 8, size=(64, 48)) -> Path:
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(n_frames):
            arr = np.full((size[1], size[0], 3), min(255, shade + 10 * i), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


VISIONR1 = str(Path(sys.executable).with_name("visionr1"))  # the console script of this environment


def visionr1_cmd(*args: str) -> list[str]:
    return [sys.executable, VISIONR1, *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", **extra}
    env.pop("WORLD_SIZE", None)
    return env


def run_cli(*args: str, timeout: int = 240, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(visionr1_cmd(*args), cwd=REPO, env=subprocess_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def load_state(model_dir: Path) -> dict:
    """Parameters by their in-memory names (``model.visual.*``, ``model.language_model.*``): transformers
    saves Qwen-VL checkpoints under the legacy names (``visual.*``, ``model.layers.*``)."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------------------------------------
# varied data: what real RL data looks like (MATH-V: prompts of 15-1,500 characters, images of 54x40 to
# 2520x8526 px), so that no test can pass only because every prompt has the same length
# ----------------------------------------------------------------------------------------------------------

VARIED_QUESTIONS = (
    "How many?",
    "Count the red shapes in the picture and give the number.",
    "In the figure, a triangle is drawn inside a circle. " * 12 + "What is the measure of the angle at A?",
    "Read the problem carefully. " + "The diagram shows several shapes of different colours and sizes. " * 22
    + "How many shapes are there?",
)
VARIED_SIZES = ((28, 28), (40, 600), (300, 200), (1600, 90), (64, 64), (900, 1400))


def write_varied_grpo(root: Path, n: int = 8) -> Path:
    """RL records (jsonl) whose prompts run from ~9 to ~1,500 characters and whose images from 28x28 to 1600x90,
    one per record; solutions are small counts. Deterministic."""
    from PIL import Image, ImageDraw

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        w, h = VARIED_SIZES[i % len(VARIED_SIZES)]
        img = Image.new("RGB", (w, h), (30 * i % 255, 120, 200))
        ImageDraw.Draw(img).rectangle([w // 4, h // 4, w // 2, h // 2], fill=(250, 20, 20))
        img.save(root / f"img{i}.png")
        q = VARIED_QUESTIONS[i % len(VARIED_QUESTIONS)]
        rows.append({"id": f"varied-{i}", "images": [f"img{i}.png"], "question": "<image>" + q, "solution": str(i % 5),
                     "task": "count"})
    path = root / "varied.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def varied_grpo(tmp_path_factory) -> Path:
    return write_varied_grpo(tmp_path_factory.mktemp("varied-grpo"))


def first_grpo_trainer(recipe, tmp_path: Path):
    """The GRPO trainer (and processor) that ``visionr1 train`` would build for the recipe's first stage, without
    training: preflight, the stage's run, ``build_grpo_trainer``."""
    from visionr1.training.grpo import build_grpo_trainer
    from visionr1.training.loading import resolve_model_path
    from visionr1.training.runner import preflight
    from visionr1.training.stage import StageRun

    run_dir = tmp_path / "run"
    stage = recipe.stages[0]
    prepared = preflight(recipe, run_dir, 1, [0])
    run = StageRun(recipe=recipe, stage=stage, index=0, run_dir=run_dir, stage_dir=run_dir / stage.name,
                   start_path=resolve_model_path(recipe.model.path), resume_from=None, step_offset=0,
                   train_dataset=prepared[0].train)
    trainer, processor, _ = build_grpo_trainer(run)
    return trainer, processor


def kill_after_checkpoint(cmd: list[str], checkpoint: Path, log: Path, timeout: float = 400) -> None:
    """Start ``cmd`` (a run, in a session of its own) and SIGKILL its process group once ``checkpoint`` is complete:
    its ``visionr1-checkpoint.json`` record is written last (training.checkpoints), so a checkpoint without it is
    one a kill cut short, which a resume removes instead of loading."""
    import signal
    import time

    from visionr1.training.checkpoints import RECORD

    target = checkpoint / RECORD
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.time() + timeout
        while not target.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert target.exists(), log.read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
