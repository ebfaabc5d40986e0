"""Run the doctests of the small pure functions in visionr1.tasks and visionr1.models."""

import doctest

import pytest

import visionr1.models.tiny
import visionr1.models.tokenizer
import visionr1.tasks.scene
import visionr1.tasks.synthetic


@pytest.mark.parametrize("module", [visionr1.tasks.scene, visionr1.tasks.synthetic, visionr1.models.tiny, visionr1.models.tokenizer])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
