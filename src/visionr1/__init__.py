"""visionr1: teach vision-language models to reason (Vision-R1 and the projects around it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("visionr1")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
