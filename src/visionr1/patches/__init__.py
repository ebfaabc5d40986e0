"""The one home of visionr1's overrides of other libraries' private code (accelerate, DeepSpeed, vLLM, TRL).

Each patch is applied by a function of a module here, only where it is needed (most only on a CPU, where the
libraries were never meant to run several processes or an engine), and is listed in :data:`PATCHES` with why it
exists, the test that pins it and the upstream report. A library upgrade that makes a patch useless or wrong
fails that test. (TRL's ``GRPOTrainer`` hooks that ``training/grpo.py`` and ``training/checkpoints.py`` override are
documented there; moving them here is tracked in the structure issue.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Patch:
    hook: str  # the library function or method replaced or wrapped
    where: str  # when it applies
    why: str
    test: str  # the test that pins it
    upstream: str  # the upstream issue / PR, or why none


PATCHES: list[Patch] = []
