import doctest

import visionr1.config.base
import visionr1.config.loader
import visionr1.recipe


def test_config_doctests():
    result = doctest.testmod(visionr1.config.base)
    assert result.failed == 0


def test_loader_doctests():
    result = doctest.testmod(visionr1.config.loader)
    assert result.attempted >= 8 and result.failed == 0


def test_recipe_doctests():
    result = doctest.testmod(visionr1.recipe)
    assert result.attempted >= 2 and result.failed == 0
