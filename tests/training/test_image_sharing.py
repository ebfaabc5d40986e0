"""Each image processed and encoded once per GRPO group (patches.image_sharing), with unchanged numbers.

On varied batches (tests/varied.py: prompts of 20-1,500 characters, multi-image and text-only records, images of
odd sizes), for every Qwen family: the processor output is identical with sharing on and off, the vision tower sees
each unique image once per forward (generation prefill, old and reference log-probs, loss) where without sharing it
sees every repeated copy, TRL's ``old_per_token_logps`` and the loss-forward log-probs equal the unshared ones within
1e-5, and the gradients (vision tower trainable) match. The hooks it relies on are pinned at the end."""

from __future__ import annotations

import contextlib
import inspect

import pytest
import torch
from tests.varied import write_jsonl

from visionr1.patches.image_sharing import SHARED_FAMILIES, image_key, share_images, unique_images
from visionr1.recipe import load_recipe
from visionr1.training.grpo import VisionR1GRPOTrainer

from .conftest import TINY, first_grpo_trainer

FAMILIES = list(SHARED_FAMILIES)  # every family whose Family.image_sharing_off is None
GENERATIONS = 2


def _trainer(tmp_path, family, share=True):
    data = write_jsonl(tmp_path / "data", n=8, completions=False)
    recipe = load_recipe(TINY / "ptst.yaml", [
        "stages.sft.enabled=false", "stages.ptst-2.enabled=false", f"model.path=tiny:{family}/test",
        f"stages.ptst-1.dataset.path={data}", "model.max_pixels=40000", "model.freeze=[]",
        f"stages.ptst-1.share_images={str(share).lower()}",
        "stages.ptst-1.grpo.per_device_train_batch_size=8", f"stages.ptst-1.grpo.num_generations={GENERATIONS}",
        "stages.ptst-1.grpo.max_completion_length=6",
        "stages.ptst-1.grpo.num_iterations=2",  # makes TRL compute old_per_token_logps in the batch
    ])
    trainer, processor = first_grpo_trainer(recipe, tmp_path)
    return trainer, processor


def _batch(trainer, start=0):
    """4 prompts x GENERATIONS, as TRL's RepeatSampler hands them over (each prompt a fresh decode)."""
    rows = [trainer.train_dataset[i] for i in range(start, start + 4) for _ in range(GENERATIONS)]
    assert any(len(r["images"]) > 1 for r in rows) and any(not r["images"] for r in rows)  # multi-image, text-only
    lengths = [len(str(r["prompt"])) for r in rows]
    assert max(lengths) > 2 * min(lengths)  # short and long prompts: left padding in every forward
    return rows


@contextlib.contextmanager
def _vision_rows(*models):
    """Rows of pixel_values each vision-tower call receives, in call order (a forward pre-hook on `visual`)."""
    calls: list[int] = []
    handles = [m.model.visual.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
               for m in models if m is not None]
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def _rows_per_prompt(processor, rows):
    """pixel_values rows of each distinct prompt's images, and of all the batch's rows."""
    def rows_of(r):
        return int(processor.image_processor(r["images"])["image_grid_thw"].prod(-1).sum()) if r["images"] else 0
    return sum(rows_of(r) for r in rows[::GENERATIONS]), sum(rows_of(r) for r in rows)


@pytest.mark.parametrize("family", FAMILIES)
def test_processor_output_identical_and_images_processed_once(tmp_path, family):
    trainer, processor = _trainer(tmp_path, family)
    rows = _batch(trainer)
    texts = [processor.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in rows]
    images = [r["images"] for r in rows]
    seen = []
    original = processor.image_processor.__class__.__call__

    def counting(self, imgs, *a, **k):
        seen.append(len([i for x in imgs for i in (x if isinstance(x, list) else [x])]))
        return original(self, imgs, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(processor.image_processor.__class__, "__call__", counting)
        plain = processor(images=images, text=texts, padding=True, return_tensors="pt")
        with share_images(processor, []):
            shared = processor(images=images, text=texts, padding=True, return_tensors="pt")
    assert "_process_images" not in processor.__dict__  # restored
    n_images = sum(len(i) for i in images)
    assert seen == [n_images, n_images // GENERATIONS]
    assert set(plain) == set(shared)
    for key in plain:
        assert torch.equal(plain[key], shared[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_logps_and_gradients_equal_and_vision_tower_runs_once_per_unique_image(tmp_path, family):
    trainer, processor = _trainer(tmp_path, family)
    assert trainer.ref_model is not None  # beta > 0: the reference forward is covered too
    rows = _batch(trainer)
    unique_rows, all_rows = _rows_per_prompt(processor, rows)

    # generation + old/ref log-probs: every vision call sees the unique images only
    torch.manual_seed(0)
    with _vision_rows(trainer.model, trainer.ref_model) as calls:
        out = trainer._generate_and_score_completions([dict(r) for r in rows])
    assert calls == [unique_rows] * 3, (calls, unique_rows, all_rows)  # prefill, old log-probs, ref log-probs

    trainer._share_images = False
    torch.manual_seed(0)
    with _vision_rows(trainer.model, trainer.ref_model) as calls:
        plain = trainer._generate_and_score_completions([dict(r) for r in rows])
    assert calls == [all_rows] * 3  # what sharing saves: TRL encodes every repeated copy
    assert torch.equal(out["completion_ids"], plain["completion_ids"])  # same features -> same samples
    mask = out["completion_mask"].bool()
    assert (out["old_per_token_logps"][mask] - plain["old_per_token_logps"][mask]).abs().max() < 1e-5
    assert (out["ref_per_token_logps"][mask] - plain["ref_per_token_logps"][mask]).abs().max() < 1e-5

    # loss forward (with grad) on the same batch, sharing off then on: loss, per-token log-probs, gradients
    model = trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's training loop
    out["advantages"] = torch.linspace(-1.0, 1.0, len(rows))  # random weights score 0 everywhere: no gradient else
    visual = [n for n, p in model.named_parameters() if ".visual." in n or n.startswith("visual.")]
    assert visual and all(p.requires_grad for n, p in model.named_parameters() if n in visual)
    results = {}
    for share in (False, True):
        trainer._share_images = share
        model.zero_grad()
        logps = []
        handle = model.register_forward_hook(lambda _m, _a, o, sink=logps: sink.append(o.log_probs.detach()))
        with _vision_rows(model) as calls:
            loss = trainer.compute_loss(model, out)
        handle.remove()
        loss.backward()
        results[share] = (loss.detach(), logps[0], calls,
                          {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})
    (loss_off, logps_off, calls_off, grads_off), (loss_on, logps_on, calls_on, grads_on) = results[False], results[True]
    assert calls_off == [all_rows] and calls_on == [unique_rows]
    assert (logps_on - logps_off).abs().max() < 1e-5
    assert torch.allclose(loss_on, loss_off, atol=1e-6)
    assert set(grads_on) == set(grads_off) and any(n in grads_on for n in visual)
    for name, g in grads_off.items():
        assert torch.allclose(grads_on[name], g, atol=1e-6, rtol=1e-4), (name, (grads_on[name] - g).abs().max())
    assert any(grads_on[n].abs().sum() > 0 for n in visual)  # the vision tower really receives gradient


def test_unique_images_needs_equal_rows_and_grid():
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    grid = torch.tensor([[1, 2, 2]] * 4)
    assert unique_images(torch.cat([a, b, a, b]), grid) == ([0, 1], [0, 1, 0, 1])
    # same rows, different grid: two images; the fingerprint is a sum, so a permutation must not collide
    assert unique_images(torch.cat([a, a]), torch.tensor([[1, 2, 2], [1, 1, 4]])) == ([0, 1], [0, 1])
    assert unique_images(torch.cat([a, a.flip(0)]), torch.tensor([[1, 2, 2]] * 2)) == ([0, 1], [0, 1])
    # values swapped inside a row: the same row sums (one bucket), told apart by torch.equal
    swapped = a.clone()
    swapped[0, [0, 1]] = a[0, [1, 0]]
    assert unique_images(torch.cat([a, swapped, a]), torch.tensor([[1, 2, 2]] * 3)) == ([0, 1], [0, 1, 0])
    assert unique_images(torch.cat([a, a]).bfloat16(), torch.tensor([[1, 2, 2]] * 2)) == ([0], [0, 0])


def test_image_key_tells_pixels_apart():
    from PIL import Image

    a = Image.new("RGB", (4, 4), (1, 2, 3))
    b = a.copy()
    b.putpixel((3, 3), (1, 2, 4))
    assert image_key(a) == image_key(a.copy()) and image_key(a)[1] != image_key(b)[1]
    p = a.convert("P")
    q = p.copy()
    q.putpalette([255 - v for v in p.getpalette()])  # same indices, other colours
    assert image_key(p) != image_key(q)


def test_share_images_is_a_recipe_switch(tmp_path):
    trainer, _ = _trainer(tmp_path, "qwen2_5_vl", share=False)
    assert trainer._share_images is False
    rows = _batch(trainer)
    with _vision_rows(trainer.model, trainer.ref_model) as calls:
        trainer._generate_and_score_completions([dict(r) for r in rows])
    assert calls == [_rows_per_prompt(trainer.processing_class, rows)[1]] * 3


def test_trl_and_transformers_hooks_image_sharing_relies_on():
    """The seams: if one moves, sharing silently stops (or worse), so pin them."""
    from transformers import Qwen2_5_VLModel, Qwen2VLModel, Qwen3VLModel
    from transformers.processing_utils import ProcessorMixin
    from trl import GRPOTrainer

    assert list(inspect.signature(GRPOTrainer._generate_and_score_completions).parameters) == ["self", "inputs"]
    assert list(inspect.signature(GRPOTrainer.compute_loss).parameters) == [
        "self", "model", "inputs", "return_outputs", "num_items_in_batch"]
    assert VisionR1GRPOTrainer._generate_and_score_completions is not GRPOTrainer._generate_and_score_completions
    assert VisionR1GRPOTrainer.compute_loss is not GRPOTrainer.compute_loss
    body = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert "self._generate(prompts)" in body and "self.processing_class(images=images" in body
    assert "_get_per_token_logps_and_entropies(" in body  # old/ref log-probs inside the shared scope
    assert "self._compute_loss(" in inspect.getsource(GRPOTrainer.compute_loss)
    # the processor's image step, called by __call__ (and so by apply_chat_template)
    assert list(inspect.signature(ProcessorMixin._process_images).parameters) == ["self", "images", "kwargs"]
    assert "self._process_images(images" in inspect.getsource(ProcessorMixin.__call__)
    for cls in (Qwen2VLModel, Qwen2_5_VLModel, Qwen3VLModel):
        assert list(inspect.signature(cls.get_image_features).parameters)[:3] == ["self", "pixel_values", "image_grid_thw"]
        assert "self.get_image_features(" in inspect.getsource(cls.forward)
    # generate() pre-encodes images through base_model.get_image_features, picking its arguments by signature: the
    # shared wrapper must keep that signature (it did not, and generation passed pixel_values twice)
    from transformers.generation.utils import GenerationMixin

    source = inspect.getsource(GenerationMixin._prepare_multimodal_encoder_kwargs_for_generation)
    assert 'getattr(self.base_model, f"get_{modality}_features"' in source and "inspect.signature(encoder_fn)" in source


def test_shared_wrappers_keep_the_signatures(tmp_path):
    trainer, processor = _trainer(tmp_path, "qwen3_vl")
    module = trainer.model.model
    before = inspect.signature(module.get_image_features), inspect.signature(processor._process_images)
    with share_images(processor, [trainer.model]):
        assert "get_image_features" in module.__dict__ and "_process_images" in processor.__dict__
        assert (inspect.signature(module.get_image_features), inspect.signature(processor._process_images)) == before
    assert "get_image_features" not in module.__dict__
