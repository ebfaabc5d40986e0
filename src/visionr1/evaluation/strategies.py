"""Inference-time reasoning strategies for ``visionr1 eval run --strategy NAME[:key=value,...]``.

| strategy        | what the model is asked to do                               | options (defaults)                      |
|-----------------|-------------------------------------------------------------|-----------------------------------------|
| ``single``      | one response per item (today's ``eval run``)                | --                                      |
| ``staged``      | LlamaV-o1's stages, prompted one stage at a time            | stages=llamav-o1, stage_tokens          |
| ``beam``        | per stage ``width`` candidates, keep the best, continue     | width=4, select=logprob, stages, ...    |
| ``best-of-n``   | ``n`` samples, keep one                                     | n=4, select=logprob (judge, oracle)     |
| ``vote``        | ``n`` samples, majority answer (self-consistency)           | n=4                                     |
| ``caption-first``| describe the image at the start of the thinking (R1-Vision)| prefix                                  |
| ``insight-v``   | a reasoning agent's chain, then a summary agent's verdict   | summary_tokens (``--summary-model``)    |

Every strategy also takes ``step_judge=true`` (step-level scores from the judge, see step_judge.py).

One scorer: the response a strategy keeps is scored by the benchmark exactly like a ``single`` response, and
``vote`` groups answers with the reward library's equivalence (``rewards.scoring.score_answer``: ``2/4`` and
``0.5`` are one vote). ``best-of-n`` with ``select=oracle`` picks a candidate the benchmark's own scorer
marks correct: it reads the ground truth, so its accuracy is an upper bound (pass@n), labelled so in
``summary.json`` -- never a result to compare with the others.

``insight-v`` (Insight-V, arXiv 2411.14432): the reasoning agent (``--model``) writes a structured chain for
the question; the summary agent (``--summary-model``, default the same model with its own prompt) reads the
question and the chain's steps, says ``Verdict: correct | flawed`` and answers. The summary agent's response is
what is scored; the reasoner's own answer is scored too (``reasoner_correct``) so ``summary.json`` shows both
accuracies. The prompts are the ones the SFT sets of ``visionr1 insight data`` were written with.

Where we depart from LlamaV-o1: its beam search keeps one stage candidate out of N judged by the model itself
in a comparison prompt; ``beam`` keeps the best by mean token log-prob under the model (no extra prompt) or by
an external judge. Stages are prompted by prefilling the assistant turn with the earlier stages and the next
stage's opening tag, so a model that was never trained on the tags still produces every section; a stage the
model does not close within ``stage_tokens`` is closed for it (recorded as ``closed: false``). Tokens spent
count every generated token of every candidate (prompt re-encoding between stages is not counted).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from visionr1.evaluation.records import EvalError

STRATEGIES = ("single", "staged", "beam", "best-of-n", "vote", "caption-first", "insight-v")
SELECTORS = ("logprob", "judge", "oracle")

# What each strategy reads; any other option given to it is an error (a typo must not pass silently).
_OPTIONS: dict[str, tuple[str, ...]] = {
    "single": ("step_judge",),
    "staged": ("stages", "stage_tokens", "step_judge"),
    "beam": ("width", "select", "stages", "stage_tokens", "step_judge"),
    "best-of-n": ("n", "select", "step_judge"),
    "vote": ("n", "step_judge"),
    "caption-first": ("prefix", "step_judge"),
    "insight-v": ("summary_tokens", "summary_model", "step_judge"),
}
_SPELLINGS = {"beam_width": "width"}  # accepted spellings of an option (after "-" -> "_")
_FIELDS = {"width": "n"}  # option -> StrategyConfig field


@dataclass(frozen=True)
class Stage:
    name: str
    open: str
    close: str


# LlamaV-o1's four stages; "think-answer" treats the R1 format's two sections as stages, so ``beam`` works
# on a Vision-R1 model as trained (thought candidates, then answer candidates).
STAGE_SCHEMES: dict[str, tuple[tuple[Stage, ...], str]] = {
    "llamav-o1": (
        tuple(Stage(n, f"<{n}>", f"</{n}>") for n in ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")),
        "\n\n",
    ),
    "think-answer": ((Stage("think", "<think>", "</think>"), Stage("answer", "<answer>", "</answer>")), ""),
}
STAGED_INSTRUCTION = (
    "Answer in four stages, each inside its tags: <SUMMARY> </SUMMARY> (how you will solve the problem), "
    "<CAPTION> </CAPTION> (what in the image matters for the question), <REASONING> </REASONING> (step by step), "
    "<CONCLUSION> </CONCLUSION> (the final answer only)."
)
CAPTION_INSTRUCTION = (
    "Begin your thinking with a description of the image (everything needed to answer the question), then "
    "reason step by step."
)


@dataclass
class StrategyConfig:
    """One strategy and its options; recorded in ``run_config.json`` and compared on resume."""

    name: str = "single"
    n: int = 4  # best-of-n / vote: samples per item; beam: candidates per stage (``width``)
    select: str = "logprob"  # best-of-n, beam: logprob | judge | oracle (best-of-n only; an upper bound)
    stages: str = "llamav-o1"  # staged, beam: llamav-o1 | think-answer
    stage_tokens: int | None = None  # staged, beam: most new tokens per stage (default: --max-new-tokens)
    prefix: str = "<think>\nThe image shows"  # caption-first: how the assistant turn starts
    step_judge: bool = False  # score every reasoning step with the judge (needs --judge-url/--judge-model)
    summary_model: str | None = None  # insight-v: the summary agent's checkpoint (None: the --model itself)
    summary_tokens: int | None = None  # insight-v: most new tokens of the summary agent (default: --max-new-tokens)

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise EvalError(f"--strategy {self.name!r}: unknown; choose one of {', '.join(STRATEGIES)}")
        if self.n < 1:
            raise EvalError(f"--strategy {self.name}: n (width) must be >= 1, got {self.n}")
        if self.select not in SELECTORS:
            raise EvalError(f"--strategy {self.name}: select={self.select!r}; choose one of {', '.join(SELECTORS)}")
        if self.select == "oracle" and self.name != "best-of-n":
            raise EvalError(f"--strategy {self.name}: select=oracle is only for best-of-n (a stage has no answer "
                            "to verify); use select=logprob or select=judge")
        if self.stages not in STAGE_SCHEMES:
            raise EvalError(f"--strategy {self.name}: stages={self.stages!r}; choose one of {', '.join(STAGE_SCHEMES)}")
        if self.stage_tokens is not None and self.stage_tokens < 1:
            raise EvalError(f"--strategy {self.name}: stage_tokens must be >= 1")
        if self.summary_tokens is not None and self.summary_tokens < 1:
            raise EvalError(f"--strategy {self.name}: summary_tokens must be >= 1")
        if self.summary_model is not None and self.name != "insight-v":
            raise EvalError(f"--summary-model is for --strategy insight-v (the summary agent); {self.name} has none")

    @property
    def samples(self) -> int:
        """Candidates generated per item (per stage for beam)."""
        return self.n if self.name in ("beam", "best-of-n", "vote") else 1

    def uses_judge(self) -> bool:
        return self.step_judge or (self.name in ("beam", "best-of-n") and self.select == "judge")

    def check(self, temperature: float, judge: Any) -> None:
        """Errors a run would otherwise meet only after loading the model."""
        if self.samples > 1 and temperature <= 0:
            raise EvalError(f"--strategy {self.name}: {self.samples} candidates per item need sampling; set "
                            "--temperature > 0 (e.g. 0.6) or n=1")
        if self.uses_judge() and judge is None:
            raise EvalError(f"--strategy {self.name}: select=judge / step_judge need a judge: pass --judge-url and "
                            "--judge-model (add --judge-mode off to keep answer extraction to the rules)")

    def to_json(self) -> dict[str, Any]:
        """Only the options this strategy reads (so an unused default never blocks a resume)."""
        used = _OPTIONS[self.name]
        return {"name": self.name, **{k: v for k, v in asdict(self).items() if k in used or (k == "n" and "width" in used)}}


def with_beam_width(plan: StrategyConfig, spec: str, width: int | None) -> StrategyConfig:
    """``eval run --beam-width N`` (LlamaV-o1's spelling): the beam's width. With the default strategy it means
    ``--strategy beam:width=N``; with ``beam`` it sets the width unless the spec already gives another one; with
    any other strategy it is an error (a flag that changes nothing must not pass silently).

    >>> with_beam_width(parse_strategy("single"), "single", 8).to_json()["n"]
    8
    >>> with_beam_width(parse_strategy("beam:select=logprob"), "beam:select=logprob", 2).n
    2
    """
    if width is None:
        return plan
    if plan.name == "single" and spec.strip() in ("", "single"):
        return StrategyConfig(name="beam", n=width)
    if plan.name != "beam":
        raise EvalError(f"--beam-width is the width of --strategy beam; {plan.name!r} has no beam. Fix: drop "
                        f"--beam-width, or use --strategy beam --beam-width {width}")
    given = {k.strip().replace("-", "_") for k in spec.partition(":")[2].split(",") if "=" in k}
    given = {_SPELLINGS.get(k.split("=")[0], k.split("=")[0]) for k in given}
    if "width" in given and plan.n != width:
        raise EvalError(f"--beam-width {width} contradicts --strategy {spec!r} (width={plan.n}). Fix: give the "
                        "width once")
    return StrategyConfig(**{**asdict(plan), "n": width})


def parse_strategy(spec: str) -> StrategyConfig:
    """``NAME[:key=value,...]`` -> :class:`StrategyConfig`.

    >>> parse_strategy("beam:width=8,select=logprob").n
    8
    >>> parse_strategy("vote").to_json()
    {'name': 'vote', 'n': 4, 'step_judge': False}
    """
    name, _, rest = spec.strip().partition(":")
    name = name.strip().lower().replace("_", "-")
    if name not in STRATEGIES:
        close = difflib.get_close_matches(name, STRATEGIES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise EvalError(f"--strategy {spec!r}: unknown strategy {name!r}; {hint}choose one of {', '.join(STRATEGIES)}")
    allowed = _OPTIONS[name]
    types = {f.name: f.type for f in fields(StrategyConfig)}
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = part.partition("=")
        key = key.strip().replace("-", "_")
        key = _SPELLINGS.get(key, key)
        if not eq:
            raise EvalError(f"--strategy {spec!r}: {part!r} is not key=value (e.g. {name}:{allowed[0]}=...)")
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise EvalError(f"--strategy {spec!r}: {name} has no option {key!r}; {hint}its options: {', '.join(allowed)}")
        field = _FIELDS.get(key, key)
        values[field] = _convert(spec, key, raw.strip(), str(types[field]))
    return StrategyConfig(name=name, **values)


def _convert(spec: str, key: str, raw: str, typ: str) -> Any:
    if typ.startswith("bool"):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise EvalError(f"--strategy {spec!r}: {key}={raw!r}: expected true or false")
    if typ.startswith("int"):
        try:
            return int(raw)
        except ValueError:
            raise EvalError(f"--strategy {spec!r}: {key}={raw!r}: expected an integer") from None
    return raw.replace("\\n", "\n").replace("\\t", "\t") if key == "prefix" else raw  # a shell-typed \n


# ----------------------------------------------------------------------------------------------------------
# What a strategy knows about an item (for the vote's equivalence, the oracle and the judges)
# ----------------------------------------------------------------------------------------------------------


@dataclass
class ItemInfo:
    pid: str
    question: str
    task: str  # the reward library's task: count / math / choice / grounding / free
    choices: list[str] | None
    description: str | None  # a ground-truth image description, where the data has one (synthetic)


def item_info(bench: Any, item: Any) -> ItemInfo:
    from visionr1.rewards.scoring import _as_choices

    rec = item.record
    choices = _as_choices(rec.get("choices") if bench.name == "synthetic" else bench.choices(item) or rec.get("choices"))
    meta = rec.get("metadata")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            meta = None
    description = meta.get("description") if isinstance(meta, dict) else None
    task = rec.get("task") if bench.name == "synthetic" else None
    return ItemInfo(item.pid, bench.question(item), str(task or ("choice" if choices else "math")), choices,
                    description if isinstance(description, str) else None)


def answer_of(text: str, info: ItemInfo) -> str | None:
    from visionr1.rewards.extract import extract_answer

    return extract_answer(text, info.task)


def same_answer(a: str, b: str, info: ItemInfo) -> bool:
    """The scorer's equivalence: ``a`` would be marked right if ``b`` were the solution (or vice versa)."""
    from visionr1.rewards.scoring import normalize_text, passes, score_answer

    if a.strip() == b.strip() or (normalize_text(a) and normalize_text(a) == normalize_text(b)):
        return True
    return passes(score_answer(a, b, info.task, info.choices), info.task) or passes(
        score_answer(b, a, info.task, info.choices), info.task)


def vote(answers: Sequence[str | None], logprobs: Sequence[float | None], same: Any) -> tuple[int, list[dict[str, Any]]]:
    """Self-consistency: the index of the kept candidate and the vote groups.

    Each answer joins the first group whose answer ``same`` calls equivalent. The largest group wins; a tie
    goes to the group holding the candidate with the highest mean log-prob, and that candidate is kept.
    Candidates without an answer do not vote (when none has one, the best log-prob is kept).

    >>> vote(["2/4", "1", "0.5", None], [-1.0, -0.1, -2.0, 0.0], lambda a, b: eval(a) == eval(b))
    (0, [{'answer': '2/4', 'members': [0, 2]}, {'answer': '1', 'members': [1]}])
    """
    lp = [float("-inf") if v is None else v for v in logprobs]
    groups: list[dict[str, Any]] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        for g in groups:
            if same(a, g["answer"]):
                g["members"].append(i)
                break
        else:
            groups.append({"answer": a, "members": [i]})
    if not groups:
        return max(range(len(lp)), key=lambda i: (lp[i], -i)), groups
    best = max(groups, key=lambda g: (len(g["members"]), max(lp[i] for i in g["members"])))
    return max(best["members"], key=lambda i: (lp[i], -i)), groups


def pick(scores: Sequence[float | None], logprobs: Sequence[float | None]) -> int:
    """The best-scored candidate; ties (and missing scores) fall to the higher mean log-prob, then the first.

    >>> pick([3, 7, 7], [-1.0, -2.0, -0.5]), pick([None, None], [-1.0, -0.2])
    (2, 1)
    """
    def key(i: int) -> tuple[float, float, int]:
        s, lp = scores[i], logprobs[i]
        return (float("-inf") if s is None else s, float("-inf") if lp is None else lp, -i)

    return max(range(len(scores)), key=key)


# ----------------------------------------------------------------------------------------------------------
# Prompts
# ----------------------------------------------------------------------------------------------------------


def with_instruction(prompt: list[dict[str, Any]], instruction: str) -> list[dict[str, Any]]:
    """A copy of ``prompt`` with ``instruction`` appended to the last user message's text."""
    msgs = [dict(m) for m in prompt]
    for m in reversed(msgs):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            m["content"] = f"{content}\n{instruction}"
            return msgs
        parts = [dict(p) for p in content]
        texts = [i for i, p in enumerate(parts) if p.get("type") == "text"]
        if texts:
            parts[texts[-1]]["text"] = f"{parts[texts[-1]]['text']}\n{instruction}"
        else:
            parts.append({"type": "text", "text": instruction})
        m["content"] = parts
        return msgs
    raise EvalError("prompt has no user message to add the strategy's instruction to")


_JUDGE_PICK = """You are checking a candidate {what} for a question about an image.
Question: {question}
{context}Candidate {what}:
{candidate}

How likely is it that the candidate is correct and helps reach the right answer? Reply with one integer from 0 \
(certainly wrong) to 10 (certainly right), nothing else."""


def judge_score(judge: Any, info: ItemInfo, candidate: str, what: str = "solution", context: str = "") -> float | None:
    """0-10 from the judge, or None when its reply holds no number (then log-prob decides)."""
    reply = judge.complete(_JUDGE_PICK.format(
        what=what, question=info.question, context=f"Earlier stages:\n{context}\n" if context else "",
        candidate=candidate))
    m = re.search(r"-?\d+(?:\.\d+)?", reply)
    return None if m is None else min(10.0, max(0.0, float(m.group())))


# ----------------------------------------------------------------------------------------------------------
# Running a strategy on one chunk of items
# ----------------------------------------------------------------------------------------------------------


def _candidates(generator: Any, prompts: Sequence[Any], images: Sequence[Any], prefixes: Sequence[str], n: int,
                max_new_tokens: int, stop: Sequence[str] | None = None) -> list[list[Any]]:
    from visionr1.inference import generate_candidates, generate_candidates_vllm

    d = generator.decoding
    try:
        if generator.backend == "vllm":
            return generate_candidates_vllm(generator.model, generator.processor, prompts, images, prefixes, n,
                                            max_new_tokens, d.temperature, d.top_p, stop)
        return generate_candidates(generator.model, generator.processor, prompts, images, prefixes, n,
                                   max_new_tokens, d.temperature, d.top_p, stop, batch_size=d.batch_size)
    except ValueError as exc:
        raise EvalError(f"--strategy: generation failed: {exc}") from None


def _cand_json(c: Any, info: ItemInfo, text: str | None = None) -> dict[str, Any]:
    return {"text": c.text, "num_tokens": c.num_tokens, "mean_logprob": c.mean_logprob,
            "sum_logprob": c.sum_logprob, "stop": c.stop, "answer": answer_of(text if text is not None else c.text, info)}


def run_strategy(cfg: StrategyConfig, generator: Any, bench: Any, items: Sequence[Any], samples: Sequence[Any],
                 judge: Any = None, summary: Any = None) -> list[dict[str, Any]]:
    """One predictions.jsonl row per item: ``pid, response`` (what is scored), ``num_tokens`` (every token the
    strategy generated for the item), ``truncated`` (the kept candidate's), ``strategy`` and its log.
    ``summary``: insight-v's summary agent (a second loaded model; None: ``generator`` plays both roles)."""
    from visionr1.data.prompts import continuation

    infos = [item_info(bench, it) for it in items]
    limit = generator.decoding.max_new_tokens
    prompts = [s.prompt for s in samples]
    images = [s.images for s in samples]
    if cfg.name == "insight-v":
        rows = _insight_v(cfg, generator, summary or generator, bench, items, prompts, images, infos)
    elif cfg.name in ("staged", "beam"):
        rows = _staged(cfg, generator, prompts, images, infos, judge)
    else:
        prefixes = [""] * len(prompts)
        if cfg.name == "caption-first":
            prompts = [with_instruction(p, CAPTION_INSTRUCTION) for p in prompts]
            prefixes = [cfg.prefix] * len(prompts)
        # a template that opened <think> (generator.opened): the prefix continues it, the response starts with it
        groups = _candidates(generator, prompts, images, [continuation(generator.opened, p) for p in prefixes],
                             cfg.samples, limit)
        prefixes = [generator.opened + continuation(generator.opened, p) for p in prefixes]
        rows = [_choose(cfg, bench, item, info, prefix, group, judge)
                for item, info, prefix, group in zip(items, infos, prefixes, groups, strict=True)]
    if cfg.step_judge:
        from visionr1.evaluation.step_judge import judge_steps

        for row, info in zip(rows, infos, strict=True):
            row["step_judge"] = judge_steps(judge, info, row["response"])
    return rows


def _choose(cfg: StrategyConfig, bench: Any, item: Any, info: ItemInfo, prefix: str, group: list[Any],
            judge: Any) -> dict[str, Any]:
    texts = [prefix + c.text for c in group]
    cands = [_cand_json(c, info, t) for c, t in zip(group, texts, strict=True)]
    logprobs = [c.mean_logprob for c in group]
    row: dict[str, Any] = {}
    if cfg.name == "vote":
        chosen, groups = vote([c["answer"] for c in cands], logprobs, lambda a, b: same_answer(a, b, info))
        row["votes"] = [{"answer": g["answer"], "count": len(g["members"]), "members": g["members"]} for g in groups]
    elif cfg.name == "best-of-n" and cfg.select == "oracle":
        from visionr1.evaluation.benchmarks import ScoringContext

        verdicts = [bool(bench.score(item, t, ScoringContext(None)).correct) for t in texts]
        for c, v in zip(cands, verdicts, strict=True):
            c["oracle_correct"] = v
        chosen = pick([float(v) for v in verdicts], logprobs)
    elif cfg.name == "best-of-n" and cfg.select == "judge":
        scores = [judge_score(judge, info, t) for t in texts]
        for c, s in zip(cands, scores, strict=True):
            c["judge_score"] = s
        chosen = pick(scores, logprobs)
    else:  # single, caption-first (one candidate), best-of-n by log-prob
        chosen = pick([0.0] * len(group), logprobs)
    return {"pid": info.pid, "response": texts[chosen], "num_tokens": sum(c.num_tokens for c in group),
            "truncated": group[chosen].truncated, "strategy": cfg.name, "chosen": chosen,
            "chosen_tokens": group[chosen].num_tokens, "candidates": cands, **row}


def with_user_text(prompt: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """A copy of ``prompt`` whose last user message says ``text`` (its images kept, its text replaced)."""
    msgs = [dict(m) for m in prompt]
    for m in reversed(msgs):
        if m.get("role") == "user":
            content = m.get("content")
            parts = [] if isinstance(content, str) else [dict(p) for p in content if p.get("type") != "text"]
            m["content"] = parts + [{"type": "text", "text": text}]
            return msgs
    raise EvalError("prompt has no user message to put the agent's prompt into")


def _opened(generator: Any, cand: Any) -> Any:
    """A candidate's text as the whole assistant turn: what the generator's template opened, then the text."""
    import dataclasses

    return dataclasses.replace(cand, text=generator.opened + cand.text)


def _insight_v(cfg: StrategyConfig, reasoner: Any, summarizer: Any, bench: Any, items: Sequence[Any],
               prompts: list[Any], images: list[Any], infos: list[ItemInfo]) -> list[dict[str, Any]]:
    """The reasoning agent's chain for the whole chunk, then the summary agent's verdict and answer."""
    from visionr1.evaluation.benchmarks import ScoringContext
    from visionr1.insight.chain import count_steps, parse_verdict
    from visionr1.insight.prompts import chain_for_summary, reasoner_text, summary_text

    n = len(prompts)
    asks = [with_user_text(p, reasoner_text(i.question, i.choices)) for p, i in zip(prompts, infos, strict=True)]
    chains = [_opened(reasoner, g[0]) for g in _candidates(reasoner, asks, images, [""] * n, 1,
                                                           reasoner.decoding.max_new_tokens)]
    reviews = [with_user_text(p, summary_text(i.question, i.choices, chain_for_summary(c.text)))
               for p, i, c in zip(prompts, infos, chains, strict=True)]
    limit = cfg.summary_tokens or summarizer.decoding.max_new_tokens
    finals = [_opened(summarizer, g[0]) for g in _candidates(summarizer, reviews, images, [""] * n, 1, limit)]
    rows = []
    for item, info, chain, final in zip(items, infos, chains, finals, strict=True):
        rows.append({
            "pid": info.pid, "response": final.text, "num_tokens": chain.num_tokens + final.num_tokens,
            "truncated": final.truncated, "strategy": cfg.name,
            "chain": chain.text, "chain_steps": count_steps(chain.text), "chain_tokens": chain.num_tokens,
            "chain_truncated": chain.truncated, "reasoner_answer": answer_of(chain.text, info),
            "reasoner_correct": bool(bench.score(item, chain.text, ScoringContext(None)).correct),
            "verdict": parse_verdict(final.text), "answer": answer_of(final.text, info),
            "final_correct": bool(bench.score(item, final.text, ScoringContext(None)).correct),
            "summary_tokens": final.num_tokens,
        })
    return rows


def _staged(cfg: StrategyConfig, generator: Any, prompts: list[Any], images: list[Any], infos: list[ItemInfo],
            judge: Any) -> list[dict[str, Any]]:
    """Stage by stage for the whole chunk: every item's prefix grows by the stage candidate it keeps.

    A template that opens ``<think>`` itself (``generator.opened``): the ``think`` stage continues that thought
    instead of opening a second one, and the scored text starts with it (stages=llamav-o1: the stages are written
    inside it; what is scored is rebuilt from the sections)."""
    from visionr1.data.prompts import continuation

    stages, sep = STAGE_SCHEMES[cfg.stages]
    if cfg.stages == "llamav-o1":
        prompts = [with_instruction(p, STAGED_INSTRUCTION) for p in prompts]
    width = cfg.samples if cfg.name == "beam" else 1
    limit = cfg.stage_tokens or generator.decoding.max_new_tokens
    prefixes = [""] * len(prompts)
    logs: list[list[dict[str, Any]]] = [[] for _ in prompts]
    spent, sections = [0] * len(prompts), [dict[str, str]() for _ in prompts]
    truncated = [False] * len(prompts)
    for k, stage in enumerate(stages):
        heads = [continuation(generator.opened, p + (sep if k else "") + stage.open) for p in prefixes]
        groups = _candidates(generator, prompts, images, heads, width, limit, [stage.close])
        for i, group in enumerate(groups):
            spent[i] += sum(c.num_tokens for c in group)
            scores: list[float | None] = [0.0] * len(group)
            if cfg.select == "judge" and width > 1:
                scores = [judge_score(judge, infos[i], stage.open + c.text, f"{stage.name} stage", prefixes[i])
                          for c in group]
            chosen = pick(scores, [c.mean_logprob for c in group])
            best = group[chosen]
            closed = best.text.endswith(stage.close)
            body = best.text[: -len(stage.close)] if closed else best.text
            sections[i][stage.name] = body.strip()
            truncated[i] = truncated[i] or best.truncated
            prefixes[i] = heads[i] + body + stage.close
            logs[i].append({
                "stage": stage.name, "chosen": chosen, "closed": closed,
                "candidates": [{"text": c.text, "num_tokens": c.num_tokens, "mean_logprob": c.mean_logprob,
                                "sum_logprob": c.sum_logprob, "stop": c.stop,
                                **({"judge_score": s} if cfg.select == "judge" and width > 1 else {})}
                               for c, s in zip(group, scores, strict=True)],
            })
    rows = []
    for i, info in enumerate(infos):
        text = generator.opened + prefixes[i]
        response = _scored_response(cfg.stages, text, sections[i])
        rows.append({"pid": info.pid, "response": response, "num_tokens": spent[i], "truncated": truncated[i],
                     "strategy": cfg.name, "staged_text": text, "answer": answer_of(response, info),
                     "stages": logs[i]})
    return rows


def _scored_response(scheme: str, text: str, sections: dict[str, str]) -> str:
    """What the benchmark scores: the R1 format, with LlamaV-o1's Conclusion as the answer (so the scorer
    reads the Conclusion, never a number from the reasoning)."""
    if scheme == "think-answer":
        return text
    thought = "\n\n".join(f"<{k}>{v}</{k}>" for k, v in sections.items() if k != "CONCLUSION")
    return f"<think>{thought}</think><answer>{sections.get('CONCLUSION', '')}</answer>"


# ----------------------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------------------


def _insight_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The reasoner alone vs. the pair: the reasoner's accuracy (the pair's is the benchmark's ``accuracy``), the
    verdicts, and how often the verdict was right about the chain (``correct`` on a right chain, ``flawed`` on a
    wrong one)."""
    from collections import Counter

    rs = [r for r in rows if "reasoner_correct" in r]
    judged = [r for r in rs if r.get("verdict") is not None]
    verdicts = Counter(str(r.get("verdict")) for r in rs)
    return {
        "reasoner_accuracy": sum(r["reasoner_correct"] for r in rs) / len(rs) if rs else None,
        "final_accuracy": sum(r["final_correct"] for r in rs) / len(rs) if rs else None,
        "summary_changed_answer": sum(r["final_correct"] != r["reasoner_correct"] for r in rs) if rs else 0,
        "verdicts": dict(verdicts.most_common()),
        "verdict_right_rate": (sum((r["verdict"] == "correct") == r["reasoner_correct"] for r in judged) / len(judged)
                               if judged else None),
        "mean_chain_steps": sum(r.get("chain_steps") or 0 for r in rs) / len(rs) if rs else None,
    }


def strategy_summary(cfg: StrategyConfig, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``summary.json["strategy"]`` (and ``["step_judge"]``): tokens per item, candidates, the upper-bound
    label of the oracle."""
    n = len(rows)
    out: dict[str, Any] = {"strategy": {
        **cfg.to_json(),
        "tokens_per_item": sum(int(r.get("num_tokens") or 0) for r in rows) / n if n else None,
        "candidates_per_item": cfg.samples if cfg.name != "staged" else 1,
        "upper_bound": cfg.name == "best-of-n" and cfg.select == "oracle",
    }}
    if out["strategy"]["upper_bound"]:
        out["strategy"]["note"] = ("UPPER BOUND: the oracle picks a candidate the scorer marks correct (it reads the "
                                   "ground truth); accuracy here is pass@n, not a strategy's result")
    if cfg.name == "vote":
        shares = [max((g["count"] for g in r.get("votes", [])), default=0) / cfg.n for r in rows if "votes" in r]
        out["strategy"]["mean_majority_share"] = sum(shares) / len(shares) if shares else None
    if cfg.name == "insight-v":
        out["strategy"].update(_insight_summary(rows))
    if cfg.name in ("staged", "beam"):
        closed = [s["closed"] for r in rows for s in r.get("stages", [])]
        out["strategy"]["stages_closed_by_model"] = sum(closed) / len(closed) if closed else None
    if cfg.step_judge:
        from visionr1.evaluation.step_judge import summarize_steps

        out["step_judge"] = summarize_steps([r.get("step_judge") for r in rows])
    return out
