"""A stage whose ``final/`` exists is finished, even when the run was killed after the rename and before the
manifest said so: the next run marks it done (with its step count) and trains nothing again. And a stage that
restarts drops the log rows of the steps it will train again."""

from __future__ import annotations

import json

import pytest

from visionr1.recipe import load_recipe
from visionr1.training.checkpoints import trim_logs
from visionr1.training.runner import main

from .conftest import TINY

pytestmark = pytest.mark.slow


def test_final_dir_means_done_after_a_kill_before_the_manifest_update(tmp_path, tiny_model_dir, tiny_data):
    recipe = load_recipe(TINY / "ptst.yaml", [
        f"model.path={tiny_model_dir}", f"stages.sft.dataset.path={tiny_data['sft']}", "stages.sft.sft.max_steps=2",
        "stages.ptst-1.enabled=false", "stages.ptst-2.enabled=false",
    ])
    run = tmp_path / "run"
    main(recipe, output_dir=run)
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    # what a SIGKILL right after os.replace(final.tmp, final) leaves: the manifest still says running
    manifest["stages"][0].update(status="running", finished=None, global_step=None, final_dir=None)
    path.write_text(json.dumps(manifest))

    summary = main(recipe, output_dir=run)
    assert summary["trained"] == [] and summary["stages"] == {"sft": "done"}
    stage = json.loads(path.read_text())["stages"][0]
    assert stage["status"] == "done" and stage["global_step"] == 2
    assert stage["final_dir"] == str(run / "sft" / "final")


def test_trim_logs_keeps_other_stages_and_steps_up_to_the_checkpoint(tmp_path):
    rows = [{"stage": "a", "step": 3}, {"stage": "b", "step": 1}, {"stage": "b", "step": 2}, {"stage": "b", "step": 3},
            {"stage": "b", "kind": "summary"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    assert trim_logs(tmp_path, "b", 1, ("m.jsonl", "absent.jsonl")) == 2
    kept = (tmp_path / "m.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in kept[:-1]] == [rows[0], rows[1], rows[4]] and kept[-1] == "not json"
