"""Encode each image once per GRPO group: the processor and the vision tower see every unique image once per call.

Why: TRL's ``RepeatSampler`` repeats each prompt ``num_generations`` times, and everything downstream works on
the repeated rows. With 8 prompts x 8 generations the processor resizes and patchifies 64 copies of 8 images (twice
per batch: once to tokenize the prompts for generation, once for the multimodal fields of the log-prob forwards),
and the vision tower encodes 64 copies at the generation prefill, in the old/ref log-prob forwards and again in the
loss forward. Both are per-image functions (Qwen-VL's vision attention is block-diagonal per image), so computing
each unique image once and repeating the result gives the same numbers (up to the rounding of matmuls over fewer
rows: log-probs within 1e-5 in the tests, processor output bit-identical); in the loss forward the repeat is an
indexing op, so autograd sums the copies' gradients into the one encoding, exactly as if each copy had been
encoded separately.

Two scoped wrappers of transformers' private steps, installed only while :func:`share_images` is active
(``patches.trl.ImageSharingScope`` activates it around TRL's ``_generate_and_score_completions`` and
``compute_loss``; nothing stays patched, so saving, deep-copying or evaluating the model and processor is
unaffected):

- ``processor._process_images`` (transformers' ``ProcessorMixin`` step that runs the image processor and builds the
  placeholder text): identical PIL images (same mode, size, palette and pixel bytes: candidates found by a checksum,
  then the bytes compared) are processed once and the ``pixel_values`` / ``image_grid_thw`` rows repeated in the
  original order.
- the Qwen-VL model's ``get_image_features``: images whose ``pixel_values`` rows and grid are equal (candidates
  found by the sums of a few rows, then confirmed with ``torch.equal``) are encoded once; ``pooler_output``, Qwen3-VL's
  ``deepstack_features`` and ``last_hidden_state`` are expanded back to one entry per image.

Either wrapper falls back to the unshared call whenever its assumptions do not hold (images that are not PIL,
output keys other than ``pixel_values``/``image_grid_thw``, precomputed vision positions in the kwargs, a model
family other than Qwen2-VL / Qwen2.5-VL / Qwen3-VL), so it can only ever skip work, never change a result.

What TRL does not let us share: the work is deduplicated per call, not across calls. The two processor calls of a
batch (``_tokenize_prompts`` and the inline call in ``_generate_and_score_completions``) each process the unique
images once, because TRL builds the second call's inputs itself, inline, with no hook to hand it the first call's
output; and each forward (prefill, old/ref log-probs, loss) encodes the unique images once, because their weights,
grad mode or model (reference model) differ, and ``generate`` takes ``pixel_values``, not features. The text of the
repeated prompts is still tokenized ``num_generations`` times (cheap next to images), and the repeated
``pixel_values`` tensor is still materialised once per processor call (TRL slices it by rows for its micro-batches
and log-prob chunks): with 64 rows of 1,024 patches that is a ~300 MB copy, which the vision wrapper then compares
(``torch.equal``) instead of encoding. With vLLM generation the
prefill's vision tower runs inside vLLM (which has its own multimodal cache); only the trainer-side calls share.
Across the loss forwards of one generation batch, sharing only helps where a training micro-batch holds several
generations of one prompt (TRL shuffles the generation batch before splitting it into micro-batches).
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from collections.abc import Iterator
from typing import Any

import torch

from visionr1.models import families

# The families whose sharing is tested exact (``Family.image_sharing_off`` is None; visionr1.models.families).
SHARED_FAMILIES = tuple(f.name for f in families.registry().values() if f.image_sharing_off is None)
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
    """``(key, pixels)`` for a PIL image: ``key`` (mode, size, palette, Adler-32 of the pixels) finds the candidate
    duplicates, ``pixels`` (the raw bytes) decides; None for anything else (paths, arrays: left unshared).

    >>> from PIL import Image
    >>> a, b = Image.new("RGB", (3, 2), (1, 2, 3)), Image.new("RGB", (3, 2), (1, 2, 3))
    >>> image_key(a) == image_key(b), image_key(a)[0] == image_key(Image.new("RGB", (2, 3), (1, 2, 3)))[0]
    (True, False)
    >>> image_key("photo.png") is None
    True
    """
    from PIL import Image

    if not isinstance(image, Image.Image):
        return None
    pixels = image.tobytes()
    palette = bytes(image.getpalette() or []) if image.palette is not None else b""
    return (image.mode, image.size, palette, zlib.adler32(pixels)), pixels


def dedupe(keys: list[tuple], same: Any) -> tuple[list[int], list[int]]:
    """``(unique, inverse)``: the index of the first occurrence of each distinct item, and for every item the
    position of its representative in ``unique``. ``keys`` put items in buckets (equal items have equal keys);
    ``same(i, j)`` decides within a bucket, so a key collision costs a comparison, never a wrong match.

    >>> dedupe([1, 2, 1, 1], lambda i, j: True)
    ([0, 1], [0, 1, 0, 0])
    >>> dedupe(["k", "k"], lambda i, j: False)  # same key, different items
    ([0, 1], [0, 1])
    """
    buckets: dict[Any, list[int]] = {}
    unique: list[int] = []
    inverse: list[int] = []
    for i, key in enumerate(keys):
        bucket = buckets.setdefault(key, [])
        match = next((u for u in bucket if same(unique[u], i)), None)
        if match is None:
            match = len(unique)
            unique.append(i)
            bucket.append(match)
        inverse.append(match)
    return unique, inverse


def _shared_process_images(original: Any) -> Any:
    @functools.wraps(original)
    def process_images(images: Any, **kwargs: Any) -> Any:
        from transformers.image_utils import make_flat_list_of_images

        flat = make_flat_list_of_images(images)
        keyed = [image_key(im) for im in flat]
        if not keyed or None in keyed:
            return original(images, **kwargs)
        unique, inverse = dedupe([k for k, _ in keyed], lambda i, j: keyed[i][1] == keyed[j][1])
        keyed = None  # the pixel bytes are not needed any more
        if len(unique) == len(inverse):
            return original(images, **kwargs)
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
    """``(unique, inverse)`` of :func:`dedupe` for the images of a ``pixel_values`` batch: two images are the same
    when their grids and their ``pixel_values`` rows are equal (``torch.equal``, which stops at the first
    difference). The bucket key, the grid and the sums of each image's first, middle and last rows, costs three
    rows per image; a full pass (e.g. integer sums of the bit patterns) cost more than the comparisons it saves."""
    sizes = grid.prod(-1)
    starts = torch.cumsum(sizes, 0) - sizes
    probe = torch.stack([starts, starts + sizes // 2, starts + sizes - 1], 1).to(pixel_values.device)
    sums = pixel_values[probe.flatten()].reshape(len(sizes), 3, -1).sum(-1, dtype=torch.float64)
    keys = [tuple(g) + tuple(k) for g, k in zip(grid.tolist(), sums.tolist(), strict=True)]
    chunks = torch.split(pixel_values, sizes.tolist())
    return dedupe(keys, lambda i, j: torch.equal(chunks[i], chunks[j]))


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
