"""The one redaction helper: what it removes, and what it must leave alone (model text, paths, URLs)."""

from __future__ import annotations

import pytest

from visionr1.utils.secrets import REDACTED, find_literal_secrets, redact, redact_text

SECRETS = [
    "sk-abcdefghijklmnopqrstuvwx", "sk-ant-api03-abcdefghijklmnop_qrstu", "sk-proj-AbCdEf0123456789xyzXYZ",
    "hf_abcdefghijklmnopqrstuvwxyzABCD", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "AKIAIOSFODNN7EXAMPLE",
    "AIzaSyA-abcdefghijklmnopqrstuvwxyz12345", "xoxb-1234567890-abcdefghij", "gsk_abcdefghijklmnopqrstuvwxyz",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]
KEEP = [
    "Basic arithmetic: 3 + 4 = 7, so the answer is 7.",
    "The bearer of the flag stands at (3, 4).",
    "<think>sk-1 is not a key; neither is task-12 or hf_2.</think><answer>12</answer>",
    "http://127.0.0.1:8000/v1", "https://api.example.com:443/v1/chat/completions",
    "/root/.cache/huggingface/token", "runs/vision-r1-7b/ptst-1/checkpoint-50",
    "Qwen/Qwen2.5-VL-7B-Instruct", "max_tokens=4096 prompt_tokens 12",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_key_shapes_are_redacted_in_text_and_structures(secret):
    text = f"error 401: invalid key '{secret}' (check it)"
    assert secret not in redact_text(text) and REDACTED in redact_text(text)
    assert redact({"a": [text], "b": {"c": secret}}) == {"a": [redact_text(text)], "b": {"c": REDACTED}}
    assert find_literal_secrets({"kwargs": {"headers": {"x": secret}}}) == ["kwargs.headers.x"]


@pytest.mark.parametrize("text", KEEP)
def test_ordinary_text_is_left_alone(text, monkeypatch):
    monkeypatch.setenv("HF_TOKEN_PATH", "/root/.cache/huggingface/token")  # named like a secret, holds a path
    monkeypatch.setenv("SERVICE_TOKEN", "localhost")  # a word, not a key
    assert redact_text(text) == text
    assert find_literal_secrets({"note": text}) == []


def test_env_secrets_and_credentials(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", "Zq8-plainish-77")
    text = "echo: Zq8-plainish-77 via https://user:pa55word@proxy:3128/ and Authorization: Bearer abc.DEF123xyz"
    out = redact_text(text)
    assert "Zq8-plainish-77" not in out and "pa55word" not in out and "abc.DEF123xyz" not in out
    assert out.count(REDACTED) == 3 and "proxy:3128" in out
    assert redact({"api_key_env": "MY_SERVICE_API_KEY", "password": "hunter2", "max_tokens": 7}) == {
        "api_key_env": "MY_SERVICE_API_KEY", "password": REDACTED, "max_tokens": 7}
