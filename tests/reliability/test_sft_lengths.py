"""The SFT length check covers every record, not the first 16: a record past them whose answer would be cut
off by `sft.max_length` (loss 0: nothing learned from it) is refused before training, saying what is cut."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionr1.training.plan import PlanError

REPO = Path(__file__).resolve().parents[2]
SIZES = ((28, 28), (112, 112), (300, 40), (64, 900), (500, 500))


def _records(root: Path, n: int, long_at: dict[int, int]) -> Path:
    """``n`` SFT records with images of varied sizes; record i in ``long_at`` gets an answer of that many words."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        Image.new("RGB", (w, h), (10 * i % 255, 80, 160)).save(root / f"{i}.png")
        answer = " ".join(["step"] * long_at.get(i, 3))
        rows.append({"id": f"r{i}", "images": [f"{i}.png"], "question": "<image>How many?" + " Look." * (i % 4),
                     "solution": "1", "task": "count", "completion": f"<think>{answer}</think><answer>1</answer>"})
    (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "sft.jsonl"


def _preflight(tmp_path, model, data, max_length):
    from visionr1.recipe import load_recipe
    from visionr1.training.runner import preflight

    recipe = load_recipe(REPO / "recipes" / "tiny" / "sft.yaml", [
        f"model.path={model}", f"stages.sft.dataset.path={data}", f"stages.sft.sft.max_length={max_length}",
        "model.max_pixels=40000"])
    return preflight(recipe, tmp_path / "run", 1, [0])


@pytest.mark.parametrize(("n", "long_at"), [(20, {17: 400}), (40, {16: 300, 33: 500}), (18, {17: 2000})])
def test_a_long_record_past_the_first_16_is_refused_naming_it(tmp_path, tiny_model_dir, n, long_at):
    data = _records(tmp_path / "data", n, long_at)
    with pytest.raises(PlanError) as info:
        _preflight(tmp_path, tiny_model_dir, data, max_length=256)
    msg = str(info.value)
    assert f"{len(long_at)} of {n} records are longer than sft.max_length (256)" in msg, msg
    assert all(f"r{i}" in msg for i in long_at) and "the answer" in msg and "Fix:" in msg
    _preflight(tmp_path, tiny_model_dir, data, max_length=8192)  # long enough: no complaint


def test_the_cheap_lengths_equal_the_processors(tmp_path, tiny_model_dir):
    """Prompt tokens counted from the text and image sizes equal what the processor makes, image by image."""
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    from visionr1.data.loaders import load_samples
    from visionr1.recipe import load_recipe
    from visionr1.training.loading import load_processor
    from visionr1.training.plan import sequence_lengths

    data = _records(tmp_path / "data", 10, {3: 50})
    recipe = load_recipe(REPO / "recipes" / "tiny" / "sft.yaml", [f"model.path={tiny_model_dir}",
                                                                   f"stages.sft.dataset.path={data}", "model.max_pixels=40000"])
    dataset = load_samples(recipe.stages[0].dataset).dataset
    processor = load_processor(str(tiny_model_dir), recipe.model)
    for (rid, p, c), row in zip(sequence_lengths(dataset, processor), dataset, strict=True):
        prompt = prepare_multimodal_messages(row["prompt"], images=row["images"])
        text = apply_chat_template({"prompt": prompt, "completion": row["completion"]}, processor)
        ids = processor(images=row["images"], text=[text["prompt"] + text["completion"]], return_tensors="pt")["input_ids"]
        assert p + c == ids.shape[1], (rid, p, c, ids.shape[1])
