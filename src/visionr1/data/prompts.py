"""From a question to TRL's conversational VLM prompt: the recipe's template, lettered options, image slots.

The canonical prompt is ``[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ...}]}]``
(an optional system message first). Where the images go:

- at the ``<image>`` placeholders when the text has them (LLaMA-Factory, EasyR1 and geometry3k data mark
  them so), and then their count must equal the number of images: a mismatch is the root of the
  "image features and image tokens do not match" crash peers keep hitting, so it is caught here, per record;
- otherwise all images first, then the text (Qwen2-VL's own convention, and what TRL does with plain text).

Templates are filled with ``str.replace``, not ``str.format``: questions and templates are full of LaTeX
braces (``\\frac{1}{2}``, ``\\boxed{}``) that ``format`` would choke on.
"""

from __future__ import annotations

import re
from typing import Any

from visionr1.rewards.extract import ANSWER_BLOCK_RE, LETTERS

IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"

# The one place the Arrow shape of a message is decided: every content part has both keys, so image parts
# read back as {"type": "image", "text": None}, which TRL (prepare_multimodal_messages) and the Qwen chat
# templates accept.
Part = dict[str, Any]
Message = dict[str, Any]


def text_part(text: str) -> Part:
    return {"type": "text", "text": text}


def image_part() -> Part:
    return {"type": "image", "text": None}


def messages_text(messages: Any, media: str = "<{}>") -> str:
    """Plain text of a conversational prompt or completion, one ``role: text`` line per message; image and
    video parts become ``media`` filled with their type. A string is returned as it is.

    >>> messages_text([{"role": "user", "content": [image_part(), text_part("Count.")]},
    ...                {"role": "assistant", "content": "3"}])
    'user: <image>Count.\\nassistant: 3'
    >>> messages_text([{"role": "user", "content": [image_part(), text_part("Box it.")]}], media="[{}]")
    'user: [image]Box it.'
    """
    if isinstance(messages, str):
        return messages
    out = []
    for m in messages or []:
        content = m.get("content")
        if isinstance(content, str):
            out.append(f"{m.get('role')}: {content}")
            continue
        pieces = []
        for part in content or []:
            if part.get("type") == "text":
                pieces.append(part.get("text") or "")
            elif part.get("type") in ("image", "video"):
                pieces.append(media.format(part["type"]))
        out.append(f"{m.get('role')}: {''.join(pieces)}")
    return "\n".join(out)


def format_choices(choices: list[str] | None) -> str:
    """Lettered options, one a line.

    >>> format_choices(["3", "4"])
    'A. 3\\nB. 4'
    >>> format_choices(None)
    ''
    """
    if not choices:
        return ""
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def render_template(template: str, question: str, choices: list[str] | None) -> str:
    """Fill ``{question}`` and ``{choices}``. A template without ``{choices}`` still shows the options of a
    multiple-choice record (after the question): a choice question asked without its options is unanswerable,
    and the default template, written for math, has no ``{choices}``.

    >>> render_template("Q: {question}", "Which?", ["x", "y"])
    'Q: Which?\\nChoices:\\nA. x\\nB. y'
    >>> render_template("{question}\\n{choices}\\nAnswer with \\\\boxed{}.", "2+2?", None)
    '2+2?\\n\\nAnswer with \\\\boxed{}.'

    Options that are just their own letters (``["A", "B", "C"]``: the options are drawn in the image, as in
    MATH-V and EasyR1's geometry data) are not listed: "A. A / B. B" tells the model nothing. Nor are options
    the question already lists with their letters (EasyR1's MATH-V conversion appends ``(A) ...`` to the
    problem): listing them twice makes a prompt no published one is.

    >>> render_template("{question}", "Which? (A) red\\n(B) blue", ["red", "blue"])
    'Which? (A) red\\n(B) blue'
    >>> render_template("{question}", "Which graph?", ["<image2>", "<image3>"])
    'Which graph?\\nChoices:\\nA. (image 2)\\nB. (image 3)'
    """
    if choices:  # options that are figures ("<image2>"), named as the question names them: "(image 2)"
        choices = [_IMAGE_REF_RE.sub(lambda m: f"(image {m.group(1)})", str(c)) for c in choices]
    shown = bare_letters(choices) or lists_choices(question, choices)
    options = "" if shown else format_choices(choices)
    if "{choices}" in template:
        return template.replace("{choices}", options).replace("{question}", question)
    if options:
        question = f"{question}\nChoices:\n{options}"
    return template.replace("{question}", question)


def lists_choices(question: str, choices: list[str] | None) -> bool:
    """True when ``question`` already lists every option with its letter, in order: ``(A) x``, ``A. x``,
    ``A) x`` or ``A: x`` (the option's text right after its letter).

    >>> lists_choices("Which? (A) 3 (B) 4", ["3", "4"]), lists_choices("Which? (A) 3", ["3", "4"])
    (True, False)
    """
    if not choices or len(choices) > len(LETTERS):
        return False
    at = 0
    for i, c in enumerate(choices):
        marker = re.compile(rf"(?:\({LETTERS[i]}\)|\b{LETTERS[i]}[.):])\s*{re.escape(str(c).strip())}")
        found = marker.search(question, at)
        if found is None:
            return False
        at = found.end()
    return True


def bare_letters(choices: list[str] | None) -> bool:
    """True when the options are just ``A, B, C, ...`` in order (the real options are in the image).

    >>> bare_letters(["A", "B", "C"]), bare_letters(["3", "4"]), bare_letters(None)
    (True, False, False)
    """
    return bool(choices) and all(str(c).strip().upper() == LETTERS[i] for i, c in enumerate(choices))


_IMAGE_REF_RE = re.compile(r"<image(\d+)>")


def image_references(text: str) -> list[int]:
    """The numbers of MATH-V style ``<image1>`` .. ``<imageN>`` references, in order of appearance.

    >>> image_references("clock <image1>, then <image2>; see <image1>")
    [1, 2, 1]
    """
    return [int(n) for n in _IMAGE_REF_RE.findall(text)]


def rewrite_image_references(text: str) -> str:
    """MATH-V's question text with its ``<imageK>`` references made readable, the same for training
    (``format: mathv``) and ``eval run``.

    MATH-V gives one image per question, a composite of every figure the question names, and puts it
    before the text. A lone ``<image1>`` standing apart just marks where that image was: it is removed. One
    inside a sentence (punctuation right after it: "the clock showed <image1>.") names the figure, and
    several distinct references name parts of the composite: each becomes ``(image K)``, so "the clock
    showed <image1>, later <image2>" keeps its meaning and no sentence is left with a hole.

    >>> rewrite_image_references("How many digits?\\n<image1>")
    'How many digits?'
    >>> rewrite_image_references("The clock showed <image1>. Later it showed <image2>.")
    'The clock showed (image 1). Later it showed (image 2).'
    """
    refs = set(image_references(text))
    if not refs:
        return text
    if len(refs) > 1:
        return _IMAGE_REF_RE.sub(lambda m: f"(image {m.group(1)})", text)
    named = re.sub(r"<image(\d+)>(?=[ \t]*[.,;:!?)])", lambda m: f"(image {m.group(1)})", text)
    return re.sub(r"\s*<image\d+>\s*", " ", named).strip()


def strip_placeholders(text: str) -> str:
    """The question without ``<image>``/``<video>`` markers (the canonical ``question`` is plain text).

    >>> strip_placeholders("<image>\\nFind x. <image>")
    'Find x.'
    """
    return re.sub(r"\s*(?:<image>|<video>)\s*", " ", text).strip()


def count_placeholders(text: str) -> int:
    return text.count(IMAGE_PLACEHOLDER)


def content_parts(text: str, num_images: int | None = None) -> list[Part]:
    """Split a text on ``<image>`` into text and image parts, in order; with no placeholder and
    ``num_images`` images, the images come first. Empty text pieces are dropped; the whitespace around a
    placeholder is trimmed (the chat template puts vision tokens on their own).

    The caller checks the placeholder count against the images (it knows the record, for the error).

    >>> content_parts("<image>Find x.")
    [{'type': 'image', 'text': None}, {'type': 'text', 'text': 'Find x.'}]
    >>> [p["type"] for p in content_parts("Compare", num_images=2)]
    ['image', 'image', 'text']
    """
    parts: list[Part] = []
    if IMAGE_PLACEHOLDER not in text:
        parts.extend(image_part() for _ in range(num_images or 0))
        if text.strip():
            parts.append(text_part(text.strip()))
        return parts
    pieces = text.split(IMAGE_PLACEHOLDER)
    for i, piece in enumerate(pieces):
        if i:
            parts.append(image_part())
        if piece.strip():
            parts.append(text_part(piece.strip()))
    return parts


def system_message(system: str | None) -> list[Message]:
    return [{"role": "system", "content": [text_part(system)]}] if system else []


def user_prompt(text: str, num_images: int, system: str | None = None, prefix: str | None = None) -> list[Message]:
    """A one-turn prompt: optional system message, then the user turn (``prefix`` text first, e.g. the
    sentence that introduces video frames).

    >>> p = user_prompt("<image>What is x?", 1, system="Be brief.")
    >>> [m["role"] for m in p], [c["type"] for c in p[1]["content"]]
    (['system', 'user'], ['image', 'text'])
    """
    content = [text_part(prefix)] if prefix else []
    content += content_parts(text, num_images)
    return [*system_message(system), {"role": "user", "content": content}]


def assistant_turn(text: str) -> list[Message]:
    """The canonical ``completion``: one assistant message with one text part."""
    return [{"role": "assistant", "content": [text_part(text)]}]


_FINAL_ANSWER_RE = re.compile(r"^\s*\**\s*final\s+answer\s*\**\s*[:：]\s*\**\s*", re.IGNORECASE)


def answer_from_response(response: str) -> str:
    """The ground truth carried by a Vision-R1-cold response: the last ``<answer>`` block after the
    thinking (an ``<answer>`` quoted inside ``<think>`` is not the answer), with its "Final Answer:" lead-in
    removed; "" when the response has no answer block.

    >>> answer_from_response("<think>a <answer>1</answer>?</think><answer> Final Answer:B </answer>")
    'B'
    >>> answer_from_response("no tags")
    ''
    """
    if "</think>" in response:
        response = response.rsplit("</think>", 1)[1]
    found = ANSWER_BLOCK_RE.findall(response)
    if not found:
        return ""
    return _FINAL_ANSWER_RE.sub("", found[-1]).strip()


def generation_prompt_opens_think(processor: Any) -> bool:
    """Whether the model's chat template ends its generation prompt inside a ``<think>`` block (Qwen3.5's
    templates do: ``<|im_start|>assistant\\n<think>\\n``), so completions start in the thinking and carry no
    ``<think>`` of their own: the rewards then read them with ``think_prefilled=True``. Asked of the template
    itself, not of the model's name.
    """
    tok = getattr(processor, "tokenizer", processor)
    template = getattr(processor, "chat_template", None) or getattr(tok, "chat_template", None)
    if not template:
        return False
    prompt = [{"role": "user", "content": [text_part("1 + 1?")]}]
    text = (processor if hasattr(processor, "apply_chat_template") else tok).apply_chat_template(
        prompt, add_generation_prompt=True, tokenize=False)
    return text.rstrip().endswith("<think>")


def opened_thinking(processor: Any) -> str:
    """What the generation prompt already wrote of the assistant turn: ``"<think>\\n"`` when the template opens
    the thinking (:func:`generation_prompt_opens_think`), else ``""``. Evaluation puts it in front of each
    completion, so a response reads as the whole assistant turn and every scorer (the rewards', each benchmark's,
    ``eval score`` on the file later) reads it as the rewards read the bare completion with
    ``think_prefilled=True`` (the rewards' scorer: no ``</think>`` is a truncated thought, no answer; the
    benchmarks read a truncated thought as they read any thinking model's)."""
    return "<think>\n" if generation_prompt_opens_think(processor) else ""


def continuation(opened: str, prefix: str) -> str:
    """The text to place after a generation prompt that already wrote ``opened`` so that the assistant turn
    reads ``opened`` + the result like ``prefix`` asks: a prefix starting with the ``<think>`` the template
    opened loses it (a second ``<think>`` would be a thought inside the thought).

    >>> continuation("<think>\\n", "<think>\\nThe image shows"), continuation("", "<think>"), continuation("<think>\\n", "<SUMMARY>")
    ('The image shows', '<think>', '<SUMMARY>')
    """
    tag = opened.strip()
    if tag and prefix.lstrip().startswith(tag):
        return prefix.lstrip()[len(tag):].lstrip("\n")
    return prefix


def assistant_turn_left_open(processor: Any) -> bool:
    """Whether the chat template ends an assistant turn with nothing after its text (GLM-4.1V: the next role
    token closes it, ``<|user|>``), so a prompt/completion pair for SFT or DPO carries no token that teaches
    the model to stop. TRL appends the eos only to plain-text data, never to conversational vision data."""
    tok = getattr(processor, "tokenizer", processor)
    if not (getattr(processor, "chat_template", None) or getattr(tok, "chat_template", None)):
        return False
    marker = "ANSWER 7"
    msgs = [{"role": "user", "content": [text_part("1 + 1?")]}, {"role": "assistant", "content": [text_part(marker)]}]
    text = (processor if hasattr(processor, "apply_chat_template") else tok).apply_chat_template(msgs, tokenize=False)
    return text.rstrip().endswith(marker)


def close_assistant_turn(messages: list[Message], eos: str) -> list[Message]:
    """``messages`` (a completion: assistant turns) with ``eos`` after the last turn's text.

    >>> close_assistant_turn([{"role": "assistant", "content": [text_part("4")]}], "<|endoftext|>")
    [{'role': 'assistant', 'content': [{'type': 'text', 'text': '4<|endoftext|>'}]}]
    """
    out = [dict(m) for m in messages]
    last = out[-1]
    if isinstance(last["content"], str):
        last["content"] += eos
        return out
    parts = [dict(p) for p in last["content"]]
    texts = [i for i, p in enumerate(parts) if p.get("type") == "text"]
    if texts:
        parts[texts[-1]]["text"] = (parts[texts[-1]]["text"] or "") + eos
    else:
        parts.append(text_part(eos))
    last["content"] = parts
    return out
