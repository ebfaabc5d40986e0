"""The prompts of Insight-V's agents, shared by data generation, the SFT sets and ``eval run --strategy insight-v``
(the agents must see at inference exactly the user turns they were trained on).

Our wording, after Insight-V's: its generator asks for one JSON step at a time (title, content, next_action)
with the earlier steps in the conversation; here the earlier steps go into one user turn (every backend
takes one), and the summarizing step carries the answer. Its summary agent is told to judge the reasoning,
summarize it when right and answer by itself when wrong; ours also states its verdict first (``Verdict:
correct | flawed``) so the verdict can be logged and scored.

Placeholders are substituted by name only (``{question}`` ...), so LaTeX braces in questions stay as written.
"""

from __future__ import annotations

import re

from visionr1.data.prompts import format_choices

STEP_PROMPT = """{question}{choices}

Solve this problem about the image one step at a time.
Steps so far:
{steps}

Write only the next step, as one JSON object:
{"summary": "<a few words: what this step does>", "reasoning": "<the detailed reasoning of this step>", \
"next_action": "continue" or "summarize"}
Use "summarize" on the step that reaches the final answer, and add "answer": "<the final answer>" to it. \
Reply with the JSON object only."""

SCORE_PROMPT = """You are rating a reasoning process for a question about the image.
Question: {question}{choices}
Correct answer: {answer}

Reasoning process:
{chain}

Check every step: is it correct, does it follow from the image and the earlier steps, is it detailed enough \
to be followed? Reply with one integer from 1 (useless) to 100 (flawless), nothing else."""

REASONER_INSTRUCTION = ("Reason step by step. Write each step as 'Step N: <summary>', its detailed reasoning, and "
                        "'Next action: continue' or 'Next action: summarize'; after the summarizing step give the "
                        "final answer inside <answer> </answer> tags.")

SUMMARY_PROMPT = """I will give you a question about the image and a reasoning process for it. Decide whether \
the reasoning process is correct. If it is, summarize its answer; if it is not, ignore it and answer the \
question yourself from the image. Begin with "Verdict: correct" or "Verdict: flawed", then give the final \
answer inside <answer> </answer> tags.

QUESTION: {question}{choices}

REASONING PROCESS:
{chain}"""

_NAMES = ("question", "choices", "steps", "answer", "chain")
_RE = re.compile(r"\{(" + "|".join(_NAMES) + r")\}")


def fill(template: str, **values: str) -> str:
    """Substitute the known placeholders; every other brace stays (LaTeX, the JSON example).

    >>> fill('{question} {"a": 1} \\\\frac{x}{2}', question="Q?")
    'Q? {"a": 1} \\\\frac{x}{2}'
    """
    return _RE.sub(lambda m: str(values.get(m.group(1), "")), template)


def step_prompt(question: str, choices: list[str] | None, steps_so_far: str) -> str:
    return fill(STEP_PROMPT, question=question, choices=format_choices(choices), steps=steps_so_far or "(none yet)")


def score_prompt(question: str, choices: list[str] | None, answer: str, chain: str) -> str:
    return fill(SCORE_PROMPT, question=question, choices=format_choices(choices), answer=answer, chain=chain)


def reasoner_text(question: str, choices: list[str] | None) -> str:
    """The reasoning agent's user turn (without image placeholders)."""
    return f"{question}{format_choices(choices)}\n{REASONER_INSTRUCTION}"


def summary_text(question: str, choices: list[str] | None, chain: str) -> str:
    """The summary agent's user turn: the question and a chain (the steps, without the reasoner's answer tag)."""
    return fill(SUMMARY_PROMPT, question=question, choices=format_choices(choices), chain=chain.strip())


def chain_for_summary(response: str) -> str:
    """What of a reasoner's response the summary agent reads: the steps, without ``<think>`` tags and answer,
    so it judges the reasoning, not a tag it could copy.

    >>> chain_for_summary("<think>\\nStep 1: a\\nb\\n</think>\\n<answer>3</answer>")
    'Step 1: a\\nb'
    """
    text = re.sub(r"<answer>.*?(</answer>|$)", "", response, flags=re.S)
    return text.replace("<think>", "").replace("</think>", "").strip()
