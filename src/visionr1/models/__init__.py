"""Tiny local models of real VLM architectures (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) for tests and the CPU demo."""

from visionr1.models.tiny import FAMILIES, PRESETS, SIZES, TinyPreset, build_tiny_model, get_tiny_model

__all__ = ["FAMILIES", "PRESETS", "SIZES", "TinyPreset", "build_tiny_model", "get_tiny_model"]
