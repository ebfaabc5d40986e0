"""`visionr1 train` starts a child process per stage, except where a child would only repeat the parent's start-up:
a single pending stage, one plain process, no evaluation after it (``runner.trains_in_parent``). The launcher
here is the one the CLI would pass; it records which stages it was asked to run and fails them, so a stage
it was given never trains."""

from __future__ import annotations

import pytest

from visionr1.recipe import load_recipe
from visionr1.training.runner import StageFailed, main

from .conftest import TINY


def _recipe(tiny_model_dir, tiny_data, *extra):
    return load_recipe(TINY / "ptst.yaml", [
        f"model.path={tiny_model_dir}", f"stages.sft.dataset.path={tiny_data['sft']}", "stages.sft.sft.max_steps=1",
        f"stages.ptst-1.dataset.path={tiny_data['grpo']}", f"stages.ptst-2.dataset.path={tiny_data['grpo']}",
        "stages.ptst-2.enabled=false", "logging.plot=false", *extra,
    ])


def test_one_plain_stage_trains_in_the_parent_and_more_stages_each_in_a_child(tmp_path, tiny_model_dir, tiny_data):
    asked: list[str] = []

    def launcher(name: str) -> int:
        asked.append(name)
        return 1

    one = _recipe(tiny_model_dir, tiny_data, "stages.ptst-1.enabled=false")
    summary = main(one, output_dir=tmp_path / "one", launcher=launcher)
    assert asked == [] and summary["stages"] == {"sft": "done"} and summary["trained"] == ["sft"]

    two = _recipe(tiny_model_dir, tiny_data)
    with pytest.raises(StageFailed, match="stage sft failed"):
        main(two, output_dir=tmp_path / "two", launcher=launcher)
    assert asked == ["sft"]

    # the same two stages with the first finished: the one left trains here
    asked.clear()
    (tmp_path / "two").rename(tmp_path / "gone")
    (tmp_path / "one").rename(tmp_path / "two")
    resumed = main(two, output_dir=tmp_path / "two", launcher=launcher)
    assert asked == [] and resumed["trained"] == ["ptst-1"] and resumed["stages"] == {"sft": "done", "ptst-1": "done"}


@pytest.mark.parametrize("extra", [
    ["launch.num_processes=2", "stages.sft.sft.per_device_train_batch_size=1"],  # accelerate launch
    ["launch.args=[--mixed_precision, 'no']"],                                 # a launch of its own
    ["stages.sft.eval_dataset={format: jsonl, path: EVAL}"],                   # evaluation after it
])
def test_a_single_stage_still_gets_a_child_when_it_needs_one(tmp_path, tiny_model_dir, tiny_data, extra):
    asked: list[str] = []
    extra = [e.replace("EVAL", str(tiny_data["grpo"])) for e in extra]
    recipe = _recipe(tiny_model_dir, tiny_data, "stages.ptst-1.enabled=false", *extra)
    with pytest.raises(StageFailed):
        main(recipe, output_dir=tmp_path / "run", launcher=lambda name: asked.append(name) or 1)
    assert asked == ["sft"]
