"""Token-budget micro-batches (``max_tokens_per_micro_batch``, ``training.token_budget``): one optimizer step of a
GRPO stage cut by a token budget moves the weights exactly as the fixed-count run does (plain SGD, so the weights
are the gradient), for a per-sequence and a per-token loss; two processes run the same number of micro-batches;
a budget below the longest sequence is refused with one line before any training; the TRL hooks it relies on exist.

Data: ``write_varied_grpo`` (prompts of 9 to 1,500 characters, images of 28x28 to 1600x90), so rows of one
micro-batch differ in length and the budget really cuts them (the test checks it did)."""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import pytest
import torch

from visionr1.recipe import load_recipe
from visionr1.training.runner import main
from visionr1.training.token_budget import loss_share, micro_batches, pack, select_rows, split_to

from .conftest import REPO, TINY, load_state, read_jsonl, subprocess_env, visionr1_cmd, write_varied_grpo

LETTERS = Path(__file__).with_name("varied_reward.py")
CPU_DDP = REPO / "configs" / "accelerate" / "cpu-ddp.yaml"
BUDGET = 720  # above the longest varied row (679 prompt + 8 completion tokens), below two rows of 355


def _overrides(tiny_model_dir, data: Path, loss_type: str, budget: int | None, per_device: int = 8) -> list[str]:
    s = "stages.ptst-1"
    return ["stages.sft.enabled=false", "stages.ptst-2.enabled=false", f"model.path={tiny_model_dir}",
            f"{s}.dataset={{format: jsonl, path: {data}}}", f"{s}.rewards=[{{name: '{LETTERS}:letters'}}]",
            f"{s}.grpo.max_steps=1", f"{s}.grpo.per_device_train_batch_size={per_device}",
            f"{s}.grpo.gradient_accumulation_steps=2", f"{s}.grpo.num_generations=2",
            f"{s}.grpo.max_completion_length=8", f"{s}.grpo.loss_type={loss_type}", f"{s}.grpo.optim=sgd",
            f"{s}.grpo.learning_rate=1.0", f"{s}.grpo.max_grad_norm=1.0e9", f"{s}.grpo.lr_scheduler_type=constant",
            f"{s}.grpo.save_steps=100",
            *([f"{s}.max_tokens_per_micro_batch={budget}"] if budget else [])]


def _micro_batches_logged(run: Path) -> list[float]:
    return [r["token_budget/micro_batches"] for r in read_jsonl(run / "metrics.jsonl")
            if r["kind"] == "train" and "token_budget/micro_batches" in r]


@pytest.mark.slow
@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_one_step_with_a_token_budget_equals_the_fixed_count_step(tmp_path, tiny_model_dir, loss_type):
    """SGD with lr 1 and no clipping: the weights after one step are w0 - gradient, so equal weights are equal
    gradients (Adam's first step, lr x sign, would hide a wrongly scaled loss)."""
    data = write_varied_grpo(tmp_path / "data", n=16)
    runs = {}
    for name, budget in (("fixed", None), ("budget", BUDGET)):
        runs[name] = tmp_path / name
        summary = main(load_recipe(TINY / "ptst.yaml", _overrides(tiny_model_dir, data, loss_type, budget)),
                       output_dir=runs[name])
        assert summary["stages"] == {"ptst-1": "done"}
    counts = _micro_batches_logged(runs["budget"])
    assert counts and counts[0] > 1  # the budget really cut the 2 micro-batches of 8 rows (mean per micro-batch)
    assert not _micro_batches_logged(runs["fixed"])

    start, fixed, budget = (load_state(p) for p in (Path(tiny_model_dir), runs["fixed"] / "ptst-1" / "final",
                                                    runs["budget"] / "ptst-1" / "final"))
    moved = max((fixed[k] - start[k]).abs().max().item() for k in fixed if fixed[k].is_floating_point())
    assert moved > 1e-3  # the gradient is not zero: the comparison below can fail
    worst = max((fixed[k] - budget[k]).abs().max().item() for k in fixed if fixed[k].is_floating_point())
    assert worst < 1e-5, worst


@pytest.mark.slow
def test_two_processes_run_as_many_micro_batches_and_match_the_fixed_count_run(tmp_path, tiny_model_dir):
    """Each process holds rows of other lengths, so each alone would cut its micro-batch differently; they agree on
    the largest count (TRL's loss metrics are collectives, DDP reduces in each backward: a mismatch hangs)."""
    data = write_varied_grpo(tmp_path / "data", n=16)
    runs = {}
    for name, budget in (("fixed", None), ("budget", BUDGET)):
        runs[name] = tmp_path / name
        cmd = visionr1_cmd("train", str(TINY / "ptst.yaml"),
                           *_overrides(tiny_model_dir, data, "dapo", budget, per_device=4),
                           "launch.num_processes=2", f"launch.config_file={CPU_DDP}", "--output-dir", str(runs[name]))
        out = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=500)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert _micro_batches_logged(runs["budget"])[0] > 1
    fixed, budget = (load_state(p / "ptst-1" / "final") for p in (runs["fixed"], runs["budget"]))
    worst = max((fixed[k] - budget[k]).abs().max().item() for k in fixed if fixed[k].is_floating_point())
    assert worst < 1e-5, worst


def test_a_budget_below_the_longest_sequence_is_refused_with_one_line(tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from visionr1.cli import app

    data = write_varied_grpo(tmp_path / "data", n=8)
    res = CliRunner().invoke(app, ["train", str(TINY / "ptst.yaml"), *_overrides(tiny_model_dir, data, "grpo", 200),
                                   "--output-dir", str(tmp_path / "run")])
    line = next(x for x in res.output.splitlines() if "max_tokens_per_micro_batch" in x)
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    assert "below the longest sequence: record varied-" in line and "Fix: raise max_tokens_per_micro_batch" in line
    assert not (tmp_path / "run" / "ptst-1").exists()  # refused before any training
    # without data (the plan): a budget no completion fits, and settings TRL computes per micro-batch
    res = CliRunner().invoke(app, ["train", str(TINY / "ptst.yaml"), *_overrides(tiny_model_dir, data, "grpo", 8),
                                   "stages.ptst-1.grpo.top_entropy_quantile=0.5", "--dry-run", "--plan-only",
                                   "--output-dir", str(tmp_path / "run2")])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert "max_tokens_per_micro_batch (8) is below one sequence: max_completion_length (8)" in res.output
    assert "cannot be combined with top_entropy_quantile" in res.output


def _batch(lengths: list[tuple[int, int]], p_width: int = 12, c_width: int = 6) -> dict:
    """A TRL-shaped micro-batch: prompts left-padded, completions right-padded, one 4-patch image per row."""
    n = len(lengths)
    prompt_mask = torch.zeros(n, p_width, dtype=torch.long)
    completion_mask = torch.zeros(n, c_width, dtype=torch.long)
    for r, (p, c) in enumerate(lengths):
        prompt_mask[r, p_width - p:] = 1
        completion_mask[r, :c] = 1
    return {"prompt_ids": torch.arange(n * p_width).view(n, p_width), "prompt_mask": prompt_mask,
            "completion_ids": torch.arange(n * c_width).view(n, c_width) + 1000, "completion_mask": completion_mask,
            "old_per_token_logps": torch.randn(n, c_width), "advantages": torch.randn(n),
            "mm_token_type_ids": torch.cat([prompt_mask, completion_mask], 1) * 0 + torch.arange(p_width + c_width),
            "pixel_values": torch.arange(n * 4 * 3, dtype=torch.float).view(n * 4, 3),
            "image_grid_thw": torch.tensor([[1, 2, 2]] * n), "num_images": [1] * n,
            "num_items_in_batch": torch.tensor(99.0)}


def test_rows_are_packed_within_the_budget_and_cut_to_the_agreed_count():
    lengths = [(12, 6), (3, 1), (5, 2), (2, 6), (9, 3), (1, 1), (4, 4), (7, 5)]
    prompt, completion = [p for p, _ in lengths], [c for _, c in lengths]
    for budget in (18, 25, 40, 200):
        batches = pack(prompt, completion, budget)
        assert sorted(r for b in batches for r in b) == list(range(8))
        for b in batches:
            assert len(b) == 1 or len(b) * (max(prompt[r] for r in b) + max(completion[r] for r in b)) <= budget
        for count in range(len(batches), 9):
            cut = split_to(batches, count)
            assert len(cut) == count and sorted(r for b in cut for r in b) == list(range(8))
    assert len(pack(prompt, completion, 18)) > len(pack(prompt, completion, 200)) == 1
    assert len(micro_batches(_batch(lengths), 40)) == len(pack(prompt, completion, 40))


def test_selected_rows_lose_only_their_common_padding_and_keep_their_images():
    batch = _batch([(12, 2), (3, 1), (5, 4), (2, 6)])
    part = select_rows(batch, [1, 2])
    assert part["prompt_ids"].tolist() == [r[7:] for r in batch["prompt_ids"][[1, 2]].tolist()]  # 5 columns kept
    assert part["completion_ids"].tolist() == [r[:4] for r in batch["completion_ids"][[1, 2]].tolist()]
    assert part["old_per_token_logps"].shape == (2, 4) and torch.equal(part["advantages"], batch["advantages"][[1, 2]])
    assert part["mm_token_type_ids"][0].tolist() == [*range(7, 12), *range(12, 16)]
    assert torch.equal(part["pixel_values"], batch["pixel_values"][4:12]) and part["num_images"] == [1, 1]
    assert part["image_grid_thw"].shape == (2, 3) and part["num_items_in_batch"].item() == 99.0
    whole = select_rows(batch, [0, 3])
    assert whole["prompt_ids"].shape == (2, 12) and whole["completion_ids"].shape == (2, 6)


def test_loss_shares_sum_to_one_for_every_normalisation():
    batch = _batch([(12, 2), (3, 1), (5, 4), (2, 6), (4, 3)])
    parts = [select_rows(batch, rows) for rows in ([0, 3], [1], [2, 4])]
    for loss_type in ("grpo", "dr_grpo", "bnpo"):
        assert abs(sum(loss_share(loss_type, batch, p) for p in parts) - 1.0) < 1e-12, loss_type
    assert [loss_share("dapo", batch, p) for p in parts] == [1.0, 1.0, 1.0]  # TRL divides by the global count
    with pytest.raises(ValueError, match="Fix: use loss_type"):
        loss_share("new_loss", batch, parts[0])


def test_the_trl_hooks_token_budget_relies_on_still_exist():
    """Contract: patches.token_budget overrides compute_loss and backs up Trainer.training_step's backward."""
    from transformers import Trainer
    from trl import GRPOTrainer

    from visionr1.patches.token_budget import TokenBudgetHooks
    from visionr1.training.grpo import VisionR1GRPOTrainer

    assert list(inspect.signature(GRPOTrainer.compute_loss).parameters) == \
        list(inspect.signature(TokenBudgetHooks.compute_loss).parameters)
    assert GRPOTrainer.loss_is_scaled_for_ga is True  # Trainer.training_step backs up TRL's loss unscaled
    step = inspect.getsource(Trainer.training_step)
    assert "self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)" in step
    assert "self.accelerator.backward(loss, **kwargs)" in step
    loss = inspect.getsource(GRPOTrainer._compute_loss)
    for text in ('if self.loss_type in ["grpo", "sapo"]:', 'elif self.loss_type == "bnpo":',
                 'elif self.loss_type == "dr_grpo":', 'elif self.loss_type in ["cispo", "dapo", "vespo"]:',
                 'inputs["num_items_in_batch"].clamp(min=1.0)', 'elif self.loss_type == "luspo":'):
        assert text in loss, text
    mro = VisionR1GRPOTrainer.__mro__
    assert mro.index(TokenBudgetHooks) < mro.index(GRPOTrainer)


def test_what_the_plan_cannot_see_is_refused_when_the_trainer_is_built():
    from types import SimpleNamespace as S

    from accelerate.utils import DistributedType

    from visionr1.training.token_budget import trainer_problem

    def trainer(kind, aux=False):
        return S(accelerator=S(distributed_type=kind), aux_loss_enabled=aux)

    assert trainer_problem(trainer(DistributedType.NO)) is None
    assert trainer_problem(trainer(DistributedType.MULTI_CPU)) is None
    assert "not supported with DeepSpeed" in trainer_problem(trainer(DistributedType.DEEPSPEED))
    assert "router_aux_loss_coef: 0" in trainer_problem(trainer(DistributedType.NO, aux=True))
