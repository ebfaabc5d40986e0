"""Prompt templates of the cold-start steps: files under ``prompts/``, overridable from the recipe.

Templates use ``{name}`` placeholders, but are *not* ``str.format`` strings: prompts about maths are full of
LaTeX braces (``\\frac{a}{b}``), so only the known names below are substituted and every other brace is left
as written.
"""

from __future__ import annotations

import re
from importlib import resources

from visionr1.data.prompts import format_choices

# What each placeholder holds.
PLACEHOLDERS = {
    "question": "the raw question text",
    "choices": "the options as '\\nChoices:\\nA. ...', or empty when the question has none",
    "answer": "the ground-truth answer (for choice questions: the option letter)",
    "pseudo_cot": "step 1's output (caption + step-by-step reasoning)",
    "description": "step 2's output (the detailed / formal description or caption)",
}

# Which placeholders each step's template must contain: a template without them silently loses the input.
REQUIRED = {
    "pseudo_cot": ("question", "answer"),
    "description": ("question",),
    "reasoning": ("question", "description"),
}

# Default template file of each step (step 2 by variant).
DEFAULT_FILES = {
    "pseudo_cot": "pseudo_cot.txt",
    ("description", "detailed"): "description_detailed.txt",
    ("description", "formal"): "description_formal.txt",
    ("description", "caption_first"): "description_caption.txt",
    "reasoning": "reasoning.txt",
}

_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def default_template(step: str, variant: str | None = None) -> str:
    """The shipped template text of a step."""
    name = DEFAULT_FILES[(step, variant)] if step == "description" else DEFAULT_FILES[step]
    return resources.files("visionr1.coldstart").joinpath("prompts", name).read_text(encoding="utf-8")


def placeholders_in(template: str) -> set[str]:
    """Known placeholders a template uses.

    >>> sorted(placeholders_in("Q: {question} \\\\frac{a}{b} {description}"))
    ['description', 'question']
    """
    return set(_PLACEHOLDER_RE.findall(template))


def missing_placeholders(step: str, template: str) -> list[str]:
    """Required placeholders of ``step`` that ``template`` lacks.

    >>> missing_placeholders("reasoning", "Answer {question}")
    ['description']
    """
    used = placeholders_in(template)
    return [p for p in REQUIRED[step] if p not in used]


def render(template: str, **values: str) -> str:
    """Substitute the known placeholders; other braces stay (LaTeX-safe).

    >>> render("{question} in \\\\boxed{{x}}", question="1+1?")
    '1+1? in \\\\boxed{{x}}'
    """
    return _PLACEHOLDER_RE.sub(lambda m: str(values.get(m.group(1), "")), template)


def choices_block(choices: list[str] | None) -> str:
    """The ``{choices}`` of a cold-start template: the options as the training prompts letter them
    (:func:`visionr1.data.prompts.format_choices`), after a ``Choices:`` line, or empty.

    >>> choices_block(["red", "blue"])
    '\\nChoices:\\nA. red\\nB. blue'
    >>> choices_block(None)
    ''
    """
    return f"\nChoices:\n{format_choices(choices)}" if choices else ""
