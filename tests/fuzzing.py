"""Hypothesis settings and helpers shared by the fuzz tests (``test_*_fuzz.py``).

Every fuzz test runs derandomized by default: the same examples on every run and machine, so a
CI failure reproduces with the same command, and Hypothesis prints the failing example and its
``@reproduce_failure`` blob. Two environment variables widen a run by hand:

``FLEXOR_FUZZ_SCALE=N``
    multiply every test's number of examples by ``N``;
``FLEXOR_FUZZ_RANDOM=1``
    draw fresh random examples instead; Hypothesis then prints the seed of a failing run
    (repeat it with ``pytest --hypothesis-seed=SEED``).
"""

import os

from hypothesis import HealthCheck, currently_in_test_context, event, settings

__all__ = ["fuzz_settings", "note"]

SCALE = int(os.environ.get("FLEXOR_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("FLEXOR_FUZZ_RANDOM", "") not in ("", "0")


def fuzz_settings(examples):
    """Settings for a fuzz test of ``examples`` examples (times ``FLEXOR_FUZZ_SCALE``)."""
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=not RANDOM,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def note(outcome):
    """Count an outcome for ``pytest --hypothesis-show-statistics`` (inside a Hypothesis test
    only, so the same checking code serves parametrized tests too)."""
    if currently_in_test_context():
        event(outcome)
