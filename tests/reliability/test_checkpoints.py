"""Damaged and half-saved checkpoints: verified before loading, reported in one line naming the file, and
never skipped silently; ``--resume-from previous`` falls back to the checkpoint before a damaged one.

The checkpoints are real: a 2-step SFT run of the tiny model saving after each step; each row below damages a
copy of it the way a disk, a user or a stopped save would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from visionr1.training.checkpoints import RECORD, RESUME_ENV, CheckpointError
from visionr1.training.runner import last_checkpoint

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
VISIONR1 = str(Path(sys.executable).with_name("visionr1"))


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    for var in ("WORLD_SIZE", RESUME_ENV):
        env.pop(var, None)
    return env


def _sft_data(root: Path) -> Path:
    from visionr1.tasks.synthetic import make_synthetic

    make_synthetic("counting", 6, 0, root)
    rows = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    sft = [{**r, "completion": f"<think>count</think><answer> Final Answer:{r['solution']} </answer>"} for r in rows]
    (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    return root / "sft.jsonl"


def _cmd(run: Path, model: Path, data: Path, *extra: str) -> list[str]:
    return [sys.executable, VISIONR1, "train", str(REPO / "recipes" / "tiny" / "sft.yaml"), f"model.path={model}",
            f"stages.sft.dataset.path={data}", "stages.sft.sft.max_steps=2", "stages.sft.sft.save_steps=1",
            "--output-dir", str(run), *extra]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, tiny_model_dir):
    """A finished 2-step SFT run with checkpoint-1 and checkpoint-2; its command."""
    root = tmp_path_factory.mktemp("ckpt")
    data = _sft_data(root / "data")
    run = root / "run"
    out = subprocess.run(_cmd(run, tiny_model_dir, data), cwd=REPO, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (run / "sft" / "checkpoint-2" / RECORD).is_file()
    return run, tiny_model_dir, data


def _unfinished_copy(saved_run, tmp_path: Path) -> Path:
    """The run as a stop after checkpoint-2 leaves it: no final/, the stage pending."""
    run = tmp_path / "run"
    shutil.copytree(saved_run[0], run)
    shutil.rmtree(run / "sft" / "final")
    (run / ".lock").unlink(missing_ok=True)
    return run


def _truncate(name):
    def damage(ckpt: Path) -> None:
        path = ckpt / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return damage


def _delete(name):
    return lambda ckpt: (ckpt / name).unlink()


def _append(name):
    def damage(ckpt: Path) -> None:
        with (ckpt / name).open("ab") as fh:
            fh.write(b"\0" * 17)
    return damage


# (damage, the file the message must name)
DAMAGE = {
    "model-truncated": (_truncate("model.safetensors"), "model.safetensors"),
    "model-deleted": (_delete("model.safetensors"), "model.safetensors"),
    "optimizer-deleted": (_delete("optimizer.pt"), "optimizer.pt"),  # would silently reset Adam
    "optimizer-truncated": (_truncate("optimizer.pt"), "optimizer.pt"),
    "scheduler-grown": (_append("scheduler.pt"), "scheduler.pt"),
    "trainer-state-deleted": (_delete("trainer_state.json"), "trainer_state.json"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_checkpoint_is_an_error_naming_the_file(saved_run, tmp_path, monkeypatch, case):
    monkeypatch.delenv(RESUME_ENV, raising=False)
    run = _unfinished_copy(saved_run, tmp_path)
    damage, name = DAMAGE[case]
    damage(run / "sft" / "checkpoint-2")
    with pytest.raises(CheckpointError) as info:
        last_checkpoint(run / "sft", cleanup=True)
    msg = str(info.value)
    assert str(run / "sft" / "checkpoint-2") in msg and name in msg and "--resume-from previous" in msg, msg
    assert (run / "sft" / "checkpoint-2").is_dir()  # nothing removed without being asked

    # asked for: the damaged one is set aside, the one before it is used
    monkeypatch.setenv(RESUME_ENV, "previous")
    assert last_checkpoint(run / "sft", cleanup=True) == str(run / "sft" / "checkpoint-1")
    assert (run / "sft" / "damaged-checkpoint-2").is_dir() and not (run / "sft" / "checkpoint-2").exists()


def test_a_checkpoint_whose_save_was_cut_short_is_never_loaded(saved_run, tmp_path, monkeypatch):
    """Every file transformers writes, trainer_state.json included, but no record: the stop came between the
    last file and the record (the moment the old check, 'trainer_state.json parses', took it as complete)."""
    monkeypatch.delenv(RESUME_ENV, raising=False)
    run = _unfinished_copy(saved_run, tmp_path)
    shutil.copytree(run / "sft" / "checkpoint-2", run / "sft" / "checkpoint-3")
    (run / "sft" / "checkpoint-3" / RECORD).unlink()
    assert last_checkpoint(run / "sft", cleanup=True) == str(run / "sft" / "checkpoint-2")
    assert not (run / "sft" / "checkpoint-3").exists()


def test_train_reports_a_damaged_checkpoint_in_one_line_and_falls_back_when_asked(saved_run, tmp_path):
    _, model, data = saved_run
    run = _unfinished_copy(saved_run, tmp_path)
    _truncate("model.safetensors")(run / "sft" / "checkpoint-2")
    refused = subprocess.run(_cmd(run, model, data), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr, refused.stderr[-3000:]
    error = " ".join(refused.stderr.split())
    assert "checkpoint-2: damaged checkpoint: model.safetensors has" in error and "--resume-from previous" in error

    again = subprocess.run(_cmd(run, model, data, "--resume-from", "previous"), cwd=REPO, env=_env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    stage = json.loads((run / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done" and stage["resumed_from"].endswith("checkpoint-1") and stage["global_step"] == 2
