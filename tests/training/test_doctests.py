"""The doctests of the training modules' small pure functions."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["visionr1.training.data_order", "visionr1.training.checkpoints",
                                  "visionr1.training.manifest", "visionr1.training.dpo",
                                  "visionr1.training.plan", "visionr1.patches.image_sharing",
                                  "visionr1.training.rollout_filter", "visionr1.training.token_budget"])
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted >= 1 and result.failed == 0
