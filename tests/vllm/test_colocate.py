"""GRPO with vLLM colocate, inside the trainer `visionr1 train` builds (tests/vllm/colocate_probe.py, one engine
for the module): the engine's weights after each sync, the images and image tokens it gets, the completion
limit it samples under, and its sampling log-probs against the trainer's recomputed ones.

The batch mixes a text-only prompt, one small image, one image over the recipe's pixel budget, two and three
images (tests/vllm/conftest.py::write_mixed), 2 generations each, 2 steps at lr 1e-3 so that one step moves
the weights far enough that an engine left with old weights (or old vision embeddings) fails by orders of
magnitude.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import PYTHON, VARIED_REWARD, run

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PROBE = Path(__file__).with_name("colocate_probe.py")
PROMPTS, GENERATIONS, LIMIT = 5, 2, 8
# float32 engine and trainer (the engine gets the trainer's dtype, visionr1.patches.vllm.engine_kwargs): the
# two differ only in kernels (vLLM's CPU attention / RMSNorm / SiLU against eager transformers) and summation
# order; measured: at most 2.9e-6 nats on log-probs of -1 to -9, i.e. a few float32 ulps. 1e-4 leaves 30x
# room; the smallest defect it must catch (one step of stale weights or vision embeddings) moves them by > 0.5.
LOGP_TOLERANCE = 1e-4
# The engine samples with the vision special tokens banned (training.generation), the trainer scores with the
# unbanned policy: each sampled token's engine log-prob is the trainer's plus -log(1 - p_banned), the policy's
# mass on those tokens there. That is ~0 for a trained model; for these random ones it measured at most 0.03
# (5 banned tokens of ~1,000). So the gap is one-sided, exact below (a float32 ulp bound) and bounded above.
BAN_GAP = 0.1


def _overrides(demo_model, mixed_data) -> list[str]:
    return [
        "stages.sft.enabled=false", "stages.ptst-2.enabled=false", f"model.path={demo_model('qwen2_5_vl')}",
        f"stages.ptst-1.dataset.path={mixed_data}", f"stages.ptst-1.rewards=[{{name: '{VARIED_REWARD}:letters'}}]",
        "stages.ptst-1.grpo.use_vllm=true", "stages.ptst-1.grpo.vllm_mode=colocate",
        f"stages.ptst-1.grpo.max_completion_length={LIMIT}", f"stages.ptst-1.grpo.num_generations={GENERATIONS}",
        f"stages.ptst-1.grpo.per_device_train_batch_size={PROMPTS * GENERATIONS}",
        "stages.ptst-1.grpo.shuffle_dataset=false", "stages.ptst-1.grpo.learning_rate=1e-3",
        "stages.ptst-1.grpo.max_steps=2",
        # a pixel floor above the checkpoint's (3,136): the 56x56 image is scaled up to at least 6,272 px by the
        # trainer's processor, so the engine must get the recipe's budget too (images are never scaled up on load)
        "model.min_pixels=6272",
    ]


@pytest.fixture(scope="module")
def probe(vllm_ok, demo_model, mixed_data, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("colocate") / "probe.json"
    run([PYTHON, str(PROBE), json.dumps(_overrides(demo_model, mixed_data)), str(out)], timeout=400)
    return json.loads(out.read_text())


def test_the_engine_never_samples_a_vision_placeholder(vllm_ok, demo_model, mixed_data, tmp_path):
    """With the engine tempted (+100 on the vision special tokens' logits) every completion token would be one;
    the stage's ban (``bad_words``) must reach vLLM, or the loss forward stops ("Image features and image
    tokens do not match") on the first completion holding an ``<|image_pad|>``."""
    out = tmp_path / "probe.json"
    overrides = [o for o in _overrides(demo_model, mixed_data) if "max_steps" not in o] + ["stages.ptst-1.grpo.max_steps=1"]
    run([PYTHON, str(PROBE), json.dumps(overrides), str(out), "--tempt"], timeout=400)
    probe = json.loads(out.read_text())
    assert len(probe["vision_token_ids"]) >= 4  # <|vision_start|>, <|vision_end|>, <|image_pad|>, <|video_pad|>...
    assert probe["batches"] and all(b["tokens"] > 0 for b in probe["batches"])
    assert [b["vision_tokens"] for b in probe["batches"]] == [0] * len(probe["batches"])


def test_engine_weights_equal_the_trainers_after_each_sync(probe):
    assert probe["global_step"] == 2 and probe["engine_dtype"] == "torch.float32"
    after_step = [s for s in probe["syncs"] if s["step"] >= 1]
    assert after_step, probe["syncs"]  # the sync before the second step's generation
    for s in probe["syncs"]:
        assert s["same_names"], s["missing"]  # every engine parameter (fused q/k/v, gate/up) is accounted for
        assert s["max_abs_diff"] == 0.0, s  # bit-equal: a sync is a copy
    assert all(s["trainer_moved"] > 1e-4 for s in after_step)  # ... and there was something to copy


def test_images_reach_the_engine_with_the_processors_image_token_count(probe):
    trainer, engine = probe["prompts"], probe["engine"]
    assert len(trainer) == len(engine) == 2 * PROMPTS * GENERATIONS
    for sent, got in zip(trainer, engine, strict=True):
        assert sent["images"] == got["images"]
        assert got["engine_tokens"] == sent["trainer_tokens"], (sent, got)
    first_batch = trainer[: PROMPTS * GENERATIONS]  # one engine call: text-only and 1-3 images together
    assert {p["images"] for p in first_batch} == {0, 1, 2, 3}
    # the 448x336 image is reduced to the recipe's budget (12,544 px = at most 16 tokens), not the checkpoint's
    assert max(p["trainer_tokens"] for p in first_batch if p["images"] == 1) <= 16
    # ... and the 3-image prompt's 56x56 image scaled up to the recipe's floor (8 tokens, not the checkpoint's 4)
    assert any(p["images"] == 3 and p["trainer_tokens"] >= 8 + 2 * 8 for p in first_batch)


def test_the_stages_completion_limit_reaches_the_engine(probe):
    assert probe["max_tokens"] == [LIMIT, LIMIT]


def test_sampling_logprobs_agree_with_the_trainers_recomputed_ones(probe):
    for batch in probe["batches"]:
        assert batch["tokens"] > 0
        rows = zip(batch["sampling_per_token_logps"], batch["old_per_token_logps"], batch["ref_per_token_logps"],
                   strict=True)
        gaps = [s - o for srow, orow, _ in rows for s, o in zip(srow, orow, strict=True)]
        assert min(gaps) > -LOGP_TOLERANCE and max(gaps) < BAN_GAP, (batch["step"], min(gaps), max(gaps))
    second = probe["batches"][-1]
    moved = max(abs(r - o) for rrow, orow in zip(second["ref_per_token_logps"], second["old_per_token_logps"], strict=True)
                for r, o in zip(rrow, orow, strict=True))
    assert second["step"] == 1 and moved > 5 * BAN_GAP  # a stale engine could not pass the check above
