"""Damaged and half-saved checkpoints: verified before loading, reported in one line naming the file, and
never skipped silently; ``--resume-from previous`` falls back to the checkpoint before a damaged one.

The checkpoints are real: a 2-step SFT run of the tiny model saving after each step; each row below damages a
copy of it the way a disk, a user or a stopped save would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from visionr1.training.checkpoints import RECORD, RESUME_ENV, CheckpointError
from visionr1.training.runner import last_checkpoint

pytestmark = pytest.mark.slow


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
def test_a_damaged_checkpoint_is_an_error_naming_the_file(sft_run, tmp_path, monkeypatch, case):
    monkeypatch.delenv(RESUME_ENV, raising=False)
    run = sft_run.unfinished(tmp_path)
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


def test_a_checkpoint_whose_save_was_cut_short_is_never_loaded(sft_run, tmp_path, monkeypatch):
    """Every file transformers writes, trainer_state.json included, but no record: the stop came between the
    last file and the record (the moment the old check, 'trainer_state.json parses', took it as complete)."""
    monkeypatch.delenv(RESUME_ENV, raising=False)
    run = sft_run.unfinished(tmp_path)
    shutil.copytree(run / "sft" / "checkpoint-2", run / "sft" / "checkpoint-3")
    (run / "sft" / "checkpoint-3" / RECORD).unlink()
    assert last_checkpoint(run / "sft", cleanup=True) == str(run / "sft" / "checkpoint-2")
    assert not (run / "sft" / "checkpoint-3").exists()


def test_train_reports_a_damaged_checkpoint_in_one_line_and_falls_back_when_asked(sft_run, tmp_path):
    run = sft_run.unfinished(tmp_path)
    _truncate("model.safetensors")(run / "sft" / "checkpoint-2")
    refused = sft_run.train(run)
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr, refused.stderr[-3000:]
    error = " ".join(refused.stderr.split())
    assert "checkpoint-2: damaged checkpoint: model.safetensors has" in error and "--resume-from previous" in error

    again = sft_run.train(run, "--resume-from", "previous")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    stage = json.loads((run / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done" and stage["resumed_from"].endswith("checkpoint-1") and stage["global_step"] == 2
