"""A small byte-level BPE tokenizer with the real Qwen special tokens, trained locally.

Why: nothing can be downloaded here, yet every test must take the code path of a real Qwen-VL checkpoint.
The real Qwen tokenizer is a byte-level BPE with a regex pre-tokenizer and ~150K tokens; ours has the same
pipeline (the pre-tokenizer regex, NFC normaliser and byte-level decoder of transformers' `Qwen2Tokenizer`)
and the same special tokens in the same order, but a vocabulary of ~950 learnt from a small built-in corpus
(merges stop once every corpus word is one token; `VOCAB_SIZE` is only the ceiling).
Training is deterministic: the corpus is fixed text plus texts drawn from the synthetic tasks with fixed seeds,
and the `tokenizers` BPE trainer breaks ties deterministically.

Departure from the real tokenizer: `<think>`, `</think>`, `<answer>`, `</answer>` are single (non-special)
added tokens in every family, so the tags the rewards parse cost one token each and survive
`skip_special_tokens=True` decoding (Qwen3-VL has `<think>`/`</think>` as added tokens too; Qwen2/2.5-VL don't).
"""

from __future__ import annotations

import json
import re

# The tags the rewards parse (see visionr1.rewards); ours, added to every family.
REASONING_TAGS = ["<think>", "</think>", "<answer>", "</answer>"]

VOCAB_SIZE = 2048  # learnt BPE vocabulary (bytes + merges), before the added tokens

# Fixed text: the instructions, reflection words and LaTeX the pipeline's prompts and reasoning use.
_BASE_CORPUS = r"""
<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
<|vision_start|><|image_pad|><|vision_end|>What is in the image?<|im_end|>
<|im_start|>assistant
Picture 1: Video 1: system user assistant tool <tool_call> </tool_call> <tool_response> </tool_response>
You are a helpful assistant. You are a helpful assistant.
Look at the image and answer the question. Answer the question using a single word or phrase.
First think about the reasoning process in the mind and then provide the user with the answer.
The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, i.e.,
<think> reasoning process here </think><answer> answer here </answer>.
<think>Let me look at the image carefully.</think><answer> Final Answer:3 </answer>
<think>
Hmm, let me think step by step. Wait, let me check that again. Let me recount to be sure.
Actually, I need to verify this. So the answer is 7. Therefore, the final answer is B.
</think>
<answer> Final Answer:B </answer>
Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: How many objects are there? Choices: (A) 2 (B) 3 (C) 4 (D) 5
Please reason step by step, and put your final answer within \boxed{}.
The answer is \boxed{12}. The answer is $\frac{3}{4}$. $x^2 + y^2 = r^2$, $\sqrt{2}$, $\pi r^2$,
$a \times b$, $a \cdot b$, $a \div b$, $a \pm b$, $a \le b$, $a \ge b$, $a \ne b$, $\angle ABC = 90^\circ$,
$\triangle ABC$, $\sin \theta$, $\cos \theta$, $\tan \theta$, $\left( x \right)$, $\{1, 2, 3\}$, $[0, 1]$.
0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 30 40 50 60 70 80 90 100 0.5 1.25 -3
+ - * / = < > ( ) [ ] { } , . : ; ? ! ' " % # @ & _ | ~ ^ $ \
The bounding box is [12, 34, 56, 78]. {"bbox_2d": [10, 20, 30, 40], "label": "red circle"}
Wait, I made a mistake. Hmm, that is not right. Let me reconsider. Yes, that is correct. Good.
First, second, third, fourth, fifth. One, two, three, four, five, six, seven, eight, nine, ten.
the a an of in on at to is are was were be it this that there these those with and or not no yes
left right above below top bottom middle center largest smallest biggest most least more fewer than
"""


def corpus() -> list[str]:
    """The training corpus: fixed text plus question/description/reasoning texts of every synthetic task.

    >>> corpus() == corpus()
    True
    """
    from visionr1.tasks.synthetic import corpus_texts

    lines = [line for line in _BASE_CORPUS.strip().splitlines() if line.strip()]
    # The fixed text is repeated so its words (chat roles, instructions) become single tokens too.
    return lines * 8 + corpus_texts()


def train_tokenizer(family: str):
    """Train the BPE on `corpus()` and wrap it as the family's tokenizer class (`Qwen2Tokenizer`, Qwen3.5's
    `Qwen3_5Tokenizer`: ``Tokens.tokenizer_class``), with the family's pre-tokenizer regex."""
    import importlib

    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    from visionr1.models.families import family as family_named

    spec = family_named(family).tokens
    module = importlib.import_module(spec.tokenizer_class[0])
    tokenizer_cls, PRETOKENIZE_REGEX = getattr(module, spec.tokenizer_class[1]), module.PRETOKENIZE_REGEX

    # The same normaliser / pre-tokenizer / decoder as transformers' Qwen2Tokenizer builds, so the merges
    # learnt here are the ones it applies when it rebuilds the pipeline from vocab + merges at load time.
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    special = list(spec.special)
    extra = list(spec.added) + [t for t in REASONING_TAGS if t not in spec.added]
    # Added tokens are split off before the BPE runs, so the BPE learns from the text between them
    # ("system" after "<|im_start|>" is a word of its own, not ">system").
    added = re.compile("|".join(re.escape(t) for t in sorted(set(special + extra + REASONING_TAGS), key=len)[::-1]))
    pieces = [piece for line in corpus() for piece in added.split(line) if piece]
    bpe.train_from_iterator(pieces, trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) for m in model["merges"]]

    # Added tokens follow the learnt vocabulary in the real order (<|endoftext|> first, as id 151643 in the
    # real vocab). Reserving their ids in the vocab up front keeps that order whatever order the tokenizer
    # constructor registers its named special tokens in.
    vocab = dict(model["vocab"])
    for t in special + extra:
        vocab[t] = len(vocab)
    # Named special tokens the family's processor reads (Gemma 3's `boi_token`, InternVL's `context_image_token`):
    # only passed when there are some, so the Qwen families' tokenizer files stay as they were.
    named = {"model_specific_special_tokens": dict(spec.named)} if spec.named else {}
    tok = tokenizer_cls(
        **named,
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=spec.bos,
        eos_token=spec.eos,  # the Instruct checkpoints' eos: generation stops at the end of the turn
        pad_token=spec.pad,
        extra_special_tokens=[t for t in special if t not in (spec.pad, spec.bos)],  # the real additional ones
        errors="replace",
        split_special_tokens=False,
        clean_up_tokenization_spaces=False,
        model_max_length=spec.model_max_length,
    )
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in special], special_tokens=True)
    # Non-special: they survive decode(skip_special_tokens=True), which is what rewards see.
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in extra])
    ids = tok.convert_tokens_to_ids(special + extra)
    if ids != list(range(len(model["vocab"]), len(vocab))):
        raise RuntimeError(f"added tokens got out-of-order ids {ids}: the tokenizer build is broken")
    return tok
