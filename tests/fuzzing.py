"""Hypothesis settings and helpers shared by the fuzz tests (``test_*_fuzz.py``).

Derandomization, the example database and blob printing come from the Hypothesis profile that
``tests/conftest.py`` loads (``ci`` by default: the same examples on every run and machine;
``HYPOTHESIS_PROFILE=explore``: fresh random examples, failures saved and replayed).
``FLEXOR_FUZZ_SCALE=N`` multiplies every fuzz test's number of examples by ``N``.
"""

import os

from hypothesis import HealthCheck, currently_in_test_context, event, settings

__all__ = ["fuzz_settings", "note"]

SCALE = int(os.environ.get("FLEXOR_FUZZ_SCALE", "1"))


def fuzz_settings(examples):
    """Settings for a fuzz test of ``examples`` examples (times ``FLEXOR_FUZZ_SCALE``), on top of
    the active profile."""
    return settings(max_examples=examples * SCALE,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def note(outcome):
    """Count an outcome for ``pytest --hypothesis-show-statistics`` (inside a Hypothesis test
    only, so the same checking code serves parametrized tests too)."""
    if currently_in_test_context():
        event(outcome)
