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
