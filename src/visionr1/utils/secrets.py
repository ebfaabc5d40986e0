"""One redaction helper for every file visionr1 writes and every message it prints.

Why: a key pasted into a recipe (``llm_judge`` ``kwargs.api_key``) used to land verbatim in ``manifest.json``,
``recipe.json`` and the ``--dry-run`` output, and a server that echoes the key in an error body got it stored
in ``records.jsonl``. Keys now come only from environment variables the recipe *names* (``api_key_env``), and
everything written or printed goes through :func:`redact`, which removes three kinds of secret:

- the values of environment variables whose names say they hold one (``*_API_KEY``, ``*_TOKEN``,
  ``*_SECRET``, ``*PASSWORD*``, plus every variable registered with :func:`register_secret_env`), wherever
  they appear -- this catches a key a server echoes back, whatever it looks like;
- strings shaped like well-known keys (``sk-...``, ``hf_...``, ``ghp_...``, ``AKIA...``, JWTs,
  ``Bearer <token>``, URL credentials ``https://user:pass@host``);
- the value of any mapping entry named like a secret (``api_key``, ``token``, ``password``, ...).

It cannot know every format; :func:`looks_like_secret` is also what makes a literal key in a recipe an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
MIN_SECRET_LEN = 8  # shorter env values ("1", "true") would redact ordinary text

_ENV_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_ENV_NAME_IGNORE = re.compile(
    r"^(TOKENIZERS_PARALLELISM|.*_TOKENS?_(LIMIT|MAX|MIN)|MAX_TOKENS?|.*_(PATH|FILE|DIR|URL|ENV|HOST|PORT))$", re.IGNORECASE)
_KEY_NAME = re.compile(
    r"^(api[_-]?key|apikey|x[_-]api[_-]key|.*_api[_-]?key|secret|.*_secret|client_secret|password|passwd|"
    r"token|access_token|auth_token|bearer_token|hub_token|hf_token|authorization|proxy_authorization)$",
    re.IGNORECASE,
)
_PATTERNS = [
    re.compile(r"\bsk-(?:ant-|proj-|or-)?[A-Za-z0-9_\-]{16,}"),  # OpenAI, Anthropic, DeepSeek, OpenRouter
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),  # Hugging Face
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),  # GitHub
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),  # Google
    re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),  # Slack
    re.compile(r"\b(?:gsk|r8|pplx|nvapi|fw)_[A-Za-z0-9_\-]{20,}"),  # Groq, Replicate, Perplexity, NVIDIA, Fireworks
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWT
]
# "Bearer" as HTTP writes it, with a token holding a digit ("basic arithmetic" and prose stay untouched)
_BEARER = re.compile(r"\b(Bearer|(?i:authorization:\s*basic))\s+(?=[A-Za-z0-9._~+/=\-]*\d)[A-Za-z0-9._~+/=\-]{8,}")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@")
_registered_env: set[str] = set()


def register_secret_env(name: str | None) -> None:
    """Treat the value of environment variable ``name`` as a secret from now on (what ``api_key_env`` names)."""
    if name:
        _registered_env.add(name)


def _secret_shaped(value: str) -> bool:
    """Whether an environment value named like a secret can be one: not a path, URL, word or sentence
    (``HF_TOKEN_PATH=/root/.cache/...`` must not turn every path in a manifest into ``<redacted>``)."""
    return not (value.startswith(("/", "~", ".")) or "://" in value or any(c.isspace() for c in value)
                or value.isalpha() and value.islower())


def known_secrets() -> list[str]:
    """Secret values currently in the environment, longest first (so a key containing another goes first):
    the variables registered by ``api_key_env``, and those named like secrets whose value looks like one."""
    vals = {
        v for k, v in os.environ.items()
        if len(v) >= MIN_SECRET_LEN and (k in _registered_env or (
            _ENV_NAME.search(k) and not _ENV_NAME_IGNORE.match(k) and _secret_shaped(v)))
    }
    return sorted(vals, key=len, reverse=True)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every secret replaced by ``<redacted>``.

    >>> redact_text("401: invalid key sk-abcdefghijklmnop1234 for https://bob:hunter22@h/v1, Bearer abc.def.ghi1")
    '401: invalid key <redacted> for https://<redacted>@h/v1, Bearer <redacted>'
    """
    if not text:
        return text
    for value in known_secrets() if secrets is None else secrets:
        text = text.replace(value, REDACTED)
    for pat in _PATTERNS:
        text = pat.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


def is_secret_name(key: str) -> bool:
    """Whether a mapping key names a secret (``api_key``, ``token``; not ``api_key_env`` or ``max_tokens``).

    >>> [is_secret_name(k) for k in ("api_key", "OPENAI_API_KEY", "api_key_env", "max_tokens", "pad_token")]
    [True, True, False, False, False]
    """
    return bool(_KEY_NAME.match(key))


def redact(obj: Any, _secrets: list[str] | None = None) -> Any:
    """A copy of a JSON-like value with secrets removed from every string and every secret-named entry.

    >>> redact({"kwargs": {"api_key": "x", "api_key_env": "K"}, "log": ["token hf_abcdefghijklmnopqrstuv"]})
    {'kwargs': {'api_key': '<redacted>', 'api_key_env': 'K'}, 'log': ['token <redacted>']}
    """
    secrets = known_secrets() if _secrets is None else _secrets
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    if isinstance(obj, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_name(k) and isinstance(v, str) and v else redact(v, secrets))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v, secrets) for v in obj]
    return obj


def looks_like_secret(value: Any) -> bool:
    """Whether a value written in a recipe is (or contains) a key, so the recipe must name an env var instead.

    >>> looks_like_secret("sk-abcdefghijklmnopqrst"), looks_like_secret("http://127.0.0.1:8000/v1")
    (True, False)
    """
    return isinstance(value, str) and redact_text(value, []) != value


def find_literal_secrets(obj: Any, path: str = "") -> list[str]:
    """Dotted paths inside ``obj`` that hold a literal secret (a secret-named key with a value, or a value that
    looks like a key). What recipe validation calls to refuse keys written into a recipe.

    >>> find_literal_secrets({"base_url": "http://h/v1", "api_key": "abc", "headers": {"x": "Bearer abc123defgh"}})
    ['api_key', 'headers.x']
    """
    found: list[str] = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(k, str) and is_secret_name(k) and v not in (None, ""):
                found.append(sub)
            else:
                found += find_literal_secrets(v, sub)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found += find_literal_secrets(v, f"{path}[{i}]")
    elif looks_like_secret(obj):
        found.append(path)
    return found
