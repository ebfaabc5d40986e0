"""The doctests of the cold-start modules (small pure functions document themselves by example)."""

import doctest
import importlib

import pytest

MODULES = ["templates", "filters", "pipeline", "store", "report", "backends", "config"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(f"visionr1.coldstart.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
