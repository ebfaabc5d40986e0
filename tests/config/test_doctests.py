import doctest

import visionr1.config.base


def test_config_doctests():
    result = doctest.testmod(visionr1.config.base)
    assert result.attempted >= 4 and result.failed == 0
