"""Data layer: one canonical sample, loaders from the formats peers use, image/video handling.

Public API (imported lazily, so ``import visionr1.data.spec`` from the recipe code stays cheap)::

    from visionr1.data import load_samples, LoadResult, DataError, DatasetSpec
"""

from __future__ import annotations

from typing import Any

from visionr1.data.errors import DataError
from visionr1.data.spec import DatasetSpec, PromptSpec, VideoSpec

__all__ = ["DataError", "DatasetSpec", "LoadResult", "PromptSpec", "VideoSpec", "load_samples", "canonical_features"]


def __getattr__(name: str) -> Any:
    if name in ("load_samples", "LoadResult", "canonical_features"):
        from visionr1.data import loaders

        return getattr(loaders, name)
    raise AttributeError(f"module 'visionr1.data' has no attribute {name!r}")
