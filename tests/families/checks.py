"""Checks every family beyond Qwen-VL goes through (glm4v, qwen3_5, qwen3_5_moe, qwen3_vl_moe): each family's
test module calls them with its own name, so a family is either supported on every path or its test fails.

Fast checks load the `test`-size tiny model once per family (a module fixture); the slow ones train it:
cold-start SFT -> GRPO (PTST, a video stage) -> the stage's evaluation -> `eval run` with a strategy, and DPO.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from visionr1.models import families

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny"
# image sizes as varied as real data (MATH-V: 54x40 .. 2520x8526), thin strips included
SIZES = ((28, 28), (54, 40), (112, 140), (300, 200), (40, 600), (1600, 90), (640, 480), (30, 2000))


def image(w: int, h: int, seed: int = 0) -> Image.Image:
    img = Image.new("RGB", (w, h), (40 * seed % 255, 120, 200))
    ImageDraw.Draw(img).rectangle([w // 4, h // 4, w // 2, h // 2], fill=(250, 20, 20))
    return img


def load(model_dir: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(model_dir), AutoProcessor.from_pretrained(model_dir)


def prompt_inputs(processor, images: list, question: str = "How many red shapes?"):
    """Through TRL's own message preparation, as the trainers build prompts."""
    from trl.data_utils import prepare_multimodal_messages

    from visionr1.data.prompts import user_prompt

    msgs = prepare_multimodal_messages(user_prompt(question, len(images)), images=images)
    text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    return text, processor(text=[text], images=images or None, return_tensors="pt")


# ---------------------------------------------------------------------------------------------------------------
# fast checks
# ---------------------------------------------------------------------------------------------------------------


def check_lookup(name: str, model) -> None:
    fam = families.family(name)
    assert families.family_of(model) is fam and families.family_of(f"tiny:{name}/test") is fam
    assert families.guess_from_path(f"tiny:{name}/demo") is fam
    assert name in families.names()


def check_real_classes(name: str, model, processor, classes: tuple[str, str, str, str]) -> None:
    model_cls, proc_cls, image_cls, tok_cls = classes
    assert type(model).__name__ == model_cls
    assert type(processor).__name__ == proc_cls
    assert type(processor.image_processor).__name__ == image_cls
    assert type(processor.tokenizer).__name__ == tok_cls
    fam, tok = families.family(name), processor.tokenizer
    assert model.config.image_token_id == tok.convert_tokens_to_ids(fam.image_token)
    assert model.config.video_token_id == tok.convert_tokens_to_ids(fam.video_token)
    assert tok.eos_token == fam.tokens.eos and tok.pad_token == fam.tokens.pad
    stops = [tok.convert_tokens_to_ids(t) for t in (fam.tokens.eos, fam.tokens.pad, *fam.tokens.stop)]
    assert model.generation_config.eos_token_id == list(dict.fromkeys(stops))
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):  # one token each, kept by skip_special_tokens
        ids = tok(tag, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.decode(ids, skip_special_tokens=True) == tag


def check_image_tokens(name: str, processor) -> None:
    """The placeholder the template writes is the family's, and the count the budget code predicts (data
    inspect, --dry-run, SFT length checks) is the processor's own, image by image."""
    from visionr1.data.budget import ImageBudget
    from visionr1.training.plan import sequence_lengths

    fam = families.family(name)
    size = processor.image_processor.size
    lo, hi = size["shortest_edge"], size["longest_edge"]
    budget = ImageBudget(max_pixels=hi, min_pixels=lo, factor=fam.patch_factor, family=name)
    image_id = processor.tokenizer.convert_tokens_to_ids(fam.image_token)
    rows = []
    for i, (w, h) in enumerate(SIZES):
        text, inputs = prompt_inputs(processor, [image(w, h, i)])
        assert text.count(fam.image_token) == 1
        got = int((inputs["input_ids"] == image_id).sum())
        assert got == budget.tokens(w, h) == fam.image_tokens(w, h, lo, hi), (w, h, got)
        assert got <= budget.max_tokens or min(w, h) * 50 < max(w, h)  # over the cap: thin strips only
        rows.append({"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}],
                     "images": [image(w, h, i)], "completion": [{"role": "assistant", "content": "<think>a</think>"}]})
    # the SFT length check's cheap count equals the processor's
    from datasets import Dataset

    ds = Dataset.from_list([{"id": str(i), **r} for i, r in enumerate(rows)])
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    for (_, p, c), row in zip(sequence_lengths(ds, processor, fam), ds, strict=True):
        prompt = prepare_multimodal_messages(row["prompt"], images=row["images"])
        text = apply_chat_template({"prompt": prompt, "completion": row["completion"]}, processor)
        ids = processor(images=row["images"], text=[text["prompt"] + text["completion"]], return_tensors="pt")
        assert p + c == ids["input_ids"].shape[1]


def check_sft_completion(name: str, processor, closes_itself: bool) -> None:
    """What SFT trains on: the completion TRL renders from visionr1's assistant turn (content as text parts, the
    way TRL's vision collator always passes it) is the answer's text, never a list's repr, and ends with a
    token that stops generation (the template's own end of turn, else the eos visionr1 appends)."""
    from datasets import Dataset
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    from visionr1.data.prompts import assistant_turn, assistant_turn_left_open, user_prompt
    from visionr1.training.sft import close_open_turns

    assert assistant_turn_left_open(processor) == (not closes_itself)
    answer = "<think>I count.</think><answer> 3 </answer>"
    ds = Dataset.from_list([{"prompt": user_prompt("How many?", 1), "completion": assistant_turn(answer),
                             "images": [image(56, 56)]}])
    row = close_open_turns(ds, processor)[0]
    ex = {"prompt": prepare_multimodal_messages(row["prompt"], images=row["images"]),
          "completion": prepare_multimodal_messages(row["completion"], images=[])}
    text = apply_chat_template(ex, processor)["completion"]
    assert "{'type'" not in text and "I count." in text and "<answer> 3 </answer>" in text, text
    fam = families.family(name)
    stops = {fam.tokens.eos, fam.tokens.pad, *fam.tokens.stop}
    assert any(text.rstrip().endswith(t) for t in stops), text


def check_freeze(name: str, model) -> None:
    from visionr1.training.freeze import apply_freeze, part_of

    names = [n for n, _ in model.named_parameters()]
    assert all(part_of(n) is not None for n in names), [n for n in names if part_of(n) is None][:5]
    counts = apply_freeze(model, ["vision_tower", "projector"])
    assert counts["vision_tower"] > 0 and counts["projector"] > 0
    for n, p in model.named_parameters():
        assert p.requires_grad == (part_of(n) == "language_model"), n
    for p in model.parameters():
        p.requires_grad_(True)


def check_lora(name: str, model, processor, expect: tuple[str, ...], never: tuple[str, ...]) -> None:
    """The family's LoRA targets (``model.lora.target_modules: family``) exist in its language model
    (``expect``: module names that must be adapted),
    none of ``never`` (fused experts, routers: not linear layers) is, and a loss backpropagates into them."""
    import copy

    from peft import LoraConfig, get_peft_model

    fam = families.family(name)
    peft = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=fam.lora_target_regex))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in peft.named_parameters() if ".lora_A." in n}
    leaves = {a.rsplit(".", 1)[-1] for a in adapted}
    assert set(expect) <= leaves, (expect, leaves)
    assert not any(bad in a for a in adapted for bad in never), [a for a in adapted if any(b in a for b in never)]
    assert all(".visual." not in a for a in adapted)  # the vision tower keeps its weights under the LM's targets
    _, inputs = prompt_inputs(processor, [image(112, 112)])
    out = peft(**inputs, labels=inputs["input_ids"])
    out.loss.backward()
    grads = [p.grad for n, p in peft.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads)


def check_checkpoint_names(model_dir: Path, tmp_path: Path) -> None:
    """Resume: a checkpoint saved under the on-disk names loads back weight for weight (what StrictResumeMixin
    does when a GRPO run resumes)."""
    from transformers import AutoModelForImageTextToText

    from visionr1.training.checkpoints import load_checkpoint_weights

    saved = AutoModelForImageTextToText.from_pretrained(model_dir)
    with torch.no_grad():
        for p in saved.parameters():
            p.add_(0.5)
    saved.save_pretrained(tmp_path / "ckpt")
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    load_checkpoint_weights(model, tmp_path / "ckpt")
    for (k, a), b in zip(model.state_dict().items(), saved.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def check_video(name: str, model, processor) -> None:
    """A video prompt (4 frames) through the family's own video processor and the model. (visionr1's video data
    reaches the trainers as frames, i.e. images: data/video.py; this is the processor's native path.)"""
    import numpy as np

    fam = families.family(name)
    msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]
    text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    frames = np.stack([np.full((56, 84, 3), 30 * i, np.uint8) for i in range(4)])
    # frames already sampled (GLM's processor would otherwise need the clip's fps to sample them itself)
    inputs = processor(text=[text], videos=[frames], do_sample_frames=False, return_tensors="pt")
    vid = processor.tokenizer.convert_tokens_to_ids(fam.video_token)
    img = processor.tokenizer.convert_tokens_to_ids(fam.image_token)
    # GLM frames each video frame as an image (<|image|> tokens inside <|begin_of_video|>): either counts
    assert int((inputs["input_ids"] == vid).sum()) + int((inputs["input_ids"] == img).sum()) > 0
    assert "pixel_values_videos" in inputs
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()


def check_moe_checkpoint_after_sft_generates(model_dir: Path, tmp_path: Path) -> None:
    """An MoE checkpoint written by an SFT stage has ``output_router_logits`` on (TRL's SFTTrainer sets it):
    the loaders turn it off, so batched, cached generation (GRPO rollouts, DPO sampling, eval) runs."""
    from transformers import AutoModelForImageTextToText

    from visionr1.inference import load_model_and_processor as load_for_inference
    from visionr1.recipe import ModelSpec
    from visionr1.training.loading import load_model

    saved = AutoModelForImageTextToText.from_pretrained(model_dir)
    saved.config.get_text_config().output_router_logits = True
    saved.save_pretrained(tmp_path / "sft-final")
    for name in ("preprocessor_config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja", "video_preprocessor_config.json"):
        if (model_dir / name).exists():
            (tmp_path / "sft-final" / name).write_bytes((model_dir / name).read_bytes())
    for model, processor in ((load_model(str(tmp_path / "sft-final"), ModelSpec(path="x"), [], None), None),
                             load_for_inference(tmp_path / "sft-final", device="cpu")):
        processor = processor or load(tmp_path / "sft-final")[1]
        processor.tokenizer.padding_side = "left"
        texts = [prompt_inputs(processor, [image(112, 112)], q)[0] for q in ("How many?", "Count the shapes here.")]
        inputs = processor(text=texts, images=[image(112, 112), image(64, 200)], padding=True, return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
        assert out.shape[0] == 2


def placeholder_samples(model, processor, name: str, n: int = 8, tokens: int = 32) -> int:
    """How often sampling (temperature 1) from the random tiny model emits the image placeholder token: the
    known defect that then crashes TRL's loss forward ("Image features and image tokens do not match")."""
    fam = families.family(name)
    _, inputs = prompt_inputs(processor, [image(112, 112)])
    torch.manual_seed(0)
    out = model.generate(**inputs, do_sample=True, temperature=1.0, max_new_tokens=tokens, min_new_tokens=tokens,
                         num_return_sequences=n)
    ids = {processor.tokenizer.convert_tokens_to_ids(t) for t in (fam.image_token, fam.video_token)}
    return sum(int((out[:, inputs["input_ids"].shape[1]:] == i).sum()) for i in ids)


def check_recipe(name: str, tmp_path: Path, max_tokens: int) -> None:
    """recipes/families/<family>.yaml plans for 8 processes (no GPU, model or data), and its image budget is
    shown in the family's tokens."""
    from typer.testing import CliRunner

    from visionr1.cli import app

    res = CliRunner().invoke(app, ["train", str(REPO / "recipes" / "families" / f"{name}.yaml"), "--dry-run",
                                   "--plan-only", "--num-processes", "8", "--output-dir", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output[res.output.index("{"):])
    assert families.guess_from_path(plan["model"]["path"]).patch_factor == families.family(name).patch_factor
    assert plan["image_budget"]["max_tokens_per_image"] == max_tokens
    assert plan["world_size"] == 8 and not (tmp_path / "run").exists()


def check_data_inspect(name: str, processor, tmp_path: Path) -> None:
    """`data inspect RECIPE model.path=tiny:F/test` counts each image's tokens the family's way: the min / mean /
    max it prints are the processor's own counts of the stored (budget-resized) images."""
    import re

    from typer.testing import CliRunner

    from visionr1.cli import app

    fam = families.family(name)
    rows = []
    for i, (w, h) in enumerate(SIZES):
        image(w, h, i).save(tmp_path / f"i{i}.png")
        rows.append({"id": f"r{i}", "images": [f"i{i}.png"], "question": "<image>How many?", "solution": "1",
                     "task": "count"})
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    budget = 40000
    res = CliRunner().invoke(app, ["data", "inspect", str(TINY / "grpo.yaml"), f"model.path=tiny:{name}/test",
                                   f"model.max_pixels={budget}", f"stages.0.dataset.path={tmp_path / 'd.jsonl'}",
                                   "--show", "0"], terminal_width=200)
    assert res.exit_code == 0, res.output
    got = re.search(r"(\d+) images: (\d+) / ([\d.]+) / (\d+) tokens", res.output)
    assert got, res.output
    processor.image_processor.size = {"shortest_edge": min(processor.image_processor.size["shortest_edge"], budget),
                                      "longest_edge": budget}
    from visionr1.data.loaders import load_samples
    from visionr1.recipe import load_recipe

    recipe = load_recipe(TINY / "grpo.yaml", [f"model.path=tiny:{name}/test", f"model.max_pixels={budget}",
                                              f"stages.0.dataset.path={tmp_path / 'd.jsonl'}"])
    stored = [im for r in load_samples(recipe.stages[0].dataset).dataset for im in r["images"]]
    image_id = processor.tokenizer.convert_tokens_to_ids(fam.image_token)
    counts = [int((prompt_inputs(processor, [im])[1]["input_ids"] == image_id).sum()) for im in stored]
    assert (int(got[1]), int(got[2]), float(got[3]), int(got[4])) == (
        len(counts), min(counts), round(sum(counts) / len(counts), 1), max(counts)), res.output


# ---------------------------------------------------------------------------------------------------------------
# slow: the pipeline
# ---------------------------------------------------------------------------------------------------------------


def write_data(root: Path) -> dict[str, Path]:
    """Counting records (SFT with completions, one to three images), prompts of varied lengths and image sizes
    for GRPO, a small video set, and the synthetic benchmark's test split."""
    from tests.training.conftest import _write_video, write_varied_grpo

    from visionr1.tasks.synthetic import make_synthetic

    syn = make_synthetic("counting", 8, 0, root / "syn", test_fraction=0.5)
    rows = [json.loads(line) for line in (root / "syn" / "train.jsonl").read_text().splitlines()]
    sft = []
    for i, r in enumerate(rows):
        k = 1 + i % 3
        imgs = [str((root / "syn" / rows[(i + j) % len(rows)]["images"][0]).resolve()) for j in range(k)]
        sft.append({**r, "id": f"sft-{i}", "images": imgs, "question": "<image>" * k + " " + r["question"],
                    "completion": f"<think>I count.</think><answer> Final Answer:{r['solution']} </answer>"})
    (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    videos = []
    for i in range(2):
        path = _write_video(root / "videos" / f"v{i}.mp4", shade=60 * i)
        videos.append({"id": f"video-{i}", "video": str(path), "question": "How bright?", "solution": str(i)})
    (root / "video.jsonl").write_text("".join(json.dumps(r) + "\n" for r in videos))
    return {"sft": root / "sft.jsonl", "grpo": write_varied_grpo(root / "varied", n=4), "video": root / "video.jsonl",
            "syn": syn, "syn_train": root / "syn" / "train.jsonl"}


def run_pipeline(name: str, model_dir: Path, data: dict[str, Path], out: Path) -> dict:
    """Cold-start SFT (1 step, 1-3 images per record) -> PTST-1 GRPO (varied prompts, 1 step) -> PTST-2 GRPO on
    video frames (1 step) with its evaluation, then `eval run` of the final weights with a strategy."""
    from tests.training.conftest import read_jsonl

    from visionr1.evaluation.run import DecodingConfig, run_benchmark
    from visionr1.evaluation.strategies import parse_strategy
    from visionr1.recipe import load_recipe
    from visionr1.training.runner import main

    recipe = load_recipe(TINY / "ptst.yaml", [
        f"model.path={model_dir}", "model.max_pixels=12544",
        f"stages.sft.dataset.path={data['sft']}", "stages.sft.sft.max_steps=1",
        f"stages.ptst-1.dataset.path={data['grpo']}", "stages.ptst-1.grpo.max_steps=1",
        "stages.ptst-1.grpo.per_device_train_batch_size=4", "stages.ptst-1.grpo.num_generations=2",
        "stages.ptst-1.grpo.max_completion_length=8",
        f"stages.ptst-2.dataset={{format: video, path: {data['video']}, video: {{num_frames: 2, max_pixels: 3136}}}}",
        "stages.ptst-2.grpo.max_steps=1", "stages.ptst-2.grpo.max_completion_length=12",
        f"stages.ptst-2.eval_dataset={{format: jsonl, path: {data['syn_train']}, limit: 2}}",
    ])
    summary = main(recipe, output_dir=out / "run")
    assert summary["stages"] == {"sft": "done", "ptst-1": "done", "ptst-2": "done"}, summary
    metrics = read_jsonl(out / "run" / "metrics.jsonl")
    train = [r for r in metrics if r["kind"] == "train"]
    assert {r["stage"] for r in train} == {"sft", "ptst-1", "ptst-2"}
    evals = [r for r in metrics if r["kind"] == "eval"]
    assert len(evals) == 1 and evals[0]["eval/n"] == 2
    samples = read_jsonl(out / "run" / "completions.jsonl")
    assert any(s["prompt"].count("<image>") == 2 for s in samples if s["stage"] == "ptst-2")  # 2 video frames

    final = out / "run" / "ptst-2" / "final"
    decoding = DecodingConfig(max_new_tokens=6, temperature=1.0, top_p=0.95, batch_size=4, seed=3)
    ev = run_benchmark("synthetic", final, data["syn"], out / "eval", decoding, limit=2,
                       strategy=parse_strategy("best-of-n:n=2"))
    assert ev["n"] == 2 and 0 <= ev["accuracy"] <= 1 and ev["strategy"]["name"] == "best-of-n"
    return summary


def run_dpo(name: str, model_dir: Path, data: dict[str, Path], out: Path) -> None:
    """One DPO iteration: sample 2 responses for 2 prompts, pair best and worst, one DPO step."""
    from visionr1.recipe import load_recipe
    from visionr1.training.runner import main

    recipe = load_recipe(TINY / "dpo.yaml", [
        f"model.path={model_dir}", f"stages.dpo.dataset.path={data['syn_train']}", "stages.dpo.iterations=1",
        "stages.dpo.prompts_per_iteration=2", "stages.dpo.sampling.max_new_tokens=8", "stages.dpo.dpo.max_steps=1",
    ])
    summary = main(recipe, output_dir=out / "dpo")
    assert summary["stages"] == {"dpo": "done"}, summary
