"""Table-driven unit tests of the training components (no training here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionr1.recipe import ModelSpec
from visionr1.training.callbacks import CompletionsLog, StageInfo, completion_rows
from visionr1.training.freeze import apply_freeze, part_of, trainable_summary
from visionr1.training.manifest import Manifest, recipe_digest
from visionr1.training.plot import figure, plot_run, read_metrics
from visionr1.training.runner import last_checkpoint


@pytest.mark.parametrize(
    "name, part",
    [
        ("model.visual.patch_embed.proj.weight", "vision_tower"),
        ("model.visual.blocks.1.mlp.gate_proj.weight", "vision_tower"),
        ("model.visual.merger.mlp.2.bias", "projector"),
        ("model.visual.deepstack_merger_list.0.linear_fc1.weight", "projector"),  # Qwen3-VL
        ("base_model.model.model.visual.blocks.0.attn.qkv.lora_A.default.weight", "vision_tower"),  # LoRA
        ("model.language_model.embed_tokens.weight", "language_model"),
        ("model.language_model.layers.0.self_attn.q_proj.weight", "language_model"),
        ("lm_head.weight", "language_model"),
        ("multi_modal_projector.linear_1.weight", "projector"),  # LLaVA-style
        ("something.else", None),
    ],
)
def test_part_of(name, part):
    assert part_of(name) == part


def test_freeze_really_sets_requires_grad(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    counts = apply_freeze(model, ["vision_tower", "projector"])
    assert counts["vision_tower"] > 0 and counts["projector"] > 0
    for name, p in model.named_parameters():
        assert p.requires_grad == (part_of(name) == "language_model"), name
    summary = trainable_summary(model)
    assert summary["vision_tower"]["trainable"] == 0 and summary["language_model"]["trainable"] > 0
    with pytest.raises(ValueError, match="no trainable parameter"):
        apply_freeze(model, ["language_model"])
    with pytest.raises(ValueError, match="unknown part"):
        apply_freeze(model, ["vision"])


def test_freeze_refuses_to_be_a_no_op():
    import torch

    with pytest.raises(ValueError, match="would be a no-op"):
        apply_freeze(torch.nn.Linear(2, 2), ["vision_tower"])


def test_processor_pixel_budget_is_applied(tiny_model_dir):
    from PIL import Image

    from visionr1.training.loading import load_processor

    small = load_processor(str(tiny_model_dir), ModelSpec(path=str(tiny_model_dir), max_pixels=56 * 56))
    default = load_processor(str(tiny_model_dir), ModelSpec(path=str(tiny_model_dir)))
    image = Image.new("RGB", (224, 224))
    grid = lambda p: p.image_processor(images=[image], return_tensors="pt")["image_grid_thw"].prod().item()  # noqa: E731
    assert grid(small) < grid(default)
    assert grid(small) <= 56 * 56 // (14 * 14)


def test_sft_loss_is_on_the_assistant_turn_only(tiny_model_dir, tiny_data):
    """Canonical samples are prompt/completion pairs: TRL's collator masks every prompt token (images too)."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from visionr1.data.loaders import load_samples
    from visionr1.data.spec import DatasetSpec
    from visionr1.training.loading import load_processor

    ds = load_samples(DatasetSpec(format="jsonl", path=str(tiny_data["multi"]), limit=2)).dataset
    processor = load_processor(str(tiny_model_dir), ModelSpec(path=str(tiny_model_dir), max_pixels=12544))
    collator = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)
    batch = collator([{k: ds[i][k] for k in ("prompt", "completion", "images")} for i in range(2)])
    tok = processor.tokenizer
    for row in range(2):
        labelled = batch["labels"][row][batch["labels"][row] != -100]
        text = tok.decode(labelled)
        assert "<answer>" in text and "In the" not in text  # completion learned, question not
        image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
        assert image_pad not in labelled.tolist()
    assert batch["image_grid_thw"].shape[0] == 2 + 3  # every image of both samples kept with its grid


def test_last_checkpoint_skips_and_removes_incomplete(tmp_path):
    from visionr1.training.checkpoints import write_record

    for step, complete in ((2, True), (4, True), (6, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        if complete:
            write_record(d, step)
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert (tmp_path / "checkpoint-6").exists()
    assert last_checkpoint(tmp_path, cleanup=True) == str(tmp_path / "checkpoint-4")
    assert not (tmp_path / "checkpoint-6").exists() and not (tmp_path / "checkpoint-8").exists()
    assert last_checkpoint(tmp_path / "nothing") is None


def test_manifest_round_trip_and_digest(tmp_path):
    recipe = {"name": "r", "output_dir": None, "seed": 1, "stages": [{"name": "a", "type": "sft"}]}
    m = Manifest.create(tmp_path, recipe, world_size=2)
    m.update_stage("a", status="done", global_step=3)
    again = Manifest.load(tmp_path)
    assert again.stage("a")["status"] == "done" and again.data["world_size"] == 2
    assert {"torch", "transformers", "trl"} <= set(again.data["packages"])
    assert "commit" in again.data["git"]
    assert recipe_digest(recipe) == recipe_digest({**recipe, "output_dir": "/x", "report_to": ["wandb"]})
    assert recipe_digest(recipe) != recipe_digest({**recipe, "seed": 2})


class _Trainer:
    """What CompletionsLog reads of a GRPO trainer: its model's mode and TRL's completion buffers."""

    def __init__(self, logs):
        from types import SimpleNamespace

        self._logs, self.model = logs, SimpleNamespace(training=True)


def test_completions_log_writes_the_trained_rows_at_training_logs_only(tmp_path):
    """completions.jsonl comes from a callback (on_log), not an override of GRPOTrainer.log: the rows of TRL's
    buffers at each training log of the main process; none at the summary log, in evaluation, on other processes,
    or with completions_per_log 0."""
    from transformers import TrainerControl, TrainerState

    info = StageInfo("g1", 1, "grpo", step_offset=5)
    logs = {
        "prompt": [[{"role": "user", "content": "How many?"}]] * 2,
        "completion": [[{"role": "assistant", "content": f"<answer>{i}</answer>"}] for i in range(2)],
        "rewards": {"hard_format_result": [0.0, 1.0]}, "advantages": [-1.0, 1.0], "extra": {"id": ["a", "a"]},
    }
    trainer, path = _Trainer(logs), tmp_path / "completions.jsonl"
    state, control = TrainerState(global_step=3), TrainerControl()
    callback = CompletionsLog(trainer, path, info, limit=2)
    callback.on_log(None, state, control, logs={"loss": 0.1})
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == completion_rows(logs, 3, info, 2) and [r["id"] for r in rows] == ["a", "a"]
    assert rows[1]["advantage"] == 1.0 and rows[1]["run_step"] == 8

    callback.on_log(None, state, control, logs={"train_runtime": 1.0})  # the final summary
    trainer.model.training = False
    callback.on_log(None, state, control, logs={"eval_loss": 0.1})  # an evaluation
    trainer.model.training = True
    CompletionsLog(trainer, path, info, limit=2).on_log(None, TrainerState(is_world_process_zero=False), control,
                                                      logs={"loss": 0.1})
    CompletionsLog(trainer, path, info, limit=0).on_log(None, state, control, logs={"loss": 0.1})
    assert len(path.read_text().splitlines()) == 2


def test_text_only_prompts_get_an_empty_image_list(tiny_model_dir):
    """patches.trl.TextOnlyImageLists: TRL 1.16 gives a text-only prompt of a batch with images the image list None,
    which the processor refuses; [] is accepted. The first half fails when TRL or transformers change that contract
    (the patch then is useless or must change), the second pins the patch."""
    from types import SimpleNamespace

    from PIL import Image
    from transformers import AutoProcessor
    from trl import GRPOTrainer

    from visionr1.patches.trl import TextOnlyImageLists

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    image = Image.new("RGB", (56, 56), (10, 20, 30))
    prompts = [[{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "What?"}]}],
               [{"role": "user", "content": "What is 2 + 2?"}]]
    trl_self = SimpleNamespace(_is_vlm=True, environment_factories=None, processing_class=processor, tools=None,
                               chat_template=None, chat_template_kwargs={})
    _, images, _ = GRPOTrainer._tokenize_prompts(trl_self, prompts)  # TRL's own code
    assert images == [[image], None]
    texts = [processor.apply_chat_template(
        [{"role": "user", "content": [*([{"type": "image"}] if i == 0 else []), {"type": "text", "text": "x"}]}],
        add_generation_prompt=True, tokenize=False) for i in range(2)]
    with pytest.raises(TypeError, match="only a single or a list of entries"):
        processor(images=images, text=texts, padding=True, return_tensors="pt")

    class Generated:
        def __init__(self, images):
            self.images = images

        def _generate(self, prompts):
            return ("prompt_ids", "completion_ids", None, "completions", None, {}, self.images, [])

    class Patched(TextOnlyImageLists, Generated):
        pass

    out = Patched(images)._generate(prompts)
    assert out[6] == [[image], []] and out[:6] + out[7:] == ("prompt_ids", "completion_ids", None, "completions",
                                                             None, {}, [])
    assert processor(images=out[6], text=texts, padding=True, return_tensors="pt")["image_grid_thw"].shape[0] == 1
    for unchanged in (None, [[image], [image]]):  # an all-text batch, a batch with images everywhere
        assert Patched(unchanged)._generate(prompts)[6] == unchanged


def test_completion_rows_and_plot(tmp_path):
    info = StageInfo("g1", 1, "grpo", step_offset=5, max_completion_length=16, num_generations=4)
    logs = {
        "prompt": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]] * 3,
        "completion": [[{"role": "assistant", "content": f"<answer>{i}</answer>"}] for i in range(3)],
        "rewards": {"hard_format_result": [0.0, 1.0, 0.0]},
        "advantages": [-0.5, 1.0, -0.5],
    }
    rows = completion_rows(logs, step=2, stage=info, limit=2)
    assert [r["completion"] for r in rows] == ["assistant: <answer>1</answer>", "assistant: <answer>2</answer>"]
    assert rows[0]["prompt"] == "user: <image>How many?" and rows[0]["run_step"] == 7
    assert rows[0]["rewards"] == {"hard_format_result": 1.0}

    metrics = tmp_path / "metrics.jsonl"
    lines = []
    for stage, idx, (limit, k), steps in (("g1", 0, (16, 4), range(1, 4)), ("g2", 1, (32, 2), range(1, 4))):
        for s in steps:
            lines.append({"kind": "train", "stage": stage, "stage_index": idx, "stage_type": "grpo", "step": s,
                          "run_step": s + 3 * idx, "reward": 0.1 * s, "accuracy": 0.05 * s,
                          "completions/mean_length": limit * 0.8, "completions/max_length": limit,
                          "max_completion_length": limit, "num_generations": k, "informative_group_share": 0.25 * s,
                          "padded_token_share": 0.3 / s, "generated_tokens": limit * k * s})
    lines.append({"kind": "summary", "stage": "g2", "stage_index": 1, "step": 3, "run_step": 6})
    metrics.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"kind": "tra')  # last line cut by a kill
    fig = figure(read_metrics(metrics))
    labels = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    for stage, k in (("g1", 4), ("g2", 2)):  # every efficiency metric of a GRPO step is drawn, with its values
        assert list(labels[f"{stage} padded tokens"].get_ydata()) == pytest.approx([0.3, 0.15, 0.1])
        assert list(labels[f"{stage} informative groups"].get_ydata()) == pytest.approx([0.25, 0.5, 0.75])
        limit = 16 if stage == "g1" else 32
        assert list(labels[f"{stage} generated tokens"].get_ydata()) == [limit * k * s for s in (1, 2, 3)]
    out = plot_run(metrics, tmp_path / "ptst.png")
    assert out is not None and Path(out).stat().st_size > 10_000
    assert plot_run(tmp_path / "metrics.jsonl", tmp_path / "x.png") is not None
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert plot_run(empty, tmp_path / "none.png") is None
