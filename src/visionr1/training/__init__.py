"""Training: cold-start SFT and GRPO with Progressive Thinking Suppression, from one recipe.

Entry point: :func:`visionr1.training.runner.main` (``visionr1 train``). Stage runners: ``sft.train_sft``,
``grpo.train_grpo``. Parts: ``plan`` (dry-run plan and preflight checks), ``manifest`` (run directory record),
``callbacks`` (metrics.jsonl, completions.jsonl, console), ``plot`` (the PTST figure), ``freeze``, ``loading``.
Heavy libraries (torch, transformers, trl) are imported by those modules, not here.
"""

from __future__ import annotations

__all__ = ["main", "plan_run"]


def main(*args, **kwargs):
    """See :func:`visionr1.training.runner.main`."""
    from visionr1.training.runner import main as _main

    return _main(*args, **kwargs)


def plan_run(*args, **kwargs):
    """See :func:`visionr1.training.plan.plan_run`."""
    from visionr1.training.plan import plan_run as _plan_run

    return _plan_run(*args, **kwargs)
