"""SFT stages on the tiny model: a two-stage curriculum on multi-image data, each stage from the previous one's
weights, with freezing that holds (frozen weights bit-identical, the others changed)."""

from __future__ import annotations

import textwrap

import pytest
import torch

from visionr1.recipe import load_recipe
from visionr1.training.freeze import part_of
from visionr1.training.runner import main

from .conftest import TINY, load_state, read_jsonl

pytestmark = pytest.mark.slow


def test_sft_curriculum_with_freezing(tmp_path, tiny_model_dir, tiny_data):
    recipe_file = tmp_path / "curriculum.yaml"
    recipe_file.write_text(textwrap.dedent(f"""
        # test recipe: two SFT stages (multi-image first), freezing per stage
        include: {TINY / 'sft.yaml'}
        name: tiny-curriculum
        model: {{path: {tiny_model_dir}}}
        stages:
          - name: multi-image
            type: sft
            freeze: [vision_tower]
            dataset: {{format: jsonl, path: {tiny_data['multi']}}}
            sft: {{max_steps: 2, learning_rate: 1.0e-3, per_device_train_batch_size: 2, bf16: false,
                  gradient_checkpointing: false, save_steps: 1}}
          - name: reasoning
            type: sft
            freeze: [vision_tower, language_model]     # projector only
            dataset: {{format: jsonl, path: {tiny_data['sft']}}}
            sft: {{max_steps: 1, learning_rate: 1.0e-3, per_device_train_batch_size: 2, bf16: false,
                  gradient_checkpointing: false}}
        """))
    recipe = load_recipe(recipe_file)
    summary = main(recipe, output_dir=tmp_path / "run")
    run = tmp_path / "run"
    assert summary["stages"] == {"multi-image": "done", "reasoning": "done"}

    base = load_state(tiny_model_dir)
    first = load_state(run / "multi-image" / "final")
    second = load_state(run / "reasoning" / "final")

    def moved(a, b, part):
        names = [n for n in a if part_of(n) == part]
        assert names, part
        return {n: not torch.equal(a[n], b[n]) for n in names}

    # stage 1 froze the vision tower: bit-identical; the language model and projector learned
    assert not any(moved(base, first, "vision_tower").values())
    assert any(moved(base, first, "language_model").values())
    assert any(moved(base, first, "projector").values())
    # stage 2 started from stage 1's weights and trained the projector only
    assert not any(moved(first, second, "vision_tower").values())
    assert not any(moved(first, second, "language_model").values())
    assert all(moved(first, second, "projector").values())

    metrics = read_jsonl(run / "metrics.jsonl")
    train = [(r["stage"], r["step"], r["run_step"]) for r in metrics if r["kind"] == "train"]
    assert train == [("multi-image", 1, 1), ("multi-image", 2, 2), ("reasoning", 1, 3)]
    assert all(r["loss"] > 0 for r in metrics if r["kind"] == "train")
    assert list((run / "tensorboard" / "multi-image").glob("events.out.tfevents.*"))
    assert (run / "reasoning" / "final" / "processor_config.json").is_file()  # the next stage's processor
    manifest = __import__("json").loads((run / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done", "done"]
    assert manifest["stages"][1]["global_step"] == 1
    assert (run / "ptst.png").is_file()


def test_lora_stage_hands_merged_weights_to_the_next(tmp_path, tiny_model_dir, tiny_data):
    recipe = load_recipe(
        TINY / "sft.yaml",
        [f"model.path={tiny_model_dir}", "model.lora={r: 4, alpha: 8}", "model.freeze=[vision_tower]",
         f"stages.sft.dataset.path={tiny_data['sft']}", "stages.sft.sft.max_steps=1",
         "stages.sft.sft.learning_rate=1.0e-2"],
    )
    main(recipe, output_dir=tmp_path / "run")
    final = tmp_path / "run" / "sft" / "final"
    base, merged = load_state(tiny_model_dir), load_state(final)
    assert set(merged) == set(base)  # plain weights, no lora_A/lora_B: the next stage loads them as a model
    changed = {part_of(k) for k in base if not torch.equal(base[k], merged[k])}
    assert changed == {"language_model"} or changed == {"language_model", "projector"}  # adapters merged
    assert (final / "adapter" / "adapter_config.json").is_file()
