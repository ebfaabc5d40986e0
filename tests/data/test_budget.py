"""One image budget per run: model.max_pixels drives the processor and the loader's resize; a dataset value
that differs is an error naming both; --dry-run and data inspect show what it costs in image tokens."""

from __future__ import annotations

import json

import pytest
import yaml
from tests.varied import SIZES, write_geometry3k
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.config.base import RecipeError
from visionr1.data.budget import ImageBudget, image_tokens, token_stats
from visionr1.recipe import load_recipe


def recipe_file(tmp_path, model: dict, dataset: dict, eval_dataset: dict | None = None):
    stage = {"name": "rl", "type": "grpo", "dataset": dataset, "rewards": [{"name": "accuracy"}],
             "grpo": {"max_steps": 1, "num_generations": 2, "per_device_train_batch_size": 2}}
    if eval_dataset:
        stage["eval_dataset"] = eval_dataset
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "b", "model": {"path": "tiny:qwen2_5_vl/test", **model}, "stages": [stage]}))
    return path


def test_conflicting_budgets_are_an_error_naming_both(tmp_path):
    data = write_geometry3k(tmp_path / "d", 8, 0)
    path = recipe_file(tmp_path, {"max_pixels": 1003520}, {"format": "geometry3k", "path": str(data), "max_pixels": 401408})
    with pytest.raises(RecipeError, match=r"stages\[0\]\.dataset\.max_pixels \(401,408\) conflicts with model\.max_pixels \(1,003,520\)"):
        load_recipe(path)
    path = recipe_file(tmp_path, {}, {"format": "geometry3k", "path": str(data), "max_pixels": 401408},
                       {"format": "geometry3k", "path": str(data), "max_pixels": 200704})
    with pytest.raises(RecipeError, match=r"stages\[0\]\.dataset\.max_pixels \(401,408\) and stages\[0\]\.eval_dataset"):
        load_recipe(path)


def test_model_budget_reaches_the_loader(tmp_path):
    """The 7B recipe's 1,003,520 used to be cut to the dataset default 401,408 without a word."""
    from visionr1.data.loaders import load_samples

    data = write_geometry3k(tmp_path / "d", 8, 0)
    recipe = load_recipe(recipe_file(tmp_path, {"max_pixels": 1003520}, {"format": "geometry3k", "path": str(data)}))
    assert recipe.stages[0].dataset.max_pixels == recipe.model.max_pixels == 1003520
    result = load_samples(recipe.stages[0].dataset)
    biggest = max(stored[0] * stored[1] for _, stored in result.image_sizes)
    assert 900_000 < biggest <= 1003520  # the 2000x8000 image, resized to this run's budget and not below it
    # one value given on a dataset only: the processor gets it too
    only = load_recipe(recipe_file(tmp_path, {}, {"format": "geometry3k", "path": str(data), "max_pixels": 200704}))
    assert only.model.max_pixels == 200704
    # nothing given: the default, for both
    neither = load_recipe(recipe_file(tmp_path, {}, {"format": "geometry3k", "path": str(data)}))
    assert neither.model.max_pixels == neither.stages[0].dataset.max_pixels == 401408


def test_token_count_is_the_processors(tiny_model_dir):
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    size = processor.image_processor.size
    lo, hi = size.shortest_edge, size.longest_edge
    for w, h in (*SIZES, (5600, 28)):
        grid = processor.image_processor(images=[Image.new("RGB", (w, h))], return_tensors="pt")["image_grid_thw"][0]
        assert image_tokens(w, h, lo, hi, 28) == int(grid.prod()) // 4, (w, h)


def test_dry_run_and_inspect_show_tokens_per_image(tmp_path):
    data = write_geometry3k(tmp_path / "d", 8, 0)
    path = recipe_file(tmp_path, {"max_pixels": 200704}, {"format": "geometry3k", "path": str(data)})
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(path), "--dry-run"])
    assert res.exit_code == 0, res.output
    budget = json.loads(res.output)["image_budget"]
    assert budget["max_pixels"] == 200704 and budget["max_tokens_per_image"] == 256
    stats = budget["stages"]["rl"]
    assert stats["images"] == 10 and stats["tokens_min"] < 10 and stats["tokens_max"] >= 256 and stats["resized"] >= 3
    res = runner.invoke(app, ["data", "inspect", str(path)])
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "image budget" in flat and "max_pixels 200,704 (256 tokens" in flat
    assert f"10 images: {stats['tokens_min']} / {stats['tokens_mean']} / {stats['tokens_max']} tokens" in flat


def test_token_stats_counts_resized_and_thin_strips():
    budget = ImageBudget(max_pixels=50176)
    stats = token_stats([((28, 28), (28, 28)), ((8000, 2000), (448, 112)), ((5600, 28), (5600, 28))], budget)
    assert (stats["tokens_min"], stats["tokens_max"], stats["resized"], stats["over_budget"]) == (4, 113, 1, 1)


def test_saved_processor_budget_is_read(tiny_model_dir):
    from visionr1.data.budget import saved_processor_budget

    assert saved_processor_budget(tiny_model_dir) == (3136, 50176)
