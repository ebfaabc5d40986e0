"""A reward plugin for tests: a random tiny model never produces the answer format, so every verifiable
reward is 0, advantages are 0 and GRPO would not move the weights. This one varies with the text."""


def letters(completions, **kwargs):
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [sum(ch.isalpha() for ch in t) / max(len(t), 1) for t in texts]


def letters_recording_ids(completions, id=None, **kwargs):
    """``letters``, and the ids of the prompts scored appended to ``$VISIONR1_TEST_IDS`` (one JSON list per
    call), so a test can see which prompts each step trained on."""
    import json
    import os

    with open(os.environ["VISIONR1_TEST_IDS"], "a") as f:
        f.write(json.dumps(list(id)) + "\n")
    return letters(completions)


def by_id(completions, id=None, spread=True, **kwargs):
    """Rewards fixed by the prompt id (``varied-N``), whatever the model writes: N % 3 == 0 always 1 (every sample
    solves it), N % 3 == 1 always 0 (none does), N % 3 == 2 the first sample of each group 1 and the others 0 (a
    spread, pass rate 1/G); ``spread=False`` scores those 0 too. Each call's ids are appended, with the process
    rank, to ``$VISIONR1_TEST_IDS`` when it is set."""
    import json
    import os

    ids = list(id)
    if os.environ.get("VISIONR1_TEST_IDS"):
        with open(os.environ["VISIONR1_TEST_IDS"], "a") as f:
            f.write(json.dumps({"rank": int(os.environ.get("RANK", 0)), "ids": ids}) + "\n")
    out = []
    for i, prompt_id in enumerate(ids):
        n = int(prompt_id.rsplit("-", 1)[1])
        first = i == 0 or ids[i - 1] != prompt_id
        out.append(1.0 if n % 3 == 0 else 0.0 if n % 3 == 1 else float(spread and first))
    return out
