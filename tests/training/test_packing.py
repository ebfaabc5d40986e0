"""Padding-free forwards (training.packing, the stage field ``padding_free``): a packed batch gives the padded
batch's per-token log-probs and gradients within 1e-5, for every Qwen-VL family, on varied batches.

Fixtures as varied as real data (tests/varied.py): prompts of ~20 to ~1,500 characters in one batch, images from
28 px to 1:150 aspect ratio, multi-image and text-only records, and (model level) native video next to images.
Three layers: the model forward of a processor batch (video included; GRPO's TRL path takes no video), TRL's GRPO
log-prob forwards (old/reference log-probs and the loss, with gradients, ``padded_token_share`` logged), and the
SFT loss (``padding_free`` on an SFT stage)."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
import torch
from tests.varied import write_jsonl

from visionr1.recipe import load_recipe
from visionr1.training.packing import pack_batch, packed_position_ids, sequence_positions, unsupported

from .conftest import TINY, first_grpo_trainer

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
GENERATIONS = 2
TOL = 1e-5


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_grads_equal(got: dict, expected: dict, visual: list[str]) -> None:
    assert set(got) == set(expected) and any(n in got for n in visual)
    for name, g in expected.items():
        assert (got[name] - g).abs().max() < TOL, (name, (got[name] - g).abs().max())
    assert any(got[n].abs().sum() > 0 for n in visual)  # the vision tower really receives gradient


# --- model level: a processor batch with video, images, multi-image and text-only rows -------------------------


def _video_frames(n: int, size: tuple[int, int], shade: int):
    from PIL import Image

    return [Image.new("RGB", size, (shade + 20 * i, 90, 200 - 10 * i)) for i in range(n)]


def _mixed_batch(processor):
    """Left-padded rows: a video, a long prompt with a 1:150 strip, two images, a text-only prompt, a tiny image."""
    from PIL import Image

    long = "In the figure, a triangle is drawn inside a circle. " * 28  # ~1,450 characters
    rows = [
        ([{"type": "video"}, {"type": "text", "text": "How bright does it get?"}], None, _video_frames(4, (56, 84), 20)),
        ([{"type": "image"}, {"type": "text", "text": long + "What is the angle at A?"}], [Image.new("RGB", (28, 4200), (9, 120, 30))], None),
        ([{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare."}],
         [Image.new("RGB", (300, 200), (200, 10, 10)), Image.new("RGB", (54, 40), (10, 10, 200))], None),
        ([{"type": "text", "text": "Find x if 2x + 3 = 7."}], None, None),
        ([{"type": "image"}, {"type": "text", "text": "How many?"}], [Image.new("RGB", (28, 28), (1, 2, 3))], None),
    ]
    texts = [processor.apply_chat_template([{"role": "user", "content": c}], add_generation_prompt=True, tokenize=False)
             + " <think>answer</think>" * (1 + i) for i, (c, _, _) in enumerate(rows)]
    images = [im for _, ims, _ in rows if ims for im in ims]
    videos = [v for _, _, v in rows if v is not None]
    processor.tokenizer.padding_side = "left"
    batch = processor(text=texts, images=images, videos=videos, padding=True, return_tensors="pt",
                      videos_kwargs={"do_sample_frames": False})
    lengths = batch["attention_mask"].sum(1)
    assert lengths.max() > 5 * lengths.min() and "video_grid_thw" in batch and len(batch["image_grid_thw"]) == 4
    return batch


def _next_token_logps(logits, ids, mask):
    """log p(token t+1 | ..t) at every real position t whose next token is real, in row-major order."""
    lp = torch.log_softmax(logits.float(), -1)[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
    return lp[(mask[:, 1:] & mask[:, :-1]).bool()]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_packed_forward_equals_padded_with_video_images_and_text(family):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from visionr1.models import get_tiny_model

    path = get_tiny_model(family, "test")
    model = AutoModelForImageTextToText.from_pretrained(path, attn_implementation="sdpa").float().train()
    model.config.use_cache = False
    processor = AutoProcessor.from_pretrained(path)
    batch = _mixed_batch(processor)
    mask = batch["attention_mask"].bool()

    model.zero_grad()
    padded = _next_token_logps(model(**batch).logits, batch["input_ids"], mask)
    padded.mean().backward()  # a loss: the mean token log-prob
    padded_grads = _grads(model)

    packed_batch = pack_batch(model, dict(batch))
    assert packed_batch["input_ids"].shape == (1, int(mask.sum())) and "attention_mask" not in packed_batch
    assert packed_batch["position_ids"].shape == (4, 1, int(mask.sum()))
    model.zero_grad()
    logits = model(**packed_batch).logits
    starts = packed_batch["position_ids"][0, 0] == 0
    lp = torch.log_softmax(logits.float(), -1)[0, :-1].gather(-1, packed_batch["input_ids"][0, 1:, None])[:, 0]
    packed = lp[~starts[1:]]  # the first token of each sequence is not predicted from the one before
    packed.mean().backward()
    assert packed.shape == padded.shape
    assert (packed - padded).abs().max() < TOL, (packed - padded).abs().max()
    visual = [n for n, _ in model.named_parameters() if ".visual." in n]
    _assert_grads_equal(_grads(model), padded_grads, visual)


@pytest.mark.parametrize("family", FAMILIES)
def test_positions_are_the_padded_forwards_and_restart_per_sequence(family):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from visionr1.models import get_tiny_model

    path = get_tiny_model(family, "test")
    model = AutoModelForImageTextToText.from_pretrained(path)
    batch = _mixed_batch(AutoProcessor.from_pretrained(path))
    mask = batch["attention_mask"].bool()
    positions = packed_position_ids(model, batch["input_ids"], batch["attention_mask"], batch["mm_token_type_ids"],
                                    batch["image_grid_thw"], batch["video_grid_thw"], batch.get("second_per_grid_ts"))
    padded = model.model.compute_3d_position_ids(
        input_ids=batch["input_ids"], inputs_embeds=None, image_grid_thw=batch["image_grid_thw"],
        video_grid_thw=batch["video_grid_thw"], attention_mask=batch["attention_mask"],
        mm_token_type_ids=batch["mm_token_type_ids"], past_key_values=None,
        **({"second_per_grid_ts": batch["second_per_grid_ts"]} if "second_per_grid_ts" in batch else {}))
    assert torch.equal(positions[1:, 0], padded[:, mask])
    assert torch.equal(positions[0, 0], sequence_positions(mask.sum(1)))
    # the sequences transformers finds in the text row are the batch's rows
    from transformers.masking_utils import find_packed_sequence_indices

    found = find_packed_sequence_indices(positions[0])
    assert torch.equal(torch.bincount(found[0]), mask.sum(1))


def test_other_families_are_refused_in_one_line():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, vocab_size=64))
    msg = unsupported(model)
    assert msg and "\n" not in msg and "'llama'" in msg and "Fix: set padding_free: false" in msg


def test_preflight_refuses_other_families_before_any_weight_loads(tmp_path):
    from transformers import LlamaConfig

    from visionr1.training.plan import PlanError
    from visionr1.training.runner import preflight

    model_dir = tmp_path / "llama"
    LlamaConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2).save_pretrained(model_dir)  # no weights
    data = write_jsonl(tmp_path / "data", n=8, completions=False)
    recipe = load_recipe(TINY / "ptst.yaml", [
        "stages.sft.enabled=false", "stages.ptst-2.enabled=false", f"model.path={model_dir}",
        f"stages.ptst-1.dataset.path={data}", "stages.ptst-1.padding_free=true"])
    with pytest.raises(PlanError) as err:
        preflight(recipe, tmp_path / "run", 1, [0])
    assert "  stage ptst-1: padding_free supports the Qwen-VL families" in str(err.value)
    assert "this model is 'llama'. Fix: set padding_free: false for the stage" in str(err.value)


# --- GRPO: TRL's old/reference log-probs and the loss forward, packed vs padded --------------------------------


def _grpo_trainer(tmp_path, family, padding_free):
    data = write_jsonl(tmp_path / "data", n=8, completions=False)
    recipe = load_recipe(TINY / "ptst.yaml", [
        "stages.sft.enabled=false", "stages.ptst-2.enabled=false", f"model.path=tiny:{family}/test",
        f"stages.ptst-1.dataset.path={data}", "model.max_pixels=40000", "model.freeze=[]",
        f"stages.ptst-1.padding_free={str(padding_free).lower()}",
        # TRL computes old/reference log-probs in chunks of per_device_train_batch_size rows: two chunks here
        "stages.ptst-1.grpo.per_device_train_batch_size=4", "stages.ptst-1.grpo.steps_per_generation=2",
        "stages.ptst-1.grpo.per_device_eval_batch_size=4",  # the model is in eval mode outside training
        f"stages.ptst-1.grpo.num_generations={GENERATIONS}",
        "stages.ptst-1.grpo.max_completion_length=6",
        "stages.ptst-1.grpo.num_iterations=2",  # makes TRL compute old_per_token_logps in the batch
    ])
    return first_grpo_trainer(recipe, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_grpo_packed_logps_and_gradients_equal_padded(tmp_path, family):
    trainer, _ = _grpo_trainer(tmp_path, family, padding_free=True)
    assert trainer._padding_free and trainer.ref_model is not None  # beta > 0: the reference forward is covered
    rows = [trainer.train_dataset[i] for i in range(4) for _ in range(GENERATIONS)]
    assert any(len(r["images"]) > 1 for r in rows) and any(not r["images"] for r in rows)  # multi-image, text-only

    # old and reference log-probs (TRL's _generate_and_score_completions), same samples both ways
    results = {}
    for packed in (False, True):
        trainer._padding_free = packed
        torch.manual_seed(0)
        results[packed] = trainer._generate_and_score_completions([dict(r) for r in rows])
    padded, out = results[False], results[True]
    assert torch.equal(out["completion_ids"], padded["completion_ids"])
    mask = out["completion_mask"].bool()
    prompt_tokens = out["prompt_mask"].sum(1)
    assert prompt_tokens.max() > 3 * prompt_tokens.min(), prompt_tokens  # short and long prompts: real padding
    for key in ("old_per_token_logps", "ref_per_token_logps"):
        assert (out[key] - padded[key]).abs().max() < TOL, (key, (out[key] - padded[key]).abs().max())
        assert (out[key][~mask] == 0).all()  # the padded layout TRL reads, zero at padding

    # the loss forward with gradients, and the metric
    model = trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    out["advantages"] = torch.linspace(-1.0, 1.0, len(rows))  # random weights score 0 everywhere: no gradient else
    visual = [n for n, _ in model.named_parameters() if ".visual." in n]
    losses, grads = {}, {}
    for packed in (False, True):
        trainer._padding_free = packed
        trainer._metrics["train"].clear()
        model.zero_grad()
        loss = trainer.compute_loss(model, out)
        loss.backward()
        losses[packed], grads[packed] = loss.detach(), _grads(model)
        share = trainer._metrics["train"]["padded_token_share"]
        full = torch.cat([out["prompt_mask"], out["completion_mask"]], 1)
        assert share == pytest.approx([0.0 if packed else 1 - float(full.sum()) / full.numel()])
    assert trainer._metrics["train"]["padded_token_share"][0] == 0.0 and grads[False]
    assert (losses[True] - losses[False]).abs() < TOL
    _assert_grads_equal(grads[True], grads[False], visual)


def test_trl_hooks_padding_free_relies_on():
    """The seams: TRL's log-prob method (its arguments, which the override forwards) and the fused LM head's
    ``shift_labels`` argument; if one moves, padding_free would silently compute something else."""
    from trl import GRPOTrainer
    from trl.trainer.utils import add_fused_lm_head

    from visionr1.training.grpo import VisionR1GRPOTrainer

    params = list(inspect.signature(GRPOTrainer._get_per_token_logps_and_entropies).parameters)
    assert params[:8] == ["self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size",
                          "compute_entropy", "compute_aux_loss"]
    assert set(params[8:]) == {"pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes",
                               "num_tiles", "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids"}
    assert VisionR1GRPOTrainer._get_per_token_logps_and_entropies is not GRPOTrainer._get_per_token_logps_and_entropies
    assert "shift_labels" in inspect.getsource(add_fused_lm_head)
    source = inspect.getsource(GRPOTrainer._get_per_token_logps_and_entropies)
    assert "labels[:, :-logits_to_keep] = -100" in source and "[:, -logits_to_keep:]" in source


# --- SFT: the loss of a packed micro-batch, and its gradients ---------------------------------------------------


def _sft_trainer(tmp_path, family, padding_free):
    from visionr1.training.loading import resolve_model_path
    from visionr1.training.runner import preflight
    from visionr1.training.sft import build_sft_trainer
    from visionr1.training.stage import StageRun

    data = write_jsonl(tmp_path / "data", n=8, completions=True)
    recipe = load_recipe(TINY / "ptst.yaml", [
        "stages.ptst-1.enabled=false", "stages.ptst-2.enabled=false", f"model.path=tiny:{family}/test",
        f"stages.sft.dataset.path={data}", "model.max_pixels=40000", "model.freeze=[]",
        f"stages.sft.padding_free={str(padding_free).lower()}", "stages.sft.sft.per_device_train_batch_size=4",
        "stages.sft.sft.max_length=4096",
    ])
    run_dir, stage = tmp_path / "run", recipe.stages[0]
    prepared = preflight(recipe, run_dir, 1, [0])
    run = StageRun(recipe=recipe, stage=stage, index=0, run_dir=run_dir, stage_dir=run_dir / stage.name,
                   start_path=resolve_model_path(recipe.model.path), resume_from=None, step_offset=0,
                   train_dataset=prepared[0].train)
    return build_sft_trainer(run)[0]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_sft_packed_loss_and_gradients_equal_padded(tmp_path, family):
    trainer = _sft_trainer(tmp_path, family, padding_free=True)
    assert trainer._padding_free
    model = trainer.model.train()
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    assert any(len(r["images"]) > 1 for r in rows) and any(not r["images"] for r in rows)
    batch = trainer.data_collator(rows[:5])  # multi-image, text-only, long and short prompts
    tokens = batch["attention_mask"].sum(1)
    assert tokens.max() > 3 * tokens.min(), tokens
    num_items = trainer._get_num_items_in_batch([batch], "cpu")
    assert num_items is not None  # counted on the padded batch, as transformers does before compute_loss
    visual = [n for n, _ in model.named_parameters() if ".visual." in n]
    losses, grads = {}, {}
    for packed in (False, True):
        trainer._padding_free = packed
        trainer._metrics["train"].clear()
        trainer._total_train_tokens = 0
        model.zero_grad()
        for items in (None, num_items):  # TRL's own count, and the global count transformers passes
            loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=items)
            losses[packed, items is None] = loss.detach()
        loss.backward()
        grads[packed] = _grads(model)
        assert trainer._total_train_tokens == 2 * int(tokens.sum())  # TRL's num_tokens metric, both calls
        share = trainer._metrics["train"]["padded_token_share"][0]
        assert share == pytest.approx(0.0 if packed else 1 - float(tokens.sum()) / batch["attention_mask"].numel())
    for own in (True, False):
        assert (losses[True, own] - losses[False, own]).abs() < TOL, (own, losses)
    _assert_grads_equal(grads[True], grads[False], visual)


def test_trl_sft_hooks_padding_free_relies_on():
    """TRL's SFT refuses its own packing for images (else we would use it), reads the fused loss from the packed
    inputs as from padded ones, and counts packed tokens as ``position_ids.size(1)`` (the counter we correct)."""
    from trl import SFTTrainer

    source = inspect.getsource(SFTTrainer)
    assert "Packing is not supported for vision datasets" in source
    assert "Padding-free training is yet not supported for vision datasets" in source
    loss = inspect.getsource(SFTTrainer.compute_loss)
    assert 'inputs["position_ids"].size(1)' in loss and "self._total_train_tokens +=" in loss
    assert "model(**inputs, fused_lm_head=True)" in loss


def test_the_demo_report_summarises_the_padded_token_share(tmp_path):
    from visionr1.demo.report import _training_summary

    recipe = load_recipe(TINY / "ptst.yaml", ["stages.sft.enabled=false", "stages.ptst-2.enabled=false"])
    rows = [{"kind": "train", "stage": "ptst-1", "step": s, "padded_token_share": share}
            for s, share in ((1, 0.6), (2, 0.5), (3, 0.4), (4, 0.0))]
    entry = _training_summary(recipe, rows, tmp_path)["ptst-1"]
    assert (entry["padded_token_share_first_quarter"], entry["padded_token_share_last_quarter"]) == (0.6, 0.0)


def test_trl_refusals_point_to_the_stage_field(tmp_path):
    from visionr1.training.plan import check_stage_settings

    recipe = load_recipe(TINY / "ptst.yaml", ["stages.ptst-1.enabled=false", "stages.ptst-2.enabled=false",
                                               "stages.sft.sft.padding_free=true"])
    (msg,) = check_stage_settings(recipe, recipe.stages[0], 1)
    assert msg.startswith("sft.padding_free is not supported with images (TRL)") and "stage field padding_free" in msg


@pytest.mark.slow
def test_a_padding_free_run_trains_and_logs_the_share(tmp_path, tiny_model_dir):
    """``visionr1 train`` end to end with padding_free on an SFT and a GRPO stage: TRL's loop (buffered generation
    batches, shuffled and split into micro-batches) trains on packed forwards and logs padded_token_share 0 (and, for
    SFT, TRL's num_tokens counts real tokens, not one per packed row)."""
    from visionr1.training.runner import main

    from .conftest import read_jsonl

    sft = write_jsonl(tmp_path / "sft", n=8, completions=True)
    rl = write_jsonl(tmp_path / "rl", n=8, completions=False)
    recipe = load_recipe(TINY / "ptst.yaml", [
        f"model.path={tiny_model_dir}", "model.max_pixels=40000", "stages.ptst-2.enabled=false",
        f"stages.sft.dataset.path={sft}", "stages.sft.padding_free=true", "stages.sft.sft.max_steps=1",
        "stages.sft.sft.per_device_train_batch_size=4", "stages.sft.sft.max_length=4096",
        f"stages.ptst-1.dataset.path={rl}", "stages.ptst-1.padding_free=true", "stages.ptst-1.grpo.max_steps=2",
        "stages.ptst-1.grpo.num_generations=2", "stages.ptst-1.grpo.max_completion_length=6",
        "stages.ptst-1.grpo.per_device_train_batch_size=4", "stages.ptst-1.grpo.steps_per_generation=2",
        "stages.ptst-1.grpo.per_device_eval_batch_size=4",  # the model is in eval mode outside training
    ])
    run = tmp_path / "run"
    main(recipe, output_dir=run)
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "train"]
    for stage in ("sft", "ptst-1"):
        mine = [r for r in rows if r["stage"] == stage]
        assert mine and all(r["padded_token_share"] == 0.0 for r in mine), mine
        assert all(math.isfinite(r["loss"]) for r in mine)
    assert next(r for r in rows if r["stage"] == "sft")["num_tokens"] > 100


@pytest.mark.distributed
def test_two_processes_packed_train_to_the_padded_weights(tmp_path, tiny_model_dir):
    """Two DDP processes, GRPO, padding_free on and off: the same weights after two steps (SGD, so a weight is the
    gradients' sum: exact gradients give equal weights), and each process's padding is counted in the share."""
    import subprocess

    from .conftest import REPO, load_state, read_jsonl, subprocess_env, visionr1_cmd

    rl = write_jsonl(tmp_path / "rl", n=8, completions=False)
    states, shares = {}, {}
    for packed in (False, True):
        run = tmp_path / f"run-{packed}"
        cmd = visionr1_cmd(
            "train", str(TINY / "ptst.yaml"), f"model.path={tiny_model_dir}", "model.max_pixels=40000",
            "stages.sft.enabled=false", "stages.ptst-2.enabled=false", f"stages.ptst-1.dataset.path={rl}",
            f"stages.ptst-1.padding_free={str(packed).lower()}", "stages.ptst-1.grpo.max_steps=2",
            "stages.ptst-1.grpo.num_generations=2", "stages.ptst-1.grpo.max_completion_length=6",
            "stages.ptst-1.grpo.per_device_train_batch_size=4", "stages.ptst-1.grpo.optim=sgd",
            "stages.ptst-1.grpo.learning_rate=0.05", "launch.num_processes=2",
            f"stages.ptst-1.rewards=[{{name: '{Path(__file__).with_name('varied_reward.py')}:letters'}}]",
            f"launch.config_file={REPO / 'configs' / 'accelerate' / 'cpu-ddp.yaml'}", "--output-dir", str(run))
        out = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=500)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
        states[packed] = load_state(run / "ptst-1" / "final")
        shares[packed] = [r["padded_token_share"] for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "train"]
    start = load_state(tiny_model_dir)
    moved = max((states[False][k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-4  # training changed the weights
    worst = max((states[True][k] - states[False][k]).abs().max().item() for k in start)
    assert worst < 1e-6, worst
    assert shares[True] == [0.0, 0.0] and all(s > 0.05 for s in shares[False]), shares
