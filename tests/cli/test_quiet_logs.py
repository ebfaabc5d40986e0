"""Quiet logs (issue 27): the library messages that tell our user nothing are filtered, and nothing else is; a
metric line in a log file is one line, whatever its length."""

from __future__ import annotations

import io
import os
import warnings
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from visionr1.utils.quiet import GRADIENT_CHECKPOINTING, PIN_MEMORY, filter_library_noise, quiet_progress_bars


def _messages(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record]


def test_pin_memory_warning_is_filtered_and_other_warnings_still_show():
    torch = pytest.importorskip("torch")
    if torch.accelerator.is_available():
        pytest.skip("the warning is only raised without an accelerator")
    from torch.utils.data import DataLoader

    with warnings.catch_warnings(record=True) as before:
        warnings.simplefilter("always")
        list(DataLoader(list(range(4)), batch_size=2, pin_memory=True))
    assert any("pin_memory" in m for m in _messages(before))  # what the user used to see on every CPU run

    with warnings.catch_warnings(record=True) as after:
        warnings.simplefilter("always")
        filter_library_noise()
        list(DataLoader(list(range(4)), batch_size=2, pin_memory=True))
        warnings.warn("'pin_memory' something else", UserWarning, stacklevel=1)
        warnings.warn("another deprecation", FutureWarning, stacklevel=1)
    assert _messages(after) == ["'pin_memory' something else", "another deprecation"]


def _checkpointing_calls(model, output_dir, filtered: bool) -> list[str]:
    """What a training stage does: TRL builds its TrainingArguments, the trainer turns checkpointing on and asks."""
    from transformers import TrainingArguments

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        if filtered:
            filter_library_noise()
        TrainingArguments(output_dir=str(output_dir), gradient_checkpointing=True, report_to=[])
        model.gradient_checkpointing_enable()
        _ = model.is_gradient_checkpointing
        model.gradient_checkpointing_disable()
        warnings.warn("another deprecation", FutureWarning, stacklevel=1)
    return [m for m in _messages(record) if "deprecat" in m]


def test_gradient_checkpointing_future_warnings_are_filtered(tiny_model_dir, tmp_path):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    before = _checkpointing_calls(model, tmp_path / "before", filtered=False)
    assert len([m for m in before if "gradient_checkpointing" in m]) >= 3, before  # every stage, every run
    assert _checkpointing_calls(model, tmp_path / "after", filtered=True) == ["another deprecation"]


def test_save_bars_are_off_in_a_log_file_and_on_in_a_terminal(tiny_model_dir, tmp_path, capfd, monkeypatch):
    from transformers import AutoModelForImageTextToText
    from transformers.utils import logging as hf_logging

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    try:
        hf_logging.enable_progress_bar()
        tty = SimpleNamespace(isatty=lambda: True)
        assert quiet_progress_bars(tty) is False and hf_logging.is_progress_bar_enabled()
        capfd.readouterr()
        model.save_pretrained(tmp_path / "before")
        assert "Writing model shards" in capfd.readouterr().err  # the bar at every save

        assert quiet_progress_bars(io.StringIO()) is True  # a log file
        assert not hf_logging.is_progress_bar_enabled() and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
        model.save_pretrained(tmp_path / "after")
        assert "Writing model shards" not in capfd.readouterr().err
    finally:
        hf_logging.enable_progress_bar()


def test_a_users_own_setting_wins(monkeypatch):
    from transformers.utils import logging as hf_logging

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    try:
        hf_logging.enable_progress_bar()
        quiet_progress_bars(io.StringIO())
        assert hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()


def test_every_command_installs_the_filters():
    from visionr1.cli import app

    with warnings.catch_warnings():
        result = CliRunner().invoke(app, ["recipe", "explain", "model"])
        assert result.exit_code == 0, result.output
        patterns = {f[1].pattern for f in warnings.filters if f[0] == "ignore" and f[1] is not None}
    assert {GRADIENT_CHECKPOINTING, PIN_MEMORY} <= patterns


def test_a_metric_line_in_a_log_file_does_not_wrap(capsys):
    from visionr1.training.callbacks import ConsoleLines, StageInfo

    lines = ConsoleLines(StageInfo("ptst-2-long-stage-name", 2, "grpo", 0))
    logs = {"loss": 0.01234, "reward": 0.5, "accuracy": 0.25, "completions/mean_length": 4096.0,
            "completions/max_length": 8192.0, "completions/clipped_ratio": 0.125, "kl": 0.001, "entropy": 0.9,
            **{f"eval_metric_{i}": i / 7 for i in range(6)}}
    state = SimpleNamespace(is_world_process_zero=True, global_step=12, max_steps=100)
    lines.on_log(None, state, None, logs=logs)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and len(out) > 120, out  # one line, longer than a terminal's 80 columns
    assert "step 12/100" in out and "eval_metric_5" in out
