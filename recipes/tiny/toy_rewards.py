"""A toy reward for the tiny recipes only: the tiny random model never writes the answer format, so every
verifiable reward is 0 for all K samples, and a DPO iteration would find no pair to train on. This one varies
with the text (the share of letters), so the pipeline has pairs to exercise. Never use it for a real run."""


def letters(completions, **kwargs):
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [sum(ch.isalpha() for ch in t) / max(len(t), 1) for t in texts]
