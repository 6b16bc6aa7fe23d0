"""What every cocotb testbench here shares: its input files, and stream drivers and monitors.

A testbench runs inside the simulator, started by :func:`sim.runner.run_testbench`; it learns
what to do from two files named in its environment: the generated top's sidecar
(``FLEXOR_SIDECAR``) and a stimulus (``FLEXOR_STIMULUS``), and writes its figures to
``FLEXOR_RESULT``.
"""

import json
import os

from flexor.sidecar import Sidecar

__all__ = ["load_inputs"]


def load_inputs():
    """The sidecar (:class:`~flexor.sidecar.Sidecar`) and the stimulus (a ``dict``) of this run."""
    sidecar = Sidecar.load(os.environ["FLEXOR_SIDECAR"])
    with open(os.environ["FLEXOR_STIMULUS"], encoding="utf-8") as file:
        return sidecar, json.load(file)
