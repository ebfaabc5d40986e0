"""`visionr1 demo` (`make demo`): the whole Vision-R1 pipeline end to end on a CPU, with measured learning.

Parts: ``pipeline`` (:func:`main`: ``visionr1 run`` on the demo's pipeline recipe, ``recipes/demo.yaml``:
data -> cold start -> SFT -> PTST GRPO -> evaluation; then the report), ``report`` (report.json / report.md /
plot / console table), ``cli`` (the command). The held-out evaluation is ``visionr1.evaluation.heldout``.
Heavy imports happen inside.
"""

from __future__ import annotations

__all__ = ["main", "load_demo_recipe"]


def main(*args, **kwargs):
    """See :func:`visionr1.demo.pipeline.main`."""
    from visionr1.demo.pipeline import main as _main

    return _main(*args, **kwargs)


def load_demo_recipe(*args, **kwargs):
    """See :func:`visionr1.demo.pipeline.load_demo_recipe`."""
    from visionr1.demo.pipeline import load_demo_recipe as _load

    return _load(*args, **kwargs)
