"""Every row of the patch table (visionr1.patches.PATCHES) says why, where and what upstream says, and names tests
that exist: a library upgrade that makes a patch wrong fails a named test, and the table cannot cite one that is
gone."""

from __future__ import annotations

import re
from pathlib import Path

from visionr1.patches import PATCHES

REPO = Path(__file__).resolve().parents[2]


def test_every_patch_names_tests_that_exist():
    assert len(PATCHES) >= 10
    for patch in PATCHES:
        assert patch.hook and patch.where and patch.why and patch.upstream, patch
        refs = [r for r in re.split(r",\s*", patch.test) if r]
        assert refs, patch.hook
        for ref in refs:
            path, _, name = ref.partition("::")
            source = (REPO / path).read_text()  # the file exists
            if name:
                assert f"def {name.split('[')[0]}(" in source, f"{patch.hook}: {ref} names no test"
