"""Encode each image once per GRPO group: the processor and the vision tower see every unique image once per call.

Why: TRL's ``RepeatSampler`` repeats each prompt ``num_generations`` times, and everything downstream works on
the repeated rows. With 8 prompts x 8 generations the processor resizes and patchifies 64 copies of 8 images (twice
per batch: once to tokenize the prompts for generation, once for the multimodal fields of the log-prob forwards),
and the vision tower encodes 64 copies at the generation prefill, in the old/ref log-prob forwards and again in the
loss forward. Both are per-image functions (Qwen-VL's vision attention is block-diagonal per image), so computing
each unique image once and repeating the result gives the same numbers; in the loss forward the repeat is an
indexing op, so autograd sums the copies' gradients into the one encoding, exactly as if each copy had been
encoded separately.

Two scoped wrappers, installed only while :func:`share_images` is active (the trainer activates it around
``_generate_and_score_completions`` and ``compute_loss``; nothing stays patched, so saving, deep-copying or
evaluating the model and processor is unaffected):

- ``processor._process_images`` (transformers' ``ProcessorMixin`` step that runs the image processor and builds the
  placeholder text): identical PIL images (same mode, size, palette and pixel bytes, BLAKE2b digest) are processed
  once and the ``pixel_values`` rows / ``image_grid_thw`` rows repeated in the original order.
- the Qwen-VL model's ``get_image_features``: images whose ``pixel_values`` rows and grid are equal (candidates
  found by a fingerprint, then confirmed with ``torch.equal``) are encoded once; ``pooler_output``, Qwen3-VL's
  ``deepstack_features`` and ``last_hidden_state`` are expanded back to one entry per image.

Either wrapper falls back to the unshared call whenever its assumptions do not hold (images that are not PIL,
output keys other than ``pixel_values``/``image_grid_thw``, precomputed vision positions in the kwargs, a model
family other than Qwen2-VL / Qwen2.5-VL / Qwen3-VL), so it can only ever skip work, never change a result.

What TRL does not let us share: the work is deduplicated per call, not across calls. The two processor calls of a
batch (``_tokenize_prompts`` and the inline call in ``_generate_and_score_completions``) each process the unique
images once, because TRL builds the second call's inputs itself, inline, with no hook to hand it the first call's
output; and each forward (prefill, old/ref log-probs, loss) encodes the unique images once, because their weights,
grad mode or model (reference model) differ, and ``generate`` takes ``pixel_values``, not features. The text of the
repeated prompts is still tokenized ``num_generations`` times (cheap next to images). With vLLM generation the
prefill's vision tower runs inside vLLM (which has its own multimodal cache); only the trainer-side calls share.
Across the loss forwards of one generation batch, sharing only helps where a training micro-batch holds several
generations of one prompt (TRL shuffles the generation batch before splitting it into micro-batches).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Iterator
from typing import Any

import torch

SHARED_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
# The get_image_features kwargs a shared call may carry. Any other (e.g. precomputed per-image `cu_seqlens`,
# `position_ids`, `window_index`, which transformers.vision_utils pops) makes the call more than a function of
# (pixel_values, grid), so it runs unshared.
_SAFE_FEATURE_KWARGS = {"return_dict", "use_cache"}


@contextlib.contextmanager
def share_images(processor: Any, models: list[Any]) -> Iterator[None]:
    """While active, ``processor`` and every Qwen-VL model in ``models`` process/encode each unique image once per
    call (see the module docstring). Restores both on exit, also on error."""
    patched: list[tuple[Any, str]] = []
    try:
        if processor is not None and callable(getattr(processor, "_process_images", None)):
            processor._process_images = _shared_process_images(processor._process_images)
            patched.append((processor, "_process_images"))
        for module in vision_modules(models):
            module.get_image_features = _shared_image_features(module.get_image_features)
            patched.append((module, "get_image_features"))
        yield
    finally:
        for obj, name in patched:
            obj.__dict__.pop(name, None)


def vision_modules(models: list[Any]) -> list[Any]:
    """The modules whose ``get_image_features`` runs the vision tower (``Qwen2VLModel`` and its peers: they own
    ``visual`` as a submodule), in supported families only; each once, also under PEFT or accelerate wrappers."""
    found: dict[int, Any] = {}
    for model in models:
        if model is None:
            continue
        for module in model.modules():
            family = getattr(getattr(module, "config", None), "model_type", None)
            if "visual" in module._modules and family in SHARED_FAMILIES and hasattr(module, "get_image_features"):
                found[id(module)] = module
    return list(found.values())


# --- processor ---------------------------------------------------------------------------------------------------


def image_key(image: Any) -> tuple | None:
    """A key equal for two PIL images exactly when the image processor sees the same input; None otherwise.

    >>> from PIL import Image
    >>> a, b = Image.new("RGB", (3, 2), (1, 2, 3)), Image.new("RGB", (3, 2), (1, 2, 3))
    >>> image_key(a) == image_key(b), image_key(a) == image_key(Image.new("RGB", (2, 3), (1, 2, 3)))
    (True, False)
    >>> image_key("photo.png") is None
    True
    """
    from PIL import Image

    if not isinstance(image, Image.Image):
        return None
    digest = hashlib.blake2b(image.tobytes(), digest_size=16)
    if image.palette is not None:
        digest.update(bytes(image.getpalette() or []))
    return image.mode, image.size, digest.digest()


def _shared_process_images(original: Any) -> Any:
    @functools.wraps(original)
    def process_images(images: Any, **kwargs: Any) -> Any:
        from transformers.image_utils import make_flat_list_of_images

        flat = make_flat_list_of_images(images)
        keys = [image_key(im) for im in flat]
        if None in keys or len(set(keys)) == len(keys):
            return original(images, **kwargs)
        first = {k: i for i, k in reversed(list(enumerate(keys)))}  # key -> first occurrence
        unique = sorted(first.values())
        position = {keys[i]: j for j, i in enumerate(unique)}
        inverse = [position[k] for k in keys]
        processed, replacements = original([flat[i] for i in unique], **kwargs)
        if set(processed) != {"pixel_values", "image_grid_thw"} or not isinstance(processed["pixel_values"], torch.Tensor):
            return original(images, **kwargs)
        grid = processed["image_grid_thw"]
        rows = torch.split(processed["pixel_values"], grid.prod(-1).tolist())
        processed["pixel_values"] = torch.cat([rows[j] for j in inverse])
        processed["image_grid_thw"] = grid[inverse]
        return processed, [replacements[j] for j in inverse]

    return process_images


# --- vision tower ------------------------------------------------------------------------------------------------


def unique_images(pixel_values: torch.Tensor, grid: torch.Tensor) -> tuple[list[int], list[int]]:
    """``(unique, inverse)``: indices of the first occurrence of each distinct image (equal grid and equal
    ``pixel_values`` rows), and for every image the position of its copy in ``unique``."""
    sizes = grid.prod(-1).tolist()
    chunks = torch.split(pixel_values, sizes)
    # Fingerprint (grid, sum, position-weighted row sum) finds the candidates; torch.equal decides.
    stats = torch.stack([
        torch.stack([c.sum(dtype=torch.float64),
                     (c.sum(-1, dtype=torch.float64) * torch.arange(1, len(c) + 1, device=c.device)).sum()])
        for c in chunks
    ]).tolist()
    reps: dict[tuple, list[int]] = {}
    unique: list[int] = []
    inverse: list[int] = []
    for i, (c, g, s) in enumerate(zip(chunks, grid.tolist(), stats, strict=True)):
        candidates = reps.setdefault((*g, *s), [])
        match = next((u for u in candidates if torch.equal(chunks[unique[u]], c)), None)
        if match is None:
            match = len(unique)
            unique.append(i)
            candidates.append(match)
        inverse.append(match)
    return unique, inverse


def _shared_image_features(original: Any) -> Any:
    # wraps: generate() reads this signature to pick the arguments it pre-encodes images with
    @functools.wraps(original)
    def get_image_features(pixel_values: torch.Tensor, image_grid_thw: torch.Tensor | None = None, **kwargs: Any):
        if image_grid_thw is None or not set(kwargs) <= _SAFE_FEATURE_KWARGS or not kwargs.get("return_dict"):
            return original(pixel_values, image_grid_thw, **kwargs)
        unique, inverse = unique_images(pixel_values, image_grid_thw)
        if len(unique) == len(inverse):
            return original(pixel_values, image_grid_thw, **kwargs)
        sizes = image_grid_thw.prod(-1)
        rows = torch.split(pixel_values, sizes.tolist())
        out = original(torch.cat([rows[i] for i in unique]), image_grid_thw[unique], **kwargs)
        out.pooler_output = tuple(out.pooler_output[j] for j in inverse)
        if getattr(out, "deepstack_features", None) is not None:  # Qwen3-VL
            out.deepstack_features = [tuple(f[j] for j in inverse) for f in out.deepstack_features]
        if getattr(out, "last_hidden_state", None) is not None:  # per image contiguous (Qwen2.5-VL: window order)
            hidden = torch.split(out.last_hidden_state, sizes[unique].tolist())
            out.last_hidden_state = torch.cat([hidden[j] for j in inverse])
        return out

    return get_image_features
